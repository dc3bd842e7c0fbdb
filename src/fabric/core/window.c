/*
 * The GVA windows of a pool: their checks and reservations (the host
 * window as address space, the device window by the device kind when it
 * is ready), the device window's segment table and this rank's device
 * segment.
 */
#include "fabric/core/core.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- window */

/* The device window: max_hbm_per_rank a multiple of the device kind's
 * alignment, inside the address space, apart from the host window. */
static mf_status_t mf_fabric_dev_window_check(const mf_bm_config_t *cfg,
                                              uint32_t world,
                                              const mf_bm_create_params_t *p,
                                              uint64_t host_len,
                                              uint64_t *dev_len_p)
{
    const mf_mem_ops_t *ops = mf_mem_ops_get(MF_MEM_KIND_CUDA);
    uint64_t base = cfg->device_base, len, align;
    bool ready;

    *dev_len_p = 0;
    if (p->max_hbm_per_rank == 0) {
        if (p->local_hbm_size != 0) {
            mf_error("mf_bm_create: local_hbm_size 0x%" PRIx64
                     " without max_hbm_per_rank",
                     p->local_hbm_size);
            return MF_ERR_INVALID;
        }
        return MF_OK; /* a pool without device memory never asks the
                         driver (a GPU machine's host-only processes) */
    }
    ready = mf_mem_kind_ready(MF_MEM_KIND_CUDA) == MF_OK;
    align = ready ? ops->seg_align() : (2ull << 20);
    if (p->local_hbm_size > p->max_hbm_per_rank ||
        p->max_hbm_per_rank % align != 0 || base % align != 0) {
        mf_error("mf_bm_create: bad device sizes: local 0x%" PRIx64
                 ", max per rank 0x%" PRIx64 ", device_base 0x%" PRIx64
                 " (local <= max, max and base multiples of the device "
                 "allocation granularity 0x%" PRIx64 ")",
                 p->local_hbm_size, p->max_hbm_per_rank, base, align);
        return MF_ERR_INVALID;
    }
    if (p->local_hbm_size != 0 && !ready) {
        mf_error("mf_bm_create: local_hbm_size 0x%" PRIx64 " needs device "
                 "memory, which this process cannot have: %s",
                 p->local_hbm_size,
                 mf_status_str(mf_mem_kind_ready(MF_MEM_KIND_CUDA)));
        return MF_ERR_UNSUPPORTED;
    }
    if (__builtin_mul_overflow(p->max_hbm_per_rank, (uint64_t)world, &len) ||
        base + len < base || base + len > MF_FABRIC_VA_LIMIT ||
        (base < cfg->host_base + host_len && cfg->host_base < base + len)) {
        mf_error("mf_bm_create: device window 0x%" PRIx64 " + %u x 0x%" PRIx64
                 " does not fit the address space or meets the host window "
                 "0x%" PRIx64 "+0x%" PRIx64,
                 base, world, p->max_hbm_per_rank, cfg->host_base, host_len);
        return MF_ERR_INVALID;
    }
    *dev_len_p = len;
    return MF_OK;
}

mf_status_t mf_fabric_windows_reserve(const mf_bm_config_t *cfg, uint64_t len,
                                      uint64_t dev_len, char *why,
                                      size_t why_len)
{
    mf_status_t status;

    status = mf_mem_reserve(cfg->host_base, len, why, why_len);
    if (status != MF_OK || dev_len == 0) {
        return status;
    }
    if (mf_mem_kind_ready(MF_MEM_KIND_CUDA) == MF_OK) {
        status = mf_mem_ops_get(MF_MEM_KIND_CUDA)
                     ->reserve(cfg->device_base, dev_len, why, why_len);
    } else {
        status = mf_mem_reserve(cfg->device_base, dev_len, why, why_len);
    }
    if (status != MF_OK) {
        mf_mem_unreserve(cfg->host_base, len);
    }
    return status;
}

void mf_fabric_windows_unreserve(const mf_bm_config_t *cfg, uint64_t len,
                                 uint64_t dev_len)
{
    if (dev_len != 0) {
        if (mf_mem_kind_ready(MF_MEM_KIND_CUDA) == MF_OK) {
            mf_mem_ops_get(MF_MEM_KIND_CUDA)
                ->unreserve(cfg->device_base, dev_len);
        } else {
            mf_mem_unreserve(cfg->device_base, dev_len);
        }
    }
    mf_mem_unreserve(cfg->host_base, len);
}

mf_status_t mf_fabric_window_check(const mf_bm_config_t *cfg, uint32_t world,
                                   const mf_bm_create_params_t *params,
                                   uint64_t *len_p, uint64_t *dev_len_p)
{
    uint64_t page = mf_page_size();
    uint64_t len;
    mf_status_t status;

    if (params == NULL ||
        params->size < offsetof(mf_bm_create_params_t, flags)) {
        mf_error("mf_bm_create: params missing or of an older size");
        return MF_ERR_INVALID;
    }
    if (world == 0 || params->local_dram_size == 0 ||
        params->max_dram_per_rank == 0 ||
        params->local_dram_size > params->max_dram_per_rank ||
        params->max_dram_per_rank % page != 0) {
        mf_error("mf_bm_create: bad sizes: local 0x%" PRIx64
                 ", max per rank 0x%" PRIx64 " (> 0, local <= max, max a "
                 "multiple of %" PRIu64 ")",
                 params->local_dram_size, params->max_dram_per_rank, page);
        return MF_ERR_INVALID;
    }
    if (cfg->host_base == 0 || cfg->host_base % page != 0 ||
        __builtin_mul_overflow(params->max_dram_per_rank, (uint64_t)world,
                               &len) ||
        cfg->host_base + len < cfg->host_base ||
        cfg->host_base + len > MF_FABRIC_VA_LIMIT) {
        mf_error("mf_bm_create: window 0x%" PRIx64 " + %u x 0x%" PRIx64
                 " does not fit the 47-bit user address space",
                 cfg->host_base, world, params->max_dram_per_rank);
        return MF_ERR_INVALID;
    }
    status = mf_fabric_dev_window_check(cfg, world, params, len, dev_len_p);
    if (status != MF_OK) {
        return status;
    }
    *len_p = len;
    return MF_OK;
}

/* ------------------------------------------------------- device table */

void mf_fabric_table_init(mf_fabric_seg_t *segs, uint32_t world,
                          mf_mem_kind_t kind, uint64_t base, uint64_t stride)
{
    uint32_t r;

    memset(segs, 0, sizeof(*segs) * world);
    for (r = 0; r < world; r++) {
        atomic_init(&segs[r].state, MF_FABRIC_SEG_NONE);
        atomic_init(&segs[r].readers, 0);
        atomic_init(&segs[r].watch_seq, 0);
        atomic_init(&segs[r].dma_state, 0);
        segs[r].kind = kind;
        segs[r].gva = base + (uint64_t)r * stride;
    }
}

/* The device window's table (the window is reserved already). */
mf_status_t mf_fabric_dev_alloc(mf_fabric_pool_t *pool,
                                const mf_bm_config_t *cfg,
                                const mf_bm_create_params_t *params)
{
    mf_fabric_dev_t *dev = &pool->dev;

    dev->kind = MF_MEM_KIND_CUDA;
    dev->kind_ready = mf_mem_kind_ready(dev->kind) == MF_OK;
    dev->base = cfg->device_base;
    dev->stride = params->max_hbm_per_rank;
    dev->end = dev->base + (uint64_t)pool->world * dev->stride;
    dev->local_size = params->local_hbm_size;
    dev->own.fd = -1;
    if (dev->stride == 0) {
        dev->end = dev->base;
        return MF_OK;
    }
    dev->segs = aligned_alloc(64, sizeof(*dev->segs) * pool->world);
    if (dev->segs == NULL) {
        mf_error("mf-bm: cannot allocate the table of %u device segments",
                 pool->world);
        return MF_ERR_NOMEM;
    }
    mf_fabric_table_init(dev->segs, pool->world, dev->kind, dev->base,
                         dev->stride);
    return MF_OK;
}

/*
 * The own device segment (local_hbm_size > 0), and the host segment
 * registered for the device's DMA so copies between the two run at link
 * speed.
 */
mf_status_t mf_fabric_dev_own_create(mf_fabric_pool_t *pool, unsigned flags)
{
    mf_fabric_dev_t *dev = &pool->dev;
    const mf_mem_ops_t *ops = mf_mem_ops_get(dev->kind);
    mf_status_t status;

    if (dev->stride == 0) {
        return MF_OK; /* no device memory in this pool */
    }
    if (dev->kind_ready) {
        status = ops->dma_reg(pool->own.addr, pool->own.size, &dev->host_dma);
        if (status != MF_OK) {
            mf_warn("mf-bm: the host segment is not registered for device "
                    "DMA (%s): copies to and from device memory are slower",
                    mf_status_name(status));
            dev->host_dma = NULL;
        }
    }
    if (dev->local_size == 0) {
        return MF_OK;
    }
    status = ops->seg_create((void *)(uintptr_t)dev->segs[pool->rank].gva,
                             MF_ALIGN_UP(dev->local_size, ops->seg_align()),
                             flags, &dev->own);
    if (status != MF_OK) {
        mf_error("mf-bm: cannot create the device segment of 0x%" PRIx64
                 " bytes: %s",
                 dev->local_size, mf_status_name(status));
        if (dev->host_dma != NULL) {
            ops->dma_dereg(dev->host_dma);
            dev->host_dma = NULL;
        }
        dev->own.addr = NULL;
    }
    return status;
}

void mf_fabric_dev_own_destroy(mf_fabric_pool_t *pool)
{
    mf_fabric_dev_t *dev = &pool->dev;
    const mf_mem_ops_t *ops = mf_mem_ops_get(dev->kind);

    if (dev->own.addr != NULL) {
        ops->seg_destroy(&dev->own);
        dev->own.addr = NULL;
    }
    if (dev->host_dma != NULL) {
        ops->dma_dereg(dev->host_dma);
        dev->host_dma = NULL;
    }
}

/* ------------------------------------------------------ pinned segments */

void mf_fabric_seg_dma_pin(mf_fabric_seg_t *seg, mf_mem_kind_t kind)
{
    int expected = 0;
    mf_mem_reg_t *reg = NULL;

    /* one thread registers; the others copy meanwhile, pageable */
    if (!atomic_compare_exchange_strong(&seg->dma_state, &expected, 1)) {
        return;
    }
    if (mf_mem_ops_get(kind)->dma_reg(
            seg->addr, MF_ALIGN_UP(seg->size, mf_page_size()), &reg) != MF_OK) {
        mf_warn("mf-bm: the segment at 0x%" PRIx64 " is not registered for "
                "device DMA: copies between it and device memory are slower",
                seg->gva);
        reg = NULL;
    }
    seg->dma = reg;
    seg->dma_kind = kind;
    atomic_store(&seg->dma_state, 2);
}

void mf_fabric_seg_dma_drop(mf_fabric_seg_t *seg)
{
    /* no copy holds the segment: a registration under way has ended */
    if (atomic_load(&seg->dma_state) == 2 && seg->dma != NULL) {
        mf_mem_ops_get(seg->dma_kind)->dma_dereg(seg->dma);
    }
    seg->dma = NULL;
    atomic_store(&seg->dma_state, 0);
}
