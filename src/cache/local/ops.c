/*
 * Object operations of the local service: put, get, exist, query, remove,
 * each in single, batch and layers forms.  Every form runs the batch path;
 * a single-key call is a batch of one and returns the item's status.
 *
 * put:  validate -> PUT_ALLOC (requests of at most max_batch keys) -> one
 *       batch copy LH2GH of every piece of every item, replica and layer ->
 *       PUT_COMMIT of every allocated item, with MMC_OK or the copy error
 *       (which aborts the item: its space is freed, nothing is readable).
 * get:  validate -> GET (read leases) -> size check -> one batch copy GH2LH
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
#include "cache/local/local.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MMC_OPS_MAX_IOV     65536u
#define MMC_OPS_PIECE_CHUNK 65536u /* pieces of one mf_bm_copy_batch call */
#define MMC_OPS_LOG_ITEMS   8u     /* bad items logged one by one */

/* ------------------------------------------------------------ helpers */

static void mmc_ops_fill(mmc_status_t *results, size_t count,
                         mmc_status_t status)
{
    for (size_t i = 0; i < count; i++) {
        results[i] = status;
    }
}

/*
 * The overall status of a batch: MMC_OK when every item got an answer,
 * MMC_ERR_PARTIAL when some failed, or call_status (copied into every
 * result) when the meta service failed a request and no item got an
 * answer.  An answer is MMC_OK, or `miss` where a missing key answers the
 * question (exist, query: MMC_ERR_NOT_FOUND); calls that act on the
 * object pass MMC_OK, so that a miss fails their item.
 */
static mmc_status_t mmc_ops_overall(mmc_status_t *results, size_t count,
                                    mmc_status_t miss, mmc_status_t call_status)
{
    size_t answered = 0;

    for (size_t i = 0; i < count; i++) {
        answered += (results[i] == MMC_OK) || (results[i] == miss);
    }
    if (answered == count) {
        return MMC_OK;
    }
    if (answered == 0 && call_status != MMC_OK) {
        mmc_ops_fill(results, count, call_status);
        return call_status;
    }
    return MMC_ERR_PARTIAL;
}

/* Arguments common to every call; the results are filled on failure. */
static mmc_status_t mmc_ops_check_call(const char *what, mmc_t *mmc,
                                       const void *keys, size_t count,
                                       mmc_status_t *results)
{
    mmc_status_t status = MF_OK;

    if (results == NULL) {
        mf_error("%s: results is NULL", what);
        return MF_ERR_INVALID;
    }
    if (count > MMC_BATCH_MAX) {
        mf_error("%s: %zu keys, at most %u per call", what, count,
                 MMC_BATCH_MAX);
        status = MF_ERR_TOO_LARGE;
    } else if (mmc == NULL || (keys == NULL && count > 0)) {
        mf_error("%s: %s is NULL", what, mmc == NULL ? "mmc" : "keys");
        status = MF_ERR_INVALID;
    }
    if (status != MF_OK) {
        mmc_ops_fill(results, count, status);
    }
    return status;
}

/* Logs a bad item (the first few of a call one by one). */
static void mmc_ops_bad_item(const char *what, size_t index, unsigned *nbad,
                             const char *why)
{
    if (*nbad < MMC_OPS_LOG_ITEMS) {
        mf_error("%s: item %zu: %s", what, index, why);
    } else if (*nbad == MMC_OPS_LOG_ITEMS) {
        mf_error("%s: more bad items follow, not logged", what);
    }
    (*nbad)++;
}

/* MF_OK for a valid key; else logs why and returns MF_ERR_INVALID. */
static mmc_status_t mmc_ops_check_key(const char *what, const char *key,
                                      size_t index, unsigned *nbad)
{
    size_t len;

    if (key == NULL) {
        mmc_ops_bad_item(what, index, nbad, "key is NULL");
        return MF_ERR_INVALID;
    }
    len = strnlen(key, MMC_KEY_MAX + 1);
    if (!mmc_key_valid(key, len)) {
        mmc_ops_bad_item(what, index, nbad,
                         len == 0 ? "empty key" : "key longer than 255 bytes");
        return MF_ERR_INVALID;
    }
    return MF_OK;
}

static mmc_key_t mmc_ops_key(const char *key)
{
    mmc_key_t k = {key, (uint32_t)strlen(key)};

    return k;
}

/* Waits (until deadline_ms) for a rank's segment to be reachable from
 * here, when the pool has not shown it joined yet. */
static void mmc_ops_wait_joined(mmc_t *mmc, uint32_t rank, uint64_t deadline_ms)
{
    struct timespec ts = {0, 1000000L};

    if (rank >= mmc->hello.world_size) {
        return; /* the copy reports MF_ERR_OUT_OF_RANGE */
    }
    while (!mf_bm_rank_joined(mmc->bm, rank) &&
           !mf_fabric_rank_unreachable(mmc->bm, rank) &&
           mf_time_ms() < deadline_ms) {
        nanosleep(&ts, NULL);
    }
}

/* A batch copy of pieces that belong to items: piece k is of item
 * owner[k]; status[owner] keeps the first error of an item's pieces. */
typedef struct mmc_ops_copier {
    mmc_t *mmc;
    mf_copy_dir_t dir;
    mf_copy_piece_t *pieces;
    size_t *owner;
    mf_status_t *pres;
    size_t n;
    size_t cap;
    mmc_status_t *status; /* per item */
} mmc_ops_copier_t;

/* npieces: how many pieces will come (the buffers hold at most
 * MMC_OPS_PIECE_CHUNK of them at a time). */
static mmc_status_t mmc_ops_copier_init(mmc_ops_copier_t *c, mmc_t *mmc,
                                        mf_copy_dir_t dir, size_t npieces,
                                        mmc_status_t *status)
{
    memset(c, 0, sizeof(*c));
    c->mmc = mmc;
    c->dir = dir;
    c->status = status;
    c->cap = MF_MAX(MF_MIN(npieces, MMC_OPS_PIECE_CHUNK), 1);
    c->pieces = malloc(c->cap * sizeof(*c->pieces));
    c->owner = malloc(c->cap * sizeof(*c->owner));
    c->pres = malloc(c->cap * sizeof(*c->pres));
    if (c->pieces == NULL || c->owner == NULL || c->pres == NULL) {
        free(c->pieces);
        free(c->owner);
        free(c->pres);
        return MF_ERR_NOMEM;
    }
    return MF_OK;
}

static void mmc_ops_copier_flush(mmc_ops_copier_t *c)
{
    mf_status_t st;

    if (c->n == 0) {
        return;
    }
    /* a piece the copy never reached keeps this and fails its item */
    for (size_t k = 0; k < c->n; k++) {
        c->pres[k] = MF_ERR_CANCELED;
    }
    st = mf_bm_copy_batch(c->mmc->bm, c->pieces, c->n, c->dir, c->pres);
    if (st != MF_OK) {
        for (size_t k = 0; k < c->n; k++) {
            mf_status_t piece = c->pres[k] == MF_ERR_CANCELED ? st : c->pres[k];

            if (piece != MF_OK && c->status[c->owner[k]] == MF_OK) {
                c->status[c->owner[k]] = piece;
            }
        }
    }
    c->n = 0;
}

static void mmc_ops_copier_add(mmc_ops_copier_t *c, uint64_t src, uint64_t dst,
                               size_t size, size_t item)
{
    if (size == 0) {
        return;
    }
    if (c->n == c->cap) {
        mmc_ops_copier_flush(c);
    }
    c->pieces[c->n].src = src;
    c->pieces[c->n].dst = dst;
    c->pieces[c->n].size = size;
    c->owner[c->n] = item;
    c->n++;
}

static void mmc_ops_copier_free(mmc_ops_copier_t *c)
{
    free(c->pieces);
    free(c->owner);
    free(c->pres);
}

/* Validates the buffers of an item of put or get (the key apart). */
static mmc_status_t mmc_ops_check_iov(const char *what,
                                      const mmc_local_item_t *item,
                                      size_t index, unsigned *nbad)
{
    if (item->niov < 1 || item->niov > MMC_OPS_MAX_IOV) {
        mmc_ops_bad_item(what, index, nbad,
                         "number of buffers out of range (1..65536)");
        return MF_ERR_INVALID;
    }
    if (item->iov == NULL) {
        mmc_ops_bad_item(what, index, nbad, "buffers are NULL");
        return MF_ERR_INVALID;
    }
    for (size_t j = 0; j < item->niov; j++) {
        if (item->iov[j].base == NULL && item->iov[j].len > 0) {
            mmc_ops_bad_item(what, index, nbad, "a buffer is NULL");
            return MF_ERR_INVALID;
        }
    }
    return MF_OK;
}

/* Sum of the lengths of an item's buffers. */
static uint64_t mmc_ops_iov_size(const mmc_iov_t *iov, size_t niov)
{
    uint64_t size = 0;

    if (iov == NULL) {
        return 0;
    }
    for (size_t j = 0; j < niov; j++) {
        size += iov[j].len;
    }
    return size;
}

/* Indices of the items whose results are MMC_OK; *n_p of them. */
static size_t *mmc_ops_valid(const mmc_status_t *results, size_t count,
                             size_t *n_p)
{
    size_t *idx = malloc((count > 0 ? count : 1) * sizeof(*idx));
    size_t n = 0;

    if (idx == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (results[i] == MMC_OK) {
            idx[n++] = i;
        }
    }
    *n_p = n;
    return idx;
}

/* ---------------------------------------------------------------- put */

static mmc_status_t mmc_ops_put(mmc_t *mmc, const mmc_local_item_t *items,
                                size_t count, const mmc_put_opts_t *opts,
                                mmc_status_t *results)
{
    const char *what = "mmc_put";
    mmc_put_alloc_req_t req;
    mmc_obj_list_t objs_resp;
    mmc_status_list_t sl = {0, NULL};
    mmc_commit_list_t cl = {0, NULL};
    mmc_obj_result_t *objs = NULL;
    mmc_status_t *copy_st = NULL;
    mmc_status_t status, call_status = MMC_OK;
    mmc_ops_copier_t copier;
    mf_net_resp_t resp;
    size_t *idx = NULL, nvalid = 0, ncommit, pos, n, i;
    uint64_t deadline;
    unsigned nbad = 0;
    mf_wbuf_t w;

    memset(&req, 0, sizeof(req));
    req.replicas = mmc->cfg.replicas;
    if (opts != NULL) {
        if (opts->replicas > MMC_MAX_REPLICAS ||
            opts->npreferred > MMC_MAX_REPLICAS) {
            mf_error("%s: replicas %u or npreferred %u above %u", what,
                     opts->replicas, opts->npreferred, MMC_MAX_REPLICAS);
            mmc_ops_fill(results, count, MF_ERR_INVALID);
            return MF_ERR_INVALID;
        }
        if ((opts->flags & ~MMC_PUT_REPLACE) != 0) {
            mf_error("%s: unknown flags 0x%x", what, opts->flags);
            mmc_ops_fill(results, count, MF_ERR_INVALID);
            return MF_ERR_INVALID;
        }
        if (opts->replicas != 0) {
            req.replicas = opts->replicas;
        }
        req.flags = opts->flags;
        req.npref = opts->npreferred;
        memcpy(req.pref, opts->preferred, sizeof(req.pref));
    }

    for (i = 0; i < count; i++) {
        results[i] = mmc_ops_check_key(what, items[i].key, i, &nbad);
        if (results[i] == MF_OK) {
            results[i] = mmc_ops_check_iov(what, &items[i], i, &nbad);
        }
        if (results[i] == MF_OK && items[i].size == 0) {
            mmc_ops_bad_item(what, i, &nbad, "size 0");
            results[i] = MF_ERR_INVALID;
        }
    }
    idx = mmc_ops_valid(results, count, &nvalid);
    objs = calloc(count > 0 ? count : 1, sizeof(*objs));
    copy_st = calloc(count > 0 ? count : 1, sizeof(*copy_st));
    req.items =
        malloc(MF_MIN(MF_MAX(nvalid, 1), mmc->max_batch) * sizeof(*req.items));
    if (idx == NULL || objs == NULL || copy_st == NULL || req.items == NULL) {
        status = MF_ERR_NOMEM;
        goto err_free;
    }

    /* PUT_ALLOC */
    for (pos = 0; pos < nvalid; pos += n) {
        n = MF_MIN(nvalid - pos, mmc->max_batch);
        req.count = (uint32_t)n;
        for (i = 0; i < n; i++) {
            req.items[i].key = mmc_ops_key(items[idx[pos + i]].key);
            req.items[i].size = items[idx[pos + i]].size;
        }
        mf_wbuf_init(&w);
        mmc_put_alloc_req_encode(&w, &req);
        status = mmc_local_call(mmc, MMC_OP_PUT_ALLOC, &w, &resp);
        if (status == MF_OK) {
            status = mmc_obj_list_decode(resp.body, resp.len, &objs_resp);
            mf_net_resp_free(&resp);
            if (status == MF_OK && objs_resp.count != n) {
                mmc_obj_list_free(&objs_resp);
                status = MF_ERR_PROTO;
            }
            if (status != MF_OK) {
                mf_error("%s: malformed PUT_ALLOC response", what);
            }
        }
        if (status != MF_OK) {
            call_status = status;
            for (i = 0; i < n; i++) {
                results[idx[pos + i]] = status;
            }
            continue;
        }
        for (i = 0; i < n; i++) {
            mmc_obj_result_t *o = &objs_resp.items[i];

            if (o->status == MMC_OK && (o->nrep == 0 || o->id == 0)) {
                mf_error("%s: PUT_ALLOC gave item %zu no replica", what,
                         idx[pos + i]);
                o->status = MF_ERR_PROTO;
            }
            objs[idx[pos + i]] = *o;
            results[idx[pos + i]] = o->status;
        }
        mmc_obj_list_free(&objs_resp);
    }

    /* one copy of every piece to every replica */
    n = 0;
    for (pos = 0; pos < nvalid; pos++) {
        if (results[idx[pos]] == MMC_OK) {
            n += items[idx[pos]].niov * objs[idx[pos]].nrep;
        }
    }
    status = mmc_ops_copier_init(&copier, mmc, MF_COPY_LH2GH, n, copy_st);
    if (status != MF_OK) {
        goto err_abort;
    }
    deadline = mf_time_ms() + mmc->cfg.timeout_ms;
    ncommit = 0;
    for (pos = 0; pos < nvalid; pos++) {
        const mmc_local_item_t *item = &items[idx[pos]];
        const mmc_obj_result_t *o = &objs[idx[pos]];

        if (results[idx[pos]] != MMC_OK) {
            continue;
        }
        ncommit++;
        for (unsigned r = 0; r < o->nrep; r++) {
            uint64_t off = 0;

            mmc_ops_wait_joined(mmc, o->reps[r].rank, deadline);
            for (size_t j = 0; j < item->niov; j++) {
                mmc_ops_copier_add(
                    &copier, (uint64_t)(uintptr_t)item->iov[j].base,
                    o->reps[r].gva + off, item->iov[j].len, idx[pos]);
                off += item->iov[j].len;
            }
        }
    }
    mmc_ops_copier_flush(&copier);
    mmc_ops_copier_free(&copier);

    /* PUT_COMMIT: MMC_OK commits, a copy error aborts */
    cl.items =
        malloc(MF_MAX(MF_MIN(ncommit, mmc->max_batch), 1) * sizeof(*cl.items));
    if (cl.items == NULL) {
        status = MF_ERR_NOMEM;
        goto err_abort;
    }
    pos = 0;
    while (ncommit > 0) {
        size_t first = pos;

        cl.count = 0;
        for (; pos < nvalid && cl.count < mmc->max_batch; pos++) {
            i = idx[pos];
            if (results[i] != MMC_OK) {
                continue;
            }
            if (copy_st[i] != MF_OK) {
                mf_error("%s: copy of '%s' to its replicas failed: %s", what,
                         items[i].key, mmc_status_name(copy_st[i]));
            }
            cl.items[cl.count].put_id = objs[i].id;
            cl.items[cl.count].status = copy_st[i];
            cl.count++;
        }
        ncommit -= cl.count;
        mf_wbuf_init(&w);
        mmc_commit_list_encode(&w, &cl);
        status = mmc_local_call(mmc, MMC_OP_PUT_COMMIT, &w, &resp);
        if (status == MF_OK) {
            status = mmc_status_list_decode(resp.body, resp.len, &sl);
            mf_net_resp_free(&resp);
            if (status == MF_OK && sl.count != cl.count) {
                mmc_status_list_free(&sl);
                status = MF_ERR_PROTO;
            }
            if (status != MF_OK) {
                mf_error("%s: malformed PUT_COMMIT response", what);
            }
        }
        if (status != MF_OK) {
            call_status = status;
        }
        n = 0;
        for (size_t p = first; p < pos; p++) {
            i = idx[p];
            if (results[i] != MMC_OK) {
                continue;
            }
            if (copy_st[i] != MF_OK) {
                results[i] = copy_st[i];
            } else {
                results[i] = status == MF_OK ? sl.status[n] : status;
            }
            n++;
        }
        if (status == MF_OK) {
            mmc_status_list_free(&sl);
        }
    }
    free(cl.items);
    status = mmc_ops_overall(results, count, MMC_OK, call_status);
    goto out_free;

err_abort:
    /* the allocated puts are reclaimed by the meta service's put timeout */
err_free:
    mmc_ops_fill(results, count, status);
out_free:
    free(req.items);
    free(copy_st);
    free(objs);
    free(idx);
    return status;
}

/* ---------------------------------------------------------------- get */

/* Per item state of a get. */
typedef struct mmc_ops_get_item {
    mmc_obj_result_t obj;
    bool leased;
    uint8_t order[MMC_MAX_REPLICAS]; /* replicas to try, best first */
    uint8_t tried;                   /* replicas tried so far */
    bool all_peer;                   /* every failure was a peer error */
} mmc_ops_get_item_t;

/*
 * The order to try an object's replicas in: those on ranks this process
 * sees joined first (same host before other hosts), then the others
 * (same host first again).  A replica on a rank not joined here is either
 * on a process that just died (the meta service has not dropped it yet)
 * or on one that just joined (its membership is on its way): it is
 * waited for, up to the request timeout, so it comes last, not first.
 */
static void mmc_ops_get_order(mmc_t *mmc, mmc_ops_get_item_t *g,
                              uint32_t host_idx)
{
    bool joined[MMC_MAX_REPLICAS];
    uint8_t n = 0;

    for (uint8_t r = 0; r < g->obj.nrep; r++) {
        joined[r] = mf_bm_rank_joined(mmc->bm, g->obj.reps[r].rank);
    }
    for (int pass = 0; pass < 4; pass++) {
        bool want_joined = pass < 2, want_local = (pass % 2) == 0;

        for (uint8_t r = 0; r < g->obj.nrep; r++) {
            if (joined[r] == want_joined &&
                (g->obj.reps[r].host_idx == host_idx) == want_local) {
                g->order[n++] = r;
            }
        }
    }
}

/* Releases every lease of the get; expired leases fail their item. */
static void mmc_ops_release(mmc_t *mmc, mmc_ops_get_item_t *g, size_t count,
                            mmc_status_t *results)
{
    mmc_id_list_t ids;
    mmc_status_list_t sl;
    mf_net_resp_t resp;
    mmc_status_t status;
    size_t pos = 0, first, n;
    mf_wbuf_t w;

    ids.ids =
        malloc(MF_MAX(MF_MIN(count, mmc->max_batch), 1) * sizeof(*ids.ids));
    if (ids.ids == NULL) {
        mf_error("mmc_get: no memory to release the leases; they expire");
        return;
    }
    for (;;) {
        first = pos;
        ids.count = 0;
        for (; pos < count && ids.count < mmc->max_batch; pos++) {
            if (g[pos].leased) {
                ids.ids[ids.count++] = g[pos].obj.id;
            }
        }
        if (ids.count == 0) {
            break;
        }
        mf_wbuf_init(&w);
        mmc_id_list_encode(&w, &ids);
        status = mmc_local_call(mmc, MMC_OP_RELEASE, &w, &resp);
        if (status != MF_OK) {
            continue; /* logged; the leases expire */
        }
        status = mmc_status_list_decode(resp.body, resp.len, &sl);
        mf_net_resp_free(&resp);
        if (status == MF_OK && sl.count != ids.count) {
            mmc_status_list_free(&sl);
            status = MF_ERR_PROTO;
        }
        if (status != MF_OK) {
            mf_error("mmc_get: malformed RELEASE response");
            continue;
        }
        n = 0;
        for (size_t i = first; i < pos; i++) {
            if (!g[i].leased) {
                continue;
            }
            if (sl.status[n] == MMC_ERR_LEASE_EXPIRED && results[i] == MMC_OK) {
                mf_warn("mmc_get: the read lease of item %zu expired before "
                        "its release; the bytes read may be stale",
                        i);
                results[i] = MMC_ERR_LEASE_EXPIRED;
            }
            n++;
        }
        mmc_status_list_free(&sl);
    }
    free(ids.ids);
}

static mmc_status_t mmc_ops_get(mmc_t *mmc, const mmc_local_item_t *items,
                                size_t count, mmc_status_t *results)
{
    const char *what = "mmc_get";
    mmc_status_t status, call_status = MMC_OK;
    mmc_ops_get_item_t *g = NULL;
    mmc_status_t *copy_st = NULL;
    mmc_ops_copier_t copier;
    mmc_obj_list_t objs_resp;
    mmc_key_list_t kl = {0, NULL};
    mf_net_resp_t resp;
    size_t *idx = NULL, nvalid = 0, pos, n, i, pending;
    uint32_t host_idx = atomic_load(&mmc->host_idx);
    uint64_t deadline;
    unsigned nbad = 0;
    mf_wbuf_t w;

    for (i = 0; i < count; i++) {
        results[i] = mmc_ops_check_key(what, items[i].key, i, &nbad);
        if (results[i] == MF_OK) {
            results[i] = mmc_ops_check_iov(what, &items[i], i, &nbad);
        }
    }
    idx = mmc_ops_valid(results, count, &nvalid);
    g = calloc(count > 0 ? count : 1, sizeof(*g));
    copy_st = calloc(count > 0 ? count : 1, sizeof(*copy_st));
    kl.keys =
        malloc(MF_MAX(MF_MIN(nvalid, mmc->max_batch), 1) * sizeof(*kl.keys));
    if (idx == NULL || g == NULL || copy_st == NULL || kl.keys == NULL) {
        status = MF_ERR_NOMEM;
        mmc_ops_fill(results, count, status);
        goto out_free;
    }

    /* GET: read leases */
    for (pos = 0; pos < nvalid; pos += n) {
        n = MF_MIN(nvalid - pos, mmc->max_batch);
        kl.count = (uint32_t)n;
        for (i = 0; i < n; i++) {
            kl.keys[i] = mmc_ops_key(items[idx[pos + i]].key);
        }
        mf_wbuf_init(&w);
        mmc_key_list_encode(&w, &kl);
        status = mmc_local_call(mmc, MMC_OP_GET, &w, &resp);
        if (status == MF_OK) {
            status = mmc_obj_list_decode(resp.body, resp.len, &objs_resp);
            mf_net_resp_free(&resp);
            if (status == MF_OK && objs_resp.count != n) {
                mmc_obj_list_free(&objs_resp);
                status = MF_ERR_PROTO;
            }
            if (status != MF_OK) {
                mf_error("%s: malformed GET response", what);
            }
        }
        if (status != MF_OK) {
            call_status = status;
            for (i = 0; i < n; i++) {
                results[idx[pos + i]] = status;
            }
            continue;
        }
        for (i = 0; i < n; i++) {
            mmc_ops_get_item_t *gi = &g[idx[pos + i]];

            gi->obj = objs_resp.items[i];
            gi->leased = gi->obj.status == MMC_OK;
            results[idx[pos + i]] = gi->obj.status;
            if (gi->obj.status == MMC_OK && gi->obj.nrep == 0) {
                results[idx[pos + i]] = MMC_ERR_NO_REPLICA;
            }
        }
        mmc_obj_list_free(&objs_resp);
    }

    /* sizes */
    for (pos = 0; pos < nvalid; pos++) {
        i = idx[pos];
        if (results[i] == MMC_OK && items[i].size != g[i].obj.size) {
            mf_warn("%s: '%s' is %" PRIu64 " bytes, the buffers hold %" PRIu64
                    " bytes; nothing copied",
                    what, items[i].key, g[i].obj.size, items[i].size);
            results[i] = MMC_ERR_SIZE_MISMATCH;
        }
        if (results[i] == MMC_OK) {
            mmc_ops_get_order(mmc, &g[i], host_idx);
            g[i].all_peer = true;
        }
    }

    /* copies: every pending item from its next replica, until none is */
    n = 0;
    for (pos = 0; pos < nvalid; pos++) {
        if (results[idx[pos]] == MMC_OK) {
            n += items[idx[pos]].niov;
        }
    }
    status = mmc_ops_copier_init(&copier, mmc, MF_COPY_GH2LH, n, copy_st);
    if (status != MF_OK) {
        for (pos = 0; pos < nvalid; pos++) {
            if (results[idx[pos]] == MMC_OK) {
                results[idx[pos]] = status;
            }
        }
        goto out_release;
    }
    deadline = mf_time_ms() + mmc->cfg.timeout_ms;
    do {
        pending = 0;
        for (pos = 0; pos < nvalid; pos++) {
            mmc_ops_get_item_t *gi = &g[idx[pos]];
            const mmc_replica_t *rep;
            uint64_t off = 0;

            i = idx[pos];
            if (results[i] != MMC_OK || gi->tried == gi->obj.nrep ||
                (gi->tried > 0 && copy_st[i] == MF_OK)) {
                continue;
            }
            copy_st[i] = MF_OK;
            rep = &gi->obj.reps[gi->order[gi->tried++]];
            mmc_ops_wait_joined(mmc, rep->rank, deadline);
            for (size_t j = 0; j < items[i].niov; j++) {
                mmc_ops_copier_add(&copier, rep->gva + off,
                                   (uint64_t)(uintptr_t)items[i].iov[j].base,
                                   items[i].iov[j].len, i);
                off += items[i].iov[j].len;
            }
            pending++;
        }
        mmc_ops_copier_flush(&copier);
        /* items that failed: peer errors try the next replica */
        for (pos = 0; pos < nvalid; pos++) {
            mmc_ops_get_item_t *gi = &g[idx[pos]];

            i = idx[pos];
            if (results[i] != MMC_OK || gi->tried == 0 || copy_st[i] == MF_OK) {
                continue;
            }
            if (!mf_status_is_peer_error(copy_st[i])) {
                gi->all_peer = false;
            }
            if (gi->tried < gi->obj.nrep &&
                mf_status_is_peer_error(copy_st[i])) {
                mf_debug("%s: '%s': replica on rank %u failed (%s), trying "
                         "the next",
                         what, items[i].key,
                         gi->obj.reps[gi->order[gi->tried - 1]].rank,
                         mf_status_name(copy_st[i]));
                continue;
            }
            mf_error("%s: cannot read '%s' from %s: %s", what, items[i].key,
                     gi->obj.nrep > 1 ? "any replica" : "its replica",
                     mf_status_name(copy_st[i]));
            results[i] = gi->all_peer ? MMC_ERR_NO_REPLICA : copy_st[i];
        }
    } while (pending > 0);
    mmc_ops_copier_free(&copier);

out_release:
    mmc_ops_release(mmc, g, count, results);
    status = mmc_ops_overall(results, count, MMC_OK, call_status);
out_free:
    free(kl.keys);
    free(copy_st);
    free(g);
    free(idx);
    return status;
}

/* ------------------------------------------------- exist/query/remove */

static mmc_status_t mmc_ops_keys(mmc_t *mmc, uint16_t op, const char *what,
                                 const char *const *keys, size_t count,
                                 mmc_obj_info_t *infos, mmc_status_t *results)
{
    mmc_status_t status, miss, call_status = MMC_OK;
    mmc_key_list_t kl = {0, NULL};
    mmc_obj_list_t ol;
    mmc_status_list_t sl;
    mf_net_resp_t resp;
    size_t *idx = NULL, nvalid = 0, pos, n, i;
    unsigned nbad = 0;
    mf_wbuf_t w;

    for (i = 0; i < count; i++) {
        results[i] = mmc_ops_check_key(what, keys[i], i, &nbad);
    }
    idx = mmc_ops_valid(results, count, &nvalid);
    kl.keys =
        malloc(MF_MAX(MF_MIN(nvalid, mmc->max_batch), 1) * sizeof(*kl.keys));
    if (idx == NULL || kl.keys == NULL) {
        status = MF_ERR_NOMEM;
        mmc_ops_fill(results, count, status);
        goto out_free;
    }
    for (pos = 0; pos < nvalid; pos += n) {
        n = MF_MIN(nvalid - pos, mmc->max_batch);
        kl.count = (uint32_t)n;
        for (i = 0; i < n; i++) {
            kl.keys[i] = mmc_ops_key(keys[idx[pos + i]]);
        }
        mf_wbuf_init(&w);
        mmc_key_list_encode(&w, &kl);
        status = mmc_local_call(mmc, op, &w, &resp);
        if (status == MF_OK && op == MMC_OP_QUERY) {
            status = mmc_obj_list_decode(resp.body, resp.len, &ol);
            mf_net_resp_free(&resp);
            if (status == MF_OK && ol.count != n) {
                mmc_obj_list_free(&ol);
                status = MF_ERR_PROTO;
            }
        } else if (status == MF_OK) {
            status = mmc_status_list_decode(resp.body, resp.len, &sl);
            mf_net_resp_free(&resp);
            if (status == MF_OK && sl.count != n) {
                mmc_status_list_free(&sl);
                status = MF_ERR_PROTO;
            }
        }
        if (status != MF_OK) {
            if (status == MF_ERR_PROTO) {
                mf_error("%s: malformed %s response", what, mmc_op_name(op));
            }
            call_status = status;
            for (i = 0; i < n; i++) {
                results[idx[pos + i]] = status;
            }
            continue;
        }
        for (i = 0; i < n; i++) {
            size_t k = idx[pos + i];

            if (op != MMC_OP_QUERY) {
                results[k] = sl.status[i];
                continue;
            }
            results[k] = ol.items[i].status;
            if (results[k] == MMC_OK) {
                mmc_obj_info_t *info = &infos[k];

                memset(info, 0, sizeof(*info));
                info->size = ol.items[i].size;
                info->nreplicas = ol.items[i].nrep;
                for (uint8_t r = 0; r < ol.items[i].nrep; r++) {
                    info->ranks[r] = ol.items[i].reps[r].rank;
                    info->media[r] = ol.items[i].reps[r].media;
                    info->gvas[r] = ol.items[i].reps[r].gva;
                }
            }
        }
        if (op == MMC_OP_QUERY) {
            mmc_obj_list_free(&ol);
        } else {
            mmc_status_list_free(&sl);
        }
    }
    miss = op == MMC_OP_REMOVE ? MMC_OK : MMC_ERR_NOT_FOUND;
    status = mmc_ops_overall(results, count, miss, call_status);
out_free:
    free(kl.keys);
    free(idx);
    return status;
}

/* ------------------------------------------------------------ the API */

/* Items of put/get from the plain (one buffer per object) form. */
static mmc_status_t mmc_ops_items_plain(const char *const *keys,
                                        void *const *bufs, const size_t *sizes,
                                        size_t count,
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
        items[i].size = niovs[i] <= MMC_OPS_MAX_IOV
                            ? mmc_ops_iov_size(iovs[i], niovs[i])
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

    status = mmc_ops_check_call(what, mmc, keys, count, results);
    if (status != MF_OK) {
        return status;
    }
    if (count > 0 && (bufs == NULL || sizes == NULL)) {
        mf_error("%s: bufs or sizes is NULL", what);
        mmc_ops_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    status = mmc_ops_items_plain(keys, bufs, sizes, count, &items, &iovs);
    if (status != MF_OK) {
        mmc_ops_fill(results, count, status);
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

    status = mmc_ops_check_call(what, mmc, keys, count, results);
    if (status != MF_OK) {
        return status;
    }
    if (count > 0 && (iovs == NULL || niovs == NULL)) {
        mf_error("%s: iovs or niovs is NULL", what);
        mmc_ops_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    status = mmc_ops_items_layers(keys, iovs, niovs, count, &items);
    if (status != MF_OK) {
        mmc_ops_fill(results, count, status);
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
        mmc_ops_check_call("mmc_exist", mmc, keys, count, results);

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
        mmc_ops_check_call("mmc_query", mmc, keys, count, results);

    if (status != MF_OK) {
        return status;
    }
    if (infos == NULL && count > 0) {
        mf_error("mmc_query: infos is NULL");
        mmc_ops_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    return mmc_ops_keys(mmc, MMC_OP_QUERY, "mmc_query", keys, count, infos,
                        results);
}

MF_API mmc_status_t mmc_remove_batch(mmc_t *mmc, const char *const *keys,
                                     size_t count, mmc_status_t *results)
{
    mmc_status_t status =
        mmc_ops_check_call("mmc_remove", mmc, keys, count, results);

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

    if (info_p == NULL) {
        mf_error("mmc_query: info_p is NULL");
        return MF_ERR_INVALID;
    }
    (void)mmc_query_batch(mmc, &key, 1, &info, &result);
    if (result == MMC_OK) {
        *info_p = info;
    }
    return result;
}

MF_API mmc_status_t mmc_remove(mmc_t *mmc, const char *key)
{
    mmc_status_t result;

    (void)mmc_remove_batch(mmc, &key, 1, &result);
    return result;
}
