/*
 * tcp transport against a raw TCP stream, over loopback or a link.
 *
 * Baseline: `lanes` plain TCP connections, each with a sender thread and a
 * receiver thread (blocking send, recv with MSG_WAITALL), stream
 * size/lanes bytes per iteration with no framing and no per-iteration
 * synchronization: the best a TCP stream does.
 * Transport: two interfaces in this process (server with a registered
 * segment, client with an endpoint), `lanes` lanes each; iterations of
 * one put (or get) of size bytes, each waited for before the next, as a
 * synchronous mf_bm_copy does.  Prints GB/s and the ratio.
 *
 * Built by CMake as bench/tcp-rma-bench.
 * Run: ./build/bench/tcp-rma-bench [seconds per run] [runs, best kept]
 *      [bytes per raw send/recv call, 0: whole pieces]
 */
#include "tl/tcp/tcp.h"
#include "tl/tl.h"
#include "util/misc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static double bench_secs = 2.0;
/* bytes per send/recv call of the raw stream (0: a whole piece) */
static size_t raw_io;

/* ------------------------------------------------------------ raw TCP */

typedef struct raw_side {
    int fd;
    uint8_t *buf;
    size_t piece;
    uint64_t total;
} raw_side_t;

static void *raw_send_main(void *arg)
{
    raw_side_t *s = arg;
    uint64_t left = s->total;

    while (left > 0) {
        size_t n = (size_t)(left < s->piece ? left : s->piece);
        ssize_t ret;

        if (raw_io != 0 && n > raw_io) {
            n = raw_io;
        }
        ret = send(s->fd, s->buf, n, 0);

        if (ret <= 0) {
            perror("send");
            exit(1);
        }
        left -= (uint64_t)ret;
    }
    return NULL;
}

static void *raw_recv_main(void *arg)
{
    raw_side_t *s = arg;
    uint64_t left = s->total, off = 0;

    while (left > 0) {
        size_t n = s->piece - off;
        ssize_t ret;

        if (n > left) {
            n = (size_t)left;
        }
        if (raw_io != 0 && n > raw_io) {
            n = raw_io;
        }
        ret = recv(s->fd, s->buf + off, n, MSG_WAITALL);
        if (ret <= 0) {
            perror("recv");
            exit(1);
        }
        left -= (uint64_t)ret;
        off = (off + (uint64_t)ret) % s->piece;
    }
    return NULL;
}

static double raw_run(unsigned lanes, size_t size, uint64_t iters)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    raw_side_t snd[16], rcv[16];
    pthread_t st[16], rt[16];
    int lfd, one = 1;
    uint64_t t0, t1;

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
        perror("listen");
        exit(1);
    }
    for (unsigned i = 0; i < lanes; i++) {
        snd[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(snd[i].fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
            perror("connect");
            exit(1);
        }
        setsockopt(snd[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rcv[i].fd = accept(lfd, NULL, NULL);
        snd[i].piece = rcv[i].piece = size / lanes;
        snd[i].total = rcv[i].total = iters * (size / lanes);
        snd[i].buf = malloc(size / lanes);
        rcv[i].buf = malloc(size / lanes);
        memset(snd[i].buf, 1, size / lanes);
        memset(rcv[i].buf, 0, size / lanes);
    }
    t0 = mf_time_ns();
    for (unsigned i = 0; i < lanes; i++) {
        pthread_create(&rt[i], NULL, raw_recv_main, &rcv[i]);
        pthread_create(&st[i], NULL, raw_send_main, &snd[i]);
    }
    for (unsigned i = 0; i < lanes; i++) {
        pthread_join(st[i], NULL);
        pthread_join(rt[i], NULL);
    }
    t1 = mf_time_ns();
    for (unsigned i = 0; i < lanes; i++) {
        close(snd[i].fd);
        close(rcv[i].fd);
        free(snd[i].buf);
        free(rcv[i].buf);
    }
    close(lfd);
    return (double)(iters * (size / lanes) * lanes) / (double)(t1 - t0);
}

/* ------------------------------------------------------------ transport */

typedef struct bench_comp {
    mf_tl_comp_t super;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    mf_status_t status;
} bench_comp_t;

static void bench_comp_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    bench_comp_t *bc = (bench_comp_t *)comp;

    pthread_mutex_lock(&bc->lock);
    bc->status = status;
    bc->done = true;
    pthread_cond_signal(&bc->cond);
    pthread_mutex_unlock(&bc->lock);
}

static mf_status_t bench_wait(bench_comp_t *bc, mf_status_t status)
{
    if (status != MF_INPROGRESS) {
        return status;
    }
    pthread_mutex_lock(&bc->lock);
    while (!bc->done) {
        pthread_cond_wait(&bc->cond, &bc->lock);
    }
    bc->done = false;
    pthread_mutex_unlock(&bc->lock);
    return bc->status;
}

static mf_tl_iface_t *bench_open(unsigned lanes)
{
    mf_tl_tcp_config_t cfg;
    mf_tl_params_t params;
    mf_tl_iface_t *iface;

    (void)mf_cfg_set_defaults(&mf_tl_tcp_cfg_table, &cfg);
    snprintf(cfg.addr, sizeof(cfg.addr), "127.0.0.1");
    cfg.lanes = lanes;
    memset(&params, 0, sizeof(params));
    params.host_id = "bench";
    params.config = &cfg;
    if (mf_tl_tcp_ops.iface_open(&params, &iface) != MF_OK) {
        exit(1);
    }
    return iface;
}

static double tl_run(unsigned lanes, size_t size, uint64_t iters, bool put)
{
    const mf_tl_ops_t *ops = &mf_tl_tcp_ops;
    mf_tl_iface_t *server = bench_open(lanes), *client = bench_open(lanes);
    mf_tl_mem_params_t mp;
    mf_tl_memh_t *memh;
    mf_tl_rkey_t *rkey;
    mf_tl_ep_t *ep;
    mf_mem_seg_t seg;
    uint8_t addr[64], rk[64];
    size_t addr_len, rk_len;
    uint8_t *mem = malloc(size), *buf = malloc(size);
    bench_comp_t bc;
    uint64_t t0, t1;

    memset(mem, 1, size);
    memset(buf, 2, size);
    memset(&seg, 0, sizeof(seg));
    mp.addr = mem;
    mp.size = size;
    mp.seg = &seg;
    ops->mem_reg(server, &mp, &memh);
    ops->rkey_pack(server, memh, rk, sizeof(rk), &rk_len);
    ops->iface_addr_pack(server, addr, sizeof(addr), &addr_len);
    ops->ep_create(client, addr, addr_len, &ep);
    ops->rkey_unpack(client, rk, rk_len, (uint64_t)(uintptr_t)mem, size, &rkey);
    bc.super.cb = bench_comp_cb;
    pthread_mutex_init(&bc.lock, NULL);
    pthread_cond_init(&bc.cond, NULL);
    bc.done = false;
    /* warm up: connect the lanes */
    for (int i = 0; i < 3; i++) {
        bench_wait(&bc, ops->put(ep, buf, (uint64_t)(uintptr_t)mem, size, rkey,
                                 &bc.super));
    }
    t0 = mf_time_ns();
    for (uint64_t i = 0; i < iters; i++) {
        mf_status_t status = put ? ops->put(ep, buf, (uint64_t)(uintptr_t)mem,
                                            size, rkey, &bc.super)
                                 : ops->get(ep, buf, (uint64_t)(uintptr_t)mem,
                                            size, rkey, &bc.super);

        if (bench_wait(&bc, status) != MF_OK) {
            fprintf(stderr, "transfer failed\n");
            exit(1);
        }
    }
    t1 = mf_time_ns();
    ops->rkey_release(client, rkey);
    ops->ep_destroy(ep);
    ops->mem_dereg(server, memh);
    ops->iface_close(client);
    ops->iface_close(server);
    free(mem);
    free(buf);
    return (double)(iters * size) / (double)(t1 - t0);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {1u << 20, 8u << 20, 64u << 20};
    static const unsigned lanes[] = {1, 2};
    int rounds = 5;

    if (argc > 1) {
        bench_secs = atof(argv[1]);
    }
    if (argc > 2) {
        rounds = atoi(argv[2]);
    }
    if (argc > 3) {
        raw_io = (size_t)atol(argv[3]);
    }
    /* best of `rounds` interleaved runs of each: the machine's noise hits
     * every variant alike */
    printf("%-6s %-9s %10s %10s %10s %8s %8s\n", "lanes", "size", "raw GB/s",
           "put GB/s", "get GB/s", "put/raw", "get/raw");
    for (size_t l = 0; l < 2; l++) {
        for (size_t s = 0; s < 3; s++) {
            size_t size = sizes[s];
            /* calibrate the iterations on the raw stream */
            double raw = raw_run(lanes[l], size, 4), put = 0, get = 0, v;
            uint64_t iters =
                (uint64_t)(bench_secs * raw * 1e9 / (double)size) + 4;

            raw = 0;
            for (int r = 0; r < rounds; r++) {
                v = raw_run(lanes[l], size, iters);
                raw = v > raw ? v : raw;
                v = tl_run(lanes[l], size, iters, true);
                put = v > put ? v : put;
                v = tl_run(lanes[l], size, iters, false);
                get = v > get ? v : get;
            }
            printf("%-6u %-6zuMiB %10.2f %10.2f %10.2f %8.2f %8.2f\n", lanes[l],
                   size >> 20, raw, put, get, put / raw, get / raw);
            fflush(stdout);
        }
    }
    return 0;
}
