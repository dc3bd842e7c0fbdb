/*
 * Logging: one level, one sink, both replaceable at run time.
 *
 * The level is an atomic read with relaxed order by the mf_log macros (a
 * stale read only means one message more or less).  The sink and its
 * argument change together under a lock, so a sink never sees another
 * sink's argument.  Messages are formatted into a stack buffer; long ones
 * are cut, never allocated.
 */
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MF_LOG_LINE_MAX 1024

_Atomic(mf_log_level_t) mf_log_level_g = MF_LOG_WARN;

static pthread_rwlock_t mf_log_sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static mf_log_sink_cb mf_log_sink;
static void *mf_log_sink_arg;

static const char *const mf_log_level_names[] = {
    [MF_LOG_OFF] = "off",   [MF_LOG_ERROR] = "error", [MF_LOG_WARN] = "warn",
    [MF_LOG_INFO] = "info", [MF_LOG_DEBUG] = "debug", [MF_LOG_TRACE] = "trace",
};

MF_API void mf_log_set_level(mf_log_level_t level)
{
    if (level > MF_LOG_TRACE) {
        level = MF_LOG_TRACE;
    }
    atomic_store_explicit(&mf_log_level_g, level, memory_order_relaxed);
}

MF_API mf_log_level_t mf_log_get_level(void)
{
    return atomic_load_explicit(&mf_log_level_g, memory_order_relaxed);
}

MF_API int mf_log_level_parse(const char *name)
{
    if (name == NULL) {
        return -1;
    }
    for (int i = 0; i <= MF_LOG_TRACE; i++) {
        if (strcasecmp(name, mf_log_level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        return MF_LOG_WARN;
    }
    return -1;
}

MF_API void mf_log_set_sink(mf_log_sink_cb sink, void *arg)
{
    pthread_rwlock_wrlock(&mf_log_sink_lock);
    mf_log_sink = sink;
    mf_log_sink_arg = arg;
    pthread_rwlock_unlock(&mf_log_sink_lock);
}

void mf_log_init_from_env(void)
{
    const char *value = getenv("MF_LOG_LEVEL");
    int level;

    if (value == NULL || *value == '\0') {
        return;
    }
    level = mf_log_level_parse(value);
    if (level < 0) {
        fprintf(stderr,
                "memfabric: ignoring MF_LOG_LEVEL=%s (expected "
                "off, error, warn, info, debug or trace)\n",
                value);
        return;
    }
    mf_log_set_level((mf_log_level_t)level);
}

static void mf_log_default_sink(mf_log_level_t level, const char *file,
                                int line, const char *message)
{
    struct timespec ts;
    struct tm tm;
    const char *base = strrchr(file, '/');
    char stamp[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    /* One fprintf per line keeps concurrent lines whole. */
    fprintf(stderr, "[%s.%06ld] [%d:%ld] %-5s %s:%d %s\n", stamp,
            ts.tv_nsec / 1000, (int)getpid(), (long)syscall(SYS_gettid),
            mf_log_level_names[level], base ? base + 1 : file, line, message);
}

void mf_log_emit(mf_log_level_t level, const char *file, int line,
                 const char *fmt, ...)
{
    int saved_errno = errno;
    char message[MF_LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    pthread_rwlock_rdlock(&mf_log_sink_lock);
    if (mf_log_sink != NULL) {
        mf_log_sink(level, file, line, message, mf_log_sink_arg);
    } else {
        mf_log_default_sink(level, file, line, message);
    }
    pthread_rwlock_unlock(&mf_log_sink_lock);
    errno = saved_errno;
}
