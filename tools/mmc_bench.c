/*
 * mmc-bench: put/get bandwidth and latency of MemCache for KV-cache blocks,
 * and metadata rates, with a memcpy baseline measured in the same run.
 *
 * By default the tool runs a whole cluster on this host by itself: it
 * starts an mmc-meta daemon (the binary next to its own executable, with
 * free ports, parsing its ready line) and --procs client processes, each
 * one mmc_t contributing --dram bytes.  Every client puts its own blocks
 * (8,994,816 bytes in 122 pieces: 61 x 128 KiB + 61 x 16 KiB) with
 * mmc_put_layers_batch and reads blocks of every client with
 * mmc_get_layers_batch, 1, 8, 16 and 32 blocks per call; then it measures
 * mmc_exist_batch and mmc_query_batch of 1024 keys and the single-key
 * round trip.  The baseline is a single-threaded memcpy of the same 122
 * pieces between the same source and destination buffers, in every
 * client, while the others do the same.  With --meta the clients join a
 * running meta service instead; with --netns the clients are spread over
 * hosts made of network namespaces and use the tcp transport, and also put
 * blocks on (preferred rank) and get blocks from processes of other hosts
 * only (put_remote, get_remote).
 *
 * Invariants: the parent never calls into the library and never starts a
 * thread, so forking from it (the daemon: fork + exec; the clients: fork)
 * is safe; every child dies with the parent (PR_SET_PDEATHSIG) and is
 * reaped; on any failure or SIGINT/SIGTERM the parent kills the clients,
 * stops the daemon it started and removes its namespaces.  Clients send
 * fixed-size records (< PIPE_BUF, so writes from several never interleave)
 * through one pipe; they step through the phases together with a barrier in
 * shared memory.  Every block is verified byte for byte (put, then get of
 * every client's blocks) before anything is timed and again after, so a
 * speed is never reported for calls that move the wrong bytes.  Nothing is
 * asserted about timing.
 */
#include <memcache/mmc.h>

#include "bench_netns.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MCB_KIB          ((uint64_t)1024)
#define MCB_MIB          (MCB_KIB * 1024)
#define MCB_GIB          (MCB_MIB * 1024)
#define MCB_LAYERS       61
#define MCB_PIECES       (2 * MCB_LAYERS)
#define MCB_BIG          (128 * MCB_KIB)
#define MCB_SMALL        (16 * MCB_KIB)
#define MCB_BLOCK        (MCB_LAYERS * (MCB_BIG + MCB_SMALL)) /* 8994816 */
#define MCB_GAP          (4 * MCB_KIB) /* between pieces: nothing coalesces */
#define MCB_STRIDE       (MCB_BLOCK + MCB_PIECES * MCB_GAP)
#define MCB_META_SIZE    64 /* bytes of a metadata-phase object */
#define MCB_MAX_PROCS    64
#define MCB_MAX_BATCH    256
#define MCB_MAX_BATCHES  8
#define MCB_MAX_SETS     32
#define MCB_MAX_CALLS    200000
#define MCB_MAX_RECS     4096
#define MCB_READY_MS     30000
#define MCB_STOP_MS      15000
#define MCB_NETNS_BASE   "mmcbench"
#define MCB_VERIFY_BATCH ((size_t)8) /* blocks per get when verifying */

#define MCB_ARRAY_LEN(_a) (sizeof(_a) / sizeof((_a)[0]))
#define MCB_MIN(_a, _b)   ((_a) < (_b) ? (_a) : (_b))

typedef enum mcb_op {
    MCB_OP_MEMCPY,
    MCB_OP_PUT,
    MCB_OP_GET,
    MCB_OP_PUT_REMOTE, /* --netns: to a rank on another host */
    MCB_OP_GET_REMOTE, /* --netns: blocks of processes on other hosts */
    MCB_OP_EXIST_BATCH,
    MCB_OP_QUERY_BATCH,
    MCB_OP_EXIST,
    MCB_OPS
} mcb_op_t;

static const char *const mcb_op_names[MCB_OPS] = {
    "memcpy",     "put",         "get",         "put_remote",
    "get_remote", "exist_batch", "query_batch", "exist"};

typedef struct mcb_opts {
    uint32_t procs;
    uint32_t hosts;
    uint32_t batches[MCB_MAX_BATCHES];
    unsigned nbatches;
    uint32_t bmax;      /* largest batch = blocks each client owns */
    uint64_t dram;      /* per client; 0 = sized from the working set */
    double min_time;    /* seconds per measurement */
    unsigned min_calls; /* calls per measurement, at least */
    unsigned meta_keys; /* keys of one exist/query batch */
    unsigned timeout_s;
    bool json;
    bool netns;
    bool quick;
    bool per_proc;
    const char *meta_url; /* a running meta service */
    char meta_bin[PATH_MAX];
    const char *meta_sets[MCB_MAX_SETS];
    unsigned nmeta_sets;
    const char *client_sets[MCB_MAX_SETS];
    unsigned nclient_sets;
} mcb_opts_t;

/* What a client sends to the parent, one per measurement. */
typedef struct mcb_record {
    uint32_t op; /* mcb_op_t */
    uint32_t proc;
    uint32_t host;
    uint32_t rank;
    uint32_t blocks;       /* blocks per call (block ops) */
    uint32_t keys;         /* keys per call */
    uint32_t calls;        /* timed calls */
    uint32_t copy_threads; /* the client's fabric.copy_threads */
    double p50_us;
    double p99_us;
    uint64_t bytes;   /* moved by the timed calls */
    uint64_t items;   /* keys handled by the timed calls */
    uint64_t t_start; /* CLOCK_MONOTONIC ns, the same clock in every proc */
    uint64_t t_end;
} mcb_record_t;

/* Process-shared control block, mapped before any fork. */
typedef struct mcb_shared {
    uint32_t arrived; /* barrier: processes waiting (atomic) */
    uint32_t gen;     /* barrier: generation (atomic) */
    uint32_t done;    /* processes whose measurement is long enough */
    uint32_t abort;   /* set by the parent: give up (atomic) */
    uint32_t ranks[MCB_MAX_PROCS]; /* each client's rank, once created */
} mcb_shared_t;

static mcb_opts_t mcb_opts;
static mcb_shared_t *mcb_sh;
static volatile sig_atomic_t mcb_stop_signal;
static uint64_t mcb_deadline;
static char mcb_run_id[32];

/* ------------------------------------------------------------ helpers */

/* A cheap pattern that depends on (seed, position in the object), so the
 * bytes of another block, or of the same block shifted, never match. */
static inline uint64_t mcb_pattern_word(uint64_t seed, uint64_t k)
{
    return ((k ^ (seed << 40)) + seed) * 0x9e3779b97f4a7c15ull;
}

static void mcb_pattern_fill(uint8_t *p, size_t len, uint64_t seed,
                             uint64_t base)
{
    size_t i;

    /* every piece starts at a multiple of 8 of the object */
    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t w = mcb_pattern_word(seed, (base + i) / 8);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) {
        p[i] = (uint8_t)(mcb_pattern_word(seed, (base + i) / 8) >>
                         (8 * ((base + i) % 8)));
    }
}

/* Index of the first wrong byte, or -1. */
static ssize_t mcb_pattern_check(const uint8_t *p, size_t len, uint64_t seed,
                                 uint64_t base)
{
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t w = mcb_pattern_word(seed, (base + i) / 8);
        if (memcmp(p + i, &w, 8) != 0) {
            break;
        }
    }
    for (; i < len; i++) {
        if (p[i] != (uint8_t)(mcb_pattern_word(seed, (base + i) / 8) >>
                              (8 * ((base + i) % 8)))) {
            return (ssize_t)i;
        }
    }
    return -1;
}

static uint64_t mcb_block_seed(uint32_t owner, uint32_t k)
{
    return ((uint64_t)(owner + 1) << 24) | (uint64_t)(k + 1);
}

static size_t mcb_piece_size(size_t i)
{
    return i < MCB_LAYERS ? MCB_BIG : MCB_SMALL;
}

/* ------------------------------------------------------------ barrier */

/*
 * Every client waits for the others; the last one in resets the
 * measurement counter and opens the next generation.  Waiters sleep in
 * short steps (the machine may have fewer cores than processes).  -1 when
 * the parent aborted or the deadline passed.
 */
static int mcb_barrier(void)
{
    uint32_t gen = __atomic_load_n(&mcb_sh->gen, __ATOMIC_ACQUIRE);
    unsigned spins = 0;

    if (__atomic_add_fetch(&mcb_sh->arrived, 1, __ATOMIC_ACQ_REL) ==
        mcb_opts.procs) {
        __atomic_store_n(&mcb_sh->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&mcb_sh->done, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&mcb_sh->gen, 1, __ATOMIC_RELEASE);
        return 0;
    }
    while (__atomic_load_n(&mcb_sh->gen, __ATOMIC_ACQUIRE) == gen) {
        if (__atomic_load_n(&mcb_sh->abort, __ATOMIC_ACQUIRE) != 0) {
            return -1;
        }
        if (++spins < 64) {
            sched_yield();
        } else {
            bench_sleep_us(50);
            if ((spins & 1023) == 0 && bench_now_ns() > mcb_deadline) {
                bench_err("timed out waiting for the other clients");
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------- client */

typedef struct mcb_client {
    uint32_t proc;
    uint32_t host;
    uint32_t rank;
    uint32_t peer;      /* --netns: the client on another host it puts to */
    uint32_t peer_rank; /* its rank */
    uint32_t copy_threads;
    int out_fd;
    mmc_t *mmc;
    uint8_t *src;  /* bmax blocks of source layers */
    uint8_t *dst;  /* bmax blocks of destination layers */
    uint64_t area; /* bytes of src, of dst */
    mmc_iov_t (*src_iov)[MCB_PIECES];
    mmc_iov_t (*dst_iov)[MCB_PIECES];
    char **own_keys;   /* bmax: this client's blocks */
    char **all_keys;   /* procs * bmax, owners interleaved */
    char **meta_keys;  /* meta_keys: this client's objects */
    char **meta_mixed; /* meta_keys: objects of every client */
    char **rput_keys;  /* --netns, bmax: this client's blocks at peer */
    char **rget_keys;  /* --netns, nrget: blocks of clients elsewhere */
    size_t nrget;
    uint8_t meta_val[MCB_META_SIZE];
    /* per call */
    const char **keys;
    const mmc_iov_t **iovs;
    size_t *niovs;
    mmc_status_t *results;
    mmc_obj_info_t *infos;
    const void **bufs;
    size_t *sizes;
    uint64_t *lat; /* MCB_MAX_CALLS call times, ns */
} mcb_client_t;

static void *mcb_map(uint64_t size)
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

static char *mcb_key(const char *kind, uint32_t owner, uint32_t k)
{
    char buf[96];
    char *s;

    snprintf(buf, sizeof(buf), "mmcb%s/p%u/%s%u", mcb_run_id, owner, kind, k);
    s = strdup(buf);
    if (s == NULL) {
        bench_err("out of memory");
    }
    return s;
}

static void mcb_free_keys(char **keys, size_t n)
{
    size_t i;

    if (keys == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

static void mcb_client_free(mcb_client_t *c)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.bmax;

    if (c->src != NULL) {
        munmap(c->src, c->area);
    }
    if (c->dst != NULL) {
        munmap(c->dst, c->area);
    }
    free(c->src_iov);
    free(c->dst_iov);
    mcb_free_keys(c->own_keys, K);
    mcb_free_keys(c->all_keys, (size_t)P * K);
    mcb_free_keys(c->meta_keys, mcb_opts.meta_keys);
    mcb_free_keys(c->meta_mixed, mcb_opts.meta_keys);
    mcb_free_keys(c->rput_keys, K);
    mcb_free_keys(c->rget_keys, c->nrget);
    free(c->keys);
    free(c->iovs);
    free(c->niovs);
    free(c->results);
    free(c->infos);
    free(c->bufs);
    free(c->sizes);
    free(c->lat);
}

static uint32_t mcb_host_of(uint32_t proc)
{
    return proc % mcb_opts.hosts;
}

/* --netns: the keys this client puts at its peer (the next client on
 * another host), and the blocks of the clients on other hosts, in the
 * interleaved order of all_keys. */
static int mcb_client_alloc_remote(mcb_client_t *c)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.bmax;
    size_t i;

    c->peer = (c->proc + 1) % P;
    while (mcb_host_of(c->peer) == c->host) {
        c->peer = (c->peer + 1) % P;
    }
    c->rput_keys = calloc(K, sizeof(char *));
    c->rget_keys = calloc((size_t)P * K, sizeof(char *));
    if (c->rput_keys == NULL || c->rget_keys == NULL) {
        bench_err("out of memory");
        return -1;
    }
    for (i = 0; i < K; i++) {
        c->rput_keys[i] = mcb_key("r", c->proc, (uint32_t)i);
        if (c->rput_keys[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < (size_t)P * K; i++) {
        if (mcb_host_of((uint32_t)(i % P)) == c->host) {
            continue;
        }
        c->rget_keys[c->nrget] = strdup(c->all_keys[i]);
        if (c->rget_keys[c->nrget] == NULL) {
            bench_err("out of memory");
            return -1;
        }
        c->nrget++;
    }
    return 0;
}

/* Buffers, piece lists and key names; sources filled with the pattern. */
static int mcb_client_alloc(mcb_client_t *c)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.bmax;
    const size_t M = mcb_opts.meta_keys;
    const size_t maxn = K > M ? K : M;
    uint64_t off;
    size_t i, j;

    c->area = (uint64_t)K * MCB_STRIDE;
    c->src = mcb_map(c->area);
    c->dst = mcb_map(c->area);
    c->src_iov = calloc(K, sizeof(*c->src_iov));
    c->dst_iov = calloc(K, sizeof(*c->dst_iov));
    c->own_keys = calloc(K, sizeof(char *));
    c->all_keys = calloc((size_t)P * K, sizeof(char *));
    c->meta_keys = calloc(M, sizeof(char *));
    c->meta_mixed = calloc(M, sizeof(char *));
    c->keys = calloc(maxn, sizeof(char *));
    c->iovs = calloc(maxn, sizeof(mmc_iov_t *));
    c->niovs = calloc(maxn, sizeof(size_t));
    c->results = calloc(maxn, sizeof(mmc_status_t));
    c->infos = calloc(maxn, sizeof(mmc_obj_info_t));
    c->bufs = calloc(maxn, sizeof(void *));
    c->sizes = calloc(maxn, sizeof(size_t));
    c->lat = calloc(MCB_MAX_CALLS, sizeof(uint64_t));
    if (c->src == NULL || c->dst == NULL || c->src_iov == NULL ||
        c->dst_iov == NULL || c->own_keys == NULL || c->all_keys == NULL ||
        c->meta_keys == NULL || c->meta_mixed == NULL || c->keys == NULL ||
        c->iovs == NULL || c->niovs == NULL || c->results == NULL ||
        c->infos == NULL || c->bufs == NULL || c->sizes == NULL ||
        c->lat == NULL) {
        bench_err("out of memory");
        return -1;
    }
    for (i = 0; i < K; i++) {
        uint8_t *s = c->src + i * MCB_STRIDE, *d = c->dst + i * MCB_STRIDE;

        off = 0;
        for (j = 0; j < MCB_PIECES; j++) {
            size_t len = mcb_piece_size(j);

            c->src_iov[i][j].base = s;
            c->src_iov[i][j].len = len;
            c->dst_iov[i][j].base = d;
            c->dst_iov[i][j].len = len;
            mcb_pattern_fill(s, len, mcb_block_seed(c->proc, (uint32_t)i), off);
            off += len;
            s += len + MCB_GAP;
            d += len + MCB_GAP;
        }
        c->own_keys[i] = mcb_key("b", c->proc, (uint32_t)i);
        if (c->own_keys[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < (size_t)P * K; i++) {
        c->all_keys[i] = mcb_key("b", (uint32_t)(i % P), (uint32_t)(i / P));
        if (c->all_keys[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < M; i++) {
        c->meta_keys[i] = mcb_key("m", c->proc, (uint32_t)i);
        c->meta_mixed[i] =
            mcb_key("m", (uint32_t)((c->proc + i) % P), (uint32_t)i);
        if (c->meta_keys[i] == NULL || c->meta_mixed[i] == NULL) {
            return -1;
        }
    }
    mcb_pattern_fill(c->meta_val, sizeof(c->meta_val), 7, 0);
    return mcb_opts.hosts > 1 ? mcb_client_alloc_remote(c) : 0;
}

/* Names the first failed item of a batch call. */
static int mcb_batch_failed(mcb_client_t *c, const char *what, mmc_status_t st,
                            size_t count)
{
    size_t i;

    for (i = 0; i < count; i++) {
        if (c->results[i] != MMC_OK) {
            bench_err("client %u: %s: %s (item %zu, key %s: %s)", c->proc, what,
                      mmc_status_name(st), i, c->keys[i],
                      mmc_status_name(c->results[i]));
            return -1;
        }
    }
    bench_err("client %u: %s: %s", c->proc, what, mmc_status_name(st));
    return -1;
}

/* b of this client's blocks, starting at block (j * b) % bmax, under
 * keys (own_keys: placed here; rput_keys: at the peer). */
static int mcb_put_blocks(mcb_client_t *c, uint32_t b, uint64_t j, char **keys)
{
    const uint32_t K = mcb_opts.bmax;
    mmc_put_opts_t po;
    mmc_status_t st;
    uint32_t i, k;

    memset(&po, 0, sizeof(po));
    po.flags = MMC_PUT_REPLACE;
    if (keys == c->rput_keys) {
        po.npreferred = 1;
        po.preferred[0] = c->peer_rank;
    }
    for (i = 0; i < b; i++) {
        k = (uint32_t)((j * b + i) % K);
        c->keys[i] = keys[k];
        c->iovs[i] = c->src_iov[k];
        c->niovs[i] = MCB_PIECES;
    }
    st = mmc_put_layers_batch(c->mmc, c->keys, c->iovs, c->niovs, b, &po,
                              c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_put_layers_batch", st, b);
    }
    return 0;
}

/* put: b of this client's blocks (placed on its own rank). */
static int mcb_do_put(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_put_blocks(c, b, j, c->own_keys);
}

/* put_remote: the same blocks, placed at the peer on another host. */
static int mcb_do_put_remote(mcb_client_t *c, uint32_t b, uint64_t j)
{
    return mcb_put_blocks(c, b, j, c->rput_keys);
}

/* The key (index into all_keys) of item i of get call j. */
static size_t mcb_get_index(const mcb_client_t *c, uint32_t b, uint64_t j,
                            uint32_t i)
{
    const uint64_t n = (uint64_t)mcb_opts.procs * mcb_opts.bmax;

    return (size_t)((c->proc + j * b + i) % n);
}

/* get: b blocks of every client (owners interleaved) into dst[0..b). */
static int mcb_do_get(mcb_client_t *c, uint32_t b, uint64_t j)
{
    mmc_status_t st;
    uint32_t i;

    for (i = 0; i < b; i++) {
        c->keys[i] = c->all_keys[mcb_get_index(c, b, j, i)];
        c->iovs[i] = c->dst_iov[i];
        c->niovs[i] = MCB_PIECES;
    }
    st =
        mmc_get_layers_batch(c->mmc, c->keys, c->iovs, c->niovs, b, c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_get_layers_batch", st, b);
    }
    return 0;
}

/* get_remote: b blocks of clients on other hosts into dst[0..b). */
static int mcb_do_get_remote(mcb_client_t *c, uint32_t b, uint64_t j)
{
    mmc_status_t st;
    uint32_t i;

    for (i = 0; i < b; i++) {
        c->keys[i] = c->rget_keys[(c->proc + j * b + i) % c->nrget];
        c->iovs[i] = c->dst_iov[i];
        c->niovs[i] = MCB_PIECES;
    }
    st =
        mmc_get_layers_batch(c->mmc, c->keys, c->iovs, c->niovs, b, c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_get_layers_batch", st, b);
    }
    return 0;
}

/* The baseline: the pieces of the blocks put call j puts (the same source
 * buffers, in the same turn), copied into the destination blocks a get
 * call fills. */
static int mcb_do_memcpy(mcb_client_t *c, uint32_t b, uint64_t j)
{
    uint32_t i, p, k;

    for (i = 0; i < b; i++) {
        k = (uint32_t)((j * b + i) % mcb_opts.bmax);
        for (p = 0; p < MCB_PIECES; p++) {
            memcpy(c->dst_iov[i][p].base, c->src_iov[k][p].base,
                   c->src_iov[k][p].len);
        }
    }
    __asm__ __volatile__("" ::: "memory");
    return 0;
}

static int mcb_do_exist_batch(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const size_t M = mcb_opts.meta_keys;
    mmc_status_t st;

    st = mmc_exist_batch(c->mmc, (const char *const *)c->meta_mixed, M,
                         c->results);
    if (st != MMC_OK) {
        memcpy(c->keys, c->meta_mixed, M * sizeof(char *));
        return mcb_batch_failed(c, "mmc_exist_batch", st, M);
    }
    return 0;
}

static int mcb_do_query_batch(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const size_t M = mcb_opts.meta_keys;
    mmc_status_t st;

    st = mmc_query_batch(c->mmc, (const char *const *)c->meta_mixed, M,
                         c->infos, c->results);
    if (st != MMC_OK) {
        memcpy(c->keys, c->meta_mixed, M * sizeof(char *));
        return mcb_batch_failed(c, "mmc_query_batch", st, M);
    }
    return 0;
}

static int mcb_do_exist(mcb_client_t *c, uint32_t b, uint64_t j)
{
    const char *key = c->meta_mixed[j % mcb_opts.meta_keys];
    mmc_status_t st = mmc_exist(c->mmc, key);

    if (st != MMC_OK) {
        bench_err("client %u: mmc_exist(%s): %s", c->proc, key,
                  mmc_status_name(st));
        return -1;
    }
    return 0;
}

typedef int (*mcb_call_fn)(mcb_client_t *c, uint32_t b, uint64_t j);

static const mcb_call_fn mcb_op_fns[MCB_OPS] = {
    mcb_do_memcpy,      mcb_do_put,        mcb_do_get,
    mcb_do_put_remote,  mcb_do_get_remote, mcb_do_exist_batch,
    mcb_do_query_batch, mcb_do_exist};

static int mcb_send(mcb_client_t *c, const mcb_record_t *r)
{
    if (write(c->out_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
        bench_err("client %u: writing a result: %s", c->proc, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * One measurement, every client at once: a warm-up call, then timed calls
 * until this client made >= min_calls over >= min_time and every other
 * client did too (so all of them run for the whole of each one's window).
 */
static int mcb_measure(mcb_client_t *c, mcb_op_t op, uint32_t b)
{
    const mcb_call_fn fn = mcb_op_fns[op];
    const bool block_op = op <= MCB_OP_GET_REMOTE;
    const uint32_t keys = block_op             ? b
                          : op == MCB_OP_EXIST ? 1
                                               : mcb_opts.meta_keys;
    uint64_t t0, t1, start, n = 0, j = 1;
    mcb_record_t r;
    bool flagged = false;

    if (mcb_barrier() != 0 || fn(c, b, 0) != 0 || mcb_barrier() != 0) {
        return -1;
    }
    start = bench_now_ns();
    for (;;) {
        t0 = bench_now_ns();
        if (fn(c, b, j++) != 0) {
            __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
            return -1;
        }
        t1 = bench_now_ns();
        c->lat[n++] = t1 - t0;
        if (!flagged && ((n >= mcb_opts.min_calls &&
                          (double)(t1 - start) >= mcb_opts.min_time * 1e9) ||
                         n == MCB_MAX_CALLS)) {
            flagged = true;
            __atomic_add_fetch(&mcb_sh->done, 1, __ATOMIC_ACQ_REL);
        }
        if (n == MCB_MAX_CALLS ||
            __atomic_load_n(&mcb_sh->done, __ATOMIC_ACQUIRE) ==
                mcb_opts.procs) {
            break;
        }
        if (__atomic_load_n(&mcb_sh->abort, __ATOMIC_ACQUIRE) != 0 ||
            t1 > mcb_deadline) {
            bench_err("client %u: aborted during %s", c->proc,
                      mcb_op_names[op]);
            return -1;
        }
    }
    memset(&r, 0, sizeof(r));
    r.t_end = bench_now_ns();
    r.t_start = start;
    qsort(c->lat, n, sizeof(c->lat[0]), bench_cmp_u64);
    r.op = op;
    r.proc = c->proc;
    r.host = c->host;
    r.rank = c->rank;
    r.blocks = block_op ? b : 0;
    r.keys = keys;
    r.calls = (uint32_t)n;
    r.copy_threads = c->copy_threads;
    r.p50_us = bench_median_u64(c->lat, n) / 1e3;
    r.p99_us = (double)c->lat[(n * 99 + 99) / 100 - 1] / 1e3;
    r.bytes = block_op ? n * b * MCB_BLOCK : 0;
    r.items = n * keys;
    return mcb_send(c, &r);
}

/* Compares dst block i with block k of owner; -1 (logged) if it differs. */
static int mcb_check_block(mcb_client_t *c, size_t i, uint32_t owner,
                           uint32_t k, const char *when)
{
    uint64_t off = 0;
    ssize_t bad;
    size_t p;

    for (p = 0; p < MCB_PIECES; p++) {
        bad = mcb_pattern_check(c->dst_iov[i][p].base, c->dst_iov[i][p].len,
                                mcb_block_seed(owner, k), off);
        if (bad >= 0) {
            bench_err("client %u: %s: block %s differs at byte %" PRIu64
                      " (piece %zu)",
                      c->proc, when, c->keys[i], off + (uint64_t)bad, p);
            return -1;
        }
        off += c->dst_iov[i][p].len;
    }
    return 0;
}

/* Gets cnt <= bmax blocks into dst[0..cnt) (poisoned first). */
static int mcb_get_into_dst(mcb_client_t *c, char *const *keys, size_t cnt,
                            const char *when)
{
    mmc_status_t st;
    size_t i;

    memset(c->dst, 0xa5, c->area);
    for (i = 0; i < cnt; i++) {
        c->keys[i] = keys[i];
        c->iovs[i] = c->dst_iov[i];
        c->niovs[i] = MCB_PIECES;
    }
    st = mmc_get_layers_batch(c->mmc, c->keys, c->iovs, c->niovs, cnt,
                              c->results);
    if (st != MMC_OK) {
        bench_err("client %u: %s:", c->proc, when);
        return mcb_batch_failed(c, "mmc_get_layers_batch", st, cnt);
    }
    return 0;
}

/* Gets every client's blocks and compares them with their pattern; with
 * --netns also this client's blocks at its peer, which must be there. */
static int mcb_verify_all(mcb_client_t *c, const char *when)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.bmax;
    const size_t n = (size_t)P * K;
    const size_t vb = MCB_MIN(MCB_VERIFY_BATCH, (size_t)K); /* dst holds K */
    mmc_status_t st;
    size_t g, i;

    for (g = 0; g < n; g += vb) {
        size_t cnt = MCB_MIN(n - g, vb);

        if (mcb_get_into_dst(c, c->all_keys + g, cnt, when) != 0) {
            return -1;
        }
        for (i = 0; i < cnt; i++) {
            if (mcb_check_block(c, i, (uint32_t)((g + i) % P),
                                (uint32_t)((g + i) / P), when) != 0) {
                return -1;
            }
        }
    }
    if (c->rput_keys == NULL) {
        return 0;
    }
    for (g = 0; g < K; g += vb) {
        size_t cnt = MCB_MIN(K - g, vb);

        if (mcb_get_into_dst(c, c->rput_keys + g, cnt, when) != 0) {
            return -1;
        }
        for (i = 0; i < cnt; i++) {
            if (mcb_check_block(c, i, c->proc, (uint32_t)(g + i), when) != 0) {
                return -1;
            }
        }
    }
    st = mmc_query_batch(c->mmc, (const char *const *)c->rput_keys, K, c->infos,
                         c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_query_batch", st, K);
    }
    for (i = 0; i < K; i++) {
        if (c->infos[i].nreplicas != 1 ||
            c->infos[i].ranks[0] != c->peer_rank) {
            bench_err("client %u: %s: %s is on rank %u (%u replicas), not on "
                      "rank %u of another host (its preferred rank)",
                      c->proc, when, c->rput_keys[i], c->infos[i].ranks[0],
                      c->infos[i].nreplicas, c->peer_rank);
            return -1;
        }
    }
    return 0;
}

/* Puts this client's blocks and metadata objects (untimed). */
static int mcb_put_all(mcb_client_t *c)
{
    const size_t M = mcb_opts.meta_keys;
    mmc_put_opts_t po;
    mmc_status_t st;
    size_t i;

    if (mcb_do_put(c, mcb_opts.bmax, 0) != 0 ||
        (c->rput_keys != NULL && mcb_do_put_remote(c, mcb_opts.bmax, 0) != 0)) {
        return -1;
    }
    memset(&po, 0, sizeof(po));
    po.flags = MMC_PUT_REPLACE;
    for (i = 0; i < M; i++) {
        c->keys[i] = c->meta_keys[i];
        c->bufs[i] = c->meta_val;
        c->sizes[i] = sizeof(c->meta_val);
    }
    st = mmc_put_batch(c->mmc, c->keys, c->bufs, c->sizes, M, &po, c->results);
    if (st != MMC_OK) {
        return mcb_batch_failed(c, "mmc_put_batch", st, M);
    }
    return 0;
}

/* Every item of the last metadata batch found its key. */
static int mcb_meta_all_found(mcb_client_t *c, const char *what)
{
    for (size_t i = 0; i < mcb_opts.meta_keys; i++) {
        if (c->results[i] != MMC_OK) {
            bench_err("client %u: %s: key %s: %s", c->proc, what,
                      c->meta_mixed[i], mmc_status_name(c->results[i]));
            return -1;
        }
    }
    return 0;
}

/* The metadata calls answer what was put, and a missing key is missing. */
static int mcb_verify_meta(mcb_client_t *c)
{
    const size_t M = mcb_opts.meta_keys;
    char missing[128];
    mmc_status_t st;
    size_t i;

    /* a batch of misses returns MMC_OK too: every item must be found */
    if (mcb_do_exist_batch(c, 0, 0) != 0 ||
        mcb_meta_all_found(c, "mmc_exist_batch") != 0 ||
        mcb_do_query_batch(c, 0, 0) != 0 ||
        mcb_meta_all_found(c, "mmc_query_batch") != 0) {
        return -1;
    }
    for (i = 0; i < M; i++) {
        if (c->infos[i].size != MCB_META_SIZE || c->infos[i].nreplicas < 1) {
            bench_err("client %u: mmc_query_batch: %s has size %" PRIu64
                      " and %u replicas, expected %d and >= 1",
                      c->proc, c->meta_mixed[i], c->infos[i].size,
                      c->infos[i].nreplicas, MCB_META_SIZE);
            return -1;
        }
    }
    snprintf(missing, sizeof(missing), "mmcb%s/missing/%u", mcb_run_id,
             c->proc);
    st = mmc_exist(c->mmc, missing);
    if (st != MMC_ERR_NOT_FOUND) {
        bench_err("client %u: mmc_exist of a key never put: %s, expected "
                  "MMC_ERR_NOT_FOUND",
                  c->proc, mmc_status_name(st));
        return -1;
    }
    return 0;
}

static int mcb_client_run(mcb_client_t *c)
{
    unsigned i;
    int op;

    if (mcb_put_all(c) != 0 || mcb_barrier() != 0 ||
        mcb_verify_all(c, "before timing") != 0 || mcb_verify_meta(c) != 0) {
        return -1;
    }
    for (i = 0; i < mcb_opts.nbatches; i++) {
        for (op = MCB_OP_MEMCPY; op <= MCB_OP_GET_REMOTE; op++) {
            if (op >= MCB_OP_PUT_REMOTE && mcb_opts.hosts == 1) {
                continue;
            }
            if (mcb_measure(c, (mcb_op_t)op, mcb_opts.batches[i]) != 0) {
                return -1;
            }
        }
    }
    for (op = MCB_OP_EXIST_BATCH; op < MCB_OPS; op++) {
        if (mcb_measure(c, (mcb_op_t)op, 0) != 0) {
            return -1;
        }
    }
    if (mcb_barrier() != 0 || mcb_verify_all(c, "after timing") != 0) {
        return -1;
    }
    return 0;
}

/* Removes this client's objects; problems are reported, not fatal. */
static void mcb_client_cleanup(mcb_client_t *c)
{
    mmc_status_t st;

    st = mmc_remove_batch(c->mmc, (const char *const *)c->own_keys,
                          mcb_opts.bmax, c->results);
    if (st == MMC_OK) {
        st = mmc_remove_batch(c->mmc, (const char *const *)c->meta_keys,
                              mcb_opts.meta_keys, c->results);
    }
    if (st == MMC_OK && c->rput_keys != NULL) {
        st = mmc_remove_batch(c->mmc, (const char *const *)c->rput_keys,
                              mcb_opts.bmax, c->results);
    }
    if (st != MMC_OK) {
        bench_err("client %u: removing its objects: %s", c->proc,
                  mmc_status_name(st));
    }
}

/* A client process: returns its exit code. */
static int mcb_client_main(uint32_t proc, uint32_t host, const char *url,
                           int out_fd)
{
    mcb_client_t c;
    mmc_config_t cfg;
    mmc_status_t st;
    unsigned i;
    int ret = 1;

    memset(&c, 0, sizeof(c));
    c.proc = proc;
    c.host = host;
    c.out_fd = out_fd;
    if (mcb_client_alloc(&c) != 0) {
        goto out_free;
    }
    mmc_config_init(&cfg);
    if (mmc_config_load_env(&cfg) != MMC_OK) { /* MMC_<KEY> variables */
        goto out_free;
    }
    if (strlen(url) >= sizeof(cfg.meta_url)) {
        bench_err("meta URL too long: %s", url);
        goto out_free;
    }
    snprintf(cfg.meta_url, sizeof(cfg.meta_url), "%s", url);
    cfg.dram_size = mcb_opts.dram;
    cfg.replicas = 1;
    snprintf(cfg.name, sizeof(cfg.name), "mmc-bench-%u", proc);
    if (mcb_opts.netns &&
        mmc_config_set(&cfg, "fabric.transport", "tcp") != MMC_OK) {
        goto out_free;
    }
    for (i = 0; i < mcb_opts.nclient_sets; i++) {
        char kv[512], *eq;

        snprintf(kv, sizeof(kv), "%s", mcb_opts.client_sets[i]);
        eq = strchr(kv, '=');
        *eq = '\0';
        if (mmc_config_set(&cfg, kv, eq + 1) != MMC_OK) {
            bench_err("--set %s: rejected", mcb_opts.client_sets[i]);
            goto out_free;
        }
    }
    c.copy_threads = cfg.fabric.copy_threads;
    st = mmc_create(&cfg, &c.mmc);
    if (st != MMC_OK) {
        bench_err("client %u: mmc_create(%s): %s", proc, url,
                  mmc_status_name(st));
        goto out_free;
    }
    c.rank = mmc_rank(c.mmc);
    mcb_sh->ranks[proc] = c.rank;
    if (mcb_barrier() != 0) { /* every rank is known */
        goto out_destroy;
    }
    c.peer_rank = mcb_sh->ranks[c.peer];
    if (mcb_client_run(&c) != 0) {
        __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
        goto out_destroy;
    }
    /* nobody reads this client's objects any more */
    if (mcb_barrier() != 0) {
        goto out_destroy;
    }
    mcb_client_cleanup(&c);
    if (mcb_barrier() != 0) {
        goto out_destroy;
    }
    ret = 0;
out_destroy:
    mmc_destroy(c.mmc);
out_free:
    mcb_client_free(&c);
    close(out_fd);
    return ret;
}

/* ---------------------------------------------------- child processes */

static void mcb_on_signal(int sig)
{
    mcb_stop_signal = sig;
}

static void mcb_child_setup(pid_t parent)
{
    sigset_t none;

    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) {
        _exit(1);
    }
}

/* ---------------------------------------------------------- meta daemon */

typedef struct mcb_meta {
    pid_t pid;
    int out_fd; /* the daemon's stdout, drained until it exits */
    char rpc[128];
    unsigned store_port;
    unsigned http_port;
} mcb_meta_t;

/* Reads the daemon's stdout until the ready line; -1 on EOF/timeout. */
static int mcb_meta_wait_ready(mcb_meta_t *m)
{
    static const char prefix[] = "mmc-meta ready rpc=";
    uint64_t deadline = bench_now_ns() + MCB_READY_MS * 1000000ull;
    char line[512];
    size_t have = 0;
    struct pollfd pfd;
    char *nl, *rpc, *sp;
    ssize_t n;

    pfd.fd = m->out_fd;
    pfd.events = POLLIN;
    for (;;) {
        uint64_t now = bench_now_ns();

        if (mcb_stop_signal || now >= deadline) {
            bench_err("mmc-meta printed no ready line within %d s",
                      MCB_READY_MS / 1000);
            return -1;
        }
        if (poll(&pfd, 1, deadline - now > 100000000ull ? 100 : 1) <= 0) {
            continue;
        }
        n = read(m->out_fd, line + have, sizeof(line) - 1 - have);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            bench_err("mmc-meta exited before it was ready");
            return -1;
        }
        have += (size_t)n;
        line[have] = '\0';
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (strncmp(line, prefix, sizeof(prefix) - 1) == 0) {
                goto found;
            }
            fprintf(stderr, "mmc-meta: %s\n", line);
            have -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, have + 1);
        }
        if (have == sizeof(line) - 1) {
            bench_err("mmc-meta: unexpected output");
            return -1;
        }
    }
found:
    rpc = line + sizeof(prefix) - 1;
    sp = strchr(rpc, ' ');
    if (sp == NULL || (size_t)(sp - rpc) >= sizeof(m->rpc) ||
        sscanf(sp, " store=%u http=%u", &m->store_port, &m->http_port) != 2 ||
        strrchr(rpc, ':') == NULL) {
        bench_err("mmc-meta: cannot parse its ready line '%s'", line);
        return -1;
    }
    memcpy(m->rpc, rpc, (size_t)(sp - rpc));
    m->rpc[sp - rpc] = '\0';
    return 0;
}

/* fork + exec of mmc-meta with free ports, bound to addr. */
static int mcb_meta_start(mcb_meta_t *m, const char *addr)
{
    char *argv[16 + 2 * MCB_MAX_SETS];
    char addr_set[96];
    pid_t parent = getpid();
    unsigned i, n = 0;
    int fds[2];

    memset(m, 0, sizeof(*m));
    m->pid = -1;
    m->out_fd = -1;
    snprintf(addr_set, sizeof(addr_set), "addr=%s", addr);
    argv[n++] = mcb_opts.meta_bin;
    argv[n++] = "--set";
    argv[n++] = "port=0";
    argv[n++] = "--set";
    argv[n++] = "store_port=0";
    argv[n++] = "--set";
    argv[n++] = "http_port=0";
    argv[n++] = "--set";
    argv[n++] = addr_set;
    for (i = 0; i < mcb_opts.nmeta_sets; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)mcb_opts.meta_sets[i];
    }
    argv[n] = NULL;
    if (access(mcb_opts.meta_bin, X_OK) != 0) {
        bench_err("cannot run the meta daemon %s: %s (see --meta-bin, --meta)",
                  mcb_opts.meta_bin, strerror(errno));
        return -1;
    }
    if (pipe(fds) < 0) {
        bench_err("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    m->pid = fork();
    if (m->pid < 0) {
        bench_err("fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (m->pid == 0) {
        mcb_child_setup(parent);
        if (mcb_opts.netns && bench_netns_enter(0) != 0) {
            _exit(1);
        }
        close(fds[0]);
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
            _exit(1);
        }
        close(fds[1]);
        execv(mcb_opts.meta_bin, argv);
        fprintf(stderr, "mmc-bench: exec %s: %s\n", mcb_opts.meta_bin,
                strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    m->out_fd = fds[0];
    fcntl(m->out_fd, F_SETFD, FD_CLOEXEC);
    if (mcb_meta_wait_ready(m) != 0) {
        kill(m->pid, SIGKILL);
        while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        m->pid = -1;
        close(m->out_fd);
        m->out_fd = -1;
        return -1;
    }
    return 0;
}

/* Passes on whatever the daemon prints after its ready line. */
static void mcb_meta_drain(mcb_meta_t *m)
{
    char buf[1024];
    struct pollfd pfd = {m->out_fd, POLLIN, 0};
    ssize_t n;

    if (m->out_fd < 0) {
        return;
    }
    while (poll(&pfd, 1, 0) == 1) {
        n = read(m->out_fd, buf, sizeof(buf));
        if (n <= 0) {
            close(m->out_fd);
            m->out_fd = -1;
            return;
        }
        if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
            return;
        }
    }
}

/* SIGTERM, then SIGKILL after MCB_STOP_MS; -1 unless it exited with 0. */
static int mcb_meta_stop(mcb_meta_t *m)
{
    uint64_t deadline = bench_now_ns() + MCB_STOP_MS * 1000000ull;
    int status = 0, ret = 0;
    pid_t r;

    if (m->pid <= 0) {
        return 0;
    }
    kill(m->pid, SIGTERM);
    for (;;) {
        mcb_meta_drain(m);
        r = waitpid(m->pid, &status, WNOHANG);
        if (r == m->pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            ret = -1;
            break;
        }
        if (bench_now_ns() > deadline) {
            bench_err("mmc-meta did not stop within %d s: killed",
                      MCB_STOP_MS / 1000);
            kill(m->pid, SIGKILL);
            while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            ret = -1;
            break;
        }
        bench_sleep_us(10000);
    }
    if (ret == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        bench_err("mmc-meta exited with status 0x%x", status);
        ret = -1;
    }
    m->pid = -1;
    if (m->out_fd >= 0) {
        close(m->out_fd);
        m->out_fd = -1;
    }
    return ret;
}

/* ------------------------------------------------------------- results */

static mcb_record_t mcb_recs[MCB_MAX_RECS];
static unsigned mcb_nrecs;

/* Reads whole records from fd.  -1 on EOF. */
static int mcb_drain(int fd)
{
    static mcb_record_t rec;
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
    if (mcb_nrecs < MCB_MAX_RECS) {
        mcb_recs[mcb_nrecs++] = rec;
    }
    return 0;
}

/* One row: a process's measurement, or all processes' (proc < 0). */
typedef struct mcb_row {
    mcb_op_t op;
    int proc;
    uint32_t blocks;
    uint32_t keys;
    uint32_t calls;
    uint32_t procs;
    double p50_us;
    double p99_us;
    double gbps;          /* all processes: bytes / wall time */
    double gbps_proc;     /* per process: blocks x block / p50 */
    double per_block_us;  /* p50 / blocks */
    double base_block_us; /* the memcpy baseline's */
    double ratio;
    double keys_per_s;      /* all processes */
    double keys_per_s_proc; /* per process: keys / p50 */
} mcb_row_t;

static const mcb_record_t *mcb_find(mcb_op_t op, uint32_t blocks, int proc)
{
    unsigned i;

    for (i = 0; i < mcb_nrecs; i++) {
        const mcb_record_t *r = &mcb_recs[i];

        if (r->op == (uint32_t)op && r->blocks == blocks &&
            (int)r->proc == proc) {
            return r;
        }
    }
    return NULL;
}

static void mcb_row_of(const mcb_record_t *r, mcb_row_t *row)
{
    const mcb_record_t *base = mcb_find(MCB_OP_MEMCPY, r->blocks, (int)r->proc);
    double secs = (double)(r->t_end - r->t_start) / 1e9;

    memset(row, 0, sizeof(*row));
    row->op = (mcb_op_t)r->op;
    row->proc = (int)r->proc;
    row->blocks = r->blocks;
    row->keys = r->keys;
    row->calls = r->calls;
    row->procs = 1;
    row->p50_us = r->p50_us;
    row->p99_us = r->p99_us;
    row->gbps = secs > 0 ? (double)r->bytes / secs / 1e9 : 0;
    row->keys_per_s = secs > 0 ? (double)r->items / secs : 0;
    if (r->p50_us > 0) {
        row->keys_per_s_proc = r->keys * 1e6 / r->p50_us;
    }
    if (r->blocks > 0) {
        row->per_block_us = r->p50_us / r->blocks;
        row->gbps_proc = (double)r->blocks * MCB_BLOCK / (r->p50_us * 1e3);
        if (base != NULL) { /* the baseline's own row: ratio 1 */
            row->base_block_us = base->p50_us / base->blocks;
            row->ratio = row->per_block_us / row->base_block_us;
        }
    }
}

/* All processes: p50 = median of their p50s, p99 = the largest p99, rates
 * = everything moved / (last end - first start). */
static int mcb_row_all(mcb_op_t op, uint32_t blocks, mcb_row_t *row)
{
    double p50s[MCB_MAX_PROCS], per_block[MCB_MAX_PROCS];
    double base_block[MCB_MAX_PROCS];
    uint64_t bytes = 0, items = 0, t0 = UINT64_MAX, t1 = 0;
    unsigned n = 0, nb = 0, i;
    mcb_row_t one;
    double secs;

    memset(row, 0, sizeof(*row));
    for (i = 0; i < mcb_nrecs; i++) {
        const mcb_record_t *r = &mcb_recs[i];

        if (r->op != (uint32_t)op || r->blocks != blocks ||
            n == MCB_MAX_PROCS) {
            continue;
        }
        mcb_row_of(r, &one);
        p50s[n] = r->p50_us;
        per_block[n] = one.per_block_us;
        if (one.base_block_us > 0) {
            base_block[nb++] = one.base_block_us;
        }
        row->p99_us = r->p99_us > row->p99_us ? r->p99_us : row->p99_us;
        row->calls += r->calls;
        row->gbps_proc += one.gbps_proc;
        row->keys_per_s_proc += one.keys_per_s_proc;
        row->keys = r->keys;
        bytes += r->bytes;
        items += r->items;
        t0 = r->t_start < t0 ? r->t_start : t0;
        t1 = r->t_end > t1 ? r->t_end : t1;
        n++;
    }
    if (n == 0) {
        return -1;
    }
    qsort(p50s, n, sizeof(double), bench_cmp_double);
    qsort(per_block, n, sizeof(double), bench_cmp_double);
    qsort(base_block, nb, sizeof(double), bench_cmp_double);
    row->op = op;
    row->proc = -1;
    row->procs = n;
    row->blocks = blocks;
    row->p50_us = bench_median_double(p50s, n);
    row->gbps_proc /= n;
    row->keys_per_s_proc /= n;
    secs = (double)(t1 - t0) / 1e9;
    row->gbps = secs > 0 ? (double)bytes / secs / 1e9 : 0;
    row->keys_per_s = secs > 0 ? (double)items / secs : 0;
    if (blocks > 0) {
        row->per_block_us = bench_median_double(per_block, n);
        if (nb > 0) {
            row->base_block_us = bench_median_double(base_block, nb);
            row->ratio = row->per_block_us / row->base_block_us;
        }
    }
    return 0;
}

/* s as a JSON string body: quotes, backslashes and controls escaped. */
static void mcb_json_str(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            printf("\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            printf("\\u%04x", (unsigned)(unsigned char)*s);
        } else {
            putchar(*s);
        }
    }
}

static const char *mcb_mode(void)
{
    return mcb_opts.netns ? "cross-host" : "same-host";
}

static void mcb_json_row(const mcb_row_t *r, bool *first)
{
    printf("%s\n    {\"mode\":\"%s\",\"op\":\"%s\",\"proc\":%d,\"procs\":%u,"
           "\"blocks_per_call\":%u,\"keys_per_call\":%u,\"calls\":%u,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"gbps\":%.3f,"
           "\"gbps_per_proc\":%.3f,\"per_block_us\":%.2f,"
           "\"baseline_per_block_us\":%.2f,\"ratio\":%.3f,"
           "\"keys_per_s\":%.0f,\"keys_per_s_per_proc\":%.0f}",
           *first ? "" : ",", mcb_mode(), mcb_op_names[r->op], r->proc,
           r->procs, r->blocks, r->keys, r->calls, r->p50_us, r->p99_us,
           r->gbps, r->gbps_proc, r->per_block_us, r->base_block_us, r->ratio,
           r->keys_per_s, r->keys_per_s_proc);
    *first = false;
}

static void mcb_table_block_row(const mcb_row_t *r)
{
    char who[16], ratio[16];

    if (r->proc < 0) {
        snprintf(who, sizeof(who), "all");
    } else {
        snprintf(who, sizeof(who), "p%d", r->proc);
    }
    if (r->op == MCB_OP_MEMCPY) {
        snprintf(ratio, sizeof(ratio), "-");
    } else {
        snprintf(ratio, sizeof(ratio), "%.2f", r->ratio);
    }
    printf("%-10s %-4s %6u %10.1f %10.1f %8.2f %9.2f %10.1f %10.1f %6s\n",
           mcb_op_names[r->op], who, r->blocks, r->p50_us, r->p99_us, r->gbps,
           r->gbps_proc, r->per_block_us,
           r->op == MCB_OP_MEMCPY ? r->per_block_us : r->base_block_us, ratio);
}

static void mcb_table_meta_row(const mcb_row_t *r)
{
    char who[16];

    if (r->proc < 0) {
        snprintf(who, sizeof(who), "all");
    } else {
        snprintf(who, sizeof(who), "p%d", r->proc);
    }
    printf("%-12s %-4s %9u %10.1f %10.1f %12.0f %12.0f\n", mcb_op_names[r->op],
           who, r->keys, r->p50_us, r->p99_us, r->keys_per_s,
           r->keys_per_s_proc);
}

static void mcb_print(const char *url, bool spawned)
{
    const unsigned copy_threads = mcb_nrecs > 0 ? mcb_recs[0].copy_threads : 0;
    static const mcb_op_t block_ops[] = {MCB_OP_PUT, MCB_OP_GET,
                                         MCB_OP_PUT_REMOTE, MCB_OP_GET_REMOTE,
                                         MCB_OP_MEMCPY};
    mcb_row_t row;
    bool first = true;
    unsigned i, b, p;
    int op;

    if (mcb_opts.json) {
        printf("{\"tool\":\"mmc-bench\",\"mode\":\"%s\",\"procs\":%u,"
               "\"hosts\":%u,\"block_bytes\":%" PRIu64 ",\"block_pieces\":%d,"
               "\"dram_per_proc\":%" PRIu64 ",\"meta\":\"",
               mcb_mode(), mcb_opts.procs, mcb_opts.hosts, MCB_BLOCK,
               MCB_PIECES, mcb_opts.dram);
        mcb_json_str(url);
        printf("\",\"meta_spawned\":%s,\"transport\":\"%s\","
               "\"copy_threads\":%u,\"stat\":\"median\",\"rows\":[",
               spawned ? "true" : "false", mcb_opts.netns ? "tcp" : "auto",
               copy_threads);
        for (b = 0; b < mcb_opts.nbatches; b++) {
            for (i = 0; i < MCB_ARRAY_LEN(block_ops); i++) {
                if (mcb_row_all(block_ops[i], mcb_opts.batches[b], &row) == 0) {
                    mcb_json_row(&row, &first);
                }
            }
        }
        for (op = MCB_OP_EXIST_BATCH; op < MCB_OPS; op++) {
            if (mcb_row_all((mcb_op_t)op, 0, &row) == 0) {
                mcb_json_row(&row, &first);
            }
        }
        for (i = 0; i < mcb_nrecs; i++) {
            mcb_row_of(&mcb_recs[i], &row);
            mcb_json_row(&row, &first);
        }
        printf("\n]}\n");
        fflush(stdout);
        return;
    }
    printf("# mmc-bench %s: %u client processes on %u host%s, one mmc-meta "
           "%s at %s, %s transport\n",
           mcb_mode(), mcb_opts.procs, mcb_opts.hosts,
           mcb_opts.hosts == 1 ? "" : "s (network namespaces)",
           spawned ? "(started by the bench)" : "(running)", url,
           mcb_opts.netns ? "tcp" : "auto (shm on one host)");
    printf("# block = %" PRIu64 " bytes in %d pieces (61 x 128 KiB + 61 x 16 "
           "KiB); each process contributes %" PRIu64 " MiB and owns %u "
           "blocks\n",
           MCB_BLOCK, MCB_PIECES, mcb_opts.dram / MCB_MIB, mcb_opts.bmax);
    printf("# put: mmc_put_layers_batch (MMC_PUT_REPLACE) of the process's own "
           "blocks; get: mmc_get_layers_batch of blocks of every process (own "
           "and others', interleaved)\n");
    if (mcb_opts.hosts > 1) {
        printf("# put_remote: the same blocks under other keys, placed on a "
               "process of another host (preferred rank; checked); "
               "get_remote: blocks of the processes on other hosts only\n");
    }
    printf("# memcpy: the baseline, a single-threaded memcpy of the same "
           "pieces (source layers into destination layers, same buffers) in "
           "every process at the same time; the library copies with %u "
           "thread%s per call (fabric.copy_threads = %u, see --set)\n",
           copy_threads + 1, copy_threads == 0 ? "" : "s", copy_threads);
    printf("# p50/p99 us: one call (p50: median over processes of each one's "
           "median; p99: the worst process's); blocks: blocks per call\n");
    printf("# GB/s = 1e9 bytes/s of all processes together (bytes / wall time "
           "of the phase); GB/s/proc: blocks x block / p50 of one process "
           "(mean over processes)\n");
    printf("# us/block = p50 / blocks; ratio = us/block / memcpy us/block "
           "(targets: get <= 1.2, put <= 1.3; not asserted)\n");
    printf("# every block was verified byte for byte (put, then get of every "
           "process's blocks) before timing and again after\n");
    printf("%-10s %-4s %6s %10s %10s %8s %9s %10s %10s %6s\n", "op", "proc",
           "blocks", "p50 us", "p99 us", "GB/s", "GB/s/proc", "us/block",
           "memcpy us", "ratio");
    for (b = 0; b < mcb_opts.nbatches; b++) {
        for (i = 0; i < MCB_ARRAY_LEN(block_ops); i++) {
            if (mcb_row_all(block_ops[i], mcb_opts.batches[b], &row) == 0) {
                mcb_table_block_row(&row);
            }
            for (p = 0; mcb_opts.per_proc && p < mcb_opts.procs; p++) {
                const mcb_record_t *r =
                    mcb_find(block_ops[i], mcb_opts.batches[b], (int)p);

                if (r != NULL) {
                    mcb_row_of(r, &row);
                    mcb_table_block_row(&row);
                }
            }
        }
    }
    printf("#\n# metadata: exist_batch/query_batch of %u keys of every "
           "process per call, exist = one key's round trip; keys/s of all "
           "processes together, and per process (keys / p50, mean)\n",
           mcb_opts.meta_keys);
    printf("%-12s %-4s %9s %10s %10s %12s %12s\n", "op", "proc", "keys/call",
           "p50 us", "p99 us", "keys/s", "keys/s/proc");
    for (op = MCB_OP_EXIST_BATCH; op < MCB_OPS; op++) {
        if (mcb_row_all((mcb_op_t)op, 0, &row) == 0) {
            mcb_table_meta_row(&row);
        }
        for (p = 0; mcb_opts.per_proc && p < mcb_opts.procs; p++) {
            const mcb_record_t *r = mcb_find((mcb_op_t)op, 0, (int)p);

            if (r != NULL) {
                mcb_row_of(r, &row);
                mcb_table_meta_row(&row);
            }
        }
    }
    fflush(stdout);
}

/* ------------------------------------------------------------- parent */

/* Forks the clients and collects their records until all exited. */
static int mcb_run_clients(const char *url, mcb_meta_t *meta)
{
    bench_child_t children[MCB_MAX_PROCS];
    const uint32_t n = mcb_opts.procs;
    pid_t parent = getpid(), pid;
    struct pollfd pfd;
    unsigned i, left = n;
    int fds[2], status, ret = -1;
    bool eof = false;

    memset(children, 0, sizeof(children));
    if (pipe(fds) < 0) {
        bench_err("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    for (i = 0; i < n; i++) {
        pid = fork();
        if (pid < 0) {
            bench_err("fork: %s", strerror(errno));
            goto out_kill;
        }
        if (pid == 0) {
            uint32_t host = i % mcb_opts.hosts;

            mcb_child_setup(parent);
            if (mcb_opts.netns && bench_netns_enter(host) != 0) {
                _exit(1);
            }
            close(fds[0]);
            if (meta->out_fd >= 0) {
                close(meta->out_fd);
            }
            /* exit(), not _exit(): a sanitizer build checks for leaks */
            exit(mcb_client_main(i, host, url, fds[1]));
        }
        children[i].pid = pid;
    }
    close(fds[1]);
    fds[1] = -1;
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    while (left > 0 || !eof) {
        if (mcb_stop_signal) {
            bench_err("interrupted by signal %d", (int)mcb_stop_signal);
            goto out_kill;
        }
        if (bench_now_ns() > mcb_deadline) {
            bench_err("run took longer than --timeout %u s",
                      mcb_opts.timeout_s);
            goto out_kill;
        }
        mcb_meta_drain(meta);
        if (!eof && poll(&pfd, 1, 100) == 1 && mcb_drain(fds[0]) < 0) {
            eof = true;
        }
        if (eof) {
            bench_sleep_us(10000);
        }
        if (meta->pid > 0 &&
            waitpid(meta->pid, &status, WNOHANG) == meta->pid) {
            bench_err("mmc-meta exited during the run (status 0x%x)", status);
            meta->pid = -1;
            goto out_kill;
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
                    bench_err("client process %u (pid %d) killed by signal %d",
                              i, (int)pid, WTERMSIG(status));
                } else {
                    bench_err("client process %u (pid %d) failed (exit %d)", i,
                              (int)pid, WEXITSTATUS(status));
                }
                goto out_kill;
            }
        }
    }
    ret = 0;
out_kill:
    __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
    if (ret != 0) {
        /* a moment for the others to notice the abort and say why */
        bench_sleep_us(200000);
    }
    bench_kill_reap(children, n);
    close(fds[0]);
    if (fds[1] >= 0) {
        close(fds[1]);
    }
    return ret;
}

/* ------------------------------------------------------------ options */

static void mcb_usage(FILE *out)
{
    fprintf(out,
            "Usage: mmc-bench [options]\n"
            "Measures MemCache put/get of KV-cache blocks (8,994,816 bytes in "
            "122 pieces:\n61 x 128 KiB + 61 x 16 KiB) with "
            "mmc_put_layers_batch/mmc_get_layers_batch\nagainst a memcpy of "
            "the same pieces measured in the same run, and metadata\nrates "
            "(mmc_exist_batch, mmc_query_batch, mmc_exist).  By default it "
            "starts a\ncluster on this host by itself: one mmc-meta and "
            "--procs client processes.\n"
            "\n"
            "  --procs N          client processes (default 4; 2 with "
            "--quick)\n"
            "  --dram SIZE        DRAM each process contributes (default: "
            "enough for the\n"
            "                     working set with room, at least 1G; "
            "suffixes K M G)\n"
            "  --batches LIST     blocks per put/get call, comma separated "
            "(default 1,8,16,32);\n"
            "                     each process owns as many blocks as the "
            "largest\n"
            "  --meta-keys N      keys per exist/query batch (default 1024)\n"
            "  --min-time SEC     time per measurement (default 0.5)\n"
            "  --min-calls N      calls per measurement, at least (default "
            "10)\n"
            "  --quick            --procs 2 --batches 1,4 --meta-keys 256 "
            "--min-time 0.01\n"
            "                     --min-calls 3 (smoke test)\n"
            "  --json             one JSON document with every row on "
            "stdout\n"
            "  --per-proc         table rows of every process too\n"
            "  --netns            cross-host: hosts as network namespaces "
            "(10.213.0.x, veth\n"
            "                     and a bridge), mmc-meta in host 0, "
            "process i in host\n"
            "                     i %% --hosts, fabric.transport = tcp; adds "
            "put_remote and\n"
            "                     get_remote rows (blocks placed on / read "
            "from other hosts);\n"
            "                     needs root (else exit 77)\n"
            "  --hosts N          hosts of --netns (default 2)\n"
            "  --meta URL         use the running meta service at URL "
            "(tcp://host:port)\n"
            "  --meta-bin PATH    the mmc-meta to start (default: next to "
            "this program)\n"
            "  --meta-set K=V     a setting for the started mmc-meta "
            "(repeatable)\n"
            "  --set K=V          a client setting, as in mmc-local.conf "
            "(repeatable; over\n"
            "                     MMC_<KEY> variables), e.g. --set "
            "fabric.copy_threads=0 for\n"
            "                     one copying thread, like the baseline\n"
            "  --timeout SEC      give up after SEC seconds (default 600)\n"
            "  -h, --help         this help\n"
            "\n"
            "Memory: each process maps --dram plus two areas of blocks (the "
            "largest batch\nx 9 MiB each).  Nothing about speed is asserted; "
            "every block is verified.\n");
}

static int mcb_parse_batches(const char *arg)
{
    char buf[256], *save = NULL, *tok;
    unsigned v;

    if (strlen(arg) >= sizeof(buf)) {
        bench_err("--batches: list too long");
        return -1;
    }
    strcpy(buf, arg);
    mcb_opts.nbatches = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (mcb_opts.nbatches == MCB_MAX_BATCHES) {
            bench_err("--batches: at most %d values", MCB_MAX_BATCHES);
            return -1;
        }
        if (bench_parse_uint(tok, "--batches", 1, MCB_MAX_BATCH, &v) != 0) {
            return -1;
        }
        mcb_opts.batches[mcb_opts.nbatches++] = v;
    }
    if (mcb_opts.nbatches == 0) {
        bench_err("--batches: empty list");
        return -1;
    }
    return 0;
}

static int mcb_add_set(const char *arg, const char *what, const char **list,
                       unsigned *n)
{
    const char *eq = strchr(arg, '=');

    if (eq == NULL || eq == arg || strlen(arg) >= 500) {
        bench_err("%s: expected KEY=VALUE, got '%s'", what, arg);
        return -1;
    }
    if (*n == MCB_MAX_SETS) {
        bench_err("%s: at most %d", what, MCB_MAX_SETS);
        return -1;
    }
    list[(*n)++] = arg;
    return 0;
}

/* The mmc-meta next to this program. */
static int mcb_default_meta_bin(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n <= 0) {
        bench_err("readlink /proc/self/exe: %s (use --meta-bin)",
                  strerror(errno));
        return -1;
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash == NULL) {
        return -1;
    }
    slash[1] = '\0';
    if (strlen(self) + sizeof("mmc-meta") > sizeof(mcb_opts.meta_bin)) {
        bench_err("path too long: %s", self);
        return -1;
    }
    memcpy(mcb_opts.meta_bin, self, strlen(self));
    memcpy(mcb_opts.meta_bin + strlen(self), "mmc-meta", sizeof("mmc-meta"));
    return 0;
}

/* The working set of a process with room: its blocks twice (a replacing
 * put allocates before the old version goes; with --netns its peer's blocks
 * too, so four times), the metadata objects (one page or so each) and
 * slack; at least 1 GiB (256 MiB with --quick). */
static uint64_t mcb_default_dram(void)
{
    uint64_t need = (mcb_opts.netns ? 4ull : 2ull) * mcb_opts.bmax * MCB_BLOCK +
                    (uint64_t)mcb_opts.meta_keys * 64 * MCB_KIB + 64 * MCB_MIB;
    uint64_t min = mcb_opts.quick ? 256 * MCB_MIB : MCB_GIB;

    need = (need + 256 * MCB_MIB - 1) / (256 * MCB_MIB) * (256 * MCB_MIB);
    return need > min ? need : min;
}

static int mcb_parse_args(int argc, char **argv)
{
    enum {
        O_PROCS = 256,
        O_DRAM,
        O_BATCHES,
        O_META_KEYS,
        O_MINTIME,
        O_MINCALLS,
        O_QUICK,
        O_JSON,
        O_PERPROC,
        O_NETNS,
        O_HOSTS,
        O_META,
        O_META_BIN,
        O_META_SET,
        O_SET,
        O_TIMEOUT
    };
    static const struct option longopts[] = {
        {"procs", required_argument, NULL, O_PROCS},
        {"dram", required_argument, NULL, O_DRAM},
        {"batches", required_argument, NULL, O_BATCHES},
        {"meta-keys", required_argument, NULL, O_META_KEYS},
        {"min-time", required_argument, NULL, O_MINTIME},
        {"min-calls", required_argument, NULL, O_MINCALLS},
        {"quick", no_argument, NULL, O_QUICK},
        {"json", no_argument, NULL, O_JSON},
        {"per-proc", no_argument, NULL, O_PERPROC},
        {"netns", no_argument, NULL, O_NETNS},
        {"hosts", required_argument, NULL, O_HOSTS},
        {"meta", required_argument, NULL, O_META},
        {"meta-bin", required_argument, NULL, O_META_BIN},
        {"meta-set", required_argument, NULL, O_META_SET},
        {"set", required_argument, NULL, O_SET},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool procs = false, batches = false, meta_keys = false, min_time = false;
    bool min_calls = false, hosts = false;
    unsigned v, i;
    char *end;
    int opt;

    mcb_opts.procs = 4;
    mcb_opts.hosts = 1;
    mcb_opts.min_time = 0.5;
    mcb_opts.min_calls = 10;
    mcb_opts.meta_keys = 1024;
    mcb_opts.timeout_s = 600;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_PROCS:
            if (bench_parse_uint(optarg, "--procs", 1, MCB_MAX_PROCS, &v) !=
                0) {
                return -1;
            }
            mcb_opts.procs = v;
            procs = true;
            break;
        case O_DRAM:
            if (bench_parse_size(optarg, &mcb_opts.dram) != 0) {
                bench_err("--dram: bad size '%s'", optarg);
                return -1;
            }
            break;
        case O_BATCHES:
            if (mcb_parse_batches(optarg) != 0) {
                return -1;
            }
            batches = true;
            break;
        case O_META_KEYS:
            if (bench_parse_uint(optarg, "--meta-keys", 1, MMC_BATCH_MAX, &v) !=
                0) {
                return -1;
            }
            mcb_opts.meta_keys = v;
            meta_keys = true;
            break;
        case O_MINTIME:
            mcb_opts.min_time = strtod(optarg, &end);
            if (*end != '\0' || end == optarg || !(mcb_opts.min_time >= 0) ||
                mcb_opts.min_time > 60) {
                bench_err("--min-time: expected seconds in 0..60, got '%s'",
                          optarg);
                return -1;
            }
            min_time = true;
            break;
        case O_MINCALLS:
            if (bench_parse_uint(optarg, "--min-calls", 1, MCB_MAX_CALLS, &v) !=
                0) {
                return -1;
            }
            mcb_opts.min_calls = v;
            min_calls = true;
            break;
        case O_QUICK:
            mcb_opts.quick = true;
            break;
        case O_JSON:
            mcb_opts.json = true;
            break;
        case O_PERPROC:
            mcb_opts.per_proc = true;
            break;
        case O_NETNS:
            mcb_opts.netns = true;
            break;
        case O_HOSTS:
            if (bench_parse_uint(optarg, "--hosts", 1, BENCH_NETNS_MAX_HOSTS,
                                 &v) != 0) {
                return -1;
            }
            mcb_opts.hosts = v;
            hosts = true;
            break;
        case O_META:
            mcb_opts.meta_url = optarg;
            break;
        case O_META_BIN:
            if (strlen(optarg) >= sizeof(mcb_opts.meta_bin)) {
                bench_err("--meta-bin: path too long");
                return -1;
            }
            snprintf(mcb_opts.meta_bin, sizeof(mcb_opts.meta_bin), "%s",
                     optarg);
            break;
        case O_META_SET:
            if (mcb_add_set(optarg, "--meta-set", mcb_opts.meta_sets,
                            &mcb_opts.nmeta_sets) != 0) {
                return -1;
            }
            break;
        case O_SET:
            if (mcb_add_set(optarg, "--set", mcb_opts.client_sets,
                            &mcb_opts.nclient_sets) != 0) {
                return -1;
            }
            break;
        case O_TIMEOUT:
            if (bench_parse_uint(optarg, "--timeout", 1, 86400, &v) != 0) {
                return -1;
            }
            mcb_opts.timeout_s = v;
            break;
        case 'h':
            mcb_usage(stdout);
            exit(0);
        default:
            mcb_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        bench_err("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (hosts && !mcb_opts.netns) {
        bench_err("--hosts goes with --netns");
        return -1;
    }
    if (mcb_opts.netns && mcb_opts.meta_url != NULL) {
        bench_err("--netns starts its own mmc-meta: it does not go with "
                  "--meta");
        return -1;
    }
    if (mcb_opts.meta_url != NULL &&
        (mcb_opts.nmeta_sets > 0 || mcb_opts.meta_bin[0] != '\0')) {
        bench_err("--meta-set and --meta-bin are for a started mmc-meta, not "
                  "--meta");
        return -1;
    }
    if (mcb_opts.quick) {
        if (!procs) {
            mcb_opts.procs = 2;
        }
        if (!batches) {
            mcb_opts.batches[0] = 1;
            mcb_opts.batches[1] = 4;
            mcb_opts.nbatches = 2;
        }
        if (!meta_keys) {
            mcb_opts.meta_keys = 256;
        }
        if (!min_time) {
            mcb_opts.min_time = 0.01;
        }
        if (!min_calls) {
            mcb_opts.min_calls = 3;
        }
    }
    if (mcb_opts.nbatches == 0) {
        static const uint32_t def[] = {1, 8, 16, 32};

        for (i = 0; i < MCB_ARRAY_LEN(def); i++) {
            mcb_opts.batches[mcb_opts.nbatches++] = def[i];
        }
    }
    if (mcb_opts.netns && !hosts) {
        mcb_opts.hosts = 2;
    }
    if (mcb_opts.netns && mcb_opts.procs < mcb_opts.hosts) {
        bench_err("--procs %u leaves hosts empty (--hosts %u)", mcb_opts.procs,
                  mcb_opts.hosts);
        return -1;
    }
    for (i = 0; i < mcb_opts.nbatches; i++) {
        if (mcb_opts.batches[i] > mcb_opts.bmax) {
            mcb_opts.bmax = mcb_opts.batches[i];
        }
    }
    if (mcb_opts.dram == 0) {
        mcb_opts.dram = mcb_default_dram();
    }
    if (mcb_opts.meta_url == NULL && mcb_opts.meta_bin[0] == '\0' &&
        mcb_default_meta_bin() != 0) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    mcb_meta_t meta;
    char url[160];
    const char *addr = "127.0.0.1";
    int ret = 1;

    bench_set_tool("mmc-bench");
    if (mcb_parse_args(argc, argv) != 0) {
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&meta, 0, sizeof(meta));
    meta.pid = -1;
    meta.out_fd = -1;
    if (mcb_opts.netns && geteuid() != 0) {
        bench_err("--netns makes network namespaces and needs root; skipped");
        return 77;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mcb_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    snprintf(mcb_run_id, sizeof(mcb_run_id), "%d", (int)getpid());
    mcb_deadline =
        bench_now_ns() + (uint64_t)mcb_opts.timeout_s * 1000000000ull;
    mcb_sh = mmap(NULL, sizeof(*mcb_sh), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mcb_sh == MAP_FAILED) {
        bench_err("mmap: %s", strerror(errno));
        return 1;
    }
    memset(mcb_sh, 0, sizeof(*mcb_sh));
    if (mcb_opts.netns) {
        if (bench_netns_setup("mmc-bench", MCB_NETNS_BASE, mcb_opts.hosts) !=
            0) {
            bench_err("cannot create the network namespaces for --netns "
                      "(iproute2 needed)");
            goto out_unmap;
        }
        addr = bench_netns_addr(0);
    }
    if (mcb_opts.meta_url != NULL) {
        snprintf(url, sizeof(url), "%s", mcb_opts.meta_url);
    } else {
        if (mcb_meta_start(&meta, addr) != 0) {
            goto out_netns;
        }
        snprintf(url, sizeof(url), "tcp://%s", meta.rpc);
    }
    if (mcb_run_clients(url, &meta) != 0) {
        bench_err("FAILED");
        goto out_meta;
    }
    mcb_print(url, mcb_opts.meta_url == NULL);
    ret = 0;
out_meta:
    if (mcb_meta_stop(&meta) != 0) {
        bench_err("FAILED: mmc-meta did not stop cleanly");
        ret = 1;
    }
out_netns:
    bench_netns_cleanup();
out_unmap:
    munmap(mcb_sh, sizeof(*mcb_sh));
    return ret;
}
