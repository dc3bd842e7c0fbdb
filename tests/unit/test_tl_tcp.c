/*
 * Unit tests of what is the tcp transport's own (what every transport
 * must do is test_tl.c's), on 127.0.0.1: its capabilities and settings;
 * put and get of many sizes over one and four lanes and small chunks;
 * a server that refuses what a forged key asks outside its memory, and
 * requests crafted by hand on a raw socket (PUTV and GETV too); small
 * operations queued together share requests; a connection lost
 * mid-transfer fails what was in flight with a peer error and a later
 * operation reconnects; a lane whose send fails requeues; a forked child
 * holding the sockets; a small operation completes while a large one is
 * in flight; a server out of descriptors pauses accepting, logs that once
 * per interval, keeps serving its connections and accepts again once
 * descriptors are free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_pattern.h"
#include "tk_log.h"
#include "tk_proc.h"
#include "test_tl_comp.h"

#include "mem/mem.h"
#include "tl/tcp/tcp.h"
#include "tl/tl.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/sock.h"

#include <memfabric/mf_trace.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_MB      (1024ull * 1024ull)
#define TEST_SEG     (72 * TEST_MB)
#define TEST_WAIT_MS 120000

static const mf_tl_ops_t *ops = &mf_tl_tcp_ops;

/* An interface on loopback; lanes and chunk 0 keep the defaults.  The
 * settings go through the transport's own table, as the fabric's do. */
static mf_tl_iface_t *test_open(uint32_t lanes, uint64_t chunk)
{
    char settings[256] = "tcp.addr=127.0.0.1\n";
    mf_tl_params_t params;
    mf_tl_iface_t *iface;
    mf_status_t status;
    void *config;
    size_t len;

    len = strlen(settings);
    if (lanes != 0) {
        len += (size_t)snprintf(settings + len, sizeof(settings) - len,
                                "tcp.lanes=%u\n", lanes);
    }
    if (chunk != 0) {
        snprintf(settings + len, sizeof(settings) - len,
                 "tcp.chunk_size=%llu\n", (unsigned long long)chunk);
    }
    if (mf_tl_config_parse(ops, settings, &config) != MF_OK) {
        return NULL;
    }
    memset(&params, 0, sizeof(params));
    params.host_id = mf_host_id();
    params.config = config;
    status = ops->iface_open(&params, &iface);
    free(config);
    return status == MF_OK ? iface : NULL;
}

/* A server interface with a registered "segment" and a client with an
 * endpoint and remote key to it. */
typedef struct test_pair {
    mf_tl_iface_t *server;
    mf_tl_iface_t *client;
    uint8_t *mem;
    mf_mem_seg_t seg;
    mf_tl_memh_t *memh;
    mf_tl_ep_t *ep;
    mf_tl_rkey_t *rkey;
    uint8_t rkey_buf[128];
    size_t rkey_len;
} test_pair_t;

static void test_pair_open(test_pair_t *tp, uint32_t lanes, uint64_t chunk)
{
    mf_tl_mem_params_t mem_params = {0};
    uint8_t addr[128];
    size_t addr_len;

    memset(tp, 0, sizeof(*tp));
    tp->mem = malloc(TEST_SEG);
    assert_non_null(tp->mem);
    tp->seg.kind = MF_MEM_KIND_HOST;
    tp->seg.addr = tp->mem;
    tp->seg.size = TEST_SEG;
    tp->seg.fd = -1;
    tp->server = test_open(lanes, chunk);
    assert_non_null(tp->server);
    tp->client = test_open(lanes, chunk);
    assert_non_null(tp->client);
    mem_params.addr = tp->mem;
    mem_params.size = TEST_SEG;
    mem_params.seg = &tp->seg;
    assert_int_equal(ops->mem_reg(tp->server, &mem_params, &tp->memh), MF_OK);
    assert_int_equal(ops->rkey_pack(tp->server, tp->memh, tp->rkey_buf,
                                    sizeof(tp->rkey_buf), &tp->rkey_len),
                     MF_OK);
    assert_int_equal(
        ops->iface_addr_pack(tp->server, addr, sizeof(addr), &addr_len), MF_OK);
    assert_true(ops->iface_is_reachable(tp->client, addr, addr_len));
    assert_int_equal(ops->ep_create(tp->client, addr, addr_len, &tp->ep),
                     MF_OK);
    assert_int_equal(ops->rkey_unpack(tp->client, tp->rkey_buf, tp->rkey_len,
                                      (uint64_t)(uintptr_t)tp->mem, TEST_SEG,
                                      &tp->rkey),
                     MF_OK);
    assert_null(tp->rkey->addr);
}

static void test_pair_close(test_pair_t *tp)
{
    ops->rkey_release(tp->client, tp->rkey);
    ops->ep_destroy(tp->ep);
    ops->mem_dereg(tp->server, tp->memh);
    ops->iface_close(tp->client);
    ops->iface_close(tp->server);
    free(tp->mem);
}

static mf_status_t test_put(test_pair_t *tp, const void *buf, uint64_t off,
                            size_t size)
{
    test_comp_t tc;

    test_comp_init(&tc);
    return test_comp_wait(NULL, &tc,
                          ops->put(tp->ep, buf,
                                   (uint64_t)(uintptr_t)tp->mem + off, size,
                                   tp->rkey, &tc.super));
}

static mf_status_t test_get(test_pair_t *tp, void *buf, uint64_t off,
                            size_t size)
{
    test_comp_t tc;

    test_comp_init(&tc);
    return test_comp_wait(NULL, &tc,
                          ops->get(tp->ep, buf,
                                   (uint64_t)(uintptr_t)tp->mem + off, size,
                                   tp->rkey, &tc.super));
}

/* What tcp reports of itself, and settings its table refuses. */
static void test_iface(void **state)
{
    mf_tl_caps_t caps;
    mf_tl_iface_t *iface;

    /* processes in other network namespaces count as other hosts */
    assert_non_null(strstr(mf_host_id(), "/net:"));
    iface = test_open(0, 0);
    assert_non_null(iface);
    ops->iface_query(iface, &caps);
    /* host memory straight; device memory (staged) where its kind is
     * built (whether it works is the copy's question) */
    assert_true(caps.mem_kinds & MF_TL_MEM_KIND(MF_MEM_KIND_HOST));
    assert_int_equal((caps.mem_kinds & MF_TL_MEM_KIND(MF_MEM_KIND_CUDA)) != 0,
                     mf_mem_kind_built(MF_MEM_KIND_CUDA));
    assert_int_equal(caps.flags,
                     MF_TL_CAP_PUT | MF_TL_CAP_GET | MF_TL_CAP_USER_MEM);
    assert_true(mf_tl_tcp_iface_port(iface) != 0);
    assert_false(ops->iface_is_reachable(iface, "junk", 4));
    ops->iface_close(iface);

    mf_log_set_level(MF_LOG_OFF);
    assert_null(test_open(MF_TL_TCP_MAX_LANES + 1, 0));
    assert_null(test_open(1, 100));
    mf_log_set_level(MF_LOG_WARN);
}

/* put and get of 1 B .. 64 MiB, unaligned on both sides, over one lane
 * and over four with small chunks (test_tl.c runs the defaults) */
/* The count of the trace point name (0 if it recorded nothing). */
static uint64_t test_trace_count(const char *name)
{
    mf_trace_stat_t stats[64];
    size_t n = mf_trace_get(stats, MF_ARRAY_SIZE(stats));

    for (size_t i = 0; i < n && i < MF_ARRAY_SIZE(stats); i++) {
        if (strcmp(stats[i].name, name) == 0) {
            return stats[i].count;
        }
    }
    return 0;
}

/* With the tracer on, every operation counts once at its completion. */
static void test_trace_points(void **state)
{
    uint8_t buf[4096];
    test_pair_t tp;

    test_pair_open(&tp, 2, 0);
    mf_trace_clear();
    mf_trace_enable(true);
    memset(buf, 7, sizeof(buf));
    assert_int_equal(test_put(&tp, buf, 10, sizeof(buf)), MF_OK);
    assert_int_equal(test_put(&tp, buf, 9000, 100), MF_OK);
    assert_int_equal(test_get(&tp, buf, 10, sizeof(buf)), MF_OK);
    mf_trace_enable(false);
    assert_int_equal(test_trace_count("tl.tcp.put"), 2);
    assert_int_equal(test_trace_count("tl.tcp.get"), 1);
    /* off: nothing more is counted */
    assert_int_equal(test_get(&tp, buf, 10, sizeof(buf)), MF_OK);
    assert_int_equal(test_trace_count("tl.tcp.get"), 1);
    test_pair_close(&tp);
}

static void test_sizes(void **state)
{
    static const uint32_t lanes[] = {1, 4};
    static const size_t sizes[] = {1,           2,
                                   7,           100,
                                   4095,        4097,
                                   65537,       512 * 1024 - 1,
                                   512 * 1024,  512 * 1024 + 1,
                                   TEST_MB + 3, 3 * TEST_MB + 4097,
                                   8 * TEST_MB, 17 * TEST_MB + 11,
                                   64 * TEST_MB};
    uint8_t *src = malloc(64 * TEST_MB + 64), *dst = malloc(64 * TEST_MB + 64);
    test_pair_t tp;

    assert_non_null(src);
    assert_non_null(dst);
    tk_pattern_fill(src, 64 * TEST_MB + 64, 5, 0);
    for (size_t l = 0; l < MF_ARRAY_SIZE(lanes); l++) {
        test_pair_open(&tp, lanes[l], l == 1 ? 64 * 1024 : 0);
        memset(tp.mem, 0xee, TEST_SEG);
        for (size_t i = 0; i < MF_ARRAY_SIZE(sizes); i++) {
            size_t so = (i * 7 + l) % 61, ro = (i * 13 + l) % 4093 + 1;

            assert_int_equal(test_put(&tp, src + so, ro, sizes[i]), MF_OK);
            assert_memory_equal(tp.mem + ro, src + so, sizes[i]);
            assert_int_equal(tp.mem[ro - 1], 0xee);
            if (ro + sizes[i] < TEST_SEG) {
                assert_int_equal(tp.mem[ro + sizes[i]], 0xee);
            }
            memset(dst, 0, sizes[i] + 64);
            assert_int_equal(test_get(&tp, dst + (so ^ 5), ro, sizes[i]),
                             MF_OK);
            assert_memory_equal(dst + (so ^ 5), src + so, sizes[i]);
            if ((so ^ 5) > 0) {
                assert_int_equal(dst[(so ^ 5) - 1], 0);
            }
            assert_int_equal(dst[(so ^ 5) + sizes[i]], 0);
            memset(tp.mem + ro, 0xee, sizes[i]);
        }
        /* the last byte of the segment, and size 0 */
        assert_int_equal(test_put(&tp, src, TEST_SEG - 1, 1), MF_OK);
        assert_int_equal(tp.mem[TEST_SEG - 1], src[0]);
        assert_int_equal(test_put(&tp, src, 0, 0), MF_OK);
        test_pair_close(&tp);
    }
    free(src);
    free(dst);
}

/* A key unpacked with a larger size than the segment's passes the
 * client's check: the server still refuses what lies outside, also every
 * chunk of a large get across lanes, and the lanes stay usable. */
static void test_server_range(void **state)
{
    uint64_t base, big_size = 2 * TEST_SEG;
    uint8_t buf[4096], forged[128], *large;
    mf_tl_rkey_t *big;
    test_pair_t tp;
    test_comp_t tc;
    size_t i;

    test_pair_open(&tp, 2, 0);
    base = (uint64_t)(uintptr_t)tp.mem;
    memcpy(forged, tp.rkey_buf, tp.rkey_len);
    for (i = 0; i < 8; i++) {
        forged[tp.rkey_len - 8 + i] = (uint8_t)(big_size >> (8 * i));
    }
    assert_int_equal(
        ops->rkey_unpack(tp.client, forged, tp.rkey_len, base, big_size, &big),
        MF_OK);
    test_comp_init(&tc);
    assert_int_equal(test_comp_wait(NULL, &tc,
                                    ops->get(tp.ep, buf, base + TEST_SEG, 100,
                                             big, &tc.super)),
                     MF_ERR_OUT_OF_RANGE);
    test_comp_init(&tc);
    assert_int_equal(test_comp_wait(NULL, &tc,
                                    ops->put(tp.ep, buf, base + TEST_SEG - 10,
                                             sizeof(buf), big, &tc.super)),
                     MF_ERR_OUT_OF_RANGE);
    large = malloc(8 * TEST_MB);
    assert_non_null(large);
    test_comp_init(&tc);
    assert_int_equal(
        test_comp_wait(NULL, &tc,
                       ops->get(tp.ep, large, base + TEST_SEG - TEST_MB,
                                8 * TEST_MB, big, &tc.super)),
        MF_ERR_OUT_OF_RANGE);
    free(large);
    ops->rkey_release(tp.client, big);

    memset(buf, 0x5a, sizeof(buf));
    assert_int_equal(test_put(&tp, buf, 10, sizeof(buf)), MF_OK);
    assert_memory_equal(tp.mem + 10, buf, sizeof(buf));
    test_pair_close(&tp);
}

/*
 * User memory: private unless registered to be served; served buffers
 * (many: found by key at every request) are reachable at their own
 * addresses, and one deregistered is refused by its key.
 */
static void test_user_mem(void **state)
{
    enum { N = 200, LEN = 4096 };
    mf_tl_mem_params_t mp = {0};
    mf_tl_memh_t *priv, *memh[N];
    mf_tl_rkey_t *rkey[N];
    uint8_t key[128], buf[LEN], *mem;
    test_pair_t tp;
    test_comp_t tc;
    size_t len;

    (void)state;
    test_pair_open(&tp, 2, 0);
    mem = malloc((size_t)N * LEN);
    assert_non_null(mem);
    mp.addr = mem;
    mp.size = LEN;
    assert_int_equal(ops->mem_reg(tp.server, &mp, &priv), MF_OK);
    assert_int_equal(ops->rkey_pack(tp.server, priv, key, sizeof(key), &len),
                     MF_ERR_UNSUPPORTED);
    ops->mem_dereg(tp.server, priv);

    mp.serve = true;
    mp.kind = MF_MEM_KIND_HOST;
    for (int i = 0; i < N; i++) {
        mp.addr = mem + (size_t)i * LEN;
        assert_int_equal(ops->mem_reg(tp.server, &mp, &memh[i]), MF_OK);
        assert_int_equal(
            ops->rkey_pack(tp.server, memh[i], key, sizeof(key), &len), MF_OK);
        assert_int_equal(ops->rkey_unpack(tp.client, key, len,
                                          (uint64_t)(uintptr_t)mp.addr, LEN,
                                          &rkey[i]),
                         MF_OK);
    }
    for (int i = 0; i < N; i++) {
        uint64_t at = (uint64_t)(uintptr_t)(mem + (size_t)i * LEN);

        memset(buf, i, sizeof(buf));
        test_comp_init(&tc);
        assert_int_equal(
            test_comp_wait(NULL, &tc,
                           ops->put(tp.ep, buf, at, LEN, rkey[i], &tc.super)),
            MF_OK);
        assert_memory_equal(mem + (size_t)i * LEN, buf, LEN);
    }
    /* withdrawn: its key is refused, the others still served */
    ops->mem_dereg(tp.server, memh[7]);
    test_comp_init(&tc);
    assert_int_equal(
        test_comp_wait(NULL, &tc,
                       ops->get(tp.ep, buf,
                                (uint64_t)(uintptr_t)(mem + 7 * LEN), LEN,
                                rkey[7], &tc.super)),
        MF_ERR_PEER_REJECTED);
    test_comp_init(&tc);
    assert_int_equal(
        test_comp_wait(NULL, &tc,
                       ops->get(tp.ep, buf,
                                (uint64_t)(uintptr_t)(mem + 8 * LEN), LEN,
                                rkey[8], &tc.super)),
        MF_OK);
    assert_memory_equal(buf, mem + 8 * LEN, LEN);
    for (int i = 0; i < N; i++) {
        ops->rkey_release(tp.client, rkey[i]);
        if (i != 7) {
            ops->mem_dereg(tp.server, memh[i]);
        }
    }
    free(mem);
    test_pair_close(&tp);
}

/* ---------------------------------------------------- raw wire tests */

static void test_raw_write(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes; false at EOF. */
static bool test_raw_read(int fd, void *data, size_t len)
{
    uint8_t *p = data;

    while (len > 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t n;

        assert_int_equal(poll(&pfd, 1, TEST_WAIT_MS), 1);
        n = read(fd, p, len);
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* A raw connection to server's interface, its CHALLENGE read: the
 * server's nonce into nonce_s. */
static int test_raw_dial(mf_tl_iface_t *server,
                         uint8_t nonce_s[MF_TL_TCP_NONCE])
{
    uint8_t wire[MF_TL_TCP_HDR_SIZE];
    struct sockaddr_in sin;
    mf_tl_tcp_hdr_t hdr;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(mf_tl_tcp_iface_port(server));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    assert_true(test_raw_read(fd, wire, sizeof(wire)));
    mf_tl_tcp_hdr_decode(wire, &hdr);
    assert_true(mf_tl_tcp_challenge_check(&hdr));
    assert_true(test_raw_read(fd, nonce_s, MF_TL_TCP_NONCE));
    return fd;
}

/* Says HELLO on fd as lane of endpoint id, with the proof of secret (the
 * server's, or another for a client that does not know it); this lane's
 * nonce into nonce_c. */
static void test_raw_hello(int fd, const uint8_t *secret,
                           const uint8_t nonce_s[MF_TL_TCP_NONCE], uint64_t id,
                           uint64_t lane, uint8_t nonce_c[MF_TL_TCP_NONCE])
{
    mf_tl_tcp_hdr_t hdr = {MF_TL_TCP_MAGIC,
                           MF_TL_TCP_VERSION,
                           MF_TL_TCP_OP_HELLO,
                           0,
                           0,
                           0,
                           0,
                           id,
                           lane,
                           MF_TL_TCP_HELLO_LEN};
    uint8_t wire[MF_TL_TCP_HDR_SIZE + MF_TL_TCP_HELLO_LEN];

    tk_pattern_fill(nonce_c, MF_TL_TCP_NONCE, id ^ lane, 0);
    mf_tl_tcp_hdr_encode(&hdr, wire);
    memcpy(wire + MF_TL_TCP_HDR_SIZE, nonce_c, MF_TL_TCP_NONCE);
    mf_tl_tcp_proof(secret, false, nonce_s, nonce_c, id, lane,
                    wire + MF_TL_TCP_HDR_SIZE + MF_TL_TCP_NONCE);
    test_raw_write(fd, wire, sizeof(wire));
}

/* Reads the HELLO_ACK to a HELLO, and checks the server's proof. */
static void test_raw_hello_ack(int fd, const uint8_t *secret,
                               const uint8_t nonce_s[MF_TL_TCP_NONCE],
                               const uint8_t nonce_c[MF_TL_TCP_NONCE],
                               uint64_t id, uint64_t lane)
{
    uint8_t wire[MF_TL_TCP_HDR_SIZE], proof[MF_TL_TCP_MAC],
        expected[MF_TL_TCP_MAC];
    mf_tl_tcp_hdr_t hdr;

    assert_true(test_raw_read(fd, wire, sizeof(wire)));
    mf_tl_tcp_hdr_decode(wire, &hdr);
    assert_true(mf_tl_tcp_hello_ack_check(&hdr));
    assert_true(test_raw_read(fd, proof, sizeof(proof)));
    mf_tl_tcp_proof(secret, true, nonce_s, nonce_c, id, lane, expected);
    assert_true(mf_tl_tcp_proof_equal(proof, expected));
}

/* A raw connection to server's interface that passed the handshake. */
static int test_raw_connect(mf_tl_iface_t *server)
{
    static uint64_t next_id = 0x7e57000;
    const uint8_t *secret = mf_tl_tcp_iface_secret(server);
    uint8_t nonce_s[MF_TL_TCP_NONCE], nonce_c[MF_TL_TCP_NONCE];
    uint64_t id = ++next_id;
    int fd = test_raw_dial(server, nonce_s);

    test_raw_hello(fd, secret, nonce_s, id, 0, nonce_c);
    test_raw_hello_ack(fd, secret, nonce_s, nonce_c, id, 0);
    return fd;
}

static void test_raw_request(int fd, uint8_t op, uint64_t req_id, uint64_t key,
                             uint64_t addr, uint64_t len)
{
    mf_tl_tcp_hdr_t hdr = {MF_TL_TCP_MAGIC,
                           MF_TL_TCP_VERSION,
                           op,
                           0,
                           0,
                           0,
                           req_id,
                           key,
                           addr,
                           len};
    uint8_t wire[MF_TL_TCP_HDR_SIZE];

    mf_tl_tcp_hdr_encode(&hdr, wire);
    test_raw_write(fd, wire, sizeof(wire));
}

static void test_raw_response(int fd, mf_tl_tcp_hdr_t *hdr)
{
    uint8_t wire[MF_TL_TCP_HDR_SIZE];

    assert_true(test_raw_read(fd, wire, sizeof(wire)));
    mf_tl_tcp_hdr_decode(wire, hdr);
    assert_int_equal(hdr->magic, MF_TL_TCP_MAGIC);
    assert_int_equal(hdr->version, MF_TL_TCP_VERSION);
}

/* requests crafted by hand: refused with an error, the connection lives;
 * a broken frame closes it */
static void test_raw_requests(void **state)
{
    uint8_t data[1000], back[1000];
    mf_tl_tcp_hdr_t hdr;
    uint64_t base, key;
    test_pair_t tp;
    int fd;

    test_pair_open(&tp, 1, 0);
    base = (uint64_t)(uintptr_t)tp.mem;
    key = mf_tl_tcp_memh_key(tp.memh);
    tk_pattern_fill(data, sizeof(data), 3, 0);
    fd = test_raw_connect(tp.server);

    /* a wrong key */
    test_raw_request(fd, MF_TL_TCP_OP_GET, 1, key ^ 1, base, 16);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.op, MF_TL_TCP_OP_GET_DATA);
    assert_int_equal(hdr.req_id, 1);
    assert_int_equal(hdr.status, MF_ERR_PEER_REJECTED);
    assert_int_equal(hdr.len, 0);
    /* below, across the end, wrapping around */
    test_raw_request(fd, MF_TL_TCP_OP_GET, 2, key, base - 1, 16);
    test_raw_request(fd, MF_TL_TCP_OP_GET, 3, key, base + TEST_SEG - 8, 16);
    test_raw_request(fd, MF_TL_TCP_OP_GET, 4, key, UINT64_MAX - 4, 16);
    for (uint64_t id = 2; id <= 4; id++) {
        test_raw_response(fd, &hdr);
        assert_int_equal(hdr.req_id, id);
        assert_int_equal(hdr.status, MF_ERR_OUT_OF_RANGE);
        assert_int_equal(hdr.len, 0);
    }
    /* a put outside: its data is read and dropped, then refused */
    test_raw_request(fd, MF_TL_TCP_OP_PUT, 5, key, base + TEST_SEG - 10,
                     sizeof(data));
    test_raw_write(fd, data, sizeof(data));
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.op, MF_TL_TCP_OP_PUT_ACK);
    assert_int_equal(hdr.req_id, 5);
    assert_int_equal(hdr.status, MF_ERR_OUT_OF_RANGE);
    /* the stream is still in step: a good put and get */
    test_raw_request(fd, MF_TL_TCP_OP_PUT, 6, key, base + 100, sizeof(data));
    test_raw_write(fd, data, sizeof(data));
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 6);
    assert_int_equal(hdr.status, MF_OK);
    assert_memory_equal(tp.mem + 100, data, sizeof(data));
    test_raw_request(fd, MF_TL_TCP_OP_GET, 7, key, base + 100, sizeof(data));
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 7);
    assert_int_equal(hdr.status, MF_OK);
    assert_int_equal(hdr.len, sizeof(data));
    assert_true(test_raw_read(fd, back, sizeof(back)));
    assert_memory_equal(back, data, sizeof(data));

    /* framing errors: the server hangs up */
    mf_log_set_level(MF_LOG_ERROR);
    test_raw_request(fd, 99, 8, key, base, 1);
    assert_false(test_raw_read(fd, back, 1));
    close(fd);
    fd = test_raw_connect(tp.server);
    test_raw_request(fd, MF_TL_TCP_OP_PUT, 9, key, base, 1ull << 40);
    assert_false(test_raw_read(fd, back, 1));
    close(fd);
    fd = test_raw_connect(tp.server);
    memset(data, 0xff, MF_TL_TCP_HDR_SIZE);
    test_raw_write(fd, data, MF_TL_TCP_HDR_SIZE);
    assert_false(test_raw_read(fd, back, 1));
    close(fd);
    /* a peer that leaves half a header behind */
    fd = test_raw_connect(tp.server);
    test_raw_write(fd, data, 10);
    close(fd);
    mf_log_set_level(MF_LOG_WARN);

    /* the server still serves */
    assert_int_equal(test_get(&tp, back, 100, 1000), MF_OK);
    assert_memory_equal(back, tp.mem + 100, 1000);
    test_pair_close(&tp);
}

/* Small operations queued together go out as PUTV and GETV requests (the
 * client's threads are held while they are posted, so they all queue):
 * each lands where its own says, and a put and a get, or another key,
 * end a request. */
#define TEST_GATHER_OPS 300

static void test_gather_run(test_pair_t *tp, uint8_t *local, bool put,
                            const uint64_t *offs, const size_t *sizes,
                            size_t first, size_t end)
{
    static test_comp_t tcs[TEST_GATHER_OPS];
    uint64_t base = (uint64_t)(uintptr_t)tp->mem;
    size_t i;

    mf_tl_tcp_iface_hold(tp->client);
    for (i = first; i < end; i++) {
        test_comp_init(&tcs[i]);
        mf_status_t st = put ? ops->put(tp->ep, local + offs[i], base + offs[i],
                                        sizes[i], tp->rkey, &tcs[i].super)
                             : ops->get(tp->ep, local + offs[i], base + offs[i],
                                        sizes[i], tp->rkey, &tcs[i].super);
        assert_int_equal(st, MF_INPROGRESS);
    }
    mf_tl_tcp_iface_release(tp->client);
    for (i = first; i < end; i++) {
        assert_int_equal(test_comp_wait(NULL, &tcs[i], MF_INPROGRESS), MF_OK);
        assert_int_equal(test_comp_calls(&tcs[i]), 1);
    }
}

static void test_gather(void **state)
{
    static uint64_t offs[TEST_GATHER_OPS];
    static size_t sizes[TEST_GATHER_OPS];
    const size_t span = 8 * TEST_MB;
    uint64_t requests, pieces, requests0, pieces0;
    uint8_t *src, *dst;
    uint64_t off = 0;
    test_pair_t tp;
    size_t i;

    test_pair_open(&tp, 2, 64 * 1024);
    src = malloc(span);
    dst = calloc(1, span);
    assert_non_null(src);
    assert_non_null(dst);
    tk_pattern_fill(src, span, 11, 0);
    memset(tp.mem, 0, span);
    /* scattered pieces of 1 byte to 6 KiB, every 7th one larger than a
     * chunk (it goes its own way, in chunks) */
    for (i = 0; i < TEST_GATHER_OPS; i++) {
        sizes[i] = i % 7 == 6 ? 100 * 1024 + i : 1 + (i * 2654435761u) % 6144;
        offs[i] = off + i % 13;
        off = offs[i] + sizes[i] + 64;
    }
    assert_true(off < span);

    mf_tl_tcp_iface_vec_stats(tp.server, &requests0, &pieces0);
    test_gather_run(&tp, src, true, offs, sizes, 0, TEST_GATHER_OPS);
    mf_tl_tcp_iface_vec_stats(tp.server, &requests, &pieces);
    /* the small ones (6 of every 7) travelled in vectors: only the last
     * may have gone alone */
    assert_true(pieces - pieces0 >= TEST_GATHER_OPS / 7 * 6 - 1);
    assert_true(requests - requests0 <= (pieces - pieces0) / 2);
    for (i = 0; i < TEST_GATHER_OPS; i++) {
        assert_memory_equal(tp.mem + offs[i], src + offs[i], sizes[i]);
        /* the gaps between pieces stay untouched */
        assert_int_equal(tp.mem[offs[i] + sizes[i]], 0);
    }

    mf_tl_tcp_iface_vec_stats(tp.server, &requests0, &pieces0);
    test_gather_run(&tp, dst, false, offs, sizes, 0, TEST_GATHER_OPS);
    mf_tl_tcp_iface_vec_stats(tp.server, &requests, &pieces);
    assert_true(pieces - pieces0 >= TEST_GATHER_OPS / 7 * 6 - 1);
    for (i = 0; i < TEST_GATHER_OPS; i++) {
        assert_memory_equal(dst + offs[i], src + offs[i], sizes[i]);
        assert_int_equal(dst[offs[i] + sizes[i]], 0);
    }

    /* puts and gets taking turns: each request carries one kind */
    memset(dst, 0, span);
    mf_tl_tcp_iface_hold(tp.client);
    {
        static test_comp_t tcs[TEST_GATHER_OPS];
        uint64_t base = (uint64_t)(uintptr_t)tp.mem;

        for (i = 0; i < TEST_GATHER_OPS; i++) {
            test_comp_init(&tcs[i]);
            /* even: write the pattern shifted; odd: read back what the
             * first pass wrote */
            assert_int_equal(
                i % 2 == 0 ? ops->put(tp.ep, src + offs[i] + 1, base + offs[i],
                                      sizes[i], tp.rkey, &tcs[i].super)
                           : ops->get(tp.ep, dst + offs[i], base + offs[i],
                                      sizes[i], tp.rkey, &tcs[i].super),
                MF_INPROGRESS);
        }
        mf_tl_tcp_iface_release(tp.client);
        for (i = 0; i < TEST_GATHER_OPS; i++) {
            assert_int_equal(test_comp_wait(NULL, &tcs[i], MF_INPROGRESS),
                             MF_OK);
        }
    }
    for (i = 0; i < TEST_GATHER_OPS; i++) {
        if (i % 2 == 0) {
            assert_memory_equal(tp.mem + offs[i], src + offs[i] + 1, sizes[i]);
        } else {
            assert_memory_equal(dst + offs[i], src + offs[i], sizes[i]);
        }
    }
    free(src);
    free(dst);
    test_pair_close(&tp);
}

/* A PUTV or GETV crafted by hand: count pieces (addr, len) after the
 * header. */
static void test_raw_vec(int fd, uint8_t op, uint64_t req_id, uint64_t key,
                         const uint64_t *addrs, const uint64_t *lens,
                         uint32_t count, uint64_t len)
{
    mf_tl_tcp_hdr_t hdr = {MF_TL_TCP_MAGIC,
                           MF_TL_TCP_VERSION,
                           op,
                           0,
                           0,
                           count,
                           req_id,
                           key,
                           addrs[0],
                           len};
    uint8_t wire[MF_TL_TCP_HDR_SIZE + MF_TL_TCP_VEC_MAX * MF_TL_TCP_VEC_ENTRY];

    mf_tl_tcp_hdr_encode(&hdr, wire);
    for (uint32_t i = 0; i < count; i++) {
        mf_tl_tcp_vec_encode(addrs[i], lens[i],
                             wire + MF_TL_TCP_HDR_SIZE +
                                 i * MF_TL_TCP_VEC_ENTRY);
    }
    test_raw_write(fd, wire,
                   MF_TL_TCP_HDR_SIZE + (size_t)count * MF_TL_TCP_VEC_ENTRY);
}

/* PUTV and GETV crafted by hand: served piece by piece; a piece outside
 * the segment or a table that does not add up refuses the whole request
 * (a PUTV's data is read and dropped, nothing of it lands) and the
 * connection goes on; a piece count out of range closes it. */
static void test_raw_vectors(void **state)
{
    uint8_t data[3000], back[3000];
    uint64_t addrs[MF_TL_TCP_VEC_MAX], lens[MF_TL_TCP_VEC_MAX];
    mf_tl_tcp_hdr_t hdr;
    uint64_t base, key;
    test_pair_t tp;
    int fd;

    test_pair_open(&tp, 1, 0);
    base = (uint64_t)(uintptr_t)tp.mem;
    key = mf_tl_tcp_memh_key(tp.memh);
    tk_pattern_fill(data, sizeof(data), 5, 0);
    memset(tp.mem, 0, 1 << 20);
    fd = test_raw_connect(tp.server);

    /* three pieces, out of address order */
    addrs[0] = base + 5000, lens[0] = 1000;
    addrs[1] = base + 100, lens[1] = 1500;
    addrs[2] = base + 9000, lens[2] = 500;
    test_raw_vec(fd, MF_TL_TCP_OP_PUTV, 1, key, addrs, lens, 3, 3000);
    test_raw_write(fd, data, sizeof(data));
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.op, MF_TL_TCP_OP_PUT_ACK);
    assert_int_equal(hdr.req_id, 1);
    assert_int_equal(hdr.status, MF_OK);
    assert_int_equal(hdr.len, 0);
    assert_memory_equal(tp.mem + 5000, data, 1000);
    assert_memory_equal(tp.mem + 100, data + 1000, 1500);
    assert_memory_equal(tp.mem + 9000, data + 2500, 500);
    test_raw_vec(fd, MF_TL_TCP_OP_GETV, 2, key, addrs, lens, 3, 3000);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.op, MF_TL_TCP_OP_GET_DATA);
    assert_int_equal(hdr.req_id, 2);
    assert_int_equal(hdr.status, MF_OK);
    assert_int_equal(hdr.len, 3000);
    assert_true(test_raw_read(fd, back, 3000));
    assert_memory_equal(back, data, 3000);

    /* one piece past the end: nothing lands, not even the good ones */
    addrs[1] = base + TEST_SEG - 10;
    test_raw_vec(fd, MF_TL_TCP_OP_PUTV, 3, key, addrs, lens, 3, 3000);
    memset(back, 0x5a, sizeof(back));
    test_raw_write(fd, back, sizeof(back));
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 3);
    assert_int_equal(hdr.status, MF_ERR_OUT_OF_RANGE);
    assert_memory_equal(tp.mem + 5000, data, 1000);
    test_raw_vec(fd, MF_TL_TCP_OP_GETV, 4, key, addrs, lens, 3, 3000);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 4);
    assert_int_equal(hdr.status, MF_ERR_OUT_OF_RANGE);
    assert_int_equal(hdr.len, 0);
    /* a table that does not add up, and an empty piece */
    addrs[1] = base + 100;
    test_raw_vec(fd, MF_TL_TCP_OP_PUTV, 5, key, addrs, lens, 3, 2000);
    test_raw_write(fd, back, 2000);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 5);
    assert_int_equal(hdr.status, MF_ERR_PROTO);
    lens[2] = 0;
    test_raw_vec(fd, MF_TL_TCP_OP_GETV, 6, key, addrs, lens, 3, 2500);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 6);
    assert_int_equal(hdr.status, MF_ERR_PROTO);
    /* a wrong key */
    lens[2] = 500;
    test_raw_vec(fd, MF_TL_TCP_OP_GETV, 7, key ^ 1, addrs, lens, 3, 3000);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 7);
    assert_int_equal(hdr.status, MF_ERR_PEER_REJECTED);
    /* still in step, and the refused ones left the memory alone */
    test_raw_vec(fd, MF_TL_TCP_OP_GETV, 8, key, addrs, lens, 3, 3000);
    test_raw_response(fd, &hdr);
    assert_int_equal(hdr.req_id, 8);
    assert_int_equal(hdr.status, MF_OK);
    assert_true(test_raw_read(fd, back, 3000));
    assert_memory_equal(back, data, 3000);

    /* piece counts out of range break the framing: the server hangs up */
    mf_log_set_level(MF_LOG_ERROR);
    test_raw_vec(fd, MF_TL_TCP_OP_GETV, 9, key, addrs, lens, 0, 0);
    assert_false(test_raw_read(fd, back, 1));
    close(fd);
    fd = test_raw_connect(tp.server);
    test_raw_request(fd, MF_TL_TCP_OP_GETV, 10, key, base, 16);
    assert_false(test_raw_read(fd, back, 1));
    close(fd);
    fd = test_raw_connect(tp.server);
    {
        mf_tl_tcp_hdr_t big = {MF_TL_TCP_MAGIC,
                               MF_TL_TCP_VERSION,
                               MF_TL_TCP_OP_PUTV,
                               0,
                               0,
                               MF_TL_TCP_VEC_MAX + 1,
                               11,
                               key,
                               base,
                               16};
        uint8_t wire[MF_TL_TCP_HDR_SIZE];

        mf_tl_tcp_hdr_encode(&big, wire);
        test_raw_write(fd, wire, sizeof(wire));
        assert_false(test_raw_read(fd, back, 1));
    }
    close(fd);
    mf_log_set_level(MF_LOG_WARN);

    assert_int_equal(test_get(&tp, back, 100, 1500), MF_OK);
    assert_memory_equal(back, data + 1000, 1500);
    test_pair_close(&tp);
}

/* A lane's new connection (HELLO of the same endpoint and lane) closes
 * the one before it at the server before its ACK: the rest of a PUT the
 * old one was receiving never lands, not over a later write of the same
 * bytes.  With lanes workers, the old connection is on the same worker
 * (1) or another (2). */
static void test_hello_supersedes_run(uint32_t lanes)
{
    enum { N = 64 * 1024, OFF = 4096 };
    const uint64_t id = 0x5eed1234abcdull;
    uint8_t *one = malloc(N), *two = malloc(N), back[1];
    uint8_t nonce_s[MF_TL_TCP_NONCE], nonce_c[MF_TL_TCP_NONCE];
    const uint8_t *secret;
    mf_tl_tcp_hdr_t hdr;
    uint64_t base, key;
    test_pair_t tp;
    int a, b, c;

    assert_non_null(one);
    assert_non_null(two);
    test_pair_open(&tp, lanes, 0);
    base = (uint64_t)(uintptr_t)tp.mem;
    key = mf_tl_tcp_memh_key(tp.memh);
    secret = mf_tl_tcp_iface_secret(tp.server);
    tk_pattern_fill(one, N, 1, 0);
    tk_pattern_fill(two, N, 2, 0);

    a = test_raw_dial(tp.server, nonce_s);
    test_raw_hello(a, secret, nonce_s, id, 0, nonce_c);
    test_raw_hello_ack(a, secret, nonce_s, nonce_c, id, 0);
    /* a put the old connection is in the middle of */
    test_raw_request(a, MF_TL_TCP_OP_PUT, 1, key, base + OFF, N);
    test_raw_write(a, one, N / 2);

    b = test_raw_dial(tp.server, nonce_s);
    test_raw_hello(b, secret, nonce_s, id, 0, nonce_c);
    test_raw_hello_ack(b, secret, nonce_s, nonce_c, id, 0);
    /* the old one is closed: what it still sends is dropped */
    assert_false(test_raw_read(a, back, 1));
    (void)send(a, one + N / 2, N / 2, MSG_NOSIGNAL);
    close(a);
    test_raw_request(b, MF_TL_TCP_OP_PUT, 2, key, base + OFF, N);
    test_raw_write(b, two, N);
    test_raw_response(b, &hdr);
    assert_int_equal(hdr.op, MF_TL_TCP_OP_PUT_ACK);
    assert_int_equal(hdr.req_id, 2);
    assert_int_equal(hdr.status, MF_OK);
    assert_memory_equal(tp.mem + OFF, two, N);

    /* a bad HELLO, and a second one, break the protocol */
    mf_log_set_level(MF_LOG_ERROR);
    c = test_raw_dial(tp.server, nonce_s);
    test_raw_request(c, MF_TL_TCP_OP_HELLO, 0, 0, 0, 0);
    assert_false(test_raw_read(c, back, 1));
    close(c);
    test_raw_hello(b, secret, nonce_s, id, 0, nonce_c);
    assert_false(test_raw_read(b, back, 1));
    close(b);
    mf_log_set_level(MF_LOG_WARN);

    /* the endpoint's own lanes are served as ever */
    assert_int_equal(test_get(&tp, back, OFF, 1), MF_OK);
    assert_int_equal(back[0], two[0]);
    test_pair_close(&tp);
    free(one);
    free(two);
}

/* Only members reach a segment: a connection that asks before its
 * HELLO, or says HELLO without knowing the interface's secret, is closed
 * unserved and logged; an endpoint made from an address whose secret was
 * changed cannot copy; the pool's own endpoint goes on. */
static void test_lane_auth(void **state)
{
    uint8_t nonce_s[MF_TL_TCP_NONCE], nonce_c[MF_TL_TCP_NONCE];
    uint8_t addr[128], wrong[MF_TL_TCP_SECRET], back[16];
    mf_tl_tcp_hdr_t hdr;
    mf_tl_ep_t *ep;
    test_comp_t tc;
    test_pair_t tp;
    tk_log_t log;
    size_t addr_len;
    uint64_t key;
    int fd, before, unproven;

    test_pair_open(&tp, 1, 0);
    key = mf_tl_tcp_memh_key(tp.memh);
    tk_log_start(&log, 0);
    /* the first refusal of an interface is a warning, later ones debug */
    mf_log_set_level(MF_LOG_DEBUG);
    before = tk_log_watch(&log, "a request before its HELLO", -1);
    unproven = tk_log_watch(&log, "does not prove it knows", -1);

    /* a GET before HELLO: closed, nothing served */
    fd = test_raw_dial(tp.server, nonce_s);
    test_raw_request(fd, MF_TL_TCP_OP_GET, 1, key, (uint64_t)(uintptr_t)tp.mem,
                     sizeof(back));
    assert_false(test_raw_read(fd, &hdr, 1));
    close(fd);
    assert_int_equal(tk_log_watched(&log, before), 1);

    /* a HELLO with the proof of another secret */
    memcpy(wrong, mf_tl_tcp_iface_secret(tp.server), sizeof(wrong));
    wrong[0] ^= 1;
    fd = test_raw_dial(tp.server, nonce_s);
    test_raw_hello(fd, wrong, nonce_s, 42, 0, nonce_c);
    assert_false(test_raw_read(fd, &hdr, 1));
    close(fd);
    assert_int_equal(tk_log_watched(&log, unproven), 1);

    /* an endpoint whose address carries another secret */
    assert_int_equal(
        ops->iface_addr_pack(tp.server, addr, sizeof(addr), &addr_len), MF_OK);
    assert_true(addr_len >= 12 + MF_TL_TCP_SECRET);
    addr[12] ^= 1;
    assert_int_equal(ops->ep_create(tp.client, addr, addr_len, &ep), MF_OK);
    test_comp_init(&tc);
    tk_log_allow_errors(&log, true);
    assert_true(mf_status_is_peer_error(
        test_comp_wait(NULL, &tc,
                       ops->get(ep, back, (uint64_t)(uintptr_t)tp.mem,
                                sizeof(back), tp.rkey, &tc.super))));
    tk_log_allow_errors(&log, false);
    assert_true(tk_log_watched(&log, unproven) >= 2);
    ops->ep_destroy(ep);
    mf_log_set_level(MF_LOG_WARN);
    tk_log_stop(&log);

    /* the member's endpoint is served as ever */
    tk_pattern_fill(tp.mem, sizeof(back), 9, 0);
    assert_int_equal(test_get(&tp, back, 0, sizeof(back)), MF_OK);
    assert_true(tk_pattern_check(back, sizeof(back), 9, 0) < 0);
    test_pair_close(&tp);
}

static void test_hello_supersedes(void **state)
{
    test_hello_supersedes_run(1);
    test_hello_supersedes_run(2);
}

/* --------------------------------------------------------- fake peers */

#define TEST_FAKE_BASE 0x10000000ull
#define TEST_FAKE_SIZE (64 * TEST_MB)

/* A fake peer: a listening socket on loopback whose connections the test
 * accepts and answers by hand, and a client interface of one lane (one
 * worker runs every endpoint) holding the key such a peer would publish
 * for TEST_FAKE_SIZE bytes at TEST_FAKE_BASE. */
typedef struct test_fake {
    int lfd;
    uint64_t key;
    uint8_t secret[MF_TL_TCP_SECRET];
    uint8_t addr[12 + MF_TL_TCP_SECRET];
    mf_tl_iface_t *client;
    mf_tl_rkey_t *rkey;
} test_fake_t;

static void test_fake_open(test_fake_t *tf, uint64_t key)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    uint8_t rkey[29];

    tf->key = key;
    tf->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(tf->lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(tf->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(tf->lfd, 8), 0);
    assert_int_equal(getsockname(tf->lfd, (struct sockaddr *)&sin, &sl), 0);
    /* the formats tcp_iface.c packs: "FMTA" v2, IPv4, port, address,
     * secret; "FMTK" v1, key token, base, size */
    tk_pattern_fill(tf->secret, sizeof(tf->secret), key, 0);
    mf_le32_store(tf->addr, 0x41544d46u);
    tf->addr[4] = 2;
    tf->addr[5] = 4;
    mf_le16_store(tf->addr + 6, ntohs(sin.sin_port));
    memcpy(tf->addr + 8, &sin.sin_addr.s_addr, 4);
    memcpy(tf->addr + 12, tf->secret, sizeof(tf->secret));
    mf_le32_store(rkey, 0x4b544d46u);
    rkey[4] = 1;
    mf_le64_store(rkey + 5, key);
    mf_le64_store(rkey + 13, TEST_FAKE_BASE);
    mf_le64_store(rkey + 21, TEST_FAKE_SIZE);

    tf->client = test_open(1, 0);
    assert_non_null(tf->client);
    assert_int_equal(ops->rkey_unpack(tf->client, rkey, sizeof(rkey),
                                      TEST_FAKE_BASE, TEST_FAKE_SIZE,
                                      &tf->rkey),
                     MF_OK);
}

static mf_tl_ep_t *test_fake_ep(test_fake_t *tf)
{
    mf_tl_ep_t *ep;

    assert_int_equal(
        ops->ep_create(tf->client, tf->addr, sizeof(tf->addr), &ep), MF_OK);
    return ep;
}

/* Accepts the client's next lane, answers its HELLO as a server does and
 * reads its first request header. */
static int test_fake_accept(test_fake_t *tf, mf_tl_tcp_hdr_t *hdr)
{
    uint8_t wire[MF_TL_TCP_HDR_SIZE + MF_TL_TCP_HELLO_LEN];
    uint8_t nonce_s[MF_TL_TCP_NONCE], expected[MF_TL_TCP_MAC];
    mf_tl_tcp_hdr_t ch = {MF_TL_TCP_MAGIC,
                          MF_TL_TCP_VERSION,
                          MF_TL_TCP_OP_CHALLENGE,
                          0,
                          0,
                          0,
                          0,
                          0,
                          0,
                          MF_TL_TCP_NONCE};
    int fd = accept(tf->lfd, NULL, NULL);

    assert_true(fd >= 0);
    /* the handshake of tcp.h, as the server side does it */
    tk_pattern_fill(nonce_s, sizeof(nonce_s), (uint64_t)fd, 0);
    mf_tl_tcp_hdr_encode(&ch, wire);
    memcpy(wire + MF_TL_TCP_HDR_SIZE, nonce_s, sizeof(nonce_s));
    test_raw_write(fd, wire, MF_TL_TCP_HDR_SIZE + MF_TL_TCP_NONCE);
    assert_true(test_raw_read(fd, wire, sizeof(wire)));
    mf_tl_tcp_hdr_decode(wire, hdr);
    assert_int_equal(hdr->op, MF_TL_TCP_OP_HELLO);
    assert_null(mf_tl_tcp_req_check(hdr));
    mf_tl_tcp_proof(tf->secret, false, nonce_s, wire + MF_TL_TCP_HDR_SIZE,
                    hdr->key, hdr->addr, expected);
    assert_true(mf_tl_tcp_proof_equal(
        wire + MF_TL_TCP_HDR_SIZE + MF_TL_TCP_NONCE, expected));
    mf_tl_tcp_proof(tf->secret, true, nonce_s, wire + MF_TL_TCP_HDR_SIZE,
                    hdr->key, hdr->addr, expected);
    hdr->op = MF_TL_TCP_OP_HELLO_ACK;
    hdr->key = 0;
    hdr->addr = 0;
    hdr->len = MF_TL_TCP_MAC;
    mf_tl_tcp_hdr_encode(hdr, wire);
    memcpy(wire + MF_TL_TCP_HDR_SIZE, expected, sizeof(expected));
    test_raw_write(fd, wire, MF_TL_TCP_HDR_SIZE + MF_TL_TCP_MAC);
    assert_true(test_raw_read(fd, wire, MF_TL_TCP_HDR_SIZE));
    mf_tl_tcp_hdr_decode(wire, hdr);
    assert_int_equal(hdr->key, tf->key);
    return fd;
}

/* Reads the size bytes of the put whose header was read into data, and
 * acknowledges it. */
static void test_fake_put_ack(int fd, mf_tl_tcp_hdr_t *hdr, void *data,
                              size_t size)
{
    uint8_t wire[MF_TL_TCP_HDR_SIZE];

    assert_int_equal(hdr->op, MF_TL_TCP_OP_PUT);
    assert_int_equal(hdr->len, size);
    assert_true(test_raw_read(fd, data, size));
    hdr->op = MF_TL_TCP_OP_PUT_ACK;
    hdr->len = 0;
    mf_tl_tcp_hdr_encode(hdr, wire);
    test_raw_write(fd, wire, sizeof(wire));
}

/* The peer stops listening: new connections are refused. */
static void test_fake_unlisten(test_fake_t *tf)
{
    close(tf->lfd);
    tf->lfd = -1;
}

static void test_fake_close(test_fake_t *tf)
{
    ops->rkey_release(tf->client, tf->rkey);
    ops->iface_close(tf->client);
    if (tf->lfd >= 0) {
        close(tf->lfd);
    }
}

/* A fake peer: the client's lane to it breaks mid-transfer. */
static void test_conn_lost_raw(void **state)
{
    uint8_t *buf = malloc(4 * TEST_MB), got[1000];
    uint8_t wire[MF_TL_TCP_HDR_SIZE];
    const uint64_t base = TEST_FAKE_BASE;
    mf_tl_tcp_hdr_t hdr;
    mf_status_t status;
    test_fake_t tf;
    test_comp_t tc;
    mf_tl_ep_t *ep;
    int fd;

    assert_non_null(buf);
    test_fake_open(&tf, 77);
    ep = test_fake_ep(&tf);

    /* a get: the peer reads the request, sends half the data and dies */
    test_comp_init(&tc);
    status = ops->get(ep, buf, base + 5, 4 * TEST_MB, tf.rkey, &tc.super);
    assert_int_equal(status, MF_INPROGRESS);
    fd = test_fake_accept(&tf, &hdr);
    assert_int_equal(hdr.op, MF_TL_TCP_OP_GET);
    assert_int_equal(hdr.addr, base + 5);
    hdr.op = MF_TL_TCP_OP_GET_DATA;
    hdr.status = MF_OK;
    mf_tl_tcp_hdr_encode(&hdr, wire);
    test_raw_write(fd, wire, sizeof(wire));
    test_raw_write(fd, buf + 2 * TEST_MB, hdr.len / 2); /* any bytes */
    close(fd);
    status = test_comp_wait(NULL, &tc, status);
    assert_true(mf_status_is_peer_error(status));
    assert_int_equal(atomic_load(&tc.calls), 1);

    /* the next put reconnects; the peer answers properly this time */
    memset(buf, 0x11, sizeof(got));
    test_comp_init(&tc);
    status = ops->put(ep, buf, base, sizeof(got), tf.rkey, &tc.super);
    assert_int_equal(status, MF_INPROGRESS);
    fd = test_fake_accept(&tf, &hdr);
    test_fake_put_ack(fd, &hdr, got, sizeof(got));
    assert_memory_equal(got, buf, sizeof(got));
    assert_int_equal(test_comp_wait(NULL, &tc, status), MF_OK);

    /* a response nobody asked for: protocol error, the op fails */
    mf_log_set_level(MF_LOG_OFF);
    test_comp_init(&tc);
    status = ops->get(ep, buf, base, 10, tf.rkey, &tc.super);
    assert_int_equal(status, MF_INPROGRESS);
    assert_true(test_raw_read(fd, wire, sizeof(wire)));
    mf_tl_tcp_hdr_decode(wire, &hdr);
    hdr.req_id += 1000;
    hdr.op = MF_TL_TCP_OP_GET_DATA;
    hdr.len = 10;
    mf_tl_tcp_hdr_encode(&hdr, wire);
    test_raw_write(fd, wire, sizeof(wire));
    assert_int_not_equal(test_comp_wait(NULL, &tc, status), MF_OK);
    mf_log_set_level(MF_LOG_WARN);
    close(fd);

    /* the peer is gone: refused, and queued ops fail, nothing hangs */
    test_fake_unlisten(&tf);
    for (int i = 0; i < 3; i++) {
        test_comp_init(&tc);
        status = ops->put(ep, buf, base, 3 * TEST_MB, tf.rkey, &tc.super);
        status = test_comp_wait(NULL, &tc, status);
        assert_true(mf_status_is_peer_error(status));
    }
    ops->ep_destroy(ep);
    test_fake_close(&tf);
    free(buf);
}

/* A real peer drops its connections while large transfers run: they end
 * with OK or a peer error, each exactly once, and later ones succeed. */
static void test_conn_dropped(void **state)
{
    enum { N = 4 };
    const uint64_t part = 16 * TEST_MB;
    uint8_t *src = malloc(64 * TEST_MB), *dst = malloc(N * part);
    test_comp_t tc[N];
    unsigned failed = 0;
    mf_status_t status;
    test_pair_t tp;

    assert_non_null(src);
    assert_non_null(dst);
    tk_pattern_fill(src, 64 * TEST_MB, 1, 0);
    test_pair_open(&tp, 2, 0);
    for (int round = 0; round < 5; round++) {
        assert_int_equal(test_put(&tp, src, 0, 100), MF_OK); /* connected */
        /* puts and gets of their own bytes on both sides: transfers in
         * flight together never touch the same memory */
        for (int i = 0; i < N; i++) {
            uint64_t off = (uint64_t)i * part;

            test_comp_init(&tc[i]);
            status = i % 2 == 0 ? ops->put(tp.ep, src + off,
                                           (uint64_t)(uintptr_t)tp.mem + off,
                                           part, tp.rkey, &tc[i].super)
                                : ops->get(tp.ep, dst + off,
                                           (uint64_t)(uintptr_t)tp.mem + off,
                                           part, tp.rkey, &tc[i].super);
            assert_int_equal(status, MF_INPROGRESS);
        }
        mf_tl_tcp_iface_drop_conns(tp.server);
        for (int i = 0; i < N; i++) {
            status = test_comp_wait(NULL, &tc[i], MF_INPROGRESS);
            assert_true(status == MF_OK || mf_status_is_peer_error(status));
            failed += status != MF_OK;
        }
        /* later operations reconnect */
        tk_pattern_fill(src, 64 * TEST_MB, (uint32_t)round, 0);
        assert_int_equal(test_put(&tp, src, 3, 9 * TEST_MB), MF_OK);
        assert_memory_equal(tp.mem + 3, src, 9 * TEST_MB);
        for (int i = 0; i < N; i++) {
            assert_int_equal(atomic_load(&tc[i].calls), 1);
        }
    }
    fprintf(stderr, "dropped connections failed %u of %d transfers\n", failed,
            5 * N);
    test_pair_close(&tp);
    free(dst);
    free(src);
}

/* A lane whose send fails while its worker runs the queue (the reset came
 * in after the last epoll batch, so no event will report it) connects
 * again for what is still queued: nothing waits forever. */
typedef struct test_slow_comp {
    test_comp_t tc;
    atomic_int entered;
} test_slow_comp_t;

static void test_slow_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    test_slow_comp_t *sc = (test_slow_comp_t *)comp;

    atomic_store(&sc->entered, 1);
    usleep(500 * 1000); /* keeps the worker busy */
    test_comp_cb(comp, status);
}

static void *test_ep_destroy_thread(void *arg)
{
    ops->ep_destroy(arg);
    return NULL;
}

static void test_send_fail_requeue(void **state)
{
    struct linger lg = {1, 0};
    const uint64_t base = TEST_FAKE_BASE;
    uint8_t *buf = calloc(1, 8 * TEST_MB), got[100];
    test_slow_comp_t sc;
    test_comp_t tc[2];
    mf_tl_tcp_hdr_t hdr;
    mf_tl_ep_t *ep1, *ep2;
    pthread_t thread;
    mf_status_t status;
    uint64_t deadline;
    test_fake_t tf;
    int fd1, fd2;

    assert_non_null(buf);
    test_fake_open(&tf, 78);
    ep1 = test_fake_ep(&tf);
    ep2 = test_fake_ep(&tf);

    /* ep1 connected and idle */
    test_comp_init(&tc[0]);
    status = ops->put(ep1, buf, base, sizeof(got), tf.rkey, &tc[0].super);
    assert_int_equal(status, MF_INPROGRESS);
    fd1 = test_fake_accept(&tf, &hdr);
    test_fake_put_ack(fd1, &hdr, got, sizeof(got));
    assert_int_equal(test_comp_wait(NULL, &tc[0], status), MF_OK);

    /* ep2: a get nobody answers; destroying ep2 cancels it, and its
     * callback holds the worker while ep1's connection is reset */
    test_comp_init(&sc.tc);
    sc.tc.super.cb = test_slow_cb;
    atomic_init(&sc.entered, 0);
    status = ops->get(ep2, buf, base, 10, tf.rkey, &sc.tc.super);
    assert_int_equal(status, MF_INPROGRESS);
    fd2 = test_fake_accept(&tf, &hdr);
    assert_int_equal(pthread_create(&thread, NULL, test_ep_destroy_thread, ep2),
                     0);
    while (atomic_load(&sc.entered) == 0) {
        usleep(100);
    }
    assert_int_equal(setsockopt(fd1, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
                     0);
    close(fd1); /* reset */
    usleep(50 * 1000);
    /* the first fills the window and fails with the send; the second is
     * still queued and must not be forgotten */
    for (int i = 0; i < 2; i++) {
        test_comp_init(&tc[i]);
        status = ops->put(ep1, buf, base, 8 * TEST_MB, tf.rkey, &tc[i].super);
        assert_int_equal(status, MF_INPROGRESS);
    }
    test_fake_unlisten(&tf); /* a new connection is refused */
    deadline = mf_time_ms() + 20000;
    for (int i = 0; i < 2; i++) {
        while (!(test_comp_calls(&tc[i]) > 0) && mf_time_ms() < deadline) {
            usleep(1000);
        }
        assert_true((test_comp_calls(&tc[i]) > 0));
        assert_true(mf_status_is_peer_error(tc[i].status));
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(sc.tc.status, MF_ERR_CANCELED);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&tc[i].calls), 1);
    }
    close(fd2);
    ops->ep_destroy(ep1);
    test_fake_close(&tf);
    free(buf);
}

/* A forked child holds copies of the sockets: connections this process
 * closed must still leave its epoll sets, or their events would reach
 * freed state. */
static void test_fork_holds_sockets(void **state)
{
    uint8_t src[100];
    mf_status_t status;
    test_pair_t tp;
    test_comp_t tc;
    pid_t pid;

    tk_pattern_fill(src, sizeof(src), 5, 0);
    test_pair_open(&tp, 1, 0);
    assert_int_equal(test_put(&tp, src, 0, sizeof(src)), MF_OK);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usleep(1000 * 1000); /* holds every socket for a while */
        _exit(0);
    }
    /* the server forgets its connection; the socket lives on in the child */
    assert_int_equal(mf_tl_tcp_iface_drop_conns(tp.server), 1);
    test_comp_init(&tc);
    status = ops->put(tp.ep, src, (uint64_t)(uintptr_t)tp.mem, sizeof(src),
                      tp.rkey, &tc.super);
    status = test_comp_wait(NULL, &tc, status);
    assert_true(status == MF_OK || mf_status_is_peer_error(status));
    assert_int_equal(tk_proc_wait(pid, 60000), 0);
    /* and the next one connects again */
    assert_int_equal(test_put(&tp, src, 7, sizeof(src)), MF_OK);
    assert_memory_equal(tp.mem + 7, src, sizeof(src));
    test_pair_close(&tp);
}

/* A small operation does not wait for the rest of a large one. */
static void test_small_passes_large(void **state)
{
    uint8_t *big = malloc(64 * TEST_MB), small[16];
    test_comp_t large, tiny;
    unsigned passed = 0;
    mf_status_t status;
    test_pair_t tp;

    assert_non_null(big);
    test_pair_open(&tp, 1, 64 * 1024);
    assert_int_equal(test_put(&tp, small, 0, 1), MF_OK); /* connected */
    for (int round = 0; round < 5; round++) {
        test_comp_init(&large);
        test_comp_init(&tiny);
        status = ops->get(tp.ep, big, (uint64_t)(uintptr_t)tp.mem, 64 * TEST_MB,
                          tp.rkey, &large.super);
        assert_int_equal(status, MF_INPROGRESS);
        status = ops->get(tp.ep, small, (uint64_t)(uintptr_t)tp.mem + 5,
                          sizeof(small), tp.rkey, &tiny.super);
        assert_int_equal(test_comp_wait(NULL, &tiny, status), MF_OK);
        passed += !(test_comp_calls(&large) > 0);
        assert_int_equal(test_comp_wait(NULL, &large, MF_INPROGRESS), MF_OK);
        assert_memory_equal(small, tp.mem + 5, sizeof(small));
    }
    /* timing is the scheduler's: one overtaking of five is proof enough */
    assert_true(passed >= 1);
    test_pair_close(&tp);
    free(big);
}

/* ---- out of descriptors ---- */

#define TEST_CHILD_NOFILE 64
#define TEST_FLOOD_CONNS  150

/* In the child only: what the server logs; the parent waits for the
 * first failed accept. */
static tk_log_t test_accept_log;
static int test_accept_notify_fd = -1;

/* A server with a soft limit of TEST_CHILD_NOFILE open files: publishes
 * its address and remote key, serves until the parent says done, then
 * checks how often it logged failed accepts. */
static int test_accept_child(int out_fd, int in_fd)
{
    size_t seg = TEST_MB, al, rl;
    uint64_t start, elapsed;
    mf_tl_mem_params_t mp = {0};
    mf_tl_iface_t *server;
    mf_tl_memh_t *memh;
    struct rlimit rlim;
    uint8_t out[256];
    mf_mem_seg_t s;
    uint8_t *mem;
    int accepts;
    char c;

    TK_CHECK(getrlimit(RLIMIT_NOFILE, &rlim) == 0);
    rlim.rlim_cur = TEST_CHILD_NOFILE;
    TK_CHECK(setrlimit(RLIMIT_NOFILE, &rlim) == 0);
    tk_log_start(&test_accept_log, TK_LOG_ECHO);
    accepts = tk_log_watch(&test_accept_log, "accept() failed",
                           test_accept_notify_fd);
    mem = calloc(1, seg);
    TK_CHECK(mem != NULL);
    server = test_open(1, 0);
    TK_CHECK(server != NULL);
    memset(&s, 0, sizeof(s));
    s.addr = mem;
    s.size = seg;
    mp.addr = mem;
    mp.size = seg;
    mp.seg = &s;
    TK_CHECK(ops->mem_reg(server, &mp, &memh) == MF_OK);
    TK_CHECK(ops->iface_addr_pack(server, out + 16, 100, &al) == MF_OK);
    TK_CHECK(ops->rkey_pack(server, memh, out + 128, 100, &rl) == MF_OK);
    mf_le64_store(out, al);
    mf_le64_store(out + 8, rl);
    start = mf_time_ms();
    TK_CHECK(write(out_fd, out, sizeof(out)) == sizeof(out));
    TK_CHECK(read(in_fd, &c, 1) == 1); /* parent done */
    elapsed = mf_time_ms() - start;
    ops->mem_dereg(server, memh);
    ops->iface_close(server);
    free(mem);
    fprintf(stderr, "child: %d accept failure messages in %llu ms\n",
            tk_log_watched(&test_accept_log, accepts),
            (unsigned long long)elapsed);
    TK_CHECK(tk_log_watched(&test_accept_log, accepts) >= 1);
    TK_CHECK((uint64_t)tk_log_watched(&test_accept_log, accepts) <=
             1 + elapsed / MF_SOCK_ACCEPT_LOG_MS);
    return 0;
}

/* An endpoint and remote key of the child's segment, for a new client. */
static void test_accept_ep(mf_tl_iface_t *client, const uint8_t *msg,
                           mf_tl_ep_t **ep_p, mf_tl_rkey_t **rkey_p)
{
    uint64_t base = mf_le64_load(msg + 128 + 13);

    assert_int_equal(ops->ep_create(client, msg + 16, mf_le64_load(msg), ep_p),
                     MF_OK);
    assert_int_equal(ops->rkey_unpack(client, msg + 128, mf_le64_load(msg + 8),
                                      base, TEST_MB, rkey_p),
                     MF_OK);
}

static mf_status_t test_accept_put(mf_tl_ep_t *ep, mf_tl_rkey_t *rkey,
                                   const uint8_t *msg, uint8_t value)
{
    uint64_t base = mf_le64_load(msg + 128 + 13);
    uint8_t buf[4096], back[4096];
    test_comp_t tc;
    mf_status_t status;

    memset(buf, value, sizeof(buf));
    test_comp_init(&tc);
    status = test_comp_wait(
        NULL, &tc,
        ops->put(ep, buf, base + value, sizeof(buf), rkey, &tc.super));
    if (status != MF_OK) {
        return status;
    }
    test_comp_init(&tc);
    status = test_comp_wait(
        NULL, &tc,
        ops->get(ep, back, base + value, sizeof(back), rkey, &tc.super));
    if ((status == MF_OK) && (memcmp(back, buf, sizeof(buf)) != 0)) {
        status = MF_ERR_PROTO;
    }
    return status;
}

/* The serving process runs out of descriptors: connections made before
 * are served, accepting pauses (logged once per interval, not per
 * failure), and resumes once descriptors are free again. */
static void test_out_of_fds(void **state)
{
    int topipe[2], frompipe[2], notify[2], flood[TEST_FLOOD_CONNS];
    struct sockaddr_in sin;
    mf_tl_iface_t *client, *late;
    mf_tl_rkey_t *rkey, *late_rkey;
    mf_tl_ep_t *ep, *late_ep;
    uint64_t deadline;
    mf_status_t status;
    uint8_t msg[256];
    char c;
    pid_t pid;

    assert_int_equal(pipe(topipe), 0);
    assert_int_equal(pipe(frompipe), 0);
    assert_int_equal(pipe(notify), 0);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(topipe[1]);
        close(frompipe[0]);
        close(notify[0]);
        test_accept_notify_fd = notify[1];
        _exit(test_accept_child(frompipe[1], topipe[0]));
    }
    close(topipe[0]);
    close(frompipe[1]);
    close(notify[1]);
    assert_true(test_raw_read(frompipe[0], msg, sizeof(msg)));

    /* a client connected before the crowd */
    client = test_open(1, 0);
    assert_non_null(client);
    test_accept_ep(client, msg, &ep, &rkey);
    assert_int_equal(test_accept_put(ep, rkey, msg, 1), MF_OK);

    /* far more connections than the child has descriptors */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(mf_le16_load(msg + 16 + 6)); /* its packed port */
    for (int i = 0; i < TEST_FLOOD_CONNS; i++) {
        flood[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(flood[i] >= 0);
        assert_int_equal(
            connect(flood[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
    }
    assert_true(test_raw_read(notify[0], &c, 1));

    /* the client from before is served */
    assert_int_equal(test_accept_put(ep, rkey, msg, 2), MF_OK);

    /* once the crowd leaves, a new client gets in (connections that come
     * while the server still runs out may be turned away: retry) */
    for (int i = 0; i < TEST_FLOOD_CONNS; i++) {
        close(flood[i]);
    }
    late = test_open(1, 0);
    assert_non_null(late);
    test_accept_ep(late, msg, &late_ep, &late_rkey);
    deadline = mf_time_ms() + TEST_WAIT_MS;
    mf_log_set_level(MF_LOG_ERROR); /* the turned-away attempts */
    do {
        status = test_accept_put(late_ep, late_rkey, msg, 3);
    } while ((status != MF_OK) && mf_status_is_peer_error(status) &&
             (mf_time_ms() < deadline));
    mf_log_set_level(MF_LOG_WARN);
    assert_int_equal(status, MF_OK);
    assert_int_equal(test_accept_put(ep, rkey, msg, 4), MF_OK);

    ops->rkey_release(late, late_rkey);
    ops->ep_destroy(late_ep);
    ops->iface_close(late);
    ops->rkey_release(client, rkey);
    ops->ep_destroy(ep);
    ops->iface_close(client);
    assert_int_equal(write(topipe[1], "x", 1), 1);
    assert_int_equal(tk_proc_wait(pid, 60000), 0);
    close(topipe[1]);
    close(frompipe[0]);
    close(notify[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: forks while the process has no other thread */
        cmocka_unit_test(test_out_of_fds),
        cmocka_unit_test(test_iface),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_trace_points),
        cmocka_unit_test(test_server_range),
        cmocka_unit_test(test_user_mem),
        cmocka_unit_test(test_raw_requests),
        cmocka_unit_test(test_raw_vectors),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_hello_supersedes),
        cmocka_unit_test(test_lane_auth),
        cmocka_unit_test(test_conn_lost_raw),
        cmocka_unit_test(test_conn_dropped),
        cmocka_unit_test(test_send_fail_requeue),
        cmocka_unit_test(test_fork_holds_sockets),
        cmocka_unit_test(test_small_passes_large),
    };

    mf_log_set_level(MF_LOG_WARN);
    return tk_group_run(tests, NULL, NULL);
}
