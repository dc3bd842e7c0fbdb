/*
 * mmc-bench: put/get bandwidth and latency of MemCache for KV-cache blocks,
 * and metadata rates, with a memcpy baseline measured in the same run.
 *
 * By default the tool runs a whole cluster on this host by itself: it
 * starts an mmc-meta daemon (the binary next to its own executable, with
 * free ports, parsing its ready line) and --procs client processes, each
 * one mmc_t contributing --dram bytes.  Every client puts its own blocks
 * (8,994,816 bytes in 122 pieces: 61 x 128 KiB + 61 x 16 KiB) with
 * mmc_put_layers_batch and reads blocks of every client with
 * mmc_get_layers_batch, 1, 8, 16 and 32 blocks per call; then it measures
 * mmc_exist_batch and mmc_query_batch of 1024 keys and the single-key
 * round trip.  The baseline is a memcpy of the same 122 pieces between
 * the same source and destination buffers by as many threads as the
 * library copies with, in every client, while the others do the same.  With
 * --meta the clients join a running meta service instead; with --netns the
 * clients are spread over hosts made of network namespaces and use the tcp
 * transport, and also put blocks on (preferred rank) and get blocks from
 * processes of other hosts only (put_remote, get_remote).  With --device the
 * blocks of every client are device memory, put into and got from the DRAM
 * pool, and the baselines are the driver's copies of the same pieces between
 * those device blocks and pinned host memory (cuda_d2h for put, cuda_h2d for
 * get).
 *
 * This file holds the options and main(); the daemon and the client
 * processes are started in cluster.c, a client is set up in client.c and
 * measures in run.c (the calls it times in ops.c), and report.c prints the
 * results.
 *
 * Invariants: the options are parsed and checked completely before
 * anything is started; the shared control block is mapped, and the run id
 * and deadline set, before the first fork; on every exit path what was
 * started is stopped and the namespaces are removed.  Nothing is asserted
 * about timing.
 */
#include "mmc_bench.h"

#include "bench_proc.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

mcb_opts_t mcb_opts;
mcb_shared_t *mcb_sh;
tk_netns_t mcb_lab;
uint64_t mcb_deadline;
char mcb_run_id[32];

/* ------------------------------------------------------------ options */

static void mcb_usage(FILE *out)
{
    fprintf(out,
            "Usage: mmc-bench [options]\n"
            "Measures MemCache put/get of KV-cache blocks (8,994,816 bytes in "
            "122 pieces:\n61 x 128 KiB + 61 x 16 KiB) with "
            "mmc_put_layers_batch/mmc_get_layers_batch\nagainst a memcpy of "
            "the same pieces measured in the same run, and metadata\nrates "
            "(mmc_exist_batch, mmc_query_batch, mmc_exist).  By default it "
            "starts a\ncluster on this host by itself: one mmc-meta and "
            "--procs client processes.\n"
            "\n"
            "  --procs N          client processes (default 4; 2 with "
            "--quick)\n"
            "  --dram SIZE        DRAM each process contributes (default: "
            "enough for the\n"
            "                     working set with room, at least 1G; "
            "suffixes K M G)\n"
            "  --batches LIST     blocks per put/get call, comma separated "
            "(default 1,8,16,32);\n"
            "                     each process owns as many blocks as the "
            "largest\n"
            "  --meta-keys N      keys per exist/query batch (default 1024)\n"
            "  --min-time SEC     time per measurement (default 0.5)\n"
            "  --min-calls N      calls per measurement, at least (default "
            "10)\n"
            "  --rounds N         each measurement in N rounds that take "
            "turns with the\n"
            "                     others of its kind (the memcpy baseline, "
            "put, get, ...;\n"
            "                     the metadata calls and their ping), so "
            "that a slow spell\n"
            "                     of the machine weighs on a baseline and its "
            "calls alike\n"
            "                     (default 4; 1 with --quick)\n"
            "  --quick            --procs 2 --batches 1,4 --meta-keys 256 "
            "--min-time 0.01\n"
            "                     --min-calls 3 --rounds 1 (smoke test)\n"
            "  --json             one JSON document with every row on "
            "stdout\n"
            "  --per-proc         table rows of every process too\n"
            "  --netns            cross-host: hosts as network namespaces "
            "(10.213.<s>.x, veth\n"
            "                     and a bridge), mmc-meta in host 0, "
            "process i in host\n"
            "                     i %% --hosts, --transport tcp unless given; "
            "adds "
            "put_remote and\n"
            "                     get_remote rows (blocks placed on / read "
            "from other hosts);\n"
            "                     needs root (else exit 77)\n"
            "  --hosts N          hosts of --netns (default 2)\n"
            "  --transport NAME   fabric.transport of the clients (default "
            "auto; tcp with\n"
            "                     --netns); ucx moves blocks over UCX "
            "(UCX_TLS picks its\n"
            "                     transports), next to the same raw TCP "
            "baselines\n"
            "  --device           the blocks are device memory (cuMemAlloc, "
            "iov mem =\n"
            "                     MMC_MEM_DEVICE), put into and got from the "
            "DRAM pool; the\n"
            "                     baselines are the CUDA driver's copies of "
            "the same pieces,\n"
            "                     device to pinned host (cuda_d2h, for put) "
            "and back\n"
            "                     (cuda_h2d, for get), instead of memcpy; the "
            "driver is\n"
            "                     $MF_CUDA_LIBRARY, else libcuda.so.1\n"
            "  --meta URL         use the running meta service at URL "
            "(tcp://host:port)\n"
            "  --meta-bin PATH    the mmc-meta to start (default: next to "
            "this program)\n"
            "  --meta-set K=V     a setting for the started mmc-meta "
            "(repeatable)\n"
            "  --set K=V          a client setting, as in mmc-local.conf "
            "(repeatable; over\n"
            "                     MMC_<KEY> variables), e.g. --set "
            "fabric.copy_threads=0 for\n"
            "                     one copying thread, like the baseline\n"
            "  --timeout SEC      give up after SEC seconds (default 600)\n"
            "  -h, --help         this help\n"
            "\n"
            "Memory: each process maps --dram plus two areas of blocks (the "
            "largest batch\nx 9 MiB each; device memory with --device, and "
            "a third area of pinned host\nmemory).  Nothing about speed is "
            "asserted; every block is verified.\n");
}

static int mcb_parse_batches(const char *arg)
{
    char buf[256], *save = NULL, *tok;
    unsigned v;

    if (strlen(arg) >= sizeof(buf)) {
        bench_err("--batches: list too long");
        return -1;
    }
    strcpy(buf, arg);
    mcb_opts.nbatches = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (mcb_opts.nbatches == MCB_MAX_BATCHES) {
            bench_err("--batches: at most %d values", MCB_MAX_BATCHES);
            return -1;
        }
        if (bench_parse_uint(tok, "--batches", 1, MCB_MAX_BATCH, &v) != 0) {
            return -1;
        }
        mcb_opts.batches[mcb_opts.nbatches++] = v;
    }
    if (mcb_opts.nbatches == 0) {
        bench_err("--batches: empty list");
        return -1;
    }
    return 0;
}

static int mcb_add_set(const char *arg, const char *what, const char **list,
                       unsigned *n)
{
    const char *eq = strchr(arg, '=');

    if (eq == NULL || eq == arg || strlen(arg) >= 500) {
        bench_err("%s: expected KEY=VALUE, got '%s'", what, arg);
        return -1;
    }
    if (*n == MCB_MAX_SETS) {
        bench_err("%s: at most %d", what, MCB_MAX_SETS);
        return -1;
    }
    list[(*n)++] = arg;
    return 0;
}

/* Whether a --set names key. */
static bool mcb_opts_has_set(const char *key)
{
    size_t len = strlen(key);

    for (unsigned i = 0; i < mcb_opts.nclient_sets; i++) {
        if (strncmp(mcb_opts.client_sets[i], key, len) == 0 &&
            mcb_opts.client_sets[i][len] == '=') {
            return true;
        }
    }
    return false;
}

/* The mmc-meta next to this program. */
static int mcb_default_meta_bin(void)
{
    if (tk_proc_exe_near("mmc-meta", mcb_opts.meta_bin,
                         sizeof(mcb_opts.meta_bin)) != 0) {
        bench_err("no mmc-meta next to this program (use --meta-bin)");
        return -1;
    }
    return 0;
}

/* The working set of a process with room: its blocks twice (a replacing
 * put allocates before the old version goes; with --netns its peer's blocks
 * too, so four times), the metadata objects (one page or so each) and
 * slack; at least 1 GiB (256 MiB with --quick). */
static uint64_t mcb_default_dram(void)
{
    uint64_t need =
        (mcb_opts.netns ? 4ull : 2ull) * mcb_opts.blocks * MCB_BLOCK +
        (uint64_t)mcb_opts.meta_keys * 64 * BENCH_KIB + 64 * BENCH_MIB;
    uint64_t min = mcb_opts.quick ? 256 * BENCH_MIB : BENCH_GIB;

    need = (need + 256 * BENCH_MIB - 1) / (256 * BENCH_MIB) * (256 * BENCH_MIB);
    return need > min ? need : min;
}

static int mcb_parse_args(int argc, char **argv)
{
    enum {
        O_PROCS = 256,
        O_DRAM,
        O_BATCHES,
        O_META_KEYS,
        O_MINTIME,
        O_MINCALLS,
        O_ROUNDS,
        O_QUICK,
        O_JSON,
        O_PERPROC,
        O_NETNS,
        O_HOSTS,
        O_META,
        O_META_BIN,
        O_META_SET,
        O_SET,
        O_TRANSPORT,
        O_TIMEOUT,
        O_DEVICE
    };
    static const struct option longopts[] = {
        {"procs", required_argument, NULL, O_PROCS},
        {"dram", required_argument, NULL, O_DRAM},
        {"batches", required_argument, NULL, O_BATCHES},
        {"meta-keys", required_argument, NULL, O_META_KEYS},
        {"min-time", required_argument, NULL, O_MINTIME},
        {"min-calls", required_argument, NULL, O_MINCALLS},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"quick", no_argument, NULL, O_QUICK},
        {"json", no_argument, NULL, O_JSON},
        {"per-proc", no_argument, NULL, O_PERPROC},
        {"netns", no_argument, NULL, O_NETNS},
        {"hosts", required_argument, NULL, O_HOSTS},
        {"meta", required_argument, NULL, O_META},
        {"meta-bin", required_argument, NULL, O_META_BIN},
        {"meta-set", required_argument, NULL, O_META_SET},
        {"set", required_argument, NULL, O_SET},
        {"transport", required_argument, NULL, O_TRANSPORT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"device", no_argument, NULL, O_DEVICE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool procs = false, batches = false, meta_keys = false, min_time = false;
    bool min_calls = false, hosts = false, rounds = false;
    unsigned v, i;
    int opt;

    mcb_opts.procs = 4;
    mcb_opts.hosts = 1;
    mcb_opts.min_time = 0.5;
    mcb_opts.min_calls = 10;
    mcb_opts.rounds = 4;
    mcb_opts.meta_keys = 1024;
    mcb_opts.timeout_s = 600;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_PROCS:
            if (bench_parse_uint(optarg, "--procs", 1, MCB_MAX_PROCS, &v) !=
                0) {
                return -1;
            }
            mcb_opts.procs = v;
            procs = true;
            break;
        case O_DRAM:
            if (bench_parse_size(optarg, &mcb_opts.dram) != 0) {
                bench_err("--dram: bad size '%s'", optarg);
                return -1;
            }
            break;
        case O_BATCHES:
            if (mcb_parse_batches(optarg) != 0) {
                return -1;
            }
            batches = true;
            break;
        case O_META_KEYS:
            if (bench_parse_uint(optarg, "--meta-keys", 1, MMC_BATCH_MAX, &v) !=
                0) {
                return -1;
            }
            mcb_opts.meta_keys = v;
            meta_keys = true;
            break;
        case O_MINTIME:
            if (bench_parse_seconds(optarg, "--min-time", 60,
                                    &mcb_opts.min_time) != 0) {
                return -1;
            }
            min_time = true;
            break;
        case O_MINCALLS:
            if (bench_parse_uint(optarg, "--min-calls", 1, MCB_MAX_CALLS, &v) !=
                0) {
                return -1;
            }
            mcb_opts.min_calls = v;
            min_calls = true;
            break;
        case O_ROUNDS:
            if (bench_parse_uint(optarg, "--rounds", 1, 100, &v) != 0) {
                return -1;
            }
            mcb_opts.rounds = v;
            rounds = true;
            break;
        case O_QUICK:
            mcb_opts.quick = true;
            break;
        case O_JSON:
            mcb_opts.json = true;
            break;
        case O_PERPROC:
            mcb_opts.per_proc = true;
            break;
        case O_NETNS:
            mcb_opts.netns = true;
            break;
        case O_TRANSPORT:
            if (strlen(optarg) >= sizeof(mcb_opts.transport)) {
                bench_err("--transport: name too long");
                return -1;
            }
            snprintf(mcb_opts.transport, sizeof(mcb_opts.transport), "%s",
                     optarg);
            break;
        case O_DEVICE:
            mcb_opts.device = true;
            break;
        case O_HOSTS:
            if (bench_parse_uint(optarg, "--hosts", 1, TK_NETNS_MAX_HOSTS,
                                 &v) != 0) {
                return -1;
            }
            mcb_opts.hosts = v;
            hosts = true;
            break;
        case O_META:
            mcb_opts.meta_url = optarg;
            break;
        case O_META_BIN:
            if (strlen(optarg) >= sizeof(mcb_opts.meta_bin)) {
                bench_err("--meta-bin: path too long");
                return -1;
            }
            snprintf(mcb_opts.meta_bin, sizeof(mcb_opts.meta_bin), "%s",
                     optarg);
            break;
        case O_META_SET:
            if (mcb_add_set(optarg, "--meta-set", mcb_opts.meta_sets,
                            &mcb_opts.nmeta_sets) != 0) {
                return -1;
            }
            break;
        case O_SET:
            if (mcb_add_set(optarg, "--set", mcb_opts.client_sets,
                            &mcb_opts.nclient_sets) != 0) {
                return -1;
            }
            break;
        case O_TIMEOUT:
            if (bench_parse_uint(optarg, "--timeout", 1, 86400, &v) != 0) {
                return -1;
            }
            mcb_opts.timeout_s = v;
            break;
        case 'h':
            mcb_usage(stdout);
            exit(0);
        default:
            mcb_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        bench_err("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (hosts && !mcb_opts.netns) {
        bench_err("--hosts goes with --netns");
        return -1;
    }
    if (mcb_opts.netns && mcb_opts.meta_url != NULL) {
        bench_err("--netns starts its own mmc-meta: it does not go with "
                  "--meta");
        return -1;
    }
    if (mcb_opts.meta_url != NULL &&
        (mcb_opts.nmeta_sets > 0 || mcb_opts.meta_bin[0] != '\0')) {
        bench_err("--meta-set and --meta-bin are for a started mmc-meta, not "
                  "--meta");
        return -1;
    }
    if (mcb_opts.quick) {
        if (!procs) {
            mcb_opts.procs = 2;
        }
        if (!batches) {
            mcb_opts.batches[0] = 1;
            mcb_opts.batches[1] = 4;
            mcb_opts.nbatches = 2;
        }
        if (!meta_keys) {
            mcb_opts.meta_keys = 256;
        }
        if (!min_time) {
            mcb_opts.min_time = 0.01;
        }
        if (!min_calls) {
            mcb_opts.min_calls = 3;
        }
        if (!rounds) {
            mcb_opts.rounds = 1;
        }
    }
    if (mcb_opts.transport[0] == '\0') {
        snprintf(mcb_opts.transport, sizeof(mcb_opts.transport), "%s",
                 mcb_opts.netns ? "tcp" : "auto");
    }
    /* Defaults sized to the cores: every process and its copy threads get
     * a core of their own (4 processes with 2 threads each on 2 cores made
     * p99 per call a scheduling figure). */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    mcb_opts.ncpu = ncpu > 0 ? (unsigned)ncpu : 1;
    if (!procs && !mcb_opts.quick) {
        mcb_opts.procs = mcb_opts.ncpu < 2   ? 2
                         : mcb_opts.ncpu > 4 ? 4
                                             : mcb_opts.ncpu;
        mcb_opts.sized_procs = true;
    }
    if (!mcb_opts_has_set("fabric.copy_threads")) {
        static char set[48];
        unsigned per = mcb_opts.ncpu / mcb_opts.procs;

        snprintf(set, sizeof(set), "fabric.copy_threads=%u",
                 per < 2   ? 0u
                 : per > 4 ? 3u
                           : per - 1);
        if (mcb_add_set(set, "--set", mcb_opts.client_sets,
                        &mcb_opts.nclient_sets) != 0) {
            return -1;
        }
        mcb_opts.sized_copy = true;
    }
    if (mcb_opts.nbatches == 0) {
        static const uint32_t def[] = {1, 8, 16, 32};

        for (i = 0; i < BENCH_ARRAY_LEN(def); i++) {
            mcb_opts.batches[mcb_opts.nbatches++] = def[i];
        }
    }
    if (mcb_opts.netns && !hosts) {
        mcb_opts.hosts = 2;
    }
    if (mcb_opts.netns && mcb_opts.procs < mcb_opts.hosts) {
        bench_err("--procs %u leaves hosts empty (--hosts %u)", mcb_opts.procs,
                  mcb_opts.hosts);
        return -1;
    }
    for (i = 0; i < mcb_opts.nbatches; i++) {
        if (mcb_opts.batches[i] > mcb_opts.bmax) {
            mcb_opts.bmax = mcb_opts.batches[i];
        }
    }
    /* sources read from DRAM, as a pool's are: twice the last-level cache
     * of blocks, whatever the batch sizes */
    mcb_opts.llc = bench_llc_bytes();
    mcb_opts.blocks = mcb_opts.bmax;
    if (!mcb_opts.quick) {
        uint64_t ws = (2 * mcb_opts.llc + MCB_BLOCK - 1) / MCB_BLOCK;

        ws = ws < MCB_MAX_BATCH ? ws : MCB_MAX_BATCH;
        mcb_opts.blocks = ws > mcb_opts.bmax ? (uint32_t)ws : mcb_opts.bmax;
    }
    if (mcb_opts.dram == 0) {
        mcb_opts.dram = mcb_default_dram();
    }
    if (mcb_opts.meta_url == NULL && mcb_opts.meta_bin[0] == '\0' &&
        mcb_default_meta_bin() != 0) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    tk_meta_t meta;
    char url[160], why[256];
    const char *addr = "127.0.0.1";
    int ret = 1;

    bench_set_tool("mmc-bench");
    if (mcb_parse_args(argc, argv) != 0) {
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&meta, 0, sizeof(meta));
    if (mcb_opts.netns && geteuid() != 0) {
        bench_err("--netns makes network namespaces and needs root; skipped");
        return 77;
    }
    if (mcb_opts.device && tk_cuda_probe(why, sizeof(why)) != 0) {
        /* probed in a child: the clients are forked from this process */
        bench_err("--device needs the CUDA driver ($MF_CUDA_LIBRARY, else "
                  "libcuda.so.1) and a device: %s",
                  why);
        return 1;
    }
    bench_proc_signals_init();
    snprintf(mcb_run_id, sizeof(mcb_run_id), "%d", (int)getpid());
    mcb_deadline =
        bench_now_ns() + (uint64_t)mcb_opts.timeout_s * 1000000000ull;
    mcb_sh = mmap(NULL, sizeof(*mcb_sh), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mcb_sh == MAP_FAILED) {
        bench_err("mmap: %s", strerror(errno));
        return 1;
    }
    memset(mcb_sh, 0, sizeof(*mcb_sh));
    if (mcb_opts.netns) {
        if (tk_netns_setup(&mcb_lab, (int)mcb_opts.hosts) != 0) {
            bench_err("cannot create the network namespaces for --netns "
                      "(iproute2 needed)");
            goto out_unmap;
        }
        addr = mcb_lab.addr[0];
    }
    if (mcb_opts.meta_url != NULL) {
        snprintf(url, sizeof(url), "%s", mcb_opts.meta_url);
    } else {
        if (mcb_meta_start(&meta, addr) != 0) {
            goto out_netns;
        }
        snprintf(url, sizeof(url), "%s", meta.url);
    }
    if (mcb_run_clients(url, &meta) != 0) {
        bench_err("FAILED");
        goto out_meta;
    }
    mcb_report_print(url, mcb_opts.meta_url == NULL);
    ret = 0;
out_meta:
    if (mcb_meta_stop(&meta) != 0) {
        bench_err("FAILED: mmc-meta did not stop cleanly");
        ret = 1;
    }
out_netns:
    tk_netns_destroy(&mcb_lab);
out_unmap:
    munmap(mcb_sh, sizeof(*mcb_sh));
    return ret;
}
