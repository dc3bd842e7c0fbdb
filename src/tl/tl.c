/*
 * Transport registry and the stubs that fill unsupported slots.
 *
 * The registry is a constant array in preference order: "auto" picks the
 * first transport that reaches a peer.
 */
#include "tl/tl.h"

#include <string.h>

static const mf_tl_ops_t *const mf_tl_all[] = {
    &mf_tl_shm_ops,
    &mf_tl_tcp_ops,
};

size_t mf_tl_count(void)
{
    return sizeof(mf_tl_all) / sizeof(mf_tl_all[0]);
}

const mf_tl_ops_t *mf_tl_at(size_t index)
{
    return index < mf_tl_count() ? mf_tl_all[index] : NULL;
}

const mf_tl_ops_t *mf_tl_find(const char *name)
{
    size_t i;

    for (i = 0; i < mf_tl_count(); i++) {
        if (strcmp(mf_tl_all[i]->name, name) == 0) {
            return mf_tl_all[i];
        }
    }
    return NULL;
}

mf_status_t mf_tl_no_mem_reg(mf_tl_iface_t *iface,
                             const mf_tl_mem_params_t *params,
                             mf_tl_memh_t **memh_p)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_rkey_pack(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                               void *buf, size_t buf_len, size_t *len_p)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                         size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr, size_t size,
                         mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_flush(mf_tl_ep_t *ep, mf_tl_comp_t *comp)
{
    return MF_OK;
}

unsigned mf_tl_no_progress(mf_tl_iface_t *iface)
{
    return 0;
}
