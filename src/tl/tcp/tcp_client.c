/*
 * tcp transport, client side: endpoints to peers, their lanes, and the
 * operations (put, get, flush) cut into chunks, pipelined on every lane
 * and completed exactly once.
 */
#include "tl/tcp/tcp_int.h"
#include "util/trace.h"

/* From post to completion, per operation (MF_TRACE). */
MF_TRACE_POINT(mf_tl_tcp_tp_put, "tl.tcp.put");
MF_TRACE_POINT(mf_tl_tcp_tp_get, "tl.tcp.get");

/* ============================================================ completion */

/* Completes what is on list (ops and flushes), outside every lock. */
typedef struct mf_tl_tcp_done {
    mf_list_t ops;
    mf_list_t flushes;
} mf_tl_tcp_done_t;

static void mf_tl_tcp_done_init(mf_tl_tcp_done_t *done)
{
    mf_list_init(&done->ops);
    mf_list_init(&done->flushes);
}

static void mf_tl_tcp_done_fire(mf_tl_tcp_done_t *done)
{
    mf_tl_tcp_flush_t *flush;
    mf_tl_tcp_op_t *op;
    mf_tl_comp_t *comp;
    mf_status_t status;
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&done->ops)) != NULL) {
        op = mf_container_of(elem, mf_tl_tcp_op_t, aelem);
        comp = op->comp;
        status = op->status;
        mf_trace_end(op->code == MF_TL_TCP_OP_PUT ? &mf_tl_tcp_tp_put
                                                  : &mf_tl_tcp_tp_get,
                     op->t0);
        free(op);
        comp->cb(comp, status);
    }
    while ((elem = mf_list_pop_front(&done->flushes)) != NULL) {
        flush = mf_container_of(elem, mf_tl_tcp_flush_t, elem);
        comp = flush->comp;
        free(flush);
        comp->cb(comp, MF_OK);
    }
}

/* ep->lock held: moves op to done when nothing of it is queued or in
 * flight, and the flushes it was holding back. */
static void mf_tl_tcp_op_check_locked(mf_tl_tcp_ep_t *ep, mf_tl_tcp_op_t *op,
                                      mf_tl_tcp_done_t *done)
{
    mf_tl_tcp_flush_t *flush;
    uint64_t min_seq;

    if (op->queued || op->inflight > 0) {
        return;
    }
    mf_list_del(&op->aelem);
    mf_list_push_back(&done->ops, &op->aelem);
    min_seq =
        mf_list_empty(&ep->all_ops)
            ? UINT64_MAX
            : mf_container_of(ep->all_ops.next, mf_tl_tcp_op_t, aelem)->seq;
    while (!mf_list_empty(&ep->flushes)) {
        flush = mf_container_of(ep->flushes.next, mf_tl_tcp_flush_t, elem);
        if (flush->seq >= min_seq) {
            break;
        }
        mf_list_del(&flush->elem);
        mf_list_push_back(&done->flushes, &flush->elem);
    }
}

static void mf_tl_tcp_op_fail_locked(mf_tl_tcp_ep_t *ep, mf_tl_tcp_op_t *op,
                                     mf_status_t status, mf_tl_tcp_done_t *done)
{
    if (op->status == MF_OK) {
        op->status = status;
    }
    if (op->queued) {
        mf_list_del(&op->qelem);
        op->queued = false;
    }
    mf_tl_tcp_op_check_locked(ep, op, done);
}

/* A chunk of op finished with status (worker thread). */
static void mf_tl_tcp_chunk_done(mf_tl_tcp_ep_t *ep, mf_tl_tcp_op_t *op,
                                 mf_status_t status, mf_tl_tcp_done_t *done)
{
    pthread_mutex_lock(&ep->lock);
    op->inflight--;
    if (status != MF_OK) {
        mf_tl_tcp_op_fail_locked(ep, op, status, done);
    } else {
        mf_tl_tcp_op_check_locked(ep, op, done);
    }
    pthread_mutex_unlock(&ep->lock);
}

/* A chunk finished with status: every operation it carried (worker
 * thread). */
static void mf_tl_tcp_chunk_finish(mf_tl_tcp_ep_t *ep, mf_tl_tcp_op_t *op,
                                   mf_tl_tcp_vec_t *vec, mf_status_t status,
                                   mf_tl_tcp_done_t *done)
{
    if (vec == NULL) {
        mf_tl_tcp_chunk_done(ep, op, status, done);
        return;
    }
    pthread_mutex_lock(&ep->lock);
    for (uint32_t i = 0; i < vec->n; i++) {
        vec->ops[i]->inflight--;
        if (status != MF_OK) {
            mf_tl_tcp_op_fail_locked(ep, vec->ops[i], status, done);
        } else {
            mf_tl_tcp_op_check_locked(ep, vec->ops[i], done);
        }
    }
    pthread_mutex_unlock(&ep->lock);
    free(vec);
}

/* Fails everything queued on ep (nothing of it is on a lane yet, or the
 * rest of it fails with it). */
static void mf_tl_tcp_ep_fail_queued(mf_tl_tcp_ep_t *ep, mf_status_t status,
                                     mf_tl_tcp_done_t *done)
{
    mf_list_t *queues[2] = {&ep->small_q, &ep->large_q};
    mf_tl_tcp_op_t *op;

    pthread_mutex_lock(&ep->lock);
    for (int q = 0; q < 2; q++) {
        while (!mf_list_empty(queues[q])) {
            op = mf_container_of(queues[q]->next, mf_tl_tcp_op_t, qelem);
            mf_tl_tcp_op_fail_locked(ep, op, status, done);
        }
    }
    pthread_mutex_unlock(&ep->lock);
}

/* ================================================================ lanes */

/* Fails the PUTs fenced after the lane's last break. */
static void mf_tl_tcp_lane_fence_fire(mf_tl_tcp_lane_t *lane,
                                      mf_tl_tcp_done_t *done)
{
    for (unsigned i = 0; i < lane->nfence; i++) {
        mf_tl_tcp_chunk_finish(lane->ep, lane->fence[i].op, lane->fence[i].vec,
                               lane->fence[i].status, done);
    }
    lane->nfence = 0;
}

void mf_tl_tcp_lane_close(mf_tl_tcp_lane_t *lane, mf_status_t status,
                          bool fail_queued)
{
    /* a connection the peer acknowledged breaks: its PUTs on the wire may
     * still be applied there until the next connection's ACK; anything
     * else settles what an earlier break fenced */
    const bool fence = lane->state == MF_TL_TCP_LANE_CONNECTED && !lane->dying;
    mf_tl_tcp_done_t done;
    mf_tl_tcp_chunk_t *chunk;
    unsigned i;
    bool on_wire;

    mf_tl_tcp_done_init(&done);
    if (lane->sock.fd >= 0) {
        /* close() alone leaves the epoll set only when no other process
         * (a fork) still holds the socket */
        (void)epoll_ctl(lane->worker->epfd, EPOLL_CTL_DEL, lane->sock.fd, NULL);
        close(lane->sock.fd);
        lane->sock.fd = -1;
    }
    if (lane->state == MF_TL_TCP_LANE_CONNECTING) {
        mf_list_del(&lane->celem);
    }
    lane->state = MF_TL_TCP_LANE_IDLE;
    lane->hs = MF_TL_TCP_HS_CONNECT;
    if (!fence) {
        mf_tl_tcp_lane_fence_fire(lane, &done);
    }
    for (i = 0; lane->count > 0; i++) {
        chunk = &lane->ring[lane->head];
        on_wire = i < lane->nsent || (i == lane->nsent && lane->sent_off > 0);
        lane->head = (lane->head + 1) % MF_TL_TCP_RING;
        lane->count--;
        if (fence && on_wire && chunk->op->code == MF_TL_TCP_OP_PUT &&
            lane->nfence < MF_TL_TCP_RING) {
            lane->fence[lane->nfence].op = chunk->op; /* stays in flight */
            lane->fence[lane->nfence].vec = chunk->vec;
            lane->fence[lane->nfence].status = status;
            lane->nfence++;
            continue;
        }
        mf_tl_tcp_chunk_finish(lane->ep, chunk->op, chunk->vec, status, &done);
    }
    lane->head = 0;
    lane->nsent = 0;
    lane->sent_off = 0;
    lane->inflight_bytes = 0;
    lane->in_got = 0;
    lane->in_payload = false;
    lane->in_staged = false;
    lane->out_stage.valid = false;
    if (fail_queued) {
        mf_tl_tcp_ep_fail_queued(lane->ep, status, &done);
    }
    mf_tl_tcp_done_fire(&done);
}

void mf_tl_tcp_lane_fail(mf_tl_tcp_lane_t *lane, mf_status_t status,
                         bool fail_queued, const char *why)
{
    mf_debug("tcp: lane %u to %s: %s (%s)", lane->index, lane->ep->name, why,
             mf_status_name(status));
    mf_tl_tcp_lane_close(lane, status, fail_queued);
}

static bool mf_tl_tcp_ep_has_work(mf_tl_tcp_ep_t *ep)
{
    bool work;

    pthread_mutex_lock(&ep->lock);
    work = !mf_list_empty(&ep->small_q) || !mf_list_empty(&ep->large_q);
    pthread_mutex_unlock(&ep->lock);
    return work;
}

static void mf_tl_tcp_lane_connect(mf_tl_tcp_lane_t *lane)
{
    mf_tl_tcp_worker_t *worker = lane->worker;
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)lane->ep->super.iface;
    int fd, ret;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mf_error("tcp: socket() failed: %m");
        mf_tl_tcp_lane_close(lane, MF_ERR_IO, true);
        return;
    }
    mf_tl_tcp_sockopts(fd, iface->timeout_ms);
    lane->sock.fd = fd;
    ret =
        connect(fd, (struct sockaddr *)&lane->ep->addr, sizeof(lane->ep->addr));
    if (ret != 0 && errno != EINPROGRESS) {
        mf_tl_tcp_lane_fail(lane, mf_tl_tcp_errno_status(errno), true,
                            "connect failed");
        return;
    }
    lane->state = MF_TL_TCP_LANE_CONNECTING;
    lane->connect_deadline =
        mf_time_ms() + MF_MIN(MF_TL_TCP_CONNECT_MS, iface->timeout_ms);
    mf_list_push_back(&worker->connecting, &lane->celem);
    if (mf_tl_tcp_epoll_add(worker, &lane->sock,
                            EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
        mf_tl_tcp_lane_close(lane, MF_ERR_IO, true);
    }
}

/* ep->lock held: the small operations of host memory queued after op
 * (which is taken) that can share its request, a PUTV or GETV of at most
 * one chunk: taken off the queue into a vector, or NULL when none can (or
 * no memory is left for one). */
static mf_tl_tcp_vec_t *
mf_tl_tcp_lane_gather(mf_tl_tcp_ep_t *ep, mf_tl_tcp_op_t *op, uint64_t chunk)
{
    uint64_t total = op->size;
    mf_tl_tcp_op_t *next;
    mf_tl_tcp_vec_t *vec;
    mf_list_t *elem;
    uint32_t n = 1;

    if (op->kind != MF_MEM_KIND_HOST) {
        return NULL;
    }
    for (elem = op->qelem.next; elem != &ep->small_q && n < MF_TL_TCP_VEC_MAX;
         elem = elem->next, n++) {
        next = mf_container_of(elem, mf_tl_tcp_op_t, qelem);
        if (next->code != op->code || next->key != op->key ||
            next->kind != MF_MEM_KIND_HOST || next->size > chunk - total) {
            break;
        }
        total += next->size;
    }
    if (n < 2 || (vec = malloc(sizeof(*vec))) == NULL) {
        return NULL;
    }
    vec->n = n;
    for (uint32_t i = 0; i < n; i++) {
        next = mf_container_of(ep->small_q.next, mf_tl_tcp_op_t, qelem);
        mf_list_del(&next->qelem);
        next->queued = false;
        next->next_off = next->size;
        next->inflight++;
        vec->ops[i] = next;
        mf_tl_tcp_vec_encode(next->raddr, next->size,
                             vec->table + i * MF_TL_TCP_VEC_ENTRY);
    }
    return vec;
}

/* Takes chunks from the endpoint's queues while the window has room;
 * small operations queued together share requests (PUTV, GETV). */
static void mf_tl_tcp_lane_fill(mf_tl_tcp_lane_t *lane)
{
    mf_tl_tcp_ep_t *ep = lane->ep;
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)ep->super.iface;
    mf_tl_tcp_chunk_t *chunk;
    mf_tl_tcp_vec_t *vec;
    mf_tl_tcp_hdr_t hdr;
    mf_tl_tcp_op_t *op;
    mf_list_t *q;

    if (lane->count >= MF_TL_TCP_RING ||
        lane->inflight_bytes >= iface->window) {
        return;
    }
    pthread_mutex_lock(&ep->lock);
    while (lane->count < MF_TL_TCP_RING &&
           lane->inflight_bytes < iface->window) {
        q = !mf_list_empty(&ep->small_q) ? &ep->small_q : &ep->large_q;
        if (mf_list_empty(q)) {
            break;
        }
        op = mf_container_of(q->next, mf_tl_tcp_op_t, qelem);
        chunk = &lane->ring[(lane->head + lane->count) % MF_TL_TCP_RING];
        chunk->op = op;
        chunk->req_id = lane->next_req_id++;
        chunk->fail = MF_OK;
        vec = q == &ep->small_q ? mf_tl_tcp_lane_gather(ep, op, iface->chunk)
                                : NULL;
        chunk->vec = vec;
        hdr.magic = MF_TL_TCP_MAGIC;
        hdr.version = MF_TL_TCP_VERSION;
        hdr.flags = 0;
        hdr.status = 0;
        hdr.req_id = chunk->req_id;
        hdr.key = op->key;
        if (vec != NULL) {
            chunk->off = 0;
            chunk->len = 0;
            for (uint32_t i = 0; i < vec->n; i++) {
                chunk->len += vec->ops[i]->size;
            }
            hdr.op = op->code == MF_TL_TCP_OP_PUT ? MF_TL_TCP_OP_PUTV
                                                  : MF_TL_TCP_OP_GETV;
            hdr.count = vec->n;
            hdr.addr = op->raddr;
        } else {
            chunk->off = op->next_off;
            chunk->len = MF_MIN(iface->chunk, op->size - op->next_off);
            op->next_off += chunk->len;
            op->inflight++;
            if (op->next_off == op->size) {
                mf_list_del(&op->qelem);
                op->queued = false;
            }
            hdr.op = op->code;
            hdr.count = 0;
            hdr.addr = op->raddr + chunk->off;
        }
        hdr.len = chunk->len;
        mf_tl_tcp_hdr_encode(&hdr, chunk->hdr);
        lane->count++;
        lane->inflight_bytes += chunk->len;
    }
    pthread_mutex_unlock(&ep->lock);
}

/*
 * Stages a PUT chunk of device memory (the next to send, nothing of it
 * sent yet).  A copy that fails turns it into an empty PUT whose answer
 * fails its operation alone: the lane and the other operations on it go
 * on.
 */
static void mf_tl_tcp_lane_stage_put(mf_tl_tcp_lane_t *lane,
                                     mf_tl_tcp_chunk_t *chunk)
{
    mf_tl_tcp_stage_t *stage = &lane->out_stage;
    mf_tl_tcp_op_t *op = chunk->op;
    mf_tl_tcp_hdr_t hdr;
    mf_status_t status;

    status = mf_tl_tcp_stage_reserve(stage, op->kind, chunk->len);
    if (status == MF_OK) {
        status = mf_tl_stage_copy("tcp", op->kind, stage->mem.buf,
                                  op->buf + chunk->off, chunk->len);
    }
    if (status != MF_OK) {
        lane->inflight_bytes -= chunk->len;
        chunk->len = 0;
        chunk->fail = status;
        mf_tl_tcp_hdr_decode(chunk->hdr, &hdr);
        hdr.len = 0;
        mf_tl_tcp_hdr_encode(&hdr, chunk->hdr);
    }
    stage->tag = chunk->req_id;
    stage->valid = true;
}

/* The bytes of a chunk on the wire: its header, a vector's table, and a
 * PUT's data. */
static size_t mf_tl_tcp_chunk_wire_len(const mf_tl_tcp_chunk_t *chunk)
{
    return MF_TL_TCP_HDR_SIZE +
           (chunk->vec != NULL ? chunk->vec->n * MF_TL_TCP_VEC_ENTRY : 0) +
           (chunk->op->code == MF_TL_TCP_OP_PUT ? chunk->len : 0);
}

/* The memory a chunk is sent from, in wire order, into src (2 +
 * MF_TL_TCP_VEC_MAX entries); data: its PUT data when not a vector's. */
static size_t mf_tl_tcp_chunk_wire(mf_tl_tcp_chunk_t *chunk,
                                   const uint8_t *data, struct iovec *src)
{
    mf_tl_tcp_vec_t *vec = chunk->vec;
    size_t n = 0;

    src[n].iov_base = chunk->hdr;
    src[n++].iov_len = MF_TL_TCP_HDR_SIZE;
    if (vec == NULL) {
        if (data != NULL && chunk->len > 0) {
            src[n].iov_base = (void *)data;
            src[n++].iov_len = chunk->len;
        }
        return n;
    }
    src[n].iov_base = vec->table;
    src[n++].iov_len = vec->n * MF_TL_TCP_VEC_ENTRY;
    if (chunk->op->code == MF_TL_TCP_OP_PUT) {
        for (uint32_t i = 0; i < vec->n; i++) {
            src[n].iov_base = vec->ops[i]->buf;
            src[n++].iov_len = vec->ops[i]->size;
        }
    }
    return n;
}

/* Writes what is ready: headers, tables, and PUT data straight from the
 * source (device data from its staging, one chunk at a time). */
static void mf_tl_tcp_lane_send(mf_tl_tcp_lane_t *lane)
{
    struct iovec iov[MF_TL_TCP_IOV_MAX];
    struct iovec src[2 + MF_TL_TCP_VEC_MAX];
    mf_tl_tcp_chunk_t *chunk;
    const uint8_t *data;
    size_t skip, n, nsrc, total;
    unsigned i, k;
    bool whole = true;
    ssize_t ret;

    while (lane->nsent < lane->count) {
        n = 0;
        total = 0;
        skip = lane->sent_off;
        for (i = lane->nsent;
             i < lane->count && n + 2 <= MF_TL_TCP_IOV_MAX && whole; i++) {
            chunk = &lane->ring[(lane->head + i) % MF_TL_TCP_RING];
            data = NULL;
            if (chunk->op->code == MF_TL_TCP_OP_PUT && chunk->vec == NULL) {
                data = chunk->op->buf + chunk->off;
                if (mf_unlikely(chunk->op->kind != MF_MEM_KIND_HOST)) {
                    if (!lane->out_stage.valid ||
                        lane->out_stage.tag != chunk->req_id) {
                        if (i != lane->nsent) {
                            break; /* one staged chunk at a time */
                        }
                        mf_tl_tcp_lane_stage_put(lane, chunk);
                    }
                    data = chunk->len > 0 ? lane->out_stage.mem.buf : NULL;
                }
            }
            nsrc = mf_tl_tcp_chunk_wire(chunk, data, src);
            total += mf_tl_tcp_iov_append(iov, &n, MF_TL_TCP_IOV_MAX, src, nsrc,
                                          skip, &whole);
            skip = 0;
        }
        ret = mf_tl_tcp_sendv(lane->sock.fd, iov, n);
        if (ret < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            mf_tl_tcp_lane_fail(lane, MF_ERR_CONN_RESET, false, "send failed");
            return;
        }
        /* advance over what was written */
        n = (size_t)ret;
        for (k = lane->nsent; k < lane->count && n > 0;) {
            chunk = &lane->ring[(lane->head + k) % MF_TL_TCP_RING];
            size_t left = mf_tl_tcp_chunk_wire_len(chunk) - lane->sent_off;

            if (n >= left) {
                n -= left;
                lane->sent_off = 0;
                lane->nsent = ++k;
            } else {
                lane->sent_off += n;
                n = 0;
            }
        }
        if ((size_t)ret < total) {
            return; /* the socket buffer is full */
        }
        whole = true;
    }
}

/* Reads responses: headers, and GET data straight into the destination. */
static void mf_tl_tcp_lane_recv(mf_tl_tcp_lane_t *lane, bool drain)
{
    mf_tl_tcp_done_t done;
    mf_tl_tcp_chunk_t *chunk;
    mf_tl_tcp_hdr_t hdr;
    mf_status_t status;
    bool stop = false;
    size_t want;
    ssize_t ret;

    mf_tl_tcp_done_init(&done);
    while (lane->state == MF_TL_TCP_LANE_CONNECTED && !stop) {
        if (lane->in_payload) {
            want = lane->in_left;
            ret = mf_tl_tcp_recvv(lane->sock.fd, lane->in_iov + lane->in_iov_at,
                                  lane->in_iov_n - lane->in_iov_at);
        } else {
            want = MF_TL_TCP_HDR_SIZE - lane->in_got;
            ret = recv(lane->sock.fd, lane->in_hdr + lane->in_got, want, 0);
        }
        /* a short read emptied the socket: the next bytes bring an event
         * (unless the peer hung up: then read on to the end) */
        stop = !drain && ret > 0 && (size_t)ret < want;
        if (ret <= 0) {
            if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
                break;
            }
            mf_tl_tcp_done_fire(&done);
            mf_tl_tcp_lane_fail(lane,
                                ret == 0 ? MF_ERR_CONN_RESET
                                         : mf_tl_tcp_errno_status(errno),
                                false, "connection lost");
            return;
        }
        chunk = &lane->ring[lane->head];
        if (lane->in_payload) {
            mf_tl_tcp_iov_consume(lane->in_iov, &lane->in_iov_at,
                                  lane->in_iov_n, (size_t)ret);
            lane->in_left -= (uint64_t)ret;
            if (lane->in_left > 0) {
                continue;
            }
            lane->in_payload = false;
            status = MF_OK;
            if (mf_unlikely(lane->in_staged)) {
                lane->in_staged = false;
                status = mf_tl_stage_copy("tcp", chunk->op->kind,
                                          chunk->op->buf + chunk->off,
                                          lane->in_stage.mem.buf, chunk->len);
            }
        } else {
            lane->in_got += (size_t)ret;
            if (lane->in_got < MF_TL_TCP_HDR_SIZE) {
                continue;
            }
            lane->in_got = 0;
            mf_tl_tcp_hdr_decode(lane->in_hdr, &hdr);
            if (lane->nsent == 0 ||
                !mf_tl_tcp_resp_check(&hdr, chunk->op->code, chunk->req_id,
                                      chunk->len)) {
                mf_error("tcp: lane %u to %s: unexpected response (op %u, "
                         "id %" PRIu64 ", status %d, len %" PRIu64 ")",
                         lane->index, lane->ep->name, hdr.op, hdr.req_id,
                         hdr.status, hdr.len);
                mf_tl_tcp_done_fire(&done);
                mf_tl_tcp_lane_close(lane, MF_ERR_PROTO, false);
                return;
            }
            if (hdr.len > 0) {
                lane->in_payload = true;
                lane->in_left = hdr.len;
                lane->in_iov_at = 0;
                lane->in_iov_n = chunk->vec != NULL ? chunk->vec->n : 1;
                for (unsigned v = 0; chunk->vec != NULL && v < chunk->vec->n;
                     v++) {
                    lane->in_iov[v].iov_base = chunk->vec->ops[v]->buf;
                    lane->in_iov[v].iov_len = chunk->vec->ops[v]->size;
                }
                if (chunk->vec == NULL) {
                    lane->in_iov[0].iov_base = chunk->op->buf + chunk->off;
                    lane->in_iov[0].iov_len = chunk->len;
                }
                lane->in_staged = chunk->op->kind != MF_MEM_KIND_HOST;
                if (mf_unlikely(lane->in_staged)) {
                    /* device memory: through the staging */
                    status = mf_tl_tcp_stage_reserve(&lane->in_stage,
                                                     chunk->op->kind, hdr.len);
                    if (status != MF_OK) {
                        mf_tl_tcp_done_fire(&done);
                        mf_tl_tcp_lane_close(lane, status, false);
                        return;
                    }
                    lane->in_iov[0].iov_base = lane->in_stage.mem.buf;
                }
                continue;
            }
            status = (mf_status_t)hdr.status;
        }
        /* the head chunk is complete */
        lane->head = (lane->head + 1) % MF_TL_TCP_RING;
        lane->count--;
        lane->nsent--;
        lane->inflight_bytes -= chunk->len;
        if (mf_unlikely(chunk->fail != MF_OK) && status == MF_OK) {
            status = chunk->fail; /* its data could not be staged */
        }
        mf_tl_tcp_chunk_finish(lane->ep, chunk->op, chunk->vec, status, &done);
    }
    mf_tl_tcp_done_fire(&done);
}

void mf_tl_tcp_lane_run(mf_tl_tcp_lane_t *lane)
{
    unsigned before;

    if (lane->state == MF_TL_TCP_LANE_IDLE) {
        if (lane->nfence > 0 || mf_tl_tcp_ep_has_work(lane->ep)) {
            mf_tl_tcp_lane_connect(lane);
        }
        return;
    }
    if (lane->state != MF_TL_TCP_LANE_CONNECTED) {
        return;
    }
    do {
        before = lane->count;
        mf_tl_tcp_lane_fill(lane);
        mf_tl_tcp_lane_send(lane);
    } while (lane->state == MF_TL_TCP_LANE_CONNECTED && lane->count != before &&
             lane->nsent == lane->count);
    /* a send that failed here closed the lane with no event to come: what
     * is still queued needs a new connection, or it would wait forever */
    if (lane->state == MF_TL_TCP_LANE_IDLE &&
        (lane->nfence > 0 || mf_tl_tcp_ep_has_work(lane->ep))) {
        mf_tl_tcp_lane_connect(lane);
    }
}

/* Reads the rest of the handshake message awaited (its header and
 * MF_TL_TCP_NONCE or MF_TL_TCP_MAC bytes: as many either way) into
 * lane->hs_in.  True once whole; false while more is to come or when the
 * lane failed (its state says which). */
static bool mf_tl_tcp_lane_hs_read(mf_tl_tcp_lane_t *lane, const char *what)
{
    ssize_t ret;

    while (lane->hs_got < sizeof(lane->hs_in)) {
        ret = recv(lane->sock.fd, lane->hs_in + lane->hs_got,
                   sizeof(lane->hs_in) - lane->hs_got, 0);
        if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
            return false;
        }
        if (ret <= 0) {
            mf_tl_tcp_lane_fail(lane,
                                ret == 0 ? MF_ERR_CONN_RESET
                                         : mf_tl_tcp_errno_status(errno),
                                true, what);
            return false;
        }
        lane->hs_got += (size_t)ret;
    }
    lane->hs_got = 0;
    return true;
}

/* The server's CHALLENGE arrived: the HELLO that answers it, with this
 * lane's nonce and proof (tcp.h).  A fresh socket takes it at once;
 * anything else fails the lane. */
static void mf_tl_tcp_lane_hello(mf_tl_tcp_lane_t *lane)
{
    uint8_t wire[MF_TL_TCP_HDR_SIZE + MF_TL_TCP_HELLO_LEN];
    mf_tl_tcp_hdr_t hdr;
    ssize_t ret;

    mf_tl_tcp_hdr_decode(lane->hs_in, &hdr);
    if (!mf_tl_tcp_challenge_check(&hdr)) {
        mf_error("tcp: lane %u to %s: the peer did not open with a "
                 "CHALLENGE (op %u, version %u): not a MemFabric tcp "
                 "interface of this version",
                 lane->index, lane->ep->name, hdr.op, hdr.version);
        mf_tl_tcp_lane_close(lane, MF_ERR_PROTO, true);
        return;
    }
    memcpy(lane->nonce_s, lane->hs_in + MF_TL_TCP_HDR_SIZE, MF_TL_TCP_NONCE);
    if (mf_tl_tcp_random(lane->nonce_c, MF_TL_TCP_NONCE) != MF_OK) {
        mf_tl_tcp_lane_fail(lane, MF_ERR_IO, true, "no nonce");
        return;
    }
    memset(&hdr, 0, sizeof(hdr));
    hdr.magic = MF_TL_TCP_MAGIC;
    hdr.version = MF_TL_TCP_VERSION;
    hdr.op = MF_TL_TCP_OP_HELLO;
    hdr.key = lane->ep->hello_id;
    hdr.addr = lane->index;
    hdr.len = MF_TL_TCP_HELLO_LEN;
    mf_tl_tcp_hdr_encode(&hdr, wire);
    memcpy(wire + MF_TL_TCP_HDR_SIZE, lane->nonce_c, MF_TL_TCP_NONCE);
    mf_tl_tcp_proof(lane->ep->secret, false, lane->nonce_s, lane->nonce_c,
                    lane->ep->hello_id, lane->index,
                    wire + MF_TL_TCP_HDR_SIZE + MF_TL_TCP_NONCE);
    do {
        ret = send(lane->sock.fd, wire, sizeof(wire), MSG_NOSIGNAL);
    } while (ret < 0 && errno == EINTR);
    if (ret != (ssize_t)sizeof(wire)) {
        mf_tl_tcp_lane_fail(
            lane, ret < 0 ? mf_tl_tcp_errno_status(errno) : MF_ERR_CONN_RESET,
            true, "HELLO not sent");
        return;
    }
    lane->hs = MF_TL_TCP_HS_ACK;
}

/* The HELLO_ACK arrived: the server proved it holds the secret of the
 * address it published; the lane carries requests from now on, and the
 * PUTs a broken connection had on the wire fail: the peer closed that
 * one. */
static void mf_tl_tcp_lane_hello_ack(mf_tl_tcp_lane_t *lane)
{
    uint8_t expected[MF_TL_TCP_MAC];
    mf_tl_tcp_done_t done;
    mf_tl_tcp_hdr_t hdr;

    mf_tl_tcp_hdr_decode(lane->hs_in, &hdr);
    if (!mf_tl_tcp_hello_ack_check(&hdr)) {
        mf_error("tcp: lane %u to %s: unexpected answer to HELLO (op %u, "
                 "version %u, status %d)",
                 lane->index, lane->ep->name, hdr.op, hdr.version, hdr.status);
        mf_tl_tcp_lane_close(lane, MF_ERR_PROTO, true);
        return;
    }
    mf_tl_tcp_proof(lane->ep->secret, true, lane->nonce_s, lane->nonce_c,
                    lane->ep->hello_id, lane->index, expected);
    if (!mf_tl_tcp_proof_equal(lane->hs_in + MF_TL_TCP_HDR_SIZE, expected)) {
        mf_error("tcp: lane %u to %s: the peer does not prove it holds the "
                 "secret of the address it published (another process on "
                 "that port?)",
                 lane->index, lane->ep->name);
        mf_tl_tcp_lane_close(lane, MF_ERR_PROTO, true);
        return;
    }
    mf_list_del(&lane->celem);
    lane->state = MF_TL_TCP_LANE_CONNECTED;
    lane->hs = MF_TL_TCP_HS_CONNECT;
    lane->in_got = 0;
    mf_debug("tcp: lane %u to %s connected", lane->index, lane->ep->name);
    mf_tl_tcp_done_init(&done);
    mf_tl_tcp_lane_fence_fire(lane, &done);
    mf_tl_tcp_done_fire(&done);
}

void mf_tl_tcp_lane_event(mf_tl_tcp_lane_t *lane, uint32_t events)
{
    socklen_t len = sizeof(int);
    int err = 0;

    if (lane->state == MF_TL_TCP_LANE_CONNECTING &&
        lane->hs == MF_TL_TCP_HS_CONNECT) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            return;
        }
        if (getsockopt(lane->sock.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
            mf_tl_tcp_lane_fail(
                lane, mf_tl_tcp_errno_status(err != 0 ? err : ECONNRESET), true,
                "connect failed");
            return;
        }
        lane->hs = MF_TL_TCP_HS_CHALLENGE;
        lane->hs_got = 0;
    }
    /* each message may have come with the event before: try now */
    if (lane->state == MF_TL_TCP_LANE_CONNECTING &&
        lane->hs == MF_TL_TCP_HS_CHALLENGE &&
        mf_tl_tcp_lane_hs_read(lane, "no CHALLENGE")) {
        mf_tl_tcp_lane_hello(lane);
    }
    if (lane->state == MF_TL_TCP_LANE_CONNECTING &&
        lane->hs == MF_TL_TCP_HS_ACK) {
        if (mf_tl_tcp_lane_hs_read(lane, "no answer to HELLO")) {
            mf_tl_tcp_lane_hello_ack(lane);
        }
        if (lane->state != MF_TL_TCP_LANE_CONNECTED) {
            return;
        }
        events |= EPOLLOUT; /* nothing sent on it yet: room */
    }
    if (lane->state != MF_TL_TCP_LANE_CONNECTED) {
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        mf_tl_tcp_lane_recv(lane,
                            (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
    }
    if (lane->state == MF_TL_TCP_LANE_CONNECTED && (events & EPOLLOUT)) {
        mf_tl_tcp_lane_send(lane);
    }
    mf_tl_tcp_lane_run(lane);
}

/* ============================================================ endpoints */

mf_status_t mf_tl_tcp_ep_create(mf_tl_iface_t *tl_iface, const void *addr,
                                size_t len, mf_tl_ep_t **ep_p)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_lane_t *lane;
    mf_tl_tcp_ep_t *ep;
    unsigned i, first;

    ep = calloc(1, sizeof(*ep));
    if (ep == NULL) {
        mf_error("tcp: cannot allocate an endpoint");
        return MF_ERR_NOMEM;
    }
    if (mf_tl_tcp_addr_unpack(addr, len, &ep->addr, ep->secret) != MF_OK) {
        mf_error("tcp: malformed peer address (%zu bytes)", len);
        free(ep);
        return MF_ERR_PROTO;
    }
    ep->super.ops = &mf_tl_tcp_ops;
    ep->super.iface = tl_iface;
    mf_tl_tcp_addr_str(&ep->addr, ep->name, sizeof(ep->name));
    pthread_mutex_init(&ep->lock, NULL);
    mf_list_init(&ep->small_q);
    mf_list_init(&ep->large_q);
    mf_list_init(&ep->all_ops);
    mf_list_init(&ep->flushes);
    atomic_init(&ep->rr, 0);
    do {
        ep->hello_id = mf_tl_tcp_new_key();
    } while (ep->hello_id == 0);
    ep->lanes = calloc(iface->lanes, sizeof(*ep->lanes));
    if (ep->lanes == NULL) {
        mf_error("tcp: cannot allocate %u lanes", iface->lanes);
        pthread_mutex_destroy(&ep->lock);
        free(ep);
        return MF_ERR_NOMEM;
    }
    ep->nlanes = iface->lanes;
    first = atomic_fetch_add(&iface->next_worker, 1);
    for (i = 0; i < ep->nlanes; i++) {
        lane = &ep->lanes[i];
        lane->sock.type = MF_TL_TCP_SOCK_LANE;
        lane->sock.fd = -1;
        lane->ep = ep;
        lane->index = i;
        lane->worker = &iface->workers[(first + i) % iface->nworkers];
        lane->next_req_id = 1;
        mf_list_init(&lane->celem);
        mf_list_init(&lane->kelem);
    }
    *ep_p = &ep->super;
    return MF_OK;
}

static void mf_tl_tcp_lane_destroy_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_lane_t *lane = arg;

    pthread_mutex_lock(&worker->lock);
    if (lane->kicked) {
        mf_list_del(&lane->kelem);
        lane->kicked = false;
    }
    pthread_mutex_unlock(&worker->lock);
    lane->dying = true; /* nothing to fence for: no later write comes */
    mf_tl_tcp_lane_close(lane, MF_ERR_CANCELED, false);
    mf_tl_tcp_stage_free(&lane->out_stage);
    mf_tl_tcp_stage_free(&lane->in_stage);
}

void mf_tl_tcp_ep_destroy(mf_tl_ep_t *tl_ep)
{
    mf_tl_tcp_ep_t *ep = (mf_tl_tcp_ep_t *)tl_ep;
    mf_tl_tcp_done_t done;
    mf_list_t *elem;
    unsigned i;

    for (i = 0; i < ep->nlanes; i++) {
        mf_tl_tcp_worker_run(ep->lanes[i].worker, mf_tl_tcp_lane_destroy_cmd,
                             &ep->lanes[i]);
    }
    mf_tl_tcp_done_init(&done);
    mf_tl_tcp_ep_fail_queued(ep, MF_ERR_CANCELED, &done);
    /* flushes still waiting: nothing is left to wait for */
    pthread_mutex_lock(&ep->lock);
    while ((elem = mf_list_pop_front(&ep->flushes)) != NULL) {
        mf_list_push_back(&done.flushes, elem);
    }
    pthread_mutex_unlock(&ep->lock);
    mf_tl_tcp_done_fire(&done);
    pthread_mutex_destroy(&ep->lock);
    free(ep->lanes);
    free(ep);
}

/* ============================================================ put / get */

static mf_status_t mf_tl_tcp_post(mf_tl_ep_t *tl_ep, uint8_t code, void *buf,
                                  uint64_t raddr, size_t size,
                                  mf_tl_rkey_t *tl_rkey, mf_tl_comp_t *comp)
{
    mf_tl_tcp_ep_t *ep = (mf_tl_tcp_ep_t *)tl_ep;
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_ep->iface;
    mf_tl_tcp_rkey_t *rkey = (mf_tl_tcp_rkey_t *)tl_rkey;
    mf_tl_tcp_op_t *op;
    unsigned i, n;
    bool small;

    if (mf_unlikely(size == 0)) {
        return MF_OK;
    }
    if (mf_unlikely(
            !mf_tl_range_inside(tl_rkey->gva, tl_rkey->size, raddr, size))) {
        return MF_ERR_OUT_OF_RANGE;
    }
    op = malloc(sizeof(*op));
    if (mf_unlikely(op == NULL)) {
        mf_error("tcp: cannot allocate an operation");
        return MF_ERR_NOMEM;
    }
    op->comp = comp;
    op->code = code;
    op->queued = true;
    op->kind = comp->mem_kind; /* the caller knows it */
    op->buf = buf;
    op->raddr = raddr;
    op->size = size;
    op->key = rkey->key;
    op->next_off = 0;
    op->inflight = 0;
    op->status = MF_OK;
    op->t0 = mf_trace_begin();
    small = size <= iface->chunk;
    pthread_mutex_lock(&ep->lock);
    op->seq = ep->next_seq++;
    mf_list_push_back(small ? &ep->small_q : &ep->large_q, &op->qelem);
    mf_list_push_back(&ep->all_ops, &op->aelem);
    pthread_mutex_unlock(&ep->lock);

    if (small) {
        mf_tl_tcp_lane_kick(
            &ep->lanes[atomic_fetch_add(&ep->rr, 1) % ep->nlanes]);
    } else {
        n = (unsigned)MF_MIN((size + iface->chunk - 1) / iface->chunk,
                             (uint64_t)ep->nlanes);
        for (i = 0; i < n; i++) {
            mf_tl_tcp_lane_kick(&ep->lanes[i]);
        }
    }
    return MF_INPROGRESS;
}

mf_status_t mf_tl_tcp_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return mf_tl_tcp_post(ep, MF_TL_TCP_OP_PUT, (void *)buf, raddr, size, rkey,
                          comp);
}

mf_status_t mf_tl_tcp_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return mf_tl_tcp_post(ep, MF_TL_TCP_OP_GET, buf, raddr, size, rkey, comp);
}

mf_status_t mf_tl_tcp_flush(mf_tl_ep_t *tl_ep, mf_tl_comp_t *comp)
{
    mf_tl_tcp_ep_t *ep = (mf_tl_tcp_ep_t *)tl_ep;
    mf_tl_tcp_flush_t *flush;

    flush = malloc(sizeof(*flush));
    if (flush == NULL) {
        mf_error("tcp: cannot allocate a flush");
        return MF_ERR_NOMEM;
    }
    pthread_mutex_lock(&ep->lock);
    if (mf_list_empty(&ep->all_ops)) {
        pthread_mutex_unlock(&ep->lock);
        free(flush);
        return MF_OK;
    }
    flush->comp = comp;
    flush->seq = ep->next_seq - 1;
    mf_list_push_back(&ep->flushes, &flush->elem);
    pthread_mutex_unlock(&ep->lock);
    return MF_INPROGRESS;
}

unsigned mf_tl_tcp_progress(mf_tl_iface_t *iface)
{
    return 0; /* the workers drive everything */
}
