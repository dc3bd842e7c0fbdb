/*
 * Raw TCP baselines of the benchmarks (see bench_tcp.h): the connection
 * set-up they share, the transfer (mf-bench, mmc-bench), the ping-pong
 * (mmc-bench) and the stream (tcp-rma-bench).
 *
 * Invariants: a transfer moves at most BENCH_TCP_IO bytes per send()/recv()
 * call, as the tcp transport's lanes do; a stream moves what its caller
 * says.  Each connection's share of a transfer is [total * i / n,
 * total * (i + 1) / n), so the shares cover the bytes exactly once.
 */
#include "bench_tcp.h"

#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef BENCH_TCP_IO
#define BENCH_TCP_IO (1024 * 1024) /* bytes per send()/recv() call at most */
#endif

/* What the client sends before each share of a transfer. */
typedef struct bench_tcp_hdr {
    uint32_t op;
    uint32_t pad;
    uint64_t off;
    uint64_t len;
} bench_tcp_hdr_t;

/* ------------------------------------------------------------------- I/O */

/* Sends (out) or receives len bytes, at most io_max (0: no limit) per
 * call, retrying after signals; -1 on an error or the end of the stream. */
static int bench_tcp_io_all(int fd, bool out, void *buf, size_t len,
                            size_t io_max, int flags)
{
    char *p = buf;
    size_t n;
    ssize_t ret;

    while (len > 0) {
        n = io_max != 0 && len > io_max ? io_max : len;
        ret =
            out ? send(fd, p, n, flags | MSG_NOSIGNAL) : recv(fd, p, n, flags);
        if (ret < 0 && errno == EINTR) {
            continue;
        }
        if (ret <= 0) {
            return -1;
        }
        p += ret;
        len -= (size_t)ret;
    }
    return 0;
}

/* A transfer's sends and receives. */
static int bench_tcp_send_all(int fd, const void *buf, size_t len)
{
    return bench_tcp_io_all(fd, true, (void *)buf, len, BENCH_TCP_IO, 0);
}

static int bench_tcp_recv_all(int fd, void *buf, size_t len)
{
    return bench_tcp_io_all(fd, false, buf, len, BENCH_TCP_IO, 0);
}

static void bench_tcp_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A listener on addr, an ephemeral port; where gets "address port". */
static int bench_tcp_listen(const char *addr, int *fd_p, char *where,
                            size_t len)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        bench_err("bad address %s", addr);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bench_err("socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, BENCH_TCP_MAX_CONNS) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
        bench_err("baseline listener on %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    snprintf(where, len, "%s %u", addr, (unsigned)ntohs(sa.sin_port));
    *fd_p = fd;
    return 0;
}

/* A connection, TCP_NODELAY, to the listener at where ("address port"). */
static int bench_tcp_connect(const char *where, int *fd_p)
{
    struct sockaddr_in sa;
    char addr[64];
    unsigned port;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (sscanf(where, "%63s %u", addr, &port) != 2 || port == 0 ||
        port > 65535 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        bench_err("bad baseline address '%s'", where);
        return -1;
    }
    sa.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        bench_err("baseline connection to %s: %s", where, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    bench_tcp_nodelay(fd);
    *fd_p = fd;
    return 0;
}

/* ------------------------------------------------------ transfer: server */

static void *bench_tcp_server_conn(void *arg)
{
    bench_tcp_conn_t *conn = arg;
    bench_tcp_server_t *srv = conn->srv;
    bench_tcp_hdr_t hdr;
    char ack = 'k';

    while (bench_tcp_recv_all(conn->fd, &hdr, sizeof(hdr)) == 0) {
        if (hdr.off > srv->size || hdr.len > srv->size - hdr.off) {
            break;
        }
        if (hdr.op == BENCH_TCP_WRITE) {
            if (bench_tcp_recv_all(conn->fd, srv->buf + hdr.off, hdr.len) !=
                    0 ||
                bench_tcp_send_all(conn->fd, &ack, 1) != 0) {
                break;
            }
        } else if (hdr.op == BENCH_TCP_READ ||
                   (hdr.op == BENCH_TCP_PING &&
                    hdr.len <= BENCH_TCP_MAX_PING)) {
            if (bench_tcp_send_all(conn->fd, srv->buf + hdr.off, hdr.len) !=
                0) {
                break;
            }
        } else {
            break;
        }
    }
    return NULL;
}

static void *bench_tcp_server_accept(void *arg)
{
    bench_tcp_server_t *srv = arg;
    struct pollfd pfd = {srv->lfd, POLLIN, 0};
    bench_tcp_conn_t *conn;
    int fd;

    while (!__atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE)) {
        if (poll(&pfd, 1, 100) != 1) {
            continue;
        }
        fd = accept(srv->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        if (srv->nconns == BENCH_TCP_MAX_SERVED) {
            close(fd);
            continue;
        }
        bench_tcp_nodelay(fd);
        conn = &srv->conns[srv->nconns];
        conn->srv = srv;
        conn->fd = fd;
        if (pthread_create(&conn->tid, NULL, bench_tcp_server_conn, conn) !=
            0) {
            close(fd);
            continue;
        }
        srv->nconns++;
    }
    return NULL;
}

int bench_tcp_server_start(bench_tcp_server_t *srv, const char *addr,
                           uint8_t *buf, uint64_t size, char *where, size_t len)
{
    memset(srv, 0, sizeof(*srv));
    srv->buf = buf;
    srv->size = size;
    if (bench_tcp_listen(addr, &srv->lfd, where, len) != 0) {
        return -1;
    }
    if (pthread_create(&srv->accept_tid, NULL, bench_tcp_server_accept, srv) !=
        0) {
        bench_err("pthread_create failed");
        close(srv->lfd);
        return -1;
    }
    srv->accepting = true;
    return 0;
}

void bench_tcp_server_stop(bench_tcp_server_t *srv)
{
    unsigned i;

    if (!srv->accepting) {
        return;
    }
    __atomic_store_n(&srv->stop, true, __ATOMIC_RELEASE);
    pthread_join(srv->accept_tid, NULL);
    for (i = 0; i < srv->nconns; i++) {
        shutdown(srv->conns[i].fd, SHUT_RDWR);
    }
    for (i = 0; i < srv->nconns; i++) {
        pthread_join(srv->conns[i].tid, NULL);
        close(srv->conns[i].fd);
    }
    close(srv->lfd);
    srv->accepting = false;
}

/* ------------------------------------------------------ transfer: client */

/* Connection i's share of the current transfer. */
static int bench_tcp_client_share(bench_tcp_client_t *cli, unsigned i)
{
    bench_tcp_hdr_t hdr;
    char ack;

    memset(&hdr, 0, sizeof(hdr));
    const uint64_t off = cli->total * i / cli->n;

    memset(&hdr, 0, sizeof(hdr));
    hdr.op = cli->op;
    hdr.off = cli->remote + off;
    hdr.len = cli->total * (i + 1) / cli->n - off;
    if (bench_tcp_send_all(cli->fds[i], &hdr, sizeof(hdr)) != 0) {
        return -1;
    }
    if (cli->op == BENCH_TCP_WRITE) {
        if (bench_tcp_send_all(cli->fds[i], cli->local + off, hdr.len) != 0 ||
            bench_tcp_recv_all(cli->fds[i], &ack, 1) != 0) {
            return -1;
        }
        return 0;
    }
    return bench_tcp_recv_all(cli->fds[i], cli->local + off, hdr.len);
}

static void *bench_tcp_client_lane(void *arg)
{
    bench_tcp_lane_t *lane = arg;
    bench_tcp_client_t *cli = lane->cli;
    unsigned seen = 0;
    int ret;

    pthread_mutex_lock(&cli->lock);
    for (;;) {
        while (cli->gen == seen && !cli->quit) {
            pthread_cond_wait(&cli->cond, &cli->lock);
        }
        if (cli->quit) {
            break;
        }
        seen = cli->gen;
        pthread_mutex_unlock(&cli->lock);
        ret = bench_tcp_client_share(cli, lane->index);
        pthread_mutex_lock(&cli->lock);
        if (ret != 0) {
            cli->failed = 1;
        }
        cli->finished++;
        pthread_cond_signal(&cli->done);
    }
    pthread_mutex_unlock(&cli->lock);
    return NULL;
}

void bench_tcp_client_fini(bench_tcp_client_t *cli)
{
    unsigned i;

    pthread_mutex_lock(&cli->lock);
    cli->quit = true;
    pthread_cond_broadcast(&cli->cond);
    pthread_mutex_unlock(&cli->lock);
    for (i = 1; i < cli->nthreads; i++) {
        pthread_join(cli->lanes[i].tid, NULL);
    }
    for (i = 0; i < cli->n; i++) {
        if (cli->fds[i] >= 0) {
            close(cli->fds[i]);
        }
    }
    pthread_cond_destroy(&cli->done);
    pthread_cond_destroy(&cli->cond);
    pthread_mutex_destroy(&cli->lock);
    cli->n = 0;
}

int bench_tcp_client_init(bench_tcp_client_t *cli, unsigned n,
                          const char *where)
{
    unsigned i;

    memset(cli, 0, sizeof(*cli));
    pthread_mutex_init(&cli->lock, NULL);
    pthread_cond_init(&cli->cond, NULL);
    pthread_cond_init(&cli->done, NULL);
    cli->nthreads = 1;
    cli->n = n;
    for (i = 0; i < n; i++) {
        cli->fds[i] = -1;
    }
    for (i = 0; i < n; i++) {
        if (bench_tcp_connect(where, &cli->fds[i]) != 0) {
            return -1;
        }
    }
    for (i = 1; i < n; i++) {
        cli->lanes[i].cli = cli;
        cli->lanes[i].index = i;
        if (pthread_create(&cli->lanes[i].tid, NULL, bench_tcp_client_lane,
                           &cli->lanes[i]) != 0) {
            bench_err("pthread_create failed");
            return -1;
        }
        cli->nthreads = i + 1;
    }
    return 0;
}

int bench_tcp_client_run(bench_tcp_client_t *cli, uint32_t op, uint8_t *local,
                         uint64_t total)
{
    return bench_tcp_client_run_at(cli, op, local, 0, total);
}

int bench_tcp_client_run_at(bench_tcp_client_t *cli, uint32_t op,
                            uint8_t *local, uint64_t remote, uint64_t total)
{
    int ret;

    pthread_mutex_lock(&cli->lock);
    cli->op = op;
    cli->local = local;
    cli->remote = remote;
    cli->total = total;
    cli->finished = 0;
    cli->failed = 0;
    cli->gen++;
    pthread_cond_broadcast(&cli->cond);
    pthread_mutex_unlock(&cli->lock);
    ret = bench_tcp_client_share(cli, 0);
    pthread_mutex_lock(&cli->lock);
    while (cli->finished < cli->n - 1) {
        pthread_cond_wait(&cli->done, &cli->lock);
    }
    if (cli->failed) {
        ret = -1;
    }
    pthread_mutex_unlock(&cli->lock);
    if (ret != 0) {
        bench_err("raw TCP baseline transfer failed");
    }
    return ret;
}

/* ------------------------------------------------------------- ping-pong */

int bench_tcp_ping_open(const char *where)
{
    int fd;

    return bench_tcp_connect(where, &fd) == 0 ? fd : -1;
}

int bench_tcp_ping(int fd, uint32_t reply)
{
    uint8_t buf[BENCH_TCP_MAX_PING];
    bench_tcp_hdr_t hdr;

    memset(&hdr, 0, sizeof(hdr));
    hdr.op = BENCH_TCP_PING;
    hdr.len = reply;
    if (reply > sizeof(buf) || bench_tcp_send_all(fd, &hdr, sizeof(hdr)) != 0 ||
        bench_tcp_recv_all(fd, buf, reply) != 0) {
        bench_err("raw TCP ping-pong failed");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- stream */

/* One end of one stream connection. */
typedef struct bench_tcp_stream {
    int fd;
    uint8_t *buf;
    size_t piece;
    uint64_t total;
    size_t io_max;
    pthread_t tid;
    bool failed;
} bench_tcp_stream_t;

/* Sends total bytes, each call from the start of one piece. */
static void *bench_tcp_stream_send(void *arg)
{
    bench_tcp_stream_t *s = arg;
    uint64_t left = s->total;

    while (left > 0) {
        size_t n = (size_t)(left < s->piece ? left : s->piece);
        ssize_t ret;

        if (s->io_max != 0 && n > s->io_max) {
            n = s->io_max;
        }
        ret = send(s->fd, s->buf, n, MSG_NOSIGNAL);
        if (ret <= 0) {
            bench_err("stream send: %s", strerror(errno));
            s->failed = true;
            shutdown(s->fd, SHUT_RDWR); /* the receiver sees the end */
            break;
        }
        left -= (uint64_t)ret;
    }
    return NULL;
}

/* Receives total bytes into one piece, round and round. */
static void *bench_tcp_stream_recv(void *arg)
{
    bench_tcp_stream_t *s = arg;
    uint64_t left = s->total, off = 0;

    while (left > 0) {
        size_t n = s->piece - off;

        if (n > left) {
            n = (size_t)left;
        }
        if (bench_tcp_io_all(s->fd, false, s->buf + off, n, s->io_max,
                             MSG_WAITALL) != 0) {
            bench_err("stream connection broken while receiving");
            s->failed = true;
            shutdown(s->fd, SHUT_RDWR);
            break;
        }
        left -= n;
        off = (off + n) % s->piece;
    }
    return NULL;
}

static void bench_tcp_stream_close(bench_tcp_stream_t *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    free(s->buf);
}

double bench_tcp_stream_run(unsigned lanes, size_t size, uint64_t iters,
                            size_t io_max)
{
    bench_tcp_stream_t snd[BENCH_TCP_MAX_CONNS], rcv[BENCH_TCP_MAX_CONNS];
    const size_t piece = size / lanes;
    unsigned i, nopen = 0, nstarted = 0;
    char where[96];
    uint64_t t0, t1;
    double ret = -1;
    int lfd;

    if (bench_tcp_listen("127.0.0.1", &lfd, where, sizeof(where)) != 0) {
        return -1;
    }
    for (i = 0; i < lanes; i++) {
        bench_tcp_stream_t *s = &snd[i], *r = &rcv[i];

        memset(s, 0, sizeof(*s));
        memset(r, 0, sizeof(*r));
        s->fd = r->fd = -1;
        nopen = i + 1;
        if (bench_tcp_connect(where, &s->fd) != 0) {
            goto out;
        }
        r->fd = accept(lfd, NULL, NULL);
        if (r->fd < 0) {
            bench_err("accept: %s", strerror(errno));
            goto out;
        }
        s->piece = r->piece = piece;
        s->total = r->total = iters * piece;
        s->io_max = r->io_max = io_max;
        s->buf = malloc(piece);
        r->buf = malloc(piece);
        if (s->buf == NULL || r->buf == NULL) {
            bench_err("out of memory");
            goto out;
        }
        memset(s->buf, 1, piece);
        memset(r->buf, 0, piece);
    }
    t0 = bench_now_ns();
    for (i = 0; i < lanes; i++) {
        if (pthread_create(&rcv[i].tid, NULL, bench_tcp_stream_recv, &rcv[i]) !=
            0) {
            bench_err("pthread_create failed");
            break;
        }
        if (pthread_create(&snd[i].tid, NULL, bench_tcp_stream_send, &snd[i]) !=
            0) {
            bench_err("pthread_create failed");
            shutdown(snd[i].fd, SHUT_RDWR); /* its receiver sees the end */
            pthread_join(rcv[i].tid, NULL);
            break;
        }
        nstarted = i + 1;
    }
    for (i = 0; i < nstarted; i++) {
        pthread_join(snd[i].tid, NULL);
        pthread_join(rcv[i].tid, NULL);
    }
    t1 = bench_now_ns();
    if (nstarted == lanes) {
        ret = (double)(iters * piece * lanes) / (double)(t1 - t0);
        for (i = 0; i < lanes; i++) {
            if (snd[i].failed || rcv[i].failed) {
                ret = -1;
            }
        }
    }
out:
    for (i = 0; i < nopen; i++) {
        bench_tcp_stream_close(&snd[i]);
        bench_tcp_stream_close(&rcv[i]);
    }
    close(lfd);
    return ret;
}
