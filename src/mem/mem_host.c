/*
 * Host memory kind: segments are memfd files mapped MAP_SHARED at a fixed
 * address inside a PROT_NONE reservation.
 *
 * The owner keeps the memfd open for the life of the segment, so a process
 * of the same host (same user) can open it as /proc/<pid>/fd/<fd> (or take
 * it with pidfd_getfd) and map the same pages at the same address.  Pages
 * are faulted in once at create/import (MADV_POPULATE_WRITE, or touching
 * each page when the kernel lacks it): fresh pages are slow on virtual
 * machines and must never be faulted on the data path.  Destroy puts the
 * PROT_NONE reservation back over the range.
 */
#include "mem/mem.h"

#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

static int mf_mem_host_memfd(const char *name)
{
#ifdef SYS_memfd_create
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* Faults every page of [addr, addr + size) in, once. */
static void mf_mem_host_prefault(void *addr, uint64_t size, bool written)
{
    volatile char *p = addr;
    size_t page = mf_page_size();
    uint64_t off;

    if (madvise(addr, size, MADV_POPULATE_WRITE) == 0) {
        return;
    }
    mf_debug("madvise(MADV_POPULATE_WRITE) failed: %m; touching pages");
    for (off = 0; off < size; off += page) {
        if (written) {
            p[off] = p[off];
        } else {
            p[off] = 0; /* a fresh memfd reads as zeroes */
        }
    }
}

static mf_status_t mf_mem_host_map(int fd, void *addr, uint64_t size,
                                   unsigned flags, bool written)
{
    void *p;

    p = mmap(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p != addr) {
        mf_error("mmap(%p, 0x%" PRIx64 ", MAP_SHARED|MAP_FIXED) failed: %m",
                 addr, size);
        /* A failed MAP_FIXED may have unmapped the range: no hole. */
        (void)mf_mem_restore_reservation(addr, size);
        return MF_ERR_NOMEM;
    }
    if ((flags & MF_MEM_SEG_HUGEPAGE) &&
        madvise(addr, size, MADV_HUGEPAGE) != 0) {
        mf_debug("madvise(%p, MADV_HUGEPAGE) failed: %m", addr);
    }
    if (flags & MF_MEM_SEG_PREFAULT) {
        mf_mem_host_prefault(addr, size, written);
    }
    return MF_OK;
}

static mf_status_t mf_mem_host_seg_create(void *addr, uint64_t size,
                                          unsigned flags, mf_mem_seg_t *seg_p)
{
    mf_status_t status;
    int fd;

    if (addr == NULL || size == 0 || size % mf_page_size() != 0 ||
        (uintptr_t)addr % mf_page_size() != 0) {
        mf_error("bad host segment %p+0x%" PRIx64, addr, size);
        return MF_ERR_INVALID;
    }
    fd = mf_mem_host_memfd("mf-seg");
    if (fd < 0) {
        mf_error("memfd_create() failed: %m");
        status = MF_ERR_IO;
        goto err;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        mf_error("ftruncate(memfd, 0x%" PRIx64 ") failed: %m", size);
        status = MF_ERR_NOMEM;
        goto err_close_fd;
    }
    status = mf_mem_host_map(fd, addr, size, flags, false);
    if (status != MF_OK) {
        goto err_close_fd;
    }

    seg_p->kind = MF_MEM_KIND_HOST;
    seg_p->addr = addr;
    seg_p->size = size;
    seg_p->fd = fd;
    seg_p->handle = 0;
    seg_p->imported = false;
    return MF_OK;

err_close_fd:
    close(fd);
err:
    return status;
}

static void mf_mem_host_seg_destroy(mf_mem_seg_t *seg)
{
    if (seg->addr != NULL) {
        (void)mf_mem_restore_reservation(seg->addr, seg->size);
        seg->addr = NULL;
    }
    if (seg->fd >= 0) {
        close(seg->fd);
        seg->fd = -1;
    }
}

static mf_status_t mf_mem_host_seg_export(const mf_mem_seg_t *seg,
                                          mf_mem_desc_t *desc_p)
{
    if (seg->imported || seg->fd < 0) {
        return MF_ERR_INVALID;
    }
    desc_p->kind = MF_MEM_KIND_HOST;
    desc_p->pid = (uint32_t)getpid();
    desc_p->fd = seg->fd;
    desc_p->size = seg->size;
    return MF_OK;
}

static mf_status_t mf_mem_host_seg_import(const mf_mem_desc_t *desc, void *addr,
                                          unsigned flags, mf_mem_seg_t *seg_p)
{
    mf_status_t status;
    struct stat st;
    int fd;

    if (desc->kind != MF_MEM_KIND_HOST || desc->size == 0 ||
        desc->size % mf_page_size() != 0 || desc->fd < 0 || desc->pid == 0 ||
        (uintptr_t)addr % mf_page_size() != 0) {
        mf_error("bad host segment descriptor (pid %u fd %d size 0x%" PRIx64
                 ")",
                 desc->pid, desc->fd, desc->size);
        return MF_ERR_INVALID;
    }
    fd = mf_mem_peer_fd_open(desc->pid, desc->fd, false);
    if (fd < 0) {
        /* The usual reason: the peer exited. */
        mf_warn("cannot open segment fd %d of process %u: %m", desc->fd,
                desc->pid);
        status =
            (errno == ENOENT || errno == ESRCH) ? MF_ERR_PEER_LOST : MF_ERR_IO;
        goto err;
    }
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < desc->size) {
        mf_error("segment fd %d of process %u is smaller than 0x%" PRIx64,
                 desc->fd, desc->pid, desc->size);
        status = MF_ERR_INVALID;
        goto err_close_fd;
    }
    status = mf_mem_host_map(fd, addr, desc->size, flags, true);
    if (status != MF_OK) {
        goto err_close_fd;
    }
    close(fd); /* the mapping keeps the memory */

    seg_p->kind = MF_MEM_KIND_HOST;
    seg_p->addr = addr;
    seg_p->size = desc->size;
    seg_p->fd = -1;
    seg_p->handle = 0;
    seg_p->imported = true;
    return MF_OK;

err_close_fd:
    close(fd);
err:
    return status;
}

static mf_status_t mf_mem_host_copy(void *dst, const void *src, size_t size)
{
    memcpy(dst, src, size);
    return MF_OK;
}

static mf_status_t mf_mem_host_probe(void)
{
    return MF_OK;
}

static bool mf_mem_host_claims(const void *ptr, size_t size)
{
    return true;
}

static mf_status_t mf_mem_host_copy_async(void *dst, const void *src,
                                          size_t size, mf_mem_comp_t *comp)
{
    memcpy(dst, src, size);
    return MF_OK;
}

/* Host memory needs no registration for the CPU's copies. */
static mf_status_t mf_mem_host_dma_reg(void *addr, size_t size,
                                       mf_mem_reg_t **reg_p)
{
    *reg_p = NULL;
    return MF_OK;
}

static void mf_mem_host_dma_dereg(mf_mem_reg_t *reg)
{
}

static uint64_t mf_mem_host_seg_align(void)
{
    return mf_page_size();
}

const mf_mem_ops_t mf_mem_host_ops = {
    .name = "host",
    .kind = MF_MEM_KIND_HOST,
    .probe = mf_mem_host_probe,
    .claims = mf_mem_host_claims,
    .seg_align = mf_mem_host_seg_align,
    .reserve = mf_mem_reserve,
    .unreserve = mf_mem_unreserve,
    .seg_create = mf_mem_host_seg_create,
    .seg_destroy = mf_mem_host_seg_destroy,
    .seg_export = mf_mem_host_seg_export,
    .seg_import = mf_mem_host_seg_import,
    .copy = mf_mem_host_copy,
    .copy_async = mf_mem_host_copy_async,
    .dma_reg = mf_mem_host_dma_reg,
    .dma_dereg = mf_mem_host_dma_dereg,
};
