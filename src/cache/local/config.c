/*
 * mmc-local.conf: the local service's settings.
 *
 * One declarative table (util/config.h) gives the defaults, the
 * `key = value` files, the MMC_<KEY> environment variables and the help
 * text.  Keys "fabric.<key>" are MemFabric's BM settings of this process
 * (mf_bm_config_t, cfg->fabric); their variables are MMC_FABRIC_<KEY>.
 *
 * Every change is made on a copy and applied only when the whole of it
 * (a file, the environment, one key) parsed and checked, so a failed call
 * leaves cfg as it was.
 */
#include "cache/local/local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MMC_CFG_FABRIC_PREFIX     "fabric."
#define MMC_CFG_FABRIC_ENV_PREFIX "MMC_FABRIC_"

static const mf_cfg_entry_t mmc_cfg_entries[] = {
    {"meta_url", MF_CFG_STR, offsetof(mmc_config_t, meta_url),
     sizeof(((mmc_config_t *)0)->meta_url), "tcp://127.0.0.1:5800", 0, 0,
     "address of the meta service (mmc-meta), tcp://host:port"},
    {"dram_size", MF_CFG_SIZE, offsetof(mmc_config_t, dram_size), 0, "1G", 0, 0,
     "DRAM this process contributes to the pool; 0: a pure client that "
     "stores nothing"},
    {"hbm_size", MF_CFG_SIZE, offsetof(mmc_config_t, hbm_size), 0, "0", 0, 0,
     "device memory (HBM) this process contributes to the pool; 0: none. "
     "Needs the meta service's max_hbm_segment_size >= it and CUDA"},
    {"replicas", MF_CFG_U32, offsetof(mmc_config_t, replicas), 0, "1", 1,
     MMC_MAX_REPLICAS, "replicas of a put that does not ask for a number"},
    {"timeout_ms", MF_CFG_MS, offsetof(mmc_config_t, timeout_ms), 0, "10s", 1,
     0xffffffffu, "timeout of one request to the meta service"},
    {"connect_timeout_ms", MF_CFG_MS,
     offsetof(mmc_config_t, connect_timeout_ms), 0, "30s", 1, 0xffffffffu,
     "timeout of connecting to the meta service and joining the pool"},
    {"name", MF_CFG_STR, offsetof(mmc_config_t, name),
     sizeof(((mmc_config_t *)0)->name), "", 0, 0,
     "name the meta service shows for this process; empty: host:pid"},
    {"trace", MF_CFG_STR, offsetof(mmc_config_t, trace),
     sizeof(((mmc_config_t *)0)->trace), "", 0, 0,
     "the built-in tracer: log (every trace point's figures to the log at "
     "exit), a file path (to that file), or empty: off; MF_TRACE wins"},
    {"ssd_path", MF_CFG_STR, offsetof(mmc_config_t, ssd_path),
     sizeof(((mmc_config_t *)0)->ssd_path), "", 0, 0,
     "file or block device of an SSD area this process contributes: "
     "objects evicted from its DRAM go there and come back on a read"},
    {"ssd_size", MF_CFG_SIZE, offsetof(mmc_config_t, ssd_size), 0, "0", 0, 0,
     "bytes of the SSD area (a multiple of 4K); 0: none.  Needs ssd_path "
     "and dram_size"},
    {"ssd_log_path", MF_CFG_STR, offsetof(mmc_config_t, ssd_log_path),
     sizeof(((mmc_config_t *)0)->ssd_log_path), "", 0, 0,
     "the SSD area's log of what it holds, read again at a restart; "
     "empty: ssd_path.log (a block device needs one)"},
    {"ssd_threads", MF_CFG_U32, offsetof(mmc_config_t, ssd_threads), 0, "4", 1,
     64, "threads that write objects to the SSD area and read them back"},
};

static const mf_cfg_table_t mmc_cfg_table = {
    .component = "mmc-local",
    .env_prefix = "MMC_",
    .entries = mmc_cfg_entries,
    .count = MF_CFG_COUNT(mmc_cfg_entries),
};

mmc_status_t mmc_local_config_check(const mmc_config_t *cfg)
{
    mf_url_t urls[MF_URL_LIST_MAX];
    size_t nurls;

    if (cfg->size < sizeof(*cfg)) {
        mf_error("mmc-local: config size %zu, expected %zu (call "
                 "mmc_config_init)",
                 cfg->size, sizeof(*cfg));
        return MF_ERR_INVALID;
    }
    if (memchr(cfg->meta_url, '\0', sizeof(cfg->meta_url)) == NULL ||
        memchr(cfg->name, '\0', sizeof(cfg->name)) == NULL ||
        memchr(cfg->trace, '\0', sizeof(cfg->trace)) == NULL ||
        memchr(cfg->ssd_path, '\0', sizeof(cfg->ssd_path)) == NULL ||
        memchr(cfg->ssd_log_path, '\0', sizeof(cfg->ssd_log_path)) == NULL) {
        mf_error("mmc-local: meta_url, name, trace, ssd_path or ssd_log_path "
                 "is not terminated");
        return MF_ERR_CONFIG;
    }
    if ((cfg->ssd_size != 0) &&
        ((cfg->ssd_path[0] == '\0') || (cfg->dram_size == 0) ||
         (cfg->ssd_size % 4096 != 0) || (cfg->ssd_threads == 0) ||
         (cfg->ssd_threads > 64))) {
        mf_error("mmc-local: an SSD area (ssd_size %llu) needs ssd_path, "
                 "dram_size > 0 (objects come back through DRAM), a size "
                 "that is a multiple of 4K and 1..64 ssd_threads",
                 (unsigned long long)cfg->ssd_size);
        return MF_ERR_CONFIG;
    }
    if (mf_url_list_parse(cfg->meta_url, urls, MF_URL_LIST_MAX, &nurls) !=
        MF_OK) {
        mf_error("mmc-local: meta_url '%s' is not tcp://host:port (or a "
                 "comma-separated list of them)",
                 cfg->meta_url);
        return MF_ERR_CONFIG;
    }
    for (size_t i = 0; i < nurls; i++) {
        if (urls[i].port == 0) {
            mf_error("mmc-local: meta_url '%s': port 0", cfg->meta_url);
            return MF_ERR_CONFIG;
        }
    }
    if (cfg->replicas < 1 || cfg->replicas > MMC_MAX_REPLICAS) {
        mf_error("mmc-local: replicas %u out of range (1..%u)", cfg->replicas,
                 MMC_MAX_REPLICAS);
        return MF_ERR_CONFIG;
    }
    if (cfg->timeout_ms == 0 || cfg->connect_timeout_ms == 0) {
        mf_error("mmc-local: timeout_ms and connect_timeout_ms must be > 0");
        return MF_ERR_CONFIG;
    }
    if (cfg->fabric.size < sizeof(cfg->fabric)) {
        mf_error("mmc-local: fabric settings not initialized");
        return MF_ERR_INVALID;
    }
    return mf_bm_config_check(&cfg->fabric);
}

/* A copy to a host that vanished fails within the time a request to the
 * meta service may take (timeout_ms), not MemFabric's 30 s default: the
 * same for tcp.timeout_ms and, in builds with the ucx transport,
 * ucx.timeout_ms. */
#define MMC_LOCAL_TCP_TIMEOUT "10s"

static bool mmc_config_has_transport(const char *name)
{
    for (size_t i = 0; i < mf_bm_transport_count(); i++) {
        if (strcmp(mf_bm_transport_name(i), name) == 0) {
            return true;
        }
    }
    return false;
}

MF_API void mmc_config_init(mmc_config_t *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = sizeof(*cfg);
    (void)mf_cfg_set_defaults(&mmc_cfg_table, cfg);
    mf_bm_config_init(&cfg->fabric);
    (void)mf_bm_config_set(&cfg->fabric, "tcp.timeout_ms",
                           MMC_LOCAL_TCP_TIMEOUT);
    if (mmc_config_has_transport("ucx")) {
        (void)mf_bm_config_set(&cfg->fabric, "ucx.timeout_ms",
                               MMC_LOCAL_TCP_TIMEOUT);
    }
}

/* Sets one key on cfg (no check of the whole); origin names the source. */
static mmc_status_t mmc_config_set_from(mmc_config_t *cfg, const char *key,
                                        const char *value, const char *origin)
{
    mmc_status_t status;

    /* tls.* is the fabric's: one set for the meta service and the pool */
    if (mf_cfg_find(mf_tls_section.table, key) != NULL) {
        return mf_cfg_text_set(&mf_tls_section, cfg->fabric.tls_settings,
                               sizeof(cfg->fabric.tls_settings), key, value,
                               origin);
    }
    if (strncmp(key, MMC_CFG_FABRIC_PREFIX, strlen(MMC_CFG_FABRIC_PREFIX)) ==
        0) {
        status = mf_bm_config_set(&cfg->fabric,
                                  key + strlen(MMC_CFG_FABRIC_PREFIX), value);
        if (status != MF_OK) {
            mf_error("mmc-local: %s: refusing %s = %s", origin, key, value);
        }
        return status;
    }
    return mf_cfg_set_from(&mmc_cfg_table, cfg, key, value, origin);
}

MF_API mmc_status_t mmc_config_get(const mmc_config_t *cfg, const char *key,
                                   char *buf, size_t len)
{
    const mf_cfg_entry_t *entry;
    char value[1024];

    if (cfg == NULL || key == NULL || buf == NULL || len == 0 ||
        cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    if (strncmp(key, MMC_CFG_FABRIC_PREFIX, strlen(MMC_CFG_FABRIC_PREFIX)) ==
        0) {
        return mf_bm_config_get(&cfg->fabric,
                                key + strlen(MMC_CFG_FABRIC_PREFIX), buf, len);
    }
    if (mf_cfg_find(mf_tls_section.table, key) != NULL) {
        return mf_bm_config_get(&cfg->fabric, key, buf, len);
    }
    entry = mf_cfg_find(&mmc_cfg_table, key);
    if (entry == NULL) {
        mf_error("mmc-local: unknown key '%s'", key);
        return MF_ERR_CONFIG;
    }
    mf_cfg_format(entry, cfg, value, sizeof(value));
    if (strlen(value) >= len) {
        return MF_ERR_TOO_LARGE;
    }
    memcpy(buf, value, strlen(value) + 1);
    return MMC_OK;
}

MF_API mmc_status_t mmc_config_set(mmc_config_t *cfg, const char *key,
                                   const char *value)
{
    mmc_config_t tmp;
    mmc_status_t status;

    if (cfg == NULL || key == NULL || value == NULL ||
        cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    tmp = *cfg;
    status = mmc_config_set_from(&tmp, key, value, "setting");
    if (status != MF_OK) {
        return status;
    }
    status = mmc_local_config_check(&tmp);
    if (status != MF_OK) {
        mf_error("mmc-local: refusing %s = %s", key, value);
        return MF_ERR_CONFIG;
    }
    *cfg = tmp;
    return MF_OK;
}

static mmc_status_t mmc_config_line(void *arg, const char *key,
                                    const char *value, const char *origin)
{
    return mmc_config_set_from(arg, key, value, origin);
}

/* Applies MMC_<KEY> (MMC_TLS_<KEY> too) and MMC_FABRIC_<KEY> to cfg (no
 * check). */
static mmc_status_t mmc_config_apply_env(mmc_config_t *cfg)
{
    mmc_status_t status;

    status = mf_cfg_load_env(&mmc_cfg_table, cfg);
    if (status == MF_OK) {
        status = mf_cfg_text_load_env(&mf_tls_section, cfg->fabric.tls_settings,
                                      sizeof(cfg->fabric.tls_settings),
                                      mmc_cfg_table.env_prefix);
    }
    if (status != MF_OK) {
        return status;
    }
    return mf_bm_config_load_env(&cfg->fabric, MMC_CFG_FABRIC_ENV_PREFIX);
}

MF_API mmc_status_t mmc_config_load(mmc_config_t *cfg, const char *path)
{
    mmc_config_t tmp;
    mmc_status_t status;
    size_t len;
    char *text;

    if (cfg == NULL || path == NULL || cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    status = mf_cfg_read_file(mmc_cfg_table.component, path, &text, &len);
    if (status != MF_OK) {
        return status;
    }
    tmp = *cfg;
    status = mf_cfg_parse_lines(mmc_cfg_table.component, text, len, path,
                                mmc_config_line, &tmp);
    free(text);
    if (status != MF_OK) {
        return status;
    }
    status = mmc_config_apply_env(&tmp);
    if (status != MF_OK) {
        return status;
    }
    status = mmc_local_config_check(&tmp);
    if (status != MF_OK) {
        mf_error("mmc-local: in %s or the MMC_* environment", path);
        return MF_ERR_CONFIG;
    }
    *cfg = tmp;
    return MF_OK;
}

MF_API mmc_status_t mmc_config_load_env(mmc_config_t *cfg)
{
    mmc_config_t tmp;
    mmc_status_t status;

    if (cfg == NULL || cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    tmp = *cfg;
    status = mmc_config_apply_env(&tmp);
    if (status != MF_OK) {
        return status;
    }
    status = mmc_local_config_check(&tmp);
    if (status != MF_OK) {
        mf_error("mmc-local: in the MMC_* environment");
        return MF_ERR_CONFIG;
    }
    *cfg = tmp;
    return MF_OK;
}

MF_API void mmc_config_help(FILE *out)
{
    if (out == NULL) {
        out = stdout;
    }
    mf_cfg_print_help(&mmc_cfg_table, out);
    fprintf(out, "\nTLS to the meta service and the pool's config store "
                 "(also fabric.tls.*):\n");
    mf_cfg_print_help_as(mf_tls_section.table, out, "",
                         mmc_cfg_table.env_prefix);
    fprintf(out, "\nMemFabric settings of this process:\n");
    mf_bm_config_help_as(out, MMC_CFG_FABRIC_PREFIX, MMC_CFG_FABRIC_ENV_PREFIX);
}
