/*
 * The settings of the meta service: the mmc-meta.conf table
 * (meta_config.c), its files, MMC_META_<KEY> environment variables, help
 * and dump, and the checks of the whole.
 */
#ifndef MMC_CACHE_META_META_CONFIG_H
#define MMC_CACHE_META_META_CONFIG_H

#include "net/tls.h"

#include "util/misc.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mmc_meta_config {
    char addr[64];             /* address the three servers bind */
    uint32_t port;             /* RPC port; 0 = a free one */
    uint32_t store_port;       /* config store port; 0 = a free one */
    uint32_t http_port;        /* HTTP port; 0 = a free one */
    bool http_enable;          /* serve HTTP at all */
    uint32_t pool_id;          /* MemFabric BM id of the pool */
    uint32_t max_ranks;        /* ranks of the pool (BM world size) */
    uint64_t max_segment_size; /* largest segment a rank may contribute */
    uint64_t host_base;        /* GVA window base of host segments */
    /* largest HBM segment a rank may contribute, the device GVA stride
     * (0: no device window, no HBM), and the base of that window */
    uint64_t max_hbm_segment_size;
    uint64_t device_base;
    uint64_t alloc_align;       /* alignment of replicas in segments */
    uint32_t lease_ms;          /* read lease duration */
    uint32_t put_timeout_ms;    /* an uncommitted put is aborted after */
    uint32_t max_batch;         /* keys per request (<= MMC_BATCH_MAX) */
    uint32_t max_clients;       /* connections to the RPC server */
    uint32_t evict_high_pct;    /* background eviction above this % */
    uint32_t evict_low_pct;     /* ... down to this % (< evict_high_pct) */
    uint32_t evict_max_per_put; /* objects a put item may evict */
    char evict_policy[16];      /* lru, s3fifo */
    uint32_t evict_small_pct;   /* s3fifo: probation share of a segment */
    uint32_t member_timeout_ms; /* a silent connection is closed; 0 never */
    uint32_t repair_max_active; /* re-replications at once; 0: none */
    uint64_t repair_rate;       /* bytes per second they copy at most */
    uint32_t repair_timeout_ms; /* a copier silent this long: given up */
    uint32_t repair_delay_ms;   /* none this long after the start */
    char etcd_endpoints[512];   /* "": no election; else http://host:port,
                                   comma-separated */
    char ha_key[256];           /* the leader key ("": per pool_id) */
    uint32_t ha_ttl_ms;         /* lease of the leader */
    char advertise[256];        /* what the leader key says ("": tcp://
                                   addr:port) */
    uint32_t idle_timeout_ms;   /* any connection, on every port, silent
                                   this long is closed */
    char log_level[16];         /* error, warn, info, debug, trace */
    char trace[256];            /* the tracer: "", "log" or a file */
    char http_addr[64];         /* HTTP's bind address ("": addr) */
    bool http_tls;              /* with tls.enable: https */
    mf_tls_config_t tls;        /* TLS on the RPC, store and HTTP ports */
} mmc_meta_config_t;

/*
 * Default max_segment_size: with the default 64 ranks a 16 TiB window at
 * MF_FABRIC_DEFAULT_BASE.  A ThreadSanitizer build has 448 GiB of room
 * there (see src/fabric/core/core.h) and defaults to 4 GiB: a 256 GiB
 * window.
 */
#if MF_TSAN
#define MMC_META_DEFAULT_SEGMENT "4G"
#else
#define MMC_META_DEFAULT_SEGMENT "256G"
#endif

/* What max_hbm_segment_size and device_base are multiples of: the
 * allocation granularity of device memory that MemFabric assumes. */
#define MMC_META_HBM_ALIGN (2ull << 20)

void mmc_meta_config_init(mmc_meta_config_t *cfg);
/* MF_ERR_CONFIG (logged) for an unknown key or a bad value. */
mf_status_t mmc_meta_config_set(mmc_meta_config_t *cfg, const char *key,
                                const char *value);
/* "key = value" lines; errors name file and line. */
mf_status_t mmc_meta_config_load_file(mmc_meta_config_t *cfg, const char *path);
/* Checks every value and the combination of them (the GVA window
 * host_base + max_ranks * max_segment_size must end below 2^47, and so
 * must the device window device_base + max_ranks * max_hbm_segment_size,
 * apart from the host window, when max_hbm_segment_size is not 0;
 * evict_low_pct < evict_high_pct); run once
 * every source is applied.  mmc_meta_start() runs it too.  MF_ERR_CONFIG
 * (logged) or MF_OK. */
mf_status_t mmc_meta_config_check(const mmc_meta_config_t *cfg);
/* MMC_META_<KEY> environment variables. */
mf_status_t mmc_meta_config_load_env(mmc_meta_config_t *cfg);
void mmc_meta_config_print_help(FILE *out);
void mmc_meta_config_dump(const mmc_meta_config_t *cfg, FILE *out);

#endif
