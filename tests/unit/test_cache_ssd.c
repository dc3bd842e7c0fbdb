/*
 * Unit tests of a local service's SSD area (src/cache/local/ssd.c):
 * objects stored and loaded byte for byte from aligned and unaligned
 * buffers with tails; pending until committed; the log brings committed
 * objects back after a restart, cuts a torn tail, keeps the newest of
 * overlapping entries and compacts; a torn or overwritten object fails
 * its checksum and is never handed out; bad input is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"
#include "tk_pattern.h"

#include "cache/local/ssd.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AREA (4u << 20)

typedef struct test_ssd {
    char dir[64];
    char path[PATH_MAX];
    char log[PATH_MAX];
    tk_log_t capture;
} test_ssd_t;

static int test_setup(void **state)
{
    test_ssd_t *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/mmc-ssd-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/area", t->dir);
    snprintf(t->log, sizeof(t->log), "%s/area.log", t->dir);
    tk_log_start(&t->capture, 0);
    mf_log_set_level(MF_LOG_WARN);
    *state = t;
    return 0;
}

static int test_teardown(void **state)
{
    test_ssd_t *t = *state;
    char path[PATH_MAX + 8];

    tk_log_stop(&t->capture);
    unlink(t->path);
    unlink(t->log);
    snprintf(path, sizeof(path), "%s.tmp", t->log);
    unlink(path);
    rmdir(t->dir);
    free(t);
    return 0;
}

static mmc_ssd_t *test_open(test_ssd_t *t, bool keep)
{
    mmc_ssd_opts_t o = {.path = t->path, .size = AREA, .keep = keep};
    mmc_ssd_t *ssd = NULL;

    assert_int_equal(mmc_ssd_open(&o, &ssd), MF_OK);
    assert_int_equal(mmc_ssd_size(ssd), AREA);
    return ssd;
}

/* Stores an object of len pattern bytes (seed) from a buffer at byte
 * `skew` of an aligned allocation. */
static void test_store(mmc_ssd_t *ssd, uint64_t offset, const char *key,
                       size_t len, uint64_t seed, size_t skew)
{
    char *buf = NULL;

    assert_int_equal(posix_memalign((void **)&buf, 4096, len + skew), 0);
    tk_pattern_fill(buf + skew, len, seed, 0);
    assert_int_equal(mmc_ssd_store(ssd, offset, buf + skew, len, key,
                                   (uint32_t)strlen(key), seed, 1),
                     MF_OK);
    free(buf);
}

/* Loads the object at offset and checks its bytes against seed. */
static mmc_status_t test_load(mmc_ssd_t *ssd, uint64_t offset, size_t len,
                              uint64_t seed, size_t skew)
{
    char *buf = NULL;
    mmc_status_t st;

    assert_int_equal(posix_memalign((void **)&buf, 4096, len + skew), 0);
    st = mmc_ssd_load(ssd, offset, buf + skew, len);
    if (st == MMC_OK) {
        assert_int_equal(tk_pattern_check(buf + skew, len, seed, 0), -1);
    }
    free(buf);
    return st;
}

/* Aligned, unaligned, with and without a tail, larger than the bounce
 * buffer: every byte comes back. */
static void test_roundtrip(void **state)
{
    test_ssd_t *t = *state;
    mmc_ssd_t *ssd = test_open(t, false);
    const struct {
        uint64_t offset;
        size_t len;
        size_t skew;
    } cases[] = {
        {0, 4096, 0},
        {4096, 8192, 0},
        {16384, 5000, 0},
        {32768, 100, 3},
        {65536, 12288, 1},
        {1u << 20, (1u << 20) + 4096 + 17, 0},
        {3u << 20, (1u << 20) - 1, 5},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char key[16];

        snprintf(key, sizeof(key), "k%zu", i);
        test_store(ssd, cases[i].offset, key, cases[i].len, 100 + i,
                   cases[i].skew);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        /* read into another alignment than it was written from */
        assert_int_equal(test_load(ssd, cases[i].offset, cases[i].len, 100 + i,
                                   (cases[i].skew + 7) % 11),
                         MMC_OK);
    }
    /* pending: nothing logged yet */
    assert_int_equal(mmc_ssd_count(ssd), 0);
    assert_int_equal(mmc_ssd_log_records(ssd), 0);
    assert_int_equal(mmc_ssd_load(ssd, 8192 * 100, &t, 8), MMC_ERR_NOT_FOUND);
    {
        char small[8];
        assert_int_equal(mmc_ssd_load(ssd, 0, small, sizeof(small)),
                         MMC_ERR_SIZE_MISMATCH);
    }
    mmc_ssd_close(ssd);
}

/* Committed objects come back after a restart with their entries;
 * pending and forgotten ones do not. */
static void test_restart(void **state)
{
    test_ssd_t *t = *state;
    mmc_ssd_t *ssd = test_open(t, false);
    mmc_ssd_entry_t e;

    test_store(ssd, 0, "kept", 10000, 1, 0);
    test_store(ssd, 16384, "pending", 4096, 2, 0);
    test_store(ssd, 32768, "gone", 4096, 3, 0);
    assert_int_equal(mmc_ssd_commit(ssd, 0), MF_OK);
    assert_int_equal(mmc_ssd_commit(ssd, 32768), MF_OK);
    assert_int_equal(mmc_ssd_commit(ssd, 0), MF_OK); /* twice: once logged */
    assert_int_equal(mmc_ssd_commit(ssd, 8192), MF_ERR_NOT_FOUND);
    assert_int_equal(mmc_ssd_forget(ssd, 32768), MF_OK);
    assert_int_equal(mmc_ssd_forget(ssd, 32768), MF_OK);
    assert_int_equal(mmc_ssd_count(ssd), 1);
    assert_int_equal(mmc_ssd_log_records(ssd), 3);
    mmc_ssd_close(ssd);

    ssd = test_open(t, true);
    assert_int_equal(mmc_ssd_count(ssd), 1);
    assert_int_equal(mmc_ssd_log_records(ssd), 1); /* compacted */
    assert_int_equal(mmc_ssd_entry(ssd, 0, &e), MF_OK);
    assert_string_equal(e.key, "kept");
    assert_int_equal(e.key_len, 4);
    assert_int_equal(e.size, 10000);
    assert_int_equal(e.version, 1);
    assert_int_equal(e.want, 1);
    assert_int_equal(test_load(ssd, 0, 10000, 1, 0), MMC_OK);
    assert_int_equal(mmc_ssd_entry(ssd, 16384, &e), MF_ERR_NOT_FOUND);
    assert_int_equal(test_load(ssd, 16384, 4096, 2, 0), MMC_ERR_NOT_FOUND);
    assert_int_equal(test_load(ssd, 32768, 4096, 3, 0), MMC_ERR_NOT_FOUND);
    mmc_ssd_close(ssd);

    /* not kept: a fresh area */
    ssd = test_open(t, false);
    assert_int_equal(mmc_ssd_count(ssd), 0);
    mmc_ssd_close(ssd);
}

/* Bytes changed under an object (a torn write, another writer) fail its
 * checksum: the load says so and hands nothing out as the object. */
static void test_corrupt(void **state)
{
    test_ssd_t *t = *state;
    mmc_ssd_t *ssd = test_open(t, false);
    char junk[512];
    int fd;

    test_store(ssd, 8192, "obj", 9000, 7, 0);
    assert_int_equal(mmc_ssd_commit(ssd, 8192), MF_OK);
    fd = open(t->path, O_WRONLY);
    assert_true(fd >= 0);
    memset(junk, 0x5a, sizeof(junk));
    assert_int_equal(pwrite(fd, junk, sizeof(junk), 8192 + 4096 + 100),
                     (ssize_t)sizeof(junk));
    close(fd);
    mmc_ssd_close(ssd); /* O_DIRECT reads the device, not a cache */
    ssd = test_open(t, true);
    {
        char *buf = malloc(9000);
        assert_non_null(buf);
        assert_int_equal(mmc_ssd_load(ssd, 8192, buf, 9000), MMC_ERR_CORRUPT);
        free(buf);
    }
    assert_int_equal(tk_log_count(&t->capture, MF_LOG_ERROR), 1);
    tk_log_take(&t->capture, MF_LOG_ERROR, 1);
    mmc_ssd_close(ssd);
}

/* A log cut in the middle of a record keeps the records before it; an
 * ADD over the range of an older one (its DEL lost) wins. */
static void test_torn_log(void **state)
{
    test_ssd_t *t = *state;
    mmc_ssd_t *ssd = test_open(t, false);
    mmc_ssd_entry_t e;
    struct stat st;

    test_store(ssd, 0, "old", 8192, 1, 0);
    assert_int_equal(mmc_ssd_commit(ssd, 0), MF_OK);
    /* the same range again without a DEL (it was lost) */
    test_store(ssd, 4096, "new", 4096, 2, 0);
    assert_int_equal(mmc_ssd_commit(ssd, 4096), MF_OK);
    test_store(ssd, 65536, "last", 4096, 3, 0);
    assert_int_equal(mmc_ssd_commit(ssd, 65536), MF_OK);
    mmc_ssd_close(ssd);
    assert_int_equal(stat(t->log, &st), 0);
    assert_int_equal(truncate(t->log, st.st_size - 3), 0);

    ssd = test_open(t, true);
    assert_true(tk_log_find(&t->capture, "torn"));
    tk_log_take(&t->capture, MF_LOG_WARN, 1);
    assert_int_equal(mmc_ssd_count(ssd), 1);
    assert_int_equal(mmc_ssd_entry(ssd, 4096, &e), MF_OK);
    assert_string_equal(e.key, "new");
    assert_int_equal(mmc_ssd_entry(ssd, 0, &e), MF_ERR_NOT_FOUND);
    assert_int_equal(mmc_ssd_entry(ssd, 65536, &e), MF_ERR_NOT_FOUND);
    assert_int_equal(test_load(ssd, 4096, 4096, 2, 0), MMC_OK);
    mmc_ssd_close(ssd);
}

/* Many entries coming and going: the log is rewritten as it grows, and
 * what it says after a restart is what was live. */
static void test_compact(void **state)
{
    test_ssd_t *t = *state;
    mmc_ssd_t *ssd = test_open(t, false);
    char key[16];
    char buf[4096];

    memset(buf, 1, sizeof(buf));
    for (uint32_t i = 0; i < 3 * MMC_SSD_SYNC_EVERY * 8; i++) {
        uint64_t off = (uint64_t)(i % 16) * 4096;

        snprintf(key, sizeof(key), "c%u", i);
        assert_int_equal(mmc_ssd_forget(ssd, off), MF_OK);
        assert_int_equal(mmc_ssd_store(ssd, off, buf, sizeof(buf), key,
                                       (uint32_t)strlen(key), i, 1),
                         MF_OK);
        assert_int_equal(mmc_ssd_commit(ssd, off), MF_OK);
    }
    assert_int_equal(mmc_ssd_count(ssd), 16);
    assert_true(mmc_ssd_log_records(ssd) <= 4096 + 2);
    mmc_ssd_close(ssd);
    ssd = test_open(t, true);
    assert_int_equal(mmc_ssd_count(ssd), 16);
    assert_int_equal(mmc_ssd_log_records(ssd), 16);
    mmc_ssd_close(ssd);
}

/* Bad input: a clear error, nothing changed. */
static void test_bad_input(void **state)
{
    test_ssd_t *t = *state;
    mmc_ssd_opts_t o = {.path = t->path, .size = 1000};
    mmc_ssd_t *ssd = NULL;
    char buf[4096] = {0};

    assert_int_equal(mmc_ssd_open(&o, &ssd), MF_ERR_INVALID);
    o.path = "/dev/null";
    o.size = AREA;
    assert_int_equal(mmc_ssd_open(&o, &ssd), MF_ERR_INVALID);
    o.path = "/nonexistent-dir/area";
    assert_int_equal(mmc_ssd_open(&o, &ssd), MF_ERR_IO);
    assert_null(ssd);
    tk_log_take(&t->capture, MF_LOG_ERROR, 3);

    ssd = test_open(t, false);
    assert_int_equal(mmc_ssd_store(ssd, 100, buf, 10, "k", 1, 1, 1),
                     MF_ERR_INVALID); /* unaligned */
    assert_int_equal(mmc_ssd_store(ssd, AREA - 4096, buf, 4097, "k", 1, 1, 1),
                     MF_ERR_INVALID); /* past the end */
    assert_int_equal(mmc_ssd_store(ssd, AREA, buf, 1, "k", 1, 1, 1),
                     MF_ERR_INVALID);
    assert_int_equal(mmc_ssd_store(ssd, 0, buf, 0, "k", 1, 1, 1),
                     MF_ERR_INVALID);
    assert_int_equal(mmc_ssd_store(ssd, 0, buf, 1, "k", 0, 1, 1),
                     MF_ERR_INVALID);
    tk_log_take(&t->capture, MF_LOG_ERROR, 5);
    assert_int_equal(mmc_ssd_count(ssd), 0);
    mmc_ssd_close(ssd);
    mmc_ssd_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_restart, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_torn_log, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_compact, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, test_setup,
                                        test_teardown),
    };

    return tk_group_run(tests, NULL, NULL);
}
