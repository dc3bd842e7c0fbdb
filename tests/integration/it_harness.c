/*
 * Self-test of the integration test harness: PRNG and patterns, exit codes,
 * crashes and stragglers of spawned children, leak detection in children
 * under ASan, and the store process used from two children.
 */
#include "it_helpers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define IT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IT_ASAN 1
#endif
#endif
static int it_self_exit_code(int index, void *arg)
{
    return index + 3;
}

static int it_self_crash(int index, void *arg)
{
    raise(SIGSEGV);
    return 0;
}

static int it_self_hang(int index, void *arg)
{
    for (;;) {
        pause();
    }
    return 0;
}

#ifdef IT_ASAN
static void *volatile it_self_sink;

/* LeakSanitizer scans registers and stacks conservatively, so one leaked
 * pointer may still look reachable; of 64 leaks, all but the last are
 * certainly lost. */
static __attribute__((noinline)) void it_self_leak_many(void)
{
    for (int i = 0; i < 64; i++) {
        it_self_sink = malloc(1000);
    }
    it_self_sink = NULL;
}

static int it_self_leak(int index, void *arg)
{
    it_self_leak_many();
    return 0;
}
#endif

static int it_self_store_client(int index, void *arg)
{
    const it_store_t *store = arg;
    mf_store_t *client = NULL;
    void *value = NULL;
    size_t len = 0;
    int ret = 1;

    TK_CHECK_OK_GOTO(mf_store_connect(store->url, NULL, &client));
    if (index == 0) {
        TK_CHECK_OK_GOTO(mf_store_set(client, "it/self", "hello", 5, 0));
    }
    TK_CHECK_OK_GOTO(mf_store_get(client, "it/self", 30000, &value, &len));
    TK_CHECK_GOTO(len == 5 && memcmp(value, "hello", 5) == 0, "wrong value");
    TK_CHECK_OK_GOTO(mf_store_barrier(client, "it/self", 2, 30000));
    ret = 0;
fail:
    free(value);
    if (client != NULL) {
        mf_store_close(client);
    }
    return ret;
}

int main(void)
{
    uint8_t buf[100], other[100];
    it_store_t store;
    tk_rng_t rng;
    pid_t pids[2];
    int codes[2], failed = 0, i;
    uint64_t v;

#define IT_SELF(_cond)                                                         \
    do {                                                                       \
        if (!(_cond)) {                                                        \
            tk_print("FAIL %s:%d: %s", __FILE__, __LINE__, #_cond);            \
            failed = 1;                                                        \
        }                                                                      \
    } while (0)

    tk_rng_seed(&rng, 1);
    for (i = 0; i < 1000; i++) {
        v = tk_rng_range(&rng, 10, 20);
        IT_SELF(v >= 10 && v <= 20);
        v = tk_rng_size(&rng, 1, 8 << 20);
        IT_SELF(v >= 1 && v <= (8 << 20));
    }
    /* the pattern depends on the absolute position only */
    tk_pattern_fill(buf, sizeof(buf), 42, 0);
    tk_pattern_fill(other, 37, 42, 13);
    IT_SELF(memcmp(buf + 13, other, 37) == 0);
    IT_SELF(tk_pattern_check(buf + 5, 90, 42, 5) < 0);
    IT_SELF(tk_pattern_check(buf, 90, 43, 0) >= 0);
    buf[50] ^= 1;
    IT_SELF(tk_pattern_check(buf, sizeof(buf), 42, 0) == 50);
    IT_SELF(tk_mem_diff(buf, buf, sizeof(buf)) < 0);

    /* exit codes, crashes and stragglers */
    IT_SELF(tk_proc_spawn_n(2, it_self_exit_code, NULL, pids) == 0);
    IT_SELF(tk_proc_wait_all(pids, 2, 30000, codes) != 0);
    IT_SELF(codes[0] == 3 && codes[1] == 4);
    pids[0] = tk_proc_spawn(it_self_crash, 0, NULL);
    IT_SELF(tk_proc_wait(pids[0], 30000) == 128 + SIGSEGV);
    pids[0] = tk_proc_spawn(it_self_hang, 0, NULL);
    IT_SELF(tk_proc_wait(pids[0], 200) == -1);
    IT_SELF(tk_proc_tracked() == 0);
#ifdef IT_ASAN
    /* a leak in a child fails it */
    tk_print(
        "a LeakSanitizer report of leaked 1000-byte blocks follows: expected");
    pids[0] = tk_proc_spawn(it_self_leak, 0, NULL);
    IT_SELF(tk_proc_wait(pids[0], 30000) == 1);
#endif

    /* the store process, used from two children */
    IT_SELF(it_store_start(&store) == 0);
    if (store.pid > 0) {
        IT_SELF(tk_proc_spawn_n(2, it_self_store_client, &store, pids) == 0);
        IT_SELF(tk_proc_wait_all(pids, 2, 60000, NULL) == 0);
        IT_SELF(it_store_stop(&store) == 0);
    }
    IT_SELF(tk_proc_tracked() == 0);
    printf("%s: it_helpers self-test\n", failed ? "FAIL" : "PASS");
    return failed;
#undef IT_SELF
}
