/*
 * The batch machinery of the object operations (batch.h): item checks,
 * records, the chunked request loop with the encoders and decoders of each
 * request type, and the batch copier.
 *
 * Requests: the records a step takes go out in requests of at most
 * max_batch keys (what HELLO said the meta service accepts); a request
 * that fails, or whose response does not answer exactly its records,
 * fails those records with its error.
 */
#include "cache/local/batch.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MMC_BATCH_PIECE_CHUNK 65536u /* pieces of one mf_bm_copy_batch */
#define MMC_BATCH_LOG_ITEMS   8u     /* bad items logged one by one */

/* ------------------------------------------------------------ helpers */

void mmc_batch_fill(mmc_status_t *results, size_t count, mmc_status_t status)
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
mmc_status_t mmc_batch_overall(mmc_status_t *results, size_t count,
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
        mmc_batch_fill(results, count, call_status);
        return call_status;
    }
    return MMC_ERR_PARTIAL;
}

/* Arguments common to every call; the results are filled on failure. */
mmc_status_t mmc_batch_check_call(const char *what, mmc_t *mmc,
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
        mmc_batch_fill(results, count, status);
    }
    return status;
}

/* Logs a bad item (the first few of a call one by one). */
void mmc_batch_bad_item(const char *what, size_t index, unsigned *nbad,
                        const char *why)
{
    if (*nbad < MMC_BATCH_LOG_ITEMS) {
        mf_error("%s: item %zu: %s", what, index, why);
    } else if (*nbad == MMC_BATCH_LOG_ITEMS) {
        mf_error("%s: more bad items follow, not logged", what);
    }
    (*nbad)++;
}

/* MF_OK for a valid key; else logs why and returns MF_ERR_INVALID. */
mmc_status_t mmc_batch_check_key(const char *what, const char *key,
                                 size_t index, unsigned *nbad)
{
    size_t len;

    if (key == NULL) {
        mmc_batch_bad_item(what, index, nbad, "key is NULL");
        return MF_ERR_INVALID;
    }
    len = strnlen(key, MMC_KEY_MAX + 1);
    if (!mmc_key_valid(key, len)) {
        mmc_batch_bad_item(what, index, nbad,
                           len == 0 ? "empty key"
                                    : "key longer than 255 bytes");
        return MF_ERR_INVALID;
    }
    return MF_OK;
}

/* The options up to media, which a caller's struct may lack. */
#define MMC_BATCH_PUT_OPTS_MEDIA                                               \
    (offsetof(mmc_put_opts_t, media) + sizeof(((mmc_put_opts_t *)0)->media))

mmc_status_t mmc_batch_alloc_req(const char *what, mmc_t *mmc,
                                 const mmc_put_opts_t *opts,
                                 mmc_put_alloc_req_t *req)
{
    memset(req, 0, sizeof(*req));
    req->replicas = mmc->cfg.replicas;
    if (opts != NULL) {
        if (opts->size < MMC_BATCH_PUT_OPTS_MIN) {
            mf_error("%s: opts->size is %zu (call mmc_put_opts_init)", what,
                     opts->size);
            return MF_ERR_INVALID;
        }
        if (opts->replicas > MMC_MAX_REPLICAS ||
            opts->npreferred > MMC_MAX_REPLICAS) {
            mf_error("%s: replicas %u or npreferred %u above %u", what,
                     opts->replicas, opts->npreferred, MMC_MAX_REPLICAS);
            return MF_ERR_INVALID;
        }
        if ((opts->flags & ~MMC_PUT_REPLACE) != 0) {
            mf_error("%s: unknown flags 0x%x", what, opts->flags);
            return MF_ERR_INVALID;
        }
        if (opts->size >= MMC_BATCH_PUT_OPTS_MEDIA) {
            if (opts->media != MMC_MEDIA_DRAM && opts->media != MMC_MEDIA_HBM) {
                mf_error("%s: unknown media %u", what, opts->media);
                return MF_ERR_INVALID;
            }
            req->media = (uint8_t)opts->media;
        }
        if (opts->replicas != 0) {
            req->replicas = opts->replicas;
        }
        req->flags = opts->flags;
        req->npref = opts->npreferred;
        memcpy(req->pref, opts->preferred, sizeof(req->pref));
    }
    return MF_OK;
}

mmc_status_t mmc_batch_check_infos(const char *what,
                                   const mmc_obj_info_t *infos, size_t count,
                                   mmc_status_t *results)
{
    if (infos == NULL && count > 0) {
        mf_error("%s: infos is NULL", what);
        mmc_batch_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    if (count > 0 && (infos[0].info_size < MMC_BATCH_OBJ_INFO_MIN ||
                      infos[0].info_size > MMC_BATCH_OBJ_INFO_MAX)) {
        mf_error("%s: infos[0].info_size is %zu (call mmc_obj_info_init)", what,
                 infos[0].info_size);
        mmc_batch_fill(results, count, MF_ERR_INVALID);
        return MF_ERR_INVALID;
    }
    return MF_OK;
}

void mmc_batch_info_out(const mmc_obj_result_t *obj, mmc_obj_info_t *infos,
                        size_t i)
{
    mmc_obj_info_t info;

    memset(&info, 0, sizeof(info));
    info.info_size = infos[0].info_size;
    info.size = obj->size;
    info.nreplicas = obj->nrep;
    for (uint8_t r = 0; r < obj->nrep; r++) {
        info.ranks[r] = obj->reps[r].rank;
        info.media[r] = obj->reps[r].media;
        info.gvas[r] = obj->reps[r].gva;
    }
    /* the caller's struct may be of another version */
    memcpy((uint8_t *)infos + i * infos[0].info_size, &info,
           MF_MIN(infos[0].info_size, sizeof(info)));
}

mmc_key_t mmc_batch_key(const char *key)
{
    mmc_key_t k = {key, (uint32_t)strlen(key)};

    return k;
}

/* Waits (until deadline_ms) for a rank's segment to be reachable from
 * here, when the pool has not shown it joined yet. */
void mmc_batch_wait_joined(mmc_t *mmc, uint32_t rank, uint64_t deadline_ms)
{
    uint64_t now = mf_time_ms();

    if (rank >= mmc->hello.world_size || now >= deadline_ms) {
        return; /* the copy reports what is wrong */
    }
    (void)mf_bm_rank_wait(mmc->bm, rank,
                          (int)MF_MIN(deadline_ms - now, (uint64_t)INT32_MAX));
}

/* ------------------------------------------------------------ records */

/* npieces: how many pieces will come (the buffers hold at most
 * MMC_BATCH_PIECE_CHUNK of them at a time). */
mmc_status_t mmc_batch_copier_init(mmc_batch_copier_t *c, mmc_t *mmc,
                                   mf_copy_dir_t dir, size_t npieces,
                                   mmc_batch_rec_t *recs)
{
    memset(c, 0, sizeof(*c));
    c->mmc = mmc;
    c->dir = dir;
    c->recs = recs;
    c->cap = MF_MAX(MF_MIN(npieces, MMC_BATCH_PIECE_CHUNK), 1);
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

void mmc_batch_copier_flush(mmc_batch_copier_t *c)
{
    uint64_t start;
    mf_status_t st;

    if (c->n == 0) {
        return;
    }
    /* a piece the copy never reached keeps this and fails its item */
    for (size_t k = 0; k < c->n; k++) {
        c->pres[k] = MF_ERR_CANCELED;
    }
    start = mf_time_ns();
    st = mf_bm_copy_batch(c->mmc->bm, c->pieces, c->n, c->dir, c->pres);
    mmc_local_stats_data(start);
    if (st != MF_OK) {
        for (size_t k = 0; k < c->n; k++) {
            mf_status_t piece = c->pres[k] == MF_ERR_CANCELED ? st : c->pres[k];

            if (piece != MF_OK && c->recs[c->owner[k]].copy_status == MF_OK) {
                c->recs[c->owner[k]].copy_status = piece;
            }
        }
    }
    c->n = 0;
}

void mmc_batch_copier_add(mmc_batch_copier_t *c, uint64_t src, uint64_t dst,
                          size_t size, size_t item)
{
    if (size == 0) {
        return;
    }
    if (c->n == c->cap) {
        mmc_batch_copier_flush(c);
    }
    c->pieces[c->n].src = src;
    c->pieces[c->n].dst = dst;
    c->pieces[c->n].size = size;
    c->owner[c->n] = item;
    c->n++;
}

void mmc_batch_copier_free(mmc_batch_copier_t *c)
{
    free(c->pieces);
    free(c->owner);
    free(c->pres);
}

/* Validates the buffers of an item of put or get (the key apart). */
mmc_status_t mmc_batch_check_iov(const char *what, const mmc_local_item_t *item,
                                 size_t index, unsigned *nbad)
{
    if (item->niov < 1 || item->niov > MMC_BATCH_IOV_MAX) {
        mmc_batch_bad_item(what, index, nbad,
                           "number of buffers out of range (1..65536)");
        return MF_ERR_INVALID;
    }
    if (item->iov == NULL) {
        mmc_batch_bad_item(what, index, nbad, "buffers are NULL");
        return MF_ERR_INVALID;
    }
    for (size_t j = 0; j < item->niov; j++) {
        if (item->iov[j].base == NULL && item->iov[j].len > 0) {
            mmc_batch_bad_item(what, index, nbad, "a buffer is NULL");
            return MF_ERR_INVALID;
        }
        switch (item->iov[j].mem) {
        case MMC_MEM_AUTO:
        case MMC_MEM_HOST:
        case MMC_MEM_DEVICE:
            /* device memory without a device kind here: the copy says */
            break;
        default:
            mmc_batch_bad_item(what, index, nbad, "a buffer's mem is unknown");
            return MF_ERR_INVALID;
        }
    }
    return MF_OK;
}

mf_copy_dir_t mmc_batch_dir(const mmc_batch_rec_t *recs, size_t count, bool put)
{
    /* [local device][global device] */
    static const mf_copy_dir_t dirs[2][2][2] = {
        {{MF_COPY_GH2LH, MF_COPY_GD2LH}, {MF_COPY_GH2LD, MF_COPY_GD2LD}},
        {{MF_COPY_LH2GH, MF_COPY_LH2GD}, {MF_COPY_LD2GH, MF_COPY_LD2GD}},
    };
    bool lhost = true, ldev = true, ghost = true, gdev = true;

    for (size_t i = 0; i < count; i++) {
        const mmc_local_item_t *item = recs[i].item;

        if (recs[i].status != MMC_OK || item == NULL) {
            continue;
        }
        for (size_t j = 0; j < item->niov && item->iov != NULL; j++) {
            lhost = lhost && item->iov[j].mem == MMC_MEM_HOST;
            ldev = ldev && item->iov[j].mem == MMC_MEM_DEVICE;
        }
        for (uint8_t r = 0; r < recs[i].obj.nrep; r++) {
            ghost = ghost && recs[i].obj.reps[r].media == MMC_MEDIA_DRAM;
            gdev = gdev && recs[i].obj.reps[r].media == MMC_MEDIA_HBM;
        }
    }
    if ((!lhost && !ldev) || (!ghost && !gdev)) {
        return MF_COPY_AUTO; /* each address is what it is */
    }
    return dirs[put][!lhost][!ghost];
}

/* Sum of the lengths of an item's buffers. */
uint64_t mmc_batch_iov_size(const mmc_iov_t *iov, size_t niov)
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

/* A call's records, keys checked (and, with items, their buffers). */
mmc_batch_rec_t *mmc_batch_recs_new(const char *what, const char *const *keys,
                                    const mmc_local_item_t *items, size_t count)
{
    mmc_batch_rec_t *recs = calloc(count > 0 ? count : 1, sizeof(*recs));
    unsigned nbad = 0;

    for (size_t i = 0; recs != NULL && i < count; i++) {
        recs[i].key = items != NULL ? items[i].key : keys[i];
        recs[i].item = items != NULL ? &items[i] : NULL;
        recs[i].status = mmc_batch_check_key(what, recs[i].key, i, &nbad);
        if (recs[i].status == MF_OK && items != NULL) {
            recs[i].status = mmc_batch_check_iov(what, &items[i], i, &nbad);
        }
    }
    return recs;
}

/* The results of the records and the call's overall status. */
mmc_status_t mmc_batch_recs_done(const mmc_batch_rec_t *recs, size_t count,
                                 mmc_status_t miss, mmc_status_t call_status,
                                 mmc_status_t *results)
{
    for (size_t i = 0; i < count; i++) {
        results[i] = recs[i].status;
    }
    return mmc_batch_overall(results, count, miss, call_status);
}

static bool mmc_batch_rec_ok(const mmc_batch_rec_t *rec)
{
    return rec->status == MMC_OK;
}

/* ------------------------------------------------------------ requests */

/* Runs step over recs; returns the error of the last request that failed,
 * MMC_OK when none did. */
mmc_status_t mmc_batch_step_run(mmc_t *mmc, const char *what,
                                const mmc_batch_step_t *step, const void *arg,
                                mmc_batch_rec_t *recs, size_t count)
{
    mmc_status_t status, call_status = MMC_OK;
    mmc_batch_rec_t **chunk;
    mf_net_resp_t resp;
    size_t pos = 0;
    uint32_t n, k;
    mf_wbuf_t w;

    chunk = malloc(MF_MAX(MF_MIN(count, mmc->max_batch), 1) * sizeof(*chunk));
    for (;;) {
        n = 0;
        for (; pos < count && n < mmc->max_batch; pos++) {
            if (step->take(&recs[pos])) {
                if (chunk == NULL) {
                    recs[pos].status =
                        step->fail_items ? MF_ERR_NOMEM : recs[pos].status;
                    call_status = MF_ERR_NOMEM;
                    continue;
                }
                chunk[n++] = &recs[pos];
            }
        }
        if (n == 0) {
            break;
        }
        mf_wbuf_init(&w);
        status = step->encode(&w, chunk, n, arg);
        if (status == MF_OK) {
            status = mmc_local_call(mmc, step->op, &w, &resp);
        } else {
            mf_wbuf_free(&w);
        }
        if (status == MF_OK) {
            status = step->decode(&resp, chunk, n);
            mf_net_resp_free(&resp);
            if (status == MF_ERR_PROTO) {
                mf_error("%s: malformed %s response", what,
                         mmc_op_name(step->op));
            }
        }
        if (status != MF_OK) {
            call_status = status;
            for (k = 0; k < n && step->fail_items; k++) {
                chunk[k]->status = status;
            }
        }
    }
    free(chunk);
    return call_status;
}

/* Request bodies: lists of the records' keys, ids and outcomes. */

/* The records' keys as a key list (free kl->keys). */
static mmc_status_t mmc_batch_key_list(mmc_batch_rec_t *const *recs, uint32_t n,
                                       mmc_key_list_t *kl)
{
    kl->count = n;
    kl->keys = malloc(n * sizeof(mmc_key_t));
    if (kl->keys == NULL) {
        return MF_ERR_NOMEM;
    }
    for (uint32_t k = 0; k < n; k++) {
        kl->keys[k] = mmc_batch_key(recs[k]->key);
    }
    return MF_OK;
}

static mmc_status_t mmc_batch_encode_keys(mf_wbuf_t *w,
                                          mmc_batch_rec_t *const *recs,
                                          uint32_t n, const void *arg)
{
    mmc_key_list_t kl;

    if (mmc_batch_key_list(recs, n, &kl) != MF_OK) {
        return MF_ERR_NOMEM;
    }
    mmc_key_list_encode(w, &kl);
    free(kl.keys);
    return MF_OK;
}

static mmc_status_t mmc_batch_encode_alloc(mf_wbuf_t *w,
                                           mmc_batch_rec_t *const *recs,
                                           uint32_t n, const void *arg)
{
    mmc_put_alloc_req_t req = *(const mmc_put_alloc_req_t *)arg;

    req.count = n;
    req.items = malloc(n * sizeof(*req.items));
    if (req.items == NULL) {
        return MF_ERR_NOMEM;
    }
    for (uint32_t k = 0; k < n; k++) {
        req.items[k].key = mmc_batch_key(recs[k]->key);
        req.items[k].size = recs[k]->item->size;
    }
    mmc_put_alloc_req_encode(w, &req);
    free(req.items);
    return MF_OK;
}

/* PUT_COMMIT: MMC_OK commits, a copy error aborts the put. */
static mmc_status_t mmc_batch_encode_commit(mf_wbuf_t *w,
                                            mmc_batch_rec_t *const *recs,
                                            uint32_t n, const void *arg)
{
    mmc_commit_list_t cl = {n, malloc(n * sizeof(mmc_commit_item_t))};

    if (cl.items == NULL) {
        return MF_ERR_NOMEM;
    }
    for (uint32_t k = 0; k < n; k++) {
        cl.items[k].put_id = recs[k]->obj.id;
        cl.items[k].status = recs[k]->copy_status;
    }
    mmc_commit_list_encode(w, &cl);
    free(cl.items);
    return MF_OK;
}

static mmc_status_t mmc_batch_encode_ids(mf_wbuf_t *w,
                                         mmc_batch_rec_t *const *recs,
                                         uint32_t n, const void *arg)
{
    mmc_id_list_t ids = {n, malloc(n * sizeof(uint64_t))};

    if (ids.ids == NULL) {
        return MF_ERR_NOMEM;
    }
    for (uint32_t k = 0; k < n; k++) {
        ids.ids[k] = recs[k]->obj.id;
    }
    mmc_id_list_encode(w, &ids);
    free(ids.ids);
    return MF_OK;
}

/* Responses: a status or an object per record, in order. */

static mmc_status_t mmc_batch_statuses(const mf_net_resp_t *resp, uint32_t n,
                                       mmc_status_list_t *sl)
{
    mmc_status_t status = mmc_status_list_decode(resp->body, resp->len, sl);

    if (status == MF_OK && sl->count != n) {
        mmc_status_list_free(sl);
        status = MF_ERR_PROTO;
    }
    return status;
}

/*
 * The objects of a response, decoded straight into the records: no
 * allocation per call (a list of thousands of objects is hundreds of KiB,
 * which malloc would map and unmap, faulting every page in again, each
 * call).  A malformed response fails every record of the request, so what
 * a partial decode wrote is never read.
 */
static mmc_obj_result_t *mmc_batch_obj_slot(void *arg, uint32_t i)
{
    mmc_batch_rec_t *const *recs = arg;

    return &recs[i]->obj;
}

static mmc_status_t mmc_batch_objects(const mf_net_resp_t *resp, uint32_t n,
                                      mmc_batch_rec_t *const *recs)
{
    mmc_status_t status;

    status = mmc_obj_list_decode_into(resp->body, resp->len, n,
                                      mmc_batch_obj_slot, (void *)recs);
    for (uint32_t k = 0; status == MF_OK && k < n; k++) {
        recs[k]->status = recs[k]->obj.status;
    }
    return status;
}

static mmc_status_t mmc_batch_decode_status(const mf_net_resp_t *resp,
                                            mmc_batch_rec_t *const *recs,
                                            uint32_t n)
{
    mmc_status_list_t sl;
    mmc_status_t status = mmc_batch_statuses(resp, n, &sl);

    for (uint32_t k = 0; status == MF_OK && k < n; k++) {
        recs[k]->status = sl.status[k];
    }
    if (status == MF_OK) {
        mmc_status_list_free(&sl);
    }
    return status;
}

static mmc_status_t mmc_batch_decode_objects(const mf_net_resp_t *resp,
                                             mmc_batch_rec_t *const *recs,
                                             uint32_t n)
{
    return mmc_batch_objects(resp, n, recs);
}

/* PUT_ALLOC: an allocated put has an id and at least one replica. */
static mmc_status_t mmc_batch_decode_alloc(const mf_net_resp_t *resp,
                                           mmc_batch_rec_t *const *recs,
                                           uint32_t n)
{
    mmc_status_t status = mmc_batch_objects(resp, n, recs);

    for (uint32_t k = 0; status == MF_OK && k < n; k++) {
        if (recs[k]->status == MMC_OK &&
            (recs[k]->obj.nrep == 0 || recs[k]->obj.id == 0)) {
            mf_error("mmc_put: PUT_ALLOC gave '%s' no replica", recs[k]->key);
            recs[k]->status = MF_ERR_PROTO;
        }
    }
    return status;
}

/* PUT_COMMIT: a put whose copy failed keeps the copy's error. */
static mmc_status_t mmc_batch_decode_commit(const mf_net_resp_t *resp,
                                            mmc_batch_rec_t *const *recs,
                                            uint32_t n)
{
    mmc_status_list_t sl;
    mmc_status_t status = mmc_batch_statuses(resp, n, &sl);

    for (uint32_t k = 0; status == MF_OK && k < n; k++) {
        recs[k]->status =
            recs[k]->copy_status != MF_OK ? recs[k]->copy_status : sl.status[k];
    }
    if (status == MF_OK) {
        mmc_status_list_free(&sl);
    }
    return status;
}

/* GET: a read lease per object found. */
static mmc_status_t mmc_batch_decode_get(const mf_net_resp_t *resp,
                                         mmc_batch_rec_t *const *recs,
                                         uint32_t n)
{
    mmc_status_t status = mmc_batch_objects(resp, n, recs);

    for (uint32_t k = 0; status == MF_OK && k < n; k++) {
        recs[k]->leased = recs[k]->status == MMC_OK;
        if (recs[k]->status == MMC_OK && recs[k]->obj.nrep == 0) {
            recs[k]->status = MMC_ERR_NO_REPLICA;
        }
    }
    return status;
}

/* RELEASE: a lease that expired before its release fails its get, since
 * the bytes read may have been reused meanwhile. */
static mmc_status_t mmc_batch_decode_release(const mf_net_resp_t *resp,
                                             mmc_batch_rec_t *const *recs,
                                             uint32_t n)
{
    mmc_status_list_t sl;
    mmc_status_t status = mmc_batch_statuses(resp, n, &sl);

    for (uint32_t k = 0; status == MF_OK && k < n; k++) {
        if (sl.status[k] == MMC_ERR_LEASE_EXPIRED &&
            recs[k]->status == MMC_OK) {
            mf_warn("mmc_get: the read lease of '%s' expired before its "
                    "release; the bytes read may be stale",
                    recs[k]->key);
            recs[k]->status = MMC_ERR_LEASE_EXPIRED;
        }
    }
    if (status == MF_OK) {
        mmc_status_list_free(&sl);
    }
    return status;
}

/* LEASE (arg: the uint32_t duration): like GET's answer. */
static mmc_status_t mmc_batch_encode_lease(mf_wbuf_t *w,
                                           mmc_batch_rec_t *const *recs,
                                           uint32_t n, const void *arg)
{
    mmc_key_list_t kl;

    if (mmc_batch_key_list(recs, n, &kl) != MF_OK) {
        return MF_ERR_NOMEM;
    }
    mmc_lease_req_encode(w, *(const uint32_t *)arg, &kl);
    free(kl.keys);
    return MF_OK;
}

static bool mmc_batch_rec_leased(const mmc_batch_rec_t *rec)
{
    return rec->leased;
}

/* ------------------------------------------------------------ steps */

const mmc_batch_step_t mmc_batch_put_alloc = {
    MMC_OP_PUT_ALLOC, true, mmc_batch_rec_ok, mmc_batch_encode_alloc,
    mmc_batch_decode_alloc};
const mmc_batch_step_t mmc_batch_put_commit = {
    MMC_OP_PUT_COMMIT, true, mmc_batch_rec_ok, mmc_batch_encode_commit,
    mmc_batch_decode_commit};
const mmc_batch_step_t mmc_batch_get = {MMC_OP_GET, true, mmc_batch_rec_ok,
                                        mmc_batch_encode_keys,
                                        mmc_batch_decode_get};
const mmc_batch_step_t mmc_batch_release = {
    MMC_OP_RELEASE, false, mmc_batch_rec_leased, mmc_batch_encode_ids,
    mmc_batch_decode_release};
const mmc_batch_step_t mmc_batch_exist = {MMC_OP_EXIST, true, mmc_batch_rec_ok,
                                          mmc_batch_encode_keys,
                                          mmc_batch_decode_status};
const mmc_batch_step_t mmc_batch_remove = {
    MMC_OP_REMOVE, true, mmc_batch_rec_ok, mmc_batch_encode_keys,
    mmc_batch_decode_status};
const mmc_batch_step_t mmc_batch_lease = {MMC_OP_LEASE, true, mmc_batch_rec_ok,
                                          mmc_batch_encode_lease,
                                          mmc_batch_decode_get};
const mmc_batch_step_t mmc_batch_query = {MMC_OP_QUERY, true, mmc_batch_rec_ok,
                                          mmc_batch_encode_keys,
                                          mmc_batch_decode_objects};
