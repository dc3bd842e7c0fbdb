/*
 * Unit tests of the transport layer: the registry and its ops tables, the
 * copy threads (split memcpy, synchronous and asynchronous jobs), and the
 * shm transport between two processes: registration, remote key pack and
 * unpack at the expected address only, put/get of unaligned and large
 * sizes split across threads, reachability by host id.
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

#include "mem/mem.h"
#include "tl/shm/shm.h"
#include "util/workers.h"
#include "util/log.h"
#include "util/misc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_BASE TEST_WINDOW(2)
#define TEST_MB   (1024ull * 1024ull)

static void test_registry(void **state)
{
    const mf_tl_ops_t *ops;
    size_t i;

    assert_true(mf_tl_count() >= 1);
    assert_ptr_equal(mf_tl_find("shm"), &mf_tl_shm_ops);
    assert_null(mf_tl_find("nope"));
    assert_null(mf_tl_at(mf_tl_count()));
    for (i = 0; i < mf_tl_count(); i++) {
        ops = mf_tl_at(i);
        assert_non_null(ops->name);
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
    }
    assert_int_equal(mf_tl_no_put(NULL, NULL, 0, 0, NULL, NULL),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_get(NULL, NULL, 0, 0, NULL, NULL),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_mem_reg(NULL, NULL, NULL), MF_ERR_UNSUPPORTED);
    assert_int_equal(mf_tl_no_rkey_pack(NULL, NULL, NULL, 0, NULL),
                     MF_ERR_UNSUPPORTED);
}

static void test_workers_memcpy(void **state)
{
    static const uint32_t threads[] = {0, 1, 3};
    size_t max = 9 * TEST_MB + 123;
    uint8_t *src = malloc(max + 64), *dst = malloc(max + 64);
    mf_workers_t *workers;
    size_t sizes[] = {1, 7, 4096, 65537, TEST_MB, 3 * TEST_MB + 17, max};

    assert_non_null(src);
    assert_non_null(dst);
    tk_pattern_fill(src, max + 64, 1, 0);
    for (size_t t = 0; t < MF_ARRAY_SIZE(threads); t++) {
        assert_int_equal(mf_workers_create(threads[t], &workers), MF_OK);
        assert_int_equal(mf_workers_count(workers), threads[t]);
        for (size_t i = 0; i < MF_ARRAY_SIZE(sizes); i++) {
            size_t so = (i * 7) % 64, doff = (i * 13) % 64;

            memset(dst, 0, max + 64);
            mf_workers_memcpy(workers, dst + doff, src + so, sizes[i]);
            assert_memory_equal(dst + doff, src + so, sizes[i]);
            /* nothing written past the end */
            if (doff + sizes[i] < max + 64) {
                assert_int_equal(dst[doff + sizes[i]], 0);
            }
        }
        mf_workers_destroy(workers);
    }
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_workers_create(65, &workers), MF_ERR_INVALID);
    mf_log_set_level(MF_LOG_WARN);
    free(src);
    free(dst);
}

typedef struct test_job {
    mf_job_t job;
    atomic_int calls;
    atomic_int finals;
    size_t fail_at;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} test_job_t;

static mf_status_t test_job_chunk(mf_job_t *job, size_t index)
{
    test_job_t *tj = (test_job_t *)job;

    atomic_fetch_add(&tj->calls, 1);
    return index == tj->fail_at ? MF_ERR_IO : MF_OK;
}

static void test_job_final(mf_job_t *job)
{
    test_job_t *tj = (test_job_t *)job;

    atomic_fetch_add(&tj->finals, 1);
    pthread_mutex_lock(&tj->lock);
    tj->done = true;
    pthread_cond_signal(&tj->cond);
    pthread_mutex_unlock(&tj->lock);
}

static void test_workers_jobs(void **state)
{
    mf_workers_t *workers;
    test_job_t tj;
    int round;

    assert_int_equal(mf_workers_create(2, &workers), MF_OK);
    memset(&tj, 0, sizeof(tj));
    pthread_mutex_init(&tj.lock, NULL);
    pthread_cond_init(&tj.cond, NULL);
    tj.job.fn = test_job_chunk;
    tj.job.final_cb = test_job_final;

    /* synchronous: every chunk once, first error returned */
    for (round = 0; round < 200; round++) {
        atomic_store(&tj.calls, 0);
        tj.job.nchunks = 1 + (size_t)round % 37;
        tj.fail_at = round % 3 == 0 ? (size_t)round % tj.job.nchunks : SIZE_MAX;
        assert_int_equal(mf_workers_run(workers, &tj.job),
                         tj.fail_at != SIZE_MAX ? MF_ERR_IO : MF_OK);
        assert_int_equal(atomic_load(&tj.calls), (int)tj.job.nchunks);
    }
    /* asynchronous: final once, after every chunk */
    for (round = 0; round < 200; round++) {
        atomic_store(&tj.calls, 0);
        atomic_store(&tj.finals, 0);
        tj.done = false;
        tj.job.nchunks = (size_t)round % 11; /* 0 included */
        tj.job.max_helpers = (uint32_t)round % 3;
        tj.fail_at = round % 4 == 1 && tj.job.nchunks > 0 ? 0 : SIZE_MAX;
        mf_workers_submit(workers, &tj.job);
        pthread_mutex_lock(&tj.lock);
        while (!tj.done) {
            pthread_cond_wait(&tj.cond, &tj.lock);
        }
        pthread_mutex_unlock(&tj.lock);
        assert_int_equal(atomic_load(&tj.calls), (int)tj.job.nchunks);
        assert_int_equal(atomic_load(&tj.finals), 1);
        assert_int_equal(mf_job_status(&tj.job),
                         tj.fail_at != SIZE_MAX ? MF_ERR_IO : MF_OK);
    }
    mf_workers_destroy(workers);
    pthread_cond_destroy(&tj.cond);
    pthread_mutex_destroy(&tj.lock);
}

static mf_tl_iface_t *test_shm_open(mf_workers_t *workers, const char *id)
{
    mf_tl_params_t params;
    mf_tl_iface_t *iface;

    params.host_id = id;
    params.workers = workers;
    params.split_min = 64 * 1024;
    params.mem_flags = MF_MEM_SEG_PREFAULT;
    if (mf_tl_shm_ops.iface_open(&params, &iface) != MF_OK) {
        return NULL;
    }
    return iface;
}

/*
 * Parent: owns a segment and hands its key to a child through a pipe; the
 * child maps it, puts and gets; the parent checks what the child wrote.
 */
static void test_shm_two_processes(void **state)
{
    const mf_tl_ops_t *ops = &mf_tl_shm_ops;
    uint64_t base = TEST_BASE, seg_size = 16 * TEST_MB;
    uint64_t gva = base + 16 * TEST_MB;
    mf_tl_mem_params_t mem_params;
    mf_workers_t *workers;
    mf_tl_iface_t *iface;
    mf_tl_memh_t *memh;
    mf_tl_caps_t caps;
    uint8_t rkey[1024], addr[512];
    size_t rkey_len, addr_len;
    mf_mem_seg_t seg;
    int topipe[2], frompipe[2];
    uint8_t *expect;
    pid_t pid;
    char c;

    assert_int_equal(mf_mem_reserve(base, 64 * TEST_MB, NULL, 0), MF_OK);
    assert_int_equal(mf_mem_host_ops.seg_create((void *)(uintptr_t)gva,
                                                seg_size, MF_MEM_SEG_PREFAULT,
                                                &seg),
                     MF_OK);
    tk_pattern_fill((uint8_t *)(uintptr_t)gva, seg_size, 42, 0);
    expect = malloc(seg_size);
    assert_non_null(expect);
    memcpy(expect, (void *)(uintptr_t)gva, seg_size);

    iface = test_shm_open(NULL, mf_host_id());
    assert_non_null(iface);
    ops->iface_query(iface, &caps);
    assert_true(caps.flags & MF_TL_CAP_ADDRESSABLE);
    mem_params.addr = seg.addr;
    mem_params.size = seg.size;
    mem_params.seg = &seg;
    assert_int_equal(ops->mem_reg(iface, &mem_params, &memh), MF_OK);
    assert_int_equal(ops->rkey_pack(iface, memh, rkey, sizeof(rkey), &rkey_len),
                     MF_OK);
    assert_int_equal(ops->rkey_pack(iface, memh, rkey, 8, &rkey_len),
                     MF_ERR_TOO_LARGE);
    assert_int_equal(ops->rkey_pack(iface, memh, rkey, sizeof(rkey), &rkey_len),
                     MF_OK);
    assert_int_equal(ops->iface_addr_pack(iface, addr, sizeof(addr), &addr_len),
                     MF_OK);

    assert_int_equal(pipe(topipe), 0);
    assert_int_equal(pipe(frompipe), 0);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mf_tl_iface_t *ci, *other;
        mf_tl_rkey_t *rk;
        mf_tl_ep_t *ep;
        uint8_t *buf = malloc(seg_size + 128), *src = malloc(seg_size + 128);
        size_t sizes[] = {1,     3,      4095,        4097,           65535,
                          65536, 100003, TEST_MB + 5, 5 * TEST_MB + 1};

        TK_CHECK(buf != NULL && src != NULL);
        /* a fresh view: the inherited mapping goes, the reservation stays */
        TK_CHECK(mf_mem_restore_reservation((void *)(uintptr_t)gva, seg_size) ==
                 MF_OK);
        TK_CHECK(mf_workers_create(2, &workers) == MF_OK);
        ci = test_shm_open(workers, mf_host_id());
        TK_CHECK(ci != NULL);
        TK_CHECK(ops->iface_is_reachable(ci, addr, addr_len));

        /* another host: unreachable, and its keys are refused */
        other = test_shm_open(NULL, "other-boot/other-host");
        TK_CHECK(other != NULL);
        TK_CHECK(!ops->iface_is_reachable(other, addr, addr_len));
        TK_CHECK(ops->ep_create(other, addr, addr_len, &ep) ==
                 MF_ERR_UNREACHABLE);
        TK_CHECK(ops->rkey_unpack(other, rkey, rkey_len, gva, seg_size, &rk) ==
                 MF_ERR_UNREACHABLE);
        ops->iface_close(other);

        /* a key is mapped only where the caller expects it */
        mf_log_set_level(MF_LOG_OFF);
        TK_CHECK(ops->rkey_unpack(ci, rkey, rkey_len, gva + 4096, seg_size,
                                  &rk) == MF_ERR_PROTO);
        TK_CHECK(ops->rkey_unpack(ci, rkey, rkey_len, gva, seg_size * 2, &rk) ==
                 MF_ERR_PROTO);
        TK_CHECK(ops->rkey_unpack(ci, rkey, rkey_len - 1, gva, seg_size, &rk) ==
                 MF_ERR_PROTO);
        mf_log_set_level(MF_LOG_WARN);

        TK_CHECK(ops->ep_create(ci, addr, addr_len, &ep) == MF_OK);
        TK_CHECK(ops->rkey_unpack(ci, rkey, rkey_len, gva, seg_size, &rk) ==
                 MF_OK);
        TK_CHECK(rk->addr == (void *)(uintptr_t)gva);

        /* get: every size, unaligned on both sides */
        for (size_t i = 0; i < MF_ARRAY_SIZE(sizes); i++) {
            uint64_t off = (i * 4099) % 4096 + i * 1024;

            TK_CHECK(ops->get(ep, buf + i, gva + off, sizes[i], rk, NULL) ==
                     MF_OK);
            TK_CHECK(memcmp(buf + i, expect + off, sizes[i]) == 0);
        }
        /* put: patterns the parent checks */
        tk_pattern_fill(src, seg_size, 7, 0);
        for (size_t i = 0; i < MF_ARRAY_SIZE(sizes); i++) {
            uint64_t off = (i * 4099) % 4096 + i * 1024;

            TK_CHECK(ops->put(ep, src + off, gva + off, sizes[i], rk, NULL) ==
                     MF_OK);
            memcpy(expect + off, src + off, sizes[i]);
        }
        TK_CHECK(memcmp((void *)(uintptr_t)gva, expect, seg_size) == 0);
        TK_CHECK(ops->flush(ep, NULL) == MF_OK);
        TK_CHECK(ops->progress(ci) == 0);

        ops->rkey_release(ci, rk);
        /* released: the reservation is back */
        {
            char desc[512];

            mf_mem_describe_range(gva, seg_size, desc, sizeof(desc));
            TK_CHECK(strstr(desc, "---p") != NULL);
        }
        ops->ep_destroy(ep);
        ops->iface_close(ci);
        mf_workers_destroy(workers);
        TK_CHECK(write(frompipe[1], expect, 0) == 0);
        /* report the expected image through the pipe */
        for (uint64_t off = 0; off < seg_size;) {
            ssize_t n = write(frompipe[1], expect + off, seg_size - off);

            TK_CHECK(n > 0);
            off += (uint64_t)n;
        }
        _exit(0);
    }
    close(frompipe[1]);
    close(topipe[0]);
    close(topipe[1]);
    for (uint64_t off = 0; off < seg_size;) {
        ssize_t n = read(frompipe[0], expect + off, seg_size - off);

        assert_true(n > 0);
        off += (uint64_t)n;
    }
    assert_int_equal(read(frompipe[0], &c, 1), 0);
    close(frompipe[0]);
    assert_int_equal(tk_proc_wait(pid, 60000), 0);
    assert_memory_equal((void *)(uintptr_t)gva, expect, seg_size);

    /* own key: unpack does not remap */
    {
        mf_tl_rkey_t *rk;

        assert_int_equal(
            ops->rkey_unpack(iface, rkey, rkey_len, gva, seg_size, &rk), MF_OK);
        assert_ptr_equal(rk->addr, (void *)(uintptr_t)gva);
        ops->rkey_release(iface, rk);
        assert_memory_equal((void *)(uintptr_t)gva, expect, seg_size);
    }
    /* plain memory registers, but has no key to share */
    {
        mf_tl_memh_t *plain;
        char local[64];

        mem_params.addr = local;
        mem_params.size = sizeof(local);
        mem_params.seg = NULL;
        assert_int_equal(ops->mem_reg(iface, &mem_params, &plain), MF_OK);
        assert_int_equal(
            ops->rkey_pack(iface, plain, rkey, sizeof(rkey), &rkey_len),
            MF_ERR_UNSUPPORTED);
        ops->mem_dereg(iface, plain);
    }
    ops->mem_dereg(iface, memh);
    ops->iface_close(iface);
    mf_mem_host_ops.seg_destroy(&seg);
    mf_mem_unreserve(base, 64 * TEST_MB);
    free(expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_workers_memcpy),
        cmocka_unit_test(test_workers_jobs),
        cmocka_unit_test(test_shm_two_processes),
    };

    return tk_group_run(tests, NULL, NULL);
}
