/*
 * Unit tests of what is the shm transport's own (what every transport
 * must do is test_tl.c's), and of the copy threads it splits large copies
 * across: split memcpy, synchronous and asynchronous jobs.  shm maps a
 * peer's segment at its GVA: its own key unpacks without a new mapping
 * and its release leaves the segment alone; a peer's key released gives
 * the window its reservation back; plain user memory has no key.
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

static mf_tl_iface_t *test_shm_open(void)
{
    mf_tl_params_t params;
    mf_tl_iface_t *iface;

    memset(&params, 0, sizeof(params));
    params.host_id = mf_host_id();
    params.mem_flags = MF_MEM_SEG_PREFAULT;
    if (mf_tl_shm_ops.iface_open(&params, &iface) != MF_OK) {
        return NULL;
    }
    return iface;
}

/*
 * A segment of this process and its key: unpacked here it is the segment
 * as mapped already, and its release unmaps nothing; unpacked by a child
 * it is mapped there, and released the child's window is a reservation
 * again.  Plain memory registers, but has no key to share.
 */
static void test_shm_keys(void **state)
{
    const mf_tl_ops_t *ops = &mf_tl_shm_ops;
    uint64_t base = TEST_BASE, seg_size = 16 * TEST_MB;
    uint64_t gva = base + 16 * TEST_MB;
    mf_tl_mem_params_t mem_params = {0};
    mf_tl_iface_t *iface;
    mf_tl_memh_t *memh, *plain;
    mf_tl_rkey_t *rk;
    uint8_t rkey[1024];
    size_t rkey_len;
    mf_mem_seg_t seg;
    char local[64];
    pid_t pid;

    assert_int_equal(mf_mem_reserve(base, 64 * TEST_MB, NULL, 0), MF_OK);
    assert_int_equal(mf_mem_host_ops.seg_create((void *)(uintptr_t)gva,
                                                seg_size, MF_MEM_SEG_PREFAULT,
                                                &seg),
                     MF_OK);
    tk_pattern_fill(seg.addr, seg_size, 42, 0);
    iface = test_shm_open();
    assert_non_null(iface);
    mem_params.addr = seg.addr;
    mem_params.size = seg.size;
    mem_params.seg = &seg;
    assert_int_equal(ops->mem_reg(iface, &mem_params, &memh), MF_OK);
    assert_int_equal(ops->rkey_pack(iface, memh, rkey, sizeof(rkey), &rkey_len),
                     MF_OK);

    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mf_tl_iface_t *ci;
        char desc[512];

        TK_CHECK_OK(mf_mem_restore_reservation(seg.addr, seg_size));
        ci = test_shm_open();
        TK_CHECK(ci != NULL);
        TK_CHECK_OK(ops->rkey_unpack(ci, rkey, rkey_len, gva, seg_size, &rk));
        TK_CHECK(tk_pattern_check(rk->addr, seg_size, 42, 0) < 0);
        ops->rkey_release(ci, rk);
        mf_mem_describe_range(gva, seg_size, desc, sizeof(desc));
        TK_CHECK(strstr(desc, "---p") != NULL);
        ops->iface_close(ci);
        tk_proc_exit(0);
    }
    assert_int_equal(tk_proc_wait(pid, 60000), 0);

    assert_int_equal(
        ops->rkey_unpack(iface, rkey, rkey_len, gva, seg_size, &rk), MF_OK);
    assert_ptr_equal(rk->addr, seg.addr);
    ops->rkey_release(iface, rk);
    assert_true(tk_pattern_check(seg.addr, seg_size, 42, 0) < 0);

    mem_params.addr = local;
    mem_params.size = sizeof(local);
    mem_params.seg = NULL;
    assert_int_equal(ops->mem_reg(iface, &mem_params, &plain), MF_OK);
    assert_int_equal(
        ops->rkey_pack(iface, plain, rkey, sizeof(rkey), &rkey_len),
        MF_ERR_UNSUPPORTED);
    ops->mem_dereg(iface, plain);
    ops->mem_dereg(iface, memh);
    ops->iface_close(iface);
    mf_mem_host_ops.seg_destroy(&seg);
    mf_mem_unreserve(base, 64 * TEST_MB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_memcpy),
        cmocka_unit_test(test_workers_jobs),
        cmocka_unit_test(test_shm_keys),
    };

    return tk_group_run(tests, NULL, NULL);
}
