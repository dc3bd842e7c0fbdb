/*
 * BM copies between 4 rank processes of one pool on one host, once over
 * every transport of the library (`transport` set to its name in every
 * rank; each reaches peers of the same host: shm maps their segments, tcp
 * moves bytes over loopback).
 *
 * Every direction (LH2GH, GH2LH, GH2GH and AUTO inferring each of them)
 * between every pair of ranks, with sizes from 1 byte to 8 MiB and
 * unaligned offsets, single, batched and asynchronous; every copied byte is
 * checked, and so are 16 guard bytes on each side of every destination.
 *
 * Segment layout (the same in every rank):
 *   [0, RO_SIZE)                 read-only pattern of the owning rank,
 *                                written before the first barrier;
 *   SLOT(w) = [RO_SIZE + w * SLOT_SIZE, + SLOT_SIZE)
 *                                scratch that only rank w writes into.
 * So the ranks copy concurrently without ever racing on a byte.
 *
 * A peer's segment is memory of this process only where the transport
 * maps it: the test writes and reads a peer's bytes (poison, checks)
 * through copies, its own segment's directly.  Reads of peers' bytes
 * are checked on their own (G2L from the read-only zones), so a read-back
 * can be trusted.
 */
#include "it_helpers.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WORLD      4u
#define MIB        (1024ull * 1024)
#define RO_SIZE    (9 * MIB)
#define SLOT_SIZE  (9 * MIB)
#define SEG_SIZE   (RO_SIZE + WORLD * SLOT_SIZE) /* 45 MiB */
#define STRIDE     (64 * MIB)
#define MAX_COPY   (8 * MIB)
#define ARENA_SIZE (24 * MIB)
#define GUARD      16
#define RO_SEED(r) (1000u + (r))
#define MAX_PIECES 64
#define CHECK_SIZE                                                             \
    (9 * MIB) /* a peer's bytes read back: a piece with its                    \
                 guards, a KV block */
#define WAIT_MS     30000
#define CHILD_LIMIT 240000

typedef enum cp_kind { CP_L2G, CP_G2L, CP_G2G } cp_kind_t;

static const char *cp_kind_names[] = {"L2G", "G2L", "G2G"};

/* Where one piece goes, and what must arrive there. */
typedef struct cp_piece {
    uint64_t src;
    uint64_t dst;
    size_t size;
    uint64_t seed; /* the destination must hold pattern (seed, base) */
    uint64_t base;
    bool global; /* dst is a GVA (else memory of this process) */
    uint8_t poison;
} cp_piece_t;

/* Per-rank state of the test. */
typedef struct cp_ctx {
    it_pool_t pool;
    tk_rng_t rng;
    uint8_t *src_arena;
    uint8_t *dst_arena;
    size_t src_used;
    size_t dst_used;
    size_t arena_size;
    uint8_t *check; /* CHECK_SIZE bytes: a peer's bytes pass through it */
    size_t check_size;
    size_t slot_used[WORLD]; /* in my slot of each rank's segment */
    uint64_t slot_base;      /* my part of that slot (threads share it) */
    size_t slot_cap;
    uint64_t next_seed;
    unsigned verified; /* pieces checked byte for byte */
    uint64_t bytes;
    const char *transport;
} cp_ctx_t;

static it_store_t g_store;

static void cp_round_reset(cp_ctx_t *ctx)
{
    ctx->src_used = 0;
    ctx->dst_used = 0;
    memset(ctx->slot_used, 0, sizeof(ctx->slot_used));
}

/* Reserves size bytes after an unaligned gap, with GUARD bytes each side
 * that belong to nobody else; NULL when the area is full. */
static uint64_t cp_take(cp_ctx_t *ctx, size_t *used, size_t cap, size_t size,
                        bool *ok)
{
    uint64_t off = *used + GUARD + tk_rng_range(&ctx->rng, 0, 4095);

    if (off + size + GUARD > cap) {
        *ok = false;
        return 0;
    }
    *used = off + size + GUARD;
    *ok = true;
    return off;
}

/* Whether gva lies in this rank's own segment (always mapped here). */
static bool cp_own(cp_ctx_t *ctx, uint64_t gva)
{
    uint64_t own = it_gva(&ctx->pool, ctx->pool.rank, 0);

    return gva >= own && gva - own < SEG_SIZE;
}

/* The len bytes at gva as memory of this process: this rank's own
 * segment itself, a peer's read back into the check buffer (valid until
 * the next call).  NULL if that failed (printed). */
static const uint8_t *cp_global_view(cp_ctx_t *ctx, uint64_t gva, size_t len)
{
    mf_status_t st;

    if (cp_own(ctx, gva)) {
        return (const uint8_t *)(uintptr_t)gva;
    }
    if (len > ctx->check_size) {
        tk_print("cannot read back %zu bytes", len);
        return NULL;
    }
    st = mf_bm_copy(ctx->pool.bm, gva, (uint64_t)(uintptr_t)ctx->check, len,
                    MF_COPY_GH2LH);
    if (st != MF_OK) {
        tk_print("reading back %zu bytes at 0x%llx: %s", len,
                 (unsigned long long)gva, mf_status_name(st));
        return NULL;
    }
    return ctx->check;
}

/* Sets the len bytes at gva to value: in this rank's own segment itself,
 * in a peer's through a copy.  false if that failed (printed). */
static bool cp_global_fill(cp_ctx_t *ctx, uint64_t gva, int value, size_t len)
{
    mf_status_t st;

    if (cp_own(ctx, gva)) {
        memset((void *)(uintptr_t)gva, value, len);
        return true;
    }
    if (len > ctx->check_size) {
        tk_print("cannot write %zu bytes", len);
        return false;
    }
    memset(ctx->check, value, len);
    st = mf_bm_copy(ctx->pool.bm, (uint64_t)(uintptr_t)ctx->check, gva, len,
                    MF_COPY_LH2GH);
    if (st != MF_OK) {
        tk_print("writing %zu bytes at 0x%llx: %s", len,
                 (unsigned long long)gva, mf_status_name(st));
        return false;
    }
    return true;
}

/* Prepares one piece of the given kind and size: fills a local source,
 * poisons the destination and its guards, records what to expect. */
static bool cp_prepare(cp_ctx_t *ctx, cp_kind_t kind, uint32_t src_rank,
                       uint32_t dst_rank, size_t size, cp_piece_t *pc)
{
    it_pool_t *pool = &ctx->pool;
    uint64_t off;
    uint8_t first;
    bool ok;

    pc->size = size;
    if (kind == CP_L2G) {
        off = cp_take(ctx, &ctx->src_used, ctx->arena_size, size, &ok);
        if (!ok) {
            return false;
        }
        pc->seed = ctx->next_seed++;
        pc->base = 0;
        tk_pattern_fill(ctx->src_arena + off, size, pc->seed, 0);
        pc->src = (uint64_t)(uintptr_t)(ctx->src_arena + off);
    } else {
        /* from the read-only zone of src_rank, at an unaligned offset */
        off = tk_rng_range(&ctx->rng, 0, 4095); /* size <= RO_SIZE - 4 KiB */
        pc->seed = RO_SEED(src_rank);
        pc->base = off;
        pc->src = it_gva(pool, src_rank, off);
    }
    if (kind == CP_G2L) {
        off = cp_take(ctx, &ctx->dst_used, ctx->arena_size, size, &ok);
        if (!ok) {
            return false;
        }
        pc->dst = (uint64_t)(uintptr_t)(ctx->dst_arena + off);
    } else {
        off = cp_take(ctx, &ctx->slot_used[dst_rank], ctx->slot_cap, size, &ok);
        if (!ok) {
            return false;
        }
        pc->dst =
            it_gva(pool, dst_rank,
                   RO_SIZE + pool->rank * SLOT_SIZE + ctx->slot_base + off);
    }
    pc->global = kind != CP_G2L;
    tk_pattern_fill(&first, 1, pc->seed, pc->base);
    pc->poison = (uint8_t)~first;
    if (!pc->global) {
        memset((uint8_t *)(uintptr_t)pc->dst - GUARD, pc->poison,
               size + 2 * GUARD);
        return true;
    }
    return cp_global_fill(ctx, pc->dst - GUARD, pc->poison, size + 2 * GUARD);
}

static bool cp_verify(cp_ctx_t *ctx, const cp_piece_t *pc, const char *what)
{
    const uint8_t *view; /* the destination, as memory of this process */
    ssize_t bad;

    if (pc->global) {
        view = cp_global_view(ctx, pc->dst - GUARD, pc->size + 2 * GUARD);
        if (view == NULL) {
            return false;
        }
        view += GUARD;
    } else {
        view = (const uint8_t *)(uintptr_t)pc->dst;
    }
    bad = tk_pattern_check(view, pc->size, pc->seed, pc->base);
    if (bad >= 0) {
        tk_print("%s: %zu bytes 0x%llx -> 0x%llx: byte %zd differs "
                 "(got 0x%02x)",
                 what, pc->size, (unsigned long long)pc->src,
                 (unsigned long long)pc->dst, bad, view[bad]);
        return false;
    }
    bad = tk_mem_find_not(view - GUARD, pc->poison, GUARD);
    if (bad < 0) {
        bad = tk_mem_find_not(view + pc->size, pc->poison, GUARD);
        if (bad >= 0) {
            bad += GUARD + (ssize_t)pc->size;
        }
    }
    if (bad >= 0) {
        tk_print("%s: %zu bytes 0x%llx -> 0x%llx: guard byte %zd (from "
                 "dst - %d) overwritten",
                 what, pc->size, (unsigned long long)pc->src,
                 (unsigned long long)pc->dst, bad, GUARD);
        return false;
    }
    return true;
}

static bool cp_verify_count(cp_ctx_t *ctx, const cp_piece_t *pc,
                            const char *what)
{
    ctx->verified++;
    ctx->bytes += pc->size;
    return cp_verify(ctx, pc, what);
}

static mf_copy_dir_t cp_dir(cp_kind_t kind, bool autodir)
{
    static const mf_copy_dir_t dirs[] = {MF_COPY_LH2GH, MF_COPY_GH2LH,
                                         MF_COPY_GH2GH};
    return autodir ? MF_COPY_AUTO : dirs[kind];
}

/* ------------------------------------------------------------- setup */

/* What the library logs in a rank; an error fails the rank. */
static tk_log_t cp_log;

/* Opens this rank's pool over the named transport and fills its read-only
 * zone. */
static int cp_open(cp_ctx_t *ctx, uint64_t phase, const char *transport)
{
    it_pool_t *pool = &ctx->pool;
    mf_bm_config_t cfg;
    uint8_t *own;
    uint32_t r, owner;

    memset(ctx, 0, sizeof(*ctx));
    tk_log_start(&cp_log, TK_LOG_ECHO);
    ctx->transport = transport;
    ctx->arena_size = ARENA_SIZE;
    ctx->slot_cap = SLOT_SIZE;
    ctx->src_arena = malloc(ARENA_SIZE);
    ctx->dst_arena = malloc(ARENA_SIZE);
    ctx->check_size = CHECK_SIZE;
    ctx->check = malloc(CHECK_SIZE);
    TK_CHECK_GOTO(ctx->src_arena != NULL && ctx->dst_arena != NULL &&
                      ctx->check != NULL,
                  "malloc");
    it_bm_config(&cfg);
    TK_CHECK_OK_GOTO(mf_bm_config_set(&cfg, "transport", transport));
    TK_CHECK_OK_GOTO(it_pool_open(pool, g_store.url, WORLD, MF_RANK_AUTO,
                                  SEG_SIZE, STRIDE, &cfg, true));
    tk_rng_seed(&ctx->rng, phase * 100 + pool->rank);
    ctx->next_seed = (uint64_t)pool->rank << 32 | phase << 24;

    TK_CHECK_GOTO(mf_bm_world_size() == WORLD, "world %u", mf_bm_world_size());
    TK_CHECK_GOTO(mf_bm_local_size(pool->bm, MF_MEM_HOST) == SEG_SIZE,
                  "local size %llu",
                  (unsigned long long)mf_bm_local_size(pool->bm, MF_MEM_HOST));
    for (r = 0; r < WORLD; r++) {
        TK_CHECK_GOTO(it_gva(pool, r, 0) == it_gva(pool, 0, 0) + r * STRIDE,
                      "rank %u segment not at host_base + r * stride", r);
        TK_CHECK_OK_GOTO(
            mf_bm_rank_of_gva(pool->bm, it_gva(pool, r, 12345), &owner));
        TK_CHECK_GOTO(owner == r, "rank_of_gva gave %u for rank %u", owner, r);
    }
    TK_CHECK_GOTO(mf_bm_gva_of_rank(pool->bm, WORLD, MF_MEM_HOST) == NULL,
                  "gva_of_rank(world) not NULL");

    /* The read-only zone of my own segment, through its GVA. */
    own = mf_bm_gva_of_rank(pool->bm, pool->rank, MF_MEM_HOST);
    TK_CHECK_GOTO(own != NULL, "no GVA for my own rank");
    tk_pattern_fill(own, RO_SIZE, RO_SEED(pool->rank), 0);

    TK_CHECK_OK_GOTO(it_barrier(pool, "filled", WORLD));
    TK_CHECK_OK_GOTO(it_wait_all_joined(pool, WAIT_MS));
    return 0;
fail:
    return 1;
}

static int cp_close(cp_ctx_t *ctx, int ret)
{
    if (ret == 0 && ctx->pool.store != NULL) {
        /* nobody leaves while another still copies into its segment */
        if (it_barrier(&ctx->pool, "done", WORLD) != MF_OK) {
            ret = 1;
        }
    }
    if (ret == 0) {
        tk_print("%u pieces (%llu bytes) verified over %s", ctx->verified,
                 (unsigned long long)ctx->bytes, ctx->transport);
    }
    if (ret == 0 && tk_log_check_clean(&cp_log) != 0) {
        ret = 1;
    }
    it_pool_close(&ctx->pool);
    tk_log_stop(&cp_log);
    free(ctx->src_arena);
    free(ctx->dst_arena);
    free(ctx->check);
    return ret;
}

/* ------------------------------------------------------ single copies */

static int cp_one(cp_ctx_t *ctx, cp_kind_t kind, bool autodir, uint32_t a,
                  uint32_t b, size_t size)
{
    char what[96];
    cp_piece_t pc;

    snprintf(what, sizeof(what), "%s%s %u->%u", cp_kind_names[kind],
             autodir ? "(AUTO)" : "", kind == CP_L2G ? ctx->pool.rank : a, b);
    cp_round_reset(ctx);
    /* a is the source rank of G2G only; L2G writes to b, G2L reads b */
    TK_CHECK_GOTO(cp_prepare(ctx, kind, kind == CP_G2L ? b : a, b, size, &pc),
                  "no room");
    TK_CHECK_OK_GOTO(mf_bm_copy(ctx->pool.bm, pc.src, pc.dst, pc.size,
                                cp_dir(kind, autodir)));
    TK_CHECK_GOTO(cp_verify_count(ctx, &pc, what), "%s", what);
    return 0;
fail:
    tk_print("failed: %s, size %zu", what, size);
    return 1;
}

static int cp_rank_single(int index, void *arg)
{
    static const size_t fixed[] = {1, 7, 4096, 65537, MAX_COPY};
    cp_ctx_t ctx;
    unsigned a, b, i, k, autodir;
    int ret = 1;

    if (cp_open(&ctx, 1, arg) != 0) {
        goto out;
    }
    for (autodir = 0; autodir < 2; autodir++) {
        for (a = 0; a < WORLD; a++) {
            for (b = 0; b < WORLD; b++) {
                for (i = 0; i < 3; i++) {
                    size_t size = i == 0 ? fixed[(a + b + autodir) % 5]
                                         : tk_rng_size(&ctx.rng, 1, MAX_COPY);
                    for (k = 0; k < 3; k++) {
                        /* L2G and G2L only depend on one rank */
                        if (k != CP_G2G && a != 0) {
                            continue;
                        }
                        if (cp_one(&ctx, k, autodir, a, b, size) != 0) {
                            goto out;
                        }
                    }
                }
            }
        }
    }
    ret = 0;
out:
    return cp_close(&ctx, ret);
}

/* ----------------------------------------------------- batch copies */

static int cp_batch_round(cp_ctx_t *ctx, unsigned iter)
{
    cp_piece_t pcs[MAX_PIECES];
    mf_copy_piece_t pieces[MAX_PIECES];
    mf_status_t results[MAX_PIECES];
    mf_copy_dir_t dir;
    cp_kind_t kind = iter % 3;
    bool autodir = (iter / 3) % 2;
    size_t count, i;
    char what[64];

    cp_round_reset(ctx);
    count = tk_rng_range(&ctx->rng, 1, MAX_PIECES);
    for (i = 0; i < count; i++) {
        /* with AUTO every piece may go its own way */
        cp_kind_t k = autodir ? tk_rng_range(&ctx->rng, 0, 2) : kind;
        uint32_t a = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        uint32_t b = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        size_t size = tk_rng_size(&ctx->rng, 1, 128 * 1024);

        TK_CHECK_GOTO(cp_prepare(ctx, k, a, b, size, &pcs[i]), "no room");
        pieces[i].src = pcs[i].src;
        pieces[i].dst = pcs[i].dst;
        pieces[i].size = pcs[i].size;
        results[i] = (mf_status_t)12345;
    }
    dir = cp_dir(kind, autodir);
    snprintf(what, sizeof(what), "batch %u (%s, %zu pieces)", iter,
             mf_copy_dir_name(dir), count);
    TK_CHECK_OK_GOTO(
        mf_bm_copy_batch(ctx->pool.bm, pieces, count, dir, results));
    for (i = 0; i < count; i++) {
        TK_CHECK_GOTO(results[i] == MF_OK, "%s: piece %zu: %s", what, i,
                      mf_status_name(results[i]));
        TK_CHECK_GOTO(cp_verify_count(ctx, &pcs[i], what), "%s: piece %zu",
                      what, i);
    }
    /* Without a results array too. */
    TK_CHECK_OK_GOTO(mf_bm_copy_batch(ctx->pool.bm, pieces, count, dir, NULL));
    for (i = 0; i < count; i++) {
        TK_CHECK_GOTO(cp_verify_count(ctx, &pcs[i], what),
                      "%s (no results): piece %zu", what, i);
    }
    return 0;
fail:
    return 1;
}

/* One piece crosses the end of a segment: the batch reports it, every
 * piece reported MF_OK holds its data. */
static int cp_batch_bad_piece(cp_ctx_t *ctx)
{
    cp_piece_t pcs[8];
    mf_copy_piece_t pieces[8];
    mf_status_t results[8];
    uint32_t peer = (ctx->pool.rank + 1) % WORLD;
    size_t i, bad = 5, count = 8;
    mf_status_t st;

    cp_round_reset(ctx);
    for (i = 0; i < count; i++) {
        TK_CHECK_GOTO(cp_prepare(ctx, CP_L2G, 0, peer, 1000 + i, &pcs[i]),
                      "no room");
        pieces[i].src = pcs[i].src;
        pieces[i].dst = pcs[i].dst;
        pieces[i].size = pcs[i].size;
    }
    pieces[bad].dst = it_gva(&ctx->pool, peer, SEG_SIZE - 10);
    pieces[bad].size = 100;
    st = mf_bm_copy_batch(ctx->pool.bm, pieces, count, MF_COPY_LH2GH, results);
    TK_CHECK_GOTO(st == MF_ERR_OUT_OF_RANGE, "batch with a bad piece: %s",
                  mf_status_name(st));
    TK_CHECK_GOTO(results[bad] == MF_ERR_OUT_OF_RANGE, "bad piece: %s",
                  mf_status_name(results[bad]));
    for (i = 0; i < count; i++) {
        if (i == bad) {
            continue;
        }
        TK_CHECK_GOTO(results[i] <= MF_OK, "piece %zu: %d", i, (int)results[i]);
        if (results[i] == MF_OK) {
            TK_CHECK_GOTO(cp_verify(ctx, &pcs[i], "batch with a bad piece"),
                          "piece %zu reported MF_OK", i);
        }
    }
    return 0;
fail:
    return 1;
}

/* The KV-cache block layout: 61 x 128 KiB + 61 x 16 KiB pieces from
 * separate buffers into one contiguous area of a peer, and back. */
static int cp_batch_kv(cp_ctx_t *ctx)
{
    enum { KV_LAYERS = 61, KV_PIECES = 2 * KV_LAYERS };
    mf_copy_piece_t pieces[KV_PIECES];
    mf_status_t results[KV_PIECES];
    uint8_t *bufs[KV_PIECES] = {NULL};
    uint32_t peer = (ctx->pool.rank + 2) % WORLD;
    uint64_t area =
        it_gva(&ctx->pool, peer, RO_SIZE + ctx->pool.rank * SLOT_SIZE);
    uint64_t seed = ctx->next_seed++;
    const uint8_t *view;
    size_t i, off = 0, size;
    int ret = 1;

    for (i = 0; i < KV_PIECES; i++) {
        size = i < KV_LAYERS ? 128 * 1024 : 16 * 1024;
        bufs[i] = malloc(size);
        TK_CHECK_GOTO(bufs[i] != NULL, "malloc");
        tk_pattern_fill(bufs[i], size, seed, off);
        pieces[i].src = (uint64_t)(uintptr_t)bufs[i];
        pieces[i].dst = area + off;
        pieces[i].size = size;
        off += size;
    }
    TK_CHECK_GOTO(off == 8994816, "KV block is %zu bytes", off);
    TK_CHECK_GOTO(cp_global_fill(ctx, area, 0, off), "clearing the KV area");
    TK_CHECK_OK_GOTO(mf_bm_copy_batch(ctx->pool.bm, pieces, KV_PIECES,
                                      MF_COPY_LH2GH, results));
    view = cp_global_view(ctx, area, off);
    TK_CHECK_GOTO(view != NULL && tk_pattern_check(view, off, seed, 0) < 0,
                  "KV block in rank %u differs", peer);
    /* back, into the cleared separate buffers */
    for (i = 0; i < KV_PIECES; i++) {
        uint64_t tmp = pieces[i].src;

        memset(bufs[i], 0, pieces[i].size);
        pieces[i].src = pieces[i].dst;
        pieces[i].dst = tmp;
    }
    TK_CHECK_OK_GOTO(mf_bm_copy_batch(ctx->pool.bm, pieces, KV_PIECES,
                                      MF_COPY_GH2LH, results));
    for (i = 0, off = 0; i < KV_PIECES; i++) {
        TK_CHECK_GOTO(results[i] == MF_OK, "piece %zu: %s", i,
                      mf_status_name(results[i]));
        TK_CHECK_GOTO(tk_pattern_check(bufs[i], pieces[i].size, seed, off) < 0,
                      "KV piece %zu read back differs", i);
        off += pieces[i].size;
    }
    ret = 0;
fail:
    for (i = 0; i < KV_PIECES; i++) {
        free(bufs[i]);
    }
    return ret;
}

static int cp_rank_batch(int index, void *arg)
{
    cp_ctx_t ctx;
    unsigned iter;
    int ret = 1;

    if (cp_open(&ctx, 2, arg) != 0) {
        goto out;
    }
    /* half of the rounds with the local arenas registered */
    for (iter = 0; iter < 24; iter++) {
        if (iter == 12) {
            TK_CHECK_OK_GOTO(
                mf_bm_register(ctx.pool.bm, ctx.src_arena, ARENA_SIZE));
            TK_CHECK_OK_GOTO(
                mf_bm_register(ctx.pool.bm, ctx.dst_arena, ARENA_SIZE));
            TK_CHECK_ST_GOTO(
                mf_bm_register(ctx.pool.bm, ctx.src_arena + 4096, 4096),
                MF_ERR_EXISTS);
            TK_CHECK_ST_GOTO(
                mf_bm_register(ctx.pool.bm, ctx.dst_arena - 4096, 8192),
                MF_ERR_EXISTS);
        }
        if (cp_batch_round(&ctx, iter) != 0) {
            goto out;
        }
    }
    TK_CHECK_OK_GOTO(mf_bm_unregister(ctx.pool.bm, ctx.src_arena));
    TK_CHECK_OK_GOTO(mf_bm_unregister(ctx.pool.bm, ctx.dst_arena));
    TK_CHECK_ST_GOTO(mf_bm_unregister(ctx.pool.bm, ctx.dst_arena),
                     MF_ERR_NOT_FOUND);
    if (cp_batch_bad_piece(&ctx) != 0 || cp_batch_kv(&ctx) != 0) {
        goto out;
    }
    ret = 0;
    goto out;
fail:
    ret = 1;
out:
    return cp_close(&ctx, ret);
}

/* ----------------------------------------------------- async copies */

#define ASYNC_REQS   16
#define ASYNC_PIECES 8

typedef struct cp_async {
    mf_bm_req_t *req;
    cp_piece_t pcs[ASYNC_PIECES];
    size_t count;
    bool done;
} cp_async_t;

static int cp_async_round(cp_ctx_t *ctx, unsigned round)
{
    cp_async_t reqs[ASYNC_REQS];
    mf_copy_piece_t pieces[ASYNC_PIECES];
    uint64_t deadline;
    size_t i, j;
    mf_status_t st;
    unsigned pending;

    memset(reqs, 0, sizeof(reqs));
    cp_round_reset(ctx);
    for (i = 0; i < ASYNC_REQS; i++) {
        cp_async_t *rq = &reqs[i];
        cp_kind_t kind = (i + round) % 3;
        bool autodir = (i / 3 + round) % 2;
        uint32_t a = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        uint32_t b = tk_rng_range(&ctx->rng, 0, WORLD - 1);
        mf_copy_dir_t dir = cp_dir(kind, autodir);

        if (i % 2 == 0) {
            rq->count = 1;
            TK_CHECK_GOTO(cp_prepare(ctx, kind, a, b,
                                     tk_rng_size(&ctx->rng, 1, 480 * 1024),
                                     &rq->pcs[0]),
                          "no room");
            st = mf_bm_copy_async(ctx->pool.bm, rq->pcs[0].src, rq->pcs[0].dst,
                                  rq->pcs[0].size, dir, &rq->req);
        } else {
            rq->count = tk_rng_range(&ctx->rng, 1, ASYNC_PIECES);
            for (j = 0; j < rq->count; j++) {
                TK_CHECK_GOTO(cp_prepare(ctx, kind, a, b,
                                         tk_rng_size(&ctx->rng, 1, 48 * 1024),
                                         &rq->pcs[j]),
                              "no room");
                pieces[j].src = rq->pcs[j].src;
                pieces[j].dst = rq->pcs[j].dst;
                pieces[j].size = rq->pcs[j].size;
            }
            st = mf_bm_copy_batch_async(ctx->pool.bm, pieces, rq->count, dir,
                                        &rq->req);
            /* the library copied the array: scribble over ours */
            memset(pieces, 0xff, sizeof(pieces));
        }
        TK_CHECK_GOTO(st == MF_OK || st == MF_INPROGRESS,
                      "async request %zu: %s", i, mf_status_name(st));
        TK_CHECK_GOTO(rq->req != NULL, "async request %zu: no request", i);
    }

    /* Half complete through mf_bm_wait, half through polling mf_bm_test. */
    for (i = 0; i < ASYNC_REQS; i += 2) {
        if (i % 4 == 0) {
            st = mf_bm_wait(reqs[i].req, 0);
            if (st == MF_ERR_TIMEOUT) {
                st = mf_bm_wait(reqs[i].req, WAIT_MS);
            }
        } else {
            st = mf_bm_wait(reqs[i].req, WAIT_MS);
        }
        TK_CHECK_OK_GOTO(st);
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
    } while (pending > 0);

    for (i = 0; i < ASYNC_REQS; i++) {
        for (j = 0; j < reqs[i].count; j++) {
            TK_CHECK_GOTO(cp_verify_count(ctx, &reqs[i].pcs[j], "async"),
                          "request %zu piece %zu", i, j);
        }
    }
    return 0;
fail:
    /* requests still in flight are the library's; the process exits */
    return 1;
}

static int cp_rank_async(int index, void *arg)
{
    cp_ctx_t ctx;
    unsigned round;
    int ret = 1;

    if (cp_open(&ctx, 3, arg) != 0) {
        goto out;
    }
    for (round = 0; round < 6; round++) {
        if (cp_async_round(&ctx, round) != 0) {
            goto out;
        }
    }
    ret = 0;
out:
    return cp_close(&ctx, ret);
}

/* ------------------------------------------- concurrent copy threads */

#define CP_THREADS     4
#define CP_THREAD_ITER 40

typedef struct cp_thread {
    pthread_t tid;
    cp_ctx_t ctx;
    unsigned index;
    int ret;
} cp_thread_t;

/* Single, batched and asynchronous copies from one of several threads of
 * a rank at once, each in its own part of the scratch areas. */
static void *cp_thread_main(void *arg)
{
    cp_thread_t *th = arg;
    cp_ctx_t *ctx = &th->ctx;
    mf_copy_piece_t pieces[16];
    mf_status_t results[16];
    cp_piece_t pcs[16];
    mf_bm_req_t *req;
    unsigned iter;
    size_t i, count;

    for (iter = 0; iter < CP_THREAD_ITER; iter++) {
        cp_kind_t kind = tk_rng_range(&ctx->rng, 0, 2);
        bool autodir = tk_rng_range(&ctx->rng, 0, 1);
        mf_copy_dir_t dir = cp_dir(kind, autodir);

        cp_round_reset(ctx);
        count = iter % 3 == 1 ? tk_rng_range(&ctx->rng, 2, 16) : 1;
        for (i = 0; i < count; i++) {
            uint32_t a = tk_rng_range(&ctx->rng, 0, WORLD - 1);
            uint32_t b = tk_rng_range(&ctx->rng, 0, WORLD - 1);
            size_t size = count > 1 ? tk_rng_size(&ctx->rng, 1, 64 * 1024)
                                    : tk_rng_size(&ctx->rng, 1, MIB);

            TK_CHECK_GOTO(cp_prepare(ctx, kind, a, b, size, &pcs[i]),
                          "no room");
            pieces[i].src = pcs[i].src;
            pieces[i].dst = pcs[i].dst;
            pieces[i].size = pcs[i].size;
        }
        switch (iter % 3) {
        case 0:
            TK_CHECK_OK_GOTO(mf_bm_copy(ctx->pool.bm, pieces[0].src,
                                        pieces[0].dst, pieces[0].size, dir));
            break;
        case 1:
            TK_CHECK_OK_GOTO(
                mf_bm_copy_batch(ctx->pool.bm, pieces, count, dir, results));
            break;
        default:
            req = NULL;
            TK_CHECK_GOTO(mf_bm_copy_async(ctx->pool.bm, pieces[0].src,
                                           pieces[0].dst, pieces[0].size, dir,
                                           &req) >= MF_OK,
                          "async copy failed");
            TK_CHECK_OK_GOTO(mf_bm_wait(req, WAIT_MS));
            break;
        }
        for (i = 0; i < count; i++) {
            TK_CHECK_GOTO(cp_verify_count(ctx, &pcs[i], "threaded"),
                          "thread %u iteration %u piece %zu", th->index, iter,
                          i);
        }
    }
    th->ret = 0;
    return NULL;
fail:
    th->ret = 1;
    return NULL;
}

static int cp_rank_threads(int index, void *arg)
{
    static cp_thread_t threads[CP_THREADS];
    cp_ctx_t ctx;
    unsigned t, started = 0;
    int ret = 1;

    if (cp_open(&ctx, 4, arg) != 0) {
        goto out;
    }
    for (t = 0; t < CP_THREADS; t++) {
        cp_thread_t *th = &threads[t];

        memset(th, 0, sizeof(*th));
        th->index = t;
        th->ctx.pool = ctx.pool; /* the same pool, shared */
        th->ctx.arena_size = ARENA_SIZE / CP_THREADS;
        th->ctx.src_arena = ctx.src_arena + t * th->ctx.arena_size;
        th->ctx.dst_arena = ctx.dst_arena + t * th->ctx.arena_size;
        th->ctx.check_size = CHECK_SIZE / CP_THREADS;
        th->ctx.check = ctx.check + t * th->ctx.check_size;
        th->ctx.slot_cap = SLOT_SIZE / CP_THREADS;
        th->ctx.slot_base = t * th->ctx.slot_cap;
        th->ctx.next_seed = ctx.next_seed + ((uint64_t)t << 20);
        tk_rng_seed(&th->ctx.rng, 4000 + ctx.pool.rank * 10 + t);
        th->ret = 1;
    }
    for (t = 0; t < CP_THREADS; t++) {
        TK_CHECK_GOTO(pthread_create(&threads[t].tid, NULL, cp_thread_main,
                                     &threads[t]) == 0,
                      "pthread_create");
        started++;
    }
    ret = 0;
fail:
    for (t = 0; t < started; t++) {
        pthread_join(threads[t].tid, NULL);
        ret |= threads[t].ret;
        ctx.verified += threads[t].ctx.verified;
        ctx.bytes += threads[t].ctx.bytes;
    }
out:
    return cp_close(&ctx, ret);
}

/* ------------------------------------------------------------ runner */

/* Runs fn in WORLD ranks with a store of their own, once over every
 * transport of the library. */
static void cp_run(tk_proc_fn fn)
{
    size_t count = mf_bm_transport_count(), i;
    pid_t pids[WORLD];
    int codes[WORLD];
    int ret, stop;

    assert_true(count >= 1);
    assert_null(mf_bm_transport_name(count));
    for (i = 0; i < count; i++) {
        const char *transport = mf_bm_transport_name(i);

        assert_non_null(transport);
        if (!tk_transport_wanted(transport)) {
            continue;
        }
        printf("  transport %s\n", transport);
        fflush(stdout);
        assert_int_equal(it_store_start(&g_store), 0);
        ret = tk_proc_spawn_n(WORLD, fn, (void *)transport, pids);
        if (ret == 0) {
            ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, codes);
        }
        stop = it_store_stop(&g_store);
        assert_int_equal(ret, 0);
        assert_int_equal(stop, 0);
    }
}

static void test_copy_single(void **state)
{
    cp_run(cp_rank_single);
}

static void test_copy_batch(void **state)
{
    cp_run(cp_rank_batch);
}

static void test_copy_async(void **state)
{
    cp_run(cp_rank_async);
}

static void test_copy_threads(void **state)
{
    cp_run(cp_rank_threads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_single),
        cmocka_unit_test(test_copy_batch),
        cmocka_unit_test(test_copy_async),
        cmocka_unit_test(test_copy_threads),
    };

    return tk_group_run(tests, NULL, NULL);
}
