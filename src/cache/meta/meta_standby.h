/*
 * The HTTP endpoint of an mmc-meta that waits to lead (meta_standby.c):
 * while one of several instances leads (meta_ha.h), the others answer
 * /health (role "follower", naming the leader) and /metrics (the HA
 * gauges: mmc_follower 1, the pool's term and failovers), and 503 for the
 * pages only a leader can fill (/segments, /key/<key>).  It runs on a
 * thread of its own; the RPC server and the config store do not listen
 * until this instance leads, so clients move on to the next address of
 * their list.
 */
#ifndef MMC_CACHE_META_META_STANDBY_H
#define MMC_CACHE_META_META_STANDBY_H

#include "cache/meta/meta_config.h"

#include <memfabric/mf_status.h>
#include <stdint.h>

typedef struct mmc_meta_standby mmc_meta_standby_t;

/* Listens on cfg's addr and http_port (0: any); with http_enable off it
 * serves nothing (the handle still takes what the campaign sees). */
mf_status_t mmc_meta_standby_start(const mmc_meta_config_t *cfg,
                                   mmc_meta_standby_t **sb_p);
/* The port bound (0 without HTTP). */
uint16_t mmc_meta_standby_http_port(const mmc_meta_standby_t *sb);
/* What the campaign saw (mmc_meta_ha_params_t.seen, arg = sb): the
 * leader's URL ("" for none) and the pool's term.  Any thread. */
void mmc_meta_standby_seen(void *arg, const char *leader, int64_t term);
/* Stops serving and frees sb (NULL: nothing); the port is free again. */
void mmc_meta_standby_stop(mmc_meta_standby_t *sb);

#endif
