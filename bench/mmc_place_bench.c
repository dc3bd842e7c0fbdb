/*
 * How placement in the meta state scales with the members: for each
 * number of ranks (8 ranks a host, one DRAM segment each), a batch of
 * PUT_ALLOCs of 8 replicas each, timed as the meta service runs them
 * (mmc_state_put_alloc, then the commits, not timed), and the same batch
 * with 1 replica.  Printed per rank count: the batch's time and the time
 * per put; the smallest rank count is the baseline of the ratio column,
 * so placement that grows as O(log n) keeps the ratio near 1.
 *
 * Run: ./build/bench/mmc-place-bench [keys per batch (16384)]
 *      [rank counts (64,256,1024,4096)]
 */
#include "cache/meta/meta_state.h"
#include "util/log.h"
#include "util/misc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG        4096ull
#define SEG_SIZE  (1ull << 30)
#define HOST_BASE 0x100000000ull
#define PER_HOST  8u

/* The time of one batch of keys puts of want replicas, in ns. */
static uint64_t place_batch(uint32_t ranks, uint32_t keys, uint32_t want)
{
    mmc_state_params_t p = {
        .max_ranks = ranks,
        .max_segment_size = SEG_SIZE,
        .host_base = HOST_BASE,
        .alloc_align = PG,
        .lease_ms = 1000,
        .put_timeout_ms = 600000,
    };
    mmc_state_put_opts_t opts = {.replicas = want};
    mmc_state_owner_t *client, *owner;
    mmc_obj_result_t *res;
    mmc_state_t *st;
    uint64_t t0, ns;
    char key[32];

    res = calloc(keys, sizeof(*res));
    if (res == NULL || mmc_state_create(&p, &st) != MF_OK ||
        mmc_state_owner_create(st, &client) != MF_OK) {
        fprintf(stderr, "mmc-place-bench: out of memory\n");
        exit(1);
    }
    for (uint32_t r = 0; r < ranks; r++) {
        mmc_seg_desc_t seg = {.media = MMC_MEDIA_DRAM,
                              .gva = HOST_BASE + r * SEG_SIZE,
                              .size = SEG_SIZE / 4};
        char host[16];
        uint32_t host_idx;

        snprintf(host, sizeof(host), "h%u", r / PER_HOST);
        if (mmc_state_owner_create(st, &owner) != MF_OK ||
            mmc_state_register(st, owner, r, host, "bench", 1, &seg,
                               &host_idx) != MF_OK) {
            fprintf(stderr, "mmc-place-bench: cannot register rank %u\n", r);
            exit(1);
        }
    }
    t0 = mf_time_ns();
    for (uint32_t k = 0; k < keys; k++) {
        snprintf(key, sizeof(key), "bench-%u", k);
        if (mmc_state_put_alloc(st, client, key, strlen(key), PG, &opts, 1000,
                                &res[k]) != MMC_OK) {
            fprintf(stderr, "mmc-place-bench: put %u refused\n", k);
            exit(1);
        }
    }
    ns = mf_time_ns() - t0;
    for (uint32_t k = 0; k < keys; k++) {
        (void)mmc_state_put_commit(st, client, res[k].id, MMC_OK);
    }
    mmc_state_destroy(st); /* the owners go with it */
    free(res);
    return ns;
}

int main(int argc, char **argv)
{
    uint32_t keys = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 16384;
    const char *list = argc > 2 ? argv[2] : "64,256,1024,4096";
    const uint32_t wants[2] = {8, 1};
    double base[2] = {0, 0};
    char *copy, *tok, *save = NULL;

    if (keys == 0) {
        fprintf(stderr, "usage: mmc-place-bench [keys] [rank counts]\n");
        return 2;
    }
    mf_log_set_level(MF_LOG_WARN);
    printf("# mmc-place-bench: a batch of %u PUT_ALLOCs of one 4 KiB object "
           "each, from a client without a rank, on ranks of %u per host "
           "(256 MiB DRAM each); ratio = us/put / the first row's\n",
           keys, PER_HOST);
    printf("%8s %9s %12s %10s %7s\n", "ranks", "replicas", "batch ms", "us/put",
           "ratio");
    copy = strdup(list);
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        uint32_t ranks = (uint32_t)strtoul(tok, NULL, 10);

        if (ranks < PER_HOST || ranks > 65536) {
            fprintf(stderr, "mmc-place-bench: %s ranks: 8..65536\n", tok);
            return 2;
        }
        for (int w = 0; w < 2; w++) {
            uint64_t ns = place_batch(ranks, keys, wants[w]);
            double us = (double)ns / 1e3 / keys;

            if (base[w] == 0) {
                base[w] = us;
            }
            printf("%8u %9u %12.1f %10.2f %7.2f\n", ranks, wants[w],
                   (double)ns / 1e6, us, us / base[w]);
        }
    }
    free(copy);
    return 0;
}
