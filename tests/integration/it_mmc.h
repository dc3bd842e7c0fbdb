/*
 * Helpers of the MemCache integration tests (it_mmc_*.c): the mmc-meta
 * daemon as a child process, a shared-memory barrier for the client
 * processes, and opening a client.
 *
 * The daemon is $MMC_META_BIN or the mmc-meta of the same build tree,
 * started with the test kit's tk_meta (free ports, the ready line
 * parsed), here or inside a host namespace.  Clients are forked children
 * (the parent never calls the library, so it stays free of threads); they
 * meet at barriers kept in a MAP_SHARED page made before any fork.
 *
 * For the test parent, which must stay free of threads (so never links
 * the library's calls), it also speaks HTTP GET (/segments, /key,
 * /metrics) to the daemon directly over plain sockets (tk_sock), possibly
 * inside a host namespace.  A parent that speaks the RPC protocol itself
 * (to hold read leases, say) does so through tests/wire.
 */
#ifndef MF_IT_MMC_H
#define MF_IT_MMC_H

#include "it_helpers.h"
#include "tk_netns.h"
#include "tk_meta.h"
#include "tk_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <memcache/memcache.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define IT_MMC_WAIT_MS 120000 /* hang guard of every wait */
#define IT_MMC_UNUSED  __attribute__((unused))

/* Shared by the parent and every child (one page). */
typedef struct it_mmc_shared {
    atomic_int bar[64];  /* barrier counters */
    atomic_int val[256]; /* per test values */
    atomic_ullong u64[64];
    tk_meta_t meta;
} it_mmc_shared_t;

static it_mmc_shared_t *it_mmc_sh;

static int it_mmc_shared_init(void)
{
    void *p = mmap(NULL, sizeof(it_mmc_shared_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        tk_print("mmap of the shared page failed");
        return -1;
    }
    it_mmc_sh = p;
    return 0;
}

/* Clears the counters between tests (the meta's address stays). */
IT_MMC_UNUSED static void it_mmc_shared_reset(void)
{
    tk_meta_t meta = it_mmc_sh->meta;

    memset(it_mmc_sh, 0, sizeof(*it_mmc_sh));
    it_mmc_sh->meta = meta;
}

/* Waits until n processes arrived at barrier id.  0 or -1 (timeout). */
IT_MMC_UNUSED static int it_mmc_barrier(int id, int n)
{
    uint64_t deadline = tk_time_ms() + IT_MMC_WAIT_MS;

    atomic_fetch_add(&it_mmc_sh->bar[id], 1);
    while (atomic_load(&it_mmc_sh->bar[id]) < n) {
        if (tk_time_ms() > deadline) {
            tk_print("barrier %d: %d of %d arrived", id,
                     atomic_load(&it_mmc_sh->bar[id]), n);
            return -1;
        }
        tk_sleep_ms(1);
    }
    return 0;
}

/*
 * Starts mmc-meta bound to addr (inside host `host` of net when net is
 * not NULL) with free ports plus extra "--set key=value" settings
 * (NULL-terminated list of "key=value").
 */
IT_MMC_UNUSED static int it_mmc_meta_start(tk_meta_t *m, const tk_netns_t *net,
                                           int host, const char *addr,
                                           const char *const *extra)
{
    tk_meta_params_t p = {
        .bin = tk_meta_bin(MMC_META_BIN),
        .addr = addr,
        .sets = extra,
        .net = net,
        .host = host,
    };

    return tk_meta_start(m, &p);
}

/*
 * In a child: a client of the shared meta with dram bytes (0: pure);
 * kv (optional) is a NULL-terminated list of key, value pairs set after
 * the test defaults.
 */
IT_MMC_UNUSED static mmc_status_t it_mmc_open_kv(uint64_t dram,
                                                 const char *transport,
                                                 const char *const *kv,
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
    for (int i = 0; st == MMC_OK && kv != NULL && kv[i] != NULL; i += 2) {
        st = mmc_config_set(&cfg, kv[i], kv[i + 1]);
        /* a test's copy timeout holds for either transport to other
         * hosts (the ucx variants of the tests use ucx) */
        if (st == MMC_OK && strcmp(kv[i], "fabric.tcp.timeout_ms") == 0 &&
            it_has_transport("ucx")) {
            st = mmc_config_set(&cfg, "fabric.ucx.timeout_ms", kv[i + 1]);
        }
    }
    if (st != MMC_OK) {
        tk_print("config: %s", mmc_status_name(st));
        return st;
    }
    st = mmc_create(&cfg, mmc_p);
    if (st != MMC_OK) {
        tk_print("mmc_create(%s): %s", cfg.meta_url, mmc_status_name(st));
    }
    return st;
}

IT_MMC_UNUSED static mmc_status_t
it_mmc_open(uint64_t dram, const char *transport, mmc_t **mmc_p)
{
    return it_mmc_open_kv(dram, transport, NULL, mmc_p);
}

/* Like TK_CHECK_ST_GOTO, naming MemCache statuses. */
#define IT_MMC_ST(_expr, _expected)                                            \
    do {                                                                       \
        mmc_status_t _st = (_expr);                                            \
        if (_st != (_expected)) {                                              \
            tk_check_report(                                                   \
                __FILE__, __LINE__, #_expr, "returned %s (%d), expected %s",   \
                mmc_status_name(_st), (int)_st, mmc_status_name(_expected));   \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

/* A buffer whose first 8 bytes are the seed and the rest the pattern of
 * that seed, so a reader can tell whose whole object it got. */
IT_MMC_UNUSED static void it_mmc_fill(void *buf, size_t len, uint64_t seed)
{
    memcpy(buf, &seed, sizeof(seed));
    tk_pattern_fill((char *)buf + 8, len - 8, seed, 8);
}

/* The seed of a buffer filled by it_mmc_fill, or UINT64_MAX if torn. */
IT_MMC_UNUSED static uint64_t it_mmc_seed_of(const void *buf, size_t len)
{
    uint64_t seed;

    memcpy(&seed, buf, sizeof(seed));
    return tk_pattern_check((const char *)buf + 8, len - 8, seed, 8) < 0
               ? seed
               : UINT64_MAX;
}

/* ------------------------------------------------ sockets of the parent */

/*
 * A TCP connection to addr:port made inside host `host` of net (net NULL:
 * here).  The socket is made and connected in the host's namespace and the
 * process returns to its own at once (it has no threads, so nothing else
 * sees the switch).  The fd, or -1 (logged).
 */
IT_MMC_UNUSED static int it_mmc_connect(const tk_netns_t *net, int host,
                                        const char *addr, uint16_t port)
{
    int self = -1, fd;

    if (net != NULL) {
        self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0 || tk_netns_enter(net, host) != 0) {
            tk_print("cannot enter host %d: %s", host, strerror(errno));
            if (self >= 0) {
                close(self);
            }
            return -1;
        }
    }
    fd = tk_sock_connect(addr, port);
    if (net != NULL) {
        if (setns(self, CLONE_NEWNET) != 0) {
            tk_print("cannot return to the test's namespace: %s",
                     strerror(errno));
            abort();
        }
        close(self);
    }
    return fd;
}

/*
 * GET path over HTTP/1.1 from the daemon's HTTP port (inside host of net
 * when net is not NULL).  The status code, with the body in *body_p
 * (malloc'd, NUL-terminated), or -1.
 */
IT_MMC_UNUSED static int it_mmc_http_get(const tk_netns_t *net, int host,
                                         const tk_meta_t *m, const char *path,
                                         char **body_p)
{
    char req[512], *raw = NULL, *sep, *grown;
    size_t len = 0, cap = 0;
    uint64_t deadline = tk_time_ms() + 30000;
    struct pollfd pfd;
    int fd, n, code = -1;

    *body_p = NULL;
    fd = it_mmc_connect(net, host, m->addr, m->http_port);
    if (fd < 0) {
        return -1;
    }
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 path, m->addr);
    if (n <= 0 || (size_t)n >= sizeof(req) ||
        !tk_sock_send_all(fd, req, (size_t)n)) {
        goto out;
    }
    pfd.fd = fd;
    pfd.events = POLLIN;
    for (;;) {
        ssize_t got;
        uint64_t now = tk_time_ms();

        if (cap - len < 4096) {
            cap = cap == 0 ? 65536 : 2 * cap;
            grown = realloc(raw, cap);
            if (grown == NULL) {
                goto out;
            }
            raw = grown;
        }
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) != 1) {
            tk_print("HTTP GET %s: no answer", path);
            goto out;
        }
        got = read(fd, raw + len, cap - len - 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            goto out;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    raw[len] = '\0';
    sep = strstr(raw, "\r\n\r\n");
    if (sscanf(raw, "HTTP/1.1 %d ", &code) != 1 || sep == NULL) {
        tk_print("HTTP GET %s: bad response '%.80s'", path, raw);
        code = -1;
        goto out;
    }
    *body_p = strdup(sep + 4);
    if (*body_p == NULL) {
        code = -1;
    }
out:
    free(raw);
    close(fd);
    return code;
}

/* One registered segment as /segments shows it. */
typedef struct it_mmc_seg {
    uint32_t rank;
    bool hbm; /* media "hbm", else "dram" */
    uint64_t gva;
    uint64_t capacity;
    uint64_t used;
    uint64_t replicas;
} it_mmc_seg_t;

static inline bool it_mmc_json_u64(const char *obj, const char *end,
                                   const char *name, uint64_t *v_p)
{
    char pat[48];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", name);
    p = strstr(obj, pat);
    if (p == NULL || p > end) {
        return false;
    }
    *v_p = strtoull(p + strlen(pat), NULL, 10);
    return true;
}

/*
 * GET /segments: up to max segments into segs.  Their number, or -1.
 */
IT_MMC_UNUSED static int it_mmc_segments(const tk_netns_t *net, int host,
                                         const tk_meta_t *m, it_mmc_seg_t *segs,
                                         int max)
{
    char *body = NULL, *p;
    int code, n = 0;

    code = it_mmc_http_get(net, host, m, "/segments", &body);
    if (code != 200) {
        tk_print("GET /segments: %d", code);
        free(body);
        return -1;
    }
    for (p = strstr(body, "{\"rank\":"); p != NULL && n < max;
         p = strstr(p + 1, "{\"rank\":")) {
        const char *end = strchr(p, '}');
        uint64_t rank = 0;

        const char *hbm = strstr(p, "\"media\":\"hbm\"");
        const char *dram = strstr(p, "\"media\":\"dram\"");

        if (end == NULL || !it_mmc_json_u64(p, end, "rank", &rank) ||
            ((hbm == NULL || hbm > end) && (dram == NULL || dram > end)) ||
            !it_mmc_json_u64(p, end, "gva", &segs[n].gva) ||
            !it_mmc_json_u64(p, end, "capacity", &segs[n].capacity) ||
            !it_mmc_json_u64(p, end, "used", &segs[n].used) ||
            !it_mmc_json_u64(p, end, "replicas", &segs[n].replicas)) {
            tk_print("GET /segments: cannot parse '%.120s'", p);
            free(body);
            return -1;
        }
        segs[n].hbm = hbm != NULL && hbm < end;
        segs[n++].rank = (uint32_t)rank;
    }
    free(body);
    return n;
}

/* The value of the /metrics sample line that starts with `prefix` (name
 * and labels), or -1. */
IT_MMC_UNUSED static double it_mmc_metric(const tk_netns_t *net, int host,
                                          const tk_meta_t *m,
                                          const char *prefix)
{
    char *body = NULL, *p;
    size_t len = strlen(prefix);
    double v = -1;

    if (it_mmc_http_get(net, host, m, "/metrics", &body) != 200) {
        free(body);
        return -1;
    }
    for (p = body; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
        if (*p == '\n') {
            p++;
        }
        if (strncmp(p, prefix, len) == 0 && p[len] == ' ') {
            v = strtod(p + len + 1, NULL);
            break;
        }
    }
    free(body);
    return v;
}

#endif
