/*
 * What reads a pool's segment tables (addresses of ranks, joined ranks,
 * waiting for one), and the registration of user memory with the
 * transports and, for host memory, the device's DMA.
 */
#include "fabric/core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *mf_fabric_gva_of_rank(mf_fabric_pool_t *pool, uint32_t rank,
                            mf_mem_type_t type)
{
    if (pool == NULL || rank >= pool->world) {
        return NULL;
    }
    if (type == MF_MEM_DEVICE) {
        return pool->dev.segs != NULL
                   ? (void *)(uintptr_t)pool->dev.segs[rank].gva
                   : NULL;
    }
    return type == MF_MEM_HOST ? (void *)(uintptr_t)pool->segs[rank].gva : NULL;
}

mf_status_t mf_fabric_rank_of_gva(mf_fabric_pool_t *pool, uint64_t gva,
                                  uint32_t *rank_p)
{
    if (pool == NULL || rank_p == NULL) {
        return MF_ERR_INVALID;
    }
    if (gva >= pool->dev.base && gva < pool->dev.end) {
        *rank_p = (uint32_t)((gva - pool->dev.base) / pool->dev.stride);
        return MF_OK;
    }
    if (gva < pool->base || gva >= pool->window_end) {
        return MF_ERR_OUT_OF_RANGE;
    }
    *rank_p = (uint32_t)((gva - pool->base) / pool->stride);
    return MF_OK;
}

bool mf_fabric_rank_joined(mf_fabric_pool_t *pool, uint32_t rank)
{
    if (pool == NULL || rank >= pool->world) {
        return false;
    }
    if (rank == pool->rank) {
        return atomic_load(&pool->joined);
    }
    return atomic_load(&pool->segs[rank].state) == MF_FABRIC_SEG_JOINED;
}

mf_status_t mf_fabric_rank_wait(mf_fabric_pool_t *pool, uint32_t rank,
                                int timeout_ms)
{
    return mf_fabric_seg_wait(pool, rank, false, timeout_ms);
}

mf_status_t mf_fabric_seg_wait(mf_fabric_pool_t *pool, uint32_t rank,
                               bool device, int timeout_ms)
{
    struct timespec deadline;
    mf_status_t status;
    unsigned state;
    int ret = 0;

    if (pool == NULL || rank >= pool->world ||
        (device && pool->dev.segs == NULL)) {
        return MF_ERR_INVALID;
    }
    if (timeout_ms > 0) {
        mf_deadline_after_ms(&deadline, (uint64_t)timeout_ms);
    }
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        if (rank == pool->rank) {
            state = atomic_load(&pool->joined) &&
                            (!device || pool->dev.own.addr != NULL)
                        ? MF_FABRIC_SEG_JOINED
                        : MF_FABRIC_SEG_NONE;
        } else {
            state = atomic_load(&mf_fabric_seg_of(pool, rank, device)->state);
        }
        if (state == MF_FABRIC_SEG_JOINED) {
            status = MF_OK;
            break;
        }
        if (state == MF_FABRIC_SEG_UNREACHABLE) {
            status = MF_ERR_UNREACHABLE;
            break;
        }
        if (timeout_ms == 0 || ret == ETIMEDOUT) {
            status = MF_ERR_TIMEOUT;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&pool->seg_cond, &pool->lock);
        } else {
            ret =
                pthread_cond_timedwait(&pool->seg_cond, &pool->lock, &deadline);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return status;
}

uint64_t mf_fabric_local_size(mf_fabric_pool_t *pool, mf_mem_type_t type)
{
    if (pool == NULL) {
        return 0;
    }
    return type == MF_MEM_HOST     ? pool->local_size
           : type == MF_MEM_DEVICE ? pool->dev.local_size
                                   : 0;
}

void mf_fabric_set_rank_cb(mf_fabric_pool_t *pool, mf_bm_rank_cb cb, void *arg)
{
    if (pool == NULL) {
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->rank_cb = cb;
    pool->rank_cb_arg = arg;
    pthread_mutex_unlock(&pool->lock);
}

/* ---------------------------------------------------------- registration */

mf_status_t mf_fabric_register(mf_fabric_pool_t *pool, void *addr, size_t size)
{
    mf_fabric_region_t region, *other;
    mf_tl_mem_params_t params = {0};
    mf_status_t status;
    uint64_t start = (uint64_t)(uintptr_t)addr;
    size_t i;

    if (pool == NULL || addr == NULL || size == 0 || start + size < start) {
        return MF_ERR_INVALID;
    }
    memset(&region, 0, sizeof(region));
    region.addr = start;
    region.size = size;
    params.addr = addr;
    params.size = size;
    params.seg = NULL;

    pthread_mutex_lock(&pool->lock);
    for (i = 0; i < pool->regions.count; i++) {
        other = mf_vec_at(&pool->regions, i);
        if (start < other->addr + other->size && other->addr < start + size) {
            status = MF_ERR_EXISTS;
            goto out_unlock;
        }
    }
    for (i = 0; i < pool->ntl; i++) {
        status = pool->ifaces[i]->ops->mem_reg(pool->ifaces[i], &params,
                                               &region.memh[i]);
        if (status == MF_ERR_UNSUPPORTED) {
            region.memh[i] = NULL; /* the transport copies without it */
        } else if (status != MF_OK) {
            mf_error("mf-bm: %s: cannot register %p+%zu: %s",
                     pool->ifaces[i]->ops->name, addr, size,
                     mf_status_name(status));
            goto err_dereg;
        }
    }
    /* host memory in a pool with device memory: pinned for the device's
     * copy engine, so copies between it and the device run at link speed */
    if (pool->dev.kind_ready && pool->dev.stride != 0 &&
        mf_mem_classify(addr, size) == MF_MEM_KIND_HOST &&
        mf_mem_ops_get(pool->dev.kind)->dma_reg(addr, size, &region.dma) !=
            MF_OK) {
        mf_warn("mf-bm: %p+%zu is not registered for device DMA: copies "
                "between it and device memory are slower",
                addr, size);
        region.dma = NULL;
    }
    if (mf_vec_push(&pool->regions, &region) == NULL) {
        mf_error("mf-bm: cannot grow the region table");
        status = MF_ERR_NOMEM;
        goto err_dereg;
    }
    status = MF_OK;
    goto out_unlock;

err_dereg:
    mf_fabric_region_release(pool, &region);
out_unlock:
    pthread_mutex_unlock(&pool->lock);
    return status;
}

mf_status_t mf_fabric_unregister(mf_fabric_pool_t *pool, void *addr)
{
    mf_fabric_region_t *region;
    mf_status_t status = MF_ERR_NOT_FOUND;
    size_t i;

    if (pool == NULL || addr == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&pool->lock);
    for (i = 0; i < pool->regions.count; i++) {
        region = mf_vec_at(&pool->regions, i);
        if (region->addr != (uint64_t)(uintptr_t)addr) {
            continue;
        }
        mf_fabric_region_release(pool, region);
        mf_vec_swap_remove(&pool->regions, i);
        status = MF_OK;
        break;
    }
    pthread_mutex_unlock(&pool->lock);
    return status;
}

void mf_fabric_region_release(mf_fabric_pool_t *pool,
                              mf_fabric_region_t *region)
{
    size_t k;

    for (k = 0; k < pool->ntl; k++) {
        if (region->memh[k] != NULL) {
            pool->ifaces[k]->ops->mem_dereg(pool->ifaces[k], region->memh[k]);
            region->memh[k] = NULL;
        }
    }
    if (region->dma != NULL) {
        mf_mem_ops_get(pool->dev.kind)->dma_dereg(region->dma);
        region->dma = NULL;
    }
}
