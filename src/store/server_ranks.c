/*
 * The config store server's rank groups (explicit or lowest free ranks,
 * JOINED/LEFT/LOST events to subscribers) and sessions (one per
 * connection: their ephemeral items, parked gets, watches and ranks, ended
 * exactly once when the connection closes or its heartbeats stop).
 */
#include "store/server_int.h"

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

void mf_store_server_group_free(mf_store_group_t *group)
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

void mf_store_server_on_open(mf_net_conn_t *conn, void *arg)
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

void mf_store_server_on_close(mf_net_conn_t *conn, void *arg)
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

void mf_store_server_on_request(mf_net_conn_t *conn, uint16_t opcode,
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
void mf_store_server_sweep(evutil_socket_t fd, short what, void *arg)
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
