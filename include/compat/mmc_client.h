/*
 * Upstream MemCache's C client API (mmcc_*), as a thin shim over
 * <memcache/mmc.h>: a program written for upstream's mmc_client.h
 * recompiles against this header and links libmemcache.  The client is
 * one per process, as upstream's; its memory contribution and other
 * settings come from the MMC_* environment (mmc-local.conf's keys).
 *
 * Every call returns upstream's codes (mmc_def.h); mmcc_status gives the
 * code of any status of ours.  docs/compat.md lists the calls.
 */
#ifndef MF_COMPAT_MMC_CLIENT_H
#define MF_COMPAT_MMC_CLIENT_H

#include "mmc_def.h"

#ifdef __cplusplus
extern "C" {
#endif

int32_t mmcc_init(mmc_client_config_t *config);
void mmcc_uninit(void);
/* Upstream's code of one of our statuses (mmc_status_t, mf_status_t):
 * 0 stays 0, a positive value stays as it is. */
int32_t mmcc_status(int32_t status);

int32_t mmcc_register_buffer(uint64_t addr, uint64_t size);
int32_t mmcc_unregister_buffer(uint64_t addr, uint64_t size);
int32_t mmcc_local_service_id(uint32_t *localServiceId);

/* MMC_DUPLICATED_OBJECT when the key exists (the stored object stays). */
int32_t mmcc_put(const char *key, mmc_buffer *buf, mmc_put_options options,
                 uint32_t flags);
int32_t mmcc_get(const char *key, mmc_buffer *buf, uint32_t flags);
/* info->valid false (and MMC_OK) when the key is absent. */
int32_t mmcc_query(const char *key, mmc_data_info *info, uint32_t flags);
int32_t mmcc_batch_query(const char **keys, size_t keys_count,
                         mmc_data_info *info, uint32_t flags);
int32_t mmcc_remove(const char *key, uint32_t flags);
int32_t mmcc_batch_remove(const char **keys, uint32_t keys_count,
                          int32_t *remove_results, uint32_t flags);
/* MMC_OK when it exists, MMC_UNMATCHED_KEY when not. */
int32_t mmcc_exist(const char *key, uint32_t flags);
int32_t mmcc_batch_exist(const char **keys, uint32_t keys_count,
                         int32_t *exist_results, uint32_t flags);
#ifdef __cplusplus
int32_t mmcc_batch_put(const char **keys, uint32_t keys_count,
                       const mmc_buffer *bufs, mmc_put_options &options,
                       uint32_t flags, int *results);
#else
int32_t mmcc_batch_put(const char **keys, uint32_t keys_count,
                       const mmc_buffer *bufs, mmc_put_options *options,
                       uint32_t flags, int *results);
#endif
int32_t mmcc_batch_get(const char **keys, uint32_t keys_count, mmc_buffer *bufs,
                       uint32_t flags, int *results);

/* Read leases of lease_ttl_ms (0: the meta service's lease_ms);
 * MMC_UNMATCHED_STATE for a key being written. */
int32_t mmcc_batch_add_lease(const char **keys, uint32_t keys_count,
                             uint64_t lease_ttl_ms, int32_t *results);
int32_t mmcc_batch_remove_lease(const char **keys, uint32_t keys_count);
/* gvas[i]: the first replica of key i's new allocation, 0 when it failed;
 * fill it with mmcc_batch_copy (every replica is written), then
 * mmcc_batch_write_finish. */
int32_t mmcc_batch_malloc(const char **keys, uint32_t keys_count,
                          const size_t *sizes, mmc_put_options options,
                          uint64_t *gvas);
/* direct: MMC_COPY_L2G (device memory to the pool), MMC_COPY_G2L,
 * MMC_COPY_G2H, MMC_COPY_H2G. */
int32_t mmcc_batch_copy(const uint64_t *gvas, void **buffers,
                        const size_t *sizes, uint32_t count, int32_t direct);
/* Commits each key whose write_results[i] is 0 (NULL: all), aborts the
 * others; results (optional): each key's code. */
int32_t mmcc_batch_write_finish(const char **keys, uint32_t keys_count,
                                const int32_t *write_results, int32_t *results);
/* Removes every committed object of the pool. */
int32_t mmcc_remove_all(void);

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_MMC_CLIENT_H */
