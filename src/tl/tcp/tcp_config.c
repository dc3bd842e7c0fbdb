/*
 * tcp transport: its settings (keys tcp.*) and their old names.
 *
 * The keys were fabric keys named tcp_<key> before transports owned their
 * settings; those names stay as aliases (MF_TCP_LANES is the environment
 * variable of both spellings).
 */
#include "tl/tcp/tcp.h"

#include "util/log.h"

#include <stddef.h>
#include <string.h>

static const mf_cfg_entry_t mf_tl_tcp_cfg_entries[] = {
    {"tcp.lanes", MF_CFG_U32, offsetof(mf_tl_tcp_config_t, lanes), 0, "2", 1,
     MF_TL_TCP_MAX_LANES,
     "connections (lanes) to each peer, and transport threads; large copies "
     "are spread over the lanes"},
    {"tcp.chunk_size", MF_CFG_SIZE, offsetof(mf_tl_tcp_config_t, chunk_size), 0,
     "512K", MF_TL_TCP_CHUNK_MIN, MF_TL_TCP_CHUNK_MAX,
     "copies move in chunks of at most this size, pipelined on every lane; a "
     "smaller chunk lets small copies pass large ones sooner"},
    {"tcp.addr", MF_CFG_STR, offsetof(mf_tl_tcp_config_t, addr),
     sizeof(((mf_tl_tcp_config_t *)0)->addr), "", 0, 0,
     "IPv4 address (or host name) to listen on and advertise to peers; "
     "empty: listen on all addresses and advertise the one routed towards "
     "the config store"},
    {"tcp.port", MF_CFG_U32, offsetof(mf_tl_tcp_config_t, port), 0, "0", 0,
     65535, "port to listen on; 0 picks a free port"},
    {"tcp.timeout_ms", MF_CFG_MS, offsetof(mf_tl_tcp_config_t, timeout_ms), 0,
     "30s", 1000, 3600000,
     "a peer that acknowledges nothing (data sent, keepalive probes, a "
     "connect) for this long is taken for dead and the copies to it fail "
     "(1s..1h)"},
};

static const mf_cfg_alias_t mf_tl_tcp_cfg_aliases[] = {
    {"tcp_lanes", "tcp.lanes"},
    {"tcp_chunk_size", "tcp.chunk_size"},
    {"tcp_addr", "tcp.addr"},
    {"tcp_port", "tcp.port"},
    {"tcp_timeout_ms", "tcp.timeout_ms"},
};

const mf_cfg_table_t mf_tl_tcp_cfg_table = {
    .component = "tcp",
    .env_prefix = "MF_",
    .entries = mf_tl_tcp_cfg_entries,
    .count = MF_CFG_COUNT(mf_tl_tcp_cfg_entries),
    .aliases = mf_tl_tcp_cfg_aliases,
    .alias_count = MF_CFG_COUNT(mf_tl_tcp_cfg_aliases),
};

mf_status_t mf_tl_tcp_config_check(const void *config)
{
    const mf_tl_tcp_config_t *cfg = config;

    /* the table bounds every number; a hand-filled struct may not be */
    if (memchr(cfg->addr, '\0', sizeof(cfg->addr)) == NULL || cfg->lanes < 1 ||
        cfg->lanes > MF_TL_TCP_MAX_LANES ||
        cfg->chunk_size < MF_TL_TCP_CHUNK_MIN ||
        cfg->chunk_size > MF_TL_TCP_CHUNK_MAX || cfg->port > 65535 ||
        cfg->timeout_ms == 0) {
        mf_error("tcp: settings out of range: lanes %u (1..%u), chunk_size "
                 "%llu (%u..%u), port %u, timeout_ms %u",
                 cfg->lanes, MF_TL_TCP_MAX_LANES,
                 (unsigned long long)cfg->chunk_size, MF_TL_TCP_CHUNK_MIN,
                 MF_TL_TCP_CHUNK_MAX, cfg->port, cfg->timeout_ms);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}
