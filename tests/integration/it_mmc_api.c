/*
 * MemCache's client API end to end: the real mmc-meta daemon and several
 * client processes on one host.
 *
 * Covers every call in its single, batch and layers forms (a KV-shaped
 * object of 61 x 128 KiB + 61 x 16 KiB), replicas on distinct ranks,
 * write-once and MMC_PUT_REPLACE, size mismatches, bad input, concurrent
 * puts of one key, reads under concurrent remove and re-put (never torn
 * bytes), a client killed in the middle of puts (no space left behind),
 * a pure client and a batch of MMC_BATCH_MAX keys.
 *
 * One daemon serves the whole run; each test uses keys of its own.
 * Children synchronize through barriers in a shared page (it_mmc.h).
 */
#include "it_mmc.h"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#define MB (1ull << 20)

static mmc_status_t api_results[MMC_BATCH_MAX + 1];

/* Runs n children of fn and expects every one to exit 0. */
static void api_run(int n, tk_proc_fn fn, void *arg)
{
    pid_t pids[16];

    it_mmc_shared_reset();
    assert_int_equal(tk_proc_spawn_n(n, fn, arg, pids), 0);
    assert_int_equal(tk_proc_wait_all(pids, n, 2 * IT_MMC_WAIT_MS, NULL), 0);
}

/* ---------------------------------------------------------- config */

/* What libmemcache logs in the config child. */
static tk_log_t api_log;

static int api_config_child(int index, void *arg)
{
    char path[] = "/tmp/it_mmc_api_confXXXXXX";
    mmc_config_t cfg;
    char value[64];
    FILE *f;
    int fd, ret = 1;

    tk_role_set("config");
    mmc_config_init(&cfg);
    TK_CHECK_GOTO(strcmp(cfg.meta_url, "tcp://127.0.0.1:5800") == 0 &&
                      cfg.dram_size == (1ull << 30) && cfg.replicas == 1 &&
                      cfg.timeout_ms == 10000 &&
                      cfg.connect_timeout_ms == 30000 && cfg.name[0] == '\0',
                  "defaults");
    IT_MMC_ST(mmc_config_set(&cfg, "replicas", "3"), MMC_OK);
    TK_CHECK_GOTO(cfg.replicas == 3, "replicas");
    IT_MMC_ST(mmc_config_set(&cfg, "replicas", "9"), MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_set(&cfg, "replicas", "0"), MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_set(&cfg, "no_such_key", "1"), MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_set(&cfg, "fabric.transport", "tcp"), MMC_OK);
    TK_CHECK_GOTO(strcmp(cfg.fabric.transport, "tcp") == 0, "fabric.transport");
    IT_MMC_ST(mmc_config_set(&cfg, "fabric.transport", "carrier-pigeon"),
              MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_set(&cfg, "fabric.no_such_key", "1"), MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_set(&cfg, "meta_url", "not a url"), MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_get(&cfg, "replicas", value, sizeof(value)), MMC_OK);
    TK_CHECK_GOTO(strcmp(value, "3") == 0, "mmc_config_get replicas: %s",
                  value);
    IT_MMC_ST(mmc_config_get(&cfg, "fabric.transport", value, sizeof(value)),
              MMC_OK);
    TK_CHECK_GOTO(strcmp(value, "tcp") == 0, "mmc_config_get transport: %s",
                  value);
    IT_MMC_ST(mmc_config_get(&cfg, "fabric.tcp.lanes", value, sizeof(value)),
              MMC_OK);
    TK_CHECK_GOTO(strcmp(value, "2") == 0, "mmc_config_get tcp.lanes: %s",
                  value);
    IT_MMC_ST(mmc_config_get(&cfg, "meta_url", value, 4), MF_ERR_TOO_LARGE);
    IT_MMC_ST(mmc_config_get(&cfg, "no_such_key", value, sizeof(value)),
              MF_ERR_CONFIG);
    IT_MMC_ST(mmc_config_get(&cfg, "fabric.no_such_key", value, sizeof(value)),
              MF_ERR_CONFIG);
    /* an SSD area without its path, or of a size off 4K: refused when
     * set, and by mmc_create (before it connects anywhere) when a caller
     * filled the struct by hand */
    {
        mmc_config_t bad;
        mmc_t *none = NULL;

        mmc_config_init(&bad);
        IT_MMC_ST(mmc_config_set(&bad, "ssd_size", "1G"), MF_ERR_CONFIG);
        IT_MMC_ST(mmc_config_set(&bad, "ssd_path", "/nonexistent/area"),
                  MMC_OK);
        IT_MMC_ST(mmc_config_set(&bad, "ssd_size", "1000"), MF_ERR_CONFIG);
        IT_MMC_ST(mmc_config_set(&bad, "ssd_threads", "65"), MF_ERR_CONFIG);
        IT_MMC_ST(mmc_config_set(&bad, "ssd_size", "1G"), MMC_OK);
        bad.ssd_size = 1000;
        IT_MMC_ST(mmc_create(&bad, &none), MF_ERR_CONFIG);
        TK_CHECK_GOTO(none == NULL, "a refused mmc_create set its handle");
    }

    fd = mkstemp(path);
    TK_CHECK_GOTO(fd >= 0, "mkstemp");
    f = fdopen(fd, "w");
    TK_CHECK_GOTO(f != NULL, "fdopen");
    fprintf(f, "# sample\nmeta_url = tcp://10.0.0.1:6000\n"
               "dram_size = 2G   # two\nname = \"worker 1\"\n"
               "hbm_size = 512M\n"
               "fabric.copy_threads = 3\ntimeout_ms = 5s\n"
               "fabric.tcp_chunk_size = 1M # old name of tcp.chunk_size\n");
    fclose(f);
    setenv("MMC_REPLICAS", "2", 1);
    setenv("MMC_FABRIC_TCP_LANES", "4", 1);
    mmc_config_init(&cfg);
    IT_MMC_ST(
        mf_bm_config_get(&cfg.fabric, "tcp.timeout_ms", value, sizeof(value)),
        MF_OK);
    TK_CHECK_GOTO(strcmp(value, "10000") == 0, "clients' tcp timeout %s",
                  value);
    IT_MMC_ST(mmc_config_load(&cfg, path), MMC_OK);
    TK_CHECK_GOTO(
        strcmp(cfg.meta_url, "tcp://10.0.0.1:6000") == 0 &&
            cfg.dram_size == (2ull << 30) && cfg.hbm_size == (512ull << 20) &&
            strcmp(cfg.name, "worker 1") == 0 && cfg.fabric.copy_threads == 3 &&
            cfg.timeout_ms == 5000 && cfg.replicas == 2,
        "loaded settings");
    IT_MMC_ST(mf_bm_config_get(&cfg.fabric, "tcp.lanes", value, sizeof(value)),
              MF_OK);
    TK_CHECK_GOTO(strcmp(value, "4") == 0,
                  "tcp.lanes from MMC_FABRIC_TCP_LANES");
    IT_MMC_ST(
        mf_bm_config_get(&cfg.fabric, "tcp.chunk_size", value, sizeof(value)),
        MF_OK);
    TK_CHECK_GOTO(strcmp(value, "1048576") == 0,
                  "tcp.chunk_size from its alias");
    setenv("MMC_REPLICAS", "12", 1);
    IT_MMC_ST(mmc_config_load_env(&cfg), MF_ERR_CONFIG);
    TK_CHECK_GOTO(cfg.replicas == 2, "a failed load changed the config");
    unsetenv("MMC_REPLICAS");
    unsetenv("MMC_FABRIC_TCP_LANES");
    f = fopen(path, "w");
    TK_CHECK_GOTO(f != NULL, "fopen");
    fprintf(f, "replicas = 2\nthis line is bad\n");
    fclose(f);
    IT_MMC_ST(mmc_config_load(&cfg, path), MF_ERR_CONFIG);

    /* the help names every key, the fabric ones with their prefix */
    f = tmpfile();
    TK_CHECK_GOTO(f != NULL, "tmpfile");
    mmc_config_help(f);
    rewind(f);
    {
        char text[16384];
        size_t n = fread(text, 1, sizeof(text) - 1, f);

        text[n] = '\0';
        fclose(f);
        TK_CHECK_GOTO(strstr(text, "meta_url") != NULL &&
                          strstr(text, "connect_timeout_ms") != NULL &&
                          strstr(text, "MMC_DRAM_SIZE") != NULL &&
                          strstr(text, "MMC_HBM_SIZE") != NULL &&
                          strstr(text, "fabric.") != NULL &&
                          strstr(text, "MMC_FABRIC_TRANSPORT") != NULL &&
                          strstr(text, "fabric.tcp.lanes") != NULL &&
                          strstr(text, "MMC_FABRIC_TCP_LANES") != NULL &&
                          strstr(text, "fabric.tcp_lanes") != NULL,
                      "help text:\n%s", text);
    }

    /* the library's log goes where its user says, at the level it says */
    {
        tk_log_t *log = &api_log;

        tk_log_start(log, 0);
        mmc_log_set_sink(tk_log_sink, log);
        mmc_log_set_level(MF_LOG_ERROR);
        TK_CHECK_GOTO(mmc_log_get_level() == MF_LOG_ERROR, "log level");
        IT_MMC_ST(mmc_config_set(&cfg, "no_such_key", "1"), MF_ERR_CONFIG);
        TK_CHECK_GOTO(tk_log_total(log) >= 1 &&
                          strstr(tk_log_last(log), "no_such_key") != NULL,
                      "sink got %u messages, last '%s'", tk_log_total(log),
                      tk_log_last(log));
        tk_log_reset(log);
        mmc_log_set_level(MF_LOG_OFF);
        IT_MMC_ST(mmc_config_set(&cfg, "no_such_key", "1"), MF_ERR_CONFIG);
        TK_CHECK_GOTO(tk_log_total(log) == 0, "%u messages while off",
                      tk_log_total(log));
        mmc_log_set_sink(NULL, NULL);
        tk_log_stop(log);
        mmc_log_set_level(MF_LOG_WARN);
    }
    ret = 0;
fail:
    unlink(path);
    return ret;
}

static void test_config(void **state)
{
    api_run(1, api_config_child, NULL);
}

/* ------------------------------------------------- single client basics */

/* Captures this process's stderr while a call runs, then checks it. */
static int api_stderr_begin(void)
{
    char path[] = "/tmp/it_mmc_api_errXXXXXX";
    int fd = mkstemp(path), saved;

    if (fd < 0) {
        return -1;
    }
    unlink(path);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    return saved;
}

/* Restores stderr; true when what was written contains both needles. */
static bool api_stderr_end(int saved, const char *a, const char *b)
{
    char text[8192];
    ssize_t n;

    fflush(stderr);
    lseek(STDERR_FILENO, 0, SEEK_SET);
    n = read(STDERR_FILENO, text, sizeof(text) - 1);
    dup2(saved, STDERR_FILENO);
    close(saved);
    if (n < 0) {
        return false;
    }
    text[n] = '\0';
    fputs(text, stderr);
    return strstr(text, a) != NULL && strstr(text, b) != NULL;
}

static int api_basic_child(int index, void *arg)
{
    const size_t size = 3 * MB + 123;
    char long_key[MMC_KEY_MAX + 2];
    mmc_put_opts_t opts = {.size = sizeof(mmc_put_opts_t)};
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    mmc_t *mmc = NULL, *second = NULL;
    mmc_config_t cfg;
    char *a = NULL, *b = NULL, *c = NULL;
    char s1[32], s2[32];
    int ret = 1, saved;
    bool logged;

    tk_role_set("basic");
    IT_MMC_ST(it_mmc_open(256 * MB, NULL, &mmc), MMC_OK);
    mmc_config_init(&cfg);
    IT_MMC_ST(mmc_create(&cfg, &second), MF_ERR_STATE);
    TK_CHECK_GOTO(mmc_rank(mmc) != UINT32_MAX, "rank");

    a = malloc(size);
    b = malloc(size);
    c = malloc(size + 1);
    TK_CHECK_GOTO(a != NULL && b != NULL && c != NULL, "malloc");
    it_mmc_fill(a, size, 1);
    it_mmc_fill(b, size, 2);

    IT_MMC_ST(mmc_exist(mmc, "basic/a"), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_put(mmc, "basic/a", a, size, NULL), MMC_OK);
    IT_MMC_ST(mmc_exist(mmc, "basic/a"), MMC_OK);
    memset(c, 0, size);
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(c, size) == 1, "get returned other bytes");

    /* write-once, and replace */
    IT_MMC_ST(mmc_put(mmc, "basic/a", b, size, NULL), MMC_ERR_EXISTS);
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(c, size) == 1, "a refused put changed bytes");
    opts.flags = MMC_PUT_REPLACE;
    IT_MMC_ST(mmc_put(mmc, "basic/a", b, size, &opts), MMC_OK);
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(c, size) == 2, "replace did not take");

    /* query */
    IT_MMC_ST(mmc_query(mmc, "basic/a", &info), MMC_OK);
    TK_CHECK_GOTO(info.size == size && info.nreplicas == 1 &&
                      info.ranks[0] == mmc_rank(mmc) &&
                      info.media[0] == MMC_MEDIA_DRAM && info.gvas[0] != 0,
                  "query: size %llu, %u replicas, rank %u",
                  (unsigned long long)info.size, info.nreplicas, info.ranks[0]);

    /* size mismatches: nothing copied, both sizes logged */
    memset(c, 0x5a, size + 1);
    snprintf(s1, sizeof(s1), "%zu", size);
    snprintf(s2, sizeof(s2), "%zu", size + 1);
    saved = api_stderr_begin();
    TK_CHECK_GOTO(saved >= 0, "capture stderr");
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size + 1), MMC_ERR_SIZE_MISMATCH);
    logged = api_stderr_end(saved, s1, s2);
    TK_CHECK_GOTO(logged, "the log does not name both sizes");
    TK_CHECK_GOTO(tk_mem_find_not(c, 0x5a, size + 1) < 0,
                  "mismatch copied bytes");
    snprintf(s2, sizeof(s2), "%zu", size - 1);
    saved = api_stderr_begin();
    TK_CHECK_GOTO(saved >= 0, "capture stderr");
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size - 1), MMC_ERR_SIZE_MISMATCH);
    logged = api_stderr_end(saved, s1, s2);
    TK_CHECK_GOTO(logged, "the log does not name both sizes");

    /* bad input */
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[MMC_KEY_MAX + 1] = '\0';
    IT_MMC_ST(mmc_put(mmc, "", a, size, NULL), MF_ERR_INVALID);
    IT_MMC_ST(mmc_put(mmc, long_key, a, size, NULL), MF_ERR_INVALID);
    IT_MMC_ST(mmc_put(mmc, NULL, a, size, NULL), MF_ERR_INVALID);
    IT_MMC_ST(mmc_put(mmc, "basic/zero", a, 0, NULL), MF_ERR_INVALID);
    IT_MMC_ST(mmc_put(mmc, "basic/null", NULL, size, NULL), MF_ERR_INVALID);
    opts.flags = 0;
    opts.replicas = MMC_MAX_REPLICAS + 1;
    IT_MMC_ST(mmc_put(mmc, "basic/r9", a, size, &opts), MF_ERR_INVALID);
    /* structs that can grow: a size is required, kinds are checked */
    {
        mmc_put_opts_t unsized = {.replicas = 1};
        mmc_obj_info_t unsized_info = {.size = 1};
        mmc_iov_t dev = {a, size, MMC_MEM_DEVICE}, odd = {a, size, 7};

        IT_MMC_ST(mmc_put(mmc, "basic/unsized", a, size, &unsized),
                  MF_ERR_INVALID);
        IT_MMC_ST(mmc_query(mmc, "basic/a", &unsized_info), MF_ERR_INVALID);
        IT_MMC_ST(mmc_put_layers(mmc, "basic/dev", &dev, 1, NULL),
                  MF_ERR_UNSUPPORTED);
        IT_MMC_ST(mmc_get_layers(mmc, "basic/a", &dev, 1), MF_ERR_UNSUPPORTED);
        IT_MMC_ST(mmc_put_layers(mmc, "basic/odd", &odd, 1, NULL),
                  MF_ERR_INVALID);
        mmc_put_opts_init(&unsized);
        unsized.mem = MMC_MEM_DEVICE;
        IT_MMC_ST(mmc_put(mmc, "basic/dev", a, size, &unsized),
                  MF_ERR_UNSUPPORTED);
        unsized.mem = MMC_MEM_HOST;
        IT_MMC_ST(mmc_put(mmc, "basic/host", a, size, &unsized), MMC_OK);
        IT_MMC_ST(mmc_exist(mmc, "basic/host"), MMC_OK);
        IT_MMC_ST(mmc_exist(mmc, "basic/dev"), MMC_ERR_NOT_FOUND);
        IT_MMC_ST(mmc_remove(mmc, "basic/host"), MMC_OK);
    }
    IT_MMC_ST(mmc_get(mmc, "", c, size), MF_ERR_INVALID);
    IT_MMC_ST(mmc_get(mmc, long_key, c, size), MF_ERR_INVALID);
    IT_MMC_ST(mmc_exist(mmc, long_key), MF_ERR_INVALID);
    IT_MMC_ST(mmc_remove(mmc, ""), MF_ERR_INVALID);
    IT_MMC_ST(mmc_query(mmc, "", &info), MF_ERR_INVALID);
    IT_MMC_ST(mmc_query(mmc, "basic/a", NULL), MF_ERR_INVALID);
    long_key[MMC_KEY_MAX] = '\0'; /* 255 bytes: the longest valid key */
    IT_MMC_ST(mmc_put(mmc, long_key, a, 100, NULL), MMC_OK);
    IT_MMC_ST(mmc_exist(mmc, long_key), MMC_OK);
    IT_MMC_ST(mmc_remove(mmc, long_key), MMC_OK);
    IT_MMC_ST(mmc_register_buffer(mmc, NULL, 10), MF_ERR_INVALID);

    /* unknown keys */
    IT_MMC_ST(mmc_get(mmc, "basic/none", c, size), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_query(mmc, "basic/none", &info), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_remove(mmc, "basic/none"), MMC_ERR_NOT_FOUND);

    /* registered user buffers work like any other */
    IT_MMC_ST(mmc_register_buffer(mmc, c, size), MMC_OK);
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(c, size) == 2, "get into a registered buffer");
    IT_MMC_ST(mmc_unregister_buffer(mmc, c), MMC_OK);

    /* remove */
    IT_MMC_ST(mmc_remove(mmc, "basic/a"), MMC_OK);
    IT_MMC_ST(mmc_exist(mmc, "basic/a"), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_remove(mmc, "basic/a"), MMC_ERR_NOT_FOUND);
    /* a removed key can be written again */
    IT_MMC_ST(mmc_put(mmc, "basic/a", a, size, NULL), MMC_OK);
    IT_MMC_ST(mmc_get(mmc, "basic/a", c, size), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(c, size) == 1, "re-put");
    IT_MMC_ST(mmc_remove(mmc, "basic/a"), MMC_OK);
    ret = 0;
fail:
    free(a);
    free(b);
    free(c);
    mmc_destroy(mmc);
    return ret;
}

static void test_basic(void **state)
{
    api_run(1, api_basic_child, NULL);
}

/* ------------------------------------------------- batches and layers */

#define KV_LAYERS 61
#define KV_K      (128u << 10)
#define KV_V      (16u << 10)
#define KV_SIZE   ((size_t)KV_LAYERS * (KV_K + KV_V))
#define KV_OBJS   4
#define BATCH_N   64

/* A KV-shaped object: 61 K buffers then 61 V buffers, scattered in mem. */
static void api_kv_iov(char *mem, mmc_iov_t *iov)
{
    for (int l = 0; l < KV_LAYERS; l++) {
        iov[l].base = mem + (size_t)l * KV_K;
        iov[l].len = KV_K;
        iov[KV_LAYERS + l].base =
            mem + (size_t)KV_LAYERS * KV_K + (size_t)l * KV_V;
        iov[KV_LAYERS + l].len = KV_V;
    }
}

static int api_batch_child(int index, void *arg)
{
    static mmc_iov_t iovs[KV_OBJS][2 * KV_LAYERS];
    const mmc_iov_t *iovp[KV_OBJS];
    size_t niovs[KV_OBJS], sizes[BATCH_N];
    const char *keys[BATCH_N];
    char keybuf[BATCH_N][32];
    const void *cbufs[BATCH_N];
    void *bufs[BATCH_N];
    mmc_obj_info_t infos[BATCH_N];
    mmc_status_t *res = api_results;
    char *kv[KV_OBJS] = {NULL}, *flat = NULL, *small = NULL;
    mmc_t *mmc = NULL;
    int ret = 1, i;

    tk_role_set("batch");
    IT_MMC_ST(it_mmc_open(256 * MB, NULL, &mmc), MMC_OK);

    /* layers: put as layers, get as one flat buffer and as layers */
    for (i = 0; i < KV_OBJS; i++) {
        kv[i] = malloc(KV_SIZE);
        TK_CHECK_GOTO(kv[i] != NULL, "malloc");
        it_mmc_fill(kv[i], KV_SIZE, 100 + (uint64_t)i);
        api_kv_iov(kv[i], iovs[i]);
        iovp[i] = iovs[i];
        niovs[i] = 2 * KV_LAYERS;
        snprintf(keybuf[i], sizeof(keybuf[i]), "kv/%d", i);
        keys[i] = keybuf[i];
    }
    flat = malloc(KV_SIZE);
    TK_CHECK_GOTO(flat != NULL, "malloc");
    IT_MMC_ST(mmc_put_layers(mmc, keys[0], iovs[0], niovs[0], NULL), MMC_OK);
    IT_MMC_ST(mmc_get(mmc, keys[0], flat, KV_SIZE), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(flat, KV_SIZE) == 100, "layers -> flat");
    memset(kv[0], 0, KV_SIZE);
    IT_MMC_ST(mmc_get_layers(mmc, keys[0], iovs[0], niovs[0]), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(kv[0], KV_SIZE) == 100, "layers -> layers");
    /* layers whose lengths add up to another size */
    niovs[0] = 2 * KV_LAYERS - 1;
    IT_MMC_ST(mmc_get_layers(mmc, keys[0], iovs[0], niovs[0]),
              MMC_ERR_SIZE_MISMATCH);
    IT_MMC_ST(mmc_get_layers(mmc, keys[0], iovs[0], 0), MF_ERR_INVALID);
    IT_MMC_ST(mmc_put_layers(mmc, "kv/none", iovs[0], 0, NULL), MF_ERR_INVALID);
    IT_MMC_ST(mmc_put_layers(mmc, "kv/none", iovs[0], 65537, NULL),
              MF_ERR_INVALID);
    niovs[0] = 2 * KV_LAYERS;

    /* layers batch: item 0 exists already */
    for (i = 0; i < KV_OBJS; i++) {
        it_mmc_fill(kv[i], KV_SIZE, 200 + (uint64_t)i);
    }
    IT_MMC_ST(mmc_put_layers_batch(mmc, keys, iovp, niovs, KV_OBJS, NULL, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MMC_ERR_EXISTS, "item 0: %s",
                  mmc_status_name(res[0]));
    for (i = 1; i < KV_OBJS; i++) {
        TK_CHECK_GOTO(res[i] == MMC_OK, "item %d: %s", i,
                      mmc_status_name(res[i]));
    }
    for (i = 0; i < KV_OBJS; i++) {
        memset(kv[i], 0, KV_SIZE);
    }
    IT_MMC_ST(mmc_get_layers_batch(mmc, keys, iovp, niovs, KV_OBJS, res),
              MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(kv[0], KV_SIZE) == 100, "kv 0");
    for (i = 1; i < KV_OBJS; i++) {
        TK_CHECK_GOTO(it_mmc_seed_of(kv[i], KV_SIZE) == 200 + (uint64_t)i,
                      "kv %d", i);
    }
    IT_MMC_ST(mmc_remove_batch(mmc, keys, KV_OBJS, res), MMC_OK);

    /* plain batches of BATCH_N objects of different sizes */
    small = malloc(BATCH_N * 64 * 1024);
    TK_CHECK_GOTO(small != NULL, "malloc");
    for (i = 0; i < BATCH_N; i++) {
        snprintf(keybuf[i], sizeof(keybuf[i]), "batch/%d", i);
        keys[i] = keybuf[i];
        sizes[i] = 16 + (size_t)i * 1000;
        bufs[i] = small + (size_t)i * 64 * 1024;
        cbufs[i] = bufs[i];
        it_mmc_fill(bufs[i], sizes[i], 300 + (uint64_t)i);
    }
    IT_MMC_ST(mmc_put_batch(mmc, keys, cbufs, sizes, BATCH_N, NULL, res),
              MMC_OK);
    IT_MMC_ST(mmc_exist_batch(mmc, keys, BATCH_N, res), MMC_OK);
    mmc_obj_info_init(infos, BATCH_N);
    IT_MMC_ST(mmc_query_batch(mmc, keys, BATCH_N, infos, res), MMC_OK);
    for (i = 0; i < BATCH_N; i++) {
        TK_CHECK_GOTO(infos[i].size == sizes[i] && infos[i].nreplicas == 1,
                      "query %d", i);
    }
    /* a caller built with a larger (newer) info struct: the elements are
     * info_size apart and nothing past a known field is written */
    {
        enum { WIDE = sizeof(mmc_obj_info_t) + 24 };
        uint8_t *wide = malloc((size_t)BATCH_N * WIDE);
        mmc_obj_info_t one;

        TK_CHECK_GOTO(wide != NULL, "malloc");
        memset(wide, 0xa5, (size_t)BATCH_N * WIDE);
        ((mmc_obj_info_t *)wide)->info_size = WIDE;
        IT_MMC_ST(
            mmc_query_batch(mmc, keys, BATCH_N, (mmc_obj_info_t *)wide, res),
            MMC_OK);
        for (i = 0; i < BATCH_N; i++) {
            memcpy(&one, wide + (size_t)i * WIDE, sizeof(one));
            TK_CHECK_GOTO(one.size == sizes[i] && one.nreplicas == 1 &&
                              wide[(size_t)i * WIDE + WIDE - 1] == 0xa5 &&
                              wide[(size_t)i * WIDE + sizeof(one)] == 0xa5,
                          "wide query %d", i);
        }
        free(wide);
    }
    memset(small, 0, BATCH_N * 64 * 1024);
    IT_MMC_ST(mmc_get_batch(mmc, keys, bufs, sizes, BATCH_N, res), MMC_OK);
    for (i = 0; i < BATCH_N; i++) {
        TK_CHECK_GOTO(it_mmc_seed_of(bufs[i], sizes[i]) == 300 + (uint64_t)i,
                      "batch get %d", i);
    }
    /* bad items fail alone */
    keys[1] = "";
    sizes[2] += 1;
    keys[3] = "batch/none";
    IT_MMC_ST(mmc_get_batch(mmc, keys, bufs, sizes, BATCH_N, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MMC_OK && res[1] == MF_ERR_INVALID &&
                      res[2] == MMC_ERR_SIZE_MISMATCH &&
                      res[3] == MMC_ERR_NOT_FOUND && res[4] == MMC_OK,
                  "partial get: %s %s %s %s %s", mmc_status_name(res[0]),
                  mmc_status_name(res[1]), mmc_status_name(res[2]),
                  mmc_status_name(res[3]), mmc_status_name(res[4]));
    IT_MMC_ST(mmc_exist_batch(mmc, keys, BATCH_N, res), MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[1] == MF_ERR_INVALID && res[3] == MMC_ERR_NOT_FOUND &&
                      res[2] == MMC_OK,
                  "partial exist");
    /* found and not found: every item has its answer, the call is OK */
    keys[1] = keybuf[1];
    IT_MMC_ST(mmc_exist_batch(mmc, keys, BATCH_N, res), MMC_OK);
    TK_CHECK_GOTO(res[0] == MMC_OK && res[3] == MMC_ERR_NOT_FOUND &&
                      res[4] == MMC_OK,
                  "exist, one missing: %s %s %s", mmc_status_name(res[0]),
                  mmc_status_name(res[3]), mmc_status_name(res[4]));
    memset(infos, 0xa5, sizeof(infos));
    IT_MMC_ST(mmc_query_batch(mmc, keys, BATCH_N, infos, res), MF_ERR_INVALID);
    infos[0].info_size = sizeof(infos[0]);
    IT_MMC_ST(mmc_query_batch(mmc, keys, BATCH_N, infos, res), MMC_OK);
    TK_CHECK_GOTO(res[0] == MMC_OK && infos[0].size == sizes[0] &&
                      res[3] == MMC_ERR_NOT_FOUND && res[4] == MMC_OK,
                  "query, one missing: %s %s %s", mmc_status_name(res[0]),
                  mmc_status_name(res[3]), mmc_status_name(res[4]));
    keys[1] = "";
    IT_MMC_ST(mmc_query_batch(mmc, keys, BATCH_N, infos, res), MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[1] == MF_ERR_INVALID && res[3] == MMC_ERR_NOT_FOUND,
                  "partial query");
    keys[1] = keybuf[1];
    keys[3] = keybuf[3];
    sizes[2] -= 1;
    sizes[5] = 0;
    IT_MMC_ST(mmc_put_batch(mmc, keys, cbufs, sizes, BATCH_N, NULL, res),
              MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[5] == MF_ERR_INVALID && res[0] == MMC_ERR_EXISTS,
                  "partial put");
    IT_MMC_ST(mmc_remove_batch(mmc, keys, BATCH_N, res), MMC_OK);
    /* nothing found is an answer too; removing what is gone is not */
    IT_MMC_ST(mmc_exist_batch(mmc, keys, BATCH_N, res), MMC_OK);
    for (i = 0; i < BATCH_N; i++) {
        TK_CHECK_GOTO(res[i] == MMC_ERR_NOT_FOUND, "removed %d", i);
    }
    IT_MMC_ST(mmc_query_batch(mmc, keys, BATCH_N, infos, res), MMC_OK);
    for (i = 0; i < BATCH_N; i++) {
        TK_CHECK_GOTO(res[i] == MMC_ERR_NOT_FOUND, "query removed %d", i);
    }
    IT_MMC_ST(mmc_remove_batch(mmc, keys, BATCH_N, res), MMC_ERR_PARTIAL);
    TK_CHECK_GOTO(res[0] == MMC_ERR_NOT_FOUND, "remove removed: %s",
                  mmc_status_name(res[0]));
    /* more than MMC_BATCH_MAX keys: the call fails as a whole */
    IT_MMC_ST(mmc_exist_batch(mmc, keys, MMC_BATCH_MAX + 1, res),
              MF_ERR_TOO_LARGE);
    TK_CHECK_GOTO(res[0] == MF_ERR_TOO_LARGE &&
                      res[MMC_BATCH_MAX] == MF_ERR_TOO_LARGE,
                  "results of a refused call");
    IT_MMC_ST(mmc_put_batch(mmc, keys, cbufs, sizes, BATCH_N, NULL, NULL),
              MF_ERR_INVALID);
    ret = 0;
fail:
    for (i = 0; i < KV_OBJS; i++) {
        free(kv[i]);
    }
    free(flat);
    free(small);
    mmc_destroy(mmc);
    return ret;
}

static void test_batch_layers(void **state)
{
    api_run(1, api_batch_child, NULL);
}

/* 16384 keys in one call of each kind. */
static int api_max_batch_child(int index, void *arg)
{
    const size_t n = MMC_BATCH_MAX, size = 64;
    const char **keys = NULL;
    const void **cbufs = NULL;
    void **bufs = NULL;
    size_t *sizes = NULL;
    char *names = NULL, *data = NULL;
    mmc_status_t *res = api_results;
    mmc_t *mmc = NULL;
    int ret = 1;

    tk_role_set("max-batch");
    IT_MMC_ST(it_mmc_open(512 * MB, NULL, &mmc), MMC_OK);
    keys = calloc(n, sizeof(*keys));
    cbufs = calloc(n, sizeof(*cbufs));
    bufs = calloc(n, sizeof(*bufs));
    sizes = calloc(n, sizeof(*sizes));
    names = calloc(n, 32);
    data = calloc(n, size);
    TK_CHECK_GOTO(keys && cbufs && bufs && sizes && names && data, "calloc");
    for (size_t i = 0; i < n; i++) {
        snprintf(names + i * 32, 32, "max/%zu", i);
        keys[i] = names + i * 32;
        bufs[i] = data + i * size;
        cbufs[i] = bufs[i];
        sizes[i] = size;
    }
    /* none of them exists yet */
    IT_MMC_ST(mmc_exist_batch(mmc, keys, n, res), MMC_OK);
    for (size_t i = 0; i < n; i++) {
        TK_CHECK_GOTO(res[i] == MMC_ERR_NOT_FOUND, "exist %zu: %s", i,
                      mmc_status_name(res[i]));
    }
    for (size_t i = 0; i < n; i++) {
        it_mmc_fill(bufs[i], size, i);
    }
    IT_MMC_ST(mmc_put_batch(mmc, keys, cbufs, sizes, n, NULL, res), MMC_OK);
    IT_MMC_ST(mmc_exist_batch(mmc, keys, n, res), MMC_OK);
    memset(data, 0, n * size);
    IT_MMC_ST(mmc_get_batch(mmc, keys, bufs, sizes, n, res), MMC_OK);
    for (size_t i = 0; i < n; i++) {
        TK_CHECK_GOTO(it_mmc_seed_of(bufs[i], size) == i, "get %zu", i);
    }
    IT_MMC_ST(mmc_remove_batch(mmc, keys, n, res), MMC_OK);
    ret = 0;
fail:
    free(keys);
    free(cbufs);
    free(bufs);
    free(sizes);
    free(names);
    free(data);
    mmc_destroy(mmc);
    return ret;
}

static void test_max_batch(void **state)
{
    api_run(1, api_max_batch_child, NULL);
}

/* ------------------------------------------------------------ replicas */

#define REP_CLIENTS 4 /* 3 with segments, the last a pure client */

static int api_replicas_child(int index, void *arg)
{
    const size_t size = 2 * MB;
    mmc_put_opts_t opts = {.size = sizeof(mmc_put_opts_t)};
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    mmc_t *mmc = NULL;
    char *buf = NULL;
    int ret = 1;
    bool pure = index == REP_CLIENTS - 1;

    tk_role_set("replicas %d", index);
    IT_MMC_ST(it_mmc_open(pure ? 0 : 64 * MB, NULL, &mmc), MMC_OK);
    atomic_store(&it_mmc_sh->val[index], (int)mmc_rank(mmc));
    buf = malloc(size);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    TK_CHECK_GOTO(it_mmc_barrier(0, REP_CLIENTS) == 0, "barrier 0");
    if (index == 0) {
        for (int i = 0; i < REP_CLIENTS; i++) {
            for (int j = 0; j < i; j++) {
                TK_CHECK_GOTO(it_mmc_sh->val[i] != it_mmc_sh->val[j],
                              "clients %d and %d share rank %d", i, j,
                              it_mmc_sh->val[i]);
            }
        }
        for (uint32_t r = 2; r <= 3; r++) {
            char key[32];

            snprintf(key, sizeof(key), "rep/%u", r);
            it_mmc_fill(buf, size, r);
            opts.replicas = r;
            IT_MMC_ST(mmc_put(mmc, key, buf, size, &opts), MMC_OK);
            IT_MMC_ST(mmc_query(mmc, key, &info), MMC_OK);
            TK_CHECK_GOTO(info.nreplicas == r, "%u replicas, wanted %u",
                          info.nreplicas, r);
            for (uint32_t x = 0; x < r; x++) {
                for (uint32_t y = 0; y < x; y++) {
                    TK_CHECK_GOTO(info.ranks[x] != info.ranks[y],
                                  "two replicas on rank %u", info.ranks[x]);
                }
                TK_CHECK_GOTO(info.ranks[x] !=
                                  (uint32_t)it_mmc_sh->val[REP_CLIENTS - 1],
                              "a replica on the pure client");
            }
            /* the caller's own rank comes first */
            TK_CHECK_GOTO(info.ranks[0] == mmc_rank(mmc), "first replica on %u",
                          info.ranks[0]);
        }
        /* four replicas do not fit on three segments: nothing is kept */
        opts.replicas = 4;
        IT_MMC_ST(mmc_put(mmc, "rep/4", buf, size, &opts), MMC_ERR_NO_SPACE);
        IT_MMC_ST(mmc_exist(mmc, "rep/4"), MMC_ERR_NOT_FOUND);
        /* a preferred rank */
        opts.replicas = 1;
        opts.npreferred = 1;
        opts.preferred[0] = (uint32_t)it_mmc_sh->val[2];
        it_mmc_fill(buf, size, 7);
        IT_MMC_ST(mmc_put(mmc, "rep/pref", buf, size, &opts), MMC_OK);
        IT_MMC_ST(mmc_query(mmc, "rep/pref", &info), MMC_OK);
        TK_CHECK_GOTO(info.nreplicas == 1 && info.ranks[0] == opts.preferred[0],
                      "preferred rank %u, got %u", opts.preferred[0],
                      info.ranks[0]);
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, REP_CLIENTS) == 0, "barrier 1");
    /* everybody reads everything, the pure client included */
    for (uint32_t r = 2; r <= 3; r++) {
        char key[32];

        snprintf(key, sizeof(key), "rep/%u", r);
        memset(buf, 0, size);
        IT_MMC_ST(mmc_get(mmc, key, buf, size), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, size) == r, "read %s", key);
    }
    IT_MMC_ST(mmc_get(mmc, "rep/pref", buf, size), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(buf, size) == 7, "read rep/pref");
    if (pure) {
        /* a pure client writes too; the replica lands elsewhere */
        it_mmc_fill(buf, size, 8);
        IT_MMC_ST(mmc_put(mmc, "rep/pure", buf, size, NULL), MMC_OK);
        IT_MMC_ST(mmc_query(mmc, "rep/pure", &info), MMC_OK);
        TK_CHECK_GOTO(info.nreplicas == 1 && info.ranks[0] != mmc_rank(mmc),
                      "pure client's object on rank %u", info.ranks[0]);
        memset(buf, 0, size);
        IT_MMC_ST(mmc_get(mmc, "rep/pure", buf, size), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, size) == 8, "read rep/pure");
        IT_MMC_ST(mmc_remove(mmc, "rep/pure"), MMC_OK);
    }
    TK_CHECK_GOTO(it_mmc_barrier(2, REP_CLIENTS) == 0, "barrier 2");
    /* client 2 leaves: rep/3 keeps two replicas, rep/pref is gone */
    if (index == 2) {
        mmc_destroy(mmc);
        mmc = NULL;
    }
    TK_CHECK_GOTO(it_mmc_barrier(3, REP_CLIENTS) == 0, "barrier 3");
    if (index == 0) {
        IT_MMC_ST(mmc_exist(mmc, "rep/pref"), MMC_ERR_NOT_FOUND);
        IT_MMC_ST(mmc_query(mmc, "rep/3", &info), MMC_OK);
        TK_CHECK_GOTO(info.nreplicas == 2,
                      "rep/3 has %u replicas after a leave", info.nreplicas);
    }
    if (mmc != NULL) {
        IT_MMC_ST(mmc_get(mmc, "rep/3", buf, size), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, size) == 3, "rep/3 after the leave");
    }
    TK_CHECK_GOTO(it_mmc_barrier(4, REP_CLIENTS) == 0, "barrier 4");
    if (index == 0) {
        const char *keys[] = {"rep/2", "rep/3"};
        mmc_status_t res[2];

        (void)mmc_remove_batch(mmc, keys, 2, res);
    }
    TK_CHECK_GOTO(it_mmc_barrier(5, REP_CLIENTS) == 0, "barrier 5");
    ret = 0;
fail:
    free(buf);
    mmc_destroy(mmc);
    return ret;
}

static void test_replicas(void **state)
{
    api_run(REP_CLIENTS, api_replicas_child, NULL);
}

/* ------------------------------------------- concurrent puts, one key */

#define RACE_CLIENTS 4
#define RACE_ROUNDS  8

static int api_race_child(int index, void *arg)
{
    const size_t size = 4 * MB;
    mmc_t *mmc = NULL;
    char *buf = NULL;
    int ret = 1;

    tk_role_set("race %d", index);
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    buf = malloc(size);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char key[32];
        mmc_status_t st;
        int ok, winner;

        snprintf(key, sizeof(key), "race/%d", round);
        it_mmc_fill(buf, size, 1000 * (uint64_t)round + (uint64_t)index);
        TK_CHECK_GOTO(it_mmc_barrier(3 * round, RACE_CLIENTS) == 0, "barrier");
        st = mmc_put(mmc, key, buf, size, NULL);
        TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_EXISTS, "put: %s",
                      mmc_status_name(st));
        if (st == MMC_OK) {
            atomic_fetch_add(&it_mmc_sh->val[2 * round], 1);
            atomic_store(&it_mmc_sh->val[2 * round + 1], index);
        }
        TK_CHECK_GOTO(it_mmc_barrier(3 * round + 1, RACE_CLIENTS) == 0,
                      "barrier");
        ok = atomic_load(&it_mmc_sh->val[2 * round]);
        winner = atomic_load(&it_mmc_sh->val[2 * round + 1]);
        TK_CHECK_GOTO(ok == 1, "round %d: %d puts succeeded", round, ok);
        memset(buf, 0, size);
        IT_MMC_ST(mmc_get(mmc, key, buf, size), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, size) ==
                          1000 * (uint64_t)round + (uint64_t)winner,
                      "round %d: read other bytes than the winner's", round);
        TK_CHECK_GOTO(it_mmc_barrier(3 * round + 2, RACE_CLIENTS) == 0,
                      "barrier");
    }
    ret = 0;
fail:
    free(buf);
    /* leave together: the objects live on the winners' segments */
    it_mmc_barrier(60, RACE_CLIENTS);
    mmc_destroy(mmc);
    return ret;
}

static void test_concurrent_put(void **state)
{
    api_run(RACE_CLIENTS, api_race_child, NULL);
}

/* ------------------------------- reads under concurrent remove + re-put */

#define CHURN_WRITERS 2
#define CHURN_READERS 2
#define CHURN_ROUNDS  150
#define CHURN_KEYS    2

static int api_churn_child(int index, void *arg)
{
    const size_t size = 1 * MB + 4096;
    bool writer = index < CHURN_WRITERS;
    mmc_t *mmc = NULL;
    char *buf = NULL;
    unsigned ok = 0, missing = 0;
    int ret = 1;

    tk_role_set("churn %s %d", writer ? "writer" : "reader", index);
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    buf = malloc(size);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    TK_CHECK_GOTO(it_mmc_barrier(0, CHURN_WRITERS + CHURN_READERS) == 0,
                  "start");
    if (writer) {
        for (int round = 0; round < CHURN_ROUNDS; round++) {
            char key[32];
            mmc_status_t st;

            snprintf(key, sizeof(key), "churn/%d", round % CHURN_KEYS);
            st = mmc_remove(mmc, key);
            TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_NOT_FOUND, "remove: %s",
                          mmc_status_name(st));
            it_mmc_fill(buf, size, ((uint64_t)index << 32) | (uint64_t)round);
            st = mmc_put(mmc, key, buf, size, NULL);
            TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_EXISTS, "put: %s",
                          mmc_status_name(st));
        }
        atomic_fetch_add(&it_mmc_sh->val[0], 1);
    } else {
        for (unsigned n = 0;
             atomic_load(&it_mmc_sh->val[0]) < CHURN_WRITERS || n < 10; n++) {
            char key[32];
            mmc_status_t st;
            uint64_t seed;

            snprintf(key, sizeof(key), "churn/%u", n % CHURN_KEYS);
            memset(buf, 0xee, size);
            st = mmc_get(mmc, key, buf, size);
            if (st == MMC_ERR_NOT_FOUND) {
                missing++;
                continue;
            }
            TK_CHECK_GOTO(st == MMC_OK, "get: %s", mmc_status_name(st));
            seed = it_mmc_seed_of(buf, size);
            TK_CHECK_GOTO(seed != UINT64_MAX && (seed >> 32) < CHURN_WRITERS &&
                              (seed & 0xffffffffu) < CHURN_ROUNDS,
                          "torn or foreign bytes (seed 0x%llx)",
                          (unsigned long long)seed);
            ok++;
        }
        tk_print("%u whole reads, %u not found", ok, missing);
    }
    ret = 0;
fail:
    free(buf);
    it_mmc_barrier(1, CHURN_WRITERS + CHURN_READERS);
    mmc_destroy(mmc);
    return ret;
}

static void test_churn(void **state)
{
    api_run(CHURN_WRITERS + CHURN_READERS, api_churn_child, NULL);
}

/* ------------------------------------------ many threads, one client */

#define THREADS       4
#define THREAD_ROUNDS 50

typedef struct api_thread_arg {
    mmc_t *mmc;
    int index;
    int ret;
} api_thread_arg_t;

static void *api_thread_fn(void *p)
{
    api_thread_arg_t *ta = p;
    const size_t size = 256 * 1024 + 8 * (size_t)ta->index;
    char *buf = malloc(size), key[32];
    mmc_status_t res[2];

    ta->ret = 1;
    if (buf == NULL) {
        return NULL;
    }
    for (int n = 0; n < THREAD_ROUNDS; n++) {
        const char *keys[2];
        void *bufs[2];
        size_t sizes[2];
        char shared[8192];

        snprintf(key, sizeof(key), "thr/%d/%d", ta->index, n);
        it_mmc_fill(buf, size, (uint64_t)(1000 * ta->index + n));
        IT_MMC_ST(mmc_put(ta->mmc, key, buf, size, NULL), MMC_OK);
        memset(buf, 0, size);
        /* a batch of its own object and the shared one */
        keys[0] = key;
        keys[1] = "thr/shared";
        bufs[0] = buf;
        bufs[1] = shared;
        sizes[0] = size;
        sizes[1] = sizeof(shared);
        IT_MMC_ST(mmc_get_batch(ta->mmc, keys, bufs, sizes, 2, res), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, size) ==
                          (uint64_t)(1000 * ta->index + n),
                      "thread %d round %d", ta->index, n);
        TK_CHECK_GOTO(it_mmc_seed_of(shared, sizeof(shared)) == 77, "shared");
        IT_MMC_ST(mmc_remove(ta->mmc, key), MMC_OK);
    }
    ta->ret = 0;
fail:
    free(buf);
    return NULL;
}

static int api_threads_child(int index, void *arg)
{
    api_thread_arg_t ta[THREADS];
    pthread_t tids[THREADS];
    char shared[8192];
    mmc_t *mmc = NULL;
    int ret = 1, started = 0;

    tk_role_set("threads");
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    it_mmc_fill(shared, sizeof(shared), 77);
    IT_MMC_ST(mmc_put(mmc, "thr/shared", shared, sizeof(shared), NULL), MMC_OK);
    for (started = 0; started < THREADS; started++) {
        ta[started].mmc = mmc;
        ta[started].index = started;
        ta[started].ret = 1;
        if (pthread_create(&tids[started], NULL, api_thread_fn, &ta[started]) !=
            0) {
            break;
        }
    }
    ret = started == THREADS ? 0 : 1;
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        ret |= ta[i].ret;
    }
    IT_MMC_ST(mmc_remove(mmc, "thr/shared"), MMC_OK);
fail:
    mmc_destroy(mmc);
    return ret;
}

static void test_threads(void **state)
{
    api_run(1, api_threads_child, NULL);
}

/* ------------------------------------------------ an idle client stays */

#define API_MEMBER_TIMEOUT    "5000"
#define API_MEMBER_TIMEOUT_MS 5000

static int api_idle_child(int index, void *arg)
{
    char buf[4096];
    mmc_t *mmc = NULL;
    int ret = 1;

    tk_role_set("idle");
    IT_MMC_ST(it_mmc_open(16 * MB, NULL, &mmc), MMC_OK);
    it_mmc_fill(buf, sizeof(buf), 9);
    IT_MMC_ST(mmc_put(mmc, "idle/a", buf, sizeof(buf), NULL), MMC_OK);
    /* silent longer than the member timeout: the library's heartbeat
     * keeps the membership, and with it the object */
    tk_sleep_ms(API_MEMBER_TIMEOUT_MS + API_MEMBER_TIMEOUT_MS / 2);
    memset(buf, 0, sizeof(buf));
    IT_MMC_ST(mmc_get(mmc, "idle/a", buf, sizeof(buf)), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(buf, sizeof(buf)) == 9, "read after idling");
    IT_MMC_ST(mmc_remove(mmc, "idle/a"), MMC_OK);
    ret = 0;
fail:
    mmc_destroy(mmc);
    return ret;
}

static void test_idle(void **state)
{
    api_run(1, api_idle_child, NULL);
}

/* ------------------------------------- the meta connection is broken */

static int api_reconnect_child(int index, void *arg)
{
    uint64_t deadline;
    char buf[4096];
    mmc_status_t st;
    mmc_t *mmc = NULL;
    int ret = 1;

    tk_role_set("reconnect");
    IT_MMC_ST(it_mmc_open(64 * MB, NULL, &mmc), MMC_OK);
    it_mmc_fill(buf, sizeof(buf), 5);
    IT_MMC_ST(mmc_put(mmc, "rc/a", buf, sizeof(buf), NULL), MMC_OK);
    atomic_store(&it_mmc_sh->val[0], 1);
    deadline = tk_time_ms() + IT_MMC_WAIT_MS;
    while (atomic_load(&it_mmc_sh->val[1]) == 0) {
        TK_CHECK_GOTO(tk_time_ms() < deadline, "the parent did not answer");
        tk_sleep_ms(1);
    }
    if (atomic_load(&it_mmc_sh->val[1]) == 2) {
        ret = 0; /* ss -K does not work here */
        goto fail;
    }
    /* the call that finds the connection broken fails with a peer error;
     * the next one reconnects, and the library registers again.  That
     * first call on the new connection is larger than what the meta
     * service takes before HELLO: it still gets through. */
    {
        enum { NBIG = 4096 };
        static char names[NBIG][40];
        static const char *big[NBIG];
        static mmc_status_t res[NBIG];

        for (int i = 0; i < NBIG; i++) {
            snprintf(names[i], sizeof(names[i]), "rc/big/%032d", i);
            big[i] = names[i];
        }
        deadline = tk_time_ms() + IT_MMC_WAIT_MS;
        while ((st = mmc_exist_batch(mmc, big, NBIG, res)) != MMC_OK) {
            TK_CHECK_GOTO(mf_status_is_peer_error(st) || st == MF_ERR_STATE,
                          "large exist after the break: %s",
                          mmc_status_name(st));
            TK_CHECK_GOTO(tk_time_ms() < deadline,
                          "no exist after the break: %s", mmc_status_name(st));
            tk_sleep_ms(20);
        }
        TK_CHECK_GOTO(res[0] == MMC_ERR_NOT_FOUND &&
                          res[NBIG - 1] == MMC_ERR_NOT_FOUND,
                      "large exist answers");
    }
    deadline = tk_time_ms() + IT_MMC_WAIT_MS;
    while ((st = mmc_put(mmc, "rc/b", buf, sizeof(buf), NULL)) != MMC_OK) {
        TK_CHECK_GOTO(mf_status_is_peer_error(st) || st == MMC_ERR_NO_SPACE ||
                          st == MF_ERR_STATE,
                      "put after the break: %s", mmc_status_name(st));
        TK_CHECK_GOTO(tk_time_ms() < deadline, "no put after the break: %s",
                      mmc_status_name(st));
        tk_sleep_ms(20);
    }
    memset(buf, 0, sizeof(buf));
    IT_MMC_ST(mmc_get(mmc, "rc/b", buf, sizeof(buf)), MMC_OK);
    TK_CHECK_GOTO(it_mmc_seed_of(buf, sizeof(buf)) == 5,
                  "read after the break");
    /* the meta service dropped the segment with the connection */
    IT_MMC_ST(mmc_exist(mmc, "rc/a"), MMC_ERR_NOT_FOUND);
    IT_MMC_ST(mmc_remove(mmc, "rc/b"), MMC_OK);
    ret = 0;
fail:
    mmc_destroy(mmc);
    return ret;
}

static void test_reconnect(void **state)
{
    uint64_t deadline;
    char cmd[128];
    pid_t pid;
    int rc;

    it_mmc_shared_reset();
    pid = tk_proc_spawn(api_reconnect_child, 0, NULL);
    assert_true(pid > 0);
    deadline = tk_time_ms() + IT_MMC_WAIT_MS;
    while (atomic_load(&it_mmc_sh->val[0]) == 0 && tk_time_ms() < deadline) {
        tk_sleep_ms(1);
    }
    /* break the client's end of its connections to the RPC port */
    snprintf(cmd, sizeof(cmd),
             "ss -K dst 127.0.0.1 dport = :%u >/dev/null 2>&1",
             (unsigned)it_mmc_sh->meta.port);
    rc = system(cmd);
    if (rc != 0) {
        tk_print("NOTE: ss -K does not work here; not breaking the link");
    }
    atomic_store(&it_mmc_sh->val[1], rc == 0 ? 1 : 2);
    assert_int_equal(tk_proc_wait(pid, 2 * IT_MMC_WAIT_MS), 0);
}

/* ------------------------------------------- a client killed mid-put */

#define KILL_SEG  (64 * MB)
#define KILL_OBJ  (15 * MB)
#define KILL_FILL 4 /* 4 x 15 MiB fit in 64 MiB only if nothing leaked */

/* index 0: the storage client; 1: the victim, a pure client putting. */
static int api_kill_child(int index, void *arg)
{
    mmc_t *mmc = NULL;
    char *buf = NULL;
    int ret = 1;

    tk_role_set("kill %d", index);
    IT_MMC_ST(it_mmc_open(index == 0 ? KILL_SEG : 0, NULL, &mmc), MMC_OK);
    buf = malloc(KILL_OBJ);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    it_mmc_fill(buf, KILL_OBJ, (uint64_t)index);
    if (index == 1) {
        TK_CHECK_GOTO(it_mmc_barrier(0, 2) == 0, "barrier");
        for (unsigned n = 0;; n++) {
            char key[32];
            mmc_status_t st;

            snprintf(key, sizeof(key), "kill/%u", n);
            st = mmc_put(mmc, key, buf, KILL_OBJ, NULL);
            TK_CHECK_GOTO(st == MMC_OK, "put: %s", mmc_status_name(st));
            IT_MMC_ST(mmc_remove(mmc, key), MMC_OK);
            atomic_fetch_add(&it_mmc_sh->val[0], 1); /* the parent kills */
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(0, 2) == 0, "barrier");
    /* the parent kills the victim, then lets us fill the segment */
    TK_CHECK_GOTO(it_mmc_barrier(1, 2) == 0, "barrier");
    {
        uint64_t deadline = tk_time_ms() + IT_MMC_WAIT_MS;
        char key[32];
        mmc_status_t st = MMC_OK;
        int placed;

        /* the victim may have died between a put and its remove: that
         * object is committed and rightly keeps its space */
        snprintf(key, sizeof(key), "kill/%d", atomic_load(&it_mmc_sh->val[0]));
        st = mmc_remove(mmc, key);
        TK_CHECK_GOTO(st == MMC_OK || st == MMC_ERR_NOT_FOUND, "remove: %s",
                      mmc_status_name(st));
        tk_print("the victim died in put %d (%s)",
                 atomic_load(&it_mmc_sh->val[0]), mmc_status_name(st));
        /* the meta service reclaims the victim's put when its connection
         * closes: retry until then */
        for (;;) {
            for (placed = 0; placed < KILL_FILL; placed++) {
                snprintf(key, sizeof(key), "fill/%d", placed);
                st = mmc_put(mmc, key, buf, KILL_OBJ, NULL);
                if (st != MMC_OK) {
                    break;
                }
            }
            if (placed == KILL_FILL || st != MMC_ERR_NO_SPACE ||
                tk_time_ms() > deadline) {
                break;
            }
            tk_print("%d objects fit, waiting for the victim's space", placed);
            for (int i = 0; i < placed; i++) {
                snprintf(key, sizeof(key), "fill/%d", i);
                IT_MMC_ST(mmc_remove(mmc, key), MMC_OK);
            }
            tk_sleep_ms(100);
        }
        TK_CHECK_GOTO(placed == KILL_FILL, "only %d of %d objects fit: %s",
                      placed, KILL_FILL, mmc_status_name(st));
        snprintf(key, sizeof(key), "fill/%d", KILL_FILL);
        st = mmc_put(mmc, key, buf, KILL_OBJ, NULL);
        if (st == MMC_OK) {
            mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};

            (void)mmc_query(mmc, key, &info);
            TK_CHECK_GOTO(false, "a fifth object fit, on rank %u (this is %u)",
                          info.ranks[0], mmc_rank(mmc));
        }
        TK_CHECK_GOTO(st == MMC_ERR_NO_SPACE, "fifth put: %s",
                      mmc_status_name(st));
        for (int i = 0; i < KILL_FILL; i++) {
            snprintf(key, sizeof(key), "fill/%d", i);
            IT_MMC_ST(mmc_remove(mmc, key), MMC_OK);
        }
    }
    ret = 0;
fail:
    free(buf);
    mmc_destroy(mmc);
    return ret;
}

static void test_kill_mid_put(void **state)
{
    uint64_t deadline;
    pid_t pids[2];
    int code;

    if (it_ucx_sw_rma()) {
        tk_print("skipped: a put killed in mid-copy aborts its target over "
                 "UCX's software RMA");
        skip();
    }
    it_mmc_shared_reset();
    assert_int_equal(tk_proc_spawn_n(2, api_kill_child, NULL, pids), 0);
    /* a few puts done: the victim is busy putting, kill it */
    deadline = tk_time_ms() + IT_MMC_WAIT_MS;
    while (atomic_load(&it_mmc_sh->val[0]) < 3 && tk_time_ms() < deadline) {
        tk_sleep_ms(1);
    }
    assert_true(atomic_load(&it_mmc_sh->val[0]) >= 3);
    kill(pids[1], SIGKILL);
    code = tk_proc_wait(pids[1], 30000);
    assert_int_equal(code, 128 + SIGKILL);
    atomic_fetch_add(&it_mmc_sh->bar[1], 1); /* the victim's turn */
    assert_int_equal(tk_proc_wait(pids[0], 2 * IT_MMC_WAIT_MS), 0);
}

/* ---------------------------------------------------------------- main */

static int api_setup(void **state)
{
    /* no eviction: the kill test counts free space by filling it; a short
     * member timeout for the idle test; puts and leases that may take
     * longer under ThreadSanitizer (TK_TIME_SCALE) */
    char put_timeout[48], lease[48];
    const char *const sets[] = {"evict_high_pct=100",
                                "evict_max_per_put=0",
                                "member_timeout_ms=" API_MEMBER_TIMEOUT,
                                put_timeout,
                                lease,
                                NULL};

    snprintf(put_timeout, sizeof(put_timeout), "put_timeout_ms=%d",
             30000 * TK_TIME_SCALE);
    snprintf(lease, sizeof(lease), "lease_ms=%d", 30000 * TK_TIME_SCALE);
    if (it_mmc_shared_init() != 0 ||
        it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", sets) != 0) {
        return -1;
    }
    tk_print("mmc-meta at %s (store %u, http %u)", it_mmc_sh->meta.url,
             it_mmc_sh->meta.store_port, it_mmc_sh->meta.http_port);
    return 0;
}

static int api_teardown(void **state)
{
    int code = tk_meta_stop(&it_mmc_sh->meta, SIGTERM);

    if (code != 0) {
        tk_print("mmc-meta exited with %d", code);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_batch_layers),
        cmocka_unit_test(test_max_batch),
        cmocka_unit_test(test_replicas),
        cmocka_unit_test(test_concurrent_put),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_kill_mid_put),
    };

    return tk_group_run(tests, api_setup, api_teardown);
}
