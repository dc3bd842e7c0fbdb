/*
 * The settings of the config store server: one declarative table that
 * gives mf_store_server_config_init() its defaults and the mf-store daemon
 * its config file, environment (MF_STORE_*) and --help.
 *
 * The table works on a private mirror of the public struct (the table has
 * no 16-bit type for the port); every public call converts to the mirror,
 * applies the table and converts back only on success.  The tls.* keys
 * (net/tls.h) are kept as text in cfg->tls_settings, checked as a whole
 * whenever one is set.
 */
#include "net/tls.h"
#include "util/config.h"
#include "util/log.h"
#include "util/misc.h"

#include <memfabric/mf_store.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct mf_store_server_opts {
    char host[64];
    uint32_t port;
    uint32_t max_key_size;
    uint64_t max_value_size; /* MF_CFG_SIZE stores 64 bits */
    uint64_t max_total_bytes;
    uint32_t max_connections;
    uint32_t heartbeat_timeout_ms;
    uint32_t idle_timeout_ms;
    int log_level;
} mf_store_server_opts_t;

/* A numeric setting named like its field. */
#define MF_STORE_OPT(_name, _type, _def, _min, _max, _help)                    \
    {                                                                          \
        .name = #_name, .type = _type,                                         \
        .offset = offsetof(mf_store_server_opts_t, _name),                     \
        .default_value = _def, .min = _min, .max = _max, .help = _help         \
    }

static const mf_cfg_entry_t mf_store_server_cfg_entries[] = {
    {"host", MF_CFG_STR, offsetof(mf_store_server_opts_t, host),
     sizeof(((mf_store_server_opts_t *)0)->host), "127.0.0.1", 0, 0,
     "address to listen on, e.g. 0.0.0.0 for every interface"},
    MF_STORE_OPT(port, MF_CFG_U32, "0", 0, 65535,
                 "TCP port to listen on; 0 picks a free port"),
    MF_STORE_OPT(max_key_size, MF_CFG_U32, "1024", 1, 1u << 20,
                 "longest key in bytes"),
    MF_STORE_OPT(max_value_size, MF_CFG_SIZE, "16M", 0, 1ull << 30,
                 "largest value in bytes"),
    MF_STORE_OPT(max_total_bytes, MF_CFG_SIZE, "1G", 1, UINT64_MAX,
                 "all keys and values together, in bytes"),
    MF_STORE_OPT(max_connections, MF_CFG_U32, "4096", 1, 1u << 20,
                 "most client connections at once"),
    MF_STORE_OPT(heartbeat_timeout_ms, MF_CFG_MS, "10s", 0, 0,
                 "a session silent this long is dead (0: never)"),
    MF_STORE_OPT(idle_timeout_ms, MF_CFG_MS, "15s", 1, 86400000,
                 "a connection that sends nothing, or reads nothing of a "
                 "pending response, for this long is closed (clients "
                 "heartbeat every second)"),
    MF_STORE_OPT(log_level, MF_CFG_LOGLVL, "info", 0, 0,
                 "log level of the mf-store daemon"),
};

static const mf_cfg_table_t mf_store_server_cfg_table = {
    .component = "mf-store",
    .env_prefix = "MF_STORE_",
    .entries = mf_store_server_cfg_entries,
    .count = MF_CFG_COUNT(mf_store_server_cfg_entries),
};

static void mf_store_server_opts_from_cfg(mf_store_server_opts_t *o,
                                          const mf_store_server_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    mf_strlcpy(o->host, cfg->host, sizeof(o->host));
    o->port = cfg->port;
    o->max_key_size = cfg->max_key_size;
    o->max_value_size = cfg->max_value_size;
    o->max_total_bytes = cfg->max_total_bytes;
    o->max_connections = cfg->max_connections;
    o->heartbeat_timeout_ms = cfg->heartbeat_timeout_ms;
    o->idle_timeout_ms = cfg->idle_timeout_ms;
    o->log_level = cfg->log_level;
}

static void mf_store_server_opts_to_cfg(const mf_store_server_opts_t *o,
                                        mf_store_server_config_t *cfg)
{
    cfg->size = sizeof(*cfg);
    mf_strlcpy(cfg->host, o->host, sizeof(cfg->host));
    cfg->port = (uint16_t)o->port;
    cfg->max_key_size = o->max_key_size;
    cfg->max_value_size = (uint32_t)o->max_value_size; /* <= 1 GiB */
    cfg->max_total_bytes = o->max_total_bytes;
    cfg->max_connections = o->max_connections;
    cfg->heartbeat_timeout_ms = o->heartbeat_timeout_ms;
    cfg->idle_timeout_ms = o->idle_timeout_ms;
    cfg->log_level = o->log_level;
}

MF_API void mf_store_server_config_init(mf_store_server_config_t *cfg)
{
    mf_store_server_opts_t o;

    memset(cfg, 0, sizeof(*cfg));
    memset(&o, 0, sizeof(o));
    /* The defaults are constants of this file: they always parse. */
    (void)mf_cfg_set_defaults(&mf_store_server_cfg_table, &o);
    mf_store_server_opts_to_cfg(&o, cfg);
}

/* A config being changed: the mirror and the TLS text. */
typedef struct mf_store_server_edit {
    mf_store_server_opts_t o;
    char tls[sizeof(((mf_store_server_config_t *)0)->tls_settings)];
} mf_store_server_edit_t;

static void mf_store_server_edit_begin(mf_store_server_edit_t *e,
                                       const mf_store_server_config_t *cfg)
{
    mf_store_server_opts_from_cfg(&e->o, cfg);
    mf_strlcpy(e->tls, cfg->tls_settings, sizeof(e->tls));
}

static void mf_store_server_edit_end(const mf_store_server_edit_t *e,
                                     mf_store_server_config_t *cfg)
{
    mf_store_server_opts_to_cfg(&e->o, cfg);
    mf_strlcpy(cfg->tls_settings, e->tls, sizeof(cfg->tls_settings));
}

static mf_status_t mf_store_server_edit_set(void *arg, const char *key,
                                            const char *value,
                                            const char *origin)
{
    mf_store_server_edit_t *e = arg;

    if (mf_cfg_find(mf_tls_section.table, key) != NULL) {
        return mf_cfg_text_set(&mf_tls_section, e->tls, sizeof(e->tls), key,
                               value, origin);
    }
    return mf_cfg_set_from(&mf_store_server_cfg_table, &e->o, key, value,
                           origin);
}

MF_API mf_status_t mf_store_server_config_set(mf_store_server_config_t *cfg,
                                              const char *key,
                                              const char *value)
{
    mf_store_server_edit_t e;
    mf_status_t status;

    if ((cfg == NULL) || (key == NULL) || (value == NULL)) {
        return MF_ERR_INVALID;
    }
    mf_store_server_edit_begin(&e, cfg);
    status = mf_store_server_edit_set(&e, key, value, "setting");
    if (status != MF_OK) {
        return status;
    }
    mf_store_server_edit_end(&e, cfg);
    return MF_OK;
}

MF_API mf_status_t mf_store_server_config_load_file(
    mf_store_server_config_t *cfg, const char *path)
{
    mf_store_server_edit_t e;
    mf_status_t status;
    size_t len;
    char *text;

    if ((cfg == NULL) || (path == NULL)) {
        return MF_ERR_INVALID;
    }
    status = mf_cfg_read_file(mf_store_server_cfg_table.component, path, &text,
                              &len);
    if (status != MF_OK) {
        return status;
    }
    mf_store_server_edit_begin(&e, cfg);
    status = mf_cfg_parse_lines(mf_store_server_cfg_table.component, text, len,
                                path, mf_store_server_edit_set, &e);
    free(text);
    if (status != MF_OK) {
        return status;
    }
    mf_store_server_edit_end(&e, cfg);
    return MF_OK;
}

MF_API mf_status_t
mf_store_server_config_load_env(mf_store_server_config_t *cfg)
{
    mf_store_server_edit_t e;
    mf_status_t status;

    if (cfg == NULL) {
        return MF_ERR_INVALID;
    }
    mf_store_server_edit_begin(&e, cfg);
    status = mf_cfg_load_env(&mf_store_server_cfg_table, &e.o);
    if (status == MF_OK) {
        status = mf_cfg_text_load_env(&mf_tls_section, e.tls, sizeof(e.tls),
                                      mf_store_server_cfg_table.env_prefix);
    }
    if (status != MF_OK) {
        return status;
    }
    mf_store_server_edit_end(&e, cfg);
    return MF_OK;
}

MF_API void mf_store_server_config_print_help(FILE *out)
{
    mf_cfg_print_help(&mf_store_server_cfg_table, out);
    mf_cfg_print_help_as(mf_tls_section.table, out, "",
                         mf_store_server_cfg_table.env_prefix);
}

MF_API void mf_store_server_config_dump(const mf_store_server_config_t *cfg,
                                        FILE *out)
{
    mf_store_server_opts_t o;
    void *tls;

    mf_store_server_opts_from_cfg(&o, cfg);
    mf_cfg_dump(&mf_store_server_cfg_table, &o, out);
    if (mf_cfg_text_parse(&mf_tls_section, cfg->tls_settings, &tls) == MF_OK) {
        mf_cfg_dump(mf_tls_section.table, tls, out);
        free(tls);
    }
}
