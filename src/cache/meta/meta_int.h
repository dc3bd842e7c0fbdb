/*
 * The meta service's private state, shared by its files (what the service
 * does and its threads are described in meta.c):
 *   meta.c      connections, timers, the view, start and stop
 *   meta_rpc.c  the handler of each request type
 *   meta_record.c  the holders' records: RECORD out, RECORD_ACK in,
 *               replies held for them, RESTORE
 *   meta_repair.c  re-replication: REPAIR out, REPAIR_DONE in
 */
#ifndef MMC_CACHE_META_META_INT_H
#define MMC_CACHE_META_META_INT_H

#include "cache/meta/meta.h"
#include "cache/meta/meta_http.h"
#include "net/net.h"

#include "cache/meta/meta_state.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <event2/event.h>
#include <inttypes.h>
#include <memfabric/mf_store.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Expiry timer period bounds. */
#define MMC_META_TICK_MIN_MS 1u
#define MMC_META_TICK_MAX_MS 1000u
/* Leases and puts expired per timer run. */
#define MMC_META_EXPIRE_BUDGET 65536u
/* Eviction candidates visited per pass. */
#define MMC_META_EVICT_BUDGET 4096u

struct mmc_meta {
    mmc_meta_config_t cfg;
    uint64_t meta_id;
    mf_store_server_t *store;
    mf_net_server_t *server;
    mmc_meta_http_t *http;
    mf_tls_t *tls; /* tls.enable: the servers' context */
    mmc_state_t *state;
    struct event *timer;
    struct event *more;  /* one-shot: expiry work left over by a tick */
    struct event *evict; /* one-shot: a background eviction pass */
    mf_list_t conns;     /* of mmc_meta_conn_t, least recently heard first */
    uint16_t port;
    uint16_t store_port;
    uint16_t http_port;
    mmc_meta_stats_t stats; /* requests, errors, latency, clients */
    uint64_t start_ms;      /* when it started (mmc_meta_now_ms) */
    uint64_t restored_ms;   /* when a holder's record was last restored */
    mf_list_t deferred;     /* of reads waiting for loads (meta_move.c) */
    uint64_t moves_seen;    /* mmc_state_moves_ended when last looked */
    uint64_t repair_tokens; /* bytes re-replication may copy now */
    uint64_t repair_last_ms;
};

typedef struct mmc_meta_held mmc_meta_held_t;
typedef struct mmc_meta_deferred mmc_meta_deferred_t;

typedef struct mmc_meta_conn {
    mmc_meta_t *meta;
    mf_net_conn_t *conn;
    mmc_state_owner_t *owner; /* NULL once dropped for silence */
    mf_list_t link;           /* in meta->conns while owner is set */
    uint64_t last_ms;         /* when its last frame arrived */
    bool hello;
    bool hbm_warned;    /* an HBM segment was refused once already (no device
                           window) */
    bool restoring;     /* registered with a record, RESTORE not done */
    uint64_t rec_acked; /* its record is up to this RECORD */
    uint64_t rec_asked; /* the last RECORD sent without ACK_LATER */
    mf_vec_t waiters;   /* of held replies waiting on its acks, by seq */
    mf_list_t held;     /* of its own replies held */
    mf_list_t deferred; /* of its reads waiting for loads */
    char name[MMC_PROTO_NAME_MAX + 1];
} mmc_meta_conn_t;

/* What a handler produced: the frame status, the body, failed and missed
 * items, and what it granted (puts or leases, by id in grants.items[i].id
 * where status is MMC_OK) to take back if the reply is lost. */
typedef struct mmc_meta_reply {
    mf_status_t status;
    mf_wbuf_t body;
    uint64_t item_errors;
    uint64_t item_misses;
    mmc_obj_list_t grants;
} mmc_meta_reply_t;

static inline uint64_t mmc_meta_now_ms(void)
{
    return mf_time_ms();
}

/* ---- shared between the files ---- */

void mmc_meta_handle_hello(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                           const uint8_t *body, size_t len,
                           mmc_meta_reply_t *rep);
void mmc_meta_handle_keys(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                          uint16_t opcode, const uint8_t *body, size_t len,
                          mmc_meta_reply_t *rep);
void mmc_meta_handle_ping(size_t len, mmc_meta_reply_t *rep);
void mmc_meta_handle_put_alloc(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                               const uint8_t *body, size_t len,
                               mmc_meta_reply_t *rep);
void mmc_meta_handle_put_commit(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                const uint8_t *body, size_t len,
                                mmc_meta_reply_t *rep);
void mmc_meta_handle_register(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                              const uint8_t *body, size_t len,
                              mmc_meta_reply_t *rep);
/* LEASE: explicit read leases of a given duration. */
void mmc_meta_handle_lease(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                           const uint8_t *body, size_t len,
                           mmc_meta_reply_t *rep);
/* REMOVE_ALL: unlinks every committed object. */
void mmc_meta_handle_remove_all(mmc_meta_t *meta, size_t len,
                                mmc_meta_reply_t *rep);
void mmc_meta_handle_release(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                             const uint8_t *body, size_t len,
                             mmc_meta_reply_t *rep);
void mmc_meta_handle_unregister(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                size_t len, mmc_meta_reply_t *rep);
void mmc_meta_handle_record_ack(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                const uint8_t *body, size_t len,
                                mmc_meta_reply_t *rep);
void mmc_meta_handle_restore(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                             const uint8_t *body, size_t len,
                             mmc_meta_reply_t *rep);

/* meta_repair.c: a tick's repairs; the copiers' reports */
void mmc_meta_repair_run(mmc_meta_t *meta, uint64_t now_ms);
void mmc_meta_handle_repair_done(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                 const uint8_t *body, size_t len,
                                 mmc_meta_reply_t *rep);

/* meta.c: serves one request (may_defer: a read of objects on SSD may
 * wait for their loads; false: answered now). */
void mmc_meta_serve(mmc_meta_t *meta, mmc_meta_conn_t *mc, uint16_t opcode,
                    uint64_t req_id, const uint8_t *body, size_t len,
                    bool may_defer);

/* meta_move.c: the SSD tier.  Sends the moves the state started; takes
 * the holders' reports; defers a read that waits for loads (true: kept,
 * served later) and serves deferred reads whose loads ended (or that
 * waited too long); drops a closing connection's. */
void mmc_meta_moves_send(mmc_meta_t *meta);
void mmc_meta_handle_move_done(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                               const uint8_t *body, size_t len,
                               mmc_meta_reply_t *rep);
bool mmc_meta_defer(mmc_meta_t *meta, mmc_meta_conn_t *mc, uint16_t opcode,
                    uint64_t req_id, const uint8_t *body, size_t len);
void mmc_meta_deferred_run(mmc_meta_t *meta);
void mmc_meta_conn_deferred_drop(mmc_meta_conn_t *mc);

/* meta_record.c */
void mmc_meta_conn_records_init(mmc_meta_conn_t *mc);
/* The connection's owner is gone: what waits on its record goes on. */
void mmc_meta_conn_records_drop(mmc_meta_conn_t *mc);
/* The connection closes: its held replies are dropped. */
void mmc_meta_conn_records_free(mmc_meta_conn_t *mc);
/* Sends every queued RECORD batch; waits (optional, of holder/seq pairs)
 * collects who got one.  Batches for requester (optional: the connection
 * whose request is being answered) go with MMC_RECORD_ACK_LATER. */
void mmc_meta_records_send(mmc_meta_t *meta, mf_vec_t *waits,
                           const mmc_meta_conn_t *requester);
/* Sends queued batches, and holds the reply (body taken) if it must wait
 * for acknowledgements: true when held (sent later, or dropped). */
bool mmc_meta_records_hold(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                           uint16_t opcode, uint64_t req_id,
                           const mmc_meta_reply_t *rep, mf_wbuf_t *body);

#endif
