/*
 * MemCache with HBM as a media tier, against the driver MF_CUDA_LIBRARY
 * names (the fake driver of tests/fakecuda in CI, the real one on a GPU):
 * two local services contribute DRAM and HBM to a meta service with a
 * device window.  Puts that ask for HBM land on HBM segments (mmc_query
 * and /key say hbm, the addresses are in the device window at the slots
 * /segments lists), from host and device buffers; gets from them into
 * host and device buffers, in every form, are byte-exact; an HBM put with
 * no HBM room is MMC_ERR_NO_SPACE while DRAM puts go on; HBM puts that
 * need room evict HBM objects only; all of it over the default transports
 * (mapped memory on one host) and over tcp.  A meta service without a
 * device window refuses hbm_size and HBM puts.
 */
#include "it_mmc.h"
#include "tk_cuda.h"
#include "tk_log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define MB      (1024ull * 1024)
#define CLIENTS 2
#define DRAM    (32 * MB)
#define HBM     (8 * MB)
#define MAX_HBM (64 * MB) /* the meta's max_hbm_segment_size */
#define OBJ     MB
#define NOBJ    4
#define LAYERS  16
#define FLOOD   20 /* 1 MiB HBM objects: more than both HBM segments hold */

/* The meta service without a device window (children inherit it). */
static tk_meta_t hbm_plain_meta;

/* A client of meta (NULL: the shared one) with DRAM and hbm bytes, over
 * transport (NULL: the default). */
static mmc_status_t hbm_open(const tk_meta_t *meta, uint64_t hbm,
                             const char *transport, mmc_t **mmc_p)
{
    char size[32];
    const char *kv[] = {"hbm_size", size, "meta_url", NULL, NULL};

    snprintf(size, sizeof(size), "%llu", (unsigned long long)hbm);
    kv[3] = meta != NULL ? meta->url : it_mmc_sh->meta.url;
    return it_mmc_open_kv(DRAM, transport, kv, mmc_p);
}

/* The device buffer holds pattern seed (checked on the host). */
static int hbm_dev_holds(const uint8_t *dev, size_t size, uint64_t seed,
                         uint8_t *host)
{
    memset(host, 0, size);
    TK_CHECK(tk_cuda_copy(host, dev, size) == 0);
    TK_CHECK(tk_pattern_check(host, size, seed, 0) < 0);
    return 0;
}

static int hbm_host_holds(const uint8_t *buf, size_t size, uint64_t seed)
{
    TK_CHECK(tk_pattern_check(buf, size, seed, 0) < 0);
    return 0;
}

/* The object's replicas are all of media, each inside its rank's segment
 * of that media as /segments listed it (segs, n). */
static int hbm_check_placed(mmc_t *mmc, const char *key, uint32_t nrep,
                            bool hbm, const it_mmc_seg_t *segs, int n)
{
    mmc_obj_info_t info;

    mmc_obj_info_init(&info, 1);
    TK_CHECK(mmc_query(mmc, key, &info) == MMC_OK);
    TK_CHECK(info.nreplicas == nrep);
    for (uint32_t r = 0; r < nrep; r++) {
        bool inside = false;

        TK_CHECK(info.media[r] == (hbm ? MMC_MEDIA_HBM : MMC_MEDIA_DRAM));
        for (int s = 0; s < n; s++) {
            inside =
                inside ||
                (segs[s].rank == info.ranks[r] && segs[s].hbm == hbm &&
                 info.gvas[r] >= segs[s].gva &&
                 info.gvas[r] + info.size <= segs[s].gva + segs[s].capacity);
        }
        if (!inside) {
            tk_print("%s: replica %u at rank %u 0x%llx is in no %s segment",
                     key, r, info.ranks[r], (unsigned long long)info.gvas[r],
                     hbm ? "HBM" : "DRAM");
            return -1;
        }
    }
    return 0;
}

/* Both members' segments: a DRAM and an HBM one each, the HBM ones a
 * device window's stride apart and outside the DRAM window.  Copies them
 * to segs and returns their number, or -1. */
static int hbm_check_segments(it_mmc_seg_t *segs, int max)
{
    uint64_t hbm_gva[CLIENTS] = {0}, dram_gva[CLIENTS] = {0};
    uint32_t hbm_rank[CLIENTS] = {0};
    int n, nhbm = 0, ndram = 0;

    n = it_mmc_segments(NULL, 0, &it_mmc_sh->meta, segs, max);
    TK_CHECK(n == 2 * CLIENTS);
    for (int i = 0; i < n; i++) {
        if (segs[i].hbm) {
            TK_CHECK(segs[i].capacity == HBM);
            hbm_rank[nhbm] = segs[i].rank;
            hbm_gva[nhbm++] = segs[i].gva;
        } else {
            TK_CHECK(segs[i].capacity == DRAM);
            dram_gva[ndram++] = segs[i].gva;
        }
    }
    TK_CHECK(nhbm == CLIENTS && ndram == CLIENTS);
    TK_CHECK(hbm_rank[0] != hbm_rank[1]);
    TK_CHECK(hbm_gva[1] - hbm_gva[0] ==
             ((uint64_t)hbm_rank[1] - hbm_rank[0]) * MAX_HBM);
    for (int i = 0; i < CLIENTS; i++) {
        TK_CHECK(hbm_gva[i] != dram_gva[0] && hbm_gva[i] != dram_gva[1]);
    }
    return n;
}

/* GET path answers 200 and its body holds needle. */
static int hbm_http_has(const char *path, const char *needle)
{
    char *body = NULL;
    int code = it_mmc_http_get(NULL, 0, &it_mmc_sh->meta, path, &body);
    int ret =
        (code == 200 && body != NULL && strstr(body, needle) != NULL) ? 0 : -1;

    if (ret != 0) {
        tk_print("GET %s: %d, no '%s' in '%.200s'", path, code, needle,
                 body != NULL ? body : "");
    }
    free(body);
    return ret;
}

/* Client 0's puts: HBM from host and device buffers, in batches and
 * layers; DRAM by default; the refusals. */
static int hbm_puts(mmc_t *mmc, uint8_t *const *dev, uint8_t *const *host,
                    const it_mmc_seg_t *segs, int nsegs)
{
    const char *hkeys[NOBJ] = {"hbm-0", "hbm-1", "hbm-2", "hbm-3"};
    const void *bufs[NOBJ];
    size_t sizes[NOBJ];
    mmc_status_t results[NOBJ];
    mmc_iov_t iov[LAYERS];
    mmc_put_opts_t opts;
    tk_log_t log;

    for (int i = 0; i < NOBJ; i++) {
        tk_pattern_fill(host[i], OBJ, 100 + (uint64_t)i, 0);
        TK_CHECK(tk_cuda_copy(dev[i], host[i], OBJ) == 0);
        bufs[i] = host[i];
        sizes[i] = OBJ;
    }
    mmc_put_opts_init(&opts);
    opts.media = MMC_MEDIA_HBM;
    opts.replicas = 2;
    /* host buffers said to be host: LH2GD */
    opts.mem = MMC_MEM_HOST;
    IT_MMC_ST(mmc_put_batch(mmc, hkeys, bufs, sizes, 2, &opts, results),
              MMC_OK);
    /* device buffers said to be device: LD2GD */
    opts.mem = MMC_MEM_DEVICE;
    IT_MMC_ST(mmc_put(mmc, hkeys[2], dev[2], OBJ, &opts), MMC_OK);
    /* device layers left AUTO, one replica */
    opts.replicas = 1;
    for (int j = 0; j < LAYERS; j++) {
        iov[j].base = dev[3] + (size_t)j * (OBJ / LAYERS);
        iov[j].len = OBJ / LAYERS;
        iov[j].mem = MMC_MEM_AUTO;
    }
    IT_MMC_ST(mmc_put_layers(mmc, hkeys[3], iov, LAYERS, &opts), MMC_OK);
    for (int i = 0; i < NOBJ; i++) {
        TK_CHECK_GOTO(hbm_check_placed(mmc, hkeys[i], i < 3 ? 2 : 1, true, segs,
                                       nsegs) == 0,
                      "%s", hkeys[i]);
    }

    /* DRAM by default, from a device buffer */
    mmc_put_opts_init(&opts);
    IT_MMC_ST(mmc_put(mmc, "dram-0", dev[0], OBJ, &opts), MMC_OK);
    IT_MMC_ST(mmc_put(mmc, "dram-1", host[1], OBJ, NULL), MMC_OK);
    TK_CHECK_GOTO(hbm_check_placed(mmc, "dram-0", 1, false, segs, nsegs) == 0,
                  "dram-0");
    /* options of a caller built before media: their media is not read */
    opts.size = offsetof(mmc_put_opts_t, media);
    opts.media = 0xdead;
    IT_MMC_ST(mmc_put(mmc, "old-opts", host[2], OBJ, &opts), MMC_OK);
    TK_CHECK_GOTO(hbm_check_placed(mmc, "old-opts", 1, false, segs, nsegs) == 0,
                  "old-opts");
    mmc_put_opts_init(&opts);

    /* the meta's view names HBM too */
    TK_CHECK_GOTO(hbm_http_has("/key/hbm-3", "\"media\":\"hbm\"") == 0, "/key");
    TK_CHECK_GOTO(hbm_http_has("/metrics", "media=\"hbm\"") == 0, "/metrics");

    /* larger than any HBM segment: no space on HBM, fine on DRAM */
    opts.media = MMC_MEDIA_HBM;
    IT_MMC_ST(mmc_put(mmc, "big", host[0], HBM + MB, &opts), MMC_ERR_NO_SPACE);
    opts.media = MMC_MEDIA_DRAM;
    IT_MMC_ST(mmc_put(mmc, "big", host[0], HBM + MB, &opts), MMC_OK);
    /* an unknown media: refused, and logged */
    tk_log_start(&log, 0);
    mmc_log_set_sink(tk_log_sink, &log);
    opts.media = 7;
    IT_MMC_ST(mmc_put(mmc, "bad", host[0], OBJ, &opts), MF_ERR_INVALID);
    mmc_log_set_sink(NULL, NULL);
    tk_log_stop(&log);
    TK_CHECK_GOTO(strstr(tk_log_last(&log), "media") != NULL, "log '%s'",
                  tk_log_last(&log));
    return 0;
fail:
    return -1;
}

/* Every client reads the HBM objects into host and device memory, in
 * every form; a batch mixing DRAM and HBM objects too. */
static int hbm_gets(mmc_t *mmc, uint8_t *const *dev, uint8_t *const *host,
                    uint8_t *check)
{
    const char *keys[NOBJ] = {"hbm-0", "hbm-1", "hbm-2", "hbm-3"};
    const char *mixed[3] = {"hbm-1", "dram-0", "dram-1"};
    const uint64_t mixed_seed[3] = {101, 100, 101};
    void *bufs[NOBJ];
    size_t sizes[NOBJ];
    mmc_status_t results[NOBJ];
    mmc_iov_t iov[LAYERS];

    for (int i = 0; i < NOBJ; i++) {
        /* flat into host memory (classified): GD2LH */
        memset(host[i], 0, OBJ);
        IT_MMC_ST(mmc_get(mmc, keys[i], host[i], OBJ), MMC_OK);
        TK_CHECK_GOTO(hbm_host_holds(host[i], OBJ, 100 + (uint64_t)i) == 0,
                      "host %s", keys[i]);
        /* layers said to be device: GD2LD */
        for (int j = 0; j < LAYERS; j++) {
            iov[j].base = dev[i] + (size_t)j * (OBJ / LAYERS);
            iov[j].len = OBJ / LAYERS;
            iov[j].mem = MMC_MEM_DEVICE;
        }
        TK_CHECK_GOTO(tk_cuda_copy(dev[i], check, OBJ) == 0, "clear");
        IT_MMC_ST(mmc_get_layers(mmc, keys[i], iov, LAYERS), MMC_OK);
        TK_CHECK_GOTO(hbm_dev_holds(dev[i], OBJ, 100 + (uint64_t)i, check) == 0,
                      "device %s", keys[i]);
        /* layers said to be host */
        for (int j = 0; j < LAYERS; j++) {
            iov[j].base = host[i] + (size_t)j * (OBJ / LAYERS);
            iov[j].mem = MMC_MEM_HOST;
        }
        memset(host[i], 0, OBJ);
        IT_MMC_ST(mmc_get_layers(mmc, keys[i], iov, LAYERS), MMC_OK);
        TK_CHECK_GOTO(hbm_host_holds(host[i], OBJ, 100 + (uint64_t)i) == 0,
                      "host layers %s", keys[i]);
    }
    /* a batch into device memory */
    for (int i = 0; i < NOBJ; i++) {
        bufs[i] = dev[i];
        sizes[i] = OBJ;
    }
    IT_MMC_ST(mmc_get_batch(mmc, keys, bufs, sizes, NOBJ, results), MMC_OK);
    for (int i = 0; i < NOBJ; i++) {
        TK_CHECK_GOTO(hbm_dev_holds(dev[i], OBJ, 100 + (uint64_t)i, check) == 0,
                      "batch %s", keys[i]);
    }
    /* DRAM and HBM objects in one batch, into host memory */
    for (int i = 0; i < 3; i++) {
        memset(host[i], 0, OBJ);
        bufs[i] = host[i];
    }
    IT_MMC_ST(mmc_get_batch(mmc, mixed, bufs, sizes, 3, results), MMC_OK);
    for (int i = 0; i < 3; i++) {
        TK_CHECK_GOTO(hbm_host_holds(host[i], OBJ, mixed_seed[i]) == 0,
                      "mixed %s", mixed[i]);
    }
    return 0;
fail:
    return -1;
}

/* HBM puts beyond what HBM holds succeed by evicting HBM objects, oldest
 * first; the DRAM objects all stay. */
static int hbm_flood(mmc_t *mmc, uint8_t *buf)
{
    const char *early[NOBJ] = {"hbm-0", "hbm-1", "hbm-2", "hbm-3"};
    mmc_put_opts_t opts;
    char key[32];
    int gone = 0;

    mmc_put_opts_init(&opts);
    opts.media = MMC_MEDIA_HBM;
    for (int i = 0; i < FLOOD; i++) {
        snprintf(key, sizeof(key), "flood-%d", i);
        tk_pattern_fill(buf, OBJ, 1000 + (uint64_t)i, 0);
        IT_MMC_ST(mmc_put(mmc, key, buf, OBJ, &opts), MMC_OK);
    }
    for (int i = 0; i < NOBJ; i++) {
        gone += mmc_exist(mmc, early[i]) == MMC_ERR_NOT_FOUND;
    }
    TK_CHECK_GOTO(gone > 0, "no early HBM object was evicted");
    IT_MMC_ST(mmc_exist(mmc, "dram-0"), MMC_OK);
    IT_MMC_ST(mmc_exist(mmc, "dram-1"), MMC_OK);
    IT_MMC_ST(mmc_exist(mmc, "big"), MMC_OK);
    /* the newest is whole */
    memset(buf, 0, OBJ);
    IT_MMC_ST(mmc_get(mmc, "flood-19", buf, OBJ), MMC_OK);
    TK_CHECK_GOTO(hbm_host_holds(buf, OBJ, 1000 + FLOOD - 1) == 0, "flood-19");
    return 0;
fail:
    return -1;
}

/* arg: the transport (NULL: the default, mapped memory on one host). */
static int hbm_client(int index, void *arg)
{
    uint8_t *dev[NOBJ] = {NULL}, *host[NOBJ] = {NULL}, *check = NULL;
    it_mmc_seg_t segs[2 * CLIENTS + 1];
    mmc_t *mmc = NULL;
    char why[256];
    int nsegs, ret = 1;
    tk_log_t log;

    if (tk_cuda_init(why, sizeof(why)) != 0) {
        tk_print("no device: %s", why);
        return 1;
    }
    if (index == 1) {
        /* more HBM than the pool's stride: refused before joining */
        tk_log_start(&log, 0);
        mmc_log_set_sink(tk_log_sink, &log);
        IT_MMC_ST(hbm_open(NULL, MAX_HBM + 2 * MB, arg, &mmc), MF_ERR_CONFIG);
        mmc_log_set_sink(NULL, NULL);
        tk_log_stop(&log);
        TK_CHECK_GOTO(tk_log_find(&log, "max_hbm_segment_size"), "log '%s'",
                      tk_log_last(&log));
    }
    IT_MMC_ST(hbm_open(NULL, HBM, arg, &mmc), MMC_OK);
    check = malloc(OBJ);
    TK_CHECK_GOTO(check != NULL, "malloc");
    memset(check, 0, OBJ);
    for (int i = 0; i < NOBJ; i++) {
        dev[i] = tk_cuda_alloc(OBJ);
        host[i] = calloc(1, HBM + MB); /* room for "big" */
        TK_CHECK_GOTO(dev[i] != NULL && host[i] != NULL, "buffers");
    }
    TK_CHECK_GOTO(it_mmc_barrier(0, CLIENTS) == 0, "barrier 0");
    if (index == 0) {
        nsegs = hbm_check_segments(segs, 2 * CLIENTS + 1);
        TK_CHECK_GOTO(nsegs > 0, "segments");
        TK_CHECK_GOTO(hbm_puts(mmc, dev, host, segs, nsegs) == 0, "puts");
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, CLIENTS) == 0, "barrier 1");
    TK_CHECK_GOTO(hbm_gets(mmc, dev, host, check) == 0, "gets");
    TK_CHECK_GOTO(it_mmc_barrier(2, CLIENTS) == 0, "barrier 2");
    if (index == 0) {
        TK_CHECK_GOTO(hbm_flood(mmc, host[0]) == 0, "flood");
    }
    TK_CHECK_GOTO(it_mmc_barrier(3, CLIENTS) == 0, "barrier 3");
    ret = 0;
fail:
    for (int i = 0; i < NOBJ; i++) {
        tk_cuda_free(dev[i]);
        free(host[i]);
    }
    free(check);
    mmc_destroy(mmc);
    return ret;
}

static void hbm_tier(const char *transport)
{
    pid_t pids[CLIENTS];
    int codes[CLIENTS];

    it_mmc_shared_reset();
    assert_int_equal(
        tk_proc_spawn_n(CLIENTS, hbm_client, (void *)transport, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, CLIENTS, 240000, codes), 0);
}

static void test_hbm_tier(void **state)
{
    (void)state;
    hbm_tier(NULL);
}

/* The same between processes that reach each other over tcp only: device
 * memory on either side goes through staging. */
static void test_hbm_tier_tcp(void **state)
{
    (void)state;
    hbm_tier("tcp");
}

/* A pool without a device window: hbm_size is refused, a DRAM member
 * joins as ever and an HBM put finds no space. */
static int hbm_plain_client(int index, void *arg)
{
    mmc_put_opts_t opts;
    mmc_t *mmc = NULL;
    char buf[4096];
    int ret = 1;
    tk_log_t log;

    (void)index;
    (void)arg;
    tk_log_start(&log, 0);
    mmc_log_set_sink(tk_log_sink, &log);
    IT_MMC_ST(hbm_open(&hbm_plain_meta, HBM, NULL, &mmc), MF_ERR_CONFIG);
    mmc_log_set_sink(NULL, NULL);
    tk_log_stop(&log);
    TK_CHECK_GOTO(tk_log_find(&log, "no device window"), "log '%s'",
                  tk_log_last(&log));
    IT_MMC_ST(hbm_open(&hbm_plain_meta, 0, NULL, &mmc), MMC_OK);
    memset(buf, 7, sizeof(buf));
    mmc_put_opts_init(&opts);
    opts.media = MMC_MEDIA_HBM;
    IT_MMC_ST(mmc_put(mmc, "k", buf, sizeof(buf), &opts), MMC_ERR_NO_SPACE);
    opts.media = MMC_MEDIA_DRAM;
    IT_MMC_ST(mmc_put(mmc, "k", buf, sizeof(buf), &opts), MMC_OK);
    ret = 0;
fail:
    mmc_destroy(mmc);
    return ret;
}

static void test_hbm_no_window(void **state)
{
    pid_t pid;
    int code;

    (void)state;
    assert_int_equal(tk_proc_spawn_n(1, hbm_plain_client, NULL, &pid), 0);
    assert_int_equal(tk_proc_wait_all(&pid, 1, 120000, &code), 0);
}

static int hbm_setup(void **state)
{
    static const char *const window[] = {"max_hbm_segment_size=64M", NULL};

    (void)state;
    if (it_mmc_shared_init() != 0 ||
        it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", window) !=
            0) {
        return -1;
    }
    return it_mmc_meta_start(&hbm_plain_meta, NULL, 0, "127.0.0.1", NULL);
}

static int hbm_teardown(void **state)
{
    int a = tk_meta_stop(&hbm_plain_meta, SIGTERM);
    int b = tk_meta_stop(&it_mmc_sh->meta, SIGTERM);

    (void)state;
    return (a == 0 && b == 0) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hbm_tier),
        cmocka_unit_test(test_hbm_tier_tcp),
        cmocka_unit_test(test_hbm_no_window),
    };

#ifdef IT_FAKECUDA_PATH
    /* the fake driver, unless a driver is named (a real one on a GPU) */
    setenv("MF_CUDA_LIBRARY", IT_FAKECUDA_PATH, 0);
#endif
    return tk_group_run(tests, hbm_setup, hbm_teardown);
}
