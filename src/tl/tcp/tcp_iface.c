/*
 * tcp transport: the interface (listener, threads, advertised address),
 * registered segments and their keys, peer addresses, the hooks tests use
 * and the ops table.
 */
#include "tl/tcp/tcp_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ============================================================ interface */

static void mf_tl_tcp_iface_close(mf_tl_iface_t *tl_iface);

static mf_status_t mf_tl_tcp_listen(mf_tl_tcp_iface_t *iface,
                                    const mf_tl_params_t *params)
{
    const char *bind_host = iface->cfg.addr;
    mf_sock_addr_t bound;
    struct sockaddr_in sin;
    char name[64], what[80];
    mf_status_t status;

    if (bind_host == NULL || bind_host[0] == '\0') {
        bind_host = "0.0.0.0";
    }
    status = mf_sock_listen(bind_host, (uint16_t)iface->cfg.port, AF_INET,
                            &iface->listen.fd, &bound);
    if (status != MF_OK) {
        return status;
    }
    iface->listen.type = MF_TL_TCP_SOCK_LISTEN;
    status = mf_tl_tcp_random(iface->secret, sizeof(iface->secret));
    if (status != MF_OK) {
        return status;
    }
    memcpy(&sin, &bound.ss, sizeof(sin));
    mf_tl_tcp_addr_str(&sin, name, sizeof(name));
    snprintf(what, sizeof(what), "tcp %s", name);
    mf_sock_accept_guard_init(&iface->accept_guard, what);
    iface->adv = sin;
    if (sin.sin_addr.s_addr == htonl(INADDR_ANY)) {
        /* advertise the address peers route to: towards the store host */
        if (params->route_host != NULL && params->route_host[0] != '\0') {
            status =
                mf_tl_tcp_route_to(params->route_host, &iface->adv.sin_addr);
            if (status != MF_OK) {
                return status;
            }
        } else {
            iface->adv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    }
    mf_tl_tcp_addr_str(&iface->adv, name, sizeof(name));
    mf_debug("tcp: listening, advertised as %s", name);
    return MF_OK;
}

static mf_status_t mf_tl_tcp_iface_open(const mf_tl_params_t *params,
                                        mf_tl_iface_t **iface_p)
{
    sigset_t all, saved;
    mf_tl_tcp_iface_t *iface;
    mf_status_t status;
    unsigned i;
    int ret;

    iface = calloc(1, sizeof(*iface));
    if (iface == NULL) {
        mf_error("tcp: cannot allocate the interface");
        return MF_ERR_NOMEM;
    }
    iface->super.ops = &mf_tl_tcp_ops;
    iface->listen.fd = -1;
    if (params->config != NULL) {
        iface->cfg = *(const mf_tl_tcp_config_t *)params->config;
    } else {
        (void)mf_cfg_set_defaults(&mf_tl_tcp_cfg_table, &iface->cfg);
    }
    status = mf_tl_tcp_config_check(&iface->cfg);
    if (status != MF_OK) {
        free(iface);
        return status;
    }
    iface->lanes = iface->cfg.lanes;
    iface->chunk = iface->cfg.chunk_size;
    iface->window = iface->chunk * MF_TL_TCP_WINDOW_CHUNKS;
    iface->timeout_ms = iface->cfg.timeout_ms;
    pthread_mutex_init(&iface->regions_lock, NULL);
    mf_hmap_init(&iface->regions);
    atomic_init(&iface->next_worker, 0);
    atomic_init(&iface->next_conn_worker, 0);
    atomic_init(&iface->proto_warned, false);
    pthread_mutex_init(&iface->hellos_lock, NULL);
    mf_hmap_init(&iface->hellos);
    atomic_init(&iface->next_conn_id, 0);
    atomic_init(&iface->vec_requests, 0);
    atomic_init(&iface->vec_pieces, 0);

    status = mf_tl_tcp_listen(iface, params);
    if (status != MF_OK) {
        goto err_close;
    }
    iface->workers = calloc(iface->lanes, sizeof(*iface->workers));
    if (iface->workers == NULL) {
        mf_error("tcp: cannot allocate %u workers", iface->lanes);
        status = MF_ERR_NOMEM;
        goto err_close;
    }
    for (i = 0; i < iface->lanes; i++) {
        iface->nworkers++;
        status = mf_tl_tcp_worker_init(iface, &iface->workers[i], i);
        if (status != MF_OK) {
            goto err_close;
        }
    }
    if (mf_tl_tcp_epoll_add(&iface->workers[0], &iface->listen, EPOLLIN) != 0) {
        status = MF_ERR_IO;
        goto err_close;
    }
    /* workers take no signals: they belong to the application's threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    for (i = 0; i < iface->nworkers; i++) {
        ret = pthread_create(&iface->workers[i].thread, NULL,
                             mf_tl_tcp_worker_main, &iface->workers[i]);
        if (ret == 0) {
            iface->workers[i].started = true;
            pthread_setname_np(iface->workers[i].thread, "mf-tcp");
        }
        if (ret != 0) {
            pthread_sigmask(SIG_SETMASK, &saved, NULL);
            errno = ret;
            mf_error("tcp: pthread_create failed: %m");
            status = MF_ERR_NOMEM;
            goto err_close;
        }
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    *iface_p = &iface->super;
    return MF_OK;

err_close:
    mf_tl_tcp_iface_close(&iface->super);
    return status;
}

static void mf_tl_tcp_iface_close(mf_tl_iface_t *tl_iface)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_worker_t *worker;
    mf_tl_tcp_region_t *region;
    unsigned i;

    for (i = 0; i < iface->nworkers; i++) {
        worker = &iface->workers[i];
        if (worker->started) {
            mf_tl_tcp_worker_run(worker, mf_tl_tcp_worker_stop_cmd, NULL);
            pthread_join(worker->thread, NULL);
            worker->started = false;
        }
    }
    for (i = 0; i < iface->nworkers; i++) {
        mf_tl_tcp_worker_cleanup(&iface->workers[i]);
    }
    free(iface->workers);
    if (iface->listen.fd >= 0) {
        close(iface->listen.fd);
        mf_sock_accept_guard_cleanup(&iface->accept_guard);
    }
    {
        mf_hmap_iter_t it;
        mf_hmap_entry_t *e;

        mf_hmap_iter_init(&iface->regions, &it);
        while ((e = mf_hmap_next(&iface->regions, &it)) != NULL) {
            region = e->value;
            region->exported = false; /* its memh is still the owner's */
        }
    }
    mf_hmap_free(&iface->regions);
    pthread_mutex_destroy(&iface->regions_lock);
    {
        mf_hmap_iter_t it;
        mf_hmap_entry_t *e;

        mf_hmap_iter_init(&iface->hellos, &it);
        while ((e = mf_hmap_next(&iface->hellos, &it)) != NULL) {
            free(e->value);
        }
    }
    mf_hmap_free(&iface->hellos);
    pthread_mutex_destroy(&iface->hellos_lock);
    free(iface);
}

static void mf_tl_tcp_iface_query(mf_tl_iface_t *iface, mf_tl_caps_t *caps_p)
{
    caps_p->flags = MF_TL_CAP_PUT | MF_TL_CAP_GET | MF_TL_CAP_USER_MEM;
    /* host memory straight, device memory through staging */
    caps_p->mem_kinds = MF_TL_MEM_KIND(MF_MEM_KIND_HOST);
    for (int kind = MF_MEM_KIND_HOST + 1; kind < MF_MEM_KIND_LAST; kind++) {
        /* built, not probed: asking the driver here would start it in
         * every process of a GPU machine; a copy of device memory
         * checks that the kind works */
        if (mf_mem_kind_built((mf_mem_kind_t)kind)) {
            caps_p->mem_kinds |= MF_TL_MEM_KIND(kind);
        }
    }
    caps_p->local_kinds = caps_p->mem_kinds;
    caps_p->addr_max = 64;
    caps_p->rkey_max = 64;
}

static mf_status_t mf_tl_tcp_iface_addr_pack(mf_tl_iface_t *tl_iface, void *buf,
                                             size_t buf_len, size_t *len_p)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_TCP_ADDR_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_TCP_ADDR_VERSION);
    mf_wbuf_put_u8(&w, 4); /* IPv4 */
    mf_wbuf_put_u16(&w, ntohs(iface->adv.sin_port));
    mf_wbuf_put_raw(&w, &iface->adv.sin_addr.s_addr, 4);
    mf_wbuf_put_raw(&w, iface->secret, sizeof(iface->secret));
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

mf_status_t mf_tl_tcp_addr_unpack(const void *buf, size_t len,
                                  struct sockaddr_in *sin,
                                  uint8_t secret[MF_TL_TCP_SECRET])
{
    const void *ip, *key;
    uint32_t magic;
    uint8_t version, family;
    uint16_t port;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u8(&r, &family);
    mf_rbuf_get_u16(&r, &port);
    mf_rbuf_get_raw(&r, &ip, 4);
    mf_rbuf_get_raw(&r, &key, MF_TL_TCP_SECRET);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_TCP_ADDR_MAGIC ||
        version != MF_TL_TCP_ADDR_VERSION || family != 4 || port == 0) {
        return MF_ERR_PROTO;
    }
    if (sin != NULL) {
        memset(sin, 0, sizeof(*sin));
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr.s_addr, ip, 4);
    }
    if (secret != NULL) {
        memcpy(secret, key, MF_TL_TCP_SECRET);
    }
    return MF_OK;
}

mf_status_t mf_tl_tcp_random(void *buf, size_t len)
{
    size_t got = 0;
    ssize_t ret;

    while (got < len) {
        ret = getrandom((uint8_t *)buf + got, len - got, 0);
        if (ret < 0 && errno == EINTR) {
            continue;
        }
        if (ret <= 0) {
            mf_error("tcp: no random bytes from the kernel: %s",
                     strerror(ret < 0 ? errno : EIO));
            return MF_ERR_IO;
        }
        got += (size_t)ret;
    }
    return MF_OK;
}

void mf_tl_tcp_proof(const uint8_t secret[MF_TL_TCP_SECRET], bool server,
                     const uint8_t nonce_s[MF_TL_TCP_NONCE],
                     const uint8_t nonce_c[MF_TL_TCP_NONCE], uint64_t ep_id,
                     uint64_t lane, uint8_t out[MF_TL_TCP_MAC])
{
    static const char label_c[8] = "MFTC-cli", label_s[8] = "MFTC-srv";
    uint8_t msg[8 + 2 * MF_TL_TCP_NONCE + 16];
    unsigned int len = MF_TL_TCP_MAC;

    memcpy(msg, server ? label_s : label_c, 8);
    memcpy(msg + 8, nonce_s, MF_TL_TCP_NONCE);
    memcpy(msg + 8 + MF_TL_TCP_NONCE, nonce_c, MF_TL_TCP_NONCE);
    mf_le64_store(msg + 8 + 2 * MF_TL_TCP_NONCE, ep_id);
    mf_le64_store(msg + 16 + 2 * MF_TL_TCP_NONCE, lane);
    if (HMAC(EVP_sha256(), secret, MF_TL_TCP_SECRET, msg, sizeof(msg), out,
             &len) == NULL) {
        /* no proof at all: a random one, which nothing will match */
        (void)mf_tl_tcp_random(out, MF_TL_TCP_MAC);
    }
}

bool mf_tl_tcp_proof_equal(const uint8_t *proof, const uint8_t *expected)
{
    return CRYPTO_memcmp(proof, expected, MF_TL_TCP_MAC) == 0;
}

static bool mf_tl_tcp_iface_is_reachable(mf_tl_iface_t *iface, const void *addr,
                                         size_t len)
{
    struct sockaddr_in sin;

    return mf_tl_tcp_addr_unpack(addr, len, &sin, NULL) == MF_OK;
}

/* =============================================================== memory */

uint64_t mf_tl_tcp_new_key(void)
{
    uint64_t key = 0;

    /* from the kernel's CSPRNG, as the interface's secret (whose draw at
     * open proved it works): a segment key cannot be guessed */
    (void)mf_tl_tcp_random(&key, sizeof(key));
    return key;
}

static mf_status_t mf_tl_tcp_mem_reg(mf_tl_iface_t *tl_iface,
                                     const mf_tl_mem_params_t *params,
                                     mf_tl_memh_t **memh_p)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_region_t *region;

    region = calloc(1, sizeof(*region));
    if (region == NULL) {
        mf_error("tcp: cannot allocate a memory handle");
        return MF_ERR_NOMEM;
    }
    region->super.ops = &mf_tl_tcp_ops;
    region->super.addr = params->addr;
    region->super.size = params->size;
    region->key = mf_tl_tcp_new_key();
    /* served device memory goes through staging (tcp_int.h) */
    region->kind = params->seg != NULL ? params->seg->kind
                   : params->serve     ? params->kind
                                       : MF_MEM_KIND_HOST;
    /* segments and user memory asked to be are served to peers; other
     * user memory stays private */
    if (params->seg != NULL || params->serve) {
        mf_status_t status;

        pthread_mutex_lock(&iface->regions_lock);
        status = mf_hmap_put(&iface->regions, &region->key, sizeof(region->key),
                             region, NULL);
        pthread_mutex_unlock(&iface->regions_lock);
        if (status != MF_OK) {
            mf_error("tcp: cannot serve a memory handle: out of memory");
            free(region);
            return status;
        }
        region->exported = true;
    }
    *memh_p = &region->super;
    return MF_OK;
}

static void mf_tl_tcp_purge_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_region_t *region = arg;
    mf_tl_tcp_conn_t *conn;
    mf_list_t *elem, *next;
    bool uses;
    unsigned i;

    for (elem = worker->conns.next; elem != &worker->conns; elem = next) {
        next = elem->next;
        conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);
        uses = conn->in_region == region;
        for (i = 0; i < conn->count && !uses; i++) {
            uses =
                conn->ring[(conn->head + i) % MF_TL_TCP_RING].region == region;
        }
        if (uses) {
            mf_debug("tcp: dropping %s: its segment goes away", conn->peer);
            mf_tl_tcp_conn_close(conn);
        }
    }
}

static void mf_tl_tcp_mem_dereg(mf_tl_iface_t *tl_iface, mf_tl_memh_t *memh)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_region_t *region = (mf_tl_tcp_region_t *)memh;
    unsigned i;

    if (region->exported) {
        pthread_mutex_lock(&iface->regions_lock);
        (void)mf_hmap_remove(&iface->regions, &region->key,
                             sizeof(region->key));
        pthread_mutex_unlock(&iface->regions_lock);
        for (i = 0; i < iface->nworkers; i++) {
            mf_tl_tcp_worker_run(&iface->workers[i], mf_tl_tcp_purge_cmd,
                                 region);
        }
    }
    free(region);
}

static mf_status_t mf_tl_tcp_rkey_pack(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                                       void *buf, size_t buf_len, size_t *len_p)
{
    mf_tl_tcp_region_t *region = (mf_tl_tcp_region_t *)memh;
    mf_wbuf_t w;

    if (!region->exported) {
        return MF_ERR_UNSUPPORTED;
    }
    mf_wbuf_init(&w);
    mf_wbuf_put_u32(&w, MF_TL_TCP_RKEY_MAGIC);
    mf_wbuf_put_u8(&w, MF_TL_TCP_RKEY_VERSION);
    mf_wbuf_put_u64(&w, region->key);
    mf_wbuf_put_u64(&w, (uint64_t)(uintptr_t)memh->addr);
    mf_wbuf_put_u64(&w, memh->size);
    return mf_wbuf_copy_out(&w, buf, buf_len, len_p);
}

static mf_status_t mf_tl_tcp_rkey_unpack(mf_tl_iface_t *iface, const void *buf,
                                         size_t len, uint64_t gva,
                                         uint64_t size, mf_tl_rkey_t **rkey_p)
{
    uint64_t key, key_gva, key_size;
    mf_tl_tcp_rkey_t *rkey;
    uint32_t magic;
    uint8_t version;
    mf_rbuf_t r;

    mf_rbuf_init(&r, buf, len);
    mf_rbuf_get_u32(&r, &magic);
    mf_rbuf_get_u8(&r, &version);
    mf_rbuf_get_u64(&r, &key);
    mf_rbuf_get_u64(&r, &key_gva);
    mf_rbuf_get_u64(&r, &key_size);
    if (mf_rbuf_status(&r, true) != MF_OK || magic != MF_TL_TCP_RKEY_MAGIC) {
        mf_error("tcp: malformed remote key (%zu bytes)", len);
        return MF_ERR_PROTO;
    }
    if (version != MF_TL_TCP_RKEY_VERSION) {
        mf_error("tcp: remote key version %u, expected %u", version,
                 MF_TL_TCP_RKEY_VERSION);
        return MF_ERR_VERSION;
    }
    if (key_gva != gva || key_size != size) {
        mf_error("tcp: remote key claims 0x%" PRIx64 "+0x%" PRIx64
                 ", expected 0x%" PRIx64 "+0x%" PRIx64,
                 key_gva, key_size, gva, size);
        return MF_ERR_PROTO;
    }
    rkey = calloc(1, sizeof(*rkey));
    if (rkey == NULL) {
        mf_error("tcp: cannot allocate a remote key");
        return MF_ERR_NOMEM;
    }
    rkey->super.ops = &mf_tl_tcp_ops;
    rkey->super.gva = gva;
    rkey->super.size = size;
    rkey->super.addr = NULL;
    rkey->key = key;
    *rkey_p = &rkey->super;
    return MF_OK;
}

static void mf_tl_tcp_rkey_release(mf_tl_iface_t *iface, mf_tl_rkey_t *rkey)
{
    free(rkey);
}

/* ================================================================ tests */

uint16_t mf_tl_tcp_iface_port(mf_tl_iface_t *iface)
{
    return ntohs(((mf_tl_tcp_iface_t *)iface)->adv.sin_port);
}

const uint8_t *mf_tl_tcp_iface_secret(mf_tl_iface_t *iface)
{
    return ((mf_tl_tcp_iface_t *)iface)->secret;
}

uint64_t mf_tl_tcp_memh_key(mf_tl_memh_t *memh)
{
    return ((mf_tl_tcp_region_t *)memh)->key;
}

void mf_tl_tcp_iface_vec_stats(mf_tl_iface_t *tl_iface, uint64_t *requests_p,
                               uint64_t *pieces_p)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;

    *requests_p = atomic_load(&iface->vec_requests);
    *pieces_p = atomic_load(&iface->vec_pieces);
}

typedef struct mf_tl_tcp_hold {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned held;
    bool on;
    mf_tl_tcp_cmd_t cmds[MF_TL_TCP_MAX_LANES];
} mf_tl_tcp_hold_t;

static void mf_tl_tcp_hold_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_hold_t *hold = arg;

    pthread_mutex_lock(&hold->lock);
    hold->held++;
    pthread_cond_broadcast(&hold->cond);
    while (hold->on) {
        pthread_cond_wait(&hold->cond, &hold->lock);
    }
    hold->held--;
    pthread_cond_broadcast(&hold->cond);
    pthread_mutex_unlock(&hold->lock);
}

void mf_tl_tcp_iface_hold(mf_tl_iface_t *tl_iface)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_hold_t *hold = calloc(1, sizeof(*hold));

    if (hold == NULL || iface->hold != NULL) {
        free(hold);
        return;
    }
    pthread_mutex_init(&hold->lock, NULL);
    pthread_cond_init(&hold->cond, NULL);
    hold->on = true;
    iface->hold = hold;
    for (unsigned i = 0; i < iface->nworkers; i++) {
        hold->cmds[i].fn = mf_tl_tcp_hold_cmd;
        hold->cmds[i].arg = hold;
        hold->cmds[i].drop = NULL;
        mf_tl_tcp_worker_post(&iface->workers[i], &hold->cmds[i]);
    }
    pthread_mutex_lock(&hold->lock);
    while (hold->held < iface->nworkers) {
        pthread_cond_wait(&hold->cond, &hold->lock);
    }
    pthread_mutex_unlock(&hold->lock);
}

void mf_tl_tcp_iface_release(mf_tl_iface_t *tl_iface)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_hold_t *hold = iface->hold;

    if (hold == NULL) {
        return;
    }
    pthread_mutex_lock(&hold->lock);
    hold->on = false;
    pthread_cond_broadcast(&hold->cond);
    while (hold->held > 0) {
        pthread_cond_wait(&hold->cond, &hold->lock);
    }
    pthread_mutex_unlock(&hold->lock);
    pthread_mutex_destroy(&hold->lock);
    pthread_cond_destroy(&hold->cond);
    iface->hold = NULL;
    free(hold);
}

typedef struct mf_tl_tcp_drop_arg {
    unsigned count;
} mf_tl_tcp_drop_arg_t;

static void mf_tl_tcp_drop_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    mf_tl_tcp_drop_arg_t *drop = arg;
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&worker->conns)) != NULL) {
        mf_tl_tcp_conn_t *conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);

        mf_list_init(&conn->elem);
        mf_tl_tcp_conn_close(conn);
        drop->count++;
    }
}

unsigned mf_tl_tcp_iface_drop_conns(mf_tl_iface_t *tl_iface)
{
    mf_tl_tcp_iface_t *iface = (mf_tl_tcp_iface_t *)tl_iface;
    mf_tl_tcp_drop_arg_t drop = {0};
    unsigned i;

    for (i = 0; i < iface->nworkers; i++) {
        mf_tl_tcp_worker_run(&iface->workers[i], mf_tl_tcp_drop_cmd, &drop);
    }
    return drop.count;
}

const mf_tl_ops_t mf_tl_tcp_ops = {
    .name = "tcp",
    .config = &mf_tl_tcp_cfg_table,
    .config_size = sizeof(mf_tl_tcp_config_t),
    .config_check = mf_tl_tcp_config_check,
    .iface_open = mf_tl_tcp_iface_open,
    .iface_close = mf_tl_tcp_iface_close,
    .iface_query = mf_tl_tcp_iface_query,
    .iface_addr_pack = mf_tl_tcp_iface_addr_pack,
    .iface_is_reachable = mf_tl_tcp_iface_is_reachable,
    .mem_reg = mf_tl_tcp_mem_reg,
    .mem_dereg = mf_tl_tcp_mem_dereg,
    .rkey_pack = mf_tl_tcp_rkey_pack,
    .rkey_unpack = mf_tl_tcp_rkey_unpack,
    .rkey_release = mf_tl_tcp_rkey_release,
    .ep_create = mf_tl_tcp_ep_create,
    .ep_destroy = mf_tl_tcp_ep_destroy,
    .put = mf_tl_tcp_put,
    .get = mf_tl_tcp_get,
    .flush = mf_tl_tcp_flush,
    .progress = mf_tl_tcp_progress,
};
