/*
 * shm transport: peers of the same host.
 *
 * Registered segment memory is described by its memory-kind descriptor (for
 * host memory the owner's memfd); the remote key is that descriptor plus the
 * host id, the GVA and the size.  Unpacking a key maps the peer's segment at
 * its GVA in this process, so put and get are plain memcpy (inside the
 * key's range only), split across the copy threads from split_min bytes on,
 * and always complete at once.
 *
 * Invariants: a peer is reachable only when its host id equals ours; a key
 * is mapped only at the address range the caller expects, never where the
 * peer says; releasing a key restores the PROT_NONE reservation.
 */
#include "tl/shm/shm.h"
#include "util/workers.h"

#include "util/codec.h"
#include "util/log.h"
#include "util/misc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MF_TL_SHM_RKEY_MAGIC   0x48534d46u /* "MFSH" */
#define MF_TL_SHM_RKEY_VERSION 1
#define MF_TL_SHM_HOST_ID_MAX  256

typedef struct mf_tl_shm_iface {
    mf_tl_iface_t super;
    char host_id[MF_TL_SHM_HOST_ID_MAX];
    mf_workers_t *workers;
    uint64_t split_min;
    unsigned mem_flags;
} mf_tl_shm_iface_t;

typedef struct mf_tl_shm_ep {
    mf_tl_ep_t super;
} mf_tl_shm_ep_t;

typedef struct mf_tl_shm_memh {
    mf_tl_memh_t super;
    bool exported;
    mf_mem_desc_t desc;
} mf_tl_shm_memh_t;

typedef struct mf_tl_shm_rkey {
    mf_tl_rkey_t super;
    bool imported; /* we mapped it (a peer's), not our own segment */
    mf_mem_seg_t seg;
} mf_tl_shm_rkey_t;

static mf_status_t mf_tl_shm_iface_open(const mf_tl_params_t *params,
                                        mf_tl_iface_t **iface_p)
{
    mf_tl_shm_iface_t *iface;

    if (params->host_id == NULL ||
        strlen(params->host_id) >= MF_TL_SHM_HOST_ID_MAX) {
        mf_error("shm: bad host id");
        return MF_ERR_INVALID;
    }
    iface = calloc(1, sizeof(*iface));
    if (iface == NULL) {
        mf_error("shm: cannot allocate the interface");
        return MF_ERR_NOMEM;
    }
    iface->super.ops = &mf_tl_shm_ops;
    mf_strlcpy(iface->host_id, params->host_id, sizeof(iface->host_id));
    iface->workers = params->workers;
    iface->split_min = params->split_min != 0 ? params->split_min : UINT64_MAX;
    iface->mem_flags = params->mem_flags;
    *iface_p = &iface->super;
    return MF_OK;
}

static void mf_tl_shm_iface_close(mf_tl_iface_t *iface)
{
    free(iface);
}

static void mf_tl_shm_iface_query(mf_tl_iface_t *iface, mf_tl_caps_t *caps_p)
{
    caps_p->flags = MF_TL_CAP_PUT | MF_TL_CAP_GET | MF_TL_CAP_ADDRESSABLE |
                    MF_TL_CAP_SAME_HOST;
    /* every kind whose segments same-host processes can import: they are
     * mapped at their GVA, and the kind copies them */
    caps_p->mem_kinds = MF_TL_MEM_KIND(MF_MEM_KIND_HOST);
    for (int kind = MF_MEM_KIND_HOST + 1; kind < MF_MEM_KIND_LAST; kind++) {
        /* built, not probed (see tcp); an import fails where the kind
         * does not work, and the fabric tries the next transport */
        if (mf_mem_kind_built((mf_mem_kind_t)kind)) {
            caps_p->mem_kinds |= MF_TL_MEM_KIND(kind);
        }
    }
    caps_p->local_kinds = caps_p->mem_kinds;
    caps_p->addr_max = MF_TL_SHM_HOST_ID_MAX;
    caps_p->rkey_max = 64 + MF_TL_SHM_HOST_ID_MAX;
}

static mf_status_t mf_tl_shm_iface_addr_pack(mf_tl_iface_t *tl_iface, void *buf,
                                             size_t buf_len, size_t *len_p)
{
    mf_tl_shm_iface_t *iface = (mf_tl_shm_iface_t *)tl_iface;
    size_t len = strlen(iface->host_id);

    if (buf_len < len) {
        return MF_ERR_TOO_LARGE;
    }
    memcpy(buf, iface->host_id, len);
    *len_p = len;
    return MF_OK;
}

static bool mf_tl_shm_iface_is_reachable(mf_tl_iface_t *tl_iface,
                                         const void *addr, size_t len)
{
    mf_tl_shm_iface_t *iface = (mf_tl_shm_iface_t *)tl_iface;

    return len == strlen(iface->host_id) &&
           memcmp(addr, iface->host_id, len) == 0;
}

static mf_status_t mf_tl_shm_mem_reg(mf_tl_iface_t *iface,
                                     const mf_tl_mem_params_t *params,
                                     mf_tl_memh_t **memh_p)
{
    mf_tl_shm_memh_t *memh;
    mf_status_t status;

    memh = calloc(1, sizeof(*memh));
    if (memh == NULL) {
        mf_error("shm: cannot allocate a memory handle");
        return MF_ERR_NOMEM;
    }
    memh->super.ops = &mf_tl_shm_ops;
    memh->super.addr = params->addr;
    memh->super.size = params->size;
    if (params->seg != NULL) {
        status = mf_mem_ops_get(params->seg->kind)
                     ->seg_export(params->seg, &memh->desc);
        if (status != MF_OK) {
            mf_error("shm: cannot export segment %p: %s", params->seg->addr,
                     mf_status_name(status));
            goto err_free_memh;
        }
        memh->exported = true;
    }
    *memh_p = &memh->super;
    return MF_OK;

err_free_memh:
    free(memh);
    return status;
}

static void mf_tl_shm_mem_dereg(mf_tl_iface_t *iface, mf_tl_memh_t *memh)
{
    free(memh);
}

static mf_status_t mf_tl_shm_rkey_pack(mf_tl_iface_t *tl_iface,
                                       mf_tl_memh_t *tl_memh, void *buf,
                                       size_t buf_len, size_t *len_p)
{
    mf_tl_shm_iface_t *iface = (mf_tl_shm_iface_t *)tl_iface;
    mf_tl_shm_memh_t *memh = (mf_tl_shm_memh_t *)tl_memh;
    mf_wbuf_t w;

    if (!memh->exported) {
        /* plain user memory cannot be shared by this transport */
        return MF_ERR_UNSUPPORTED;
    }
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_SHM_RKEY_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_SHM_RKEY_VERSION);
    mf_wbuf_put_str(&w, iface->host_id);
    mf_wbuf_put_u32(&w, memh->desc.kind);
    mf_wbuf_put_u32(&w, memh->desc.pid);
    mf_wbuf_put_u32(&w, (uint32_t)memh->desc.fd);
    mf_wbuf_put_u64(&w, (uint64_t)(uintptr_t)memh->super.addr);
    mf_wbuf_put_u64(&w, memh->desc.size);
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

static mf_status_t mf_tl_shm_rkey_unpack(mf_tl_iface_t *tl_iface,
                                         const void *buf, size_t len,
                                         uint64_t gva, uint64_t size,
                                         mf_tl_rkey_t **rkey_p)
{
    mf_tl_shm_iface_t *iface = (mf_tl_shm_iface_t *)tl_iface;
    char host_id[MF_TL_SHM_HOST_ID_MAX];
    mf_tl_shm_rkey_t *rkey;
    uint32_t magic, kind, pid, fd;
    uint64_t key_gva, key_size;
    mf_mem_desc_t desc;
    mf_status_t status;
    uint8_t version;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_str(&r, host_id, sizeof(host_id));
    mf_rbuf_get_u32(&r, &kind);
    mf_rbuf_get_u32(&r, &pid);
    mf_rbuf_get_u32(&r, &fd);
    mf_rbuf_get_u64(&r, &key_gva);
    mf_rbuf_get_u64(&r, &key_size);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_SHM_RKEY_MAGIC) {
        mf_error("shm: malformed remote key (%zu bytes)", len);
        return MF_ERR_PROTO;
    }
    if (version != MF_TL_SHM_RKEY_VERSION) {
        mf_error("shm: remote key version %u, expected %u", version,
                 MF_TL_SHM_RKEY_VERSION);
        return MF_ERR_VERSION;
    }
    if (strcmp(host_id, iface->host_id) != 0) {
        return MF_ERR_UNREACHABLE;
    }
    if (key_gva != gva || key_size != size || kind >= MF_MEM_KIND_LAST ||
        (int32_t)fd < 0) {
        mf_error("shm: remote key of process %u claims 0x%" PRIx64 "+0x%" PRIx64
                 ", expected 0x%" PRIx64 "+0x%" PRIx64,
                 pid, key_gva, key_size, gva, size);
        return MF_ERR_PROTO;
    }

    rkey = calloc(1, sizeof(*rkey));
    if (rkey == NULL) {
        mf_error("shm: cannot allocate a remote key");
        return MF_ERR_NOMEM;
    }
    rkey->super.ops = &mf_tl_shm_ops;
    rkey->super.gva = gva;
    rkey->super.size = size;
    if (pid == (uint32_t)getpid()) {
        /* our own segment: mapped there already */
        rkey->imported = false;
    } else {
        desc.kind = kind;
        desc.pid = pid;
        desc.fd = (int32_t)fd;
        desc.size = size;
        status = mf_mem_ops_get((mf_mem_kind_t)kind)
                     ->seg_import(&desc, (void *)(uintptr_t)gva,
                                  iface->mem_flags, &rkey->seg);
        if (status != MF_OK) {
            goto err_free_rkey;
        }
        rkey->imported = true;
    }
    rkey->super.addr = (void *)(uintptr_t)gva;
    *rkey_p = &rkey->super;
    return MF_OK;

err_free_rkey:
    free(rkey);
    return status;
}

static void mf_tl_shm_rkey_release(mf_tl_iface_t *iface, mf_tl_rkey_t *tl_rkey)
{
    mf_tl_shm_rkey_t *rkey = (mf_tl_shm_rkey_t *)tl_rkey;

    if (rkey->imported) {
        mf_mem_ops_get(rkey->seg.kind)->seg_destroy(&rkey->seg);
    }
    free(rkey);
}

static mf_status_t mf_tl_shm_ep_create(mf_tl_iface_t *iface, const void *addr,
                                       size_t len, mf_tl_ep_t **ep_p)
{
    mf_tl_shm_ep_t *ep;

    if (!mf_tl_shm_iface_is_reachable(iface, addr, len)) {
        return MF_ERR_UNREACHABLE;
    }
    ep = calloc(1, sizeof(*ep));
    if (ep == NULL) {
        mf_error("shm: cannot allocate an endpoint");
        return MF_ERR_NOMEM;
    }
    ep->super.ops = &mf_tl_shm_ops;
    ep->super.iface = iface;
    *ep_p = &ep->super;
    return MF_OK;
}

static void mf_tl_shm_ep_destroy(mf_tl_ep_t *ep)
{
    free(ep);
}

static inline void mf_tl_shm_copy(mf_tl_shm_iface_t *iface, void *dst,
                                  const void *src, size_t size)
{
    if (size >= iface->split_min) {
        mf_workers_memcpy(iface->workers, dst, src, size);
    } else {
        memcpy(dst, src, size);
    }
}

static mf_status_t mf_tl_shm_put(mf_tl_ep_t *ep, const void *buf,
                                 uint64_t raddr, size_t size,
                                 mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    if (mf_unlikely(size == 0)) {
        return MF_OK;
    }
    if (mf_unlikely(!mf_tl_range_inside(rkey->gva, rkey->size, raddr, size))) {
        return MF_ERR_OUT_OF_RANGE;
    }
    mf_tl_shm_copy((mf_tl_shm_iface_t *)ep->iface, (void *)(uintptr_t)raddr,
                   buf, size);
    return MF_OK;
}

static mf_status_t mf_tl_shm_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                                 size_t size, mf_tl_rkey_t *rkey,
                                 mf_tl_comp_t *comp)
{
    if (mf_unlikely(size == 0)) {
        return MF_OK;
    }
    if (mf_unlikely(!mf_tl_range_inside(rkey->gva, rkey->size, raddr, size))) {
        return MF_ERR_OUT_OF_RANGE;
    }
    mf_tl_shm_copy((mf_tl_shm_iface_t *)ep->iface, buf,
                   (const void *)(uintptr_t)raddr, size);
    return MF_OK;
}

const mf_tl_ops_t mf_tl_shm_ops = {
    .name = "shm",
    .config = &mf_tl_no_config,
    .config_size = 0,
    .config_check = mf_tl_no_config_check,
    .iface_open = mf_tl_shm_iface_open,
    .iface_close = mf_tl_shm_iface_close,
    .iface_query = mf_tl_shm_iface_query,
    .iface_addr_pack = mf_tl_shm_iface_addr_pack,
    .iface_is_reachable = mf_tl_shm_iface_is_reachable,
    .mem_reg = mf_tl_shm_mem_reg,
    .mem_dereg = mf_tl_shm_mem_dereg,
    .rkey_pack = mf_tl_shm_rkey_pack,
    .rkey_unpack = mf_tl_shm_rkey_unpack,
    .rkey_release = mf_tl_shm_rkey_release,
    .ep_create = mf_tl_shm_ep_create,
    .ep_destroy = mf_tl_shm_ep_destroy,
    .put = mf_tl_shm_put,
    .get = mf_tl_shm_get,
    .flush = mf_tl_no_flush,
    .progress = mf_tl_no_progress,
};
