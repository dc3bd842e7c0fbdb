/*
 * Device memory for tests and benchmarks, through the same driver the
 * library loads ($MF_CUDA_LIBRARY, else libcuda.so.1): a test allocates
 * "user" device buffers and moves bytes in and out of them to check what
 * the library did; a benchmark also times the driver's own copies of the
 * same bytes (pinned host memory, a stream) as its baseline.  Against the
 * fake driver of tests/fakecuda in CI, the real one on a GPU machine.
 * Uses no CUDA header.
 *
 * Every call makes the device's primary context current in the calling
 * thread first, so any thread may call.  A process that forks must not
 * call any of them before it forks (a child cannot use a driver its parent
 * initialised): tk_cuda_probe asks a child instead.
 */
#ifndef MF_TK_CUDA_H
#define MF_TK_CUDA_H

#include <stddef.h>

/* Loads the driver and picks device 0: 0, or -1 with the reason in why
 * (no driver, no device).  Idempotent. */
int tk_cuda_init(char *why, size_t why_len);
/* tk_cuda_init in a child process, leaving this one free of the driver
 * (it may fork later): 0, or -1 with the reason in why. */
int tk_cuda_probe(char *why, size_t why_len);
/* size bytes of device memory (cuMemAlloc), or NULL (printed). */
void *tk_cuda_alloc(size_t size);
void tk_cuda_free(void *ptr);
/* size bytes of pinned host memory (cuMemAllocHost), which the host reads
 * and writes like any memory, or NULL (printed). */
void *tk_cuda_alloc_host(size_t size);
void tk_cuda_free_host(void *ptr);
/* Copies between any host and device memory and waits: 0 or -1. */
int tk_cuda_copy(void *dst, const void *src, size_t size);
/* Sets size bytes of device memory to value and waits: 0 or -1. */
int tk_cuda_memset(void *dev, unsigned char value, size_t size);
/* Whether the driver loaded is the fake one of tests/fakecuda. */
int tk_cuda_is_fake(void);
/* Whether ptr is host memory registered with (or allocated by) the
 * driver: 1 yes, 0 no, -1 no driver. */
int tk_cuda_host_registered(const void *ptr);

/* A stream of the device (a CUstream; non-blocking, so it never waits for
 * other streams): copies queued on it run in order, asynchronously. */
typedef struct tk_cuda_stream tk_cuda_stream_t;

/* A new stream, or NULL (printed). */
tk_cuda_stream_t *tk_cuda_stream_create(void);
/* Waits for what is queued, then destroys the stream. */
void tk_cuda_stream_destroy(tk_cuda_stream_t *stream);
/* Queues a copy between any host and device memory (cuMemcpyAsync): 0 or
 * -1 (printed).  The memory stays the caller's, untouched until the copy
 * ran. */
int tk_cuda_copy_async(tk_cuda_stream_t *stream, void *dst, const void *src,
                       size_t size);
/* Waits for every copy queued on stream: 0 or -1 (printed). */
int tk_cuda_stream_sync(tk_cuda_stream_t *stream);

/*
 * Playing an application that uses the driver itself; unlike the calls
 * above, these leave the thread's context alone.
 */
/* Makes the primary context of device dev current in this thread (-1:
 * none): 0 or -1. */
int tk_cuda_ctx_set(int dev);
/* The device of the context current in this thread, -1 if none, -2 on
 * error. */
int tk_cuda_ctx_get(void);
/* Starts and ends capturing stream into a graph in global mode, as an
 * application records a CUDA graph: meanwhile calls that may synchronise
 * are illegal in threads whose mode is not relaxed.  0 or -1. */
int tk_cuda_capture_begin(tk_cuda_stream_t *stream);
int tk_cuda_capture_end(tk_cuda_stream_t *stream);
/* This thread's capture mode (0 global, 1 thread-local, 2 relaxed), or
 * -1. */
int tk_cuda_capture_mode(void);

#endif /* MF_TK_CUDA_H */
