/*
 * Upstream's mmcc_* C client (include/compat/mmc_client.h) against
 * mmc-meta, written as an upstream program is: every call with upstream's
 * buffers, options and codes (MMC_UNMATCHED_KEY for a missing key,
 * MMC_DUPLICATED_OBJECT for a second put, MMC_UNMATCHED_STATE for a lease
 * on an object being written), the batch forms, the streaming calls
 * (malloc, copy into every replica, write finish, leases, copy back,
 * remove all), calls before init, a second init, and mmcc_status.
 */
#include "it_mmc.h"

#include <compat/mmc_client.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define KEYS 4
#define OBJ  (256u * 1024 + 3)

static const char *mc_keys[KEYS] = {"c/0", "c/1", "c/2", "c/3"};

#define MC_EQ(_expr, _want)                                                    \
    do {                                                                       \
        int32_t _got = (_expr);                                                \
        TK_CHECK_GOTO(_got == (_want), "%s: %d, expected %d", #_expr, _got,    \
                      (int)(_want));                                           \
    } while (0)

static int mc_child(int index, void *arg)
{
    mmc_client_config_t cfg;
    mmc_put_options opts;
    mmc_buffer bufs[KEYS];
    mmc_data_info infos[KEYS];
    int32_t res[KEYS];
    uint64_t gvas[KEYS];
    size_t sizes[KEYS];
    void *ptrs[KEYS];
    uint32_t rank = UINT32_MAX;
    uint8_t *src = malloc(KEYS * OBJ), *dst = malloc(KEYS * OBJ);
    int ret = 1;

    (void)index;
    (void)arg;
    TK_CHECK_GOTO(src != NULL && dst != NULL, "malloc");
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.discoveryURL, sizeof(cfg.discoveryURL), "%s",
             it_mmc_sh->meta.url);
    cfg.timeOut = 30;
    cfg.logLevel = 2;
    memset(&opts, 0, sizeof(opts));
    opts.mediaType = MEDIA_DRAM;
    opts.replicaNum = 1;
    opts.preferredLocalServiceIDs[0] = -1;

    /* before init */
    MC_EQ(mmcc_exist("c/0", 0), MMC_CLIENT_NOT_INIT);
    MC_EQ(mmcc_init(NULL), MMC_INVALID_PARAM);
    cfg.tlsConfig.tlsEnable = true;
    MC_EQ(mmcc_init(&cfg), MMC_INVALID_PARAM);
    cfg.tlsConfig.tlsEnable = false;
    TK_CHECK_GOTO(setenv("MMC_DRAM_SIZE", "64M", 1) == 0, "setenv");
    MC_EQ(mmcc_init(&cfg), MMC_OK);
    MC_EQ(mmcc_init(&cfg), MMC_REPEAT_CALL);
    MC_EQ(mmcc_local_service_id(&rank), MMC_OK);
    TK_CHECK_GOTO(rank != UINT32_MAX, "rank");
    MC_EQ(mmcc_register_buffer((uint64_t)(uintptr_t)src, KEYS * OBJ), MMC_OK);

    /* single calls */
    tk_pattern_fill(src, KEYS * OBJ, 61, 0);
    bufs[0] = (mmc_buffer){(uint64_t)(uintptr_t)src, MEDIA_DRAM, 5, OBJ};
    MC_EQ(mmcc_exist("c/0", 0), MMC_UNMATCHED_KEY);
    MC_EQ(mmcc_put("c/0", &bufs[0], opts, 0), MMC_OK);
    MC_EQ(mmcc_put("c/0", &bufs[0], opts, 0), MMC_DUPLICATED_OBJECT);
    MC_EQ(mmcc_exist("c/0", 0), MMC_OK);
    bufs[1] = (mmc_buffer){(uint64_t)(uintptr_t)dst, MEDIA_DRAM, 0, OBJ};
    MC_EQ(mmcc_get("c/0", &bufs[1], 0), MMC_OK);
    TK_CHECK_GOTO(memcmp(dst, src + 5, OBJ) == 0, "get bytes");
    MC_EQ(mmcc_query("c/0", &infos[0], 0), MMC_OK);
    TK_CHECK_GOTO(infos[0].valid && infos[0].size == OBJ &&
                      infos[0].numBlobs == 1 && infos[0].ranks[0] == rank &&
                      infos[0].types[0] == MEDIA_DRAM,
                  "query");
    MC_EQ(mmcc_query("c/none", &infos[0], 0), MMC_OK);
    TK_CHECK_GOTO(!infos[0].valid, "query of a missing key");
    bufs[1].len = OBJ - 1;
    MC_EQ(mmcc_get("c/0", &bufs[1], 0), MMC_INVALID_PARAM); /* size */
    MC_EQ(mmcc_remove("c/0", 0), MMC_OK);
    MC_EQ(mmcc_remove("c/0", 0), MMC_UNMATCHED_KEY);
    opts.mediaType = 7;
    MC_EQ(mmcc_put("c/0", &bufs[0], opts, 0), MMC_INVALID_PARAM);
    opts.mediaType = MEDIA_DRAM;

    /* batches */
    for (int i = 0; i < KEYS; i++) {
        bufs[i] = (mmc_buffer){(uint64_t)(uintptr_t)src, MEDIA_DRAM,
                               (uint64_t)i * OBJ, OBJ};
    }
    MC_EQ(mmcc_batch_put(mc_keys, KEYS, bufs, &opts, 0, res), MMC_OK);
    for (int i = 0; i < KEYS; i++) {
        MC_EQ(res[i], MMC_OK);
        bufs[i].addr = (uint64_t)(uintptr_t)dst;
    }
    memset(dst, 0, KEYS * OBJ);
    MC_EQ(mmcc_batch_get(mc_keys, KEYS, bufs, 0, res), MMC_OK);
    TK_CHECK_GOTO(memcmp(dst, src, KEYS * OBJ) == 0, "batch get bytes");
    MC_EQ(mmcc_batch_exist(mc_keys, KEYS, res, 0), MMC_OK);
    MC_EQ(res[3], MMC_OK);
    MC_EQ(mmcc_batch_query(mc_keys, KEYS, infos, 0), MMC_OK);
    TK_CHECK_GOTO(infos[2].valid && infos[2].size == OBJ, "batch query");
    MC_EQ(mmcc_batch_remove(mc_keys, 2, res, 0), MMC_OK);
    MC_EQ(mmcc_batch_exist(mc_keys, KEYS, res, 0), MMC_OK);
    TK_CHECK_GOTO(res[0] == MMC_UNMATCHED_KEY && res[1] == MMC_UNMATCHED_KEY &&
                      res[2] == MMC_OK,
                  "exist after remove: %d %d %d", res[0], res[1], res[2]);

    /* streaming: malloc, copy, lease refused while written, finish */
    {
        const char *skeys[2] = {"s/0", "s/1"};
        int32_t written[2] = {0, 0};

        sizes[0] = sizes[1] = OBJ;
        MC_EQ(mmcc_batch_malloc(skeys, 2, sizes, opts, gvas), MMC_OK);
        TK_CHECK_GOTO(gvas[0] != 0 && gvas[1] != 0, "malloc gvas");
        MC_EQ(mmcc_batch_add_lease(skeys, 1, 0, res), MMC_OK);
        MC_EQ(res[0], MMC_UNMATCHED_STATE);
        ptrs[0] = src;
        ptrs[1] = src + OBJ;
        MC_EQ(mmcc_batch_copy(gvas, ptrs, sizes, 2, MMC_COPY_H2G), MMC_OK);
        MC_EQ(mmcc_batch_write_finish(skeys, 2, written, res), MMC_OK);
        MC_EQ(res[0], MMC_OK);
        MC_EQ(res[1], MMC_OK);
        MC_EQ(mmcc_batch_add_lease(skeys, 2, 300000, res), MMC_OK);
        MC_EQ(res[1], MMC_OK);
        ptrs[0] = dst;
        ptrs[1] = dst + OBJ;
        memset(dst, 0, 2 * OBJ);
        MC_EQ(mmcc_batch_copy(gvas, ptrs, sizes, 2, MMC_COPY_G2H), MMC_OK);
        TK_CHECK_GOTO(memcmp(dst, src, 2 * OBJ) == 0, "copied back");
        MC_EQ(mmcc_batch_remove_lease(skeys, 2), MMC_OK);
        MC_EQ(mmcc_batch_copy(gvas, ptrs, sizes, 2, 9), MMC_INVALID_PARAM);
        /* an aborted write leaves nothing */
        MC_EQ(mmcc_batch_malloc(skeys + 1, 1, sizes, opts, gvas), MMC_OK);
        TK_CHECK_GOTO(gvas[0] == 0, "malloc of an existing key");
        written[0] = -1;
        MC_EQ(mmcc_batch_malloc((const char *[]){"s/2"}, 1, sizes, opts, gvas),
              MMC_OK);
        MC_EQ(mmcc_batch_write_finish((const char *[]){"s/2"}, 1, written, res),
              MMC_OK);
        MC_EQ(mmcc_exist("s/2", 0), MMC_UNMATCHED_KEY);
    }
    MC_EQ(mmcc_remove_all(), MMC_OK);
    MC_EQ(mmcc_exist("c/2", 0), MMC_UNMATCHED_KEY);
    MC_EQ(mmcc_exist("s/0", 0), MMC_UNMATCHED_KEY);

    MC_EQ(mmcc_status(MMC_ERR_BUSY), MMC_UNMATCHED_STATE);
    MC_EQ(mmcc_status(MMC_ERR_NOT_FOUND), MMC_UNMATCHED_KEY);
    MC_EQ(mmcc_status(MF_ERR_TIMEOUT), MMC_TIMEOUT);
    MC_EQ(mmcc_status(-12345), MMC_ERROR);
    MC_EQ(mmcc_status(77), 77);
    MC_EQ(mmcc_unregister_buffer((uint64_t)(uintptr_t)src, KEYS * OBJ), MMC_OK);
    ret = 0;
fail:
    mmcc_uninit();
    free(src);
    free(dst);
    return ret;
}

static void test_mmcc(void **state)
{
    pid_t pid;

    (void)state;
    it_mmc_shared_reset();
    pid = tk_proc_spawn(mc_child, 0, NULL);
    assert_true(pid > 0);
    assert_int_equal(tk_proc_wait(pid, 2 * IT_MMC_WAIT_MS), 0);
}

static int mc_setup(void **state)
{
    (void)state;
    if (it_mmc_shared_init() != 0 ||
        it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", NULL) != 0) {
        return -1;
    }
    return 0;
}

static int mc_teardown(void **state)
{
    (void)state;
    return tk_meta_stop(&it_mmc_sh->meta, SIGTERM) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmcc),
    };

    return tk_group_run(tests, mc_setup, mc_teardown);
}
