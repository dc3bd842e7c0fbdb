/*
 * The streaming calls of mmc.h between two client processes of one
 * mmc-meta, as a layer-wise KV writer and reader use them:
 *
 *   writer: allocates a batch of objects (two replicas each), which stay
 *           invisible and refuse a second allocation and a lease (busy)
 *           until finished; copies each layer with mmc_copy_batch, into
 *           both replicas by name for two objects and into the first
 *           alone for the others (the copy writes both); finishes them,
 *           one aborted on purpose;
 *   reader: leases them with a duration, reads every layer straight from
 *           the replicas' GVAs, checks every byte (and mmc_get agrees),
 *           removes one while leased (its bytes stay readable until the
 *           release), releases, and a second release finds nothing;
 *   then remove-all empties the pool, and bad arguments are refused; a
 *   get's figures (mmc_call_stats) and trace points are those of its
 *   requests and copy.
 */
#include "it_mmc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define MB      (1ull << 20)
#define NKEYS   10
#define LAYERS  8
#define LA      (128u << 10) /* the K part of a layer */
#define LB      (16u << 10)  /* the V part */
#define OBJ     ((size_t)LAYERS * (LA + LB))
#define SEED(i) (900u + (i))

static const char *st_keys[NKEYS] = {"s/0", "s/1", "s/2", "s/3", "s/4",
                                     "s/5", "s/6", "s/7", "s/8", "s/9"};

/* Byte off of object i's layers, as a writer lays them out: layer l's K
 * part then its V part. */
static uint64_t st_layer_off(int l, bool v)
{
    return (uint64_t)l * (LA + LB) + (v ? LA : 0);
}

static int st_writer(int index, void *arg)
{
    mmc_obj_info_t infos[NKEYS];
    mmc_status_t res[NKEYS], written[NKEYS];
    mf_copy_piece_t pieces[NKEYS * 2 * 2];
    mf_status_t pres[NKEYS * 2 * 2];
    mmc_put_opts_t opts;
    size_t sizes[NKEYS];
    uint8_t *src = malloc(NKEYS * OBJ);
    mmc_t *mmc = NULL;
    uint64_t removed = 0;
    int ret = 1;

    (void)index;
    (void)arg;
    tk_role_set("writer");
    TK_CHECK_GOTO(src != NULL, "malloc");
    IT_MMC_ST(it_mmc_open(128 * MB, NULL, &mmc), MMC_OK);
    TK_CHECK_GOTO(it_mmc_barrier(0, 2) == 0, "barrier 0");
    for (int i = 0; i < NKEYS; i++) {
        sizes[i] = OBJ;
        tk_pattern_fill(src + i * OBJ, OBJ, SEED(i), 0);
    }
    mmc_put_opts_init(&opts);
    opts.replicas = 2;
    mmc_obj_info_init(infos, NKEYS);
    IT_MMC_ST(mmc_alloc_batch(mmc, st_keys, sizes, NKEYS, &opts, infos, res),
              MMC_OK);
    for (int i = 0; i < NKEYS; i++) {
        TK_CHECK_GOTO(infos[i].size == OBJ && infos[i].nreplicas == 2 &&
                          infos[i].gvas[0] != 0 && infos[i].gvas[1] != 0 &&
                          infos[i].ranks[0] != infos[i].ranks[1],
                      "alloc info of %d", i);
    }
    /* not finished: invisible, busy, not allocated twice */
    IT_MMC_ST(mmc_exist(mmc, st_keys[0]), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_alloc_batch(mmc, st_keys, sizes, 2, &opts, infos + 8, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MMC_ERR_BUSY && res[1] == MMC_ERR_BUSY, "busy");
    {
        mmc_obj_info_t li;

        mmc_obj_info_init(&li, 1);
        IT_MMC_ST(mmc_lease_batch(mmc, st_keys, 1, 1000, &li, res),
                  MMC_ERR_PARTIAL);
        TK_CHECK_GOTO(res[0] == MMC_ERR_BUSY, "lease of a pending key: %s",
                      mmc_status_name(res[0]));
    }
    /* layer by layer: K and V of every object to both replicas */
    for (int l = 0; l < LAYERS; l++) {
        size_t n = 0;

        for (int i = 0; i < NKEYS; i++) {
            for (int v = 0; v < 2; v++) {
                uint64_t off = st_layer_off(l, v);

                /* objects 0 and 1 name both replicas; the others only
                 * the first, which the copy writes to both */
                for (int r = 0; r < (i < 2 ? 2 : 1); r++) {
                    pieces[n++] = (mf_copy_piece_t){
                        (uint64_t)(uintptr_t)(src + i * OBJ + off),
                        infos[i].gvas[r] + off, v ? LB : LA};
                }
            }
        }
        IT_MMC_ST(mmc_copy_batch(mmc, pieces, n, MF_COPY_LH2GH, pres), MMC_OK);
        for (size_t k = 0; k < n; k++) {
            TK_CHECK_GOTO(pres[k] == MF_OK, "piece %zu", k);
        }
    }
    for (int i = 0; i < NKEYS; i++) {
        written[i] = i == NKEYS - 1 ? MF_ERR_IO : MMC_OK;
    }
    IT_MMC_ST(mmc_write_finish_batch(mmc, st_keys, written, NKEYS, res),
              MMC_ERR_PARTIAL);
    for (int i = 0; i < NKEYS - 1; i++) {
        TK_CHECK_GOTO(res[i] == MMC_OK, "finish %d: %s", i,
                      mmc_status_name(res[i]));
    }
    TK_CHECK_GOTO(res[NKEYS - 1] == MF_ERR_IO, "aborted: %s",
                  mmc_status_name(res[NKEYS - 1]));
    IT_MMC_ST(mmc_write_finish_batch(mmc, st_keys, NULL, 1, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MMC_ERR_NOT_FOUND, "finish twice");
    IT_MMC_ST(mmc_exist_batch(mmc, st_keys, NKEYS, res), MMC_OK);
    for (int i = 0; i < NKEYS; i++) {
        TK_CHECK_GOTO(res[i] == (i == NKEYS - 1 ? MMC_ERR_NOT_FOUND : MMC_OK),
                      "exist %d", i);
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, 2) == 0, "barrier 1");
    TK_CHECK_GOTO(it_mmc_barrier(2, 2) == 0, "barrier 2"); /* reader done */

    IT_MMC_ST(mmc_remove_all(mmc, &removed), MMC_OK);
    TK_CHECK_GOTO(removed == NKEYS - 2, "removed %llu",
                  (unsigned long long)removed); /* one was removed already */
    IT_MMC_ST(mmc_exist_batch(mmc, st_keys, NKEYS, res), MMC_OK);
    for (int i = 0; i < NKEYS; i++) {
        TK_CHECK_GOTO(res[i] == MMC_ERR_NOT_FOUND, "exist %d after all", i);
    }
    /* an aborted key can be allocated again, and allocating needs sizes */
    IT_MMC_ST(
        mmc_alloc_batch(mmc, st_keys + NKEYS - 1, sizes, 1, NULL, infos, res),
        MMC_OK);
    IT_MMC_ST(mmc_write_finish_batch(mmc, st_keys + NKEYS - 1, NULL, 1, res),
              MMC_OK);
    sizes[0] = 0;
    IT_MMC_ST(mmc_alloc_batch(mmc, st_keys, sizes, 1, NULL, infos, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MF_ERR_INVALID, "size 0");
    IT_MMC_ST(mmc_alloc_batch(mmc, st_keys, NULL, 1, NULL, infos, res),
              MF_ERR_INVALID);
    IT_MMC_ST(mmc_alloc_batch(mmc, st_keys, sizes, 1, NULL, NULL, res),
              MF_ERR_INVALID);
    IT_MMC_ST(mmc_lease_batch(mmc, st_keys, 1, 0, infos, res), MF_ERR_INVALID);
    IT_MMC_ST(mmc_copy_batch(NULL, pieces, 1, MF_COPY_LH2GH, pres),
              MF_ERR_INVALID);
    ret = 0;
fail:
    mmc_destroy(mmc);
    free(src);
    return ret;
}

static int st_reader(int index, void *arg)
{
    mmc_obj_info_t infos[NKEYS];
    mmc_status_t res[NKEYS];
    mf_copy_piece_t pieces[2 * LAYERS];
    uint8_t *dst = malloc(NKEYS * OBJ), *whole = malloc(OBJ);
    mmc_t *mmc = NULL;
    int ret = 1;

    (void)index;
    (void)arg;
    tk_role_set("reader");
    TK_CHECK_GOTO(dst != NULL && whole != NULL, "malloc");
    IT_MMC_ST(it_mmc_open(128 * MB, NULL, &mmc), MMC_OK);
    TK_CHECK_GOTO(it_mmc_barrier(0, 2) == 0, "barrier 0");
    TK_CHECK_GOTO(it_mmc_barrier(1, 2) == 0, "barrier 1");

    mmc_obj_info_init(infos, NKEYS);
    IT_MMC_ST(mmc_lease_batch(mmc, st_keys, NKEYS, 300000, infos, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[NKEYS - 1] == MMC_ERR_NOT_FOUND, "lease of the aborted");
    for (int i = 0; i < NKEYS - 1; i++) {
        TK_CHECK_GOTO(res[i] == MMC_OK && infos[i].size == OBJ &&
                          infos[i].nreplicas == 2,
                      "lease %d: %s", i, mmc_status_name(res[i]));
    }
    /* layer-wise reads from alternating replicas */
    for (int i = 0; i < NKEYS - 1; i++) {
        size_t n = 0;

        for (int l = 0; l < LAYERS; l++) {
            for (int v = 0; v < 2; v++) {
                uint64_t off = st_layer_off(l, v);

                pieces[n++] = (mf_copy_piece_t){
                    infos[i].gvas[(l + v) % 2] + off,
                    (uint64_t)(uintptr_t)(dst + i * OBJ + off), v ? LB : LA};
            }
        }
        IT_MMC_ST(mmc_copy_batch(mmc, pieces, n, MF_COPY_GH2LH, NULL), MMC_OK);
        TK_CHECK_GOTO(tk_pattern_check(dst + i * OBJ, OBJ, SEED(i), 0) < 0,
                      "bytes of %d", i);
        IT_MMC_ST(mmc_get(mmc, st_keys[i], whole, OBJ), MMC_OK);
        TK_CHECK_GOTO(memcmp(whole, dst + i * OBJ, OBJ) == 0, "get of %d", i);
    }
    /* what a get cost: GET and RELEASE, and its copy; the tracer's
     * points for the same */
    {
        mmc_call_stats_t cs = {.size = sizeof(cs)};
        mf_trace_stat_t ts[64];
        size_t nts;
        bool rpc = false, get = false, held = false;
        uint64_t get_ns = 0, held_ns = 0;

        mmc_trace_enable(true);
        IT_MMC_ST(mmc_get(mmc, st_keys[1], whole, OBJ), MMC_OK);
        mmc_call_stats(&cs);
        TK_CHECK_GOTO(cs.meta_rpcs == 2 && cs.meta_ns > 0 && cs.data_ns > 0 &&
                          cs.total_ns >= cs.meta_ns + cs.data_ns,
                      "call stats: %u rpcs, meta %llu, data %llu, total %llu",
                      cs.meta_rpcs, (unsigned long long)cs.meta_ns,
                      (unsigned long long)cs.data_ns,
                      (unsigned long long)cs.total_ns);
        nts = mmc_trace_get(ts, 64);
        for (size_t i = 0; i < nts && i < 64; i++) {
            rpc |= strcmp(ts[i].name, "mmc.rpc.GET") == 0 && ts[i].count == 1;
            if (strcmp(ts[i].name, "mmc.get") == 0 && ts[i].count == 1) {
                get = true;
                get_ns = ts[i].total_ns;
            }
            if (strcmp(ts[i].name, "mmc.lease_held") == 0 && ts[i].count == 1) {
                held = true;
                held_ns = ts[i].total_ns;
            }
        }
        /* the lease is held within the call */
        TK_CHECK_GOTO(rpc && get && held && held_ns > 0 && held_ns <= get_ns,
                      "trace points of the get (lease held %llu of %llu ns)",
                      (unsigned long long)held_ns, (unsigned long long)get_ns);
        mmc_trace_enable(false);
        mmc_trace_clear();
    }
    /* removed while leased: its bytes stay until the release */
    IT_MMC_ST(mmc_remove(mmc, st_keys[0]), MMC_OK);
    memset(dst, 0, OBJ);
    pieces[0] =
        (mf_copy_piece_t){infos[0].gvas[1], (uint64_t)(uintptr_t)dst, OBJ};
    IT_MMC_ST(mmc_copy_batch(mmc, pieces, 1, MF_COPY_GH2LH, NULL), MMC_OK);
    TK_CHECK_GOTO(tk_pattern_check(dst, OBJ, SEED(0), 0) < 0, "leased bytes");

    IT_MMC_ST(mmc_lease_release_batch(mmc, st_keys, NKEYS, res),
              MMC_ERR_PARTIAL);
    for (int i = 0; i < NKEYS; i++) {
        TK_CHECK_GOTO(res[i] == (i == NKEYS - 1 ? MMC_ERR_NOT_FOUND : MMC_OK),
                      "release %d: %s", i, mmc_status_name(res[i]));
    }
    /* two leases on one key go in one release */
    IT_MMC_ST(mmc_lease_batch(mmc, st_keys + 1, 1, 5000, infos, res), MMC_OK);
    IT_MMC_ST(mmc_lease_batch(mmc, st_keys + 1, 1, 6000, infos, res), MMC_OK);
    IT_MMC_ST(mmc_lease_release_batch(mmc, st_keys + 1, 1, res), MMC_OK);
    IT_MMC_ST(mmc_lease_release_batch(mmc, st_keys + 1, 1, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MMC_ERR_NOT_FOUND, "released twice");
    TK_CHECK_GOTO(it_mmc_barrier(2, 2) == 0, "barrier 2");
    ret = 0;
fail:
    mmc_destroy(mmc);
    free(dst);
    free(whole);
    return ret;
}

static int st_child(int index, void *arg)
{
    return index == 0 ? st_writer(index, arg) : st_reader(index, arg);
}

static void test_stream(void **state)
{
    pid_t pids[2];

    (void)state;
    it_mmc_shared_reset();
    assert_int_equal(tk_proc_spawn_n(2, st_child, NULL, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, 2, 2 * IT_MMC_WAIT_MS, NULL), 0);
}

static int st_setup(void **state)
{
    (void)state;
    if (it_mmc_shared_init() != 0 ||
        it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", NULL) != 0) {
        return -1;
    }
    return 0;
}

static int st_teardown(void **state)
{
    (void)state;
    return tk_meta_stop(&it_mmc_sh->meta, SIGTERM) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream),
    };

    return tk_group_run(tests, st_setup, st_teardown);
}
