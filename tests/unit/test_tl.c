/*
 * Conformance of every transport to the contract of src/tl/tl.h.  Each
 * body runs once for every transport in the registry and skips what a
 * transport cannot do by its capabilities, never by its name, so a new
 * transport inherits the whole suite.
 *
 * Data moves between two processes, as between two ranks: the parent owns
 * a segment (created by the host memory kind inside a reserved window, as
 * the fabric makes them, so mapping and byte-moving transports both work)
 * and serves it, driving progress() until the child is done; the forked
 * child first drops the mapping it inherited, so it is a real remote
 * peer, then puts and gets.  The child checks what it reads; the parent
 * checks its segment against the image the child's puts must leave,
 * computed from the same plan.
 *
 * Every interface opens with its transport's default settings, parsed
 * from text as the fabric parses them; on one host they reach the other
 * process.  An error logged where none is expected fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_window.h"
#include "tk_group.h"
#include "tk_log.h"
#include "tk_pattern.h"
#include "tk_proc.h"
#include "test_tl_comp.h"

#include "mem/mem.h"
#include "tl/tl.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/workers.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_MB       (1024ull * 1024ull)
#define TEST_BASE     TEST_WINDOW(9)
#define TEST_RESERVED (64 * TEST_MB)
/* the segment, away from the window's base */
#define TEST_GVA      (TEST_BASE + 16 * TEST_MB)
#define TEST_SEG      (32 * TEST_MB)
#define TEST_SEED     42 /* what the owner fills its segment with */
#define TEST_PUT_SEED 7  /* what the peer puts */
#define TEST_GUARD    16
#define TEST_POISON   0xa5
#define TEST_BLOB     1024 /* room for a packed address or key */
#define TEST_MANY     600
#define TEST_WAIT_MS  120000

static tk_log_t test_log;

/* ------------------------------------------------------- interfaces */

/* An interface of ops with its default settings, parsed from text as the
 * fabric parses what the user set. */
static mf_status_t test_iface_open(const mf_tl_ops_t *ops, const char *host_id,
                                   mf_workers_t *workers,
                                   mf_tl_iface_t **iface_p)
{
    mf_tl_params_t params;
    mf_status_t status;
    void *config;

    status = mf_tl_config_parse(ops, "", &config);
    if (status != MF_OK) {
        return status;
    }
    memset(&params, 0, sizeof(params));
    params.host_id = host_id;
    params.workers = workers;
    params.split_min = workers != NULL ? 64 * 1024 : 0;
    params.mem_flags = MF_MEM_SEG_PREFAULT;
    params.config = config;
    status = ops->iface_open(&params, iface_p);
    free(config);
    return status;
}

static void test_caps(const mf_tl_ops_t *ops, mf_tl_caps_t *caps)
{
    mf_tl_iface_t *iface;

    assert_int_equal(test_iface_open(ops, mf_host_id(), NULL, &iface), MF_OK);
    ops->iface_query(iface, caps);
    ops->iface_close(iface);
}

/* Whether the data bodies can run on ops: they move host memory. */
static bool test_moves_host(const mf_tl_ops_t *ops, const char *body)
{
    mf_tl_caps_t caps;

    if (!tk_transport_wanted(ops->name)) {
        printf("  %s: %s skipped (TK_TRANSPORTS)\n", ops->name, body);
        return false;
    }
    test_caps(ops, &caps);
    if (!(caps.mem_kinds & MF_TL_MEM_KIND(MF_MEM_KIND_HOST)) ||
        !(caps.flags & (MF_TL_CAP_PUT | MF_TL_CAP_GET))) {
        printf("  %s: %s skipped (moves no host memory)\n", ops->name, body);
        return false;
    }
    printf("  %s: %s\n", ops->name, body);
    return true;
}

/* ------------------------------------------------- the two processes */

/* The child's side: the owner's address and key, and its own interface,
 * endpoint and unpacked key to reach the segment with. */
typedef struct test_peer {
    const mf_tl_ops_t *ops;
    mf_tl_caps_t caps;
    uint8_t addr[TEST_BLOB];
    size_t addr_len;
    uint8_t rkey_buf[TEST_BLOB];
    size_t rkey_len;
    mf_workers_t *workers;
    mf_tl_iface_t *iface;
    mf_tl_ep_t *ep;
    mf_tl_rkey_t *rkey;
} test_peer_t;

/* What a body does in the child (TK_CHECK on failure), and the image its
 * puts leave in the owner's segment (NULL: the segment stays as filled). */
typedef void (*test_child_fn)(test_peer_t *peer);
typedef void (*test_image_fn)(uint8_t *image, const mf_tl_caps_t *caps);

static bool test_can_put(const test_peer_t *peer)
{
    return (peer->caps.flags & MF_TL_CAP_PUT) != 0;
}

static bool test_can_get(const test_peer_t *peer)
{
    return (peer->caps.flags & MF_TL_CAP_GET) != 0;
}

static mf_status_t test_put(test_peer_t *peer, const void *buf, uint64_t off,
                            size_t size)
{
    test_comp_t tc;
    mf_status_t status;

    test_comp_init(&tc);
    status = peer->ops->put(peer->ep, buf, TEST_GVA + off, size, peer->rkey,
                            &tc.super);
    return test_comp_wait(peer->iface, &tc, status);
}

static mf_status_t test_get(test_peer_t *peer, void *buf, uint64_t off,
                            size_t size)
{
    test_comp_t tc;
    mf_status_t status;

    test_comp_init(&tc);
    status = peer->ops->get(peer->ep, buf, TEST_GVA + off, size, peer->rkey,
                            &tc.super);
    return test_comp_wait(peer->iface, &tc, status);
}

static mf_status_t test_flush(test_peer_t *peer)
{
    test_comp_t tc;

    test_comp_init(&tc);
    return test_comp_wait(peer->iface, &tc,
                          peer->ops->flush(peer->ep, &tc.super));
}

static void test_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = read(fd, p, len);

        TK_CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* The child: a fresh view of the window, the owner's address and key
 * from in_fd, then the body; it exits, which closes its end of the pipe
 * the owner waits on. */
static void test_child_main(const mf_tl_ops_t *ops, int in_fd,
                            test_child_fn body)
{
    test_peer_t peer;

    memset(&peer, 0, sizeof(peer));
    peer.ops = ops;
    tk_role_set("peer %s", ops->name);
    tk_log_start(&test_log, 0);
    /* the inherited mapping goes, the reservation stays */
    TK_CHECK_OK(
        mf_mem_restore_reservation((void *)(uintptr_t)TEST_GVA, TEST_SEG));
    test_read_all(in_fd, &peer.addr_len, sizeof(peer.addr_len));
    test_read_all(in_fd, &peer.rkey_len, sizeof(peer.rkey_len));
    TK_CHECK(peer.addr_len <= TEST_BLOB && peer.rkey_len <= TEST_BLOB);
    test_read_all(in_fd, peer.addr, peer.addr_len);
    test_read_all(in_fd, peer.rkey_buf, peer.rkey_len);
    close(in_fd);

    TK_CHECK_OK(mf_workers_create(2, &peer.workers));
    TK_CHECK_OK(test_iface_open(ops, mf_host_id(), peer.workers, &peer.iface));
    ops->iface_query(peer.iface, &peer.caps);
    TK_CHECK(ops->iface_is_reachable(peer.iface, peer.addr, peer.addr_len));
    TK_CHECK_OK(ops->ep_create(peer.iface, peer.addr, peer.addr_len, &peer.ep));
    TK_CHECK_OK(ops->rkey_unpack(peer.iface, peer.rkey_buf, peer.rkey_len,
                                 TEST_GVA, TEST_SEG, &peer.rkey));

    body(&peer);

    ops->rkey_release(peer.iface, peer.rkey);
    ops->ep_destroy(peer.ep);
    ops->iface_close(peer.iface);
    mf_workers_destroy(peer.workers);
    TK_CHECK(tk_log_check_clean(&test_log) == 0);
    tk_log_stop(&test_log);
    tk_proc_exit(0);
}

/* The owner serves (and progresses) until the child closes done_fd. */
static void test_serve(mf_tl_iface_t *iface, int done_fd)
{
    uint64_t deadline = mf_time_ms() + TEST_WAIT_MS;
    struct pollfd pfd = {done_fd, POLLIN, 0};
    char c;

    for (;;) {
        assert_true(mf_time_ms() < deadline);
        iface->ops->progress(iface);
        if (poll(&pfd, 1, 1) == 1) {
            assert_int_equal(read(done_fd, &c, 1), 0);
            return;
        }
    }
}

/* The owner's side of a run, where a failed assert leaves it: the
 * teardown undoes what is set, so the next test starts clean. */
typedef struct test_owner {
    bool reserved;
    bool seg_live;
    mf_mem_seg_t seg;
    const mf_tl_ops_t *ops;
    mf_tl_iface_t *iface;
    mf_tl_memh_t *memh;
    bool logging;
    int to_child; /* write end: the address and key */
    int done;     /* read end: EOF when the child is gone */
    pid_t pid;
    uint8_t *expect;
} test_owner_t;

static test_owner_t test_owner = {.to_child = -1, .done = -1};

static void test_owner_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int test_owner_teardown(void **state)
{
    test_owner_t *o = &test_owner;

    test_owner_close_fd(&o->to_child);
    test_owner_close_fd(&o->done);
    if (o->pid > 0) {
        tk_proc_kill(o->pid);
        o->pid = 0;
    }
    if (o->memh != NULL) {
        o->ops->mem_dereg(o->iface, o->memh);
        o->memh = NULL;
    }
    if (o->iface != NULL) {
        o->ops->iface_close(o->iface);
        o->iface = NULL;
    }
    if (o->logging) {
        tk_log_stop(&test_log);
        o->logging = false;
    }
    if (o->seg_live) {
        mf_mem_host_ops.seg_destroy(&o->seg);
        o->seg_live = false;
    }
    if (o->reserved) {
        mf_mem_unreserve(TEST_BASE, TEST_RESERVED);
        o->reserved = false;
    }
    free(o->expect);
    o->expect = NULL;
    return 0;
}

static void test_owner_send(const void *buf, size_t len)
{
    assert_int_equal(write(test_owner.to_child, buf, len), len);
}

/*
 * One body between two processes: the parent creates and registers its
 * segment, packs its address and key (a buffer one byte short is
 * refused), hands them to the child that runs body, serves until the
 * child is done, and compares the segment with the image.
 */
static void test_run(const mf_tl_ops_t *ops, test_child_fn body,
                     test_image_fn image)
{
    uint8_t addr[TEST_BLOB], rkey[TEST_BLOB];
    test_owner_t *o = &test_owner;
    mf_tl_mem_params_t mem_params = {0};
    size_t addr_len, rkey_len, dummy;
    int to_child[2], done[2];
    mf_tl_caps_t caps;
    ssize_t bad;

    o->ops = ops;
    assert_int_equal(mf_mem_reserve(TEST_BASE, TEST_RESERVED, NULL, 0), MF_OK);
    o->reserved = true;
    assert_int_equal(mf_mem_host_ops.seg_create((void *)(uintptr_t)TEST_GVA,
                                                TEST_SEG, MF_MEM_SEG_PREFAULT,
                                                &o->seg),
                     MF_OK);
    o->seg_live = true;
    tk_pattern_fill(o->seg.addr, TEST_SEG, TEST_SEED, 0);
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(done), 0);
    /* forked before any transport starts a thread here */
    o->pid = tk_proc_fork();
    if (o->pid == 0) {
        close(to_child[1]);
        close(done[0]);
        test_child_main(ops, to_child[0], body);
    }
    close(to_child[0]);
    close(done[1]);
    o->to_child = to_child[1];
    o->done = done[0];
    assert_true(o->pid > 0);

    tk_log_start(&test_log, 0);
    o->logging = true;
    assert_int_equal(test_iface_open(ops, mf_host_id(), NULL, &o->iface),
                     MF_OK);
    ops->iface_query(o->iface, &caps);
    mem_params.addr = o->seg.addr;
    mem_params.size = o->seg.size;
    mem_params.seg = &o->seg;
    assert_int_equal(ops->mem_reg(o->iface, &mem_params, &o->memh), MF_OK);
    assert_int_equal(
        ops->rkey_pack(o->iface, o->memh, rkey, sizeof(rkey), &rkey_len),
        MF_OK);
    assert_true(rkey_len > 0 && rkey_len <= caps.rkey_max);
    assert_int_equal(
        ops->rkey_pack(o->iface, o->memh, rkey, rkey_len - 1, &dummy),
        MF_ERR_TOO_LARGE);
    assert_int_equal(
        ops->iface_addr_pack(o->iface, addr, sizeof(addr), &addr_len), MF_OK);
    assert_true(addr_len > 0 && addr_len <= caps.addr_max);
    test_owner_send(&addr_len, sizeof(addr_len));
    test_owner_send(&rkey_len, sizeof(rkey_len));
    test_owner_send(addr, addr_len);
    test_owner_send(rkey, rkey_len);
    test_owner_close_fd(&o->to_child);

    test_serve(o->iface, o->done);
    test_owner_close_fd(&o->done);
    assert_int_equal(tk_proc_wait(o->pid, TEST_WAIT_MS), 0);
    o->pid = 0;
    /* the transport's threads wrote what the child put: closing joins
     * them, which orders their writes before the check below (the child's
     * exit does too, but through another process, which ThreadSanitizer
     * cannot see) */
    ops->mem_dereg(o->iface, o->memh);
    o->memh = NULL;
    ops->iface_close(o->iface);
    o->iface = NULL;

    o->expect = malloc(TEST_SEG);
    assert_non_null(o->expect);
    tk_pattern_fill(o->expect, TEST_SEG, TEST_SEED, 0);
    if (image != NULL) {
        image(o->expect, &caps);
    }
    bad = tk_mem_diff(o->seg.addr, o->expect, TEST_SEG);
    if (bad >= 0) {
        print_error("%s: segment byte %zd is 0x%02x, expected 0x%02x\n",
                    ops->name, bad, ((uint8_t *)o->seg.addr)[bad],
                    o->expect[bad]);
    }
    assert_true(bad < 0);
    assert_int_equal(tk_log_check_clean(&test_log), 0);
    test_owner_teardown(NULL);
}

/* ------------------------------------------------- registry, opening */

/* Every transport fills every slot, names its settings under its own
 * prefix and parses its defaults; the registry finds each by name. */
static void test_registry(void **state)
{
    const mf_tl_ops_t *ops;
    char value[256];
    void *config;
    size_t i, k;

    assert_true(mf_tl_count() >= 1);
    assert_null(mf_tl_at(mf_tl_count()));
    assert_null(mf_tl_find("nope"));
    for (i = 0; i < mf_tl_count(); i++) {
        ops = mf_tl_at(i);
        assert_non_null(ops);
        assert_non_null(ops->name);
        printf("  %s\n", ops->name);
        assert_ptr_equal(mf_tl_find(ops->name), ops);
        assert_non_null(strstr(mf_tl_names(), ops->name));
        assert_non_null(ops->config);
        assert_non_null(ops->config_check);
        assert_non_null(ops->iface_open);
        assert_non_null(ops->iface_close);
        assert_non_null(ops->iface_query);
        assert_non_null(ops->iface_addr_pack);
        assert_non_null(ops->iface_is_reachable);
        assert_non_null(ops->mem_reg);
        assert_non_null(ops->mem_dereg);
        assert_non_null(ops->rkey_pack);
        assert_non_null(ops->rkey_unpack);
        assert_non_null(ops->rkey_release);
        assert_non_null(ops->ep_create);
        assert_non_null(ops->ep_destroy);
        assert_non_null(ops->put);
        assert_non_null(ops->get);
        assert_non_null(ops->flush);
        assert_non_null(ops->progress);
        /* settings: "<name>.<key>", each readable with its default */
        for (k = 0; k < ops->config->count; k++) {
            const char *key = ops->config->entries[k].name;

            assert_int_equal(strncmp(key, ops->name, strlen(ops->name)), 0);
            assert_int_equal(key[strlen(ops->name)], '.');
            assert_ptr_equal(mf_tl_config_owner(key), ops);
            assert_int_equal(mf_tl_config_get("", key, value, sizeof(value)),
                             MF_OK);
        }
        assert_int_equal(mf_tl_config_parse(ops, "", &config), MF_OK);
        free(config);
    }
    assert_int_equal(mf_tl_no_put(NULL, NULL, 0, 0, NULL, NULL),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_get(NULL, NULL, 0, 0, NULL, NULL),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_mem_reg(NULL, NULL, NULL), MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_rkey_pack(NULL, NULL, NULL, 0, NULL),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_flush(NULL, NULL), MF_OK); /* nothing pending */
    assert_int_equal(mf_tl_no_progress(NULL), 0);
}

/* Interfaces open with the defaults (no settings at all, or parsed from
 * empty text), two at once; they report sane capabilities, pack their
 * address (not into a buffer one byte short), reach themselves and have
 * nothing to progress while idle. */
static void test_open(void **state)
{
    mf_tl_iface_t *iface, *second;
    uint8_t addr[TEST_BLOB];
    mf_tl_params_t params;
    const mf_tl_ops_t *ops;
    size_t i, len, dummy;
    mf_tl_caps_t caps;

    tk_log_start(&test_log, 0);
    for (i = 0; i < mf_tl_count(); i++) {
        ops = mf_tl_at(i);
        printf("  %s\n", ops->name);
        memset(&params, 0, sizeof(params));
        params.host_id = mf_host_id();
        assert_int_equal(ops->iface_open(&params, &iface), MF_OK);
        ops->iface_close(iface);

        assert_int_equal(test_iface_open(ops, mf_host_id(), NULL, &iface),
                         MF_OK);
        assert_int_equal(test_iface_open(ops, mf_host_id(), NULL, &second),
                         MF_OK);
        ops->iface_query(iface, &caps);
        assert_true(caps.flags & (MF_TL_CAP_PUT | MF_TL_CAP_GET));
        assert_true(caps.mem_kinds != 0);
        /* what it reaches remotely it moves locally too */
        assert_int_equal(caps.local_kinds & caps.mem_kinds, caps.mem_kinds);
        assert_true(caps.addr_max > 0 && caps.addr_max <= TEST_BLOB);
        assert_true(caps.rkey_max > 0 && caps.rkey_max <= TEST_BLOB);
        assert_int_equal(ops->iface_addr_pack(iface, addr, sizeof(addr), &len),
                         MF_OK);
        assert_true(len > 0 && len <= caps.addr_max);
        assert_int_equal(ops->iface_addr_pack(iface, addr, len - 1, &dummy),
                         MF_ERR_TOO_LARGE);
        assert_true(ops->iface_is_reachable(iface, addr, len));
        assert_true(ops->iface_is_reachable(second, addr, len));
        assert_int_equal(ops->progress(iface), 0);
        ops->iface_close(second);
        ops->iface_close(iface);
    }
    assert_int_equal(tk_log_check_clean(&test_log), 0);
    tk_log_stop(&test_log);
}

/* --------------------------------------------- reachability and keys */

/*
 * The key covers the segment; a key unpacked at another address, of
 * another size, truncated or empty is refused; an interface of another
 * host is refused by a same-host transport and served by the others; a
 * released key unpacks again.
 */
static void test_keys_child(test_peer_t *peer)
{
    const mf_tl_ops_t *ops = peer->ops;
    const uint8_t *key = peer->rkey_buf;
    size_t len = peer->rkey_len;
    mf_tl_iface_t *other;
    mf_tl_rkey_t *rk;
    mf_tl_ep_t *ep;

    TK_CHECK(peer->rkey->gva == TEST_GVA && peer->rkey->size == TEST_SEG);
    if (peer->caps.flags & MF_TL_CAP_ADDRESSABLE) {
        TK_CHECK(peer->rkey->addr == (void *)(uintptr_t)TEST_GVA);
        TK_CHECK(tk_pattern_check(peer->rkey->addr, TEST_SEG, TEST_SEED, 0) <
                 0);
    } else {
        TK_CHECK(peer->rkey->addr == NULL);
    }

    tk_log_allow_errors(&test_log, true);
    TK_CHECK(ops->rkey_unpack(peer->iface, key, len, TEST_GVA + 4096, TEST_SEG,
                              &rk) == MF_ERR_PROTO);
    TK_CHECK(ops->rkey_unpack(peer->iface, key, len, TEST_GVA, 2 * TEST_SEG,
                              &rk) == MF_ERR_PROTO);
    TK_CHECK(ops->rkey_unpack(peer->iface, key, len, TEST_GVA, TEST_SEG - 4096,
                              &rk) == MF_ERR_PROTO);
    TK_CHECK(ops->rkey_unpack(peer->iface, key, len - 1, TEST_GVA, TEST_SEG,
                              &rk) == MF_ERR_PROTO);
    TK_CHECK(ops->rkey_unpack(peer->iface, key, 0, TEST_GVA, TEST_SEG, &rk) ==
             MF_ERR_PROTO);
    tk_log_allow_errors(&test_log, false);

    TK_CHECK_OK(test_iface_open(ops, "other-boot/other-host", NULL, &other));
    if (peer->caps.flags & MF_TL_CAP_SAME_HOST) {
        TK_CHECK(!ops->iface_is_reachable(other, peer->addr, peer->addr_len));
        TK_CHECK(ops->ep_create(other, peer->addr, peer->addr_len, &ep) ==
                 MF_ERR_UNREACHABLE);
        TK_CHECK(ops->rkey_unpack(other, key, len, TEST_GVA, TEST_SEG, &rk) ==
                 MF_ERR_UNREACHABLE);
    } else {
        TK_CHECK(ops->iface_is_reachable(other, peer->addr, peer->addr_len));
        TK_CHECK_OK(ops->ep_create(other, peer->addr, peer->addr_len, &ep));
        ops->ep_destroy(ep);
        TK_CHECK_OK(ops->rkey_unpack(other, key, len, TEST_GVA, TEST_SEG, &rk));
        ops->rkey_release(other, rk);
    }
    ops->iface_close(other);

    ops->rkey_release(peer->iface, peer->rkey);
    TK_CHECK_OK(ops->rkey_unpack(peer->iface, key, len, TEST_GVA, TEST_SEG,
                                 &peer->rkey));
    if (test_can_get(peer)) {
        uint8_t buf[64];

        TK_CHECK_OK(test_get(peer, buf, 4096, sizeof(buf)));
        TK_CHECK(tk_pattern_check(buf, sizeof(buf), TEST_SEED, 4096) < 0);
    }
}

static void test_keys(void **state)
{
    for (size_t i = 0; i < mf_tl_count(); i++) {
        if (test_moves_host(mf_tl_at(i), "keys")) {
            test_run(mf_tl_at(i), test_keys_child, NULL);
        }
    }
}

/* ----------------------------------------------------------- sizes */

static const size_t test_size_list[] = {1,
                                        2,
                                        7,
                                        100,
                                        4095,
                                        4097,
                                        65535,
                                        65537,
                                        100003,
                                        512 * 1024 - 1,
                                        512 * 1024,
                                        512 * 1024 + 1,
                                        TEST_MB + 3,
                                        3 * TEST_MB + 4097,
                                        5 * TEST_MB + 1,
                                        9 * TEST_MB + 11};

/* Where the i-th size goes in the segment: one after the other, each at
 * another odd offset. */
static uint64_t test_sizes_off(size_t i)
{
    uint64_t off = 1;

    for (size_t k = 0; k < i; k++) {
        off += test_size_list[k] + 1 + (k * 13) % 4093;
    }
    return off;
}

static void test_sizes_image(uint8_t *image, const mf_tl_caps_t *caps)
{
    if (!(caps->flags & MF_TL_CAP_PUT)) {
        return;
    }
    for (size_t i = 0; i < MF_ARRAY_SIZE(test_size_list); i++) {
        tk_pattern_fill(image + test_sizes_off(i), test_size_list[i],
                        TEST_PUT_SEED, test_sizes_off(i));
    }
    tk_pattern_fill(image + TEST_SEG - 1, 1, TEST_PUT_SEED, TEST_SEG - 1);
}

/* Gets size bytes at off into buf + boff between guard bytes; checks them
 * against the pattern of seed. */
static void test_get_check(test_peer_t *peer, uint8_t *buf, size_t boff,
                           uint64_t off, size_t size, uint64_t seed)
{
    memset(buf + boff - TEST_GUARD, TEST_POISON, size + 2 * TEST_GUARD);
    TK_CHECK_OK(test_get(peer, buf + boff, off, size));
    TK_CHECK(tk_pattern_check(buf + boff, size, seed, off) < 0);
    TK_CHECK(tk_mem_find_not(buf + boff - TEST_GUARD, TEST_POISON, TEST_GUARD) <
             0);
    TK_CHECK(tk_mem_find_not(buf + boff + size, TEST_POISON, TEST_GUARD) < 0);
}

/* An operation outside the key: refused, and its completion never fires. */
static void test_refused(test_peer_t *peer, bool put, uint8_t *buf,
                         uint64_t raddr, size_t size)
{
    const mf_tl_ops_t *ops = peer->ops;
    test_comp_t tc;
    mf_status_t status;

    test_comp_init(&tc);
    status = put ? ops->put(peer->ep, buf, raddr, size, peer->rkey, &tc.super)
                 : ops->get(peer->ep, buf, raddr, size, peer->rkey, &tc.super);
    TK_CHECK(status == MF_ERR_OUT_OF_RANGE);
    TK_CHECK(test_flush(peer) == MF_OK);
    TK_CHECK(test_comp_calls(&tc) == 0);
}

/*
 * Put and get of 1 B to 9 MiB, unaligned on both sides, byte for byte
 * with guard bytes around every destination; the last byte of the
 * segment; 0 bytes anywhere in it; nothing outside it.
 */
static void test_sizes_child(test_peer_t *peer)
{
    size_t max = test_size_list[MF_ARRAY_SIZE(test_size_list) - 1];
    uint8_t *src = malloc(max + 128), *dst = malloc(max + 128);
    size_t i;

    TK_CHECK(src != NULL && dst != NULL);
    for (i = 0; i < MF_ARRAY_SIZE(test_size_list) && test_can_get(peer); i++) {
        test_get_check(peer, dst, TEST_GUARD + i % 37, test_sizes_off(i),
                       test_size_list[i], TEST_SEED);
    }
    for (i = 0; i < MF_ARRAY_SIZE(test_size_list) && test_can_put(peer); i++) {
        size_t soff = (i * 7) % 61;

        tk_pattern_fill(src + soff, test_size_list[i], TEST_PUT_SEED,
                        test_sizes_off(i));
        TK_CHECK_OK(
            test_put(peer, src + soff, test_sizes_off(i), test_size_list[i]));
        if (test_can_get(peer)) {
            test_get_check(peer, dst, TEST_GUARD + (i * 11) % 53,
                           test_sizes_off(i), test_size_list[i], TEST_PUT_SEED);
        }
    }
    if (test_can_put(peer)) {
        tk_pattern_fill(src, 1, TEST_PUT_SEED, TEST_SEG - 1);
        TK_CHECK_OK(test_put(peer, src, TEST_SEG - 1, 1));
        TK_CHECK_OK(test_put(peer, src, 0, 0));
        TK_CHECK_OK(test_put(peer, src, TEST_SEG, 0));
    }
    if (test_can_get(peer)) {
        TK_CHECK_OK(test_get(peer, dst, 0, 0));
        TK_CHECK_OK(test_get(peer, dst, TEST_SEG, 0));
    }
    /* outside; what a wrong put would leave differs from the image */
    memset(src, 0x5a, 64);
    if (test_can_put(peer)) {
        test_refused(peer, true, src, TEST_GVA + TEST_SEG - 1, 2);
        test_refused(peer, true, src, TEST_GVA - 1, 2);
        test_refused(peer, true, src, TEST_GVA, TEST_SEG + 1);
    }
    if (test_can_get(peer)) {
        test_refused(peer, false, dst, TEST_GVA - 1, 1);
        test_refused(peer, false, dst, TEST_GVA + TEST_SEG, 1);
        test_refused(peer, false, dst, UINT64_MAX - 1, 2);
    }
    TK_CHECK(test_flush(peer) == MF_OK);
    free(src);
    free(dst);
}

static void test_sizes(void **state)
{
    for (size_t i = 0; i < mf_tl_count(); i++) {
        if (test_moves_host(mf_tl_at(i), "sizes")) {
            test_run(mf_tl_at(i), test_sizes_child, test_sizes_image);
        }
    }
}

/* ------------------------------------------------- many in flight */

static size_t test_many_size(unsigned i)
{
    return i % 50 == 0 ? TEST_MB + i : 1 + (size_t)i * 37 % 9000;
}

/* Where the i-th of the many operations goes: one after the other, 3
 * bytes apart.  Returns where the last one ends. */
static uint64_t test_many_plan(uint64_t *off, size_t *size)
{
    uint64_t pos = 5;

    for (unsigned i = 0; i < TEST_MANY; i++) {
        size[i] = test_many_size(i);
        off[i] = pos;
        pos += size[i] + 3;
    }
    return pos;
}

static void test_many_image(uint8_t *image, const mf_tl_caps_t *caps)
{
    uint64_t off[TEST_MANY];
    size_t size[TEST_MANY];

    if (!(caps->flags & MF_TL_CAP_PUT)) {
        return;
    }
    test_many_plan(off, size);
    for (unsigned i = 0; i < TEST_MANY; i++) {
        tk_pattern_fill(image + off[i], size[i], TEST_PUT_SEED, off[i]);
    }
}

/*
 * Hundreds of puts, then of gets, issued before any is waited for: each
 * is done at once or completes exactly once, a flush completes after
 * every operation before it, and every byte arrives.
 */
static void test_many_child(test_peer_t *peer)
{
    const mf_tl_ops_t *ops = peer->ops;
    test_comp_t *comps = calloc(TEST_MANY, sizeof(*comps));
    mf_status_t *started = calloc(TEST_MANY, sizeof(*started));
    uint8_t *src = malloc(TEST_SEG), *dst = malloc(TEST_SEG);
    uint64_t off[TEST_MANY];
    size_t size[TEST_MANY];
    uint64_t seed = test_can_put(peer) ? TEST_PUT_SEED : TEST_SEED;
    unsigned i;

    TK_CHECK(comps != NULL && started != NULL && src != NULL && dst != NULL);
    test_many_plan(off, size);
    tk_pattern_fill(src, TEST_SEG, TEST_PUT_SEED, 0);
    for (i = 0; i < TEST_MANY && test_can_put(peer); i++) {
        test_comp_init(&comps[i]);
        started[i] = ops->put(peer->ep, src + off[i], TEST_GVA + off[i],
                              size[i], peer->rkey, &comps[i].super);
        TK_CHECK(started[i] == MF_OK || started[i] == MF_INPROGRESS);
    }
    if (test_can_put(peer)) {
        TK_CHECK(test_flush(peer) == MF_OK);
        for (i = 0; i < TEST_MANY; i++) {
            TK_CHECK(test_comp_calls(&comps[i]) ==
                     (started[i] == MF_INPROGRESS ? 1u : 0u));
            TK_CHECK(started[i] == MF_OK || comps[i].status == MF_OK);
        }
    }
    memset(dst, 0, TEST_SEG);
    for (i = 0; i < TEST_MANY && test_can_get(peer); i++) {
        test_comp_init(&comps[i]);
        started[i] = ops->get(peer->ep, dst + off[i], TEST_GVA + off[i],
                              size[i], peer->rkey, &comps[i].super);
        TK_CHECK(started[i] == MF_OK || started[i] == MF_INPROGRESS);
    }
    for (i = 0; i < TEST_MANY && test_can_get(peer); i++) {
        TK_CHECK_OK(test_comp_wait(peer->iface, &comps[i], started[i]));
        TK_CHECK(tk_pattern_check(dst + off[i], size[i], seed, off[i]) < 0);
        /* the gap after it stays untouched */
        TK_CHECK(tk_mem_find_not(dst + off[i] + size[i], 0, 3) < 0);
    }
    /* nothing fires twice, nor late */
    TK_CHECK(test_flush(peer) == MF_OK);
    usleep(10 * 1000);
    ops->progress(peer->iface);
    for (i = 0; i < TEST_MANY && test_can_get(peer); i++) {
        TK_CHECK(test_comp_calls(&comps[i]) ==
                 (started[i] == MF_INPROGRESS ? 1u : 0u));
    }
    free(comps);
    free(started);
    free(src);
    free(dst);
}

static void test_many(void **state)
{
    uint64_t off[TEST_MANY];
    size_t size[TEST_MANY];

    assert_true(test_many_plan(off, size) <= TEST_SEG);
    for (size_t i = 0; i < mf_tl_count(); i++) {
        if (test_moves_host(mf_tl_at(i), "many in flight")) {
            test_run(mf_tl_at(i), test_many_child, test_many_image);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_open),
        cmocka_unit_test_teardown(test_keys, test_owner_teardown),
        cmocka_unit_test_teardown(test_sizes, test_owner_teardown),
        cmocka_unit_test_teardown(test_many, test_owner_teardown),
    };

    mf_log_set_level(MF_LOG_WARN);
    return tk_group_run(tests, NULL, NULL);
}
