/*
 * Waiting for transport completions, for every family on the fabric core
 * (the copy engine, TRANS): a waiter counts the operations outstanding,
 * each completion takes one off.  Implemented in copy.c.
 */
#ifndef MF_FABRIC_CORE_WAITER_H
#define MF_FABRIC_CORE_WAITER_H

#include "tl/tl.h"

#include <stdatomic.h>

/*
 * Completions of transports that finish later (tcp): a waiter counts the
 * operations outstanding, each callback takes one off, and the thread that
 * waits sleeps on the count (a futex) instead of spinning, so it leaves the
 * CPU to the transport threads.
 */
typedef struct mf_fabric_waiter {
    atomic_int left;
} mf_fabric_waiter_t;

typedef struct mf_fabric_comp {
    mf_tl_comp_t super;
    mf_fabric_waiter_t *waiter;
    mf_status_t status;
} mf_fabric_comp_t;

/* Counts one completion off its waiter and wakes it at zero. */
void mf_fabric_comp_cb(mf_tl_comp_t *comp, mf_status_t status);

static inline void mf_fabric_comp_init(mf_fabric_comp_t *fc,
                                       mf_fabric_waiter_t *waiter)
{
    fc->super.cb = mf_fabric_comp_cb;
    fc->super.mem_kind = MF_MEM_KIND_HOST;
    fc->waiter = waiter;
    fc->status = MF_OK;
}

/* Waits until every operation counted in waiter completed, driving the
 * progress of iface (may be NULL) meanwhile. */
void mf_fabric_waiter_wait(mf_fabric_waiter_t *waiter, mf_tl_iface_t *iface);
/* The same for up to timeout_ms (< 0: without limit): MF_OK, or
 * MF_ERR_TIMEOUT with operations still out. */
mf_status_t mf_fabric_waiter_wait_for(mf_fabric_waiter_t *waiter,
                                      mf_tl_iface_t *iface, int timeout_ms);

#endif
