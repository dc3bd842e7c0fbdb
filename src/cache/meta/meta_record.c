/*
 * The meta service's side of the holders' records: sending what the
 * state queued for each holder, and holding back the replies that depend
 * on it (see meta_state_record.c for what the entries are).
 *
 * After every request, timer run and eviction pass, every queued batch is
 * sent to its holder as a RECORD notify, numbered per connection.  A
 * holder acknowledges with RECORD_ACK once it applied a batch.  A reply
 * is held while a holder it depends on has not acknowledged: the holders
 * that got a batch because of the request (its commits, removes,
 * evictions), and, for PUT_ALLOC, the holders of the segments it placed
 * replicas in, so that a putter never writes into space whose last owner
 * is still in a holder's record.  So once a put or remove returns OK,
 * every live holder's record says so.  The requester itself is never
 * waited for: its batches travel ahead of the reply on the same
 * connection, its client applies notifies in the order they came, and it
 * waits for them all to be applied before it registers with a meta
 * service again (mf_net_client_notes_wait), so they are in the record it
 * restores from.  Nor does it need to acknowledge them then: they go
 * flagged MMC_RECORD_ACK_LATER, and a holder acknowledges only batches
 * without the flag (RECORD_ACK is cumulative).  When a reply comes to
 * wait on such a batch (another requester's put placed in that holder's
 * segment, say), an empty batch without the flag asks for the
 * acknowledgement (mmc_meta_need_ask).  A holder that goes away releases
 * what waits on it (its record went with its segments); a requester that
 * goes away gets nothing.
 */
#include "cache/meta/meta_int.h"

/* A reply held for acknowledgements. */
struct mmc_meta_held {
    mmc_meta_conn_t *mc; /* the requester; NULL once it closed */
    uint64_t req_id;
    uint16_t opcode;
    uint32_t waits; /* acknowledgements still missing */
    mf_list_t link; /* in mc->held */
    mf_wbuf_t body;
};

/* What a held reply waits for on one holder. */
typedef struct mmc_meta_wait {
    uint64_t seq;
    mmc_meta_held_t *held;
} mmc_meta_wait_t;

/* A holder a reply depends on, and the batch it must acknowledge. */
typedef struct mmc_meta_need {
    mmc_meta_conn_t *holder;
    uint64_t seq;
} mmc_meta_need_t;

void mmc_meta_conn_records_init(mmc_meta_conn_t *mc)
{
    mf_vec_init(&mc->waiters, sizeof(mmc_meta_wait_t));
    mf_list_init(&mc->held);
    mmc_state_owner_set_data(mc->owner, mc);
}

/* Sends a held reply whose waits are over, or drops it. */
static void mmc_meta_held_done(mmc_meta_held_t *held)
{
    mf_status_t status;

    if (held->mc != NULL) {
        mf_list_del(&held->link);
        status = mf_net_conn_reply(held->mc->conn, held->req_id, held->opcode,
                                   MF_OK, held->body.data, held->body.len);
        if (status != MF_OK) {
            mf_debug("meta: held reply to %s failed: %s",
                     mf_net_conn_peer(held->mc->conn), mf_status_str(status));
        }
    }
    mf_wbuf_free(&held->body);
    free(held);
}

/* Releases the waits of holder mc up to seq (UINT64_MAX: all). */
static void mmc_meta_release_waits(mmc_meta_conn_t *mc, uint64_t seq)
{
    size_t done = 0;

    while (done < mc->waiters.count) {
        mmc_meta_wait_t *w = mf_vec_at(&mc->waiters, done);

        if (w->seq > seq) {
            break;
        }
        done++;
        if (--w->held->waits == 0) {
            mmc_meta_held_done(w->held);
        }
    }
    if (done > 0) {
        memmove(mc->waiters.data, mf_vec_at(&mc->waiters, done),
                (mc->waiters.count - done) * sizeof(mmc_meta_wait_t));
        mc->waiters.count -= done;
    }
}

void mmc_meta_conn_records_drop(mmc_meta_conn_t *mc)
{
    mmc_meta_release_waits(mc, UINT64_MAX);
}

void mmc_meta_conn_records_free(mmc_meta_conn_t *mc)
{
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&mc->held)) != NULL) {
        mf_container_of(elem, mmc_meta_held_t, link)->mc = NULL;
    }
    mmc_meta_release_waits(mc, UINT64_MAX);
    mf_vec_free(&mc->waiters);
}

/* Adds holder (seq) to the needs, unless it acknowledged seq. */
static void mmc_meta_need_add(mf_vec_t *needs, mmc_meta_conn_t *holder,
                              uint64_t seq)
{
    mmc_meta_need_t *n, add = {.holder = holder, .seq = seq};

    if (holder == NULL || seq <= holder->rec_acked) {
        return;
    }
    for (size_t i = 0; i < needs->count; i++) {
        n = mf_vec_at(needs, i);
        if (n->holder == holder) {
            n->seq = MF_MAX(n->seq, seq);
            return;
        }
    }
    if (mf_vec_push(needs, &add) == NULL) {
        mf_error("meta: out of memory; a reply will not wait for rank "
                 "%" PRIu32 "'s record",
                 mmc_state_owner_rank(holder->owner));
    }
}

/* Sends holder the RECORD body in w (freed); closes it on failure. */
static void mmc_meta_record_out(mmc_meta_t *meta, mmc_meta_conn_t *holder,
                                mf_wbuf_t *w)
{
    mf_status_t status = mf_wbuf_status(w);

    if (status == MF_OK) {
        status =
            mf_net_conn_notify(holder->conn, MMC_OP_RECORD, w->data, w->len);
    }
    if (status != MF_OK) {
        /* its record is wrong from here: drop it, as if it was lost */
        mf_error("meta: cannot send rank %" PRIu32 " its record (%s): "
                 "closing its connection",
                 mmc_state_owner_rank(holder->owner), mf_status_name(status));
        mf_net_conn_close(holder->conn);
    }
    mf_wbuf_free(w);
    meta->stats.records_sent++;
}

void mmc_meta_records_send(mmc_meta_t *meta, mf_vec_t *needs,
                           const mmc_meta_conn_t *requester)
{
    mmc_state_owner_t *owner;
    mmc_meta_conn_t *holder;
    uint64_t seq;
    mf_wbuf_t w;

    while ((owner = mmc_state_record_dirty(meta->state)) != NULL) {
        bool later;

        holder = mmc_state_owner_data(owner);
        later = holder == requester;
        mf_wbuf_init(&w);
        seq = mmc_state_record_take(meta->state, owner,
                                    later ? MMC_RECORD_ACK_LATER : 0, &w);
        if (!later) {
            holder->rec_asked = seq;
        }
        mmc_meta_record_out(meta, holder, &w);
        if (needs != NULL) {
            mmc_meta_need_add(needs, holder, seq);
        }
    }
}

/* A need on batches that went with ACK_LATER: asks for the
 * acknowledgement with an empty batch, which the need then waits for. */
static void mmc_meta_need_ask(mmc_meta_t *meta, mmc_meta_need_t *n)
{
    mf_wbuf_t w;

    if (n->seq <= n->holder->rec_asked) {
        return;
    }
    mf_wbuf_init(&w);
    n->seq = mmc_state_record_sync(n->holder->owner, &w);
    n->holder->rec_asked = n->seq;
    mmc_meta_record_out(meta, n->holder, &w);
}

bool mmc_meta_records_hold(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                           uint16_t opcode, uint64_t req_id,
                           const mmc_meta_reply_t *rep, mf_wbuf_t *body)
{
    mmc_meta_held_t *held;
    mmc_meta_conn_t *holder;
    mf_vec_t needs;
    bool ok = true;

    mf_vec_init(&needs, sizeof(mmc_meta_need_t));
    mmc_meta_records_send(meta, &needs, mc);
    if (opcode == MMC_OP_PUT_ALLOC) {
        /* the space may have been another object's a moment ago */
        for (uint32_t i = 0; i < rep->grants.count; i++) {
            const mmc_obj_result_t *item = &rep->grants.items[i];

            for (uint8_t r = 0; item->status == MMC_OK && r < item->nrep; r++) {
                mmc_state_owner_t *owner =
                    mmc_state_rank_holder(meta->state, item->reps[r].rank);

                holder = owner != NULL ? mmc_state_owner_data(owner) : NULL;
                mmc_meta_need_add(&needs, holder,
                                  owner != NULL ? mmc_state_record_seq(owner)
                                                : 0);
            }
        }
    }
    /* The requester's own batches went out ahead of this reply on its
     * connection, and its client applies them in order, before it
     * announces itself to another meta service: no need to wait. */
    for (size_t i = 0; i < needs.count;) {
        mmc_meta_need_t *n = mf_vec_at(&needs, i);

        if (n->holder == mc) {
            mf_vec_swap_remove(&needs, i);
        } else {
            mmc_meta_need_ask(meta, n);
            i++;
        }
    }
    if (needs.count == 0) {
        mf_vec_free(&needs);
        return false;
    }
    held = calloc(1, sizeof(*held));
    if (held == NULL) {
        mf_error("meta: out of memory holding a %s reply; sent at once",
                 mmc_op_name(opcode));
        mf_vec_free(&needs);
        return false;
    }
    held->mc = mc;
    held->req_id = req_id;
    held->opcode = opcode;
    held->body = *body;
    mf_wbuf_init(body);
    mf_list_push_back(&mc->held, &held->link);
    for (size_t i = 0; i < needs.count; i++) {
        mmc_meta_need_t *n = mf_vec_at(&needs, i);
        mmc_meta_wait_t add = {.seq = n->seq, .held = held};

        if (mf_vec_push(&n->holder->waiters, &add) == NULL) {
            ok = false; /* out of memory: do not wait for that one */
            continue;
        }
        held->waits++;
    }
    if (!ok) {
        mf_error("meta: out of memory waiting for records");
    }
    mf_vec_free(&needs);
    meta->stats.replies_held++;
    if (held->waits == 0) {
        mmc_meta_held_done(held);
    }
    return true;
}

void mmc_meta_handle_record_ack(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                const uint8_t *body, size_t len,
                                mmc_meta_reply_t *rep)
{
    uint64_t seq = 0;
    mf_rbuf_t r;

    (void)meta;
    mf_rbuf_init(&r, body, len);
    mf_rbuf_get_u64(&r, &seq);
    if (mf_rbuf_status(&r, true) != MF_OK ||
        seq > mmc_state_record_seq(mc->owner)) {
        rep->status = MF_ERR_PROTO;
        return;
    }
    if (seq > mc->rec_acked) {
        mc->rec_acked = seq;
        mmc_meta_release_waits(mc, seq);
    }
    rep->status = MF_OK;
}

void mmc_meta_handle_restore(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                             const uint8_t *body, size_t len,
                             mmc_meta_reply_t *rep)
{
    mmc_status_list_t out = {0};
    mmc_record_t req;

    rep->status = mmc_restore_req_decode(body, len, &req);
    if (rep->status != MF_OK) {
        return;
    }
    if (!mc->restoring) {
        rep->status = MF_ERR_STATE; /* REGISTER did not announce a record */
        mmc_record_free(&req);
        return;
    }
    out.count = req.count;
    out.status = req.count > 0 ? calloc(req.count, sizeof(*out.status)) : NULL;
    if (req.count > 0 && out.status == NULL) {
        rep->status = MF_ERR_NOMEM;
        mmc_record_free(&req);
        return;
    }
    for (uint32_t i = 0; i < req.count; i++) {
        out.status[i] =
            mmc_state_restore(meta->state, mc->owner, &req.entries[i]);
        rep->item_errors += out.status[i] != MMC_OK;
    }
    if (req.flags & MMC_RESTORE_LAST) {
        mmc_state_restore_end(meta->state, mc->owner);
        mc->restoring = false;
        meta->stats.holders_restored++;
        meta->restored_ms = mmc_meta_now_ms();
        mf_info("meta: rank %" PRIu32 " (%s) restored its record",
                mmc_state_owner_rank(mc->owner), mc->name);
    }
    mmc_status_list_encode(&rep->body, &out);
    free(out.status);
    mmc_record_free(&req);
}
