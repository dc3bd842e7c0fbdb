/*
 * A fake CUDA driver (libcuda.so.1) for machines without a GPU: the driver
 * calls the cuda memory kind uses, with the types of the real cuda.h, so
 * the kind and every device path above it run in CI.  Loaded through
 * MF_CUDA_LIBRARY.
 *
 * Faithful where a bug of ours would hide:
 *  - Device memory is a memfd mapped PROT_NONE at its device address: a
 *    host load or store of device memory crashes, as on a GPU.  The fake's
 *    copy engine reaches the bytes through a private read-write alias.
 *  - Copies on a stream run later on the stream's own thread, after a
 *    delay (FAKECUDA_DELAY_US, default 200), so a missing synchronisation
 *    shows up as wrong bytes; host functions and stream callbacks run
 *    there too, in order.
 *  - Memory calls need cuInit and a current context in the calling thread
 *    (CUDA_ERROR_NOT_INITIALIZED, CUDA_ERROR_INVALID_CONTEXT); a stream
 *    belongs to the context current at its creation, and work queued on
 *    it from another context is refused (CUDA_ERROR_INVALID_CONTEXT).
 *  - Stream capture: while a stream captures in global mode
 *    (cuStreamBeginCapture), calls that may synchronise
 *    (cuStreamSynchronize, cuMemCreate, cuMemHostRegister, ...) fail with
 *    CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED in every thread whose capture
 *    mode is not relaxed (cuThreadExchangeStreamCaptureMode).
 *  - Virtual memory: cuMemAddressReserve treats the address as a hint;
 *    cuMemMap needs a reservation; a mapping is unreachable until
 *    cuMemSetAccess; cuMemExportToShareableHandle gives a descriptor of the
 *    memory (a memfd) that another process imports.  As with the driver's
 *    descriptors, only the exported open file imports (it carries
 *    O_APPEND as its mark): a new open of /proc/<pid>/fd/<fd> is refused.
 *    Granularity 2 MiB.
 *  - cuPointerGetAttributes answers for any pointer (unknown: zeros).
 *
 * Fault injection by environment, read at each call:
 *   FAKECUDA_DEVICES=n       devices (default 1; 0: cuInit fails, no device)
 *   FAKECUDA_FAIL_CREATE=n   the n-th cuMemCreate/cuMemAlloc of the process
 *                            fails with CUDA_ERROR_OUT_OF_MEMORY
 *   FAKECUDA_FAIL_COPY=n     the n-th copy of the process fails at issue
 *                            with CUDA_ERROR_ILLEGAL_ADDRESS
 *   FAKECUDA_FAIL_COPY_ADDR=a  every copy whose source or destination
 *                            covers address a (hex) fails so
 *   FAKECUDA_RESERVE_MISS=1  cuMemAddressReserve ignores the address hint
 *
 * Process-wide state is guarded by fc_lock; each stream has its own lock.
 */
#include <cuda.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define FC_EXPORT   __attribute__((visibility("default")))
#define FC_GRAN     (2ull << 20)
#define FC_MAX_DEVS 8
#define FC_PAGE     4096ull

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Physical memory of cuMemCreate / cuMemImportFromShareableHandle. */
typedef struct fc_handle {
    int fd;
    size_t size;
    bool exportable;
    int refs; /* the handle itself, and each mapping of it */
} fc_handle_t;

/* An address range; the first member of every item the tables hold. */
typedef struct fc_span {
    uintptr_t addr;
    size_t size;
} fc_span_t;

/* A device range: a view of a handle (VMM) or a cuMemAlloc block. */
typedef struct fc_map {
    fc_span_t span;
    char *alias; /* read-write view of the same bytes */
    fc_handle_t *handle;
    bool alloc;  /* from cuMemAlloc: owns handle */
    bool access; /* cuMemSetAccess granted it */
    int device;
} fc_map_t;

typedef struct fc_range {
    fc_span_t span;
    bool pinned; /* from cuMemAllocHost */
} fc_range_t;

typedef struct fc_array {
    void *items;
    size_t n, cap, item;
} fc_array_t;

struct CUctx_st {
    int device;
};

enum { FC_OP_COPY, FC_OP_HOST_FN, FC_OP_CALLBACK };

typedef struct fc_op {
    struct fc_op *next;
    int type;
    void *dst;
    const void *src;
    size_t size;
    CUhostFn fn;
    CUstreamCallback cb;
    CUstream stream;
    void *data;
} fc_op_t;

struct CUstream_st {
    CUcontext ctx; /* current at creation; NULL: the null stream, any */
    bool capturing;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    fc_op_t *head, *tail;
    unsigned pending; /* queued or running */
    bool stop;
    pthread_t thread;
};

static pthread_mutex_t fc_lock = PTHREAD_MUTEX_INITIALIZER;
static bool fc_inited;
static int fc_ndevs;
static struct CUctx_st fc_ctx[FC_MAX_DEVS];
static fc_array_t fc_maps = {.item = sizeof(fc_map_t)};
static fc_array_t fc_reserves = {.item = sizeof(fc_range_t)};
static fc_array_t fc_hosts = {.item = sizeof(fc_range_t)};
static struct CUstream_st *fc_null_stream;
static atomic_uint fc_creates, fc_copies;
static _Thread_local CUcontext fc_current;
static _Thread_local CUstreamCaptureMode fc_capture_mode =
    CU_STREAM_CAPTURE_MODE_GLOBAL;
static atomic_int fc_captures; /* streams capturing in global mode */

/* ---- helpers ---- */

static long fc_env(const char *name, long dflt)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? strtol(v, NULL, 0) : dflt;
}

static void *fc_array_add(fc_array_t *a)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void *items = realloc(a->items, cap * a->item);

        if (items == NULL) {
            return NULL;
        }
        a->items = items;
        a->cap = cap;
    }
    return (char *)a->items + a->item * a->n++;
}

static void *fc_array_at(fc_array_t *a, size_t i)
{
    return (char *)a->items + a->item * i;
}

static void fc_array_del(fc_array_t *a, size_t i)
{
    memmove(fc_array_at(a, i), fc_array_at(a, i + 1), (a->n - i - 1) * a->item);
    a->n--;
}

static bool fc_overlaps(uintptr_t a, size_t alen, uintptr_t b, size_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Index of the range of a that overlaps [p, p + len), or -1. */
static ssize_t fc_find(fc_array_t *a, uintptr_t p, size_t len)
{
    for (size_t i = 0; i < a->n; i++) {
        const fc_span_t *s = fc_array_at(a, i);

        if (fc_overlaps(p, len ? len : 1, s->addr, s->size)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

static CUresult fc_ready(bool need_ctx)
{
    if (!fc_inited) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if (need_ctx && fc_current == NULL) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    return CUDA_SUCCESS;
}

/* Whether a call that may synchronise is legal in this thread now. */
static CUresult fc_capture_ok(void)
{
    return atomic_load(&fc_captures) > 0 &&
                   fc_capture_mode != CU_STREAM_CAPTURE_MODE_RELAXED
               ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
               : CUDA_SUCCESS;
}

static void fc_handle_put_locked(fc_handle_t *h)
{
    if (--h->refs == 0) {
        close(h->fd);
        free(h);
    }
}

/* ---- init, devices, contexts ---- */

FC_EXPORT CUresult CUDAAPI cuInit(unsigned int flags)
{
    if (flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&fc_lock);
    fc_ndevs = (int)fc_env("FAKECUDA_DEVICES", 1);
    if (fc_ndevs > FC_MAX_DEVS) {
        fc_ndevs = FC_MAX_DEVS;
    }
    for (int i = 0; i < fc_ndevs; i++) {
        fc_ctx[i].device = i;
    }
    fc_inited = fc_ndevs > 0;
    pthread_mutex_unlock(&fc_lock);
    return fc_inited ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}

FC_EXPORT CUresult CUDAAPI cuDriverGetVersion(int *version)
{
    *version = CUDA_VERSION;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuDeviceGetCount(int *count)
{
    CUresult res = fc_ready(false);

    if (res == CUDA_SUCCESS) {
        *count = fc_ndevs;
    }
    return res;
}

FC_EXPORT CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
    CUresult res = fc_ready(false);

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (ordinal < 0 || ordinal >= fc_ndevs) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    *device = ordinal;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev)
{
    if (fc_ready(false) != CUDA_SUCCESS || dev < 0 || dev >= fc_ndevs) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    snprintf(name, (size_t)len, "Fake CUDA device %d", dev);
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuDeviceTotalMem(size_t *bytes, CUdevice dev)
{
    if (fc_ready(false) != CUDA_SUCCESS || dev < 0 || dev >= fc_ndevs) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    *bytes = 80ull << 30;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx,
                                                    CUdevice dev)
{
    CUresult res = fc_ready(false);

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (dev < 0 || dev >= fc_ndevs) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    *pctx = &fc_ctx[dev];
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev)
{
    return dev >= 0 && dev < fc_ndevs ? CUDA_SUCCESS
                                      : CUDA_ERROR_INVALID_DEVICE;
}

FC_EXPORT CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
    fc_current = ctx;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuCtxGetCurrent(CUcontext *pctx)
{
    *pctx = fc_current;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuCtxGetDevice(CUdevice *device)
{
    CUresult res = fc_ready(true);

    if (res == CUDA_SUCCESS) {
        *device = fc_current->device;
    }
    return res;
}

FC_EXPORT CUresult CUDAAPI cuGetErrorName(CUresult error, const char **str)
{
    switch (error) {
#define FC_NAME(_e)                                                            \
    case _e:                                                                   \
        *str = #_e;                                                            \
        return CUDA_SUCCESS;
        FC_NAME(CUDA_SUCCESS)
        FC_NAME(CUDA_ERROR_INVALID_VALUE)
        FC_NAME(CUDA_ERROR_OUT_OF_MEMORY)
        FC_NAME(CUDA_ERROR_NOT_INITIALIZED)
        FC_NAME(CUDA_ERROR_NO_DEVICE)
        FC_NAME(CUDA_ERROR_INVALID_DEVICE)
        FC_NAME(CUDA_ERROR_INVALID_CONTEXT)
        FC_NAME(CUDA_ERROR_ILLEGAL_ADDRESS)
        FC_NAME(CUDA_ERROR_NOT_PERMITTED)
        FC_NAME(CUDA_ERROR_NOT_SUPPORTED)
        FC_NAME(CUDA_ERROR_INVALID_HANDLE)
        FC_NAME(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED)
        FC_NAME(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED)
        FC_NAME(CUDA_ERROR_OPERATING_SYSTEM)
        FC_NAME(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)
        FC_NAME(CUDA_ERROR_ILLEGAL_STATE)
#undef FC_NAME
    default:
        *str = NULL;
        return CUDA_ERROR_INVALID_VALUE;
    }
}

FC_EXPORT CUresult CUDAAPI cuGetErrorString(CUresult error, const char **str)
{
    return cuGetErrorName(error, str);
}

/* ---- virtual memory ---- */

static bool fc_prop_ok(const CUmemAllocationProp *prop)
{
    return prop != NULL && prop->type == CU_MEM_ALLOCATION_TYPE_PINNED &&
           prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE &&
           prop->location.id >= 0 && prop->location.id < fc_ndevs;
}

FC_EXPORT CUresult CUDAAPI cuMemGetAllocationGranularity(
    size_t *granularity, const CUmemAllocationProp *prop,
    CUmemAllocationGranularity_flags option)
{
    CUresult res = fc_ready(false);

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (!fc_prop_ok(prop)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *granularity = FC_GRAN;
    return CUDA_SUCCESS;
}

static bool fc_fail_now(atomic_uint *counter, const char *env)
{
    long n = fc_env(env, 0);

    return atomic_fetch_add(counter, 1) + 1 == (unsigned long)n && n > 0;
}

static bool fc_fail_addr(CUdeviceptr p, size_t size)
{
    const char *v = getenv("FAKECUDA_FAIL_COPY_ADDR");
    uintptr_t addr;

    if (v == NULL || *v == '\0') {
        return false;
    }
    addr = (uintptr_t)strtoull(v, NULL, 16);
    return addr >= (uintptr_t)p && addr - (uintptr_t)p < size;
}

static CUresult fc_handle_new(size_t size, bool exportable, fc_handle_t **hp)
{
    fc_handle_t *h;

    if (fc_fail_now(&fc_creates, "FAKECUDA_FAIL_CREATE")) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    h->fd = memfd_create("fakecuda", MFD_CLOEXEC);
    if (h->fd < 0 || ftruncate(h->fd, (off_t)size) != 0) {
        if (h->fd >= 0) {
            close(h->fd);
        }
        free(h);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    h->size = size;
    h->exportable = exportable;
    h->refs = 1;
    *hp = h;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle,
                                       size_t size,
                                       const CUmemAllocationProp *prop,
                                       unsigned long long flags)
{
    CUresult res = fc_ready(false);
    fc_handle_t *h;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (!fc_prop_ok(prop) || size == 0 || size % FC_GRAN != 0 || flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (fc_capture_ok() != CUDA_SUCCESS) {
        return fc_capture_ok();
    }
    res = fc_handle_new(size,
                        prop->requestedHandleTypes &
                            CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                        &h);
    if (res == CUDA_SUCCESS) {
        *handle = (CUmemGenericAllocationHandle)(uintptr_t)h;
    }
    return res;
}

FC_EXPORT CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle)
{
    if (handle == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&fc_lock);
    fc_handle_put_locked((fc_handle_t *)(uintptr_t)handle);
    pthread_mutex_unlock(&fc_lock);
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuMemAddressReserve(CUdeviceptr *ptr, size_t size,
                                               size_t alignment,
                                               CUdeviceptr addr,
                                               unsigned long long flags)
{
    CUresult res = fc_ready(false);
    fc_range_t *r;
    void *p = MAP_FAILED;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (size == 0 || size % FC_GRAN != 0 || flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (addr != 0 && !fc_env("FAKECUDA_RESERVE_MISS", 0)) {
        p = mmap((void *)(uintptr_t)addr, size, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                     MAP_FIXED_NOREPLACE,
                 -1, 0);
        if (p != MAP_FAILED && p != (void *)(uintptr_t)addr) {
            munmap(p, size); /* a kernel without MAP_FIXED_NOREPLACE */
            p = MAP_FAILED;
        }
    }
    if (p == MAP_FAILED) {
        /* the hint is only a hint: anywhere else */
        p = mmap(NULL, size, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    pthread_mutex_lock(&fc_lock);
    r = fc_array_add(&fc_reserves);
    if (r == NULL) {
        pthread_mutex_unlock(&fc_lock);
        munmap(p, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    r->span.addr = (uintptr_t)p;
    r->span.size = size;
    r->pinned = false;
    pthread_mutex_unlock(&fc_lock);
    *ptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    ssize_t i;
    fc_range_t *r;

    pthread_mutex_lock(&fc_lock);
    i = fc_find(&fc_reserves, (uintptr_t)ptr, size);
    r = i >= 0 ? fc_array_at(&fc_reserves, (size_t)i) : NULL;
    if (r == NULL || r->span.addr != ptr || r->span.size != size ||
        fc_find(&fc_maps, (uintptr_t)ptr, size) >= 0) {
        pthread_mutex_unlock(&fc_lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    fc_array_del(&fc_reserves, (size_t)i);
    pthread_mutex_unlock(&fc_lock);
    munmap((void *)(uintptr_t)ptr, size);
    return CUDA_SUCCESS;
}

/* Maps [addr, +size) of h at offset: PROT_NONE at addr, and the alias. */
static CUresult fc_map_locked(uintptr_t addr, size_t size, size_t offset,
                              fc_handle_t *h, bool alloc, int flags)
{
    fc_map_t *m;
    void *p, *alias;

    p = mmap((void *)addr, size, PROT_NONE, MAP_SHARED | flags, h->fd,
             (off_t)offset);
    if (p == MAP_FAILED) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    alias = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, h->fd,
                 (off_t)offset);
    m = alias != MAP_FAILED ? fc_array_add(&fc_maps) : NULL;
    if (m == NULL) {
        if (alias != MAP_FAILED) {
            munmap(alias, size);
        }
        if (alloc) {
            munmap(p, size);
        } else {
            mmap(p, size, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
                 0);
        }
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    m->span.addr = (uintptr_t)p;
    m->span.size = size;
    m->alias = alias;
    m->handle = h;
    m->alloc = alloc;
    m->access = alloc;
    m->device = fc_current != NULL ? fc_current->device : 0;
    h->refs++;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                                    CUmemGenericAllocationHandle handle,
                                    unsigned long long flags)
{
    fc_handle_t *h = (fc_handle_t *)(uintptr_t)handle;
    CUresult res = fc_ready(false);
    ssize_t i;
    fc_range_t *r;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (h == NULL || size == 0 || size % FC_GRAN != 0 || ptr % FC_GRAN != 0 ||
        offset % FC_GRAN != 0 || offset + size > h->size || flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&fc_lock);
    i = fc_find(&fc_reserves, (uintptr_t)ptr, size);
    r = i >= 0 ? fc_array_at(&fc_reserves, (size_t)i) : NULL;
    if (r == NULL || ptr < r->span.addr ||
        ptr + size > r->span.addr + r->span.size ||
        fc_find(&fc_maps, (uintptr_t)ptr, size) >= 0) {
        res = CUDA_ERROR_INVALID_VALUE;
    } else {
        res = fc_map_locked((uintptr_t)ptr, size, offset, h, false, MAP_FIXED);
    }
    pthread_mutex_unlock(&fc_lock);
    return res;
}

FC_EXPORT CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    CUresult res = CUDA_SUCCESS;
    ssize_t i;

    pthread_mutex_lock(&fc_lock);
    while ((i = fc_find(&fc_maps, (uintptr_t)ptr, size)) >= 0) {
        fc_map_t m = *(fc_map_t *)fc_array_at(&fc_maps, (size_t)i);

        if (m.alloc || m.span.addr < ptr ||
            m.span.addr + m.span.size > ptr + size) {
            res = CUDA_ERROR_INVALID_VALUE; /* only whole mappings */
            break;
        }
        fc_array_del(&fc_maps, (size_t)i);
        munmap(m.alias, m.span.size);
        mmap((void *)m.span.addr, m.span.size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        fc_handle_put_locked(m.handle);
    }
    pthread_mutex_unlock(&fc_lock);
    return res;
}

FC_EXPORT CUresult CUDAAPI cuMemSetAccess(CUdeviceptr ptr, size_t size,
                                          const CUmemAccessDesc *desc,
                                          size_t count)
{
    bool rw = false;
    size_t n = 0;

    if (desc == NULL || count == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (size_t i = 0; i < count; i++) {
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
            desc[i].location.id < 0 || desc[i].location.id >= fc_ndevs) {
            return CUDA_ERROR_INVALID_DEVICE;
        }
        rw |= desc[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    }
    pthread_mutex_lock(&fc_lock);
    for (size_t i = 0; i < fc_maps.n; i++) {
        fc_map_t *m = fc_array_at(&fc_maps, i);

        if (!m->alloc && fc_overlaps(ptr, size, m->span.addr, m->span.size)) {
            m->access = rw;
            n++;
        }
    }
    pthread_mutex_unlock(&fc_lock);
    return n > 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

FC_EXPORT CUresult CUDAAPI cuMemExportToShareableHandle(
    void *shareable, CUmemGenericAllocationHandle handle,
    CUmemAllocationHandleType type, unsigned long long flags)
{
    fc_handle_t *h = (fc_handle_t *)(uintptr_t)handle;
    int fd;

    if (h == NULL || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR ||
        flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!h->exportable) {
        return CUDA_ERROR_NOT_PERMITTED;
    }
    fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 || fcntl(fd, F_SETFL, O_APPEND) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return CUDA_ERROR_OPERATING_SYSTEM;
    }
    *(int *)shareable = fd;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI
cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle,
                               void *os_handle, CUmemAllocationHandleType type)
{
    int fd = (int)(intptr_t)os_handle;
    CUresult res = fc_ready(false);
    fc_handle_t *h;
    struct stat st;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR ||
        fstat(fd, &st) != 0 || st.st_size == 0 ||
        (size_t)st.st_size % FC_GRAN != 0 ||
        (fcntl(fd, F_GETFL) & O_APPEND) == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    h->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (h->fd < 0) {
        free(h);
        return CUDA_ERROR_OPERATING_SYSTEM;
    }
    h->size = (size_t)st.st_size;
    h->exportable = true;
    h->refs = 1;
    *handle = (CUmemGenericAllocationHandle)(uintptr_t)h;
    return CUDA_SUCCESS;
}

/* ---- classic allocations ---- */

FC_EXPORT CUresult CUDAAPI cuMemAlloc(CUdeviceptr *dptr, size_t bytesize)
{
    size_t size = (bytesize + FC_PAGE - 1) & ~(FC_PAGE - 1);
    CUresult res = fc_ready(true);
    fc_handle_t *h;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (bytesize == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    res = fc_handle_new(size, false, &h);
    if (res != CUDA_SUCCESS) {
        return res;
    }
    pthread_mutex_lock(&fc_lock);
    res = fc_map_locked(0, size, 0, h, true, 0);
    if (res == CUDA_SUCCESS) {
        *dptr = ((fc_map_t *)fc_array_at(&fc_maps, fc_maps.n - 1))->span.addr;
    }
    fc_handle_put_locked(h); /* the mapping holds it now */
    pthread_mutex_unlock(&fc_lock);
    return res;
}

FC_EXPORT CUresult CUDAAPI cuMemFree(CUdeviceptr dptr)
{
    ssize_t i;
    fc_map_t m;

    pthread_mutex_lock(&fc_lock);
    i = fc_find(&fc_maps, (uintptr_t)dptr, 1);
    if (i < 0 ||
        ((fc_map_t *)fc_array_at(&fc_maps, (size_t)i))->span.addr != dptr ||
        !((fc_map_t *)fc_array_at(&fc_maps, (size_t)i))->alloc) {
        pthread_mutex_unlock(&fc_lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    m = *(fc_map_t *)fc_array_at(&fc_maps, (size_t)i);
    fc_array_del(&fc_maps, (size_t)i);
    munmap(m.alias, m.span.size);
    munmap((void *)m.span.addr, m.span.size);
    fc_handle_put_locked(m.handle);
    pthread_mutex_unlock(&fc_lock);
    return CUDA_SUCCESS;
}

static CUresult fc_host_add(void *p, size_t size, bool pinned)
{
    fc_range_t *r;

    pthread_mutex_lock(&fc_lock);
    if (fc_find(&fc_hosts, (uintptr_t)p, size) >= 0) {
        pthread_mutex_unlock(&fc_lock);
        return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    }
    if (fc_find(&fc_maps, (uintptr_t)p, size) >= 0) {
        pthread_mutex_unlock(&fc_lock);
        return CUDA_ERROR_INVALID_VALUE; /* device memory */
    }
    r = fc_array_add(&fc_hosts);
    if (r != NULL) {
        r->span.addr = (uintptr_t)p;
        r->span.size = size;
        r->pinned = pinned;
    }
    pthread_mutex_unlock(&fc_lock);
    return r != NULL ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult fc_host_del(void *p, bool pinned)
{
    ssize_t i;
    fc_range_t *r;

    pthread_mutex_lock(&fc_lock);
    i = fc_find(&fc_hosts, (uintptr_t)p, 1);
    r = i >= 0 ? fc_array_at(&fc_hosts, (size_t)i) : NULL;
    if (r == NULL || r->span.addr != (uintptr_t)p || r->pinned != pinned) {
        pthread_mutex_unlock(&fc_lock);
        return pinned ? CUDA_ERROR_INVALID_VALUE
                      : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
    }
    fc_array_del(&fc_hosts, (size_t)i);
    pthread_mutex_unlock(&fc_lock);
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuMemHostRegister(void *p, size_t bytesize,
                                             unsigned int flags)
{
    CUresult res = fc_ready(true);

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (p == NULL || bytesize == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (fc_capture_ok() != CUDA_SUCCESS) {
        return fc_capture_ok();
    }
    return fc_host_add(p, bytesize, false);
}

FC_EXPORT CUresult CUDAAPI cuMemHostUnregister(void *p)
{
    return fc_host_del(p, false);
}

FC_EXPORT CUresult CUDAAPI cuMemAllocHost(void **pp, size_t bytesize)
{
    CUresult res = fc_ready(true);
    void *p;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (bytesize == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    p = aligned_alloc(FC_PAGE, (bytesize + FC_PAGE - 1) & ~(FC_PAGE - 1));
    if (p == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    res = fc_host_add(p, bytesize, true);
    if (res != CUDA_SUCCESS) {
        free(p);
        return res;
    }
    *pp = p;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuMemFreeHost(void *p)
{
    CUresult res = fc_host_del(p, true);

    if (res == CUDA_SUCCESS) {
        free(p);
    }
    return res;
}

FC_EXPORT CUresult CUDAAPI cuPointerGetAttributes(unsigned int num,
                                                  CUpointer_attribute *attrs,
                                                  void **data, CUdeviceptr ptr)
{
    fc_map_t m = {0};
    fc_range_t h = {0};
    bool dev = false, host = false;
    ssize_t i;

    if (!fc_inited) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    pthread_mutex_lock(&fc_lock);
    i = fc_find(&fc_maps, (uintptr_t)ptr, 1);
    if (i >= 0) {
        m = *(fc_map_t *)fc_array_at(&fc_maps, (size_t)i);
        dev = true;
    } else if ((i = fc_find(&fc_hosts, (uintptr_t)ptr, 1)) >= 0) {
        h = *(fc_range_t *)fc_array_at(&fc_hosts, (size_t)i);
        host = true;
    }
    pthread_mutex_unlock(&fc_lock);
    for (unsigned a = 0; a < num; a++) {
        switch (attrs[a]) {
        case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
            *(unsigned int *)data[a] = dev    ? CU_MEMORYTYPE_DEVICE
                                       : host ? CU_MEMORYTYPE_HOST
                                              : 0;
            break;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
            *(int *)data[a] = dev ? m.device : -2;
            break;
        case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
            *(CUdeviceptr *)data[a] = dev    ? m.span.addr
                                      : host ? h.span.addr
                                             : 0;
            break;
        case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
            *(size_t *)data[a] = dev ? m.span.size : host ? h.span.size : 0;
            break;
        case CU_POINTER_ATTRIBUTE_MAPPED:
            *(char *)data[a] = dev;
            break;
        default:
            return CUDA_ERROR_NOT_SUPPORTED;
        }
    }
    return CUDA_SUCCESS;
}

/* ---- streams and copies ---- */

static void fc_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    if (us > 0) {
        nanosleep(&ts, NULL);
    }
}

static void *fc_stream_main(void *arg)
{
    struct CUstream_st *s = arg;
    fc_op_t *op;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->head == NULL && !s->stop) {
            pthread_cond_wait(&s->cond, &s->lock);
        }
        if (s->head == NULL) {
            break;
        }
        op = s->head;
        pthread_mutex_unlock(&s->lock);

        fc_sleep_us(fc_env("FAKECUDA_DELAY_US", 200));
        if (op->type == FC_OP_COPY) {
            memmove(op->dst, op->src, op->size);
        } else if (op->type == FC_OP_CALLBACK) {
            op->cb(op->stream, CUDA_SUCCESS, op->data);
        } else {
            op->fn(op->data);
        }

        pthread_mutex_lock(&s->lock);
        s->head = op->next;
        if (s->head == NULL) {
            s->tail = NULL;
        }
        s->pending--;
        free(op);
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static CUresult fc_stream_new(struct CUstream_st **sp)
{
    struct CUstream_st *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    s->ctx = fc_current;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, fc_stream_main, s) != 0) {
        free(s);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *sp = s;
    return CUDA_SUCCESS;
}

static struct CUstream_st *fc_stream(CUstream s)
{
    if (s != NULL && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD) {
        return s;
    }
    pthread_mutex_lock(&fc_lock);
    if (fc_null_stream == NULL) {
        if (fc_stream_new(&fc_null_stream) != 0) {
            fc_null_stream = NULL;
        } else {
            fc_null_stream->ctx = NULL; /* every context's */
        }
    }
    pthread_mutex_unlock(&fc_lock);
    return fc_null_stream;
}

FC_EXPORT CUresult CUDAAPI cuStreamCreate(CUstream *stream, unsigned int flags)
{
    CUresult res = fc_ready(true);

    if (res != CUDA_SUCCESS) {
        return res;
    }
    return fc_stream_new(stream);
}

FC_EXPORT CUresult CUDAAPI cuStreamSynchronize(CUstream stream)
{
    struct CUstream_st *s = fc_stream(stream);

    if (s == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (fc_capture_ok() != CUDA_SUCCESS) {
        return fc_capture_ok();
    }
    pthread_mutex_lock(&s->lock);
    while (s->pending > 0) {
        pthread_cond_wait(&s->cond, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuStreamDestroy(CUstream stream)
{
    struct CUstream_st *s = stream;

    if (s == NULL || s == fc_null_stream) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    pthread_mutex_lock(&s->lock);
    s->stop = true; /* what is queued still runs, as on a GPU */
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return CUDA_SUCCESS;
}

static CUresult fc_enqueue(struct CUstream_st *s, fc_op_t *op)
{
    if (s == NULL) {
        free(op);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (s->ctx != NULL && s->ctx != fc_current) {
        free(op);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    pthread_mutex_lock(&s->lock);
    if (s->tail != NULL) {
        s->tail->next = op;
    } else {
        s->head = op;
    }
    s->tail = op;
    s->pending++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return CUDA_SUCCESS;
}

/*
 * Where the copy engine reaches [p, p + size): the alias of device memory
 * (which must lie inside one mapping with access), else p itself (host).
 * NULL for a device range the engine cannot reach.
 */
static char *fc_reach_locked(uintptr_t p, size_t size)
{
    ssize_t i = fc_find(&fc_maps, p, size);
    fc_map_t *m;

    if (i < 0) {
        /* reserved device addresses with nothing mapped are no host memory */
        return fc_find(&fc_reserves, p, size) >= 0 ? NULL : (char *)p;
    }
    m = fc_array_at(&fc_maps, (size_t)i);
    if (p < m->span.addr || p + size > m->span.addr + m->span.size ||
        !m->access) {
        return NULL;
    }
    return m->alias + (p - m->span.addr);
}

FC_EXPORT CUresult CUDAAPI cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src,
                                         size_t size, CUstream stream)
{
    CUresult res = fc_ready(true);
    fc_op_t *op;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (size == 0) {
        return CUDA_SUCCESS;
    }
    if (fc_fail_now(&fc_copies, "FAKECUDA_FAIL_COPY") ||
        fc_fail_addr(dst, size) || fc_fail_addr(src, size)) {
        return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_lock(&fc_lock);
    op->dst = fc_reach_locked((uintptr_t)dst, size);
    op->src = fc_reach_locked((uintptr_t)src, size);
    pthread_mutex_unlock(&fc_lock);
    if (op->dst == NULL || op->src == NULL || dst == 0 || src == 0) {
        free(op);
        return CUDA_ERROR_INVALID_VALUE;
    }
    op->type = FC_OP_COPY;
    op->size = size;
    return fc_enqueue(fc_stream(stream), op);
}

FC_EXPORT CUresult CUDAAPI cuMemcpy(CUdeviceptr dst, CUdeviceptr src,
                                    size_t size)
{
    CUresult res = cuMemcpyAsync(dst, src, size, NULL);

    return res == CUDA_SUCCESS ? cuStreamSynchronize(NULL) : res;
}

FC_EXPORT CUresult CUDAAPI cuMemsetD8(CUdeviceptr dst, unsigned char value,
                                      size_t n)
{
    CUresult res = fc_ready(true);
    char *p;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    res = cuStreamSynchronize(NULL);
    pthread_mutex_lock(&fc_lock);
    p = fc_find(&fc_maps, (uintptr_t)dst, n) >= 0
            ? fc_reach_locked((uintptr_t)dst, n)
            : NULL;
    if (p != NULL) {
        memset(p, value, n);
    }
    pthread_mutex_unlock(&fc_lock);
    return p != NULL ? res : CUDA_ERROR_INVALID_VALUE;
}

FC_EXPORT CUresult CUDAAPI cuLaunchHostFunc(CUstream stream, CUhostFn fn,
                                            void *data)
{
    CUresult res = fc_ready(true);
    fc_op_t *op;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (fn == NULL) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    op->type = FC_OP_HOST_FN;
    op->fn = fn;
    op->data = data;
    return fc_enqueue(fc_stream(stream), op);
}

FC_EXPORT CUresult CUDAAPI cuStreamAddCallback(CUstream stream,
                                               CUstreamCallback cb, void *data,
                                               unsigned int flags)
{
    CUresult res = fc_ready(true);
    fc_op_t *op;

    if (res != CUDA_SUCCESS) {
        return res;
    }
    if (cb == NULL || flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    op->type = FC_OP_CALLBACK;
    op->cb = cb;
    op->stream = stream;
    op->data = data;
    return fc_enqueue(fc_stream(stream), op);
}

FC_EXPORT CUresult CUDAAPI
cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
    CUstreamCaptureMode old = fc_capture_mode;

    if (mode == NULL) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    fc_capture_mode = *mode;
    *mode = old;
    return CUDA_SUCCESS;
}

/* Capture records nothing here: it only makes synchronising calls illegal
 * for threads that are not relaxed, which is what a library must cope
 * with while an application captures a graph. */
FC_EXPORT CUresult CUDAAPI cuStreamBeginCapture_v2(CUstream stream,
                                                   CUstreamCaptureMode mode)
{
    struct CUstream_st *s = stream;

    if (s == NULL || s == fc_null_stream || s->capturing) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    s->capturing = true;
    if (mode == CU_STREAM_CAPTURE_MODE_GLOBAL) {
        atomic_fetch_add(&fc_captures, 1);
    }
    fc_capture_mode = mode;
    return CUDA_SUCCESS;
}

FC_EXPORT CUresult CUDAAPI cuStreamEndCapture(CUstream stream, CUgraph *graph)
{
    struct CUstream_st *s = stream;

    if (s == NULL || !s->capturing) {
        return CUDA_ERROR_ILLEGAL_STATE;
    }
    s->capturing = false;
    if (fc_capture_mode == CU_STREAM_CAPTURE_MODE_GLOBAL) {
        atomic_fetch_sub(&fc_captures, 1);
    }
    *graph = NULL;
    return CUDA_SUCCESS;
}
