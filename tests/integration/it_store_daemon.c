/*
 * The mf-store daemon binary: starts on a free port of 127.0.0.1, serves
 * set/get/add/cas/barrier to two client processes, and exits 0 on SIGTERM
 * or SIGINT.  A port already taken and bad options make it fail.  Started
 * with a low soft limit of open files, it raises it to the hard limit.
 *
 * The binary is $MF_STORE_BIN or, by default, tools/mf-store of the same
 * build tree (../../tools/mf-store from this test's directory).
 */
#include "it_helpers.h"

#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char sd_bin[PATH_MAX];
static char sd_url[64];

static int sd_find_binary(void)
{
    const char *env = getenv("MF_STORE_BIN");

    if (env != NULL && env[0] != '\0') {
        snprintf(sd_bin, sizeof(sd_bin), "%s", env);
    } else if (tk_proc_exe_near("../../tools/mf-store", sd_bin,
                                sizeof(sd_bin)) != 0) {
        return -1;
    }
    if (access(sd_bin, X_OK) != 0) {
        tk_print("mf-store binary not found at %s (set MF_STORE_BIN)", sd_bin);
        return -1;
    }
    return 0;
}

/* Starts the daemon (with a soft limit of nofile open files unless 0);
 * returns its pid and the port it reports on stdout ("mf-store listening
 * on host:port"). */
static pid_t sd_start_nofile(const char *port_arg, unsigned nofile,
                             uint16_t *port_p)
{
    char *argv[] = {sd_bin, "-H", "127.0.0.1", "-p", (char *)port_arg, NULL};
    char line[256];
    const char *colon;
    unsigned long port;
    int fd = -1;
    pid_t pid;

    pid = tk_proc_exec(argv, nofile, &fd);
    if (pid < 0) {
        return -1;
    }
    if (tk_fd_read_line(fd, line, sizeof(line), 30000) != 0 ||
        strncmp(line, "mf-store listening on ", 22) != 0 ||
        (colon = strrchr(line, ':')) == NULL) {
        tk_print("mf-store did not report its address");
        close(fd);
        kill(pid, SIGKILL);
        tk_proc_wait(pid, 10000);
        return -1;
    }
    close(fd);
    port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535) {
        kill(pid, SIGKILL);
        tk_proc_wait(pid, 10000);
        return -1;
    }
    *port_p = (uint16_t)port;
    return pid;
}

static pid_t sd_start(const char *port_arg, uint16_t *port_p)
{
    return sd_start_nofile(port_arg, 0, port_p);
}

static int sd_client(int index, void *arg)
{
    mf_store_t *store = NULL;
    void *value = NULL, *cur = NULL;
    size_t len = 0, cur_len = 0;
    char key[32];
    int64_t sum = 0;
    int ret = 1;

    tk_role_set("client %d", index);
    TK_CHECK_OK_GOTO(mf_store_connect(sd_url, NULL, &store));
    snprintf(key, sizeof(key), "from/%d", index);
    TK_CHECK_OK_GOTO(mf_store_set(store, key, "value", 5, 0));
    /* each reads the other's key, waiting for it */
    snprintf(key, sizeof(key), "from/%d", 1 - index);
    TK_CHECK_OK_GOTO(mf_store_get(store, key, 30000, &value, &len));
    TK_CHECK_GOTO(len == 5 && memcmp(value, "value", 5) == 0, "wrong value");
    TK_CHECK_OK_GOTO(mf_store_add(store, "counter", 10 + index, &sum));
    TK_CHECK_OK_GOTO(mf_store_barrier(store, "after-add", 2, 30000));
    TK_CHECK_OK_GOTO(mf_store_add(store, "counter", 0, &sum));
    TK_CHECK_GOTO(sum == 21, "counter %lld", (long long)sum);
    /* exactly one cas from absent wins */
    if (mf_store_cas(store, "winner", NULL, 0, index ? "1" : "0", 1, &cur,
                     &cur_len) == MF_OK) {
        TK_CHECK_OK_GOTO(mf_store_add(store, "wins", 1, &sum));
    }
    TK_CHECK_OK_GOTO(mf_store_barrier(store, "after-cas", 2, 30000));
    TK_CHECK_OK_GOTO(mf_store_add(store, "wins", 0, &sum));
    TK_CHECK_GOTO(sum == 1, "%lld cas winners", (long long)sum);
    TK_CHECK_ST_GOTO(mf_store_get(store, "absent", 0, &cur, &cur_len),
                     MF_ERR_NOT_FOUND);
    ret = 0;
fail:
    free(value);
    free(cur);
    if (store != NULL) {
        mf_store_close(store);
    }
    return ret;
}

static void sd_serve_and_stop(const char *port_arg, int sig)
{
    pid_t pids[2];
    uint16_t port = 0;
    pid_t daemon;
    int ret, code;

    assert_int_equal(sd_find_binary(), 0);
    daemon = sd_start(port_arg, &port);
    assert_true(daemon > 0);
    if (strcmp(port_arg, "0") != 0) {
        assert_int_equal(port, (uint16_t)atoi(port_arg));
    }
    snprintf(sd_url, sizeof(sd_url), "tcp://127.0.0.1:%u", (unsigned)port);
    ret = tk_proc_spawn_n(2, sd_client, NULL, pids);
    if (ret == 0) {
        ret = tk_proc_wait_all(pids, 2, 120000, NULL);
    }
    kill(daemon, sig);
    code = tk_proc_wait(daemon, 30000);
    assert_int_equal(ret, 0);
    assert_int_equal(code, 0);
}

static void test_any_port_sigterm(void **state)
{
    sd_serve_and_stop("0", SIGTERM);
}

static void test_given_port_sigint(void **state)
{
    char arg[16];
    uint16_t port;

    assert_int_equal(tk_port_free(&port), 0);
    snprintf(arg, sizeof(arg), "%u", (unsigned)port);
    sd_serve_and_stop(arg, SIGINT);
}

static void test_failures(void **state)
{
    char arg[16];
    char *bad_opt[] = {sd_bin, "--no-such-option", NULL};
    char *bad_set[] = {sd_bin, "--set", "max_key_size=0", NULL};
    char *taken[] = {sd_bin, "-H", "127.0.0.1", "-p", arg, NULL};
    uint16_t port = 0;
    pid_t first, pid;

    assert_int_equal(sd_find_binary(), 0);
    pid = tk_proc_exec(bad_opt, 0, NULL);
    assert_true(pid > 0);
    assert_int_equal(tk_proc_wait(pid, 30000), 2);
    pid = tk_proc_exec(bad_set, 0, NULL);
    assert_true(pid > 0);
    assert_int_equal(tk_proc_wait(pid, 30000), 2);

    /* a second daemon on the port of the first one fails to start */
    first = sd_start("0", &port);
    assert_true(first > 0);
    snprintf(arg, sizeof(arg), "%u", (unsigned)port);
    pid = tk_proc_exec(taken, 0, NULL);
    assert_true(pid > 0);
    assert_int_equal(tk_proc_wait(pid, 30000), 1);
    kill(first, SIGTERM);
    assert_int_equal(tk_proc_wait(first, 30000), 0);
}

/* Every connection is a descriptor: the daemon serves as many as the
 * hard limit allows. */
static void test_open_files_limit(void **state)
{
    uint64_t soft = 0, hard = 0;
    uint16_t port = 0;
    pid_t daemon;

    assert_int_equal(sd_find_binary(), 0);
    daemon = sd_start_nofile("0", 64, &port);
    assert_true(daemon > 0);
    assert_int_equal(tk_proc_nofile(daemon, &soft, &hard), 0);
    assert_true(soft == hard);
    kill(daemon, SIGTERM);
    assert_int_equal(tk_proc_wait(daemon, 30000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_port_sigterm),
        cmocka_unit_test(test_given_port_sigint),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_open_files_limit),
    };

    return tk_group_run(tests, NULL, NULL);
}
