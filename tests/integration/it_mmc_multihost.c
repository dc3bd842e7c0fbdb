/*
 * MemCache across hosts: the mmc-meta daemon in host 0 and clients on
 * three hosts (network namespaces joined by a bridge, tk_netns.h), so
 * every cross-host copy goes over the tcp transport and every client
 * reaches the meta service and the config store over the network.
 *
 * Checks: two replicas land on distinct hosts; every client reads every
 * object; a get prefers the replica on its own host (made visible by
 * changing the bytes of one replica behind the meta service's back); a
 * client killed on one host leaves the objects with a replica elsewhere
 * readable, and the objects it alone held gone.
 *
 * Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped otherwise.
 */
#include "it_mmc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define MB          (1ull << 20)
#define HOSTS       3
#define PER_HOST    2
#define CLIENTS     (HOSTS * PER_HOST)
#define HOST_OF(_i) ((_i) / PER_HOST)
#define OBJ_SIZE    (3 * MB + 17)

static tk_netns_t mh_net;
static bool mh_have_net;

/* val[i]: rank of client i; val[64 + rank]: host of rank + 1; val[250..]:
 * flags of the tests */
static void mh_publish(int index, uint32_t rank)
{
    atomic_store(&it_mmc_sh->val[index], (int)rank);
    atomic_store(&it_mmc_sh->val[64 + rank], HOST_OF(index) + 1);
}

static int mh_host_of_rank(uint32_t rank)
{
    return rank < 180 ? atomic_load(&it_mmc_sh->val[64 + rank]) - 1 : -1;
}

static void mh_run(tk_proc_fn fn, const int *victims, int nvictims)
{
    pid_t pids[CLIENTS];
    int i, code, ret = 0;
    uint64_t deadline;

    it_mmc_shared_reset();
    for (i = 0; i < CLIENTS; i++) {
        pids[i] = tk_netns_spawn(&mh_net, HOST_OF(i), fn, i, NULL);
        if (pids[i] < 0) {
            tk_proc_kill_all();
            fail_msg("spawning client %d", i);
        }
    }
    if (nvictims > 0) {
        /* val[251]: the victims are ready to die */
        deadline = tk_time_ms() + IT_MMC_WAIT_MS;
        while (atomic_load(&it_mmc_sh->val[251]) < nvictims &&
               tk_time_ms() < deadline) {
            tk_sleep_ms(1);
        }
        for (i = 0; i < nvictims; i++) {
            kill(pids[victims[i]], SIGKILL);
            code = tk_proc_wait(pids[victims[i]], 30000);
            if (code != 128 + SIGKILL) {
                tk_print("victim %d ended with %d", victims[i], code);
                ret = -1;
            }
            pids[victims[i]] = -1;
        }
        atomic_store(&it_mmc_sh->val[252], 1); /* the survivors go on */
    }
    for (i = 0; i < CLIENTS; i++) {
        if (pids[i] > 0 && tk_proc_wait(pids[i], 2 * IT_MMC_WAIT_MS) != 0) {
            tk_print("client %d failed", i);
            ret = -1;
        }
    }
    assert_int_equal(ret, 0);
}

/* ------------------------------------------------ replicas and reads */

static int mh_replicas_child(int index, void *arg)
{
    mmc_put_opts_t opts = {.size = sizeof(mmc_put_opts_t), .replicas = 2};
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    mmc_t *mmc = NULL;
    char *buf = NULL, key[32];
    int ret = 1, h0, h1;

    tk_role_set("host %d client %d", HOST_OF(index), index);
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    mh_publish(index, mmc_rank(mmc));
    buf = malloc(OBJ_SIZE);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    TK_CHECK_GOTO(it_mmc_barrier(0, CLIENTS) == 0, "barrier");

    /* two replicas: this rank first, the other on another host */
    snprintf(key, sizeof(key), "mh/%d", index);
    it_mmc_fill(buf, OBJ_SIZE, (uint64_t)index);
    IT_MMC_ST(mmc_put(mmc, key, buf, OBJ_SIZE, &opts), MMC_OK);
    IT_MMC_ST(mmc_query(mmc, key, &info), MMC_OK);
    TK_CHECK_GOTO(info.nreplicas == 2, "%u replicas", info.nreplicas);
    TK_CHECK_GOTO(info.ranks[0] == mmc_rank(mmc), "first replica on rank %u",
                  info.ranks[0]);
    h0 = mh_host_of_rank(info.ranks[0]);
    h1 = mh_host_of_rank(info.ranks[1]);
    TK_CHECK_GOTO(h0 >= 0 && h1 >= 0 && h0 != h1,
                  "replicas on ranks %u and %u, hosts %d and %d", info.ranks[0],
                  info.ranks[1], h0, h1);
    TK_CHECK_GOTO(it_mmc_barrier(1, CLIENTS) == 0, "barrier");

    /* everybody reads everything, across hosts */
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(key, sizeof(key), "mh/%d", i);
        memset(buf, 0, OBJ_SIZE);
        IT_MMC_ST(mmc_get(mmc, key, buf, OBJ_SIZE), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, OBJ_SIZE) == (uint64_t)i, "read %s",
                      key);
    }
    TK_CHECK_GOTO(it_mmc_barrier(2, CLIENTS) == 0, "barrier");

    /* same host first: client 0 changes the bytes of its own replica of
     * mh/0 (a pointer: its own segment); a reader on the other replica's
     * host still sees the original, a reader on host 0 the change */
    if (index == 0) {
        IT_MMC_ST(mmc_query(mmc, "mh/0", &info), MMC_OK);
        atomic_store(&it_mmc_sh->val[250], mh_host_of_rank(info.ranks[1]));
        it_mmc_fill((void *)(uintptr_t)info.gvas[0], OBJ_SIZE, 999);
    }
    TK_CHECK_GOTO(it_mmc_barrier(3, CLIENTS) == 0, "barrier");
    {
        int other = atomic_load(&it_mmc_sh->val[250]);
        uint64_t seed;

        IT_MMC_ST(mmc_get(mmc, "mh/0", buf, OBJ_SIZE), MMC_OK);
        seed = it_mmc_seed_of(buf, OBJ_SIZE);
        if (HOST_OF(index) == 0) {
            TK_CHECK_GOTO(seed == 999, "host 0 read seed %llu, not its replica",
                          (unsigned long long)seed);
        } else if (HOST_OF(index) == other) {
            TK_CHECK_GOTO(seed == 0, "host %d read seed %llu, not its replica",
                          other, (unsigned long long)seed);
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(4, CLIENTS) == 0, "barrier");
    snprintf(key, sizeof(key), "mh/%d", index);
    IT_MMC_ST(mmc_remove(mmc, key), MMC_OK);
    ret = 0;
fail:
    free(buf);
    it_mmc_barrier(5, CLIENTS);
    mmc_destroy(mmc);
    return ret;
}

static void test_mh_replicas(void **state)
{
    mh_run(mh_replicas_child, NULL, 0);
}

/* ------------------------------------------------- a host's client dies */

#define VICTIM 5 /* host 2 */
#define KILL_N 4

static int mh_kill_child(int index, void *arg)
{
    mmc_put_opts_t two = {.size = sizeof(mmc_put_opts_t), .replicas = 2};
    mmc_put_opts_t one = {.size = sizeof(mmc_put_opts_t), .replicas = 1};
    mmc_t *mmc = NULL;
    char *buf = NULL, key[32];
    int ret = 1, k;

    tk_role_set("host %d client %d", HOST_OF(index), index);
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    mh_publish(index, mmc_rank(mmc));
    buf = malloc(OBJ_SIZE);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    TK_CHECK_GOTO(it_mmc_barrier(0, CLIENTS) == 0, "barrier");
    for (k = 0; k < KILL_N; k++) {
        snprintf(key, sizeof(key), "kill/%d/two/%d", index, k);
        it_mmc_fill(buf, OBJ_SIZE, (uint64_t)(100 * index + k));
        IT_MMC_ST(mmc_put(mmc, key, buf, OBJ_SIZE, &two), MMC_OK);
        snprintf(key, sizeof(key), "kill/%d/one/%d", index, k);
        IT_MMC_ST(mmc_put(mmc, key, buf, OBJ_SIZE, &one), MMC_OK);
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, CLIENTS) == 0, "barrier");
    if (index == VICTIM) {
        atomic_fetch_add(&it_mmc_sh->val[251], 1);
        for (;;) { /* reads until killed */
            snprintf(key, sizeof(key), "kill/%d/two/0", (index + 1) % CLIENTS);
            (void)mmc_get(mmc, key, buf, OBJ_SIZE);
        }
    }
    {
        uint64_t deadline = tk_time_ms() + IT_MMC_WAIT_MS;

        while (atomic_load(&it_mmc_sh->val[252]) == 0) {
            TK_CHECK_GOTO(tk_time_ms() < deadline, "the victim was not killed");
            tk_sleep_ms(1);
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        for (k = 0; k < KILL_N; k++) {
            mmc_status_t st;
            uint64_t deadline = tk_time_ms() + IT_MMC_WAIT_MS;

            /* every object with two replicas stays readable */
            snprintf(key, sizeof(key), "kill/%d/two/%d", i, k);
            memset(buf, 0, OBJ_SIZE);
            IT_MMC_ST(mmc_get(mmc, key, buf, OBJ_SIZE), MMC_OK);
            TK_CHECK_GOTO(it_mmc_seed_of(buf, OBJ_SIZE) ==
                              (uint64_t)(100 * i + k),
                          "read %s", key);
            snprintf(key, sizeof(key), "kill/%d/one/%d", i, k);
            if (i != VICTIM) {
                IT_MMC_ST(mmc_get(mmc, key, buf, OBJ_SIZE), MMC_OK);
                TK_CHECK_GOTO(it_mmc_seed_of(buf, OBJ_SIZE) ==
                                  (uint64_t)(100 * i + k),
                              "read %s", key);
                continue;
            }
            /* the victim's single replicas go with it */
            while ((st = mmc_get(mmc, key, buf, OBJ_SIZE)) !=
                   MMC_ERR_NOT_FOUND) {
                TK_CHECK_GOTO(tk_time_ms() < deadline, "%s still there: %s",
                              key, mmc_status_name(st));
                tk_sleep_ms(20);
            }
        }
    }
    ret = 0;
fail:
    free(buf);
    it_mmc_barrier(2, CLIENTS - 1);
    mmc_destroy(mmc);
    return ret;
}

static void test_mh_kill(void **state)
{
    const int victims[] = {VICTIM};

    mh_run(mh_kill_child, victims, 1);
}

/* ---------------------------------------------------------------- main */

static int mh_setup(void **state)
{
    if (it_mmc_shared_init() != 0 || tk_netns_create(&mh_net, HOSTS) != 0) {
        return -1;
    }
    mh_have_net = true;
    if (it_mmc_meta_start(&it_mmc_sh->meta, &mh_net, 0, mh_net.addr[0], NULL) !=
        0) {
        return -1;
    }
    tk_print("mmc-meta in host 0 at %s", it_mmc_sh->meta.url);
    return 0;
}

static int mh_teardown(void **state)
{
    int code = tk_meta_stop(&it_mmc_sh->meta, SIGTERM);

    if (mh_have_net) {
        tk_netns_destroy(&mh_net);
        mh_have_net = false;
    }
    if (code != 0) {
        tk_print("mmc-meta exited with %d", code);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mh_replicas),
        cmocka_unit_test(test_mh_kill),
    };

    tk_netns_require();
    return tk_group_run(tests, mh_setup, mh_teardown);
}
