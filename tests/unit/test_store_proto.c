/*
 * Unit tests of the config store's wire codec: every request and response
 * round-trips; every truncation, every extra byte and random bodies are
 * refused without reading out of bounds (run under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"

#include "util/codec.h"
#include "store/store_proto.h"

#include <memfabric/mf_store.h>

#include <stdlib.h>
#include <string.h>

static mf_store_req_t test_full_req(void)
{
    mf_store_req_t req;

    memset(&req, 0, sizeof(req));
    req.id = 0x1122334455667788ull;
    req.key = "some/key";
    req.key_len = 8;
    req.has_expected = true;
    req.expected = "old";
    req.expected_len = 3;
    req.value = "new value";
    req.value_len = 9;
    req.flags = MF_STORE_EPHEMERAL;
    req.timeout_ms = 1234;
    req.delta = -42;
    req.world_size = 16;
    req.rank = 7;
    return req;
}

static void test_req_check(uint32_t fields, const mf_store_req_t *in,
                           const mf_store_req_t *out)
{
    if (fields & MF_STORE_F_ID) {
        assert_int_equal(out->id, in->id);
    }
    if (fields & MF_STORE_F_KEY) {
        assert_int_equal(out->key_len, in->key_len);
        assert_memory_equal(out->key, in->key, in->key_len);
    }
    if (fields & MF_STORE_F_EXPECTED) {
        assert_int_equal(out->has_expected, in->has_expected);
        assert_int_equal(out->expected_len, in->expected_len);
        assert_memory_equal(out->expected, in->expected, in->expected_len);
    }
    if (fields & MF_STORE_F_VALUE) {
        assert_int_equal(out->value_len, in->value_len);
        assert_memory_equal(out->value, in->value, in->value_len);
    }
    if (fields & MF_STORE_F_FLAGS) {
        assert_int_equal(out->flags, in->flags);
    }
    if (fields & MF_STORE_F_TIMEOUT) {
        assert_int_equal(out->timeout_ms, in->timeout_ms);
    }
    if (fields & MF_STORE_F_DELTA) {
        assert_int_equal(out->delta, in->delta);
    }
    if (fields & MF_STORE_F_WORLD) {
        assert_int_equal(out->world_size, in->world_size);
    }
    if (fields & MF_STORE_F_RANK) {
        assert_int_equal(out->rank, in->rank);
    }
}

static void test_requests(void **state)
{
    mf_store_req_t in = test_full_req(), out;
    uint8_t *copy;
    uint32_t fields;
    uint16_t op;
    size_t cut;
    bool known;
    mf_wbuf_t w;

    (void)state;
    for (op = MF_STORE_OP_SET; op < MF_STORE_OP_LAST; op++) {
        fields = mf_store_req_fields(op, &known);
        assert_true(known);
        assert_string_not_equal(mf_store_op_name(op), "unknown");
        mf_wbuf_init(&w);
        assert_int_equal(mf_store_req_encode(op, &in, &w), MF_OK);
        memset(&out, 0, sizeof(out));
        assert_int_equal(mf_store_req_decode(op, w.data, w.len, &out), MF_OK);
        test_req_check(fields, &in, &out);

        /* Every truncation fails and leaves the output alone. */
        for (cut = 0; cut < w.len; cut++) {
            copy = malloc(cut + 1);
            assert_non_null(copy);
            memcpy(copy, w.data, cut);
            out.rank = 0xabcd;
            assert_int_equal(mf_store_req_decode(op, copy, cut, &out),
                             MF_ERR_PROTO);
            assert_int_equal(out.rank, 0xabcd);
            free(copy);
        }
        /* A byte too many fails. */
        mf_wbuf_put_u8(&w, 0);
        assert_int_equal(mf_store_req_decode(op, w.data, w.len, &out),
                         MF_ERR_PROTO);
        mf_wbuf_free(&w);
    }

    /* Absent expected value. */
    in.has_expected = false;
    mf_wbuf_init(&w);
    assert_int_equal(mf_store_req_encode(MF_STORE_OP_CAS, &in, &w), MF_OK);
    assert_int_equal(mf_store_req_decode(MF_STORE_OP_CAS, w.data, w.len, &out),
                     MF_OK);
    assert_false(out.has_expected);
    assert_int_equal(out.expected_len, 0);
    mf_wbuf_free(&w);

    /* Unknown opcodes. */
    assert_int_equal(mf_store_req_fields(0, &known), 0);
    assert_false(known);
    assert_int_equal(mf_store_req_fields(MF_STORE_OP_LAST, &known), 0);
    assert_false(known);
    assert_string_equal(mf_store_op_name(999), "unknown");
    assert_int_equal(mf_store_req_decode(999, NULL, 0, &out),
                     MF_ERR_UNSUPPORTED);
    mf_wbuf_init(&w);
    assert_int_equal(mf_store_req_encode(0, &in, &w), MF_ERR_INVALID);
    mf_wbuf_free(&w);
}

static void test_bad_lengths(void **state)
{
    mf_store_req_t out;
    mf_wbuf_t w;

    (void)state;
    /* A key length past the end of the body. */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 1000);
    mf_wbuf_put_raw(&w, "abc", 3);
    assert_int_equal(
        mf_store_req_decode(MF_STORE_OP_REMOVE, w.data, w.len, &out),
        MF_ERR_PROTO);
    mf_wbuf_free(&w);

    /* A huge length. */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, UINT32_MAX);
    assert_int_equal(
        mf_store_req_decode(MF_STORE_OP_REMOVE, w.data, w.len, &out),
        MF_ERR_PROTO);
    mf_wbuf_free(&w);

    /* CAS presence flag other than 0 or 1. */
    mf_wbuf_init(&w);
    mf_wbuf_put_bytes(&w, "k", 1);
    mf_wbuf_put_u8(&w, 2);
    mf_wbuf_put_bytes(&w, "", 0);
    mf_wbuf_put_bytes(&w, "v", 1);
    assert_int_equal(mf_store_req_decode(MF_STORE_OP_CAS, w.data, w.len, &out),
                     MF_ERR_PROTO);
    mf_wbuf_free(&w);
}

static void test_responses(void **state)
{
    uint32_t ranks_in[] = {0, 3, 9}, ranks_out[3], count, u32;
    const void *value;
    size_t len;
    int64_t i64;
    bool present;
    mf_wbuf_t w;

    (void)state;
    mf_wbuf_init(&w);
    mf_store_value_encode(&w, "xyz", 3);
    assert_int_equal(mf_store_value_decode(w.data, w.len, &value, &len), MF_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(value, "xyz", 3);
    assert_int_equal(mf_store_value_decode(w.data, w.len - 1, &value, &len),
                     MF_ERR_PROTO);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w);
    mf_store_i64_encode(&w, INT64_MIN);
    assert_int_equal(mf_store_i64_decode(w.data, w.len, &i64), MF_OK);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(mf_store_i64_decode(w.data, 7, &i64), MF_ERR_PROTO);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w);
    mf_store_u32_encode(&w, 77);
    assert_int_equal(mf_store_u32_decode(w.data, w.len, &u32), MF_OK);
    assert_int_equal(u32, 77);
    assert_int_equal(mf_store_u32_decode(NULL, 0, &u32), MF_ERR_PROTO);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w);
    mf_store_current_encode(&w, true, "cur", 3);
    assert_int_equal(
        mf_store_current_decode(w.data, w.len, &present, &value, &len), MF_OK);
    assert_true(present);
    assert_int_equal(len, 3);
    mf_wbuf_free(&w);
    mf_wbuf_init(&w);
    mf_store_current_encode(&w, false, "ignored", 7);
    assert_int_equal(
        mf_store_current_decode(w.data, w.len, &present, &value, &len), MF_OK);
    assert_false(present);
    assert_int_equal(len, 0);
    mf_wbuf_free(&w);
    /* Absent with bytes is malformed. */
    mf_wbuf_init(&w);
    mf_wbuf_put_u8(&w, 0);
    mf_wbuf_put_bytes(&w, "x", 1);
    assert_int_equal(
        mf_store_current_decode(w.data, w.len, &present, &value, &len),
        MF_ERR_PROTO);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w);
    mf_store_ranks_encode(&w, ranks_in, 3);
    assert_int_equal(mf_store_ranks_decode(w.data, w.len, ranks_out, 3, &count),
                     MF_OK);
    assert_int_equal(count, 3);
    assert_memory_equal(ranks_out, ranks_in, sizeof(ranks_in));
    memset(ranks_out, 0, sizeof(ranks_out));
    assert_int_equal(mf_store_ranks_decode(w.data, w.len, ranks_out, 1, &count),
                     MF_OK);
    assert_int_equal(count, 3);
    assert_int_equal(ranks_out[0], 0);
    assert_int_equal(ranks_out[1], 0);
    assert_int_equal(mf_store_ranks_decode(w.data, w.len, NULL, 0, &count),
                     MF_OK);
    count = 5;
    assert_int_equal(
        mf_store_ranks_decode(w.data, w.len - 1, ranks_out, 3, &count),
        MF_ERR_PROTO);
    assert_int_equal(count, 5);
    mf_wbuf_free(&w);
    /* A count that does not match the body. */
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 1000000);
    mf_wbuf_put_u32(&w, 1);
    assert_int_equal(mf_store_ranks_decode(w.data, w.len, ranks_out, 3, &count),
                     MF_ERR_PROTO);
    mf_wbuf_free(&w);
}

static void test_notifies(void **state)
{
    mf_store_watch_event_t wev = {MF_STORE_EVENT_SET, "k/1", 3, "val", 3};
    mf_store_rank_event_t rev = {"grp", 3, 5, MF_RANK_LOST};
    mf_store_watch_event_t wout;
    mf_store_rank_event_t rout;
    size_t cut;
    mf_wbuf_t w;

    (void)state;
    mf_wbuf_init(&w);
    mf_store_watch_event_encode(&w, &wev);
    assert_int_equal(mf_store_watch_event_decode(w.data, w.len, &wout), MF_OK);
    assert_int_equal(wout.event, MF_STORE_EVENT_SET);
    assert_int_equal(wout.key_len, 3);
    assert_memory_equal(wout.key, "k/1", 3);
    assert_int_equal(wout.value_len, 3);
    for (cut = 0; cut < w.len; cut++) {
        assert_int_equal(mf_store_watch_event_decode(w.data, cut, &wout),
                         MF_ERR_PROTO);
    }
    w.data[0] = 9; /* unknown event */
    assert_int_equal(mf_store_watch_event_decode(w.data, w.len, &wout),
                     MF_ERR_PROTO);
    mf_wbuf_free(&w);

    mf_wbuf_init(&w);
    mf_store_rank_event_encode(&w, &rev);
    assert_int_equal(mf_store_rank_event_decode(w.data, w.len, &rout), MF_OK);
    assert_int_equal(rout.group_len, 3);
    assert_memory_equal(rout.group, "grp", 3);
    assert_int_equal(rout.rank, 5);
    assert_int_equal(rout.event, MF_RANK_LOST);
    for (cut = 0; cut < w.len; cut++) {
        assert_int_equal(mf_store_rank_event_decode(w.data, cut, &rout),
                         MF_ERR_PROTO);
    }
    w.data[w.len - 1] = 0; /* no such event */
    assert_int_equal(mf_store_rank_event_decode(w.data, w.len, &rout),
                     MF_ERR_PROTO);
    mf_wbuf_free(&w);
}

/* Random bodies: decoders may refuse them, never misbehave. */
static void test_random_bodies(void **state)
{
    mf_store_watch_event_t wev;
    mf_store_rank_event_t rev;
    uint8_t *body;
    mf_store_req_t req;
    uint32_t seed = 12345, ranks[4], count;
    unsigned iter;
    size_t len, i;
    uint16_t op;

    (void)state;
    for (iter = 0; iter < 20000; iter++) {
        len = (size_t)(iter % 64);
        body = malloc(len + 1);
        assert_non_null(body);
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            /* Small numbers often, so that lengths sometimes fit. */
            body[i] = (uint8_t)((seed >> 16) % ((iter & 1) ? 256 : 8));
        }
        for (op = 0; op <= MF_STORE_OP_LAST; op++) {
            (void)mf_store_req_decode(op, body, len, &req);
        }
        (void)mf_store_watch_event_decode(body, len, &wev);
        (void)mf_store_rank_event_decode(body, len, &rev);
        (void)mf_store_ranks_decode(body, len, ranks, 4, &count);
        free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_notifies),
        cmocka_unit_test(test_random_bodies),
    };

    return tk_group_run(tests, NULL, NULL);
}
