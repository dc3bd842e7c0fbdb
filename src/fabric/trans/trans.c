/*
 * TRANS instances (mf_trans.h): the id claimed in the config store, the
 * transports that serve user memory, our registered buffers published as
 * one ephemeral key, and the peers we transfer with, found and followed
 * through the store (trans_int.h says which keys and which locks).
 */
#include "fabric/trans/trans_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Ids of dead peers remembered, so that transfers to them say
 * MF_ERR_PEER_LOST rather than MF_ERR_NOT_FOUND; past this many the set
 * starts over (ids of a long-running job's dead peers are not kept
 * forever). */
#define MF_TRANS_LOST_MAX 65536u

/* --------------------------------------------------------------- keys */

static void mf_trans_key(char *buf, size_t len, const char *id,
                         const char *what)
{
    snprintf(buf, len, "%s%s/%s", MF_TRANS_PREFIX, id, what);
}

static bool mf_trans_id_valid(const char *id)
{
    return mf_key_part_valid(id, MF_TRANS_ID_MAX);
}

/* The addr key's value: every transport's name and packed address. */
static mf_status_t mf_trans_addr_encode(mf_trans_t *trans, mf_wbuf_t *w)
{
    uint8_t addr[256];
    size_t len;

    mf_wbuf_put_u32(w, MF_TRANS_MAGIC);
    mf_wbuf_put_u8(w, MF_TRANS_VERSION);
    mf_wbuf_put_u32(w, (uint32_t)trans->ntl);
    for (size_t i = 0; i < trans->ntl; i++) {
        mf_tl_iface_t *iface = trans->ifaces[i];

        if (iface->ops->iface_addr_pack(iface, addr, sizeof(addr), &len) !=
            MF_OK) {
            mf_error("mf-trans %s: %s cannot pack its address", trans->id,
                     iface->ops->name);
            return MF_ERR_PROTO;
        }
        mf_wbuf_put_str(w, iface->ops->name);
        mf_wbuf_put_bytes(w, addr, len);
    }
    return mf_wbuf_status(w);
}

/* The mem key's value: every buffer, with its remote key of each
 * transport that has one.  reg_lock held. */
static mf_status_t mf_trans_mem_encode(mf_trans_t *trans, mf_wbuf_t *w)
{
    uint8_t key[256];
    size_t len;

    mf_wbuf_put_u32(w, MF_TRANS_MAGIC);
    mf_wbuf_put_u8(w, MF_TRANS_VERSION);
    mf_wbuf_put_u32(w, (uint32_t)trans->regions.count);
    for (size_t i = 0; i < trans->regions.count; i++) {
        const mf_trans_region_t *r = mf_vec_at(&trans->regions, i);
        uint32_t nkeys = 0;

        for (size_t t = 0; t < trans->ntl; t++) {
            nkeys += r->memh[t] != NULL;
        }
        mf_wbuf_put_u64(w, r->addr);
        mf_wbuf_put_u64(w, r->size);
        mf_wbuf_put_u32(w, nkeys);
        for (size_t t = 0; t < trans->ntl; t++) {
            mf_tl_iface_t *iface = trans->ifaces[t];

            if (r->memh[t] == NULL) {
                continue;
            }
            if (iface->ops->rkey_pack(iface, r->memh[t], key, sizeof(key),
                                      &len) != MF_OK) {
                mf_error("mf-trans %s: %s cannot pack a remote key", trans->id,
                         iface->ops->name);
                return MF_ERR_PROTO;
            }
            mf_wbuf_put_str(w, iface->ops->name);
            mf_wbuf_put_bytes(w, key, len);
        }
    }
    return mf_wbuf_status(w);
}

/* Publishes our buffers as they are now (reg_lock held). */
static mf_status_t mf_trans_mem_publish(mf_trans_t *trans)
{
    char key[MF_TRANS_ID_MAX + 32];
    mf_status_t status;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    status = mf_trans_mem_encode(trans, &w);
    if (status == MF_OK) {
        mf_trans_key(key, sizeof(key), trans->id, "mem");
        status =
            mf_store_set(trans->store, key, w.data, w.len, MF_STORE_EPHEMERAL);
        if (status != MF_OK) {
            mf_error("mf-trans %s: cannot publish its buffers: %s", trans->id,
                     mf_status_name(status));
        }
    }
    mf_wbuf_free(&w);
    return status;
}

/* ---------------------------------------------------------- transports */

/* Opens every transport that serves user memory (or the one named). */
static mf_status_t mf_trans_tl_open(mf_trans_t *trans, const char *route_host)
{
    bool any = strcmp(trans->cfg.transport, "auto") == 0;
    mf_status_t status = MF_ERR_UNSUPPORTED;

    for (size_t i = 0; i < mf_tl_count() && trans->ntl < MF_FABRIC_TL_MAX;
         i++) {
        const mf_tl_ops_t *ops = mf_tl_at(i);
        mf_tl_params_t params;
        mf_tl_iface_t *iface;
        mf_tl_caps_t caps;
        void *config;

        if (!any && strcmp(ops->name, trans->cfg.transport) != 0) {
            continue;
        }
        status = mf_tl_config_parse(ops, trans->cfg.tl_settings, &config);
        if (status != MF_OK) {
            return status;
        }
        memset(&params, 0, sizeof(params));
        params.host_id =
            trans->cfg.host_id[0] != '\0' ? trans->cfg.host_id : mf_host_id();
        params.route_host = route_host;
        params.workers = trans->workers;
        params.split_min = trans->cfg.copy_split_min;
        params.config = config;
        params.auto_choice = any;
        status = ops->iface_open(&params, &iface);
        free(config);
        if (status != MF_OK) {
            if (!any) {
                return status;
            }
            continue;
        }
        ops->iface_query(iface, &caps);
        if (!(caps.flags & MF_TL_CAP_USER_MEM)) {
            ops->iface_close(iface);
            if (!any) {
                mf_error("mf-trans: transport %s cannot serve registered "
                         "buffers to peers",
                         ops->name);
                return MF_ERR_UNSUPPORTED;
            }
            continue;
        }
        trans->caps[trans->ntl] = caps;
        trans->ifaces[trans->ntl++] = iface;
    }
    if (trans->ntl == 0) {
        mf_error("mf-trans: no transport (%s) serves registered buffers",
                 trans->cfg.transport);
        return MF_ERR_UNSUPPORTED;
    }
    return MF_OK;
}

static void mf_trans_tl_close(mf_trans_t *trans)
{
    for (size_t i = 0; i < trans->ntl; i++) {
        trans->ifaces[i]->ops->iface_close(trans->ifaces[i]);
    }
    trans->ntl = 0;
}

/* --------------------------------------------------------------- peers */

static void mf_trans_rtab_free(mf_trans_t *trans, mf_trans_rtab_t *tab)
{
    mf_tl_iface_t *iface = trans->ifaces[tab->tl];

    for (size_t i = 0; i < tab->n; i++) {
        iface->ops->rkey_release(iface, tab->r[i].rkey);
    }
    free(tab);
}

void mf_trans_rtab_put(mf_trans_t *trans, mf_trans_rtab_t *tab)
{
    if (tab != NULL && atomic_fetch_sub(&tab->refs, 1) == 1) {
        pthread_mutex_lock(&trans->tl_lock);
        mf_trans_rtab_free(trans, tab);
        pthread_mutex_unlock(&trans->tl_lock);
    }
}

const mf_trans_rregion_t *mf_trans_rtab_find(const mf_trans_rtab_t *tab,
                                             uint64_t addr, uint64_t size)
{
    size_t lo = 0, hi = tab->n;

    /* the last buffer starting at or below addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (tab->r[mid].addr <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0 || !mf_tl_range_inside(tab->r[lo - 1].addr, tab->r[lo - 1].size,
                                       addr, size)) {
        return NULL;
    }
    return &tab->r[lo - 1];
}

static int mf_trans_rregion_cmp(const void *a, const void *b)
{
    const mf_trans_rregion_t *x = a, *y = b;

    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Decodes a peer's mem key into a table of its keys for transport tl
 * (tl_lock held: unpacks remote keys).  Buffers without a key of that
 * transport are left out. */
static mf_status_t mf_trans_rtab_decode(mf_trans_t *trans, size_t tl,
                                        const char *peer, const void *data,
                                        size_t len, mf_trans_rtab_t **tab_p)
{
    mf_tl_iface_t *iface = trans->ifaces[tl];
    mf_status_t status = MF_ERR_PROTO;
    uint32_t magic, count, nkeys;
    mf_trans_rtab_t *tab;
    char name[32];
    uint8_t version;
    mf_rbuf_t r;

    mf_rbuf_init(&r, data, len);
    if (!mf_rbuf_get_u32(&r, &magic) || !mf_rbuf_get_u8(&r, &version) ||
        !mf_rbuf_get_u32(&r, &count) || magic != MF_TRANS_MAGIC ||
        version != MF_TRANS_VERSION || count > MF_TRANS_MAX_REGIONS) {
        mf_error("mf-trans %s: the buffers %s published do not decode",
                 trans->id, peer);
        return MF_ERR_PROTO;
    }
    tab = calloc(1, sizeof(*tab) + (size_t)count * sizeof(tab->r[0]));
    if (tab == NULL) {
        return MF_ERR_NOMEM;
    }
    atomic_init(&tab->refs, 1);
    tab->tl = tl;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t addr, size;
        mf_tl_rkey_t *rkey = NULL;

        if (!mf_rbuf_get_u64(&r, &addr) || !mf_rbuf_get_u64(&r, &size) ||
            !mf_rbuf_get_u32(&r, &nkeys) || size == 0 || addr + size < addr ||
            nkeys > MF_FABRIC_TL_MAX) {
            goto err;
        }
        for (uint32_t k = 0; k < nkeys; k++) {
            const void *key;
            size_t key_len;

            if (!mf_rbuf_get_str(&r, name, sizeof(name)) ||
                !mf_rbuf_get_bytes(&r, &key, &key_len, 4096)) {
                if (rkey != NULL) {
                    iface->ops->rkey_release(iface, rkey);
                }
                goto err;
            }
            if (rkey != NULL || strcmp(name, iface->ops->name) != 0) {
                continue;
            }
            status =
                iface->ops->rkey_unpack(iface, key, key_len, addr, size, &rkey);
            if (status != MF_OK) {
                goto err;
            }
        }
        if (rkey != NULL) {
            tab->r[tab->n++] = (mf_trans_rregion_t){addr, size, rkey};
        }
    }
    if (mf_rbuf_status(&r, true) != MF_OK) {
        goto err;
    }
    qsort(tab->r, tab->n, sizeof(tab->r[0]), mf_trans_rregion_cmp);
    for (size_t i = 1; i < tab->n; i++) {
        if (tab->r[i].addr - tab->r[i - 1].addr < tab->r[i - 1].size) {
            goto err; /* overlapping: not what a live instance publishes */
        }
    }
    *tab_p = tab;
    return MF_OK;

err:
    mf_trans_rtab_free(trans, tab);
    if (status == MF_ERR_NOMEM) {
        return status;
    }
    mf_error("mf-trans %s: the buffers %s published do not decode", trans->id,
             peer);
    return MF_ERR_PROTO;
}

static void mf_trans_peer_free(mf_trans_t *trans, mf_trans_peer_t *peer)
{
    if (peer->tab != NULL) {
        mf_trans_rtab_put(trans, peer->tab);
    }
    pthread_mutex_lock(&trans->tl_lock);
    if (peer->ep != NULL) {
        peer->ep->ops->ep_destroy(peer->ep);
    }
    pthread_mutex_unlock(&trans->tl_lock);
    free(peer);
}

void mf_trans_peer_put(mf_trans_t *trans, mf_trans_peer_t *peer)
{
    if (peer != NULL && atomic_fetch_sub(&peer->refs, 1) == 1) {
        mf_trans_peer_free(trans, peer);
    }
}

/* A new peer from its addr key: an endpoint of the first of our
 * transports that reaches one of its addresses. */
static mf_status_t mf_trans_peer_connect(mf_trans_t *trans, const char *id,
                                         const void *data, size_t len,
                                         mf_trans_peer_t **peer_p)
{
    mf_status_t status = MF_ERR_UNREACHABLE;
    mf_trans_peer_t *peer;
    uint32_t magic, ntl;
    uint8_t version;
    char name[32];
    mf_rbuf_t r;

    peer = calloc(1, sizeof(*peer));
    if (peer == NULL) {
        return MF_ERR_NOMEM;
    }
    mf_strlcpy(peer->id, id, sizeof(peer->id));
    atomic_init(&peer->refs, 1);
    mf_rbuf_init(&r, data, len);
    if (!mf_rbuf_get_u32(&r, &magic) || !mf_rbuf_get_u8(&r, &version) ||
        !mf_rbuf_get_u32(&r, &ntl) || magic != MF_TRANS_MAGIC ||
        version != MF_TRANS_VERSION || ntl > MF_FABRIC_TL_MAX) {
        mf_error("mf-trans %s: the address %s published does not decode",
                 trans->id, id);
        free(peer);
        return MF_ERR_PROTO;
    }
    pthread_mutex_lock(&trans->tl_lock);
    for (uint32_t k = 0; k < ntl && peer->ep == NULL; k++) {
        const void *addr;
        size_t addr_len;

        if (!mf_rbuf_get_str(&r, name, sizeof(name)) ||
            !mf_rbuf_get_bytes(&r, &addr, &addr_len, 4096)) {
            status = MF_ERR_PROTO;
            break;
        }
        for (size_t t = 0; t < trans->ntl; t++) {
            mf_tl_iface_t *iface = trans->ifaces[t];

            if (strcmp(name, iface->ops->name) != 0 ||
                !iface->ops->iface_is_reachable(iface, addr, addr_len)) {
                continue;
            }
            status = iface->ops->ep_create(iface, addr, addr_len, &peer->ep);
            if (status == MF_OK) {
                peer->tl = t;
                break;
            }
        }
    }
    pthread_mutex_unlock(&trans->tl_lock);
    if (peer->ep == NULL) {
        mf_warn("mf-trans %s: no transport reaches %s: %s", trans->id, id,
                mf_status_name(status));
        free(peer);
        return status == MF_OK ? MF_ERR_UNREACHABLE : status;
    }
    *peer_p = peer;
    return MF_OK;
}

/* Drops the map's references of the peers the watch forgot (a caller's
 * thread). */
static void mf_trans_graveyard_drain(mf_trans_t *trans)
{
    mf_list_t dead;
    mf_list_t *elem;

    mf_list_init(&dead);
    pthread_mutex_lock(&trans->peers_lock);
    while ((elem = mf_list_pop_front(&trans->graveyard)) != NULL) {
        mf_list_push_back(&dead, elem);
    }
    pthread_mutex_unlock(&trans->peers_lock);
    while ((elem = mf_list_pop_front(&dead)) != NULL) {
        mf_trans_peer_put(trans, mf_container_of(elem, mf_trans_peer_t, gone));
    }
}

mf_status_t mf_trans_peer_get(mf_trans_t *trans, const char *id,
                              mf_trans_peer_t **peer_p)
{
    char key[MF_TRANS_ID_MAX + 32];
    mf_trans_peer_t *peer, *raced;
    mf_status_t status = MF_OK;
    void *value;
    size_t len;

    mf_trans_graveyard_drain(trans);
    if (!mf_trans_id_valid(id)) {
        mf_error("mf-trans %s: '%s' is no instance id", trans->id,
                 id != NULL ? id : "(null)");
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&trans->peers_lock);
    peer = mf_hmap_get(&trans->peers, id, strlen(id));
    if (peer != NULL) {
        atomic_fetch_add(&peer->refs, 1);
    } else if (mf_hmap_find(&trans->lost, id, strlen(id)) != NULL) {
        status = MF_ERR_PEER_LOST;
    }
    pthread_mutex_unlock(&trans->peers_lock);
    if (peer != NULL) {
        *peer_p = peer;
        return MF_OK;
    }
    if (status == MF_ERR_PEER_LOST) {
        return status;
    }
    /* no lock across the store call (trans_int.h) */
    mf_trans_key(key, sizeof(key), id, "addr");
    status = mf_store_get(trans->store, key, 0, &value, &len);
    if (status != MF_OK) {
        if (status == MF_ERR_NOT_FOUND) {
            mf_debug("mf-trans %s: no instance %s", trans->id, id);
        }
        return status;
    }
    status = mf_trans_peer_connect(trans, id, value, len, &peer);
    free(value);
    if (status != MF_OK) {
        return status;
    }
    pthread_mutex_lock(&trans->peers_lock);
    raced = mf_hmap_get(&trans->peers, id, strlen(id));
    if (raced != NULL) { /* another thread connected meanwhile */
        atomic_fetch_add(&raced->refs, 1);
    } else if (mf_hmap_put(&trans->peers, peer->id, strlen(peer->id), peer,
                           NULL) == MF_OK) {
        atomic_fetch_add(&peer->refs, 1); /* the map's and ours */
    } else {
        status = MF_ERR_NOMEM;
    }
    pthread_mutex_unlock(&trans->peers_lock);
    if (raced != NULL || status != MF_OK) {
        mf_trans_peer_put(trans, peer);
        peer = raced;
    }
    if (status == MF_OK) {
        *peer_p = peer;
    }
    return status;
}

mf_status_t mf_trans_peer_tab(mf_trans_t *trans, mf_trans_peer_t *peer,
                              bool fresh, mf_trans_rtab_t **tab_p)
{
    char key[MF_TRANS_ID_MAX + 32];
    mf_trans_rtab_t *tab = NULL, *old;
    mf_status_t status;
    void *value;
    size_t len;

    if (atomic_load(&peer->lost)) {
        return MF_ERR_PEER_LOST;
    }
    if (!fresh && !atomic_load(&peer->stale)) {
        pthread_mutex_lock(&trans->peers_lock);
        tab = peer->tab;
        if (tab != NULL) {
            atomic_fetch_add(&tab->refs, 1);
        }
        pthread_mutex_unlock(&trans->peers_lock);
        if (tab != NULL) {
            *tab_p = tab;
            return MF_OK;
        }
    }
    /* cleared before the read: a change after it marks it again */
    atomic_store(&peer->stale, false);
    mf_trans_key(key, sizeof(key), peer->id, "mem");
    status = mf_store_get(trans->store, key, 0, &value, &len);
    if (status == MF_ERR_NOT_FOUND) {
        /* registered nothing yet, or gone: its addr key says which */
        mf_trans_key(key, sizeof(key), peer->id, "addr");
        status = mf_store_get(trans->store, key, 0, &value, &len);
        if (status == MF_OK) {
            free(value);
            value = NULL;
            len = 0;
        } else if (status == MF_ERR_NOT_FOUND) {
            atomic_store(&peer->lost, true);
            return MF_ERR_PEER_LOST;
        }
    }
    if (status != MF_OK) {
        atomic_store(&peer->stale, true); /* read it again next time */
        return status;
    }
    pthread_mutex_lock(&trans->tl_lock);
    if (value != NULL) {
        status =
            mf_trans_rtab_decode(trans, peer->tl, peer->id, value, len, &tab);
    } else {
        tab = calloc(1, sizeof(*tab));
        status = tab != NULL ? MF_OK : MF_ERR_NOMEM;
        if (tab != NULL) {
            atomic_init(&tab->refs, 1);
            tab->tl = peer->tl;
        }
    }
    pthread_mutex_unlock(&trans->tl_lock);
    free(value);
    if (status != MF_OK) {
        atomic_store(&peer->stale, true);
        return status;
    }
    atomic_fetch_add(&tab->refs, 1); /* the peer's and the caller's */
    pthread_mutex_lock(&trans->peers_lock);
    old = peer->tab;
    peer->tab = tab;
    pthread_mutex_unlock(&trans->peers_lock);
    mf_trans_rtab_put(trans, old);
    *tab_p = tab;
    return MF_OK;
}

/* Store events of every instance (the store's watch thread): an addr key
 * removed is a peer gone (forgotten, its id remembered as lost, so
 * transfers to it say MF_ERR_PEER_LOST), an addr key set is an instance
 * under an id (no longer lost), a mem key changed is a peer's buffers
 * changed. */
static void mf_trans_watch_cb(mf_store_event_t event, const char *key,
                              const void *value, size_t len, void *arg)
{
    mf_trans_t *trans = arg;
    const char *id = key + strlen(MF_TRANS_PREFIX), *slash;
    mf_trans_peer_t *peer, *forget = NULL;
    size_t id_len;
    bool addr;

    (void)value;
    (void)len;
    if (strncmp(key, MF_TRANS_PREFIX, strlen(MF_TRANS_PREFIX)) != 0 ||
        (slash = strrchr(id, '/')) == NULL ||
        (id_len = (size_t)(slash - id)) >= MF_TRANS_ID_MAX) {
        return;
    }
    addr = strcmp(slash, "/addr") == 0;
    if (!addr && strcmp(slash, "/mem") != 0) {
        return;
    }
    pthread_mutex_lock(&trans->peers_lock);
    peer = mf_hmap_get(&trans->peers, id, id_len);
    if (!addr) {
        if (peer != NULL) {
            atomic_store(&peer->stale, true);
        }
    } else if (event == MF_STORE_EVENT_REMOVE) {
        if (peer != NULL) {
            atomic_store(&peer->lost, true);
            (void)mf_hmap_remove(&trans->peers, id, id_len);
            forget = peer;
            mf_list_push_back(&trans->graveyard, &peer->gone);
            if (trans->lost.count >= MF_TRANS_LOST_MAX) {
                mf_hmap_free(&trans->lost);
                mf_hmap_init(&trans->lost);
            }
            (void)mf_hmap_put(&trans->lost, id, id_len, trans, NULL);
        }
    } else {
        /* the id lives (again): the next transfer connects anew */
        (void)mf_hmap_remove(&trans->lost, id, id_len);
    }
    pthread_mutex_unlock(&trans->peers_lock);
    if (forget != NULL) {
        mf_debug("mf-trans %s: %s is gone", trans->id, forget->id);
    }
}

/* ----------------------------------------------------------- instances */

MF_API mf_status_t mf_trans_create(const char *store_url, const char *id,
                                   const mf_bm_config_t *cfg,
                                   mf_trans_t **trans_p)
{
    char key[MF_TRANS_ID_MAX + 32], route_host[256] = "";
    mf_store_config_t store_cfg;
    mf_url_t urls[MF_URL_LIST_MAX];
    mf_trans_t *trans;
    mf_status_t status;
    uint32_t rank;
    mf_wbuf_t w;
    size_t n;

    if (store_url == NULL || trans_p == NULL || !mf_trans_id_valid(id) ||
        (cfg != NULL && cfg->size < sizeof(*cfg))) {
        mf_error("mf_trans_create: bad arguments (id '%s')",
                 id != NULL ? id : "(null)");
        return MF_ERR_INVALID;
    }
    if (!mf_fabric_inited()) {
        mf_error("mf_trans_create: call mf_init() first");
        return MF_ERR_STATE;
    }
    trans = calloc(1, sizeof(*trans));
    if (trans == NULL) {
        return MF_ERR_NOMEM;
    }
    if (cfg != NULL) {
        trans->cfg = *cfg;
    } else {
        mf_bm_config_init(&trans->cfg);
    }
    status = mf_fabric_config_check(&trans->cfg);
    if (status != MF_OK) {
        free(trans);
        return status;
    }
    mf_strlcpy(trans->id, id, sizeof(trans->id));
    snprintf(trans->group, sizeof(trans->group), "%s%s", MF_TRANS_PREFIX, id);
    pthread_mutex_init(&trans->reg_lock, NULL);
    pthread_mutex_init(&trans->tl_lock, NULL);
    pthread_mutex_init(&trans->peers_lock, NULL);
    mf_vec_init(&trans->regions, sizeof(mf_trans_region_t));
    mf_hmap_init(&trans->peers);
    mf_hmap_init(&trans->lost);
    mf_list_init(&trans->graveyard);
    if (mf_url_list_parse(store_url, urls, MF_URL_LIST_MAX, &n) == MF_OK) {
        mf_strlcpy(route_host, urls[0].host, sizeof(route_host));
    }

    mf_fabric_store_config(&trans->cfg, &store_cfg);
    status = mf_store_connect(store_url, &store_cfg, &trans->store);
    if (status != MF_OK) {
        goto err_free;
    }
    /* the id is ours while our session holds rank 0 of its group */
    status = mf_store_rank_join(trans->store, trans->group, 1, 0, &rank);
    if (status != MF_OK) {
        mf_error("mf_trans_create: the id %s is %s", id,
                 status == MF_ERR_EXISTS ? "taken by a live instance"
                                         : mf_status_name(status));
        status = status == MF_ERR_BUSY ? MF_ERR_EXISTS : status;
        goto err_close_store;
    }
    status = mf_workers_create(trans->cfg.copy_threads, &trans->workers);
    if (status != MF_OK) {
        goto err_close_store;
    }
    status = mf_trans_tl_open(trans, route_host);
    if (status != MF_OK) {
        goto err_close_tl;
    }
    status = mf_store_watch(trans->store, MF_TRANS_PREFIX, mf_trans_watch_cb,
                            trans, &trans->watch);
    if (status != MF_OK) {
        goto err_close_tl;
    }
    pthread_mutex_lock(&trans->reg_lock);
    status = mf_trans_mem_publish(trans);
    pthread_mutex_unlock(&trans->reg_lock);
    mf_wbuf_init(&w);
    if (status == MF_OK) {
        status = mf_trans_addr_encode(trans, &w);
    }
    if (status == MF_OK) {
        mf_trans_key(key, sizeof(key), id, "addr");
        status =
            mf_store_set(trans->store, key, w.data, w.len, MF_STORE_EPHEMERAL);
    }
    mf_wbuf_free(&w);
    if (status != MF_OK) {
        mf_error("mf_trans_create: cannot announce %s: %s", id,
                 mf_status_name(status));
        goto err_unwatch;
    }
    mf_info("mf-trans %s: serving over %s%s", id, trans->ifaces[0]->ops->name,
            trans->ntl > 1 ? " and more" : "");
    *trans_p = trans;
    return MF_OK;

err_unwatch:
    mf_store_unwatch(trans->store, trans->watch);
err_close_tl:
    mf_trans_tl_close(trans);
    mf_workers_destroy(trans->workers);
err_close_store:
    mf_store_close(trans->store); /* its keys and rank go with it */
err_free:
    mf_hmap_free(&trans->lost);
    mf_hmap_free(&trans->peers);
    mf_vec_free(&trans->regions);
    pthread_mutex_destroy(&trans->peers_lock);
    pthread_mutex_destroy(&trans->tl_lock);
    pthread_mutex_destroy(&trans->reg_lock);
    free(trans);
    return status;
}

static void mf_trans_region_release(mf_trans_t *trans, mf_trans_region_t *r)
{
    pthread_mutex_lock(&trans->tl_lock);
    for (size_t t = 0; t < trans->ntl; t++) {
        if (r->memh[t] != NULL) {
            trans->ifaces[t]->ops->mem_dereg(trans->ifaces[t], r->memh[t]);
            r->memh[t] = NULL;
        }
    }
    pthread_mutex_unlock(&trans->tl_lock);
}

MF_API void mf_trans_destroy(mf_trans_t *trans)
{
    mf_hmap_iter_t it;
    mf_hmap_entry_t *e;

    if (trans == NULL) {
        return;
    }
    if (atomic_load(&trans->reqs) != 0) {
        mf_error("mf_trans_destroy %s: %u transfers are not finished (wait "
                 "for them first)",
                 trans->id, atomic_load(&trans->reqs));
    }
    mf_store_unwatch(trans->store, trans->watch);
    mf_trans_graveyard_drain(trans);
    /* the session's end withdraws the id, the address and the buffers */
    mf_store_close(trans->store);
    mf_hmap_iter_init(&trans->peers, &it);
    while ((e = mf_hmap_next(&trans->peers, &it)) != NULL) {
        mf_trans_peer_t *peer = e->value;

        (void)mf_hmap_remove(&trans->peers, peer->id, strlen(peer->id));
        mf_trans_peer_put(trans, peer);
    }
    for (size_t i = 0; i < trans->regions.count; i++) {
        mf_trans_region_release(trans, mf_vec_at(&trans->regions, i));
    }
    mf_trans_tl_close(trans);
    mf_workers_destroy(trans->workers);
    mf_hmap_free(&trans->lost);
    mf_hmap_free(&trans->peers);
    mf_vec_free(&trans->regions);
    pthread_mutex_destroy(&trans->peers_lock);
    pthread_mutex_destroy(&trans->tl_lock);
    pthread_mutex_destroy(&trans->reg_lock);
    mf_info("mf-trans %s: destroyed", trans->id);
    free(trans);
}

MF_API const char *mf_trans_id(const mf_trans_t *trans)
{
    return trans != NULL ? trans->id : NULL;
}

/* ------------------------------------------------------------- buffers */

/* Registers one buffer with every transport (reg_lock held); *r set. */
static mf_status_t mf_trans_region_reg(mf_trans_t *trans, void *addr,
                                       size_t size, mf_trans_region_t *r)
{
    mf_tl_mem_params_t params = {0};
    mf_status_t status = MF_OK;

    memset(r, 0, sizeof(*r));
    r->addr = (uint64_t)(uintptr_t)addr;
    r->size = size;
    r->kind = mf_mem_classify(addr, size);
    params.addr = addr;
    params.size = size;
    params.serve = true;
    params.kind = r->kind;
    pthread_mutex_lock(&trans->tl_lock);
    for (size_t t = 0; t < trans->ntl && status == MF_OK; t++) {
        if (!(trans->caps[t].mem_kinds & MF_TL_MEM_KIND(r->kind))) {
            continue; /* this transport cannot move it */
        }
        status = trans->ifaces[t]->ops->mem_reg(trans->ifaces[t], &params,
                                                &r->memh[t]);
    }
    pthread_mutex_unlock(&trans->tl_lock);
    if (status != MF_OK) {
        mf_error("mf-trans %s: cannot register %zu bytes at %p: %s", trans->id,
                 size, addr, mf_status_name(status));
        mf_trans_region_release(trans, r);
        return status;
    }
    for (size_t t = 0; t < trans->ntl; t++) {
        if (r->memh[t] != NULL) {
            return MF_OK;
        }
    }
    mf_error("mf-trans %s: no transport moves the memory at %p (%s)", trans->id,
             addr, r->kind == MF_MEM_KIND_HOST ? "host" : "device");
    return MF_ERR_UNSUPPORTED;
}

/* Whether [addr, addr + size) overlaps a registered buffer (reg_lock). */
static bool mf_trans_overlaps(mf_trans_t *trans, uint64_t addr, uint64_t size)
{
    for (size_t i = 0; i < trans->regions.count; i++) {
        const mf_trans_region_t *r = mf_vec_at(&trans->regions, i);

        if (addr < r->addr + r->size && r->addr < addr + size) {
            return true;
        }
    }
    return false;
}

MF_API mf_status_t mf_trans_register_batch(mf_trans_t *trans,
                                           void *const *addrs,
                                           const size_t *sizes, size_t count)
{
    size_t done = 0, base;
    mf_status_t status = MF_OK;
    mf_trans_region_t r;

    if (trans == NULL || (count > 0 && (addrs == NULL || sizes == NULL))) {
        return MF_ERR_INVALID;
    }
    for (size_t i = 0; i < count; i++) {
        if (addrs[i] == NULL || sizes[i] == 0 ||
            (uint64_t)(uintptr_t)addrs[i] + sizes[i] <
                (uint64_t)(uintptr_t)addrs[i]) {
            mf_error("mf-trans %s: cannot register %zu bytes at %p", trans->id,
                     sizes[i], addrs[i]);
            return MF_ERR_INVALID;
        }
    }
    pthread_mutex_lock(&trans->reg_lock);
    base = trans->regions.count;
    if (trans->regions.count + count > MF_TRANS_MAX_REGIONS) {
        status = MF_ERR_TOO_LARGE;
    }
    for (; done < count && status == MF_OK; done++) {
        if (mf_trans_overlaps(trans, (uint64_t)(uintptr_t)addrs[done],
                              sizes[done])) {
            mf_error("mf-trans %s: %zu bytes at %p overlap a registered "
                     "buffer",
                     trans->id, sizes[done], addrs[done]);
            status = MF_ERR_EXISTS;
            break;
        }
        status = mf_trans_region_reg(trans, addrs[done], sizes[done], &r);
        if (status == MF_OK && mf_vec_push(&trans->regions, &r) == NULL) {
            mf_trans_region_release(trans, &r);
            status = MF_ERR_NOMEM;
        }
        if (status != MF_OK) {
            break;
        }
    }
    if (status == MF_OK) {
        status = mf_trans_mem_publish(trans);
    }
    if (status != MF_OK && trans->regions.count > base) { /* all or none */
        while (trans->regions.count > base) {
            mf_trans_region_release(
                trans, mf_vec_at(&trans->regions, trans->regions.count - 1));
            mf_vec_swap_remove(&trans->regions, trans->regions.count - 1);
        }
        /* a publish that failed may still have landed: say it again */
        (void)mf_trans_mem_publish(trans);
    }
    pthread_mutex_unlock(&trans->reg_lock);
    return status;
}

MF_API mf_status_t mf_trans_register(mf_trans_t *trans, void *addr, size_t size)
{
    return mf_trans_register_batch(trans, &addr, &size, 1);
}

MF_API mf_status_t mf_trans_deregister(mf_trans_t *trans, void *addr)
{
    mf_trans_region_t r;
    mf_status_t status = MF_ERR_NOT_FOUND;

    if (trans == NULL) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&trans->reg_lock);
    for (size_t i = 0; i < trans->regions.count; i++) {
        mf_trans_region_t *cur = mf_vec_at(&trans->regions, i);

        if (cur->addr == (uint64_t)(uintptr_t)addr) {
            r = *cur;
            mf_vec_swap_remove(&trans->regions, i);
            status = MF_OK;
            break;
        }
    }
    if (status == MF_OK) {
        /* withdrawn from the peers' view first, then from the transports
         * (which close connections still using it) */
        (void)mf_trans_mem_publish(trans);
        mf_trans_region_release(trans, &r);
    } else {
        mf_error("mf-trans %s: no buffer registered at %p", trans->id, addr);
    }
    pthread_mutex_unlock(&trans->reg_lock);
    return status;
}
