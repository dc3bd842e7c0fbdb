/*
 * Hosts as network namespaces for the benchmarks (see bench_netns.h).
 *
 * State is per process: the names made, and the pid that made them, so a
 * forked child that exits never removes its parent's namespaces.
 */
#include "bench_netns.h"

#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_NETNS_DIR    "/run/netns"
#define BENCH_NETNS_SUBNET "10.213.0"

static char bench_ns_base[32];
static char bench_ns_names[BENCH_NETNS_MAX_HOSTS + 1][48];
static char bench_ns_addrs[BENCH_NETNS_MAX_HOSTS][16];
static bool bench_ns_made[BENCH_NETNS_MAX_HOSTS + 1];
static unsigned bench_ns_hosts;
static pid_t bench_ns_owner;

static void bench_ns_remove(const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), BENCH_NETNS_DIR "/%s", name);
    umount2(path, MNT_DETACH);
    unlink(path);
}

void bench_netns_cleanup(void)
{
    unsigned i;

    if (bench_ns_owner == 0 || getpid() != bench_ns_owner) {
        return;
    }
    for (i = 0; i <= bench_ns_hosts; i++) {
        if (bench_ns_made[i]) {
            bench_ns_remove(bench_ns_names[i]);
            bench_ns_made[i] = false;
        }
    }
}

/* Removes <base><pid>... namespaces whose pid is gone. */
static void bench_ns_remove_stale(void)
{
    const size_t blen = strlen(bench_ns_base);
    struct dirent *de;
    unsigned long pid;
    char *end;
    DIR *dir = opendir(BENCH_NETNS_DIR);

    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, bench_ns_base, blen) != 0) {
            continue;
        }
        pid = strtoul(de->d_name + blen, &end, 10);
        if (end != de->d_name + blen && pid > 0 && pid < 0x7fffffff &&
            (pid_t)pid != getpid() && kill((pid_t)pid, 0) < 0 &&
            errno == ESRCH) {
            bench_ns_remove(de->d_name);
        }
    }
    closedir(dir);
}

/* Runs `ip <args>`; 0 on success. */
static int bench_ns_ip(const char *const *args)
{
    char *argv[24];
    pid_t pid;
    int i, status;

    argv[0] = "ip";
    for (i = 0; args[i] != NULL && i < 22; i++) {
        argv[i + 1] = (char *)args[i];
    }
    argv[i + 1] = NULL;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        bench_err("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execvp("ip", argv);
        execv("/usr/sbin/ip", argv);
        execv("/sbin/ip", argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_err("`ip %s %s %s %s ...` failed", args[0], args[1],
                  args[2] != NULL ? args[2] : "",
                  args[2] != NULL && args[3] != NULL ? args[3] : "");
        return -1;
    }
    return 0;
}

#define BENCH_NS_IP(...)                                                       \
    do {                                                                       \
        const char *const _a[] = {__VA_ARGS__, NULL};                          \
        if (bench_ns_ip(_a) != 0) {                                            \
            return -1;                                                         \
        }                                                                      \
    } while (0)

int bench_netns_setup(const char *base, unsigned nhosts)
{
    const char *sw;
    char port[8], cidr[32];
    unsigned i;

    if (nhosts < 1 || nhosts > BENCH_NETNS_MAX_HOSTS ||
        strlen(base) >= sizeof(bench_ns_base) || bench_ns_owner != 0) {
        bench_err("bad network namespace setup (%u hosts)", nhosts);
        return -1;
    }
    snprintf(bench_ns_base, sizeof(bench_ns_base), "%s", base);
    bench_ns_hosts = nhosts;
    bench_ns_owner = getpid();
    atexit(bench_netns_cleanup);
    bench_ns_remove_stale();
    for (i = 0; i < nhosts; i++) {
        snprintf(bench_ns_names[i], sizeof(bench_ns_names[i]), "%s%dh%u", base,
                 (int)getpid(), i);
        snprintf(bench_ns_addrs[i], sizeof(bench_ns_addrs[i]),
                 BENCH_NETNS_SUBNET ".%u", i + 1);
    }
    sw = bench_ns_names[nhosts];
    snprintf(bench_ns_names[nhosts], sizeof(bench_ns_names[nhosts]), "%s%dsw",
             base, (int)getpid());
    bench_ns_made[nhosts] = true;
    BENCH_NS_IP("netns", "add", sw);
    BENCH_NS_IP("-n", sw, "link", "add", "br0", "type", "bridge");
    BENCH_NS_IP("-n", sw, "link", "set", "br0", "up");
    for (i = 0; i < nhosts; i++) {
        const char *h = bench_ns_names[i];

        snprintf(port, sizeof(port), "p%u", i);
        /* the precision bounds the address for gcc's truncation check,
         * which loses the array's size in a ThreadSanitizer build */
        snprintf(cidr, sizeof(cidr), "%.15s/24", bench_ns_addrs[i]);
        bench_ns_made[i] = true;
        BENCH_NS_IP("netns", "add", h);
        BENCH_NS_IP("-n", h, "link", "set", "lo", "up");
        BENCH_NS_IP("link", "add", "eth0", "netns", h, "type", "veth", "peer",
                    "name", port, "netns", sw);
        BENCH_NS_IP("-n", sw, "link", "set", port, "master", "br0");
        BENCH_NS_IP("-n", sw, "link", "set", port, "up");
        BENCH_NS_IP("-n", h, "addr", "add", cidr, "dev", "eth0");
        BENCH_NS_IP("-n", h, "link", "set", "eth0", "up");
    }
    return 0;
}

const char *bench_netns_addr(unsigned host)
{
    if (bench_ns_owner == 0 || host >= bench_ns_hosts) {
        return NULL;
    }
    return bench_ns_addrs[host];
}

int bench_netns_enter(unsigned host)
{
    char path[128];
    int fd;

    if (bench_ns_owner == 0 || host >= bench_ns_hosts) {
        bench_err("no network namespace for host %u", host);
        return -1;
    }
    snprintf(path, sizeof(path), BENCH_NETNS_DIR "/%s", bench_ns_names[host]);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        bench_err("entering %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return 0;
}
