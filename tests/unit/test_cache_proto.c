/*
 * Unit tests of MemCache's wire codec: every message round-trips (empty,
 * one item, a full batch, eight replicas); every truncation, a trailing
 * byte, bad keys, bad strings and counts over their limits are refused
 * with MF_ERR_PROTO and leave the output zeroed (ASan catches a leak or
 * an out-of-bounds read); a count the body cannot hold is refused before
 * anything is allocated; the fields of version 2 sit at their bytes.  Also
 * the names of opcodes and status codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"

#include "cache/proto/proto.h"
#include "util/misc.h"

#include <memcache/mmc_status.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation tracking: the largest block asked for while armed ---- */

static volatile bool test_alloc_armed;
static volatile size_t test_alloc_max;
static volatile size_t test_alloc_calls;

static void test_alloc_note(size_t size)
{
    if (test_alloc_armed) {
        test_alloc_calls++;
        if (size > test_alloc_max) {
            test_alloc_max = size;
        }
    }
}

/* A sanitizer owns malloc (replacing it would hand its free() memory it
 * did not allocate), and offers hooks instead. */
#if defined(__SANITIZE_ADDRESS__) || MF_TSAN
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *));

static void test_malloc_hook(const volatile void *ptr, size_t size)
{
    (void)ptr;
    test_alloc_note(size);
}

static void test_free_hook(const volatile void *ptr)
{
    (void)ptr;
}

static void test_alloc_install(void)
{
    __sanitizer_install_malloc_and_free_hooks(test_malloc_hook, test_free_hook);
}
#elif defined(__GLIBC__)
/* glibc lets a program replace its allocator; these forward to it. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

void *malloc(size_t size)
{
    test_alloc_note(size);
    return __libc_malloc(size);
}

void *calloc(size_t nmemb, size_t size)
{
    test_alloc_note((nmemb != 0 && size > SIZE_MAX / nmemb) ? SIZE_MAX
                                                            : nmemb * size);
    return __libc_calloc(nmemb, size);
}

void *realloc(void *ptr, size_t size)
{
    test_alloc_note(size);
    return __libc_realloc(ptr, size);
}

static void test_alloc_install(void)
{
}
#else
#define TEST_ALLOC_UNTRACKED 1
static void test_alloc_install(void)
{
}
#endif

/* ---- every message type behind one interface ---- */

typedef enum test_type {
    TEST_HELLO_REQ,
    TEST_HELLO_RESP,
    TEST_REGISTER,
    TEST_PUT_ALLOC,
    TEST_KEY_LIST,
    TEST_COMMIT_LIST,
    TEST_ID_LIST,
    TEST_STATUS_LIST,
    TEST_OBJ_LIST,
    TEST_RECORD,
    TEST_RESTORE,
    TEST_REPAIRS,
    TEST_MOVES,
    TEST_LEASE,
    TEST_TYPES
} test_type_t;

typedef union test_msg {
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
    struct {
        mmc_key_list_t keys; /* first: the key list's sample and check */
        uint32_t ttl_ms;
    } lease;
} test_msg_t;

#define TEST_VARIANTS 4 /* 0: empty, 1: one item, 2: a few, 3: full batch */

static const size_t test_msg_size[TEST_TYPES] = {
    [TEST_HELLO_REQ] = sizeof(mmc_hello_req_t),
    [TEST_HELLO_RESP] = sizeof(mmc_hello_resp_t),
    [TEST_REGISTER] = sizeof(mmc_register_req_t),
    [TEST_PUT_ALLOC] = sizeof(mmc_put_alloc_req_t),
    [TEST_KEY_LIST] = sizeof(mmc_key_list_t),
    [TEST_COMMIT_LIST] = sizeof(mmc_commit_list_t),
    [TEST_ID_LIST] = sizeof(mmc_id_list_t),
    [TEST_STATUS_LIST] = sizeof(mmc_status_list_t),
    [TEST_OBJ_LIST] = sizeof(mmc_obj_list_t),
    [TEST_RECORD] = sizeof(mmc_record_t),
    [TEST_RESTORE] = sizeof(mmc_record_t),
    [TEST_REPAIRS] = sizeof(mmc_repair_list_t),
    [TEST_MOVES] = sizeof(mmc_move_list_t),
    [TEST_LEASE] = offsetof(test_msg_t, lease.ttl_ms) + sizeof(uint32_t),
};

static void test_encode(test_type_t t, mf_wbuf_t *w, const test_msg_t *m)
{
    switch (t) {
    case TEST_HELLO_REQ:
        mmc_hello_req_encode(w, &m->hello_req);
        break;
    case TEST_HELLO_RESP:
        mmc_hello_resp_encode(w, &m->hello_resp);
        break;
    case TEST_REGISTER:
        mmc_register_req_encode(w, &m->reg);
        break;
    case TEST_PUT_ALLOC:
        mmc_put_alloc_req_encode(w, &m->put);
        break;
    case TEST_KEY_LIST:
        mmc_key_list_encode(w, &m->keys);
        break;
    case TEST_COMMIT_LIST:
        mmc_commit_list_encode(w, &m->commits);
        break;
    case TEST_ID_LIST:
        mmc_id_list_encode(w, &m->ids);
        break;
    case TEST_STATUS_LIST:
        mmc_status_list_encode(w, &m->status);
        break;
    case TEST_OBJ_LIST:
        mmc_obj_list_encode(w, &m->objs);
        break;
    case TEST_RECORD:
        mmc_record_encode(w, &m->rec);
        break;
    case TEST_RESTORE:
        mmc_restore_req_encode(w, &m->rec);
        break;
    case TEST_REPAIRS:
        mmc_repair_list_encode(w, &m->repairs);
        break;
    case TEST_MOVES:
        mmc_move_list_encode(w, &m->moves);
        break;
    case TEST_LEASE:
        mmc_lease_req_encode(w, m->lease.ttl_ms, &m->lease.keys);
        break;
    default:
        fail();
    }
}

static mf_status_t test_decode(test_type_t t, const void *body, size_t len,
                               test_msg_t *m)
{
    switch (t) {
    case TEST_HELLO_REQ:
        return mmc_hello_req_decode(body, len, &m->hello_req);
    case TEST_HELLO_RESP:
        return mmc_hello_resp_decode(body, len, &m->hello_resp);
    case TEST_REGISTER:
        return mmc_register_req_decode(body, len, &m->reg);
    case TEST_PUT_ALLOC:
        return mmc_put_alloc_req_decode(body, len, &m->put);
    case TEST_KEY_LIST:
        return mmc_key_list_decode(body, len, &m->keys);
    case TEST_COMMIT_LIST:
        return mmc_commit_list_decode(body, len, &m->commits);
    case TEST_ID_LIST:
        return mmc_id_list_decode(body, len, &m->ids);
    case TEST_STATUS_LIST:
        return mmc_status_list_decode(body, len, &m->status);
    case TEST_OBJ_LIST:
        return mmc_obj_list_decode(body, len, &m->objs);
    case TEST_RECORD:
        return mmc_record_decode(body, len, &m->rec);
    case TEST_RESTORE:
        return mmc_restore_req_decode(body, len, &m->rec);
    case TEST_REPAIRS:
        return mmc_repair_list_decode(body, len, &m->repairs);
    case TEST_MOVES:
        return mmc_move_list_decode(body, len, &m->moves);
    case TEST_LEASE:
        return mmc_lease_req_decode(body, len, &m->lease.ttl_ms,
                                    &m->lease.keys);
    default:
        fail();
    }
    return MF_ERR_INVALID;
}

static void test_msg_free(test_type_t t, test_msg_t *m)
{
    switch (t) {
    case TEST_PUT_ALLOC:
        mmc_put_alloc_req_free(&m->put);
        break;
    case TEST_KEY_LIST:
    case TEST_LEASE:
        mmc_key_list_free(&m->keys);
        break;
    case TEST_COMMIT_LIST:
        mmc_commit_list_free(&m->commits);
        break;
    case TEST_ID_LIST:
        mmc_id_list_free(&m->ids);
        break;
    case TEST_STATUS_LIST:
        mmc_status_list_free(&m->status);
        break;
    case TEST_OBJ_LIST:
        mmc_obj_list_free(&m->objs);
        break;
    case TEST_RECORD:
    case TEST_RESTORE:
        mmc_record_free(&m->rec);
        break;
    case TEST_REPAIRS:
        mmc_repair_list_free(&m->repairs);
        break;
    case TEST_MOVES:
        mmc_move_list_free(&m->moves);
        break;
    default:
        break;
    }
}

static void test_key_check(const mmc_key_t *a, const mmc_key_t *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

static void test_obj_check(const mmc_obj_result_t *a, const mmc_obj_result_t *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->nrep, b->nrep);
    for (uint8_t j = 0; j < a->nrep; j++) {
        assert_int_equal(a->reps[j].rank, b->reps[j].rank);
        assert_int_equal(a->reps[j].host_idx, b->reps[j].host_idx);
        assert_int_equal(a->reps[j].media, b->reps[j].media);
        assert_int_equal(a->reps[j].gva, b->reps[j].gva);
    }
}

/* Fails the test unless a and b carry the same message. */
static void test_msg_check(test_type_t t, const test_msg_t *a,
                           const test_msg_t *b)
{
    uint32_t i;

    switch (t) {
    case TEST_HELLO_REQ:
        assert_int_equal(a->hello_req.version, b->hello_req.version);
        assert_string_equal(a->hello_req.name, b->hello_req.name);
        break;
    case TEST_HELLO_RESP:
        assert_int_equal(a->hello_resp.version, b->hello_resp.version);
        assert_int_equal(a->hello_resp.meta_id, b->hello_resp.meta_id);
        assert_int_equal(a->hello_resp.store_port, b->hello_resp.store_port);
        assert_int_equal(a->hello_resp.pool_id, b->hello_resp.pool_id);
        assert_int_equal(a->hello_resp.world_size, b->hello_resp.world_size);
        assert_int_equal(a->hello_resp.max_segment_size,
                         b->hello_resp.max_segment_size);
        assert_int_equal(a->hello_resp.host_base, b->hello_resp.host_base);
        assert_int_equal(a->hello_resp.lease_ms, b->hello_resp.lease_ms);
        assert_int_equal(a->hello_resp.max_batch, b->hello_resp.max_batch);
        assert_int_equal(a->hello_resp.member_timeout_ms,
                         b->hello_resp.member_timeout_ms);
        assert_int_equal(a->hello_resp.device_base, b->hello_resp.device_base);
        assert_int_equal(a->hello_resp.max_hbm_segment_size,
                         b->hello_resp.max_hbm_segment_size);
        break;
    case TEST_REGISTER:
        assert_int_equal(a->reg.rank, b->reg.rank);
        assert_string_equal(a->reg.host_id, b->reg.host_id);
        assert_int_equal(a->reg.nsegs, b->reg.nsegs);
        for (i = 0; i < a->reg.nsegs; i++) {
            assert_int_equal(a->reg.segs[i].media, b->reg.segs[i].media);
            assert_int_equal(a->reg.segs[i].gva, b->reg.segs[i].gva);
            assert_int_equal(a->reg.segs[i].size, b->reg.segs[i].size);
        }
        assert_int_equal(a->reg.flags, b->reg.flags);
        break;
    case TEST_MOVES:
        assert_int_equal(a->moves.count, b->moves.count);
        for (i = 0; i < a->moves.count; i++) {
            const mmc_move_t *x = &a->moves.items[i];
            const mmc_move_t *y = &b->moves.items[i];

            assert_int_equal(x->id, y->id);
            assert_int_equal(x->dir, y->dir);
            assert_int_equal(x->media, y->media);
            assert_int_equal(x->gva, y->gva);
            assert_int_equal(x->ssd_offset, y->ssd_offset);
            assert_int_equal(x->size, y->size);
            assert_int_equal(x->version, y->version);
            assert_int_equal(x->want, y->want);
            assert_int_equal(x->key.len, y->key.len);
            assert_memory_equal(x->key.data, y->key.data, x->key.len);
        }
        break;
    case TEST_REPAIRS:
        assert_int_equal(a->repairs.count, b->repairs.count);
        for (i = 0; i < a->repairs.count; i++) {
            assert_memory_equal(&a->repairs.items[i], &b->repairs.items[i],
                                sizeof(mmc_repair_t));
        }
        break;
    case TEST_RECORD:
    case TEST_RESTORE:
        assert_int_equal(a->rec.seq, t == TEST_RECORD ? b->rec.seq : 0);
        assert_int_equal(a->rec.flags, b->rec.flags);
        assert_int_equal(a->rec.count, b->rec.count);
        for (i = 0; i < a->rec.count; i++) {
            const mmc_rec_entry_t *x = &a->rec.entries[i];
            const mmc_rec_entry_t *y = &b->rec.entries[i];

            assert_int_equal(x->op, y->op);
            assert_int_equal(x->media, y->media);
            assert_int_equal(x->offset, y->offset);
            if (x->op == MMC_REC_ADD) {
                assert_int_equal(x->want, y->want);
                assert_int_equal(x->size, y->size);
                assert_int_equal(x->version, y->version);
                test_key_check(&x->key, &y->key);
            }
        }
        break;
    case TEST_PUT_ALLOC:
        assert_int_equal(a->put.flags, b->put.flags);
        assert_int_equal(a->put.replicas, b->put.replicas);
        assert_int_equal(a->put.media, b->put.media);
        assert_int_equal(a->put.npref, b->put.npref);
        for (i = 0; i < a->put.npref; i++) {
            assert_int_equal(a->put.pref[i], b->put.pref[i]);
        }
        assert_int_equal(a->put.count, b->put.count);
        for (i = 0; i < a->put.count; i++) {
            test_key_check(&a->put.items[i].key, &b->put.items[i].key);
            assert_int_equal(a->put.items[i].size, b->put.items[i].size);
        }
        break;
    case TEST_LEASE:
        assert_int_equal(a->lease.ttl_ms, b->lease.ttl_ms);
        /* fall through: the keys */
    case TEST_KEY_LIST:
        assert_int_equal(a->keys.count, b->keys.count);
        for (i = 0; i < a->keys.count; i++) {
            test_key_check(&a->keys.keys[i], &b->keys.keys[i]);
        }
        break;
    case TEST_COMMIT_LIST:
        assert_int_equal(a->commits.count, b->commits.count);
        for (i = 0; i < a->commits.count; i++) {
            assert_int_equal(a->commits.items[i].put_id,
                             b->commits.items[i].put_id);
            assert_int_equal(a->commits.items[i].status,
                             b->commits.items[i].status);
        }
        break;
    case TEST_ID_LIST:
        assert_int_equal(a->ids.count, b->ids.count);
        for (i = 0; i < a->ids.count; i++) {
            assert_int_equal(a->ids.ids[i], b->ids.ids[i]);
        }
        break;
    case TEST_STATUS_LIST:
        assert_int_equal(a->status.count, b->status.count);
        for (i = 0; i < a->status.count; i++) {
            assert_int_equal(a->status.status[i], b->status.status[i]);
        }
        break;
    case TEST_OBJ_LIST:
        assert_int_equal(a->objs.count, b->objs.count);
        for (i = 0; i < a->objs.count; i++) {
            test_obj_check(&a->objs.items[i], &b->objs.items[i]);
        }
        break;
    default:
        fail();
    }
}

/* ---- sample messages ---- */

static char test_key_data[MMC_BATCH_MAX][16];
static char test_long_key[MMC_KEY_MAX];

/* Key i of a sample: short ones, and now and then one of MMC_KEY_MAX. */
static mmc_key_t test_key(uint32_t i)
{
    mmc_key_t key;

    if (i % 7 == 3) {
        memset(test_long_key, 'k', sizeof(test_long_key));
        key.data = test_long_key;
        key.len = MMC_KEY_MAX;
        return key;
    }
    key.len = (uint32_t)snprintf(test_key_data[i], sizeof(test_key_data[i]),
                                 "key/%u", i);
    key.data = test_key_data[i];
    return key;
}

static uint32_t test_variant_count(int variant)
{
    static const uint32_t counts[TEST_VARIANTS] = {0, 1, 5, MMC_BATCH_MAX};
    return counts[variant];
}

static void *test_array(uint32_t count, size_t size)
{
    void *p;

    if (count == 0) {
        return NULL;
    }
    p = calloc(count, size);
    assert_non_null(p);
    return p;
}

/* Builds sample `variant` of type t; free it with test_msg_free. */
static void test_sample(test_type_t t, int variant, test_msg_t *m)
{
    uint32_t n = test_variant_count(variant), i;

    memset(m, 0, sizeof(*m));
    switch (t) {
    case TEST_HELLO_REQ:
        m->hello_req.version = MMC_PROTO_VERSION + (uint32_t)variant;
        if (variant == 3) {
            memset(m->hello_req.name, 'n', MMC_PROTO_NAME_MAX);
        } else if (variant > 0) {
            snprintf(m->hello_req.name, sizeof(m->hello_req.name), "client-%d",
                     variant);
        }
        break;
    case TEST_HELLO_RESP:
        if (variant > 0) {
            m->hello_resp.version = MMC_PROTO_VERSION;
            m->hello_resp.meta_id = 0xfedcba9876543210ull + (uint64_t)variant;
            m->hello_resp.store_port = 40000;
            m->hello_resp.pool_id = 3;
            m->hello_resp.world_size = 64;
            m->hello_resp.max_segment_size = 1ull << 36;
            m->hello_resp.host_base = 0x200000000000ull;
            m->hello_resp.lease_ms = 5000;
            m->hello_resp.max_batch = UINT32_MAX;
            m->hello_resp.member_timeout_ms = 10000;
            /* variant 1: a pool without a device window */
            m->hello_resp.device_base =
                (variant == 1) ? 0 : 0x600000000000ull + (uint64_t)variant;
            m->hello_resp.max_hbm_segment_size =
                (variant == 1) ? 0 : (UINT64_MAX - (uint64_t)variant);
        }
        break;
    case TEST_REGISTER:
        m->reg.rank = (uint32_t)variant * 1000u;
        m->reg.nsegs = (variant < MMC_PROTO_MAX_SEGS) ? (uint32_t)variant
                                                      : MMC_PROTO_MAX_SEGS;
        if (variant == 3) {
            memset(m->reg.host_id, 'h', MMC_PROTO_HOST_MAX);
        } else if (variant > 0) {
            snprintf(m->reg.host_id, sizeof(m->reg.host_id), "host-%d",
                     variant);
        }
        for (i = 0; i < m->reg.nsegs; i++) {
            m->reg.segs[i].media =
                (uint8_t)(i == 0 ? MMC_MEDIA_DRAM : MMC_MEDIA_HBM);
            m->reg.segs[i].gva = 0x200000000000ull + ((uint64_t)i << 30);
            m->reg.segs[i].size = UINT64_MAX - i;
        }
        m->reg.flags = variant == 2 ? MMC_REG_RESTORE : 0;
        break;
    case TEST_MOVES:
        m->moves.count = n;
        m->moves.items = n > 0 ? calloc(n, sizeof(mmc_move_t)) : NULL;
        assert_true(n == 0 || m->moves.items != NULL);
        for (i = 0; i < n; i++) {
            m->moves.items[i] = (mmc_move_t){
                .id = 2000 + i,
                .dir = (uint8_t)((i & 1) ? MMC_MOVE_LOAD : MMC_MOVE_DEMOTE),
                .media = (uint8_t)(i & 1),
                .gva = 0x200000000000ull + ((uint64_t)i << 20),
                .ssd_offset = (uint64_t)i << 12,
                .size = UINT64_MAX - i,
                .version = 7 + i,
                .want = (uint8_t)(1 + i % 8),
                .key = {.data = "move-key", .len = 1 + i % 8}};
        }
        break;
    case TEST_REPAIRS:
        m->repairs.count = n;
        m->repairs.items = n > 0 ? calloc(n, sizeof(mmc_repair_t)) : NULL;
        assert_true(n == 0 || m->repairs.items != NULL);
        for (i = 0; i < n; i++) {
            m->repairs.items[i] = (mmc_repair_t){
                .id = 1000 + i,
                .media = (uint8_t)(i & 1),
                .src_gva = 0x200000000000ull + ((uint64_t)i << 20),
                .dst_gva = 0x300000000000ull + ((uint64_t)i << 20),
                .size = UINT64_MAX - i};
        }
        break;
    case TEST_RECORD:
    case TEST_RESTORE:
        m->rec.seq = t == TEST_RECORD ? (uint64_t)variant + 1 : 0;
        m->rec.flags = variant != 3        ? 0
                       : t == TEST_RESTORE ? MMC_RESTORE_LAST
                                           : MMC_RECORD_ACK_LATER;
        m->rec.count = n;
        m->rec.entries = n > 0 ? calloc(n, sizeof(*m->rec.entries)) : NULL;
        assert_true(n == 0 || m->rec.entries != NULL);
        for (i = 0; i < n; i++) {
            mmc_rec_entry_t *e = &m->rec.entries[i];

            e->op =
                (t == TEST_RECORD && i % 3 == 1) ? MMC_REC_DEL : MMC_REC_ADD;
            e->media = (uint8_t)(i & 1);
            e->offset = (uint64_t)i << 12;
            if (e->op == MMC_REC_ADD) {
                e->want = (uint8_t)(1 + i % MMC_MAX_REPLICAS);
                e->size = UINT64_MAX - i;
                e->version = 0x0123456789abcdefull + i;
                e->key = test_key(i);
            }
        }
        break;
    case TEST_PUT_ALLOC:
        m->put.flags = (variant & 1) ? MMC_PUT_REPLACE : 0;
        m->put.replicas = (variant == 2) ? 0xffffffffu : (uint32_t)variant + 1;
        m->put.media = (variant == 3)   ? 0xff
                       : (variant == 1) ? MMC_MEDIA_HBM
                                        : MMC_MEDIA_DRAM;
        m->put.npref = (variant == 0)   ? 0
                       : (variant == 1) ? 1
                                        : MMC_MAX_REPLICAS;
        for (i = 0; i < m->put.npref; i++) {
            m->put.pref[i] = 7 * i + 1;
        }
        m->put.count = n;
        m->put.items = test_array(n, sizeof(*m->put.items));
        for (i = 0; i < n; i++) {
            m->put.items[i].key = test_key(i);
            m->put.items[i].size = (uint64_t)i * 4096 + 1;
        }
        break;
    case TEST_KEY_LIST:
    case TEST_LEASE:
        m->keys.count = n;
        m->keys.keys = test_array(n, sizeof(*m->keys.keys));
        for (i = 0; i < n; i++) {
            m->keys.keys[i] = test_key(i);
        }
        if (t == TEST_LEASE) {
            m->lease.ttl_ms = 300000u + (uint32_t)variant;
        }
        break;
    case TEST_COMMIT_LIST:
        m->commits.count = n;
        m->commits.items = test_array(n, sizeof(*m->commits.items));
        for (i = 0; i < n; i++) {
            m->commits.items[i].put_id = UINT64_MAX - i;
            m->commits.items[i].status = (i % 3 == 0)   ? MMC_OK
                                         : (i % 3 == 1) ? MF_ERR_TIMEOUT
                                                        : INT32_MIN;
        }
        break;
    case TEST_ID_LIST:
        m->ids.count = n;
        m->ids.ids = test_array(n, sizeof(*m->ids.ids));
        for (i = 0; i < n; i++) {
            m->ids.ids[i] = 0x8000000000000000ull | i;
        }
        break;
    case TEST_STATUS_LIST:
        m->status.count = n;
        m->status.status = test_array(n, sizeof(*m->status.status));
        for (i = 0; i < n; i++) {
            m->status.status[i] = (i % 4 == 0)   ? MMC_OK
                                  : (i % 4 == 1) ? MMC_ERR_NOT_FOUND
                                  : (i % 4 == 2) ? INT32_MAX
                                                 : MMC_ERR_LEASE_EXPIRED;
        }
        break;
    case TEST_OBJ_LIST:
        m->objs.count = n;
        m->objs.items = test_array(n, sizeof(*m->objs.items));
        for (i = 0; i < n; i++) {
            mmc_obj_result_t *obj = &m->objs.items[i];

            obj->status = (i % 5 == 4) ? MMC_ERR_NO_SPACE : MMC_OK;
            obj->id = 1000 + i;
            obj->size = (uint64_t)i << 20;
            /* the first item always has the most replicas */
            obj->nrep =
                (uint8_t)(MMC_MAX_REPLICAS - i % (MMC_MAX_REPLICAS + 1));
            for (uint8_t j = 0; j < obj->nrep; j++) {
                obj->reps[j].rank = i + j;
                obj->reps[j].host_idx = j;
                obj->reps[j].media = (uint8_t)(j & 1);
                obj->reps[j].gva = 0x200000000000ull + ((uint64_t)j << 36);
            }
        }
        break;
    default:
        fail();
    }
}

static uint8_t *test_encode_copy(test_type_t t, const test_msg_t *m,
                                 size_t *len_p)
{
    mf_wbuf_t w;
    uint8_t *body;

    mf_wbuf_init(&w);
    test_encode(t, &w, m);
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    /* one spare byte for the trailing-byte test */
    body = malloc(w.len + 1);
    assert_non_null(body);
    if (w.len > 0) {
        memcpy(body, w.data, w.len);
    }
    *len_p = w.len;
    mf_wbuf_free(&w);
    return body;
}

static void test_assert_zero(test_type_t t, const test_msg_t *m)
{
    static const uint8_t zero[sizeof(test_msg_t)];

    assert_memory_equal(m, zero, test_msg_size[t]);
}

/* Decoding body fails with MF_ERR_PROTO and leaves the output zeroed. */
static void test_refused(test_type_t t, const void *body, size_t len)
{
    test_msg_t out;

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(test_decode(t, body, len, &out), MF_ERR_PROTO);
    test_assert_zero(t, &out);
    test_msg_free(t, &out); /* accepts a zeroed message */
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
    (void)state;
    for (int t = 0; t < TEST_TYPES; t++) {
        for (int v = 0; v < TEST_VARIANTS; v++) {
            test_msg_t in, out, again;
            uint8_t *body, *body2;
            size_t len, len2;

            test_sample((test_type_t)t, v, &in);
            body = test_encode_copy((test_type_t)t, &in, &len);
            memset(&out, 0xa5, sizeof(out));
            assert_int_equal(test_decode((test_type_t)t, body, len, &out),
                             MF_OK);
            test_msg_check((test_type_t)t, &in, &out);
            /* the encoding is canonical: a decoded message re-encodes to
             * the same bytes */
            body2 = test_encode_copy((test_type_t)t, &out, &len2);
            assert_int_equal(len2, len);
            if (len > 0) {
                assert_memory_equal(body2, body, len);
            }
            assert_int_equal(test_decode((test_type_t)t, body2, len2, &again),
                             MF_OK);
            test_msg_check((test_type_t)t, &out, &again);
            test_msg_free((test_type_t)t, &again);
            test_msg_free((test_type_t)t, &out);
            test_msg_free((test_type_t)t, &in);
            free(body2);
            free(body);
        }
    }
}

/* Every prefix of every encoding fails (sampled for the full batches),
 * and so does one byte too many. */
static void test_truncated_and_trailing(void **state)
{
    (void)state;
    if (MF_TSAN) {
        /* every prefix of every message on one thread: minutes under
         * ThreadSanitizer, which has nothing to find here (the other
         * builds run it) */
        skip();
    }
    for (int t = 0; t < TEST_TYPES; t++) {
        for (int v = 0; v < TEST_VARIANTS; v++) {
            test_msg_t in;
            uint8_t *body, *copy;
            size_t len, cut, step;

            test_sample((test_type_t)t, v, &in);
            body = test_encode_copy((test_type_t)t, &in, &len);
            /* sampled for the full batches, every prefix otherwise */
            step = (len > 4096) ? len / 128 + 1 : 1;
            for (cut = 0; cut < len; cut += (cut < 256) ? 1 : step) {
                /* a copy of exactly cut bytes, so ASan sees any overread */
                copy = malloc(cut + 1);
                assert_non_null(copy);
                memcpy(copy, body, cut);
                test_refused((test_type_t)t, cut > 0 ? copy : NULL, cut);
                free(copy);
            }
            for (cut = (len > 256) ? len - 256 : 0; cut < len; cut++) {
                test_refused((test_type_t)t, body, cut);
            }
            body[len] = 0;
            test_refused((test_type_t)t, body, len + 1);
            test_msg_free((test_type_t)t, &in);
            free(body);
        }
    }
}

static mmc_obj_result_t *test_obj_slot(void *arg, uint32_t i)
{
    return &((mmc_obj_result_t *)arg)[i];
}

/* The allocation-free decoder of object lists gives what the other does,
 * and refuses another count, every cut and a trailing byte. */
static void test_obj_list_into(void **state)
{
    (void)state;
    for (int v = 0; v < TEST_VARIANTS; v++) {
        mmc_obj_result_t *slots;
        test_msg_t in;
        uint8_t *body;
        uint32_t n;
        size_t len;

        test_sample(TEST_OBJ_LIST, v, &in);
        n = in.objs.count;
        body = test_encode_copy(TEST_OBJ_LIST, &in, &len);
        slots = calloc(n + 1, sizeof(*slots));
        assert_non_null(slots);
        assert_int_equal(
            mmc_obj_list_decode_into(body, len, n, test_obj_slot, slots),
            MF_OK);
        for (uint32_t i = 0; i < n; i++) {
            test_obj_check(&in.objs.items[i], &slots[i]);
        }
        assert_int_equal(
            mmc_obj_list_decode_into(body, len, n + 1, test_obj_slot, slots),
            MF_ERR_PROTO);
        if (n > 0) {
            assert_int_equal(mmc_obj_list_decode_into(body, len, n - 1,
                                                      test_obj_slot, slots),
                             MF_ERR_PROTO);
        }
        for (size_t cut = 0; cut < len; cut += cut < 64 ? 1 : len / 64 + 1) {
            assert_int_equal(
                mmc_obj_list_decode_into(body, cut, n, test_obj_slot, slots),
                MF_ERR_PROTO);
        }
        body[len] = 0;
        assert_int_equal(
            mmc_obj_list_decode_into(body, len + 1, n, test_obj_slot, slots),
            MF_ERR_PROTO);
        free(slots);
        test_msg_free(TEST_OBJ_LIST, &in);
        free(body);
    }
}

/* Encodes a key list of one key and a put request of that key. */
static void test_one_key_refused(const char *data, uint32_t len)
{
    mmc_put_item_t item;
    test_msg_t msg;
    mmc_key_t key;
    uint8_t *body;
    size_t blen;

    key.data = data;
    key.len = len;
    memset(&msg, 0, sizeof(msg));
    msg.keys.count = 1;
    msg.keys.keys = &key;
    body = test_encode_copy(TEST_KEY_LIST, &msg, &blen);
    test_refused(TEST_KEY_LIST, body, blen);
    free(body);

    memset(&msg, 0, sizeof(msg));
    msg.put.replicas = 1;
    item.key = key;
    item.size = 10;
    msg.put.count = 1;
    msg.put.items = &item;
    body = test_encode_copy(TEST_PUT_ALLOC, &msg, &blen);
    test_refused(TEST_PUT_ALLOC, body, blen);
    free(body);
}

static void test_bad_keys(void **state)
{
    char big[MMC_KEY_MAX + 1];
    mmc_key_list_t out;
    test_msg_t msg;
    mmc_key_t key;
    uint8_t *body;
    size_t blen;

    (void)state;
    memset(big, 'x', sizeof(big));
    test_one_key_refused("", 0);
    test_one_key_refused(big, MMC_KEY_MAX + 1);
    test_one_key_refused("a\0b", 3);
    test_one_key_refused("\0", 1);
    test_one_key_refused("ab\0", 3);

    /* the edges that are fine */
    key.data = big;
    key.len = MMC_KEY_MAX;
    memset(&msg, 0, sizeof(msg));
    msg.keys.count = 1;
    msg.keys.keys = &key;
    body = test_encode_copy(TEST_KEY_LIST, &msg, &blen);
    assert_int_equal(mmc_key_list_decode(body, blen, &out), MF_OK);
    assert_int_equal(out.keys[0].len, MMC_KEY_MAX);
    mmc_key_list_free(&out);
    free(body);

    assert_true(mmc_key_valid("a", 1));
    assert_true(mmc_key_valid(big, MMC_KEY_MAX));
    assert_true(mmc_key_valid("\xff\x01", 2));
    assert_false(mmc_key_valid("", 0));
    assert_false(mmc_key_valid(NULL, 0));
    assert_false(mmc_key_valid(NULL, 3));
    assert_false(mmc_key_valid(big, MMC_KEY_MAX + 1));
    assert_false(mmc_key_valid("a\0b", 3));
}

static void test_bad_strings(void **state)
{
    mf_wbuf_t w;
    char name[MMC_PROTO_HOST_MAX + 2];

    (void)state;
    memset(name, 'n', sizeof(name));

    /* hello name: one byte too long, then an embedded NUL */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MMC_PROTO_VERSION);
    mf_wbuf_put_bytes(&w, name, MMC_PROTO_NAME_MAX + 1);
    test_refused(TEST_HELLO_REQ, w.data, w.len);
    mf_wbuf_free(&w);
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MMC_PROTO_VERSION);
    mf_wbuf_put_bytes(&w, "ab\0c", 4);
    test_refused(TEST_HELLO_REQ, w.data, w.len);
    mf_wbuf_free(&w);

    /* register host id: one byte too long, then an embedded NUL */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_bytes(&w, name, MMC_PROTO_HOST_MAX + 1);
    mf_wbuf_put_u32(&w, 0);
    test_refused(TEST_REGISTER, w.data, w.len);
    mf_wbuf_free(&w);
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_bytes(&w, "h\0", 2);
    mf_wbuf_put_u32(&w, 0);
    test_refused(TEST_REGISTER, w.data, w.len);
    mf_wbuf_free(&w);
}

/* Appends n minimal valid items of list type t. */
static void test_put_items(mf_wbuf_t *w, test_type_t t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        switch (t) {
        case TEST_PUT_ALLOC:
            mf_wbuf_put_bytes(w, "k", 1);
            mf_wbuf_put_u64(w, 1);
            break;
        case TEST_KEY_LIST:
            mf_wbuf_put_bytes(w, "k", 1);
            break;
        case TEST_COMMIT_LIST:
            mf_wbuf_put_u64(w, i);
            mf_wbuf_put_u32(w, 0);
            break;
        case TEST_ID_LIST:
            mf_wbuf_put_u64(w, i);
            break;
        case TEST_STATUS_LIST:
            mf_wbuf_put_u32(w, 0);
            break;
        case TEST_OBJ_LIST:
            mf_wbuf_put_u32(w, 0);
            mf_wbuf_put_u64(w, i);
            mf_wbuf_put_u64(w, 1);
            mf_wbuf_put_u8(w, 0);
            break;
        default:
            fail();
        }
    }
}

/* A put request header without items: no preference, count follows. */
static void test_put_head(mf_wbuf_t *w)
{
    mf_wbuf_put_u32(w, 0);
    mf_wbuf_put_u32(w, 1);
    mf_wbuf_put_u8(w, MMC_MEDIA_DRAM);
    mf_wbuf_put_u32(w, 0);
}

static const test_type_t test_list_types[] = {
    TEST_PUT_ALLOC, TEST_KEY_LIST,    TEST_COMMIT_LIST,
    TEST_ID_LIST,   TEST_STATUS_LIST, TEST_OBJ_LIST,
};

static void test_count_limits(void **state)
{
    mf_wbuf_t w;
    test_msg_t out;

    (void)state;
    /* a batch of MMC_BATCH_MAX + 1 complete items */
    for (size_t k = 0; k < sizeof(test_list_types) / sizeof(*test_list_types);
         k++) {
        test_type_t t = test_list_types[k];

        for (uint32_t n = MMC_BATCH_MAX; n <= MMC_BATCH_MAX + 1; n++) {
            mf_wbuf_init(&w);
            if (t == TEST_PUT_ALLOC) {
                test_put_head(&w);
            }
            mf_wbuf_put_u32(&w, n);
            test_put_items(&w, t, n);
            assert_int_equal(mf_wbuf_status(&w), MF_OK);
            if (n == MMC_BATCH_MAX) {
                assert_int_equal(test_decode(t, w.data, w.len, &out), MF_OK);
                test_msg_free(t, &out);
            } else {
                test_refused(t, w.data, w.len);
            }
            mf_wbuf_free(&w);
        }
    }

    /* nine preferred ranks */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_u32(&w, 1);
    mf_wbuf_put_u8(&w, MMC_MEDIA_DRAM);
    mf_wbuf_put_u32(&w, MMC_MAX_REPLICAS + 1);
    for (uint32_t i = 0; i < MMC_MAX_REPLICAS + 1; i++) {
        mf_wbuf_put_u32(&w, i);
    }
    mf_wbuf_put_u32(&w, 1);
    test_put_items(&w, TEST_PUT_ALLOC, 1);
    test_refused(TEST_PUT_ALLOC, w.data, w.len);
    mf_wbuf_free(&w);

    /* nine replicas of one object */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 1);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_u64(&w, 1);
    mf_wbuf_put_u64(&w, 1);
    mf_wbuf_put_u8(&w, MMC_MAX_REPLICAS + 1);
    for (uint32_t i = 0; i < MMC_MAX_REPLICAS + 1; i++) {
        mf_wbuf_put_u32(&w, i);
        mf_wbuf_put_u32(&w, 0);
        mf_wbuf_put_u8(&w, 0);
        mf_wbuf_put_u64(&w, 0);
    }
    test_refused(TEST_OBJ_LIST, w.data, w.len);
    mf_wbuf_free(&w);

    /* three segments */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_str(&w, "host");
    mf_wbuf_put_u32(&w, MMC_PROTO_MAX_SEGS + 1);
    for (uint32_t i = 0; i < MMC_PROTO_MAX_SEGS + 1; i++) {
        mf_wbuf_put_u8(&w, 0);
        mf_wbuf_put_u64(&w, 0);
        mf_wbuf_put_u64(&w, 1);
    }
    test_refused(TEST_REGISTER, w.data, w.len);
    mf_wbuf_free(&w);

    /* any replicas and media values decode: the meta service checks them */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 0xffffffffu);
    mf_wbuf_put_u32(&w, 0xffffffffu);
    mf_wbuf_put_u8(&w, 0xfe);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_u32(&w, 0);
    assert_int_equal(test_decode(TEST_PUT_ALLOC, w.data, w.len, &out), MF_OK);
    assert_int_equal(out.put.replicas, 0xffffffffu);
    assert_int_equal(out.put.media, 0xfe);
    assert_int_equal(out.put.count, 0);
    assert_null(out.put.items);
    test_msg_free(TEST_PUT_ALLOC, &out);
    mf_wbuf_free(&w);
}

/* The bytes of the fields version 2 added: the device window at the end
 * of HELLO's response, the media right after the replica count of
 * PUT_ALLOC. */
static void test_media_layout(void **state)
{
    static const uint8_t hello_tail[16] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
    };
    static const uint8_t put[] = {
        0x00, 0x00, 0x00, 0x00, /* flags */
        0x02, 0x00, 0x00, 0x00, /* replicas */
        0x01,                   /* media: HBM */
        0x01, 0x00, 0x00, 0x00, /* npref */
        0x05, 0x00, 0x00, 0x00, /* pref[0] */
        0x00, 0x00, 0x00, 0x00, /* count */
    };
    test_msg_t m, out;
    mf_wbuf_t w;

    (void)state;
    assert_true(MMC_PROTO_VERSION >= 2);
    memset(&m, 0, sizeof(m));
    m.hello_resp.device_base = 0x0102030405060708ull;
    m.hello_resp.max_hbm_segment_size = 0x1112131415161718ull;
    mf_wbuf_init(&w);
    mmc_hello_resp_encode(&w, &m.hello_resp);
    assert_int_equal(w.len, 68);
    assert_memory_equal(w.data + w.len - 16, hello_tail, 16);
    mf_wbuf_free(&w);

    memset(&m, 0, sizeof(m));
    m.put.replicas = 2;
    m.put.media = MMC_MEDIA_HBM;
    m.put.npref = 1;
    m.put.pref[0] = 5;
    mf_wbuf_init(&w);
    mmc_put_alloc_req_encode(&w, &m.put);
    assert_int_equal(w.len, sizeof(put));
    assert_memory_equal(w.data, put, sizeof(put));
    assert_int_equal(test_decode(TEST_PUT_ALLOC, w.data, w.len, &out), MF_OK);
    assert_int_equal(out.put.media, MMC_MEDIA_HBM);
    test_msg_free(TEST_PUT_ALLOC, &out);
    mf_wbuf_free(&w);
}

/* A count the rest of the body cannot hold is refused before anything is
 * allocated: a 12-byte frame must not cost megabytes. */
static void test_huge_count_short_body(void **state)
{
    static const uint32_t counts[] = {2, 100, MMC_BATCH_MAX, 0x7fffffffu,
                                      0xffffffffu};
    mf_wbuf_t w;

    (void)state;
    test_alloc_install();
    for (size_t k = 0; k < sizeof(test_list_types) / sizeof(*test_list_types);
         k++) {
        test_type_t t = test_list_types[k];

        for (size_t c = 0; c < sizeof(counts) / sizeof(*counts); c++) {
            mf_wbuf_init(&w);
            if (t == TEST_PUT_ALLOC) {
                test_put_head(&w);
            }
            mf_wbuf_put_u32(&w, counts[c]);
            test_put_items(&w, t, 1); /* one item only */
            assert_int_equal(mf_wbuf_status(&w), MF_OK);
            test_alloc_max = 0;
            test_alloc_calls = 0;
            test_alloc_armed = true;
            test_refused(t, w.data, w.len);
            test_alloc_armed = false;
            /* nothing the decoder allocated at all */
            assert_int_equal(test_alloc_calls, 0);
            assert_true(test_alloc_max < 1024);
            mf_wbuf_free(&w);
        }
    }
#if defined(TEST_ALLOC_UNTRACKED)
    print_message("allocations not tracked on this platform\n");
#else
    /* the tracking works: a real decode of a full batch allocates */
    {
        test_msg_t in, out;
        uint8_t *body;
        size_t len;

        test_sample(TEST_ID_LIST, 3, &in);
        body = test_encode_copy(TEST_ID_LIST, &in, &len);
        test_alloc_max = 0;
        test_alloc_armed = true;
        assert_int_equal(test_decode(TEST_ID_LIST, body, len, &out), MF_OK);
        test_alloc_armed = false;
        assert_true(test_alloc_max >= (size_t)MMC_BATCH_MAX * 8);
        test_msg_free(TEST_ID_LIST, &out);
        test_msg_free(TEST_ID_LIST, &in);
        free(body);
    }
#endif
}

/* Random bodies, often with small numbers so that lengths fit: decoders
 * may refuse them, never misbehave; what they accept re-encodes to the
 * same bytes. */
static void test_random_bodies(void **state)
{
    uint32_t seed = 4242;
    uint8_t body[96];

    (void)state;
    for (unsigned iter = 0; iter < 20000; iter++) {
        size_t len = iter % sizeof(body);

        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            body[i] = (uint8_t)((seed >> 16) % ((iter & 1) ? 256 : 4));
        }
        for (int t = 0; t < TEST_TYPES; t++) {
            test_msg_t out;
            uint8_t *again;
            size_t alen;

            if (test_decode((test_type_t)t, body, len, &out) != MF_OK) {
                test_assert_zero((test_type_t)t, &out);
                continue;
            }
            again = test_encode_copy((test_type_t)t, &out, &alen);
            assert_int_equal(alen, len);
            if (len > 0) {
                assert_memory_equal(again, body, len);
            }
            free(again);
            test_msg_free((test_type_t)t, &out);
        }
    }
}

static void test_free_zeroed(void **state)
{
    test_msg_t m;

    (void)state;
    for (int t = 0; t < TEST_TYPES; t++) {
        memset(&m, 0, sizeof(m));
        test_msg_free((test_type_t)t, &m);
        test_msg_free((test_type_t)t, &m);
        test_assert_zero((test_type_t)t, &m);
    }
}

/* Records: a batch number of 0, an unknown op, a DEL in a RESTORE and a
 * count over MMC_REC_MAX are refused; the wire size helper is exact. */
static void test_record_limits(void **state)
{
    mmc_rec_entry_t add = {.op = MMC_REC_ADD,
                           .media = MMC_MEDIA_HBM,
                           .offset = 4096,
                           .want = 2,
                           .size = 10,
                           .version = 7,
                           .key = test_key(3)};
    mmc_rec_entry_t del = {.op = MMC_REC_DEL, .offset = 8192};
    mmc_record_t out;
    mf_wbuf_t w;

    (void)state;
    mf_wbuf_init(&w);
    mmc_rec_entry_encode(&w, &add);
    assert_int_equal(w.len, mmc_rec_entry_wire_size(&add));
    mf_wbuf_free(&w);
    mf_wbuf_init(&w);
    mmc_rec_entry_encode(&w, &del);
    assert_int_equal(w.len, mmc_rec_entry_wire_size(&del));
    mf_wbuf_free(&w);

    mf_wbuf_init(&w); /* seq 0 */
    mf_wbuf_put_u64(&w, 0);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_u32(&w, 1);
    mmc_rec_entry_encode(&w, &del);
    test_refused(TEST_RECORD, w.data, w.len);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w); /* a DEL in a RESTORE */
    mf_wbuf_put_u32(&w, MMC_RESTORE_LAST);
    mf_wbuf_put_u32(&w, 2);
    mmc_rec_entry_encode(&w, &add);
    mmc_rec_entry_encode(&w, &del);
    test_refused(TEST_RESTORE, w.data, w.len);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w); /* an unknown op */
    mf_wbuf_put_u64(&w, 1);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_u32(&w, 1);
    mf_wbuf_put_u8(&w, 3);
    mf_wbuf_put_u8(&w, 0);
    mf_wbuf_put_u64(&w, 0);
    test_refused(TEST_RECORD, w.data, w.len);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w); /* MMC_REC_MAX + 1 whole entries */
    mf_wbuf_put_u64(&w, 1);
    mf_wbuf_put_u32(&w, 0);
    mf_wbuf_put_u32(&w, MMC_REC_MAX + 1);
    for (uint32_t i = 0; i <= MMC_REC_MAX; i++) {
        mmc_rec_entry_encode(&w, &del);
    }
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    test_refused(TEST_RECORD, w.data, w.len);
    /* and MMC_REC_MAX are taken */
    w.data[12] = (uint8_t)(MMC_REC_MAX & 0xff);
    w.data[13] = (uint8_t)((MMC_REC_MAX >> 8) & 0xff);
    w.data[14] = (uint8_t)((MMC_REC_MAX >> 16) & 0xff);
    assert_int_equal(
        mmc_record_decode(w.data, w.len - mmc_rec_entry_wire_size(&del), &out),
        MF_OK);
    assert_int_equal(out.count, MMC_REC_MAX);
    mmc_record_free(&out);
    mf_wbuf_free(&w);
}

static void test_op_names(void **state)
{
    static const char *const names[] = {
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
        [MMC_OP_LEASE] = "LEASE",
        [MMC_OP_REMOVE_ALL] = "REMOVE_ALL",
        [MMC_OP_MOVE_DONE] = "MOVE_DONE",
        [MMC_OP_MOVE] = "MOVE",
    };

    (void)state;
    for (uint16_t op = MMC_OP_HELLO; op < MMC_OP_MAX; op++) {
        assert_string_equal(mmc_op_name(op), names[op]);
    }
    assert_string_equal(mmc_op_name(0), "?");
    assert_string_equal(mmc_op_name(MMC_OP_MAX), "?");
    assert_string_equal(mmc_op_name(UINT16_MAX), "?");
}

static void test_status_names(void **state)
{
    static const struct {
        mmc_status_t status;
        const char *name;
    } known[] = {
        {MMC_ERR_NOT_FOUND, "MMC_ERR_NOT_FOUND"},
        {MMC_ERR_EXISTS, "MMC_ERR_EXISTS"},
        {MMC_ERR_NO_SPACE, "MMC_ERR_NO_SPACE"},
        {MMC_ERR_SIZE_MISMATCH, "MMC_ERR_SIZE_MISMATCH"},
        {MMC_ERR_BUSY, "MMC_ERR_BUSY"},
        {MMC_ERR_ABORTED, "MMC_ERR_ABORTED"},
        {MMC_ERR_LEASE_EXPIRED, "MMC_ERR_LEASE_EXPIRED"},
        {MMC_ERR_PARTIAL, "MMC_ERR_PARTIAL"},
        {MMC_ERR_NO_REPLICA, "MMC_ERR_NO_REPLICA"},
        {MMC_ERR_CORRUPT, "MMC_ERR_CORRUPT"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++) {
        const char *str = mmc_status_str(known[i].status);

        assert_string_equal(mmc_status_name(known[i].status), known[i].name);
        assert_non_null(str);
        assert_true(strlen(str) > 0);
        assert_string_not_equal(str, "unknown MemCache status");
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(str, mmc_status_str(known[j].status));
        }
    }
    /* MemFabric codes are named by MemFabric */
    assert_string_equal(mmc_status_name(MMC_OK), mf_status_name(MF_OK));
    assert_string_equal(mmc_status_name(MF_ERR_PROTO),
                        mf_status_name(MF_ERR_PROTO));
    assert_string_equal(mmc_status_str(MF_ERR_PROTO),
                        mf_status_str(MF_ERR_PROTO));
    /* an unused code of the MemCache range, and one outside every range */
    assert_string_equal(mmc_status_name(-250), "MMC_ERR_UNKNOWN");
    assert_string_equal(mmc_status_str(-250), "unknown MemCache status");
    assert_string_equal(mmc_status_name(MMC_ERR_LAST), "MMC_ERR_UNKNOWN");
    assert_non_null(mmc_status_name(-1000));
    assert_non_null(mmc_status_str(-1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_obj_list_into),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_count_limits),
        cmocka_unit_test(test_media_layout),
        cmocka_unit_test(test_huge_count_short_body),
        cmocka_unit_test(test_random_bodies),
        cmocka_unit_test(test_free_zeroed),
        cmocka_unit_test(test_record_limits),
        cmocka_unit_test(test_op_names),
        cmocka_unit_test(test_status_names),
    };

    return tk_group_run(tests, NULL, NULL);
}
