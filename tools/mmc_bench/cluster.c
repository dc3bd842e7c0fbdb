/*
 * mmc-bench's processes: the mmc-meta daemon it starts (the test kit's
 * tk_meta: free ports, its ready line parsed, inside host 0 with --netns)
 * and the --procs client processes, whose records it collects.
 *
 * Invariants: the parent never calls into the library and never starts a
 * thread, so forking from it (the daemon: fork + exec; the clients: fork)
 * is safe; every child dies with the parent and is reaped; on any failure
 * or SIGINT/SIGTERM the parent kills the clients and stops the daemon
 * (tk_proc underneath).  The daemon prints only its ready line on stdout;
 * its log goes to the benchmark's stderr.
 */
#include "mmc_bench.h"

#include "bench_proc.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------- meta daemon */

int mcb_meta_start(tk_meta_t *m, const char *addr)
{
    const char *sets[MCB_MAX_SETS + 1];
    tk_meta_params_t params = {
        .bin = mcb_opts.meta_bin,
        .addr = addr,
        .sets = sets,
        .ready_ms = MCB_READY_MS,
        .stop_ms = MCB_STOP_MS,
        .net = mcb_opts.netns ? &mcb_lab : NULL,
        .host = 0,
    };

    memset(m, 0, sizeof(*m));
    memcpy(sets, mcb_opts.meta_sets, mcb_opts.nmeta_sets * sizeof(sets[0]));
    sets[mcb_opts.nmeta_sets] = NULL;
    if (access(mcb_opts.meta_bin, X_OK) != 0) {
        bench_err("cannot run the meta daemon %s: %s (see --meta-bin, --meta)",
                  mcb_opts.meta_bin, strerror(errno));
        return -1;
    }
    return tk_meta_start(m, &params);
}

int mcb_meta_stop(tk_meta_t *m)
{
    int code;

    if (m->pid <= 0) {
        return 0;
    }
    /* tk_proc logs a kill past the deadline (-1) and a signal */
    code = tk_meta_stop(m, SIGTERM);
    if (code > 0) {
        bench_err("mmc-meta exited with %d", code);
    }
    return code == 0 ? 0 : -1;
}

/* -------------------------------------------------------------- clients */

/* The clients' group. */
typedef struct mcb_cluster {
    const char *url;
    tk_meta_t *meta;
} mcb_cluster_t;

static int mcb_cluster_client(unsigned i, int out_fd, void *arg)
{
    mcb_cluster_t *cl = arg;
    uint32_t host = i % mcb_opts.hosts;

    if (mcb_opts.netns && tk_netns_enter(&mcb_lab, (int)host) != 0) {
        return 1;
    }
    return mcb_client_main(i, host, cl->url, out_fd);
}

static void mcb_cluster_record(const void *rec, void *arg)
{
    mcb_report_add(rec);
}

/* The run fails if the daemon exits. */
static int mcb_cluster_tick(void *arg)
{
    mcb_cluster_t *cl = arg;
    int status;

    if (cl->meta->pid > 0 && tk_proc_poll(cl->meta->pid, &status) != 0) {
        bench_err("mmc-meta exited during the run (status 0x%x)", status);
        cl->meta->pid = 0;
        return -1;
    }
    return 0;
}

static void mcb_cluster_end(void *arg, bool failed)
{
    __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
    if (failed) {
        /* a moment for the others to notice the abort and say why */
        tk_sleep_ms(200);
    }
}

int mcb_run_clients(const char *url, tk_meta_t *meta)
{
    mcb_cluster_t cl = {url, meta};
    const bench_proc_group_t group = {
        .n = mcb_opts.procs,
        .what = "client process",
        .name_index = true,
        .child_main = mcb_cluster_client,
        .record = mcb_cluster_record,
        .rec_size = sizeof(mcb_record_t),
        .tick = mcb_cluster_tick,
        .end = mcb_cluster_end,
        .arg = &cl,
        .deadline = mcb_deadline,
        .timeout_s = mcb_opts.timeout_s,
    };

    return bench_proc_group_run(&group);
}
