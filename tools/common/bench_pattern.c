/*
 * The benchmarks' byte pattern (see bench_pattern.h).
 *
 * Invariants: byte k of an object is byte k % 8 (little end first) of the
 * 64-bit word k / 8, so the aligned middle of a slice is filled and
 * checked a word at a time and only its ends byte by byte.
 */
#include "bench_pattern.h"

#include <string.h>

static inline uint64_t bench_pattern_word(uint64_t seed, uint64_t k)
{
    return ((k ^ (seed << 40)) + seed) * 0x9e3779b97f4a7c15ull;
}

static inline uint8_t bench_pattern_byte(uint64_t seed, uint64_t pos)
{
    return (uint8_t)(bench_pattern_word(seed, pos / 8) >> (8 * (pos % 8)));
}

void bench_pattern_fill(uint8_t *p, size_t len, uint64_t seed, uint64_t base)
{
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        p[i] = bench_pattern_byte(seed, base + i);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = bench_pattern_word(seed, (base + i) / 8);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) {
        p[i] = bench_pattern_byte(seed, base + i);
    }
}

ssize_t bench_pattern_check(const uint8_t *p, size_t len, uint64_t seed,
                            uint64_t base)
{
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        if (p[i] != bench_pattern_byte(seed, base + i)) {
            return (ssize_t)i;
        }
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = bench_pattern_word(seed, (base + i) / 8);
        if (memcmp(p + i, &w, 8) != 0) {
            break;
        }
    }
    for (; i < len; i++) {
        if (p[i] != bench_pattern_byte(seed, base + i)) {
            return (ssize_t)i;
        }
    }
    return -1;
}
