/*
 * The local service's life cycle: connect to the meta service, HELLO,
 * join the pool's BM, REGISTER the segment; and the way back.  Also the
 * one RPC helper every operation uses, and user buffer registration.
 *
 * Start: RPC connect -> HELLO (store port, pool id, world size, segment
 * stride, GVA base, device window, batch limit) -> mf_bm_init on the
 * store the meta service hosts -> mf_bm_create -> mf_bm_join -> REGISTER
 * {rank, host id, the DRAM segment and the HBM segment where they are
 * contributed, none for a pure client}.
 *
 * Every member of a pool with a device window reserves it, HBM or not,
 * so that each can address every rank's HBM segment.
 *
 * The BM pool is elastic (MF_BM_CREATE_ELASTIC): local services come and
 * go one at a time, so no creator waits for the others and each checks
 * only its own window.
 *
 * One mmc_t per process: the BM bootstrap is per process.  The struct is
 * immutable after create (see local.h).
 *
 * Liveness: the meta service drops a member whose connection stays silent
 * for its member_timeout_ms, so a thread sends PING at a quarter of it.
 * After a lost connection the next call reconnects; the meta service has
 * forgotten this process, which then announces itself again (HELLO +
 * REGISTER), best effort: from the reconnect callback, or from a call
 * that the new connection refused with MF_ERR_STATE (then retried once),
 * whichever comes first.  A meta service with another meta_id than the
 * one we registered with (restarted, or a new leader) gets our record of
 * what our segments hold (record.c); the same one dropped our segments
 * with the old connection, and the record is cleared.
 */
#include "cache/local/local.h"
#include "util/trace.h"

#include <memfabric/mf_init.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MMC_LOCAL_PURE_CLIENT_SIZE 4096u /* the BM segment of a client */

static pthread_mutex_t mmc_local_lock = PTHREAD_MUTEX_INITIALIZER;
static bool mmc_local_exists; /* an mmc_t lives in this process */

static void mmc_local_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ RPC */

static mmc_status_t mmc_local_reannounce(mmc_t *mmc, uint64_t seen_gen);

/* Sends one request; MF_OK and *resp_p, whatever the response's status. */
static mmc_status_t mmc_local_send(mmc_t *mmc, uint16_t op, const mf_wbuf_t *w,
                                   mf_net_resp_t *resp_p)
{
    mmc_status_t status;

    status = mf_net_client_call(mmc->rpc, op, w->data, w->len,
                                mmc->cfg.timeout_ms, resp_p);
    if (status != MF_OK && op != MMC_OP_PING) { /* the pinger logs */
        mf_error("mmc-local: %s to the meta service at %s:%u failed: %s",
                 mmc_op_name(op), mmc->meta_host, mmc->meta_port,
                 mf_status_name(status));
    }
    return status;
}

mmc_status_t mmc_local_call(mmc_t *mmc, uint16_t op, mf_wbuf_t *w,
                            mf_net_resp_t *resp_p)
{
    mf_net_resp_t resp = {0};
    mmc_status_t status;
    uint64_t start = 0;
    uint64_t gen = atomic_load(&mmc->reg_gen);

    status = mf_wbuf_status(w);
    if (status != MF_OK) {
        mf_error("mmc-local: cannot encode %s: %s", mmc_op_name(op),
                 mf_status_name(status));
        goto out_free;
    }
    if (w->len > MMC_PROTO_MAX_BODY) {
        mf_error("mmc-local: %s request of %zu bytes is over the limit",
                 mmc_op_name(op), w->len);
        status = MF_ERR_TOO_LARGE;
        goto out_free;
    }
    start = mf_time_ns();
    status = mmc_local_send(mmc, op, w, &resp);
    /* RESTORE is part of the announcement, which must not start another */
    if (op >= MMC_OP_PUT_ALLOC && op != MMC_OP_RESTORE &&
        atomic_load(&mmc->registered) &&
        ((status == MF_OK && resp.status == MF_ERR_STATE) ||
         (status == MF_ERR_CONN_RESET &&
          w->len > MF_NET_DEFAULT_UNTRUSTED_MAX_BODY))) {
        /* a new connection that the meta service does not know yet: the
         * reconnect announcement may still be on its way.  Until HELLO a
         * connection may send small frames only, so a large request cut
         * off there comes back as a reset; the meta service aborted
         * whatever the old connection left pending, so sending it again
         * after the announcement is safe. */
        if (status == MF_OK) {
            mf_net_resp_free(&resp);
        }
        status = mmc_local_reannounce(mmc, gen);
        if (status == MF_OK) {
            status = mmc_local_send(mmc, op, w, &resp);
        }
    }
    if (status != MF_OK) {
        goto out_free;
    }
    if (resp.status != MF_OK) {
        status = resp.status;
        mf_error("mmc-local: the meta service refused %s: %s", mmc_op_name(op),
                 mmc_status_name(status));
        mf_net_resp_free(&resp);
        goto out_free;
    }
    *resp_p = resp;
out_free:
    if (start != 0) {
        mmc_local_stats_rpc(op, start);
    }
    mf_wbuf_free(w);
    return status;
}

/* HELLO: fills *hello_p. */
static mmc_status_t mmc_local_hello(mmc_t *mmc, mmc_hello_resp_t *hello_p)
{
    mf_net_resp_t resp;
    mmc_status_t status;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mmc_hello_req_encode(&w, &mmc->hello_req);
    status = mmc_local_call(mmc, MMC_OP_HELLO, &w, &resp);
    if (status != MF_OK) {
        return status;
    }
    status = mmc_hello_resp_decode(resp.body, resp.len, hello_p);
    mf_net_resp_free(&resp);
    if (status != MF_OK) {
        mf_error("mmc-local: malformed HELLO response: %s",
                 mf_status_name(status));
        return status;
    }
    if (hello_p->version != MMC_PROTO_VERSION) {
        mf_error("mmc-local: the meta service speaks version %u, this "
                 "library %u",
                 hello_p->version, MMC_PROTO_VERSION);
        return MF_ERR_VERSION;
    }
    if (hello_p->world_size == 0 || hello_p->max_segment_size == 0 ||
        hello_p->store_port == 0 || hello_p->store_port > 65535) {
        mf_error("mmc-local: HELLO response out of range (world %u, "
                 "segment %" PRIu64 ", store port %u)",
                 hello_p->world_size, hello_p->max_segment_size,
                 hello_p->store_port);
        return MF_ERR_PROTO;
    }
    return MF_OK;
}

/* REGISTER with flags (MMC_REG_*): *host_idx_p on success. */
static mmc_status_t mmc_local_register(mmc_t *mmc, uint32_t flags,
                                       uint32_t *host_idx_p)
{
    mmc_register_req_t reg = mmc->reg;
    mf_net_resp_t resp;
    mmc_status_t status;
    uint32_t host_idx = 0;
    mf_rbuf_t r;
    mf_wbuf_t w;

    reg.flags = flags;
    mf_wbuf_init(&w);
    mmc_register_req_encode(&w, &reg);
    status = mmc_local_call(mmc, MMC_OP_REGISTER, &w, &resp);
    if (status != MF_OK) {
        return status;
    }
    mf_rbuf_init(&r, resp.body, resp.len);
    mf_rbuf_get_u32(&r, &host_idx);
    status = mf_rbuf_status(&r, true);
    mf_net_resp_free(&resp);
    if (status != MF_OK) {
        mf_error("mmc-local: malformed REGISTER response");
        return MF_ERR_PROTO;
    }
    *host_idx_p = host_idx;
    return MF_OK;
}

/*
 * Announces this process again (HELLO + REGISTER) on a new connection,
 * unless that happened since seen_gen.  A REGISTER answered MF_ERR_STATE
 * means this connection holds the rank already.
 */
static mmc_status_t mmc_local_reannounce(mmc_t *mmc, uint64_t seen_gen)
{
    mmc_hello_resp_t hello;
    mmc_status_t status;
    uint32_t host_idx, flags = 0;
    bool same;

    /* the meta service sends our record's changes ahead of its answers,
     * and does not wait for us to apply them: whatever an answer we took
     * vouched for is in the record before it goes to another service */
    mf_net_client_notes_wait(mmc->rpc);
    pthread_mutex_lock(&mmc->reg_lock);
    if (atomic_load(&mmc->reg_gen) != seen_gen ||
        mf_net_client_conn_id(mmc->rpc) == mmc->reg_conn) {
        /* done since, or this very connection is registered: the meta
         * service kept our segments (and the record must stay) */
        pthread_mutex_unlock(&mmc->reg_lock);
        return MF_OK;
    }
    status = mmc_local_hello(mmc, &hello);
    if (status == MF_OK &&
        (hello.pool_id != mmc->hello.pool_id ||
         hello.world_size != mmc->hello.world_size ||
         hello.host_base != mmc->hello.host_base ||
         hello.max_segment_size != mmc->hello.max_segment_size ||
         hello.device_base != mmc->hello.device_base ||
         hello.max_hbm_segment_size != mmc->hello.max_hbm_segment_size)) {
        mf_error("mmc-local: the meta service now runs another pool layout; "
                 "this process must be restarted");
        status = MF_ERR_STATE;
    }
    if (status == MF_OK) {
        same = hello.meta_id == atomic_load(&mmc->meta_id);
        if (same) {
            /* it dropped our segments, and what our memory held with
             * them; what the SSD area holds is there still */
            mmc_local_record_drop_memory(mmc);
        }
        if (mmc_local_record_count(mmc) > 0) {
            flags = MMC_REG_RESTORE;
        }
        status = mmc_local_register(mmc, flags, &host_idx);
        if ((status == MF_OK || status == MF_ERR_STATE) && flags != 0) {
            /* STATE: registered on this connection by an earlier try
             * whose restore was cut short */
            host_idx = atomic_load(&mmc->host_idx);
            status = mmc_local_record_restore(mmc);
        }
        if (status == MF_OK) {
            /* only now: a restore cut short is tried again in full */
            atomic_store(&mmc->meta_id, hello.meta_id);
            mmc->reg_conn = mf_net_client_conn_id(mmc->rpc);
            atomic_store(&mmc->host_idx, host_idx);
            mf_info("mmc-local: registered rank %u again with the %s meta "
                    "service",
                    mmc->rank, same ? "same" : "new");
        } else if (status == MF_ERR_STATE) {
            status = MF_OK; /* registered on this connection already */
        }
    }
    if (status == MF_OK) {
        atomic_fetch_add(&mmc->reg_gen, 1);
    } else {
        mf_warn("mmc-local: cannot register again after a reconnect: %s",
                mmc_status_name(status));
    }
    pthread_mutex_unlock(&mmc->reg_lock);
    return status;
}

/* The meta service's notifies, one at a time and in order, on the RPC
 * loop thread or on a caller that read them while waiting for its answer:
 * RECORD (what our segments hold, record.c; applied under rec_lock, and
 * acknowledged with a send) and REPAIR (copies to make, queued for the
 * repair thread, repair.c).  No lock they take is held across a call. */
static void mmc_local_on_notify(uint16_t opcode, const uint8_t *body,
                                size_t len, void *arg)
{
    mmc_t *mmc = arg;

    switch (opcode) {
    case MMC_OP_RECORD:
        mmc_local_record_apply(mmc, body, len);
        break;
    case MMC_OP_REPAIR:
        mmc_local_repair_queue(mmc, body, len);
        break;
    case MMC_OP_MOVE:
        mmc_local_tier_queue(mmc, body, len);
        break;
    default:
        mf_debug("mmc-local: unknown notify %u from the meta service", opcode);
        break;
    }
}

/* After a lost meta connection came back: the meta service forgot this
 * client (its segment, puts and leases), so announce it again. */
static void mmc_local_on_reconnect(void *arg)
{
    mmc_t *mmc = arg;

    if (atomic_load(&mmc->registered)) {
        (void)mmc_local_reannounce(mmc, atomic_load(&mmc->reg_gen));
    }
}

/* ------------------------------------------------------------ heartbeat */

static void mmc_local_ping(mmc_t *mmc)
{
    mf_net_resp_t resp;
    mmc_status_t status;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    status = mmc_local_call(mmc, MMC_OP_PING, &w, &resp);
    if (status == MF_OK) {
        mf_net_resp_free(&resp);
        if (mmc->ping_failing) {
            mf_info("mmc-local: the meta service answers again");
        }
        mmc->ping_failing = false;
    } else if (!mmc->ping_failing) {
        mf_warn("mmc-local: heartbeat to the meta service at %s:%u failed: "
                "%s",
                mmc->meta_host, mmc->meta_port, mmc_status_name(status));
        mmc->ping_failing = true;
    }
}

/* Keeps the meta connection from looking idle: the meta service drops a
 * member whose connection is silent for member_timeout_ms. */
static void *mmc_local_ping_thread(void *arg)
{
    mmc_t *mmc = arg;
    uint32_t period = MF_MAX(mmc->hello.member_timeout_ms / 4, 50u);
    struct timespec deadline;

    pthread_mutex_lock(&mmc->ping_lock);
    while (!mmc->ping_stop) {
        mf_deadline_after_ms(&deadline, period);
        while (!mmc->ping_stop &&
               pthread_cond_timedwait(&mmc->ping_cond, &mmc->ping_lock,
                                      &deadline) == 0) {
        }
        if (mmc->ping_stop) {
            break;
        }
        pthread_mutex_unlock(&mmc->ping_lock);
        mmc_local_ping(mmc);
        pthread_mutex_lock(&mmc->ping_lock);
    }
    pthread_mutex_unlock(&mmc->ping_lock);
    return NULL;
}

static mmc_status_t mmc_local_ping_start(mmc_t *mmc)
{
    int rc;

    if (mmc->hello.member_timeout_ms == 0) {
        return MF_OK; /* the meta service never drops a silent member */
    }
    rc = pthread_create(&mmc->ping_thread, NULL, mmc_local_ping_thread, mmc);
    if (rc != 0) {
        mf_error("mmc-local: cannot start the heartbeat thread: %s",
                 strerror(rc));
        return MF_ERR_NOMEM;
    }
    pthread_setname_np(mmc->ping_thread, "mmc-ping");
    mmc->ping_started = true;
    return MF_OK;
}

static void mmc_local_ping_stop(mmc_t *mmc)
{
    if (!mmc->ping_started) {
        return;
    }
    pthread_mutex_lock(&mmc->ping_lock);
    mmc->ping_stop = true;
    pthread_cond_signal(&mmc->ping_cond);
    pthread_mutex_unlock(&mmc->ping_lock);
    pthread_join(mmc->ping_thread, NULL);
    mmc->ping_started = false;
}

/* ------------------------------------------------------------ pool */

/* hbm_size fits the pool's device window. */
static mmc_status_t mmc_local_hbm_check(const mmc_t *mmc)
{
    uint64_t max = mmc->hello.max_hbm_segment_size;

    if (mmc->cfg.hbm_size == 0) {
        return MF_OK;
    }
    if (max == 0) {
        mf_error("mmc-local: hbm_size %" PRIu64 " but the pool has no "
                 "device window (the meta service's max_hbm_segment_size "
                 "is 0)",
                 mmc->cfg.hbm_size);
        return MF_ERR_CONFIG;
    }
    if (mmc->cfg.hbm_size > max) {
        mf_error("mmc-local: hbm_size %" PRIu64 " is larger than the "
                 "pool's max_hbm_segment_size %" PRIu64,
                 mmc->cfg.hbm_size, max);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

/* mf_bm_init (retrying while a rank is being freed), create, join. */
static mmc_status_t mmc_local_pool_open(mmc_t *mmc, uint64_t deadline_ms)
{
    mf_bm_create_params_t params;
    mf_bm_config_t fabric = mmc->cfg.fabric;
    mmc_status_t status;
    char url[MF_URL_LIST_MAX * 280];
    size_t used = 0;

    status = mmc_local_hbm_check(mmc);
    if (status != MF_OK) {
        return status;
    }
    /* the config store runs inside the meta service: wherever it runs */
    for (size_t i = 0; i < mmc->nmetas; i++) {
        used += (size_t)snprintf(
            url + used, sizeof(url) - used,
            strchr(mmc->metas[i].host, ':') != NULL ? "%stcp://[%s]:%u"
                                                    : "%stcp://%s:%u",
            i > 0 ? "," : "", mmc->metas[i].host, mmc->hello.store_port);
    }
    fabric.host_base = mmc->hello.host_base;
    fabric.device_base = mmc->hello.device_base;
    for (;;) {
        status = mf_bm_init(url, mmc->hello.world_size, MF_RANK_AUTO, &fabric);
        if (status != MF_ERR_BUSY || mf_time_ms() >= deadline_ms) {
            break;
        }
        mmc_local_sleep_ms(50); /* the pool is full: a rank may be freed */
    }
    if (status != MF_OK) {
        mf_error("mmc-local: cannot join the pool's store at %s (%u ranks): "
                 "%s",
                 url, mmc->hello.world_size, mf_status_name(status));
        return status;
    }
    status = mf_bm_rank_id(&mmc->rank);
    if (status != MF_OK) {
        goto err_uninit;
    }

    mf_bm_create_params_init(&params);
    params.local_dram_size = mmc->cfg.dram_size != 0
                                 ? mmc->cfg.dram_size
                                 : MMC_LOCAL_PURE_CLIENT_SIZE;
    params.max_dram_per_rank = mmc->hello.max_segment_size;
    params.local_hbm_size = mmc->cfg.hbm_size;
    params.max_hbm_per_rank = mmc->hello.max_hbm_segment_size;
    params.flags = MF_BM_CREATE_ELASTIC; /* members come and go */
    if (params.local_dram_size > params.max_dram_per_rank) {
        mf_error("mmc-local: dram_size %" PRIu64 " is larger than the "
                 "pool's max_segment_size %" PRIu64,
                 mmc->cfg.dram_size, mmc->hello.max_segment_size);
        status = MF_ERR_CONFIG;
        goto err_uninit;
    }
    status = mf_bm_create(mmc->hello.pool_id, &params, &mmc->bm);
    if (status != MF_OK) {
        mf_error("mmc-local: cannot create pool %u: %s", mmc->hello.pool_id,
                 mf_status_name(status));
        goto err_uninit;
    }
    status = mf_bm_join(mmc->bm);
    if (status != MF_OK) {
        mf_error("mmc-local: cannot join pool %u: %s", mmc->hello.pool_id,
                 mf_status_name(status));
        goto err_destroy;
    }
    return MF_OK;

err_destroy:
    mf_bm_destroy(mmc->bm);
    mmc->bm = NULL;
err_uninit:
    mf_bm_uninit();
    return status;
}

static void mmc_local_pool_close(mmc_t *mmc)
{
    (void)mf_bm_leave(mmc->bm);
    mf_bm_destroy(mmc->bm);
    mmc->bm = NULL;
    mf_bm_uninit();
}

/* Fills the REGISTER request of this process. */
static void mmc_local_fill_register(mmc_t *mmc)
{
    mmc_register_req_t *reg = &mmc->reg;
    mmc_seg_desc_t *seg;

    memset(reg, 0, sizeof(*reg));
    reg->rank = mmc->rank;
    mf_strlcpy(reg->host_id, mf_bm_host_id(mmc->bm), sizeof(reg->host_id));
    if (mmc->cfg.dram_size != 0) {
        seg = &reg->segs[reg->nsegs++];
        seg->media = MMC_MEDIA_DRAM;
        seg->gva = (uint64_t)(uintptr_t)mf_bm_gva_of_rank(mmc->bm, mmc->rank,
                                                          MF_MEM_HOST);
        seg->size = mmc->cfg.dram_size;
    }
    if (mmc->ssd != NULL) { /* no address: we read and write it */
        seg = &reg->segs[reg->nsegs++];
        seg->media = MMC_MEDIA_SSD;
        seg->gva = 0;
        seg->size = mmc->cfg.ssd_size;
    }
    if (mmc->cfg.hbm_size != 0) {
        seg = &reg->segs[reg->nsegs++];
        seg->media = MMC_MEDIA_HBM;
        seg->gva = (uint64_t)(uintptr_t)mf_bm_gva_of_rank(mmc->bm, mmc->rank,
                                                          MF_MEM_DEVICE);
        seg->size = mmc->cfg.hbm_size;
    }
}

/* UNREGISTER: the meta service drops this process's segment. */
static void mmc_local_unregister(mmc_t *mmc)
{
    mf_net_resp_t resp;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    if (mmc_local_call(mmc, MMC_OP_UNREGISTER, &w, &resp) == MF_OK) {
        mf_net_resp_free(&resp);
    }
}

/* ------------------------------------------------------- create/destroy */

MF_API mmc_status_t mmc_create(const mmc_config_t *cfg, mmc_t **mmc_p)
{
    mf_net_endpoint_t more[MF_URL_LIST_MAX];
    mf_net_client_params_t params;
    mmc_status_t status;
    uint64_t deadline;
    uint32_t host_idx = 0;
    bool restore;
    char host[48];
    mmc_t *mmc;

    if (cfg == NULL || mmc_p == NULL) {
        return MF_ERR_INVALID;
    }
    status = mmc_local_config_check(cfg);
    if (status != MF_OK) {
        return status;
    }
    mf_trace_config(cfg->trace); /* after MF_TRACE, which wins */
    pthread_mutex_lock(&mmc_local_lock);
    if (mmc_local_exists) {
        pthread_mutex_unlock(&mmc_local_lock);
        mf_error("mmc_create: this process has an mmc_t already");
        return MF_ERR_STATE;
    }
    mmc_local_exists = true;
    pthread_mutex_unlock(&mmc_local_lock);

    mmc = calloc(1, sizeof(*mmc));
    if (mmc == NULL) {
        status = MF_ERR_NOMEM;
        goto err_release;
    }
    mmc->cfg = *cfg;
    pthread_mutex_init(&mmc->reg_lock, NULL);
    pthread_mutex_init(&mmc->ping_lock, NULL);
    pthread_cond_init(&mmc->ping_cond, NULL);
    mmc_local_record_init(mmc);
    mmc_local_stream_init(mmc);
    mmc_local_repair_init(mmc);
    mmc_local_tier_init(mmc);
    deadline = mf_time_ms() + cfg->connect_timeout_ms;
    (void)mf_url_list_parse(cfg->meta_url, mmc->metas, MF_URL_LIST_MAX,
                            &mmc->nmetas);
    mf_strlcpy(mmc->meta_host, mmc->metas[0].host, sizeof(mmc->meta_host));
    mmc->meta_port = mmc->metas[0].port;
    mf_init();

    mmc->hello_req.version = MMC_PROTO_VERSION;
    if (cfg->name[0] != '\0') {
        mf_strlcpy(mmc->hello_req.name, cfg->name, sizeof(mmc->hello_req.name));
    } else {
        if (gethostname(host, sizeof(host)) != 0) {
            mf_strlcpy(host, "?", sizeof(host));
        }
        host[sizeof(host) - 1] = '\0';
        snprintf(mmc->hello_req.name, sizeof(mmc->hello_req.name), "%.40s:%d",
                 host, (int)getpid());
    }

    memset(&params, 0, sizeof(params));
    params.host = mmc->meta_host;
    params.port = mmc->meta_port;
    for (size_t i = 1; i < mmc->nmetas; i++) {
        more[i - 1].host = mmc->metas[i].host;
        more[i - 1].port = mmc->metas[i].port;
    }
    params.more = more;
    params.nmore = mmc->nmetas - 1;
    params.connect_timeout_ms = cfg->connect_timeout_ms;
    params.max_body = MMC_PROTO_MAX_BODY;
    params.on_reconnect = mmc_local_on_reconnect;
    params.on_notify = mmc_local_on_notify;
    params.notify_on_caller = true; /* short, and thread-neutral: below */
    params.arg = mmc;
    /* the tls.* settings of the process serve both the meta service and
     * the pool's config store */
    status = mf_tls_create_from_text(cfg->fabric.tls_settings, false,
                                     "mmc-local", &mmc->tls);
    if (status != MF_OK) {
        goto err_uninit;
    }
    params.stream = mmc->tls != NULL ? mf_tls_stream(mmc->tls) : NULL;
    status = mf_net_client_create(&params, &mmc->rpc);
    if (status != MF_OK) {
        mf_error("mmc_create: cannot connect to the meta service at %s: %s",
                 cfg->meta_url, mf_status_name(status));
        goto err_uninit;
    }
    status = mmc_local_hello(mmc, &mmc->hello);
    if (status != MF_OK) {
        goto err_close_rpc;
    }
    atomic_store(&mmc->meta_id, mmc->hello.meta_id);
    mmc->max_batch = mmc->hello.max_batch == 0
                         ? 1
                         : MF_MIN(mmc->hello.max_batch, MMC_BATCH_MAX);
    /* From HELLO on: creating and pre-faulting a large segment may take
     * longer than the meta service lets a connection stay silent. */
    status = mmc_local_ping_start(mmc);
    if (status != MF_OK) {
        goto err_close_rpc;
    }

    status = mmc_local_pool_open(mmc, deadline);
    if (status != MF_OK) {
        goto err_stop_ping;
    }
    status = mmc_local_tier_open(mmc); /* its log: our record */
    if (status != MF_OK) {
        goto err_close_pool;
    }
    mmc_local_fill_register(mmc);
    /* what the SSD area still holds from an earlier run comes back (the
     * record may grow as soon as we are registered: decided once) */
    restore = mmc_local_record_count(mmc) > 0;
    for (;;) {
        status =
            mmc_local_register(mmc, restore ? MMC_REG_RESTORE : 0, &host_idx);
        /* the rank's previous owner may still be dropping its connection */
        if (status != MF_ERR_EXISTS || mf_time_ms() >= deadline) {
            break;
        }
        mmc_local_sleep_ms(50);
    }
    if ((status == MF_OK) && restore) {
        status = mmc_local_record_restore(mmc);
    }
    if (status != MF_OK) {
        goto err_close_tier;
    }
    atomic_store(&mmc->host_idx, host_idx);
    mmc->reg_conn = mf_net_client_conn_id(mmc->rpc);
    atomic_store(&mmc->registered, true);
    mf_info("mmc-local: rank %u of pool %u, %" PRIu64 " bytes of DRAM, %" PRIu64
            " of HBM, host %u",
            mmc->rank, mmc->hello.pool_id, cfg->dram_size, cfg->hbm_size,
            host_idx);
    *mmc_p = mmc;
    return MF_OK;

err_close_tier:
    mmc_local_tier_stop(mmc);
err_close_pool:
    mmc_local_pool_close(mmc);
err_stop_ping:
    mmc_local_ping_stop(mmc);
err_close_rpc:
    mf_net_client_destroy(mmc->rpc);
err_uninit:
    mf_tls_destroy(mmc->tls);
    mf_uninit();
    mmc_local_repair_free(mmc);
    mmc_local_tier_free(mmc);
    mmc_local_record_free(mmc);
    mmc_local_stream_free(mmc);
    pthread_cond_destroy(&mmc->ping_cond);
    pthread_mutex_destroy(&mmc->ping_lock);
    pthread_mutex_destroy(&mmc->reg_lock);
    free(mmc);
err_release:
    pthread_mutex_lock(&mmc_local_lock);
    mmc_local_exists = false;
    pthread_mutex_unlock(&mmc_local_lock);
    return status;
}

MF_API void mmc_destroy(mmc_t *mmc)
{
    if (mmc == NULL) {
        return;
    }
    mmc_local_ping_stop(mmc);
    mmc_local_repair_stop(mmc); /* its copies use the pool */
    mmc_local_tier_stop(mmc);   /* and so do its moves */
    /* the meta service drops the segment before the pool withdraws it
     * (the SSD area's log keeps what it holds for the next start) */
    mmc_local_unregister(mmc);
    mmc_local_pool_close(mmc);
    mf_net_client_destroy(mmc->rpc);
    mf_tls_destroy(mmc->tls);
    mf_uninit();
    mmc_local_repair_free(mmc);
    mmc_local_tier_free(mmc); /* before the record: it keeps its log */
    mmc_local_record_free(mmc);
    mmc_local_stream_free(mmc);
    pthread_cond_destroy(&mmc->ping_cond);
    pthread_mutex_destroy(&mmc->ping_lock);
    pthread_mutex_destroy(&mmc->reg_lock);
    free(mmc);
    pthread_mutex_lock(&mmc_local_lock);
    mmc_local_exists = false;
    pthread_mutex_unlock(&mmc_local_lock);
}

MF_API uint32_t mmc_rank(const mmc_t *mmc)
{
    return mmc != NULL ? mmc->rank : UINT32_MAX;
}

/* ------------------------------------------------------- user buffers */

MF_API mmc_status_t mmc_register_buffer(mmc_t *mmc, void *addr, size_t size)
{
    if (mmc == NULL || addr == NULL || size == 0) {
        return MF_ERR_INVALID;
    }
    return mf_bm_register(mmc->bm, addr, size);
}

MF_API mmc_status_t mmc_unregister_buffer(mmc_t *mmc, void *addr)
{
    if (mmc == NULL || addr == NULL) {
        return MF_ERR_INVALID;
    }
    return mf_bm_unregister(mmc->bm, addr);
}
