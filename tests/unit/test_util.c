/*
 * Unit tests of the util layer: status strings, logging level and sink,
 * config tables (defaults, files, environment, errors, help), containers,
 * URL parsing, sockets (listen, connect, address strings, the open files
 * limit, and the guard of a listener whose accept() fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"

#include "util/config.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/codec.h"
#include "util/misc.h"
#include "util/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- log capture ---- */

static int test_setup_log(void **state)
{
    static tk_log_t log;

    tk_log_start(&log, 0);
    mf_log_set_level(MF_LOG_WARN);
    *state = &log;
    return 0;
}

static int test_teardown_log(void **state)
{
    tk_log_stop(*state);
    return 0;
}

static void test_status_strings(void **state)
{
    (void)state;
    assert_string_equal(mf_status_name(MF_OK), "MF_OK");
    assert_string_equal(mf_status_name(MF_ERR_TIMEOUT), "MF_ERR_TIMEOUT");
    assert_string_equal(mf_status_name((mf_status_t)-77), "MF_ERR_UNKNOWN");
    assert_non_null(mf_status_str((mf_status_t)12345));
    for (int s = 1; s >= -200; s--) {
        assert_non_null(mf_status_name((mf_status_t)s));
        assert_non_null(mf_status_str((mf_status_t)s));
    }
    assert_true(mf_status_is_peer_error(MF_ERR_PEER_LOST));
    assert_true(mf_status_is_peer_error(MF_ERR_CONN_RESET));
    assert_false(mf_status_is_peer_error(MF_ERR_INVALID));
    assert_false(mf_status_is_peer_error(MF_OK));
}

static int test_side_effects;

static int test_side_effect(void)
{
    return ++test_side_effects;
}

static void test_log_levels(void **state)
{
    tk_log_t *log = *state;

    mf_debug("not shown %d", test_side_effect());
    assert_int_equal(tk_log_total(log), 0);
    assert_int_equal(test_side_effects, 0); /* arguments not evaluated */
    mf_warn("shown %d", 42);
    assert_int_equal(tk_log_total(log), 1);
    assert_int_equal(log->last_level, MF_LOG_WARN);
    assert_string_equal(tk_log_last(log), "shown 42");

    mf_log_set_level(MF_LOG_TRACE);
    mf_trace("trace");
    assert_int_equal(tk_log_total(log), 2);
    mf_log_set_level(MF_LOG_OFF);
    mf_error("off");
    assert_int_equal(tk_log_total(log), 2);

    assert_int_equal(mf_log_level_parse("DEBUG"), MF_LOG_DEBUG);
    assert_int_equal(mf_log_level_parse("warning"), MF_LOG_WARN);
    assert_int_equal(mf_log_level_parse("loud"), -1);
    assert_int_equal(mf_log_level_parse(NULL), -1);

    setenv("MF_LOG_LEVEL", "info", 1);
    mf_log_init_from_env();
    assert_int_equal(mf_log_get_level(), MF_LOG_INFO);
    unsetenv("MF_LOG_LEVEL");
}

static void test_log_keeps_errno(void **state)
{
    tk_log_t *log = *state;

    errno = ENOENT;
    mf_error("open failed: %m");
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(tk_log_last(log), "No such file"));
}

/* ---- config ---- */

typedef struct test_cfg {
    char name[16];
    bool enabled;
    uint32_t threads;
    uint64_t base;
    uint64_t size;
    uint32_t timeout;
    int level;
} test_cfg_t;

static const mf_cfg_entry_t test_cfg_entries[] = {
    {"name", MF_CFG_STR, offsetof(test_cfg_t, name), 16, "pool", 0, 0,
     "pool name"},
    {"enabled", MF_CFG_BOOL, offsetof(test_cfg_t, enabled), 0, "yes", 0, 0,
     "enable it"},
    {"threads", MF_CFG_U32, offsetof(test_cfg_t, threads), 0, "2", 1, 64,
     "threads"},
    {"base", MF_CFG_U64, offsetof(test_cfg_t, base), 0, "0x1000", 0, 0,
     "base address"},
    {"size", MF_CFG_SIZE, offsetof(test_cfg_t, size), 0, "1M", 0, 0, "size"},
    {"timeout", MF_CFG_MS, offsetof(test_cfg_t, timeout), 0, "2s", 0, 0,
     "timeout"},
    {"log_level", MF_CFG_LOGLVL, offsetof(test_cfg_t, level), 0, "warn", 0, 0,
     "level"},
};

static const mf_cfg_alias_t test_cfg_aliases[] = {
    {"nthreads", "threads"},
};

static const mf_cfg_table_t test_cfg_table = {
    "test",           "MFTEST_",
    test_cfg_entries, MF_CFG_COUNT(test_cfg_entries),
    test_cfg_aliases, MF_CFG_COUNT(test_cfg_aliases),
};

static void test_cfg_defaults_and_set(void **state)
{
    tk_log_t *log = *state;
    test_cfg_t cfg;

    memset(&cfg, 0xff, sizeof(cfg));
    assert_int_equal(mf_cfg_set_defaults(&test_cfg_table, &cfg), MF_OK);
    assert_string_equal(cfg.name, "pool");
    assert_true(cfg.enabled);
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(cfg.base, 0x1000);
    assert_int_equal(cfg.size, 1u << 20);
    assert_int_equal(cfg.timeout, 2000);
    assert_int_equal(cfg.level, MF_LOG_WARN);

    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "size", "3 GiB"), MF_OK);
    assert_int_equal(cfg.size, 3ull << 30);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "timeout", "250ms"),
                     MF_OK);
    assert_int_equal(cfg.timeout, 250);

    /* Every bad value is refused, leaves the field and says why. */
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "threads", "0"),
                     MF_ERR_CONFIG);
    assert_non_null(strstr(tk_log_last(log), "out of range"));
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "threads", "65"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "threads", "-1"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "threads", "4x"),
                     MF_ERR_CONFIG);
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "size", "5Q"),
                     MF_ERR_CONFIG);
    assert_int_equal(
        mf_cfg_set(&test_cfg_table, &cfg, "size", "99999999999999999999"),
        MF_ERR_CONFIG);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "size", "20000000T"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "enabled", "maybe"),
                     MF_ERR_CONFIG);
    assert_int_equal(
        mf_cfg_set(&test_cfg_table, &cfg, "name", "a-very-long-pool-name"),
        MF_ERR_CONFIG);
    assert_string_equal(cfg.name, "pool");
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "nosuch", "1"),
                     MF_ERR_CONFIG);
    assert_non_null(strstr(tk_log_last(log), "unknown key 'nosuch'"));
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "log_level", "loud"),
                     MF_ERR_CONFIG);

    /* An old name still sets the key, and warns the first time only. */
    tk_log_reset(log);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "nthreads", "7"), MF_OK);
    assert_int_equal(cfg.threads, 7);
    assert_int_equal(tk_log_total(log), 1);
    assert_non_null(strstr(tk_log_last(log), "'nthreads' is deprecated, use "
                                             "'threads'"));
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "nthreads", "8"), MF_OK);
    assert_int_equal(cfg.threads, 8);
    assert_int_equal(tk_log_total(log), 1);
    assert_int_equal(mf_cfg_set(&test_cfg_table, &cfg, "nthreads", "65"),
                     MF_ERR_CONFIG);
    assert_non_null(strstr(tk_log_last(log), "'threads'"));
}

static void test_cfg_env_names(void **state)
{
    char name[64];

    mf_cfg_env_name("MF_", "tcp.lanes", name, sizeof(name));
    assert_string_equal(name, "MF_TCP_LANES");
    mf_cfg_env_name("MMC_FABRIC_", "copy_threads", name, sizeof(name));
    assert_string_equal(name, "MMC_FABRIC_COPY_THREADS");
    mf_cfg_env_name("MF_", "tcp.lanes", name, 6);
    assert_string_equal(name, "MF_TC");
}

static void test_cfg_file_and_env(void **state)
{
    tk_log_t *log = *state;
    test_cfg_t cfg;
    char path[] = "/tmp/mf-test-cfg-XXXXXX";
    const char *text = "# comment\n"
                       "\n"
                       "name = \"cache\"   # trailing comment\n"
                       "  threads=8\n"
                       "enabled = off\n"
                       "log_level = debug\n";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    mf_cfg_set_defaults(&test_cfg_table, &cfg);
    assert_int_equal(mf_cfg_load_file(&test_cfg_table, &cfg, path), MF_OK);
    assert_string_equal(cfg.name, "cache");
    assert_int_equal(cfg.threads, 8);
    assert_false(cfg.enabled);
    assert_int_equal(cfg.level, MF_LOG_DEBUG);
    unlink(path);

    assert_int_equal(mf_cfg_load_file(&test_cfg_table, &cfg, path),
                     MF_ERR_CONFIG);
    assert_non_null(strstr(tk_log_last(log), "cannot open"));

    const char *bad = "threads = 4\nthis line is wrong\n";
    assert_int_equal(
        mf_cfg_load_string(&test_cfg_table, &cfg, bad, strlen(bad), "x.conf"),
        MF_ERR_CONFIG);
    assert_non_null(strstr(tk_log_last(log), "x.conf:2"));
    const char *nul = "threads = 4\0x";
    assert_int_equal(
        mf_cfg_load_string(&test_cfg_table, &cfg, nul, 13, "nul.conf"),
        MF_ERR_CONFIG);

    setenv("MFTEST_THREADS", "16", 1);
    assert_int_equal(mf_cfg_load_env(&test_cfg_table, &cfg), MF_OK);
    assert_int_equal(cfg.threads, 16);
    setenv("MFTEST_THREADS", "zero", 1);
    assert_int_equal(mf_cfg_load_env(&test_cfg_table, &cfg), MF_ERR_CONFIG);
    assert_non_null(strstr(tk_log_last(log), "MFTEST_THREADS"));
    unsetenv("MFTEST_THREADS");
}

static void test_cfg_help_and_dump(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    test_cfg_t cfg, again;

    (void)state;
    mf_cfg_print_help(&test_cfg_table, out);
    fflush(out);
    assert_non_null(strstr(text, "MFTEST_THREADS"));
    assert_non_null(strstr(text, "[1..64]"));
    fclose(out);
    free(text);

    /* A dump is a config file that reproduces the same values. */
    mf_cfg_set_defaults(&test_cfg_table, &cfg);
    cfg.threads = 7;
    out = open_memstream(&text, &len);
    mf_cfg_dump(&test_cfg_table, &cfg, out);
    fclose(out);
    mf_cfg_set_defaults(&test_cfg_table, &again);
    assert_int_equal(
        mf_cfg_load_string(&test_cfg_table, &again, text, len, "dump"), MF_OK);
    assert_int_equal(again.threads, 7);
    assert_int_equal(again.base, cfg.base);
    free(text);
}

/* ---- containers ---- */

static void test_hmap(void **state)
{
    mf_hmap_t map;
    mf_hmap_iter_t it;
    mf_hmap_entry_t *entry;
    char key[32];
    void *old;
    size_t seen = 0;

    (void)state;
    mf_hmap_init(&map);
    assert_null(mf_hmap_get(&map, "x", 1));
    assert_null(mf_hmap_remove(&map, "x", 1));
    for (uintptr_t i = 1; i <= 5000; i++) {
        snprintf(key, sizeof(key), "key-%lu", (unsigned long)i);
        assert_int_equal(mf_hmap_put(&map, key, strlen(key), (void *)i, &old),
                         MF_OK);
        assert_null(old);
    }
    assert_int_equal(map.count, 5000);
    assert_int_equal(mf_hmap_put(&map, "key-7", 5, (void *)77, &old), MF_OK);
    assert_ptr_equal(old, (void *)7);
    assert_ptr_equal(mf_hmap_get(&map, "key-7", 5), (void *)77);
    /* binary keys with embedded NUL are distinct */
    assert_int_equal(mf_hmap_put(&map, "a\0b", 3, (void *)1, NULL), MF_OK);
    assert_null(mf_hmap_get(&map, "a", 1));

    /* remove while iterating */
    mf_hmap_iter_init(&map, &it);
    while ((entry = mf_hmap_next(&map, &it)) != NULL) {
        seen++;
        if (strncmp(entry->key, "key-", 4) == 0 &&
            atoi(entry->key + 4) % 2 == 0) {
            mf_hmap_remove(&map, entry->key, entry->key_len);
        }
    }
    assert_int_equal(seen, 5001);
    assert_int_equal(map.count, 2501);
    assert_null(mf_hmap_get(&map, "key-10", 6));
    assert_non_null(mf_hmap_get(&map, "key-11", 6));
    mf_hmap_free(&map);
}

static void test_vec_buf_list(void **state)
{
    mf_vec_t vec;
    mf_buf_t buf;
    mf_list_t head, a, b, c, *pos, *tmp;
    uint8_t *data;
    size_t len;
    int n = 0;

    (void)state;
    mf_vec_init(&vec, sizeof(uint64_t));
    for (uint64_t i = 0; i < 1000; i++) {
        assert_non_null(mf_vec_push(&vec, &i));
    }
    mf_vec_swap_remove(&vec, 0);
    assert_int_equal(vec.count, 999);
    assert_int_equal(*(uint64_t *)mf_vec_at(&vec, 0), 999);
    mf_vec_swap_remove(&vec, 5000); /* out of range: no-op */
    assert_int_equal(vec.count, 999);
    mf_vec_free(&vec);

    mf_buf_init(&buf);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(mf_buf_append(&buf, "abcd", 4), MF_OK);
    }
    data = mf_buf_detach(&buf, &len);
    assert_int_equal(len, 400);
    assert_memory_equal(data + 396, "abcd", 4);
    assert_int_equal(buf.len, 0);
    free(data);

    mf_list_init(&head);
    assert_true(mf_list_empty(&head));
    mf_list_push_back(&head, &a);
    mf_list_push_back(&head, &b);
    mf_list_push_front(&head, &c);
    assert_ptr_equal(head.next, &c);
    mf_list_for_each_safe(pos, tmp, &head)
    {
        n++;
        mf_list_del(pos);
    }
    assert_int_equal(n, 3);
    assert_null(mf_list_pop_front(&head));
}

static void test_url_parse(void **state)
{
    char host[64];
    uint16_t port = 0;

    (void)state;
    assert_int_equal(
        mf_url_parse("tcp://127.0.0.1:5000", host, sizeof(host), &port), MF_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5000);
    assert_int_equal(mf_url_parse("node-1:7", host, sizeof(host), &port),
                     MF_OK);
    assert_string_equal(host, "node-1");
    assert_int_equal(mf_url_parse("tcp://[::1]:80", host, sizeof(host), &port),
                     MF_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    port = 1;
    assert_int_equal(mf_url_parse("tcp://host", host, sizeof(host), &port),
                     MF_ERR_INVALID);
    assert_int_equal(mf_url_parse("tcp://host:0", host, sizeof(host), &port),
                     MF_ERR_INVALID);
    assert_int_equal(
        mf_url_parse("tcp://host:70000", host, sizeof(host), &port),
        MF_ERR_INVALID);
    assert_int_equal(mf_url_parse("tcp://:80", host, sizeof(host), &port),
                     MF_ERR_INVALID);
    assert_int_equal(mf_url_parse("udp://h:80", host, sizeof(host), &port),
                     MF_ERR_INVALID);
    assert_int_equal(mf_url_parse("h:80x", host, sizeof(host), &port),
                     MF_ERR_INVALID);
    assert_int_equal(port, 1); /* outputs only on success */
    assert_int_equal(
        mf_url_parse("tcp://a-very-long-host-name:1", host, 8, &port),
        MF_ERR_INVALID);
}

/* Lists: each entry as mf_url_parse takes it, spaces around commas, and
 * the count bounded; an empty entry or a bad one refuses the list. */
static void test_url_list_parse(void **state)
{
    mf_url_t urls[3];
    size_t n = 0;

    (void)state;
    assert_int_equal(mf_url_list_parse("tcp://a:1", urls, 3, &n), MF_OK);
    assert_int_equal(n, 1);
    assert_string_equal(urls[0].host, "a");
    assert_int_equal(urls[0].port, 1);
    assert_int_equal(
        mf_url_list_parse("tcp://a:1, b:2 ,tcp://[::1]:3", urls, 3, &n), MF_OK);
    assert_int_equal(n, 3);
    assert_string_equal(urls[1].host, "b");
    assert_int_equal(urls[1].port, 2);
    assert_string_equal(urls[2].host, "::1");
    assert_int_equal(urls[2].port, 3);
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_url_list_parse("a:1,b:2,c:3,d:4", urls, 3, &n),
                     MF_ERR_INVALID);
    assert_int_equal(mf_url_list_parse("a:1,,b:2", urls, 3, &n),
                     MF_ERR_INVALID);
    assert_int_equal(mf_url_list_parse("a:1,", urls, 3, &n), MF_ERR_INVALID);
    assert_int_equal(mf_url_list_parse("", urls, 3, &n), MF_ERR_INVALID);
    assert_int_equal(mf_url_list_parse("a:1,nohost", urls, 3, &n),
                     MF_ERR_INVALID);
    assert_int_equal(mf_url_list_parse("a:1,udp://b:2", urls, 3, &n),
                     MF_ERR_INVALID);
    mf_log_set_level(MF_LOG_WARN);
}

static void test_misc(void **state)
{
    char small[4];
    uint64_t t0 = mf_time_ns();

    (void)state;
    assert_true(mf_time_ns() >= t0);
    assert_false(mf_strlcpy(small, "abcdef", sizeof(small)));
    assert_string_equal(small, "abc");
    assert_true(mf_strlcpy(small, "ab", sizeof(small)));
    assert_non_null(strchr(mf_host_id(), '/'));
    assert_string_equal(mf_host_id(), mf_host_id());
    assert_int_equal(mf_page_size() % 4096, 0);
    assert_int_equal(MF_ALIGN_UP(4097, 4096), 8192);
}

/* ---- sockets ---- */

static void test_sock_listen_connect(void **state)
{
    tk_log_t *log = *state;
    struct sockaddr_in6 in6;
    char str[MF_SOCK_ADDR_STRLEN], want[MF_SOCK_ADDR_STRLEN];
    mf_sock_addr_t bound, addr;
    int lfd, lfd2 = -7, cfd = -7, afd;
    uint16_t port;

    (void)state;
    assert_int_equal(mf_sock_listen("127.0.0.1", 0, AF_UNSPEC, &lfd, &bound),
                     MF_OK);
    port = mf_sock_addr_port((struct sockaddr *)&bound.ss);
    assert_int_not_equal(port, 0);
    mf_sock_addr_str((struct sockaddr *)&bound.ss, str, sizeof(str));
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    assert_string_equal(str, want);
    assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);

    /* the port is taken now; outputs stay untouched */
    assert_int_equal(mf_sock_listen("127.0.0.1", port, AF_INET, &lfd2, NULL),
                     MF_ERR_ADDR_IN_USE);
    assert_int_equal(lfd2, -7);
    assert_int_equal(tk_log_total(log), 1);
    assert_int_equal(log->last_level, MF_LOG_ERROR);

    assert_int_equal(mf_sock_connect("127.0.0.1", port, 5000, &cfd), MF_OK);
    assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    afd = -1;
    for (int i = 0; (i < 1000) && (afd < 0); i++) {
        afd = accept(lfd, NULL, NULL);
        if (afd < 0) {
            assert_int_equal(errno, EAGAIN);
            usleep(1000);
        }
    }
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);

    /* nobody listens any more: refused, a warning */
    cfd = -7;
    assert_int_equal(mf_sock_connect("127.0.0.1", port, 5000, &cfd),
                     MF_ERR_CONN_REFUSED);
    assert_int_equal(cfd, -7);
    assert_int_equal(log->last_level, MF_LOG_WARN);

    assert_int_equal(mf_sock_resolve("127.0.0.1", 80, AF_INET, false, &addr),
                     MF_OK);
    assert_int_equal(mf_sock_addr_port((struct sockaddr *)&addr.ss), 80);
    assert_int_equal(addr.len, sizeof(struct sockaddr_in));
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(5802);
    in6.sin6_addr = in6addr_loopback;
    mf_sock_addr_str((struct sockaddr *)&in6, str, sizeof(str));
    assert_string_equal(str, "[::1]:5802");
    assert_int_equal(mf_sock_errno_status(ECONNREFUSED), MF_ERR_CONN_REFUSED);
    assert_int_equal(mf_sock_errno_status(ETIMEDOUT), MF_ERR_TIMEOUT);
    assert_int_equal(mf_sock_errno_status(EBADF), MF_ERR_IO);
}

static void test_sock_nofile_raise(void **state)
{
    struct rlimit rl;
    uint64_t limit = 0;

    (void)state;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max > 64) {
        rl.rlim_cur = 64; /* lowering the soft limit is always allowed */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    assert_int_equal(mf_sock_nofile_raise(&limit), MF_OK);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(rl.rlim_cur == rl.rlim_max);
    assert_true(limit == (uint64_t)rl.rlim_cur);
}

/* A listener out of descriptors: what waits is shed through the reserve
 * descriptor, and one message stands for many failures. */
static void test_sock_accept_guard(void **state)
{
    tk_log_t *log = *state;
    mf_sock_accept_guard_t guard;
    mf_sock_addr_t bound;
    int lfd, cfds[3];
    uint16_t port;
    char byte;

    (void)state;
    assert_true(mf_sock_accept_transient(EAGAIN));
    assert_true(mf_sock_accept_transient(ECONNABORTED));
    assert_false(mf_sock_accept_transient(EMFILE));
    assert_false(mf_sock_accept_transient(ENOBUFS));

    assert_int_equal(mf_sock_listen("127.0.0.1", 0, AF_INET, &lfd, &bound),
                     MF_OK);
    port = mf_sock_addr_port((struct sockaddr *)&bound.ss);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mf_sock_connect("127.0.0.1", port, 5000, &cfds[i]),
                         MF_OK);
    }
    mf_sock_accept_guard_init(&guard, "test listener");
    assert_true(guard.reserve_fd >= 0);
    tk_log_reset(log);
    mf_sock_accept_failed(&guard, lfd, EMFILE);
    assert_int_equal(tk_log_total(log), 1);
    assert_int_equal(log->last_level, MF_LOG_WARN);
    assert_non_null(strstr(tk_log_last(log), "test listener"));
    assert_non_null(strstr(tk_log_last(log), "3 connections closed unserved"));
    assert_true(guard.reserve_fd >= 0);
    /* every waiting connection was closed: none is left to accept */
    assert_true(accept(lfd, NULL, NULL) < 0);
    assert_int_equal(errno, EAGAIN);
    for (int i = 0; i < 3; i++) {
        struct timeval tv = {10, 0};

        fcntl(cfds[i], F_SETFL, 0);
        setsockopt(cfds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        assert_true(recv(cfds[i], &byte, 1, 0) <= 0); /* EOF or reset */
        close(cfds[i]);
    }
    /* more failures within the interval: counted, not logged */
    mf_sock_accept_failed(&guard, lfd, EMFILE);
    mf_sock_accept_failed(&guard, lfd, ENOBUFS);
    assert_int_equal(tk_log_total(log), 1);
    assert_int_equal(guard.failures, 2);
    mf_sock_accept_guard_cleanup(&guard);
    assert_int_equal(guard.reserve_fd, -1);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test_setup_teardown(test_log_levels, test_setup_log,
                                        test_teardown_log),
        cmocka_unit_test_setup_teardown(test_log_keeps_errno, test_setup_log,
                                        test_teardown_log),
        cmocka_unit_test_setup_teardown(test_cfg_defaults_and_set,
                                        test_setup_log, test_teardown_log),
        cmocka_unit_test_setup_teardown(test_cfg_file_and_env, test_setup_log,
                                        test_teardown_log),
        cmocka_unit_test(test_cfg_help_and_dump),
        cmocka_unit_test(test_cfg_env_names),
        cmocka_unit_test(test_hmap),
        cmocka_unit_test(test_vec_buf_list),
        cmocka_unit_test_setup_teardown(test_url_parse, test_setup_log,
                                        test_teardown_log),
        cmocka_unit_test_setup_teardown(test_url_list_parse, test_setup_log,
                                        test_teardown_log),
        cmocka_unit_test(test_misc),
        cmocka_unit_test_setup_teardown(test_sock_listen_connect,
                                        test_setup_log, test_teardown_log),
        cmocka_unit_test_setup_teardown(test_sock_nofile_raise, test_setup_log,
                                        test_teardown_log),
        cmocka_unit_test_setup_teardown(test_sock_accept_guard, test_setup_log,
                                        test_teardown_log),
    };
    return tk_group_run(tests, NULL, NULL);
}
