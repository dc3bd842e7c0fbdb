/*
 * BM copies across hosts: 4 hosts (network namespaces, see tk_netns.h) x 2
 * rank processes, 8 ranks in one pool.  Ranks of one host reach each other
 * through shm (their segments are mapped at their GVAs), ranks of other
 * hosts through tcp (their segments are not mapped here).
 *
 *   single: every direction (LH2GH, GH2LH, GH2GH, and AUTO inferring each)
 *           with every rank, GH2GH also between two segments of other
 *           hosts; sizes 1 B .. 8 MiB at unaligned offsets;
 *   batch:  random pieces to ranks of every host in one call, and the
 *           KV-block layout (61 x 128 KiB + 61 x 16 KiB) to, from and
 *           between other hosts;
 *   async:  single and batched requests in flight at once;
 *   kill:   both ranks of host 3 die by SIGKILL while the others copy to
 *           and from them: every call returns within a bound with MF_OK
 *           (right bytes) or a peer error; once the death is noticed only
 *           peer errors; the others then keep working among themselves;
 *   lanes:  TCP connections between hosts 1 and 2 are closed from the
 *           outside (ss -K) while large copies run: each copy succeeds
 *           with the right bytes or fails with a peer error, never hangs;
 *           afterwards every copy succeeds.
 *
 * Run as integration/it_bm_multihost[ucx-tcp] (ucx.auto = always,
 * UCX_TLS=tcp), other hosts are reached over the ucx transport instead,
 * on UCX's TCP: every rank checks by the tracer's counts that its copies
 * to other hosts went over the transport expected.  The lanes test is
 * tcp's alone there: UCX 1.13 aborts the process ("Fatal: unexpected
 * error" in ucp_request_try_send) when its connections are reset under
 * it.
 *
 * Every destination is checked byte for byte, with 16 guard bytes on each
 * side; a destination on another host is poisoned and read back through
 * the library (GH2LH, itself checked against known patterns).
 *
 * Segment layout (every rank): [0, RO_SIZE) read-only pattern of the
 * owner, written before the first barrier; then SLOT(w), WORLD scratch
 * slots of SLOT_SIZE, each written only by rank w.
 */
#include "it_helpers.h"
#include "tk_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define HOSTS       4
#define PER_HOST    2
#define WORLD       (HOSTS * PER_HOST)
#define KIB         1024ull
#define MIB         (1024ull * 1024)
#define MAX_COPY    (8 * MIB)
#define RO_SIZE     (MAX_COPY + 64 * KIB)
#define SLOT_SIZE   (9 * MIB)
#define SEG_SIZE    (RO_SIZE + WORLD * SLOT_SIZE)
#define STRIDE      (128 * MIB)
#define ARENA_SIZE  (10 * MIB)
#define GUARD       16
#define RO_SEED(r)  (7000u + (r))
#define MAX_PIECES  32
#define KV_LAYERS   61
#define KV_PIECES   (2 * KV_LAYERS)
#define KV_TOTAL    (KV_LAYERS * 144 * KIB)
#define WAIT_MS     60000
#define CALL_BOUND  60000 /* no single call may take longer: a hang */
#define CHILD_LIMIT 240000
#define VICTIM_HOST 3
#define BREAK_A     1 /* lanes between these two hosts are broken */
#define BREAK_B     2

#define HOST_OF(r) ((int)(r) / PER_HOST)

typedef enum mh_kind { MH_L2G, MH_G2L, MH_G2G } mh_kind_t;

static const char *mh_kind_names[] = {"L2G", "G2L", "G2G"};

typedef struct mh_piece {
    uint64_t src;
    uint64_t dst;
    size_t size;
    uint64_t seed; /* the destination must hold pattern (seed, base) */
    uint64_t base;
    uint32_t dst_rank; /* UINT32_MAX: dst is local memory */
    uint8_t poison;
} mh_piece_t;

typedef struct mh_ctx {
    it_pool_t pool;
    tk_rng_t rng;
    uint8_t *lsrc;
    uint8_t *ldst;
    uint8_t *check; /* read-back and poison buffer */
    size_t lsrc_used;
    size_t ldst_used;
    size_t slot_used[WORLD];
    uint64_t next_seed;
    unsigned verified;
    uint64_t bytes;
} mh_ctx_t;

static tk_netns_t g_net;
static it_store_t g_store;
static bool g_have_net;
/* pipes of the lane test: ranks -> parent "ready", parent -> ranks "stop" */
static int g_ready[2] = {-1, -1};
static int g_stop[2] = {-1, -1};

/* Rank events seen by this process (written by the library's thread). */
static unsigned mh_lost[WORLD];
static unsigned mh_left[WORLD];

static void mh_rank_cb(mf_bm_t *bm, uint32_t rank, bool joined,
                       mf_status_t reason, void *arg)
{
    if (rank < WORLD && !joined) {
        __atomic_add_fetch(reason == MF_OK ? &mh_left[rank] : &mh_lost[rank], 1,
                           __ATOMIC_RELEASE);
    }
}

static unsigned mh_load(unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------ pieces */

static void mh_reset(mh_ctx_t *ctx)
{
    ctx->lsrc_used = 0;
    ctx->ldst_used = 0;
    memset(ctx->slot_used, 0, sizeof(ctx->slot_used));
}

static bool mh_take(mh_ctx_t *ctx, size_t *used, size_t cap, size_t size,
                    uint64_t *off_p)
{
    uint64_t off = *used + GUARD + tk_rng_range(&ctx->rng, 0, 4095);

    if (off + size + GUARD > cap) {
        return false;
    }
    *used = off + size + GUARD;
    *off_p = off;
    return true;
}

/* Pointer to a destination that is in this process's memory. */
static uint8_t *mh_view(const mh_piece_t *pc)
{
    return (uint8_t *)(uintptr_t)pc->dst;
}

/*
 * Prepares one piece: fills a local source or picks a part of rank a's
 * read-only zone, and poisons the destination with its guards (a G
 * destination through the library).
 */
static mf_status_t mh_prepare(mh_ctx_t *ctx, mh_kind_t kind, uint32_t a,
                              uint32_t b, size_t size, mh_piece_t *pc)
{
    it_pool_t *pool = &ctx->pool;
    uint64_t off;
    uint8_t first;

    memset(pc, 0, sizeof(*pc));
    pc->size = size;
    if (kind == MH_L2G) {
        if (!mh_take(ctx, &ctx->lsrc_used, ARENA_SIZE, size, &off)) {
            return MF_ERR_NOMEM;
        }
        pc->seed = ctx->next_seed++;
        tk_pattern_fill(ctx->lsrc + off, size, pc->seed, 0);
        pc->src = (uint64_t)(uintptr_t)(ctx->lsrc + off);
    } else {
        off = tk_rng_range(&ctx->rng, 0, 4095);
        pc->seed = RO_SEED(a);
        pc->base = off;
        pc->src = it_gva(pool, a, off);
    }
    tk_pattern_fill(&first, 1, pc->seed, pc->base);
    pc->poison = (uint8_t)~first;
    if (kind == MH_G2L) {
        if (!mh_take(ctx, &ctx->ldst_used, ARENA_SIZE, size, &off)) {
            return MF_ERR_NOMEM;
        }
        pc->dst = (uint64_t)(uintptr_t)(ctx->ldst + off);
        pc->dst_rank = UINT32_MAX;
        memset(mh_view(pc) - GUARD, pc->poison, size + 2 * GUARD);
        return MF_OK;
    }
    if (!mh_take(ctx, &ctx->slot_used[b], SLOT_SIZE, size, &off)) {
        return MF_ERR_NOMEM;
    }
    pc->dst = it_gva(pool, b, RO_SIZE + pool->rank * SLOT_SIZE + off);
    pc->dst_rank = b;
    memset(ctx->check, pc->poison, size + 2 * GUARD);
    return mf_bm_copy(pool->bm, (uint64_t)(uintptr_t)ctx->check,
                      pc->dst - GUARD, size + 2 * GUARD, MF_COPY_LH2GH);
}

/* Checks the destination of pc (reading a G one back).  A failed read
 * back is returned; wrong bytes set *bad. */
static mf_status_t mh_verify(mh_ctx_t *ctx, const mh_piece_t *pc,
                             const char *what, bool *bad)
{
    const uint8_t *view;
    mf_status_t st;
    ssize_t off;

    *bad = false;
    if (pc->dst_rank == UINT32_MAX) {
        view = mh_view(pc) - GUARD;
    } else {
        memset(ctx->check, ~pc->poison, pc->size + 2 * GUARD);
        st = mf_bm_copy(ctx->pool.bm, pc->dst - GUARD,
                        (uint64_t)(uintptr_t)ctx->check, pc->size + 2 * GUARD,
                        MF_COPY_GH2LH);
        if (st != MF_OK) {
            return st;
        }
        view = ctx->check;
    }
    ctx->verified++;
    ctx->bytes += pc->size;
    off = tk_pattern_check(view + GUARD, pc->size, pc->seed, pc->base);
    if (off >= 0) {
        tk_print(
            "%s: %zu bytes 0x%llx -> 0x%llx: byte %zd differs (got 0x%02x)",
            what, pc->size, (unsigned long long)pc->src,
            (unsigned long long)pc->dst, off, view[GUARD + off]);
        *bad = true;
        return MF_OK;
    }
    off = tk_mem_find_not(view, pc->poison, GUARD);
    if (off < 0 && (off = tk_mem_find_not(view + GUARD + pc->size, pc->poison,
                                          GUARD)) >= 0) {
        off += GUARD + (ssize_t)pc->size;
    }
    if (off >= 0) {
        tk_print("%s: %zu bytes -> 0x%llx: guard byte %zd (from dst - %d) "
                 "overwritten",
                 what, pc->size, (unsigned long long)pc->dst, off, GUARD);
        *bad = true;
    }
    return MF_OK;
}

static mf_copy_dir_t mh_dir(mh_kind_t kind, bool autodir)
{
    static const mf_copy_dir_t dirs[] = {MF_COPY_LH2GH, MF_COPY_GH2LH,
                                         MF_COPY_GH2GH};
    return autodir ? MF_COPY_AUTO : dirs[kind];
}

/* One copy of pc, which must succeed with the right bytes. */
static int mh_copy_ok(mh_ctx_t *ctx, mh_kind_t kind, bool autodir,
                      const mh_piece_t *pc, const char *what)
{
    bool bad;

    TK_CHECK_OK_GOTO(mf_bm_copy(ctx->pool.bm, pc->src, pc->dst, pc->size,
                                mh_dir(kind, autodir)));
    TK_CHECK_OK_GOTO(mh_verify(ctx, pc, what, &bad));
    TK_CHECK_GOTO(!bad, "%s: wrong data", what);
    return 0;
fail:
    tk_print("failed: %s (%zu bytes)", what, pc->size);
    return 1;
}

/* A random verified copy among the given ranks. */
static int mh_copy_among(mh_ctx_t *ctx, const uint32_t *ranks, unsigned n,
                         size_t max)
{
    mh_kind_t kind = tk_rng_range(&ctx->rng, 0, 2);
    uint32_t a = ranks[tk_rng_range(&ctx->rng, 0, n - 1)];
    uint32_t b = ranks[tk_rng_range(&ctx->rng, 0, n - 1)];
    size_t size = tk_rng_size(&ctx->rng, 1, max);
    bool autodir = tk_rng_range(&ctx->rng, 0, 1);
    char what[64];
    mh_piece_t pc;

    mh_reset(ctx);
    snprintf(what, sizeof(what), "%s%s %u->%u", mh_kind_names[kind],
             autodir ? "(AUTO)" : "", kind == MH_L2G ? ctx->pool.rank : a,
             kind == MH_G2L ? ctx->pool.rank : b);
    TK_CHECK_OK_GOTO(mh_prepare(ctx, kind, a, b, size, &pc));
    return mh_copy_ok(ctx, kind, autodir, &pc, what);
fail:
    return 1;
}

/* ------------------------------------------------------------- setup */

/* Whether [addr, addr + len) lies in a readable mapping of this process. */
static bool mh_mapped(uint64_t addr)
{
    char line[512];
    unsigned long lo, hi;
    char perms[8];
    bool found = false;
    FILE *f = fopen("/proc/self/maps", "r");

    if (f == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && addr >= lo &&
            addr < hi) {
            found = perms[0] == 'r';
            break;
        }
    }
    fclose(f);
    return found;
}

/* What the library logs in a rank; an error fails a strict rank. */
static tk_log_t mh_log;

/* The transport that reaches other hosts: "tcp", or "ucx" where
 * ucx.auto = always (the ucx variant of this program). */
static const char *g_cross = "tcp";

/* The copies this rank made over transport name (tracer's counts). */
static uint64_t mh_traced(const char *name)
{
    mf_trace_stat_t stats[64];
    char put[32], get[32];
    uint64_t count = 0;
    size_t n, i;

    snprintf(put, sizeof(put), "tl.%s.put", name);
    snprintf(get, sizeof(get), "tl.%s.get", name);
    n = mf_trace_get(stats, 64);
    for (i = 0; i < n && i < 64; i++) {
        if (strcmp(stats[i].name, put) == 0 ||
            strcmp(stats[i].name, get) == 0) {
            count += stats[i].count;
        }
    }
    return count;
}

static int mh_open(mh_ctx_t *ctx, uint32_t rank, uint64_t phase)
{
    it_pool_t *pool = &ctx->pool;
    mf_bm_config_t cfg;
    uint8_t *own;
    uint32_t r;

    memset(ctx, 0, sizeof(*ctx));
    tk_log_start(&mh_log, TK_LOG_ECHO);
    mf_trace_enable(true);
    ctx->lsrc = malloc(ARENA_SIZE);
    ctx->ldst = malloc(ARENA_SIZE);
    ctx->check = malloc(KV_TOTAL + 2 * GUARD + 8192);
    TK_CHECK_GOTO(ctx->lsrc != NULL && ctx->ldst != NULL && ctx->check != NULL,
                  "malloc");
    it_bm_config(&cfg);
    TK_CHECK_OK_GOTO(it_pool_open(pool, g_store.url, WORLD, rank, SEG_SIZE,
                                  STRIDE, &cfg, false));
    TK_CHECK_GOTO(pool->rank == rank, "got rank %u", pool->rank);
    mf_bm_set_rank_cb(pool->bm, mh_rank_cb, NULL);
    tk_rng_seed(&ctx->rng, phase * 1000 + rank);
    ctx->next_seed = (uint64_t)(rank + 1) << 40 | phase << 32;
    own = mf_bm_gva_of_rank(pool->bm, rank, MF_MEM_HOST);
    TK_CHECK_GOTO(own != NULL, "no GVA of my rank");
    tk_pattern_fill(own, RO_SIZE, RO_SEED(rank), 0);
    TK_CHECK_OK_GOTO(mf_bm_join(pool->bm));
    pool->joined = true;
    TK_CHECK_OK_GOTO(it_barrier(pool, "filled", WORLD));
    TK_CHECK_OK_GOTO(it_wait_all_joined(pool, WAIT_MS));

    /* Same host: mapped, loadable (shm).  Other hosts: not mapped here. */
    for (r = 0; r < WORLD; r++) {
        uint8_t *seg = mf_bm_gva_of_rank(pool->bm, r, MF_MEM_HOST);
        bool mapped = mh_mapped((uint64_t)(uintptr_t)seg);

        if (HOST_OF(r) == HOST_OF(rank)) {
            TK_CHECK_GOTO(mapped, "rank %u of my host is not mapped", r);
            TK_CHECK_GOTO(tk_pattern_check(seg, 65536, RO_SEED(r), 0) < 0,
                          "rank %u of my host: wrong bytes through its GVA", r);
        } else {
            TK_CHECK_GOTO(!mapped,
                          "rank %u of host %d is mapped here: another network "
                          "namespace must count as another host",
                          r, HOST_OF(r));
        }
    }
    return 0;
fail:
    return 1;
}

static int mh_close(mh_ctx_t *ctx, int ret, uint32_t count, bool strict_log)
{
    if (ret == 0 && ctx->pool.store != NULL) {
        /* nobody leaves while another still copies into its segment */
        if (it_barrier(&ctx->pool, "done", count) != MF_OK) {
            ret = 1;
        }
    }
    if (ret == 0) {
        tk_print("%u pieces (%llu bytes) verified, %llu copies over %s",
                 ctx->verified, (unsigned long long)ctx->bytes,
                 (unsigned long long)mh_traced(g_cross), g_cross);
        if (mh_traced(g_cross) == 0 ||
            mh_traced(strcmp(g_cross, "tcp") == 0 ? "ucx" : "tcp") != 0) {
            tk_print("copies to other hosts did not all go over %s", g_cross);
            ret = 1;
        }
    }
    if (ret == 0 && strict_log && tk_log_check_clean(&mh_log) != 0) {
        ret = 1;
    }
    it_pool_close(&ctx->pool);
    tk_log_stop(&mh_log);
    free(ctx->lsrc);
    free(ctx->ldst);
    free(ctx->check);
    return ret;
}

/* ------------------------------------------------------ single copies */

static int mh_rank_single(int index, void *arg)
{
    static const size_t fixed[] = {1, 7, 4097, 65537, 1000003, MAX_COPY};
    uint32_t me = (uint32_t)index, a, b;
    unsigned pass, autodir, k, n = 0;
    char what[96];
    mh_ctx_t ctx;
    mh_piece_t pc;
    int ret = 1;

    if (mh_open(&ctx, me, 1) != 0) {
        goto out;
    }
    for (pass = 0; pass < 4; pass++) {
        autodir = pass % 2;
        for (b = 0; b < WORLD; b++) {
            for (k = 0; k < 3; k++) {
                size_t size = n % 4 == 0 ? fixed[(n / 4 + me) % 6]
                                         : tk_rng_size(&ctx.rng, 1, MAX_COPY);

                n++;
                /* G2G: mostly from a rank of another host than b (both
                 * remote to me for about half of them), at times within
                 * b's own segment */
                a = (b + 2 + 2 * pass + (me % 2) * 2) % WORLD;
                mh_reset(&ctx);
                snprintf(what, sizeof(what), "%s%s %u->%u (hosts %d->%d)",
                         mh_kind_names[k], autodir ? "(AUTO)" : "",
                         k == MH_G2G ? a : (k == MH_L2G ? me : b),
                         k == MH_G2L ? me : b,
                         HOST_OF(k == MH_G2G ? a : (k == MH_L2G ? me : b)),
                         HOST_OF(k == MH_G2L ? me : b));
                TK_CHECK_OK_GOTO(
                    mh_prepare(&ctx, k, k == MH_G2L ? b : a, b, size, &pc));
                if (mh_copy_ok(&ctx, k, autodir, &pc, what) != 0) {
                    goto out;
                }
            }
        }
    }
    ret = 0;
    goto out;
fail:
    ret = 1;
out:
    return mh_close(&ctx, ret, WORLD, true);
}

/* ----------------------------------------------------- batch copies */

static int mh_batch_round(mh_ctx_t *ctx, unsigned iter)
{
    mh_piece_t pcs[MAX_PIECES];
    mf_copy_piece_t pieces[MAX_PIECES];
    mf_status_t results[MAX_PIECES];
    mh_kind_t kind = iter % 3;
    bool autodir = (iter / 3) % 2, bad;
    mf_copy_dir_t dir = mh_dir(kind, autodir);
    size_t count, i;
    char what[64];

    mh_reset(ctx);
    count = tk_rng_range(&ctx->rng, 1, MAX_PIECES);
    for (i = 0; i < count; i++) {
        mh_kind_t k = autodir ? tk_rng_range(&ctx->rng, 0, 2) : kind;
        uint32_t a = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        uint32_t b = tk_rng_range(&ctx->rng, 0, WORLD - 1);

        TK_CHECK_OK_GOTO(mh_prepare(
            ctx, k, a, b, tk_rng_size(&ctx->rng, 1, 128 * KIB), &pcs[i]));
        pieces[i].src = pcs[i].src;
        pieces[i].dst = pcs[i].dst;
        pieces[i].size = pcs[i].size;
        results[i] = (mf_status_t)12345;
    }
    snprintf(what, sizeof(what), "batch %u (%s, %zu pieces)", iter,
             mf_copy_dir_name(dir), count);
    TK_CHECK_OK_GOTO(
        mf_bm_copy_batch(ctx->pool.bm, pieces, count, dir, results));
    for (i = 0; i < count; i++) {
        TK_CHECK_GOTO(results[i] == MF_OK, "%s: piece %zu: %s", what, i,
                      mf_status_name(results[i]));
        TK_CHECK_OK_GOTO(mh_verify(ctx, &pcs[i], what, &bad));
        TK_CHECK_GOTO(!bad, "%s: piece %zu to rank %d", what, i,
                      (int)pcs[i].dst_rank);
    }
    return 0;
fail:
    return 1;
}

/* The KV-cache block layout: from 122 separate buffers into one area of a
 * rank of the next host, from there into an area of a rank two hosts on
 * (GH2GH between two other hosts), and back into the cleared buffers. */
static int mh_batch_kv(mh_ctx_t *ctx)
{
    mf_copy_piece_t pieces[KV_PIECES];
    mf_status_t results[KV_PIECES];
    uint8_t *bufs[KV_PIECES] = {NULL};
    const uint32_t me = ctx->pool.rank;
    const uint32_t p1 = (me + PER_HOST) % WORLD;
    const uint32_t p2 = (me + 2 * PER_HOST + 1) % WORLD;
    uint64_t area1 = it_gva(&ctx->pool, p1, RO_SIZE + me * SLOT_SIZE);
    uint64_t area2 = it_gva(&ctx->pool, p2, RO_SIZE + me * SLOT_SIZE);
    uint64_t seed = ctx->next_seed++;
    size_t i, off = 0, size;
    int ret = 1;

    for (i = 0; i < KV_PIECES; i++) {
        size = i < KV_LAYERS ? 128 * KIB : 16 * KIB;
        bufs[i] = malloc(size);
        TK_CHECK_GOTO(bufs[i] != NULL, "malloc");
        tk_pattern_fill(bufs[i], size, seed, off);
        pieces[i].src = (uint64_t)(uintptr_t)bufs[i];
        pieces[i].dst = area1 + off;
        pieces[i].size = size;
        off += size;
    }
    TK_CHECK_GOTO(off == KV_TOTAL, "KV block is %zu bytes", off);
    TK_CHECK_OK_GOTO(mf_bm_copy_batch(ctx->pool.bm, pieces, KV_PIECES,
                                      MF_COPY_LH2GH, results));
    memset(ctx->check, 0, KV_TOTAL);
    TK_CHECK_OK_GOTO(mf_bm_copy(ctx->pool.bm, area1,
                                (uint64_t)(uintptr_t)ctx->check, KV_TOTAL,
                                MF_COPY_GH2LH));
    TK_CHECK_GOTO(tk_pattern_check(ctx->check, KV_TOTAL, seed, 0) < 0,
                  "KV block written to rank %u differs", p1);
    /* GH2GH, piece by piece, between two hosts that are not mine */
    for (i = 0; i < KV_PIECES; i++) {
        pieces[i].src = pieces[i].dst;
        pieces[i].dst = area2 + (pieces[i].src - area1);
    }
    TK_CHECK_OK_GOTO(mf_bm_copy_batch(ctx->pool.bm, pieces, KV_PIECES,
                                      MF_COPY_AUTO, results));
    memset(ctx->check, 0, KV_TOTAL);
    TK_CHECK_OK_GOTO(mf_bm_copy(ctx->pool.bm, area2,
                                (uint64_t)(uintptr_t)ctx->check, KV_TOTAL,
                                MF_COPY_GH2LH));
    TK_CHECK_GOTO(tk_pattern_check(ctx->check, KV_TOTAL, seed, 0) < 0,
                  "KV block copied rank %u -> rank %u differs", p1, p2);
    /* back into the cleared separate buffers */
    for (i = 0; i < KV_PIECES; i++) {
        memset(bufs[i], 0, pieces[i].size);
        pieces[i].src = pieces[i].dst;
        pieces[i].dst = (uint64_t)(uintptr_t)bufs[i];
        results[i] = (mf_status_t)12345;
    }
    TK_CHECK_OK_GOTO(mf_bm_copy_batch(ctx->pool.bm, pieces, KV_PIECES,
                                      MF_COPY_GH2LH, results));
    for (i = 0, off = 0; i < KV_PIECES; i++) {
        TK_CHECK_GOTO(results[i] == MF_OK, "piece %zu: %s", i,
                      mf_status_name(results[i]));
        TK_CHECK_GOTO(tk_pattern_check(bufs[i], pieces[i].size, seed, off) < 0,
                      "KV piece %zu read back from rank %u differs", i, p2);
        off += pieces[i].size;
    }
    ctx->verified += 3 * KV_PIECES;
    ctx->bytes += 3 * KV_TOTAL;
    ret = 0;
fail:
    for (i = 0; i < KV_PIECES; i++) {
        free(bufs[i]);
    }
    return ret;
}

static int mh_rank_batch(int index, void *arg)
{
    mh_ctx_t ctx;
    unsigned iter;
    int ret = 1;

    if (mh_open(&ctx, (uint32_t)index, 2) != 0) {
        goto out;
    }
    for (iter = 0; iter < 12; iter++) {
        if (iter == 6) {
            TK_CHECK_OK_GOTO(mf_bm_register(ctx.pool.bm, ctx.lsrc, ARENA_SIZE));
            TK_CHECK_OK_GOTO(mf_bm_register(ctx.pool.bm, ctx.ldst, ARENA_SIZE));
        }
        if (mh_batch_round(&ctx, iter) != 0) {
            goto out;
        }
    }
    TK_CHECK_OK_GOTO(mf_bm_unregister(ctx.pool.bm, ctx.lsrc));
    TK_CHECK_OK_GOTO(mf_bm_unregister(ctx.pool.bm, ctx.ldst));
    if (mh_batch_kv(&ctx) != 0) {
        goto out;
    }
    ret = 0;
    goto out;
fail:
    ret = 1;
out:
    return mh_close(&ctx, ret, WORLD, true);
}

/* ----------------------------------------------------- async copies */

#define ASYNC_REQS   8
#define ASYNC_PIECES 6

typedef struct mh_async {
    mf_bm_req_t *req;
    mh_piece_t pcs[ASYNC_PIECES];
    size_t count;
    bool done;
} mh_async_t;

static int mh_async_round(mh_ctx_t *ctx, unsigned round)
{
    mh_async_t reqs[ASYNC_REQS];
    mf_copy_piece_t pieces[ASYNC_PIECES];
    uint64_t deadline;
    unsigned pending;
    mf_status_t st;
    size_t i, j;
    bool bad;

    memset(reqs, 0, sizeof(reqs));
    mh_reset(ctx);
    for (i = 0; i < ASYNC_REQS; i++) {
        mh_async_t *rq = &reqs[i];
        mh_kind_t kind = (i + round) % 3;
        bool autodir = (i / 3 + round) % 2;
        uint32_t a = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        uint32_t b = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        mf_copy_dir_t dir = mh_dir(kind, autodir);

        rq->count = i % 2 == 0 ? 1 : tk_rng_range(&ctx->rng, 2, ASYNC_PIECES);
        for (j = 0; j < rq->count; j++) {
            size_t max = rq->count == 1 ? MIB : 64 * KIB;

            TK_CHECK_OK_GOTO(mh_prepare(
                ctx, kind, a, b, tk_rng_size(&ctx->rng, 1, max), &rq->pcs[j]));
            pieces[j].src = rq->pcs[j].src;
            pieces[j].dst = rq->pcs[j].dst;
            pieces[j].size = rq->pcs[j].size;
        }
        if (rq->count == 1) {
            st = mf_bm_copy_async(ctx->pool.bm, pieces[0].src, pieces[0].dst,
                                  pieces[0].size, dir, &rq->req);
        } else {
            st = mf_bm_copy_batch_async(ctx->pool.bm, pieces, rq->count, dir,
                                        &rq->req);
            memset(pieces, 0xff, sizeof(pieces)); /* the library copied it */
        }
        TK_CHECK_GOTO(st == MF_OK || st == MF_INPROGRESS,
                      "async request %zu: %s", i, mf_status_name(st));
        TK_CHECK_GOTO(rq->req != NULL, "async request %zu: no request", i);
    }
    for (i = 0; i < ASYNC_REQS; i += 2) {
        TK_CHECK_OK_GOTO(mf_bm_wait(reqs[i].req, WAIT_MS));
        reqs[i].done = true;
    }
    deadline = tk_time_ms() + WAIT_MS;
    do {
        pending = 0;
        for (i = 1; i < ASYNC_REQS; i += 2) {
            if (reqs[i].done) {
                continue;
            }
            st = mf_bm_test(reqs[i].req);
            if (st == MF_INPROGRESS) {
                pending++;
                continue;
            }
            TK_CHECK_OK_GOTO(st);
            reqs[i].done = true;
        }
        TK_CHECK_GOTO(tk_time_ms() < deadline, "%u requests still in progress",
                      pending);
        if (pending > 0) {
            tk_sleep_ms(1);
        }
    } while (pending > 0);
    for (i = 0; i < ASYNC_REQS; i++) {
        for (j = 0; j < reqs[i].count; j++) {
            TK_CHECK_OK_GOTO(mh_verify(ctx, &reqs[i].pcs[j], "async", &bad));
            TK_CHECK_GOTO(!bad, "request %zu piece %zu", i, j);
        }
    }
    return 0;
fail:
    return 1; /* requests still in flight are the library's; we exit */
}

static int mh_rank_async(int index, void *arg)
{
    mh_ctx_t ctx;
    unsigned round;
    int ret = 1;

    if (mh_open(&ctx, (uint32_t)index, 3) != 0) {
        goto out;
    }
    for (round = 0; round < 6; round++) {
        if (mh_async_round(&ctx, round) != 0) {
            goto out;
        }
    }
    ret = 0;
out:
    return mh_close(&ctx, ret, WORLD, true);
}

/* ------------------------------------------------- a host dies (kill) */

/* A copy that may touch a dying rank: bounded in time, MF_OK with the
 * right bytes or a peer error.  Returns the status, or 1 on a failure. */
static int mh_copy_risky(mh_ctx_t *ctx, mh_kind_t kind, uint32_t a, uint32_t b,
                         size_t size, bool async, mf_status_t *st_p)
{
    mf_bm_req_t *req = NULL;
    uint64_t t0 = tk_time_ms(), dt;
    mf_status_t st;
    mh_piece_t pc;
    bool bad;

    mh_reset(ctx);
    memset(&pc, 0, sizeof(pc));
    if (kind == MH_G2L) {
        st = mh_prepare(ctx, kind, a, b, size, &pc);
        TK_CHECK_OK_GOTO(st);
    } else {
        /* the destination may be dying: no poison, no read back */
        pc.size = size;
        pc.dst =
            it_gva(&ctx->pool, b, RO_SIZE + ctx->pool.rank * SLOT_SIZE + GUARD);
        if (kind == MH_L2G) {
            tk_pattern_fill(ctx->lsrc, size, ctx->next_seed++, 0);
            pc.src = (uint64_t)(uintptr_t)ctx->lsrc;
        } else {
            pc.src = it_gva(&ctx->pool, a, 0);
        }
    }
    if (async) {
        st = mf_bm_copy_async(ctx->pool.bm, pc.src, pc.dst, size,
                              mh_dir(kind, false), &req);
        if (st == MF_OK || st == MF_INPROGRESS) {
            st = mf_bm_wait(req, CALL_BOUND);
        }
    } else {
        st =
            mf_bm_copy(ctx->pool.bm, pc.src, pc.dst, size, mh_dir(kind, false));
    }
    dt = tk_time_ms() - t0;
    TK_CHECK_GOTO(st != MF_ERR_TIMEOUT && dt < CALL_BOUND,
                  "%s%s %u->%u took %llu ms: hangs", async ? "async " : "",
                  mh_kind_names[kind], a, b, (unsigned long long)dt);
    TK_CHECK_GOTO(st == MF_OK || mf_status_is_peer_error(st),
                  "%s %u->%u with a dying host: %s", mh_kind_names[kind], a, b,
                  mf_status_name(st));
    if (st == MF_OK && kind == MH_G2L) {
        TK_CHECK_OK_GOTO(mh_verify(ctx, &pc, "read from a dying rank", &bad));
        TK_CHECK_GOTO(!bad, "MF_OK from a dying rank with wrong bytes");
    }
    *st_p = st;
    return 0;
fail:
    return 1;
}

static int mh_kill_survivor(mh_ctx_t *ctx)
{
    const uint32_t me = ctx->pool.rank;
    const uint32_t v0 = VICTIM_HOST * PER_HOST, v1 = v0 + 1;
    uint32_t live[WORLD], n = 0, r, other;
    uint64_t deadline = tk_time_ms() + 180000, t0;
    mf_copy_piece_t pieces[3];
    mf_status_t results[3], st;
    mf_bm_req_t *req = NULL;
    unsigned oks = 0, errs = 0, k;
    int64_t count = 0;

    for (r = 0; r < WORLD; r++) {
        if (HOST_OF(r) != VICTIM_HOST) {
            live[n++] = r;
        }
    }
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "armed", WORLD));
    if (me % PER_HOST == 0) {
        /* One asynchronous 8 MiB write to the victims in flight. */
        tk_pattern_fill(ctx->ldst, MAX_COPY, 99, 0);
        st = mf_bm_copy_async(ctx->pool.bm, (uint64_t)(uintptr_t)ctx->ldst,
                              it_gva(&ctx->pool, v1, RO_SIZE + me * SLOT_SIZE),
                              MAX_COPY, MF_COPY_LH2GH, &req);
        TK_CHECK_GOTO(st == MF_OK || st == MF_INPROGRESS ||
                          mf_status_is_peer_error(st),
                      "async write to a dying host: %s", mf_status_name(st));
        if (st != MF_OK && st != MF_INPROGRESS) {
            req = NULL;
        }
        /* Until the deaths are noticed: hit the victims. */
        while (mh_load(&mh_lost[v0]) == 0 || mh_load(&mh_lost[v1]) == 0 ||
               mf_bm_rank_joined(ctx->pool.bm, v0) ||
               mf_bm_rank_joined(ctx->pool.bm, v1)) {
            mh_kind_t kind = tk_rng_range(&ctx->rng, 0, 2);
            uint32_t v = tk_rng_range(&ctx->rng, 0, 1) ? v1 : v0;
            size_t size = tk_rng_size(&ctx->rng, 64 * KIB, MAX_COPY);

            other = live[tk_rng_range(&ctx->rng, 0, n - 1)];
            /* L2G: other is only the source of nothing; G2L reads v;
             * G2G copies v -> other */
            if (mh_copy_risky(ctx, kind, kind == MH_L2G ? other : v,
                              kind == MH_G2G ? other : v, size,
                              (oks + errs) % 3 == 1, &st) != 0) {
                goto fail;
            }
            st == MF_OK ? oks++ : errs++;
            TK_CHECK_GOTO(tk_time_ms() < deadline,
                          "the deaths were not noticed");
        }
        tk_print("host %d lost (while dying: %u ok, %u peer errors)",
                 VICTIM_HOST, oks, errs);
        if (req != NULL) {
            t0 = tk_time_ms();
            st = mf_bm_wait(req, CALL_BOUND);
            TK_CHECK_GOTO(st != MF_ERR_TIMEOUT,
                          "async write to a dead host hangs");
            TK_CHECK_GOTO(st == MF_OK || mf_status_is_peer_error(st),
                          "async write to a dead host: %s", mf_status_name(st));
            tk_print("async write to the dying host: %s after %llu ms",
                     mf_status_name(st),
                     (unsigned long long)(tk_time_ms() - t0));
        }
        TK_CHECK_GOTO(mh_load(&mh_left[v0]) == 0 && mh_load(&mh_left[v1]) == 0,
                      "deaths reported as graceful leaves");
        /* Now every copy touching them fails with a peer error. */
        for (k = 0; k < 3; k++) {
            other = live[(me + k) % n];
            TK_CHECK_GOTO(mh_copy_risky(ctx, k, k == MH_L2G ? other : v0,
                                        k == MH_G2G ? other : v1, 4096 + k,
                                        false, &st) == 0,
                          "after death");
            TK_CHECK_GOTO(mf_status_is_peer_error(st),
                          "%s with a dead rank: %s", mh_kind_names[k],
                          mf_status_name(st));
        }
        TK_CHECK_GOTO(mh_copy_risky(ctx, MH_G2G, live[(me + 3) % n], v0, 5000,
                                    true, &st) == 0,
                      "after death");
        TK_CHECK_GOTO(mf_status_is_peer_error(st), "G2G into a dead rank: %s",
                      mf_status_name(st));
        /* a batch with one piece for a dead rank */
        memset(ctx->lsrc, 0x5a, 3 * 4096);
        for (k = 0; k < 3; k++) {
            pieces[k].src = (uint64_t)(uintptr_t)(ctx->lsrc + k * 4096);
            pieces[k].dst = it_gva(&ctx->pool, k == 1 ? v0 : live[(me + k) % n],
                                   RO_SIZE + me * SLOT_SIZE + k * 8192);
            pieces[k].size = 4096;
        }
        st = mf_bm_copy_batch(ctx->pool.bm, pieces, 3, MF_COPY_LH2GH, results);
        TK_CHECK_GOTO(mf_status_is_peer_error(st), "batch: %s",
                      mf_status_name(st));
        TK_CHECK_GOTO(mf_status_is_peer_error(results[1]), "dead piece: %s",
                      mf_status_name(results[1]));
        TK_CHECK_GOTO(results[0] <= MF_OK && results[2] <= MF_OK,
                      "live pieces: %d %d", (int)results[0], (int)results[2]);
        TK_CHECK_OK_GOTO(mf_store_add(ctx->pool.store, "noticed", 1, &count));
    }
    /* The others copy among the living meanwhile (across hosts too). */
    while (count < (int64_t)(HOSTS - 1)) {
        if (me % PER_HOST != 0) {
            TK_CHECK_GOTO(mh_copy_among(ctx, live, n, 2 * MIB) == 0,
                          "copy among the living while host %d dies",
                          VICTIM_HOST);
        }
        TK_CHECK_OK_GOTO(mf_store_add(ctx->pool.store, "noticed", 0, &count));
        TK_CHECK_GOTO(tk_time_ms() < deadline,
                      "the deaths were not noticed by all");
        if (me % PER_HOST == 0) {
            tk_sleep_ms(10);
        }
    }
    /* And everybody keeps working among the living. */
    for (k = 0; k < 16; k++) {
        TK_CHECK_GOTO(mh_copy_among(ctx, live, n, MAX_COPY) == 0,
                      "copy among the living after the deaths");
    }
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "after", n));
    return 0;
fail:
    return 1;
}

static int mh_rank_kill(int index, void *arg)
{
    mh_ctx_t ctx;
    int ret = 1;

    if (mh_open(&ctx, (uint32_t)index, 4) != 0) {
        goto out;
    }
    if (HOST_OF(index) != VICTIM_HOST) {
        ret = mh_kill_survivor(&ctx);
        goto out;
    }
    TK_CHECK_OK_GOTO(it_barrier(&ctx.pool, "armed", WORLD));
    tk_sleep_ms(300); /* the others are copying to and from here */
    raise(SIGKILL);
fail:
out:
    return mh_close(&ctx, ret, WORLD - PER_HOST, false);
}

/* ------------------------------------------- lanes closed mid-transfer */

static bool mh_stopped(void)
{
    struct pollfd pfd = {g_stop[0], POLLIN, 0};
    char c;

    return poll(&pfd, 1, 0) == 1 && read(g_stop[0], &c, 1) <= 0;
}

static bool mh_between_broken(uint32_t me, uint32_t peer)
{
    return (HOST_OF(me) == BREAK_A && HOST_OF(peer) == BREAK_B) ||
           (HOST_OF(me) == BREAK_B && HOST_OF(peer) == BREAK_A);
}

static int mh_rank_lanes(int index, void *arg)
{
    const uint32_t me = (uint32_t)index;
    uint32_t all[WORLD], a, b, r;
    unsigned oks = 0, errs = 0, iter, pass;
    uint64_t t0, dt;
    mf_status_t st;
    mh_ctx_t ctx;
    mh_piece_t pc;
    mh_kind_t kind;
    int ret = 1;
    char c = 'r';
    bool bad;

    close(g_ready[0]);
    close(g_stop[1]);
    for (r = 0; r < WORLD; r++) {
        all[r] = r;
    }
    if (mh_open(&ctx, me, 5) != 0) {
        goto out;
    }
    TK_CHECK_GOTO(write(g_ready[1], &c, 1) == 1, "ready");
    close(g_ready[1]);
    for (iter = 0; !mh_stopped(); iter++) {
        size_t size = tk_rng_size(&ctx.rng, 256 * KIB, MAX_COPY);
        uint32_t peer;

        kind = tk_rng_range(&ctx.rng, 0, 2);
        if (HOST_OF(me) == BREAK_A || HOST_OF(me) == BREAK_B) {
            /* mostly across the lanes that break */
            peer = (HOST_OF(me) == BREAK_A ? BREAK_B : BREAK_A) * PER_HOST +
                   (uint32_t)tk_rng_range(&ctx.rng, 0, PER_HOST - 1);
        } else {
            peer = tk_rng_range(&ctx.rng, 0, WORLD - 1);
        }
        a = kind == MH_G2G ? tk_rng_range(&ctx.rng, 0, WORLD - 1) : peer;
        b = peer;
        mh_reset(&ctx);
        t0 = tk_time_ms();
        st = mh_prepare(&ctx, kind, a, b, size, &pc);
        if (st == MF_OK) {
            st = mf_bm_copy(ctx.pool.bm, pc.src, pc.dst, pc.size,
                            mh_dir(kind, false));
        }
        if (st == MF_OK) {
            st = mh_verify(&ctx, &pc, "while lanes break", &bad);
            TK_CHECK_GOTO(st != MF_OK || !bad, "wrong bytes while lanes break");
        }
        dt = tk_time_ms() - t0;
        TK_CHECK_GOTO(dt < CALL_BOUND, "a copy took %llu ms: hangs",
                      (unsigned long long)dt);
        if (st == MF_OK) {
            oks++;
            continue;
        }
        errs++;
        TK_CHECK_GOTO(mf_status_is_peer_error(st), "%s %u->%u: %s",
                      mh_kind_names[kind], a, b, mf_status_name(st));
        /* only copies over the broken lanes may fail; a G2G may touch
         * them through its source too */
        TK_CHECK_GOTO(mh_between_broken(me, b) ||
                          (kind == MH_G2G && mh_between_broken(me, a)),
                      "%s %u->%u failed (%s) but uses no broken lane",
                      mh_kind_names[kind], a, b, mf_status_name(st));
    }
    tk_print("while lanes broke: %u copies ok, %u peer errors", oks, errs);
    TK_CHECK_OK_GOTO(it_barrier(&ctx.pool, "stopped", WORLD));
    /* A first pass may meet a lane whose break it had not seen yet;
     * after it every copy succeeds. */
    for (pass = 0; pass < 2; pass++) {
        for (r = 0; r < WORLD; r++) {
            for (kind = 0; kind < 3; kind++) {
                mh_reset(&ctx);
                a = (r + 3) % WORLD;
                st = mh_prepare(&ctx, kind, kind == MH_G2G ? a : r, r,
                                tk_rng_size(&ctx.rng, 1, 2 * MIB), &pc);
                if (st == MF_OK) {
                    st = mf_bm_copy(ctx.pool.bm, pc.src, pc.dst, pc.size,
                                    mh_dir(kind, false));
                }
                if (st == MF_OK) {
                    st = mh_verify(&ctx, &pc, "after the breaks", &bad);
                    TK_CHECK_GOTO(st != MF_OK || !bad,
                                  "wrong bytes after breaks");
                }
                if (pass == 0 && st != MF_OK) {
                    TK_CHECK_GOTO(mf_status_is_peer_error(st),
                                  "%s with rank %u: %s", mh_kind_names[kind], r,
                                  mf_status_name(st));
                    tk_print(
                        "first copy after the breaks (%s with rank %u): %s",
                        mh_kind_names[kind], r, mf_status_name(st));
                }
                TK_CHECK_GOTO(pass == 0 || st == MF_OK,
                              "%s with rank %u after the breaks: %s",
                              mh_kind_names[kind], r, mf_status_name(st));
            }
        }
    }
    for (iter = 0; iter < 8; iter++) {
        TK_CHECK_GOTO(mh_copy_among(&ctx, all, WORLD, MAX_COPY) == 0,
                      "copy after the breaks");
    }
    ret = 0;
    goto out;
fail:
    ret = 1;
out:
    return mh_close(&ctx, ret, WORLD, false);
}

/* ------------------------------------------------------------ runner */

static void mh_spawn_world(tk_proc_fn fn, pid_t *pids)
{
    int r;

    for (r = 0; r < (int)WORLD; r++) {
        pids[r] = tk_netns_spawn(&g_net, HOST_OF(r), fn, r, NULL);
        if (pids[r] < 0) {
            tk_proc_kill_all();
            fail_msg("spawning rank %d", r);
        }
    }
}

static void mh_run(tk_proc_fn fn)
{
    pid_t pids[WORLD];
    int ret, stop;

    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    mh_spawn_world(fn, pids);
    ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, NULL);
    stop = it_store_stop(&g_store);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
}

static void test_mh_single(void **state)
{
    mh_run(mh_rank_single);
}

static void test_mh_batch(void **state)
{
    mh_run(mh_rank_batch);
}

static void test_mh_async(void **state)
{
    mh_run(mh_rank_async);
}

static void test_mh_kill_host(void **state)
{
    pid_t pids[WORLD], live[WORLD];
    int codes[WORLD], ret, stop, r, n = 0, victims_ok = 1;

    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    mh_spawn_world(mh_rank_kill, pids);
    for (r = 0; r < (int)WORLD; r++) {
        if (HOST_OF(r) != VICTIM_HOST) {
            live[n++] = pids[r];
        }
    }
    for (r = VICTIM_HOST * PER_HOST; r < (VICTIM_HOST + 1) * PER_HOST; r++) {
        codes[r] = tk_proc_wait(pids[r], CHILD_LIMIT);
        if (codes[r] != 128 + SIGKILL) {
            tk_print("victim rank %d ended with %d", r, codes[r]);
            victims_ok = 0;
        }
    }
    ret = tk_proc_wait_all(live, n, CHILD_LIMIT, NULL);
    stop = it_store_stop(&g_store);
    assert_true(victims_ok);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
}

static void test_mh_lane_break(void **state)
{
    pid_t pids[WORLD];
    int ret, stop, r, k, broke = 0;
    bool ss_ok = true;
    char c;

    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    assert_int_equal(pipe2(g_ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(g_stop, O_CLOEXEC), 0);
    mh_spawn_world(mh_rank_lanes, pids);
    close(g_ready[1]);
    close(g_stop[0]);
    /* Wait for every rank's ready byte. */
    for (r = 0; r < (int)WORLD; r++) {
        struct pollfd pfd = {g_ready[0], POLLIN, 0};

        if (poll(&pfd, 1, WAIT_MS) != 1 || read(g_ready[0], &c, 1) != 1) {
            break;
        }
    }
    ret = r == (int)WORLD ? 0 : -1;
    for (k = 0; ret == 0 && k < 8; k++) {
        int host = k % 2 ? BREAK_B : BREAK_A;
        int peer = k % 2 ? BREAK_A : BREAK_B;

        tk_sleep_ms(250);
        if (ss_ok) {
            int res = tk_netns_break_conn(&g_net, host, peer, (unsigned)k, 0);

            if (res < 0) {
                tk_print("NOTE: ss -K does not work here (no "
                         "CONFIG_INET_DIAG_DESTROY?): flapping the link of "
                         "host %d instead",
                         host);
                ss_ok = false;
            } else {
                broke += res;
            }
        }
        if (!ss_ok && tk_netns_link_flap(&g_net, host, 200) != 0) {
            ret = -1;
        }
    }
    tk_print("%d TCP connections closed from outside", broke);
    tk_sleep_ms(500);
    close(g_stop[1]);
    g_stop[1] = -1;
    if (ret == 0) {
        ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, NULL);
    } else {
        tk_proc_kill_all();
    }
    close(g_ready[0]);
    stop = it_store_stop(&g_store);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
    assert_true(!ss_ok || broke > 0);
}

static int mh_setup(void **state)
{
    if (tk_netns_create(&g_net, HOSTS) != 0) {
        return -1;
    }
    g_have_net = true;
    return 0;
}

static int mh_teardown(void **state)
{
    if (g_have_net) {
        tk_netns_destroy(&g_net);
        g_have_net = false;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mh_single),
        cmocka_unit_test(test_mh_batch),
        cmocka_unit_test(test_mh_async),
        cmocka_unit_test(test_mh_kill_host),
        cmocka_unit_test(test_mh_lane_break),
    };
    const struct CMUnitTest tests_ucx[] = {
        cmocka_unit_test(test_mh_single),
        cmocka_unit_test(test_mh_batch),
        cmocka_unit_test(test_mh_async),
        cmocka_unit_test(test_mh_kill_host),
    };

    mf_bm_config_t cfg;
    char value[16] = "";

    tk_netns_require();
    if (!it_has_transport("tcp")) {
        printf("SKIP: this build of the library has no tcp transport\n");
        return TK_NETNS_SKIP;
    }
    mf_bm_config_init(&cfg);
    if (it_has_transport("ucx") &&
        mf_bm_config_get(&cfg, "ucx.auto", value, sizeof(value)) == MF_OK &&
        strcmp(value, "always") == 0) {
        g_cross = "ucx";
        printf("other hosts over ucx (ucx.auto = always)\n");
        return tk_group_run(tests_ucx, mh_setup, mh_teardown);
    }
    return tk_group_run(tests, mh_setup, mh_teardown);
}
