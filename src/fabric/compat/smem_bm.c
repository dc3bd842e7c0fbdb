/*
 * The smem_bm_* shim (compat/smem_bm.h) over mf_bm.h.  A handle wraps the
 * pool and the copies started on it with ASYNC_COPY_FLAG, which
 * smem_bm_wait completes.  Upstream's directions name where each side is
 * (local device, local host, global); ours say the same where both sides
 * are named, and AUTO (the library looks at the addresses) where upstream
 * leaves the global side's memory open.
 */
#include "fabric/compat/smem_int.h"

#include <compat/smem_bm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MF_SMEM_DEFAULT_MS 120000u

typedef struct mf_smem_bm {
    mf_bm_t *bm;
    pthread_mutex_t lock;
    mf_bm_req_t **reqs; /* started with ASYNC_COPY_FLAG */
    size_t nreqs;
    size_t cap;
} mf_smem_bm_t;

static bool mf_smem_elastic; /* dynamicWorldSize of smem_bm_init */

MF_API int32_t smem_bm_config_init(smem_bm_config_t *config)
{
    if (config == NULL) {
        return mf_smem_fail("smem_bm_config_init", MF_ERR_INVALID,
                            "config is NULL");
    }
    memset(config, 0, sizeof(*config));
    config->initTimeout = 120;
    config->createTimeout = 120;
    config->controlOperationTimeout = 120;
    config->startConfigStoreServer = true;
    return SM_OK;
}

static mf_status_t mf_smem_bm_set(void *obj, const char *key, const char *value)
{
    return mf_bm_config_set(obj, key, value);
}

MF_API int32_t smem_bm_init(const char *storeURL, uint32_t worldSize,
                            uint16_t deviceId, const smem_bm_config_t *config)
{
    const char *call = "smem_bm_init";
    smem_bm_config_t dflt;
    mf_bm_config_t cfg;
    mf_status_t status;
    uint32_t rank;

    if (config == NULL) {
        smem_bm_config_init(&dflt);
        config = &dflt;
    }
    if (storeURL == NULL || worldSize == 0) {
        return mf_smem_fail(call, MF_ERR_INVALID, "storeURL %s, worldSize %u",
                            storeURL != NULL ? "set" : "NULL", worldSize);
    }
    if (config->hcomTlsConfig.tlsEnable) {
        return mf_smem_fail(call, MF_ERR_UNSUPPORTED,
                            "hcomTlsConfig: the data path is not encrypted "
                            "(its connections are authenticated, see "
                            "docs/security.md); TLS is for the config "
                            "store (storeTlsConfig)");
    }
    rank = config->autoRanking ? MF_RANK_AUTO : config->rankId;
    if (config->startConfigStoreServer &&
        (config->startConfigStoreOnly || rank == 0)) {
        status = mf_smem_store_start(storeURL, &config->storeTlsConfig);
        if (status != MF_OK && status != MF_ERR_EXISTS) {
            return mf_smem_fail(
                call, status, "cannot serve the config store at %s", storeURL);
        }
    }
    if (config->startConfigStoreOnly) {
        return SM_OK;
    }
    mf_smem_device(deviceId);
    mf_bm_config_init(&cfg);
    status = mf_smem_tls(&config->storeTlsConfig, mf_smem_bm_set, &cfg);
    if (status != MF_OK) {
        return mf_smem_fail(call, status, "storeTlsConfig: see the log");
    }
    cfg.timeout_ms = mf_smem_ms(config->initTimeout, MF_SMEM_DEFAULT_MS);
    cfg.op_timeout_ms =
        mf_smem_ms(config->controlOperationTimeout, MF_SMEM_DEFAULT_MS);
    mf_smem_elastic = config->dynamicWorldSize;
    status = mf_bm_init(storeURL, worldSize, rank, &cfg);
    if (status != MF_OK) {
        return mf_smem_fail(call, status, "cannot join %s as rank %d of %u",
                            storeURL, (int)rank, worldSize);
    }
    return SM_OK;
}

MF_API void smem_bm_uninit(uint32_t flags)
{
    (void)flags;
    mf_bm_uninit();
}

MF_API uint32_t smem_bm_get_rank_id(void)
{
    uint32_t rank;

    return mf_bm_rank_id(&rank) == MF_OK ? rank : UINT32_MAX;
}

static smem_bm_t mf_smem_bm_new(const char *call, uint32_t id, uint64_t dram,
                                uint64_t max_dram, uint64_t hbm,
                                uint64_t max_hbm)
{
    uint64_t page = mf_page_size(), align = 2ull << 20;
    mf_bm_create_params_t params;
    mf_smem_bm_t *h;
    mf_status_t status;

    if (max_dram < dram) {
        max_dram = dram;
    }
    if (max_hbm < hbm) {
        max_hbm = hbm;
    }
    mf_bm_create_params_init(&params);
    /* a pool always has a host window: one page per rank at least */
    params.local_dram_size = dram != 0 ? dram : page;
    params.max_dram_per_rank =
        (MF_MAX(max_dram, params.local_dram_size) + page - 1) / page * page;
    params.local_hbm_size = hbm;
    params.max_hbm_per_rank = (max_hbm + align - 1) / align * align;
    params.flags = mf_smem_elastic ? MF_BM_CREATE_ELASTIC : 0;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        mf_smem_fail(call, MF_ERR_NOMEM, "no memory for a handle");
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    status = mf_bm_create(id, &params, &h->bm);
    if (status != MF_OK) {
        mf_smem_fail(call, status,
                     "pool %u of %#llx host and %#llx device "
                     "bytes per rank",
                     id, (unsigned long long)dram, (unsigned long long)hbm);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    return h;
}

MF_API smem_bm_t smem_bm_create(uint32_t id, uint32_t memberSize,
                                smem_bm_data_op_type dataOpType,
                                uint64_t localDRAMSize, uint64_t localHBMSize,
                                uint32_t flags)
{
    (void)memberSize;
    (void)dataOpType;
    (void)flags;
    return mf_smem_bm_new("smem_bm_create", id, localDRAMSize, localDRAMSize,
                          localHBMSize, localHBMSize);
}

MF_API smem_bm_t smem_bm_create2(uint32_t id,
                                 const smem_bm_create_option_t *option)
{
    if (option == NULL) {
        mf_smem_fail("smem_bm_create2", MF_ERR_INVALID, "option is NULL");
        return NULL;
    }
    return mf_smem_bm_new("smem_bm_create2", id, option->localDRAMSize,
                          option->maxDramSize, option->localHBMSize,
                          option->maxHbmSize);
}

MF_API void smem_bm_destroy(smem_bm_t handle)
{
    mf_smem_bm_t *h = handle;

    if (h == NULL) {
        return;
    }
    (void)smem_bm_wait(h);
    mf_bm_destroy(h->bm);
    free(h->reqs);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

MF_API int32_t smem_bm_join(smem_bm_t handle, uint32_t flags,
                            void **localGvaAddress)
{
    mf_smem_bm_t *h = handle;
    mf_status_t status;
    uint32_t rank;

    (void)flags;
    if (h == NULL) {
        return mf_smem_fail("smem_bm_join", MF_ERR_INVALID, "handle is NULL");
    }
    status = mf_bm_join(h->bm);
    if (status != MF_OK) {
        return mf_smem_fail("smem_bm_join", status, "cannot join");
    }
    if (localGvaAddress != NULL && mf_bm_rank_id(&rank) == MF_OK) {
        bool host = mf_bm_local_size(h->bm, MF_MEM_DEVICE) == 0 ||
                    mf_bm_local_size(h->bm, MF_MEM_HOST) > mf_page_size();
        *localGvaAddress =
            mf_bm_gva_of_rank(h->bm, rank, host ? MF_MEM_HOST : MF_MEM_DEVICE);
    }
    return SM_OK;
}

MF_API int32_t smem_bm_leave(smem_bm_t handle, uint32_t flags)
{
    mf_smem_bm_t *h = handle;
    mf_status_t status;

    (void)flags;
    if (h == NULL) {
        return mf_smem_fail("smem_bm_leave", MF_ERR_INVALID, "handle is NULL");
    }
    status = mf_bm_leave(h->bm);
    return status == MF_OK
               ? SM_OK
               : mf_smem_fail("smem_bm_leave", status, "cannot leave");
}

static mf_mem_type_t mf_smem_type(smem_bm_mem_type t)
{
    return t == SMEM_MEM_TYPE_LOCAL_DEVICE || t == SMEM_MEM_TYPE_DEVICE
               ? MF_MEM_DEVICE
               : MF_MEM_HOST;
}

MF_API uint64_t smem_bm_get_local_mem_size_by_mem_type(smem_bm_t handle,
                                                       smem_bm_mem_type memType)
{
    mf_smem_bm_t *h = handle;

    return h != NULL ? mf_bm_local_size(h->bm, mf_smem_type(memType)) : 0;
}

MF_API void *smem_bm_ptr_by_mem_type(smem_bm_t handle, smem_bm_mem_type memType,
                                     uint16_t peerRankId)
{
    mf_smem_bm_t *h = handle;

    return h != NULL
               ? mf_bm_gva_of_rank(h->bm, peerRankId, mf_smem_type(memType))
               : NULL;
}

MF_API uint32_t smem_bm_get_rank_id_by_gva(smem_bm_t handle, void *gva)
{
    mf_smem_bm_t *h = handle;
    uint32_t rank;

    if (h == NULL ||
        mf_bm_rank_of_gva(h->bm, (uint64_t)(uintptr_t)gva, &rank) != MF_OK) {
        return UINT32_MAX;
    }
    return rank;
}

/* Our direction of an upstream one: both sides named, or AUTO. */
static bool mf_smem_dir(smem_bm_copy_type t, mf_copy_dir_t *dir)
{
    switch (t) {
    case SMEMB_COPY_L2GH:
        *dir = MF_COPY_LD2GH;
        return true;
    case SMEMB_COPY_GH2L:
        *dir = MF_COPY_GH2LD;
        return true;
    case SMEMB_COPY_GH2H:
        *dir = MF_COPY_GH2LH;
        return true;
    case SMEMB_COPY_H2GH:
        *dir = MF_COPY_LH2GH;
        return true;
    case SMEMB_COPY_L2G:
    case SMEMB_COPY_G2L:
    case SMEMB_COPY_G2H:
    case SMEMB_COPY_H2G:
    case SMEMB_COPY_G2G:
    case SMEMB_COPY_AUTO:
        *dir = MF_COPY_AUTO;
        return true;
    default:
        return false;
    }
}

/* Keeps an asynchronous copy for smem_bm_wait. */
static mf_status_t mf_smem_keep(mf_smem_bm_t *h, mf_bm_req_t *req)
{
    mf_status_t status = MF_OK;

    pthread_mutex_lock(&h->lock);
    if (h->nreqs == h->cap) {
        size_t cap = h->cap != 0 ? 2 * h->cap : 16;
        mf_bm_req_t **reqs = realloc(h->reqs, cap * sizeof(*reqs));

        if (reqs == NULL) {
            status = MF_ERR_NOMEM;
        } else {
            h->reqs = reqs;
            h->cap = cap;
        }
    }
    if (status == MF_OK) {
        h->reqs[h->nreqs++] = req;
    }
    pthread_mutex_unlock(&h->lock);
    if (status != MF_OK) {
        (void)mf_bm_wait(req, -1); /* nowhere to keep it: finish it now */
    }
    return status;
}

/* The pieces of a batch's parameters (NULL: logged, *code_p set). */
static mf_copy_piece_t *mf_smem_pieces(const char *call,
                                       const smem_batch_copy_params *params,
                                       int32_t *code_p)
{
    mf_copy_piece_t *pieces;

    if (params == NULL || params->stream != NULL ||
        (params->batchSize > 0 &&
         (params->sources == NULL || params->destinations == NULL ||
          params->dataSizes == NULL))) {
        *code_p = mf_smem_fail(call, MF_ERR_INVALID,
                               "params missing, or a stream given (copies "
                               "do not go on device streams here)");
        return NULL;
    }
    pieces = malloc((params->batchSize > 0 ? params->batchSize : 1) *
                    sizeof(*pieces));
    if (pieces == NULL) {
        *code_p =
            mf_smem_fail(call, MF_ERR_NOMEM, "%u pieces", params->batchSize);
        return NULL;
    }
    for (uint32_t i = 0; i < params->batchSize; i++) {
        pieces[i].src = (uint64_t)(uintptr_t)params->sources[i];
        pieces[i].dst = (uint64_t)(uintptr_t)params->destinations[i];
        pieces[i].size = params->dataSizes[i];
    }
    return pieces;
}

static int32_t mf_smem_copy_pieces(const char *call, mf_smem_bm_t *h,
                                   const mf_copy_piece_t *pieces, size_t n,
                                   smem_bm_copy_type t, uint32_t flags,
                                   mf_status_t *results)
{
    mf_copy_dir_t dir;
    mf_bm_req_t *req;
    mf_status_t status;

    if (h == NULL || !mf_smem_dir(t, &dir)) {
        return mf_smem_fail(call, MF_ERR_INVALID,
                            "handle NULL or copy type "
                            "%d unknown",
                            (int)t);
    }
    if ((flags & ASYNC_COPY_FLAG) != 0) {
        status = mf_bm_copy_batch_async(h->bm, pieces, n, dir, &req);
        if (status == MF_OK) {
            status = mf_smem_keep(h, req);
        }
    } else {
        status = mf_bm_copy_batch(h->bm, pieces, n, dir, results);
    }
    return status == MF_OK ? SM_OK
                           : mf_smem_fail(call, status, "%zu pieces (%s)", n,
                                          mf_copy_dir_name(dir));
}

MF_API int32_t smem_bm_copy(smem_bm_t handle, smem_copy_params *params,
                            smem_bm_copy_type t, uint32_t flags)
{
    mf_copy_piece_t piece;

    if (params == NULL || params->stream != NULL) {
        return mf_smem_fail("smem_bm_copy", MF_ERR_INVALID,
                            "params missing, or a stream given (copies do "
                            "not go on device streams here)");
    }
    piece.src = (uint64_t)(uintptr_t)params->src;
    piece.dst = (uint64_t)(uintptr_t)params->dest;
    piece.size = params->dataSize;
    return mf_smem_copy_pieces("smem_bm_copy", handle, &piece, 1, t, flags,
                               NULL);
}

MF_API int32_t smem_bm_copy_batch(smem_bm_t handle,
                                  smem_batch_copy_params *params,
                                  smem_bm_copy_type t, uint32_t flags)
{
    mf_copy_piece_t *pieces;
    int32_t code;

    pieces = mf_smem_pieces("smem_bm_copy_batch", params, &code);
    if (pieces == NULL) {
        return code;
    }
    code = mf_smem_copy_pieces("smem_bm_copy_batch", handle, pieces,
                               params->batchSize, t, flags, NULL);
    free(pieces);
    return code;
}

MF_API int32_t smem_bm_copy_batch_partial_succeed(
    smem_bm_t handle, smem_batch_copy_params *params, smem_bm_copy_type t,
    uint32_t flags, smem_batch_copy_result *result)
{
    const char *call = "smem_bm_copy_batch_partial_succeed";
    mf_status_t *res = NULL;
    mf_copy_piece_t *pieces;
    int32_t code;
    bool any_ok = false;

    if (result == NULL || result->results == NULL || params == NULL ||
        result->batchSize != params->batchSize ||
        (flags & ASYNC_COPY_FLAG) != 0) {
        return mf_smem_fail(call, MF_ERR_INVALID,
                            "result missing, of another size, or an "
                            "asynchronous copy");
    }
    pieces = mf_smem_pieces(call, params, &code);
    if (pieces == NULL) {
        return code;
    }
    res =
        malloc((params->batchSize > 0 ? params->batchSize : 1) * sizeof(*res));
    if (res == NULL) {
        free(pieces);
        return mf_smem_fail(call, MF_ERR_NOMEM, "%u results",
                            params->batchSize);
    }
    for (uint32_t i = 0; i < params->batchSize; i++) {
        res[i] = MF_ERR_INVALID;
    }
    code = mf_smem_copy_pieces(call, handle, pieces, params->batchSize, t,
                               flags, res);
    for (uint32_t i = 0; i < params->batchSize; i++) {
        result->results[i] = mf_smem_code(res[i]);
        any_ok = any_ok || res[i] == MF_OK;
    }
    free(res);
    free(pieces);
    return code != SM_OK && any_ok ? SMEM_PARTIAL_FAILED : code;
}

MF_API int32_t smem_bm_wait(smem_bm_t handle)
{
    mf_smem_bm_t *h = handle;
    mf_status_t status, first = MF_OK;
    mf_bm_req_t **reqs;
    size_t n;

    if (h == NULL) {
        return mf_smem_fail("smem_bm_wait", MF_ERR_INVALID, "handle is NULL");
    }
    pthread_mutex_lock(&h->lock);
    reqs = h->reqs;
    n = h->nreqs;
    h->reqs = NULL;
    h->nreqs = 0;
    h->cap = 0;
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n; i++) {
        status = mf_bm_wait(reqs[i], -1);
        if (status != MF_OK && first == MF_OK) {
            first = status;
        }
    }
    free(reqs);
    return first == MF_OK ? SM_OK
                          : mf_smem_fail("smem_bm_wait", first,
                                         "an asynchronous copy failed");
}

MF_API int32_t smem_bm_register_user_mem(smem_bm_t handle, uint64_t addr,
                                         uint64_t size)
{
    mf_smem_bm_t *h = handle;
    mf_status_t status;

    if (h == NULL) {
        return mf_smem_fail("smem_bm_register_user_mem", MF_ERR_INVALID,
                            "handle is NULL");
    }
    status = mf_bm_register(h->bm, (void *)(uintptr_t)addr, size);
    return status == MF_OK
               ? SM_OK
               : mf_smem_fail("smem_bm_register_user_mem", status,
                              "%#llx + %#llx", (unsigned long long)addr,
                              (unsigned long long)size);
}

MF_API int32_t smem_bm_unregister_user_mem(smem_bm_t handle, uint64_t addr)
{
    mf_smem_bm_t *h = handle;
    mf_status_t status;

    if (h == NULL) {
        return mf_smem_fail("smem_bm_unregister_user_mem", MF_ERR_INVALID,
                            "handle is NULL");
    }
    status = mf_bm_unregister(h->bm, (void *)(uintptr_t)addr);
    return status == MF_OK ? SM_OK
                           : mf_smem_fail("smem_bm_unregister_user_mem", status,
                                          "%#llx", (unsigned long long)addr);
}
