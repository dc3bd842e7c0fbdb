/*
 * The built-in tracer (trace.h).  Points register themselves on their
 * first record into a list under a mutex (once per point); records are
 * relaxed atomics, so a dump taken while points record is a consistent
 * enough snapshot per field, not across fields.
 */
#include "util/trace.h"

#include "util/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

atomic_bool mf_trace_on;

static struct {
    pthread_mutex_t lock;
    mf_trace_point_t *head;
    pthread_once_t env_once;
    bool env_set;   /* MF_TRACE was given: settings do not change it */
    bool at_exit;   /* the dump at exit is registered */
    char path[512]; /* dump at exit here; "" the log */
} mf_trace_g = {.lock = PTHREAD_MUTEX_INITIALIZER,
                .env_once = PTHREAD_ONCE_INIT};

static unsigned mf_trace_bucket(uint64_t ns)
{
    unsigned log2, sub;

    if (ns < MF_TRACE_SUB) {
        return (unsigned)ns;
    }
    log2 = 63u - (unsigned)__builtin_clzll(ns);
    sub = (unsigned)(ns >> (log2 - 2)) & (MF_TRACE_SUB - 1);
    return log2 * MF_TRACE_SUB + sub;
}

/* The upper bound of bucket b, in ns. */
static uint64_t mf_trace_bucket_top(unsigned b)
{
    unsigned log2 = b / MF_TRACE_SUB, sub = b % MF_TRACE_SUB;

    if (log2 < 2) {
        return b;
    }
    return ((uint64_t)(MF_TRACE_SUB + sub + 1) << (log2 - 2)) - 1;
}

static void mf_trace_register(mf_trace_point_t *tp)
{
    int expected = 0;

    if (!atomic_compare_exchange_strong(&tp->state, &expected, 1)) {
        return; /* registered, or being registered by another thread */
    }
    pthread_mutex_lock(&mf_trace_g.lock);
    tp->next = mf_trace_g.head;
    mf_trace_g.head = tp;
    pthread_mutex_unlock(&mf_trace_g.lock);
    atomic_store(&tp->state, 2);
}

void mf_trace_record(mf_trace_point_t *tp, uint64_t ns)
{
    uint64_t cur;

    if (atomic_load_explicit(&tp->state, memory_order_acquire) != 2) {
        mf_trace_register(tp);
    }
    atomic_fetch_add_explicit(&tp->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tp->total_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&tp->hist[mf_trace_bucket(ns)], 1,
                              memory_order_relaxed);
    cur = atomic_load_explicit(&tp->min_ns, memory_order_relaxed);
    while (ns < cur && !atomic_compare_exchange_weak_explicit(
                           &tp->min_ns, &cur, ns, memory_order_relaxed,
                           memory_order_relaxed)) {
    }
    cur = atomic_load_explicit(&tp->max_ns, memory_order_relaxed);
    while (ns > cur && !atomic_compare_exchange_weak_explicit(
                           &tp->max_ns, &cur, ns, memory_order_relaxed,
                           memory_order_relaxed)) {
    }
}

MF_API void mf_trace_enable(bool on)
{
    atomic_store(&mf_trace_on, on);
}

static void mf_trace_at_exit(void)
{
    (void)mf_trace_write(mf_trace_g.path[0] != '\0' ? mf_trace_g.path : NULL);
}

/* Whether v (MF_TRACE's or a setting's value) switches the tracer off. */
static bool mf_trace_off(const char *v)
{
    return v == NULL || *v == '\0' || strcmp(v, "0") == 0 ||
           strcmp(v, "off") == 0;
}

/* Switches the tracer on with v's dump at exit: "1" or "log" the log,
 * anything else a file.  Under mf_trace_g.lock. */
static void mf_trace_apply_locked(const char *v)
{
    if (strcmp(v, "1") != 0 && strcmp(v, "log") != 0) {
        mf_strlcpy(mf_trace_g.path, v, sizeof(mf_trace_g.path));
    } else {
        mf_trace_g.path[0] = '\0';
    }
    mf_trace_enable(true);
    if (!mf_trace_g.at_exit) {
        mf_trace_g.at_exit = true;
        if (atexit(mf_trace_at_exit) != 0) {
            mf_warn("trace: cannot dump at exit (atexit failed)");
        }
    }
}

static void mf_trace_env_once(void)
{
    const char *v = getenv("MF_TRACE");

    if (v == NULL || *v == '\0') {
        return;
    }
    pthread_mutex_lock(&mf_trace_g.lock);
    mf_trace_g.env_set = true;
    if (!mf_trace_off(v)) {
        mf_trace_apply_locked(v);
    }
    pthread_mutex_unlock(&mf_trace_g.lock);
}

void mf_trace_env(void)
{
    pthread_once(&mf_trace_g.env_once, mf_trace_env_once);
}

void mf_trace_config(const char *value)
{
    mf_trace_env();
    pthread_mutex_lock(&mf_trace_g.lock);
    if (!mf_trace_g.env_set && !mf_trace_off(value)) {
        mf_trace_apply_locked(value);
    }
    pthread_mutex_unlock(&mf_trace_g.lock);
}

MF_API void mf_trace_clear(void)
{
    pthread_mutex_lock(&mf_trace_g.lock);
    for (mf_trace_point_t *tp = mf_trace_g.head; tp != NULL; tp = tp->next) {
        atomic_store(&tp->count, 0);
        atomic_store(&tp->total_ns, 0);
        atomic_store(&tp->min_ns, UINT64_MAX);
        atomic_store(&tp->max_ns, 0);
        for (unsigned b = 0; b < MF_TRACE_BUCKETS; b++) {
            atomic_store(&tp->hist[b], 0);
        }
    }
    pthread_mutex_unlock(&mf_trace_g.lock);
}

/* The duration under which a fraction q of the records fall. */
static uint64_t mf_trace_quantile(const uint64_t *hist, uint64_t count,
                                  double q)
{
    uint64_t want = (uint64_t)(q * (double)count), seen = 0;

    if (want == 0) {
        want = 1;
    }
    for (unsigned b = 0; b < MF_TRACE_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= want) {
            return mf_trace_bucket_top(b);
        }
    }
    return 0;
}

static void mf_trace_stat_of(mf_trace_point_t *tp, mf_trace_stat_t *st)
{
    uint64_t hist[MF_TRACE_BUCKETS];

    memset(st, 0, sizeof(*st));
    st->name = tp->name;
    st->count = atomic_load(&tp->count);
    st->total_ns = atomic_load(&tp->total_ns);
    st->min_ns = st->count != 0 ? atomic_load(&tp->min_ns) : 0;
    st->max_ns = atomic_load(&tp->max_ns);
    for (unsigned b = 0; b < MF_TRACE_BUCKETS; b++) {
        hist[b] = atomic_load(&tp->hist[b]);
    }
    if (st->count != 0) {
        st->p50_ns = mf_trace_quantile(hist, st->count, 0.50);
        st->p90_ns = mf_trace_quantile(hist, st->count, 0.90);
        st->p99_ns = mf_trace_quantile(hist, st->count, 0.99);
        /* a bucket's top may pass the largest record */
        st->p50_ns = MF_MIN(st->p50_ns, st->max_ns);
        st->p90_ns = MF_MIN(st->p90_ns, st->max_ns);
        st->p99_ns = MF_MIN(st->p99_ns, st->max_ns);
    }
}

MF_API size_t mf_trace_get(mf_trace_stat_t *stats, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&mf_trace_g.lock);
    for (mf_trace_point_t *tp = mf_trace_g.head; tp != NULL; tp = tp->next) {
        if (n < max) {
            mf_trace_stat_of(tp, &stats[n]);
        }
        n++;
    }
    pthread_mutex_unlock(&mf_trace_g.lock);
    return n;
}

#define MF_TRACE_US(_ns) ((double)(_ns) / 1000.0)

void mf_trace_dump(FILE *out)
{
    mf_trace_stat_t st;

    fprintf(out, "%-32s %10s %12s %10s %10s %10s %10s %10s %10s\n", "point",
            "count", "total_ms", "mean_us", "min_us", "p50_us", "p90_us",
            "p99_us", "max_us");
    pthread_mutex_lock(&mf_trace_g.lock);
    for (mf_trace_point_t *tp = mf_trace_g.head; tp != NULL; tp = tp->next) {
        mf_trace_stat_of(tp, &st);
        if (st.count == 0) {
            continue;
        }
        fprintf(out,
                "%-32s %10" PRIu64 " %12.3f %10.1f %10.1f %10.1f %10.1f %10.1f "
                "%10.1f\n",
                st.name, st.count, (double)st.total_ns / 1e6,
                MF_TRACE_US(st.total_ns) / (double)st.count,
                MF_TRACE_US(st.min_ns), MF_TRACE_US(st.p50_ns),
                MF_TRACE_US(st.p90_ns), MF_TRACE_US(st.p99_ns),
                MF_TRACE_US(st.max_ns));
    }
    pthread_mutex_unlock(&mf_trace_g.lock);
    fflush(out);
}

static void mf_trace_dump_log(void)
{
    mf_trace_stat_t st;

    pthread_mutex_lock(&mf_trace_g.lock);
    for (mf_trace_point_t *tp = mf_trace_g.head; tp != NULL; tp = tp->next) {
        mf_trace_stat_of(tp, &st);
        if (st.count == 0) {
            continue;
        }
        /* asked for: whatever the level */
        mf_log_emit(MF_LOG_INFO, __FILE__, __LINE__,
                    "trace %s: count %" PRIu64 ", mean %.1f us, min %.1f, p50 "
                    "%.1f, p90 %.1f, p99 %.1f, max %.1f us",
                    st.name, st.count,
                    MF_TRACE_US(st.total_ns) / (double)st.count,
                    MF_TRACE_US(st.min_ns), MF_TRACE_US(st.p50_ns),
                    MF_TRACE_US(st.p90_ns), MF_TRACE_US(st.p99_ns),
                    MF_TRACE_US(st.max_ns));
    }
    pthread_mutex_unlock(&mf_trace_g.lock);
}

MF_API mf_status_t mf_trace_write(const char *path)
{
    FILE *out;

    if (path == NULL) {
        mf_trace_dump_log();
        return MF_OK;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        mf_error("trace: cannot write %s: %m", path);
        return MF_ERR_IO;
    }
    mf_trace_dump(out);
    if (fclose(out) != 0) {
        mf_error("trace: cannot write %s: %m", path);
        return MF_ERR_IO;
    }
    return MF_OK;
}
