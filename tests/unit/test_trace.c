/*
 * The built-in tracer (src/util/trace.c, <memfabric/mf_trace.h>): points
 * that record nothing while it is off, counts and extremes exact,
 * percentiles within a bucket, records from many threads, clear, the
 * table written to a file, MF_TRACE read once at mf_init, and the
 * `trace` setting (mf_trace_config), over which MF_TRACE wins.
 */
#include "tk_group.h"
#include "tk_log.h"
#include "util/trace.h"

#include <memfabric/memfabric.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static tk_log_t test_log;

MF_TRACE_POINT(tp_a, "test.a");
MF_TRACE_POINT(tp_b, "test.b");
MF_TRACE_POINT(tp_threads, "test.threads");

static bool test_stat(const char *name, mf_trace_stat_t *out)
{
    mf_trace_stat_t stats[64];
    size_t n = mf_trace_get(stats, 64);

    for (size_t i = 0; i < n && i < 64; i++) {
        if (strcmp(stats[i].name, name) == 0) {
            *out = stats[i];
            return true;
        }
    }
    return false;
}

static void test_off(void **state)
{
    mf_trace_stat_t st;
    uint64_t t0;

    (void)state;
    mf_trace_enable(false);
    t0 = mf_trace_begin();
    assert_int_equal(t0, 0);
    mf_trace_end(&tp_b, t0);
    assert_false(test_stat("test.b", &st)); /* never registered */
}

static void test_figures(void **state)
{
    mf_trace_stat_t st;
    uint64_t t0;

    (void)state;
    mf_trace_enable(true);
    for (int i = 0; i < 100; i++) {
        mf_trace_record(&tp_a, 1000);
    }
    mf_trace_record(&tp_a, 1000000);
    assert_true(test_stat("test.a", &st));
    assert_int_equal(st.count, 101);
    assert_int_equal(st.total_ns, 100 * 1000 + 1000000);
    assert_int_equal(st.min_ns, 1000);
    assert_int_equal(st.max_ns, 1000000);
    /* a bucket's top: at most 25 % above the value */
    assert_true(st.p50_ns >= 1000 && st.p50_ns <= 1250);
    assert_true(st.p90_ns >= 1000 && st.p90_ns <= 1250);
    assert_true(st.p99_ns >= 1000 && st.p99_ns <= 1250);
    /* a real stretch is timed */
    t0 = mf_trace_begin();
    assert_true(t0 != 0);
    usleep(1000);
    mf_trace_end(&tp_b, t0);
    assert_true(test_stat("test.b", &st));
    assert_int_equal(st.count, 1);
    assert_true(st.min_ns >= 1000000);
    mf_trace_clear();
    assert_true(test_stat("test.a", &st));
    assert_int_equal(st.count, 0);
    assert_int_equal(st.max_ns, 0);
    mf_trace_enable(false);
}

static void *test_thread(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= 10000; i++) {
        mf_trace_record(&tp_threads, i);
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[4];
    mf_trace_stat_t st;

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, test_thread, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    assert_true(test_stat("test.threads", &st));
    assert_int_equal(st.count, 40000);
    assert_int_equal(st.total_ns, 4 * (10000ull * 10001 / 2));
    assert_int_equal(st.min_ns, 1);
    assert_int_equal(st.max_ns, 10000);
    assert_true(st.p50_ns >= 5000 && st.p50_ns <= 6250);
}

static void test_write(void **state)
{
    char path[] = "/tmp/mf-trace-XXXXXX", text[4096];
    size_t n;
    FILE *f;
    int fd;

    (void)state;
    mf_trace_record(&tp_a, 2500);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mf_trace_write(path), MF_OK);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    unlink(path);
    text[n] = '\0';
    assert_non_null(strstr(text, "p99_us"));
    assert_non_null(strstr(text, "test.a"));
    assert_null(strstr(text, "test.b")); /* cleared: no count, no line */
    tk_log_start(&test_log, 0);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_trace_write("/nonexistent-dir/x"), MF_ERR_IO);
    tk_log_allow_errors(&test_log, false);
    assert_true(tk_log_find(&test_log, "nonexistent-dir"));
    /* the log form, whatever the level */
    assert_int_equal(mf_trace_write(NULL), MF_OK);
    assert_true(tk_log_find(&test_log, "trace test.a: count"));
    tk_log_stop(&test_log);
}

/* In a child: MF_TRACE as env (NULL: unset), then the setting; a record,
 * then exit, whose dump goes to the setting's file when it is on.
 * Returns whether the file holds the record. */
static bool test_config_child(const char *env, const char *setting_fmt)
{
    char path[] = "/tmp/mf-trace-XXXXXX", setting[64], text[4096];
    size_t n = 0;
    pid_t pid;
    FILE *f;
    int fd, st;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path); /* written at the child's exit, or not at all */
    snprintf(setting, sizeof(setting), setting_fmt, path);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (env != NULL) {
            setenv("MF_TRACE", env, 1);
        }
        mf_trace_config(setting);
        mf_trace_record(&tp_b, 1500); /* nothing while off */
        exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    f = fopen(path, "r");
    if (f != NULL) {
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        unlink(path);
    }
    text[n] = '\0';
    return strstr(text, "test.b") != NULL;
}

/* The `trace` setting: a path turns the tracer on with its dump there at
 * exit; empty or "off" leave it off; MF_TRACE, set or "0", wins.  Each
 * case in a child, before this process read MF_TRACE (test_env). */
static void test_config(void **state)
{
    (void)state;
    assert_true(test_config_child(NULL, "%s"));
    assert_false(test_config_child(NULL, ""));
    assert_false(test_config_child(NULL, "off"));
    assert_false(test_config_child("0", "%s"));
    assert_false(atomic_load(&mf_trace_on)); /* this process: untouched */
}

/* MF_TRACE switches the tracer on at mf_init (once per process). */
static void test_env(void **state)
{
    (void)state;
    mf_trace_enable(false);
    setenv("MF_TRACE", "1", 1);
    assert_int_equal(mf_init(), MF_OK);
    assert_true(atomic_load(&mf_trace_on));
    mf_uninit();
    unsetenv("MF_TRACE");
    mf_trace_enable(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),     cmocka_unit_test(test_figures),
        cmocka_unit_test(test_threads), cmocka_unit_test(test_write),
        cmocka_unit_test(test_config),  cmocka_unit_test(test_env),
    };

    return tk_group_run(tests, NULL, NULL);
}
