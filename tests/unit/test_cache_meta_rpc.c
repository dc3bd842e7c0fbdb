/*
 * Unit tests of the MemCache meta service over its RPC port: the service
 * runs in this process (mmc_meta_start on 127.0.0.1, free ports, no HTTP)
 * and the tests talk to it with mf_net clients and the proto encoders:
 * HELLO, REGISTER checks, HBM segments at their slot of the device window
 * and puts placed by media, a put/commit/get/release/exist/query/remove
 * round, full batches, malformed bodies, unknown opcodes, requests before
 * HELLO, UNREGISTER, a client that disconnects in the middle of a put,
 * eviction of a full pool, and a silent client closed after
 * member_timeout_ms while one that sends PING stays.  The service's
 * state is inspected on its loop thread (mmc_meta_run_sync).  An error
 * log that a test did not expect fails it; waits for the service to
 * notice a closed connection are bounded only as hang guards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"
#include "tk_sock.h"
#include "tw_mmc.h"

#include "cache/meta/meta.h"
#include "net/net.h"
#include "util/log.h"
#include "util/misc.h"

#include <sys/socket.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CALL_MS 30000
/* a hang guard only: sanitizer builds on a loaded machine are many times
 * slower */
#define WAIT_MS   120000
#define MAX_SEG   (256ull << 20)
#define HOST_BASE 0x200000000000ull
#define NRANKS    8u
#define PG        4096ull

static tk_log_t test_rpc_log;

/* ---- fixture ---- */

typedef struct test_rpc {
    mmc_meta_t *meta;
    int fds;
} test_rpc_t;

static mmc_meta_t *test_rpc_start_ms(uint32_t max_batch, uint32_t lease_ms,
                                     uint32_t put_timeout_ms)
{
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;

    mmc_meta_config_init(&cfg);
    mf_strlcpy(cfg.addr, "127.0.0.1", sizeof(cfg.addr));
    cfg.port = 0;
    cfg.store_port = 0;
    cfg.http_port = 0;
    cfg.http_enable = false;
    cfg.max_ranks = NRANKS;
    cfg.max_segment_size = MAX_SEG;
    cfg.host_base = HOST_BASE;
    cfg.alloc_align = PG;
    cfg.lease_ms = lease_ms;
    cfg.put_timeout_ms = put_timeout_ms;
    cfg.max_batch = max_batch;
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_OK);
    assert_non_null(meta);
    assert_true(mmc_meta_port(meta) != 0);
    assert_true(mmc_meta_store_port(meta) != 0);
    assert_int_equal(mmc_meta_http_port(meta), 0);
    return meta;
}

/* A service with settings changed from the fixture's: NULL-terminated
 * key, value pairs. */
static mmc_meta_t *test_rpc_start_with(const char *key, ...)
{
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    va_list ap;

    mmc_meta_config_init(&cfg);
    mf_strlcpy(cfg.addr, "127.0.0.1", sizeof(cfg.addr));
    cfg.port = 0;
    cfg.store_port = 0;
    cfg.http_port = 0;
    cfg.http_enable = false;
    cfg.max_ranks = NRANKS;
    cfg.max_segment_size = MAX_SEG;
    cfg.host_base = HOST_BASE;
    cfg.alloc_align = PG;
    cfg.lease_ms = 600000;
    cfg.put_timeout_ms = 600000;
    va_start(ap, key);
    for (const char *k = key; k != NULL; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(mmc_meta_config_set(&cfg, k, v), MF_OK);
    }
    va_end(ap);
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_OK);
    return meta;
}

/* Nothing expires during a test. */
static mmc_meta_t *test_rpc_start(uint32_t max_batch)
{
    return test_rpc_start_ms(max_batch, 600000, 600000);
}

static int test_rpc_setup(void **state)
{
    test_rpc_t *t = calloc(1, sizeof(*t));

    tk_log_start(&test_rpc_log, 0);
    mf_log_set_level(MF_LOG_WARN);
    assert_non_null(t);
    t->fds = tk_fd_count();
    t->meta = test_rpc_start(MMC_BATCH_MAX);
    *state = t;
    return 0;
}

static int test_rpc_teardown(void **state)
{
    test_rpc_t *t = *state;
    int fds;

    mmc_meta_stop(t->meta);
    fds = tk_fd_count();
    if (fds != t->fds) {
        print_error("%d file descriptors before, %d after\n", t->fds, fds);
        return -1;
    }
    free(t);
    tk_log_stop(&test_rpc_log);
    return tk_log_check_clean(&test_rpc_log);
}

/* ---- client helpers ---- */

/* Every client may hold segments: each acknowledges its RECORDs through
 * a holder slot of its own, kept for the life of the program. */
static tw_mmc_holder_t test_rpc_holders[256];
static unsigned test_rpc_nholders;

static mf_net_client_t *test_rpc_connect(mmc_meta_t *meta)
{
    tw_mmc_holder_t *h = &test_rpc_holders[test_rpc_nholders++ %
                                           MF_ARRAY_SIZE(test_rpc_holders)];
    mf_net_client_params_t p;
    mf_net_client_t *c = NULL;

    memset(&p, 0, sizeof(p));
    p.host = "127.0.0.1";
    p.port = mmc_meta_port(meta);
    p.max_body = MMC_PROTO_MAX_BODY;
    tw_mmc_holder_params(&p, h);
    assert_int_equal(mf_net_client_create(&p, &c), MF_OK);
    h->client = c;
    return c;
}

/* Sends body (may be NULL) and returns the frame status; resp gets the
 * body (free with mf_net_resp_free). */
static mf_status_t test_rpc_call_raw(mf_net_client_t *c, uint16_t op,
                                     const void *body, size_t len,
                                     mf_net_resp_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    assert_int_equal(mf_net_client_call(c, op, body, len, CALL_MS, resp),
                     MF_OK);
    if (resp->status != MF_OK) {
        assert_int_equal(resp->len, 0);
    }
    return resp->status;
}

/* Sends what w holds (and frees it). */
static mf_status_t test_rpc_call(mf_net_client_t *c, uint16_t op, mf_wbuf_t *w,
                                 mf_net_resp_t *resp)
{
    mf_status_t status;

    assert_int_equal(mf_wbuf_status(w), MF_OK);
    status = test_rpc_call_raw(c, op, w->data, w->len, resp);
    mf_wbuf_free(w);
    return status;
}

static mmc_hello_resp_t test_rpc_hello(mf_net_client_t *c)
{
    mmc_hello_resp_t hr;
    mf_net_resp_t resp;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    tw_mmc_hello_encode(&w, "test");
    assert_int_equal(test_rpc_call(c, MMC_OP_HELLO, &w, &resp), MF_OK);
    assert_int_equal(mmc_hello_resp_decode(resp.body, resp.len, &hr), MF_OK);
    mf_net_resp_free(&resp);
    return hr;
}

/* REGISTER with a DRAM segment of size bytes (0: none) at gva (0: the
 * rank's own); the frame status, *host_idx_p on success. */
static mf_status_t test_rpc_register(mf_net_client_t *c, uint32_t rank,
                                     const char *host, uint64_t size,
                                     uint64_t gva, uint32_t *host_idx_p)
{
    mmc_register_req_t req;
    mf_net_resp_t resp;
    mf_status_t status;
    mf_wbuf_t w;

    memset(&req, 0, sizeof(req));
    req.rank = rank;
    mf_strlcpy(req.host_id, host, sizeof(req.host_id));
    if (size != 0) {
        req.nsegs = 1;
        req.segs[0].media = MMC_MEDIA_DRAM;
        req.segs[0].gva = gva ? gva : HOST_BASE + rank * MAX_SEG;
        req.segs[0].size = size;
    }
    mf_wbuf_init(&w);
    mmc_register_req_encode(&w, &req);
    status = test_rpc_call(c, MMC_OP_REGISTER, &w, &resp);
    if (status == MF_OK) {
        mf_rbuf_t r;
        uint32_t idx = 0;

        mf_rbuf_init(&r, resp.body, resp.len);
        assert_true(mf_rbuf_get_u32(&r, &idx));
        assert_int_equal(mf_rbuf_status(&r, true), MF_OK);
        if (host_idx_p != NULL) {
            *host_idx_p = idx;
        }
    }
    mf_net_resp_free(&resp);
    return status;
}

/* A connected, greeted client (registered as rank with size bytes when
 * size != 0). */
static mf_net_client_t *test_rpc_member(mmc_meta_t *meta, uint32_t rank,
                                        uint64_t size)
{
    mf_net_client_t *c = test_rpc_connect(meta);

    (void)test_rpc_hello(c);
    if (size != 0) {
        assert_int_equal(test_rpc_register(c, rank, "host-a", size, 0, NULL),
                         MF_OK);
    }
    return c;
}

static char (*test_rpc_keys(uint32_t n, const char *prefix))[32]
{
    char(*keys)[32] = calloc(n, 32);

    assert_non_null(keys);
    for (uint32_t i = 0; i < n; i++) {
        snprintf(keys[i], 32, "%s-%" PRIu32, prefix, i);
    }
    return keys;
}

/* PUT_ALLOC of n keys of size bytes on media; returns the decoded obj
 * list. */
static mf_status_t test_rpc_put_alloc_media(mf_net_client_t *c,
                                            char (*keys)[32], uint32_t n,
                                            uint64_t size, uint32_t replicas,
                                            uint32_t flags, uint8_t media,
                                            mmc_obj_list_t *out)
{
    mmc_put_alloc_req_t req;
    mf_net_resp_t resp;
    mf_status_t status;
    mf_wbuf_t w;

    memset(&req, 0, sizeof(req));
    req.flags = flags;
    req.replicas = replicas;
    req.media = media;
    req.count = n;
    req.items = calloc(n ? n : 1, sizeof(*req.items));
    assert_non_null(req.items);
    for (uint32_t i = 0; i < n; i++) {
        req.items[i].key.data = keys[i];
        req.items[i].key.len = (uint32_t)strlen(keys[i]);
        req.items[i].size = size;
    }
    mf_wbuf_init(&w);
    mmc_put_alloc_req_encode(&w, &req);
    free(req.items);
    status = test_rpc_call(c, MMC_OP_PUT_ALLOC, &w, &resp);
    memset(out, 0, sizeof(*out));
    if (status == MF_OK) {
        assert_int_equal(mmc_obj_list_decode(resp.body, resp.len, out), MF_OK);
        assert_int_equal(out->count, n);
    }
    mf_net_resp_free(&resp);
    return status;
}

static mf_status_t test_rpc_put_alloc(mf_net_client_t *c, char (*keys)[32],
                                      uint32_t n, uint64_t size,
                                      uint32_t replicas, uint32_t flags,
                                      mmc_obj_list_t *out)
{
    return test_rpc_put_alloc_media(c, keys, n, size, replicas, flags,
                                    MMC_MEDIA_DRAM, out);
}

/* PUT_COMMIT of the items of a put_alloc result (status st for each). */
static void test_rpc_commit(mf_net_client_t *c, const mmc_obj_list_t *puts,
                            int32_t st, int32_t expect)
{
    mmc_commit_list_t req;
    mmc_status_list_t out;
    mf_net_resp_t resp;
    mf_wbuf_t w;

    req.count = puts->count;
    req.items = calloc(puts->count ? puts->count : 1, sizeof(*req.items));
    assert_non_null(req.items);
    for (uint32_t i = 0; i < puts->count; i++) {
        req.items[i].put_id = puts->items[i].id;
        req.items[i].status = st;
    }
    mf_wbuf_init(&w);
    mmc_commit_list_encode(&w, &req);
    free(req.items);
    assert_int_equal(test_rpc_call(c, MMC_OP_PUT_COMMIT, &w, &resp), MF_OK);
    assert_int_equal(mmc_status_list_decode(resp.body, resp.len, &out), MF_OK);
    assert_int_equal(out.count, puts->count);
    for (uint32_t i = 0; i < out.count; i++) {
        assert_int_equal(out.status[i], expect);
    }
    mmc_status_list_free(&out);
    mf_net_resp_free(&resp);
}

static void test_rpc_encode_keys(mf_wbuf_t *w, char (*keys)[32], uint32_t n)
{
    mmc_key_list_t req;

    req.count = n;
    req.keys = calloc(n ? n : 1, sizeof(*req.keys));
    assert_non_null(req.keys);
    for (uint32_t i = 0; i < n; i++) {
        req.keys[i].data = keys[i];
        req.keys[i].len = (uint32_t)strlen(keys[i]);
    }
    mf_wbuf_init(w);
    mmc_key_list_encode(w, &req);
    free(req.keys);
}

/* GET or QUERY of n keys. */
static void test_rpc_objs(mf_net_client_t *c, uint16_t op, char (*keys)[32],
                          uint32_t n, mmc_obj_list_t *out)
{
    mf_net_resp_t resp;
    mf_wbuf_t w;

    test_rpc_encode_keys(&w, keys, n);
    assert_int_equal(test_rpc_call(c, op, &w, &resp), MF_OK);
    assert_int_equal(mmc_obj_list_decode(resp.body, resp.len, out), MF_OK);
    assert_int_equal(out->count, n);
    mf_net_resp_free(&resp);
}

/* EXIST or REMOVE of n keys: every status must be expect. */
static void test_rpc_statuses(mf_net_client_t *c, uint16_t op, char (*keys)[32],
                              uint32_t n, int32_t expect)
{
    mmc_status_list_t out;
    mf_net_resp_t resp;
    mf_wbuf_t w;

    test_rpc_encode_keys(&w, keys, n);
    assert_int_equal(test_rpc_call(c, op, &w, &resp), MF_OK);
    assert_int_equal(mmc_status_list_decode(resp.body, resp.len, &out), MF_OK);
    assert_int_equal(out.count, n);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(out.status[i], expect);
    }
    mmc_status_list_free(&out);
    mf_net_resp_free(&resp);
}

/* RELEASE of the leases of a GET result. */
static void test_rpc_release(mf_net_client_t *c, const mmc_obj_list_t *gets,
                             int32_t expect)
{
    mmc_id_list_t req;
    mmc_status_list_t out;
    mf_net_resp_t resp;
    mf_wbuf_t w;

    req.count = gets->count;
    req.ids = calloc(gets->count ? gets->count : 1, sizeof(*req.ids));
    assert_non_null(req.ids);
    for (uint32_t i = 0; i < gets->count; i++) {
        req.ids[i] = gets->items[i].id;
    }
    mf_wbuf_init(&w);
    mmc_id_list_encode(&w, &req);
    free(req.ids);
    assert_int_equal(test_rpc_call(c, MMC_OP_RELEASE, &w, &resp), MF_OK);
    assert_int_equal(mmc_status_list_decode(resp.body, resp.len, &out), MF_OK);
    assert_int_equal(out.count, gets->count);
    for (uint32_t i = 0; i < out.count; i++) {
        assert_int_equal(out.status[i], expect);
    }
    mmc_status_list_free(&out);
    mf_net_resp_free(&resp);
}

/* ---- the service's view, on its loop thread ---- */

typedef struct test_rpc_view {
    mmc_meta_t *meta;
    mmc_meta_stats_t stats;
    uint32_t segs;
    uint64_t used;
    uint64_t capacity;
    uint64_t replicas;
} test_rpc_view_t;

static void test_rpc_view_seg(const mmc_meta_seg_info_t *seg, void *arg)
{
    test_rpc_view_t *v = arg;

    v->segs++;
    v->used += seg->used;
    v->capacity += seg->capacity;
    v->replicas += seg->replicas;
}

static void test_rpc_view_fn(void *arg)
{
    test_rpc_view_t *v = arg;

    mmc_meta_get_stats(v->meta, &v->stats);
    mmc_meta_foreach_seg(v->meta, test_rpc_view_seg, v);
}

static test_rpc_view_t test_rpc_view(mmc_meta_t *meta)
{
    test_rpc_view_t v;

    memset(&v, 0, sizeof(v));
    v.meta = meta;
    assert_int_equal(mmc_meta_run_sync(meta, test_rpc_view_fn, &v), MF_OK);
    return v;
}

typedef struct test_rpc_key_info {
    mmc_meta_t *meta;
    const char *key;
    mmc_status_t status;
    mmc_obj_info_t info;
    uint32_t leases;
} test_rpc_key_info_t;

static void test_rpc_key_info_fn(void *arg)
{
    test_rpc_key_info_t *ki = arg;

    ki->status = mmc_meta_key_info(ki->meta, ki->key, strlen(ki->key),
                                   &ki->info, &ki->leases);
}

static test_rpc_key_info_t test_rpc_key_info(mmc_meta_t *meta, const char *key)
{
    test_rpc_key_info_t ki;

    memset(&ki, 0, sizeof(ki));
    ki.meta = meta;
    ki.key = key;
    assert_int_equal(mmc_meta_run_sync(meta, test_rpc_key_info_fn, &ki), MF_OK);
    return ki;
}

/* Waits (hang guard only) until the service has `clients` connections. */
static test_rpc_view_t test_rpc_wait_clients(mmc_meta_t *meta, uint64_t clients)
{
    uint64_t deadline = mf_time_ms() + WAIT_MS;
    test_rpc_view_t v;

    for (;;) {
        v = test_rpc_view(meta);
        if (v.stats.clients == clients) {
            return v;
        }
        assert_true(mf_time_ms() < deadline);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

/* ---- tests ---- */

static void test_rpc_hello_and_state(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *c = test_rpc_connect(t->meta);
    mmc_hello_req_t bad = {.version = MMC_PROTO_VERSION + 1};
    mmc_hello_resp_t hr;
    mf_net_resp_t resp;
    mf_wbuf_t w;
    char(*keys)[32] = test_rpc_keys(1, "k");

    /* everything but HELLO is refused first */
    for (uint16_t op = MMC_OP_REGISTER; op < MMC_OP_MAX; op++) {
        assert_int_equal(test_rpc_call_raw(c, op, NULL, 0, &resp),
                         MF_ERR_STATE);
    }
    test_rpc_encode_keys(&w, keys, 1);
    assert_int_equal(test_rpc_call(c, MMC_OP_GET, &w, &resp), MF_ERR_STATE);
    /* an unknown opcode is unsupported, greeted or not */
    assert_int_equal(test_rpc_call_raw(c, 0, NULL, 0, &resp),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(test_rpc_call_raw(c, 999, NULL, 0, &resp),
                     MF_ERR_UNSUPPORTED);
    /* another protocol version */
    mf_wbuf_init(&w);
    mmc_hello_req_encode(&w, &bad);
    assert_int_equal(test_rpc_call(c, MMC_OP_HELLO, &w, &resp), MF_ERR_VERSION);
    /* a malformed HELLO */
    assert_int_equal(test_rpc_call_raw(c, MMC_OP_HELLO, "xy", 2, &resp),
                     MF_ERR_PROTO);

    hr = test_rpc_hello(c);
    assert_int_equal(hr.version, MMC_PROTO_VERSION);
    assert_int_equal(hr.store_port, mmc_meta_store_port(t->meta));
    assert_int_equal(hr.world_size, NRANKS);
    assert_int_equal(hr.max_segment_size, MAX_SEG);
    assert_int_equal(hr.host_base, HOST_BASE);
    assert_int_equal(hr.lease_ms, 600000);
    assert_int_equal(hr.max_batch, MMC_BATCH_MAX);
    assert_int_equal(hr.pool_id, mmc_meta_config(t->meta)->pool_id);
    /* no device window by default */
    assert_int_equal(hr.max_hbm_segment_size, 0);
    assert_int_equal(hr.device_base, mmc_meta_config(t->meta)->device_base);
    assert_int_equal(test_rpc_hello(c).meta_id, hr.meta_id);

    test_rpc_encode_keys(&w, keys, 1);
    assert_int_equal(test_rpc_call(c, MMC_OP_EXIST, &w, &resp), MF_OK);
    mf_net_resp_free(&resp);
    assert_int_equal(test_rpc_call_raw(c, 999, NULL, 0, &resp),
                     MF_ERR_UNSUPPORTED);
    {
        test_rpc_view_t v = test_rpc_view(t->meta);
        assert_int_equal(v.stats.clients, 1);
        assert_int_equal(v.stats.requests[MMC_OP_HELLO], 4);
        assert_int_equal(v.stats.errors[MMC_OP_HELLO], 2);
        assert_int_equal(v.stats.requests[0], 3);
        assert_int_equal(v.stats.latency[MMC_OP_HELLO].count, 4);
    }
    mf_net_client_destroy(c);
    free(keys);
}

static void test_rpc_register_checks(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *a = test_rpc_member(t->meta, 0, 0);
    mf_net_client_t *b = test_rpc_member(t->meta, 0, 0);
    mf_net_resp_t resp;
    uint32_t ia = 99;
    uint32_t ib = 99;

    assert_int_equal(test_rpc_register(a, NRANKS, "h", PG, HOST_BASE, NULL),
                     MF_ERR_INVALID);
    assert_int_equal(test_rpc_register(a, 1, "h", PG, HOST_BASE, NULL),
                     MF_ERR_INVALID); /* rank 0's window */
    assert_int_equal(test_rpc_register(a, 1, "h", MAX_SEG + PG, 0, NULL),
                     MF_ERR_INVALID);
    assert_int_equal(test_rpc_register(a, 1, "h", 64 * PG, 0, &ia), MF_OK);
    assert_int_equal(test_rpc_register(b, 1, "h", 64 * PG, 0, NULL),
                     MF_ERR_EXISTS);
    assert_int_equal(test_rpc_register(a, 2, "h", 64 * PG, 0, NULL),
                     MF_ERR_STATE);
    /* a pure client on the same host */
    assert_int_equal(test_rpc_register(b, 2, "h", 0, 0, &ib), MF_OK);
    assert_int_equal(ia, ib);
    assert_int_equal(test_rpc_view(t->meta).segs, 1);
    assert_int_equal(test_rpc_view(t->meta).stats.members, 1);

    /* UNREGISTER: the segment goes, the connection stays usable */
    assert_int_equal(test_rpc_call_raw(a, MMC_OP_UNREGISTER, "x", 1, &resp),
                     MF_ERR_PROTO);
    assert_int_equal(test_rpc_call_raw(a, MMC_OP_UNREGISTER, NULL, 0, &resp),
                     MF_OK);
    assert_int_equal(test_rpc_view(t->meta).segs, 0);
    assert_int_equal(test_rpc_register(a, 1, "h", 64 * PG, 0, NULL), MF_OK);

    /* rank 1 frees when a goes away */
    mf_net_client_destroy(a);
    (void)test_rpc_wait_clients(t->meta, 1);
    assert_int_equal(test_rpc_view(t->meta).segs, 0);
    mf_net_client_destroy(b);
    (void)test_rpc_wait_clients(t->meta, 0);
    assert_int_equal(test_rpc_view(t->meta).stats.hosts, 0);
    /* nobody uses "h" any more: a new host id takes its index */
    b = test_rpc_member(t->meta, 0, 0);
    assert_int_equal(test_rpc_register(b, 1, "h2", 64 * PG, 0, &ib), MF_OK);
    assert_int_equal(ib, ia);
    assert_int_equal(test_rpc_view(t->meta).stats.hosts, 1);
    mf_net_client_destroy(b);
}

/* REGISTER with explicit segments; the frame status. */
static mf_status_t test_rpc_register_segs(mf_net_client_t *c, uint32_t rank,
                                          const char *host, uint32_t nsegs,
                                          const mmc_seg_desc_t *segs)
{
    mmc_register_req_t req;
    mf_net_resp_t resp;
    mf_status_t status;
    mf_wbuf_t w;

    memset(&req, 0, sizeof(req));
    req.rank = rank;
    mf_strlcpy(req.host_id, host, sizeof(req.host_id));
    req.nsegs = nsegs;
    for (uint32_t i = 0; i < nsegs; i++) {
        req.segs[i] = segs[i];
    }
    mf_wbuf_init(&w);
    mmc_register_req_encode(&w, &req);
    status = test_rpc_call(c, MMC_OP_REGISTER, &w, &resp);
    mf_net_resp_free(&resp);
    return status;
}

/* Without a device window HBM segments are refused (warned once per
 * connection); unknown media are invalid; nothing stays registered. */
static void test_rpc_register_media(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *a = test_rpc_member(t->meta, 0, 0);
    mf_net_client_t *b = test_rpc_member(t->meta, 0, 0);
    mmc_seg_desc_t segs[2] = {
        {.media = MMC_MEDIA_DRAM,
         .gva = HOST_BASE + 2 * MAX_SEG,
         .size = 64 * PG},
        {.media = MMC_MEDIA_HBM, .gva = 0x7000000000ull, .size = 64 * PG},
    };
    test_rpc_view_t v;

    unsigned hbm_warns = tk_log_matches(&test_rpc_log, "HBM");

    assert_int_equal(test_rpc_register_segs(a, 2, "h", 1, &segs[1]),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs),
                     MF_ERR_UNSUPPORTED);
    /* an HBM segment inside the DRAM window: the same */
    segs[1].gva = HOST_BASE;
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(tk_log_matches(&test_rpc_log, "HBM"), hbm_warns + 1);
    assert_int_equal(test_rpc_register_segs(b, 3, "h", 1, &segs[1]),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(tk_log_matches(&test_rpc_log, "HBM"), hbm_warns + 2);
    /* unknown media; an SSD segment with an address */
    segs[1].media = 3;
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs),
                     MF_ERR_INVALID);
    segs[1].media = MMC_MEDIA_SSD;
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs),
                     MF_ERR_INVALID);
    segs[1].media = 0xff;
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 1, &segs[1]),
                     MF_ERR_INVALID);
    v = test_rpc_view(t->meta);
    assert_int_equal(v.segs, 0);
    assert_int_equal(v.stats.hosts, 0);
    assert_int_equal(v.stats.errors[MMC_OP_REGISTER], 7);
    /* DRAM only: fine; DRAM and SSD (no address) too */
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 1, segs), MF_OK);
    assert_int_equal(test_rpc_view(t->meta).segs, 1);
    segs[0].gva = HOST_BASE + 3 * MAX_SEG;
    segs[1].media = MMC_MEDIA_SSD;
    segs[1].gva = 0;
    assert_int_equal(test_rpc_register_segs(b, 3, "h", 2, segs), MF_OK);
    assert_int_equal(test_rpc_view(t->meta).segs, 3);
    mf_net_client_destroy(a);
    mf_net_client_destroy(b);
}

/* With a device window: HELLO tells it, REGISTER takes an HBM segment at
 * the rank's slot of it (and nowhere else), PUT_ALLOC places replicas on
 * the media it names, evicts there only, and refuses an unknown one. */
static void test_rpc_hbm(void **state)
{
    const uint64_t dev_base = 0x600000000000ull, max_hbm = 64ull << 20;
    mmc_meta_t *meta = test_rpc_start_with(
        "max_hbm_segment_size", "64M", "device_base", "0x600000000000", NULL);
    mf_net_client_t *a = test_rpc_connect(meta);
    mf_net_client_t *b;
    mmc_seg_desc_t segs[2] = {
        {.media = MMC_MEDIA_DRAM,
         .gva = HOST_BASE + 2 * MAX_SEG,
         .size = 64 * PG},
        {.media = MMC_MEDIA_HBM,
         .gva = dev_base + 3 * max_hbm,
         .size = 16 * PG},
    };
    char(*keys)[32] = test_rpc_keys(4, "hbm");
    mmc_obj_list_t puts;
    mmc_hello_resp_t hr;
    test_rpc_view_t v;

    (void)state;
    hr = test_rpc_hello(a);
    assert_int_equal(hr.device_base, dev_base);
    assert_int_equal(hr.max_hbm_segment_size, max_hbm);
    /* another rank's slot, then over the stride */
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs),
                     MF_ERR_INVALID);
    segs[1].gva = dev_base + 2 * max_hbm;
    segs[1].size = max_hbm + PG;
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs),
                     MF_ERR_INVALID);
    segs[1].size = 16 * PG;
    assert_int_equal(test_rpc_register_segs(a, 2, "h", 2, segs), MF_OK);
    /* an HBM-only member */
    b = test_rpc_member(meta, 0, 0);
    segs[1].gva = dev_base + 5 * max_hbm;
    assert_int_equal(test_rpc_register_segs(b, 5, "h2", 1, &segs[1]), MF_OK);
    v = test_rpc_view(meta);
    assert_int_equal(v.segs, 3);
    assert_int_equal(v.capacity, 64 * PG + 2 * 16 * PG);

    /* two HBM replicas: ranks 2 and 5, each in its slot */
    assert_int_equal(test_rpc_put_alloc_media(a, keys, 2, 3 * PG, 2, 0,
                                              MMC_MEDIA_HBM, &puts),
                     MF_OK);
    for (uint32_t i = 0; i < 2; i++) {
        assert_int_equal(puts.items[i].status, MMC_OK);
        assert_int_equal(puts.items[i].nrep, 2);
        for (uint32_t r = 0; r < 2; r++) {
            const mmc_replica_t *rep = &puts.items[i].reps[r];

            assert_int_equal(rep->media, MMC_MEDIA_HBM);
            assert_true(rep->rank == 2 || rep->rank == 5);
            assert_true(rep->gva >= dev_base + rep->rank * max_hbm);
            assert_true(rep->gva + 3 * PG <=
                        dev_base + rep->rank * max_hbm + 16 * PG);
        }
    }
    test_rpc_commit(a, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    assert_int_equal(test_rpc_key_info(meta, "hbm-0").info.media[0],
                     MMC_MEDIA_HBM);
    /* DRAM: rank 2 only */
    assert_int_equal(test_rpc_put_alloc_media(a, keys + 2, 1, 11 * PG, 1, 0,
                                              MMC_MEDIA_DRAM, &puts),
                     MF_OK);
    assert_int_equal(puts.items[0].status, MMC_OK);
    assert_int_equal(puts.items[0].reps[0].media, MMC_MEDIA_DRAM);
    assert_int_equal(puts.items[0].reps[0].gva, HOST_BASE + 2 * MAX_SEG);
    test_rpc_commit(a, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    /* 11 pages on HBM: the HBM objects make room, the DRAM one stays */
    assert_int_equal(test_rpc_put_alloc_media(a, keys + 3, 1, 11 * PG, 1, 0,
                                              MMC_MEDIA_HBM, &puts),
                     MF_OK);
    assert_int_equal(puts.items[0].status, MMC_OK);
    assert_int_equal(puts.items[0].reps[0].gva, dev_base + 2 * max_hbm);
    test_rpc_commit(a, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    assert_int_equal(test_rpc_key_info(meta, "hbm-0").status,
                     MMC_ERR_NOT_FOUND);
    assert_int_equal(test_rpc_key_info(meta, "hbm-2").status, MMC_OK);
    /* larger than any HBM segment: no space, whatever DRAM has */
    assert_int_equal(test_rpc_put_alloc_media(a, keys, 1, 17 * PG, 1, 0,
                                              MMC_MEDIA_HBM, &puts),
                     MF_OK);
    assert_int_equal(puts.items[0].status, MMC_ERR_NO_SPACE);
    mmc_obj_list_free(&puts);
    /* an unknown media fails the request */
    assert_int_equal(test_rpc_put_alloc_media(a, keys, 1, PG, 1, 0, 2, &puts),
                     MF_ERR_INVALID);
    v = test_rpc_view(meta);
    assert_int_equal(v.used, 2 * 11 * PG);
    assert_int_equal(v.replicas, 2);
    mf_net_client_destroy(a);
    mf_net_client_destroy(b);
    free(keys);
    mmc_meta_stop(meta);
}

/* NOT_FOUND of GET, EXIST, QUERY and REMOVE is a miss, not an error. */
static void test_rpc_misses(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *m = test_rpc_member(t->meta, 0, 64 * PG);
    char(*keys)[32] = test_rpc_keys(3, "miss");
    mmc_obj_list_t puts;
    mmc_obj_list_t gets;
    mmc_obj_list_t qs;
    test_rpc_view_t v;

    /* keys[0] exists, the others do not */
    assert_int_equal(test_rpc_put_alloc(m, keys, 1, 100, 1, 0, &puts), MF_OK);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    test_rpc_objs(m, MMC_OP_GET, keys, 3, &gets);
    test_rpc_objs(m, MMC_OP_QUERY, keys, 3, &qs);
    test_rpc_statuses(m, MMC_OP_EXIST, keys + 1, 2, MMC_ERR_NOT_FOUND);
    test_rpc_statuses(m, MMC_OP_REMOVE, keys + 1, 2, MMC_ERR_NOT_FOUND);
    assert_int_equal(gets.items[1].status, MMC_ERR_NOT_FOUND);
    assert_int_equal(qs.items[2].status, MMC_ERR_NOT_FOUND);
    /* real failures stay errors: an unknown lease, an aborted put */
    {
        uint64_t unknown = 12345;
        mmc_id_list_t req = {.count = 1, .ids = &unknown};
        mmc_status_list_t out;
        mf_net_resp_t resp;
        mf_wbuf_t w;

        mf_wbuf_init(&w);
        mmc_id_list_encode(&w, &req);
        assert_int_equal(test_rpc_call(m, MMC_OP_RELEASE, &w, &resp), MF_OK);
        assert_int_equal(mmc_status_list_decode(resp.body, resp.len, &out),
                         MF_OK);
        assert_int_equal(out.status[0], MMC_ERR_LEASE_EXPIRED);
        mmc_status_list_free(&out);
        mf_net_resp_free(&resp);
    }
    test_rpc_commit(m, &puts, MMC_OK, MMC_ERR_ABORTED);
    v = test_rpc_view(t->meta);
    for (uint16_t op = MMC_OP_GET; op <= MMC_OP_REMOVE; op++) {
        if (op == MMC_OP_RELEASE) {
            continue;
        }
        assert_int_equal(v.stats.misses[op], 2);
        assert_int_equal(v.stats.errors[op], 0);
    }
    assert_int_equal(v.stats.errors[MMC_OP_RELEASE], 1);
    assert_int_equal(v.stats.misses[MMC_OP_RELEASE], 0);
    assert_int_equal(v.stats.errors[MMC_OP_PUT_COMMIT], 1);
    assert_int_equal(v.stats.misses[MMC_OP_PUT_COMMIT], 0);
    mmc_obj_list_free(&puts);
    mmc_obj_list_free(&gets);
    mmc_obj_list_free(&qs);
    free(keys);
    mf_net_client_destroy(m);
}

/* The holder slot of client c (the latest: an earlier client freed may
 * have had its address). */
static tw_mmc_holder_t *test_rpc_holder_of(mf_net_client_t *c)
{
    const size_t n = MF_ARRAY_SIZE(test_rpc_holders);

    for (size_t i = 1; i <= n; i++) {
        tw_mmc_holder_t *h = &test_rpc_holders[(test_rpc_nholders + n - i) % n];

        if (h->client == c) {
            return h;
        }
    }
    fail_msg("no holder slot for that client");
    return NULL;
}

/* A holder's own put: the RECORD of it goes flagged ACK_LATER, which the
 * holder leaves unanswered, and the reply does not wait.  Another
 * client's put placed in the holder's segment must wait for the holder's
 * record: an empty RECORD asks for the acknowledgement, and the put is
 * answered once it comes.  A commit of that put into the holder's record
 * is acknowledged at once. */
static void test_rpc_ack_later(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *m = test_rpc_member(t->meta, 3, 64 * PG);
    mf_net_client_t *c = test_rpc_member(t->meta, 0, 0);
    tw_mmc_holder_t *h = test_rpc_holder_of(m);
    char(*own)[32] = test_rpc_keys(2, "own");
    char(*other)[32] = test_rpc_keys(2, "other");
    mmc_obj_list_t puts;

    assert_int_equal(test_rpc_put_alloc(m, own, 2, 5000, 1, 0, &puts), MF_OK);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    /* m's segment is the only one: c's put waits for m's record */
    assert_int_equal(test_rpc_put_alloc(c, other, 2, 5000, 1, 0, &puts), MF_OK);
    assert_int_equal(puts.items[0].reps[0].rank, 3);
    /* m got its ADDs flagged and was asked (it answered in order, before
     * c's reply could go) */
    assert_true(atomic_load(&h->later) >= 1);
    assert_int_equal(atomic_load(&h->asked), 1);
    assert_int_equal(atomic_load(&h->acked), 0);
    test_rpc_commit(c, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    assert_int_equal(atomic_load(&h->acked), 1);
    test_rpc_statuses(c, MMC_OP_EXIST, own, 2, MMC_OK);
    test_rpc_statuses(c, MMC_OP_EXIST, other, 2, MMC_OK);
    free(own);
    free(other);
    mf_net_client_destroy(c);
    mf_net_client_destroy(m);
}

static void test_rpc_round(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *m = test_rpc_member(t->meta, 3, 64 * PG);
    mf_net_client_t *c = test_rpc_member(t->meta, 0, 0);
    char(*keys)[32] = test_rpc_keys(4, "round");
    mmc_obj_list_t puts;
    mmc_obj_list_t again;
    mmc_obj_list_t gets;
    mmc_obj_list_t qs;
    test_rpc_key_info_t ki;
    test_rpc_view_t v;

    assert_int_equal(test_rpc_put_alloc(c, keys, 4, 5000, 1, 0, &puts), MF_OK);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(puts.items[i].status, MMC_OK);
        assert_int_equal(puts.items[i].nrep, 1);
        assert_int_equal(puts.items[i].reps[0].rank, 3);
        assert_int_equal(puts.items[i].reps[0].media, MMC_MEDIA_DRAM);
        assert_true(puts.items[i].reps[0].gva >= HOST_BASE + 3 * MAX_SEG);
        assert_true(puts.items[i].id != 0);
    }
    /* pending: not there yet, and a second put is refused */
    test_rpc_statuses(c, MMC_OP_EXIST, keys, 4, MMC_ERR_NOT_FOUND);
    assert_int_equal(test_rpc_put_alloc(m, keys, 1, 10, 1, 0, &again), MF_OK);
    assert_int_equal(again.items[0].status, MMC_ERR_EXISTS);
    mmc_obj_list_free(&again);
    assert_int_equal(
        test_rpc_put_alloc(m, keys, 1, 10, 1, MMC_PUT_REPLACE, &again), MF_OK);
    assert_int_equal(again.items[0].status, MMC_ERR_BUSY);
    mmc_obj_list_free(&again);
    /* replicas out of range */
    assert_int_equal(test_rpc_put_alloc(c, keys, 1, 10, 0, 0, &again),
                     MF_ERR_INVALID);
    /* two replicas, one rank */
    assert_int_equal(test_rpc_put_alloc(c, keys + 3, 1, 10, 2, 0, &again),
                     MF_OK);
    assert_int_equal(again.items[0].status, MMC_ERR_EXISTS);
    mmc_obj_list_free(&again);

    /* another connection cannot commit c's puts */
    test_rpc_commit(m, &puts, MMC_OK, MMC_ERR_ABORTED);
    test_rpc_commit(c, &puts, MMC_OK, MMC_OK);
    test_rpc_commit(c, &puts, MMC_OK, MMC_ERR_ABORTED);
    test_rpc_statuses(c, MMC_OP_EXIST, keys, 4, MMC_OK);

    test_rpc_objs(c, MMC_OP_GET, keys, 4, &gets);
    test_rpc_objs(c, MMC_OP_QUERY, keys, 4, &qs);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(gets.items[i].status, MMC_OK);
        assert_true(gets.items[i].id != 0);
        assert_int_equal(gets.items[i].size, 5000);
        assert_int_equal(gets.items[i].reps[0].gva, puts.items[i].reps[0].gva);
        assert_int_equal(qs.items[i].status, MMC_OK);
        assert_int_equal(qs.items[i].id, 0);
        assert_int_equal(qs.items[i].reps[0].gva, puts.items[i].reps[0].gva);
    }
    v = test_rpc_view(t->meta);
    assert_int_equal(v.stats.objects, 4);
    assert_int_equal(v.stats.object_bytes, 4 * 5000);
    assert_int_equal(v.stats.leases, 4);
    assert_int_equal(v.used, 8 * PG);
    ki = test_rpc_key_info(t->meta, keys[0]);
    assert_int_equal(ki.status, MMC_OK);
    assert_int_equal(ki.info.size, 5000);
    assert_int_equal(ki.info.nreplicas, 1);
    assert_int_equal(ki.info.ranks[0], 3);
    assert_int_equal(ki.info.gvas[0], puts.items[0].reps[0].gva);
    assert_int_equal(ki.leases, 1);
    assert_int_equal(test_rpc_key_info(t->meta, "nope").status,
                     MMC_ERR_NOT_FOUND);

    /* remove under the leases: gone at once, space kept until release */
    test_rpc_statuses(c, MMC_OP_REMOVE, keys, 4, MMC_OK);
    test_rpc_statuses(c, MMC_OP_REMOVE, keys, 4, MMC_ERR_NOT_FOUND);
    test_rpc_statuses(c, MMC_OP_EXIST, keys, 4, MMC_ERR_NOT_FOUND);
    mmc_obj_list_free(&qs);
    test_rpc_objs(c, MMC_OP_QUERY, keys, 4, &qs);
    assert_int_equal(qs.items[2].status, MMC_ERR_NOT_FOUND);
    assert_int_equal(test_rpc_view(t->meta).used, 8 * PG);
    test_rpc_release(m, &gets, MMC_ERR_LEASE_EXPIRED); /* not m's leases */
    test_rpc_release(c, &gets, MMC_OK);
    test_rpc_release(c, &gets, MMC_ERR_LEASE_EXPIRED);
    v = test_rpc_view(t->meta);
    assert_int_equal(v.used, 0);
    assert_int_equal(v.stats.leases, 0);
    assert_int_equal(v.stats.objects, 0);
    assert_int_equal(v.stats.puts_committed, 4);
    assert_int_equal(v.stats.removes, 4);

    /* abort through commit with an error status */
    mmc_obj_list_free(&puts);
    assert_int_equal(test_rpc_put_alloc(c, keys, 4, 1, 1, 0, &puts), MF_OK);
    test_rpc_commit(c, &puts, MF_ERR_IO, MMC_OK);
    assert_int_equal(test_rpc_view(t->meta).used, 0);
    assert_int_equal(test_rpc_view(t->meta).stats.puts_aborted, 4);

    mmc_obj_list_free(&puts);
    mmc_obj_list_free(&gets);
    mmc_obj_list_free(&qs);
    free(keys);
    mf_net_client_destroy(c);
    mf_net_client_destroy(m);
}

static void test_rpc_batch(void **state)
{
    test_rpc_t *t = *state;
    const uint32_t n = MMC_BATCH_MAX;
    mf_net_client_t *m = test_rpc_member(t->meta, 0, MAX_SEG);
    char(*keys)[32] = test_rpc_keys(n + 1, "batch");
    mmc_obj_list_t puts;
    mmc_obj_list_t gets;
    mmc_obj_list_t too;
    test_rpc_view_t v;

    assert_int_equal(test_rpc_put_alloc(m, keys, n, 100, 1, 0, &puts), MF_OK);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(puts.items[i].status, MMC_OK);
    }
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    test_rpc_statuses(m, MMC_OP_EXIST, keys, n, MMC_OK);
    test_rpc_objs(m, MMC_OP_GET, keys, n, &gets);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(gets.items[i].status, MMC_OK);
        assert_int_equal(gets.items[i].reps[0].gva, puts.items[i].reps[0].gva);
    }
    v = test_rpc_view(t->meta);
    assert_int_equal(v.stats.objects, n);
    assert_int_equal(v.stats.leases, n);
    assert_int_equal(v.used, n * PG);
    test_rpc_release(m, &gets, MMC_OK);
    test_rpc_statuses(m, MMC_OP_REMOVE, keys, n, MMC_OK);
    assert_int_equal(test_rpc_view(t->meta).used, 0);

    /* one key over the protocol's limit: the decoder refuses it */
    assert_int_equal(test_rpc_put_alloc(m, keys, n + 1, 100, 1, 0, &too),
                     MF_ERR_PROTO);
    assert_int_equal(test_rpc_view(t->meta).used, 0);

    mmc_obj_list_free(&puts);
    mmc_obj_list_free(&gets);
    free(keys);
    mf_net_client_destroy(m);
}

static void test_rpc_max_batch(void **state)
{
    test_rpc_t *t = *state;
    mmc_meta_t *meta = test_rpc_start(4);
    mf_net_client_t *m = test_rpc_member(meta, 0, 64 * PG);
    char(*keys)[32] = test_rpc_keys(5, "mb");
    mmc_obj_list_t puts;
    mf_net_resp_t resp;
    mf_wbuf_t w;

    (void)t;
    assert_int_equal(test_rpc_hello(m).max_batch, 4);
    assert_int_equal(test_rpc_put_alloc(m, keys, 5, 1, 1, 0, &puts),
                     MF_ERR_TOO_LARGE);
    for (uint16_t op = MMC_OP_GET; op <= MMC_OP_REMOVE; op++) {
        if (op == MMC_OP_RELEASE) {
            continue;
        }
        test_rpc_encode_keys(&w, keys, 5);
        assert_int_equal(test_rpc_call(m, op, &w, &resp), MF_ERR_TOO_LARGE);
    }
    assert_int_equal(test_rpc_put_alloc(m, keys, 4, 1, 1, 0, &puts), MF_OK);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    free(keys);
    mf_net_client_destroy(m);
    mmc_meta_stop(meta);
}

/* A list of one key that the decoders refuse (the encoder sends a key as
 * it is given): MF_ERR_PROTO. */
static void test_rpc_bad_key(mf_net_client_t *c, uint16_t op, const char *data,
                             uint32_t len)
{
    mmc_key_t key = {data, len};
    mmc_key_list_t keys = {1, &key};
    mf_net_resp_t resp;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mmc_key_list_encode(&w, &keys);
    assert_int_equal(test_rpc_call(c, op, &w, &resp), MF_ERR_PROTO);
}

static void test_rpc_malformed(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *m = test_rpc_member(t->meta, 0, 64 * PG);
    char(*keys)[32] = test_rpc_keys(2, "mal");
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    mmc_obj_list_t puts;
    mf_net_resp_t resp;
    mf_wbuf_t good;
    char long_key[MMC_KEY_MAX + 2];
    uint64_t id = 1;
    mmc_id_list_t ids = {1, &id};

    /* a valid PUT_ALLOC body, truncated at every length */
    {
        mmc_put_alloc_req_t req;
        mmc_put_item_t item = {{keys[0], (uint32_t)strlen(keys[0])}, 100};

        memset(&req, 0, sizeof(req));
        req.replicas = 1;
        req.count = 1;
        req.items = &item;
        mf_wbuf_init(&good);
        mmc_put_alloc_req_encode(&good, &req);
        for (size_t len = 0; len < good.len; len++) {
            assert_int_equal(
                test_rpc_call_raw(m, MMC_OP_PUT_ALLOC, good.data, len, &resp),
                MF_ERR_PROTO);
        }
        /* trailing bytes */
        mf_wbuf_put_u8(&good, 0);
        assert_int_equal(test_rpc_call(m, MMC_OP_PUT_ALLOC, &good, &resp),
                         MF_ERR_PROTO);
    }
    /* garbage for every opcode that takes a body (RECORD, REPAIR and MOVE
     * are notifies the meta service sends, never takes) */
    for (uint16_t op = MMC_OP_HELLO; op < MMC_OP_MAX; op++) {
        assert_int_equal(
            test_rpc_call_raw(m, op, garbage, sizeof(garbage), &resp),
            (op == MMC_OP_RECORD || op == MMC_OP_REPAIR || op == MMC_OP_MOVE)
                ? MF_ERR_UNSUPPORTED
                : MF_ERR_PROTO);
    }
    /* keys: with a NUL, empty, too long */
    test_rpc_bad_key(m, MMC_OP_GET, "a\0b", 3);
    test_rpc_bad_key(m, MMC_OP_EXIST, "", 0);
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    test_rpc_bad_key(m, MMC_OP_REMOVE, long_key, MMC_KEY_MAX + 1);
    /* a count (the first field) far beyond the body */
    mf_wbuf_init(&good);
    mmc_id_list_encode(&good, &ids);
    assert_int_equal(mf_wbuf_status(&good), MF_OK);
    mf_le32_store(good.data, 1000);
    assert_int_equal(test_rpc_call(m, MMC_OP_RELEASE, &good, &resp),
                     MF_ERR_PROTO);

    /* the connection and the service still work; nothing was allocated */
    assert_int_equal(test_rpc_view(t->meta).used, 0);
    assert_int_equal(test_rpc_put_alloc(m, keys, 2, 100, 1, 0, &puts), MF_OK);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    test_rpc_statuses(m, MMC_OP_EXIST, keys, 2, MMC_OK);
    assert_true(test_rpc_view(t->meta).stats.errors[MMC_OP_PUT_ALLOC] >= 10);
    mmc_obj_list_free(&puts);
    free(keys);
    mf_net_client_destroy(m);
}

static void test_rpc_disconnect(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *m = test_rpc_member(t->meta, 0, 64 * PG);
    mf_net_client_t *m2 = test_rpc_member(t->meta, 1, 64 * PG);
    mf_net_client_t *c = test_rpc_member(t->meta, 0, 0);
    char(*keys)[32] = test_rpc_keys(8, "dc");
    mmc_obj_list_t puts;
    mmc_obj_list_t gets;
    test_rpc_view_t v;

    /* committed objects with two replicas, and a lease held by c */
    assert_int_equal(test_rpc_put_alloc(m, keys, 4, 100, 2, 0, &puts), MF_OK);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    test_rpc_objs(c, MMC_OP_GET, keys, 1, &gets);
    /* c allocates and goes away before committing */
    assert_int_equal(test_rpc_put_alloc(c, keys + 4, 4, 3 * PG, 2, 0, &puts),
                     MF_OK);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(puts.items[i].status, MMC_OK);
    }
    v = test_rpc_view(t->meta);
    assert_int_equal(v.stats.pending_puts, 4);
    assert_int_equal(v.used, 2 * (4 * PG + 4 * 3 * PG));
    mf_net_client_destroy(c);
    v = test_rpc_wait_clients(t->meta, 2);
    assert_int_equal(v.stats.pending_puts, 0);
    assert_int_equal(v.stats.leases, 0);
    assert_int_equal(v.used, 2 * 4 * PG);
    assert_int_equal(v.stats.puts_aborted, 4);

    /* member m goes: its replicas go, the objects keep their others */
    mf_net_client_destroy(m);
    v = test_rpc_wait_clients(t->meta, 1);
    assert_int_equal(v.segs, 1);
    assert_int_equal(v.used, 4 * PG);
    assert_int_equal(v.stats.objects, 4);
    assert_int_equal(v.stats.members, 1);
    test_rpc_statuses(m2, MMC_OP_EXIST, keys, 4, MMC_OK);
    /* and m2 too: nothing is left */
    mf_net_client_destroy(m2);
    v = test_rpc_wait_clients(t->meta, 0);
    assert_int_equal(v.segs, 0);
    assert_int_equal(v.stats.objects, 0);
    assert_int_equal(v.stats.members, 0);
    mmc_obj_list_free(&puts);
    mmc_obj_list_free(&gets);
    free(keys);
}

/*
 * A client that sends requests and never reads: its replies pile up until
 * the server refuses one and drops the connection.  The leases granted by
 * the GET whose reply was refused are released at once (grants_undone),
 * before the connection's close releases the rest.  QUERY replies fill
 * most of the way first (the server holds at most 2 * 16 MiB + 64 MiB of
 * output for a connection), so that few leases are needed.
 */
static void test_rpc_lost_reply(void **state)
{
    enum { K = MMC_BATCH_MAX, NQUERY = 30, NGET = 40 };
    test_rpc_t *t = *state;
    mf_net_client_t *m[NRANKS];
    char(*key)[32];
    char(*same)[32];
    mmc_obj_list_t puts;
    test_rpc_view_t v;
    mf_wbuf_t w;
    int rcvbuf = 4096;
    uint64_t id = 1;
    int fd;

    if (MF_TSAN) {
        /* the service builds some 100 MB of replies on its loop thread
         * before it gives up on the client: minutes under ThreadSanitizer
         * (the other builds run it) */
        skip();
        return;
    }
    key = test_rpc_keys(1, "lost");
    same = calloc(K, 32);
    assert_non_null(same);
    for (uint32_t r = 0; r < NRANKS; r++) {
        m[r] = test_rpc_member(t->meta, r, 64 * PG);
    }
    /* one object with the most replicas: the largest reply per key */
    assert_int_equal(
        test_rpc_put_alloc(m[0], key, 1, 100, MMC_MAX_REPLICAS, 0, &puts),
        MF_OK);
    test_rpc_commit(m[0], &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    for (uint32_t i = 0; i < K; i++) {
        memcpy(same[i], key[0], 32);
    }

    fd = tk_sock_connect("127.0.0.1", mmc_meta_port(t->meta));
    assert_true(fd >= 0);
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    mf_wbuf_init(&w);
    tw_mmc_hello_encode(&w, "slow");
    assert_true(tw_send_req(fd, MMC_OP_HELLO, id++, w.data, w.len));
    mf_wbuf_free(&w);
    test_rpc_encode_keys(&w, same, K);
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    for (int i = 0; i < NQUERY + NGET; i++) {
        if (!tw_send_req(fd, (i < NQUERY) ? MMC_OP_QUERY : MMC_OP_GET, id++,
                         w.data, w.len)) {
            break; /* dropped already */
        }
    }
    mf_wbuf_free(&w);
    v = test_rpc_wait_clients(t->meta, NRANKS);
    close(fd);
    assert_int_equal(v.stats.replies_lost, 1);
    assert_int_equal(v.stats.grants_undone, K);
    assert_int_equal(v.stats.leases, 0);
    assert_true(v.stats.requests[MMC_OP_GET] < NGET);
    assert_true(v.stats.gets > K);
    for (uint32_t r = 0; r < NRANKS; r++) {
        mf_net_client_destroy(m[r]);
    }
    free(same);
    free(key);
}

static void test_rpc_expiry(void **state)
{
    test_rpc_t *t = *state;
    mmc_meta_t *meta = test_rpc_start_ms(MMC_BATCH_MAX, 20, 20);
    mf_net_client_t *m = test_rpc_member(meta, 0, 64 * PG);
    char(*keys)[32] = test_rpc_keys(2, "exp");
    uint64_t deadline = mf_time_ms() + WAIT_MS;
    mmc_obj_list_t puts;
    mmc_obj_list_t gets;
    test_rpc_view_t v;

    (void)t;
    assert_int_equal(test_rpc_put_alloc(m, keys, 1, 100, 1, 0, &puts), MF_OK);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    test_rpc_objs(m, MMC_OP_GET, keys, 1, &gets);
    assert_int_equal(test_rpc_put_alloc(m, keys + 1, 1, 100, 1, 0, &puts),
                     MF_OK);
    /* the timer reclaims the put and expires the lease (hang guard) */
    do {
        assert_true(mf_time_ms() < deadline);
        nanosleep(&(struct timespec){0, 5000000}, NULL);
        v = test_rpc_view(meta);
    } while ((v.stats.pending_puts != 0) || (v.stats.leases != 0));
    assert_int_equal(v.stats.puts_reclaimed, 1);
    assert_int_equal(v.stats.leases_expired, 1);
    assert_int_equal(v.used, PG);
    test_rpc_commit(m, &puts, MMC_OK, MMC_ERR_ABORTED);
    test_rpc_release(m, &gets, MMC_ERR_LEASE_EXPIRED);
    test_rpc_statuses(m, MMC_OP_EXIST, keys, 1, MMC_OK);
    test_rpc_statuses(m, MMC_OP_EXIST, keys + 1, 1, MMC_ERR_NOT_FOUND);
    mmc_obj_list_free(&puts);
    mmc_obj_list_free(&gets);
    free(keys);
    mf_net_client_destroy(m);
    mmc_meta_stop(meta);
}

/* A pool filled past its high mark in one batch is brought down to its
 * low mark off the request path, oldest objects first; a batch that finds
 * no room evicts for itself, then the pass runs again. */
static void test_rpc_evict(void **state)
{
    mmc_meta_t *meta =
        test_rpc_start_with("evict_high_pct", "90", "evict_low_pct", "80",
                            "evict_max_per_put", "16", NULL);
    mf_net_client_t *m = test_rpc_member(meta, 0, 64 * PG);
    char(*keys)[32] = test_rpc_keys(80, "ev");
    uint64_t deadline = mf_time_ms() + WAIT_MS;
    mmc_obj_list_t puts;
    test_rpc_view_t v;

    (void)state;
    assert_int_equal(test_rpc_put_alloc(m, keys, 60, PG, 1, 0, &puts), MF_OK);
    for (uint32_t i = 0; i < 60; i++) {
        assert_int_equal(puts.items[i].status, MMC_OK);
    }
    /* pending puts are not evicted: all 60 pages are held */
    v = test_rpc_view(meta);
    assert_int_equal(v.used, 60 * PG);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    /* the pass runs after the commit (hang guard) */
    do {
        assert_true(mf_time_ms() < deadline);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
        v = test_rpc_view(meta);
    } while (v.used * 100 > v.capacity * 80);
    assert_int_equal(v.used, 51 * PG);
    assert_int_equal(v.stats.evictions, 9);
    assert_int_equal(v.stats.evicted_bytes, 9 * PG);
    assert_int_equal(v.stats.evictions_put, 0);
    assert_true(v.stats.eviction_runs >= 1);
    assert_int_equal(v.stats.objects, 51);
    test_rpc_statuses(m, MMC_OP_EXIST, keys, 9, MMC_ERR_NOT_FOUND);
    test_rpc_statuses(m, MMC_OP_EXIST, keys + 9, 51, MMC_OK);

    /* 20 more pages: 13 fit, 7 evict for themselves */
    assert_int_equal(test_rpc_put_alloc(m, keys + 60, 20, PG, 1, 0, &puts),
                     MF_OK);
    for (uint32_t i = 0; i < 20; i++) {
        assert_int_equal(puts.items[i].status, MMC_OK);
    }
    /* (the pass may already have run: the allocation filled the pool) */
    v = test_rpc_view(meta);
    assert_int_equal(v.stats.evictions_put, 7);
    assert_true(v.used <= 64 * PG);
    test_rpc_commit(m, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    do {
        assert_true(mf_time_ms() < deadline);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
        v = test_rpc_view(meta);
    } while (v.used * 100 > v.capacity * 80);
    assert_int_equal(v.used, 51 * PG);
    assert_int_equal(v.stats.evictions, 9 + 7 + 13);
    /* the oldest went, the newest stayed */
    test_rpc_statuses(m, MMC_OP_EXIST, keys, 29, MMC_ERR_NOT_FOUND);
    test_rpc_statuses(m, MMC_OP_EXIST, keys + 29, 51, MMC_OK);
    free(keys);
    mf_net_client_destroy(m);
    mmc_meta_stop(meta);
}

/* PING is answered (empty) after HELLO; anything else is a bad frame. */
static void test_rpc_ping(void **state)
{
    test_rpc_t *t = *state;
    mf_net_client_t *c = test_rpc_connect(t->meta);
    mf_net_resp_t resp;

    assert_int_equal(test_rpc_call_raw(c, MMC_OP_PING, NULL, 0, &resp),
                     MF_ERR_STATE);
    (void)test_rpc_hello(c);
    assert_int_equal(test_rpc_call_raw(c, MMC_OP_PING, NULL, 0, &resp), MF_OK);
    assert_int_equal(resp.len, 0);
    mf_net_resp_free(&resp);
    assert_int_equal(test_rpc_call_raw(c, MMC_OP_PING, "x", 1, &resp),
                     MF_ERR_PROTO);
    assert_int_equal(test_rpc_view(t->meta).stats.requests[MMC_OP_PING], 3);
    mf_net_client_destroy(c);
}

static void test_rpc_ping_once(mf_net_client_t *c)
{
    mf_net_resp_t resp;

    assert_int_equal(test_rpc_call_raw(c, MMC_OP_PING, NULL, 0, &resp), MF_OK);
    mf_net_resp_free(&resp);
}

/*
 * A member that goes silent (its process hung or its host gone: no FIN
 * ever comes) is closed after member_timeout_ms: its segment, objects and
 * leases go.  A member that sends PING stays.  A member whose connection
 * closes without UNREGISTER is a loss too; one that unregisters is not.
 */
static void test_rpc_member_timeout(void **state)
{
    mmc_meta_t *meta = test_rpc_start_with("member_timeout_ms", "500", NULL);
    mf_net_client_t *alive = test_rpc_member(meta, 0, 64 * PG);
    mf_net_client_t *silent = test_rpc_member(meta, 1, 64 * PG);
    char(*keys)[32] = test_rpc_keys(2, "mt");
    uint64_t deadline = mf_time_ms() + WAIT_MS;
    mmc_obj_list_t puts;
    mmc_obj_list_t gets;
    test_rpc_view_t v;

    (void)state;
    /* an object on rank 1 only, and a lease of the silent one */
    assert_int_equal(test_rpc_put_alloc(silent, keys, 1, PG, 1, 0, &puts),
                     MF_OK);
    assert_int_equal(puts.items[0].reps[0].rank, 1);
    test_rpc_commit(silent, &puts, MMC_OK, MMC_OK);
    mmc_obj_list_free(&puts);
    test_rpc_objs(silent, MMC_OP_GET, keys, 1, &gets);
    mmc_obj_list_free(&gets);
    v = test_rpc_view(meta);
    assert_int_equal(v.stats.members, 2);
    assert_int_equal(v.stats.leases, 1);
    /* rank 1 says nothing more; rank 0 pings (hang guard only) */
    do {
        assert_true(mf_time_ms() < deadline);
        test_rpc_ping_once(alive);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
        v = test_rpc_view(meta);
    } while (v.stats.members != 1);
    assert_int_equal(v.stats.member_losses_timeout, 1);
    assert_int_equal(v.stats.member_losses_closed, 0);
    assert_true(v.stats.conns_timed_out >= 1);
    assert_int_equal(v.stats.leases, 0);
    assert_int_equal(v.stats.objects, 0);
    assert_int_equal(v.segs, 1);
    assert_int_equal(v.used, 0);
    v = test_rpc_wait_clients(meta, 1);
    /* the one that pinged still works */
    test_rpc_statuses(alive, MMC_OP_EXIST, keys, 1, MMC_ERR_NOT_FOUND);
    mf_net_client_destroy(silent);

    /* rank 1 again, then its connection closes: a loss (closed) */
    silent = test_rpc_member(meta, 1, 64 * PG);
    mf_net_client_destroy(silent);
    do {
        assert_true(mf_time_ms() < deadline);
        test_rpc_ping_once(alive);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
        v = test_rpc_view(meta);
    } while (v.stats.clients != 1);
    assert_int_equal(v.stats.member_losses_closed, 1);
    /* an UNREGISTER first: no loss */
    silent = test_rpc_member(meta, 1, 64 * PG);
    {
        mf_net_resp_t resp;
        assert_int_equal(
            test_rpc_call_raw(silent, MMC_OP_UNREGISTER, NULL, 0, &resp),
            MF_OK);
        mf_net_resp_free(&resp);
    }
    mf_net_client_destroy(silent);
    do {
        assert_true(mf_time_ms() < deadline);
        test_rpc_ping_once(alive);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
        v = test_rpc_view(meta);
    } while (v.stats.clients != 1);
    assert_int_equal(v.stats.member_losses_closed, 1);
    assert_int_equal(v.stats.member_losses_timeout, 1);
    assert_int_equal(v.stats.members, 1);
    free(keys);
    mf_net_client_destroy(alive);
    mmc_meta_stop(meta);
}

/* HTTP starts and stops on the loop thread with the service. */
static void test_rpc_http_lifecycle(void **state)
{
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    mf_net_client_t *c;

    (void)state;
    mmc_meta_config_init(&cfg);
    mf_strlcpy(cfg.addr, "127.0.0.1", sizeof(cfg.addr));
    cfg.port = 0;
    cfg.store_port = 0;
    cfg.http_port = 0;
    cfg.http_enable = true;
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_OK);
    assert_true(mmc_meta_http_port(meta) != 0);
    assert_int_not_equal(mmc_meta_http_port(meta), mmc_meta_port(meta));
    c = test_rpc_member(meta, 0, 0);
    mf_net_client_destroy(c);
    mmc_meta_stop(meta);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
#define T(_f) cmocka_unit_test_setup_teardown(_f, test_rpc_setup,              \
                                              test_rpc_teardown)
        T(test_rpc_hello_and_state),
        T(test_rpc_register_checks),
        T(test_rpc_register_media),
        T(test_rpc_hbm),
        T(test_rpc_misses),
        T(test_rpc_round),
        T(test_rpc_ack_later),
        T(test_rpc_batch),
        T(test_rpc_max_batch),
        T(test_rpc_malformed),
        T(test_rpc_disconnect),
        T(test_rpc_lost_reply),
        T(test_rpc_expiry),
        T(test_rpc_evict),
        T(test_rpc_ping),
        T(test_rpc_member_timeout),
        T(test_rpc_http_lifecycle),
#undef T
    };
    /* clang-format on */

    return tk_group_run(tests, NULL, NULL);
}
