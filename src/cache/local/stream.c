/*
 * The streaming calls of the local service: puts in three steps (allocate,
 * the caller's copies, finish), explicit read leases with a duration, the
 * copy on this library's pool, and remove-all.
 *
 * A put's id and a lease's id are this connection's to the meta service,
 * so the client keeps them by key (stream_puts: the allocation of a key;
 * stream_leases: the lease ids of a key) between the calls.  A key stays
 * there until its finish or release, whatever the meta service did
 * meanwhile (reclaimed a put, expired a lease, lost the connection): the
 * finish or release then says so.
 *
 * Allocations are also kept sorted by the GVA of their first replica
 * (stream_by_gva), so that mmc_copy_batch writes a piece aimed at the
 * first replica into every replica at the same offset: a caller that
 * knows one address per object (as upstream's API hands out) still
 * fills all of them.
 */
#include "cache/local/batch.h"
#include "util/trace.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct mmc_stream_put {
    uint64_t id;
    uint64_t size;
    uint8_t nrep;
    uint64_t gvas[MMC_MAX_REPLICAS];
} mmc_stream_put_t;

typedef struct mmc_stream_leases {
    size_t n;
    uint64_t ids[]; /* n */
} mmc_stream_leases_t;

void mmc_local_stream_init(mmc_t *mmc)
{
    pthread_mutex_init(&mmc->stream_lock, NULL);
    mf_hmap_init(&mmc->stream_puts);
    mf_hmap_init(&mmc->stream_leases);
    mf_vec_init(&mmc->stream_by_gva, sizeof(mmc_stream_put_t *));
}

static void mmc_stream_map_free(mf_hmap_t *map)
{
    mf_hmap_entry_t *e;
    mf_hmap_iter_t it;

    mf_hmap_iter_init(map, &it);
    while ((e = mf_hmap_next(map, &it)) != NULL) {
        free(e->value);
    }
    mf_hmap_free(map);
}

void mmc_local_stream_free(mmc_t *mmc)
{
    mmc_stream_map_free(&mmc->stream_puts);
    mmc_stream_map_free(&mmc->stream_leases);
    mf_vec_free(&mmc->stream_by_gva);
    pthread_mutex_destroy(&mmc->stream_lock);
}

MF_TRACE_POINT(mmc_tp_alloc, "mmc.alloc");
MF_TRACE_POINT(mmc_tp_finish, "mmc.finish");
MF_TRACE_POINT(mmc_tp_copy_batch, "mmc.copy_batch");
MF_TRACE_POINT(mmc_tp_lease, "mmc.lease");
MF_TRACE_POINT(mmc_tp_release, "mmc.release");

/* ------------------------------------------------------------- puts */

/* The index in stream_by_gva of the first allocation whose first GVA is
 * >= gva (stream_lock held). */
static size_t mmc_stream_lower(mmc_t *mmc, uint64_t gva)
{
    size_t lo = 0, hi = mmc->stream_by_gva.count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        mmc_stream_put_t *p =
            *(mmc_stream_put_t **)mf_vec_at(&mmc->stream_by_gva, mid);

        if (p->gvas[0] < gva) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Drops from stream_by_gva the allocations whose first replica overlaps
 * put's: the meta service reclaimed them (it handed their space out
 * again), so copies must not go to their replicas any more; their keys
 * stay for the finish, which reports it (stream_lock held). */
static void mmc_stream_drop_stale(mmc_t *mmc, const mmc_stream_put_t *put)
{
    mf_vec_t *v = &mmc->stream_by_gva;
    size_t at = mmc_stream_lower(mmc, put->gvas[0]);

    if (at > 0) {
        at--; /* the one below may reach into put's range */
    }
    while (at < v->count) {
        mmc_stream_put_t *p = *(mmc_stream_put_t **)mf_vec_at(v, at);

        if (p->gvas[0] >= put->gvas[0] + put->size) {
            break;
        }
        if (p->gvas[0] + p->size <= put->gvas[0]) {
            at++;
            continue;
        }
        mf_warn("mmc_alloc: the allocation at 0x%" PRIx64 " was reclaimed "
                "by the meta service before its finish",
                p->gvas[0]);
        memmove(mf_vec_at(v, at), mf_vec_at(v, at + 1),
                (v->count - 1 - at) * v->elem_size);
        v->count--;
    }
}

/* Keeps put by key and by its first GVA (stream_lock held). */
static mmc_status_t mmc_stream_put_add(mmc_t *mmc, const char *key,
                                       mmc_stream_put_t *put)
{
    mf_vec_t *v = &mmc->stream_by_gva;
    size_t at;

    mmc_stream_drop_stale(mmc, put);
    at = mmc_stream_lower(mmc, put->gvas[0]);

    if (mf_vec_push(v, NULL) == NULL) {
        return MF_ERR_NOMEM;
    }
    memmove(mf_vec_at(v, at + 1), mf_vec_at(v, at),
            (v->count - 1 - at) * v->elem_size);
    *(mmc_stream_put_t **)mf_vec_at(v, at) = put;
    if (mf_hmap_put(&mmc->stream_puts, key, strlen(key), put, NULL) != MF_OK) {
        memmove(mf_vec_at(v, at), mf_vec_at(v, at + 1),
                (v->count - 1 - at) * v->elem_size);
        v->count--;
        return MF_ERR_NOMEM;
    }
    return MF_OK;
}

/* Takes key's allocation out of both (stream_lock held); NULL if none. */
static mmc_stream_put_t *mmc_stream_put_take(mmc_t *mmc, const char *key)
{
    mmc_stream_put_t *put = mf_hmap_remove(&mmc->stream_puts, key, strlen(key));
    mf_vec_t *v = &mmc->stream_by_gva;
    size_t at;

    if (put == NULL) {
        return NULL;
    }
    for (at = mmc_stream_lower(mmc, put->gvas[0]); at < v->count; at++) {
        if (*(mmc_stream_put_t **)mf_vec_at(v, at) == put) {
            memmove(mf_vec_at(v, at), mf_vec_at(v, at + 1),
                    (v->count - 1 - at) * v->elem_size);
            v->count--;
            break;
        }
    }
    return put;
}

/* The allocation whose first replica holds [gva, gva + size), or NULL
 * (stream_lock held). */
static const mmc_stream_put_t *mmc_stream_put_at(mmc_t *mmc, uint64_t gva,
                                                 uint64_t size)
{
    size_t at = mmc_stream_lower(mmc, gva + 1);
    const mmc_stream_put_t *p;

    if (at == 0) {
        return NULL;
    }
    p = *(mmc_stream_put_t **)mf_vec_at(&mmc->stream_by_gva, at - 1);
    return size <= p->size && gva - p->gvas[0] <= p->size - size ? p : NULL;
}

static mmc_status_t mmc_alloc_batch_run(mmc_t *mmc, const char *const *keys,
                                        const size_t *sizes, size_t count,
                                        const mmc_put_opts_t *opts,
                                        mmc_obj_info_t *infos,
                                        mmc_status_t *results)
{
    const char *what = "mmc_alloc";
    mmc_local_item_t *items = NULL;
    mmc_status_t status, call_status;
    mmc_put_alloc_req_t req;
    mmc_batch_rec_t *recs;
    unsigned nbad = 0;
    size_t i;

    status = mmc_batch_check_call(what, mmc, keys, count, results);
    if (status == MF_OK && sizes == NULL && count > 0) {
        mf_error("%s: sizes is NULL", what);
        status = MF_ERR_INVALID;
        mmc_batch_fill(results, count, status);
    }
    if (status == MF_OK) {
        status = mmc_batch_check_infos(what, infos, count, results);
    }
    if (status == MF_OK) {
        status = mmc_batch_alloc_req(what, mmc, opts, &req);
        if (status != MF_OK) {
            mmc_batch_fill(results, count, status);
        }
    }
    if (status != MF_OK) {
        return status;
    }
    items = calloc(count > 0 ? count : 1, sizeof(*items));
    recs = mmc_batch_recs_new(what, keys, NULL, count);
    if (items == NULL || recs == NULL) {
        free(items);
        free(recs);
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    pthread_mutex_lock(&mmc->stream_lock);
    for (i = 0; i < count; i++) {
        items[i].key = keys[i];
        items[i].size = sizes[i];
        recs[i].item = &items[i];
        if (recs[i].status != MMC_OK) {
            continue;
        }
        if (sizes[i] == 0) {
            mmc_batch_bad_item(what, i, &nbad, "size 0");
            recs[i].status = MF_ERR_INVALID;
        } else if (mf_hmap_get(&mmc->stream_puts, keys[i], strlen(keys[i])) !=
                   NULL) {
            recs[i].status = MMC_ERR_BUSY; /* ours, not finished */
        }
    }
    pthread_mutex_unlock(&mmc->stream_lock);

    call_status =
        mmc_batch_step_run(mmc, what, &mmc_batch_put_alloc, &req, recs, count);

    pthread_mutex_lock(&mmc->stream_lock);
    for (i = 0; i < count; i++) {
        mmc_stream_put_t *put;

        if (recs[i].status != MMC_OK) {
            continue;
        }
        put = calloc(1, sizeof(*put));
        if (put != NULL) {
            put->id = recs[i].obj.id;
            put->size = recs[i].obj.size;
            put->nrep = recs[i].obj.nrep;
            for (uint8_t r = 0; r < put->nrep; r++) {
                put->gvas[r] = recs[i].obj.reps[r].gva;
            }
        }
        if (put == NULL || mmc_stream_put_add(mmc, keys[i], put) != MF_OK) {
            /* the meta service reclaims it after its put timeout */
            free(put);
            recs[i].status = MF_ERR_NOMEM;
            continue;
        }
        mmc_batch_info_out(&recs[i].obj, infos, i);
    }
    pthread_mutex_unlock(&mmc->stream_lock);
    status = mmc_batch_recs_done(recs, count, MMC_OK, call_status, results);
    free(recs);
    free(items);
    return status;
}

MF_API mmc_status_t mmc_alloc_batch(mmc_t *mmc, const char *const *keys,
                                    const size_t *sizes, size_t count,
                                    const mmc_put_opts_t *opts,
                                    mmc_obj_info_t *infos,
                                    mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_alloc_batch_run(mmc, keys, sizes, count, opts, infos, results);
    mmc_local_stats_end(&mmc_tp_alloc);
    return status;
}

static mmc_status_t mmc_write_finish_batch_run(mmc_t *mmc,
                                               const char *const *keys,
                                               const mmc_status_t *written,
                                               size_t count,
                                               mmc_status_t *results)
{
    const char *what = "mmc_write_finish";
    mmc_status_t status, call_status;
    mmc_batch_rec_t *recs;
    size_t i;

    status = mmc_batch_check_call(what, mmc, keys, count, results);
    if (status != MF_OK) {
        return status;
    }
    recs = mmc_batch_recs_new(what, keys, NULL, count);
    if (recs == NULL) {
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    pthread_mutex_lock(&mmc->stream_lock);
    for (i = 0; i < count; i++) {
        mmc_stream_put_t *put;

        if (recs[i].status != MMC_OK) {
            continue;
        }
        put = mmc_stream_put_take(mmc, keys[i]);
        if (put == NULL) {
            recs[i].status = MMC_ERR_NOT_FOUND;
            continue;
        }
        recs[i].obj.id = put->id;
        recs[i].copy_status = written != NULL ? written[i] : MMC_OK;
        free(put);
    }
    pthread_mutex_unlock(&mmc->stream_lock);
    call_status =
        mmc_batch_step_run(mmc, what, &mmc_batch_put_commit, NULL, recs, count);
    if (call_status != MMC_OK) {
        /* an abort asked for is the item's result whatever the commit did */
        for (i = 0; i < count; i++) {
            if (recs[i].copy_status != MMC_OK && recs[i].obj.id != 0) {
                recs[i].status = recs[i].copy_status;
            }
        }
    }
    status = mmc_batch_recs_done(recs, count, MMC_OK, call_status, results);
    free(recs);
    return status;
}

MF_API mmc_status_t mmc_write_finish_batch(mmc_t *mmc, const char *const *keys,
                                           const mmc_status_t *written,
                                           size_t count, mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_write_finish_batch_run(mmc, keys, written, count, results);
    mmc_local_stats_end(&mmc_tp_finish);
    return status;
}

/* The global side of a piece: its destination when dir writes to the
 * pool (or AUTO: when dst lies in a window), else its source. */
static bool mmc_stream_writes(mmc_t *mmc, mf_copy_dir_t dir,
                              const mf_copy_piece_t *piece)
{
    uint32_t rank;

    switch (dir) {
    case MF_COPY_LH2GH:
    case MF_COPY_LD2GH:
    case MF_COPY_LH2GD:
    case MF_COPY_LD2GD:
        return true;
    case MF_COPY_AUTO:
        return mf_bm_rank_of_gva(mmc->bm, piece->dst, &rank) == MF_OK &&
               mf_bm_rank_of_gva(mmc->bm, piece->src, &rank) != MF_OK;
    default:
        return false;
    }
}

/* The caller's pieces with each write into the first replica of an
 * allocation of ours repeated for its other replicas; owner[k]: the
 * caller's piece of piece k.  MF_OK with *out_p NULL when none is. */
static mmc_status_t mmc_stream_fan_out(mmc_t *mmc, const mf_copy_piece_t *in,
                                       size_t count, mf_copy_dir_t dir,
                                       mf_copy_piece_t **out_p,
                                       size_t **owner_p, size_t *n_p)
{
    mf_copy_piece_t *out = NULL;
    size_t *owner = NULL, n = 0, cap = 0, extra = 0, i;
    mmc_status_t status = MF_OK;

    *out_p = NULL;
    pthread_mutex_lock(&mmc->stream_lock);
    for (i = 0; i < count && mmc->stream_by_gva.count > 0; i++) {
        const mmc_stream_put_t *p;

        if (mmc_stream_writes(mmc, dir, &in[i]) &&
            (p = mmc_stream_put_at(mmc, in[i].dst, in[i].size)) != NULL) {
            extra += p->nrep - 1u;
        }
    }
    if (extra == 0) {
        goto out;
    }
    cap = count + extra;
    out = malloc(cap * sizeof(*out));
    owner = malloc(cap * sizeof(*owner));
    if (out == NULL || owner == NULL) {
        status = MF_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < count; i++) {
        const mmc_stream_put_t *p = NULL;

        out[n] = in[i];
        owner[n++] = i;
        if (!mmc_stream_writes(mmc, dir, &in[i]) ||
            (p = mmc_stream_put_at(mmc, in[i].dst, in[i].size)) == NULL) {
            continue;
        }
        for (uint8_t r = 1; r < p->nrep && n < cap; r++) {
            out[n] = in[i];
            out[n].dst = p->gvas[r] + (in[i].dst - p->gvas[0]);
            owner[n++] = i;
        }
    }
out:
    pthread_mutex_unlock(&mmc->stream_lock);
    if (status != MF_OK || extra == 0) {
        free(out);
        free(owner);
        return status;
    }
    *out_p = out;
    *owner_p = owner;
    *n_p = n;
    return MF_OK;
}

static mmc_status_t mmc_copy_batch_run(mmc_t *mmc,
                                       const mf_copy_piece_t *pieces,
                                       size_t count, mf_copy_dir_t dir,
                                       mf_status_t *results)
{
    mf_copy_piece_t *all = NULL;
    mf_status_t *all_res = NULL;
    size_t *owner = NULL, n = count;
    mmc_status_t status;
    uint64_t deadline, start;
    uint32_t rank;

    if (mmc == NULL || (pieces == NULL && count > 0)) {
        mf_error("mmc_copy: %s is NULL", mmc == NULL ? "mmc" : "pieces");
        return MF_ERR_INVALID;
    }
    status = mmc_stream_fan_out(mmc, pieces, count, dir, &all, &owner, &n);
    if (status != MF_OK) {
        return status;
    }
    if (all == NULL) {
        all = (mf_copy_piece_t *)pieces; /* not written through */
    } else if (results != NULL) {
        all_res = malloc(n * sizeof(*all_res));
        if (all_res == NULL) {
            status = MF_ERR_NOMEM;
            goto out;
        }
    }
    deadline = mf_time_ms() + mmc->cfg.timeout_ms;
    for (size_t i = 0; i < n; i++) {
        if (mf_bm_rank_of_gva(mmc->bm, all[i].src, &rank) == MF_OK ||
            mf_bm_rank_of_gva(mmc->bm, all[i].dst, &rank) == MF_OK) {
            mmc_batch_wait_joined(mmc, rank, deadline);
        }
    }
    start = mf_time_ns();
    status = mf_bm_copy_batch(mmc->bm, all, n, dir,
                              all_res != NULL ? all_res : results);
    mmc_local_stats_data(start);
    if (all_res != NULL) {
        for (size_t i = 0; i < count; i++) {
            results[i] = MF_OK;
        }
        for (size_t k = 0; k < n; k++) {
            if (results[owner[k]] == MF_OK) {
                results[owner[k]] = all_res[k];
            }
        }
    }
out:
    if (all != pieces) {
        free(all);
    }
    free(all_res);
    free(owner);
    return status;
}

MF_API mmc_status_t mmc_copy_batch(mmc_t *mmc, const mf_copy_piece_t *pieces,
                                   size_t count, mf_copy_dir_t dir,
                                   mf_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_copy_batch_run(mmc, pieces, count, dir, results);
    mmc_local_stats_end(&mmc_tp_copy_batch);
    return status;
}

/* ------------------------------------------------------------ leases */

/* Adds lease id to key's (stream_lock held). */
static mmc_status_t mmc_stream_lease_add(mmc_t *mmc, const char *key,
                                         uint64_t id)
{
    size_t len = strlen(key);
    mf_hmap_entry_t *e = mf_hmap_find(&mmc->stream_leases, key, len);
    mmc_stream_leases_t *l = e != NULL ? e->value : NULL, *n;

    n = realloc(l,
                sizeof(*n) + ((l != NULL ? l->n : 0) + 1) * sizeof(n->ids[0]));
    if (n == NULL) {
        return MF_ERR_NOMEM; /* l as it was */
    }
    if (l == NULL) {
        n->n = 0;
    }
    n->ids[n->n++] = id;
    if (e != NULL) {
        e->value = n;
        return MF_OK;
    }
    if (mf_hmap_put(&mmc->stream_leases, key, len, n, NULL) != MF_OK) {
        free(n);
        return MF_ERR_NOMEM;
    }
    return MF_OK;
}

static mmc_status_t mmc_lease_batch_run(mmc_t *mmc, const char *const *keys,
                                        size_t count, uint32_t ttl_ms,
                                        mmc_obj_info_t *infos,
                                        mmc_status_t *results)
{
    const char *what = "mmc_lease";
    mmc_status_t status, call_status;
    mmc_batch_rec_t *recs;
    mmc_batch_rec_t undo;

    status = mmc_batch_check_call(what, mmc, keys, count, results);
    if (status == MF_OK) {
        status = mmc_batch_check_infos(what, infos, count, results);
    }
    if (status == MF_OK && (ttl_ms == 0 || ttl_ms > 86400000u)) {
        mf_error("%s: ttl_ms %" PRIu32 " (1 ms .. a day)", what, ttl_ms);
        status = MF_ERR_INVALID;
        mmc_batch_fill(results, count, status);
    }
    if (status != MF_OK) {
        return status;
    }
    recs = mmc_batch_recs_new(what, keys, NULL, count);
    if (recs == NULL) {
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    call_status =
        mmc_batch_step_run(mmc, what, &mmc_batch_lease, &ttl_ms, recs, count);
    pthread_mutex_lock(&mmc->stream_lock);
    for (size_t i = 0; i < count; i++) {
        if (!recs[i].leased) {
            continue;
        }
        if (mmc_stream_lease_add(mmc, keys[i], recs[i].obj.id) != MF_OK) {
            pthread_mutex_unlock(&mmc->stream_lock);
            undo = recs[i]; /* not kept: give it back now */
            (void)mmc_batch_step_run(mmc, what, &mmc_batch_release, NULL, &undo,
                                     1);
            pthread_mutex_lock(&mmc->stream_lock);
            recs[i].status = MF_ERR_NOMEM;
            continue;
        }
        if (recs[i].status == MMC_OK) {
            mmc_batch_info_out(&recs[i].obj, infos, i);
        }
    }
    pthread_mutex_unlock(&mmc->stream_lock);
    status = mmc_batch_recs_done(recs, count, MMC_OK, call_status, results);
    free(recs);
    return status;
}

MF_API mmc_status_t mmc_lease_batch(mmc_t *mmc, const char *const *keys,
                                    size_t count, uint32_t ttl_ms,
                                    mmc_obj_info_t *infos,
                                    mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_lease_batch_run(mmc, keys, count, ttl_ms, infos, results);
    mmc_local_stats_end(&mmc_tp_lease);
    return status;
}

static mmc_status_t mmc_lease_release_batch_run(mmc_t *mmc,
                                                const char *const *keys,
                                                size_t count,
                                                mmc_status_t *results)
{
    const char *what = "mmc_lease_release";
    mmc_stream_leases_t **held = NULL;
    mmc_batch_rec_t *recs, *lrecs = NULL;
    mmc_status_t status, call_status = MMC_OK;
    size_t i, j, n = 0, k = 0;

    status = mmc_batch_check_call(what, mmc, keys, count, results);
    if (status != MF_OK) {
        return status;
    }
    recs = mmc_batch_recs_new(what, keys, NULL, count);
    held = calloc(count > 0 ? count : 1, sizeof(*held));
    if (recs == NULL || held == NULL) {
        free(recs);
        free(held);
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    pthread_mutex_lock(&mmc->stream_lock);
    for (i = 0; i < count; i++) {
        if (recs[i].status != MMC_OK) {
            continue;
        }
        held[i] = mf_hmap_remove(&mmc->stream_leases, keys[i], strlen(keys[i]));
        if (held[i] == NULL) {
            recs[i].status = MMC_ERR_NOT_FOUND;
            continue;
        }
        n += held[i]->n;
    }
    pthread_mutex_unlock(&mmc->stream_lock);

    /* one record per lease, released together */
    lrecs = calloc(n > 0 ? n : 1, sizeof(*lrecs));
    if (lrecs == NULL) {
        call_status = MF_ERR_NOMEM; /* the leases expire by themselves */
    }
    for (i = 0; i < count && lrecs != NULL; i++) {
        for (j = 0; held[i] != NULL && j < held[i]->n; j++) {
            lrecs[k].key = keys[i];
            lrecs[k].leased = true;
            lrecs[k].obj.id = held[i]->ids[j];
            k++;
        }
    }
    if (lrecs != NULL && n > 0) {
        call_status =
            mmc_batch_step_run(mmc, what, &mmc_batch_release, NULL, lrecs, n);
    }
    for (i = 0, k = 0; i < count; i++) {
        for (j = 0; held[i] != NULL && j < held[i]->n; j++, k++) {
            if (lrecs == NULL) {
                recs[i].status = MF_ERR_NOMEM;
            } else if (lrecs[k].status != MMC_OK && recs[i].status == MMC_OK) {
                recs[i].status = lrecs[k].status;
            }
        }
        free(held[i]);
    }
    status = mmc_batch_recs_done(recs, count, MMC_OK, call_status, results);
    free(lrecs);
    free(held);
    free(recs);
    return status;
}

MF_API mmc_status_t mmc_lease_release_batch(mmc_t *mmc, const char *const *keys,
                                            size_t count, mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_lease_release_batch_run(mmc, keys, count, results);
    mmc_local_stats_end(&mmc_tp_release);
    return status;
}

/* -------------------------------------------------------- remove all */

MF_API mmc_status_t mmc_remove_all(mmc_t *mmc, uint64_t *count_p)
{
    mf_net_resp_t resp;
    mmc_status_t status;
    uint64_t n = 0;
    mf_rbuf_t r;
    mf_wbuf_t w;

    if (mmc == NULL) {
        return MF_ERR_INVALID;
    }
    mf_wbuf_init(&w);
    status = mmc_local_call(mmc, MMC_OP_REMOVE_ALL, &w, &resp);
    if (status != MF_OK) {
        return status;
    }
    mf_rbuf_init(&r, resp.body, resp.len);
    if (!mf_rbuf_get_u64(&r, &n) || mf_rbuf_status(&r, true) != MF_OK) {
        mf_error("mmc_remove_all: malformed REMOVE_ALL response");
        status = MF_ERR_PROTO;
    }
    mf_net_resp_free(&resp);
    if (status == MF_OK && count_p != NULL) {
        *count_p = n;
    }
    return status;
}
