/*
 * ucx transport: put, get and flush, and device memory through host
 * staging.
 *
 * A put is ucp_put_nbx followed by a flush of its endpoint, whose
 * completion is the put's (the data is in the peer's memory then); a get
 * is ucp_get_nbx.  What completes at once returns MF_OK; what does not
 * completes through a UCX callback, on whichever thread progresses the
 * worker, with a record of its own (from the interface's free list) that
 * holds the endpoint's link for the watchdog (ucx.h) and the tracer's
 * start: tl.ucx.put and tl.ucx.get time a copy from its call to its
 * completion.
 *
 * Staging: a local buffer of a device kind that UCX does not move itself
 * goes through two host chunks (ucx.chunk_size each, registered for the
 * kind's DMA, kept for reuse): a put copies a chunk out of the device and
 * posts it while the next one is copied; a get posts two chunks and
 * copies each into the device as it lands, then reuses its host chunk.
 * The device copies run under the interface's lock, in the call or in
 * the completion of the chunk before.
 */
#include "tl/ucx/ucx.h"

#include "util/log.h"
#include "util/misc.h"
#include "util/trace.h"

#include <stdlib.h>
#include <string.h>

MF_TRACE_POINT(mf_tl_ucx_tp_put, "tl.ucx.put");
MF_TRACE_POINT(mf_tl_ucx_tp_get, "tl.ucx.get");

typedef struct mf_tl_ucx_stage mf_tl_ucx_stage_t;

typedef struct mf_tl_ucx_slot {
    mf_tl_ucx_stage_t *op;
    uint8_t *buf; /* ucx.chunk_size bytes of host memory */
    size_t off;   /* of the chunk it carries, in the copy */
    size_t len;
    bool busy;
} mf_tl_ucx_slot_t;

/* A staged copy: its state lives under the interface's lock. */
struct mf_tl_ucx_stage {
    mf_tl_ucx_iface_t *iface;
    mf_tl_ucx_link_t *link; /* held from start to finish */
    ucp_ep_h uep;
    ucp_rkey_h rkey;
    mf_tl_comp_t *comp;
    bool put;
    mf_mem_kind_t kind; /* of the local buffer */
    uint8_t *local;
    uint64_t remote;
    size_t size;
    size_t next; /* offset of the next chunk to post */
    unsigned inflight;
    mf_status_t status;
    mf_trace_point_t *tp;
    uint64_t t0;   /* of the tracer, 0 when off */
    bool in_call;  /* inside put/get: the result is returned, no cb */
    bool finished; /* status is final */
    mf_tl_ucx_stage_buf_t *host;
    mf_tl_ucx_slot_t slots[MF_TL_UCX_STAGE_SLOTS];
};

static const mf_ucx_lib_t *mf_tl_ucx_lib(void)
{
    return mf_ucx_lib(); /* loaded before any interface opened */
}

/* The status of a posted operation: UCS_OK (done), UCS_INPROGRESS or the
 * error. */
static ucs_status_t mf_tl_ucx_posted(ucs_status_ptr_t req)
{
    if (req == NULL) {
        return UCS_OK;
    }
    return UCS_PTR_IS_ERR(req) ? UCS_PTR_STATUS(req) : UCS_INPROGRESS;
}

/* Posts a flush of uep that completes through cb (lock held). */
static ucs_status_t
mf_tl_ucx_flush_post(ucp_ep_h uep, ucp_send_nbx_callback_t cb, void *user_data)
{
    ucp_request_param_t param;

    memset(&param, 0, sizeof(param));
    param.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = cb;
    param.user_data = user_data;
    return mf_tl_ucx_posted(mf_tl_ucx_lib()->ucp_ep_flush_nbx(uep, &param));
}

/* =========================================================== records */

/* A record for a copy on link (lock held); NULL when out of memory. */
static mf_tl_ucx_op_t *mf_tl_ucx_op_start(mf_tl_ucx_iface_t *iface,
                                          mf_tl_ucx_link_t *link,
                                          mf_tl_comp_t *comp,
                                          mf_trace_point_t *tp, uint64_t t0)
{
    mf_tl_ucx_op_t *op = iface->op_free;

    if (op != NULL) {
        iface->op_free = op->next;
    } else if ((op = malloc(sizeof(*op))) == NULL) {
        mf_error("ucx: cannot allocate a copy's record");
        return NULL;
    }
    op->comp = comp;
    op->link = link;
    op->tp = tp;
    op->t0 = t0;
    mf_tl_ucx_link_hold(iface, link);
    return op;
}

/* The copy of op is over (lock held): its record goes back. */
static void mf_tl_ucx_op_end(mf_tl_ucx_iface_t *iface, mf_tl_ucx_op_t *op)
{
    mf_trace_end(op->tp, op->t0);
    mf_tl_ucx_link_drop(iface, op->link);
    op->next = iface->op_free;
    iface->op_free = op;
}

/* A copy's (or a flush's) completion: the caller's. */
static void mf_tl_ucx_op_cb(void *request, ucs_status_t ucs_status,
                            void *user_data)
{
    mf_tl_ucx_op_t *op = user_data;
    mf_tl_ucx_iface_t *iface = op->link->iface;
    mf_status_t status = mf_tl_ucx_link_status(op->link, ucs_status);
    mf_tl_comp_t *comp = op->comp;

    mf_tl_ucx_lib()->ucp_request_free(request);
    mf_tl_ucx_op_end(iface, op);
    comp->cb(comp, status);
}

/* ============================================================ staging */

/* Host chunks for a staged copy, from the interface's cache (lock held). */
static mf_tl_ucx_stage_buf_t *mf_tl_ucx_stage_buf_get(mf_tl_ucx_iface_t *iface,
                                                      mf_mem_kind_t kind)
{
    size_t bytes = (size_t)iface->chunk_size * MF_TL_UCX_STAGE_SLOTS;
    mf_tl_ucx_stage_buf_t *host, **prev;

    for (prev = &iface->stage_free; *prev != NULL; prev = &(*prev)->next) {
        if ((*prev)->mem.kind == kind) {
            host = *prev;
            *prev = host->next;
            return host;
        }
    }
    host = calloc(1, sizeof(*host));
    if (host == NULL) {
        mf_error("ucx: cannot allocate staging memory");
        return NULL;
    }
    if (mf_tl_stage_reserve(&host->mem, kind, bytes, bytes, "ucx") != MF_OK) {
        free(host);
        return NULL;
    }
    return host;
}

void mf_tl_ucx_stage_buf_free(mf_tl_ucx_stage_buf_t *host)
{
    mf_tl_stage_release(&host->mem);
    free(host);
}

static void mf_tl_ucx_stage_pump(mf_tl_ucx_stage_t *op);

/* The copy is over: hand its status to the caller (lock held). */
static void mf_tl_ucx_stage_finish(mf_tl_ucx_stage_t *op, mf_status_t status)
{
    mf_tl_ucx_iface_t *iface = op->iface;
    mf_tl_comp_t *comp = op->comp;

    op->host->next = iface->stage_free;
    iface->stage_free = op->host;
    op->host = NULL;
    op->status = status;
    op->finished = true;
    mf_trace_end(op->tp, op->t0);
    mf_tl_ucx_link_drop(iface, op->link);
    op->link = NULL;
    if (!op->in_call) {
        free(op);
        comp->cb(comp, status);
    }
}

static void mf_tl_ucx_stage_flushed(void *request, ucs_status_t status,
                                    void *user_data)
{
    mf_tl_ucx_stage_t *op = user_data;

    mf_tl_ucx_lib()->ucp_request_free(request);
    mf_tl_ucx_stage_finish(op, mf_tl_ucx_link_status(op->link, status));
}

/* A chunk completed: into the device if it was read, then the next. */
static void mf_tl_ucx_slot_done(mf_tl_ucx_slot_t *slot, mf_status_t status)
{
    mf_tl_ucx_stage_t *op = slot->op;

    slot->busy = false;
    mf_tl_ucx_link_touch(op->link);
    if (status == MF_OK && !op->put) {
        status = mf_tl_stage_copy("ucx", op->kind, op->local + slot->off,
                                  slot->buf, slot->len);
    }
    if (status != MF_OK && op->status == MF_OK) {
        op->status = status;
    }
}

static void mf_tl_ucx_slot_cb(void *request, ucs_status_t status,
                              void *user_data)
{
    mf_tl_ucx_slot_t *slot = user_data;
    mf_tl_ucx_stage_t *op = slot->op;

    mf_tl_ucx_lib()->ucp_request_free(request);
    op->inflight--;
    mf_tl_ucx_slot_done(slot, mf_tl_ucx_link_status(op->link, status));
    mf_tl_ucx_stage_pump(op);
}

/* Posts the next chunk through slot; false when it completed at once
 * (the slot is free again). */
static bool mf_tl_ucx_slot_post(mf_tl_ucx_stage_t *op, mf_tl_ucx_slot_t *slot)
{
    const mf_ucx_lib_t *lib = mf_tl_ucx_lib();
    ucp_request_param_t param;
    ucs_status_ptr_t req;
    ucs_status_t status;
    mf_status_t copied;

    slot->off = op->next;
    slot->len = MF_MIN(op->size - op->next, (size_t)op->iface->chunk_size);
    op->next += slot->len;
    if (op->put) {
        copied = mf_tl_stage_copy("ucx", op->kind, slot->buf,
                                  op->local + slot->off, slot->len);
        if (copied != MF_OK) {
            op->status = copied;
            return false;
        }
    }
    memset(&param, 0, sizeof(param));
    param.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = mf_tl_ucx_slot_cb;
    param.user_data = slot;
    if (op->put) {
        req = lib->ucp_put_nbx(op->uep, slot->buf, slot->len,
                               op->remote + slot->off, op->rkey, &param);
    } else {
        req = lib->ucp_get_nbx(op->uep, slot->buf, slot->len,
                               op->remote + slot->off, op->rkey, &param);
    }
    status = mf_tl_ucx_posted(req);
    if (status == UCS_INPROGRESS) {
        slot->busy = true;
        op->inflight++;
        return true;
    }
    mf_tl_ucx_slot_done(slot, mf_tl_ucx_link_status(op->link, status));
    return false;
}

/* Keeps every free slot busy while chunks are left, then finishes: a put
 * with a flush of the endpoint (lock held). */
static void mf_tl_ucx_stage_pump(mf_tl_ucx_stage_t *op)
{
    ucs_status_t status;
    bool again = true;
    unsigned i;

    while (again) {
        again = false;
        for (i = 0; i < MF_TL_UCX_STAGE_SLOTS; i++) {
            if (!op->slots[i].busy && op->status == MF_OK &&
                op->next < op->size &&
                !mf_tl_ucx_slot_post(op, &op->slots[i])) {
                again = true; /* done at once: the slot takes the next */
            }
        }
    }
    if (op->inflight > 0 || (op->status == MF_OK && op->next < op->size)) {
        return;
    }
    if (op->put && op->status == MF_OK) {
        status = mf_tl_ucx_flush_post(op->uep, mf_tl_ucx_stage_flushed, op);
        if (status != UCS_INPROGRESS) {
            mf_tl_ucx_stage_finish(op, mf_tl_ucx_link_status(op->link, status));
        }
        return;
    }
    mf_tl_ucx_stage_finish(op, op->status);
}

/* A copy of a local device buffer UCX cannot move (lock held). */
static mf_status_t mf_tl_ucx_stage_start(mf_tl_ucx_iface_t *iface,
                                         mf_tl_ucx_link_t *link, bool put,
                                         void *local, uint64_t remote,
                                         size_t size, ucp_ep_h uep,
                                         ucp_rkey_h rkey, mf_tl_comp_t *comp,
                                         mf_trace_point_t *tp, uint64_t t0)
{
    mf_tl_ucx_stage_t *op;
    mf_status_t status;
    unsigned i;

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        mf_error("ucx: cannot allocate a staged copy");
        return MF_ERR_NOMEM;
    }
    op->host = mf_tl_ucx_stage_buf_get(iface, comp->mem_kind);
    if (op->host == NULL) {
        free(op);
        return MF_ERR_NOMEM;
    }
    op->iface = iface;
    op->link = link;
    op->uep = uep;
    op->rkey = rkey;
    op->comp = comp;
    op->put = put;
    op->kind = comp->mem_kind;
    op->local = local;
    op->remote = remote;
    op->size = size;
    op->status = MF_OK;
    op->tp = tp;
    op->t0 = t0;
    op->in_call = true;
    for (i = 0; i < MF_TL_UCX_STAGE_SLOTS; i++) {
        op->slots[i].op = op;
        op->slots[i].buf = op->host->mem.buf + (size_t)i * iface->chunk_size;
    }
    mf_tl_ucx_link_hold(iface, link);
    mf_tl_ucx_stage_pump(op);
    if (op->finished) {
        status = op->status;
        free(op);
        return status;
    }
    op->in_call = false;
    return MF_INPROGRESS;
}

/* ================================================================ copies */

/* Posts a direct put (and the flush behind it) or get of op (lock held). */
static ucs_status_t mf_tl_ucx_direct(mf_tl_ucx_op_t *op, ucp_ep_h uep, bool put,
                                     void *buf, uint64_t remote, size_t size,
                                     ucp_rkey_h uk)
{
    const mf_ucx_lib_t *lib = mf_tl_ucx_lib();
    ucp_request_param_t param;
    ucs_status_ptr_t req;
    ucs_status_t status;

    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMORY_TYPE;
    param.memory_type = mf_tl_ucx_mem_type(op->comp->mem_kind);
    if (!put) {
        param.op_attr_mask |=
            UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
        param.cb.send = mf_tl_ucx_op_cb;
        param.user_data = op;
        return mf_tl_ucx_posted(
            lib->ucp_get_nbx(uep, buf, size, remote, uk, &param));
    }
    /* completes when buf may be reused; the flush behind it when the data
     * is in the peer's memory */
    req = lib->ucp_put_nbx(uep, buf, size, remote, uk, &param);
    status = mf_tl_ucx_posted(req);
    if (status == UCS_INPROGRESS) {
        lib->ucp_request_free(req);
        status = UCS_OK;
    }
    if (status == UCS_OK) {
        status = mf_tl_ucx_flush_post(uep, mf_tl_ucx_op_cb, op);
    }
    return status;
}

/* A put or a get: checks, then the direct or the staged path. */
static mf_status_t mf_tl_ucx_copy(mf_tl_ep_t *tl_ep, bool put, void *buf,
                                  uint64_t raddr, size_t size,
                                  mf_tl_rkey_t *tl_rkey, mf_tl_comp_t *comp)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_ep->iface;
    mf_tl_ucx_rkey_t *rkey = (mf_tl_ucx_rkey_t *)tl_rkey;
    mf_tl_ucx_ep_t *ep = (mf_tl_ucx_ep_t *)tl_ep;
    mf_trace_point_t *tp = put ? &mf_tl_ucx_tp_put : &mf_tl_ucx_tp_get;
    uint64_t remote, t0;
    mf_tl_ucx_op_t *op;
    mf_status_t status;
    ucs_status_t ucs;
    ucp_rkey_h uk;
    ucp_ep_h uep;

    if (size == 0) {
        return MF_OK;
    }
    if (!mf_tl_range_inside(tl_rkey->gva, tl_rkey->size, raddr, size)) {
        return MF_ERR_OUT_OF_RANGE;
    }
    remote = rkey->base + (raddr - tl_rkey->gva);
    t0 = mf_trace_begin();
    pthread_mutex_lock(&iface->lock);
    status = mf_tl_ucx_ep_get(iface, ep, &uep);
    if (status == MF_OK) {
        status = mf_tl_ucx_rkey_get(iface, ep, rkey, &uk);
    }
    if (status != MF_OK) {
        goto out;
    }
    if (mf_unlikely(comp->mem_kind != MF_MEM_KIND_HOST &&
                    !mf_tl_ucx_moves(iface, comp->mem_kind))) {
        status = mf_tl_ucx_stage_start(iface, ep->link, put, buf, remote, size,
                                       uep, uk, comp, tp, t0);
        goto out;
    }
    op = mf_tl_ucx_op_start(iface, ep->link, comp, tp, t0);
    if (op == NULL) {
        status = MF_ERR_NOMEM;
        goto out;
    }
    ucs = mf_tl_ucx_direct(op, uep, put, buf, remote, size, uk);
    if (ucs == UCS_INPROGRESS) {
        status = MF_INPROGRESS;
    } else {
        /* done at once, or refused: its callback never runs */
        status = mf_tl_ucx_link_status(op->link, ucs);
        mf_tl_ucx_op_end(iface, op);
    }

out:
    pthread_mutex_unlock(&iface->lock);
    if (status == MF_INPROGRESS) {
        mf_tl_ucx_kick(iface);
    }
    return status;
}

mf_status_t mf_tl_ucx_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return mf_tl_ucx_copy(ep, true, (void *)buf, raddr, size, rkey, comp);
}

mf_status_t mf_tl_ucx_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return mf_tl_ucx_copy(ep, false, buf, raddr, size, rkey, comp);
}

mf_status_t mf_tl_ucx_flush(mf_tl_ep_t *tl_ep, mf_tl_comp_t *comp)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_ep->iface;
    mf_tl_ucx_ep_t *ep = (mf_tl_ucx_ep_t *)tl_ep;
    mf_status_t status = MF_OK;
    mf_tl_ucx_op_t *op;
    ucs_status_t ucs;

    pthread_mutex_lock(&iface->lock);
    /* a failed endpoint has nothing left in flight: its copies failed */
    if (ep->ep != NULL && !atomic_load(&ep->failed)) {
        op = mf_tl_ucx_op_start(iface, ep->link, comp, NULL, 0);
        if (op == NULL) {
            status = MF_ERR_NOMEM;
        } else {
            ucs = mf_tl_ucx_flush_post(ep->ep, mf_tl_ucx_op_cb, op);
            if (ucs == UCS_INPROGRESS) {
                status = MF_INPROGRESS;
            } else {
                status = mf_tl_ucx_link_status(op->link, ucs);
                mf_tl_ucx_op_end(iface, op);
            }
        }
    }
    pthread_mutex_unlock(&iface->lock);
    if (status == MF_INPROGRESS) {
        mf_tl_ucx_kick(iface);
    }
    return status;
}
