/*
 * The benchmarks' memcpy baseline (mf-bench, mmc-bench): a piece list
 * copied by `nthreads` threads, the caller and persistent helpers, each
 * taking an equal share of the bytes, as the library splits a copy over
 * its copy threads.  While a baseline is measured the helpers spin on a
 * generation counter (the fastest hand-off there is, so the baseline is
 * what plain memcpy can do); otherwise they sleep, so they do not take CPU
 * from the library's copy threads.
 *
 * Invariants: thread i copies bytes [total * i / active, total * (i + 1) /
 * active) of the piece list, so the shares cover it exactly once; a run
 * returns only after every helper finished its share.
 */
#ifndef BENCH_MCPY_H
#define BENCH_MCPY_H

#include <memfabric/memfabric.h>

#include "bench_util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MCPY_MAX_THREADS 65

typedef struct bench_mcpy bench_mcpy_t;

typedef struct bench_mcpy_helper {
    bench_mcpy_t *mc;
    unsigned index;
    pthread_t tid;
} bench_mcpy_helper_t;

struct bench_mcpy {
    bench_mcpy_helper_t helpers[BENCH_MCPY_MAX_THREADS];
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
};

/* Starts nthreads - 1 helpers (nthreads <= BENCH_MCPY_MAX_THREADS).  0, or
 * -1 (logged; call bench_mcpy_fini). */
int bench_mcpy_init(bench_mcpy_t *mc, unsigned nthreads);
void bench_mcpy_fini(bench_mcpy_t *mc);

/* Helpers spin (hot) only while a baseline is measured. */
void bench_mcpy_hot(bench_mcpy_t *mc, bool hot);

/* Copies the pieces (total bytes) with `active` (1..nthreads) threads. */
void bench_mcpy_run(bench_mcpy_t *mc, const mf_copy_piece_t *pieces,
                    size_t count, uint64_t total, unsigned active);

#endif
