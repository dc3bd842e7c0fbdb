/*
 * SHM (mf_shm.h) in one process, a world of one rank over a config store
 * served in the process: the window table's placement (first fit, reuse
 * of an id, replacement, explicit bases, no room, malformed lines), then a
 * region's calls: its part through its pointer and put/get, the
 * collectives, topology, counters, the context block, a global exit, two
 * regions and a BM pool side by side, and bad arguments.  Across
 * processes and hosts: tests/integration/it_shm.c.
 */
#include "fabric/shm/shm_int.h"
#include "tk_group.h"
#include "tk_log.h"
#include "tk_pattern.h"

#include <memfabric/memfabric.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MIB  (1ull << 20)
#define PART (3 * MIB + 100) /* not a page multiple */

typedef struct test_shm {
    mf_store_server_t *server;
    char url[64];
    mf_shm_t *shm;
} test_shm_t;

static tk_log_t test_log;

/* ------------------------------------------------------- window table */

static const mf_shm_ranges_t test_ranges = {
    .host_lo = 0x100000000,
    .dev_lo = 0x900000000,
    .room = 64 * MIB,
    .align = 2 * MIB,
};

/* Places id's windows in *table (replaced by the new one if it changed):
 * the status, the windows in *win. */
static mf_status_t test_place(char **table, uint32_t id, uint64_t hlen,
                              uint64_t dlen, mf_shm_windows_t *win)
{
    mf_status_t status;
    size_t out_len;
    char *out;

    win->host_len = hlen;
    win->dev_len = dlen;
    status = mf_shm_table_place(*table, *table != NULL ? strlen(*table) : 0, id,
                                &test_ranges, win, &out, &out_len);
    if (out != NULL) {
        out = realloc(out, out_len + 1);
        assert_non_null(out);
        out[out_len] = '\0';
        free(*table);
        *table = out;
    }
    return status;
}

static void test_table(void **state)
{
    mf_shm_windows_t a = {0}, b = {0}, c = {0}, again = {0};
    char *table = NULL, *before;

    (void)state;
    assert_int_equal(test_place(&table, 1, 8 * MIB, 0, &a), MF_OK);
    assert_int_equal(a.host_base, test_ranges.host_lo);
    assert_int_equal(a.dev_len, 0);
    /* a device region: its host window (pages) and its device window */
    assert_int_equal(test_place(&table, 2, 3 * MIB, 16 * MIB, &b), MF_OK);
    assert_int_equal(b.host_base, test_ranges.host_lo + 8 * MIB);
    assert_int_equal(b.dev_base, test_ranges.dev_lo);
    /* the same id and sizes again: the same windows, the table as it was */
    before = strdup(table);
    assert_int_equal(test_place(&table, 1, 8 * MIB, 0, &again), MF_OK);
    assert_int_equal(again.host_base, a.host_base);
    assert_string_equal(table, before);
    free(before);
    /* id 1 grows: it moves past b, and its old room is free again */
    memset(&a, 0, sizeof(a));
    assert_int_equal(test_place(&table, 1, 20 * MIB, 0, &a), MF_OK);
    assert_int_equal(a.host_base, test_ranges.host_lo + 12 * MIB);
    assert_int_equal(test_place(&table, 3, 6 * MIB, 0, &c), MF_OK);
    assert_int_equal(c.host_base, test_ranges.host_lo);
    /* an explicit base is kept (and others fit around it) */
    memset(&c, 0, sizeof(c));
    c.host_base = 0x700000000;
    assert_int_equal(test_place(&table, 4, 2 * MIB, 0, &c), MF_OK);
    assert_int_equal(c.host_base, 0x700000000);
    /* an explicit base over another region's window is refused */
    memset(&c, 0, sizeof(c));
    c.host_base = 0x700000000 + MIB;
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(test_place(&table, 9, 2 * MIB, 0, &c), MF_ERR_ADDR_IN_USE);
    tk_log_allow_errors(&test_log, false);
    /* no room left for 40 MiB in the 64 MiB range */
    memset(&c, 0, sizeof(c));
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(test_place(&table, 5, 40 * MIB, 0, &c), MF_ERR_NOMEM);
    tk_log_allow_errors(&test_log, false);
    assert_true(tk_log_find(&test_log, "no room"));
    /* a malformed line is dropped, the rest kept */
    before = malloc(strlen(table) + 32);
    assert_non_null(before);
    sprintf(before, "garbage here\n%s", table);
    free(table);
    table = before;
    memset(&c, 0, sizeof(c));
    assert_int_equal(test_place(&table, 6, 2 * MIB, 0, &c), MF_OK);
    assert_null(strstr(table, "garbage"));
    assert_true(strncmp(table, "2 ", 2) == 0 || strstr(table, "\n2 ") != NULL);
    assert_true(tk_log_find(&test_log, "malformed"));
    free(table);
    tk_log_reset(&test_log);
}

/* ------------------------------------------------------------ a region */

static int test_setup(void **state)
{
    test_shm_t *t = calloc(1, sizeof(*t));
    mf_store_server_config_t cfg;
    mf_shm_create_params_t params;
    mf_bm_config_t bm_cfg;

    tk_log_start(&test_log, 0);
    assert_non_null(t);
    assert_int_equal(mf_init(), MF_OK);
    mf_store_server_config_init(&cfg);
    cfg.port = 0;
    assert_int_equal(mf_store_server_start(&cfg, &t->server), MF_OK);
    snprintf(t->url, sizeof(t->url), "tcp://127.0.0.1:%u",
             mf_store_server_port(t->server));
    mf_bm_config_init(&bm_cfg);
    bm_cfg.timeout_ms = 5000;
    assert_int_equal(mf_shm_init(t->url, 1, 0, &bm_cfg), MF_OK);
    mf_shm_create_params_init(&params);
    params.symmetric_size = PART;
    assert_int_equal(mf_shm_create(7, &params, &t->shm), MF_OK);
    *state = t;
    return 0;
}

static int test_teardown(void **state)
{
    test_shm_t *t = *state;

    mf_shm_destroy(t->shm);
    mf_shm_uninit();
    mf_store_server_stop(t->server);
    free(t);
    mf_uninit();
    tk_log_stop(&test_log);
    return 0;
}

static void test_region(void **state)
{
    test_shm_t *t = *state;
    uint8_t *part = mf_shm_ptr(t->shm, 0), *back = malloc(PART);
    mf_shm_reach_t reach;

    assert_non_null(back);
    assert_int_equal(mf_shm_rank(t->shm), 0);
    assert_int_equal(mf_shm_world(t->shm), 1);
    assert_int_equal(mf_shm_size(t->shm), PART);
    assert_int_equal(mf_shm_stride(t->shm) % 4096, 0);
    assert_true(mf_shm_stride(t->shm) >= PART);
    assert_int_equal((uint64_t)(uintptr_t)part, mf_shm_gva(t->shm));
    assert_null(mf_shm_ptr(t->shm, 1));
    /* the part is memory of this process, every byte of it */
    tk_pattern_fill(part, PART, 11, 0);
    assert_int_equal(mf_shm_get(t->shm, back, mf_shm_gva(t->shm), PART), MF_OK);
    assert_memory_equal(back, part, PART);
    tk_pattern_fill(back, 4097, 12, 0);
    assert_int_equal(mf_shm_put(t->shm, mf_shm_gva(t->shm) + 5, back, 4097),
                     MF_OK);
    assert_memory_equal(part + 5, back, 4097);
    /* past the part's end */
    assert_int_equal(mf_shm_put(t->shm, mf_shm_gva(t->shm) + PART - 1, back, 2),
                     MF_ERR_OUT_OF_RANGE);
    assert_int_equal(mf_shm_can_reach(t->shm, 0, &reach), MF_OK);
    assert_int_equal(reach.flags, MF_SHM_REACH_SELF | MF_SHM_REACH_MAPPED);
    assert_int_equal(mf_shm_can_reach(t->shm, 1, &reach), MF_ERR_INVALID);
    free(back);
    tk_log_reset(&test_log);
}

static void test_collectives(void **state)
{
    test_shm_t *t = *state;
    uint64_t in = 0x1122334455667788ull, out = 0;
    char ga[3] = "ab", gb[3] = "";

    for (int i = 0; i < 3; i++) {
        assert_int_equal(mf_shm_barrier(t->shm), MF_OK);
        assert_int_equal(mf_shm_allgather(t->shm, &in, sizeof(in), &out),
                         MF_OK);
        assert_int_equal(out, in);
        assert_int_equal(mf_shm_group_barrier(t->shm, "tp-0", 1), MF_OK);
        assert_int_equal(
            mf_shm_group_allgather(t->shm, "tp-0", 0, 1, ga, 3, gb), MF_OK);
        assert_string_equal(gb, "ab");
    }
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_shm_group_barrier(t->shm, "a/b", 1), MF_ERR_INVALID);
    assert_int_equal(mf_shm_group_barrier(t->shm, "", 1), MF_ERR_INVALID);
    assert_int_equal(mf_shm_group_barrier(t->shm, "x", 0), MF_ERR_INVALID);
    assert_int_equal(mf_shm_group_allgather(t->shm, "x", 1, 1, ga, 3, gb),
                     MF_ERR_INVALID);
    assert_int_equal(mf_shm_allgather(t->shm, &in, 0, &out), MF_ERR_INVALID);
    tk_log_allow_errors(&test_log, false);
    tk_log_reset(&test_log);
}

static void test_atomics(void **state)
{
    test_shm_t *t = *state;
    int64_t v = -1, cur = -1;

    /* an absent counter is 0, for add and for cas */
    assert_int_equal(mf_shm_atomic_add(t->shm, "seq", 5, &v), MF_OK);
    assert_int_equal(v, 5);
    assert_int_equal(mf_shm_atomic_add(t->shm, "seq", -7, &v), MF_OK);
    assert_int_equal(v, -2);
    assert_int_equal(mf_shm_atomic_cas(t->shm, "seq", 3, 9, &cur),
                     MF_ERR_MISMATCH);
    assert_int_equal(cur, -2);
    assert_int_equal(mf_shm_atomic_cas(t->shm, "seq", -2, 9, &cur), MF_OK);
    assert_int_equal(mf_shm_atomic_add(t->shm, "seq", 0, &v), MF_OK);
    assert_int_equal(v, 9);
    assert_int_equal(mf_shm_atomic_cas(t->shm, "fresh", 0, 4, NULL), MF_OK);
    assert_int_equal(mf_shm_atomic_cas(t->shm, "fresh2", 1, 4, &cur),
                     MF_ERR_MISMATCH);
    assert_int_equal(cur, 0);
    assert_int_equal(mf_shm_atomic_reset(t->shm, "seq"), MF_OK);
    assert_int_equal(mf_shm_atomic_reset(t->shm, "seq"), MF_ERR_NOT_FOUND);
    assert_int_equal(mf_shm_atomic_add(t->shm, "seq", 1, &v), MF_OK);
    assert_int_equal(v, 1);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_shm_atomic_add(t->shm, "no/slash", 1, &v),
                     MF_ERR_INVALID);
    assert_int_equal(mf_shm_atomic_add(t->shm, "x", 1, NULL), MF_ERR_INVALID);
    tk_log_allow_errors(&test_log, false);
    tk_log_reset(&test_log);
}

static void test_context(void **state)
{
    test_shm_t *t = *state;
    uint8_t *big = malloc(MF_SHM_CONTEXT_MAX + 1), small[4];
    size_t len = 0;

    assert_non_null(big);
    assert_int_equal(mf_shm_get_context(t->shm, big, 16, &len, 0),
                     MF_ERR_NOT_FOUND);
    tk_pattern_fill(big, MF_SHM_CONTEXT_MAX, 3, 0);
    assert_int_equal(mf_shm_set_context(t->shm, big, MF_SHM_CONTEXT_MAX),
                     MF_OK);
    memset(big, 0, MF_SHM_CONTEXT_MAX);
    assert_int_equal(
        mf_shm_get_context(t->shm, big, MF_SHM_CONTEXT_MAX, &len, 1000), MF_OK);
    assert_int_equal(len, MF_SHM_CONTEXT_MAX);
    assert_int_equal(tk_pattern_check(big, len, 3, 0), -1);
    assert_int_equal(mf_shm_get_context(t->shm, small, sizeof(small), &len, 0),
                     MF_ERR_TOO_LARGE);
    assert_int_equal(len, MF_SHM_CONTEXT_MAX);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_shm_set_context(t->shm, big, MF_SHM_CONTEXT_MAX + 1),
                     MF_ERR_TOO_LARGE);
    tk_log_allow_errors(&test_log, false);
    free(big);
    tk_log_reset(&test_log);
}

typedef struct test_exit {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    int status;
    uint32_t from;
} test_exit_t;

static void test_exit_cb(mf_shm_t *shm, int status, uint32_t from, void *arg)
{
    test_exit_t *e = arg;

    (void)shm;
    pthread_mutex_lock(&e->lock);
    e->calls++;
    e->status = status;
    e->from = from;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static void test_global_exit(void **state)
{
    test_shm_t *t = *state;
    test_exit_t e = {.lock = PTHREAD_MUTEX_INITIALIZER,
                     .cond = PTHREAD_COND_INITIALIZER};

    assert_int_equal(mf_shm_register_exit(t->shm, test_exit_cb, &e), MF_OK);
    assert_int_equal(mf_shm_global_exit(t->shm, 42), MF_OK);
    pthread_mutex_lock(&e.lock);
    while (e.calls == 0) {
        pthread_cond_wait(&e.cond, &e.lock);
    }
    pthread_mutex_unlock(&e.lock);
    assert_int_equal(e.status, 42);
    assert_int_equal(e.from, 0);
    /* once per region: a second request is not delivered again */
    assert_int_equal(mf_shm_global_exit(t->shm, 43), MF_OK);
    assert_int_equal(mf_shm_barrier(t->shm), MF_OK);
    pthread_mutex_lock(&e.lock);
    assert_int_equal(e.calls, 1);
    pthread_mutex_unlock(&e.lock);
    /* the region's destroy ends the callback's thread (teardown) */
    assert_int_equal(mf_shm_register_exit(t->shm, NULL, NULL), MF_OK);
    tk_log_reset(&test_log);
}

/* Two regions and a BM pool in one process, in windows apart; the same id
 * again takes its window again. */
static void test_side_by_side(void **state)
{
    test_shm_t *t = *state;
    mf_shm_create_params_t params;
    mf_bm_create_params_t bm_params;
    mf_shm_t *other = NULL, *again = NULL;
    mf_bm_t *bm = NULL;
    uint64_t base;
    uint8_t *p;

    mf_shm_create_params_init(&params);
    params.symmetric_size = 5 * MIB;
    assert_int_equal(mf_shm_create(8, &params, &other), MF_OK);
    assert_true(mf_shm_gva(other) >=
                    mf_shm_gva(t->shm) + mf_shm_stride(t->shm) ||
                mf_shm_gva(other) + mf_shm_stride(other) <= mf_shm_gva(t->shm));
    mf_bm_create_params_init(&bm_params);
    bm_params.local_dram_size = 4 * MIB;
    bm_params.max_dram_per_rank = 4 * MIB;
    assert_int_equal(mf_bm_create(0, &bm_params, &bm), MF_OK);
    assert_int_equal(mf_bm_join(bm), MF_OK);
    /* each is memory of its own */
    tk_pattern_fill(mf_shm_ptr(t->shm, 0), PART, 21, 0);
    p = mf_shm_ptr(other, 0);
    memset(p, 0x5a, 5 * MIB);
    memset(mf_bm_gva_of_rank(bm, 0, MF_MEM_HOST), 0xa5, 4 * MIB);
    assert_int_equal(tk_pattern_check(mf_shm_ptr(t->shm, 0), PART, 21, 0), -1);
    assert_int_equal(p[0], 0x5a);
    assert_int_equal(p[5 * MIB - 1], 0x5a);
    base = mf_shm_gva(other);
    mf_shm_destroy(other);
    assert_int_equal(mf_shm_create(8, &params, &again), MF_OK);
    assert_int_equal(mf_shm_gva(again), base);
    mf_shm_destroy(again);
    /* bigger: elsewhere, or the same place if it still fits */
    params.symmetric_size = 9 * MIB;
    assert_int_equal(mf_shm_create(8, &params, &again), MF_OK);
    assert_true(mf_shm_gva(again) >=
                    mf_shm_gva(t->shm) + mf_shm_stride(t->shm) ||
                mf_shm_gva(again) + mf_shm_stride(again) <= mf_shm_gva(t->shm));
    mf_shm_destroy(again);
    mf_bm_destroy(bm);
    tk_log_reset(&test_log);
}

static void test_bad_args(void **state)
{
    test_shm_t *t = *state;
    mf_shm_create_params_t params;
    mf_shm_t *x = NULL;

    tk_log_allow_errors(&test_log, true);
    mf_shm_create_params_init(&params);
    assert_int_equal(mf_shm_create(9, &params, &x), MF_ERR_INVALID); /* 0 B */
    params.symmetric_size = MIB;
    assert_int_equal(mf_shm_create(9, NULL, &x), MF_ERR_INVALID);
    assert_int_equal(mf_shm_create(9, &params, NULL), MF_ERR_INVALID);
    assert_int_equal(mf_shm_create(0x80000000u, &params, &x), MF_ERR_INVALID);
    params.type = (mf_mem_type_t)5;
    assert_int_equal(mf_shm_create(9, &params, &x), MF_ERR_INVALID);
    params.type = MF_MEM_HOST;
    params.flags = 1;
    assert_int_equal(mf_shm_create(9, &params, &x), MF_ERR_INVALID);
    params.flags = 0;
    params.gva_base = 123;
    assert_int_equal(mf_shm_create(9, &params, &x), MF_ERR_INVALID);
    params.size = 8;
    params.gva_base = 0;
    assert_int_equal(mf_shm_create(9, &params, &x), MF_ERR_INVALID);
    assert_null(x);
    tk_log_allow_errors(&test_log, false);
    assert_int_equal(mf_shm_barrier(NULL), MF_ERR_INVALID);
    assert_int_equal(mf_shm_put(NULL, 0, "", 1), MF_ERR_INVALID);
    assert_int_equal(mf_shm_put(t->shm, mf_shm_gva(t->shm), NULL, 1),
                     MF_ERR_INVALID);
    assert_int_equal(mf_shm_get_context(t->shm, NULL, 0, NULL, 0),
                     MF_ERR_INVALID);
    assert_int_equal(mf_shm_register_exit(NULL, NULL, NULL), MF_ERR_INVALID);
    assert_int_equal(mf_shm_global_exit(NULL, 0), MF_ERR_INVALID);
    assert_null(mf_shm_ptr(NULL, 0));
    tk_log_reset(&test_log);
}

/* The bootstrap ends under live regions: they turn to MF_ERR_STATE and
 * are destroyed later without harm.  Last: it ends the group's region. */
static void test_uninit_first(void **state)
{
    test_shm_t *t = *state;
    mf_shm_create_params_t params;
    mf_shm_t *other = NULL;

    mf_shm_create_params_init(&params);
    params.symmetric_size = MIB;
    assert_int_equal(mf_shm_create(12, &params, &other), MF_OK);
    mf_shm_uninit();
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_shm_barrier(other), MF_ERR_STATE);
    assert_int_equal(mf_shm_put(t->shm, mf_shm_gva(t->shm), "x", 1),
                     MF_ERR_STATE);
    tk_log_allow_errors(&test_log, false);
    mf_shm_destroy(other);
    tk_log_reset(&test_log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),        cmocka_unit_test(test_region),
        cmocka_unit_test(test_collectives),  cmocka_unit_test(test_atomics),
        cmocka_unit_test(test_context),      cmocka_unit_test(test_global_exit),
        cmocka_unit_test(test_side_by_side), cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_uninit_first),
    };

    return tk_group_run(tests, test_setup, test_teardown);
}
