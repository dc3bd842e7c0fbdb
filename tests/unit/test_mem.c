/*
 * Unit tests of the memory-kind layer: host segments (create, prefault,
 * export, import in a forked child at the same address, destroy restores
 * the reservation), window reservations and their conflict report, the
 * cuda stubs, the descriptor service (a peer that may not call
 * pidfd_getfd still takes the same open file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_window.h"
#include "tk_group.h"
#include "tk_proc.h"

#include "mem/mem.h"
#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_BASE TEST_WINDOW(1)
#define TEST_MB   (1024ull * 1024ull)

/* Whether the range is mapped PROT_NONE (a reservation). */
static bool test_is_reserved(uint64_t base, uint64_t len)
{
    char desc[1024];

    mf_mem_describe_range(base, len, desc, sizeof(desc));
    return strstr(desc, "---p") != NULL && strstr(desc, "rw-s") == NULL;
}

static void test_ops_filled(void **state)
{
    const mf_mem_ops_t *ops;
    mf_mem_seg_t seg;
    mf_mem_desc_t desc;
    int kind;
    char c;

    for (kind = 0; kind < MF_MEM_KIND_LAST; kind++) {
        ops = mf_mem_ops_get((mf_mem_kind_t)kind);
        assert_non_null(ops);
        assert_int_equal(ops->kind, kind);
        assert_non_null(ops->name);
        assert_non_null(ops->seg_create);
        assert_non_null(ops->seg_destroy);
        assert_non_null(ops->seg_export);
        assert_non_null(ops->seg_import);
        assert_non_null(ops->copy);
        assert_non_null(ops->probe);
        assert_non_null(ops->claims);
        assert_non_null(ops->seg_align);
        assert_non_null(ops->reserve);
        assert_non_null(ops->unreserve);
        assert_non_null(ops->copy_async);
        assert_non_null(ops->dma_reg);
        assert_non_null(ops->dma_dereg);
    }
    assert_null(mf_mem_ops_get(MF_MEM_KIND_LAST));

    /* host memory is always there and claims what no device kind does */
    assert_int_equal(mf_mem_kind_ready(MF_MEM_KIND_HOST), MF_OK);
    assert_int_equal(mf_mem_kind_ready(MF_MEM_KIND_LAST), MF_ERR_INVALID);
    assert_int_equal(mf_mem_classify(&c, 1), MF_MEM_KIND_HOST);
    ops = mf_mem_ops_get(MF_MEM_KIND_HOST);
    {
        char src[8] = "abcdefg", dst[8] = {0};
        mf_mem_comp_t comp = {NULL};
        mf_mem_reg_t *reg = (mf_mem_reg_t *)&comp;

        assert_int_equal(ops->copy_async(dst, src, sizeof(src), &comp), MF_OK);
        assert_string_equal(dst, "abcdefg");
        assert_int_equal(ops->dma_reg(src, sizeof(src), &reg), MF_OK);
        ops->dma_dereg(reg);
    }

    /* without a driver (main() names none) the cuda kind answers
     * "unsupported" everywhere; test_mem_cuda tests it with one */
    ops = mf_mem_ops_get(MF_MEM_KIND_CUDA);
    memset(&desc, 0, sizeof(desc));
    memset(&seg, 0, sizeof(seg));
    seg.fd = -1;
    assert_int_equal(ops->seg_create((void *)TEST_BASE, 4096, 0, &seg),
                     MF_ERR_UNSUPPORTED);
    assert_int_equal(ops->seg_import(&desc, (void *)TEST_BASE, 0, &seg),
                     MF_ERR_UNSUPPORTED);
    assert_int_not_equal(ops->seg_export(&seg, &desc), MF_OK);
    assert_int_equal(ops->copy(&c, &c, 1), MF_ERR_UNSUPPORTED);
    /* no device kind here: it is not ready, claims nothing */
    assert_int_equal(mf_mem_kind_ready(MF_MEM_KIND_CUDA), MF_ERR_UNSUPPORTED);
    assert_false(ops->claims(&c, 1));
}

static void test_reserve_conflict(void **state)
{
    uint64_t base = TEST_BASE + 64 * TEST_MB;
    uint64_t len = 16 * TEST_MB;
    char why[512], expect[64];
    void *p;

    /* something of ours in the middle of the range */
    p = mmap((void *)(uintptr_t)(base + 4 * TEST_MB), 4096,
             PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    assert_ptr_equal(p, (void *)(uintptr_t)(base + 4 * TEST_MB));

    mf_log_set_level(MF_LOG_OFF); /* the expected error */
    assert_int_equal(mf_mem_reserve(base, len, why, sizeof(why)),
                     MF_ERR_ADDR_IN_USE);
    mf_log_set_level(MF_LOG_WARN);
    snprintf(expect, sizeof(expect), "%llx-%llx",
             (unsigned long long)(base + 4 * TEST_MB),
             (unsigned long long)(base + 4 * TEST_MB + 4096));
    assert_non_null(strstr(why, expect));
    assert_non_null(strstr(why, "taken by"));
    /* the mapping is untouched */
    *(volatile char *)p = 1;
    munmap(p, 4096);

    /* free now */
    assert_int_equal(mf_mem_reserve(base, len, why, sizeof(why)), MF_OK);
    assert_true(test_is_reserved(base, len));
    /* a second reservation of the same range is refused */
    mf_log_set_level(MF_LOG_OFF);
    assert_int_equal(mf_mem_reserve(base, len, NULL, 0), MF_ERR_ADDR_IN_USE);
    assert_int_equal(mf_mem_reserve(base + 1, len, NULL, 0), MF_ERR_INVALID);
    mf_log_set_level(MF_LOG_WARN);
    mf_mem_unreserve(base, len);
}

static void test_host_create_import(void **state)
{
    const mf_mem_ops_t *ops = &mf_mem_host_ops;
    uint64_t base = TEST_BASE + 128 * TEST_MB;
    uint64_t len = 8 * TEST_MB, size = 4 * TEST_MB;
    void *addr = (void *)(uintptr_t)(base + 2 * TEST_MB);
    struct rusage before, after;
    unsigned char resident[4 * TEST_MB / 4096];
    int pipefd[2];
    mf_mem_seg_t seg;
    mf_mem_desc_t desc;
    pid_t pid;
    char c;

    assert_int_equal(mf_mem_reserve(base, len, NULL, 0), MF_OK);
    assert_int_equal(ops->seg_create(addr, size,
                                     MF_MEM_SEG_PREFAULT | MF_MEM_SEG_HUGEPAGE,
                                     &seg),
                     MF_OK);
    assert_ptr_equal(seg.addr, addr);
    assert_int_equal(seg.size, size);
    assert_true(seg.fd >= 0);
    assert_false(seg.imported);

    /* pre-faulted: every page is there, and touching every page takes
     * (almost) no fault now */
    assert_int_equal(mincore(addr, size, resident), 0);
    for (uint64_t i = 0; i < size / 4096; i++) {
        assert_true(resident[i] & 1);
    }
    getrusage(RUSAGE_SELF, &before);
    for (uint64_t off = 0; off < size; off += 4096) {
        ((volatile char *)addr)[off] = (char)(off >> 12);
    }
    getrusage(RUSAGE_SELF, &after);
    /* (ASan faults in some shadow pages: allow far less than one a page;
     * ThreadSanitizer's shadow takes a fault for every page touched) */
    if (!MF_TSAN) {
        assert_true((uint64_t)(after.ru_minflt - before.ru_minflt) <
                    size / 4096 / 2);
    }

    assert_int_equal(ops->seg_export(&seg, &desc), MF_OK);
    assert_int_equal(desc.pid, getpid());
    assert_int_equal(desc.fd, seg.fd);
    assert_int_equal(desc.size, size);

    assert_int_equal(pipe(pipefd), 0);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mf_mem_seg_t imp;

        /* forget the inherited mapping: back to a bare reservation */
        TK_CHECK(mf_mem_restore_reservation(addr, size) == MF_OK);
        TK_CHECK(test_is_reserved(base, len));
        TK_CHECK(ops->seg_import(&desc, addr, MF_MEM_SEG_PREFAULT, &imp) ==
                 MF_OK);
        TK_CHECK(imp.imported && imp.addr == addr && imp.size == size);
        for (uint64_t off = 0; off < size; off += 4096) {
            TK_CHECK(((volatile char *)addr)[off] == (char)(off >> 12));
        }
        memset((char *)addr + 4096, 0x5a, 4096); /* seen by the parent */
        ops->seg_destroy(&imp);
        TK_CHECK(test_is_reserved(base, len));
        TK_CHECK(write(pipefd[1], "x", 1) == 1);
        _exit(0);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    assert_int_equal(tk_proc_wait(pid, 60000), 0);
    assert_int_equal(((unsigned char *)addr)[4096], 0x5a);
    assert_int_equal(((unsigned char *)addr)[8191], 0x5a);

    /* destroy restores the reservation: no hole */
    ops->seg_destroy(&seg);
    assert_true(test_is_reserved(base, len));
    assert_int_equal(seg.fd, -1);
    mf_mem_unreserve(base, len);
}

static void test_host_import_errors(void **state)
{
    const mf_mem_ops_t *ops = &mf_mem_host_ops;
    uint64_t base = TEST_BASE + 256 * TEST_MB;
    void *addr = (void *)(uintptr_t)base;
    mf_mem_desc_t desc;
    mf_mem_seg_t seg;
    pid_t pid;

    assert_int_equal(mf_mem_reserve(base, 4 * TEST_MB, NULL, 0), MF_OK);
    mf_log_set_level(MF_LOG_OFF);

    /* a process that is gone */
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(0);
    }
    assert_int_equal(tk_proc_wait(pid, 60000), 0);
    desc.kind = MF_MEM_KIND_HOST;
    desc.pid = (uint32_t)pid;
    desc.fd = 3;
    desc.size = 4096;
    assert_int_equal(ops->seg_import(&desc, addr, 0, &seg), MF_ERR_PEER_LOST);
    assert_true(test_is_reserved(base, 4 * TEST_MB));

    /* malformed descriptors */
    desc.pid = (uint32_t)getpid();
    desc.size = 100;
    assert_int_equal(ops->seg_import(&desc, addr, 0, &seg), MF_ERR_INVALID);
    desc.size = 4096;
    desc.fd = -1;
    assert_int_equal(ops->seg_import(&desc, addr, 0, &seg), MF_ERR_INVALID);
    desc.fd = 0;
    desc.kind = MF_MEM_KIND_CUDA;
    assert_int_equal(ops->seg_import(&desc, addr, 0, &seg), MF_ERR_INVALID);
    /* a descriptor claiming more than the file holds */
    {
        mf_mem_seg_t own;

        assert_int_equal(ops->seg_create(addr, 4096, 0, &own), MF_OK);
        assert_int_equal(ops->seg_export(&own, &desc), MF_OK);
        desc.size = 2 * TEST_MB;
        assert_int_equal(
            ops->seg_import(&desc, (char *)addr + 2 * TEST_MB, 0, &seg),
            MF_ERR_INVALID);
        ops->seg_destroy(&own);
    }
    assert_int_equal(ops->seg_create(addr, 100, 0, &seg), MF_ERR_INVALID);
    mf_log_set_level(MF_LOG_WARN);
    assert_true(test_is_reserved(base, 4 * TEST_MB));
    mf_mem_unreserve(base, 4 * TEST_MB);
}

/* A descriptor offered is taken as the same open file (a pipe: what one
 * side writes the other reads), by this process or another that may not
 * call pidfd_getfd; one not offered, or withdrawn, is not. */
static void test_fd_service(void **state)
{
    int p[2], q[2], nfd;
    pid_t pid;
    char c;

    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(q), 0);
    assert_int_equal(mf_mem_fd_offer(p[1]), MF_OK);

    nfd = mf_mem_fd_ask((uint32_t)getpid(), p[1]);
    assert_true(nfd >= 0 && nfd != p[1]);
    assert_int_equal(write(nfd, "a", 1), 1);
    assert_true(read(p[0], &c, 1) == 1 && c == 'a');
    close(nfd);
    errno = 0;
    assert_int_equal(mf_mem_fd_ask((uint32_t)getpid(), q[1]), -1);
    assert_int_equal(errno, ENOENT);

    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        TK_CHECK(tk_proc_deny_syscall(SYS_pidfd_getfd) == 0);
        nfd = mf_mem_fd_ask((uint32_t)getppid(), p[1]);
        TK_CHECK(nfd >= 0);
        TK_CHECK(write(nfd, "b", 1) == 1);
        close(nfd);
        /* the way peers open segment descriptors finds the service */
        nfd = mf_mem_peer_fd_open((uint32_t)getppid(), p[1], true);
        TK_CHECK(nfd >= 0);
        TK_CHECK(write(nfd, "c", 1) == 1);
        close(nfd);
        tk_proc_exit(0);
    }
    assert_int_equal(tk_proc_wait(pid, 30000), 0);
    assert_true(read(p[0], &c, 1) == 1 && c == 'b');
    assert_true(read(p[0], &c, 1) == 1 && c == 'c');

    mf_mem_fd_withdraw(p[1]);
    errno = 0;
    assert_int_equal(mf_mem_fd_ask((uint32_t)getpid(), p[1]), -1);
    assert_int_equal(errno, ENOENT);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_filled),
        cmocka_unit_test(test_reserve_conflict),
        cmocka_unit_test(test_host_create_import),
        cmocka_unit_test(test_host_import_errors),
        cmocka_unit_test(test_fd_service),
    };

    /* no device kind in this program, whatever the machine has */
    setenv("MF_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", 1);
    return tk_group_run(tests, NULL, NULL);
}
