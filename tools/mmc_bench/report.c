/*
 * mmc-bench's report: the records of every client turned into rows (one
 * per measurement of all clients together, and with --per-proc one per
 * client), printed as a table with a commented header or, with --json, as
 * one JSON document.
 *
 * Invariants: a row of all clients takes the median of their p50s, the
 * largest p99, and rates over the time of the measurement's rounds (from
 * the first start, the longest sum of a client's rounds); the baseline of a
 * block op (memcpy, or with --device the driver's copy in the same direction)
 * is the one of the same batch size (and client).
 */
#include "mmc_bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mcb_record_t mcb_recs[MCB_MAX_RECS];
static unsigned mcb_nrecs;

void mcb_report_add(const mcb_record_t *r)
{
    if (mcb_nrecs < MCB_MAX_RECS) {
        mcb_recs[mcb_nrecs++] = *r;
    }
}

/* One row: a process's measurement, or all processes' (proc < 0). */
typedef struct mcb_row {
    mcb_op_t op;
    int proc;
    uint32_t blocks;
    uint32_t keys;
    uint32_t calls;
    uint32_t procs;
    double p50_us;
    double p99_us;
    double gbps;          /* all processes: bytes / wall time */
    double gbps_proc;     /* per process: blocks x block / p50 */
    double per_block_us;  /* p50 / blocks */
    double base_block_us; /* the baseline's us per block (block ops) or
                             per call (exist: the ping-pong's p50) */
    double ratio;
    double keys_per_s;      /* all processes */
    double keys_per_s_proc; /* per process: keys / p50 */
} mcb_row_t;

static const mcb_record_t *mcb_find(mcb_op_t op, uint32_t blocks, int proc)
{
    unsigned i;

    for (i = 0; i < mcb_nrecs; i++) {
        const mcb_record_t *r = &mcb_recs[i];

        if (r->op == (uint32_t)op && r->blocks == blocks &&
            (int)r->proc == proc) {
            return r;
        }
    }
    return NULL;
}

static void mcb_row_of(const mcb_record_t *r, mcb_row_t *row)
{
    const mcb_op_t bop = mcb_op_base_of((mcb_op_t)r->op);
    const mcb_record_t *base = mcb_find(bop, r->blocks, (int)r->proc);
    double secs = (double)(r->t_end - r->t_start) / 1e9;

    memset(row, 0, sizeof(*row));
    row->op = (mcb_op_t)r->op;
    row->proc = (int)r->proc;
    row->blocks = r->blocks;
    row->keys = r->keys;
    row->calls = r->calls;
    row->procs = 1;
    row->p50_us = r->p50_us;
    row->p99_us = r->p99_us;
    row->gbps = secs > 0 ? (double)r->bytes / secs / 1e9 : 0;
    row->keys_per_s = secs > 0 ? (double)r->items / secs : 0;
    if (r->p50_us > 0) {
        row->keys_per_s_proc = r->keys * 1e6 / r->p50_us;
    }
    if (r->blocks > 0) {
        row->per_block_us = r->p50_us / r->blocks;
        row->gbps_proc = (double)r->blocks * MCB_BLOCK / (r->p50_us * 1e3);
        if (base != NULL) { /* the baseline's own row: ratio 1 */
            row->base_block_us = base->p50_us / base->blocks;
            row->ratio = row->per_block_us / row->base_block_us;
        }
    } else if (bop != (mcb_op_t)r->op && base != NULL &&
               !mcb_op_blocks(bop)) { /* a call against the ping-pong */
        row->base_block_us = base->p50_us;
        row->ratio = row->p50_us / row->base_block_us;
    }
}

/* All processes: p50 = median of their p50s, p99 = the largest p99, rates
 * = everything moved / (last end - first start). */
static int mcb_row_all(mcb_op_t op, uint32_t blocks, mcb_row_t *row)
{
    double p50s[MCB_MAX_PROCS], per_block[MCB_MAX_PROCS];
    double base_block[MCB_MAX_PROCS];
    uint64_t bytes = 0, items = 0, t0 = UINT64_MAX, t1 = 0;
    unsigned n = 0, nb = 0, i;
    mcb_row_t one;
    double secs;

    memset(row, 0, sizeof(*row));
    for (i = 0; i < mcb_nrecs; i++) {
        const mcb_record_t *r = &mcb_recs[i];

        if (r->op != (uint32_t)op || r->blocks != blocks ||
            n == MCB_MAX_PROCS) {
            continue;
        }
        mcb_row_of(r, &one);
        p50s[n] = r->p50_us;
        per_block[n] = one.per_block_us;
        if (one.base_block_us > 0) {
            base_block[nb++] = one.base_block_us;
        }
        row->p99_us = r->p99_us > row->p99_us ? r->p99_us : row->p99_us;
        row->calls += r->calls;
        row->gbps_proc += one.gbps_proc;
        row->keys_per_s_proc += one.keys_per_s_proc;
        row->keys = r->keys;
        bytes += r->bytes;
        items += r->items;
        t0 = r->t_start < t0 ? r->t_start : t0;
        t1 = r->t_end > t1 ? r->t_end : t1;
        n++;
    }
    if (n == 0) {
        return -1;
    }
    qsort(p50s, n, sizeof(double), bench_cmp_double);
    qsort(per_block, n, sizeof(double), bench_cmp_double);
    qsort(base_block, nb, sizeof(double), bench_cmp_double);
    row->op = op;
    row->proc = -1;
    row->procs = n;
    row->blocks = blocks;
    row->p50_us = bench_median_double(p50s, n);
    row->gbps_proc /= n;
    row->keys_per_s_proc /= n;
    secs = (double)(t1 - t0) / 1e9;
    row->gbps = secs > 0 ? (double)bytes / secs / 1e9 : 0;
    row->keys_per_s = secs > 0 ? (double)items / secs : 0;
    if (nb > 0) {
        row->base_block_us = bench_median_double(base_block, nb);
    }
    if (blocks > 0) {
        row->per_block_us = bench_median_double(per_block, n);
        if (nb > 0) {
            row->ratio = row->per_block_us / row->base_block_us;
        }
    } else if (nb > 0) {
        row->ratio = row->p50_us / row->base_block_us;
    }
    return 0;
}

/* s as a JSON string body: quotes, backslashes and controls escaped. */
static void mcb_json_str(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            printf("\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            printf("\\u%04x", (unsigned)(unsigned char)*s);
        } else {
            putchar(*s);
        }
    }
}

static const char *mcb_mode(void)
{
    return mcb_opts.netns ? "cross-host" : "same-host";
}

/* What a row is compared with ("" for none). */
static const char *mcb_base_name(const mcb_row_t *r)
{
    return r->blocks > 0 || r->base_block_us > 0
               ? mcb_op_names[mcb_op_base_of(r->op)]
               : "";
}

static void mcb_json_row(const mcb_row_t *r, bool *first)
{
    printf("%s\n    {\"mode\":\"%s\",\"op\":\"%s\",\"proc\":%d,\"procs\":%u,"
           "\"blocks_per_call\":%u,\"keys_per_call\":%u,\"calls\":%u,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"gbps\":%.3f,"
           "\"gbps_per_proc\":%.3f,\"per_block_us\":%.2f,"
           "\"baseline\":\"%s\",\"baseline_per_block_us\":%.2f,"
           "\"ratio\":%.3f,\"keys_per_s\":%.0f,\"keys_per_s_per_proc\":%.0f}",
           *first ? "" : ",", mcb_mode(), mcb_op_names[r->op], r->proc,
           r->procs, r->blocks, r->keys, r->calls, r->p50_us, r->p99_us,
           r->gbps, r->gbps_proc, r->per_block_us, mcb_base_name(r),
           r->base_block_us, r->ratio, r->keys_per_s, r->keys_per_s_proc);
    *first = false;
}

static void mcb_table_block_row(const mcb_row_t *r)
{
    char who[16], ratio[16];

    if (r->proc < 0) {
        snprintf(who, sizeof(who), "all");
    } else {
        snprintf(who, sizeof(who), "p%d", r->proc);
    }
    if (mcb_op_base(r->op)) {
        snprintf(ratio, sizeof(ratio), "-");
    } else {
        snprintf(ratio, sizeof(ratio), "%.2f", r->ratio);
    }
    printf("%-10s %-4s %6u %10.1f %10.1f %8.2f %9.2f %10.1f %10.1f %6s\n",
           mcb_op_names[r->op], who, r->blocks, r->p50_us, r->p99_us, r->gbps,
           r->gbps_proc, r->per_block_us,
           mcb_op_base(r->op) ? r->per_block_us : r->base_block_us, ratio);
}

static void mcb_table_meta_row(const mcb_row_t *r)
{
    char who[16], base[16] = "-", ratio[16] = "-";

    if (r->proc < 0) {
        snprintf(who, sizeof(who), "all");
    } else {
        snprintf(who, sizeof(who), "p%d", r->proc);
    }
    if (r->base_block_us > 0) {
        snprintf(base, sizeof(base), "%.1f", r->base_block_us);
        snprintf(ratio, sizeof(ratio), "%.2f", r->ratio);
    }
    printf("%-12s %-4s %9u %10.1f %10.1f %12.0f %12.0f %10s %6s\n",
           mcb_op_names[r->op], who, r->keys, r->p50_us, r->p99_us,
           r->keys_per_s, r->keys_per_s_proc, base, ratio);
}

void mcb_report_print(const char *url, bool spawned)
{
    const unsigned copy_threads = mcb_nrecs > 0 ? mcb_recs[0].copy_threads : 0;
    static const mcb_op_t block_ops[] = {
        MCB_OP_PUT,        MCB_OP_GET,       MCB_OP_PUT_REMOTE,
        MCB_OP_GET_REMOTE, MCB_OP_MEMCPY,    MCB_OP_CUDA_D2H,
        MCB_OP_CUDA_H2D,   MCB_OP_TCP_WRITE, MCB_OP_TCP_READ};
    const unsigned lanes = mcb_nrecs > 0 ? mcb_recs[0].lanes : 0;
    mcb_row_t row;
    bool first = true;
    unsigned i, b, p;
    int op;

    if (mcb_opts.json) {
        printf("{\"tool\":\"mmc-bench\",\"mode\":\"%s\",\"procs\":%u,"
               "\"hosts\":%u,\"block_bytes\":%" PRIu64 ",\"block_pieces\":%d,"
               "\"block_memory\":\"%s\",\"dram_per_proc\":%" PRIu64
               ",\"blocks_per_proc\":%u,\"llc_bytes\":%" PRIu64
               ",\"tcp_lanes\":%u,\"meta\":\"",
               mcb_mode(), mcb_opts.procs, mcb_opts.hosts, MCB_BLOCK,
               MCB_PIECES, mcb_opts.device ? "device" : "host", mcb_opts.dram,
               mcb_opts.blocks, mcb_opts.llc, lanes);
        mcb_json_str(url);
        printf("\",\"meta_spawned\":%s,\"transport\":\"%s\","
               "\"copy_threads\":%u,\"stat\":\"median\",\"rows\":[",
               spawned ? "true" : "false", mcb_opts.transport, copy_threads);
        for (b = 0; b < mcb_opts.nbatches; b++) {
            for (i = 0; i < BENCH_ARRAY_LEN(block_ops); i++) {
                if (mcb_row_all(block_ops[i], mcb_opts.batches[b], &row) == 0) {
                    mcb_json_row(&row, &first);
                }
            }
        }
        for (op = MCB_OP_EXIST_BATCH; op < MCB_OPS; op++) {
            if (mcb_row_all((mcb_op_t)op, 0, &row) == 0) {
                mcb_json_row(&row, &first);
            }
        }
        for (i = 0; i < mcb_nrecs; i++) {
            mcb_row_of(&mcb_recs[i], &row);
            mcb_json_row(&row, &first);
        }
        printf("\n]}\n");
        fflush(stdout);
        return;
    }
    printf("# mmc-bench %s: %u client processes on %u host%s, one mmc-meta "
           "%s at %s, %s transport\n",
           mcb_mode(), mcb_opts.procs, mcb_opts.hosts,
           mcb_opts.hosts == 1 ? "" : "s (network namespaces)",
           spawned ? "(started by the bench)" : "(running)", url,
           strcmp(mcb_opts.transport, "auto") == 0 && !mcb_opts.netns
               ? "auto (shm on one host)"
               : mcb_opts.transport);
    if (mcb_opts.sized_procs || mcb_opts.sized_copy) {
        printf("# sized to the %u cores here: %u processes x (1 + %u copy "
               "threads)%s%s\n",
               mcb_opts.ncpu, mcb_opts.procs, copy_threads,
               mcb_opts.sized_procs ? "; --procs" : "",
               mcb_opts.sized_copy ? "; --set fabric.copy_threads=N" : "");
    }
    printf("# block = %" PRIu64 " bytes in %d pieces (61 x 128 KiB + 61 x 16 "
           "KiB); each process contributes %" PRIu64 " MiB and owns %u "
           "blocks (%" PRIu64 " MiB; the last-level cache is %" PRIu64
           " MiB%s)\n",
           MCB_BLOCK, MCB_PIECES, mcb_opts.dram / BENCH_MIB, mcb_opts.blocks,
           (uint64_t)mcb_opts.blocks * MCB_BLOCK / BENCH_MIB,
           mcb_opts.llc / BENCH_MIB,
           mcb_opts.quick ? "; --quick: cache-hot"
                          : ": calls cycle through "
                            "them, from DRAM");
    printf("# put: mmc_put_layers_batch (MMC_PUT_REPLACE) of the process's own "
           "blocks; get: mmc_get_layers_batch of blocks of every process (own "
           "and others', interleaved)\n");
    if (mcb_opts.hosts > 1) {
        printf("# put_remote: the same blocks under other keys, placed on a "
               "process of another host (preferred rank; checked); "
               "get_remote: blocks of the processes on other hosts only\n");
    }
    if (mcb_opts.device) {
        printf("# --device: the blocks of every process are device memory "
               "(cuMemAlloc; iov mem = MMC_MEM_DEVICE), put into and got "
               "from the DRAM pool; verified through the driver\n");
        printf("# cuda_d2h, cuda_h2d: the baselines of put and get, the "
               "driver's copy of the same pieces between the same device "
               "blocks and pinned host memory (cuMemAllocHost, laid out the "
               "same): cuMemcpyAsync of every piece on one stream, then one "
               "cuStreamSynchronize, in every process at the same time; the "
               "library copies with %u thread%s per call "
               "(fabric.copy_threads = %u, see --set)\n",
               copy_threads + 1, copy_threads == 0 ? "" : "s", copy_threads);
    } else {
        printf("# memcpy: the baseline of put and get, a memcpy of the same "
               "pieces (the source layers a put call reads into the "
               "destination layers a get call fills) in every process at the "
               "same time, by as many threads as the library copies with: "
               "%u per call (fabric.copy_threads = %u, see --set), the bytes "
               "split evenly\n",
               copy_threads + 1, copy_threads);
    }
    if (mcb_opts.hosts > 1) {
        printf("# tcp_write, tcp_read: the baselines of put_remote and "
               "get_remote, the same bytes (blocks x block, contiguous) "
               "between the same two processes over %u raw TCP "
               "connection%s (as many as tcp.lanes; 1 with ucx), a share "
               "each: a "
               "request, the data and (write) a 1-byte acknowledgement, "
               "blocking sockets, in every process at the same time\n",
               lanes, lanes == 1 ? "" : "s");
    }
    printf("# every measurement ran in %u round%s taking turns with the others "
           "of its kind (block ops: the baselines, put, get, ...; metadata "
           "calls and tcp_ping), so a slow spell of the machine weighs on a "
           "baseline and its calls alike (--rounds)\n",
           mcb_opts.rounds, mcb_opts.rounds == 1 ? "" : "s");
    printf("# p50/p99 us: one call (p50: median over processes of each one's "
           "median; p99: the worst process's); blocks: blocks per call\n");
    printf("# GB/s = 1e9 bytes/s of all processes together (bytes / time of "
           "the measurement's rounds); GB/s/proc: blocks x block / p50 of one "
           "process "
           "(mean over processes)\n");
    if (mcb_opts.device) {
        printf("# us/block = p50 / blocks; ratio = us/block / base us/block "
               "(put: cuda_d2h's, get: cuda_h2d's%s; not asserted)\n",
               mcb_opts.hosts > 1 ? ", put_remote: tcp_write's, get_remote: "
                                    "tcp_read's"
                                  : "");
    } else {
        printf("# us/block = p50 / blocks; ratio = us/block / base us/block "
               "(put, get: memcpy's; targets get <= 1.2, put <= 1.3%s; not "
               "asserted)\n",
               mcb_opts.hosts > 1 ? "; put_remote: tcp_write's, get_remote: "
                                    "tcp_read's, target <= 1.05, i.e. >= "
                                    "0.95x the wire"
                                  : "");
    }
    printf("# every block was verified byte for byte (put, then get of every "
           "process's blocks) before timing and again after\n");
    printf("%-10s %-4s %6s %10s %10s %8s %9s %10s %10s %6s\n", "op", "proc",
           "blocks", "p50 us", "p99 us", "GB/s", "GB/s/proc", "us/block",
           "base us", "ratio");
    for (b = 0; b < mcb_opts.nbatches; b++) {
        for (i = 0; i < BENCH_ARRAY_LEN(block_ops); i++) {
            if (mcb_row_all(block_ops[i], mcb_opts.batches[b], &row) == 0) {
                mcb_table_block_row(&row);
            }
            for (p = 0; mcb_opts.per_proc && p < mcb_opts.procs; p++) {
                const mcb_record_t *r =
                    mcb_find(block_ops[i], mcb_opts.batches[b], (int)p);

                if (r != NULL) {
                    mcb_row_of(r, &row);
                    mcb_table_block_row(&row);
                }
            }
        }
    }
    printf("#\n# metadata: exist_batch/query_batch of %u keys of every "
           "process per call, exist = one key's round trip; keys/s of all "
           "processes together, and per process (keys / p50, mean)\n",
           mcb_opts.meta_keys);
    printf("# tcp_ping: the baseline of exist, a blocking raw TCP round trip "
           "(24 bytes out, 16 back) to a process on the meta service's host, "
           "every process at the same time; ratio = exist p50 / tcp_ping p50 "
           "(target <= 1.5; not asserted)\n");
    printf("%-12s %-4s %9s %10s %10s %12s %12s %10s %6s\n", "op", "proc",
           "keys/call", "p50 us", "p99 us", "keys/s", "keys/s/proc", "base us",
           "ratio");
    for (op = MCB_OP_EXIST_BATCH; op < MCB_OPS; op++) {
        if (mcb_row_all((mcb_op_t)op, 0, &row) == 0) {
            mcb_table_meta_row(&row);
        }
        for (p = 0; mcb_opts.per_proc && p < mcb_opts.procs; p++) {
            const mcb_record_t *r = mcb_find((mcb_op_t)op, 0, (int)p);

            if (r != NULL) {
                mcb_row_of(r, &row);
                mcb_table_meta_row(&row);
            }
        }
    }
    fflush(stdout);
}
