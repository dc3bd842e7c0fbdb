/*
 * BM configuration: one declarative table feeds the defaults, the MF_<KEY>
 * environment variables, `key = value` files, single settings and the help
 * text.  Values are range-checked by the table; the transport name is
 * checked against the transports built in.
 */
#include "fabric/fabric.h"

#include <stddef.h>
#include <string.h>

static const mf_cfg_entry_t mf_fabric_cfg_entries[] = {
    {"host_base", MF_CFG_U64, offsetof(mf_bm_config_t, host_base), 0,
     MF_FABRIC_DEFAULT_BASE_STR, 0x10000, 0x7fffffff0000ull,
     "base address of the host GVA window; the same in every process"},
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
     "transport to peers: auto (shm on the same host, tcp to other hosts), "
     "shm or tcp (also between ranks of one host)"},
    {"tcp_lanes", MF_CFG_U32, offsetof(mf_bm_config_t, tcp_lanes), 0, "2", 1,
     16,
     "tcp: connections (lanes) to each peer, and transport threads; large "
     "copies are spread over the lanes"},
    {"tcp_chunk_size", MF_CFG_SIZE, offsetof(mf_bm_config_t, tcp_chunk_size), 0,
     "512K", 4096, 64ull << 20,
     "tcp: copies move in chunks of at most this size, pipelined on every "
     "lane; a smaller chunk lets small copies pass large ones sooner"},
    {"tcp_addr", MF_CFG_STR, offsetof(mf_bm_config_t, tcp_addr),
     sizeof(((mf_bm_config_t *)0)->tcp_addr), "", 0, 0,
     "tcp: IPv4 address (or host name) to listen on and advertise to "
     "peers; empty: listen on all addresses and advertise the one routed "
     "towards the config store"},
    {"tcp_port", MF_CFG_U32, offsetof(mf_bm_config_t, tcp_port), 0, "0", 0,
     65535, "tcp: port to listen on; 0 picks a free port"},
    {"host_id", MF_CFG_STR, offsetof(mf_bm_config_t, host_id),
     sizeof(((mf_bm_config_t *)0)->host_id), "", 0, 0,
     "identity of this host: ranks with equal ids share memory over shm, "
     "others use tcp; empty: detected from the boot id, host name and "
     "network namespace"},
    {"tcp_timeout_ms", MF_CFG_MS, offsetof(mf_bm_config_t, tcp_timeout_ms), 0,
     "30s", 1000, 3600000,
     "tcp: a peer that acknowledges nothing (data sent, keepalive probes, "
     "a connect) for this long is taken for dead and the copies to it "
     "fail (1s..1h)"},
};

const mf_cfg_table_t mf_fabric_cfg_table = {
    .component = "mf-bm",
    .env_prefix = "MF_",
    .entries = mf_fabric_cfg_entries,
    .count = MF_CFG_COUNT(mf_fabric_cfg_entries),
};

mf_status_t mf_fabric_config_check(const mf_bm_config_t *cfg)
{
    /* a caller may fill the struct by hand: never read past the field */
    if (memchr(cfg->transport, '\0', sizeof(cfg->transport)) == NULL) {
        mf_error("mf-bm: transport name is not terminated within %zu bytes",
                 sizeof(cfg->transport));
        return MF_ERR_CONFIG;
    }
    if (memchr(cfg->tcp_addr, '\0', sizeof(cfg->tcp_addr)) == NULL ||
        memchr(cfg->host_id, '\0', sizeof(cfg->host_id)) == NULL) {
        mf_error("mf-bm: tcp_addr or host_id is not terminated");
        return MF_ERR_CONFIG;
    }
    if (strcmp(cfg->transport, "auto") != 0 &&
        mf_tl_find(cfg->transport) == NULL) {
        mf_error("mf-bm: unknown transport '%s' (auto, shm or tcp)",
                 cfg->transport);
        return MF_ERR_CONFIG;
    }
    if (cfg->tcp_lanes < 1 || cfg->tcp_lanes > 16 || cfg->tcp_port > 65535 ||
        cfg->tcp_chunk_size < 4096 || cfg->tcp_chunk_size > (64ull << 20)) {
        mf_error("mf-bm: tcp_lanes %u (1..16), tcp_chunk_size %llu "
                 "(4K..64M) or tcp_port %u out of range",
                 cfg->tcp_lanes, (unsigned long long)cfg->tcp_chunk_size,
                 cfg->tcp_port);
        return MF_ERR_CONFIG;
    }
    if (cfg->host_base % mf_page_size() != 0) {
        mf_error("mf-bm: host_base 0x%llx is not page aligned",
                 (unsigned long long)cfg->host_base);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

MF_API void mf_bm_config_init(mf_bm_config_t *cfg)
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
    if (mf_cfg_load_env(&mf_fabric_cfg_table, &tmp) == MF_OK &&
        mf_fabric_config_check(&tmp) == MF_OK) {
        *cfg = tmp;
    } else {
        mf_error("mf-bm: ignoring the MF_* environment settings");
    }
}

MF_API mf_status_t mf_bm_config_load(mf_bm_config_t *cfg, const char *path)
{
    mf_bm_config_t tmp;
    mf_status_t status;

    if (cfg == NULL || path == NULL) {
        return MF_ERR_INVALID;
    }
    tmp = *cfg;
    status = mf_cfg_load_file(&mf_fabric_cfg_table, &tmp, path);
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

MF_API mf_status_t mf_bm_config_set(mf_bm_config_t *cfg, const char *key,
                                    const char *value)
{
    mf_bm_config_t tmp;
    mf_status_t status;

    if (cfg == NULL || key == NULL || value == NULL) {
        return MF_ERR_INVALID;
    }
    tmp = *cfg;
    status = mf_cfg_set(&mf_fabric_cfg_table, &tmp, key, value);
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

MF_API void mf_bm_config_help(FILE *out)
{
    mf_cfg_print_help(&mf_fabric_cfg_table, out != NULL ? out : stdout);
}
