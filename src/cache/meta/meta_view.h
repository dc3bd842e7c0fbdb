/*
 * The read-only view of the meta service: its counters, latency
 * histograms, segments and objects as readers see them, and the table of
 * calls (mmc_meta_view_t) through which a reader asks, so that a reader
 * such as the HTTP endpoint depends on this header only, not on the
 * service.  The histograms live in meta_view.c.
 */
#ifndef MMC_CACHE_META_META_VIEW_H
#define MMC_CACHE_META_META_VIEW_H

#include "cache/proto/proto.h"

#include <memcache/mmc.h>
#include <stdint.h>

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
    uint64_t records_sent;     /* RECORD batches sent to holders */
    uint64_t replies_held;     /* replies that waited for holders' acks */
    uint64_t reads_deferred;   /* reads that waited for loads from SSD */
    uint64_t puts_deferred;    /* puts that waited for demotions */
    uint64_t restored;         /* objects rebuilt from holders' records */
    uint64_t restored_replicas;
    uint64_t restore_refused;  /* record entries refused (stale, taken) */
    uint64_t holders_restored; /* holders that brought a record back */
    uint64_t under_replicated; /* objects below their replica count now */
    uint64_t repairs_running;
    uint64_t repairs_started, repairs_done, repairs_failed;
    /* the SSD tier: objects demoted to SSD and loaded back (started,
     * done, failed), reads that waited for a load, moves sent */
    uint64_t demotions_started, demotions_done, demotions_failed;
    uint64_t loads_started, loads_done, loads_failed;
    uint64_t evictions_media[3];   /* evicted (deleted) by media */
    uint64_t expiry_reruns;        /* expiry runs that left work for the next */
    uint64_t evictions;            /* objects evicted */
    uint64_t evictions_put;        /* of evictions: for a put with no room */
    uint64_t evicted_bytes;        /* their sizes, once per object */
    uint64_t eviction_runs;        /* background eviction passes */
    uint64_t evict_skipped;        /* leased candidates passed over */
    uint64_t evict_promoted;       /* s3fifo: read on probation, kept */
    uint64_t evict_ghost_hits;     /* s3fifo: put again soon after eviction */
    uint64_t member_losses_closed; /* registered ranks whose connection
                                      closed without UNREGISTER */
    uint64_t member_losses_timeout; /* ... closed for member_timeout_ms of
                                       silence */
    uint64_t conns_timed_out;       /* connections closed for silence, all */
    bool leader;                    /* leads through etcd (else runs alone) */
    bool follower; /* one of several, waiting to lead: nothing else set but
                      leader_url, term and uptime_ms */
    char leader_url[256];    /* follower: what the leader advertises ("":
                                none seen) */
    int64_t term;            /* the pool's leaders so far (etcd), 0: alone */
    int64_t leader_revision; /* at which it took the leader key */
    uint64_t uptime_ms;      /* since it started serving */
    uint64_t rebuild_ms;     /* from the start to the last holder's record
                                restored (0: none restored) */
} mmc_meta_stats_t;

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

typedef void (*mmc_meta_seg_fn)(const mmc_meta_seg_info_t *seg, void *arg);

/*
 * What the meta service shows of itself to readers (the HTTP endpoint),
 * called on the loop thread only.  key_info: the committed object under
 * key, MF_OK with *info_p (info_size set by the caller) and *leases_p
 * (read leases held on it), or MMC_ERR_NOT_FOUND.
 */
typedef struct mmc_meta_view {
    void *ctx;
    void (*get_stats)(void *ctx, mmc_meta_stats_t *stats);
    void (*foreach_seg)(void *ctx, mmc_meta_seg_fn cb, void *arg);
    mmc_status_t (*key_info)(void *ctx, const char *key, size_t key_len,
                             mmc_obj_info_t *info_p, uint32_t *leases_p);
} mmc_meta_view_t;

#endif
