/*
 * The holder's record: the committed replicas in this process's segments,
 * kept from the meta service's RECORD notifies, so that a meta service
 * that restarted (or a new leader) rebuilds its index from the holders.
 *
 * The meta service sends changes in order (ADD: a committed replica at an
 * offset; DEL: gone); the loop thread of the RPC client applies each
 * batch under rec_lock and then acknowledges it (RECORD_ACK), and the
 * meta service holds the reply of a put or remove until every holder
 * involved other than the requester did.  The requester's own batches
 * come ahead of the reply on the same connection, flagged ACK_LATER (not
 * acknowledged until a later batch without the flag asks), and a
 * reannouncement waits until they are applied
 * (mf_net_client_notes_wait).  So whatever a put or remove that returned
 * OK changed is in the records of the live holders by the time another
 * meta service asks for them.
 *
 * After a reconnect: to the same meta service (same meta_id), which
 * dropped our segments with the old connection, the record is cleared; to
 * another one, REGISTER says MMC_REG_RESTORE and the record follows in
 * RESTORE batches (a snapshot; the last one flagged), and entries the
 * meta service refuses (a newer version exists, ...) are forgotten.
 */
#include "cache/local/local.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Entries and bytes of one RESTORE request. */
#define MMC_LOCAL_RESTORE_MAX_ENTRIES 16384u
#define MMC_LOCAL_RESTORE_MAX_BYTES   (4u << 20)

/* One committed replica of ours, keyed by (media, offset). */
typedef struct mmc_local_rec {
    uint8_t media;
    uint8_t want;
    uint64_t offset;
    uint64_t size;
    uint64_t version;
    uint32_t key_len;
    char key[];
} mmc_local_rec_t;

typedef struct mmc_local_rec_key {
    uint64_t offset;
    uint8_t media;
} __attribute__((packed)) mmc_local_rec_key_t;

void mmc_local_record_init(mmc_t *mmc)
{
    pthread_mutex_init(&mmc->rec_lock, NULL);
    mf_hmap_init(&mmc->rec);
}

static void mmc_local_record_clear_locked(mmc_t *mmc)
{
    mf_hmap_iter_t it;
    mf_hmap_entry_t *e;

    mf_hmap_iter_init(&mmc->rec, &it);
    while ((e = mf_hmap_next(&mmc->rec, &it)) != NULL) {
        const mmc_local_rec_t *r = e->value;
        mmc_rec_entry_t gone = {
            .op = MMC_REC_DEL, .media = r->media, .offset = r->offset};

        mmc_local_tier_record(mmc, &gone, false); /* dropped with us */
        free(e->value);
    }
    mf_hmap_free(&mmc->rec);
    mf_hmap_init(&mmc->rec);
}

void mmc_local_record_clear(mmc_t *mmc)
{
    pthread_mutex_lock(&mmc->rec_lock);
    mmc_local_record_clear_locked(mmc);
    pthread_mutex_unlock(&mmc->rec_lock);
}

void mmc_local_record_drop_memory(mmc_t *mmc)
{
    mf_hmap_iter_t it;
    mf_hmap_entry_t *e;
    mf_vec_t gone;

    mf_vec_init(&gone, sizeof(mmc_local_rec_key_t));
    pthread_mutex_lock(&mmc->rec_lock);
    mf_hmap_iter_init(&mmc->rec, &it);
    while ((e = mf_hmap_next(&mmc->rec, &it)) != NULL) {
        const mmc_local_rec_t *r = e->value;
        mmc_local_rec_key_t k = {.offset = r->offset, .media = r->media};

        if ((r->media != MMC_MEDIA_SSD) && (mf_vec_push(&gone, &k) == NULL)) {
            mmc_local_record_clear_locked(mmc); /* no memory: all of it */
            gone.count = 0;
            break;
        }
    }
    for (size_t i = 0; i < gone.count; i++) {
        mmc_local_rec_key_t *k = mf_vec_at(&gone, i);

        free(mf_hmap_remove(&mmc->rec, k, sizeof(*k)));
    }
    pthread_mutex_unlock(&mmc->rec_lock);
    mf_vec_free(&gone);
}

void mmc_local_record_free(mmc_t *mmc)
{
    mmc_local_record_clear(mmc);
    mf_hmap_free(&mmc->rec);
    pthread_mutex_destroy(&mmc->rec_lock);
}

size_t mmc_local_record_count(mmc_t *mmc)
{
    size_t n;

    pthread_mutex_lock(&mmc->rec_lock);
    n = mmc->rec.count;
    pthread_mutex_unlock(&mmc->rec_lock);
    return n;
}

static void mmc_local_rec_del_locked(mmc_t *mmc, uint8_t media, uint64_t offset,
                                     uint64_t version)
{
    mmc_local_rec_key_t k = {.offset = offset, .media = media};
    mmc_local_rec_t *r = mf_hmap_get(&mmc->rec, &k, sizeof(k));

    if (r != NULL && (version == 0 || r->version == version)) {
        free(mf_hmap_remove(&mmc->rec, &k, sizeof(k)));
    }
}

static mf_status_t mmc_local_rec_add_locked(mmc_t *mmc,
                                            const mmc_rec_entry_t *e)
{
    mmc_local_rec_key_t k = {.offset = e->offset, .media = e->media};
    mmc_local_rec_t *r = malloc(sizeof(*r) + e->key.len);
    void *old = NULL;

    if (r == NULL) {
        return MF_ERR_NOMEM;
    }
    r->media = e->media;
    r->want = e->want;
    r->offset = e->offset;
    r->size = e->size;
    r->version = e->version;
    r->key_len = e->key.len;
    memcpy(r->key, e->key.data, e->key.len);
    if (mf_hmap_put(&mmc->rec, &k, sizeof(k), r, &old) != MF_OK) {
        free(r);
        return MF_ERR_NOMEM;
    }
    free(old); /* a replica there that we were not told about: replaced */
    return MF_OK;
}

mf_status_t mmc_local_record_add(mmc_t *mmc, const mmc_rec_entry_t *e)
{
    mf_status_t status;

    pthread_mutex_lock(&mmc->rec_lock);
    status = mmc_local_rec_add_locked(mmc, e);
    pthread_mutex_unlock(&mmc->rec_lock);
    return status;
}

void mmc_local_record_apply(mmc_t *mmc, const uint8_t *body, size_t len)
{
    mmc_record_t rec;
    mf_status_t status;
    mf_wbuf_t w;

    status = mmc_record_decode(body, len, &rec);
    if (status != MF_OK) {
        /* unacknowledged: the meta service's replies wait, then it drops
         * us for silence only if we stop pinging; say it loudly */
        mf_error("mmc-local: malformed RECORD from the meta service (%zu "
                 "bytes): %s",
                 len, mf_status_name(status));
        return;
    }
    pthread_mutex_lock(&mmc->rec_lock);
    for (uint32_t i = 0; i < rec.count && status == MF_OK; i++) {
        const mmc_rec_entry_t *e = &rec.entries[i];

        if (e->op == MMC_REC_ADD) {
            status = mmc_local_rec_add_locked(mmc, e);
        } else {
            mmc_local_rec_del_locked(mmc, e->media, e->offset, 0);
        }
        mmc_local_tier_record(mmc, e, e->op == MMC_REC_ADD);
    }
    pthread_mutex_unlock(&mmc->rec_lock);
    if (status != MF_OK) {
        mf_error("mmc-local: out of memory for the record of our segments; "
                 "a restart of the meta service may lose objects");
    }
    if (rec.flags & MMC_RECORD_ACK_LATER) { /* nobody waits for it */
        mmc_record_free(&rec);
        return;
    }
    mf_wbuf_init(&w);
    mf_wbuf_put_u64(&w, rec.seq);
    if (mf_wbuf_status(&w) == MF_OK) {
        (void)mf_net_client_send(mmc->rpc, MMC_OP_RECORD_ACK, w.data, w.len);
    }
    mf_wbuf_free(&w);
    mmc_record_free(&rec);
}

/* A snapshot of the record, to send. */
static mmc_local_rec_t **mmc_local_record_snapshot(mmc_t *mmc, size_t *n_p)
{
    mmc_local_rec_t **all;
    mf_hmap_iter_t it;
    mf_hmap_entry_t *e;
    size_t n = 0;

    pthread_mutex_lock(&mmc->rec_lock);
    all = calloc(mmc->rec.count + 1, sizeof(*all));
    if (all != NULL) {
        mf_hmap_iter_init(&mmc->rec, &it);
        while ((e = mf_hmap_next(&mmc->rec, &it)) != NULL) {
            const mmc_local_rec_t *r = e->value;

            all[n] = malloc(sizeof(*r) + r->key_len);
            if (all[n] == NULL) {
                break;
            }
            memcpy(all[n], r, sizeof(*r) + r->key_len);
            n++;
        }
    }
    pthread_mutex_unlock(&mmc->rec_lock);
    *n_p = n;
    return all;
}

/* One RESTORE of entries [from, to); forgets the refused ones. */
static mmc_status_t mmc_local_restore_batch(mmc_t *mmc, mmc_local_rec_t **all,
                                            size_t from, size_t to, bool last,
                                            uint64_t *kept_p)
{
    mmc_record_t req = {.flags = last ? MMC_RESTORE_LAST : 0};
    mmc_rec_entry_t *entries = NULL;
    mmc_status_list_t out;
    mf_net_resp_t resp;
    mmc_status_t status;
    mf_wbuf_t w;

    req.count = (uint32_t)(to - from);
    if (req.count > 0) {
        entries = calloc(req.count, sizeof(*entries));
        if (entries == NULL) {
            return MF_ERR_NOMEM;
        }
    }
    for (uint32_t i = 0; i < req.count; i++) {
        const mmc_local_rec_t *r = all[from + i];

        entries[i] = (mmc_rec_entry_t){
            .op = MMC_REC_ADD,
            .media = r->media,
            .offset = r->offset,
            .want = r->want,
            .size = r->size,
            .version = r->version,
            .key = {.data = r->key, .len = r->key_len},
        };
    }
    req.entries = entries;
    mf_wbuf_init(&w);
    mmc_restore_req_encode(&w, &req);
    free(entries);
    status = mmc_local_call(mmc, MMC_OP_RESTORE, &w, &resp);
    if (status != MF_OK) {
        return status;
    }
    status = mmc_status_list_decode(resp.body, resp.len, &out);
    mf_net_resp_free(&resp);
    if (status != MF_OK || out.count != req.count) {
        mmc_status_list_free(&out);
        return MF_ERR_PROTO;
    }
    pthread_mutex_lock(&mmc->rec_lock);
    for (uint32_t i = 0; i < out.count; i++) {
        const mmc_local_rec_t *r = all[from + i];

        if (out.status[i] == MMC_OK) {
            (*kept_p)++;
        } else {
            mmc_rec_entry_t gone = {
                .op = MMC_REC_DEL, .media = r->media, .offset = r->offset};

            mmc_local_rec_del_locked(mmc, r->media, r->offset, r->version);
            mmc_local_tier_record(mmc, &gone, false); /* refused */
        }
    }
    pthread_mutex_unlock(&mmc->rec_lock);
    mmc_status_list_free(&out);
    return MF_OK;
}

mmc_status_t mmc_local_record_restore(mmc_t *mmc)
{
    uint64_t start = mf_time_ms(), kept = 0;
    mmc_status_t status = MF_OK;
    mmc_local_rec_t **all;
    size_t n = 0, from = 0, to, bytes;

    all = mmc_local_record_snapshot(mmc, &n);
    if (all == NULL) {
        return MF_ERR_NOMEM;
    }
    do {
        for (to = from, bytes = 0;
             to < n && to - from < MMC_LOCAL_RESTORE_MAX_ENTRIES &&
             bytes < MMC_LOCAL_RESTORE_MAX_BYTES;
             to++) {
            bytes += 64 + all[to]->key_len;
        }
        status = mmc_local_restore_batch(mmc, all, from, to, to == n, &kept);
        from = to;
    } while (status == MF_OK && from < n);
    for (size_t i = 0; i < n; i++) {
        free(all[i]);
    }
    free(all);
    if (status == MF_OK) {
        mf_info("mmc-local: restored %" PRIu64 " of %zu replicas of rank %u "
                "in %" PRIu64 " ms",
                kept, n, mmc->rank, mf_time_ms() - start);
    }
    return status;
}
