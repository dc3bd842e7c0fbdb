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
#include "store/server_fence.h"
#include "store/server_int.h"

/* ------------------------------------------------------------- helpers */

const char *mf_store_server_peer(const mf_store_session_t *session)
{
    return mf_net_conn_peer(session->conn);
}

mf_status_t mf_store_server_check_key(const mf_store_session_t *sess,
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

void mf_store_server_waiter_destroy(mf_store_server_t *server,
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

void mf_store_server_item_remove(mf_store_server_t *server,
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

mf_status_t mf_store_server_do_set(mf_store_server_t *server,
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

mf_status_t mf_store_server_do_get(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req, uint64_t req_id,
                                   mf_wbuf_t *resp)
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

mf_status_t mf_store_server_do_add(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req, mf_wbuf_t *resp)
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

mf_status_t mf_store_server_do_append(mf_store_server_t *server,
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

mf_status_t mf_store_server_do_cas(mf_store_server_t *server,
                                   mf_store_session_t *sess,
                                   const mf_store_req_t *req, mf_wbuf_t *resp)
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

mf_status_t mf_store_server_do_remove(mf_store_server_t *server,
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

mf_status_t mf_store_server_do_watch(mf_store_server_t *server,
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

mf_status_t mf_store_server_do_unwatch(mf_store_server_t *server,
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
    return mf_store_server_start_stream(cfg, NULL, server_p);
}

mf_status_t mf_store_server_start_stream(const mf_store_server_config_t *cfg,
                                         const mf_net_stream_ops_t *stream,
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
    if (cfg_size < sizeof(*cfg)) { /* an older header's: no TLS */
        server->cfg.tls_settings[0] = '\0';
    }
    server->cfg.tls_settings[sizeof(server->cfg.tls_settings) - 1] = '\0';
    if ((server->cfg.max_key_size == 0) || (server->cfg.max_total_bytes == 0) ||
        (server->cfg.max_value_size > (1u << 30))) {
        mf_error("store: bad server config: max_key_size %u, max_value_size "
                 "%u, max_total_bytes %" PRIu64,
                 server->cfg.max_key_size, server->cfg.max_value_size,
                 server->cfg.max_total_bytes);
        status = MF_ERR_CONFIG;
        goto err_free_server;
    }

    /* the embedding service's stream, else the server's own TLS */
    if (stream == NULL) {
        status = mf_tls_create_from_text(server->cfg.tls_settings, true,
                                         "mf-store", &server->tls);
        if (status != MF_OK) {
            goto err_free_server;
        }
        stream = server->tls != NULL ? mf_tls_stream(server->tls) : NULL;
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
    params.stream = stream;
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
    mf_tls_destroy(server->tls);
    free(server);
err:
    return status;
}

void mf_store_server_fence(mf_store_server_t *server,
                           const atomic_uint_least64_t *until)
{
    mf_net_server_fence(server->net, until);
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
    mf_tls_destroy(server->tls); /* after the connections using it */
    free(server);
}
