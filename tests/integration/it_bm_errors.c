/*
 * BM error paths: bad global addresses, bad arguments, a GVA window taken
 * in one rank of a collective create, and bad configuration values.
 *
 * Every rejected call must return its documented status, never crash, and
 * leave the pool usable: each test ends with a copy that must work.
 */
#include "it_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define MIB         (1024ull * 1024)
#define SEG_SIZE    (4 * MIB)
#define SEG1_SIZE   (2 * MIB) /* rank 1 contributes less than the others */
#define STRIDE      (16 * MIB)
#define WAIT_MS     60000
#define CHILD_LIMIT 180000

static it_store_t g_store;

static void er_run(unsigned n, tk_proc_fn fn, const int *expect)
{
    pid_t pids[8];
    int codes[8];
    unsigned i;
    int ret, stop;

    assert_int_equal(it_store_start(&g_store), 0);
    ret = tk_proc_spawn_n((int)n, fn, NULL, pids);
    if (ret == 0) {
        tk_proc_wait_all(pids, (int)n, CHILD_LIMIT, codes);
    }
    stop = it_store_stop(&g_store);
    assert_int_equal(ret, 0);
    for (i = 0; i < n; i++) {
        assert_int_equal(codes[i], expect != NULL ? expect[i] : 0);
    }
    assert_int_equal(stop, 0);
}

/* ------------------------------------------------------------ bad GVAs */

/* Overflowing ranges are outside every segment; INVALID is tolerated. */
#define ER_CHECK_OVERFLOW(_expr)                                               \
    do {                                                                       \
        mf_status_t _s = (_expr);                                              \
        TK_CHECK_GOTO(_s == MF_ERR_OUT_OF_RANGE || _s == MF_ERR_INVALID,       \
                      "%s: %s", #_expr, mf_status_name(_s));                   \
    } while (0)

static int er_gva_checks(it_pool_t *pool)
{
    const uint32_t world = pool->world;
    mf_bm_t *bm = pool->bm;
    uint8_t *buf = malloc(65536);
    uint64_t lbuf = (uint64_t)(uintptr_t)buf;
    uint64_t base = it_gva(pool, 0, 0);
    mf_copy_piece_t piece;
    mf_bm_req_t *req = NULL;
    mf_status_t st, res;
    uint32_t owner;

    TK_CHECK_GOTO(buf != NULL, "malloc");
    memset(buf, 0x11, 65536);

    /* below and above the window */
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, lbuf, base - 4096, 16, MF_COPY_LH2GH),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, base + world * STRIDE, 16, MF_COPY_LH2GH),
        MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, base - 1, lbuf, 2, MF_COPY_GH2LH),
                     MF_ERR_OUT_OF_RANGE);
    /* crossing a segment end; in the stride gap; into the next window */
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, lbuf, it_gva(pool, 1, SEG1_SIZE - 100), 200,
                                MF_COPY_LH2GH),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, it_gva(pool, 1, SEG1_SIZE - 1), lbuf, 2, MF_COPY_GH2LH),
        MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, 1, SEG1_SIZE), 1, MF_COPY_LH2GH),
        MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, 0, STRIDE - 100), 200, MF_COPY_LH2GH),
        MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, it_gva(pool, 0, 0),
                                it_gva(pool, 1, SEG1_SIZE - 8), 16,
                                MF_COPY_GH2GH),
                     MF_ERR_OUT_OF_RANGE);
    /* rank 0's larger segment is fine where rank 1's has ended */
    TK_CHECK_OK_GOTO(mf_bm_copy(
        bm, lbuf, it_gva(pool, 0, SEG_SIZE - 4096 - pool->rank * 4096), 4096,
        MF_COPY_LH2GH));
    TK_CHECK_OK_GOTO(
        mf_bm_copy(bm, it_gva(pool, 0, SEG1_SIZE), lbuf, 4096, MF_COPY_GH2LH));
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, lbuf, it_gva(pool, 0, SEG_SIZE - 4095),
                                4096, MF_COPY_LH2GH),
                     MF_ERR_OUT_OF_RANGE);
    /* local pointers where a GVA belongs */
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, lbuf, lbuf + 4096, 16, MF_COPY_LH2GH),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, 1, 0), 16, MF_COPY_GH2GH),
        MF_ERR_OUT_OF_RANGE);
    /* overflow of address + size */
    ER_CHECK_OVERFLOW(
        mf_bm_copy(bm, lbuf, UINT64_MAX - 10, 100, MF_COPY_LH2GH));
    ER_CHECK_OVERFLOW(mf_bm_copy(bm, it_gva(pool, 1, 100), lbuf, SIZE_MAX - 50,
                                 MF_COPY_GH2LH));
    ER_CHECK_OVERFLOW(mf_bm_copy(
        bm, lbuf, it_gva(pool, 1, 100),
        (size_t)(UINT64_MAX - it_gva(pool, 1, 100)) + 2, MF_COPY_LH2GH));
    /* the rank that created but never joined */
    TK_CHECK_GOTO(!mf_bm_rank_joined(bm, world - 1), "rank %u joined",
                  world - 1);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, world - 1, 0), 16, MF_COPY_LH2GH),
        MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, it_gva(pool, world - 1, 0), lbuf, 16, MF_COPY_GH2LH),
        MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(mf_bm_copy(bm, it_gva(pool, 0, 0),
                                it_gva(pool, world - 1, 0), 16, MF_COPY_GH2GH),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, world - 1, 0), 16, MF_COPY_AUTO),
        MF_ERR_OUT_OF_RANGE);
    /* directions: device ones need a device memory kind, others are bad */
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, 1, 0), 16, MF_COPY_LD2GH),
        MF_ERR_UNSUPPORTED);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, it_gva(pool, 1, 0), lbuf, 16, MF_COPY_GD2LH),
        MF_ERR_UNSUPPORTED);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, 1, 0), 16, MF_COPY_DIR_MAX),
        MF_ERR_INVALID);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(bm, lbuf, it_gva(pool, 1, 0), 16, (mf_copy_dir_t)-1),
        MF_ERR_INVALID);
    TK_CHECK_ST_GOTO(
        mf_bm_copy(NULL, lbuf, it_gva(pool, 1, 0), 16, MF_COPY_LH2GH),
        MF_ERR_INVALID);
    TK_CHECK_ST_GOTO(mf_bm_copy_batch(bm, NULL, 3, MF_COPY_LH2GH, NULL),
                     MF_ERR_INVALID);
    /* empty copies: accepted or refused, never a crash */
    st = mf_bm_copy(bm, lbuf, it_gva(pool, 1, 0), 0, MF_COPY_LH2GH);
    TK_CHECK_GOTO(st == MF_OK || st == MF_ERR_INVALID, "size 0: %s",
                  mf_status_name(st));
    piece.src = lbuf;
    piece.dst = it_gva(pool, 1, 0);
    piece.size = 0;
    st = mf_bm_copy_batch(bm, &piece, 0, MF_COPY_LH2GH, NULL);
    TK_CHECK_GOTO(st == MF_OK || st == MF_ERR_INVALID, "count 0: %s",
                  mf_status_name(st));
    st = mf_bm_copy_batch(bm, &piece, 1, MF_COPY_LH2GH, &res);
    TK_CHECK_GOTO(st == MF_OK || st == MF_ERR_INVALID, "piece of size 0: %s",
                  mf_status_name(st));
    /* lookups */
    TK_CHECK_ST_GOTO(mf_bm_rank_of_gva(bm, base - 1, &owner),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_ST_GOTO(mf_bm_rank_of_gva(bm, base + world * STRIDE, &owner),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_GOTO(mf_bm_gva_of_rank(bm, world, MF_MEM_HOST) == NULL,
                  "gva_of_rank(world)");
    TK_CHECK_GOTO(mf_bm_gva_of_rank(bm, UINT32_MAX, MF_MEM_HOST) == NULL,
                  "gva_of_rank(UINT32_MAX)");
    TK_CHECK_GOTO(!mf_bm_rank_joined(bm, world), "rank_joined(world)");

    /* a bad asynchronous copy fails at once or completes with the error */
    st = mf_bm_copy_async(bm, lbuf, it_gva(pool, 1, SEG1_SIZE - 1), 2,
                          MF_COPY_LH2GH, &req);
    if (st == MF_OK || st == MF_INPROGRESS) {
        TK_CHECK_GOTO(req != NULL, "no request");
        st = mf_bm_wait(req, WAIT_MS);
    } else {
        TK_CHECK_GOTO(req == NULL, "request set on failure");
    }
    TK_CHECK_ST_GOTO(st, MF_ERR_OUT_OF_RANGE);
    req = NULL;
    piece.src = lbuf;
    piece.dst = it_gva(pool, world - 1, 0);
    piece.size = 8;
    st = mf_bm_copy_batch_async(bm, &piece, 1, MF_COPY_LH2GH, &req);
    if (st == MF_OK || st == MF_INPROGRESS) {
        TK_CHECK_GOTO(req != NULL, "no request");
        do {
            st = mf_bm_test(req);
        } while (st == MF_INPROGRESS);
    }
    TK_CHECK_ST_GOTO(st, MF_ERR_OUT_OF_RANGE);
    res = (mf_status_t)1234;
    TK_CHECK_ST_GOTO(mf_bm_copy_batch(bm, &piece, 1, MF_COPY_LH2GH, &res),
                     MF_ERR_OUT_OF_RANGE);
    TK_CHECK_GOTO(res == MF_ERR_OUT_OF_RANGE, "piece result %d", (int)res);

    /* after all that, a good copy works */
    memset(buf, 0x11, 65536);
    TK_CHECK_OK_GOTO(mf_bm_copy(bm, lbuf, it_gva(pool, 1, pool->rank * 65536),
                                65536, MF_COPY_LH2GH));
    TK_CHECK_GOTO(tk_mem_find_not(mf_bm_gva_of_rank(bm, 1, MF_MEM_HOST) +
                                      pool->rank * 65536,
                                  0x11, 65536) < 0,
                  "good copy after errors");
    free(buf);
    return 0;
fail:
    free(buf);
    return 1;
}

/* World 3: ranks 0 and 1 join and check; rank 2 creates but joins only
 * after the checks, and then is reachable.  Rank 1's segment is smaller. */
static int er_gva_rank(int index, void *arg)
{
    const uint32_t world = 3;
    uint64_t magic = 0x1122334455667788ull, got = 0;
    it_pool_t pool;
    int ret = 1;

    tk_role_set("rank %d", index);
    TK_CHECK_OK_GOTO(it_pool_open(&pool, g_store.url, world, (uint32_t)index,
                                  index == 1 ? SEG1_SIZE : SEG_SIZE, STRIDE,
                                  NULL, index != 2));
    TK_CHECK_OK_GOTO(it_barrier(&pool, "up", world));
    if (index != 2) {
        TK_CHECK_OK_GOTO(it_wait_rank_joined(&pool, 0, true, WAIT_MS));
        TK_CHECK_OK_GOTO(it_wait_rank_joined(&pool, 1, true, WAIT_MS));
        TK_CHECK_GOTO(er_gva_checks(&pool) == 0, "GVA checks");
    }
    TK_CHECK_OK_GOTO(it_barrier(&pool, "checked", world));
    if (index == 2) {
        TK_CHECK_OK_GOTO(mf_bm_join(pool.bm));
        pool.joined = true;
    }
    TK_CHECK_OK_GOTO(it_wait_all_joined(&pool, WAIT_MS));
    TK_CHECK_OK_GOTO(mf_bm_copy(pool.bm, (uint64_t)(uintptr_t)&magic,
                                it_gva(&pool, 2, 64 * (uint64_t)index), 8,
                                MF_COPY_LH2GH));
    TK_CHECK_OK_GOTO(mf_bm_copy(pool.bm, it_gva(&pool, 2, 64 * (uint64_t)index),
                                (uint64_t)(uintptr_t)&got, 8, MF_COPY_GH2LH));
    TK_CHECK_GOTO(got == magic, "late joiner copy");
    TK_CHECK_OK_GOTO(it_barrier(&pool, "end", world));
    ret = 0;
fail:
    it_pool_close(&pool);
    return ret;
}

static void test_bad_gva(void **state)
{
    er_run(3, er_gva_rank, NULL);
}

/* ------------------------------------------------------ bad arguments */

static int er_args_proc(int index, void *arg)
{
    mf_bm_create_params_t params;
    mf_bm_config_t cfg;
    mf_bm_t *bm = (mf_bm_t *)0x1;
    char url[64];
    uint16_t port;
    uint32_t rank = 77;
    mf_status_t st;
    bool inited = false, mf = false;
    int ret = 1;

    TK_CHECK_OK_GOTO(mf_init());
    mf = true;
    it_bm_config(&cfg);
    TK_CHECK_ST_GOTO(mf_bm_rank_id(&rank), MF_ERR_STATE);
    TK_CHECK_GOTO(rank == 77, "rank_id output set on failure");
    TK_CHECK_ST_GOTO(mf_bm_init(g_store.url, 0, MF_RANK_AUTO, &cfg),
                     MF_ERR_INVALID);
    TK_CHECK_ST_GOTO(mf_bm_init(g_store.url, 2, 5, &cfg), MF_ERR_INVALID);
    TK_CHECK_ST_GOTO(mf_bm_init(NULL, 1, MF_RANK_AUTO, &cfg), MF_ERR_INVALID);
    st = mf_bm_init("not a url", 1, MF_RANK_AUTO, &cfg);
    TK_CHECK_GOTO(st == MF_ERR_INVALID, "garbage URL: %s", mf_status_name(st));
    TK_CHECK_GOTO(tk_port_free(&port) == 0, "free port");
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", (unsigned)port);
    st = mf_bm_init(url, 1, MF_RANK_AUTO, &cfg);
    TK_CHECK_GOTO(mf_status_is_peer_error(st) || st == MF_ERR_TIMEOUT,
                  "nobody listening: %s", mf_status_name(st));

    /* the failed attempts left nothing behind */
    TK_CHECK_OK_GOTO(mf_bm_init(g_store.url, 1, MF_RANK_AUTO, &cfg));
    inited = true;
    st = mf_bm_init(g_store.url, 1, MF_RANK_AUTO, &cfg);
    TK_CHECK_GOTO(st == MF_ERR_STATE || st == MF_ERR_EXISTS, "second init: %s",
                  mf_status_name(st));
    TK_CHECK_OK_GOTO(mf_bm_rank_id(&rank));
    TK_CHECK_GOTO(rank == 0, "rank %u", rank);
    mf_bm_create_params_init(&params);
    params.local_dram_size = 2 * STRIDE;
    params.max_dram_per_rank = STRIDE;
    TK_CHECK_ST_GOTO(mf_bm_create(0, &params, &bm), MF_ERR_INVALID);
    TK_CHECK_GOTO(bm == (mf_bm_t *)0x1, "bm set on failure");
    TK_CHECK_ST_GOTO(mf_bm_create(0, NULL, &bm), MF_ERR_INVALID);
    params.local_dram_size = SEG_SIZE;
    TK_CHECK_ST_GOTO(mf_bm_create(0, &params, NULL), MF_ERR_INVALID);
    TK_CHECK_OK_GOTO(mf_bm_create(0, &params, &bm));
    TK_CHECK_OK_GOTO(mf_bm_join(bm));
    TK_CHECK_OK_GOTO(mf_bm_leave(bm));
    mf_bm_destroy(bm);
    ret = 0;
fail:
    if (inited) {
        mf_bm_uninit();
    }
    if (mf) {
        mf_uninit();
    }
    return ret;
}

static void test_bad_args(void **state)
{
    er_run(1, er_args_proc, NULL);
}

/* ------------------------------------------------- window in use */

#define ER_TAKER 1

static int er_addr_rank(int index, void *arg)
{
    const uint32_t world = 3;
    mf_bm_create_params_t params;
    mf_bm_config_t cfg;
    mf_bm_t *bm = NULL;
    mf_store_t *store = NULL;
    void *want, *got = MAP_FAILED;
    mf_status_t st = MF_ERR_STATE;
    bool inited = false, mf = false;
    int ret = 1;

    tk_role_set("rank %d", index);
    it_bm_config(&cfg);
    /* rank 1 takes a page in the middle of rank 2's window */
    want = (void *)(uintptr_t)(cfg.host_base + 2 * STRIDE + 8192);
    if (index == ER_TAKER) {
        got = mmap(want, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        TK_CHECK_GOTO(got == want, "could not take %p for the test", want);
        memset(got, 0x77, 4096);
    }
    TK_CHECK_OK_GOTO(mf_init());
    mf = true;
    TK_CHECK_OK_GOTO(mf_store_connect(g_store.url, NULL, &store));
    TK_CHECK_OK_GOTO(mf_bm_init(g_store.url, world, (uint32_t)index, &cfg));
    inited = true;
    mf_bm_create_params_init(&params);
    params.local_dram_size = SEG_SIZE;
    params.max_dram_per_rank = STRIDE;
    st = mf_bm_create(0, &params, &bm);
    TK_CHECK_GOTO(st == MF_ERR_ADDR_IN_USE,
                  "mf_bm_create with the window taken in rank %d: %s", ER_TAKER,
                  mf_status_name(st));
    TK_CHECK_GOTO(bm == NULL, "bm set on failure");
    if (index == ER_TAKER) {
        TK_CHECK_GOTO(tk_mem_find_not(got, 0x77, 4096) < 0,
                      "my mapping was touched");
    }
    TK_CHECK_OK_GOTO(mf_store_barrier(store, "failed", world, WAIT_MS));
    ret = 0;
fail:
    if (st == MF_OK && bm != NULL) {
        mf_bm_destroy(bm);
    }
    if (inited) {
        mf_bm_uninit();
    }
    if (store != NULL) {
        mf_store_close(store);
    }
    if (mf) {
        mf_uninit();
    }
    if (got != MAP_FAILED) {
        munmap(got, 4096);
    }
    return ret;
}

static void test_addr_in_use(void **state)
{
    er_run(3, er_addr_rank, NULL);
}

/* ------------------------------------------------------------ config */

static int er_config_proc(int index, void *arg)
{
    static const char *bad[][2] = {
        {"no_such_key", "1"},
        {"copy_threads", "65"},
        {"copy_threads", "abc"},
        {"copy_threads", "-1"},
        {"copy_threads", ""},
        {"copy_threads", "2x"},
        {"copy_threads", "99999999999999999999"},
        {"timeout_ms", "soon"},
        {"prefault", "maybe"},
        {"host_base", "0xzz"},
        {"copy_split_min", "12Q"},
        {"transport", "a-transport-name-much-too-long"},
        {"transport", "no-such-tl"},
        {"host_base", "0x100000001001"}, /* not page aligned */
    };
    char path[] = "/tmp/it_bm_errors_XXXXXX";
    mf_bm_config_t cfg, saved;
    mf_status_t st;
    FILE *f = NULL;
    size_t i;
    int fd = -1, ret = 1;

    tk_role_set("config");
    mf_bm_config_init(&cfg);
    TK_CHECK_GOTO(cfg.size == sizeof(cfg), "size field %zu", cfg.size);
    TK_CHECK_GOTO(cfg.copy_threads <= 64, "default copy_threads %u",
                  cfg.copy_threads);
    saved = cfg;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st = mf_bm_config_set(&cfg, bad[i][0], bad[i][1]);
        TK_CHECK_GOTO(st == MF_ERR_CONFIG, "set(%s, \"%s\"): %s", bad[i][0],
                      bad[i][1], mf_status_name(st));
        TK_CHECK_GOTO(memcmp(&cfg, &saved, sizeof(cfg)) == 0,
                      "set(%s, \"%s\") changed the config", bad[i][0],
                      bad[i][1]);
    }
    st = mf_bm_config_set(&cfg, NULL, "1");
    TK_CHECK_GOTO(st == MF_ERR_CONFIG || st == MF_ERR_INVALID, "NULL key: %s",
                  mf_status_name(st));
    st = mf_bm_config_set(&cfg, "copy_threads", NULL);
    TK_CHECK_GOTO(st == MF_ERR_CONFIG || st == MF_ERR_INVALID, "NULL value: %s",
                  mf_status_name(st));

    TK_CHECK_OK_GOTO(mf_bm_config_set(&cfg, "copy_threads", "2"));
    TK_CHECK_GOTO(cfg.copy_threads == 2, "copy_threads %u", cfg.copy_threads);
    TK_CHECK_OK_GOTO(mf_bm_config_set(&cfg, "copy_threads", "64"));
    TK_CHECK_GOTO(cfg.copy_threads == 64, "copy_threads %u", cfg.copy_threads);
    TK_CHECK_OK_GOTO(mf_bm_config_set(&cfg, "prefault", "false"));
    TK_CHECK_GOTO(!cfg.prefault, "prefault");
    TK_CHECK_OK_GOTO(mf_bm_config_set(&cfg, "transport", "shm"));
    TK_CHECK_GOTO(strcmp(cfg.transport, "shm") == 0, "transport %s",
                  cfg.transport);

    /* files: a good one applies, a bad line is refused */
    fd = mkstemp(path);
    TK_CHECK_GOTO(fd >= 0, "mkstemp");
    f = fdopen(fd, "w");
    TK_CHECK_GOTO(f != NULL, "fdopen");
    fd = -1;
    fprintf(f, "# test\n\ncopy_threads = 3\nprefault = true\n");
    fclose(f);
    f = NULL;
    TK_CHECK_OK_GOTO(mf_bm_config_load(&cfg, path));
    TK_CHECK_GOTO(cfg.copy_threads == 3 && cfg.prefault, "values from file");
    f = fopen(path, "w");
    TK_CHECK_GOTO(f != NULL, "fopen");
    fprintf(f, "copy_threads = 4\nthis is not a setting\n");
    fclose(f);
    f = NULL;
    st = mf_bm_config_load(&cfg, path);
    TK_CHECK_GOTO(st == MF_ERR_CONFIG, "bad file: %s", mf_status_name(st));
    f = fopen(path, "w");
    TK_CHECK_GOTO(f != NULL, "fopen");
    fprintf(f, "copy_threads = 100\n");
    fclose(f);
    f = NULL;
    st = mf_bm_config_load(&cfg, path);
    TK_CHECK_GOTO(st == MF_ERR_CONFIG, "out of range in file: %s",
                  mf_status_name(st));
    unlink(path);
    path[0] = '\0';
    st = mf_bm_config_load(&cfg, "/nonexistent/dir/mf.conf");
    TK_CHECK_GOTO(st != MF_OK, "missing file accepted");

    /* environment */
    setenv("MF_COPY_THREADS", "5", 1);
    mf_bm_config_init(&cfg);
    unsetenv("MF_COPY_THREADS");
    TK_CHECK_GOTO(cfg.copy_threads == 5, "MF_COPY_THREADS gave %u",
                  cfg.copy_threads);
    ret = 0;
fail:
    if (f != NULL) {
        fclose(f);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (path[0] != '\0') {
        unlink(path);
    }
    return ret;
}

static void test_config(void **state)
{
    er_run(1, er_config_proc, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_bad_gva),
        cmocka_unit_test(test_addr_in_use),
    };

    return tk_group_run(tests, NULL, NULL);
}
