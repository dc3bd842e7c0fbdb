/*
 * Unit tests of the cuda memory kind against the driver named by
 * MF_CUDA_LIBRARY (the fake driver of tests/fakecuda unless set; a real
 * libcuda.so.1 on a GPU machine): a missing library or device is a clear
 * MF_ERR_UNSUPPORTED; a device window reserved at its address, or refused
 * naming it; segments created, classified, copied to and from at odd sizes
 * (synchronously and asynchronously), never touched by the host (a host
 * load of one crashes); exported and mapped by a second process at the
 * same address; host memory registered for DMA; driver failures reported
 * as errors.  Each case runs in a child: the kind loads its driver once
 * per process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_window.h"
#include "tk_cuda.h"
#include "tk_group.h"
#include "tk_pattern.h"
#include "tk_proc.h"

#include "mem/mem.h"
#include "util/log.h"
#include "util/misc.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_BASE   TEST_WINDOW(12)
#define TEST_MB     (1024ull * 1024ull)
#define TEST_WIN    (64 * TEST_MB)
#define TEST_SEG    (8 * TEST_MB)
#define TEST_WAIT   60000
#define TEST_CUDA() (&mf_mem_cuda_ops)

/* Runs fn in a child with the environment pairs set; its exit code. */
static int test_child(int (*fn)(void), const char *const *env)
{
    pid_t pid = tk_proc_fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        for (size_t i = 0; env != NULL && env[i] != NULL; i += 2) {
            TK_CHECK(setenv(env[i], env[i + 1], 1) == 0);
        }
        _exit(fn());
    }
    return tk_proc_wait(pid, TEST_WAIT);
}

/* ---- availability ---- */

static int test_no_library_child(void)
{
    mf_mem_seg_t seg;
    char why[256] = "";
    int local;

    mf_log_set_level(MF_LOG_OFF);
    TK_CHECK(mf_mem_kind_ready(MF_MEM_KIND_CUDA) == MF_ERR_UNSUPPORTED);
    TK_CHECK(mf_mem_classify(&local, sizeof(local)) == MF_MEM_KIND_HOST);
    TK_CHECK(TEST_CUDA()->reserve(TEST_BASE, TEST_WIN, why, sizeof(why)) ==
             MF_ERR_UNSUPPORTED);
    /* the reason names what is missing */
    TK_CHECK(strstr(why, "/nonexistent/libcuda.so.1") != NULL ||
             strstr(why, "no CUDA support") != NULL);
    TK_CHECK(TEST_CUDA()->seg_create((void *)TEST_BASE, TEST_SEG, 0, &seg) ==
             MF_ERR_UNSUPPORTED);
    TK_CHECK(TEST_CUDA()->copy(why, why + 1, 1) == MF_ERR_UNSUPPORTED);
    return 0;
}

static void test_no_library(void **state)
{
    static const char *const env[] = {"MF_CUDA_LIBRARY",
                                      "/nonexistent/libcuda.so.1", NULL};

    assert_int_equal(test_child(test_no_library_child, env), 0);
}

static int test_no_device_child(void)
{
    char why[256] = "";

    mf_log_set_level(MF_LOG_OFF);
    TK_CHECK(mf_mem_kind_ready(MF_MEM_KIND_CUDA) == MF_ERR_UNSUPPORTED);
    TK_CHECK(TEST_CUDA()->reserve(TEST_BASE, TEST_WIN, why, sizeof(why)) ==
             MF_ERR_UNSUPPORTED);
    TK_CHECK(strstr(why, "no CUDA device") != NULL);
    return 0;
}

static void test_no_device(void **state)
{
    static const char *const env[] = {"FAKECUDA_DEVICES", "0", NULL};

    assert_int_equal(test_child(test_no_device_child, env), 0);
}

/* ---- segments and copies ---- */

typedef struct test_comp {
    mf_mem_comp_t super;
    atomic_int calls;
    mf_status_t status;
} test_comp_t;

static void test_comp_cb(mf_mem_comp_t *comp, mf_status_t status)
{
    test_comp_t *tc = (test_comp_t *)comp;

    tc->status = status;
    atomic_fetch_add(&tc->calls, 1);
}

static mf_status_t test_comp_wait(test_comp_t *tc, mf_status_t status)
{
    if (status != MF_INPROGRESS) {
        return status;
    }
    while (atomic_load(&tc->calls) == 0) {
        usleep(100);
    }
    return tc->status;
}

/* A device window and a segment at its start. */
static void test_seg_open(mf_mem_seg_t *seg)
{
    char why[256];

    TK_CHECK_OK(mf_mem_kind_ready(MF_MEM_KIND_CUDA));
    TK_CHECK(TEST_CUDA()->seg_align() >= 4096);
    TK_CHECK(TEST_SEG % TEST_CUDA()->seg_align() == 0);
    TK_CHECK_OK(TEST_CUDA()->reserve(TEST_BASE, TEST_WIN, why, sizeof(why)));
    TK_CHECK_OK(TEST_CUDA()->seg_create((void *)TEST_BASE, TEST_SEG, 0, seg));
    TK_CHECK(seg->kind == MF_MEM_KIND_CUDA && seg->fd >= 0 && !seg->imported);
}

static void test_seg_close(mf_mem_seg_t *seg)
{
    TEST_CUDA()->seg_destroy(seg);
    TEST_CUDA()->unreserve(TEST_BASE, TEST_WIN);
}

static int test_copies_child(void)
{
    static const size_t sizes[] = {
        1, 7, 4095, 4097, 65537, TEST_MB + 3, 3 * TEST_MB + 11};
    uint8_t *src = malloc(4 * TEST_MB), *dst = malloc(4 * TEST_MB);
    uint8_t *dev;
    mf_mem_seg_t seg;
    test_comp_t tc;
    mf_status_t st;

    TK_CHECK(src != NULL && dst != NULL);
    test_seg_open(&seg);
    dev = seg.addr;
    TK_CHECK(mf_mem_classify(dev, 1) == MF_MEM_KIND_CUDA);
    TK_CHECK(mf_mem_classify(dev + TEST_SEG - 1, 1) == MF_MEM_KIND_CUDA);
    TK_CHECK(mf_mem_classify(src, 1) == MF_MEM_KIND_HOST);
    tk_pattern_fill(src, 4 * TEST_MB, 21, 0);

    for (size_t i = 0; i < MF_ARRAY_SIZE(sizes); i++) {
        size_t so = i * 13 % 61, doff = i * 4099 % 65536;

        /* host -> device -> device -> host, unaligned everywhere */
        TK_CHECK_OK(TEST_CUDA()->copy(dev + doff, src + so, sizes[i]));
        TK_CHECK_OK(TEST_CUDA()->copy(dev + 4 * TEST_MB + doff + 1, dev + doff,
                                      sizes[i]));
        memset(dst, 0, sizes[i] + 2);
        TK_CHECK_OK(
            TEST_CUDA()->copy(dst + 1, dev + 4 * TEST_MB + doff + 1, sizes[i]));
        TK_CHECK(tk_pattern_check(dst + 1, sizes[i], 21, so) < 0);
        TK_CHECK(dst[0] == 0 && dst[sizes[i] + 1] == 0);

        /* asynchronously: the bytes are there once the completion fired */
        memset(dst, 0, sizes[i]);
        atomic_init(&tc.calls, 0);
        tc.super.cb = test_comp_cb;
        st = TEST_CUDA()->copy_async(dst, dev + doff, sizes[i], &tc.super);
        TK_CHECK(st == MF_INPROGRESS || st == MF_OK);
        TK_CHECK_OK(test_comp_wait(&tc, st));
        TK_CHECK(tk_pattern_check(dst, sizes[i], 21, so) < 0);
        usleep(1000);
        TK_CHECK(atomic_load(&tc.calls) == (st == MF_INPROGRESS ? 1 : 0));
    }
    TK_CHECK_OK(TEST_CUDA()->copy(dst, src, 0));

    /* bad device ranges: refused, nothing copied */
    mf_log_set_level(MF_LOG_OFF);
    TK_CHECK(TEST_CUDA()->copy(dst, dev + TEST_SEG - 10, 20) == MF_ERR_INVALID);
    TK_CHECK(TEST_CUDA()->copy(dst, dev + TEST_SEG, 1) == MF_ERR_INVALID);
    TK_CHECK(TEST_CUDA()->copy(dev + TEST_SEG + TEST_MB, src, 1) ==
             MF_ERR_INVALID);
    /* a segment off the granularity */
    {
        mf_mem_seg_t bad;

        TK_CHECK(TEST_CUDA()->seg_create(dev + TEST_SEG + 4096, TEST_SEG, 0,
                                         &bad) == MF_ERR_INVALID);
        TK_CHECK(TEST_CUDA()->seg_create(dev + TEST_SEG, 4096, 0, &bad) ==
                 MF_ERR_INVALID);
    }
    mf_log_set_level(MF_LOG_WARN);
    test_seg_close(&seg);
    free(src);
    free(dst);
    return 0;
}

static void test_copies(void **state)
{
    assert_int_equal(test_child(test_copies_child, NULL), 0);
}

/* A host load of device memory is a crash, as on a GPU: the kind never
 * makes one, and this checks the stand-in would catch it. */
static int test_host_load_child(void)
{
    mf_mem_seg_t seg;
    pid_t pid;
    int status;

    test_seg_open(&seg);
    pid = fork();
    TK_CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        _exit(*(volatile uint8_t *)seg.addr);
    }
    TK_CHECK(waitpid(pid, &status, 0) == pid);
    TK_CHECK(WIFSIGNALED(status) &&
             (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS));
    test_seg_close(&seg);
    return 0;
}

static void test_host_load(void **state)
{
    const char *lib = getenv("MF_CUDA_LIBRARY");

    if (lib != NULL && strstr(lib, "fakecuda") == NULL) {
        skip(); /* a real GPU without unified memory faults the same, but
                   sanitizers may intercept it first */
    }
    assert_int_equal(test_child(test_host_load_child, NULL), 0);
}

/* ---- export and import ---- */

static int test_import_child(void)
{
    uint8_t *buf = malloc(TEST_SEG);
    mf_mem_seg_t seg, peer;
    mf_mem_desc_t desc;

    TK_CHECK(buf != NULL);
    test_seg_open(&seg);
    tk_pattern_fill(buf, TEST_SEG, 33, 0);
    TK_CHECK_OK(TEST_CUDA()->copy(seg.addr, buf, TEST_SEG));
    TK_CHECK_OK(TEST_CUDA()->seg_export(&seg, &desc));
    TK_CHECK(desc.kind == MF_MEM_KIND_CUDA && desc.size == TEST_SEG);
    /* imported by its own process: a second mapping of the same memory
     * at another address of the window */
    TK_CHECK_OK(TEST_CUDA()->seg_import(&desc, (uint8_t *)seg.addr + TEST_SEG,
                                        0, &peer));
    TK_CHECK(peer.imported && peer.fd < 0);
    memset(buf, 0, TEST_SEG);
    TK_CHECK_OK(TEST_CUDA()->copy(buf, peer.addr, TEST_SEG));
    TK_CHECK(tk_pattern_check(buf, TEST_SEG, 33, 0) < 0);
    /* a write through one mapping is seen through the other */
    tk_pattern_fill(buf, TEST_MB, 34, 0);
    TK_CHECK_OK(TEST_CUDA()->copy(peer.addr, buf, TEST_MB));
    memset(buf, 0, TEST_MB);
    TK_CHECK_OK(TEST_CUDA()->copy(buf, seg.addr, TEST_MB));
    TK_CHECK(tk_pattern_check(buf, TEST_MB, 34, 0) < 0);
    TEST_CUDA()->seg_destroy(&peer);

    /* bad descriptors */
    mf_log_set_level(MF_LOG_OFF);
    {
        mf_mem_desc_t bad = desc;

        bad.size = 4096;
        TK_CHECK(TEST_CUDA()->seg_import(&bad, (uint8_t *)seg.addr + TEST_SEG,
                                         0, &peer) == MF_ERR_INVALID);
        bad = desc;
        bad.kind = MF_MEM_KIND_HOST;
        TK_CHECK(TEST_CUDA()->seg_import(&bad, (uint8_t *)seg.addr + TEST_SEG,
                                         0, &peer) == MF_ERR_INVALID);
        bad = desc;
        bad.fd = 100000;
        TK_CHECK(TEST_CUDA()->seg_import(&bad, (uint8_t *)seg.addr + TEST_SEG,
                                         0, &peer) != MF_OK);
    }
    mf_log_set_level(MF_LOG_WARN);
    test_seg_close(&seg);
    free(buf);
    return 0;
}

static void test_import(void **state)
{
    assert_int_equal(test_child(test_import_child, NULL), 0);
}

/*
 * Two processes: the owner creates a segment and passes its descriptor;
 * the peer (which loaded its own driver) maps it at the same address of
 * its own window, reads the owner's bytes and writes its own, which the
 * owner then reads.  A confined peer may not call pidfd_getfd (as in a
 * container) and takes the descriptor from the owner's service; a new
 * open of /proc/<pid>/fd/<fd> would not import.
 */
static bool test_two_confined;

static int test_two_owner(int to_peer, int from_peer)
{
    uint8_t *buf = malloc(TEST_SEG);
    mf_mem_desc_t desc;
    mf_mem_seg_t seg;
    char c;

    TK_CHECK(buf != NULL);
    test_seg_open(&seg);
    tk_pattern_fill(buf, TEST_SEG, 41, 0);
    TK_CHECK_OK(TEST_CUDA()->copy(seg.addr, buf, TEST_SEG));
    TK_CHECK_OK(TEST_CUDA()->seg_export(&seg, &desc));
    TK_CHECK(write(to_peer, &desc, sizeof(desc)) == (ssize_t)sizeof(desc));
    TK_CHECK(read(from_peer, &c, 1) == 1 && c == 'w');
    memset(buf, 0, TEST_SEG);
    TK_CHECK_OK(TEST_CUDA()->copy(buf, seg.addr, TEST_SEG));
    TK_CHECK(tk_pattern_check(buf, TEST_MB, 42, 0) < 0);
    TK_CHECK(tk_pattern_check(buf + TEST_MB, TEST_SEG - TEST_MB, 41, TEST_MB) <
             0);
    test_seg_close(&seg);
    free(buf);
    return 0;
}

static int test_two_peer(int from_owner, int to_owner)
{
    uint8_t *buf = malloc(TEST_SEG);
    mf_mem_desc_t desc;
    mf_mem_seg_t seg;
    char why[256];

    TK_CHECK(buf != NULL);
    TK_CHECK(read(from_owner, &desc, sizeof(desc)) == (ssize_t)sizeof(desc));
    if (test_two_confined) {
        TK_CHECK(tk_proc_deny_syscall(SYS_pidfd_getfd) == 0);
    }
    TK_CHECK_OK(TEST_CUDA()->reserve(TEST_BASE, TEST_WIN, why, sizeof(why)));
    TK_CHECK_OK(TEST_CUDA()->seg_import(&desc, (void *)TEST_BASE, 0, &seg));
    TK_CHECK(mf_mem_classify((void *)TEST_BASE, 1) == MF_MEM_KIND_CUDA);
    TK_CHECK_OK(TEST_CUDA()->copy(buf, seg.addr, TEST_SEG));
    TK_CHECK(tk_pattern_check(buf, TEST_SEG, 41, 0) < 0);
    tk_pattern_fill(buf, TEST_MB, 42, 0);
    TK_CHECK_OK(TEST_CUDA()->copy(seg.addr, buf, TEST_MB));
    TK_CHECK(write(to_owner, "w", 1) == 1);
    TEST_CUDA()->seg_destroy(&seg);
    TEST_CUDA()->unreserve(TEST_BASE, TEST_WIN);
    free(buf);
    return 0;
}

static void test_two_run(bool confined)
{
    int a[2], b[2];
    pid_t owner, peer;

    test_two_confined = confined;
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    owner = tk_proc_fork();
    assert_true(owner >= 0);
    if (owner == 0) {
        _exit(test_two_owner(a[1], b[0]));
    }
    peer = tk_proc_fork();
    assert_true(peer >= 0);
    if (peer == 0) {
        _exit(test_two_peer(a[0], b[1]));
    }
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    assert_int_equal(tk_proc_wait(peer, TEST_WAIT), 0);
    assert_int_equal(tk_proc_wait(owner, TEST_WAIT), 0);
}

static void test_two_processes(void **state)
{
    test_two_run(false);
}

static void test_two_processes_confined(void **state)
{
    test_two_run(true);
}

/* ---- registration, reservation, faults ---- */

static int test_dma_reg_child(void)
{
    size_t size = 3 * TEST_MB;
    uint8_t *host = aligned_alloc(4096, size);
    mf_mem_reg_t *reg, *again;

    TK_CHECK(host != NULL);
    TK_CHECK_OK(mf_mem_kind_ready(MF_MEM_KIND_CUDA));
    TK_CHECK_OK(TEST_CUDA()->dma_reg(host, size, &reg));
    TK_CHECK(reg != NULL);
    /* registered already (e.g. by the application): accepted, and the
     * application's registration survives ours */
    TK_CHECK_OK(TEST_CUDA()->dma_reg(host, size, &again));
    TEST_CUDA()->dma_dereg(again);
    TEST_CUDA()->dma_dereg(reg);
    TK_CHECK_OK(TEST_CUDA()->dma_reg(host, size, &reg));
    TEST_CUDA()->dma_dereg(reg);
    free(host);
    return 0;
}

static void test_dma_reg(void **state)
{
    assert_int_equal(test_child(test_dma_reg_child, NULL), 0);
}

/*
 * The application's CUDA state stays its own: the kind works on its
 * device's primary context and puts back the thread's context (none, or
 * another device's) after each call; while the application captures a
 * graph in global mode, the kind's copies and registrations still work
 * and leave the thread's capture mode as they found it.
 */
static int test_app_state_child(void)
{
    uint8_t *buf = malloc(TEST_MB), *host = aligned_alloc(4096, TEST_MB);
    tk_cuda_stream_t *stream;
    mf_mem_seg_t seg;
    mf_mem_reg_t *reg;
    test_comp_t tc;
    mf_status_t st;
    int app_dev;

    TK_CHECK(buf != NULL && host != NULL);
    TK_CHECK(tk_cuda_init(NULL, 0) == 0);
    TK_CHECK(tk_cuda_ctx_set(-1) == 0);
    test_seg_open(&seg); /* no context current: MF_CUDA_DEVICE, device 0 */
    TK_CHECK(tk_cuda_ctx_get() == -1);
    tk_pattern_fill(buf, TEST_MB, 51, 0);
    TK_CHECK_OK(TEST_CUDA()->copy(seg.addr, buf, TEST_MB));
    TK_CHECK(tk_cuda_ctx_get() == -1);

    /* the application works on another device from here */
    app_dev = tk_cuda_ctx_set(1) == 0 ? 1 : 0;
    TK_CHECK(tk_cuda_ctx_set(app_dev) == 0);
    memset(buf, 0, TEST_MB);
    TK_CHECK_OK(TEST_CUDA()->copy(buf, seg.addr, TEST_MB));
    TK_CHECK(tk_pattern_check(buf, TEST_MB, 51, 0) < 0);
    TK_CHECK(tk_cuda_ctx_get() == app_dev);
    atomic_init(&tc.calls, 0);
    tc.super.cb = test_comp_cb;
    st = TEST_CUDA()->copy_async(buf, seg.addr, TEST_MB, &tc.super);
    TK_CHECK_OK(test_comp_wait(&tc, st));
    TK_CHECK(tk_cuda_ctx_get() == app_dev);

    /* a graph captured meanwhile, in this thread */
    stream = tk_cuda_stream_create();
    TK_CHECK(stream != NULL);
    TK_CHECK(tk_cuda_capture_begin(stream) == 0);
    TK_CHECK(tk_cuda_capture_mode() == 0);
    TK_CHECK_OK(TEST_CUDA()->copy(seg.addr, buf, TEST_MB));
    TK_CHECK_OK(TEST_CUDA()->dma_reg(host, TEST_MB, &reg));
    TEST_CUDA()->dma_dereg(reg);
    TK_CHECK(tk_cuda_capture_mode() == 0);
    TK_CHECK(tk_cuda_capture_end(stream) == 0);
    tk_cuda_stream_destroy(stream);

    test_seg_close(&seg);
    free(host);
    free(buf);
    return 0;
}

static void test_app_state(void **state)
{
    static const char *const env[] = {"FAKECUDA_DEVICES", "2", "MF_CUDA_DEVICE",
                                      "0", NULL};

    assert_int_equal(test_child(test_app_state_child, env), 0);
}

static int test_reserve_miss_child(void)
{
    char why[256] = "";
    char addr[32];

    mf_log_set_level(MF_LOG_OFF);
    TK_CHECK_OK(mf_mem_kind_ready(MF_MEM_KIND_CUDA));
    TK_CHECK(TEST_CUDA()->reserve(TEST_BASE, TEST_WIN, why, sizeof(why)) ==
             MF_ERR_ADDR_IN_USE);
    snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)TEST_BASE);
    TK_CHECK(strstr(why, addr) != NULL);
    TK_CHECK(TEST_CUDA()->reserve(TEST_BASE + 4096, TEST_WIN, why,
                                  sizeof(why)) == MF_ERR_INVALID);
    return 0;
}

static void test_reserve_miss(void **state)
{
    static const char *const env[] = {"FAKECUDA_RESERVE_MISS", "1", NULL};
    const char *lib = getenv("MF_CUDA_LIBRARY");

    if (lib != NULL && strstr(lib, "fakecuda") == NULL) {
        skip(); /* fault injection of the fake driver */
    }
    assert_int_equal(test_child(test_reserve_miss_child, env), 0);
}

static int test_faults_child(void)
{
    uint8_t buf[64];
    mf_mem_seg_t seg, other;
    char why[256];

    mf_log_set_level(MF_LOG_OFF);
    TK_CHECK_OK(TEST_CUDA()->reserve(TEST_BASE, TEST_WIN, why, sizeof(why)));
    /* the first creation fails (FAKECUDA_FAIL_CREATE=1), the next works */
    TK_CHECK(TEST_CUDA()->seg_create((void *)TEST_BASE, TEST_SEG, 0, &seg) ==
             MF_ERR_NOMEM);
    TK_CHECK_OK(TEST_CUDA()->seg_create((void *)TEST_BASE, TEST_SEG, 0, &seg));
    /* the same range twice */
    TK_CHECK(TEST_CUDA()->seg_create((void *)TEST_BASE, TEST_SEG, 0, &other) ==
             MF_ERR_INVALID);
    /* the second copy fails (FAKECUDA_FAIL_COPY=2) */
    TK_CHECK_OK(TEST_CUDA()->copy(seg.addr, buf, sizeof(buf)));
    TK_CHECK(TEST_CUDA()->copy(seg.addr, buf, sizeof(buf)) == MF_ERR_IO);
    TK_CHECK_OK(TEST_CUDA()->copy(buf, seg.addr, sizeof(buf)));
    test_seg_close(&seg);
    return 0;
}

static void test_faults(void **state)
{
    static const char *const env[] = {"FAKECUDA_FAIL_CREATE", "1",
                                      "FAKECUDA_FAIL_COPY", "2", NULL};
    const char *lib = getenv("MF_CUDA_LIBRARY");

    if (lib != NULL && strstr(lib, "fakecuda") == NULL) {
        skip();
    }
    assert_int_equal(test_child(test_faults_child, env), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_library),
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_copies),
        cmocka_unit_test(test_host_load),
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_two_processes),
        cmocka_unit_test(test_two_processes_confined),
        cmocka_unit_test(test_dma_reg),
        cmocka_unit_test(test_reserve_miss),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_app_state),
    };

#ifdef TEST_FAKECUDA_PATH
    /* the fake driver, unless a driver is named (a real one on a GPU) */
    setenv("MF_CUDA_LIBRARY", TEST_FAKECUDA_PATH, 0);
#endif
    return tk_group_run(tests, NULL, NULL);
}
