/*
 * ucx transport: the interface (a UCP context and worker, and the thread
 * that progresses the worker), addresses, memory registration, remote
 * keys and endpoints.  The copies are in ucx_ops.c; ucx.h describes the
 * locking and the formats.
 *
 * Invariants: every UCP call on the worker (and on endpoints and keys of
 * it) is made under iface->lock; an endpoint whose UCP endpoint failed is
 * rebuilt from the peer's address at its next use, and keys unpacked for
 * the failed one are unpacked again; a key is accepted only for the
 * address range the caller expects.
 */
#include "tl/ucx/ucx.h"

#include "util/codec.h"
#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long closing an interface waits for endpoint closes in flight. */
#define MF_TL_UCX_CLOSE_WAIT_MS 2000

static const char *mf_tl_ucx_err(const mf_tl_ucx_iface_t *iface,
                                 ucs_status_t status)
{
    return iface->lib->ucs_status_string(status);
}

bool mf_tl_ucx_moves(const mf_tl_ucx_iface_t *iface, mf_mem_kind_t kind)
{
    return (iface->mem_types & UCS_BIT(mf_tl_ucx_mem_type(kind))) != 0;
}

ucs_memory_type_t mf_tl_ucx_mem_type(mf_mem_kind_t kind)
{
    return kind == MF_MEM_KIND_CUDA ? UCS_MEMORY_TYPE_CUDA
                                    : UCS_MEMORY_TYPE_HOST;
}

void mf_tl_ucx_kick(mf_tl_ucx_iface_t *iface)
{
    if (atomic_load_explicit(&iface->sleeping, memory_order_acquire)) {
        (void)iface->lib->ucp_worker_signal(iface->worker);
    }
}

/* =============================================================== links */

void mf_tl_ucx_link_hold(mf_tl_ucx_iface_t *iface, mf_tl_ucx_link_t *link)
{
    if (link->inflight++ == 0) {
        link->last_ns = mf_time_ns();
    }
    iface->inflight++;
}

void mf_tl_ucx_link_touch(mf_tl_ucx_link_t *link)
{
    link->last_ns = mf_time_ns();
}

/* Frees link once UCX is done with it and no copy holds it. */
static void mf_tl_ucx_link_reap(mf_tl_ucx_link_t *link)
{
    if (link->closed && link->inflight == 0) {
        free(link);
    }
}

void mf_tl_ucx_link_drop(mf_tl_ucx_iface_t *iface, mf_tl_ucx_link_t *link)
{
    link->inflight--;
    link->last_ns = mf_time_ns();
    iface->inflight--;
    mf_tl_ucx_link_reap(link);
}

mf_status_t mf_tl_ucx_link_status(const mf_tl_ucx_link_t *link,
                                  ucs_status_t status)
{
    if (status == UCS_OK) {
        return MF_OK;
    }
    if ((status == UCS_ERR_CANCELED && link->timed_out) ||
        (link->unchecked && status != UCS_ERR_CANCELED)) {
        return MF_ERR_PEER_LOST;
    }
    return mf_ucx_status(status);
}

static void mf_tl_ucx_ep_close_uep(mf_tl_ucx_iface_t *iface,
                                   mf_tl_ucx_ep_t *ep);

/*
 * The watchdog (lock held, on the progress thread): an endpoint with
 * copies in flight of which none completed for ucx.timeout_ms belongs to
 * a peer that is gone or cut off (UCX's own keepalive over TCP takes far
 * longer, and sees nothing while data waits in a socket): it is closed,
 * which cancels its copies (they fail with MF_ERR_PEER_LOST), and the
 * next copy builds a new one.
 */
static void mf_tl_ucx_watchdog(mf_tl_ucx_iface_t *iface)
{
    uint64_t now = mf_time_ns();
    mf_tl_ucx_link_t *link, *next;

    for (link = iface->links; link != NULL; link = next) {
        next = link->next;
        if (link->inflight == 0 || now - link->last_ns < iface->timeout_ns) {
            continue;
        }
        mf_warn("ucx: a peer completed none of %u copies in flight to it "
                "for %llu ms (ucx.timeout_ms): they fail, and its endpoint "
                "is rebuilt",
                link->inflight,
                (unsigned long long)((now - link->last_ns) / 1000000));
        link->timed_out = true;
        atomic_store(&link->ep->failed, true);
        mf_tl_ucx_ep_close_uep(iface, link->ep);
    }
}

/* ============================================================ progress */

/*
 * The progress thread: drives the worker while it has work, then arms its
 * event fd and sleeps until a peer's message, a completion or a caller's
 * kick arrives.  sleeping is set before the arm, under the lock: a caller
 * that posts after the arm sees it and signals; one that posted before
 * had its work progressed here first.
 */
static void *mf_tl_ucx_thread_main(void *arg)
{
    mf_tl_ucx_iface_t *iface = arg;
    const mf_ucx_lib_t *lib = iface->lib;
    /* while copies are in flight the thread wakes to look at them */
    int period_ms = (int)MF_MAX(MF_MIN(iface->timeout_ns / 4000000, 250), 10);
    struct pollfd pfd = {iface->efd, POLLIN, 0};
    ucs_status_t status;
    int wait_ms;

    while (!atomic_load(&iface->stopping)) {
        pthread_mutex_lock(&iface->lock);
        while (lib->ucp_worker_progress(iface->worker) != 0) {
        }
        if (iface->inflight > 0) {
            mf_tl_ucx_watchdog(iface);
        }
        wait_ms = iface->inflight > 0 ? period_ms : -1;
        atomic_store(&iface->sleeping, true);
        status = lib->ucp_worker_arm(iface->worker);
        pthread_mutex_unlock(&iface->lock);
        if (status == UCS_OK && !atomic_load(&iface->stopping)) {
            if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
                mf_error("ucx: poll on the worker's event fd: %s",
                         strerror(errno));
                atomic_store(&iface->sleeping, false);
                break;
            }
        } else if (status != UCS_ERR_BUSY && status != UCS_OK) {
            mf_error("ucx: cannot arm the worker: %s",
                     mf_tl_ucx_err(iface, status));
            atomic_store(&iface->sleeping, false);
            break;
        }
        atomic_store(&iface->sleeping, false);
    }
    return NULL;
}

unsigned mf_tl_ucx_progress(mf_tl_iface_t *tl_iface)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    unsigned n;

    if (pthread_mutex_trylock(&iface->lock) != 0) {
        return 0; /* the thread or another caller progresses it */
    }
    n = iface->lib->ucp_worker_progress(iface->worker);
    pthread_mutex_unlock(&iface->lock);
    return n;
}

/* =========================================================== interface */

/*
 * UCX settings the transport changes from UCX's defaults, unless the
 * environment sets them: UCX's tcp transport cuts RMA into segments of
 * 8 KiB to send and 64 KiB to receive, made for small messages; KV blocks
 * of megabytes moved 2.5 times faster with 256 KiB (mf-bench --transport
 * ucx --netns, 8 MiB: 0.72 -> 1.92 GB/s put, 0.94 -> 2.14 GB/s get).
 */
static const char *const mf_tl_ucx_tuned[][3] = {
    /* the variable, and the key ucp_config_modify passes to the tcp
     * interface's table (without its TCP_ prefix in UCX 1.13) */
    {"UCX_TCP_TX_SEG_SIZE", "TX_SEG_SIZE", "256K"},
    {"UCX_TCP_RX_SEG_SIZE", "RX_SEG_SIZE", "256K"},
};

static void mf_tl_ucx_tune(mf_tl_ucx_iface_t *iface, ucp_config_t *config)
{
    ucs_status_t status;

    for (size_t i = 0; i < MF_ARRAY_SIZE(mf_tl_ucx_tuned); i++) {
        if (getenv(mf_tl_ucx_tuned[i][0]) != NULL) {
            continue;
        }
        status = iface->lib->ucp_config_modify(config, mf_tl_ucx_tuned[i][1],
                                               mf_tl_ucx_tuned[i][2]);
        if (status != UCS_OK) {
            mf_debug("ucx: UCX does not take %s=%s: %s", mf_tl_ucx_tuned[i][0],
                     mf_tl_ucx_tuned[i][2], mf_tl_ucx_err(iface, status));
        }
    }
}

static mf_status_t mf_tl_ucx_context_create(mf_tl_ucx_iface_t *iface,
                                            const mf_tl_ucx_config_t *cfg)
{
    const mf_ucx_lib_t *lib = iface->lib;
    ucp_config_t *config;
    ucp_params_t params;
    ucp_context_attr_t attr;
    ucs_status_t status;

    status = lib->ucp_config_read(NULL, NULL, &config);
    if (status != UCS_OK) {
        mf_error("ucx: cannot read UCX's configuration: %s",
                 mf_tl_ucx_err(iface, status));
        return MF_ERR_CONFIG;
    }
    mf_tl_ucx_tune(iface, config);
    if (cfg->tls[0] != '\0') {
        status = lib->ucp_config_modify(config, "TLS", cfg->tls);
    }
    if (status == UCS_OK && cfg->net_devices[0] != '\0') {
        status =
            lib->ucp_config_modify(config, "NET_DEVICES", cfg->net_devices);
    }
    if (status != UCS_OK) {
        mf_error("ucx: UCX refuses ucx.tls '%s' or ucx.net_devices '%s': %s",
                 cfg->tls, cfg->net_devices, mf_tl_ucx_err(iface, status));
        lib->ucp_config_release(config);
        return MF_ERR_CONFIG;
    }
    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
    params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
    params.name = "memfabric";
    status = lib->ucp_init_version(UCP_API_MAJOR, UCP_API_MINOR, &params,
                                   config, &iface->context);
    lib->ucp_config_release(config);
    if (status != UCS_OK) {
        mf_error("ucx: cannot create a UCP context (tls '%s'): %s",
                 cfg->tls[0] != '\0' ? cfg->tls : "UCX's default",
                 mf_tl_ucx_err(iface, status));
        return mf_ucx_status(status) == MF_ERR_UNSUPPORTED ? MF_ERR_UNSUPPORTED
                                                           : MF_ERR_IO;
    }
    memset(&attr, 0, sizeof(attr));
    attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
    if (lib->ucp_context_query(iface->context, &attr) == UCS_OK) {
        iface->mem_types = attr.memory_types;
    }
    iface->mem_types |= UCS_BIT(UCS_MEMORY_TYPE_HOST);
    return MF_OK;
}

static mf_status_t mf_tl_ucx_worker_create(mf_tl_ucx_iface_t *iface)
{
    const mf_ucx_lib_t *lib = iface->lib;
    ucp_worker_params_t params;
    ucs_status_t status;

    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    params.thread_mode = UCS_THREAD_MODE_SERIALIZED; /* iface->lock */
    status = lib->ucp_worker_create(iface->context, &params, &iface->worker);
    if (status != UCS_OK) {
        mf_error("ucx: cannot create a UCP worker: %s",
                 mf_tl_ucx_err(iface, status));
        return MF_ERR_IO;
    }
    status = lib->ucp_worker_get_address(iface->worker, &iface->address,
                                         &iface->address_len);
    if (status == UCS_OK) {
        status = lib->ucp_worker_get_efd(iface->worker, &iface->efd);
    }
    if (status != UCS_OK) {
        mf_error("ucx: cannot get the worker's address or event fd: %s",
                 mf_tl_ucx_err(iface, status));
        return MF_ERR_IO;
    }
    if (iface->address_len + 16 > MF_TL_UCX_BLOB_MAX) {
        mf_error("ucx: the worker's address takes %zu bytes, more than a "
                 "segment descriptor holds (%u): narrow ucx.tls or "
                 "ucx.net_devices",
                 iface->address_len, MF_TL_UCX_BLOB_MAX - 16);
        return MF_ERR_TOO_LARGE;
    }
    return MF_OK;
}

static void mf_tl_ucx_iface_close(mf_tl_iface_t *tl_iface);

/* The software-RMA warning, once per process. */
static atomic_bool mf_tl_ucx_sw_warned;

static mf_status_t mf_tl_ucx_iface_open(const mf_tl_params_t *params,
                                        mf_tl_iface_t **iface_p)
{
    static const mf_tl_ucx_config_t defaults = {
        .chunk_size = 1u << 20, .auto_open = "rdma", .timeout_ms = 30000};
    const mf_tl_ucx_config_t *cfg =
        params->config != NULL ? params->config : &defaults;
    const mf_ucx_lib_t *lib;
    mf_tl_ucx_iface_t *iface;
    mf_status_t status;
    int ret;

    if (params->auto_choice && strcmp(cfg->auto_open, "never") == 0) {
        mf_debug("ucx: left out of transport = auto (ucx.auto = never)");
        return MF_ERR_UNSUPPORTED;
    }
    /* without an RDMA device auto declines before UCX is loaded: a process
     * that does not use UCX never runs its constructors and fork hooks */
    if (params->auto_choice && strcmp(cfg->auto_open, "rdma") == 0 &&
        !mf_ucx_lib_has_rdma()) {
        mf_debug("ucx: no RDMA device here: left to the other transports");
        return MF_ERR_UNSUPPORTED;
    }
    lib = mf_ucx_lib();
    if (lib == NULL) {
        if (params->auto_choice) {
            mf_debug("ucx: %s", mf_ucx_lib_why());
        } else {
            mf_error("ucx: %s", mf_ucx_lib_why());
        }
        return MF_ERR_UNSUPPORTED;
    }
    iface = calloc(1, sizeof(*iface));
    if (iface == NULL) {
        mf_error("ucx: cannot allocate the interface");
        return MF_ERR_NOMEM;
    }
    iface->super.ops = &mf_tl_ucx_ops;
    iface->lib = lib;
    iface->chunk_size = cfg->chunk_size;
    iface->timeout_ns = (uint64_t)cfg->timeout_ms * 1000000u;
    iface->efd = -1;
    pthread_mutex_init(&iface->lock, NULL);
    status = mf_tl_ucx_context_create(iface, cfg);
    if (status == MF_OK) {
        status = mf_tl_ucx_worker_create(iface);
    }
    if (status == MF_OK) {
        ret =
            pthread_create(&iface->thread, NULL, mf_tl_ucx_thread_main, iface);
        if (ret != 0) {
            mf_error("ucx: cannot start the progress thread: %s",
                     strerror(ret));
            status = MF_ERR_NOMEM;
        }
        iface->thread_live = ret == 0;
        if (ret == 0) {
            pthread_setname_np(iface->thread, "mf-ucx");
        }
    }
    if (status != MF_OK) {
        mf_tl_ucx_iface_close(&iface->super);
        return status;
    }
    if (!mf_ucx_lib_has_rdma() &&
        !atomic_exchange(&mf_tl_ucx_sw_warned, true)) {
        mf_warn("ucx: no RDMA device with put and get in the NIC here: UCX "
                "emulates them with messages, and UCX aborts a process that "
                "answers one for a peer that has died (use RDMA, or tcp, "
                "where peers may crash)");
    }
    mf_debug("ucx: interface open (UCX %s, address of %zu bytes%s)",
             lib->ucp_get_version_string(), iface->address_len,
             mf_tl_ucx_moves(iface, MF_MEM_KIND_CUDA) ? ", CUDA memory" : "");
    *iface_p = &iface->super;
    return MF_OK;
}

static void mf_tl_ucx_iface_close(mf_tl_iface_t *tl_iface)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    const mf_ucx_lib_t *lib = iface->lib;
    uint64_t deadline = mf_time_ms() + MF_TL_UCX_CLOSE_WAIT_MS;

    if (iface->thread_live) {
        atomic_store(&iface->stopping, true);
        (void)lib->ucp_worker_signal(iface->worker);
        pthread_join(iface->thread, NULL);
    }
    if (iface->worker != NULL) {
        /* endpoint closes still in flight end here, or are abandoned */
        while (atomic_load(&iface->closing) > 0 && mf_time_ms() < deadline) {
            if (lib->ucp_worker_progress(iface->worker) == 0) {
                usleep(1000);
            }
        }
        if (iface->address != NULL) {
            lib->ucp_worker_release_address(iface->worker, iface->address);
        }
        lib->ucp_worker_destroy(iface->worker);
    }
    while (iface->op_free != NULL) {
        mf_tl_ucx_op_t *op = iface->op_free;

        iface->op_free = op->next;
        free(op);
    }
    while (iface->stage_free != NULL) {
        mf_tl_ucx_stage_buf_t *host = iface->stage_free;

        iface->stage_free = host->next;
        mf_tl_ucx_stage_buf_free(host);
    }
    if (iface->context != NULL) {
        lib->ucp_cleanup(iface->context);
    }
    pthread_mutex_destroy(&iface->lock);
    free(iface);
}

static void mf_tl_ucx_iface_query(mf_tl_iface_t *tl_iface, mf_tl_caps_t *caps_p)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;

    caps_p->flags = MF_TL_CAP_PUT | MF_TL_CAP_GET | MF_TL_CAP_USER_MEM;
    /* kinds UCX registers and moves itself: a device segment is served
     * only where UCX reaches device memory (GPUDirect RDMA, cuda_ipc);
     * a local device buffer of any kind built is staged otherwise */
    caps_p->mem_kinds = MF_TL_MEM_KIND(MF_MEM_KIND_HOST);
    caps_p->local_kinds = MF_TL_MEM_KIND(MF_MEM_KIND_HOST);
    for (int kind = MF_MEM_KIND_HOST + 1; kind < MF_MEM_KIND_LAST; kind++) {
        if (mf_tl_ucx_moves(iface, (mf_mem_kind_t)kind)) {
            caps_p->mem_kinds |= MF_TL_MEM_KIND(kind);
        }
        /* built, not probed (see tcp): a staged copy checks the kind */
        if (mf_mem_kind_built((mf_mem_kind_t)kind)) {
            caps_p->local_kinds |= MF_TL_MEM_KIND(kind);
        }
    }
    caps_p->addr_max = MF_TL_UCX_BLOB_MAX;
    caps_p->rkey_max = MF_TL_UCX_BLOB_MAX;
}

static mf_status_t mf_tl_ucx_iface_addr_pack(mf_tl_iface_t *tl_iface, void *buf,
                                             size_t buf_len, size_t *len_p)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_UCX_ADDR_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_UCX_VERSION);
    mf_wbuf_put_u32(&w, (uint32_t)iface->address_len);
    mf_wbuf_put_raw(&w, iface->address, iface->address_len);
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

/* The worker address inside a packed interface address; MF_ERR_PROTO or
 * MF_ERR_VERSION if malformed. */
static mf_status_t mf_tl_ucx_addr_unpack(const void *buf, size_t len,
                                         const void **addr_p, size_t *len_p)
{
    uint32_t magic, addr_len = 0;
    uint8_t version = 0;
    const void *addr;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u32(&r, &addr_len);
    mf_rbuf_get_raw(&r, &addr, addr_len);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_UCX_ADDR_MAGIC ||
        addr_len == 0) {
        return MF_ERR_PROTO;
    }
    if (version != MF_TL_UCX_VERSION) {
        return MF_ERR_VERSION;
    }
    *addr_p = addr;
    *len_p = addr_len;
    return MF_OK;
}

static bool mf_tl_ucx_iface_is_reachable(mf_tl_iface_t *iface, const void *addr,
                                         size_t len)
{
    const void *worker_addr;
    size_t worker_len;

    /* which of its transports reach the peer, UCX tells at ep_create */
    return mf_tl_ucx_addr_unpack(addr, len, &worker_addr, &worker_len) == MF_OK;
}

/* ============================================================== memory */

static mf_status_t mf_tl_ucx_mem_reg(mf_tl_iface_t *tl_iface,
                                     const mf_tl_mem_params_t *params,
                                     mf_tl_memh_t **memh_p)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    const mf_ucx_lib_t *lib = iface->lib;
    ucp_mem_map_params_t map;
    mf_tl_ucx_memh_t *memh;
    ucs_status_t status;

    memh = calloc(1, sizeof(*memh));
    if (memh == NULL) {
        mf_error("ucx: cannot allocate a memory handle");
        return MF_ERR_NOMEM;
    }
    memh->super.ops = &mf_tl_ucx_ops;
    memh->super.addr = params->addr;
    memh->super.size = params->size;
    memh->kind = params->seg != NULL ? params->seg->kind
                 : params->serve     ? params->kind
                                     : MF_MEM_KIND_HOST;
    if (params->seg == NULL && !params->serve) {
        /* private user memory: UCX registers what it sends from itself */
        *memh_p = &memh->super;
        return MF_OK;
    }
    if (!mf_tl_ucx_moves(iface, memh->kind)) {
        mf_debug("ucx: UCX cannot serve %s memory here",
                 mf_mem_ops_get(memh->kind)->name);
        free(memh);
        return MF_ERR_UNSUPPORTED;
    }
    memset(&map, 0, sizeof(map));
    map.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
                     UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                     UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
    map.address = params->addr;
    map.length = params->size;
    map.memory_type = mf_tl_ucx_mem_type(memh->kind);
    pthread_mutex_lock(&iface->lock);
    status = lib->ucp_mem_map(iface->context, &map, &memh->mh);
    if (status == UCS_OK) {
        status = lib->ucp_rkey_pack(iface->context, memh->mh, &memh->rkey,
                                    &memh->rkey_len);
        if (status != UCS_OK) {
            lib->ucp_mem_unmap(iface->context, memh->mh);
        }
    }
    pthread_mutex_unlock(&iface->lock);
    if (status != UCS_OK) {
        mf_error("ucx: cannot register %" PRIu64 " bytes at %p: %s",
                 params->size, params->addr, mf_tl_ucx_err(iface, status));
        free(memh);
        return mf_ucx_status(status) == MF_ERR_NOMEM ? MF_ERR_NOMEM : MF_ERR_IO;
    }
    *memh_p = &memh->super;
    return MF_OK;
}

static void mf_tl_ucx_mem_dereg(mf_tl_iface_t *tl_iface, mf_tl_memh_t *tl_memh)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    mf_tl_ucx_memh_t *memh = (mf_tl_ucx_memh_t *)tl_memh;

    if (memh->mh != NULL) {
        pthread_mutex_lock(&iface->lock);
        iface->lib->ucp_rkey_buffer_release(memh->rkey);
        iface->lib->ucp_mem_unmap(iface->context, memh->mh);
        pthread_mutex_unlock(&iface->lock);
    }
    free(memh);
}

static mf_status_t mf_tl_ucx_rkey_pack(mf_tl_iface_t *iface,
                                       mf_tl_memh_t *tl_memh, void *buf,
                                       size_t buf_len, size_t *len_p)
{
    mf_tl_ucx_memh_t *memh = (mf_tl_ucx_memh_t *)tl_memh;
    mf_wbuf_t w;

    if (memh->mh == NULL) {
        return MF_ERR_UNSUPPORTED; /* private memory */
    }
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_UCX_RKEY_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_UCX_VERSION);
    mf_wbuf_put_u64(&w, (uint64_t)(uintptr_t)tl_memh->addr);
    mf_wbuf_put_u64(&w, tl_memh->size);
    mf_wbuf_put_u8(&w, (uint8_t)memh->kind);
    mf_wbuf_put_u32(&w, (uint32_t)memh->rkey_len);
    mf_wbuf_put_raw(&w, memh->rkey, memh->rkey_len);
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

static mf_status_t mf_tl_ucx_rkey_unpack(mf_tl_iface_t *iface, const void *buf,
                                         size_t len, uint64_t gva,
                                         uint64_t size, mf_tl_rkey_t **rkey_p)
{
    uint64_t key_addr = 0, key_size = 0;
    uint32_t magic = 0, packed_len = 0;
    uint8_t version = 0, kind = 0;
    const void *packed = NULL;
    mf_tl_ucx_rkey_t *rkey;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u64(&r, &key_addr);
    mf_rbuf_get_u64(&r, &key_size);
    mf_rbuf_get_u8(&r, &kind);
    mf_rbuf_get_u32(&r, &packed_len);
    mf_rbuf_get_raw(&r, &packed, packed_len);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_UCX_RKEY_MAGIC ||
        kind >= MF_MEM_KIND_LAST || packed_len == 0) {
        mf_error("ucx: malformed remote key (%zu bytes)", len);
        return MF_ERR_PROTO;
    }
    if (version != MF_TL_UCX_VERSION) {
        mf_error("ucx: remote key version %u, expected %u", version,
                 MF_TL_UCX_VERSION);
        return MF_ERR_VERSION;
    }
    if (key_addr != gva || key_size != size) {
        mf_error("ucx: remote key claims 0x%" PRIx64 "+0x%" PRIx64
                 ", expected 0x%" PRIx64 "+0x%" PRIx64,
                 key_addr, key_size, gva, size);
        return MF_ERR_PROTO;
    }
    rkey = calloc(1, sizeof(*rkey));
    if (rkey == NULL || (rkey->packed = malloc(packed_len)) == NULL) {
        mf_error("ucx: cannot allocate a remote key");
        free(rkey);
        return MF_ERR_NOMEM;
    }
    memcpy(rkey->packed, packed, packed_len);
    rkey->packed_len = packed_len;
    rkey->super.ops = &mf_tl_ucx_ops;
    rkey->super.gva = gva;
    rkey->super.size = size;
    rkey->super.addr = NULL;
    rkey->base = key_addr;
    rkey->kind = (mf_mem_kind_t)kind;
    *rkey_p = &rkey->super;
    return MF_OK;
}

static void mf_tl_ucx_rkey_release(mf_tl_iface_t *tl_iface,
                                   mf_tl_rkey_t *tl_rkey)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    mf_tl_ucx_rkey_t *rkey = (mf_tl_ucx_rkey_t *)tl_rkey;

    if (rkey->handle != NULL) {
        pthread_mutex_lock(&iface->lock);
        iface->lib->ucp_rkey_destroy(rkey->handle);
        pthread_mutex_unlock(&iface->lock);
    }
    free(rkey->packed);
    free(rkey);
}

mf_status_t mf_tl_ucx_rkey_get(mf_tl_ucx_iface_t *iface, mf_tl_ucx_ep_t *ep,
                               mf_tl_ucx_rkey_t *rkey, ucp_rkey_h *handle_p)
{
    ucs_status_t status;

    if (rkey->handle != NULL && rkey->ep_id == ep->id) {
        *handle_p = rkey->handle;
        return MF_OK;
    }
    if (rkey->handle != NULL) {
        iface->lib->ucp_rkey_destroy(rkey->handle);
        rkey->handle = NULL;
    }
    status =
        iface->lib->ucp_ep_rkey_unpack(ep->ep, rkey->packed, &rkey->handle);
    if (status != UCS_OK) {
        mf_warn("ucx: cannot unpack the remote key of 0x%" PRIx64 ": %s",
                rkey->super.gva, mf_tl_ucx_err(iface, status));
        rkey->handle = NULL;
        return status == UCS_ERR_UNREACHABLE ? MF_ERR_UNREACHABLE
                                             : MF_ERR_PROTO;
    }
    rkey->ep_id = ep->id;
    *handle_p = rkey->handle;
    return MF_OK;
}

/* =========================================================== endpoints */

/* A peer's error on a UCP endpoint: its requests complete with the
 * error; the endpoint it belongs to (if any still) is closed and rebuilt
 * at its next use. */
static void mf_tl_ucx_ep_error(void *arg, ucp_ep_h uep, ucs_status_t status)
{
    mf_tl_ucx_link_t *link = arg;

    mf_debug("ucx: endpoint to a peer failed: %s",
             link->iface->lib->ucs_status_string(status));
    if (link->ep != NULL) {
        atomic_store(&link->ep->failed, true);
    }
}

static void mf_tl_ucx_closed_cb(void *request, ucs_status_t status,
                                void *user_data)
{
    mf_tl_ucx_link_t *link = user_data;
    mf_tl_ucx_iface_t *iface = link->iface;

    iface->lib->ucp_request_free(request);
    atomic_fetch_sub(&iface->closing, 1);
    link->closed = true;
    mf_tl_ucx_link_reap(link);
}

/* Closes the UCP endpoint of ep without waiting (lock held); its link
 * lives until UCX is done with it. */
static void mf_tl_ucx_ep_close_uep(mf_tl_ucx_iface_t *iface, mf_tl_ucx_ep_t *ep)
{
    mf_tl_ucx_link_t *link = ep->link;
    ucp_ep_h uep = ep->ep;
    ucp_request_param_t param;
    ucs_status_ptr_t req;

    if (uep == NULL) {
        return;
    }
    link->ep = NULL; /* a late error reaches nothing */
    if (link->prev != NULL) {
        link->prev->next = link->next;
    } else {
        iface->links = link->next;
    }
    if (link->next != NULL) {
        link->next->prev = link->prev;
    }
    memset(&param, 0, sizeof(param));
    /* nothing to flush: every copy on it completed, or the peer is lost
     * and what is left is canceled */
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    param.cb.send = mf_tl_ucx_closed_cb;
    param.user_data = link;
    atomic_fetch_add(&iface->closing, 1);
    ep->ep = NULL; /* the cancels the close may deliver see it gone */
    ep->link = NULL;
    req = iface->lib->ucp_ep_close_nbx(uep, &param);
    if (req == NULL || UCS_PTR_IS_ERR(req)) {
        atomic_fetch_sub(&iface->closing, 1);
        link->closed = true;
        mf_tl_ucx_link_reap(link);
    }
}

/* Creates the UCP endpoint of ep (lock held).  Endpoints report a
 * peer's failure (UCP_ERR_HANDLING_MODE_PEER); a peer that UCX reaches
 * only over transports that cannot (shared memory in UCX 1.13) is reached
 * without, with a warning once. */
static mf_status_t mf_tl_ucx_ep_connect(mf_tl_ucx_iface_t *iface,
                                        mf_tl_ucx_ep_t *ep)
{
    static atomic_bool warned;
    mf_tl_ucx_link_t *link;
    ucp_ep_params_t params;
    ucs_status_t status;

    link = calloc(1, sizeof(*link));
    if (link == NULL) {
        mf_error("ucx: cannot allocate an endpoint");
        return MF_ERR_NOMEM;
    }
    link->iface = iface;
    link->ep = ep;
    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                        UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = ep->addr;
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = mf_tl_ucx_ep_error;
    params.err_handler.arg = link;
    status = iface->lib->ucp_ep_create(iface->worker, &params, &ep->ep);
    if (status == UCS_ERR_UNREACHABLE) {
        params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
        status = iface->lib->ucp_ep_create(iface->worker, &params, &ep->ep);
        if (status == UCS_OK && !atomic_exchange(&warned, true)) {
            mf_warn("ucx: a peer is reachable only over UCX transports that "
                    "cannot report its failure (shared memory): copies to "
                    "it may stall or abort if it dies; the shm transport "
                    "serves peers of this host safely");
        }
    }
    if (status != UCS_OK) {
        mf_debug("ucx: cannot create an endpoint: %s",
                 mf_tl_ucx_err(iface, status));
        free(link);
        ep->ep = NULL;
        return status == UCS_ERR_UNREACHABLE ? MF_ERR_UNREACHABLE
                                             : mf_ucx_status(status);
    }
    link->unchecked = params.err_mode == UCP_ERR_HANDLING_MODE_NONE;
    link->next = iface->links;
    if (link->next != NULL) {
        link->next->prev = link;
    }
    iface->links = link;
    ep->link = link;
    ep->id = ++iface->next_ep_id;
    atomic_store(&ep->failed, false);
    return MF_OK;
}

mf_status_t mf_tl_ucx_ep_get(mf_tl_ucx_iface_t *iface, mf_tl_ucx_ep_t *ep,
                             ucp_ep_h *uep_p)
{
    mf_status_t status;

    if (mf_unlikely(atomic_load_explicit(&ep->failed, memory_order_relaxed) ||
                    ep->ep == NULL)) {
        mf_tl_ucx_ep_close_uep(iface, ep);
        status = mf_tl_ucx_ep_connect(iface, ep);
        if (status != MF_OK) {
            return status;
        }
        mf_debug("ucx: endpoint rebuilt after a failure");
    }
    *uep_p = ep->ep;
    return MF_OK;
}

static mf_status_t mf_tl_ucx_ep_create(mf_tl_iface_t *tl_iface,
                                       const void *addr, size_t len,
                                       mf_tl_ep_t **ep_p)
{
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_iface;
    const void *worker_addr;
    size_t worker_len;
    mf_tl_ucx_ep_t *ep;
    mf_status_t status;

    status = mf_tl_ucx_addr_unpack(addr, len, &worker_addr, &worker_len);
    if (status != MF_OK) {
        mf_error("ucx: malformed peer address (%zu bytes)", len);
        return status;
    }
    ep = calloc(1, sizeof(*ep));
    if (ep == NULL || (ep->addr = malloc(worker_len)) == NULL) {
        mf_error("ucx: cannot allocate an endpoint");
        free(ep);
        return MF_ERR_NOMEM;
    }
    memcpy(ep->addr, worker_addr, worker_len);
    ep->addr_len = worker_len;
    ep->super.ops = &mf_tl_ucx_ops;
    ep->super.iface = tl_iface;
    pthread_mutex_lock(&iface->lock);
    status = mf_tl_ucx_ep_connect(iface, ep);
    pthread_mutex_unlock(&iface->lock);
    if (status != MF_OK) {
        free(ep->addr);
        free(ep);
        return status;
    }
    *ep_p = &ep->super;
    return MF_OK;
}

static void mf_tl_ucx_ep_destroy(mf_tl_ep_t *tl_ep)
{
    mf_tl_ucx_ep_t *ep = (mf_tl_ucx_ep_t *)tl_ep;
    mf_tl_ucx_iface_t *iface = (mf_tl_ucx_iface_t *)tl_ep->iface;

    pthread_mutex_lock(&iface->lock);
    mf_tl_ucx_ep_close_uep(iface, ep);
    pthread_mutex_unlock(&iface->lock);
    mf_tl_ucx_kick(iface); /* the close completes in the thread */
    free(ep->addr);
    free(ep);
}

/* ================================================================= ops */

const mf_tl_ops_t mf_tl_ucx_ops = {
    .name = "ucx",
    .config = &mf_tl_ucx_cfg_table,
    .config_size = sizeof(mf_tl_ucx_config_t),
    .config_check = mf_tl_ucx_config_check,
    .iface_open = mf_tl_ucx_iface_open,
    .iface_close = mf_tl_ucx_iface_close,
    .iface_query = mf_tl_ucx_iface_query,
    .iface_addr_pack = mf_tl_ucx_iface_addr_pack,
    .iface_is_reachable = mf_tl_ucx_iface_is_reachable,
    .mem_reg = mf_tl_ucx_mem_reg,
    .mem_dereg = mf_tl_ucx_mem_dereg,
    .rkey_pack = mf_tl_ucx_rkey_pack,
    .rkey_unpack = mf_tl_ucx_rkey_unpack,
    .rkey_release = mf_tl_ucx_rkey_release,
    .ep_create = mf_tl_ucx_ep_create,
    .ep_destroy = mf_tl_ucx_ep_destroy,
    .put = mf_tl_ucx_put,
    .get = mf_tl_ucx_get,
    .flush = mf_tl_ucx_flush,
    .progress = mf_tl_ucx_progress,
};
