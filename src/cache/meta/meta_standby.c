/*
 * The HTTP endpoint of an mmc-meta waiting to lead (meta_standby.h): its
 * own event loop on its own thread, the view of meta_http.c over what the
 * campaign last saw (under a mutex: the campaign runs on the main thread,
 * the pages on the loop thread).
 */
#include "cache/meta/meta_standby.h"

#include "cache/meta/meta_http.h"
#include "net/net.h"
#include "util/log.h"
#include "util/misc.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct mmc_meta_standby {
    struct event_base *base;
    mmc_meta_http_t *http;
    mf_tls_t *tls; /* tls.enable: https */
    uint16_t http_port;
    pthread_t thread;
    bool running;
    uint64_t start_ms;
    pthread_mutex_t lock;
    char leader[256]; /* under lock */
    int64_t term;     /* under lock */
};

static void mmc_meta_standby_stats(void *ctx, mmc_meta_stats_t *stats)
{
    mmc_meta_standby_t *sb = ctx;

    memset(stats, 0, sizeof(*stats));
    stats->follower = true;
    stats->uptime_ms = mf_time_ms() - sb->start_ms;
    pthread_mutex_lock(&sb->lock);
    mf_strlcpy(stats->leader_url, sb->leader, sizeof(stats->leader_url));
    stats->term = sb->term;
    pthread_mutex_unlock(&sb->lock);
}

static void *mmc_meta_standby_main(void *arg)
{
    mmc_meta_standby_t *sb = arg;

    (void)event_base_loop(sb->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

mf_status_t mmc_meta_standby_start(const mmc_meta_config_t *cfg,
                                   mmc_meta_standby_t **sb_p)
{
    mmc_meta_standby_t *sb = calloc(1, sizeof(*sb));
    mmc_meta_view_t view;
    mf_status_t status;

    if (sb == NULL) {
        return MF_ERR_NOMEM;
    }
    pthread_mutex_init(&sb->lock, NULL);
    sb->start_ms = mf_time_ms();
    if (!cfg->http_enable) {
        *sb_p = sb;
        return MF_OK;
    }
    mf_net_global_init(); /* the loop is broken from another thread */
    sb->base = event_base_new();
    if (sb->base == NULL) {
        status = MF_ERR_NOMEM;
        goto err;
    }
    /* no segments, no keys: those pages name the leader instead */
    view = (mmc_meta_view_t){sb, mmc_meta_standby_stats, NULL, NULL};
    if (cfg->tls.enable && cfg->http_tls) {
        status = mf_tls_create(&cfg->tls, true, "mmc-meta", &sb->tls);
        if (status != MF_OK) {
            goto err;
        }
    }
    status = mmc_meta_http_start(
        &view, sb->base, cfg->http_addr[0] != '\0' ? cfg->http_addr : cfg->addr,
        (uint16_t)cfg->http_port, cfg->idle_timeout_ms, sb->tls, &sb->http);
    if (status != MF_OK) {
        goto err;
    }
    sb->http_port = mmc_meta_http_bound_port(sb->http);
    if (pthread_create(&sb->thread, NULL, mmc_meta_standby_main, sb) != 0) {
        status = MF_ERR_NOMEM;
        goto err;
    }
    sb->running = true;
    *sb_p = sb;
    return MF_OK;

err:
    mmc_meta_standby_stop(sb);
    return status;
}

uint16_t mmc_meta_standby_http_port(const mmc_meta_standby_t *sb)
{
    return sb->http_port;
}

void mmc_meta_standby_seen(void *arg, const char *leader, int64_t term)
{
    mmc_meta_standby_t *sb = arg;

    pthread_mutex_lock(&sb->lock);
    mf_strlcpy(sb->leader, leader, sizeof(sb->leader));
    if (term > 0) {
        sb->term = term;
    }
    pthread_mutex_unlock(&sb->lock);
}

void mmc_meta_standby_stop(mmc_meta_standby_t *sb)
{
    if (sb == NULL) {
        return;
    }
    if (sb->running) {
        /* loopexit, not loopbreak: it holds even before the loop started */
        (void)event_base_loopexit(sb->base, NULL);
        pthread_join(sb->thread, NULL);
    }
    if (sb->http != NULL) {
        mmc_meta_http_stop(sb->http);
    }
    if (sb->base != NULL) {
        event_base_free(sb->base);
    }
    mf_tls_destroy(sb->tls);
    pthread_mutex_destroy(&sb->lock);
    free(sb);
}
