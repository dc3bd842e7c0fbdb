/*
 * Hosts as network namespaces joined by veth pairs and a bridge in a
 * "switch" namespace (see it_netns.h).
 *
 * Invariants: every namespace this process created is listed in
 * it_netns_live[] until removed, and the list is only ever acted on by the
 * process that created it (it_netns_owner), never by a forked child; the
 * removal itself (umount2 + unlink of /run/netns/<name>, what `ip netns
 * del` does) uses async-signal-safe calls only, so the signal handler can
 * run it.  Commands (`ip`, `ss`) run as tracked children of it_helpers,
 * with deadlines.
 */
#include "it_netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define IT_NETNS_DIR      "/run/netns"
#define IT_NETNS_LIVE_MAX (2 * IT_NETNS_MAX_HOSTS + 4)
#define IT_NETNS_CMD_MS   30000

static char it_netns_live[IT_NETNS_LIVE_MAX][32];
static volatile sig_atomic_t it_netns_nlive;
static pid_t it_netns_owner;
static char it_netns_ip[256];
static char it_netns_ss[256];

/* ------------------------------------------------------------ removal */

/* Async-signal-safe. */
static void it_netns_remove_name(const char *name)
{
    char path[128];
    size_t n = sizeof(IT_NETNS_DIR) - 1, len = strlen(name);

    if (n + 1 + len + 1 > sizeof(path)) {
        return;
    }
    memcpy(path, IT_NETNS_DIR, n);
    path[n] = '/';
    memcpy(path + n + 1, name, len + 1);
    umount2(path, MNT_DETACH);
    unlink(path);
}

static void it_netns_track(const char *name)
{
    int n = it_netns_nlive;

    if (n < IT_NETNS_LIVE_MAX) {
        snprintf(it_netns_live[n], sizeof(it_netns_live[n]), "%s", name);
        it_netns_nlive = n + 1;
    }
}

static void it_netns_untrack(const char *name)
{
    int i, n = it_netns_nlive;

    for (i = 0; i < n; i++) {
        if (strcmp(it_netns_live[i], name) == 0) {
            memcpy(it_netns_live[i], it_netns_live[n - 1],
                   sizeof(it_netns_live[i]));
            it_netns_nlive = n - 1;
            return;
        }
    }
}

static void it_netns_remove_all(void)
{
    while (it_netns_nlive > 0) {
        int n = it_netns_nlive - 1;

        it_netns_remove_name(it_netns_live[n]);
        it_netns_nlive = n;
    }
}

static void it_netns_atexit(void)
{
    if (getpid() != it_netns_owner) {
        return;
    }
    tk_proc_kill_all();
    it_netns_remove_all();
}

static void it_netns_on_signal(int sig)
{
    static const char msg[] = "it_netns: signal, removing namespaces\n";

    if (getpid() == it_netns_owner) {
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        tk_proc_kill_all(); /* kill + waitpid: async-signal-safe */
        it_netns_remove_all();
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Whether pid is gone (or a zombie: killed, not yet reaped). */
static bool it_netns_pid_gone(pid_t pid)
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
static void it_netns_remove_stale(void)
{
    const size_t blen = strlen(IT_NETNS_BASE);
    struct dirent *de;
    unsigned long pid;
    char *end;
    DIR *dir;

    dir = opendir(IT_NETNS_DIR);
    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, IT_NETNS_BASE, blen) != 0) {
            continue;
        }
        errno = 0;
        pid = strtoul(de->d_name + blen, &end, 10);
        if (end == de->d_name + blen || errno != 0 || pid == 0 ||
            pid > 0x7fffffff || (pid_t)pid == getpid()) {
            continue;
        }
        if (it_netns_pid_gone((pid_t)pid)) {
            tk_print("removing stale namespace %s of a dead run (pid %lu)",
                     de->d_name, pid);
            it_netns_remove_name(de->d_name);
        }
    }
    closedir(dir);
}

/* ------------------------------------------------------- commands */

static bool it_netns_which(const char *prog, char *path, size_t len)
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

int it_netns_enter(const it_netns_t *net, int host)
{
    char path[128];
    int fd;

    if (host < 0 || host >= net->nhosts) {
        tk_print("no host %d", host);
        return -1;
    }
    snprintf(path, sizeof(path), IT_NETNS_DIR "/%s", net->host[host]);
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

/* What the forked child of it_netns_spawn / it_netns_run does; a copy of
 * the parent's, set right before the fork (the parent has no threads). */
typedef struct it_netns_tramp {
    const it_netns_t *net;
    int host;
    tk_proc_fn fn;
    void *arg;
    char *const *argv;
    int out_fd; /* stdout of an exec'd command, or -1 */
    int close_fd;
} it_netns_tramp_t;

static it_netns_tramp_t it_netns_next;

static int it_netns_tramp_fn(int index, void *unused)
{
    it_netns_tramp_t t = it_netns_next;
    int devnull;

    if (t.host >= 0 && it_netns_enter(t.net, t.host) != 0) {
        return 121;
    }
    if (t.fn != NULL) {
        tk_role_set("host %d proc %d", t.host, index);
        return t.fn(index, t.arg);
    }
    if (t.close_fd >= 0) {
        close(t.close_fd);
    }
    if (t.out_fd >= 0) {
        dup2(t.out_fd, STDOUT_FILENO);
        close(t.out_fd);
    } else {
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

pid_t it_netns_spawn(const it_netns_t *net, int host, tk_proc_fn fn, int index,
                     void *arg)
{
    memset(&it_netns_next, 0, sizeof(it_netns_next));
    it_netns_next.net = net;
    it_netns_next.host = host;
    it_netns_next.fn = fn;
    it_netns_next.arg = arg;
    it_netns_next.out_fd = -1;
    it_netns_next.close_fd = -1;
    return tk_proc_spawn(it_netns_tramp_fn, index, NULL);
}

static int it_netns_run_path(const it_netns_t *net, int host,
                             char *const argv[], char *out, size_t out_len,
                             unsigned timeout_ms)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    int fds[2] = {-1, -1};
    size_t have = 0;
    char sink[512];
    struct pollfd pfd;
    ssize_t n;
    pid_t pid;
    int wait;

    if (pipe(fds) < 0) {
        tk_print("pipe() failed: %s", strerror(errno));
        return -1;
    }
    memset(&it_netns_next, 0, sizeof(it_netns_next));
    it_netns_next.net = net;
    it_netns_next.host = host;
    it_netns_next.argv = argv;
    it_netns_next.out_fd = fds[1];
    it_netns_next.close_fd = fds[0];
    pid = tk_proc_spawn(it_netns_tramp_fn, 0, NULL);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    for (;;) {
        wait = (int)(deadline > tk_time_ms() ? deadline - tk_time_ms() : 0);
        if (poll(&pfd, 1, wait) <= 0) {
            break; /* tk_proc_wait below kills it */
        }
        if (out != NULL && have + 1 < out_len) {
            n = read(fds[0], out + have, out_len - 1 - have);
        } else {
            n = read(fds[0], sink, sizeof(sink));
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
    close(fds[0]);
    if (out != NULL && out_len > 0) {
        out[have] = '\0';
    }
    wait = (int)(deadline > tk_time_ms() ? deadline - tk_time_ms() : 1);
    return tk_proc_wait(pid, (unsigned)wait);
}

int it_netns_run(const it_netns_t *net, int host, char *const argv[], char *out,
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
        if (!it_netns_which(argv[0], path, sizeof(path))) {
            tk_print("%s not found", argv[0]);
            return -1;
        }
        args[0] = path;
    }
    return it_netns_run_path(net, host, args, out, out_len, timeout_ms);
}

/* Runs `ip <args...>` in the test's namespace; logs a failure. */
static int it_netns_ip_cmd(const char *a0, ...) __attribute__((sentinel));

static int it_netns_ip_cmd(const char *a0, ...)
{
    char *argv[24];
    char line[512];
    va_list ap;
    size_t off;
    int n = 0, ret, i;

    argv[n++] = it_netns_ip;
    argv[n++] = (char *)a0;
    va_start(ap, a0);
    while (n < 23 && (argv[n] = va_arg(ap, char *)) != NULL) {
        n++;
    }
    va_end(ap);
    argv[n] = NULL;
    ret = it_netns_run_path(NULL, -1, argv, NULL, 0, IT_NETNS_CMD_MS);
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

static void it_netns_skip(const char *why)
{
    printf("SKIP: %s\n", why);
    fflush(NULL);
    exit(IT_NETNS_SKIP);
}

static void it_netns_install(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM};
    struct sigaction sa;
    size_t i;

    if (it_netns_owner == getpid()) {
        return;
    }
    it_netns_owner = getpid();
    atexit(it_netns_atexit);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = it_netns_on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

void it_netns_require(void)
{
    char probe[32], why[256];

    if (!it_netns_which("ip", it_netns_ip, sizeof(it_netns_ip))) {
        it_netns_skip("no `ip` (iproute2) found to make network namespaces");
    }
    if (!it_netns_which("ss", it_netns_ss, sizeof(it_netns_ss))) {
        it_netns_ss[0] = '\0';
    }
    if (geteuid() != 0) {
        /* capabilities without root are possible, the probe decides */
        tk_print("not root: trying namespaces anyway");
    }
    it_netns_install();
    it_netns_remove_stale();
    snprintf(probe, sizeof(probe), IT_NETNS_BASE "%dp", (int)getpid());
    it_netns_track(probe);
    if (it_netns_ip_cmd("netns", "add", probe, NULL) != 0) {
        it_netns_remove_name(probe); /* in case it got half way */
        it_netns_untrack(probe);
        snprintf(why, sizeof(why),
                 "cannot create network namespaces (`ip netns add` failed; "
                 "needs root or CAP_SYS_ADMIN + CAP_NET_ADMIN)");
        it_netns_skip(why);
    }
    if (it_netns_ip_cmd("-n", probe, "link", "add", "p0", "type", "veth",
                        "peer", "name", "p1", NULL) != 0) {
        it_netns_remove_name(probe);
        it_netns_untrack(probe);
        it_netns_skip("cannot create veth pairs in a network namespace");
    }
    it_netns_remove_name(probe);
    it_netns_untrack(probe);
}

/* ------------------------------------------------------------ create */

/* In a child inside host `index`: every other host answers a TCP connect
 * (with a refusal: nobody listens on port 9) within the deadline. */
static int it_netns_probe_fn(int index, void *arg)
{
    const it_netns_t *net = arg;
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

static int it_netns_add(it_netns_t *net, int slot, const char *name)
{
    it_netns_track(name);
    if (it_netns_ip_cmd("netns", "add", name, NULL) != 0) {
        it_netns_untrack(name);
        return -1;
    }
    net->created[slot] = true;
    return 0;
}

int it_netns_create(it_netns_t *net, int nhosts)
{
    pid_t pids[IT_NETNS_MAX_HOSTS];
    char cidr[32], port[16];
    int i, started = 0;

    memset(net, 0, sizeof(*net));
    if (it_netns_owner != getpid() || it_netns_ip[0] == '\0') {
        tk_print("call it_netns_require() first");
        return -1;
    }
    if (nhosts < 1 || nhosts > IT_NETNS_MAX_HOSTS) {
        tk_print("bad host count %d", nhosts);
        return -1;
    }
    net->nhosts = nhosts;
    snprintf(net->sw, sizeof(net->sw), IT_NETNS_BASE "%dsw", (int)getpid());
    for (i = 0; i < nhosts; i++) {
        snprintf(net->host[i], sizeof(net->host[i]), IT_NETNS_BASE "%dh%d",
                 (int)getpid(), i);
        snprintf(net->addr[i], sizeof(net->addr[i]), IT_NETNS_SUBNET ".%d",
                 i + 1);
        snprintf(net->dev[i], sizeof(net->dev[i]), "eth0");
    }
    if (it_netns_add(net, nhosts, net->sw) != 0 ||
        it_netns_ip_cmd("-n", net->sw, "link", "add", "br0", "type", "bridge",
                        NULL) != 0 ||
        it_netns_ip_cmd("-n", net->sw, "link", "set", "br0", "up", NULL) != 0) {
        goto err;
    }
    for (i = 0; i < nhosts; i++) {
        snprintf(port, sizeof(port), "p%d", i);
        snprintf(cidr, sizeof(cidr), "%s/24", net->addr[i]);
        if (it_netns_add(net, i, net->host[i]) != 0 ||
            it_netns_ip_cmd("-n", net->host[i], "link", "set", "lo", "up",
                            NULL) != 0 ||
            it_netns_ip_cmd("link", "add", net->dev[i], "netns", net->host[i],
                            "type", "veth", "peer", "name", port, "netns",
                            net->sw, NULL) != 0 ||
            it_netns_ip_cmd("-n", net->sw, "link", "set", port, "master", "br0",
                            NULL) != 0 ||
            it_netns_ip_cmd("-n", net->sw, "link", "set", port, "up", NULL) !=
                0 ||
            it_netns_ip_cmd("-n", net->host[i], "addr", "add", cidr, "dev",
                            net->dev[i], NULL) != 0 ||
            it_netns_ip_cmd("-n", net->host[i], "link", "set", net->dev[i],
                            "up", NULL) != 0) {
            goto err;
        }
    }
    for (i = 0; i < nhosts; i++) {
        pids[i] = it_netns_spawn(net, i, it_netns_probe_fn, i, net);
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
    it_netns_destroy(net);
    return -1;
}

void it_netns_destroy(it_netns_t *net)
{
    int i;

    tk_proc_kill_all();
    for (i = 0; i <= net->nhosts && i <= IT_NETNS_MAX_HOSTS; i++) {
        const char *name = i < net->nhosts ? net->host[i] : net->sw;

        if (net->created[i]) {
            it_netns_remove_name(name);
            it_netns_untrack(name);
            net->created[i] = false;
        }
    }
}

/* ------------------------------------------------------------- store */

typedef struct it_netns_store_arg {
    const char *addr;
    int fd;
} it_netns_store_arg_t;

static int it_netns_store_fn(int index, void *arg)
{
    const it_netns_store_arg_t *sa = arg;
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    sigset_t set;
    uint16_t port = 0;
    mf_status_t st;
    int sig;

    tk_role_set("store");
    /* blocked before the server's threads start, which inherit the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    mf_store_server_config_init(&cfg);
    snprintf(cfg.host, sizeof(cfg.host), "%s", sa->addr);
    cfg.port = 0;
    st = mf_store_server_start(&cfg, &server);
    if (st != MF_OK) {
        tk_print("mf_store_server_start(%s): %s", sa->addr, mf_status_name(st));
        (void)!write(sa->fd, &port, sizeof(port));
        return 1;
    }
    port = mf_store_server_port(server);
    if (write(sa->fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        mf_store_server_stop(server);
        return 2;
    }
    close(sa->fd);
    while (sigwait(&set, &sig) != 0) {
    }
    mf_store_server_stop(server);
    fflush(NULL);
    return 0;
}

int it_netns_store_start(const it_netns_t *net, int host, it_store_t *store)
{
    it_netns_store_arg_t sa;
    struct pollfd pfd;
    uint16_t port = 0;
    int fds[2];
    ssize_t n = 0;
    pid_t pid;

    memset(store, 0, sizeof(*store));
    if (pipe(fds) < 0) {
        tk_print("pipe() failed: %s", strerror(errno));
        return -1;
    }
    sa.addr = net->addr[host];
    sa.fd = fds[1];
    pid = it_netns_spawn(net, host, it_netns_store_fn, 100 + host, &sa);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 30000) == 1) {
        n = read(fds[0], &port, sizeof(port));
    }
    close(fds[0]);
    if (n != (ssize_t)sizeof(port) || port == 0) {
        tk_print("store process in host %d did not start", host);
        kill(pid, SIGKILL);
        tk_proc_wait(pid, 10000);
        return -1;
    }
    store->pid = pid;
    store->port = port;
    snprintf(store->url, sizeof(store->url), "tcp://%s:%u", net->addr[host],
             (unsigned)port);
    return 0;
}

/* ------------------------------------------------------------ faults */

/* Lists host's established connections to peer as (local, peer), those
 * with bytes queued (Recv-Q or Send-Q: mid-transfer) first; *busy_p
 * (optional) gets how many of them are. */
static int it_netns_conns(const it_netns_t *net, int host, int peer_host,
                          uint16_t spare_port, char conns[][2][64], int max,
                          int *busy_p)
{
    char out[16384], dst[64], *save = NULL, *line, *tok, *tsave;
    char *argv[] = {it_netns_ss,   "-t",  "-n", "-H", "state",
                    "established", "dst", dst,  NULL};
    int n = 0, busy = 0, k;

    snprintf(dst, sizeof(dst), "%s", net->addr[peer_host]);
    if (it_netns_run_path(net, host, argv, out, sizeof(out), IT_NETNS_CMD_MS) !=
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

int it_netns_break_conn(const it_netns_t *net, int host, int peer_host,
                        unsigned which, uint16_t spare_port)
{
    static char conns[64][2][64], after[64][2][64];
    char src[64], dst[64];
    char *argv[] = {it_netns_ss, "-K", "-t",  "-n", "-H",
                    "src",       src,  "dst", dst,  NULL};
    int n, m, i, pick, busy;

    if (it_netns_ss[0] == '\0') {
        tk_print("no `ss` found");
        return -1;
    }
    n = it_netns_conns(net, host, peer_host, spare_port, conns, 64, &busy);
    if (n <= 0) {
        return n;
    }
    /* one that is moving bytes right now, if there is one */
    pick = (int)(which % (unsigned)(busy > 0 ? busy : n));
    snprintf(src, sizeof(src), "%s", conns[pick][0]);
    snprintf(dst, sizeof(dst), "%s", conns[pick][1]);
    if (it_netns_run_path(net, host, argv, NULL, 0, IT_NETNS_CMD_MS) != 0) {
        tk_print("`ss -K` failed in host %d", host);
        return -1;
    }
    /* without CONFIG_INET_DIAG_DESTROY, ss -K succeeds and closes nothing */
    m = it_netns_conns(net, host, peer_host, spare_port, after, 64, NULL);
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

int it_netns_link_flap(const it_netns_t *net, int host, unsigned ms)
{
    if (it_netns_ip_cmd("-n", net->host[host], "link", "set", net->dev[host],
                        "down", NULL) != 0) {
        return -1;
    }
    tk_sleep_ms(ms);
    return it_netns_ip_cmd("-n", net->host[host], "link", "set", net->dev[host],
                           "up", NULL);
}
