/*
 * The config store client's operations: keys (set, blocking get, add,
 * append, CAS, remove), watches, rank groups and the rounds of the
 * collective operations; each records what its session must restore
 * after a reconnect only once the server accepted it.
 */
#include "store/client_int.h"

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
