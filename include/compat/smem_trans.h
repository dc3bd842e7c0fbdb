/*
 * Upstream MemFabric's TRANS API (smem_trans_*), as a thin shim over
 * <memfabric/mf_trans.h>; see smem.h for status codes and errors.
 * Addresses on the remote side are the peer's own, as upstream's.
 */
#ifndef MF_COMPAT_SMEM_TRANS_H
#define MF_COMPAT_SMEM_TRANS_H

#include "smem.h"
#include "smem_bm_def.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *smem_trans_t;

typedef enum {
    SMEM_TRANS_NONE = 0,
    SMEM_TRANS_SENDER,
    SMEM_TRANS_RECEIVER,
    SMEM_TRANS_BOTH,
    SMEM_TRANS_BUTT
} smem_trans_role_t;

typedef struct {
    smem_trans_role_t role; /* every instance both sends and receives */
    uint32_t initTimeout;   /* s (default 120) */
    uint32_t deviceId;      /* MF_CUDA_DEVICE unless that is set */
    uint32_t flags;         /* reserved, 0 */
    smem_bm_data_op_type dataOpType; /* ignored: transports compete */
    bool startConfigServer;          /* serve the config store at storeUrl
                                        (default false) */
} smem_trans_config_t;

int32_t smem_trans_config_init(smem_trans_config_t *config);
int32_t smem_trans_init(const smem_trans_config_t *config);
void smem_trans_uninit(uint32_t flags);

/* Instance uniqueId ("ip:port") through the config store at storeUrl;
 * NULL on failure. */
smem_trans_t smem_trans_create(const char *storeUrl, const char *uniqueId,
                               const smem_trans_config_t *config);
void smem_trans_destroy(smem_trans_t handle, uint32_t flags);

int32_t smem_trans_register_mem(smem_trans_t handle, void *address,
                                size_t capacity, uint32_t flags);
int32_t smem_trans_batch_register_mem(smem_trans_t handle, void *addresses[],
                                      size_t capacities[], uint32_t count,
                                      uint32_t flags);
int32_t smem_trans_deregister_mem(smem_trans_t handle, void *address);
/* size bytes of page-aligned host memory, registered; NULL on failure. */
void *smem_trans_malloc(smem_trans_t handle, size_t size);
int32_t smem_trans_free(smem_trans_t handle, void *address);

int32_t smem_trans_read(smem_trans_t handle, void *localAddr,
                        const char *remoteUniqueId, const void *remoteAddr,
                        size_t dataSize, uint32_t flags);
int32_t smem_trans_batch_read(smem_trans_t handle, void *localAddrs[],
                              const char *remoteUniqueId,
                              const void *remoteAddrs[], size_t dataSizes[],
                              uint32_t batchSize, uint32_t flags);
int32_t smem_trans_write(smem_trans_t handle, const void *localAddr,
                         const char *remoteUniqueId, void *remoteAddr,
                         size_t dataSize, uint32_t flags);
int32_t smem_trans_batch_write(smem_trans_t handle, const void *localAddrs[],
                               const char *remoteUniqueId, void *remoteAddrs[],
                               size_t dataSizes[], uint32_t batchSize,
                               uint32_t flags);
/* The same with a device stream: stream must be NULL (transfers do not go
 * on streams here), and then the transfer is complete on return. */
int32_t smem_trans_read_submit(smem_trans_t handle, void *localAddr,
                               const char *remoteUniqueId,
                               const void *remoteAddr, size_t dataSize,
                               void *stream, uint32_t flags);
int32_t smem_trans_write_submit(smem_trans_t handle, const void *localAddr,
                                const char *remoteUniqueId, void *remoteAddr,
                                size_t dataSize, void *stream, uint32_t flags);

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_SMEM_TRANS_H */
