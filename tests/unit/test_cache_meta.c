/*
 * Unit tests of the MemCache meta state machine (meta_state.c), driven
 * directly, without sockets, on a clock the tests move by hand: the object
 * index, placement (by media too), pending puts, leases, owners, segments
 * (DRAM and HBM at their windows' slots) and eviction (LRU order,
 * watermarks, leased and pending objects, puts that evict, each media on
 * its own).  After every scenario each segment's allocator must be
 * consistent and hold exactly the bytes of the live replicas placed there
 * (mmc_state_check), and the tests compare used bytes with what they
 * expect.  An error log that a test did not expect fails it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"

#include "cache/meta/alloc.h"
#include "cache/meta/meta_state.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG        4096ull
#define SEG_SIZE  (64 * PG)
#define MAX_SEG   (256 * PG)
#define HOST_BASE 0x100000000ull
#define MAX_HBM   (128 * PG)
#define DEV_BASE  0x7000000000ull
#define LEASE_MS  100u
#define PUT_MS    1000u
#define NRANKS    16u

/* ---- log capture ---- */

static tk_log_t test_meta_log;

/* ---- fixture ---- */

typedef struct test_meta {
    mmc_state_t *st;
    mmc_state_owner_t *owners[NRANKS];
    uint64_t now;
} test_meta_t;

static int test_meta_setup(void **state)
{
    mmc_state_params_t p = {
        .max_ranks = NRANKS,
        .max_segment_size = MAX_SEG,
        .host_base = HOST_BASE,
        .max_hbm_segment_size = MAX_HBM,
        .device_base = DEV_BASE,
        .alloc_align = PG,
        .lease_ms = LEASE_MS,
        .put_timeout_ms = PUT_MS,
    };
    test_meta_t *t = calloc(1, sizeof(*t));

    tk_log_start(&test_meta_log, 0);
    mf_log_set_level(MF_LOG_WARN);
    assert_non_null(t);
    assert_int_equal(mmc_state_create(&p, &t->st), MF_OK);
    t->now = 1000;
    *state = t;
    return 0;
}

static int test_meta_teardown(void **state)
{
    test_meta_t *t = *state;

    mmc_state_destroy(t->st);
    free(t);
    tk_log_stop(&test_meta_log);
    return tk_log_check_clean(&test_meta_log);
}

static void test_meta_check(test_meta_t *t)
{
    assert_int_equal(mmc_state_check(t->st), MF_OK);
}

static mmc_state_owner_t *test_meta_owner(test_meta_t *t)
{
    mmc_state_owner_t *o = NULL;

    assert_int_equal(mmc_state_owner_create(t->st, &o), MF_OK);
    return o;
}

/* Registers rank with a DRAM segment of size bytes (0: a pure client) on
 * host; returns its owner (kept in t->owners[rank]). */
static mmc_state_owner_t *test_meta_member(test_meta_t *t, uint32_t rank,
                                           const char *host, uint64_t size)
{
    mmc_state_owner_t *o = test_meta_owner(t);
    mmc_seg_desc_t seg = {
        .media = MMC_MEDIA_DRAM,
        .gva = HOST_BASE + rank * MAX_SEG,
        .size = size,
    };
    uint32_t host_idx = UINT32_MAX;

    assert_int_equal(mmc_state_register(t->st, o, rank, host, "test",
                                        size ? 1 : 0, &seg, &host_idx),
                     MF_OK);
    assert_true(host_idx != UINT32_MAX);
    t->owners[rank] = o;
    return o;
}

/* Registers rank with a DRAM segment of dram bytes and an HBM segment of
 * hbm bytes, each at its slot (0: none) on host; returns its owner. */
static mmc_state_owner_t *test_meta_member2(test_meta_t *t, uint32_t rank,
                                            const char *host, uint64_t dram,
                                            uint64_t hbm)
{
    mmc_state_owner_t *o = test_meta_owner(t);
    mmc_seg_desc_t segs[2];
    uint32_t n = 0, host_idx;

    if (hbm != 0) {
        segs[n].media = MMC_MEDIA_HBM;
        segs[n].gva = DEV_BASE + rank * MAX_HBM;
        segs[n++].size = hbm;
    }
    if (dram != 0) {
        segs[n].media = MMC_MEDIA_DRAM;
        segs[n].gva = HOST_BASE + rank * MAX_SEG;
        segs[n++].size = dram;
    }
    assert_int_equal(
        mmc_state_register(t->st, o, rank, host, "test", n, segs, &host_idx),
        MF_OK);
    t->owners[rank] = o;
    return o;
}

/* Registers rank with a DRAM segment of dram bytes and an SSD segment of
 * ssd bytes on host; returns its owner. */
static mmc_state_owner_t *test_meta_member_ssd(test_meta_t *t, uint32_t rank,
                                               const char *host, uint64_t dram,
                                               uint64_t ssd)
{
    mmc_state_owner_t *o = test_meta_owner(t);
    mmc_seg_desc_t segs[2] = {
        {.media = MMC_MEDIA_SSD, .gva = 0, .size = ssd},
        {.media = MMC_MEDIA_DRAM,
         .gva = HOST_BASE + rank * MAX_SEG,
         .size = dram},
    };
    uint32_t host_idx;

    assert_int_equal(
        mmc_state_register(t->st, o, rank, host, "test", 2, segs, &host_idx),
        MF_OK);
    t->owners[rank] = o;
    return o;
}

static void test_meta_drop(test_meta_t *t, uint32_t rank)
{
    mmc_state_owner_destroy(t->st, t->owners[rank]);
    t->owners[rank] = NULL;
}

static const mmc_state_put_opts_t test_meta_opts1 = {.replicas = 1};

static mmc_status_t test_meta_put_opts(test_meta_t *t, mmc_state_owner_t *o,
                                       const char *key, uint64_t size,
                                       const mmc_state_put_opts_t *opts,
                                       mmc_obj_result_t *res)
{
    mmc_obj_result_t local;
    mmc_status_t s;

    if (res == NULL) {
        res = &local;
    }
    s = mmc_state_put_alloc(t->st, o, key, strlen(key), size, opts, t->now,
                            res);
    assert_int_equal(s, res->status);
    return s;
}

/* A committed put of key with `replicas` replicas; returns the result. */
static mmc_obj_result_t test_meta_put(test_meta_t *t, mmc_state_owner_t *o,
                                      const char *key, uint64_t size,
                                      uint32_t replicas, uint32_t flags)
{
    mmc_state_put_opts_t opts = {.replicas = replicas, .flags = flags};
    mmc_obj_result_t res;

    assert_int_equal(test_meta_put_opts(t, o, key, size, &opts, &res), MMC_OK);
    assert_int_equal(res.nrep, replicas);
    assert_int_equal(res.size, size);
    assert_true(res.id != 0);
    assert_int_equal(mmc_state_put_commit(t->st, o, res.id, MMC_OK), MMC_OK);
    return res;
}

static mmc_status_t test_meta_get(test_meta_t *t, mmc_state_owner_t *o,
                                  const char *key, mmc_obj_result_t *res)
{
    mmc_obj_result_t local;

    return mmc_state_get(t->st, o, key, strlen(key), t->now,
                         res ? res : &local);
}

static mmc_status_t test_meta_query(test_meta_t *t, const char *key,
                                    mmc_obj_result_t *res, uint32_t *leases)
{
    mmc_obj_result_t local;
    mmc_status_t status =
        mmc_state_query(t->st, key, strlen(key), res ? res : &local, leases);

    /* EXIST's lookup agrees with QUERY's everywhere this test looks */
    assert_int_equal(mmc_state_exists(t->st, key, strlen(key)), status);
    return status;
}

typedef struct test_meta_used {
    uint64_t used[NRANKS]; /* of every media */
    uint64_t replicas[NRANKS];
    uint64_t media[3]; /* used bytes by media */
    uint64_t total;
    uint32_t segs;
} test_meta_used_t;

static void test_meta_used_cb(const mmc_state_seg_info_t *seg, void *arg)
{
    test_meta_used_t *u = arg;
    mmc_alloc_stats_t st;

    assert_true(seg->rank < NRANKS);
    assert_int_equal(seg->used + seg->free, seg->capacity);
    assert_int_equal(mmc_alloc_check(seg->alloc), MF_OK);
    mmc_alloc_stats(seg->alloc, &st);
    assert_int_equal(st.used, seg->used);
    assert_int_equal(st.allocations, seg->replicas + seg->arriving);
    assert_true(seg->media < 3);
    u->used[seg->rank] += seg->used;
    u->replicas[seg->rank] += seg->replicas;
    u->media[seg->media] += seg->used;
    u->total += seg->used;
    u->segs++;
}

static test_meta_used_t test_meta_usage(test_meta_t *t)
{
    test_meta_used_t u;

    memset(&u, 0, sizeof(u));
    test_meta_check(t);
    mmc_state_foreach_seg(t->st, test_meta_used_cb, &u);
    return u;
}

static mmc_state_counters_t test_meta_counters(test_meta_t *t)
{
    mmc_state_counters_t c;

    mmc_state_get_counters(t->st, &c);
    return c;
}

/* ---- index ---- */

static void test_meta_index(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "h0", SEG_SIZE);
    mmc_obj_result_t res;
    mmc_obj_result_t got;
    uint32_t leases = 99;

    assert_int_equal(test_meta_query(t, "k", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_get(t, a, "k", NULL), MMC_ERR_NOT_FOUND);

    /* pending: not visible */
    assert_int_equal(
        test_meta_put_opts(t, a, "k", 5000, &test_meta_opts1, &res), MMC_OK);
    assert_int_equal(res.nrep, 1);
    assert_int_equal(res.reps[0].rank, 0);
    assert_int_equal(res.reps[0].media, MMC_MEDIA_DRAM);
    assert_int_equal(res.reps[0].gva, HOST_BASE); /* best fit: offset 0 */
    assert_int_equal(test_meta_query(t, "k", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_get(t, a, "k", NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_usage(t).used[0], 2 * PG);
    assert_int_equal(test_meta_counters(t).pending_puts, 1);

    assert_int_equal(mmc_state_put_commit(t->st, a, res.id, MMC_OK), MMC_OK);
    /* a second commit of the same id: unknown now */
    assert_int_equal(mmc_state_put_commit(t->st, a, res.id, MMC_OK),
                     MMC_ERR_ABORTED);
    assert_int_equal(test_meta_query(t, "k", &got, &leases), MMC_OK);
    assert_int_equal(got.id, 0);
    assert_int_equal(got.size, 5000);
    assert_int_equal(got.nrep, 1);
    assert_int_equal(got.reps[0].gva, res.reps[0].gva);
    assert_int_equal(leases, 0);

    assert_int_equal(test_meta_get(t, a, "k", &got), MMC_OK);
    assert_true(got.id != 0);
    assert_int_equal(got.size, 5000);
    assert_int_equal(mmc_state_release(t->st, a, got.id), MMC_OK);
    assert_int_equal(mmc_state_release(t->st, a, got.id),
                     MMC_ERR_LEASE_EXPIRED);

    /* write once */
    assert_int_equal(test_meta_put_opts(t, a, "k", 100, &test_meta_opts1, NULL),
                     MMC_ERR_EXISTS);
    assert_int_equal(test_meta_usage(t).used[0], 2 * PG);

    /* remove */
    assert_int_equal(mmc_state_remove(t->st, "k", 1), MMC_OK);
    assert_int_equal(mmc_state_remove(t->st, "k", 1), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_query(t, "k", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_usage(t).used[0], 0);

    /* and written again after the removal */
    test_meta_put(t, a, "k", 1, 1, 0);
    assert_int_equal(test_meta_usage(t).used[0], PG);
    assert_int_equal(test_meta_counters(t).objects, 1);
    assert_int_equal(test_meta_counters(t).object_bytes, 1);
    assert_int_equal(test_meta_counters(t).puts_committed, 2);
    assert_int_equal(test_meta_counters(t).removes, 1);
}

static void test_meta_replace(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "h0", SEG_SIZE);
    mmc_state_owner_t *b = test_meta_owner(t);
    mmc_obj_result_t v1;
    mmc_obj_result_t v2;
    mmc_obj_result_t lease;
    mmc_obj_result_t got;
    uint32_t leases = 0;

    v1 = test_meta_put(t, a, "k", PG, 1, 0);
    assert_int_equal(test_meta_get(t, b, "k", &lease), MMC_OK);
    assert_int_equal(lease.reps[0].gva, v1.reps[0].gva);
    assert_int_equal(test_meta_query(t, "k", NULL, &leases), MMC_OK);
    assert_int_equal(leases, 1);

    /* replace while v1 is leased: v1 stays allocated */
    v2 = test_meta_put(t, a, "k", 3 * PG, 1, MMC_PUT_REPLACE);
    assert_int_not_equal(v2.reps[0].gva, v1.reps[0].gva);
    assert_int_equal(test_meta_query(t, "k", &got, &leases), MMC_OK);
    assert_int_equal(got.size, 3 * PG);
    assert_int_equal(got.reps[0].gva, v2.reps[0].gva);
    assert_int_equal(leases, 0);
    assert_int_equal(test_meta_usage(t).used[0], 4 * PG);
    assert_int_equal(test_meta_counters(t).unlinked, 1);
    assert_int_equal(test_meta_counters(t).objects, 1);

    /* the reader releases: v1's space is freed */
    assert_int_equal(mmc_state_release(t->st, b, lease.id), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], 3 * PG);
    assert_int_equal(test_meta_counters(t).unlinked, 0);

    /* replace without a lease: freed at once */
    test_meta_put(t, a, "k", PG, 1, MMC_PUT_REPLACE);
    assert_int_equal(test_meta_usage(t).used[0], PG);

    /* REPLACE of an absent key is a plain put */
    test_meta_put(t, a, "new", PG, 1, MMC_PUT_REPLACE);
    assert_int_equal(test_meta_usage(t).used[0], 2 * PG);

    /* remove under a lease: gone for readers, space kept until release */
    assert_int_equal(test_meta_get(t, b, "new", &lease), MMC_OK);
    assert_int_equal(mmc_state_remove(t->st, "new", 3), MMC_OK);
    assert_int_equal(test_meta_get(t, b, "new", NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_usage(t).used[0], 2 * PG);
    assert_int_equal(mmc_state_release(t->st, b, lease.id), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], PG);
    mmc_state_owner_destroy(t->st, b);
}

static void test_meta_bad_input(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "h0", SEG_SIZE);
    mmc_state_put_opts_t opts = {.replicas = 0};
    char big[300];

    assert_int_equal(test_meta_put_opts(t, a, "k", 0, &test_meta_opts1, NULL),
                     MF_ERR_INVALID);
    assert_int_equal(test_meta_put_opts(t, a, "k", 1, &opts, NULL),
                     MF_ERR_INVALID);
    opts.replicas = MMC_MAX_REPLICAS + 1;
    assert_int_equal(test_meta_put_opts(t, a, "k", 1, &opts, NULL),
                     MF_ERR_INVALID);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(test_meta_put_opts(t, a, big, 1, &test_meta_opts1, NULL),
                     MF_ERR_INVALID);
    assert_int_equal(test_meta_put_opts(t, a, "", 1, &test_meta_opts1, NULL),
                     MF_ERR_INVALID);
    /* larger than any segment */
    assert_int_equal(
        test_meta_put_opts(t, a, "k", SEG_SIZE + 1, &test_meta_opts1, NULL),
        MMC_ERR_NO_SPACE);
    assert_int_equal(
        test_meta_put_opts(t, a, "k", UINT64_MAX, &test_meta_opts1, NULL),
        MF_ERR_INVALID);
    assert_int_equal(mmc_state_put_commit(t->st, a, 12345, MMC_OK),
                     MMC_ERR_ABORTED);
    assert_int_equal(mmc_state_release(t->st, a, 12345), MMC_ERR_LEASE_EXPIRED);
    assert_int_equal(test_meta_usage(t).total, 0);
    assert_int_equal(test_meta_counters(t).pending_puts, 0);
}

/* ---- membership ---- */

static void test_meta_register(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_owner(t);
    mmc_state_owner_t *b = test_meta_owner(t);
    mmc_state_owner_t *c;
    mmc_seg_desc_t seg = {.media = MMC_MEDIA_DRAM,
                          .gva = HOST_BASE + 3 * MAX_SEG,
                          .size = SEG_SIZE};
    mmc_seg_desc_t two[2] = {seg, seg};
    uint32_t idx = 77;
    uint32_t idx2 = 77;

    /* rank out of range, wrong gva, sizes */
    assert_int_equal(
        mmc_state_register(t->st, a, NRANKS, "h", "n", 0, NULL, &idx),
        MF_ERR_INVALID);
    assert_int_equal(mmc_state_register(t->st, a, 2, "h", "n", 1, &seg, &idx),
                     MF_ERR_INVALID);
    seg.size = 0;
    assert_int_equal(mmc_state_register(t->st, a, 3, "h", "n", 1, &seg, &idx),
                     MF_ERR_INVALID);
    seg.size = MAX_SEG + PG;
    assert_int_equal(mmc_state_register(t->st, a, 3, "h", "n", 1, &seg, &idx),
                     MF_ERR_INVALID);
    seg.size = SEG_SIZE;
    seg.media = 7;
    assert_int_equal(mmc_state_register(t->st, a, 3, "h", "n", 1, &seg, &idx),
                     MF_ERR_INVALID);
    seg.media = MMC_MEDIA_DRAM;
    assert_int_equal(mmc_state_register(t->st, a, 3, "h", "n", 2, two, &idx),
                     MF_ERR_INVALID);
    assert_int_equal(mmc_state_register(t->st, a, 3, "", "n", 1, &seg, &idx),
                     MF_ERR_INVALID);
    assert_int_equal(idx, 77);
    assert_int_equal(test_meta_counters(t).registered, 0);

    assert_int_equal(mmc_state_register(t->st, a, 3, "h", "n", 1, &seg, &idx),
                     MF_OK);
    assert_int_equal(mmc_state_owner_rank(a), 3);
    /* taken by a live owner */
    assert_int_equal(mmc_state_register(t->st, b, 3, "h", "n", 1, &seg, &idx2),
                     MF_ERR_EXISTS);
    /* one rank per owner */
    assert_int_equal(mmc_state_register(t->st, a, 4, "h", "n", 0, NULL, &idx2),
                     MF_ERR_STATE);
    /* a pure client on the same host gets the same host index */
    assert_int_equal(mmc_state_register(t->st, b, 5, "h", "n", 0, NULL, &idx2),
                     MF_OK);
    assert_int_equal(idx2, idx);
    assert_int_equal(test_meta_counters(t).members, 1);
    assert_int_equal(test_meta_counters(t).registered, 2);
    assert_int_equal(test_meta_usage(t).segs, 1);

    /* the rank is free again once its owner resets (UNREGISTER) */
    mmc_state_owner_reset(t->st, a);
    assert_int_equal(mmc_state_owner_rank(a), UINT32_MAX);
    assert_int_equal(test_meta_counters(t).members, 0);
    assert_int_equal(test_meta_usage(t).segs, 0);
    /* another host id, while "h" is in use (by b): another index */
    c = test_meta_owner(t);
    assert_int_equal(
        mmc_state_register(t->st, c, 3, "other", "n", 1, &seg, &idx2), MF_OK);
    assert_int_not_equal(idx2, idx);
    /* and the reset owner may register again, elsewhere */
    assert_int_equal(mmc_state_register(t->st, a, 6, "h", "n", 0, NULL, &idx2),
                     MF_OK);
    assert_int_equal(idx2, idx);
    assert_int_equal(test_meta_counters(t).hosts, 2);
    test_meta_check(t);
    (void)state;
}

/* Host ids live while a registered rank (member or pure client) uses them;
 * the index of a freed one goes to the next new id. */
static void test_meta_hosts(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_owner(t);
    mmc_state_owner_t *b = test_meta_owner(t);
    mmc_seg_desc_t seg = {.media = MMC_MEDIA_DRAM,
                          .gva = HOST_BASE + 2 * MAX_SEG,
                          .size = SEG_SIZE};
    uint32_t ia = 99;
    uint32_t ib = 99;
    uint32_t idx = 99;
    char host[64];

    /* a peer that cycles through new host ids: nothing accumulates */
    for (int i = 0; i < 1000; i++) {
        snprintf(host, sizeof(host), "cycling-host-%d", i);
        assert_int_equal(
            mmc_state_register(t->st, a, 1, host, "n", 0, NULL, &idx), MF_OK);
        assert_int_equal(idx, 0);
        assert_int_equal(test_meta_counters(t).hosts, 1);
        mmc_state_owner_reset(t->st, a);
        assert_int_equal(test_meta_counters(t).hosts, 0);
    }
    test_meta_check(t);

    /* two ranks on one host: the id lives until both are gone */
    assert_int_equal(
        mmc_state_register(t->st, a, 2, "shared", "n", 1, &seg, &ia), MF_OK);
    assert_int_equal(
        mmc_state_register(t->st, b, 4, "shared", "n", 0, NULL, &ib), MF_OK);
    assert_int_equal(ia, ib);
    assert_int_equal(test_meta_counters(t).hosts, 1);
    mmc_state_owner_reset(t->st, a);
    assert_int_equal(test_meta_counters(t).hosts, 1);
    test_meta_check(t);
    /* a new host while "shared" lives: another index */
    assert_int_equal(
        mmc_state_register(t->st, a, 2, "second", "n", 1, &seg, &idx), MF_OK);
    assert_int_not_equal(idx, ib);
    assert_int_equal(test_meta_counters(t).hosts, 2);
    /* b goes: "shared"'s index is free and the next new host takes it */
    mmc_state_owner_destroy(t->st, b);
    assert_int_equal(test_meta_counters(t).hosts, 1);
    b = test_meta_owner(t);
    assert_int_equal(
        mmc_state_register(t->st, b, 5, "third", "n", 0, NULL, &idx), MF_OK);
    assert_int_equal(idx, ib);
    test_meta_check(t);

    /* failed registrations leave no host behind */
    mmc_state_owner_reset(t->st, b);
    assert_int_equal(test_meta_counters(t).hosts, 1);
    assert_int_equal(
        mmc_state_register(t->st, b, 2, "fourth", "n", 0, NULL, &idx),
        MF_ERR_EXISTS);
    seg.size = 0;
    assert_int_equal(
        mmc_state_register(t->st, b, 3, "fourth", "n", 1, &seg, &idx),
        MF_ERR_INVALID);
    assert_int_equal(test_meta_counters(t).hosts, 1);
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, a);
    mmc_state_owner_destroy(t->st, b);
    assert_int_equal(test_meta_counters(t).hosts, 0);
    test_meta_check(t);
}

/* ---- placement ---- */

static uint32_t test_meta_host_of(const mmc_obj_result_t *res, uint32_t i)
{
    return res->reps[i].host_idx;
}

static void test_meta_place_distinct(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *client = test_meta_owner(t);
    mmc_obj_result_t res;
    bool seen[NRANKS];

    /* ranks 0,1 on host A; 2,3 on host B; 4 on host C */
    test_meta_member(t, 0, "A", SEG_SIZE);
    test_meta_member(t, 1, "A", SEG_SIZE);
    test_meta_member(t, 2, "B", SEG_SIZE);
    test_meta_member(t, 3, "B", SEG_SIZE);
    test_meta_member(t, 4, "C", SEG_SIZE);

    /* three replicas from a pure client: one per host */
    res = test_meta_put(t, client, "k3", PG, 3, 0);
    assert_true(test_meta_host_of(&res, 0) != test_meta_host_of(&res, 1));
    assert_true(test_meta_host_of(&res, 0) != test_meta_host_of(&res, 2));
    assert_true(test_meta_host_of(&res, 1) != test_meta_host_of(&res, 2));

    /* five: every rank once, hosts first */
    res = test_meta_put(t, client, "k5", PG, 5, 0);
    memset(seen, 0, sizeof(seen));
    for (uint32_t i = 0; i < 5; i++) {
        assert_false(seen[res.reps[i].rank]);
        seen[res.reps[i].rank] = true;
    }
    assert_true(test_meta_host_of(&res, 0) != test_meta_host_of(&res, 1));
    assert_true(test_meta_host_of(&res, 0) != test_meta_host_of(&res, 2));
    assert_true(test_meta_host_of(&res, 1) != test_meta_host_of(&res, 2));

    /* six: too few ranks; nothing allocated */
    {
        test_meta_used_t before = test_meta_usage(t);
        test_meta_used_t after;
        mmc_state_put_opts_t six = {.replicas = 6};

        assert_int_equal(test_meta_put_opts(t, client, "k6", PG, &six, NULL),
                         MMC_ERR_NO_SPACE);
        after = test_meta_usage(t);
        assert_memory_equal(&before, &after, sizeof(before));
        assert_int_equal(test_meta_query(t, "k6", NULL, NULL),
                         MMC_ERR_NOT_FOUND);
        /* and the key is not left pending */
        res = test_meta_put(t, client, "k6", PG, 1, 0);
    }
    mmc_state_owner_destroy(t->st, client);
}

static void test_meta_place_order(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *own;
    mmc_state_owner_t *client = test_meta_owner(t);
    mmc_obj_result_t res;
    mmc_state_put_opts_t opts = {.replicas = 1};
    uint32_t pref[2];

    /* sizes differ: rank 2 has the most space, then 1, then 0 */
    test_meta_member(t, 0, "A", 16 * PG);
    test_meta_member(t, 1, "B", 32 * PG);
    test_meta_member(t, 2, "C", 48 * PG);
    own = test_meta_member(t, 3, "D", 8 * PG);

    /* most free space first */
    res = test_meta_put(t, client, "a", PG, 1, 0);
    assert_int_equal(res.reps[0].rank, 2);
    res = test_meta_put(t, client, "b", PG, 3, 0);
    assert_int_equal(res.reps[0].rank, 2);
    assert_int_equal(res.reps[1].rank, 1);
    assert_int_equal(res.reps[2].rank, 0);

    /* own rank first, then most free */
    res = test_meta_put(t, own, "c", PG, 2, 0);
    assert_int_equal(res.reps[0].rank, 3);
    assert_int_equal(res.reps[1].rank, 2);

    /* preferred ranks first, in order, then own */
    pref[0] = 0;
    pref[1] = 1;
    opts.replicas = 3;
    opts.npref = 2;
    opts.pref = pref;
    assert_int_equal(test_meta_put_opts(t, own, "d", PG, &opts, &res), MMC_OK);
    assert_int_equal(res.reps[0].rank, 0);
    assert_int_equal(res.reps[1].rank, 1);
    assert_int_equal(res.reps[2].rank, 3);
    assert_int_equal(mmc_state_put_commit(t->st, own, res.id, MMC_OK), MMC_OK);

    /* preferred ranks that do not exist or have no room are skipped */
    pref[0] = NRANKS + 5;
    pref[1] = 9; /* not registered */
    opts.replicas = 1;
    assert_int_equal(test_meta_put_opts(t, own, "e", PG, &opts, &res), MMC_OK);
    assert_int_equal(res.reps[0].rank, 3);
    assert_int_equal(mmc_state_put_commit(t->st, own, res.id, MMC_OK), MMC_OK);

    /* own rank full: the next best */
    assert_int_equal(
        test_meta_put_opts(t, own, "big", 6 * PG, &test_meta_opts1, &res),
        MMC_OK);
    assert_int_equal(res.reps[0].rank, 2);
    assert_int_equal(mmc_state_put_commit(t->st, own, res.id, MMC_OK), MMC_OK);
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, client);
}

static void test_meta_place_hosts(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *own;
    mmc_obj_result_t res;
    mmc_state_put_opts_t opts = {.replicas = 2};
    uint32_t pref[2] = {1, 2};

    /* own rank 0 and rank 1 on host A (1 has the most space); 2 on B */
    own = test_meta_member(t, 0, "A", 16 * PG);
    test_meta_member(t, 1, "A", 64 * PG);
    test_meta_member(t, 2, "B", 16 * PG);

    /* own rank, then another host before more space on the same host */
    res = test_meta_put(t, own, "a", PG, 2, 0);
    assert_int_equal(res.reps[0].rank, 0);
    assert_int_equal(res.reps[1].rank, 2);

    /* preferred 1 (host A), then preferred 2 (B): own rank (host A too)
     * comes after the distinct hosts */
    opts.npref = 2;
    opts.pref = pref;
    opts.replicas = 3;
    assert_int_equal(test_meta_put_opts(t, own, "b", PG, &opts, &res), MMC_OK);
    assert_int_equal(res.reps[0].rank, 1);
    assert_int_equal(res.reps[1].rank, 2);
    assert_int_equal(res.reps[2].rank, 0);
    assert_int_equal(mmc_state_put_commit(t->st, own, res.id, MMC_OK), MMC_OK);

    /* a preferred rank on a used host waits for the distinct hosts */
    pref[0] = 0;
    pref[1] = 1;
    opts.replicas = 2;
    assert_int_equal(test_meta_put_opts(t, own, "c", PG, &opts, &res), MMC_OK);
    assert_int_equal(res.reps[0].rank, 0);
    assert_int_equal(res.reps[1].rank, 2);
    assert_int_equal(mmc_state_put_commit(t->st, own, res.id, MMC_OK), MMC_OK);
    test_meta_check(t);
}

static void test_meta_no_space_rollback(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", 4 * PG);
    mmc_state_owner_t *b = test_meta_member(t, 1, "B", 8 * PG);
    test_meta_used_t before;
    test_meta_used_t after;
    mmc_state_put_opts_t two = {.replicas = 2};

    test_meta_put(t, a, "x", 3 * PG, 1, 0); /* rank 0: 1 page left */
    before = test_meta_usage(t);
    /* fits on rank 1 only: the allocation there is rolled back */
    assert_int_equal(test_meta_put_opts(t, a, "y", 2 * PG, &two, NULL),
                     MMC_ERR_NO_SPACE);
    after = test_meta_usage(t);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(test_meta_counters(t).pending_puts, 0);
    /* fragmentation: 2 free pages on rank 1 split by a used one */
    test_meta_put(t, b, "p1", PG, 1, 0);
    test_meta_put(t, b, "p2", PG, 1, 0);
    test_meta_put(t, b, "p3", PG, 1, 0);
    test_meta_put(t, b, "p4", 5 * PG, 1, 0);
    assert_int_equal(mmc_state_remove(t->st, "p1", 2), MMC_OK);
    assert_int_equal(mmc_state_remove(t->st, "p3", 2), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[1], 6 * PG);
    assert_int_equal(
        test_meta_put_opts(t, b, "z", 2 * PG, &test_meta_opts1, NULL),
        MMC_ERR_NO_SPACE);
    assert_int_equal(test_meta_usage(t).used[1], 6 * PG);
    test_meta_put(t, b, "z", PG, 1, 0);
}

static const mmc_state_put_opts_t test_meta_hbm1 = {
    .replicas = 1,
    .media = MMC_MEDIA_HBM,
};

/* A committed put of key on `replicas` replicas of media. */
static mmc_obj_result_t test_meta_put_media(test_meta_t *t,
                                            mmc_state_owner_t *o,
                                            const char *key, uint64_t size,
                                            uint32_t replicas, uint8_t media)
{
    mmc_state_put_opts_t opts = {.replicas = replicas, .media = media};
    mmc_obj_result_t res;

    assert_int_equal(test_meta_put_opts(t, o, key, size, &opts, &res), MMC_OK);
    assert_int_equal(res.nrep, replicas);
    for (uint32_t i = 0; i < replicas; i++) {
        assert_int_equal(res.reps[i].media, media);
    }
    assert_int_equal(mmc_state_put_commit(t->st, o, res.id, MMC_OK), MMC_OK);
    return res;
}

/* A rank with both media: a put goes to the media it names and to no
 * other, full or not. */
static void test_meta_media(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *o = test_meta_member2(t, 2, "A", 2 * PG, 4 * PG);
    mmc_state_put_opts_t bad = {.replicas = 1, .media = 2};
    mmc_obj_result_t res;

    assert_int_equal(test_meta_usage(t).segs, 2);
    /* DRAM by default; a full DRAM segment does not spill into HBM */
    res = test_meta_put(t, o, "d", 2 * PG, 1, 0);
    assert_int_equal(res.reps[0].media, MMC_MEDIA_DRAM);
    assert_int_equal(res.reps[0].gva, HOST_BASE + 2 * MAX_SEG);
    assert_int_equal(test_meta_put_opts(t, o, "x", PG, &test_meta_opts1, NULL),
                     MMC_ERR_NO_SPACE);
    /* HBM when asked, at the rank's slot of the device window */
    res = test_meta_put_media(t, o, "h", 3 * PG, 1, MMC_MEDIA_HBM);
    assert_int_equal(res.reps[0].gva, DEV_BASE + 2 * MAX_HBM);
    assert_int_equal(
        test_meta_put_opts(t, o, "x", 2 * PG, &test_meta_hbm1, NULL),
        MMC_ERR_NO_SPACE);
    res = test_meta_put_media(t, o, "h2", PG, 1, MMC_MEDIA_HBM);
    assert_int_equal(res.reps[0].gva, DEV_BASE + 2 * MAX_HBM + 3 * PG);
    /* an unknown media is a bad argument */
    assert_int_equal(test_meta_put_opts(t, o, "y", PG, &bad, NULL),
                     MF_ERR_INVALID);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_DRAM], 2 * PG);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_HBM], 4 * PG);
    assert_int_equal(test_meta_query(t, "h", &res, NULL), MMC_OK);
    assert_int_equal(res.reps[0].media, MMC_MEDIA_HBM);
    /* a read of an HBM object is like any other */
    assert_int_equal(test_meta_get(t, o, "h", &res), MMC_OK);
    assert_int_equal(res.reps[0].media, MMC_MEDIA_HBM);
    assert_int_equal(mmc_state_release(t->st, o, res.id), MMC_OK);
    mmc_state_owner_destroy(t->st, o);
    assert_int_equal(test_meta_usage(t).segs, 0);
    assert_int_equal(test_meta_counters(t).objects, 0);
}

/* An HBM segment sits at its rank's slot of the device window, within its
 * stride; a pool without a device window refuses it; a refusal leaves no
 * host behind. */
static void test_meta_register_hbm(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *o = test_meta_owner(t);
    mmc_seg_desc_t hbm = {.media = MMC_MEDIA_HBM, .size = 4 * PG};
    mmc_seg_desc_t two[2] = {hbm, hbm};
    const uint64_t bad_gva[] = {
        0,
        DEV_BASE,                    /* rank 0's slot */
        DEV_BASE + 3 * MAX_HBM + PG, /* inside its slot */
        DEV_BASE + 4 * MAX_HBM,      /* rank 4's slot */
        HOST_BASE + 3 * MAX_SEG,     /* its DRAM slot */
        DEV_BASE + 3 * MAX_HBM - PG, /* straddling */
        UINT64_MAX - PG + 1,
    };
    const uint64_t bad_size[] = {0, PG / 2, MAX_HBM + PG};
    mmc_state_params_t p = {
        .max_ranks = NRANKS,
        .max_segment_size = MAX_SEG,
        .host_base = HOST_BASE,
        .device_base = DEV_BASE,
        .alloc_align = PG,
        .lease_ms = LEASE_MS,
        .put_timeout_ms = PUT_MS,
    };
    mmc_state_t *plain;
    mmc_state_owner_t *po;
    uint32_t idx;

    for (size_t i = 0; i < sizeof(bad_gva) / sizeof(bad_gva[0]); i++) {
        hbm.gva = bad_gva[i];
        assert_int_equal(
            mmc_state_register(t->st, o, 3, "B", "n", 1, &hbm, &idx),
            MF_ERR_INVALID);
    }
    hbm.gva = DEV_BASE + 3 * MAX_HBM;
    for (size_t i = 0; i < sizeof(bad_size) / sizeof(bad_size[0]); i++) {
        hbm.size = bad_size[i];
        assert_int_equal(
            mmc_state_register(t->st, o, 3, "B", "n", 1, &hbm, &idx),
            MF_ERR_INVALID);
    }
    two[0].gva = two[1].gva = hbm.gva;
    assert_int_equal(mmc_state_register(t->st, o, 3, "B", "n", 2, two, &idx),
                     MF_ERR_INVALID);
    assert_int_equal(test_meta_counters(t).hosts, 0);
    assert_int_equal(test_meta_counters(t).registered, 0);
    /* the whole stride is fine; HBM alone makes a member */
    hbm.size = MAX_HBM;
    assert_int_equal(mmc_state_register(t->st, o, 3, "B", "n", 1, &hbm, &idx),
                     MF_OK);
    assert_int_equal(test_meta_counters(t).members, 1);
    assert_int_equal(test_meta_usage(t).segs, 1);
    mmc_state_owner_destroy(t->st, o);

    /* a pool without a device window: HBM refused, DRAM as ever */
    assert_int_equal(mmc_state_create(&p, &plain), MF_OK);
    assert_int_equal(mmc_state_owner_create(plain, &po), MF_OK);
    hbm.gva = DEV_BASE + 3 * MAX_HBM;
    assert_int_equal(mmc_state_register(plain, po, 3, "B", "n", 1, &hbm, &idx),
                     MF_ERR_INVALID);
    two[0].media = MMC_MEDIA_DRAM;
    two[0].gva = HOST_BASE + 3 * MAX_SEG;
    two[0].size = SEG_SIZE;
    assert_int_equal(
        mmc_state_register(plain, po, 3, "B", "n", 1, &two[0], &idx), MF_OK);
    assert_int_equal(mmc_state_check(plain), MF_OK);
    mmc_state_destroy(plain);

    /* a device window needs its base */
    p.max_hbm_segment_size = MAX_HBM;
    p.device_base = 0;
    tk_log_allow_errors(&test_meta_log, true);
    assert_int_equal(mmc_state_create(&p, &plain), MF_ERR_INVALID);
    tk_log_allow_errors(&test_meta_log, false);
}

/* Replicas of a put go to ranks that have a segment of its media: the
 * preferred and own ranks without one are passed over, distinct hosts
 * still come first, and too few such ranks is no space. */
static void test_meta_media_place(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *d = test_meta_member2(t, 0, "A", SEG_SIZE, 0);
    mmc_state_owner_t *b = test_meta_member2(t, 1, "B", SEG_SIZE, 8 * PG);
    mmc_state_owner_t *c = test_meta_member2(t, 2, "C", SEG_SIZE, 16 * PG);
    mmc_state_owner_t *h = test_meta_member2(t, 3, "C", 0, 4 * PG);
    const uint32_t pref0 = 0;
    mmc_state_put_opts_t opts = {
        .replicas = 1, .npref = 1, .pref = &pref0, .media = MMC_MEDIA_HBM};
    mmc_obj_result_t res;
    bool seen[NRANKS] = {false};

    /* the caller (rank 0) and its preferred rank have no HBM: the most
     * free HBM, rank 2 */
    assert_int_equal(test_meta_put_opts(t, d, "a", PG, &opts, &res), MMC_OK);
    assert_int_equal(res.reps[0].rank, 2);
    assert_int_equal(res.reps[0].media, MMC_MEDIA_HBM);
    assert_int_equal(res.reps[0].gva, DEV_BASE + 2 * MAX_HBM);
    assert_int_equal(mmc_state_put_commit(t->st, d, res.id, MMC_OK), MMC_OK);
    /* three HBM replicas: ranks 1, 2, 3 (hosts B and C first, then C) */
    res = test_meta_put_media(t, d, "b", PG, 3, MMC_MEDIA_HBM);
    for (uint32_t i = 0; i < 3; i++) {
        seen[res.reps[i].rank] = true;
        assert_int_equal(res.reps[i].gva & ~(MAX_HBM - 1),
                         DEV_BASE + res.reps[i].rank * MAX_HBM);
    }
    assert_true(seen[1] && seen[2] && seen[3] && !seen[0]);
    assert_int_equal(res.reps[0].rank, 2);
    assert_int_equal(res.reps[1].rank, 1);
    assert_int_equal(res.reps[2].rank, 3);
    /* four: only three ranks have HBM */
    assert_int_equal(
        test_meta_put_opts(
            t, d, "c", PG,
            &(mmc_state_put_opts_t){.replicas = 4, .media = MMC_MEDIA_HBM},
            NULL),
        MMC_ERR_NO_SPACE);
    /* DRAM: ranks 0, 1, 2, never the HBM-only rank 3 */
    memset(seen, 0, sizeof(seen));
    res = test_meta_put_media(t, h, "d", PG, 3, MMC_MEDIA_DRAM);
    for (uint32_t i = 0; i < 3; i++) {
        seen[res.reps[i].rank] = true;
        assert_int_equal(res.reps[i].gva & ~(MAX_SEG - 1),
                         HOST_BASE + res.reps[i].rank * MAX_SEG);
    }
    assert_true(seen[0] && seen[1] && seen[2] && !seen[3]);
    assert_int_equal(test_meta_put_opts(t, h, "e", PG,
                                        &(mmc_state_put_opts_t){.replicas = 4},
                                        NULL),
                     MMC_ERR_NO_SPACE);
    /* nothing of the failed puts stays allocated */
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_HBM], 4 * PG);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_DRAM], 3 * PG);
    assert_int_equal(test_meta_counters(t).pending_puts, 0);
    /* HBM leaves with its rank; the objects keep their other replicas */
    test_meta_drop(t, 3);
    assert_int_equal(test_meta_query(t, "b", &res, NULL), MMC_OK);
    assert_int_equal(res.nrep, 2);
    assert_int_equal(test_meta_counters(t).replicas_lost, 1);
    (void)b;
    (void)c;
}

/* ---- pending puts ---- */

static void test_meta_put_abort(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_obj_result_t res;

    assert_int_equal(
        test_meta_put_opts(t, a, "k", 3 * PG, &test_meta_opts1, &res), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], 3 * PG);
    /* an error status aborts: the item itself succeeds */
    assert_int_equal(mmc_state_put_commit(t->st, a, res.id, MF_ERR_IO), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], 0);
    assert_int_equal(mmc_state_put_commit(t->st, a, res.id, MMC_OK),
                     MMC_ERR_ABORTED);
    assert_int_equal(test_meta_query(t, "k", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_counters(t).puts_aborted, 1);
    /* the key is free again */
    test_meta_put(t, a, "k", PG, 1, 0);
}

static void test_meta_put_reclaim(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_obj_result_t r1;
    mmc_obj_result_t r2;

    assert_int_equal(test_meta_put_opts(t, a, "k1", PG, &test_meta_opts1, &r1),
                     MMC_OK);
    t->now += PUT_MS / 2;
    assert_int_equal(test_meta_put_opts(t, a, "k2", PG, &test_meta_opts1, &r2),
                     MMC_OK);
    t->now += PUT_MS / 2 - 1;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_counters(t).pending_puts, 2);
    t->now += 1;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_counters(t).pending_puts, 1);
    assert_int_equal(test_meta_counters(t).puts_reclaimed, 1);
    assert_int_equal(test_meta_usage(t).used[0], PG);
    assert_int_equal(mmc_state_put_commit(t->st, a, r1.id, MMC_OK),
                     MMC_ERR_ABORTED);
    assert_int_equal(mmc_state_put_commit(t->st, a, r2.id, MMC_OK), MMC_OK);
    t->now += PUT_MS;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_query(t, "k2", NULL, NULL), MMC_OK);
    assert_int_equal(test_meta_query(t, "k1", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_usage(t).used[0], PG);
}

static void test_meta_put_concurrent(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_state_owner_t *b = test_meta_member(t, 1, "B", SEG_SIZE);
    mmc_state_put_opts_t repl = {.replicas = 1, .flags = MMC_PUT_REPLACE};
    mmc_obj_result_t ra;

    assert_int_equal(test_meta_put_opts(t, a, "k", PG, &test_meta_opts1, &ra),
                     MMC_OK);
    assert_int_equal(test_meta_put_opts(t, b, "k", PG, &test_meta_opts1, NULL),
                     MMC_ERR_EXISTS);
    assert_int_equal(test_meta_put_opts(t, b, "k", PG, &repl, NULL),
                     MMC_ERR_BUSY);
    /* the same owner too */
    assert_int_equal(test_meta_put_opts(t, a, "k", PG, &repl, NULL),
                     MMC_ERR_BUSY);
    /* nobody else can commit a's put */
    assert_int_equal(mmc_state_put_commit(t->st, b, ra.id, MMC_OK),
                     MMC_ERR_ABORTED);
    assert_int_equal(test_meta_usage(t).total, PG);
    assert_int_equal(mmc_state_put_commit(t->st, a, ra.id, MMC_OK), MMC_OK);
    assert_int_equal(test_meta_put_opts(t, b, "k", PG, &test_meta_opts1, NULL),
                     MMC_ERR_EXISTS);
    test_meta_put(t, b, "k", 2 * PG, 1, MMC_PUT_REPLACE);
    assert_int_equal(test_meta_usage(t).total, 2 * PG);
    assert_int_equal(test_meta_counters(t).objects, 1);
}

/* ---- leases ---- */

static void test_meta_leases(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_state_owner_t *r1 = test_meta_owner(t);
    mmc_state_owner_t *r2 = test_meta_owner(t);
    mmc_obj_result_t l1;
    mmc_obj_result_t l2;
    mmc_obj_result_t l3;
    uint32_t leases = 0;

    test_meta_put(t, a, "k", PG, 1, 0);
    assert_int_equal(test_meta_get(t, r1, "k", &l1), MMC_OK);
    assert_int_equal(test_meta_get(t, r1, "k", &l2), MMC_OK);
    assert_int_not_equal(l1.id, l2.id);
    assert_int_equal(test_meta_get(t, r2, "k", &l3), MMC_OK);
    assert_int_equal(test_meta_query(t, "k", NULL, &leases), MMC_OK);
    assert_int_equal(leases, 3);
    /* only its owner releases a lease */
    assert_int_equal(mmc_state_release(t->st, r2, l1.id),
                     MMC_ERR_LEASE_EXPIRED);
    assert_int_equal(mmc_state_release(t->st, r1, l1.id), MMC_OK);

    /* remove: the last lease holder keeps the space */
    assert_int_equal(mmc_state_remove(t->st, "k", 1), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], PG);

    /* r2 goes away: its lease is released */
    mmc_state_owner_destroy(t->st, r2);
    assert_int_equal(test_meta_usage(t).used[0], PG);
    assert_int_equal(test_meta_counters(t).leases, 1);

    /* l2 expires: the space is freed, release reports it */
    t->now += LEASE_MS - 1;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_counters(t).leases, 1);
    t->now += 1;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_counters(t).leases, 0);
    assert_int_equal(test_meta_counters(t).leases_expired, 1);
    assert_int_equal(test_meta_usage(t).used[0], 0);
    assert_int_equal(mmc_state_release(t->st, r1, l2.id),
                     MMC_ERR_LEASE_EXPIRED);

    /* leases on a live object: expiry does not touch the object */
    test_meta_put(t, a, "k", PG, 1, 0);
    assert_int_equal(test_meta_get(t, r1, "k", &l1), MMC_OK);
    t->now += LEASE_MS;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_query(t, "k", NULL, &leases), MMC_OK);
    assert_int_equal(leases, 0);
    assert_int_equal(test_meta_usage(t).used[0], PG);
    assert_int_equal(test_meta_counters(t).gets, 4);
    mmc_state_owner_destroy(t->st, r1);
}

/* Explicit leases of given durations (mmc_state_lease): a key being
 * written is busy, every lease expires exactly at its own deadline, in
 * whatever order the durations came (more durations than queues), and
 * remove-all takes the committed objects only. */
static void test_meta_lease_ttl(void **state)
{
    static const uint32_t ttls[] = {120, 10, 70, 30,  110, 50,
                                    90,  20, 60, 100, 40,  80};
    const size_t n = sizeof(ttls) / sizeof(ttls[0]);
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_state_owner_t *r = test_meta_owner(t);
    mmc_obj_result_t res, pending;
    uint64_t start;

    test_meta_put(t, a, "k", PG, 1, 0);
    assert_int_equal(
        test_meta_put_opts(t, a, "p", PG, &test_meta_opts1, &pending), MMC_OK);
    assert_int_equal(mmc_state_lease(t->st, r, "p", 1, t->now, 50, &res),
                     MMC_ERR_BUSY);
    assert_int_equal(mmc_state_lease(t->st, r, "x", 1, t->now, 50, &res),
                     MMC_ERR_NOT_FOUND);
    assert_int_equal(mmc_state_lease(t->st, r, "k", 1, t->now, 0, &res),
                     MF_ERR_INVALID);
    assert_int_equal(mmc_state_lease(t->st, r, "k", 1, t->now,
                                     MMC_STATE_LEASE_TTL_MAX + 1, &res),
                     MF_ERR_INVALID);

    start = t->now;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(
            mmc_state_lease(t->st, r, "k", 1, t->now, ttls[i], &res), MMC_OK);
        assert_int_equal(res.size, PG);
        assert_int_equal(res.nrep, 1);
    }
    assert_int_equal(test_meta_get(t, r, "k", NULL), MMC_OK); /* LEASE_MS */
    assert_int_equal(test_meta_counters(t).leases, n + 1);
    assert_int_equal(test_meta_counters(t).gets, 1);
    for (uint32_t elapsed = 5; elapsed <= 125; elapsed += 5) {
        uint64_t left = 0;

        t->now = start + elapsed;
        mmc_state_expire(t->st, t->now);
        for (size_t i = 0; i < n; i++) {
            left += ttls[i] > elapsed;
        }
        left += LEASE_MS > elapsed;
        assert_int_equal(test_meta_counters(t).leases, left);
        test_meta_check(t);
    }

    /* remove-all: the committed ones, not the pending one */
    test_meta_put(t, a, "a", PG, 1, 0);
    test_meta_put(t, a, "b", PG, 1, 0);
    assert_int_equal(mmc_state_remove_all(t->st), 3);
    assert_int_equal(test_meta_query(t, "k", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(mmc_state_remove_all(t->st), 0);
    assert_int_equal(mmc_state_put_commit(t->st, a, pending.id, MMC_OK),
                     MMC_OK);
    assert_int_equal(test_meta_query(t, "p", NULL, NULL), MMC_OK);
    assert_int_equal(mmc_state_lease(t->st, r, "p", 1, t->now, 50, &res),
                     MMC_OK);
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, r);
    test_meta_drop(t, 0);
}

/* A lease whose object lost a replica with its segment cannot vouch for
 * the bytes any more: once the rank is back, the same space goes to new
 * objects.  Its release reports it expired. */
static void test_meta_lease_damage(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *b = test_meta_member(t, 1, "B", SEG_SIZE);
    mmc_state_owner_t *reader = test_meta_owner(t);
    mmc_state_put_opts_t opts = {.replicas = 1, .npref = 1};
    uint32_t pref[1] = {1};
    mmc_obj_result_t old;
    mmc_obj_result_t other;
    mmc_obj_result_t after;
    mmc_obj_result_t res;
    mmc_seg_desc_t seg = {.media = MMC_MEDIA_DRAM,
                          .gva = HOST_BASE + 1 * MAX_SEG,
                          .size = SEG_SIZE};
    uint32_t idx;

    opts.pref = pref;
    test_meta_member(t, 2, "C", SEG_SIZE);
    /* "old" on rank 1 only; "two" on 1 and 2; "safe" on 2 only */
    test_meta_put(t, b, "old", PG, 1, 0);
    assert_int_equal(test_meta_get(t, reader, "old", &old), MMC_OK);
    assert_int_equal(old.reps[0].rank, 1);
    test_meta_put(t, b, "two", PG, 2, 0);
    assert_int_equal(test_meta_get(t, reader, "two", &res), MMC_OK);
    pref[0] = 2;
    assert_int_equal(test_meta_put_opts(t, b, "safe", PG, &opts, &other),
                     MMC_OK);
    assert_int_equal(other.reps[0].rank, 2);
    assert_int_equal(mmc_state_put_commit(t->st, b, other.id, MMC_OK), MMC_OK);
    assert_int_equal(test_meta_get(t, reader, "safe", &other), MMC_OK);

    /* rank 1 unregisters and comes back; its bytes go to a new object */
    mmc_state_owner_reset(t->st, b);
    assert_int_equal(mmc_state_register(t->st, b, 1, "B", "n", 1, &seg, &idx),
                     MF_OK);
    pref[0] = 1;
    assert_int_equal(test_meta_put_opts(t, b, "new", PG, &opts, &after),
                     MMC_OK);
    assert_int_equal(after.reps[0].gva, old.reps[0].gva);
    assert_int_equal(mmc_state_put_commit(t->st, b, after.id, MMC_OK), MMC_OK);

    /* the lease on the lost object, and on the one that kept a replica */
    assert_int_equal(mmc_state_release(t->st, reader, old.id),
                     MMC_ERR_LEASE_EXPIRED);
    assert_int_equal(mmc_state_release(t->st, reader, res.id),
                     MMC_ERR_LEASE_EXPIRED);
    /* untouched objects and leases taken after the loss are fine */
    assert_int_equal(mmc_state_release(t->st, reader, other.id), MMC_OK);
    assert_int_equal(test_meta_get(t, reader, "two", &res), MMC_OK);
    assert_int_equal(mmc_state_release(t->st, reader, res.id), MMC_OK);
    assert_int_equal(test_meta_counters(t).leases_damaged, 2);
    assert_int_equal(test_meta_counters(t).leases, 0);
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, reader);
}

/* An owner holds at most max_owner_leases leases; more GETs fail per item
 * with MF_ERR_TOO_LARGE (counted) until it releases some. */
static void test_meta_lease_limit(void **state)
{
    test_meta_t *t = *state;
    mmc_state_params_t p = {
        .max_ranks = 2,
        .max_segment_size = MAX_SEG,
        .host_base = HOST_BASE,
        .alloc_align = PG,
        .lease_ms = LEASE_MS,
        .put_timeout_ms = PUT_MS,
        .max_owner_leases = 4,
    };
    mmc_state_t *st = NULL;
    mmc_state_owner_t *a = NULL;
    mmc_state_owner_t *r = NULL;
    mmc_state_owner_t *r2 = NULL;
    mmc_seg_desc_t seg = {
        .media = MMC_MEDIA_DRAM, .gva = HOST_BASE, .size = SEG_SIZE};
    mmc_state_put_opts_t opts = {.replicas = 1};
    mmc_obj_result_t res;
    uint64_t ids[4];
    mmc_state_counters_t c;
    uint32_t idx;

    (void)t;
    assert_int_equal(MMC_META_MAX_LEASES_PER_OWNER, 1u << 20);
    assert_int_equal(mmc_state_create(&p, &st), MF_OK);
    assert_int_equal(mmc_state_owner_create(st, &a), MF_OK);
    assert_int_equal(mmc_state_owner_create(st, &r), MF_OK);
    assert_int_equal(mmc_state_owner_create(st, &r2), MF_OK);
    assert_int_equal(mmc_state_register(st, a, 0, "A", "n", 1, &seg, &idx),
                     MF_OK);
    assert_int_equal(mmc_state_put_alloc(st, a, "k", 1, PG, &opts, 0, &res),
                     MMC_OK);
    assert_int_equal(mmc_state_put_commit(st, a, res.id, MMC_OK), MMC_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mmc_state_get(st, r, "k", 1, 0, &res), MMC_OK);
        ids[i] = res.id;
    }
    assert_int_equal(mmc_state_get(st, r, "k", 1, 0, &res), MF_ERR_TOO_LARGE);
    assert_int_equal(res.status, MF_ERR_TOO_LARGE);
    assert_int_equal(res.id, 0);
    /* a miss is still a miss */
    assert_int_equal(mmc_state_get(st, r, "nope", 4, 0, &res),
                     MMC_ERR_NOT_FOUND);
    /* another owner is not limited by r's leases */
    assert_int_equal(mmc_state_get(st, r2, "k", 1, 0, &res), MMC_OK);
    mmc_state_get_counters(st, &c);
    assert_int_equal(c.leases_refused, 1);
    assert_int_equal(c.leases, 5);
    /* released or expired leases make room */
    assert_int_equal(mmc_state_release(st, r, ids[0]), MMC_OK);
    assert_int_equal(mmc_state_get(st, r, "k", 1, 0, &res), MMC_OK);
    assert_int_equal(mmc_state_get(st, r, "k", 1, 0, &res), MF_ERR_TOO_LARGE);
    mmc_state_expire(st, LEASE_MS);
    assert_int_equal(mmc_state_get(st, r, "k", 1, LEASE_MS, &res), MMC_OK);
    mmc_state_get_counters(st, &c);
    assert_int_equal(c.leases_refused, 2);
    assert_int_equal(c.leases, 1);
    assert_int_equal(mmc_state_check(st), MF_OK);
    mmc_state_destroy(st);
}

/* mmc_state_expire_some does at most its budget and says whether more is
 * due. */
static void test_meta_expire_budget(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_obj_result_t res;
    char key[16];

    test_meta_put(t, a, "k", PG, 1, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(test_meta_get(t, a, "k", NULL), MMC_OK);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        assert_int_equal(
            test_meta_put_opts(t, a, key, PG, &test_meta_opts1, &res), MMC_OK);
    }
    /* not due yet: nothing to do, whatever the budget */
    assert_false(mmc_state_expire_some(t->st, t->now, 0));
    assert_false(mmc_state_expire_some(t->st, t->now, 4));
    assert_int_equal(test_meta_counters(t).leases, 10);
    t->now += PUT_MS;
    /* 15 due: 4 + 4 + 4 + 3 */
    assert_true(mmc_state_expire_some(t->st, t->now, 0));
    assert_int_equal(test_meta_counters(t).leases, 10);
    assert_true(mmc_state_expire_some(t->st, t->now, 4));
    assert_int_equal(test_meta_counters(t).leases, 6);
    assert_true(mmc_state_expire_some(t->st, t->now, 4));
    assert_int_equal(test_meta_counters(t).leases, 2);
    assert_true(mmc_state_expire_some(t->st, t->now, 4));
    assert_int_equal(test_meta_counters(t).leases, 0);
    assert_int_equal(test_meta_counters(t).pending_puts, 3);
    assert_false(mmc_state_expire_some(t->st, t->now, 3));
    assert_int_equal(test_meta_counters(t).pending_puts, 0);
    assert_int_equal(test_meta_counters(t).leases_expired, 10);
    assert_int_equal(test_meta_counters(t).puts_reclaimed, 5);
    assert_int_equal(test_meta_usage(t).used[0], PG);
}

/* ---- segments ---- */

static void test_meta_drop_segment(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *client = test_meta_owner(t);
    mmc_state_owner_t *c2 = test_meta_owner(t);
    mmc_obj_result_t lease;
    mmc_obj_result_t p1;
    mmc_obj_result_t p2;
    mmc_obj_result_t got;
    mmc_state_put_opts_t opts = {.replicas = 1};
    uint32_t pref[2] = {1, 2};

    test_meta_member(t, 1, "A", SEG_SIZE);
    test_meta_member(t, 2, "B", SEG_SIZE);
    opts.pref = pref;

    /* both: replicas on 1 and 2; only1: on 1; only2: on 2 */
    opts.replicas = 2;
    opts.npref = 2;
    assert_int_equal(test_meta_put_opts(t, client, "both", PG, &opts, &p1),
                     MMC_OK);
    assert_int_equal(mmc_state_put_commit(t->st, client, p1.id, MMC_OK),
                     MMC_OK);
    opts.replicas = 1;
    opts.npref = 1;
    assert_int_equal(test_meta_put_opts(t, client, "only1", PG, &opts, &p1),
                     MMC_OK);
    assert_int_equal(p1.reps[0].rank, 1);
    assert_int_equal(mmc_state_put_commit(t->st, client, p1.id, MMC_OK),
                     MMC_OK);
    pref[0] = 2;
    assert_int_equal(test_meta_put_opts(t, client, "only2", PG, &opts, &p1),
                     MMC_OK);
    assert_int_equal(mmc_state_put_commit(t->st, client, p1.id, MMC_OK),
                     MMC_OK);
    /* "leased1" on 1 only, leased by c2 */
    pref[0] = 1;
    assert_int_equal(test_meta_put_opts(t, client, "leased1", PG, &opts, &p1),
                     MMC_OK);
    assert_int_equal(mmc_state_put_commit(t->st, client, p1.id, MMC_OK),
                     MMC_OK);
    assert_int_equal(test_meta_get(t, c2, "leased1", &lease), MMC_OK);
    /* pending: p1 on 1 only, p2 on 1 and 2 */
    assert_int_equal(test_meta_put_opts(t, client, "pend1", PG, &opts, &p1),
                     MMC_OK);
    opts.replicas = 2;
    opts.npref = 2;
    pref[1] = 2;
    assert_int_equal(test_meta_put_opts(t, client, "pend2", PG, &opts, &p2),
                     MMC_OK);
    assert_int_equal(test_meta_usage(t).used[1], 5 * PG);
    assert_int_equal(test_meta_usage(t).used[2], 3 * PG);

    test_meta_drop(t, 1);
    assert_int_equal(test_meta_usage(t).segs, 1);
    assert_int_equal(test_meta_query(t, "both", &got, NULL), MMC_OK);
    assert_int_equal(got.nrep, 1);
    assert_int_equal(got.reps[0].rank, 2);
    assert_int_equal(test_meta_query(t, "only1", NULL, NULL),
                     MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_query(t, "only2", NULL, NULL), MMC_OK);
    assert_int_equal(test_meta_query(t, "leased1", NULL, NULL),
                     MMC_ERR_NOT_FOUND);
    /* the put with no replica left is aborted, the other commits with the
     * survivor */
    assert_int_equal(mmc_state_put_commit(t->st, client, p1.id, MMC_OK),
                     MMC_ERR_ABORTED);
    assert_int_equal(mmc_state_put_commit(t->st, client, p2.id, MMC_OK),
                     MMC_OK);
    assert_int_equal(test_meta_query(t, "pend2", &got, NULL), MMC_OK);
    assert_int_equal(got.nrep, 1);
    assert_int_equal(got.reps[0].rank, 2);
    assert_int_equal(test_meta_usage(t).used[2], 3 * PG);
    assert_int_equal(test_meta_counters(t).objects, 3);
    assert_int_equal(test_meta_counters(t).segs_dropped, 1);
    /* the lease on the lost object goes, reported as expired: its bytes
     * may be handed out again */
    assert_int_equal(mmc_state_release(t->st, c2, lease.id),
                     MMC_ERR_LEASE_EXPIRED);
    assert_int_equal(test_meta_counters(t).unlinked, 0);
    assert_int_equal(test_meta_counters(t).leases, 0);

    /* the rank comes back empty */
    test_meta_member(t, 1, "A", SEG_SIZE);
    assert_int_equal(test_meta_usage(t).used[1], 0);

    /* the last segment goes: everything goes */
    test_meta_drop(t, 2);
    assert_int_equal(test_meta_counters(t).objects, 0);
    assert_int_equal(test_meta_counters(t).object_bytes, 0);
    assert_int_equal(test_meta_usage(t).total, 0);
    mmc_state_owner_destroy(t->st, client);
    mmc_state_owner_destroy(t->st, c2);
}

static void test_meta_owner_close(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", SEG_SIZE);
    mmc_state_owner_t *c = test_meta_member(t, 1, "B", 0); /* client */
    mmc_obj_result_t res;
    mmc_obj_result_t lease;

    test_meta_put(t, c, "k", PG, 1, 0);
    assert_int_equal(test_meta_get(t, c, "k", &lease), MMC_OK);
    assert_int_equal(
        test_meta_put_opts(t, c, "p", 2 * PG, &test_meta_opts1, &res), MMC_OK);
    assert_int_equal(mmc_state_remove(t->st, "k", 1), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], 3 * PG);
    /* the client goes: its put aborts, its lease goes, k's space too */
    test_meta_drop(t, 1);
    assert_int_equal(test_meta_usage(t).used[0], 0);
    assert_int_equal(test_meta_counters(t).pending_puts, 0);
    assert_int_equal(test_meta_counters(t).leases, 0);
    assert_int_equal(test_meta_counters(t).registered, 1);
    assert_int_equal(test_meta_put_opts(t, a, "p", PG, &test_meta_opts1, &res),
                     MMC_OK);
    /* UNREGISTER of the member: the same, and the owner stays usable */
    mmc_state_owner_reset(t->st, a);
    assert_int_equal(test_meta_usage(t).segs, 0);
    assert_int_equal(test_meta_put_opts(t, a, "p", PG, &test_meta_opts1, NULL),
                     MMC_ERR_NO_SPACE);
}

/* ---- ids ---- */

static void test_meta_ids(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a = test_meta_member(t, 0, "A", MAX_SEG);
    mmc_obj_result_t res;
    uint64_t last = 0;
    char key[32];

    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "id%d", i);
        assert_int_equal(
            test_meta_put_opts(t, a, key, PG, &test_meta_opts1, &res), MMC_OK);
        assert_true(res.id > last);
        last = res.id;
        assert_int_equal(mmc_state_put_commit(t->st, a, res.id,
                                              (i % 2) ? MMC_OK : MF_ERR_IO),
                         MMC_OK);
        assert_int_equal(test_meta_get(t, a, key, &res),
                         (i % 2) ? MMC_OK : MMC_ERR_NOT_FOUND);
        if (i % 2) {
            assert_true(res.id > last);
            last = res.id;
            assert_int_equal(mmc_state_release(t->st, a, res.id), MMC_OK);
        }
    }
}

/* ---- a random run against the bookkeeping checks ---- */

/* The HBM segment of rank r in the random runs: every other rank. */
static uint64_t test_meta_random_hbm(uint32_t r)
{
    return (r % 2 == 1) ? (8 + 4 * r) * PG : 0;
}

/* Random operations, a quarter of the puts on HBM; with evict, larger
 * objects and eviction passes. */

static void test_meta_random_run(test_meta_t *t, bool evict)
{
    enum { NKEYS = 64, NOWN = 6, NPUT = 256 };
    mmc_state_owner_t *owners[NOWN];
    uint64_t put_ids[NPUT];
    mmc_state_owner_t *put_owner[NPUT];
    uint64_t lease_ids[NPUT];
    mmc_state_owner_t *lease_owner[NPUT];
    uint32_t nputs = 0;
    uint32_t nleases = 0;
    uint32_t seed = 12345;
    char key[16];

    for (uint32_t r = 0; r < NOWN; r++) {
        char host[8];
        snprintf(host, sizeof(host), "h%u", r % 3);
        owners[r] = test_meta_member2(t, r, host, (8 + 8 * r) * PG,
                                      test_meta_random_hbm(r));
    }
    for (int step = 0; step < 20000; step++) {
        uint32_t op;
        uint32_t o;

        seed = seed * 1103515245u + 12345u;
        op = (seed >> 16) % 100;
        o = (seed >> 8) % NOWN;
        snprintf(key, sizeof(key), "k%u", (seed >> 4) % NKEYS);
        if (op < 30 && nputs < NPUT) {
            mmc_state_put_opts_t opts = {
                .replicas = 1 + (seed >> 12) % 3,
                .flags = (op < 10) ? MMC_PUT_REPLACE : 0,
                .media = (seed >> 3) % 4 == 0 ? MMC_MEDIA_HBM : MMC_MEDIA_DRAM,
            };
            mmc_obj_result_t res;
            if (test_meta_put_opts(t, owners[o], key,
                                   evict ? 1 + (seed >> 6) % (12 * PG)
                                         : 1 + (seed >> 20) % (3 * PG),
                                   &opts, &res) == MMC_OK) {
                put_ids[nputs] = res.id;
                put_owner[nputs++] = owners[o];
            }
        } else if (op < 55 && nputs > 0) {
            uint32_t i = (seed >> 12) % nputs;
            (void)mmc_state_put_commit(t->st, put_owner[i], put_ids[i],
                                       (op < 50) ? MMC_OK : MF_ERR_IO);
            put_ids[i] = put_ids[--nputs];
            put_owner[i] = put_owner[nputs];
        } else if (op < 70 && nleases < NPUT) {
            mmc_obj_result_t res;
            if (test_meta_get(t, owners[o], key, &res) == MMC_OK) {
                lease_ids[nleases] = res.id;
                lease_owner[nleases++] = owners[o];
            }
        } else if (op < 85 && nleases > 0) {
            uint32_t i = (seed >> 12) % nleases;
            (void)mmc_state_release(t->st, lease_owner[i], lease_ids[i]);
            lease_ids[i] = lease_ids[--nleases];
            lease_owner[i] = lease_owner[nleases];
        } else if (op < 95) {
            (void)mmc_state_remove(t->st, key, strlen(key));
        } else if (op < 98) {
            t->now += 1 + (seed >> 10) % 400;
            mmc_state_expire(t->st, t->now);
            if (evict && mmc_state_evict_due(t->st)) {
                (void)mmc_state_evict_some(t->st, 1 + (seed >> 6) % 8);
            }
        } else {
            /* an owner leaves and comes back */
            char host[8];
            for (uint32_t i = 0; i < nputs;) {
                if (put_owner[i] == owners[o]) {
                    put_ids[i] = put_ids[--nputs];
                    put_owner[i] = put_owner[nputs];
                } else {
                    i++;
                }
            }
            for (uint32_t i = 0; i < nleases;) {
                if (lease_owner[i] == owners[o]) {
                    lease_ids[i] = lease_ids[--nleases];
                    lease_owner[i] = lease_owner[nleases];
                } else {
                    i++;
                }
            }
            mmc_state_owner_destroy(t->st, owners[o]);
            snprintf(host, sizeof(host), "h%u", o % 3);
            owners[o] = test_meta_member2(t, o, host, (8 + 8 * o) * PG,
                                          test_meta_random_hbm(o));
        }
        if (evict && (step % 7 == 0) && mmc_state_evict_due(t->st)) {
            (void)mmc_state_evict_some(t->st, 1 + (seed >> 6) % 8);
        }
        if (step % 97 == 0) {
            test_meta_check(t);
        }
    }
    test_meta_check(t);
    /* the run did exercise each path */
    {
        mmc_state_counters_t c = test_meta_counters(t);
        assert_true(c.puts_committed > 1000);
        assert_true(c.puts_aborted > 100);
        assert_true(c.puts_reclaimed > 0);
        assert_true(c.leases_expired > 0);
        assert_true(c.removes > 100);
        assert_true(c.segs_dropped > 10);
        assert_true(c.replicas_lost > 0);
    }
    /* everything released, expired and removed: no space left behind */
    t->now += PUT_MS + LEASE_MS;
    mmc_state_expire(t->st, t->now);
    for (uint32_t k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof(key), "k%u", k);
        (void)mmc_state_remove(t->st, key, strlen(key));
    }
    assert_int_equal(test_meta_usage(t).total, 0);
    assert_int_equal(test_meta_counters(t).pending_puts, 0);
    assert_int_equal(test_meta_counters(t).leases, 0);
    assert_int_equal(test_meta_counters(t).unlinked, 0);
}

static void test_meta_random(void **state)
{
    test_meta_random_run(*state, false);
}

/* ---- eviction ---- */

/* Recreates the state with eviction on: background passes above high% of
 * a segment, down to low%; a put evicts up to max_put objects. */
static void test_meta_evict_state_p(test_meta_t *t, uint32_t high, uint32_t low,
                                    uint32_t max_put, mmc_evict_policy_t policy)
{
    mmc_state_params_t p = {
        .max_ranks = NRANKS,
        .max_segment_size = MAX_SEG,
        .host_base = HOST_BASE,
        .max_hbm_segment_size = MAX_HBM,
        .device_base = DEV_BASE,
        .alloc_align = PG,
        .lease_ms = LEASE_MS,
        .put_timeout_ms = PUT_MS,
        .evict_high_pct = high,
        .evict_low_pct = low,
        .evict_max_per_put = max_put,
        .evict_policy = policy,
    };

    mmc_state_destroy(t->st);
    t->st = NULL;
    assert_int_equal(mmc_state_create(&p, &t->st), MF_OK);
}

static void test_meta_evict_state(test_meta_t *t, uint32_t high, uint32_t low,
                                  uint32_t max_put)
{
    test_meta_evict_state_p(t, high, low, max_put, MMC_EVICT_LRU);
}

static void test_meta_key(char *buf, size_t len, uint32_t i)
{
    snprintf(buf, len, "k%" PRIu32, i);
}

/* Commits objects k<from>..k<to - 1> of one page each on one replica. */
static void test_meta_fill(test_meta_t *t, mmc_state_owner_t *o, uint32_t from,
                           uint32_t to)
{
    char key[16];

    for (uint32_t i = from; i < to; i++) {
        test_meta_key(key, sizeof(key), i);
        test_meta_put(t, o, key, PG, 1, 0);
    }
}

static bool test_meta_has(test_meta_t *t, uint32_t i)
{
    char key[16];

    test_meta_key(key, sizeof(key), i);
    return test_meta_query(t, key, NULL, NULL) == MMC_OK;
}

/* Runs passes (budget each) until none is left to run; returns how many
 * ran.  A hang guard bounds them. */
static uint32_t test_meta_evict_all(test_meta_t *t, uint64_t budget)
{
    uint32_t runs = 1;

    while (mmc_state_evict_some(t->st, budget)) {
        runs++;
        assert_true(runs < 10000);
    }
    test_meta_check(t);
    return runs;
}

/* Objects go oldest first, a GET makes one recent, the pass stops at the
 * low mark; nothing happens below the high mark. */
static void test_meta_evict_lru(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    mmc_state_owner_t *r;
    mmc_obj_result_t l;
    mmc_state_counters_t c;

    test_meta_evict_state(t, 90, 80, 0);
    a = test_meta_member(t, 0, "A", SEG_SIZE); /* 64 pages */
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 57); /* 57 of 64 pages: 89% */
    assert_false(mmc_state_evict_due(t->st));
    assert_false(mmc_state_evict_some(t->st, 1000));
    assert_int_equal(test_meta_counters(t).evictions, 0);
    /* k0 read: now the most recent */
    assert_int_equal(test_meta_get(t, r, "k0", &l), MMC_OK);
    assert_int_equal(mmc_state_release(t->st, r, l.id), MMC_OK);
    test_meta_fill(t, a, 57, 58); /* 58 pages: above 90% */
    assert_true(mmc_state_evict_due(t->st));
    assert_false(mmc_state_evict_some(t->st, 1000));
    assert_false(mmc_state_evict_due(t->st));
    /* down to 51 pages (<= 80%): k1..k7 went, k0 stayed */
    assert_int_equal(test_meta_usage(t).used[0], 51 * PG);
    assert_true(test_meta_has(t, 0));
    for (uint32_t i = 1; i <= 7; i++) {
        assert_false(test_meta_has(t, i));
    }
    for (uint32_t i = 8; i < 58; i++) {
        assert_true(test_meta_has(t, i));
    }
    c = test_meta_counters(t);
    assert_int_equal(c.evictions, 7);
    assert_int_equal(c.evicted_bytes, 7 * PG);
    assert_int_equal(c.evictions_put, 0);
    assert_int_equal(c.eviction_runs, 2);
    assert_int_equal(c.objects, 51);
    /* a new object with the key of an evicted one is fine */
    test_meta_put(t, a, "k1", PG, 1, 0);
    assert_false(mmc_state_evict_due(t->st));
    mmc_state_owner_destroy(t->st, r);
}

/* An object is evicted whole: its replica on a segment below its mark
 * goes too. */
static void test_meta_evict_replicas(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    mmc_state_owner_t *b;
    test_meta_used_t u;

    test_meta_evict_state(t, 90, 80, 0);
    a = test_meta_member(t, 0, "A", SEG_SIZE);
    b = test_meta_member(t, 1, "B", 4 * SEG_SIZE);
    test_meta_put(t, a, "both", PG, 2, 0); /* oldest, on 0 and 1 */
    test_meta_fill(t, a, 0, 57);           /* on rank 0: preferred own */
    u = test_meta_usage(t);
    assert_int_equal(u.used[0], 58 * PG);
    assert_int_equal(u.used[1], PG);
    test_meta_evict_all(t, 1000);
    u = test_meta_usage(t);
    assert_int_equal(u.used[0], 51 * PG);
    assert_int_equal(u.used[1], 0);
    assert_int_equal(test_meta_query(t, "both", NULL, NULL), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_meta_counters(t).evictions, 7);
    (void)b;
}

/* Leased objects are passed over, not waited for: the pass evicts the
 * next ones and still reaches the low mark. */
static void test_meta_evict_skip_leased_run(test_meta_t *t,
                                            mmc_evict_policy_t policy)
{
    mmc_state_owner_t *a;
    mmc_state_owner_t *r;
    mmc_obj_result_t l[5];
    char key[16];

    test_meta_evict_state_p(t, 90, 80, 0, policy);
    a = test_meta_member(t, 0, "A", SEG_SIZE);
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 58);
    for (uint32_t i = 0; i < 5; i++) {
        test_meta_key(key, sizeof(key), i);
        assert_int_equal(test_meta_get(t, r, key, &l[i]), MMC_OK);
    }
    test_meta_evict_all(t, 1000);
    assert_int_equal(test_meta_usage(t).used[0], 51 * PG);
    for (uint32_t i = 0; i < 5; i++) {
        assert_true(test_meta_has(t, i)); /* leased: kept */
    }
    for (uint32_t i = 5; i < 12; i++) {
        assert_false(test_meta_has(t, i));
    }
    assert_true(test_meta_has(t, 12));
    assert_int_equal(test_meta_counters(t).evictions, 7);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(mmc_state_release(t->st, r, l[i].id), MMC_OK);
    }
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, r);
}

/* Every object leased: the segment stays above its mark and passes do not
 * spin on it; a lease that goes makes its object a candidate again, and
 * once the leases expire the pass reaches the low mark.  Small budgets
 * split the work over several passes. */
static void test_meta_evict_stuck_run(test_meta_t *t, mmc_evict_policy_t policy)
{
    mmc_state_owner_t *a;
    mmc_state_owner_t *r;
    mmc_obj_result_t l[60];
    mmc_state_counters_t c;
    char key[16];

    test_meta_evict_state_p(t, 90, 80, 0, policy);
    a = test_meta_member(t, 0, "A", SEG_SIZE);
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 60);
    for (uint32_t i = 0; i < 60; i++) {
        test_meta_key(key, sizeof(key), i);
        assert_int_equal(test_meta_get(t, r, key, &l[i]), MMC_OK);
    }
    assert_true(mmc_state_evict_due(t->st));
    test_meta_evict_all(t, 7); /* a full walk over several passes */
    c = test_meta_counters(t);
    assert_int_equal(c.evictions, 0);
    assert_int_equal(c.evict_skipped, 60);
    assert_false(mmc_state_evict_due(t->st));
    /* stuck: another pass visits nothing */
    assert_false(mmc_state_evict_some(t->st, 1000));
    assert_int_equal(test_meta_counters(t).evict_skipped, 60);
    assert_int_equal(test_meta_usage(t).used[0], 60 * PG);

    /* k10 released: a candidate, evicted; the rest still leased */
    assert_int_equal(mmc_state_release(t->st, r, l[10].id), MMC_OK);
    assert_true(mmc_state_evict_due(t->st));
    test_meta_evict_all(t, 1000);
    assert_false(test_meta_has(t, 10));
    assert_int_equal(test_meta_counters(t).evictions, 1);
    assert_int_equal(test_meta_usage(t).used[0], 59 * PG);
    assert_false(mmc_state_evict_due(t->st));

    /* the leases run out (the reader died): back to the low mark */
    t->now += LEASE_MS;
    mmc_state_expire(t->st, t->now);
    assert_int_equal(test_meta_counters(t).leases_expired, 59);
    assert_true(mmc_state_evict_due(t->st));
    test_meta_evict_all(t, 3);
    assert_int_equal(test_meta_usage(t).used[0], 51 * PG);
    assert_int_equal(test_meta_counters(t).evictions, 9);
    assert_int_equal(test_meta_counters(t).leases, 0);
    mmc_state_owner_destroy(t->st, r);
}

static void test_meta_evict_skip_leased(void **state)
{
    test_meta_evict_skip_leased_run(*state, MMC_EVICT_LRU);
    test_meta_evict_skip_leased_run(*state, MMC_EVICT_S3FIFO);
}

static void test_meta_evict_stuck(void **state)
{
    test_meta_evict_stuck_run(*state, MMC_EVICT_LRU);
    test_meta_evict_stuck_run(*state, MMC_EVICT_S3FIFO);
}

/* Pending puts and unlinked objects are never evicted: the committed
 * ones go; a segment holding only pending puts stays above its mark
 * without spinning. */
static void test_meta_evict_pending(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    mmc_state_owner_t *b;
    mmc_state_owner_t *r;
    mmc_obj_result_t p[22];
    mmc_obj_result_t q[15];
    mmc_obj_result_t l;
    mmc_state_counters_t c;
    char key[16];

    test_meta_evict_state(t, 90, 80, 0);
    a = test_meta_member(t, 0, "A", SEG_SIZE);
    b = test_meta_member(t, 1, "B", SEG_SIZE);
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 20);
    /* k0 removed while leased: unlinked, its page held */
    assert_int_equal(test_meta_get(t, r, "k0", &l), MMC_OK);
    assert_int_equal(mmc_state_remove(t->st, "k0", 2), MMC_OK);
    /* 44 pages pending on rank 0: the segment is full */
    for (uint32_t i = 0; i < 22; i++) {
        test_meta_key(key, sizeof(key), 100 + i);
        assert_int_equal(
            test_meta_put_opts(t, a, key, 2 * PG, &test_meta_opts1, &p[i]),
            MMC_OK);
        assert_int_equal(p[i].reps[0].rank, 0);
    }
    /* 60 pages pending on rank 1 */
    for (uint32_t i = 0; i < 15; i++) {
        test_meta_key(key, sizeof(key), 200 + i);
        assert_int_equal(
            test_meta_put_opts(t, b, key, 4 * PG, &test_meta_opts1, &q[i]),
            MMC_OK);
        assert_int_equal(q[i].reps[0].rank, 1);
    }
    assert_true(mmc_state_evict_due(t->st));
    test_meta_evict_all(t, 1000);
    /* rank 0: k1..k13 went (13 pages), down to 51; k0 and the puts kept */
    assert_int_equal(test_meta_usage(t).used[0], 51 * PG);
    assert_int_equal(test_meta_usage(t).used[1], 60 * PG);
    for (uint32_t i = 1; i <= 13; i++) {
        assert_false(test_meta_has(t, i));
    }
    assert_true(test_meta_has(t, 14));
    c = test_meta_counters(t);
    assert_int_equal(c.evictions, 13);
    assert_int_equal(c.pending_puts, 37);
    assert_int_equal(c.unlinked, 1);
    /* rank 1 is stuck: nothing to visit */
    assert_false(mmc_state_evict_some(t->st, 1000));
    assert_int_equal(test_meta_counters(t).evict_skipped, 0);
    for (uint32_t i = 0; i < 22; i++) {
        assert_int_equal(mmc_state_put_commit(t->st, a, p[i].id, MMC_OK),
                         MMC_OK);
    }
    /* committed on rank 1: candidates now, the pass takes it down */
    for (uint32_t i = 0; i < 15; i++) {
        assert_int_equal(mmc_state_put_commit(t->st, b, q[i].id, MMC_OK),
                         MMC_OK);
    }
    assert_true(mmc_state_evict_due(t->st));
    test_meta_evict_all(t, 1000);
    assert_int_equal(test_meta_usage(t).used[1], 48 * PG);
    assert_int_equal(mmc_state_release(t->st, r, l.id), MMC_OK);
    assert_int_equal(test_meta_usage(t).used[0], 50 * PG);
    mmc_state_owner_destroy(t->st, r);
}

/* A put that finds no room evicts (LRU first, leased skipped) up to its
 * bound and tries again; past the bound it fails with nothing allocated.
 * Pending puts are never evicted for it. */
static void test_meta_evict_put(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    mmc_state_owner_t *r;
    mmc_obj_result_t res;
    mmc_obj_result_t l[5];
    mmc_state_counters_t c;
    char key[16];

    /* background eviction off (100%): only puts evict */
    test_meta_evict_state(t, 100, 80, 4);
    a = test_meta_member(t, 0, "A", SEG_SIZE);
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 64); /* full */
    assert_false(mmc_state_evict_due(t->st));
    /* 3 pages: k0..k2 go */
    assert_int_equal(
        test_meta_put_opts(t, a, "big3", 3 * PG, &test_meta_opts1, &res),
        MMC_OK);
    for (uint32_t i = 0; i < 3; i++) {
        assert_false(test_meta_has(t, i));
    }
    assert_true(test_meta_has(t, 3));
    c = test_meta_counters(t);
    assert_int_equal(c.evictions, 3);
    assert_int_equal(c.evictions_put, 3);
    assert_int_equal(c.eviction_runs, 0);
    /* big3 is pending: not a candidate for the next put */
    for (uint32_t i = 3; i < 8; i++) {
        test_meta_key(key, sizeof(key), i);
        assert_int_equal(test_meta_get(t, r, key, &l[i - 3]), MMC_OK);
    }
    /* 5 pages: k3..k7 leased, k8..k11 evicted (the bound, 4 pages),
     * still no room: no space, nothing allocated */
    assert_int_equal(
        test_meta_put_opts(t, a, "big5", 5 * PG, &test_meta_opts1, NULL),
        MMC_ERR_NO_SPACE);
    for (uint32_t i = 3; i < 8; i++) {
        assert_true(test_meta_has(t, i));
    }
    for (uint32_t i = 8; i < 12; i++) {
        assert_false(test_meta_has(t, i));
    }
    assert_true(test_meta_has(t, 12));
    assert_int_equal(test_meta_counters(t).evictions_put, 7);
    assert_int_equal(test_meta_usage(t).used[0], 60 * PG);
    assert_int_equal(test_meta_counters(t).pending_puts, 1);
    /* the next try evicts k12 (k8..k12 contiguous: 5 pages) and fits */
    assert_int_equal(
        test_meta_put_opts(t, a, "big5", 5 * PG, &test_meta_opts1, NULL),
        MMC_OK);
    assert_false(test_meta_has(t, 12));
    assert_int_equal(test_meta_counters(t).evictions_put, 8);
    assert_int_equal(mmc_state_put_commit(t->st, a, res.id, MMC_OK), MMC_OK);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(mmc_state_release(t->st, r, l[i].id), MMC_OK);
    }
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, r);
}

/* Each media is evicted on its own: a put evicts from segments of its
 * media only (oldest there first, however old the other media's objects
 * are), and a background pass brings down the segment over its mark and
 * leaves the other alone. */
static void test_meta_evict_media(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    char key[16];

    test_meta_evict_state(t, 100, 25, 8);
    a = test_meta_member2(t, 0, "A", 8 * PG, 8 * PG);
    test_meta_fill(t, a, 0, 8); /* DRAM full: k0..k7, the oldest */
    for (uint32_t i = 8; i < 16; i++) {
        test_meta_key(key, sizeof(key), i);
        (void)test_meta_put_media(t, a, key, PG, 1, MMC_MEDIA_HBM);
    }
    /* an HBM put of 2 pages: k8 and k9 go, not k0 and k1 */
    (void)test_meta_put_media(t, a, "h", 2 * PG, 1, MMC_MEDIA_HBM);
    for (uint32_t i = 0; i < 8; i++) {
        assert_true(test_meta_has(t, i));
    }
    assert_false(test_meta_has(t, 8));
    assert_false(test_meta_has(t, 9));
    assert_true(test_meta_has(t, 10));
    assert_int_equal(test_meta_counters(t).evictions_put, 2);
    /* a DRAM put of one page: k0 goes, HBM stays full */
    test_meta_put(t, a, "d", PG, 1, 0);
    assert_false(test_meta_has(t, 0));
    assert_true(test_meta_has(t, 1));
    assert_int_equal(test_meta_counters(t).evictions_put, 3);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_HBM], 8 * PG);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_DRAM], 8 * PG);
    mmc_state_owner_destroy(t->st, a);

    /* background: HBM at 5 of 8 pages (over 50%) goes down to 2 (25%),
     * DRAM at 3 of 8 (under its mark) keeps everything */
    test_meta_evict_state(t, 50, 25, 0);
    a = test_meta_member2(t, 0, "A", 8 * PG, 8 * PG);
    test_meta_fill(t, a, 0, 3);
    assert_false(mmc_state_evict_due(t->st));
    for (uint32_t i = 3; i < 8; i++) {
        test_meta_key(key, sizeof(key), i);
        (void)test_meta_put_media(t, a, key, PG, 1, MMC_MEDIA_HBM);
    }
    assert_true(mmc_state_evict_due(t->st));
    (void)test_meta_evict_all(t, 100);
    for (uint32_t i = 0; i < 3; i++) {
        assert_true(test_meta_has(t, i));
    }
    for (uint32_t i = 3; i < 6; i++) {
        assert_false(test_meta_has(t, i));
    }
    assert_true(test_meta_has(t, 6) && test_meta_has(t, 7));
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_HBM], 2 * PG);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_DRAM], 3 * PG);
    mmc_state_owner_destroy(t->st, a);
}

/* A segment full of pending puts: a put that needs room evicts nothing
 * and fails; the puts all commit afterwards. */
static void test_meta_evict_put_pending(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    mmc_obj_result_t p[64];
    char key[16];

    test_meta_evict_state(t, 90, 80, 256);
    a = test_meta_member(t, 0, "A", SEG_SIZE);
    for (uint32_t i = 0; i < 64; i++) {
        test_meta_key(key, sizeof(key), i);
        assert_int_equal(
            test_meta_put_opts(t, a, key, PG, &test_meta_opts1, &p[i]), MMC_OK);
    }
    assert_int_equal(
        test_meta_put_opts(t, a, "more", PG, &test_meta_opts1, NULL),
        MMC_ERR_NO_SPACE);
    test_meta_evict_all(t, 1000);
    assert_int_equal(test_meta_counters(t).evictions, 0);
    for (uint32_t i = 0; i < 64; i++) {
        assert_int_equal(mmc_state_put_commit(t->st, a, p[i].id, MMC_OK),
                         MMC_OK);
    }
    /* committed: the background pass takes the segment to its low mark */
    test_meta_evict_all(t, 1000);
    assert_int_equal(test_meta_usage(t).used[0], 51 * PG);
    assert_int_equal(test_meta_counters(t).evictions, 13);
    /* and a drop of the rank leaves nothing behind */
    test_meta_drop(t, 0);
    test_meta_check(t);
    assert_int_equal(test_meta_counters(t).objects, 0);
}

static void test_meta_random_evict(void **state)
{
    test_meta_t *t = *state;

    test_meta_evict_state(t, 60, 30, 8);
    test_meta_random_run(t, true);
    assert_true(test_meta_counters(t).evictions > 0);
    assert_true(test_meta_counters(t).eviction_runs > 0);
}

/* The same with only puts evicting. */
static void test_meta_random_evict_put(void **state)
{
    test_meta_t *t = *state;

    test_meta_evict_state(t, 100, 30, 8);
    test_meta_random_run(t, true);
    assert_true(test_meta_counters(t).evictions_put > 0);
    assert_int_equal(test_meta_counters(t).evictions,
                     test_meta_counters(t).evictions_put);
}

/* Both random runs under s3fifo: its queues stay consistent through
 * everything (the self-check runs along). */
static void test_meta_random_s3fifo(void **state)
{
    test_meta_t *t = *state;

    test_meta_evict_state_p(t, 60, 30, 8, MMC_EVICT_S3FIFO);
    test_meta_random_run(t, true);
    assert_true(test_meta_counters(t).evictions > 0);
    assert_true(test_meta_counters(t).evict_promoted > 0);
    test_meta_evict_state_p(t, 100, 30, 8, MMC_EVICT_S3FIFO);
    test_meta_random_run(t, true);
    assert_true(test_meta_counters(t).evictions_put > 0);
}

/* s3fifo: new objects are on probation; one read there moves it to the
 * main queue, one never read is evicted and its key remembered, and put
 * again it goes to the main queue at once, where it outlives the new
 * objects after it. */
static void test_meta_evict_s3fifo(void **state)
{
    test_meta_t *t = *state;
    mmc_state_owner_t *a;
    mmc_state_owner_t *r;
    mmc_obj_result_t l;
    mmc_state_counters_t c;
    char key[16];

    test_meta_evict_state_p(t, 100, 30, 8, MMC_EVICT_S3FIFO);
    a = test_meta_member(t, 0, "A", SEG_SIZE); /* 64 pages */
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 64);
    for (uint32_t i = 0; i < 6; i++) {
        test_meta_key(key, sizeof(key), i);
        assert_int_equal(test_meta_get(t, r, key, &l), MMC_OK);
        assert_int_equal(mmc_state_release(t->st, r, l.id), MMC_OK);
    }
    /* full: k64 makes k0..k5 go to the main queue, and evicts k6 */
    test_meta_fill(t, a, 64, 65);
    c = test_meta_counters(t);
    assert_int_equal(c.evictions, 1);
    assert_int_equal(c.evict_promoted, 6);
    assert_int_equal(c.ghost_hits, 0);
    for (uint32_t i = 0; i < 6; i++) {
        assert_true(test_meta_has(t, i));
    }
    assert_false(test_meta_has(t, 6));
    /* k6 again: remembered (k7 goes for it) */
    test_meta_fill(t, a, 6, 7);
    c = test_meta_counters(t);
    assert_int_equal(c.ghost_hits, 1);
    assert_false(test_meta_has(t, 7));
    /* 20 new objects: each evicts the oldest on probation, never k6 nor
     * k0..k5, read once each on the main queue */
    test_meta_fill(t, a, 100, 120);
    assert_int_equal(test_meta_counters(t).evictions, 22);
    for (uint32_t i = 0; i <= 6; i++) {
        assert_true(test_meta_has(t, i));
    }
    for (uint32_t i = 8; i < 28; i++) {
        assert_false(test_meta_has(t, i));
    }
    assert_true(test_meta_has(t, 28));
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, r);
}

/* A loop over more objects than fit, each read and, missing, put again
 * (a prefix reused by many requests in turn): lru evicts each just before
 * it is read again and never hits; s3fifo keeps a share and hits it. */
static uint32_t test_meta_loop_hits(test_meta_t *t, mmc_evict_policy_t policy)
{
    mmc_state_owner_t *a;
    mmc_state_owner_t *r;
    mmc_obj_result_t l;
    uint32_t hits = 0;
    char key[16];

    test_meta_evict_state_p(t, 100, 30, 8, policy);
    a = test_meta_member(t, 0, "A", SEG_SIZE); /* 64 pages */
    r = test_meta_owner(t);
    for (uint32_t round = 0; round < 10; round++) {
        for (uint32_t i = 0; i < 100; i++) {
            test_meta_key(key, sizeof(key), i);
            if (test_meta_get(t, r, key, &l) == MMC_OK) {
                assert_int_equal(mmc_state_release(t->st, r, l.id), MMC_OK);
                hits++;
            } else {
                test_meta_put(t, a, key, PG, 1, 0);
            }
        }
    }
    test_meta_check(t);
    mmc_state_owner_destroy(t->st, r);
    return hits;
}

static void test_meta_evict_loop(void **state)
{
    uint32_t lru = test_meta_loop_hits(*state, MMC_EVICT_LRU);
    uint32_t s3fifo = test_meta_loop_hits(*state, MMC_EVICT_S3FIFO);

    print_message("loop of 100 over 64 pages, 1000 reads: lru %u hits, "
                  "s3fifo %u\n",
                  lru, s3fifo);
    assert_int_equal(lru, 0);
    assert_true(s3fifo >= 300); /* Belady's optimum: 576 */
}

/* ---- the SSD tier ---- */

/* Takes the moves started, checking each was of dir and by copier. */
static uint32_t test_meta_moves(test_meta_t *t, mmc_state_move_job_t *jobs,
                                uint32_t max, uint8_t dir,
                                mmc_state_owner_t *copier)
{
    uint32_t n = mmc_state_moves_take(t->st, jobs, max);

    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(jobs[i].move.dir, dir);
        assert_ptr_equal(jobs[i].copier, copier);
        assert_int_equal(jobs[i].move.size, PG);
        assert_int_equal(jobs[i].move.ssd_offset % PG, 0);
    }
    return n;
}

static uint8_t test_meta_media_of(test_meta_t *t, const char *key)
{
    mmc_obj_result_t q;

    assert_int_equal(test_meta_query(t, key, &q, NULL), MMC_OK);
    assert_int_equal(q.nrep, 1);
    return q.reps[0].media;
}

/* An eviction pass demotes instead of deleting: the objects stay
 * readable while they move, land on SSD, and a read loads one back
 * (a GET waits: BUSY) into DRAM; every byte stays counted. */
static void test_meta_ssd_demote_load(void **state)
{
    test_meta_t *t = *state;
    mmc_state_move_job_t jobs[64];
    mmc_state_owner_t *a, *r;
    mmc_obj_result_t l;
    mmc_state_counters_t c;
    mmc_key_t k0 = {.data = "k0", .len = 2};
    test_meta_used_t u;
    uint64_t ended;
    uint32_t n;

    test_meta_evict_state(t, 90, 50, 8);
    a = test_meta_member_ssd(t, 0, "A", SEG_SIZE, 32 * PG);
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 60);
    assert_true(mmc_state_evict_due(t->st));
    assert_false(mmc_state_evict_some(t->st, 1000));
    c = test_meta_counters(t);
    assert_int_equal(c.demotions_started, 28); /* 60 - 28 = 32: 50% */
    assert_int_equal(c.evictions, 0);
    n = test_meta_moves(t, jobs, 64, MMC_MOVE_DEMOTE, a);
    assert_int_equal(n, 28);
    /* 4 pages free now, 28 on their way out: a put of 8 pages waits for
     * them rather than evict, one of a page goes on */
    assert_true(mmc_state_room_coming(t->st, MMC_MEDIA_DRAM, 8 * PG));
    assert_false(mmc_state_room_coming(t->st, MMC_MEDIA_DRAM, PG));
    assert_false(mmc_state_room_coming(t->st, MMC_MEDIA_DRAM, 40 * PG));
    assert_false(mmc_state_room_coming(t->st, MMC_MEDIA_HBM, 8 * PG));
    assert_int_equal(test_meta_media_of(t, "k0"), MMC_MEDIA_DRAM);
    u = test_meta_usage(t);
    assert_int_equal(u.media[MMC_MEDIA_DRAM], 60 * PG);
    assert_int_equal(u.media[MMC_MEDIA_SSD], 28 * PG); /* arriving */
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(jobs[i].move.media, MMC_MEDIA_DRAM);
        assert_int_equal(mmc_state_move_done(t->st, a, jobs[i].move.id, MF_OK),
                         MMC_OK);
    }
    c = test_meta_counters(t);
    assert_int_equal(c.demotions_done, 28);
    assert_int_equal(c.objects, 60);
    u = test_meta_usage(t);
    assert_int_equal(u.media[MMC_MEDIA_DRAM], 32 * PG);
    assert_int_equal(u.media[MMC_MEDIA_SSD], 28 * PG);
    assert_int_equal(test_meta_media_of(t, "k0"), MMC_MEDIA_SSD);
    assert_int_equal(test_meta_media_of(t, "k28"), MMC_MEDIA_DRAM);
    /* reported twice, or by another: unknown */
    assert_int_equal(mmc_state_move_done(t->st, a, jobs[0].move.id, MF_OK),
                     MMC_ERR_NOT_FOUND);

    /* a read of k0 waits for a load into DRAM */
    assert_int_equal(test_meta_get(t, r, "k0", &l), MMC_ERR_BUSY);
    assert_int_equal(mmc_state_load_keys(t->st, &k0, 1, t->now), 1);
    assert_int_equal(mmc_state_load_keys(t->st, &k0, 1, t->now), 1);
    assert_int_equal(mmc_state_move_done(t->st, r, 1, MF_OK),
                     MMC_ERR_NOT_FOUND);
    n = test_meta_moves(t, jobs, 64, MMC_MOVE_LOAD, a);
    assert_int_equal(n, 1); /* one load, however many wait */
    assert_int_equal(jobs[0].move.media, MMC_MEDIA_DRAM);
    assert_true(jobs[0].move.gva >= HOST_BASE);
    ended = mmc_state_moves_ended(t->st);
    assert_int_equal(mmc_state_move_done(t->st, a, jobs[0].move.id, MF_OK),
                     MMC_OK);
    assert_int_equal(mmc_state_moves_ended(t->st), ended + 1);
    assert_int_equal(mmc_state_load_keys(t->st, &k0, 1, t->now), 0);
    assert_int_equal(test_meta_media_of(t, "k0"), MMC_MEDIA_DRAM);
    assert_int_equal(test_meta_get(t, r, "k0", &l), MMC_OK);
    assert_int_equal(mmc_state_release(t->st, r, l.id), MMC_OK);
    u = test_meta_usage(t);
    assert_int_equal(u.media[MMC_MEDIA_DRAM], 33 * PG);
    assert_int_equal(u.media[MMC_MEDIA_SSD], 27 * PG);
    c = test_meta_counters(t);
    assert_int_equal(c.loads_done, 1);
    assert_int_equal(c.objects, 60);
    /* a put never names SSD */
    {
        mmc_state_put_opts_t o = {.replicas = 1, .media = MMC_MEDIA_SSD};
        assert_int_equal(test_meta_put_opts(t, a, "x", PG, &o, NULL),
                         MF_ERR_INVALID);
    }
    mmc_state_owner_destroy(t->st, r);
    test_meta_check(t);
}

/* A demotion whose object was read meanwhile keeps it in memory; one that
 * failed at the holder evicts it; one that times out keeps it; a load
 * whose bytes fail their checksum removes the object. */
static void test_meta_ssd_outcomes(void **state)
{
    test_meta_t *t = *state;
    mmc_state_move_job_t jobs[64];
    mmc_state_owner_t *a, *r;
    mmc_obj_result_t l;
    mmc_state_counters_t c;
    mmc_key_t k3 = {.data = "k3", .len = 2};
    uint64_t ended;
    uint32_t n;

    test_meta_evict_state(t, 90, 80, 8);
    a = test_meta_member_ssd(t, 0, "A", SEG_SIZE, 32 * PG);
    r = test_meta_owner(t);
    test_meta_fill(t, a, 0, 60); /* above 90%: down to 51 pages */
    assert_false(mmc_state_evict_some(t->st, 1000));
    n = test_meta_moves(t, jobs, 64, MMC_MOVE_DEMOTE, a);
    assert_int_equal(n, 9); /* k0..k8 */
    /* k0 read while it moves: stays in DRAM */
    assert_int_equal(test_meta_get(t, r, "k0", &l), MMC_OK);
    assert_int_equal(mmc_state_move_done(t->st, a, jobs[0].move.id, MF_OK),
                     MMC_OK);
    assert_int_equal(test_meta_media_of(t, "k0"), MMC_MEDIA_DRAM);
    assert_int_equal(mmc_state_release(t->st, r, l.id), MMC_OK);
    /* k1: the holder could not write it: evicted */
    assert_int_equal(mmc_state_move_done(t->st, a, jobs[1].move.id, MF_ERR_IO),
                     MMC_OK);
    assert_false(test_meta_has(t, 1));
    /* k2..k8 time out: they stay in DRAM */
    t->now += 30001;
    mmc_state_expire(t->st, t->now);
    mmc_state_repair_expire(t->st, t->now);
    for (uint32_t i = 2; i < 9; i++) {
        char key[16];

        test_meta_key(key, sizeof(key), i);
        assert_int_equal(test_meta_media_of(t, key), MMC_MEDIA_DRAM);
    }
    c = test_meta_counters(t);
    assert_int_equal(c.demotions_started, 9);
    assert_int_equal(c.demotions_done, 0);
    assert_int_equal(c.demotions_failed, 9);
    assert_int_equal(c.evictions, 1);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_SSD], 0);

    /* again, all the way to SSD; then k3's load fails its checksum */
    assert_true(mmc_state_evict_due(t->st) ||
                mmc_state_evict_some(t->st, 1000) || true);
    (void)mmc_state_evict_some(t->st, 1000);
    n = test_meta_moves(t, jobs, 64, MMC_MOVE_DEMOTE, a);
    assert_true(n > 3);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(mmc_state_move_done(t->st, a, jobs[i].move.id, MF_OK),
                         MMC_OK);
    }
    assert_int_equal(test_meta_media_of(t, "k3"), MMC_MEDIA_SSD);
    assert_int_equal(mmc_state_load_keys(t->st, &k3, 1, t->now), 1);
    assert_int_equal(test_meta_moves(t, jobs, 64, MMC_MOVE_LOAD, a), 1);
    ended = mmc_state_moves_ended(t->st);
    assert_int_equal(
        mmc_state_move_done(t->st, a, jobs[0].move.id, MMC_ERR_CORRUPT),
        MMC_OK);
    assert_false(test_meta_has(t, 3));
    assert_int_equal(mmc_state_moves_ended(t->st), ended + 1);
    assert_int_equal(test_meta_counters(t).loads_failed, 1);
    mmc_state_owner_destroy(t->st, r);
    test_meta_check(t);
}

/* The SSD fills: a demotion evicts the least recently used objects there
 * (deleted: SSD is the last tier); with every SSD block in flight, the
 * pass deletes instead.  A holder gone with moves in flight leaves
 * nothing behind. */
static void test_meta_ssd_full(void **state)
{
    test_meta_t *t = *state;
    mmc_state_move_job_t jobs[64];
    mmc_state_owner_t *a;
    mmc_state_counters_t c;
    uint32_t n;

    test_meta_evict_state(t, 90, 80, 8);
    a = test_meta_member_ssd(t, 0, "A", SEG_SIZE, 4 * PG);
    test_meta_fill(t, a, 0, 60);
    assert_false(mmc_state_evict_some(t->st, 1000));
    c = test_meta_counters(t);
    assert_int_equal(c.demotions_started, 4); /* all the SSD there is */
    assert_int_equal(c.evictions, 5);         /* the rest of the 9 */
    assert_int_equal(c.evictions_media[MMC_MEDIA_DRAM], 5);
    n = test_meta_moves(t, jobs, 64, MMC_MOVE_DEMOTE, a);
    assert_int_equal(n, 4);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(mmc_state_move_done(t->st, a, jobs[i].move.id, MF_OK),
                         MMC_OK);
    }
    /* more: the oldest on SSD go for the new ones */
    test_meta_fill(t, a, 100, 108);
    assert_false(mmc_state_evict_some(t->st, 1000));
    c = test_meta_counters(t);
    assert_true(c.evictions_media[MMC_MEDIA_SSD] > 0);
    assert_int_equal(test_meta_usage(t).media[MMC_MEDIA_SSD], 4 * PG);
    n = test_meta_moves(t, jobs, 64, MMC_MOVE_DEMOTE, a);
    assert_true(n > 0);
    /* the holder goes with its moves in flight */
    test_meta_drop(t, 0);
    test_meta_check(t);
    assert_int_equal(test_meta_usage(t).total, 0);
    assert_int_equal(test_meta_counters(t).objects, 0);
}

/* A holder's record restores SSD entries as it does memory ones (after a
 * restart of the meta service, or of the holder on the same area): the
 * object is on SSD again, and a read loads it. */
static void test_meta_ssd_restore(void **state)
{
    test_meta_t *t = *state;
    mmc_state_move_job_t jobs[4];
    mmc_state_owner_t *a;
    mmc_rec_entry_t e = {
        .op = MMC_REC_ADD,
        .media = MMC_MEDIA_SSD,
        .offset = 5 * PG,
        .want = 2,
        .size = PG,
        .version = 77,
        .key = {.data = "back", .len = 4},
    };
    mmc_key_t key = {.data = "back", .len = 4};

    test_meta_evict_state(t, 90, 50, 8);
    a = test_meta_member_ssd(t, 0, "A", SEG_SIZE, 32 * PG);
    assert_int_equal(mmc_state_restore_begin(t->st, a), MF_OK);
    assert_int_equal(mmc_state_restore(t->st, a, &e), MMC_OK);
    /* the same entry again (a restore sent twice): kept, not refused, or
     * the holder would forget an object the meta service keeps */
    assert_int_equal(mmc_state_restore(t->st, a, &e), MMC_OK);
    e.offset = 6 * PG; /* the same object elsewhere on the rank: refused */
    assert_int_equal(mmc_state_restore(t->st, a, &e), MMC_ERR_EXISTS);
    e.offset = 32 * PG; /* past the end of the area */
    e.key.data = "late";
    assert_int_equal(mmc_state_restore(t->st, a, &e), MF_ERR_INVALID);
    mmc_state_restore_end(t->st, a);
    assert_int_equal(test_meta_media_of(t, "back"), MMC_MEDIA_SSD);
    assert_int_equal(test_meta_counters(t).restored, 1);
    assert_int_equal(mmc_state_under_replicated(t->st), 0); /* one copy */
    assert_int_equal(mmc_state_load_keys(t->st, &key, 1, t->now), 1);
    assert_int_equal(test_meta_moves(t, jobs, 4, MMC_MOVE_LOAD, a), 1);
    assert_int_equal(jobs[0].move.ssd_offset, 5 * PG);
    assert_int_equal(jobs[0].move.version, 77);
    assert_int_equal(mmc_state_move_done(t->st, a, jobs[0].move.id, MF_OK),
                     MMC_OK);
    assert_int_equal(test_meta_media_of(t, "back"), MMC_MEDIA_DRAM);
    test_meta_check(t);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
#define T(_f) cmocka_unit_test_setup_teardown(_f, test_meta_setup,             \
                                              test_meta_teardown)
        T(test_meta_index),
        T(test_meta_replace),
        T(test_meta_bad_input),
        T(test_meta_register),
        T(test_meta_hosts),
        T(test_meta_place_distinct),
        T(test_meta_place_order),
        T(test_meta_place_hosts),
        T(test_meta_no_space_rollback),
        T(test_meta_media),
        T(test_meta_register_hbm),
        T(test_meta_media_place),
        T(test_meta_put_abort),
        T(test_meta_put_reclaim),
        T(test_meta_put_concurrent),
        T(test_meta_leases),
        T(test_meta_lease_ttl),
        T(test_meta_lease_damage),
        T(test_meta_lease_limit),
        T(test_meta_expire_budget),
        T(test_meta_drop_segment),
        T(test_meta_owner_close),
        T(test_meta_ids),
        T(test_meta_random),
        T(test_meta_evict_lru),
        T(test_meta_evict_replicas),
        T(test_meta_evict_skip_leased),
        T(test_meta_evict_stuck),
        T(test_meta_evict_pending),
        T(test_meta_evict_put),
        T(test_meta_evict_media),
        T(test_meta_evict_put_pending),
        T(test_meta_random_evict),
        T(test_meta_random_evict_put),
        T(test_meta_random_s3fifo),
        T(test_meta_evict_s3fifo),
        T(test_meta_evict_loop),
        T(test_meta_ssd_demote_load),
        T(test_meta_ssd_outcomes),
        T(test_meta_ssd_full),
        T(test_meta_ssd_restore),
#undef T
    };
    /* clang-format on */

    return tk_group_run(tests, NULL, NULL);
}
