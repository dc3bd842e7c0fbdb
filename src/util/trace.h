/*
 * The built-in tracer: named trace points that time a stretch of code and
 * keep, per point, the count, total, minimum, maximum and a log-linear
 * histogram of the durations (for percentiles), switched on and off at
 * run time.  Off, a point costs one relaxed load of a flag; on, two clock
 * reads and a few relaxed atomic adds, from any thread.
 *
 *     MF_TRACE_POINT(tp_commit, "mmc.rpc.PUT_COMMIT");
 *     uint64_t t0 = mf_trace_begin();
 *     ... the work ...
 *     mf_trace_end(&tp_commit, t0);
 *
 * A point registers itself on its first record; mf_trace_dump prints every
 * registered point.  MF_TRACE (environment) switches the tracer on at the
 * first mf_trace_env() call: "1" or "log" dumps to the log at exit, any
 * other value is a file the dump is written to at exit.  Each library
 * (libmemfabric, libmemcache) has its own registry (its own copy of this
 * file's code), as it has its own log.
 */
#ifndef MF_UTIL_TRACE_H
#define MF_UTIL_TRACE_H

#include "util/misc.h"

#include <memfabric/mf_status.h>
#include <memfabric/mf_trace.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Log-linear buckets: 4 per power of two of nanoseconds. */
#define MF_TRACE_SUB     4
#define MF_TRACE_BUCKETS (64 * MF_TRACE_SUB)

typedef struct mf_trace_point {
    const char *name;
    atomic_int state; /* 0 new, 1 registering, 2 registered */
    struct mf_trace_point *next;
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t total_ns;
    atomic_uint_fast64_t min_ns;
    atomic_uint_fast64_t max_ns;
    atomic_uint_fast64_t hist[MF_TRACE_BUCKETS];
} mf_trace_point_t;

#define MF_TRACE_POINT(_var, _name)                                            \
    static mf_trace_point_t _var = {.name = (_name), .min_ns = UINT64_MAX}

extern atomic_bool mf_trace_on;

/* The start of a traced stretch: 0 when the tracer is off. */
static inline uint64_t mf_trace_begin(void)
{
    return atomic_load_explicit(&mf_trace_on, memory_order_relaxed)
               ? mf_time_ns()
               : 0;
}

void mf_trace_record(mf_trace_point_t *tp, uint64_t ns);

/* Records the stretch begun at t0 (nothing when t0 is 0). */
static inline void mf_trace_end(mf_trace_point_t *tp, uint64_t t0)
{
    if (t0 != 0) {
        mf_trace_record(tp, mf_time_ns() - t0);
    }
}

/* Applies MF_TRACE once per process (later calls do nothing). */
void mf_trace_env(void);
/* Applies a setting (a config key `trace`) of the same form as MF_TRACE:
 * "" or "off" leaves the tracer as it is, "1" or "log" switches it on
 * with its dump at exit to the log, anything else names the file of that
 * dump.  MF_TRACE, when given, wins over every setting. */
void mf_trace_config(const char *value);
/* A table of every point with a count: name, count, total, mean, min,
 * p50, p90, p99, max (microseconds).  mf_trace_enable, mf_trace_clear,
 * mf_trace_get and mf_trace_write are the public calls (mf_trace.h). */
void mf_trace_dump(FILE *out);

#endif
