/*
 * The MemCache meta service (mmc-meta), embeddable in any process.
 *
 * mmc_meta_start() starts, in this order: the pool's MemFabric config store
 * (an mf_store server on store_port), the RPC server that local services
 * talk to (src/cache/proto on port), and the HTTP endpoint (http_port).
 * All meta state lives on the RPC server's loop thread: requests, timers and
 * HTTP handlers run there one at a time, so the state needs no lock.  The
 * functions marked "loop thread" may be called only from there (HTTP
 * handlers, timers); mmc_meta_run_sync() gets there from another thread.
 *
 * Files:
 *   meta.c        start/stop, per-connection bookkeeping, timers
 *   meta_rpc.c    the RPC handlers (meta_int.h: what the two share)
 *   meta_state.c  segments, object index, puts, leases (with
 *                 meta_state_members.c, meta_state_space.c: placement and
 *                 eviction, meta_state_check.c; meta_state_int.h)
 *   alloc.c       space allocator of one segment
 *   meta_config.c the mmc-meta.conf table (meta_config.h)
 *   meta_view.c   the read-only view: counters and histograms (meta_view.h)
 *   meta_http.c   /health, /metrics, /segments, /key/<key> (meta_http.h),
 *                 reading the service through its view only
 */
#ifndef MMC_CACHE_META_META_H
#define MMC_CACHE_META_META_H

#include "cache/meta/meta_config.h"
#include "cache/meta/meta_view.h"
#include "cache/proto/proto.h"

#include <memfabric/mf_status.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- the service (meta.c) ---- */

typedef struct mmc_meta mmc_meta_t;

mf_status_t mmc_meta_start(const mmc_meta_config_t *cfg, mmc_meta_t **meta_p);
/* Stops HTTP, RPC and store; every connection is closed. NULL accepted. */
void mmc_meta_stop(mmc_meta_t *meta);
uint16_t mmc_meta_port(const mmc_meta_t *meta);
uint16_t mmc_meta_store_port(const mmc_meta_t *meta);
uint16_t mmc_meta_http_port(const mmc_meta_t *meta); /* 0 when disabled */
const mmc_meta_config_t *mmc_meta_config(const mmc_meta_t *meta);
/* The view readers see; loop thread only (meta_view.h). */
void mmc_meta_get_stats(mmc_meta_t *meta, mmc_meta_stats_t *stats);
void mmc_meta_foreach_seg(mmc_meta_t *meta, mmc_meta_seg_fn cb, void *arg);
mmc_status_t mmc_meta_key_info(mmc_meta_t *meta, const char *key,
                               size_t key_len, mmc_obj_info_t *info_p,
                               uint32_t *leases_p);
/* Runs fn(arg) on the loop thread and waits for it. */
/* This service leads the pool through etcd, having taken the leader key
 * at revision, as the pool's term-th leader (meta_ha.h): /health and
 * /metrics say so.  From the time in *serve_until on (mf_time_ms; it
 * must outlive the service) it answers nothing, and closes every
 * connection that asks: a leader frozen past its lease does not act on
 * what waited in its sockets.  Any thread. */
void mmc_meta_set_leader(mmc_meta_t *meta, int64_t revision, int64_t term,
                         const atomic_uint_least64_t *serve_until);

mf_status_t mmc_meta_run_sync(mmc_meta_t *meta, void (*fn)(void *arg),
                              void *arg);

#endif
