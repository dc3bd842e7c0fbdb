/*
 * BM life cycle over the config store: library init, bootstrap (store
 * connection and rank), collective create, join and leave, destroy.
 *
 * Store keys of pool <id> (group MF_FABRIC_GROUP holds the ranks):
 *   mf/pool/<id>/resv/<rank>  "<status> <reason>": the rank's window result
 *   mf/pool/<id>/created      counter: creators 1..world form the pool
 *   mf/pool/<id>/seg/<rank>   ephemeral segment descriptor while joined; a
 *                           graceful leave first rewrites it as a tombstone,
 *                           so a removal without one means the peer died
 * (SHM's regions are pools too, under "mf/shm/" instead of "mf/pool/".)
 *
 * Store callbacks run on the store client's thread: they only queue events
 * for the pool's event thread and never call the store.  Locks: the global
 * lock guards the bootstrap state; the list lock the list of pools (taken
 * by the rank callback, so never held while closing the store); pool->lock
 * membership.
 */
#include "fabric/core/core.h"

#include "net/net.h"
#include "util/trace.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_FABRIC_KEY_MAX 96

static struct {
    pthread_mutex_t lock;
    int init_count;
    bool bm_inited;
    mf_store_t *store;
    uint32_t rank;
    uint32_t world;
    mf_bm_config_t cfg;
    char store_host[256]; /* of the store URL */
    pthread_mutex_t list_lock;
    mf_list_t bms;
} mf_fabric_g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .list_lock = PTHREAD_MUTEX_INITIALIZER,
    .bms = {&mf_fabric_g.bms, &mf_fabric_g.bms},
};

/* ---------------------------------------------------------------- init */

MF_API mf_status_t mf_init(void)
{
    pthread_mutex_lock(&mf_fabric_g.lock);
    if (mf_fabric_g.init_count++ == 0) {
        mf_log_init_from_env();
        mf_trace_env();
        mf_net_global_init();
    }
    pthread_mutex_unlock(&mf_fabric_g.lock);
    return MF_OK;
}

MF_API void mf_uninit(void)
{
    pthread_mutex_lock(&mf_fabric_g.lock);
    if (mf_fabric_g.init_count > 0) {
        mf_fabric_g.init_count--;
    }
    pthread_mutex_unlock(&mf_fabric_g.lock);
}

bool mf_fabric_inited(void)
{
    bool inited;

    pthread_mutex_lock(&mf_fabric_g.lock);
    inited = mf_fabric_g.init_count > 0;
    pthread_mutex_unlock(&mf_fabric_g.lock);
    return inited;
}

MF_API mf_status_t mf_device_ready(void)
{
    return mf_mem_kind_ready(MF_MEM_KIND_CUDA);
}

MF_API const char *mf_version(void)
{
    return MF_FABRIC_VERSION;
}

/* ----------------------------------------------------------- bootstrap */

/* Set by mf_bm_init before any pool exists, read while pools are created. */
const char *mf_fabric_store_host(void)
{
    return mf_fabric_g.store_host;
}

static void mf_fabric_rank_event_cb(const char *group, uint32_t rank,
                                    mf_rank_event_t event, void *arg)
{
    mf_fabric_ev_t *ev;
    mf_list_t *elem;

    if (event != MF_RANK_LOST) {
        return; /* joins and graceful leaves come with the descriptors */
    }
    pthread_mutex_lock(&mf_fabric_g.list_lock);
    for (elem = mf_fabric_g.bms.next; elem != &mf_fabric_g.bms;
         elem = elem->next) {
        mf_fabric_pool_t *pool = mf_container_of(elem, mf_fabric_pool_t, elem);

        if (rank >= pool->world) {
            continue;
        }
        ev = mf_fabric_ev_new(MF_FABRIC_EV_RANK_LOST, rank, NULL, 0);
        if (ev != NULL) {
            mf_fabric_ev_post(pool, ev);
        }
    }
    pthread_mutex_unlock(&mf_fabric_g.list_lock);
}

mf_status_t mf_fabric_init(const char *store_url, uint32_t world_size,
                           uint32_t rank, const mf_bm_config_t *cfg)
{
    mf_store_config_t store_cfg;
    mf_bm_config_t defaults;
    mf_store_t *store;
    mf_status_t status;
    uint32_t my_rank;

    if (store_url == NULL || world_size == 0 ||
        (rank != MF_RANK_AUTO && rank >= world_size) ||
        (cfg != NULL && cfg->size < sizeof(*cfg))) {
        mf_error("mf_bm_init: bad arguments (url %s, world %u, rank %d)",
                 store_url != NULL ? store_url : "(null)", world_size,
                 (int)rank);
        return MF_ERR_INVALID;
    }
    if (cfg == NULL) {
        mf_bm_config_init(&defaults);
        cfg = &defaults;
    }
    status = mf_fabric_config_check(cfg);
    if (status != MF_OK) {
        return status;
    }

    pthread_mutex_lock(&mf_fabric_g.lock);
    if (mf_fabric_g.init_count == 0 || mf_fabric_g.bm_inited) {
        mf_error("mf_bm_init: %s", mf_fabric_g.init_count == 0
                                       ? "call mf_init() first"
                                       : "already initialized");
        status = MF_ERR_STATE;
        goto out_unlock;
    }
    mf_fabric_store_config(cfg, &store_cfg);
    status = mf_store_connect(store_url, &store_cfg, &store);
    if (status != MF_OK) {
        /* the store client logged why */
        mf_debug("mf_bm_init: cannot connect to the store at %s: %s", store_url,
                 mf_status_name(status));
        goto out_unlock;
    }
    status =
        mf_store_rank_join(store, MF_FABRIC_GROUP, world_size, rank, &my_rank);
    if (status != MF_OK) {
        /* a full group is normal while a leaving rank is being freed */
        mf_log(status == MF_ERR_BUSY ? MF_LOG_DEBUG : MF_LOG_WARN,
               "mf_bm_init: cannot take rank %d of %u: %s", (int)rank,
               world_size, mf_status_name(status));
        goto err_close_store;
    }
    status = mf_store_rank_subscribe(store, MF_FABRIC_GROUP,
                                     mf_fabric_rank_event_cb, NULL);
    if (status != MF_OK) {
        mf_error("mf_bm_init: cannot follow the ranks: %s",
                 mf_status_name(status));
        goto err_close_store;
    }
    mf_fabric_g.store = store;
    mf_fabric_g.rank = my_rank;
    mf_fabric_g.world = world_size;
    mf_fabric_g.cfg = *cfg;
    {
        mf_url_t urls[MF_URL_LIST_MAX];
        size_t n;

        /* the first of the store's endpoints */
        mf_fabric_g.store_host[0] = '\0';
        if (mf_url_list_parse(store_url, urls, MF_URL_LIST_MAX, &n) == MF_OK) {
            mf_strlcpy(mf_fabric_g.store_host, urls[0].host,
                       sizeof(mf_fabric_g.store_host));
        }
    }
    mf_fabric_g.bm_inited = true;
    mf_info("mf-bm: rank %u of %u, store %s", my_rank, world_size, store_url);
    goto out_unlock;

err_close_store:
    mf_store_close(store);
out_unlock:
    pthread_mutex_unlock(&mf_fabric_g.lock);
    return status;
}

void mf_fabric_uninit(void)
{
    mf_fabric_pool_t *pool;
    mf_store_t *store;

    for (;;) {
        pthread_mutex_lock(&mf_fabric_g.list_lock);
        pool =
            mf_list_empty(&mf_fabric_g.bms)
                ? NULL
                : mf_container_of(mf_fabric_g.bms.next, mf_fabric_pool_t, elem);
        pthread_mutex_unlock(&mf_fabric_g.list_lock);
        if (pool == NULL) {
            break;
        }
        mf_warn("mf_bm_uninit: pool %u still exists, destroying it", pool->id);
        if (pool->uninit_cb != NULL) {
            pool->uninit_cb(pool->uninit_arg); /* destroys the pool */
        } else {
            mf_fabric_destroy(pool);
        }
    }

    pthread_mutex_lock(&mf_fabric_g.lock);
    if (!mf_fabric_g.bm_inited) {
        pthread_mutex_unlock(&mf_fabric_g.lock);
        return;
    }
    store = mf_fabric_g.store;
    (void)mf_store_rank_leave(store, MF_FABRIC_GROUP, mf_fabric_g.rank);
    mf_store_close(store);
    mf_fabric_g.store = NULL;
    mf_fabric_g.store_host[0] = '\0';
    mf_fabric_g.bm_inited = false;
    pthread_mutex_unlock(&mf_fabric_g.lock);
}

mf_status_t mf_fabric_rank_id(uint32_t *rank_p)
{
    mf_status_t status = MF_ERR_STATE;

    if (rank_p == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&mf_fabric_g.lock);
    if (mf_fabric_g.bm_inited) {
        *rank_p = mf_fabric_g.rank;
        status = MF_OK;
    }
    pthread_mutex_unlock(&mf_fabric_g.lock);
    return status;
}

mf_status_t mf_fabric_process(mf_store_t **store_p, uint32_t *rank_p,
                              uint32_t *world_p, mf_bm_config_t *cfg)
{
    mf_status_t status = MF_ERR_STATE;

    pthread_mutex_lock(&mf_fabric_g.lock);
    if (mf_fabric_g.bm_inited) {
        *store_p = mf_fabric_g.store;
        *rank_p = mf_fabric_g.rank;
        *world_p = mf_fabric_g.world;
        *cfg = mf_fabric_g.cfg;
        status = MF_OK;
    }
    pthread_mutex_unlock(&mf_fabric_g.lock);
    return status;
}

uint32_t mf_fabric_world_size(void)
{
    uint32_t world;

    pthread_mutex_lock(&mf_fabric_g.lock);
    world = mf_fabric_g.bm_inited ? mf_fabric_g.world : 0;
    pthread_mutex_unlock(&mf_fabric_g.lock);
    return world;
}

/* -------------------------------------------------------------- create */

void mf_fabric_create_params_init(mf_bm_create_params_t *params)
{
    if (params == NULL) {
        return;
    }
    memset(params, 0, sizeof(*params));
    params->size = sizeof(*params);
}

/* The flags field exists only in params of its size or larger. */
static bool mf_fabric_create_elastic(const mf_bm_create_params_t *params)
{
    return params != NULL &&
           params->size >=
               offsetof(mf_bm_create_params_t, flags) + sizeof(params->flags) &&
           (params->flags & MF_BM_CREATE_ELASTIC) != 0;
}

/*
 * Publishes this rank's window result and, for the ranks that form the
 * pool, checks every other rank's.  MF_OK when all could reserve.
 */
static mf_status_t mf_fabric_create_collective(
    mf_store_t *store, const char *space, uint32_t id, uint32_t rank,
    uint32_t world, uint64_t base, uint64_t stride, uint32_t timeout_ms,
    mf_status_t own_status, const char *own_why, bool elastic)
{
    char key[MF_FABRIC_KEY_MAX], value[640];
    mf_status_t status, result = MF_OK;
    int64_t creators;
    size_t len;
    void *data;
    uint32_t r;
    long peer_status;
    char *reason;

    snprintf(key, sizeof(key), "mf/%s/%u/resv/%u", space, id, rank);
    len = (size_t)snprintf(value, sizeof(value), "%d %s", (int)own_status,
                           own_status == MF_OK ? "reserved" : own_why);
    status = mf_store_set(store, key, value, MF_MIN(len, sizeof(value) - 1), 0);
    if (status != MF_OK) {
        mf_error("mf_bm_create: cannot publish the window result: %s",
                 mf_status_name(status));
        return status;
    }
    snprintf(key, sizeof(key), "mf/%s/%u/created", space, id);
    status = mf_store_add(store, key, 1, &creators);
    if (status != MF_OK) {
        mf_error("mf_bm_create: cannot count the creators: %s",
                 mf_status_name(status));
        return status;
    }
    if (own_status != MF_OK) {
        return own_status;
    }
    if (elastic || creators > (int64_t)world) {
        return MF_OK; /* a late creator: only its own window counts */
    }

    for (r = 0; r < world; r++) {
        if (r == rank) {
            continue;
        }
        snprintf(key, sizeof(key), "mf/%s/%u/resv/%u", space, id, r);
        status = mf_store_get(store, key, timeout_ms, &data, &len);
        if (status != MF_OK) {
            mf_error("mf_bm_create: no window result from rank %u within "
                     "%u ms: %s",
                     r, timeout_ms, mf_status_name(status));
            return status;
        }
        peer_status = strtol(data, &reason, 10);
        if (peer_status != MF_OK) {
            if (*reason == ' ') {
                reason++;
            }
            mf_error("mf_bm_create: rank %u cannot reserve its address "
                     "windows (host 0x%" PRIx64 "-0x%" PRIx64 "): %s",
                     r, base, base + (uint64_t)world * stride, reason);
            result = MF_ERR_ADDR_IN_USE;
        }
        free(data);
    }
    return result;
}

mf_status_t mf_fabric_create(uint32_t id, const mf_bm_create_params_t *params,
                             mf_fabric_pool_t **pool_p)
{
    return mf_fabric_create_at("pool", id, params, 0, 0, pool_p);
}

mf_status_t mf_fabric_create_at(const char *space, uint32_t id,
                                const mf_bm_create_params_t *params,
                                uint64_t host_base, uint64_t device_base,
                                mf_fabric_pool_t **pool_p)
{
    char why[512] = "";
    mf_bm_config_t cfg;
    mf_status_t status, own_status;
    mf_store_t *store;
    uint32_t rank, world;
    uint64_t len = 0, dev_len = 0;
    bool reserved = false;
    mf_fabric_pool_t *pool;

    if (pool_p == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&mf_fabric_g.lock);
    if (!mf_fabric_g.bm_inited) {
        pthread_mutex_unlock(&mf_fabric_g.lock);
        mf_error("mf_bm_create: call mf_bm_init() first");
        return MF_ERR_STATE;
    }
    store = mf_fabric_g.store;
    rank = mf_fabric_g.rank;
    world = mf_fabric_g.world;
    cfg = mf_fabric_g.cfg;
    pthread_mutex_unlock(&mf_fabric_g.lock);
    if (host_base != 0) {
        cfg.host_base = host_base;
    }
    if (device_base != 0) {
        cfg.device_base = device_base;
    }

    own_status = mf_fabric_window_check(&cfg, world, params, &len, &dev_len);
    if (own_status != MF_OK) {
        snprintf(why, sizeof(why), "bad parameters: %s",
                 mf_status_name(own_status));
    } else {
        own_status =
            mf_fabric_windows_reserve(&cfg, len, dev_len, why, sizeof(why));
        reserved = own_status == MF_OK;
    }
    status = mf_fabric_create_collective(
        store, space, id, rank, world, cfg.host_base,
        params != NULL ? params->max_dram_per_rank : 0, cfg.timeout_ms,
        own_status, why, mf_fabric_create_elastic(params));
    if (status != MF_OK) {
        goto err_unreserve;
    }
    status = mf_fabric_pool_alloc(id, rank, world, &cfg, params,
                                  mf_fabric_store_host(), &pool);
    if (status != MF_OK) {
        goto err_unreserve;
    }
    pool->store = store;
    snprintf(pool->seg_prefix, sizeof(pool->seg_prefix), "mf/%s/%u/seg/", space,
             id);

    pthread_mutex_lock(&mf_fabric_g.list_lock);
    mf_list_push_back(&mf_fabric_g.bms, &pool->elem);
    pthread_mutex_unlock(&mf_fabric_g.list_lock);
    mf_info("mf-bm %u: rank %u created 0x%" PRIx64 " bytes at 0x%" PRIx64
            " and 0x%" PRIx64 " bytes of device memory at 0x%" PRIx64,
            id, rank, pool->local_size, pool->segs[rank].gva,
            pool->dev.local_size, (uint64_t)(uintptr_t)pool->dev.own.addr);
    *pool_p = pool;
    return MF_OK;

err_unreserve:
    if (reserved) {
        mf_fabric_windows_unreserve(&cfg, len, dev_len);
    }
    return status;
}

/* ---------------------------------------------------------- join/leave */

static void mf_fabric_watch_cb(mf_store_event_t event, const char *key,
                               const void *value, size_t len, void *arg)
{
    mf_fabric_pool_t *pool = arg;
    const char *num = key + strlen(pool->seg_prefix);
    mf_fabric_ev_t *ev;
    unsigned long rank;
    bool device;
    char *end;

    if (strncmp(key, pool->seg_prefix, strlen(pool->seg_prefix)) != 0) {
        return;
    }
    device = *num == MF_FABRIC_DEV_KEY_MARK;
    num += device ? 1 : 0;
    if (*num < '0' || *num > '9') {
        return;
    }
    rank = strtoul(num, &end, 10);
    if (*end != '\0' || rank >= pool->world ||
        (device && pool->dev.segs == NULL)) {
        return;
    }
    atomic_fetch_add(&mf_fabric_seg_of(pool, (uint32_t)rank, device)->watch_seq,
                     1);
    ev = mf_fabric_ev_new(event == MF_STORE_EVENT_SET ? MF_FABRIC_EV_SEG_SET
                                                      : MF_FABRIC_EV_SEG_REMOVE,
                          (uint32_t)rank, value,
                          event == MF_STORE_EVENT_SET ? len : 0);
    if (ev != NULL) {
        ev->device = device;
        ev->gen = atomic_load(&pool->join_gen);
        mf_fabric_ev_post(pool, ev);
    }
}

/* The store key of rank's host or device segment descriptor. */
static void mf_fabric_seg_key(const mf_fabric_pool_t *pool, uint32_t rank,
                              bool device, char *key, size_t len)
{
    snprintf(key, len, "%s%s%u", pool->seg_prefix,
             device ? (char[]){MF_FABRIC_DEV_KEY_MARK, '\0'} : "", rank);
}

static mf_status_t mf_fabric_publish_one(mf_fabric_pool_t *pool, bool device,
                                         bool leaving)
{
    char key[MF_FABRIC_KEY_MAX];
    mf_status_t status;
    size_t len;
    void *desc;

    status = mf_fabric_desc_pack(pool, device, leaving, &desc, &len);
    if (status != MF_OK) {
        return status;
    }
    mf_fabric_seg_key(pool, pool->rank, device, key, sizeof(key));
    status = mf_store_set(pool->store, key, desc, len, MF_STORE_EPHEMERAL);
    free(desc);
    if (status != MF_OK) {
        mf_error("mf-bm %u: cannot publish the %s segment: %s", pool->id,
                 device ? "device" : "host", mf_status_name(status));
    }
    return status;
}

/* The device segment first: peers that see the host segment joined (and
 * wake mf_bm_rank_wait callers) have applied the device one already. */
static mf_status_t mf_fabric_publish(mf_fabric_pool_t *pool, bool leaving)
{
    char key[MF_FABRIC_KEY_MAX];
    mf_status_t status;

    if (!leaving && pool->dev.own.addr != NULL) {
        status = mf_fabric_publish_one(pool, true, false);
        if (status != MF_OK) {
            return status;
        }
    }
    status = mf_fabric_publish_one(pool, false, leaving);
    if (status != MF_OK && !leaving && pool->dev.own.addr != NULL) {
        /* no device segment of a rank that did not join */
        mf_fabric_seg_key(pool, pool->rank, true, key, sizeof(key));
        (void)mf_store_remove(pool->store, key);
    }
    return status;
}

/* Removes this rank's descriptors from the store. */
static mf_status_t mf_fabric_unpublish(mf_fabric_pool_t *pool)
{
    char key[MF_FABRIC_KEY_MAX];
    mf_status_t status;

    mf_fabric_seg_key(pool, pool->rank, false, key, sizeof(key));
    status = mf_store_remove(pool->store, key);
    if (pool->dev.own.addr != NULL) {
        mf_fabric_seg_key(pool, pool->rank, true, key, sizeof(key));
        if (mf_store_remove(pool->store, key) != MF_OK && status == MF_OK) {
            status = MF_ERR_IO;
        }
    }
    return status;
}

/* A peer's entries back to "never joined" (this rank's stay). */
static void mf_fabric_segs_forget(mf_fabric_pool_t *pool, uint32_t rank)
{
    if (rank == pool->rank) {
        return;
    }
    atomic_store(&pool->segs[rank].state, MF_FABRIC_SEG_NONE);
    pool->segs[rank].incarnation = 0;
    if (pool->dev.segs != NULL) {
        atomic_store(&pool->dev.segs[rank].state, MF_FABRIC_SEG_NONE);
        pool->dev.segs[rank].incarnation = 0;
    }
}

mf_status_t mf_fabric_join(mf_fabric_pool_t *pool)
{
    char key[MF_FABRIC_KEY_MAX];
    mf_status_t status;
    unsigned seq;
    size_t len;
    void *value;
    uint32_t r;

    if (pool == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&pool->lock);
    if (atomic_load(&pool->joined)) {
        status = MF_ERR_EXISTS;
        goto out_unlock;
    }
    atomic_fetch_add(&pool->join_gen, 1);
    status = mf_fabric_publish(pool, false);
    if (status != MF_OK) {
        goto out_unlock;
    }
    status = mf_store_watch(pool->store, pool->seg_prefix, mf_fabric_watch_cb,
                            pool, &pool->watch);
    if (status != MF_OK) {
        mf_error("mf-bm %u: cannot watch %s: %s", pool->id, pool->seg_prefix,
                 mf_status_name(status));
        goto err_remove;
    }
    atomic_store(&pool->joined, true);
    mf_fabric_seg_changed_locked(pool);

    /* Peers that joined before the watch; an event seen meanwhile is
     * newer than what get returned, and the event thread applies it. */
    for (r = 0; r < 2 * pool->world; r++) {
        uint32_t rank = r % pool->world;
        bool device = r < pool->world; /* device segments first */
        mf_fabric_seg_t *seg;

        if (rank == pool->rank || (device && pool->dev.segs == NULL)) {
            continue;
        }
        seg = mf_fabric_seg_of(pool, rank, device);
        seq = atomic_load(&seg->watch_seq);
        mf_fabric_seg_key(pool, rank, device, key, sizeof(key));
        status = mf_store_get(pool->store, key, 0, &value, &len);
        if (status == MF_ERR_NOT_FOUND) {
            continue;
        }
        if (status != MF_OK) {
            mf_error("mf-bm %u: cannot read the %s segment of rank %u: %s",
                     pool->id, device ? "device" : "host", rank,
                     mf_status_name(status));
            goto err_unwatch;
        }
        if (seq == atomic_load(&seg->watch_seq)) {
            mf_fabric_seg_apply_set_locked(pool, rank, device, value, len);
        }
        free(value);
    }
    mf_info("mf-bm %u: rank %u joined", pool->id, pool->rank);
    status = MF_OK;
    goto out_unlock;

err_unwatch:
    mf_store_unwatch(pool->store, pool->watch);
    pool->watch = NULL;
    atomic_store(&pool->joined, false);
    mf_fabric_seg_changed_locked(pool);
    atomic_fetch_add(&pool->join_gen, 1);
    for (r = 0; r < pool->world; r++) {
        mf_fabric_seg_leave_locked(pool, r, MF_OK, false);
        mf_fabric_segs_forget(pool, r);
    }
err_remove:
    (void)mf_fabric_unpublish(pool);
out_unlock:
    pthread_mutex_unlock(&pool->lock);
    return status;
}

mf_status_t mf_fabric_leave(mf_fabric_pool_t *pool)
{
    mf_status_t status;
    uint32_t r;

    if (pool == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&pool->lock);
    if (!atomic_load(&pool->joined)) {
        status = MF_ERR_STATE;
        goto out_unlock;
    }
    /* the tombstone tells the peers it is a graceful leave */
    status = mf_fabric_publish(pool, true);
    if (mf_fabric_unpublish(pool) != MF_OK && status == MF_OK) {
        status = MF_ERR_IO;
    }
    mf_store_unwatch(pool->store, pool->watch);
    pool->watch = NULL;
    atomic_store(&pool->joined, false);
    mf_fabric_seg_changed_locked(pool);
    atomic_fetch_add(&pool->join_gen, 1); /* drops the queued events */
    for (r = 0; r < pool->world; r++) {
        mf_fabric_seg_leave_locked(pool, r, MF_OK, false);
        mf_fabric_segs_forget(pool, r);
    }
    mf_info("mf-bm %u: rank %u left", pool->id, pool->rank);
out_unlock:
    pthread_mutex_unlock(&pool->lock);
    return status;
}

void mf_fabric_destroy(mf_fabric_pool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    pthread_mutex_lock(&mf_fabric_g.list_lock);
    mf_list_del(&pool->elem);
    pthread_mutex_unlock(&mf_fabric_g.list_lock);
    if (atomic_load(&pool->joined)) {
        (void)mf_fabric_leave(pool);
    }
    mf_fabric_pool_free(pool);
}
