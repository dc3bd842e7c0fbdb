/*
 * The config store server: keys and values, blocking gets, watches,
 * ephemeral keys, rank groups and session liveness, served over mf_net.
 *
 * Invariants:
 * - Every piece of state is touched only on the net server's loop thread
 *   (request and close callbacks, timers); start and stop reach it through
 *   mf_net_server_run_sync or after the loop has stopped.
 * - A session is one connection.  It owns its ephemeral items (linked on
 *   session->ephemerals), its parked gets (session->waiters), its watches,
 *   its rank slots and its group subscriptions.  mf_store_server_session_end
 *   releases all of them exactly once, when the connection closes or its
 *   heartbeats stop; an ended session gets no more events or replies.
 * - total_bytes is the sum of key and value lengths of all items and of the
 *   rank slot arrays of all groups, and never exceeds max_total_bytes: a
 *   client cannot grow the server past it with keys or with rank groups.
 * - Peer input is validated here (sizes, rank numbers, flags) and answered
 *   with an error status; it is logged at debug level only, so a bad client
 *   cannot flood the log.
 * - A connection is trusted with frames of the full size (large values)
 *   once one request of it decoded; before that, it may send frames of
 *   MF_NET_DEFAULT_UNTRUSTED_MAX_BODY bytes at most.  The client opens
 *   every connection with a HEARTBEAT for that.  Any connection silent for
 *   idle_timeout_ms is closed by the net server.
 */
#include "net/net.h"
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
    struct event *sweep_timer;
    mf_hmap_t items;  /* key -> mf_store_item_t */
    mf_hmap_t waitqs; /* key -> mf_store_waitq_t */
    mf_hmap_t groups; /* name -> mf_store_group_t */
    mf_list_t sessions;
    uint64_t total_bytes;
    uint64_t nwatches; /* over all sessions, to skip the scan when 0 */
};

/* ------------------------------------------------------------- helpers */

static const char *mf_store_server_peer(const mf_store_session_t *session)
{
    return mf_net_conn_peer(session->conn);
}

static mf_status_t mf_store_server_check_key(const mf_store_session_t *sess,
                                             const char *what, const void *key,
                                             size_t len)
{
    const mf_store_server_t *server = sess->server;

    if (len == 0) {
        mf_debug("store: empty %s from %s", what, mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    if (len > server->cfg.max_key_size) {
        mf_debug("store: %s of %zu bytes from %s is above max_key_size %u",
                 what, len, mf_store_server_peer(sess),
                 server->cfg.max_key_size);
        return MF_ERR_TOO_LARGE;
    }
    if (memchr(key, '\0', len) != NULL) {
        mf_debug("store: %s from %s contains a NUL byte", what,
                 mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    return MF_OK;
}

static mf_status_t mf_store_server_check_value(const mf_store_session_t *sess,
                                               size_t len)
{
    if (len > sess->server->cfg.max_value_size) {
        mf_debug("store: value of %zu bytes from %s is above "
                 "max_value_size %u",
                 len, mf_store_server_peer(sess),
                 sess->server->cfg.max_value_size);
        return MF_ERR_TOO_LARGE;
    }
    return MF_OK;
}

/* A malloc'd copy of a then b, NUL-terminated; NULL if out of memory. */
static uint8_t *mf_store_server_concat(const void *a, size_t a_len,
                                       const void *b, size_t b_len)
{
    uint8_t *data = malloc(a_len + b_len + 1);

    if (data == NULL) {
        mf_error("store: out of memory for a value of %zu bytes",
                 a_len + b_len);
        return NULL;
    }
    if (a_len > 0) {
        memcpy(data, a, a_len);
    }
    if (b_len > 0) {
        memcpy(data + a_len, b, b_len);
    }
    data[a_len + b_len] = '\0';
    return data;
}

/* Strict decimal int64: optional sign, digits only. */
static bool mf_store_server_parse_i64(const uint8_t *data, size_t len,
                                      int64_t *value_p)
{
    char text[32];
    char *end;
    long long value;

    if ((len == 0) || (len >= sizeof(text))) {
        return false;
    }
    memcpy(text, data, len);
    text[len] = '\0';
    if ((text[0] != '-') && (text[0] != '+') &&
        ((text[0] < '0') || (text[0] > '9'))) {
        return false;
    }
    errno = 0;
    value = strtoll(text, &end, 10);
    if ((errno != 0) || (end != text + len) || (end == text)) {
        return false;
    }
    *value_p = value;
    return true;
}

/* ------------------------------------------------------ watch events */

static bool mf_store_server_session_watches(const mf_store_session_t *sess,
                                            const void *key, size_t key_len)
{
    const mf_store_swatch_t *w;
    size_t i;

    for (i = 0; i < sess->watches.count; i++) {
        w = mf_vec_at(&sess->watches, i);
        if ((w->prefix_len <= key_len) &&
            (memcmp(w->prefix, key, w->prefix_len) == 0)) {
            return true;
        }
    }
    return false;
}

static void mf_store_server_notify_watch(mf_store_server_t *server,
                                         mf_store_event_t event,
                                         const void *key, size_t key_len,
                                         const void *value, size_t len)
{
    mf_store_watch_event_t ev = {
        .event = (uint8_t)event,
        .key = key,
        .key_len = key_len,
        .value = value,
        .value_len = len,
    };
    mf_store_session_t *sess;
    mf_list_t *pos, *tmp;
    mf_wbuf_t w;
    bool encoded = false;

    if (server->nwatches == 0) {
        return;
    }
    mf_wbuf_init(&w);
    mf_list_for_each_safe(pos, tmp, &server->sessions)
    {
        sess = mf_container_of(pos, mf_store_session_t, link);
        if (sess->ended ||
            !mf_store_server_session_watches(sess, key, key_len)) {
            continue;
        }
        if (!encoded) {
            mf_store_watch_event_encode(&w, &ev);
            if (mf_wbuf_status(&w) != MF_OK) {
                mf_error("store: out of memory for a watch event of %zu "
                         "bytes; watchers miss it",
                         len);
                break;
            }
            encoded = true;
        }
        mf_net_conn_notify(sess->conn, MF_STORE_NOTIFY_WATCH, w.data, w.len);
    }
    mf_wbuf_free(&w);
}

/* -------------------------------------------------------------- waiters */

static void mf_store_server_waiter_destroy(mf_store_server_t *server,
                                           mf_store_waiter_t *waiter)
{
    mf_store_waitq_t *q = waiter->q;

    mf_list_del(&waiter->key_link);
    mf_list_del(&waiter->session_link);
    if (waiter->timer != NULL) {
        event_free(waiter->timer);
    }
    if ((q != NULL) && mf_list_empty(&q->waiters)) {
        mf_hmap_remove(&server->waitqs, q->key, q->key_len);
        free(q);
    }
    free(waiter);
}

static void mf_store_server_waiter_timeout(evutil_socket_t fd, short what,
                                           void *arg)
{
    mf_store_waiter_t *waiter = arg;

    mf_net_conn_reply(waiter->session->conn, waiter->req_id, MF_STORE_OP_GET,
                      MF_ERR_TIMEOUT, NULL, 0);
    mf_store_server_waiter_destroy(waiter->server, waiter);
}

/* Answers every get parked on key with the new value. */
static void mf_store_server_wake(mf_store_server_t *server,
                                 const mf_store_item_t *item)
{
    mf_store_waitq_t *q;
    mf_store_waiter_t *waiter;
    mf_list_t *elem;
    mf_status_t status;
    mf_wbuf_t w;

    q = mf_hmap_remove(&server->waitqs, item->key, item->key_len);
    if (q == NULL) {
        return;
    }
    mf_wbuf_init(&w);
    mf_store_value_encode(&w, item->data, item->len);
    status = mf_wbuf_status(&w);
    if (status != MF_OK) {
        mf_error("store: out of memory answering waiters of a %zu-byte "
                 "value",
                 item->len);
    }
    while ((elem = mf_list_pop_front(&q->waiters)) != NULL) {
        waiter = mf_container_of(elem, mf_store_waiter_t, key_link);
        waiter->q = NULL;
        mf_net_conn_reply(
            waiter->session->conn, waiter->req_id, MF_STORE_OP_GET, status,
            (status == MF_OK) ? w.data : NULL, (status == MF_OK) ? w.len : 0);
        mf_store_server_waiter_destroy(server, waiter);
    }
    mf_wbuf_free(&w);
    free(q);
}

static mf_status_t mf_store_server_park(mf_store_server_t *server,
                                        mf_store_session_t *sess,
                                        const mf_store_req_t *req,
                                        uint64_t req_id)
{
    struct timeval tv = {
        .tv_sec = req->timeout_ms / 1000,
        .tv_usec = (req->timeout_ms % 1000) * 1000,
    };
    mf_store_waiter_t *waiter;
    mf_store_waitq_t *q;
    mf_status_t status;

    waiter = calloc(1, sizeof(*waiter));
    if (waiter == NULL) {
        mf_error("store: out of memory parking a get");
        status = MF_ERR_NOMEM;
        goto err;
    }
    waiter->server = server;
    waiter->session = sess;
    waiter->req_id = req_id;
    mf_list_init(&waiter->key_link);
    mf_list_init(&waiter->session_link);
    waiter->timer = evtimer_new(mf_net_server_base(server->net),
                                mf_store_server_waiter_timeout, waiter);
    if (waiter->timer == NULL) {
        mf_error("store: evtimer_new() failed parking a get");
        status = MF_ERR_NOMEM;
        goto err_free_waiter;
    }
    q = mf_hmap_get(&server->waitqs, req->key, req->key_len);
    if (q == NULL) {
        q = malloc(sizeof(*q) + req->key_len + 1);
        if (q == NULL) {
            mf_error("store: out of memory parking a get");
            status = MF_ERR_NOMEM;
            goto err_free_timer;
        }
        mf_list_init(&q->waiters);
        q->key_len = req->key_len;
        memcpy(q->key, req->key, req->key_len);
        q->key[req->key_len] = '\0';
        status = mf_hmap_put(&server->waitqs, req->key, req->key_len, q, NULL);
        if (status != MF_OK) {
            mf_error("store: out of memory parking a get");
            free(q);
            goto err_free_timer;
        }
    }
    if (evtimer_add(waiter->timer, &tv) != 0) {
        mf_error("store: evtimer_add() failed parking a get");
        status = MF_ERR_IO;
        if (mf_list_empty(&q->waiters)) {
            mf_hmap_remove(&server->waitqs, q->key, q->key_len);
            free(q);
        }
        goto err_free_timer;
    }
    waiter->q = q;
    mf_list_push_back(&q->waiters, &waiter->key_link);
    mf_list_push_back(&sess->waiters, &waiter->session_link);
    return MF_INPROGRESS;

err_free_timer:
    event_free(waiter->timer);
err_free_waiter:
    free(waiter);
err:
    return status;
}

/* ---------------------------------------------------------------- items */

/*
 * Stores data (malloc'd, len + 1 bytes, NUL-terminated) at key, wakes the
 * gets waiting for it and tells the watchers.  Takes data only on success.
 */
static mf_status_t mf_store_server_put(mf_store_server_t *server,
                                       mf_store_session_t *sess,
                                       const void *key, size_t key_len,
                                       uint8_t *data, size_t len,
                                       mf_store_owner_mode_t mode)
{
    mf_store_item_t *item = mf_hmap_get(&server->items, key, key_len);
    uint64_t old_bytes = (item != NULL) ? key_len + item->len : 0;
    uint64_t total = server->total_bytes - old_bytes + key_len + len;
    mf_status_t status;

    if (total > server->cfg.max_total_bytes) {
        mf_debug("store: storing %zu bytes for %s would exceed "
                 "max_total_bytes %" PRIu64,
                 key_len + len, mf_store_server_peer(sess),
                 server->cfg.max_total_bytes);
        return MF_ERR_TOO_LARGE;
    }
    if (item == NULL) {
        item = calloc(1, sizeof(*item) + key_len + 1);
        if (item == NULL) {
            mf_error("store: out of memory for a key of %zu bytes", key_len);
            return MF_ERR_NOMEM;
        }
        mf_list_init(&item->owner_link);
        item->key_len = key_len;
        memcpy(item->key, key, key_len);
        item->key[key_len] = '\0';
        status = mf_hmap_put(&server->items, key, key_len, item, NULL);
        if (status != MF_OK) {
            mf_error("store: out of memory for a key of %zu bytes", key_len);
            free(item);
            return status;
        }
    } else {
        free(item->data);
    }
    item->data = data;
    item->len = len;
    server->total_bytes = total;

    if (mode != MF_STORE_OWNER_KEEP) {
        mf_list_del(&item->owner_link);
        item->owner = NULL;
        if (mode == MF_STORE_OWNER_SESSION) {
            item->owner = sess;
            mf_list_push_back(&sess->ephemerals, &item->owner_link);
        }
    }

    mf_store_server_wake(server, item);
    mf_store_server_notify_watch(server, MF_STORE_EVENT_SET, item->key,
                                 item->key_len, item->data, item->len);
    return MF_OK;
}

static void mf_store_server_item_remove(mf_store_server_t *server,
                                        mf_store_item_t *item)
{
    mf_hmap_remove(&server->items, item->key, item->key_len);
    mf_list_del(&item->owner_link);
    server->total_bytes -= item->key_len + item->len;
    mf_store_server_notify_watch(server, MF_STORE_EVENT_REMOVE, item->key,
                                 item->key_len, NULL, 0);
    free(item->data);
    free(item);
}

/* ------------------------------------------------------------ key ops */

static mf_status_t mf_store_server_do_set(mf_store_server_t *server,
                                          mf_store_session_t *sess,
                                          const mf_store_req_t *req)
{
    mf_store_owner_mode_t mode;
    mf_status_t status;
    uint8_t *data;

    status = mf_store_server_check_key(sess, "key", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_store_server_check_value(sess, req->value_len);
    if (status != MF_OK) {
        return status;
    }
    if (req->flags & ~MF_STORE_EPHEMERAL) {
        mf_debug("store: unknown set flags 0x%x from %s", req->flags,
                 mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    data = mf_store_server_concat(req->value, req->value_len, NULL, 0);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    mode = (req->flags & MF_STORE_EPHEMERAL) ? MF_STORE_OWNER_SESSION
                                             : MF_STORE_OWNER_NONE;
    status = mf_store_server_put(server, sess, req->key, req->key_len, data,
                                 req->value_len, mode);
    if (status != MF_OK) {
        free(data);
    }
    return status;
}

static mf_status_t mf_store_server_do_get(mf_store_server_t *server,
                                          mf_store_session_t *sess,
                                          const mf_store_req_t *req,
                                          uint64_t req_id, mf_wbuf_t *resp)
{
    const mf_store_item_t *item;
    mf_status_t status;

    status = mf_store_server_check_key(sess, "key", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    item = mf_hmap_get(&server->items, req->key, req->key_len);
    if (item != NULL) {
        mf_store_value_encode(resp, item->data, item->len);
        return MF_OK;
    }
    if (req->timeout_ms == 0) {
        return MF_ERR_NOT_FOUND;
    }
    return mf_store_server_park(server, sess, req, req_id);
}

static mf_status_t mf_store_server_do_add(mf_store_server_t *server,
                                          mf_store_session_t *sess,
                                          const mf_store_req_t *req,
                                          mf_wbuf_t *resp)
{
    const mf_store_item_t *item;
    int64_t value = 0;
    mf_status_t status;
    char text[32];
    uint8_t *data;
    int len;

    status = mf_store_server_check_key(sess, "key", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    item = mf_hmap_get(&server->items, req->key, req->key_len);
    if ((item != NULL) &&
        !mf_store_server_parse_i64(item->data, item->len, &value)) {
        mf_debug("store: add from %s to a key that holds no integer",
                 mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    if (__builtin_add_overflow(value, req->delta, &value)) {
        mf_debug("store: add of %" PRId64 " from %s overflows", req->delta,
                 mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    len = snprintf(text, sizeof(text), "%" PRId64, value);
    data = mf_store_server_concat(text, (size_t)len, NULL, 0);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    status = mf_store_server_put(server, sess, req->key, req->key_len, data,
                                 (size_t)len, MF_STORE_OWNER_KEEP);
    if (status != MF_OK) {
        free(data);
        return status;
    }
    mf_store_i64_encode(resp, value);
    return MF_OK;
}

static mf_status_t mf_store_server_do_append(mf_store_server_t *server,
                                             mf_store_session_t *sess,
                                             const mf_store_req_t *req)
{
    const mf_store_item_t *item;
    mf_status_t status;
    size_t old_len;
    uint8_t *data;

    status = mf_store_server_check_key(sess, "key", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    item = mf_hmap_get(&server->items, req->key, req->key_len);
    old_len = (item != NULL) ? item->len : 0;
    status = mf_store_server_check_value(sess, old_len + req->value_len);
    if (status != MF_OK) {
        return status;
    }
    data = mf_store_server_concat((item != NULL) ? item->data : NULL, old_len,
                                  req->value, req->value_len);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    status = mf_store_server_put(server, sess, req->key, req->key_len, data,
                                 old_len + req->value_len, MF_STORE_OWNER_KEEP);
    if (status != MF_OK) {
        free(data);
    }
    return status;
}

static mf_status_t mf_store_server_do_cas(mf_store_server_t *server,
                                          mf_store_session_t *sess,
                                          const mf_store_req_t *req,
                                          mf_wbuf_t *resp)
{
    const mf_store_item_t *item;
    mf_status_t status;
    uint8_t *data;
    bool match;

    status = mf_store_server_check_key(sess, "key", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_store_server_check_value(sess, req->value_len);
    if (status != MF_OK) {
        return status;
    }
    item = mf_hmap_get(&server->items, req->key, req->key_len);
    if (!req->has_expected) {
        match = (item == NULL);
    } else {
        match = (item != NULL) && (item->len == req->expected_len) &&
                ((item->len == 0) ||
                 (memcmp(item->data, req->expected, item->len) == 0));
    }
    if (!match) {
        if (item != NULL) {
            mf_store_current_encode(resp, true, item->data, item->len);
        } else {
            mf_store_current_encode(resp, false, NULL, 0);
        }
        return MF_ERR_MISMATCH;
    }
    data = mf_store_server_concat(req->value, req->value_len, NULL, 0);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    status = mf_store_server_put(server, sess, req->key, req->key_len, data,
                                 req->value_len, MF_STORE_OWNER_KEEP);
    if (status != MF_OK) {
        free(data);
    }
    return status;
}

static mf_status_t mf_store_server_do_remove(mf_store_server_t *server,
                                             mf_store_session_t *sess,
                                             const mf_store_req_t *req)
{
    mf_store_item_t *item;
    mf_status_t status;

    status = mf_store_server_check_key(sess, "key", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    item = mf_hmap_get(&server->items, req->key, req->key_len);
    if (item == NULL) {
        return MF_ERR_NOT_FOUND;
    }
    mf_store_server_item_remove(server, item);
    return MF_OK;
}

/* -------------------------------------------------------------- watches */

static mf_status_t mf_store_server_do_watch(mf_store_server_t *server,
                                            mf_store_session_t *sess,
                                            const mf_store_req_t *req)
{
    mf_store_swatch_t w;

    if (req->key_len > server->cfg.max_key_size) {
        mf_debug("store: watch prefix of %zu bytes from %s is above "
                 "max_key_size",
                 req->key_len, mf_store_server_peer(sess));
        return MF_ERR_TOO_LARGE;
    }
    if (sess->watches.count >= MF_STORE_MAX_WATCHES_PER_SESSION) {
        mf_debug("store: %s has %zu watches already",
                 mf_store_server_peer(sess), sess->watches.count);
        return MF_ERR_TOO_LARGE;
    }
    w.id = req->id;
    w.prefix_len = req->key_len;
    w.prefix = (char *)mf_store_server_concat(req->key, req->key_len, NULL, 0);
    if (w.prefix == NULL) {
        return MF_ERR_NOMEM;
    }
    if (mf_vec_push(&sess->watches, &w) == NULL) {
        mf_error("store: out of memory adding a watch");
        free(w.prefix);
        return MF_ERR_NOMEM;
    }
    server->nwatches++;
    return MF_OK;
}

static mf_status_t mf_store_server_do_unwatch(mf_store_server_t *server,
                                              mf_store_session_t *sess,
                                              const mf_store_req_t *req)
{
    mf_store_swatch_t *w;
    size_t i;

    for (i = 0; i < sess->watches.count; i++) {
        w = mf_vec_at(&sess->watches, i);
        if (w->id == req->id) {
            free(w->prefix);
            mf_vec_swap_remove(&sess->watches, i);
            server->nwatches--;
            return MF_OK;
        }
    }
    return MF_ERR_NOT_FOUND;
}

/* ---------------------------------------------------------------- ranks */

static void mf_store_server_notify_rank(mf_store_server_t *server,
                                        mf_store_group_t *group, uint32_t rank,
                                        mf_rank_event_t event)
{
    mf_store_rank_event_t ev = {
        .group = group->name,
        .group_len = group->name_len,
        .rank = rank,
        .event = (uint8_t)event,
    };
    mf_store_session_t *sub;
    mf_wbuf_t w;
    size_t i;

    if (group->subscribers.count == 0) {
        return;
    }
    mf_wbuf_init(&w);
    mf_store_rank_event_encode(&w, &ev);
    if (mf_wbuf_status(&w) != MF_OK) {
        mf_error("store: out of memory for a rank event of group %s",
                 group->name);
        goto out_free_wbuf;
    }
    for (i = 0; i < group->subscribers.count; i++) {
        sub = *(mf_store_session_t **)mf_vec_at(&group->subscribers, i);
        if (!sub->ended) {
            mf_net_conn_notify(sub->conn, MF_STORE_NOTIFY_RANK, w.data, w.len);
        }
    }
out_free_wbuf:
    mf_wbuf_free(&w);
}

static mf_store_group_t *mf_store_server_group_get(mf_store_server_t *server,
                                                   const void *name,
                                                   size_t name_len)
{
    mf_store_group_t *group = mf_hmap_get(&server->groups, name, name_len);

    if (group != NULL) {
        return group;
    }
    group = calloc(1, sizeof(*group) + name_len + 1);
    if (group == NULL) {
        mf_error("store: out of memory for a rank group");
        return NULL;
    }
    mf_vec_init(&group->subscribers, sizeof(mf_store_session_t *));
    group->name_len = name_len;
    memcpy(group->name, name, name_len);
    group->name[name_len] = '\0';
    if (mf_hmap_put(&server->groups, name, name_len, group, NULL) != MF_OK) {
        mf_error("store: out of memory for a rank group");
        free(group);
        return NULL;
    }
    return group;
}

/* Gives an empty group world_size rank slots, charged to total_bytes. */
static mf_status_t mf_store_server_group_size(mf_store_server_t *server,
                                              mf_store_session_t *sess,
                                              mf_store_group_t *group,
                                              uint32_t world_size)
{
    uint64_t bytes = (uint64_t)world_size * sizeof(*group->slots);

    if (server->total_bytes + bytes > server->cfg.max_total_bytes) {
        mf_debug("store: a group of %u ranks for %s would exceed "
                 "max_total_bytes %" PRIu64,
                 world_size, mf_store_server_peer(sess),
                 server->cfg.max_total_bytes);
        return MF_ERR_TOO_LARGE;
    }
    group->slots = calloc(world_size, sizeof(*group->slots));
    if (group->slots == NULL) {
        mf_error("store: out of memory for a group of %u ranks", world_size);
        return MF_ERR_NOMEM;
    }
    group->world_size = world_size;
    server->total_bytes += bytes;
    return MF_OK;
}

/* An empty group forgets its size: the next join sets it. */
static void mf_store_server_group_unsize(mf_store_server_t *server,
                                         mf_store_group_t *group)
{
    server->total_bytes -= (uint64_t)group->world_size * sizeof(*group->slots);
    free(group->slots);
    group->slots = NULL;
    group->world_size = 0;
}

static void mf_store_server_group_free(mf_store_group_t *group)
{
    mf_vec_free(&group->subscribers);
    free(group->slots);
    free(group);
}

/* Frees the group if nobody is a member or a subscriber any more. */
static void mf_store_server_group_put(mf_store_server_t *server,
                                      mf_store_group_t *group)
{
    if ((group->members == 0) && (group->subscribers.count == 0)) {
        mf_hmap_remove(&server->groups, group->name, group->name_len);
        mf_store_server_group_free(group);
    }
}

static void mf_store_server_group_release(mf_store_server_t *server,
                                          mf_store_group_t *group,
                                          uint32_t rank, mf_rank_event_t event)
{
    group->slots[rank] = NULL;
    group->members--;
    mf_info("store: rank %u of group %s %s", rank, group->name,
            (event == MF_RANK_LEFT) ? "left" : "lost");
    mf_store_server_notify_rank(server, group, rank, event);
    if (group->members == 0) {
        mf_store_server_group_unsize(server, group);
    }
}

static mf_status_t mf_store_server_do_rank_join(mf_store_server_t *server,
                                                mf_store_session_t *sess,
                                                const mf_store_req_t *req,
                                                mf_wbuf_t *resp)
{
    mf_store_group_t *group;
    mf_status_t status;
    uint32_t rank;

    status = mf_store_server_check_key(sess, "group", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    if (req->world_size == 0) {
        mf_debug("store: join with world size 0 from %s",
                 mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    if (req->world_size > MF_STORE_MAX_WORLD_SIZE) {
        mf_debug("store: join with world size %u from %s is above %u",
                 req->world_size, mf_store_server_peer(sess),
                 MF_STORE_MAX_WORLD_SIZE);
        return MF_ERR_TOO_LARGE;
    }
    if ((req->rank != MF_RANK_AUTO) && (req->rank >= req->world_size)) {
        mf_debug("store: join of rank %u of world size %u from %s", req->rank,
                 req->world_size, mf_store_server_peer(sess));
        return MF_ERR_INVALID;
    }
    group = mf_store_server_group_get(server, req->key, req->key_len);
    if (group == NULL) {
        return MF_ERR_NOMEM;
    }
    if (group->world_size == 0) {
        status =
            mf_store_server_group_size(server, sess, group, req->world_size);
        if (status != MF_OK) {
            goto out_put_group;
        }
    } else if (group->world_size != req->world_size) {
        mf_debug("store: join of group %s with world size %u from %s; the "
                 "group has %u",
                 group->name, req->world_size, mf_store_server_peer(sess),
                 group->world_size);
        status = MF_ERR_INVALID;
        goto out_put_group;
    }
    if (req->rank == MF_RANK_AUTO) {
        for (rank = 0; rank < group->world_size; rank++) {
            if (group->slots[rank] == NULL) {
                break;
            }
        }
        if (rank == group->world_size) {
            mf_debug("store: group %s is full", group->name);
            status = MF_ERR_BUSY;
            goto out_put_group;
        }
    } else {
        rank = req->rank;
        if (group->slots[rank] != NULL) {
            mf_debug("store: rank %u of group %s is taken", rank, group->name);
            status = MF_ERR_EXISTS;
            goto out_put_group;
        }
    }
    group->slots[rank] = sess;
    group->members++;
    mf_store_u32_encode(resp, rank);
    mf_info("store: %s joined group %s as rank %u of %u",
            mf_store_server_peer(sess), group->name, rank, group->world_size);
    mf_store_server_notify_rank(server, group, rank, MF_RANK_JOINED);
    return MF_OK;

out_put_group:
    if (group->members == 0 && group->world_size != 0) {
        mf_store_server_group_unsize(server, group);
    }
    mf_store_server_group_put(server, group);
    return status;
}

static mf_status_t mf_store_server_do_rank_leave(mf_store_server_t *server,
                                                 mf_store_session_t *sess,
                                                 const mf_store_req_t *req)
{
    mf_store_group_t *group;
    mf_status_t status;

    status = mf_store_server_check_key(sess, "group", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    group = mf_hmap_get(&server->groups, req->key, req->key_len);
    if ((group == NULL) || (req->rank >= group->world_size) ||
        (group->slots[req->rank] != sess)) {
        mf_debug("store: %s leaves rank %u of a group it is not in",
                 mf_store_server_peer(sess), req->rank);
        return MF_ERR_NOT_FOUND;
    }
    mf_store_server_group_release(server, group, req->rank, MF_RANK_LEFT);
    mf_store_server_group_put(server, group);
    return MF_OK;
}

static mf_status_t mf_store_server_do_rank_subscribe(mf_store_server_t *server,
                                                     mf_store_session_t *sess,
                                                     const mf_store_req_t *req)
{
    mf_store_group_t *group;
    mf_status_t status;
    size_t i;

    status = mf_store_server_check_key(sess, "group", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    group = mf_store_server_group_get(server, req->key, req->key_len);
    if (group == NULL) {
        return MF_ERR_NOMEM;
    }
    for (i = 0; i < group->subscribers.count; i++) {
        if (*(mf_store_session_t **)mf_vec_at(&group->subscribers, i) == sess) {
            return MF_OK;
        }
    }
    if (mf_vec_push(&group->subscribers, &sess) == NULL) {
        mf_error("store: out of memory subscribing to group %s", group->name);
        mf_store_server_group_put(server, group);
        return MF_ERR_NOMEM;
    }
    return MF_OK;
}

static mf_status_t mf_store_server_do_rank_list(mf_store_server_t *server,
                                                mf_store_session_t *sess,
                                                const mf_store_req_t *req,
                                                mf_wbuf_t *resp)
{
    const mf_store_group_t *group;
    mf_status_t status;
    uint32_t rank;

    status = mf_store_server_check_key(sess, "group", req->key, req->key_len);
    if (status != MF_OK) {
        return status;
    }
    group = mf_hmap_get(&server->groups, req->key, req->key_len);
    if (group == NULL) {
        mf_store_ranks_encode(resp, NULL, 0);
        return MF_OK;
    }
    mf_wbuf_put_u32(resp, group->members);
    for (rank = 0; rank < group->world_size; rank++) {
        if (group->slots[rank] != NULL) {
            mf_wbuf_put_u32(resp, rank);
        }
    }
    return MF_OK;
}

/* ------------------------------------------------------------- sessions */

/* Releases everything the session holds; runs once per session. */
static void mf_store_server_session_end(mf_store_server_t *server,
                                        mf_store_session_t *sess)
{
    mf_store_swatch_t *w;
    mf_store_group_t *group;
    mf_hmap_entry_t *entry, *next;
    mf_hmap_iter_t it;
    mf_list_t *elem;
    uint32_t rank;
    size_t i;

    if (sess->ended) {
        return;
    }
    sess->ended = true;

    while ((elem = mf_list_pop_front(&sess->waiters)) != NULL) {
        mf_store_server_waiter_destroy(
            server, mf_container_of(elem, mf_store_waiter_t, session_link));
    }

    for (i = 0; i < sess->watches.count; i++) {
        w = mf_vec_at(&sess->watches, i);
        free(w->prefix);
    }
    server->nwatches -= sess->watches.count;
    sess->watches.count = 0;

    mf_hmap_iter_init(&server->groups, &it);
    entry = mf_hmap_next(&server->groups, &it);
    while (entry != NULL) {
        next = mf_hmap_next(&server->groups, &it);
        group = entry->value;
        for (i = 0; i < group->subscribers.count; i++) {
            if (*(mf_store_session_t **)mf_vec_at(&group->subscribers, i) ==
                sess) {
                mf_vec_swap_remove(&group->subscribers, i);
                break;
            }
        }
        for (rank = 0; rank < group->world_size; rank++) {
            if (group->slots[rank] == sess) {
                mf_store_server_group_release(server, group, rank,
                                              MF_RANK_LOST);
                if (group->world_size == 0) {
                    break; /* the last member went; slots are gone */
                }
            }
        }
        mf_store_server_group_put(server, group);
        entry = next;
    }

    while ((elem = mf_list_pop_front(&sess->ephemerals)) != NULL) {
        mf_store_server_item_remove(
            server, mf_container_of(elem, mf_store_item_t, owner_link));
    }
}

static void mf_store_server_on_open(mf_net_conn_t *conn, void *arg)
{
    mf_store_server_t *server = arg;
    mf_store_session_t *sess;

    sess = calloc(1, sizeof(*sess));
    if (sess == NULL) {
        mf_error("store: out of memory for a session of %s",
                 mf_net_conn_peer(conn));
        mf_net_conn_close(conn);
        return;
    }
    sess->server = server;
    sess->conn = conn;
    mf_list_init(&sess->ephemerals);
    mf_list_init(&sess->waiters);
    mf_vec_init(&sess->watches, sizeof(mf_store_swatch_t));
    sess->last_seen_ms = mf_time_ms();
    mf_list_push_back(&server->sessions, &sess->link);
    mf_net_conn_set_data(conn, sess);
    mf_debug("store: session of %s opened", mf_net_conn_peer(conn));
}

static void mf_store_server_on_close(mf_net_conn_t *conn, void *arg)
{
    mf_store_server_t *server = arg;
    mf_store_session_t *sess = mf_net_conn_get_data(conn);

    if (sess == NULL) {
        return;
    }
    mf_debug("store: session of %s closed", mf_store_server_peer(sess));
    mf_store_server_session_end(server, sess);
    mf_list_del(&sess->link);
    mf_vec_free(&sess->watches);
    mf_net_conn_set_data(conn, NULL);
    free(sess);
}

static void mf_store_server_on_request(mf_net_conn_t *conn, uint16_t opcode,
                                       uint64_t req_id, const uint8_t *body,
                                       size_t len, void *arg)
{
    mf_store_server_t *server = arg;
    mf_store_session_t *sess = mf_net_conn_get_data(conn);
    mf_store_req_t req;
    mf_status_t status;
    mf_wbuf_t resp;

    if ((sess == NULL) || sess->ended) {
        mf_net_conn_reply(conn, req_id, opcode, MF_ERR_STATE, NULL, 0);
        return;
    }
    sess->last_seen_ms = mf_time_ms();

    status = mf_store_req_decode(opcode, body, len, &req);
    if (status != MF_OK) {
        mf_debug("store: bad %s request (opcode %u, %zu bytes) from %s: %s",
                 mf_store_op_name(opcode), opcode, len,
                 mf_store_server_peer(sess), mf_status_name(status));
        mf_net_conn_reply(conn, req_id, opcode, status, NULL, 0);
        return;
    }
    /* it speaks the protocol: large values from now on */
    mf_net_conn_set_trusted(conn);

    mf_wbuf_init(&resp);
    switch (opcode) {
    case MF_STORE_OP_SET:
        status = mf_store_server_do_set(server, sess, &req);
        break;
    case MF_STORE_OP_GET:
        status = mf_store_server_do_get(server, sess, &req, req_id, &resp);
        break;
    case MF_STORE_OP_ADD:
        status = mf_store_server_do_add(server, sess, &req, &resp);
        break;
    case MF_STORE_OP_APPEND:
        status = mf_store_server_do_append(server, sess, &req);
        break;
    case MF_STORE_OP_CAS:
        status = mf_store_server_do_cas(server, sess, &req, &resp);
        break;
    case MF_STORE_OP_REMOVE:
        status = mf_store_server_do_remove(server, sess, &req);
        break;
    case MF_STORE_OP_WATCH:
        status = mf_store_server_do_watch(server, sess, &req);
        break;
    case MF_STORE_OP_UNWATCH:
        status = mf_store_server_do_unwatch(server, sess, &req);
        break;
    case MF_STORE_OP_HEARTBEAT:
        status = MF_OK;
        break;
    case MF_STORE_OP_RANK_JOIN:
        status = mf_store_server_do_rank_join(server, sess, &req, &resp);
        break;
    case MF_STORE_OP_RANK_LEAVE:
        status = mf_store_server_do_rank_leave(server, sess, &req);
        break;
    case MF_STORE_OP_RANK_SUBSCRIBE:
        status = mf_store_server_do_rank_subscribe(server, sess, &req);
        break;
    case MF_STORE_OP_RANK_LIST:
        status = mf_store_server_do_rank_list(server, sess, &req, &resp);
        break;
    default:
        status = MF_ERR_UNSUPPORTED; /* the decoder knows every opcode */
        break;
    }

    if (status != MF_INPROGRESS) {
        if (mf_wbuf_status(&resp) != MF_OK) {
            mf_error("store: out of memory for a %s response",
                     mf_store_op_name(opcode));
            status = MF_ERR_NOMEM;
            resp.len = 0;
        }
        mf_net_conn_reply(conn, req_id, opcode, status,
                          (resp.len > 0) ? resp.data : NULL, resp.len);
    }
    mf_wbuf_free(&resp);
}

/* Drops the sessions whose heartbeats stopped. */
static void mf_store_server_sweep(evutil_socket_t fd, short what, void *arg)
{
    mf_store_server_t *server = arg;
    uint64_t now = mf_time_ms();
    mf_store_session_t *sess;
    mf_list_t *pos, *tmp;

    mf_list_for_each_safe(pos, tmp, &server->sessions)
    {
        sess = mf_container_of(pos, mf_store_session_t, link);
        if (sess->ended ||
            (now - sess->last_seen_ms <= server->cfg.heartbeat_timeout_ms)) {
            continue;
        }
        mf_warn("store: session of %s silent for %" PRIu64
                " ms (heartbeat_timeout_ms %u); dropping it",
                mf_store_server_peer(sess), now - sess->last_seen_ms,
                server->cfg.heartbeat_timeout_ms);
        mf_store_server_session_end(server, sess);
        mf_net_conn_close(sess->conn);
    }
}

/* ---------------------------------------------------------- start, stop */

static const mf_net_server_ops_t mf_store_server_net_ops = {
    .on_request = mf_store_server_on_request,
    .on_open = mf_store_server_on_open,
    .on_close = mf_store_server_on_close,
};

typedef struct mf_store_server_timer_args {
    mf_store_server_t *server;
    mf_status_t status;
} mf_store_server_timer_args_t;

static void mf_store_server_timer_start(void *arg)
{
    mf_store_server_timer_args_t *args = arg;
    mf_store_server_t *server = args->server;
    uint32_t period = server->cfg.heartbeat_timeout_ms / 4;
    struct timeval tv;

    period = MF_MAX(period, 10u);
    period = MF_MIN(period, 1000u);
    tv.tv_sec = period / 1000;
    tv.tv_usec = (period % 1000) * 1000;
    server->sweep_timer = event_new(mf_net_server_base(server->net), -1,
                                    EV_PERSIST, mf_store_server_sweep, server);
    if (server->sweep_timer == NULL) {
        mf_error("store: event_new() failed for the heartbeat sweep");
        args->status = MF_ERR_NOMEM;
        return;
    }
    if (evtimer_add(server->sweep_timer, &tv) != 0) {
        mf_error("store: evtimer_add() failed for the heartbeat sweep");
        event_free(server->sweep_timer);
        server->sweep_timer = NULL;
        args->status = MF_ERR_IO;
        return;
    }
    args->status = MF_OK;
}

static void mf_store_server_timer_stop(void *arg)
{
    mf_store_server_t *server = arg;

    if (server->sweep_timer != NULL) {
        event_free(server->sweep_timer);
        server->sweep_timer = NULL;
    }
}

static void mf_store_server_free_state(mf_store_server_t *server)
{
    mf_hmap_entry_t *entry;
    mf_store_item_t *item;
    mf_hmap_iter_t it;

    mf_hmap_iter_init(&server->items, &it);
    while ((entry = mf_hmap_next(&server->items, &it)) != NULL) {
        item = entry->value;
        free(item->data);
        free(item);
    }
    mf_hmap_free(&server->items);
    /* Waiters belong to sessions, all closed by now: waitqs is empty. */
    mf_hmap_iter_init(&server->waitqs, &it);
    while ((entry = mf_hmap_next(&server->waitqs, &it)) != NULL) {
        free(entry->value);
    }
    mf_hmap_free(&server->waitqs);
    mf_hmap_iter_init(&server->groups, &it);
    while ((entry = mf_hmap_next(&server->groups, &it)) != NULL) {
        mf_store_server_group_free(entry->value);
    }
    mf_hmap_free(&server->groups);
}

MF_API mf_status_t mf_store_server_start(const mf_store_server_config_t *cfg,
                                         mf_store_server_t **server_p)
{
    mf_store_server_timer_args_t timer_args;
    mf_net_server_params_t params;
    mf_store_server_t *server;
    mf_status_t status;
    size_t cfg_size;

    if ((cfg == NULL) || (server_p == NULL)) {
        mf_error("store: mf_store_server_start() needs a config and an "
                 "output");
        status = MF_ERR_INVALID;
        goto err;
    }
    server = calloc(1, sizeof(*server));
    if (server == NULL) {
        mf_error("store: out of memory for a server");
        status = MF_ERR_NOMEM;
        goto err;
    }
    /* A config from an older header is shorter: the rest keeps defaults. */
    mf_store_server_config_init(&server->cfg);
    cfg_size = ((cfg->size == 0) || (cfg->size > sizeof(*cfg))) ? sizeof(*cfg)
                                                                : cfg->size;
    memcpy(&server->cfg, cfg, cfg_size);
    server->cfg.size = sizeof(server->cfg);
    server->cfg.host[sizeof(server->cfg.host) - 1] = '\0';
    if ((server->cfg.max_key_size == 0) || (server->cfg.max_total_bytes == 0) ||
        (server->cfg.max_value_size > (1u << 30))) {
        mf_error("store: bad server config: max_key_size %u, max_value_size "
                 "%u, max_total_bytes %" PRIu64,
                 server->cfg.max_key_size, server->cfg.max_value_size,
                 server->cfg.max_total_bytes);
        status = MF_ERR_CONFIG;
        goto err_free_server;
    }

    mf_hmap_init(&server->items);
    mf_hmap_init(&server->waitqs);
    mf_hmap_init(&server->groups);
    mf_list_init(&server->sessions);
    mf_net_global_init();

    memset(&params, 0, sizeof(params));
    params.host = server->cfg.host;
    params.port = server->cfg.port;
    params.max_body = 2 * (size_t)server->cfg.max_value_size +
                      server->cfg.max_key_size + MF_STORE_BODY_OVERHEAD;
    params.idle_timeout_ms = server->cfg.idle_timeout_ms;
    params.max_conns = server->cfg.max_connections;
    params.ops = &mf_store_server_net_ops;
    params.arg = server;
    status = mf_net_server_start(&params, &server->net);
    if (status != MF_OK) {
        goto err_free_state; /* mf_net_server_start logged why */
    }

    if (server->cfg.heartbeat_timeout_ms > 0) {
        timer_args.server = server;
        timer_args.status = MF_ERR_STATE;
        status = mf_net_server_run_sync(
            server->net, mf_store_server_timer_start, &timer_args);
        if (status == MF_OK) {
            status = timer_args.status;
        }
        if (status != MF_OK) {
            mf_error("store: cannot start the heartbeat sweep: %s",
                     mf_status_str(status));
            goto err_stop_net;
        }
    }

    mf_debug("store: serving on %s:%u", server->cfg.host,
             mf_net_server_port(server->net));
    *server_p = server;
    return MF_OK;

err_stop_net:
    mf_net_server_stop(server->net);
err_free_state:
    mf_store_server_free_state(server);
err_free_server:
    free(server);
err:
    return status;
}

MF_API uint16_t mf_store_server_port(const mf_store_server_t *server)
{
    return mf_net_server_port(server->net);
}

MF_API void mf_store_server_stop(mf_store_server_t *server)
{
    if (server == NULL) {
        return;
    }
    if (mf_net_server_run_sync(server->net, mf_store_server_timer_stop,
                               server) != MF_OK) {
        mf_warn("store: could not reach the server loop to stop its timer");
    }
    /* Closes every connection; on_close ends and frees each session. */
    mf_net_server_stop(server->net);
    mf_store_server_free_state(server);
    free(server);
}
