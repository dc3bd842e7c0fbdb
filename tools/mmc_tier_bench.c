/*
 * mmc-tier-bench: the prefix-cache workload on a pool smaller than its
 * working set, with and without an SSD tier, and the raw read speed of
 * the same SSD area measured in the same run.
 *
 *   mmc-tier-bench [--dram SIZE] [--ssd SIZE] [--dir DIR] [--prefixes N]
 *                  [--rounds N] [--block BYTES] [--threads N]
 *                  [--raw-seconds S]
 *
 * Each request reads a prefix's KV block (61 x 128 KiB + 61 x 16 KiB by
 * default); a miss puts it (the prefill that would recompute it).  The
 * prefixes are asked in turn, round after round.  Two runs, each with its
 * own mmc-meta (started next to this program) and this process as the one
 * local service: DRAM only, then DRAM plus an SSD area of --ssd bytes in a
 * file of --dir.  For each: hit rate, gets by the tier that served them
 * (looked up with mmc_query before the timed get) with their latency, and
 * the gets from SSD as bytes per second.  Then the baseline: O_DIRECT
 * reads of blocks of that size at random offsets of the same file, by as
 * many threads as the area has (fio's randread, in this process).  Every
 * get is checked byte for byte (outside the timing).
 */
#include "bench_util.h"
#include "tk_meta.h"
#include "tk_pattern.h"
#include "tk_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <memcache/memcache.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TB_KV_BLOCK (61ull * (128 << 10) + 61ull * (16 << 10))

typedef struct tb_opts {
    uint64_t dram, ssd, block;
    unsigned prefixes, rounds, threads;
    double raw_seconds;
    char dir[256];
    char meta_bin[512];
} tb_opts_t;

typedef struct tb_result {
    uint64_t gets[3]; /* by tier: DRAM, SSD; [2]: misses */
    uint64_t *ns[3];  /* latencies: get DRAM, get SSD, put */
    uint64_t nns[3];
    uint64_t ssd_bytes, ssd_ns;
} tb_result_t;

static tb_opts_t tb;

static int tb_meta_start(tk_meta_t *m)
{
    char seg[64];
    const char *sets[] = {seg, "evict_high_pct=90", "evict_low_pct=70",
                          "max_ranks=4", NULL};
    tk_meta_params_t p = {
        .bin = tb.meta_bin, .addr = "127.0.0.1", .sets = sets};

    snprintf(seg, sizeof(seg), "max_segment_size=%llu",
             (unsigned long long)tb.dram);
    memset(m, 0, sizeof(*m));
    return tk_meta_start(m, &p);
}

static int tb_open(const tk_meta_t *m, const char *ssd_path, mmc_t **mmc_p)
{
    mmc_config_t cfg;
    char v[64];
    mmc_status_t st;

    mmc_config_init(&cfg);
    st = mmc_config_set(&cfg, "meta_url", m->url);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)tb.dram);
    st = (st == MMC_OK) ? mmc_config_set(&cfg, "dram_size", v) : st;
    if ((st == MMC_OK) && (ssd_path != NULL)) {
        st = mmc_config_set(&cfg, "ssd_path", ssd_path);
        snprintf(v, sizeof(v), "%llu", (unsigned long long)tb.ssd);
        st = (st == MMC_OK) ? mmc_config_set(&cfg, "ssd_size", v) : st;
        snprintf(v, sizeof(v), "%u", tb.threads);
        st = (st == MMC_OK) ? mmc_config_set(&cfg, "ssd_threads", v) : st;
    }
    st = (st == MMC_OK) ? mmc_config_set(&cfg, "timeout_ms", "60s") : st;
    st = (st == MMC_OK) ? mmc_create(&cfg, mmc_p) : st;
    if (st != MMC_OK) {
        bench_err("cannot start the local service: %s", mmc_status_name(st));
        return -1;
    }
    return 0;
}

static void tb_time(tb_result_t *r, int kind, uint64_t ns)
{
    r->ns[kind][r->nns[kind]++] = ns;
}

/* The workload on mmc: 0, or -1 (logged). */
static int tb_workload(mmc_t *mmc, tb_result_t *r, char *buf)
{
    uint64_t n = (uint64_t)tb.prefixes * tb.rounds;
    char key[64];

    for (int k = 0; k < 3; k++) {
        r->ns[k] = calloc(n, sizeof(uint64_t));
        if (r->ns[k] == NULL) {
            bench_err("out of memory");
            return -1;
        }
    }
    for (unsigned round = 0; round < tb.rounds; round++) {
        for (unsigned p = 0; p < tb.prefixes; p++) {
            mmc_obj_info_t info;
            mmc_status_t st;
            uint64_t t0;
            int tier;

            snprintf(key, sizeof(key), "prefix-%u", p);
            mmc_obj_info_init(&info, 1);
            st = mmc_query(mmc, key, &info);
            tier = (st != MMC_OK)                     ? 2
                   : (info.media[0] == MMC_MEDIA_SSD) ? 1
                                                      : 0;
            t0 = bench_now_ns();
            st = (tier == 2) ? MMC_ERR_NOT_FOUND
                             : mmc_get(mmc, key, buf, tb.block);
            if (st == MMC_OK) {
                uint64_t ns = bench_now_ns() - t0;

                tb_time(r, tier, ns);
                r->gets[tier]++;
                if (tier == 1) {
                    r->ssd_bytes += tb.block;
                    r->ssd_ns += ns;
                }
                if (tk_pattern_check(buf, tb.block, p, 0) >= 0) {
                    bench_err("get %s: wrong bytes", key);
                    return -1;
                }
                continue;
            }
            if (st != MMC_ERR_NOT_FOUND) {
                bench_err("get %s: %s", key, mmc_status_name(st));
                return -1;
            }
            r->gets[2]++; /* a miss: the prefill puts it */
            tk_pattern_fill(buf, tb.block, p, 0);
            t0 = bench_now_ns();
            st = mmc_put(mmc, key, buf, tb.block, NULL);
            if ((st != MMC_OK) && (st != MMC_ERR_EXISTS)) {
                bench_err("put %s: %s", key, mmc_status_name(st));
                return -1;
            }
            tb_time(r, 2, bench_now_ns() - t0);
        }
    }
    return 0;
}

static double tb_pct_ms(uint64_t *ns, uint64_t n, double pct)
{
    if (n == 0) {
        return 0;
    }
    qsort(ns, n, sizeof(*ns), bench_cmp_u64);
    return (double)ns[(size_t)((double)(n - 1) * pct)] / 1e6;
}

static void tb_report(const char *name, tb_result_t *r)
{
    uint64_t reqs = r->gets[0] + r->gets[1] + r->gets[2];

    printf("%-11s %8llu %6.1f%% %8llu %8llu %8llu   %6.2f %6.2f   %6.2f "
           "%6.2f   %6.2f   %7.2f\n",
           name, (unsigned long long)reqs,
           100.0 * (double)(r->gets[0] + r->gets[1]) / (double)reqs,
           (unsigned long long)r->gets[0], (unsigned long long)r->gets[1],
           (unsigned long long)r->gets[2], tb_pct_ms(r->ns[0], r->nns[0], 0.5),
           tb_pct_ms(r->ns[0], r->nns[0], 0.99),
           tb_pct_ms(r->ns[1], r->nns[1], 0.5),
           tb_pct_ms(r->ns[1], r->nns[1], 0.99),
           tb_pct_ms(r->ns[2], r->nns[2], 0.5),
           (r->ssd_ns > 0) ? (double)r->ssd_bytes / (double)r->ssd_ns : 0.0);
}

/* One run: 0, or -1. */
static int tb_run(const char *ssd_path, tb_result_t *r, char *buf)
{
    tk_meta_t meta;
    mmc_t *mmc = NULL;
    int rc = -1;

    if (tb_meta_start(&meta) != 0) {
        return -1;
    }
    if (tb_open(&meta, ssd_path, &mmc) == 0) {
        rc = tb_workload(mmc, r, buf);
        mmc_destroy(mmc);
    }
    if (tk_meta_stop(&meta, SIGTERM) != 0) {
        bench_err("mmc-meta did not stop cleanly");
        rc = -1;
    }
    return rc;
}

/* ---- the raw baseline ---- */

typedef struct tb_raw {
    int fd;
    uint64_t deadline_ns;
    uint64_t bytes;
    unsigned seed;
    int failed;
} tb_raw_t;

static void *tb_raw_main(void *arg)
{
    tb_raw_t *t = arg;
    uint64_t len = (tb.block + 4095) & ~4095ull;
    uint64_t slots = tb.ssd / len;
    void *buf = NULL;

    if ((slots == 0) || (posix_memalign(&buf, 4096, len) != 0)) {
        t->failed = 1;
        return NULL;
    }
    while (bench_now_ns() < t->deadline_ns) {
        uint64_t off = (uint64_t)(rand_r(&t->seed) % slots) * len;
        ssize_t n = pread(t->fd, buf, len, (off_t)off);

        if (n != (ssize_t)len) {
            t->failed = 1;
            break;
        }
        t->bytes += len;
    }
    free(buf);
    return NULL;
}

/* GB/s of O_DIRECT block reads at random offsets of path by nthreads
 * threads, or -1. */
static double tb_raw_reads(const char *path, unsigned nthreads)
{
    pthread_t th[64];
    tb_raw_t t[64];
    uint64_t start, bytes = 0;
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    unsigned i, n = 0;
    int failed = 0;

    if (fd < 0) {
        bench_err("cannot open %s with O_DIRECT: %s", path, strerror(errno));
        return -1;
    }
    start = bench_now_ns();
    for (i = 0; i < nthreads; i++) {
        t[i] =
            (tb_raw_t){.fd = fd,
                       .deadline_ns = start + (uint64_t)(tb.raw_seconds * 1e9),
                       .seed = 1234 + i};
        if (pthread_create(&th[i], NULL, tb_raw_main, &t[i]) != 0) {
            break;
        }
        n++;
    }
    for (i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        bytes += t[i].bytes;
        failed |= t[i].failed;
    }
    close(fd);
    if (failed || (n == 0)) {
        bench_err("raw reads of %s failed", path);
        return -1;
    }
    return (double)bytes / (double)(bench_now_ns() - start);
}

static void tb_usage(FILE *f)
{
    fprintf(f, "usage: mmc-tier-bench [--dram SIZE (256M)] [--ssd SIZE (1G)] "
               "[--dir DIR (/var/tmp)] [--prefixes N (60)] [--rounds N (5)] "
               "[--block BYTES (61x128K+61x16K)] [--threads N (4)] "
               "[--raw-seconds S (2)]\n");
}

static int tb_parse(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dram", required_argument, NULL, 'd'},
        {"ssd", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'D'},
        {"prefixes", required_argument, NULL, 'p'},
        {"rounds", required_argument, NULL, 'r'},
        {"block", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"raw-seconds", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    tb = (tb_opts_t){.dram = 256ull << 20,
                     .ssd = 1ull << 30,
                     .block = TB_KV_BLOCK,
                     .prefixes = 60,
                     .rounds = 5,
                     .threads = 4,
                     .raw_seconds = 2,
                     .dir = "/var/tmp"};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;

        switch (c) {
        case 'd':
            bad = bench_parse_size(optarg, &tb.dram);
            break;
        case 's':
            bad = bench_parse_size(optarg, &tb.ssd);
            break;
        case 'b':
            bad = bench_parse_size(optarg, &tb.block);
            break;
        case 'D':
            snprintf(tb.dir, sizeof(tb.dir), "%s", optarg);
            break;
        case 'p':
            bad = bench_parse_uint(optarg, "--prefixes", 1, 1u << 20,
                                   &tb.prefixes);
            break;
        case 'r':
            bad = bench_parse_uint(optarg, "--rounds", 1, 1u << 20, &tb.rounds);
            break;
        case 't':
            bad = bench_parse_uint(optarg, "--threads", 1, 64, &tb.threads);
            break;
        case 'S':
            bad = bench_parse_seconds(optarg, "--raw-seconds", 600,
                                      &tb.raw_seconds);
            break;
        case 'h':
            tb_usage(stdout);
            exit(0);
        default:
            tb_usage(stderr);
            return -1;
        }
        if (bad != 0) {
            return -1;
        }
    }
    if ((optind != argc) || (tb.block < 4096) || (tb.dram < tb.block) ||
        (tb.ssd % 4096 != 0) || (tb.ssd < tb.block)) {
        bench_err("the pool must hold a block: --dram and --ssd (a "
                  "multiple of 4K) at least --block, which is 4K at least");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    tb_result_t runs[2];
    char path[300], log[310];
    char *buf = NULL;
    double raw, raw1;
    int fd, rc = 1;

    bench_set_tool("mmc-tier-bench");
    if ((tb_parse(argc, argv) != 0) ||
        (tk_proc_exe_near("mmc-meta", tb.meta_bin, sizeof(tb.meta_bin)) != 0)) {
        return 2;
    }
    snprintf(path, sizeof(path), "%s/mmc-tier-bench-XXXXXX", tb.dir);
    fd = mkstemp(path);
    if (fd < 0) {
        bench_err("cannot create a file in %s: %s", tb.dir, strerror(errno));
        return 1;
    }
    close(fd);
    snprintf(log, sizeof(log), "%s.log", path);
    memset(runs, 0, sizeof(runs));
    if (posix_memalign((void **)&buf, 4096, tb.block) != 0) {
        bench_err("out of memory");
        goto out;
    }
    printf("# mmc-tier-bench: %u prefixes x %u rounds, one block of %llu "
           "bytes each (working set %.0f MiB); DRAM %.0f MiB, SSD %.0f MiB "
           "(%s, %u threads); one local service, this process\n",
           tb.prefixes, tb.rounds, (unsigned long long)tb.block,
           (double)tb.prefixes * (double)tb.block / 1048576.0,
           (double)tb.dram / 1048576.0, (double)tb.ssd / 1048576.0, tb.dir,
           tb.threads);
    if ((tb_run(NULL, &runs[0], buf) != 0) ||
        (tb_run(path, &runs[1], buf) != 0)) {
        goto out;
    }
    raw1 = tb_raw_reads(path, 1);
    raw = tb_raw_reads(path, tb.threads);
    if ((raw1 < 0) || (raw < 0)) {
        goto out;
    }
    printf("%-11s %8s %7s %8s %8s %8s   %13s   %13s   %6s   %7s\n", "run",
           "requests", "hits", "dram", "ssd", "misses", "get dram p50/99",
           "get ssd p50/99", "put", "ssd GB/s");
    tb_report("dram", &runs[0]);
    tb_report("dram+ssd", &runs[1]);
    printf("raw reads  O_DIRECT %llu-byte blocks at random offsets of the "
           "area: %.2f GB/s by 1 thread, %.2f by %u; gets from SSD / raw "
           "by 1 thread (a get reads one block): %.2f\n",
           (unsigned long long)((tb.block + 4095) & ~4095ull), raw1, raw,
           tb.threads,
           (runs[1].ssd_ns > 0)
               ? (double)runs[1].ssd_bytes / (double)runs[1].ssd_ns / raw1
               : 0.0);
    printf("(latencies in ms; a get from SSD waits for the block to load into "
           "DRAM, then copies it)\n");
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) {
            free(runs[i].ns[k]);
        }
    }
    free(buf);
    unlink(path);
    unlink(log);
    return rc;
}
