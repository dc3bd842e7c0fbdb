/*
 * Moves between a rank's memory and its SSD segment (meta_state.h): the
 * SSD tier.
 *
 * Demotion.  When an eviction pass takes an object off a memory segment
 * whose rank also has an SSD segment, the object is not deleted but
 * demoted: a block of its rounded size is allocated in that SSD segment
 * (evicting SSD objects for room, least recently used first, as a put
 * would), the object is held like a lease, and the rank's local service
 * is asked (MOVE) to write the bytes of its replica there.  While the
 * copy runs the object stays readable in memory, its replica is off the
 * segment's queues (no candidate) and its bytes count as leaving the
 * segment, so that the pass stops once enough is on its way.
 * Done: if nothing read the object meanwhile (its hold is its only
 * lease), every memory replica goes (its holders forget them) and the SSD
 * block becomes the object's one replica (recorded on the SSD holder).
 * Read meanwhile, removed, failed, timed out or the holder gone: the
 * block is freed and the object stays in memory, its replica back at the
 * front of the segment's main queue; a failed write evicts it
 * as if there were no SSD, so that a broken device does not keep memory
 * full.
 *
 * Loading.  A read (GET, LEASE) of an object that lives on SSD only waits
 * (the meta service defers the request): a block of the object's size is
 * allocated in the memory segment of the SSD's rank (DRAM, else HBM;
 * evicting there as a put would), and the holder is asked to read its SSD
 * copy into it, checking the copy's CRC.  Done: the memory block becomes
 * the object's replica (promoted: recorded, at the recent end of the
 * queues) and the SSD block goes; the deferred reads run again and find
 * it in memory.  The bytes failed their checksum, or could not be read:
 * the object is removed (a torn copy is never served).  Timed out or the
 * holder gone: the block is freed; the object, if its SSD copy still
 * stands, waits for the next read.
 *
 * An object lives in one tier at a time, so its slots (as many as its put
 * asked for) always suffice: one of them holds the SSD replica.  Objects
 * on SSD keep one copy and are not re-replicated.
 */
#include "cache/meta/meta_state_int.h"

uint8_t mmc_state_obj_media(const mmc_state_obj_t *obj)
{
    for (int i = 0; i < obj->nslots; i++) {
        const mmc_state_rep_t *rep = &mmc_state_obj_reps(obj)[i];

        if ((rep->seg != NULL) && !rep->filling) {
            return rep->seg->media;
        }
    }
    return MMC_MEDIA_DRAM;
}

static uint32_t mmc_state_move_timeout(const mmc_state_t *state)
{
    return (state->params.move_timeout_ms != 0) ? state->params.move_timeout_ms
                                                : 30000;
}

/* A block of len in seg for a move, evicting (deleting) for room as a put
 * would; false when there is none. */
static bool mmc_state_move_alloc(mmc_state_t *state, mmc_state_seg_t *seg,
                                 uint64_t len, uint64_t *offset_p)
{
    if (seg->restoring || (seg->capacity < len)) {
        return false;
    }
    if (mmc_alloc_alloc(seg->alloc, len, offset_p) == MF_OK) {
        return true;
    }
    return mmc_state_seg_make_room(state, seg, len) &&
           (mmc_alloc_alloc(seg->alloc, len, offset_p) == MF_OK);
}

/* Starts a move of obj's replica src to a block at offset of `to`. */
static mmc_state_repair_t *mmc_state_move_new(mmc_state_t *state, uint8_t kind,
                                              mmc_state_rep_t *src,
                                              mmc_state_seg_t *to,
                                              uint64_t offset, uint64_t len)
{
    mmc_state_obj_t *obj = mmc_state_rep_obj(src);
    mmc_state_repair_t *job = calloc(1, sizeof(*job));

    if (job == NULL) {
        return NULL;
    }
    job->id = mmc_state_next_id(state);
    if (mf_hmap_put(&state->repair_ids, &job->id, sizeof(job->id), job, NULL) !=
        MF_OK) {
        free(job);
        return NULL;
    }
    job->kind = kind;
    job->obj = obj;
    job->src = src;
    job->to = to;
    job->to_offset = offset;
    job->len = len;
    job->copier = src->seg->rank->owner;
    job->deadline_ms = state->now_ms + mmc_state_move_timeout(state);
    to->used += len;
    to->arriving += len;
    to->narriving++;
    mmc_state_heap_update(state, to);
    obj->repair = job;
    obj->nleases++; /* held: its bytes stay while they are copied */
    mf_list_push_back(&state->repairs, &job->link);
    mf_list_push_back(&state->moves_out, &job->out_link);
    state->nmoves++;
    return job;
}

bool mmc_state_demote_begin(mmc_state_t *state, mmc_state_rep_t *rep)
{
    mmc_state_obj_t *obj = mmc_state_rep_obj(rep);
    mmc_state_seg_t *from = rep->seg;
    mmc_state_seg_t *ssd = from->rank->segs[MMC_MEDIA_SSD];
    uint64_t len = mmc_state_round(state, obj->size);
    uint64_t offset;

    if ((ssd == NULL) || (from->media == MMC_MEDIA_SSD) ||
        (from->rank->owner == NULL) || (obj->repair != NULL) ||
        (obj->nleases > 0) || !obj->linked) {
        return false;
    }
    if (!mmc_state_move_alloc(state, ssd, len, &offset)) {
        return false;
    }
    if (mmc_state_move_new(state, MMC_STATE_JOB_DEMOTE, rep, ssd, offset,
                           len) == NULL) {
        (void)mmc_alloc_free(ssd->alloc, offset, len);
        return false;
    }
    from->leaving += len;
    state->leaving[from->media] += len;
    /* no candidate while it moves: the walk goes on to the next */
    mmc_state_lru_del(state, rep);
    state->counters.demotions_started++;
    return true;
}

/* The memory segment a load of rank r's SSD copy goes to. */
static mmc_state_seg_t *mmc_state_load_seg(const mmc_state_rank_t *r)
{
    return (r->segs[MMC_MEDIA_DRAM] != NULL) ? r->segs[MMC_MEDIA_DRAM]
                                             : r->segs[MMC_MEDIA_HBM];
}

/* Starts a load of obj (on SSD only): false when it cannot now.  *wait_p:
 * not now, but room for it is on its way (a demotion in flight from its
 * DRAM), so the read waits rather than have the load delete for room. */
static bool mmc_state_load_begin(mmc_state_t *state, mmc_state_obj_t *obj,
                                 bool *wait_p)
{
    mmc_state_rep_t *src = NULL;
    mmc_state_seg_t *to;
    uint64_t len = mmc_state_round(state, obj->size);
    uint64_t offset;

    for (int i = 0; (src == NULL) && (i < obj->nslots); i++) {
        if (mmc_state_obj_reps(obj)[i].seg != NULL) {
            src = &mmc_state_obj_reps(obj)[i];
        }
    }
    if ((src == NULL) || (src->seg->rank->owner == NULL)) {
        return false;
    }
    to = mmc_state_load_seg(src->seg->rank);
    if ((to != NULL) && !to->restoring && (to->leaving >= len) &&
        (to->capacity - to->used < len)) {
        *wait_p = true; /* a demotion makes room soon: no deleting */
        return false;
    }
    if ((to == NULL) || !mmc_state_move_alloc(state, to, len, &offset)) {
        state->counters.loads_failed++;
        return false;
    }
    if (mmc_state_move_new(state, MMC_STATE_JOB_LOAD, src, to, offset, len) ==
        NULL) {
        (void)mmc_alloc_free(to->alloc, offset, len);
        return false;
    }
    state->counters.loads_started++;
    return true;
}

uint32_t mmc_state_load_keys(mmc_state_t *state, const mmc_key_t *keys,
                             uint32_t n, uint64_t now_ms)
{
    uint32_t loading = 0;

    state->now_ms = MF_MAX(state->now_ms, now_ms);
    for (uint32_t i = 0; i < n; i++) {
        mmc_state_obj_t *obj =
            mmc_state_index_get(&state->index, keys[i].data, keys[i].len);

        if ((obj == NULL) || (mmc_state_obj_media(obj) != MMC_MEDIA_SSD)) {
            continue;
        }
        if (obj->repair != NULL) {
            loading += obj->repair->kind == MMC_STATE_JOB_LOAD;
        } else {
            bool wait = false;

            loading += mmc_state_load_begin(state, obj, &wait) || wait;
        }
    }
    return loading;
}

bool mmc_state_room_coming(const mmc_state_t *state, uint8_t media,
                           uint64_t size)
{
    uint64_t len = mmc_state_round(state, size);
    bool coming = false;

    if ((media >= MMC_STATE_NMEDIA) || (state->leaving[media] < len)) {
        return false; /* the common case: nothing on its way */
    }
    for (const mf_list_t *elem = state->members.next; elem != &state->members;
         elem = elem->next) {
        const mmc_state_rank_t *r =
            mf_container_of(elem, mmc_state_rank_t, member_link);
        const mmc_state_seg_t *seg = r->segs[media];
        mmc_alloc_stats_t st;

        if ((seg == NULL) || seg->restoring || (r->owner == NULL)) {
            continue;
        }
        mmc_alloc_stats(seg->alloc, &st);
        if (st.largest_free >= len) {
            return false; /* room now */
        }
        coming |= seg->leaving >= len;
    }
    return coming;
}

bool mmc_state_demoting(const mmc_state_t *state)
{
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        if (state->leaving[m] > 0) {
            return true;
        }
    }
    return false;
}

uint64_t mmc_state_on_ssd(const mmc_state_t *state)
{
    return state->candidates[MMC_MEDIA_SSD];
}

uint64_t mmc_state_moves_ended(const mmc_state_t *state)
{
    return state->moves_ended;
}

uint32_t mmc_state_moves_take(mmc_state_t *state, mmc_state_move_job_t *jobs,
                              uint32_t max)
{
    uint32_t n = 0;

    while ((n < max) && !mf_list_empty(&state->moves_out)) {
        mmc_state_repair_t *job = mf_container_of(state->moves_out.next,
                                                  mmc_state_repair_t, out_link);
        mmc_state_obj_t *obj = job->obj;
        mmc_state_seg_t *mem =
            (job->kind == MMC_STATE_JOB_DEMOTE) ? job->src->seg : job->to;
        uint64_t mem_offset = (job->kind == MMC_STATE_JOB_DEMOTE)
                                  ? job->src->offset
                                  : job->to_offset;
        mmc_move_t *mv = &jobs[n].move;

        mf_list_del(&job->out_link);
        mf_list_init(&job->out_link);
        jobs[n].copier = job->copier;
        mv->id = job->id;
        mv->dir = (job->kind == MMC_STATE_JOB_DEMOTE) ? MMC_MOVE_DEMOTE
                                                      : MMC_MOVE_LOAD;
        mv->media = mem->media;
        mv->gva = mem->gva + mem_offset;
        mv->ssd_offset = (job->kind == MMC_STATE_JOB_DEMOTE) ? job->to_offset
                                                             : job->src->offset;
        mv->size = obj->size;
        mv->version = obj->version;
        mv->want = obj->want;
        mv->key.data = mmc_state_obj_key(obj);
        mv->key.len = obj->key_len;
        n++;
    }
    return n;
}

/* The block of a move: a replica of obj in slot (ok), or freed. */
static void mmc_state_move_land(mmc_state_t *state, mmc_state_repair_t *job,
                                mmc_state_rep_t *slot, bool ok)
{
    mmc_state_seg_t *to = job->to;

    to->arriving -= job->len;
    to->narriving--;
    if (!ok) {
        to->used -= job->len;
        (void)mmc_alloc_free(to->alloc, job->to_offset, job->len);
        mmc_state_heap_update(state, to);
        return;
    }
    slot->seg = to;
    slot->offset = job->to_offset;
    slot->filling = false;
    slot->recorded = false;
    mf_list_push_back(&to->reps, &slot->link);
    to->nreps++;
    job->obj->nrep++;
    mmc_state_lru_add(state, slot, false);
    mmc_state_rec_add(state, slot);
}

/* Takes every replica of obj out of its segments (their holders forget
 * them); returns a free slot. */
static mmc_state_rep_t *mmc_state_move_vacate(mmc_state_t *state,
                                              mmc_state_obj_t *obj)
{
    for (int i = 0; i < obj->nslots; i++) {
        mmc_state_rep_t *rep = &mmc_state_obj_reps(obj)[i];

        if (rep->seg != NULL) {
            mmc_state_rec_del(state, rep);
            mmc_state_rep_remove(state, rep, true);
        }
    }
    return &mmc_state_obj_reps(obj)[0];
}

void mmc_state_move_end(mmc_state_t *state, mmc_state_repair_t *job,
                        mmc_status_t status)
{
    mmc_state_obj_t *obj = job->obj;
    bool demote = job->kind == MMC_STATE_JOB_DEMOTE;
    /* only our hold on it, its source still there */
    bool whole = obj->linked && (obj->nleases == 1) && (job->src->seg != NULL);
    bool ok = (status == MF_OK) && whole;

    (void)mf_hmap_remove(&state->repair_ids, &job->id, sizeof(job->id));
    mf_list_del(&job->link);
    mf_list_del(&job->out_link);
    obj->repair = NULL;
    state->nmoves--;
    if (demote && (job->src->seg != NULL)) {
        job->src->seg->leaving -= job->len;
        state->leaving[job->src->seg->media] -= job->len;
    }
    if (ok) {
        mmc_state_move_land(state, job, mmc_state_move_vacate(state, obj),
                            true);
        if (demote) {
            state->counters.demotions_done++;
        } else {
            state->counters.loads_done++;
        }
    } else {
        mmc_state_move_land(state, job, NULL, false);
        if (demote && (job->src->seg != NULL) && obj->linked) {
            /* still in memory: the first candidate of its segment */
            mmc_state_lru_return(state, job->src);
        }
        if (demote) {
            state->counters.demotions_failed++;
        } else {
            state->counters.loads_failed++;
        }
        /* a copy that failed at the holder: the object goes (a write
         * that fails would keep memory full; a read that fails, or bytes
         * that fail their checksum, are never served) */
        if (whole && (status != MF_ERR_TIMEOUT) &&
            (status != MF_ERR_PEER_LOST) && (status != MF_ERR_CANCELED)) {
            mf_warn("meta: a %s of %.*s failed (%s): removed",
                    demote ? "demotion" : "load", (int)obj->key_len,
                    mmc_state_obj_key(obj), mmc_status_name(status));
            if (demote) {
                state->counters.evictions++;
                state->counters.evicted_bytes += obj->size;
            }
            mmc_state_obj_unlink(state, obj);
        }
    }
    state->moves_ended++;
    mmc_state_under_update(state, obj);
    free(job);
    mmc_state_obj_unhold(state, obj); /* may free an unlinked object */
}

mmc_status_t mmc_state_move_done(mmc_state_t *state, mmc_state_owner_t *owner,
                                 uint64_t id, mmc_status_t status)
{
    mmc_state_repair_t *job = mf_hmap_get(&state->repair_ids, &id, sizeof(id));

    if ((job == NULL) || (job->copier != owner) ||
        (job->kind == MMC_STATE_JOB_REPAIR)) {
        return MMC_ERR_NOT_FOUND; /* timed out, or not its own */
    }
    mmc_state_move_end(state, job, status);
    return MMC_OK;
}
