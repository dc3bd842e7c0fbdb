/*
 * The MemCache meta service: its servers, the RPC handlers and the
 * per-connection bookkeeping (see meta.h).
 *
 * Start order: config store, RPC server, then on the RPC loop thread the
 * expiry timer and HTTP; stop undoes it in reverse.  Every handler, timer
 * and HTTP callback runs on the RPC loop thread, the only thread that
 * touches meta->state and meta->stats; other threads reach them through
 * mmc_meta_run_sync().
 *
 * A connection is an owner of the state (mmc_state_owner_t): its pending
 * puts, leases and registered rank go when it closes.  A request other
 * than HELLO on a connection that has not said HELLO fails with
 * MF_ERR_STATE; a body that does not decode fails with MF_ERR_PROTO; in
 * both cases the connection stays open.  Until its HELLO succeeds, a
 * connection may send frames of MF_NET_DEFAULT_UNTRUSTED_MAX_BODY bytes
 * at most (a larger one disconnects it), so connections that never say
 * HELLO hold little memory.  Per-item outcomes travel in the response
 * lists and the frame status is MF_OK.
 *
 * Statistics: requests[], errors[] and misses[] are indexed by opcode,
 * slot 0 counting unknown opcodes; errors[] counts failed requests plus
 * failed items of successful requests, except ordinary misses (NOT_FOUND
 * of GET, EXIST, QUERY and REMOVE), which misses[] counts.
 *
 * Lost replies.  When the reply of a PUT_ALLOC or GET cannot be encoded or
 * sent, the client never learns its put ids or lease ids: the puts are
 * aborted and the leases released at once rather than left to the timers.
 *
 * Media.  A rank may register a DRAM and an HBM segment, each at its
 * slot of the pool's host or device window.  Without a device window
 * (max_hbm_segment_size 0) REGISTER refuses HBM segments with
 * MF_ERR_UNSUPPORTED, warned once per connection; other media are
 * MF_ERR_INVALID.  PUT_ALLOC names one media for all its items; their
 * replicas go to segments of that media only (MF_ERR_INVALID for the
 * request when it names none known).
 *
 * Expiry.  The timer expires at most MMC_META_EXPIRE_BUDGET leases and
 * puts per run and, when more are due, runs again at once (after pending
 * I/O) instead of blocking the loop.
 *
 * Eviction.  Handlers never evict in the background themselves: when the
 * state says a pass may have work (mmc_state_evict_due, after a request or
 * a tick), the dedicated event meta->evict is activated and the pass runs
 * on its own, at most MMC_META_EVICT_BUDGET candidates at a time, re-armed
 * behind pending I/O while work is left.  A PUT_ALLOC item that finds no
 * room evicts synchronously inside the state (bounded by
 * evict_max_per_put).
 *
 * Liveness.  Every frame refreshes its connection's last-seen time and
 * moves it to the end of meta->conns, so the list is ordered by silence.
 * The tick closes connections silent for more than member_timeout_ms
 * (their peer crashed, or its host vanished and no FIN will ever come):
 * it drops their puts, leases and rank at once, then closes the
 * connection.  The net server closes any connection silent for
 * idle_timeout_ms too; HELLO tells clients the shorter of the two and
 * they send PING at a quarter of it.  A
 * registered rank whose connection goes without UNREGISTER is a member
 * loss (closed, or timeout).
 */
#include "cache/meta/meta_int.h"
#include "util/trace.h"
#include "store/server_fence.h"

/* ---- connections ---- */

static mmc_meta_conn_t *mmc_meta_conn_new(mmc_meta_t *meta, mf_net_conn_t *conn)
{
    mmc_meta_conn_t *mc = calloc(1, sizeof(*mc));

    if (mc == NULL) {
        mf_error("meta: out of memory for a connection");
        return NULL;
    }
    mc->meta = meta;
    mc->conn = conn;
    if (mmc_state_owner_create(meta->state, &mc->owner) != MF_OK) {
        free(mc);
        return NULL;
    }
    mmc_meta_conn_records_init(mc);
    mf_list_init(&mc->deferred);
    mc->last_ms = mmc_meta_now_ms();
    mf_list_push_back(&meta->conns, &mc->link);
    return mc;
}

/* Drops what the connection holds (puts, leases, rank); counts a lost
 * member when it had a rank. */
static void mmc_meta_conn_drop(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                               bool timeout)
{
    uint32_t rank = mmc_state_owner_rank(mc->owner);

    if (rank != UINT32_MAX) {
        if (timeout) {
            mf_warn("meta: rank %" PRIu32 " (%s, %s) sent nothing for %" PRIu32
                    " ms: dropped",
                    rank, mc->name, mf_net_conn_peer(mc->conn),
                    meta->cfg.member_timeout_ms);
            meta->stats.member_losses_timeout++;
        } else {
            mf_info("meta: rank %" PRIu32 " (%s, %s) disconnected", rank,
                    mc->name, mf_net_conn_peer(mc->conn));
            meta->stats.member_losses_closed++;
        }
    }
    mf_list_del(&mc->link);
    mmc_state_owner_destroy(meta->state, mc->owner);
    mc->owner = NULL;
    mmc_meta_conn_records_drop(mc);
}

static void mmc_meta_on_open(mf_net_conn_t *conn, void *arg)
{
    mmc_meta_t *meta = arg;

    meta->stats.clients++;
    /* NULL on failure: the first request tries again. */
    mf_net_conn_set_data(conn, mmc_meta_conn_new(meta, conn));
}

static void mmc_meta_on_close(mf_net_conn_t *conn, void *arg)
{
    mmc_meta_t *meta = arg;
    mmc_meta_conn_t *mc = mf_net_conn_get_data(conn);

    meta->stats.clients--;
    if (mc == NULL) {
        return;
    }
    mmc_meta_conn_deferred_drop(mc);
    if (mc->owner != NULL) {
        mmc_meta_conn_drop(meta, mc, false);
    }
    mmc_meta_conn_records_free(mc);
    mmc_meta_deferred_run(meta); /* its loads ended with it */
    mf_net_conn_set_data(conn, NULL);
    free(mc);
}

/* Schedules a background eviction pass when the state has work for one;
 * never runs it here. */
static void mmc_meta_evict_kick(mmc_meta_t *meta)
{
    if ((meta->evict != NULL) && mmc_state_evict_due(meta->state)) {
        event_active(meta->evict, 0, 0);
    }
}

/* The reply carrying rep->grants was lost: aborts the puts or releases the
 * leases it granted. */
static void mmc_meta_undo_grants(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                 uint16_t opcode, const mmc_meta_reply_t *rep)
{
    for (uint32_t i = 0; i < rep->grants.count; i++) {
        const mmc_obj_result_t *item = &rep->grants.items[i];

        if (item->status != MMC_OK) {
            continue;
        }
        if (opcode == MMC_OP_PUT_ALLOC) {
            (void)mmc_state_put_commit(meta->state, mc->owner, item->id,
                                       MMC_ERR_ABORTED);
        } else {
            (void)mmc_state_release(meta->state, mc->owner, item->id);
        }
        meta->stats.grants_undone++;
    }
}

#define MMC_META_TP(_op)                                                       \
    [MMC_OP_##_op] = {.name = "meta.op." #_op, .min_ns = UINT64_MAX}

/* The tracer's point of each request type: its handling on the loop. */
static mf_trace_point_t mmc_meta_tp_op[MMC_OP_MAX] = {
    MMC_META_TP(HELLO),      MMC_META_TP(REGISTER),   MMC_META_TP(UNREGISTER),
    MMC_META_TP(PUT_ALLOC),  MMC_META_TP(PUT_COMMIT), MMC_META_TP(GET),
    MMC_META_TP(RELEASE),    MMC_META_TP(EXIST),      MMC_META_TP(QUERY),
    MMC_META_TP(REMOVE),     MMC_META_TP(PING),       MMC_META_TP(RESTORE),
    MMC_META_TP(RECORD_ACK), MMC_META_TP(RECORD),     MMC_META_TP(REPAIR_DONE),
    MMC_META_TP(REPAIR),     MMC_META_TP(LEASE),      MMC_META_TP(REMOVE_ALL),
    MMC_META_TP(MOVE_DONE),  MMC_META_TP(MOVE),
};

static void mmc_meta_on_request(mf_net_conn_t *conn, uint16_t opcode,
                                uint64_t req_id, const uint8_t *body,
                                size_t len, void *arg)
{
    mmc_meta_t *meta = arg;
    mmc_meta_conn_t *mc = mf_net_conn_get_data(conn);

    if (mc == NULL) {
        mc = mmc_meta_conn_new(meta, conn);
        if (mc == NULL) {
            (void)mf_net_conn_reply(conn, req_id, opcode, MF_ERR_NOMEM, NULL,
                                    0);
            return;
        }
        mf_net_conn_set_data(conn, mc);
    }
    if (mc->owner != NULL) {
        /* heard from: to the end of the silence order */
        mc->last_ms = mmc_meta_now_ms();
        mf_list_del(&mc->link);
        mf_list_push_back(&meta->conns, &mc->link);
    }
    mmc_meta_serve(meta, mc, opcode, req_id, body, len, true);
    mmc_meta_moves_send(meta);
    mmc_meta_deferred_run(meta);
    mmc_meta_evict_kick(meta);
}

void mmc_meta_serve(mmc_meta_t *meta, mmc_meta_conn_t *mc, uint16_t opcode,
                    uint64_t req_id, const uint8_t *body, size_t len,
                    bool may_defer)
{
    mf_net_conn_t *conn = mc->conn;
    uint64_t start = mf_time_ns();
    uint16_t slot = ((opcode > 0) && (opcode < MMC_OP_MAX)) ? opcode : 0;
    mmc_meta_reply_t rep;
    mf_status_t status;

    memset(&rep, 0, sizeof(rep));
    rep.status = MF_OK;
    mf_wbuf_init(&rep.body);
    if (may_defer && (mc->owner != NULL) && mc->hello &&
        mmc_meta_defer(meta, mc, opcode, req_id, body, len)) {
        return; /* served once its loads ended */
    }
    if (mc->owner == NULL) {
        rep.status = MF_ERR_STATE; /* dropped for silence, closing */
    } else if (slot == 0) {
        mf_debug("meta: %s sent unknown opcode %u", mf_net_conn_peer(conn),
                 opcode);
        rep.status = MF_ERR_UNSUPPORTED;
    } else if (!mc->hello && (opcode != MMC_OP_HELLO)) {
        mf_debug("meta: %s sent %s before HELLO", mf_net_conn_peer(conn),
                 mmc_op_name(opcode));
        rep.status = MF_ERR_STATE;
    } else {
        switch (opcode) {
        case MMC_OP_HELLO:
            mmc_meta_handle_hello(meta, mc, body, len, &rep);
            break;
        case MMC_OP_REGISTER:
            mmc_meta_handle_register(meta, mc, body, len, &rep);
            break;
        case MMC_OP_UNREGISTER:
            mmc_meta_handle_unregister(meta, mc, len, &rep);
            break;
        case MMC_OP_PUT_ALLOC:
            mmc_meta_handle_put_alloc(meta, mc, body, len, &rep);
            break;
        case MMC_OP_PUT_COMMIT:
            mmc_meta_handle_put_commit(meta, mc, body, len, &rep);
            break;
        case MMC_OP_RELEASE:
            mmc_meta_handle_release(meta, mc, body, len, &rep);
            break;
        case MMC_OP_PING:
            mmc_meta_handle_ping(len, &rep);
            break;
        case MMC_OP_RECORD_ACK:
            mmc_meta_handle_record_ack(meta, mc, body, len, &rep);
            break;
        case MMC_OP_RESTORE:
            mmc_meta_handle_restore(meta, mc, body, len, &rep);
            break;
        case MMC_OP_REPAIR_DONE:
            mmc_meta_handle_repair_done(meta, mc, body, len, &rep);
            break;
        case MMC_OP_LEASE:
            mmc_meta_handle_lease(meta, mc, body, len, &rep);
            break;
        case MMC_OP_REMOVE_ALL:
            mmc_meta_handle_remove_all(meta, len, &rep);
            break;
        case MMC_OP_MOVE_DONE:
            mmc_meta_handle_move_done(meta, mc, body, len, &rep);
            break;
        case MMC_OP_RECORD: /* ours to send, never to receive */
        case MMC_OP_REPAIR:
        case MMC_OP_MOVE:
            rep.status = MF_ERR_UNSUPPORTED;
            break;
        default: /* GET, EXIST, QUERY, REMOVE */
            mmc_meta_handle_keys(meta, mc, opcode, body, len, &rep);
            break;
        }
        if (rep.status == MF_ERR_PROTO) {
            mf_debug("meta: %s sent a malformed %s (%zu bytes)",
                     mf_net_conn_peer(conn), mmc_op_name(opcode), len);
        }
    }
    if ((rep.status == MF_OK) && (mf_wbuf_status(&rep.body) != MF_OK)) {
        mf_error("meta: out of memory encoding a %s response",
                 mmc_op_name(opcode));
        rep.status = MF_ERR_NOMEM;
    }
    if (rep.status == MF_OK && mc->owner != NULL &&
        mmc_meta_records_hold(meta, mc, opcode, req_id, &rep, &rep.body)) {
        status = MF_OK; /* sent once the holders acknowledged */
    } else if (rep.status == MF_OK) {
        status = mf_net_conn_reply(conn, req_id, opcode, MF_OK, rep.body.data,
                                   rep.body.len);
    } else {
        status = mf_net_conn_reply(conn, req_id, opcode, rep.status, NULL, 0);
    }
    if (status != MF_OK) {
        mf_debug("meta: reply to %s failed: %s", mf_net_conn_peer(conn),
                 mf_status_str(status));
    }
    if ((rep.status != MF_OK) || (status != MF_OK)) {
        /* the client never sees the ids granted: take them back now */
        meta->stats.replies_lost += (rep.grants.count > 0);
        mmc_meta_undo_grants(meta, mc, opcode, &rep);
    }
    free(rep.grants.items);
    mf_wbuf_free(&rep.body);

    meta->stats.requests[slot]++;
    meta->stats.misses[slot] += rep.item_misses;
    meta->stats.errors[slot] += (rep.status != MF_OK) + rep.item_errors;
    mmc_hist_add(&meta->stats.latency[slot],
                 (double)(mf_time_ns() - start) / 1000.0);
    if (slot != 0 && atomic_load_explicit(&mf_trace_on, memory_order_relaxed)) {
        mf_trace_record(&mmc_meta_tp_op[slot], mf_time_ns() - start);
    }
}

static const mf_net_server_ops_t mmc_meta_server_ops = {
    .on_request = mmc_meta_on_request,
    .on_open = mmc_meta_on_open,
    .on_close = mmc_meta_on_close,
};

/* ---- timers and HTTP, on the loop thread ---- */

/* Closes the connections silent for more than member_timeout_ms; what
 * they held goes now, whether or not their close completes soon. */
static void mmc_meta_reap_silent(mmc_meta_t *meta, uint64_t now)
{
    uint64_t timeout = meta->cfg.member_timeout_ms;

    if (timeout == 0) {
        return;
    }
    while (!mf_list_empty(&meta->conns)) {
        mmc_meta_conn_t *mc =
            mf_container_of(meta->conns.next, mmc_meta_conn_t, link);

        if (mc->last_ms + timeout >= now) {
            break; /* the rest were heard from later */
        }
        meta->stats.conns_timed_out++;
        mmc_meta_conn_drop(meta, mc, true);
        mf_net_conn_close(mc->conn);
    }
}

/* The expiry timer, and its one-shot follow-up when a run had more due
 * than its budget. */
static void mmc_meta_tick(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval now = {0, 0};
    mmc_meta_t *meta = arg;
    uint64_t now_ms = mmc_meta_now_ms();

    (void)fd;
    (void)what;
    mmc_meta_reap_silent(meta, now_ms);
    if (mmc_state_expire_some(meta->state, now_ms, MMC_META_EXPIRE_BUDGET)) {
        meta->stats.expiry_reruns++;
        if (event_add(meta->more, &now) != 0) {
            mf_warn("meta: cannot re-arm the expiry timer; the next tick "
                    "continues");
        }
    }
    mmc_state_repair_expire(meta->state, now_ms); /* repairs and moves */
    mmc_meta_repair_run(meta, now_ms);
    mmc_meta_moves_send(meta);
    mmc_meta_deferred_run(meta);
    mmc_meta_records_send(meta, NULL, NULL);
    mmc_meta_evict_kick(meta);
}

/* ---- the view readers get (meta_view.h) ---- */

static void mmc_meta_view_stats(void *ctx, mmc_meta_stats_t *stats)
{
    mmc_meta_get_stats(ctx, stats);
}

static void mmc_meta_view_segs(void *ctx, mmc_meta_seg_fn cb, void *arg)
{
    mmc_meta_foreach_seg(ctx, cb, arg);
}

static mmc_status_t mmc_meta_view_key(void *ctx, const char *key,
                                      size_t key_len, mmc_obj_info_t *info_p,
                                      uint32_t *leases_p)
{
    return mmc_meta_key_info(ctx, key, key_len, info_p, leases_p);
}

/* A background eviction pass; re-armed behind pending I/O while work is
 * left. */
static void mmc_meta_evict_run(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval now = {0, 0};
    mmc_meta_t *meta = arg;

    (void)fd;
    (void)what;
    if (mmc_state_evict_some(meta->state, MMC_META_EVICT_BUDGET) &&
        (event_add(meta->evict, &now) != 0)) {
        mf_warn("meta: cannot re-arm eviction; the next tick continues");
    }
    mmc_meta_moves_send(meta); /* demotions */
    mmc_meta_records_send(meta, NULL, NULL);
}

typedef struct mmc_meta_loop_start {
    mmc_meta_t *meta;
    mf_status_t status;
} mmc_meta_loop_start_t;

static void mmc_meta_loop_start(void *arg)
{
    mmc_meta_loop_start_t *ls = arg;
    mmc_meta_t *meta = ls->meta;
    struct event_base *base = mf_net_server_base(meta->server);
    uint32_t tick_ms = MF_MIN(meta->cfg.lease_ms, meta->cfg.put_timeout_ms);
    struct timeval tv;

    if (meta->cfg.member_timeout_ms != 0) {
        tick_ms = MF_MIN(tick_ms, meta->cfg.member_timeout_ms);
    }
    tick_ms =
        MF_MAX(MF_MIN(tick_ms / 4, MMC_META_TICK_MAX_MS), MMC_META_TICK_MIN_MS);
    tv.tv_sec = tick_ms / 1000;
    tv.tv_usec = (tick_ms % 1000) * 1000;
    meta->timer = event_new(base, -1, EV_PERSIST, mmc_meta_tick, meta);
    meta->more = event_new(base, -1, 0, mmc_meta_tick, meta);
    meta->evict = event_new(base, -1, 0, mmc_meta_evict_run, meta);
    if ((meta->timer == NULL) || (meta->more == NULL) ||
        (meta->evict == NULL) || (event_add(meta->timer, &tv) != 0)) {
        mf_error("meta: cannot start the expiry timer");
        ls->status = MF_ERR_NOMEM;
        goto err_free_timer;
    }
    if (meta->cfg.http_enable) {
        mmc_meta_view_t view = {meta, mmc_meta_view_stats, mmc_meta_view_segs,
                                mmc_meta_view_key};

        ls->status = mmc_meta_http_start(
            &view, base,
            meta->cfg.http_addr[0] != '\0' ? meta->cfg.http_addr
                                           : meta->cfg.addr,
            (uint16_t)meta->cfg.http_port, meta->cfg.idle_timeout_ms,
            meta->cfg.http_tls ? meta->tls : NULL, &meta->http);
        if (ls->status != MF_OK) {
            goto err_free_timer;
        }
        meta->http_port = mmc_meta_http_bound_port(meta->http);
    }
    ls->status = MF_OK;
    return;

err_free_timer:
    if (meta->evict != NULL) {
        event_free(meta->evict);
        meta->evict = NULL;
    }
    if (meta->more != NULL) {
        event_free(meta->more);
        meta->more = NULL;
    }
    if (meta->timer != NULL) {
        event_free(meta->timer);
        meta->timer = NULL;
    }
}

static void mmc_meta_loop_stop(void *arg)
{
    mmc_meta_t *meta = arg;

    if (meta->http != NULL) {
        mmc_meta_http_stop(meta->http);
        meta->http = NULL;
    }
    if (meta->evict != NULL) {
        event_free(meta->evict);
        meta->evict = NULL;
    }
    if (meta->more != NULL) {
        event_free(meta->more);
        meta->more = NULL;
    }
    if (meta->timer != NULL) {
        event_free(meta->timer);
        meta->timer = NULL;
    }
}

/* ---- start / stop ---- */

static uint64_t mmc_meta_random_id(void)
{
    uint64_t id = 0;

    if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id)) {
        id = mf_time_ns() ^ ((uint64_t)time(NULL) << 32);
    }
    return id;
}

mf_status_t mmc_meta_start(const mmc_meta_config_t *cfg, mmc_meta_t **meta_p)
{
    mf_store_server_config_t store_cfg;
    mf_net_server_params_t params;
    const mf_net_stream_ops_t *stream = NULL;
    mmc_state_params_t state_params;
    mmc_meta_loop_start_t ls;
    mmc_meta_t *meta;
    mf_status_t status;

    status = mmc_meta_config_check(cfg);
    if (status != MF_OK) {
        return status;
    }
    meta = calloc(1, sizeof(*meta));
    if (meta == NULL) {
        mf_error("meta: out of memory");
        return MF_ERR_NOMEM;
    }
    meta->cfg = *cfg;
    meta->meta_id = mmc_meta_random_id();
    meta->start_ms = mmc_meta_now_ms();
    mf_list_init(&meta->conns);
    mf_list_init(&meta->deferred);

    memset(&state_params, 0, sizeof(state_params));
    state_params.max_ranks = cfg->max_ranks;
    state_params.max_segment_size = cfg->max_segment_size;
    state_params.host_base = cfg->host_base;
    state_params.max_hbm_segment_size = cfg->max_hbm_segment_size;
    state_params.device_base = cfg->device_base;
    state_params.alloc_align = cfg->alloc_align;
    state_params.lease_ms = cfg->lease_ms;
    state_params.put_timeout_ms = cfg->put_timeout_ms;
    state_params.evict_high_pct = cfg->evict_high_pct;
    state_params.evict_low_pct = cfg->evict_low_pct;
    state_params.evict_max_per_put = cfg->evict_max_per_put;
    state_params.evict_policy = (uint32_t)mmc_evict_policy_parse(
        cfg->evict_policy); /* checked with the config */
    state_params.evict_small_pct = cfg->evict_small_pct;
    state_params.move_timeout_ms = cfg->repair_timeout_ms;
    status = mmc_state_create(&state_params, &meta->state);
    if (status != MF_OK) {
        goto err_free_meta;
    }

    if (cfg->tls.enable) {
        status = mf_tls_create(&cfg->tls, true, "mmc-meta", &meta->tls);
        if (status != MF_OK) {
            goto err_destroy_state;
        }
        stream = mf_tls_stream(meta->tls);
    }
    mf_store_server_config_init(&store_cfg);
    mf_strlcpy(store_cfg.host, cfg->addr, sizeof(store_cfg.host));
    store_cfg.port = (uint16_t)cfg->store_port;
    store_cfg.idle_timeout_ms = cfg->idle_timeout_ms;
    status = mf_store_server_start_stream(&store_cfg, stream, &meta->store);
    if (status != MF_OK) {
        mf_error("meta: config store on %s:%" PRIu32 " failed: %s", cfg->addr,
                 cfg->store_port, mf_status_str(status));
        goto err_destroy_state;
    }
    meta->store_port = mf_store_server_port(meta->store);

    memset(&params, 0, sizeof(params));
    params.host = cfg->addr;
    params.port = (uint16_t)cfg->port;
    params.max_body = MMC_PROTO_MAX_BODY; /* after HELLO */
    params.idle_timeout_ms = cfg->idle_timeout_ms;
    params.max_conns = cfg->max_clients;
    params.ops = &mmc_meta_server_ops;
    params.arg = meta;
    params.stream = stream;
    status = mf_net_server_start(&params, &meta->server);
    if (status != MF_OK) {
        mf_error("meta: RPC server on %s:%" PRIu32 " failed: %s", cfg->addr,
                 cfg->port, mf_status_str(status));
        goto err_stop_store;
    }
    meta->port = mf_net_server_port(meta->server);

    ls.meta = meta;
    ls.status = MF_ERR_STATE;
    status = mf_net_server_run_sync(meta->server, mmc_meta_loop_start, &ls);
    if (status == MF_OK) {
        status = ls.status;
    }
    if (status != MF_OK) {
        goto err_stop_server;
    }
    mf_info("meta: serving rpc=%s:%u store=%u http=%u", cfg->addr, meta->port,
            meta->store_port, meta->http_port);
    *meta_p = meta;
    return MF_OK;

err_stop_server:
    mf_net_server_stop(meta->server);
err_stop_store:
    mf_store_server_stop(meta->store);
err_destroy_state:
    mf_tls_destroy(meta->tls);
    mmc_state_destroy(meta->state);
err_free_meta:
    free(meta);
    return status;
}

void mmc_meta_stop(mmc_meta_t *meta)
{
    if (meta == NULL) {
        return;
    }
    (void)mf_net_server_run_sync(meta->server, mmc_meta_loop_stop, meta);
    mf_net_server_stop(meta->server); /* closes every connection */
    mmc_state_destroy(meta->state);
    mf_store_server_stop(meta->store);
    mf_tls_destroy(meta->tls); /* after every server that used it */
    free(meta);
}

uint16_t mmc_meta_port(const mmc_meta_t *meta)
{
    return meta->port;
}

uint16_t mmc_meta_store_port(const mmc_meta_t *meta)
{
    return meta->store_port;
}

uint16_t mmc_meta_http_port(const mmc_meta_t *meta)
{
    return meta->http_port;
}

const mmc_meta_config_t *mmc_meta_config(const mmc_meta_t *meta)
{
    return &meta->cfg;
}

typedef struct mmc_meta_leader_arg {
    mmc_meta_t *meta;
    int64_t revision;
    int64_t term;
} mmc_meta_leader_arg_t;

static void mmc_meta_set_leader_fn(void *arg)
{
    mmc_meta_leader_arg_t *a = arg;

    a->meta->stats.leader = true;
    a->meta->stats.leader_revision = a->revision;
    a->meta->stats.term = a->term;
}

void mmc_meta_set_leader(mmc_meta_t *meta, int64_t revision, int64_t term,
                         const atomic_uint_least64_t *serve_until)
{
    mmc_meta_leader_arg_t a = {meta, revision, term};

    /* both servers: the config store follows the leader too */
    mf_net_server_fence(meta->server, serve_until);
    mf_store_server_fence(meta->store, serve_until);

    (void)mmc_meta_run_sync(meta, mmc_meta_set_leader_fn, &a);
}

mf_status_t mmc_meta_run_sync(mmc_meta_t *meta, void (*fn)(void *arg),
                              void *arg)
{
    return mf_net_server_run_sync(meta->server, fn, arg);
}

/* ---- what HTTP reads (loop thread) ---- */

void mmc_meta_get_stats(mmc_meta_t *meta, mmc_meta_stats_t *stats)
{
    mmc_state_counters_t c;

    mmc_state_get_counters(meta->state, &c);
    *stats = meta->stats;
    stats->objects = c.objects;
    stats->object_bytes = c.object_bytes;
    stats->pending_puts = c.pending_puts;
    stats->leases = c.leases;
    stats->members = c.members;
    stats->puts_committed = c.puts_committed;
    stats->puts_aborted = c.puts_aborted;
    stats->gets = c.gets;
    stats->removes = c.removes;
    stats->puts_reclaimed = c.puts_reclaimed;
    stats->leases_expired = c.leases_expired;
    stats->unlinked_objects = c.unlinked;
    stats->segs_dropped = c.segs_dropped;
    stats->replicas_lost = c.replicas_lost;
    stats->leases_damaged = c.leases_damaged;
    stats->leases_refused = c.leases_refused;
    stats->hosts = c.hosts;
    stats->evictions = c.evictions;
    stats->evictions_put = c.evictions_put;
    stats->evicted_bytes = c.evicted_bytes;
    stats->eviction_runs = c.eviction_runs;
    stats->evict_skipped = c.evict_skipped;
    stats->evict_promoted = c.evict_promoted;
    stats->evict_ghost_hits = c.ghost_hits;
    stats->restored = c.restored;
    stats->restored_replicas = c.restored_replicas;
    stats->restore_refused = c.restore_refused;
    stats->under_replicated = mmc_state_under_replicated(meta->state);
    stats->repairs_running = mmc_state_repairs_running(meta->state);
    stats->repairs_started = c.repairs_started;
    stats->demotions_started = c.demotions_started;
    stats->demotions_done = c.demotions_done;
    stats->demotions_failed = c.demotions_failed;
    stats->loads_started = c.loads_started;
    stats->loads_done = c.loads_done;
    stats->loads_failed = c.loads_failed;
    for (int m = 0; m < 3; m++) {
        stats->evictions_media[m] = c.evictions_media[m];
    }
    stats->repairs_done = c.repairs_done;
    stats->repairs_failed = c.repairs_failed;
    stats->uptime_ms = mmc_meta_now_ms() - meta->start_ms;
    stats->rebuild_ms =
        meta->restored_ms != 0 ? meta->restored_ms - meta->start_ms : 0;
}

typedef struct mmc_meta_seg_walk {
    void (*cb)(const mmc_meta_seg_info_t *seg, void *arg);
    void *arg;
} mmc_meta_seg_walk_t;

static void mmc_meta_seg_cb(const mmc_state_seg_info_t *s, void *arg)
{
    mmc_meta_seg_walk_t *walk = arg;
    mmc_meta_seg_info_t info;

    info.rank = s->rank;
    info.host_idx = s->host_idx;
    info.host_id = s->host_id;
    info.name = s->name;
    info.media = s->media;
    info.gva = s->gva;
    info.capacity = s->capacity;
    info.used = s->used;
    info.free = s->free;
    info.largest_free = s->largest_free;
    info.replicas = s->replicas;
    info.lru = s->lru;
    walk->cb(&info, walk->arg);
}

void mmc_meta_foreach_seg(mmc_meta_t *meta, mmc_meta_seg_fn cb, void *arg)
{
    mmc_meta_seg_walk_t walk = {cb, arg};

    mmc_state_foreach_seg(meta->state, mmc_meta_seg_cb, &walk);
}

mmc_status_t mmc_meta_key_info(mmc_meta_t *meta, const char *key,
                               size_t key_len, mmc_obj_info_t *info_p,
                               uint32_t *leases_p)
{
    mmc_obj_result_t res;
    mmc_obj_info_t info;
    uint32_t leases = 0;
    mmc_status_t status;

    status = mmc_state_query(meta->state, key, key_len, &res, &leases);
    if (status != MMC_OK) {
        return status;
    }
    memset(&info, 0, sizeof(info));
    info.size = res.size;
    info.nreplicas = res.nrep;
    for (uint32_t i = 0; i < res.nrep; i++) {
        info.ranks[i] = res.reps[i].rank;
        info.media[i] = res.reps[i].media;
        info.gvas[i] = res.reps[i].gva;
    }
    *info_p = info;
    if (leases_p != NULL) {
        *leases_p = leases;
    }
    return MMC_OK;
}
