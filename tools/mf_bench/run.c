/*
 * mf-bench's measurement, in rank 0: for every layout and size the
 * baseline (memcpy, or the raw TCP transfer in the same direction), then
 * each direction's copy through the BM API, verified first and then
 * timed.
 *
 * Invariants: every configuration is verified byte for byte with a fresh
 * pattern before it is timed, so a speed is never reported for a copy
 * that moves the wrong bytes; a measurement is the median of samples of
 * at least MB_SAMPLE_NS each, after one warm-up run.
 */
#include "mf_bench.h"

#include "tk_pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const mf_copy_dir_t mb_dirs[MB_DIRS] = {MF_COPY_LH2GH, MF_COPY_GH2LH,
                                               MF_COPY_GH2GH};

static size_t mb_kv_size(size_t i)
{
    return i < MB_KV_LAYERS ? MB_KV_BIG : MB_KV_SMALL;
}

/*
 * Builds the piece list of one configuration.  The "local" side is the
 * private buffer a (sources) or b (destinations) or, for the KV layout,
 * the separate buffers kv[i]; the "remote" side is laid out contiguously
 * (batch pieces in reverse order, so a batch is not one big memcpy).
 * dir MB_DIRS builds the baseline: local sources into b.
 */
static size_t mb_build(mb_bench_t *b, mb_layout_t layout, int dir,
                       uint64_t size, uint64_t *total_p)
{
    size_t count, i;
    uint64_t psize = size, off = 0, loc, rem;

    count = layout == MB_SINGLE ? 1
            : layout == MB_KV   ? MB_KV_PIECES
                                : mb_opts.pieces;
    if (layout == MB_BATCH) {
        psize = size / count;
    }
    for (i = 0; i < count; i++) {
        uint64_t lsrc, ldst, rbase1, rbase2;
        uint64_t sz = layout == MB_KV ? mb_kv_size(i) : psize;

        if (layout == MB_KV) {
            lsrc = ldst = (uint64_t)(uintptr_t)b->kv[i];
            rem = off;
        } else {
            loc = i * psize;
            rem = layout == MB_BATCH ? (count - 1 - i) * psize : 0;
            lsrc = (uint64_t)(uintptr_t)(b->a + loc);
            ldst = (uint64_t)(uintptr_t)(b->b + loc);
        }
        rbase1 = b->r1 + rem;
        rbase2 = b->r2 + rem;
        switch (dir) {
        case MB_LH2GH:
            b->pieces[i].src = lsrc;
            b->pieces[i].dst = rbase1;
            break;
        case MB_GH2LH:
            b->pieces[i].src = rbase1;
            b->pieces[i].dst = ldst;
            break;
        case MB_GH2GH:
            b->pieces[i].src = rbase1;
            b->pieces[i].dst = rbase2;
            break;
        default: /* baseline */
            b->pieces[i].src = lsrc;
            b->pieces[i].dst = (uint64_t)(uintptr_t)(b->b + rem);
            break;
        }
        b->pieces[i].size = sz;
        off += sz;
    }
    *total_p = off;
    return count;
}

static int mb_copy(mb_bench_t *b, mb_layout_t layout, mf_copy_dir_t dir,
                   const mf_copy_piece_t *pieces, size_t count,
                   mf_status_t *results)
{
    mf_status_t st;

    if (layout == MB_SINGLE) {
        st = mf_bm_copy(b->bm, pieces[0].src, pieces[0].dst, pieces[0].size,
                        dir);
    } else {
        st = mf_bm_copy_batch(b->bm, pieces, count, dir, results);
    }
    if (st != MF_OK) {
        bench_err("%s copy (%s, %zu pieces): %s", mf_copy_dir_name(dir),
                  mb_layout_names[layout], count, mf_status_str(st));
        return -1;
    }
    return 0;
}

/* Fills remote memory with the pattern through the stage buffer. */
static int mb_remote_fill(mb_bench_t *b, uint64_t gva, uint64_t size,
                          uint64_t seed, uint64_t base)
{
    uint64_t done, n;
    mf_status_t st;

    for (done = 0; done < size; done += n) {
        n = size - done < MB_STAGE ? size - done : MB_STAGE;
        tk_pattern_fill(b->stage, n, seed, base + done);
        st = mf_bm_copy(b->bm, (uint64_t)(uintptr_t)b->stage, gva + done, n,
                        MF_COPY_LH2GH);
        if (st != MF_OK) {
            bench_err("filling 0x%" PRIx64 ": %s", gva, mf_status_str(st));
            return -1;
        }
    }
    return 0;
}

/* Reads remote memory back through the stage buffer and checks it. */
static int mb_remote_check(mb_bench_t *b, uint64_t gva, uint64_t size,
                           uint64_t seed, uint64_t base, ssize_t *bad_p)
{
    uint64_t done, n;
    mf_status_t st;
    ssize_t bad;

    *bad_p = -1;
    for (done = 0; done < size; done += n) {
        n = size - done < MB_STAGE ? size - done : MB_STAGE;
        memset(b->stage, 0, n);
        st = mf_bm_copy(b->bm, gva + done, (uint64_t)(uintptr_t)b->stage, n,
                        MF_COPY_GH2LH);
        if (st != MF_OK) {
            bench_err("reading 0x%" PRIx64 " back: %s", gva, mf_status_str(st));
            return -1;
        }
        bad = tk_pattern_check(b->stage, n, seed, base + done);
        if (bad >= 0) {
            *bad_p = (ssize_t)done + bad;
            return 0;
        }
    }
    return 0;
}

/* Copies the pieces once with a fresh pattern and checks every byte. */
static int mb_verify(mb_bench_t *b, mb_layout_t layout, mb_dir_t dir,
                     size_t count)
{
    bool src_local = dir == MB_LH2GH, dst_local = dir == MB_GH2LH;
    uint64_t seed = ++b->seed, base = 0;
    size_t i;
    ssize_t bad;

    for (i = 0; i < count; i++) {
        mf_copy_piece_t *pc = &b->pieces[i];

        if (src_local) {
            tk_pattern_fill((uint8_t *)(uintptr_t)pc->src, pc->size, seed,
                            base);
        } else if (mb_remote_fill(b, pc->src, pc->size, seed, base) != 0) {
            return -1;
        }
        if (dst_local) {
            memset((void *)(uintptr_t)pc->dst, 0, pc->size);
        }
        base += pc->size;
    }
    for (i = 0; i < count; i++) {
        b->results[i] = MF_ERR_STATE;
    }
    if (mb_copy(b, layout, mb_dirs[dir], b->pieces, count, b->results) != 0) {
        return -1;
    }
    for (i = 0, base = 0; i < count; i++) {
        mf_copy_piece_t *pc = &b->pieces[i];

        if (layout != MB_SINGLE && b->results[i] != MF_OK) {
            bench_err("verify: piece %zu: %s", i, mf_status_str(b->results[i]));
            return -1;
        }
        if (dst_local) {
            bad = tk_pattern_check((uint8_t *)(uintptr_t)pc->dst, pc->size,
                                   seed, base);
        } else if (mb_remote_check(b, pc->dst, pc->size, seed, base, &bad) !=
                   0) {
            return -1;
        }
        if (bad >= 0) {
            bench_err("WRONG DATA: %s %s copy, piece %zu of %zu (%zu "
                      "bytes): byte %zd differs",
                      mb_dir_names[dir], mb_layout_names[layout], i, count,
                      (size_t)pc->size, bad);
            return -1;
        }
        base += pc->size;
    }
    return 0;
}

/* What one timed run does. */
typedef enum mb_job_kind {
    MB_JOB_COPY,   /* the BM copy of the pieces */
    MB_JOB_MEMCPY, /* the memcpy baseline of the pieces */
    MB_JOB_TCP     /* the raw TCP transfer of total bytes */
} mb_job_kind_t;

typedef struct mb_job {
    mb_job_kind_t kind;
    mb_layout_t layout; /* copy */
    mf_copy_dir_t dir;  /* copy */
    size_t count;       /* copy, memcpy: pieces */
    uint64_t total;     /* memcpy, tcp: bytes */
    unsigned active;    /* memcpy: threads that copy */
    uint32_t op;        /* tcp: BENCH_TCP_WRITE or BENCH_TCP_READ */
} mb_job_t;

static int mb_job_run(mb_bench_t *b, const mb_job_t *job)
{
    switch (job->kind) {
    case MB_JOB_COPY:
        return mb_copy(b, job->layout, job->dir, b->pieces, job->count, NULL);
    case MB_JOB_MEMCPY:
        mb_mcpy_run(&b->mcpy, b->pieces, job->count, job->total, job->active);
        return 0;
    default:
        return bench_tcp_client_run(&b->tcpb, job->op,
                                    job->op == BENCH_TCP_WRITE ? b->a : b->b,
                                    job->total);
    }
}

/* Runs the job reps times; *t0_p and *t1_p get the clock around them. */
static int mb_job_repeat(mb_bench_t *b, const mb_job_t *job, uint64_t reps,
                         uint64_t *t0_p, uint64_t *t1_p)
{
    uint64_t k;

    *t0_p = bench_now_ns();
    for (k = 0; k < reps; k++) {
        if (mb_job_run(b, job) != 0) {
            return -1;
        }
    }
    *t1_p = bench_now_ns();
    return 0;
}

/*
 * One warm-up run, then timed samples of `reps` runs each (reps chosen so
 * that a sample lasts >= 1 ms) until min_time passed and at least
 * MB_MIN_SAMPLES were taken, or exactly --iters samples.  Returns the
 * median bandwidth in GB/s (1e9 bytes/s), or a negative value on failure.
 */
static double mb_measure(mb_bench_t *b, const mb_job_t *job, uint64_t bytes,
                         unsigned *samples_p)
{
    static double rates[MB_MAX_SAMPLES];
    uint64_t t0, t1, start, reps = 1;
    unsigned n = 0;

    if (mb_job_run(b, job) != 0) { /* warm-up */
        return -1;
    }
    /* calibrate: double reps until one sample lasts >= MB_SAMPLE_NS */
    for (;;) {
        if (mb_job_repeat(b, job, reps, &t0, &t1) != 0) {
            return -1;
        }
        if (t1 - t0 >= MB_SAMPLE_NS || reps >= (1u << 20) ||
            mb_opts.iters > 0) {
            break;
        }
        reps *= 2;
    }
    start = bench_now_ns();
    for (;;) {
        if (mb_job_repeat(b, job, reps, &t0, &t1) != 0) {
            return -1;
        }
        rates[n++] = (double)(bytes * reps) / (double)(t1 - t0 ? t1 - t0 : 1);
        if (n == MB_MAX_SAMPLES) {
            break;
        }
        if (mb_opts.iters > 0) {
            if (n >= mb_opts.iters) {
                break;
            }
        } else if (n >= MB_MIN_SAMPLES &&
                   (double)(t1 - start) >= mb_opts.min_time * 1e9) {
            break;
        }
    }
    qsort(rates, n, sizeof(rates[0]), bench_cmp_double);
    *samples_p = n;
    return bench_median_double(rates, n);
}

/* Measures one (layout, size): the baseline once, then every direction. */
static int mb_bench_size(mb_bench_t *b, mb_layout_t layout, uint64_t size)
{
    mb_job_t job;
    mb_record_t rec;
    uint64_t total;
    size_t count;
    unsigned samples, d;
    double base, gbps;

    count = mb_build(b, layout, MB_DIRS, size, &total);
    base = 0;
    if (!mb_opts.tcp) {
        memset(&job, 0, sizeof(job));
        job.kind = MB_JOB_MEMCPY;
        job.count = count;
        job.total = total;
        job.active = total >= b->split_min ? b->threads : 1;
        mb_mcpy_hot(&b->mcpy, job.active > 1);
        base = mb_measure(b, &job, total, &samples);
        mb_mcpy_hot(&b->mcpy, false);
    }
    for (d = 0; d < MB_DIRS; d++) {
        if (!mb_opts.dirs[d] || (d == MB_GH2GH && b->world < 3)) {
            continue;
        }
        if (mb_opts.tcp && d != MB_GH2GH) {
            /* the raw stream in the same direction, same bytes */
            memset(&job, 0, sizeof(job));
            job.kind = MB_JOB_TCP;
            job.op = d == MB_GH2LH ? BENCH_TCP_READ : BENCH_TCP_WRITE;
            job.total = total;
            base = mb_measure(b, &job, total, &samples);
            if (base < 0) {
                return -1;
            }
        } else if (mb_opts.tcp) {
            base = 0; /* no raw stream between two other processes */
        }
        count = mb_build(b, layout, (int)d, size, &total);
        if (mb_verify(b, layout, d, count) != 0) {
            return -1;
        }
        memset(&job, 0, sizeof(job));
        job.kind = MB_JOB_COPY;
        job.layout = layout;
        job.dir = mb_dirs[d];
        job.count = count;
        gbps = mb_measure(b, &job, total, &samples);
        if (gbps < 0) {
            return -1;
        }
        memset(&rec, 0, sizeof(rec));
        rec.type = MB_REC_RESULT;
        rec.world = b->world;
        rec.layout = layout;
        rec.dir = d;
        rec.size = total;
        rec.pieces = (uint32_t)count;
        rec.threads = b->threads;
        rec.lanes = b->lanes;
        rec.samples = samples;
        rec.gbps = gbps;
        rec.base_gbps = base;
        if (mb_report_emit(b->out_fd, &rec) != 0) {
            return -1;
        }
    }
    return 0;
}

uint64_t mb_max_size(void)
{
    uint64_t m = 0;
    unsigned i;

    for (i = 0; i < mb_opts.nsizes; i++) {
        m = mb_opts.sizes[i] > m ? mb_opts.sizes[i] : m;
    }
    if (mb_opts.layouts[MB_KV] && m < MB_KV_TOTAL) {
        m = MB_KV_TOTAL;
    }
    return m;
}

int mb_bench_run(mb_bench_t *b, uint64_t max)
{
    mb_record_t rec;
    unsigned l, i;
    size_t k;

    b->max_pieces =
        mb_opts.pieces > MB_KV_PIECES ? mb_opts.pieces : MB_KV_PIECES;
    b->pieces = calloc(b->max_pieces, sizeof(*b->pieces));
    b->results = calloc(b->max_pieces, sizeof(*b->results));
    if (b->pieces == NULL || b->results == NULL) {
        bench_err("out of memory");
        return -1;
    }
    b->a = bench_map(max);
    b->b = bench_map(max);
    b->stage = bench_map(MB_STAGE);
    if (b->a == NULL || b->b == NULL || b->stage == NULL) {
        return -1;
    }
    for (k = 0; k < MB_KV_PIECES; k++) {
        b->kv[k] = bench_map(mb_kv_size(k));
        if (b->kv[k] == NULL) {
            return -1;
        }
    }
    if (mb_mcpy_init(&b->mcpy, b->threads) != 0) {
        return -1;
    }
    memset(&rec, 0, sizeof(rec));
    rec.type = MB_REC_HEADER;
    rec.world = b->world;
    rec.split_min = b->split_min;
    if (mb_report_emit(b->out_fd, &rec) != 0) {
        return -1;
    }
    for (l = 0; l < MB_LAYOUTS; l++) {
        if (!mb_opts.layouts[l]) {
            continue;
        }
        if (l == MB_KV) {
            if (mb_bench_size(b, MB_KV, MB_KV_TOTAL) != 0) {
                return -1;
            }
            continue;
        }
        for (i = 0; i < mb_opts.nsizes; i++) {
            if (l == MB_BATCH && mb_opts.sizes[i] < mb_opts.pieces) {
                continue;
            }
            if (mb_bench_size(b, l, mb_opts.sizes[i]) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

void mb_bench_free(mb_bench_t *b, uint64_t max)
{
    size_t k;

    if (b->mcpy.nthreads > 0) {
        mb_mcpy_fini(&b->mcpy);
    }
    if (b->tcpb.n > 0) {
        bench_tcp_client_fini(&b->tcpb);
    }
    for (k = 0; k < MB_KV_PIECES; k++) {
        if (b->kv[k] != NULL) {
            munmap(b->kv[k], mb_kv_size(k));
        }
    }
    if (b->stage != NULL) {
        munmap(b->stage, MB_STAGE);
    }
    if (b->b != NULL) {
        munmap(b->b, max);
    }
    if (b->a != NULL) {
        munmap(b->a, max);
    }
    free(b->pieces);
    free(b->results);
}
