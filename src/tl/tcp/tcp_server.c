/*
 * tcp transport, server side: connections peers opened to us, requests
 * checked against the registered segments and served straight from (GET)
 * or into (PUT) them, responses in request order.
 *
 * A peer's lane says HELLO first (tcp.h); iface->hellos keeps the newest
 * connection of each (endpoint, lane).  A new one closes the one before
 * it, on that connection's worker, before it reads anything more and
 * answers HELLO_ACK: a connection another worker owns gets a command to
 * close it, which then sends the new one (paused meanwhile) a command to
 * go on.  Commands find connections by id, so one that closed on its own
 * meanwhile is simply not found.
 */
#include "tl/tcp/tcp_int.h"

/* ========================================================== server side */

/* The exported region of key that holds every piece (n of them), or NULL
 * with why in *status_p. */
static mf_tl_tcp_region_t *
mf_tl_tcp_region_find(mf_tl_tcp_iface_t *iface, uint64_t key,
                      const uint64_t *addrs, const uint64_t *lens, uint32_t n,
                      mf_status_t *status_p)
{
    mf_tl_tcp_region_t *region, *found = NULL;
    uint32_t i;

    *status_p = MF_ERR_PEER_REJECTED; /* no such key */
    pthread_mutex_lock(&iface->regions_lock);
    region = mf_hmap_get(&iface->regions, &key, sizeof(key));
    if (region != NULL) {
        for (i = 0; i < n; i++) {
            if (!mf_tl_range_inside((uint64_t)(uintptr_t)region->super.addr,
                                    region->super.size, addrs[i], lens[i])) {
                break;
            }
        }
        if (i == n) {
            found = region;
            *status_p = MF_OK;
        } else {
            *status_p = MF_ERR_OUT_OF_RANGE;
        }
    }
    pthread_mutex_unlock(&iface->regions_lock);
    return found;
}

static void mf_tl_tcp_resp_clear(mf_tl_tcp_resp_t *resp)
{
    free(resp->vec);
    resp->vec = NULL;
    resp->nvec = 0;
}

void mf_tl_tcp_conn_close(mf_tl_tcp_conn_t *conn)
{
    mf_tl_tcp_iface_t *iface =
        conn->worker != NULL ? conn->worker->iface : NULL;
    mf_tl_tcp_hello_t *hello;

    mf_debug("tcp: connection from %s closed", conn->peer);
    if (conn->hello && iface != NULL) { /* still the newest of its lane? */
        pthread_mutex_lock(&iface->hellos_lock);
        hello = mf_hmap_get(&iface->hellos, conn->hello_key,
                            sizeof(conn->hello_key));
        if (hello != NULL && hello->conn_id == conn->id) {
            mf_hmap_remove(&iface->hellos, conn->hello_key,
                           sizeof(conn->hello_key));
            free(hello);
        }
        pthread_mutex_unlock(&iface->hellos_lock);
    }
    if (conn->worker != NULL) {
        /* as in mf_tl_tcp_lane_close(): a fork may hold the socket */
        (void)epoll_ctl(conn->worker->epfd, EPOLL_CTL_DEL, conn->sock.fd, NULL);
    }
    close(conn->sock.fd);
    conn->sock.fd = -1; /* events still in hand for it are skipped */
    mf_list_del(&conn->elem);
    for (unsigned i = 0; i < conn->count; i++) {
        mf_tl_tcp_resp_clear(&conn->ring[(conn->head + i) % MF_TL_TCP_RING]);
    }
    conn->count = 0;
    mf_tl_tcp_stage_free(&conn->in_stage);
    mf_tl_tcp_stage_free(&conn->out_stage);
    if (conn->worker == NULL) {
        free(conn); /* never adopted: no event points at it */
        return;
    }
    /* an event of the batch being handled may still point at it (another
     * connection's HELLO closed it): freed after the batch */
    mf_list_push_back(&conn->worker->dead_conns, &conn->elem);
}

void mf_tl_tcp_conns_reap(mf_tl_tcp_worker_t *worker)
{
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&worker->dead_conns)) != NULL) {
        free(mf_container_of(elem, mf_tl_tcp_conn_t, elem));
    }
}

/* Closes conn for what it did: the first such close of an interface
 * (per warned flag) is a warning, later ones debug lines. */
static void mf_tl_tcp_conn_drop(mf_tl_tcp_conn_t *conn, atomic_bool *warned,
                                const char *what, const char *why)
{
    if (!atomic_exchange(warned, true)) {
        mf_warn("tcp: %s %s: %s (later ones are logged at debug level)", what,
                conn->peer, why);
    } else {
        mf_debug("tcp: %s %s: %s", what, conn->peer, why);
    }
    mf_tl_tcp_conn_close(conn);
}

static void mf_tl_tcp_conn_proto_error(mf_tl_tcp_conn_t *conn, const char *why)
{
    mf_tl_tcp_conn_drop(conn, &conn->worker->iface->proto_warned,
                        "disconnected, for breaking the protocol,", why);
}

/* Queues the response to conn->in_req: its data (len bytes) is data, or
 * the pieces of vec (owned from now on) when that is set. */
static void mf_tl_tcp_conn_respond(mf_tl_tcp_conn_t *conn, uint8_t code,
                                   mf_status_t status, const uint8_t *data,
                                   uint64_t len, struct iovec *vec,
                                   uint32_t nvec, mf_tl_tcp_region_t *region)
{
    mf_tl_tcp_resp_t *resp =
        &conn->ring[(conn->head + conn->count) % MF_TL_TCP_RING];
    mf_tl_tcp_hdr_t hdr;

    hdr.magic = MF_TL_TCP_MAGIC;
    hdr.version = MF_TL_TCP_VERSION;
    hdr.op = code;
    hdr.flags = 0;
    hdr.status = status;
    hdr.count = 0;
    hdr.req_id = conn->in_req.req_id;
    hdr.key = 0;
    hdr.addr = conn->in_req.addr;
    hdr.len = len;
    mf_tl_tcp_hdr_encode(&hdr, resp->hdr);
    resp->data = data;
    resp->len = len;
    resp->vec = vec;
    resp->nvec = nvec;
    resp->region = region;
    resp->seq = conn->next_resp_seq++;
    conn->count++;
}

/*
 * Stages the data of a GET response from device memory (the next to send,
 * nothing of it sent yet), its pieces one after the other.  A copy that
 * fails turns it into an error response without data: the peer fails
 * that request alone, and the connection goes on.
 */
static void mf_tl_tcp_conn_stage_get(mf_tl_tcp_conn_t *conn,
                                     mf_tl_tcp_resp_t *resp)
{
    mf_tl_tcp_stage_t *stage = &conn->out_stage;
    mf_mem_kind_t kind = resp->region->kind;
    mf_tl_tcp_hdr_t hdr;
    mf_status_t status;
    uint64_t off = 0;

    status = mf_tl_tcp_stage_reserve(stage, kind, resp->len);
    if (status == MF_OK && resp->vec == NULL) {
        status = mf_tl_stage_copy("tcp", kind, stage->mem.buf, resp->data,
                                  resp->len);
    }
    for (uint32_t i = 0; status == MF_OK && i < resp->nvec; i++) {
        status = mf_tl_stage_copy("tcp", kind, stage->mem.buf + off,
                                  resp->vec[i].iov_base, resp->vec[i].iov_len);
        off += resp->vec[i].iov_len;
    }
    if (status != MF_OK) {
        mf_tl_tcp_hdr_decode(resp->hdr, &hdr);
        hdr.status = status;
        hdr.len = 0;
        mf_tl_tcp_hdr_encode(&hdr, resp->hdr);
        resp->len = 0;
    }
    /* from here on the data is the staging's */
    mf_tl_tcp_resp_clear(resp);
    resp->data = resp->len > 0 ? stage->mem.buf : NULL;
    stage->tag = resp->seq;
    stage->valid = true;
}

/* Returns false when the conn was closed. */
static bool mf_tl_tcp_conn_send(mf_tl_tcp_conn_t *conn)
{
    struct iovec iov[MF_TL_TCP_IOV_MAX];
    struct iovec one;
    mf_tl_tcp_resp_t *resp;
    size_t skip, n, total, left;
    unsigned i;
    bool whole = true;
    ssize_t ret;

    while (conn->count > 0) {
        n = 0;
        total = 0;
        skip = conn->sent_off;
        for (i = 0; i < conn->count && n + 2 <= MF_TL_TCP_IOV_MAX && whole;
             i++) {
            resp = &conn->ring[(conn->head + i) % MF_TL_TCP_RING];
            if (resp->len > 0 && resp->region != NULL &&
                mf_unlikely(resp->region->kind != MF_MEM_KIND_HOST) &&
                (!conn->out_stage.valid || conn->out_stage.tag != resp->seq)) {
                if (i != 0) {
                    break; /* one staged response at a time */
                }
                mf_tl_tcp_conn_stage_get(conn, resp);
            }
            if (skip < MF_TL_TCP_HDR_SIZE) {
                iov[n].iov_base = resp->hdr + skip;
                iov[n].iov_len = MF_TL_TCP_HDR_SIZE - skip;
                total += iov[n++].iov_len;
                skip = 0;
            } else {
                skip -= MF_TL_TCP_HDR_SIZE;
            }
            if (resp->len == 0) {
                continue;
            }
            if (resp->vec != NULL) {
                total +=
                    mf_tl_tcp_iov_append(iov, &n, MF_TL_TCP_IOV_MAX, resp->vec,
                                         resp->nvec, skip, &whole);
            } else {
                one.iov_base = (void *)resp->data;
                one.iov_len = resp->len;
                total += mf_tl_tcp_iov_append(iov, &n, MF_TL_TCP_IOV_MAX, &one,
                                              1, skip, &whole);
            }
            skip = 0;
        }
        ret = mf_tl_tcp_sendv(conn->sock.fd, iov, n);
        if (ret < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return true;
            }
            mf_debug("tcp: send to %s failed: %m", conn->peer);
            mf_tl_tcp_conn_close(conn);
            return false;
        }
        n = (size_t)ret;
        while (conn->count > 0 && n > 0) {
            resp = &conn->ring[conn->head];
            left = MF_TL_TCP_HDR_SIZE + resp->len - conn->sent_off;
            if (n >= left) {
                n -= left;
                conn->sent_off = 0;
                mf_tl_tcp_resp_clear(resp);
                conn->head = (conn->head + 1) % MF_TL_TCP_RING;
                conn->count--;
            } else {
                conn->sent_off += n;
                n = 0;
            }
        }
        if ((size_t)ret < total) {
            return true;
        }
        whole = true;
    }
    return true;
}

/* ------------------------------------------------------------- HELLO */

static mf_tl_tcp_conn_t *mf_tl_tcp_conn_find(mf_tl_tcp_worker_t *worker,
                                             uint64_t id)
{
    mf_list_t *elem;

    for (elem = worker->conns.next; elem != &worker->conns; elem = elem->next) {
        mf_tl_tcp_conn_t *conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);

        if (conn->id == id) {
            return conn;
        }
    }
    return NULL;
}

/* Closes the earlier connection of a lane, on its worker. */
static void mf_tl_tcp_conn_supersede(mf_tl_tcp_worker_t *worker, uint64_t id)
{
    mf_tl_tcp_conn_t *old = mf_tl_tcp_conn_find(worker, id);

    if (old != NULL) {
        mf_debug("tcp: %s reconnected its lane; the earlier connection "
                 "closes, whatever it held unread is dropped",
                 old->peer);
        mf_tl_tcp_conn_close(old);
    }
}

/* The new connection may go on: answers its HELLO, reads what waits. */
static void mf_tl_tcp_conn_hello_done(mf_tl_tcp_conn_t *conn)
{
    conn->paused = false;
    mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_HELLO_ACK, MF_OK, conn->proof_s,
                           MF_TL_TCP_MAC, NULL, 0, NULL);
}

typedef struct mf_tl_tcp_hello_cmd {
    mf_tl_tcp_cmd_t cmd;
    uint64_t old_id;
    uint64_t new_id;
    mf_tl_tcp_worker_t *new_worker;
} mf_tl_tcp_hello_cmd_t;

/* On the new connection's worker: the old one is closed. */
static void mf_tl_tcp_hello_resume_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_hello_cmd_t *hc = arg;
    mf_tl_tcp_conn_t *conn = mf_tl_tcp_conn_find(worker, hc->new_id);

    free(hc);
    if (conn != NULL && conn->paused) {
        mf_tl_tcp_conn_hello_done(conn);
        /* edge-triggered: read now, all of it (its events went by) */
        mf_tl_tcp_conn_event(conn, EPOLLIN | EPOLLRDHUP);
    }
}

/* On the old connection's worker: closes it, then lets the new one go. */
static void mf_tl_tcp_hello_close_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_hello_cmd_t *hc = arg;

    mf_tl_tcp_conn_supersede(worker, hc->old_id);
    hc->cmd.fn = mf_tl_tcp_hello_resume_cmd;
    hc->cmd.arg = hc;
    mf_tl_tcp_worker_post(hc->new_worker, &hc->cmd);
}

static bool mf_tl_tcp_conn_hello(mf_tl_tcp_conn_t *conn);

/* Closes a connection that did not prove it belongs to the pool: the
 * first of an interface is a warning, later ones debug lines. */
static void mf_tl_tcp_conn_refuse(mf_tl_tcp_conn_t *conn, const char *why)
{
    mf_tl_tcp_conn_drop(conn, &conn->worker->iface->refuse_warned,
                        "refused a connection from", why);
}

/* A HELLO's nonce and proof arrived (in in_table): checked against the
 * interface's secret.  Returns false when the conn was closed. */
static bool mf_tl_tcp_conn_hello_proof(mf_tl_tcp_conn_t *conn)
{
    mf_tl_tcp_iface_t *iface = conn->worker->iface;
    const uint8_t *nonce_c = conn->in_table;
    uint8_t expected[MF_TL_TCP_MAC];

    mf_tl_tcp_proof(iface->secret, false, conn->nonce_s, nonce_c,
                    conn->in_req.key, conn->in_req.addr, expected);
    if (!mf_tl_tcp_proof_equal(conn->in_table + MF_TL_TCP_NONCE, expected)) {
        mf_tl_tcp_conn_refuse(conn, "its HELLO does not prove it knows the "
                                    "interface's secret");
        return false;
    }
    mf_tl_tcp_proof(iface->secret, true, conn->nonce_s, nonce_c,
                    conn->in_req.key, conn->in_req.addr, conn->proof_s);
    return mf_tl_tcp_conn_hello(conn);
}

/* A HELLO (checked): the connection becomes its lane's newest.  Returns
 * false when the conn was closed. */
static bool mf_tl_tcp_conn_hello(mf_tl_tcp_conn_t *conn)
{
    mf_tl_tcp_iface_t *iface = conn->worker->iface;
    mf_tl_tcp_hello_t *hello, *old = NULL;
    mf_tl_tcp_hello_cmd_t *hc = NULL;
    mf_status_t status = MF_ERR_NOMEM;

    if (conn->hello) {
        mf_tl_tcp_conn_proto_error(conn, "a second HELLO");
        return false;
    }
    conn->hello_key[0] = conn->in_req.key;
    conn->hello_key[1] = conn->in_req.addr;
    hello = malloc(sizeof(*hello));
    if (hello != NULL) {
        hello->conn_id = conn->id;
        hello->worker = conn->worker;
        pthread_mutex_lock(&iface->hellos_lock);
        status = mf_hmap_put(&iface->hellos, conn->hello_key,
                             sizeof(conn->hello_key), hello, (void **)&old);
        pthread_mutex_unlock(&iface->hellos_lock);
    }
    if (status != MF_OK) {
        mf_error("tcp: no memory for the lane of %s; disconnected", conn->peer);
        free(hello);
        mf_tl_tcp_conn_close(conn);
        return false;
    }
    conn->hello = true;
    if (old == NULL || old->worker == conn->worker) {
        if (old != NULL) {
            mf_tl_tcp_conn_supersede(conn->worker, old->conn_id);
        }
        free(old);
        mf_tl_tcp_conn_hello_done(conn);
        return true;
    }
    hc = malloc(sizeof(*hc));
    if (hc == NULL) { /* the old one may live on: no ACK without it gone */
        mf_error("tcp: no memory to close the earlier lane of %s; "
                 "disconnected",
                 conn->peer);
        free(old);
        mf_tl_tcp_conn_close(conn);
        return false;
    }
    hc->old_id = old->conn_id;
    hc->new_id = conn->id;
    hc->new_worker = conn->worker;
    hc->cmd.fn = mf_tl_tcp_hello_close_cmd;
    hc->cmd.arg = hc;
    hc->cmd.drop = free;
    conn->paused = true;
    mf_tl_tcp_worker_post(old->worker, &hc->cmd);
    free(old);
    return true;
}

/* A request's pieces are known (conn->in_addrs, in_lens; in_req.count of
 * them, 1 for PUT and GET): checks them, answers a GET, or sets up
 * receiving a PUT's data. */
static void mf_tl_tcp_conn_serve(mf_tl_tcp_conn_t *conn)
{
    mf_tl_tcp_iface_t *iface = conn->worker->iface;
    mf_tl_tcp_hdr_t *req = &conn->in_req;
    const uint32_t n = mf_tl_tcp_op_vec(req->op) ? req->count : 1;
    mf_tl_tcp_region_t *region = NULL;
    struct iovec *vec = NULL;
    mf_status_t status;
    const char *why = NULL;
    uint32_t i;

    if (mf_tl_tcp_op_vec(req->op)) {
        why = mf_tl_tcp_vec_check(req, conn->in_table, conn->in_addrs,
                                  conn->in_lens);
    }
    if (why != NULL) {
        status = MF_ERR_PROTO;
    } else {
        region = mf_tl_tcp_region_find(iface, req->key, conn->in_addrs,
                                       conn->in_lens, n, &status);
    }
    if (status == MF_OK && region->kind != MF_MEM_KIND_HOST &&
        req->len > MF_TL_TCP_CHUNK_MAX) {
        /* device memory is staged: a request of at most one chunk */
        status = MF_ERR_TOO_LARGE;
        region = NULL;
    }
    if (status == MF_OK && !mf_tl_tcp_op_writes(req->op) &&
        mf_tl_tcp_op_vec(req->op)) {
        vec = malloc(n * sizeof(*vec));
        if (vec == NULL) {
            status = MF_ERR_NOMEM;
            region = NULL;
        }
    }
    if (status != MF_OK) {
        mf_debug("tcp: %s: %s of %" PRIu64 " bytes in %u piece(s) at 0x%" PRIx64
                 " refused: %s%s%s",
                 conn->peer, mf_tl_tcp_op_writes(req->op) ? "put" : "get",
                 req->len, n, conn->in_addrs[0], mf_status_name(status),
                 why != NULL ? ": " : "", why != NULL ? why : "");
    }
    if (status == MF_OK && mf_tl_tcp_op_vec(req->op)) {
        atomic_fetch_add_explicit(&iface->vec_requests, 1,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&iface->vec_pieces, n, memory_order_relaxed);
    }
    if (!mf_tl_tcp_op_writes(req->op)) {
        if (status != MF_OK) {
            mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_GET_DATA, status, NULL, 0,
                                   NULL, 0, NULL);
            return;
        }
        for (i = 0; vec != NULL && i < n; i++) {
            vec[i].iov_base = (void *)(uintptr_t)conn->in_addrs[i];
            vec[i].iov_len = conn->in_lens[i];
        }
        mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_GET_DATA, MF_OK,
                               (const uint8_t *)(uintptr_t)conn->in_addrs[0],
                               req->len, vec, vec != NULL ? n : 0, region);
        return;
    }
    conn->in_status = status;
    conn->in_left = req->len;
    conn->in_region = region;
    conn->in_dev = false;
    conn->in_iov_at = 0;
    conn->in_iov_n = n;
    for (i = 0; status == MF_OK && i < n; i++) {
        conn->in_iov[i].iov_base = (void *)(uintptr_t)conn->in_addrs[i];
        conn->in_iov[i].iov_len = conn->in_lens[i];
    }
    if (status == MF_OK && region->kind != MF_MEM_KIND_HOST) {
        /* device memory: received into the staging, copied at the end */
        status =
            mf_tl_tcp_stage_reserve(&conn->in_stage, region->kind, req->len);
        conn->in_status = status;
        if (status == MF_OK) {
            conn->in_dev = true;
            conn->in_iov[0].iov_base = conn->in_stage.mem.buf;
            conn->in_iov[0].iov_len = req->len;
            conn->in_iov_n = 1;
        }
    }
    conn->in_state = status == MF_OK ? MF_TL_TCP_IN_DATA : MF_TL_TCP_IN_DISCARD;
    if (conn->in_left == 0) {
        conn->in_state = MF_TL_TCP_IN_HDR;
        conn->in_region = NULL;
        mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_PUT_ACK, status, NULL, 0,
                               NULL, 0, NULL);
    }
}

/* A whole request header is in conn->in_hdr.  Returns false when the
 * conn was closed. */
static bool mf_tl_tcp_conn_request(mf_tl_tcp_conn_t *conn)
{
    mf_tl_tcp_hdr_t *req = &conn->in_req;
    const char *why;

    mf_tl_tcp_hdr_decode(conn->in_hdr, req);
    why = mf_tl_tcp_req_check(req);
    if (why != NULL) {
        mf_tl_tcp_conn_proto_error(conn, why);
        return false;
    }
    if (req->op == MF_TL_TCP_OP_HELLO) {
        if (conn->hello) {
            mf_tl_tcp_conn_proto_error(conn, "a second HELLO");
            return false;
        }
        conn->in_state = MF_TL_TCP_IN_HELLO; /* its nonce and proof */
        conn->in_got = 0;
        return true;
    }
    if (!conn->hello) {
        mf_tl_tcp_conn_refuse(conn, "a request before its HELLO");
        return false;
    }
    if (mf_tl_tcp_op_vec(req->op)) {
        conn->in_state = MF_TL_TCP_IN_TABLE; /* then mf_tl_tcp_conn_serve */
        conn->in_got = 0;
        return true;
    }
    conn->in_addrs[0] = req->addr;
    conn->in_lens[0] = req->len;
    mf_tl_tcp_conn_serve(conn);
    return true;
}

/* The data of a PUT arrived whole: device data leaves the staging. */
static void mf_tl_tcp_conn_put_done(mf_tl_tcp_conn_t *conn)
{
    const uint32_t n =
        mf_tl_tcp_op_vec(conn->in_req.op) ? conn->in_req.count : 1;
    uint64_t off = 0;

    if (conn->in_state == MF_TL_TCP_IN_DATA && mf_unlikely(conn->in_dev)) {
        for (uint32_t i = 0; i < n && conn->in_status == MF_OK; i++) {
            conn->in_status = mf_tl_stage_copy(
                "tcp", conn->in_region->kind,
                (void *)(uintptr_t)conn->in_addrs[i],
                conn->in_stage.mem.buf + off, conn->in_lens[i]);
            off += conn->in_lens[i];
        }
        conn->in_dev = false;
    }
    conn->in_state = MF_TL_TCP_IN_HDR;
    conn->in_region = NULL;
    mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_PUT_ACK, conn->in_status, NULL, 0,
                           NULL, 0, NULL);
}

/* Receives PUT data into the segment (or device staging).  A function of
 * its own, never inlined: tests/tsan.supp names it (a dead writer's late
 * bytes, a known gap of the protocol). */
__attribute__((noinline)) static ssize_t
mf_tl_tcp_conn_recv_data(mf_tl_tcp_conn_t *conn)
{
    return mf_tl_tcp_recvv(conn->sock.fd, conn->in_iov + conn->in_iov_at,
                           conn->in_iov_n - conn->in_iov_at);
}

/* Reads requests until the socket is empty (a short read tells, unless
 * drain asks to read on to EAGAIN or the end: the peer hung up, or no
 * event may come for what is there) or the response ring is full.
 * Returns false when the conn was closed. */
static bool mf_tl_tcp_conn_recv(mf_tl_tcp_conn_t *conn, bool drain)
{
    uint8_t *scratch = conn->worker->scratch;
    size_t table_len, want;
    bool stop = false;
    ssize_t ret;

    while (conn->count < MF_TL_TCP_RING && !conn->paused && !stop) {
        table_len = (size_t)conn->in_req.count * MF_TL_TCP_VEC_ENTRY;
        switch (conn->in_state) {
        case MF_TL_TCP_IN_HDR:
            want = MF_TL_TCP_HDR_SIZE - conn->in_got;
            ret = recv(conn->sock.fd, conn->in_hdr + conn->in_got, want, 0);
            break;
        case MF_TL_TCP_IN_TABLE:
            want = table_len - conn->in_got;
            ret = recv(conn->sock.fd, conn->in_table + conn->in_got, want, 0);
            break;
        case MF_TL_TCP_IN_HELLO:
            want = MF_TL_TCP_HELLO_LEN - conn->in_got;
            ret = recv(conn->sock.fd, conn->in_table + conn->in_got, want, 0);
            break;
        case MF_TL_TCP_IN_DATA:
            want = conn->in_left;
            ret = mf_tl_tcp_conn_recv_data(conn);
            break;
        default:
            want = MF_MIN(conn->in_left, MF_TL_TCP_SCRATCH);
            ret = recv(conn->sock.fd, scratch, want, 0);
            break;
        }
        stop = !drain && ret > 0 && (size_t)ret < want;
        if (ret <= 0) {
            if (ret < 0 && (errno == EAGAIN || errno == EINTR)) {
                return true;
            }
            mf_tl_tcp_conn_close(conn);
            return false;
        }
        if (conn->in_state == MF_TL_TCP_IN_HDR) {
            conn->in_got += (size_t)ret;
            if (conn->in_got == MF_TL_TCP_HDR_SIZE) {
                conn->in_got = 0;
                if (!mf_tl_tcp_conn_request(conn)) {
                    return false;
                }
            }
            continue;
        }
        if (conn->in_state == MF_TL_TCP_IN_HELLO) {
            conn->in_got += (size_t)ret;
            if (conn->in_got == MF_TL_TCP_HELLO_LEN) {
                conn->in_got = 0;
                conn->in_state = MF_TL_TCP_IN_HDR;
                if (!mf_tl_tcp_conn_hello_proof(conn)) {
                    return false;
                }
            }
            continue;
        }
        if (conn->in_state == MF_TL_TCP_IN_TABLE) {
            conn->in_got += (size_t)ret;
            if (conn->in_got == table_len) {
                conn->in_got = 0;
                conn->in_state = MF_TL_TCP_IN_HDR;
                mf_tl_tcp_conn_serve(conn);
            }
            continue;
        }
        if (conn->in_state == MF_TL_TCP_IN_DATA) {
            mf_tl_tcp_iov_consume(conn->in_iov, &conn->in_iov_at,
                                  conn->in_iov_n, (size_t)ret);
        }
        conn->in_left -= (uint64_t)ret;
        if (conn->in_left == 0) {
            mf_tl_tcp_conn_put_done(conn);
        }
    }
    return true;
}

void mf_tl_tcp_conn_event(mf_tl_tcp_conn_t *conn, uint32_t events)
{
    const bool drain = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    bool blocked;

    /* input stops while the response ring is full (edge-triggered: the
     * data stays in the socket), so read again once sending made room */
    for (;;) {
        if (!mf_tl_tcp_conn_recv(conn, drain)) {
            return;
        }
        blocked = conn->count == MF_TL_TCP_RING;
        if (!mf_tl_tcp_conn_send(conn)) {
            return;
        }
        if (!blocked || conn->count == MF_TL_TCP_RING) {
            return;
        }
    }
}

static void mf_tl_tcp_conn_adopt(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_conn_t *conn = arg;

    conn->worker = worker;
    mf_list_push_back(&worker->conns, &conn->elem);
    if (mf_tl_tcp_random(conn->nonce_s, sizeof(conn->nonce_s)) != MF_OK ||
        mf_tl_tcp_epoll_add(worker, &conn->sock,
                            EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
        mf_tl_tcp_conn_close(conn);
        return;
    }
    /* the CHALLENGE first (in_req is zero: req_id 0), sent below */
    mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_CHALLENGE, MF_OK, conn->nonce_s,
                           MF_TL_TCP_NONCE, NULL, 0, NULL);
    mf_tl_tcp_conn_event(conn, EPOLLIN | EPOLLRDHUP); /* read all there is */
}

typedef struct mf_tl_tcp_adopt_cmd {
    mf_tl_tcp_cmd_t cmd; /* freed with the conn's command */
    mf_tl_tcp_conn_t *conn;
} mf_tl_tcp_adopt_cmd_t;

static void mf_tl_tcp_conn_adopt_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_adopt_cmd_t *ac = arg;
    mf_tl_tcp_conn_t *conn = ac->conn;

    free(ac);
    mf_tl_tcp_conn_adopt(worker, conn);
}

static void mf_tl_tcp_conn_adopt_drop(void *arg)
{
    mf_tl_tcp_adopt_cmd_t *ac = arg;

    mf_tl_tcp_conn_close(ac->conn); /* never adopted: no worker */
    free(ac);
}

/* accept() failed (out of descriptors, say): the listening socket leaves
 * the epoll set for a moment, or it would wake the worker at once, again
 * and again; mf_tl_tcp_accept_resume() puts it back. */
static void mf_tl_tcp_accept_pause(mf_tl_tcp_worker_t *worker, int err)
{
    mf_tl_tcp_iface_t *iface = worker->iface;

    mf_sock_accept_failed(&iface->accept_guard, iface->listen.fd, err);
    if (epoll_ctl(worker->epfd, EPOLL_CTL_DEL, iface->listen.fd, NULL) != 0) {
        mf_error("tcp: epoll_ctl(DEL, %d) failed: %m", iface->listen.fd);
        return;
    }
    iface->listen_resume_ms = mf_time_ms() + MF_SOCK_ACCEPT_BACKOFF_MS;
}

bool mf_tl_tcp_accept_paused(mf_tl_tcp_worker_t *worker)
{
    return (worker->index == 0) && (worker->iface->listen_resume_ms != 0);
}

void mf_tl_tcp_accept_resume(mf_tl_tcp_worker_t *worker)
{
    mf_tl_tcp_iface_t *iface = worker->iface;

    if (!mf_tl_tcp_accept_paused(worker) ||
        (mf_time_ms() < iface->listen_resume_ms)) {
        return;
    }
    iface->listen_resume_ms = 0;
    (void)mf_tl_tcp_epoll_add(worker, &iface->listen, EPOLLIN); /* logs */
}

void mf_tl_tcp_accept(mf_tl_tcp_worker_t *worker)
{
    mf_tl_tcp_iface_t *iface = worker->iface;
    mf_tl_tcp_adopt_cmd_t *ac;
    mf_tl_tcp_worker_t *owner;
    struct sockaddr_in peer;
    socklen_t len;
    mf_tl_tcp_conn_t *conn;
    int fd;

    for (;;) {
        len = sizeof(peer);
        fd = accept4(iface->listen.fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (mf_sock_accept_transient(errno)) {
                continue;
            }
            mf_tl_tcp_accept_pause(worker, errno);
            return;
        }
        mf_tl_tcp_sockopts(fd, iface->timeout_ms);
        conn = calloc(1, sizeof(*conn));
        if (conn == NULL) {
            mf_error("tcp: cannot allocate a connection");
            close(fd);
            continue;
        }
        conn->sock.type = MF_TL_TCP_SOCK_CONN;
        conn->sock.fd = fd;
        conn->id = atomic_fetch_add(&iface->next_conn_id, 1) + 1;
        mf_list_init(&conn->elem);
        mf_tl_tcp_addr_str(&peer, conn->peer, sizeof(conn->peer));
        mf_debug("tcp: connection from %s", conn->peer);
        owner = &iface->workers[atomic_fetch_add(&iface->next_conn_worker, 1) %
                                iface->nworkers];
        if (owner == worker) {
            mf_tl_tcp_conn_adopt(worker, conn);
            continue;
        }
        ac = malloc(sizeof(*ac));
        if (ac == NULL) {
            mf_error("tcp: cannot allocate a command");
            mf_tl_tcp_conn_adopt(worker, conn);
            continue;
        }
        ac->conn = conn;
        ac->cmd.fn = mf_tl_tcp_conn_adopt_cmd;
        ac->cmd.arg = ac;
        ac->cmd.drop = mf_tl_tcp_conn_adopt_drop;
        mf_tl_tcp_worker_post(owner, &ac->cmd);
    }
}
