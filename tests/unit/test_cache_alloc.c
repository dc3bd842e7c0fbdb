/*
 * Unit tests of the MemCache meta space allocator: allocation and rounding,
 * best fit, coalescing, exhaustion, fragmentation, refused frees, a long
 * randomized run against a page-bitmap model that predicts every offset,
 * and a scaling check on the allocator's tree-step counter (not on time).
 * An error log that a test did not expect fails it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"

#include "cache/meta/alloc.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB 1024ull
#define PG  4096ull

/* ---- log capture: errors are counted, and must be expected ---- */

static tk_log_t test_alloc_log;

static int test_alloc_setup(void **state)
{
    (void)state;
    tk_log_start(&test_alloc_log, 0);
    mf_log_set_level(MF_LOG_WARN);
    return 0;
}

static int test_alloc_teardown(void **state)
{
    (void)state;
    tk_log_stop(&test_alloc_log);
    return tk_log_check_clean(&test_alloc_log);
}

/* Runs expr, which must log exactly one error. */
#define expect_one_error(_expr)                                                \
    do {                                                                       \
        unsigned _before = tk_log_count(&test_alloc_log, MF_LOG_ERROR);        \
        _expr;                                                                 \
        assert_int_equal(tk_log_count(&test_alloc_log, MF_LOG_ERROR),          \
                         _before + 1);                                         \
        tk_log_take(&test_alloc_log, MF_LOG_ERROR, 1);                         \
    } while (0)

static mmc_alloc_t *test_alloc_new(uint64_t size, uint64_t align)
{
    mmc_alloc_t *alloc = NULL;

    assert_int_equal(mmc_alloc_create(size, align, &alloc), MF_OK);
    assert_non_null(alloc);
    return alloc;
}

static uint64_t test_alloc_get(mmc_alloc_t *alloc, uint64_t len)
{
    uint64_t offset = UINT64_MAX;

    assert_int_equal(mmc_alloc_alloc(alloc, len, &offset), MF_OK);
    return offset;
}

static mmc_alloc_stats_t test_alloc_stats(mmc_alloc_t *alloc)
{
    mmc_alloc_stats_t stats;

    mmc_alloc_stats(alloc, &stats);
    assert_int_equal(stats.used + stats.free, stats.capacity);
    assert_int_equal(mmc_alloc_check(alloc), MF_OK);
    return stats;
}

static void test_alloc_create_args(void **state)
{
    mmc_alloc_t *alloc = NULL;
    mmc_alloc_stats_t stats;

    (void)state;
    expect_one_error(
        assert_int_equal(mmc_alloc_create(PG, 0, &alloc), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_create(PG, 3000, &alloc), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_create(PG - 1, PG, &alloc), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_create(0, PG, &alloc), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_create(PG, PG, NULL), MF_ERR_INVALID));
    assert_null(alloc);
    mmc_alloc_destroy(NULL);

    /* size rounded down to align */
    alloc = test_alloc_new(10 * PG + 123, MMC_ALLOC_ALIGN_DEFAULT);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.capacity, 10 * PG);
    assert_int_equal(stats.align, PG);
    assert_int_equal(stats.used, 0);
    assert_int_equal(stats.free, 10 * PG);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.largest_free, 10 * PG);
    assert_int_equal(stats.allocations, 0);
    mmc_alloc_destroy(alloc);

    /* align 1 and a full 64-bit range work */
    alloc = test_alloc_new(UINT64_MAX, 1);
    assert_int_equal(test_alloc_get(alloc, UINT64_MAX), 0);
    assert_int_equal(mmc_alloc_free(alloc, 0, UINT64_MAX), MF_OK);
    alloc = (mmc_alloc_destroy(alloc), NULL);
    alloc = test_alloc_new(UINT64_MAX, 1ull << 63);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.capacity, 1ull << 63);
    mmc_alloc_destroy(alloc);
}

static void test_alloc_basic(void **state)
{
    mmc_alloc_t *alloc = test_alloc_new(16 * PG, PG);
    mmc_alloc_stats_t stats;
    uint64_t a, b, c, off = 77;

    (void)state;
    a = test_alloc_get(alloc, PG);
    b = test_alloc_get(alloc, 2 * PG);
    c = test_alloc_get(alloc, 3 * PG);
    assert_int_equal(a, 0);
    assert_int_equal(b, PG);
    assert_int_equal(c, 3 * PG);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 6 * PG);
    assert_int_equal(stats.allocations, 3);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.largest_free, 10 * PG);

    assert_int_equal(mmc_alloc_free(alloc, b, 2 * PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 4 * PG);
    assert_int_equal(stats.free_blocks, 2);
    assert_int_equal(mmc_alloc_free(alloc, a, PG), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, c, 3 * PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 0);
    assert_int_equal(stats.allocations, 0);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.largest_free, 16 * PG);

    /* zero length and too large; outputs untouched on error */
    expect_one_error(
        assert_int_equal(mmc_alloc_alloc(alloc, 0, &off), MF_ERR_INVALID));
    assert_int_equal(mmc_alloc_alloc(alloc, 16 * PG + 1, &off),
                     MF_ERR_TOO_LARGE);
    assert_int_equal(mmc_alloc_alloc(alloc, UINT64_MAX, &off),
                     MF_ERR_TOO_LARGE);
    assert_int_equal(off, 77);
    assert_int_equal(test_alloc_get(alloc, 16 * PG), 0);
    mmc_alloc_destroy(alloc); /* with a live allocation: no leak */
}

static void test_alloc_rounding(void **state)
{
    mmc_alloc_t *alloc = test_alloc_new(64 * KIB, PG);
    mmc_alloc_stats_t stats;
    uint64_t a, b, c;

    (void)state;
    a = test_alloc_get(alloc, 1);
    b = test_alloc_get(alloc, PG + 1);
    c = test_alloc_get(alloc, PG);
    assert_int_equal(a, 0);
    assert_int_equal(b, PG);
    assert_int_equal(c, 3 * PG);
    assert_int_equal(a % PG, 0);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 4 * PG);

    /* free accepts any len with the same rounded value */
    assert_int_equal(mmc_alloc_free(alloc, a, PG), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, b, 2 * PG - 5), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, c, 1), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 0);
    mmc_alloc_destroy(alloc);

    /* another alignment */
    alloc = test_alloc_new(1000, 64);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.capacity, 960);
    assert_int_equal(test_alloc_get(alloc, 65), 0);
    assert_int_equal(test_alloc_get(alloc, 1), 128);
    assert_int_equal(mmc_alloc_alloc(alloc, 961, &a), MF_ERR_TOO_LARGE);
    assert_int_equal(test_alloc_get(alloc, 960 - 192), 192);
    assert_int_equal(mmc_alloc_alloc(alloc, 1, &a), MF_ERR_NOT_FOUND);
    mmc_alloc_destroy(alloc);
}

/*
 * Lays out holes of the given page counts, separated by one allocated page,
 * from offset 0; the tail after them is allocated too.  Returns the offset
 * of each hole in holes_p.
 */
static mmc_alloc_t *test_alloc_holes(const uint64_t *sizes, int n,
                                     uint64_t *holes_p)
{
    uint64_t total = 0, off;
    mmc_alloc_t *alloc;
    int i;

    for (i = 0; i < n; i++) {
        total += sizes[i] + 1;
    }
    alloc = test_alloc_new(total * PG, PG);
    off = 0;
    for (i = 0; i < n; i++) {
        holes_p[i] = test_alloc_get(alloc, sizes[i] * PG);
        assert_int_equal(holes_p[i], off);
        assert_int_equal(test_alloc_get(alloc, PG), off + sizes[i] * PG);
        off += (sizes[i] + 1) * PG;
    }
    assert_int_equal(mmc_alloc_alloc(alloc, 1, &off), MF_ERR_NOT_FOUND);
    for (i = 0; i < n; i++) {
        assert_int_equal(mmc_alloc_free(alloc, holes_p[i], sizes[i] * PG),
                         MF_OK);
    }
    return alloc;
}

static void test_alloc_best_fit(void **state)
{
    static const uint64_t sizes[] = {8, 3, 5, 3, 2, 16, 5};
    uint64_t holes[7];
    mmc_alloc_t *alloc = test_alloc_holes(sizes, 7, holes);
    mmc_alloc_stats_t stats = test_alloc_stats(alloc);
    uint64_t off;

    (void)state;
    assert_int_equal(stats.free_blocks, 7);
    assert_int_equal(stats.largest_free, 16 * PG);

    /* 4 pages: the 5-page holes fit best; the lower one first */
    assert_int_equal(test_alloc_get(alloc, 4 * PG), holes[2]);
    assert_int_equal(test_alloc_get(alloc, 4 * PG), holes[6]);
    /* 1 page: the 1-page remainders of the 5-page holes now fit exactly */
    assert_int_equal(test_alloc_get(alloc, 1), holes[2] + 4 * PG);
    assert_int_equal(test_alloc_get(alloc, 1), holes[6] + 4 * PG);
    /* then the 2-page hole, then the 3-page holes in offset order */
    assert_int_equal(test_alloc_get(alloc, 2 * PG), holes[4]);
    assert_int_equal(test_alloc_get(alloc, 3 * PG), holes[1]);
    assert_int_equal(test_alloc_get(alloc, PG), holes[3]);
    /* 9 pages: only the 16-page hole */
    assert_int_equal(test_alloc_get(alloc, 9 * PG), holes[5]);
    /* 8 pages: the 8-page hole, exact, not the 7-page rest of 16 */
    assert_int_equal(test_alloc_get(alloc, 8 * PG), holes[0]);
    assert_int_equal(test_alloc_get(alloc, 7 * PG), holes[5] + 9 * PG);
    assert_int_equal(test_alloc_get(alloc, 2 * PG), holes[3] + PG);
    assert_int_equal(mmc_alloc_alloc(alloc, 1, &off), MF_ERR_NOT_FOUND);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free, 0);
    assert_int_equal(stats.free_blocks, 0);
    assert_int_equal(stats.largest_free, 0);
    mmc_alloc_destroy(alloc);
}

static void test_alloc_coalesce(void **state)
{
    mmc_alloc_t *alloc = test_alloc_new(5 * PG, PG);
    mmc_alloc_stats_t stats;
    uint64_t off[5];
    int i;

    (void)state;
    for (i = 0; i < 5; i++) {
        off[i] = test_alloc_get(alloc, PG);
    }
    /* a lone hole, then its right neighbour merges into it (left merge) */
    assert_int_equal(mmc_alloc_free(alloc, off[1], PG), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, off[2], PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.largest_free, 2 * PG);
    /* its left neighbour (offset 0) merges with the hole on its right */
    assert_int_equal(mmc_alloc_free(alloc, off[0], PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.largest_free, 3 * PG);
    /* a separate hole at the end, then the block between merges both */
    assert_int_equal(mmc_alloc_free(alloc, off[4], PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, 2);
    assert_int_equal(mmc_alloc_free(alloc, off[3], PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.largest_free, 5 * PG);
    assert_int_equal(stats.used, 0);
    /* the one block serves the whole capacity again */
    assert_int_equal(test_alloc_get(alloc, 5 * PG), 0);
    assert_int_equal(mmc_alloc_free(alloc, 0, 5 * PG), MF_OK);
    mmc_alloc_destroy(alloc);
}

static void test_alloc_exhaustion(void **state)
{
    enum { N = 64 };
    mmc_alloc_t *alloc = test_alloc_new(N * PG, PG);
    mmc_alloc_stats_t stats;
    uint64_t off[N], o;
    int i;

    (void)state;
    for (i = 0; i < N; i++) {
        off[i] = test_alloc_get(alloc, PG);
        assert_int_equal(off[i], (uint64_t)i * PG);
    }
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free, 0);
    assert_int_equal(stats.allocations, N);
    assert_int_equal(mmc_alloc_alloc(alloc, 1, &o), MF_ERR_NOT_FOUND);
    assert_int_equal(mmc_alloc_free(alloc, off[17], PG), MF_OK);
    assert_int_equal(mmc_alloc_alloc(alloc, PG + 1, &o), MF_ERR_NOT_FOUND);
    assert_int_equal(test_alloc_get(alloc, PG), off[17]);
    assert_int_equal(mmc_alloc_alloc(alloc, 1, &o), MF_ERR_NOT_FOUND);
    for (i = 0; i < N; i++) {
        assert_int_equal(mmc_alloc_free(alloc, off[i], PG), MF_OK);
    }
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, 1);
    mmc_alloc_destroy(alloc);
}

static void test_alloc_fragmentation(void **state)
{
    enum { N = 32 };
    mmc_alloc_t *alloc = test_alloc_new(N * 2 * PG, PG);
    mmc_alloc_stats_t stats;
    uint64_t off[N], o;
    int i;

    (void)state;
    for (i = 0; i < N; i++) {
        off[i] = test_alloc_get(alloc, 2 * PG);
    }
    for (i = 0; i < N; i += 2) {
        assert_int_equal(mmc_alloc_free(alloc, off[i], 2 * PG), MF_OK);
    }
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free, N * PG);
    assert_int_equal(stats.free_blocks, N / 2);
    assert_int_equal(stats.largest_free, 2 * PG);
    /* half the segment is free, yet 3 pages do not fit anywhere */
    assert_int_equal(mmc_alloc_alloc(alloc, 3 * PG, &o), MF_ERR_NOT_FOUND);
    /* freeing block 5 joins holes 4 and 6: 6 pages at off[4] */
    assert_int_equal(mmc_alloc_free(alloc, off[5], 2 * PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, N / 2 - 1);
    assert_int_equal(stats.largest_free, 6 * PG);
    assert_int_equal(test_alloc_get(alloc, 3 * PG), off[4]);
    assert_int_equal(test_alloc_get(alloc, 3 * PG), off[4] + 3 * PG);
    assert_int_equal(mmc_alloc_alloc(alloc, 3 * PG, &o), MF_ERR_NOT_FOUND);
    mmc_alloc_destroy(alloc);
}

static void test_alloc_invalid_free(void **state)
{
    mmc_alloc_t *alloc = test_alloc_new(16 * PG, PG);
    mmc_alloc_stats_t before, after;
    uint64_t a, b, c;

    (void)state;
    a = test_alloc_get(alloc, PG);
    b = test_alloc_get(alloc, 2 * PG);
    c = test_alloc_get(alloc, PG);
    assert_int_equal(mmc_alloc_free(alloc, b, 2 * PG), MF_OK);
    before = test_alloc_stats(alloc);

    /* double free of a block that stayed a hole */
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, b, 2 * PG), MF_ERR_INVALID));
    /* wrong length, shorter and longer */
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, a, 2 * PG), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, c, 0), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, c, 17 * PG), MF_ERR_INVALID));
    /* inside a block, unaligned, in the free tail, out of range */
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, a + 8, PG), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, b + PG, PG), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, 10 * PG, PG), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, 16 * PG, PG), MF_ERR_INVALID));
    expect_one_error(assert_int_equal(mmc_alloc_free(alloc, UINT64_MAX, PG),
                                      MF_ERR_INVALID));
    after = test_alloc_stats(alloc);
    assert_int_equal(after.used, before.used);
    assert_int_equal(after.free_blocks, before.free_blocks);
    assert_int_equal(after.allocations, before.allocations);

    /* double free after coalescing: the offset is no block start any more */
    assert_int_equal(mmc_alloc_free(alloc, c, PG), MF_OK);
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, c, PG), MF_ERR_INVALID));
    assert_int_equal(mmc_alloc_free(alloc, a, PG), MF_OK);
    expect_one_error(
        assert_int_equal(mmc_alloc_free(alloc, a, PG), MF_ERR_INVALID));
    after = test_alloc_stats(alloc);
    assert_int_equal(after.used, 0);
    assert_int_equal(after.free_blocks, 1);
    mmc_alloc_destroy(alloc);
}

/* ---- randomized run against a page bitmap ---- */

static uint64_t test_alloc_rng = 0x2545f4914f6cdd1dull;

static uint64_t test_alloc_rand(void)
{
    test_alloc_rng ^= test_alloc_rng << 13;
    test_alloc_rng ^= test_alloc_rng >> 7;
    test_alloc_rng ^= test_alloc_rng << 17;
    return test_alloc_rng;
}

typedef struct test_alloc_live {
    uint64_t offset;
    uint64_t len; /* as requested */
} test_alloc_live_t;

typedef struct test_alloc_model {
    uint64_t pages;
    uint8_t *used; /* one byte per page */
    uint64_t used_pages;
} test_alloc_model_t;

/* Best fit by scanning the holes; returns the page or UINT64_MAX. */
static uint64_t test_alloc_model_fit(const test_alloc_model_t *m,
                                     uint64_t npages, uint64_t *holes_p,
                                     uint64_t *largest_p)
{
    uint64_t best = UINT64_MAX, best_len = UINT64_MAX, holes = 0, largest = 0;
    uint64_t p = 0, start;

    while (p < m->pages) {
        if (m->used[p]) {
            p++;
            continue;
        }
        start = p;
        while (p < m->pages && !m->used[p]) {
            p++;
        }
        holes++;
        if (p - start > largest) {
            largest = p - start;
        }
        if (p - start >= npages && p - start < best_len) {
            best = start;
            best_len = p - start;
        }
    }
    *holes_p = holes;
    *largest_p = largest;
    return best;
}

static void test_alloc_random(void **state)
{
    enum { PAGES = 1024, OPS = 100000, MAX_LIVE = 4096 };
    mmc_alloc_t *alloc = test_alloc_new(PAGES * PG, PG);
    test_alloc_model_t m = {.pages = PAGES};
    test_alloc_live_t *live = calloc(MAX_LIVE, sizeof(*live));
    mmc_alloc_stats_t stats;
    uint64_t nlive = 0, holes, largest, want, off, len, npages, i, k;
    uint64_t nalloc = 0, nfull = 0, nfree = 0;
    mf_status_t status;
    int op;

    (void)state;
    m.used = calloc(PAGES, 1);
    assert_non_null(m.used);
    assert_non_null(live);
    for (op = 0; op < OPS; op++) {
        /* lean to allocation while few are live, to freeing when many */
        if (nlive == 0 || (test_alloc_rand() % 100 < 55 && nlive < MAX_LIVE)) {
            /* mostly small, sometimes large, lengths in bytes */
            if (test_alloc_rand() % 8 == 0) {
                len = 1 + test_alloc_rand() % (128 * PG);
            } else {
                len = 1 + test_alloc_rand() % (8 * PG);
            }
            npages = (len + PG - 1) / PG;
            want = test_alloc_model_fit(&m, npages, &holes, &largest);
            status = mmc_alloc_alloc(alloc, len, &off);
            if (want == UINT64_MAX) {
                assert_int_equal(status, MF_ERR_NOT_FOUND);
                nfull++;
            } else {
                assert_int_equal(status, MF_OK);
                assert_int_equal(off, want * PG);
                for (k = 0; k < npages; k++) {
                    assert_false(m.used[want + k]); /* no overlap */
                    m.used[want + k] = 1;
                }
                m.used_pages += npages;
                live[nlive++] = (test_alloc_live_t){off, len};
                nalloc++;
            }
        } else {
            i = test_alloc_rand() % nlive;
            npages = (live[i].len + PG - 1) / PG;
            if (test_alloc_rand() % 50 == 0) {
                /* a wrong length is refused and changes nothing */
                expect_one_error(assert_int_equal(
                    mmc_alloc_free(alloc, live[i].offset, live[i].len + PG),
                    MF_ERR_INVALID));
            }
            assert_int_equal(mmc_alloc_free(alloc, live[i].offset, live[i].len),
                             MF_OK);
            for (k = 0; k < npages; k++) {
                assert_true(m.used[live[i].offset / PG + k]);
                m.used[live[i].offset / PG + k] = 0;
            }
            m.used_pages -= npages;
            live[i] = live[--nlive];
            nfree++;
        }

        mmc_alloc_stats(alloc, &stats);
        test_alloc_model_fit(&m, 1, &holes, &largest);
        assert_int_equal(stats.used + stats.free, stats.capacity);
        assert_int_equal(stats.used, m.used_pages * PG);
        assert_int_equal(stats.allocations, nlive);
        assert_int_equal(stats.free_blocks, holes);
        assert_int_equal(stats.largest_free, largest * PG);
        if (op % 1000 == 0) {
            assert_int_equal(mmc_alloc_check(alloc), MF_OK);
        }
    }
    assert_int_equal(mmc_alloc_check(alloc), MF_OK);
    /* the run exercised every path */
    assert_true(nalloc > OPS / 4);
    assert_true(nfree > OPS / 4);
    assert_true(nfull > 100);

    while (nlive > 0) {
        nlive--;
        assert_int_equal(
            mmc_alloc_free(alloc, live[nlive].offset, live[nlive].len), MF_OK);
    }
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 0);
    assert_int_equal(stats.free_blocks, 1);
    free(m.used);
    free(live);
    mmc_alloc_destroy(alloc);
}

/* ---- scaling: tree steps per operation stay logarithmic ---- */

static void test_alloc_scaling(void **state)
{
    enum { UNITS = 1 << 22, LIVE = 1 << 18, OPS = 1000000 };
    mmc_alloc_t *alloc = test_alloc_new(UNITS, 1);
    uint64_t *live = calloc(LIVE, sizeof(*live));
    uint64_t *lens = calloc(LIVE, sizeof(*lens));
    mmc_alloc_stats_t stats;
    uint64_t nlive = 0, steps0, i, len, off, maxblocks = 0, failed = 0;
    double per_op, log2n;
    mf_status_t status;
    int op;

    (void)state;
    assert_non_null(live);
    assert_non_null(lens);
    /* fragment: fill with small blocks, free every other one */
    while (nlive < LIVE) {
        len = 1 + test_alloc_rand() % 16;
        status = mmc_alloc_alloc(alloc, len, &off);
        if (status != MF_OK) {
            break;
        }
        live[nlive] = off;
        lens[nlive++] = len;
    }
    for (i = 0, op = 0; i < nlive; i++) {
        if (i % 2 == 0) {
            assert_int_equal(mmc_alloc_free(alloc, live[i], lens[i]), MF_OK);
        } else {
            live[op] = live[i];
            lens[op++] = lens[i];
        }
    }
    nlive = (uint64_t)op;
    stats = test_alloc_stats(alloc);
    assert_true(stats.free_blocks > LIVE / 4);

    steps0 = stats.debug_steps;
    for (op = 0; op < OPS; op++) {
        if (nlive < LIVE && (nlive == 0 || test_alloc_rand() % 2 == 0)) {
            len = 1 + test_alloc_rand() % 32;
            if (mmc_alloc_alloc(alloc, len, &off) == MF_OK) {
                live[nlive] = off;
                lens[nlive++] = len;
            } else {
                failed++;
            }
        } else {
            i = test_alloc_rand() % nlive;
            assert_int_equal(mmc_alloc_free(alloc, live[i], lens[i]), MF_OK);
            live[i] = live[nlive - 1];
            lens[i] = lens[--nlive];
        }
        if (op % 4096 == 0) {
            mmc_alloc_stats(alloc, &stats);
            if (stats.free_blocks + stats.allocations > maxblocks) {
                maxblocks = stats.free_blocks + stats.allocations;
            }
        }
    }
    stats = test_alloc_stats(alloc);
    per_op = (double)(stats.debug_steps - steps0) / OPS;
    log2n = 0;
    for (i = maxblocks; i > 1; i >>= 1) {
        log2n++;
    }
    print_message("scaling: %d ops over up to %" PRIu64
                  " blocks, %.1f tree steps per op (log2 n = %.0f), "
                  "%" PRIu64 " allocs found no space\n",
                  OPS, maxblocks, per_op, log2n, failed);
    assert_true(maxblocks > 100000);
    /* a handful of treap walks of expected depth ~1.4 log2 n each; a linear
     * scan would be tens of thousands of steps */
    assert_true(per_op < 20 * log2n);
    free(live);
    free(lens);
    mmc_alloc_destroy(alloc);
}

/* Rebuilding from reported blocks: exact ranges anywhere in a free block,
 * overlaps refused without a change, and an allocator rebuilt in any order
 * from another's blocks is the same allocator. */
static void test_alloc_at(void **state)
{
    enum { N = 300 };
    mmc_alloc_t *alloc = test_alloc_new(64 * PG, PG), *copy;
    mmc_alloc_stats_t stats, want;
    uint64_t offs[N], lens[N], n = 0, i, j, t;

    (void)state;
    assert_int_equal(mmc_alloc_alloc_at(alloc, 8 * PG, PG), MF_OK);
    assert_int_equal(mmc_alloc_alloc_at(alloc, 8 * PG, 1), MF_ERR_EXISTS);
    assert_int_equal(mmc_alloc_alloc_at(alloc, 7 * PG, 2 * PG), MF_ERR_EXISTS);
    assert_int_equal(mmc_alloc_alloc_at(alloc, 0, 100), MF_OK);      /* front */
    assert_int_equal(mmc_alloc_alloc_at(alloc, 63 * PG, PG), MF_OK); /* end */
    assert_int_equal(mmc_alloc_alloc_at(alloc, 9 * PG, 3 * PG), MF_OK);
    expect_one_error(
        assert_int_equal(mmc_alloc_alloc_at(alloc, 100, PG), MF_ERR_INVALID));
    expect_one_error(assert_int_equal(
        mmc_alloc_alloc_at(alloc, 62 * PG, 3 * PG), MF_ERR_INVALID));
    expect_one_error(
        assert_int_equal(mmc_alloc_alloc_at(alloc, 2 * PG, 0), MF_ERR_INVALID));
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.used, 6 * PG);
    assert_int_equal(stats.allocations, 4);
    assert_int_equal(stats.free_blocks, 2); /* [1, 8) and [12, 63) */
    assert_int_equal(stats.largest_free, 51 * PG);
    /* the blocks free like any others, and everything coalesces */
    assert_int_equal(mmc_alloc_free(alloc, 9 * PG, 3 * PG), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, 8 * PG, PG), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, 0, PG), MF_OK);
    assert_int_equal(mmc_alloc_free(alloc, 63 * PG, PG), MF_OK);
    stats = test_alloc_stats(alloc);
    assert_int_equal(stats.free_blocks, 1);
    assert_int_equal(stats.used, 0);
    mmc_alloc_destroy(alloc);

    /* a fragmented allocator rebuilt from its blocks in a shuffled order */
    alloc = test_alloc_new(4096 * PG, PG);
    for (i = 0; i < N; i++) {
        lens[n] = 1 + test_alloc_rand() % (8 * PG);
        if (mmc_alloc_alloc(alloc, lens[n], &offs[n]) == MF_OK) {
            n++;
        }
        if (n > 2 && test_alloc_rand() % 3 == 0) {
            j = test_alloc_rand() % n;
            assert_int_equal(mmc_alloc_free(alloc, offs[j], lens[j]), MF_OK);
            offs[j] = offs[--n];
            lens[j] = lens[n];
        }
    }
    for (i = n; i > 1; i--) {
        j = test_alloc_rand() % i;
        t = offs[i - 1], offs[i - 1] = offs[j], offs[j] = t;
        t = lens[i - 1], lens[i - 1] = lens[j], lens[j] = t;
    }
    copy = test_alloc_new(4096 * PG, PG);
    for (i = 0; i < n; i++) {
        assert_int_equal(mmc_alloc_alloc_at(copy, offs[i], lens[i]), MF_OK);
    }
    want = test_alloc_stats(alloc);
    stats = test_alloc_stats(copy);
    assert_int_equal(stats.used, want.used);
    assert_int_equal(stats.allocations, want.allocations);
    assert_int_equal(stats.free_blocks, want.free_blocks);
    assert_int_equal(stats.largest_free, want.largest_free);
    for (i = 0; i < n; i++) {
        assert_int_equal(mmc_alloc_free(copy, offs[i], lens[i]), MF_OK);
    }
    assert_int_equal(test_alloc_stats(copy).free_blocks, 1);
    mmc_alloc_destroy(copy);
    mmc_alloc_destroy(alloc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(_f)                                                                  \
    cmocka_unit_test_setup_teardown(_f, test_alloc_setup, test_alloc_teardown)
        T(test_alloc_create_args),
        T(test_alloc_basic),
        T(test_alloc_rounding),
        T(test_alloc_best_fit),
        T(test_alloc_coalesce),
        T(test_alloc_exhaustion),
        T(test_alloc_fragmentation),
        T(test_alloc_invalid_free),
        T(test_alloc_random),
        T(test_alloc_scaling),
        T(test_alloc_at),
#undef T
    };

    return tk_group_run(tests, NULL, NULL);
}
