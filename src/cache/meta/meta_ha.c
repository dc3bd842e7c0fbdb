/*
 * Leader election through etcd (meta_ha.h).
 *
 * Campaign: grant a lease of ha_ttl_ms (rounded up to whole seconds, as
 * etcd counts), then create ha_key = advertise under it if the key does
 * not exist, putting ha_key/term in the same transaction: that key is
 * never deleted, so its version counts the leaders the pool has had (the
 * term).  Lost: poll the key every TTL/8 (100 ms at most) until it is
 * gone, then try again with a new lease (the old one is revoked); each
 * leader seen meanwhile is reported with its term.
 *
 * Leading: a thread renews the lease every TTL/4, each request given
 * TTL/8.  A renewal that was sent at t and succeeded proves the lease
 * alive until t + TTL at least; the leader steps down (lost()) at the
 * last proven time + TTL/2, whatever it is doing then, so it stops
 * serving half a TTL before etcd can let the key go and another instance
 * lead (room for a slow scheduler).  A renewal that says the lease is
 * gone steps down at once.
 */
#include "cache/meta/meta_ha.h"

#include "cache/meta/etcd.h"
#include "util/log.h"
#include "util/misc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MMC_META_HA_POLL_MS 100u

struct mmc_meta_ha {
    mmc_etcd_t *etcd;
    char key[256];
    char term_key[272];
    uint32_t ttl_ms;
    int64_t lease;
    int64_t revision;
    int64_t term;
    uint64_t proven; /* when the request that created the key was sent */
    atomic_uint_least64_t until; /* serve until: last proven + TTL/2 */
    void (*lost)(void *arg);
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop; /* under lock */
};

static void mmc_meta_ha_sleep(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void *mmc_meta_ha_main(void *arg)
{
    mmc_meta_ha_t *ha = arg;
    uint64_t proven = ha->proven; /* the lease lives until proven + TTL */
    uint64_t next = proven + ha->ttl_ms / 4, now;
    struct timespec deadline;
    int64_t ttl;

    pthread_mutex_lock(&ha->lock);
    while (!ha->stop) {
        uint64_t stop_at = proven + ha->ttl_ms / 2;

        now = mf_time_ms();
        if (now >= stop_at) {
            mf_error("meta: could not renew the leader lease for %" PRIu64
                     " ms: stepping down before it runs out",
                     now - proven);
            ha->lost(ha->arg);
        }
        if (now < next) {
            mf_deadline_after_ms(&deadline, MF_MIN(next, stop_at) - now);
            (void)pthread_cond_timedwait(&ha->cond, &ha->lock, &deadline);
            continue;
        }
        pthread_mutex_unlock(&ha->lock);
        next = now + ha->ttl_ms / 4;
        if (mmc_etcd_lease_keepalive(ha->etcd, ha->lease, &ttl) == MF_OK) {
            if (ttl <= 0) {
                mf_error("meta: the leader lease is gone: stepping down");
                ha->lost(ha->arg);
            }
            proven = now;
            atomic_store(&ha->until, proven + ha->ttl_ms / 2);
        }
        pthread_mutex_lock(&ha->lock);
    }
    pthread_mutex_unlock(&ha->lock);
    return NULL;
}

/* The term: 0 when it cannot be read (or no leader was ever elected). */
static int64_t mmc_meta_ha_read_term(mmc_meta_ha_t *ha)
{
    int64_t term = 0;
    bool found;

    if (mmc_etcd_get(ha->etcd, ha->term_key, &found, NULL, 0, &term) != MF_OK ||
        !found) {
        return 0;
    }
    return term;
}

/* A standby saw leader (or none: ""): tell the caller once per change. */
static void mmc_meta_ha_saw(mmc_meta_ha_t *ha, const mmc_meta_ha_params_t *p,
                            const char *leader, char *last, size_t last_len)
{
    if (strcmp(leader, last) == 0) {
        return;
    }
    mf_strlcpy(last, leader, last_len);
    if (leader[0] != '\0') {
        mf_info("meta: %s leads (%s); standing by", leader, ha->key);
    }
    if (p->seen != NULL) {
        p->seen(p->arg, leader, mmc_meta_ha_read_term(ha));
    }
}

mf_status_t mmc_meta_ha_lead(const mmc_meta_ha_params_t *p,
                             mmc_meta_ha_t **ha_p)
{
    const mmc_meta_config_t *cfg = p->cfg;
    char advertise[300], holder[300] = "", last[300] = "";
    uint32_t ttl_s = (cfg->ha_ttl_ms + 999) / 1000;
    mmc_meta_ha_t *ha = calloc(1, sizeof(*ha));
    mf_status_t status;
    bool won = false, found;

    if (ha == NULL) {
        return MF_ERR_NOMEM;
    }
    ha->ttl_ms = ttl_s * 1000;
    ha->lost = p->lost;
    ha->arg = p->arg;
    if (cfg->ha_key[0] != '\0') {
        mf_strlcpy(ha->key, cfg->ha_key, sizeof(ha->key));
    } else {
        snprintf(ha->key, sizeof(ha->key), "/memcache/%u/leader", cfg->pool_id);
    }
    snprintf(ha->term_key, sizeof(ha->term_key), "%s/term", ha->key);
    if (cfg->advertise[0] != '\0') {
        mf_strlcpy(advertise, cfg->advertise, sizeof(advertise));
    } else {
        snprintf(advertise, sizeof(advertise), "tcp://%s:%u", cfg->addr,
                 cfg->port);
    }
    /* each request gives up within an eighth of the lease */
    status = mmc_etcd_open(cfg->etcd_endpoints, ha->ttl_ms / 8, &cfg->tls,
                           &ha->etcd);
    if (status != MF_OK) {
        free(ha);
        return status;
    }
    while (!won) {
        if (atomic_load(p->stop)) {
            status = MF_ERR_CANCELED;
            goto err;
        }
        /* a fresh lease for every try: it runs from its grant */
        ha->proven = mf_time_ms();
        if (mmc_etcd_lease_grant(ha->etcd, ttl_s, &ha->lease) != MF_OK) {
            ha->lease = 0;
            mmc_meta_ha_sleep(ha->ttl_ms / 8);
            continue;
        }
        if (mmc_etcd_create(ha->etcd, ha->key, advertise, ha->lease,
                            ha->term_key, &won, &ha->revision, holder,
                            sizeof(holder)) != MF_OK) {
            (void)mmc_etcd_lease_revoke(ha->etcd, ha->lease);
            ha->lease = 0;
            mmc_meta_ha_sleep(ha->ttl_ms / 8);
            continue;
        }
        if (won) {
            break;
        }
        mmc_meta_ha_saw(ha, p, holder, last, sizeof(last));
        /* the lease would run out while we wait: let it, take a new one */
        (void)mmc_etcd_lease_revoke(ha->etcd, ha->lease);
        ha->lease = 0;
        do {
            /* the lease of a dead leader runs out unannounced: look often
             * (an etcd read is cheap), so the lag after it is small */
            mmc_meta_ha_sleep(MF_MIN(ha->ttl_ms / 8, MMC_META_HA_POLL_MS));
            holder[0] = '\0';
            if (atomic_load(p->stop) ||
                mmc_etcd_get(ha->etcd, ha->key, &found, holder, sizeof(holder),
                             NULL) != MF_OK) {
                break;
            }
            mmc_meta_ha_saw(ha, p, found ? holder : "", last, sizeof(last));
        } while (found);
    }
    atomic_store(&ha->until, ha->proven + ha->ttl_ms / 2);
    ha->term = mmc_meta_ha_read_term(ha);
    mf_info("meta: leading the pool as %s (%s, revision %" PRId64
            ", term %" PRId64 ")",
            advertise, ha->key, ha->revision, ha->term);
    pthread_mutex_init(&ha->lock, NULL);
    pthread_cond_init(&ha->cond, NULL);
    if (pthread_create(&ha->thread, NULL, mmc_meta_ha_main, ha) != 0) {
        status = MF_ERR_NOMEM;
        pthread_cond_destroy(&ha->cond);
        pthread_mutex_destroy(&ha->lock);
        goto err;
    }
    *ha_p = ha;
    return MF_OK;

err:
    if (ha->lease != 0) {
        (void)mmc_etcd_lease_revoke(ha->etcd, ha->lease);
    }
    mmc_etcd_close(ha->etcd);
    free(ha);
    return status;
}

int64_t mmc_meta_ha_revision(const mmc_meta_ha_t *ha)
{
    return ha->revision;
}

int64_t mmc_meta_ha_term(const mmc_meta_ha_t *ha)
{
    return ha->term;
}

const atomic_uint_least64_t *mmc_meta_ha_until(const mmc_meta_ha_t *ha)
{
    return &ha->until;
}

void mmc_meta_ha_resign(mmc_meta_ha_t *ha)
{
    if (ha == NULL) {
        return;
    }
    pthread_mutex_lock(&ha->lock);
    ha->stop = true;
    pthread_cond_signal(&ha->cond);
    pthread_mutex_unlock(&ha->lock);
    pthread_join(ha->thread, NULL);
    (void)mmc_etcd_lease_revoke(ha->etcd, ha->lease);
    mmc_etcd_close(ha->etcd);
    pthread_cond_destroy(&ha->cond);
    pthread_mutex_destroy(&ha->lock);
    free(ha);
}
