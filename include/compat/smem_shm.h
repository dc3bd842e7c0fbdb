/*
 * Upstream MemFabric's SHM API (smem_shm_*), as a thin shim over
 * <memfabric/mf_shm.h>; see smem.h for status codes and errors.
 */
#ifndef MF_COMPAT_SMEM_SHM_H
#define MF_COMPAT_SMEM_SHM_H

#include "smem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *smem_shm_t;

/* Ways a peer's part is reached (smem_shm_topology_can_reach): MTE: it is
 * mapped here (its GVA is a pointer); ROCE: through a network transport. */
typedef enum {
    SMEMS_DATA_OP_MTE = 1U << 0,
    SMEMS_DATA_OP_SDMA = 1U << 1,
    SMEMS_DATA_OP_ROCE = 1U << 2,
} smem_shm_data_op_type;

/* smem_shm_create flag of this library: the region is host memory even
 * where device memory is available. */
#define SMEM_SHM_FLAG_HOST (1U << 31)

typedef struct {
    uint32_t shmInitTimeout;          /* s (default 120) */
    uint32_t shmCreateTimeout;        /* s (default 120) */
    uint32_t controlOperationTimeout; /* s: barrier, allgather (120) */
    bool startConfigStore;            /* rank 0 serves the config store
                                         (default true) */
    uint32_t flags;                   /* reserved, 0 */
} smem_shm_config_t;

int32_t smem_shm_config_init(smem_shm_config_t *config);
int32_t smem_shm_init(const char *configStoreIpPort, uint32_t worldSize,
                      uint32_t rankId, uint16_t deviceId,
                      smem_shm_config_t *config);
void smem_shm_uninit(uint32_t flags);

/* Region id of symmetricSize bytes per rank (mf_shm_create; rankSize and
 * rankId must be the world and rank of smem_shm_init): device memory where
 * the CUDA driver and a device are there, else host memory (and with
 * SMEM_SHM_FLAG_HOST); *gva: the region's base.  NULL on failure. */
smem_shm_t smem_shm_create(uint32_t id, uint32_t rankSize, uint32_t rankId,
                           uint64_t symmetricSize,
                           smem_shm_data_op_type dataOpType, uint32_t flags,
                           void **gva);
int32_t smem_shm_destroy(smem_shm_t handle, uint32_t flags);

/* The ways this build reaches parts: MTE and ROCE. */
uint32_t smem_shm_query_support_data_operation(void);
uint32_t smem_shm_get_global_rank(smem_shm_t handle);
uint32_t smem_shm_get_global_rank_size(smem_shm_t handle);

/* The region's context block (at most 64 KiB). */
int32_t smem_shm_set_extra_context(smem_shm_t handle, const void *context,
                                   uint32_t size);

int32_t smem_shm_control_barrier(smem_shm_t handle);
/* recvSize >= sendSize x world. */
int32_t smem_shm_control_allgather(smem_shm_t handle, const char *sendBuf,
                                   uint32_t sendSize, char *recvBuf,
                                   uint32_t recvSize);
/* *reachInfo: SMEMS_DATA_OP_* bits (0: unreachable). */
int32_t smem_shm_topology_can_reach(smem_shm_t handle, uint32_t remoteRank,
                                    uint32_t *reachInfo);

/* exit(status) runs on every rank when one calls smem_shm_global_exit. */
int32_t smem_shm_register_exit(smem_shm_t handle, void (*exit)(int));
void smem_shm_global_exit(smem_shm_t handle, int status);

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_SMEM_SHM_H */
