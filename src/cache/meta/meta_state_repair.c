/*
 * Re-replication (meta_state.h): objects whose live replicas fell below
 * the count their put asked for (obj->want) when a holder went, copied
 * again to other ranks in the background.
 *
 * The under-replicated objects are on state->under (linked, 0 < nrep <
 * want).  A repair takes one of them, places one new replica the way a
 * put would (a rank of the same media without a replica of the object, a
 * host without one first, most free space), allocates it as a filling
 * slot of the object (in its segment's books, but not a replica: not
 * readable, not recorded, not counted in nrep), holds the object like a
 * lease (its space is not reused while the copy reads it), and names a
 * copier: the local service of a live replica, which copies one-sidedly
 * from its replica to the new one and reports.  Done: the slot becomes a
 * replica (recorded, on the LRU).  Failed, timed out, the copier gone, the
 * destination's segment gone or the object unlinked meanwhile: the slot's
 * space is freed and the object waits for another try.  One repair per
 * object; nothing is repaired while a holder restores its record (its
 * replicas are on their way back).
 */
#include "cache/meta/meta_state_int.h"

void mmc_state_under_update(mmc_state_t *state, mmc_state_obj_t *obj)
{
    /* an object on SSD keeps one copy there: nothing to repair */
    bool under = obj->linked && obj->nrep > 0 && obj->nrep < obj->want &&
                 mmc_state_obj_media(obj) != MMC_MEDIA_SSD;

    if (under == obj->under) {
        return;
    }
    if (under) {
        mf_list_push_back(&state->under, &obj->list_link);
        state->nunder++;
    } else {
        mf_list_del(&obj->list_link);
        state->nunder--;
    }
    obj->under = under;
}

uint64_t mmc_state_under_replicated(const mmc_state_t *state)
{
    return state->nunder;
}

/* Ends a repair: the slot becomes a replica (ok) or goes. */
static void mmc_state_repair_end(mmc_state_t *state, mmc_state_repair_t *rp,
                                 mf_status_t status)
{
    mmc_state_obj_t *obj = rp->obj;
    mmc_state_rep_t *dst = rp->dst;
    bool ok = status == MF_OK;

    if (rp->kind != MMC_STATE_JOB_REPAIR) {
        mmc_state_move_end(state, rp, status);
        return;
    }
    (void)mf_hmap_remove(&state->repair_ids, &rp->id, sizeof(rp->id));
    mf_list_del(&rp->link);
    obj->repair = NULL;
    /* a slot whose segment was dropped is no longer ours (filling was
     * cleared): another replica may sit there since */
    if (ok && dst->seg != NULL && dst->filling && obj->linked) {
        dst->filling = false;
        obj->nrep++;
        mmc_state_lru_add(state, dst, false); /* an old object */
        mmc_state_rec_add(state, dst);
        state->counters.repairs_done++;
    } else {
        if (dst->seg != NULL && dst->filling) {
            mmc_state_rep_remove(state, dst, true);
        }
        state->counters.repairs_failed++;
    }
    free(rp);
    mmc_state_under_update(state, obj);
    mmc_state_obj_unhold(state, obj); /* may free an unlinked object */
}

void mmc_state_repair_owner_gone(mmc_state_t *state, mmc_state_owner_t *owner)
{
    mf_list_t *elem, *next;

    for (elem = state->repairs.next; elem != &state->repairs; elem = next) {
        mmc_state_repair_t *rp =
            mf_container_of(elem, mmc_state_repair_t, link);

        next = elem->next;
        if (rp->copier == owner) {
            mmc_state_repair_end(state, rp, MF_ERR_PEER_LOST);
        }
    }
}

void mmc_state_repair_free_all(mmc_state_t *state)
{
    while (!mf_list_empty(&state->repairs)) {
        mmc_state_repair_end(
            state,
            mf_container_of(state->repairs.next, mmc_state_repair_t, link),
            MF_ERR_CANCELED);
    }
}

/* Whether rank r holds a replica (or a repair's slot) of obj; hosts_used
 * tells whether its host does. */
static bool mmc_state_repair_taken(const mmc_state_obj_t *obj,
                                   const mmc_state_rank_t *r, bool *host_used)
{
    bool taken = false;

    *host_used = false;
    for (int i = 0; i < obj->nslots; i++) {
        const mmc_state_seg_t *seg = mmc_state_obj_reps(obj)[i].seg;

        if (seg == NULL) {
            continue;
        }
        taken |= seg->rank == r;
        *host_used |= seg->rank->host_idx == r->host_idx;
    }
    return taken;
}

/* The segment for a new replica of obj, with its block allocated at
 * *offset_p; NULL when no rank has room. */
static mmc_state_seg_t *mmc_state_repair_place(mmc_state_t *state,
                                               mmc_state_obj_t *obj,
                                               uint8_t media,
                                               uint64_t *offset_p)
{
    uint64_t len = mmc_state_round(state, obj->size);

    for (int phase = 0; phase < 2; phase++) {
        mmc_state_seg_t *best = NULL;
        uint64_t best_free = 0;

        for (mf_list_t *elem = state->members.next; elem != &state->members;
             elem = elem->next) {
            mmc_state_rank_t *r =
                mf_container_of(elem, mmc_state_rank_t, member_link);
            mmc_state_seg_t *seg = r->segs[media];
            bool host_used;

            if (seg == NULL || seg->restoring || r->owner == NULL ||
                seg->capacity - seg->used < len ||
                mmc_state_repair_taken(obj, r, &host_used) ||
                (phase == 0 && host_used)) {
                continue;
            }
            if (best == NULL || seg->capacity - seg->used > best_free) {
                best = seg;
                best_free = seg->capacity - seg->used;
            }
        }
        if (best != NULL &&
            mmc_alloc_alloc(best->alloc, len, offset_p) == MF_OK) {
            return best;
        }
    }
    return NULL;
}

/* Starts a repair of obj: false when it cannot now. */
static bool mmc_state_repair_begin(mmc_state_t *state, mmc_state_obj_t *obj,
                                   uint64_t now_ms, uint32_t timeout_ms,
                                   mmc_state_repair_job_t *job)
{
    mmc_state_rep_t *src = NULL, *dst = NULL;
    mmc_state_repair_t *rp;
    mmc_state_seg_t *seg;
    uint64_t offset;

    for (int i = 0; i < obj->nslots; i++) {
        mmc_state_rep_t *rep = &mmc_state_obj_reps(obj)[i];

        if (rep->seg == NULL) {
            dst = dst != NULL ? dst : rep;
        } else if (!rep->filling && src == NULL &&
                   rep->seg->rank->owner != NULL) {
            src = rep;
        }
    }
    if (src == NULL || dst == NULL) {
        return false;
    }
    seg = mmc_state_repair_place(state, obj, src->seg->media, &offset);
    if (seg == NULL) {
        return false;
    }
    rp = calloc(1, sizeof(*rp));
    if (rp == NULL) {
        (void)mmc_alloc_free(seg->alloc, offset,
                             mmc_state_round(state, obj->size));
        return false;
    }
    rp->id = mmc_state_next_id(state);
    if (mf_hmap_put(&state->repair_ids, &rp->id, sizeof(rp->id), rp, NULL) !=
        MF_OK) {
        free(rp);
        (void)mmc_alloc_free(seg->alloc, offset,
                             mmc_state_round(state, obj->size));
        return false;
    }
    dst->seg = seg;
    dst->offset = offset;
    dst->filling = true;
    dst->recorded = false;
    mf_list_push_back(&seg->reps, &dst->link);
    seg->nreps++;
    seg->used += mmc_state_round(state, obj->size);
    mmc_state_heap_update(state, seg);
    rp->kind = MMC_STATE_JOB_REPAIR;
    rp->obj = obj;
    rp->dst = dst;
    rp->copier = src->seg->rank->owner;
    rp->deadline_ms = now_ms + timeout_ms;
    obj->repair = rp;
    obj->nleases++; /* held: its space stays while the copy reads it */
    mf_list_push_back(&state->repairs, &rp->link);
    state->counters.repairs_started++;

    job->id = rp->id;
    job->copier = rp->copier;
    job->src_gva = src->seg->gva + src->offset;
    job->dst_gva = seg->gva + offset;
    job->size = obj->size;
    job->media = src->seg->media;
    return true;
}

uint32_t mmc_state_repair_start(mmc_state_t *state, uint64_t now_ms,
                                uint32_t timeout_ms,
                                mmc_state_repair_job_t *jobs, uint32_t max,
                                uint64_t max_bytes)
{
    uint64_t visits = state->nunder, bytes = 0;
    uint32_t n = 0;

    if (state->restoring > 0) {
        return 0; /* replicas are on their way back */
    }
    while (n < max && visits-- > 0 && !mf_list_empty(&state->under)) {
        mmc_state_obj_t *obj =
            mf_container_of(state->under.next, mmc_state_obj_t, list_link);

        /* to the back: the next call starts with another one */
        mf_list_del(&obj->list_link);
        mf_list_push_back(&state->under, &obj->list_link);
        if (obj->repair != NULL) {
            continue;
        }
        if (n > 0 && bytes + obj->size > max_bytes) {
            break;
        }
        if (mmc_state_repair_begin(state, obj, now_ms, timeout_ms, &jobs[n])) {
            bytes += obj->size;
            n++;
        }
    }
    return n;
}

mmc_status_t mmc_state_repair_done(mmc_state_t *state, mmc_state_owner_t *owner,
                                   uint64_t id, mf_status_t status)
{
    mmc_state_repair_t *rp = mf_hmap_get(&state->repair_ids, &id, sizeof(id));

    if (rp == NULL || rp->copier != owner || rp->kind != MMC_STATE_JOB_REPAIR) {
        return MMC_ERR_NOT_FOUND; /* timed out, or not its own */
    }
    mmc_state_repair_end(state, rp, status);
    return MMC_OK;
}

void mmc_state_repair_expire(mmc_state_t *state, uint64_t now_ms)
{
    while (!mf_list_empty(&state->repairs)) {
        mmc_state_repair_t *rp =
            mf_container_of(state->repairs.next, mmc_state_repair_t, link);

        if (rp->deadline_ms > now_ms) {
            break;
        }
        mf_warn("meta: a %s of %.*s by rank %" PRIu32 " timed out",
                (rp->kind == MMC_STATE_JOB_REPAIR)   ? "repair"
                : (rp->kind == MMC_STATE_JOB_DEMOTE) ? "demotion"
                                                     : "load",
                (int)rp->obj->key_len, mmc_state_obj_key(rp->obj),
                mmc_state_owner_rank(rp->copier));
        mmc_state_repair_end(state, rp, MF_ERR_TIMEOUT);
    }
}

uint32_t mmc_state_repairs_running(const mmc_state_t *state)
{
    return (uint32_t)state->repair_ids.count - state->nmoves;
}
