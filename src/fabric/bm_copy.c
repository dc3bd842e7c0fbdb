/*
 * The copy engine of BM: address translation, single, batched and
 * asynchronous copies.
 *
 * Hot path: a GVA names its rank by one division; the rank's entry is held
 * by one atomic increment for the duration of the copy, its range checked,
 * and the bytes moved by the entry's transport (for a same-host peer, a
 * memcpy into the mapping).  No allocation, lock, store access or logging
 * above debug level happens per copy; an address outside the joined
 * segments is reported once at warn level, then at debug level.
 *
 * Segments of other hosts (tcp) are not mapped: a copy puts to or gets
 * from them and the copying thread sleeps on a count of completions (a
 * futex) until the transport's threads finish it.  Batch pieces to such
 * segments start together, a window of MF_FABRIC_WINDOW at a time, each
 * holding its segments until it completes.  A copy between two of them
 * (GH2GH) bounces through a local buffer of at most two chunks, reading
 * the next chunk while the previous one is written.  The transport may
 * allocate per request; mapped memory never costs an allocation.
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
#include "fabric/fabric.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MF_FABRIC_ASYNC_CHUNK_MIN (256u * 1024u)
#define MF_FABRIC_ASYNC_CHUNK_MAX (256u * 1024u * 1024u)

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

/* ------------------------------------------------------------ segments */

static inline mf_status_t mf_fabric_seg_acquire(mf_fabric_seg_t *seg)
{
    unsigned state;

    atomic_fetch_add(&seg->readers, 1);
    state = atomic_load(&seg->state);
    if (mf_likely(state == MF_FABRIC_SEG_JOINED)) {
        return MF_OK;
    }
    atomic_fetch_sub(&seg->readers, 1);
    switch (state) {
    case MF_FABRIC_SEG_NONE:
        return MF_ERR_OUT_OF_RANGE;
    case MF_FABRIC_SEG_UNREACHABLE:
        return MF_ERR_UNREACHABLE;
    default:
        return MF_ERR_PEER_LOST;
    }
}

static inline void mf_fabric_seg_release(mf_fabric_seg_t *seg)
{
    if (seg != NULL) {
        atomic_fetch_sub_explicit(&seg->readers, 1, memory_order_release);
    }
}

static __attribute__((noinline, cold)) mf_status_t
mf_fabric_bad_range(mf_bm_t *bm, uint64_t addr, size_t size, mf_status_t status,
                    const char *why)
{
    if (!atomic_exchange(&bm->oor_warned, true)) {
        mf_warn("mf-bm %u: copy of %zu bytes at 0x%" PRIx64 " refused: %s "
                "(%s; later ones are logged at debug level)",
                bm->id, size, addr, why, mf_status_name(status));
    } else {
        mf_debug("mf-bm %u: copy of %zu bytes at 0x%" PRIx64 " refused: %s",
                 bm->id, size, addr, why);
    }
    return status;
}

/*
 * Resolves [addr, addr + size): *seg_p is the held segment, or NULL for
 * local memory outside the window.  global: it must be in a segment.
 */
static inline __attribute__((always_inline)) mf_status_t
mf_fabric_resolve(mf_bm_t *bm, uint64_t addr, size_t size, bool global,
                  mf_fabric_seg_t **seg_p)
{
    mf_fabric_seg_t *seg;
    mf_status_t status;
    uint64_t end = addr + size;

    if (mf_unlikely(end < addr)) {
        return mf_fabric_bad_range(
            bm, addr, size, global ? MF_ERR_OUT_OF_RANGE : MF_ERR_INVALID,
            "the range wraps around");
    }
    if (end <= bm->base || addr >= bm->window_end) {
        if (mf_unlikely(global)) {
            return mf_fabric_bad_range(bm, addr, size, MF_ERR_OUT_OF_RANGE,
                                       "outside the window");
        }
        if (mf_unlikely(addr == 0)) {
            return MF_ERR_INVALID;
        }
        *seg_p = NULL;
        return MF_OK;
    }
    if (mf_unlikely(addr < bm->base)) {
        return mf_fabric_bad_range(bm, addr, size, MF_ERR_OUT_OF_RANGE,
                                   "the range starts before the window");
    }
    seg = &bm->segs[(addr - bm->base) / bm->stride];
    status = mf_fabric_seg_acquire(seg);
    if (mf_unlikely(status != MF_OK)) {
        if (status == MF_ERR_OUT_OF_RANGE) {
            return mf_fabric_bad_range(bm, addr, size, status,
                                       "the rank has not joined");
        }
        mf_debug("mf-bm %u: copy at 0x%" PRIx64 ": %s", bm->id, addr,
                 mf_status_name(status));
        return status;
    }
    if (mf_unlikely(addr - seg->gva + size > seg->size)) {
        mf_fabric_seg_release(seg);
        return mf_fabric_bad_range(bm, addr, size, MF_ERR_OUT_OF_RANGE,
                                   "the range crosses the segment's end");
    }
    *seg_p = seg;
    return MF_OK;
}

static inline bool mf_fabric_in_window(mf_bm_t *bm, uint64_t addr)
{
    return addr >= bm->base && addr < bm->window_end;
}

/* Which sides of dir are global; device directions are unsupported. */
static inline mf_status_t mf_fabric_dir_sides(mf_bm_t *bm, mf_copy_dir_t dir,
                                              uint64_t src, uint64_t dst,
                                              bool *src_g, bool *dst_g)
{
    switch (dir) {
    case MF_COPY_LH2GH:
        *src_g = false;
        *dst_g = true;
        return MF_OK;
    case MF_COPY_GH2LH:
        *src_g = true;
        *dst_g = false;
        return MF_OK;
    case MF_COPY_GH2GH:
        *src_g = true;
        *dst_g = true;
        return MF_OK;
    case MF_COPY_AUTO:
        *src_g = mf_fabric_in_window(bm, src);
        *dst_g = mf_fabric_in_window(bm, dst);
        if (mf_unlikely(!*src_g && !*dst_g)) {
            return mf_fabric_bad_range(bm, dst, 0, MF_ERR_OUT_OF_RANGE,
                                       "AUTO copy without a global address");
        }
        return MF_OK;
    default:
        return (unsigned)dir < MF_COPY_DIR_MAX ? MF_ERR_UNSUPPORTED
                                               : MF_ERR_INVALID;
    }
}

/* ------------------------------------------------------------ transfer */

/*
 * Completions of transports that finish later (tcp): a waiter counts the
 * operations outstanding, each callback takes one off, and the thread that
 * waits sleeps on the count (a futex) instead of spinning, so it leaves the
 * CPU to the transport threads.
 */
typedef struct mf_fabric_waiter {
    atomic_int left;
} mf_fabric_waiter_t;

typedef struct mf_fabric_comp {
    mf_tl_comp_t super;
    mf_fabric_waiter_t *waiter;
    mf_status_t status;
} mf_fabric_comp_t;

static void mf_fabric_comp_cb(mf_tl_comp_t *comp, mf_status_t status)
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

static inline void mf_fabric_comp_init(mf_fabric_comp_t *fc,
                                       mf_fabric_waiter_t *waiter)
{
    fc->super.cb = mf_fabric_comp_cb;
    fc->waiter = waiter;
    fc->status = MF_OK;
}

/* Waits until every operation counted in waiter completed. */
static __attribute__((noinline)) void
mf_fabric_waiter_wait(mf_fabric_waiter_t *waiter, mf_tl_iface_t *iface)
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

/*
 * Starts moving bytes between resolved sides (a NULL segment is local
 * memory).  MF_INPROGRESS: comp completes later through its waiter (whose
 * count the caller raised by one), and *ep_p is the endpoint it runs on.
 * Two segments that are both remote go through mf_fabric_bounce(), which
 * finishes before it returns.
 */
static mf_status_t mf_fabric_bounce(uint64_t src, mf_fabric_seg_t *sseg,
                                    uint64_t dst, mf_fabric_seg_t *dseg,
                                    size_t size);

/* Between memory mapped here (local, or a segment mapped at its GVA): a
 * copy by the memory kind, split across the copy threads when large. */
static inline void mf_fabric_mapped_copy(mf_bm_t *bm, uint64_t dst,
                                         uint64_t src, size_t size)
{
    if (size >= bm->cfg.copy_split_min) {
        mf_workers_memcpy(bm->workers, (void *)(uintptr_t)dst,
                          (const void *)(uintptr_t)src, size);
    } else {
        memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, size);
    }
}

static inline mf_status_t
mf_fabric_xfer_start(mf_bm_t *bm, uint64_t src, mf_fabric_seg_t *sseg,
                     uint64_t dst, mf_fabric_seg_t *dseg, size_t size,
                     mf_fabric_comp_t *comp, mf_tl_ep_t **ep_p)
{
    bool src_mapped = sseg == NULL || sseg->addr != NULL;
    bool dst_mapped = dseg == NULL || dseg->addr != NULL;

    if (src_mapped && dst_mapped) {
        mf_fabric_mapped_copy(bm, dst, src, size);
        return MF_OK;
    }
    if (src_mapped) {
        *ep_p = dseg->ep;
        return mf_tl_put(dseg->ep, (const void *)(uintptr_t)src, dst, size,
                         dseg->rkey, &comp->super);
    }
    if (dst_mapped) {
        *ep_p = sseg->ep;
        return mf_tl_get(sseg->ep, (void *)(uintptr_t)dst, src, size,
                         sseg->rkey, &comp->super);
    }
    return mf_fabric_bounce(src, sseg, dst, dseg, size);
}

/* Moves bytes between resolved sides and waits for them. */
static inline mf_status_t mf_fabric_xfer(mf_bm_t *bm, uint64_t src,
                                         mf_fabric_seg_t *sseg, uint64_t dst,
                                         mf_fabric_seg_t *dseg, size_t size)
{
    mf_fabric_waiter_t waiter;
    mf_fabric_comp_t comp;
    mf_status_t status;
    mf_tl_ep_t *ep = NULL;

    atomic_init(&waiter.left, 1);
    mf_fabric_comp_init(&comp, &waiter);
    status = mf_fabric_xfer_start(bm, src, sseg, dst, dseg, size, &comp, &ep);
    if (mf_unlikely(status == MF_INPROGRESS)) {
        mf_fabric_waiter_wait(&waiter, ep->iface);
        status = comp.status;
    }
    return status;
}

/*
 * Between two remote segments: get a chunk into a bounded local buffer,
 * then put it, while the next chunk is read into the other half of the
 * buffer.  At most 2 x MF_FABRIC_BOUNCE_CHUNK bytes are allocated.
 */
#define MF_FABRIC_BOUNCE_CHUNK (4u << 20)

static __attribute__((noinline)) mf_status_t
mf_fabric_bounce(uint64_t src, mf_fabric_seg_t *sseg, uint64_t dst,
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

/*
 * The segments a run of pieces holds: consecutive pieces in the segment held
 * already cost a range check instead of an atomic increment and decrement
 * on a line every copying thread writes.  A segment that leaves JOINED is
 * let go at the next piece, so an unmap waits for one piece, not a batch.
 */
typedef struct mf_fabric_hold {
    mf_fabric_seg_t *src;
    mf_fabric_seg_t *dst;
} mf_fabric_hold_t;

static inline mf_status_t mf_fabric_resolve_held(mf_bm_t *bm, uint64_t addr,
                                                 size_t size, bool global,
                                                 mf_fabric_seg_t **held_p,
                                                 mf_fabric_seg_t **seg_p)
{
    mf_fabric_seg_t *held = *held_p;
    mf_status_t status;

    if (held != NULL) {
        if (mf_likely(
                addr >= held->gva && size <= held->size &&
                addr - held->gva <= held->size - size &&
                atomic_load_explicit(&held->state, memory_order_relaxed) ==
                    MF_FABRIC_SEG_JOINED)) {
            *seg_p = held;
            return MF_OK;
        }
        mf_fabric_seg_release(held);
        *held_p = NULL;
    }
    status = mf_fabric_resolve(bm, addr, size, global, seg_p);
    if (mf_likely(status == MF_OK)) {
        *held_p = *seg_p;
    }
    return status;
}

static inline void mf_fabric_hold_release(mf_fabric_hold_t *hold)
{
    mf_fabric_seg_release(hold->dst);
    mf_fabric_seg_release(hold->src);
}

/*
 * Pieces of a batch in flight on transports that complete later: up to
 * MF_FABRIC_WINDOW of them run at once, then the window drains.  Each holds
 * a reference on its segments of its own, so the run's hold may move on.
 */
#define MF_FABRIC_WINDOW 64

typedef struct mf_fabric_slot {
    mf_fabric_comp_t comp;
    size_t index;
    mf_fabric_seg_t *sseg;
    mf_fabric_seg_t *dseg;
} mf_fabric_slot_t;

typedef struct mf_fabric_window {
    mf_fabric_waiter_t waiter;
    mf_tl_iface_t *iface; /* of the last piece started, for progress */
    unsigned n;
    mf_fabric_slot_t slots[MF_FABRIC_WINDOW];
} mf_fabric_window_t;

static inline void mf_fabric_seg_addref(mf_fabric_seg_t *seg)
{
    if (seg != NULL) {
        atomic_fetch_add_explicit(&seg->readers, 1, memory_order_relaxed);
    }
}

/* Starts a piece in win (or, win NULL, copies it and waits). */
static inline mf_status_t
mf_fabric_piece_xfer(mf_bm_t *bm, uint64_t src, mf_fabric_seg_t *sseg,
                     uint64_t dst, mf_fabric_seg_t *dseg, size_t size,
                     mf_fabric_window_t *win, size_t index)
{
    mf_fabric_slot_t *slot;
    mf_status_t status;
    mf_tl_ep_t *ep = NULL;

    if (win == NULL || ((sseg == NULL || sseg->addr != NULL) &&
                        (dseg == NULL || dseg->addr != NULL))) {
        /* memory mapped here: copied now */
        return mf_fabric_xfer(bm, src, sseg, dst, dseg, size);
    }
    slot = &win->slots[win->n];
    mf_fabric_comp_init(&slot->comp, &win->waiter);
    atomic_fetch_add_explicit(&win->waiter.left, 1, memory_order_relaxed);
    status =
        mf_fabric_xfer_start(bm, src, sseg, dst, dseg, size, &slot->comp, &ep);
    if (status != MF_INPROGRESS) {
        atomic_fetch_sub_explicit(&win->waiter.left, 1, memory_order_relaxed);
        return status;
    }
    slot->index = index;
    slot->sseg = sseg;
    slot->dseg = dseg;
    mf_fabric_seg_addref(sseg);
    mf_fabric_seg_addref(dseg);
    win->iface = ep->iface;
    win->n++;
    return MF_INPROGRESS;
}

/* Validates and copies one piece, holding its segments in hold; with a
 * window, a piece that completes later returns MF_INPROGRESS. */
static inline mf_status_t
mf_fabric_copy_held(mf_bm_t *bm, uint64_t src, uint64_t dst, size_t size,
                    mf_copy_dir_t dir, mf_fabric_hold_t *hold,
                    mf_fabric_window_t *win, size_t index)
{
    mf_fabric_seg_t *sseg = NULL, *dseg = NULL;
    mf_status_t status;
    bool src_g, dst_g;

    status = mf_fabric_dir_sides(bm, dir, src, dst, &src_g, &dst_g);
    if (mf_unlikely(status != MF_OK)) {
        return status;
    }
    if (mf_unlikely(size == 0)) {
        return MF_OK;
    }
    status = mf_fabric_resolve_held(bm, src, size, src_g, &hold->src, &sseg);
    if (mf_unlikely(status != MF_OK)) {
        return status;
    }
    status = mf_fabric_resolve_held(bm, dst, size, dst_g, &hold->dst, &dseg);
    if (mf_unlikely(status != MF_OK)) {
        return status;
    }
    return mf_fabric_piece_xfer(bm, src, sseg, dst, dseg, size, win, index);
}

/* Validates, holds, copies and releases one piece. */
static mf_status_t mf_fabric_copy_one(mf_bm_t *bm, uint64_t src, uint64_t dst,
                                      size_t size, mf_copy_dir_t dir)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_status_t status;

    status = mf_fabric_copy_held(bm, src, dst, size, dir, &hold, NULL, 0);
    mf_fabric_hold_release(&hold);
    return status;
}

MF_API mf_status_t mf_bm_copy(mf_bm_t *bm, uint64_t src, uint64_t dst,
                              size_t size, mf_copy_dir_t dir)
{
    if (mf_unlikely(bm == NULL)) {
        return MF_ERR_INVALID;
    }
    return mf_fabric_copy_one(bm, src, dst, size, dir);
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

/* Copies pieces [first, end), those to remote segments all at once (a
 * window at a time); returns the first error in piece order. */
static mf_status_t
mf_fabric_copy_pieces(mf_bm_t *bm, const mf_copy_piece_t *pieces, size_t first,
                      size_t end, mf_copy_dir_t dir, mf_status_t *results)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_outcome_t out = {MF_OK, SIZE_MAX, results};
    mf_fabric_window_t win;
    mf_status_t piece_status;
    size_t i;

    atomic_init(&win.waiter.left, 0);
    win.iface = NULL;
    win.n = 0;
    for (i = first; i < end; i++) {
        if (win.n == MF_FABRIC_WINDOW) {
            mf_fabric_window_drain(&win, &out);
        }
        piece_status = mf_fabric_copy_held(bm, pieces[i].src, pieces[i].dst,
                                           pieces[i].size, dir, &hold, &win, i);
        if (piece_status != MF_INPROGRESS) {
            mf_fabric_outcome_set(&out, i, piece_status);
        }
    }
    mf_fabric_window_drain(&win, &out);
    mf_fabric_hold_release(&hold);
    return out.status;
}

/* A batch runs on the copy threads as nparts runs of consecutive pieces,
 * a few per thread, so a thread the scheduler stopped holds up little and
 * no piece costs a hand-off of its own. */
#define MF_FABRIC_BATCH_PARTS_EACH 4

static size_t mf_fabric_batch_nparts(mf_bm_t *bm, size_t count)
{
    size_t parts = ((size_t)mf_workers_count(bm->workers) + 1) *
                   MF_FABRIC_BATCH_PARTS_EACH;

    return MF_MAX(MF_MIN(count, parts), 1);
}

/* Pieces [*first_p, *end_p) of part index of nparts over count pieces. */
static inline void mf_fabric_batch_part(size_t count, size_t nparts,
                                        size_t index, size_t *first_p,
                                        size_t *end_p)
{
    size_t each = count / nparts, rest = count % nparts;

    *first_p = index * each + MF_MIN(index, rest);
    *end_p = *first_p + each + (index < rest ? 1 : 0);
}

typedef struct mf_fabric_batch_job {
    mf_job_t job;
    mf_bm_t *bm;
    const mf_copy_piece_t *pieces;
    size_t count;
    mf_copy_dir_t dir;
    mf_status_t *results;
} mf_fabric_batch_job_t;

static mf_status_t mf_fabric_batch_chunk(mf_job_t *job, size_t index)
{
    mf_fabric_batch_job_t *bj = (mf_fabric_batch_job_t *)job;
    size_t first, end;

    mf_fabric_batch_part(bj->count, job->nchunks, index, &first, &end);
    return mf_fabric_copy_pieces(bj->bm, bj->pieces, first, end, bj->dir,
                                 bj->results);
}

static bool mf_fabric_batch_parallel(mf_bm_t *bm, const mf_copy_piece_t *pieces,
                                     size_t count)
{
    uint64_t total = 0;
    size_t i;

    if (count < 2 || mf_workers_count(bm->workers) == 0 ||
        mf_workers_in_worker()) {
        return false;
    }
    for (i = 0; i < count; i++) {
        total += pieces[i].size;
        if (total >= bm->cfg.copy_split_min) {
            return true;
        }
    }
    return false;
}

MF_API mf_status_t mf_bm_copy_batch(mf_bm_t *bm, const mf_copy_piece_t *pieces,
                                    size_t count, mf_copy_dir_t dir,
                                    mf_status_t *results)
{
    mf_fabric_batch_job_t bj;
    mf_status_t status;
    size_t i;

    if (bm == NULL || (pieces == NULL && count > 0)) {
        return MF_ERR_INVALID;
    }
    if (!mf_fabric_batch_parallel(bm, pieces, count)) {
        return mf_fabric_copy_pieces(bm, pieces, 0, count, dir, results);
    }

    bj.job.fn = mf_fabric_batch_chunk;
    bj.job.final_cb = NULL;
    bj.job.nchunks = mf_fabric_batch_nparts(bm, count);
    bj.job.max_helpers = 0;
    bj.bm = bm;
    bj.pieces = pieces;
    bj.count = count;
    bj.dir = dir;
    bj.results = results;
    status = mf_workers_run(bm->workers, &bj.job);
    if (status != MF_OK && results != NULL) {
        /* the first error in piece order, not in time */
        for (i = 0; i < count; i++) {
            if (results[i] != MF_OK) {
                return results[i];
            }
        }
    }
    return status;
}

/* --------------------------------------------------------------- async */

struct mf_bm_req {
    mf_job_t job;
    mf_bm_t *bm;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;            /* under lock */
    atomic_bool released; /* the pool no longer touches req */
    mf_status_t status;
    mf_copy_dir_t dir;
    /* single copy, already resolved and held */
    uint64_t src;
    uint64_t dst;
    size_t size;
    size_t chunk;
    mf_fabric_seg_t *sseg;
    mf_fabric_seg_t *dseg;
    /* batch */
    mf_copy_piece_t *pieces;
    size_t count;
};

static mf_status_t mf_fabric_req_chunk_single(mf_job_t *job, size_t index)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;
    size_t off = index * req->chunk;

    return mf_fabric_xfer(req->bm, req->src + off, req->sseg, req->dst + off,
                          req->dseg, MF_MIN(req->chunk, req->size - off));
}

static mf_status_t mf_fabric_req_chunk_batch(mf_job_t *job, size_t index)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;
    size_t first, end;

    mf_fabric_batch_part(req->count, job->nchunks, index, &first, &end);
    return mf_fabric_copy_pieces(req->bm, req->pieces, first, end, req->dir,
                                 NULL);
}

static void mf_fabric_req_final(mf_job_t *job)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;

    mf_fabric_seg_release(req->sseg);
    mf_fabric_seg_release(req->dseg);
    pthread_mutex_lock(&req->lock);
    req->status = mf_job_status(job);
    req->done = true;
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
    atomic_store_explicit(&req->released, true, memory_order_release);
}

static mf_bm_req_t *mf_fabric_req_new(mf_bm_t *bm, mf_copy_dir_t dir)
{
    mf_bm_req_t *req = calloc(1, sizeof(*req));

    if (req == NULL) {
        mf_error("mf-bm: cannot allocate a copy request");
        return NULL;
    }
    req->bm = bm;
    req->dir = dir;
    pthread_mutex_init(&req->lock, NULL);
    pthread_cond_init(&req->cond, NULL);
    atomic_init(&req->released, false);
    req->job.final_cb = mf_fabric_req_final;
    req->job.max_helpers = 0;
    return req;
}

static void mf_fabric_req_free(mf_bm_req_t *req)
{
    pthread_cond_destroy(&req->cond);
    pthread_mutex_destroy(&req->lock);
    free(req->pieces);
    free(req);
}

/* Runs req on the copy threads, or here when there are none. */
static void mf_fabric_req_start(mf_bm_req_t *req)
{
    mf_workers_t *workers = req->bm->workers;

    if (mf_workers_count(workers) == 0 || mf_workers_in_worker()) {
        (void)mf_workers_run(NULL, &req->job);
        mf_fabric_req_final(&req->job);
    } else {
        mf_workers_submit(workers, &req->job);
    }
}

MF_API mf_status_t mf_bm_copy_async(mf_bm_t *bm, uint64_t src, uint64_t dst,
                                    size_t size, mf_copy_dir_t dir,
                                    mf_bm_req_t **req_p)
{
    mf_fabric_seg_t *sseg = NULL, *dseg = NULL;
    uint32_t nthreads;
    mf_status_t status;
    bool src_g, dst_g;
    mf_bm_req_t *req;

    if (bm == NULL || req_p == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_fabric_dir_sides(bm, dir, src, dst, &src_g, &dst_g);
    if (status != MF_OK) {
        return status;
    }
    if (size > 0) {
        status = mf_fabric_resolve(bm, src, size, src_g, &sseg);
        if (status != MF_OK) {
            goto err;
        }
        status = mf_fabric_resolve(bm, dst, size, dst_g, &dseg);
        if (status != MF_OK) {
            goto err_release_src;
        }
    }
    req = mf_fabric_req_new(bm, dir);
    if (req == NULL) {
        status = MF_ERR_NOMEM;
        goto err_release_dst;
    }
    req->src = src;
    req->dst = dst;
    req->size = size;
    req->sseg = sseg;
    req->dseg = dseg;
    nthreads = mf_workers_count(bm->workers);
    if (size >= bm->cfg.copy_split_min && nthreads > 0) {
        req->chunk =
            MF_MIN(MF_MAX(size / (4u * nthreads), MF_FABRIC_ASYNC_CHUNK_MIN),
                   MF_FABRIC_ASYNC_CHUNK_MAX);
        req->chunk = MF_ALIGN_UP(req->chunk, 4096);
    } else {
        req->chunk = MF_MAX(size, 1);
    }
    req->job.fn = mf_fabric_req_chunk_single;
    req->job.nchunks = (size + req->chunk - 1) / req->chunk;
    mf_fabric_req_start(req);
    *req_p = req;
    return MF_OK;

err_release_dst:
    mf_fabric_seg_release(dseg);
err_release_src:
    mf_fabric_seg_release(sseg);
err:
    return status;
}

MF_API mf_status_t mf_bm_copy_batch_async(mf_bm_t *bm,
                                          const mf_copy_piece_t *pieces,
                                          size_t count, mf_copy_dir_t dir,
                                          mf_bm_req_t **req_p)
{
    mf_bm_req_t *req;

    if (bm == NULL || req_p == NULL || (pieces == NULL && count > 0) ||
        count > SIZE_MAX / sizeof(*pieces)) {
        return MF_ERR_INVALID;
    }
    if ((unsigned)dir >= MF_COPY_DIR_MAX) {
        return MF_ERR_INVALID;
    }
    req = mf_fabric_req_new(bm, dir);
    if (req == NULL) {
        return MF_ERR_NOMEM;
    }
    if (count > 0) {
        req->pieces = malloc(count * sizeof(*pieces));
        if (req->pieces == NULL) {
            mf_error("mf-bm: cannot copy %zu batch pieces", count);
            mf_fabric_req_free(req);
            return MF_ERR_NOMEM;
        }
        memcpy(req->pieces, pieces, count * sizeof(*pieces));
    }
    req->count = count;
    req->job.fn = mf_fabric_req_chunk_batch;
    req->job.nchunks = count > 0 ? mf_fabric_batch_nparts(bm, count) : 0;
    mf_fabric_req_start(req);
    *req_p = req;
    return MF_OK;
}

MF_API mf_status_t mf_bm_wait(mf_bm_req_t *req, int timeout_ms)
{
    struct timespec deadline;
    mf_status_t status;
    int ret = 0;

    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    if (timeout_ms >= 0) {
        mf_deadline_after_ms(&deadline, (uint64_t)timeout_ms);
    }
    /* rather than sleep, take the chunks nobody took yet */
    if (timeout_ms != 0) {
        mf_workers_help(req->bm->workers, &req->job);
    }
    pthread_mutex_lock(&req->lock);
    while (!req->done && ret != ETIMEDOUT) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&req->cond, &req->lock);
        } else {
            ret = pthread_cond_timedwait(&req->cond, &req->lock, &deadline);
        }
    }
    if (!req->done) {
        pthread_mutex_unlock(&req->lock);
        return MF_ERR_TIMEOUT;
    }
    status = req->status;
    pthread_mutex_unlock(&req->lock);
    while (!atomic_load_explicit(&req->released, memory_order_acquire)) {
        sched_yield();
    }
    mf_fabric_req_free(req);
    return status;
}

MF_API mf_status_t mf_bm_test(mf_bm_req_t *req)
{
    mf_status_t status;

    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    if (!atomic_load_explicit(&req->released, memory_order_acquire)) {
        return MF_INPROGRESS;
    }
    status = req->status;
    mf_fabric_req_free(req);
    return status;
}
