/*
 * Segment descriptors: encoder and bounds-checked decoder (desc.h).
 */
#include "fabric/core/desc.h"

#include <string.h>

void mf_fabric_desc_encode(const mf_fabric_desc_t *desc, mf_wbuf_t *w)
{
    uint32_t k;

    mf_wbuf_put_u32(w, MF_FABRIC_DESC_MAGIC);
    mf_wbuf_put_u8(w, MF_FABRIC_DESC_VERSION);
    mf_wbuf_put_u8(w, desc->leaving ? 1 : 0);
    mf_wbuf_put_u32(w, desc->rank);
    mf_wbuf_put_u64(w, desc->gva);
    mf_wbuf_put_u64(w, desc->size);
    mf_wbuf_put_u64(w, desc->map_size);
    mf_wbuf_put_u64(w, desc->incarnation);
    mf_wbuf_put_u32(w, desc->pid);
    mf_wbuf_put_str(w, desc->host_id);
    mf_wbuf_put_u32(w, desc->ntl);
    for (k = 0; k < desc->ntl && k < MF_FABRIC_DESC_TL_MAX; k++) {
        mf_wbuf_put_str(w, desc->tls[k].name);
        mf_wbuf_put_bytes(w, desc->tls[k].addr, desc->tls[k].addr_len);
        mf_wbuf_put_bytes(w, desc->tls[k].rkey, desc->tls[k].rkey_len);
    }
}

mf_status_t mf_fabric_desc_decode(const void *buf, size_t len,
                                  mf_fabric_desc_t *desc)
{
    uint8_t version, leaving;
    uint32_t magic, k;
    mf_rbuf_t r;

    memset(desc, 0, sizeof(*desc));
    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u8(&r, &leaving);
    mf_rbuf_get_u32(&r, &desc->rank);
    mf_rbuf_get_u64(&r, &desc->gva);
    mf_rbuf_get_u64(&r, &desc->size);
    mf_rbuf_get_u64(&r, &desc->map_size);
    mf_rbuf_get_u64(&r, &desc->incarnation);
    mf_rbuf_get_u32(&r, &desc->pid);
    mf_rbuf_get_str(&r, desc->host_id, sizeof(desc->host_id));
    mf_rbuf_get_u32(&r, &desc->ntl);
    if (mf_rbuf_status(&r, false) != MF_OK || magic != MF_FABRIC_DESC_MAGIC ||
        version != MF_FABRIC_DESC_VERSION || leaving > 1 ||
        desc->ntl > MF_FABRIC_DESC_TL_MAX) {
        return MF_ERR_PROTO;
    }
    desc->leaving = leaving != 0;
    for (k = 0; k < desc->ntl; k++) {
        mf_fabric_desc_tl_t *tl = &desc->tls[k];

        if (!mf_rbuf_get_str(&r, tl->name, sizeof(tl->name)) ||
            !mf_rbuf_get_bytes(&r, &tl->addr, &tl->addr_len,
                               MF_FABRIC_BLOB_MAX) ||
            !mf_rbuf_get_bytes(&r, &tl->rkey, &tl->rkey_len,
                               MF_FABRIC_BLOB_MAX)) {
            return MF_ERR_PROTO;
        }
    }
    return mf_rbuf_status(&r, true);
}
