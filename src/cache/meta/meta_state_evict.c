/*
 * What leaves a segment to make room: whole objects, chosen by the pool's
 * policy (params.evict_policy) among the segment's candidates (replicas of
 * committed, linked objects), leased ones passed over, bounded work per
 * pass.  Each segment is evicted on its own, so a media is evicted only
 * for puts of that media.
 *
 * lru: one queue per segment, oldest first; commit appends, a read moves
 * every replica of the object to the end, a walk evicts from the front.
 * A loop over more objects than fit (a prefix read again by many requests
 * in turn) misses every time under it: each object goes just before it is
 * asked for again.
 *
 * s3fifo (S3-FIFO, Yang et al., SOSP 2023): two queues per segment, a
 * small one (evict_small_pct of the capacity) where new objects go on
 * probation and a main one, plus a ghost of keys evicted off small queues
 * lately (per media: a key put again lands wherever placement says).  A
 * read only counts (rep->freq, at most MMC_STATE_FREQ_MAX), nothing
 * moves.  A walk takes from the small queue while it is over its share
 * (or the main one is empty): an object read since it came moves to the
 * main queue, any other is evicted and its key goes to the ghost.
 * Otherwise it takes from the main queue: an object read since it came
 * or last went round goes round again, one read fewer, any other is
 * evicted.  A new object whose key is in the ghost goes straight to the
 * main queue.  So objects read once leave fast, and in a loop too large
 * for the pool a share stays and is hit, where lru keeps nothing.
 *
 * Leased objects.  A walk moves a leased candidate off the small queue to
 * the main one, and a leased one on the main queue to its end, counting
 * it in seg->skipped.  When the count reaches the candidates, every one
 * was passed over since the last eviction: the segment is stuck and
 * background passes leave it alone until a candidate appears (a commit
 * there, or the last lease of one of its objects going).  So a segment
 * full of leased objects stays above its mark without the passes spinning
 * on it.  state->evict_due tells the caller that a pass may now do work.
 */
#include "cache/meta/meta_state_int.h"

int mmc_evict_policy_parse(const char *name)
{
    if (strcmp(name, "lru") == 0) {
        return MMC_EVICT_LRU;
    }
    if (strcmp(name, "s3fifo") == 0) {
        return MMC_EVICT_S3FIFO;
    }
    return -1;
}

const char *mmc_evict_policy_name(uint32_t policy)
{
    return (policy == MMC_EVICT_S3FIFO) ? "s3fifo" : "lru";
}

/* ---- watermarks ---- */

bool mmc_state_evict_enabled(const mmc_state_t *state)
{
    return (state->params.evict_high_pct > 0) &&
           (state->params.evict_high_pct < 100);
}

/* used > pct% of capacity (capacity < 2^47: no overflow). */
bool mmc_state_seg_above(const mmc_state_seg_t *seg, uint32_t pct)
{
    return seg->used * 100 > seg->capacity * pct;
}

bool mmc_state_seg_over_high(const mmc_state_t *state,
                             const mmc_state_seg_t *seg)
{
    return mmc_state_evict_enabled(state) &&
           mmc_state_seg_above(seg, state->params.evict_high_pct);
}

void mmc_state_seg_note(mmc_state_t *state, const mmc_state_seg_t *seg)
{
    if (!seg->stuck && mmc_state_seg_over_high(state, seg)) {
        state->evict_due = true;
    }
}

/* A new candidate in seg: it is not stuck any more. */
void mmc_state_seg_unstick(mmc_state_t *state, mmc_state_seg_t *seg)
{
    seg->stuck = false;
    seg->skipped = 0;
    mmc_state_seg_note(state, seg);
}

/* ---- the ghost ---- */

static uint32_t mmc_state_ghost_key(uint32_t hash)
{
    return (hash != 0) ? hash : 1;
}

/* The slot of key in set, or -1. */
static int64_t mmc_state_ghost_find(const uint32_t *set, uint32_t mask,
                                    uint32_t key)
{
    if (set == NULL) {
        return -1;
    }
    for (uint32_t i = key & mask;; i = (i + 1) & mask) {
        if (set[i] == key) {
            return i;
        }
        if (set[i] == 0) {
            return -1;
        }
    }
}

/* Empties slot i of a linear-probing set: every later entry of its run
 * that could no longer be found past the hole moves into it. */
static void mmc_state_ghost_erase(uint32_t *set, uint32_t mask, uint32_t i)
{
    uint32_t j = i;

    for (;;) {
        uint32_t home;

        set[i] = 0;
        do {
            j = (j + 1) & mask;
            if (set[j] == 0) {
                return;
            }
            home = set[j] & mask;
            /* stays when its home lies cyclically in (i, j] */
        } while ((i <= j) ? ((i < home) && (home <= j))
                          : ((i < home) || (home <= j)));
        set[i] = set[j];
        i = j;
    }
}

static bool mmc_state_ghost_has(const mmc_state_t *state, uint8_t media,
                                uint32_t hash)
{
    const mmc_state_ghost_t *g = &state->ghost[media];
    uint32_t key = mmc_state_ghost_key(hash);

    return (mmc_state_ghost_find(g->set[0], g->mask[0], key) >= 0) ||
           (mmc_state_ghost_find(g->set[1], g->mask[1], key) >= 0);
}

/* Whether hash is in the ghost of media; taken out if so. */
static bool mmc_state_ghost_take(mmc_state_t *state, uint8_t media,
                                 uint32_t hash)
{
    mmc_state_ghost_t *g = &state->ghost[media];
    uint32_t key = mmc_state_ghost_key(hash);
    bool found = false;

    for (int gen = 0; gen < 2; gen++) {
        int64_t i = mmc_state_ghost_find(g->set[gen], g->mask[gen], key);

        if (i >= 0) {
            mmc_state_ghost_erase(g->set[gen], g->mask[gen], (uint32_t)i);
            found = true;
        }
    }
    return found;
}

/* Drops the old generation and starts a young one sized for the media's
 * candidates now (at least 64 keys, at most 2^30).  Without
 * memory the ghost forgets instead (a young set of NULL): s3fifo then
 * admits every new object to its small queue, which is still correct. */
static void mmc_state_ghost_age(mmc_state_t *state, uint8_t media)
{
    mmc_state_ghost_t *g = &state->ghost[media];
    uint64_t limit = state->candidates[media];
    uint64_t slots = 128;

    limit = MF_MIN(MF_MAX(limit, 64), 1u << 30);
    while (slots < 2 * limit) {
        slots *= 2;
    }
    free(g->set[1]);
    g->set[1] = g->set[0];
    g->mask[1] = g->mask[0];
    g->set[0] = calloc(slots, sizeof(uint32_t));
    g->mask[0] = (uint32_t)(slots - 1);
    g->count = 0;
    g->limit = (uint32_t)limit;
    if (g->set[0] == NULL) {
        mf_warn("meta: no memory for %" PRIu64 " ghost keys; s3fifo "
                "forgets evicted keys until the next generation",
                limit);
    }
}

static void mmc_state_ghost_add(mmc_state_t *state, uint8_t media,
                                uint32_t hash)
{
    mmc_state_ghost_t *g = &state->ghost[media];
    uint32_t key = mmc_state_ghost_key(hash);
    uint32_t i;

    if (mmc_state_ghost_has(state, media, hash)) {
        return;
    }
    if ((g->set[0] == NULL) || (g->count >= g->limit)) {
        mmc_state_ghost_age(state, media);
        if (g->set[0] == NULL) {
            g->count++; /* ages again after limit evictions */
            return;
        }
    }
    for (i = key & g->mask[0]; g->set[0][i] != 0; i = (i + 1) & g->mask[0]) {
    }
    g->set[0][i] = key;
    g->count++;
}

void mmc_state_ghost_free(mmc_state_t *state)
{
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        free(state->ghost[m].set[0]);
        free(state->ghost[m].set[1]);
        memset(&state->ghost[m], 0, sizeof(state->ghost[m]));
    }
}

/* ---- the queues ---- */

static bool mmc_state_s3fifo(const mmc_state_t *state)
{
    return state->params.evict_policy == MMC_EVICT_S3FIFO;
}

static void mmc_state_small_push(mmc_state_t *state, mmc_state_rep_t *rep)
{
    mmc_state_seg_t *seg = rep->seg;

    mf_list_push_back(&seg->small, &rep->link);
    rep->in_small = true;
    seg->nsmall++;
    seg->small_bytes += mmc_state_round(state, mmc_state_rep_obj(rep)->size);
}

static void mmc_state_small_pop(mmc_state_t *state, mmc_state_rep_t *rep)
{
    mmc_state_seg_t *seg = rep->seg;

    mf_list_del(&rep->link);
    rep->in_small = false;
    seg->nsmall--;
    seg->small_bytes -= mmc_state_round(state, mmc_state_rep_obj(rep)->size);
}

/*
 * Whether the newly committed obj goes on probation: with s3fifo, unless
 * its key was evicted off a small queue lately (then it is taken out of
 * the ghost and its replicas go to the main queues).  Once per object,
 * before its replicas are added.
 */
bool mmc_state_evict_fresh(mmc_state_t *state, const mmc_state_obj_t *obj)
{
    const mmc_state_rep_t *reps = mmc_state_obj_reps(obj);
    uint8_t media = 0;

    if (!mmc_state_s3fifo(state)) {
        return false;
    }
    for (int i = 0; i < obj->nslots; i++) {
        if (reps[i].seg != NULL) {
            media = reps[i].seg->media; /* all of one media */
            break;
        }
    }
    if (mmc_state_ghost_take(state, media, obj->hash)) {
        state->counters.ghost_hits++;
        return false;
    }
    return true;
}

void mmc_state_lru_add(mmc_state_t *state, mmc_state_rep_t *rep, bool fresh)
{
    mf_list_del(&rep->link); /* off seg->reps */
    rep->freq = 0;
    if (fresh && mmc_state_s3fifo(state)) {
        mmc_state_small_push(state, rep);
    } else {
        mf_list_push_back(&rep->seg->lru, &rep->link);
    }
    rep->in_lru = true;
    rep->seg->nlru++;
    state->candidates[rep->seg->media]++;
    mmc_state_seg_unstick(state, rep->seg);
}

void mmc_state_lru_del(mmc_state_t *state, mmc_state_rep_t *rep)
{
    if (!rep->in_lru) {
        return;
    }
    if (rep->in_small) {
        mmc_state_small_pop(state, rep);
    } else {
        mf_list_del(&rep->link);
    }
    mf_list_push_back(&rep->seg->reps, &rep->link);
    rep->in_lru = false;
    rep->seg->nlru--;
    state->candidates[rep->seg->media]--;
}

void mmc_state_lru_return(mmc_state_t *state, mmc_state_rep_t *rep)
{
    mf_list_del(&rep->link); /* off seg->reps */
    rep->freq = 0;
    mf_list_push_front(&rep->seg->lru, &rep->link);
    rep->in_lru = true;
    rep->seg->nlru++;
    state->candidates[rep->seg->media]++;
    mmc_state_seg_unstick(state, rep->seg);
}

void mmc_state_lru_touch(const mmc_state_t *state, mmc_state_rep_t *rep)
{
    if (!rep->in_lru) {
        return;
    }
    if (mmc_state_s3fifo(state)) {
        rep->freq += rep->freq < MMC_STATE_FREQ_MAX;
    } else {
        mf_list_del(&rep->link);
        mf_list_push_back(&rep->seg->lru, &rep->link);
    }
}

/* Moves a candidate to the end of seg's main queue, off either queue. */
static void mmc_state_main_requeue(mmc_state_t *state, mmc_state_rep_t *rep)
{
    if (rep->in_small) {
        mmc_state_small_pop(state, rep);
    } else {
        mf_list_del(&rep->link);
    }
    mf_list_push_back(&rep->seg->lru, &rep->link);
}

/* ---- walks ---- */

/* Evicts a committed, linked object without leases: gone whole, like
 * REMOVE, space freed at once. */
static void mmc_state_evict_obj(mmc_state_t *state, mmc_state_obj_t *obj,
                                bool for_put)
{
    mf_debug("meta: evicting %.*s (%" PRIu64 " bytes, %" PRIu32 " replicas)%s",
             (int)obj->key_len, mmc_state_obj_key(obj), obj->size, obj->nrep,
             for_put ? " for a put" : "");
    state->counters.evictions++;
    state->counters.evictions_put += for_put;
    state->counters.evictions_media[mmc_state_obj_media(obj)]++;
    state->counters.evicted_bytes += obj->size;
    mmc_state_obj_unlink(state, obj);
}

/* Whether seg is where the walk wants it: a free block of len bytes
 * (len > 0), or at most its low mark (len 0). */
static bool mmc_state_seg_enough(const mmc_state_t *state,
                                 const mmc_state_seg_t *seg, uint64_t len)
{
    mmc_alloc_stats_t st;

    if (len == 0) { /* what is being demoted is as good as gone */
        return (seg->used - seg->leaving) * 100 <=
               seg->capacity * state->params.evict_low_pct;
    }
    if (seg->capacity - seg->used < len) {
        return false;
    }
    mmc_alloc_stats(seg->alloc, &st);
    return st.largest_free >= len;
}

/* s3fifo: whether the walk takes from seg's small queue now. */
static bool mmc_state_small_turn(const mmc_state_t *state,
                                 const mmc_state_seg_t *seg)
{
    return (seg->nsmall > 0) &&
           ((seg->nsmall == seg->nlru) ||
            (seg->small_bytes * 100 >=
             seg->capacity * state->params.evict_small_pct));
}

/*
 * Visits the candidate that seg's policy puts next: true when it is to be
 * evicted, false when it was moved (read since it came, or leased) and
 * stays.
 */
static bool mmc_state_seg_visit(mmc_state_t *state, mmc_state_seg_t *seg,
                                mmc_state_rep_t **rep_p)
{
    bool small = mmc_state_s3fifo(state) && mmc_state_small_turn(state, seg);
    mmc_state_rep_t *rep = mf_container_of(
        small ? seg->small.next : seg->lru.next, mmc_state_rep_t, link);
    mmc_state_obj_t *obj = mmc_state_rep_obj(rep);

    *rep_p = rep;
    if (obj->nleases > 0) {
        mmc_state_main_requeue(state, rep);
        seg->skipped++;
        state->counters.evict_skipped++;
        return false;
    }
    if (small && (rep->freq > 0)) {
        rep->freq = 0;
        mmc_state_main_requeue(state, rep);
        state->counters.evict_promoted++;
        return false;
    }
    if (!small && (rep->freq > 0)) {
        rep->freq--;
        mmc_state_main_requeue(state, rep);
        return false;
    }
    if (small) {
        mmc_state_ghost_add(state, seg->media, obj->hash);
    }
    return true;
}

/*
 * Walks seg's candidates in its policy's order: evicts unleased objects
 * until seg is enough for len (see above), *evicted_p reaches max_evict or
 * visits reach max_visits.  Marks seg stuck when every candidate was
 * passed over.  Returns the candidates visited.
 */
static uint64_t mmc_state_seg_evict(mmc_state_t *state, mmc_state_seg_t *seg,
                                    uint64_t len, uint64_t max_evict,
                                    uint64_t max_visits, bool for_put,
                                    uint64_t *evicted_p)
{
    uint64_t visits = 0;

    while ((visits < max_visits) && (*evicted_p < max_evict) &&
           !mmc_state_seg_enough(state, seg, len)) {
        mmc_state_rep_t *rep;

        if (seg->skipped >= seg->nlru) {
            seg->stuck = true;
            break;
        }
        visits++;
        if (!mmc_state_seg_visit(state, seg, &rep)) {
            continue;
        }
        if (!for_put && mmc_state_demote_begin(state, rep)) {
            seg->skipped = 0; /* on its way to the rank's SSD */
            continue;
        }
        mmc_state_evict_obj(state, mmc_state_rep_obj(rep), for_put);
        seg->skipped = 0;
        (*evicted_p)++;
    }
    return visits;
}

bool mmc_state_evict_due(const mmc_state_t *state)
{
    return state->evict_due;
}

bool mmc_state_evict_some(mmc_state_t *state, uint64_t budget)
{
    uint64_t evicted = 0;
    bool more = false;
    mf_list_t *elem;

    state->evict_due = false;
    if (!mmc_state_evict_enabled(state)) {
        return false;
    }
    state->counters.eviction_runs++;
    for (elem = state->members.next; elem != &state->members;
         elem = elem->next) {
        mmc_state_rank_t *r =
            mf_container_of(elem, mmc_state_rank_t, member_link);

        for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
            mmc_state_seg_t *seg = r->segs[m];

            if ((seg == NULL) || seg->stuck) {
                continue;
            }
            if (!seg->evicting && !mmc_state_seg_over_high(state, seg)) {
                continue;
            }
            if (budget == 0) {
                return true;
            }
            seg->evicting = true;
            budget -= mmc_state_seg_evict(state, seg, 0, UINT64_MAX, budget,
                                          false, &evicted);
            if (seg->stuck || mmc_state_seg_enough(state, seg, 0)) {
                seg->evicting = false;
            } else {
                more = true; /* stopped on the budget */
            }
        }
    }
    return more;
}

bool mmc_state_seg_make_room(mmc_state_t *state, mmc_state_seg_t *seg,
                             uint64_t len)
{
    uint64_t max_evict = state->params.evict_max_per_put;
    uint64_t visits = max_evict * MMC_STATE_PUT_VISITS_PER_EVICTION +
                      MMC_STATE_PUT_VISITS_EXTRA;
    uint64_t evicted = 0;

    (void)mmc_state_seg_evict(state, seg, len, max_evict, visits, true,
                              &evicted);
    return mmc_state_seg_enough(state, seg, len);
}

/*
 * A put item of len bytes found fewer than `want` ranks with room: evicts
 * from the candidate segments (of the put's media), in placement order
 * (preferred ranks, the caller's rank, then the members), until `want` ranks
 * have a free block of len or evict_max_per_put objects went.  Pending puts
 * (this request's among them) are never candidates.  True when a new placement
 * may work.
 */
bool mmc_state_put_make_room(mmc_state_t *state, uint64_t len, uint32_t want,
                             uint32_t own, const mmc_state_put_opts_t *opts)
{
    uint64_t max_evict = state->params.evict_max_per_put;
    uint64_t visits = max_evict * MMC_STATE_PUT_VISITS_PER_EVICTION +
                      MMC_STATE_PUT_VISITS_EXTRA;
    uint64_t evicted = 0;
    uint32_t ready = 0;
    uint32_t npref = opts->npref;
    mf_list_t *elem = state->members.next;

    state->epoch++;
    for (uint32_t i = 0; (ready < want) && (evicted < max_evict); i++) {
        mmc_state_rank_t *r;
        mmc_state_seg_t *seg;

        if (i < npref) {
            r = mmc_state_rank_at(state, opts->pref[i]);
        } else if (i == npref) {
            r = mmc_state_rank_at(state, own);
        } else if (elem != &state->members) {
            r = mf_container_of(elem, mmc_state_rank_t, member_link);
            elem = elem->next;
        } else {
            break;
        }
        if ((r == NULL) || (r->owner == NULL) || (r->epoch == state->epoch)) {
            continue;
        }
        r->epoch = state->epoch;
        seg = r->segs[opts->media];
        if ((seg == NULL) || seg->restoring || (seg->capacity < len)) {
            continue;
        }
        if (!mmc_state_seg_enough(state, seg, len) && (visits > 0)) {
            visits -= mmc_state_seg_evict(state, seg, len, max_evict, visits,
                                          true, &evicted);
        }
        if (mmc_state_seg_enough(state, seg, len)) {
            ready++;
        }
    }
    return (ready >= want) && (evicted > 0);
}
