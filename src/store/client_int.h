/*
 * The config store client's private state, shared by its files:
 *   client.c      the connection, requests, notify dispatch, session
 *                 restore after a reconnect, the heartbeat
 *   client_ops.c  key operations, watches, rank groups, collective rounds
 * The threads and invariants are in client.c.
 */
#ifndef MF_STORE_CLIENT_INT_H
#define MF_STORE_CLIENT_INT_H

#include "net/net.h"
#include "net/tls.h"
#include "store/store_client.h"
#include "store/store_proto.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <memfabric/mf_store.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Frames the client accepts: the largest value the server may allow. */
#define MF_STORE_CLIENT_MAX_BODY  ((size_t)(1u << 30) + (1u << 20))
#define MF_STORE_CLIENT_MAX_VALUE ((size_t)1 << 30)

/* Re-joining a rank after a reconnect retries while it looks taken. */
#define MF_STORE_REJOIN_ATTEMPTS 20
#define MF_STORE_REJOIN_DELAY_MS 100

struct mf_store_watch {
    mf_list_t link; /* in store->watches */
    uint64_t id;
    mf_store_watch_cb cb;
    void *arg;
    bool removed; /* unwatched by its own callback; the dispatcher frees */
    size_t prefix_len;
    char prefix[];
};

typedef struct mf_store_sub {
    mf_list_t link; /* in store->subs */
    mf_rank_event_cb cb;
    void *arg;
    size_t group_len;
    char group[];
} mf_store_sub_t;

typedef struct mf_store_held_rank {
    char *group;
    uint32_t world_size;
    uint32_t rank;
} mf_store_held_rank_t;

typedef struct mf_store_eph_value {
    size_t len;
    uint8_t data[];
} mf_store_eph_value_t;

struct mf_store {
    mf_store_config_t cfg;
    char host[256]; /* the first endpoint, for messages */
    uint16_t port;
    mf_url_t ends[MF_URL_LIST_MAX]; /* every endpoint the URL lists */
    size_t nends;
    mf_net_client_t *net;
    mf_tls_t *tls; /* tls.enable: the connection's context */

    pthread_mutex_t lock;
    pthread_cond_t cb_done; /* running changed */
    pthread_cond_t hb_wake; /* closing was set */
    mf_list_t watches;      /* mf_store_watch_t */
    mf_store_watch_t *running;
    bool in_dispatch; /* the loop thread runs a callback */
    pthread_t dispatch_thread;
    uint64_t next_watch_id;
    mf_list_t subs;       /* mf_store_sub_t */
    mf_hmap_t ephemerals; /* key -> mf_store_eph_value_t */
    mf_vec_t ranks;       /* mf_store_held_rank_t */
    mf_hmap_t rounds;     /* "kind:name" -> round, as a pointer */

    pthread_t hb_thread;
    bool hb_started;
    bool closing;
};

/* ---- shared between the files ---- */

uint32_t mf_store_add_timeouts(uint32_t a, uint32_t b);
mf_status_t mf_store_check_key(const char *func, const char *key,
                               size_t *len_p);
mf_status_t mf_store_check_value(const char *func, const void *value,
                                 size_t len);
mf_status_t mf_store_request(mf_store_t *store, uint16_t op,
                             const mf_store_req_t *req, uint32_t timeout_ms,
                             mf_net_resp_t *resp_p);
mf_status_t mf_store_request_simple(mf_store_t *store, uint16_t op,
                                    const mf_store_req_t *req);
mf_status_t mf_store_take_value(mf_net_resp_t *resp, void **value_p,
                                size_t *len_p);

#endif
