/*
 * Where replicas go: segments of the media the put asks for (preferred
 * ranks, the own rank, distinct hosts by free space), with everything
 * rolled back when too few fit.  What leaves to make room is
 * meta_state_evict.c's.
 */
#include "cache/meta/meta_state_int.h"

/* ---- the placement heaps ---- */

/* Whether a comes before b: more free bytes, then the lower rank. */
static bool mmc_state_heap_before(const mmc_state_seg_t *a,
                                  const mmc_state_seg_t *b)
{
    uint64_t fa = a->capacity - a->used, fb = b->capacity - b->used;

    return fa > fb || (fa == fb && a->rank->rank < b->rank->rank);
}

static void mmc_state_heap_set(mmc_state_heap_t *h, uint32_t i,
                               mmc_state_seg_t *seg)
{
    h->segs[i] = seg;
    seg->heap_idx = i;
}

static void mmc_state_heap_sift(mmc_state_heap_t *h, uint32_t i)
{
    mmc_state_seg_t *seg = h->segs[i];
    uint32_t parent, child;

    while (i > 0 && mmc_state_heap_before(seg, h->segs[parent = (i - 1) / 2])) {
        mmc_state_heap_set(h, i, h->segs[parent]);
        i = parent;
    }
    for (;;) {
        child = 2 * i + 1;
        if (child >= h->n) {
            break;
        }
        if (child + 1 < h->n &&
            mmc_state_heap_before(h->segs[child + 1], h->segs[child])) {
            child++;
        }
        if (!mmc_state_heap_before(h->segs[child], seg)) {
            break;
        }
        mmc_state_heap_set(h, i, h->segs[child]);
        i = child;
    }
    mmc_state_heap_set(h, i, seg);
}

void mmc_state_heap_add(mmc_state_t *state, mmc_state_seg_t *seg)
{
    mmc_state_heap_t *h = &state->place[seg->media];

    /* room for a segment of every rank from the start */
    mmc_state_heap_set(h, h->n++, seg);
    mmc_state_heap_sift(h, seg->heap_idx);
}

void mmc_state_heap_del(mmc_state_t *state, mmc_state_seg_t *seg)
{
    mmc_state_heap_t *h = &state->place[seg->media];
    uint32_t i = seg->heap_idx;
    mmc_state_seg_t *last = h->segs[--h->n];

    if (last != seg) {
        mmc_state_heap_set(h, i, last);
        mmc_state_heap_sift(h, i);
    }
    seg->heap_idx = UINT32_MAX;
}

void mmc_state_heap_update(mmc_state_t *state, mmc_state_seg_t *seg)
{
    mmc_state_heap_sift(&state->place[seg->media], seg->heap_idx);
}

bool mmc_state_heap_ok(const mmc_state_t *state)
{
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        const mmc_state_heap_t *h = &state->place[m];

        for (uint32_t i = 0; i < h->n; i++) {
            if (h->segs[i]->heap_idx != i || h->segs[i]->media != m ||
                h->segs[i]->rank->segs[m] != h->segs[i] ||
                (i > 0 &&
                 mmc_state_heap_before(h->segs[i], h->segs[(i - 1) / 2]))) {
                return false;
            }
        }
    }
    return true;
}

/* ---- placement ---- */

static bool mmc_state_place_host_used(const mmc_state_place_t *pl,
                                      uint32_t host_idx)
{
    for (uint32_t i = 0; i < pl->n; i++) {
        if (pl->hosts[i] == host_idx) {
            return true;
        }
    }
    return false;
}

/* Whether rank may be tried in this round and phase. */
static bool mmc_state_place_eligible(const mmc_state_t *state,
                                     const mmc_state_place_t *pl,
                                     const mmc_state_rank_t *r, bool distinct)
{
    if ((r == NULL) || (r->owner == NULL) || (r->epoch == state->epoch)) {
        return false;
    }
    if (mmc_state_rank_free(r, pl->media) < pl->len) {
        return false;
    }
    return !distinct || !mmc_state_place_host_used(pl, r->host_idx);
}

/* Tries the rank's segment of the put's media; marks it tried. */
static void mmc_state_place_try(mmc_state_t *state, mmc_state_place_t *pl,
                                mmc_state_rank_t *r)
{
    mmc_state_seg_t *seg = r->segs[pl->media];
    uint64_t offset;
    mf_status_t status;

    r->epoch = state->epoch;
    if ((seg == NULL) || seg->restoring ||
        (seg->capacity - seg->used < pl->len)) {
        return;
    }
    status = mmc_alloc_alloc(seg->alloc, pl->len, &offset);
    if (status == MF_OK) {
        pl->hosts[pl->n] = r->host_idx;
        pl->segs[pl->n] = seg;
        pl->offsets[pl->n] = offset;
        pl->n++;
    } else if (status == MF_ERR_NOMEM) {
        pl->error = status;
    }
    /* NOT_FOUND (fragmented) or TOO_LARGE: the rank has no room */
}

/* Candidates a walk of the heap keeps at most: one more than the
 * segments it passed over. */
#define MMC_STATE_PLACE_WALK 256
/* Up to this many segments of a media, a scan of the members costs less
 * than a walk (which may pass over most of them when the hosts are few). */
#define MMC_STATE_PLACE_SCAN_MAX 64

/* The segment of the media with the most free bytes whose rank is
 * eligible: a walk down the heap in its order, which passes over the
 * ineligible ones (tried already, on a used host, too full: a few at the
 * top).  NULL when none is; *exhausted_p when the walk outgrew its bound
 * before it knew. */
static mmc_state_rank_t *mmc_state_place_best(mmc_state_t *state,
                                              const mmc_state_place_t *pl,
                                              bool distinct, bool *exhausted_p)
{
    const mmc_state_heap_t *h = &state->place[pl->media];
    uint32_t cand[MMC_STATE_PLACE_WALK]; /* a heap of heap indexes */
    uint32_t ncand = 0, i, j, k, kid;

    *exhausted_p = false;
    if (h->n == 0) {
        return NULL;
    }
    cand[ncand++] = 0;
    while (ncand > 0) {
        /* pop the best candidate */
        i = cand[0];
        cand[0] = cand[--ncand];
        for (j = 0; (k = 2 * j + 1) < ncand; j = k) {
            if (k + 1 < ncand &&
                mmc_state_heap_before(h->segs[cand[k + 1]], h->segs[cand[k]])) {
                k++;
            }
            if (!mmc_state_heap_before(h->segs[cand[k]], h->segs[cand[j]])) {
                break;
            }
            uint32_t t = cand[j];
            cand[j] = cand[k];
            cand[k] = t;
        }
        if (h->segs[i]->capacity - h->segs[i]->used < pl->len) {
            return NULL; /* no segment below has more room */
        }
        if (mmc_state_place_eligible(state, pl, h->segs[i]->rank, distinct)) {
            return h->segs[i]->rank;
        }
        /* its children follow it */
        for (kid = 2 * i + 1; kid <= 2 * i + 2 && kid < h->n; kid++) {
            if (ncand == MMC_STATE_PLACE_WALK) {
                *exhausted_p = true;
                return NULL;
            }
            for (j = ncand++;
                 j > 0 && mmc_state_heap_before(h->segs[kid],
                                                h->segs[cand[(j - 1) / 2]]);
                 j = (j - 1) / 2) {
                cand[j] = cand[(j - 1) / 2];
            }
            cand[j] = kid;
        }
    }
    return NULL;
}

/* The same by a scan of every member: when the walk outgrew its bound
 * (many ineligible segments at the top, as when most ranks share a few
 * hosts). */
static mmc_state_rank_t *mmc_state_place_scan(mmc_state_t *state,
                                              const mmc_state_place_t *pl,
                                              bool distinct)
{
    mmc_state_rank_t *best = NULL;
    uint64_t best_free = 0;
    mf_list_t *elem;

    for (elem = state->members.next; elem != &state->members;
         elem = elem->next) {
        mmc_state_rank_t *r =
            mf_container_of(elem, mmc_state_rank_t, member_link);
        uint64_t free_bytes;

        if (!mmc_state_place_eligible(state, pl, r, distinct)) {
            continue;
        }
        free_bytes = mmc_state_rank_free(r, pl->media);
        if ((best == NULL) || (free_bytes > best_free) ||
            ((free_bytes == best_free) && (r->rank < best->rank))) {
            best = r;
            best_free = free_bytes;
        }
    }
    return best;
}

/*
 * Chooses `want` distinct ranks with a segment of the put's media.  Two
 * phases: first only ranks on hosts not used yet, then any; in each,
 * preferred ranks in order, then the caller's rank, then the rank with
 * the most free space in that media (lowest rank on a tie).
 */
void mmc_state_place(mmc_state_t *state, mmc_state_place_t *pl, uint32_t want,
                     uint32_t own, const mmc_state_put_opts_t *opts)
{
    state->epoch++;
    pl->media = opts->media;
    for (int phase = 0; phase < 2; phase++) {
        bool distinct = (phase == 0);

        for (uint32_t i = 0; i < opts->npref && pl->n < want; i++) {
            mmc_state_rank_t *r = mmc_state_rank_at(state, opts->pref[i]);
            if (mmc_state_place_eligible(state, pl, r, distinct)) {
                mmc_state_place_try(state, pl, r);
            }
            if (pl->error != MF_OK) {
                return;
            }
        }
        if (pl->n < want) {
            mmc_state_rank_t *r = mmc_state_rank_at(state, own);
            if (mmc_state_place_eligible(state, pl, r, distinct)) {
                mmc_state_place_try(state, pl, r);
            }
            if (pl->error != MF_OK) {
                return;
            }
        }
        while (pl->n < want) {
            bool exhausted = true;
            mmc_state_rank_t *best =
                state->place[pl->media].n <= MMC_STATE_PLACE_SCAN_MAX
                    ? NULL
                    : mmc_state_place_best(state, pl, distinct, &exhausted);

            if (exhausted) {
                best = mmc_state_place_scan(state, pl, distinct);
            }
            if (best == NULL) {
                break;
            }
            mmc_state_place_try(state, pl, best);
            if (pl->error != MF_OK) {
                return;
            }
        }
        if (pl->n == want) {
            return;
        }
    }
}

void mmc_state_place_rollback(mmc_state_place_t *pl)
{
    for (uint32_t i = 0; i < pl->n; i++) {
        (void)mmc_alloc_free(pl->segs[i]->alloc, pl->offsets[i], pl->len);
    }
    pl->n = 0;
}
