/*
 * UCX as the ucx transport sees it: libucp.so.0 (or $MF_UCX_LIBRARY)
 * loaded with dlopen on first use, its functions (and the few of libuct
 * and libucs it needs, reached through libucp's dependencies) looked up
 * by name.  Nothing links UCX: a process that never opens the transport
 * never loads it, and one without UCX gets MF_ERR_UNSUPPORTED and the
 * reason.  The build needs UCX's headers only.
 *
 * Only src/tl/ucx includes this header (and UCX's).
 */
#ifndef MF_TL_UCX_UCX_LIB_H
#define MF_TL_UCX_UCX_LIB_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <ucp/api/ucp.h>
#include <uct/api/uct.h>

/* Every UCX function the transport calls. */
// clang-format off
#define MF_UCX_LIB_FUNCS(_f) \
    _f(ucp_get_version_string) \
    _f(ucp_config_read) \
    _f(ucp_config_modify) \
    _f(ucp_config_release) \
    _f(ucp_init_version) \
    _f(ucp_cleanup) \
    _f(ucp_context_query) \
    _f(ucp_worker_create) \
    _f(ucp_worker_destroy) \
    _f(ucp_worker_get_address) \
    _f(ucp_worker_release_address) \
    _f(ucp_worker_get_efd) \
    _f(ucp_worker_arm) \
    _f(ucp_worker_progress) \
    _f(ucp_worker_signal) \
    _f(ucp_ep_create) \
    _f(ucp_ep_close_nbx) \
    _f(ucp_ep_flush_nbx) \
    _f(ucp_mem_map) \
    _f(ucp_mem_unmap) \
    _f(ucp_rkey_pack) \
    _f(ucp_rkey_buffer_release) \
    _f(ucp_ep_rkey_unpack) \
    _f(ucp_rkey_destroy) \
    _f(ucp_put_nbx) \
    _f(ucp_get_nbx) \
    _f(ucp_request_check_status) \
    _f(ucp_request_free) \
    _f(ucs_status_string) \
    _f(uct_query_components) \
    _f(uct_release_component_list) \
    _f(uct_component_query) \
    _f(uct_md_config_read) \
    _f(uct_config_release) \
    _f(uct_md_open) \
    _f(uct_md_close) \
    _f(uct_md_query_tl_resources) \
    _f(uct_release_tl_resource_list)
// clang-format on

typedef struct mf_ucx_lib {
#define MF_UCX_LIB_MEMBER(_fn) __typeof__(_fn) *_fn;
    MF_UCX_LIB_FUNCS(MF_UCX_LIB_MEMBER)
#undef MF_UCX_LIB_MEMBER
} mf_ucx_lib_t;

/* Loads UCX once per process; the table, or NULL when it cannot be
 * loaded (mf_ucx_lib_why() says why, e.g. "cannot load libucp.so.0"). */
const mf_ucx_lib_t *mf_ucx_lib(void);
const char *mf_ucx_lib_why(void);

/* Whether UCX reaches an RDMA device here with a transport that puts
 * and gets in the NIC (rc, dc); checked once.  Machines without
 * /sys/class/infiniband answer false without loading UCX.
 *
 * Elsewhere (tcp, ud, shared memory without cma) UCX emulates RMA with
 * messages served by the target's worker, and UCX (1.13 to 1.16 at
 * least, rma_sw.c) aborts the target when it answers such a message from
 * a peer that has died: a peer killed in mid-copy takes the process it
 * copied to or from with it.  Hence auto's choice of RDMA only. */
bool mf_ucx_lib_has_rdma(void);

/* Our status for a UCX one: peer failures as MF_ERR_PEER_*. */
mf_status_t mf_ucx_status(ucs_status_t status);

#endif
