/*
 * TRANS (mf_trans.h) between instances of one process, over a config
 * store served in the process: single, batch and asynchronous transfers
 * both ways, the KV-block layout, buffers registered and withdrawn while
 * peers use them, ids taken, peers gone, and bad arguments.  Across
 * processes and hosts (a peer killed mid-transfer):
 * tests/integration/it_trans.c.
 */
#include "tk_group.h"
#include "tk_log.h"
#include "tk_pattern.h"
#include "tk_proc.h"

#include <memfabric/memfabric.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define BUF_SIZE (16u << 20)

typedef struct test_trans {
    mf_store_server_t *server;
    char url[64];
    mf_trans_t *a;
    mf_trans_t *b;
    uint8_t *abuf; /* registered by a */
    uint8_t *bbuf; /* b's local memory, registered by b */
} test_trans_t;

static tk_log_t test_log;

static mf_trans_t *test_trans_new(const char *url, const char *id)
{
    mf_bm_config_t cfg;
    mf_trans_t *t = NULL;

    mf_bm_config_init(&cfg);
    cfg.copy_threads = 1;
    assert_int_equal(mf_trans_create(url, id, &cfg, &t), MF_OK);
    assert_string_equal(mf_trans_id(t), id);
    return t;
}

static int test_setup(void **state)
{
    test_trans_t *t = calloc(1, sizeof(*t));
    mf_store_server_config_t cfg;

    tk_log_start(&test_log, 0);
    assert_non_null(t);
    assert_int_equal(mf_init(), MF_OK);
    mf_store_server_config_init(&cfg);
    cfg.port = 0;
    assert_int_equal(mf_store_server_start(&cfg, &t->server), MF_OK);
    snprintf(t->url, sizeof(t->url), "tcp://127.0.0.1:%u",
             mf_store_server_port(t->server));
    t->a = test_trans_new(t->url, "10.0.0.1:7000");
    t->b = test_trans_new(t->url, "10.0.0.2:7000");
    t->abuf = aligned_alloc(4096, BUF_SIZE);
    t->bbuf = aligned_alloc(4096, BUF_SIZE);
    assert_non_null(t->abuf);
    assert_non_null(t->bbuf);
    tk_pattern_fill(t->abuf, BUF_SIZE, 1, 0);
    tk_pattern_fill(t->bbuf, BUF_SIZE, 2, 0);
    assert_int_equal(mf_trans_register(t->a, t->abuf, BUF_SIZE), MF_OK);
    assert_int_equal(mf_trans_register(t->b, t->bbuf, BUF_SIZE), MF_OK);
    *state = t;
    return 0;
}

static int test_teardown(void **state)
{
    test_trans_t *t = *state;

    mf_trans_destroy(t->a);
    mf_trans_destroy(t->b);
    mf_store_server_stop(t->server);
    free(t->abuf);
    free(t->bbuf);
    free(t);
    mf_uninit();
    tk_log_stop(&test_log);
    return 0;
}

static uint64_t test_addr(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

/* Single transfers both ways, from 1 byte to the whole buffer (split
 * across the tcp lanes), at odd offsets. */
static void test_single(void **state)
{
    test_trans_t *t = *state;
    static const size_t sizes[] = {1, 7, 4096, 65537, 1u << 20, BUF_SIZE};
    uint8_t *tmp = malloc(BUF_SIZE);

    assert_non_null(tmp);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], off = n == BUF_SIZE ? 0 : 13 * i + 1;

        tk_pattern_fill(t->bbuf, n, 100 + i, 0);
        assert_int_equal(mf_trans_write(t->b, "10.0.0.1:7000", t->bbuf,
                                        test_addr(t->abuf + off), n),
                         MF_OK);
        assert_memory_equal(t->abuf + off, t->bbuf, n);
        memset(tmp, 0, n);
        /* a reads it back from b's registered buffer: write it there */
        assert_int_equal(mf_trans_write(t->a, "10.0.0.2:7000", t->abuf + off,
                                        test_addr(t->bbuf), n),
                         MF_OK);
        assert_int_equal(
            mf_trans_read(t->a, "10.0.0.2:7000", tmp, test_addr(t->bbuf), n),
            MF_OK);
        assert_memory_equal(tmp, t->abuf + off, n);
    }
    /* 0 bytes is done at once, anywhere */
    assert_int_equal(mf_trans_write(t->b, "10.0.0.1:7000", t->bbuf, 1, 0),
                     MF_OK);
    free(tmp);
}

/* A KV block: 61 x 128 KiB + 61 x 16 KiB pieces in one batch, written
 * from b's local memory into a's buffer and read back, sync and async. */
static void test_kv_batch(void **state)
{
    test_trans_t *t = *state;
    mf_trans_piece_t pieces[122];
    mf_status_t results[122];
    mf_trans_req_t *req;
    uint8_t *back = calloc(1, BUF_SIZE);
    size_t off = 0;

    assert_non_null(back);
    for (int i = 0; i < 122; i++) {
        size_t n = i < 61 ? (128u << 10) : (16u << 10);

        pieces[i] =
            (mf_trans_piece_t){t->bbuf + off, test_addr(t->abuf + off), n};
        off += n;
    }
    tk_pattern_fill(t->bbuf, off, 7, 0);
    memset(t->abuf, 0, off);
    assert_int_equal(mf_trans_batch(t->b, "10.0.0.1:7000", MF_TRANS_WRITE,
                                    pieces, 122, results),
                     MF_OK);
    for (int i = 0; i < 122; i++) {
        assert_int_equal(results[i], MF_OK);
    }
    assert_memory_equal(t->abuf, t->bbuf, off);

    /* read back into other memory, asynchronously */
    for (int i = 0; i < 122; i++) {
        pieces[i].local = back + (pieces[i].remote - test_addr(t->abuf));
    }
    assert_int_equal(mf_trans_submit(t->b, "10.0.0.1:7000", MF_TRANS_READ,
                                     pieces, 122, &req),
                     MF_OK);
    memset(pieces, 0, sizeof(pieces)); /* the request keeps its copy */
    assert_int_equal(mf_trans_wait(req, -1, results), MF_OK);
    assert_memory_equal(back, t->abuf, off);

    /* mf_trans_test until done */
    pieces[0] = (mf_trans_piece_t){back, test_addr(t->abuf), BUF_SIZE};
    assert_int_equal(
        mf_trans_submit(t->b, "10.0.0.1:7000", MF_TRANS_READ, pieces, 1, &req),
        MF_OK);
    for (;;) {
        mf_status_t st = mf_trans_test(req, results);

        if (st != MF_INPROGRESS) {
            assert_int_equal(st, MF_OK);
            break;
        }
    }
    assert_memory_equal(back, t->abuf, BUF_SIZE);
    free(back);
}

/* Pieces outside the peer's buffers fail one by one; the others move. */
static void test_ranges(void **state)
{
    test_trans_t *t = *state;
    mf_trans_piece_t pieces[4] = {
        {t->bbuf, test_addr(t->abuf), 4096},
        {t->bbuf, test_addr(t->abuf) + BUF_SIZE - 100, 200}, /* past it */
        {t->bbuf, test_addr(t->abuf) - 4096, 4096},          /* before it */
        {NULL, test_addr(t->abuf), 16},                      /* no local */
    };
    mf_status_t results[4];

    assert_int_equal(mf_trans_batch(t->b, "10.0.0.1:7000", MF_TRANS_WRITE,
                                    pieces, 4, results),
                     MF_ERR_OUT_OF_RANGE);
    assert_int_equal(results[0], MF_OK);
    assert_int_equal(results[1], MF_ERR_OUT_OF_RANGE);
    assert_int_equal(results[2], MF_ERR_OUT_OF_RANGE);
    assert_int_equal(results[3], MF_ERR_INVALID);
}

/* Buffers come and go: one registered later is reachable as soon as the
 * call returned (the peer reads its list again), one withdrawn is not;
 * registrations are checked. */
static void test_register(void **state)
{
    test_trans_t *t = *state;
    uint8_t *more = malloc(3 * 65536), *tmp = malloc(65536);
    void *addrs[3] = {more, more + 65536, more + 2 * 65536};
    size_t sizes[3] = {65536, 65536, 65536};
    mf_status_t st;

    assert_non_null(more);
    assert_non_null(tmp);
    /* b knows a's list already (earlier tests): the new buffers are in a
     * fresh read */
    assert_int_equal(mf_trans_register_batch(t->a, addrs, sizes, 3), MF_OK);
    tk_pattern_fill(tmp, 65536, 9, 0);
    assert_int_equal(mf_trans_write(t->b, "10.0.0.1:7000", tmp,
                                    test_addr(more + 65536), 65536),
                     MF_OK);
    assert_memory_equal(more + 65536, tmp, 65536);
    /* a piece across two buffers is in neither */
    assert_int_equal(mf_trans_write(t->b, "10.0.0.1:7000", tmp,
                                    test_addr(more + 65536 - 8), 16),
                     MF_ERR_OUT_OF_RANGE);

    assert_int_equal(mf_trans_register(t->a, more + 100, 10), MF_ERR_EXISTS);
    assert_int_equal(mf_trans_register(t->a, NULL, 10), MF_ERR_INVALID);
    assert_int_equal(mf_trans_register(t->a, tmp, 0), MF_ERR_INVALID);
    assert_int_equal(mf_trans_deregister(t->a, more + 1), MF_ERR_NOT_FOUND);

    /* withdrawn: gone, whether b heard of it or a refused the old key
     * (then the piece is looked up again, on a fresh read) */
    assert_int_equal(mf_trans_deregister(t->a, more + 65536), MF_OK);
    st = mf_trans_write(t->b, "10.0.0.1:7000", tmp, test_addr(more + 65536),
                        65536);
    assert_int_equal(st, MF_ERR_OUT_OF_RANGE);
    /* the others stay */
    assert_int_equal(
        mf_trans_read(t->b, "10.0.0.1:7000", tmp, test_addr(more), 65536),
        MF_OK);
    /* registered again at the same address: reachable at once, whether b
     * heard of the change yet or its transfer is refused by the old key
     * and issued again on a fresh read */
    assert_int_equal(mf_trans_deregister(t->a, more), MF_OK);
    assert_int_equal(mf_trans_register(t->a, more, 65536), MF_OK);
    tk_pattern_fill(tmp, 65536, 11, 0);
    assert_int_equal(
        mf_trans_write(t->b, "10.0.0.1:7000", tmp, test_addr(more), 65536),
        MF_OK);
    assert_memory_equal(more, tmp, 65536);
    assert_int_equal(mf_trans_deregister(t->a, more), MF_OK);
    assert_int_equal(mf_trans_deregister(t->a, more + 2 * 65536), MF_OK);
    free(more);
    free(tmp);
    tk_log_reset(&test_log);
}

/* Ids: taken, malformed, unknown; a peer that went is lost, and its id
 * can be taken again. */
static void test_ids(void **state)
{
    test_trans_t *t = *state;
    mf_trans_t *dup = NULL, *c;
    uint8_t *cbuf = malloc(65536), x = 1;
    mf_bm_config_t cfg;

    assert_non_null(cbuf);
    mf_bm_config_init(&cfg);
    assert_int_equal(mf_trans_create(t->url, "10.0.0.1:7000", &cfg, &dup),
                     MF_ERR_EXISTS);
    assert_null(dup);
    assert_int_equal(mf_trans_create(t->url, "a/b", &cfg, &dup),
                     MF_ERR_INVALID);
    assert_int_equal(mf_trans_create(t->url, "", &cfg, &dup), MF_ERR_INVALID);
    assert_int_equal(
        mf_trans_write(t->b, "10.9.9.9:1", &x, test_addr(t->abuf), 1),
        MF_ERR_NOT_FOUND);
    assert_int_equal(mf_trans_write(t->b, "no/such", &x, test_addr(t->abuf), 1),
                     MF_ERR_INVALID);

    /* c comes, is used, goes */
    c = test_trans_new(t->url, "10.0.0.3:7000");
    assert_int_equal(mf_trans_register(c, cbuf, 65536), MF_OK);
    assert_int_equal(
        mf_trans_write(t->b, "10.0.0.3:7000", t->bbuf, test_addr(cbuf), 65536),
        MF_OK);
    mf_trans_destroy(c);
    for (;;) { /* until b heard of it: a peer error meanwhile */
        mf_status_t st = mf_trans_write(t->b, "10.0.0.3:7000", t->bbuf,
                                        test_addr(cbuf), 65536);

        assert_true(mf_status_is_peer_error(st));
        if (st == MF_ERR_PEER_LOST) {
            break;
        }
        tk_sleep_ms(10);
    }
    /* the id again, as a new instance */
    c = test_trans_new(t->url, "10.0.0.3:7000");
    assert_int_equal(mf_trans_register(c, cbuf, 65536), MF_OK);
    for (;;) {
        mf_status_t st = mf_trans_write(t->b, "10.0.0.3:7000", t->bbuf,
                                        test_addr(cbuf), 65536);

        if (st == MF_OK) {
            break;
        }
        assert_int_equal(st, MF_ERR_PEER_LOST); /* until b heard of it */
        tk_sleep_ms(10);
    }
    assert_memory_equal(cbuf, t->bbuf, 65536);
    mf_trans_destroy(c);
    free(cbuf);
    tk_log_reset(&test_log);
}

typedef struct test_worker {
    test_trans_t *t;
    int id;
    int ok;
} test_worker_t;

static void *test_worker(void *arg)
{
    test_worker_t *w = arg;
    size_t slice = BUF_SIZE / 4, off = (size_t)w->id * slice;
    uint8_t *local = malloc(slice);

    for (int i = 0; i < 20 && local != NULL; i++) {
        tk_pattern_fill(local, slice, (uint64_t)(w->id * 100 + i), 0);
        if (mf_trans_write(w->t->b, "10.0.0.1:7000", local,
                           test_addr(w->t->abuf + off), slice) != MF_OK ||
            memcmp(w->t->abuf + off, local, slice) != 0) {
            break;
        }
        w->ok++;
    }
    free(local);
    return NULL;
}

/* Threads of b writing a's buffer at once, each its own slice. */
static void test_threads(void **state)
{
    test_trans_t *t = *state;
    test_worker_t w[4];
    pthread_t tids[4];

    for (int i = 0; i < 4; i++) {
        w[i] = (test_worker_t){t, i, 0};
        assert_int_equal(pthread_create(&tids[i], NULL, test_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(w[i].ok, 20);
    }
}

static void test_bad_args(void **state)
{
    test_trans_t *t = *state;
    mf_trans_req_t *req = NULL;
    mf_trans_t *x = NULL;

    assert_int_equal(mf_trans_create(NULL, "x", NULL, &x), MF_ERR_INVALID);
    assert_int_equal(mf_trans_create(t->url, "x", NULL, NULL), MF_ERR_INVALID);
    assert_int_equal(
        mf_trans_batch(t->b, "10.0.0.1:7000", (mf_trans_op_t)9, NULL, 0, NULL),
        MF_ERR_INVALID);
    assert_int_equal(mf_trans_batch(t->b, NULL, MF_TRANS_READ, NULL, 0, NULL),
                     MF_ERR_INVALID);
    assert_int_equal(
        mf_trans_submit(t->b, "10.0.0.1:7000", MF_TRANS_READ, NULL, 1, &req),
        MF_ERR_INVALID);
    assert_int_equal(mf_trans_wait(NULL, 0, NULL), MF_ERR_INVALID);
    assert_int_equal(mf_trans_test(NULL, NULL), MF_ERR_INVALID);
    assert_int_equal(mf_trans_deregister(NULL, t->abuf), MF_ERR_INVALID);
    tk_log_reset(&test_log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),   cmocka_unit_test(test_kv_batch),
        cmocka_unit_test(test_ranges),   cmocka_unit_test(test_register),
        cmocka_unit_test(test_ids),      cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bad_args),
    };

    return tk_group_run(tests, test_setup, test_teardown);
}
