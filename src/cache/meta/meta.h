/*
 * The MemCache meta service (mmc-meta), embeddable in any process.
 *
 * mmc_meta_start() starts, in this order: the pool's MemFabric config store
 * (an mf_store server on store_port), the RPC server that local services
 * talk to (src/cache/proto on port), and the HTTP endpoint (http_port).
 * All meta state lives on the RPC server's loop thread: requests, timers and
 * HTTP handlers run there one at a time, so the state needs no lock.  The
 * functions marked "loop thread" may be called only from there (HTTP
 * handlers, timers); mmc_meta_run_sync() gets there from another thread.
 *
 * Files:
 *   meta.c        start/stop, RPC handlers, per-connection bookkeeping
 *   meta_state.c  segments, object index, placement, puts, leases,
 *                 eviction
 *   alloc.c       space allocator of one segment
 *   meta_config.c the mmc-meta.conf table
 *   meta_http.c   /health, /metrics, /segments, /key/<key>
 */
#ifndef MMC_CACHE_META_META_H
#define MMC_CACHE_META_META_H

#include "cache/proto/proto.h"
#include "util/misc.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct event_base;

/* ---- configuration (meta_config.c) ---- */

typedef struct mmc_meta_config {
    char addr[64];              /* address the three servers bind */
    uint32_t port;              /* RPC port; 0 = a free one */
    uint32_t store_port;        /* config store port; 0 = a free one */
    uint32_t http_port;         /* HTTP port; 0 = a free one */
    bool http_enable;           /* serve HTTP at all */
    uint32_t pool_id;           /* MemFabric BM id of the pool */
    uint32_t max_ranks;         /* ranks of the pool (BM world size) */
    uint64_t max_segment_size;  /* largest segment a rank may contribute */
    uint64_t host_base;         /* GVA window base of host segments */
    uint64_t alloc_align;       /* alignment of replicas in segments */
    uint32_t lease_ms;          /* read lease duration */
    uint32_t put_timeout_ms;    /* an uncommitted put is aborted after */
    uint32_t max_batch;         /* keys per request (<= MMC_BATCH_MAX) */
    uint32_t max_clients;       /* connections to the RPC server */
    uint32_t evict_high_pct;    /* background eviction above this % */
    uint32_t evict_low_pct;     /* ... down to this % (< evict_high_pct) */
    uint32_t evict_max_per_put; /* objects a put item may evict */
    uint32_t member_timeout_ms; /* a silent connection is closed; 0 never */
    char log_level[16];         /* error, warn, info, debug, trace */
} mmc_meta_config_t;

/*
 * Default max_segment_size: with the default 64 ranks a 16 TiB window at
 * MF_FABRIC_DEFAULT_BASE.  A ThreadSanitizer build has 448 GiB of room
 * there (see fabric.h) and defaults to 4 GiB: a 256 GiB window.
 */
#if MF_TSAN
#define MMC_META_DEFAULT_SEGMENT "4G"
#else
#define MMC_META_DEFAULT_SEGMENT "256G"
#endif

void mmc_meta_config_init(mmc_meta_config_t *cfg);
/* MF_ERR_CONFIG (logged) for an unknown key or a bad value. */
mf_status_t mmc_meta_config_set(mmc_meta_config_t *cfg, const char *key,
                                const char *value);
/* "key = value" lines; errors name file and line. */
mf_status_t mmc_meta_config_load_file(mmc_meta_config_t *cfg, const char *path);
/* Checks every value and the combination of them (the GVA window
 * host_base + max_ranks * max_segment_size must end below 2^47,
 * evict_low_pct < evict_high_pct); run once
 * every source is applied.  mmc_meta_start() runs it too.  MF_ERR_CONFIG
 * (logged) or MF_OK. */
mf_status_t mmc_meta_config_check(const mmc_meta_config_t *cfg);
/* MMC_META_<KEY> environment variables. */
mf_status_t mmc_meta_config_load_env(mmc_meta_config_t *cfg);
void mmc_meta_config_print_help(FILE *out);
void mmc_meta_config_dump(const mmc_meta_config_t *cfg, FILE *out);

/* ---- the service (meta.c) ---- */

typedef struct mmc_meta mmc_meta_t;

mf_status_t mmc_meta_start(const mmc_meta_config_t *cfg, mmc_meta_t **meta_p);
/* Stops HTTP, RPC and store; every connection is closed. NULL accepted. */
void mmc_meta_stop(mmc_meta_t *meta);
uint16_t mmc_meta_port(const mmc_meta_t *meta);
uint16_t mmc_meta_store_port(const mmc_meta_t *meta);
uint16_t mmc_meta_http_port(const mmc_meta_t *meta); /* 0 when disabled */
const mmc_meta_config_t *mmc_meta_config(const mmc_meta_t *meta);
/* Runs fn(arg) on the loop thread and waits for it. */
mf_status_t mmc_meta_run_sync(mmc_meta_t *meta, void (*fn)(void *arg),
                              void *arg);

/* ---- what HTTP reads (loop thread) ---- */

/* Latency histogram: bucket i counts samples <= mmc_hist_bounds_us[i];
 * the last bucket counts the rest (+Inf). */
#define MMC_HIST_BUCKETS 16
extern const double mmc_hist_bounds_us[MMC_HIST_BUCKETS - 1];

typedef struct mmc_hist {
    uint64_t buckets[MMC_HIST_BUCKETS]; /* not cumulative */
    uint64_t count;
    double sum_us;
} mmc_hist_t;

void mmc_hist_add(mmc_hist_t *h, double us);

typedef struct mmc_meta_stats {
    uint64_t objects;               /* committed objects */
    uint64_t object_bytes;          /* their sizes, once per object */
    uint64_t pending_puts;          /* allocated, not yet committed */
    uint64_t leases;                /* read leases held */
    uint64_t clients;               /* RPC connections */
    uint64_t members;               /* ranks with a registered segment */
    uint64_t requests[MMC_OP_MAX];  /* requests by opcode */
    uint64_t errors[MMC_OP_MAX];    /* requests or items that failed */
    uint64_t misses[MMC_OP_MAX];    /* NOT_FOUND of GET/EXIST/QUERY/REMOVE */
    mmc_hist_t latency[MMC_OP_MAX]; /* time in the handler */
    uint64_t puts_committed, puts_aborted, gets, removes;
    uint64_t puts_reclaimed;   /* of puts_aborted: put_timeout_ms passed */
    uint64_t leases_expired;   /* leases that ran out before release */
    uint64_t unlinked_objects; /* removed or replaced, space held by leases */
    uint64_t segs_dropped;     /* segments gone with their rank */
    uint64_t replicas_lost;    /* committed replicas gone with a segment */
    uint64_t leases_damaged;   /* released as expired: a replica was lost */
    uint64_t leases_refused;   /* GET items over the per-connection limit */
    uint64_t hosts;            /* host ids interned (used by a live rank) */
    uint64_t replies_lost;     /* PUT_ALLOC/GET replies not encoded or sent */
    uint64_t grants_undone;    /* puts aborted, leases released: reply lost */
    uint64_t expiry_reruns;    /* expiry runs that left work for the next */
    uint64_t evictions;        /* objects evicted */
    uint64_t evictions_put;    /* of evictions: for a put with no room */
    uint64_t evicted_bytes;    /* their sizes, once per object */
    uint64_t eviction_runs;    /* background eviction passes */
    uint64_t evict_skipped;    /* leased candidates passed over */
    uint64_t member_losses_closed;  /* registered ranks whose connection
                                       closed without UNREGISTER */
    uint64_t member_losses_timeout; /* ... closed for member_timeout_ms of
                                       silence */
    uint64_t conns_timed_out;       /* connections closed for silence, all */
} mmc_meta_stats_t;

void mmc_meta_get_stats(mmc_meta_t *meta, mmc_meta_stats_t *stats);

typedef struct mmc_meta_seg_info {
    uint32_t rank;
    uint32_t host_idx;
    const char *host_id;
    const char *name; /* the local service's name */
    uint8_t media;    /* mmc_media_t */
    uint64_t gva;
    uint64_t capacity;
    uint64_t used;
    uint64_t free;
    uint64_t largest_free;
    uint64_t replicas; /* replicas (committed and pending) placed here */
    uint64_t lru;      /* of replicas: eviction candidates (committed) */
} mmc_meta_seg_info_t;

void mmc_meta_foreach_seg(mmc_meta_t *meta,
                          void (*cb)(const mmc_meta_seg_info_t *seg, void *arg),
                          void *arg);

/* The committed object under key: MF_OK with *info_p and *leases_p (read
 * leases held on it), or MMC_ERR_NOT_FOUND. */
mmc_status_t mmc_meta_key_info(mmc_meta_t *meta, const char *key,
                               size_t key_len, mmc_obj_info_t *info_p,
                               uint32_t *leases_p);

/* ---- HTTP endpoint (meta_http.c), started and stopped on the loop
 * thread by mmc_meta_start/stop ---- */

typedef struct mmc_meta_http mmc_meta_http_t;

mf_status_t mmc_meta_http_start(mmc_meta_t *meta, struct event_base *base,
                                const char *addr, uint16_t port,
                                mmc_meta_http_t **http_p);
uint16_t mmc_meta_http_bound_port(const mmc_meta_http_t *http);
void mmc_meta_http_stop(mmc_meta_http_t *http);

/* The page a GET asks for. */
typedef enum mmc_meta_http_page {
    MMC_META_HTTP_NO_PAGE = 0, /* 404 */
    MMC_META_HTTP_HEALTH,
    MMC_META_HTTP_METRICS,
    MMC_META_HTTP_SEGMENTS,
    MMC_META_HTTP_KEY,
} mmc_meta_http_page_t;

typedef struct mmc_meta_http_target {
    mmc_meta_http_page_t page;
    bool json;      /* HEALTH: ?format=json or Accept: application/json */
    char *key;      /* KEY: the URL-decoded key (malloc'd, NUL-terminated) */
    size_t key_len; /* bytes of key */
} mmc_meta_http_target_t;

/*
 * What a GET asks for, from the path and query of its URI as evhttp split
 * them (either may be NULL) and its Accept header (NULL when absent); all
 * of it peer-controlled.  No sockets, no meta state.  Returns MF_OK with
 * *target set (free it with mmc_meta_http_target_free), MF_ERR_INVALID for
 * a /key/ path whose key does not decode to a valid key (1..255 bytes, no
 * NUL), or MF_ERR_NOMEM; *target is zeroed on error.
 */
mf_status_t mmc_meta_http_parse_target(const char *path, const char *query,
                                       const char *accept,
                                       mmc_meta_http_target_t *target);
void mmc_meta_http_target_free(mmc_meta_http_target_t *target);

/* Appends s[0..len) as a JSON string, quotes included: quote, backslash and
 * control bytes escaped, invalid UTF-8 replaced by U+FFFD. */
struct evbuffer;
void mmc_meta_http_json_str(struct evbuffer *b, const char *s, size_t len);

#endif
