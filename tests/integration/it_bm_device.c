/*
 * BM copies with device memory between 2 rank processes of one host, each
 * with a host and a device segment, against the driver MF_CUDA_LIBRARY
 * names (the fake driver of tests/fakecuda in CI, the real one on a GPU).
 *
 * Every direction (the twelve of mf_copy_dir_t and AUTO inferring the
 * device ones), to and from both ranks (the own segments and the peer's,
 * which shm maps at its GVA: a device GVA is a device pointer), sizes from
 * 1 byte to 1 MiB at odd offsets, single, batched and asynchronous; every
 * byte checked through the driver.  Wrong kinds and ranges are refused.
 * The same again over tcp alone, which stages device data through host
 * memory on both sides, and between two hosts (network namespaces; skipped
 * where they cannot be made).  A device window the driver puts elsewhere fails
 * pool creation on every rank, naming the address; a rank killed in the
 * middle of device copies leaves the other working.
 *
 * Segment layout (host and device alike, 8 MiB):
 *   [0, 4 MiB)                   read-only pattern of the owner
 *   [4 MiB + w * 2 MiB, + 2 MiB) scratch only rank w writes
 */
#include "it_helpers.h"
#include "tk_cuda.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WORLD       2u
#define MIB         (1024ull * 1024)
#define SEG_SIZE    (8 * MIB)
#define STRIDE      (16 * MIB)
#define RO_SIZE     (4 * MIB)
#define SLOT(w)     (RO_SIZE + (uint64_t)(w)*2 * MIB)
#define SLOT_SIZE   (2 * MIB)
#define BUF_SIZE    (4 * MIB)
#define HOST_SEED   100u
#define DEV_SEED    200u
#define CHILD_LIMIT 240000

static it_store_t g_store;
static const char *g_transport = "auto";

typedef struct dv_ctx {
    it_pool_t pool;
    uint8_t *lh; /* local host buffer */
    uint8_t *ld; /* local device buffer */
    uint8_t *check;
} dv_ctx_t;

static uint64_t dv_gva(dv_ctx_t *c, uint32_t rank, bool dev, uint64_t off)
{
    return (uint64_t)(uintptr_t)mf_bm_gva_of_rank(
               c->pool.bm, rank, dev ? MF_MEM_DEVICE : MF_MEM_HOST) +
           off;
}

/* size bytes at a device (dev) or host address hold pattern seed from
 * byte base of the object. */
static int dv_holds(dv_ctx_t *c, const void *p, bool dev, size_t size,
                    uint64_t seed, uint64_t base)
{
    const uint8_t *host = p;
    ssize_t bad;

    if (dev) {
        memset(c->check, 0, size);
        TK_CHECK(tk_cuda_copy(c->check, p, size) == 0);
        host = c->check;
    }
    bad = tk_pattern_check(host, size, seed, base);
    if (bad >= 0) {
        tk_print("byte %zd of %zu (seed %llu base %llu) is wrong", bad, size,
                 (unsigned long long)seed, (unsigned long long)base);
        return -1;
    }
    return 0;
}

/* size bytes at a global address hold the pattern (read back GX2LH). */
static int dv_global_holds(dv_ctx_t *c, uint64_t gva, bool dev, size_t size,
                           uint64_t seed, uint64_t base)
{
    memset(c->lh, 0, size);
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, gva, (uint64_t)(uintptr_t)c->lh, size,
                           dev ? MF_COPY_GD2LH : MF_COPY_GH2LH));
    return dv_holds(c, c->lh, false, size, seed, base);
}

/* Fills a local buffer (device: through the driver) with a pattern. */
static void dv_fill(dv_ctx_t *c, void *p, bool dev, size_t size, uint64_t seed)
{
    tk_pattern_fill(c->check, size, seed, 0);
    if (dev) {
        TK_CHECK(tk_cuda_copy(p, c->check, size) == 0);
    } else {
        memcpy(p, c->check, size);
    }
}

static int dv_open(dv_ctx_t *c)
{
    mf_bm_config_t cfg;
    char why[256];

    memset(c, 0, sizeof(*c));
    if (tk_cuda_init(why, sizeof(why)) != 0) {
        tk_print("no device: %s", why);
        return -1;
    }
    it_bm_config(&cfg);
    TK_CHECK_OK(mf_bm_config_set(&cfg, "transport", g_transport));
    if (strcmp(g_transport, "ucx") == 0) {
        /* small staging chunks: a copy of 1 MiB takes 17 of them */
        TK_CHECK_OK(mf_bm_config_set(&cfg, "ucx.chunk_size", "64K"));
    }
    TK_CHECK_OK(it_pool_open_hbm(&c->pool, g_store.url, WORLD, MF_RANK_AUTO,
                                 SEG_SIZE, STRIDE, SEG_SIZE, STRIDE, &cfg,
                                 true));
    TK_CHECK_OK(it_wait_all_joined(&c->pool, 60000));
    c->lh = malloc(BUF_SIZE);
    c->check = malloc(BUF_SIZE);
    c->ld = tk_cuda_alloc(BUF_SIZE);
    TK_CHECK(c->lh != NULL && c->check != NULL && c->ld != NULL);
    TK_CHECK_OK(mf_bm_register(c->pool.bm, c->lh, BUF_SIZE));
    TK_CHECK_OK(mf_bm_register(c->pool.bm, c->ld, BUF_SIZE));
    return 0;
}

static int dv_close(dv_ctx_t *c, int ret)
{
    if (c->pool.bm != NULL) {
        if (it_barrier(&c->pool, "dv-done", WORLD) != MF_OK) {
            ret = 1;
        }
        mf_bm_unregister(c->pool.bm, c->lh);
        mf_bm_unregister(c->pool.bm, c->ld);
    }
    it_pool_close(&c->pool);
    tk_cuda_free(c->ld);
    free(c->lh);
    free(c->check);
    return ret;
}

/* Both segments of this rank: the owner's patterns. */
static void dv_fill_own(dv_ctx_t *c)
{
    uint32_t me = c->pool.rank;
    uint64_t off;

    TK_CHECK(mf_bm_local_size(c->pool.bm, MF_MEM_DEVICE) == SEG_SIZE);
    TK_CHECK(mf_bm_gva_of_rank(c->pool.bm, me, MF_MEM_DEVICE) != NULL);
    for (off = 0; off < RO_SIZE; off += BUF_SIZE) {
        tk_pattern_fill(c->lh, BUF_SIZE, HOST_SEED + me, off);
        TK_CHECK_OK(mf_bm_copy(c->pool.bm, (uint64_t)(uintptr_t)c->lh,
                               dv_gva(c, me, false, off), BUF_SIZE,
                               MF_COPY_LH2GH));
        tk_pattern_fill(c->lh, BUF_SIZE, DEV_SEED + me, off);
        TK_CHECK_OK(mf_bm_copy(c->pool.bm, (uint64_t)(uintptr_t)c->lh,
                               dv_gva(c, me, true, off), BUF_SIZE,
                               MF_COPY_LH2GD));
    }
}

static const size_t dv_sizes[] = {1, 7, 4095, 65537, MIB + 3};

/* Reads of rank p's segments into local host and device memory. */
static int dv_reads(dv_ctx_t *c, uint32_t p, size_t size, uint64_t off,
                    bool autodir)
{
    uint64_t lh = (uint64_t)(uintptr_t)c->lh, ld = (uint64_t)(uintptr_t)c->ld;
    mf_copy_dir_t d;

    d = autodir ? MF_COPY_AUTO : MF_COPY_GD2LH;
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, dv_gva(c, p, true, off), lh, size, d));
    TK_CHECK(dv_holds(c, c->lh, false, size, DEV_SEED + p, off) == 0);
    d = autodir ? MF_COPY_AUTO : MF_COPY_GD2LD;
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, dv_gva(c, p, true, off), ld, size, d));
    TK_CHECK(dv_holds(c, c->ld, true, size, DEV_SEED + p, off) == 0);
    d = autodir ? MF_COPY_AUTO : MF_COPY_GH2LD;
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, dv_gva(c, p, false, off), ld, size, d));
    TK_CHECK(dv_holds(c, c->ld, true, size, HOST_SEED + p, off) == 0);
    d = autodir ? MF_COPY_AUTO : MF_COPY_GH2LH;
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, dv_gva(c, p, false, off), lh, size, d));
    TK_CHECK(dv_holds(c, c->lh, false, size, HOST_SEED + p, off) == 0);
    return 0;
}

/* Writes from local memory into this rank's slot of p's segments. */
static int dv_writes(dv_ctx_t *c, uint32_t p, size_t size, uint64_t off,
                     bool autodir, uint64_t seed)
{
    uint64_t lh = (uint64_t)(uintptr_t)c->lh, ld = (uint64_t)(uintptr_t)c->ld;
    uint64_t slot = SLOT(c->pool.rank) + off;

    dv_fill(c, c->lh, false, size, seed);
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, lh, dv_gva(c, p, true, slot), size,
                           autodir ? MF_COPY_AUTO : MF_COPY_LH2GD));
    TK_CHECK(
        dv_global_holds(c, dv_gva(c, p, true, slot), true, size, seed, 0) == 0);
    dv_fill(c, c->ld, true, size, seed + 1);
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, ld, dv_gva(c, p, true, slot), size,
                           autodir ? MF_COPY_AUTO : MF_COPY_LD2GD));
    TK_CHECK(dv_global_holds(c, dv_gva(c, p, true, slot), true, size, seed + 1,
                             0) == 0);
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, ld, dv_gva(c, p, false, slot), size,
                           autodir ? MF_COPY_AUTO : MF_COPY_LD2GH));
    TK_CHECK(dv_global_holds(c, dv_gva(c, p, false, slot), false, size,
                             seed + 1, 0) == 0);
    dv_fill(c, c->lh, false, size, seed + 2);
    TK_CHECK_OK(mf_bm_copy(c->pool.bm, lh, dv_gva(c, p, false, slot), size,
                           autodir ? MF_COPY_AUTO : MF_COPY_LH2GH));
    TK_CHECK(dv_global_holds(c, dv_gva(c, p, false, slot), false, size,
                             seed + 2, 0) == 0);
    return 0;
}

/* Global to global: p's patterns into this rank's slots of q. */
static int dv_g2g(dv_ctx_t *c, uint32_t p, uint32_t q, size_t size,
                  uint64_t off, bool autodir)
{
    static const struct {
        bool sdev, ddev;
        mf_copy_dir_t dir;
    } kinds[] = {{false, true, MF_COPY_GH2GD},
                 {true, false, MF_COPY_GD2GH},
                 {true, true, MF_COPY_GD2GD},
                 {false, false, MF_COPY_GH2GH}};
    uint64_t slot = SLOT(c->pool.rank);

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        uint64_t src = dv_gva(c, p, kinds[k].sdev, off);
        uint64_t dst = dv_gva(c, q, kinds[k].ddev, slot);

        TK_CHECK_OK(mf_bm_copy(c->pool.bm, src, dst, size,
                               autodir ? MF_COPY_AUTO : kinds[k].dir));
        TK_CHECK(dv_global_holds(c, dst, kinds[k].ddev, size,
                                 (kinds[k].sdev ? DEV_SEED : HOST_SEED) + p,
                                 off) == 0);
    }
    return 0;
}

static int dv_rank_directions(int index, void *arg)
{
    dv_ctx_t c;
    int ret = 1;

    if (dv_open(&c) != 0) {
        return dv_close(&c, 1);
    }
    dv_fill_own(&c);
    TK_CHECK_OK(it_barrier(&c.pool, "dv-filled", WORLD));
    for (uint32_t p = 0; p < WORLD; p++) {
        for (size_t i = 0; i < sizeof(dv_sizes) / sizeof(dv_sizes[0]); i++) {
            uint64_t off = (i * 4099 + p * 13) % (RO_SIZE - dv_sizes[i]);
            bool autodir = i % 2 == 1;

            if (dv_reads(&c, p, dv_sizes[i], off, autodir) != 0 ||
                dv_writes(&c, p, dv_sizes[i], i * 61, autodir,
                          1000 + i * 10 + p) != 0 ||
                dv_g2g(&c, p, (p + 1) % WORLD, dv_sizes[i], off, autodir) !=
                    0) {
                tk_print("rank %u: peer %u, %zu bytes", c.pool.rank, p,
                         dv_sizes[i]);
                goto out;
            }
        }
    }
    ret = 0;
out:
    return dv_close(&c, ret);
}

/* A KV block in the peer's device segment: 61 x 16 KiB and 61 x 4 KiB,
 * read in one batch into local device memory, written back into the own
 * slot of the peer's device segment asynchronously. */
static int dv_rank_batch(int index, void *arg)
{
    enum { N = 122 };
    mf_copy_piece_t pieces[N];
    mf_status_t results[N];
    mf_bm_req_t *req;
    uint32_t p;
    dv_ctx_t c;
    uint64_t off = 0;

    if (dv_open(&c) != 0) {
        return dv_close(&c, 1);
    }
    dv_fill_own(&c);
    TK_CHECK_OK(it_barrier(&c.pool, "dv-filled", WORLD));
    p = (c.pool.rank + 1) % WORLD;
    for (int i = 0; i < N; i++) {
        size_t size = i < N / 2 ? 16 * 1024 : 4 * 1024;

        pieces[i].src = dv_gva(&c, p, true, off + 5);
        pieces[i].dst = (uint64_t)(uintptr_t)c.ld + off;
        pieces[i].size = size;
        off += size;
    }
    TK_CHECK_OK(mf_bm_copy_batch(c.pool.bm, pieces, N, MF_COPY_GD2LD, results));
    for (int i = 0; i < N; i++) {
        TK_CHECK(results[i] == MF_OK);
    }
    TK_CHECK(dv_holds(&c, c.ld, true, off, DEV_SEED + p, 5) == 0);
    /* back, asynchronously, into the own slot of the peer's segment */
    for (int i = 0; i < N; i++) {
        pieces[i].src = pieces[i].dst;
        pieces[i].dst = dv_gva(&c, p, true, SLOT(c.pool.rank)) +
                        (pieces[i].src - (uint64_t)(uintptr_t)c.ld);
    }
    TK_CHECK_OK(
        mf_bm_copy_batch_async(c.pool.bm, pieces, N, MF_COPY_AUTO, &req));
    TK_CHECK_OK(mf_bm_wait(req, 60000));
    TK_CHECK(dv_global_holds(&c, dv_gva(&c, p, true, SLOT(c.pool.rank)), true,
                             off, DEV_SEED + p, 5) == 0);
    /* single asynchronous copies, device to host and host to device */
    TK_CHECK_OK(mf_bm_copy_async(c.pool.bm, dv_gva(&c, p, true, 0),
                                 (uint64_t)(uintptr_t)c.lh, MIB, MF_COPY_GD2LH,
                                 &req));
    TK_CHECK_OK(mf_bm_wait(req, 60000));
    TK_CHECK(dv_holds(&c, c.lh, false, MIB, DEV_SEED + p, 0) == 0);
    return dv_close(&c, 0);
}

/*
 * Over ucx alone.  A local device buffer UCX cannot move itself goes to
 * and from the peer's host segment through host staging (64 KiB chunks,
 * two in flight), single, batched and asynchronous.  The peer's device
 * segment is served only where UCX moves device memory: reached and
 * checked there, unreachable with a clear status elsewhere (CI's UCX).
 */
static int dv_rank_ucx(int index, void *arg)
{
    enum { N = 122 };
    mf_copy_piece_t pieces[N];
    mf_status_t results[N], st;
    uint64_t ld, lh, off = 0;
    mf_bm_req_t *req;
    uint32_t p;
    dv_ctx_t c;

    if (dv_open(&c) != 0) {
        return dv_close(&c, 1);
    }
    dv_fill_own(&c);
    TK_CHECK_OK(it_barrier(&c.pool, "dv-filled", WORLD));
    p = (c.pool.rank + 1) % WORLD;
    ld = (uint64_t)(uintptr_t)c.ld;
    lh = (uint64_t)(uintptr_t)c.lh;
    for (size_t i = 0; i < sizeof(dv_sizes) / sizeof(dv_sizes[0]); i++) {
        size_t size = dv_sizes[i];
        uint64_t at = (i * 4099 + 13) % (RO_SIZE - size);
        uint64_t slot = dv_gva(&c, p, false, SLOT(c.pool.rank) + i * 61);

        TK_CHECK_OK(mf_bm_copy(c.pool.bm, dv_gva(&c, p, false, at), ld, size,
                               i % 2 ? MF_COPY_AUTO : MF_COPY_GH2LD));
        TK_CHECK(dv_holds(&c, c.ld, true, size, HOST_SEED + p, at) == 0);
        dv_fill(&c, c.ld, true, size, 500 + i);
        TK_CHECK_OK(mf_bm_copy(c.pool.bm, ld, slot, size,
                               i % 2 ? MF_COPY_AUTO : MF_COPY_LD2GH));
        TK_CHECK(dv_global_holds(&c, slot, false, size, 500 + i, 0) == 0);
    }
    /* a KV block of the peer's host segment into device memory, in one
     * batch, and back asynchronously */
    for (int i = 0; i < N; i++) {
        size_t size = i < N / 2 ? 16 * 1024 : 4 * 1024;

        pieces[i].src = dv_gva(&c, p, false, off + 5);
        pieces[i].dst = ld + off;
        pieces[i].size = size;
        off += size;
    }
    TK_CHECK_OK(mf_bm_copy_batch(c.pool.bm, pieces, N, MF_COPY_GH2LD, results));
    for (int i = 0; i < N; i++) {
        TK_CHECK(results[i] == MF_OK);
    }
    TK_CHECK(dv_holds(&c, c.ld, true, off, HOST_SEED + p, 5) == 0);
    for (int i = 0; i < N; i++) {
        pieces[i].src = pieces[i].dst;
        pieces[i].dst =
            dv_gva(&c, p, false, SLOT(c.pool.rank)) + (pieces[i].src - ld);
    }
    TK_CHECK_OK(
        mf_bm_copy_batch_async(c.pool.bm, pieces, N, MF_COPY_LD2GH, &req));
    TK_CHECK_OK(mf_bm_wait(req, 60000));
    TK_CHECK(dv_global_holds(&c, dv_gva(&c, p, false, SLOT(c.pool.rank)), false,
                             off, HOST_SEED + p, 5) == 0);
    /* the peer's device segment */
    mf_log_set_level(MF_LOG_OFF);
    st = mf_bm_copy(c.pool.bm, dv_gva(&c, p, true, 0), lh, MIB, MF_COPY_GD2LH);
    mf_log_set_level(MF_LOG_WARN);
    if (st == MF_OK) {
        TK_CHECK(dv_holds(&c, c.lh, false, MIB, DEV_SEED + p, 0) == 0);
    } else {
        TK_CHECK_GOTO(st == MF_ERR_UNREACHABLE, "device segment over ucx: %s",
                      mf_status_name(st));
    }
    return dv_close(&c, 0);
fail:
    return dv_close(&c, 1);
}

/* Wrong kinds and ranges: clear errors, nothing copied. */
static int dv_rank_errors(int index, void *arg)
{
    dv_ctx_t c;
    uint32_t p;
    uint64_t lh;

    if (dv_open(&c) != 0) {
        return dv_close(&c, 1);
    }
    p = (c.pool.rank + 1) % WORLD;
    lh = (uint64_t)(uintptr_t)c.lh;
    mf_log_set_level(MF_LOG_OFF);
    /* a device direction with a host segment's address, and back */
    TK_CHECK(mf_bm_copy(c.pool.bm, dv_gva(&c, p, false, 0), lh, 16,
                        MF_COPY_GD2LH) == MF_ERR_INVALID);
    TK_CHECK(mf_bm_copy(c.pool.bm, dv_gva(&c, p, true, 0), lh, 16,
                        MF_COPY_GH2LH) == MF_ERR_INVALID);
    /* past the device segment, and a rank outside the world */
    TK_CHECK(mf_bm_copy(c.pool.bm, dv_gva(&c, p, true, SEG_SIZE - 8), lh, 16,
                        MF_COPY_GD2LH) == MF_ERR_OUT_OF_RANGE);
    TK_CHECK(mf_bm_copy(c.pool.bm, dv_gva(&c, 0, true, WORLD * STRIDE), lh, 16,
                        MF_COPY_GD2LH) == MF_ERR_OUT_OF_RANGE);
    mf_log_set_level(MF_LOG_WARN);
    {
        uint32_t rank = 99;

        TK_CHECK_OK(
            mf_bm_rank_of_gva(c.pool.bm, dv_gva(&c, p, true, 100), &rank));
        TK_CHECK(rank == p);
    }
    return dv_close(&c, 0);
}

/*
 * The driver puts one rank's device window elsewhere (the address is only
 * a hint): pool creation fails on every rank, and the message names the
 * address.
 */
static int dv_rank_reserve_miss(int index, void *arg)
{
    char base[32], why[256];
    mf_bm_config_t cfg;
    mf_status_t st;
    it_pool_t pool;
    tk_log_t log;
    int ret = 1;

    if (index == 1) {
        TK_CHECK(setenv("FAKECUDA_RESERVE_MISS", "1", 1) == 0);
    }
    if (tk_cuda_init(why, sizeof(why)) != 0) {
        tk_print("no device: %s", why);
        return 1;
    }
    it_bm_config(&cfg);
    TK_CHECK_OK(mf_bm_config_get(&cfg, "device_base", base, sizeof(base)));
    tk_log_start(&log, 0);
    st = it_pool_open_hbm(&pool, g_store.url, WORLD, (uint32_t)index, SEG_SIZE,
                          STRIDE, SEG_SIZE, STRIDE, &cfg, false);
    TK_CHECK_GOTO(st == MF_ERR_ADDR_IN_USE, "create: %s", mf_status_name(st));
    TK_CHECK_GOTO(tk_log_find(&log, base), "no message names %s", base);
    ret = 0;
fail:
    tk_log_stop(&log);
    it_pool_close(&pool);
    return ret;
}

/*
 * Rank 1 dies (SIGKILL, from rank 0) in the middle of copies between its
 * device memory and rank 0's segments; rank 0 sees it lost and goes on
 * copying its own device memory, and the copies that reached rank 1 fail
 * with a peer error, not a crash.
 */
static int dv_rank_killed(int index, void *arg)
{
    char key[64], pidbuf[32];
    uint64_t lh;
    void *value;
    size_t len;
    dv_ctx_t c;
    mf_status_t st;

    if (dv_open(&c) != 0) {
        return dv_close(&c, 1);
    }
    dv_fill_own(&c);
    TK_CHECK_OK(it_barrier(&c.pool, "dv-filled", WORLD));
    lh = (uint64_t)(uintptr_t)c.lh;
    snprintf(key, sizeof(key), "dv/victim");
    if (c.pool.rank == 1) {
        /* copy both ways until killed */
        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
        for (unsigned i = 0;; i++) {
            TK_CHECK_OK(mf_bm_copy(c.pool.bm, dv_gva(&c, 0, true, 0),
                                   (uint64_t)(uintptr_t)c.ld, BUF_SIZE,
                                   MF_COPY_GD2LD));
            TK_CHECK_OK(mf_bm_copy(c.pool.bm, (uint64_t)(uintptr_t)c.ld,
                                   dv_gva(&c, 0, true, SLOT(1)), SLOT_SIZE,
                                   MF_COPY_LD2GD));
            if (i == 3) {
                TK_CHECK_OK(mf_store_set(c.pool.store, key, pidbuf,
                                         strlen(pidbuf) + 1, 0));
            }
        }
    }
    /* rank 0: kill the copier once it is busy, then carry on */
    TK_CHECK_OK(mf_store_get(c.pool.store, key, 60000, &value, &len));
    TK_CHECK(kill((pid_t)atoi(value), SIGKILL) == 0);
    free(value);
    TK_CHECK_OK(it_wait_rank_joined(&c.pool, 1, false, 60000));
    mf_log_set_level(MF_LOG_OFF);
    st = mf_bm_copy(c.pool.bm, dv_gva(&c, 1, true, 0), lh, 16, MF_COPY_GD2LH);
    TK_CHECK_GOTO(st == MF_ERR_PEER_LOST || st == MF_ERR_OUT_OF_RANGE,
                  "copy from the dead rank: %s", mf_status_name(st));
    mf_log_set_level(MF_LOG_WARN);
    TK_CHECK(dv_reads(&c, 0, MIB + 3, 11, false) == 0);
    TK_CHECK(dv_writes(&c, 0, MIB, 0, true, 77) == 0);
    /* no barrier with the dead: close directly */
    mf_bm_unregister(c.pool.bm, c.lh);
    mf_bm_unregister(c.pool.bm, c.ld);
    c.pool.joined = false;
    it_pool_close(&c.pool);
    tk_cuda_free(c.ld);
    free(c.lh);
    free(c.check);
    return 0;
fail:
    return 1;
}

static void dv_run_killed(const char *transport)
{
    pid_t pids[WORLD];
    int codes[WORLD];

    g_transport = transport;
    assert_int_equal(it_store_start(&g_store), 0);
    assert_int_equal(tk_proc_spawn_n(WORLD, dv_rank_killed, NULL, pids), 0);
    tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, codes);
    assert_int_equal(it_store_stop(&g_store), 0);
    /* one rank is rank 1, killed; the other passed */
    assert_true((codes[0] == 0 && codes[1] == 128 + SIGKILL) ||
                (codes[1] == 0 && codes[0] == 128 + SIGKILL));
}

static void test_device_killed(void **state)
{
    dv_run_killed("auto");
}

static void test_device_killed_tcp(void **state)
{
    dv_run_killed("tcp");
}

static void dv_run(tk_proc_fn fn, const char *transport);

/*
 * Over tcp, a device copy that fails while its data is staged fails that
 * copy alone: on the server (a GET from the peer's device memory) and on
 * the client (a PUT from local device memory); the next copies on the same
 * connections work.  The fake driver fails copies that cover one address
 * (FAKECUDA_FAIL_COPY_ADDR).
 */
static int dv_rank_stage_fail(int index, void *arg)
{
    char addr[32];
    uint64_t lh, poison;
    dv_ctx_t c;
    mf_status_t st;

    if (dv_open(&c) != 0) {
        return dv_close(&c, 1);
    }
    dv_fill_own(&c);
    lh = (uint64_t)(uintptr_t)c.lh;
    if (c.pool.rank == 1) {
        /* rank 0's reads of this byte fail in our staging */
        snprintf(addr, sizeof(addr), "%llx",
                 (unsigned long long)dv_gva(&c, 1, true, 2 * MIB));
        TK_CHECK(setenv("FAKECUDA_FAIL_COPY_ADDR", addr, 1) == 0);
    }
    TK_CHECK_OK(it_barrier(&c.pool, "dv-armed", WORLD));
    if (c.pool.rank == 0) {
        mf_log_set_level(MF_LOG_OFF);
        st = mf_bm_copy(c.pool.bm, dv_gva(&c, 1, true, 2 * MIB - 4096), lh,
                        8192, MF_COPY_GD2LH);
        mf_log_set_level(MF_LOG_WARN);
        TK_CHECK(st != MF_OK && st != MF_INPROGRESS);
        TK_CHECK(dv_reads(&c, 1, MIB + 3, 5, false) == 0);

        /* our own staging of a local device buffer fails on one byte */
        dv_fill(&c, c.ld, true, BUF_SIZE, 4242);
        poison = (uint64_t)(uintptr_t)c.ld + MIB;
        snprintf(addr, sizeof(addr), "%llx", (unsigned long long)poison);
        TK_CHECK(setenv("FAKECUDA_FAIL_COPY_ADDR", addr, 1) == 0);
        mf_log_set_level(MF_LOG_OFF);
        st = mf_bm_copy(c.pool.bm, poison - 100, dv_gva(&c, 1, false, SLOT(0)),
                        200, MF_COPY_LD2GH);
        mf_log_set_level(MF_LOG_WARN);
        TK_CHECK(st != MF_OK && st != MF_INPROGRESS);
        TK_CHECK_OK(mf_bm_copy(c.pool.bm, (uint64_t)(uintptr_t)c.ld + 2 * MIB,
                               dv_gva(&c, 1, false, SLOT(0)), MIB,
                               MF_COPY_LD2GH));
        TK_CHECK(dv_global_holds(&c, dv_gva(&c, 1, false, SLOT(0)), false, MIB,
                                 4242, 2 * MIB) == 0);
        TK_CHECK(unsetenv("FAKECUDA_FAIL_COPY_ADDR") == 0);
    }
    return dv_close(&c, 0);
}

static void test_device_tcp_stage_fail(void **state)
{
    if (getenv("MF_CUDA_LIBRARY") != NULL &&
        strstr(getenv("MF_CUDA_LIBRARY"), "fakecuda") == NULL) {
        skip(); /* fault injection of the fake driver */
    }
    dv_run(dv_rank_stage_fail, "tcp");
}

static void dv_run(tk_proc_fn fn, const char *transport)
{
    pid_t pids[WORLD];
    int codes[WORLD];
    int ret, stop;

    g_transport = transport;
    assert_int_equal(it_store_start(&g_store), 0);
    ret = tk_proc_spawn_n(WORLD, fn, NULL, pids);
    if (ret == 0) {
        ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, codes);
    }
    stop = it_store_stop(&g_store);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
}

static void test_device_directions(void **state)
{
    dv_run(dv_rank_directions, "auto");
}

static void test_device_batch_async(void **state)
{
    dv_run(dv_rank_batch, "auto");
}

static void test_device_errors(void **state)
{
    dv_run(dv_rank_errors, "auto");
}

static void test_device_reserve_miss(void **state)
{
    if (getenv("MF_CUDA_LIBRARY") != NULL &&
        strstr(getenv("MF_CUDA_LIBRARY"), "fakecuda") == NULL) {
        skip(); /* fault injection of the fake driver */
    }
    dv_run(dv_rank_reserve_miss, "auto");
}

/* The same over tcp: device data staged through host memory on both
 * sides. */
/* Two hosts (network namespaces, one rank each): every direction and the
 * batch with the peer's device memory across the wire. */
static void dv_run_netns(tk_proc_fn fn)
{
    pid_t pids[WORLD];
    tk_netns_t net;
    char why[256];
    int ret;

    if (tk_netns_check(why, sizeof(why)) != 0) {
        printf("SKIP: %s\n", why);
        skip();
    }
    assert_int_equal(tk_netns_create(&net, WORLD), 0);
    g_transport = "auto";
    ret = it_store_start_host(&net, 0, &g_store);
    for (uint32_t r = 0; ret == 0 && r < WORLD; r++) {
        pids[r] = tk_netns_spawn(&net, (int)r, fn, (int)r, NULL);
        ret = pids[r] < 0 ? -1 : 0;
    }
    if (ret == 0) {
        ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, NULL);
    }
    if (it_store_stop(&g_store) != 0) {
        ret = -1;
    }
    tk_netns_destroy(&net);
    assert_int_equal(ret, 0);
}

static void test_device_netns(void **state)
{
    dv_run_netns(dv_rank_directions);
}

static void test_device_netns_batch_async(void **state)
{
    dv_run_netns(dv_rank_batch);
}

static void test_device_tcp(void **state)
{
    dv_run(dv_rank_directions, "tcp");
}

static void test_device_ucx(void **state)
{
    if (!it_has_transport("ucx")) {
        printf("SKIP: this build of the library has no ucx transport\n");
        skip();
    }
    dv_run(dv_rank_ucx, "ucx");
}

static void test_device_tcp_batch_async(void **state)
{
    dv_run(dv_rank_batch, "tcp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_directions),
        cmocka_unit_test(test_device_batch_async),
        cmocka_unit_test(test_device_errors),
        cmocka_unit_test(test_device_reserve_miss),
        cmocka_unit_test(test_device_killed),
        cmocka_unit_test(test_device_killed_tcp),
        cmocka_unit_test(test_device_tcp),
        cmocka_unit_test(test_device_tcp_batch_async),
        cmocka_unit_test(test_device_tcp_stage_fail),
        cmocka_unit_test(test_device_ucx),
        cmocka_unit_test(test_device_netns),
        cmocka_unit_test(test_device_netns_batch_async),
    };

#ifdef IT_FAKECUDA_PATH
    /* the fake driver, unless a driver is named (a real one on a GPU) */
    setenv("MF_CUDA_LIBRARY", IT_FAKECUDA_PATH, 0);
#endif
    return tk_group_run(tests, NULL, NULL);
}
