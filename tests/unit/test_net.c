/*
 * Unit tests of the net layer: the body writer and reader with every bound,
 * the frame header, and a real server on 127.0.0.1 (free port) with real
 * clients: round trips, concurrent and out-of-order calls, deferred
 * replies, timeouts, misbehaving peers, server stop and restart,
 * notifies, connection limits and connect errors.
 *
 * Every test counts error messages through the log sink and checks the
 * number of open file descriptors, so an unexpected error log or a leaked
 * socket fails it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"
#include "tk_proc.h"
#include "tk_sock.h"
#include "tw_frame.h"

#include "net/net.h"
#include "util/log.h"
#include "util/misc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TEST_CALL_TIMEOUT_MS 10000
#define TEST_WAIT_MS         10000

/* ---- log capture and fd accounting ---- */

static tk_log_t test_log;

static int test_fds_at_start;

static int test_setup(void **state)
{
    (void)state;
    tk_log_reset(&test_log);
    test_fds_at_start = tk_fd_count();
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    assert_int_equal(tk_fd_count(), test_fds_at_start);
    return 0;
}

/* Polls *counter until it reaches value (or TEST_WAIT_MS passes). */
static bool test_wait_for(atomic_int *counter, int value)
{
    uint64_t deadline = mf_time_ms() + TEST_WAIT_MS;

    while (atomic_load(counter) < value) {
        if (mf_time_ms() > deadline) {
            return false;
        }
        tk_sleep_ms(5);
    }
    return true;
}

/* ---- body writer and reader ---- */

static void test_wbuf_rbuf_roundtrip(void **state)
{
    mf_wbuf_t w;
    mf_rbuf_t r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    const void *data;
    size_t len;
    char str[16];

    (void)state;
    mf_wbuf_init(&w);
    mf_wbuf_put_u8(&w, 0xab);
    mf_wbuf_put_u16(&w, 0x1234);
    mf_wbuf_put_u32(&w, 0xdeadbeef);
    mf_wbuf_put_u64(&w, 0x0102030405060708ull);
    mf_wbuf_put_i64(&w, -5);
    mf_wbuf_put_raw(&w, "raw", 3);
    mf_wbuf_put_bytes(&w, "\0bin\0", 5);
    mf_wbuf_put_bytes(&w, NULL, 0);
    mf_wbuf_put_str(&w, "hello");
    mf_wbuf_put_str(&w, "");
    for (int i = 0; i < 1000; i++) { /* grows the buffer several times */
        mf_wbuf_put_u32(&w, (uint32_t)i);
    }
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    /* Little-endian on the wire, whatever the host. */
    assert_int_equal(w.data[1], 0x34);
    assert_int_equal(w.data[2], 0x12);
    assert_int_equal(w.data[3], 0xef);

    mf_rbuf_init(&r, w.data, w.len);
    assert_true(mf_rbuf_get_u8(&r, &u8));
    assert_int_equal(u8, 0xab);
    assert_true(mf_rbuf_get_u16(&r, &u16));
    assert_int_equal(u16, 0x1234);
    assert_true(mf_rbuf_get_u32(&r, &u32));
    assert_int_equal(u32, 0xdeadbeef);
    assert_true(mf_rbuf_get_u64(&r, &u64));
    assert_true(u64 == 0x0102030405060708ull);
    assert_true(mf_rbuf_get_i64(&r, &i64));
    assert_true(i64 == -5);
    assert_true(mf_rbuf_get_raw(&r, &data, 3));
    assert_memory_equal(data, "raw", 3);
    assert_true(mf_rbuf_get_bytes(&r, &data, &len, 5));
    assert_int_equal(len, 5);
    assert_memory_equal(data, "\0bin\0", 5);
    assert_true(mf_rbuf_get_bytes(&r, &data, &len, 0));
    assert_int_equal(len, 0);
    assert_true(mf_rbuf_get_str(&r, str, sizeof(str)));
    assert_string_equal(str, "hello");
    assert_true(mf_rbuf_get_str(&r, str, sizeof(str)));
    assert_string_equal(str, "");
    assert_int_equal(mf_rbuf_status(&r, true), MF_ERR_PROTO); /* 1000 left */
    for (int i = 0; i < 1000; i++) {
        assert_true(mf_rbuf_get_u32(&r, &u32));
        assert_int_equal(u32, i);
    }
    assert_int_equal(mf_rbuf_status(&r, true), MF_OK);
    assert_int_equal(mf_rbuf_status(&r, false), MF_OK);
    mf_wbuf_free(&w);
    assert_null(w.data);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_rbuf_bounds(void **state)
{
    const uint8_t three[3] = {1, 2, 3};
    /* length 100, then only 5 bytes */
    const uint8_t long_len[9] = {100, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'};
    const uint8_t str5[9] = {5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
    const uint8_t nul_str[9] = {5, 0, 0, 0, 'h', 'e', '\0', 'l', 'o'};
    const uint8_t big_len[4] = {0xff, 0xff, 0xff, 0xff};
    mf_rbuf_t r;
    uint8_t u8 = 7;
    uint16_t u16 = 7;
    uint32_t u32 = 7;
    uint64_t u64 = 7;
    int64_t i64 = 7;
    const void *data = three;
    size_t len = 7;
    char str[6] = "xxxxx";

    (void)state;
    /* Each getter fails on short data and zeroes its output. */
    mf_rbuf_init(&r, three, 3);
    assert_false(mf_rbuf_get_u32(&r, &u32));
    assert_int_equal(u32, 0);
    assert_int_equal(mf_rbuf_status(&r, false), MF_ERR_PROTO);
    /* Once failed, every read fails, even one that would fit. */
    assert_false(mf_rbuf_get_u8(&r, &u8));
    assert_int_equal(u8, 0);

    mf_rbuf_init(&r, three, 1);
    assert_false(mf_rbuf_get_u16(&r, &u16));
    assert_int_equal(u16, 0);
    mf_rbuf_init(&r, three, 3);
    assert_false(mf_rbuf_get_u64(&r, &u64));
    assert_true(u64 == 0);
    mf_rbuf_init(&r, three, 3);
    assert_false(mf_rbuf_get_i64(&r, &i64));
    assert_true(i64 == 0);
    mf_rbuf_init(&r, three, 3);
    assert_false(mf_rbuf_get_raw(&r, &data, 4));
    assert_null(data);
    mf_rbuf_init(&r, NULL, 0);
    assert_false(mf_rbuf_get_u8(&r, &u8));
    mf_rbuf_init(&r, NULL, 0);
    assert_true(mf_rbuf_get_raw(&r, &data, 0));
    assert_int_equal(mf_rbuf_status(&r, true), MF_OK);

    /* get_bytes: the length runs past the data. */
    mf_rbuf_init(&r, long_len, sizeof(long_len));
    data = three;
    assert_false(mf_rbuf_get_bytes(&r, &data, &len, 1000));
    assert_null(data);
    assert_int_equal(len, 0);
    /* get_bytes: the length exceeds max_len although the data is there. */
    mf_rbuf_init(&r, str5, sizeof(str5));
    assert_false(mf_rbuf_get_bytes(&r, &data, &len, 4));
    assert_int_equal(mf_rbuf_status(&r, false), MF_ERR_PROTO);
    mf_rbuf_init(&r, str5, sizeof(str5));
    assert_true(mf_rbuf_get_bytes(&r, &data, &len, 5));
    /* A huge length never wraps a bound. */
    mf_rbuf_init(&r, big_len, sizeof(big_len));
    assert_false(mf_rbuf_get_bytes(&r, &data, &len, SIZE_MAX));
    /* A length prefix cut short. */
    mf_rbuf_init(&r, str5, 3);
    assert_false(mf_rbuf_get_bytes(&r, &data, &len, 100));

    /* get_str: fits exactly with its NUL. */
    mf_rbuf_init(&r, str5, sizeof(str5));
    assert_true(mf_rbuf_get_str(&r, str, sizeof(str)));
    assert_string_equal(str, "hello");
    /* One byte short of room for the NUL. */
    mf_rbuf_init(&r, str5, sizeof(str5));
    assert_false(mf_rbuf_get_str(&r, str, 5));
    assert_string_equal(str, "");
    /* Embedded NUL. */
    mf_rbuf_init(&r, nul_str, sizeof(nul_str));
    assert_false(mf_rbuf_get_str(&r, str, sizeof(str)));
    assert_string_equal(str, "");
    assert_int_equal(mf_rbuf_status(&r, false), MF_ERR_PROTO);
    /* No room at all. */
    mf_rbuf_init(&r, str5, sizeof(str5));
    assert_false(mf_rbuf_get_str(&r, str, 0));
    /* Short string data. */
    mf_rbuf_init(&r, str5, 6);
    assert_false(mf_rbuf_get_str(&r, str, sizeof(str)));

    /* Leftover bytes fail only when the end is required. */
    mf_rbuf_init(&r, three, 3);
    assert_true(mf_rbuf_get_u16(&r, &u16));
    assert_int_equal(u16, 0x0201);
    assert_int_equal(mf_rbuf_status(&r, false), MF_OK);
    assert_int_equal(mf_rbuf_status(&r, true), MF_ERR_PROTO);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_wbuf_too_large(void **state)
{
    mf_wbuf_t w;

    (void)state;
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, 1);
    /* A length that does not fit the u32 prefix fails the writer. */
    mf_wbuf_put_bytes(&w, "x", (size_t)UINT32_MAX + 1);
    assert_int_equal(mf_wbuf_status(&w), MF_ERR_NOMEM);
    mf_wbuf_put_u32(&w, 2); /* a no-op now */
    assert_int_equal(w.len, 4);
    mf_wbuf_free(&w);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 1);
}

/* ---- frame header ---- */

static void test_hdr_encode(mf_net_hdr_t *hdr, uint8_t raw[MF_NET_HDR_SIZE])
{
    mf_net_hdr_encode(hdr, raw);
}

static void test_hdr_roundtrip(void **state)
{
    mf_net_hdr_t in = {
        .magic = MF_NET_MAGIC,
        .version = MF_NET_VERSION,
        .kind = MF_NET_KIND_RESPONSE,
        .opcode = 0xbeef,
        .status = MF_ERR_CONN_RESET,
        .body_len = 1000,
        .req_id = 0x1122334455667788ull,
    };
    mf_net_hdr_t out;
    uint8_t raw[MF_NET_HDR_SIZE];

    (void)state;
    test_hdr_encode(&in, raw);
    assert_memory_equal(raw, "MFNT", 4);
    assert_int_equal(raw[4], MF_NET_VERSION);
    assert_int_equal(raw[5], MF_NET_KIND_RESPONSE);
    assert_int_equal(raw[6], 0xef);
    assert_int_equal(raw[16], 0x88);
    assert_int_equal(raw[23], 0x11);
    assert_int_equal(mf_net_hdr_decode(raw, 1000, &out), MF_OK);
    assert_int_equal(out.magic, in.magic);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.kind, in.kind);
    assert_int_equal(out.opcode, in.opcode);
    assert_int_equal(out.status, MF_ERR_CONN_RESET);
    assert_int_equal(out.body_len, 1000);
    assert_true(out.req_id == in.req_id);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_hdr_reject(void **state)
{
    mf_net_hdr_t good = {
        .magic = MF_NET_MAGIC,
        .version = MF_NET_VERSION,
        .kind = MF_NET_KIND_REQUEST,
        .opcode = 1,
        .body_len = 16,
        .req_id = 1,
    };
    mf_net_hdr_t hdr, out, untouched;
    uint8_t raw[MF_NET_HDR_SIZE];
    unsigned seed = 12345;
    int accepted = 0;

    (void)state;
    memset(&out, 0x5a, sizeof(out));
    untouched = out;

    hdr = good;
    hdr.magic = 0x12345678;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_ERR_PROTO);

    hdr = good;
    hdr.version = MF_NET_VERSION + 1;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_ERR_VERSION);
    hdr.version = 0;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_ERR_VERSION);

    hdr = good;
    hdr.kind = 0;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_ERR_PROTO);
    hdr.kind = MF_NET_KIND_NOTIFY + 1;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_ERR_PROTO);

    hdr = good;
    hdr.body_len = 1025;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_ERR_TOO_LARGE);
    hdr.body_len = UINT32_MAX;
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, MF_NET_DEFAULT_MAX_BODY, &out),
                     MF_ERR_TOO_LARGE);
    assert_memory_equal(&out, &untouched, sizeof(out));

    hdr.body_len = 1024; /* exactly the limit */
    test_hdr_encode(&hdr, raw);
    assert_int_equal(mf_net_hdr_decode(raw, 1024, &out), MF_OK);

    /* Garbage: whatever is accepted must be within every bound. */
    for (int i = 0; i < 100000; i++) {
        for (int j = 0; j < MF_NET_HDR_SIZE; j++) {
            raw[j] = (uint8_t)(rand_r(&seed) >> 7);
        }
        if ((i & 1) != 0) { /* half with a valid magic and version */
            memcpy(raw, "MFNT", 4);
            raw[4] = MF_NET_VERSION;
        }
        if (mf_net_hdr_decode(raw, 4096, &out) == MF_OK) {
            accepted++;
            assert_int_equal(out.magic, MF_NET_MAGIC);
            assert_int_equal(out.version, MF_NET_VERSION);
            assert_true(out.kind >= MF_NET_KIND_REQUEST &&
                        out.kind <= MF_NET_KIND_NOTIFY);
            assert_true(out.body_len <= 4096);
        }
    }
    (void)accepted;
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/* ---- a test service ---- */

enum {
    OP_ECHO = 1,       /* reply with the request body */
    OP_STATUS = 2,     /* reply MF_ERR_NOT_FOUND, empty body */
    OP_HOLD = 3,       /* no reply until OP_RELEASE */
    OP_DEFER = 4,      /* reply "deferred" from a timer */
    OP_NOTIFY = 5,     /* reply, then a notify */
    OP_GATHER = 6,     /* hold until TEST_GATHER arrived, reply in reverse */
    OP_RELEASE = 7,    /* reply to every held OP_HOLD, then to itself */
    OP_CLOSE = 8,      /* reply "bye" and close the connection */
    OP_FLOOD = 9,      /* notify 1 MiB frames until the server refuses */
    OP_TRUST = 10,     /* trust the connection (a handshake), reply */
    OP_SEQ = 11,       /* body n: notify 2n, reply, notify 2n + 1 */
    OP_SEQ_FLOOD = 12, /* body n: notify n .. n + 63 (64 KiB each), reply */
};

#define TEST_NOTIFY_OPCODE 77
#define TEST_SEQ_OPCODE    78
#define TEST_GATHER        16
#define TEST_MAX_HELD      64

typedef struct test_held {
    mf_net_conn_t *conn;
    uint64_t req_id;
    char body[32];
    size_t len;
} test_held_t;

typedef struct test_srv {
    mf_net_server_t *server;
    uint16_t port;
    atomic_int nrequests;
    atomic_int nopen;
    atomic_int nclose;
    atomic_int nheld_total;
    atomic_int flood_sent; /* frames OP_FLOOD queued before the refusal */
    atomic_int flood_refused;
    /* set before the start */
    bool untrusted;            /* connections wait for OP_TRUST */
    size_t untrusted_max_body; /* the server's parameters */
    uint32_t idle_ms;
    /* loop thread only */
    test_held_t held[TEST_MAX_HELD];
    int nheld;
    test_held_t gathered[TEST_GATHER];
    int ngathered;
    pthread_t loop_thread;
} test_srv_t;

typedef struct test_deferred {
    struct event *ev;
    mf_net_conn_t *conn;
    uint64_t req_id;
} test_deferred_t;

static void test_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    test_deferred_t *d = arg;

    mf_net_conn_reply(d->conn, d->req_id, OP_DEFER, MF_OK, "deferred", 8);
    event_free(d->ev);
    free(d);
}

static void test_srv_on_request(mf_net_conn_t *conn, uint16_t opcode,
                                uint64_t req_id, const uint8_t *body,
                                size_t len, void *arg)
{
    test_srv_t *srv = arg;
    struct timeval tv = {0, 50000};
    test_deferred_t *d;

    srv->loop_thread = pthread_self();
    atomic_fetch_add(&srv->nrequests, 1);
    switch (opcode) {
    case OP_ECHO:
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, body, len);
        break;
    case OP_STATUS:
        mf_net_conn_reply(conn, req_id, opcode, MF_ERR_NOT_FOUND, NULL, 0);
        break;
    case OP_HOLD:
        assert_true(srv->nheld < TEST_MAX_HELD);
        srv->held[srv->nheld].conn = conn;
        srv->held[srv->nheld].req_id = req_id;
        srv->nheld++;
        atomic_fetch_add(&srv->nheld_total, 1);
        break;
    case OP_DEFER:
        d = calloc(1, sizeof(*d));
        assert_non_null(d);
        d->conn = conn;
        d->req_id = req_id;
        d->ev =
            evtimer_new(mf_net_server_base(srv->server), test_deferred_cb, d);
        assert_non_null(d->ev);
        evtimer_add(d->ev, &tv);
        break;
    case OP_NOTIFY:
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, NULL, 0);
        mf_net_conn_notify(conn, TEST_NOTIFY_OPCODE, "hello", 5);
        break;
    case OP_GATHER:
        assert_true(len < sizeof(srv->gathered[0].body));
        srv->gathered[srv->ngathered].conn = conn;
        srv->gathered[srv->ngathered].req_id = req_id;
        memcpy(srv->gathered[srv->ngathered].body, body, len);
        srv->gathered[srv->ngathered].len = len;
        if (++srv->ngathered == TEST_GATHER) {
            for (int i = TEST_GATHER - 1; i >= 0; i--) {
                test_held_t *g = &srv->gathered[i];
                mf_net_conn_reply(g->conn, g->req_id, opcode, MF_OK, g->body,
                                  g->len);
            }
            srv->ngathered = 0;
        }
        break;
    case OP_FLOOD: {
        static uint8_t chunk[1u << 20];
        for (int i = 0; i < 256; i++) {
            if (mf_net_conn_notify(conn, TEST_NOTIFY_OPCODE, chunk,
                                   sizeof(chunk)) != MF_OK) {
                atomic_store(&srv->flood_refused, 1);
                break;
            }
            atomic_fetch_add(&srv->flood_sent, 1);
        }
        break;
    }
    case OP_RELEASE:
        for (int i = 0; i < srv->nheld; i++) {
            mf_net_conn_reply(srv->held[i].conn, srv->held[i].req_id, OP_HOLD,
                              MF_OK, "late", 4);
        }
        srv->nheld = 0;
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, NULL, 0);
        break;
    case OP_SEQ: {
        uint32_t n, seq;

        assert_int_equal(len, sizeof(n));
        memcpy(&n, body, sizeof(n));
        seq = 2 * n;
        mf_net_conn_notify(conn, TEST_SEQ_OPCODE, &seq, sizeof(seq));
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, NULL, 0);
        seq++;
        mf_net_conn_notify(conn, TEST_SEQ_OPCODE, &seq, sizeof(seq));
        break;
    }
    case OP_SEQ_FLOOD: {
        static uint8_t note[64 * 1024];
        uint32_t n;

        assert_int_equal(len, sizeof(n));
        memcpy(&n, body, sizeof(n));
        for (uint32_t i = 0; i < 64; i++) {
            uint32_t seq = n + i;

            memcpy(note, &seq, sizeof(seq));
            assert_int_equal(
                mf_net_conn_notify(conn, TEST_SEQ_OPCODE, note, sizeof(note)),
                MF_OK);
        }
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, NULL, 0);
        break;
    }
    case OP_TRUST:
        mf_net_conn_set_trusted(conn);
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, NULL, 0);
        break;
    case OP_CLOSE:
        mf_net_conn_reply(conn, req_id, opcode, MF_OK, "bye", 3);
        mf_net_conn_close(conn);
        /* A reply after close is dropped, not sent. */
        assert_int_not_equal(
            mf_net_conn_reply(conn, req_id, opcode, MF_OK, "no", 2), MF_OK);
        break;
    default:
        mf_net_conn_reply(conn, req_id, opcode, MF_ERR_UNSUPPORTED, NULL, 0);
        break;
    }
}

static void test_srv_on_open(mf_net_conn_t *conn, void *arg)
{
    test_srv_t *srv = arg;

    assert_non_null(mf_net_conn_peer(conn));
    assert_true(strncmp(mf_net_conn_peer(conn), "127.0.0.1:", 10) == 0);
    mf_net_conn_set_data(conn, srv);
    if (!srv->untrusted) {
        mf_net_conn_set_trusted(conn); /* no handshake in most tests */
    }
    atomic_fetch_add(&srv->nopen, 1);
}

static void test_srv_on_close(mf_net_conn_t *conn, void *arg)
{
    test_srv_t *srv = arg;

    assert_ptr_equal(mf_net_conn_get_data(conn), srv);
    /* Held requests of this conn die with it. */
    for (int i = 0; i < srv->nheld; i++) {
        if (srv->held[i].conn == conn) {
            srv->held[i--] = srv->held[--srv->nheld];
        }
    }
    atomic_fetch_add(&srv->nclose, 1);
}

static const mf_net_server_ops_t test_srv_ops = {
    .on_request = test_srv_on_request,
    .on_open = test_srv_on_open,
    .on_close = test_srv_on_close,
};

static void test_srv_start_ex(test_srv_t *srv, uint16_t port, size_t max_body,
                              uint32_t max_conns)
{
    mf_net_server_params_t params = {
        .host = "127.0.0.1",
        .port = port,
        .max_body = max_body,
        .untrusted_max_body = srv->untrusted_max_body,
        .idle_timeout_ms = srv->idle_ms,
        .max_conns = max_conns,
        .ops = &test_srv_ops,
        .arg = srv,
    };

    srv->server = NULL;
    assert_int_equal(mf_net_server_start(&params, &srv->server), MF_OK);
    assert_non_null(srv->server);
    srv->port = mf_net_server_port(srv->server);
    assert_int_not_equal(srv->port, 0);
    if (port != 0) {
        assert_int_equal(srv->port, port);
    }
}

static test_srv_t *test_srv_start(size_t max_body, uint32_t max_conns)
{
    test_srv_t *srv = calloc(1, sizeof(*srv));

    assert_non_null(srv);
    test_srv_start_ex(srv, 0, max_body, max_conns);
    return srv;
}

static void test_srv_stop(test_srv_t *srv)
{
    mf_net_server_stop(srv->server);
    srv->server = NULL;
    /* Every open connection was closed with on_close. */
    assert_int_equal(atomic_load(&srv->nopen), atomic_load(&srv->nclose));
}

/* ---- a test client ---- */

typedef struct test_cli {
    mf_net_client_t *client;
    atomic_int ndisconnect;
    atomic_int nreconnect;
    atomic_int reconnect_call_status; /* of the call made in on_reconnect */
    atomic_int nnotify;
    atomic_int notify_call_status; /* of a call made on the loop thread */
    char notify_body[16];
    uint16_t notify_opcode;
    /* OP_SEQ's notifications: the next one due (loop thread), those out
     * of order or delivered on the calling thread */
    uint32_t seq_next;
    atomic_int seq_bad;
    pthread_t caller;
    unsigned seq_delay_us;    /* on_notify takes this long with each */
    atomic_int seq_on_caller; /* delivered on the calling thread */
} test_cli_t;

/* Clients made from here on deliver notifications on callers too. */
static bool test_notify_on_caller;

static void test_cli_on_notify(uint16_t opcode, const uint8_t *body, size_t len,
                               void *arg)
{
    test_cli_t *cli = arg;
    mf_net_resp_t resp;
    uint32_t seq;

    if (opcode == TEST_SEQ_OPCODE) {
        assert_true(len >= sizeof(seq));
        memcpy(&seq, body, sizeof(seq));
        if (pthread_equal(pthread_self(), cli->caller)) {
            atomic_fetch_add(&cli->seq_on_caller, 1);
        }
        if (seq != cli->seq_next ||
            (!test_notify_on_caller &&
             pthread_equal(pthread_self(), cli->caller))) {
            atomic_fetch_add(&cli->seq_bad, 1);
        }
        if (cli->seq_delay_us > 0) {
            usleep(cli->seq_delay_us);
        }
        cli->seq_next = seq + 1;
        atomic_fetch_add(&cli->nnotify, 1);
        return;
    }
    cli->notify_opcode = opcode;
    assert_true(len < sizeof(cli->notify_body));
    memcpy(cli->notify_body, body, len);
    cli->notify_body[len] = '\0';
    /* Calls are refused on the loop thread. */
    atomic_store(
        &cli->notify_call_status,
        mf_net_client_call(cli->client, OP_ECHO, NULL, 0, 1000, &resp));
    atomic_fetch_add(&cli->nnotify, 1);
}

static void test_cli_on_disconnect(void *arg)
{
    test_cli_t *cli = arg;

    atomic_fetch_add(&cli->ndisconnect, 1);
}

static void test_cli_on_reconnect(void *arg)
{
    test_cli_t *cli = arg;
    mf_net_resp_t resp;
    mf_status_t status;

    /* Calls are allowed here. */
    status = mf_net_client_call(cli->client, OP_ECHO, "re", 2,
                                TEST_CALL_TIMEOUT_MS, &resp);
    if (status == MF_OK) {
        if ((resp.len != 2) || (memcmp(resp.body, "re", 2) != 0)) {
            status = MF_ERR_PROTO;
        }
        mf_net_resp_free(&resp);
    }
    atomic_store(&cli->reconnect_call_status, status);
    atomic_fetch_add(&cli->nreconnect, 1);
}

static mf_status_t test_cli_create_open(test_cli_t *cli, uint16_t port,
                                        uint32_t connect_timeout_ms,
                                        size_t max_body, uint16_t open_opcode)
{
    mf_net_client_params_t params = {
        .host = "127.0.0.1",
        .port = port,
        .connect_timeout_ms = connect_timeout_ms,
        .max_body = max_body,
        .on_notify = test_cli_on_notify,
        .on_reconnect = test_cli_on_reconnect,
        .on_disconnect = test_cli_on_disconnect,
        .open_opcode = open_opcode,
        .notify_on_caller = test_notify_on_caller,
        .arg = cli,
    };

    memset(cli, 0, sizeof(*cli));
    atomic_store(&cli->reconnect_call_status, 1);
    return mf_net_client_create(&params, &cli->client);
}

static mf_status_t test_cli_create_ex(test_cli_t *cli, uint16_t port,
                                      uint32_t connect_timeout_ms,
                                      size_t max_body)
{
    return test_cli_create_open(cli, port, connect_timeout_ms, max_body, 0);
}

static mf_status_t test_cli_create(test_cli_t *cli, uint16_t port,
                                   uint32_t connect_timeout_ms)
{
    return test_cli_create_ex(cli, port, connect_timeout_ms, 0);
}

/* Echo round trip; MF_OK only if the body came back intact. */
static mf_status_t test_echo(mf_net_client_t *client, const void *body,
                             size_t len)
{
    mf_net_resp_t resp;
    mf_status_t status;

    status = mf_net_client_call(client, OP_ECHO, body, len,
                                TEST_CALL_TIMEOUT_MS, &resp);
    if (status != MF_OK) {
        return status;
    }
    if ((resp.status != MF_OK) || (resp.len != len) ||
        ((len > 0) && (memcmp(resp.body, body, len) != 0))) {
        status = MF_ERR_PROTO;
    }
    mf_net_resp_free(&resp);
    return status;
}

/* ---- server and client ---- */

static void test_round_trip(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    mf_net_resp_t resp;
    size_t big_len = 1u << 20;
    uint8_t *big = malloc(big_len);

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, "hello", 5), MF_OK);
    assert_int_equal(test_echo(cli.client, NULL, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, big, big_len), MF_OK);

    /* The status of a response is the service's, the call itself is OK. */
    assert_int_equal(mf_net_client_call(cli.client, OP_STATUS, "x", 1,
                                        TEST_CALL_TIMEOUT_MS, &resp),
                     MF_OK);
    assert_int_equal(resp.status, MF_ERR_NOT_FOUND);
    assert_null(resp.body);
    assert_int_equal(resp.len, 0);
    mf_net_resp_free(&resp);

    assert_int_equal(atomic_load(&srv->nopen), 1);
    mf_net_client_destroy(cli.client);
    assert_true(test_wait_for(&srv->nclose, 1));
    assert_int_equal(atomic_load(&cli.ndisconnect), 0);
    test_srv_stop(srv);
    free(srv);
    free(big);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

typedef struct test_worker {
    mf_net_client_t *client;
    int id;
    int ncalls;
    int nok;
    uint16_t opcode;
} test_worker_t;

static void *test_worker_thread(void *arg)
{
    test_worker_t *w = arg;
    char body[32];
    mf_net_resp_t resp;
    int len;

    for (int i = 0; i < w->ncalls; i++) {
        len = snprintf(body, sizeof(body), "w%d-c%d", w->id, i);
        if (mf_net_client_call(w->client, w->opcode, body, (size_t)len,
                               TEST_CALL_TIMEOUT_MS, &resp) != MF_OK) {
            continue;
        }
        if ((resp.status == MF_OK) && (resp.len == (size_t)len) &&
            (memcmp(resp.body, body, (size_t)len) == 0)) {
            w->nok++;
        }
        mf_net_resp_free(&resp);
    }
    return NULL;
}

/* nthreads threads running fn (test_worker_thread: calls of opcode),
 * every one of whose ncalls calls must succeed. */
static void test_run_workers_fn(mf_net_client_t *client, uint16_t opcode,
                                int nthreads, int ncalls,
                                void *(*fn)(void *arg))
{
    pthread_t threads[TEST_GATHER];
    test_worker_t workers[TEST_GATHER];

    assert_true(nthreads <= TEST_GATHER);
    for (int i = 0; i < nthreads; i++) {
        workers[i] = (test_worker_t){client, i, ncalls, 0, opcode};
        assert_int_equal(pthread_create(&threads[i], NULL, fn, &workers[i]), 0);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].nok, ncalls);
    }
}

static void test_run_workers(mf_net_client_t *client, uint16_t opcode,
                             int nthreads, int ncalls)
{
    test_run_workers_fn(client, opcode, nthreads, ncalls, test_worker_thread);
}

static void test_concurrent_calls(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    /* 100 calls from 4 threads. */
    test_run_workers(cli.client, OP_ECHO, 4, 25);
    /* 16 calls outstanding at once, answered in reverse order. */
    test_run_workers(cli.client, OP_GATHER, TEST_GATHER, 3);
    assert_int_equal(atomic_load(&srv->nrequests), 100 + TEST_GATHER * 3);
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/* Echoes of mixed sizes, some larger than a socket's buffers, from
 * several threads at once: a frame a caller could send only in part is
 * finished by the loop before any other, and a reply too large for one
 * send is finished by the server's bufferevent. */
#define TEST_MIXED_THREADS 4
#define TEST_MIXED_CALLS   12

static void *test_mixed_thread(void *arg)
{
    test_worker_t *w = arg;
    static const size_t sizes[] = {7, 3u << 20, 300, 700u << 10, 1, 64u << 10};
    uint8_t *body = malloc(3u << 20);

    if (body == NULL) {
        return NULL;
    }
    for (int i = 0; i < w->ncalls; i++) {
        size_t len = sizes[(size_t)(i + w->id) % 6];

        for (size_t b = 0; b < len; b++) {
            body[b] = (uint8_t)(b * 31 + (size_t)i * 7 + (size_t)w->id);
        }
        if (test_echo(w->client, body, len) == MF_OK) {
            w->nok++;
        }
    }
    free(body);
    return NULL;
}

static void test_mixed_sizes(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    test_run_workers_fn(cli.client, OP_ECHO, TEST_MIXED_THREADS,
                        TEST_MIXED_CALLS, test_mixed_thread);
    assert_int_equal(atomic_load(&cli.ndisconnect), 0);
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_deferred_reply(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    mf_net_resp_t resp;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mf_net_client_call(cli.client, OP_DEFER, NULL, 0,
                                            TEST_CALL_TIMEOUT_MS, &resp),
                         MF_OK);
        assert_int_equal(resp.status, MF_OK);
        assert_int_equal(resp.len, 8);
        assert_memory_equal(resp.body, "deferred", 8);
        mf_net_resp_free(&resp);
    }
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_call_timeout(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    mf_net_resp_t resp = {.status = 99};

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(
        mf_net_client_call(cli.client, OP_HOLD, "h", 1, 200, &resp),
        MF_ERR_TIMEOUT);
    assert_int_equal(resp.status, 99); /* untouched on failure */
    /* The late response is dropped; the connection keeps working. */
    assert_int_equal(mf_net_client_call(cli.client, OP_RELEASE, NULL, 0,
                                        TEST_CALL_TIMEOUT_MS, &resp),
                     MF_OK);
    mf_net_resp_free(&resp);
    assert_int_equal(test_echo(cli.client, "after", 5), MF_OK);
    assert_int_equal(atomic_load(&cli.ndisconnect), 0);
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/* A raw TCP connection to the server. */
static int test_raw_connect(uint16_t port)
{
    int fd = tk_sock_connect("127.0.0.1", port);

    assert_true(fd >= 0);
    return fd;
}

/* True when the server closes the raw connection within TEST_WAIT_MS
 * without a byte of response (which would be a bug). */
static bool test_raw_closed(int fd)
{
    size_t dropped = 0;

    return tk_sock_wait_closed(fd, TEST_WAIT_MS, &dropped) && (dropped == 0);
}

/* An echo request's header with magic, version and kind as given. */
static void test_raw_send_hdr(int fd, uint32_t magic, uint8_t version,
                              uint8_t kind, uint32_t body_len)
{
    mf_net_hdr_t hdr = tw_req_hdr(OP_ECHO, 1, body_len);

    hdr.magic = magic;
    hdr.version = version;
    hdr.kind = kind;
    assert_true(tw_send_hdr(fd, &hdr));
}

/* A peer that stops reading is disconnected before the server's output
 * buffer grows without bound; other clients are not disturbed. */
static void test_slow_reader(void **state)
{
    test_srv_t *srv = calloc(1, sizeof(*srv));
    test_cli_t cli;
    int fd, rcvbuf = 4096;

    (void)state;
    /* the flood may take long under a sanitizer: the idle client must not
     * be dropped for silence meanwhile */
    assert_non_null(srv);
    srv->idle_ms = 600000;
    test_srv_start_ex(srv, 0, 4096, 0);
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    fd = test_raw_connect(srv->port);
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    assert_true(tw_send_req(fd, OP_FLOOD, 1, NULL, 0));
    /* the flood is 64 MiB and more: under a sanitizer on a loaded machine
     * it takes far longer than a request, so the bound is generous */
    for (int i = 0;
         i < 6 * TEST_WAIT_MS / 10 && !atomic_load(&srv->flood_refused); i++) {
        usleep(10000);
    }
    assert_true(atomic_load(&srv->flood_refused));
    /* The limit is 2 * max_body + 64 MiB of pending output. */
    assert_true(atomic_load(&srv->flood_sent) < 256);
    assert_true(atomic_load(&srv->flood_sent) >= 60);
    close(fd);
    assert_int_equal(test_echo(cli.client, "ok", 2), MF_OK);
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_bad_peers(void **state)
{
    test_srv_t *srv = test_srv_start(4096, 0);
    test_cli_t cli;
    char garbage[64];
    int fd, nreq;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, "ok", 2), MF_OK);
    nreq = atomic_load(&srv->nrequests);

    /* Garbage bytes. */
    memset(garbage, 'G', sizeof(garbage));
    fd = test_raw_connect(srv->port);
    assert_int_equal(send(fd, garbage, sizeof(garbage), MSG_NOSIGNAL),
                     sizeof(garbage));
    assert_true(test_raw_closed(fd));
    close(fd);
    assert_int_equal(test_echo(cli.client, "ok", 2), MF_OK);

    /* Another version. */
    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION + 1, MF_NET_KIND_REQUEST,
                      0);
    assert_true(test_raw_closed(fd));
    close(fd);

    /* A body over max_body: cut off before any body byte is awaited. */
    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION, MF_NET_KIND_REQUEST,
                      4097);
    assert_true(test_raw_closed(fd));
    close(fd);
    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION, MF_NET_KIND_REQUEST,
                      UINT32_MAX);
    assert_true(test_raw_closed(fd));
    close(fd);

    /* A response sent to the server. */
    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION, MF_NET_KIND_RESPONSE,
                      0);
    assert_true(test_raw_closed(fd));
    close(fd);

    /* A truncated frame, then the peer goes away: nothing is dispatched. */
    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION, MF_NET_KIND_REQUEST,
                      100);
    assert_int_equal(send(fd, garbage, 10, MSG_NOSIGNAL), 10);
    shutdown(fd, SHUT_WR);
    assert_true(test_raw_closed(fd));
    close(fd);
    fd = test_raw_connect(srv->port);
    assert_int_equal(send(fd, garbage, 10, MSG_NOSIGNAL), 10); /* half hdr */
    shutdown(fd, SHUT_WR);
    assert_true(test_raw_closed(fd));
    close(fd);

    /* The well-behaved client kept working; nothing bad was dispatched. */
    assert_int_equal(test_echo(cli.client, "still", 5), MF_OK);
    assert_int_equal(atomic_load(&srv->nrequests), nreq + 2);
    assert_int_equal(atomic_load(&cli.ndisconnect), 0);
    /* The raw connections were all closed on the server side. */
    assert_true(test_wait_for(&srv->nclose, 7));

    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/*
 * Until the service trusts a connection (its handshake), the server takes
 * frames of untrusted_max_body bytes at most: a header announcing more
 * disconnects the peer before any body byte is awaited.  A trusted
 * connection takes frames of up to max_body, and a client that opens its
 * connections with the handshake may start with a large call.
 */
static void test_untrusted_frames(void **state)
{
    test_srv_t *srv = calloc(1, sizeof(*srv));
    size_t big_len = 256u << 10;
    uint8_t *big = malloc(big_len);
    test_cli_t cli, opener;
    mf_net_resp_t resp;
    int fd;

    (void)state;
    assert_non_null(srv);
    assert_non_null(big);
    memset(big, 'u', big_len);
    srv->untrusted = true;
    srv->untrusted_max_body = 1024;
    test_srv_start_ex(srv, 0, 1u << 20, 0);

    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION, MF_NET_KIND_REQUEST,
                      1025);
    assert_true(test_raw_closed(fd));
    close(fd);

    /* Up to the limit is served before the handshake; more drops the
     * connection and fails the call as a peer error. */
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, big, 1024), MF_OK);
    assert_int_equal(test_echo(cli.client, big, big_len), MF_ERR_CONN_RESET);
    assert_true(test_wait_for(&cli.ndisconnect, 1));
    /* After the handshake (on the new connection) large frames pass. */
    assert_int_equal(mf_net_client_call(cli.client, OP_TRUST, NULL, 0,
                                        TEST_CALL_TIMEOUT_MS, &resp),
                     MF_OK);
    assert_int_equal(resp.status, MF_OK);
    mf_net_resp_free(&resp);
    assert_int_equal(test_echo(cli.client, big, big_len), MF_OK);
    mf_net_client_destroy(cli.client);

    /* The opening request goes ahead of the first call. */
    assert_int_equal(test_cli_create_open(&opener, srv->port, 0, 0, OP_TRUST),
                     MF_OK);
    assert_int_equal(test_echo(opener.client, big, big_len), MF_OK);
    assert_int_equal(atomic_load(&opener.ndisconnect), 0);
    mf_net_client_destroy(opener.client);

    test_srv_stop(srv);
    free(srv);
    free(big);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/*
 * A connection that sends nothing for idle_timeout_ms is closed, whether
 * it never sent a byte, stalled in the middle of a frame, or just went
 * quiet between calls (a client then reconnects on its next call).  The
 * waits are hang guards, far longer than the timeout.
 */
static void test_idle_timeout(void **state)
{
    test_srv_t *srv = calloc(1, sizeof(*srv));
    char partial[10];
    test_cli_t cli;
    int fd;

    (void)state;
    assert_non_null(srv);
    memset(partial, 'p', sizeof(partial));
    srv->idle_ms = 300;
    test_srv_start_ex(srv, 0, 4096, 0);
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, "ok", 2), MF_OK);

    /* silent from the start */
    fd = test_raw_connect(srv->port);
    assert_true(test_raw_closed(fd));
    close(fd);
    /* half a header */
    fd = test_raw_connect(srv->port);
    assert_int_equal(send(fd, partial, sizeof(partial), MSG_NOSIGNAL),
                     sizeof(partial));
    assert_true(test_raw_closed(fd));
    close(fd);
    /* a header and part of its body */
    fd = test_raw_connect(srv->port);
    test_raw_send_hdr(fd, MF_NET_MAGIC, MF_NET_VERSION, MF_NET_KIND_REQUEST,
                      100);
    assert_int_equal(send(fd, partial, sizeof(partial), MSG_NOSIGNAL),
                     sizeof(partial));
    assert_true(test_raw_closed(fd));
    close(fd);

    /* the client went quiet too; its next call reconnects */
    assert_true(test_wait_for(&cli.ndisconnect, 1));
    assert_int_equal(test_echo(cli.client, "again", 5), MF_OK);
    assert_true(test_wait_for(&cli.nreconnect, 1));
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_client_rejects_oversized(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    uint8_t body[2000];

    (void)state;
    memset(body, 'b', sizeof(body));
    assert_int_equal(test_cli_create_ex(&cli, srv->port, 0, 1024), MF_OK);
    assert_int_equal(test_echo(cli.client, body, 1024), MF_OK);
    /* The response exceeds the client's max_body: the client drops the
     * connection and the call fails as a peer error. */
    assert_int_equal(test_echo(cli.client, body, sizeof(body)),
                     MF_ERR_CONN_RESET);
    assert_true(test_wait_for(&cli.ndisconnect, 1));
    /* The next call reconnects. */
    assert_int_equal(test_echo(cli.client, body, 10), MF_OK);
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

typedef struct test_async_call {
    mf_net_client_t *client;
    uint16_t opcode;
    uint32_t timeout_ms;
    mf_status_t status;
} test_async_call_t;

static void *test_async_call_thread(void *arg)
{
    test_async_call_t *call = arg;
    mf_net_resp_t resp;

    call->status = mf_net_client_call(call->client, call->opcode, "p", 1,
                                      call->timeout_ms, &resp);
    if (call->status == MF_OK) {
        mf_net_resp_free(&resp);
    }
    return NULL;
}

static void test_stop_with_pending_call(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    test_async_call_t call;
    pthread_t thread;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    call = (test_async_call_t){cli.client, OP_HOLD, TEST_CALL_TIMEOUT_MS, 0};
    assert_int_equal(
        pthread_create(&thread, NULL, test_async_call_thread, &call), 0);
    assert_true(test_wait_for(&srv->nheld_total, 1));
    test_srv_stop(srv);
    pthread_join(thread, NULL);
    assert_int_equal(call.status, MF_ERR_CONN_RESET);
    assert_true(mf_status_is_peer_error(call.status));
    assert_true(test_wait_for(&cli.ndisconnect, 1));
    mf_net_client_destroy(cli.client);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_reconnect(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    uint16_t port = srv->port;
    test_cli_t cli;

    (void)state;
    assert_int_equal(test_cli_create(&cli, port, 1000), MF_OK);
    assert_int_equal(test_echo(cli.client, "one", 3), MF_OK);

    test_srv_stop(srv);
    assert_true(test_wait_for(&cli.ndisconnect, 1));
    /* Nobody listens: the call reconnects first and says why it failed. */
    assert_int_equal(test_echo(cli.client, "two", 3), MF_ERR_CONN_REFUSED);

    memset(srv, 0, sizeof(*srv));
    test_srv_start_ex(srv, port, 0, 0);
    assert_int_equal(test_echo(cli.client, "three", 5), MF_OK);
    assert_true(test_wait_for(&cli.nreconnect, 1));
    assert_int_equal(atomic_load(&cli.reconnect_call_status), MF_OK);
    assert_int_equal(atomic_load(&cli.ndisconnect), 1);

    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_notify(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    mf_net_resp_t resp;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(mf_net_client_call(cli.client, OP_NOTIFY, NULL, 0,
                                        TEST_CALL_TIMEOUT_MS, &resp),
                     MF_OK);
    mf_net_resp_free(&resp);
    assert_true(test_wait_for(&cli.nnotify, 1));
    assert_int_equal(cli.notify_opcode, TEST_NOTIFY_OPCODE);
    assert_string_equal(cli.notify_body, "hello");
    assert_int_equal(atomic_load(&cli.notify_call_status), MF_ERR_STATE);
    assert_int_equal(test_echo(cli.client, "ok", 2), MF_OK);
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    /* The refused call on the loop thread. */
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 1);
}

/* An OP_SEQ or OP_SEQ_FLOOD call of n, answered MF_OK. */
static void test_seq_call(test_cli_t *cli, uint16_t op, uint32_t n)
{
    mf_net_resp_t resp;

    assert_int_equal(mf_net_client_call(cli->client, op, &n, sizeof(n),
                                        TEST_CALL_TIMEOUT_MS, &resp),
                     MF_OK);
    assert_int_equal(resp.status, MF_OK);
    mf_net_resp_free(&resp);
}

/* A server and a client of OP_SEQ notifications (caller: this thread). */
static test_srv_t *test_seq_start(test_cli_t *cli, bool on_caller)
{
    test_srv_t *srv = test_srv_start(0, 0);

    test_notify_on_caller = on_caller;
    assert_int_equal(test_cli_create(cli, srv->port, 0), MF_OK);
    cli->caller = pthread_self();
    return srv;
}

/* Stops what test_seq_start started (the client destroyed first). */
static void test_seq_stop(test_srv_t *srv)
{
    test_notify_on_caller = false;
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/* Notifications around responses, whoever reads them (the caller
 * waiting for its response, or the loop), reach on_notify in the order
 * they were sent, on the loop thread (or, with notify_on_caller, on the
 * loop or the caller that read them). */
static void test_notify_order_run(bool on_caller)
{
    test_cli_t cli;
    test_srv_t *srv = test_seq_start(&cli, on_caller);
    uint32_t n;

    for (n = 0; n < 500; n++) {
        test_seq_call(&cli, OP_SEQ, n);
        if (n % 100 == 0) { /* a large answer between them */
            static uint8_t big[300 * 1024];

            memset(big, (int)n, sizeof(big));
            assert_int_equal(test_echo(cli.client, big, sizeof(big)), MF_OK);
        }
    }
    assert_true(test_wait_for(&cli.nnotify, 1000));
    /* 4 MiB of notifications ahead of an answer: the caller leaves them
     * to the loop past 256 KiB, and its answer still comes */
    test_seq_call(&cli, OP_SEQ_FLOOD, 1000);
    assert_true(test_wait_for(&cli.nnotify, 1064));
    assert_int_equal(atomic_load(&cli.seq_bad), 0);
    assert_int_equal(test_echo(cli.client, "ok", 2), MF_OK);
    mf_net_client_destroy(cli.client);
    assert_int_equal(cli.seq_next, 1064);
    if (!on_caller) {
        assert_int_equal(atomic_load(&cli.seq_on_caller), 0);
    }
    print_message("notifications delivered on the caller: %d of 1064\n",
                  atomic_load(&cli.seq_on_caller));
    test_seq_stop(srv);
}

static void test_notify_order(void **state)
{
    (void)state;
    test_notify_order_run(false);
}

static void test_notify_order_caller(void **state)
{
    (void)state;
    test_notify_order_run(true);
}

/* mf_net_client_notes_wait: once it returns, on_notify has returned for
 * every notification that came ahead of an answer, however slow it is. */
static void test_notes_wait_run(bool on_caller)
{
    test_cli_t cli;
    test_srv_t *srv = test_seq_start(&cli, on_caller);
    uint32_t n;

    cli.seq_delay_us = 2000;
    for (n = 0; n < 20; n++) {
        test_seq_call(&cli, OP_SEQ, n);
        mf_net_client_notes_wait(cli.client);
        /* 2n came ahead of the answer; 2n + 1 after it, maybe read too */
        assert_true(atomic_load(&cli.nnotify) >= (int)(2 * n + 1));
    }
    cli.seq_delay_us = 100;
    test_seq_call(&cli, OP_SEQ_FLOOD, 40);
    mf_net_client_notes_wait(cli.client);
    assert_int_equal(atomic_load(&cli.nnotify), 104);
    assert_int_equal(atomic_load(&cli.seq_bad), 0);
    mf_net_client_destroy(cli.client);
    test_seq_stop(srv);
}

static void test_notes_wait(void **state)
{
    (void)state;
    test_notes_wait_run(false);
    test_notes_wait_run(true);
}

static void test_server_closes(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    mf_net_resp_t resp;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    /* The reply queued before the close is flushed first. */
    assert_int_equal(mf_net_client_call(cli.client, OP_CLOSE, NULL, 0,
                                        TEST_CALL_TIMEOUT_MS, &resp),
                     MF_OK);
    assert_int_equal(resp.len, 3);
    assert_memory_equal(resp.body, "bye", 3);
    mf_net_resp_free(&resp);
    assert_true(test_wait_for(&cli.ndisconnect, 1));
    assert_true(test_wait_for(&srv->nclose, 1));
    /* The next call reconnects. */
    assert_int_equal(test_echo(cli.client, "again", 5), MF_OK);
    assert_true(test_wait_for(&cli.nreconnect, 1));
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

/* On the loop thread: the fence passes, then the held call is answered. */
typedef struct test_fence_late {
    test_srv_t *srv;
    atomic_uint_least64_t *until;
    mf_status_t status;
} test_fence_late_t;

static void test_fence_late_reply(void *arg)
{
    test_fence_late_t *late = arg;
    test_srv_t *srv = late->srv;

    atomic_store(late->until, 0);
    late->status = mf_net_conn_reply(srv->held[0].conn, srv->held[0].req_id,
                                     OP_HOLD, MF_OK, NULL, 0);
    srv->nheld = 0;
}

/*
 * A fenced server answers nothing once the fence time passed: the frame
 * that arrives closes its connection unhandled, a reply to a request read
 * before is dropped with its connection; moving the fence on (a renewed
 * lease) serves again.
 */
static void test_fence(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    atomic_uint_least64_t until = mf_time_ms() + 3600 * 1000;
    test_fence_late_t late = {srv, &until, MF_OK};
    test_async_call_t call;
    test_cli_t cli, cli2;
    pthread_t thread;
    int handled;

    (void)state;
    mf_net_server_fence(srv->server, &until);
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(test_cli_create(&cli2, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, "live", 4), MF_OK);

    /* the lease ran out: a request is not handled */
    atomic_store(&until, 0);
    handled = atomic_load(&srv->nrequests);
    assert_true(mf_status_is_peer_error(test_echo(cli.client, "late", 4)));
    assert_int_equal(atomic_load(&srv->nrequests), handled);

    /* renewed: served again; a call is held, then the fence passes before
     * its reply goes out */
    atomic_store(&until, mf_time_ms() + 3600 * 1000);
    assert_int_equal(test_echo(cli.client, "again", 5), MF_OK);
    call = (test_async_call_t){cli2.client, OP_HOLD, 0, 0};
    assert_int_equal(
        pthread_create(&thread, NULL, test_async_call_thread, &call), 0);
    assert_true(test_wait_for(&srv->nheld_total, 1));
    assert_int_equal(
        mf_net_server_run_sync(srv->server, test_fence_late_reply, &late),
        MF_OK);
    assert_int_equal(late.status, MF_ERR_CONN_RESET);
    pthread_join(thread, NULL);
    assert_true(mf_status_is_peer_error(call.status));

    atomic_store(&until, mf_time_ms() + 3600 * 1000);
    assert_int_equal(test_echo(cli.client, "renewed", 7), MF_OK);
    mf_net_server_fence(srv->server, NULL);
    assert_int_equal(test_echo(cli.client, "unfenced", 8), MF_OK);
    mf_net_client_destroy(cli.client);
    mf_net_client_destroy(cli2.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 1);
}

static void test_max_conns(void **state)
{
    test_srv_t *srv = test_srv_start(0, 1);
    test_cli_t cli1, cli2;
    mf_status_t status;
    uint64_t deadline;

    (void)state;
    assert_int_equal(test_cli_create(&cli1, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli1.client, "one", 3), MF_OK);
    /* TCP accepts the second connection; the server closes it at once. */
    assert_int_equal(test_cli_create(&cli2, srv->port, 0), MF_OK);
    status = test_echo(cli2.client, "two", 3);
    assert_true(mf_status_is_peer_error(status));
    assert_int_equal(atomic_load(&srv->nopen), 1);

    /* Once the first one leaves, the second gets in. */
    mf_net_client_destroy(cli1.client);
    assert_true(test_wait_for(&srv->nclose, 1));
    deadline = mf_time_ms() + TEST_WAIT_MS;
    do {
        status = test_echo(cli2.client, "two", 3);
    } while ((status != MF_OK) && (mf_time_ms() < deadline));
    assert_int_equal(status, MF_OK);

    mf_net_client_destroy(cli2.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_destroy_with_pending_call(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    test_async_call_t call;
    pthread_t thread;

    (void)state;
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    call = (test_async_call_t){cli.client, OP_HOLD, 0, 0}; /* no timeout */
    assert_int_equal(
        pthread_create(&thread, NULL, test_async_call_thread, &call), 0);
    assert_true(test_wait_for(&srv->nheld_total, 1));
    mf_net_client_destroy(cli.client);
    pthread_join(thread, NULL);
    assert_int_equal(call.status, MF_ERR_CANCELED);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

typedef struct test_sync_arg {
    pthread_t thread;
    int ran;
} test_sync_arg_t;

static void test_sync_fn(void *arg)
{
    test_sync_arg_t *sync = arg;

    sync->thread = pthread_self();
    sync->ran++;
}

static void test_run_sync(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    test_cli_t cli;
    test_sync_arg_t sync = {.ran = 0};

    (void)state;
    assert_int_equal(mf_net_server_run_sync(srv->server, test_sync_fn, &sync),
                     MF_OK);
    assert_int_equal(sync.ran, 1);
    assert_false(pthread_equal(sync.thread, pthread_self()));
    /* It ran on the thread that runs the handlers. */
    assert_int_equal(test_cli_create(&cli, srv->port, 0), MF_OK);
    assert_int_equal(test_echo(cli.client, "x", 1), MF_OK);
    assert_true(pthread_equal(sync.thread, srv->loop_thread));
    mf_net_client_destroy(cli.client);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_connect_errors(void **state)
{
    struct sockaddr_in addr = {0};
    socklen_t addr_len = sizeof(addr);
    test_cli_t cli;
    uint64_t start;
    mf_status_t status;
    int fd, fillers[8], nfillers = 0;

    (void)state;
    /* A bound port nobody listens on refuses. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &addr_len), 0);
    assert_int_equal(test_cli_create(&cli, ntohs(addr.sin_port), 1000),
                     MF_ERR_CONN_REFUSED);
    assert_null(cli.client);

    /* A listener whose backlog is full and never accepts lets the
     * handshake time out. */
    assert_int_equal(listen(fd, 0), 0);
    for (nfillers = 0; nfillers < 8; nfillers++) {
        struct pollfd pfd;
        fillers[nfillers] =
            socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fillers[nfillers] >= 0);
        if ((connect(fillers[nfillers], (struct sockaddr *)&addr,
                     sizeof(addr)) == 0)) {
            continue;
        }
        assert_int_equal(errno, EINPROGRESS);
        pfd = (struct pollfd){.fd = fillers[nfillers], .events = POLLOUT};
        if (poll(&pfd, 1, 200) == 0) {
            nfillers++; /* this one hangs: the backlog is full */
            break;
        }
    }
    start = mf_time_ms();
    status = test_cli_create(&cli, ntohs(addr.sin_port), 300);
    if (status == MF_OK) {
        /* Some kernels accept anyway; nothing to check then. */
        mf_net_client_destroy(cli.client);
    } else {
        assert_int_equal(status, MF_ERR_TIMEOUT);
        assert_true(mf_time_ms() - start >= 250);
        assert_null(cli.client);
    }
    for (int i = 0; i < nfillers; i++) {
        close(fillers[i]);
    }
    close(fd);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 0);
}

static void test_server_start_errors(void **state)
{
    test_srv_t *srv = test_srv_start(0, 0);
    mf_net_server_params_t params = {
        .host = "127.0.0.1",
        .port = srv->port,
        .ops = &test_srv_ops,
        .arg = srv,
    };
    mf_net_server_t *server = NULL;

    (void)state;
    assert_int_equal(mf_net_server_start(&params, &server), MF_ERR_ADDR_IN_USE);
    assert_null(server);
    params.ops = NULL;
    assert_int_equal(mf_net_server_start(&params, &server), MF_ERR_INVALID);
    assert_null(server);
    test_srv_stop(srv);
    free(srv);
    assert_int_equal(tk_log_count(&test_log, MF_LOG_ERROR), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wbuf_rbuf_roundtrip, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_rbuf_bounds, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_wbuf_too_large, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_hdr_roundtrip, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_hdr_reject, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_calls, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_mixed_sizes, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_reply, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_peers, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_frames, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_client_rejects_oversized,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_pending_call, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_notify, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_notify_order, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_notify_order_caller, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_notes_wait, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_server_closes, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_fence, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_pending_call,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_run_sync, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_connect_errors, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_server_start_errors, test_setup,
                                        test_teardown),
    };

    tk_log_start(&test_log, TK_LOG_ECHO);
    mf_log_set_level(MF_LOG_WARN);
    return tk_group_run(tests, NULL, NULL);
}
