/*
 * What is the ucx transport's own (the contract is test_tl.c's): its
 * settings, its choice under transport = auto, and what happens to copies
 * when the peer stops answering, comes back, or dies.
 *
 * The peer is a forked child that registers a buffer of its own (user
 * memory served to peers) and hands its address and key to the parent
 * through a pipe, then lets its interface's progress thread serve until
 * it is stopped or killed; the parent copies, over UCX's tcp (ucx.tls),
 * with ucx.timeout_ms = 1 s.
 *
 * Skipped (exit 77) where the build has no ucx transport or UCX cannot be
 * loaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_tl_comp.h"
#include "tk_group.h"
#include "tk_log.h"
#include "tk_pattern.h"
#include "tk_proc.h"
#include "tk_sock.h"

#include "tl/tl.h"
#include "util/log.h"
#include "util/misc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_BUF    (4u << 20)
#define TEST_SEED   11
#define TEST_BLOB   1024
#define TEST_SET    "ucx.tls=tcp\nucx.timeout_ms=1s\n"
#define TEST_WAIT_S 30 /* a peer's life: the parent kills it sooner */

static const mf_tl_ops_t *test_ops;
static tk_log_t test_log;

static mf_status_t test_open(const char *settings, bool auto_choice,
                             mf_tl_iface_t **iface_p)
{
    mf_tl_params_t params;
    mf_status_t status;
    void *config;

    status = mf_tl_config_parse(test_ops, settings, &config);
    if (status != MF_OK) {
        return status;
    }
    memset(&params, 0, sizeof(params));
    params.host_id = mf_host_id();
    params.config = config;
    params.auto_choice = auto_choice;
    status = test_ops->iface_open(&params, iface_p);
    free(config);
    return status;
}

/* --------------------------------------------------------- settings */

/* Bad values are refused when set, naming the key; good ones stored. */
static void test_settings(void **state)
{
    static const char *const bad[][2] = {
        {"ucx.tls", "rc;sm"},       {"ucx.tls", "tcp x"},
        {"ucx.net_devices", "a=b"}, {"ucx.auto", "sometimes"},
        {"ucx.timeout_ms", "10ms"}, {"ucx.chunk_size", "1K"},
        {"ucx.chunk_size", "1G"},
    };
    char settings[512] = "", value[64];

    tk_log_start(&test_log, 0);
    for (size_t i = 0; i < MF_ARRAY_SIZE(bad); i++) {
        assert_int_equal(mf_tl_config_set(settings, sizeof(settings), bad[i][0],
                                          bad[i][1], "test"),
                         MF_ERR_CONFIG);
        assert_string_equal(settings, "");
    }
    /* each refusal says why */
    assert_true(tk_log_count(&test_log, MF_LOG_ERROR) >= MF_ARRAY_SIZE(bad));
    tk_log_stop(&test_log);
    assert_int_equal(mf_tl_config_set(settings, sizeof(settings), "ucx.tls",
                                      "rc_x,^ud,sm", "test"),
                     MF_OK);
    assert_int_equal(mf_tl_config_set(settings, sizeof(settings), "ucx.auto",
                                      "never", "test"),
                     MF_OK);
    assert_int_equal(
        mf_tl_config_get(settings, "ucx.tls", value, sizeof(value)), MF_OK);
    assert_string_equal(value, "rc_x,^ud,sm");
    assert_int_equal(
        mf_tl_config_get(settings, "ucx.timeout_ms", value, sizeof(value)),
        MF_OK);
    assert_string_equal(value, "30000"); /* milliseconds */
}

/* Under transport = auto: "never" declines, "always" opens, "rdma" opens
 * only where UCX reaches an RDMA device; a forced open ignores it. */
static void test_auto(void **state)
{
    mf_tl_iface_t *iface = NULL;
    bool rdma = access("/sys/class/infiniband", F_OK) == 0;
    mf_status_t status;

    assert_int_equal(test_open("ucx.auto=never\n", true, &iface),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(test_open("ucx.auto=always\n", true, &iface), MF_OK);
    test_ops->iface_close(iface);
    assert_int_equal(test_open("ucx.auto=never\n", false, &iface), MF_OK);
    test_ops->iface_close(iface);
    status = test_open("", true, &iface);
    if (status == MF_OK) {
        assert_true(rdma); /* it found an RDMA device */
        test_ops->iface_close(iface);
    } else {
        assert_int_equal(status, MF_ERR_UNSUPPORTED);
    }
}

/* ------------------------------------------------------------ the peer */

static void test_write_all(int fd, const void *buf, size_t len)
{
    TK_CHECK(write(fd, buf, len) == (ssize_t)len);
}

/* All of len bytes from the peer's pipe. */
static void test_read_all(int fd, void *buf, size_t len)
{
    assert_true(tk_sock_read_exact(fd, buf, len, TEST_WAIT_S * 1000));
}

/* The child: serves a patterned buffer until killed. */
static void test_peer_main(int out_fd)
{
    uint8_t addr[TEST_BLOB], rkey[TEST_BLOB];
    mf_tl_mem_params_t mp = {0};
    size_t addr_len, rkey_len;
    mf_tl_iface_t *iface;
    mf_tl_memh_t *memh;
    uint64_t base;
    uint8_t *buf;

    tk_role_set("peer");
    buf = aligned_alloc(4096, TEST_BUF);
    TK_CHECK(buf != NULL);
    tk_pattern_fill(buf, TEST_BUF, TEST_SEED, 0);
    TK_CHECK_OK(test_open(TEST_SET, false, &iface));
    mp.addr = buf;
    mp.size = TEST_BUF;
    mp.serve = true;
    mp.kind = MF_MEM_KIND_HOST;
    TK_CHECK_OK(test_ops->mem_reg(iface, &mp, &memh));
    TK_CHECK_OK(
        test_ops->iface_addr_pack(iface, addr, sizeof(addr), &addr_len));
    TK_CHECK_OK(
        test_ops->rkey_pack(iface, memh, rkey, sizeof(rkey), &rkey_len));
    base = (uint64_t)(uintptr_t)buf;
    test_write_all(out_fd, &base, sizeof(base));
    test_write_all(out_fd, &addr_len, sizeof(addr_len));
    test_write_all(out_fd, addr, addr_len);
    test_write_all(out_fd, &rkey_len, sizeof(rkey_len));
    test_write_all(out_fd, rkey, rkey_len);
    /* the progress thread serves; the parent ends this process */
    sleep(TEST_WAIT_S);
    tk_proc_exit(1);
}

typedef struct test_conn {
    pid_t pid;
    uint64_t base;
    mf_tl_iface_t *iface;
    mf_tl_ep_t *ep;
    mf_tl_rkey_t *rkey;
} test_conn_t;

/* Starts the peer, then opens our interface and reaches its buffer. */
static void test_connect(test_conn_t *c)
{
    uint8_t addr[TEST_BLOB], rkey[TEST_BLOB];
    size_t addr_len, rkey_len;
    int fds[2];

    memset(c, 0, sizeof(*c));
    assert_int_equal(pipe(fds), 0);
    /* forked before any thread of ours or UCX's starts here */
    c->pid = tk_proc_fork();
    if (c->pid == 0) {
        close(fds[0]);
        test_peer_main(fds[1]);
    }
    close(fds[1]);
    test_read_all(fds[0], &c->base, sizeof(c->base));
    test_read_all(fds[0], &addr_len, sizeof(addr_len));
    assert_true(addr_len <= sizeof(addr));
    test_read_all(fds[0], addr, addr_len);
    test_read_all(fds[0], &rkey_len, sizeof(rkey_len));
    assert_true(rkey_len <= sizeof(rkey));
    test_read_all(fds[0], rkey, rkey_len);
    close(fds[0]);
    assert_int_equal(test_open(TEST_SET, false, &c->iface), MF_OK);
    assert_int_equal(test_ops->ep_create(c->iface, addr, addr_len, &c->ep),
                     MF_OK);
    assert_int_equal(test_ops->rkey_unpack(c->iface, rkey, rkey_len, c->base,
                                           TEST_BUF, &c->rkey),
                     MF_OK);
}

static void test_disconnect(test_conn_t *c)
{
    if (c->pid > 0) {
        tk_proc_kill(c->pid);
    }
    test_ops->rkey_release(c->iface, c->rkey);
    test_ops->ep_destroy(c->ep);
    test_ops->iface_close(c->iface);
}

/* A get of size bytes at off of the peer's buffer; its final status. */
static mf_status_t test_get(test_conn_t *c, void *dst, uint64_t off,
                            size_t size)
{
    test_comp_t tc;

    test_comp_init(&tc);
    return test_comp_wait(
        NULL, &tc,
        test_ops->get(c->ep, dst, c->base + off, size, c->rkey, &tc.super));
}

static mf_status_t test_put(test_conn_t *c, const void *src, uint64_t off,
                            size_t size)
{
    test_comp_t tc;

    test_comp_init(&tc);
    return test_comp_wait(
        NULL, &tc,
        test_ops->put(c->ep, src, c->base + off, size, c->rkey, &tc.super));
}

/* ------------------------------------------------------------ failures */

/*
 * The peer stops (SIGSTOP): a get in flight fails with MF_ERR_PEER_LOST
 * once ucx.timeout_ms passed without a completion (the watchdog), not
 * later than a few of its periods after; the peer resumes: the next copies
 * rebuild the endpoint and move the right bytes, both ways.
 */
static void test_stopped_peer(void **state)
{
    uint8_t *buf = malloc(TEST_BUF);
    test_conn_t c;
    uint64_t t0, waited;
    mf_status_t status;

    assert_non_null(buf);
    test_connect(&c);
    assert_int_equal(test_get(&c, buf, 0, TEST_BUF), MF_OK);
    assert_true(tk_pattern_check(buf, TEST_BUF, TEST_SEED, 0) < 0);

    tk_log_start(&test_log, 0);
    assert_int_equal(tk_proc_freeze(c.pid), 0);
    t0 = mf_time_ms();
    status = test_get(&c, buf, 0, TEST_BUF);
    waited = mf_time_ms() - t0;
    tk_print("a get from the stopped peer: %s after %llu ms",
             mf_status_name(status), (unsigned long long)waited);
    assert_int_equal(status, MF_ERR_PEER_LOST);
    assert_true(waited >= 900 && waited < 5000);
    assert_true(tk_log_find(&test_log, "ucx.timeout_ms"));
    tk_log_stop(&test_log);

    assert_int_equal(kill(c.pid, SIGCONT), 0);
    memset(buf, 0, TEST_BUF);
    assert_int_equal(test_get(&c, buf, 4096, 65536), MF_OK);
    assert_true(tk_pattern_check(buf, 65536, TEST_SEED, 4096) < 0);
    tk_pattern_fill(buf, 8192, TEST_SEED + 1, 0);
    assert_int_equal(test_put(&c, buf, 100, 8192), MF_OK);
    memset(buf, 0, 8192);
    assert_int_equal(test_get(&c, buf, 100, 8192), MF_OK);
    assert_true(tk_pattern_check(buf, 8192, TEST_SEED + 1, 0) < 0);
    test_disconnect(&c);
    free(buf);
}

/* The peer dies (SIGKILL) while gets run: each ends with the right bytes
 * or a peer error, within a bound; after the death, only peer errors. */
static void test_killed_peer(void **state)
{
    uint8_t *buf = malloc(TEST_BUF);
    unsigned ok = 0, lost = 0;
    mf_status_t status;
    test_conn_t c;
    uint64_t t0;

    assert_non_null(buf);
    test_connect(&c);
    tk_log_start(&test_log, 0);
    tk_log_allow_errors(&test_log, true);
    for (int i = 0; i < 40; i++) {
        if (i == 5) {
            tk_proc_kill(c.pid); /* SIGKILL, reaped */
            c.pid = 0;
        }
        t0 = mf_time_ms();
        status = test_get(&c, buf, 0, TEST_BUF);
        assert_true(mf_time_ms() - t0 < 5000);
        if (status == MF_OK) {
            assert_true(tk_pattern_check(buf, TEST_BUF, TEST_SEED, 0) < 0);
            assert_int_equal(lost, 0);
            ok++;
        } else {
            assert_true(mf_status_is_peer_error(status));
            lost++;
        }
    }
    tk_log_stop(&test_log);
    tk_print("%u gets before the death, %u peer errors", ok, lost);
    assert_true(ok >= 5 && lost >= 30);
    test_disconnect(&c);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_stopped_peer),
        cmocka_unit_test(test_killed_peer),
    };
    mf_tl_iface_t *iface;

    test_ops = mf_tl_find("ucx");
    if (test_ops == NULL) {
        printf("SKIP: this build has no ucx transport\n");
        return 77;
    }
    mf_log_set_level(MF_LOG_OFF);
    if (test_open("", false, &iface) != MF_OK) {
        printf("SKIP: UCX cannot be loaded here\n");
        return 77;
    }
    test_ops->iface_close(iface);
    mf_log_set_level(MF_LOG_WARN);
    return tk_group_run(tests, NULL, NULL);
}
