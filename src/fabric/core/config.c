/*
 * BM configuration: one declarative table feeds the defaults, the MF_<KEY>
 * environment variables, `key = value` files, single settings and the help
 * text.  Values are range-checked by the table; the transport name is
 * checked against the transports built in.
 *
 * Keys "<transport>.<key>" belong to the transports: each checks them with
 * its own table (tl/tl.c), and the fabric keeps them as text in
 * cfg->tl_settings.  Every change is made on a copy and applied only when
 * it parsed and checked, so a failed call leaves cfg as it was.
 */
#include "fabric/core/core.h"
#include "net/tls.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const mf_cfg_entry_t mf_fabric_cfg_entries[] = {
    {"host_base", MF_CFG_U64, offsetof(mf_bm_config_t, host_base), 0,
     MF_FABRIC_DEFAULT_BASE_STR, 0x10000, 0x7fffffff0000ull,
     "base address of the host GVA window; the same in every process"},
    {"device_base", MF_CFG_U64, offsetof(mf_bm_config_t, device_base), 0,
     MF_MEM_DEFAULT_DEVICE_BASE_STR, 0x10000, 0x7fffffff0000ull,
     "base address of the device GVA window (device segments, "
     "max_hbm_per_rank apart); the same in every process"},
    {"shm_base", MF_CFG_U64, offsetof(mf_bm_config_t, shm_base), 0,
     MF_MEM_DEFAULT_SHM_BASE_STR, 0x10000, 0x7fffffff0000ull,
     "start of the range (8 TiB; 64 GiB in a ThreadSanitizer build) where "
     "SHM places the GVA windows of its host regions; the same in every "
     "process"},
    {"shm_device_base", MF_CFG_U64, offsetof(mf_bm_config_t, shm_device_base),
     0, MF_MEM_DEFAULT_SHM_DEVICE_BASE_STR, 0x10000, 0x7fffffff0000ull,
     "start of the range (as large) where SHM places the GVA windows of its "
     "device regions; the same in every process"},
    {"copy_threads", MF_CFG_U32, offsetof(mf_bm_config_t, copy_threads), 0, "1",
     0, 64, "copy threads besides the caller (0..64)"},
    {"copy_split_min", MF_CFG_SIZE, offsetof(mf_bm_config_t, copy_split_min), 0,
     "1M", 4096, 1ull << 40,
     "copies and batches from this many bytes are split across the copy "
     "threads"},
    {"timeout_ms", MF_CFG_MS, offsetof(mf_bm_config_t, timeout_ms), 0, "60s", 1,
     0xffffffffu, "timeout of bootstrap steps (create, join)"},
    {"op_timeout_ms", MF_CFG_MS, offsetof(mf_bm_config_t, op_timeout_ms), 0,
     "10s", 1, 0xffffffffu, "timeout of each config store request"},
    {"heartbeat_ms", MF_CFG_MS, offsetof(mf_bm_config_t, heartbeat_ms), 0, "1s",
     1, 0xffffffffu, "liveness heartbeat period to the config store"},
    {"prefault", MF_CFG_BOOL, offsetof(mf_bm_config_t, prefault), 0, "true", 0,
     0, "fault segment pages in at create and join, not on first use"},
    {"transport", MF_CFG_STR, offsetof(mf_bm_config_t, transport),
     sizeof(((mf_bm_config_t *)0)->transport), "auto", 0, 0,
     "transport to peers: auto (for each peer the best transport that "
     "reaches it: mapped shared memory on the same host, tcp to other "
     "hosts) or the name of one transport (shm, tcp) for every peer"},
    {"host_id", MF_CFG_STR, offsetof(mf_bm_config_t, host_id),
     sizeof(((mf_bm_config_t *)0)->host_id), "", 0, 0,
     "identity of this host: ranks with equal ids share memory over shm, "
     "others use tcp; empty: detected from the boot id, host name and "
     "network namespace"},
};

const mf_cfg_table_t mf_fabric_cfg_table = {
    .component = "mf-bm",
    .env_prefix = "MF_",
    .entries = mf_fabric_cfg_entries,
    .count = MF_CFG_COUNT(mf_fabric_cfg_entries),
};

mf_status_t mf_fabric_config_check(const mf_bm_config_t *cfg)
{
    mf_status_t status;
    void *config;
    size_t i;

    /* a caller may fill the struct by hand: never read past the field */
    if (memchr(cfg->transport, '\0', sizeof(cfg->transport)) == NULL) {
        mf_error("mf-bm: transport name is not terminated within %zu bytes",
                 sizeof(cfg->transport));
        return MF_ERR_CONFIG;
    }
    if (memchr(cfg->host_id, '\0', sizeof(cfg->host_id)) == NULL ||
        memchr(cfg->tl_settings, '\0', sizeof(cfg->tl_settings)) == NULL ||
        memchr(cfg->tls_settings, '\0', sizeof(cfg->tls_settings)) == NULL) {
        mf_error("mf-bm: host_id, the transport or the TLS settings are not "
                 "terminated");
        return MF_ERR_CONFIG;
    }
    status = mf_cfg_text_parse(&mf_tls_section, cfg->tls_settings, &config);
    if (status != MF_OK) {
        return status;
    }
    free(config);
    if (strcmp(cfg->transport, "auto") != 0 &&
        mf_tl_find(cfg->transport) == NULL) {
        mf_error("mf-bm: unknown transport '%s' (auto, %s)", cfg->transport,
                 mf_tl_names());
        return MF_ERR_CONFIG;
    }
    for (i = 0; i < mf_tl_count(); i++) {
        status = mf_tl_config_parse(mf_tl_at(i), cfg->tl_settings, &config);
        if (status != MF_OK) {
            return status;
        }
        free(config);
    }
    if (cfg->host_base % mf_page_size() != 0) {
        mf_error("mf-bm: host_base 0x%llx is not page aligned",
                 (unsigned long long)cfg->host_base);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

/* Sets one key of either kind on cfg (no check of the whole). */
static mf_status_t mf_fabric_config_set_from(mf_bm_config_t *cfg,
                                             const char *key, const char *value,
                                             const char *origin)
{
    key = mf_cfg_alias_resolve(&mf_fabric_cfg_table, key, origin);
    key = mf_tl_config_alias(key, origin);
    if (mf_cfg_find(mf_tls_section.table, key) != NULL) {
        return mf_cfg_text_set(&mf_tls_section, cfg->tls_settings,
                               sizeof(cfg->tls_settings), key, value, origin);
    }
    if (mf_cfg_find(&mf_fabric_cfg_table, key) != NULL ||
        mf_tl_config_owner(key) == NULL) {
        return mf_cfg_set_from(&mf_fabric_cfg_table, cfg, key, value, origin);
    }
    return mf_tl_config_set(cfg->tl_settings, sizeof(cfg->tl_settings), key,
                            value, origin);
}

static mf_status_t mf_fabric_config_line(void *arg, const char *key,
                                         const char *value, const char *origin)
{
    return mf_fabric_config_set_from(arg, key, value, origin);
}

/* Applies <prefix><KEY> variables of every key to cfg (no check). */
static mf_status_t mf_fabric_config_apply_env(mf_bm_config_t *cfg,
                                              const char *prefix)
{
    mf_cfg_table_t table = mf_fabric_cfg_table;
    mf_status_t status;

    table.env_prefix = prefix;
    status = mf_cfg_load_env(&table, cfg);
    if (status != MF_OK) {
        return status;
    }
    status = mf_tl_config_load_env(cfg->tl_settings, sizeof(cfg->tl_settings),
                                   prefix);
    if (status != MF_OK) {
        return status;
    }
    return mf_cfg_text_load_env(&mf_tls_section, cfg->tls_settings,
                                sizeof(cfg->tls_settings), prefix);
}

void mf_fabric_config_init(mf_bm_config_t *cfg)
{
    mf_bm_config_t tmp;

    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = sizeof(*cfg);
    (void)mf_cfg_set_defaults(&mf_fabric_cfg_table, cfg);
    /* The environment applies as a whole or not at all. */
    tmp = *cfg;
    if (mf_fabric_config_apply_env(&tmp, "MF_") == MF_OK &&
        mf_fabric_config_check(&tmp) == MF_OK) {
        *cfg = tmp;
    } else {
        mf_error("mf-bm: ignoring the MF_* environment settings");
    }
}

mf_status_t mf_fabric_config_load_env(mf_bm_config_t *cfg,
                                      const char *env_prefix)
{
    mf_bm_config_t tmp;
    mf_status_t status;

    if (cfg == NULL || cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    tmp = *cfg;
    status = mf_fabric_config_apply_env(&tmp, env_prefix != NULL ? env_prefix
                                                                 : "MF_");
    if (status != MF_OK) {
        return status;
    }
    status = mf_fabric_config_check(&tmp);
    if (status != MF_OK) {
        return status;
    }
    *cfg = tmp;
    return MF_OK;
}

mf_status_t mf_fabric_config_load(mf_bm_config_t *cfg, const char *path)
{
    mf_bm_config_t tmp;
    mf_status_t status;
    size_t len;
    char *text;

    if (cfg == NULL || path == NULL || cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    status = mf_cfg_read_file(mf_fabric_cfg_table.component, path, &text, &len);
    if (status != MF_OK) {
        return status;
    }
    tmp = *cfg;
    status = mf_cfg_parse_lines(mf_fabric_cfg_table.component, text, len, path,
                                mf_fabric_config_line, &tmp);
    free(text);
    if (status != MF_OK) {
        return status;
    }
    status = mf_fabric_config_check(&tmp);
    if (status != MF_OK) {
        mf_error("mf-bm: in %s", path);
        return status;
    }
    *cfg = tmp;
    return MF_OK;
}

mf_status_t mf_fabric_config_set(mf_bm_config_t *cfg, const char *key,
                                 const char *value)
{
    mf_bm_config_t tmp;
    mf_status_t status;

    if (cfg == NULL || key == NULL || value == NULL ||
        cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    tmp = *cfg;
    status = mf_fabric_config_set_from(&tmp, key, value, "setting");
    if (status != MF_OK) {
        return status;
    }
    status = mf_fabric_config_check(&tmp);
    if (status != MF_OK) {
        return status;
    }
    *cfg = tmp;
    return MF_OK;
}

mf_status_t mf_fabric_config_get(const mf_bm_config_t *cfg, const char *key,
                                 char *buf, size_t len)
{
    const mf_cfg_entry_t *entry;
    char value[1024];
    mf_status_t status;

    if (cfg == NULL || key == NULL || buf == NULL || len == 0 ||
        cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    key = mf_cfg_alias_resolve(&mf_fabric_cfg_table, key, "get");
    key = mf_tl_config_alias(key, "get");
    entry = mf_cfg_find(&mf_fabric_cfg_table, key);
    if (entry != NULL) {
        mf_cfg_format(entry, cfg, value, sizeof(value));
    } else if (mf_cfg_find(mf_tls_section.table, key) != NULL) {
        status = mf_cfg_text_get(&mf_tls_section, cfg->tls_settings, key, value,
                                 sizeof(value));
        if (status != MF_OK) {
            return status;
        }
    } else {
        status = mf_tl_config_get(cfg->tl_settings, key, value, sizeof(value));
        if (status != MF_OK) {
            mf_error("mf-bm: unknown key '%s'", key);
            return status;
        }
    }
    if (strlen(value) >= len) {
        return MF_ERR_TOO_LARGE;
    }
    memcpy(buf, value, strlen(value) + 1);
    return MF_OK;
}

void mf_fabric_config_help(FILE *out)
{
    mf_bm_config_help_as(out, "", "MF_");
}

void mf_fabric_config_help_as(FILE *out, const char *key_prefix,
                              const char *env_prefix)
{
    out = out != NULL ? out : stdout;
    key_prefix = key_prefix != NULL ? key_prefix : "";
    env_prefix = env_prefix != NULL ? env_prefix : "MF_";
    mf_cfg_print_help_as(&mf_fabric_cfg_table, out, key_prefix, env_prefix);
    mf_tl_config_help(out, key_prefix, env_prefix);
    fprintf(out, "\n");
    mf_cfg_print_help_as(mf_tls_section.table, out, key_prefix, env_prefix);
}

void mf_fabric_store_config(const mf_bm_config_t *cfg,
                            mf_store_config_t *store_cfg)
{
    mf_store_config_init(store_cfg);
    store_cfg->op_timeout_ms = cfg->op_timeout_ms;
    store_cfg->heartbeat_ms = cfg->heartbeat_ms;
    store_cfg->connect_timeout_ms =
        MF_MIN(store_cfg->connect_timeout_ms, cfg->timeout_ms);
    mf_strlcpy(store_cfg->tls_settings, cfg->tls_settings,
               sizeof(store_cfg->tls_settings));
}
