/*
 * Device memory for tests (tk_cuda.h): the few driver calls it needs,
 * looked up with dlsym under the names the driver exports, with their
 * prototypes written out (no CUDA header in the test kit).
 */
#include "tk_cuda.h"

#include "tk_proc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int tk_cu_result_t;
typedef unsigned long long tk_cu_ptr_t;

static struct {
    tk_cu_result_t (*init)(unsigned flags);
    tk_cu_result_t (*device_get)(int *dev, int ordinal);
    tk_cu_result_t (*ctx_retain)(void **ctx, int dev);
    tk_cu_result_t (*ctx_set)(void *ctx);
    tk_cu_result_t (*alloc)(tk_cu_ptr_t *ptr, size_t size);
    tk_cu_result_t (*free)(tk_cu_ptr_t ptr);
    tk_cu_result_t (*copy)(tk_cu_ptr_t dst, tk_cu_ptr_t src, size_t size);
    void *ctx;
    int fake;
    int ready;
    char why[256];
} tk_cuda;

static pthread_once_t tk_cuda_once = PTHREAD_ONCE_INIT;

static void tk_cuda_load(void)
{
    const char *path = getenv("MF_CUDA_LIBRARY");
    void *lib;
    int dev;

    if (path == NULL || *path == '\0') {
        path = "libcuda.so.1";
    }
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(tk_cuda.why, sizeof(tk_cuda.why), "cannot load %s: %s", path,
                 dlerror());
        return;
    }
    *(void **)&tk_cuda.init = dlsym(lib, "cuInit");
    *(void **)&tk_cuda.device_get = dlsym(lib, "cuDeviceGet");
    *(void **)&tk_cuda.ctx_retain = dlsym(lib, "cuDevicePrimaryCtxRetain");
    *(void **)&tk_cuda.ctx_set = dlsym(lib, "cuCtxSetCurrent");
    *(void **)&tk_cuda.alloc = dlsym(lib, "cuMemAlloc_v2");
    *(void **)&tk_cuda.free = dlsym(lib, "cuMemFree_v2");
    *(void **)&tk_cuda.copy = dlsym(lib, "cuMemcpy");
    if (tk_cuda.init == NULL || tk_cuda.device_get == NULL ||
        tk_cuda.ctx_retain == NULL || tk_cuda.ctx_set == NULL ||
        tk_cuda.alloc == NULL || tk_cuda.free == NULL || tk_cuda.copy == NULL) {
        snprintf(tk_cuda.why, sizeof(tk_cuda.why),
                 "%s lacks a driver call the tests use", path);
        return;
    }
    if (tk_cuda.init(0) != 0 || tk_cuda.device_get(&dev, 0) != 0 ||
        tk_cuda.ctx_retain(&tk_cuda.ctx, dev) != 0) {
        snprintf(tk_cuda.why, sizeof(tk_cuda.why), "%s: no usable device",
                 path);
        return;
    }
    tk_cuda.fake = strstr(path, "fakecuda") != NULL;
    tk_cuda.ready = 1;
}

int tk_cuda_init(char *why, size_t why_len)
{
    pthread_once(&tk_cuda_once, tk_cuda_load);
    if (!tk_cuda.ready && why != NULL && why_len > 0) {
        snprintf(why, why_len, "%s", tk_cuda.why);
    }
    return tk_cuda.ready ? 0 : -1;
}

static int tk_cuda_enter(void)
{
    return tk_cuda_init(NULL, 0) == 0 && tk_cuda.ctx_set(tk_cuda.ctx) == 0 ? 0
                                                                           : -1;
}

void *tk_cuda_alloc(size_t size)
{
    tk_cu_ptr_t ptr = 0;
    int res;

    if (tk_cuda_enter() != 0) {
        tk_print("tk_cuda_alloc: %s", tk_cuda.why);
        return NULL;
    }
    res = tk_cuda.alloc(&ptr, size);
    if (res != 0) {
        tk_print("cuMemAlloc(%zu) failed: %d", size, res);
        return NULL;
    }
    return (void *)(uintptr_t)ptr;
}

void tk_cuda_free(void *ptr)
{
    if (ptr != NULL && tk_cuda_enter() == 0) {
        tk_cuda.free((tk_cu_ptr_t)(uintptr_t)ptr);
    }
}

int tk_cuda_copy(void *dst, const void *src, size_t size)
{
    int res;

    if (tk_cuda_enter() != 0) {
        return -1;
    }
    res = tk_cuda.copy((tk_cu_ptr_t)(uintptr_t)dst, (tk_cu_ptr_t)(uintptr_t)src,
                       size);
    if (res != 0) {
        tk_print("cuMemcpy(%p <- %p, %zu) failed: %d", dst, src, size, res);
        return -1;
    }
    return 0;
}

int tk_cuda_is_fake(void)
{
    return tk_cuda_init(NULL, 0) == 0 && tk_cuda.fake;
}
