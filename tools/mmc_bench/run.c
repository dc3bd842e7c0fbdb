/*
 * mmc-bench's measurement, in every client at once: put this client's
 * blocks, verify every client's, then for each batch size --rounds rounds
 * in which every block op (the baselines, put, get, ...) takes its turn
 * with a warm-up call and timed calls, the metadata calls (and their
 * ping) the same way last, and a final verification.
 * The clients step through the phases together with a barrier in shared
 * memory; each sends one record per measurement to the parent.
 *
 * Invariants: every block is verified byte for byte (put, then get of
 * every client's blocks) before anything is timed and again after, so a
 * speed is never reported for calls that move the wrong bytes (device
 * blocks are read back through the driver, never dereferenced); a
 * measurement lasts until every client made >= --min-calls calls over >=
 * --min-time, so all of them run during each one's window.
 */
#include "mmc_bench.h"

#include "tk_pattern.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MCB_MIN(_a, _b) ((_a) < (_b) ? (_a) : (_b))

/* ------------------------------------------------------------ barrier */

/*
 * Every client waits for the others; the last one in resets the
 * measurement counter and opens the next generation.  Waiters sleep in
 * short steps (the machine may have fewer cores than processes).  -1 when
 * the parent aborted or the deadline passed.
 */
int mcb_barrier(void)
{
    uint32_t gen = __atomic_load_n(&mcb_sh->gen, __ATOMIC_ACQUIRE);
    unsigned spins = 0;

    if (__atomic_add_fetch(&mcb_sh->arrived, 1, __ATOMIC_ACQ_REL) ==
        mcb_opts.procs) {
        __atomic_store_n(&mcb_sh->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&mcb_sh->done, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&mcb_sh->gen, 1, __ATOMIC_RELEASE);
        return 0;
    }
    while (__atomic_load_n(&mcb_sh->gen, __ATOMIC_ACQUIRE) == gen) {
        if (__atomic_load_n(&mcb_sh->abort, __ATOMIC_ACQUIRE) != 0) {
            return -1;
        }
        if (++spins < 64) {
            sched_yield();
        } else {
            bench_sleep_us(50);
            if ((spins & 1023) == 0 && bench_now_ns() > mcb_deadline) {
                bench_err("timed out waiting for the other clients");
                return -1;
            }
        }
    }
    return 0;
}

static int mcb_send(mcb_client_t *c, const mcb_record_t *r)
{
    if (write(c->out_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
        bench_err("client %u: writing a result: %s", c->proc, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * One round of a measurement, every client at once: a warm-up call, then
 * timed calls until this client made >= min_calls / rounds over >=
 * min_time / rounds and every other client did too (so all of them run
 * for the whole of each one's window).  The calls of every round add up;
 * the last round sends the record.
 */
static int mcb_measure_op(mcb_client_t *c, mcb_op_t op, uint32_t b,
                          unsigned round)
{
    const mcb_call_fn fn = mcb_op_fns[op];
    const bool block_op = mcb_op_blocks(op);
    const uint32_t keys = block_op ? b
                          : op == MCB_OP_EXIST || op == MCB_OP_TCP_PING
                              ? 1
                              : mcb_opts.meta_keys;
    const uint64_t min_calls =
        (mcb_opts.min_calls + mcb_opts.rounds - 1) / mcb_opts.rounds;
    const uint64_t max_calls = MCB_MAX_CALLS / mcb_opts.rounds;
    const double min_ns = mcb_opts.min_time * 1e9 / mcb_opts.rounds;
    uint64_t t0, t1, start, n0, n, j = 1;
    uint64_t *lat;
    mcb_record_t r;
    bool flagged = false;

    if (c->lat[op] == NULL &&
        (c->lat[op] = calloc(MCB_MAX_CALLS, sizeof(uint64_t))) == NULL) {
        bench_err("client %u: out of memory", c->proc);
        return -1;
    }
    if (round == 0) {
        c->nlat[op] = 0;
        c->active_ns[op] = 0;
    }
    lat = c->lat[op];
    n0 = n = c->nlat[op];
    if (mcb_barrier() != 0 || fn(c, b, 0) != 0 || mcb_barrier() != 0) {
        return -1;
    }
    start = bench_now_ns();
    if (round == 0) {
        c->t_first[op] = start;
    }
    for (;;) {
        t0 = bench_now_ns();
        if (fn(c, b, j++) != 0) {
            __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
            return -1;
        }
        t1 = bench_now_ns();
        lat[n++] = t1 - t0;
        if (!flagged &&
            ((n - n0 >= min_calls && (double)(t1 - start) >= min_ns) ||
             n - n0 == max_calls)) {
            flagged = true;
            __atomic_add_fetch(&mcb_sh->done, 1, __ATOMIC_ACQ_REL);
        }
        if (n - n0 == max_calls ||
            __atomic_load_n(&mcb_sh->done, __ATOMIC_ACQUIRE) ==
                mcb_opts.procs) {
            break;
        }
        if (__atomic_load_n(&mcb_sh->abort, __ATOMIC_ACQUIRE) != 0 ||
            t1 > mcb_deadline) {
            bench_err("client %u: aborted during %s", c->proc,
                      mcb_op_names[op]);
            return -1;
        }
    }
    c->nlat[op] = n;
    c->active_ns[op] += bench_now_ns() - start;
    if (round + 1 < mcb_opts.rounds) {
        return 0;
    }
    memset(&r, 0, sizeof(r));
    /* the rounds' time, from the first one's start */
    r.t_start = c->t_first[op];
    r.t_end = r.t_start + c->active_ns[op];
    qsort(lat, n, sizeof(lat[0]), bench_cmp_u64);
    r.op = op;
    r.proc = c->proc;
    r.host = c->host;
    r.rank = c->rank;
    r.blocks = block_op ? b : 0;
    r.keys = keys;
    r.calls = (uint32_t)n;
    r.copy_threads = c->copy_threads;
    r.lanes = c->lanes;
    r.p50_us = bench_median_u64(lat, n) / 1e3;
    r.p99_us = (double)lat[(n * 99 + 99) / 100 - 1] / 1e3;
    r.bytes = block_op ? n * b * MCB_BLOCK : 0;
    r.items = n * keys;
    return mcb_send(c, &r);
}

/* The memcpy baseline's helpers spin only while it is measured. */
static int mcb_measure(mcb_client_t *c, mcb_op_t op, uint32_t b, unsigned round)
{
    bool hot = op == MCB_OP_MEMCPY && c->mcpy.nthreads > 1;
    int ret;

    bench_mcpy_hot(&c->mcpy, hot);
    ret = mcb_measure_op(c, op, b, round);
    if (hot) {
        bench_mcpy_hot(&c->mcpy, false);
    }
    return ret;
}

/* Compares dst block i with block k of owner; -1 (logged) if it differs.
 * A device block is read into the pinned block i through the driver. */
static int mcb_check_block(mcb_client_t *c, size_t i, uint32_t owner,
                           uint32_t k, const char *when)
{
    const mmc_iov_t *iov = c->dst_iov[i];
    uint64_t off = 0;
    ssize_t bad;
    size_t p;

    if (mcb_opts.device) {
        if (tk_cuda_copy(c->pin_iov[i][0].base, c->dst_iov[i][0].base,
                         MCB_STRIDE) != 0) {
            bench_err("client %u: %s: reading device block %zu failed", c->proc,
                      when, i);
            return -1;
        }
        iov = c->pin_iov[i];
    }
    for (p = 0; p < MCB_PIECES; p++) {
        bad = tk_pattern_check(iov[p].base, iov[p].len,
                               mcb_block_seed(owner, k), off);
        if (bad >= 0) {
            bench_err("client %u: %s: block %s differs at byte %" PRIu64
                      " (piece %zu)",
                      c->proc, when, c->keys[i], off + (uint64_t)bad, p);
            return -1;
        }
        off += iov[p].len;
    }
    return 0;
}

/* Gets cnt <= blocks blocks into dst[0..cnt) (poisoned first). */
static int mcb_get_into_dst(mcb_client_t *c, char *const *keys, size_t cnt,
                            const char *when)
{
    if (!mcb_opts.device) {
        memset(c->dst, 0xa5, c->area);
    } else if (tk_cuda_memset(c->dst, 0xa5, c->area) != 0) {
        bench_err("client %u: %s: clearing its device blocks failed", c->proc,
                  when);
        return -1;
    }
    return mcb_get_blocks(c, keys, cnt, 0, cnt, 0, when);
}

/* Gets every client's blocks and compares them with their pattern; with
 * --netns also this client's blocks at its peer, which must be there. */
static int mcb_verify_all(mcb_client_t *c, const char *when)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.blocks;
    const size_t n = (size_t)P * K;
    const size_t vb = MCB_MIN(MCB_VERIFY_BATCH, (size_t)K); /* dst holds K */
    mmc_status_t st;
    size_t g, i;

    for (g = 0; g < n; g += vb) {
        size_t cnt = MCB_MIN(n - g, vb);

        if (mcb_get_into_dst(c, c->all_keys + g, cnt, when) != 0) {
            return -1;
        }
        for (i = 0; i < cnt; i++) {
            if (mcb_check_block(c, i, (uint32_t)((g + i) % P),
                                (uint32_t)((g + i) / P), when) != 0) {
                return -1;
            }
        }
    }
    if (c->rput_keys == NULL) {
        return 0;
    }
    for (g = 0; g < K; g += vb) {
        size_t cnt = MCB_MIN(K - g, vb);

        if (mcb_get_into_dst(c, c->rput_keys + g, cnt, when) != 0) {
            return -1;
        }
        for (i = 0; i < cnt; i++) {
            if (mcb_check_block(c, i, c->proc, (uint32_t)(g + i), when) != 0) {
                return -1;
            }
        }
    }
    st = mmc_query_batch(c->mmc, (const char *const *)c->rput_keys, K, c->infos,
                         c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_query_batch", st, K);
    }
    for (i = 0; i < K; i++) {
        if (c->infos[i].nreplicas != 1 ||
            c->infos[i].ranks[0] != c->peer_rank) {
            bench_err("client %u: %s: %s is on rank %u (%u replicas), not on "
                      "rank %u of another host (its preferred rank)",
                      c->proc, when, c->rput_keys[i], c->infos[i].ranks[0],
                      c->infos[i].nreplicas, c->peer_rank);
            return -1;
        }
    }
    return 0;
}

/* Puts this client's blocks and metadata objects (untimed). */
static int mcb_put_all(mcb_client_t *c)
{
    const size_t M = mcb_opts.meta_keys;
    mmc_put_opts_t po;
    mmc_status_t st;
    size_t i;

    if (mcb_do_put(c, mcb_opts.blocks, 0) != 0 ||
        (c->rput_keys != NULL &&
         mcb_do_put_remote(c, mcb_opts.blocks, 0) != 0)) {
        return -1;
    }
    mmc_put_opts_init(&po);
    po.flags = MMC_PUT_REPLACE;
    for (i = 0; i < M; i++) {
        c->keys[i] = c->meta_keys[i];
        c->bufs[i] = c->meta_val;
        c->sizes[i] = sizeof(c->meta_val);
    }
    st = mmc_put_batch(c->mmc, c->keys, c->bufs, c->sizes, M, &po, c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_put_batch", st, M);
    }
    return 0;
}

/* Every item of the last metadata batch found its key. */
static int mcb_meta_all_found(mcb_client_t *c, const char *what)
{
    for (size_t i = 0; i < mcb_opts.meta_keys; i++) {
        if (c->results[i] != MMC_OK) {
            bench_err("client %u: %s: key %s: %s", c->proc, what,
                      c->meta_mixed[i], mmc_status_name(c->results[i]));
            return -1;
        }
    }
    return 0;
}

/* The metadata calls answer what was put, and a missing key is missing. */
static int mcb_verify_meta(mcb_client_t *c)
{
    const size_t M = mcb_opts.meta_keys;
    char missing[128];
    mmc_status_t st;
    size_t i;

    /* a batch of misses returns MMC_OK too: every item must be found */
    if (mcb_do_exist_batch(c, 0, 0) != 0 ||
        mcb_meta_all_found(c, "mmc_exist_batch") != 0 ||
        mcb_do_query_batch(c, 0, 0) != 0 ||
        mcb_meta_all_found(c, "mmc_query_batch") != 0) {
        return -1;
    }
    for (i = 0; i < M; i++) {
        if (c->infos[i].size != MCB_META_SIZE || c->infos[i].nreplicas < 1) {
            bench_err("client %u: mmc_query_batch: %s has size %" PRIu64
                      " and %u replicas, expected %d and >= 1",
                      c->proc, c->meta_mixed[i], c->infos[i].size,
                      c->infos[i].nreplicas, MCB_META_SIZE);
            return -1;
        }
    }
    snprintf(missing, sizeof(missing), "mmcb%s/missing/%u", mcb_run_id,
             c->proc);
    st = mmc_exist(c->mmc, missing);
    if (st != MMC_ERR_NOT_FOUND) {
        bench_err("client %u: mmc_exist of a key never put: %s, expected "
                  "MMC_ERR_NOT_FOUND",
                  c->proc, mmc_status_name(st));
        return -1;
    }
    return 0;
}

int mcb_client_run(mcb_client_t *c)
{
    unsigned i, round;
    int op;

    if (mcb_put_all(c) != 0 || mcb_barrier() != 0 ||
        mcb_verify_all(c, "before timing") != 0 || mcb_verify_meta(c) != 0) {
        return -1;
    }
    for (i = 0; i < mcb_opts.nbatches; i++) {
        for (round = 0; round < mcb_opts.rounds; round++) {
            for (op = MCB_OP_MEMCPY; mcb_op_blocks((mcb_op_t)op); op++) {
                if (mcb_op_measured((mcb_op_t)op) &&
                    mcb_measure(c, (mcb_op_t)op, mcb_opts.batches[i], round) !=
                        0) {
                    return -1;
                }
            }
        }
    }
    for (round = 0; round < mcb_opts.rounds; round++) {
        for (op = MCB_OP_EXIST_BATCH; op < MCB_OPS; op++) {
            if (mcb_measure(c, (mcb_op_t)op, 0, round) != 0) {
                return -1;
            }
        }
    }
    if (mcb_barrier() != 0 || mcb_verify_all(c, "after timing") != 0) {
        return -1;
    }
    return 0;
}
