/*
 * The processes of a benchmark run (mf-bench, mmc-bench) on the test
 * kit's child processes (tk_proc): what is the benchmarks' own, the stop
 * flag of SIGINT and SIGTERM and a group of children (ranks or clients)
 * that send fixed-size records through one pipe.  Servers are started and
 * stopped with tk_proc (mf-bench's config store) and tk_meta (mmc-bench's
 * mmc-meta).
 *
 * Invariants: the parent calls into no library and starts no thread, so
 * forking from it is safe.  Every child is forked by tk_proc: it dies with
 * the parent (PR_SET_PDEATHSIG), so nothing outlives a killed benchmark,
 * and it is reaped, at exit at the latest.  SIGINT and SIGTERM only set a
 * flag in the parent, which then stops its run through the normal path
 * (killing the children, removing what it made).
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_PROC_MAX_CHILDREN 64

/* In the parent: SIGINT and SIGTERM set the stop flag, which ends a
 * group's run (and interrupts the waits of tk_fd_read_line()); SIGPIPE
 * ignored.  A child forked by tk_proc has every signal at its default. */
void bench_proc_signals_init(void);

/* A group of n children sending records of rec_size bytes (< PIPE_BUF,
 * so the writes of several never interleave) through one pipe. */
typedef struct bench_proc_group {
    unsigned n; /* children, at most BENCH_PROC_MAX_CHILDREN */
    /* Names child i in messages: "<what> <i> (pid <pid>)" with name_index,
     * else "<what> <pid>". */
    const char *what;
    bool name_index;
    /* In child i: its exit code; out_fd is the pipe's write end.  The
     * child ends with tk_proc_exit(), so a sanitizer build checks it for
     * leaks. */
    int (*child_main)(unsigned i, int out_fd, void *arg);
    /* In the parent: each whole record read (rec_size bytes, aligned for
     * any type), valid until the call returns. */
    void (*record)(const void *rec, void *arg);
    size_t rec_size;
    /* In the parent, every 100 ms or so (NULL: none): -1 fails the run. */
    int (*tick)(void *arg);
    /* In the parent, once the run is over, before the children left are
     * killed (NULL: none); failed tells whether the run failed. */
    void (*end)(void *arg, bool failed);
    void *arg;
    uint64_t deadline;  /* bench_now_ns() past which the run fails */
    unsigned timeout_s; /* named in that failure's message (--timeout) */
} bench_proc_group_t;

/* Forks the group, hands every record to g->record until each child has
 * exited and the pipe is closed.  0 when every child exited with 0; -1
 * (logged) when one failed, on a stop signal or past the deadline, after
 * which the others are killed. */
int bench_proc_group_run(const bench_proc_group_t *g);

#endif /* BENCH_PROC_H */
