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
#include "net/net.h"
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
    char host[256];
    uint16_t port;
    mf_net_client_t *net;

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

/* ------------------------------------------------------------- requests */

static mf_status_t mf_store_check_key(const char *func, const char *key,
                                      size_t *len_p)
{
    if ((key == NULL) || (key[0] == '\0')) {
        mf_error("store: %s() needs a non-empty key", func);
        return MF_ERR_INVALID;
    }
    *len_p = strlen(key);
    return MF_OK;
}

static mf_status_t mf_store_check_value(const char *func, const void *value,
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

static uint32_t mf_store_add_timeouts(uint32_t a, uint32_t b)
{
    uint64_t sum = (uint64_t)a + b;

    return (sum > UINT32_MAX) ? UINT32_MAX : (uint32_t)sum;
}

/*
 * Sends a request and waits for the response.  Returns the status of the
 * response, or of the call when no response came.  *resp_p is always
 * valid afterwards and must be released with mf_net_resp_free().
 */
static mf_status_t mf_store_request(mf_store_t *store, uint16_t op,
                                    const mf_store_req_t *req,
                                    uint32_t timeout_ms, mf_net_resp_t *resp_p)
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
static mf_status_t mf_store_request_simple(mf_store_t *store, uint16_t op,
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
static mf_status_t mf_store_take_value(mf_net_resp_t *resp, void **value_p,
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
    }
    if (store->cfg.heartbeat_ms == 0) {
        store->cfg.heartbeat_ms = 1000;
    }
    if (store->cfg.op_timeout_ms == 0) {
        store->cfg.op_timeout_ms = 10000;
    }
    status = mf_url_parse(url, store->host, sizeof(store->host), &store->port);
    if (status != MF_OK) {
        mf_error("store: bad URL '%s': expected tcp://host:port", url);
        goto err_free_store;
    }
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
    params.connect_timeout_ms = store->cfg.connect_timeout_ms;
    params.max_body = MF_STORE_CLIENT_MAX_BODY;
    params.on_notify = mf_store_on_notify;
    params.on_reconnect = mf_store_on_reconnect;
    /* the server takes large values once a request of the connection
     * decoded: this small one goes first, even ahead of the large call
     * that reconnects */
    params.open_opcode = MF_STORE_OP_HEARTBEAT;
    params.arg = store;
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
    free(store);
}

/* ------------------------------------------------------------- key ops */

/* Records (or forgets) what must be re-set after a reconnect. */
static void mf_store_note_ephemeral(mf_store_t *store, const char *key,
                                    size_t key_len, const void *value,
                                    size_t len, bool ephemeral)
{
    mf_store_eph_value_t *copy = NULL, *old = NULL;

    if (ephemeral) {
        copy = malloc(sizeof(*copy) + len);
        if (copy == NULL) {
            mf_error("store: out of memory; ephemeral key %s will not be "
                     "restored after a reconnect",
                     key);
            ephemeral = false;
        } else {
            copy->len = len;
            if (len > 0) {
                memcpy(copy->data, value, len);
            }
        }
    }
    pthread_mutex_lock(&store->lock);
    if (ephemeral) {
        if (mf_hmap_put(&store->ephemerals, key, key_len, copy,
                        (void **)&old) != MF_OK) {
            mf_error("store: out of memory; ephemeral key %s will not be "
                     "restored after a reconnect",
                     key);
            old = mf_hmap_remove(&store->ephemerals, key, key_len);
            free(copy);
        }
    } else {
        old = mf_hmap_remove(&store->ephemerals, key, key_len);
    }
    pthread_mutex_unlock(&store->lock);
    free(old);
}

/*
 * After add, append or cas changed a key that this session holds as
 * ephemeral, the value to restore after a reconnect changes too: it
 * becomes value (append: the old value followed by value).
 */
static void mf_store_update_ephemeral(mf_store_t *store, const char *key,
                                      size_t key_len, const void *value,
                                      size_t len, bool append)
{
    mf_store_eph_value_t *old, *copy;
    size_t keep;

    pthread_mutex_lock(&store->lock);
    old = mf_hmap_get(&store->ephemerals, key, key_len);
    if (old == NULL) {
        goto out_unlock;
    }
    keep = append ? old->len : 0;
    copy = malloc(sizeof(*copy) + keep + len);
    if (copy == NULL) {
        mf_error("store: out of memory; ephemeral key %s will be restored "
                 "with an old value after a reconnect",
                 key);
        goto out_unlock;
    }
    copy->len = keep + len;
    if (keep > 0) {
        memcpy(copy->data, old->data, keep);
    }
    if (len > 0) {
        memcpy(copy->data + keep, value, len);
    }
    /* Replacing an existing entry allocates nothing. */
    if (mf_hmap_put(&store->ephemerals, key, key_len, copy, NULL) != MF_OK) {
        free(copy);
        goto out_unlock;
    }
    free(old);
out_unlock:
    pthread_mutex_unlock(&store->lock);
}

MF_API mf_status_t mf_store_set(mf_store_t *store, const char *key,
                                const void *value, size_t len, uint32_t flags)
{
    mf_store_req_t req;
    mf_status_t status;
    size_t key_len;

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, key, &key_len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_store_check_value(__func__, value, len);
    if (status != MF_OK) {
        return status;
    }
    if (flags & ~MF_STORE_EPHEMERAL) {
        mf_error("store: mf_store_set() got unknown flags 0x%x", flags);
        return MF_ERR_INVALID;
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.key_len = key_len;
    req.value = value;
    req.value_len = len;
    req.flags = flags;
    status = mf_store_request_simple(store, MF_STORE_OP_SET, &req);
    if (status == MF_OK) {
        mf_store_note_ephemeral(store, key, key_len, value, len,
                                (flags & MF_STORE_EPHEMERAL) != 0);
    }
    return status;
}

MF_API mf_status_t mf_store_get(mf_store_t *store, const char *key,
                                uint32_t timeout_ms, void **value_p,
                                size_t *len_p)
{
    mf_net_resp_t resp;
    mf_store_req_t req;
    mf_status_t status;
    size_t key_len, len;
    void *value;

    if ((store == NULL) || (value_p == NULL)) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, key, &key_len);
    if (status != MF_OK) {
        return status;
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.key_len = key_len;
    req.timeout_ms = timeout_ms;
    status = mf_store_request(
        store, MF_STORE_OP_GET, &req,
        mf_store_add_timeouts(timeout_ms, store->cfg.op_timeout_ms), &resp);
    if (status == MF_OK) {
        status = mf_store_take_value(&resp, &value, &len);
    }
    mf_net_resp_free(&resp);
    if (status != MF_OK) {
        return status;
    }
    *value_p = value;
    if (len_p != NULL) {
        *len_p = len;
    }
    return MF_OK;
}

MF_API mf_status_t mf_store_add(mf_store_t *store, const char *key,
                                int64_t delta, int64_t *result_p)
{
    mf_net_resp_t resp;
    mf_store_req_t req;
    mf_status_t status;
    size_t key_len, len;
    int64_t result;
    char text[32];

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, key, &key_len);
    if (status != MF_OK) {
        return status;
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.key_len = key_len;
    req.delta = delta;
    status = mf_store_request(store, MF_STORE_OP_ADD, &req,
                              store->cfg.op_timeout_ms, &resp);
    if ((status == MF_OK) &&
        (mf_store_i64_decode(resp.body, resp.len, &result) != MF_OK)) {
        mf_error("store: malformed add response of %zu bytes", resp.len);
        status = MF_ERR_PROTO;
    }
    mf_net_resp_free(&resp);
    if (status != MF_OK) {
        return status;
    }
    len = (size_t)snprintf(text, sizeof(text), "%" PRId64, result);
    mf_store_update_ephemeral(store, key, key_len, text, len, false);
    if (result_p != NULL) {
        *result_p = result;
    }
    return MF_OK;
}

MF_API mf_status_t mf_store_append(mf_store_t *store, const char *key,
                                   const void *value, size_t len)
{
    mf_store_req_t req;
    mf_status_t status;
    size_t key_len;

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, key, &key_len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_store_check_value(__func__, value, len);
    if (status != MF_OK) {
        return status;
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.key_len = key_len;
    req.value = value;
    req.value_len = len;
    status = mf_store_request_simple(store, MF_STORE_OP_APPEND, &req);
    if (status == MF_OK) {
        mf_store_update_ephemeral(store, key, key_len, value, len, true);
    }
    return status;
}

MF_API mf_status_t mf_store_cas(mf_store_t *store, const char *key,
                                const void *expected, size_t expected_len,
                                const void *desired, size_t desired_len,
                                void **current_p, size_t *current_len_p)
{
    const void *current;
    mf_net_resp_t resp;
    mf_store_req_t req;
    mf_status_t status;
    size_t key_len, len;
    uint8_t *copy = NULL;
    bool present;

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, key, &key_len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_store_check_value(__func__, desired, desired_len);
    if (status != MF_OK) {
        return status;
    }
    if (expected != NULL) {
        status = mf_store_check_value(__func__, expected, expected_len);
        if (status != MF_OK) {
            return status;
        }
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.key_len = key_len;
    req.has_expected = (expected != NULL);
    req.expected = expected;
    req.expected_len = (expected != NULL) ? expected_len : 0;
    req.value = desired;
    req.value_len = desired_len;
    status = mf_store_request(store, MF_STORE_OP_CAS, &req,
                              store->cfg.op_timeout_ms, &resp);
    if (status == MF_OK) {
        mf_store_update_ephemeral(store, key, key_len, desired, desired_len,
                                  false);
    }
    if ((status != MF_ERR_MISMATCH) || (resp.body == NULL)) {
        mf_net_resp_free(&resp);
        return status;
    }
    if (mf_store_current_decode(resp.body, resp.len, &present, &current,
                                &len) != MF_OK) {
        mf_error("store: malformed cas response of %zu bytes", resp.len);
        mf_net_resp_free(&resp);
        return MF_ERR_PROTO;
    }
    if (present && (current_p != NULL)) {
        copy = malloc(len + 1);
        if (copy == NULL) {
            mf_error("store: out of memory for a value of %zu bytes", len);
            mf_net_resp_free(&resp);
            return MF_ERR_NOMEM;
        }
        if (len > 0) {
            memcpy(copy, current, len);
        }
        copy[len] = '\0';
    }
    mf_net_resp_free(&resp);
    if (current_p != NULL) {
        *current_p = copy;
    }
    if (current_len_p != NULL) {
        *current_len_p = present ? len : 0;
    }
    return MF_ERR_MISMATCH;
}

MF_API mf_status_t mf_store_remove(mf_store_t *store, const char *key)
{
    mf_store_req_t req;
    mf_status_t status;
    size_t key_len;

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, key, &key_len);
    if (status != MF_OK) {
        return status;
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.key_len = key_len;
    status = mf_store_request_simple(store, MF_STORE_OP_REMOVE, &req);
    if ((status == MF_OK) || (status == MF_ERR_NOT_FOUND)) {
        mf_store_note_ephemeral(store, key, key_len, NULL, 0, false);
    }
    return status;
}

/* -------------------------------------------------------------- watches */

/* Unlinks watch once no callback of it runs; lock held. */
static void mf_store_watch_unlink_locked(mf_store_t *store,
                                         mf_store_watch_t *watch)
{
    while (store->running == watch) {
        pthread_cond_wait(&store->cb_done, &store->lock);
    }
    mf_list_del(&watch->link);
}

MF_API mf_status_t mf_store_watch(mf_store_t *store, const char *prefix,
                                  mf_store_watch_cb cb, void *arg,
                                  mf_store_watch_t **watch_p)
{
    mf_store_watch_t *watch;
    mf_store_req_t req;
    mf_status_t status;
    size_t prefix_len;

    if ((store == NULL) || (prefix == NULL) || (cb == NULL) ||
        (watch_p == NULL)) {
        mf_error("store: mf_store_watch() needs a store, a prefix, a "
                 "callback and an output");
        return MF_ERR_INVALID;
    }
    prefix_len = strlen(prefix);
    watch = calloc(1, sizeof(*watch) + prefix_len + 1);
    if (watch == NULL) {
        mf_error("store: out of memory for a watch");
        return MF_ERR_NOMEM;
    }
    watch->cb = cb;
    watch->arg = arg;
    watch->prefix_len = prefix_len;
    memcpy(watch->prefix, prefix, prefix_len + 1);

    /* Linked before the server knows it, so no event after the server's
     * reply can be missed. */
    pthread_mutex_lock(&store->lock);
    watch->id = ++store->next_watch_id;
    mf_list_push_back(&store->watches, &watch->link);
    pthread_mutex_unlock(&store->lock);

    memset(&req, 0, sizeof(req));
    req.id = watch->id;
    req.key = prefix;
    req.key_len = prefix_len;
    status = mf_store_request_simple(store, MF_STORE_OP_WATCH, &req);
    if (status != MF_OK) {
        mf_error("store: watching prefix '%s' failed: %s", prefix,
                 mf_status_name(status));
        pthread_mutex_lock(&store->lock);
        mf_store_watch_unlink_locked(store, watch);
        pthread_mutex_unlock(&store->lock);
        free(watch);
        return status;
    }
    *watch_p = watch;
    return MF_OK;
}

MF_API void mf_store_unwatch(mf_store_t *store, mf_store_watch_t *watch)
{
    mf_store_req_t req;
    mf_status_t status;

    if ((store == NULL) || (watch == NULL)) {
        return;
    }
    pthread_mutex_lock(&store->lock);
    if (store->in_dispatch &&
        pthread_equal(store->dispatch_thread, pthread_self())) {
        /* From a callback: no waiting (it would wait for itself) and no
         * request (calls are refused on the loop thread).  The server
         * keeps sending the prefix's events; they match no watch. */
        if (store->running == watch) {
            watch->removed = true;
        } else {
            mf_list_del(&watch->link);
            free(watch);
        }
        pthread_mutex_unlock(&store->lock);
        return;
    }
    mf_store_watch_unlink_locked(store, watch);
    pthread_mutex_unlock(&store->lock);

    memset(&req, 0, sizeof(req));
    req.id = watch->id;
    free(watch);
    status = mf_store_request_simple(store, MF_STORE_OP_UNWATCH, &req);
    if ((status != MF_OK) && (status != MF_ERR_NOT_FOUND)) {
        mf_debug("store: unwatch request failed: %s; the server drops the "
                 "watch with the session",
                 mf_status_name(status));
    }
}

/* ----------------------------------------------------------------- ranks */

MF_API mf_status_t mf_store_rank_join(mf_store_t *store, const char *group,
                                      uint32_t world_size, uint32_t rank,
                                      uint32_t *rank_p)
{
    mf_store_held_rank_t held;
    mf_net_resp_t resp;
    mf_store_req_t req;
    mf_status_t status;
    size_t group_len;
    uint32_t joined;

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, group, &group_len);
    if (status != MF_OK) {
        return status;
    }
    if ((world_size == 0) || ((rank != MF_RANK_AUTO) && (rank >= world_size))) {
        mf_error("store: cannot join rank %u of a group of %u in %s", rank,
                 world_size, group);
        return MF_ERR_INVALID;
    }
    memset(&req, 0, sizeof(req));
    req.key = group;
    req.key_len = group_len;
    req.world_size = world_size;
    req.rank = rank;
    status = mf_store_request(store, MF_STORE_OP_RANK_JOIN, &req,
                              store->cfg.op_timeout_ms, &resp);
    if ((status == MF_OK) &&
        ((mf_store_u32_decode(resp.body, resp.len, &joined) != MF_OK) ||
         (joined >= world_size))) {
        mf_error("store: malformed rank_join response of %zu bytes", resp.len);
        status = MF_ERR_PROTO;
    }
    mf_net_resp_free(&resp);
    if (status != MF_OK) {
        return status;
    }

    held.group = strdup(group);
    held.world_size = world_size;
    held.rank = joined;
    pthread_mutex_lock(&store->lock);
    if ((held.group == NULL) || (mf_vec_push(&store->ranks, &held) == NULL)) {
        mf_error("store: out of memory; rank %u of group %s will not be "
                 "restored after a reconnect",
                 joined, group);
        free(held.group);
    }
    pthread_mutex_unlock(&store->lock);
    if (rank_p != NULL) {
        *rank_p = joined;
    }
    return MF_OK;
}

MF_API mf_status_t mf_store_rank_leave(mf_store_t *store, const char *group,
                                       uint32_t rank)
{
    mf_store_held_rank_t *held;
    mf_store_req_t req;
    mf_status_t status;
    size_t group_len, i;

    if (store == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, group, &group_len);
    if (status != MF_OK) {
        return status;
    }
    memset(&req, 0, sizeof(req));
    req.key = group;
    req.key_len = group_len;
    req.rank = rank;
    status = mf_store_request_simple(store, MF_STORE_OP_RANK_LEAVE, &req);
    if ((status != MF_OK) && (status != MF_ERR_NOT_FOUND)) {
        return status;
    }
    pthread_mutex_lock(&store->lock);
    for (i = 0; i < store->ranks.count; i++) {
        held = mf_vec_at(&store->ranks, i);
        if ((held->rank == rank) && (strcmp(held->group, group) == 0)) {
            free(held->group);
            mf_vec_swap_remove(&store->ranks, i);
            break;
        }
    }
    pthread_mutex_unlock(&store->lock);
    return status;
}

MF_API mf_status_t mf_store_rank_subscribe(mf_store_t *store, const char *group,
                                           mf_rank_event_cb cb, void *arg)
{
    mf_store_sub_t *sub, *other;
    mf_store_req_t req;
    mf_status_t status;
    size_t group_len;
    mf_list_t *pos;

    if ((store == NULL) || (cb == NULL)) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, group, &group_len);
    if (status != MF_OK) {
        return status;
    }
    sub = calloc(1, sizeof(*sub) + group_len + 1);
    if (sub == NULL) {
        mf_error("store: out of memory for a rank subscription");
        return MF_ERR_NOMEM;
    }
    sub->cb = cb;
    sub->arg = arg;
    sub->group_len = group_len;
    memcpy(sub->group, group, group_len + 1);

    pthread_mutex_lock(&store->lock);
    for (pos = store->subs.next; pos != &store->subs; pos = pos->next) {
        other = mf_container_of(pos, mf_store_sub_t, link);
        if (strcmp(other->group, group) == 0) {
            pthread_mutex_unlock(&store->lock);
            mf_error("store: this client already subscribed to group %s",
                     group);
            free(sub);
            return MF_ERR_EXISTS;
        }
    }
    mf_list_push_back(&store->subs, &sub->link);
    pthread_mutex_unlock(&store->lock);

    memset(&req, 0, sizeof(req));
    req.key = group;
    req.key_len = group_len;
    status = mf_store_request_simple(store, MF_STORE_OP_RANK_SUBSCRIBE, &req);
    if (status != MF_OK) {
        mf_error("store: subscribing to group %s failed: %s", group,
                 mf_status_name(status));
        pthread_mutex_lock(&store->lock);
        mf_list_del(&sub->link);
        pthread_mutex_unlock(&store->lock);
        free(sub);
    }
    return status;
}

MF_API mf_status_t mf_store_rank_list(mf_store_t *store, const char *group,
                                      uint32_t *ranks, uint32_t max,
                                      uint32_t *count_p)
{
    mf_net_resp_t resp;
    mf_store_req_t req;
    mf_status_t status;
    size_t group_len;
    uint32_t count;

    if ((store == NULL) || (count_p == NULL) ||
        ((ranks == NULL) && (max > 0))) {
        return MF_ERR_INVALID;
    }
    status = mf_store_check_key(__func__, group, &group_len);
    if (status != MF_OK) {
        return status;
    }
    memset(&req, 0, sizeof(req));
    req.key = group;
    req.key_len = group_len;
    status = mf_store_request(store, MF_STORE_OP_RANK_LIST, &req,
                              store->cfg.op_timeout_ms, &resp);
    if ((status == MF_OK) && (mf_store_ranks_decode(resp.body, resp.len, ranks,
                                                    max, &count) != MF_OK)) {
        mf_error("store: malformed rank_list response of %zu bytes", resp.len);
        status = MF_ERR_PROTO;
    }
    mf_net_resp_free(&resp);
    if (status == MF_OK) {
        *count_p = count;
    }
    return status;
}

/* ------------------------------------------------------------ rounds */

uint64_t mf_store_next_round(mf_store_t *store, const char *kind,
                             const char *name)
{
    size_t len = strlen(kind) + 1 + strlen(name);
    uintptr_t round;
    char *key;

    key = malloc(len + 1);
    if (key == NULL) {
        mf_error("store: out of memory for a collective round");
        return 0;
    }
    snprintf(key, len + 1, "%s:%s", kind, name);
    pthread_mutex_lock(&store->lock);
    round = (uintptr_t)mf_hmap_get(&store->rounds, key, len) + 1;
    if (mf_hmap_put(&store->rounds, key, len, (void *)round, NULL) != MF_OK) {
        mf_error("store: out of memory for a collective round");
        round = 0;
    }
    pthread_mutex_unlock(&store->lock);
    free(key);
    return round;
}
