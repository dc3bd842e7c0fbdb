/*
 * Leader election of mmc-meta through etcd (meta_ha.c): several
 * instances of one pool, one leader serving, the others waiting to take
 * over.  A leader holds the key ha_key under a lease of ha_ttl_ms; it
 * renews the lease three times per TTL, and when it cannot (etcd gone,
 * its host cut off) it calls lost() before the lease can run out, so it
 * stops serving before anyone else may lead: no two leaders serve at
 * once, and a deposed leader acknowledges nothing after its successor
 * took over.  The others poll the key and create it (one transaction)
 * once it is gone; the new leader rebuilds its index from the local
 * services' records, as a restarted one does.
 */
#ifndef MMC_CACHE_META_META_HA_H
#define MMC_CACHE_META_META_HA_H

#include "cache/meta/meta_config.h"

#include <stdatomic.h>

typedef struct mmc_meta_ha mmc_meta_ha_t;

typedef struct mmc_meta_ha_params {
    const mmc_meta_config_t *cfg;
    atomic_bool *stop; /* stop waiting when it becomes true */
    /* A leader's lease is about to run out unrenewed: the caller must stop
     * serving at once.  Called from the renewing thread. */
    void (*lost)(void *arg);
    /* While waiting: another instance leads (its advertised URL), or none
     * ("") any more; term is the pool's count of leaders so far (0:
     * unknown).  Called from the waiting thread; may be NULL. */
    void (*seen)(void *arg, const char *leader, int64_t term);
    void *arg;
} mmc_meta_ha_params_t;

/*
 * Waits to lead: MF_OK once this instance holds the key (the thread that
 * renews its lease runs, and calls lost() if the lease is about to run
 * out); MF_ERR_CANCELED when *stop became true while waiting;
 * MF_ERR_CONFIG for bad endpoints.  While etcd cannot be reached it keeps
 * trying.
 */
mf_status_t mmc_meta_ha_lead(const mmc_meta_ha_params_t *params,
                             mmc_meta_ha_t **ha_p);
/* The revision at which this leader took the key (grows with each). */
int64_t mmc_meta_ha_revision(const mmc_meta_ha_t *ha);
/* This leader's term: the pool has had that many leaders, itself
 * included (0: etcd did not say). */
int64_t mmc_meta_ha_term(const mmc_meta_ha_t *ha);
/* Until when (mf_time_ms) this leader may serve: the time its lease was
 * last proven alive plus half the TTL, pushed on by every renewal; past
 * it, another instance may lead soon.  Lives as long as ha. */
const atomic_uint_least64_t *mmc_meta_ha_until(const mmc_meta_ha_t *ha);
/* Steps down: stops renewing and revokes the lease, so another instance
 * leads at once; frees ha. */
void mmc_meta_ha_resign(mmc_meta_ha_t *ha);

#endif
