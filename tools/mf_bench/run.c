/*
 * mf-bench's measurement, in rank 0: for every layout and size, each
 * direction's copy through the BM API, verified first and then timed,
 * after its baseline: memcpy (host directions), the driver's copy between
 * local memory of the same kinds (device directions: device memory and
 * pinned host memory), or the raw TCP transfer in the same direction
 * (--transport tcp).  A baseline is measured once per (layout, size) and
 * kind.
 *
 * Invariants: every configuration is verified byte for byte with a fresh
 * pattern before it is timed, so a speed is never reported for a copy
 * that moves the wrong bytes; device memory is only ever read and written
 * through the driver (or the library), never dereferenced; a measurement
 * is the median of samples of at least MB_SAMPLE_NS each, after a
 * warm-up run through every slot of the working set (below).
 *
 * Working set: a timed copy and its baseline rotate through `slots` copies
 * of their piece list, slot k shifted by k times a stride at each end, so
 * that each end spans at least mb_opts.ws bytes (twice the last-level
 * cache by default) and the bytes come from DRAM, as a pool's do.  Slot 0
 * is the one verified; every slot lies inside the buffers and segments,
 * which mb_max_size() sizes for the rotation.
 */
#include "mf_bench.h"

#include "tk_pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static size_t mb_kv_size(size_t i)
{
    return i < MB_KV_LAYERS ? MB_KV_BIG : MB_KV_SMALL;
}

/* Slots start on page boundaries, so a piece has the same alignment in
 * every slot. */
#define MB_SLOT_ALIGN 4096u

/* The stride of a contiguous end of a piece list of total bytes. */
static uint64_t mb_slot_stride(uint64_t total)
{
    return (total + MB_SLOT_ALIGN - 1) / MB_SLOT_ALIGN * MB_SLOT_ALIGN;
}

/* The slots a piece list of total bytes rotates through: enough that a
 * contiguous end spans mb_opts.ws bytes. */
static uint64_t mb_slots(uint64_t total)
{
    uint64_t stride = mb_slot_stride(total);

    return mb_opts.ws <= stride ? 1 : (mb_opts.ws + stride - 1) / stride;
}

/* The bytes of the separate buffer of KV piece i: a piece per slot, at
 * strides of the largest piece. */
static uint64_t mb_kv_room(size_t i)
{
    return (mb_slots(MB_KV_TOTAL) - 1) * MB_KV_BIG + mb_kv_size(i);
}

/* Where one end of a piece list lies. */
typedef enum mb_place {
    MB_AT_SRC,     /* the local layout in the source buffer of its memory */
    MB_AT_DST,     /* the local layout in the destination buffer */
    MB_AT_RANK1,   /* the remote layout in rank 1's segment */
    MB_AT_RANK2,   /* ... in rank 2's */
    MB_AT_PRIVATE, /* the remote layout in the destination buffer (the
                      baselines' target) */
} mb_place_t;

typedef struct mb_end {
    mb_place_t place;
    mb_mem_t mem; /* a segment's: MB_MEM_DEV (device) or MB_MEM_HOST */
} mb_end_t;

static bool mb_end_global(const mb_end_t *e)
{
    return e->place == MB_AT_RANK1 || e->place == MB_AT_RANK2;
}

/* Local memory of a side: the host side of a device direction is pinned,
 * like the host memory of the driver's baseline. */
static mb_mem_t mb_local_mem(mb_dir_t dir, bool dev)
{
    return dev ? MB_MEM_DEV : mb_dir_device(dir) ? MB_MEM_PINNED : MB_MEM_HOST;
}

/* The ends of a direction: rank 0's local memory, rank 1's segment and,
 * from one segment to another, rank 2's. */
static void mb_dir_ends(mb_dir_t dir, mb_end_t *src, mb_end_t *dst)
{
    const mb_dir_info_t *di = &mb_dirs[dir];

    src->place = di->src_global ? MB_AT_RANK1 : MB_AT_SRC;
    src->mem = di->src_global ? (di->src_dev ? MB_MEM_DEV : MB_MEM_HOST)
                              : mb_local_mem(dir, di->src_dev);
    dst->place = !di->dst_global  ? MB_AT_DST
                 : di->src_global ? MB_AT_RANK2
                                  : MB_AT_RANK1;
    dst->mem = di->dst_global ? (di->dst_dev ? MB_MEM_DEV : MB_MEM_HOST)
                              : mb_local_mem(dir, di->dst_dev);
}

mb_base_t mb_base_of(mb_dir_t dir)
{
    const mb_dir_info_t *di = &mb_dirs[dir];

    if (mb_opts.wire) {
        /* the raw stream between rank 0 and rank 1, same direction */
        return di->src_global && di->dst_global ? MB_BASE_NONE
               : di->src_global                 ? MB_BASE_TCP_READ
                                                : MB_BASE_TCP_WRITE;
    }
    if (!di->src_dev && !di->dst_dev) {
        return MB_BASE_MEMCPY;
    }
    return !di->src_dev ? MB_BASE_H2D : di->dst_dev ? MB_BASE_D2D : MB_BASE_D2H;
}

/* The ends of a baseline between local memory of the same kinds as the
 * sides of dir: the local layout into the remote layout. */
static void mb_base_ends(mb_dir_t dir, mb_end_t *src, mb_end_t *dst)
{
    src->place = MB_AT_SRC;
    src->mem = mb_local_mem(dir, mb_dirs[dir].src_dev);
    dst->place = MB_AT_PRIVATE;
    dst->mem = mb_local_mem(dir, mb_dirs[dir].dst_dev);
}

static uint64_t mb_end_addr(const mb_bench_t *b, const mb_end_t *e,
                            mb_layout_t layout, size_t i, uint64_t loc,
                            uint64_t rem)
{
    bool dev = e->mem == MB_MEM_DEV;

    switch (e->place) {
    case MB_AT_SRC:
        return layout == MB_KV ? (uint64_t)(uintptr_t)b->kv[e->mem][i]
                               : (uint64_t)(uintptr_t)(b->src[e->mem] + loc);
    case MB_AT_DST:
        return layout == MB_KV ? (uint64_t)(uintptr_t)b->kv[e->mem][i]
                               : (uint64_t)(uintptr_t)(b->dst[e->mem] + loc);
    case MB_AT_RANK1:
        return b->r1[dev] + rem;
    case MB_AT_RANK2:
        return b->r2[dev] + rem;
    default:
        return (uint64_t)(uintptr_t)(b->dst[e->mem] + rem);
    }
}

/* The bytes of the piece list of (layout, size). */
static uint64_t mb_total(mb_layout_t layout, uint64_t size)
{
    return layout == MB_KV      ? MB_KV_TOTAL
           : layout == MB_BATCH ? size / mb_opts.pieces * mb_opts.pieces
                                : size;
}

/*
 * Builds the piece list of one configuration from src to dst.  The "local"
 * layout is the private buffer of its memory or, for the KV layout, the
 * separate buffers kv[mem][i]; the "remote" layout is contiguous (batch
 * pieces in reverse order, so a batch is not one big memcpy).
 */
static size_t mb_build(mb_bench_t *b, mb_layout_t layout, uint64_t size,
                       const mb_end_t *src, const mb_end_t *dst,
                       uint64_t *total_p)
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
        uint64_t sz = layout == MB_KV ? mb_kv_size(i) : psize;

        if (layout == MB_KV) {
            loc = 0;
            rem = off;
        } else {
            loc = i * psize;
            rem = layout == MB_BATCH ? (count - 1 - i) * psize : 0;
        }
        b->pieces[i].src = mb_end_addr(b, src, layout, i, loc, rem);
        b->pieces[i].dst = mb_end_addr(b, dst, layout, i, loc, rem);
        b->pieces[i].size = sz;
        off += sz;
    }
    *total_p = off;
    return count;
}

/* The bytes between two slots of an end: the largest KV piece where the
 * KV layout lies in separate buffers, else the list's stride. */
static uint64_t mb_end_stride(mb_layout_t layout, const mb_end_t *e,
                              uint64_t total)
{
    bool local = e->place == MB_AT_SRC || e->place == MB_AT_DST;

    return layout == MB_KV && local ? MB_KV_BIG : mb_slot_stride(total);
}

/* The TRANS instance of rank r. */
#define MB_TRANS_ID "mf-bench-%u"

/* The pieces as TRANS transfers with rank 1: LH2GH writes, GH2LH reads
 * (its segment's GVAs are its own addresses, where it registered it). */
static mf_status_t mb_trans_copy(mb_bench_t *b, mb_layout_t layout,
                                 mf_copy_dir_t dir,
                                 const mf_copy_piece_t *pieces, size_t count,
                                 mf_status_t *results)
{
    bool write = dir == MF_COPY_LH2GH;
    char peer[32];

    snprintf(peer, sizeof(peer), MB_TRANS_ID, 1u);
    if (layout == MB_SINGLE) {
        return write ? mf_trans_write(b->trans, peer,
                                      (const void *)(uintptr_t)pieces[0].src,
                                      pieces[0].dst, pieces[0].size)
                     : mf_trans_read(b->trans, peer,
                                     (void *)(uintptr_t)pieces[0].dst,
                                     pieces[0].src, pieces[0].size);
    }
    for (size_t i = 0; i < count; i++) {
        b->tpieces[i].local =
            (void *)(uintptr_t)(write ? pieces[i].src : pieces[i].dst);
        b->tpieces[i].remote = write ? pieces[i].dst : pieces[i].src;
        b->tpieces[i].size = pieces[i].size;
    }
    return mf_trans_batch(b->trans, peer,
                          write ? MF_TRANS_WRITE : MF_TRANS_READ, b->tpieces,
                          count, results);
}

static int mb_copy(mb_bench_t *b, mb_layout_t layout, mf_copy_dir_t dir,
                   const mf_copy_piece_t *pieces, size_t count,
                   mf_status_t *results)
{
    mf_status_t st;

    if (b->trans != NULL) {
        st = mb_trans_copy(b, layout, dir, pieces, count, results);
    } else if (layout == MB_SINGLE) {
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

/* Fills size bytes at addr, an end of kind e, with the pattern: host
 * memory directly, device and remote memory through the stage buffer
 * (the driver's copy, or the library's from local host memory). */
static int mb_fill(mb_bench_t *b, const mb_end_t *e, uint64_t addr,
                   uint64_t size, uint64_t seed, uint64_t base)
{
    uint64_t done, n;
    mf_status_t st;

    if (!mb_end_global(e) && e->mem != MB_MEM_DEV) {
        tk_pattern_fill((uint8_t *)(uintptr_t)addr, size, seed, base);
        return 0;
    }
    for (done = 0; done < size; done += n) {
        n = size - done < MB_STAGE ? size - done : MB_STAGE;
        tk_pattern_fill(b->stage, n, seed, base + done);
        if (!mb_end_global(e)) {
            if (tk_cuda_copy((void *)(uintptr_t)(addr + done), b->stage, n) !=
                0) {
                bench_err("filling device memory at 0x%" PRIx64 " failed",
                          addr);
                return -1;
            }
            continue;
        }
        st = mf_bm_copy(b->bm, (uint64_t)(uintptr_t)b->stage, addr + done, n,
                        e->mem == MB_MEM_DEV ? MF_COPY_LH2GD : MF_COPY_LH2GH);
        if (st != MF_OK) {
            bench_err("filling 0x%" PRIx64 ": %s", addr, mf_status_str(st));
            return -1;
        }
    }
    return 0;
}

/* Zeroes local memory (device memory through the driver); remote memory
 * is left as it is (filled with an older pattern). */
static int mb_clear(const mb_end_t *e, uint64_t addr, uint64_t size)
{
    if (mb_end_global(e)) {
        return 0;
    }
    if (e->mem != MB_MEM_DEV) {
        memset((void *)(uintptr_t)addr, 0, size);
        return 0;
    }
    return tk_cuda_memset((void *)(uintptr_t)addr, 0, size);
}

/* Checks size bytes at addr, an end of kind e, against the pattern: host
 * memory directly, device and remote memory read back through the stage
 * buffer.  *bad_p: the first wrong byte, or -1. */
static int mb_check(mb_bench_t *b, const mb_end_t *e, uint64_t addr,
                    uint64_t size, uint64_t seed, uint64_t base, ssize_t *bad_p)
{
    uint64_t done, n;
    mf_status_t st;
    ssize_t bad;

    *bad_p = -1;
    if (!mb_end_global(e) && e->mem != MB_MEM_DEV) {
        *bad_p = tk_pattern_check((uint8_t *)(uintptr_t)addr, size, seed, base);
        return 0;
    }
    for (done = 0; done < size; done += n) {
        n = size - done < MB_STAGE ? size - done : MB_STAGE;
        memset(b->stage, 0, n);
        if (!mb_end_global(e)) {
            if (tk_cuda_copy(b->stage, (void *)(uintptr_t)(addr + done), n) !=
                0) {
                bench_err("reading device memory at 0x%" PRIx64 " failed",
                          addr);
                return -1;
            }
        } else {
            st = mf_bm_copy(
                b->bm, addr + done, (uint64_t)(uintptr_t)b->stage, n,
                e->mem == MB_MEM_DEV ? MF_COPY_GD2LH : MF_COPY_GH2LH);
            if (st != MF_OK) {
                bench_err("reading 0x%" PRIx64 " back: %s", addr,
                          mf_status_str(st));
                return -1;
            }
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
    uint64_t seed = ++b->seed, base = 0;
    mb_end_t src, dst;
    size_t i;
    ssize_t bad;

    mb_dir_ends(dir, &src, &dst);
    for (i = 0; i < count; i++) {
        mf_copy_piece_t *pc = &b->pieces[i];

        if (mb_fill(b, &src, pc->src, pc->size, seed, base) != 0 ||
            mb_clear(&dst, pc->dst, pc->size) != 0) {
            return -1;
        }
        base += pc->size;
    }
    for (i = 0; i < count; i++) {
        b->results[i] = MF_ERR_STATE;
    }
    if (mb_copy(b, layout, (mf_copy_dir_t)dir, b->pieces, count, b->results) !=
        0) {
        return -1;
    }
    for (i = 0, base = 0; i < count; i++) {
        mf_copy_piece_t *pc = &b->pieces[i];

        if (layout != MB_SINGLE && b->results[i] != MF_OK) {
            bench_err("verify: piece %zu: %s", i, mf_status_str(b->results[i]));
            return -1;
        }
        if (mb_check(b, &dst, pc->dst, pc->size, seed, base, &bad) != 0) {
            return -1;
        }
        if (bad >= 0) {
            bench_err("WRONG DATA: %s %s copy, piece %zu of %zu (%zu "
                      "bytes): byte %zd differs",
                      mb_dirs[dir].name, mb_layout_names[layout], i, count,
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
    MB_JOB_DRIVER, /* the driver's copy of the pieces, on streams */
    MB_JOB_TCP     /* the raw TCP transfer of total bytes */
} mb_job_kind_t;

typedef struct mb_job {
    mb_job_kind_t kind;
    mb_layout_t layout; /* copy */
    mf_copy_dir_t dir;  /* copy */
    size_t count;       /* copy, memcpy, driver: pieces */
    uint64_t total;     /* memcpy, driver, tcp: bytes */
    unsigned active;    /* memcpy: threads that copy; driver: streams */
    uint32_t op;        /* tcp: BENCH_TCP_WRITE or BENCH_TCP_READ */
    /* copy, memcpy, driver: the slots rotated through, the bytes between
     * two slots at the source and at the destination, the next slot */
    uint64_t slots;
    uint64_t src_stride;
    uint64_t dst_stride;
    uint64_t next;
} mb_job_t;

/* Sets the job's rotation for pieces of layout from src to dst. */
static void mb_job_slots(mb_job_t *job, mb_layout_t layout, const mb_end_t *src,
                         const mb_end_t *dst, uint64_t total)
{
    job->slots = mb_slots(total);
    job->src_stride = mb_end_stride(layout, src, total);
    job->dst_stride = mb_end_stride(layout, dst, total);
    job->next = 0;
}

/* The piece list of the job's next run: slot 0's shifted to the next
 * slot. */
static const mf_copy_piece_t *mb_job_pieces(mb_bench_t *b, mb_job_t *job)
{
    uint64_t k = job->next;
    size_t i;

    if (job->slots <= 1) {
        return b->pieces;
    }
    job->next = k + 1 == job->slots ? 0 : k + 1;
    for (i = 0; i < job->count; i++) {
        b->rot[i].src = b->pieces[i].src + k * job->src_stride;
        b->rot[i].dst = b->pieces[i].dst + k * job->dst_stride;
        b->rot[i].size = b->pieces[i].size;
    }
    return b->rot;
}

/*
 * The driver's baseline: the bytes of the pieces split evenly over
 * `active` streams (as the memcpy baseline splits them over threads),
 * every share queued, then a wait for each stream: the fastest way to have
 * the driver copy a list of pieces with as many streams as the library
 * has copying threads.
 */
static int mb_driver_run(mb_bench_t *b, const mf_copy_piece_t *pieces,
                         size_t count, uint64_t total, unsigned active)
{
    uint64_t pos, begin, end, lo, hi;
    unsigned s;
    size_t i;
    int ret = 0;

    for (s = 0; s < active && ret == 0; s++) {
        begin = total * s / active;
        end = total * (s + 1) / active;
        for (i = 0, pos = 0; i < count && pos < end && ret == 0; i++) {
            const mf_copy_piece_t *pc = &pieces[i];

            lo = pos > begin ? pos : begin;
            hi = pos + pc->size < end ? pos + pc->size : end;
            if (lo < hi) {
                ret = tk_cuda_copy_async(
                    b->streams[s], (void *)(uintptr_t)(pc->dst + (lo - pos)),
                    (const void *)(uintptr_t)(pc->src + (lo - pos)), hi - lo);
            }
            pos += pc->size;
        }
    }
    for (s = 0; s < active; s++) {
        if (tk_cuda_stream_sync(b->streams[s]) != 0) {
            ret = -1;
        }
    }
    return ret;
}

static int mb_job_run(mb_bench_t *b, mb_job_t *job)
{
    switch (job->kind) {
    case MB_JOB_COPY:
        return mb_copy(b, job->layout, job->dir, mb_job_pieces(b, job),
                       job->count, NULL);
    case MB_JOB_MEMCPY:
        bench_mcpy_run(&b->mcpy, mb_job_pieces(b, job), job->count, job->total,
                       job->active);
        return 0;
    case MB_JOB_DRIVER:
        return mb_driver_run(b, mb_job_pieces(b, job), job->count, job->total,
                             job->active);
    default:
        return bench_tcp_client_run(&b->tcpb, job->op,
                                    job->op == BENCH_TCP_WRITE
                                        ? b->src[MB_MEM_HOST]
                                        : b->dst[MB_MEM_HOST],
                                    job->total);
    }
}

/* Runs the job reps times; *t0_p and *t1_p get the clock around them. */
static int mb_job_repeat(mb_bench_t *b, mb_job_t *job, uint64_t reps,
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
static double mb_measure(mb_bench_t *b, mb_job_t *job, uint64_t bytes,
                         unsigned *samples_p)
{
    static double rates[MB_MAX_SAMPLES];
    uint64_t t0, t1, start, reps = 1;
    unsigned n = 0;

    /* warm-up: one turn through every slot, so that no timed copy is the
     * first to touch its pages (a segment's pages are faulted in by the
     * first write) */
    for (uint64_t k = 0; k < (job->slots > 1 ? job->slots : 1); k++) {
        if (mb_job_run(b, job) != 0) {
            return -1;
        }
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

/* Measures the baseline of dir for (layout, size): GB/s, 0 for none, or
 * a negative value on failure. */
static double mb_baseline(mb_bench_t *b, mb_layout_t layout, uint64_t size,
                          mb_dir_t dir)
{
    mb_base_t kind = mb_base_of(dir);
    mb_end_t src, dst;
    mb_job_t job;
    uint64_t total;
    unsigned samples;
    double gbps;

    memset(&job, 0, sizeof(job));
    switch (kind) {
    case MB_BASE_NONE:
        return 0; /* no raw stream between two other processes */
    case MB_BASE_TCP_WRITE:
    case MB_BASE_TCP_READ:
        /* the raw stream in the same direction, same bytes */
        job.kind = MB_JOB_TCP;
        job.op = kind == MB_BASE_TCP_READ ? BENCH_TCP_READ : BENCH_TCP_WRITE;
        job.total = mb_total(layout, size);
        return mb_measure(b, &job, job.total, &samples);
    default:
        break;
    }
    mb_base_ends(dir, &src, &dst);
    job.count = mb_build(b, layout, size, &src, &dst, &total);
    job.total = total;
    mb_job_slots(&job, layout, &src, &dst, total);
    job.active = total >= b->split_min ? b->threads : 1;
    if (kind == MB_BASE_MEMCPY) {
        job.kind = MB_JOB_MEMCPY;
        bench_mcpy_hot(&b->mcpy, job.active > 1);
        gbps = mb_measure(b, &job, total, &samples);
        bench_mcpy_hot(&b->mcpy, false);
        return gbps;
    }
    job.kind = MB_JOB_DRIVER;
    return mb_measure(b, &job, total, &samples);
}

/* Measures one (layout, size): every direction, each after its baseline
 * (measured once per kind). */
static int mb_bench_size(mb_bench_t *b, mb_layout_t layout, uint64_t size)
{
    double base[MB_BASES];
    mb_end_t src, dst;
    mb_job_t job;
    mb_record_t rec;
    mb_base_t kind;
    uint64_t total;
    size_t count;
    unsigned samples, d;
    double gbps;

    for (d = 0; d < MB_BASES; d++) {
        base[d] = -1; /* not measured yet */
    }
    for (d = 0; d < MB_DIRS; d++) {
        if (!mb_opts.dirs[d] ||
            (mb_dirs[d].src_global && mb_dirs[d].dst_global && b->world < 3)) {
            continue;
        }
        kind = mb_base_of((mb_dir_t)d);
        if (base[kind] < 0) {
            base[kind] = mb_baseline(b, layout, size, (mb_dir_t)d);
            if (base[kind] < 0) {
                return -1;
            }
        }
        mb_dir_ends((mb_dir_t)d, &src, &dst);
        count = mb_build(b, layout, size, &src, &dst, &total);
        if (mb_verify(b, layout, (mb_dir_t)d, count) != 0) {
            return -1;
        }
        memset(&job, 0, sizeof(job));
        job.kind = MB_JOB_COPY;
        job.layout = layout;
        job.dir = (mf_copy_dir_t)d;
        job.count = count;
        mb_job_slots(&job, layout, &src, &dst, total);
        gbps = mb_measure(b, &job, total, &samples);
        if (gbps < 0) {
            return -1;
        }
        memset(&rec, 0, sizeof(rec));
        rec.type = MB_REC_RESULT;
        rec.world = b->world;
        rec.layout = layout;
        rec.dir = d;
        rec.base = kind;
        rec.size = total;
        rec.pieces = (uint32_t)count;
        rec.threads = b->threads;
        rec.lanes = b->lanes;
        rec.samples = samples;
        rec.span = job.slots * mb_slot_stride(total);
        rec.gbps = gbps;
        rec.base_gbps = base[kind];
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
    /* slots * stride < ws + stride for a list shorter than ws */
    return mb_opts.ws > 0 ? mb_slot_stride(m) + mb_opts.ws : m;
}

/* Which local memory the selected directions need. */
static void mb_mems_needed(bool need[MB_MEMS])
{
    unsigned d;

    need[MB_MEM_HOST] = mb_opts.wire; /* the raw stream's buffers */
    need[MB_MEM_PINNED] = need[MB_MEM_DEV] = mb_opts.device;
    for (d = 0; d < MB_HOST_DIRS; d++) {
        need[MB_MEM_HOST] = need[MB_MEM_HOST] || mb_opts.dirs[d];
    }
}

/* Local memory of one kind, size bytes (NULL logged). */
static uint8_t *mb_mem_alloc(mb_mem_t mem, uint64_t size)
{
    uint8_t *p;

    switch (mem) {
    case MB_MEM_HOST:
        return bench_map(size);
    case MB_MEM_PINNED:
        p = tk_cuda_alloc_host(size);
        break;
    default:
        p = tk_cuda_alloc(size);
        break;
    }
    if (p == NULL) {
        bench_err("cannot allocate %" PRIu64 " bytes of %s memory", size,
                  mem == MB_MEM_PINNED ? "pinned host" : "device");
    }
    return p;
}

static void mb_mem_free(mb_mem_t mem, uint8_t *p, uint64_t size)
{
    if (p == NULL) {
        return;
    }
    switch (mem) {
    case MB_MEM_HOST:
        munmap(p, size);
        break;
    case MB_MEM_PINNED:
        tk_cuda_free_host(p);
        break;
    default:
        tk_cuda_free(p);
        break;
    }
}

int mb_bench_run(mb_bench_t *b, uint64_t max)
{
    bool need[MB_MEMS];
    mb_record_t rec;
    unsigned l, i, m;
    size_t k;

    b->max_pieces =
        mb_opts.pieces > MB_KV_PIECES ? mb_opts.pieces : MB_KV_PIECES;
    b->pieces = calloc(b->max_pieces, sizeof(*b->pieces));
    b->rot = calloc(b->max_pieces, sizeof(*b->rot));
    b->results = calloc(b->max_pieces, sizeof(*b->results));
    b->tpieces = calloc(b->max_pieces, sizeof(*b->tpieces));
    if (b->pieces == NULL || b->rot == NULL || b->results == NULL ||
        b->tpieces == NULL) {
        bench_err("out of memory");
        return -1;
    }
    b->stage = bench_map(MB_STAGE);
    if (b->stage == NULL) {
        return -1;
    }
    mb_mems_needed(need);
    for (m = 0; m < MB_MEMS; m++) {
        if (!need[m]) {
            continue;
        }
        b->src[m] = mb_mem_alloc((mb_mem_t)m, max);
        /* pinned memory: one buffer for both sides */
        b->dst[m] =
            m == MB_MEM_PINNED ? b->src[m] : mb_mem_alloc((mb_mem_t)m, max);
        if (b->src[m] == NULL || b->dst[m] == NULL) {
            return -1;
        }
        for (k = 0; k < MB_KV_PIECES && mb_opts.layouts[MB_KV]; k++) {
            b->kv[m][k] = mb_mem_alloc((mb_mem_t)m, mb_kv_room(k));
            if (b->kv[m][k] == NULL) {
                return -1;
            }
        }
    }
    for (i = 0; i < b->threads && mb_opts.device; i++) {
        b->streams[i] = tk_cuda_stream_create();
        if (b->streams[i] == NULL) {
            return -1;
        }
    }
    if (bench_mcpy_init(&b->mcpy, b->threads) != 0) {
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
    unsigned m;
    size_t k;

    if (b->mcpy.nthreads > 0) {
        bench_mcpy_fini(&b->mcpy);
    }
    if (b->tcpb.n > 0) {
        bench_tcp_client_fini(&b->tcpb);
    }
    for (m = 0; m < MB_MAX_THREADS; m++) {
        if (b->streams[m] != NULL) {
            tk_cuda_stream_destroy(b->streams[m]);
        }
    }
    for (m = 0; m < MB_MEMS; m++) {
        for (k = 0; k < MB_KV_PIECES; k++) {
            mb_mem_free((mb_mem_t)m, b->kv[m][k], mb_kv_room(k));
        }
        if (b->dst[m] != b->src[m]) {
            mb_mem_free((mb_mem_t)m, b->dst[m], max);
        }
        mb_mem_free((mb_mem_t)m, b->src[m], max);
    }
    if (b->stage != NULL) {
        munmap(b->stage, MB_STAGE);
    }
    free(b->pieces);
    free(b->rot);
    free(b->results);
    free(b->tpieces);
}
