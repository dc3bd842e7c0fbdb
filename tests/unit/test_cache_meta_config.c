/*
 * Unit tests of the meta service's settings (mmc-meta.conf): defaults,
 * single settings and their errors, bounds, the checks the table cannot
 * express, files (errors name file and line), the environment, the check
 * across values, and help and dump output naming every key.
 *
 * Every error is logged once: a capturing log sink counts the messages
 * and keeps the last one, which the tests match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"

#include "cache/meta/meta.h"
#include "fabric/core/core.h"
#include "cache/meta/etcd.h"
#include "util/config.h"
#include "util/log.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defined in meta_config.c, not (yet) in meta.h. */

static const char *const tmc_keys[] = {
    "addr",
    "port",
    "store_port",
    "http_port",
    "http_enable",
    "pool_id",
    "max_ranks",
    "max_segment_size",
    "host_base",
    "max_hbm_segment_size",
    "device_base",
    "alloc_align",
    "lease_ms",
    "put_timeout_ms",
    "max_batch",
    "max_clients",
    "evict_high_pct",
    "evict_low_pct",
    "evict_max_per_put",
    "evict_policy",
    "evict_small_pct",
    "member_timeout_ms",
    "idle_timeout_ms",
    "log_level",
};

#define TMC_NKEYS (sizeof(tmc_keys) / sizeof(tmc_keys[0]))

/* ---- log capture ---- */

static tk_log_t tmc_log;

static int tmc_setup(void **state)
{
    tk_log_start(&tmc_log, 0);
    return 0;
}

static int tmc_teardown(void **state)
{
    tk_log_stop(&tmc_log);
    return 0;
}

/* The last logged message contains every one of the given words. */
static void tmc_assert_logged(const char *w1, const char *w2)
{
    if (strstr(tk_log_last(&tmc_log), w1) == NULL ||
        (w2 != NULL && strstr(tk_log_last(&tmc_log), w2) == NULL)) {
        fail_msg("log '%s' lacks '%s' / '%s'", tk_log_last(&tmc_log), w1,
                 w2 != NULL ? w2 : "");
    }
}

/* Writes text to a fresh temporary file; path gets its name. */
static void tmc_write_file(char *path, size_t len, const char *text)
{
    int fd;

    snprintf(path, len, "/tmp/test_mmc_meta_conf_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static char *tmc_capture(void (*fn)(const mmc_meta_config_t *cfg, FILE *out),
                         const mmc_meta_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    fn(cfg, out);
    fclose(out);
    assert_non_null(text);
    return text;
}

static void tmc_help(const mmc_meta_config_t *cfg, FILE *out)
{
    (void)cfg;
    mmc_meta_config_print_help(out);
}

/* ---- tests ---- */

static void test_defaults(void **state)
{
    mmc_meta_config_t cfg;
    uint64_t seg;

    memset(&cfg, 0xa5, sizeof(cfg));
    mmc_meta_config_init(&cfg);
    assert_string_equal(cfg.addr, "0.0.0.0");
    assert_int_equal(cfg.port, 5800);
    assert_int_equal(cfg.store_port, 5801);
    assert_int_equal(cfg.http_port, 5802);
    assert_true(cfg.http_enable);
    assert_int_equal(cfg.pool_id, 1);
    assert_int_equal(cfg.max_ranks, 64);
    /* the default window, smaller under ThreadSanitizer (see meta.h) */
    assert_int_equal(mf_parse_size(MMC_META_DEFAULT_SEGMENT, &seg), MF_OK);
    assert_true(cfg.max_segment_size == seg);
    assert_true(seg == (MF_TSAN ? 4ull << 30 : 256ull << 30));
    assert_true(cfg.host_base == MF_FABRIC_DEFAULT_BASE);
    /* no device window unless asked for */
    assert_true(cfg.max_hbm_segment_size == 0);
    assert_true(cfg.device_base == MF_MEM_DEFAULT_DEVICE_BASE);
    assert_true(cfg.alloc_align == 4096);
    assert_int_equal(cfg.lease_ms, 30000);
    assert_int_equal(cfg.put_timeout_ms, 30000);
    assert_int_equal(cfg.max_batch, 16384);
    assert_int_equal(cfg.max_clients, 4096);
    assert_int_equal(cfg.evict_high_pct, 90);
    assert_int_equal(cfg.evict_low_pct, 80);
    assert_int_equal(cfg.evict_max_per_put, 256);
    assert_string_equal(cfg.evict_policy, "lru");
    assert_int_equal(cfg.evict_small_pct, 10);
    assert_int_equal(cfg.member_timeout_ms, 10000);
    assert_int_equal(cfg.idle_timeout_ms, 15000);
    assert_string_equal(cfg.log_level, "warn");
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), 0);
}

static void test_set(void **state)
{
    mmc_meta_config_t cfg;

    mmc_meta_config_init(&cfg);
    assert_int_equal(mmc_meta_config_set(&cfg, "addr", "127.0.0.1"), MF_OK);
    assert_string_equal(cfg.addr, "127.0.0.1");
    assert_int_equal(mmc_meta_config_set(&cfg, "port", "0"), MF_OK);
    assert_int_equal(cfg.port, 0);
    assert_int_equal(mmc_meta_config_set(&cfg, "http_port", "65535"), MF_OK);
    assert_int_equal(cfg.http_port, 65535);
    assert_int_equal(mmc_meta_config_set(&cfg, "http_enable", "off"), MF_OK);
    assert_false(cfg.http_enable);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "1G"),
                     MF_OK);
    assert_true(cfg.max_segment_size == (1ull << 30));
    assert_int_equal(mmc_meta_config_set(&cfg, "host_base", "0x100000000000"),
                     MF_OK);
    assert_true(cfg.host_base == 0x100000000000ull);
    assert_int_equal(mmc_meta_config_set(&cfg, "alloc_align", "64K"), MF_OK);
    assert_true(cfg.alloc_align == 65536);
    assert_int_equal(mmc_meta_config_set(&cfg, "lease_ms", "2s"), MF_OK);
    assert_int_equal(cfg.lease_ms, 2000);
    assert_int_equal(mmc_meta_config_set(&cfg, "put_timeout_ms", "250"), MF_OK);
    assert_int_equal(cfg.put_timeout_ms, 250);
    assert_int_equal(mmc_meta_config_set(&cfg, "log_level", "debug"), MF_OK);
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(mmc_meta_config_set(&cfg, "max_batch", "1"), MF_OK);
    assert_int_equal(cfg.max_batch, 1);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_high_pct", "95"), MF_OK);
    assert_int_equal(cfg.evict_high_pct, 95);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_low_pct", "50"), MF_OK);
    assert_int_equal(cfg.evict_low_pct, 50);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_policy", "s3fifo"),
                     MF_OK);
    assert_string_equal(cfg.evict_policy, "s3fifo");
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_max_per_put", "0"),
                     MF_OK);
    assert_int_equal(cfg.evict_max_per_put, 0);
    assert_int_equal(mmc_meta_config_set(&cfg, "member_timeout_ms", "300"),
                     MF_OK);
    assert_int_equal(cfg.member_timeout_ms, 300);
    assert_int_equal(mmc_meta_config_set(&cfg, "member_timeout_ms", "0"),
                     MF_OK);
    assert_int_equal(cfg.member_timeout_ms, 0);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), 0);

    assert_int_equal(mmc_meta_config_set(NULL, "port", "1"), MF_ERR_INVALID);
    assert_int_equal(mmc_meta_config_set(&cfg, NULL, "1"), MF_ERR_INVALID);
    assert_int_equal(mmc_meta_config_set(&cfg, "port", NULL), MF_ERR_INVALID);
}

/* A failed set names the key and leaves the struct as it was. */
static void tmc_expect_bad(const char *key, const char *value, const char *word)
{
    mmc_meta_config_t cfg, before;
    int errors = tk_log_count(&tmc_log, MF_LOG_ERROR);

    mmc_meta_config_init(&cfg);
    before = cfg;
    assert_int_equal(mmc_meta_config_set(&cfg, key, value), MF_ERR_CONFIG);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), errors + 1);
    tmc_assert_logged(key, word);
}

static void test_set_errors(void **state)
{
    tmc_expect_bad("no_such_key", "1", "unknown");
    tmc_expect_bad("port", "http", "expected");
    tmc_expect_bad("port", "-1", "expected");
    tmc_expect_bad("http_enable", "maybe", "true/false");
    tmc_expect_bad("lease_ms", "5 hours", "duration");
    tmc_expect_bad("max_segment_size", "12Q", "size");
    tmc_expect_bad("log_level", "loud", "trace");
    tmc_expect_bad("addr", "", "empty");
    tmc_expect_bad("addr",
                   "a-very-long-host-name-that-does-not-fit-in-sixty-"
                   "four-bytes.example.com",
                   "longer");
}

/* etcd endpoints that are no http(s)://host:port list are refused before
 * any request, naming the list; https needs the service's TLS. */
static void test_etcd_endpoints(void **state)
{
    static const char *const bad[] = {"", "etcd:2379", "httpx://a:1",
                                      "http://a:1,,http://b:2",
                                      "http://a:1, ftp://b:2"};
    mmc_meta_config_t cfg;
    mmc_etcd_t *e = NULL;

    (void)state;
    mmc_meta_config_init(&cfg);
    mf_log_set_level(MF_LOG_OFF);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mmc_etcd_open(bad[i], 100, &cfg.tls, &e),
                         MF_ERR_CONFIG);
    }
    /* https without tls.enable */
    assert_int_equal(mmc_etcd_open("https://a:1", 100, &cfg.tls, &e),
                     MF_ERR_CONFIG);
    assert_int_equal(mmc_etcd_open("http://a:1, https://b:2", 100, NULL, &e),
                     MF_ERR_CONFIG);
    mf_log_set_level(MF_LOG_WARN);
    assert_int_equal(mmc_etcd_open("http://a:1, http://b:2", 100, NULL, &e),
                     MF_OK);
    mmc_etcd_close(e);
}

static void test_bounds(void **state)
{
    mmc_meta_config_t cfg;

    tmc_expect_bad("port", "65536", "range");
    tmc_expect_bad("store_port", "70000", "range");
    tmc_expect_bad("ha_ttl_ms", "1s", "range");
    tmc_expect_bad("repair_max_active", "5000", "range");
    tmc_expect_bad("http_port", "100000", "range");
    tmc_expect_bad("max_ranks", "0", "range");
    tmc_expect_bad("max_ranks", "65537", "range");
    tmc_expect_bad("max_batch", "0", "range");
    tmc_expect_bad("max_batch", "16385", "range");
    tmc_expect_bad("max_clients", "0", "range");
    tmc_expect_bad("lease_ms", "0", "range");
    tmc_expect_bad("put_timeout_ms", "0", "range");
    tmc_expect_bad("alloc_align", "2K", "range");
    tmc_expect_bad("alloc_align", "2G", "range");
    tmc_expect_bad("alloc_align", "12K", "power of two");
    tmc_expect_bad("max_segment_size", "0", "range");
    tmc_expect_bad("max_segment_size", "256T", "range");
    tmc_expect_bad("max_segment_size", "10000", "page");
    tmc_expect_bad("host_base", "0", "host_base");
    tmc_expect_bad("host_base", "0x200000000001", "page");
    tmc_expect_bad("host_base", "0x800000000000", "below");
    tmc_expect_bad("max_hbm_segment_size", "3M", "2M");
    tmc_expect_bad("max_hbm_segment_size", "4K", "2M");
    tmc_expect_bad("max_hbm_segment_size", "256T", "range");
    tmc_expect_bad("device_base", "0", "device_base");
    tmc_expect_bad("device_base", "0x600000001000", "2M");
    tmc_expect_bad("device_base", "0x800000000000", "below");
    tmc_expect_bad("evict_high_pct", "0", "range");
    tmc_expect_bad("evict_high_pct", "101", "range");
    tmc_expect_bad("evict_low_pct", "100", "range");
    tmc_expect_bad("evict_max_per_put", "2000000", "range");
    tmc_expect_bad("evict_policy", "lfu", "lru or s3fifo");
    tmc_expect_bad("evict_policy", "", "lru or s3fifo");
    tmc_expect_bad("evict_small_pct", "0", "range");
    tmc_expect_bad("evict_small_pct", "91", "range");
    tmc_expect_bad("member_timeout_ms", "86400001", "range");
    tmc_expect_bad("idle_timeout_ms", "0", "range");

    /* the edges themselves are accepted */
    mmc_meta_config_init(&cfg);
    assert_int_equal(mmc_meta_config_set(&cfg, "alloc_align", "4096"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "alloc_align", "1G"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_batch", "16384"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_ranks", "1"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "4K"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_hbm_segment_size", "0"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_hbm_segment_size", "2M"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x200000"),
                     MF_OK);
}

/* The device window, when the pool has one, fits the address space and
 * stays apart from the host window, in whatever order things are set. */
static void test_check_device_window(void **state)
{
    mmc_meta_config_t cfg;
    int errors;

    (void)state;
    mmc_meta_config_init(&cfg);
    assert_int_equal(mmc_meta_config_set(&cfg, "host_base", "0x200000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "256G"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x600000000000"),
                     MF_OK);
    /* 64 x 512G from 96T ends at 128T exactly; 1T does not fit */
    assert_int_equal(mmc_meta_config_set(&cfg, "max_hbm_segment_size", "512G"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_hbm_segment_size", "1T"),
                     MF_OK);
    errors = tk_log_count(&tmc_log, MF_LOG_ERROR);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), errors + 1);
    tmc_assert_logged("device window", "47-bit");
    /* inside the host window [32T, 48T), or over its start */
    assert_int_equal(mmc_meta_config_set(&cfg, "max_hbm_segment_size", "64G"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x2f0000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    tmc_assert_logged("meets", "host window");
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x1fff00000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    /* right below and right after it: fine */
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x1c0000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x300000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    /* without a device window device_base is not in the way */
    assert_int_equal(mmc_meta_config_set(&cfg, "device_base", "0x200000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_hbm_segment_size", "0"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    /* values filled in by hand */
    cfg.max_hbm_segment_size = 3ull << 20;
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
}

/* The GVA window is checked once all values are in, in any order. */
static void test_check_window(void **state)
{
    mmc_meta_config_t cfg;
    int errors;

    mmc_meta_config_init(&cfg);
    /* 1024 x 256G from 32T does not fit 128T ... */
    assert_int_equal(mmc_meta_config_set(&cfg, "host_base", "0x200000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "256G"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_ranks", "1024"), MF_OK);
    errors = tk_log_count(&tmc_log, MF_LOG_ERROR);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), errors + 1);
    tmc_assert_logged("max_ranks", "47-bit");
    /* ... 1024 x 64G does */
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "64G"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    /* exactly up to the limit: 0x700000000000 + 16 x 1T */
    assert_int_equal(mmc_meta_config_set(&cfg, "host_base", "0x700000000000"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_ranks", "16"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "1T"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_ranks", "17"), MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    /* the largest values of both */
    assert_int_equal(mmc_meta_config_set(&cfg, "max_ranks", "65536"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "max_segment_size", "128T"),
                     MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);

    /* values filled in by hand are checked too */
    mmc_meta_config_init(&cfg);
    cfg.alloc_align = 3000;
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    mmc_meta_config_init(&cfg);
    cfg.port = 70000;
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    mmc_meta_config_init(&cfg);
    snprintf(cfg.log_level, sizeof(cfg.log_level), "chatty");
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    mmc_meta_config_init(&cfg);
    memset(cfg.addr, 'x', sizeof(cfg.addr));
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    assert_int_equal(mmc_meta_config_check(NULL), MF_ERR_INVALID);
}

/* The low watermark must be below the high one, in whatever order they
 * are set. */
static void test_check_watermarks(void **state)
{
    mmc_meta_config_t cfg;
    int errors;

    (void)state;
    mmc_meta_config_init(&cfg);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_low_pct", "95"), MF_OK);
    errors = tk_log_count(&tmc_log, MF_LOG_ERROR);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), errors + 1);
    tmc_assert_logged("evict_low_pct", "evict_high_pct");
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_high_pct", "95"), MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_high_pct", "96"), MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    /* the edges */
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_high_pct", "100"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_low_pct", "99"), MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_high_pct", "1"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "evict_low_pct", "0"), MF_OK);
    assert_int_equal(mmc_meta_config_check(&cfg), MF_OK);
    /* by hand */
    cfg.evict_low_pct = 1;
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
}

static void test_file(void **state)
{
    mmc_meta_config_t cfg, before;
    char path[64], where[96];

    tmc_write_file(path, sizeof(path),
                   "# sample\n"
                   "\n"
                   "addr = 127.0.0.1   # loopback only\n"
                   "  port=6000\n"
                   "http_enable = no\n"
                   "max_segment_size = \"1G\"\n"
                   "lease_ms = 1s\n"
                   "log_level = info\n");
    mmc_meta_config_init(&cfg);
    assert_int_equal(mmc_meta_config_load_file(&cfg, path), MF_OK);
    assert_string_equal(cfg.addr, "127.0.0.1");
    assert_int_equal(cfg.port, 6000);
    assert_false(cfg.http_enable);
    assert_true(cfg.max_segment_size == (1ull << 30));
    assert_int_equal(cfg.lease_ms, 1000);
    assert_string_equal(cfg.log_level, "info");
    assert_int_equal(cfg.store_port, 5801); /* untouched */
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), 0);
    unlink(path);

    /* an error on line 3: nothing of the file is applied */
    tmc_write_file(path, sizeof(path),
                   "port = 6001\n"
                   "# comment\n"
                   "max_batch = 20000\n");
    mmc_meta_config_init(&cfg);
    before = cfg;
    assert_int_equal(mmc_meta_config_load_file(&cfg, path), MF_ERR_CONFIG);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    snprintf(where, sizeof(where), "%s:3", path);
    tmc_assert_logged(where, "max_batch");
    unlink(path);

    /* a check of one value also names the line */
    tmc_write_file(path, sizeof(path), "\n\nalloc_align = 24K\n\n");
    assert_int_equal(mmc_meta_config_load_file(&cfg, path), MF_ERR_CONFIG);
    snprintf(where, sizeof(where), "%s:3", path);
    tmc_assert_logged(where, "power of two");
    unlink(path);

    tmc_write_file(path, sizeof(path), "port 6000\n");
    assert_int_equal(mmc_meta_config_load_file(&cfg, path), MF_ERR_CONFIG);
    snprintf(where, sizeof(where), "%s:1", path);
    tmc_assert_logged(where, "key = value");
    unlink(path);

    tmc_write_file(path, sizeof(path), "bogus = 1\n");
    assert_int_equal(mmc_meta_config_load_file(&cfg, path), MF_ERR_CONFIG);
    snprintf(where, sizeof(where), "%s:1", path);
    tmc_assert_logged(where, "bogus");
    unlink(path);

    assert_int_equal(
        mmc_meta_config_load_file(&cfg, "/nonexistent/mmc-meta.conf"),
        MF_ERR_CONFIG);
    tmc_assert_logged("/nonexistent/mmc-meta.conf", NULL);
    assert_int_equal(mmc_meta_config_load_file(NULL, path), MF_ERR_INVALID);
    assert_int_equal(mmc_meta_config_load_file(&cfg, NULL), MF_ERR_INVALID);
}

static void test_env(void **state)
{
    mmc_meta_config_t cfg, before;

    mmc_meta_config_init(&cfg);
    assert_int_equal(mmc_meta_config_set(&cfg, "port", "7000"), MF_OK);
    setenv("MMC_META_PORT", "7100", 1);
    setenv("MMC_META_MAX_SEGMENT_SIZE", "2G", 1);
    setenv("MMC_META_HTTP_ENABLE", "false", 1);
    assert_int_equal(mmc_meta_config_load_env(&cfg), MF_OK);
    assert_int_equal(cfg.port, 7100);
    assert_true(cfg.max_segment_size == (2ull << 30));
    assert_false(cfg.http_enable);
    assert_int_equal(cfg.store_port, 5801);

    /* a bad variable is named, nothing is applied */
    setenv("MMC_META_STORE_PORT", "6000", 1);
    setenv("MMC_META_ALLOC_ALIGN", "5000", 1);
    before = cfg;
    assert_int_equal(mmc_meta_config_load_env(&cfg), MF_ERR_CONFIG);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    tmc_assert_logged("MMC_META_ALLOC_ALIGN", NULL);

    unsetenv("MMC_META_PORT");
    unsetenv("MMC_META_MAX_SEGMENT_SIZE");
    unsetenv("MMC_META_HTTP_ENABLE");
    unsetenv("MMC_META_STORE_PORT");
    unsetenv("MMC_META_ALLOC_ALIGN");
    assert_int_equal(mmc_meta_config_load_env(NULL), MF_ERR_INVALID);
}

static void test_help_and_dump(void **state)
{
    mmc_meta_config_t cfg, again;
    char path[64];
    char *help, *dump;
    char line[128];
    FILE *f;

    mmc_meta_config_init(&cfg);
    help = tmc_capture(tmc_help, &cfg);
    for (size_t i = 0; i < TMC_NKEYS; i++) {
        char env[64];
        size_t j;

        snprintf(env, sizeof(env), "MMC_META_%s", tmc_keys[i]);
        for (j = 0; env[j] != '\0'; j++) {
            if (env[j] >= 'a' && env[j] <= 'z') {
                env[j] = (char)(env[j] - 'a' + 'A');
            }
        }
        if (strstr(help, tmc_keys[i]) == NULL || strstr(help, env) == NULL) {
            fail_msg("help lacks %s or %s", tmc_keys[i], env);
        }
    }
    free(help);

    /* the dump names every key once, and loads back to the same config */
    assert_int_equal(mmc_meta_config_set(&cfg, "addr", "10.1.2.3"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "log_level", "error"), MF_OK);
    assert_int_equal(mmc_meta_config_set(&cfg, "lease_ms", "1500ms"), MF_OK);
    dump = tmc_capture(mmc_meta_config_dump, &cfg);
    for (size_t i = 0; i < TMC_NKEYS; i++) {
        snprintf(line, sizeof(line), "%s = ", tmc_keys[i]);
        if (strncmp(dump, line, strlen(line)) != 0 &&
            strstr(dump, line) == NULL) {
            fail_msg("dump lacks %s", tmc_keys[i]);
        }
    }
    assert_non_null(
        strstr(dump, "host_base = " MF_FABRIC_DEFAULT_BASE_STR "\n"));
    assert_non_null(strstr(dump, "log_level = error\n"));
    tmc_write_file(path, sizeof(path), dump);
    free(dump);
    mmc_meta_config_init(&again);
    assert_int_equal(mmc_meta_config_load_file(&again, path), MF_OK);
    assert_memory_equal(&again, &cfg, sizeof(cfg));
    unlink(path);

    f = fopen("/dev/null", "w");
    assert_non_null(f);
    mmc_meta_config_print_help(f);
    fclose(f);
    assert_int_equal(tk_log_count(&tmc_log, MF_LOG_ERROR), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, tmc_setup, tmc_teardown),
        cmocka_unit_test_setup_teardown(test_set, tmc_setup, tmc_teardown),
        cmocka_unit_test_setup_teardown(test_set_errors, tmc_setup,
                                        tmc_teardown),
        cmocka_unit_test_setup_teardown(test_bounds, tmc_setup, tmc_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_endpoints, tmc_setup,
                                        tmc_teardown),
        cmocka_unit_test_setup_teardown(test_check_window, tmc_setup,
                                        tmc_teardown),
        cmocka_unit_test_setup_teardown(test_check_device_window, tmc_setup,
                                        tmc_teardown),
        cmocka_unit_test_setup_teardown(test_check_watermarks, tmc_setup,
                                        tmc_teardown),
        cmocka_unit_test_setup_teardown(test_file, tmc_setup, tmc_teardown),
        cmocka_unit_test_setup_teardown(test_env, tmc_setup, tmc_teardown),
        cmocka_unit_test_setup_teardown(test_help_and_dump, tmc_setup,
                                        tmc_teardown),
    };

    return tk_group_run(tests, NULL, NULL);
}
