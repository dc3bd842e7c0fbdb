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
static inline mf_status_t mf_fabric_dir_sides(mf_bm_t *bm, mf_copy_dir_t dir,
                                              uint64_t src, uint64_t dst,
                                              size_t size,
                                              mf_fabric_sides_t *sides)
{
    if (mf_likely((unsigned)dir < MF_COPY_AUTO)) {
        sides->src_g = mf_fabric_dir_table[dir].src_g;
        sides->dst_g = mf_fabric_dir_table[dir].dst_g;
        sides->src_kind = mf_fabric_dir_table[dir].src_kind;
        sides->dst_kind = mf_fabric_dir_table[dir].dst_kind;
    } else if (dir == MF_COPY_AUTO) {
        /* global sides are host segments (the only window there is);
         * local ones are what their pointer is */
        sides->src_g = mf_fabric_in_window(bm, src);
        sides->dst_g = mf_fabric_in_window(bm, dst);
        if (mf_unlikely(!sides->src_g && !sides->dst_g)) {
            return mf_fabric_bad_range(bm, dst, 0, MF_ERR_OUT_OF_RANGE,
                                       "AUTO copy without a global address");
        }
        sides->src_kind = sides->src_g
                              ? MF_MEM_KIND_HOST
                              : mf_mem_classify((const void *)src, size);
        sides->dst_kind = sides->dst_g
                              ? MF_MEM_KIND_HOST
                              : mf_mem_classify((const void *)dst, size);
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
    mf_mem_kind_t kind;    /* MAPPED: whose copy moves the bytes */
    mf_fabric_seg_t *sseg; /* held by the caller; NULL: local memory */
    mf_fabric_seg_t *dseg;
} mf_fabric_plan_t;

static inline bool mf_fabric_seg_mapped(const mf_fabric_seg_t *seg)
{
    return seg == NULL || seg->addr != NULL;
}

static inline mf_status_t mf_fabric_plan_make(mf_bm_t *bm,
                                              const mf_fabric_sides_t *sides,
                                              mf_fabric_seg_t *sseg,
                                              mf_fabric_seg_t *dseg,
                                              mf_fabric_plan_t *plan)
{
    bool src_mapped = mf_fabric_seg_mapped(sseg);
    bool dst_mapped = mf_fabric_seg_mapped(dseg);
    const mf_tl_caps_t *caps;

    plan->sseg = sseg;
    plan->dseg = dseg;
    plan->kind =
        sides->src_kind != MF_MEM_KIND_HOST ? sides->src_kind : sides->dst_kind;
    if (mf_likely(src_mapped && dst_mapped)) {
        plan->op = MF_FABRIC_OP_MAPPED;
        return MF_OK;
    }
    if (src_mapped) {
        plan->op = MF_FABRIC_OP_PUT;
        caps = &bm->tl_caps[dseg->tl];
    } else if (dst_mapped) {
        plan->op = MF_FABRIC_OP_GET;
        caps = &bm->tl_caps[sseg->tl];
    } else {
        plan->op = MF_FABRIC_OP_BOUNCE;
        return MF_OK;
    }
    /* the local side's kind must be one the transport moves */
    if (mf_unlikely(!(caps->mem_kinds & MF_TL_MEM_KIND(plan->kind)))) {
        return MF_ERR_UNSUPPORTED;
    }
    return MF_OK;
}

/* Between memory mapped here: a copy by the memory kind, split across the
 * copy threads when large. */
static inline mf_status_t mf_fabric_mapped_copy(mf_bm_t *bm, mf_mem_kind_t kind,
                                                uint64_t dst, uint64_t src,
                                                size_t size)
{
    if (mf_unlikely(kind != MF_MEM_KIND_HOST)) {
        return mf_mem_ops_get(kind)->copy((void *)(uintptr_t)dst,
                                          (const void *)(uintptr_t)src, size);
    }
    if (size >= bm->cfg.copy_split_min) {
        mf_workers_memcpy(bm->workers, (void *)(uintptr_t)dst,
                          (const void *)(uintptr_t)src, size);
    } else {
        memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, size);
    }
    return MF_OK;
}

static mf_status_t mf_fabric_bounce(uint64_t src, mf_fabric_seg_t *sseg,
                                    uint64_t dst, mf_fabric_seg_t *dseg,
                                    size_t size);

/*
 * Starts a planned piece.  MF_INPROGRESS: comp completes later (exactly
 * once, from the transport's thread or progress) and *iface_p is the
 * interface it runs on; else it is done (comp never fires).
 */
static inline mf_status_t mf_fabric_plan_start(mf_bm_t *bm,
                                               const mf_fabric_plan_t *plan,
                                               uint64_t src, uint64_t dst,
                                               size_t size, mf_tl_comp_t *comp,
                                               mf_tl_iface_t **iface_p)
{
    switch (plan->op) {
    case MF_FABRIC_OP_NONE:
        return MF_OK;
    case MF_FABRIC_OP_MAPPED:
        return mf_fabric_mapped_copy(bm, plan->kind, dst, src, size);
    case MF_FABRIC_OP_PUT:
        *iface_p = plan->dseg->ep->iface;
        return mf_tl_put(plan->dseg->ep, (const void *)(uintptr_t)src, dst,
                         size, plan->dseg->rkey, comp);
    case MF_FABRIC_OP_GET:
        *iface_p = plan->sseg->ep->iface;
        return mf_tl_get(plan->sseg->ep, (void *)(uintptr_t)dst, src, size,
                         plan->sseg->rkey, comp);
    case MF_FABRIC_OP_BOUNCE:
        break;
    }
    return mf_fabric_bounce(src, plan->sseg, dst, plan->dseg, size);
}

/* Runs a planned piece to its end on this thread. */
static inline mf_status_t mf_fabric_plan_run(mf_bm_t *bm,
                                             const mf_fabric_plan_t *plan,
                                             uint64_t src, uint64_t dst,
                                             size_t size)
{
    mf_fabric_waiter_t waiter;
    mf_fabric_comp_t comp;
    mf_tl_iface_t *iface = NULL;
    mf_status_t status;

    if (mf_likely(plan->op == MF_FABRIC_OP_MAPPED)) {
        return mf_fabric_mapped_copy(bm, plan->kind, dst, src, size);
    }
    if (plan->op == MF_FABRIC_OP_NONE) {
        return MF_OK;
    }
    atomic_init(&waiter.left, 1);
    mf_fabric_comp_init(&comp, &waiter);
    status =
        mf_fabric_plan_start(bm, plan, src, dst, size, &comp.super, &iface);
    if (mf_unlikely(status == MF_INPROGRESS)) {
        mf_fabric_waiter_wait(&waiter, iface);
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
 * Pieces of a batch in flight on transports: up to MF_FABRIC_WINDOW of
 * them run at once, then the window drains.  Each holds a reference on its
 * segments of its own, so the run's hold may move on.
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
mf_fabric_piece_start(mf_bm_t *bm, const mf_fabric_plan_t *plan, uint64_t src,
                      uint64_t dst, size_t size, mf_fabric_window_t *win,
                      size_t index)
{
    mf_fabric_slot_t *slot;
    mf_tl_iface_t *iface = NULL;
    mf_status_t status;

    if (win == NULL ||
        (plan->op != MF_FABRIC_OP_PUT && plan->op != MF_FABRIC_OP_GET)) {
        return mf_fabric_plan_run(bm, plan, src, dst, size);
    }
    slot = &win->slots[win->n];
    mf_fabric_comp_init(&slot->comp, &win->waiter);
    atomic_fetch_add_explicit(&win->waiter.left, 1, memory_order_relaxed);
    status = mf_fabric_plan_start(bm, plan, src, dst, size, &slot->comp.super,
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
mf_fabric_piece_plan(mf_bm_t *bm, uint64_t src, uint64_t dst, size_t size,
                     mf_copy_dir_t dir, mf_fabric_hold_t *hold,
                     mf_fabric_filter_t filter, mf_fabric_plan_t *plan)
{
    mf_fabric_seg_t *sseg = NULL, *dseg = NULL;
    mf_fabric_sides_t sides;
    mf_status_t status;

    status = mf_fabric_dir_sides(bm, dir, src, dst, size, &sides);
    if (mf_unlikely(status != MF_OK)) {
        return filter == MF_FABRIC_MAPPED_ONLY ? MF_FABRIC_SKIP : status;
    }
    if (mf_unlikely(size == 0)) {
        /* succeeds and touches nothing; the direction was checked */
        plan->op = MF_FABRIC_OP_NONE;
        plan->kind = MF_MEM_KIND_HOST;
        plan->sseg = NULL;
        plan->dseg = NULL;
        return filter == MF_FABRIC_MAPPED_ONLY ? MF_FABRIC_SKIP : MF_OK;
    }
    status =
        mf_fabric_resolve_held(bm, src, size, sides.src_g, &hold->src, &sseg);
    if (mf_likely(status == MF_OK)) {
        status = mf_fabric_resolve_held(bm, dst, size, sides.dst_g, &hold->dst,
                                        &dseg);
    }
    if (mf_likely(status == MF_OK)) {
        status = mf_fabric_plan_make(bm, &sides, sseg, dseg, plan);
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

/* Validates, holds, copies and releases one piece. */
static mf_status_t mf_fabric_copy_one(mf_bm_t *bm, uint64_t src, uint64_t dst,
                                      size_t size, mf_copy_dir_t dir)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_plan_t plan;
    mf_status_t status;

    status = mf_fabric_piece_plan(bm, src, dst, size, dir, &hold, MF_FABRIC_ALL,
                                  &plan);
    if (mf_likely(status == MF_OK)) {
        status = mf_fabric_plan_run(bm, &plan, src, dst, size);
    }
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

/* Copies the pieces [first, end) that filter takes, those on transports
 * all at once (a window at a time); returns the first error in piece
 * order. */
static mf_status_t
mf_fabric_copy_pieces(mf_bm_t *bm, const mf_copy_piece_t *pieces, size_t first,
                      size_t end, mf_copy_dir_t dir, mf_fabric_filter_t filter,
                      mf_status_t *results)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_outcome_t out = {MF_OK, SIZE_MAX, results};
    mf_fabric_window_t win;
    mf_fabric_plan_t plan;
    mf_status_t st;
    size_t i;

    atomic_init(&win.waiter.left, 0);
    win.iface = NULL;
    win.n = 0;
    for (i = first; i < end; i++) {
        if (win.n == MF_FABRIC_WINDOW) {
            mf_fabric_window_drain(&win, &out);
        }
        st = mf_fabric_piece_plan(bm, pieces[i].src, pieces[i].dst,
                                  pieces[i].size, dir, &hold, filter, &plan);
        if (st == MF_FABRIC_SKIP) {
            continue; /* another pass's piece */
        }
        if (st == MF_OK) {
            st = mf_fabric_piece_start(bm, &plan, pieces[i].src, pieces[i].dst,
                                       pieces[i].size, &win, i);
        }
        if (st != MF_INPROGRESS) {
            mf_fabric_outcome_set(&out, i, st);
        }
    }
    mf_fabric_window_drain(&win, &out);
    mf_fabric_hold_release(&hold);
    return out.status;
}

/* A batch's mapped pieces run on the copy threads as nparts runs of
 * consecutive pieces, a few per thread, so a thread the scheduler stopped
 * holds up little and no piece costs a hand-off of its own. */
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

/* The mapped pieces of a batch, as a job of the copy threads. */
typedef struct mf_fabric_batch_job {
    mf_job_t job;
    mf_bm_t *bm;
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
    return mf_fabric_copy_pieces(bj->bm, bj->pieces, first, end, bj->dir,
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

/* The segment a global address would be in, read without a hold: a hint
 * for how to split a batch, never used to move bytes. */
static inline const mf_fabric_seg_t *mf_fabric_seg_peek(mf_bm_t *bm,
                                                        uint64_t addr)
{
    if (addr < bm->base || addr >= bm->window_end) {
        return NULL;
    }
    return &bm->segs[(addr - bm->base) / bm->stride];
}

static inline bool mf_fabric_piece_mapped_hint(mf_bm_t *bm,
                                               const mf_copy_piece_t *piece)
{
    const mf_fabric_seg_t *s = mf_fabric_seg_peek(bm, piece->src);
    const mf_fabric_seg_t *d = mf_fabric_seg_peek(bm, piece->dst);

    return (s == NULL || s->addr != NULL) && (d == NULL || d->addr != NULL);
}

/* Whether the mapped pieces are worth the copy threads. */
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
        if (mf_fabric_piece_mapped_hint(bm, &pieces[i])) {
            total += pieces[i].size;
            if (total >= bm->cfg.copy_split_min) {
                return true;
            }
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

MF_API mf_status_t mf_bm_copy_batch(mf_bm_t *bm, const mf_copy_piece_t *pieces,
                                    size_t count, mf_copy_dir_t dir,
                                    mf_status_t *results)
{
    mf_fabric_batch_job_t bj;
    mf_status_t remote_status;

    if (bm == NULL || (pieces == NULL && count > 0)) {
        return MF_ERR_INVALID;
    }
    if (!mf_fabric_batch_parallel(bm, pieces, count)) {
        return mf_fabric_copy_pieces(bm, pieces, 0, count, dir, MF_FABRIC_ALL,
                                     results);
    }

    /* The copy threads take the mapped pieces while this thread starts the
     * ones transports move (their own threads do that work), then helps
     * with what is left of the mapped ones. */
    bj.job.fn = mf_fabric_batch_chunk;
    bj.job.final_cb = mf_fabric_batch_final;
    bj.job.nchunks = mf_fabric_batch_nparts(bm, count);
    bj.job.max_helpers = 0;
    bj.bm = bm;
    bj.pieces = pieces;
    bj.count = count;
    bj.dir = dir;
    bj.results = results;
    atomic_init(&bj.done.left, 1);
    mf_workers_submit(bm->workers, &bj.job);
    remote_status = mf_fabric_copy_pieces(bm, pieces, 0, count, dir,
                                          MF_FABRIC_REMOTE_ONLY, results);
    mf_workers_help(bm->workers, &bj.job);
    mf_fabric_waiter_wait(&bj.done, NULL);
    return mf_fabric_first_error(results, count, remote_status,
                                 mf_job_status(&bj.job));
}

/* --------------------------------------------------------------- async */

/*
 * An asynchronous copy completes when every part of it did: the submitter
 * (one reference while it starts things), the copy threads' job (one, for
 * mapped pieces and bounces) and each piece a transport moves (one each,
 * released by the transport's completion, so no thread waits for them).
 */
struct mf_bm_req {
    mf_job_t job;
    mf_bm_t *bm;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;            /* under lock */
    atomic_bool released; /* the pool no longer touches req */
    atomic_uint parts;    /* references still out */
    atomic_int status;    /* the first error */
    mf_tl_iface_t *iface; /* of a piece on a transport, for progress */
    mf_copy_dir_t dir;
    /* single copy, already resolved and held */
    mf_fabric_plan_t plan;
    uint64_t src;
    uint64_t dst;
    size_t size;
    size_t chunk;
    mf_fabric_comp_t comp; /* single copy on a transport */
    /* batch */
    mf_copy_piece_t *pieces;
    size_t count;
    struct mf_fabric_req_slot *slots; /* pieces on transports */
};

/* A batch piece a transport moves for an asynchronous request; it holds
 * its segments until its completion. */
typedef struct mf_fabric_req_slot {
    mf_tl_comp_t super; /* cb set: the piece is on a transport */
    mf_bm_req_t *req;
    mf_fabric_seg_t *sseg;
    mf_fabric_seg_t *dseg;
} mf_fabric_req_slot_t;

static void mf_fabric_req_fail(mf_bm_req_t *req, mf_status_t status)
{
    int ok = MF_OK;

    if (status != MF_OK) {
        atomic_compare_exchange_strong(&req->status, &ok, (int)status);
    }
}

/* Drops one reference; the last completes the request. */
static void mf_fabric_req_put(mf_bm_req_t *req, mf_status_t status)
{
    mf_fabric_req_fail(req, status);
    if (atomic_fetch_sub_explicit(&req->parts, 1, memory_order_acq_rel) != 1) {
        return;
    }
    mf_fabric_seg_release(req->plan.sseg);
    mf_fabric_seg_release(req->plan.dseg);
    pthread_mutex_lock(&req->lock);
    req->done = true;
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
    atomic_store_explicit(&req->released, true, memory_order_release);
}

static mf_status_t mf_fabric_req_chunk_single(mf_job_t *job, size_t index)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;
    size_t off = index * req->chunk;

    return mf_fabric_plan_run(req->bm, &req->plan, req->src + off,
                              req->dst + off,
                              MF_MIN(req->chunk, req->size - off));
}

static void mf_fabric_req_job_final(mf_job_t *job)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;

    mf_fabric_req_put(req, mf_job_status(job));
}

/* A single copy's transport completion. */
static void mf_fabric_req_comp_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    mf_bm_req_t *req = mf_container_of(comp, mf_bm_req_t, comp.super);

    mf_fabric_req_put(req, status);
}

/* A batch piece's transport completion: its own segment references go. */
static void mf_fabric_req_slot_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    mf_fabric_req_slot_t *slot = (mf_fabric_req_slot_t *)comp;

    mf_fabric_seg_release(slot->dseg);
    mf_fabric_seg_release(slot->sseg);
    mf_fabric_req_put(slot->req, status);
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
    atomic_init(&req->parts, 1); /* the submitter's */
    atomic_init(&req->status, MF_OK);
    req->job.final_cb = mf_fabric_req_job_final;
    req->job.max_helpers = 0;
    return req;
}

static void mf_fabric_req_free(mf_bm_req_t *req)
{
    pthread_cond_destroy(&req->cond);
    pthread_mutex_destroy(&req->lock);
    free(req->slots);
    free(req->pieces);
    free(req);
}

/* Runs req's job on the copy threads, or here when there are none. */
static void mf_fabric_req_start_job(mf_bm_req_t *req)
{
    mf_workers_t *workers = req->bm->workers;

    atomic_fetch_add_explicit(&req->parts, 1, memory_order_relaxed);
    if (mf_workers_count(workers) == 0 || mf_workers_in_worker()) {
        (void)mf_workers_run(NULL, &req->job);
        mf_fabric_req_job_final(&req->job);
    } else {
        mf_workers_submit(workers, &req->job);
    }
}

MF_API mf_status_t mf_bm_copy_async(mf_bm_t *bm, uint64_t src, uint64_t dst,
                                    size_t size, mf_copy_dir_t dir,
                                    mf_bm_req_t **req_p)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_plan_t plan;
    mf_tl_iface_t *iface = NULL;
    uint32_t nthreads;
    mf_status_t status;
    mf_bm_req_t *req;

    if (bm == NULL || req_p == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_fabric_piece_plan(bm, src, dst, size, dir, &hold, MF_FABRIC_ALL,
                                  &plan);
    if (status != MF_OK) {
        mf_fabric_hold_release(&hold);
        return status;
    }
    req = mf_fabric_req_new(bm, dir);
    if (req == NULL) {
        mf_fabric_hold_release(&hold);
        return MF_ERR_NOMEM;
    }
    /* the request keeps the holds until it completes */
    plan.sseg = hold.src;
    plan.dseg = hold.dst;
    req->plan = plan;
    req->src = src;
    req->dst = dst;
    req->size = size;
    *req_p = req;

    if (size > 0 &&
        (plan.op == MF_FABRIC_OP_PUT || plan.op == MF_FABRIC_OP_GET)) {
        /* the transport moves it and its completion finishes the request */
        req->comp.super.cb = mf_fabric_req_comp_cb;
        atomic_fetch_add_explicit(&req->parts, 1, memory_order_relaxed);
        status = mf_fabric_plan_start(bm, &req->plan, src, dst, size,
                                      &req->comp.super, &iface);
        req->iface = iface;
        if (status != MF_INPROGRESS) {
            mf_fabric_req_put(req, status);
        }
        mf_fabric_req_put(req, MF_OK);
        return MF_OK;
    }
    nthreads = mf_workers_count(bm->workers);
    if (plan.op == MF_FABRIC_OP_MAPPED && size >= bm->cfg.copy_split_min &&
        nthreads > 0) {
        req->chunk =
            MF_MIN(MF_MAX(size / (4u * nthreads), MF_FABRIC_ASYNC_CHUNK_MIN),
                   MF_FABRIC_ASYNC_CHUNK_MAX);
        req->chunk = MF_ALIGN_UP(req->chunk, 4096);
    } else {
        req->chunk = MF_MAX(size, 1);
    }
    req->job.fn = mf_fabric_req_chunk_single;
    req->job.nchunks = (size + req->chunk - 1) / req->chunk;
    mf_fabric_req_start_job(req);
    mf_fabric_req_put(req, MF_OK);
    return MF_OK;
}

/* Starts the pieces of req that transports move, each completing the
 * request by itself; returns whether any piece is mapped. */
static bool mf_fabric_req_start_remote(mf_bm_req_t *req)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_copy_piece_t *p;
    mf_fabric_req_slot_t *slot;
    mf_fabric_plan_t plan;
    mf_tl_iface_t *iface;
    bool mapped = false;
    mf_status_t st;
    size_t i;

    for (i = 0; i < req->count; i++) {
        p = &req->pieces[i];
        st = mf_fabric_piece_plan(req->bm, p->src, p->dst, p->size, req->dir,
                                  &hold, MF_FABRIC_ALL, &plan);
        if (st != MF_OK) {
            mf_fabric_req_fail(req, st);
            continue;
        }
        if (p->size == 0) {
            continue;
        }
        if (plan.op != MF_FABRIC_OP_PUT && plan.op != MF_FABRIC_OP_GET) {
            mapped = true; /* the job's (a bounce too) */
            continue;
        }
        slot = &req->slots[i];
        slot->super.cb = mf_fabric_req_slot_cb;
        slot->req = req;
        slot->sseg = plan.sseg;
        slot->dseg = plan.dseg;
        mf_fabric_seg_addref(plan.sseg);
        mf_fabric_seg_addref(plan.dseg);
        atomic_fetch_add_explicit(&req->parts, 1, memory_order_relaxed);
        iface = NULL;
        st = mf_fabric_plan_start(req->bm, &plan, p->src, p->dst, p->size,
                                  &slot->super, &iface);
        if (iface != NULL) {
            req->iface = iface;
        }
        if (st != MF_INPROGRESS) {
            mf_fabric_req_slot_cb(&slot->super, st);
        }
    }
    mf_fabric_hold_release(&hold);
    return mapped;
}

/* Batch pieces of a job that only copies what is mapped or bounces. */
static mf_status_t mf_fabric_req_chunk_rest(mf_job_t *job, size_t index)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_status_t status = MF_OK, st;
    mf_fabric_plan_t plan;
    mf_copy_piece_t *p;
    size_t first, end, i;

    mf_fabric_batch_part(req->count, job->nchunks, index, &first, &end);
    for (i = first; i < end; i++) {
        p = &req->pieces[i];
        if (req->slots[i].super.cb != NULL || p->size == 0) {
            continue; /* on a transport, or nothing */
        }
        st = mf_fabric_piece_plan(req->bm, p->src, p->dst, p->size, req->dir,
                                  &hold, MF_FABRIC_ALL, &plan);
        if (st == MF_OK) {
            st = mf_fabric_plan_run(req->bm, &plan, p->src, p->dst, p->size);
        }
        if (st != MF_OK && status == MF_OK) {
            status = st;
        }
    }
    mf_fabric_hold_release(&hold);
    return status;
}

MF_API mf_status_t mf_bm_copy_batch_async(mf_bm_t *bm,
                                          const mf_copy_piece_t *pieces,
                                          size_t count, mf_copy_dir_t dir,
                                          mf_bm_req_t **req_p)
{
    mf_bm_req_t *req;

    if (bm == NULL || req_p == NULL || (pieces == NULL && count > 0) ||
        count > SIZE_MAX / sizeof(mf_fabric_req_slot_t)) {
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
        req->slots = calloc(count, sizeof(*req->slots));
        if (req->pieces == NULL || req->slots == NULL) {
            mf_error("mf-bm: cannot copy %zu batch pieces", count);
            mf_fabric_req_free(req);
            return MF_ERR_NOMEM;
        }
        memcpy(req->pieces, pieces, count * sizeof(*pieces));
    }
    req->count = count;
    *req_p = req;
    if (mf_fabric_req_start_remote(req)) {
        req->job.fn = mf_fabric_req_chunk_rest;
        req->job.nchunks = mf_fabric_batch_nparts(bm, count);
        mf_fabric_req_start_job(req);
    }
    mf_fabric_req_put(req, MF_OK);
    return MF_OK;
}

static inline bool mf_fabric_ts_before(const struct timespec *a,
                                       const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

MF_API mf_status_t mf_bm_wait(mf_bm_req_t *req, int timeout_ms)
{
    struct timespec deadline, slice;
    mf_status_t status;
    int ret = 0;

    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    if (timeout_ms >= 0) {
        mf_deadline_after_ms(&deadline, (uint64_t)timeout_ms);
    }
    /* rather than sleep, take the chunks nobody took yet */
    if (timeout_ms != 0 && req->job.fn != NULL) {
        mf_workers_help(req->bm->workers, &req->job);
    }
    pthread_mutex_lock(&req->lock);
    while (!req->done && ret != ETIMEDOUT) {
        if (req->iface != NULL) {
            /* a transport that needs progress calls gets them here */
            pthread_mutex_unlock(&req->lock);
            (void)mf_tl_progress(req->iface);
            pthread_mutex_lock(&req->lock);
            if (req->done) {
                break;
            }
            mf_deadline_after_ms(&slice, 10);
            if (timeout_ms >= 0 && mf_fabric_ts_before(&deadline, &slice)) {
                slice = deadline;
            }
            ret = pthread_cond_timedwait(&req->cond, &req->lock, &slice);
            if (ret == ETIMEDOUT &&
                (timeout_ms < 0 || mf_fabric_ts_before(&slice, &deadline))) {
                ret = 0; /* only the slice ended */
            }
        } else if (timeout_ms < 0) {
            pthread_cond_wait(&req->cond, &req->lock);
        } else {
            ret = pthread_cond_timedwait(&req->cond, &req->lock, &deadline);
        }
    }
    if (!req->done) {
        pthread_mutex_unlock(&req->lock);
        return MF_ERR_TIMEOUT;
    }
    status = (mf_status_t)atomic_load(&req->status);
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
    status = (mf_status_t)atomic_load(&req->status);
    mf_fabric_req_free(req);
    return status;
}
