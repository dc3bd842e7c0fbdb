/*
 * mmc-trace-replay: a trace of cache requests replayed against the meta
 * service's own eviction (its state machine, one segment of the pool's
 * size, in this process) under each policy, and against Belady's optimum.
 *
 * A request is a get (read through: a hit, or a miss that puts the object)
 * or a put (writes the object when absent: a new KV block, not a miss).
 * trace.c reads and writes traces as text and generates the shapes below;
 * replay.c replays them.
 */
#ifndef MMC_TOOLS_TRACE_REPLAY_H
#define MMC_TOOLS_TRACE_REPLAY_H

#include "util/containers.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { RP_GET = 0, RP_PUT = 1 };

typedef struct rp_req {
    uint32_t key; /* index into names */
    uint32_t op;  /* RP_GET, RP_PUT */
    uint64_t size;
} rp_req_t;

typedef struct rp_trace {
    rp_req_t *reqs;
    size_t n, cap;
    char **names; /* by key index */
    uint32_t nkeys, names_cap;
    mf_hmap_t ids; /* name -> key index + 1 */
    uint64_t max_size;
    uint64_t gets;
    char desc[256];
} rp_trace_t;

/* The generated shapes and their knobs. */
typedef struct rp_gen {
    const char *shape; /* prefix, zipf, chat */
    uint32_t prefixes; /* prefix: prefixes asked in turn ... */
    uint32_t rounds;   /* ... this many times each */
    uint32_t blocks;   /* prefix: KV blocks per prefix */
    uint32_t keys;     /* zipf: distinct keys */
    uint32_t requests; /* zipf, chat: requests */
    double alpha;      /* zipf: skew */
    uint32_t active;   /* chat: conversations going on at once */
    uint32_t turns;    /* chat: turns of each */
    uint64_t size;     /* bytes per object */
    uint64_t seed;
} rp_gen_t;

void rp_trace_init(rp_trace_t *t);
void rp_trace_free(rp_trace_t *t);
/* Appends a request for key (interned); false when out of memory. */
bool rp_trace_add(rp_trace_t *t, const char *key, uint32_t op, uint64_t size);
/* Reads a trace file ("-": stdin); false with a message on bad input. */
bool rp_trace_read(rp_trace_t *t, const char *path);
bool rp_trace_write(const rp_trace_t *t, const char *path);
bool rp_trace_generate(rp_trace_t *t, const rp_gen_t *g);

typedef struct rp_result {
    uint64_t hits, gets, puts;
    uint64_t evictions;
    uint64_t uncached; /* objects that never fit */
} rp_result_t;

/* Replays t on a pool of pool_bytes under policy (mmc_evict_policy_t);
 * high and low: the background watermarks (high 100: puts evict). */
bool rp_replay_meta(const rp_trace_t *t, uint64_t pool_bytes, uint32_t policy,
                    uint32_t small_pct, uint32_t high, uint32_t low,
                    rp_result_t *res);
/* Belady's optimum: on a miss the object goes in and the resident ones
 * asked for again furthest in the future (or never) leave until it fits.
 * Exact for objects of one size; for mixed sizes a bound that is good,
 * not proven optimal. */
bool rp_replay_belady(const rp_trace_t *t, uint64_t pool_bytes,
                      rp_result_t *res);

/* Sizes as the meta service rounds them (4 KiB pages). */
#define RP_ALIGN     4096ull
#define RP_ROUND(_s) (((_s) + RP_ALIGN - 1) & ~(RP_ALIGN - 1))

#endif
