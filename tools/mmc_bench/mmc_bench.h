/*
 * mmc-bench's parts, shared between its files: the options (main.c), the
 * processes of a run (cluster.c: the mmc-meta daemon and the clients), a
 * client's set-up (client.c), the calls it times (ops.c), its measurement
 * loops (run.c) and the report (report.c).  main.c says what the tool
 * measures.
 *
 * Invariants: mcb_opts, mcb_deadline and mcb_run_id are set once, by
 * main.c, before any process is forked, and only read after; mcb_sh is
 * mapped shared before any fork, so every client sees the same one.
 */
#ifndef MMC_BENCH_H
#define MMC_BENCH_H

#include <memcache/mmc.h>

#include "bench_mcpy.h"
#include "bench_tcp.h"
#include "bench_util.h"
#include "tk_cuda.h"
#include "tk_meta.h"
#include "tk_netns.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MCB_LAYERS       61
#define MCB_PIECES       (2 * MCB_LAYERS)
#define MCB_BIG          (128 * BENCH_KIB)
#define MCB_SMALL        (16 * BENCH_KIB)
#define MCB_BLOCK        (MCB_LAYERS * (MCB_BIG + MCB_SMALL)) /* 8994816 */
#define MCB_GAP          (4 * BENCH_KIB) /* between pieces: nothing coalesces */
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
#define MCB_VERIFY_BATCH ((size_t)8) /* blocks per get when verifying */

typedef enum mcb_op {
    MCB_OP_MEMCPY,    /* the baseline of host blocks */
    MCB_OP_CUDA_D2H,  /* --device: the baseline of put (device -> pinned) */
    MCB_OP_CUDA_H2D,  /* --device: the baseline of get (pinned -> device) */
    MCB_OP_TCP_WRITE, /* --netns: the baseline of put_remote */
    MCB_OP_TCP_READ,  /* --netns: the baseline of get_remote */
    MCB_OP_PUT,
    MCB_OP_GET,
    MCB_OP_PUT_REMOTE, /* --netns: to a rank on another host */
    MCB_OP_GET_REMOTE, /* --netns: blocks of processes on other hosts */
    MCB_OP_EXIST_BATCH,
    MCB_OP_QUERY_BATCH,
    MCB_OP_TCP_PING, /* the baseline of exist */
    MCB_OP_EXIST,
    MCB_OPS
} mcb_op_t;

extern const char *const mcb_op_names[MCB_OPS];

/* Ops that move blocks (the rest are metadata calls). */
static inline bool mcb_op_blocks(mcb_op_t op)
{
    return op <= MCB_OP_GET_REMOTE;
}

/* The baseline ops. */
static inline bool mcb_op_base(mcb_op_t op)
{
    return op <= MCB_OP_TCP_READ || op == MCB_OP_TCP_PING;
}

typedef struct mcb_opts {
    uint32_t procs;
    uint32_t hosts;
    uint32_t batches[MCB_MAX_BATCHES];
    unsigned nbatches;
    uint32_t bmax;      /* largest batch */
    uint32_t blocks;    /* blocks each client owns: bmax or more, so that
                           its blocks are twice the last-level cache (a
                           working set from DRAM; not with --quick) */
    uint64_t llc;       /* bytes of the last-level cache */
    uint64_t dram;      /* per client; 0 = sized from the working set */
    double min_time;    /* seconds per measurement */
    unsigned min_calls; /* calls per measurement, at least */
    unsigned rounds;    /* each measurement in turns with its kind */
    unsigned meta_keys; /* keys of one exist/query batch */
    unsigned timeout_s;
    bool json;
    bool netns;
    char transport[16]; /* fabric.transport of the clients */
    bool quick;
    bool per_proc;
    bool device;          /* blocks in device memory */
    const char *meta_url; /* a running meta service */
    char meta_bin[PATH_MAX];
    const char *meta_sets[MCB_MAX_SETS];
    unsigned nmeta_sets;
    const char *client_sets[MCB_MAX_SETS];
    unsigned nclient_sets;
    unsigned ncpu;    /* cores this machine has online */
    bool sized_procs; /* --procs left to the cores */
    bool sized_copy;  /* fabric.copy_threads left to the cores */
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
    uint32_t lanes;        /* its tcp.lanes */
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
    uint32_t ranks[MCB_MAX_PROCS];     /* each client's rank, once created */
    char tcp_where[MCB_MAX_PROCS][48]; /* its raw TCP server's address */
} mcb_shared_t;

extern mcb_opts_t mcb_opts;
extern mcb_shared_t *mcb_sh;
extern tk_netns_t mcb_lab;    /* the hosts of --netns */
extern uint64_t mcb_deadline; /* bench_now_ns() past which the run fails */
extern char mcb_run_id[32];   /* in every key: runs never share a key */

/* The pattern seed of block k of client owner. */
static inline uint64_t mcb_block_seed(uint32_t owner, uint32_t k)
{
    return ((uint64_t)(owner + 1) << 24) | (uint64_t)(k + 1);
}

/* Bytes of piece i of a block: the big layers, then the small ones. */
static inline size_t mcb_piece_size(size_t i)
{
    return i < MCB_LAYERS ? MCB_BIG : MCB_SMALL;
}

/* --------------------------------------------------------------- client */

/* One client process: its mmc_t, buffers, piece lists and key names. */
typedef struct mcb_client {
    uint32_t proc;
    uint32_t host;
    uint32_t rank;
    uint32_t peer;      /* --netns: the client on another host it puts to */
    uint32_t peer_rank; /* its rank */
    uint32_t copy_threads;
    uint32_t lanes; /* the client's tcp.lanes: connections of tcp_cli */
    int out_fd;
    mmc_t *mmc;
    uint8_t *src;  /* the source layers of its blocks */
    uint8_t *dst;  /* as many destination layers */
    uint64_t area; /* bytes of src, of dst */
    mmc_iov_t (*src_iov)[MCB_PIECES];
    mmc_iov_t (*dst_iov)[MCB_PIECES];
    /* --device: src and dst are device memory; pin is pinned host memory
     * laid out like them, for the driver's baseline and to fill and check
     * the device blocks; stream runs the baseline's copies */
    uint8_t *pin;
    mmc_iov_t (*pin_iov)[MCB_PIECES];
    tk_cuda_stream_t *stream;
    /* the memcpy baseline: as many threads as the library copies with,
     * and the piece list of a call */
    bench_mcpy_t mcpy;
    mf_copy_piece_t *mcpy_pieces;
    char **own_keys;   /* blocks: this client's blocks */
    char **all_keys;   /* procs * blocks, owners interleaved */
    char **meta_keys;  /* meta_keys: this client's objects */
    char **meta_mixed; /* meta_keys: objects of every client */
    /* the raw TCP baselines: a server on this client's host serving
     * tcp_buf (blocks blocks with --netns); tcp_cli, lanes connections to
     * the peer's server (--netns); ping_fd, one to client 0's, on the
     * meta service's host */
    bench_tcp_server_t tcp_srv;
    bench_tcp_client_t tcp_cli;
    uint8_t *tcp_buf;
    uint64_t tcp_size;
    int ping_fd;
    char **rput_keys; /* --netns, blocks: this client's blocks at peer */
    char **rget_keys; /* --netns, nrget: blocks of clients elsewhere */
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
    /* per op, over the rounds of a measurement: MCB_MAX_CALLS call times
     * (ns; allocated at the op's first round), how many, and the time
     * the rounds took */
    uint64_t *lat[MCB_OPS];
    uint64_t nlat[MCB_OPS];
    uint64_t active_ns[MCB_OPS];
    uint64_t t_first[MCB_OPS]; /* the first round's start */
} mcb_client_t;

/* A client process: returns its exit code (client.c). */
int mcb_client_main(uint32_t proc, uint32_t host, const char *url, int out_fd);

/* ------------------------------------------------------------------ ops */

/* Whether this run measures op (the baselines of its kind of memory, the
 * remote ops with --netns). */
bool mcb_op_measured(mcb_op_t op);

/* The baseline of a block op: memcpy, or with --device the driver's copy
 * in the same direction (put: device to host, get: host to device). */
mcb_op_t mcb_op_base_of(mcb_op_t op);

/* Call j (0: the warm-up) of an op, b blocks per call for block ops.
 * 0, or -1 (logged). */
typedef int (*mcb_call_fn)(mcb_client_t *c, uint32_t b, uint64_t j);

extern const mcb_call_fn mcb_op_fns[MCB_OPS];

/* Names the first failed item of a batch call (c->keys, c->results);
 * returns -1. */
int mcb_batch_failed(mcb_client_t *c, const char *what, mmc_status_t st,
                     size_t count);

/* Gets the b <= blocks blocks keys[(first + i) % nkeys] into the
 * destination blocks (j * b + i) % blocks (j = 0: dst[0..b)); a failure
 * is logged after "client <proc>: <when>:" when when is not NULL.  0, or
 * -1. */
int mcb_get_blocks(mcb_client_t *c, char *const *keys, size_t nkeys,
                   uint64_t first, size_t b, uint64_t j, const char *when);

int mcb_do_put(mcb_client_t *c, uint32_t b, uint64_t j);
int mcb_do_put_remote(mcb_client_t *c, uint32_t b, uint64_t j);
int mcb_do_exist_batch(mcb_client_t *c, uint32_t b, uint64_t j);
int mcb_do_query_batch(mcb_client_t *c, uint32_t b, uint64_t j);

/* The raw TCP server of this client (tcp_where[proc]) and its connections
 * to the others' (after a barrier): 0, or -1 (logged). */
int mcb_tcp_serve(mcb_client_t *c, const char *addr);
int mcb_tcp_connect(mcb_client_t *c);

/* ------------------------------------------------------------------ run */

/* Waits for every client (and resets the measurement counter).  0, or -1
 * when the parent aborted or the deadline passed. */
int mcb_barrier(void);

/* Puts, verifies, measures every op and verifies again.  0, or -1
 * (logged). */
int mcb_client_run(mcb_client_t *c);

/* -------------------------------------------------------------- cluster */

/* Starts the mmc-meta of the run (--meta-bin, --meta-set) with free
 * ports, bound to addr, inside host 0 with --netns; waits for its ready
 * line.  0, or -1 (logged, nothing left running). */
int mcb_meta_start(tk_meta_t *m, const char *addr);

/* SIGTERM, then SIGKILL after MCB_STOP_MS; 0 if none runs (none was
 * started, or it exited during the run) or it exited with 0, else -1
 * (logged). */
int mcb_meta_stop(tk_meta_t *m);

/* Forks the clients and collects their records until all exited.  0, or
 * -1 (logged). */
int mcb_run_clients(const char *url, tk_meta_t *meta);

/* --------------------------------------------------------------- report */

/* Keeps a client's record (at most MCB_MAX_RECS). */
void mcb_report_add(const mcb_record_t *r);

/* Prints the table, or the JSON document, of every record kept. */
void mcb_report_print(const char *url, bool spawned);

#endif /* MMC_BENCH_H */
