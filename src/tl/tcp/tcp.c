/*
 * tcp transport: one-sided put and get to peers on any host.
 *
 * Every interface listens on a TCP port and runs `lanes` worker threads,
 * each with its own epoll set.  A worker owns sockets of two kinds:
 *   - lanes: connections this process opened to a peer's interface, one of
 *     the `lanes` connections of an endpoint; requests go out on them and
 *     responses come back;
 *   - conns: connections peers opened to us; requests come in and are
 *     served from (PUT: received into, GET: sent from) our registered
 *     segments, responses go out in request order.
 * All sockets are non-blocking and edge-triggered; data moves with
 * writev/recv straight between the socket and the final memory: no staging
 * buffer, no extra copy.
 *
 * An operation (put/get) waits in its endpoint's queue; lanes pull it in
 * chunks of at most chunk_size bytes while they have fewer than their
 * window of bytes (and MF_TL_TCP_RING requests) in flight, so a large
 * operation spreads over every lane and is pipelined on each.  Operations
 * of at most one chunk wait in a queue of their own that lanes serve
 * first, so a small operation is never queued behind the rest of a large
 * one, only behind the window already in flight.
 *
 * Invariants:
 *   - a socket and the state of its lane or conn are touched only by the
 *     worker that owns it; other threads reach a worker through its
 *     command queue (and eventfd), and wait for synchronous commands;
 *   - an operation's queue position, next offset, chunks in flight and
 *     status are under its endpoint's lock; comp->cb fires exactly once,
 *     outside any lock, when no chunk is queued or in flight;
 *   - a served request is checked against the registered segments (key,
 *     address and length) before any byte is touched; anything else gets
 *     an error response (a PUT's data is read and dropped), and a peer
 *     that breaks the framing is disconnected;
 *   - a lane that breaks fails the chunks it had in flight with a peer
 *     error (their operations fail) and reconnects when there is work; a
 *     failed connect fails everything queued on the endpoint, so nothing
 *     waits on a peer that is gone;
 *   - a segment being deregistered is first removed from the table, then
 *     every worker drops the conns that still point into it.
 */
#include "tl/tcp/tcp.h"

#include "util/codec.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MF_TL_TCP_ADDR_MAGIC    0x41544d46u /* "FMTA" */
#define MF_TL_TCP_ADDR_VERSION  1
#define MF_TL_TCP_RKEY_MAGIC    0x4b544d46u /* "FMTK" */
#define MF_TL_TCP_RKEY_VERSION  1
#define MF_TL_TCP_RING          64 /* requests in flight per lane / conn */
#define MF_TL_TCP_WINDOW_CHUNKS 8  /* chunks in flight per lane */
#define MF_TL_TCP_IOV_MAX       32
#define MF_TL_TCP_SCRATCH       (64u * 1024u)
#define MF_TL_TCP_CONNECT_MS    10000 /* at most; tcp_timeout_ms if less */
#define MF_TL_TCP_USER_TIMEOUT  30000 /* tcp_timeout_ms when it is 0 */
#define MF_TL_TCP_EVENTS        64

typedef struct mf_tl_tcp_iface mf_tl_tcp_iface_t;
typedef struct mf_tl_tcp_worker mf_tl_tcp_worker_t;
typedef struct mf_tl_tcp_ep mf_tl_tcp_ep_t;
typedef struct mf_tl_tcp_op mf_tl_tcp_op_t;

typedef enum mf_tl_tcp_sock_type {
    MF_TL_TCP_SOCK_LISTEN = 1,
    MF_TL_TCP_SOCK_EVENT,
    MF_TL_TCP_SOCK_LANE,
    MF_TL_TCP_SOCK_CONN,
} mf_tl_tcp_sock_type_t;

/* First member of everything an epoll event points at. */
typedef struct mf_tl_tcp_sock {
    mf_tl_tcp_sock_type_t type;
    int fd;
} mf_tl_tcp_sock_t;

/* A registered segment that peers may reach. */
typedef struct mf_tl_tcp_region {
    mf_tl_memh_t super;
    uint64_t key;
    bool exported; /* in the served table */
    mf_list_t elem;
} mf_tl_tcp_region_t;

typedef struct mf_tl_tcp_rkey {
    mf_tl_rkey_t super;
    uint64_t key;
} mf_tl_tcp_rkey_t;

/* ------------------------------------------------------- client side */

struct mf_tl_tcp_op {
    mf_list_t qelem; /* in ep->small_q or ep->large_q while queued */
    mf_list_t aelem; /* in ep->all_ops until completed */
    mf_tl_comp_t *comp;
    uint8_t code; /* MF_TL_TCP_OP_PUT or _GET */
    bool queued;
    uint8_t *buf;
    uint64_t raddr;
    uint64_t size;
    uint64_t key;
    uint64_t seq;
    uint64_t next_off;
    uint32_t inflight;
    mf_status_t status;
};

typedef struct mf_tl_tcp_flush {
    mf_list_t elem;
    mf_tl_comp_t *comp;
    uint64_t seq; /* completes when every op up to seq is done */
} mf_tl_tcp_flush_t;

typedef struct mf_tl_tcp_chunk {
    mf_tl_tcp_op_t *op;
    uint64_t off;
    uint64_t len;
    uint64_t req_id;
    uint8_t hdr[MF_TL_TCP_HDR_SIZE];
} mf_tl_tcp_chunk_t;

typedef enum mf_tl_tcp_lane_state {
    MF_TL_TCP_LANE_IDLE = 0, /* no socket */
    MF_TL_TCP_LANE_CONNECTING,
    MF_TL_TCP_LANE_CONNECTED,
} mf_tl_tcp_lane_state_t;

typedef struct mf_tl_tcp_lane {
    mf_tl_tcp_sock_t sock;
    mf_tl_tcp_ep_t *ep;
    mf_tl_tcp_worker_t *worker;
    unsigned index;
    /* worker only */
    mf_tl_tcp_lane_state_t state;
    uint64_t connect_deadline;
    mf_list_t celem; /* in worker->connecting */
    mf_tl_tcp_chunk_t ring[MF_TL_TCP_RING];
    unsigned head;   /* oldest chunk in flight */
    unsigned count;  /* chunks in the ring */
    unsigned nsent;  /* of them, fully sent (from head) */
    size_t sent_off; /* bytes of ring[head + nsent] sent */
    uint64_t inflight_bytes;
    uint8_t in_hdr[MF_TL_TCP_HDR_SIZE];
    size_t in_got;
    bool in_payload;
    uint64_t in_left;
    uint8_t *in_dst;
    uint64_t next_req_id;
    /* under worker->lock */
    bool kicked;
    mf_list_t kelem; /* in worker->kicked */
} mf_tl_tcp_lane_t;

struct mf_tl_tcp_ep {
    mf_tl_ep_t super;
    struct sockaddr_in addr;
    char name[64]; /* "ip:port", for messages */
    unsigned nlanes;
    mf_tl_tcp_lane_t *lanes;
    atomic_uint rr; /* lane kicked for the next small op */
    pthread_mutex_t lock;
    mf_list_t small_q;
    mf_list_t large_q;
    mf_list_t all_ops; /* in issue order */
    mf_list_t flushes;
    uint64_t next_seq;
};

/* ------------------------------------------------------- server side */

typedef struct mf_tl_tcp_resp {
    uint8_t hdr[MF_TL_TCP_HDR_SIZE];
    const uint8_t *data;
    uint64_t len;
    mf_tl_tcp_region_t *region; /* data points into it */
} mf_tl_tcp_resp_t;

typedef enum mf_tl_tcp_in_state {
    MF_TL_TCP_IN_HDR = 0,
    MF_TL_TCP_IN_DATA,    /* PUT data into in_dst */
    MF_TL_TCP_IN_DISCARD, /* PUT data of a refused request */
} mf_tl_tcp_in_state_t;

typedef struct mf_tl_tcp_conn {
    mf_tl_tcp_sock_t sock;
    mf_tl_tcp_worker_t *worker;
    mf_list_t elem; /* in worker->conns */
    char peer[64];
    mf_tl_tcp_in_state_t in_state;
    uint8_t in_hdr[MF_TL_TCP_HDR_SIZE];
    size_t in_got;
    mf_tl_tcp_hdr_t in_req;
    uint8_t *in_dst;
    uint64_t in_left;
    mf_status_t in_status;
    mf_tl_tcp_region_t *in_region;
    mf_tl_tcp_resp_t ring[MF_TL_TCP_RING];
    unsigned head;
    unsigned count;
    size_t sent_off;
} mf_tl_tcp_conn_t;

/* ------------------------------------------------------- workers */

typedef struct mf_tl_tcp_cmd {
    mf_list_t elem;
    void (*fn)(mf_tl_tcp_worker_t *worker, void *arg);
    void *arg;
    bool sync;
    bool done;
} mf_tl_tcp_cmd_t;

struct mf_tl_tcp_worker {
    mf_tl_tcp_iface_t *iface;
    unsigned index;
    pthread_t thread;
    bool started;
    int epfd;
    mf_tl_tcp_sock_t ev; /* eventfd */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* synchronous commands done */
    mf_list_t cmds;
    mf_list_t kicked;
    bool stop;
    bool woken; /* eventfd written and not read yet */
    /* worker only */
    mf_list_t conns;
    mf_list_t connecting;
    uint8_t *scratch;
};

struct mf_tl_tcp_iface {
    mf_tl_iface_t super;
    unsigned nworkers;
    mf_tl_tcp_worker_t *workers;
    mf_tl_tcp_sock_t listen;
    struct sockaddr_in adv; /* advertised address */
    unsigned lanes;
    uint64_t chunk;
    uint64_t window;     /* bytes in flight per lane */
    uint32_t timeout_ms; /* dead-peer timeout (tcp_timeout_ms) */
    atomic_uint next_worker;
    pthread_mutex_t regions_lock;
    mf_list_t regions; /* exported mf_tl_tcp_region_t */
    atomic_bool proto_warned;
};

/* ================================================================ utils */

static mf_status_t mf_tl_tcp_errno_status(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return MF_ERR_CONN_REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ETIMEDOUT:
        return MF_ERR_UNREACHABLE;
    default:
        return MF_ERR_CONN_RESET;
    }
}

/*
 * Options of every connection.  A peer that acknowledges nothing for
 * timeout_ms is dead: TCP_USER_TIMEOUT bounds unacknowledged data, and
 * keepalive (idle timeout/3, then 3 probes timeout/6 apart; the user
 * timeout cuts it short) finds a silent peer while a lane waits for an
 * answer with nothing unacknowledged.
 */
static void mf_tl_tcp_sockopts(int fd, uint32_t timeout_ms)
{
    int one = 1, cnt = 3;
    int idle = (int)MF_MAX(timeout_ms / 3000u, 1u);
    int intvl = (int)MF_MAX(timeout_ms / 6000u, 1u);
    unsigned user_timeout = timeout_ms;

    /* best effort: a missing option costs speed or failure detection */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
                     sizeof(user_timeout));
}

static void mf_tl_tcp_addr_str(const struct sockaddr_in *sin, char *out,
                               size_t len)
{
    char ip[INET_ADDRSTRLEN] = "?";

    (void)inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
    snprintf(out, len, "%s:%u", ip, ntohs(sin->sin_port));
}

static mf_status_t mf_tl_tcp_resolve(const char *host, struct in_addr *out)
{
    struct addrinfo hints, *res;
    int ret;

    if (inet_pton(AF_INET, host, out) == 1) {
        return MF_OK;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    ret = getaddrinfo(host, NULL, &hints, &res);
    if (ret != 0 || res == NULL) {
        mf_error("tcp: cannot resolve '%s': %s", host, gai_strerror(ret));
        return MF_ERR_INVALID;
    }
    *out = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return MF_OK;
}

/* The local address the kernel would use towards host (no packet sent). */
static mf_status_t mf_tl_tcp_route_to(const char *host, struct in_addr *out)
{
    struct sockaddr_in sin, local;
    socklen_t len = sizeof(local);
    mf_status_t status;
    int fd;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    status = mf_tl_tcp_resolve(host, &sin.sin_addr);
    if (status != MF_OK) {
        return status;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mf_error("tcp: socket(UDP) failed: %m");
        return MF_ERR_IO;
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fd, (struct sockaddr *)&local, &len) != 0) {
        mf_error("tcp: no route towards %s: %m", host);
        close(fd);
        return MF_ERR_UNREACHABLE;
    }
    close(fd);
    *out = local.sin_addr;
    return MF_OK;
}

/* writev that never raises SIGPIPE: a peer that went away is an error
 * of its connection, not of the process. */
static ssize_t mf_tl_tcp_sendv(int fd, struct iovec *iov, size_t n)
{
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* ============================================================== workers */

static void mf_tl_tcp_worker_wake_locked(mf_tl_tcp_worker_t *worker)
{
    uint64_t one = 1;

    if (!worker->woken) {
        worker->woken = true;
        if (write(worker->ev.fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
            mf_error("tcp: write(eventfd) failed: %m");
        }
    }
}

/* Runs fn on the worker; sync: waits for it (runs it here when called on
 * the worker itself). */
static void mf_tl_tcp_worker_run(mf_tl_tcp_worker_t *worker,
                                 void (*fn)(mf_tl_tcp_worker_t *, void *),
                                 void *arg)
{
    mf_tl_tcp_cmd_t cmd;

    if (!worker->started || pthread_equal(pthread_self(), worker->thread)) {
        fn(worker, arg);
        return;
    }
    cmd.fn = fn;
    cmd.arg = arg;
    cmd.sync = true;
    cmd.done = false;
    pthread_mutex_lock(&worker->lock);
    mf_list_push_back(&worker->cmds, &cmd.elem);
    mf_tl_tcp_worker_wake_locked(worker);
    while (!cmd.done) {
        pthread_cond_wait(&worker->cond, &worker->lock);
    }
    pthread_mutex_unlock(&worker->lock);
}

/* Queues fn on the worker without waiting; cmd is freed by the worker. */
static void mf_tl_tcp_worker_post(mf_tl_tcp_worker_t *worker,
                                  mf_tl_tcp_cmd_t *cmd)
{
    cmd->sync = false;
    cmd->done = false;
    pthread_mutex_lock(&worker->lock);
    mf_list_push_back(&worker->cmds, &cmd->elem);
    mf_tl_tcp_worker_wake_locked(worker);
    pthread_mutex_unlock(&worker->lock);
}

static void mf_tl_tcp_lane_kick(mf_tl_tcp_lane_t *lane)
{
    mf_tl_tcp_worker_t *worker = lane->worker;

    pthread_mutex_lock(&worker->lock);
    if (!lane->kicked) {
        lane->kicked = true;
        mf_list_push_back(&worker->kicked, &lane->kelem);
        mf_tl_tcp_worker_wake_locked(worker);
    }
    pthread_mutex_unlock(&worker->lock);
}

static int mf_tl_tcp_epoll_add(mf_tl_tcp_worker_t *worker,
                               mf_tl_tcp_sock_t *sock, uint32_t events)
{
    struct epoll_event ev;

    ev.events = events;
    ev.data.ptr = sock;
    if (epoll_ctl(worker->epfd, EPOLL_CTL_ADD, sock->fd, &ev) != 0) {
        mf_error("tcp: epoll_ctl(ADD, %d) failed: %m", sock->fd);
        return -1;
    }
    return 0;
}

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

static void mf_tl_tcp_lane_close(mf_tl_tcp_lane_t *lane, mf_status_t status,
                                 bool fail_queued)
{
    mf_tl_tcp_done_t done;
    mf_tl_tcp_chunk_t *chunk;

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
    while (lane->count > 0) {
        chunk = &lane->ring[lane->head];
        lane->head = (lane->head + 1) % MF_TL_TCP_RING;
        lane->count--;
        mf_tl_tcp_chunk_done(lane->ep, chunk->op, status, &done);
    }
    lane->head = 0;
    lane->nsent = 0;
    lane->sent_off = 0;
    lane->inflight_bytes = 0;
    lane->in_got = 0;
    lane->in_payload = false;
    if (fail_queued) {
        mf_tl_tcp_ep_fail_queued(lane->ep, status, &done);
    }
    mf_tl_tcp_done_fire(&done);
}

static void mf_tl_tcp_lane_fail(mf_tl_tcp_lane_t *lane, mf_status_t status,
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

/* Takes chunks from the endpoint's queues while the window has room. */
static void mf_tl_tcp_lane_fill(mf_tl_tcp_lane_t *lane)
{
    mf_tl_tcp_ep_t *ep = lane->ep;
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)ep->super.iface;
    mf_tl_tcp_chunk_t *chunk;
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
        chunk->off = op->next_off;
        chunk->len = MF_MIN(iface->chunk, op->size - op->next_off);
        chunk->req_id = lane->next_req_id++;
        op->next_off += chunk->len;
        op->inflight++;
        if (op->next_off == op->size) {
            mf_list_del(&op->qelem);
            op->queued = false;
        }
        hdr.magic = MF_TL_TCP_MAGIC;
        hdr.version = MF_TL_TCP_VERSION;
        hdr.op = op->code;
        hdr.flags = 0;
        hdr.status = 0;
        hdr.req_id = chunk->req_id;
        hdr.key = op->key;
        hdr.addr = op->raddr + chunk->off;
        hdr.len = chunk->len;
        mf_tl_tcp_hdr_encode(&hdr, chunk->hdr);
        lane->count++;
        lane->inflight_bytes += chunk->len;
    }
    pthread_mutex_unlock(&ep->lock);
}

/* Writes what is ready: headers, and PUT data straight from the source. */
static void mf_tl_tcp_lane_send(mf_tl_tcp_lane_t *lane)
{
    struct iovec iov[MF_TL_TCP_IOV_MAX];
    mf_tl_tcp_chunk_t *chunk;
    size_t skip, n, total;
    unsigned i, k;
    ssize_t ret;

    while (lane->nsent < lane->count) {
        n = 0;
        total = 0;
        skip = lane->sent_off;
        for (i = lane->nsent; i < lane->count && n + 2 <= MF_TL_TCP_IOV_MAX;
             i++) {
            chunk = &lane->ring[(lane->head + i) % MF_TL_TCP_RING];
            if (skip < MF_TL_TCP_HDR_SIZE) {
                iov[n].iov_base = chunk->hdr + skip;
                iov[n].iov_len = MF_TL_TCP_HDR_SIZE - skip;
                total += iov[n++].iov_len;
                skip = 0;
            } else {
                skip -= MF_TL_TCP_HDR_SIZE;
            }
            if (chunk->op->code == MF_TL_TCP_OP_PUT) {
                iov[n].iov_base = chunk->op->buf + chunk->off + skip;
                iov[n].iov_len = chunk->len - skip;
                total += iov[n++].iov_len;
            }
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
            size_t whole =
                MF_TL_TCP_HDR_SIZE +
                (chunk->op->code == MF_TL_TCP_OP_PUT ? chunk->len : 0);
            size_t left = whole - lane->sent_off;

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
    }
}

/* Reads responses: headers, and GET data straight into the destination. */
static void mf_tl_tcp_lane_recv(mf_tl_tcp_lane_t *lane)
{
    mf_tl_tcp_done_t done;
    mf_tl_tcp_chunk_t *chunk;
    mf_tl_tcp_hdr_t hdr;
    mf_status_t status;
    ssize_t ret;

    mf_tl_tcp_done_init(&done);
    while (lane->state == MF_TL_TCP_LANE_CONNECTED) {
        if (lane->in_payload) {
            ret = recv(lane->sock.fd, lane->in_dst, lane->in_left, 0);
        } else {
            ret = recv(lane->sock.fd, lane->in_hdr + lane->in_got,
                       MF_TL_TCP_HDR_SIZE - lane->in_got, 0);
        }
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
            lane->in_dst += ret;
            lane->in_left -= (uint64_t)ret;
            if (lane->in_left > 0) {
                continue;
            }
            lane->in_payload = false;
            status = MF_OK;
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
                lane->in_dst = chunk->op->buf + chunk->off;
                lane->in_left = hdr.len;
                continue;
            }
            status = (mf_status_t)hdr.status;
        }
        /* the head chunk is complete */
        lane->head = (lane->head + 1) % MF_TL_TCP_RING;
        lane->count--;
        lane->nsent--;
        lane->inflight_bytes -= chunk->len;
        mf_tl_tcp_chunk_done(lane->ep, chunk->op, status, &done);
    }
    mf_tl_tcp_done_fire(&done);
}

static void mf_tl_tcp_lane_run(mf_tl_tcp_lane_t *lane)
{
    unsigned before;

    if (lane->state == MF_TL_TCP_LANE_IDLE) {
        if (mf_tl_tcp_ep_has_work(lane->ep)) {
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
    if (lane->state == MF_TL_TCP_LANE_IDLE && mf_tl_tcp_ep_has_work(lane->ep)) {
        mf_tl_tcp_lane_connect(lane);
    }
}

static void mf_tl_tcp_lane_event(mf_tl_tcp_lane_t *lane, uint32_t events)
{
    socklen_t len = sizeof(int);
    int err = 0;

    if (lane->state == MF_TL_TCP_LANE_CONNECTING) {
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
        mf_list_del(&lane->celem);
        lane->state = MF_TL_TCP_LANE_CONNECTED;
        mf_debug("tcp: lane %u to %s connected", lane->index, lane->ep->name);
    }
    if (lane->state != MF_TL_TCP_LANE_CONNECTED) {
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        mf_tl_tcp_lane_recv(lane);
    }
    if (lane->state == MF_TL_TCP_LANE_CONNECTED && (events & EPOLLOUT)) {
        mf_tl_tcp_lane_send(lane);
    }
    mf_tl_tcp_lane_run(lane);
}

/* ========================================================== server side */

static mf_tl_tcp_region_t *mf_tl_tcp_region_find(mf_tl_tcp_iface_t *iface,
                                                 uint64_t key, uint64_t addr,
                                                 uint64_t len,
                                                 mf_status_t *status_p)
{
    mf_tl_tcp_region_t *region, *found = NULL;
    uint64_t base;
    mf_list_t *elem;

    *status_p = MF_ERR_PEER_REJECTED; /* no such key */
    pthread_mutex_lock(&iface->regions_lock);
    for (elem = iface->regions.next; elem != &iface->regions;
         elem = elem->next) {
        region = mf_container_of(elem, mf_tl_tcp_region_t, elem);
        if (region->key != key) {
            continue;
        }
        base = (uint64_t)(uintptr_t)region->super.addr;
        if (mf_tl_tcp_range_inside(base, region->super.size, addr, len)) {
            found = region;
            *status_p = MF_OK;
        } else {
            *status_p = MF_ERR_OUT_OF_RANGE;
        }
        break;
    }
    pthread_mutex_unlock(&iface->regions_lock);
    return found;
}

static void mf_tl_tcp_conn_close(mf_tl_tcp_conn_t *conn)
{
    mf_debug("tcp: connection from %s closed", conn->peer);
    if (conn->worker != NULL) {
        /* as in mf_tl_tcp_lane_close(): a fork may hold the socket */
        (void)epoll_ctl(conn->worker->epfd, EPOLL_CTL_DEL, conn->sock.fd, NULL);
    }
    close(conn->sock.fd);
    mf_list_del(&conn->elem);
    free(conn);
}

static void mf_tl_tcp_conn_proto_error(mf_tl_tcp_conn_t *conn, const char *why)
{
    mf_tl_tcp_iface_t *iface = conn->worker->iface;

    if (!atomic_exchange(&iface->proto_warned, true)) {
        mf_warn("tcp: %s broke the protocol (%s); disconnected (later ones "
                "are logged at debug level)",
                conn->peer, why);
    } else {
        mf_debug("tcp: %s broke the protocol (%s); disconnected", conn->peer,
                 why);
    }
    mf_tl_tcp_conn_close(conn);
}

static void mf_tl_tcp_conn_respond(mf_tl_tcp_conn_t *conn, uint8_t code,
                                   mf_status_t status, const uint8_t *data,
                                   uint64_t len, mf_tl_tcp_region_t *region)
{
    mf_tl_tcp_resp_t *resp =
        &conn->ring[(conn->head + conn->count) % MF_TL_TCP_RING];
    mf_tl_tcp_hdr_t hdr;

    hdr.magic = MF_TL_TCP_MAGIC;
    hdr.version = MF_TL_TCP_VERSION;
    hdr.op = code;
    hdr.flags = 0;
    hdr.status = status;
    hdr.req_id = conn->in_req.req_id;
    hdr.key = 0;
    hdr.addr = conn->in_req.addr;
    hdr.len = len;
    mf_tl_tcp_hdr_encode(&hdr, resp->hdr);
    resp->data = data;
    resp->len = len;
    resp->region = region;
    conn->count++;
}

/* Returns false when the conn was closed. */
static bool mf_tl_tcp_conn_send(mf_tl_tcp_conn_t *conn)
{
    struct iovec iov[MF_TL_TCP_IOV_MAX];
    mf_tl_tcp_resp_t *resp;
    size_t skip, n, total, left;
    unsigned i;
    ssize_t ret;

    while (conn->count > 0) {
        n = 0;
        total = 0;
        skip = conn->sent_off;
        for (i = 0; i < conn->count && n + 2 <= MF_TL_TCP_IOV_MAX; i++) {
            resp = &conn->ring[(conn->head + i) % MF_TL_TCP_RING];
            if (skip < MF_TL_TCP_HDR_SIZE) {
                iov[n].iov_base = resp->hdr + skip;
                iov[n].iov_len = MF_TL_TCP_HDR_SIZE - skip;
                total += iov[n++].iov_len;
                skip = 0;
            } else {
                skip -= MF_TL_TCP_HDR_SIZE;
            }
            if (resp->len > 0) {
                iov[n].iov_base = (void *)(resp->data + skip);
                iov[n].iov_len = resp->len - skip;
                total += iov[n++].iov_len;
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
    }
    return true;
}

/* A whole request header is in conn->in_hdr.  Returns false when the
 * conn was closed. */
static bool mf_tl_tcp_conn_request(mf_tl_tcp_conn_t *conn)
{
    mf_tl_tcp_iface_t *iface = conn->worker->iface;
    mf_tl_tcp_hdr_t *req = &conn->in_req;
    mf_tl_tcp_region_t *region;
    mf_status_t status;
    const char *why;

    mf_tl_tcp_hdr_decode(conn->in_hdr, req);
    why = mf_tl_tcp_req_check(req);
    if (why != NULL) {
        mf_tl_tcp_conn_proto_error(conn, why);
        return false;
    }
    region =
        mf_tl_tcp_region_find(iface, req->key, req->addr, req->len, &status);
    if (status != MF_OK) {
        mf_debug("tcp: %s: %s of %" PRIu64 " bytes at 0x%" PRIx64
                 " refused: %s",
                 conn->peer, req->op == MF_TL_TCP_OP_PUT ? "put" : "get",
                 req->len, req->addr, mf_status_name(status));
    }
    if (req->op == MF_TL_TCP_OP_GET) {
        if (status == MF_OK) {
            mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_GET_DATA, MF_OK,
                                   (const uint8_t *)(uintptr_t)req->addr,
                                   req->len, region);
        } else {
            mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_GET_DATA, status, NULL, 0,
                                   NULL);
        }
        return true;
    }
    conn->in_status = status;
    conn->in_left = req->len;
    conn->in_region = region;
    conn->in_dst = (uint8_t *)(uintptr_t)req->addr;
    conn->in_state = status == MF_OK ? MF_TL_TCP_IN_DATA : MF_TL_TCP_IN_DISCARD;
    if (conn->in_left == 0) {
        conn->in_state = MF_TL_TCP_IN_HDR;
        conn->in_region = NULL;
        mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_PUT_ACK, status, NULL, 0,
                               NULL);
    }
    return true;
}

/* Returns false when the conn was closed. */
static bool mf_tl_tcp_conn_recv(mf_tl_tcp_conn_t *conn)
{
    uint8_t *scratch = conn->worker->scratch;
    ssize_t ret;

    while (conn->count < MF_TL_TCP_RING) {
        switch (conn->in_state) {
        case MF_TL_TCP_IN_HDR:
            ret = recv(conn->sock.fd, conn->in_hdr + conn->in_got,
                       MF_TL_TCP_HDR_SIZE - conn->in_got, 0);
            break;
        case MF_TL_TCP_IN_DATA:
            ret = recv(conn->sock.fd, conn->in_dst, conn->in_left, 0);
            break;
        default:
            ret = recv(conn->sock.fd, scratch,
                       MF_MIN(conn->in_left, MF_TL_TCP_SCRATCH), 0);
            break;
        }
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
        if (conn->in_state == MF_TL_TCP_IN_DATA) {
            conn->in_dst += ret;
        }
        conn->in_left -= (uint64_t)ret;
        if (conn->in_left == 0) {
            conn->in_state = MF_TL_TCP_IN_HDR;
            conn->in_region = NULL;
            mf_tl_tcp_conn_respond(conn, MF_TL_TCP_OP_PUT_ACK, conn->in_status,
                                   NULL, 0, NULL);
        }
    }
    return true;
}

static void mf_tl_tcp_conn_event(mf_tl_tcp_conn_t *conn, uint32_t events)
{
    bool blocked;

    /* input stops while the response ring is full (edge-triggered: the
     * data stays in the socket), so read again once sending made room */
    for (;;) {
        if (!mf_tl_tcp_conn_recv(conn)) {
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
    if (mf_tl_tcp_epoll_add(worker, &conn->sock,
                            EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
        mf_tl_tcp_conn_close(conn);
        return;
    }
    mf_tl_tcp_conn_event(conn, EPOLLIN);
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

static void mf_tl_tcp_accept(mf_tl_tcp_worker_t *worker)
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
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                mf_error("tcp: accept failed: %m");
            }
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
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
        mf_list_init(&conn->elem);
        mf_tl_tcp_addr_str(&peer, conn->peer, sizeof(conn->peer));
        mf_debug("tcp: connection from %s", conn->peer);
        owner = &iface->workers[atomic_fetch_add(&iface->next_worker, 1) %
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
        mf_tl_tcp_worker_post(owner, &ac->cmd);
    }
}

/* ========================================================= worker loop */

static void mf_tl_tcp_worker_commands(mf_tl_tcp_worker_t *worker)
{
    mf_tl_tcp_lane_t *lane;
    mf_tl_tcp_cmd_t *cmd;
    mf_list_t *elem;
    uint64_t value;

    pthread_mutex_lock(&worker->lock);
    if (worker->woken) {
        worker->woken = false;
        if (read(worker->ev.fd, &value, sizeof(value)) < 0 && errno != EAGAIN) {
            mf_error("tcp: read(eventfd) failed: %m");
        }
    }
    for (;;) {
        if ((elem = mf_list_pop_front(&worker->cmds)) != NULL) {
            cmd = mf_container_of(elem, mf_tl_tcp_cmd_t, elem);
            pthread_mutex_unlock(&worker->lock);
            if (cmd->sync) {
                cmd->fn(worker, cmd->arg);
                pthread_mutex_lock(&worker->lock);
                cmd->done = true;
                pthread_cond_broadcast(&worker->cond);
            } else {
                cmd->fn(worker, cmd->arg); /* may free cmd */
                pthread_mutex_lock(&worker->lock);
            }
            continue;
        }
        if ((elem = mf_list_pop_front(&worker->kicked)) != NULL) {
            lane = mf_container_of(elem, mf_tl_tcp_lane_t, kelem);
            lane->kicked = false;
            pthread_mutex_unlock(&worker->lock);
            mf_tl_tcp_lane_run(lane);
            pthread_mutex_lock(&worker->lock);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&worker->lock);
}

static void mf_tl_tcp_worker_timeouts(mf_tl_tcp_worker_t *worker)
{
    mf_tl_tcp_lane_t *lane;
    mf_list_t *elem, *next;
    uint64_t now = mf_time_ms();

    for (elem = worker->connecting.next; elem != &worker->connecting;
         elem = next) {
        next = elem->next;
        lane = mf_container_of(elem, mf_tl_tcp_lane_t, celem);
        if (now >= lane->connect_deadline) {
            mf_tl_tcp_lane_fail(lane, MF_ERR_UNREACHABLE, true,
                                "connect timed out");
        }
    }
}

static void *mf_tl_tcp_worker_main(void *arg)
{
    mf_tl_tcp_worker_t *worker = arg;
    struct epoll_event evs[MF_TL_TCP_EVENTS];
    mf_tl_tcp_sock_t *sock;
    bool stop;
    int n, i;

    for (;;) {
        n = epoll_wait(worker->epfd, evs, MF_TL_TCP_EVENTS,
                       mf_list_empty(&worker->connecting) ? -1 : 100);
        if (n < 0) {
            if (errno != EINTR) {
                mf_error("tcp: epoll_wait failed: %m");
            }
            n = 0;
        }
        for (i = 0; i < n; i++) {
            sock = evs[i].data.ptr;
            switch (sock->type) {
            case MF_TL_TCP_SOCK_LISTEN:
                mf_tl_tcp_accept(worker);
                break;
            case MF_TL_TCP_SOCK_LANE:
                mf_tl_tcp_lane_event((mf_tl_tcp_lane_t *)sock, evs[i].events);
                break;
            case MF_TL_TCP_SOCK_CONN:
                mf_tl_tcp_conn_event((mf_tl_tcp_conn_t *)sock, evs[i].events);
                break;
            default:
                break; /* the eventfd: handled below */
            }
        }
        mf_tl_tcp_worker_commands(worker);
        if (!mf_list_empty(&worker->connecting)) {
            mf_tl_tcp_worker_timeouts(worker);
        }
        pthread_mutex_lock(&worker->lock);
        stop = worker->stop && mf_list_empty(&worker->cmds);
        pthread_mutex_unlock(&worker->lock);
        if (stop) {
            break;
        }
    }
    return NULL;
}

static void mf_tl_tcp_worker_stop_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    pthread_mutex_lock(&worker->lock);
    worker->stop = true;
    pthread_mutex_unlock(&worker->lock);
}

static void mf_tl_tcp_worker_cleanup(mf_tl_tcp_worker_t *worker)
{
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&worker->conns)) != NULL) {
        mf_tl_tcp_conn_t *conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);

        mf_list_init(&conn->elem);
        mf_tl_tcp_conn_close(conn);
    }
    if (worker->ev.fd >= 0) {
        close(worker->ev.fd);
    }
    if (worker->epfd >= 0) {
        close(worker->epfd);
    }
    free(worker->scratch);
    pthread_cond_destroy(&worker->cond);
    pthread_mutex_destroy(&worker->lock);
}

static mf_status_t mf_tl_tcp_worker_init(mf_tl_tcp_iface_t *iface,
                                         mf_tl_tcp_worker_t *worker,
                                         unsigned index)
{
    worker->iface = iface;
    worker->index = index;
    worker->epfd = -1;
    worker->ev.type = MF_TL_TCP_SOCK_EVENT;
    worker->ev.fd = -1;
    pthread_mutex_init(&worker->lock, NULL);
    pthread_cond_init(&worker->cond, NULL);
    mf_list_init(&worker->cmds);
    mf_list_init(&worker->kicked);
    mf_list_init(&worker->conns);
    mf_list_init(&worker->connecting);
    worker->scratch = malloc(MF_TL_TCP_SCRATCH);
    if (worker->scratch == NULL) {
        mf_error("tcp: cannot allocate a worker buffer");
        return MF_ERR_NOMEM;
    }
    worker->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (worker->epfd < 0) {
        mf_error("tcp: epoll_create1 failed: %m");
        return MF_ERR_IO;
    }
    worker->ev.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (worker->ev.fd < 0) {
        mf_error("tcp: eventfd failed: %m");
        return MF_ERR_IO;
    }
    if (mf_tl_tcp_epoll_add(worker, &worker->ev, EPOLLIN) != 0) {
        return MF_ERR_IO;
    }
    return MF_OK;
}

/* ============================================================ interface */

static void mf_tl_tcp_iface_close(mf_tl_iface_t *tl_iface);

static mf_status_t mf_tl_tcp_listen(mf_tl_tcp_iface_t *iface,
                                    const mf_tl_params_t *params)
{
    const char *bind_host = params->tcp_addr;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char name[64];
    mf_status_t status;
    int one = 1;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(params->tcp_port);
    if (bind_host == NULL || bind_host[0] == '\0') {
        bind_host = "0.0.0.0";
    }
    status = mf_tl_tcp_resolve(bind_host, &sin.sin_addr);
    if (status != MF_OK) {
        return status;
    }
    iface->listen.type = MF_TL_TCP_SOCK_LISTEN;
    iface->listen.fd =
        socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (iface->listen.fd < 0) {
        mf_error("tcp: socket() failed: %m");
        return MF_ERR_IO;
    }
    (void)setsockopt(iface->listen.fd, SOL_SOCKET, SO_REUSEADDR, &one,
                     sizeof(one));
    mf_tl_tcp_addr_str(&sin, name, sizeof(name));
    if (bind(iface->listen.fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        mf_error("tcp: bind(%s) failed: %m", name);
        return errno == EADDRINUSE ? MF_ERR_ADDR_IN_USE : MF_ERR_IO;
    }
    if (listen(iface->listen.fd, 512) != 0 ||
        getsockname(iface->listen.fd, (struct sockaddr *)&sin, &len) != 0) {
        mf_error("tcp: listen(%s) failed: %m", name);
        return MF_ERR_IO;
    }
    iface->adv = sin;
    if (sin.sin_addr.s_addr == htonl(INADDR_ANY)) {
        /* advertise the address peers route to: towards the store host */
        if (params->tcp_route_host != NULL &&
            params->tcp_route_host[0] != '\0') {
            status = mf_tl_tcp_route_to(params->tcp_route_host,
                                        &iface->adv.sin_addr);
            if (status != MF_OK) {
                return status;
            }
        } else {
            iface->adv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    }
    mf_tl_tcp_addr_str(&iface->adv, name, sizeof(name));
    mf_debug("tcp: listening, advertised as %s", name);
    return MF_OK;
}

static mf_status_t mf_tl_tcp_iface_open(const mf_tl_params_t *params,
                                        mf_tl_iface_t **iface_p)
{
    sigset_t all, saved;
    mf_tl_tcp_iface_t *iface;
    mf_status_t status;
    unsigned i;
    int ret;

    if (params->tcp_lanes > MF_TL_TCP_MAX_LANES ||
        (params->tcp_chunk_size != 0 &&
         (params->tcp_chunk_size < MF_TL_TCP_CHUNK_MIN ||
          params->tcp_chunk_size > MF_TL_TCP_CHUNK_MAX))) {
        mf_error("tcp: %u lanes (at most %u), chunk of %" PRIu64
                 " bytes (%u..%u)",
                 params->tcp_lanes, MF_TL_TCP_MAX_LANES, params->tcp_chunk_size,
                 MF_TL_TCP_CHUNK_MIN, MF_TL_TCP_CHUNK_MAX);
        return MF_ERR_INVALID;
    }
    iface = calloc(1, sizeof(*iface));
    if (iface == NULL) {
        mf_error("tcp: cannot allocate the interface");
        return MF_ERR_NOMEM;
    }
    iface->super.ops = &mf_tl_tcp_ops;
    iface->listen.fd = -1;
    iface->lanes =
        params->tcp_lanes != 0 ? params->tcp_lanes : MF_TL_TCP_DEFAULT_LANES;
    iface->chunk = params->tcp_chunk_size != 0 ? params->tcp_chunk_size
                                               : MF_TL_TCP_DEFAULT_CHUNK;
    iface->window = iface->chunk * MF_TL_TCP_WINDOW_CHUNKS;
    iface->timeout_ms = params->tcp_timeout_ms != 0 ? params->tcp_timeout_ms
                                                    : MF_TL_TCP_USER_TIMEOUT;
    pthread_mutex_init(&iface->regions_lock, NULL);
    mf_list_init(&iface->regions);
    atomic_init(&iface->next_worker, 0);
    atomic_init(&iface->proto_warned, false);

    status = mf_tl_tcp_listen(iface, params);
    if (status != MF_OK) {
        goto err_close;
    }
    iface->workers = calloc(iface->lanes, sizeof(*iface->workers));
    if (iface->workers == NULL) {
        mf_error("tcp: cannot allocate %u workers", iface->lanes);
        status = MF_ERR_NOMEM;
        goto err_close;
    }
    for (i = 0; i < iface->lanes; i++) {
        iface->nworkers++;
        status = mf_tl_tcp_worker_init(iface, &iface->workers[i], i);
        if (status != MF_OK) {
            goto err_close;
        }
    }
    if (mf_tl_tcp_epoll_add(&iface->workers[0], &iface->listen, EPOLLIN) != 0) {
        status = MF_ERR_IO;
        goto err_close;
    }
    /* workers take no signals: they belong to the application's threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    for (i = 0; i < iface->nworkers; i++) {
        ret = pthread_create(&iface->workers[i].thread, NULL,
                             mf_tl_tcp_worker_main, &iface->workers[i]);
        if (ret == 0) {
            iface->workers[i].started = true;
            pthread_setname_np(iface->workers[i].thread, "mf-tcp");
        }
        if (ret != 0) {
            pthread_sigmask(SIG_SETMASK, &saved, NULL);
            errno = ret;
            mf_error("tcp: pthread_create failed: %m");
            status = MF_ERR_NOMEM;
            goto err_close;
        }
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    *iface_p = &iface->super;
    return MF_OK;

err_close:
    mf_tl_tcp_iface_close(&iface->super);
    return status;
}

static void mf_tl_tcp_iface_close(mf_tl_iface_t *tl_iface)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_worker_t *worker;
    mf_tl_tcp_region_t *region;
    mf_list_t *elem;
    unsigned i;

    for (i = 0; i < iface->nworkers; i++) {
        worker = &iface->workers[i];
        if (worker->started) {
            mf_tl_tcp_worker_run(worker, mf_tl_tcp_worker_stop_cmd, NULL);
            pthread_join(worker->thread, NULL);
            worker->started = false;
        }
    }
    for (i = 0; i < iface->nworkers; i++) {
        mf_tl_tcp_worker_cleanup(&iface->workers[i]);
    }
    free(iface->workers);
    if (iface->listen.fd >= 0) {
        close(iface->listen.fd);
    }
    while ((elem = mf_list_pop_front(&iface->regions)) != NULL) {
        region = mf_container_of(elem, mf_tl_tcp_region_t, elem);
        region->exported = false; /* its memh is still the owner's */
    }
    pthread_mutex_destroy(&iface->regions_lock);
    free(iface);
}

static void mf_tl_tcp_iface_query(mf_tl_iface_t *iface, mf_tl_caps_t *caps_p)
{
    caps_p->flags = MF_TL_CAP_PUT | MF_TL_CAP_GET;
    caps_p->addr_max = 64;
    caps_p->rkey_max = 64;
}

static mf_status_t mf_tl_tcp_iface_addr_pack(mf_tl_iface_t *tl_iface, void *buf,
                                             size_t buf_len, size_t *len_p)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_TCP_ADDR_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_TCP_ADDR_VERSION);
    mf_wbuf_put_u8(&w, 4); /* IPv4 */
    mf_wbuf_put_u16(&w, ntohs(iface->adv.sin_port));
    mf_wbuf_put_raw(&w, &iface->adv.sin_addr.s_addr, 4);
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

static mf_status_t mf_tl_tcp_addr_unpack(const void *buf, size_t len,
                                         struct sockaddr_in *sin)
{
    uint32_t magic;
    uint8_t version, family;
    uint16_t port;
    const void *ip;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u8(&r, &family);
    mf_rbuf_get_u16(&r, &port);
    mf_rbuf_get_raw(&r, &ip, 4);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_TCP_ADDR_MAGIC ||
        version != MF_TL_TCP_ADDR_VERSION || family != 4 || port == 0) {
        return MF_ERR_PROTO;
    }
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr.s_addr, ip, 4);
    return MF_OK;
}

static bool mf_tl_tcp_iface_is_reachable(mf_tl_iface_t *iface, const void *addr,
                                         size_t len)
{
    struct sockaddr_in sin;

    return mf_tl_tcp_addr_unpack(addr, len, &sin) == MF_OK;
}

/* =============================================================== memory */

static uint64_t mf_tl_tcp_new_key(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t key;

    if (getrandom(&key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
        key = mf_time_ns() ^ ((uint64_t)getpid() << 40);
    }
    return key ^ atomic_fetch_add(&counter, 0x9e3779b97f4a7c15ull);
}

static mf_status_t mf_tl_tcp_mem_reg(mf_tl_iface_t *tl_iface,
                                     const mf_tl_mem_params_t *params,
                                     mf_tl_memh_t **memh_p)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_region_t *region;

    region = calloc(1, sizeof(*region));
    if (region == NULL) {
        mf_error("tcp: cannot allocate a memory handle");
        return MF_ERR_NOMEM;
    }
    region->super.ops = &mf_tl_tcp_ops;
    region->super.addr = params->addr;
    region->super.size = params->size;
    region->key = mf_tl_tcp_new_key();
    mf_list_init(&region->elem);
    /* only segments are served to peers; user memory stays private */
    if (params->seg != NULL) {
        region->exported = true;
        pthread_mutex_lock(&iface->regions_lock);
        mf_list_push_back(&iface->regions, &region->elem);
        pthread_mutex_unlock(&iface->regions_lock);
    }
    *memh_p = &region->super;
    return MF_OK;
}

static void mf_tl_tcp_purge_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_region_t *region = arg;
    mf_tl_tcp_conn_t *conn;
    mf_list_t *elem, *next;
    bool uses;
    unsigned i;

    for (elem = worker->conns.next; elem != &worker->conns; elem = next) {
        next = elem->next;
        conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);
        uses = conn->in_region == region;
        for (i = 0; i < conn->count && !uses; i++) {
            uses =
                conn->ring[(conn->head + i) % MF_TL_TCP_RING].region == region;
        }
        if (uses) {
            mf_debug("tcp: dropping %s: its segment goes away", conn->peer);
            mf_tl_tcp_conn_close(conn);
        }
    }
}

static void mf_tl_tcp_mem_dereg(mf_tl_iface_t *tl_iface, mf_tl_memh_t *memh)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_region_t *region = (mf_tl_tcp_region_t *)memh;
    unsigned i;

    if (region->exported) {
        pthread_mutex_lock(&iface->regions_lock);
        mf_list_del(&region->elem);
        pthread_mutex_unlock(&iface->regions_lock);
        for (i = 0; i < iface->nworkers; i++) {
            mf_tl_tcp_worker_run(&iface->workers[i], mf_tl_tcp_purge_cmd,
                                 region);
        }
    }
    free(region);
}

static mf_status_t mf_tl_tcp_rkey_pack(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                                       void *buf, size_t buf_len, size_t *len_p)
{
    mf_tl_tcp_region_t *region = (mf_tl_tcp_region_t *)memh;
    mf_wbuf_t w;

    if (!region->exported) {
        return MF_ERR_UNSUPPORTED;
    }
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_TCP_RKEY_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_TCP_RKEY_VERSION);
    mf_wbuf_put_u64(&w, region->key);
    mf_wbuf_put_u64(&w, (uint64_t)(uintptr_t)memh->addr);
    mf_wbuf_put_u64(&w, memh->size);
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

static mf_status_t mf_tl_tcp_rkey_unpack(mf_tl_iface_t *iface, const void *buf,
                                         size_t len, uint64_t gva,
                                         uint64_t size, mf_tl_rkey_t **rkey_p)
{
    uint64_t key, key_gva, key_size;
    mf_tl_tcp_rkey_t *rkey;
    uint32_t magic;
    uint8_t version;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u64(&r, &key);
    mf_rbuf_get_u64(&r, &key_gva);
    mf_rbuf_get_u64(&r, &key_size);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_TCP_RKEY_MAGIC) {
        mf_error("tcp: malformed remote key (%zu bytes)", len);
        return MF_ERR_PROTO;
    }
    if (version != MF_TL_TCP_RKEY_VERSION) {
        mf_error("tcp: remote key version %u, expected %u", version,
                 MF_TL_TCP_RKEY_VERSION);
        return MF_ERR_VERSION;
    }
    if (key_gva != gva || key_size != size) {
        mf_error("tcp: remote key claims 0x%" PRIx64 "+0x%" PRIx64
                 ", expected 0x%" PRIx64 "+0x%" PRIx64,
                 key_gva, key_size, gva, size);
        return MF_ERR_PROTO;
    }
    rkey = calloc(1, sizeof(*rkey));
    if (rkey == NULL) {
        mf_error("tcp: cannot allocate a remote key");
        return MF_ERR_NOMEM;
    }
    rkey->super.ops = &mf_tl_tcp_ops;
    rkey->super.gva = gva;
    rkey->super.size = size;
    rkey->super.addr = NULL;
    rkey->key = key;
    *rkey_p = &rkey->super;
    return MF_OK;
}

static void mf_tl_tcp_rkey_release(mf_tl_iface_t *iface, mf_tl_rkey_t *rkey)
{
    free(rkey);
}

/* ============================================================ endpoints */

static void mf_tl_tcp_ep_destroy(mf_tl_ep_t *tl_ep);

static mf_status_t mf_tl_tcp_ep_create(mf_tl_iface_t *tl_iface,
                                       const void *addr, size_t len,
                                       mf_tl_ep_t **ep_p)
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
    if (mf_tl_tcp_addr_unpack(addr, len, &ep->addr) != MF_OK) {
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
    mf_tl_tcp_lane_close(lane, MF_ERR_CANCELED, false);
}

static void mf_tl_tcp_ep_destroy(mf_tl_ep_t *tl_ep)
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
    if (mf_unlikely(raddr < tl_rkey->gva || size > tl_rkey->size ||
                    raddr - tl_rkey->gva > tl_rkey->size - size)) {
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
    op->buf = buf;
    op->raddr = raddr;
    op->size = size;
    op->key = rkey->key;
    op->next_off = 0;
    op->inflight = 0;
    op->status = MF_OK;
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

static mf_status_t mf_tl_tcp_put(mf_tl_ep_t *ep, const void *buf,
                                 uint64_t raddr, size_t size,
                                 mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return mf_tl_tcp_post(ep, MF_TL_TCP_OP_PUT, (void *)buf, raddr, size, rkey,
                          comp);
}

static mf_status_t mf_tl_tcp_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                                 size_t size, mf_tl_rkey_t *rkey,
                                 mf_tl_comp_t *comp)
{
    return mf_tl_tcp_post(ep, MF_TL_TCP_OP_GET, buf, raddr, size, rkey, comp);
}

static mf_status_t mf_tl_tcp_flush(mf_tl_ep_t *tl_ep, mf_tl_comp_t *comp)
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

static unsigned mf_tl_tcp_progress(mf_tl_iface_t *iface)
{
    return 0; /* the workers drive everything */
}

/* ================================================================ tests */

uint16_t mf_tl_tcp_iface_port(mf_tl_iface_t *iface)
{
    return ntohs(((mf_tl_tcp_iface_t *)iface)->adv.sin_port);
}

uint64_t mf_tl_tcp_memh_key(mf_tl_memh_t *memh)
{
    return ((mf_tl_tcp_region_t *)memh)->key;
}

typedef struct mf_tl_tcp_drop_arg {
    unsigned count;
} mf_tl_tcp_drop_arg_t;

static void mf_tl_tcp_drop_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_drop_arg_t *drop = arg;
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&worker->conns)) != NULL) {
        mf_tl_tcp_conn_t *conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);

        mf_list_init(&conn->elem);
        mf_tl_tcp_conn_close(conn);
        drop->count++;
    }
}

unsigned mf_tl_tcp_iface_drop_conns(mf_tl_iface_t *tl_iface)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_drop_arg_t drop = {0};
    unsigned i;

    for (i = 0; i < iface->nworkers; i++) {
        mf_tl_tcp_worker_run(&iface->workers[i], mf_tl_tcp_drop_cmd, &drop);
    }
    return drop.count;
}

const mf_tl_ops_t mf_tl_tcp_ops = {
    .name = "tcp",
    .iface_open = mf_tl_tcp_iface_open,
    .iface_close = mf_tl_tcp_iface_close,
    .iface_query = mf_tl_tcp_iface_query,
    .iface_addr_pack = mf_tl_tcp_iface_addr_pack,
    .iface_is_reachable = mf_tl_tcp_iface_is_reachable,
    .mem_reg = mf_tl_tcp_mem_reg,
    .mem_dereg = mf_tl_tcp_mem_dereg,
    .rkey_pack = mf_tl_tcp_rkey_pack,
    .rkey_unpack = mf_tl_tcp_rkey_unpack,
    .rkey_release = mf_tl_tcp_rkey_release,
    .ep_create = mf_tl_tcp_ep_create,
    .ep_destroy = mf_tl_tcp_ep_destroy,
    .put = mf_tl_tcp_put,
    .get = mf_tl_tcp_get,
    .flush = mf_tl_tcp_flush,
    .progress = mf_tl_tcp_progress,
};
