/*
 * Unit tests of the fabric layer.
 *
 * Without the store: the config table (defaults, environment, files, set,
 * help, bad values), a pool object of rank 1 in a world of 4 (address
 * translation, own-segment copies of every direction, ranges crossing a
 * segment's end, overflow, unsupported directions, batch, async,
 * registration), and a peer segment from a forked process applied from
 * its descriptor, copied to and from, and unmapped while another thread
 * copies from it.
 *
 * With a real store server in this process and ranks as forked children:
 * 4 ranks copying every direction byte for byte, batch and async; a
 * graceful leave and rejoin while others copy; a SIGKILLed rank reported
 * as lost while the others keep working; an address conflict in one rank
 * failing create on every rank.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_window.h"
#include "tk_group.h"
#include "tk_pattern.h"
#include "tk_proc.h"

#include "fabric/core/core.h"
#include "fabric/core/desc.h"

#include <memfabric/memfabric.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The fabric pool behind a BM handle, for checks of the internals. */
#define TEST_POOL(_bm) ((mf_fabric_pool_t *)(_bm))
/* How long a child may run before it is taken for hung: a bound for hangs
 * only (sanitizer builds on a loaded machine are many times slower). */
#define TEST_CHILD_MS 600000

#define TEST_MB (1024ull * 1024ull)

/* Checks size bytes at p against the pattern of tag from byte off of the
 * object; on a mismatch names the byte, what it holds and the pattern of
 * which other tag (if any of the tags a test uses) it holds instead. */
static bool test_check(const void *p, uint64_t off, size_t size, uint32_t tag)
{
    ssize_t bad = tk_pattern_check(p, size, tag, off);
    const uint8_t *b = p;
    uint8_t want;
    size_t run;

    if (bad < 0) {
        return true;
    }
    tk_pattern_fill(&want, 1, tag, off + (uint64_t)bad);
    for (run = (size_t)bad; run < size; run++) {
        uint8_t w;

        tk_pattern_fill(&w, 1, tag, off + run);
        if (b[run] == w) {
            break;
        }
    }
    fprintf(stderr,
            "byte %zd (off 0x%llx, tag %u) of %zu: 0x%02x, expected 0x%02x; "
            "%zu bytes differ from there\n",
            bad, (unsigned long long)(off + (uint64_t)bad), tag, size, b[bad],
            want, run - (size_t)bad);
    for (uint32_t other = 0; other < 256; other++) {
        if (other != tag &&
            tk_pattern_check(b + bad, MF_MIN(run - (size_t)bad, 64), other,
                             off + (uint64_t)bad) < 0) {
            fprintf(stderr, "  they hold tag %u at the same offset\n", other);
        }
    }
    return false;
}

/* ============================================================ descriptor */

/* Round trip; every cut and a trailing byte are refused. */
static void test_desc_codec(void **state)
{
    mf_fabric_desc_t desc, back;
    uint8_t addr[3] = {1, 2, 3}, rkey[40];
    mf_wbuf_t w;
    size_t cut;

    memset(&desc, 0, sizeof(desc));
    memset(rkey, 0x5a, sizeof(rkey));
    desc.rank = 3;
    desc.gva = 0x200000000000ull;
    desc.size = 1000;
    desc.map_size = 4096;
    desc.incarnation = 77;
    desc.pid = 1234;
    snprintf(desc.host_id, sizeof(desc.host_id), "host-a");
    desc.ntl = 2;
    snprintf(desc.tls[0].name, sizeof(desc.tls[0].name), "shm");
    desc.tls[0].addr = addr;
    desc.tls[0].addr_len = sizeof(addr);
    desc.tls[0].rkey = rkey;
    desc.tls[0].rkey_len = sizeof(rkey);
    snprintf(desc.tls[1].name, sizeof(desc.tls[1].name), "tcp");
    desc.tls[1].addr = addr;
    desc.tls[1].addr_len = 0;
    desc.tls[1].rkey = rkey;
    desc.tls[1].rkey_len = 8;
    mf_wbuf_init(&w);
    mf_fabric_desc_encode(&desc, &w);
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    assert_int_equal(mf_fabric_desc_decode(w.data, w.len, &back), MF_OK);
    assert_int_equal(back.rank, 3);
    assert_int_equal(back.gva, desc.gva);
    assert_int_equal(back.size, 1000);
    assert_int_equal(back.map_size, 4096);
    assert_int_equal(back.incarnation, 77);
    assert_int_equal(back.pid, 1234);
    assert_false(back.leaving);
    assert_string_equal(back.host_id, "host-a");
    assert_int_equal(back.ntl, 2);
    assert_string_equal(back.tls[1].name, "tcp");
    assert_int_equal(back.tls[0].rkey_len, sizeof(rkey));
    assert_memory_equal(back.tls[0].rkey, rkey, sizeof(rkey));
    for (cut = 0; cut < w.len; cut++) {
        assert_int_equal(mf_fabric_desc_decode(w.data, cut, &back),
                         MF_ERR_PROTO);
    }
    mf_wbuf_put_u8(&w, 0);
    assert_int_equal(mf_fabric_desc_decode(w.data, w.len, &back), MF_ERR_PROTO);
    mf_wbuf_free(&w);
    /* more transports than a descriptor may name */
    desc.ntl = MF_FABRIC_DESC_TL_MAX + 1;
    mf_wbuf_init(&w);
    mf_fabric_desc_encode(&desc, &w);
    assert_int_equal(mf_fabric_desc_decode(w.data, w.len, &back), MF_ERR_PROTO);
    mf_wbuf_free(&w);
}

/* ================================================================ config */

/* The text form of key in cfg (a static buffer). */
static const char *test_cfg_get(const mf_bm_config_t *cfg, const char *key)
{
    static char value[256];

    assert_int_equal(mf_bm_config_get(cfg, key, value, sizeof(value)), MF_OK);
    return value;
}

static void test_config(void **state)
{
    mf_bm_config_t cfg;
    char path[] = "/tmp/test_fabric_cfgXXXXXX";
    char *text = NULL;
    size_t text_len = 0;
    FILE *out;
    int fd;

    unsetenv("MF_COPY_THREADS");
    unsetenv("MF_HOST_BASE");
    mf_bm_config_init(&cfg);
    assert_int_equal(cfg.size, sizeof(cfg));
    assert_int_equal(cfg.host_base, MF_FABRIC_DEFAULT_BASE);
    assert_int_equal(cfg.copy_threads, 1);
    assert_int_equal(cfg.copy_split_min, TEST_MB);
    assert_int_equal(cfg.timeout_ms, 60000);
    assert_int_equal(cfg.op_timeout_ms, 10000);
    assert_int_equal(cfg.heartbeat_ms, 1000);
    assert_true(cfg.prefault);
    assert_string_equal(cfg.transport, "auto");
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "2");
    assert_string_equal(test_cfg_get(&cfg, "tcp.chunk_size"), "524288");
    assert_string_equal(test_cfg_get(&cfg, "tcp.addr"), "");
    assert_string_equal(test_cfg_get(&cfg, "tcp.port"), "0");
    assert_string_equal(test_cfg_get(&cfg, "tcp.timeout_ms"), "30000");
    assert_string_equal(test_cfg_get(&cfg, "copy_threads"), "1");
    assert_string_equal(cfg.host_id, "");
    assert_string_equal(cfg.tl_settings, ""); /* nothing set: defaults */

    /* the transport's settings, owned and checked by the transport */
    assert_int_equal(mf_bm_config_set(&cfg, "transport", "tcp"), MF_OK);
    assert_string_equal(cfg.transport, "tcp");
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.lanes", "4"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "4");
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.chunk_size", "1M"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.chunk_size"), "1048576");
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.addr", "10.1.2.3"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.addr"), "10.1.2.3");
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.port", "7000"), MF_OK);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.lanes", "3"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.port"), "7000");
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "3");
    assert_int_equal(mf_bm_config_set(&cfg, "host_id", "rack1-node7"), MF_OK);
    assert_string_equal(cfg.host_id, "rack1-node7");
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.lanes", "0"), MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.lanes", "17"), MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.chunk_size", "1K"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.port", "65536"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.nosuch", "1"), MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "tcp.addr", "a\nb"), MF_ERR_CONFIG);
    mf_log_set_level(MF_LOG_WARN);
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "3");
    assert_int_equal(mf_bm_config_get(&cfg, "tcp.nosuch", (char[8]){0}, 8),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_get(&cfg, "tcp.addr", (char[4]){0}, 4),
                     MF_ERR_TOO_LARGE);
    /* the old names are aliases */
    assert_int_equal(mf_bm_config_set(&cfg, "tcp_lanes", "5"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "5");
    assert_string_equal(test_cfg_get(&cfg, "tcp_lanes"), "5");
    assert_int_equal(mf_bm_config_set(&cfg, "tcp_timeout_ms", "5s"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.timeout_ms"), "5000");
    /* a hand-broken struct is caught */
    assert_int_equal(mf_bm_config_check(&cfg), MF_OK);
    snprintf(cfg.tl_settings, sizeof(cfg.tl_settings), "tcp.lanes=99\n");
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_bm_config_check(&cfg), MF_ERR_CONFIG);
    mf_log_set_level(MF_LOG_WARN);
    setenv("MF_TCP_LANES", "7", 1); /* tcp.lanes and tcp_lanes alike */
    setenv("MF_TRANSPORT", "tcp", 1);
    setenv("MF_HOST_ID", "from-env", 1);
    mf_bm_config_init(&cfg);
    assert_string_equal(cfg.transport, "tcp");
    assert_string_equal(cfg.host_id, "from-env");
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "7");
    unsetenv("MF_TCP_LANES");
    setenv("MMC_FABRIC_TCP_CHUNK_SIZE", "64K", 1);
    assert_int_equal(mf_bm_config_load_env(&cfg, "MMC_FABRIC_"), MF_OK);
    assert_string_equal(test_cfg_get(&cfg, "tcp.chunk_size"), "65536");
    assert_string_equal(test_cfg_get(&cfg, "tcp.lanes"), "7");
    setenv("MMC_FABRIC_TCP_CHUNK_SIZE", "1", 1);
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_bm_config_load_env(&cfg, "MMC_FABRIC_"), MF_ERR_CONFIG);
    mf_log_set_level(MF_LOG_WARN);
    assert_string_equal(test_cfg_get(&cfg, "tcp.chunk_size"), "65536");
    unsetenv("MMC_FABRIC_TCP_CHUNK_SIZE");
    unsetenv("MF_TRANSPORT");
    unsetenv("MF_HOST_ID");

    /* environment */
    setenv("MF_COPY_THREADS", "3", 1);
    setenv("MF_HOST_BASE", "0x280000000000", 1);
    mf_bm_config_init(&cfg);
    assert_int_equal(cfg.copy_threads, 3);
    assert_int_equal(cfg.host_base, 0x280000000000ull);
    mf_log_set_level(MF_LOG_OFF);
    setenv("MF_COPY_THREADS", "65", 1); /* the whole environment ignored */
    mf_bm_config_init(&cfg);
    assert_int_equal(cfg.copy_threads, 1);
    assert_int_equal(cfg.host_base, MF_FABRIC_DEFAULT_BASE);
    unsetenv("MF_COPY_THREADS");
    unsetenv("MF_HOST_BASE");

    /* set */
    mf_bm_config_init(&cfg);
    assert_int_equal(mf_bm_config_set(&cfg, "copy_threads", "2"), MF_OK);
    assert_int_equal(cfg.copy_threads, 2);
    assert_int_equal(mf_bm_config_set(&cfg, "copy_split_min", "256K"), MF_OK);
    assert_int_equal(cfg.copy_split_min, 256 * 1024);
    assert_int_equal(mf_bm_config_set(&cfg, "timeout_ms", "2s"), MF_OK);
    assert_int_equal(cfg.timeout_ms, 2000);
    assert_int_equal(mf_bm_config_set(&cfg, "prefault", "off"), MF_OK);
    assert_false(cfg.prefault);
    assert_int_equal(mf_bm_config_set(&cfg, "transport", "shm"), MF_OK);
    assert_string_equal(cfg.transport, "shm");
    assert_int_equal(mf_bm_config_set(&cfg, "copy_threads", "65"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "copy_threads", "two"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "transport", "carrier-pigeon"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "host_base", "0x100000000001"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "no_such_key", "1"), MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(&cfg, "prefault", "maybe"),
                     MF_ERR_CONFIG);
    assert_int_equal(mf_bm_config_set(NULL, "prefault", "on"), MF_ERR_INVALID);
    /* failed sets changed nothing */
    assert_int_equal(cfg.copy_threads, 2);
    assert_string_equal(cfg.transport, "shm");
    assert_int_equal(cfg.host_base, MF_FABRIC_DEFAULT_BASE);

    /* file */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(dprintf(fd, "# test\ncopy_threads = 4\n\nhost_base = "
                            "0x300000000000\nprefault = no\n") > 0);
    close(fd);
    mf_bm_config_init(&cfg);
    assert_int_equal(mf_bm_config_load(&cfg, path), MF_OK);
    assert_int_equal(cfg.copy_threads, 4);
    assert_int_equal(cfg.host_base, 0x300000000000ull);
    assert_false(cfg.prefault);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_true(dprintf(fd, "copy_threads = 8\ntransport = tcpx\n") > 0);
    close(fd);
    assert_int_equal(mf_bm_config_load(&cfg, path), MF_ERR_CONFIG);
    assert_int_equal(cfg.copy_threads, 4); /* all or nothing */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_true(dprintf(fd, "copy_threads = 1\nbogus line\n") > 0);
    close(fd);
    assert_int_equal(mf_bm_config_load(&cfg, path), MF_ERR_CONFIG);
    unlink(path);
    assert_int_not_equal(mf_bm_config_load(&cfg, path), MF_OK);
    mf_log_set_level(MF_LOG_WARN);

    /* help names every key and its variable */
    out = open_memstream(&text, &text_len);
    assert_non_null(out);
    mf_bm_config_help(out);
    fclose(out);
    for (size_t i = 0; i < mf_fabric_cfg_table.count; i++) {
        assert_non_null(strstr(text, mf_fabric_cfg_table.entries[i].name));
    }
    assert_non_null(strstr(text, "MF_HOST_BASE"));
    assert_non_null(strstr(text, "MF_COPY_SPLIT_MIN"));
    free(text);
}

static void test_names(void **state)
{
    assert_string_equal(mf_copy_dir_name(MF_COPY_LH2GH), "LH2GH");
    assert_string_equal(mf_copy_dir_name(MF_COPY_GD2GD), "GD2GD");
    assert_string_equal(mf_copy_dir_name(MF_COPY_AUTO), "AUTO");
    assert_string_equal(mf_copy_dir_name(MF_COPY_DIR_MAX), "UNKNOWN");
    assert_string_equal(mf_version(), "0.1.0");
    assert_int_equal(mf_init(), MF_OK);
    assert_int_equal(mf_init(), MF_OK);
    mf_uninit();
    mf_uninit();
}

/* ============================================== a pool without the store */

#define LOCAL_BASE   TEST_WINDOW(3)
#define LOCAL_STRIDE (64 * TEST_MB)
#define LOCAL_SIZE   (8 * TEST_MB + 4096 * 3)
#define LOCAL_WORLD  4

typedef struct test_local {
    mf_bm_t *bm;
    mf_bm_config_t cfg;
    uint64_t window;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int events;
    uint32_t ev_rank;
    bool ev_joined;
    mf_status_t ev_reason;
} test_local_t;

static void test_local_rank_cb(mf_bm_t *bm, uint32_t rank, bool joined,
                               mf_status_t reason, void *arg)
{
    test_local_t *t = arg;

    pthread_mutex_lock(&t->lock);
    t->events++;
    t->ev_rank = rank;
    t->ev_joined = joined;
    t->ev_reason = reason;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static mf_status_t test_local_open(test_local_t *t, uint32_t rank,
                                   uint32_t threads)
{
    mf_bm_create_params_t params;
    uint64_t dev_len;
    mf_status_t st;

    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    mf_bm_config_init(&t->cfg);
    t->cfg.host_base = LOCAL_BASE;
    t->cfg.copy_threads = threads;
    t->cfg.copy_split_min = 256 * 1024;
    mf_bm_create_params_init(&params);
    params.local_dram_size = LOCAL_SIZE;
    params.max_dram_per_rank = LOCAL_STRIDE;
    st = mf_fabric_window_check(&t->cfg, LOCAL_WORLD, &params, &t->window,
                                &dev_len);
    if (st != MF_OK) {
        return st;
    }
    st = mf_mem_reserve(LOCAL_BASE, t->window, NULL, 0);
    if (st != MF_OK) {
        return st;
    }
    st = mf_fabric_pool_alloc(7, rank, LOCAL_WORLD, &t->cfg, &params, NULL,
                              (mf_fabric_pool_t **)&t->bm);
    if (st != MF_OK) {
        mf_mem_unreserve(LOCAL_BASE, t->window);
        return st;
    }
    mf_bm_set_rank_cb(t->bm, test_local_rank_cb, t);
    return MF_OK;
}

static void test_local_close(test_local_t *t)
{
    mf_fabric_pool_free(TEST_POOL(t->bm));
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
}

static void test_window_check(void **state)
{
    mf_bm_create_params_t p;
    mf_bm_config_t cfg;
    uint64_t len, dev_len;

    mf_bm_config_init(&cfg);
    mf_bm_create_params_init(&p);
    p.local_dram_size = TEST_MB;
    p.max_dram_per_rank = 2 * TEST_MB;
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_OK);
    assert_int_equal(len, 8 * TEST_MB);
    assert_int_equal(mf_fabric_window_check(&cfg, 0, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.local_dram_size = 3 * TEST_MB; /* > max */
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.local_dram_size = 0;
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.local_dram_size = 100;
    p.max_dram_per_rank = TEST_MB + 100; /* not page aligned */
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.max_dram_per_rank = 1ull << 40; /* 16 TiB + 4096 x 1 TiB > 2^47 */
    assert_int_equal(mf_fabric_window_check(&cfg, 4096, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.max_dram_per_rank = 1ull << 62; /* multiplication overflows */
    assert_int_equal(mf_fabric_window_check(&cfg, 8, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.max_dram_per_rank = TEST_MB;
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_OK);
    assert_int_equal(dev_len, 0); /* no device window */
    /* device memory: this program has no driver (main) */
    p.local_hbm_size = TEST_MB;
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID); /* without max_hbm_per_rank */
    p.max_hbm_per_rank = 2 * TEST_MB;
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_UNSUPPORTED);
    p.local_hbm_size = 0; /* a window, no device memory of its own */
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_OK);
    assert_int_equal(dev_len, 8 * TEST_MB);
    p.max_hbm_per_rank = 3 * TEST_MB; /* not a multiple of 2 MiB */
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    p.max_hbm_per_rank = 2 * TEST_MB;
    cfg.device_base = cfg.host_base + 2 * TEST_MB; /* meets the host window */
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    mf_bm_config_init(&cfg);
    p.max_hbm_per_rank = 0;
    p.size = 8;
    assert_int_equal(mf_fabric_window_check(&cfg, 4, &p, &len, &dev_len),
                     MF_ERR_INVALID);
    mf_log_set_level(MF_LOG_WARN);
}

static void test_local_translation(void **state)
{
    test_local_t t;
    uint64_t own, gva;
    uint32_t rank;
    mf_bm_t *bm;

    assert_int_equal(test_local_open(&t, 1, 1), MF_OK);
    bm = t.bm;
    own = LOCAL_BASE + LOCAL_STRIDE;
    assert_ptr_equal(mf_bm_gva_of_rank(bm, 0, MF_MEM_HOST), (void *)LOCAL_BASE);
    assert_ptr_equal(mf_bm_gva_of_rank(bm, 1, MF_MEM_HOST), (void *)own);
    assert_ptr_equal(mf_bm_gva_of_rank(bm, 3, MF_MEM_HOST),
                     (void *)(LOCAL_BASE + 3 * LOCAL_STRIDE));
    assert_null(mf_bm_gva_of_rank(bm, 4, MF_MEM_HOST));
    assert_null(mf_bm_gva_of_rank(bm, 0, MF_MEM_DEVICE));
    assert_null(mf_bm_gva_of_rank(NULL, 0, MF_MEM_HOST));

    for (rank = 0; rank < LOCAL_WORLD; rank++) {
        uint32_t r = 99;

        gva = LOCAL_BASE + rank * LOCAL_STRIDE;
        assert_int_equal(mf_bm_rank_of_gva(bm, gva, &r), MF_OK);
        assert_int_equal(r, rank);
        assert_int_equal(mf_bm_rank_of_gva(bm, gva + LOCAL_STRIDE - 1, &r),
                         MF_OK);
        assert_int_equal(r, rank);
    }
    rank = 99;
    assert_int_equal(mf_bm_rank_of_gva(bm, LOCAL_BASE - 1, &rank),
                     MF_ERR_OUT_OF_RANGE);
    assert_int_equal(
        mf_bm_rank_of_gva(bm, LOCAL_BASE + LOCAL_WORLD * LOCAL_STRIDE, &rank),
        MF_ERR_OUT_OF_RANGE);
    assert_int_equal(mf_bm_rank_of_gva(bm, 0, &rank), MF_ERR_OUT_OF_RANGE);
    assert_int_equal(rank, 99); /* outputs only on success */
    assert_int_equal(mf_bm_local_size(bm, MF_MEM_HOST), LOCAL_SIZE);
    assert_int_equal(mf_bm_local_size(bm, MF_MEM_DEVICE), 0);
    assert_false(mf_bm_rank_joined(bm, 0));
    assert_false(mf_bm_rank_joined(bm, 1)); /* not joined yet */
    assert_false(mf_bm_rank_joined(bm, 9));
    test_local_close(&t);
}

static void test_local_copies(void **state)
{
    size_t big = 4 * TEST_MB + 77;
    uint8_t *buf = malloc(LOCAL_SIZE), *back = malloc(LOCAL_SIZE);
    uint64_t own = LOCAL_BASE + LOCAL_STRIDE, peer = LOCAL_BASE;
    uint64_t end = own + LOCAL_SIZE;
    tk_rng_t rng;
    mf_copy_piece_t pieces[8];
    mf_status_t results[8];
    mf_bm_req_t *req;
    test_local_t t;
    mf_bm_t *bm;
    int i;

    assert_non_null(buf);
    assert_non_null(back);
    assert_int_equal(test_local_open(&t, 1, 2), MF_OK);
    bm = t.bm;
    tk_rng_seed(&rng, 3);

    /* own segment: every host direction, random unaligned pieces */
    tk_pattern_fill(buf, LOCAL_SIZE, 3, 0);
    assert_int_equal(
        mf_bm_copy(bm, (uint64_t)buf, own, LOCAL_SIZE, MF_COPY_LH2GH), MF_OK);
    assert_true(test_check((void *)own, 0, LOCAL_SIZE, 3));
    for (i = 0; i < 300; i++) {
        uint64_t size = 1 + tk_rng_next(&rng) % (i % 10 == 0 ? big : 70000);
        uint64_t off = tk_rng_next(&rng) % (LOCAL_SIZE - size + 1);
        uint64_t off2 = tk_rng_next(&rng) % (LOCAL_SIZE - size + 1);
        mf_copy_dir_t dir = i % 2 ? MF_COPY_GH2LH : MF_COPY_AUTO;

        memset(back, 0, size);
        assert_int_equal(mf_bm_copy(bm, own + off, (uint64_t)back, size, dir),
                         MF_OK);
        assert_true(test_check(back, off, size, 3));
        /* GH2GH inside the own segment (no overlap: copy to scratch) */
        if (off2 + size <= off || off + size <= off2) {
            assert_int_equal(mf_bm_copy(bm, own + off, own + off2, size,
                                        i % 3 ? MF_COPY_GH2GH : MF_COPY_AUTO),
                             MF_OK);
            assert_true(test_check((void *)(own + off2), off, size, 3));
            /* restore */
            assert_int_equal(mf_bm_copy(bm, (uint64_t)buf + off2, own + off2,
                                        size, MF_COPY_LH2GH),
                             MF_OK);
        }
    }

    /* size 0 is a no-op that succeeds */
    assert_int_equal(mf_bm_copy(bm, 0, 0, 0, MF_COPY_LH2GH), MF_OK);
    /* bad addresses: errors, never a crash */
    mf_log_set_level(MF_LOG_ERROR); /* the warning about the first one */
    assert_int_equal(mf_bm_copy(bm, (uint64_t)buf, end - 10, 11, MF_COPY_LH2GH),
                     MF_ERR_OUT_OF_RANGE); /* crosses the segment's end */
    assert_int_equal(mf_bm_copy(bm, end, (uint64_t)buf, 1, MF_COPY_GH2LH),
                     MF_ERR_OUT_OF_RANGE); /* past the end, in the slot */
    assert_int_equal(mf_bm_copy(bm, (uint64_t)buf, end - 10, 10, MF_COPY_LH2GH),
                     MF_OK);
    assert_int_equal(mf_bm_copy(bm, peer, (uint64_t)buf, 16, MF_COPY_GH2LH),
                     MF_ERR_OUT_OF_RANGE); /* rank 0 has not joined */
    assert_int_equal(
        mf_bm_copy(bm, (uint64_t)buf, (uint64_t)back, 16, MF_COPY_LH2GH),
        MF_ERR_OUT_OF_RANGE); /* G address outside the window */
    assert_int_equal(
        mf_bm_copy(bm, (uint64_t)buf, (uint64_t)back, 16, MF_COPY_AUTO),
        MF_ERR_OUT_OF_RANGE); /* AUTO without a G address */
    assert_int_equal(mf_bm_copy(bm, own, UINT64_MAX - 8, 16, MF_COPY_GH2LH),
                     MF_ERR_INVALID); /* local range wraps around */
    assert_int_equal(
        mf_bm_copy(bm, UINT64_MAX - 8, (uint64_t)buf, 16, MF_COPY_GH2LH),
        MF_ERR_OUT_OF_RANGE);
    assert_int_equal(
        mf_bm_copy(bm, own, (uint64_t)buf, UINT64_MAX, MF_COPY_GH2LH),
        MF_ERR_OUT_OF_RANGE);
    assert_int_equal(mf_bm_copy(bm, LOCAL_BASE - 8, own, 16, MF_COPY_LH2GH),
                     MF_ERR_OUT_OF_RANGE); /* "local" overlapping the window */
    assert_int_equal(mf_bm_copy(bm, own, 0, 16, MF_COPY_GH2LH), MF_ERR_INVALID);
    assert_int_equal(mf_bm_copy(bm, own, (uint64_t)buf, 16, MF_COPY_GD2LH),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_bm_copy(bm, own, (uint64_t)buf, 16, MF_COPY_LH2GD),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_bm_copy(bm, own, (uint64_t)buf, 16, MF_COPY_DIR_MAX),
                     MF_ERR_INVALID);
    assert_int_equal(mf_bm_copy(NULL, own, (uint64_t)buf, 16, MF_COPY_AUTO),
                     MF_ERR_INVALID);

    /* batch with per-piece results, inline and across threads */
    for (int round = 0; round < 2; round++) {
        size_t psize = round == 0 ? 1000 : TEST_MB - 3;

        for (i = 0; i < 8; i++) {
            pieces[i].src = own + (uint64_t)i * psize + 5;
            pieces[i].dst = (uint64_t)back + (uint64_t)i * psize;
            pieces[i].size = psize;
        }
        pieces[5].src = end - 3; /* crosses the end */
        pieces[6].src = peer;    /* not joined */
        memset(results, 0x7f, sizeof(results));
        assert_int_equal(
            mf_bm_copy_batch(bm, pieces, 8, MF_COPY_GH2LH, results),
            MF_ERR_OUT_OF_RANGE);
        for (i = 0; i < 8; i++) {
            if (i == 5 || i == 6) {
                assert_int_equal(results[i], MF_ERR_OUT_OF_RANGE);
            } else {
                assert_int_equal(results[i], MF_OK);
                assert_true(test_check(back + (uint64_t)i * psize,
                                       (uint64_t)i * psize + 5, psize, 3));
            }
        }
        pieces[5].src = own;
        pieces[6].src = own;
        assert_int_equal(mf_bm_copy_batch(bm, pieces, 8, MF_COPY_GH2LH, NULL),
                         MF_OK);
    }
    assert_int_equal(mf_bm_copy_batch(bm, pieces, 0, MF_COPY_GH2LH, NULL),
                     MF_OK);
    /* many small pieces, split into runs across threads: a bad piece in
     * the middle of a run fails alone, the pieces after it still copy */
    for (int round = 0; round < 2; round++) {
        size_t n = 301, psize = round == 0 ? 64 : 4093;
        mf_copy_piece_t *many = calloc(n, sizeof(*many));
        mf_status_t *res = calloc(n, sizeof(*res));
        size_t k;

        assert_non_null(many);
        assert_non_null(res);
        memset(back, 0, n * psize);
        for (k = 0; k < n; k++) {
            /* reverse order, so the batch is not one long memcpy */
            many[k].src = own + (uint64_t)(n - 1 - k) * psize + 7;
            many[k].dst = (uint64_t)back + (uint64_t)k * psize;
            many[k].size = psize;
        }
        many[100].src = end - 1; /* crosses the end */
        many[101].src = peer;    /* not joined */
        many[250].size = 0;      /* nothing to do */
        assert_int_equal(mf_bm_copy_batch(bm, many, n, MF_COPY_AUTO, res),
                         MF_ERR_OUT_OF_RANGE);
        for (k = 0; k < n; k++) {
            if (k == 100 || k == 101) {
                assert_int_equal(res[k], MF_ERR_OUT_OF_RANGE);
            } else if (k != 250) {
                assert_int_equal(res[k], MF_OK);
                assert_true(test_check(back + (uint64_t)k * psize,
                                       (uint64_t)(n - 1 - k) * psize + 7, psize,
                                       3));
            } else {
                assert_int_equal(res[k], MF_OK);
            }
        }
        memset(back, 0, n * psize);
        assert_int_equal(
            mf_bm_copy_batch_async(bm, many, n, MF_COPY_GH2LH, &req), MF_OK);
        assert_int_equal(mf_bm_wait(req, -1), MF_ERR_OUT_OF_RANGE);
        assert_true(test_check(back + (uint64_t)(n - 1) * psize, 7, psize, 3));
        free(res);
        free(many);
    }
    assert_int_equal(mf_bm_copy_batch(bm, NULL, 2, MF_COPY_GH2LH, NULL),
                     MF_ERR_INVALID);

    /* async, single and batch */
    memset(back, 0, LOCAL_SIZE);
    assert_int_equal(
        mf_bm_copy_async(bm, own + 1, (uint64_t)back, big, MF_COPY_GH2LH, &req),
        MF_OK);
    assert_int_equal(mf_bm_wait(req, -1), MF_OK);
    assert_true(test_check(back, 1, big, 3));
    assert_int_equal(
        mf_bm_copy_async(bm, own + 1, (uint64_t)back, 64, MF_COPY_GH2LH, &req),
        MF_OK);
    for (;;) {
        mf_status_t st = mf_bm_test(req);

        if (st != MF_INPROGRESS) {
            assert_int_equal(st, MF_OK);
            break;
        }
    }
    assert_int_equal(
        mf_bm_copy_async(bm, peer, (uint64_t)back, 64, MF_COPY_GH2LH, &req),
        MF_ERR_OUT_OF_RANGE);
    assert_int_equal(
        mf_bm_copy_async(bm, own, (uint64_t)back, 0, MF_COPY_GH2LH, &req),
        MF_OK);
    assert_int_equal(mf_bm_wait(req, 1000), MF_OK);
    for (i = 0; i < 8; i++) {
        pieces[i].src = (uint64_t)buf + (uint64_t)i * 100000;
        pieces[i].dst = own + (uint64_t)i * 100000 + 3;
        pieces[i].size = 100000;
    }
    assert_int_equal(mf_bm_copy_batch_async(bm, pieces, 8, MF_COPY_LH2GH, &req),
                     MF_OK);
    assert_int_equal(mf_bm_wait(req, 10000), MF_OK);
    for (i = 0; i < 8; i++) {
        assert_true(test_check((void *)(own + (uint64_t)i * 100000 + 3),
                               (uint64_t)i * 100000, 100000, 3));
    }
    pieces[2].dst = end;
    assert_int_equal(mf_bm_copy_batch_async(bm, pieces, 8, MF_COPY_LH2GH, &req),
                     MF_OK);
    assert_int_equal(mf_bm_wait(req, -1), MF_ERR_OUT_OF_RANGE);
    mf_log_set_level(MF_LOG_WARN);

    /* registration */
    assert_int_equal(mf_bm_register(bm, buf, 4096), MF_OK);
    assert_int_equal(mf_bm_register(bm, buf + 4095, 10), MF_ERR_EXISTS);
    assert_int_equal(mf_bm_register(bm, buf + 4096, 4096), MF_OK);
    assert_int_equal(mf_bm_register(bm, buf, 0), MF_ERR_INVALID);
    assert_int_equal(mf_bm_unregister(bm, buf + 1), MF_ERR_NOT_FOUND);
    assert_int_equal(mf_bm_unregister(bm, buf), MF_OK);
    assert_int_equal(mf_bm_unregister(bm, buf), MF_ERR_NOT_FOUND);
    /* buf + 4096 stays registered: destroy releases it */

    test_local_close(&t);
    free(buf);
    free(back);
}

/* A copy loop racing with the unmapping of the segment it reads. */
typedef struct test_racer {
    mf_bm_t *bm;
    uint64_t src;
    size_t size;
    atomic_bool stop;
    atomic_int ok;
    atomic_int lost;
    atomic_int other;
} test_racer_t;

static void *test_racer_main(void *arg)
{
    test_racer_t *r = arg;
    uint8_t *buf = malloc(r->size);

    while (!atomic_load(&r->stop)) {
        mf_status_t st =
            mf_bm_copy(r->bm, r->src, (uint64_t)buf, r->size, MF_COPY_GH2LH);

        if (st == MF_OK) {
            atomic_fetch_add(&r->ok, 1);
        } else if (st == MF_ERR_PEER_LOST) {
            atomic_fetch_add(&r->lost, 1);
        } else {
            atomic_fetch_add(&r->other, 1);
        }
    }
    free(buf);
    return NULL;
}

static void test_local_peer(void **state)
{
    int topipe[2], frompipe[2];
    uint8_t desc[MF_FABRIC_DESC_MAX], *buf;
    uint64_t peer = LOCAL_BASE, len;
    test_racer_t racer;
    pthread_t thread;
    test_local_t t;
    size_t desc_len;
    ssize_t n;
    pid_t pid;
    char c;

    assert_int_equal(pipe(topipe), 0);
    assert_int_equal(pipe(frompipe), 0);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *d;

        alarm(TEST_CHILD_MS / 1000);
        /* rank 0 */
        TK_CHECK_OK(test_local_open(&t, 0, 0));
        tk_pattern_fill((void *)peer, LOCAL_SIZE, 10, 0);
        TK_CHECK_OK(
            mf_fabric_desc_pack(TEST_POOL(t.bm), false, false, &d, &desc_len));
        TK_CHECK(write(frompipe[1], d, desc_len) == (ssize_t)desc_len);
        free(d);
        TK_CHECK(read(topipe[0], &c, 1) == 1);
        /* the parent wrote its pattern at 1 MiB */
        TK_CHECK(test_check((void *)(peer + TEST_MB), 0, 100000, 11));
        test_local_close(&t);
        _exit(0);
    }
    close(frompipe[1]);
    close(topipe[0]);
    n = read(frompipe[0], desc, sizeof(desc));
    assert_true(n > 0);
    desc_len = (size_t)n;

    assert_int_equal(test_local_open(&t, 1, 1), MF_OK);
    atomic_store(&TEST_POOL(t.bm)->joined, true);
    buf = malloc(LOCAL_SIZE);
    assert_non_null(buf);

    /* malformed descriptors change nothing */
    mf_log_set_level(MF_LOG_OFF);
    pthread_mutex_lock(&TEST_POOL(t.bm)->lock);
    mf_fabric_seg_apply_set_locked(TEST_POOL(t.bm), 0, false, desc,
                                   desc_len - 1);
    mf_fabric_seg_apply_set_locked(TEST_POOL(t.bm), 2, false, desc,
                                   desc_len); /* other rank */
    mf_fabric_seg_apply_set_locked(TEST_POOL(t.bm), 0, false, desc, 3);
    pthread_mutex_unlock(&TEST_POOL(t.bm)->lock);
    mf_log_set_level(MF_LOG_WARN);
    assert_false(mf_bm_rank_joined(t.bm, 0));
    assert_false(mf_bm_rank_joined(t.bm, 2));

    pthread_mutex_lock(&TEST_POOL(t.bm)->lock);
    mf_fabric_seg_apply_set_locked(TEST_POOL(t.bm), 0, false, desc, desc_len);
    pthread_mutex_unlock(&TEST_POOL(t.bm)->lock);
    assert_true(mf_bm_rank_joined(t.bm, 0));

    /* the rank callback: joined */
    pthread_mutex_lock(&t.lock);
    while (t.events < 1) {
        pthread_cond_wait(&t.cond, &t.lock);
    }
    assert_int_equal(t.ev_rank, 0);
    assert_true(t.ev_joined);
    assert_int_equal(t.ev_reason, MF_OK);
    pthread_mutex_unlock(&t.lock);

    /* read and write the peer */
    assert_int_equal(mf_bm_copy(t.bm, peer + 3, (uint64_t)buf, LOCAL_SIZE - 3,
                                MF_COPY_GH2LH),
                     MF_OK);
    assert_true(test_check(buf, 3, LOCAL_SIZE - 3, 10));
    tk_pattern_fill(buf, 100000, 11, 0);
    assert_int_equal(
        mf_bm_copy(t.bm, (uint64_t)buf, peer + TEST_MB, 100000, MF_COPY_AUTO),
        MF_OK);
    /* peer to own, GH2GH */
    assert_int_equal(mf_bm_copy(t.bm, peer, LOCAL_BASE + LOCAL_STRIDE,
                                LOCAL_SIZE, MF_COPY_GH2GH),
                     MF_OK);
    assert_true(
        test_check((void *)(LOCAL_BASE + LOCAL_STRIDE), 0, TEST_MB, 10));
    /* applying the same descriptor again is a no-op */
    pthread_mutex_lock(&TEST_POOL(t.bm)->lock);
    mf_fabric_seg_apply_set_locked(TEST_POOL(t.bm), 0, false, desc, desc_len);
    pthread_mutex_unlock(&TEST_POOL(t.bm)->lock);
    assert_true(mf_bm_rank_joined(t.bm, 0));

    /* unmap while another thread copies from it */
    memset(&racer, 0, sizeof(racer));
    racer.bm = t.bm;
    racer.src = peer;
    racer.size = 256 * 1024;
    assert_int_equal(pthread_create(&thread, NULL, test_racer_main, &racer), 0);
    while (atomic_load(&racer.ok) < 20) {
        sched_yield();
    }
    pthread_mutex_lock(&TEST_POOL(t.bm)->lock);
    mf_fabric_seg_leave_locked(TEST_POOL(t.bm), 0, MF_ERR_PEER_LOST, true);
    pthread_mutex_unlock(&TEST_POOL(t.bm)->lock);
    while (atomic_load(&racer.lost) < 5) {
        sched_yield();
    }
    atomic_store(&racer.stop, true);
    pthread_join(thread, NULL);
    assert_int_equal(atomic_load(&racer.other), 0);
    assert_false(mf_bm_rank_joined(t.bm, 0));
    assert_int_equal(mf_bm_copy(t.bm, peer, (uint64_t)buf, 8, MF_COPY_GH2LH),
                     MF_ERR_PEER_LOST);
    pthread_mutex_lock(&t.lock);
    while (t.events < 2) {
        pthread_cond_wait(&t.cond, &t.lock);
    }
    assert_false(t.ev_joined);
    assert_int_equal(t.ev_reason, MF_ERR_PEER_LOST);
    pthread_mutex_unlock(&t.lock);

    /* the window slot is a reservation again */
    {
        char maps[512];

        mf_mem_describe_range(peer, LOCAL_SIZE, maps, sizeof(maps));
        assert_non_null(strstr(maps, "---p"));
        assert_null(strstr(maps, "rw-s"));
    }
    assert_int_equal(write(topipe[1], "x", 1), 1);
    close(topipe[1]);
    close(frompipe[0]);
    assert_int_equal(tk_proc_wait(pid, TEST_CHILD_MS), 0);
    len = t.window;
    test_local_close(&t);
    /* the whole window is released */
    {
        void *p =
            mmap((void *)LOCAL_BASE, len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

        assert_ptr_equal(p, (void *)LOCAL_BASE);
        munmap(p, len);
    }
    free(buf);
}

/* ======================================== ranks as processes, real store */

#define MP_SEG    (32 * TEST_MB)
#define MP_STRIDE (64 * TEST_MB)
#define MP_WORLD  4
#define MP_STRIPE (MP_SEG / 8) /* upper half: one stripe per writer */

typedef struct test_mp {
    pid_t pid; /* the store's own process */
    char url[64];
} test_mp_t;

/*
 * The store runs in a process of its own: the test process then has no
 * threads when it forks the ranks, so no child can inherit a lock that a
 * thread held at the fork (the sanitizers' allocators do not all guard
 * against that).
 */
static void test_mp_start(test_mp_t *mp)
{
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    int fds[2];
    uint16_t port = 0;
    sigset_t set;
    int sig;

    assert_int_equal(pipe(fds), 0);
    mp->pid = tk_proc_fork();
    assert_true(mp->pid >= 0);
    if (mp->pid == 0) {
        close(fds[0]);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        mf_store_server_config_init(&cfg);
        cfg.port = 0;
        if (mf_store_server_start(&cfg, &server) != MF_OK) {
            _exit(1);
        }
        port = mf_store_server_port(server);
        if (write(fds[1], &port, sizeof(port)) != (ssize_t)sizeof(port)) {
            _exit(1);
        }
        close(fds[1]);
        sigwait(&set, &sig);
        mf_store_server_stop(server);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &port, sizeof(port)), sizeof(port));
    close(fds[0]);
    snprintf(mp->url, sizeof(mp->url), "tcp://127.0.0.1:%u", port);
}

static void test_mp_stop(test_mp_t *mp)
{
    kill(mp->pid, SIGTERM);
    assert_int_equal(tk_proc_wait(mp->pid, TEST_CHILD_MS), 0);
}

typedef struct test_rank {
    mf_store_t *ctl; /* barriers and flags of the test */
    mf_bm_t *bm;
    uint32_t rank;
    atomic_int lost_events;
    atomic_int left_events;
    atomic_int joined_events;
} test_rank_t;

static void test_rank_cb(mf_bm_t *bm, uint32_t rank, bool joined,
                         mf_status_t reason, void *arg)
{
    test_rank_t *tr = arg;

    if (joined) {
        atomic_fetch_add(&tr->joined_events, 1);
    } else if (reason == MF_ERR_PEER_LOST) {
        atomic_fetch_add(&tr->lost_events, 1);
    } else {
        atomic_fetch_add(&tr->left_events, 1);
    }
}

/*
 * How the multi-process tests reach peers: "" (auto: shm on this host), or
 * in the children, through the MF_* environment as a user would set it:
 * MF_TRANSPORT=tcp for every peer, or MF_HOST_ID making ranks of even and
 * odd fork index look like two hosts (shm within, tcp across).
 */
typedef enum test_mp_mode {
    TEST_MP_AUTO = 0,
    TEST_MP_TCP,
    TEST_MP_TWO_HOSTS,
} test_mp_mode_t;

static test_mp_mode_t test_mp_mode;

static void test_mp_child_env(uint32_t index)
{
    char id[32];

    if (test_mp_mode == TEST_MP_TCP) {
        TK_CHECK(setenv("MF_TRANSPORT", "tcp", 1) == 0);
        TK_CHECK(setenv("MF_TCP_LANES", index % 2 ? "3" : "1", 1) == 0);
        TK_CHECK(setenv("MF_TCP_CHUNK_SIZE", "128K", 1) == 0);
    } else if (test_mp_mode == TEST_MP_TWO_HOSTS) {
        snprintf(id, sizeof(id), "test-host-%u", index % 2);
        TK_CHECK(setenv("MF_HOST_ID", id, 1) == 0);
    }
}

static uint32_t test_create_flags; /* MF_BM_CREATE_* of test_rank_open */

static mf_status_t test_rank_open(test_rank_t *tr, const char *url,
                                  uint32_t world, uint32_t rank, uint32_t id,
                                  uint64_t base, uint32_t threads)
{
    mf_bm_create_params_t params;
    mf_bm_config_t cfg;
    mf_status_t st;

    memset(tr, 0, sizeof(*tr));
    TK_CHECK_OK(mf_init());
    TK_CHECK_OK(mf_store_connect(url, NULL, &tr->ctl));
    mf_bm_config_init(&cfg);
    cfg.host_base = base;
    cfg.copy_threads = threads;
    cfg.timeout_ms = 20000;
    TK_CHECK_OK(mf_bm_init(url, world, rank, &cfg));
    TK_CHECK_OK(mf_bm_rank_id(&tr->rank));
    TK_CHECK(mf_bm_world_size() == world);
    mf_bm_create_params_init(&params);
    params.local_dram_size = MP_SEG;
    params.max_dram_per_rank = MP_STRIDE;
    params.flags = test_create_flags;
    st = mf_bm_create(id, &params, &tr->bm);
    if (st != MF_OK) {
        return st;
    }
    mf_bm_set_rank_cb(tr->bm, test_rank_cb, tr);
    return MF_OK;
}

static void test_rank_close(test_rank_t *tr)
{
    mf_bm_destroy(tr->bm);
    mf_bm_uninit();
    mf_store_close(tr->ctl);
    mf_uninit();
}

static void test_rank_barrier(test_rank_t *tr, const char *name, uint32_t count)
{
    TK_CHECK_OK(mf_store_barrier(tr->ctl, name, count, 30000));
}

static void test_rank_wait_joined(test_rank_t *tr, uint32_t rank, bool joined)
{
    if (joined) {
        /* woken by the pool's events; 10 s only bounds a broken run */
        if (mf_bm_rank_wait(tr->bm, rank, 10000) == MF_OK) {
            return;
        }
        fprintf(stderr, "rank %u: rank %u not joined\n", tr->rank, rank);
        _exit(1);
    }
    for (int i = 0; i < 2000; i++) {
        if (mf_bm_rank_joined(tr->bm, rank) == joined) {
            return;
        }
        usleep(5000);
    }
    fprintf(stderr, "rank %u: rank %u still %s\n", tr->rank, rank,
            joined ? "not joined" : "joined");
    _exit(1);
}

/* Rank callbacks run on the fabric's event thread, after the segment
 * table changed: wait for the count instead of reading it once. */
static int test_wait_events(atomic_int *counter, int expected)
{
    for (int i = 0; i < 2000 && atomic_load(counter) < expected; i++) {
        usleep(5000);
    }
    return atomic_load(counter);
}

static uint64_t test_gva(mf_bm_t *bm, uint32_t rank, uint64_t off)
{
    return (uint64_t)(uintptr_t)mf_bm_gva_of_rank(bm, rank, MF_MEM_HOST) + off;
}

/* Every direction, random sizes and offsets, verified byte for byte. */
static void test_mp_copies_child(const char *url, uint32_t world)
{
    uint8_t *buf = malloc(MP_SEG), *buf2 = malloc(MP_SEG);
    tk_rng_t rng;
    uint64_t own;
    mf_copy_piece_t pieces[122];
    mf_status_t results[122];
    mf_bm_req_t *req;
    test_rank_t tr;
    uint32_t r, w;
    int i;

    TK_CHECK(buf != NULL && buf2 != NULL);
    TK_CHECK_OK(
        test_rank_open(&tr, url, world, MF_RANK_AUTO, 1, TEST_WINDOW(4), 1));
    own = test_gva(tr.bm, tr.rank, 0);
    tk_rng_seed(&rng, 1000 + tr.rank);
    /* lower half: the owner's pattern */
    tk_pattern_fill((void *)own, MP_SEG / 2, tr.rank, 0);
    TK_CHECK(mf_bm_rank_wait(tr.bm, tr.rank, 0) == MF_ERR_TIMEOUT);
    TK_CHECK(mf_bm_rank_wait(tr.bm, tr.rank, 20) == MF_ERR_TIMEOUT);
    TK_CHECK(mf_bm_rank_wait(tr.bm, world, 0) == MF_ERR_INVALID);
    TK_CHECK(strcmp(mf_bm_host_id(tr.bm), mf_host_id()) == 0 ||
             test_mp_mode == TEST_MP_TWO_HOSTS);
    TK_CHECK_OK(mf_bm_join(tr.bm));
    TK_CHECK_OK(mf_bm_rank_wait(tr.bm, tr.rank, 0));
    TK_CHECK(mf_bm_join(tr.bm) == MF_ERR_EXISTS);
    for (r = 0; r < world; r++) {
        test_rank_wait_joined(&tr, r, true);
    }
    /* each peer through the transport the mode asks for */
    {
        uint32_t tcp = 0, shm = 0;

        for (r = 0; r < world; r++) {
            mf_fabric_seg_t *seg = &TEST_POOL(tr.bm)->segs[r];
            const char *name;

            if (r == tr.rank) {
                /* the own segment is mapped and needs no transport */
                TK_CHECK(seg->addr != NULL && seg->ep == NULL);
                continue;
            }
            name = TEST_POOL(tr.bm)->ifaces[seg->tl]->ops->name;
            tcp += strcmp(name, "tcp") == 0 && seg->addr == NULL;
            shm += strcmp(name, "shm") == 0 && seg->addr != NULL;
        }
        TK_CHECK(tcp + shm == world - 1);
        TK_CHECK(test_mp_mode != TEST_MP_AUTO || shm == world - 1);
        TK_CHECK(test_mp_mode != TEST_MP_TCP || tcp == world - 1);
        TK_CHECK(test_mp_mode != TEST_MP_TWO_HOSTS ||
                 (shm == world / 2 - 1 && tcp == world / 2));
    }
    test_rank_barrier(&tr, "filled", world);

    /* GH2LH / AUTO reads of every rank */
    for (i = 0; i < 400; i++) {
        uint64_t size =
            1 + tk_rng_next(&rng) % (i % 20 == 0 ? 3 * TEST_MB : 9000);
        uint64_t off = tk_rng_next(&rng) % (MP_SEG / 2 - size);
        uint64_t boff = tk_rng_next(&rng) % 64;

        r = (uint32_t)(tk_rng_next(&rng) % world);
        TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, r, off),
                               (uint64_t)buf + boff, size,
                               i % 2 ? MF_COPY_GH2LH : MF_COPY_AUTO));
        TK_CHECK(test_check(buf + boff, off, size, r));
    }
    /* GH2GH: from a peer's lower half into the own upper half and back */
    for (i = 0; i < 50; i++) {
        uint64_t size = 1 + tk_rng_next(&rng) % (MP_STRIPE - 64);
        uint64_t off = tk_rng_next(&rng) % (MP_SEG / 2 - size);

        r = (uint32_t)(tk_rng_next(&rng) % world);
        TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, r, off),
                               own + MP_SEG / 2 + tr.rank * MP_STRIPE, size,
                               MF_COPY_GH2GH));
        TK_CHECK(test_check((void *)(own + MP_SEG / 2 + tr.rank * MP_STRIPE),
                            off, size, r));
    }
    /* GH2GH between two peers: from r's lower half into our stripe of
     * r2's upper half, read back */
    for (i = 0; i < 20; i++) {
        uint64_t size = 1 + tk_rng_next(&rng) % (MP_STRIPE - 64);
        uint64_t off = tk_rng_next(&rng) % (MP_SEG / 2 - size);
        uint32_t r2 = (uint32_t)(tk_rng_next(&rng) % world);
        uint64_t dst = test_gva(tr.bm, r2, MP_SEG / 2 + tr.rank * MP_STRIPE);

        r = (uint32_t)(tk_rng_next(&rng) % world);
        TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, r, off), dst, size,
                               i % 2 ? MF_COPY_GH2GH : MF_COPY_AUTO));
        TK_CHECK_OK(
            mf_bm_copy(tr.bm, dst, (uint64_t)buf2, size, MF_COPY_GH2LH));
        TK_CHECK(test_check(buf2, off, size, r));
    }
    test_rank_barrier(&tr, "gh2gh", world);

    /* LH2GH: stripe tr.rank of every rank's upper half */
    for (r = 0; r < world; r++) {
        uint64_t base = test_gva(tr.bm, r, MP_SEG / 2 + tr.rank * MP_STRIPE);
        uint32_t tag = 100 + tr.rank * 10 + r;

        tk_pattern_fill(buf, MP_STRIPE, tag, 0);
        /* in unaligned random pieces that tile the stripe */
        for (uint64_t off = 0; off < MP_STRIPE;) {
            uint64_t size = 1 + tk_rng_next(&rng) % 300000;

            size = MF_MIN(size, MP_STRIPE - off);

            TK_CHECK_OK(mf_bm_copy(tr.bm, (uint64_t)buf + off, base + off, size,
                                   off % 2 ? MF_COPY_LH2GH : MF_COPY_AUTO));
            off += size;
        }
    }
    test_rank_barrier(&tr, "written", world);
    for (w = 0; w < world; w++) {
        TK_CHECK(test_check((void *)(own + MP_SEG / 2 + w * MP_STRIPE), 0,
                            MP_STRIPE, 100 + w * 10 + tr.rank));
    }
    /* the batch writes below go into the upper halves again */
    test_rank_barrier(&tr, "checked", world);

    /* batch: the KV-block layout, from the next rank into local memory */
    r = (tr.rank + 1) % world;
    for (i = 0; i < 122; i++) {
        uint64_t size = i < 61 ? 128 * 1024 : 16 * 1024;
        uint64_t off = i < 61 ? (uint64_t)i * 128 * 1024
                              : 61 * 128 * 1024 + (uint64_t)(i - 61) * 16384;

        pieces[i].src = test_gva(tr.bm, r, off + 1);
        pieces[i].dst = (uint64_t)buf + off;
        pieces[i].size = size;
    }
    TK_CHECK_OK(mf_bm_copy_batch(tr.bm, pieces, 122, MF_COPY_GH2LH, results));
    for (i = 0; i < 122; i++) {
        TK_CHECK(results[i] == MF_OK);
    }
    TK_CHECK(test_check(buf, 1, 61 * 144 * 1024, r));
    /* a bad piece in the middle: its own error, the rest copied */
    mf_log_set_level(MF_LOG_ERROR);
    pieces[7].src = test_gva(tr.bm, r, MP_SEG - 100);
    TK_CHECK(mf_bm_copy_batch(tr.bm, pieces, 122, MF_COPY_GH2LH, results) ==
             MF_ERR_OUT_OF_RANGE);
    TK_CHECK(results[7] == MF_ERR_OUT_OF_RANGE && results[8] == MF_OK);

    /* async */
    TK_CHECK_OK(mf_bm_copy_async(tr.bm, test_gva(tr.bm, r, 5), (uint64_t)buf2,
                                 MP_SEG / 2 - 5, MF_COPY_GH2LH, &req));
    TK_CHECK_OK(mf_bm_wait(req, 30000));
    TK_CHECK(test_check(buf2, 5, MP_SEG / 2 - 5, r));
    pieces[7].src = test_gva(tr.bm, r, 7 * 128 * 1024 + 1);
    TK_CHECK_OK(mf_bm_copy_batch_async(tr.bm, pieces, 122, MF_COPY_AUTO, &req));
    TK_CHECK_OK(mf_bm_wait(req, -1));
    TK_CHECK(test_check(buf, 1, 61 * 144 * 1024, r));

    /* batch writes: local pieces into our stripe of rank r's upper half,
     * then from there into our stripe of the rank after it (GH2GH) */
    {
        uint64_t stripe = test_gva(tr.bm, r, MP_SEG / 2 + tr.rank * MP_STRIPE);
        uint32_t r2 = (r + 1) % world;
        uint64_t stripe2 =
            test_gva(tr.bm, r2, MP_SEG / 2 + tr.rank * MP_STRIPE);

        tk_pattern_fill(buf, MP_STRIPE, 50 + tr.rank, 0);
        for (i = 0; i < 64; i++) {
            pieces[i].src = (uint64_t)buf + (uint64_t)i * (MP_STRIPE / 64);
            pieces[i].dst = stripe + (uint64_t)i * (MP_STRIPE / 64);
            pieces[i].size = MP_STRIPE / 64;
        }
        TK_CHECK_OK(
            mf_bm_copy_batch(tr.bm, pieces, 64, MF_COPY_LH2GH, results));
        for (i = 0; i < 64; i++) {
            pieces[i].src = stripe + (uint64_t)i * (MP_STRIPE / 64);
            pieces[i].dst = stripe2 + (uint64_t)i * (MP_STRIPE / 64);
        }
        TK_CHECK_OK(
            mf_bm_copy_batch_async(tr.bm, pieces, 64, MF_COPY_GH2GH, &req));
        TK_CHECK_OK(mf_bm_wait(req, -1));
        memset(buf2, 0, MP_STRIPE);
        TK_CHECK_OK(mf_bm_copy(tr.bm, stripe2, (uint64_t)buf2, MP_STRIPE,
                               MF_COPY_GH2LH));
        TK_CHECK(test_check(buf2, 0, MP_STRIPE, 50 + tr.rank));
    }

    /* bad GVAs */
    mf_log_set_level(MF_LOG_ERROR);
    TK_CHECK(mf_bm_copy(tr.bm, test_gva(tr.bm, r, MP_SEG), (uint64_t)buf, 1,
                        MF_COPY_GH2LH) == MF_ERR_OUT_OF_RANGE);
    TK_CHECK(mf_bm_copy(tr.bm, (uint64_t)buf, test_gva(tr.bm, r, 10), MP_SEG,
                        MF_COPY_LH2GH) == MF_ERR_OUT_OF_RANGE);
    TK_CHECK(mf_bm_copy(tr.bm, test_gva(tr.bm, world, 0), (uint64_t)buf, 1,
                        MF_COPY_GH2LH) == MF_ERR_OUT_OF_RANGE);
    TK_CHECK(mf_bm_copy(tr.bm, 0x1000, (uint64_t)buf, 1, MF_COPY_GH2LH) ==
             MF_ERR_OUT_OF_RANGE);
    mf_log_set_level(MF_LOG_WARN);

    test_rank_barrier(&tr, "done", world);
    TK_CHECK_OK(mf_bm_leave(tr.bm));
    TK_CHECK(mf_bm_leave(tr.bm) == MF_ERR_STATE);
    test_rank_close(&tr);
    free(buf);
    free(buf2);
    _exit(0);
}

static void test_mp_copies_in(test_mp_mode_t mode)
{
    pid_t pids[MP_WORLD];
    test_mp_t mp;
    uint32_t i;

    test_mp_mode = mode;
    test_mp_start(&mp);
    for (i = 0; i < MP_WORLD; i++) {
        pids[i] = tk_proc_fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            alarm(TEST_CHILD_MS / 1000);
            test_mp_child_env(i);
            test_mp_copies_child(mp.url, MP_WORLD);
        }
    }
    for (i = 0; i < MP_WORLD; i++) {
        assert_int_equal(tk_proc_wait(pids[i], TEST_CHILD_MS), 0);
    }
    test_mp_stop(&mp);
    test_mp_mode = TEST_MP_AUTO;
}

static void test_mp_copies(void **state)
{
    test_mp_copies_in(TEST_MP_AUTO);
}

/* The same over tcp between every pair of ranks of this host. */
static void test_mp_copies_tcp(void **state)
{
    test_mp_copies_in(TEST_MP_TCP);
}

/* Two "hosts" by host id: shm within each, tcp across. */
static void test_mp_copies_two_hosts(void **state)
{
    test_mp_copies_in(TEST_MP_TWO_HOSTS);
}

/*
 * Rank 3 leaves gracefully while rank 0 copies from it, then joins again;
 * rank 2 is killed with SIGKILL; ranks 0 and 1 keep working.
 */
static void test_mp_churn_child(const char *url, uint32_t rank)
{
    uint8_t *buf = malloc(TEST_MB);
    test_rank_t tr;
    uint32_t r;

    TK_CHECK(buf != NULL);
    TK_CHECK_OK(test_rank_open(&tr, url, MP_WORLD, rank, 2, TEST_WINDOW(5), 1));
    tk_pattern_fill((void *)test_gva(tr.bm, rank, 0), MP_SEG, rank, 0);
    TK_CHECK_OK(mf_bm_join(tr.bm));
    for (r = 0; r < MP_WORLD; r++) {
        test_rank_wait_joined(&tr, r, true);
    }
    test_rank_barrier(&tr, "joined", MP_WORLD);

    if (rank == 3) {
        usleep(100 * 1000); /* rank 0 is copying from us */
        TK_CHECK_OK(mf_bm_leave(tr.bm));
        TK_CHECK_OK(mf_store_set(tr.ctl, "test/left3", "1", 1, 0));
        /* rejoin once the others saw the leave */
        TK_CHECK_OK(mf_store_get(tr.ctl, "test/rejoin3", 30000, (void **)&buf,
                                 &(size_t){0}));
        free(buf);
        TK_CHECK_OK(mf_bm_join(tr.bm));
        test_rank_barrier(&tr, "rejoined", 3);
        test_rank_barrier(&tr, "end", 3);
        test_rank_close(&tr);
        _exit(0);
    }
    if (rank == 2) {
        TK_CHECK_OK(mf_store_set(tr.ctl, "test/ready2", "1", 1, 0));
        pause(); /* until SIGKILL */
        _exit(1);
    }

    /* ranks 0 and 1 */
    if (rank == 0) {
        /* copy from rank 3 until it is gone: OK or PEER_LOST only */
        int lost = 0, ok = 0;

        while (lost < 3) {
            mf_status_t st = mf_bm_copy(tr.bm, test_gva(tr.bm, 3, 4096),
                                        (uint64_t)buf, TEST_MB, MF_COPY_GH2LH);

            if (st == MF_OK) {
                TK_CHECK(test_check(buf, 4096, TEST_MB, 3));
                ok++;
            } else {
                TK_CHECK(st == MF_ERR_PEER_LOST);
                lost++;
            }
        }
        TK_CHECK(ok > 0);
    }
    TK_CHECK_OK(mf_store_get(tr.ctl, "test/left3", 30000, &(void *){NULL},
                             &(size_t){0}));
    test_rank_wait_joined(&tr, 3, false);
    TK_CHECK(mf_bm_copy(tr.bm, test_gva(tr.bm, 3, 0), (uint64_t)buf, 64,
                        MF_COPY_GH2LH) == MF_ERR_PEER_LOST);
    TK_CHECK(test_wait_events(&tr.left_events, 1) == 1);
    TK_CHECK(atomic_load(&tr.lost_events) == 0);
    test_rank_barrier(&tr, "saw-leave", 2);
    if (rank == 0) {
        TK_CHECK_OK(mf_store_set(tr.ctl, "test/rejoin3", "1", 1, 0));
    }
    test_rank_wait_joined(&tr, 3, true);
    TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, 3, 100), (uint64_t)buf, 1000,
                           MF_COPY_GH2LH));
    TK_CHECK(test_check(buf, 100, 1000, 3));
    test_rank_barrier(&tr, "rejoined", 3);

    /* the parent kills rank 2 now */
    TK_CHECK_OK(mf_store_get(tr.ctl, "test/killed2", 30000, &(void *){NULL},
                             &(size_t){0}));
    test_rank_wait_joined(&tr, 2, false);
    TK_CHECK(mf_bm_copy(tr.bm, test_gva(tr.bm, 2, 0), (uint64_t)buf, 64,
                        MF_COPY_GH2LH) == MF_ERR_PEER_LOST);
    TK_CHECK(test_wait_events(&tr.lost_events, 1) == 1);
    /* the others keep working */
    r = 1 - rank;
    TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, r, 7), (uint64_t)buf, TEST_MB,
                           MF_COPY_GH2LH));
    TK_CHECK(test_check(buf, 7, TEST_MB, r));
    TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, 3, 7), (uint64_t)buf, TEST_MB,
                           MF_COPY_GH2LH));
    TK_CHECK(test_check(buf, 7, TEST_MB, 3));
    test_rank_barrier(&tr, "end", 3);
    test_rank_close(&tr);
    _exit(0);
}

static void test_mp_churn_in(test_mp_mode_t mode)
{
    pid_t pids[MP_WORLD];
    mf_store_t *ctl;
    test_mp_t mp;
    void *value;
    size_t len;
    uint32_t i;

    test_mp_mode = mode;
    test_mp_start(&mp);
    for (i = 0; i < MP_WORLD; i++) {
        pids[i] = tk_proc_fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            alarm(TEST_CHILD_MS / 1000);
            test_mp_child_env(i);
            test_mp_churn_child(mp.url, i);
        }
    }
    assert_int_equal(mf_store_connect(mp.url, NULL, &ctl), MF_OK);
    assert_int_equal(mf_store_get(ctl, "test/ready2", 60000, &value, &len),
                     MF_OK);
    free(value);
    /* after rank 3 rejoined: a key rank 0 and 1 set once they saw it */
    assert_int_equal(mf_store_get(ctl, "test/rejoin3", 60000, &value, &len),
                     MF_OK);
    free(value);
    usleep(300 * 1000);
    kill(pids[2], SIGKILL);
    assert_int_equal(tk_proc_wait(pids[2], TEST_CHILD_MS), 128 + SIGKILL);
    assert_int_equal(mf_store_set(ctl, "test/killed2", "1", 1, 0), MF_OK);
    for (i = 0; i < MP_WORLD; i++) {
        if (i != 2) {
            assert_int_equal(tk_proc_wait(pids[i], TEST_CHILD_MS), 0);
        }
    }
    mf_store_close(ctl);
    test_mp_stop(&mp);
    test_mp_mode = TEST_MP_AUTO;
}

static void test_mp_churn(void **state)
{
    test_mp_churn_in(TEST_MP_AUTO);
}

/* Leave, rejoin and kill -9 with every peer over tcp: copies end with OK
 * or a peer error, never hang. */
static void test_mp_churn_tcp(void **state)
{
    test_mp_churn_in(TEST_MP_TCP);
}

/* Rank 1 finds its window taken: create fails on every rank. */
static void test_mp_addr_in_use_child(const char *url, uint32_t rank)
{
    uint64_t base = TEST_WINDOW(6);
    test_rank_t tr;
    mf_status_t st;

    if (rank == 1) {
        void *p =
            mmap((void *)(base + 2 * MP_STRIDE + 8192), 4096, PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

        TK_CHECK(p == (void *)(base + 2 * MP_STRIDE + 8192));
    }
    mf_log_set_level(MF_LOG_OFF); /* the expected errors */
    st = test_rank_open(&tr, url, 3, rank, 3, base, 0);
    TK_CHECK(st == MF_ERR_ADDR_IN_USE);
    /* nothing left behind: the window can be reserved again */
    if (rank != 1) {
        TK_CHECK(mf_mem_reserve(base, 3 * MP_STRIDE, NULL, 0) == MF_OK);
        mf_mem_unreserve(base, 3 * MP_STRIDE);
    }
    mf_bm_uninit();
    mf_store_close(tr.ctl);
    mf_uninit();
    _exit(0);
}

static void test_mp_addr_in_use(void **state)
{
    pid_t pids[3];
    test_mp_t mp;
    uint32_t i;

    test_mp_start(&mp);
    for (i = 0; i < 3; i++) {
        pids[i] = tk_proc_fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            alarm(TEST_CHILD_MS / 1000);
            test_mp_addr_in_use_child(mp.url, i);
        }
    }
    for (i = 0; i < 3; i++) {
        assert_int_equal(tk_proc_wait(pids[i], TEST_CHILD_MS), 0);
    }
    test_mp_stop(&mp);
}

/*
 * An elastic pool of world 8 formed by two ranks: neither waits for the six
 * that never come (a collective create would fail with a timeout after the
 * ranks' 20 s bootstrap limit), and both copy to each other.
 */
static void test_mp_elastic_child(const char *url)
{
    uint64_t base = TEST_WINDOW(7);
    uint32_t peer;
    test_rank_t tr;
    char *buf;

    test_create_flags = MF_BM_CREATE_ELASTIC;
    TK_CHECK_OK(test_rank_open(&tr, url, 8, MF_RANK_AUTO, 4, base, 0));
    TK_CHECK_OK(mf_bm_join(tr.bm));
    TK_CHECK(tr.rank < 2);
    peer = 1 - tr.rank;
    test_rank_wait_joined(&tr, peer, true);
    buf = malloc(TEST_MB);
    TK_CHECK(buf != NULL);
    memset(buf, 'a' + (int)tr.rank, TEST_MB);
    TK_CHECK_OK(mf_bm_copy(tr.bm, (uint64_t)(uintptr_t)buf,
                           test_gva(tr.bm, peer, 0), TEST_MB, MF_COPY_LH2GH));
    test_rank_barrier(&tr, "elastic-written", 2);
    TK_CHECK_OK(mf_bm_copy(tr.bm, test_gva(tr.bm, tr.rank, 0),
                           (uint64_t)(uintptr_t)buf, TEST_MB, MF_COPY_GH2LH));
    for (size_t i = 0; i < TEST_MB; i++) {
        TK_CHECK(buf[i] == 'a' + (int)peer);
    }
    test_rank_barrier(&tr, "elastic-read", 2);
    free(buf);
    TK_CHECK_OK(mf_bm_leave(tr.bm));
    test_rank_close(&tr);
    _exit(0);
}

/* Runs child(url) in two processes against a fresh store; both must exit
 * 0 within two minutes. */
static void test_mp_pair(void (*child)(const char *url))
{
    pid_t pids[2];
    test_mp_t mp;

    test_mp_start(&mp);
    for (int i = 0; i < 2; i++) {
        pids[i] = tk_proc_fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            alarm(TEST_CHILD_MS / 1000);
            child(mp.url);
        }
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tk_proc_wait(pids[i], TEST_CHILD_MS), 0);
    }
    test_mp_stop(&mp);
}

static void test_mp_elastic(void **state)
{
    test_mp_pair(test_mp_elastic_child);
}

/*
 * Asynchronous copies to a peer over tcp complete from the transport's own
 * completions: with no copy threads at all, copy_async and
 * copy_batch_async return while the peer is stopped (SIGSTOP), the copies
 * stay in progress meanwhile, a copy into mapped memory completes beside
 * them, and all finish once the peer runs again.
 */
static void test_mp_async_child(const char *url)
{
    uint64_t base = TEST_WINDOW(8), peer_gva, own_gva;
    mf_copy_piece_t pieces[8];
    mf_bm_req_t *single, *batch, *mapped;
    uint32_t peer;
    test_rank_t tr;
    char *buf, *back;
    pid_t peer_pid;

    TK_CHECK(setenv("MF_TRANSPORT", "tcp", 1) == 0);
    TK_CHECK_OK(test_rank_open(&tr, url, 2, MF_RANK_AUTO, 5, base, 0));
    TK_CHECK_OK(mf_bm_join(tr.bm));
    peer = 1 - tr.rank;
    test_rank_wait_joined(&tr, peer, true);
    if (tr.rank == 1) {
        test_rank_barrier(&tr, "async-done", 2);
        TK_CHECK_OK(mf_bm_leave(tr.bm));
        test_rank_close(&tr);
        _exit(0);
    }
    buf = malloc(2 * TEST_MB);
    back = malloc(2 * TEST_MB);
    TK_CHECK(buf != NULL && back != NULL);
    tk_pattern_fill(buf, 2 * TEST_MB, 7, 0);
    peer_gva = test_gva(tr.bm, peer, 0);
    own_gva = test_gva(tr.bm, tr.rank, 0);
    TK_CHECK(TEST_POOL(tr.bm)->segs[peer].addr == NULL); /* reached over tcp */
    peer_pid = (pid_t)TEST_POOL(tr.bm)->segs[peer].pid;

    TK_CHECK(kill(peer_pid, SIGSTOP) == 0);
    TK_CHECK_OK(mf_bm_copy_async(tr.bm, (uint64_t)(uintptr_t)buf, peer_gva,
                                 TEST_MB, MF_COPY_LH2GH, &single));
    for (int i = 0; i < 8; i++) {
        pieces[i].src = (uint64_t)(uintptr_t)buf + TEST_MB + i * 4096u;
        pieces[i].dst = peer_gva + TEST_MB + i * 8192u;
        pieces[i].size = 4096;
    }
    TK_CHECK_OK(
        mf_bm_copy_batch_async(tr.bm, pieces, 8, MF_COPY_LH2GH, &batch));
    TK_CHECK(mf_bm_wait(single, 0) == MF_ERR_TIMEOUT);
    TK_CHECK(mf_bm_wait(batch, 0) == MF_ERR_TIMEOUT);
    TK_CHECK_OK(mf_bm_copy_async(tr.bm, (uint64_t)(uintptr_t)buf, own_gva,
                                 TEST_MB, MF_COPY_LH2GH, &mapped));
    TK_CHECK_OK(mf_bm_wait(mapped, 10000));
    TK_CHECK(mf_bm_test(single) == MF_INPROGRESS);
    TK_CHECK(kill(peer_pid, SIGCONT) == 0);
    TK_CHECK_OK(mf_bm_wait(single, 30000));
    TK_CHECK_OK(mf_bm_wait(batch, 30000));

    TK_CHECK_OK(mf_bm_copy(tr.bm, peer_gva, (uint64_t)(uintptr_t)back, TEST_MB,
                           MF_COPY_GH2LH));
    TK_CHECK(memcmp(back, buf, TEST_MB) == 0);
    TK_CHECK(memcmp((void *)(uintptr_t)own_gva, buf, TEST_MB) == 0);
    for (int i = 0; i < 8; i++) {
        TK_CHECK_OK(mf_bm_copy(tr.bm, pieces[i].dst, (uint64_t)(uintptr_t)back,
                               4096, MF_COPY_GH2LH));
        TK_CHECK(memcmp(back, buf + TEST_MB + i * 4096u, 4096) == 0);
    }
    free(buf);
    free(back);
    test_rank_barrier(&tr, "async-done", 2);
    TK_CHECK_OK(mf_bm_leave(tr.bm));
    test_rank_close(&tr);
    _exit(0);
}

static void test_mp_async_tcp(void **state)
{
    test_mp_pair(test_mp_async_child);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_desc_codec),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_window_check),
        cmocka_unit_test(test_local_translation),
        cmocka_unit_test(test_local_copies),
        cmocka_unit_test(test_local_peer),
        cmocka_unit_test(test_mp_copies),
        cmocka_unit_test(test_mp_copies_tcp),
        cmocka_unit_test(test_mp_copies_two_hosts),
        cmocka_unit_test(test_mp_churn),
        cmocka_unit_test(test_mp_churn_tcp),
        cmocka_unit_test(test_mp_addr_in_use),
        cmocka_unit_test(test_mp_elastic),
        cmocka_unit_test(test_mp_async_tcp),
    };

    /* host memory only: no device kind, whatever the machine has
     * (test_fabric_device has one) */
    setenv("MF_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", 1);
    return tk_group_run(tests, NULL, NULL);
}
