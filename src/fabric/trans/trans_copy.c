/*
 * TRANS transfers (mf_trans.h): each piece resolves against the peer's
 * buffer table (read again once per transfer when a piece falls outside
 * it, or when the peer's buffers changed) and goes to the peer's
 * transport as one put or get; the transfer completes when every piece's
 * completion fired.  Synchronous forms wait on the same request they
 * would hand out.
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
    mf_trans_rtab_t *tabs[2]; /* the one first read, and a fresh one */
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
    mf_trans_rtab_put(req->trans, req->tabs[0]);
    mf_trans_rtab_put(req->trans, req->tabs[1]);
    mf_trans_peer_put(req->trans, req->peer);
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

/* The buffer of the peer holding piece p: in its table as we know it
 * (read unless known and unchanged), else in a fresh read of it (once per
 * transfer). */
static mf_status_t mf_trans_req_resolve(mf_trans_req_t *req,
                                        const mf_trans_piece_t *p,
                                        const mf_trans_rregion_t **region_p)
{
    const mf_trans_rregion_t *region;
    mf_status_t status;

    for (int pass = 0; pass < 2; pass++) {
        if (req->tabs[pass] == NULL) {
            status = mf_trans_peer_tab(req->trans, req->peer, pass == 1,
                                       &req->tabs[pass]);
            if (status != MF_OK) {
                return status;
            }
        }
        region = mf_trans_rtab_find(req->tabs[pass], p->remote, p->size);
        if (region != NULL) {
            *region_p = region;
            return MF_OK;
        }
    }
    mf_debug("mf-trans %s: %zu bytes at 0x%" PRIx64
             " are in no buffer %s registered",
             req->trans->id, p->size, p->remote, req->peer->id);
    return MF_ERR_OUT_OF_RANGE;
}

/* Issues every piece; what failed at once has its status. */
static void mf_trans_req_start(mf_trans_req_t *req, const char *peer_id,
                               mf_trans_op_t op)
{
    mf_trans_t *trans = req->trans;
    mf_status_t status;
    size_t i;

    status = mf_trans_peer_get(trans, peer_id, &req->peer);
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
        const mf_trans_rregion_t *region = NULL;
        mf_fabric_comp_t *fc = &req->comps[i];
        mf_mem_kind_t kind;

        if (p->size == 0) {
            req->status[i] = MF_OK;
            continue;
        }
        if (p->local == NULL) {
            req->status[i] = MF_ERR_INVALID;
            continue;
        }
        status = mf_trans_req_resolve(req, p, &region);
        if (status != MF_OK) {
            req->status[i] = status;
            continue;
        }
        kind = mf_mem_classify(p->local, p->size);
        if (!(trans->caps[req->peer->tl].mem_kinds & MF_TL_MEM_KIND(kind))) {
            req->status[i] = MF_ERR_UNSUPPORTED;
            continue;
        }
        mf_fabric_comp_init(fc, &req->waiter);
        fc->super.mem_kind = kind;
        atomic_fetch_add(&req->waiter.left, 1);
        status = op == MF_TRANS_WRITE
                     ? mf_tl_put(req->peer->ep, p->local, p->remote, p->size,
                                 region->rkey, &fc->super)
                     : mf_tl_get(req->peer->ep, p->local, p->remote, p->size,
                                 region->rkey, &fc->super);
        if (status == MF_INPROGRESS) {
            req->inflight[i] = true;
            continue;
        }
        atomic_fetch_sub(&req->waiter.left, 1); /* its callback never fires */
        req->status[i] = status;
    }
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
    mf_trans_req_start(req, peer, op);
    mf_fabric_waiter_wait(&req->waiter, mf_trans_req_iface(req));
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
    mf_trans_req_start(req, peer, op);
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
    status = mf_fabric_waiter_wait_for(&req->waiter, mf_trans_req_iface(req),
                                       timeout_ms);
    if (status != MF_OK) {
        return status;
    }
    status = mf_trans_req_results(req, results);
    mf_trans_req_free(req);
    return status;
}

MF_API mf_status_t mf_trans_test(mf_trans_req_t *req, mf_status_t *results)
{
    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    if (atomic_load_explicit(&req->waiter.left, memory_order_acquire) != 0) {
        return MF_INPROGRESS;
    }
    return mf_trans_wait(req, 0, results);
}
