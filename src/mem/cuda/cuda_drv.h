/*
 * The CUDA driver as the cuda memory kind sees it: libcuda.so.1 (or
 * $MF_CUDA_LIBRARY) loaded with dlopen on first use, its functions looked
 * up by the names cuda.h gives them (cuMemAlloc is cuMemAlloc_v2, ...), a
 * device chosen and its primary context retained.  Nothing links libcuda:
 * a process without a driver or a GPU gets MF_ERR_UNSUPPORTED and the
 * reason, never a crash.  Loading the driver (cuInit) takes no GPU
 * memory; the device's primary context is retained at the first call that
 * needs a context.
 *
 * Only src/mem/cuda includes this header (and cuda.h).
 */
#ifndef MF_MEM_CUDA_DRV_H
#define MF_MEM_CUDA_DRV_H

#include <cuda.h>
#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>

/* Every driver function the kind calls. */
// clang-format off
#define MF_CUDA_DRV_FUNCS(_f) \
    _f(cuInit) \
    _f(cuDriverGetVersion) \
    _f(cuDeviceGetCount) \
    _f(cuDeviceGet) \
    _f(cuDeviceGetName) \
    _f(cuDevicePrimaryCtxRetain) \
    _f(cuCtxSetCurrent) \
    _f(cuCtxGetCurrent) \
    _f(cuCtxGetDevice) \
    _f(cuThreadExchangeStreamCaptureMode) \
    _f(cuGetErrorName) \
    _f(cuMemGetAllocationGranularity) \
    _f(cuMemCreate) \
    _f(cuMemRelease) \
    _f(cuMemAddressReserve) \
    _f(cuMemAddressFree) \
    _f(cuMemMap) \
    _f(cuMemUnmap) \
    _f(cuMemSetAccess) \
    _f(cuMemExportToShareableHandle) \
    _f(cuMemImportFromShareableHandle) \
    _f(cuMemHostRegister) \
    _f(cuMemHostUnregister) \
    _f(cuPointerGetAttributes) \
    _f(cuStreamCreate) \
    _f(cuStreamDestroy) \
    _f(cuStreamSynchronize) \
    _f(cuMemcpyAsync) \
    _f(cuStreamAddCallback)
// clang-format on

typedef struct mf_cuda_drv {
#define MF_CUDA_DRV_MEMBER(_fn) __typeof__(_fn) *_fn;
    MF_CUDA_DRV_FUNCS(MF_CUDA_DRV_MEMBER)
#undef MF_CUDA_DRV_MEMBER
    CUdevice device;    /* the device segments are created on */
    size_t granularity; /* of cuMemCreate on it */
    char name[128];     /* of the device, for messages */
} mf_cuda_drv_t;

/*
 * Loads the driver and picks the device, once per process: the device of
 * the context current in the calling thread if there is one (the
 * application chose it), else $MF_CUDA_DEVICE, else device 0.  The
 * driver, or NULL when unusable (why then says, e.g. "cannot load
 * libcuda.so.1: ...: no NVIDIA driver on this machine").
 */
const mf_cuda_drv_t *mf_cuda_drv(void);
const char *mf_cuda_drv_why(void);

/* What mf_cuda_ctx_enter changed in the calling thread. */
typedef struct mf_cuda_ctx_save {
    CUcontext prev; /* the application's context, when we replaced it */
    bool swapped;
    CUstreamCaptureMode mode; /* the thread's capture mode before */
    bool relaxed;
} mf_cuda_ctx_save_t;

/*
 * Every call of the kind into the driver runs between mf_cuda_ctx_enter
 * and mf_cuda_ctx_leave, in the calling thread: the device's primary
 * context is made current (the application's current context, which may
 * be another device's or none, is put back at leave), and the thread's
 * stream-capture mode is relaxed, so a copy of ours is legal while the
 * application captures a CUDA graph in this or another thread.  On error
 * nothing is changed and leave is not needed.
 */
mf_status_t mf_cuda_ctx_enter(const mf_cuda_drv_t *drv,
                              mf_cuda_ctx_save_t *save);
void mf_cuda_ctx_leave(const mf_cuda_drv_t *drv, mf_cuda_ctx_save_t *save);

/* The driver's name of a result, e.g. "CUDA_ERROR_INVALID_VALUE". */
const char *mf_cuda_err(const mf_cuda_drv_t *drv, CUresult res);

/* Our status for a driver result. */
mf_status_t mf_cuda_status(CUresult res);

#endif /* MF_MEM_CUDA_DRV_H */
