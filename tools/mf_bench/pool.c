/*
 * mf-bench's pool: the processes of one run on this host.  For every
 * (threads, lanes) setting the parent forks a config store process and
 * --ranks rank processes; rank 0 measures and sends its results to the
 * parent through a pipe, the parent prints them.  With --store/--world the
 * process is one rank of a pool started elsewhere (mb_rank_main only).
 * With a device direction every rank has a device segment as large as its
 * host segment.
 *
 * Invariants: the parent never calls into the library, so forking from it
 * is safe; every child dies with the parent and is reaped, and on any
 * failure the parent kills the rest (tk_proc underneath).  No rank
 * leaves while rank 0 may still copy into its segment.
 */
#include "mf_bench.h"

#include "bench_proc.h"
#include "tk_netns.h"
#include "tk_proc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Where rank 1 publishes "address port" of the raw TCP baseline. */
#define MB_TCPB_KEY "mf-bench/tcp-baseline"

/* Where rank 1's baseline listens, and the store. */
static const char *mb_tcp_addr = "127.0.0.1";
static const char *mb_store_host = "127.0.0.1";

/* ----------------------------------------------------- netns hosts */

/*
 * --netns: two "hosts" of the test kit's network-namespace lab
 * (tests/common/tk_netns.h, shared with mmc-bench and the multi-host
 * tests), each with a veth pair into a bridge in a third namespace.  The
 * store and even ranks run in host 0, odd ranks in host 1; rank i takes
 * rank i.  The namespaces are removed at exit, on SIGINT/SIGTERM (through
 * the normal exit path), and namespaces of earlier runs whose process is
 * gone are removed at start.
 */
static tk_netns_t mb_lab;

int mb_pool_netns_setup(void)
{
    if (tk_netns_setup(&mb_lab, 2) != 0) {
        return -1;
    }
    mb_store_host = mb_lab.addr[0];
    mb_tcp_addr = mb_lab.addr[1];
    return 0;
}

/* In a child: enters host (0 or 1); a no-op without --netns. */
static void mb_ns_enter(int host)
{
    if (mb_opts.netns && tk_netns_enter(&mb_lab, host) != 0) {
        _exit(1);
    }
}

/* --------------------------------------------------------------- rank */

static int mb_wait_joined(mf_bm_t *bm, uint32_t rank)
{
    uint64_t deadline = bench_now_ns() + MB_JOIN_WAIT_MS * 1000000ull;

    while (!mf_bm_rank_joined(bm, rank)) {
        if (bench_now_ns() > deadline) {
            bench_err("rank %u did not join within %d ms", rank,
                      MB_JOIN_WAIT_MS);
            return -1;
        }
        tk_sleep_ms(10);
    }
    return 0;
}

/* One rank of a pool; rank 0 measures.  Returns the exit code. */
int mb_rank_main(const char *url, uint32_t world, uint32_t threads,
                 uint32_t lanes, uint32_t want_rank, int out_fd)
{
    char thr[16], where[96];
    bench_tcp_server_t srv;
    uint8_t *srv_buf = NULL;
    void *value = NULL;
    size_t vlen;
    mf_bm_create_params_t params;
    mf_bm_config_t cfg;
    mf_store_t *store = NULL;
    mf_trans_t *trans = NULL;
    mb_bench_t bench;
    uint32_t rank = UINT32_MAX, barrier_timeout;
    uint64_t max = mb_max_size(), seg;
    mf_status_t st;
    int ret = 1, i;

    memset(&bench, 0, sizeof(bench));
    memset(&srv, 0, sizeof(srv));
    bench.out_fd = out_fd;
    seg = (max + 2 * BENCH_MIB - 1) / (2 * BENCH_MIB) * (2 * BENCH_MIB);
    barrier_timeout = mb_opts.timeout_s * 1000u;

    mf_bm_config_init(&cfg);
    snprintf(thr, sizeof(thr), "%u", threads - 1);
    st = mf_bm_config_set(&cfg, "copy_threads", thr);
    if (st == MF_OK) {
        st = mf_bm_config_set(&cfg, "transport", mb_opts.transport);
    }
    if (st == MF_OK && mb_opts.tcp) {
        snprintf(thr, sizeof(thr), "%u", lanes);
        st = mf_bm_config_set(&cfg, "tcp.lanes", thr);
        if (st != MF_OK) {
            bench_err("this library does not take tcp.lanes = %u", lanes);
        }
    }
    if (st != MF_OK) {
        bench_err("config: %s", mf_status_str(st));
        return 1;
    }
    st = mf_init();
    if (st != MF_OK) {
        bench_err("mf_init: %s", mf_status_str(st));
        return 1;
    }
    st = mf_store_connect(url, NULL, &store);
    if (st != MF_OK) {
        bench_err("connecting to the store %s: %s", url, mf_status_str(st));
        goto out_uninit;
    }
    st = mf_bm_init(url, world, want_rank, &cfg);
    if (st != MF_OK) {
        bench_err("mf_bm_init: %s", mf_status_str(st));
        goto out_close_store;
    }
    mf_bm_rank_id(&rank);
    mf_bm_create_params_init(&params);
    params.local_dram_size = seg;
    params.max_dram_per_rank = seg;
    if (mb_opts.device) {
        params.local_hbm_size = seg;
        params.max_hbm_per_rank = seg;
    }
    st = mf_bm_create(0, &params, &bench.bm);
    if (st != MF_OK) {
        bench_err("rank %u: mf_bm_create: %s%s", rank, mf_status_str(st),
                  mb_opts.device && st == MF_ERR_UNSUPPORTED
                      ? " (device segments need a library built with the "
                        "cuda memory kind, i.e. with cuda.h)"
                      : "");
        goto out_bm_uninit;
    }
    st = mf_bm_join(bench.bm);
    if (st != MF_OK) {
        bench_err("rank %u: mf_bm_join: %s", rank, mf_status_str(st));
        goto out_destroy;
    }
    if (mb_opts.trans && rank <= 1) {
        /* rank 1 serves its segment as a TRANS buffer (its GVA is its own
         * address), rank 0 transfers with it */
        snprintf(where, sizeof(where), "mf-bench-%u", rank);
        st = mf_trans_create(url, where, &cfg, &trans);
        if (st == MF_OK && rank == 1) {
            st = mf_trans_register(
                trans, mf_bm_gva_of_rank(bench.bm, 1, MF_MEM_HOST), seg);
        }
        if (st != MF_OK) {
            bench_err("rank %u: TRANS: %s", rank, mf_status_str(st));
            goto out_leave;
        }
        bench.trans = rank == 0 ? trans : NULL;
    }
    if (mb_opts.wire && rank == 1) {
        /* the raw TCP baseline's receiving end */
        srv_buf = bench_map(max);
        if (srv_buf == NULL ||
            bench_tcp_server_start(&srv, mb_tcp_addr, srv_buf, max, where,
                                   sizeof(where)) != 0) {
            goto out_leave;
        }
        st = mf_store_set(store, MB_TCPB_KEY, where, strlen(where), 0);
        if (st != MF_OK) {
            bench_err("rank 1: publishing the baseline address: %s",
                      mf_status_str(st));
            goto out_leave;
        }
    }
    st = mf_store_barrier(store, "mf-bench/joined", world, barrier_timeout);
    if (st != MF_OK) {
        bench_err("rank %u: barrier: %s", rank, mf_status_str(st));
        goto out_leave;
    }
    if (rank == 0 && mb_opts.wire) {
        bench.lanes = lanes;
        st = mf_store_get(store, MB_TCPB_KEY, barrier_timeout, &value, &vlen);
        if (st != MF_OK) {
            bench_err("rank 0: the baseline address of rank 1: %s",
                      mf_status_str(st));
            goto out_leave;
        }
        if (bench_tcp_client_init(&bench.tcpb, lanes, value) != 0) {
            goto out_leave;
        }
    }
    if (rank == 0) {
        bench.world = world;
        bench.threads = threads;
        bench.split_min = cfg.copy_split_min;
        for (i = 0; i < 2; i++) {
            mf_mem_type_t type = i == 0 ? MF_MEM_HOST : MF_MEM_DEVICE;

            if (i == 1 && !mb_opts.device) {
                break;
            }
            bench.r1[i] =
                (uint64_t)(uintptr_t)mf_bm_gva_of_rank(bench.bm, 1, type);
            bench.r2[i] =
                world >= 3
                    ? (uint64_t)(uintptr_t)mf_bm_gva_of_rank(bench.bm, 2, type)
                    : 0;
        }
        if (mb_wait_joined(bench.bm, 1) != 0 ||
            (world >= 3 && mb_wait_joined(bench.bm, 2) != 0)) {
            goto out_leave;
        }
        if (mb_bench_run(&bench, max) != 0) {
            /* the others wait at the barrier; the parent kills them */
            mb_bench_free(&bench, max);
            goto out_leave;
        }
        mb_bench_free(&bench, max);
    }
    /* nobody leaves while rank 0 may still copy into its segment */
    st = mf_store_barrier(store, "mf-bench/done", world, barrier_timeout);
    if (st != MF_OK) {
        bench_err("rank %u: final barrier: %s", rank, mf_status_str(st));
        goto out_leave;
    }
    ret = 0;
out_leave:
    mf_trans_destroy(trans);
    if (bench.tcpb.n > 0) {
        bench_tcp_client_fini(&bench.tcpb);
    }
    bench_tcp_server_stop(&srv);
    if (srv_buf != NULL) {
        munmap(srv_buf, max);
    }
    free(value);
    st = mf_bm_leave(bench.bm);
    if (st != MF_OK && ret == 0) {
        bench_err("rank %u: mf_bm_leave: %s", rank, mf_status_str(st));
        ret = 1;
    }
out_destroy:
    mf_bm_destroy(bench.bm);
out_bm_uninit:
    mf_bm_uninit();
out_close_store:
    mf_store_close(store);
out_uninit:
    mf_uninit();
    return ret;
}

/* ---------------------------------------------------------- the store */

/* The store process: prints its port on stdout as a line, serves until
 * SIGTERM; its exit code. */
static int mb_store_main(int index, void *arg)
{
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    sigset_t set;
    int sig;

    mb_ns_enter(0);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    mf_store_server_config_init(&cfg);
    snprintf(cfg.host, sizeof(cfg.host), "%s", mb_store_host);
    cfg.port = 0;
    if (mf_store_server_start(&cfg, &server) != MF_OK) {
        bench_err("cannot start the config store");
        return 1;
    }
    printf("%u\n", (unsigned)mf_store_server_port(server));
    fflush(stdout);
    while (sigwait(&set, &sig) != 0) {
    }
    mf_store_server_stop(server);
    return 0;
}

static pid_t mb_store_start(char *url, size_t len)
{
    char line[16];
    unsigned port = 0;
    pid_t pid;
    int fd, ret;

    pid = tk_proc_spawn_out(mb_store_main, 0, NULL, &fd);
    if (pid < 0) {
        return -1;
    }
    ret = tk_fd_read_line(fd, line, sizeof(line), MB_STORE_MS);
    close(fd);
    if (ret != 0 || sscanf(line, "%u", &port) != 1 || port == 0 ||
        port > 65535) {
        bench_err("the config store did not start");
        tk_proc_kill(pid);
        return -1;
    }
    snprintf(url, len, "tcp://%s:%u", mb_store_host, port);
    return pid;
}

/* -------------------------------------------------------------- a round */

/* One round's group of ranks. */
typedef struct mb_round {
    const char *url;
    uint32_t threads;
    uint32_t lanes;
    bool *header_done;
} mb_round_t;

static int mb_round_rank(unsigned i, int out_fd, void *arg)
{
    mb_round_t *r = arg;

    mb_ns_enter((int)(i % 2));
    return mb_rank_main(r->url, mb_opts.ranks, r->threads, r->lanes,
                        mb_opts.netns ? i : MF_RANK_AUTO, out_fd);
}

/* Prints a record of rank 0: the first round's header, every result. */
static void mb_round_record(const void *rec, void *arg)
{
    const mb_record_t *r = rec;
    mb_round_t *round = arg;

    if (r->type != MB_REC_HEADER) {
        mb_report_result(r);
    } else if (!*round->header_done) {
        mb_report_header(r->world, r->split_min);
        *round->header_done = true;
    }
}

int mb_pool_round(uint32_t threads, uint32_t lanes, bool *header_done,
                  uint64_t deadline)
{
    char url[64];
    mb_round_t round = {url, threads, lanes, header_done};
    const bench_proc_group_t group = {
        .n = mb_opts.ranks,
        .what = "rank process",
        .child_main = mb_round_rank,
        .record = mb_round_record,
        .rec_size = sizeof(mb_record_t),
        .arg = &round,
        .deadline = deadline,
        .timeout_s = mb_opts.timeout_s,
    };
    pid_t store_pid;
    int ret, code;

    store_pid = mb_store_start(url, sizeof(url));
    if (store_pid < 0) {
        return -1;
    }
    ret = bench_proc_group_run(&group);
    /* tk_proc logs a kill past the deadline (-1) and a signal */
    code = tk_proc_stop(store_pid, SIGTERM, MB_STORE_MS);
    if (code != 0) {
        if (code > 0) {
            bench_err("the config store exited with %d", code);
        }
        ret = -1;
    }
    return ret;
}
