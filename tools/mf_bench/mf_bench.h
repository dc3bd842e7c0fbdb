/*
 * mf-bench's parts, shared between its files: the options (main.c), the
 * pool of processes it runs (pool.c), rank 0's measurement and the
 * driver's baseline of device directions (run.c) and the report
 * (report.c); the memcpy baseline is tools/common's (bench_mcpy).  main.c says
 * what the tool measures.
 *
 * Invariants: mb_opts is set once, by main.c, before any process is
 * forked, and only read after; a result travels from rank 0 to the parent
 * as one mb_record_t.
 */
#ifndef MF_BENCH_H
#define MF_BENCH_H

#include <memfabric/memfabric.h>

#include "bench_mcpy.h"
#include "bench_tcp.h"
#include "bench_util.h"
#include "tk_cuda.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MB_MAX_SIZES    32
#define MB_MAX_THREADS  BENCH_MCPY_MAX_THREADS
#define MB_MAX_RANKS    64
#define MB_KV_LAYERS    61
#define MB_KV_PIECES    (2 * MB_KV_LAYERS)
#define MB_KV_BIG       (128 * BENCH_KIB)
#define MB_KV_SMALL     (16 * BENCH_KIB)
#define MB_KV_TOTAL     (MB_KV_LAYERS * (MB_KV_BIG + MB_KV_SMALL))
#define MB_STAGE        (8 * BENCH_MIB)
#define MB_SAMPLE_NS    1000000ull /* one timed sample lasts >= 1 ms */
#define MB_MIN_SAMPLES  5
#define MB_MAX_SAMPLES  2000
#define MB_JOIN_WAIT_MS 60000

/* The config store reports its port within this, and stops within this
 * after SIGTERM (else it is killed). */
#define MB_STORE_MS 30000

typedef enum mb_layout { MB_SINGLE, MB_BATCH, MB_KV, MB_LAYOUTS } mb_layout_t;

/* The directions of mf_copy_dir_t, with its values: the host ones first,
 * then those with device memory on one side or both. */
typedef enum mb_dir {
    MB_LH2GH = MF_COPY_LH2GH,
    MB_GH2LH = MF_COPY_GH2LH,
    MB_GH2GH = MF_COPY_GH2GH,
    MB_LD2GH = MF_COPY_LD2GH,
    MB_GH2LD = MF_COPY_GH2LD,
    MB_LH2GD = MF_COPY_LH2GD,
    MB_GD2LH = MF_COPY_GD2LH,
    MB_LD2GD = MF_COPY_LD2GD,
    MB_GD2LD = MF_COPY_GD2LD,
    MB_GH2GD = MF_COPY_GH2GD,
    MB_GD2GH = MF_COPY_GD2GH,
    MB_GD2GD = MF_COPY_GD2GD,
    MB_DIRS
} mb_dir_t;

#define MB_HOST_DIRS 3 /* MB_LH2GH .. MB_GH2GH */

/* Where the two sides of a direction are. */
typedef struct mb_dir_info {
    const char *name;
    bool src_global; /* a GVA (else local memory of rank 0) */
    bool src_dev;    /* device memory (else host) */
    bool dst_global;
    bool dst_dev;
} mb_dir_info_t;

/* What a direction's speed is compared with, measured in the same run. */
typedef enum mb_base {
    MB_BASE_NONE,      /* nothing (tcp, between two other processes) */
    MB_BASE_MEMCPY,    /* memcpy between private buffers (host) */
    MB_BASE_H2D,       /* the driver: pinned host -> device */
    MB_BASE_D2H,       /* the driver: device -> pinned host */
    MB_BASE_D2D,       /* the driver: device -> device */
    MB_BASE_TCP_WRITE, /* raw TCP stream, rank 0 -> rank 1 */
    MB_BASE_TCP_READ,  /* raw TCP stream, rank 1 -> rank 0 */
    MB_BASES
} mb_base_t;

extern const char *const mb_layout_names[MB_LAYOUTS];
extern const mb_dir_info_t mb_dirs[MB_DIRS];
extern const char *const mb_base_names[MB_BASES];

static inline bool mb_dir_device(unsigned dir)
{
    return dir >= MB_HOST_DIRS;
}

/* The baseline of a direction under mb_opts. */
mb_base_t mb_base_of(mb_dir_t dir);

typedef struct mb_opts {
    uint32_t ranks;
    uint32_t threads[8];
    unsigned nthreads;
    uint64_t sizes[MB_MAX_SIZES];
    unsigned nsizes;
    uint64_t max_size;
    uint64_t ws;  /* bytes each end of a copy rotates through (0: none) */
    uint64_t llc; /* the last-level cache's bytes */
    uint32_t pieces;
    bool layouts[MB_LAYOUTS];
    bool dirs[MB_DIRS];
    bool device;     /* a device direction is measured: device segments */
    unsigned iters;  /* 0: as many as fill min_time */
    double min_time; /* seconds per measurement */
    char transport[16];
    bool tcp;   /* transport tcp: lanes (tcp.lanes) */
    bool wire;  /* transport tcp or ucx: raw TCP stream baseline */
    bool netns; /* ranks in two network namespaces */
    bool trans; /* --api trans: the copies are TRANS transfers */
    uint32_t lanes[8];
    unsigned nlanes;
    bool json;
    const char *store_url; /* external pool */
    uint32_t world;
    unsigned timeout_s;
} mb_opts_t;

extern mb_opts_t mb_opts;

/* What rank 0 sends to the parent: one header, then results. */
typedef struct mb_record {
    uint32_t type; /* MB_REC_* */
    uint32_t world;
    uint64_t split_min;
    uint32_t layout;
    uint32_t dir;
    uint32_t base; /* mb_base_t */
    uint64_t size;
    uint32_t pieces;
    uint32_t threads;
    uint32_t lanes; /* tcp lanes; 0 for shm */
    uint32_t samples;
    uint64_t span; /* bytes a contiguous end rotates through */
    double gbps;
    double base_gbps;
} mb_record_t;

enum { MB_REC_HEADER = 1, MB_REC_RESULT = 2 };

/* ------------------------------------------------------ rank 0's work */

/* Rank 0's local memory of a piece list: private host memory (host
 * directions), pinned host memory (the host side of device directions, as
 * in the driver's baseline) and device memory. */
typedef enum mb_mem {
    MB_MEM_HOST,
    MB_MEM_PINNED,
    MB_MEM_DEV,
    MB_MEMS
} mb_mem_t;

typedef struct mb_bench {
    mf_bm_t *bm;
    mf_trans_t *trans; /* --api trans: rank 0's instance */
    mf_trans_piece_t *tpieces;
    uint32_t world;
    uint32_t threads;   /* total threads doing a copy */
    uint64_t split_min; /* the library's copy_split_min */
    /* local memory of each kind: source side, destination side (also the
     * baseline's target), the separate pieces of the KV layout; pinned
     * memory has one buffer for both sides (NULL: not needed) */
    uint8_t *src[MB_MEMS];
    uint8_t *dst[MB_MEMS];
    uint8_t *kv[MB_MEMS][MB_KV_PIECES];
    uint8_t *stage; /* to fill and read back remote and device memory */
    uint64_t r1[2]; /* GVA of rank 1's and rank 2's segments: host, device */
    uint64_t r2[2];
    tk_cuda_stream_t *streams[MB_MAX_THREADS]; /* the driver's baseline */
    uint64_t seed;
    mf_copy_piece_t *pieces; /* slot 0 of the piece list: verified */
    mf_copy_piece_t *rot;    /* the piece list of the slot being timed */
    mf_status_t *results;
    size_t max_pieces;
    bench_mcpy_t mcpy;
    uint32_t lanes;          /* tcp lanes, 0 for shm */
    bench_tcp_client_t tcpb; /* raw TCP baseline connections (tcp) */
    int out_fd;              /* results to the parent, or -1 to print */
} mb_bench_t;

/* The largest buffer a measurement needs: of every size and the KV block,
 * with room for the rotation through the working set (mb_opts.ws). */
uint64_t mb_max_size(void);

/* Measures every configuration of mb_opts, emitting the header and a
 * record per result.  0, or -1 (logged); call mb_bench_free either way. */
int mb_bench_run(mb_bench_t *b, uint64_t max);
void mb_bench_free(mb_bench_t *b, uint64_t max);

/* ----------------------------------------------------------------- pool */

/* --netns: makes the two hosts; rank 1's baseline listens in the second,
 * the store in the first.  0, or -1 (logged). */
int mb_pool_netns_setup(void);

/* One rank of a pool; rank 0 measures.  Returns the exit code. */
int mb_rank_main(const char *url, uint32_t world, uint32_t threads,
                 uint32_t lanes, uint32_t want_rank, int out_fd);

/* One pool with `threads` threads per copy: store + ranks, until done;
 * results printed as they come.  0, or -1 (logged). */
int mb_pool_round(uint32_t threads, uint32_t lanes, bool *header_done,
                  uint64_t deadline);

/* --------------------------------------------------------------- report */

void mb_report_header(uint32_t world, uint64_t split_min);
void mb_report_result(const mb_record_t *r);

/* Prints r (out_fd < 0) or sends it to the parent.  0, or -1 (logged). */
int mb_report_emit(int out_fd, const mb_record_t *r);

#endif /* MF_BENCH_H */
