/*
 * Upstream MemFabric's BM API (smem_bm_*), as a thin shim over
 * <memfabric/mf_bm.h>; see smem.h for status codes and errors.
 */
#ifndef MF_COMPAT_SMEM_BM_H
#define MF_COMPAT_SMEM_BM_H

#include "smem.h"
#include "smem_bm_def.h"

#ifdef __cplusplus
extern "C" {
#endif

int32_t smem_bm_config_init(smem_bm_config_t *config);
/* Bootstraps this process (mf_bm_init) through the config store at
 * storeURL; deviceId becomes MF_CUDA_DEVICE unless that is set. */
int32_t smem_bm_init(const char *storeURL, uint32_t worldSize,
                     uint16_t deviceId, const smem_bm_config_t *config);
void smem_bm_uninit(uint32_t flags);
/* This process's rank; UINT32_MAX before smem_bm_init. */
uint32_t smem_bm_get_rank_id(void);

/* A pool of localDRAMSize bytes of host and localHBMSize bytes of device
 * memory per rank (each window's stride the size, rounded up); NULL on
 * failure (smem_get_last_err_msg says why). */
smem_bm_t smem_bm_create(uint32_t id, uint32_t memberSize,
                         smem_bm_data_op_type dataOpType,
                         uint64_t localDRAMSize, uint64_t localHBMSize,
                         uint32_t flags);
/* The same with the windows' strides apart from the local sizes. */
smem_bm_t smem_bm_create2(uint32_t id, const smem_bm_create_option_t *option);
/* Leaves if joined, waits for the copies started with ASYNC_COPY_FLAG. */
void smem_bm_destroy(smem_bm_t handle);
/* *localGvaAddress (optional): this rank's host segment (device segment
 * in a pool without host memory). */
int32_t smem_bm_join(smem_bm_t handle, uint32_t flags, void **localGvaAddress);
int32_t smem_bm_leave(smem_bm_t handle, uint32_t flags);

uint64_t smem_bm_get_local_mem_size_by_mem_type(smem_bm_t handle,
                                                smem_bm_mem_type memType);
/* The GVA of peerRankId's segment of memType (device or host); NULL when
 * out of range. */
void *smem_bm_ptr_by_mem_type(smem_bm_t handle, smem_bm_mem_type memType,
                              uint16_t peerRankId);
/* UINT32_MAX when gva lies in no window of the pool. */
uint32_t smem_bm_get_rank_id_by_gva(smem_bm_t handle, void *gva);

int32_t smem_bm_copy(smem_bm_t handle, smem_copy_params *params,
                     smem_bm_copy_type t, uint32_t flags);
int32_t smem_bm_copy_batch(smem_bm_t handle, smem_batch_copy_params *params,
                           smem_bm_copy_type t, uint32_t flags);
/* SMEM_PARTIAL_FAILED when some pieces failed: result->results says which
 * (result->batchSize must be params->batchSize). */
int32_t smem_bm_copy_batch_partial_succeed(smem_bm_t handle,
                                           smem_batch_copy_params *params,
                                           smem_bm_copy_type t, uint32_t flags,
                                           smem_batch_copy_result *result);
/* Completes every copy started on handle with ASYNC_COPY_FLAG: SM_OK, or
 * the code of the first that failed. */
int32_t smem_bm_wait(smem_bm_t handle);

int32_t smem_bm_register_user_mem(smem_bm_t handle, uint64_t addr,
                                  uint64_t size);
int32_t smem_bm_unregister_user_mem(smem_bm_t handle, uint64_t addr);

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_SMEM_BM_H */
