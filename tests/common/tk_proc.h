/*
 * Child processes of tests and benchmarks: fork with a deadline, checks
 * inside children, and a role-prefixed log line.
 *
 * Process model: a test process that forks stays single-threaded where it
 * can (fork copies one thread only).  Every child forked here dies with
 * its parent (PR_SET_PDEATHSIG), gets default signal handlers (a cmocka
 * crash handler must not run in a child), and is remembered until reaped,
 * so tk_proc_kill_all() (also run at exit) leaves no process behind.
 * Waits always have a deadline; a child past it is killed.
 *
 * Inside children use the TK_CHECK family, never cmocka asserts (a failed
 * cmocka assert would longjmp into the parent's test runner copy):
 *   TK_CHECK(cond), TK_CHECK_OK(expr)     report file:line, exit with 1;
 *   TK_CHECK_GOTO(cond, fmt, ...),
 *   TK_CHECK_ST_GOTO(expr, expected),
 *   TK_CHECK_OK_GOTO(expr)                report file:line, `goto fail`
 *                                         (for children that must clean
 *                                         up, e.g. leave a pool, first).
 */
#ifndef MF_TK_PROC_H
#define MF_TK_PROC_H

#include <memfabric/mf_status.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* ------------------------------------------------------------ logging */

/* Prints "[<role> pid <pid>] <message>" to stderr. */
void tk_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets the role tk_print shows in this process, e.g. "rank 2". */
void tk_role_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *tk_role_get(void);

/* ------------------------------------------------------------- checks */

/* Prints "<file>:<line>: check failed: <what>" and the optional message. */
void tk_check_report(const char *file, int line, const char *what,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define TK_CHECK(_cond)                                                        \
    do {                                                                       \
        if (!(_cond)) {                                                        \
            tk_check_report(__FILE__, __LINE__, #_cond, NULL);                 \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

#define TK_CHECK_OK(_expr)                                                     \
    do {                                                                       \
        mf_status_t _tk_st = (_expr);                                          \
        if (_tk_st != MF_OK) {                                                 \
            tk_check_report(__FILE__, __LINE__, #_expr, "%s",                  \
                            mf_status_name(_tk_st));                           \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

#define TK_CHECK_GOTO(_cond, ...)                                              \
    do {                                                                       \
        if (!(_cond)) {                                                        \
            tk_check_report(__FILE__, __LINE__, #_cond, __VA_ARGS__);          \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

#define TK_CHECK_ST_GOTO(_expr, _expected)                                     \
    do {                                                                       \
        mf_status_t _tk_st = (_expr);                                          \
        if (_tk_st != (_expected)) {                                           \
            tk_check_report(__FILE__, __LINE__, #_expr,                        \
                            "returned %s (%d), expected %s",                   \
                            mf_status_name(_tk_st), (int)_tk_st,               \
                            mf_status_name(_expected));                        \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

#define TK_CHECK_OK_GOTO(_expr) TK_CHECK_ST_GOTO(_expr, MF_OK)

/* --------------------------------------------------------------- time */

/* ThreadSanitizer makes a process several times slower: the time limits a
 * test hands the library and then checks (request, member and put
 * timeouts) grow with it, as the tests' own limits do (tests/CMakeLists). */
#if defined(__SANITIZE_THREAD__)
#define TK_TIME_SCALE 5
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TK_TIME_SCALE 5
#endif
#endif
#ifndef TK_TIME_SCALE
#define TK_TIME_SCALE 1
#endif

uint64_t tk_time_ms(void);
void tk_sleep_ms(unsigned ms);

/* ---------------------------------------------------------- processes */

typedef int (*tk_proc_fn)(int index, void *arg);

/*
 * fork() for tests: 0 in the child (set up as above), the pid in the
 * parent (remembered until reaped), or -1 (logged).
 */
pid_t tk_proc_fork(void);

/* Ends a child: in a sanitizer build a zero code becomes 1 if
 * LeakSanitizer finds a leak (_exit skips its check at exit). */
__attribute__((noreturn)) void tk_proc_exit(int code);

/*
 * Forks a child that runs fn(index, arg) and exits with its return value
 * (clamped to 0..255).  Returns the pid, or -1 (logged).
 */
pid_t tk_proc_spawn(tk_proc_fn fn, int index, void *arg);

/* tk_proc_spawn(), with the child's standard output on a pipe whose read
 * end (close-on-exec) *stdout_fd gets. */
pid_t tk_proc_spawn_out(tk_proc_fn fn, int index, void *arg, int *stdout_fd);

/* Spawns n children with indices 0..n-1; -1 if any fork failed (the ones
 * already started are killed and reaped). */
int tk_proc_spawn_n(int n, tk_proc_fn fn, void *arg, pid_t *pids);

/*
 * Waits for pid up to timeout_ms; on timeout kills it with SIGKILL and
 * reaps it.  Returns the exit code (0..255), 128 + signal if it was
 * killed by a signal, or -1 on timeout or error.
 */
int tk_proc_wait(pid_t pid, unsigned timeout_ms);

/* Waits for all n pids with one common deadline; codes (optional) gets
 * each result as tk_proc_wait returns it.  Returns 0 if every one exited
 * 0; stragglers are killed. */
int tk_proc_wait_all(const pid_t *pids, int n, unsigned timeout_ms, int *codes);

/*
 * Reaps pid if it has ended, without waiting: 1 with its wait status in
 * *status_p (for WIFEXITED() and the like), 0 while it runs, -1 on error
 * (logged; pid is forgotten).
 */
int tk_proc_poll(pid_t pid, int *status_p);

/* Stops pid: sends sig (SIGTERM for a clean stop), then waits as
 * tk_proc_wait() does, killing it after timeout_ms; its result. */
int tk_proc_stop(pid_t pid, int sig, unsigned timeout_ms);

/* Makes syscall nr fail with EPERM in this process from now on, as a
 * container's seccomp profile does (pidfd_getfd without CAP_SYS_PTRACE).
 * 0, or -1 (logged). */
int tk_proc_deny_syscall(long nr);

/* Stops child pid (SIGSTOP) and returns once all its threads are
 * stopped (kill() alone returns while they may still run): 0, or -1
 * (logged; e.g. it had ended). */
int tk_proc_freeze(pid_t pid);

/* Kills (SIGKILL) pid and reaps it. */
void tk_proc_kill(pid_t pid);

/* Kills (SIGKILL) and reaps every child still alive. */
void tk_proc_kill_all(void);

/* Children forked and not yet reaped (0 when every child was reaped). */
int tk_proc_tracked(void);

/*
 * Forks and execs argv[0] (a path) with argv; nofile, if not 0, is the
 * soft limit of open files of the child (its hard limit stays).  If
 * stdout_fd is not NULL the child's stdout goes to a pipe whose read end
 * is returned there.  Returns the pid (remembered), or -1.
 */
pid_t tk_proc_exec(char *const argv[], unsigned nofile, int *stdout_fd);

/* The path of name in the folder of this program's executable (name
 * may go on with '/' and '..', e.g. "../../tools/mf-store").  0, or -1
 * (logged). */
int tk_proc_exe_near(const char *name, char *buf, size_t len);

/* The soft and hard limits of open files of process pid, as
 * /proc/<pid>/limits shows them ("unlimited" is UINT64_MAX).  0 or -1. */
int tk_proc_nofile(pid_t pid, uint64_t *soft_p, uint64_t *hard_p);

/* Reads one line (without the newline) from fd within timeout_ms; 0 or -1. */
int tk_fd_read_line(int fd, char *buf, size_t len, unsigned timeout_ms);

/* A loopback TCP port that was free a moment ago (bind to port 0).  0/-1. */
int tk_port_free(uint16_t *port_p);

#endif /* MF_TK_PROC_H */
