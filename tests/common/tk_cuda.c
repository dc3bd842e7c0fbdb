/*
 * Device memory for tests and benchmarks (tk_cuda.h): the few driver calls
 * they need, looked up with dlsym under the names the driver exports, with
 * their prototypes written out (no CUDA header in the test kit).
 */
#include "tk_cuda.h"

#include "tk_proc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int tk_cu_result_t;
typedef unsigned long long tk_cu_ptr_t;

#define TK_CU_STREAM_NON_BLOCKING 0x1u

/* The probe's child answers within this. */
#define TK_CUDA_PROBE_MS 60000

static struct {
    tk_cu_result_t (*init)(unsigned flags);
    tk_cu_result_t (*device_get)(int *dev, int ordinal);
    tk_cu_result_t (*ctx_retain)(void **ctx, int dev);
    tk_cu_result_t (*ctx_set)(void *ctx);
    tk_cu_result_t (*alloc)(tk_cu_ptr_t *ptr, size_t size);
    tk_cu_result_t (*free)(tk_cu_ptr_t ptr);
    tk_cu_result_t (*copy)(tk_cu_ptr_t dst, tk_cu_ptr_t src, size_t size);
    tk_cu_result_t (*alloc_host)(void **ptr, size_t size);
    tk_cu_result_t (*free_host)(void *ptr);
    tk_cu_result_t (*memset8)(tk_cu_ptr_t dst, unsigned char value,
                              size_t size);
    tk_cu_result_t (*stream_create)(void **stream, unsigned flags);
    tk_cu_result_t (*stream_destroy)(void *stream);
    tk_cu_result_t (*copy_async)(tk_cu_ptr_t dst, tk_cu_ptr_t src, size_t size,
                                 void *stream);
    tk_cu_result_t (*stream_sync)(void *stream);
    tk_cu_result_t (*ptr_attrs)(unsigned num, int *attrs, void **data,
                                tk_cu_ptr_t ptr);
    /* optional: contexts and stream capture, for tests that play an
     * application */
    tk_cu_result_t (*ctx_get)(void **ctx);
    tk_cu_result_t (*ctx_device)(int *dev);
    tk_cu_result_t (*capture_begin)(void *stream, int mode);
    tk_cu_result_t (*capture_end)(void *stream, void **graph);
    tk_cu_result_t (*capture_mode)(int *mode);
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
    *(void **)&tk_cuda.alloc_host = dlsym(lib, "cuMemAllocHost_v2");
    *(void **)&tk_cuda.free_host = dlsym(lib, "cuMemFreeHost");
    *(void **)&tk_cuda.memset8 = dlsym(lib, "cuMemsetD8_v2");
    *(void **)&tk_cuda.stream_create = dlsym(lib, "cuStreamCreate");
    *(void **)&tk_cuda.stream_destroy = dlsym(lib, "cuStreamDestroy_v2");
    *(void **)&tk_cuda.copy_async = dlsym(lib, "cuMemcpyAsync");
    *(void **)&tk_cuda.stream_sync = dlsym(lib, "cuStreamSynchronize");
    *(void **)&tk_cuda.ptr_attrs = dlsym(lib, "cuPointerGetAttributes");
    *(void **)&tk_cuda.ctx_get = dlsym(lib, "cuCtxGetCurrent");
    *(void **)&tk_cuda.ctx_device = dlsym(lib, "cuCtxGetDevice");
    *(void **)&tk_cuda.capture_begin = dlsym(lib, "cuStreamBeginCapture_v2");
    *(void **)&tk_cuda.capture_end = dlsym(lib, "cuStreamEndCapture");
    *(void **)&tk_cuda.capture_mode =
        dlsym(lib, "cuThreadExchangeStreamCaptureMode");
    if (tk_cuda.init == NULL || tk_cuda.device_get == NULL ||
        tk_cuda.ctx_retain == NULL || tk_cuda.ctx_set == NULL ||
        tk_cuda.alloc == NULL || tk_cuda.free == NULL || tk_cuda.copy == NULL ||
        tk_cuda.alloc_host == NULL || tk_cuda.free_host == NULL ||
        tk_cuda.memset8 == NULL || tk_cuda.stream_create == NULL ||
        tk_cuda.stream_destroy == NULL || tk_cuda.copy_async == NULL ||
        tk_cuda.stream_sync == NULL || tk_cuda.ptr_attrs == NULL) {
        snprintf(tk_cuda.why, sizeof(tk_cuda.why),
                 "%s lacks a driver call the test kit uses", path);
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

/* The probe's child: the reason on its standard output, or "ok". */
static int tk_cuda_probe_child(int index, void *arg)
{
    char why[256];
    int ret = tk_cuda_init(why, sizeof(why));

    printf("%s\n", ret == 0 ? "ok" : why);
    fflush(stdout);
    return ret == 0 ? 0 : 1;
}

int tk_cuda_probe(char *why, size_t why_len)
{
    char line[256];
    pid_t pid;
    int fd, ret, code;

    pid = tk_proc_spawn_out(tk_cuda_probe_child, 0, NULL, &fd);
    if (pid < 0) {
        snprintf(why, why_len, "cannot fork a process to load the driver");
        return -1;
    }
    ret = tk_fd_read_line(fd, line, sizeof(line), TK_CUDA_PROBE_MS);
    close(fd);
    code = tk_proc_wait(pid, TK_CUDA_PROBE_MS);
    if (ret == 0 && code == 0) {
        return 0;
    }
    snprintf(why, why_len, "%s",
             ret == 0 ? line : "the driver did not load in a child process");
    return -1;
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

void *tk_cuda_alloc_host(size_t size)
{
    void *ptr = NULL;
    int res;

    if (tk_cuda_enter() != 0) {
        tk_print("tk_cuda_alloc_host: %s", tk_cuda.why);
        return NULL;
    }
    res = tk_cuda.alloc_host(&ptr, size);
    if (res != 0) {
        tk_print("cuMemAllocHost(%zu) failed: %d", size, res);
        return NULL;
    }
    return ptr;
}

void tk_cuda_free_host(void *ptr)
{
    if (ptr != NULL && tk_cuda_enter() == 0) {
        tk_cuda.free_host(ptr);
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

int tk_cuda_memset(void *dev, unsigned char value, size_t size)
{
    int res;

    if (tk_cuda_enter() != 0) {
        return -1;
    }
    res = tk_cuda.memset8((tk_cu_ptr_t)(uintptr_t)dev, value, size);
    if (res != 0) {
        tk_print("cuMemsetD8(%p, %zu) failed: %d", dev, size, res);
        return -1;
    }
    return 0;
}

int tk_cuda_host_registered(const void *ptr)
{
    int attr = 2; /* CU_POINTER_ATTRIBUTE_MEMORY_TYPE */
    unsigned type = 0;
    void *data = &type;

    if (tk_cuda_enter() != 0 ||
        tk_cuda.ptr_attrs(1, &attr, &data, (tk_cu_ptr_t)(uintptr_t)ptr) != 0) {
        return -1;
    }
    return type == 1; /* CU_MEMORYTYPE_HOST: registered or pinned */
}

int tk_cuda_is_fake(void)
{
    return tk_cuda_init(NULL, 0) == 0 && tk_cuda.fake;
}

/* A tk_cuda_stream_t * is the driver's CUstream itself. */
tk_cuda_stream_t *tk_cuda_stream_create(void)
{
    void *stream = NULL;
    int res;

    if (tk_cuda_enter() != 0) {
        tk_print("tk_cuda_stream_create: %s", tk_cuda.why);
        return NULL;
    }
    res = tk_cuda.stream_create(&stream, TK_CU_STREAM_NON_BLOCKING);
    if (res != 0) {
        tk_print("cuStreamCreate failed: %d", res);
        return NULL;
    }
    return stream;
}

void tk_cuda_stream_destroy(tk_cuda_stream_t *stream)
{
    if (stream != NULL && tk_cuda_enter() == 0) {
        tk_cuda.stream_sync(stream);
        tk_cuda.stream_destroy(stream);
    }
}

int tk_cuda_copy_async(tk_cuda_stream_t *stream, void *dst, const void *src,
                       size_t size)
{
    int res;

    if (tk_cuda_enter() != 0) {
        return -1;
    }
    res = tk_cuda.copy_async((tk_cu_ptr_t)(uintptr_t)dst,
                             (tk_cu_ptr_t)(uintptr_t)src, size, stream);
    if (res != 0) {
        tk_print("cuMemcpyAsync(%p <- %p, %zu) failed: %d", dst, src, size,
                 res);
        return -1;
    }
    return 0;
}

int tk_cuda_stream_sync(tk_cuda_stream_t *stream)
{
    int res;

    if (tk_cuda_enter() != 0) {
        return -1;
    }
    res = tk_cuda.stream_sync(stream);
    if (res != 0) {
        tk_print("cuStreamSynchronize failed: %d", res);
        return -1;
    }
    return 0;
}

int tk_cuda_ctx_set(int dev)
{
    void *ctx = NULL;

    if (tk_cuda_init(NULL, 0) != 0 ||
        (dev >= 0 && tk_cuda.ctx_retain(&ctx, dev) != 0)) {
        return -1;
    }
    return tk_cuda.ctx_set(ctx) == 0 ? 0 : -1;
}

int tk_cuda_ctx_get(void)
{
    void *ctx = NULL;
    int dev = -1;

    if (tk_cuda_init(NULL, 0) != 0 || tk_cuda.ctx_get == NULL ||
        tk_cuda.ctx_device == NULL || tk_cuda.ctx_get(&ctx) != 0) {
        return -2;
    }
    if (ctx == NULL) {
        return -1;
    }
    return tk_cuda.ctx_device(&dev) == 0 ? dev : -2;
}

int tk_cuda_capture_begin(tk_cuda_stream_t *stream)
{
    int res;

    if (tk_cuda_enter() != 0 || tk_cuda.capture_begin == NULL) {
        return -1;
    }
    res = tk_cuda.capture_begin(stream, 0 /* CU_STREAM_CAPTURE_MODE_GLOBAL */);
    if (res != 0) {
        tk_print("cuStreamBeginCapture failed: %d", res);
        return -1;
    }
    return 0;
}

int tk_cuda_capture_end(tk_cuda_stream_t *stream)
{
    void *graph = NULL;
    int res;

    if (tk_cuda_enter() != 0 || tk_cuda.capture_end == NULL) {
        return -1;
    }
    res = tk_cuda.capture_end(stream, &graph);
    if (res != 0) {
        tk_print("cuStreamEndCapture failed: %d", res);
        return -1;
    }
    return 0;
}

int tk_cuda_capture_mode(void)
{
    int mode = 2, old; /* relaxed, for a moment */

    if (tk_cuda_init(NULL, 0) != 0 || tk_cuda.capture_mode == NULL ||
        tk_cuda.capture_mode(&mode) != 0) {
        return -1;
    }
    old = mode;
    return tk_cuda.capture_mode(&mode) == 0 ? old : -1;
}
