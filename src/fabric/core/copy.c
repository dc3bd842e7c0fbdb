/*
 * The copy engine of BM: address translation, copy plans, single, batched
 * and asynchronous copies.
 *
 * Hot path: a GVA names its rank by one division; the rank's entry is held
 * by one atomic increment for the duration of the copy and its range
 * checked.  Each piece then resolves once into a copy plan (the memory kind
 * of each side, mapped or remote segment): MAPPED pieces (local memory, the
 * own segment, same-host peers mapped at their GVA) are copied by their
 * memory kind (host: memcpy, split across the copy threads when large);
 * PUT/GET pieces go to the transport of the remote segment; BOUNCE pieces
 * (two remote segments) go through a local buffer.  No allocation, lock,
 * store access or logging above debug level happens per copy; an address
 * outside the joined segments is reported once at warn level, then at
 * debug level.
 *
 * Transports complete on their own threads: a synchronous copy sleeps on a
 * count of completions (a futex).  Batch pieces on transports start
 * together, a window of MF_FABRIC_WINDOW at a time, each holding its
 * segments until it completes; in a large batch the copy threads take the
 * mapped pieces meanwhile.  Asynchronous copies on transports complete
 * through the transports' completions alone (no thread waits for them);
 * only mapped pieces and bounces are work for the copy threads.  The
 * transport may allocate per request; mapped memory never costs an
 * allocation.
 *
 * Device memory: a direction or AUTO pointer naming device memory needs a
 * device memory kind that works in this process; without one the copy is
 * MF_ERR_UNSUPPORTED.
 *
 * Edge cases: a copy of 0 bytes succeeds and touches nothing (only its
 * direction is checked); an AUTO copy with no address inside the window is
 * MF_ERR_OUT_OF_RANGE; a range that wraps around the address space is
 * MF_ERR_OUT_OF_RANGE on a global side, MF_ERR_INVALID on a local one.
 *
 * An address the caller calls local (L) is still checked against the
 * window: if it lies in it, it is validated like a global one, so a copy
 * never touches a PROT_NONE reservation or a segment being unmapped.
 */
#include "fabric/core/plan.h"
#include "util/trace.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

static const char *const mf_fabric_dir_names[MF_COPY_DIR_MAX] = {
    [MF_COPY_LH2GH] = "LH2GH", [MF_COPY_GH2LH] = "GH2LH",
    [MF_COPY_GH2GH] = "GH2GH", [MF_COPY_LD2GH] = "LD2GH",
    [MF_COPY_GH2LD] = "GH2LD", [MF_COPY_LH2GD] = "LH2GD",
    [MF_COPY_GD2LH] = "GD2LH", [MF_COPY_LD2GD] = "LD2GD",
    [MF_COPY_GD2LD] = "GD2LD", [MF_COPY_GH2GD] = "GH2GD",
    [MF_COPY_GD2GH] = "GD2GH", [MF_COPY_GD2GD] = "GD2GD",
    [MF_COPY_AUTO] = "AUTO",
};

MF_API const char *mf_copy_dir_name(mf_copy_dir_t dir)
{
    if ((unsigned)dir >= MF_COPY_DIR_MAX) {
        return "UNKNOWN";
    }
    return mf_fabric_dir_names[dir];
}

/* ------------------------------------------------------------ waiting */

void mf_fabric_comp_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    mf_fabric_comp_t *fc = (mf_fabric_comp_t *)comp;
    mf_fabric_waiter_t *waiter = fc->waiter;

    fc->status = status;
    if (atomic_fetch_sub_explicit(&waiter->left, 1, memory_order_acq_rel) ==
        1) {
        /* the waiter may be gone already: a stray wake is harmless */
        syscall(SYS_futex, &waiter->left, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
                NULL, 0);
    }
}

/* Waits until every operation counted in waiter completed. */
void mf_fabric_waiter_wait(mf_fabric_waiter_t *waiter, mf_tl_iface_t *iface)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    int left;

    while ((left = atomic_load_explicit(&waiter->left, memory_order_acquire)) !=
           0) {
        if (iface != NULL && mf_tl_progress(iface) != 0) {
            continue;
        }
        /* returns at once if left changed; the timeout keeps transports
         * that need progress calls moving */
        syscall(SYS_futex, &waiter->left, FUTEX_WAIT_PRIVATE, left, &ts, NULL,
                0);
    }
}

mf_status_t mf_fabric_waiter_wait_for(mf_fabric_waiter_t *waiter,
                                      mf_tl_iface_t *iface, int timeout_ms)
{
    uint64_t deadline = mf_time_ms() + (uint64_t)MF_MAX(timeout_ms, 0);
    int left;

    if (timeout_ms < 0) {
        mf_fabric_waiter_wait(waiter, iface);
        return MF_OK;
    }
    while ((left = atomic_load_explicit(&waiter->left, memory_order_acquire)) !=
           0) {
        uint64_t now = mf_time_ms(), slice;
        struct timespec ts;

        if (iface != NULL && mf_tl_progress(iface) != 0) {
            continue;
        }
        if (now >= deadline) {
            return MF_ERR_TIMEOUT;
        }
        slice = MF_MIN(deadline - now, 10u);
        ts.tv_sec = 0;
        ts.tv_nsec = (long)slice * 1000000L;
        syscall(SYS_futex, &waiter->left, FUTEX_WAIT_PRIVATE, left, &ts, NULL,
                0);
    }
    return MF_OK;
}

/*
 * Between two remote segments: get a chunk into a bounded local buffer,
 * then put it, while the next chunk is read into the other half of the
 * buffer.  At most 2 x MF_FABRIC_BOUNCE_CHUNK bytes are allocated.
 */
#define MF_FABRIC_BOUNCE_CHUNK (4u << 20)

mf_status_t mf_fabric_bounce(uint64_t src, mf_fabric_seg_t *sseg, uint64_t dst,
                             mf_fabric_seg_t *dseg, size_t size)
{
    size_t chunk = MF_MIN(size, MF_FABRIC_BOUNCE_CHUNK), off, len;
    mf_fabric_waiter_t get_w, put_w[2];
    mf_fabric_comp_t get_c, put_c[2];
    mf_status_t status = MF_OK, st;
    bool put_busy[2] = {false, false};
    mf_tl_ep_t *ep;
    uint8_t *buf;
    unsigned k = 0;

    buf = malloc(2 * chunk);
    if (buf == NULL) {
        mf_error("mf-bm: cannot allocate a bounce buffer of %zu bytes",
                 2 * chunk);
        return MF_ERR_NOMEM;
    }
    for (off = 0; off < size && status == MF_OK; off += len, k ^= 1) {
        len = MF_MIN(chunk, size - off);
        if (put_busy[k]) {
            mf_fabric_waiter_wait(&put_w[k], dseg->ep->iface);
            put_busy[k] = false;
            if (put_c[k].status != MF_OK) {
                status = put_c[k].status;
                break;
            }
        }
        atomic_init(&get_w.left, 1);
        mf_fabric_comp_init(&get_c, &get_w);
        st = mf_tl_get(sseg->ep, buf + k * chunk, src + off, len, sseg->rkey,
                       &get_c.super);
        if (st == MF_INPROGRESS) {
            mf_fabric_waiter_wait(&get_w, sseg->ep->iface);
            st = get_c.status;
        }
        if (st != MF_OK) {
            status = st;
            break;
        }
        atomic_init(&put_w[k].left, 1);
        mf_fabric_comp_init(&put_c[k], &put_w[k]);
        ep = dseg->ep;
        st = mf_tl_put(ep, buf + k * chunk, dst + off, len, dseg->rkey,
                       &put_c[k].super);
        if (st == MF_INPROGRESS) {
            put_busy[k] = true;
        } else if (st != MF_OK) {
            status = st;
        }
    }
    for (k = 0; k < 2; k++) {
        if (put_busy[k]) {
            mf_fabric_waiter_wait(&put_w[k], dseg->ep->iface);
            if (put_c[k].status != MF_OK && status == MF_OK) {
                status = put_c[k].status;
            }
        }
    }
    free(buf);
    return status;
}

/* Validates, holds, copies and releases one piece. */
static mf_status_t mf_fabric_copy_one(mf_fabric_pool_t *pool, uint64_t src,
                                      uint64_t dst, size_t size,
                                      mf_copy_dir_t dir)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_plan_t plan;
    mf_status_t status;

    status = mf_fabric_piece_plan(pool, src, dst, size, dir, &hold,
                                  MF_FABRIC_ALL, &plan);
    if (mf_likely(status == MF_OK)) {
        status = mf_fabric_plan_run(pool, &plan, src, dst, size);
    }
    mf_fabric_hold_release(&hold);
    return status;
}

MF_TRACE_POINT(mf_tp_copy, "mf.copy");
MF_TRACE_POINT(mf_tp_copy_batch, "mf.copy_batch");

mf_status_t mf_fabric_copy(mf_fabric_pool_t *pool, uint64_t src, uint64_t dst,
                           size_t size, mf_copy_dir_t dir)
{
    uint64_t t0 = mf_trace_begin();
    mf_status_t status;

    if (mf_unlikely(pool == NULL)) {
        return MF_ERR_INVALID;
    }
    status = mf_fabric_copy_one(pool, src, dst, size, dir);
    mf_trace_end(&mf_tp_copy, t0);
    return status;
}

/* --------------------------------------------------------------- batch */

/* The first error in piece order of a run, and the per-piece results. */
typedef struct mf_fabric_outcome {
    mf_status_t status;
    size_t index;
    mf_status_t *results;
} mf_fabric_outcome_t;

static inline void mf_fabric_outcome_set(mf_fabric_outcome_t *out, size_t i,
                                         mf_status_t status)
{
    if (out->results != NULL) {
        out->results[i] = status;
    }
    if (mf_unlikely(status != MF_OK) && i < out->index) {
        out->index = i;
        out->status = status;
    }
}

/* Waits for the pieces of win and records them. */
static void mf_fabric_window_drain(mf_fabric_window_t *win,
                                   mf_fabric_outcome_t *out)
{
    mf_fabric_slot_t *slot;
    unsigned i;

    if (win->n == 0) {
        return;
    }
    mf_fabric_waiter_wait(&win->waiter, win->iface);
    for (i = 0; i < win->n; i++) {
        slot = &win->slots[i];
        mf_fabric_outcome_set(out, slot->index, slot->comp.status);
        mf_fabric_seg_release(slot->dseg);
        mf_fabric_seg_release(slot->sseg);
    }
    win->n = 0;
}

/* Copies the pieces [first, end) that filter takes, those on transports
 * all at once, in two windows that take turns: while one fills, the
 * pieces of the other are still moving, and it drains only when the
 * filling one is full, so the transports never run dry between windows.
 * Returns the first error in piece order. */
static mf_status_t
mf_fabric_copy_pieces(mf_fabric_pool_t *pool, const mf_copy_piece_t *pieces,
                      size_t first, size_t end, mf_copy_dir_t dir,
                      mf_fabric_filter_t filter, mf_status_t *results)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_outcome_t out = {MF_OK, SIZE_MAX, results};
    mf_fabric_window_t wins[2], *win = &wins[0];
    mf_fabric_plan_t plan;
    mf_status_t st;
    size_t i;

    for (int w = 0; w < 2; w++) {
        atomic_init(&wins[w].waiter.left, 0);
        wins[w].iface = NULL;
        wins[w].n = 0;
    }
    for (i = first; i < end; i++) {
        if (win->n == MF_FABRIC_WINDOW) {
            win = win == &wins[0] ? &wins[1] : &wins[0];
            mf_fabric_window_drain(win, &out);
        }
        st = mf_fabric_piece_plan(pool, pieces[i].src, pieces[i].dst,
                                  pieces[i].size, dir, &hold, filter, &plan);
        if (st == MF_FABRIC_SKIP) {
            continue; /* another pass's piece */
        }
        if (st == MF_OK) {
            st = mf_fabric_piece_start(pool, &plan, pieces[i].src,
                                       pieces[i].dst, pieces[i].size, win, i);
        }
        if (st != MF_INPROGRESS) {
            mf_fabric_outcome_set(&out, i, st);
        }
    }
    mf_fabric_window_drain(&wins[0], &out);
    mf_fabric_window_drain(&wins[1], &out);
    mf_fabric_hold_release(&hold);
    return out.status;
}

/* The mapped pieces of a batch, as a job of the copy threads. */
typedef struct mf_fabric_batch_job {
    mf_job_t job;
    mf_fabric_pool_t *pool;
    const mf_copy_piece_t *pieces;
    size_t count;
    mf_copy_dir_t dir;
    mf_status_t *results;
    mf_fabric_waiter_t done; /* sync batches: 1 until final_cb */
} mf_fabric_batch_job_t;

static mf_status_t mf_fabric_batch_chunk(mf_job_t *job, size_t index)
{
    mf_fabric_batch_job_t *bj = (mf_fabric_batch_job_t *)job;
    size_t first, end;

    mf_fabric_batch_part(bj->count, job->nchunks, index, &first, &end);
    return mf_fabric_copy_pieces(bj->pool, bj->pieces, first, end, bj->dir,
                                 MF_FABRIC_MAPPED_ONLY, bj->results);
}

static void mf_fabric_batch_final(mf_job_t *job)
{
    mf_fabric_batch_job_t *bj = (mf_fabric_batch_job_t *)job;

    if (atomic_fetch_sub_explicit(&bj->done.left, 1, memory_order_acq_rel) ==
        1) {
        syscall(SYS_futex, &bj->done.left, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
                NULL, 0);
    }
}

/* Whether the batch is worth the copy threads (its pieces on transports
 * are skipped by them at the cost of planning, and started by the caller). */
static bool mf_fabric_batch_parallel(mf_fabric_pool_t *pool,
                                     const mf_copy_piece_t *pieces,
                                     size_t count)
{
    uint64_t total = 0;
    size_t i;

    if (count < 2 || mf_workers_count(pool->workers) == 0 ||
        mf_workers_in_worker()) {
        return false;
    }
    for (i = 0; i < count; i++) {
        total += pieces[i].size;
        if (total >= pool->cfg.copy_split_min) {
            return true;
        }
    }
    return false;
}

/* The first error in piece order, from the results when there are some. */
static mf_status_t mf_fabric_first_error(const mf_status_t *results,
                                         size_t count, mf_status_t a,
                                         mf_status_t b)
{
    size_t i;

    if (results != NULL && (a != MF_OK || b != MF_OK)) {
        for (i = 0; i < count; i++) {
            if (results[i] != MF_OK) {
                return results[i];
            }
        }
    }
    return a != MF_OK ? a : b;
}

static mf_status_t mf_fabric_copy_batch_run(mf_fabric_pool_t *pool,
                                            const mf_copy_piece_t *pieces,
                                            size_t count, mf_copy_dir_t dir,
                                            mf_status_t *results);

mf_status_t mf_fabric_copy_batch(mf_fabric_pool_t *pool,
                                 const mf_copy_piece_t *pieces, size_t count,
                                 mf_copy_dir_t dir, mf_status_t *results)
{
    uint64_t t0 = mf_trace_begin();
    mf_status_t status;

    status = mf_fabric_copy_batch_run(pool, pieces, count, dir, results);
    mf_trace_end(&mf_tp_copy_batch, t0);
    return status;
}

static mf_status_t mf_fabric_copy_batch_run(mf_fabric_pool_t *pool,
                                            const mf_copy_piece_t *pieces,
                                            size_t count, mf_copy_dir_t dir,
                                            mf_status_t *results)
{
    mf_fabric_batch_job_t bj;
    mf_status_t remote_status;

    if (pool == NULL || (pieces == NULL && count > 0)) {
        return MF_ERR_INVALID;
    }
    if (!mf_fabric_batch_parallel(pool, pieces, count)) {
        return mf_fabric_copy_pieces(pool, pieces, 0, count, dir, MF_FABRIC_ALL,
                                     results);
    }

    /* The copy threads take the mapped pieces while this thread starts the
     * ones transports move (their own threads do that work), then helps
     * with what is left of the mapped ones. */
    bj.job.fn = mf_fabric_batch_chunk;
    bj.job.final_cb = mf_fabric_batch_final;
    bj.job.nchunks = mf_fabric_batch_nparts(pool, count);
    bj.job.max_helpers = 0;
    bj.pool = pool;
    bj.pieces = pieces;
    bj.count = count;
    bj.dir = dir;
    bj.results = results;
    atomic_init(&bj.done.left, 1);
    mf_workers_submit(pool->workers, &bj.job);
    remote_status = mf_fabric_copy_pieces(pool, pieces, 0, count, dir,
                                          MF_FABRIC_REMOTE_ONLY, results);
    mf_workers_help(pool->workers, &bj.job);
    mf_fabric_waiter_wait(&bj.done, NULL);
    return mf_fabric_first_error(results, count, remote_status,
                                 mf_job_status(&bj.job));
}
