/*
 * What calls cost: the tracer's points on the client's paths (one per
 * request type to the meta service, the copies, whole puts and gets) and,
 * per thread, what the last object call spent waiting for the meta service
 * and moving bytes (mmc_call_stats), measured whether the tracer is on or
 * not: two clock reads per request and per copy.
 */
#include "cache/local/local.h"
#include "util/trace.h"

#include <string.h>

#define MMC_TP(_op)                                                            \
    [MMC_OP_##_op] = {.name = "mmc.rpc." #_op, .min_ns = UINT64_MAX}

static mf_trace_point_t mmc_tp_rpc[MMC_OP_MAX] = {
    MMC_TP(HELLO),      MMC_TP(REGISTER),   MMC_TP(UNREGISTER),
    MMC_TP(PUT_ALLOC),  MMC_TP(PUT_COMMIT), MMC_TP(GET),
    MMC_TP(RELEASE),    MMC_TP(EXIST),      MMC_TP(QUERY),
    MMC_TP(REMOVE),     MMC_TP(PING),       MMC_TP(RESTORE),
    MMC_TP(RECORD_ACK), MMC_TP(RECORD),     MMC_TP(REPAIR_DONE),
    MMC_TP(REPAIR),     MMC_TP(LEASE),      MMC_TP(REMOVE_ALL),
};
MF_TRACE_POINT(mmc_tp_copy, "mmc.copy");

/* This thread's call in progress and its last finished one. */
static __thread struct {
    uint64_t start;
    uint64_t meta_ns;
    uint64_t data_ns;
    uint32_t rpcs;
    mmc_call_stats_t last;
} mmc_stats_tl;

void mmc_local_stats_begin(void)
{
    mmc_stats_tl.start = mf_time_ns();
    mmc_stats_tl.meta_ns = 0;
    mmc_stats_tl.data_ns = 0;
    mmc_stats_tl.rpcs = 0;
}

void mmc_local_stats_end(mf_trace_point_t *tp)
{
    uint64_t now = mf_time_ns();

    mmc_stats_tl.last.total_ns = now - mmc_stats_tl.start;
    mmc_stats_tl.last.meta_ns = mmc_stats_tl.meta_ns;
    mmc_stats_tl.last.data_ns = mmc_stats_tl.data_ns;
    mmc_stats_tl.last.meta_rpcs = mmc_stats_tl.rpcs;
    if (tp != NULL &&
        atomic_load_explicit(&mf_trace_on, memory_order_relaxed)) {
        mf_trace_record(tp, now - mmc_stats_tl.start);
    }
}

void mmc_local_stats_rpc(uint16_t op, uint64_t start)
{
    uint64_t ns = mf_time_ns() - start;

    mmc_stats_tl.meta_ns += ns;
    mmc_stats_tl.rpcs++;
    if (op < MMC_OP_MAX && mmc_tp_rpc[op].name != NULL &&
        atomic_load_explicit(&mf_trace_on, memory_order_relaxed)) {
        mf_trace_record(&mmc_tp_rpc[op], ns);
    }
}

void mmc_local_stats_data(uint64_t start)
{
    uint64_t ns = mf_time_ns() - start;

    mmc_stats_tl.data_ns += ns;
    if (atomic_load_explicit(&mf_trace_on, memory_order_relaxed)) {
        mf_trace_record(&mmc_tp_copy, ns);
    }
}

MF_API void mmc_call_stats(mmc_call_stats_t *stats)
{
    size_t size;

    if (stats == NULL || stats->size < sizeof(size_t)) {
        return;
    }
    size = MF_MIN(stats->size, sizeof(mmc_stats_tl.last));
    mmc_stats_tl.last.size = size;
    memcpy(stats, &mmc_stats_tl.last, size);
}

MF_API void mmc_trace_enable(bool on)
{
    mf_trace_enable(on);
}

MF_API void mmc_trace_clear(void)
{
    mf_trace_clear();
}

MF_API size_t mmc_trace_get(mf_trace_stat_t *stats, size_t max)
{
    return mf_trace_get(stats, max);
}

MF_API mmc_status_t mmc_trace_write(const char *path)
{
    return mf_trace_write(path);
}
