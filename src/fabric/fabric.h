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
#include <pthread.h>
#include <stdatomic.h>

#define MF_FABRIC_VERSION  "0.1.0"
#define MF_FABRIC_GROUP    "mf/bm"
#define MF_FABRIC_TL_MAX   4
#define MF_FABRIC_DESC_MAX 4096
/*
 * The default base of the GVA window (host_base; the meta service's default
 * too).  32 TiB: far from where Linux puts executables, heaps and mmaps,
 * and above AddressSanitizer's shadow (which ends at 0x10007fff8000 on
 * x86_64), so ASan builds run with the default window too.
 *
 * ThreadSanitizer allows mappings only in its application ranges; on
 * x86_64 (gcc 12 and clang 14 runtimes) those are 0x1000-0x8000000000,
 * 0x550000000000-0x568000000000 (PIE executables and their brk heaps),
 * its own heap at 0x7b0000000000 and 0x7e8000000000-0x800000000000
 * (libraries, mmaps, stacks); its shadow and metadata take most of the
 * rest, 32 TiB included.  A TSan build puts the window at 64 GiB in the low
 * range, where nothing maps once executables are PIE and which later
 * runtimes keep as application memory: up to 448 GiB of room (see
 * MMC_META_DEFAULT_SEGMENT for the meta service's default window).
 */
#if MF_TSAN
#define MF_FABRIC_DEFAULT_BASE_HEX 0x1000000000
#else
#define MF_FABRIC_DEFAULT_BASE_HEX 0x200000000000
#endif
#define MF_FABRIC_DEFAULT_BASE     ((uint64_t)MF_FABRIC_DEFAULT_BASE_HEX)
#define MF_FABRIC_DEFAULT_BASE_STR MF_STRINGIFY(MF_FABRIC_DEFAULT_BASE_HEX)
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
    uint64_t gva;   /* first address (= window slot of the rank) */
    uint64_t size;  /* valid bytes */
    mf_tl_ep_t *ep; /* set while JOINED */
    mf_tl_rkey_t *rkey;
    void *addr; /* rkey->addr: mapped here, or NULL */
    /* control: under bm->lock */
    size_t tl; /* index of the transport in bm->ifaces */
    uint32_t pid;
    uint64_t incarnation;
    atomic_uint watch_seq; /* bumped by every watch event of the rank */
    /* written by every copy: on a line of its own, so that copies running
     * on several threads do not evict the fields above from each other */
    atomic_uint readers __attribute__((aligned(64)));
} __attribute__((aligned(64))) mf_fabric_seg_t;

typedef struct mf_fabric_region {
    uint64_t addr;
    uint64_t size;
    mf_tl_memh_t *memh[MF_FABRIC_TL_MAX];
} mf_fabric_region_t;

struct mf_bm {
    /* hot, read-only after create */
    uint64_t base;       /* host_base */
    uint64_t stride;     /* max_dram_per_rank */
    uint64_t window_end; /* base + world * stride */
    uint32_t rank;
    uint32_t world;
    mf_fabric_seg_t *segs; /* world entries */
    atomic_bool oor_warned;

    uint32_t id;
    mf_bm_config_t cfg;
    uint64_t local_size; /* local_dram_size */
    mf_mem_seg_t own;    /* own segment, mapped size page aligned */
    uint64_t incarnation;
    mf_workers_t *workers;

    /* transports: [0] is always shm (own segment, same-host peers) */
    size_t ntl;
    mf_tl_iface_t *ifaces[MF_FABRIC_TL_MAX];
    bool tl_selected[MF_FABRIC_TL_MAX]; /* used to reach peers */
    mf_tl_memh_t *own_memh[MF_FABRIC_TL_MAX];
    mf_tl_ep_t *self_ep;

    pthread_mutex_t lock; /* membership, regions, callbacks */
    atomic_bool joined;   /* written under lock */
    atomic_uint join_gen;
    mf_store_t *store;       /* the process's store client */
    mf_store_watch_t *watch; /* segment descriptors, while joined */
    char seg_prefix[64];     /* "mf/bm/<id>/seg/" */
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
    uint32_t gen;
    bool joined;        /* NOTIFY */
    mf_status_t reason; /* NOTIFY */
    size_t len;
    uint8_t data[];
} mf_fabric_ev_t;

/* This rank's host id: the host_id setting, else the detected one. */
static inline const char *mf_fabric_host_id(const mf_bm_t *bm)
{
    return bm->cfg.host_id[0] != '\0' ? bm->cfg.host_id : mf_host_id();
}

/* Whether rank has joined but no transport of this process reaches it (so
 * waiting for it to become reachable is pointless); false out of range. */
static inline bool mf_fabric_rank_unreachable(mf_bm_t *bm, uint32_t rank)
{
    return rank < bm->world &&
           atomic_load(&bm->segs[rank].state) == MF_FABRIC_SEG_UNREACHABLE;
}

/* ---- bm.c ---- */
/* Host of the config store the process bootstrapped from ("" before
 * mf_bm_init): tcp advertises the local address routed towards it. */
const char *mf_fabric_store_host(void);

/* ---- bm_config.c ---- */
extern const mf_cfg_table_t mf_fabric_cfg_table;
mf_status_t mf_fabric_config_check(const mf_bm_config_t *cfg);

/* ---- bm_seg.c: the store-free part of a pool ---- */

/* Validates params and the window; *len_p: the window length. */
mf_status_t mf_fabric_window_check(const mf_bm_config_t *cfg, uint32_t world,
                                   const mf_bm_create_params_t *params,
                                   uint64_t *len_p);
/* Creates a pool object whose window is already reserved: own segment,
 * transports, copy threads, event thread. */
mf_status_t mf_fabric_bm_alloc(uint32_t id, uint32_t rank, uint32_t world,
                               const mf_bm_config_t *cfg,
                               const mf_bm_create_params_t *params,
                               mf_bm_t **bm_p);
/* Undoes mf_fabric_bm_alloc and releases the window. */
void mf_fabric_bm_free(mf_bm_t *bm);

/* Packs this rank's segment descriptor (leaving: a tombstone). */
mf_status_t mf_fabric_desc_pack(mf_bm_t *bm, bool leaving, void **buf_p,
                                size_t *len_p);
/* Applies a peer's descriptor (bm->lock held). */
void mf_fabric_seg_apply_set_locked(mf_bm_t *bm, uint32_t rank,
                                    const void *value, size_t len);
/* Unmaps a peer (bm->lock held); notify: queue the rank callback. */
void mf_fabric_seg_leave_locked(mf_bm_t *bm, uint32_t rank, mf_status_t reason,
                                bool notify);
/* Queues an event for the event thread (takes ownership). */
void mf_fabric_ev_post(mf_bm_t *bm, mf_fabric_ev_t *ev);
mf_fabric_ev_t *mf_fabric_ev_new(mf_fabric_ev_type_t type, uint32_t rank,
                                 const void *data, size_t len);

#endif
