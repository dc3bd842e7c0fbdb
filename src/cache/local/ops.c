/*
 * Object operations of the local service: put, get, exist, query, remove,
 * each in single, batch and layers forms.  Every form runs the batch path;
 * a single-key call is a batch of one and returns the item's status.
 *
 * put:  validate -> PUT_ALLOC (requests of at most max_batch keys, the
 *       media of the options) -> one batch copy of every piece of every
 *       item, replica and layer (to global host or device memory, as the
 *       replicas' media says) ->
 *       PUT_COMMIT of every allocated item, with MMC_OK or the copy error
 *       (which aborts the item: its space is freed, nothing is readable).
 * get:  validate -> GET (read leases) -> size check -> one batch copy
 *       from each item's best replica (on a rank seen joined, same host
 *       first); items whose copy failed with a peer error go again from
 *       their next replica ->
 *       RELEASE of every lease; an expired lease fails its item, since the
 *       bytes read may have been reused meanwhile.
 *
 * Results: results[i] is set for every item.  The call returns MMC_OK when
 * every item got its answer (succeeded; for exist and query a missing key,
 * MMC_ERR_NOT_FOUND, is an answer too), MMC_ERR_PARTIAL when some failed,
 * or the error of the call itself (bad arguments, or the meta service
 * failed every request while no item got an answer), which is then in
 * every results[i] too.
 *
 * Copies address GVAs the meta service handed out.  A replica on a rank
 * this process has not seen joining yet (the pool's membership events
 * travel separately from the meta service's answers) is waited for, up to
 * the request timeout, before the copy.
 */
#include "cache/local/batch.h"
#include "util/trace.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

MF_TRACE_POINT(mmc_tp_put, "mmc.put");
MF_TRACE_POINT(mmc_tp_get, "mmc.get");
MF_TRACE_POINT(mmc_tp_keys, "mmc.keys");
/* A get's leases, from their grant (GET answered) to their release. */
MF_TRACE_POINT(mmc_tp_lease_held, "mmc.lease_held");

/* ---------------------------------------------------------------- put */

static mmc_status_t mmc_ops_put_run(mmc_t *mmc, const mmc_local_item_t *items,
                                    size_t count, const mmc_put_opts_t *opts,
                                    mmc_status_t *results)
{
    const char *what = "mmc_put";
    mmc_put_alloc_req_t req;
    mmc_status_t status, call_status;
    mmc_batch_copier_t copier;
    mmc_batch_rec_t *recs;
    uint64_t deadline;
    size_t npieces = 0, i;

    status = mmc_batch_alloc_req(what, mmc, opts, &req);
    if (status != MF_OK) {
        mmc_batch_fill(results, count, status);
        return status;
    }
    recs = mmc_batch_recs_new(what, NULL, items, count);
    if (recs == NULL) {
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    for (i = 0; i < count; i++) {
        if (recs[i].status == MF_OK && items[i].size == 0) {
            unsigned nbad = 0;

            mmc_batch_bad_item(what, i, &nbad, "size 0");
            recs[i].status = MF_ERR_INVALID;
        }
    }

    call_status =
        mmc_batch_step_run(mmc, what, &mmc_batch_put_alloc, &req, recs, count);

    /* one copy of every piece to every replica */
    for (i = 0; i < count; i++) {
        if (recs[i].status == MMC_OK) {
            npieces += items[i].niov * recs[i].obj.nrep;
        }
    }
    status = mmc_batch_copier_init(
        &copier, mmc, mmc_batch_dir(recs, count, true), npieces, recs);
    if (status != MF_OK) {
        /* the allocated puts are reclaimed by the meta's put timeout */
        mmc_batch_fill(results, count, status);
        free(recs);
        return status;
    }
    deadline = mf_time_ms() + mmc->cfg.timeout_ms;
    for (i = 0; i < count; i++) {
        const mmc_obj_result_t *o = &recs[i].obj;

        if (recs[i].status != MMC_OK) {
            continue;
        }
        for (unsigned r = 0; r < o->nrep; r++) {
            uint64_t off = 0;

            mmc_batch_wait_joined(mmc, o->reps[r].rank, deadline);
            for (size_t j = 0; j < items[i].niov; j++) {
                mmc_batch_copier_add(
                    &copier, (uint64_t)(uintptr_t)items[i].iov[j].base,
                    o->reps[r].gva + off, items[i].iov[j].len, i);
                off += items[i].iov[j].len;
            }
        }
    }
    mmc_batch_copier_flush(&copier);
    mmc_batch_copier_free(&copier);
    for (i = 0; i < count; i++) {
        if (recs[i].status == MMC_OK && recs[i].copy_status != MF_OK) {
            mf_error("%s: copy of '%s' to its replicas failed: %s", what,
                     recs[i].key, mmc_status_name(recs[i].copy_status));
        }
    }

    status =
        mmc_batch_step_run(mmc, what, &mmc_batch_put_commit, NULL, recs, count);
    if (status != MMC_OK) {
        call_status = status;
        /* a failed copy is the item's error whatever the commit did */
        for (i = 0; i < count; i++) {
            if (recs[i].copy_status != MF_OK && recs[i].obj.id != 0) {
                recs[i].status = recs[i].copy_status;
            }
        }
    }
    status = mmc_batch_recs_done(recs, count, MMC_OK, call_status, results);
    free(recs);
    return status;
}

static mmc_status_t mmc_ops_put(mmc_t *mmc, const mmc_local_item_t *items,
                                size_t count, const mmc_put_opts_t *opts,
                                mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_ops_put_run(mmc, items, count, opts, results);
    mmc_local_stats_end(&mmc_tp_put);
    return status;
}

/* ---------------------------------------------------------------- get */

/*
 * The order to try an object's replicas in: those on ranks this process
 * sees joined first (same host before other hosts), then the others
 * (same host first again).  A replica on a rank not joined here is either
 * on a process that just died (the meta service has not dropped it yet)
 * or on one that just joined (its membership is on its way): it is
 * waited for, up to the request timeout, so it comes last, not first.
 */
static void mmc_ops_get_order(mmc_t *mmc, mmc_batch_rec_t *rec,
                              uint32_t host_idx)
{
    bool joined[MMC_MAX_REPLICAS];
    uint8_t n = 0;

    for (uint8_t r = 0; r < rec->obj.nrep; r++) {
        joined[r] = mf_bm_rank_joined(mmc->bm, rec->obj.reps[r].rank);
    }
    for (int pass = 0; pass < 4; pass++) {
        bool want_joined = pass < 2, want_local = (pass % 2) == 0;

        for (uint8_t r = 0; r < rec->obj.nrep; r++) {
            if (joined[r] == want_joined &&
                (rec->obj.reps[r].host_idx == host_idx) == want_local) {
                rec->order[n++] = r;
            }
        }
    }
}

/* Starts the next replica's copy of every item still to read; returns how
 * many it started. */
static size_t mmc_ops_get_round(mmc_t *mmc, mmc_batch_rec_t *recs, size_t count,
                                mmc_batch_copier_t *copier, uint64_t deadline)
{
    const mmc_replica_t *rep;
    size_t started = 0;

    for (size_t i = 0; i < count; i++) {
        mmc_batch_rec_t *rec = &recs[i];
        uint64_t off = 0;

        if (rec->status != MMC_OK || rec->tried == rec->obj.nrep ||
            (rec->tried > 0 && rec->copy_status == MF_OK)) {
            continue;
        }
        rec->copy_status = MF_OK;
        rep = &rec->obj.reps[rec->order[rec->tried++]];
        mmc_batch_wait_joined(mmc, rep->rank, deadline);
        for (size_t j = 0; j < rec->item->niov; j++) {
            mmc_batch_copier_add(copier, rep->gva + off,
                                 (uint64_t)(uintptr_t)rec->item->iov[j].base,
                                 rec->item->iov[j].len, i);
            off += rec->item->iov[j].len;
        }
        started++;
    }
    return started;
}

/* After a round: a peer error moves an item to its next replica; any
 * other error, or the last replica failing, fails the item. */
static void mmc_ops_get_judge(const char *what, mmc_batch_rec_t *recs,
                              size_t count)
{
    for (size_t i = 0; i < count; i++) {
        mmc_batch_rec_t *rec = &recs[i];
        bool peer = mf_status_is_peer_error(rec->copy_status);

        if (rec->status != MMC_OK || rec->tried == 0 ||
            rec->copy_status == MF_OK) {
            continue;
        }
        rec->all_peer = rec->all_peer && peer;
        if (rec->tried < rec->obj.nrep && peer) {
            mf_debug("%s: '%s': replica on rank %u failed (%s), trying the "
                     "next",
                     what, rec->key,
                     rec->obj.reps[rec->order[rec->tried - 1]].rank,
                     mf_status_name(rec->copy_status));
            continue;
        }
        mf_error("%s: cannot read '%s' from %s: %s", what, rec->key,
                 rec->obj.nrep > 1 ? "any replica" : "its replica",
                 mf_status_name(rec->copy_status));
        rec->status = rec->all_peer ? MMC_ERR_NO_REPLICA : rec->copy_status;
    }
}

static mmc_status_t mmc_ops_get_run(mmc_t *mmc, const mmc_local_item_t *items,
                                    size_t count, mmc_status_t *results)
{
    const char *what = "mmc_get";
    uint32_t host_idx = atomic_load(&mmc->host_idx);
    mmc_status_t status, call_status;
    mmc_batch_copier_t copier;
    mmc_batch_rec_t *recs;
    size_t npieces = 0, i;
    uint64_t deadline, held_t0;
    bool leased = false;

    recs = mmc_batch_recs_new(what, NULL, items, count);
    if (recs == NULL) {
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    call_status =
        mmc_batch_step_run(mmc, what, &mmc_batch_get, NULL, recs, count);
    held_t0 = mf_trace_begin();

    for (i = 0; i < count; i++) {
        leased = leased || recs[i].leased;
        if (recs[i].status == MMC_OK && items[i].size != recs[i].obj.size) {
            mf_warn("%s: '%s' is %" PRIu64 " bytes, the buffers hold %" PRIu64
                    " bytes; nothing copied",
                    what, items[i].key, recs[i].obj.size, items[i].size);
            recs[i].status = MMC_ERR_SIZE_MISMATCH;
        }
        if (recs[i].status == MMC_OK) {
            mmc_ops_get_order(mmc, &recs[i], host_idx);
            recs[i].all_peer = true;
            npieces += items[i].niov;
        }
    }

    /* copies: every pending item from its next replica, until none is */
    status = mmc_batch_copier_init(
        &copier, mmc, mmc_batch_dir(recs, count, false), npieces, recs);
    if (status == MF_OK) {
        deadline = mf_time_ms() + mmc->cfg.timeout_ms;
        while (mmc_ops_get_round(mmc, recs, count, &copier, deadline) > 0) {
            mmc_batch_copier_flush(&copier);
            mmc_ops_get_judge(what, recs, count);
        }
        mmc_batch_copier_free(&copier);
    } else {
        for (i = 0; i < count; i++) {
            recs[i].status = recs[i].status == MMC_OK ? status : recs[i].status;
        }
    }

    /* failures of RELEASE are logged; the leases expire by themselves */
    (void)mmc_batch_step_run(mmc, what, &mmc_batch_release, NULL, recs, count);
    if (leased) {
        mf_trace_end(&mmc_tp_lease_held, held_t0);
    }
    status = mmc_batch_recs_done(recs, count, MMC_OK, call_status, results);
    free(recs);
    return status;
}

static mmc_status_t mmc_ops_get(mmc_t *mmc, const mmc_local_item_t *items,
                                size_t count, mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_ops_get_run(mmc, items, count, results);
    mmc_local_stats_end(&mmc_tp_get);
    return status;
}

/* ------------------------------------------------- exist/query/remove */

static mmc_status_t mmc_ops_keys_run(mmc_t *mmc, uint16_t op, const char *what,
                                     const char *const *keys, size_t count,
                                     mmc_obj_info_t *infos,
                                     mmc_status_t *results)
{
    mmc_status_t status, call_status, miss;
    mmc_batch_rec_t *recs;

    recs = mmc_batch_recs_new(what, keys, NULL, count);
    if (recs == NULL) {
        mmc_batch_fill(results, count, MF_ERR_NOMEM);
        return MF_ERR_NOMEM;
    }
    call_status = mmc_batch_step_run(mmc, what,
                                     op == MMC_OP_QUERY    ? &mmc_batch_query
                                     : op == MMC_OP_REMOVE ? &mmc_batch_remove
                                                           : &mmc_batch_exist,
                                     NULL, recs, count);
    for (size_t i = 0; op == MMC_OP_QUERY && i < count; i++) {
        if (recs[i].status == MMC_OK) {
            mmc_batch_info_out(&recs[i].obj, infos, i);
        }
    }
    miss = op == MMC_OP_REMOVE ? MMC_OK : MMC_ERR_NOT_FOUND;
    status = mmc_batch_recs_done(recs, count, miss, call_status, results);
    free(recs);
    return status;
}

static mmc_status_t mmc_ops_keys(mmc_t *mmc, uint16_t op, const char *what,
                                 const char *const *keys, size_t count,
                                 mmc_obj_info_t *infos, mmc_status_t *results)
{
    mmc_status_t status;

    mmc_local_stats_begin();
    status = mmc_ops_keys_run(mmc, op, what, keys, count, infos, results);
    mmc_local_stats_end(&mmc_tp_keys);
    return status;
}

/* ------------------------------------------------------------ the API */

MF_API void mmc_put_opts_init(mmc_put_opts_t *opts)
{
    if (opts != NULL) {
        memset(opts, 0, sizeof(*opts));
        opts->size = sizeof(*opts);
    }
}

MF_API void mmc_obj_info_init(mmc_obj_info_t *infos, size_t count)
{
    for (size_t i = 0; infos != NULL && i < count; i++) {
        memset(&infos[i], 0, sizeof(infos[i]));
        infos[i].info_size = sizeof(infos[i]);
    }
}

/* Items of put/get from the plain (one buffer per object) form; mem is
 * where every buffer lives. */
static mmc_status_t mmc_ops_items_plain(const char *const *keys,
                                        void *const *bufs, const size_t *sizes,
                                        size_t count, uint32_t mem,
                                        mmc_local_item_t **items_p,
                                        mmc_iov_t **iovs_p)
{
    mmc_local_item_t *items = calloc(count > 0 ? count : 1, sizeof(*items));
    mmc_iov_t *iovs = calloc(count > 0 ? count : 1, sizeof(*iovs));

    if (items == NULL || iovs == NULL) {
        free(items);
        free(iovs);
        return MF_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        iovs[i].base = bufs[i];
        iovs[i].len = sizes[i];
        iovs[i].mem = mem;
        items[i].key = keys[i];
        items[i].iov = &iovs[i];
        items[i].niov = 1;
        items[i].size = sizes[i];
    }
    *items_p = items;
    *iovs_p = iovs;
    return MF_OK;
}

static mmc_status_t mmc_ops_items_layers(const char *const *keys,
                                         const mmc_iov_t *const *iovs,
                                         const size_t *niovs, size_t count,
                                         mmc_local_item_t **items_p)
{
    mmc_local_item_t *items = calloc(count > 0 ? count : 1, sizeof(*items));

    if (items == NULL) {
        return MF_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        items[i].key = keys[i];
        items[i].iov = iovs[i];
        items[i].niov = niovs[i];
        items[i].size = niovs[i] <= MMC_BATCH_IOV_MAX
                            ? mmc_batch_iov_size(iovs[i], niovs[i])
                            : 0;
    }
    *items_p = items;
    return MF_OK;
}

static mmc_status_t mmc_ops_plain(mmc_t *mmc, bool put, const char *what,
                                  const char *const *keys, void *const *bufs,
                                  const size_t *sizes, size_t count,
                                  const mmc_put_opts_t *opts,
                                  mmc_status_t *results)
{
    mmc_local_item_t *items;
    mmc_iov_t *iovs;
    mmc_status_t status;
    uint32_t mem;

    status = mmc_batch_check_call(what, mmc, keys, count, results);
    if (status != MF_OK) {
        return status;
    }
    if (count > 0 && (bufs == NULL || sizes == NULL)) {
        mf_error("%s: bufs or sizes is NULL", what);
        mmc_batch_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    mem = (opts != NULL && opts->size >= MMC_BATCH_PUT_OPTS_MIN) ? opts->mem
                                                                 : MMC_MEM_AUTO;
    status = mmc_ops_items_plain(keys, bufs, sizes, count, mem, &items, &iovs);
    if (status != MF_OK) {
        mmc_batch_fill(results, count, status);
        return status;
    }
    status = put ? mmc_ops_put(mmc, items, count, opts, results)
                 : mmc_ops_get(mmc, items, count, results);
    free(iovs);
    free(items);
    return status;
}

static mmc_status_t
mmc_ops_layers(mmc_t *mmc, bool put, const char *what, const char *const *keys,
               const mmc_iov_t *const *iovs, const size_t *niovs, size_t count,
               const mmc_put_opts_t *opts, mmc_status_t *results)
{
    mmc_local_item_t *items;
    mmc_status_t status;

    status = mmc_batch_check_call(what, mmc, keys, count, results);
    if (status != MF_OK) {
        return status;
    }
    if (count > 0 && (iovs == NULL || niovs == NULL)) {
        mf_error("%s: iovs or niovs is NULL", what);
        mmc_batch_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    status = mmc_ops_items_layers(keys, iovs, niovs, count, &items);
    if (status != MF_OK) {
        mmc_batch_fill(results, count, status);
        return status;
    }
    status = put ? mmc_ops_put(mmc, items, count, opts, results)
                 : mmc_ops_get(mmc, items, count, results);
    free(items);
    return status;
}

MF_API mmc_status_t mmc_put_batch(mmc_t *mmc, const char *const *keys,
                                  const void *const *bufs, const size_t *sizes,
                                  size_t count, const mmc_put_opts_t *opts,
                                  mmc_status_t *results)
{
    /* the buffers are only read; the common item type is not const */
    return mmc_ops_plain(mmc, true, "mmc_put", keys, (void *const *)bufs, sizes,
                         count, opts, results);
}

MF_API mmc_status_t mmc_put_layers_batch(mmc_t *mmc, const char *const *keys,
                                         const mmc_iov_t *const *iovs,
                                         const size_t *niovs, size_t count,
                                         const mmc_put_opts_t *opts,
                                         mmc_status_t *results)
{
    return mmc_ops_layers(mmc, true, "mmc_put_layers", keys, iovs, niovs, count,
                          opts, results);
}

MF_API mmc_status_t mmc_get_batch(mmc_t *mmc, const char *const *keys,
                                  void *const *bufs, const size_t *sizes,
                                  size_t count, mmc_status_t *results)
{
    return mmc_ops_plain(mmc, false, "mmc_get", keys, bufs, sizes, count, NULL,
                         results);
}

MF_API mmc_status_t mmc_get_layers_batch(mmc_t *mmc, const char *const *keys,
                                         const mmc_iov_t *const *iovs,
                                         const size_t *niovs, size_t count,
                                         mmc_status_t *results)
{
    return mmc_ops_layers(mmc, false, "mmc_get_layers", keys, iovs, niovs,
                          count, NULL, results);
}

MF_API mmc_status_t mmc_exist_batch(mmc_t *mmc, const char *const *keys,
                                    size_t count, mmc_status_t *results)
{
    mmc_status_t status =
        mmc_batch_check_call("mmc_exist", mmc, keys, count, results);

    if (status != MF_OK) {
        return status;
    }
    return mmc_ops_keys(mmc, MMC_OP_EXIST, "mmc_exist", keys, count, NULL,
                        results);
}

MF_API mmc_status_t mmc_query_batch(mmc_t *mmc, const char *const *keys,
                                    size_t count, mmc_obj_info_t *infos,
                                    mmc_status_t *results)
{
    mmc_status_t status =
        mmc_batch_check_call("mmc_query", mmc, keys, count, results);

    if (status != MF_OK) {
        return status;
    }
    status = mmc_batch_check_infos("mmc_query", infos, count, results);
    if (status != MF_OK) {
        return status;
    }
    return mmc_ops_keys(mmc, MMC_OP_QUERY, "mmc_query", keys, count, infos,
                        results);
}

MF_API mmc_status_t mmc_remove_batch(mmc_t *mmc, const char *const *keys,
                                     size_t count, mmc_status_t *results)
{
    mmc_status_t status =
        mmc_batch_check_call("mmc_remove", mmc, keys, count, results);

    if (status != MF_OK) {
        return status;
    }
    return mmc_ops_keys(mmc, MMC_OP_REMOVE, "mmc_remove", keys, count, NULL,
                        results);
}

/* ---- single keys: a batch of one, whose item status is returned ---- */

MF_API mmc_status_t mmc_put(mmc_t *mmc, const char *key, const void *buf,
                            size_t size, const mmc_put_opts_t *opts)
{
    mmc_status_t result;

    (void)mmc_put_batch(mmc, &key, &buf, &size, 1, opts, &result);
    return result;
}

MF_API mmc_status_t mmc_put_layers(mmc_t *mmc, const char *key,
                                   const mmc_iov_t *iov, size_t niov,
                                   const mmc_put_opts_t *opts)
{
    mmc_status_t result;

    (void)mmc_put_layers_batch(mmc, &key, &iov, &niov, 1, opts, &result);
    return result;
}

MF_API mmc_status_t mmc_get(mmc_t *mmc, const char *key, void *buf, size_t size)
{
    mmc_status_t result;

    (void)mmc_get_batch(mmc, &key, &buf, &size, 1, &result);
    return result;
}

MF_API mmc_status_t mmc_get_layers(mmc_t *mmc, const char *key,
                                   const mmc_iov_t *iov, size_t niov)
{
    mmc_status_t result;

    (void)mmc_get_layers_batch(mmc, &key, &iov, &niov, 1, &result);
    return result;
}

MF_API mmc_status_t mmc_exist(mmc_t *mmc, const char *key)
{
    mmc_status_t result;

    (void)mmc_exist_batch(mmc, &key, 1, &result);
    return result;
}

MF_API mmc_status_t mmc_query(mmc_t *mmc, const char *key,
                              mmc_obj_info_t *info_p)
{
    mmc_obj_info_t info;
    mmc_status_t result;

    if (info_p == NULL || info_p->info_size < MMC_BATCH_OBJ_INFO_MIN ||
        info_p->info_size > MMC_BATCH_OBJ_INFO_MAX) {
        mf_error("mmc_query: info_p is NULL or its info_size too small "
                 "(call mmc_obj_info_init)");
        return MF_ERR_INVALID;
    }
    mmc_obj_info_init(&info, 1);
    (void)mmc_query_batch(mmc, &key, 1, &info, &result);
    if (result == MMC_OK) {
        /* outputs only on success, and no byte past the caller's size */
        memcpy((uint8_t *)info_p + sizeof(info.info_size),
               (const uint8_t *)&info + sizeof(info.info_size),
               MF_MIN(info_p->info_size, sizeof(info)) -
                   sizeof(info.info_size));
    }
    return result;
}

MF_API mmc_status_t mmc_remove(mmc_t *mmc, const char *key)
{
    mmc_status_t result;

    (void)mmc_remove_batch(mmc, &key, 1, &result);
    return result;
}
