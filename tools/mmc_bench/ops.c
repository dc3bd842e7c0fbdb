/*
 * mmc-bench's calls: one function per op, each making call j of its
 * measurement (put and get of blocks, the memcpy baseline or with --device
 * the driver's, the raw TCP baselines of the remote ops and of exist, the
 * metadata calls), all with the signature mcb_measure times.
 *
 * Invariants: call j of put, put_remote, memcpy and cuda_d2h reads the
 * same source blocks, so the baseline copies what a put moves; call j of
 * a get, memcpy and cuda_h2d fills the destination blocks (j * b + i) %
 * blocks; nothing here checks bytes (run.c verifies, untimed).
 */
#include "mmc_bench.h"

#include <string.h>

const char *const mcb_op_names[MCB_OPS] = {
    "memcpy",      "cuda_d2h", "cuda_h2d",   "tcp_write",  "tcp_read",
    "put",         "get",      "put_remote", "get_remote", "exist_batch",
    "query_batch", "tcp_ping", "exist"};

bool mcb_op_measured(mcb_op_t op)
{
    switch (op) {
    case MCB_OP_MEMCPY: /* the host memory baseline */
        return !mcb_opts.device;
    case MCB_OP_CUDA_D2H:
    case MCB_OP_CUDA_H2D:
        return mcb_opts.device;
    case MCB_OP_TCP_WRITE:
    case MCB_OP_TCP_READ:
    case MCB_OP_PUT_REMOTE:
    case MCB_OP_GET_REMOTE:
        return mcb_opts.hosts > 1;
    default:
        return true;
    }
}

mcb_op_t mcb_op_base_of(mcb_op_t op)
{
    switch (op) { /* the wire's, whatever memory the blocks are in */
    case MCB_OP_PUT_REMOTE:
        return MCB_OP_TCP_WRITE;
    case MCB_OP_GET_REMOTE:
        return MCB_OP_TCP_READ;
    case MCB_OP_EXIST:
        return MCB_OP_TCP_PING;
    default:
        break;
    }
    if (!mcb_opts.device) {
        return MCB_OP_MEMCPY;
    }
    if (mcb_op_base(op)) {
        return op;
    }
    return op == MCB_OP_PUT || op == MCB_OP_PUT_REMOTE ? MCB_OP_CUDA_D2H
                                                       : MCB_OP_CUDA_H2D;
}

int mcb_batch_failed(mcb_client_t *c, const char *what, mmc_status_t st,
                     size_t count)
{
    size_t i;

    for (i = 0; i < count; i++) {
        if (c->results[i] != MMC_OK) {
            bench_err("client %u: %s: %s (item %zu, key %s: %s)", c->proc, what,
                      mmc_status_name(st), i, c->keys[i],
                      mmc_status_name(c->results[i]));
            return -1;
        }
    }
    bench_err("client %u: %s: %s", c->proc, what, mmc_status_name(st));
    return -1;
}

/* b of this client's blocks, starting at block (j * b) % blocks, under
 * keys (own_keys: placed here; rput_keys: at the peer). */
static int mcb_put_blocks(mcb_client_t *c, uint32_t b, uint64_t j, char **keys)
{
    const uint32_t K = mcb_opts.blocks;
    mmc_put_opts_t po;
    mmc_status_t st;
    uint32_t i, k;

    mmc_put_opts_init(&po);
    po.flags = MMC_PUT_REPLACE;
    if (keys == c->rput_keys) {
        po.npreferred = 1;
        po.preferred[0] = c->peer_rank;
    }
    for (i = 0; i < b; i++) {
        k = (uint32_t)((j * b + i) % K);
        c->keys[i] = keys[k];
        c->iovs[i] = c->src_iov[k];
        c->niovs[i] = MCB_PIECES;
    }
    st = mmc_put_layers_batch(c->mmc, c->keys, c->iovs, c->niovs, b, &po,
                              c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_put_layers_batch", st, b);
    }
    return 0;
}

/* put: b of this client's blocks (placed on its own rank). */
int mcb_do_put(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_put_blocks(c, b, j, c->own_keys);
}

/* put_remote: the same blocks, placed at the peer on another host. */
int mcb_do_put_remote(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_put_blocks(c, b, j, c->rput_keys);
}

int mcb_get_blocks(mcb_client_t *c, char *const *keys, size_t nkeys,
                   uint64_t first, size_t b, uint64_t j, const char *when)
{
    mmc_status_t st;
    size_t i;

    for (i = 0; i < b; i++) {
        c->keys[i] = keys[(first + i) % nkeys];
        c->iovs[i] = c->dst_iov[(j * b + i) % mcb_opts.blocks];
        c->niovs[i] = MCB_PIECES;
    }
    st =
        mmc_get_layers_batch(c->mmc, c->keys, c->iovs, c->niovs, b, c->results);
    if (st != MMC_OK) {
        if (when != NULL) {
            bench_err("client %u: %s:", c->proc, when);
        }
        return mcb_batch_failed(c, "mmc_get_layers_batch", st, b);
    }
    return 0;
}

/* get: b blocks of every client (owners interleaved) into the
 * destination blocks of call j. */
static int mcb_do_get(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_get_blocks(c, c->all_keys,
                          (size_t)mcb_opts.procs * mcb_opts.blocks,
                          c->proc + j * b, b, j, NULL);
}

/* get_remote: b blocks of clients on other hosts, likewise. */
static int mcb_do_get_remote(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_get_blocks(c, c->rget_keys, c->nrget, c->proc + j * b, b, j,
                          NULL);
}

/* The baseline: the pieces of the blocks put call j puts (the same source
 * buffers, in the same turn), copied into the destination blocks get call
 * j fills: DRAM to DRAM, as a put's and a get's copies are, by as many
 * threads as the library copies with (the bytes split evenly). */
static int mcb_do_memcpy(mcb_client_t *c, uint32_t b, uint64_t j)
{
    mf_copy_piece_t *pc = c->mcpy_pieces;
    uint64_t total = 0;
    uint32_t i, p, k;
    size_t n = 0;

    for (i = 0; i < b; i++) {
        k = (uint32_t)((j * b + i) % mcb_opts.blocks);
        for (p = 0; p < MCB_PIECES; p++) {
            pc[n].src = (uint64_t)(uintptr_t)c->src_iov[k][p].base;
            pc[n].dst = (uint64_t)(uintptr_t)c->dst_iov[k][p].base;
            pc[n].size = c->src_iov[k][p].len;
            total += pc[n++].size;
        }
    }
    bench_mcpy_run(&c->mcpy, pc, n, total, c->mcpy.nthreads);
    __asm__ __volatile__("" ::: "memory");
    return 0;
}

/* The driver's copy of b blocks' pieces, every one queued on the
 * client's stream, then one wait: to (to_pin) or from the pinned blocks. */
static int mcb_cuda_copy(mcb_client_t *c, uint32_t b, uint64_t j, bool to_pin)
{
    uint32_t i, p, k;
    int ret = 0;

    for (i = 0; i < b && ret == 0; i++) {
        k = (uint32_t)((j * b + i) % mcb_opts.blocks);
        for (p = 0; p < MCB_PIECES && ret == 0; p++) {
            const mmc_iov_t *from =
                to_pin ? &c->src_iov[k][p] : &c->pin_iov[k][p];
            const mmc_iov_t *to =
                to_pin ? &c->pin_iov[i][p] : &c->dst_iov[k][p];

            ret =
                tk_cuda_copy_async(c->stream, to->base, from->base, from->len);
        }
    }
    if (tk_cuda_stream_sync(c->stream) != 0 || ret != 0) {
        bench_err("client %u: the driver's copy failed", c->proc);
        return -1;
    }
    return 0;
}

/* The baseline of put with --device: the source blocks a put call j puts,
 * device to pinned host memory. */
static int mcb_do_cuda_d2h(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_cuda_copy(c, b, j, true);
}

/* The baseline of get with --device: b pinned blocks into the destination
 * blocks get call j fills, host to device. */
static int mcb_do_cuda_h2d(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_cuda_copy(c, b, j, false);
}

/* Where call j of a raw transfer of b blocks starts, in the sources and in
 * the peer's buffer (both areas of blocks strides): the block a put call j
 * starts with, or 0 where b blocks from there would pass the end. */
static uint64_t mcb_tcp_offset(uint32_t b, uint64_t j)
{
    uint64_t off = (j * b) % mcb_opts.blocks * MCB_STRIDE;

    return off + (uint64_t)b * MCB_BLOCK >
                   (uint64_t)mcb_opts.blocks * MCB_STRIDE
               ? 0
               : off;
}

/* The baseline of put_remote: the bytes of b blocks from the sources to
 * the peer's raw server, over as many connections as the transport's
 * lanes, acknowledged once all arrived. */
static int mcb_do_tcp_write(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const uint64_t off = mcb_tcp_offset(b, j);

    return bench_tcp_client_run_at(&c->tcp_cli, BENCH_TCP_WRITE, c->src + off,
                                   off, (uint64_t)b * MCB_BLOCK);
}

/* The baseline of get_remote: the bytes of b blocks from the peer's raw
 * server into the destination blocks. */
static int mcb_do_tcp_read(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const uint64_t off = mcb_tcp_offset(b, j);

    return bench_tcp_client_run_at(&c->tcp_cli, BENCH_TCP_READ, c->dst + off,
                                   off, (uint64_t)b * MCB_BLOCK);
}

/* The baseline of exist: a blocking round trip to client 0's raw server,
 * on the meta service's host. */
static int mcb_do_tcp_ping(mcb_client_t *c, uint32_t b, uint64_t j)
{
    (void)b;
    (void)j;
    return bench_tcp_ping(c->ping_fd, 16);
}

int mcb_do_exist_batch(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const size_t M = mcb_opts.meta_keys;
    mmc_status_t st;

    st = mmc_exist_batch(c->mmc, (const char *const *)c->meta_mixed, M,
                         c->results);
    if (st != MMC_OK) {
        memcpy(c->keys, c->meta_mixed, M * sizeof(char *));
        return mcb_batch_failed(c, "mmc_exist_batch", st, M);
    }
    return 0;
}

int mcb_do_query_batch(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const size_t M = mcb_opts.meta_keys;
    mmc_status_t st;

    st = mmc_query_batch(c->mmc, (const char *const *)c->meta_mixed, M,
                         c->infos, c->results);
    if (st != MMC_OK) {
        memcpy(c->keys, c->meta_mixed, M * sizeof(char *));
        return mcb_batch_failed(c, "mmc_query_batch", st, M);
    }
    return 0;
}

static int mcb_do_exist(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const char *key = c->meta_mixed[j % mcb_opts.meta_keys];
    mmc_status_t st = mmc_exist(c->mmc, key);

    if (st != MMC_OK) {
        bench_err("client %u: mmc_exist(%s): %s", c->proc, key,
                  mmc_status_name(st));
        return -1;
    }
    return 0;
}

const mcb_call_fn mcb_op_fns[MCB_OPS] = {
    mcb_do_memcpy,      mcb_do_cuda_d2h,    mcb_do_cuda_h2d,
    mcb_do_tcp_write,   mcb_do_tcp_read,    mcb_do_put,
    mcb_do_get,         mcb_do_put_remote,  mcb_do_get_remote,
    mcb_do_exist_batch, mcb_do_query_batch, mcb_do_tcp_ping,
    mcb_do_exist};
