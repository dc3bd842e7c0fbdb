/*
 * Inspection of the meta state: counters, per-segment figures, key
 * lookups for the HTTP endpoint, and mmc_state_check, the self-check the
 * tests run after every step.
 */
#include "cache/meta/meta_state_int.h"

/* ---- inspection ---- */

void mmc_state_foreach_seg(const mmc_state_t *state,
                           void (*cb)(const mmc_state_seg_info_t *seg,
                                      void *arg),
                           void *arg)
{
    for (uint32_t r = 0; r < state->params.max_ranks; r++) {
        const mmc_state_rank_t *rank = &state->ranks[r];

        for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
            const mmc_state_seg_t *seg = rank->segs[m];
            mmc_state_seg_info_t info;
            mmc_alloc_stats_t st;

            if (seg == NULL) {
                continue;
            }
            mmc_alloc_stats(seg->alloc, &st);
            memset(&info, 0, sizeof(info));
            info.rank = rank->rank;
            info.host_idx = rank->host_idx;
            info.host_id = mmc_state_host_at(state, rank->host_idx)->id;
            info.name = rank->name;
            info.media = seg->media;
            info.gva = seg->gva;
            info.capacity = st.capacity;
            info.used = st.used;
            info.free = st.free;
            info.largest_free = st.largest_free;
            info.replicas = seg->nreps;
            info.arriving = seg->narriving;
            info.lru = seg->nlru;
            info.alloc = seg->alloc;
            cb(&info, arg);
        }
    }
}

static mf_status_t mmc_state_check_seg(const mmc_state_t *state,
                                       const mmc_state_seg_t *seg)
{
    mmc_alloc_stats_t st;
    uint64_t used = 0;
    uint64_t n = 0;
    uint64_t nlru = 0;
    uint64_t nsmall = 0;
    uint64_t small_bytes = 0;
    const mf_list_t *elem;

    if (mmc_alloc_check(seg->alloc) != MF_OK) {
        return MF_ERR_STATE;
    }
    for (elem = seg->reps.next; elem != &seg->reps; elem = elem->next) {
        const mmc_state_rep_t *rep =
            mf_container_of(elem, mmc_state_rep_t, link);
        if (rep->seg != seg || rep->in_lru) {
            mf_error("meta check: replica on the wrong segment or list");
            return MF_ERR_STATE;
        }
        used += mmc_state_round(state, mmc_state_rep_obj(rep)->size);
        n++;
    }
    mmc_alloc_stats(seg->alloc, &st);
    for (int q = 0; q < 2; q++) {
        const mf_list_t *head = (q == 0) ? &seg->lru : &seg->small;

        for (elem = head->next; elem != head; elem = elem->next) {
            const mmc_state_rep_t *rep =
                mf_container_of(elem, mmc_state_rep_t, link);
            uint64_t len = mmc_state_round(state, mmc_state_rep_obj(rep)->size);

            if ((rep->seg != seg) || !rep->in_lru ||
                (rep->in_small != (q == 1)) ||
                (rep->freq > MMC_STATE_FREQ_MAX) ||
                !mmc_state_rep_obj(rep)->linked ||
                (mmc_state_rep_obj(rep)->put != NULL) ||
                (++nlru > seg->nreps)) {
                mf_error("meta check: rank %" PRIu32
                         " media %u: a bad eviction candidate",
                         seg->rank->rank, seg->media);
                return MF_ERR_STATE;
            }
            nsmall += (q == 1);
            small_bytes += (q == 1) ? len : 0;
            used += len;
            n++;
        }
    }
    if ((nlru != seg->nlru) || (nsmall != seg->nsmall) ||
        (small_bytes != seg->small_bytes) ||
        ((state->params.evict_policy != MMC_EVICT_S3FIFO) && (nsmall > 0))) {
        mf_error("meta check: rank %" PRIu32 " media %u: queues hold %" PRIu64
                 " candidates (%" PRIu64 " small, %" PRIu64
                 " bytes), counts %" PRIu64 " (%" PRIu64 ", %" PRIu64 ")",
                 seg->rank->rank, seg->media, nlru, nsmall, small_bytes,
                 seg->nlru, seg->nsmall, seg->small_bytes);
        return MF_ERR_STATE;
    }
    /* blocks of moves in flight: in the books, not replicas yet */
    used += seg->arriving;
    if ((used != seg->used) || (st.used != used) || (n != seg->nreps) ||
        (st.allocations != n + seg->narriving)) {
        mf_error("meta check: rank %" PRIu32 " media %u: replicas %" PRIu64
                 " (counted %" PRIu64 ", allocations %" PRIu64
                 "), bytes %" PRIu64 " (counted %" PRIu64 ", allocator %" PRIu64
                 ")",
                 seg->rank->rank, seg->media, n, seg->nreps, st.allocations,
                 used, seg->used, st.used);
        return MF_ERR_STATE;
    }
    return MF_OK;
}

/* Every registered rank holds one reference on its host; free slots are
 * exactly those on the free list. */
static mf_status_t mmc_state_check_hosts(const mmc_state_t *state)
{
    uint64_t live = 0;
    uint64_t refs = 0;
    uint64_t nfree = 0;
    uint64_t registered = 0;

    for (uint32_t f = state->free_host; f != 0;
         f = mmc_state_host_at(state, f - 1)->next_free) {
        if ((mmc_state_host_at(state, f - 1)->id != NULL) ||
            (++nfree > state->hosts.count)) {
            mf_error("meta check: host free list is broken");
            return MF_ERR_STATE;
        }
    }
    for (size_t i = 0; i < state->hosts.count; i++) {
        const mmc_state_host_t *h = mmc_state_host_at(state, (uint32_t)i);
        if (h->id == NULL) {
            continue;
        }
        if ((h->refs == 0) ||
            (mf_hmap_get(&state->host_map, h->id, strlen(h->id)) !=
             (void *)(uintptr_t)(i + 1))) {
            mf_error("meta check: host %s is unused or not mapped", h->id);
            return MF_ERR_STATE;
        }
        live++;
        refs += h->refs;
    }
    for (uint32_t r = 0; r < state->params.max_ranks; r++) {
        const mmc_state_rank_t *rank = &state->ranks[r];
        if (rank->owner != NULL) {
            registered++;
            if ((rank->host_idx >= state->hosts.count) ||
                (mmc_state_host_at(state, rank->host_idx)->id == NULL)) {
                mf_error("meta check: rank %" PRIu32 " on a freed host", r);
                return MF_ERR_STATE;
            }
        }
    }
    if ((live != state->counters.hosts) ||
        (live + nfree != state->hosts.count) ||
        (state->host_map.count != live) || (refs != registered) ||
        (registered != state->counters.registered)) {
        mf_error("meta check: hosts disagree (live %" PRIu64 "/%" PRIu64
                 ", free %" PRIu64 ", slots %zu, refs %" PRIu64
                 ", registered %" PRIu64 "/%" PRIu64 ")",
                 live, state->counters.hosts, nfree, state->hosts.count, refs,
                 registered, state->counters.registered);
        return MF_ERR_STATE;
    }
    return MF_OK;
}

mf_status_t mmc_state_check(const mmc_state_t *state)
{
    const mmc_state_counters_t *c = &state->counters;
    const mmc_state_obj_t *obj;
    size_t b = 0;
    uint64_t bytes = 0;
    uint64_t members = 0;
    uint32_t nsegs[MMC_STATE_NMEDIA] = {0};
    uint64_t cands[MMC_STATE_NMEDIA] = {0};
    const mf_list_t *elem;

    for (uint32_t r = 0; r < state->params.max_ranks; r++) {
        const mmc_state_rank_t *rank = &state->ranks[r];
        bool member = false;

        for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
            nsegs[m] += rank->segs[m] != NULL;
            cands[m] += (rank->segs[m] != NULL) ? rank->segs[m]->nlru : 0;
        }
        for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
            if (rank->segs[m] != NULL) {
                member = true;
                if (mmc_state_check_seg(state, rank->segs[m]) != MF_OK) {
                    return MF_ERR_STATE;
                }
            }
        }
        members += member;
    }
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        if (state->candidates[m] != cands[m]) {
            mf_error("meta check: media %d: %" PRIu64 " eviction candidates, "
                     "counted %" PRIu64,
                     m, cands[m], state->candidates[m]);
            return MF_ERR_STATE;
        }
        if (state->place[m].n != nsegs[m]) {
            mf_error("meta check: media %d: %" PRIu32 " segments, %" PRIu32
                     " in the placement heap",
                     m, nsegs[m], state->place[m].n);
            return MF_ERR_STATE;
        }
    }
    if (!mmc_state_heap_ok(state)) {
        mf_error("meta check: a placement heap is out of order");
        return MF_ERR_STATE;
    }
    for (obj = mmc_state_index_next(&state->index, NULL, &b); obj != NULL;
         obj = mmc_state_index_next(&state->index, obj, &b)) {
        if (!obj->linked || (obj->put != NULL) || (obj->nrep == 0)) {
            mf_error("meta check: object %s in the index is not committed",
                     mmc_state_obj_key(obj));
            return MF_ERR_STATE;
        }
        if (mmc_state_index_get(&state->index, mmc_state_obj_key(obj),
                                obj->key_len) != obj) {
            mf_error("meta check: object %s is not found by its key",
                     mmc_state_obj_key(obj));
            return MF_ERR_STATE;
        }
        for (int i = 0; i < obj->nslots; i++) {
            const mmc_state_rep_t *rep = &mmc_state_obj_reps(obj)[i];

            if (rep->slot != i || mmc_state_rep_obj(rep) != obj) {
                mf_error("meta check: object %.*s: slot %d does not find it",
                         (int)obj->key_len, mmc_state_obj_key(obj), i);
                return MF_ERR_STATE;
            }
            if ((rep->seg != NULL) && !rep->in_lru && !rep->filling &&
                !((obj->repair != NULL) &&
                  (obj->repair->kind == MMC_STATE_JOB_DEMOTE) &&
                  (obj->repair->src == rep))) {
                mf_error("meta check: object %.*s has a replica off the LRU",
                         (int)obj->key_len, mmc_state_obj_key(obj));
                return MF_ERR_STATE;
            }
        }
        bytes += obj->size;
    }
    for (elem = state->unlinked.next; elem != &state->unlinked;
         elem = elem->next) {
        obj = mf_container_of(elem, mmc_state_obj_t, list_link);
        if (obj->linked || (obj->nleases == 0)) {
            mf_error("meta check: unlinked object %.*s is linked or free",
                     (int)obj->key_len, mmc_state_obj_key(obj));
            return MF_ERR_STATE;
        }
    }
    if (mmc_state_check_hosts(state) != MF_OK) {
        return MF_ERR_STATE;
    }
    for (elem = state->owners.next; elem != &state->owners; elem = elem->next) {
        const mmc_state_owner_t *o =
            mf_container_of(elem, mmc_state_owner_t, link);
        uint64_t n = 0;

        for (const mf_list_t *l = o->leases.next; l != &o->leases;
             l = l->next) {
            n++;
        }
        if (n != o->nleases) {
            mf_error("meta check: an owner counts %" PRIu64
                     " leases, holds %" PRIu64,
                     o->nleases, n);
            return MF_ERR_STATE;
        }
    }
    if ((state->index.count != c->objects) || (bytes != c->object_bytes) ||
        (state->puts.count != c->pending_puts) ||
        (state->pending.count != c->pending_puts) ||
        (state->leases.count != c->leases) || (members != c->members)) {
        mf_error("meta check: counters disagree (objects %zu/%" PRIu64
                 ", bytes %" PRIu64 "/%" PRIu64 ", puts %zu/%zu/%" PRIu64
                 ", leases %zu/%" PRIu64 ", members %" PRIu64 "/%" PRIu64 ")",
                 state->index.count, c->objects, bytes, c->object_bytes,
                 state->puts.count, state->pending.count, c->pending_puts,
                 state->leases.count, c->leases, members, c->members);
        return MF_ERR_STATE;
    }
    return MF_OK;
}
