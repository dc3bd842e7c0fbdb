/*
 * The built-in tracer of libmemfabric: named trace points on its paths
 * (copies, transports) time what they cover and keep, per point, the
 * count, total, minimum, maximum and percentiles.  Off by default, where a
 * point costs one load of a flag.
 *
 * MF_TRACE in the environment switches it on at mf_init(): "1" or "log"
 * writes every point to the log at exit, any other value is the path of a
 * file written at exit.  libmemcache has a tracer of its own (mmc_trace_*
 * in <memcache/mmc.h>), as it has a log of its own.
 */
#ifndef MEMFABRIC_MF_TRACE_H
#define MEMFABRIC_MF_TRACE_H

#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

MF_BEGIN_DECLS

/* One trace point's figures; percentiles are the tops of log-linear
 * buckets (4 per power of two: within 19 % of the true value). */
typedef struct mf_trace_stat {
    const char *name; /* static: "mf.copy", "mmc.rpc.GET"... */
    uint64_t count;
    uint64_t total_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t p50_ns;
    uint64_t p90_ns;
    uint64_t p99_ns;
} mf_trace_stat_t;

MF_API void mf_trace_enable(bool on);
/* Zeroes every point. */
MF_API void mf_trace_clear(void);
/* The points into stats (max entries); how many points there are (may
 * exceed max).  Points appear once they recorded something. */
MF_API size_t mf_trace_get(mf_trace_stat_t *stats, size_t max);
/* Writes a table of every point with a count to path (NULL: the log, at
 * info level whatever the level is). */
MF_API mf_status_t mf_trace_write(const char *path);

MF_END_DECLS

#endif /* MEMFABRIC_MF_TRACE_H */
