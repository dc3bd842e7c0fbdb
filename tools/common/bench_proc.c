/*
 * The benchmarks' stop flag and record groups; see bench_proc.h.
 *
 * Invariants: the messages are the tools' own, so a tool that moved here
 * prints what it printed before.  The stop flag is the only state, set by
 * the signal handler and read by the parent's loops; forking, reaping and
 * killing are tk_proc's.
 */
#include "bench_proc.h"

#include "bench_util.h"
#include "tk_proc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t bench_proc_stop_sig;

static void bench_proc_on_signal(int sig)
{
    bench_proc_stop_sig = sig;
}

void bench_proc_signals_init(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bench_proc_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Room for one record of a group. */
typedef union bench_proc_rec {
    max_align_t align;
    char bytes[PIPE_BUF];
} bench_proc_rec_t;

/* Reads what fd has towards the next record; hands on a whole one.
 * -1 on EOF or error. */
static int bench_proc_group_read(const bench_proc_group_t *g, int fd,
                                 bench_proc_rec_t *rec, size_t *have)
{
    ssize_t n = read(fd, rec->bytes + *have, g->rec_size - *have);

    if (n <= 0) {
        return n == 0 || errno != EINTR ? -1 : 0;
    }
    *have += (size_t)n;
    if (*have == g->rec_size) {
        *have = 0;
        g->record(rec->bytes, g->arg);
    }
    return 0;
}

/* What every child of a group starts from: a copy of the parent's. */
typedef struct bench_proc_start {
    const bench_proc_group_t *g;
    int fds[2];
} bench_proc_start_t;

static int bench_proc_group_child(int i, void *arg)
{
    const bench_proc_start_t *start = arg;

    close(start->fds[0]);
    return start->g->child_main((unsigned)i, start->fds[1], start->g->arg);
}

/* Reaps the children that exited; -1 (logged) if one failed. */
static int bench_proc_group_reap(const bench_proc_group_t *g, const pid_t *pids,
                                 bool *done, unsigned *left)
{
    char name[96];
    unsigned i;
    int status, ret;

    for (i = 0; i < g->n; i++) {
        if (done[i]) {
            continue;
        }
        ret = tk_proc_poll(pids[i], &status);
        if (ret == 0) {
            continue;
        }
        done[i] = true;
        (*left)--;
        if (ret < 0) {
            return -1;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            continue;
        }
        if (g->name_index) {
            snprintf(name, sizeof(name), "%s %u (pid %d)", g->what, i,
                     (int)pids[i]);
        } else {
            snprintf(name, sizeof(name), "%s %d", g->what, (int)pids[i]);
        }
        if (WIFSIGNALED(status)) {
            bench_err("%s killed by signal %d", name, WTERMSIG(status));
        } else {
            bench_err("%s failed (exit %d)", name, WEXITSTATUS(status));
        }
        return -1;
    }
    return 0;
}

int bench_proc_group_run(const bench_proc_group_t *g)
{
    pid_t pids[BENCH_PROC_MAX_CHILDREN];
    bool done[BENCH_PROC_MAX_CHILDREN] = {false};
    bench_proc_start_t start = {g, {-1, -1}};
    bench_proc_rec_t rec;
    struct pollfd pfd;
    unsigned i, started = 0, left = g->n;
    size_t have = 0;
    bool eof = false;
    int ret = -1;

    if (g->n > BENCH_PROC_MAX_CHILDREN || g->rec_size > sizeof(rec.bytes)) {
        bench_err("a group of %u children, records of %zu bytes: too many, "
                  "too large",
                  g->n, g->rec_size);
        return -1;
    }
    if (pipe(start.fds) < 0) {
        bench_err("pipe: %s", strerror(errno));
        return -1;
    }
    /* when one fork fails, tk_proc kills the ones that started */
    if (tk_proc_spawn_n((int)g->n, bench_proc_group_child, &start, pids) != 0) {
        goto out;
    }
    started = g->n;
    close(start.fds[1]);
    start.fds[1] = -1;
    pfd.fd = start.fds[0];
    pfd.events = POLLIN;
    while (left > 0 || !eof) {
        if (bench_proc_stop_sig) {
            bench_err("interrupted by signal %d", (int)bench_proc_stop_sig);
            goto out;
        }
        if (bench_now_ns() > g->deadline) {
            bench_err("run took longer than --timeout %u s", g->timeout_s);
            goto out;
        }
        if (!eof && poll(&pfd, 1, 100) == 1 &&
            bench_proc_group_read(g, start.fds[0], &rec, &have) < 0) {
            eof = true;
        }
        if (eof) {
            tk_sleep_ms(10);
        }
        if ((g->tick != NULL && g->tick(g->arg) != 0) ||
            bench_proc_group_reap(g, pids, done, &left) != 0) {
            goto out;
        }
    }
    ret = 0;
out:
    if (g->end != NULL) {
        g->end(g->arg, ret != 0);
    }
    for (i = 0; i < started; i++) {
        if (!done[i]) {
            tk_proc_kill(pids[i]);
        }
    }
    close(start.fds[0]);
    if (start.fds[1] >= 0) {
        close(start.fds[1]);
    }
    return ret;
}
