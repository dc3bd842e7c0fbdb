/*
 * Encoding and decoding of MemCache's wire messages (client <-> meta).
 *
 * Invariants: the encoder and the decoder of a message walk the same field
 * list in the same order, so a decoded message re-encodes to the very bytes
 * it came from.  A decoder zeroes its output first, bounds every count
 * before it allocates (by the protocol limit and by what the rest of the
 * body could hold at the smallest item size, so a short frame never makes
 * it allocate much), checks every key and string, requires the body to end
 * where the message ends, and on failure frees what it allocated and
 * leaves its output zeroed.  Encoders never read past a fixed array: a
 * count larger than its array (a caller's bug) is clamped to the array.
 */
#include "cache/proto/proto.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>

/* Smallest encoding of one item of each kind, in bytes. */
#define MMC_PROTO_KEY_MIN     (4u + 1u)                /* len, >= 1 byte */
#define MMC_PROTO_PUT_MIN     (MMC_PROTO_KEY_MIN + 8u) /* key, size */
#define MMC_PROTO_COMMIT_MIN  (8u + 4u)                /* put id, status */
#define MMC_PROTO_ID_MIN      8u
#define MMC_PROTO_STATUS_MIN  4u
#define MMC_PROTO_OBJ_MIN     (4u + 8u + 8u + 1u) /* no replica */
#define MMC_PROTO_REPLICA_MIN (4u + 4u + 1u + 8u)
#define MMC_PROTO_SEG_MIN     (1u + 8u + 8u)
#define MMC_PROTO_REPAIR_MIN  (8u + 1u + 8u + 8u + 8u)
#define MMC_PROTO_MOVE_MIN                                                     \
    (8u + 1u + 1u + 8u + 8u + 8u + 8u + 1u + MMC_PROTO_KEY_MIN)
#define MMC_PROTO_REC_MIN (1u + 1u + 8u) /* DEL */
#define MMC_PROTO_ADD_MIN (MMC_PROTO_REC_MIN + 1u + 16u + MMC_PROTO_KEY_MIN)

static const char *const mmc_op_names[MMC_OP_MAX] = {
    [MMC_OP_HELLO] = "HELLO",
    [MMC_OP_REGISTER] = "REGISTER",
    [MMC_OP_UNREGISTER] = "UNREGISTER",
    [MMC_OP_PUT_ALLOC] = "PUT_ALLOC",
    [MMC_OP_PUT_COMMIT] = "PUT_COMMIT",
    [MMC_OP_GET] = "GET",
    [MMC_OP_RELEASE] = "RELEASE",
    [MMC_OP_EXIST] = "EXIST",
    [MMC_OP_QUERY] = "QUERY",
    [MMC_OP_REMOVE] = "REMOVE",
    [MMC_OP_PING] = "PING",
    [MMC_OP_RESTORE] = "RESTORE",
    [MMC_OP_RECORD_ACK] = "RECORD_ACK",
    [MMC_OP_RECORD] = "RECORD",
    [MMC_OP_REPAIR_DONE] = "REPAIR_DONE",
    [MMC_OP_REPAIR] = "REPAIR",
    [MMC_OP_MOVE_DONE] = "MOVE_DONE",
    [MMC_OP_MOVE] = "MOVE",
    [MMC_OP_LEASE] = "LEASE",
    [MMC_OP_REMOVE_ALL] = "REMOVE_ALL",
};

const char *mmc_op_name(uint16_t op)
{
    if ((op >= MMC_OP_HELLO) && (op < MMC_OP_MAX)) {
        return mmc_op_names[op];
    }
    return "?";
}

bool mmc_key_valid(const char *data, size_t len)
{
    return (data != NULL) && (len >= 1) && (len <= MMC_KEY_MAX) &&
           (memchr(data, '\0', len) == NULL);
}

/* ---- shared pieces ---- */

static void mmc_proto_put_i32(mf_wbuf_t *w, int32_t v)
{
    mf_wbuf_put_u32(w, (uint32_t)v);
}

static bool mmc_proto_get_i32(mf_rbuf_t *r, int32_t *v)
{
    uint32_t u;
    bool ok = mf_rbuf_get_u32(r, &u);

    /* Two's complement without an implementation-defined conversion. */
    *v = (u <= INT32_MAX) ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN;
    return ok;
}

/* A fixed char array as a string: never reads past the array. */
static void mmc_proto_put_chars(mf_wbuf_t *w, const char *s, size_t size)
{
    mf_wbuf_put_bytes(w, s, strnlen(s, size - 1));
}

/* A key without data goes out empty, which every decoder refuses. */
static void mmc_proto_put_key(mf_wbuf_t *w, const mmc_key_t *key)
{
    if (key->data == NULL) {
        mf_wbuf_put_u32(w, 0);
        return;
    }
    mf_wbuf_put_bytes(w, key->data, key->len);
}

static bool mmc_proto_get_key(mf_rbuf_t *r, mmc_key_t *key)
{
    const void *data;
    size_t len;

    if (!mf_rbuf_get_bytes(r, &data, &len, MMC_KEY_MAX) ||
        !mmc_key_valid(data, len)) {
        r->failed = true;
        return false;
    }
    key->data = data;
    key->len = (uint32_t)len;
    return true;
}

/*
 * Reads a count and checks it against the protocol limit and against what
 * the rest of the body can hold at min_item bytes per item.
 */
static bool mmc_proto_get_count(mf_rbuf_t *r, uint32_t max, size_t min_item,
                                uint32_t *count_p)
{
    uint32_t count;

    if (!mf_rbuf_get_u32(r, &count) || (count > max) ||
        ((uint64_t)count * min_item > r->left)) {
        r->failed = true;
        *count_p = 0;
        return false;
    }
    *count_p = count;
    return true;
}

/* Zeroed array of count items, NULL for an empty list (not an error). */
static mf_status_t mmc_proto_alloc(uint32_t count, size_t item_size,
                                   void **array_p)
{
    void *array = NULL;

    if (count > 0) {
        array = calloc(count, item_size);
        if (array == NULL) {
            mf_error("cannot allocate %u decoded items", count);
            return MF_ERR_NOMEM;
        }
    }
    *array_p = array;
    return MF_OK;
}

static void mmc_proto_put_replica(mf_wbuf_t *w, const mmc_replica_t *rep)
{
    mf_wbuf_put_u32(w, rep->rank);
    mf_wbuf_put_u32(w, rep->host_idx);
    mf_wbuf_put_u8(w, rep->media);
    mf_wbuf_put_u64(w, rep->gva);
}

static void mmc_proto_get_replica(mf_rbuf_t *r, mmc_replica_t *rep)
{
    mf_rbuf_get_u32(r, &rep->rank);
    mf_rbuf_get_u32(r, &rep->host_idx);
    mf_rbuf_get_u8(r, &rep->media);
    mf_rbuf_get_u64(r, &rep->gva);
}

/* ---- HELLO ---- */

void mmc_hello_req_encode(mf_wbuf_t *w, const mmc_hello_req_t *m)
{
    mf_wbuf_put_u32(w, m->version);
    mmc_proto_put_chars(w, m->name, sizeof(m->name));
}

mf_status_t mmc_hello_req_decode(const void *body, size_t len,
                                 mmc_hello_req_t *m)
{
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u32(&r, &m->version);
    mf_rbuf_get_str(&r, m->name, sizeof(m->name));
    if (mf_rbuf_status(&r, true) != MF_OK) {
        memset(m, 0, sizeof(*m));
        return MF_ERR_PROTO;
    }
    return MF_OK;
}

void mmc_hello_resp_encode(mf_wbuf_t *w, const mmc_hello_resp_t *m)
{
    mf_wbuf_put_u32(w, m->version);
    mf_wbuf_put_u64(w, m->meta_id);
    mf_wbuf_put_u32(w, m->store_port);
    mf_wbuf_put_u32(w, m->pool_id);
    mf_wbuf_put_u32(w, m->world_size);
    mf_wbuf_put_u64(w, m->max_segment_size);
    mf_wbuf_put_u64(w, m->host_base);
    mf_wbuf_put_u32(w, m->lease_ms);
    mf_wbuf_put_u32(w, m->max_batch);
    mf_wbuf_put_u32(w, m->member_timeout_ms);
    mf_wbuf_put_u64(w, m->device_base);
    mf_wbuf_put_u64(w, m->max_hbm_segment_size);
}

mf_status_t mmc_hello_resp_decode(const void *body, size_t len,
                                  mmc_hello_resp_t *m)
{
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u32(&r, &m->version);
    mf_rbuf_get_u64(&r, &m->meta_id);
    mf_rbuf_get_u32(&r, &m->store_port);
    mf_rbuf_get_u32(&r, &m->pool_id);
    mf_rbuf_get_u32(&r, &m->world_size);
    mf_rbuf_get_u64(&r, &m->max_segment_size);
    mf_rbuf_get_u64(&r, &m->host_base);
    mf_rbuf_get_u32(&r, &m->lease_ms);
    mf_rbuf_get_u32(&r, &m->max_batch);
    mf_rbuf_get_u32(&r, &m->member_timeout_ms);
    mf_rbuf_get_u64(&r, &m->device_base);
    mf_rbuf_get_u64(&r, &m->max_hbm_segment_size);
    if (mf_rbuf_status(&r, true) != MF_OK) {
        memset(m, 0, sizeof(*m));
        return MF_ERR_PROTO;
    }
    return MF_OK;
}

/* ---- REGISTER ---- */

void mmc_register_req_encode(mf_wbuf_t *w, const mmc_register_req_t *m)
{
    uint32_t nsegs =
        (m->nsegs <= MMC_PROTO_MAX_SEGS) ? m->nsegs : MMC_PROTO_MAX_SEGS;

    mf_wbuf_put_u32(w, m->rank);
    mmc_proto_put_chars(w, m->host_id, sizeof(m->host_id));
    mf_wbuf_put_u32(w, nsegs);
    for (uint32_t i = 0; i < nsegs; i++) {
        mf_wbuf_put_u8(w, m->segs[i].media);
        mf_wbuf_put_u64(w, m->segs[i].gva);
        mf_wbuf_put_u64(w, m->segs[i].size);
    }
    mf_wbuf_put_u32(w, m->flags);
}

mf_status_t mmc_register_req_decode(const void *body, size_t len,
                                    mmc_register_req_t *m)
{
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u32(&r, &m->rank);
    mf_rbuf_get_str(&r, m->host_id, sizeof(m->host_id));
    if (mmc_proto_get_count(&r, MMC_PROTO_MAX_SEGS, MMC_PROTO_SEG_MIN,
                            &m->nsegs)) {
        for (uint32_t i = 0; i < m->nsegs; i++) {
            mf_rbuf_get_u8(&r, &m->segs[i].media);
            mf_rbuf_get_u64(&r, &m->segs[i].gva);
            mf_rbuf_get_u64(&r, &m->segs[i].size);
        }
    }
    mf_rbuf_get_u32(&r, &m->flags);
    if (mf_rbuf_status(&r, true) != MF_OK) {
        memset(m, 0, sizeof(*m));
        return MF_ERR_PROTO;
    }
    return MF_OK;
}

/* ---- PUT_ALLOC ---- */

void mmc_put_alloc_req_encode(mf_wbuf_t *w, const mmc_put_alloc_req_t *m)
{
    uint32_t npref =
        (m->npref <= MMC_MAX_REPLICAS) ? m->npref : MMC_MAX_REPLICAS;

    mf_wbuf_put_u32(w, m->flags);
    mf_wbuf_put_u32(w, m->replicas);
    mf_wbuf_put_u8(w, m->media);
    mf_wbuf_put_u32(w, npref);
    for (uint32_t i = 0; i < npref; i++) {
        mf_wbuf_put_u32(w, m->pref[i]);
    }
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_proto_put_key(w, &m->items[i].key);
        mf_wbuf_put_u64(w, m->items[i].size);
    }
}

mf_status_t mmc_put_alloc_req_decode(const void *body, size_t len,
                                     mmc_put_alloc_req_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *items = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u32(&r, &m->flags);
    mf_rbuf_get_u32(&r, &m->replicas);
    mf_rbuf_get_u8(&r, &m->media);
    if (!mmc_proto_get_count(&r, MMC_MAX_REPLICAS, 4, &m->npref)) {
        goto err;
    }
    for (uint32_t i = 0; i < m->npref; i++) {
        mf_rbuf_get_u32(&r, &m->pref[i]);
    }
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_PUT_MIN, &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->items), &items);
    if (status != MF_OK) {
        goto err;
    }
    m->items = items;
    for (uint32_t i = 0; i < m->count; i++) {
        if (!mmc_proto_get_key(&r, &m->items[i].key)) {
            break;
        }
        mf_rbuf_get_u64(&r, &m->items[i].size);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        goto err_free_items;
    }
    return MF_OK;

err_free_items:
    free(m->items);
err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_put_alloc_req_free(mmc_put_alloc_req_t *m)
{
    free(m->items);
    m->items = NULL;
    m->count = 0;
}

/* ---- key list ---- */

void mmc_key_list_encode(mf_wbuf_t *w, const mmc_key_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_proto_put_key(w, &m->keys[i]);
    }
}

mf_status_t mmc_key_list_decode(const void *body, size_t len, mmc_key_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *keys = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_KEY_MIN, &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->keys), &keys);
    if (status != MF_OK) {
        goto err;
    }
    m->keys = keys;
    for (uint32_t i = 0; i < m->count; i++) {
        if (!mmc_proto_get_key(&r, &m->keys[i])) {
            break;
        }
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        goto err_free_keys;
    }
    return MF_OK;

err_free_keys:
    free(m->keys);
err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_lease_req_encode(mf_wbuf_t *w, uint32_t ttl_ms,
                          const mmc_key_list_t *keys)
{
    mf_wbuf_put_u32(w, ttl_ms);
    mmc_key_list_encode(w, keys);
}

mf_status_t mmc_lease_req_decode(const void *body, size_t len,
                                 uint32_t *ttl_ms_p, mmc_key_list_t *keys)
{
    mf_status_t status;
    mf_rbuf_t r;

    memset(keys, 0, sizeof(*keys));
    *ttl_ms_p = 0;
    mf_rbuf_init(&r, body, len);
    if (!mf_rbuf_get_u32(&r, ttl_ms_p)) {
        *ttl_ms_p = 0;
        return MF_ERR_PROTO;
    }
    status = mmc_key_list_decode((const uint8_t *)body + 4, len - 4, keys);
    if (status != MF_OK) {
        *ttl_ms_p = 0;
    }
    return status;
}

void mmc_key_list_free(mmc_key_list_t *m)
{
    free(m->keys);
    m->keys = NULL;
    m->count = 0;
}

/* ---- commit list ---- */

void mmc_commit_list_encode(mf_wbuf_t *w, const mmc_commit_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mf_wbuf_put_u64(w, m->items[i].put_id);
        mmc_proto_put_i32(w, m->items[i].status);
    }
}

mf_status_t mmc_commit_list_decode(const void *body, size_t len,
                                   mmc_commit_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *items = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_COMMIT_MIN,
                             &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->items), &items);
    if (status != MF_OK) {
        goto err;
    }
    m->items = items;
    for (uint32_t i = 0; i < m->count; i++) {
        mf_rbuf_get_u64(&r, &m->items[i].put_id);
        mmc_proto_get_i32(&r, &m->items[i].status);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        goto err_free_items;
    }
    return MF_OK;

err_free_items:
    free(m->items);
err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_commit_list_free(mmc_commit_list_t *m)
{
    free(m->items);
    m->items = NULL;
    m->count = 0;
}

/* ---- id list ---- */

void mmc_id_list_encode(mf_wbuf_t *w, const mmc_id_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mf_wbuf_put_u64(w, m->ids[i]);
    }
}

mf_status_t mmc_id_list_decode(const void *body, size_t len, mmc_id_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *ids = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_ID_MIN, &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->ids), &ids);
    if (status != MF_OK) {
        goto err;
    }
    m->ids = ids;
    for (uint32_t i = 0; i < m->count; i++) {
        mf_rbuf_get_u64(&r, &m->ids[i]);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        goto err_free_ids;
    }
    return MF_OK;

err_free_ids:
    free(m->ids);
err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_id_list_free(mmc_id_list_t *m)
{
    free(m->ids);
    m->ids = NULL;
    m->count = 0;
}

/* ---- status list ---- */

void mmc_status_list_encode(mf_wbuf_t *w, const mmc_status_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_proto_put_i32(w, m->status[i]);
    }
}

mf_status_t mmc_status_list_decode(const void *body, size_t len,
                                   mmc_status_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *array = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_STATUS_MIN,
                             &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->status), &array);
    if (status != MF_OK) {
        goto err;
    }
    m->status = array;
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_proto_get_i32(&r, &m->status[i]);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        goto err_free_status;
    }
    return MF_OK;

err_free_status:
    free(m->status);
err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_status_list_free(mmc_status_list_t *m)
{
    free(m->status);
    m->status = NULL;
    m->count = 0;
}

/* ---- obj list ---- */

void mmc_obj_list_encode(mf_wbuf_t *w, const mmc_obj_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        const mmc_obj_result_t *obj = &m->items[i];
        uint8_t nrep =
            (obj->nrep <= MMC_MAX_REPLICAS) ? obj->nrep : MMC_MAX_REPLICAS;

        mmc_proto_put_i32(w, obj->status);
        mf_wbuf_put_u64(w, obj->id);
        mf_wbuf_put_u64(w, obj->size);
        mf_wbuf_put_u8(w, nrep);
        for (uint8_t j = 0; j < nrep; j++) {
            mmc_proto_put_replica(w, &obj->reps[j]);
        }
    }
}

static bool mmc_proto_get_obj(mf_rbuf_t *r, mmc_obj_result_t *obj)
{
    mmc_proto_get_i32(r, &obj->status);
    mf_rbuf_get_u64(r, &obj->id);
    mf_rbuf_get_u64(r, &obj->size);
    if (!mf_rbuf_get_u8(r, &obj->nrep) || (obj->nrep > MMC_MAX_REPLICAS) ||
        ((size_t)obj->nrep * MMC_PROTO_REPLICA_MIN > r->left)) {
        r->failed = true;
        obj->nrep = 0;
        return false;
    }
    for (uint8_t j = 0; j < obj->nrep; j++) {
        mmc_proto_get_replica(r, &obj->reps[j]);
    }
    return true;
}

mf_status_t mmc_obj_list_decode(const void *body, size_t len, mmc_obj_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *items = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_OBJ_MIN, &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->items), &items);
    if (status != MF_OK) {
        goto err;
    }
    m->items = items;
    for (uint32_t i = 0; i < m->count; i++) {
        if (!mmc_proto_get_obj(&r, &m->items[i])) {
            break;
        }
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        goto err_free_items;
    }
    return MF_OK;

err_free_items:
    free(m->items);
err:
    memset(m, 0, sizeof(*m));
    return status;
}

mf_status_t mmc_obj_list_decode_into(const void *body, size_t len, uint32_t n,
                                     mmc_obj_result_t *(*slot)(void *arg,
                                                               uint32_t i),
                                     void *arg)
{
    uint32_t count;
    mf_rbuf_t r;

    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_OBJ_MIN, &count) ||
        count != n) {
        return MF_ERR_PROTO;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (!mmc_proto_get_obj(&r, slot(arg, i))) {
            return MF_ERR_PROTO;
        }
    }
    return mf_rbuf_status(&r, true) == MF_OK ? MF_OK : MF_ERR_PROTO;
}

void mmc_obj_list_free(mmc_obj_list_t *m)
{
    free(m->items);
    m->items = NULL;
    m->count = 0;
}

/* ---- holder records ---- */

size_t mmc_rec_entry_wire_size(const mmc_rec_entry_t *e)
{
    return e->op == MMC_REC_ADD ? MMC_PROTO_ADD_MIN - 1u + e->key.len
                                : MMC_PROTO_REC_MIN;
}

void mmc_rec_entry_encode(mf_wbuf_t *w, const mmc_rec_entry_t *e)
{
    mf_wbuf_put_u8(w, e->op);
    mf_wbuf_put_u8(w, e->media);
    mf_wbuf_put_u64(w, e->offset);
    if (e->op == MMC_REC_ADD) {
        mf_wbuf_put_u8(w, e->want);
        mf_wbuf_put_u64(w, e->size);
        mf_wbuf_put_u64(w, e->version);
        mmc_proto_put_key(w, &e->key);
    }
}

void mmc_record_encode(mf_wbuf_t *w, const mmc_record_t *m)
{
    mf_wbuf_put_u64(w, m->seq);
    mf_wbuf_put_u32(w, m->flags);
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_rec_entry_encode(w, &m->entries[i]);
    }
}

void mmc_restore_req_encode(mf_wbuf_t *w, const mmc_record_t *m)
{
    mf_wbuf_put_u32(w, m->flags);
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_rec_entry_encode(w, &m->entries[i]);
    }
}

static bool mmc_proto_get_rec_entry(mf_rbuf_t *r, mmc_rec_entry_t *e,
                                    bool add_only)
{
    mf_rbuf_get_u8(r, &e->op);
    mf_rbuf_get_u8(r, &e->media);
    mf_rbuf_get_u64(r, &e->offset);
    if (e->op == MMC_REC_ADD) {
        mf_rbuf_get_u8(r, &e->want);
        mf_rbuf_get_u64(r, &e->size);
        mf_rbuf_get_u64(r, &e->version);
        return mmc_proto_get_key(r, &e->key);
    }
    if (e->op != MMC_REC_DEL || add_only) {
        r->failed = true;
        return false;
    }
    return !r->failed;
}

static mf_status_t mmc_proto_get_entries(mf_rbuf_t *r, mmc_record_t *m,
                                         bool add_only)
{
    mf_status_t status;
    void *entries = NULL;

    if (!mmc_proto_get_count(r, MMC_REC_MAX, MMC_PROTO_REC_MIN, &m->count)) {
        return MF_ERR_PROTO;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->entries), &entries);
    if (status != MF_OK) {
        return status;
    }
    m->entries = entries;
    for (uint32_t i = 0; i < m->count; i++) {
        if (!mmc_proto_get_rec_entry(r, &m->entries[i], add_only)) {
            break;
        }
    }
    return mf_rbuf_status(r, true) == MF_OK ? MF_OK : MF_ERR_PROTO;
}

mf_status_t mmc_record_decode(const void *body, size_t len, mmc_record_t *m)
{
    mf_status_t status;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mf_rbuf_get_u64(&r, &m->seq) || m->seq == 0 ||
        !mf_rbuf_get_u32(&r, &m->flags)) {
        memset(m, 0, sizeof(*m));
        return MF_ERR_PROTO;
    }
    status = mmc_proto_get_entries(&r, m, false);
    if (status != MF_OK) {
        mmc_record_free(m);
    }
    return status;
}

mf_status_t mmc_restore_req_decode(const void *body, size_t len,
                                   mmc_record_t *m)
{
    mf_status_t status;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mf_rbuf_get_u32(&r, &m->flags)) {
        return MF_ERR_PROTO;
    }
    status = mmc_proto_get_entries(&r, m, true);
    if (status != MF_OK) {
        mmc_record_free(m);
    }
    return status;
}

void mmc_record_free(mmc_record_t *m)
{
    if (m == NULL) {
        return;
    }
    free(m->entries);
    memset(m, 0, sizeof(*m));
}

/* ---- re-replication ---- */

void mmc_repair_list_encode(mf_wbuf_t *w, const mmc_repair_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        mf_wbuf_put_u64(w, m->items[i].id);
        mf_wbuf_put_u8(w, m->items[i].media);
        mf_wbuf_put_u64(w, m->items[i].src_gva);
        mf_wbuf_put_u64(w, m->items[i].dst_gva);
        mf_wbuf_put_u64(w, m->items[i].size);
    }
}

mf_status_t mmc_repair_list_decode(const void *body, size_t len,
                                   mmc_repair_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *items = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_REPAIR_MIN,
                             &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->items), &items);
    if (status != MF_OK) {
        goto err;
    }
    m->items = items;
    for (uint32_t i = 0; i < m->count; i++) {
        mf_rbuf_get_u64(&r, &m->items[i].id);
        mf_rbuf_get_u8(&r, &m->items[i].media);
        mf_rbuf_get_u64(&r, &m->items[i].src_gva);
        mf_rbuf_get_u64(&r, &m->items[i].dst_gva);
        mf_rbuf_get_u64(&r, &m->items[i].size);
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        free(m->items);
        goto err;
    }
    return MF_OK;

err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_repair_list_free(mmc_repair_list_t *m)
{
    if (m == NULL) {
        return;
    }
    free(m->items);
    memset(m, 0, sizeof(*m));
}

/* ---- moves between memory and SSD ---- */

void mmc_move_list_encode(mf_wbuf_t *w, const mmc_move_list_t *m)
{
    mf_wbuf_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        const mmc_move_t *mv = &m->items[i];

        mf_wbuf_put_u64(w, mv->id);
        mf_wbuf_put_u8(w, mv->dir);
        mf_wbuf_put_u8(w, mv->media);
        mf_wbuf_put_u64(w, mv->gva);
        mf_wbuf_put_u64(w, mv->ssd_offset);
        mf_wbuf_put_u64(w, mv->size);
        mf_wbuf_put_u64(w, mv->version);
        mf_wbuf_put_u8(w, mv->want);
        mf_wbuf_put_bytes(w, mv->key.data, mv->key.len);
    }
}

mf_status_t mmc_move_list_decode(const void *body, size_t len,
                                 mmc_move_list_t *m)
{
    mf_status_t status = MF_ERR_PROTO;
    void *items = NULL;
    mf_rbuf_t r;

    memset(m, 0, sizeof(*m));
    mf_rbuf_init(&r, body, len);
    if (!mmc_proto_get_count(&r, MMC_BATCH_MAX, MMC_PROTO_MOVE_MIN,
                             &m->count)) {
        goto err;
    }
    status = mmc_proto_alloc(m->count, sizeof(*m->items), &items);
    if (status != MF_OK) {
        goto err;
    }
    m->items = items;
    for (uint32_t i = 0; i < m->count; i++) {
        mmc_move_t *mv = &m->items[i];

        mf_rbuf_get_u64(&r, &mv->id);
        mf_rbuf_get_u8(&r, &mv->dir);
        mf_rbuf_get_u8(&r, &mv->media);
        mf_rbuf_get_u64(&r, &mv->gva);
        mf_rbuf_get_u64(&r, &mv->ssd_offset);
        mf_rbuf_get_u64(&r, &mv->size);
        mf_rbuf_get_u64(&r, &mv->version);
        mf_rbuf_get_u8(&r, &mv->want);
        if (!mmc_proto_get_key(&r, &mv->key) ||
            ((mv->dir != MMC_MOVE_DEMOTE) && (mv->dir != MMC_MOVE_LOAD)) ||
            (mv->size == 0)) {
            status = MF_ERR_PROTO;
            free(m->items);
            goto err;
        }
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        status = MF_ERR_PROTO;
        free(m->items);
        goto err;
    }
    return MF_OK;

err:
    memset(m, 0, sizeof(*m));
    return status;
}

void mmc_move_list_free(mmc_move_list_t *m)
{
    if (m == NULL) {
        return;
    }
    free(m->items);
    memset(m, 0, sizeof(*m));
}
