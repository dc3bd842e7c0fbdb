/*
 * Process control of the benchmarks (mf-bench, mmc-bench): the parent forks
 * the processes of a run (a server: mf-bench's config store, mmc-bench's
 * mmc-meta; a group: ranks or clients that send fixed-size records through
 * one pipe), collects the records, and stops or kills them all.
 *
 * Invariants: the parent calls into no library and starts no thread, so
 * forking from it is safe.  Every child starts with
 * bench_proc_child_setup(): it dies with the parent (PR_SET_PDEATHSIG), so
 * nothing outlives a killed benchmark; every child is reaped.  SIGINT and
 * SIGTERM only set a flag in the parent, which then stops its run through
 * the normal path (killing the children, removing what it made).
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_PROC_MAX_CHILDREN 64

/* A child process of the benchmark; done once it has been reaped. */
typedef struct bench_proc_child {
    pid_t pid;
    bool done;
} bench_proc_child_t;

/* Kills (SIGKILL) and reaps the children of the n that are not done yet. */
void bench_proc_kill_reap(bench_proc_child_t *children, unsigned n);

/* In the parent: SIGINT and SIGTERM set the stop flag; SIGPIPE ignored. */
void bench_proc_signals_init(void);

/* The signal that asked the parent to stop, or 0. */
int bench_proc_stop_signal(void);

/* In a child right after fork: SIGINT and SIGTERM back to default, no
 * signal blocked, killed when the parent dies; _exit(1) if parent (the
 * pid of the forking process) is gone already. */
void bench_proc_child_setup(pid_t parent);

/* Forks a server child that runs child_main(fd, arg), fd the write end of
 * a new pipe; *rfd_p gets the read end (close-on-exec).  child_main must
 * not return (it exits or execs; if it does, the child exits with 1).
 * The pid, or -1 (logged). */
pid_t bench_proc_spawn(void (*child_main)(int fd, void *arg), void *arg,
                       int *rfd_p);

/* Stops a server child: SIGTERM, then SIGKILL after timeout_ms, calling
 * tick(arg) (when not NULL) every 10 ms while it waits.  0 once it exited
 * with status 0; else -1, logged naming the child as what. */
int bench_proc_stop(pid_t pid, const char *what, unsigned timeout_ms,
                    void (*tick)(void *arg), void *arg);

/* A group of n children sending records of rec_size bytes (< PIPE_BUF,
 * so the writes of several never interleave) through one pipe. */
typedef struct bench_proc_group {
    unsigned n; /* children, at most BENCH_PROC_MAX_CHILDREN */
    /* Names child i in messages: "<what> <i> (pid <pid>)" with name_index,
     * else "<what> <pid>". */
    const char *what;
    bool name_index;
    /* In child i, forked by tk_proc_spawn(): its exit code; out_fd is the
     * pipe's write end.  The child ends with tk_proc_exit(), so a
     * sanitizer build checks it for leaks. */
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
