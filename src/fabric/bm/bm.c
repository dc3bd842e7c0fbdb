/*
 * BM, the big-memory API family, on the fabric core: a BM pool is a
 * fabric pool (window, segment table, transports, copy engine), so every
 * call here only forwards to the core.  mf_bm_t is the opaque handle of a
 * mf_fabric_pool_t; SHM and TRANS sit beside BM on the same core.
 */
#include "fabric/core/core.h"

static inline mf_fabric_pool_t *mf_bm_pool(mf_bm_t *bm)
{
    return (mf_fabric_pool_t *)bm;
}

MF_API mf_status_t mf_bm_config_check(const mf_bm_config_t *cfg)
{
    if (cfg == NULL || cfg->size < sizeof(*cfg)) {
        return MF_ERR_INVALID;
    }
    return mf_fabric_config_check(cfg);
}

MF_API mf_status_t mf_bm_init(const char *store_url, uint32_t world_size,
                              uint32_t rank, const mf_bm_config_t *cfg)
{
    return mf_fabric_init(store_url, world_size, rank, cfg);
}

MF_API void mf_bm_uninit(void)
{
    mf_fabric_uninit();
}

MF_API mf_status_t mf_bm_rank_id(uint32_t *rank_p)
{
    return mf_fabric_rank_id(rank_p);
}

MF_API uint32_t mf_bm_world_size(void)
{
    return mf_fabric_world_size();
}

MF_API void mf_bm_create_params_init(mf_bm_create_params_t *params)
{
    mf_fabric_create_params_init(params);
}

MF_API mf_status_t mf_bm_create(uint32_t id,
                                const mf_bm_create_params_t *params,
                                mf_bm_t **bm_p)
{
    return mf_fabric_create(id, params, (mf_fabric_pool_t **)bm_p);
}

MF_API mf_status_t mf_bm_join(mf_bm_t *bm)
{
    return mf_fabric_join(mf_bm_pool(bm));
}

MF_API mf_status_t mf_bm_leave(mf_bm_t *bm)
{
    return mf_fabric_leave(mf_bm_pool(bm));
}

MF_API void mf_bm_destroy(mf_bm_t *bm)
{
    mf_fabric_destroy(mf_bm_pool(bm));
}

MF_API void *mf_bm_gva_of_rank(mf_bm_t *bm, uint32_t rank, mf_mem_type_t type)
{
    return mf_fabric_gva_of_rank(mf_bm_pool(bm), rank, type);
}

MF_API mf_status_t mf_bm_rank_of_gva(mf_bm_t *bm, uint64_t gva,
                                     uint32_t *rank_p)
{
    return mf_fabric_rank_of_gva(mf_bm_pool(bm), gva, rank_p);
}

MF_API bool mf_bm_rank_joined(mf_bm_t *bm, uint32_t rank)
{
    return mf_fabric_rank_joined(mf_bm_pool(bm), rank);
}

MF_API mf_status_t mf_bm_rank_wait(mf_bm_t *bm, uint32_t rank, int timeout_ms)
{
    return mf_fabric_rank_wait(mf_bm_pool(bm), rank, timeout_ms);
}

MF_API const char *mf_bm_host_id(mf_bm_t *bm)
{
    return bm != NULL ? mf_fabric_host_id(mf_bm_pool(bm)) : mf_host_id();
}

MF_API uint64_t mf_bm_local_size(mf_bm_t *bm, mf_mem_type_t type)
{
    return mf_fabric_local_size(mf_bm_pool(bm), type);
}

MF_API void mf_bm_set_rank_cb(mf_bm_t *bm, mf_bm_rank_cb cb, void *arg)
{
    mf_fabric_set_rank_cb(mf_bm_pool(bm), cb, arg);
}

MF_API mf_status_t mf_bm_register(mf_bm_t *bm, void *addr, size_t size)
{
    return mf_fabric_register(mf_bm_pool(bm), addr, size);
}

MF_API mf_status_t mf_bm_unregister(mf_bm_t *bm, void *addr)
{
    return mf_fabric_unregister(mf_bm_pool(bm), addr);
}

MF_API mf_status_t mf_bm_copy(mf_bm_t *bm, uint64_t src, uint64_t dst,
                              size_t size, mf_copy_dir_t dir)
{
    return mf_fabric_copy(mf_bm_pool(bm), src, dst, size, dir);
}

MF_API mf_status_t mf_bm_copy_batch(mf_bm_t *bm, const mf_copy_piece_t *pieces,
                                    size_t count, mf_copy_dir_t dir,
                                    mf_status_t *results)
{
    return mf_fabric_copy_batch(mf_bm_pool(bm), pieces, count, dir, results);
}

MF_API mf_status_t mf_bm_copy_async(mf_bm_t *bm, uint64_t src, uint64_t dst,
                                    size_t size, mf_copy_dir_t dir,
                                    mf_bm_req_t **req_p)
{
    return mf_fabric_copy_async(mf_bm_pool(bm), src, dst, size, dir, req_p);
}

MF_API mf_status_t mf_bm_copy_batch_async(mf_bm_t *bm,
                                          const mf_copy_piece_t *pieces,
                                          size_t count, mf_copy_dir_t dir,
                                          mf_bm_req_t **req_p)
{
    return mf_fabric_copy_batch_async(mf_bm_pool(bm), pieces, count, dir,
                                      req_p);
}

MF_API mf_status_t mf_bm_wait(mf_bm_req_t *req, int timeout_ms)
{
    return mf_fabric_req_wait(req, timeout_ms);
}

MF_API mf_status_t mf_bm_test(mf_bm_req_t *req)
{
    return mf_fabric_req_test(req);
}

MF_API void mf_bm_config_init(mf_bm_config_t *cfg)
{
    mf_fabric_config_init(cfg);
}

MF_API mf_status_t mf_bm_config_load_env(mf_bm_config_t *cfg,
                                         const char *env_prefix)
{
    return mf_fabric_config_load_env(cfg, env_prefix);
}

MF_API mf_status_t mf_bm_config_load(mf_bm_config_t *cfg, const char *path)
{
    return mf_fabric_config_load(cfg, path);
}

MF_API mf_status_t mf_bm_config_set(mf_bm_config_t *cfg, const char *key,
                                    const char *value)
{
    return mf_fabric_config_set(cfg, key, value);
}

MF_API mf_status_t mf_bm_config_get(const mf_bm_config_t *cfg, const char *key,
                                    char *buf, size_t len)
{
    return mf_fabric_config_get(cfg, key, buf, len);
}

MF_API void mf_bm_config_help(FILE *out)
{
    mf_fabric_config_help(out);
}

MF_API void mf_bm_config_help_as(FILE *out, const char *key_prefix,
                                 const char *env_prefix)
{
    mf_fabric_config_help_as(out, key_prefix, env_prefix);
}

MF_API size_t mf_bm_transport_count(void)
{
    return mf_tl_count();
}

MF_API const char *mf_bm_transport_name(size_t index)
{
    const mf_tl_ops_t *ops = mf_tl_at(index);

    return ops != NULL ? ops->name : NULL;
}
