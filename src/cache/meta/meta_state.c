/*
 * State machine of the MemCache meta service (see meta_state.h).
 *
 * Objects.  Every replica set, pending or committed, is an object
 * (mmc_state_obj_t): its size and the replicas its put asked for, each a
 * block of a segment's allocator.  A pending object has a put (obj->put)
 * and sits in the pending map under its key; committing it moves it into
 * the index, so replicas never move.  An object leaves the index when it is
 * removed, replaced or loses its last replica; it is freed, with its space,
 * once it is out of the index and holds no lease (unlinked objects with
 * leases wait on state->unlinked).
 *
 * Segments.  A segment (rank, media) owns an allocator and a list of the
 * replicas placed in it, so dropping a segment walks only its replicas.
 * seg->used is the sum of the rounded sizes of those replicas and always
 * equals the allocator's used bytes (mmc_state_check verifies it).
 *
 * Time.  Puts get deadlines now + a constant and the clock never goes
 * back, so appending to a FIFO keeps it sorted by deadline: expiry pops
 * from the front, O(1) per expired item.  Leases do the same with one FIFO
 * per duration (the default one, and the few others callers ask for:
 * mmc_state_lease_queue), and one kept sorted by insertion for durations
 * past those.
 *
 * Ids.  Put and lease ids come from one 64-bit counter that starts at a
 * random value below 2^62 and only grows: an id is never reused.
 *
 * Damage.  A committed object counts (obj->damage) the replicas it lost
 * with their segments; a lease keeps the count it was granted at.  The
 * space of a dropped segment may be handed out again once its rank comes
 * back, so a lease whose object lost any replica meanwhile is released as
 * expired: its reader cannot know whether the bytes it read were still
 * the object's.  Conservative on purpose.
 *
 * Hosts.  Host ids are interned to small indexes (state->hosts) with a
 * reference per registered rank on that host; an id nobody uses is freed
 * and its index goes on a free list for the next new id, so the table
 * never outgrows the ranks registered at once.  Clients compare host_idx
 * only among live members.
 *
 * Eviction (meta_state_evict.c): each segment keeps its candidates,
 * the replicas of committed, linked objects, on the queues of the pool's
 * policy; commit adds, GET touches, unlink and free take them off.
 *
 * Invariants: a key is at most once in the index and at most once in the
 * pending map; an owner's rank, puts and leases are on its lists; every
 * replica is on exactly one segment's list, and on one of that segment's
 * queues exactly when its object is committed and linked.
 */
#include "cache/meta/meta_state_int.h"

/* ---- helpers ---- */

uint64_t mmc_state_round(const mmc_state_t *state, uint64_t size)
{
    return MF_ALIGN_UP(size, state->params.alloc_align);
}

static uint64_t mmc_state_new_id(mmc_state_t *state)
{
    return state->next_id++;
}

uint64_t mmc_state_next_id(mmc_state_t *state)
{
    return mmc_state_new_id(state);
}

static uint64_t mmc_state_seed_id(void)
{
    uint64_t seed = 0;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(seed)) {
        seed = mf_time_ns() ^ ((uint64_t)time(NULL) << 20);
    }
    /* Below 2^62, never 0: room to count up for ever. */
    return (seed & ((1ull << 62) - 1)) | 1u;
}

mmc_state_rank_t *mmc_state_rank_at(const mmc_state_t *state, uint32_t rank)
{
    if (rank >= state->params.max_ranks) {
        return NULL;
    }
    return &state->ranks[rank];
}

uint64_t mmc_state_rank_free(const mmc_state_rank_t *rank, uint8_t media)
{
    const mmc_state_seg_t *seg = rank->segs[media];

    return (seg != NULL) ? seg->capacity - seg->used : 0;
}

static void mmc_state_fill_result(const mmc_state_t *state,
                                  const mmc_state_obj_t *obj, uint64_t id,
                                  mmc_obj_result_t *res)
{
    uint8_t n = 0;

    memset(res, 0, sizeof(*res));
    res->status = MMC_OK;
    res->id = id;
    res->size = obj->size;
    for (int i = 0; i < obj->nslots; i++) {
        const mmc_state_rep_t *rep = &mmc_state_obj_reps(obj)[i];
        if (rep->seg == NULL || rep->filling) {
            continue;
        }
        res->reps[n].rank = rep->seg->rank->rank;
        res->reps[n].host_idx = rep->seg->rank->host_idx;
        res->reps[n].media = rep->seg->media;
        res->reps[n].gva = rep->seg->gva + rep->offset;
        n++;
    }
    res->nrep = n;
    (void)state;
}

/* ---- replicas and objects ---- */

/* Takes the replica out of its segment; frees its space unless the segment
 * is being dropped (free_space false). */
void mmc_state_rep_remove(mmc_state_t *state, mmc_state_rep_t *rep,
                          bool free_space)
{
    mmc_state_seg_t *seg = rep->seg;
    uint64_t len = mmc_state_round(state, mmc_state_rep_obj(rep)->size);

    mmc_state_lru_del(state, rep);
    mf_list_del(&rep->link);
    seg->nreps--;
    seg->used -= len;
    mmc_state_heap_update(state, seg);
    if (free_space) {
        (void)mmc_alloc_free(seg->alloc, rep->offset, len);
    }
    rep->seg = NULL;
    if (!rep->filling) {
        mmc_state_rep_obj(rep)->nrep--;
    }
    rep->filling = false;
}

mmc_state_obj_t *mmc_state_obj_new(const char *key, size_t key_len,
                                   uint8_t nslots)
{
    /* the slots a put asked for, not MMC_MAX_REPLICAS of them: an index
     * of millions of one-replica objects stays small */
    size_t key_off =
        MMC_STATE_OBJ_REPS_OFF + (size_t)nslots * sizeof(mmc_state_rep_t);
    mmc_state_obj_t *obj = calloc(1, key_off + key_len + 1);

    if (obj == NULL) {
        return NULL;
    }
    obj->nslots = nslots; /* places the key (mmc_state_obj_key) */
    for (uint8_t i = 0; i < nslots; i++) {
        mmc_state_obj_reps(obj)[i].slot = i; /* how a slot finds obj */
    }
    obj->key_len = (uint32_t)key_len; /* checked by the protocol */
    memcpy(mmc_state_obj_key(obj), key, key_len);
    return obj;
}

static void mmc_state_obj_free(mmc_state_t *state, mmc_state_obj_t *obj)
{
    for (int i = 0; i < obj->nslots; i++) {
        if (mmc_state_obj_reps(obj)[i].seg != NULL) {
            mmc_state_rep_remove(state, &mmc_state_obj_reps(obj)[i], true);
        }
    }
    if (obj->unlinked) {
        mf_list_del(&obj->list_link);
        state->counters.unlinked--;
    }
    obj->linked = false;
    mmc_state_under_update(state, obj);
    free(obj);
}

/* Accounts for a committed object that left the index (its holders
 * forget it now, whenever its space is freed); frees it unless leased. */
void mmc_state_obj_detach(mmc_state_t *state, mmc_state_obj_t *obj)
{
    for (int i = 0; i < obj->nslots; i++) {
        if (mmc_state_obj_reps(obj)[i].seg != NULL) {
            mmc_state_lru_del(state, &mmc_state_obj_reps(obj)[i]);
            mmc_state_rec_del(state, &mmc_state_obj_reps(obj)[i]);
        }
    }
    obj->linked = false;
    mmc_state_under_update(state, obj);
    state->counters.objects--;
    state->counters.object_bytes -= obj->size;
    if (obj->nleases == 0) {
        mmc_state_obj_free(state, obj);
        return;
    }
    obj->unlinked = true;
    mf_list_push_back(&state->unlinked, &obj->list_link);
    state->counters.unlinked++;
}

/* Takes a committed object out of the index; frees it unless leased. */
void mmc_state_obj_unlink(mmc_state_t *state, mmc_state_obj_t *obj)
{
    mmc_state_index_del(&state->index, obj);
    mmc_state_obj_detach(state, obj);
}

/* ---- leases ---- */

static void mmc_state_lease_drop(mmc_state_t *state, mmc_state_lease_t *lease)
{
    mmc_state_obj_t *obj = lease->obj;

    (void)mf_hmap_remove(&state->leases, &lease->id, sizeof(lease->id));
    mf_list_del(&lease->owner_link);
    mf_list_del(&lease->time_link);
    lease->owner->nleases--;
    state->counters.leases--;
    free(lease);
    mmc_state_obj_unhold(state, obj);
}

void mmc_state_obj_unhold(mmc_state_t *state, mmc_state_obj_t *obj)
{
    obj->nleases--;
    if ((obj->nleases == 0) && !obj->linked) {
        mmc_state_obj_free(state, obj);
        return;
    }
    if (obj->nleases == 0) { /* a candidate again */
        for (int i = 0; i < obj->nslots; i++) {
            if (mmc_state_obj_reps(obj)[i].seg != NULL &&
                !mmc_state_obj_reps(obj)[i].filling) {
                mmc_state_seg_unstick(state, mmc_state_obj_reps(obj)[i].seg);
            }
        }
    }
}

/* ---- puts ---- */

/* Forgets the put (its object is the caller's). */
static void mmc_state_put_forget(mmc_state_t *state, mmc_state_put_t *put)
{
    mmc_state_obj_t *obj = put->obj;

    (void)mf_hmap_remove(&state->puts, &put->id, sizeof(put->id));
    (void)mf_hmap_remove(&state->pending, mmc_state_obj_key(obj), obj->key_len);
    mf_list_del(&put->owner_link);
    mf_list_del(&put->time_link);
    state->counters.pending_puts--;
    obj->put = NULL;
    free(put);
}

static void mmc_state_put_abort(mmc_state_t *state, mmc_state_put_t *put)
{
    mmc_state_obj_t *obj = put->obj;

    mmc_state_put_forget(state, put);
    mmc_state_obj_free(state, obj);
    state->counters.puts_aborted++;
}

/* ---- puts ---- */

mmc_status_t mmc_state_put_alloc(mmc_state_t *state, mmc_state_owner_t *owner,
                                 const char *key, size_t key_len, uint64_t size,
                                 const mmc_state_put_opts_t *opts,
                                 uint64_t now_ms, mmc_obj_result_t *res)
{
    mmc_state_place_t pl;
    mmc_state_obj_t *obj;
    mmc_state_put_t *put;
    mmc_status_t status;
    uint32_t own;

    memset(res, 0, sizeof(*res));
    if (!mmc_key_valid(key, key_len) || (size == 0) || (opts->replicas == 0) ||
        (opts->replicas > MMC_MAX_REPLICAS) ||
        (opts->npref > MMC_MAX_REPLICAS) || (opts->media > MMC_MEDIA_HBM) ||
        (size > UINT64_MAX - state->params.alloc_align)) {
        status = MF_ERR_INVALID;
        goto out;
    }
    if (mf_hmap_get(&state->pending, key, key_len) != NULL) {
        status =
            (opts->flags & MMC_PUT_REPLACE) ? MMC_ERR_BUSY : MMC_ERR_EXISTS;
        goto out;
    }
    if (!(opts->flags & MMC_PUT_REPLACE) &&
        (mmc_state_index_get(&state->index, key, key_len) != NULL)) {
        status = MMC_ERR_EXISTS;
        goto out;
    }

    memset(&pl, 0, sizeof(pl));
    pl.len = mmc_state_round(state, size);
    own = mmc_state_owner_rank(owner);
    mmc_state_place(state, &pl, opts->replicas, own, opts);
    if ((pl.error == MF_OK) && (pl.n < opts->replicas) &&
        (state->params.evict_max_per_put > 0)) {
        /* no room: evict within the bound, then try once more */
        mmc_state_place_rollback(&pl);
        if (mmc_state_put_make_room(state, pl.len, opts->replicas, own, opts)) {
            mmc_state_place(state, &pl, opts->replicas, own, opts);
        }
    }
    if (pl.error != MF_OK) {
        mmc_state_place_rollback(&pl);
        status = pl.error;
        goto out;
    }
    if (pl.n < opts->replicas) {
        mmc_state_place_rollback(&pl);
        status = MMC_ERR_NO_SPACE;
        goto out;
    }

    obj = mmc_state_obj_new(key, key_len, (uint8_t)opts->replicas);
    put = calloc(1, sizeof(*put));
    if ((obj == NULL) || (put == NULL)) {
        goto err_free;
    }
    obj->size = size;
    obj->want = (uint8_t)opts->replicas;
    obj->put = put;
    put->id = mmc_state_new_id(state);
    put->flags = opts->flags;
    put->owner = owner;
    put->obj = obj;
    put->deadline_ms = now_ms + state->params.put_timeout_ms;
    if (mf_hmap_put(&state->puts, &put->id, sizeof(put->id), put, NULL) !=
        MF_OK) {
        goto err_free;
    }
    if (mf_hmap_put(&state->pending, mmc_state_obj_key(obj), key_len, put,
                    NULL) != MF_OK) {
        (void)mf_hmap_remove(&state->puts, &put->id, sizeof(put->id));
        goto err_free;
    }
    for (uint32_t i = 0; i < pl.n; i++) {
        mmc_state_rep_t *rep = &mmc_state_obj_reps(obj)[i];

        rep->seg = pl.segs[i];
        rep->offset = pl.offsets[i];
        mf_list_push_back(&pl.segs[i]->reps, &rep->link);
        pl.segs[i]->nreps++;
        pl.segs[i]->used += pl.len;
        mmc_state_heap_update(state, pl.segs[i]);
        mmc_state_seg_note(state, pl.segs[i]);
    }
    obj->nrep = pl.n;
    mf_list_push_back(&owner->puts, &put->owner_link);
    mf_list_push_back(&state->put_fifo, &put->time_link);
    state->counters.pending_puts++;
    mmc_state_fill_result(state, obj, put->id, res);
    return MMC_OK;

err_free:
    mf_error("meta state: out of memory for a put");
    free(put);
    free(obj);
    mmc_state_place_rollback(&pl);
    status = MF_ERR_NOMEM;
out:
    res->status = status;
    return status;
}

static mmc_state_put_t *mmc_state_put_find(const mmc_state_t *state,
                                           const mmc_state_owner_t *owner,
                                           uint64_t put_id)
{
    mmc_state_put_t *put = mf_hmap_get(&state->puts, &put_id, sizeof(put_id));

    return ((put != NULL) && (put->owner == owner)) ? put : NULL;
}

mmc_status_t mmc_state_put_commit(mmc_state_t *state, mmc_state_owner_t *owner,
                                  uint64_t put_id, mmc_status_t status)
{
    mmc_state_put_t *put = mmc_state_put_find(state, owner, put_id);
    mmc_state_obj_t *obj;
    void *old = NULL;
    bool fresh;

    if (put == NULL) {
        return MMC_ERR_ABORTED;
    }
    obj = put->obj;
    if (status != MMC_OK) {
        mmc_state_put_abort(state, put);
        return MMC_OK;
    }
    if (obj->nrep == 0) { /* cannot stay pending without replicas */
        mmc_state_put_abort(state, put);
        return MMC_ERR_ABORTED;
    }
    /* Replaces the old version in place: nothing to undo on failure. */
    old = mmc_state_index_get(&state->index, mmc_state_obj_key(obj),
                              obj->key_len);
    if (old != NULL) {
        mmc_state_index_del(&state->index, old);
    }
    if (!mmc_state_index_add(&state->index, obj)) {
        if (old != NULL) {
            (void)mmc_state_index_add(&state->index, old); /* it had room */
        }
        mf_error("meta state: out of memory committing a put");
        mmc_state_put_abort(state, put);
        return MF_ERR_NOMEM;
    }
    if (old != NULL) {
        mmc_state_obj_detach(state, old);
    }
    mmc_state_put_forget(state, put);
    obj->linked = true;
    obj->version = mmc_state_new_version(state);
    fresh = mmc_state_evict_fresh(state, obj);
    for (int i = 0; i < obj->nslots; i++) {
        if (mmc_state_obj_reps(obj)[i].seg != NULL) {
            mmc_state_lru_add(state, &mmc_state_obj_reps(obj)[i], fresh);
            mmc_state_rec_add(state, &mmc_state_obj_reps(obj)[i]);
        }
    }
    state->counters.objects++;
    state->counters.object_bytes += obj->size;
    state->counters.puts_committed++;
    return MMC_OK;
}

/* ---- hosts ---- */

mmc_state_host_t *mmc_state_host_at(const mmc_state_t *state, uint32_t host_idx)
{
    return mf_vec_at(&state->hosts, host_idx);
}

/* Drops a registered rank's reference; frees the id at 0 and puts the slot
 * on the free list. */
void mmc_state_host_unref(mmc_state_t *state, uint32_t host_idx)
{
    mmc_state_host_t *h = mmc_state_host_at(state, host_idx);

    if (--h->refs > 0) {
        return;
    }
    (void)mf_hmap_remove(&state->host_map, h->id, strlen(h->id));
    free(h->id);
    h->id = NULL;
    h->next_free = state->free_host;
    state->free_host = host_idx + 1;
    state->counters.hosts--;
}

/* ---- segments ---- */

static void mmc_state_seg_drop(mmc_state_t *state, mmc_state_seg_t *seg)
{
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&seg->reps)) != NULL ||
           (elem = mf_list_pop_front(&seg->lru)) != NULL ||
           (elem = mf_list_pop_front(&seg->small)) != NULL) {
        mmc_state_rep_t *rep = mf_container_of(elem, mmc_state_rep_t, link);
        mmc_state_obj_t *obj = mmc_state_rep_obj(rep);

        mf_list_init(&rep->link); /* popped: rep_remove deletes it again */
        if (rep->filling) {
            /* a repair's destination: the repair fails when it reports */
            mmc_state_rep_remove(state, rep, false);
            continue;
        }
        mmc_state_rep_remove(state, rep, false);
        if (obj->put != NULL) {
            if (obj->nrep == 0) {
                mmc_state_put_abort(state, obj->put);
            }
            continue;
        }
        state->counters.replicas_lost++;
        obj->damage++; /* its leases can no longer vouch for the bytes */
        if ((obj->nrep == 0) && obj->linked) {
            mmc_state_obj_unlink(state, obj);
        } else {
            mmc_state_under_update(state, obj);
        }
        /* An unlinked object keeps its last lease holders waiting; it is
         * freed when they release. */
    }
    if (seg->restoring) {
        state->restoring--;
    }
    mmc_alloc_destroy(seg->alloc);
    mmc_state_heap_del(state, seg);
    seg->rank->segs[seg->media] = NULL;
    state->counters.segs_dropped++;
    free(seg);
}

/* Drops the rank's segments and frees the rank for another owner. */
static void mmc_state_rank_drop(mmc_state_t *state, mmc_state_rank_t *rank)
{
    bool member = false;

    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        if (rank->segs[m] != NULL) {
            member = true;
            mmc_state_seg_drop(state, rank->segs[m]);
        }
    }
    if (member) {
        mf_list_del(&rank->member_link);
        state->counters.members--;
    }
    rank->owner->rank = NULL;
    rank->owner = NULL;
    rank->name[0] = '\0';
    state->counters.registered--;
    mmc_state_host_unref(state, rank->host_idx);
}

/* ---- create / destroy ---- */

mf_status_t mmc_state_create(const mmc_state_params_t *params,
                             mmc_state_t **state_p)
{
    mmc_state_t *state;

    if ((params->max_ranks == 0) || (params->max_segment_size == 0) ||
        ((params->max_hbm_segment_size != 0) && (params->device_base == 0)) ||
        (params->alloc_align == 0) ||
        ((params->alloc_align & (params->alloc_align - 1)) != 0) ||
        (params->evict_high_pct > 100) ||
        ((params->evict_high_pct > 0) &&
         (params->evict_low_pct >= params->evict_high_pct)) ||
        (params->evict_policy > MMC_EVICT_S3FIFO) ||
        (params->evict_small_pct > 90)) {
        mf_error("meta state: bad parameters (max_ranks %" PRIu32
                 ", max_segment_size %" PRIu64 ", max_hbm_segment_size %" PRIu64
                 ", device_base 0x%" PRIx64 ", alloc_align %" PRIu64
                 ", evict_high_pct %" PRIu32 ", evict_low_pct %" PRIu32
                 ", evict_policy %" PRIu32 ", evict_small_pct %" PRIu32 ")",
                 params->max_ranks, params->max_segment_size,
                 params->max_hbm_segment_size, params->device_base,
                 params->alloc_align, params->evict_high_pct,
                 params->evict_low_pct, params->evict_policy,
                 params->evict_small_pct);
        return MF_ERR_INVALID;
    }
    state = calloc(1, sizeof(*state));
    if (state == NULL) {
        mf_error("meta state: out of memory");
        return MF_ERR_NOMEM;
    }
    state->ranks = calloc(params->max_ranks, sizeof(*state->ranks));
    if (state->ranks == NULL) {
        mf_error("meta state: out of memory for %" PRIu32 " ranks",
                 params->max_ranks);
        free(state);
        return MF_ERR_NOMEM;
    }
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        state->place[m].segs =
            calloc(params->max_ranks, sizeof(*state->place[m].segs));
        if (state->place[m].segs == NULL) {
            mf_error("meta state: out of memory for %" PRIu32 " ranks",
                     params->max_ranks);
            free(state->place[0].segs);
            free(state->ranks);
            free(state);
            return MF_ERR_NOMEM;
        }
    }
    state->params = *params;
    if (state->params.max_owner_leases == 0) {
        state->params.max_owner_leases = MMC_META_MAX_LEASES_PER_OWNER;
    }
    if (state->params.evict_small_pct == 0) {
        state->params.evict_small_pct = 10;
    }
    state->next_id = mmc_state_seed_id();
    for (uint32_t r = 0; r < params->max_ranks; r++) {
        state->ranks[r].rank = r;
        mf_list_init(&state->ranks[r].member_link);
    }
    mf_list_init(&state->members);
    mf_list_init(&state->moves_out);
    mf_vec_init(&state->hosts, sizeof(mmc_state_host_t));
    mf_hmap_init(&state->host_map);
    mmc_state_index_init(&state->index);
    mf_hmap_init(&state->pending);
    mf_hmap_init(&state->puts);
    mf_hmap_init(&state->leases);
    mf_list_init(&state->put_fifo);
    for (int q = 0; q < MMC_STATE_LEASE_QUEUES; q++) {
        mf_list_init(&state->lease_queues[q].fifo);
    }
    state->lease_queues[0].ttl_ms = state->params.lease_ms;
    mf_list_init(&state->unlinked);
    mf_list_init(&state->owners);
    mf_list_init(&state->rec_dirty);
    mf_list_init(&state->under);
    mf_list_init(&state->repairs);
    mf_hmap_init(&state->repair_ids);
    *state_p = state;
    return MF_OK;
}

void mmc_state_destroy(mmc_state_t *state)
{
    mmc_state_obj_t *obj, *next;
    mf_list_t *elem;
    size_t b = 0;

    if (state == NULL) {
        return;
    }
    mmc_state_repair_free_all(state);
    while ((elem = state->owners.next) != &state->owners) {
        mmc_state_owner_destroy(state,
                                mf_container_of(elem, mmc_state_owner_t, link));
    }
    /* Owners held every put, lease and segment: what is left are
     * committed objects without replicas' segments. */
    for (obj = mmc_state_index_next(&state->index, NULL, &b); obj != NULL;
         obj = next) {
        next = mmc_state_index_next(&state->index, obj, &b);
        free(obj);
    }
    for (size_t i = 0; i < state->hosts.count; i++) {
        free(mmc_state_host_at(state, (uint32_t)i)->id);
    }
    mf_vec_free(&state->hosts);
    mf_hmap_free(&state->host_map);
    mmc_state_index_free(&state->index);
    mf_hmap_free(&state->pending);
    mf_hmap_free(&state->puts);
    mf_hmap_free(&state->leases);
    mf_hmap_free(&state->repair_ids);
    mmc_state_ghost_free(state);
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        free(state->place[m].segs);
    }
    free(state->ranks);
    free(state);
}

void mmc_state_get_counters(const mmc_state_t *state,
                            mmc_state_counters_t *counters)
{
    *counters = state->counters;
}

/* ---- owners ---- */

mf_status_t mmc_state_owner_create(mmc_state_t *state,
                                   mmc_state_owner_t **owner_p)
{
    mmc_state_owner_t *owner = calloc(1, sizeof(*owner));

    if (owner == NULL) {
        mf_error("meta state: out of memory for an owner");
        return MF_ERR_NOMEM;
    }
    mf_list_init(&owner->puts);
    mf_list_init(&owner->leases);
    mf_list_init(&owner->dirty_link);
    mf_vec_init(&owner->rec_out, sizeof(mmc_state_rec_chunk_t));
    mf_list_push_back(&state->owners, &owner->link);
    *owner_p = owner;
    return MF_OK;
}

void mmc_state_owner_reset(mmc_state_t *state, mmc_state_owner_t *owner)
{
    mf_list_t *elem;

    while ((elem = owner->puts.next) != &owner->puts) {
        mmc_state_put_abort(state,
                            mf_container_of(elem, mmc_state_put_t, owner_link));
    }
    while ((elem = owner->leases.next) != &owner->leases) {
        mmc_state_lease_drop(
            state, mf_container_of(elem, mmc_state_lease_t, owner_link));
    }
    mmc_state_repair_owner_gone(state, owner); /* the copier goes */
    if (owner->rank != NULL) {
        mmc_state_rank_drop(state, owner->rank);
    }
    mmc_state_rec_clear(state, owner); /* its record went with its segments */
}

void mmc_state_owner_destroy(mmc_state_t *state, mmc_state_owner_t *owner)
{
    if (owner == NULL) {
        return;
    }
    mmc_state_owner_reset(state, owner);
    mf_list_del(&owner->link);
    mf_vec_free(&owner->rec_out);
    free(owner);
}

uint32_t mmc_state_owner_rank(const mmc_state_owner_t *owner)
{
    return (owner->rank != NULL) ? owner->rank->rank : MMC_STATE_NO_RANK;
}

/* ---- reads ---- */

/* Queues lease (its expiry_ms set, ttl_ms long) by expiry. */
static void mmc_state_lease_queue(mmc_state_t *state, mmc_state_lease_t *lease,
                                  uint32_t ttl_ms)
{
    mmc_state_lease_queue_t *q = NULL, *last;
    mf_list_t *pos;

    for (int i = 0; i < MMC_STATE_LEASE_QUEUES - 1 && q == NULL; i++) {
        if (state->lease_queues[i].ttl_ms == ttl_ms) {
            q = &state->lease_queues[i];
        }
    }
    for (int i = 1; i < MMC_STATE_LEASE_QUEUES - 1 && q == NULL; i++) {
        if (mf_list_empty(&state->lease_queues[i].fifo)) {
            q = &state->lease_queues[i];
            q->ttl_ms = ttl_ms;
        }
    }
    if (q != NULL) {
        mf_list_push_back(&q->fifo, &lease->time_link);
        return;
    }
    last = &state->lease_queues[MMC_STATE_LEASE_QUEUES - 1];
    for (pos = last->fifo.prev; pos != &last->fifo; pos = pos->prev) {
        if (mf_container_of(pos, mmc_state_lease_t, time_link)->expiry_ms <=
            lease->expiry_ms) {
            break;
        }
    }
    /* after pos: between it and its next */
    lease->time_link.prev = pos;
    lease->time_link.next = pos->next;
    pos->next->prev = &lease->time_link;
    pos->next = &lease->time_link;
}

static mmc_status_t mmc_state_grant(mmc_state_t *state,
                                    mmc_state_owner_t *owner,
                                    mmc_state_obj_t *obj, uint64_t now_ms,
                                    uint32_t ttl_ms, mmc_obj_result_t *res)
{
    mmc_state_lease_t *lease;

    state->now_ms = MF_MAX(state->now_ms, now_ms);
    if (mmc_state_obj_media(obj) == MMC_MEDIA_SSD) {
        /* its bytes are on SSD: a read waits for a load
         * (mmc_state_load_keys) */
        res->status = MMC_ERR_BUSY;
        return res->status;
    }
    if (owner->nleases >= state->params.max_owner_leases) {
        mf_debug("meta: an owner holds %" PRIu64 " leases; a lease on %.*s "
                 "refused",
                 owner->nleases, (int)obj->key_len, mmc_state_obj_key(obj));
        state->counters.leases_refused++;
        res->status = MF_ERR_TOO_LARGE;
        return res->status;
    }
    lease = calloc(1, sizeof(*lease));
    if (lease == NULL) {
        goto err;
    }
    lease->id = mmc_state_new_id(state);
    lease->expiry_ms = now_ms + ttl_ms;
    lease->obj = obj;
    lease->owner = owner;
    lease->damage = obj->damage;
    if (mf_hmap_put(&state->leases, &lease->id, sizeof(lease->id), lease,
                    NULL) != MF_OK) {
        free(lease);
        goto err;
    }
    mf_list_push_back(&owner->leases, &lease->owner_link);
    mmc_state_lease_queue(state, lease, ttl_ms);
    owner->nleases++;
    obj->nleases++;
    for (int i = 0; i < obj->nslots; i++) {
        if (mmc_state_obj_reps(obj)[i].seg != NULL) {
            mmc_state_lru_touch(state, &mmc_state_obj_reps(obj)[i]);
        }
    }
    state->counters.leases++;
    mmc_state_fill_result(state, obj, lease->id, res);
    return MMC_OK;

err:
    mf_error("meta state: out of memory for a lease");
    res->status = MF_ERR_NOMEM;
    return res->status;
}

mmc_status_t mmc_state_get(mmc_state_t *state, mmc_state_owner_t *owner,
                           const char *key, size_t key_len, uint64_t now_ms,
                           mmc_obj_result_t *res)
{
    mmc_state_obj_t *obj = mmc_state_index_get(&state->index, key, key_len);
    mmc_status_t status;

    memset(res, 0, sizeof(*res));
    if (obj == NULL) {
        res->status = MMC_ERR_NOT_FOUND;
        return res->status;
    }
    status =
        mmc_state_grant(state, owner, obj, now_ms, state->params.lease_ms, res);
    state->counters.gets += status == MMC_OK;
    return status;
}

mmc_status_t mmc_state_lease(mmc_state_t *state, mmc_state_owner_t *owner,
                             const char *key, size_t key_len, uint64_t now_ms,
                             uint32_t ttl_ms, mmc_obj_result_t *res)
{
    mmc_state_obj_t *obj = mmc_state_index_get(&state->index, key, key_len);

    memset(res, 0, sizeof(*res));
    if (obj == NULL) {
        res->status = mf_hmap_get(&state->pending, key, key_len) != NULL
                          ? MMC_ERR_BUSY
                          : MMC_ERR_NOT_FOUND;
        return res->status;
    }
    if (ttl_ms == 0 || ttl_ms > MMC_STATE_LEASE_TTL_MAX) {
        res->status = MF_ERR_INVALID;
        return res->status;
    }
    return mmc_state_grant(state, owner, obj, now_ms, ttl_ms, res);
}

mmc_status_t mmc_state_release(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint64_t lease_id)
{
    mmc_state_lease_t *lease =
        mf_hmap_get(&state->leases, &lease_id, sizeof(lease_id));

    bool damaged;

    if ((lease == NULL) || (lease->owner != owner)) {
        return MMC_ERR_LEASE_EXPIRED;
    }
    damaged = (lease->damage != lease->obj->damage);
    state->counters.leases_damaged += damaged;
    mmc_state_lease_drop(state, lease);
    return damaged ? MMC_ERR_LEASE_EXPIRED : MMC_OK;
}

mmc_status_t mmc_state_query(const mmc_state_t *state, const char *key,
                             size_t key_len, mmc_obj_result_t *res,
                             uint32_t *leases_p)
{
    const mmc_state_obj_t *obj =
        mmc_state_index_get(&state->index, key, key_len);

    memset(res, 0, sizeof(*res));
    if (obj == NULL) {
        res->status = MMC_ERR_NOT_FOUND;
        return res->status;
    }
    mmc_state_fill_result(state, obj, 0, res);
    if (leases_p != NULL) {
        *leases_p = obj->nleases;
    }
    return MMC_OK;
}

mmc_status_t mmc_state_exists(const mmc_state_t *state, const char *key,
                              size_t key_len)
{
    return mmc_state_index_get(&state->index, key, key_len) != NULL
               ? MMC_OK
               : MMC_ERR_NOT_FOUND;
}

mmc_status_t mmc_state_remove(mmc_state_t *state, const char *key,
                              size_t key_len)
{
    mmc_state_obj_t *obj = mmc_state_index_get(&state->index, key, key_len);

    if (obj == NULL) {
        return MMC_ERR_NOT_FOUND;
    }
    mmc_state_obj_unlink(state, obj);
    state->counters.removes++;
    return MMC_OK;
}

uint64_t mmc_state_remove_all(mmc_state_t *state)
{
    mmc_state_obj_t *obj, *next;
    uint64_t n = 0;
    size_t b = 0;

    for (obj = mmc_state_index_next(&state->index, NULL, &b); obj != NULL;
         obj = next) {
        next = mmc_state_index_next(&state->index, obj, &b); /* obj may go */
        mmc_state_obj_unlink(state, obj);
        state->counters.removes++;
        n++;
    }
    return n;
}

/* ---- time ---- */

bool mmc_state_expire_some(mmc_state_t *state, uint64_t now_ms, uint64_t budget)
{
    state->now_ms = MF_MAX(state->now_ms, now_ms);
    for (int q = 0; q < MMC_STATE_LEASE_QUEUES; q++) {
        mf_list_t *fifo = &state->lease_queues[q].fifo;

        while (!mf_list_empty(fifo)) {
            mmc_state_lease_t *lease =
                mf_container_of(fifo->next, mmc_state_lease_t, time_link);
            if (lease->expiry_ms > now_ms) {
                break;
            }
            if (budget == 0) {
                return true;
            }
            budget--;
            state->counters.leases_expired++;
            mmc_state_lease_drop(state, lease);
        }
    }
    while (!mf_list_empty(&state->put_fifo)) {
        mmc_state_put_t *put =
            mf_container_of(state->put_fifo.next, mmc_state_put_t, time_link);
        if (put->deadline_ms > now_ms) {
            break;
        }
        if (budget == 0) {
            return true;
        }
        budget--;
        mf_debug("meta: put %" PRIu64 " of %.*s reclaimed after %" PRIu32 " ms",
                 put->id, (int)put->obj->key_len, mmc_state_obj_key(put->obj),
                 state->params.put_timeout_ms);
        state->counters.puts_reclaimed++;
        mmc_state_put_abort(state, put);
    }
    return false;
}

void mmc_state_expire(mmc_state_t *state, uint64_t now_ms)
{
    (void)mmc_state_expire_some(state, now_ms, UINT64_MAX);
}
