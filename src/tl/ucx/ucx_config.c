/*
 * ucx transport: its settings (keys ucx.*).  UCX reads its own UCX_*
 * environment variables as well; a key set here wins over them.
 */
#include "tl/ucx/ucx.h"

#include "util/log.h"

#include <stddef.h>
#include <string.h>

static const mf_cfg_entry_t mf_tl_ucx_cfg_entries[] = {
    {"ucx.tls", MF_CFG_STR, offsetof(mf_tl_ucx_config_t, tls),
     sizeof(((mf_tl_ucx_config_t *)0)->tls), "", 0, 0,
     "UCX transports to use, as UCX_TLS takes them (e.g. \"rc,sm\", "
     "\"tcp\"); empty: UCX's own choice (or UCX_TLS)"},
    {"ucx.net_devices", MF_CFG_STR, offsetof(mf_tl_ucx_config_t, net_devices),
     sizeof(((mf_tl_ucx_config_t *)0)->net_devices), "", 0, 0,
     "network devices UCX may use, as UCX_NET_DEVICES takes them (e.g. "
     "\"mlx5_0:1\"); empty: every device (or UCX_NET_DEVICES)"},
    {"ucx.chunk_size", MF_CFG_SIZE, offsetof(mf_tl_ucx_config_t, chunk_size), 0,
     "1M", MF_TL_UCX_CHUNK_MIN, MF_TL_UCX_CHUNK_MAX,
     "device memory UCX cannot move itself goes through host memory in "
     "chunks of this size, two in flight"},
    {"ucx.timeout_ms", MF_CFG_MS, offsetof(mf_tl_ucx_config_t, timeout_ms), 0,
     "30s", 1000, 3600000,
     "a peer that completes none of the copies in flight to it for this "
     "long is taken for dead and they fail (1s..1h); set it above the "
     "time of the largest single copy"},
    {"ucx.auto", MF_CFG_STR, offsetof(mf_tl_ucx_config_t, auto_open),
     sizeof(((mf_tl_ucx_config_t *)0)->auto_open), "rdma", 0, 0,
     "whether transport = auto opens ucx: \"rdma\" where UCX reaches an "
     "RDMA device with RMA (rc, dc), \"always\" (over UCX's tcp "
     "too), \"never\"; peers of this host stay with shm either way"},
};

const mf_cfg_table_t mf_tl_ucx_cfg_table = {
    .component = "ucx",
    .env_prefix = "MF_",
    .entries = mf_tl_ucx_cfg_entries,
    .count = MF_CFG_COUNT(mf_tl_ucx_cfg_entries),
};

/* A UCX list setting: names of letters, digits and "_:.,-" only (no
 * newline or '=' reaches UCX's parser). */
static bool mf_tl_ucx_list_ok(const char *value, size_t cap)
{
    const char *p;

    if (memchr(value, '\0', cap) == NULL) {
        return false;
    }
    for (p = value; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("_:.,-^", *p) != NULL)) {
            return false;
        }
    }
    return true;
}

mf_status_t mf_tl_ucx_config_check(const void *config)
{
    const mf_tl_ucx_config_t *cfg = config;

    if (!mf_tl_ucx_list_ok(cfg->tls, sizeof(cfg->tls)) ||
        !mf_tl_ucx_list_ok(cfg->net_devices, sizeof(cfg->net_devices))) {
        mf_error("ucx: ucx.tls and ucx.net_devices are lists of names "
                 "(letters, digits, '_', ':', '.', '-', '^', ',')");
        return MF_ERR_CONFIG;
    }
    if (strcmp(cfg->auto_open, "rdma") != 0 &&
        strcmp(cfg->auto_open, "always") != 0 &&
        strcmp(cfg->auto_open, "never") != 0) {
        mf_error("ucx: ucx.auto is \"rdma\", \"always\" or \"never\", not "
                 "\"%.*s\"",
                 (int)strnlen(cfg->auto_open, sizeof(cfg->auto_open)),
                 cfg->auto_open);
        return MF_ERR_CONFIG;
    }
    if (cfg->timeout_ms < 1000 || cfg->timeout_ms > 3600000) {
        mf_error("ucx: timeout_ms %u out of range (1000..3600000)",
                 cfg->timeout_ms);
        return MF_ERR_CONFIG;
    }
    if (cfg->chunk_size < MF_TL_UCX_CHUNK_MIN ||
        cfg->chunk_size > MF_TL_UCX_CHUNK_MAX) {
        mf_error("ucx: chunk_size %llu out of range (%u..%u)",
                 (unsigned long long)cfg->chunk_size, MF_TL_UCX_CHUNK_MIN,
                 MF_TL_UCX_CHUNK_MAX);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}
