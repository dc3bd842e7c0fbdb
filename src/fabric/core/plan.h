/*
 * The copy engine's hot path, shared by its files (copy.c: single and
 * batched copies; copy_async.c: requests): translation of a GVA to its
 * held segment, the sides a direction names, copy plans and their
 * dispatch, holds kept across the pieces of a run, windows of pieces in
 * flight on transports.  Private to src/fabric/core.
 */
#ifndef MF_FABRIC_CORE_PLAN_H
#define MF_FABRIC_CORE_PLAN_H

#include "fabric/core/core.h"
#include "fabric/core/waiter.h"

#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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
mf_fabric_bad_range(mf_fabric_pool_t *pool, uint64_t addr, size_t size,
                    mf_status_t status, const char *why)
{
    if (!atomic_exchange(&pool->oor_warned, true)) {
        mf_warn("mf-bm %u: copy of %zu bytes at 0x%" PRIx64 " refused: %s "
                "(%s; later ones are logged at debug level)",
                pool->id, size, addr, why, mf_status_name(status));
    } else {
        mf_debug("mf-bm %u: copy of %zu bytes at 0x%" PRIx64 " refused: %s",
                 pool->id, size, addr, why);
    }
    return status;
}

/* Holds seg for [addr, addr + size), which lies in its window slot. */
static inline __attribute__((always_inline)) mf_status_t
mf_fabric_resolve_in(mf_fabric_pool_t *pool, mf_fabric_seg_t *seg,
                     uint64_t addr, size_t size, mf_fabric_seg_t **seg_p)
{
    mf_status_t status = mf_fabric_seg_acquire(seg);

    if (mf_unlikely(status != MF_OK)) {
        if (status == MF_ERR_OUT_OF_RANGE) {
            return mf_fabric_bad_range(pool, addr, size, status,
                                       "the rank has not joined");
        }
        mf_debug("mf-bm %u: copy at 0x%" PRIx64 ": %s", pool->id, addr,
                 mf_status_name(status));
        return status;
    }
    if (mf_unlikely(addr - seg->gva + size > seg->size)) {
        mf_fabric_seg_release(seg);
        return mf_fabric_bad_range(pool, addr, size, MF_ERR_OUT_OF_RANGE,
                                   "the range crosses the segment's end");
    }
    *seg_p = seg;
    return MF_OK;
}

/* [addr, addr + size) meets the device window: it must lie in it. */
static __attribute__((noinline)) mf_status_t
mf_fabric_resolve_dev(mf_fabric_pool_t *pool, uint64_t addr, size_t size,
                      mf_fabric_seg_t **seg_p)
{
    mf_fabric_dev_t *dev = &pool->dev;

    if (mf_unlikely(addr < dev->base)) {
        return mf_fabric_bad_range(pool, addr, size, MF_ERR_OUT_OF_RANGE,
                                   "the range starts before the device "
                                   "window");
    }
    return mf_fabric_resolve_in(
        pool, &dev->segs[(addr - dev->base) / dev->stride], addr, size, seg_p);
}

/*
 * Resolves [addr, addr + size): *seg_p is the held segment (of the host or
 * the device window), or NULL for local memory outside the windows.
 * global: it must be in a segment.
 */
static inline __attribute__((always_inline)) mf_status_t
mf_fabric_resolve(mf_fabric_pool_t *pool, uint64_t addr, size_t size,
                  bool global, mf_fabric_seg_t **seg_p)
{
    mf_fabric_seg_t *seg;
    uint64_t end = addr + size;

    if (mf_unlikely(end < addr)) {
        return mf_fabric_bad_range(
            pool, addr, size, global ? MF_ERR_OUT_OF_RANGE : MF_ERR_INVALID,
            "the range wraps around");
    }
    if (end <= pool->base || addr >= pool->window_end) {
        if (end > pool->dev.base && addr < pool->dev.end) {
            return mf_fabric_resolve_dev(pool, addr, size, seg_p);
        }
        if (mf_unlikely(global)) {
            return mf_fabric_bad_range(pool, addr, size, MF_ERR_OUT_OF_RANGE,
                                       "outside the windows");
        }
        if (mf_unlikely(addr == 0)) {
            return MF_ERR_INVALID;
        }
        *seg_p = NULL;
        return MF_OK;
    }
    if (mf_unlikely(addr < pool->base)) {
        return mf_fabric_bad_range(pool, addr, size, MF_ERR_OUT_OF_RANGE,
                                   "the range starts before the window");
    }
    seg = &pool->segs[(addr - pool->base) / pool->stride];
    return mf_fabric_resolve_in(pool, seg, addr, size, seg_p);
}

static inline bool mf_fabric_in_window(mf_fabric_pool_t *pool, uint64_t addr)
{
    return addr >= pool->base && addr < pool->window_end;
}

static inline bool mf_fabric_in_dev_window(mf_fabric_pool_t *pool,
                                           uint64_t addr)
{
    return addr >= pool->dev.base && addr < pool->dev.end;
}

/* The kind of an AUTO side: its window's, else what its pointer is. */
static inline mf_mem_kind_t mf_fabric_auto_kind(mf_fabric_pool_t *pool,
                                                uint64_t addr, size_t size,
                                                bool *global_p)
{
    if (mf_fabric_in_window(pool, addr)) {
        *global_p = true;
        return MF_MEM_KIND_HOST;
    }
    if (mf_fabric_in_dev_window(pool, addr)) {
        *global_p = true;
        return pool->dev.kind;
    }
    *global_p = false;
    return mf_mem_classify((const void *)(uintptr_t)addr, size);
}

/* ------------------------------------------------------------ transfer */

/* ------------------------------------------------------------ sides */

/* What a direction says of a copy: which sides are global and which
 * memory kind each side is. */
typedef struct mf_fabric_sides {
    bool src_g;
    bool dst_g;
    mf_mem_kind_t src_kind;
    mf_mem_kind_t dst_kind;
} mf_fabric_sides_t;

#define MF_FABRIC_H MF_MEM_KIND_HOST
#define MF_FABRIC_D MF_MEM_KIND_CUDA

static const struct {
    bool src_g, dst_g;
    mf_mem_kind_t src_kind, dst_kind;
} mf_fabric_dir_table[MF_COPY_AUTO] = {
    [MF_COPY_LH2GH] = {false, true, MF_FABRIC_H, MF_FABRIC_H},
    [MF_COPY_GH2LH] = {true, false, MF_FABRIC_H, MF_FABRIC_H},
    [MF_COPY_GH2GH] = {true, true, MF_FABRIC_H, MF_FABRIC_H},
    [MF_COPY_LD2GH] = {false, true, MF_FABRIC_D, MF_FABRIC_H},
    [MF_COPY_GH2LD] = {true, false, MF_FABRIC_H, MF_FABRIC_D},
    [MF_COPY_LH2GD] = {false, true, MF_FABRIC_H, MF_FABRIC_D},
    [MF_COPY_GD2LH] = {true, false, MF_FABRIC_D, MF_FABRIC_H},
    [MF_COPY_LD2GD] = {false, true, MF_FABRIC_D, MF_FABRIC_D},
    [MF_COPY_GD2LD] = {true, false, MF_FABRIC_D, MF_FABRIC_D},
    [MF_COPY_GH2GD] = {true, true, MF_FABRIC_H, MF_FABRIC_D},
    [MF_COPY_GD2GH] = {true, true, MF_FABRIC_D, MF_FABRIC_H},
    [MF_COPY_GD2GD] = {true, true, MF_FABRIC_D, MF_FABRIC_D},
};

/* A side of device memory needs a device kind that works here; without
 * one every device direction is MF_ERR_UNSUPPORTED. */
static __attribute__((noinline, cold)) mf_status_t
mf_fabric_sides_check_kinds(const mf_fabric_sides_t *sides)
{
    mf_status_t status;

    status = mf_mem_kind_ready(sides->src_kind);
    if (status == MF_OK) {
        status = mf_mem_kind_ready(sides->dst_kind);
    }
    return status;
}

/* Decodes dir for a copy of size bytes from src to dst. */
static inline mf_status_t mf_fabric_dir_sides(mf_fabric_pool_t *pool,
                                              mf_copy_dir_t dir, uint64_t src,
                                              uint64_t dst, size_t size,
                                              mf_fabric_sides_t *sides)
{
    if (mf_likely((unsigned)dir < MF_COPY_AUTO)) {
        sides->src_g = mf_fabric_dir_table[dir].src_g;
        sides->dst_g = mf_fabric_dir_table[dir].dst_g;
        sides->src_kind = mf_fabric_dir_table[dir].src_kind;
        sides->dst_kind = mf_fabric_dir_table[dir].dst_kind;
    } else if (dir == MF_COPY_AUTO) {
        /* global sides are what their window holds; local ones what their
         * pointer is */
        sides->src_kind = mf_fabric_auto_kind(pool, src, size, &sides->src_g);
        sides->dst_kind = mf_fabric_auto_kind(pool, dst, size, &sides->dst_g);
        if (mf_unlikely(!sides->src_g && !sides->dst_g)) {
            return mf_fabric_bad_range(pool, dst, size, MF_ERR_OUT_OF_RANGE,
                                       "AUTO copy without a global address");
        }
    } else {
        return MF_ERR_INVALID;
    }
    if (mf_unlikely(sides->src_kind != MF_MEM_KIND_HOST ||
                    sides->dst_kind != MF_MEM_KIND_HOST)) {
        return mf_fabric_sides_check_kinds(sides);
    }
    return MF_OK;
}

/* ------------------------------------------------------------ plans */

/*
 * A copy plan: how one resolved piece moves, decided once.  MAPPED: both
 * sides are memory mapped here and the memory kind copies them (host: a
 * memcpy, split across the copy threads when large).  PUT/GET: one side is
 * a segment no mapping reaches and its transport moves the bytes from or
 * into the other side.  BOUNCE: both sides are such segments.
 */
typedef enum mf_fabric_op {
    MF_FABRIC_OP_NONE = 0, /* nothing to move (0 bytes) */
    MF_FABRIC_OP_MAPPED,
    MF_FABRIC_OP_PUT,
    MF_FABRIC_OP_GET,
    MF_FABRIC_OP_BOUNCE,
} mf_fabric_op_t;

typedef struct mf_fabric_plan {
    mf_fabric_op_t op;
    mf_mem_kind_t kind;     /* MAPPED: whose copy moves the bytes */
    mf_mem_kind_t src_kind; /* of each side */
    mf_mem_kind_t dst_kind;
    mf_fabric_seg_t *sseg; /* held by the caller; NULL: local memory */
    mf_fabric_seg_t *dseg;
} mf_fabric_plan_t;

static __attribute__((noinline, cold)) mf_status_t
mf_fabric_kind_mismatch(mf_fabric_pool_t *pool, const mf_fabric_sides_t *sides,
                        const mf_fabric_seg_t *sseg,
                        const mf_fabric_seg_t *dseg, size_t size)
{
    bool src = sseg != NULL && sseg->kind != sides->src_kind;
    const mf_fabric_seg_t *seg = src ? sseg : dseg;
    char why[160];

    snprintf(why, sizeof(why),
             "the direction names %s memory for its %s, the address is in "
             "the window of %s memory",
             mf_mem_ops_get(src ? sides->src_kind : sides->dst_kind)->name,
             src ? "source" : "destination", mf_mem_ops_get(seg->kind)->name);
    return mf_fabric_bad_range(pool, seg->gva, size, MF_ERR_INVALID, why);
}

static __attribute__((noinline, cold)) mf_status_t
mf_fabric_kind_unmoved(mf_fabric_pool_t *pool, const mf_fabric_plan_t *plan,
                       mf_mem_kind_t src_kind, mf_mem_kind_t dst_kind,
                       size_t size)
{
    const mf_fabric_seg_t *remote =
        plan->op == MF_FABRIC_OP_PUT ? plan->dseg : plan->sseg;

    mf_debug("mf-bm %u: %s -> %s copy with a segment of another host", pool->id,
             mf_mem_ops_get(src_kind)->name, mf_mem_ops_get(dst_kind)->name);
    return mf_fabric_bad_range(pool, remote->gva, size, MF_ERR_UNSUPPORTED,
                               "no transport to that host moves device "
                               "memory yet");
}

static inline bool mf_fabric_seg_mapped(const mf_fabric_seg_t *seg)
{
    return seg == NULL || seg->addr != NULL;
}

static inline mf_status_t
mf_fabric_plan_make(mf_fabric_pool_t *pool, const mf_fabric_sides_t *sides,
                    mf_fabric_seg_t *sseg, mf_fabric_seg_t *dseg, size_t size,
                    mf_fabric_plan_t *plan)
{
    bool src_mapped = mf_fabric_seg_mapped(sseg);
    bool dst_mapped = mf_fabric_seg_mapped(dseg);
    mf_mem_kind_t src_kind = sseg != NULL ? sseg->kind : sides->src_kind;
    mf_mem_kind_t dst_kind = dseg != NULL ? dseg->kind : sides->dst_kind;
    const mf_tl_caps_t *caps;
    mf_mem_kind_t local_kind, remote_kind;

    /* a direction names the kind of a global side: its window must hold
     * that kind */
    if (mf_unlikely(src_kind != sides->src_kind ||
                    dst_kind != sides->dst_kind)) {
        return mf_fabric_kind_mismatch(pool, sides, sseg, dseg, size);
    }
    plan->sseg = sseg;
    plan->dseg = dseg;
    plan->kind = src_kind != MF_MEM_KIND_HOST ? src_kind : dst_kind;
    plan->src_kind = src_kind;
    plan->dst_kind = dst_kind;
    if (mf_likely(src_mapped && dst_mapped)) {
        plan->op = MF_FABRIC_OP_MAPPED;
        return MF_OK;
    }
    if (src_mapped) {
        plan->op = MF_FABRIC_OP_PUT;
        caps = &pool->tl_caps[dseg->tl];
        local_kind = src_kind;
        remote_kind = dst_kind;
    } else if (dst_mapped) {
        plan->op = MF_FABRIC_OP_GET;
        caps = &pool->tl_caps[sseg->tl];
        local_kind = dst_kind;
        remote_kind = src_kind;
    } else {
        plan->op = MF_FABRIC_OP_BOUNCE;
        return MF_OK;
    }
    /* the transport must reach the remote kind and move the local one */
    if (mf_unlikely(!(caps->mem_kinds & MF_TL_MEM_KIND(remote_kind)) ||
                    !(caps->local_kinds & MF_TL_MEM_KIND(local_kind)))) {
        return mf_fabric_kind_unmoved(pool, plan, src_kind, dst_kind, size);
    }
    return MF_OK;
}

/* Between memory mapped here: a copy by the memory kind, split across the
 * copy threads when large. */
static inline mf_status_t mf_fabric_mapped_copy(mf_fabric_pool_t *pool,
                                                mf_mem_kind_t kind,
                                                uint64_t dst, uint64_t src,
                                                size_t size)
{
    if (mf_unlikely(kind != MF_MEM_KIND_HOST)) {
        return mf_mem_ops_get(kind)->copy((void *)(uintptr_t)dst,
                                          (const void *)(uintptr_t)src, size);
    }
    if (size >= pool->cfg.copy_split_min) {
        mf_workers_memcpy(pool->workers, (void *)(uintptr_t)dst,
                          (const void *)(uintptr_t)src, size);
    } else {
        memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, size);
    }
    return MF_OK;
}

/* A device copy to or from a mapped host segment: the segment pinned for
 * the device's DMA first (once), so the copy runs at link speed. */
static inline void mf_fabric_plan_pin(const mf_fabric_plan_t *plan)
{
    if (mf_unlikely(plan->kind != MF_MEM_KIND_HOST)) {
        if (plan->sseg != NULL && plan->sseg->kind == MF_MEM_KIND_HOST &&
            atomic_load_explicit(&plan->sseg->dma_state,
                                 memory_order_relaxed) == 0) {
            mf_fabric_seg_dma_pin(plan->sseg, plan->kind);
        }
        if (plan->dseg != NULL && plan->dseg->kind == MF_MEM_KIND_HOST &&
            atomic_load_explicit(&plan->dseg->dma_state,
                                 memory_order_relaxed) == 0) {
            mf_fabric_seg_dma_pin(plan->dseg, plan->kind);
        }
    }
}

/* Between two remote segments, through a local buffer (copy.c). */
mf_status_t mf_fabric_bounce(uint64_t src, mf_fabric_seg_t *sseg, uint64_t dst,
                             mf_fabric_seg_t *dseg, size_t size);

/*
 * Starts a planned piece.  MF_INPROGRESS: comp completes later (exactly
 * once, from the transport's thread or progress) and *iface_p is the
 * interface it runs on; else it is done (comp never fires).
 */
static inline mf_status_t mf_fabric_plan_start(mf_fabric_pool_t *pool,
                                               const mf_fabric_plan_t *plan,
                                               uint64_t src, uint64_t dst,
                                               size_t size, mf_tl_comp_t *comp,
                                               mf_tl_iface_t **iface_p)
{
    switch (plan->op) {
    case MF_FABRIC_OP_NONE:
        return MF_OK;
    case MF_FABRIC_OP_MAPPED:
        mf_fabric_plan_pin(plan);
        return mf_fabric_mapped_copy(pool, plan->kind, dst, src, size);
    case MF_FABRIC_OP_PUT:
        *iface_p = plan->dseg->ep->iface;
        comp->mem_kind = plan->src_kind;
        return mf_tl_put(plan->dseg->ep, (const void *)(uintptr_t)src, dst,
                         size, plan->dseg->rkey, comp);
    case MF_FABRIC_OP_GET:
        *iface_p = plan->sseg->ep->iface;
        comp->mem_kind = plan->dst_kind;
        return mf_tl_get(plan->sseg->ep, (void *)(uintptr_t)dst, src, size,
                         plan->sseg->rkey, comp);
    case MF_FABRIC_OP_BOUNCE:
        break;
    }
    return mf_fabric_bounce(src, plan->sseg, dst, plan->dseg, size);
}

/* Runs a planned piece to its end on this thread. */
static inline mf_status_t mf_fabric_plan_run(mf_fabric_pool_t *pool,
                                             const mf_fabric_plan_t *plan,
                                             uint64_t src, uint64_t dst,
                                             size_t size)
{
    mf_fabric_waiter_t waiter;
    mf_fabric_comp_t comp;
    mf_tl_iface_t *iface = NULL;
    mf_status_t status;

    if (mf_likely(plan->op == MF_FABRIC_OP_MAPPED)) {
        mf_fabric_plan_pin(plan);
        return mf_fabric_mapped_copy(pool, plan->kind, dst, src, size);
    }
    if (plan->op == MF_FABRIC_OP_NONE) {
        return MF_OK;
    }
    atomic_init(&waiter.left, 1);
    mf_fabric_comp_init(&comp, &waiter);
    status =
        mf_fabric_plan_start(pool, plan, src, dst, size, &comp.super, &iface);
    if (mf_unlikely(status == MF_INPROGRESS)) {
        mf_fabric_waiter_wait(&waiter, iface);
        status = comp.status;
    }
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

static inline mf_status_t mf_fabric_resolve_held(mf_fabric_pool_t *pool,
                                                 uint64_t addr, size_t size,
                                                 bool global,
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
    status = mf_fabric_resolve(pool, addr, size, global, seg_p);
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
 * Pieces of a batch in flight on transports: a window holds up to
 * MF_FABRIC_WINDOW of them, and a batch keeps two, draining one only when
 * the other is full.  Each piece holds a reference on its segments of its
 * own, so the run's hold may move on.
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

/* Which pieces of a batch a pass copies. */
typedef enum mf_fabric_filter {
    MF_FABRIC_ALL = 0,
    MF_FABRIC_MAPPED_ONLY, /* copy threads: the pieces that cost CPU */
    MF_FABRIC_REMOTE_ONLY, /* the caller: pieces transports move */
} mf_fabric_filter_t;

/* Starts a planned piece in win (a transport's) or copies it now. */
static inline mf_status_t
mf_fabric_piece_start(mf_fabric_pool_t *pool, const mf_fabric_plan_t *plan,
                      uint64_t src, uint64_t dst, size_t size,
                      mf_fabric_window_t *win, size_t index)
{
    mf_fabric_slot_t *slot;
    mf_tl_iface_t *iface = NULL;
    mf_status_t status;

    if (win == NULL ||
        (plan->op != MF_FABRIC_OP_PUT && plan->op != MF_FABRIC_OP_GET)) {
        return mf_fabric_plan_run(pool, plan, src, dst, size);
    }
    slot = &win->slots[win->n];
    mf_fabric_comp_init(&slot->comp, &win->waiter);
    atomic_fetch_add_explicit(&win->waiter.left, 1, memory_order_relaxed);
    status = mf_fabric_plan_start(pool, plan, src, dst, size, &slot->comp.super,
                                  &iface);
    if (status != MF_INPROGRESS) {
        atomic_fetch_sub_explicit(&win->waiter.left, 1, memory_order_relaxed);
        return status;
    }
    slot->index = index;
    slot->sseg = plan->sseg;
    slot->dseg = plan->dseg;
    mf_fabric_seg_addref(plan->sseg);
    mf_fabric_seg_addref(plan->dseg);
    win->iface = iface;
    win->n++;
    return MF_INPROGRESS;
}

/* Not a status: the filter leaves a piece to another pass. */
#define MF_FABRIC_SKIP ((mf_status_t)2)

/* Validates and plans one piece, holding its segments in hold.
 * MF_FABRIC_SKIP: the filter leaves the piece to another pass, which
 * reports what is wrong with it. */
static inline mf_status_t
mf_fabric_piece_plan(mf_fabric_pool_t *pool, uint64_t src, uint64_t dst,
                     size_t size, mf_copy_dir_t dir, mf_fabric_hold_t *hold,
                     mf_fabric_filter_t filter, mf_fabric_plan_t *plan)
{
    mf_fabric_seg_t *sseg = NULL, *dseg = NULL;
    mf_fabric_sides_t sides;
    mf_status_t status;

    status = mf_fabric_dir_sides(pool, dir, src, dst, size, &sides);
    if (mf_unlikely(status != MF_OK)) {
        return filter == MF_FABRIC_MAPPED_ONLY ? MF_FABRIC_SKIP : status;
    }
    if (mf_unlikely(size == 0)) {
        /* succeeds and touches nothing; the direction was checked */
        plan->op = MF_FABRIC_OP_NONE;
        plan->kind = MF_MEM_KIND_HOST;
        plan->src_kind = MF_MEM_KIND_HOST;
        plan->dst_kind = MF_MEM_KIND_HOST;
        plan->sseg = NULL;
        plan->dseg = NULL;
        return filter == MF_FABRIC_MAPPED_ONLY ? MF_FABRIC_SKIP : MF_OK;
    }
    status =
        mf_fabric_resolve_held(pool, src, size, sides.src_g, &hold->src, &sseg);
    if (mf_likely(status == MF_OK)) {
        status = mf_fabric_resolve_held(pool, dst, size, sides.dst_g,
                                        &hold->dst, &dseg);
    }
    if (mf_likely(status == MF_OK)) {
        status = mf_fabric_plan_make(pool, &sides, sseg, dseg, size, plan);
    }
    if (mf_unlikely(status != MF_OK)) {
        /* errors are reported by the pass that owns every other piece */
        return filter == MF_FABRIC_MAPPED_ONLY ? MF_FABRIC_SKIP : status;
    }
    if (filter == MF_FABRIC_MAPPED_ONLY && plan->op != MF_FABRIC_OP_MAPPED) {
        return MF_FABRIC_SKIP;
    }
    if (filter == MF_FABRIC_REMOTE_ONLY && plan->op == MF_FABRIC_OP_MAPPED) {
        return MF_FABRIC_SKIP;
    }
    return MF_OK;
}

/* A batch's mapped pieces run on the copy threads as nparts runs of
 * consecutive pieces, a few per thread, so a thread the scheduler stopped
 * holds up little and no piece costs a hand-off of its own. */
#define MF_FABRIC_BATCH_PARTS_EACH 4

static inline size_t mf_fabric_batch_nparts(mf_fabric_pool_t *pool,
                                            size_t count)
{
    size_t parts = ((size_t)mf_workers_count(pool->workers) + 1) *
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

#endif
