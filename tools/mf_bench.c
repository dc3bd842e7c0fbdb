/*
 * mf-bench: copy bandwidth of the BM API, with a memcpy baseline measured
 * in the same run.
 *
 * By default the tool runs a whole pool by itself: for every copy thread
 * setting it forks a config store process and N rank processes (all on this
 * host, so peers are reached through the shm transport), and rank 0 copies
 * to, from and between the segments of ranks 1 and 2.  Rank 0 sends each
 * result to the parent through a pipe; the parent prints them.  With
 * --store/--world the process is one rank of a pool started elsewhere.
 *
 * Invariants: the parent never calls into the library, so forking from it
 * is safe; every child dies with the parent (PR_SET_PDEATHSIG) and is
 * reaped, and on any failure the parent kills the rest.  Every measured
 * configuration is first verified byte for byte with a fresh pattern, so a
 * speed is never reported for a copy that moves the wrong bytes.
 */
#include <memfabric/memfabric.h>

#include "bench_netns.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MB_KIB          ((uint64_t)1024)
#define MB_MIB          (MB_KIB * 1024)
#define MB_GIB          (MB_MIB * 1024)
#define MB_MAX_SIZES    32
#define MB_MAX_THREADS  65
#define MB_MAX_RANKS    64
#define MB_KV_LAYERS    61
#define MB_KV_PIECES    (2 * MB_KV_LAYERS)
#define MB_KV_BIG       (128 * MB_KIB)
#define MB_KV_SMALL     (16 * MB_KIB)
#define MB_KV_TOTAL     (MB_KV_LAYERS * (MB_KV_BIG + MB_KV_SMALL))
#define MB_STAGE        (8 * MB_MIB)
#define MB_SAMPLE_NS    1000000ull /* one timed sample lasts >= 1 ms */
#define MB_MIN_SAMPLES  5
#define MB_MAX_SAMPLES  2000
#define MB_JOIN_WAIT_MS 60000

#if defined(__x86_64__) || defined(__i386__)
#define MB_ARRAY_LEN(_a) (sizeof(_a) / sizeof((_a)[0]))
#define MB_CPU_RELAX()   __builtin_ia32_pause()
#elif defined(__aarch64__)
#define MB_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define MB_CPU_RELAX()                                                         \
    do {                                                                       \
    } while (0)
#endif

typedef enum mb_layout { MB_SINGLE, MB_BATCH, MB_KV, MB_LAYOUTS } mb_layout_t;
typedef enum mb_dir { MB_LH2GH, MB_GH2LH, MB_GH2GH, MB_DIRS } mb_dir_t;

static const char *mb_layout_names[] = {"single", "batch", "kv"};
static const char *mb_dir_names[] = {"LH2GH", "GH2LH", "GH2GH"};
static const mf_copy_dir_t mb_dirs[] = {MF_COPY_LH2GH, MF_COPY_GH2LH,
                                        MF_COPY_GH2GH};

typedef struct mb_opts {
    uint32_t ranks;
    uint32_t threads[8];
    unsigned nthreads;
    uint64_t sizes[MB_MAX_SIZES];
    unsigned nsizes;
    uint64_t max_size;
    uint32_t pieces;
    bool layouts[MB_LAYOUTS];
    bool dirs[MB_DIRS];
    unsigned iters;  /* 0: as many as fill min_time */
    double min_time; /* seconds per measurement */
    char transport[16];
    bool tcp;   /* transport tcp: raw TCP stream baseline, lanes */
    bool netns; /* ranks in two network namespaces */
    uint32_t lanes[8];
    unsigned nlanes;
    bool json;
    const char *store_url; /* external pool */
    uint32_t world;
    unsigned timeout_s;
} mb_opts_t;

/* What rank 0 sends to the parent: one header, then results. */
typedef struct mb_record {
    uint32_t type; /* MB_REC_* */
    uint32_t world;
    uint64_t split_min;
    uint32_t layout;
    uint32_t dir;
    uint64_t size;
    uint32_t pieces;
    uint32_t threads;
    uint32_t lanes; /* tcp lanes; 0 for shm */
    uint32_t samples;
    double gbps;
    double base_gbps;
} mb_record_t;

enum { MB_REC_HEADER = 1, MB_REC_RESULT = 2 };

static mb_opts_t mb_opts;
static volatile sig_atomic_t mb_stop_signal;

/* ------------------------------------------------------------ helpers */

static const char *mb_size_str(uint64_t size, char *buf, size_t len)
{
    if (size >= MB_GIB && size % MB_GIB == 0) {
        snprintf(buf, len, "%" PRIu64 " GiB", size / MB_GIB);
    } else if (size >= MB_MIB && size % MB_MIB == 0) {
        snprintf(buf, len, "%" PRIu64 " MiB", size / MB_MIB);
    } else if (size >= MB_KIB && size % MB_KIB == 0) {
        snprintf(buf, len, "%" PRIu64 " KiB", size / MB_KIB);
    } else {
        snprintf(buf, len, "%" PRIu64 " B", size);
    }
    return buf;
}

/* A cheap pattern that depends on (seed, absolute position), so a region
 * left over from an earlier copy never matches a new seed. */
static inline uint64_t mb_pattern_word(uint64_t seed, uint64_t k)
{
    return ((k ^ (seed << 40)) + seed) * 0x9e3779b97f4a7c15ull;
}

static inline uint8_t mb_pattern_byte(uint64_t seed, uint64_t pos)
{
    return (uint8_t)(mb_pattern_word(seed, pos / 8) >> (8 * (pos % 8)));
}

static void mb_pattern_fill(uint8_t *p, size_t len, uint64_t seed,
                            uint64_t base)
{
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        p[i] = mb_pattern_byte(seed, base + i);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = mb_pattern_word(seed, (base + i) / 8);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) {
        p[i] = mb_pattern_byte(seed, base + i);
    }
}

/* Index of the first wrong byte, or -1. */
static ssize_t mb_pattern_check(const uint8_t *p, size_t len, uint64_t seed,
                                uint64_t base)
{
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        if (p[i] != mb_pattern_byte(seed, base + i)) {
            return (ssize_t)i;
        }
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = mb_pattern_word(seed, (base + i) / 8);
        if (memcmp(p + i, &w, 8) != 0) {
            break;
        }
    }
    for (; i < len; i++) {
        if (p[i] != mb_pattern_byte(seed, base + i)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* --------------------------------------------------- memcpy baseline */

/*
 * A memcpy of a piece list by `nthreads` threads: the caller and persistent
 * helpers, each taking an equal share of the bytes.  While a baseline is
 * measured the helpers spin on a generation counter (the fastest hand-off
 * there is, so the baseline is what plain memcpy can do); otherwise they
 * sleep, so they do not take CPU from the library's copy threads.
 */
typedef struct mb_mcpy {
    pthread_t tids[MB_MAX_THREADS];
    unsigned nthreads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const mf_copy_piece_t *pieces;
    size_t count;
    uint64_t total;
    unsigned active;   /* threads that copy in this run */
    unsigned gen;      /* bumped to start a run (atomic) */
    unsigned finished; /* helpers done with this run (atomic) */
    bool hot;          /* helpers spin (atomic) */
    bool quit;         /* helpers exit (atomic) */
} mb_mcpy_t;

typedef struct mb_mcpy_arg {
    mb_mcpy_t *mc;
    unsigned index;
} mb_mcpy_arg_t;

static mb_mcpy_arg_t mb_mcpy_args[MB_MAX_THREADS];

/*
 * One step of a busy wait: pause, and after a few thousand steps yield, so
 * that a waiter whose partner was descheduled (another process wants the
 * CPU) gives the CPU back instead of burning its whole time slice; the
 * library's copy threads wait the same way.
 */
static void mb_spin_wait(unsigned *spins)
{
    if (++*spins < 4096) {
        MB_CPU_RELAX();
    } else {
        sched_yield();
    }
}

static void mb_mcpy_share(mb_mcpy_t *mc, unsigned index)
{
    uint64_t begin, end, pos = 0;
    size_t i;

    if (index >= mc->active) {
        return;
    }
    begin = mc->total * index / mc->active;
    end = mc->total * (index + 1) / mc->active;
    for (i = 0; i < mc->count && pos < end; i++) {
        const mf_copy_piece_t *pc = &mc->pieces[i];
        uint64_t lo = pos > begin ? pos : begin;
        uint64_t hi = pos + pc->size < end ? pos + pc->size : end;

        if (lo < hi) {
            memcpy((char *)(uintptr_t)pc->dst + (lo - pos),
                   (const char *)(uintptr_t)pc->src + (lo - pos), hi - lo);
        }
        pos += pc->size;
    }
}

static void *mb_mcpy_thread(void *arg)
{
    mb_mcpy_arg_t *a = arg;
    mb_mcpy_t *mc = a->mc;
    unsigned seen = 0, gen, spins = 0;

    for (;;) {
        pthread_mutex_lock(&mc->lock);
        while (!__atomic_load_n(&mc->hot, __ATOMIC_ACQUIRE) &&
               !__atomic_load_n(&mc->quit, __ATOMIC_ACQUIRE)) {
            pthread_cond_wait(&mc->cond, &mc->lock);
        }
        pthread_mutex_unlock(&mc->lock);
        if (__atomic_load_n(&mc->quit, __ATOMIC_ACQUIRE)) {
            return NULL;
        }
        while (__atomic_load_n(&mc->hot, __ATOMIC_ACQUIRE)) {
            gen = __atomic_load_n(&mc->gen, __ATOMIC_ACQUIRE);
            if (gen == seen) {
                mb_spin_wait(&spins);
                continue;
            }
            spins = 0;
            seen = gen;
            mb_mcpy_share(mc, a->index);
            __atomic_add_fetch(&mc->finished, 1, __ATOMIC_RELEASE);
        }
    }
}

static void mb_mcpy_set(mb_mcpy_t *mc, bool *flag, bool value)
{
    pthread_mutex_lock(&mc->lock);
    __atomic_store_n(flag, value, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&mc->cond);
    pthread_mutex_unlock(&mc->lock);
}

static void mb_mcpy_fini(mb_mcpy_t *mc)
{
    unsigned i;

    mb_mcpy_set(mc, &mc->quit, true);
    for (i = 1; i < mc->nthreads; i++) {
        pthread_join(mc->tids[i], NULL);
    }
    pthread_cond_destroy(&mc->cond);
    pthread_mutex_destroy(&mc->lock);
}

static int mb_mcpy_init(mb_mcpy_t *mc, unsigned nthreads)
{
    unsigned i;

    memset(mc, 0, sizeof(*mc));
    pthread_mutex_init(&mc->lock, NULL);
    pthread_cond_init(&mc->cond, NULL);
    mc->nthreads = 1;
    for (i = 1; i < nthreads; i++) {
        mb_mcpy_args[i].mc = mc;
        mb_mcpy_args[i].index = i;
        if (pthread_create(&mc->tids[i], NULL, mb_mcpy_thread,
                           &mb_mcpy_args[i]) != 0) {
            bench_err("pthread_create failed");
            return -1; /* the ones started are stopped by fini */
        }
        mc->nthreads = i + 1;
    }
    return 0;
}

/* Helpers spin (hot) only while a baseline is measured. */
static void mb_mcpy_hot(mb_mcpy_t *mc, bool hot)
{
    if (mc->nthreads > 1) {
        mb_mcpy_set(mc, &mc->hot, hot);
    }
}

static void mb_mcpy_run(mb_mcpy_t *mc, const mf_copy_piece_t *pieces,
                        size_t count, uint64_t total, unsigned active)
{
    unsigned helpers = active - 1, spins = 0;

    mc->pieces = pieces;
    mc->count = count;
    mc->total = total;
    mc->active = active;
    if (helpers == 0) {
        mb_mcpy_share(mc, 0);
        return;
    }
    /* only helpers 1..active-1 run; the others see index >= active */
    __atomic_store_n(&mc->finished, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&mc->gen, 1, __ATOMIC_RELEASE);
    mb_mcpy_share(mc, 0);
    while (__atomic_load_n(&mc->finished, __ATOMIC_ACQUIRE) <
           mc->nthreads - 1) {
        mb_spin_wait(&spins);
    }
}

/* --------------------------------------------------- raw TCP baseline */

/*
 * The baseline of the tcp transport: rank 0 and rank 1 open as many plain
 * TCP connections as the transport has lanes and move the same bytes with
 * send/recv, one thread per connection on each side, each connection an
 * equal share.  A write sends a header and the data and waits for a 1-byte
 * ack sent once all of it is in rank 1's buffer; a read sends a header and
 * receives the data into rank 0's buffer: the round trips of the
 * transport's put and get.  Rank 1 publishes "address port" under
 * MB_TCPB_KEY in the store.
 */
#define MB_TCPB_MAX   16
#define MB_TCPB_WRITE 1u
#define MB_TCPB_READ  2u
#define MB_TCPB_KEY   "mf-bench/tcp-baseline"
#ifndef MB_TCPB_IO
#define MB_TCPB_IO (1024 * 1024) /* bytes per send()/recv() call at most */
#endif

typedef struct mb_tcpb_hdr {
    uint32_t op;
    uint32_t pad;
    uint64_t off;
    uint64_t len;
} mb_tcpb_hdr_t;

static const char *mb_tcp_addr = "127.0.0.1"; /* where rank 1 listens */

static int mb_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = send(fd, p, len < MB_TCPB_IO ? len : MB_TCPB_IO, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int mb_recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = recv(fd, p, len < MB_TCPB_IO ? len : MB_TCPB_IO, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void mb_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Rank 1's side. */
typedef struct mb_tcpb_srv {
    int lfd;
    uint8_t *buf;
    uint64_t size;
    pthread_t accept_tid;
    bool accepting;
    pthread_t tids[MB_TCPB_MAX];
    int fds[MB_TCPB_MAX];
    unsigned nconns;
    bool stop; /* atomic */
} mb_tcpb_srv_t;

typedef struct mb_tcpb_conn_arg {
    mb_tcpb_srv_t *srv;
    int fd;
} mb_tcpb_conn_arg_t;

static mb_tcpb_conn_arg_t mb_tcpb_conn_args[MB_TCPB_MAX];

static void *mb_tcpb_serve(void *arg)
{
    mb_tcpb_conn_arg_t *a = arg;
    mb_tcpb_srv_t *srv = a->srv;
    mb_tcpb_hdr_t hdr;
    char ack = 'k';

    while (mb_recv_all(a->fd, &hdr, sizeof(hdr)) == 0) {
        if (hdr.off > srv->size || hdr.len > srv->size - hdr.off) {
            break;
        }
        if (hdr.op == MB_TCPB_WRITE) {
            if (mb_recv_all(a->fd, srv->buf + hdr.off, hdr.len) != 0 ||
                mb_send_all(a->fd, &ack, 1) != 0) {
                break;
            }
        } else if (hdr.op == MB_TCPB_READ) {
            if (mb_send_all(a->fd, srv->buf + hdr.off, hdr.len) != 0) {
                break;
            }
        } else {
            break;
        }
    }
    return NULL;
}

static void *mb_tcpb_accept(void *arg)
{
    mb_tcpb_srv_t *srv = arg;
    struct pollfd pfd = {srv->lfd, POLLIN, 0};
    int fd;

    while (!__atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE)) {
        if (poll(&pfd, 1, 100) != 1) {
            continue;
        }
        fd = accept(srv->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        if (srv->nconns == MB_TCPB_MAX) {
            close(fd);
            continue;
        }
        mb_nodelay(fd);
        mb_tcpb_conn_args[srv->nconns].srv = srv;
        mb_tcpb_conn_args[srv->nconns].fd = fd;
        if (pthread_create(&srv->tids[srv->nconns], NULL, mb_tcpb_serve,
                           &mb_tcpb_conn_args[srv->nconns]) != 0) {
            close(fd);
            continue;
        }
        srv->fds[srv->nconns++] = fd;
    }
    return NULL;
}

/* Listens on mb_tcp_addr, port 0; *where_p gets "address port". */
static int mb_tcpb_srv_start(mb_tcpb_srv_t *srv, uint8_t *buf, uint64_t size,
                             char *where, size_t len)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);

    memset(srv, 0, sizeof(*srv));
    srv->buf = buf;
    srv->size = size;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, mb_tcp_addr, &sa.sin_addr) != 1) {
        bench_err("bad address %s", mb_tcp_addr);
        return -1;
    }
    srv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->lfd < 0) {
        bench_err("socket: %s", strerror(errno));
        return -1;
    }
    if (bind(srv->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(srv->lfd, MB_TCPB_MAX) < 0 ||
        getsockname(srv->lfd, (struct sockaddr *)&sa, &salen) < 0) {
        bench_err("baseline listener on %s: %s", mb_tcp_addr, strerror(errno));
        close(srv->lfd);
        return -1;
    }
    if (pthread_create(&srv->accept_tid, NULL, mb_tcpb_accept, srv) != 0) {
        bench_err("pthread_create failed");
        close(srv->lfd);
        return -1;
    }
    srv->accepting = true;
    snprintf(where, len, "%s %u", mb_tcp_addr, (unsigned)ntohs(sa.sin_port));
    return 0;
}

static void mb_tcpb_srv_stop(mb_tcpb_srv_t *srv)
{
    unsigned i;

    if (!srv->accepting) {
        return;
    }
    __atomic_store_n(&srv->stop, true, __ATOMIC_RELEASE);
    pthread_join(srv->accept_tid, NULL);
    for (i = 0; i < srv->nconns; i++) {
        shutdown(srv->fds[i], SHUT_RDWR);
    }
    for (i = 0; i < srv->nconns; i++) {
        pthread_join(srv->tids[i], NULL);
        close(srv->fds[i]);
    }
    close(srv->lfd);
    srv->accepting = false;
}

/* Rank 0's side: the caller drives connection 0, helpers the others. */
typedef struct mb_tcpb {
    unsigned n;
    int fds[MB_TCPB_MAX];
    pthread_t tids[MB_TCPB_MAX];
    unsigned nthreads; /* helpers started + 1 */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t done;
    unsigned gen;
    unsigned finished;
    int failed;
    bool quit;
    uint32_t op;
    uint8_t *local;
    uint64_t total;
} mb_tcpb_t;

typedef struct mb_tcpb_arg {
    mb_tcpb_t *tb;
    unsigned index;
} mb_tcpb_arg_t;

static mb_tcpb_arg_t mb_tcpb_args[MB_TCPB_MAX];

static int mb_tcpb_share(mb_tcpb_t *tb, unsigned i)
{
    mb_tcpb_hdr_t hdr;
    char ack;

    memset(&hdr, 0, sizeof(hdr));
    hdr.op = tb->op;
    hdr.off = tb->total * i / tb->n;
    hdr.len = tb->total * (i + 1) / tb->n - hdr.off;
    if (mb_send_all(tb->fds[i], &hdr, sizeof(hdr)) != 0) {
        return -1;
    }
    if (tb->op == MB_TCPB_WRITE) {
        if (mb_send_all(tb->fds[i], tb->local + hdr.off, hdr.len) != 0 ||
            mb_recv_all(tb->fds[i], &ack, 1) != 0) {
            return -1;
        }
        return 0;
    }
    return mb_recv_all(tb->fds[i], tb->local + hdr.off, hdr.len);
}

static void *mb_tcpb_thread(void *arg)
{
    mb_tcpb_arg_t *a = arg;
    mb_tcpb_t *tb = a->tb;
    unsigned seen = 0;
    int ret;

    pthread_mutex_lock(&tb->lock);
    for (;;) {
        while (tb->gen == seen && !tb->quit) {
            pthread_cond_wait(&tb->cond, &tb->lock);
        }
        if (tb->quit) {
            break;
        }
        seen = tb->gen;
        pthread_mutex_unlock(&tb->lock);
        ret = mb_tcpb_share(tb, a->index);
        pthread_mutex_lock(&tb->lock);
        if (ret != 0) {
            tb->failed = 1;
        }
        tb->finished++;
        pthread_cond_signal(&tb->done);
    }
    pthread_mutex_unlock(&tb->lock);
    return NULL;
}

static void mb_tcpb_fini(mb_tcpb_t *tb)
{
    unsigned i;

    pthread_mutex_lock(&tb->lock);
    tb->quit = true;
    pthread_cond_broadcast(&tb->cond);
    pthread_mutex_unlock(&tb->lock);
    for (i = 1; i < tb->nthreads; i++) {
        pthread_join(tb->tids[i], NULL);
    }
    for (i = 0; i < tb->n; i++) {
        if (tb->fds[i] >= 0) {
            close(tb->fds[i]);
        }
    }
    pthread_cond_destroy(&tb->done);
    pthread_cond_destroy(&tb->cond);
    pthread_mutex_destroy(&tb->lock);
    tb->n = 0;
}

/* Opens n connections to rank 1's listener at "address port". */
static int mb_tcpb_init(mb_tcpb_t *tb, unsigned n, const char *where)
{
    struct sockaddr_in sa;
    char addr[64];
    unsigned port, i;

    memset(tb, 0, sizeof(*tb));
    pthread_mutex_init(&tb->lock, NULL);
    pthread_cond_init(&tb->cond, NULL);
    pthread_cond_init(&tb->done, NULL);
    tb->nthreads = 1;
    tb->n = n;
    for (i = 0; i < n; i++) {
        tb->fds[i] = -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (sscanf(where, "%63s %u", addr, &port) != 2 || port == 0 ||
        port > 65535 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        bench_err("bad baseline address '%s'", where);
        return -1;
    }
    sa.sin_port = htons((uint16_t)port);
    for (i = 0; i < n; i++) {
        tb->fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (tb->fds[i] < 0 ||
            connect(tb->fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            bench_err("baseline connection to %s: %s", where, strerror(errno));
            return -1;
        }
        mb_nodelay(tb->fds[i]);
    }
    for (i = 1; i < n; i++) {
        mb_tcpb_args[i].tb = tb;
        mb_tcpb_args[i].index = i;
        if (pthread_create(&tb->tids[i], NULL, mb_tcpb_thread,
                           &mb_tcpb_args[i]) != 0) {
            bench_err("pthread_create failed");
            return -1;
        }
        tb->nthreads = i + 1;
    }
    return 0;
}

/* Moves total bytes from (write) or into (read) local over every lane. */
static int mb_tcpb_run(mb_tcpb_t *tb, uint32_t op, uint8_t *local,
                       uint64_t total)
{
    int ret;

    pthread_mutex_lock(&tb->lock);
    tb->op = op;
    tb->local = local;
    tb->total = total;
    tb->finished = 0;
    tb->failed = 0;
    tb->gen++;
    pthread_cond_broadcast(&tb->cond);
    pthread_mutex_unlock(&tb->lock);
    ret = mb_tcpb_share(tb, 0);
    pthread_mutex_lock(&tb->lock);
    while (tb->finished < tb->n - 1) {
        pthread_cond_wait(&tb->done, &tb->lock);
    }
    if (tb->failed) {
        ret = -1;
    }
    pthread_mutex_unlock(&tb->lock);
    if (ret != 0) {
        bench_err("raw TCP baseline transfer failed");
    }
    return ret;
}

/* -------------------------------------------------------- rank 0 work */

typedef struct mb_bench {
    mf_bm_t *bm;
    uint32_t world;
    uint32_t threads;   /* total threads doing a copy */
    uint64_t split_min; /* the library's copy_split_min */
    uint8_t *a;         /* local source side */
    uint8_t *b;         /* local destination side, baseline target */
    uint8_t *stage;     /* to fill and read back remote memory */
    uint8_t *kv[MB_KV_PIECES];
    uint64_t r1; /* GVA of rank 1's and rank 2's segments */
    uint64_t r2;
    uint64_t seed;
    mf_copy_piece_t *pieces;
    mf_status_t *results;
    size_t max_pieces;
    mb_mcpy_t mcpy;
    uint32_t lanes; /* tcp lanes, 0 for shm */
    mb_tcpb_t tcpb; /* raw TCP baseline connections (tcp) */
    int out_fd;     /* results to the parent, or -1 to print here */
} mb_bench_t;

static size_t mb_kv_size(size_t i)
{
    return i < MB_KV_LAYERS ? MB_KV_BIG : MB_KV_SMALL;
}

/*
 * Builds the piece list of one configuration.  The "local" side is the
 * private buffer a (sources) or b (destinations) or, for the KV layout,
 * the separate buffers kv[i]; the "remote" side is laid out contiguously
 * (batch pieces in reverse order, so a batch is not one big memcpy).
 * dir MB_DIRS builds the baseline: local sources into b.
 */
static size_t mb_build(mb_bench_t *b, mb_layout_t layout, int dir,
                       uint64_t size, uint64_t *total_p)
{
    size_t count, i;
    uint64_t psize = size, off = 0, loc, rem;

    count = layout == MB_SINGLE ? 1
            : layout == MB_KV   ? MB_KV_PIECES
                                : mb_opts.pieces;
    if (layout == MB_BATCH) {
        psize = size / count;
    }
    for (i = 0; i < count; i++) {
        uint64_t lsrc, ldst, rbase1, rbase2;
        uint64_t sz = layout == MB_KV ? mb_kv_size(i) : psize;

        if (layout == MB_KV) {
            lsrc = ldst = (uint64_t)(uintptr_t)b->kv[i];
            rem = off;
        } else {
            loc = i * psize;
            rem = layout == MB_BATCH ? (count - 1 - i) * psize : 0;
            lsrc = (uint64_t)(uintptr_t)(b->a + loc);
            ldst = (uint64_t)(uintptr_t)(b->b + loc);
        }
        rbase1 = b->r1 + rem;
        rbase2 = b->r2 + rem;
        switch (dir) {
        case MB_LH2GH:
            b->pieces[i].src = lsrc;
            b->pieces[i].dst = rbase1;
            break;
        case MB_GH2LH:
            b->pieces[i].src = rbase1;
            b->pieces[i].dst = ldst;
            break;
        case MB_GH2GH:
            b->pieces[i].src = rbase1;
            b->pieces[i].dst = rbase2;
            break;
        default: /* baseline */
            b->pieces[i].src = lsrc;
            b->pieces[i].dst = (uint64_t)(uintptr_t)(b->b + rem);
            break;
        }
        b->pieces[i].size = sz;
        off += sz;
    }
    *total_p = off;
    return count;
}

static int mb_copy(mb_bench_t *b, mb_layout_t layout, mf_copy_dir_t dir,
                   const mf_copy_piece_t *pieces, size_t count,
                   mf_status_t *results)
{
    mf_status_t st;

    if (layout == MB_SINGLE) {
        st = mf_bm_copy(b->bm, pieces[0].src, pieces[0].dst, pieces[0].size,
                        dir);
    } else {
        st = mf_bm_copy_batch(b->bm, pieces, count, dir, results);
    }
    if (st != MF_OK) {
        bench_err("%s copy (%s, %zu pieces): %s", mf_copy_dir_name(dir),
                  mb_layout_names[layout], count, mf_status_str(st));
        return -1;
    }
    return 0;
}

/* Fills remote memory with the pattern through the stage buffer. */
static int mb_remote_fill(mb_bench_t *b, uint64_t gva, uint64_t size,
                          uint64_t seed, uint64_t base)
{
    uint64_t done, n;
    mf_status_t st;

    for (done = 0; done < size; done += n) {
        n = size - done < MB_STAGE ? size - done : MB_STAGE;
        mb_pattern_fill(b->stage, n, seed, base + done);
        st = mf_bm_copy(b->bm, (uint64_t)(uintptr_t)b->stage, gva + done, n,
                        MF_COPY_LH2GH);
        if (st != MF_OK) {
            bench_err("filling 0x%" PRIx64 ": %s", gva, mf_status_str(st));
            return -1;
        }
    }
    return 0;
}

/* Reads remote memory back through the stage buffer and checks it. */
static int mb_remote_check(mb_bench_t *b, uint64_t gva, uint64_t size,
                           uint64_t seed, uint64_t base, ssize_t *bad_p)
{
    uint64_t done, n;
    mf_status_t st;
    ssize_t bad;

    *bad_p = -1;
    for (done = 0; done < size; done += n) {
        n = size - done < MB_STAGE ? size - done : MB_STAGE;
        memset(b->stage, 0, n);
        st = mf_bm_copy(b->bm, gva + done, (uint64_t)(uintptr_t)b->stage, n,
                        MF_COPY_GH2LH);
        if (st != MF_OK) {
            bench_err("reading 0x%" PRIx64 " back: %s", gva, mf_status_str(st));
            return -1;
        }
        bad = mb_pattern_check(b->stage, n, seed, base + done);
        if (bad >= 0) {
            *bad_p = (ssize_t)done + bad;
            return 0;
        }
    }
    return 0;
}

/* Copies the pieces once with a fresh pattern and checks every byte. */
static int mb_verify(mb_bench_t *b, mb_layout_t layout, mb_dir_t dir,
                     size_t count)
{
    bool src_local = dir == MB_LH2GH, dst_local = dir == MB_GH2LH;
    uint64_t seed = ++b->seed, base = 0;
    size_t i;
    ssize_t bad;

    for (i = 0; i < count; i++) {
        mf_copy_piece_t *pc = &b->pieces[i];

        if (src_local) {
            mb_pattern_fill((uint8_t *)(uintptr_t)pc->src, pc->size, seed,
                            base);
        } else if (mb_remote_fill(b, pc->src, pc->size, seed, base) != 0) {
            return -1;
        }
        if (dst_local) {
            memset((void *)(uintptr_t)pc->dst, 0, pc->size);
        }
        base += pc->size;
    }
    for (i = 0; i < count; i++) {
        b->results[i] = MF_ERR_STATE;
    }
    if (mb_copy(b, layout, mb_dirs[dir], b->pieces, count, b->results) != 0) {
        return -1;
    }
    for (i = 0, base = 0; i < count; i++) {
        mf_copy_piece_t *pc = &b->pieces[i];

        if (layout != MB_SINGLE && b->results[i] != MF_OK) {
            bench_err("verify: piece %zu: %s", i, mf_status_str(b->results[i]));
            return -1;
        }
        if (dst_local) {
            bad = mb_pattern_check((uint8_t *)(uintptr_t)pc->dst, pc->size,
                                   seed, base);
        } else if (mb_remote_check(b, pc->dst, pc->size, seed, base, &bad) !=
                   0) {
            return -1;
        }
        if (bad >= 0) {
            bench_err("WRONG DATA: %s %s copy, piece %zu of %zu (%zu "
                      "bytes): byte %zd differs",
                      mb_dir_names[dir], mb_layout_names[layout], i, count,
                      (size_t)pc->size, bad);
            return -1;
        }
        base += pc->size;
    }
    return 0;
}

typedef int (*mb_run_fn)(mb_bench_t *b, void *arg);

typedef struct mb_copy_arg {
    mb_layout_t layout;
    mf_copy_dir_t dir;
    size_t count;
} mb_copy_arg_t;

static int mb_run_copy(mb_bench_t *b, void *arg)
{
    mb_copy_arg_t *c = arg;

    return mb_copy(b, c->layout, c->dir, b->pieces, c->count, NULL);
}

typedef struct mb_base_arg {
    size_t count;
    uint64_t total;
    unsigned active;
} mb_base_arg_t;

static int mb_run_base(mb_bench_t *b, void *arg)
{
    mb_base_arg_t *c = arg;

    mb_mcpy_run(&b->mcpy, b->pieces, c->count, c->total, c->active);
    return 0;
}

typedef struct mb_tcpb_run_arg {
    uint32_t op;
    uint64_t total;
} mb_tcpb_run_arg_t;

static int mb_run_tcpb(mb_bench_t *b, void *arg)
{
    mb_tcpb_run_arg_t *c = arg;

    return mb_tcpb_run(&b->tcpb, c->op, c->op == MB_TCPB_WRITE ? b->a : b->b,
                       c->total);
}

/*
 * One warm-up run, then timed samples of `reps` runs each (reps chosen so
 * that a sample lasts >= 1 ms) until min_time passed and at least
 * MB_MIN_SAMPLES were taken, or exactly --iters samples.  Returns the
 * median bandwidth in GB/s (1e9 bytes/s), or a negative value on failure.
 */
static double mb_measure(mb_bench_t *b, mb_run_fn fn, void *arg, uint64_t bytes,
                         unsigned *samples_p)
{
    static double rates[MB_MAX_SAMPLES];
    uint64_t t0, t1, start, reps = 1, k;
    unsigned n = 0;

    if (fn(b, arg) != 0) { /* warm-up */
        return -1;
    }
    /* calibrate: double reps until one sample lasts >= MB_SAMPLE_NS */
    for (;;) {
        t0 = bench_now_ns();
        for (k = 0; k < reps; k++) {
            if (fn(b, arg) != 0) {
                return -1;
            }
        }
        t1 = bench_now_ns();
        if (t1 - t0 >= MB_SAMPLE_NS || reps >= (1u << 20) ||
            mb_opts.iters > 0) {
            break;
        }
        reps *= 2;
    }
    start = bench_now_ns();
    for (;;) {
        t0 = bench_now_ns();
        for (k = 0; k < reps; k++) {
            if (fn(b, arg) != 0) {
                return -1;
            }
        }
        t1 = bench_now_ns();
        rates[n++] = (double)(bytes * reps) / (double)(t1 - t0 ? t1 - t0 : 1);
        if (n == MB_MAX_SAMPLES) {
            break;
        }
        if (mb_opts.iters > 0) {
            if (n >= mb_opts.iters) {
                break;
            }
        } else if (n >= MB_MIN_SAMPLES &&
                   (double)(t1 - start) >= mb_opts.min_time * 1e9) {
            break;
        }
    }
    qsort(rates, n, sizeof(rates[0]), bench_cmp_double);
    *samples_p = n;
    return bench_median_double(rates, n);
}

static void mb_print_header(uint32_t world, uint64_t split_min)
{
    if (mb_opts.json) {
        return;
    }
    printf("# mf-bench %s: %u ranks, rank 0 copies to/from rank 1 "
           "%s\n",
           mf_version(), world,
           world >= 3 ? "(GH2GH: rank 1 -> rank 2)"
                      : "(GH2GH skipped: needs 3 ranks)");
    if (mb_opts.iters > 0) {
        printf("# GB/s = 1e9 bytes/s; median of %u timed copies, after one "
               "warm-up\n",
               mb_opts.iters);
    } else {
        printf("# GB/s = 1e9 bytes/s; median of >= %u timed samples (each "
               ">= 1 ms) over >= %.2f s, after one warm-up\n",
               MB_MIN_SAMPLES, mb_opts.min_time);
    }
    printf("# threads = threads doing the copy (copy_threads + caller); "
           "pieces: 1 = mf_bm_copy, else mf_bm_copy_batch (%u equal pieces, "
           "or %d KV pieces 61x128K+61x16K)\n",
           mb_opts.pieces, MB_KV_PIECES);
    if (mb_opts.tcp) {
        printf("# transport forced to tcp (even between ranks of one host); "
               "lanes = TCP connections per peer (tcp.lanes)\n");
        printf("# baseline: raw TCP stream between the same two processes "
               "(rank 0 and rank 1) over as many connections as lanes, one "
               "thread per connection on each side, plain send/recv into a "
               "buffer; a write waits for a 1-byte ack, a read sends a "
               "request first\n");
    } else {
        printf("# baseline: memcpy of the same pieces between private buffers "
               "of one process, by the same number of threads (bytes split "
               "evenly) when size >= copy_split_min (%" PRIu64
               " bytes), else by one\n",
               split_min);
    }
    printf("# every configuration was verified byte for byte before it was "
           "timed\n");
    if (mb_opts.tcp) {
        printf("%-9s %-9s %10s %6s %7s %5s %9s %9s %6s\n", "transport",
               "direction", "size", "pieces", "threads", "lanes", "GB/s",
               "base GB/s", "ratio");
    } else {
        printf("%-9s %-9s %10s %6s %7s %9s %9s %6s\n", "transport", "direction",
               "size", "pieces", "threads", "GB/s", "base GB/s", "ratio");
    }
    fflush(stdout);
}

static void mb_print_result(const mb_record_t *r)
{
    char sz[32];
    double ratio = r->base_gbps > 0 ? r->gbps / r->base_gbps : 0;

    if (mb_opts.json) {
        printf("{\"transport\":\"%s\",\"direction\":\"%s\",\"layout\":\"%s\","
               "\"size\":%" PRIu64 ",\"pieces\":%u,\"threads\":%u,"
               "\"lanes\":%u,\"gbps\":%.3f,\"baseline_gbps\":%.3f,"
               "\"ratio\":%.3f,\"samples\":%u,\"stat\":\"median\","
               "\"ranks\":%u}\n",
               mb_opts.transport, mb_dir_names[r->dir],
               mb_layout_names[r->layout], r->size, r->pieces, r->threads,
               r->lanes, r->gbps, r->base_gbps, ratio, r->samples, r->world);
    } else if (mb_opts.tcp) {
        printf("%-9s %-9s %10s %6u %7u %5u %9.2f %9.2f %6.2f\n",
               mb_opts.transport, mb_dir_names[r->dir],
               mb_size_str(r->size, sz, sizeof(sz)), r->pieces, r->threads,
               r->lanes, r->gbps, r->base_gbps, ratio);
    } else {
        printf("%-9s %-9s %10s %6u %7u %9.2f %9.2f %6.2f\n", mb_opts.transport,
               mb_dir_names[r->dir], mb_size_str(r->size, sz, sizeof(sz)),
               r->pieces, r->threads, r->gbps, r->base_gbps, ratio);
    }
    fflush(stdout);
}

static int mb_emit(mb_bench_t *b, const mb_record_t *r)
{
    if (b->out_fd < 0) {
        if (r->type == MB_REC_HEADER) {
            mb_print_header(r->world, r->split_min);
        } else {
            mb_print_result(r);
        }
        return 0;
    }
    if (write(b->out_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
        bench_err("writing a result to the parent: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Measures one (layout, size): the baseline once, then every direction. */
static int mb_bench_size(mb_bench_t *b, mb_layout_t layout, uint64_t size)
{
    mb_tcpb_run_arg_t targ;
    mb_base_arg_t barg;
    mb_copy_arg_t carg;
    mb_record_t rec;
    uint64_t total;
    size_t count;
    unsigned samples, d;
    double base, gbps;

    count = mb_build(b, layout, MB_DIRS, size, &total);
    base = 0;
    if (!mb_opts.tcp) {
        barg.count = count;
        barg.total = total;
        barg.active = total >= b->split_min ? b->threads : 1;
        mb_mcpy_hot(&b->mcpy, barg.active > 1);
        base = mb_measure(b, mb_run_base, &barg, total, &samples);
        mb_mcpy_hot(&b->mcpy, false);
    }
    for (d = 0; d < MB_DIRS; d++) {
        if (!mb_opts.dirs[d] || (d == MB_GH2GH && b->world < 3)) {
            continue;
        }
        if (mb_opts.tcp && d != MB_GH2GH) {
            /* the raw stream in the same direction, same bytes */
            targ.op = d == MB_GH2LH ? MB_TCPB_READ : MB_TCPB_WRITE;
            targ.total = total;
            base = mb_measure(b, mb_run_tcpb, &targ, total, &samples);
            if (base < 0) {
                return -1;
            }
        } else if (mb_opts.tcp) {
            base = 0; /* no raw stream between two other processes */
        }
        count = mb_build(b, layout, (int)d, size, &total);
        if (mb_verify(b, layout, d, count) != 0) {
            return -1;
        }
        carg.layout = layout;
        carg.dir = mb_dirs[d];
        carg.count = count;
        gbps = mb_measure(b, mb_run_copy, &carg, total, &samples);
        if (gbps < 0) {
            return -1;
        }
        memset(&rec, 0, sizeof(rec));
        rec.type = MB_REC_RESULT;
        rec.world = b->world;
        rec.layout = layout;
        rec.dir = d;
        rec.size = total;
        rec.pieces = (uint32_t)count;
        rec.threads = b->threads;
        rec.lanes = b->lanes;
        rec.samples = samples;
        rec.gbps = gbps;
        rec.base_gbps = base;
        if (mb_emit(b, &rec) != 0) {
            return -1;
        }
    }
    return 0;
}

static uint64_t mb_max_size(void)
{
    uint64_t m = 0;
    unsigned i;

    for (i = 0; i < mb_opts.nsizes; i++) {
        m = mb_opts.sizes[i] > m ? mb_opts.sizes[i] : m;
    }
    if (mb_opts.layouts[MB_KV] && m < MB_KV_TOTAL) {
        m = MB_KV_TOTAL;
    }
    return m;
}

static void *mb_alloc(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        bench_err("mmap(%" PRIu64 " bytes): %s", size, strerror(errno));
        return NULL;
    }
    madvise(p, size, MADV_HUGEPAGE);
    memset(p, 0x5a, size); /* fault the pages in before timing */
    return p;
}

static int mb_bench_run(mb_bench_t *b, uint64_t max)
{
    mb_record_t rec;
    unsigned l, i;
    size_t k;

    b->max_pieces =
        mb_opts.pieces > MB_KV_PIECES ? mb_opts.pieces : MB_KV_PIECES;
    b->pieces = calloc(b->max_pieces, sizeof(*b->pieces));
    b->results = calloc(b->max_pieces, sizeof(*b->results));
    if (b->pieces == NULL || b->results == NULL) {
        bench_err("out of memory");
        return -1;
    }
    b->a = mb_alloc(max);
    b->b = mb_alloc(max);
    b->stage = mb_alloc(MB_STAGE);
    if (b->a == NULL || b->b == NULL || b->stage == NULL) {
        return -1;
    }
    for (k = 0; k < MB_KV_PIECES; k++) {
        b->kv[k] = mb_alloc(mb_kv_size(k));
        if (b->kv[k] == NULL) {
            return -1;
        }
    }
    if (mb_mcpy_init(&b->mcpy, b->threads) != 0) {
        return -1;
    }
    memset(&rec, 0, sizeof(rec));
    rec.type = MB_REC_HEADER;
    rec.world = b->world;
    rec.split_min = b->split_min;
    if (mb_emit(b, &rec) != 0) {
        return -1;
    }
    for (l = 0; l < MB_LAYOUTS; l++) {
        if (!mb_opts.layouts[l]) {
            continue;
        }
        if (l == MB_KV) {
            if (mb_bench_size(b, MB_KV, MB_KV_TOTAL) != 0) {
                return -1;
            }
            continue;
        }
        for (i = 0; i < mb_opts.nsizes; i++) {
            if (l == MB_BATCH && mb_opts.sizes[i] < mb_opts.pieces) {
                continue;
            }
            if (mb_bench_size(b, l, mb_opts.sizes[i]) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static void mb_bench_free(mb_bench_t *b, uint64_t max)
{
    size_t k;

    if (b->mcpy.nthreads > 0) {
        mb_mcpy_fini(&b->mcpy);
    }
    if (b->tcpb.n > 0) {
        mb_tcpb_fini(&b->tcpb);
    }
    for (k = 0; k < MB_KV_PIECES; k++) {
        if (b->kv[k] != NULL) {
            munmap(b->kv[k], mb_kv_size(k));
        }
    }
    if (b->stage != NULL) {
        munmap(b->stage, MB_STAGE);
    }
    if (b->b != NULL) {
        munmap(b->b, max);
    }
    if (b->a != NULL) {
        munmap(b->a, max);
    }
    free(b->pieces);
    free(b->results);
}

/* --------------------------------------------------------------- rank */

static int mb_wait_joined(mf_bm_t *bm, uint32_t rank)
{
    uint64_t deadline = bench_now_ns() + MB_JOIN_WAIT_MS * 1000000ull;

    while (!mf_bm_rank_joined(bm, rank)) {
        if (bench_now_ns() > deadline) {
            bench_err("rank %u did not join within %d ms", rank,
                      MB_JOIN_WAIT_MS);
            return -1;
        }
        bench_sleep_ms(10);
    }
    return 0;
}

/* One rank of a pool; rank 0 measures.  Returns the exit code. */
static int mb_rank_main(const char *url, uint32_t world, uint32_t threads,
                        uint32_t lanes, uint32_t want_rank, int out_fd)
{
    char thr[16], where[96];
    mb_tcpb_srv_t srv;
    uint8_t *srv_buf = NULL;
    void *value = NULL;
    size_t vlen;
    mf_bm_create_params_t params;
    mf_bm_config_t cfg;
    mf_store_t *store = NULL;
    mb_bench_t bench;
    uint32_t rank = UINT32_MAX, barrier_timeout;
    uint64_t max = mb_max_size(), seg;
    mf_status_t st;
    int ret = 1;

    memset(&bench, 0, sizeof(bench));
    memset(&srv, 0, sizeof(srv));
    bench.out_fd = out_fd;
    seg = (max + 2 * MB_MIB - 1) / (2 * MB_MIB) * (2 * MB_MIB);
    barrier_timeout = mb_opts.timeout_s * 1000u;

    mf_bm_config_init(&cfg);
    snprintf(thr, sizeof(thr), "%u", threads - 1);
    st = mf_bm_config_set(&cfg, "copy_threads", thr);
    if (st == MF_OK) {
        st = mf_bm_config_set(&cfg, "transport", mb_opts.transport);
    }
    if (st == MF_OK && mb_opts.tcp) {
        snprintf(thr, sizeof(thr), "%u", lanes);
        st = mf_bm_config_set(&cfg, "tcp.lanes", thr);
        if (st != MF_OK) {
            bench_err("this library does not take tcp.lanes = %u", lanes);
        }
    }
    if (st != MF_OK) {
        bench_err("config: %s", mf_status_str(st));
        return 1;
    }
    st = mf_init();
    if (st != MF_OK) {
        bench_err("mf_init: %s", mf_status_str(st));
        return 1;
    }
    st = mf_store_connect(url, NULL, &store);
    if (st != MF_OK) {
        bench_err("connecting to the store %s: %s", url, mf_status_str(st));
        goto out_uninit;
    }
    st = mf_bm_init(url, world, want_rank, &cfg);
    if (st != MF_OK) {
        bench_err("mf_bm_init: %s", mf_status_str(st));
        goto out_close_store;
    }
    mf_bm_rank_id(&rank);
    mf_bm_create_params_init(&params);
    params.local_dram_size = seg;
    params.max_dram_per_rank = seg;
    st = mf_bm_create(0, &params, &bench.bm);
    if (st != MF_OK) {
        bench_err("rank %u: mf_bm_create: %s", rank, mf_status_str(st));
        goto out_bm_uninit;
    }
    st = mf_bm_join(bench.bm);
    if (st != MF_OK) {
        bench_err("rank %u: mf_bm_join: %s", rank, mf_status_str(st));
        goto out_destroy;
    }
    if (mb_opts.tcp && rank == 1) {
        /* the raw TCP baseline's receiving end */
        srv_buf = mb_alloc(max);
        if (srv_buf == NULL ||
            mb_tcpb_srv_start(&srv, srv_buf, max, where, sizeof(where)) != 0) {
            goto out_leave;
        }
        st = mf_store_set(store, MB_TCPB_KEY, where, strlen(where), 0);
        if (st != MF_OK) {
            bench_err("rank 1: publishing the baseline address: %s",
                      mf_status_str(st));
            goto out_leave;
        }
    }
    st = mf_store_barrier(store, "mf-bench/joined", world, barrier_timeout);
    if (st != MF_OK) {
        bench_err("rank %u: barrier: %s", rank, mf_status_str(st));
        goto out_leave;
    }
    if (rank == 0 && mb_opts.tcp) {
        bench.lanes = lanes;
        st = mf_store_get(store, MB_TCPB_KEY, barrier_timeout, &value, &vlen);
        if (st != MF_OK) {
            bench_err("rank 0: the baseline address of rank 1: %s",
                      mf_status_str(st));
            goto out_leave;
        }
        if (mb_tcpb_init(&bench.tcpb, lanes, value) != 0) {
            goto out_leave;
        }
    }
    if (rank == 0) {
        bench.world = world;
        bench.threads = threads;
        bench.split_min = cfg.copy_split_min;
        bench.r1 =
            (uint64_t)(uintptr_t)mf_bm_gva_of_rank(bench.bm, 1, MF_MEM_HOST);
        bench.r2 = world >= 3 ? (uint64_t)(uintptr_t)mf_bm_gva_of_rank(
                                    bench.bm, 2, MF_MEM_HOST)
                              : 0;
        if (mb_wait_joined(bench.bm, 1) != 0 ||
            (world >= 3 && mb_wait_joined(bench.bm, 2) != 0)) {
            goto out_leave;
        }
        if (mb_bench_run(&bench, max) != 0) {
            /* the others wait at the barrier; the parent kills them */
            mb_bench_free(&bench, max);
            goto out_leave;
        }
        mb_bench_free(&bench, max);
    }
    /* nobody leaves while rank 0 may still copy into its segment */
    st = mf_store_barrier(store, "mf-bench/done", world, barrier_timeout);
    if (st != MF_OK) {
        bench_err("rank %u: final barrier: %s", rank, mf_status_str(st));
        goto out_leave;
    }
    ret = 0;
out_leave:
    if (bench.tcpb.n > 0) {
        mb_tcpb_fini(&bench.tcpb);
    }
    mb_tcpb_srv_stop(&srv);
    if (srv_buf != NULL) {
        munmap(srv_buf, max);
    }
    free(value);
    st = mf_bm_leave(bench.bm);
    if (st != MF_OK && ret == 0) {
        bench_err("rank %u: mf_bm_leave: %s", rank, mf_status_str(st));
        ret = 1;
    }
out_destroy:
    mf_bm_destroy(bench.bm);
out_bm_uninit:
    mf_bm_uninit();
out_close_store:
    mf_store_close(store);
out_uninit:
    mf_uninit();
    return ret;
}

/* ----------------------------------------------------- netns hosts */

/*
 * --netns: two "hosts" as network namespaces mfbench<pid>h0/h1, each with
 * a veth pair into a bridge in a third namespace mfbench<pid>sw, with the
 * addresses 10.213.0.1 and 10.213.0.2 (used only inside them; made by
 * common/bench_netns.c, shared with mmc-bench).  The store and even ranks
 * run in host 0, odd ranks in host 1; rank i takes rank i.
 * The namespaces are removed at exit, on SIGINT/SIGTERM (through the
 * normal exit path), and namespaces of earlier runs whose process is gone
 * are removed at start.
 */
#define MB_NETNS_BASE "mfbench"

static const char *mb_store_host = "127.0.0.1";

static int mb_ns_setup(void)
{
    if (bench_netns_setup("mf-bench", MB_NETNS_BASE, 2) != 0) {
        return -1;
    }
    mb_store_host = bench_netns_addr(0);
    mb_tcp_addr = bench_netns_addr(1);
    return 0;
}

/* In a child: enters host (0 or 1); a no-op without --netns. */
static void mb_ns_enter(int host)
{
    if (mb_opts.netns && bench_netns_enter((unsigned)host) != 0) {
        _exit(1);
    }
}

/* ------------------------------------------------------------- parent */

static void mb_on_signal(int sig)
{
    mb_stop_signal = sig;
}

static void mb_child_setup(pid_t parent)
{
    sigset_t none;

    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) {
        _exit(1);
    }
}

/* The store process: serves until SIGTERM, reports its port first. */
static void mb_store_main(int fd)
{
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    sigset_t set;
    uint16_t port = 0;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    mf_store_server_config_init(&cfg);
    snprintf(cfg.host, sizeof(cfg.host), "%s", mb_store_host);
    cfg.port = 0;
    if (mf_store_server_start(&cfg, &server) != MF_OK) {
        bench_err("cannot start the config store");
        _exit(1);
    }
    port = mf_store_server_port(server);
    if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        _exit(1);
    }
    close(fd);
    while (sigwait(&set, &sig) != 0) {
    }
    mf_store_server_stop(server);
    exit(0);
}

static pid_t mb_store_start(char *url, size_t len)
{
    pid_t parent = getpid(), pid;
    struct pollfd pfd;
    uint16_t port = 0;
    int fds[2];
    ssize_t n = 0;

    if (pipe(fds) < 0) {
        bench_err("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        bench_err("fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        mb_child_setup(parent);
        mb_ns_enter(0);
        close(fds[0]);
        mb_store_main(fds[1]);
    }
    close(fds[1]);
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 30000) == 1) {
        n = read(fds[0], &port, sizeof(port));
    }
    close(fds[0]);
    if (n != (ssize_t)sizeof(port) || port == 0) {
        bench_err("the config store did not start");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    snprintf(url, len, "tcp://%s:%u", mb_store_host, (unsigned)port);
    return pid;
}

static int mb_store_stop(pid_t pid)
{
    uint64_t deadline = bench_now_ns() + 30000000000ull;
    int status;
    pid_t r;

    kill(pid, SIGTERM);
    for (;;) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (bench_now_ns() > deadline) {
            bench_err("the config store did not stop: killed");
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        bench_sleep_ms(10);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_err("the config store exited with status 0x%x", status);
        return -1;
    }
    return 0;
}

/* Reads whole records from fd; prints them.  -1 on EOF. */
static int mb_drain(int fd, bool *header_done)
{
    static mb_record_t rec;
    static size_t have;
    ssize_t n;

    n = read(fd, (char *)&rec + have, sizeof(rec) - have);
    if (n <= 0) {
        return n == 0 || errno != EINTR ? -1 : 0;
    }
    have += (size_t)n;
    if (have < sizeof(rec)) {
        return 0;
    }
    have = 0;
    if (rec.type == MB_REC_HEADER) {
        if (!*header_done) {
            mb_print_header(rec.world, rec.split_min);
            *header_done = true;
        }
    } else {
        mb_print_result(&rec);
    }
    return 0;
}

/* One pool with `threads` threads per copy: store + ranks, until done. */
static int mb_round(uint32_t threads, uint32_t lanes, bool *header_done,
                    uint64_t deadline)
{
    bench_child_t children[MB_MAX_RANKS];
    const uint32_t n = mb_opts.ranks;
    pid_t parent = getpid(), store_pid, pid;
    char url[64];
    struct pollfd pfd;
    unsigned i, left = n;
    int fds[2], status, ret = -1;
    bool eof = false;

    memset(children, 0, sizeof(children));
    store_pid = mb_store_start(url, sizeof(url));
    if (store_pid < 0) {
        return -1;
    }
    if (pipe(fds) < 0) {
        bench_err("pipe: %s", strerror(errno));
        goto out_store;
    }
    fflush(NULL);
    for (i = 0; i < n; i++) {
        pid = fork();
        if (pid < 0) {
            bench_err("fork: %s", strerror(errno));
            bench_kill_reap(children, i);
            close(fds[0]);
            close(fds[1]);
            goto out_store;
        }
        if (pid == 0) {
            mb_child_setup(parent);
            mb_ns_enter((int)(i % 2));
            close(fds[0]);
            /* exit(), not _exit(): a sanitizer build checks for leaks */
            exit(mb_rank_main(url, n, threads, lanes,
                              mb_opts.netns ? i : MF_RANK_AUTO, fds[1]));
        }
        children[i].pid = pid;
    }
    close(fds[1]);
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    while (left > 0 || !eof) {
        if (mb_stop_signal) {
            bench_err("interrupted by signal %d", (int)mb_stop_signal);
            goto out_kill;
        }
        if (bench_now_ns() > deadline) {
            bench_err("run took longer than --timeout %u s", mb_opts.timeout_s);
            goto out_kill;
        }
        if (!eof && poll(&pfd, 1, 100) == 1 &&
            mb_drain(fds[0], header_done) < 0) {
            eof = true;
        }
        if (eof) {
            bench_sleep_ms(10);
        }
        for (i = 0; i < n; i++) {
            if (children[i].done) {
                continue;
            }
            pid = waitpid(children[i].pid, &status, WNOHANG);
            if (pid != children[i].pid) {
                continue;
            }
            children[i].done = true;
            left--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (WIFSIGNALED(status)) {
                    bench_err("rank process %d killed by signal %d", (int)pid,
                              WTERMSIG(status));
                } else {
                    bench_err("rank process %d failed (exit %d)", (int)pid,
                              WEXITSTATUS(status));
                }
                goto out_kill;
            }
        }
    }
    ret = 0;
out_kill:
    bench_kill_reap(children, n);
    close(fds[0]);
out_store:
    if (mb_store_stop(store_pid) != 0) {
        ret = -1;
    }
    return ret;
}

/* ------------------------------------------------------------ options */

static void mb_usage(FILE *out)
{
    fprintf(out,
            "Usage: mf-bench [options]\n"
            "Measures BM copy bandwidth (mf_bm_copy, mf_bm_copy_batch) "
            "against a memcpy\nbaseline measured in the same run.  By "
            "default it starts a config store and\na pool of --ranks "
            "processes on this host by itself, once per --threads value.\n"
            "\n"
            "  --ranks N          processes in the pool (default 4, >= 2; "
            "GH2GH needs 3)\n"
            "  --threads LIST     threads doing a copy, comma separated "
            "(default 1,2);\n"
            "                     copy_threads = threads - 1\n"
            "  --sizes LIST       copy sizes, suffixes K M G "
            "(default 4K,64K,1M,8M,64M,256M,1G)\n"
            "  --max-size SIZE    leave out sizes above SIZE\n"
            "  --pieces N         pieces of a batched copy (default 64)\n"
            "  --layouts LIST     single,batch,kv (default all; kv = 61 x "
            "128 KiB + 61 x 16 KiB)\n"
            "  --dirs LIST        LH2GH,GH2LH,GH2GH (default all)\n"
            "  --iters N          timed samples per measurement (default: "
            "enough for --min-time)\n"
            "  --min-time SEC     time per measurement (default 0.2)\n"
            "  --transport NAME   BM transport (default shm); tcp forces the "
            "tcp transport\n"
            "                     between the ranks of this host and "
            "measures a raw TCP\n"
            "                     stream between rank 0 and rank 1 as the "
            "baseline (defaults\n"
            "                     then: --ranks 2, --sizes 1M,8M,64M, "
            "--layouts single,kv,\n"
            "                     --dirs LH2GH,GH2LH, --threads 1, "
            "--lanes 1,2)\n"
            "  --lanes LIST       tcp: TCP connections per peer (tcp.lanes), "
            "comma separated;\n"
            "                     the baseline opens as many (JSON field "
            "lanes: 0 with shm)\n"
            "  --netns            tcp: rank processes in two network "
            "namespaces (hosts\n"
            "                     joined by veth and a bridge, "
            "10.213.0.1-2), even ranks in\n"
            "                     the first, odd in the second; needs root "
            "and iproute2\n"
            "  --quick            sizes 4K,64K,1M, --min-time 0.02 (smoke "
            "test)\n"
            "  --json             one JSON object per result on stdout\n"
            "  --timeout SEC      give up after SEC seconds (default 900)\n"
            "  --store URL        run as one rank of a pool whose store is at "
            "URL ...\n"
            "  --world N          ... of N ranks (start every rank with the "
            "same options;\n"
            "                     the one that gets rank 0 measures; threads "
            "= first of --threads)\n"
            "  -h, --help         this help\n"
            "\n"
            "Segments are as large as the largest size; a 1 GiB size needs "
            "about 1 GiB per\nrank plus 2 GiB in rank 0.\n");
}

static int mb_parse_list(const char *arg, const char *what,
                         int (*fn)(const char *item, void *ctx), void *ctx)
{
    char buf[512], *save = NULL, *tok;

    if (strlen(arg) >= sizeof(buf)) {
        bench_err("%s: list too long", what);
        return -1;
    }
    strcpy(buf, arg);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (fn(tok, ctx) != 0) {
            bench_err("%s: bad item '%s'", what, tok);
            return -1;
        }
    }
    return 0;
}

static int mb_add_size(const char *item, void *ctx)
{
    uint64_t v;

    if (mb_opts.nsizes == MB_MAX_SIZES || bench_parse_size(item, &v) != 0) {
        return -1;
    }
    mb_opts.sizes[mb_opts.nsizes++] = v;
    return 0;
}

/* Appends a count in 1..max to list (of cap entries, *n used). */
static int mb_add_count(const char *item, unsigned long max, uint32_t *list,
                        unsigned *n, unsigned cap)
{
    char *end;
    unsigned long v = strtoul(item, &end, 10);

    if (*end != '\0' || v < 1 || v > max || *n == cap) {
        return -1;
    }
    list[(*n)++] = (uint32_t)v;
    return 0;
}

static int mb_add_threads(const char *item, void *ctx)
{
    return mb_add_count(item, MB_MAX_THREADS, mb_opts.threads,
                        &mb_opts.nthreads, MB_ARRAY_LEN(mb_opts.threads));
}

static int mb_add_lanes(const char *item, void *ctx)
{
    return mb_add_count(item, MB_TCPB_MAX, mb_opts.lanes, &mb_opts.nlanes,
                        MB_ARRAY_LEN(mb_opts.lanes));
}

static int mb_pick(const char *item, const char *const *names, unsigned n,
                   bool *set)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        if (strcasecmp(item, names[i]) == 0) {
            set[i] = true;
            return 0;
        }
    }
    return -1;
}

static int mb_add_layout(const char *item, void *ctx)
{
    return mb_pick(item, mb_layout_names, MB_LAYOUTS, mb_opts.layouts);
}

static int mb_add_dir(const char *item, void *ctx)
{
    return mb_pick(item, mb_dir_names, MB_DIRS, mb_opts.dirs);
}

static int mb_parse_args(int argc, char **argv)
{
    enum {
        O_RANKS = 256,
        O_THREADS,
        O_SIZES,
        O_MAX,
        O_PIECES,
        O_LAYOUTS,
        O_DIRS,
        O_ITERS,
        O_MINTIME,
        O_TRANSPORT,
        O_QUICK,
        O_JSON,
        O_TIMEOUT,
        O_STORE,
        O_WORLD,
        O_LANES,
        O_NETNS
    };
    static const struct option longopts[] = {
        {"ranks", required_argument, NULL, O_RANKS},
        {"threads", required_argument, NULL, O_THREADS},
        {"sizes", required_argument, NULL, O_SIZES},
        {"max-size", required_argument, NULL, O_MAX},
        {"pieces", required_argument, NULL, O_PIECES},
        {"layouts", required_argument, NULL, O_LAYOUTS},
        {"dirs", required_argument, NULL, O_DIRS},
        {"iters", required_argument, NULL, O_ITERS},
        {"min-time", required_argument, NULL, O_MINTIME},
        {"transport", required_argument, NULL, O_TRANSPORT},
        {"quick", no_argument, NULL, O_QUICK},
        {"json", no_argument, NULL, O_JSON},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"store", required_argument, NULL, O_STORE},
        {"world", required_argument, NULL, O_WORLD},
        {"lanes", required_argument, NULL, O_LANES},
        {"netns", no_argument, NULL, O_NETNS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quick = false, layouts = false, dirs = false, min_time = false;
    bool ranks = false, sizes = false;
    unsigned v, i, j;
    char *end;
    int opt;

    mb_opts.ranks = 4;
    mb_opts.pieces = 64;
    mb_opts.min_time = 0.2;
    mb_opts.timeout_s = 900;
    snprintf(mb_opts.transport, sizeof(mb_opts.transport), "shm");
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_RANKS:
            if (bench_parse_uint(optarg, "--ranks", 2, MB_MAX_RANKS, &v) != 0) {
                return -1;
            }
            mb_opts.ranks = v;
            ranks = true;
            break;
        case O_THREADS:
            if (mb_parse_list(optarg, "--threads", mb_add_threads, NULL) != 0) {
                return -1;
            }
            break;
        case O_SIZES:
            if (mb_parse_list(optarg, "--sizes", mb_add_size, NULL) != 0) {
                return -1;
            }
            sizes = true;
            break;
        case O_MAX:
            if (bench_parse_size(optarg, &mb_opts.max_size) != 0) {
                bench_err("--max-size: bad size '%s'", optarg);
                return -1;
            }
            break;
        case O_PIECES:
            if (bench_parse_uint(optarg, "--pieces", 1, 65536, &v) != 0) {
                return -1;
            }
            mb_opts.pieces = v;
            break;
        case O_LAYOUTS:
            layouts = true;
            if (mb_parse_list(optarg, "--layouts", mb_add_layout, NULL) != 0) {
                return -1;
            }
            break;
        case O_DIRS:
            dirs = true;
            if (mb_parse_list(optarg, "--dirs", mb_add_dir, NULL) != 0) {
                return -1;
            }
            break;
        case O_ITERS:
            if (bench_parse_uint(optarg, "--iters", 1, MB_MAX_SAMPLES, &v) !=
                0) {
                return -1;
            }
            mb_opts.iters = v;
            break;
        case O_MINTIME:
            mb_opts.min_time = strtod(optarg, &end);
            if (*end != '\0' || !(mb_opts.min_time >= 0) ||
                mb_opts.min_time > 60) {
                bench_err("--min-time: expected seconds in 0..60, got "
                          "'%s'",
                          optarg);
                return -1;
            }
            min_time = true;
            break;
        case O_TRANSPORT:
            if (strlen(optarg) >= sizeof(mb_opts.transport)) {
                bench_err("--transport: name too long");
                return -1;
            }
            snprintf(mb_opts.transport, sizeof(mb_opts.transport), "%s",
                     optarg);
            break;
        case O_QUICK:
            quick = true;
            break;
        case O_JSON:
            mb_opts.json = true;
            break;
        case O_TIMEOUT:
            if (bench_parse_uint(optarg, "--timeout", 1, 86400, &v) != 0) {
                return -1;
            }
            mb_opts.timeout_s = v;
            break;
        case O_STORE:
            mb_opts.store_url = optarg;
            break;
        case O_NETNS:
            mb_opts.netns = true;
            break;
        case O_LANES:
            if (mb_parse_list(optarg, "--lanes", mb_add_lanes, NULL) != 0) {
                return -1;
            }
            break;
        case O_WORLD:
            if (bench_parse_uint(optarg, "--world", 2, 1u << 20, &v) != 0) {
                return -1;
            }
            mb_opts.world = v;
            break;
        case 'h':
            mb_usage(stdout);
            exit(0);
        default:
            mb_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        bench_err("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if ((mb_opts.store_url == NULL) != (mb_opts.world == 0)) {
        bench_err("--store and --world go together");
        return -1;
    }
    mb_opts.tcp = strcmp(mb_opts.transport, "tcp") == 0;
    if (mb_opts.netns && (!mb_opts.tcp || mb_opts.store_url != NULL)) {
        bench_err("--netns goes with --transport tcp, without --store");
        return -1;
    }
    if (mb_opts.nlanes > 0 && !mb_opts.tcp) {
        bench_err("--lanes goes with --transport tcp");
        return -1;
    }
    if (mb_opts.tcp) {
        /* rank 0 and rank 1: write and read; 1 MiB, 8 MiB, 64 MiB and
         * the KV block; 1 and 2 lanes; one thread */
        static const uint64_t tcp_sizes[] = {MB_MIB, 8 * MB_MIB, 64 * MB_MIB};

        if (!ranks) {
            mb_opts.ranks = 2;
        }
        if (!sizes && !quick) {
            for (i = 0; i < 3; i++) {
                mb_opts.sizes[mb_opts.nsizes++] = tcp_sizes[i];
            }
        }
        if (!layouts) {
            layouts = true;
            mb_opts.layouts[MB_SINGLE] = true;
            mb_opts.layouts[MB_KV] = true;
        }
        if (!dirs) {
            dirs = true;
            mb_opts.dirs[MB_LH2GH] = true;
            mb_opts.dirs[MB_GH2LH] = true;
        }
        if (mb_opts.nthreads == 0) {
            mb_opts.threads[mb_opts.nthreads++] = 1;
        }
        if (mb_opts.nlanes == 0) {
            mb_opts.lanes[mb_opts.nlanes++] = 1;
            mb_opts.lanes[mb_opts.nlanes++] = 2;
        }
    } else {
        mb_opts.lanes[mb_opts.nlanes++] = 0; /* one round, no lanes */
    }
    if (mb_opts.nsizes == 0) {
        static const uint64_t def[] = {4 * MB_KIB, 64 * MB_KIB, MB_MIB,
                                       8 * MB_MIB, 64 * MB_MIB, 256 * MB_MIB,
                                       MB_GIB};
        static const uint64_t small[] = {4 * MB_KIB, 64 * MB_KIB, MB_MIB};
        const uint64_t *src = quick ? small : def;
        unsigned n = quick ? 3 : 7;

        for (i = 0; i < n; i++) {
            mb_opts.sizes[mb_opts.nsizes++] = src[i];
        }
    }
    if (quick && !min_time) {
        mb_opts.min_time = 0.02;
    }
    if (mb_opts.max_size > 0) {
        for (i = 0, j = 0; i < mb_opts.nsizes; i++) {
            if (mb_opts.sizes[i] <= mb_opts.max_size) {
                mb_opts.sizes[j++] = mb_opts.sizes[i];
            }
        }
        mb_opts.nsizes = j;
    }
    if (mb_opts.nthreads == 0) {
        mb_opts.threads[0] = 1;
        mb_opts.threads[1] = 2;
        mb_opts.nthreads = 2;
    }
    if (!layouts) {
        for (i = 0; i < MB_LAYOUTS; i++) {
            mb_opts.layouts[i] = true;
        }
    }
    if (!dirs) {
        for (i = 0; i < MB_DIRS; i++) {
            mb_opts.dirs[i] = true;
        }
    }
    if (mb_opts.max_size > 0 && mb_opts.max_size < MB_KV_TOTAL) {
        mb_opts.layouts[MB_KV] = false;
    }
    if (mb_opts.nsizes == 0) {
        mb_opts.layouts[MB_SINGLE] = false;
        mb_opts.layouts[MB_BATCH] = false;
    }
    for (i = 0, j = 0; i < MB_LAYOUTS; i++) {
        j += mb_opts.layouts[i];
    }
    if (j == 0) {
        bench_err("nothing left to measure (see --sizes, --max-size, "
                  "--layouts)");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    bool header_done = false;
    uint64_t deadline;
    unsigned i, l;

    bench_set_tool("mf-bench");
    if (mb_parse_args(argc, argv) != 0) {
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mb_opts.store_url != NULL) {
        return mb_rank_main(mb_opts.store_url, mb_opts.world,
                            mb_opts.threads[0], mb_opts.lanes[0], MF_RANK_AUTO,
                            -1);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mb_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (mb_opts.netns && mb_ns_setup() != 0) {
        bench_err("cannot create the network namespaces for --netns (root and "
                  "iproute2 needed)");
        return 1;
    }
    deadline = bench_now_ns() + (uint64_t)mb_opts.timeout_s * 1000000000ull;
    for (i = 0; i < mb_opts.nthreads; i++) {
        for (l = 0; l < mb_opts.nlanes; l++) {
            if (mb_round(mb_opts.threads[i], mb_opts.lanes[l], &header_done,
                         deadline) != 0) {
                bench_err("FAILED (threads = %u, lanes = %u)",
                          mb_opts.threads[i], mb_opts.lanes[l]);
                return 1;
            }
        }
    }
    return 0;
}
