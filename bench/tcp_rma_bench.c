/*
 * tcp transport against a raw TCP stream, over loopback or a link.
 *
 * Baseline: `lanes` plain TCP connections, each with a sender thread and a
 * receiver thread (blocking send, recv with MSG_WAITALL), stream
 * size/lanes bytes per iteration with no framing and no per-iteration
 * synchronization: the best a TCP stream does (the stream of
 * tools/common/bench_tcp.c).
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

#include "bench_tcp.h"
#include "bench_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double bench_secs = 2.0;
/* bytes per send/recv call of the raw stream (0: a whole piece) */
static size_t raw_io;

/* ------------------------------------------------------------ raw TCP */

/* The raw stream (bench_tcp_stream_run); a failure ends the benchmark. */
static double raw_run(unsigned lanes, size_t size, uint64_t iters)
{
    double gbps = bench_tcp_stream_run(lanes, size, iters, raw_io);

    if (gbps < 0) {
        exit(1);
    }
    return gbps;
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
    mf_tl_mem_params_t mp = {0};
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

    bench_set_tool("tcp-rma-bench");
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
