/*
 * BM pools without the store: the segment tables (host and device
 * windows), this rank's segments and transports, peer segments mapped and
 * unmapped from their descriptors, and the event thread that applies store
 * events in order.  window.c reserves the windows; query.c reads the
 * tables.
 *
 * Invariants: pool->lock serializes every change of the tables; an entry
 * leaves JOINED (to CLOSING) before its mapping goes away, and the mapping
 * goes only when no copy holds it; this rank's own entries are JOINED from
 * create to destroy.  A peer's descriptor is trusted for nothing: its
 * address must be the rank's window slot and its size must fit the stride.
 */
#include "fabric/core/core.h"
#include "fabric/core/desc.h"

#include "util/codec.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- events */

mf_fabric_ev_t *mf_fabric_ev_new(mf_fabric_ev_type_t type, uint32_t rank,
                                 const void *data, size_t len)
{
    mf_fabric_ev_t *ev = malloc(sizeof(*ev) + len);

    if (ev == NULL) {
        mf_error("mf-bm: cannot allocate an event of %zu bytes", len);
        return NULL;
    }
    mf_list_init(&ev->elem);
    ev->type = type;
    ev->rank = rank;
    ev->device = false;
    ev->gen = 0;
    ev->joined = false;
    ev->reason = MF_OK;
    ev->len = len;
    if (len > 0) {
        memcpy(ev->data, data, len);
    }
    return ev;
}

void mf_fabric_ev_post(mf_fabric_pool_t *pool, mf_fabric_ev_t *ev)
{
    pthread_mutex_lock(&pool->ev_lock);
    mf_list_push_back(&pool->ev_queue, &ev->elem);
    pthread_cond_signal(&pool->ev_cond);
    pthread_mutex_unlock(&pool->ev_lock);
}

static void mf_fabric_notify(mf_fabric_pool_t *pool, uint32_t rank, bool joined,
                             mf_status_t reason)
{
    mf_fabric_ev_t *ev = mf_fabric_ev_new(MF_FABRIC_EV_NOTIFY, rank, NULL, 0);

    if (ev != NULL) {
        ev->joined = joined;
        ev->reason = reason;
        mf_fabric_ev_post(pool, ev);
    }
}

static void mf_fabric_ev_handle(mf_fabric_pool_t *pool, mf_fabric_ev_t *ev)
{
    mf_bm_rank_cb cb;
    void *arg;
    bool current;

    pthread_mutex_lock(&pool->lock);
    current =
        atomic_load(&pool->joined) && ev->gen == atomic_load(&pool->join_gen);
    switch (ev->type) {
    case MF_FABRIC_EV_SEG_SET:
        if (current) {
            mf_fabric_seg_apply_set_locked(pool, ev->rank, ev->device, ev->data,
                                           ev->len);
        }
        break;
    case MF_FABRIC_EV_SEG_REMOVE:
        if (current && ev->device) {
            mf_fabric_dseg_leave_locked(pool, ev->rank);
        } else if (current) {
            mf_fabric_seg_leave_locked(pool, ev->rank, MF_ERR_PEER_LOST, true);
        }
        break;
    case MF_FABRIC_EV_RANK_LOST:
        mf_fabric_seg_leave_locked(pool, ev->rank, MF_ERR_PEER_LOST, true);
        break;
    case MF_FABRIC_EV_NOTIFY:
        cb = pool->rank_cb;
        arg = pool->rank_cb_arg;
        pthread_mutex_unlock(&pool->lock);
        if (cb != NULL) {
            cb((mf_bm_t *)pool, ev->rank, ev->joined, ev->reason, arg);
        }
        return;
    }
    pthread_mutex_unlock(&pool->lock);
}

static void *mf_fabric_ev_main(void *arg)
{
    mf_fabric_pool_t *pool = arg;
    mf_list_t *elem;

    pthread_mutex_lock(&pool->ev_lock);
    for (;;) {
        elem = mf_list_pop_front(&pool->ev_queue);
        if (elem == NULL) {
            if (pool->ev_stop) {
                break;
            }
            pthread_cond_wait(&pool->ev_cond, &pool->ev_lock);
            continue;
        }
        pthread_mutex_unlock(&pool->ev_lock);
        mf_fabric_ev_handle(pool, mf_container_of(elem, mf_fabric_ev_t, elem));
        free(mf_container_of(elem, mf_fabric_ev_t, elem));
        pthread_mutex_lock(&pool->ev_lock);
    }
    pthread_mutex_unlock(&pool->ev_lock);
    return NULL;
}

/* ---------------------------------------------------------- descriptors */

mf_status_t mf_fabric_desc_pack(mf_fabric_pool_t *pool, bool device,
                                bool leaving, void **buf_p, size_t *len_p)
{
    uint8_t blobs[MF_FABRIC_TL_MAX][2][MF_FABRIC_BLOB_MAX];
    const mf_mem_seg_t *own = device ? &pool->dev.own : &pool->own;
    mf_tl_memh_t *const *memhs = device ? pool->dev.own_memh : pool->own_memh;
    mf_fabric_desc_t desc;
    mf_status_t status;
    mf_tl_iface_t *iface;
    size_t i;
    mf_wbuf_t w;

    memset(&desc, 0, sizeof(desc));
    desc.leaving = leaving;
    desc.rank = pool->rank;
    desc.gva = (uint64_t)(uintptr_t)own->addr;
    desc.size = device ? pool->dev.local_size : pool->local_size;
    desc.map_size = own->size;
    desc.incarnation = pool->incarnation;
    desc.pid = (uint32_t)getpid();
    mf_strlcpy(desc.host_id, mf_fabric_host_id(pool), sizeof(desc.host_id));
    /* the transports that registered the segment (a device segment: those
     * that move device memory) */
    for (i = 0; i < pool->ntl; i++) {
        mf_fabric_desc_tl_t *tl = &desc.tls[desc.ntl];

        if (memhs[i] == NULL) {
            continue;
        }
        desc.ntl++;
        iface = pool->ifaces[i];
        mf_strlcpy(tl->name, iface->ops->name, sizeof(tl->name));
        status = iface->ops->iface_addr_pack(iface, blobs[i][0],
                                             MF_FABRIC_BLOB_MAX, &tl->addr_len);
        if (status != MF_OK) {
            mf_error("mf-bm: %s: cannot pack the address: %s", iface->ops->name,
                     mf_status_name(status));
            return status;
        }
        status = iface->ops->rkey_pack(iface, memhs[i], blobs[i][1],
                                       MF_FABRIC_BLOB_MAX, &tl->rkey_len);
        if (status != MF_OK) {
            mf_error("mf-bm: %s: cannot pack the remote key: %s",
                     iface->ops->name, mf_status_name(status));
            return status;
        }
        tl->addr = blobs[i][0];
        tl->rkey = blobs[i][1];
    }
    mf_wbuf_init(&w);
    mf_fabric_desc_encode(&desc, &w);
    status = mf_wbuf_status(&w);
    if (status != MF_OK) {
        mf_error("mf-bm: cannot encode the segment descriptor");
        mf_wbuf_free(&w);
        return status;
    }
    *buf_p = w.data;
    *len_p = w.len;
    return MF_OK;
}

/* Reaches the peer through the best of our transports that reaches it
 * (pool->tl_order: see mf_fabric_tl_rank) and moves its memory kind. */
static mf_status_t mf_fabric_seg_connect(mf_fabric_pool_t *pool,
                                         mf_fabric_seg_t *seg,
                                         const mf_fabric_desc_t *desc)
{
    mf_status_t status = MF_ERR_UNREACHABLE;
    const mf_fabric_desc_tl_t *tl;
    mf_tl_iface_t *iface;
    mf_tl_rkey_t *rkey;
    mf_tl_ep_t *ep;
    uint32_t k;
    size_t n, i;

    for (n = 0; n < pool->ntl; n++) {
        i = pool->tl_order[n];
        iface = pool->ifaces[i];
        if (!(pool->tl_caps[i].mem_kinds & MF_TL_MEM_KIND(seg->kind))) {
            continue;
        }
        for (k = 0; k < desc->ntl; k++) {
            tl = &desc->tls[k];
            if (strcmp(iface->ops->name, tl->name) != 0 ||
                !iface->ops->iface_is_reachable(iface, tl->addr,
                                                tl->addr_len)) {
                continue;
            }
            status = iface->ops->ep_create(iface, tl->addr, tl->addr_len, &ep);
            if (status != MF_OK) {
                continue;
            }
            status = iface->ops->rkey_unpack(iface, tl->rkey, tl->rkey_len,
                                             seg->gva, desc->map_size, &rkey);
            if (status != MF_OK) {
                iface->ops->ep_destroy(ep);
                continue;
            }
            seg->ep = ep;
            seg->rkey = rkey;
            seg->addr = rkey->addr;
            seg->tl = i;
            return MF_OK;
        }
    }
    return status;
}

static bool mf_fabric_seg_unmap_locked(mf_fabric_pool_t *pool,
                                       mf_fabric_seg_t *seg);

void mf_fabric_seg_apply_set_locked(mf_fabric_pool_t *pool, uint32_t rank,
                                    bool device, const void *value, size_t len)
{
    uint64_t stride = device ? pool->dev.stride : pool->stride;
    mf_fabric_desc_t desc;
    mf_fabric_seg_t *seg;
    mf_status_t status;
    unsigned state;

    if (rank >= pool->world || rank == pool->rank ||
        (device && pool->dev.segs == NULL)) {
        return;
    }
    seg = mf_fabric_seg_of(pool, rank, device);
    if (mf_fabric_desc_decode(value, len, &desc) != MF_OK) {
        mf_error("mf-bm: malformed %s segment descriptor of rank %u "
                 "(%zu bytes)",
                 device ? "device" : "host", rank, len);
        return;
    }
    if (desc.rank != rank || desc.gva != seg->gva || desc.size == 0 ||
        desc.size > stride || desc.map_size < desc.size ||
        desc.map_size % mf_page_size() != 0 || desc.map_size > stride) {
        mf_error("mf-bm: %s descriptor of rank %u claims rank %u at "
                 "0x%" PRIx64 "+0x%" PRIx64 "; expected 0x%" PRIx64
                 " and at most 0x%" PRIx64 " bytes",
                 device ? "device" : "host", rank, desc.rank, desc.gva,
                 desc.size, seg->gva, stride);
        return;
    }
    if (desc.leaving) {
        if (device) {
            mf_fabric_dseg_leave_locked(pool, rank);
        } else {
            mf_fabric_seg_leave_locked(pool, rank, MF_OK, true);
        }
        return;
    }

    state = atomic_load(&seg->state);
    if ((state == MF_FABRIC_SEG_JOINED || state == MF_FABRIC_SEG_UNREACHABLE) &&
        seg->incarnation == desc.incarnation) {
        return; /* seen already */
    }
    if (device) {
        mf_fabric_dseg_leave_locked(pool, rank); /* replaced */
    } else if (state == MF_FABRIC_SEG_JOINED ||
               state == MF_FABRIC_SEG_UNREACHABLE) {
        /* replaced by a new incarnation, whose device segment (published
         * first) may be applied already: that one stays */
        if (pool->dev.segs != NULL &&
            pool->dev.segs[rank].incarnation != desc.incarnation) {
            mf_fabric_dseg_leave_locked(pool, rank);
        }
        (void)mf_fabric_seg_unmap_locked(pool, seg);
    }

    status = mf_fabric_seg_connect(pool, seg, &desc);
    seg->incarnation = desc.incarnation;
    seg->pid = desc.pid;
    if (status != MF_OK) {
        mf_warn("mf-bm: the %s segment of rank %u (host %s, pid %u) is not "
                "reachable: %s",
                device ? "device" : "host", rank, desc.host_id, desc.pid,
                mf_status_name(status));
        atomic_store(&seg->state, MF_FABRIC_SEG_UNREACHABLE);
        mf_fabric_seg_changed_locked(pool);
        return;
    }
    seg->size = desc.size;
    atomic_store(&seg->state, MF_FABRIC_SEG_JOINED);
    mf_fabric_seg_changed_locked(pool);
    mf_debug("mf-bm: rank %u joined with its %s segment 0x%" PRIx64
             "+0x%" PRIx64 " over %s",
             rank, device ? "device" : "host", desc.gva, desc.size,
             pool->ifaces[seg->tl]->ops->name);
    if (!device) {
        mf_fabric_notify(pool, rank, true, MF_OK);
    }
}

/* Takes seg out of use and unmaps it; false if it was not in use. */
static bool mf_fabric_seg_unmap_locked(mf_fabric_pool_t *pool,
                                       mf_fabric_seg_t *seg)
{
    mf_tl_iface_t *iface;
    unsigned state, spins = 0;

    state = atomic_load(&seg->state);
    if (state != MF_FABRIC_SEG_JOINED && state != MF_FABRIC_SEG_UNREACHABLE) {
        return false;
    }
    if (state == MF_FABRIC_SEG_JOINED) {
        /* New copies see CLOSING; wait for the running ones. */
        atomic_store(&seg->state, MF_FABRIC_SEG_CLOSING);
        while (atomic_load(&seg->readers) != 0) {
            if (++spins < 100) {
                sched_yield();
            } else {
                usleep(100);
            }
        }
        mf_fabric_seg_dma_drop(seg);
        iface = pool->ifaces[seg->tl];
        iface->ops->rkey_release(iface, seg->rkey);
        seg->ep->ops->ep_destroy(seg->ep);
        seg->rkey = NULL;
        seg->ep = NULL;
        seg->addr = NULL;
    }
    atomic_store(&seg->state, MF_FABRIC_SEG_LEFT);
    mf_fabric_seg_changed_locked(pool);
    return true;
}

void mf_fabric_dseg_leave_locked(mf_fabric_pool_t *pool, uint32_t rank)
{
    if (rank < pool->world && rank != pool->rank && pool->dev.segs != NULL &&
        mf_fabric_seg_unmap_locked(pool, &pool->dev.segs[rank])) {
        mf_debug("mf-bm: the device segment of rank %u left", rank);
    }
}

void mf_fabric_seg_leave_locked(mf_fabric_pool_t *pool, uint32_t rank,
                                mf_status_t reason, bool notify)
{
    if (rank >= pool->world || rank == pool->rank) {
        return;
    }
    mf_fabric_dseg_leave_locked(pool, rank);
    if (!mf_fabric_seg_unmap_locked(pool, &pool->segs[rank])) {
        return;
    }
    mf_debug("mf-bm: rank %u left: %s", rank, mf_status_name(reason));
    if (notify) {
        mf_fabric_notify(pool, rank, false, reason);
    }
}

/* ---------------------------------------------------------- create/free */

/*
 * How much a transport is preferred for a peer it reaches: memory mapped
 * here (loads and stores, copies by the memory kind) beats a transport that
 * moves bytes; among those, one made for peers of this host beats one for
 * any host.  Ties keep the registry's order.
 */
static unsigned mf_fabric_tl_rank(const mf_tl_caps_t *caps)
{
    return ((caps->flags & MF_TL_CAP_ADDRESSABLE) ? 2u : 0u) +
           ((caps->flags & MF_TL_CAP_SAME_HOST) ? 1u : 0u);
}

static void mf_fabric_tl_sort(mf_fabric_pool_t *pool)
{
    size_t i, k, tmp;

    for (i = 0; i < pool->ntl; i++) {
        pool->tl_order[i] = i;
    }
    for (i = 1; i < pool->ntl; i++) { /* insertion sort: stable, <= 4 */
        for (k = i;
             k > 0 &&
             mf_fabric_tl_rank(&pool->tl_caps[pool->tl_order[k]]) >
                 mf_fabric_tl_rank(&pool->tl_caps[pool->tl_order[k - 1]]);
             k--) {
            tmp = pool->tl_order[k];
            pool->tl_order[k] = pool->tl_order[k - 1];
            pool->tl_order[k - 1] = tmp;
        }
    }
}

/* Opens transport ops with the pool's settings and registers the own
 * segment with it; *iface_p stays NULL on failure. */
static mf_status_t mf_fabric_tl_open_one(mf_fabric_pool_t *pool,
                                         const mf_tl_ops_t *ops, bool is_auto,
                                         mf_tl_iface_t **iface_p,
                                         mf_tl_memh_t **memh_p)
{
    mf_tl_mem_params_t mem_params = {0};
    mf_tl_params_t params;
    mf_status_t status;
    void *config;

    status = mf_tl_config_parse(ops, pool->cfg.tl_settings, &config);
    if (status != MF_OK) {
        return status;
    }
    memset(&params, 0, sizeof(params));
    params.host_id = mf_fabric_host_id(pool);
    params.route_host = pool->route_host;
    params.workers = pool->workers;
    params.split_min = pool->cfg.copy_split_min;
    params.mem_flags = pool->cfg.prefault ? MF_MEM_SEG_PREFAULT : 0;
    params.config = config;
    params.auto_choice = is_auto;
    status = ops->iface_open(&params, iface_p);
    free(config);
    if (status != MF_OK) {
        *iface_p = NULL;
        return status;
    }
    mem_params.addr = pool->own.addr;
    mem_params.size = pool->own.size;
    mem_params.seg = &pool->own;
    status = ops->mem_reg(*iface_p, &mem_params, memh_p);
    if (status != MF_OK) {
        mf_error("mf-bm: %s: cannot register the segment: %s", ops->name,
                 mf_status_name(status));
        ops->iface_close(*iface_p);
        *iface_p = NULL;
    }
    return status;
}

/* Registers the own device segment with transport i if it moves device
 * memory (others cannot reach it: they leave it out of the descriptor). */
static mf_status_t mf_fabric_tl_reg_dev(mf_fabric_pool_t *pool, size_t i)
{
    mf_tl_iface_t *iface = pool->ifaces[i];
    mf_tl_mem_params_t mem_params = {0};
    mf_status_t status;

    if (pool->dev.own.addr == NULL ||
        !(pool->tl_caps[i].mem_kinds & MF_TL_MEM_KIND(pool->dev.kind))) {
        return MF_OK;
    }
    mem_params.addr = pool->dev.own.addr;
    mem_params.size = pool->dev.own.size;
    mem_params.seg = &pool->dev.own;
    status = iface->ops->mem_reg(iface, &mem_params, &pool->dev.own_memh[i]);
    if (status != MF_OK) {
        mf_error("mf-bm: %s: cannot register the device segment: %s",
                 iface->ops->name, mf_status_name(status));
        pool->dev.own_memh[i] = NULL;
    }
    return status;
}

/* auto: every transport built in that opens; else the one named. */
static mf_status_t mf_fabric_tl_open(mf_fabric_pool_t *pool)
{
    bool is_auto = strcmp(pool->cfg.transport, "auto") == 0;
    const mf_tl_ops_t *ops;
    mf_status_t status;
    size_t i;

    for (i = 0; i < mf_tl_count() && pool->ntl < MF_FABRIC_TL_MAX; i++) {
        ops = mf_tl_at(i);
        if (!is_auto && strcmp(ops->name, pool->cfg.transport) != 0) {
            continue;
        }
        status =
            mf_fabric_tl_open_one(pool, ops, is_auto, &pool->ifaces[pool->ntl],
                                  &pool->own_memh[pool->ntl]);
        if (status == MF_ERR_UNSUPPORTED && is_auto) {
            continue; /* not made for this machine (said at debug level) */
        }
        if (status != MF_OK && is_auto) {
            /* auto: the pool still works with what opened */
            mf_warn("mf-bm: transport %s is not available (%s); peers only "
                    "it reaches will be unreachable",
                    ops->name, mf_status_name(status));
            continue;
        }
        if (status != MF_OK) {
            mf_error("mf-bm: cannot open transport %s: %s", ops->name,
                     mf_status_name(status));
            return status;
        }
        ops->iface_query(pool->ifaces[pool->ntl], &pool->tl_caps[pool->ntl]);
        status = mf_fabric_tl_reg_dev(pool, pool->ntl);
        pool->ntl++;
        if (status != MF_OK) {
            return status;
        }
    }
    if (pool->ntl == 0) {
        mf_error("mf-bm: no transport could be opened (transport = %s)",
                 pool->cfg.transport);
        return MF_ERR_UNSUPPORTED;
    }
    mf_fabric_tl_sort(pool);
    return MF_OK;
}

static void mf_fabric_tl_close(mf_fabric_pool_t *pool)
{
    size_t i;

    for (i = pool->ntl; i-- > 0;) {
        if (pool->dev.own_memh[i] != NULL) {
            pool->ifaces[i]->ops->mem_dereg(pool->ifaces[i],
                                            pool->dev.own_memh[i]);
            pool->dev.own_memh[i] = NULL;
        }
        if (pool->own_memh[i] != NULL) {
            pool->ifaces[i]->ops->mem_dereg(pool->ifaces[i], pool->own_memh[i]);
            pool->own_memh[i] = NULL;
        }
        pool->ifaces[i]->ops->iface_close(pool->ifaces[i]);
    }
    pool->ntl = 0;
}

/* The own segment as a table entry: mapped here, copied by its memory
 * kind, no transport involved. */
static void mf_fabric_self_map(mf_fabric_pool_t *pool)
{
    mf_fabric_seg_t *seg = &pool->segs[pool->rank];

    seg->ep = NULL;
    seg->rkey = NULL;
    seg->addr = pool->own.addr;
    seg->tl = SIZE_MAX;
    seg->size = pool->local_size;
    seg->pid = (uint32_t)getpid();
    seg->incarnation = pool->incarnation;
    atomic_store(&seg->state, MF_FABRIC_SEG_JOINED);
    if (pool->dev.own.addr != NULL) {
        seg = &pool->dev.segs[pool->rank];
        seg->ep = NULL;
        seg->rkey = NULL;
        seg->addr = pool->dev.own.addr;
        seg->tl = SIZE_MAX;
        seg->size = pool->dev.local_size;
        seg->pid = (uint32_t)getpid();
        seg->incarnation = pool->incarnation;
        atomic_store(&seg->state, MF_FABRIC_SEG_JOINED);
    }
}

static void mf_fabric_segs_release(mf_fabric_pool_t *pool)
{
    mf_fabric_seg_t *seg;
    uint32_t r;

    for (r = 0; r < 2 * pool->world; r++) {
        if (r >= pool->world && pool->dev.segs == NULL) {
            break;
        }
        seg =
            r < pool->world ? &pool->segs[r] : &pool->dev.segs[r - pool->world];
        mf_fabric_seg_dma_drop(seg);
        if (seg->rkey != NULL) {
            pool->ifaces[seg->tl]->ops->rkey_release(pool->ifaces[seg->tl],
                                                     seg->rkey);
            seg->rkey = NULL;
        }
        if (seg->ep != NULL) {
            seg->ep->ops->ep_destroy(seg->ep);
            seg->ep = NULL;
        }
        atomic_store(&seg->state, MF_FABRIC_SEG_NONE);
    }
}

mf_status_t mf_fabric_pool_alloc(uint32_t id, uint32_t rank, uint32_t world,
                                 const mf_bm_config_t *cfg,
                                 const mf_bm_create_params_t *params,
                                 const char *route_host,
                                 mf_fabric_pool_t **pool_p)
{
    unsigned flags = 0;
    mf_status_t status;
    mf_fabric_pool_t *pool;
    int ret;

    pool = aligned_alloc(64, MF_ALIGN_UP(sizeof(*pool), 64));
    if (pool == NULL) {
        mf_error("mf-bm: cannot allocate pool %u", id);
        status = MF_ERR_NOMEM;
        goto err;
    }
    memset(pool, 0, sizeof(*pool));
    pool->id = id;
    pool->rank = rank;
    pool->world = world;
    pool->cfg = *cfg;
    mf_strlcpy(pool->route_host, route_host != NULL ? route_host : "",
               sizeof(pool->route_host));
    pool->base = cfg->host_base;
    pool->stride = params->max_dram_per_rank;
    pool->window_end = pool->base + (uint64_t)world * pool->stride;
    pool->local_size = params->local_dram_size;
    pool->incarnation = mf_time_ns() ^ ((uint64_t)getpid() << 32);
    pool->own.fd = -1;
    atomic_init(&pool->oor_warned, false);
    atomic_init(&pool->joined, false);
    atomic_init(&pool->join_gen, 0);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->seg_cond, NULL);
    pthread_mutex_init(&pool->ev_lock, NULL);
    pthread_cond_init(&pool->ev_cond, NULL);
    mf_list_init(&pool->ev_queue);
    mf_list_init(&pool->elem);
    mf_vec_init(&pool->regions, sizeof(mf_fabric_region_t));

    pool->segs = aligned_alloc(64, sizeof(*pool->segs) * world);
    if (pool->segs == NULL) {
        mf_error("mf-bm: cannot allocate the table of %u segments", world);
        status = MF_ERR_NOMEM;
        goto err_free_bm;
    }
    mf_fabric_table_init(pool->segs, world, MF_MEM_KIND_HOST, pool->base,
                         pool->stride);
    status = mf_fabric_dev_alloc(pool, cfg, params);
    if (status != MF_OK) {
        goto err_free_segs;
    }

    if (cfg->prefault) {
        flags |= MF_MEM_SEG_PREFAULT;
    }
    if (pool->local_size >= (2u << 20)) {
        flags |= MF_MEM_SEG_HUGEPAGE;
    }
    status = mf_mem_host_ops.seg_create(
        (void *)(uintptr_t)pool->segs[rank].gva,
        MF_ALIGN_UP(pool->local_size, mf_page_size()), flags, &pool->own);
    if (status != MF_OK) {
        goto err_free_segs;
    }
    status = mf_fabric_dev_own_create(pool, flags);
    if (status != MF_OK) {
        goto err_destroy_own;
    }
    status = mf_workers_create(cfg->copy_threads, &pool->workers);
    if (status != MF_OK) {
        goto err_destroy_dev;
    }
    status = mf_fabric_tl_open(pool);
    if (status != MF_OK) {
        goto err_close_tl;
    }
    mf_fabric_self_map(pool);
    ret = pthread_create(&pool->ev_thread, NULL, mf_fabric_ev_main, pool);
    if (ret != 0) {
        errno = ret;
        mf_error("mf-bm: pthread_create(event thread) failed: %m");
        status = MF_ERR_NOMEM;
        goto err_release_segs;
    }
    pool->ev_started = true;
    *pool_p = pool;
    return MF_OK;

err_release_segs:
    mf_fabric_segs_release(pool);
err_close_tl:
    mf_fabric_tl_close(pool);
    mf_workers_destroy(pool->workers);
err_destroy_dev:
    mf_fabric_dev_own_destroy(pool);
err_destroy_own:
    mf_mem_host_ops.seg_destroy(&pool->own);
err_free_segs:
    free(pool->dev.segs);
    free(pool->segs);
err_free_bm:
    mf_vec_free(&pool->regions);
    pthread_cond_destroy(&pool->ev_cond);
    pthread_mutex_destroy(&pool->ev_lock);
    pthread_cond_destroy(&pool->seg_cond);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
err:
    return status;
}

void mf_fabric_pool_free(mf_fabric_pool_t *pool)
{
    mf_fabric_region_t *region;
    mf_list_t *elem;
    size_t i;

    if (pool->ev_started) {
        pthread_mutex_lock(&pool->ev_lock);
        pool->ev_stop = true;
        pthread_cond_signal(&pool->ev_cond);
        pthread_mutex_unlock(&pool->ev_lock);
        pthread_join(pool->ev_thread, NULL);
    }
    while ((elem = mf_list_pop_front(&pool->ev_queue)) != NULL) {
        free(mf_container_of(elem, mf_fabric_ev_t, elem));
    }
    /* runs what is queued: no copy is in flight after this */
    mf_workers_destroy(pool->workers);
    pool->workers = NULL;

    mf_fabric_segs_release(pool);
    for (i = 0; i < pool->regions.count; i++) {
        region = mf_vec_at(&pool->regions, i);
        mf_fabric_region_release(pool, region);
    }
    mf_vec_free(&pool->regions);
    mf_fabric_tl_close(pool);
    mf_fabric_dev_own_destroy(pool);
    mf_mem_host_ops.seg_destroy(&pool->own);
    mf_fabric_windows_unreserve(&pool->cfg, pool->window_end - pool->base,
                                pool->dev.end - pool->dev.base);

    free(pool->dev.segs);
    free(pool->segs);
    pthread_cond_destroy(&pool->ev_cond);
    pthread_mutex_destroy(&pool->ev_lock);
    pthread_cond_destroy(&pool->seg_cond);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
