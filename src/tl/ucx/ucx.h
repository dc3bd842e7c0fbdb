/*
 * ucx transport: its objects, wire format of what it packs, and its
 * settings.  Private to the transport and its tests.
 *
 * One UCP context and one worker per interface.  The worker is driven
 * under the interface's lock by whoever holds it: callers posting puts and
 * gets, progress() (a trylock), and the interface's progress thread,
 * which sleeps on the worker's event fd while nothing is in flight and is
 * woken (ucp_worker_signal) by a caller that leaves work for it.  UCX's
 * software RMA (over tcp, and shared memory without cma) needs the target
 * worker progressed too: the thread serves peers' puts and gets into our
 * segments while this process does nothing.
 *
 * Completion: a get completes when its data is here; a put when it is in
 * the peer's memory, which UCX tells by a flush of the endpoint posted
 * behind it (ucp_put_nbx alone completes when the buffer may be reused).
 *
 * A packed interface address (little-endian):
 *   u32 magic MF_TL_UCX_ADDR_MAGIC, u8 version, u32 len, len bytes of the
 *   worker's UCP address.
 * A packed remote key:
 *   u32 magic MF_TL_UCX_RKEY_MAGIC, u8 version, u64 addr (where the memory
 *   lies in its owner), u64 size, u8 memory kind (mf_mem_kind_t), u32 len,
 *   len bytes of the UCP rkey.
 */
#ifndef MF_TL_UCX_UCX_H
#define MF_TL_UCX_UCX_H

#include "tl/tl.h"
#include "tl/ucx/ucx_lib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MF_TL_UCX_ADDR_MAGIC  0x4155464du /* "MFUA" */
#define MF_TL_UCX_RKEY_MAGIC  0x4b55464du /* "MFUK" */
#define MF_TL_UCX_VERSION     1
#define MF_TL_UCX_BLOB_MAX    1024 /* bytes of a packed address or key */
#define MF_TL_UCX_CHUNK_MIN   (64u * 1024u)
#define MF_TL_UCX_CHUNK_MAX   (64u * 1024u * 1024u)
#define MF_TL_UCX_STAGE_SLOTS 2 /* staged chunks in flight per copy */
#define MF_TL_UCX_SETTING_MAX 256

/* Settings of an interface (keys ucx.*, ucx_config.c). */
typedef struct mf_tl_ucx_config {
    char tls[MF_TL_UCX_SETTING_MAX];         /* ucx.tls: UCX_TLS */
    char net_devices[MF_TL_UCX_SETTING_MAX]; /* ucx.net_devices */
    uint64_t chunk_size; /* ucx.chunk_size: device memory staging */
    char auto_open[16];  /* ucx.auto: "rdma", "always" or "never" */
    uint32_t timeout_ms; /* ucx.timeout_ms: a peer that completes none of
                            the copies in flight to it is dead then */
} mf_tl_ucx_config_t;

extern const mf_cfg_table_t mf_tl_ucx_cfg_table;
mf_status_t mf_tl_ucx_config_check(const void *config);

/* Host memory a staged copy passes through: MF_TL_UCX_STAGE_SLOTS chunks,
 * registered for the DMA of the kind, cached by the interface. */
typedef struct mf_tl_ucx_stage_buf {
    struct mf_tl_ucx_stage_buf *next;
    mf_tl_stage_mem_t mem;
} mf_tl_ucx_stage_buf_t;

typedef struct mf_tl_ucx_iface {
    mf_tl_iface_t super;
    const mf_ucx_lib_t *lib;
    ucp_context_h context;
    ucp_worker_h worker;
    ucp_address_t *address;
    size_t address_len;
    uint64_t mem_types; /* UCS_BIT(ucs_memory_type_t) UCX moves itself */
    uint64_t chunk_size;
    pthread_mutex_t lock; /* the worker: every UCP call on it */
    pthread_t thread;
    bool thread_live;
    int efd;              /* the worker's event fd */
    atomic_bool sleeping; /* the thread waits on efd: signal it */
    atomic_bool stopping;
    atomic_uint closing;               /* endpoint close requests in flight */
    uint64_t next_ep_id;               /* under lock */
    mf_tl_ucx_stage_buf_t *stage_free; /* under lock */
    struct mf_tl_ucx_link *links;      /* open links, under lock */
    struct mf_tl_ucx_op *op_free;      /* under lock */
    unsigned inflight;                 /* copies in flight, under lock */
    uint64_t timeout_ns;
} mf_tl_ucx_iface_t;

typedef struct mf_tl_ucx_ep mf_tl_ucx_ep_t;

/*
 * One UCP endpoint as the transport tracks it, under the interface's lock:
 * what its error handler reaches, and the copies in flight on it, which
 * the watchdog fails when none of them completed for ucx.timeout_ms.  It
 * outlives the endpoint it names (ep is cleared when that is destroyed or
 * rebuilt) until UCX has closed the UCP endpoint and its last copy has
 * completed.
 */
typedef struct mf_tl_ucx_link {
    mf_tl_ucx_iface_t *iface;
    mf_tl_ucx_ep_t *ep; /* NULL once the UCP endpoint is being closed */
    struct mf_tl_ucx_link *prev, *next; /* the interface's open links */
    unsigned inflight;                  /* copies holding it */
    uint64_t last_ns; /* of the last completion, or of the first copy */
    bool timed_out;   /* closed by the watchdog: cancels are peer errors */
    bool closed;      /* UCX is done with the UCP endpoint */
    bool unchecked;   /* no peer-failure reports (shared memory) */
} mf_tl_ucx_link_t;

/* A copy in flight on the direct path (reused through the interface's
 * free list). */
typedef struct mf_tl_ucx_op {
    struct mf_tl_ucx_op *next;
    mf_tl_comp_t *comp;
    mf_tl_ucx_link_t *link;
    void *tp; /* mf_trace_point_t of the copy */
    uint64_t t0;
} mf_tl_ucx_op_t;

struct mf_tl_ucx_ep {
    mf_tl_ep_t super;
    ucp_ep_h ep; /* NULL after a failure, until rebuilt */
    mf_tl_ucx_link_t *link;
    uint64_t id;        /* of ep: new at every (re)build */
    atomic_bool failed; /* the error handler ran on ep */
    void *addr;         /* the peer's worker address, to rebuild */
    size_t addr_len;
};

typedef struct mf_tl_ucx_memh {
    mf_tl_memh_t super;
    ucp_mem_h mh; /* NULL: user memory kept private (not mapped) */
    void *rkey;   /* packed by UCX */
    size_t rkey_len;
    mf_mem_kind_t kind;
} mf_tl_ucx_memh_t;

typedef struct mf_tl_ucx_rkey {
    mf_tl_rkey_t super;
    uint64_t base;      /* the memory's address in its owner */
    mf_mem_kind_t kind; /* of the peer's memory */
    void *packed;
    size_t packed_len;
    ucp_rkey_h handle; /* unpacked for endpoint ep_id; under lock */
    uint64_t ep_id;
} mf_tl_ucx_rkey_t;

extern const mf_tl_ops_t mf_tl_ucx_ops;

/* ---- ucx_iface.c, for ucx_ops.c (lock held) ---- */

/* The UCP endpoint of ep, rebuilt when the last one failed. */
mf_status_t mf_tl_ucx_ep_get(mf_tl_ucx_iface_t *iface, mf_tl_ucx_ep_t *ep,
                             ucp_ep_h *uep_p);
/* rkey unpacked for the current endpoint of ep. */
mf_status_t mf_tl_ucx_rkey_get(mf_tl_ucx_iface_t *iface, mf_tl_ucx_ep_t *ep,
                               mf_tl_ucx_rkey_t *rkey, ucp_rkey_h *handle_p);
/* A copy starts on link / touches it (a chunk completed) / ends. */
void mf_tl_ucx_link_hold(mf_tl_ucx_iface_t *iface, mf_tl_ucx_link_t *link);
void mf_tl_ucx_link_touch(mf_tl_ucx_link_t *link);
void mf_tl_ucx_link_drop(mf_tl_ucx_iface_t *iface, mf_tl_ucx_link_t *link);
/* Our status for a completion on link: a copy the watchdog canceled, or
 * a failure of an endpoint without peer-failure reports, is the peer's. */
mf_status_t mf_tl_ucx_link_status(const mf_tl_ucx_link_t *link,
                                  ucs_status_t status);
/* Wakes the progress thread if it sleeps (lock not needed). */
void mf_tl_ucx_kick(mf_tl_ucx_iface_t *iface);
/* Whether UCX moves memory of kind itself (else it is staged). */
bool mf_tl_ucx_moves(const mf_tl_ucx_iface_t *iface, mf_mem_kind_t kind);
ucs_memory_type_t mf_tl_ucx_mem_type(mf_mem_kind_t kind);

/* ---- ucx_ops.c ---- */

mf_status_t mf_tl_ucx_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_ucx_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_ucx_flush(mf_tl_ep_t *ep, mf_tl_comp_t *comp);
unsigned mf_tl_ucx_progress(mf_tl_iface_t *iface);
void mf_tl_ucx_stage_buf_free(mf_tl_ucx_stage_buf_t *host);

#endif
