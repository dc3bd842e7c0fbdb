/*
 * The byte pattern the benchmarks fill buffers with and check copies
 * against (mf-bench, mmc-bench).
 *
 * A byte's value depends on the seed and on its absolute position in the
 * object, so bytes left over from an earlier copy (another seed), of
 * another object, or of the same object shifted never match.  Filling or
 * checking any slice of an object, at any alignment, gives the same bytes
 * as doing the whole object at once.
 */
#ifndef BENCH_PATTERN_H
#define BENCH_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fills len bytes at p with the pattern of seed, p[0] being byte base of
 * the object. */
void bench_pattern_fill(uint8_t *p, size_t len, uint64_t seed, uint64_t base);

/* Index of the first of the len bytes at p (p[0] being byte base of the
 * object) that differs from the pattern of seed, or -1. */
ssize_t bench_pattern_check(const uint8_t *p, size_t len, uint64_t seed,
                            uint64_t base);

#endif /* BENCH_PATTERN_H */
