/*
 * The network-namespace lab of tests and benchmarks: hosts as network
 * namespaces joined by veth pairs and a bridge in a "switch" namespace
 * (see tk_netns.h).
 *
 * Invariants: every namespace this process created is listed in
 * tk_netns_live[] until removed, and the list is only ever acted on by the
 * process that created it (tk_netns_owner), never by a forked child; the
 * removal itself (umount2 + unlink of /run/netns/<name>, what `ip netns
 * del` does) uses async-signal-safe calls only, so the signal handler can
 * run it.  Commands (`ip`, `ss`) run as tracked children (tk_proc), with
 * deadlines.
 */
#include "tk_netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TK_NETNS_DIR      "/run/netns"
#define TK_NETNS_LIVE_MAX (2 * TK_NETNS_MAX_HOSTS + 4)
#define TK_NETNS_CMD_MS   30000

static char tk_netns_live[TK_NETNS_LIVE_MAX][32];
static volatile sig_atomic_t tk_netns_nlive;
static pid_t tk_netns_owner;
static char tk_netns_ip[256];
static char tk_netns_ss[256];

/* ------------------------------------------------------------ removal */

/* Async-signal-safe. */
static void tk_netns_remove_name(const char *name)
{
    char path[128];
    size_t n = sizeof(TK_NETNS_DIR) - 1, len = strlen(name);

    if (n + 1 + len + 1 > sizeof(path)) {
        return;
    }
    memcpy(path, TK_NETNS_DIR, n);
    path[n] = '/';
    memcpy(path + n + 1, name, len + 1);
    umount2(path, MNT_DETACH);
    unlink(path);
}

static void tk_netns_track(const char *name)
{
    int n = tk_netns_nlive;

    if (n < TK_NETNS_LIVE_MAX) {
        snprintf(tk_netns_live[n], sizeof(tk_netns_live[n]), "%s", name);
        tk_netns_nlive = n + 1;
    }
}

static void tk_netns_untrack(const char *name)
{
    int i, n = tk_netns_nlive;

    for (i = 0; i < n; i++) {
        if (strcmp(tk_netns_live[i], name) == 0) {
            memcpy(tk_netns_live[i], tk_netns_live[n - 1],
                   sizeof(tk_netns_live[i]));
            tk_netns_nlive = n - 1;
            return;
        }
    }
}

static void tk_netns_remove_all(void)
{
    while (tk_netns_nlive > 0) {
        int n = tk_netns_nlive - 1;

        tk_netns_remove_name(tk_netns_live[n]);
        tk_netns_nlive = n;
    }
}

static void tk_netns_atexit(void)
{
    if (getpid() != tk_netns_owner) {
        return;
    }
    tk_proc_kill_all();
    tk_netns_remove_all();
}

static void tk_netns_on_signal(int sig)
{
    static const char msg[] = "tk_netns: signal, removing namespaces\n";

    if (getpid() == tk_netns_owner) {
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        tk_proc_kill_all(); /* kill + waitpid: async-signal-safe */
        tk_netns_remove_all();
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Whether pid is gone (or a zombie: killed, not yet reaped). */
static bool tk_netns_pid_gone(pid_t pid)
{
    char path[64], buf[256], *p;
    ssize_t n;
    int fd;

    if (kill(pid, 0) < 0 && errno == ESRCH) {
        return true;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

/* Removes namespaces named <base><pid>... whose process is gone. */
static void tk_netns_remove_stale(void)
{
    const size_t blen = strlen(TK_NETNS_BASE);
    struct dirent *de;
    unsigned long pid;
    char *end;
    DIR *dir;

    dir = opendir(TK_NETNS_DIR);
    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, TK_NETNS_BASE, blen) != 0) {
            continue;
        }
        errno = 0;
        pid = strtoul(de->d_name + blen, &end, 10);
        if (end == de->d_name + blen || errno != 0 || pid == 0 ||
            pid > 0x7fffffff || (pid_t)pid == getpid()) {
            continue;
        }
        if (tk_netns_pid_gone((pid_t)pid)) {
            tk_print("removing stale namespace %s of a dead run (pid %lu)",
                     de->d_name, pid);
            tk_netns_remove_name(de->d_name);
        }
    }
    closedir(dir);
}

/* ------------------------------------------------------- commands */

static bool tk_netns_which(const char *prog, char *path, size_t len)
{
    const char *env = getenv("PATH");
    char dirs[2048], *save = NULL, *dir;

    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/bin:/bin",
             env != NULL ? env : "");
    for (dir = strtok_r(dirs, ":", &save); dir != NULL;
         dir = strtok_r(NULL, ":", &save)) {
        if (*dir == '\0') {
            continue;
        }
        snprintf(path, len, "%s/%s", dir, prog);
        if (access(path, X_OK) == 0) {
            return true;
        }
    }
    return false;
}

int tk_netns_enter(const tk_netns_t *net, int host)
{
    char path[128];
    int fd;

    if (host < 0 || host >= net->nhosts) {
        tk_print("no host %d", host);
        return -1;
    }
    snprintf(path, sizeof(path), TK_NETNS_DIR "/%s", net->host[host]);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tk_print("open(%s) failed: %s", path, strerror(errno));
        return -1;
    }
    if (setns(fd, CLONE_NEWNET) < 0) {
        tk_print("setns(%s) failed: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* What the forked child of tk_netns_spawn / tk_netns_exec / tk_netns_run
 * does; a copy of the parent's, set right before the fork (the parent has
 * no threads). */
typedef struct tk_netns_tramp {
    const tk_netns_t *net;
    int host;
    tk_proc_fn fn;
    void *arg;
    char *const *argv;
    bool devnull; /* an exec'd command's stdout goes to /dev/null */
} tk_netns_tramp_t;

static tk_netns_tramp_t tk_netns_next;

static int tk_netns_tramp_fn(int index, void *unused)
{
    tk_netns_tramp_t t = tk_netns_next;
    int devnull;

    if (t.host >= 0 && tk_netns_enter(t.net, t.host) != 0) {
        return 121;
    }
    if (t.fn != NULL) {
        tk_role_set("host %d proc %d", t.host, index);
        return t.fn(index, t.arg);
    }
    if (t.devnull) {
        devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, STDOUT_FILENO);
            close(devnull);
        }
    }
    execv(t.argv[0], t.argv);
    tk_print("execv(%s) failed: %s", t.argv[0], strerror(errno));
    return 127;
}

/* Sets what the next child does: fn(index, arg), else exec argv. */
static void tk_netns_next_set(const tk_netns_t *net, int host, tk_proc_fn fn,
                              void *arg, char *const argv[])
{
    memset(&tk_netns_next, 0, sizeof(tk_netns_next));
    tk_netns_next.net = net;
    tk_netns_next.host = host;
    tk_netns_next.fn = fn;
    tk_netns_next.arg = arg;
    tk_netns_next.argv = argv;
}

pid_t tk_netns_spawn(const tk_netns_t *net, int host, tk_proc_fn fn, int index,
                     void *arg)
{
    tk_netns_next_set(net, host, fn, arg, NULL);
    return tk_proc_spawn(tk_netns_tramp_fn, index, NULL);
}

pid_t tk_netns_exec(const tk_netns_t *net, int host, char *const argv[],
                    int *stdout_fd)
{
    tk_netns_next_set(net, host, NULL, NULL, argv);
    if (stdout_fd != NULL) {
        return tk_proc_spawn_out(tk_netns_tramp_fn, 200 + host, NULL,
                                 stdout_fd);
    }
    tk_netns_next.devnull = true;
    return tk_proc_spawn(tk_netns_tramp_fn, 200 + host, NULL);
}

static int tk_netns_run_path(const tk_netns_t *net, int host,
                             char *const argv[], char *out, size_t out_len,
                             unsigned timeout_ms)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    size_t have = 0;
    char sink[512];
    struct pollfd pfd;
    ssize_t n;
    pid_t pid;
    int fd, wait;

    tk_netns_next_set(net, host, NULL, NULL, argv);
    pid = tk_proc_spawn_out(tk_netns_tramp_fn, 0, NULL, &fd);
    if (pid < 0) {
        return -1;
    }
    pfd.fd = fd;
    pfd.events = POLLIN;
    for (;;) {
        wait = (int)(deadline > tk_time_ms() ? deadline - tk_time_ms() : 0);
        if (poll(&pfd, 1, wait) <= 0) {
            break; /* tk_proc_wait below kills it */
        }
        if (out != NULL && have + 1 < out_len) {
            n = read(fd, out + have, out_len - 1 - have);
        } else {
            n = read(fd, sink, sizeof(sink));
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (out != NULL && have + 1 < out_len) {
            have += (size_t)n;
        }
    }
    close(fd);
    if (out != NULL && out_len > 0) {
        out[have] = '\0';
    }
    wait = (int)(deadline > tk_time_ms() ? deadline - tk_time_ms() : 1);
    return tk_proc_wait(pid, (unsigned)wait);
}

int tk_netns_run(const tk_netns_t *net, int host, char *const argv[], char *out,
                 size_t out_len, unsigned timeout_ms)
{
    char *args[32];
    char path[256];
    int i;

    for (i = 0; argv[i] != NULL && i < 31; i++) {
        args[i] = argv[i];
    }
    args[i] = NULL;
    if (strchr(argv[0], '/') == NULL) {
        if (!tk_netns_which(argv[0], path, sizeof(path))) {
            tk_print("%s not found", argv[0]);
            return -1;
        }
        args[0] = path;
    }
    return tk_netns_run_path(net, host, args, out, out_len, timeout_ms);
}

/* Runs `ip <args...>` in the test's namespace; logs a failure. */
static int tk_netns_ip_cmd(const char *a0, ...) __attribute__((sentinel));

static int tk_netns_ip_cmd(const char *a0, ...)
{
    char *argv[24];
    char line[512];
    va_list ap;
    size_t off;
    int n = 0, ret, i;

    argv[n++] = tk_netns_ip;
    argv[n++] = (char *)a0;
    va_start(ap, a0);
    while (n < 23 && (argv[n] = va_arg(ap, char *)) != NULL) {
        n++;
    }
    va_end(ap);
    argv[n] = NULL;
    ret = tk_netns_run_path(NULL, -1, argv, NULL, 0, TK_NETNS_CMD_MS);
    if (ret != 0) {
        for (i = 1, off = 0; i < n && off < sizeof(line); i++) {
            off += (size_t)snprintf(line + off, sizeof(line) - off, " %s",
                                    argv[i]);
        }
        tk_print("`ip%s` failed (exit %d)", line, ret);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------ availability */

static void tk_netns_skip(const char *why)
{
    printf("SKIP: %s\n", why);
    fflush(NULL);
    exit(TK_NETNS_SKIP);
}

static void tk_netns_install(void)
{
    if (tk_netns_owner == getpid()) {
        return;
    }
    tk_netns_owner = getpid();
    atexit(tk_netns_atexit);
}

static void tk_netns_install_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM};
    struct sigaction sa;
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tk_netns_on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

int tk_netns_check(char *why, size_t len)
{
    char probe[32];

    if (!tk_netns_which("ip", tk_netns_ip, sizeof(tk_netns_ip))) {
        snprintf(why, len,
                 "no `ip` (iproute2) found to make network namespaces");
        return -1;
    }
    if (!tk_netns_which("ss", tk_netns_ss, sizeof(tk_netns_ss))) {
        tk_netns_ss[0] = '\0';
    }
    if (geteuid() != 0) {
        /* capabilities without root are possible, the probe decides */
        tk_print("not root: trying namespaces anyway");
    }
    tk_netns_install();
    tk_netns_remove_stale();
    snprintf(probe, sizeof(probe), TK_NETNS_BASE "%dp", (int)getpid());
    tk_netns_track(probe);
    if (tk_netns_ip_cmd("netns", "add", probe, NULL) != 0) {
        tk_netns_remove_name(probe); /* in case it got half way */
        tk_netns_untrack(probe);
        snprintf(why, len,
                 "cannot create network namespaces (`ip netns add` failed; "
                 "needs root or CAP_SYS_ADMIN + CAP_NET_ADMIN)");
        return -1;
    }
    if (tk_netns_ip_cmd("-n", probe, "link", "add", "p0", "type", "veth",
                        "peer", "name", "p1", NULL) != 0) {
        tk_netns_remove_name(probe);
        tk_netns_untrack(probe);
        snprintf(why, len, "cannot create veth pairs in a network namespace");
        return -1;
    }
    tk_netns_remove_name(probe);
    tk_netns_untrack(probe);
    return 0;
}

void tk_netns_require(void)
{
    char why[256];

    if (tk_netns_check(why, sizeof(why)) != 0) {
        tk_netns_skip(why);
    }
    tk_netns_install_signals();
}

/* ------------------------------------------------------------ create */

/* In a child inside host `index`: every other host answers a TCP connect
 * (with a refusal: nobody listens on port 9) within the deadline. */
static int tk_netns_probe_fn(int index, void *arg)
{
    const tk_netns_t *net = arg;
    uint64_t deadline = tk_time_ms() + 20000;
    struct sockaddr_in sa;
    struct pollfd pfd;
    int j, fd, err;
    socklen_t len;

    for (j = 0; j < net->nhosts; j++) {
        for (;;) {
            memset(&sa, 0, sizeof(sa));
            sa.sin_family = AF_INET;
            sa.sin_port = htons(9);
            inet_pton(AF_INET, net->addr[j], &sa.sin_addr);
            fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0) {
                return 1;
            }
            err = 0;
            if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                err = errno;
                if (err == EINPROGRESS) {
                    pfd.fd = fd;
                    pfd.events = POLLOUT;
                    err = ETIMEDOUT;
                    if (poll(&pfd, 1, 500) == 1) {
                        len = sizeof(err);
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    }
                }
            }
            close(fd);
            if (err == ECONNREFUSED || err == 0) {
                break;
            }
            if (tk_time_ms() > deadline) {
                tk_print("host %d cannot reach %s: %s", index, net->addr[j],
                         strerror(err));
                return 1;
            }
            tk_sleep_ms(50);
        }
    }
    return 0;
}

static int tk_netns_add(tk_netns_t *net, int slot, const char *name)
{
    tk_netns_track(name);
    if (tk_netns_ip_cmd("netns", "add", name, NULL) != 0) {
        tk_netns_untrack(name);
        return -1;
    }
    net->created[slot] = true;
    return 0;
}

/* The lab's /24 (third byte of the address), one per process. */
static int tk_netns_subnet(void)
{
    return 1 + (int)(getpid() % 250);
}

int tk_netns_create(tk_netns_t *net, int nhosts)
{
    pid_t pids[TK_NETNS_MAX_HOSTS];
    char cidr[32], port[16];
    int i, started = 0;

    memset(net, 0, sizeof(*net));
    if (tk_netns_owner != getpid() || tk_netns_ip[0] == '\0') {
        tk_print("call tk_netns_check() or tk_netns_require() first");
        return -1;
    }
    if (nhosts < 1 || nhosts > TK_NETNS_MAX_HOSTS) {
        tk_print("bad host count %d", nhosts);
        return -1;
    }
    net->nhosts = nhosts;
    snprintf(net->sw, sizeof(net->sw), TK_NETNS_BASE "%dsw", (int)getpid());
    for (i = 0; i < nhosts; i++) {
        snprintf(net->host[i], sizeof(net->host[i]), TK_NETNS_BASE "%dh%d",
                 (int)getpid(), i);
        snprintf(net->addr[i], sizeof(net->addr[i]), TK_NETNS_NET ".%d.%d",
                 tk_netns_subnet(), i + 1);
        snprintf(net->dev[i], sizeof(net->dev[i]), "eth0");
    }
    if (tk_netns_add(net, nhosts, net->sw) != 0 ||
        tk_netns_ip_cmd("-n", net->sw, "link", "add", "br0", "type", "bridge",
                        NULL) != 0 ||
        tk_netns_ip_cmd("-n", net->sw, "link", "set", "br0", "up", NULL) != 0) {
        goto err;
    }
    for (i = 0; i < nhosts; i++) {
        snprintf(port, sizeof(port), "p%d", i);
        snprintf(cidr, sizeof(cidr), "%s/24", net->addr[i]);
        if (tk_netns_add(net, i, net->host[i]) != 0 ||
            tk_netns_ip_cmd("-n", net->host[i], "link", "set", "lo", "up",
                            NULL) != 0 ||
            tk_netns_ip_cmd("link", "add", net->dev[i], "netns", net->host[i],
                            "type", "veth", "peer", "name", port, "netns",
                            net->sw, NULL) != 0 ||
            tk_netns_ip_cmd("-n", net->sw, "link", "set", port, "master", "br0",
                            NULL) != 0 ||
            tk_netns_ip_cmd("-n", net->sw, "link", "set", port, "up", NULL) !=
                0 ||
            tk_netns_ip_cmd("-n", net->host[i], "addr", "add", cidr, "dev",
                            net->dev[i], NULL) != 0 ||
            tk_netns_ip_cmd("-n", net->host[i], "link", "set", net->dev[i],
                            "up", NULL) != 0) {
            goto err;
        }
    }
    for (i = 0; i < nhosts; i++) {
        pids[i] = tk_netns_spawn(net, i, tk_netns_probe_fn, i, net);
        if (pids[i] < 0) {
            goto err_reap;
        }
        started++;
    }
    if (tk_proc_wait_all(pids, nhosts, 60000, NULL) != 0) {
        tk_print("the hosts do not reach each other");
        goto err;
    }
    return 0;

err_reap:
    for (i = 0; i < started; i++) {
        kill(pids[i], SIGKILL);
        tk_proc_wait(pids[i], 10000);
    }
err:
    tk_netns_destroy(net);
    return -1;
}

int tk_netns_setup(tk_netns_t *net, int nhosts)
{
    char why[256];

    memset(net, 0, sizeof(*net));
    if (tk_netns_check(why, sizeof(why)) != 0) {
        tk_print("%s", why);
        return -1;
    }
    return tk_netns_create(net, nhosts);
}

void tk_netns_destroy(tk_netns_t *net)
{
    int i;

    tk_proc_kill_all();
    for (i = 0; i <= net->nhosts && i <= TK_NETNS_MAX_HOSTS; i++) {
        const char *name = i < net->nhosts ? net->host[i] : net->sw;

        if (net->created[i]) {
            tk_netns_remove_name(name);
            tk_netns_untrack(name);
            net->created[i] = false;
        }
    }
}

/* ------------------------------------------------------------ faults */

/* Lists host's established connections to peer as (local, peer), those
 * with bytes queued (Recv-Q or Send-Q: mid-transfer) first; *busy_p
 * (optional) gets how many of them are. */
static int tk_netns_conns(const tk_netns_t *net, int host, int peer_host,
                          uint16_t spare_port, char conns[][2][64], int max,
                          int *busy_p)
{
    char out[16384], dst[64], *save = NULL, *line, *tok, *tsave;
    char *argv[] = {tk_netns_ss,   "-t",  "-n", "-H", "state",
                    "established", "dst", dst,  NULL};
    int n = 0, busy = 0, k;

    snprintf(dst, sizeof(dst), "%s", net->addr[peer_host]);
    if (tk_netns_run_path(net, host, argv, out, sizeof(out), TK_NETNS_CMD_MS) !=
        0) {
        tk_print("ss in host %d failed", host);
        return -1;
    }
    for (line = strtok_r(out, "\n", &save); line != NULL && n < max;
         line = strtok_r(NULL, "\n", &save)) {
        char ends[2][64];
        const char *colon;
        bool spare = false;
        long queued = 0;

        k = 0;
        for (tok = strtok_r(line, " \t", &tsave); tok != NULL && k < 2;
             tok = strtok_r(NULL, " \t", &tsave)) {
            colon = strrchr(tok, ':');
            if (colon == NULL && k == 0) {
                queued += atol(tok); /* Recv-Q, Send-Q */
                continue;
            }
            if (colon == NULL || strlen(tok) >= sizeof(ends[0])) {
                continue;
            }
            snprintf(ends[k++], sizeof(ends[0]), "%s", tok);
            if (spare_port != 0 && atoi(colon + 1) == (int)spare_port) {
                spare = true;
            }
        }
        if (k == 2 && !spare) {
            if (queued > 0) { /* to the front */
                memcpy(conns[n], conns[busy], sizeof(conns[n]));
                memcpy(conns[busy][0], ends[0], sizeof(ends[0]));
                memcpy(conns[busy][1], ends[1], sizeof(ends[1]));
                busy++;
            } else {
                memcpy(conns[n][0], ends[0], sizeof(ends[0]));
                memcpy(conns[n][1], ends[1], sizeof(ends[1]));
            }
            n++;
        }
    }
    if (busy_p != NULL) {
        *busy_p = busy;
    }
    return n;
}

int tk_netns_break_conn(const tk_netns_t *net, int host, int peer_host,
                        unsigned which, uint16_t spare_port)
{
    static char conns[64][2][64], after[64][2][64];
    char src[64], dst[64];
    char *argv[] = {tk_netns_ss, "-K", "-t",  "-n", "-H",
                    "src",       src,  "dst", dst,  NULL};
    int n, m, i, pick, busy;

    if (tk_netns_ss[0] == '\0') {
        tk_print("no `ss` found");
        return -1;
    }
    n = tk_netns_conns(net, host, peer_host, spare_port, conns, 64, &busy);
    if (n <= 0) {
        return n;
    }
    /* one that is moving bytes right now, if there is one */
    pick = (int)(which % (unsigned)(busy > 0 ? busy : n));
    snprintf(src, sizeof(src), "%s", conns[pick][0]);
    snprintf(dst, sizeof(dst), "%s", conns[pick][1]);
    if (tk_netns_run_path(net, host, argv, NULL, 0, TK_NETNS_CMD_MS) != 0) {
        tk_print("`ss -K` failed in host %d", host);
        return -1;
    }
    /* without CONFIG_INET_DIAG_DESTROY, ss -K succeeds and closes nothing */
    m = tk_netns_conns(net, host, peer_host, spare_port, after, 64, NULL);
    for (i = 0; i < m; i++) {
        if (strcmp(after[i][0], src) == 0 && strcmp(after[i][1], dst) == 0) {
            tk_print("`ss -K` did not close %s -> %s", src, dst);
            return -1;
        }
    }
    tk_print("host %d: closed TCP connection %s -> %s (%s)", host, src, dst,
             pick < busy ? "bytes in flight" : "idle");
    return 1;
}

int tk_netns_link_flap(const tk_netns_t *net, int host, unsigned ms)
{
    if (tk_netns_ip_cmd("-n", net->host[host], "link", "set", net->dev[host],
                        "down", NULL) != 0) {
        return -1;
    }
    tk_sleep_ms(ms);
    return tk_netns_ip_cmd("-n", net->host[host], "link", "set", net->dev[host],
                           "up", NULL);
}
