/*
 * MemCache under space pressure: one mmc-meta with small segments and
 * four local services, each with a writer and a reader thread, write
 * about four times the pool's capacity while the readers read back what
 * was committed.
 *
 * Invariants checked:
 *   - every get returns either exactly the bytes that were put (a per-key
 *     seed and pattern, compared byte for byte) or MMC_ERR_NOT_FOUND
 *     (evicted); every put succeeds (a put that finds no room evicts);
 *   - objects under a read lease survive eviction: the test parent holds
 *     leases on the oldest objects, speaking the wire itself (tests/wire:
 *     HELLO, GET, no RELEASE, PING to stay a member) while eviction runs
 *     past them (the objects put right after them are gone), and /key
 *     still shows them afterwards;
 *   - at rest every segment is at or below the high watermark, and a
 *     segment pushed above it falls to the low watermark;
 *   - after everything is removed, no segment holds a byte.
 * Every library call is timed: one that takes longer than its timeout
 * plus a generous slack counts as a hang and fails the test.
 */
#include "it_mmc.h"
#include "tw_mmc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define PR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PR_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MB           (1ull << 20)
#define KB           (1ull << 10)
#define NPROC        4
#define SEG_SIZE     (64 * MB)
#define HIGH_PCT     90
#define LOW_PCT      70
#define NPIN         2
#define PIN_SIZE     (1 * MB)
#define OBJ_MIN      (256 * KB)
#define OBJ_MAX      (2 * MB)
#define WRITE_BYTES  (4 * SEG_SIZE) /* per writer */
#define PUSH_SIZE    (256 * KB)
#define READ_BATCH   4
#define MAX_PUTS     4096
#define CALL_MS      (10000 * TK_TIME_SCALE) /* the clients' timeout_ms */
#define MEMBER_MS    (5000 * TK_TIME_SCALE)  /* the meta's member_timeout_ms */
#define HANG_MS      (CALL_MS + 20000)
#define SETTLE_MS    60000 /* hang guard of a wait for the meta */
#define WIRE_MS      30000 /* hang guard of the parent's wire calls */

/* it_mmc_sh->val[]: committed puts of writer i */
#define V_COMMITTED(i) (i)
#define V_WRITING      10 /* writers still running */
#define V_FAILED       11 /* a check of a child failed */
#define V_RANK(i)      (20 + (i))
#define V_NOT_FOUND    30 /* gets that found nothing (evicted) */
#define V_GETS_OK      31
#define V_PUSHED(i)    (40 + (i))
#define V_TURN         32 /* whose turn it is to push over the mark */
/* it_mmc_sh->u64[] */
#define U_MAX_CALL_MS 0

static uint64_t pr_size(int writer, uint32_t n)
{
    tk_rng_t rng;

    tk_rng_seed(&rng, ((uint64_t)writer << 32) | n);
    return tk_rng_range(&rng, OBJ_MIN, OBJ_MAX) + (n % 7); /* odd sizes */
}

static uint64_t pr_seed(int writer, uint32_t n)
{
    return ((uint64_t)(writer + 1) << 32) | n;
}

/* Times one call; false (logged) when it took longer than the guard. */
static bool pr_timed_ok(uint64_t start, const char *what, const char *key)
{
    uint64_t ms = tk_time_ms() - start;
    unsigned long long prev = atomic_load(&it_mmc_sh->u64[U_MAX_CALL_MS]);

    while (ms > prev && !atomic_compare_exchange_weak(
                            &it_mmc_sh->u64[U_MAX_CALL_MS], &prev, ms)) {
    }
    if (ms > HANG_MS) {
        tk_print("HANG: %s %s took %llu ms (guard %u ms)", what, key,
                 (unsigned long long)ms, HANG_MS);
        return false;
    }
    return true;
}

typedef struct pr_child {
    mmc_t *mmc;
    int index;
    int ret_writer;
    int ret_reader;
} pr_child_t;

static void *pr_writer(void *arg)
{
    pr_child_t *c = arg;
    uint64_t written = 0, start;
    char key[64], *buf = malloc(OBJ_MAX + 8);
    uint32_t n;
    mmc_status_t st;
    unsigned nospace = 0;
    mmc_put_opts_t two = {.size = sizeof(mmc_put_opts_t), .replicas = 2};

    c->ret_writer = 1;
    TK_CHECK_GOTO(buf != NULL, "malloc");
    for (n = 0; written < WRITE_BYTES && n < MAX_PUTS; n++) {
        uint64_t size = pr_size(c->index, n);

        if (atomic_load(&it_mmc_sh->val[V_FAILED]) != 0) {
            break;
        }
        snprintf(key, sizeof(key), "w.%d.%u", c->index, n);
        it_mmc_fill(buf, size, pr_seed(c->index, n));
        start = tk_time_ms();
        /* every fifth object with two replicas */
        st = mmc_put(c->mmc, key, buf, size, n % 5 == 4 ? &two : NULL);
        TK_CHECK_GOTO(pr_timed_ok(start, "put", key), "hang");
        if (st == MMC_ERR_NO_SPACE) {
            /* every segment full of leased or pending objects: possible
             * for a moment, never for long */
            TK_CHECK_GOTO(++nospace < 100, "put %s: no space %u times", key,
                          nospace);
            tk_sleep_ms(10);
            n--;
            continue;
        }
        IT_MMC_ST(st, MMC_OK);
        written += size;
        atomic_store(&it_mmc_sh->val[V_COMMITTED(c->index)], (int)n + 1);
    }
    tk_print("writer: %u puts, %llu MiB, %u times no space", n,
             (unsigned long long)(written / MB), nospace);
    c->ret_writer = 0;
fail:
    if (c->ret_writer != 0) {
        atomic_store(&it_mmc_sh->val[V_FAILED], 1);
    }
    atomic_fetch_sub(&it_mmc_sh->val[V_WRITING], 1);
    free(buf);
    return NULL;
}

/* A key of writer w that the reader may read: mostly recent ones. */
static uint32_t pr_pick(tk_rng_t *rng, int committed)
{
    if (tk_rng_range(rng, 0, 3) != 0) {
        return (uint32_t)(committed - 1 -
                          (int)tk_rng_range(rng, 0, PR_MIN(committed - 1, 20)));
    }
    return (uint32_t)tk_rng_range(rng, 0, (uint64_t)committed - 1);
}

/* Single gets, and every third round a batch of READ_BATCH keys: each
 * item exact or not found. */
static void *pr_reader(void *arg)
{
    pr_child_t *c = arg;
    char key[READ_BATCH][64], *buf[READ_BATCH] = {NULL};
    const char *keys[READ_BATCH];
    void *bufs[READ_BATCH];
    size_t sizes[READ_BATCH];
    uint64_t seeds[READ_BATCH];
    mmc_status_t results[READ_BATCH];
    unsigned ok = 0, missing = 0, round = 0;
    tk_rng_t rng;
    mmc_status_t st;
    uint64_t start;

    c->ret_reader = 1;
    for (int i = 0; i < READ_BATCH; i++) {
        buf[i] = malloc(OBJ_MAX + 8);
        TK_CHECK_GOTO(buf[i] != NULL, "malloc");
        keys[i] = key[i];
        bufs[i] = buf[i];
    }
    tk_rng_seed(&rng, 77 + (uint64_t)c->index);
    while (atomic_load(&it_mmc_sh->val[V_WRITING]) > 0 &&
           atomic_load(&it_mmc_sh->val[V_FAILED]) == 0) {
        size_t count = ++round % 3 == 0 ? READ_BATCH : 1;
        size_t i;

        for (i = 0; i < count; i++) {
            int w = (int)tk_rng_range(&rng, 0, NPROC - 1);
            int committed = atomic_load(&it_mmc_sh->val[V_COMMITTED(w)]);
            uint32_t n;

            if (committed == 0) {
                break;
            }
            n = pr_pick(&rng, committed);
            sizes[i] = pr_size(w, n);
            seeds[i] = pr_seed(w, n);
            snprintf(key[i], sizeof(key[i]), "w.%d.%u", w, n);
            memset(buf[i], 0xa5, sizes[i]);
        }
        if (i < count) {
            tk_sleep_ms(1);
            continue;
        }
        start = tk_time_ms();
        if (count == 1) {
            results[0] = mmc_get(c->mmc, key[0], buf[0], sizes[0]);
        } else {
            st = mmc_get_batch(c->mmc, keys, bufs, sizes, count, results);
            TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_PARTIAL,
                          "get batch: %s", mmc_status_name(st));
        }
        TK_CHECK_GOTO(pr_timed_ok(start, "get", key[0]), "hang");
        for (i = 0; i < count; i++) {
            if (results[i] == MMC_ERR_NOT_FOUND) {
                missing++;
                continue;
            }
            TK_CHECK_GOTO(results[i] == MMC_OK, "get %s: %s", key[i],
                          mmc_status_name(results[i]));
            TK_CHECK_GOTO(it_mmc_seed_of(buf[i], sizes[i]) == seeds[i],
                          "get %s: wrong bytes (seed %llx, expected %llx)",
                          key[i],
                          (unsigned long long)it_mmc_seed_of(buf[i], sizes[i]),
                          (unsigned long long)seeds[i]);
            ok++;
        }
    }
    tk_print("reader: %u exact, %u not found", ok, missing);
    atomic_fetch_add(&it_mmc_sh->val[V_GETS_OK], (int)ok);
    atomic_fetch_add(&it_mmc_sh->val[V_NOT_FOUND], (int)missing);
    c->ret_reader = 0;
fail:
    if (c->ret_reader != 0) {
        atomic_store(&it_mmc_sh->val[V_FAILED], 1);
    }
    for (int i = 0; i < READ_BATCH; i++) {
        free(buf[i]);
    }
    return NULL;
}

/* The used bytes and capacity of rank's segment; false if not listed. */
static bool pr_seg_usage(uint32_t rank, uint64_t *used_p, uint64_t *cap_p)
{
    it_mmc_seg_t segs[16];
    int n = it_mmc_segments(NULL, 0, &it_mmc_sh->meta, segs, 16);

    for (int i = 0; i < n; i++) {
        if (segs[i].rank == rank) {
            *used_p = segs[i].used;
            *cap_p = segs[i].capacity;
            return true;
        }
    }
    return false;
}

/*
 * Barriers (all NPROC children and the parent, NPROC + 1):
 *   0  pinned objects put            -> the parent takes leases on them
 *   1  leases held                   -> the storm
 *   2  storm over                    -> the parent checks the marks and
 *                                       the pinned objects, releases
 *   3  leases released               -> one by one (V_TURN), each child
 *                                       pushes its segment above the high
 *                                       mark and waits for it to fall to
 *                                       the low mark
 *   4  pushes done                   -> everything removed
 *   5  removed                       -> the parent checks for leaks
 *   6  leaks checked                 -> the children leave
 */
static int pr_child_main(int index, void *arg)
{
    char timeout[32];
    const char *const kv[] = {"timeout_ms", timeout, NULL};
    pthread_t wt, rt;
    bool wt_started = false, rt_started = false;
    pr_child_t c = {.index = index};
    char key[64], *buf = NULL;
    uint64_t used = 0, cap = 0, deadline;
    int ret = 1, committed;

    tk_role_set("proc %d", index);
    snprintf(timeout, sizeof(timeout), "%d", CALL_MS);
    IT_MMC_ST(it_mmc_open_kv(SEG_SIZE, NULL, kv, &c.mmc), MMC_OK);
    atomic_store(&it_mmc_sh->val[V_RANK(index)], (int)mmc_rank(c.mmc));
    buf = malloc(PIN_SIZE + PUSH_SIZE);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    for (int k = 0; k < NPIN; k++) {
        snprintf(key, sizeof(key), "pin.%d.%d", index, k);
        it_mmc_fill(buf, PIN_SIZE, 1000 + (uint64_t)(index * NPIN + k));
        IT_MMC_ST(mmc_put(c.mmc, key, buf, PIN_SIZE, NULL), MMC_OK);
    }
    TK_CHECK_GOTO(it_mmc_barrier(0, NPROC + 1) == 0, "barrier 0");
    TK_CHECK_GOTO(it_mmc_barrier(1, NPROC + 1) == 0, "barrier 1");

    TK_CHECK_GOTO(pthread_create(&wt, NULL, pr_writer, &c) == 0, "thread");
    wt_started = true;
    TK_CHECK_GOTO(pthread_create(&rt, NULL, pr_reader, &c) == 0, "thread");
    rt_started = true;
    pthread_join(wt, NULL);
    wt_started = false;
    pthread_join(rt, NULL);
    rt_started = false;
    TK_CHECK_GOTO(c.ret_writer == 0 && c.ret_reader == 0, "writer or reader");
    TK_CHECK_GOTO(it_mmc_barrier(2, NPROC + 1) == 0, "barrier 2");
    TK_CHECK_GOTO(it_mmc_barrier(3, NPROC + 1) == 0, "barrier 3");

    /* the pinned objects were kept whole */
    for (int k = 0; k < NPIN; k++) {
        snprintf(key, sizeof(key), "pin.%d.%d", index, k);
        IT_MMC_ST(mmc_get(c.mmc, key, buf, PIN_SIZE), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, PIN_SIZE) ==
                          1000 + (uint64_t)(index * NPIN + k),
                      "pinned %s: wrong bytes", key);
    }

    /* one at a time: above the high mark, then down to the low mark */
    deadline = tk_time_ms() + IT_MMC_WAIT_MS;
    while (atomic_load(&it_mmc_sh->val[V_TURN]) != index) {
        TK_CHECK_GOTO(tk_time_ms() < deadline &&
                          !atomic_load(&it_mmc_sh->val[V_FAILED]),
                      "no turn");
        tk_sleep_ms(2);
    }
    /* small objects on this rank (they fit between the others) until one
     * takes it over the high mark; then the pass takes it to the low mark */
    for (int pushed = 0;; pushed++) {
        mmc_put_opts_t own = {
            .size = sizeof(mmc_put_opts_t), .replicas = 1, .npreferred = 1};
        uint64_t before, start;

        TK_CHECK_GOTO(pushed < 1000, "never above the high mark");
        TK_CHECK_GOTO(pr_seg_usage(mmc_rank(c.mmc), &before, &cap),
                      "own segment");
        own.preferred[0] = mmc_rank(c.mmc);
        it_mmc_fill(buf, PUSH_SIZE, 4242 + (uint64_t)pushed);
        snprintf(key, sizeof(key), "push.%d.%d", index, pushed);
        start = tk_time_ms();
        IT_MMC_ST(mmc_put(c.mmc, key, buf, PUSH_SIZE, &own), MMC_OK);
        TK_CHECK_GOTO(pr_timed_ok(start, "put", key), "hang");
        atomic_store(&it_mmc_sh->val[V_PUSHED(index)], pushed + 1);
        if ((before + PUSH_SIZE) * 100 > cap * HIGH_PCT) {
            tk_print("pushed %d x %llu KiB: over the high mark", pushed + 1,
                     (unsigned long long)(PUSH_SIZE / KB));
            break;
        }
    }
    deadline = tk_time_ms() + SETTLE_MS;
    for (;;) {
        TK_CHECK_GOTO(pr_seg_usage(mmc_rank(c.mmc), &used, &cap),
                      "own segment");
        if (used * 100 <= cap * LOW_PCT) {
            break;
        }
        TK_CHECK_GOTO(tk_time_ms() < deadline,
                      "segment of rank %u stays at %llu of %llu bytes, above "
                      "the low mark",
                      mmc_rank(c.mmc), (unsigned long long)used,
                      (unsigned long long)cap);
        tk_sleep_ms(20);
    }
    atomic_store(&it_mmc_sh->val[V_TURN], index + 1);
    TK_CHECK_GOTO(it_mmc_barrier(4, NPROC + 1) == 0, "barrier 4");

    /* remove everything this process put (evicted ones: not found) */
    committed = atomic_load(&it_mmc_sh->val[V_COMMITTED(index)]);
    for (int n = 0; n < committed; n++) {
        mmc_status_t st;

        snprintf(key, sizeof(key), "w.%d.%d", index, n);
        st = mmc_remove(c.mmc, key);
        TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_NOT_FOUND, "remove %s: %s",
                      key, mmc_status_name(st));
    }
    for (int k = 0; k < NPIN; k++) {
        snprintf(key, sizeof(key), "pin.%d.%d", index, k);
        IT_MMC_ST(mmc_remove(c.mmc, key), MMC_OK);
    }
    for (int k = 0; k < atomic_load(&it_mmc_sh->val[V_PUSHED(index)]); k++) {
        mmc_status_t st;

        snprintf(key, sizeof(key), "push.%d.%d", index, k);
        st = mmc_remove(c.mmc, key);
        TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_NOT_FOUND, "remove %s: %s",
                      key, mmc_status_name(st));
    }
    TK_CHECK_GOTO(it_mmc_barrier(5, NPROC + 1) == 0, "barrier 5");
    TK_CHECK_GOTO(it_mmc_barrier(6, NPROC + 1) == 0, "barrier 6");
    ret = 0;
fail:
    if (ret != 0) {
        atomic_store(&it_mmc_sh->val[V_FAILED], 1);
        atomic_store(&it_mmc_sh->val[V_WRITING], 0);
    }
    if (wt_started) {
        pthread_join(wt, NULL);
    }
    if (rt_started) {
        pthread_join(rt, NULL);
    }
    free(buf);
    mmc_destroy(c.mmc);
    return ret;
}

/* Waits at a barrier as the parent; false when a child failed. */
static bool pr_parent_barrier(int id)
{
    uint64_t deadline = tk_time_ms() + IT_MMC_WAIT_MS;

    atomic_fetch_add(&it_mmc_sh->bar[id], 1);
    while (atomic_load(&it_mmc_sh->bar[id]) < NPROC + 1) {
        if (atomic_load(&it_mmc_sh->val[V_FAILED]) != 0 ||
            tk_time_ms() > deadline) {
            tk_print("parent: barrier %d: a child failed or hangs", id);
            return false;
        }
        tk_sleep_ms(2);
    }
    return true;
}

/* /key/<key>: the number of leases, or -1 when the key is not there. */
static int pr_key_leases(const char *key)
{
    char path[128], *body = NULL, *p;
    int code, leases = -1;

    snprintf(path, sizeof(path), "/key/%s", key);
    code = it_mmc_http_get(NULL, 0, &it_mmc_sh->meta, path, &body);
    if (code == 200 && (p = strstr(body, "\"leases\":")) != NULL) {
        leases = atoi(p + 9);
    }
    free(body);
    return leases;
}

static void test_pressure(void **state)
{
    char member[48];
    const char *extra[] = {"max_ranks=8",
                           "max_segment_size=64M",
                           "lease_ms=120s",
                           "evict_high_pct=90",
                           "evict_low_pct=70",
                           member,
                           NULL};
    uint64_t leases[NPROC][NPIN], start = tk_time_ms(), deadline;
    tw_conn_t wire = {.fd = -1};
    it_mmc_seg_t segs[16];
    pid_t pids[NPROC];
    char key[64];
    int i, k, n, ok = 0;
    mmc_status_t st;
    double evictions;

    snprintf(member, sizeof(member), "member_timeout_ms=%d", MEMBER_MS);
    assert_int_equal(it_mmc_shared_init(), 0);
    assert_int_equal(
        it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", extra), 0);
    atomic_store(&it_mmc_sh->val[V_WRITING], NPROC);
    assert_int_equal(tk_proc_spawn_n(NPROC, pr_child_main, NULL, pids), 0);

    if (!pr_parent_barrier(0)) {
        goto out;
    }
    /* read leases on the oldest objects, held over the whole storm */
    if (tw_conn_open(&wire, it_mmc_sh->meta.addr, it_mmc_sh->meta.port,
                     WIRE_MS) != 0 ||
        tw_mmc_hello(&wire, "it-wire", NULL) != MF_OK) {
        goto out;
    }
    for (i = 0; i < NPROC; i++) {
        for (k = 0; k < NPIN; k++) {
            snprintf(key, sizeof(key), "pin.%d.%d", i, k);
            st = tw_mmc_get_one(&wire, key, &leases[i][k]);
            if (st != MMC_OK) {
                tk_print("parent: no lease on %s: %s", key,
                         mmc_status_name(st));
                goto out;
            }
        }
    }
    if (!pr_parent_barrier(1)) {
        goto out;
    }
    /* the storm: keep the raw connection alive meanwhile */
    while (atomic_load(&it_mmc_sh->bar[2]) < NPROC &&
           atomic_load(&it_mmc_sh->val[V_FAILED]) == 0) {
        if (tw_mmc_ping(&wire) != MF_OK) {
            goto out;
        }
        tk_sleep_ms(200);
    }
    if (!pr_parent_barrier(2)) {
        goto out;
    }
    tk_print("parent: storm over after %llu ms, %d exact gets, %d not found",
             (unsigned long long)(tk_time_ms() - start),
             atomic_load(&it_mmc_sh->val[V_GETS_OK]),
             atomic_load(&it_mmc_sh->val[V_NOT_FOUND]));

    /* eviction ran: the oldest unleased objects are gone, the leased ones
     * (older still) are there with their lease; every segment at rest is
     * at or below the high mark */
    evictions = it_mmc_metric(NULL, 0, &it_mmc_sh->meta, "mmc_evictions_total");
    tk_print("parent: %g evictions", evictions);
    if (evictions <= 0) {
        tk_print("parent: nothing was evicted");
        goto out;
    }
    for (i = 0; i < NPROC; i++) {
        snprintf(key, sizeof(key), "w.%d.0", i);
        if (pr_key_leases(key) >= 0) {
            tk_print("parent: %s, put right after the pinned ones, was never "
                     "evicted",
                     key);
            goto out;
        }
        for (k = 0; k < NPIN; k++) {
            snprintf(key, sizeof(key), "pin.%d.%d", i, k);
            if (pr_key_leases(key) < 1) {
                tk_print("parent: leased %s is gone or has no lease", key);
                goto out;
            }
        }
    }
    /* at rest (once the last pass ran) no segment is above the high mark */
    deadline = tk_time_ms() + SETTLE_MS;
    for (;;) {
        int above = 0;

        n = it_mmc_segments(NULL, 0, &it_mmc_sh->meta, segs, 16);
        if (n != NPROC) {
            tk_print("parent: %d segments, expected %d", n, NPROC);
            goto out;
        }
        for (i = 0; i < n; i++) {
            above += segs[i].used * 100 > segs[i].capacity * HIGH_PCT;
        }
        if (above == 0) {
            break;
        }
        if (tk_time_ms() > deadline) {
            tk_print("parent: %d segments stay above the high mark", above);
            goto out;
        }
        (void)tw_mmc_ping(&wire);
        tk_sleep_ms(20);
    }
    for (i = 0; i < n; i++) {
        tk_print("parent: rank %u: %llu of %llu KiB used", segs[i].rank,
                 (unsigned long long)(segs[i].used / KB),
                 (unsigned long long)(segs[i].capacity / KB));
    }
    for (i = 0; i < NPROC; i++) {
        for (k = 0; k < NPIN; k++) {
            if (tw_mmc_release_one(&wire, leases[i][k]) != MMC_OK) {
                tk_print("parent: release of a pinned lease failed");
                goto out;
            }
        }
    }
    tw_conn_close(&wire);
    if (!pr_parent_barrier(3) || !pr_parent_barrier(4) ||
        !pr_parent_barrier(5)) {
        goto out;
    }
    /* no leak: nothing is left, every byte is free again */
    n = it_mmc_segments(NULL, 0, &it_mmc_sh->meta, segs, 16);
    if (n != NPROC) {
        tk_print("parent: %d segments, expected %d", n, NPROC);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (segs[i].used != 0 || segs[i].replicas != 0) {
            tk_print("parent: rank %u still holds %llu bytes in %llu replicas",
                     segs[i].rank, (unsigned long long)segs[i].used,
                     (unsigned long long)segs[i].replicas);
            goto out;
        }
    }
    if (!pr_parent_barrier(6)) {
        goto out;
    }
    ok = 1;
out:
    tw_conn_close(&wire);
    if (!ok) {
        atomic_store(&it_mmc_sh->val[V_FAILED], 1);
    }
    if (tk_proc_wait_all(pids, NPROC, IT_MMC_WAIT_MS, NULL) != 0) {
        ok = 0;
    }
    tk_print("parent: longest call %llu ms; %llu ms in all",
             (unsigned long long)atomic_load(&it_mmc_sh->u64[U_MAX_CALL_MS]),
             (unsigned long long)(tk_time_ms() - start));
    if (tk_meta_stop(&it_mmc_sh->meta, SIGTERM) != 0) {
        tk_print("parent: mmc-meta did not exit cleanly");
        ok = 0;
    }
    assert_int_equal(ok, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pressure),
    };

    return tk_group_run(tests, NULL, NULL);
}
