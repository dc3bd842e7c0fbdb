/*
 * TRANS transfers (mf_trans.h): each piece resolves against the peer's
 * buffer table (read again once per transfer when a piece falls outside
 * it, or when the peer's buffers changed) and goes to the peer's
 * transport as one put or get; the transfer completes when every piece's
 * completion fired.  A piece the peer refused by its key (the buffer was
 * registered again at that address after our table was read) is issued
 * once more on a fresh read of the table.  Synchronous forms wait on the
 * same request they would hand out.
 */
#include "fabric/trans/trans_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A transfer in flight: it holds the peer and the tables its pieces'
 * remote keys come from until every completion fired. */
struct mf_trans_req {
    mf_trans_t *trans;
    mf_trans_peer_t *peer;
    mf_trans_op_t op;
    /* the peer's tables: as known, a fresh read for pieces outside it,
     * a fresh read for pieces the peer refused; tab_err: a read failed */
    mf_trans_rtab_t *tabs[3];
    mf_status_t tab_err[3];
    bool retried; /* the refused pieces were issued once more */
    mf_fabric_waiter_t waiter;
    size_t count;
    mf_trans_piece_t *pieces; /* the caller's (sync) or a copy (async) */
    bool own_pieces;
    mf_fabric_comp_t *comps; /* per piece; status of those in flight */
    mf_status_t *status;     /* per piece: its result once known */
    bool *inflight;          /* per piece: its completion fires */
    mf_status_t first;       /* a failure before any piece was issued */
};

static void mf_trans_req_free(mf_trans_req_t *req)
{
    for (int k = 0; k < 3; k++) {
        mf_trans_rtab_put(req->trans, req->tabs[k]);
    }
    mf_trans_peer_put(req->trans, req->peer);
    atomic_fetch_sub(&req->trans->reqs, 1);
    if (req->own_pieces) {
        free(req->pieces);
    }
    free(req->comps);
    free(req->status);
    free(req->inflight);
    free(req);
}

static mf_trans_req_t *mf_trans_req_new(mf_trans_t *trans,
                                        const mf_trans_piece_t *pieces,
                                        size_t count, bool copy)
{
    mf_trans_req_t *req = calloc(1, sizeof(*req));
    size_t n = MF_MAX(count, 1);

    if (req == NULL) {
        return NULL;
    }
    atomic_fetch_add(&trans->reqs, 1);
    req->trans = trans;
    req->count = count;
    req->comps = calloc(n, sizeof(*req->comps));
    req->status = calloc(n, sizeof(*req->status));
    req->inflight = calloc(n, sizeof(*req->inflight));
    if (copy) {
        req->pieces = malloc(n * sizeof(*req->pieces));
        req->own_pieces = true;
        if (req->pieces != NULL && count > 0) {
            memcpy(req->pieces, pieces, count * sizeof(*pieces));
        }
    } else {
        req->pieces = (mf_trans_piece_t *)pieces;
    }
    if (req->comps == NULL || req->status == NULL || req->inflight == NULL ||
        req->pieces == NULL) {
        mf_trans_req_free(req);
        return NULL;
    }
    atomic_init(&req->waiter.left, 0);
    return req;
}

/* The buffer holding piece p in table slot k, read first if needed
 * (fresh for slots 1 and 2; a failed read fails every later piece). */
static const mf_trans_rregion_t *mf_trans_req_find(mf_trans_req_t *req, int k,
                                                   const mf_trans_piece_t *p,
                                                   mf_status_t *status_p)
{
    if (req->tabs[k] == NULL && req->tab_err[k] == MF_OK) {
        req->tab_err[k] =
            mf_trans_peer_tab(req->trans, req->peer, k > 0, &req->tabs[k]);
    }
    if (req->tab_err[k] != MF_OK) {
        *status_p = req->tab_err[k];
        return NULL;
    }
    *status_p = MF_ERR_OUT_OF_RANGE;
    return mf_trans_rtab_find(req->tabs[k], p->remote, p->size);
}

/* Issues piece i on the buffer of table slot `first` (slot 0 falls back
 * on a fresh read, slot 1); what fails at once gets its status. */
static void mf_trans_req_issue(mf_trans_req_t *req, size_t i, int first)
{
    const mf_trans_piece_t *p = &req->pieces[i];
    const mf_trans_rregion_t *region;
    mf_fabric_comp_t *fc = &req->comps[i];
    mf_trans_t *trans = req->trans;
    mf_mem_kind_t kind;
    mf_status_t status;

    req->inflight[i] = false;
    region = mf_trans_req_find(req, first, p, &status);
    if (region == NULL && first == 0 && status == MF_ERR_OUT_OF_RANGE) {
        region = mf_trans_req_find(req, 1, p, &status);
    }
    if (region == NULL) {
        if (status == MF_ERR_OUT_OF_RANGE) {
            mf_debug("mf-trans %s: %zu bytes at 0x%" PRIx64
                     " are in no buffer %s registered",
                     trans->id, p->size, p->remote, req->peer->id);
        }
        req->status[i] = status;
        return;
    }
    kind = mf_mem_classify(p->local, p->size);
    if (!(trans->caps[req->peer->tl].local_kinds & MF_TL_MEM_KIND(kind))) {
        req->status[i] = MF_ERR_UNSUPPORTED;
        return;
    }
    mf_fabric_comp_init(fc, &req->waiter);
    fc->super.mem_kind = kind;
    atomic_fetch_add(&req->waiter.left, 1);
    status = req->op == MF_TRANS_WRITE
                 ? mf_tl_put(req->peer->ep, p->local, p->remote, p->size,
                             region->rkey, &fc->super)
                 : mf_tl_get(req->peer->ep, p->local, p->remote, p->size,
                             region->rkey, &fc->super);
    if (status == MF_INPROGRESS) {
        req->inflight[i] = true;
        return;
    }
    atomic_fetch_sub(&req->waiter.left, 1); /* its callback never fires */
    req->status[i] = status;
}

/* Issues every piece. */
static void mf_trans_req_start(mf_trans_req_t *req, const char *peer_id)
{
    mf_status_t status;
    size_t i;

    status = mf_trans_peer_get(req->trans, peer_id, &req->peer);
    if (status == MF_OK && atomic_load(&req->peer->lost)) {
        status = MF_ERR_PEER_LOST;
    }
    if (status != MF_OK) {
        req->first = status;
        for (i = 0; i < req->count; i++) {
            req->status[i] = status;
        }
        return;
    }
    for (i = 0; i < req->count; i++) {
        const mf_trans_piece_t *p = &req->pieces[i];

        if (p->size == 0) {
            req->status[i] = MF_OK;
        } else if (p->local == NULL) {
            req->status[i] = MF_ERR_INVALID;
        } else {
            mf_trans_req_issue(req, i, 0);
        }
    }
}

/* Every completion fired: issues the pieces the peer refused by their
 * key once more, on a fresh table.  Whether it issued any (the request
 * runs on then). */
static bool mf_trans_req_retry(mf_trans_req_t *req)
{
    bool any = false;

    if (req->retried || req->peer == NULL) {
        return false;
    }
    for (size_t i = 0; i < req->count; i++) {
        if (req->inflight[i] && req->comps[i].status == MF_ERR_PEER_REJECTED) {
            if (!req->retried) {
                req->retried = true;
                atomic_store(&req->peer->stale, true);
            }
            mf_trans_req_issue(req, i, 2);
            any = true;
        }
    }
    return any;
}

/* Every piece's status into results (may be NULL); the first error. */
static mf_status_t mf_trans_req_results(mf_trans_req_t *req,
                                        mf_status_t *results)
{
    mf_status_t first = req->first;

    for (size_t i = 0; i < req->count; i++) {
        mf_status_t st =
            req->inflight[i] ? req->comps[i].status : req->status[i];

        if (st != MF_OK && first == MF_OK) {
            first = st;
        }
        if (results != NULL) {
            results[i] = st;
        }
    }
    return first;
}

static mf_tl_iface_t *mf_trans_req_iface(mf_trans_req_t *req)
{
    return req->peer != NULL ? req->trans->ifaces[req->peer->tl] : NULL;
}

static bool mf_trans_args_ok(mf_trans_t *trans, const char *peer,
                             mf_trans_op_t op, const mf_trans_piece_t *pieces,
                             size_t count)
{
    return trans != NULL && peer != NULL &&
           (op == MF_TRANS_WRITE || op == MF_TRANS_READ) &&
           (count == 0 || pieces != NULL);
}

MF_API mf_status_t mf_trans_batch(mf_trans_t *trans, const char *peer,
                                  mf_trans_op_t op,
                                  const mf_trans_piece_t *pieces, size_t count,
                                  mf_status_t *results)
{
    mf_trans_req_t *req;
    mf_status_t status;

    if (!mf_trans_args_ok(trans, peer, op, pieces, count)) {
        return MF_ERR_INVALID;
    }
    req = mf_trans_req_new(trans, pieces, count, false);
    if (req == NULL) {
        return MF_ERR_NOMEM;
    }
    req->op = op;
    mf_trans_req_start(req, peer);
    do {
        mf_fabric_waiter_wait(&req->waiter, mf_trans_req_iface(req));
    } while (mf_trans_req_retry(req));
    status = mf_trans_req_results(req, results);
    mf_trans_req_free(req);
    return status;
}

MF_API mf_status_t mf_trans_write(mf_trans_t *trans, const char *peer,
                                  const void *local, uint64_t remote,
                                  size_t size)
{
    mf_trans_piece_t p = {(void *)local, remote, size};

    return mf_trans_batch(trans, peer, MF_TRANS_WRITE, &p, 1, NULL);
}

MF_API mf_status_t mf_trans_read(mf_trans_t *trans, const char *peer,
                                 void *local, uint64_t remote, size_t size)
{
    mf_trans_piece_t p = {local, remote, size};

    return mf_trans_batch(trans, peer, MF_TRANS_READ, &p, 1, NULL);
}

MF_API mf_status_t mf_trans_submit(mf_trans_t *trans, const char *peer,
                                   mf_trans_op_t op,
                                   const mf_trans_piece_t *pieces, size_t count,
                                   mf_trans_req_t **req_p)
{
    mf_trans_req_t *req;

    if (!mf_trans_args_ok(trans, peer, op, pieces, count) || req_p == NULL) {
        return MF_ERR_INVALID;
    }
    req = mf_trans_req_new(trans, pieces, count, true);
    if (req == NULL) {
        return MF_ERR_NOMEM;
    }
    req->op = op;
    mf_trans_req_start(req, peer);
    *req_p = req;
    return MF_OK;
}

MF_API mf_status_t mf_trans_wait(mf_trans_req_t *req, int timeout_ms,
                                 mf_status_t *results)
{
    mf_status_t status;

    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    do {
        status = mf_fabric_waiter_wait_for(&req->waiter,
                                           mf_trans_req_iface(req), timeout_ms);
        if (status != MF_OK) {
            return MF_INPROGRESS; /* expired: it runs on */
        }
    } while (mf_trans_req_retry(req));
    status = mf_trans_req_results(req, results);
    mf_trans_req_free(req);
    return status;
}

MF_API mf_status_t mf_trans_test(mf_trans_req_t *req, mf_status_t *results)
{
    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    return mf_trans_wait(req, 0, results);
}
