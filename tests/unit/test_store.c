/*
 * Unit tests of the config store: a real server on 127.0.0.1 (free port)
 * in this process and real clients, some on threads of their own, one in
 * a child process (this program run again with --child-join).
 *
 * Covered: every key operation with its error cases and limits, blocking
 * gets, watches (set, remove, ephemeral keys of a closed session,
 * unwatch), barrier and allgather over four clients and several rounds,
 * rank groups (auto, explicit, conflicts, full, world-size mismatch, list,
 * JOINED/LEFT/LOST events, a SIGKILLed holder, heartbeat timeout),
 * reconnection after a server restart, malformed frames, the frame limit
 * of connections that sent no request yet, the server config table.
 *
 * Every test counts error messages through the log sink and open file
 * descriptors: an unexpected error log or a leaked socket fails it.  Waits
 * are bounded by generous timeouts only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"
#include "tk_proc.h"
#include "tk_sock.h"
#include "tw_frame.h"

#include "net/net.h"
#include "store/store_proto.h"
#include "util/log.h"
#include "util/misc.h"

#include <memfabric/mf_store.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_WAIT_MS 10000

/* ---- log capture and fd accounting ---- */

static tk_log_t test_log;

/* ---- fixture: one server per test ---- */

typedef struct test_ctx {
    mf_store_server_t *server;
    uint16_t port;
    char url[64];
    int fds_at_start;
} test_ctx_t;

static test_ctx_t test_ctx;

static void test_server_start_cfg(const mf_store_server_config_t *cfg)
{
    assert_int_equal(mf_store_server_start(cfg, &test_ctx.server), MF_OK);
    test_ctx.port = mf_store_server_port(test_ctx.server);
    assert_true(test_ctx.port != 0);
    snprintf(test_ctx.url, sizeof(test_ctx.url), "tcp://127.0.0.1:%u",
             test_ctx.port);
}

static int test_setup_common(void)
{
    tk_log_reset(&test_log);
    test_ctx.fds_at_start = tk_fd_count();
    test_ctx.server = NULL;
    return 0;
}

static int test_setup(void **state)
{
    mf_store_server_config_t cfg;

    (void)state;
    test_setup_common();
    mf_store_server_config_init(&cfg);
    test_server_start_cfg(&cfg);
    return 0;
}

/* The test starts its own server. */
static int test_setup_bare(void **state)
{
    (void)state;
    return test_setup_common();
}

static int test_teardown(void **state)
{
    (void)state;
    mf_store_server_stop(test_ctx.server);
    test_ctx.server = NULL;
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
    assert_int_equal(tk_fd_count(), test_ctx.fds_at_start);
    return 0;
}

static mf_store_t *test_connect(uint32_t heartbeat_ms)
{
    mf_store_config_t cfg;
    mf_store_t *store = NULL;

    mf_store_config_init(&cfg);
    if (heartbeat_ms != 0) {
        cfg.heartbeat_ms = heartbeat_ms;
    }
    assert_int_equal(mf_store_connect(test_ctx.url, &cfg, &store), MF_OK);
    assert_non_null(store);
    return store;
}

static void test_get_str(mf_store_t *store, const char *key,
                         const char *expected)
{
    void *value = NULL;
    size_t len = 0;

    assert_int_equal(mf_store_get(store, key, 0, &value, &len), MF_OK);
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(value, expected, len);
    assert_int_equal(((char *)value)[len], '\0');
    free(value);
}

/* ---- event logs filled by callbacks ---- */

#define TEST_MAX_EVENTS 256

typedef struct test_event {
    int event;
    char key[128];
    char value[128];
    size_t len;
    uint32_t rank;
} test_event_t;

typedef struct test_events {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int count;
    test_event_t ev[TEST_MAX_EVENTS];
} test_events_t;

static void test_events_init(test_events_t *log)
{
    memset(log, 0, sizeof(*log));
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->cond, NULL);
}

static void test_events_destroy(test_events_t *log)
{
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->cond);
}

static void test_events_add(test_events_t *log, int event, const char *key,
                            const void *value, size_t len, uint32_t rank)
{
    test_event_t *ev;

    pthread_mutex_lock(&log->lock);
    if (log->count < TEST_MAX_EVENTS) {
        ev = &log->ev[log->count++];
        ev->event = event;
        snprintf(ev->key, sizeof(ev->key), "%s", key);
        ev->len = len;
        memcpy(ev->value, value, MF_MIN(len, sizeof(ev->value) - 1));
        ev->value[MF_MIN(len, sizeof(ev->value) - 1)] = '\0';
        ev->rank = rank;
    }
    pthread_cond_broadcast(&log->cond);
    pthread_mutex_unlock(&log->lock);
}

/* Waits until the log holds at least n events; false on timeout. */
static bool test_events_wait(test_events_t *log, int n, unsigned timeout_ms)
{
    struct timespec deadline;
    bool ok;

    mf_deadline_after_ms(&deadline, timeout_ms);
    pthread_mutex_lock(&log->lock);
    while (log->count < n) {
        if (pthread_cond_timedwait(&log->cond, &log->lock, &deadline) ==
            ETIMEDOUT) {
            break;
        }
    }
    ok = (log->count >= n);
    pthread_mutex_unlock(&log->lock);
    return ok;
}

static int test_events_count(test_events_t *log)
{
    int n;

    pthread_mutex_lock(&log->lock);
    n = log->count;
    pthread_mutex_unlock(&log->lock);
    return n;
}

/* Index of the first event matching, from `from`; -1 if none. */
static int test_events_find(test_events_t *log, int from, int event,
                            const char *key, uint32_t rank)
{
    int i, found = -1;

    pthread_mutex_lock(&log->lock);
    for (i = from; i < log->count; i++) {
        if ((log->ev[i].event == event) &&
            ((key == NULL) || (strcmp(log->ev[i].key, key) == 0)) &&
            ((rank == UINT32_MAX) || (log->ev[i].rank == rank))) {
            found = i;
            break;
        }
    }
    pthread_mutex_unlock(&log->lock);
    return found;
}

/* Waits until an event matching appears. */
static bool test_events_wait_for(test_events_t *log, int event, const char *key,
                                 uint32_t rank, unsigned timeout_ms)
{
    uint64_t deadline = mf_time_ms() + timeout_ms;
    int n;

    for (;;) {
        n = test_events_count(log);
        if (test_events_find(log, 0, event, key, rank) >= 0) {
            return true;
        }
        if (mf_time_ms() >= deadline) {
            return false;
        }
        test_events_wait(log, n + 1, 100);
    }
}

static void test_watch_cb(mf_store_event_t event, const char *key,
                          const void *value, size_t len, void *arg)
{
    test_events_add(arg, (int)event, key, value, len, 0);
}

static void test_rank_cb(const char *group, uint32_t rank,
                         mf_rank_event_t event, void *arg)
{
    test_events_add(arg, (int)event, group, "", 0, rank);
}

/* Waits until group has `expected` live ranks. */
static void test_wait_rank_count(mf_store_t *store, const char *group,
                                 uint32_t expected)
{
    uint64_t deadline = mf_time_ms() + TEST_WAIT_MS;
    uint32_t count;

    for (;;) {
        assert_int_equal(mf_store_rank_list(store, group, NULL, 0, &count),
                         MF_OK);
        if ((count == expected) || (mf_time_ms() >= deadline)) {
            break;
        }
        tk_sleep_ms(10);
    }
    assert_int_equal(count, expected);
}

/* ---- raw connections that send frames no client would ---- */

static int test_raw_connect(void)
{
    int fd = tk_sock_connect("127.0.0.1", test_ctx.port);

    assert_true(fd >= 0);
    return fd;
}

static void test_raw_send(int fd, uint16_t op, uint64_t req_id,
                          const void *body, size_t len)
{
    assert_true(tw_send_req(fd, op, req_id, body, len));
}

static void test_raw_send_req(int fd, uint16_t op, uint64_t req_id,
                              const mf_store_req_t *req)
{
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    assert_int_equal(mf_store_req_encode(op, req, &w), MF_OK);
    test_raw_send(fd, op, req_id, w.data, w.len);
    mf_wbuf_free(&w);
}

/* Reads one frame; the body (if any) goes to body (max bytes). */
static bool test_raw_recv(int fd, mf_net_hdr_t *hdr, void *body, size_t max)
{
    tw_frame_t frame;

    if (tw_frame_recv(fd, TEST_WAIT_MS, max, &frame) != MF_OK) {
        return false;
    }
    *hdr = frame.hdr;
    if (frame.len > 0) {
        memcpy(body, frame.body, frame.len);
    }
    tw_frame_free(&frame);
    return true;
}

/* True when the peer closed the connection within timeout_ms. */
static bool test_raw_wait_closed(int fd, unsigned timeout_ms)
{
    return tk_sock_wait_closed(fd, timeout_ms, NULL);
}

/* ------------------------------------------------------------- tests */

static void test_set_get_remove(void **state)
{
    const uint8_t binary[] = {0, 1, 2, 0xff, 0, 7};
    mf_store_t *store = test_connect(0);
    void *value = (void *)0x1;
    size_t len = 99;

    (void)state;
    assert_int_equal(mf_store_set(store, "a", "hello", 5, 0), MF_OK);
    test_get_str(store, "a", "hello");
    assert_int_equal(mf_store_set(store, "a", "bye", 3, 0), MF_OK);
    test_get_str(store, "a", "bye");

    /* Empty and binary values. */
    assert_int_equal(mf_store_set(store, "empty", NULL, 0, 0), MF_OK);
    test_get_str(store, "empty", "");
    assert_int_equal(mf_store_set(store, "bin", binary, sizeof(binary), 0),
                     MF_OK);
    assert_int_equal(mf_store_get(store, "bin", 0, &value, &len), MF_OK);
    assert_int_equal(len, sizeof(binary));
    assert_memory_equal(value, binary, sizeof(binary));
    free(value);

    /* Missing keys; outputs untouched on failure. */
    value = (void *)0x1;
    len = 99;
    assert_int_equal(mf_store_get(store, "nope", 0, &value, &len),
                     MF_ERR_NOT_FOUND);
    assert_ptr_equal(value, (void *)0x1);
    assert_int_equal(len, 99);
    assert_int_equal(mf_store_remove(store, "nope"), MF_ERR_NOT_FOUND);

    assert_int_equal(mf_store_remove(store, "a"), MF_OK);
    assert_int_equal(mf_store_get(store, "a", 0, &value, &len),
                     MF_ERR_NOT_FOUND);
    assert_int_equal(mf_store_remove(store, "a"), MF_ERR_NOT_FOUND);

    /* Bad arguments are refused by the client. */
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_store_set(store, NULL, "x", 1, 0), MF_ERR_INVALID);
    assert_int_equal(mf_store_set(store, "", "x", 1, 0), MF_ERR_INVALID);
    assert_int_equal(mf_store_set(store, "k", NULL, 1, 0), MF_ERR_INVALID);
    assert_int_equal(mf_store_set(store, "k", "x", 1, 0x80), MF_ERR_INVALID);
    assert_int_equal(mf_store_get(store, "", 0, &value, &len), MF_ERR_INVALID);
    assert_int_equal(mf_store_remove(store, NULL), MF_ERR_INVALID);
    assert_int_equal(mf_store_add(store, "", 1, NULL), MF_ERR_INVALID);
    tk_log_allow_errors(&test_log, false);

    mf_store_close(store);
}

static void test_add_append(void **state)
{
    mf_store_t *store = test_connect(0);
    int64_t result = 0;

    (void)state;
    assert_int_equal(mf_store_add(store, "n", 5, &result), MF_OK);
    assert_int_equal(result, 5);
    assert_int_equal(mf_store_add(store, "n", -7, &result), MF_OK);
    assert_int_equal(result, -2);
    test_get_str(store, "n", "-2");
    assert_int_equal(mf_store_add(store, "n", 0, NULL), MF_OK);

    assert_int_equal(mf_store_set(store, "n", "41", 2, 0), MF_OK);
    assert_int_equal(mf_store_add(store, "n", 1, &result), MF_OK);
    assert_int_equal(result, 42);

    /* Not an integer, or overflowing: refused, value unchanged. */
    result = 7;
    assert_int_equal(mf_store_set(store, "s", "12a", 3, 0), MF_OK);
    assert_int_equal(mf_store_add(store, "s", 1, &result), MF_ERR_INVALID);
    assert_int_equal(result, 7);
    test_get_str(store, "s", "12a");
    assert_int_equal(mf_store_set(store, "s", " 1", 2, 0), MF_OK);
    assert_int_equal(mf_store_add(store, "s", 1, &result), MF_ERR_INVALID);
    assert_int_equal(mf_store_set(store, "s", "", 0, 0), MF_OK);
    assert_int_equal(mf_store_add(store, "s", 1, &result), MF_ERR_INVALID);
    assert_int_equal(mf_store_set(store, "big", "9223372036854775807", 19, 0),
                     MF_OK);
    assert_int_equal(mf_store_add(store, "big", 1, &result), MF_ERR_INVALID);
    test_get_str(store, "big", "9223372036854775807");

    assert_int_equal(mf_store_append(store, "ap", "ab", 2), MF_OK);
    assert_int_equal(mf_store_append(store, "ap", "cd", 2), MF_OK);
    assert_int_equal(mf_store_append(store, "ap", NULL, 0), MF_OK);
    test_get_str(store, "ap", "abcd");

    mf_store_close(store);
}

static void test_cas(void **state)
{
    mf_store_t *store = test_connect(0);
    void *current = (void *)0x1;
    size_t len = 99;

    (void)state;
    /* Absent key, expected absent: stored. */
    assert_int_equal(mf_store_cas(store, "c", NULL, 0, "v1", 2, &current, &len),
                     MF_OK);
    assert_ptr_equal(current, (void *)0x1);
    test_get_str(store, "c", "v1");

    /* Expected absent but present: mismatch with the current value. */
    assert_int_equal(mf_store_cas(store, "c", NULL, 0, "v2", 2, &current, &len),
                     MF_ERR_MISMATCH);
    assert_int_equal(len, 2);
    assert_memory_equal(current, "v1", 2);
    free(current);

    /* Wrong expected value. */
    current = NULL;
    assert_int_equal(mf_store_cas(store, "c", "xx", 2, "v2", 2, &current, &len),
                     MF_ERR_MISMATCH);
    assert_int_equal(len, 2);
    assert_string_equal(current, "v1");
    free(current);

    /* Matching expected value. */
    assert_int_equal(mf_store_cas(store, "c", "v1", 2, "v2", 2, NULL, NULL),
                     MF_OK);
    test_get_str(store, "c", "v2");

    /* Expected a value on an absent key: mismatch, current NULL. */
    current = (void *)0x1;
    len = 99;
    assert_int_equal(
        mf_store_cas(store, "absent", "v", 1, "w", 1, &current, &len),
        MF_ERR_MISMATCH);
    assert_null(current);
    assert_int_equal(len, 0);

    /* Empty expected value is not the same as absent. */
    assert_int_equal(mf_store_set(store, "e", NULL, 0, 0), MF_OK);
    assert_int_equal(mf_store_cas(store, "e", "", 0, "full", 4, NULL, NULL),
                     MF_OK);
    test_get_str(store, "e", "full");
    assert_int_equal(mf_store_cas(store, "e", "x", 1, "y", 1, NULL, NULL),
                     MF_ERR_MISMATCH);

    mf_store_close(store);
}

static void test_limits(void **state)
{
    mf_store_server_config_t cfg;
    char key[64], value[128];
    mf_store_t *store;
    void *got;
    size_t len;

    (void)state;
    mf_store_server_config_init(&cfg);
    cfg.max_key_size = 16;
    cfg.max_value_size = 64;
    cfg.max_total_bytes = 200;
    test_server_start_cfg(&cfg);
    store = test_connect(0);
    memset(key, 'k', sizeof(key));
    memset(value, 'v', sizeof(value));

    key[16] = '\0';
    assert_int_equal(mf_store_set(store, key, "x", 1, 0), MF_OK);
    key[17] = '\0';
    key[16] = 'k';
    assert_int_equal(mf_store_set(store, key, "x", 1, 0), MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_get(store, key, 0, &got, &len), MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_add(store, key, 1, NULL), MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_rank_join(store, key, 1, 0, NULL),
                     MF_ERR_TOO_LARGE);

    assert_int_equal(mf_store_set(store, "v", value, 64, 0), MF_OK);
    assert_int_equal(mf_store_set(store, "v", value, 65, 0), MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_append(store, "v", "x", 1), MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_cas(store, "v", value, 64, value, 65, NULL, NULL),
                     MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_get(store, "v", 0, &got, &len), MF_OK);
    assert_int_equal(len, 64);
    free(got);

    /* Total: 17 + 65 used; two more of 65 do not fit. */
    assert_int_equal(mf_store_set(store, "w", value, 64, 0), MF_OK);
    assert_int_equal(mf_store_set(store, "x", value, 64, 0), MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_get(store, "x", 0, &got, &len), MF_ERR_NOT_FOUND);
    /* Replacing counts the old value out first. */
    assert_int_equal(mf_store_set(store, "w", value, 60, 0), MF_OK);
    assert_int_equal(mf_store_remove(store, "w"), MF_OK);
    assert_int_equal(mf_store_set(store, "x", value, 64, 0), MF_OK);

    mf_store_close(store);
}

typedef struct test_setter {
    const char *url;
    unsigned delay_ms;
    const char *key;
    const char *value;
} test_setter_t;

static void *test_setter_thread(void *arg)
{
    test_setter_t *setter = arg;
    mf_store_t *store = NULL;

    if (mf_store_connect(setter->url, NULL, &store) != MF_OK) {
        return (void *)1;
    }
    tk_sleep_ms(setter->delay_ms);
    if (mf_store_set(store, setter->key, setter->value, strlen(setter->value),
                     0) != MF_OK) {
        mf_store_close(store);
        return (void *)1;
    }
    mf_store_close(store);
    return NULL;
}

static void *test_getter_thread(void *arg)
{
    mf_store_t *store = NULL;
    void *ret = (void *)1;
    void *value;
    size_t len;

    if (mf_store_connect(test_ctx.url, NULL, &store) != MF_OK) {
        return ret;
    }
    if (mf_store_get(store, arg, TEST_WAIT_MS, &value, &len) == MF_OK) {
        ret = NULL;
        free(value);
    }
    mf_store_close(store);
    return ret;
}

static void test_blocking_get(void **state)
{
    test_setter_t setter = {test_ctx.url, 200, "later", "value!"};
    mf_store_t *store = test_connect(0);
    void *value = NULL, *ret;
    pthread_t thread, getters[3];
    uint64_t start;
    size_t len;
    int i;

    (void)state;
    assert_int_equal(pthread_create(&thread, NULL, test_setter_thread, &setter),
                     0);
    assert_int_equal(mf_store_get(store, "later", TEST_WAIT_MS, &value, &len),
                     MF_OK);
    assert_int_equal(len, 6);
    assert_string_equal(value, "value!");
    free(value);
    assert_int_equal(pthread_join(thread, &ret), 0);
    assert_null(ret);

    /* Present key: no wait. */
    assert_int_equal(mf_store_get(store, "later", TEST_WAIT_MS, &value, &len),
                     MF_OK);
    free(value);

    /* Times out, no earlier than asked. */
    start = mf_time_ms();
    value = (void *)0x1;
    assert_int_equal(mf_store_get(store, "never", 300, &value, &len),
                     MF_ERR_TIMEOUT);
    assert_true(mf_time_ms() - start >= 290);
    assert_ptr_equal(value, (void *)0x1);

    /* Several waiters on one key are all answered. */
    for (i = 0; i < 3; i++) {
        assert_int_equal(
            pthread_create(&getters[i], NULL, test_getter_thread, "multi"), 0);
    }
    tk_sleep_ms(100);
    assert_int_equal(mf_store_set(store, "multi", "m", 1, 0), MF_OK);
    for (i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(getters[i], &ret), 0);
        assert_null(ret);
    }

    mf_store_close(store);
}

static void test_watch(void **state)
{
    mf_store_t *store = test_connect(0), *other = test_connect(0);
    mf_store_watch_t *watch, *watch_all;
    test_events_t log, log_all;
    int n;

    (void)state;
    test_events_init(&log);
    test_events_init(&log_all);
    assert_int_equal(mf_store_watch(store, "w/", test_watch_cb, &log, &watch),
                     MF_OK);
    assert_int_equal(
        mf_store_watch(store, "", test_watch_cb, &log_all, &watch_all), MF_OK);

    assert_int_equal(mf_store_set(other, "w/a", "1", 1, 0), MF_OK);
    assert_int_equal(mf_store_set(other, "x/b", "2", 1, 0), MF_OK);
    assert_int_equal(mf_store_append(other, "w/a", "3", 1), MF_OK);
    assert_int_equal(mf_store_remove(other, "w/a"), MF_OK);
    assert_true(test_events_wait(&log, 3, TEST_WAIT_MS));
    assert_true(test_events_wait(&log_all, 4, TEST_WAIT_MS));
    assert_int_equal(log.ev[0].event, MF_STORE_EVENT_SET);
    assert_string_equal(log.ev[0].key, "w/a");
    assert_string_equal(log.ev[0].value, "1");
    assert_int_equal(log.ev[1].event, MF_STORE_EVENT_SET);
    assert_string_equal(log.ev[1].value, "13");
    assert_int_equal(log.ev[2].event, MF_STORE_EVENT_REMOVE);
    assert_string_equal(log.ev[2].key, "w/a");
    assert_string_equal(log_all.ev[1].key, "x/b");

    /* The ephemeral key of a closed session goes, with an event. */
    assert_int_equal(mf_store_set(other, "w/eph", "e", 1, MF_STORE_EPHEMERAL),
                     MF_OK);
    assert_int_equal(mf_store_set(other, "w/kept", "k", 1, MF_STORE_EPHEMERAL),
                     MF_OK);
    /* Overwritten without the flag: persistent again. */
    assert_int_equal(mf_store_set(store, "w/kept", "K", 1, 0), MF_OK);
    assert_true(test_events_wait(&log, 5, TEST_WAIT_MS));
    mf_store_close(other);
    assert_true(test_events_wait_for(&log, MF_STORE_EVENT_REMOVE, "w/eph",
                                     UINT32_MAX, TEST_WAIT_MS));
    test_get_str(store, "w/kept", "K");
    assert_int_equal(mf_store_remove(store, "w/eph"), MF_ERR_NOT_FOUND);

    /* No events after unwatch. */
    mf_store_unwatch(store, watch);
    n = test_events_count(&log);
    assert_int_equal(mf_store_set(store, "w/late", "x", 1, 0), MF_OK);
    assert_true(test_events_wait_for(&log_all, MF_STORE_EVENT_SET, "w/late",
                                     UINT32_MAX, TEST_WAIT_MS));
    assert_int_equal(test_events_count(&log), n);
    mf_store_unwatch(store, watch_all);

    mf_store_close(store);
    test_events_destroy(&log);
    test_events_destroy(&log_all);
}

typedef struct test_self_unwatch {
    mf_store_t *store;
    mf_store_watch_t *watch;
    test_events_t log;
} test_self_unwatch_t;

static void test_self_unwatch_cb(mf_store_event_t event, const char *key,
                                 const void *value, size_t len, void *arg)
{
    test_self_unwatch_t *self = arg;

    test_events_add(&self->log, (int)event, key, value, len, 0);
    mf_store_unwatch(self->store, self->watch);
}

static void test_unwatch_from_callback(void **state)
{
    test_self_unwatch_t self;
    test_events_t log;
    mf_store_watch_t *watch;

    (void)state;
    self.store = test_connect(0);
    test_events_init(&self.log);
    test_events_init(&log);
    assert_int_equal(mf_store_watch(self.store, "u/", test_self_unwatch_cb,
                                    &self, &self.watch),
                     MF_OK);
    assert_int_equal(
        mf_store_watch(self.store, "u/", test_watch_cb, &log, &watch), MF_OK);
    assert_int_equal(mf_store_set(self.store, "u/1", "a", 1, 0), MF_OK);
    assert_int_equal(mf_store_set(self.store, "u/2", "b", 1, 0), MF_OK);
    assert_true(test_events_wait(&log, 2, TEST_WAIT_MS));
    assert_int_equal(test_events_count(&self.log), 1);
    mf_store_unwatch(self.store, watch);
    mf_store_close(self.store);
    test_events_destroy(&self.log);
    test_events_destroy(&log);
}

typedef struct test_slow_watch {
    atomic_int started;
    atomic_int finished;
} test_slow_watch_t;

static void test_slow_watch_cb(mf_store_event_t event, const char *key,
                               const void *value, size_t len, void *arg)
{
    test_slow_watch_t *slow = arg;

    atomic_store(&slow->started, 1);
    tk_sleep_ms(300);
    atomic_store(&slow->finished, 1);
}

static void test_unwatch_waits(void **state)
{
    mf_store_t *store = test_connect(0);
    test_slow_watch_t slow;
    mf_store_watch_t *watch;
    uint64_t deadline;

    (void)state;
    atomic_init(&slow.started, 0);
    atomic_init(&slow.finished, 0);
    assert_int_equal(
        mf_store_watch(store, "slow/", test_slow_watch_cb, &slow, &watch),
        MF_OK);
    assert_int_equal(mf_store_set(store, "slow/1", "x", 1, 0), MF_OK);
    deadline = mf_time_ms() + TEST_WAIT_MS;
    while (!atomic_load(&slow.started) && (mf_time_ms() < deadline)) {
        tk_sleep_ms(1);
    }
    assert_true(atomic_load(&slow.started));
    /* The callback sleeps: unwatch returns only after it finished. */
    mf_store_unwatch(store, watch);
    assert_true(atomic_load(&slow.finished));
    mf_store_close(store);
}

/* ---- barrier and allgather over four clients ---- */

#define TEST_PARTIES 4
#define TEST_ROUNDS  6

typedef struct test_party {
    uint32_t index;
    atomic_int *arrived; /* TEST_ROUNDS counters */
    mf_status_t status;
    bool ok;
} test_party_t;

static void *test_barrier_thread(void *arg)
{
    test_party_t *party = arg;
    mf_store_t *store = NULL;
    int round;

    party->status = mf_store_connect(test_ctx.url, NULL, &store);
    if (party->status != MF_OK) {
        return NULL;
    }
    party->ok = true;
    for (round = 0; round < TEST_ROUNDS; round++) {
        if (party->index == (uint32_t)round % TEST_PARTIES) {
            tk_sleep_ms(20); /* someone is late in every round */
        }
        atomic_fetch_add(&party->arrived[round], 1);
        party->status =
            mf_store_barrier(store, "bar", TEST_PARTIES, TEST_WAIT_MS);
        if (party->status != MF_OK) {
            break;
        }
        /* Nobody leaves before everybody arrived. */
        if (atomic_load(&party->arrived[round]) != TEST_PARTIES) {
            party->ok = false;
        }
    }
    mf_store_close(store);
    return NULL;
}

static void test_barrier(void **state)
{
    atomic_int arrived[TEST_ROUNDS];
    test_party_t parties[TEST_PARTIES];
    pthread_t threads[TEST_PARTIES];
    mf_store_t *store;
    uint32_t i;
    void *value;
    size_t len;

    (void)state;
    for (i = 0; i < TEST_ROUNDS; i++) {
        atomic_init(&arrived[i], 0);
    }
    for (i = 0; i < TEST_PARTIES; i++) {
        parties[i] = (test_party_t){.index = i, .arrived = arrived};
        assert_int_equal(
            pthread_create(&threads[i], NULL, test_barrier_thread, &parties[i]),
            0);
    }
    for (i = 0; i < TEST_PARTIES; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(parties[i].status, MF_OK);
        assert_true(parties[i].ok);
    }

    /* Only the last round's keys are left. */
    store = test_connect(0);
    assert_int_equal(
        mf_store_get(store, "__mf/barrier/bar/1/count", 0, &value, &len),
        MF_ERR_NOT_FOUND);
    assert_int_equal(
        mf_store_get(store, "__mf/barrier/bar/5/done", 0, &value, &len),
        MF_ERR_NOT_FOUND);
    assert_int_equal(
        mf_store_get(store, "__mf/barrier/bar/6/count", 0, &value, &len),
        MF_OK);
    free(value);

    /* A barrier nobody else joins times out; bad counts are refused. */
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_store_barrier(store, "lonely", 2, 200), MF_ERR_TIMEOUT);
    assert_int_equal(mf_store_barrier(store, "zero", 0, 200), MF_ERR_INVALID);
    assert_int_equal(mf_store_barrier(store, "", 1, 200), MF_ERR_INVALID);
    tk_log_allow_errors(&test_log, false);
    /* A barrier of one passes at once. */
    assert_int_equal(mf_store_barrier(store, "one", 1, 0), MF_OK);
    assert_int_equal(mf_store_barrier(store, "one", 1, 0), MF_OK);
    mf_store_close(store);
}

typedef struct test_gatherer {
    uint32_t index;
    mf_status_t status;
    bool ok;
} test_gatherer_t;

static void *test_allgather_thread(void *arg)
{
    test_gatherer_t *g = arg;
    uint64_t in[2], out[TEST_PARTIES * 2];
    mf_store_t *store = NULL;
    uint32_t round, i;

    g->status = mf_store_connect(test_ctx.url, NULL, &store);
    if (g->status != MF_OK) {
        return NULL;
    }
    g->ok = true;
    for (round = 0; round < TEST_ROUNDS; round++) {
        in[0] = g->index;
        in[1] = round * 1000 + g->index;
        memset(out, 0xee, sizeof(out));
        g->status = mf_store_allgather(store, "ag", g->index, TEST_PARTIES, in,
                                       sizeof(in), out, TEST_WAIT_MS);
        if (g->status != MF_OK) {
            break;
        }
        for (i = 0; i < TEST_PARTIES; i++) {
            if ((out[2 * i] != i) || (out[2 * i + 1] != round * 1000 + i)) {
                g->ok = false;
            }
        }
    }
    mf_store_close(store);
    return NULL;
}

static void test_allgather(void **state)
{
    test_gatherer_t gs[TEST_PARTIES];
    pthread_t threads[TEST_PARTIES];
    mf_store_t *store;
    uint8_t out[4];
    uint32_t i;
    void *value;
    size_t len;

    (void)state;
    for (i = 0; i < TEST_PARTIES; i++) {
        gs[i] = (test_gatherer_t){.index = i};
        assert_int_equal(
            pthread_create(&threads[i], NULL, test_allgather_thread, &gs[i]),
            0);
    }
    for (i = 0; i < TEST_PARTIES; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(gs[i].status, MF_OK);
        assert_true(gs[i].ok);
    }

    store = test_connect(0);
    assert_int_equal(
        mf_store_get(store, "__mf/allgather/ag/1/0", 0, &value, &len),
        MF_ERR_NOT_FOUND);
    assert_int_equal(
        mf_store_get(store, "__mf/allgather/ag/6/3", 0, &value, &len), MF_OK);
    assert_int_equal(len, 16);
    free(value);

    /* One participant gathers alone; bad arguments are refused. */
    assert_int_equal(
        mf_store_allgather(store, "solo", 0, 1, "ab", 2, out, TEST_WAIT_MS),
        MF_OK);
    assert_memory_equal(out, "ab", 2);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(
        mf_store_allgather(store, "bad", 2, 2, "ab", 2, out, TEST_WAIT_MS),
        MF_ERR_INVALID);
    assert_int_equal(
        mf_store_allgather(store, "bad", 0, 0, "ab", 2, out, TEST_WAIT_MS),
        MF_ERR_INVALID);
    assert_int_equal(
        mf_store_allgather(store, "bad", 0, 2, NULL, 2, out, TEST_WAIT_MS),
        MF_ERR_INVALID);
    /* Index 1 never comes. */
    assert_int_equal(mf_store_allgather(store, "late", 0, 2, "ab", 2, out, 200),
                     MF_ERR_TIMEOUT);
    tk_log_allow_errors(&test_log, false);
    mf_store_close(store);
}

/* ---- ranks ---- */

static void test_rank_assign(void **state)
{
    mf_store_t *a = test_connect(0), *b = test_connect(0), *c = test_connect(0),
               *d = test_connect(0);
    uint32_t rank = 77, ranks[4], count = 0;

    (void)state;
    assert_int_equal(mf_store_rank_join(a, "g", 3, MF_RANK_AUTO, &rank), MF_OK);
    assert_int_equal(rank, 0);
    assert_int_equal(mf_store_rank_join(b, "g", 3, 2, &rank), MF_OK);
    assert_int_equal(rank, 2);
    assert_int_equal(mf_store_rank_join(c, "g", 3, MF_RANK_AUTO, &rank), MF_OK);
    assert_int_equal(rank, 1);

    rank = 77;
    assert_int_equal(mf_store_rank_join(d, "g", 3, MF_RANK_AUTO, &rank),
                     MF_ERR_BUSY);
    assert_int_equal(mf_store_rank_join(d, "g", 3, 1, &rank), MF_ERR_EXISTS);
    assert_int_equal(mf_store_rank_join(d, "g", 4, MF_RANK_AUTO, &rank),
                     MF_ERR_INVALID);
    assert_int_equal(rank, 77);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_store_rank_join(d, "g", 3, 3, &rank), MF_ERR_INVALID);
    assert_int_equal(mf_store_rank_join(d, "g", 0, 0, &rank), MF_ERR_INVALID);
    assert_int_equal(mf_store_rank_join(d, "", 3, 0, &rank), MF_ERR_INVALID);
    tk_log_allow_errors(&test_log, false);

    assert_int_equal(mf_store_rank_list(d, "g", ranks, 4, &count), MF_OK);
    assert_int_equal(count, 3);
    assert_int_equal(ranks[0], 0);
    assert_int_equal(ranks[1], 1);
    assert_int_equal(ranks[2], 2);
    memset(ranks, 0, sizeof(ranks));
    assert_int_equal(mf_store_rank_list(d, "g", ranks, 2, &count), MF_OK);
    assert_int_equal(count, 3);
    assert_int_equal(ranks[1], 1);
    assert_int_equal(ranks[2], 0);
    assert_int_equal(mf_store_rank_list(d, "g", NULL, 0, &count), MF_OK);
    assert_int_equal(count, 3);
    assert_int_equal(mf_store_rank_list(d, "nogroup", ranks, 4, &count), MF_OK);
    assert_int_equal(count, 0);

    /* Leaving frees the rank for auto assignment; only holders leave. */
    assert_int_equal(mf_store_rank_leave(d, "g", 1), MF_ERR_NOT_FOUND);
    assert_int_equal(mf_store_rank_leave(c, "g", 1), MF_OK);
    assert_int_equal(mf_store_rank_leave(c, "g", 1), MF_ERR_NOT_FOUND);
    assert_int_equal(mf_store_rank_join(d, "g", 3, MF_RANK_AUTO, &rank), MF_OK);
    assert_int_equal(rank, 1);

    /* One session may hold several ranks and groups. */
    assert_int_equal(mf_store_rank_join(d, "h", 2, MF_RANK_AUTO, &rank), MF_OK);
    assert_int_equal(mf_store_rank_join(d, "h", 2, MF_RANK_AUTO, &rank), MF_OK);
    assert_int_equal(rank, 1);

    /* A closed session frees its ranks; an empty group forgets its size. */
    mf_store_close(d);
    test_wait_rank_count(a, "g", 2);
    test_wait_rank_count(a, "h", 0);
    assert_int_equal(mf_store_rank_join(a, "h", 5, 4, &rank), MF_OK);
    assert_int_equal(rank, 4);

    mf_store_close(a);
    mf_store_close(b);
    mf_store_close(c);
}

static void test_rank_events(void **state)
{
    mf_store_t *sub = test_connect(0), *a = test_connect(0);
    test_events_t log;
    uint32_t rank;

    (void)state;
    test_events_init(&log);
    assert_int_equal(mf_store_rank_subscribe(sub, "ev", test_rank_cb, &log),
                     MF_OK);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_store_rank_subscribe(sub, "ev", test_rank_cb, &log),
                     MF_ERR_EXISTS);
    tk_log_allow_errors(&test_log, false);

    assert_int_equal(mf_store_rank_join(a, "ev", 4, 2, &rank), MF_OK);
    assert_true(test_events_wait(&log, 1, TEST_WAIT_MS));
    assert_int_equal(log.ev[0].event, MF_RANK_JOINED);
    assert_int_equal(log.ev[0].rank, 2);
    assert_string_equal(log.ev[0].key, "ev");

    assert_int_equal(mf_store_rank_leave(a, "ev", 2), MF_OK);
    assert_true(test_events_wait(&log, 2, TEST_WAIT_MS));
    assert_int_equal(log.ev[1].event, MF_RANK_LEFT);
    assert_int_equal(log.ev[1].rank, 2);

    /* Destroyed without leaving: lost. */
    assert_int_equal(mf_store_rank_join(a, "ev", 4, MF_RANK_AUTO, &rank),
                     MF_OK);
    assert_int_equal(rank, 0);
    assert_true(test_events_wait(&log, 3, TEST_WAIT_MS));
    mf_store_close(a);
    assert_true(test_events_wait(&log, 4, TEST_WAIT_MS));
    assert_int_equal(log.ev[3].event, MF_RANK_LOST);
    assert_int_equal(log.ev[3].rank, 0);

    mf_store_close(sub);
    test_events_destroy(&log);
}

/* The child: joins a rank, says so on stdout, waits to be killed. */
static int test_child_join(const char *url, const char *group)
{
    mf_store_t *store = NULL;
    uint32_t rank;

    if ((mf_store_connect(url, NULL, &store) != MF_OK) ||
        (mf_store_rank_join(store, group, 2, 1, &rank) != MF_OK) ||
        (mf_store_set(store, "child/eph", "c", 1, MF_STORE_EPHEMERAL) !=
         MF_OK)) {
        return 1;
    }
    printf("joined\n");
    fflush(stdout);
    for (;;) {
        pause();
    }
    return 0;
}

static void test_rank_lost_sigkill(void **state)
{
    mf_store_t *sub = test_connect(0);
    test_events_t log;
    char line[16] = "";
    int pipefd[2];
    ssize_t n;
    pid_t pid;

    (void)state;
    test_events_init(&log);
    assert_int_equal(mf_store_rank_subscribe(sub, "kill", test_rank_cb, &log),
                     MF_OK);
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        execl("/proc/self/exe", "test_store", "--child-join", test_ctx.url,
              "kill", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    n = read(pipefd[0], line, sizeof(line) - 1);
    close(pipefd[0]);
    assert_true(n > 0);
    assert_memory_equal(line, "joined", 6);
    assert_true(
        test_events_wait_for(&log, MF_RANK_JOINED, "kill", 1, TEST_WAIT_MS));
    test_get_str(sub, "child/eph", "c");

    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(tk_proc_wait(pid, 60000), 128 + SIGKILL);
    assert_true(
        test_events_wait_for(&log, MF_RANK_LOST, "kill", 1, TEST_WAIT_MS));
    assert_int_equal(
        mf_store_get(sub, "child/eph", 0, &(void *){NULL}, &(size_t){0}),
        MF_ERR_NOT_FOUND);

    mf_store_close(sub);
    test_events_destroy(&log);
}

/* Rank groups count against max_total_bytes like keys do, so no client can
 * make the server allocate without bound through huge world sizes. */
static void test_group_budget(void **state)
{
    mf_store_server_config_t cfg;
    mf_store_t *a, *b;
    uint32_t rank;

    (void)state;
    mf_store_server_config_init(&cfg);
    cfg.max_total_bytes = 64 * 1024;
    test_server_start_cfg(&cfg);
    a = test_connect(1000);
    b = test_connect(1000);
    tk_log_allow_errors(&test_log,
                        true); /* refused joins are logged by the client */
    assert_int_equal(
        mf_store_rank_join(a, "huge", 1u << 20, MF_RANK_AUTO, &rank),
        MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_rank_join(a, "small", 1024, MF_RANK_AUTO, &rank),
                     MF_OK);
    /* 8 KiB of slots used; 7300 ranks would need 58400 bytes more */
    assert_int_equal(mf_store_rank_join(b, "other", 7300, MF_RANK_AUTO, &rank),
                     MF_ERR_TOO_LARGE);
    assert_int_equal(mf_store_rank_leave(a, "small", 0), MF_OK);
    /* an empty group gives its slots back */
    assert_int_equal(mf_store_rank_join(b, "other", 7300, MF_RANK_AUTO, &rank),
                     MF_OK);
    tk_log_allow_errors(&test_log, false);
    mf_store_close(a);
    mf_store_close(b);
}

static void test_heartbeat_timeout(void **state)
{
    mf_store_server_config_t cfg;
    mf_store_t *live, *sub;
    mf_store_req_t req;
    test_events_t log;
    mf_net_hdr_t hdr;
    uint8_t body[64];
    uint32_t count, ranks[2];
    int fd;

    (void)state;
    mf_store_server_config_init(&cfg);
    cfg.heartbeat_timeout_ms = 2000;
    test_server_start_cfg(&cfg);
    test_events_init(&log);
    live = test_connect(50);
    sub = test_connect(50);
    assert_int_equal(mf_store_rank_subscribe(sub, "hb", test_rank_cb, &log),
                     MF_OK);
    assert_int_equal(mf_store_rank_join(live, "hb", 2, 0, NULL), MF_OK);

    /* A session that joins and then falls silent. */
    fd = test_raw_connect();
    memset(&req, 0, sizeof(req));
    req.key = "hb";
    req.key_len = 2;
    req.world_size = 2;
    req.rank = 1;
    test_raw_send_req(fd, MF_STORE_OP_RANK_JOIN, 5, &req);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_OK);
    assert_int_equal(hdr.req_id, 5);

    assert_true(
        test_events_wait_for(&log, MF_RANK_LOST, "hb", 1, TEST_WAIT_MS));
    assert_true(test_raw_wait_closed(fd, TEST_WAIT_MS));
    close(fd);

    /* The client that heartbeats keeps its rank well past the timeout. */
    tk_sleep_ms(3000);
    assert_int_equal(mf_store_rank_list(sub, "hb", ranks, 2, &count), MF_OK);
    assert_int_equal(count, 1);
    assert_int_equal(ranks[0], 0);
    assert_int_equal(test_events_find(&log, 0, MF_RANK_LOST, "hb", 0), -1);

    mf_store_close(live);
    mf_store_close(sub);
    test_events_destroy(&log);
}

typedef struct test_parked {
    mf_store_t *store;
    mf_status_t status;
} test_parked_t;

static void *test_parked_thread(void *arg)
{
    test_parked_t *parked = arg;
    void *value;
    size_t len;

    parked->status =
        mf_store_get(parked->store, "never/set", 60000, &value, &len);
    if (parked->status == MF_OK) {
        free(value);
    }
    return NULL;
}

static void test_reconnect(void **state)
{
    mf_store_server_config_t cfg;
    mf_store_t *store, *other;
    mf_store_watch_t *watch;
    uint32_t ranks[4], count = 0, rank;
    test_parked_t parked;
    uint64_t deadline;
    test_events_t log;
    pthread_t thread;
    void *value;
    size_t len;

    (void)state;
    test_events_init(&log);
    mf_store_server_config_init(&cfg);
    test_server_start_cfg(&cfg);
    store = test_connect(50);
    assert_int_equal(mf_store_rank_join(store, "re", 4, 3, &rank), MF_OK);
    assert_int_equal(mf_store_set(store, "re/eph", "e", 1, MF_STORE_EPHEMERAL),
                     MF_OK);
    assert_int_equal(mf_store_set(store, "re/gone", "g", 1, MF_STORE_EPHEMERAL),
                     MF_OK);
    assert_int_equal(mf_store_remove(store, "re/gone"), MF_OK);
    /* What add, append and cas made of ephemeral keys is restored. */
    assert_int_equal(mf_store_append(store, "re/eph", "x", 1), MF_OK);
    assert_int_equal(mf_store_set(store, "re/cnt", "1", 1, MF_STORE_EPHEMERAL),
                     MF_OK);
    assert_int_equal(mf_store_add(store, "re/cnt", 5, NULL), MF_OK);
    assert_int_equal(mf_store_set(store, "re/cas", "a", 1, MF_STORE_EPHEMERAL),
                     MF_OK);
    assert_int_equal(mf_store_cas(store, "re/cas", "a", 1, "b", 1, NULL, NULL),
                     MF_OK);
    assert_int_equal(mf_store_watch(store, "re/", test_watch_cb, &log, &watch),
                     MF_OK);

    /* A get parked in the server when it stops fails at once. */
    parked.store = store;
    parked.status = MF_OK;
    assert_int_equal(pthread_create(&thread, NULL, test_parked_thread, &parked),
                     0);
    tk_sleep_ms(100);

    /* The server restarts on the same port, with nothing in it. */
    tk_log_allow_errors(&test_log,
                        true); /* reconnect attempts may fail meanwhile */
    mf_store_server_stop(test_ctx.server);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_true(mf_status_is_peer_error(parked.status));
    cfg.port = test_ctx.port;
    test_ctx.server = NULL;
    test_server_start_cfg(&cfg);
    other = test_connect(0);

    deadline = mf_time_ms() + TEST_WAIT_MS;
    do {
        tk_sleep_ms(20);
        assert_int_equal(mf_store_rank_list(other, "re", ranks, 4, &count),
                         MF_OK);
    } while ((count == 0) && (mf_time_ms() < deadline));
    assert_int_equal(count, 1);
    assert_int_equal(ranks[0], 3);
    tk_log_allow_errors(&test_log, false);

    /* The ephemeral key came back (set before the rank), the removed one
     * did not; the watch works again. */
    test_get_str(other, "re/eph", "ex");
    test_get_str(other, "re/cnt", "6");
    test_get_str(other, "re/cas", "b");
    assert_int_equal(mf_store_get(other, "re/gone", 0, &value, &len),
                     MF_ERR_NOT_FOUND);
    assert_int_equal(mf_store_set(other, "re/after", "a", 1, 0), MF_OK);
    assert_true(test_events_wait_for(&log, MF_STORE_EVENT_SET, "re/after",
                                     UINT32_MAX, TEST_WAIT_MS));

    /* And the session is still the owner of what it restored. */
    mf_store_unwatch(store, watch);
    mf_store_close(store);
    test_wait_rank_count(other, "re", 0);
    assert_int_equal(mf_store_get(other, "re/eph", 0, &value, &len),
                     MF_ERR_NOT_FOUND);

    mf_store_close(other);
    test_events_destroy(&log);
}

static void test_bad_frames(void **state)
{
    static const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    test_setter_t setter = {test_ctx.url, 300, "calm", "ok"};
    mf_store_t *store = test_connect(0);
    uint8_t body[256], bad_body[] = {1, 2, 3};
    mf_store_req_t req;
    mf_net_hdr_t hdr;
    pthread_t thread;
    void *value, *ret;
    size_t len;
    int fd, fd2;

    (void)state;
    assert_int_equal(pthread_create(&thread, NULL, test_setter_thread, &setter),
                     0);

    /* Garbage: the server hangs up on it. */
    fd = test_raw_connect();
    assert_int_equal(send(fd, garbage, sizeof(garbage), MSG_NOSIGNAL),
                     (ssize_t)sizeof(garbage));
    assert_true(test_raw_wait_closed(fd, TEST_WAIT_MS));
    close(fd);

    /* Well-framed nonsense gets error statuses and the session lives on. */
    fd = test_raw_connect();
    test_raw_send(fd, MF_STORE_OP_SET, 1, bad_body, sizeof(bad_body));
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.kind, MF_NET_KIND_RESPONSE);
    assert_int_equal(hdr.req_id, 1);
    assert_int_equal(hdr.status, MF_ERR_PROTO);
    test_raw_send(fd, 999, 2, NULL, 0);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_ERR_UNSUPPORTED);
    memset(&req, 0, sizeof(req));
    req.key = "with\0nul";
    req.key_len = 8;
    test_raw_send_req(fd, MF_STORE_OP_SET, 3, &req);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_ERR_INVALID);
    req.key_len = 0;
    test_raw_send_req(fd, MF_STORE_OP_GET, 4, &req);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_ERR_INVALID);
    req.key = "raw";
    req.key_len = 3;
    req.value = "v";
    req.value_len = 1;
    req.flags = 0x10;
    test_raw_send_req(fd, MF_STORE_OP_SET, 5, &req);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_ERR_INVALID);
    req.flags = 0;
    test_raw_send_req(fd, MF_STORE_OP_SET, 6, &req);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_OK);

    /* A parked get of a connection that goes away is dropped. */
    fd2 = test_raw_connect();
    memset(&req, 0, sizeof(req));
    req.key = "calm";
    req.key_len = 4;
    req.timeout_ms = TEST_WAIT_MS;
    test_raw_send_req(fd2, MF_STORE_OP_GET, 1, &req);
    tk_sleep_ms(50);
    close(fd2);
    close(fd);

    /* The well-behaved client never noticed. */
    assert_int_equal(mf_store_get(store, "calm", TEST_WAIT_MS, &value, &len),
                     MF_OK);
    free(value);
    test_get_str(store, "raw", "v");
    assert_int_equal(pthread_join(thread, &ret), 0);
    assert_null(ret);
    mf_store_close(store);
}

/*
 * A connection may send frames of 64 KiB at most until one of its requests
 * decoded: a larger first frame is cut off at its header.  The client
 * opens each connection with a heartbeat, so even a large first call
 * passes.
 */
static void test_untrusted_frames(void **state)
{
    size_t big_len = 1u << 20;
    char *big = malloc(big_len);
    uint8_t body[256];
    mf_store_req_t req;
    mf_net_hdr_t hdr;
    mf_store_t *store;
    void *value;
    size_t len;
    int fd;

    (void)state;
    assert_non_null(big);
    memset(big, 'v', big_len);
    memset(&req, 0, sizeof(req));
    req.key = "big";
    req.key_len = 3;
    req.value = big;
    req.value_len = big_len;

    /* first frame too large: closed before its body is read */
    fd = test_raw_connect();
    hdr = tw_req_hdr(MF_STORE_OP_SET, 1, MF_NET_DEFAULT_UNTRUSTED_MAX_BODY + 1);
    assert_true(tw_send_hdr(fd, &hdr));
    assert_true(test_raw_wait_closed(fd, TEST_WAIT_MS));
    close(fd);

    /* after one request that decoded, large frames pass */
    fd = test_raw_connect();
    test_raw_send(fd, MF_STORE_OP_HEARTBEAT, 1, NULL, 0);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.status, MF_OK);
    test_raw_send_req(fd, MF_STORE_OP_SET, 2, &req);
    assert_true(test_raw_recv(fd, &hdr, body, sizeof(body)));
    assert_int_equal(hdr.req_id, 2);
    assert_int_equal(hdr.status, MF_OK);
    close(fd);

    /* a client's very first call may be large */
    store = test_connect(0);
    assert_int_equal(mf_store_set(store, "big2", big, big_len, 0), MF_OK);
    assert_int_equal(mf_store_get(store, "big", 0, &value, &len), MF_OK);
    assert_int_equal(len, big_len);
    assert_memory_equal(value, big, big_len);
    free(value);
    mf_store_close(store);
    free(big);
}

static void test_server_config(void **state)
{
    mf_store_server_config_t cfg;
    char path[] = "/tmp/test_store_XXXXXX";
    FILE *f;
    int fd;

    (void)state;
    mf_store_server_config_init(&cfg);
    assert_int_equal(cfg.size, sizeof(cfg));
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 0);
    assert_int_equal(cfg.max_key_size, 1024);
    assert_int_equal(cfg.max_value_size, 16u << 20);
    assert_int_equal(cfg.max_total_bytes, 1ull << 30);
    assert_int_equal(cfg.max_connections, 4096);
    assert_int_equal(cfg.heartbeat_timeout_ms, 10000);
    assert_int_equal(cfg.idle_timeout_ms, 15000);
    assert_int_equal(cfg.log_level, MF_LOG_INFO);
    assert_int_equal(mf_store_server_config_set(&cfg, "idle_timeout_ms", "2s"),
                     MF_OK);
    assert_int_equal(cfg.idle_timeout_ms, 2000);

    assert_int_equal(mf_store_server_config_set(&cfg, "port", "4321"), MF_OK);
    assert_int_equal(cfg.port, 4321);
    assert_int_equal(mf_store_server_config_set(&cfg, "max_value_size", "1K"),
                     MF_OK);
    assert_int_equal(cfg.max_value_size, 1024);
    assert_int_equal(
        mf_store_server_config_set(&cfg, "heartbeat_timeout_ms", "3s"), MF_OK);
    assert_int_equal(cfg.heartbeat_timeout_ms, 3000);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_store_server_config_set(&cfg, "port", "70000"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_store_server_config_set(&cfg, "nokey", "1"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_store_server_config_set(&cfg, "max_key_size", "0"),
                     MF_ERR_CONFIG);
    tk_log_allow_errors(&test_log, false);
    assert_int_equal(cfg.port, 4321);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f, "# test\nhost = 0.0.0.0\nmax_total_bytes = 2M\n"
               "log_level = debug\n");
    fclose(f);
    assert_int_equal(mf_store_server_config_load_file(&cfg, path), MF_OK);
    unlink(path);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.max_total_bytes, 2u << 20);
    assert_int_equal(cfg.log_level, MF_LOG_DEBUG);

    setenv("MF_STORE_MAX_CONNECTIONS", "17", 1);
    assert_int_equal(mf_store_server_config_load_env(&cfg), MF_OK);
    unsetenv("MF_STORE_MAX_CONNECTIONS");
    assert_int_equal(cfg.max_connections, 17);

    f = fopen("/dev/null", "w");
    assert_non_null(f);
    mf_store_server_config_print_help(f);
    mf_store_server_config_dump(&cfg, f);
    fclose(f);

    /* A port in use is reported. */
    tk_log_allow_errors(&test_log, true);
    mf_store_server_config_init(&cfg);
    cfg.port = test_ctx.port;
    assert_int_equal(mf_store_server_start(&cfg, &(mf_store_server_t *){NULL}),
                     MF_ERR_ADDR_IN_USE);
    tk_log_allow_errors(&test_log, false);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get_remove, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_add_append, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_cas, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_limits, test_setup_bare,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_blocking_get, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_watch, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_unwatch_from_callback, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_unwatch_waits, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_barrier, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_allgather, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_rank_assign, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_rank_events, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_rank_lost_sigkill, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_group_budget, test_setup_bare,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_timeout, test_setup_bare,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, test_setup_bare,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_frames, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_frames, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_server_config, test_setup,
                                        test_teardown),
    };

    if ((argc == 4) && (strcmp(argv[1], "--child-join") == 0)) {
        return test_child_join(argv[2], argv[3]);
    }
    signal(SIGPIPE, SIG_IGN);
    tk_log_start(&test_log, TK_LOG_ECHO);
    if (getenv("MF_LOG_LEVEL") != NULL) {
        mf_log_init_from_env();
    }
    return tk_group_run(tests, NULL, NULL);
}
