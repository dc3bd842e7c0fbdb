/*
 * SHM, the symmetric-memory API family, on the fabric core: a region is a
 * fabric pool (store keys under "mf/shm/<id>/") whose parts all have one
 * size, in windows the config store places (shm_window.c), plus control
 * calls that are the store's collectives and keys under the region's
 * prefix (shm_int.h lists them).
 *
 * Create: rank 0 places the windows in the table (compare-and-swap, so
 * regions of concurrent creators never overlap) and writes the region's
 * record; the others wait for a record that matches their parameters
 * (one of an earlier incarnation of the id may be there first: with the
 * same parameters it has the same windows, see shm_window.c).  Then the
 * fabric creates the pool collectively, joins, and waits for every
 * rank's part.
 *
 * Global exit: a watch on the exit key runs on the store's thread, which
 * must not call the store, so it starts a thread of the region's that
 * calls the program's callback (or exit()); destroy joins it.
 */
#include "fabric/shm/shm_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MF_SHM_ID_MAX  0x7fffffffu
#define MF_SHM_REC_MAX 256

struct mf_shm {
    mf_fabric_pool_t *pool;
    mf_store_t *store;
    uint32_t id;
    uint32_t rank;
    uint32_t world;
    mf_mem_type_t type;
    uint64_t size;
    uint64_t stride;
    uint64_t base;
    uint32_t timeout_ms;
    char prefix[64]; /* "mf/shm/<id>/" */

    pthread_mutex_t lock; /* the exit callback and its thread */
    mf_store_watch_t *exit_watch;
    mf_shm_exit_cb exit_cb;
    void *exit_arg;
    bool exit_fired;
    bool exit_started;
    pthread_t exit_thread;
    int exit_status;
    uint32_t exit_from;
};

static void mf_shm_key(const mf_shm_t *shm, char *key, size_t len,
                       const char *what, const char *name)
{
    snprintf(key, len, "%s%s%s%s", shm->prefix, what, name != NULL ? "/" : "",
             name != NULL ? name : "");
}

static bool mf_shm_name_valid(const char *call, const char *name)
{
    if (!mf_key_part_valid(name, MF_SHM_NAME_MAX)) {
        mf_error("%s: bad name '%s' (1..%d printable bytes, no '/' or ' ')",
                 call, name != NULL ? name : "(null)", MF_SHM_NAME_MAX - 1);
        return false;
    }
    return true;
}

/* A region whose process bootstrap ended under it (mf_shm_uninit or
 * mf_bm_uninit before mf_shm_destroy): only destroy is left to do. */
static mf_status_t mf_shm_gone(const mf_shm_t *shm)
{
    mf_error("mf-shm %u: the process's bootstrap ended (uninit) before the "
             "region was destroyed",
             shm->id);
    return MF_ERR_STATE;
}

MF_API mf_status_t mf_shm_init(const char *store_url, uint32_t world_size,
                               uint32_t rank, const mf_bm_config_t *cfg)
{
    return mf_fabric_init(store_url, world_size, rank, cfg);
}

MF_API void mf_shm_uninit(void)
{
    mf_fabric_uninit();
}

MF_API void mf_shm_create_params_init(mf_shm_create_params_t *params)
{
    if (params == NULL) {
        return;
    }
    memset(params, 0, sizeof(*params));
    params->size = sizeof(*params);
    params->type = MF_MEM_HOST;
}

/* ------------------------------------------------------------ windows */

/* The region's record: what every rank checks its parameters against. */
typedef struct mf_shm_record {
    mf_shm_windows_t win;
    uint64_t size;
    uint64_t gva_base; /* as the creator asked: 0 placed by the store */
    uint32_t type;
    uint32_t world;
} mf_shm_record_t;

static int mf_shm_record_format(const mf_shm_record_t *r, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "%" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64
                    " %" PRIx64 " %u %u",
                    r->win.host_base, r->win.host_len, r->win.dev_base,
                    r->win.dev_len, r->size, r->gva_base, r->type, r->world);
}

static bool mf_shm_record_parse(const char *text, mf_shm_record_t *r)
{
    unsigned long long v[6];
    unsigned type, world;
    int used = 0;

    if (sscanf(text, "%llx %llx %llx %llx %llx %llx %u %u%n", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &type, &world, &used) != 8 ||
        text[used] != '\0') {
        return false;
    }
    *r = (mf_shm_record_t){{v[0], v[1], v[2], v[3]}, v[4], v[5], type, world};
    return true;
}

/* Places the windows in the table (rank 0). */
static mf_status_t mf_shm_place(mf_store_t *store, uint32_t id,
                                const mf_bm_config_t *cfg,
                                mf_shm_windows_t *win)
{
    mf_shm_ranges_t ranges = {
        .host_lo = cfg->shm_base,
        .dev_lo = cfg->shm_device_base,
        .room = MF_MEM_SHM_ROOM,
        .align = 2ull << 20,
    };
    mf_shm_windows_t want;
    void *cur = NULL, *next_cur;
    size_t cur_len = 0, next_len, out_len;
    mf_status_t status;
    char *out;
    int tries;

    status = mf_store_get(store, MF_SHM_TABLE_KEY, 0, &cur, &cur_len);
    if (status == MF_ERR_NOT_FOUND) {
        cur = NULL;
        cur_len = 0;
    } else if (status != MF_OK) {
        mf_error("mf-shm %u: cannot read the window table: %s", id,
                 mf_status_name(status));
        return status;
    }
    for (tries = 0; tries < 1000; tries++) {
        want = *win;
        status = mf_shm_table_place(cur, cur_len, id, &ranges, &want, &out,
                                    &out_len);
        if (status != MF_OK || out == NULL) {
            break;
        }
        next_cur = NULL;
        next_len = 0;
        status = mf_store_cas(store, MF_SHM_TABLE_KEY, cur, cur_len, out,
                              out_len, &next_cur, &next_len);
        free(out);
        if (status != MF_ERR_MISMATCH) {
            break;
        }
        free(cur); /* another region's creator came first: again */
        cur = next_cur;
        cur_len = next_len;
    }
    free(cur);
    if (status == MF_ERR_MISMATCH) {
        mf_error("mf-shm %u: the window table keeps changing", id);
        status = MF_ERR_BUSY;
    } else if (status == MF_OK) {
        *win = want;
    } else if (status != MF_ERR_NOMEM) {
        mf_error("mf-shm %u: cannot update the window table: %s", id,
                 mf_status_name(status));
    }
    return status;
}

/* Whether a record is the one this rank's parameters ask for. */
static bool mf_shm_record_matches(const mf_shm_record_t *r,
                                  const mf_shm_record_t *mine)
{
    return r->size == mine->size && r->type == mine->type &&
           r->world == mine->world && r->gva_base == mine->gva_base &&
           r->win.host_len == mine->win.host_len &&
           r->win.dev_len == mine->win.dev_len;
}

/* Waits for rank 0's record matching mine (ranks other than 0). */
static mf_status_t mf_shm_record_wait(mf_store_t *store, uint32_t id,
                                      const char *key, uint32_t timeout_ms,
                                      mf_shm_record_t *mine)
{
    uint64_t deadline = mf_time_ms() + timeout_ms;
    mf_shm_record_t r;
    mf_status_t status;
    uint64_t now;
    bool seen = false;
    size_t len;
    void *v;

    for (;;) {
        now = mf_time_ms();
        status = mf_store_get(store, key,
                              now < deadline ? (uint32_t)(deadline - now) : 0,
                              &v, &len);
        if (status != MF_OK) {
            if (status == MF_ERR_NOT_FOUND) {
                status = MF_ERR_TIMEOUT;
            }
            break;
        }
        if (!mf_shm_record_parse(v, &r)) {
            mf_error("mf-shm %u: malformed record '%.64s'", id, (char *)v);
            free(v);
            return MF_ERR_PROTO;
        }
        free(v);
        if (mf_shm_record_matches(&r, mine)) {
            mine->win = r.win;
            return MF_OK;
        }
        /* another incarnation's record, or rank 0 disagrees: wait for
         * rank 0 to write this one's */
        seen = true;
        if (mf_time_ms() >= deadline) {
            status = MF_ERR_TIMEOUT;
            break;
        }
        usleep(10000);
    }
    if (seen) {
        mf_error("mf-shm %u: rank 0 created the region with size 0x%" PRIx64
                 ", type %u, world %u, base 0x%" PRIx64
                 "; this rank asks for size 0x%" PRIx64 ", type %u, "
                 "world %u, base 0x%" PRIx64,
                 id, r.size, r.type, r.world, r.gva_base, mine->size,
                 mine->type, mine->world, mine->gva_base);
        return MF_ERR_INVALID;
    }
    mf_error("mf-shm %u: no record of the region from rank 0 within %u ms: "
             "%s",
             id, timeout_ms, mf_status_name(status));
    return status;
}

/* --------------------------------------------------------- global exit */

static void *mf_shm_exit_main(void *arg)
{
    mf_shm_t *shm = arg;
    mf_shm_exit_cb cb;
    void *cb_arg;

    pthread_mutex_lock(&shm->lock);
    cb = shm->exit_cb;
    cb_arg = shm->exit_arg;
    pthread_mutex_unlock(&shm->lock);
    if (cb != NULL) {
        cb(shm, shm->exit_status, shm->exit_from, cb_arg);
        return NULL;
    }
    mf_error("mf-shm %u: rank %u asked every rank to exit with status %d; "
             "exiting",
             shm->id, shm->exit_from, shm->exit_status);
    exit(shm->exit_status);
}

static void mf_shm_exit_watch_cb(mf_store_event_t event, const char *key,
                                 const void *value, size_t len, void *arg)
{
    mf_shm_t *shm = arg;
    char text[64];
    int status;
    unsigned from;

    (void)key;
    if (event != MF_STORE_EVENT_SET || len == 0 || len >= sizeof(text)) {
        return;
    }
    memcpy(text, value, len);
    text[len] = '\0';
    if (sscanf(text, "%d %u", &status, &from) != 2) {
        mf_warn("mf-shm %u: malformed exit request '%s'", shm->id, text);
        return;
    }
    pthread_mutex_lock(&shm->lock);
    if (!shm->exit_fired) {
        shm->exit_fired = true;
        shm->exit_status = status;
        shm->exit_from = from;
        if (pthread_create(&shm->exit_thread, NULL, mf_shm_exit_main, shm) ==
            0) {
            shm->exit_started = true;
        } else {
            mf_error("mf-shm %u: cannot start the exit thread: %m", shm->id);
        }
    }
    pthread_mutex_unlock(&shm->lock);
}

/* Stops the exit watch and waits for the exit thread (unless called from
 * it, which then goes on alone). */
static void mf_shm_exit_stop(mf_shm_t *shm)
{
    bool join;

    mf_store_unwatch(shm->store, shm->exit_watch);
    shm->exit_watch = NULL;
    pthread_mutex_lock(&shm->lock);
    join = shm->exit_started;
    shm->exit_started = false;
    pthread_mutex_unlock(&shm->lock);
    if (join) {
        if (pthread_equal(pthread_self(), shm->exit_thread)) {
            pthread_detach(shm->exit_thread); /* destroyed by its callback */
        } else {
            pthread_join(shm->exit_thread, NULL);
        }
    }
}

/* Undoes create but for the object itself, which stays for destroy. */
static void mf_shm_teardown(mf_shm_t *shm)
{
    mf_fabric_pool_t *pool = shm->pool;

    if (pool == NULL) {
        return;
    }
    mf_shm_exit_stop(shm);
    shm->pool = NULL;
    pool->uninit_cb = NULL;
    mf_fabric_destroy(pool);
}

/* The process's bootstrap ends while the region lives. */
static void mf_shm_uninit_cb(void *arg)
{
    mf_shm_t *shm = arg;

    mf_warn("mf-shm %u: still exists at uninit; its pool goes now, the "
            "handle stays for mf_shm_destroy",
            shm->id);
    mf_shm_teardown(shm);
}

/* ------------------------------------------------------------- create */

/* The fabric's parameters and the lengths of the windows for params. */
static mf_status_t mf_shm_layout(const mf_shm_create_params_t *params,
                                 uint32_t world, mf_bm_create_params_t *fabric,
                                 mf_shm_record_t *mine)
{
    const mf_mem_ops_t *ops = mf_mem_ops_get(MF_MEM_KIND_CUDA);
    uint64_t page = mf_page_size(), align = 2ull << 20;

    mf_fabric_create_params_init(fabric);
    memset(mine, 0, sizeof(*mine));
    mine->size = params->symmetric_size;
    mine->type = (uint32_t)params->type;
    mine->world = world;
    mine->gva_base = params->gva_base;
    if (params->type == MF_MEM_HOST) {
        fabric->local_dram_size = params->symmetric_size;
        fabric->max_dram_per_rank =
            (params->symmetric_size + page - 1) / page * page;
        mine->win.host_base = params->gva_base;
    } else {
        if (mf_mem_kind_ready(MF_MEM_KIND_CUDA) == MF_OK &&
            ops->seg_align() > align) {
            align = ops->seg_align();
        }
        fabric->local_dram_size = page; /* the pool's host part: unused */
        fabric->max_dram_per_rank = page;
        fabric->local_hbm_size =
            (params->symmetric_size + align - 1) / align * align;
        fabric->max_hbm_per_rank = fabric->local_hbm_size;
        mine->win.dev_base = params->gva_base;
    }
    if (__builtin_mul_overflow(fabric->max_dram_per_rank, (uint64_t)world,
                               &mine->win.host_len) ||
        __builtin_mul_overflow(fabric->max_hbm_per_rank, (uint64_t)world,
                               &mine->win.dev_len)) {
        mf_error("mf_shm_create: %u parts of 0x%" PRIx64 " bytes overflow",
                 world, params->symmetric_size);
        return MF_ERR_INVALID;
    }
    return MF_OK;
}

/* The region's windows: placed and recorded by rank 0, read by others. */
static mf_status_t mf_shm_windows(mf_shm_t *shm, const mf_bm_config_t *cfg,
                                  mf_shm_record_t *mine)
{
    char key[MF_SHM_KEY_MAX], rec[MF_SHM_REC_MAX];
    mf_status_t status;
    int len;

    mf_shm_key(shm, key, sizeof(key), "window", NULL);
    if (shm->rank != 0) {
        return mf_shm_record_wait(shm->store, shm->id, key, shm->timeout_ms,
                                  mine);
    }
    status = mf_shm_place(shm->store, shm->id, cfg, &mine->win);
    if (status != MF_OK) {
        return status;
    }
    len = mf_shm_record_format(mine, rec, sizeof(rec));
    status = mf_store_set(shm->store, key, rec, (size_t)len, 0);
    if (status != MF_OK) {
        mf_error("mf-shm %u: cannot write the region's record: %s", shm->id,
                 mf_status_name(status));
    }
    return status;
}

/* Waits until every rank's part is addressable (or known unreachable). */
static mf_status_t mf_shm_wait_parts(mf_shm_t *shm)
{
    bool device = shm->type == MF_MEM_DEVICE;
    mf_status_t status;
    uint32_t r;

    for (r = 0; r < shm->world; r++) {
        status = mf_fabric_seg_wait(shm->pool, r, device, (int)shm->timeout_ms);
        if (status == MF_ERR_UNREACHABLE) {
            mf_warn("mf-shm %u: no transport of this process reaches rank "
                    "%u's part",
                    shm->id, r);
        } else if (status != MF_OK) {
            mf_error("mf-shm %u: rank %u's part did not appear within %u ms: "
                     "%s",
                     shm->id, r, shm->timeout_ms, mf_status_name(status));
            return status;
        }
    }
    return MF_OK;
}

MF_API mf_status_t mf_shm_create(uint32_t id,
                                 const mf_shm_create_params_t *params,
                                 mf_shm_t **shm_p)
{
    mf_bm_create_params_t fabric;
    mf_shm_record_t mine;
    mf_bm_config_t cfg;
    mf_status_t status;
    char key[MF_SHM_KEY_MAX];
    mf_shm_t *shm;

    if (shm_p == NULL || params == NULL || params->size < sizeof(*params) ||
        id > MF_SHM_ID_MAX || params->symmetric_size == 0 ||
        (params->type != MF_MEM_HOST && params->type != MF_MEM_DEVICE) ||
        params->flags != 0 || params->gva_base % mf_page_size() != 0) {
        mf_error("mf_shm_create: bad arguments (id %u, size 0x%" PRIx64
                 ", type %d, flags 0x%x, base 0x%" PRIx64 ")",
                 id, params != NULL ? params->symmetric_size : 0,
                 params != NULL ? (int)params->type : -1,
                 params != NULL ? params->flags : 0,
                 params != NULL ? params->gva_base : 0);
        return MF_ERR_INVALID;
    }
    shm = calloc(1, sizeof(*shm));
    if (shm == NULL) {
        return MF_ERR_NOMEM;
    }
    pthread_mutex_init(&shm->lock, NULL);
    status = mf_fabric_process(&shm->store, &shm->rank, &shm->world, &cfg);
    if (status != MF_OK) {
        mf_error("mf_shm_create: call mf_shm_init() first");
        goto err_free;
    }
    shm->id = id;
    shm->type = params->type;
    shm->size = params->symmetric_size;
    shm->timeout_ms = cfg.timeout_ms;
    snprintf(shm->prefix, sizeof(shm->prefix), "mf/shm/%u/", id);

    status = mf_shm_layout(params, shm->world, &fabric, &mine);
    if (status == MF_OK) {
        status = mf_shm_windows(shm, &cfg, &mine);
    }
    if (status != MF_OK) {
        goto err_free;
    }
    status = mf_fabric_create_at("shm", id, &fabric, mine.win.host_base,
                                 mine.win.dev_base, &shm->pool);
    if (status != MF_OK) {
        goto err_free;
    }
    shm->base =
        shm->type == MF_MEM_HOST ? mine.win.host_base : mine.win.dev_base;
    shm->stride = shm->type == MF_MEM_HOST ? fabric.max_dram_per_rank
                                           : fabric.max_hbm_per_rank;
    mf_shm_key(shm, key, sizeof(key), "exit", NULL);
    status = mf_store_watch(shm->store, key, mf_shm_exit_watch_cb, shm,
                            &shm->exit_watch);
    if (status != MF_OK) {
        mf_error("mf-shm %u: cannot watch %s: %s", id, key,
                 mf_status_name(status));
        goto err_destroy;
    }
    status = mf_fabric_join(shm->pool);
    if (status != MF_OK) {
        goto err_unwatch;
    }
    status = mf_shm_wait_parts(shm);
    if (status != MF_OK) {
        goto err_unwatch;
    }
    shm->pool->uninit_cb = mf_shm_uninit_cb;
    shm->pool->uninit_arg = shm;
    mf_info("mf-shm %u: rank %u of %u, %s parts of 0x%" PRIx64
            " bytes from 0x%" PRIx64 " every 0x%" PRIx64,
            id, shm->rank, shm->world,
            shm->type == MF_MEM_HOST ? "host" : "device", shm->size, shm->base,
            shm->stride);
    *shm_p = shm;
    return MF_OK;

err_unwatch:
    mf_shm_exit_stop(shm);
err_destroy:
    mf_fabric_destroy(shm->pool);
err_free:
    pthread_mutex_destroy(&shm->lock);
    free(shm);
    return status;
}

MF_API void mf_shm_destroy(mf_shm_t *shm)
{
    if (shm == NULL) {
        return;
    }
    mf_shm_teardown(shm);
    pthread_mutex_destroy(&shm->lock);
    free(shm);
}

/* ------------------------------------------------------------ queries */

MF_API uint32_t mf_shm_rank(const mf_shm_t *shm)
{
    return shm != NULL ? shm->rank : 0;
}

MF_API uint32_t mf_shm_world(const mf_shm_t *shm)
{
    return shm != NULL ? shm->world : 0;
}

MF_API uint64_t mf_shm_gva(const mf_shm_t *shm)
{
    return shm != NULL ? shm->base : 0;
}

MF_API uint64_t mf_shm_stride(const mf_shm_t *shm)
{
    return shm != NULL ? shm->stride : 0;
}

MF_API uint64_t mf_shm_size(const mf_shm_t *shm)
{
    return shm != NULL ? shm->size : 0;
}

MF_API void *mf_shm_ptr(const mf_shm_t *shm, uint32_t rank)
{
    if (shm == NULL || rank >= shm->world) {
        return NULL;
    }
    return (void *)(uintptr_t)(shm->base + (uint64_t)rank * shm->stride);
}

MF_API mf_status_t mf_shm_put(mf_shm_t *shm, uint64_t gva, const void *src,
                              size_t size)
{
    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || (src == NULL && size != 0)) {
        return MF_ERR_INVALID;
    }
    return mf_fabric_copy(shm->pool, (uint64_t)(uintptr_t)src, gva, size,
                          MF_COPY_AUTO);
}

MF_API mf_status_t mf_shm_get(mf_shm_t *shm, void *dst, uint64_t gva,
                              size_t size)
{
    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || (dst == NULL && size != 0)) {
        return MF_ERR_INVALID;
    }
    return mf_fabric_copy(shm->pool, gva, (uint64_t)(uintptr_t)dst, size,
                          MF_COPY_AUTO);
}

MF_API mf_status_t mf_shm_can_reach(mf_shm_t *shm, uint32_t rank,
                                    mf_shm_reach_t *reach)
{
    mf_fabric_seg_t *seg;
    mf_status_t status = MF_OK;
    unsigned state;

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || reach == NULL || rank >= shm->world) {
        return MF_ERR_INVALID;
    }
    memset(reach, 0, sizeof(*reach));
    if (rank == shm->rank) {
        reach->flags = MF_SHM_REACH_SELF | MF_SHM_REACH_MAPPED;
        return MF_OK;
    }
    seg = mf_fabric_seg_of(shm->pool, rank, shm->type == MF_MEM_DEVICE);
    pthread_mutex_lock(&shm->pool->lock);
    state = atomic_load(&seg->state);
    if (state == MF_FABRIC_SEG_JOINED) {
        reach->flags =
            seg->addr != NULL ? MF_SHM_REACH_MAPPED : MF_SHM_REACH_TRANSPORT;
        mf_strlcpy(reach->transport, shm->pool->ifaces[seg->tl]->ops->name,
                   sizeof(reach->transport));
    } else if (state == MF_FABRIC_SEG_UNREACHABLE) {
        status = MF_ERR_UNREACHABLE;
    } else {
        status = MF_ERR_PEER_LOST;
    }
    pthread_mutex_unlock(&shm->pool->lock);
    return status;
}

/* -------------------------------------------------------- collectives */

MF_API mf_status_t mf_shm_barrier(mf_shm_t *shm)
{
    char name[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, name, sizeof(name), "barrier", NULL);
    return mf_store_barrier(shm->store, name, shm->world, shm->timeout_ms);
}

MF_API mf_status_t mf_shm_allgather(mf_shm_t *shm, const void *in, size_t len,
                                    void *out)
{
    char name[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || in == NULL || out == NULL || len == 0) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, name, sizeof(name), "allgather", NULL);
    return mf_store_allgather(shm->store, name, shm->rank, shm->world, in, len,
                              out, shm->timeout_ms);
}

MF_API mf_status_t mf_shm_group_barrier(mf_shm_t *shm, const char *key,
                                        uint32_t count)
{
    char name[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || count == 0 ||
        !mf_shm_name_valid("mf_shm_group_barrier", key)) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, name, sizeof(name), "group", key);
    return mf_store_barrier(shm->store, name, count, shm->timeout_ms);
}

MF_API mf_status_t mf_shm_group_allgather(mf_shm_t *shm, const char *key,
                                          uint32_t index, uint32_t count,
                                          const void *in, size_t len, void *out)
{
    char name[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || index >= count || in == NULL || out == NULL ||
        len == 0 || !mf_shm_name_valid("mf_shm_group_allgather", key)) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, name, sizeof(name), "gather", key);
    return mf_store_allgather(shm->store, name, index, count, in, len, out,
                              shm->timeout_ms);
}

/* ------------------------------------------------------------ atomics */

MF_API mf_status_t mf_shm_atomic_add(mf_shm_t *shm, const char *name,
                                     int64_t delta, int64_t *result_p)
{
    char key[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || result_p == NULL ||
        !mf_shm_name_valid("mf_shm_atomic_add", name)) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, key, sizeof(key), "atomic", name);
    return mf_store_add(shm->store, key, delta, result_p);
}

MF_API mf_status_t mf_shm_atomic_cas(mf_shm_t *shm, const char *name,
                                     int64_t expected, int64_t desired,
                                     int64_t *current_p)
{
    char key[MF_SHM_KEY_MAX], exp[24], des[24];
    mf_status_t status;
    size_t cur_len = 0;
    void *cur = NULL;
    char *end;
    long long v;

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || !mf_shm_name_valid("mf_shm_atomic_cas", name)) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, key, sizeof(key), "atomic", name);
    snprintf(exp, sizeof(exp), "%" PRId64, expected);
    snprintf(des, sizeof(des), "%" PRId64, desired);
    status = mf_store_cas(shm->store, key, exp, strlen(exp), des, strlen(des),
                          &cur, &cur_len);
    if (status == MF_ERR_MISMATCH && cur == NULL && expected == 0) {
        /* an absent counter is 0 */
        status = mf_store_cas(shm->store, key, NULL, 0, des, strlen(des), &cur,
                              &cur_len);
    }
    if (status != MF_ERR_MISMATCH) {
        free(cur);
        return status;
    }
    v = 0;
    if (cur != NULL) {
        v = strtoll(cur, &end, 10);
        if (end == cur || *end != '\0') {
            mf_error("mf_shm_atomic_cas: counter %s holds '%.32s', not an "
                     "integer",
                     name, (char *)cur);
            free(cur);
            return MF_ERR_INVALID;
        }
    }
    free(cur);
    if (current_p != NULL) {
        *current_p = v;
    }
    return MF_ERR_MISMATCH;
}

MF_API mf_status_t mf_shm_atomic_reset(mf_shm_t *shm, const char *name)
{
    char key[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || !mf_shm_name_valid("mf_shm_atomic_reset", name)) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, key, sizeof(key), "atomic", name);
    return mf_store_remove(shm->store, key);
}

/* ------------------------------------------------------------ context */

MF_API mf_status_t mf_shm_set_context(mf_shm_t *shm, const void *data,
                                      size_t len)
{
    char key[MF_SHM_KEY_MAX];

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || (data == NULL && len != 0)) {
        return MF_ERR_INVALID;
    }
    if (len > MF_SHM_CONTEXT_MAX) {
        mf_error("mf_shm_set_context: %zu bytes, at most %u", len,
                 MF_SHM_CONTEXT_MAX);
        return MF_ERR_TOO_LARGE;
    }
    mf_shm_key(shm, key, sizeof(key), "context", NULL);
    return mf_store_set(shm->store, key, data, len, MF_STORE_EPHEMERAL);
}

MF_API mf_status_t mf_shm_get_context(mf_shm_t *shm, void *buf, size_t cap,
                                      size_t *len_p, uint32_t timeout_ms)
{
    char key[MF_SHM_KEY_MAX];
    mf_status_t status;
    size_t len;
    void *v;

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL || len_p == NULL || (buf == NULL && cap != 0)) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, key, sizeof(key), "context", NULL);
    status = mf_store_get(shm->store, key, timeout_ms, &v, &len);
    if (status != MF_OK) {
        return status;
    }
    *len_p = len;
    if (len > cap) {
        free(v);
        return MF_ERR_TOO_LARGE;
    }
    memcpy(buf, v, len);
    free(v);
    return MF_OK;
}

/* --------------------------------------------------------------- exit */

MF_API mf_status_t mf_shm_register_exit(mf_shm_t *shm, mf_shm_exit_cb cb,
                                        void *arg)
{
    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&shm->lock);
    shm->exit_cb = cb;
    shm->exit_arg = arg;
    pthread_mutex_unlock(&shm->lock);
    return MF_OK;
}

MF_API mf_status_t mf_shm_global_exit(mf_shm_t *shm, int status)
{
    char key[MF_SHM_KEY_MAX], value[48];
    int len;

    if (shm != NULL && shm->pool == NULL) {
        return mf_shm_gone(shm);
    }
    if (shm == NULL) {
        return MF_ERR_INVALID;
    }
    mf_shm_key(shm, key, sizeof(key), "exit", NULL);
    len = snprintf(value, sizeof(value), "%d %u", status, shm->rank);
    return mf_store_set(shm->store, key, value, (size_t)len,
                        MF_STORE_EPHEMERAL);
}
