/*
 * MemCache with device buffers, against the driver MF_CUDA_LIBRARY names
 * (the fake driver of tests/fakecuda in CI, the real one on a GPU): the
 * vLLM path, a KV block of 122 pieces in device memory put into the DRAM
 * pool (two replicas, on two local services) and read back into device
 * memory, as layers, flat, in batches; buffers said to be DEVICE and left
 * AUTO; every byte checked through the driver.  A device range past its
 * allocation fails the put cleanly.
 */
#include "it_mmc.h"
#include "tk_cuda.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define MB        (1024ull * 1024)
#define LAYERS    61
#define BIG       (128 * 1024)
#define SMALL     (16 * 1024)
#define KV_SIZE   ((size_t)LAYERS * (BIG + SMALL))
#define KV_PIECES (2 * LAYERS)
#define NOBJ      4
#define CLIENTS   2

/* The pieces of a KV block at base: 61 large then 61 small. */
static void dev_kv_iov(uint8_t *base, uint32_t mem, mmc_iov_t *iov)
{
    size_t off = 0;

    for (int i = 0; i < KV_PIECES; i++) {
        iov[i].base = base + off;
        iov[i].len = i < LAYERS ? BIG : SMALL;
        iov[i].mem = mem;
        off += iov[i].len;
    }
}

/* The device buffer holds pattern seed (checked on the host). */
static int dev_holds(const uint8_t *dev, size_t size, uint64_t seed,
                     uint8_t *host)
{
    ssize_t bad;

    memset(host, 0, size);
    TK_CHECK(tk_cuda_copy(host, dev, size) == 0);
    bad = tk_pattern_check(host, size, seed, 0);
    if (bad >= 0) {
        tk_print("byte %zd of %zu (seed %llu) is wrong", bad, size,
                 (unsigned long long)seed);
        return -1;
    }
    return 0;
}

static int dev_client(int index, void *arg)
{
    mmc_iov_t iovs[NOBJ][KV_PIECES];
    const mmc_iov_t *iovp[NOBJ];
    size_t niovs[NOBJ], sizes[NOBJ];
    mmc_status_t results[NOBJ];
    const char *keys[NOBJ] = {"dev/0", "dev/1", "dev/2", "dev/3"};
    uint8_t *dev[NOBJ] = {NULL}, *host = NULL;
    void *bufs[NOBJ];
    mmc_put_opts_t opts;
    mmc_t *mmc = NULL;
    char why[256];
    int ret = 1;

    if (tk_cuda_init(why, sizeof(why)) != 0) {
        tk_print("no device: %s", why);
        return 1;
    }
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    host = malloc(KV_SIZE);
    TK_CHECK_GOTO(host != NULL, "malloc");
    for (int i = 0; i < NOBJ; i++) {
        dev[i] = tk_cuda_alloc(KV_SIZE);
        TK_CHECK_GOTO(dev[i] != NULL, "device buffer");
        bufs[i] = dev[i];
        sizes[i] = KV_SIZE;
    }
    TK_CHECK_GOTO(it_mmc_barrier(0, CLIENTS) == 0, "barrier 0");

    if (index == 0) {
        /* KV blocks born in device memory */
        for (int i = 0; i < NOBJ; i++) {
            tk_pattern_fill(host, KV_SIZE, 500 + (uint64_t)i, 0);
            TK_CHECK_GOTO(tk_cuda_copy(dev[i], host, KV_SIZE) == 0, "fill");
        }
        mmc_put_opts_init(&opts);
        opts.replicas = 2;
        /* layers said to be device memory, two in one batch */
        dev_kv_iov(dev[0], MMC_MEM_DEVICE, iovs[0]);
        dev_kv_iov(dev[1], MMC_MEM_AUTO, iovs[1]);
        iovp[0] = iovs[0];
        iovp[1] = iovs[1];
        niovs[0] = niovs[1] = KV_PIECES;
        IT_MMC_ST(
            mmc_put_layers_batch(mmc, keys, iovp, niovs, 2, &opts, results),
            MMC_OK);
        /* flat: DEVICE in the options, then AUTO */
        opts.mem = MMC_MEM_DEVICE;
        IT_MMC_ST(mmc_put(mmc, keys[2], dev[2], KV_SIZE, &opts), MMC_OK);
        opts.mem = MMC_MEM_AUTO;
        IT_MMC_ST(mmc_put(mmc, keys[3], dev[3], KV_SIZE, &opts), MMC_OK);
        /* the DRAM segments the device copies went to are pinned for the
         * device's DMA now (both mapped here: one host) */
        {
            mmc_obj_info_t info;

            mmc_obj_info_init(&info, 1);
            IT_MMC_ST(mmc_query(mmc, keys[0], &info), MMC_OK);
            TK_CHECK_GOTO(info.nreplicas == 2, "replicas %u", info.nreplicas);
            for (uint32_t k = 0; k < info.nreplicas; k++) {
                TK_CHECK_GOTO(tk_cuda_host_registered(
                                  (void *)(uintptr_t)info.gvas[k]) == 1,
                              "replica %u at 0x%llx is not pinned", k,
                              (unsigned long long)info.gvas[k]);
            }
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, CLIENTS) == 0, "barrier 1");

    /* every client reads every object back into device memory */
    for (int i = 0; i < NOBJ; i++) {
        dev_kv_iov(dev[i], i % 2 ? MMC_MEM_AUTO : MMC_MEM_DEVICE, iovs[i]);
        IT_MMC_ST(mmc_get_layers(mmc, keys[i], iovs[i], KV_PIECES), MMC_OK);
        TK_CHECK_GOTO(dev_holds(dev[i], KV_SIZE, 500 + (uint64_t)i, host) == 0,
                      "layers of %s", keys[i]);
    }
    IT_MMC_ST(mmc_get_batch(mmc, keys, bufs, sizes, NOBJ, results), MMC_OK);
    for (int i = 0; i < NOBJ; i++) {
        TK_CHECK_GOTO(results[i] == MMC_OK, "result %d", i);
        TK_CHECK_GOTO(dev_holds(dev[i], KV_SIZE, 500 + (uint64_t)i, host) == 0,
                      "batch %s", keys[i]);
    }
    IT_MMC_ST(mmc_get(mmc, keys[0], dev[1], KV_SIZE), MMC_OK);
    TK_CHECK_GOTO(dev_holds(dev[1], KV_SIZE, 500, host) == 0, "flat get");
    /* a device buffer of the wrong size: refused, as for host memory */
    IT_MMC_ST(mmc_get(mmc, keys[0], dev[1], KV_SIZE - 1),
              MMC_ERR_SIZE_MISMATCH);
    if (index == 1) {
        /* a device range past its allocation: the copy is refused, the
         * put fails and leaves nothing behind */
        mmc_put_opts_init(&opts);
        opts.mem = MMC_MEM_DEVICE;
        mmc_log_set_level(MF_LOG_OFF);
        TK_CHECK_GOTO(mmc_put(mmc, "dev/bad", dev[0] + KV_SIZE / 2, KV_SIZE,
                              &opts) != MMC_OK,
                      "put past the device buffer");
        mmc_log_set_level(MF_LOG_WARN);
        IT_MMC_ST(mmc_exist(mmc, "dev/bad"), MMC_ERR_NOT_FOUND);
    }
    TK_CHECK_GOTO(it_mmc_barrier(2, CLIENTS) == 0, "barrier 2");
    ret = 0;
fail:
    for (int i = 0; i < NOBJ; i++) {
        tk_cuda_free(dev[i]);
    }
    free(host);
    mmc_destroy(mmc);
    return ret;
}

static void test_device_buffers(void **state)
{
    pid_t pids[CLIENTS];
    int codes[CLIENTS];

    it_mmc_shared_reset();
    assert_int_equal(tk_proc_spawn_n(CLIENTS, dev_client, NULL, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, CLIENTS, 240000, codes), 0);
}

static int dev_setup(void **state)
{
    if (it_mmc_shared_init() != 0) {
        return -1;
    }
    return it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", NULL);
}

static int dev_teardown(void **state)
{
    return tk_meta_stop(&it_mmc_sh->meta, SIGTERM) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_buffers),
    };

#ifdef IT_FAKECUDA_PATH
    /* the fake driver, unless a driver is named (a real one on a GPU) */
    setenv("MF_CUDA_LIBRARY", IT_FAKECUDA_PATH, 0);
#endif
    return tk_group_run(tests, dev_setup, dev_teardown);
}
