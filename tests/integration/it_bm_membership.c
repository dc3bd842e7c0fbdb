/*
 * Pool membership while copies run: a rank leaves and a new process takes
 * its rank back with MF_RANK_AUTO; a rank dies by SIGKILL and a new process
 * takes its rank over; a rank hangs (SIGSTOP) and is declared lost when its
 * heartbeats stop (after the store's heartbeat timeout, 10 s by default).
 *
 * The survivors copy among themselves the whole time and every one of
 * their copies must succeed with the right bytes.  Copies that touch a rank
 * that left or died may fail, but only with a peer error, and must never
 * crash; once the death is noticed they must fail with a peer error.
 *
 * Segment layout: [0, RO_SIZE) read-only pattern of the owner (its seed
 * changes with every incarnation of a rank, so a stale mapping of a dead
 * predecessor is caught), then one SLOT_SIZE scratch slot per writer rank.
 */
#include "it_helpers.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WORLD       4u
#define MIB         (1024ull * 1024)
#define RO_SIZE     (2 * MIB)
#define SLOT_SIZE   (3 * MIB)
#define SEG_SIZE    (RO_SIZE + WORLD * SLOT_SIZE)
#define STRIDE      (32 * MIB)
#define MAX_COPY    (1 * MIB)
#define WAIT_MS     60000
#define CHILD_LIMIT 240000

typedef enum mb_kind { MB_L2G, MB_G2L, MB_G2G } mb_kind_t;

typedef struct mb_ctx {
    it_pool_t pool;
    tk_rng_t rng;
    uint8_t *lsrc;
    uint8_t *ldst;
    uint64_t ro_seed[WORLD]; /* current incarnation of each rank */
    uint64_t next_seed;
    unsigned copies;
} mb_ctx_t;

/* Rank events seen by this process (written by the library's thread). */
static unsigned mb_joins[WORLD];
static unsigned mb_left_ok[WORLD];
static unsigned mb_lost[WORLD];
static unsigned mb_bad_events;

static it_store_t g_store;

static unsigned mb_load(unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void mb_rank_cb(mf_bm_t *bm, uint32_t rank, bool joined,
                       mf_status_t reason, void *arg)
{
    if (rank >= WORLD) {
        __atomic_add_fetch(&mb_bad_events, 1, __ATOMIC_RELEASE);
        return;
    }
    if (joined && reason == MF_OK) {
        __atomic_add_fetch(&mb_joins[rank], 1, __ATOMIC_RELEASE);
    } else if (!joined && reason == MF_OK) {
        __atomic_add_fetch(&mb_left_ok[rank], 1, __ATOMIC_RELEASE);
    } else if (!joined && reason == MF_ERR_PEER_LOST) {
        __atomic_add_fetch(&mb_lost[rank], 1, __ATOMIC_RELEASE);
    } else {
        __atomic_add_fetch(&mb_bad_events, 1, __ATOMIC_RELEASE);
    }
}

static uint64_t mb_seed(uint32_t rank, unsigned incarnation)
{
    return 5000 + rank * 10 + incarnation;
}

/* Opens the pool, fills this rank's read-only zone with its seed. */
static int mb_open(mb_ctx_t *ctx, uint32_t rank, unsigned incarnation)
{
    uint8_t *own;
    uint32_t r;

    memset(ctx, 0, sizeof(*ctx));
    ctx->lsrc = malloc(MAX_COPY + 8192);
    ctx->ldst = malloc(MAX_COPY + 8192);
    TK_CHECK_GOTO(ctx->lsrc != NULL && ctx->ldst != NULL, "malloc");
    for (r = 0; r < WORLD; r++) {
        ctx->ro_seed[r] = mb_seed(r, 0);
    }
    TK_CHECK_OK_GOTO(it_pool_open(&ctx->pool, g_store.url, WORLD, rank,
                                  SEG_SIZE, STRIDE, NULL, false));
    mf_bm_set_rank_cb(ctx->pool.bm, mb_rank_cb, NULL);
    own = mf_bm_gva_of_rank(ctx->pool.bm, ctx->pool.rank, MF_MEM_HOST);
    TK_CHECK_GOTO(own != NULL, "no GVA of my rank");
    ctx->ro_seed[ctx->pool.rank] = mb_seed(ctx->pool.rank, incarnation);
    tk_pattern_fill(own, RO_SIZE, ctx->ro_seed[ctx->pool.rank], 0);
    TK_CHECK_OK_GOTO(mf_bm_join(ctx->pool.bm));
    ctx->pool.joined = true;
    tk_rng_seed(&ctx->rng, 77 + ctx->pool.rank * 1000 + incarnation);
    ctx->next_seed =
        (uint64_t)(ctx->pool.rank + 1) << 40 | (uint64_t)incarnation << 32;
    return 0;
fail:
    return 1;
}

static void mb_close(mb_ctx_t *ctx)
{
    it_pool_close(&ctx->pool);
    free(ctx->lsrc);
    free(ctx->ldst);
}

/*
 * One verified copy of a random size.  src/dst are ranks (ignored for the
 * local side).  When `touch` is false the remote side is never accessed
 * through a pointer by the test (the rank may be dying): a remote
 * destination is then not checked.  Sets *bad_data on a wrong result.
 */
static mf_status_t mb_copy(mb_ctx_t *ctx, mb_kind_t kind, uint32_t a,
                           uint32_t b, bool touch, bool *bad_data)
{
    static const mf_copy_dir_t dirs[] = {MF_COPY_LH2GH, MF_COPY_GH2LH,
                                         MF_COPY_GH2GH};
    it_pool_t *pool = &ctx->pool;
    size_t size = tk_rng_size(&ctx->rng, 1, MAX_COPY);
    uint64_t soff = tk_rng_range(&ctx->rng, 0, 4095);
    uint64_t doff = tk_rng_range(&ctx->rng, 0, 4095);
    uint64_t seed, base, src, dst;
    uint8_t *view = NULL;
    mf_status_t st;
    ssize_t bad;

    *bad_data = false;
    if (kind == MB_L2G) {
        seed = ctx->next_seed++;
        base = 0;
        tk_pattern_fill(ctx->lsrc + soff, size, seed, 0);
        src = (uint64_t)(uintptr_t)(ctx->lsrc + soff);
    } else {
        seed = ctx->ro_seed[a];
        base = soff;
        src = it_gva(pool, a, soff);
    }
    if (kind == MB_G2L) {
        view = ctx->ldst + doff;
        dst = (uint64_t)(uintptr_t)view;
    } else {
        dst = it_gva(pool, b, RO_SIZE + pool->rank * SLOT_SIZE + doff);
        view = touch ? (uint8_t *)(uintptr_t)dst : NULL;
    }
    if (view != NULL) {
        memset(view, 0, size);
    }
    st = mf_bm_copy(pool->bm, src, dst, size, dirs[kind]);
    ctx->copies++;
    if (st == MF_OK && view != NULL) {
        bad = tk_pattern_check(view, size, seed, base);
        if (bad >= 0) {
            tk_print("copy kind %d %u->%u, %zu bytes: byte %zd differs", kind,
                     a, b, size, bad);
            *bad_data = true;
        }
    }
    return st;
}

/* A copy among live ranks: must succeed with the right bytes. */
static int mb_copy_ok(mb_ctx_t *ctx, mb_kind_t kind, uint32_t a, uint32_t b)
{
    bool bad;
    mf_status_t st = mb_copy(ctx, kind, a, b, true, &bad);

    if (st != MF_OK || bad) {
        tk_print("copy kind %d %u -> %u: %s%s", kind, a, b, mf_status_name(st),
                 bad ? ", wrong data" : "");
        return 1;
    }
    return 0;
}

/* A few copies in every direction among the given ranks. */
static int mb_copy_among(mb_ctx_t *ctx, const uint32_t *ranks, unsigned n)
{
    unsigned i;

    for (i = 0; i < 3; i++) {
        uint32_t a = ranks[tk_rng_range(&ctx->rng, 0, n - 1)];
        uint32_t b = ranks[tk_rng_range(&ctx->rng, 0, n - 1)];

        if (mb_copy_ok(ctx, i, a, b) != 0) {
            return 1;
        }
    }
    return 0;
}

static bool mb_key_exists(mb_ctx_t *ctx, const char *key)
{
    void *value = NULL;
    size_t len;
    mf_status_t st;

    st = mf_store_get(ctx->pool.store, key, 0, &value, &len);
    free(value);
    return st == MF_OK;
}

static mf_status_t mb_wait_count(mb_ctx_t *ctx, unsigned *counter, unsigned min,
                                 const char *what)
{
    uint64_t deadline = tk_time_ms() + WAIT_MS;

    while (mb_load(counter) < min) {
        if (tk_time_ms() > deadline) {
            tk_print("no %s event after %d ms", what, WAIT_MS);
            return MF_ERR_TIMEOUT;
        }
        tk_sleep_ms(10);
    }
    return MF_OK;
}

/* ------------------------------------------------- leave and rejoin */

/*
 * Ranks 0..2 copy among themselves from "up" until "rejoined"; rank 3
 * leaves gracefully and exits; the parent then starts a new process that
 * joins with MF_RANK_AUTO, must get rank 3 back, and is used by the others.
 */
static int mb_leave_copier(mb_ctx_t *ctx)
{
    static const uint32_t live[] = {0, 1, 2};
    const uint32_t me = ctx->pool.rank;
    uint64_t deadline = tk_time_ms() + 180000;
    bool saw_leave = false;
    unsigned after_leave = 0, joins_before = 0;
    int64_t count;

    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "up", WORLD));
    TK_CHECK_OK_GOTO(it_wait_all_joined(&ctx->pool, WAIT_MS));
    TK_CHECK_GOTO(mb_load(&mb_left_ok[3]) == 0 && mb_load(&mb_lost[3]) == 0,
                  "rank 3 reported gone too early");
    for (;;) {
        TK_CHECK_GOTO(mb_copy_among(ctx, live, 3) == 0, "copy among 0..2");
        if (!saw_leave && !mf_bm_rank_joined(ctx->pool.bm, 3)) {
            saw_leave = true;
            tk_print("rank 3 is gone after %u copies", ctx->copies);
            TK_CHECK_OK_GOTO(
                mb_wait_count(ctx, &mb_left_ok[3], 1, "graceful leave of 3"));
            joins_before = mb_load(&mb_joins[3]);
        }
        if (saw_leave && ++after_leave == 20) {
            /* tell the rejoiner we saw the hole and kept copying */
            TK_CHECK_OK_GOTO(
                mf_store_add(ctx->pool.store, "saw_leave", 1, &count));
        }
        if (after_leave >= 20 && mb_key_exists(ctx, "rejoined")) {
            break;
        }
        TK_CHECK_GOTO(tk_time_ms() < deadline,
                      "rank 3 never left and came back");
    }
    TK_CHECK_GOTO(mb_load(&mb_lost[3]) == 0, "graceful leave reported as lost");
    TK_CHECK_OK_GOTO(it_wait_rank_joined(&ctx->pool, 3, true, WAIT_MS));
    TK_CHECK_OK_GOTO(
        mb_wait_count(ctx, &mb_joins[3], joins_before + 1, "rejoin of 3"));

    /* the new incarnation of rank 3, with its new pattern */
    ctx->ro_seed[3] = mb_seed(3, 1);
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_L2G, me, 3) == 0, "write to new rank 3");
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_G2L, 3, me) == 0, "read new rank 3");
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_G2G, 3, (me + 1) % 3) == 0, "3 -> other");
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_G2G, me, 3) == 0, "me -> 3");
    TK_CHECK_GOTO(mb_load(&mb_bad_events) == 0, "unexpected rank events");
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "end", WORLD));
    tk_print("%u copies, all verified", ctx->copies);
    return 0;
fail:
    return 1;
}

static int mb_leave_rank(int index, void *arg)
{
    mb_ctx_t ctx;
    int ret = 1;

    if (mb_open(&ctx, (uint32_t)index, 0) != 0) {
        goto out;
    }
    if (index < 3) {
        ret = mb_leave_copier(&ctx);
        goto out;
    }
    /* rank 3: be there while the others start copying, then go */
    TK_CHECK_OK_GOTO(it_barrier(&ctx.pool, "up", WORLD));
    TK_CHECK_OK_GOTO(it_wait_all_joined(&ctx.pool, WAIT_MS));
    tk_sleep_ms(200);
    TK_CHECK_OK_GOTO(mf_bm_leave(ctx.pool.bm));
    ctx.pool.joined = false;
    ret = 0;
fail:
out:
    mb_close(&ctx);
    return ret;
}

/* A process that takes over a freed rank with MF_RANK_AUTO. */
typedef struct mb_rejoin_arg {
    const char *wait_key; /* counter the others raise when ready */
    const char *done_key; /* set once joined */
    uint32_t rank;        /* the rank it must get */
} mb_rejoin_arg_t;

static int mb_rejoin_rank(int index, void *arg)
{
    const mb_rejoin_arg_t *ra = arg;
    mf_store_t *store = NULL;
    uint64_t deadline = tk_time_ms() + WAIT_MS;
    void *value = NULL;
    size_t len;
    mb_ctx_t ctx;
    int ret = 1;

    memset(&ctx, 0, sizeof(ctx));
    /* join only once every copier saw the hole */
    TK_CHECK_OK_GOTO(mf_store_connect(g_store.url, NULL, &store));
    for (;;) {
        mf_status_t st = mf_store_get(store, ra->wait_key, 0, &value, &len);

        if (st == MF_OK && strcmp(value, "3") == 0) {
            break;
        }
        free(value);
        value = NULL;
        TK_CHECK_GOTO(tk_time_ms() < deadline,
                      "the others never saw rank %u go", ra->rank);
        tk_sleep_ms(20);
    }
    if (mb_open(&ctx, MF_RANK_AUTO, 1) != 0) {
        goto fail;
    }
    TK_CHECK_GOTO(ctx.pool.rank == ra->rank,
                  "MF_RANK_AUTO gave rank %u, not the freed %u", ctx.pool.rank,
                  ra->rank);
    TK_CHECK_OK_GOTO(it_wait_all_joined(&ctx.pool, WAIT_MS));
    TK_CHECK_OK_GOTO(mf_store_set(ctx.pool.store, ra->done_key, "1", 1, 0));
    TK_CHECK_OK_GOTO(it_barrier(&ctx.pool, "end", WORLD));
    ret = 0;
fail:
    free(value);
    mb_close(&ctx);
    if (store != NULL) {
        mf_store_close(store);
    }
    return ret;
}

static void test_leave_rejoin(void **state)
{
    static const mb_rejoin_arg_t ra = {"saw_leave", "rejoined", 3};
    pid_t pids[WORLD + 1];
    int codes[WORLD + 1] = {0};
    int ret, stop;

    assert_int_equal(it_store_start(&g_store), 0);
    ret = tk_proc_spawn_n(WORLD, mb_leave_rank, NULL, pids);
    if (ret == 0) {
        /* the leaver exits on its own; then its successor starts */
        codes[3] = tk_proc_wait(pids[3], CHILD_LIMIT);
        pids[3] =
            codes[3] == 0 ? tk_proc_spawn(mb_rejoin_rank, 4, (void *)&ra) : -1;
        if (pids[3] < 0) {
            tk_proc_kill_all();
            ret = -1;
        } else {
            ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, NULL);
        }
    }
    stop = it_store_stop(&g_store);
    assert_int_equal(codes[3], 0);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
}

/* ----------------------------------------------------------- SIGKILL */

/* The rank that dies (set by the test before it forks) and whether a
 * replacement takes its rank over afterwards. */
static uint32_t mb_victim = 2;
static bool mb_replace = true;

#define VICTIM mb_victim

static int mb_kill_survivor(mb_ctx_t *ctx)
{
    const uint32_t me = ctx->pool.rank;
    uint32_t live[WORLD - 1], r, n = 0;
    uint64_t deadline = tk_time_ms() + 180000;
    mf_copy_piece_t pieces[3];
    mf_status_t results[3], st;
    unsigned peer_errors = 0, oks = 0, joins_before, k;
    int64_t count;
    bool bad;

    for (r = 0; r < WORLD; r++) {
        if (r != VICTIM) {
            live[n++] = r;
        }
    }
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "up", WORLD));
    TK_CHECK_OK_GOTO(it_wait_all_joined(&ctx->pool, WAIT_MS));
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "armed", WORLD));
    /* Until the death is noticed: rank 0 keeps hitting the victim, the
     * others copy among the living. */
    while (mf_bm_rank_joined(ctx->pool.bm, VICTIM) ||
           mb_load(&mb_lost[VICTIM]) == 0) {
        if (me == 0) {
            k = tk_rng_range(&ctx->rng, 0, 2);
            st = mb_copy(ctx, k, VICTIM, k == MB_G2G ? live[1] : VICTIM, false,
                         &bad);
            TK_CHECK_GOTO(st == MF_OK || mf_status_is_peer_error(st),
                          "copy kind %u touching the dying rank: %s", k,
                          mf_status_name(st));
            TK_CHECK_GOTO(!bad, "wrong data from the dying rank");
            if (st == MF_OK) {
                oks++;
            } else {
                peer_errors++;
            }
        } else {
            TK_CHECK_GOTO(mb_copy_among(ctx, live, 3) == 0,
                          "copy among living");
        }
        TK_CHECK_GOTO(tk_time_ms() < deadline,
                      "death of rank %u not noticed "
                      "(joined %d, lost events %u)",
                      VICTIM, mf_bm_rank_joined(ctx->pool.bm, VICTIM),
                      mb_load(&mb_lost[VICTIM]));
    }
    tk_print("rank %u lost (while dying: %u ok, %u peer errors)", VICTIM, oks,
             peer_errors);
    TK_CHECK_GOTO(mb_load(&mb_left_ok[VICTIM]) == 0,
                  "death reported as a graceful leave");

    /* Now every copy touching it fails with a peer error. */
    for (k = 0; k < 3; k++) {
        st = mb_copy(ctx, k, VICTIM, k == MB_G2G ? live[0] : VICTIM, false,
                     &bad);
        TK_CHECK_GOTO(mf_status_is_peer_error(st),
                      "copy kind %u with the dead "
                      "rank: %s, expected a peer error",
                      k, mf_status_name(st));
    }
    st = mb_copy(ctx, MB_G2G, live[1], VICTIM, false, &bad);
    TK_CHECK_GOTO(mf_status_is_peer_error(st), "G2G into the dead rank: %s",
                  mf_status_name(st));
    /* A batch with one piece for the dead rank. */
    memset(ctx->lsrc, 0x5a, 3 * 4096);
    for (k = 0; k < 3; k++) {
        pieces[k].src = (uint64_t)(uintptr_t)(ctx->lsrc + k * 4096);
        pieces[k].dst = it_gva(&ctx->pool, k == 1 ? VICTIM : live[k],
                               RO_SIZE + me * SLOT_SIZE + k * 4096);
        pieces[k].size = 4096;
    }
    st = mf_bm_copy_batch(ctx->pool.bm, pieces, 3, MF_COPY_LH2GH, results);
    TK_CHECK_GOTO(mf_status_is_peer_error(st), "batch: %s", mf_status_name(st));
    TK_CHECK_GOTO(mf_status_is_peer_error(results[1]), "dead piece: %s",
                  mf_status_name(results[1]));
    for (k = 0; k < 3; k += 2) {
        TK_CHECK_GOTO(results[k] <= MF_OK, "piece %u: %d", k, (int)results[k]);
        if (results[k] == MF_OK) {
            TK_CHECK_GOTO(tk_mem_find_not((void *)(uintptr_t)pieces[k].dst,
                                          0x5a, 4096) < 0,
                          "piece %u reported MF_OK has wrong data", k);
        }
    }
    /* The living keep working. */
    for (k = 0; k < 10; k++) {
        TK_CHECK_GOTO(mb_copy_among(ctx, live, 3) == 0, "copy among living");
    }
    TK_CHECK_GOTO(mb_load(&mb_bad_events) == 0, "unexpected rank events");
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "after", WORLD - 1));
    if (!mb_replace) {
        return 0;
    }

    /* A new process takes the dead rank over: its new segment replaces
     * the dead one at the same GVAs. */
    joins_before = mb_load(&mb_joins[VICTIM]);
    TK_CHECK_OK_GOTO(mf_store_add(ctx->pool.store, "saw_death", 1, &count));
    while (!mb_key_exists(ctx, "replaced")) {
        TK_CHECK_GOTO(mb_copy_among(ctx, live, 3) == 0, "copy among living");
        TK_CHECK_GOTO(tk_time_ms() < deadline, "rank %u never replaced",
                      VICTIM);
    }
    TK_CHECK_OK_GOTO(it_wait_rank_joined(&ctx->pool, VICTIM, true, WAIT_MS));
    TK_CHECK_OK_GOTO(mb_wait_count(ctx, &mb_joins[VICTIM], joins_before + 1,
                                   "join of the replacement"));
    ctx->ro_seed[VICTIM] = mb_seed(VICTIM, 1);
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_L2G, me, VICTIM) == 0,
                  "write replacement");
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_G2L, VICTIM, me) == 0, "read replacement");
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_G2G, VICTIM, me) == 0,
                  "replacement -> me");
    TK_CHECK_GOTO(mb_copy_ok(ctx, MB_G2G, me, VICTIM) == 0,
                  "me -> replacement");
    TK_CHECK_GOTO(mb_load(&mb_bad_events) == 0, "unexpected rank events");
    TK_CHECK_OK_GOTO(it_barrier(&ctx->pool, "end", WORLD));
    return 0;
fail:
    return 1;
}

static int mb_kill_rank(int index, void *arg)
{
    mb_ctx_t ctx;
    int ret = 1;

    if (mb_open(&ctx, (uint32_t)index, 0) != 0) {
        goto out;
    }
    if (index != (int)VICTIM) {
        ret = mb_kill_survivor(&ctx);
        goto out;
    }
    TK_CHECK_OK_GOTO(it_barrier(&ctx.pool, "up", WORLD));
    TK_CHECK_OK_GOTO(it_wait_all_joined(&ctx.pool, WAIT_MS));
    TK_CHECK_OK_GOTO(it_barrier(&ctx.pool, "armed", WORLD));
    tk_sleep_ms(100); /* let rank 0 start hitting this segment */
    /* SIGKILL: the connections close at once.  SIGSTOP: the process hangs
     * with its connections open, found only by missing heartbeats; the
     * parent kills it at the end. */
    raise(mb_replace ? SIGKILL : SIGSTOP);
fail:
out:
    mb_close(&ctx);
    return ret;
}

static void test_sigkill(void **state)
{
    static const mb_rejoin_arg_t ra = {"saw_death", "replaced", 2};
    pid_t pids[WORLD];
    int codes[WORLD] = {0};
    int ret, stop, victim = -1;

    mb_victim = 2;
    mb_replace = true;
    assert_int_equal(it_store_start(&g_store), 0);
    ret = tk_proc_spawn_n(WORLD, mb_kill_rank, NULL, pids);
    if (ret == 0) {
        victim = tk_proc_wait(pids[VICTIM], CHILD_LIMIT);
        pids[VICTIM] = victim == 128 + SIGKILL
                           ? tk_proc_spawn(mb_rejoin_rank, 4, (void *)&ra)
                           : -1;
        if (pids[VICTIM] < 0) {
            tk_proc_kill_all();
            ret = -1;
        } else {
            ret = tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, codes);
        }
    }
    stop = it_store_stop(&g_store);
    assert_int_equal(victim, 128 + SIGKILL);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
}

/* A hung rank (SIGSTOP) is declared lost when its heartbeats stop. */
static void test_sigstop(void **state)
{
    pid_t pids[WORLD], live[WORLD - 1];
    int ret, stop, victim, i, n = 0;

    mb_victim = 1;
    mb_replace = false;
    assert_int_equal(it_store_start(&g_store), 0);
    ret = tk_proc_spawn_n(WORLD, mb_kill_rank, NULL, pids);
    if (ret == 0) {
        for (i = 0; i < (int)WORLD; i++) {
            if (i != (int)mb_victim) {
                live[n++] = pids[i];
            }
        }
        ret = tk_proc_wait_all(live, n, CHILD_LIMIT, NULL);
        kill(pids[mb_victim], SIGKILL);
        victim = tk_proc_wait(pids[mb_victim], 30000);
        if (victim != 128 + SIGKILL) {
            tk_print("the stopped rank ended with %d", victim);
        }
    }
    stop = it_store_stop(&g_store);
    assert_int_equal(ret, 0);
    assert_int_equal(stop, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leave_rejoin),
        cmocka_unit_test(test_sigkill),
        cmocka_unit_test(test_sigstop),
    };

    return tk_group_run(tests, NULL, NULL);
}
