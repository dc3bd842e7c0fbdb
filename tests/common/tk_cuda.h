/*
 * Device memory for tests and benchmarks, through the same driver the
 * library loads ($MF_CUDA_LIBRARY, else libcuda.so.1): a test allocates
 * "user" device buffers and moves bytes in and out of them to check what
 * the library did.  Against the fake driver of tests/fakecuda in CI, the
 * real one on a GPU machine.  Uses no CUDA header.
 *
 * Every call makes the device's primary context current in the calling
 * thread first, so any thread may call.
 */
#ifndef MF_TK_CUDA_H
#define MF_TK_CUDA_H

#include <stddef.h>

/* Loads the driver and picks device 0: 0, or -1 with the reason in why
 * (no driver, no device).  Idempotent. */
int tk_cuda_init(char *why, size_t why_len);
/* size bytes of device memory (cuMemAlloc), or NULL (printed). */
void *tk_cuda_alloc(size_t size);
void tk_cuda_free(void *ptr);
/* Copies between any host and device memory and waits: 0 or -1. */
int tk_cuda_copy(void *dst, const void *src, size_t size);
/* Whether the driver loaded is the fake one of tests/fakecuda. */
int tk_cuda_is_fake(void);

#endif /* MF_TK_CUDA_H */
