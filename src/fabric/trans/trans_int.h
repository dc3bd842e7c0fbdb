/*
 * TRANS internals, shared by trans.c (instances, buffers, peers) and
 * trans_copy.c (transfers).  Not a public header.
 *
 * Store keys of an instance `id`:
 *   rank group "mf/trans/<id>"   world 1: whoever holds rank 0 owns the id
 *                                (taken atomically, held while its session
 *                                lives)
 *   "mf/trans/<id>/addr"         ephemeral: the packed address of every
 *                                transport it opened; its removal is the
 *                                instance's death
 *   "mf/trans/<id>/mem"          ephemeral: every buffer it registered,
 *                                with one remote key per transport,
 *                                rewritten at each change
 *
 * Locks, never one held while a store call runs that could wait for the
 * store's watch thread (which takes peers_lock):
 *   reg_lock    own buffers and the "mem" key (a store set under it is
 *               fine: the watch thread never takes it)
 *   tl_lock     control calls of the transports (ep_create/destroy,
 *               rkey_unpack/release, mem_reg/dereg), which tl.h wants
 *               serialized per interface
 *   peers_lock  the peer map and each peer's table pointer; may be taken
 *               under tl_lock, never the other way
 */
#ifndef MF_FABRIC_TRANS_TRANS_INT_H
#define MF_FABRIC_TRANS_TRANS_INT_H

#include "fabric/core/core.h"
#include "fabric/core/waiter.h"
#include "util/codec.h"

#include <memfabric/mf_trans.h>

#define MF_TRANS_PREFIX      "mf/trans/"
#define MF_TRANS_MAGIC       0x6d667472u /* "mftr" */
#define MF_TRANS_VERSION     1u
#define MF_TRANS_MAX_REGIONS 65536u

/* One of our buffers. */
typedef struct mf_trans_region {
    uint64_t addr;
    uint64_t size;
    mf_mem_kind_t kind;
    mf_tl_memh_t *memh[MF_FABRIC_TL_MAX]; /* NULL: that transport has none */
} mf_trans_region_t;

/* A peer's buffer as its "mem" key says. */
typedef struct mf_trans_rregion {
    uint64_t addr;
    uint64_t size;
    mf_tl_rkey_t *rkey; /* for the peer's transport */
} mf_trans_rregion_t;

/* A peer's buffers by address, shared by the transfers that use them. */
typedef struct mf_trans_rtab {
    atomic_uint refs;
    size_t tl; /* the transport of its keys (trans->ifaces) */
    size_t n;
    mf_trans_rregion_t r[]; /* sorted by addr, disjoint */
} mf_trans_rtab_t;

typedef struct mf_trans_peer {
    char id[MF_TRANS_ID_MAX];
    atomic_uint refs;     /* the map's, and each transfer's */
    atomic_bool lost;     /* its addr key went: it died or left */
    atomic_bool stale;    /* its mem key changed since tab was read */
    size_t tl;            /* index in trans->ifaces */
    mf_tl_ep_t *ep;       /* under tl_lock for create/destroy */
    mf_trans_rtab_t *tab; /* under peers_lock; NULL: never read */
    mf_list_t gone;       /* in trans->graveyard once forgotten */
} mf_trans_peer_t;

struct mf_trans {
    char id[MF_TRANS_ID_MAX];
    char group[MF_TRANS_ID_MAX + 16];
    mf_bm_config_t cfg;
    mf_store_t *store;
    mf_store_watch_t *watch;
    mf_workers_t *workers;
    size_t ntl;
    mf_tl_iface_t *ifaces[MF_FABRIC_TL_MAX];
    mf_tl_caps_t caps[MF_FABRIC_TL_MAX];

    pthread_mutex_t reg_lock;
    mf_vec_t regions; /* mf_trans_region_t, under reg_lock */

    pthread_mutex_t tl_lock;
    pthread_mutex_t peers_lock;
    mf_hmap_t peers; /* id -> mf_trans_peer_t, live ones */
    mf_hmap_t lost;  /* ids of peers known gone (no value), bounded */
    /* peers forgotten by the store's watch thread, whose map reference
     * a caller's thread drops (the endpoint's teardown waits for the
     * transport's threads: not on the store's thread) */
    mf_list_t graveyard;
    atomic_uint reqs; /* transfers not yet finished (destroy checks) */
};

/* ---- trans.c ---- */

/* The peer named id with a reference (mf_trans_peer_put), connected:
 * MF_ERR_NOT_FOUND if no such instance lives, MF_ERR_UNREACHABLE if no
 * transport of ours reaches it. */
mf_status_t mf_trans_peer_get(mf_trans_t *trans, const char *id,
                              mf_trans_peer_t **peer_p);
void mf_trans_peer_put(mf_trans_t *trans, mf_trans_peer_t *peer);
/* The peer's buffer table with a reference (mf_trans_rtab_put), read
 * again from the store first when fresh is set or the peer's buffers
 * changed since. */
mf_status_t mf_trans_peer_tab(mf_trans_t *trans, mf_trans_peer_t *peer,
                              bool fresh, mf_trans_rtab_t **tab_p);
void mf_trans_rtab_put(mf_trans_t *trans, mf_trans_rtab_t *tab);
/* The buffer of tab holding [addr, addr + size), or NULL. */
const mf_trans_rregion_t *mf_trans_rtab_find(const mf_trans_rtab_t *tab,
                                             uint64_t addr, uint64_t size);

#endif
