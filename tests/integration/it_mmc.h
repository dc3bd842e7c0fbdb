/*
 * Helpers of the MemCache integration tests (it_mmc_*.c): the mmc-meta
 * daemon as a child process, a shared-memory barrier for the client
 * processes, and opening a client.
 *
 * The daemon is $MMC_META_BIN or the mmc-meta of the same build tree; it
 * runs with free ports and prints `mmc-meta ready rpc=<addr>:<port>
 * store=<port> http=<port>` once it listens.  Clients are forked children
 * (the parent never calls the library, so it stays free of threads); they
 * meet at barriers kept in a MAP_SHARED page made before any fork.
 */
#ifndef MF_IT_MMC_H
#define MF_IT_MMC_H

#include "it_helpers.h"
#include "it_netns.h"

#include <memcache/memcache.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define IT_MMC_WAIT_MS 120000 /* hang guard of every wait */

typedef struct it_mmc_meta {
    pid_t pid;
    char addr[32];
    uint16_t port;
    uint16_t store_port;
    uint16_t http_port;
    char url[64]; /* tcp://addr:port */
} it_mmc_meta_t;

/* Shared by the parent and every child (one page). */
typedef struct it_mmc_shared {
    atomic_int bar[64];  /* barrier counters */
    atomic_int val[256]; /* per test values */
    atomic_ullong u64[64];
    it_mmc_meta_t meta;
} it_mmc_shared_t;

static it_mmc_shared_t *it_mmc_sh;

static int it_mmc_shared_init(void)
{
    void *p = mmap(NULL, sizeof(it_mmc_shared_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        it_log("mmap of the shared page failed");
        return -1;
    }
    it_mmc_sh = p;
    return 0;
}

/* Clears the counters between tests (the meta's address stays). */
static void it_mmc_shared_reset(void)
{
    it_mmc_meta_t meta = it_mmc_sh->meta;

    memset(it_mmc_sh, 0, sizeof(*it_mmc_sh));
    it_mmc_sh->meta = meta;
}

/* Waits until n processes arrived at barrier id.  0 or -1 (timeout). */
static int it_mmc_barrier(int id, int n)
{
    uint64_t deadline = it_now_ms() + IT_MMC_WAIT_MS;

    atomic_fetch_add(&it_mmc_sh->bar[id], 1);
    while (atomic_load(&it_mmc_sh->bar[id]) < n) {
        if (it_now_ms() > deadline) {
            it_log("barrier %d: %d of %d arrived", id,
                   atomic_load(&it_mmc_sh->bar[id]), n);
            return -1;
        }
        it_sleep_ms(1);
    }
    return 0;
}

static const char *it_mmc_meta_bin(void)
{
    const char *env = getenv("MMC_META_BIN");

    return env != NULL && env[0] != '\0' ? env : MMC_META_BIN;
}

typedef struct it_mmc_exec_arg {
    char **argv;
    int fd; /* write end of the stdout pipe */
} it_mmc_exec_arg_t;

/* In a child inside a host namespace: becomes the daemon. */
static int it_mmc_exec_fn(int index, void *arg)
{
    it_mmc_exec_arg_t *ea = arg;

    dup2(ea->fd, STDOUT_FILENO);
    close(ea->fd);
    execv(ea->argv[0], ea->argv);
    it_log("execv(%s) failed", ea->argv[0]);
    return 127;
}

/*
 * Starts mmc-meta bound to addr (inside host `host` of net when net is
 * not NULL) with free ports plus extra "--set key=value" settings
 * (NULL-terminated list of "key=value"), and parses its ready line.
 */
static int it_mmc_meta_start(it_mmc_meta_t *m, const it_netns_t *net, int host,
                             const char *addr, const char *const *extra)
{
    char *argv[64];
    char sets[32][96];
    char line[512];
    const char *rpc;
    unsigned rpc_port = 0, store = 0, http = 0;
    int argc = 0, nsets = 0, fds[2] = {-1, -1}, fd = -1;
    pid_t pid;

    memset(m, 0, sizeof(*m));
    argv[argc++] = (char *)it_mmc_meta_bin();
    snprintf(sets[nsets], sizeof(sets[0]), "addr=%s", addr);
    argv[argc++] = "--set";
    argv[argc++] = sets[nsets++];
    argv[argc++] = "--set";
    argv[argc++] = "port=0";
    argv[argc++] = "--set";
    argv[argc++] = "store_port=0";
    argv[argc++] = "--set";
    argv[argc++] = "http_port=0";
    for (int i = 0; extra != NULL && extra[i] != NULL && nsets < 30; i++) {
        snprintf(sets[nsets], sizeof(sets[0]), "%s", extra[i]);
        argv[argc++] = "--set";
        argv[argc++] = sets[nsets++];
    }
    argv[argc] = NULL;
    if (access(argv[0], X_OK) != 0) {
        it_log("mmc-meta not found at %s (set MMC_META_BIN)", argv[0]);
        return -1;
    }
    if (net == NULL) {
        pid = it_spawn_exec(argv, &fd);
    } else {
        it_mmc_exec_arg_t ea;

        if (pipe(fds) != 0) {
            return -1;
        }
        ea.argv = argv;
        ea.fd = fds[1];
        pid = it_netns_spawn(net, host, it_mmc_exec_fn, 200 + host, &ea);
        close(fds[1]);
        fd = fds[0];
        if (pid < 0) {
            close(fd);
        }
    }
    if (pid < 0) {
        return -1;
    }
    if (it_read_line(fd, line, sizeof(line), 60000) != 0 ||
        strncmp(line, "mmc-meta ready rpc=", 19) != 0 ||
        (rpc = strrchr(line + 19, ':')) == NULL ||
        sscanf(rpc + 1, "%u store=%u http=%u", &rpc_port, &store, &http) != 3 ||
        rpc_port == 0 || rpc_port > 65535 || store == 0 || store > 65535) {
        it_log("mmc-meta did not report ready (got '%s')", line);
        close(fd);
        kill(pid, SIGKILL);
        it_wait(pid, 10000);
        return -1;
    }
    close(fd);
    m->pid = pid;
    snprintf(m->addr, sizeof(m->addr), "%s", addr);
    m->port = (uint16_t)rpc_port;
    m->store_port = (uint16_t)store;
    m->http_port = (uint16_t)http;
    snprintf(m->url, sizeof(m->url), "tcp://%s:%u", addr, rpc_port);
    return 0;
}

/* SIGTERM and wait; the daemon's exit code (0: clean), or -1. */
static int it_mmc_meta_stop(it_mmc_meta_t *m)
{
    int code;

    if (m->pid <= 0) {
        return -1;
    }
    kill(m->pid, SIGTERM);
    code = it_wait(m->pid, 60000);
    m->pid = 0;
    return code;
}

/* In a child: a client of the shared meta with dram bytes (0: pure). */
static mmc_status_t it_mmc_open(uint64_t dram, const char *transport,
                                mmc_t **mmc_p)
{
    mmc_config_t cfg;
    mmc_status_t st;
    char size[32];

    mmc_config_init(&cfg);
    st = mmc_config_set(&cfg, "meta_url", it_mmc_sh->meta.url);
    snprintf(size, sizeof(size), "%llu", (unsigned long long)dram);
    if (st == MMC_OK) {
        st = mmc_config_set(&cfg, "dram_size", size);
    }
    if (st == MMC_OK) {
        st = mmc_config_set(&cfg, "fabric.timeout_ms", "60s");
    }
    if (st == MMC_OK) {
        st = mmc_config_set(&cfg, "timeout_ms", "30s");
    }
    if (st == MMC_OK && transport != NULL) {
        st = mmc_config_set(&cfg, "fabric.transport", transport);
    }
    if (st != MMC_OK) {
        it_log("config: %s", mmc_status_name(st));
        return st;
    }
    st = mmc_create(&cfg, mmc_p);
    if (st != MMC_OK) {
        it_log("mmc_create(%s): %s", cfg.meta_url, mmc_status_name(st));
    }
    return st;
}

/* Like IT_CHECK_ST, naming MemCache statuses. */
#define IT_MMC_ST(_expr, _expected)                                            \
    do {                                                                       \
        mmc_status_t _st = (_expr);                                            \
        if (_st != (_expected)) {                                              \
            it_log("%s:%d: %s returned %s (%d), expected %s", __FILE__,        \
                   __LINE__, #_expr, mmc_status_name(_st), (int)_st,           \
                   mmc_status_name(_expected));                                \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

/* A buffer whose first 8 bytes are the seed and the rest the pattern of
 * that seed, so a reader can tell whose whole object it got. */
static void it_mmc_fill(void *buf, size_t len, uint64_t seed)
{
    memcpy(buf, &seed, sizeof(seed));
    it_pattern_fill((char *)buf + 8, len - 8, seed, 8);
}

/* The seed of a buffer filled by it_mmc_fill, or UINT64_MAX if torn. */
static uint64_t it_mmc_seed_of(const void *buf, size_t len)
{
    uint64_t seed;

    memcpy(&seed, buf, sizeof(seed));
    return it_pattern_check((const char *)buf + 8, len - 8, seed, 8) < 0
               ? seed
               : UINT64_MAX;
}

#endif
