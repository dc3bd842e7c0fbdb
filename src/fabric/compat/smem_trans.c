/*
 * The smem_trans_* shim (compat/smem_trans.h) over mf_trans.h: an
 * instance by its unique id, registered buffers, and reads and writes of
 * peers' buffers by the peers' own addresses.
 */
#include "fabric/compat/smem_int.h"

#include <compat/smem_trans.h>
#include <stdlib.h>
#include <string.h>

#define MF_SMEM_DEFAULT_MS 120000u

MF_API int32_t smem_trans_config_init(smem_trans_config_t *config)
{
    if (config == NULL) {
        return mf_smem_fail("smem_trans_config_init", MF_ERR_INVALID,
                            "config is NULL");
    }
    memset(config, 0, sizeof(*config));
    config->role = SMEM_TRANS_BOTH;
    config->initTimeout = 120;
    config->dataOpType = SMEMB_DATA_OP_HOST_TCP;
    return SM_OK;
}

MF_API int32_t smem_trans_init(const smem_trans_config_t *config)
{
    if (config != NULL) {
        mf_smem_device(config->deviceId);
    }
    return mf_smem_code(mf_init());
}

MF_API void smem_trans_uninit(uint32_t flags)
{
    (void)flags;
    mf_uninit();
}

MF_API smem_trans_t smem_trans_create(const char *storeUrl,
                                      const char *uniqueId,
                                      const smem_trans_config_t *config)
{
    const char *call = "smem_trans_create";
    mf_bm_config_t cfg;
    mf_status_t status;
    mf_trans_t *t;

    if (storeUrl == NULL || uniqueId == NULL) {
        mf_smem_fail(call, MF_ERR_INVALID, "storeUrl or uniqueId is NULL");
        return NULL;
    }
    mf_bm_config_init(&cfg);
    if (config != NULL) {
        cfg.timeout_ms = mf_smem_ms(config->initTimeout, MF_SMEM_DEFAULT_MS);
        if (config->startConfigServer) {
            status = mf_smem_store_start(storeUrl, NULL);
            if (status != MF_OK && status != MF_ERR_EXISTS) {
                mf_smem_fail(call, status,
                             "cannot serve the config store at %s", storeUrl);
                return NULL;
            }
        }
    }
    status = mf_trans_create(storeUrl, uniqueId, &cfg, &t);
    if (status != MF_OK) {
        mf_smem_fail(call, status, "instance %s through %s", uniqueId,
                     storeUrl);
        return NULL;
    }
    return t;
}

MF_API void smem_trans_destroy(smem_trans_t handle, uint32_t flags)
{
    (void)flags;
    mf_trans_destroy(handle);
}

static int32_t mf_smem_trans_done(const char *call, mf_status_t status,
                                  const char *peer, size_t n)
{
    return status == MF_OK ? SM_OK
                           : mf_smem_fail(call, status, "%zu piece(s) with %s",
                                          n, peer != NULL ? peer : "(null)");
}

MF_API int32_t smem_trans_register_mem(smem_trans_t handle, void *address,
                                       size_t capacity, uint32_t flags)
{
    mf_status_t status;

    (void)flags;
    status = handle != NULL ? mf_trans_register(handle, address, capacity)
                            : MF_ERR_INVALID;
    return status == MF_OK ? SM_OK
                           : mf_smem_fail("smem_trans_register_mem", status,
                                          "%p + %zu", address, capacity);
}

MF_API int32_t smem_trans_batch_register_mem(smem_trans_t handle,
                                             void *addresses[],
                                             size_t capacities[],
                                             uint32_t count, uint32_t flags)
{
    mf_status_t status;

    (void)flags;
    status = handle != NULL
                 ? mf_trans_register_batch(handle, addresses, capacities, count)
                 : MF_ERR_INVALID;
    return status == MF_OK ? SM_OK
                           : mf_smem_fail("smem_trans_batch_register_mem",
                                          status, "%u buffers", count);
}

MF_API int32_t smem_trans_deregister_mem(smem_trans_t handle, void *address)
{
    mf_status_t status;

    status =
        handle != NULL ? mf_trans_deregister(handle, address) : MF_ERR_INVALID;
    return status == MF_OK ? SM_OK
                           : mf_smem_fail("smem_trans_deregister_mem", status,
                                          "%p", address);
}

MF_API void *smem_trans_malloc(smem_trans_t handle, size_t size)
{
    void *p = NULL;

    if (handle == NULL || size == 0 ||
        posix_memalign(&p, mf_page_size(), size) != 0) {
        mf_smem_fail("smem_trans_malloc", MF_ERR_NOMEM, "%zu bytes", size);
        return NULL;
    }
    if (smem_trans_register_mem(handle, p, size, 0) != SM_OK) {
        free(p);
        return NULL;
    }
    return p;
}

MF_API int32_t smem_trans_free(smem_trans_t handle, void *address)
{
    int32_t code = smem_trans_deregister_mem(handle, address);

    if (code == SM_OK) {
        free(address);
    }
    return code;
}

MF_API int32_t smem_trans_read(smem_trans_t handle, void *localAddr,
                               const char *remoteUniqueId,
                               const void *remoteAddr, size_t dataSize,
                               uint32_t flags)
{
    (void)flags;
    return mf_smem_trans_done(
        "smem_trans_read",
        handle != NULL
            ? mf_trans_read(handle, remoteUniqueId, localAddr,
                            (uint64_t)(uintptr_t)remoteAddr, dataSize)
            : MF_ERR_INVALID,
        remoteUniqueId, 1);
}

MF_API int32_t smem_trans_write(smem_trans_t handle, const void *localAddr,
                                const char *remoteUniqueId, void *remoteAddr,
                                size_t dataSize, uint32_t flags)
{
    (void)flags;
    return mf_smem_trans_done(
        "smem_trans_write",
        handle != NULL
            ? mf_trans_write(handle, remoteUniqueId, localAddr,
                             (uint64_t)(uintptr_t)remoteAddr, dataSize)
            : MF_ERR_INVALID,
        remoteUniqueId, 1);
}

static int32_t mf_smem_trans_batch(const char *call, smem_trans_t handle,
                                   mf_trans_op_t op, void *const *local,
                                   const char *peer, void *const *remote,
                                   const size_t *sizes, uint32_t n)
{
    mf_trans_piece_t *pieces;
    mf_status_t status;

    if (handle == NULL ||
        (n > 0 && (local == NULL || remote == NULL || sizes == NULL))) {
        return mf_smem_fail(call, MF_ERR_INVALID, "handle or lists NULL");
    }
    pieces = malloc((n > 0 ? n : 1) * sizeof(*pieces));
    if (pieces == NULL) {
        return mf_smem_fail(call, MF_ERR_NOMEM, "%u pieces", n);
    }
    for (uint32_t i = 0; i < n; i++) {
        pieces[i].local = local[i];
        pieces[i].remote = (uint64_t)(uintptr_t)remote[i];
        pieces[i].size = sizes[i];
    }
    status = mf_trans_batch(handle, peer, op, pieces, n, NULL);
    free(pieces);
    return mf_smem_trans_done(call, status, peer, n);
}

MF_API int32_t smem_trans_batch_read(smem_trans_t handle, void *localAddrs[],
                                     const char *remoteUniqueId,
                                     const void *remoteAddrs[],
                                     size_t dataSizes[], uint32_t batchSize,
                                     uint32_t flags)
{
    (void)flags;
    return mf_smem_trans_batch(
        "smem_trans_batch_read", handle, MF_TRANS_READ, localAddrs,
        remoteUniqueId, (void *const *)remoteAddrs, dataSizes, batchSize);
}

MF_API int32_t smem_trans_batch_write(smem_trans_t handle,
                                      const void *localAddrs[],
                                      const char *remoteUniqueId,
                                      void *remoteAddrs[], size_t dataSizes[],
                                      uint32_t batchSize, uint32_t flags)
{
    (void)flags;
    return mf_smem_trans_batch("smem_trans_batch_write", handle, MF_TRANS_WRITE,
                               (void *const *)localAddrs, remoteUniqueId,
                               remoteAddrs, dataSizes, batchSize);
}

MF_API int32_t smem_trans_read_submit(smem_trans_t handle, void *localAddr,
                                      const char *remoteUniqueId,
                                      const void *remoteAddr, size_t dataSize,
                                      void *stream, uint32_t flags)
{
    if (stream != NULL) {
        return mf_smem_fail("smem_trans_read_submit", MF_ERR_UNSUPPORTED,
                            "transfers do not go on device streams here");
    }
    return smem_trans_read(handle, localAddr, remoteUniqueId, remoteAddr,
                           dataSize, flags);
}

MF_API int32_t smem_trans_write_submit(smem_trans_t handle,
                                       const void *localAddr,
                                       const char *remoteUniqueId,
                                       void *remoteAddr, size_t dataSize,
                                       void *stream, uint32_t flags)
{
    if (stream != NULL) {
        return mf_smem_fail("smem_trans_write_submit", MF_ERR_UNSUPPORTED,
                            "transfers do not go on device streams here");
    }
    return smem_trans_write(handle, localAddr, remoteUniqueId, remoteAddr,
                            dataSize, flags);
}
