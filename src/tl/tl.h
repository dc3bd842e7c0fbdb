/*
 * Transports behind one ops table.
 *
 * A transport moves bytes between local memory and a peer's registered
 * memory.  It is opened as an interface (mf_tl_iface_t); an endpoint
 * (mf_tl_ep_t) reaches one peer; memory is registered (mf_tl_memh_t) and its
 * remote key packed into bytes a peer unpacks (mf_tl_rkey_t).  Every
 * struct a transport extends starts with the ops pointer (or the base
 * struct) so the transport embeds it as its first member.
 *
 * put/get return MF_OK (done), MF_INPROGRESS (comp->cb fires later, exactly
 * once, possibly from another thread) or an error (comp->cb never fires).
 * Every slot of a table is filled; a transport points what it cannot do at
 * the mf_tl_no_* stubs, which return MF_ERR_UNSUPPORTED.
 */
#ifndef MF_TL_TL_H
#define MF_TL_TL_H

#include "mem/mem.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mf_tl_ops mf_tl_ops_t;
typedef struct mf_workers mf_workers_t;

typedef struct mf_tl_iface {
    const mf_tl_ops_t *ops;
} mf_tl_iface_t;

typedef struct mf_tl_ep {
    const mf_tl_ops_t *ops;
    mf_tl_iface_t *iface;
} mf_tl_ep_t;

typedef struct mf_tl_memh {
    const mf_tl_ops_t *ops;
    void *addr;
    uint64_t size;
} mf_tl_memh_t;

typedef struct mf_tl_rkey {
    const mf_tl_ops_t *ops;
    uint64_t gva;  /* first address the key covers */
    uint64_t size; /* bytes */
    void *addr;    /* non-NULL when the memory is mapped here (at gva) and
                      can be loaded from and stored to directly */
} mf_tl_rkey_t;

typedef struct mf_tl_comp mf_tl_comp_t;
typedef void (*mf_tl_comp_cb)(mf_tl_comp_t *comp, mf_status_t status);
struct mf_tl_comp {
    mf_tl_comp_cb cb;
};

/* Capabilities. */
#define MF_TL_CAP_PUT         0x1u
#define MF_TL_CAP_GET         0x2u
#define MF_TL_CAP_ADDRESSABLE 0x4u /* unpacked remote memory is mapped */
#define MF_TL_CAP_SAME_HOST   0x8u /* reaches peers of this host only */

typedef struct mf_tl_caps {
    uint32_t flags;  /* MF_TL_CAP_* */
    size_t addr_max; /* bytes of a packed interface address */
    size_t rkey_max; /* bytes of a packed remote key */
} mf_tl_caps_t;

typedef struct mf_tl_params {
    const char *host_id;      /* mf_host_id() */
    mf_workers_t *workers; /* copy threads, NULL for none */
    uint64_t split_min;       /* copies from this size use the workers */
    unsigned mem_flags;       /* MF_MEM_SEG_* for imported segments */
    /* tcp (zero: defaults) */
    const char *tcp_addr;       /* IPv4 address or name to listen on and
                                   advertise; NULL or "" listens on all */
    const char *tcp_route_host; /* listening on all: advertise the local
                                   address routed towards this host (the
                                   config store); NULL: 127.0.0.1 */
    uint16_t tcp_port;          /* 0: a free port */
    uint32_t tcp_lanes;         /* connections per peer and threads */
    uint64_t tcp_chunk_size;    /* bytes per request on a lane */
    uint32_t tcp_timeout_ms;    /* a silent peer is dead after this long
                                   (user timeout, keepalive, connect) */
} mf_tl_params_t;

/* What to register: memory of a segment (seg set), or plain user memory. */
typedef struct mf_tl_mem_params {
    void *addr;
    uint64_t size;
    const mf_mem_seg_t *seg; /* NULL for user memory */
} mf_tl_mem_params_t;

struct mf_tl_ops {
    const char *name;
    mf_status_t (*iface_open)(const mf_tl_params_t *params,
                              mf_tl_iface_t **iface_p);
    void (*iface_close)(mf_tl_iface_t *iface);
    void (*iface_query)(mf_tl_iface_t *iface, mf_tl_caps_t *caps_p);
    /* Packs this interface's address (what peers test reachability on). */
    mf_status_t (*iface_addr_pack)(mf_tl_iface_t *iface, void *buf,
                                   size_t buf_len, size_t *len_p);
    bool (*iface_is_reachable)(mf_tl_iface_t *iface, const void *addr,
                               size_t len);
    mf_status_t (*mem_reg)(mf_tl_iface_t *iface,
                           const mf_tl_mem_params_t *params,
                           mf_tl_memh_t **memh_p);
    void (*mem_dereg)(mf_tl_iface_t *iface, mf_tl_memh_t *memh);
    mf_status_t (*rkey_pack)(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                             void *buf, size_t buf_len, size_t *len_p);
    /* Unpacks a peer's key, which must cover exactly [gva, gva + size):
     * the caller says where the peer's memory belongs, and a key that
     * claims other addresses is refused (MF_ERR_PROTO). */
    mf_status_t (*rkey_unpack)(mf_tl_iface_t *iface, const void *buf,
                               size_t len, uint64_t gva, uint64_t size,
                               mf_tl_rkey_t **rkey_p);
    void (*rkey_release)(mf_tl_iface_t *iface, mf_tl_rkey_t *rkey);
    mf_status_t (*ep_create)(mf_tl_iface_t *iface, const void *addr, size_t len,
                             mf_tl_ep_t **ep_p);
    void (*ep_destroy)(mf_tl_ep_t *ep);
    /* Copies size bytes from buf to remote address raddr under rkey. */
    mf_status_t (*put)(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                       size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
    /* Copies size bytes from remote address raddr to buf. */
    mf_status_t (*get)(mf_tl_ep_t *ep, void *buf, uint64_t raddr, size_t size,
                       mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
    /* Completes every put/get issued on ep before it. */
    mf_status_t (*flush)(mf_tl_ep_t *ep, mf_tl_comp_t *comp);
    /* Drives completions; returns how many it completed. */
    unsigned (*progress)(mf_tl_iface_t *iface);
};

/* ---- dispatch ---- */

static inline mf_status_t mf_tl_put(mf_tl_ep_t *ep, const void *buf,
                                    uint64_t raddr, size_t size,
                                    mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return ep->ops->put(ep, buf, raddr, size, rkey, comp);
}

static inline mf_status_t mf_tl_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                                    size_t size, mf_tl_rkey_t *rkey,
                                    mf_tl_comp_t *comp)
{
    return ep->ops->get(ep, buf, raddr, size, rkey, comp);
}

static inline unsigned mf_tl_progress(mf_tl_iface_t *iface)
{
    return iface->ops->progress(iface);
}

/* ---- registry ---- */

extern const mf_tl_ops_t mf_tl_shm_ops;
extern const mf_tl_ops_t mf_tl_tcp_ops; /* tl/tcp/tcp.c: peers on any host */

/* Number of transports built in, and the i-th one (NULL past the end). */
size_t mf_tl_count(void);
const mf_tl_ops_t *mf_tl_at(size_t index);
/* By name; NULL if unknown. */
const mf_tl_ops_t *mf_tl_find(const char *name);

/* ---- stubs for unsupported slots ---- */

mf_status_t mf_tl_no_mem_reg(mf_tl_iface_t *iface,
                             const mf_tl_mem_params_t *params,
                             mf_tl_memh_t **memh_p);
mf_status_t mf_tl_no_rkey_pack(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                               void *buf, size_t buf_len, size_t *len_p);
mf_status_t mf_tl_no_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                         size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_no_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr, size_t size,
                         mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_no_flush(mf_tl_ep_t *ep, mf_tl_comp_t *comp);
unsigned mf_tl_no_progress(mf_tl_iface_t *iface);

#endif
