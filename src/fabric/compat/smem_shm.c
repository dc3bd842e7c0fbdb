/*
 * The smem_shm_* shim (compat/smem_shm.h) over mf_shm.h.  A region is
 * device memory where this process can have it (the CUDA kind works
 * here), as upstream's regions live on the device, else host memory.
 */
#include "fabric/compat/smem_int.h"

#include <compat/smem_shm.h>
#include <stdlib.h>
#include <string.h>

#define MF_SMEM_DEFAULT_MS 120000u

typedef struct mf_smem_shm {
    mf_shm_t *shm;
    void (*exit_fn)(int);
} mf_smem_shm_t;

MF_API int32_t smem_shm_config_init(smem_shm_config_t *config)
{
    if (config == NULL) {
        return mf_smem_fail("smem_shm_config_init", MF_ERR_INVALID,
                            "config is NULL");
    }
    memset(config, 0, sizeof(*config));
    config->shmInitTimeout = 120;
    config->shmCreateTimeout = 120;
    config->controlOperationTimeout = 120;
    config->startConfigStore = true;
    return SM_OK;
}

MF_API int32_t smem_shm_init(const char *configStoreIpPort, uint32_t worldSize,
                             uint32_t rankId, uint16_t deviceId,
                             smem_shm_config_t *config)
{
    const char *call = "smem_shm_init";
    smem_shm_config_t dflt;
    mf_bm_config_t cfg;
    mf_status_t status;

    if (config == NULL) {
        smem_shm_config_init(&dflt);
        config = &dflt;
    }
    if (configStoreIpPort == NULL || worldSize == 0 || rankId >= worldSize) {
        return mf_smem_fail(call, MF_ERR_INVALID, "url %s, rank %u of %u",
                            configStoreIpPort != NULL ? "set" : "NULL", rankId,
                            worldSize);
    }
    if (config->startConfigStore && rankId == 0) {
        status = mf_smem_store_start(configStoreIpPort, NULL);
        if (status != MF_OK && status != MF_ERR_EXISTS) {
            return mf_smem_fail(call, status,
                                "cannot serve the config store at %s",
                                configStoreIpPort);
        }
    }
    mf_smem_device(deviceId);
    mf_bm_config_init(&cfg);
    cfg.timeout_ms =
        mf_smem_ms(MF_MAX(config->shmInitTimeout, config->shmCreateTimeout),
                   MF_SMEM_DEFAULT_MS);
    cfg.op_timeout_ms =
        mf_smem_ms(config->controlOperationTimeout, MF_SMEM_DEFAULT_MS);
    status = mf_shm_init(configStoreIpPort, worldSize, rankId, &cfg);
    return status == MF_OK
               ? SM_OK
               : mf_smem_fail(call, status, "cannot join %s as rank %u of %u",
                              configStoreIpPort, rankId, worldSize);
}

MF_API void smem_shm_uninit(uint32_t flags)
{
    (void)flags;
    mf_shm_uninit();
}

MF_API smem_shm_t smem_shm_create(uint32_t id, uint32_t rankSize,
                                  uint32_t rankId, uint64_t symmetricSize,
                                  smem_shm_data_op_type dataOpType,
                                  uint32_t flags, void **gva)
{
    const char *call = "smem_shm_create";
    mf_shm_create_params_t params;
    mf_smem_shm_t *h;
    mf_status_t status;
    uint32_t rank;

    (void)dataOpType;
    if (mf_bm_rank_id(&rank) != MF_OK) {
        mf_smem_fail(call, MF_ERR_STATE, "call smem_shm_init first");
        return NULL;
    }
    if (rankSize != mf_bm_world_size() || rankId != rank || gva == NULL) {
        mf_smem_fail(call, MF_ERR_INVALID,
                     "rank %u of %u (this process: %u of %u), gva %s", rankId,
                     rankSize, rank, mf_bm_world_size(),
                     gva != NULL ? "set" : "NULL");
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        mf_smem_fail(call, MF_ERR_NOMEM, "no memory for a handle");
        return NULL;
    }
    mf_shm_create_params_init(&params);
    params.symmetric_size = symmetricSize;
    params.type =
        (flags & SMEM_SHM_FLAG_HOST) == 0 && mf_device_ready() == MF_OK
            ? MF_MEM_DEVICE
            : MF_MEM_HOST;
    status = mf_shm_create(id, &params, &h->shm);
    if (status != MF_OK) {
        mf_smem_fail(call, status, "region %u of %#llx bytes per rank", id,
                     (unsigned long long)symmetricSize);
        free(h);
        return NULL;
    }
    *gva = (void *)(uintptr_t)mf_shm_gva(h->shm);
    return h;
}

MF_API int32_t smem_shm_destroy(smem_shm_t handle, uint32_t flags)
{
    mf_smem_shm_t *h = handle;

    (void)flags;
    if (h == NULL) {
        return mf_smem_fail("smem_shm_destroy", MF_ERR_INVALID,
                            "handle is NULL");
    }
    mf_shm_destroy(h->shm);
    free(h);
    return SM_OK;
}

MF_API uint32_t smem_shm_query_support_data_operation(void)
{
    return SMEMS_DATA_OP_MTE | SMEMS_DATA_OP_ROCE;
}

MF_API uint32_t smem_shm_get_global_rank(smem_shm_t handle)
{
    mf_smem_shm_t *h = handle;

    return h != NULL ? mf_shm_rank(h->shm) : UINT32_MAX;
}

MF_API uint32_t smem_shm_get_global_rank_size(smem_shm_t handle)
{
    mf_smem_shm_t *h = handle;

    return h != NULL ? mf_shm_world(h->shm) : 0;
}

MF_API int32_t smem_shm_set_extra_context(smem_shm_t handle,
                                          const void *context, uint32_t size)
{
    mf_smem_shm_t *h = handle;
    mf_status_t status;

    if (h == NULL) {
        return mf_smem_fail("smem_shm_set_extra_context", MF_ERR_INVALID,
                            "handle is NULL");
    }
    status = mf_shm_set_context(h->shm, context, size);
    return status == MF_OK ? SM_OK
                           : mf_smem_fail("smem_shm_set_extra_context", status,
                                          "%u bytes", size);
}

MF_API int32_t smem_shm_control_barrier(smem_shm_t handle)
{
    mf_smem_shm_t *h = handle;
    mf_status_t status;

    if (h == NULL) {
        return mf_smem_fail("smem_shm_control_barrier", MF_ERR_INVALID,
                            "handle is NULL");
    }
    status = mf_shm_barrier(h->shm);
    return status == MF_OK
               ? SM_OK
               : mf_smem_fail("smem_shm_control_barrier", status,
                              "barrier of %u ranks", mf_shm_world(h->shm));
}

MF_API int32_t smem_shm_control_allgather(smem_shm_t handle,
                                          const char *sendBuf,
                                          uint32_t sendSize, char *recvBuf,
                                          uint32_t recvSize)
{
    const char *call = "smem_shm_control_allgather";
    mf_smem_shm_t *h = handle;
    mf_status_t status;

    if (h == NULL || sendBuf == NULL || recvBuf == NULL || sendSize == 0 ||
        (uint64_t)recvSize < (uint64_t)sendSize * mf_shm_world(h->shm)) {
        return mf_smem_fail(call, MF_ERR_INVALID,
                            "handle or buffers NULL, or %u bytes to receive "
                            "%u from every rank",
                            recvSize, sendSize);
    }
    status = mf_shm_allgather(h->shm, sendBuf, sendSize, recvBuf);
    return status == MF_OK
               ? SM_OK
               : mf_smem_fail(call, status, "%u bytes a rank", sendSize);
}

MF_API int32_t smem_shm_topology_can_reach(smem_shm_t handle,
                                           uint32_t remoteRank,
                                           uint32_t *reachInfo)
{
    mf_smem_shm_t *h = handle;
    mf_shm_reach_t reach = {0};
    mf_status_t status;

    if (h == NULL || reachInfo == NULL) {
        return mf_smem_fail("smem_shm_topology_can_reach", MF_ERR_INVALID,
                            "handle or reachInfo is NULL");
    }
    status = mf_shm_can_reach(h->shm, remoteRank, &reach);
    *reachInfo = (reach.flags & MF_SHM_REACH_MAPPED) != 0 ? SMEMS_DATA_OP_MTE
                 : (reach.flags & MF_SHM_REACH_TRANSPORT) != 0
                     ? SMEMS_DATA_OP_ROCE
                     : 0;
    if (status == MF_ERR_UNREACHABLE || status == MF_ERR_PEER_LOST) {
        return SM_OK; /* an answer: not reachable */
    }
    return status == MF_OK ? SM_OK
                           : mf_smem_fail("smem_shm_topology_can_reach", status,
                                          "rank %u", remoteRank);
}

static void mf_smem_exit_cb(mf_shm_t *shm, int status, uint32_t from, void *arg)
{
    mf_smem_shm_t *h = arg;
    void (*fn)(int) = __atomic_load_n(&h->exit_fn, __ATOMIC_ACQUIRE);

    (void)shm;
    (void)from;
    if (fn != NULL) {
        fn(status);
    }
}

MF_API int32_t smem_shm_register_exit(smem_shm_t handle, void (*exit)(int))
{
    mf_smem_shm_t *h = handle;

    if (h == NULL) {
        return mf_smem_fail("smem_shm_register_exit", MF_ERR_INVALID,
                            "handle is NULL");
    }
    __atomic_store_n(&h->exit_fn, exit, __ATOMIC_RELEASE);
    return mf_smem_code(
        mf_shm_register_exit(h->shm, exit != NULL ? mf_smem_exit_cb : NULL, h));
}

MF_API void smem_shm_global_exit(smem_shm_t handle, int status)
{
    mf_smem_shm_t *h = handle;
    mf_status_t st;

    if (h == NULL) {
        mf_smem_fail("smem_shm_global_exit", MF_ERR_INVALID, "handle is NULL");
        return;
    }
    st = mf_shm_global_exit(h->shm, status);
    if (st != MF_OK) {
        mf_smem_fail("smem_shm_global_exit", st, "status %d", status);
    }
}
