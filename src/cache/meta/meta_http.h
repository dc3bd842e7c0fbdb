/*
 * The HTTP endpoint of the meta service (meta_http.c): /health, /metrics,
 * /segments, /key/<key>, served on the service's loop thread from what
 * its view shows.  Started and stopped on the loop thread by
 * mmc_meta_start/stop.
 */
#ifndef MMC_CACHE_META_META_HTTP_H
#define MMC_CACHE_META_META_HTTP_H

#include "cache/meta/meta_view.h"

#include <memfabric/mf_status.h>
#include <stdint.h>

struct event_base;

typedef struct mmc_meta_http mmc_meta_http_t;

/* A connection idle for idle_timeout_ms is closed. */
mf_status_t mmc_meta_http_start(const mmc_meta_view_t *view,
                                struct event_base *base, const char *addr,
                                uint16_t port, uint32_t idle_timeout_ms,
                                mmc_meta_http_t **http_p);
uint16_t mmc_meta_http_bound_port(const mmc_meta_http_t *http);
void mmc_meta_http_stop(mmc_meta_http_t *http);

#endif
