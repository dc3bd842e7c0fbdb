/*
 * Completions of transport operations in the transport tests: each counts
 * its calls (exactly one is the contract) and keeps the status it got.
 */
#ifndef MF_TEST_TL_COMP_H
#define MF_TEST_TL_COMP_H

#include "tk_proc.h"

#include "tl/tl.h"
#include "util/misc.h"

#include <stdatomic.h>
#include <unistd.h>

#define TEST_TL_COMP_WAIT_MS 120000

typedef struct test_comp {
    mf_tl_comp_t super;
    atomic_uint calls;
    mf_status_t status;
} test_comp_t;

static void test_comp_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    test_comp_t *tc = (test_comp_t *)comp;

    tc->status = status;
    atomic_fetch_add_explicit(&tc->calls, 1, memory_order_release);
}

static inline void test_comp_init(test_comp_t *tc)
{
    tc->super.cb = test_comp_cb;
    tc->super.mem_kind = MF_MEM_KIND_HOST;
    atomic_init(&tc->calls, 0);
    tc->status = MF_ERR_STATE;
}

static inline unsigned test_comp_calls(test_comp_t *tc)
{
    return atomic_load_explicit(&tc->calls, memory_order_acquire);
}

/*
 * The final status of an operation that returned status: that status, or
 * for MF_INPROGRESS the one its completion brings, while this thread
 * drives the progress of iface (NULL: the transport's threads do).  The
 * deadline only keeps a broken transport from hanging the test.
 */
static inline mf_status_t test_comp_wait(mf_tl_iface_t *iface, test_comp_t *tc,
                                         mf_status_t status)
{
    uint64_t deadline = mf_time_ms() + TEST_TL_COMP_WAIT_MS;

    if (status != MF_INPROGRESS) {
        return status;
    }
    while (test_comp_calls(tc) == 0) {
        if (mf_time_ms() > deadline) {
            tk_print("an operation did not complete in %d ms",
                     TEST_TL_COMP_WAIT_MS);
            return MF_ERR_TIMEOUT;
        }
        if (iface == NULL || iface->ops->progress(iface) == 0) {
            usleep(20);
        }
    }
    return tc->status;
}

#endif /* MF_TEST_TL_COMP_H */
