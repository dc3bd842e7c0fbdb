/*
 * The SSD tier, the meta service's side (what moves, and when, is the
 * state's: meta_state_move.c).
 *
 * Moves the state started (demotions by an eviction pass, loads for a
 * read) go out after every request, pass and tick, one MOVE notify per
 * holder with all of its jobs; its MOVE_DONE reports end them.
 *
 * Requests that wait.  A GET or LEASE that names an object living on SSD
 * only is not answered at once: the state starts its load and the request
 * is deferred whole (its body kept, no lease taken for any of its keys),
 * then served again as if it had just arrived once no load it waits on
 * runs, which is looked at whenever a move ends, or at the latest after
 * repair_timeout_ms (then an object still on SSD answers MMC_ERR_BUSY).
 * A PUT_ALLOC that would have to evict (delete) to find room where a
 * demotion in flight will free enough waits the same way, so that a
 * writer faster than the SSD slows down to it instead of deleting what
 * the SSD would have kept.
 * A deferred request is served again at most MMC_META_DEFER_TRIES times.
 * Its connection closing drops it.
 */
#include "cache/meta/meta_int.h"

#define MMC_META_MOVE_JOBS   256u
#define MMC_META_DEFER_TRIES 4u

struct mmc_meta_deferred {
    mmc_meta_conn_t *mc;
    uint16_t opcode;
    uint64_t req_id;
    uint8_t *body;
    size_t len;
    uint64_t deadline_ms;
    uint32_t tries;
    mf_list_t link;      /* in meta->deferred */
    mf_list_t conn_link; /* in mc->deferred */
};

void mmc_meta_moves_send(mmc_meta_t *meta)
{
    mmc_state_move_job_t jobs[MMC_META_MOVE_JOBS];
    uint32_t n;
    bool first = true;

    while ((n = mmc_state_moves_take(meta->state, jobs, MMC_META_MOVE_JOBS)) >
           0) {
        if (first) {
            /* the DEL of whatever had a block before goes ahead of a
             * move into it: the holder forgets the old entry first */
            mmc_meta_records_send(meta, NULL, NULL);
            first = false;
        }
        for (uint32_t i = 0; i < n; i++) {
            mmc_move_t items[MMC_META_MOVE_JOBS];
            mmc_move_list_t list = {.count = 0, .items = items};
            mmc_state_owner_t *copier = jobs[i].copier;
            mmc_meta_conn_t *mc;
            mf_wbuf_t w;

            if (copier == NULL) {
                continue; /* sent with an earlier one */
            }
            for (uint32_t j = i; j < n; j++) {
                if (jobs[j].copier == copier) {
                    items[list.count++] = jobs[j].move;
                    jobs[j].copier = NULL;
                }
            }
            mc = mmc_state_owner_data(copier);
            mf_wbuf_init(&w);
            mmc_move_list_encode(&w, &list);
            if ((mf_wbuf_status(&w) != MF_OK) ||
                (mf_net_conn_notify(mc->conn, MMC_OP_MOVE, w.data, w.len) !=
                 MF_OK)) {
                /* given up at their timeout */
                mf_warn("meta: cannot send rank %" PRIu32 " %u moves",
                        mmc_state_owner_rank(copier), list.count);
            }
            mf_wbuf_free(&w);
        }
    }
}

void mmc_meta_handle_move_done(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                               const uint8_t *body, size_t len,
                               mmc_meta_reply_t *rep)
{
    mmc_commit_list_t done;

    rep->status = mmc_commit_list_decode(body, len, &done);
    if (rep->status != MF_OK) {
        return;
    }
    for (uint32_t i = 0; i < done.count; i++) {
        mmc_status_t st =
            mmc_state_move_done(meta->state, mc->owner, done.items[i].put_id,
                                (mmc_status_t)done.items[i].status);

        if (st != MMC_OK) {
            mf_debug("meta: a late or unknown move %" PRIu64 " from %s",
                     done.items[i].put_id, mc->name);
        }
    }
    mmc_commit_list_free(&done);
}

/* The keys a GET or LEASE names (decoded into keys), or false. */
static bool mmc_meta_read_keys(uint16_t opcode, const uint8_t *body, size_t len,
                               mmc_key_list_t *keys)
{
    uint32_t ttl_ms;

    if (opcode == MMC_OP_GET) {
        return mmc_key_list_decode(body, len, keys) == MF_OK;
    }
    return (opcode == MMC_OP_LEASE) &&
           (mmc_lease_req_decode(body, len, &ttl_ms, keys) == MF_OK);
}

/* Whether a PUT_ALLOC has an item that would evict where a demotion in
 * flight makes room soon. */
static bool mmc_meta_put_waits(mmc_meta_t *meta, const uint8_t *body,
                               size_t len)
{
    mmc_put_alloc_req_t req;
    bool wait = false;

    if (!mmc_state_demoting(meta->state) ||
        (mmc_put_alloc_req_decode(body, len, &req) != MF_OK)) {
        return false; /* refused when served */
    }
    for (uint32_t i = 0; !wait && (i < req.count); i++) {
        wait = mmc_state_room_coming(meta->state, req.media, req.items[i].size);
    }
    mmc_put_alloc_req_free(&req);
    return wait;
}

/* What a request waits on now: loads of the objects a read names (started
 * here), or room a put would otherwise make by deleting. */
static uint32_t mmc_meta_loading(mmc_meta_t *meta, uint16_t opcode,
                                 const uint8_t *body, size_t len)
{
    mmc_key_list_t keys;
    uint32_t n;

    if (opcode == MMC_OP_PUT_ALLOC) {
        return mmc_meta_put_waits(meta, body, len) ? 1 : 0;
    }
    if (!mmc_state_on_ssd(meta->state) ||
        !mmc_meta_read_keys(opcode, body, len, &keys)) {
        return 0; /* a malformed one is refused when served */
    }
    n = mmc_state_load_keys(meta->state, keys.keys, keys.count,
                            mmc_meta_now_ms());
    mmc_key_list_free(&keys);
    return n;
}

bool mmc_meta_defer(mmc_meta_t *meta, mmc_meta_conn_t *mc, uint16_t opcode,
                    uint64_t req_id, const uint8_t *body, size_t len)
{
    mmc_meta_deferred_t *d;

    if (((opcode != MMC_OP_GET) && (opcode != MMC_OP_LEASE) &&
         (opcode != MMC_OP_PUT_ALLOC)) ||
        (mmc_meta_loading(meta, opcode, body, len) == 0)) {
        return false;
    }
    d = calloc(1, sizeof(*d));
    if ((d == NULL) || ((len > 0) && ((d->body = malloc(len)) == NULL))) {
        mf_error("meta: out of memory deferring a %s; answered now",
                 mmc_op_name(opcode));
        free(d);
        return false;
    }
    memcpy(d->body, body, len);
    d->mc = mc;
    d->opcode = opcode;
    d->req_id = req_id;
    d->len = len;
    d->deadline_ms = mmc_meta_now_ms() + meta->cfg.repair_timeout_ms;
    d->tries = 1;
    mf_list_push_back(&meta->deferred, &d->link);
    mf_list_push_back(&mc->deferred, &d->conn_link);
    meta->stats.reads_deferred += (opcode != MMC_OP_PUT_ALLOC);
    meta->stats.puts_deferred += (opcode == MMC_OP_PUT_ALLOC);
    mmc_meta_moves_send(meta);
    return true;
}

static void mmc_meta_deferred_free(mmc_meta_deferred_t *d)
{
    mf_list_del(&d->link);
    mf_list_del(&d->conn_link);
    free(d->body);
    free(d);
}

void mmc_meta_conn_deferred_drop(mmc_meta_conn_t *mc)
{
    while (!mf_list_empty(&mc->deferred)) {
        mmc_meta_deferred_free(
            mf_container_of(mc->deferred.next, mmc_meta_deferred_t, conn_link));
    }
}

void mmc_meta_deferred_run(mmc_meta_t *meta)
{
    uint64_t ended = mmc_state_moves_ended(meta->state);
    uint64_t now = mmc_meta_now_ms();
    mf_list_t ready;
    mf_list_t *elem, *next;

    if (mf_list_empty(&meta->deferred)) {
        meta->moves_seen = ended;
        return;
    }
    if ((ended == meta->moves_seen) &&
        (mf_container_of(meta->deferred.next, mmc_meta_deferred_t, link)
             ->deadline_ms > now)) {
        return; /* nothing ended, nothing due */
    }
    meta->moves_seen = ended;
    mf_list_init(&ready);
    for (elem = meta->deferred.next; elem != &meta->deferred; elem = next) {
        mmc_meta_deferred_t *d =
            mf_container_of(elem, mmc_meta_deferred_t, link);

        next = elem->next;
        if ((d->deadline_ms > now) && (d->tries < MMC_META_DEFER_TRIES) &&
            (mmc_meta_loading(meta, d->opcode, d->body, d->len) > 0)) {
            continue;
        }
        mf_list_del(&d->link);
        mf_list_push_back(&ready, &d->link);
    }
    /* served after the walk: serving one may change the others */
    while (!mf_list_empty(&ready)) {
        mmc_meta_deferred_t *d =
            mf_container_of(ready.next, mmc_meta_deferred_t, link);
        mmc_meta_conn_t *mc = d->mc;
        uint16_t opcode = d->opcode;
        uint64_t req_id = d->req_id;
        uint8_t *body = d->body;
        size_t len = d->len;
        bool again = d->tries < MMC_META_DEFER_TRIES;

        d->tries++;
        mf_list_del(&d->link);
        mf_list_init(&d->link);
        mf_list_del(&d->conn_link);
        mf_list_init(&d->conn_link);
        if (again && mmc_meta_loading(meta, opcode, body, len) > 0) {
            /* loads again (evicted meanwhile): waits once more */
            mf_list_push_back(&meta->deferred, &d->link);
            mf_list_push_back(&mc->deferred, &d->conn_link);
            continue;
        }
        free(d);
        mmc_meta_serve(meta, mc, opcode, req_id, body, len, false);
        free(body);
    }
    mmc_meta_moves_send(meta);
}
