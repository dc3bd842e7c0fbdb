/*
 * Deterministic data for tests and benchmarks: a seedable PRNG and the
 * byte pattern every verified copy is filled with and checked against.
 *
 * A pattern byte depends on the seed and on its absolute position in the
 * object only, so bytes left over from an earlier copy (another seed), of
 * another object, or of the same object shifted do not match, and any
 * process can compute the expected content of any slice.  Filling or
 * checking a slice, at any alignment, gives the same bytes as doing the
 * whole object at once.
 */
#ifndef MF_TK_PATTERN_H
#define MF_TK_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* splitmix64: deterministic, seedable, good enough for tests. */
typedef struct tk_rng {
    uint64_t state;
} tk_rng_t;

void tk_rng_seed(tk_rng_t *rng, uint64_t seed);
uint64_t tk_rng_next(tk_rng_t *rng);
/* Uniform in [lo, hi] (inclusive). */
uint64_t tk_rng_range(tk_rng_t *rng, uint64_t lo, uint64_t hi);
/* Sizes spread over orders of magnitude: log-uniform in [lo, hi]. */
uint64_t tk_rng_size(tk_rng_t *rng, uint64_t lo, uint64_t hi);

/* Fills len bytes at buf with the pattern of seed, buf[0] being byte base
 * of the object. */
void tk_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t base);
/* Index of the first of the len bytes at buf (buf[0] being byte base of
 * the object) that differs from the pattern of seed, or -1. */
ssize_t tk_pattern_check(const void *buf, size_t len, uint64_t seed,
                         uint64_t base);

/* Index of the first differing byte of a and b, or -1. */
ssize_t tk_mem_diff(const void *a, const void *b, size_t len);
/* Index of the first byte of buf that is not c, or -1. */
ssize_t tk_mem_find_not(const void *buf, int c, size_t len);

#endif /* MF_TK_PATTERN_H */
