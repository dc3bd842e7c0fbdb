/*
 * Host memory that device data passes through, for the transports that
 * move bytes (tcp, ucx): device memory cannot meet a socket (or a NIC
 * without GPUDirect), so a chunk of it is copied by its memory kind into
 * host memory registered for the kind's DMA, and sent from there (or
 * received there and copied out).
 */
#include "tl/tl.h"

#include "util/log.h"
#include "util/misc.h"

#include <stdlib.h>

mf_status_t mf_tl_stage_reserve(mf_tl_stage_mem_t *mem, mf_mem_kind_t kind,
                                size_t len, size_t min, const char *who)
{
    const mf_mem_ops_t *ops = mf_mem_ops_get(kind);
    size_t cap = MF_ALIGN_UP(MF_MAX(len, min), 4096);
    uint8_t *buf;

    if (mem->buf != NULL && mem->cap >= len && mem->kind == kind) {
        return MF_OK;
    }
    buf = aligned_alloc(4096, cap);
    if (buf == NULL) {
        mf_error("%s: cannot allocate %zu bytes of staging memory", who, cap);
        return MF_ERR_NOMEM;
    }
    mf_tl_stage_release(mem);
    mem->buf = buf;
    mem->cap = cap;
    mem->kind = kind;
    /* unregistered staging still works, through the driver's own */
    if (ops->dma_reg(buf, cap, &mem->reg) != MF_OK) {
        mem->reg = NULL;
    }
    return MF_OK;
}

void mf_tl_stage_release(mf_tl_stage_mem_t *mem)
{
    if (mem->reg != NULL) {
        mf_mem_ops_get(mem->kind)->dma_dereg(mem->reg);
    }
    free(mem->buf);
    mem->buf = NULL;
    mem->cap = 0;
    mem->reg = NULL;
}

mf_status_t mf_tl_stage_copy(const char *who, mf_mem_kind_t kind, void *dst,
                             const void *src, size_t len)
{
    mf_status_t status = mf_mem_ops_get(kind)->copy(dst, src, len);

    if (status != MF_OK) {
        mf_error("%s: %s copy of %zu bytes %p -> %p failed: %s", who,
                 mf_mem_ops_get(kind)->name, len, src, dst,
                 mf_status_name(status));
    }
    return status;
}
