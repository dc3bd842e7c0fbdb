/*
 * TRANS (mf_trans.h) across processes and hosts: 3 hosts (network
 * namespaces, tk_netns.h), the config store on host 0.
 *
 *   hosts: instances "h1:7000" and "h2:7000" on hosts 1 and 2 register a
 *          buffer (a read-only pattern half, a scratch half); clients on
 *          host 0 (both peers on other hosts) and on host 1 (one peer on
 *          its own host, one on another) read the patterns, write and
 *          read back single pieces of 1 B .. 8 MiB at odd offsets, the
 *          KV-block layout in one batch, and asynchronous batches to both
 *          peers at once: every byte checked;
 *   kill:  h2 dies by SIGKILL while a client reads and writes it and h1:
 *          every call returns within a bound, with the right bytes or a
 *          peer error; once h2's death is known only MF_ERR_PEER_LOST; h1
 *          keeps serving exact bytes throughout;
 *   device: a peer registers device memory and a client on another host
 *          reads it into host and device memory and writes it from both
 *          (the driver MF_CUDA_LIBRARY names: the fake one of
 *          tests/fakecuda in CI).
 *
 * Run as integration/it_trans[ucx-tcp] (ucx.auto = always, UCX_TLS=tcp),
 * peers on other hosts are reached over ucx.  A peer is reached over one
 * transport, and UCX without CUDA support (CI's) serves no device
 * buffer: the device test is tcp's alone there.
 */
#include "it_helpers.h"
#include "tk_cuda.h"
#include "tk_netns.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define HOSTS     3
#define MIB       (1024ull * 1024)
#define HALF      (24 * MIB)
#define BUF       (2 * HALF)
#define SLOT      (8 * MIB + 64 * 1024) /* a client's scratch in a peer */
#define MAX_CALL  30000                 /* ms: bound of every call */
#define WAIT_MS   60000
#define SEED(h)   (4000u + (h))
#define CLIENT_ID "c%d:7000"

static tk_netns_t g_net;
static it_store_t g_store;
static bool g_have_net;
static int g_pipe[2] = {-1, -1}; /* children say they are ready */

/* A byte to the parent. */
static void tr_signal(char c)
{
    TK_CHECK(write(g_pipe[1], &c, 1) == 1);
}

/* Waits for n bytes from the children. */
static int tr_wait(int n)
{
    struct pollfd pfd = {.fd = g_pipe[0], .events = POLLIN};
    char c;

    while (n > 0) {
        if (poll(&pfd, 1, WAIT_MS) != 1 || read(g_pipe[0], &c, 1) != 1) {
            return -1;
        }
        n--;
    }
    return 0;
}

static mf_trans_t *tr_open(const char *id)
{
    mf_bm_config_t cfg;
    mf_trans_t *t = NULL;

    it_bm_config(&cfg);
    TK_CHECK_OK(mf_init());
    TK_CHECK_OK(mf_trans_create(g_store.url, id, &cfg, &t));
    return t;
}

/* A peer instance on host `index`: its buffer, pattern then scratch,
 * served until SIGTERM (or SIGKILL). */
static int tr_peer(int index, void *arg)
{
    sigset_t set;
    char id[32];
    uint8_t *buf = aligned_alloc(4096, BUF);
    mf_trans_t *t;
    int sig;

    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    TK_CHECK(buf != NULL);
    tk_pattern_fill(buf, HALF, SEED(index), 0);
    memset(buf + HALF, 0, HALF);
    snprintf(id, sizeof(id), "h%d:7000", index);
    t = tr_open(id);
    TK_CHECK_OK(mf_trans_register(t, buf, BUF));
    /* where the clients find the buffer: a fixed address in every peer */
    TK_CHECK(buf != NULL);
    {
        mf_store_t *s;
        char key[64];
        uint64_t addr = (uint64_t)(uintptr_t)buf;

        TK_CHECK_OK(mf_store_connect(g_store.url, NULL, &s));
        snprintf(key, sizeof(key), "it/buf/%s", id);
        TK_CHECK_OK(mf_store_set(s, key, &addr, sizeof(addr), 0));
        mf_store_close(s);
    }
    tr_signal('p');
    sigwait(&set, &sig);
    mf_trans_destroy(t);
    mf_uninit();
    free(buf);
    return 0;
}

/* The buffer address of peer id. */
static uint64_t tr_peer_buf(const char *id)
{
    mf_store_t *s;
    char key[64];
    void *v;
    size_t len;
    uint64_t addr;

    TK_CHECK_OK(mf_store_connect(g_store.url, NULL, &s));
    snprintf(key, sizeof(key), "it/buf/%s", id);
    TK_CHECK_OK(mf_store_get(s, key, WAIT_MS, &v, &len));
    TK_CHECK(len == sizeof(addr));
    memcpy(&addr, v, sizeof(addr));
    free(v);
    mf_store_close(s);
    return addr;
}

/* A client's instance (CLIENT_ID of index) and its local memory; *b1_p,
 * *b2_p: the buffers of h1 and h2. */
static mf_trans_t *tr_client_open(int index, uint8_t **local_p, uint64_t *b1_p,
                                  uint64_t *b2_p)
{
    char id[32];
    mf_trans_t *t;

    *local_p = aligned_alloc(4096, BUF);
    TK_CHECK(*local_p != NULL);
    snprintf(id, sizeof(id), CLIENT_ID, index);
    t = tr_open(id);
    *b1_p = tr_peer_buf("h1:7000");
    *b2_p = tr_peer_buf("h2:7000");
    return t;
}

/* Everything a client does with one peer; slot: its scratch there. */
static void tr_exercise(mf_trans_t *t, const char *peer, uint64_t base,
                        int peer_host, int slot, uint8_t *local)
{
    static const size_t sizes[] = {1, 3, 4096, 65537, 1u << 20, 8u << 20};
    uint64_t scratch = base + HALF + (uint64_t)slot * SLOT;
    mf_trans_piece_t pieces[122];
    mf_status_t results[122];
    size_t off = 0;

    /* the pattern half, whole */
    TK_CHECK_OK(mf_trans_read(t, peer, local, base, HALF));
    TK_CHECK(tk_pattern_check(local, HALF, SEED(peer_host), 0) < 0);
    /* pieces of every size at odd offsets, written then read back */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], at = 17 * i + 3;

        tk_pattern_fill(local, n, 50 + i, 0);
        TK_CHECK_OK(mf_trans_write(t, peer, local, scratch + at, n));
        memset(local + HALF, 0, n);
        TK_CHECK_OK(mf_trans_read(t, peer, local + HALF, scratch + at, n));
        TK_CHECK(memcmp(local, local + HALF, n) == 0);
    }
    /* a KV block in one batch, there and back */
    for (int i = 0; i < 122; i++) {
        size_t n = i < 61 ? (64u << 10) : (8u << 10);

        pieces[i] = (mf_trans_piece_t){local + off, scratch + off, n};
        off += n;
    }
    tk_pattern_fill(local, off, 77 + (uint64_t)slot, 0);
    TK_CHECK_OK(mf_trans_batch(t, peer, MF_TRANS_WRITE, pieces, 122, results));
    for (int i = 0; i < 122; i++) {
        pieces[i].local = (uint8_t *)pieces[i].local + HALF;
    }
    memset(local + HALF, 0, off);
    TK_CHECK_OK(mf_trans_batch(t, peer, MF_TRANS_READ, pieces, 122, results));
    TK_CHECK(memcmp(local, local + HALF, off) == 0);
}

/* A client on host `index`: every exercise with both peers, then two
 * asynchronous batches in flight at once, one to each. */
static int tr_client(int index, void *arg)
{
    mf_trans_req_t *r1, *r2;
    mf_trans_piece_t p1, p2;
    uint64_t b1, b2;
    uint8_t *local;
    mf_trans_t *t;

    (void)arg;
    t = tr_client_open(index, &local, &b1, &b2);
    tr_exercise(t, "h1:7000", b1, 1, index, local);
    tr_exercise(t, "h2:7000", b2, 2, index, local);
    p1 = (mf_trans_piece_t){local, b1, HALF};
    p2 = (mf_trans_piece_t){local + HALF, b2, HALF};
    TK_CHECK_OK(mf_trans_submit(t, "h1:7000", MF_TRANS_READ, &p1, 1, &r1));
    TK_CHECK_OK(mf_trans_submit(t, "h2:7000", MF_TRANS_READ, &p2, 1, &r2));
    TK_CHECK_OK(mf_trans_wait(r2, MAX_CALL, NULL));
    TK_CHECK_OK(mf_trans_wait(r1, MAX_CALL, NULL));
    TK_CHECK(tk_pattern_check(local, HALF, SEED(1), 0) < 0);
    TK_CHECK(tk_pattern_check(local + HALF, HALF, SEED(2), 0) < 0);
    mf_trans_destroy(t);
    mf_uninit();
    free(local);
    return 0;
}

static int tr_start_peers(pid_t *peers)
{
    for (int h = 1; h <= 2; h++) {
        peers[h] = tk_netns_spawn(&g_net, h, tr_peer, h, NULL);
        if (peers[h] < 0) {
            return -1;
        }
    }
    return tr_wait(2);
}

static void test_hosts(void **state)
{
    pid_t peers[HOSTS] = {-1, -1, -1}, clients[2];
    int codes[2];

    (void)state;
    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    assert_int_equal(pipe(g_pipe), 0);
    assert_int_equal(tr_start_peers(peers), 0);
    /* host 0: both peers elsewhere; host 1: h1 on its own host */
    clients[0] = tk_netns_spawn(&g_net, 0, tr_client, 0, NULL);
    clients[1] = tk_netns_spawn(&g_net, 1, tr_client, 1, NULL);
    assert_true(clients[0] > 0 && clients[1] > 0);
    assert_int_equal(tk_proc_wait_all(clients, 2, 4 * WAIT_MS, codes), 0);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 0);
    for (int h = 1; h <= 2; h++) {
        assert_int_equal(tk_proc_stop(peers[h], SIGTERM, WAIT_MS), 0);
    }
    close(g_pipe[0]);
    close(g_pipe[1]);
    assert_int_equal(it_store_stop(&g_store), 0);
}

/* The client of the kill: reads and writes h2 and h1 in turn until h2's
 * death is known and h1 served 20 more rounds. */
static int tr_kill_client(int index, void *arg)
{
    unsigned after = 0, lost = 0, oks = 0;
    uint64_t b1, b2, start;
    uint8_t *local;
    mf_trans_t *t;
    mf_status_t st;

    (void)arg;
    t = tr_client_open(index, &local, &b1, &b2);
    for (unsigned round = 0; after < 20; round++) {
        uint64_t scratch2 = b2 + HALF;

        if (round == 3) {
            tr_signal('k'); /* running: kill h2 now */
        }
        start = tk_time_ms();
        st = round % 2 == 0
                 ? mf_trans_read(t, "h2:7000", local, b2, 8 * MIB)
                 : mf_trans_write(t, "h2:7000", local, scratch2, 8 * MIB);
        TK_CHECK(tk_time_ms() - start < MAX_CALL);
        if (st == MF_OK) {
            TK_CHECK(lost == 0); /* nothing succeeds once it is known dead */
            TK_CHECK(round % 2 == 1 ||
                     tk_pattern_check(local, 8 * MIB, SEED(2), 0) < 0);
            oks++;
        } else {
            if (!mf_status_is_peer_error(st)) {
                tk_print("client: h2 call %u: %s", round, mf_status_name(st));
            }
            TK_CHECK(mf_status_is_peer_error(st));
            lost += st == MF_ERR_PEER_LOST;
        }
        /* h1 serves exact bytes all along */
        start = tk_time_ms();
        TK_CHECK_OK(mf_trans_read(t, "h1:7000", local, b1, 8 * MIB));
        TK_CHECK(tk_time_ms() - start < MAX_CALL);
        TK_CHECK(tk_pattern_check(local, 8 * MIB, SEED(1), 0) < 0);
        after += lost > 0;
        TK_CHECK(round < 100000);
    }
    tk_print("client: %u calls to h2 succeeded before its death, then "
             "MF_ERR_PEER_LOST",
             oks);
    mf_trans_destroy(t);
    mf_uninit();
    free(local);
    return 0;
}

static void test_kill(void **state)
{
    pid_t peers[HOSTS] = {-1, -1, -1}, client;

    (void)state;
    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    assert_int_equal(pipe(g_pipe), 0);
    assert_int_equal(tr_start_peers(peers), 0);
    client = tk_netns_spawn(&g_net, 0, tr_kill_client, 0, NULL);
    assert_true(client > 0);
    assert_int_equal(tr_wait(1), 0);
    kill(peers[2], SIGKILL);
    assert_int_equal(tk_proc_wait(peers[2], WAIT_MS), 128 + SIGKILL);
    assert_int_equal(tk_proc_wait(client, 4 * WAIT_MS), 0);
    assert_int_equal(tk_proc_stop(peers[1], SIGTERM, WAIT_MS), 0);
    close(g_pipe[0]);
    close(g_pipe[1]);
    assert_int_equal(it_store_stop(&g_store), 0);
}

#define DEV_SIZE (4 * MIB)

/* h1 with a device buffer holding pattern SEED(1). */
static int tr_dev_peer(int index, void *arg)
{
    uint8_t *host = malloc(DEV_SIZE);
    char why[256];
    sigset_t set;
    mf_trans_t *t;
    void *dev;
    int sig;

    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    TK_CHECK(host != NULL && tk_cuda_init(why, sizeof(why)) == 0);
    dev = tk_cuda_alloc(DEV_SIZE);
    TK_CHECK(dev != NULL);
    tk_pattern_fill(host, DEV_SIZE, SEED(index), 0);
    TK_CHECK(tk_cuda_copy(dev, host, DEV_SIZE) == 0);
    t = tr_open("h1:7000");
    TK_CHECK_OK(mf_trans_register(t, dev, DEV_SIZE));
    {
        uint64_t addr = (uint64_t)(uintptr_t)dev;
        mf_store_t *s;

        TK_CHECK_OK(mf_store_connect(g_store.url, NULL, &s));
        TK_CHECK_OK(mf_store_set(s, "it/buf/h1:7000", &addr, sizeof(addr), 0));
        mf_store_close(s);
    }
    tr_signal('p');
    sigwait(&set, &sig);
    mf_trans_destroy(t);
    mf_uninit();
    tk_cuda_free(dev);
    free(host);
    return 0;
}

/* Reads h1's device buffer into host and device memory, writes it from
 * device memory, reads that back. */
static int tr_dev_client(int index, void *arg)
{
    uint8_t *host = malloc(2 * DEV_SIZE);
    char why[256];
    mf_trans_t *t;
    uint64_t peer;
    void *dev;

    (void)arg;
    TK_CHECK(host != NULL && tk_cuda_init(why, sizeof(why)) == 0);
    dev = tk_cuda_alloc(DEV_SIZE);
    TK_CHECK(dev != NULL);
    t = tr_open(index == 0 ? "c0:7000" : "c1:7000");
    peer = tr_peer_buf("h1:7000");
    /* device (there) -> host (here) */
    TK_CHECK_OK(mf_trans_read(t, "h1:7000", host, peer, DEV_SIZE));
    TK_CHECK(tk_pattern_check(host, DEV_SIZE, SEED(1), 0) < 0);
    /* device -> device, then device -> host to look */
    TK_CHECK_OK(mf_trans_read(t, "h1:7000", dev, peer, DEV_SIZE));
    memset(host, 0, DEV_SIZE);
    TK_CHECK(tk_cuda_copy(host, dev, DEV_SIZE) == 0);
    TK_CHECK(tk_pattern_check(host, DEV_SIZE, SEED(1), 0) < 0);
    /* a new pattern from device memory here into the peer's, at an odd
     * offset, and back into host memory */
    tk_pattern_fill(host, DEV_SIZE, 99, 0);
    TK_CHECK(tk_cuda_copy(dev, host, DEV_SIZE) == 0);
    TK_CHECK_OK(mf_trans_write(t, "h1:7000", dev, peer + 1, DEV_SIZE - 1));
    TK_CHECK_OK(
        mf_trans_read(t, "h1:7000", host + DEV_SIZE, peer + 1, DEV_SIZE - 1));
    TK_CHECK(memcmp(host, host + DEV_SIZE, DEV_SIZE - 1) == 0);
    mf_trans_destroy(t);
    mf_uninit();
    tk_cuda_free(dev);
    free(host);
    return 0;
}

static void test_device(void **state)
{
    pid_t peer, client;
    char why[256];

    (void)state;
    if (tk_cuda_probe(why, sizeof(why)) != 0) {
        tk_print("no device memory here (%s): skipped", why);
        skip();
    }
    if (getenv("MF_UCX_AUTO") != NULL &&
        strcmp(getenv("MF_UCX_AUTO"), "always") == 0) {
        tk_print("peers over ucx, which serves no device buffer without "
                 "UCX's CUDA support: skipped");
        skip();
    }
    assert_int_equal(it_store_start_host(&g_net, 0, &g_store), 0);
    assert_int_equal(pipe(g_pipe), 0);
    peer = tk_netns_spawn(&g_net, 1, tr_dev_peer, 1, NULL);
    assert_true(peer > 0);
    assert_int_equal(tr_wait(1), 0);
    client = tk_netns_spawn(&g_net, 2, tr_dev_client, 0, NULL);
    assert_true(client > 0);
    assert_int_equal(tk_proc_wait(client, 4 * WAIT_MS), 0);
    assert_int_equal(tk_proc_stop(peer, SIGTERM, WAIT_MS), 0);
    close(g_pipe[0]);
    close(g_pipe[1]);
    assert_int_equal(it_store_stop(&g_store), 0);
}

static int tr_setup(void **state)
{
    (void)state;
    if (tk_netns_create(&g_net, HOSTS) != 0) {
        return -1;
    }
    g_have_net = true;
    return 0;
}

static int tr_teardown(void **state)
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
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_device),
    };

#ifdef IT_FAKECUDA_PATH
    /* the fake driver, unless a driver is named (a real one on a GPU) */
    setenv("MF_CUDA_LIBRARY", IT_FAKECUDA_PATH, 0);
#endif
    tk_netns_require();
    return tk_group_run(tests, tr_setup, tr_teardown);
}
