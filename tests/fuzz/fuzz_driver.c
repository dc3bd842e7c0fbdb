/*
 * Stand-alone driver for the fuzz targets, used when the compiler has no
 * libFuzzer: it runs the target over the seed files given on the command
 * line and over a fixed number of deterministic mutations of them (bit
 * flips, truncations, random bytes, length fields set to extremes), so
 * every decoder meets hostile input in every test run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 4096
#define FUZZ_ROUNDS    20000

static uint64_t fuzz_rng = 0x9e3779b97f4a7c15ull;

static uint64_t fuzz_next(void)
{
    fuzz_rng ^= fuzz_rng << 13;
    fuzz_rng ^= fuzz_rng >> 7;
    fuzz_rng ^= fuzz_rng << 17;
    return fuzz_rng;
}

static size_t fuzz_read(const char *path, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        perror(path);
        exit(2);
    }
    n = fread(buf, 1, FUZZ_MAX_INPUT, f);
    fclose(f);
    return n;
}

static size_t fuzz_mutate(uint8_t *buf, size_t len)
{
    size_t pos;

    switch (fuzz_next() % 5) {
    case 0: /* flip a bit */
        if (len > 0) {
            buf[fuzz_next() % len] ^= (uint8_t)(1u << (fuzz_next() % 8));
        }
        return len;
    case 1: /* truncate */
        return len > 0 ? fuzz_next() % len : 0;
    case 2: /* a 32-bit field set to an extreme */
        if (len >= 4) {
            static const uint32_t extremes[] = {0, 1, 0x7fffffff, 0xffffffff,
                                                0x80000000};
            uint32_t v = extremes[fuzz_next() % 5];
            pos = fuzz_next() % (len - 3);
            memcpy(buf + pos, &v, 4);
        }
        return len;
    case 3: /* append random bytes */
        while (len < FUZZ_MAX_INPUT && fuzz_next() % 8 != 0) {
            buf[len++] = (uint8_t)fuzz_next();
        }
        return len;
    default: /* overwrite a byte */
        if (len > 0) {
            buf[fuzz_next() % len] = (uint8_t)fuzz_next();
        }
        return len;
    }
}

int main(int argc, char **argv)
{
    static uint8_t seeds[64][FUZZ_MAX_INPUT];
    static size_t seed_len[64];
    uint8_t buf[FUZZ_MAX_INPUT];
    int nseeds = 0;

    for (int i = 1; i < argc && nseeds < 64; i++) {
        seed_len[nseeds] = fuzz_read(argv[i], seeds[nseeds]);
        LLVMFuzzerTestOneInput(seeds[nseeds], seed_len[nseeds]);
        nseeds++;
    }
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = 0;
        if (nseeds > 0) {
            int s = (int)(fuzz_next() % (uint64_t)nseeds);
            len = seed_len[s];
            memcpy(buf, seeds[s], len);
        }
        for (int m = (int)(fuzz_next() % 4); m >= 0; m--) {
            len = fuzz_mutate(buf, len);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("%d seeds, %d mutated inputs: no crash\n", nseeds, FUZZ_ROUNDS);
    return 0;
}
