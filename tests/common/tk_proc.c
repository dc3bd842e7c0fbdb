/*
 * Child processes of tests and benchmarks (see tk_proc.h): forking with a
 * deadline, reaping, exec with a piped stdout, and the role-prefixed log
 * line every check failure goes through.
 *
 * Invariants: every pid forked here is in tk_proc_pids until reaped, and
 * tk_proc_kill_all() (registered with atexit in the first parent) kills
 * and reaps what is left; children end with _exit() so that they never
 * run the parent's atexit handlers or return into a test runner.
 */
#include "tk_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define TK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_ASAN 1
#endif
#endif

#ifdef TK_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define TK_PROC_MAX_PIDS 256

static pid_t tk_proc_pids[TK_PROC_MAX_PIDS];
static int tk_proc_npids;
static bool tk_proc_atexit_done;
static char tk_role[64] = "test";

/* ------------------------------------------------------------ logging */

void tk_role_set(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tk_role, sizeof(tk_role), fmt, ap);
    va_end(ap);
}

void tk_print(const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s pid %d] %s\n", tk_role, (int)getpid(), line);
    fflush(stderr);
}

const char *tk_role_get(void)
{
    return tk_role;
}

void tk_check_report(const char *file, int line, const char *what,
                     const char *fmt, ...)
{
    char msg[768] = "";
    va_list ap;

    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    tk_print("%s:%d: check failed: %s%s%s", file, line, what,
             msg[0] != '\0' ? ": " : "", msg);
}

/* --------------------------------------------------------------- time */

uint64_t tk_time_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void tk_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------- processes */

static void tk_proc_track(pid_t pid)
{
    if (tk_proc_npids < TK_PROC_MAX_PIDS) {
        tk_proc_pids[tk_proc_npids++] = pid;
    }
}

static void tk_proc_untrack(pid_t pid)
{
    int i;

    for (i = 0; i < tk_proc_npids; i++) {
        if (tk_proc_pids[i] == pid) {
            tk_proc_pids[i] = tk_proc_pids[--tk_proc_npids];
            return;
        }
    }
}

void tk_proc_kill_all(void)
{
    int i;

    for (i = 0; i < tk_proc_npids; i++) {
        kill(tk_proc_pids[i], SIGKILL);
    }
    for (i = 0; i < tk_proc_npids; i++) {
        while (waitpid(tk_proc_pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    }
    tk_proc_npids = 0;
}

/* Runs in a fresh child: dies with the parent, forgets the parent's
 * children (they are its siblings) and its atexit duty. */
static void tk_proc_child_setup(pid_t parent)
{
    sigset_t none;
    int sig;

    tk_proc_npids = 0;
    /* The test runner's crash handlers must not run in a child: a crash
     * kills the child and the parent reports the signal. */
    for (sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            signal(sig, SIG_DFL);
        }
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) {
        _exit(120);
    }
}

/* _exit() skips LeakSanitizer's check at exit: run it by hand in a
 * sanitizer build. */
void tk_proc_exit(int code)
{
#ifdef TK_ASAN
    if (code == 0 && __lsan_do_recoverable_leak_check() != 0) {
        tk_print("memory leaked (see the LeakSanitizer report above)");
        code = 1;
    }
#endif
    fflush(NULL);
    _exit(code);
}

pid_t tk_proc_fork(void)
{
    pid_t parent = getpid();
    pid_t pid;

    if (!tk_proc_atexit_done) {
        atexit(tk_proc_kill_all);
        tk_proc_atexit_done = true;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        tk_print("fork() failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        tk_proc_child_setup(parent);
        return 0;
    }
    tk_proc_track(pid);
    return pid;
}

/* The child of tk_proc_spawn*(): runs fn, exits with what it returns. */
__attribute__((noreturn)) static void tk_proc_run(tk_proc_fn fn, int index,
                                                  void *arg)
{
    int ret;

    tk_role_set("proc %d", index);
    ret = fn(index, arg);
    tk_proc_exit(ret < 0 ? 1 : (ret > 255 ? 255 : ret));
}

pid_t tk_proc_spawn(tk_proc_fn fn, int index, void *arg)
{
    pid_t pid = tk_proc_fork();

    if (pid == 0) {
        tk_proc_run(fn, index, arg);
    }
    return pid;
}

pid_t tk_proc_spawn_out(tk_proc_fn fn, int index, void *arg, int *stdout_fd)
{
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        tk_print("pipe() failed: %s", strerror(errno));
        return -1;
    }
    pid = tk_proc_fork();
    if (pid == 0) {
        /* the copy on stdout is not close-on-exec */
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
            _exit(127);
        }
        close(fds[0]);
        close(fds[1]);
        tk_proc_run(fn, index, arg);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    *stdout_fd = fds[0];
    return pid;
}

int tk_proc_spawn_n(int n, tk_proc_fn fn, void *arg, pid_t *pids)
{
    int i, j;

    for (i = 0; i < n; i++) {
        pids[i] = tk_proc_spawn(fn, i, arg);
        if (pids[i] < 0) {
            for (j = 0; j < i; j++) {
                kill(pids[j], SIGKILL);
                tk_proc_wait(pids[j], 10000);
            }
            return -1;
        }
    }
    return 0;
}

/* What tk_proc_exec() runs. */
typedef struct tk_proc_exec_args {
    char *const *argv;
    unsigned nofile;
} tk_proc_exec_args_t;

static int tk_proc_exec_fn(int index, void *arg)
{
    const tk_proc_exec_args_t *args = arg;
    struct rlimit rl;

    if (args->nofile != 0) {
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = args->nofile;
        }
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            tk_print("setrlimit(RLIMIT_NOFILE, %u) failed: %s", args->nofile,
                     strerror(errno));
            return 127;
        }
    }
    execv(args->argv[0], args->argv);
    tk_print("execv(%s) failed: %s", args->argv[0], strerror(errno));
    return 127;
}

pid_t tk_proc_exec(char *const argv[], unsigned nofile, int *stdout_fd)
{
    tk_proc_exec_args_t args = {argv, nofile};

    if (stdout_fd != NULL) {
        return tk_proc_spawn_out(tk_proc_exec_fn, 0, &args, stdout_fd);
    }
    return tk_proc_spawn(tk_proc_exec_fn, 0, &args);
}

int tk_proc_exe_near(const char *name, char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n <= 0) {
        tk_print("readlink(/proc/self/exe) failed: %s", strerror(errno));
        return -1;
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash == NULL) {
        tk_print("no folder in the path of this program: %s", self);
        return -1;
    }
    *slash = '\0';
    if ((size_t)snprintf(buf, len, "%s/%s", self, name) >= len) {
        tk_print("path too long: %s/%s", self, name);
        return -1;
    }
    return 0;
}

static uint64_t tk_proc_limit_value(const char *s)
{
    return (strncmp(s, "unlimited", 9) == 0) ? UINT64_MAX
                                             : strtoull(s, NULL, 10);
}

int tk_proc_nofile(pid_t pid, uint64_t *soft_p, uint64_t *hard_p)
{
    char path[64], line[256], soft[32], hard[32];
    int ret = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        tk_print("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if ((strncmp(line, "Max open files", 14) == 0) &&
            (sscanf(line + 14, "%31s %31s", soft, hard) == 2)) {
            *soft_p = tk_proc_limit_value(soft);
            *hard_p = tk_proc_limit_value(hard);
            ret = 0;
            break;
        }
    }
    fclose(f);
    if (ret != 0) {
        tk_print("%s has no line on open files", path);
    }
    return ret;
}

int tk_fd_read_line(int fd, char *buf, size_t len, unsigned timeout_ms)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    struct pollfd pfd = {fd, POLLIN, 0};
    size_t n = 0;
    int wait;
    char c;

    while (n + 1 < len) {
        wait = (int)(deadline > tk_time_ms() ? deadline - tk_time_ms() : 0);
        if (poll(&pfd, 1, wait) != 1 || read(fd, &c, 1) != 1) {
            return -1;
        }
        if (c == '\n') {
            buf[n] = '\0';
            return 0;
        }
        buf[n++] = c;
    }
    return -1;
}

static int tk_proc_decode_status(pid_t pid, int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        tk_print("child %d killed by signal %d (%s)", (int)pid,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
        return 128 + WTERMSIG(status);
    }
    return -1;
}

int tk_proc_poll(pid_t pid, int *status_p)
{
    pid_t ret;

    do {
        ret = waitpid(pid, status_p, WNOHANG);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        tk_print("waitpid(%d) failed: %s", (int)pid, strerror(errno));
        tk_proc_untrack(pid);
        return -1;
    }
    if (ret == 0) {
        return 0;
    }
    tk_proc_untrack(pid);
    return 1;
}

/* Non-blocking reap: 1 and *code_p if pid ended, 0 if running, -1 error. */
static int tk_proc_try_reap(pid_t pid, int *code_p)
{
    int status, ret;

    ret = tk_proc_poll(pid, &status);
    if (ret > 0) {
        *code_p = tk_proc_decode_status(pid, status);
    }
    return ret;
}

#if defined(__x86_64__)
#define TK_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TK_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

int tk_proc_deny_syscall(long nr)
{
    struct sock_filter code[] = {
        /* another architecture's calls: allowed, they are not ours */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TK_AUDIT_ARCH, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]),
                              .filter = code};

#ifndef TK_AUDIT_ARCH
    tk_print("seccomp filters: architecture not known to the test kit");
    return -1;
#endif
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        tk_print("cannot install a seccomp filter: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int tk_proc_freeze(pid_t pid)
{
    int status;
    pid_t ret;

    if (kill(pid, SIGSTOP) != 0) {
        tk_print("cannot stop child %d: %s", (int)pid, strerror(errno));
        return -1;
    }
    /* the group stop is reported once every thread has stopped */
    do {
        ret = waitpid(pid, &status, WUNTRACED);
    } while (ret < 0 && errno == EINTR);
    if (ret == pid && WIFSTOPPED(status)) {
        return 0;
    }
    if (ret == pid) {
        tk_proc_untrack(pid); /* it ended: reaped */
    }
    tk_print("child %d did not stop: %s", (int)pid,
             ret < 0 ? strerror(errno) : "it ended");
    return -1;
}

void tk_proc_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    tk_proc_untrack(pid);
}

int tk_proc_wait(pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    int code, ret;

    for (;;) {
        ret = tk_proc_try_reap(pid, &code);
        if (ret < 0) {
            return -1;
        }
        if (ret > 0) {
            return code;
        }
        if (tk_time_ms() >= deadline) {
            tk_print("child %d still running after %u ms: killed", (int)pid,
                     timeout_ms);
            tk_proc_kill(pid);
            return -1;
        }
        tk_sleep_ms(10);
    }
}

int tk_proc_stop(pid_t pid, int sig, unsigned timeout_ms)
{
    kill(pid, sig);
    return tk_proc_wait(pid, timeout_ms);
}

int tk_proc_wait_all(const pid_t *pids, int n, unsigned timeout_ms, int *codes)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    bool done[TK_PROC_MAX_PIDS] = {false};
    int left = n, failed = 0, i, code, ret;

    if (n > TK_PROC_MAX_PIDS) {
        return -1;
    }
    while (left > 0) {
        for (i = 0; i < n; i++) {
            if (done[i]) {
                continue;
            }
            ret = tk_proc_try_reap(pids[i], &code);
            if (ret == 0) {
                continue;
            }
            if (ret < 0) {
                code = -1;
            }
            done[i] = true;
            left--;
            if (codes != NULL) {
                codes[i] = code;
            }
            if (code != 0) {
                tk_print("child %d (index %d) exited with %d", (int)pids[i], i,
                         code);
                failed = 1;
            }
        }
        if (left == 0) {
            break;
        }
        if (tk_time_ms() >= deadline) {
            for (i = 0; i < n; i++) {
                if (!done[i]) {
                    tk_print("child %d (index %d) still running after %u ms: "
                             "killed",
                             (int)pids[i], i, timeout_ms);
                    tk_proc_kill(pids[i]);
                    if (codes != NULL) {
                        codes[i] = -1;
                    }
                }
            }
            return -1;
        }
        tk_sleep_ms(10);
    }
    return failed ? -1 : 0;
}

int tk_port_free(uint16_t *port_p)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    *port_p = ntohs(sa.sin_port);
    return 0;
}

int tk_proc_tracked(void)
{
    return tk_proc_npids;
}
