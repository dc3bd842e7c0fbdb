/*
 * Loading the CUDA driver at run time.
 *
 * Invariant: mf_cuda_drv_g is filled once (pthread_once) and read-only
 * after; a failed load leaves it NULL for the life of the process with the
 * reason in mf_cuda_why_g.  The library handle is never closed: callbacks
 * and driver threads may still run code of it at exit.
 */
#include "mem/cuda/cuda_drv.h"

#include "util/log.h"
#include "util/misc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_CUDA_DEFAULT_LIBRARY "libcuda.so.1"

static mf_cuda_drv_t mf_cuda_drv_s;
static const mf_cuda_drv_t *mf_cuda_drv_g;
static char mf_cuda_why_g[512] = "the CUDA driver was not loaded";
static pthread_once_t mf_cuda_once = PTHREAD_ONCE_INIT;

const char *mf_cuda_err(const mf_cuda_drv_t *drv, CUresult res)
{
    const char *name = NULL;

    if (drv == NULL || drv->cuGetErrorName == NULL ||
        drv->cuGetErrorName(res, &name) != CUDA_SUCCESS || name == NULL) {
        return "unknown CUDA error";
    }
    return name;
}

mf_status_t mf_cuda_status(CUresult res)
{
    switch (res) {
    case CUDA_SUCCESS:
        return MF_OK;
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_HANDLE:
    case CUDA_ERROR_INVALID_DEVICE:
        return MF_ERR_INVALID;
    case CUDA_ERROR_OUT_OF_MEMORY:
        return MF_ERR_NOMEM;
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_NOT_SUPPORTED:
    case CUDA_ERROR_NOT_PERMITTED:
        return MF_ERR_UNSUPPORTED;
    case CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED:
        return MF_ERR_EXISTS;
    case CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED:
        return MF_ERR_NOT_FOUND;
    case CUDA_ERROR_NOT_INITIALIZED:
    case CUDA_ERROR_INVALID_CONTEXT:
        return MF_ERR_STATE;
    default:
        return MF_ERR_IO;
    }
}

static void mf_cuda_why(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void mf_cuda_why(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(mf_cuda_why_g, sizeof(mf_cuda_why_g), fmt, ap);
    va_end(ap);
}

/* The device: the current context's, else $MF_CUDA_DEVICE, else 0. */
static CUresult mf_cuda_pick_device(mf_cuda_drv_t *drv, int count)
{
    const char *env = getenv("MF_CUDA_DEVICE");
    CUcontext cur = NULL;
    char *end;
    long ordinal = 0;

    if (drv->cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur != NULL &&
        drv->cuCtxGetDevice(&drv->device) == CUDA_SUCCESS) {
        return CUDA_SUCCESS;
    }
    if (env != NULL && *env != '\0') {
        ordinal = strtol(env, &end, 10);
        if (*end != '\0' || ordinal < 0 || ordinal >= count) {
            mf_cuda_why("MF_CUDA_DEVICE=%s is not a device of this machine "
                        "(0..%d)",
                        env, count - 1);
            return CUDA_ERROR_INVALID_DEVICE;
        }
    }
    return drv->cuDeviceGet(&drv->device, (int)ordinal);
}

static void mf_cuda_load(void)
{
    const char *path = getenv("MF_CUDA_LIBRARY");
    mf_cuda_drv_t *drv = &mf_cuda_drv_s;
    CUmemAllocationProp prop;
    CUresult res;
    void *lib;
    int count = 0, version = 0;

    if (path == NULL || *path == '\0') {
        path = MF_CUDA_DEFAULT_LIBRARY;
    }
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        mf_cuda_why("cannot load %s (%s): no NVIDIA driver here", path,
                    dlerror());
        return;
    }
#define MF_CUDA_DRV_SYM(_fn)                                                   \
    *(void **)&drv->_fn = dlsym(lib, MF_STRINGIFY(_fn));                       \
    if (drv->_fn == NULL) {                                                    \
        mf_cuda_why("%s has no %s: the driver is too old", path,               \
                    MF_STRINGIFY(_fn));                                        \
        return;                                                                \
    }
    MF_CUDA_DRV_FUNCS(MF_CUDA_DRV_SYM)
#undef MF_CUDA_DRV_SYM

    res = drv->cuInit(0);
    if (res != CUDA_SUCCESS) {
        mf_cuda_why("cuInit failed: %s (%s)", mf_cuda_err(drv, res),
                    res == CUDA_ERROR_NO_DEVICE ? "no CUDA device"
                                                : "driver not usable");
        return;
    }
    res = drv->cuDeviceGetCount(&count);
    if (res != CUDA_SUCCESS || count == 0) {
        mf_cuda_why("no CUDA device (%s)", mf_cuda_err(drv, res));
        return;
    }
    res = mf_cuda_pick_device(drv, count);
    if (res != CUDA_SUCCESS) {
        if (res != CUDA_ERROR_INVALID_DEVICE) {
            mf_cuda_why("cannot pick a device: %s", mf_cuda_err(drv, res));
        }
        return;
    }
    /* the device's context is retained at the first call that needs one
     * (mf_cuda_ctx_enter): a process that only classifies pointers holds
     * no GPU memory for it */
    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = drv->device;
    res = drv->cuMemGetAllocationGranularity(&drv->granularity, &prop,
                                             CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    if (res != CUDA_SUCCESS || drv->granularity == 0 ||
        (drv->granularity & (drv->granularity - 1)) != 0) {
        mf_cuda_why("device %d has no virtual memory management (%s)",
                    drv->device, mf_cuda_err(drv, res));
        return;
    }
    if (drv->cuDeviceGetName(drv->name, sizeof(drv->name), drv->device) !=
        CUDA_SUCCESS) {
        snprintf(drv->name, sizeof(drv->name), "device %d", drv->device);
    }
    drv->cuDriverGetVersion(&version);
    mf_info("cuda: %s (device %d of %d), driver %d.%d, granularity %zu KiB",
            drv->name, drv->device, count, version / 1000,
            (version % 1000) / 10, drv->granularity >> 10);
    mf_cuda_drv_g = drv;
}

const mf_cuda_drv_t *mf_cuda_drv(void)
{
    pthread_once(&mf_cuda_once, mf_cuda_load);
    return mf_cuda_drv_g;
}

const char *mf_cuda_drv_why(void)
{
    pthread_once(&mf_cuda_once, mf_cuda_load);
    return mf_cuda_drv_g != NULL ? "" : mf_cuda_why_g;
}

static CUcontext mf_cuda_ctx_g;
static CUresult mf_cuda_ctx_res_g = CUDA_ERROR_NOT_INITIALIZED;
static pthread_once_t mf_cuda_ctx_once = PTHREAD_ONCE_INIT;

static void mf_cuda_ctx_retain(void)
{
    const mf_cuda_drv_t *drv = mf_cuda_drv_g;

    mf_cuda_ctx_res_g =
        drv->cuDevicePrimaryCtxRetain(&mf_cuda_ctx_g, drv->device);
    if (mf_cuda_ctx_res_g != CUDA_SUCCESS) {
        mf_error("cuda: cannot retain the context of device %d: %s",
                 drv->device, mf_cuda_err(drv, mf_cuda_ctx_res_g));
    }
}

mf_status_t mf_cuda_ctx_enter(const mf_cuda_drv_t *drv,
                              mf_cuda_ctx_save_t *save)
{
    CUcontext cur = NULL;
    CUresult res;

    save->swapped = false;
    save->relaxed = false;
    pthread_once(&mf_cuda_ctx_once, mf_cuda_ctx_retain);
    if (mf_cuda_ctx_res_g != CUDA_SUCCESS) {
        return mf_cuda_status(mf_cuda_ctx_res_g);
    }
    if (drv->cuCtxGetCurrent(&cur) != CUDA_SUCCESS) {
        cur = NULL;
    }
    if (cur != mf_cuda_ctx_g) {
        res = drv->cuCtxSetCurrent(mf_cuda_ctx_g);
        if (res != CUDA_SUCCESS) {
            mf_error("cuda: cannot make the context of device %d current: %s",
                     drv->device, mf_cuda_err(drv, res));
            return mf_cuda_status(res);
        }
        save->prev = cur;
        save->swapped = true;
    }
    save->mode = CU_STREAM_CAPTURE_MODE_RELAXED;
    if (drv->cuThreadExchangeStreamCaptureMode(&save->mode) == CUDA_SUCCESS) {
        save->relaxed = true;
    }
    return MF_OK;
}

void mf_cuda_ctx_leave(const mf_cuda_drv_t *drv, mf_cuda_ctx_save_t *save)
{
    if (save->relaxed) {
        (void)drv->cuThreadExchangeStreamCaptureMode(&save->mode);
        save->relaxed = false;
    }
    if (save->swapped) {
        (void)drv->cuCtxSetCurrent(save->prev);
        save->swapped = false;
    }
}
