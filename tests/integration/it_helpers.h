/*
 * Helpers of the multi-process BM integration tests, over the test kit
 * (tests/common: child processes and their checks, pattern, log capture).
 *
 * Process model: the test process (the "parent") never calls into the
 * library itself, so it stays single-threaded and may fork at any time.
 * Everything that needs the library runs in forked children:
 *   - it_store_start() forks a process that runs an embedded config store
 *     (mf_store_server_start on 127.0.0.1, port 0) until it_store_stop();
 *   - tk_proc_spawn() forks a rank process that runs a function and exits
 *     with its return value (0 = success).
 *
 * Every program runs its tests with tk_group_run() (tk_group.h): the test
 * process leaves no descriptor open and no memory in use.
 *
 * Inside children, use the TK_CHECK family (tk_proc.h), never cmocka
 * asserts: a failed cmocka assert would longjmp into the parent's test
 * runner copy.
 */
#ifndef MF_IT_HELPERS_H
#define MF_IT_HELPERS_H

#include "tk_group.h"
#include "tk_log.h"
#include "tk_netns.h"
#include "tk_pattern.h"
#include "tk_proc.h"

#include <memfabric/memfabric.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ------------------------------------------------------- config store */

typedef struct it_store {
    pid_t pid;
    uint16_t port;
    char url[64]; /* "tcp://127.0.0.1:<port>" */
} it_store_t;

/* Forks the store process and waits until it listens.  0 or -1. */
int it_store_start(it_store_t *store);
/* it_store_start(), inside host of net, listening on the host's address. */
int it_store_start_host(const tk_netns_t *net, int host, it_store_t *store);
/* SIGTERM, then waits; returns the store process's exit code (0 = clean). */
int it_store_stop(it_store_t *store);

/* ---------------------------------------------------- pools in a rank */

typedef struct it_pool {
    mf_store_t *store; /* own store session, for barriers and keys */
    mf_bm_t *bm;
    uint32_t rank;
    uint32_t world;
    uint64_t seg_size; /* local_dram_size */
    uint64_t stride;   /* max_dram_per_rank */
    bool inited;       /* mf_init + mf_bm_init done */
    bool joined;
} it_pool_t;

/* Default BM config for tests: defaults with generous timeouts; in an
 * AddressSanitizer build the window moves out of ASan's shadow memory. */
void it_bm_config(mf_bm_config_t *cfg);

/* Whether this build of the library has the transport name. */
bool it_has_transport(const char *name);

/* Whether the copies of this run go over UCX's software RMA (the ctest
 * variants that run ucx without RDMA set IT_UCX_SW_RMA): UCX then aborts
 * a process that answers a copy for a peer that has died, so a test
 * kills a process only while it copies nothing. */
bool it_ucx_sw_rma(void);

/*
 * In a child: mf_init, store session, mf_bm_init (rank may be
 * MF_RANK_AUTO; MF_ERR_BUSY is retried up to 20 s for a rank that is
 * being freed), mf_bm_create (pool 0) and, if join, mf_bm_join.  cfg may
 * be NULL.  Returns MF_OK or the failing status (logged).
 */
mf_status_t it_pool_open(it_pool_t *pool, const char *url, uint32_t world,
                         uint32_t rank, uint64_t seg_size, uint64_t stride,
                         const mf_bm_config_t *cfg, bool join);
/* it_pool_open with device memory: hbm_size bytes of this rank's device
 * segment in a device window of hbm_stride bytes per rank. */
mf_status_t it_pool_open_hbm(it_pool_t *pool, const char *url, uint32_t world,
                             uint32_t rank, uint64_t seg_size, uint64_t stride,
                             uint64_t hbm_size, uint64_t hbm_stride,
                             const mf_bm_config_t *cfg, bool join);
/* Leaves (if joined), destroys, uninits; safe on a partly opened pool. */
void it_pool_close(it_pool_t *pool);

/* mf_store_barrier with a generous timeout (60 s). */
mf_status_t it_barrier(it_pool_t *pool, const char *name, uint32_t count);

/* Waits (up to timeout_ms) until mf_bm_rank_joined(rank) == joined. */
mf_status_t it_wait_rank_joined(it_pool_t *pool, uint32_t rank, bool joined,
                                unsigned timeout_ms);
/* Waits until every rank of the world is joined. */
mf_status_t it_wait_all_joined(it_pool_t *pool, unsigned timeout_ms);

/* GVA of byte `offset` of rank's host segment. */
uint64_t it_gva(it_pool_t *pool, uint32_t rank, uint64_t offset);

#endif /* MF_IT_HELPERS_H */
