/*
 * SHM (mf_shm.h) across rank processes:
 *
 *   same_host: 4 ranks on one host create a region; each fills its part,
 *          reads every peer's through its GVA (a pointer: the part is
 *          mapped) and through mf_shm_get, writes its slot in every peer's
 *          part by pointer and by mf_shm_put; allgather, subgroup barrier
 *          and allgather (even and odd ranks), counters under contention
 *          (add and compare-and-swap), the context block, the region
 *          created again (the same window), and a global exit every rank's
 *          callback sees;
 *   default_exit: a global exit without callbacks ends every rank with
 *          its status;
 *   mismatch: ranks that disagree on the size fail, naming both sizes;
 *   hosts: 2 hosts (network namespaces) x 2 ranks: same-host parts mapped,
 *          other-host parts reached through tcp by put/get, every byte
 *          checked; then a rank dies by SIGKILL while another writes to
 *          it: every call returns, with MF_OK or MF_ERR_PEER_LOST, and
 *          once its death is known only the latter, and the topology says
 *          so;
 *   device: 2 ranks with a device region (the driver MF_CUDA_LIBRARY
 *          names: tests/fakecuda in CI): a peer's part is a device pointer
 *          here, read and written through the driver and put/get.
 */
#include "it_helpers.h"
#include "tk_cuda.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define WORLD       4u
#define MIB         (1024ull * 1024)
#define RO          (4 * MIB + 123) /* the owner's pattern */
#define SLOT        (256 * 1024)    /* rank w's scratch in every part */
#define PART        (RO + WORLD * SLOT)
#define SLOT_AT(w)  (RO + (uint64_t)(w)*SLOT)
#define SEED(r)     (700u + (r))
#define WSEED(w, r) (800u + 16 * (w) + (r))
#define REGION      3
#define CHILD_LIMIT 240000

static it_store_t g_store;
static tk_netns_t g_net;
static bool g_have_net;
static int g_pipe[2] = {-1, -1}; /* a rank says it may be killed */

static mf_shm_t *sh_open(uint32_t rank, uint32_t world, mf_mem_type_t type,
                         uint64_t size, uint32_t timeout_ms, mf_status_t *st)
{
    mf_shm_create_params_t params;
    mf_bm_config_t cfg;
    mf_shm_t *shm = NULL;

    it_bm_config(&cfg);
    if (timeout_ms != 0) {
        cfg.timeout_ms = timeout_ms;
    }
    TK_CHECK_OK(mf_init());
    TK_CHECK_OK(mf_shm_init(g_store.url, world, rank, &cfg));
    mf_shm_create_params_init(&params);
    params.symmetric_size = size;
    params.type = type;
    *st = mf_shm_create(REGION, &params, &shm);
    return shm;
}

static void sh_close(mf_shm_t *shm)
{
    mf_shm_destroy(shm);
    mf_shm_uninit();
    mf_uninit();
}

/* Fills this rank's part, then checks every part (pointer and get) and
 * writes this rank's slot in every part (pointer for mapped parts, put for
 * all), then checks the slots others wrote into its own. */
static void sh_exchange(mf_shm_t *shm, uint8_t *buf)
{
    uint32_t me = mf_shm_rank(shm), world = mf_shm_world(shm), r;
    uint8_t *mine = mf_shm_ptr(shm, me);
    mf_shm_reach_t reach;

    tk_pattern_fill(mine, RO, SEED(me), 0);
    TK_CHECK_OK(mf_shm_barrier(shm));
    for (r = 0; r < world; r++) {
        uint64_t part = (uint64_t)(uintptr_t)mf_shm_ptr(shm, r);

        TK_CHECK_OK(mf_shm_can_reach(shm, r, &reach));
        memset(buf, 0, RO);
        TK_CHECK_OK(mf_shm_get(shm, buf, part + 1, RO - 1));
        TK_CHECK(tk_pattern_check(buf, RO - 1, SEED(r), 1) < 0);
        tk_pattern_fill(buf, SLOT, WSEED(me, r), 0);
        TK_CHECK_OK(mf_shm_put(shm, part + SLOT_AT(me), buf, SLOT / 2));
        if (reach.flags & MF_SHM_REACH_MAPPED) {
            TK_CHECK(tk_pattern_check((uint8_t *)(uintptr_t)part, RO, SEED(r),
                                      0) < 0);
            memcpy((uint8_t *)(uintptr_t)part + SLOT_AT(me) + SLOT / 2,
                   buf + SLOT / 2, SLOT / 2);
        } else {
            TK_CHECK(reach.flags == MF_SHM_REACH_TRANSPORT);
            TK_CHECK_OK(mf_shm_put(shm, part + SLOT_AT(me) + SLOT / 2,
                                   buf + SLOT / 2, SLOT / 2));
        }
    }
    TK_CHECK_OK(mf_shm_barrier(shm));
    for (r = 0; r < world; r++) {
        TK_CHECK(tk_pattern_check(mine + SLOT_AT(r), SLOT, WSEED(r, me), 0) <
                 0);
    }
    TK_CHECK_OK(mf_shm_barrier(shm));
}

typedef struct sh_exit {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    int status;
    uint32_t from;
} sh_exit_t;

static void sh_exit_cb(mf_shm_t *shm, int status, uint32_t from, void *arg)
{
    sh_exit_t *e = arg;

    (void)shm;
    pthread_mutex_lock(&e->lock);
    e->calls++;
    e->status = status;
    e->from = from;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static int sh_same_host_rank(int index, void *arg)
{
    uint32_t me = (uint32_t)index, r;
    uint64_t word = 1000u * me + 7, words[WORLD], bases[WORLD], base;
    sh_exit_t ex = {.lock = PTHREAD_MUTEX_INITIALIZER,
                    .cond = PTHREAD_COND_INITIALIZER};
    char ctx[64], got[64];
    uint8_t *buf = malloc(RO);
    mf_shm_reach_t reach;
    mf_status_t st;
    mf_shm_t *shm;
    int64_t v, cur;
    size_t len;

    (void)arg;
    TK_CHECK(buf != NULL);
    shm = sh_open(me, WORLD, MF_MEM_HOST, PART, 0, &st);
    TK_CHECK_OK(st);
    TK_CHECK(mf_shm_rank(shm) == me && mf_shm_world(shm) == WORLD);
    for (r = 0; r < WORLD; r++) {
        TK_CHECK_OK(mf_shm_can_reach(shm, r, &reach));
        TK_CHECK(reach.flags & MF_SHM_REACH_MAPPED);
        TK_CHECK((reach.flags & MF_SHM_REACH_SELF) == (r == me ? 1u : 0u));
        TK_CHECK(r == me || strcmp(reach.transport, "shm") == 0);
    }
    sh_exchange(shm, buf);

    /* allgather, and the subgroups of even and odd ranks */
    TK_CHECK_OK(mf_shm_allgather(shm, &word, sizeof(word), words));
    for (r = 0; r < WORLD; r++) {
        TK_CHECK(words[r] == 1000u * r + 7);
    }
    for (int round = 0; round < 3; round++) {
        uint64_t pair[2];

        TK_CHECK_OK(mf_shm_group_barrier(shm, me % 2 ? "odd" : "even", 2));
        TK_CHECK_OK(mf_shm_group_allgather(shm, me % 2 ? "odd" : "even", me / 2,
                                           2, &word, sizeof(word), pair));
        TK_CHECK(pair[0] == 1000u * (me % 2) + 7 &&
                 pair[1] == 1000u * (me % 2 + 2) + 7);
    }

    /* counters under contention */
    for (int i = 0; i < 100; i++) {
        TK_CHECK_OK(mf_shm_atomic_add(shm, "hits", 1, &v));
    }
    for (int i = 0; i < 50; i++) {
        cur = 0;
        do {
            st = mf_shm_atomic_cas(shm, "cas", cur, cur + 1, &cur);
            TK_CHECK(st == MF_OK || st == MF_ERR_MISMATCH);
        } while (st != MF_OK);
    }
    TK_CHECK_OK(mf_shm_barrier(shm));
    TK_CHECK_OK(mf_shm_atomic_add(shm, "hits", 0, &v));
    TK_CHECK(v == 100 * WORLD);
    TK_CHECK_OK(mf_shm_atomic_add(shm, "cas", 0, &v));
    TK_CHECK(v == 50 * WORLD);

    /* the context block, from rank 0 */
    snprintf(ctx, sizeof(ctx), "context of region %d", REGION);
    if (me == 0) {
        TK_CHECK_OK(mf_shm_set_context(shm, ctx, strlen(ctx) + 1));
    }
    TK_CHECK_OK(mf_shm_get_context(shm, got, sizeof(got), &len, 30000));
    TK_CHECK(len == strlen(ctx) + 1 && strcmp(got, ctx) == 0);
    TK_CHECK_OK(mf_shm_barrier(shm));

    /* the region again: the same window in every rank */
    base = mf_shm_gva(shm);
    mf_shm_destroy(shm);
    {
        mf_shm_create_params_t params;

        mf_shm_create_params_init(&params);
        params.symmetric_size = PART;
        TK_CHECK_OK(mf_shm_create(REGION, &params, &shm));
    }
    TK_CHECK(mf_shm_gva(shm) == base);
    TK_CHECK_OK(mf_shm_allgather(shm, &base, sizeof(base), bases));
    for (r = 0; r < WORLD; r++) {
        TK_CHECK(bases[r] == base);
    }
    sh_exchange(shm, buf);

    /* a global exit from the last rank reaches every rank's callback */
    TK_CHECK_OK(mf_shm_register_exit(shm, sh_exit_cb, &ex));
    TK_CHECK_OK(mf_shm_barrier(shm));
    if (me == WORLD - 1) {
        TK_CHECK_OK(mf_shm_global_exit(shm, 7));
    }
    pthread_mutex_lock(&ex.lock);
    while (ex.calls == 0) {
        pthread_cond_wait(&ex.cond, &ex.lock);
    }
    pthread_mutex_unlock(&ex.lock);
    TK_CHECK(ex.status == 7 && ex.from == WORLD - 1);
    TK_CHECK_OK(mf_shm_barrier(shm));
    sh_close(shm);
    free(buf);
    return 0;
}

static void test_same_host(void **state)
{
    pid_t pids[WORLD];

    (void)state;
    assert_int_equal(it_store_start(&g_store), 0);
    assert_int_equal(tk_proc_spawn_n(WORLD, sh_same_host_rank, NULL, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, WORLD, CHILD_LIMIT, NULL), 0);
    assert_int_equal(it_store_stop(&g_store), 0);
}

/* Without a callback, a global exit ends the process with its status. */
static int sh_default_exit_rank(int index, void *arg)
{
    mf_status_t st;
    mf_shm_t *shm;

    (void)arg;
    shm = sh_open((uint32_t)index, 2, MF_MEM_HOST, MIB, 0, &st);
    TK_CHECK_OK(st);
    TK_CHECK_OK(mf_shm_barrier(shm));
    if (index == 1) {
        TK_CHECK_OK(mf_shm_global_exit(shm, 9));
    }
    tk_sleep_ms(CHILD_LIMIT / 2);
    return 1; /* not reached */
}

static void test_default_exit(void **state)
{
    int codes[2];
    pid_t pids[2];

    (void)state;
    assert_int_equal(it_store_start(&g_store), 0);
    assert_int_equal(tk_proc_spawn_n(2, sh_default_exit_rank, NULL, pids), 0);
    tk_proc_wait_all(pids, 2, CHILD_LIMIT, codes);
    assert_int_equal(codes[0], 9);
    assert_int_equal(codes[1], 9);
    assert_int_equal(it_store_stop(&g_store), 0);
}

/* Rank 1 asks for another size than rank 0 created: it fails, naming both;
 * rank 0 waits for it in vain. */
static int sh_mismatch_rank(int index, void *arg)
{
    tk_log_t log;
    mf_status_t st;
    mf_shm_t *shm;

    (void)arg;
    tk_log_start(&log, TK_LOG_ECHO);
    shm = sh_open((uint32_t)index, 2, MF_MEM_HOST, index == 0 ? MIB : 2 * MIB,
                  3000, &st);
    TK_CHECK(shm == NULL && st != MF_OK);
    if (index == 1) {
        TK_CHECK(st == MF_ERR_INVALID);
        TK_CHECK(tk_log_find(&log, "size 0x100000") &&
                 tk_log_find(&log, "size 0x200000"));
    }
    mf_shm_uninit();
    mf_uninit();
    tk_log_stop(&log);
    return 0;
}

static void test_mismatch(void **state)
{
    pid_t pids[2];

    (void)state;
    assert_int_equal(it_store_start(&g_store), 0);
    assert_int_equal(tk_proc_spawn_n(2, sh_mismatch_rank, NULL, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, 2, CHILD_LIMIT, NULL), 0);
    assert_int_equal(it_store_stop(&g_store), 0);
}

/* Ranks 0, 1 on host 1 and 2, 3 on host 2; rank 3 is killed at the end
 * while rank 0 writes to it. */
static int sh_hosts_rank(int index, void *arg)
{
    uint32_t me = (uint32_t)index, r;
    uint8_t *buf = malloc(RO);
    mf_shm_reach_t reach;
    mf_status_t st;
    mf_shm_t *shm;
    uint64_t t0;
    bool lost = false;

    (void)arg;
    TK_CHECK(buf != NULL);
    shm = sh_open(me, WORLD, MF_MEM_HOST, PART, 0, &st);
    TK_CHECK_OK(st);
    for (r = 0; r < WORLD; r++) {
        TK_CHECK_OK(mf_shm_can_reach(shm, r, &reach));
        if (r != me && r / 2 == me / 2) {
            TK_CHECK(reach.flags == MF_SHM_REACH_MAPPED);
        } else if (r != me) {
            TK_CHECK(reach.flags == MF_SHM_REACH_TRANSPORT &&
                     strcmp(reach.transport, "tcp") == 0);
        }
    }
    sh_exchange(shm, buf);
    if (me == 3) {
        TK_CHECK(write(g_pipe[1], "k", 1) == 1); /* kill me now */
        tk_sleep_ms(CHILD_LIMIT);
        return 1;
    }
    if (me == 0) {
        /* writes to rank 3 until its death is known, every call bounded */
        uint64_t part = (uint64_t)(uintptr_t)mf_shm_ptr(shm, 3);

        t0 = tk_time_ms();
        while (!lost) {
            uint64_t c0 = tk_time_ms();

            st = mf_shm_put(shm, part + SLOT_AT(0), buf, SLOT);
            TK_CHECK(tk_time_ms() - c0 < 30000);
            TK_CHECK(st == MF_OK || st == MF_ERR_PEER_LOST ||
                     mf_status_is_peer_error(st));
            lost = st == MF_ERR_PEER_LOST;
            TK_CHECK(tk_time_ms() - t0 < CHILD_LIMIT / 2);
        }
        TK_CHECK(mf_shm_put(shm, part, buf, 1) == MF_ERR_PEER_LOST);
        TK_CHECK(mf_shm_can_reach(shm, 3, &reach) == MF_ERR_PEER_LOST);
        /* the others still serve exact bytes */
        for (r = 1; r < 3; r++) {
            memset(buf, 0, RO);
            TK_CHECK_OK(mf_shm_get(
                shm, buf, (uint64_t)(uintptr_t)mf_shm_ptr(shm, r), RO));
            TK_CHECK(tk_pattern_check(buf, RO, SEED(r), 0) < 0);
        }
        TK_CHECK_OK(mf_shm_group_barrier(shm, "survivors", 3));
    } else {
        TK_CHECK_OK(mf_shm_group_barrier(shm, "survivors", 3));
    }
    sh_close(shm);
    free(buf);
    return 0;
}

static void test_hosts(void **state)
{
    struct pollfd pfd = {.events = POLLIN};
    pid_t pids[WORLD];
    char c;

    (void)state;
    if (!g_have_net) {
        tk_print("no network namespaces here: skipped");
        skip();
    }
    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    assert_int_equal(pipe(g_pipe), 0);
    for (int r = 0; r < (int)WORLD; r++) {
        pids[r] = tk_netns_spawn(&g_net, 1 + r / 2, sh_hosts_rank, r, NULL);
        assert_true(pids[r] > 0);
    }
    pfd.fd = g_pipe[0];
    assert_int_equal(poll(&pfd, 1, CHILD_LIMIT), 1);
    assert_int_equal(read(g_pipe[0], &c, 1), 1);
    close(g_pipe[0]);
    close(g_pipe[1]);
    assert_int_equal(kill(pids[3], SIGKILL), 0);
    assert_int_equal(tk_proc_wait(pids[3], CHILD_LIMIT), 128 + SIGKILL);
    assert_int_equal(tk_proc_wait_all(pids, 3, CHILD_LIMIT, NULL), 0);
    assert_int_equal(it_store_stop(&g_store), 0);
}

/* Device parts: 8 MiB each, the pattern in the first half, slots after. */
#define DPART (8 * MIB)
#define DRO   (4 * MIB)

static int sh_device_rank(int index, void *arg)
{
    uint32_t me = (uint32_t)index, peer = 1 - me;
    uint8_t *host = malloc(DPART), *back = malloc(DPART);
    mf_shm_reach_t reach;
    char why[256];
    mf_status_t st;
    mf_shm_t *shm;
    uint8_t *mine, *theirs;

    (void)arg;
    TK_CHECK(host != NULL && back != NULL);
    TK_CHECK(tk_cuda_init(why, sizeof(why)) == 0);
    shm = sh_open(me, 2, MF_MEM_DEVICE, DPART, 0, &st);
    TK_CHECK_OK(st);
    TK_CHECK(mf_shm_stride(shm) % (2 * MIB) == 0);
    mine = mf_shm_ptr(shm, me);
    theirs = mf_shm_ptr(shm, peer);
    tk_pattern_fill(host, DRO, SEED(me), 0);
    TK_CHECK(tk_cuda_copy(mine, host, DRO) == 0);
    TK_CHECK_OK(mf_shm_barrier(shm));
    TK_CHECK_OK(mf_shm_can_reach(shm, peer, &reach));
    TK_CHECK(reach.flags == MF_SHM_REACH_MAPPED);
    /* the peer's part is a device pointer here */
    TK_CHECK(tk_cuda_copy(back, theirs, DRO) == 0);
    TK_CHECK(tk_pattern_check(back, DRO, SEED(peer), 0) < 0);
    memset(back, 0, DRO);
    TK_CHECK_OK(
        mf_shm_get(shm, back, (uint64_t)(uintptr_t)theirs + 3, DRO - 3));
    TK_CHECK(tk_pattern_check(back, DRO - 3, SEED(peer), 3) < 0);
    /* this rank's slot in the peer's part: by the driver and by put */
    tk_pattern_fill(host, MIB, WSEED(me, peer), 0);
    TK_CHECK(tk_cuda_copy(theirs + DRO + me * 2 * MIB, host, MIB / 2) == 0);
    TK_CHECK_OK(mf_shm_put(
        shm, (uint64_t)(uintptr_t)theirs + DRO + me * 2 * MIB + MIB / 2,
        host + MIB / 2, MIB / 2));
    TK_CHECK_OK(mf_shm_barrier(shm));
    TK_CHECK(tk_cuda_copy(back, mine + DRO + peer * 2 * MIB, MIB) == 0);
    TK_CHECK(tk_pattern_check(back, MIB, WSEED(peer, me), 0) < 0);
    TK_CHECK_OK(mf_shm_barrier(shm));
    sh_close(shm);
    free(host);
    free(back);
    return 0;
}

static void test_device(void **state)
{
    char why[256];
    pid_t pids[2];

    (void)state;
    if (tk_cuda_probe(why, sizeof(why)) != 0) {
        tk_print("no device memory here (%s): skipped", why);
        skip();
    }
    assert_int_equal(it_store_start(&g_store), 0);
    assert_int_equal(tk_proc_spawn_n(2, sh_device_rank, NULL, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, 2, CHILD_LIMIT, NULL), 0);
    assert_int_equal(it_store_stop(&g_store), 0);
}

static int sh_setup(void **state)
{
    char why[256];

    (void)state;
    if (tk_netns_check(why, sizeof(why)) == 0 &&
        tk_netns_create(&g_net, 3) == 0) {
        g_have_net = true;
    } else {
        tk_print("network namespaces: %s", why);
    }
    return 0;
}

static int sh_teardown(void **state)
{
    (void)state;
    if (g_have_net) {
        tk_netns_destroy(&g_net);
        g_have_net = false;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_host), cmocka_unit_test(test_default_exit),
        cmocka_unit_test(test_mismatch),  cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_device),
    };

#ifdef IT_FAKECUDA_PATH
    /* the fake driver, unless a driver is named (a real one on a GPU) */
    setenv("MF_CUDA_LIBRARY", IT_FAKECUDA_PATH, 0);
#endif
    return tk_group_run(tests, sh_setup, sh_teardown);
}
