/*
 * The config store client: requests over one mf_net client connection, a
 * heartbeat thread, watch and rank-event dispatch, and the restoration of
 * the session (watches, ephemeral keys, rank subscriptions and ranks) after
 * a reconnect.
 *
 * Threads and invariants:
 * - Requests run on the caller's thread (mf_net_client_call is blocking
 *   and thread safe).  The heartbeat thread sends one every heartbeat_ms;
 *   when the connection broke, that call reconnects and the net client
 *   runs mf_store_on_reconnect on a thread of its own.
 * - Notifies arrive on the net loop thread, which runs the callbacks.
 *   store->lock guards every list of the store.  A watch callback runs with
 *   the lock released and store->running pointing at its watch; a watch is
 *   unlinked and freed only while it is not running, so mf_store_unwatch
 *   waits on cb_done for it, except on the loop thread itself (a callback
 *   unwatching), where the dispatcher frees it after the callback.
 * - What the session must restore (ephemeral values, ranks, watches,
 *   subscriptions) is recorded only after the server accepted it.
 * - Every connection opens with a HEARTBEAT (the net client's open_opcode):
 *   the server takes frames over 64 KiB only after a first request.
 */
#include "store/client_int.h"

/* ------------------------------------------------------------- requests */

mf_status_t mf_store_check_key(const char *func, const char *key, size_t *len_p)
{
    if ((key == NULL) || (key[0] == '\0')) {
        mf_error("store: %s() needs a non-empty key", func);
        return MF_ERR_INVALID;
    }
    *len_p = strlen(key);
    return MF_OK;
}

mf_status_t mf_store_check_value(const char *func, const void *value,
                                 size_t len)
{
    if ((value == NULL) && (len > 0)) {
        mf_error("store: %s() got a NULL value of %zu bytes", func, len);
        return MF_ERR_INVALID;
    }
    if (len > MF_STORE_CLIENT_MAX_VALUE) {
        mf_error("store: %s() got a value of %zu bytes, above %zu", func, len,
                 MF_STORE_CLIENT_MAX_VALUE);
        return MF_ERR_TOO_LARGE;
    }
    return MF_OK;
}

uint32_t mf_store_add_timeouts(uint32_t a, uint32_t b)
{
    uint64_t sum = (uint64_t)a + b;

    return (sum > UINT32_MAX) ? UINT32_MAX : (uint32_t)sum;
}

/*
 * Sends a request and waits for the response.  Returns the status of the
 * response, or of the call when no response came.  *resp_p is always
 * valid afterwards and must be released with mf_net_resp_free().
 */
mf_status_t mf_store_request(mf_store_t *store, uint16_t op,
                             const mf_store_req_t *req, uint32_t timeout_ms,
                             mf_net_resp_t *resp_p)
{
    mf_status_t status;
    mf_wbuf_t w;

    memset(resp_p, 0, sizeof(*resp_p));
    mf_wbuf_init(&w);
    status = mf_store_req_encode(op, req, &w);
    if (status != MF_OK) {
        mf_error("store: cannot encode a %s request: %s", mf_store_op_name(op),
                 mf_status_name(status));
        goto out_free_wbuf;
    }
    status =
        mf_net_client_call(store->net, op, w.data, w.len, timeout_ms, resp_p);
    if (status != MF_OK) {
        mf_debug("store: %s request to %s:%u failed: %s", mf_store_op_name(op),
                 store->host, store->port, mf_status_name(status));
        goto out_free_wbuf;
    }
    status = resp_p->status;
out_free_wbuf:
    mf_wbuf_free(&w);
    return status;
}

/* A request whose response has no body. */
mf_status_t mf_store_request_simple(mf_store_t *store, uint16_t op,
                                    const mf_store_req_t *req)
{
    mf_net_resp_t resp;
    mf_status_t status;

    status = mf_store_request(store, op, req, store->cfg.op_timeout_ms, &resp);
    mf_net_resp_free(&resp);
    return status;
}

/* Turns a response body holding "bytes value" into a malloc'd,
 * NUL-terminated value, taking the body from resp. */
mf_status_t mf_store_take_value(mf_net_resp_t *resp, void **value_p,
                                size_t *len_p)
{
    const void *value;
    size_t len;
    uint8_t *data;

    if (mf_store_value_decode(resp->body, resp->len, &value, &len) != MF_OK) {
        mf_error("store: malformed value in a response of %zu bytes",
                 resp->len);
        return MF_ERR_PROTO;
    }
    /* The body holds a 4-byte length before the value: room for a NUL. */
    data = resp->body;
    memmove(data, value, len);
    data[len] = '\0';
    resp->body = NULL;
    resp->len = 0;
    *value_p = data;
    *len_p = len;
    return MF_OK;
}

/* ------------------------------------------------------------- dispatch */

static void mf_store_dispatch_watch(mf_store_t *store, const uint8_t *body,
                                    size_t len)
{
    mf_store_watch_event_t ev;
    mf_store_watch_t *watch;
    mf_list_t *pos, *next;
    char *key;

    if (mf_store_watch_event_decode(body, len, &ev) != MF_OK) {
        mf_warn("store: malformed watch event of %zu bytes from %s:%u", len,
                store->host, store->port);
        return;
    }
    key = malloc(ev.key_len + 1);
    if (key == NULL) {
        mf_error("store: out of memory for a watch event; it is lost");
        return;
    }
    memcpy(key, ev.key, ev.key_len);
    key[ev.key_len] = '\0';

    pthread_mutex_lock(&store->lock);
    store->in_dispatch = true;
    store->dispatch_thread = pthread_self();
    pos = store->watches.next;
    while (pos != &store->watches) {
        watch = mf_container_of(pos, mf_store_watch_t, link);
        if (watch->removed || (watch->prefix_len > ev.key_len) ||
            (memcmp(watch->prefix, key, watch->prefix_len) != 0)) {
            pos = pos->next;
            continue;
        }
        store->running = watch;
        pthread_mutex_unlock(&store->lock);
        watch->cb((mf_store_event_t)ev.event, key, ev.value, ev.value_len,
                  watch->arg);
        pthread_mutex_lock(&store->lock);
        next = pos->next;
        store->running = NULL;
        if (watch->removed) {
            mf_list_del(&watch->link);
            free(watch);
        }
        pthread_cond_broadcast(&store->cb_done);
        pos = next;
    }
    store->in_dispatch = false;
    pthread_mutex_unlock(&store->lock);
    free(key);
}

static void mf_store_dispatch_rank(mf_store_t *store, const uint8_t *body,
                                   size_t len)
{
    mf_store_rank_event_t ev;
    mf_rank_event_cb cb = NULL;
    mf_store_sub_t *sub;
    void *cb_arg = NULL;
    mf_list_t *pos;
    char *group;

    if (mf_store_rank_event_decode(body, len, &ev) != MF_OK) {
        mf_warn("store: malformed rank event of %zu bytes from %s:%u", len,
                store->host, store->port);
        return;
    }
    group = malloc(ev.group_len + 1);
    if (group == NULL) {
        mf_error("store: out of memory for a rank event; it is lost");
        return;
    }
    memcpy(group, ev.group, ev.group_len);
    group[ev.group_len] = '\0';

    pthread_mutex_lock(&store->lock);
    for (pos = store->subs.next; pos != &store->subs; pos = pos->next) {
        sub = mf_container_of(pos, mf_store_sub_t, link);
        if ((sub->group_len == ev.group_len) &&
            (memcmp(sub->group, group, ev.group_len) == 0)) {
            cb = sub->cb;
            cb_arg = sub->arg;
            break;
        }
    }
    if (cb != NULL) {
        store->in_dispatch = true;
        store->dispatch_thread = pthread_self();
    }
    pthread_mutex_unlock(&store->lock);

    if (cb != NULL) {
        cb(group, ev.rank, (mf_rank_event_t)ev.event, cb_arg);
        pthread_mutex_lock(&store->lock);
        store->in_dispatch = false;
        pthread_mutex_unlock(&store->lock);
    }
    free(group);
}

static void mf_store_on_notify(uint16_t opcode, const uint8_t *body, size_t len,
                               void *arg)
{
    mf_store_t *store = arg;

    switch (opcode) {
    case MF_STORE_NOTIFY_WATCH:
        mf_store_dispatch_watch(store, body, len);
        break;
    case MF_STORE_NOTIFY_RANK:
        mf_store_dispatch_rank(store, body, len);
        break;
    default:
        mf_debug("store: ignoring notify opcode %u from %s:%u", opcode,
                 store->host, store->port);
        break;
    }
}

/* ----------------------------------------------------- session restore */

typedef struct mf_store_replay {
    uint16_t op;
    mf_wbuf_t w;
    char what[128];
} mf_store_replay_t;

static void mf_store_replay_add(mf_vec_t *replays, uint16_t op,
                                const mf_store_req_t *req, const char *what,
                                const void *name, size_t name_len)
{
    mf_store_replay_t *replay = mf_vec_push(replays, NULL);

    if (replay == NULL) {
        mf_error("store: out of memory restoring the session; %s %.*s is "
                 "not restored",
                 what, (int)MF_MIN(name_len, 64), (const char *)name);
        return;
    }
    replay->op = op;
    mf_wbuf_init(&replay->w);
    mf_store_req_encode(op, req, &replay->w);
    snprintf(replay->what, sizeof(replay->what), "%s %.*s", what,
             (int)MF_MIN(name_len, 80), (const char *)name);
}

/* Encodes, under the lock, every request that rebuilds the session. */
static void mf_store_replay_collect(mf_store_t *store, mf_vec_t *replays)
{
    const mf_store_eph_value_t *value;
    const mf_store_held_rank_t *held;
    const mf_store_watch_t *watch;
    const mf_store_sub_t *sub;
    mf_hmap_entry_t *entry;
    mf_store_req_t req;
    mf_hmap_iter_t it;
    mf_list_t *pos;
    char what[96];
    size_t i;

    for (pos = store->watches.next; pos != &store->watches; pos = pos->next) {
        watch = mf_container_of(pos, mf_store_watch_t, link);
        if (watch->removed) {
            continue;
        }
        memset(&req, 0, sizeof(req));
        req.id = watch->id;
        req.key = watch->prefix;
        req.key_len = watch->prefix_len;
        mf_store_replay_add(replays, MF_STORE_OP_WATCH, &req, "watch",
                            watch->prefix, watch->prefix_len);
    }
    mf_hmap_iter_init(&store->ephemerals, &it);
    while ((entry = mf_hmap_next(&store->ephemerals, &it)) != NULL) {
        value = entry->value;
        memset(&req, 0, sizeof(req));
        req.key = entry->key;
        req.key_len = entry->key_len;
        req.value = value->data;
        req.value_len = value->len;
        req.flags = MF_STORE_EPHEMERAL;
        mf_store_replay_add(replays, MF_STORE_OP_SET, &req, "ephemeral key",
                            entry->key, entry->key_len);
    }
    for (pos = store->subs.next; pos != &store->subs; pos = pos->next) {
        sub = mf_container_of(pos, mf_store_sub_t, link);
        memset(&req, 0, sizeof(req));
        req.key = sub->group;
        req.key_len = sub->group_len;
        mf_store_replay_add(replays, MF_STORE_OP_RANK_SUBSCRIBE, &req,
                            "subscription to group", sub->group,
                            sub->group_len);
    }
    for (i = 0; i < store->ranks.count; i++) {
        held = mf_vec_at(&store->ranks, i);
        memset(&req, 0, sizeof(req));
        req.key = held->group;
        req.key_len = strlen(held->group);
        req.world_size = held->world_size;
        req.rank = held->rank;
        snprintf(what, sizeof(what), "%.64s rank %u", held->group, held->rank);
        mf_store_replay_add(replays, MF_STORE_OP_RANK_JOIN, &req, "group", what,
                            strlen(what));
    }
}

static bool mf_store_is_closing(mf_store_t *store)
{
    bool closing;

    pthread_mutex_lock(&store->lock);
    closing = store->closing;
    pthread_mutex_unlock(&store->lock);
    return closing;
}

static void mf_store_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while ((nanosleep(&ts, &ts) != 0) && (errno == EINTR)) {
    }
}

static void mf_store_on_reconnect(void *arg)
{
    mf_store_t *store = arg;
    mf_store_replay_t *replay;
    mf_net_resp_t resp;
    mf_status_t status;
    mf_vec_t replays;
    size_t i, failed = 0;
    unsigned attempt;

    mf_vec_init(&replays, sizeof(mf_store_replay_t));
    pthread_mutex_lock(&store->lock);
    if (!store->closing) {
        mf_store_replay_collect(store, &replays);
    }
    pthread_mutex_unlock(&store->lock);

    for (i = 0; i < replays.count; i++) {
        replay = mf_vec_at(&replays, i);
        status = mf_wbuf_status(&replay->w);
        for (attempt = 0; status == MF_OK; attempt++) {
            status = mf_net_client_call(store->net, replay->op, replay->w.data,
                                        replay->w.len, store->cfg.op_timeout_ms,
                                        &resp);
            if (status == MF_OK) {
                status = resp.status;
                mf_net_resp_free(&resp);
            }
            /* The server may not have seen the old connection close yet,
             * so our own rank can still look taken for a moment. */
            if ((status != MF_ERR_EXISTS) ||
                (replay->op != MF_STORE_OP_RANK_JOIN) ||
                (attempt == MF_STORE_REJOIN_ATTEMPTS) ||
                mf_store_is_closing(store)) {
                break;
            }
            status = MF_OK;
            mf_store_sleep_ms(MF_STORE_REJOIN_DELAY_MS);
        }
        if (status != MF_OK) {
            mf_warn("store: after reconnecting to %s:%u, restoring %s "
                    "failed: %s",
                    store->host, store->port, replay->what,
                    mf_status_name(status));
            failed++;
        }
        mf_wbuf_free(&replay->w);
    }
    if (replays.count > 0) {
        mf_info("store: reconnected to %s:%u; restored %zu of %zu session "
                "items",
                store->host, store->port, replays.count - failed,
                replays.count);
    }
    mf_vec_free(&replays);
}

/* ------------------------------------------------------------ heartbeat */

static void *mf_store_heartbeat_thread(void *arg)
{
    mf_store_t *store = arg;
    struct timespec deadline;
    mf_net_resp_t resp;
    mf_store_req_t req;
    mf_status_t status;
    uint32_t timeout_ms;

    /* Short enough that mf_store_close() does not wait long on a server
     * that stopped answering. */
    timeout_ms = MF_MIN(MF_MAX(store->cfg.heartbeat_ms, 1000u),
                        store->cfg.op_timeout_ms);
    memset(&req, 0, sizeof(req));
    pthread_mutex_lock(&store->lock);
    while (!store->closing) {
        mf_deadline_after_ms(&deadline, store->cfg.heartbeat_ms);
        while (!store->closing &&
               (pthread_cond_timedwait(&store->hb_wake, &store->lock,
                                       &deadline) != ETIMEDOUT)) {
        }
        if (store->closing) {
            break;
        }
        pthread_mutex_unlock(&store->lock);
        status = mf_store_request(store, MF_STORE_OP_HEARTBEAT, &req,
                                  timeout_ms, &resp);
        mf_net_resp_free(&resp);
        if (status != MF_OK) {
            mf_debug("store: heartbeat to %s:%u failed: %s", store->host,
                     store->port, mf_status_name(status));
        }
        pthread_mutex_lock(&store->lock);
    }
    pthread_mutex_unlock(&store->lock);
    return NULL;
}

/* ------------------------------------------------------ connect, close */

MF_API void mf_store_config_init(mf_store_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = sizeof(*cfg);
    cfg->connect_timeout_ms = 5000;
    cfg->op_timeout_ms = 10000;
    cfg->heartbeat_ms = 1000;
    if (mf_cfg_text_load_env(&mf_tls_section, cfg->tls_settings,
                             sizeof(cfg->tls_settings), "MF_") != MF_OK) {
        mf_error("store: ignoring the MF_TLS_* environment settings");
        cfg->tls_settings[0] = '\0';
    }
}

MF_API mf_status_t mf_store_config_set(mf_store_config_t *cfg, const char *key,
                                       const char *value)
{
    if (cfg == NULL || key == NULL || value == NULL ||
        cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    return mf_cfg_text_set(&mf_tls_section, cfg->tls_settings,
                           sizeof(cfg->tls_settings), key, value, "setting");
}

static void mf_store_free_state(mf_store_t *store)
{
    mf_hmap_entry_t *entry;
    mf_hmap_iter_t it;
    mf_list_t *elem;
    size_t i;

    while ((elem = mf_list_pop_front(&store->watches)) != NULL) {
        free(mf_container_of(elem, mf_store_watch_t, link));
    }
    while ((elem = mf_list_pop_front(&store->subs)) != NULL) {
        free(mf_container_of(elem, mf_store_sub_t, link));
    }
    mf_hmap_iter_init(&store->ephemerals, &it);
    while ((entry = mf_hmap_next(&store->ephemerals, &it)) != NULL) {
        free(entry->value);
    }
    mf_hmap_free(&store->ephemerals);
    for (i = 0; i < store->ranks.count; i++) {
        free(((mf_store_held_rank_t *)mf_vec_at(&store->ranks, i))->group);
    }
    mf_vec_free(&store->ranks);
    mf_hmap_free(&store->rounds);
}

MF_API mf_status_t mf_store_connect(const char *url,
                                    const mf_store_config_t *cfg,
                                    mf_store_t **store_p)
{
    mf_net_endpoint_t more[MF_URL_LIST_MAX];
    mf_net_client_params_t params;
    mf_store_t *store;
    mf_status_t status;
    size_t cfg_size;
    int ret;

    if ((url == NULL) || (store_p == NULL)) {
        mf_error("store: mf_store_connect() needs a URL and an output");
        status = MF_ERR_INVALID;
        goto err;
    }
    store = calloc(1, sizeof(*store));
    if (store == NULL) {
        mf_error("store: out of memory for a client");
        status = MF_ERR_NOMEM;
        goto err;
    }
    mf_store_config_init(&store->cfg);
    if (cfg != NULL) {
        cfg_size = ((cfg->size == 0) || (cfg->size > sizeof(*cfg)))
                       ? sizeof(*cfg)
                       : cfg->size;
        memcpy(&store->cfg, cfg, cfg_size);
        store->cfg.size = sizeof(store->cfg);
        if (cfg_size < sizeof(*cfg)) { /* an older header's: no TLS */
            store->cfg.tls_settings[0] = '\0';
        }
        store->cfg.tls_settings[sizeof(store->cfg.tls_settings) - 1] = '\0';
    }
    if (store->cfg.heartbeat_ms == 0) {
        store->cfg.heartbeat_ms = 1000;
    }
    if (store->cfg.op_timeout_ms == 0) {
        store->cfg.op_timeout_ms = 10000;
    }
    status = mf_tls_create_from_text(store->cfg.tls_settings, false,
                                     "store client", &store->tls);
    if (status != MF_OK) {
        goto err_free_store;
    }
    status =
        mf_url_list_parse(url, store->ends, MF_URL_LIST_MAX, &store->nends);
    if (status != MF_OK) {
        mf_error("store: bad URL '%s': expected tcp://host:port (or a list "
                 "of them, comma-separated)",
                 url);
        goto err_free_store;
    }
    mf_strlcpy(store->host, store->ends[0].host, sizeof(store->host));
    store->port = store->ends[0].port;
    ret = pthread_mutex_init(&store->lock, NULL);
    if (ret != 0) {
        mf_error("store: pthread_mutex_init() failed: %s", strerror(ret));
        status = MF_ERR_NOMEM;
        goto err_free_store;
    }
    ret = pthread_cond_init(&store->cb_done, NULL);
    if (ret != 0) {
        mf_error("store: pthread_cond_init() failed: %s", strerror(ret));
        status = MF_ERR_NOMEM;
        goto err_destroy_lock;
    }
    ret = pthread_cond_init(&store->hb_wake, NULL);
    if (ret != 0) {
        mf_error("store: pthread_cond_init() failed: %s", strerror(ret));
        status = MF_ERR_NOMEM;
        goto err_destroy_cb_done;
    }
    mf_list_init(&store->watches);
    mf_list_init(&store->subs);
    mf_hmap_init(&store->ephemerals);
    mf_vec_init(&store->ranks, sizeof(mf_store_held_rank_t));
    mf_hmap_init(&store->rounds);
    mf_net_global_init();

    memset(&params, 0, sizeof(params));
    params.host = store->host;
    params.port = store->port;
    for (size_t i = 1; i < store->nends; i++) {
        more[i - 1].host = store->ends[i].host;
        more[i - 1].port = store->ends[i].port;
    }
    params.more = more;
    params.nmore = store->nends - 1;
    params.connect_timeout_ms = store->cfg.connect_timeout_ms;
    params.max_body = MF_STORE_CLIENT_MAX_BODY;
    params.on_notify = mf_store_on_notify;
    params.on_reconnect = mf_store_on_reconnect;
    /* the server takes large values once a request of the connection
     * decoded: this small one goes first, even ahead of the large call
     * that reconnects */
    params.open_opcode = MF_STORE_OP_HEARTBEAT;
    params.arg = store;
    params.stream = store->tls != NULL ? mf_tls_stream(store->tls) : NULL;
    status = mf_net_client_create(&params, &store->net);
    if (status != MF_OK) {
        mf_error("store: cannot connect to %s:%u: %s", store->host, store->port,
                 mf_status_str(status));
        goto err_destroy_hb_wake;
    }

    ret = pthread_create(&store->hb_thread, NULL, mf_store_heartbeat_thread,
                         store);
    if (ret != 0) {
        mf_error("store: cannot start the heartbeat thread: %s", strerror(ret));
        status = MF_ERR_NOMEM;
        goto err_destroy_net;
    }
    store->hb_started = true;
    mf_debug("store: connected to %s:%u", store->host, store->port);
    *store_p = store;
    return MF_OK;

err_destroy_net:
    mf_net_client_destroy(store->net);
err_destroy_hb_wake:
    mf_store_free_state(store);
    pthread_cond_destroy(&store->hb_wake);
err_destroy_cb_done:
    pthread_cond_destroy(&store->cb_done);
err_destroy_lock:
    pthread_mutex_destroy(&store->lock);
err_free_store:
    mf_tls_destroy(store->tls);
    free(store);
err:
    return status;
}

MF_API void mf_store_close(mf_store_t *store)
{
    if (store == NULL) {
        return;
    }
    pthread_mutex_lock(&store->lock);
    store->closing = true;
    pthread_cond_broadcast(&store->hb_wake);
    pthread_mutex_unlock(&store->lock);
    if (store->hb_started) {
        pthread_join(store->hb_thread, NULL);
    }
    /* Closing the connection ends the session: the server drops its
     * ephemeral keys and reports its ranks lost. */
    mf_net_client_destroy(store->net);
    mf_store_free_state(store);
    pthread_cond_destroy(&store->hb_wake);
    pthread_cond_destroy(&store->cb_done);
    pthread_mutex_destroy(&store->lock);
    mf_tls_destroy(store->tls); /* after the connection that used it */
    free(store);
}
