/*
 * Encoding and decoding of the config store's wire messages.
 *
 * Invariants: the encoder and the decoder of a message walk the same field
 * list in the same order; a decoder fails (MF_ERR_PROTO) on a short body,
 * on bytes left over and on any length past the end, and sets its outputs
 * only on success.
 */
#include "store/store_proto.h"

#include <memfabric/mf_store.h>
#include <stdint.h>
#include <string.h>

static const uint32_t mf_store_req_field_table[MF_STORE_OP_LAST] = {
    [MF_STORE_OP_SET] = MF_STORE_F_KEY | MF_STORE_F_VALUE | MF_STORE_F_FLAGS,
    [MF_STORE_OP_GET] = MF_STORE_F_KEY | MF_STORE_F_TIMEOUT,
    [MF_STORE_OP_ADD] = MF_STORE_F_KEY | MF_STORE_F_DELTA,
    [MF_STORE_OP_APPEND] = MF_STORE_F_KEY | MF_STORE_F_VALUE,
    [MF_STORE_OP_CAS] = MF_STORE_F_KEY | MF_STORE_F_EXPECTED | MF_STORE_F_VALUE,
    [MF_STORE_OP_REMOVE] = MF_STORE_F_KEY,
    [MF_STORE_OP_WATCH] = MF_STORE_F_ID | MF_STORE_F_KEY,
    [MF_STORE_OP_UNWATCH] = MF_STORE_F_ID,
    [MF_STORE_OP_HEARTBEAT] = 0,
    [MF_STORE_OP_RANK_JOIN] =
        MF_STORE_F_KEY | MF_STORE_F_WORLD | MF_STORE_F_RANK,
    [MF_STORE_OP_RANK_LEAVE] = MF_STORE_F_KEY | MF_STORE_F_RANK,
    [MF_STORE_OP_RANK_SUBSCRIBE] = MF_STORE_F_KEY,
    [MF_STORE_OP_RANK_LIST] = MF_STORE_F_KEY,
};

/* Never hands NULL to the writer, even for an empty string. */
static void mf_store_put_bytes(mf_wbuf_t *w, const void *data, size_t len)
{
    mf_wbuf_put_bytes(w, (data != NULL) ? data : "", len);
}

static const char *const mf_store_op_names[MF_STORE_OP_LAST] = {
    [MF_STORE_OP_SET] = "set",
    [MF_STORE_OP_GET] = "get",
    [MF_STORE_OP_ADD] = "add",
    [MF_STORE_OP_APPEND] = "append",
    [MF_STORE_OP_CAS] = "cas",
    [MF_STORE_OP_REMOVE] = "remove",
    [MF_STORE_OP_WATCH] = "watch",
    [MF_STORE_OP_UNWATCH] = "unwatch",
    [MF_STORE_OP_HEARTBEAT] = "heartbeat",
    [MF_STORE_OP_RANK_JOIN] = "rank_join",
    [MF_STORE_OP_RANK_LEAVE] = "rank_leave",
    [MF_STORE_OP_RANK_SUBSCRIBE] = "rank_subscribe",
    [MF_STORE_OP_RANK_LIST] = "rank_list",
};

uint32_t mf_store_req_fields(uint16_t op, bool *known_p)
{
    bool known = (op >= MF_STORE_OP_SET) && (op < MF_STORE_OP_LAST);

    if (known_p != NULL) {
        *known_p = known;
    }
    return known ? mf_store_req_field_table[op] : 0;
}

const char *mf_store_op_name(uint16_t op)
{
    if ((op >= MF_STORE_OP_SET) && (op < MF_STORE_OP_LAST)) {
        return mf_store_op_names[op];
    }
    return "unknown";
}

mf_status_t mf_store_req_encode(uint16_t op, const mf_store_req_t *req,
                                mf_wbuf_t *w)
{
    bool known;
    uint32_t fields = mf_store_req_fields(op, &known);

    if (!known) {
        return MF_ERR_INVALID;
    }
    if (fields & MF_STORE_F_ID) {
        mf_wbuf_put_u64(w, req->id);
    }
    if (fields & MF_STORE_F_KEY) {
        mf_store_put_bytes(w, req->key, req->key_len);
    }
    if (fields & MF_STORE_F_EXPECTED) {
        mf_wbuf_put_u8(w, req->has_expected ? 1 : 0);
        mf_store_put_bytes(w, req->has_expected ? req->expected : NULL,
                           req->has_expected ? req->expected_len : 0);
    }
    if (fields & MF_STORE_F_VALUE) {
        mf_store_put_bytes(w, req->value, req->value_len);
    }
    if (fields & MF_STORE_F_FLAGS) {
        mf_wbuf_put_u32(w, req->flags);
    }
    if (fields & MF_STORE_F_TIMEOUT) {
        mf_wbuf_put_u32(w, req->timeout_ms);
    }
    if (fields & MF_STORE_F_DELTA) {
        mf_wbuf_put_i64(w, req->delta);
    }
    if (fields & MF_STORE_F_WORLD) {
        mf_wbuf_put_u32(w, req->world_size);
    }
    if (fields & MF_STORE_F_RANK) {
        mf_wbuf_put_u32(w, req->rank);
    }
    return mf_wbuf_status(w);
}

mf_status_t mf_store_req_decode(uint16_t op, const void *body, size_t len,
                                mf_store_req_t *req_p)
{
    mf_store_req_t req;
    mf_rbuf_t r;
    bool known;
    uint32_t fields = mf_store_req_fields(op, &known);
    uint8_t present;

    if (!known) {
        return MF_ERR_UNSUPPORTED;
    }
    memset(&req, 0, sizeof(req));
    mf_rbuf_init(&r, body, len);
    if (fields & MF_STORE_F_ID) {
        mf_rbuf_get_u64(&r, &req.id);
    }
    if (fields & MF_STORE_F_KEY) {
        mf_rbuf_get_bytes(&r, &req.key, &req.key_len, SIZE_MAX);
    }
    if (fields & MF_STORE_F_EXPECTED) {
        mf_rbuf_get_u8(&r, &present);
        mf_rbuf_get_bytes(&r, &req.expected, &req.expected_len, SIZE_MAX);
        /* Canonical only: an absent expected value carries no bytes. */
        if ((present > 1) || ((present == 0) && (req.expected_len != 0))) {
            return MF_ERR_PROTO;
        }
        req.has_expected = (present == 1);
    }
    if (fields & MF_STORE_F_VALUE) {
        mf_rbuf_get_bytes(&r, &req.value, &req.value_len, SIZE_MAX);
    }
    if (fields & MF_STORE_F_FLAGS) {
        mf_rbuf_get_u32(&r, &req.flags);
    }
    if (fields & MF_STORE_F_TIMEOUT) {
        mf_rbuf_get_u32(&r, &req.timeout_ms);
    }
    if (fields & MF_STORE_F_DELTA) {
        mf_rbuf_get_i64(&r, &req.delta);
    }
    if (fields & MF_STORE_F_WORLD) {
        mf_rbuf_get_u32(&r, &req.world_size);
    }
    if (fields & MF_STORE_F_RANK) {
        mf_rbuf_get_u32(&r, &req.rank);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        return MF_ERR_PROTO;
    }
    *req_p = req;
    return MF_OK;
}

void mf_store_value_encode(mf_wbuf_t *w, const void *value, size_t len)
{
    mf_store_put_bytes(w, value, len);
}

mf_status_t mf_store_value_decode(const void *body, size_t len,
                                  const void **value_p, size_t *len_p)
{
    const void *value;
    size_t value_len;
    mf_rbuf_t r;

    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_bytes(&r, &value, &value_len, SIZE_MAX);
    if (mf_rbuf_status(&r, true) != MF_OK) {
        return MF_ERR_PROTO;
    }
    *value_p = value;
    *len_p = value_len;
    return MF_OK;
}

void mf_store_i64_encode(mf_wbuf_t *w, int64_t v)
{
    mf_wbuf_put_i64(w, v);
}

mf_status_t mf_store_i64_decode(const void *body, size_t len, int64_t *v_p)
{
    mf_rbuf_t r;
    int64_t v;

    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_i64(&r, &v);
    if (mf_rbuf_status(&r, true) != MF_OK) {
        return MF_ERR_PROTO;
    }
    *v_p = v;
    return MF_OK;
}

void mf_store_u32_encode(mf_wbuf_t *w, uint32_t v)
{
    mf_wbuf_put_u32(w, v);
}

mf_status_t mf_store_u32_decode(const void *body, size_t len, uint32_t *v_p)
{
    mf_rbuf_t r;
    uint32_t v;

    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u32(&r, &v);
    if (mf_rbuf_status(&r, true) != MF_OK) {
        return MF_ERR_PROTO;
    }
    *v_p = v;
    return MF_OK;
}

void mf_store_current_encode(mf_wbuf_t *w, bool present, const void *value,
                             size_t len)
{
    mf_wbuf_put_u8(w, present ? 1 : 0);
    mf_store_put_bytes(w, present ? value : NULL, present ? len : 0);
}

mf_status_t mf_store_current_decode(const void *body, size_t len,
                                    bool *present_p, const void **value_p,
                                    size_t *len_p)
{
    mf_rbuf_t r;
    uint8_t present;
    const void *value;
    size_t value_len;

    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u8(&r, &present);
    mf_rbuf_get_bytes(&r, &value, &value_len, SIZE_MAX);
    if ((mf_rbuf_status(&r, true) != MF_OK) || (present > 1) ||
        ((present == 0) && (value_len != 0))) {
        return MF_ERR_PROTO;
    }
    *present_p = (present == 1);
    *value_p = value;
    *len_p = value_len;
    return MF_OK;
}

void mf_store_ranks_encode(mf_wbuf_t *w, const uint32_t *ranks, uint32_t count)
{
    uint32_t i;

    mf_wbuf_put_u32(w, count);
    for (i = 0; i < count; i++) {
        mf_wbuf_put_u32(w, ranks[i]);
    }
}

mf_status_t mf_store_ranks_decode(const void *body, size_t len, uint32_t *ranks,
                                  uint32_t max, uint32_t *count_p)
{
    mf_rbuf_t r;
    uint32_t count, i, rank;

    mf_rbuf_init(&r, body, len);
    if (!mf_rbuf_get_u32(&r, &count) || (r.left / 4 != count) ||
        (r.left % 4 != 0)) {
        return MF_ERR_PROTO;
    }
    /* Validate the whole body before writing any output. */
    for (i = 0; i < count; i++) {
        mf_rbuf_get_u32(&r, &rank);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        return MF_ERR_PROTO;
    }
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u32(&r, &count);
    for (i = 0; i < count; i++) {
        mf_rbuf_get_u32(&r, &rank);
        if ((ranks != NULL) && (i < max)) {
            ranks[i] = rank;
        }
    }
    *count_p = count;
    return MF_OK;
}

void mf_store_watch_event_encode(mf_wbuf_t *w, const mf_store_watch_event_t *ev)
{
    mf_wbuf_put_u8(w, ev->event);
    mf_store_put_bytes(w, ev->key, ev->key_len);
    mf_store_put_bytes(w, ev->value, ev->value_len);
}

mf_status_t mf_store_watch_event_decode(const void *body, size_t len,
                                        mf_store_watch_event_t *ev_p)
{
    mf_store_watch_event_t ev;
    mf_rbuf_t r;

    memset(&ev, 0, sizeof(ev));
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u8(&r, &ev.event);
    mf_rbuf_get_bytes(&r, &ev.key, &ev.key_len, SIZE_MAX);
    mf_rbuf_get_bytes(&r, &ev.value, &ev.value_len, SIZE_MAX);
    if ((mf_rbuf_status(&r, true) != MF_OK) ||
        ((ev.event != MF_STORE_EVENT_SET) &&
         (ev.event != MF_STORE_EVENT_REMOVE))) {
        return MF_ERR_PROTO;
    }
    *ev_p = ev;
    return MF_OK;
}

void mf_store_rank_event_encode(mf_wbuf_t *w, const mf_store_rank_event_t *ev)
{
    mf_store_put_bytes(w, ev->group, ev->group_len);
    mf_wbuf_put_u32(w, ev->rank);
    mf_wbuf_put_u8(w, ev->event);
}

mf_status_t mf_store_rank_event_decode(const void *body, size_t len,
                                       mf_store_rank_event_t *ev_p)
{
    mf_store_rank_event_t ev;
    mf_rbuf_t r;

    memset(&ev, 0, sizeof(ev));
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_bytes(&r, &ev.group, &ev.group_len, SIZE_MAX);
    mf_rbuf_get_u32(&r, &ev.rank);
    mf_rbuf_get_u8(&r, &ev.event);
    if ((mf_rbuf_status(&r, true) != MF_OK) ||
        ((ev.event != MF_RANK_JOINED) && (ev.event != MF_RANK_LEFT) &&
         (ev.event != MF_RANK_LOST))) {
        return MF_ERR_PROTO;
    }
    *ev_p = ev;
    return MF_OK;
}
