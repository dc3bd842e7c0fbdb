/*
 * mf-bench: copy bandwidth of the BM API (and, with --api trans, of TRANS
 * transfers with rank 1's segment registered as a TRANS buffer), with a
 * baseline measured in the same run: memcpy for host memory, the CUDA
 * driver's own copy for device memory, a raw TCP stream for the tcp
 * transport.
 *
 * By default the tool runs a whole pool by itself: for every copy thread
 * setting it forks a config store process and N rank processes (all on this
 * host, so peers are reached through the shm transport), and rank 0 copies
 * to, from and between the segments of ranks 1 and 2.  Rank 0 sends each
 * result to the parent through a pipe; the parent prints them.  With
 * --store/--world the process is one rank of a pool started elsewhere.
 *
 * This file holds the options and main(); the pool is in pool.c, rank 0's
 * measurement in run.c, the output in report.c; the memcpy baseline is
 * tools/common's (bench_mcpy).
 *
 * Invariants: the options are parsed and checked completely before
 * anything is forked or measured; every default depends only on the
 * options given (tcp has its own).
 */
#include "mf_bench.h"

#include "bench_proc.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

mb_opts_t mb_opts;

/* ------------------------------------------------------------ options */

static void mb_usage(FILE *out)
{
    fprintf(out,
            "Usage: mf-bench [options]\n"
            "Measures BM copy bandwidth (mf_bm_copy, mf_bm_copy_batch) "
            "against a baseline\n(memcpy; for device memory the CUDA "
            "driver's copy) measured in the same run.  By\ndefault it "
            "starts a config store and a pool of --ranks processes on this "
            "host\nby itself, once per --threads value.\n"
            "\n"
            "  --ranks N          processes in the pool (default 4, >= 2; "
            "G*2G* needs 3)\n"
            "  --threads LIST     threads doing a copy, comma separated "
            "(default 1,2);\n"
            "                     copy_threads = threads - 1\n"
            "  --sizes LIST       copy sizes, suffixes K M G "
            "(default 4K,64K,1M,8M,64M,256M,1G)\n"
            "  --max-size SIZE    leave out sizes above SIZE\n"
            "  --working-set SIZE bytes each end of a timed copy rotates "
            "through, the same\n"
            "                     pieces shifted slot by slot, so copies "
            "read and write DRAM\n"
            "                     (default: twice the last-level cache; 0 "
            "with tcp, whose raw\n"
            "                     stream baseline does not rotate, and with "
            "--quick; 0: always\n"
            "                     the same bytes)\n"
            "  --pieces N         pieces of a batched copy (default 64)\n"
            "  --layouts LIST     single,batch,kv (default all; kv = 61 x "
            "128 KiB + 61 x 16 KiB)\n"
            "  --dirs LIST        directions, comma separated (L = rank 0's "
            "own memory, G = a\n"
            "                     GVA, H = host, D = device): LH2GH,GH2LH,"
            "GH2GH, and with\n"
            "                     device memory LD2GH,GH2LD,LH2GD,GD2LH,"
            "LD2GD,GD2LD,GH2GD,\n"
            "                     GD2GH,GD2GD; or host, device, all "
            "(default: host)\n"
            "  --iters N          timed samples per measurement (default: "
            "enough for --min-time)\n"
            "  --min-time SEC     time per measurement (default 0.2)\n"
            "  --transport NAME   BM transport (default shm); tcp or ucx "
            "forces that transport\n"
            "                     between the ranks of this host and "
            "measures a raw TCP\n"
            "                     stream between rank 0 and rank 1 as the "
            "baseline (defaults\n"
            "                     then: --ranks 2, --sizes 1M,8M,64M, "
            "--layouts single,kv,\n"
            "                     --dirs LH2GH,GH2LH, --threads 1, "
            "--lanes 1,2 with tcp,\n"
            "                     1 with ucx; UCX_TLS chooses UCX's "
            "transports)\n"
            "  --lanes LIST       tcp: TCP connections per peer (tcp.lanes), "
            "comma separated;\n"
            "                     the baseline opens as many (JSON field "
            "lanes: 0 with shm)\n"
            "  --api NAME         bm (default) or trans: rank 0 writes "
            "(LH2GH) and reads\n"
            "                     (GH2LH) rank 1's segment as a TRANS "
            "buffer (mf_trans_write,\n"
            "                     mf_trans_read, mf_trans_batch); implies "
            "--transport tcp\n"
            "  --netns            tcp, ucx: rank processes in two network "
            "namespaces (hosts\n"
            "                     joined by veth and a bridge, "
            "10.213.<s>.1-2), even ranks in\n"
            "                     the first, odd in the second; needs root "
            "and iproute2\n"
            "  --quick            sizes 4K,64K,1M, --min-time 0.02, "
            "--working-set 0\n"
            "                     (smoke test)\n"
            "  --json             one JSON object per result on stdout\n"
            "  --timeout SEC      give up after SEC seconds (default 900)\n"
            "  --store URL        run as one rank of a pool whose store is at "
            "URL ...\n"
            "  --world N          ... of N ranks (start every rank with the "
            "same options;\n"
            "                     the one that gets rank 0 measures; threads "
            "= first of --threads)\n"
            "  -h, --help         this help\n"
            "\n"
            "Segments are as large as the largest size; a 1 GiB size needs "
            "about 1 GiB per\nrank plus 2 GiB in rank 0.\n"
            "\n"
            "Device directions: every rank gets a device segment as large "
            "as its host one,\nrank 0 device buffers (cuMemAlloc) and "
            "pinned host buffers (cuMemAllocHost)\nof the largest size; "
            "the CUDA driver is $MF_CUDA_LIBRARY, else libcuda.so.1.\n"
            "Their baseline is the driver's copy of the same pieces "
            "between rank 0's own\nmemory of the same kinds (cuda_d2h, "
            "cuda_h2d, cuda_d2d: cuMemcpyAsync on as many\nstreams as "
            "threads copy), measured in the same run; with --transport tcp "
            "(or ucx) the raw\nTCP stream, as for host directions.  Device "
            "memory is "
            "verified through the\ndriver.\n");
}

static int mb_parse_list(const char *arg, const char *what,
                         int (*fn)(const char *item, void *ctx), void *ctx)
{
    char buf[512], *save = NULL, *tok;

    if (strlen(arg) >= sizeof(buf)) {
        bench_err("%s: list too long", what);
        return -1;
    }
    strcpy(buf, arg);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (fn(tok, ctx) != 0) {
            bench_err("%s: bad item '%s'", what, tok);
            return -1;
        }
    }
    return 0;
}

static int mb_add_size(const char *item, void *ctx)
{
    uint64_t v;

    if (mb_opts.nsizes == MB_MAX_SIZES || bench_parse_size(item, &v) != 0) {
        return -1;
    }
    mb_opts.sizes[mb_opts.nsizes++] = v;
    return 0;
}

/* Appends a count in 1..max to list (of cap entries, *n used). */
static int mb_add_count(const char *item, unsigned long max, uint32_t *list,
                        unsigned *n, unsigned cap)
{
    char *end;
    unsigned long v = strtoul(item, &end, 10);

    if (*end != '\0' || v < 1 || v > max || *n == cap) {
        return -1;
    }
    list[(*n)++] = (uint32_t)v;
    return 0;
}

static int mb_add_threads(const char *item, void *ctx)
{
    return mb_add_count(item, MB_MAX_THREADS, mb_opts.threads,
                        &mb_opts.nthreads, BENCH_ARRAY_LEN(mb_opts.threads));
}

static int mb_add_lanes(const char *item, void *ctx)
{
    return mb_add_count(item, BENCH_TCP_MAX_CONNS, mb_opts.lanes,
                        &mb_opts.nlanes, BENCH_ARRAY_LEN(mb_opts.lanes));
}

static int mb_pick(const char *item, const char *const *names, unsigned n,
                   bool *set)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        if (strcasecmp(item, names[i]) == 0) {
            set[i] = true;
            return 0;
        }
    }
    return -1;
}

static int mb_add_layout(const char *item, void *ctx)
{
    return mb_pick(item, mb_layout_names, MB_LAYOUTS, mb_opts.layouts);
}

/* A direction, or "host", "device" or "all" for a group of them. */
static int mb_add_dir(const char *item, void *ctx)
{
    unsigned first = MB_DIRS, end = MB_DIRS, i;

    if (strcasecmp(item, "host") == 0) {
        first = 0;
        end = MB_HOST_DIRS;
    } else if (strcasecmp(item, "device") == 0) {
        first = MB_HOST_DIRS;
    } else if (strcasecmp(item, "all") == 0) {
        first = 0;
    }
    for (i = first; i < end; i++) {
        mb_opts.dirs[i] = true;
    }
    if (first < end) {
        return 0;
    }
    for (i = 0; i < MB_DIRS; i++) {
        if (strcasecmp(item, mb_dirs[i].name) == 0) {
            mb_opts.dirs[i] = true;
            return 0;
        }
    }
    return -1;
}

/*
 * Device directions need the CUDA driver in every rank.  It is loaded in a
 * child (this process forks the ranks after, and a child cannot use a
 * driver its parent initialised): 0, or -1 (logged) when device directions
 * were asked for and cannot run.
 */
static int mb_device_check(void)
{
    char why[256], list[128] = "";
    unsigned i;

    if (!mb_opts.device || tk_cuda_probe(why, sizeof(why)) == 0) {
        return 0;
    }
    for (i = MB_HOST_DIRS; i < MB_DIRS; i++) {
        if (mb_opts.dirs[i] && strlen(list) + 8 < sizeof(list)) {
            strcat(list, list[0] != '\0' ? "," : "");
            strcat(list, mb_dirs[i].name);
        }
    }
    bench_err("device directions (%s) need the CUDA driver ($MF_CUDA_LIBRARY, "
              "else libcuda.so.1) and a device: %s",
              list, why);
    return -1;
}

static int mb_parse_args(int argc, char **argv)
{
    enum {
        O_RANKS = 256,
        O_THREADS,
        O_SIZES,
        O_MAX,
        O_PIECES,
        O_LAYOUTS,
        O_DIRS,
        O_ITERS,
        O_MINTIME,
        O_TRANSPORT,
        O_QUICK,
        O_JSON,
        O_TIMEOUT,
        O_STORE,
        O_WORLD,
        O_LANES,
        O_NETNS,
        O_API,
        O_WS
    };
    static const struct option longopts[] = {
        {"ranks", required_argument, NULL, O_RANKS},
        {"threads", required_argument, NULL, O_THREADS},
        {"sizes", required_argument, NULL, O_SIZES},
        {"max-size", required_argument, NULL, O_MAX},
        {"pieces", required_argument, NULL, O_PIECES},
        {"layouts", required_argument, NULL, O_LAYOUTS},
        {"dirs", required_argument, NULL, O_DIRS},
        {"iters", required_argument, NULL, O_ITERS},
        {"min-time", required_argument, NULL, O_MINTIME},
        {"transport", required_argument, NULL, O_TRANSPORT},
        {"quick", no_argument, NULL, O_QUICK},
        {"json", no_argument, NULL, O_JSON},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"store", required_argument, NULL, O_STORE},
        {"world", required_argument, NULL, O_WORLD},
        {"lanes", required_argument, NULL, O_LANES},
        {"netns", no_argument, NULL, O_NETNS},
        {"api", required_argument, NULL, O_API},
        {"working-set", required_argument, NULL, O_WS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quick = false, layouts = false, dirs = false, min_time = false;
    bool ranks = false, sizes = false, ws = false;
    unsigned v, i, j;
    int opt;

    mb_opts.ranks = 4;
    mb_opts.pieces = 64;
    mb_opts.min_time = 0.2;
    mb_opts.timeout_s = 900;
    snprintf(mb_opts.transport, sizeof(mb_opts.transport), "shm");
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_RANKS:
            if (bench_parse_uint(optarg, "--ranks", 2, MB_MAX_RANKS, &v) != 0) {
                return -1;
            }
            mb_opts.ranks = v;
            ranks = true;
            break;
        case O_THREADS:
            if (mb_parse_list(optarg, "--threads", mb_add_threads, NULL) != 0) {
                return -1;
            }
            break;
        case O_SIZES:
            if (mb_parse_list(optarg, "--sizes", mb_add_size, NULL) != 0) {
                return -1;
            }
            sizes = true;
            break;
        case O_MAX:
            if (bench_parse_size(optarg, &mb_opts.max_size) != 0) {
                bench_err("--max-size: bad size '%s'", optarg);
                return -1;
            }
            break;
        case O_PIECES:
            if (bench_parse_uint(optarg, "--pieces", 1, 65536, &v) != 0) {
                return -1;
            }
            mb_opts.pieces = v;
            break;
        case O_LAYOUTS:
            layouts = true;
            if (mb_parse_list(optarg, "--layouts", mb_add_layout, NULL) != 0) {
                return -1;
            }
            break;
        case O_DIRS:
            dirs = true;
            if (mb_parse_list(optarg, "--dirs", mb_add_dir, NULL) != 0) {
                return -1;
            }
            break;
        case O_ITERS:
            if (bench_parse_uint(optarg, "--iters", 1, MB_MAX_SAMPLES, &v) !=
                0) {
                return -1;
            }
            mb_opts.iters = v;
            break;
        case O_MINTIME:
            if (bench_parse_seconds(optarg, "--min-time", 60,
                                    &mb_opts.min_time) != 0) {
                return -1;
            }
            min_time = true;
            break;
        case O_TRANSPORT:
            if (strlen(optarg) >= sizeof(mb_opts.transport)) {
                bench_err("--transport: name too long");
                return -1;
            }
            snprintf(mb_opts.transport, sizeof(mb_opts.transport), "%s",
                     optarg);
            break;
        case O_QUICK:
            quick = true;
            break;
        case O_JSON:
            mb_opts.json = true;
            break;
        case O_TIMEOUT:
            if (bench_parse_uint(optarg, "--timeout", 1, 86400, &v) != 0) {
                return -1;
            }
            mb_opts.timeout_s = v;
            break;
        case O_STORE:
            mb_opts.store_url = optarg;
            break;
        case O_API:
            if (strcmp(optarg, "trans") == 0) {
                mb_opts.trans = true;
            } else if (strcmp(optarg, "bm") != 0) {
                bench_err("--api: bm or trans, not '%s'", optarg);
                return -1;
            }
            break;
        case O_NETNS:
            mb_opts.netns = true;
            break;
        case O_WS:
            mb_opts.ws = 0; /* "0": none (bench_parse_size takes no 0) */
            if ((strcmp(optarg, "0") != 0 &&
                 bench_parse_size(optarg, &mb_opts.ws) != 0) ||
                mb_opts.ws > 64 * BENCH_GIB) {
                bench_err("--working-set: bad size '%s'", optarg);
                return -1;
            }
            ws = true;
            break;
        case O_LANES:
            if (mb_parse_list(optarg, "--lanes", mb_add_lanes, NULL) != 0) {
                return -1;
            }
            break;
        case O_WORLD:
            if (bench_parse_uint(optarg, "--world", 2, 1u << 20, &v) != 0) {
                return -1;
            }
            mb_opts.world = v;
            break;
        case 'h':
            mb_usage(stdout);
            exit(0);
        default:
            mb_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        bench_err("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if ((mb_opts.store_url == NULL) != (mb_opts.world == 0)) {
        bench_err("--store and --world go together");
        return -1;
    }
    if (mb_opts.trans) {
        /* TRANS serves registered buffers over tcp */
        snprintf(mb_opts.transport, sizeof(mb_opts.transport), "tcp");
    }
    mb_opts.tcp = strcmp(mb_opts.transport, "tcp") == 0;
    mb_opts.wire = mb_opts.tcp || strcmp(mb_opts.transport, "ucx") == 0;
    mb_opts.llc = bench_llc_bytes();
    if (!ws) { /* a smoke test (--quick) measures nothing: no rotation */
        mb_opts.ws = mb_opts.wire || quick ? 0 : 2 * mb_opts.llc;
    }
    if (mb_opts.netns && (!mb_opts.wire || mb_opts.store_url != NULL)) {
        bench_err("--netns goes with --transport tcp or ucx, without "
                  "--store");
        return -1;
    }
    if (mb_opts.nlanes > 0 && !mb_opts.tcp) {
        bench_err("--lanes goes with --transport tcp");
        return -1;
    }
    if (mb_opts.wire) {
        /* rank 0 and rank 1: write and read; 1 MiB, 8 MiB, 64 MiB and
         * the KV block; tcp: 1 and 2 lanes, ucx: its one connection per
         * peer (the baseline's too); one thread */
        static const uint64_t tcp_sizes[] = {BENCH_MIB, 8 * BENCH_MIB,
                                             64 * BENCH_MIB};

        if (!ranks) {
            mb_opts.ranks = 2;
        }
        if (!sizes && !quick) {
            for (i = 0; i < 3; i++) {
                mb_opts.sizes[mb_opts.nsizes++] = tcp_sizes[i];
            }
        }
        if (!layouts) {
            layouts = true;
            mb_opts.layouts[MB_SINGLE] = true;
            mb_opts.layouts[MB_KV] = true;
        }
        if (!dirs) {
            dirs = true;
            mb_opts.dirs[MB_LH2GH] = true;
            mb_opts.dirs[MB_GH2LH] = true;
        }
        if (mb_opts.nthreads == 0) {
            mb_opts.threads[mb_opts.nthreads++] = 1;
        }
        if (mb_opts.nlanes == 0) {
            mb_opts.lanes[mb_opts.nlanes++] = 1;
            if (mb_opts.tcp) {
                mb_opts.lanes[mb_opts.nlanes++] = 2;
            }
        }
    } else {
        mb_opts.lanes[mb_opts.nlanes++] = 0; /* one round, no lanes */
    }
    if (mb_opts.nsizes == 0) {
        static const uint64_t def[] = {
            4 * BENCH_KIB,  64 * BENCH_KIB,  BENCH_MIB, 8 * BENCH_MIB,
            64 * BENCH_MIB, 256 * BENCH_MIB, BENCH_GIB};
        static const uint64_t small[] = {4 * BENCH_KIB, 64 * BENCH_KIB,
                                         BENCH_MIB};
        const uint64_t *src = quick ? small : def;
        unsigned n = quick ? 3 : 7;

        for (i = 0; i < n; i++) {
            mb_opts.sizes[mb_opts.nsizes++] = src[i];
        }
    }
    if (mb_opts.trans) {
        for (i = 0; i < MB_DIRS; i++) {
            if (mb_opts.dirs[i] && i != MB_LH2GH && i != MB_GH2LH) {
                bench_err("--api trans measures LH2GH (mf_trans_write) and "
                          "GH2LH (mf_trans_read) only");
                return -1;
            }
        }
    }
    if (quick && !min_time) {
        mb_opts.min_time = 0.02;
    }
    if (mb_opts.max_size > 0) {
        for (i = 0, j = 0; i < mb_opts.nsizes; i++) {
            if (mb_opts.sizes[i] <= mb_opts.max_size) {
                mb_opts.sizes[j++] = mb_opts.sizes[i];
            }
        }
        mb_opts.nsizes = j;
    }
    if (mb_opts.nthreads == 0) {
        mb_opts.threads[0] = 1;
        mb_opts.threads[1] = 2;
        mb_opts.nthreads = 2;
    }
    if (!layouts) {
        for (i = 0; i < MB_LAYOUTS; i++) {
            mb_opts.layouts[i] = true;
        }
    }
    if (!dirs) {
        /* device directions only when asked for: a default run needs no
         * driver and no library built with the cuda memory kind */
        for (i = 0; i < MB_HOST_DIRS; i++) {
            mb_opts.dirs[i] = true;
        }
    }
    for (i = MB_HOST_DIRS; i < MB_DIRS; i++) {
        mb_opts.device = mb_opts.device || mb_opts.dirs[i];
    }
    if (mb_opts.max_size > 0 && mb_opts.max_size < MB_KV_TOTAL) {
        mb_opts.layouts[MB_KV] = false;
    }
    if (mb_opts.nsizes == 0) {
        mb_opts.layouts[MB_SINGLE] = false;
        mb_opts.layouts[MB_BATCH] = false;
    }
    for (i = 0, j = 0; i < MB_LAYOUTS; i++) {
        j += mb_opts.layouts[i];
    }
    if (j == 0) {
        bench_err("nothing left to measure (see --sizes, --max-size, "
                  "--layouts)");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool header_done = false;
    uint64_t deadline;
    unsigned i, l;

    bench_set_tool("mf-bench");
    if (mb_parse_args(argc, argv) != 0) {
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mb_device_check() != 0) {
        return 1;
    }
    if (mb_opts.store_url != NULL) {
        return mb_rank_main(mb_opts.store_url, mb_opts.world,
                            mb_opts.threads[0], mb_opts.lanes[0], MF_RANK_AUTO,
                            -1);
    }
    bench_proc_signals_init();
    if (mb_opts.netns && mb_pool_netns_setup() != 0) {
        bench_err("cannot create the network namespaces for --netns (root and "
                  "iproute2 needed)");
        return 1;
    }
    deadline = bench_now_ns() + (uint64_t)mb_opts.timeout_s * 1000000000ull;
    for (i = 0; i < mb_opts.nthreads; i++) {
        for (l = 0; l < mb_opts.nlanes; l++) {
            if (mb_pool_round(mb_opts.threads[i], mb_opts.lanes[l],
                              &header_done, deadline) != 0) {
                bench_err("FAILED (threads = %u, lanes = %u)",
                          mb_opts.threads[i], mb_opts.lanes[l]);
                return 1;
            }
        }
    }
    return 0;
}
