/*
 * mf-bench's report: the table (a commented header, then a row per
 * result; with device directions a last column names each row's
 * baseline) or, with --json, one JSON object per result, on stdout.
 *
 * Invariants: the parent prints what rank 0 sends, and rank 0 of a pool
 * started elsewhere (--store) prints the same itself; the header comes
 * once, before the first row, and every row is flushed as it comes.
 */
#include "mf_bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *const mb_layout_names[MB_LAYOUTS] = {"single", "batch", "kv"};
const mb_dir_info_t mb_dirs[MB_DIRS] = {
    [MB_LH2GH] = {"LH2GH", false, false, true, false},
    [MB_GH2LH] = {"GH2LH", true, false, false, false},
    [MB_GH2GH] = {"GH2GH", true, false, true, false},
    [MB_LD2GH] = {"LD2GH", false, true, true, false},
    [MB_GH2LD] = {"GH2LD", true, false, false, true},
    [MB_LH2GD] = {"LH2GD", false, false, true, true},
    [MB_GD2LH] = {"GD2LH", true, true, false, false},
    [MB_LD2GD] = {"LD2GD", false, true, true, true},
    [MB_GD2LD] = {"GD2LD", true, true, false, true},
    [MB_GH2GD] = {"GH2GD", true, false, true, true},
    [MB_GD2GH] = {"GD2GH", true, true, true, false},
    [MB_GD2GD] = {"GD2GD", true, true, true, true},
};

const char *const mb_base_names[MB_BASES] = {
    [MB_BASE_NONE] = "none",         [MB_BASE_MEMCPY] = "memcpy",
    [MB_BASE_H2D] = "cuda_h2d",      [MB_BASE_D2H] = "cuda_d2h",
    [MB_BASE_D2D] = "cuda_d2d",      [MB_BASE_TCP_WRITE] = "tcp_write",
    [MB_BASE_TCP_READ] = "tcp_read",
};

static const char *mb_size_str(uint64_t size, char *buf, size_t len)
{
    if (size >= BENCH_GIB && size % BENCH_GIB == 0) {
        snprintf(buf, len, "%" PRIu64 " GiB", size / BENCH_GIB);
    } else if (size >= BENCH_MIB && size % BENCH_MIB == 0) {
        snprintf(buf, len, "%" PRIu64 " MiB", size / BENCH_MIB);
    } else if (size >= BENCH_KIB && size % BENCH_KIB == 0) {
        snprintf(buf, len, "%" PRIu64 " KiB", size / BENCH_KIB);
    } else {
        snprintf(buf, len, "%" PRIu64 " B", size);
    }
    return buf;
}

void mb_report_header(uint32_t world, uint64_t split_min)
{
    bool host = mb_opts.dirs[MB_LH2GH] || mb_opts.dirs[MB_GH2LH] ||
                mb_opts.dirs[MB_GH2GH];
    char ws[32], llc[32];

    if (mb_opts.json) {
        return;
    }
    if (mb_opts.device) {
        printf("# mf-bench %s: %u ranks, each with a host and a device "
               "segment; rank 0 copies to/from rank 1 %s\n",
               mf_version(), world,
               world >= 3 ? "(G*2G*: rank 1 -> rank 2)"
                          : "(G*2G* skipped: needs 3 ranks)");
        printf("# L = rank 0's own memory: host (pinned, cuMemAllocHost, in "
               "device directions) or device (cuMemAlloc); G = a GVA in a "
               "segment; H = host, D = device\n");
    } else {
        printf("# mf-bench %s: %u ranks, rank 0 copies to/from rank 1 "
               "%s\n",
               mf_version(), world,
               world >= 3 ? "(GH2GH: rank 1 -> rank 2)"
                          : "(GH2GH skipped: needs 3 ranks)");
    }
    if (mb_opts.iters > 0) {
        printf("# GB/s = 1e9 bytes/s; median of %u timed copies, after one "
               "warm-up\n",
               mb_opts.iters);
    } else {
        printf("# GB/s = 1e9 bytes/s; median of >= %u timed samples (each "
               ">= 1 ms) over >= %.2f s, after one warm-up\n",
               MB_MIN_SAMPLES, mb_opts.min_time);
    }
    printf("# threads = threads doing the copy (copy_threads + caller); "
           "pieces: 1 = mf_bm_copy, else mf_bm_copy_batch (%u equal pieces, "
           "or %d KV pieces 61x128K+61x16K)\n",
           mb_opts.pieces, MB_KV_PIECES);
    if (mb_opts.trans) {
        printf("# api: TRANS: LH2GH = mf_trans_write, GH2LH = mf_trans_read "
               "(pieces > 1: mf_trans_batch) of rank 1's segment, "
               "registered as a TRANS buffer\n");
    }
    if (mb_opts.tcp) {
        printf("# transport forced to tcp (even between ranks of one host); "
               "lanes = TCP connections per peer (tcp.lanes)\n");
    } else if (mb_opts.wire) {
        printf("# transport forced to %s (even between ranks of one host; "
               "UCX_TLS picks UCX's own transports); lanes = connections of "
               "the baseline\n",
               mb_opts.transport);
    }
    if (mb_opts.wire) {
        printf("# baseline: raw TCP stream between the same two processes "
               "(rank 0 and rank 1) over as many connections as lanes, one "
               "thread per connection on each side, plain send/recv into a "
               "buffer; a write waits for a 1-byte ack, a read sends a "
               "request first\n");
    } else if (host) {
        printf("# baseline: memcpy of the same pieces between private buffers "
               "of one process, by the same number of threads (bytes split "
               "evenly) when size >= copy_split_min (%" PRIu64
               " bytes), else by one\n",
               split_min);
    }
    if (mb_opts.device && !mb_opts.wire) {
        printf("# device directions' baseline: the driver's copy of the same "
               "pieces between rank 0's own memory of the same kinds "
               "(cuda_d2h: device -> pinned host, cuda_h2d: pinned host -> "
               "device, cuda_d2d: device -> device): cuMemcpyAsync of each "
               "piece, the bytes split evenly over as many streams as threads "
               "copy when size >= copy_split_min, else on one, then "
               "cuStreamSynchronize\n");
    }
    if (mb_opts.ws > 0) {
        printf("# working set: a timed copy and its baseline rotate through "
               "copies of their pieces, each end spanning >= %s (--working-"
               "set; the last-level cache is %s), so the bytes come from "
               "DRAM\n",
               mb_size_str(mb_opts.ws, ws, sizeof(ws)),
               mb_size_str(mb_opts.llc, llc, sizeof(llc)));
    } else {
        printf("# working set: none, every timed copy moves the same bytes "
               "(cache-warm where they fit the %s last-level cache)\n",
               mb_size_str(mb_opts.llc, llc, sizeof(llc)));
    }
    printf("# every configuration was verified byte for byte before it was "
           "timed\n");
    if (mb_opts.wire) {
        printf("%-9s %-9s %10s %6s %7s %5s %9s %9s %6s", "transport",
               "direction", "size", "pieces", "threads", "lanes", "GB/s",
               "base GB/s", "ratio");
    } else {
        printf("%-9s %-9s %10s %6s %7s %9s %9s %6s", "transport", "direction",
               "size", "pieces", "threads", "GB/s", "base GB/s", "ratio");
    }
    printf("%s\n", mb_opts.device ? " baseline" : "");
    fflush(stdout);
}

void mb_report_result(const mb_record_t *r)
{
    char sz[32];
    double ratio = r->base_gbps > 0 ? r->gbps / r->base_gbps : 0;

    if (mb_opts.json) {
        printf("{\"transport\":\"%s\",\"direction\":\"%s\",\"layout\":\"%s\","
               "\"size\":%" PRIu64 ",\"pieces\":%u,\"threads\":%u,"
               "\"lanes\":%u,\"gbps\":%.3f,\"baseline\":\"%s\","
               "\"baseline_gbps\":%.3f,\"ratio\":%.3f,\"samples\":%u,"
               "\"stat\":\"median\",\"ranks\":%u,\"span\":%" PRIu64 "}\n",
               mb_opts.transport, mb_dirs[r->dir].name,
               mb_layout_names[r->layout], r->size, r->pieces, r->threads,
               r->lanes, r->gbps, mb_base_names[r->base], r->base_gbps, ratio,
               r->samples, r->world, r->span);
        fflush(stdout);
        return;
    }
    if (mb_opts.wire) {
        printf("%-9s %-9s %10s %6u %7u %5u %9.2f %9.2f %6.2f",
               mb_opts.transport, mb_dirs[r->dir].name,
               mb_size_str(r->size, sz, sizeof(sz)), r->pieces, r->threads,
               r->lanes, r->gbps, r->base_gbps, ratio);
    } else {
        printf("%-9s %-9s %10s %6u %7u %9.2f %9.2f %6.2f", mb_opts.transport,
               mb_dirs[r->dir].name, mb_size_str(r->size, sz, sizeof(sz)),
               r->pieces, r->threads, r->gbps, r->base_gbps, ratio);
    }
    if (mb_opts.device) {
        printf(" %s", mb_base_names[r->base]);
    }
    printf("\n");
    fflush(stdout);
}

int mb_report_emit(int out_fd, const mb_record_t *r)
{
    if (out_fd < 0) {
        if (r->type == MB_REC_HEADER) {
            mb_report_header(r->world, r->split_min);
        } else {
            mb_report_result(r);
        }
        return 0;
    }
    if (write(out_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
        bench_err("writing a result to the parent: %s", strerror(errno));
        return -1;
    }
    return 0;
}
