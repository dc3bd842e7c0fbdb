/*
 * mmc-bench's processes: the mmc-meta daemon it starts (the binary next to
 * its own executable, with free ports, parsing its ready line) and the
 * --procs client processes, whose records it collects.
 *
 * Invariants: the parent never calls into the library and never starts a
 * thread, so forking from it (the daemon: fork + exec; the clients: fork)
 * is safe; every child dies with the parent and is reaped; on any failure
 * or SIGINT/SIGTERM the parent kills the clients and stops the daemon
 * (common/bench_proc.c).  Whatever the daemon prints goes on to stderr.
 */
#include "mmc_bench.h"

#include "bench_proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------- meta daemon */

/* Reads the daemon's stdout until the ready line; -1 on EOF/timeout. */
static int mcb_meta_wait_ready(mcb_meta_t *m)
{
    static const char prefix[] = "mmc-meta ready rpc=";
    uint64_t deadline = bench_now_ns() + MCB_READY_MS * 1000000ull;
    char line[512];
    size_t have = 0;
    struct pollfd pfd;
    char *nl, *rpc, *sp;
    ssize_t n;

    pfd.fd = m->out_fd;
    pfd.events = POLLIN;
    for (;;) {
        uint64_t now = bench_now_ns();

        if (bench_proc_stop_signal() != 0 || now >= deadline) {
            bench_err("mmc-meta printed no ready line within %d s",
                      MCB_READY_MS / 1000);
            return -1;
        }
        if (poll(&pfd, 1, deadline - now > 100000000ull ? 100 : 1) <= 0) {
            continue;
        }
        n = read(m->out_fd, line + have, sizeof(line) - 1 - have);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            bench_err("mmc-meta exited before it was ready");
            return -1;
        }
        have += (size_t)n;
        line[have] = '\0';
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (strncmp(line, prefix, sizeof(prefix) - 1) == 0) {
                goto found;
            }
            fprintf(stderr, "mmc-meta: %s\n", line);
            have -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, have + 1);
        }
        if (have == sizeof(line) - 1) {
            bench_err("mmc-meta: unexpected output");
            return -1;
        }
    }
found:
    rpc = line + sizeof(prefix) - 1;
    sp = strchr(rpc, ' ');
    if (sp == NULL || (size_t)(sp - rpc) >= sizeof(m->rpc) ||
        sscanf(sp, " store=%u http=%u", &m->store_port, &m->http_port) != 2 ||
        strrchr(rpc, ':') == NULL) {
        bench_err("mmc-meta: cannot parse its ready line '%s'", line);
        return -1;
    }
    memcpy(m->rpc, rpc, (size_t)(sp - rpc));
    m->rpc[sp - rpc] = '\0';
    return 0;
}

/* The daemon's child: stdout into the pipe, then exec. */
static void mcb_meta_exec(int fd, void *arg)
{
    char **argv = arg;

    signal(SIGPIPE, SIG_DFL);
    if (mcb_opts.netns && tk_netns_enter(&mcb_lab, 0) != 0) {
        _exit(1);
    }
    if (dup2(fd, STDOUT_FILENO) < 0) {
        _exit(1);
    }
    close(fd);
    execv(argv[0], argv);
    fprintf(stderr, "mmc-bench: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int mcb_meta_start(mcb_meta_t *m, const char *addr)
{
    char *argv[16 + 2 * MCB_MAX_SETS];
    char addr_set[96];
    bench_proc_child_t meta;
    unsigned i, n = 0;

    memset(m, 0, sizeof(*m));
    m->pid = -1;
    m->out_fd = -1;
    snprintf(addr_set, sizeof(addr_set), "addr=%s", addr);
    argv[n++] = mcb_opts.meta_bin;
    argv[n++] = "--set";
    argv[n++] = "port=0";
    argv[n++] = "--set";
    argv[n++] = "store_port=0";
    argv[n++] = "--set";
    argv[n++] = "http_port=0";
    argv[n++] = "--set";
    argv[n++] = addr_set;
    for (i = 0; i < mcb_opts.nmeta_sets; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)mcb_opts.meta_sets[i];
    }
    argv[n] = NULL;
    if (access(mcb_opts.meta_bin, X_OK) != 0) {
        bench_err("cannot run the meta daemon %s: %s (see --meta-bin, --meta)",
                  mcb_opts.meta_bin, strerror(errno));
        return -1;
    }
    m->pid = bench_proc_spawn(mcb_meta_exec, argv, &m->out_fd);
    if (m->pid < 0) {
        return -1;
    }
    if (mcb_meta_wait_ready(m) != 0) {
        meta.pid = m->pid;
        meta.done = false;
        bench_proc_kill_reap(&meta, 1);
        m->pid = -1;
        close(m->out_fd);
        m->out_fd = -1;
        return -1;
    }
    return 0;
}

/* Passes on whatever the daemon prints after its ready line. */
static void mcb_meta_drain(void *arg)
{
    mcb_meta_t *m = arg;
    char buf[1024];
    struct pollfd pfd = {m->out_fd, POLLIN, 0};
    ssize_t n;

    if (m->out_fd < 0) {
        return;
    }
    while (poll(&pfd, 1, 0) == 1) {
        n = read(m->out_fd, buf, sizeof(buf));
        if (n <= 0) {
            close(m->out_fd);
            m->out_fd = -1;
            return;
        }
        if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
            return;
        }
    }
}

int mcb_meta_stop(mcb_meta_t *m)
{
    int ret;

    if (m->pid <= 0) {
        return 0;
    }
    ret = bench_proc_stop(m->pid, "mmc-meta", MCB_STOP_MS, mcb_meta_drain, m);
    m->pid = -1;
    if (m->out_fd >= 0) {
        close(m->out_fd);
        m->out_fd = -1;
    }
    return ret;
}

/* -------------------------------------------------------------- clients */

/* The clients' group. */
typedef struct mcb_cluster {
    const char *url;
    mcb_meta_t *meta;
} mcb_cluster_t;

static int mcb_cluster_client(unsigned i, int out_fd, void *arg)
{
    mcb_cluster_t *cl = arg;
    uint32_t host = i % mcb_opts.hosts;

    signal(SIGPIPE, SIG_DFL);
    if (mcb_opts.netns && tk_netns_enter(&mcb_lab, (int)host) != 0) {
        _exit(1);
    }
    if (cl->meta->out_fd >= 0) {
        close(cl->meta->out_fd);
    }
    return mcb_client_main(i, host, cl->url, out_fd);
}

static void mcb_cluster_record(const void *rec, void *arg)
{
    mcb_report_add(rec);
}

/* Passes on the daemon's output; the run fails if the daemon exits. */
static int mcb_cluster_tick(void *arg)
{
    mcb_cluster_t *cl = arg;
    int status;

    mcb_meta_drain(cl->meta);
    if (cl->meta->pid > 0 &&
        waitpid(cl->meta->pid, &status, WNOHANG) == cl->meta->pid) {
        bench_err("mmc-meta exited during the run (status 0x%x)", status);
        cl->meta->pid = -1;
        return -1;
    }
    return 0;
}

static void mcb_cluster_end(void *arg, bool failed)
{
    __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
    if (failed) {
        /* a moment for the others to notice the abort and say why */
        bench_sleep_ms(200);
    }
}

int mcb_run_clients(const char *url, mcb_meta_t *meta)
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
