/*
 * The few etcd v3 calls leader election needs, through etcd's HTTP/JSON
 * gateway (POST /v3/...; keys and values base64 in the JSON), with
 * libcurl and json-c.  Blocking, one request at a time per handle (a
 * handle is used by one thread at a time).  An endpoint that fails is
 * left for the next of the list, round it, within one call.
 *
 * Statuses: MF_OK; MF_ERR_IO (no endpoint answered), MF_ERR_PROTO (an
 * answer that is no etcd answer), MF_ERR_NOMEM; each logged once.
 */
#ifndef MMC_CACHE_META_ETCD_H
#define MMC_CACHE_META_ETCD_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mf_tls_config;

typedef struct mmc_etcd mmc_etcd_t;

/* endpoints: "http://host:port" or "https://host:port", or a
 * comma-separated list; each call takes at most timeout_ms per endpoint
 * tried.  https needs tls (tls.enable): its CA checks etcd's certificate
 * (and, with tls.server_name set, that it names the endpoint's host), its
 * certificate and key are the client's, its CRL applies. */
mf_status_t mmc_etcd_open(const char *endpoints, uint32_t timeout_ms,
                          const struct mf_tls_config *tls, mmc_etcd_t **etcd_p);
void mmc_etcd_close(mmc_etcd_t *etcd);

/* A lease of ttl_s seconds: *id_p. */
mf_status_t mmc_etcd_lease_grant(mmc_etcd_t *etcd, uint32_t ttl_s,
                                 int64_t *id_p);
/* Refreshes the lease: *ttl_p its seconds left (0: it expired). */
mf_status_t mmc_etcd_lease_keepalive(mmc_etcd_t *etcd, int64_t id,
                                     int64_t *ttl_p);
mf_status_t mmc_etcd_lease_revoke(mmc_etcd_t *etcd, int64_t id);

/*
 * Creates key = value under lease id if the key does not exist, and then
 * also puts an empty value to bump (when not NULL, without a lease), so
 * that bump's version counts the creations (one transaction): *won_p true
 * then, with *rev_p the revision of the puts (a fencing token: it grows
 * with every leader); else false and holder (may be NULL) gets the value
 * the key holds.
 */
mf_status_t mmc_etcd_create(mmc_etcd_t *etcd, const char *key,
                            const char *value, int64_t lease, const char *bump,
                            bool *won_p, int64_t *rev_p, char *holder,
                            size_t holder_len);

/* The value of key: *found_p, value (value_len bytes, terminated; may be
 * NULL) and *version_p (puts since it was created; may be NULL). */
mf_status_t mmc_etcd_get(mmc_etcd_t *etcd, const char *key, bool *found_p,
                         char *value, size_t value_len, int64_t *version_p);

#endif
