/*
 * Helpers shared by the multi-process integration tests: forked store and
 * rank processes with deadlines, a deterministic PRNG and position-dependent
 * patterns, and the usual bootstrap of a BM pool inside a rank.
 *
 * Invariants: every pid this file forks is in it_pids until reaped, and
 * it_kill_all() (registered with atexit in the parent) kills and reaps what
 * is left; children exit with _exit() so that they never run the parent's
 * atexit handlers or return into the test runner.
 */
#include "it_helpers.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define IT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IT_ASAN 1
#endif
#endif

#ifdef IT_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define IT_MAX_PIDS 256

static pid_t it_pids[IT_MAX_PIDS];
static int it_npids;
static bool it_atexit_done;
static char it_role[64] = "test";

/* ------------------------------------------------------------ logging */

void it_set_role(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(it_role, sizeof(it_role), fmt, ap);
    va_end(ap);
}

void it_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s pid %d] %s\n", it_role, (int)getpid(), line);
    fflush(stderr);
}

/* --------------------------------------------------------------- time */

uint64_t it_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void it_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t it_splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void it_rng_seed(it_rng_t *rng, uint64_t seed)
{
    rng->state = seed;
}

uint64_t it_rng_next(it_rng_t *rng)
{
    rng->state += 0x9e3779b97f4a7c15ull;
    return it_splitmix(rng->state);
}

uint64_t it_rng_range(it_rng_t *rng, uint64_t lo, uint64_t hi)
{
    uint64_t span;

    if (hi <= lo) {
        return lo;
    }
    span = hi - lo + 1;
    if (span == 0) { /* the whole 64-bit range */
        return it_rng_next(rng);
    }
    return lo + it_rng_next(rng) % span;
}

static unsigned it_log2(uint64_t v)
{
    return v ? 63u - (unsigned)__builtin_clzll(v) : 0;
}

uint64_t it_rng_size(it_rng_t *rng, uint64_t lo, uint64_t hi)
{
    unsigned bits;
    uint64_t a, b;

    if (lo == 0) {
        lo = 1;
    }
    if (hi <= lo) {
        return lo;
    }
    bits = (unsigned)it_rng_range(rng, it_log2(lo), it_log2(hi));
    a = 1ull << bits;
    b = (bits >= 63) ? UINT64_MAX : (2ull << bits) - 1;
    if (a < lo) {
        a = lo;
    }
    if (b > hi) {
        b = hi;
    }
    return it_rng_range(rng, a, b);
}

static uint64_t it_pattern_word(uint64_t seed, uint64_t k)
{
    return it_splitmix(it_splitmix(seed) ^ k);
}

static uint8_t it_pattern_byte(uint64_t seed, uint64_t pos)
{
    return (uint8_t)(it_pattern_word(seed, pos / 8) >> (8 * (pos % 8)));
}

void it_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t base)
{
    uint8_t *p = buf;
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        p[i] = it_pattern_byte(seed, base + i);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = it_pattern_word(seed, (base + i) / 8);
        memcpy(p + i, &w, 8); /* little endian: byte j is bits 8j.. */
    }
    for (; i < len; i++) {
        p[i] = it_pattern_byte(seed, base + i);
    }
}

ssize_t it_pattern_check(const void *buf, size_t len, uint64_t seed,
                         uint64_t base)
{
    const uint8_t *p = buf;
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        if (p[i] != it_pattern_byte(seed, base + i)) {
            return (ssize_t)i;
        }
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = it_pattern_word(seed, (base + i) / 8);
        if (memcmp(p + i, &w, 8) != 0) {
            break;
        }
    }
    for (; i < len; i++) {
        if (p[i] != it_pattern_byte(seed, base + i)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

ssize_t it_memdiff(const void *a, const void *b, size_t len)
{
    const uint8_t *pa = a, *pb = b;
    size_t i;

    if (memcmp(a, b, len) == 0) {
        return -1;
    }
    for (i = 0; i < len && pa[i] == pb[i]; i++) {
    }
    return (ssize_t)i;
}

ssize_t it_memcheck(const void *buf, int c, size_t len)
{
    const uint8_t *p = buf;
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] != (uint8_t)c) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* ---------------------------------------------------------- processes */

static void it_pid_add(pid_t pid)
{
    if (it_npids < IT_MAX_PIDS) {
        it_pids[it_npids++] = pid;
    }
}

static void it_pid_del(pid_t pid)
{
    int i;

    for (i = 0; i < it_npids; i++) {
        if (it_pids[i] == pid) {
            it_pids[i] = it_pids[--it_npids];
            return;
        }
    }
}

void it_kill_all(void)
{
    int i;

    for (i = 0; i < it_npids; i++) {
        kill(it_pids[i], SIGKILL);
    }
    for (i = 0; i < it_npids; i++) {
        while (waitpid(it_pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    }
    it_npids = 0;
}

/* Runs in a fresh child: dies with the parent, forgets the parent's
 * children (they are its siblings) and its atexit duty. */
static void it_child_setup(pid_t parent)
{
    sigset_t none;
    int sig;

    it_npids = 0;
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

/* Children end with _exit(), which skips LeakSanitizer's check at exit:
 * run it by hand in a sanitizer build.  Returns the exit code to use. */
static int it_child_exit_code(int ret)
{
#ifdef IT_ASAN
    if (ret == 0 && __lsan_do_recoverable_leak_check() != 0) {
        it_log("memory leaked (see the LeakSanitizer report above)");
        ret = 1;
    }
#endif
    return ret;
}

static pid_t it_fork(void)
{
    pid_t parent = getpid();
    pid_t pid;

    if (!it_atexit_done) {
        atexit(it_kill_all);
        it_atexit_done = true;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        it_log("fork() failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        it_child_setup(parent);
        return 0;
    }
    it_pid_add(pid);
    return pid;
}

pid_t it_spawn(it_proc_fn fn, int index, void *arg)
{
    pid_t pid = it_fork();
    int ret;

    if (pid != 0) {
        return pid;
    }
    it_set_role("proc %d", index);
    ret = it_child_exit_code(fn(index, arg));
    fflush(NULL);
    _exit(ret < 0 ? 1 : (ret > 255 ? 255 : ret));
}

int it_spawn_n(int n, it_proc_fn fn, void *arg, pid_t *pids)
{
    int i, j;

    for (i = 0; i < n; i++) {
        pids[i] = it_spawn(fn, i, arg);
        if (pids[i] < 0) {
            for (j = 0; j < i; j++) {
                kill(pids[j], SIGKILL);
                it_wait(pids[j], 10000);
            }
            return -1;
        }
    }
    return 0;
}

/* nofile 0: the limit of open files stays as it is. */
static pid_t it_spawn_exec_limit(char *const argv[], unsigned nofile,
                                 int *stdout_fd)
{
    int fds[2] = {-1, -1};
    struct rlimit rl;
    pid_t pid;

    if (stdout_fd != NULL && pipe(fds) < 0) {
        it_log("pipe() failed: %s", strerror(errno));
        return -1;
    }
    pid = it_fork();
    if (pid == 0) {
        if (stdout_fd != NULL) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]);
            close(fds[1]);
        }
        if (nofile != 0) {
            if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                rl.rlim_cur = nofile;
            }
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                it_log("setrlimit(RLIMIT_NOFILE, %u) failed: %s", nofile,
                       strerror(errno));
                _exit(127);
            }
        }
        execv(argv[0], argv);
        it_log("execv(%s) failed: %s", argv[0], strerror(errno));
        _exit(127);
    }
    if (stdout_fd != NULL) {
        close(fds[1]);
        if (pid < 0) {
            close(fds[0]);
        } else {
            *stdout_fd = fds[0];
        }
    }
    return pid;
}

pid_t it_spawn_exec(char *const argv[], int *stdout_fd)
{
    return it_spawn_exec_limit(argv, 0, stdout_fd);
}

pid_t it_spawn_exec_nofile(char *const argv[], unsigned nofile, int *stdout_fd)
{
    return it_spawn_exec_limit(argv, nofile, stdout_fd);
}

static uint64_t it_limit_value(const char *s)
{
    return (strncmp(s, "unlimited", 9) == 0) ? UINT64_MAX
                                             : strtoull(s, NULL, 10);
}

int it_nofile_limits(pid_t pid, uint64_t *soft_p, uint64_t *hard_p)
{
    char path[64], line[256], soft[32], hard[32];
    int ret = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        it_log("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if ((strncmp(line, "Max open files", 14) == 0) &&
            (sscanf(line + 14, "%31s %31s", soft, hard) == 2)) {
            *soft_p = it_limit_value(soft);
            *hard_p = it_limit_value(hard);
            ret = 0;
            break;
        }
    }
    fclose(f);
    if (ret != 0) {
        it_log("%s has no line on open files", path);
    }
    return ret;
}

int it_read_line(int fd, char *buf, size_t len, unsigned timeout_ms)
{
    uint64_t deadline = it_now_ms() + timeout_ms;
    struct pollfd pfd = {fd, POLLIN, 0};
    size_t n = 0;
    int wait;
    char c;

    while (n + 1 < len) {
        wait = (int)(deadline > it_now_ms() ? deadline - it_now_ms() : 0);
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

static int it_decode_status(pid_t pid, int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        it_log("child %d killed by signal %d (%s)", (int)pid, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
        return 128 + WTERMSIG(status);
    }
    return -1;
}

/* Non-blocking reap: 1 and *code_p if pid ended, 0 if running, -1 error. */
static int it_try_reap(pid_t pid, int *code_p)
{
    int status;
    pid_t ret;

    do {
        ret = waitpid(pid, &status, WNOHANG);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        it_log("waitpid(%d) failed: %s", (int)pid, strerror(errno));
        it_pid_del(pid);
        return -1;
    }
    if (ret == 0) {
        return 0;
    }
    it_pid_del(pid);
    *code_p = it_decode_status(pid, status);
    return 1;
}

static void it_kill_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    it_pid_del(pid);
}

int it_wait(pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = it_now_ms() + timeout_ms;
    int code, ret;

    for (;;) {
        ret = it_try_reap(pid, &code);
        if (ret < 0) {
            return -1;
        }
        if (ret > 0) {
            return code;
        }
        if (it_now_ms() >= deadline) {
            it_log("child %d still running after %u ms: killed", (int)pid,
                   timeout_ms);
            it_kill_reap(pid);
            return -1;
        }
        it_sleep_ms(10);
    }
}

int it_wait_all(const pid_t *pids, int n, unsigned timeout_ms, int *codes)
{
    uint64_t deadline = it_now_ms() + timeout_ms;
    bool done[IT_MAX_PIDS] = {false};
    int left = n, failed = 0, i, code, ret;

    if (n > IT_MAX_PIDS) {
        return -1;
    }
    while (left > 0) {
        for (i = 0; i < n; i++) {
            if (done[i]) {
                continue;
            }
            ret = it_try_reap(pids[i], &code);
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
                it_log("child %d (index %d) exited with %d", (int)pids[i], i,
                       code);
                failed = 1;
            }
        }
        if (left == 0) {
            break;
        }
        if (it_now_ms() >= deadline) {
            for (i = 0; i < n; i++) {
                if (!done[i]) {
                    it_log("child %d (index %d) still running after %u ms: "
                           "killed",
                           (int)pids[i], i, timeout_ms);
                    it_kill_reap(pids[i]);
                    if (codes != NULL) {
                        codes[i] = -1;
                    }
                }
            }
            return -1;
        }
        it_sleep_ms(10);
    }
    return failed ? -1 : 0;
}

/* ------------------------------------------------------- config store */

static void it_store_main(int fd)
{
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    sigset_t set;
    uint16_t port = 0;
    mf_status_t st;
    int sig;

    it_set_role("store");
    /* Blocked before the server starts its threads, so they inherit the
     * mask and SIGTERM is only ever taken by sigwait() below. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    mf_store_server_config_init(&cfg);
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 0;
    st = mf_store_server_start(&cfg, &server);
    if (st != MF_OK) {
        it_log("mf_store_server_start: %s", mf_status_name(st));
        (void)!write(fd, &port, sizeof(port));
        _exit(1);
    }
    port = mf_store_server_port(server);
    if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        _exit(2);
    }
    close(fd);
    while (sigwait(&set, &sig) != 0) {
    }
    mf_store_server_stop(server);
    fflush(NULL);
    _exit(it_child_exit_code(0));
}

int it_store_start(it_store_t *store)
{
    struct pollfd pfd;
    uint16_t port = 0;
    int fds[2];
    pid_t pid;
    ssize_t n;

    memset(store, 0, sizeof(*store));
    if (pipe(fds) < 0) {
        it_log("pipe() failed: %s", strerror(errno));
        return -1;
    }
    pid = it_fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        it_store_main(fds[1]);
    }
    close(fds[1]);
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    n = 0;
    if (poll(&pfd, 1, 30000) == 1) {
        n = read(fds[0], &port, sizeof(port));
    }
    close(fds[0]);
    if (n != (ssize_t)sizeof(port) || port == 0) {
        it_log("store process did not start");
        it_kill_reap(pid);
        return -1;
    }
    store->pid = pid;
    store->port = port;
    snprintf(store->url, sizeof(store->url), "tcp://127.0.0.1:%u",
             (unsigned)port);
    return 0;
}

int it_store_stop(it_store_t *store)
{
    int code;

    if (store->pid <= 0) {
        return 0;
    }
    kill(store->pid, SIGTERM);
    code = it_wait(store->pid, 30000);
    store->pid = 0;
    if (code != 0) {
        it_log("store process exited with %d", code);
    }
    return code;
}

int it_free_port(uint16_t *port_p)
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

/* ---------------------------------------------------- pools in a rank */

void it_bm_config(mf_bm_config_t *cfg)
{
    mf_bm_config_init(cfg);
    cfg->timeout_ms = 60000;
    cfg->op_timeout_ms = 30000;
}

mf_status_t it_pool_open(it_pool_t *pool, const char *url, uint32_t world,
                         uint32_t rank, uint64_t seg_size, uint64_t stride,
                         const mf_bm_config_t *cfg, bool join)
{
    mf_bm_create_params_t params;
    mf_bm_config_t defcfg;
    uint64_t deadline;
    mf_status_t st;

    memset(pool, 0, sizeof(*pool));
    pool->world = world;
    pool->seg_size = seg_size;
    pool->stride = stride;
    if (cfg == NULL) {
        it_bm_config(&defcfg);
        cfg = &defcfg;
    }
    st = mf_init();
    if (st != MF_OK) {
        it_log("mf_init: %s", mf_status_name(st));
        return st;
    }
    st = mf_store_connect(url, NULL, &pool->store);
    if (st != MF_OK) {
        it_log("mf_store_connect(%s): %s", url, mf_status_name(st));
        goto err_uninit;
    }
    deadline = it_now_ms() + 20000;
    for (;;) {
        st = mf_bm_init(url, world, rank, cfg);
        if (st != MF_ERR_BUSY || it_now_ms() > deadline) {
            break;
        }
        it_sleep_ms(50); /* a rank being freed by its dead or leaving owner */
    }
    if (st != MF_OK) {
        it_log("mf_bm_init(rank %d): %s", (int)rank, mf_status_name(st));
        goto err_close_store;
    }
    pool->inited = true;
    st = mf_bm_rank_id(&pool->rank);
    if (st != MF_OK) {
        it_log("mf_bm_rank_id: %s", mf_status_name(st));
        goto err_close;
    }
    it_set_role("rank %u", pool->rank);
    mf_bm_create_params_init(&params);
    params.local_dram_size = seg_size;
    params.max_dram_per_rank = stride;
    st = mf_bm_create(0, &params, &pool->bm);
    if (st != MF_OK) {
        it_log("mf_bm_create: %s", mf_status_name(st));
        goto err_close;
    }
    if (join) {
        st = mf_bm_join(pool->bm);
        if (st != MF_OK) {
            it_log("mf_bm_join: %s", mf_status_name(st));
            goto err_close;
        }
        pool->joined = true;
    }
    return MF_OK;

err_close:
    it_pool_close(pool);
    return st;
err_close_store:
    mf_store_close(pool->store);
    pool->store = NULL;
err_uninit:
    mf_uninit();
    return st;
}

void it_pool_close(it_pool_t *pool)
{
    mf_status_t st;

    if (pool->joined) {
        st = mf_bm_leave(pool->bm);
        if (st != MF_OK) {
            it_log("mf_bm_leave: %s", mf_status_name(st));
        }
        pool->joined = false;
    }
    if (pool->bm != NULL) {
        mf_bm_destroy(pool->bm);
        pool->bm = NULL;
    }
    if (pool->inited) {
        mf_bm_uninit();
        pool->inited = false;
    }
    if (pool->store != NULL) {
        mf_store_close(pool->store);
        pool->store = NULL;
        mf_uninit();
    }
}

mf_status_t it_barrier(it_pool_t *pool, const char *name, uint32_t count)
{
    mf_status_t st = mf_store_barrier(pool->store, name, count, 60000);

    if (st != MF_OK) {
        it_log("barrier %s (%u): %s", name, count, mf_status_name(st));
    }
    return st;
}

mf_status_t it_wait_rank_joined(it_pool_t *pool, uint32_t rank, bool joined,
                                unsigned timeout_ms)
{
    uint64_t deadline = it_now_ms() + timeout_ms;

    while (mf_bm_rank_joined(pool->bm, rank) != joined) {
        if (it_now_ms() > deadline) {
            it_log("rank %u still %s after %u ms", rank,
                   joined ? "not joined" : "joined", timeout_ms);
            return MF_ERR_TIMEOUT;
        }
        it_sleep_ms(10);
    }
    return MF_OK;
}

mf_status_t it_wait_all_joined(it_pool_t *pool, unsigned timeout_ms)
{
    mf_status_t st;
    uint32_t r;

    for (r = 0; r < pool->world; r++) {
        st = it_wait_rank_joined(pool, r, true, timeout_ms);
        if (st != MF_OK) {
            return st;
        }
    }
    return MF_OK;
}

uint64_t it_gva(it_pool_t *pool, uint32_t rank, uint64_t offset)
{
    return (uint64_t)(uintptr_t)mf_bm_gva_of_rank(pool->bm, rank, MF_MEM_HOST) +
           offset;
}

/* ----------------------------------------------------- log capture */

static unsigned it_log_errors;

static void it_log_sink(mf_log_level_t level, const char *file, int line,
                        const char *message, void *arg)
{
    static const char *names[] = {"off",  "error", "warn",
                                  "info", "debug", "trace"};

    if (level == MF_LOG_ERROR) {
        __atomic_add_fetch(&it_log_errors, 1, __ATOMIC_RELAXED);
    }
    fprintf(stderr, "[%s pid %d] mf %s %s:%d: %s\n", it_role, (int)getpid(),
            (unsigned)level <= MF_LOG_TRACE ? names[level] : "?", file, line,
            message);
}

void it_log_capture(void)
{
    mf_log_set_sink(it_log_sink, NULL);
}

int it_tracked_children(void)
{
    return it_npids;
}

unsigned it_log_error_count(void)
{
    return __atomic_load_n(&it_log_errors, __ATOMIC_RELAXED);
}
