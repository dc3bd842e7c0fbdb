/*
 * The PRNG and the byte pattern of tests and benchmarks (see
 * tk_pattern.h).
 *
 * Invariants: byte k of an object is byte k % 8 (little end first) of the
 * 64-bit word k / 8, splitmix(splitmix(seed) ^ (k / 8)), so the aligned
 * middle of a slice is filled and checked a word at a time, with the
 * seed's mix computed once per call, and only its ends byte by byte.
 */
#include "tk_pattern.h"

#include <string.h>

static uint64_t tk_splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void tk_rng_seed(tk_rng_t *rng, uint64_t seed)
{
    rng->state = seed;
}

uint64_t tk_rng_next(tk_rng_t *rng)
{
    rng->state += 0x9e3779b97f4a7c15ull;
    return tk_splitmix(rng->state);
}

uint64_t tk_rng_range(tk_rng_t *rng, uint64_t lo, uint64_t hi)
{
    uint64_t span;

    if (hi <= lo) {
        return lo;
    }
    span = hi - lo + 1;
    if (span == 0) { /* the whole 64-bit range */
        return tk_rng_next(rng);
    }
    return lo + tk_rng_next(rng) % span;
}

static unsigned tk_log2(uint64_t v)
{
    return v ? 63u - (unsigned)__builtin_clzll(v) : 0;
}

uint64_t tk_rng_size(tk_rng_t *rng, uint64_t lo, uint64_t hi)
{
    unsigned bits;
    uint64_t a, b;

    if (lo == 0) {
        lo = 1;
    }
    if (hi <= lo) {
        return lo;
    }
    bits = (unsigned)tk_rng_range(rng, tk_log2(lo), tk_log2(hi));
    a = 1ull << bits;
    b = (bits >= 63) ? UINT64_MAX : (2ull << bits) - 1;
    if (a < lo) {
        a = lo;
    }
    if (b > hi) {
        b = hi;
    }
    return tk_rng_range(rng, a, b);
}

/* mix is tk_splitmix(seed). */
static inline uint64_t tk_pattern_word(uint64_t mix, uint64_t k)
{
    return tk_splitmix(mix ^ k);
}

static inline uint8_t tk_pattern_byte(uint64_t mix, uint64_t pos)
{
    return (uint8_t)(tk_pattern_word(mix, pos / 8) >> (8 * (pos % 8)));
}

void tk_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t base)
{
    uint64_t mix = tk_splitmix(seed);
    uint8_t *p = buf;
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        p[i] = tk_pattern_byte(mix, base + i);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = tk_pattern_word(mix, (base + i) / 8);
        memcpy(p + i, &w, 8); /* little endian: byte j is bits 8j.. */
    }
    for (; i < len; i++) {
        p[i] = tk_pattern_byte(mix, base + i);
    }
}

ssize_t tk_pattern_check(const void *buf, size_t len, uint64_t seed,
                         uint64_t base)
{
    uint64_t mix = tk_splitmix(seed);
    const uint8_t *p = buf;
    size_t i = 0;

    for (; i < len && (base + i) % 8 != 0; i++) {
        if (p[i] != tk_pattern_byte(mix, base + i)) {
            return (ssize_t)i;
        }
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = tk_pattern_word(mix, (base + i) / 8);
        if (memcmp(p + i, &w, 8) != 0) {
            break;
        }
    }
    for (; i < len; i++) {
        if (p[i] != tk_pattern_byte(mix, base + i)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

ssize_t tk_mem_diff(const void *a, const void *b, size_t len)
{
    const uint8_t *pa = a, *pb = b;
    size_t i;

    if (memcmp(a, b, len) == 0) {
        return -1;
    }
    for (i = 0; i < len && pa[i] == pb[i]; i++) {
    }
    return (ssize_t)i;
}

ssize_t tk_mem_find_not(const void *buf, int c, size_t len)
{
    const uint8_t *p = buf;
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] != (uint8_t)c) {
            return (ssize_t)i;
        }
    }
    return -1;
}
