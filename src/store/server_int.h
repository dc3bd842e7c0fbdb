/*
 * The config store server's private state, shared by its files:
 *   server.c        items, key operations, blocking gets, watches, start
 *                   and stop
 *   server_ranks.c  rank groups and sessions (liveness, heartbeats)
 * The invariants the server keeps are in server.c.
 */
#ifndef MF_STORE_SERVER_INT_H
#define MF_STORE_SERVER_INT_H

#include "net/net.h"
#include "net/tls.h"
#include "store/store_proto.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <memfabric/mf_store.h>

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_STORE_MAX_WATCHES_PER_SESSION 4096
#define MF_STORE_MAX_WORLD_SIZE          (1u << 20)
#define MF_STORE_BODY_OVERHEAD           4096

typedef struct mf_store_session mf_store_session_t;

/* How a write changes the owner of an item. */
typedef enum mf_store_owner_mode {
    MF_STORE_OWNER_KEEP,    /* add, append, cas: as it was */
    MF_STORE_OWNER_NONE,    /* plain set: persistent */
    MF_STORE_OWNER_SESSION, /* ephemeral set: the writing session */
} mf_store_owner_mode_t;

typedef struct mf_store_item {
    uint8_t *data; /* len + 1 bytes, NUL-terminated */
    size_t len;
    mf_store_session_t *owner; /* ephemeral owner, NULL if persistent */
    mf_list_t owner_link;      /* in owner->ephemerals, or self-linked */
    size_t key_len;
    char key[];
} mf_store_item_t;

/* The gets parked on one absent key. */
typedef struct mf_store_waitq {
    mf_list_t waiters;
    size_t key_len;
    char key[];
} mf_store_waitq_t;

typedef struct mf_store_waiter {
    mf_store_server_t *server;
    mf_store_session_t *session;
    mf_store_waitq_t *q; /* NULL once detached from its queue */
    uint64_t req_id;
    struct event *timer;
    mf_list_t key_link;     /* in q->waiters */
    mf_list_t session_link; /* in session->waiters */
} mf_store_waiter_t;

typedef struct mf_store_swatch {
    uint64_t id;
    size_t prefix_len;
    char *prefix;
} mf_store_swatch_t;

struct mf_store_session {
    mf_store_server_t *server;
    mf_net_conn_t *conn;
    mf_list_t link;       /* in server->sessions */
    mf_list_t ephemerals; /* mf_store_item_t.owner_link */
    mf_list_t waiters;    /* mf_store_waiter_t.session_link */
    mf_vec_t watches;     /* mf_store_swatch_t */
    uint64_t last_seen_ms;
    bool ended;
};

typedef struct mf_store_group {
    uint32_t world_size; /* 0 while nobody is a member */
    uint32_t members;
    mf_store_session_t **slots; /* world_size entries, NULL = free */
    mf_vec_t subscribers;       /* mf_store_session_t * */
    size_t name_len;
    char name[];
} mf_store_group_t;

struct mf_store_server {
    mf_store_server_config_t cfg;
    mf_net_server_t *net;
    mf_tls_t *tls; /* its own TLS context (tls.enable), or NULL */
    struct event *sweep_timer;
    mf_hmap_t items;  /* key -> mf_store_item_t */
    mf_hmap_t waitqs; /* key -> mf_store_waitq_t */
    mf_hmap_t groups; /* name -> mf_store_group_t */
    mf_list_t sessions;
    uint64_t total_bytes;
    uint64_t nwatches; /* over all sessions, to skip the scan when 0 */
};

/* ---- shared between the files ---- */

mf_status_t mf_store_server_check_key(const mf_store_session_t *sess,
                                      const char *what, const void *key,
                                      size_t len);
mf_status_t mf_store_server_do_add(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req, mf_wbuf_t *resp);
mf_status_t mf_store_server_do_append(mf_store_server_t *server,
                                      mf_store_session_t *sess,
                                      const mf_store_req_t *req);
mf_status_t mf_store_server_do_cas(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req, mf_wbuf_t *resp);
mf_status_t mf_store_server_do_get(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req, uint64_t req_id,
                                   mf_wbuf_t *resp);
mf_status_t mf_store_server_do_remove(mf_store_server_t *server,
                                      mf_store_session_t *sess,
                                      const mf_store_req_t *req);
mf_status_t mf_store_server_do_set(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req);
mf_status_t mf_store_server_do_unwatch(mf_store_server_t *server,
                                       mf_store_session_t *sess,
                                       const mf_store_req_t *req);
mf_status_t mf_store_server_do_watch(mf_store_server_t *server,
                                     mf_store_session_t *sess,
                                     const mf_store_req_t *req);
void mf_store_server_item_remove(mf_store_server_t *server,
                                 mf_store_item_t *item);
const char *mf_store_server_peer(const mf_store_session_t *session);
void mf_store_server_waiter_destroy(mf_store_server_t *server,
                                    mf_store_waiter_t *waiter);
void mf_store_server_group_free(mf_store_group_t *group);
void mf_store_server_on_close(mf_net_conn_t *conn, void *arg);
void mf_store_server_on_open(mf_net_conn_t *conn, void *arg);
void mf_store_server_on_request(mf_net_conn_t *conn, uint16_t opcode,
                                uint64_t req_id, const uint8_t *body,
                                size_t len, void *arg);
void mf_store_server_sweep(evutil_socket_t fd, short what, void *arg);

#endif
