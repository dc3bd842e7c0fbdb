/*
 * The cuda memory kind: device segments from the CUDA virtual memory API,
 * copies on the driver's copy engines, host memory registered for DMA.
 *
 * A segment is physical device memory (cuMemCreate, exportable as a POSIX
 * fd) mapped at a fixed device address inside a window reserved with
 * cuMemAddressReserve, readable and writable by the chosen device.  The
 * owner exports the fd and keeps it open for the life of the segment; a
 * process of the same host takes a copy of that descriptor (the same open
 * file, which a driver fd must be: pidfd_getfd, else the owner's
 * descriptor service, mem_fdpass.c), imports it and maps the same memory
 * at the same address, so a device GVA is a device pointer in every
 * process of the host; an imported segment is mapped for our device,
 * which reaches another GPU's memory by peer access.  Destroying a
 * segment unmaps it; the window stays reserved.
 *
 * Every driver call runs on the primary context of the kind's device and
 * in relaxed capture mode, between mf_cuda_ctx_enter and _leave: the
 * calling thread's context and capture mode are the application's and are
 * given back as found.
 *
 * Copies run on a stream per thread: a synchronous copy waits for its
 * stream, an asynchronous one completes from a stream callback queued
 * behind it, which also reports a failed copy.  The host never
 * dereferences device memory here.
 */
#include "mem/cuda/cuda_drv.h"
#include "mem/mem.h"

#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

struct mf_mem_reg {
    void *addr;
    bool owned; /* registered by us (not before by the application) */
};

/* Each thread copies on a stream of its own (destroyed when the thread
 * ends): a copy waits for its own work only, never behind another
 * thread's. */
static _Thread_local CUstream mf_cuda_stream_mine;
static pthread_key_t mf_cuda_stream_key;
static pthread_once_t mf_cuda_stream_key_once = PTHREAD_ONCE_INIT;

/* The driver, with our context current in this thread until
 * mf_cuda_leave(drv, save); NULL (logged with what for) when the kind is
 * unusable here. */
static const mf_cuda_drv_t *mf_cuda_enter(const char *what,
                                          mf_cuda_ctx_save_t *save)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv();

    if (drv == NULL) {
        mf_error("cuda: cannot %s: %s", what, mf_cuda_drv_why());
        return NULL;
    }
    if (mf_cuda_ctx_enter(drv, save) != MF_OK) {
        return NULL;
    }
    return drv;
}

static void mf_cuda_stream_drop(void *arg)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv();
    mf_cuda_ctx_save_t save;

    /* work still queued on it completes first, as the driver does it */
    if (drv != NULL && arg != NULL && mf_cuda_ctx_enter(drv, &save) == MF_OK) {
        drv->cuStreamDestroy((CUstream)arg);
        mf_cuda_ctx_leave(drv, &save);
    }
}

static void mf_cuda_stream_key_create(void)
{
    (void)pthread_key_create(&mf_cuda_stream_key, mf_cuda_stream_drop);
}

/* This thread's copy stream (our context is current). */
static mf_status_t mf_cuda_stream(const mf_cuda_drv_t *drv, CUstream *stream_p)
{
    CUstream stream;
    CUresult res;

    if (mf_cuda_stream_mine == NULL) {
        res = drv->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING);
        if (res != CUDA_SUCCESS) {
            mf_error("cuda: cannot create a copy stream: %s",
                     mf_cuda_err(drv, res));
            return mf_cuda_status(res);
        }
        pthread_once(&mf_cuda_stream_key_once, mf_cuda_stream_key_create);
        (void)pthread_setspecific(mf_cuda_stream_key, stream);
        mf_cuda_stream_mine = stream;
    }
    *stream_p = mf_cuda_stream_mine;
    return MF_OK;
}

static mf_status_t mf_cuda_probe(void)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv();

    if (drv == NULL) {
        /* not an error of a host-only process: say it once, quietly */
        mf_info("cuda: device memory unavailable: %s", mf_cuda_drv_why());
        return MF_ERR_UNSUPPORTED;
    }
    return MF_OK;
}

/*
 * Device ranges this thread classified lately: a KV block's pieces lie in
 * one allocation, so one driver call answers for all of them.  Only device
 * answers are kept: an allocation's range stays device address space after
 * it is freed (the driver keeps its reservation), and were it ever host
 * memory again, the kind's copies (unified addressing) would still be
 * right; a host answer kept could turn into a host copy of device memory.
 */
#define MF_CUDA_SEEN 4

static _Thread_local struct {
    uintptr_t start, end;
} mf_cuda_seen[MF_CUDA_SEEN];
static _Thread_local unsigned mf_cuda_seen_next;

static bool mf_cuda_claims(const void *ptr, size_t size)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv();
    CUpointer_attribute attrs[3] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                    CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                                    CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    uintptr_t p = (uintptr_t)ptr;
    unsigned int type = 0;
    CUdeviceptr start = 0;
    size_t range = 0;
    void *data[3] = {&type, &start, &range};
    mf_cuda_ctx_save_t save;
    CUresult res;

    for (unsigned i = 0; i < MF_CUDA_SEEN; i++) {
        if (p >= mf_cuda_seen[i].start && p < mf_cuda_seen[i].end &&
            size <= mf_cuda_seen[i].end - p) {
            return true;
        }
    }
    if (drv == NULL) {
        return false;
    }
    /* unified addressing answers without a context; a driver that wants
     * one gets ours */
    res = drv->cuPointerGetAttributes(3, attrs, data, (CUdeviceptr)p);
    if (res == CUDA_ERROR_INVALID_CONTEXT &&
        mf_cuda_ctx_enter(drv, &save) == MF_OK) {
        res = drv->cuPointerGetAttributes(3, attrs, data, (CUdeviceptr)p);
        mf_cuda_ctx_leave(drv, &save);
    }
    if (res != CUDA_SUCCESS) {
        return false;
    }
    if (type != CU_MEMORYTYPE_DEVICE) {
        return false;
    }
    if (range > 0 && (uintptr_t)start <= p && p - (uintptr_t)start < range) {
        mf_cuda_seen[mf_cuda_seen_next].start = (uintptr_t)start;
        mf_cuda_seen[mf_cuda_seen_next].end = (uintptr_t)start + range;
        mf_cuda_seen_next = (mf_cuda_seen_next + 1) % MF_CUDA_SEEN;
    }
    return true;
}

static uint64_t mf_cuda_seg_align(void)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv();

    return drv != NULL ? drv->granularity : 2ull << 20;
}

static mf_status_t mf_cuda_reserve(uint64_t base, uint64_t len, char *why,
                                   size_t why_len)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv = mf_cuda_enter("reserve a device window", &save);
    char reason[256];
    CUdeviceptr got = 0;
    CUresult res;

    if (drv == NULL) {
        if (why != NULL && why_len > 0) {
            mf_strlcpy(why, mf_cuda_drv_why(), why_len);
        }
        return MF_ERR_UNSUPPORTED;
    }
    if (base == 0 || len == 0 || base % drv->granularity != 0 ||
        len % drv->granularity != 0) {
        snprintf(reason, sizeof(reason),
                 "device window 0x%" PRIx64 "+0x%" PRIx64
                 " is not aligned to the allocation granularity (%zu)",
                 base, len, drv->granularity);
        mf_error("cuda: %s", reason);
        if (why != NULL && why_len > 0) {
            mf_strlcpy(why, reason, why_len);
        }
        mf_cuda_ctx_leave(drv, &save);
        return MF_ERR_INVALID;
    }
    res = drv->cuMemAddressReserve(&got, len, drv->granularity,
                                   (CUdeviceptr)base, 0);
    if (res != CUDA_SUCCESS) {
        snprintf(reason, sizeof(reason),
                 "cuMemAddressReserve(0x%" PRIx64 "+0x%" PRIx64 ") failed: %s",
                 base, len, mf_cuda_err(drv, res));
    } else if ((uint64_t)got != base) {
        /* the address is a hint to the driver: it put the window elsewhere */
        drv->cuMemAddressFree(got, len);
        snprintf(reason, sizeof(reason),
                 "the driver placed the device window 0x%" PRIx64 "+0x%" PRIx64
                 " at 0x%llx instead (part of the range is taken)",
                 base, len, (unsigned long long)got);
        res = CUDA_ERROR_ALREADY_MAPPED;
    }
    mf_cuda_ctx_leave(drv, &save);
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: cannot reserve the device window: %s", reason);
        if (why != NULL && why_len > 0) {
            mf_strlcpy(why, reason, why_len);
        }
        return res == CUDA_ERROR_ALREADY_MAPPED ? MF_ERR_ADDR_IN_USE
                                                : mf_cuda_status(res);
    }
    return MF_OK;
}

static void mf_cuda_unreserve(uint64_t base, uint64_t len)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv = mf_cuda_enter("free a device window", &save);
    CUresult res;

    if (drv == NULL) {
        return;
    }
    res = drv->cuMemAddressFree((CUdeviceptr)base, len);
    if (res != CUDA_SUCCESS) {
        mf_warn("cuda: cuMemAddressFree(0x%" PRIx64 "+0x%" PRIx64 "): %s", base,
                len, mf_cuda_err(drv, res));
    }
    mf_cuda_ctx_leave(drv, &save);
}

/* Maps handle at addr for size bytes, read-write for the device. */
static mf_status_t mf_cuda_map(const mf_cuda_drv_t *drv, void *addr,
                               uint64_t size, CUmemGenericAllocationHandle h)
{
    CUdeviceptr ptr = (CUdeviceptr)(uintptr_t)addr;
    CUmemAccessDesc access;
    CUresult res;

    res = drv->cuMemMap(ptr, size, 0, h, 0);
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: cuMemMap(%p+0x%" PRIx64 ") failed: %s", addr, size,
                 mf_cuda_err(drv, res));
        return mf_cuda_status(res);
    }
    access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access.location.id = drv->device;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    res = drv->cuMemSetAccess(ptr, size, &access, 1);
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: cuMemSetAccess(%p+0x%" PRIx64 ") failed: %s", addr,
                 size, mf_cuda_err(drv, res));
        drv->cuMemUnmap(ptr, size);
        return mf_cuda_status(res);
    }
    return MF_OK;
}

static void mf_cuda_allow_peers_once(void)
{
#ifdef PR_SET_PTRACER
    if (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0) != 0 &&
        errno != EINVAL) {
        mf_debug("cuda: prctl(PR_SET_PTRACER) failed: %m");
    }
#endif
}

/*
 * Peers take the descriptor of our device memory with pidfd_getfd, which
 * needs ptrace access to us; where Yama restricts ptrace to ancestors
 * (ptrace_scope 1, common), that is only granted if we say so, as MPI
 * libraries do for their cross-memory copies.
 */
static void mf_cuda_allow_peers(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, mf_cuda_allow_peers_once);
}

static mf_status_t mf_cuda_seg_new(const mf_cuda_drv_t *drv, void *addr,
                                   uint64_t size, mf_mem_seg_t *seg_p)
{
    CUmemGenericAllocationHandle h;
    CUmemAllocationProp prop;
    mf_status_t status;
    CUresult res;
    int fd = -1;

    if (size == 0 || size % drv->granularity != 0 ||
        (uintptr_t)addr % drv->granularity != 0) {
        mf_error("cuda: device segment %p+0x%" PRIx64
                 " is not aligned to the allocation granularity (%zu)",
                 addr, size, drv->granularity);
        return MF_ERR_INVALID;
    }
    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = drv->device;
    res = drv->cuMemCreate(&h, size, &prop, 0);
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: cannot create 0x%" PRIx64 " bytes on %s: %s", size,
                 drv->name, mf_cuda_err(drv, res));
        return mf_cuda_status(res);
    }
    res = drv->cuMemExportToShareableHandle(
        &fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: cannot export device memory as a descriptor: %s",
                 mf_cuda_err(drv, res));
        status = mf_cuda_status(res);
        goto err_release;
    }
    /* kept open for the segment's life: not for programs we exec */
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    status = mf_cuda_map(drv, addr, size, h);
    if (status != MF_OK) {
        goto err_close_fd;
    }
    mf_cuda_allow_peers();
    if (mf_mem_fd_offer(fd) != MF_OK) {
        mf_info("cuda: peers take device memory by pidfd_getfd only");
    }
    seg_p->kind = MF_MEM_KIND_CUDA;
    seg_p->addr = addr;
    seg_p->size = size;
    seg_p->fd = fd;
    seg_p->handle = (uint64_t)h;
    seg_p->imported = false;
    return MF_OK;

err_close_fd:
    close(fd);
err_release:
    drv->cuMemRelease(h);
    return status;
}

static mf_status_t mf_cuda_seg_create(void *addr, uint64_t size, unsigned flags,
                                      mf_mem_seg_t *seg_p)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv = mf_cuda_enter("create device memory", &save);
    mf_status_t status;

    if (drv == NULL) {
        return MF_ERR_UNSUPPORTED;
    }
    status = mf_cuda_seg_new(drv, addr, size, seg_p);
    mf_cuda_ctx_leave(drv, &save);
    return status;
}

static void mf_cuda_seg_destroy(mf_mem_seg_t *seg)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv;
    CUresult res;

    if (seg->addr == NULL) {
        return;
    }
    if (seg->fd >= 0) {
        mf_mem_fd_withdraw(seg->fd); /* before its number can be reused */
    }
    drv = mf_cuda_enter("free device memory", &save);
    if (drv == NULL) {
        return;
    }
    res = drv->cuMemUnmap((CUdeviceptr)(uintptr_t)seg->addr, seg->size);
    if (res != CUDA_SUCCESS) {
        mf_warn("cuda: cuMemUnmap(%p+0x%" PRIx64 "): %s", seg->addr, seg->size,
                mf_cuda_err(drv, res));
    }
    drv->cuMemRelease((CUmemGenericAllocationHandle)seg->handle);
    mf_cuda_ctx_leave(drv, &save);
    if (seg->fd >= 0) {
        close(seg->fd);
    }
    seg->addr = NULL;
    seg->fd = -1;
}

static mf_status_t mf_cuda_seg_export(const mf_mem_seg_t *seg,
                                      mf_mem_desc_t *desc_p)
{
    if (seg->imported || seg->fd < 0) {
        return MF_ERR_INVALID;
    }
    desc_p->kind = MF_MEM_KIND_CUDA;
    desc_p->pid = (uint32_t)getpid();
    desc_p->fd = seg->fd;
    desc_p->size = seg->size;
    return MF_OK;
}

static mf_status_t mf_cuda_seg_take(const mf_cuda_drv_t *drv,
                                    const mf_mem_desc_t *desc, void *addr,
                                    mf_mem_seg_t *seg_p)
{
    CUmemGenericAllocationHandle h;
    mf_status_t status;
    CUresult res;
    int fd;

    if (desc->kind != MF_MEM_KIND_CUDA || desc->size == 0 ||
        desc->size % drv->granularity != 0 || desc->fd < 0 || desc->pid == 0 ||
        (uintptr_t)addr % drv->granularity != 0) {
        mf_error("cuda: bad device segment descriptor (pid %u fd %d size "
                 "0x%" PRIx64 ")",
                 desc->pid, desc->fd, desc->size);
        return MF_ERR_INVALID;
    }
    fd = mf_mem_peer_fd_open(desc->pid, desc->fd, true);
    if (fd < 0) {
        mf_warn("cuda: cannot take device memory fd %d of process %u: %m",
                desc->fd, desc->pid);
        return (errno == ENOENT || errno == ESRCH) ? MF_ERR_PEER_LOST
                                                   : MF_ERR_IO;
    }
    res = drv->cuMemImportFromShareableHandle(
        &h, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
    close(fd); /* the handle keeps the memory */
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: cannot import device memory of process %u: %s",
                 desc->pid, mf_cuda_err(drv, res));
        return mf_cuda_status(res);
    }
    status = mf_cuda_map(drv, addr, desc->size, h);
    if (status != MF_OK) {
        /* the memory may live on another GPU than ours */
        mf_error("cuda: cannot map device memory of process %u for %s: can "
                 "it reach the owner's device (peer access)?",
                 desc->pid, drv->name);
        drv->cuMemRelease(h);
        return status;
    }
    seg_p->kind = MF_MEM_KIND_CUDA;
    seg_p->addr = addr;
    seg_p->size = desc->size;
    seg_p->fd = -1;
    seg_p->handle = (uint64_t)h;
    seg_p->imported = true;
    return MF_OK;
}

static mf_status_t mf_cuda_seg_import(const mf_mem_desc_t *desc, void *addr,
                                      unsigned flags, mf_mem_seg_t *seg_p)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv = mf_cuda_enter("import device memory", &save);
    mf_status_t status;

    if (drv == NULL) {
        return MF_ERR_UNSUPPORTED;
    }
    status = mf_cuda_seg_take(drv, desc, addr, seg_p);
    mf_cuda_ctx_leave(drv, &save);
    return status;
}

/* Issues a copy on this thread's stream (our context is current):
 * *stream_p the stream it waits on, NULL when there was nothing to copy. */
static mf_status_t mf_cuda_issue(const mf_cuda_drv_t *drv, void *dst,
                                 const void *src, size_t size,
                                 CUstream *stream_p)
{
    mf_status_t status;
    CUresult res;

    *stream_p = NULL;
    if (size == 0) {
        return MF_OK;
    }
    status = mf_cuda_stream(drv, stream_p);
    if (status != MF_OK) {
        *stream_p = NULL;
        return status;
    }
    res = drv->cuMemcpyAsync((CUdeviceptr)(uintptr_t)dst,
                             (CUdeviceptr)(uintptr_t)src, size, *stream_p);
    if (res != CUDA_SUCCESS) {
        mf_error("cuda: copy of %zu bytes %p -> %p refused: %s", size, src, dst,
                 mf_cuda_err(drv, res));
        *stream_p = NULL;
        return mf_cuda_status(res);
    }
    return MF_OK;
}

static mf_status_t mf_cuda_copy(void *dst, const void *src, size_t size)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv = mf_cuda_enter("copy device memory", &save);
    mf_status_t status;
    CUstream stream;
    CUresult res;

    if (drv == NULL) {
        return MF_ERR_UNSUPPORTED;
    }
    status = mf_cuda_issue(drv, dst, src, size, &stream);
    if (status == MF_OK && stream != NULL) {
        res = drv->cuStreamSynchronize(stream);
        if (res != CUDA_SUCCESS) {
            mf_error("cuda: copy of %zu bytes %p -> %p failed: %s", size, src,
                     dst, mf_cuda_err(drv, res));
            status = mf_cuda_status(res);
        }
    }
    mf_cuda_ctx_leave(drv, &save);
    return status;
}

/* Runs on a driver thread once the copy ended, with its result (also
 * after an error of the context); calls no CUDA function. */
static void CUDA_CB mf_cuda_copy_done(CUstream stream, CUresult res, void *arg)
{
    mf_mem_comp_t *comp = arg;

    comp->cb(comp, res == CUDA_SUCCESS ? MF_OK : mf_cuda_status(res));
}

static mf_status_t mf_cuda_copy_async(void *dst, const void *src, size_t size,
                                      mf_mem_comp_t *comp)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv = mf_cuda_enter("copy device memory", &save);
    mf_status_t status;
    CUstream stream;
    CUresult res;

    if (drv == NULL) {
        return MF_ERR_UNSUPPORTED;
    }
    status = mf_cuda_issue(drv, dst, src, size, &stream);
    if (status == MF_OK && stream != NULL) {
        status = MF_INPROGRESS;
        res = drv->cuStreamAddCallback(stream, mf_cuda_copy_done, comp, 0);
        if (res != CUDA_SUCCESS) {
            /* the copy is queued: wait for it rather than lose track */
            mf_warn("cuda: cannot queue a completion (%s); waiting for the "
                    "copy",
                    mf_cuda_err(drv, res));
            res = drv->cuStreamSynchronize(stream);
            status = res == CUDA_SUCCESS ? MF_OK : mf_cuda_status(res);
        }
    }
    mf_cuda_ctx_leave(drv, &save);
    return status;
}

static mf_status_t mf_cuda_dma_reg(void *addr, size_t size,
                                   mf_mem_reg_t **reg_p)
{
    mf_cuda_ctx_save_t save;
    const mf_cuda_drv_t *drv;
    mf_mem_reg_t *reg;
    CUresult res;

    reg = calloc(1, sizeof(*reg));
    if (reg == NULL) {
        return MF_ERR_NOMEM;
    }
    drv = mf_cuda_enter("register host memory", &save);
    if (drv == NULL) {
        free(reg);
        return MF_ERR_UNSUPPORTED;
    }
    reg->addr = addr;
    res = drv->cuMemHostRegister(addr, size, CU_MEMHOSTREGISTER_PORTABLE);
    mf_cuda_ctx_leave(drv, &save);
    if (res == CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED) {
        reg->owned = false; /* the application pinned it: leave it so */
    } else if (res != CUDA_SUCCESS) {
        mf_error("cuda: cannot register %p+%zu for DMA: %s", addr, size,
                 mf_cuda_err(drv, res));
        free(reg);
        return mf_cuda_status(res);
    } else {
        reg->owned = true;
    }
    *reg_p = reg;
    return MF_OK;
}

static void mf_cuda_dma_dereg(mf_mem_reg_t *reg)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv();
    mf_cuda_ctx_save_t save;
    CUresult res;

    if (reg == NULL) {
        return;
    }
    if (reg->owned && drv != NULL && mf_cuda_ctx_enter(drv, &save) == MF_OK) {
        res = drv->cuMemHostUnregister(reg->addr);
        if (res != CUDA_SUCCESS) {
            mf_warn("cuda: cuMemHostUnregister(%p): %s", reg->addr,
                    mf_cuda_err(drv, res));
        }
        mf_cuda_ctx_leave(drv, &save);
    }
    free(reg);
}

const mf_mem_ops_t mf_mem_cuda_ops = {
    .name = "cuda",
    .kind = MF_MEM_KIND_CUDA,
    .probe = mf_cuda_probe,
    .claims = mf_cuda_claims,
    .seg_align = mf_cuda_seg_align,
    .reserve = mf_cuda_reserve,
    .unreserve = mf_cuda_unreserve,
    .seg_create = mf_cuda_seg_create,
    .seg_destroy = mf_cuda_seg_destroy,
    .seg_export = mf_cuda_seg_export,
    .seg_import = mf_cuda_seg_import,
    .copy = mf_cuda_copy,
    .copy_async = mf_cuda_copy_async,
    .dma_reg = mf_cuda_dma_reg,
    .dma_dereg = mf_cuda_dma_dereg,
};
