/*
 * The local service's private state, shared by its files:
 *   config.c  mmc-local.conf table, files and MMC_* environment variables
 *   client.c  create/destroy (connect, HELLO, BM pool, REGISTER), the RPC
 *             helper, reconnection, the heartbeat, user buffers
 *   record.c  the record of what our segments hold, and its restoration
 *             to a new meta service
 *   repair.c  copies of our replicas the meta service asks for
 *   tier.c    the SSD area (ssd.c) and the moves between it and our DRAM
 *             that the meta service asks for
 *   ops.c     put/get/exist/query/remove and their batch and layers forms
 *   stream.c  the streaming calls: allocate/copy/finish puts, explicit
 *             leases, remove all
 *   stats.c   trace points and the figures of the last call (per thread)
 *   batch.c   what they run on: item checks, one record per item, the
 *             chunked requests to the meta service, the batch copier
 *   log.c     the logging control libmemcache exports
 *
 * Invariant: everything in struct mmc is written once by mmc_create and
 * only read afterwards, except host_idx, reg_gen and meta_id (atomics,
 * changed when the meta connection is re-established, under reg_lock),
 * the record (rec_lock) and the heartbeat's fields (ping_lock, or the
 * ping thread's own); so every call
 * may run on any thread without a lock.  The RPC client and the BM pool
 * are thread safe.
 */
#ifndef MMC_CACHE_LOCAL_LOCAL_H
#define MMC_CACHE_LOCAL_LOCAL_H

#include "cache/proto/proto.h"
#include "net/net.h"
#include "net/tls.h"
#include "util/config.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <memcache/mmc.h>
#include <memfabric/mf_bm.h>
#include <pthread.h>
#include <stdatomic.h>

/* Buffers of one item of a batch, whatever the API form. */
typedef struct mmc_local_item {
    const char *key;
    const mmc_iov_t *iov;
    size_t niov;
    uint64_t size; /* sum of the iov lengths */
} mmc_local_item_t;

struct mmc {
    mmc_config_t cfg;
    mf_net_client_t *rpc;
    mf_tls_t *tls; /* tls.enable: the RPC connection's context */
    mmc_hello_resp_t hello;
    mmc_hello_req_t hello_req;
    mmc_register_req_t reg; /* what REGISTER sends (again on reconnect) */
    mf_bm_t *bm;
    uint32_t rank;
    uint32_t max_batch; /* keys per request, from HELLO, >= 1 */
    _Atomic uint32_t host_idx;
    /* announcing again after a reconnect */
    pthread_mutex_t reg_lock;
    _Atomic uint64_t reg_gen; /* re-registrations done */
    _Atomic uint64_t meta_id; /* of the meta service registered with */
    uint64_t reg_conn;        /* the RPC connection registered on (under
                                 reg_lock) */
    atomic_bool registered;   /* create finished (the first REGISTER) */
    /* the record of our segments: (media, offset) -> mmc_local_rec_t */
    pthread_mutex_t rec_lock;
    mf_hmap_t rec;
    /* re-replication copies asked of us (repair.c) */
    pthread_mutex_t repair_lock;
    pthread_cond_t repair_cond;
    struct mmc_local_repair_job *repair_head;
    pthread_t repair_thread;
    bool repair_started, repair_stop;
    /* the SSD area and its I/O threads (tier.c) */
    struct mmc_ssd *ssd;
    pthread_mutex_t tier_lock;
    pthread_cond_t tier_cond;
    struct mmc_local_move_job *tier_head;
    pthread_t tier_threads[64];
    uint32_t tier_nthreads;
    bool tier_stop;
    /* heartbeat: PING at a quarter of the meta's member timeout */
    pthread_t ping_thread;
    bool ping_started;
    pthread_mutex_t ping_lock;
    pthread_cond_t ping_cond;
    bool ping_stop;      /* under ping_lock */
    bool ping_failing;   /* ping thread only: the last PING failed */
    char meta_host[256]; /* the first of metas, for messages */
    uint16_t meta_port;
    mf_url_t metas[MF_URL_LIST_MAX]; /* where the meta service may run */
    size_t nmetas;
    /* streaming calls (stream.c), under stream_lock: the puts allocated
     * and not finished (key -> put id) and the explicit leases (key ->
     * lease ids) */
    pthread_mutex_t stream_lock;
    mf_hmap_t stream_puts;
    mf_hmap_t stream_leases;
    mf_vec_t stream_by_gva; /* the puts, by the GVA of their first replica */
};

/* ---- config.c ---- */
mmc_status_t mmc_local_config_check(const mmc_config_t *cfg);

/* ---- client.c ---- */

/*
 * Sends a request whose body w holds (w is freed) and waits for the
 * response.  MF_OK with *resp_p (free with mf_net_resp_free) when the
 * response's status is MF_OK; else the failing status (transport error,
 * timeout or the response's status), logged once, and nothing to free.
 */
mmc_status_t mmc_local_call(mmc_t *mmc, uint16_t op, mf_wbuf_t *w,
                            mf_net_resp_t *resp_p);

/* ---- record.c ---- */
void mmc_local_record_init(mmc_t *mmc);
void mmc_local_record_free(mmc_t *mmc);
void mmc_local_record_clear(mmc_t *mmc);
/* Forgets the entries of our memory segments (DRAM, HBM), keeping the
 * SSD area's. */
void mmc_local_record_drop_memory(mmc_t *mmc);
size_t mmc_local_record_count(mmc_t *mmc);
/* A RECORD notify (RPC loop thread): applied to the record, then
 * acknowledged. */
void mmc_local_record_apply(mmc_t *mmc, const uint8_t *body, size_t len);
/* Sends the record in RESTORE batches after a REGISTER that said
 * MMC_REG_RESTORE; refused entries are forgotten. */
mmc_status_t mmc_local_record_restore(mmc_t *mmc);

/* ---- stats.c ---- */
struct mf_trace_point;
/* An object call starts and ends on this thread (tp: its trace point, or
 * NULL); requests to the meta service and copies add their time. */
void mmc_local_stats_begin(void);
void mmc_local_stats_end(struct mf_trace_point *tp);
void mmc_local_stats_rpc(uint16_t op, uint64_t start);
void mmc_local_stats_data(uint64_t start);

/* ---- stream.c ---- */
void mmc_local_stream_init(mmc_t *mmc);
void mmc_local_stream_free(mmc_t *mmc);

/* Adds one entry to the record (an SSD entry of the area's log at the
 * start). */
mf_status_t mmc_local_record_add(mmc_t *mmc, const mmc_rec_entry_t *e);

/* ---- tier.c ---- */
void mmc_local_tier_init(mmc_t *mmc);
/* Opens the SSD area (none: MF_OK), its entries into the record, and
 * starts its threads. */
mmc_status_t mmc_local_tier_open(mmc_t *mmc);
/* A MOVE notify (RPC loop thread): its jobs to the SSD threads. */
void mmc_local_tier_queue(mmc_t *mmc, const uint8_t *body, size_t len);
/* The record gained (keep) or lost an entry: an SSD one is committed to
 * or forgotten by the area's log. */
void mmc_local_tier_record(mmc_t *mmc, const mmc_rec_entry_t *e, bool keep);
/* Stops the threads (before the pool goes); closes the area; frees. */
void mmc_local_tier_stop(mmc_t *mmc);
void mmc_local_tier_close(mmc_t *mmc);
void mmc_local_tier_free(mmc_t *mmc);

/* ---- repair.c ---- */
void mmc_local_repair_init(mmc_t *mmc);
/* A REPAIR notify (RPC loop thread): its jobs to the repair thread. */
void mmc_local_repair_queue(mmc_t *mmc, const uint8_t *body, size_t len);
/* Stops the thread (jobs left are given up; REPAIRs from now on too). */
void mmc_local_repair_stop(mmc_t *mmc);
/* Stops it if needed and frees the queue, once no notify can come. */
void mmc_local_repair_free(mmc_t *mmc);

#endif
