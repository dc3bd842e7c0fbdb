/*
 * The meta service's request handlers: HELLO, REGISTER, UNREGISTER,
 * PUT_ALLOC, PUT_COMMIT, GET, RELEASE, EXIST, QUERY, REMOVE and PING, each
 * decoding with the real decoders of src/cache/proto, acting on the state
 * machine and encoding its reply (what it granted is taken back if the
 * reply is lost).
 */
#include "cache/meta/meta_int.h"

/* ---- handlers ---- */

void mmc_meta_handle_hello(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                           const uint8_t *body, size_t len,
                           mmc_meta_reply_t *rep)
{
    mmc_hello_req_t req;
    mmc_hello_resp_t resp;

    rep->status = mmc_hello_req_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (req.version != MMC_PROTO_VERSION) {
        mf_warn("meta: %s speaks protocol version %" PRIu32 ", not %u",
                req.name, req.version, MMC_PROTO_VERSION);
        rep->status = MF_ERR_VERSION;
        return;
    }
    mf_strlcpy(mc->name, req.name, sizeof(mc->name));
    mc->hello = true;
    /* frames up to MMC_PROTO_MAX_BODY from now on */
    mf_net_conn_set_trusted(mc->conn);
    memset(&resp, 0, sizeof(resp));
    resp.version = MMC_PROTO_VERSION;
    resp.meta_id = meta->meta_id;
    resp.store_port = meta->store_port;
    resp.pool_id = meta->cfg.pool_id;
    resp.world_size = meta->cfg.max_ranks;
    resp.max_segment_size = meta->cfg.max_segment_size;
    resp.host_base = meta->cfg.host_base;
    resp.lease_ms = meta->cfg.lease_ms;
    resp.max_batch = meta->cfg.max_batch;
    /* what a client must not stay silent for: the idle timeout closes
     * any connection, member_timeout_ms may be shorter */
    resp.member_timeout_ms =
        (meta->cfg.member_timeout_ms != 0)
            ? MF_MIN(meta->cfg.member_timeout_ms, meta->cfg.idle_timeout_ms)
            : meta->cfg.idle_timeout_ms;
    resp.device_base = meta->cfg.device_base;
    resp.max_hbm_segment_size = meta->cfg.max_hbm_segment_size;
    mmc_hello_resp_encode(&rep->body, &resp);
}

/* MF_ERR_INVALID for an unknown media, MF_ERR_UNSUPPORTED for HBM in a
 * pool without a device window (the state checks the addresses). */
static mf_status_t mmc_meta_check_media(const mmc_meta_t *meta,
                                        mmc_meta_conn_t *mc,
                                        const mmc_register_req_t *req)
{
    bool hbm = false;

    for (uint32_t i = 0; i < req->nsegs; i++) {
        uint8_t media = req->segs[i].media;

        if ((media != MMC_MEDIA_DRAM) && (media != MMC_MEDIA_HBM) &&
            (media != MMC_MEDIA_SSD)) {
            mf_warn("meta: %s registers rank %" PRIu32
                    " with a segment of unknown media %u",
                    mc->name, req->rank, media);
            return MF_ERR_INVALID;
        }
        hbm |= (media == MMC_MEDIA_HBM);
    }
    if (hbm && (meta->cfg.max_hbm_segment_size == 0)) {
        if (!mc->hbm_warned) {
            mf_warn("meta: %s registers rank %" PRIu32
                    " with an HBM segment, but the pool has no device "
                    "window (max_hbm_segment_size = 0)",
                    mc->name, req->rank);
            mc->hbm_warned = true;
        }
        return MF_ERR_UNSUPPORTED;
    }
    return MF_OK;
}

void mmc_meta_handle_register(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                              const uint8_t *body, size_t len,
                              mmc_meta_reply_t *rep)
{
    mmc_register_req_t req;
    uint32_t host_idx;

    rep->status = mmc_register_req_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    rep->status = mmc_meta_check_media(meta, mc, &req);
    if (rep->status != MF_OK) {
        return;
    }
    rep->status =
        mmc_state_register(meta->state, mc->owner, req.rank, req.host_id,
                           mc->name, req.nsegs, req.segs, &host_idx);
    if (rep->status != MF_OK) {
        return;
    }
    if ((req.flags & MMC_REG_RESTORE) && req.nsegs > 0) {
        /* its segments take no new replica until its record is back */
        rep->status = mmc_state_restore_begin(meta->state, mc->owner);
        if (rep->status != MF_OK) {
            return;
        }
        mc->restoring = true;
    }
    mf_info("meta: rank %" PRIu32 " (%s) registered with %" PRIu32
            " segment(s), host %" PRIu32,
            req.rank, mc->name, req.nsegs, host_idx);
    mf_wbuf_put_u32(&rep->body, host_idx);
}

void mmc_meta_handle_unregister(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                size_t len, mmc_meta_reply_t *rep)
{
    if (len != 0) {
        rep->status = MF_ERR_PROTO;
        return;
    }
    mmc_state_owner_reset(meta->state, mc->owner);
    mmc_meta_conn_records_drop(mc); /* its record went with its segments */
    mc->restoring = false;
    rep->status = MF_OK;
}

void mmc_meta_handle_ping(size_t len, mmc_meta_reply_t *rep)
{
    rep->status = (len == 0) ? MF_OK : MF_ERR_PROTO;
}

static bool mmc_meta_batch_ok(const mmc_meta_t *meta, uint32_t count,
                              mmc_meta_reply_t *rep)
{
    if (count > meta->cfg.max_batch) {
        rep->status = MF_ERR_TOO_LARGE;
        return false;
    }
    return true;
}

/* Allocates the result array of an obj list. */
static bool mmc_meta_obj_list_alloc(mmc_obj_list_t *out, uint32_t count,
                                    mmc_meta_reply_t *rep)
{
    out->count = count;
    out->items = NULL;
    if (count == 0) {
        return true;
    }
    out->items = malloc((size_t)count * sizeof(*out->items));
    if (out->items == NULL) {
        mf_error("meta: out of memory for %" PRIu32 " results", count);
        rep->status = MF_ERR_NOMEM;
        return false;
    }
    return true;
}

static bool mmc_meta_status_list_alloc(mmc_status_list_t *out, uint32_t count,
                                       mmc_meta_reply_t *rep)
{
    out->count = count;
    out->status = NULL;
    if (count == 0) {
        return true;
    }
    out->status = malloc((size_t)count * sizeof(*out->status));
    if (out->status == NULL) {
        mf_error("meta: out of memory for %" PRIu32 " results", count);
        rep->status = MF_ERR_NOMEM;
        return false;
    }
    return true;
}

/* Counts a failed item: NOT_FOUND is a miss where a miss is ordinary. */
static void mmc_meta_count_item(mmc_status_t status, bool miss_ok,
                                mmc_meta_reply_t *rep)
{
    if (status == MMC_OK) {
        return;
    }
    if (miss_ok && (status == MMC_ERR_NOT_FOUND)) {
        rep->item_misses++;
    } else {
        rep->item_errors++;
    }
}

/* Encodes out; keeps it in rep->grants when its ids were granted (puts,
 * leases), frees it otherwise. */
static void mmc_meta_send_objs(mmc_obj_list_t *out, bool miss_ok, bool grants,
                               mmc_meta_reply_t *rep)
{
    for (uint32_t i = 0; i < out->count; i++) {
        mmc_meta_count_item(out->items[i].status, miss_ok, rep);
    }
    mmc_obj_list_encode(&rep->body, out);
    if (grants) {
        rep->grants = *out;
    } else {
        free(out->items);
    }
}

static void mmc_meta_send_status(mmc_status_list_t *out, bool miss_ok,
                                 mmc_meta_reply_t *rep)
{
    for (uint32_t i = 0; i < out->count; i++) {
        mmc_meta_count_item(out->status[i], miss_ok, rep);
    }
    mmc_status_list_encode(&rep->body, out);
    free(out->status);
}

void mmc_meta_handle_put_alloc(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                               const uint8_t *body, size_t len,
                               mmc_meta_reply_t *rep)
{
    mmc_put_alloc_req_t req;
    mmc_state_put_opts_t opts;
    mmc_obj_list_t out;
    uint64_t now = mmc_meta_now_ms();

    rep->status = mmc_put_alloc_req_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (!mmc_meta_batch_ok(meta, req.count, rep)) {
        goto out_free_req;
    }
    if ((req.replicas == 0) || (req.replicas > MMC_MAX_REPLICAS) ||
        ((req.media != MMC_MEDIA_DRAM) && (req.media != MMC_MEDIA_HBM))) {
        rep->status = MF_ERR_INVALID;
        goto out_free_req;
    }
    if (!mmc_meta_obj_list_alloc(&out, req.count, rep)) {
        goto out_free_req;
    }
    opts.flags = req.flags;
    opts.replicas = req.replicas;
    opts.npref = req.npref;
    opts.pref = req.pref;
    opts.media = req.media;
    for (uint32_t i = 0; i < req.count; i++) {
        (void)mmc_state_put_alloc(meta->state, mc->owner, req.items[i].key.data,
                                  req.items[i].key.len, req.items[i].size,
                                  &opts, now, &out.items[i]);
    }
    mmc_meta_send_objs(&out, false, true, rep);
out_free_req:
    mmc_put_alloc_req_free(&req);
}

void mmc_meta_handle_put_commit(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                const uint8_t *body, size_t len,
                                mmc_meta_reply_t *rep)
{
    mmc_commit_list_t req;
    mmc_status_list_t out;

    rep->status = mmc_commit_list_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (mmc_meta_batch_ok(meta, req.count, rep) &&
        mmc_meta_status_list_alloc(&out, req.count, rep)) {
        for (uint32_t i = 0; i < req.count; i++) {
            out.status[i] =
                mmc_state_put_commit(meta->state, mc->owner,
                                     req.items[i].put_id, req.items[i].status);
        }
        mmc_meta_send_status(&out, false, rep);
    }
    mmc_commit_list_free(&req);
}

void mmc_meta_handle_release(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                             const uint8_t *body, size_t len,
                             mmc_meta_reply_t *rep)
{
    mmc_id_list_t req;
    mmc_status_list_t out;

    rep->status = mmc_id_list_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (mmc_meta_batch_ok(meta, req.count, rep) &&
        mmc_meta_status_list_alloc(&out, req.count, rep)) {
        for (uint32_t i = 0; i < req.count; i++) {
            out.status[i] =
                mmc_state_release(meta->state, mc->owner, req.ids[i]);
        }
        mmc_meta_send_status(&out, false, rep);
    }
    mmc_id_list_free(&req);
}

void mmc_meta_handle_lease(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                           const uint8_t *body, size_t len,
                           mmc_meta_reply_t *rep)
{
    mmc_key_list_t req;
    mmc_obj_list_t objs;
    uint64_t now = mmc_meta_now_ms();
    uint32_t ttl_ms;

    rep->status = mmc_lease_req_decode(body, len, &ttl_ms, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (ttl_ms == 0 || ttl_ms > MMC_STATE_LEASE_TTL_MAX) {
        rep->status = MF_ERR_INVALID;
        goto out_free_req;
    }
    if (!mmc_meta_batch_ok(meta, req.count, rep) ||
        !mmc_meta_obj_list_alloc(&objs, req.count, rep)) {
        goto out_free_req;
    }
    for (uint32_t i = 0; i < req.count; i++) {
        (void)mmc_state_lease(meta->state, mc->owner, req.keys[i].data,
                              req.keys[i].len, now, ttl_ms, &objs.items[i]);
    }
    mmc_meta_send_objs(&objs, true, true, rep);
out_free_req:
    mmc_key_list_free(&req);
}

void mmc_meta_handle_remove_all(mmc_meta_t *meta, size_t len,
                                mmc_meta_reply_t *rep)
{
    uint64_t n;

    if (len != 0) {
        rep->status = MF_ERR_PROTO;
        return;
    }
    n = mmc_state_remove_all(meta->state);
    mf_info("meta: REMOVE_ALL removed %" PRIu64 " objects", n);
    mf_wbuf_put_u64(&rep->body, n);
    rep->status = MF_OK;
}

/* GET, EXIST, QUERY and REMOVE: a key list in. */
void mmc_meta_handle_keys(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                          uint16_t opcode, const uint8_t *body, size_t len,
                          mmc_meta_reply_t *rep)
{
    mmc_key_list_t req;
    mmc_obj_list_t objs;
    mmc_status_list_t sts;
    uint64_t now = mmc_meta_now_ms();

    rep->status = mmc_key_list_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (!mmc_meta_batch_ok(meta, req.count, rep)) {
        goto out_free_req;
    }
    if ((opcode == MMC_OP_GET) || (opcode == MMC_OP_QUERY)) {
        if (!mmc_meta_obj_list_alloc(&objs, req.count, rep)) {
            goto out_free_req;
        }
        for (uint32_t i = 0; i < req.count; i++) {
            const mmc_key_t *k = &req.keys[i];
            if (opcode == MMC_OP_GET) {
                (void)mmc_state_get(meta->state, mc->owner, k->data, k->len,
                                    now, &objs.items[i]);
            } else {
                (void)mmc_state_query(meta->state, k->data, k->len,
                                      &objs.items[i], NULL);
            }
        }
        mmc_meta_send_objs(&objs, true, opcode == MMC_OP_GET, rep);
        goto out_free_req;
    }
    if (!mmc_meta_status_list_alloc(&sts, req.count, rep)) {
        goto out_free_req;
    }
    for (uint32_t i = 0; i < req.count; i++) {
        const mmc_key_t *k = &req.keys[i];
        if (opcode == MMC_OP_EXIST) {
            sts.status[i] = mmc_state_exists(meta->state, k->data, k->len);
        } else {
            sts.status[i] = mmc_state_remove(meta->state, k->data, k->len);
        }
    }
    mmc_meta_send_status(&sts, true, rep);
out_free_req:
    mmc_key_list_free(&req);
}
