/*
 * Fabric internals: the BM object, its segment table and the helpers the
 * BM files share.  Not a public header.
 *
 * Segment table: one entry per rank of the world, allocated at create and
 * never moved.  An entry's state says whether copies may address it; the
 * hot path takes a read reference (one atomic increment) and checks the
 * state, and unmapping flips the state first and then waits for the readers
 * to drain, so a segment is never unmapped under a running copy.
 */
#ifndef MF_FABRIC_FABRIC_H
#define MF_FABRIC_FABRIC_H

#include "mem/mem.h"
#include "tl/tl.h"
#include "util/workers.h"
#include "util/config.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <memfabric/mf_bm.h>
#include <memfabric/mf_store.h>
#include <pthread.h>
#include <stdatomic.h>

#define MF_FABRIC_VERSION  "0.1.0"
#define MF_FABRIC_GROUP    "mf/pool"
#define MF_FABRIC_TL_MAX   4
#define MF_FABRIC_DESC_MAX 4096
/* Store keys of segment descriptors: "<prefix><rank>" for the host
 * segment, "<prefix>d<rank>" for the device segment. */
#define MF_FABRIC_DEV_KEY_MARK 'd'
/* The default base of the GVA window: see mem.h. */
#define MF_FABRIC_DEFAULT_BASE     MF_MEM_DEFAULT_BASE
#define MF_FABRIC_DEFAULT_BASE_STR MF_MEM_DEFAULT_BASE_STR
#define MF_FABRIC_VA_LIMIT         0x800000000000ull /* 47-bit user space */

typedef enum mf_fabric_seg_state {
    MF_FABRIC_SEG_NONE = 0,    /* never joined: out of range */
    MF_FABRIC_SEG_JOINED,      /* addressable */
    MF_FABRIC_SEG_CLOSING,     /* being unmapped: new copies refused */
    MF_FABRIC_SEG_LEFT,        /* left or lost: MF_ERR_PEER_LOST */
    MF_FABRIC_SEG_UNREACHABLE, /* joined, but no transport reaches it */
} mf_fabric_seg_state_t;

typedef struct mf_fabric_seg {
    /* hot: read by every copy */
    atomic_uint state;
    mf_mem_kind_t kind; /* of the window the entry belongs to */
    uint64_t gva;       /* first address (= window slot of the rank) */
    uint64_t size;      /* valid bytes */
    mf_tl_ep_t *ep;     /* set while JOINED */
    mf_tl_rkey_t *rkey;
    void *addr; /* rkey->addr: mapped here, or NULL */
    /* control: under pool->lock */
    size_t tl; /* index of the transport in pool->ifaces; SIZE_MAX for
                  the own segment, which needs none */
    uint32_t pid;
    uint64_t incarnation;
    atomic_uint watch_seq; /* bumped by every watch event of the rank */
    /* a host segment mapped here, registered for a device's DMA at the
     * first device copy that touches it: 0 not yet, 1 being registered,
     * 2 done (dma NULL: the registration failed; copies still work) */
    atomic_int dma_state;
    mf_mem_reg_t *dma;
    mf_mem_kind_t dma_kind;
    /* written by every copy: on a line of its own, so that copies running
     * on several threads do not evict the fields above from each other */
    atomic_uint readers __attribute__((aligned(64)));
} __attribute__((aligned(64))) mf_fabric_seg_t;

typedef struct mf_fabric_pool mf_fabric_pool_t;

typedef struct mf_fabric_region {
    uint64_t addr;
    uint64_t size;
    mf_tl_memh_t *memh[MF_FABRIC_TL_MAX];
    mf_mem_reg_t *dma; /* host memory registered for the device's DMA */
} mf_fabric_region_t;

/*
 * The device window: device segments (max_hbm_per_rank > 0), laid out as
 * the host window is, with a table of its own.  Its own segment exists
 * when local_hbm_size > 0; a process whose cuda kind is not ready reserves
 * the window as plain address space and can own no device segment.
 */
typedef struct mf_fabric_dev {
    uint64_t base; /* device_base */
    uint64_t stride;
    uint64_t end;          /* base + world * stride; == base: no window */
    mf_mem_kind_t kind;    /* of the segments */
    bool kind_ready;       /* the kind reserved the window (else: host) */
    mf_fabric_seg_t *segs; /* world entries */
    uint64_t local_size;
    mf_mem_seg_t own;       /* addr NULL: none */
    mf_mem_reg_t *host_dma; /* the host segment registered for DMA */
    mf_tl_memh_t *own_memh[MF_FABRIC_TL_MAX];
} mf_fabric_dev_t;

struct mf_fabric_pool {
    /* hot, read-only after create */
    uint64_t base;       /* host_base */
    uint64_t stride;     /* max_dram_per_rank */
    uint64_t window_end; /* base + world * stride */
    uint32_t rank;
    uint32_t world;
    mf_fabric_seg_t *segs; /* world entries */
    mf_fabric_dev_t dev;
    atomic_bool oor_warned;

    uint32_t id;
    mf_bm_config_t cfg;
    char route_host[256]; /* the config store's host: transports listening
                             on all addresses advertise the one routed
                             towards it ("": loopback) */
    uint64_t local_size;  /* local_dram_size */
    mf_mem_seg_t own;     /* own segment, mapped size page aligned */
    uint64_t incarnation;
    mf_workers_t *workers;

    /* transports opened (auto: all that open; else the one named), in
     * registry order; tl_order lists them best first for a peer */
    size_t ntl;
    mf_tl_iface_t *ifaces[MF_FABRIC_TL_MAX];
    mf_tl_caps_t tl_caps[MF_FABRIC_TL_MAX];
    size_t tl_order[MF_FABRIC_TL_MAX];
    mf_tl_memh_t *own_memh[MF_FABRIC_TL_MAX];

    pthread_mutex_t lock;    /* membership, regions, callbacks */
    pthread_cond_t seg_cond; /* broadcast under lock when a segment's
                                state or pool->joined changed */
    atomic_bool joined;      /* written under lock */
    atomic_uint join_gen;
    mf_store_t *store;       /* the process's store client */
    mf_store_watch_t *watch; /* segment descriptors, while joined */
    char seg_prefix[64];     /* "mf/pool/<id>/seg/" */
    mf_bm_rank_cb rank_cb;
    void *rank_cb_arg;
    mf_vec_t regions; /* mf_fabric_region_t */

    /* event thread: applies store events in order */
    pthread_t ev_thread;
    bool ev_started;
    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;
    mf_list_t ev_queue;
    bool ev_stop;

    mf_list_t elem; /* in the process's list of pools */
    /* what mf_fabric_uninit calls instead of mf_fabric_destroy for a pool
     * an API family wraps (SHM's regions): the family tears its object
     * down, the pool with it */
    void (*uninit_cb)(void *arg);
    void *uninit_arg;
};

typedef enum mf_fabric_ev_type {
    MF_FABRIC_EV_SEG_SET = 1,
    MF_FABRIC_EV_SEG_REMOVE,
    MF_FABRIC_EV_RANK_LOST,
    MF_FABRIC_EV_NOTIFY, /* deliver the rank callback */
} mf_fabric_ev_type_t;

typedef struct mf_fabric_ev {
    mf_list_t elem;
    mf_fabric_ev_type_t type;
    uint32_t rank;
    bool device; /* SEG_SET, SEG_REMOVE: of the device segment */
    uint32_t gen;
    bool joined;        /* NOTIFY */
    mf_status_t reason; /* NOTIFY */
    size_t len;
    uint8_t data[];
} mf_fabric_ev_t;

/* This rank's host id: the host_id setting, else the detected one. */
static inline const char *mf_fabric_host_id(const mf_fabric_pool_t *pool)
{
    return pool->cfg.host_id[0] != '\0' ? pool->cfg.host_id : mf_host_id();
}

/* Wakes mf_bm_rank_wait callers: a segment's state or pool->joined changed
 * (pool->lock held). */
static inline void mf_fabric_seg_changed_locked(mf_fabric_pool_t *pool)
{
    pthread_cond_broadcast(&pool->seg_cond);
}

/* ---- boot.c: the process (store, rank) and the life of pools ---- */

/* Host of the config store the process bootstrapped from ("" before
 * mf_fabric_init): tcp advertises the local address routed towards it. */
const char *mf_fabric_store_host(void);
/* Whether mf_init() ran (and mf_uninit() did not undo it). */
bool mf_fabric_inited(void);
mf_status_t mf_fabric_init(const char *store_url, uint32_t world_size,
                           uint32_t rank, const mf_bm_config_t *cfg);
void mf_fabric_uninit(void);
mf_status_t mf_fabric_rank_id(uint32_t *rank_p);
uint32_t mf_fabric_world_size(void);
/* The bootstrap of the process: its store client (valid until
 * mf_fabric_uninit), rank, world and settings; MF_ERR_STATE before
 * mf_fabric_init. */
mf_status_t mf_fabric_process(mf_store_t **store_p, uint32_t *rank_p,
                              uint32_t *world_p, mf_bm_config_t *cfg);
void mf_fabric_create_params_init(mf_bm_create_params_t *params);
mf_status_t mf_fabric_create(uint32_t id, const mf_bm_create_params_t *params,
                             mf_fabric_pool_t **pool_p);
/* mf_fabric_create with its store keys under "mf/<space>/<id>/" (BM:
 * "pool") and windows at host_base and device_base (0: the config's). */
mf_status_t mf_fabric_create_at(const char *space, uint32_t id,
                                const mf_bm_create_params_t *params,
                                uint64_t host_base, uint64_t device_base,
                                mf_fabric_pool_t **pool_p);
mf_status_t mf_fabric_join(mf_fabric_pool_t *pool);
mf_status_t mf_fabric_leave(mf_fabric_pool_t *pool);
void mf_fabric_destroy(mf_fabric_pool_t *pool);

/* ---- config.c: the settings of pools (the mf_bm_config_t API) ---- */
extern const mf_cfg_table_t mf_fabric_cfg_table;
/* The config store client's settings of a pool of cfg: its timeouts and
 * its TLS settings. */
void mf_fabric_store_config(const mf_bm_config_t *cfg,
                            mf_store_config_t *store_cfg);
mf_status_t mf_fabric_config_check(const mf_bm_config_t *cfg);
void mf_fabric_config_init(mf_bm_config_t *cfg);
mf_status_t mf_fabric_config_load_env(mf_bm_config_t *cfg,
                                      const char *env_prefix);
mf_status_t mf_fabric_config_load(mf_bm_config_t *cfg, const char *path);
mf_status_t mf_fabric_config_set(mf_bm_config_t *cfg, const char *key,
                                 const char *value);
mf_status_t mf_fabric_config_get(const mf_bm_config_t *cfg, const char *key,
                                 char *buf, size_t len);
void mf_fabric_config_help(FILE *out);
void mf_fabric_config_help_as(FILE *out, const char *key_prefix,
                              const char *env_prefix);

/* ---- copy.c: the copy engine ---- */
mf_status_t mf_fabric_copy(mf_fabric_pool_t *pool, uint64_t src, uint64_t dst,
                           size_t size, mf_copy_dir_t dir);
mf_status_t mf_fabric_copy_batch(mf_fabric_pool_t *pool,
                                 const mf_copy_piece_t *pieces, size_t count,
                                 mf_copy_dir_t dir, mf_status_t *results);
mf_status_t mf_fabric_copy_async(mf_fabric_pool_t *pool, uint64_t src,
                                 uint64_t dst, size_t size, mf_copy_dir_t dir,
                                 mf_bm_req_t **req_p);
mf_status_t mf_fabric_copy_batch_async(mf_fabric_pool_t *pool,
                                       const mf_copy_piece_t *pieces,
                                       size_t count, mf_copy_dir_t dir,
                                       mf_bm_req_t **req_p);
mf_status_t mf_fabric_req_wait(mf_bm_req_t *req, int timeout_ms);
mf_status_t mf_fabric_req_test(mf_bm_req_t *req);

/* ---- segtab.c: the store-free part of a pool ---- */
void *mf_fabric_gva_of_rank(mf_fabric_pool_t *pool, uint32_t rank,
                            mf_mem_type_t type);
mf_status_t mf_fabric_rank_of_gva(mf_fabric_pool_t *pool, uint64_t gva,
                                  uint32_t *rank_p);
bool mf_fabric_rank_joined(mf_fabric_pool_t *pool, uint32_t rank);
mf_status_t mf_fabric_rank_wait(mf_fabric_pool_t *pool, uint32_t rank,
                                int timeout_ms);
/* mf_fabric_rank_wait for rank's host or device segment. */
mf_status_t mf_fabric_seg_wait(mf_fabric_pool_t *pool, uint32_t rank,
                               bool device, int timeout_ms);
uint64_t mf_fabric_local_size(mf_fabric_pool_t *pool, mf_mem_type_t type);
void mf_fabric_set_rank_cb(mf_fabric_pool_t *pool, mf_bm_rank_cb cb, void *arg);
mf_status_t mf_fabric_register(mf_fabric_pool_t *pool, void *addr, size_t size);
mf_status_t mf_fabric_unregister(mf_fabric_pool_t *pool, void *addr);
/* Undoes the registrations of a region (pool->lock held or no thread
 * left). */
void mf_fabric_region_release(mf_fabric_pool_t *pool,
                              mf_fabric_region_t *region);

/* Validates params and the windows; *len_p: the host window's length,
 * *dev_len_p: the device window's (0: none). */
mf_status_t mf_fabric_window_check(const mf_bm_config_t *cfg, uint32_t world,
                                   const mf_bm_create_params_t *params,
                                   uint64_t *len_p, uint64_t *dev_len_p);
/* Reserves the windows (the device one by the device kind when it is
 * ready, else as plain address space): MF_OK, or the first failure with
 * why (why_len bytes) naming the range. */
mf_status_t mf_fabric_windows_reserve(const mf_bm_config_t *cfg, uint64_t len,
                                      uint64_t dev_len, char *why,
                                      size_t why_len);
void mf_fabric_windows_unreserve(const mf_bm_config_t *cfg, uint64_t len,
                                 uint64_t dev_len);
/* The device window's table and this rank's device segment (window.c),
 * for mf_fabric_pool_alloc/free. */
void mf_fabric_table_init(mf_fabric_seg_t *segs, uint32_t world,
                          mf_mem_kind_t kind, uint64_t base, uint64_t stride);
mf_status_t mf_fabric_dev_alloc(mf_fabric_pool_t *pool,
                                const mf_bm_config_t *cfg,
                                const mf_bm_create_params_t *params);
mf_status_t mf_fabric_dev_own_create(mf_fabric_pool_t *pool, unsigned flags);
void mf_fabric_dev_own_destroy(mf_fabric_pool_t *pool);

/* The table entry of rank in the window of kind (host or device). */
static inline mf_fabric_seg_t *mf_fabric_seg_of(mf_fabric_pool_t *pool,
                                                uint32_t rank, bool device)
{
    return device ? &pool->dev.segs[rank] : &pool->segs[rank];
}
/* Creates a pool object whose window is already reserved: own segment,
 * transports, copy threads, event thread. */
mf_status_t mf_fabric_pool_alloc(uint32_t id, uint32_t rank, uint32_t world,
                                 const mf_bm_config_t *cfg,
                                 const mf_bm_create_params_t *params,
                                 const char *route_host,
                                 mf_fabric_pool_t **pool_p);
/* Undoes mf_fabric_pool_alloc and releases the window. */
void mf_fabric_pool_free(mf_fabric_pool_t *pool);

/* Packs the descriptor of this rank's host (device: device) segment
 * (leaving: a tombstone). */
mf_status_t mf_fabric_desc_pack(mf_fabric_pool_t *pool, bool device,
                                bool leaving, void **buf_p, size_t *len_p);
/* Applies a peer's descriptor of its host or device segment (pool->lock
 * held). */
void mf_fabric_seg_apply_set_locked(mf_fabric_pool_t *pool, uint32_t rank,
                                    bool device, const void *value, size_t len);
/* Unmaps a peer's host segment and its device segment (pool->lock held);
 * notify: queue the rank callback. */
void mf_fabric_seg_leave_locked(mf_fabric_pool_t *pool, uint32_t rank,
                                mf_status_t reason, bool notify);
/* Registers a mapped host segment for the DMA of device kind (once; the
 * caller holds the segment), and undoes it before an unmap. */
void mf_fabric_seg_dma_pin(mf_fabric_seg_t *seg, mf_mem_kind_t kind);
void mf_fabric_seg_dma_drop(mf_fabric_seg_t *seg);

/* Unmaps a peer's device segment only (pool->lock held). */
void mf_fabric_dseg_leave_locked(mf_fabric_pool_t *pool, uint32_t rank);
/* Queues an event for the event thread (takes ownership). */
void mf_fabric_ev_post(mf_fabric_pool_t *pool, mf_fabric_ev_t *ev);
mf_fabric_ev_t *mf_fabric_ev_new(mf_fabric_ev_type_t type, uint32_t rank,
                                 const void *data, size_t len);

#endif
