/*
 * Placement of the meta state at scale: 1024 ranks on 100 hosts of
 * uneven sizes, puts of 1 to 8 replicas, removes, ranks leaving and
 * joining again.  Every placement is compared with a model of the policy
 * kept by the test (distinct hosts first, then any; the most free bytes
 * first, the lowest rank on a tie), and the state checks itself (its
 * placement heaps among what it checks) as it goes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_log.h"

#include "cache/meta/meta_state.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG        4096ull
#define NRANKS    1024u
#define NHOSTS    100u
#define MAX_SEG   (256 * PG)
#define HOST_BASE 0x100000000ull
#define STEPS     6000u
#define MAX_KEYS  STEPS

typedef struct place_model {
    mmc_state_t *st;
    mmc_state_owner_t *client;
    mmc_state_owner_t *owners[NRANKS];
    uint64_t free[NRANKS]; /* bytes, as the test counts them */
    uint32_t host[NRANKS];
    bool member[NRANKS];
    /* committed keys and where their replicas are */
    uint32_t nrep[MAX_KEYS];
    uint32_t ranks[MAX_KEYS][MMC_MAX_REPLICAS];
    bool live[MAX_KEYS];
    uint32_t placed, refused;
    uint64_t rand;
} place_model_t;

static tk_log_t place_log;

static uint32_t place_rand(place_model_t *m)
{
    m->rand ^= m->rand << 13;
    m->rand ^= m->rand >> 7;
    m->rand ^= m->rand << 17;
    return (uint32_t)(m->rand >> 11);
}

static void place_join(place_model_t *m, uint32_t rank)
{
    mmc_seg_desc_t seg = {
        .media = MMC_MEDIA_DRAM,
        .gva = HOST_BASE + rank * MAX_SEG,
        .size = (4 + place_rand(m) % 16) * PG,
    };
    char host[16];
    uint32_t host_idx;

    assert_int_equal(mmc_state_owner_create(m->st, &m->owners[rank]), MF_OK);
    snprintf(host, sizeof(host), "h%u", m->host[rank]);
    assert_int_equal(mmc_state_register(m->st, m->owners[rank], rank, host,
                                        "place", 1, &seg, &host_idx),
                     MF_OK);
    m->free[rank] = seg.size;
    m->member[rank] = true;
}

/* The ranks the policy picks for want replicas of len bytes, from a pure
 * client (no own rank, no preferred ones); returns how many. */
static uint32_t place_expect(const place_model_t *m, uint32_t want,
                             uint64_t len, uint32_t *out)
{
    bool taken[NRANKS] = {false};
    uint32_t n = 0;

    for (int phase = 0; phase < 2; phase++) {
        while (n < want) {
            uint32_t best = UINT32_MAX;

            for (uint32_t r = 0; r < NRANKS; r++) {
                bool host_used = false;

                if (!m->member[r] || taken[r] || m->free[r] < len) {
                    continue;
                }
                for (uint32_t i = 0; phase == 0 && i < n; i++) {
                    host_used |= m->host[out[i]] == m->host[r];
                }
                if (!host_used &&
                    (best == UINT32_MAX || m->free[r] > m->free[best])) {
                    best = r; /* ties: the lower rank, met first */
                }
            }
            if (best == UINT32_MAX) {
                break;
            }
            taken[best] = true;
            out[n++] = best;
        }
    }
    return n;
}

static void place_put(place_model_t *m, uint32_t k)
{
    mmc_state_put_opts_t opts = {.replicas = 1 + place_rand(m) % 8};
    uint32_t expect[MMC_MAX_REPLICAS], n;
    mmc_obj_result_t res;
    mmc_status_t s;
    char key[32];

    snprintf(key, sizeof(key), "place-%u", k);
    n = place_expect(m, opts.replicas, PG, expect);
    s = mmc_state_put_alloc(m->st, m->client, key, strlen(key), PG, &opts, 1000,
                            &res);
    if (n < opts.replicas) {
        assert_int_not_equal(s, MMC_OK); /* too few fit: nothing placed */
        m->refused++;
        return;
    }
    assert_int_equal(s, MMC_OK);
    assert_int_equal(res.nrep, n);
    for (uint32_t i = 0; i < n; i++) {
        if (res.reps[i].rank != expect[i]) {
            fail_msg("put %u replica %u: rank %" PRIu32 " (free %" PRIu64
                     "), the policy picks %u (free %" PRIu64 ")",
                     k, i, res.reps[i].rank, m->free[res.reps[i].rank],
                     expect[i], m->free[expect[i]]);
        }
        m->free[expect[i]] -= PG;
        m->ranks[k][i] = expect[i];
    }
    m->nrep[k] = n;
    m->live[k] = true;
    m->placed++;
    assert_int_equal(mmc_state_put_commit(m->st, m->client, res.id, MMC_OK),
                     MMC_OK);
}

static void place_remove(place_model_t *m, uint32_t k)
{
    char key[32];

    snprintf(key, sizeof(key), "place-%u", k);
    assert_int_equal(mmc_state_remove(m->st, key, strlen(key)), MMC_OK);
    for (uint32_t i = 0; i < m->nrep[k]; i++) {
        m->free[m->ranks[k][i]] += PG;
    }
    m->live[k] = false;
}

/* A rank leaves: its replicas go with its segment. */
static void place_leave(place_model_t *m, uint32_t rank)
{
    mmc_state_owner_destroy(m->st, m->owners[rank]);
    m->owners[rank] = NULL;
    m->member[rank] = false;
    for (uint32_t k = 0; k < MAX_KEYS; k++) {
        uint32_t j = 0;

        if (!m->live[k]) {
            continue;
        }
        for (uint32_t i = 0; i < m->nrep[k]; i++) {
            if (m->ranks[k][i] != rank) {
                m->ranks[k][j++] = m->ranks[k][i];
            }
        }
        m->nrep[k] = j;
        m->live[k] = j > 0; /* gone with its last replica */
    }
}

static void test_place_scale(void **state)
{
    mmc_state_params_t p = {
        .max_ranks = NRANKS,
        .max_segment_size = MAX_SEG,
        .host_base = HOST_BASE,
        .alloc_align = PG,
        .lease_ms = 100,
        .put_timeout_ms = 1000,
    };
    place_model_t *m = calloc(1, sizeof(*m));
    uint32_t nkeys = 0;

    assert_non_null(m);
    m->rand = 0x9e3779b97f4a7c15ull;
    assert_int_equal(mmc_state_create(&p, &m->st), MF_OK);
    assert_int_equal(mmc_state_owner_create(m->st, &m->client), MF_OK);
    for (uint32_t r = 0; r < NRANKS; r++) {
        /* uneven hosts: 1 to 20 ranks each */
        m->host[r] = (r * r + 7 * r) % NHOSTS;
        place_join(m, r);
    }
    for (uint32_t step = 0; step < STEPS; step++) {
        uint32_t roll = place_rand(m) % 100;

        if (roll < 70 || nkeys == 0) {
            place_put(m, nkeys++);
        } else if (roll < 97) {
            uint32_t k = place_rand(m) % nkeys;

            if (m->live[k]) {
                place_remove(m, k);
            }
        } else {
            uint32_t r = place_rand(m) % NRANKS;

            if (m->member[r]) {
                place_leave(m, r);
            } else {
                place_join(m, r);
            }
        }
        if (step % 500 == 0) {
            assert_int_equal(mmc_state_check(m->st), MF_OK);
        }
    }
    assert_int_equal(mmc_state_check(m->st), MF_OK);
    /* the run did what it is for: many placements, some of them refused */
    assert_true(m->placed > STEPS / 4);
    assert_true(m->refused > 0);
    print_message("%u puts placed, %u refused (too few fit)\n", m->placed,
                  m->refused);
    mmc_state_destroy(m->st);
    free(m);
}

static int place_setup(void **state)
{
    tk_log_start(&place_log, 0);
    mf_log_set_level(MF_LOG_WARN);
    return 0;
}

static int place_teardown(void **state)
{
    tk_log_stop(&place_log);
    return tk_log_check_clean(&place_log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_place_scale, place_setup,
                                        place_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
