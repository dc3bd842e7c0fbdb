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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mf_tls;

typedef struct mmc_meta_http mmc_meta_http_t;

/* A connection idle for idle_timeout_ms is closed.  With tls (not NULL,
 * outliving the server) it serves https. */
mf_status_t mmc_meta_http_start(const mmc_meta_view_t *view,
                                struct event_base *base, const char *addr,
                                uint16_t port, uint32_t idle_timeout_ms,
                                struct mf_tls *tls, mmc_meta_http_t **http_p);
uint16_t mmc_meta_http_bound_port(const mmc_meta_http_t *http);
void mmc_meta_http_stop(mmc_meta_http_t *http);

/* The page a GET asks for. */
typedef enum mmc_meta_http_page {
    MMC_META_HTTP_NO_PAGE = 0, /* 404 */
    MMC_META_HTTP_HEALTH,
    MMC_META_HTTP_METRICS,
    MMC_META_HTTP_SEGMENTS,
    MMC_META_HTTP_TRACE,
    MMC_META_HTTP_KEY,
} mmc_meta_http_page_t;

typedef struct mmc_meta_http_target {
    mmc_meta_http_page_t page;
    bool json;      /* HEALTH: ?format=json or Accept: application/json */
    char *key;      /* KEY: the URL-decoded key (malloc'd, NUL-terminated) */
    size_t key_len; /* bytes of key */
    bool clear;     /* TRACE: ?clear=1, the points start over */
} mmc_meta_http_target_t;

/*
 * What a GET asks for, from the path and query of its URI as evhttp split
 * them (either may be NULL) and its Accept header (NULL when absent); all
 * of it peer-controlled.  No sockets, no meta state.  Returns MF_OK with
 * *target set (free it with mmc_meta_http_target_free), MF_ERR_INVALID for
 * a /key/ path whose key does not decode to a valid key (1..255 bytes, no
 * NUL), or MF_ERR_NOMEM; *target is zeroed on error.
 */
mf_status_t mmc_meta_http_parse_target(const char *path, const char *query,
                                       const char *accept,
                                       mmc_meta_http_target_t *target);
void mmc_meta_http_target_free(mmc_meta_http_target_t *target);

/* Appends s[0..len) as a JSON string, quotes included: quote, backslash and
 * control bytes escaped, invalid UTF-8 replaced by U+FFFD. */
struct evbuffer;
void mmc_meta_http_json_str(struct evbuffer *b, const char *s, size_t len);

#endif
