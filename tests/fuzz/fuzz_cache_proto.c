/*
 * Fuzz target: every MemCache message decoder.  The first byte picks the
 * decoder (modulo their number, in the order of fuzz_cache_decoders), the
 * rest is the body, as the meta service or a client sees it.  A decoded
 * message must re-encode to the same bytes and decode again to an equal
 * message; a refused body must leave the output zeroed.
 */
#include "cache/proto/proto.h"

#include <string.h>

typedef union fuzz_cache_msg {
    mmc_hello_req_t hello_req;
    mmc_hello_resp_t hello_resp;
    mmc_register_req_t reg;
    mmc_put_alloc_req_t put;
    mmc_key_list_t keys;
    mmc_commit_list_t commits;
    mmc_id_list_t ids;
    mmc_status_list_t status;
    mmc_obj_list_t objs;
    mmc_record_t rec;
    mmc_repair_list_t repairs;
    mmc_move_list_t moves;
} fuzz_cache_msg_t;

enum {
    FUZZ_CACHE_HELLO_REQ,
    FUZZ_CACHE_HELLO_RESP,
    FUZZ_CACHE_REGISTER,
    FUZZ_CACHE_PUT_ALLOC,
    FUZZ_CACHE_KEY_LIST,
    FUZZ_CACHE_COMMIT_LIST,
    FUZZ_CACHE_ID_LIST,
    FUZZ_CACHE_STATUS_LIST,
    FUZZ_CACHE_OBJ_LIST,
    FUZZ_CACHE_RECORD,
    FUZZ_CACHE_RESTORE,
    FUZZ_CACHE_REPAIRS,
    FUZZ_CACHE_MOVES,
    FUZZ_CACHE_DECODERS
};

static mmc_obj_result_t fuzz_cache_slots[64];

static mmc_obj_result_t *fuzz_cache_slot(void *arg, uint32_t i)
{
    return &fuzz_cache_slots[i];
}

/* The allocation-free decoder of object lists on the same bytes, for the
 * count the body claims when its slots can hold it. */
static void fuzz_cache_obj_list_into(const void *body, size_t len)
{
    uint32_t n = len >= 4 ? mf_le32_load(body) : 0;

    if (n <= 64) {
        (void)mmc_obj_list_decode_into(body, len, n, fuzz_cache_slot, NULL);
    }
}

static mf_status_t fuzz_cache_decode(int t, const void *body, size_t len,
                                     fuzz_cache_msg_t *m)
{
    switch (t) {
    case FUZZ_CACHE_HELLO_REQ:
        return mmc_hello_req_decode(body, len, &m->hello_req);
    case FUZZ_CACHE_HELLO_RESP:
        return mmc_hello_resp_decode(body, len, &m->hello_resp);
    case FUZZ_CACHE_REGISTER:
        return mmc_register_req_decode(body, len, &m->reg);
    case FUZZ_CACHE_PUT_ALLOC:
        return mmc_put_alloc_req_decode(body, len, &m->put);
    case FUZZ_CACHE_KEY_LIST:
        return mmc_key_list_decode(body, len, &m->keys);
    case FUZZ_CACHE_COMMIT_LIST:
        return mmc_commit_list_decode(body, len, &m->commits);
    case FUZZ_CACHE_ID_LIST:
        return mmc_id_list_decode(body, len, &m->ids);
    case FUZZ_CACHE_STATUS_LIST:
        return mmc_status_list_decode(body, len, &m->status);
    case FUZZ_CACHE_RECORD:
        return mmc_record_decode(body, len, &m->rec);
    case FUZZ_CACHE_RESTORE:
        return mmc_restore_req_decode(body, len, &m->rec);
    case FUZZ_CACHE_REPAIRS:
        return mmc_repair_list_decode(body, len, &m->repairs);
    case FUZZ_CACHE_MOVES:
        return mmc_move_list_decode(body, len, &m->moves);
    default:
        fuzz_cache_obj_list_into(body, len);
        return mmc_obj_list_decode(body, len, &m->objs);
    }
}

static void fuzz_cache_encode(int t, mf_wbuf_t *w, const fuzz_cache_msg_t *m)
{
    switch (t) {
    case FUZZ_CACHE_HELLO_REQ:
        mmc_hello_req_encode(w, &m->hello_req);
        break;
    case FUZZ_CACHE_HELLO_RESP:
        mmc_hello_resp_encode(w, &m->hello_resp);
        break;
    case FUZZ_CACHE_REGISTER:
        mmc_register_req_encode(w, &m->reg);
        break;
    case FUZZ_CACHE_PUT_ALLOC:
        mmc_put_alloc_req_encode(w, &m->put);
        break;
    case FUZZ_CACHE_KEY_LIST:
        mmc_key_list_encode(w, &m->keys);
        break;
    case FUZZ_CACHE_COMMIT_LIST:
        mmc_commit_list_encode(w, &m->commits);
        break;
    case FUZZ_CACHE_ID_LIST:
        mmc_id_list_encode(w, &m->ids);
        break;
    case FUZZ_CACHE_STATUS_LIST:
        mmc_status_list_encode(w, &m->status);
        break;
    case FUZZ_CACHE_RECORD:
        mmc_record_encode(w, &m->rec);
        break;
    case FUZZ_CACHE_RESTORE:
        mmc_restore_req_encode(w, &m->rec);
        break;
    case FUZZ_CACHE_MOVES:
        mmc_move_list_encode(w, &m->moves);
        break;
    case FUZZ_CACHE_REPAIRS:
        mmc_repair_list_encode(w, &m->repairs);
        break;
    default:
        mmc_obj_list_encode(w, &m->objs);
        break;
    }
}

static void fuzz_cache_free(int t, fuzz_cache_msg_t *m)
{
    switch (t) {
    case FUZZ_CACHE_PUT_ALLOC:
        mmc_put_alloc_req_free(&m->put);
        break;
    case FUZZ_CACHE_KEY_LIST:
        mmc_key_list_free(&m->keys);
        break;
    case FUZZ_CACHE_COMMIT_LIST:
        mmc_commit_list_free(&m->commits);
        break;
    case FUZZ_CACHE_ID_LIST:
        mmc_id_list_free(&m->ids);
        break;
    case FUZZ_CACHE_STATUS_LIST:
        mmc_status_list_free(&m->status);
        break;
    case FUZZ_CACHE_OBJ_LIST:
        mmc_obj_list_free(&m->objs);
        break;
    case FUZZ_CACHE_RECORD:
    case FUZZ_CACHE_RESTORE:
        mmc_record_free(&m->rec);
        break;
    case FUZZ_CACHE_MOVES:
        mmc_move_list_free(&m->moves);
        break;
    case FUZZ_CACHE_REPAIRS:
        mmc_repair_list_free(&m->repairs);
        break;
    default:
        break;
    }
}

static size_t fuzz_cache_size(int t)
{
    switch (t) {
    case FUZZ_CACHE_HELLO_REQ:
        return sizeof(mmc_hello_req_t);
    case FUZZ_CACHE_HELLO_RESP:
        return sizeof(mmc_hello_resp_t);
    case FUZZ_CACHE_REGISTER:
        return sizeof(mmc_register_req_t);
    case FUZZ_CACHE_PUT_ALLOC:
        return sizeof(mmc_put_alloc_req_t);
    case FUZZ_CACHE_KEY_LIST:
        return sizeof(mmc_key_list_t);
    case FUZZ_CACHE_COMMIT_LIST:
        return sizeof(mmc_commit_list_t);
    case FUZZ_CACHE_ID_LIST:
        return sizeof(mmc_id_list_t);
    case FUZZ_CACHE_STATUS_LIST:
        return sizeof(mmc_status_list_t);
    case FUZZ_CACHE_RECORD:
    case FUZZ_CACHE_RESTORE:
        return sizeof(mmc_record_t);
    case FUZZ_CACHE_REPAIRS:
        return sizeof(mmc_repair_list_t);
    case FUZZ_CACHE_MOVES:
        return sizeof(mmc_move_list_t);
    default:
        return sizeof(mmc_obj_list_t);
    }
}

static bool fuzz_cache_key_equal(const mmc_key_t *a, const mmc_key_t *b)
{
    return (a->len == b->len) && (memcmp(a->data, b->data, a->len) == 0);
}

static bool fuzz_cache_obj_equal(const mmc_obj_result_t *a,
                                 const mmc_obj_result_t *b)
{
    if ((a->status != b->status) || (a->id != b->id) || (a->size != b->size) ||
        (a->nrep != b->nrep) || (a->nrep > MMC_MAX_REPLICAS)) {
        return false;
    }
    for (uint8_t j = 0; j < a->nrep; j++) {
        if ((a->reps[j].rank != b->reps[j].rank) ||
            (a->reps[j].host_idx != b->reps[j].host_idx) ||
            (a->reps[j].media != b->reps[j].media) ||
            (a->reps[j].gva != b->reps[j].gva)) {
            return false;
        }
    }
    return true;
}

/* Field by field: the structs hold pointers and padding. */
static bool fuzz_cache_equal(int t, const fuzz_cache_msg_t *a,
                             const fuzz_cache_msg_t *b)
{
    uint32_t i;

    switch (t) {
    case FUZZ_CACHE_HELLO_REQ:
        return (a->hello_req.version == b->hello_req.version) &&
               (strcmp(a->hello_req.name, b->hello_req.name) == 0);
    case FUZZ_CACHE_HELLO_RESP:
        return (a->hello_resp.version == b->hello_resp.version) &&
               (a->hello_resp.meta_id == b->hello_resp.meta_id) &&
               (a->hello_resp.store_port == b->hello_resp.store_port) &&
               (a->hello_resp.pool_id == b->hello_resp.pool_id) &&
               (a->hello_resp.world_size == b->hello_resp.world_size) &&
               (a->hello_resp.max_segment_size ==
                b->hello_resp.max_segment_size) &&
               (a->hello_resp.host_base == b->hello_resp.host_base) &&
               (a->hello_resp.lease_ms == b->hello_resp.lease_ms) &&
               (a->hello_resp.max_batch == b->hello_resp.max_batch) &&
               (a->hello_resp.member_timeout_ms ==
                b->hello_resp.member_timeout_ms);
    case FUZZ_CACHE_REGISTER:
        if ((a->reg.rank != b->reg.rank) || (a->reg.nsegs != b->reg.nsegs) ||
            (a->reg.nsegs > MMC_PROTO_MAX_SEGS) ||
            (strcmp(a->reg.host_id, b->reg.host_id) != 0)) {
            return false;
        }
        for (i = 0; i < a->reg.nsegs; i++) {
            if ((a->reg.segs[i].media != b->reg.segs[i].media) ||
                (a->reg.segs[i].gva != b->reg.segs[i].gva) ||
                (a->reg.segs[i].size != b->reg.segs[i].size)) {
                return false;
            }
        }
        return a->reg.flags == b->reg.flags;
    case FUZZ_CACHE_REPAIRS:
        if (a->repairs.count != b->repairs.count) {
            return false;
        }
        for (i = 0; i < a->repairs.count; i++) {
            const mmc_repair_t *x = &a->repairs.items[i];
            const mmc_repair_t *y = &b->repairs.items[i];

            if ((x->id != y->id) || (x->media != y->media) ||
                (x->src_gva != y->src_gva) || (x->dst_gva != y->dst_gva) ||
                (x->size != y->size)) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_MOVES:
        if (a->moves.count != b->moves.count) {
            return false;
        }
        for (i = 0; i < a->moves.count; i++) {
            const mmc_move_t *x = &a->moves.items[i];
            const mmc_move_t *y = &b->moves.items[i];

            if ((x->id != y->id) || (x->dir != y->dir) ||
                (x->media != y->media) || (x->gva != y->gva) ||
                (x->ssd_offset != y->ssd_offset) || (x->size != y->size) ||
                (x->version != y->version) || (x->want != y->want) ||
                !mmc_key_valid(x->key.data, x->key.len) ||
                !fuzz_cache_key_equal(&x->key, &y->key)) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_RECORD:
    case FUZZ_CACHE_RESTORE:
        if ((a->rec.seq != b->rec.seq) || (a->rec.flags != b->rec.flags) ||
            (a->rec.count != b->rec.count)) {
            return false;
        }
        for (i = 0; i < a->rec.count; i++) {
            const mmc_rec_entry_t *x = &a->rec.entries[i];
            const mmc_rec_entry_t *y = &b->rec.entries[i];

            if ((x->op != y->op) || (x->media != y->media) ||
                (x->offset != y->offset) ||
                (x->op == MMC_REC_ADD &&
                 ((x->want != y->want) || (x->size != y->size) ||
                  (x->version != y->version) ||
                  !mmc_key_valid(x->key.data, x->key.len) ||
                  !fuzz_cache_key_equal(&x->key, &y->key)))) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_PUT_ALLOC:
        if ((a->put.flags != b->put.flags) ||
            (a->put.replicas != b->put.replicas) ||
            (a->put.npref != b->put.npref) ||
            (a->put.npref > MMC_MAX_REPLICAS) ||
            (a->put.count != b->put.count)) {
            return false;
        }
        for (i = 0; i < a->put.npref; i++) {
            if (a->put.pref[i] != b->put.pref[i]) {
                return false;
            }
        }
        for (i = 0; i < a->put.count; i++) {
            if (!mmc_key_valid(a->put.items[i].key.data,
                               a->put.items[i].key.len) ||
                !fuzz_cache_key_equal(&a->put.items[i].key,
                                      &b->put.items[i].key) ||
                (a->put.items[i].size != b->put.items[i].size)) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_KEY_LIST:
        if (a->keys.count != b->keys.count) {
            return false;
        }
        for (i = 0; i < a->keys.count; i++) {
            if (!mmc_key_valid(a->keys.keys[i].data, a->keys.keys[i].len) ||
                !fuzz_cache_key_equal(&a->keys.keys[i], &b->keys.keys[i])) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_COMMIT_LIST:
        if (a->commits.count != b->commits.count) {
            return false;
        }
        for (i = 0; i < a->commits.count; i++) {
            if ((a->commits.items[i].put_id != b->commits.items[i].put_id) ||
                (a->commits.items[i].status != b->commits.items[i].status)) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_ID_LIST:
        if (a->ids.count != b->ids.count) {
            return false;
        }
        for (i = 0; i < a->ids.count; i++) {
            if (a->ids.ids[i] != b->ids.ids[i]) {
                return false;
            }
        }
        return true;
    case FUZZ_CACHE_STATUS_LIST:
        if (a->status.count != b->status.count) {
            return false;
        }
        for (i = 0; i < a->status.count; i++) {
            if (a->status.status[i] != b->status.status[i]) {
                return false;
            }
        }
        return true;
    default:
        if (a->objs.count != b->objs.count) {
            return false;
        }
        for (i = 0; i < a->objs.count; i++) {
            if (!fuzz_cache_obj_equal(&a->objs.items[i], &b->objs.items[i])) {
                return false;
            }
        }
        return true;
    }
}

static bool fuzz_cache_zeroed(const void *m, size_t size)
{
    const uint8_t *p = m;

    for (size_t i = 0; i < size; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cache_msg_t first, second;
    mf_wbuf_t w;
    int t;

    if (size < 1) {
        return 0;
    }
    t = data[0] % FUZZ_CACHE_DECODERS;
    data++;
    size--;
    memset(&first, 0xa5, sizeof(first));
    if (fuzz_cache_decode(t, data, size, &first) != MF_OK) {
        if (!fuzz_cache_zeroed(&first, fuzz_cache_size(t))) {
            __builtin_trap();
        }
        return 0;
    }
    /* The encoding is canonical: the same bytes, the same message. */
    mf_wbuf_init(&w);
    fuzz_cache_encode(t, &w, &first);
    if ((mf_wbuf_status(&w) != MF_OK) || (w.len != size) ||
        ((size > 0) && (memcmp(w.data, data, size) != 0))) {
        __builtin_trap();
    }
    if ((fuzz_cache_decode(t, w.data, w.len, &second) != MF_OK) ||
        !fuzz_cache_equal(t, &first, &second)) {
        __builtin_trap();
    }
    fuzz_cache_free(t, &second);
    mf_wbuf_free(&w);
    fuzz_cache_free(t, &first);
    return 0;
}
