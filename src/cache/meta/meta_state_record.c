/*
 * The holders' records, from the meta service's side (meta_state.h).
 *
 * Every committed replica is in its holder's record: commit queues an ADD
 * for each replica's holder, and an object leaving the index (removed,
 * replaced, evicted, or dropped with its last replica) queues a DEL for
 * each replica still recorded, even while leases keep its space.  Entries
 * wait per holder, in order, in chunks of at most MMC_REC_MAX entries,
 * until the service takes them to send (mmc_state_record_take), numbered
 * 1, 2, ... per holder.  A holder dropped with its segments loses its
 * queue: its record went with them.
 *
 * Versions grow across restarts: a commit takes the larger of the last
 * version + 1 and the wall clock in microseconds, and restoring raises the
 * last version to every restored one, so an object put after a restart
 * is newer than any object a holder brings back from before it.
 *
 * Restoring: a holder that registered with a record from an earlier meta
 * service marks its segments restoring (no placement there) until its
 * last batch; each entry becomes a replica of its object again, at its
 * offset, unless a newer version of the key is known (the entry is
 * refused and the holder forgets it), the range is taken, or the rank
 * holds a replica of the object already.  A newer entry replaces the
 * indexed object, whose holders are told to forget it.
 */
#include "cache/meta/meta_state_int.h"

/* Bytes of entries per chunk (each chunk is one RECORD body). */
#define MMC_STATE_REC_CHUNK_BYTES (8u << 20)

uint64_t mmc_state_new_version(mmc_state_t *state)
{
    struct timespec ts;
    uint64_t now_us = 0;

    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    }
    state->last_version = MF_MAX(state->last_version + 1, now_us);
    return state->last_version;
}

static void mmc_state_rec_push(mmc_state_t *state, mmc_state_owner_t *owner,
                               const mmc_rec_entry_t *e)
{
    mmc_state_rec_chunk_t *chunk = NULL;

    if (owner->rec_out.count > 0) {
        chunk = mf_vec_at(&owner->rec_out, owner->rec_out.count - 1);
        if (chunk->count == MMC_REC_MAX ||
            chunk->w.len + mmc_rec_entry_wire_size(e) >
                MMC_STATE_REC_CHUNK_BYTES) {
            chunk = NULL;
        }
    }
    if (chunk == NULL) {
        chunk = mf_vec_push(&owner->rec_out, NULL);
        if (chunk == NULL) {
            mf_error("meta state: out of memory for a holder's record; rank "
                     "%" PRIu32 " will not recover all it holds",
                     mmc_state_owner_rank(owner));
            return;
        }
        mf_wbuf_init(&chunk->w);
    }
    mmc_rec_entry_encode(&chunk->w, e);
    chunk->count++;
    if (mf_list_empty(&owner->dirty_link)) {
        mf_list_push_back(&state->rec_dirty, &owner->dirty_link);
    }
}

void mmc_state_rec_add(mmc_state_t *state, mmc_state_rep_t *rep)
{
    const mmc_state_obj_t *obj = mmc_state_rep_obj(rep);
    mmc_rec_entry_t e = {
        .op = MMC_REC_ADD,
        .media = rep->seg->media,
        .offset = rep->offset,
        .want = obj->want,
        .size = obj->size,
        .version = obj->version,
        .key = {.data = mmc_state_obj_key(obj), .len = (uint32_t)obj->key_len},
    };

    mmc_state_rec_push(state, rep->seg->rank->owner, &e);
    rep->recorded = true;
}

void mmc_state_rec_del(mmc_state_t *state, mmc_state_rep_t *rep)
{
    mmc_rec_entry_t e = {
        .op = MMC_REC_DEL, .media = rep->seg->media, .offset = rep->offset};

    if (!rep->recorded) {
        return;
    }
    mmc_state_rec_push(state, rep->seg->rank->owner, &e);
    rep->recorded = false;
}

void mmc_state_rec_clear(mmc_state_t *state, mmc_state_owner_t *owner)
{
    (void)state;
    for (size_t i = 0; i < owner->rec_out.count; i++) {
        mf_wbuf_free(
            &((mmc_state_rec_chunk_t *)mf_vec_at(&owner->rec_out, i))->w);
    }
    owner->rec_out.count = 0;
    if (!mf_list_empty(&owner->dirty_link)) {
        mf_list_del(&owner->dirty_link);
        mf_list_init(&owner->dirty_link);
    }
}

/* ---- sending ---- */

void mmc_state_owner_set_data(mmc_state_owner_t *owner, void *data)
{
    owner->data = data;
}

void *mmc_state_owner_data(const mmc_state_owner_t *owner)
{
    return owner->data;
}

mmc_state_owner_t *mmc_state_rank_holder(const mmc_state_t *state,
                                         uint32_t rank)
{
    const mmc_state_rank_t *r = mmc_state_rank_at(state, rank);

    return r != NULL ? r->owner : NULL;
}

mmc_state_owner_t *mmc_state_record_dirty(const mmc_state_t *state)
{
    if (mf_list_empty(&state->rec_dirty)) {
        return NULL;
    }
    return mf_container_of(state->rec_dirty.next, mmc_state_owner_t,
                           dirty_link);
}

uint64_t mmc_state_record_take(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint32_t flags, mf_wbuf_t *w)
{
    mmc_state_rec_chunk_t *chunk;

    if (owner->rec_out.count == 0) {
        return 0;
    }
    chunk = mf_vec_at(&owner->rec_out, 0);
    mf_wbuf_put_u64(w, ++owner->rec_seq);
    mf_wbuf_put_u32(w, flags);
    mf_wbuf_put_u32(w, chunk->count);
    mf_wbuf_put_raw(w, chunk->w.data, chunk->w.len);
    if (chunk->w.failed) {
        w->failed = true;
    }
    mf_wbuf_free(&chunk->w);
    owner->rec_out.count--;
    memmove(chunk, (char *)chunk + sizeof(*chunk),
            owner->rec_out.count * sizeof(*chunk));
    if (owner->rec_out.count == 0) {
        mf_list_del(&owner->dirty_link);
        mf_list_init(&owner->dirty_link);
    }
    (void)state;
    return owner->rec_seq;
}

uint64_t mmc_state_record_sync(mmc_state_owner_t *owner, mf_wbuf_t *w)
{
    mf_wbuf_put_u64(w, ++owner->rec_seq);
    mf_wbuf_put_u32(w, 0); /* flags */
    mf_wbuf_put_u32(w, 0); /* entries */
    return owner->rec_seq;
}

uint64_t mmc_state_record_seq(const mmc_state_owner_t *owner)
{
    return owner->rec_seq;
}

/* ---- restoring ---- */

mf_status_t mmc_state_restore_begin(mmc_state_t *state,
                                    mmc_state_owner_t *owner)
{
    if (owner->rank == NULL) {
        return MF_ERR_STATE;
    }
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        if (owner->rank->segs[m] != NULL && !owner->rank->segs[m]->restoring) {
            owner->rank->segs[m]->restoring = true;
            state->restoring++;
        }
    }
    return MF_OK;
}

void mmc_state_restore_end(mmc_state_t *state, mmc_state_owner_t *owner)
{
    if (owner->rank == NULL) {
        return;
    }
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        mmc_state_seg_t *seg = owner->rank->segs[m];

        if (seg != NULL && seg->restoring) {
            seg->restoring = false;
            state->restoring--;
            mmc_state_seg_unstick(state, seg);
        }
    }
}

/* Links rep of obj at offset of seg, recorded and an eviction candidate
 * if obj is linked. */
static void mmc_state_restore_rep(mmc_state_t *state, mmc_state_obj_t *obj,
                                  mmc_state_seg_t *seg, uint64_t offset)
{
    mmc_state_rep_t *rep = NULL;

    for (int i = 0; i < obj->nslots && rep == NULL; i++) {
        if (mmc_state_obj_reps(obj)[i].seg == NULL) {
            rep = &mmc_state_obj_reps(obj)[i];
        }
    }
    rep->seg = seg;
    rep->offset = offset;
    rep->recorded = true;
    mf_list_push_back(&seg->reps, &rep->link);
    seg->nreps++;
    seg->used += mmc_state_round(state, obj->size);
    mmc_state_heap_update(state, seg);
    obj->nrep++;
    if (obj->linked) {
        mmc_state_lru_add(state, rep, false); /* held before */
    }
    state->counters.restored_replicas++;
    mmc_state_under_update(state, obj);
}

mmc_status_t mmc_state_restore(mmc_state_t *state, mmc_state_owner_t *owner,
                               const mmc_rec_entry_t *e)
{
    mmc_state_seg_t *seg;
    mmc_state_obj_t *obj, *old;
    void *replaced = NULL;
    uint64_t len;

    if (owner->rank == NULL || e->op != MMC_REC_ADD ||
        e->media >= MMC_STATE_NMEDIA || e->size == 0 || e->want == 0 ||
        e->want > MMC_MAX_REPLICAS || !mmc_key_valid(e->key.data, e->key.len) ||
        (seg = owner->rank->segs[e->media]) == NULL ||
        e->size > seg->capacity || e->offset >= seg->capacity ||
        e->offset % state->params.alloc_align != 0 ||
        mmc_state_round(state, e->size) > seg->capacity - e->offset) {
        state->counters.restore_refused++;
        return MF_ERR_INVALID;
    }
    len = mmc_state_round(state, e->size);
    old = mmc_state_index_get(&state->index, e->key.data, e->key.len);
    if (old != NULL && old->version == e->version && old->size == e->size) {
        for (int i = 0; i < old->nslots; i++) {
            const mmc_state_rep_t *rep = &mmc_state_obj_reps(old)[i];

            if ((rep->seg == seg) && (rep->offset == e->offset) &&
                !rep->filling) {
                return MMC_OK; /* restored already (a restore sent twice):
                                  the holder keeps it */
            }
        }
    }
    if (old != NULL && (old->version > e->version ||
                        (old->version == e->version &&
                         (old->size != e->size || old->nrep == old->nslots)))) {
        state->counters.restore_refused++;
        return MMC_ERR_EXISTS; /* a newer version is known */
    }
    if (old != NULL && old->version == e->version) {
        bool slot = false;

        for (int i = 0; i < old->nslots; i++) {
            if (mmc_state_obj_reps(old)[i].seg != NULL &&
                mmc_state_obj_reps(old)[i].seg->rank == owner->rank) {
                state->counters.restore_refused++;
                return MMC_ERR_EXISTS; /* one replica per rank */
            }
            slot |= mmc_state_obj_reps(old)[i].seg == NULL;
        }
        if (!slot) { /* a repair holds the last slot */
            state->counters.restore_refused++;
            return MMC_ERR_EXISTS;
        }
    }
    if (mmc_alloc_alloc_at(seg->alloc, e->offset, len) != MF_OK) {
        state->counters.restore_refused++;
        return MMC_ERR_EXISTS; /* the range holds another replica */
    }
    state->last_version = MF_MAX(state->last_version, e->version);
    if (old != NULL && old->version == e->version) {
        mmc_state_restore_rep(state, old, seg, e->offset);
        return MMC_OK;
    }

    obj = mmc_state_obj_new(e->key.data, e->key.len, e->want);
    if (obj == NULL || !mmc_state_index_add(&state->index, obj)) {
        mf_error("meta state: out of memory restoring an object");
        free(obj);
        (void)mmc_alloc_free(seg->alloc, e->offset, len);
        return MF_ERR_NOMEM;
    }
    replaced = old; /* an older version, out of the index */
    if (replaced != NULL) {
        mmc_state_index_del(&state->index, replaced);
    }
    obj->size = e->size;
    obj->want = e->want;
    obj->version = e->version;
    if (replaced != NULL) {
        mmc_state_obj_detach(state, replaced); /* older: its holders forget */
    }
    obj->linked = true;
    state->counters.objects++;
    state->counters.object_bytes += obj->size;
    state->counters.restored++;
    mmc_state_restore_rep(state, obj, seg, e->offset);
    return MMC_OK;
}
