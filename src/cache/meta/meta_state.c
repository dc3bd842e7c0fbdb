/*
 * State machine of the MemCache meta service (see meta_state.h).
 *
 * Objects.  Every replica set, pending or committed, is an object
 * (mmc_state_obj_t): its size and up to MMC_MAX_REPLICAS replicas, each a
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
 * Time.  Leases and puts get deadlines now + a constant and the clock never
 * goes back, so appending to one FIFO per kind keeps each sorted by
 * deadline: expiry pops from the front, O(1) per expired item.
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
 * Eviction.  Each segment keeps the replicas of committed, linked objects
 * on an LRU list (seg->lru, oldest first); commit appends, GET moves to
 * the end, unlink and free take them off.  A walk pops candidates from the
 * front: an object with leases is moved to the end (it is being read, so
 * recently used) and counted in seg->skipped, any other is evicted whole.
 * When a segment's skipped count reaches its list length, every candidate
 * was passed over since its last eviction: the segment is stuck and
 * background passes leave it alone until a candidate appears (a commit
 * there, or the last lease of one of its objects going).  So a segment
 * full of leased objects stays above its mark without the passes spinning
 * on it.  state->evict_due tells the caller that a pass may now do work.
 *
 * Invariants: a key is at most once in the index and at most once in the
 * pending map; an owner's rank, puts and leases are on its lists; every
 * replica is on exactly one segment's list, and on that segment's LRU list
 * exactly when its object is committed and linked.
 */
#include "cache/meta/meta_state.h"

#include "cache/meta/alloc.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MMC_STATE_NMEDIA  2
#define MMC_STATE_NO_RANK UINT32_MAX
/* Candidates a put item may visit per object it may evict, plus a few:
 * bounds the walk over leased objects. */
#define MMC_STATE_PUT_VISITS_PER_EVICTION 8u
#define MMC_STATE_PUT_VISITS_EXTRA        64u

typedef struct mmc_state_obj mmc_state_obj_t;
typedef struct mmc_state_put mmc_state_put_t;
typedef struct mmc_state_rank mmc_state_rank_t;

typedef struct mmc_state_seg {
    mmc_state_rank_t *rank;
    uint8_t media;
    uint64_t gva;
    uint64_t capacity; /* the allocator's */
    uint64_t used;     /* rounded sizes of the replicas here */
    uint64_t nreps;
    mmc_alloc_t *alloc;
    mf_list_t reps;   /* of mmc_state_rep_t */
    mf_list_t lru;    /* of mmc_state_rep_t of linked objects, oldest first */
    uint64_t nlru;    /* on lru */
    uint64_t skipped; /* leased candidates passed over since an eviction */
    bool stuck;       /* every candidate was passed over: see above */
    bool evicting;    /* a background pass is bringing it to its low mark */
} mmc_state_seg_t;

struct mmc_state_rank {
    uint32_t rank;
    uint32_t host_idx;
    mmc_state_owner_t *owner; /* NULL: not registered */
    mmc_state_seg_t *segs[MMC_STATE_NMEDIA];
    mf_list_t member_link; /* in state->members while it has segments */
    uint64_t epoch;        /* placement round that tried it last */
    char name[MMC_PROTO_NAME_MAX + 1];
};

typedef struct mmc_state_rep {
    mf_list_t link;     /* in seg->reps */
    mf_list_t lru_link; /* in seg->lru while in_lru */
    bool in_lru;
    mmc_state_seg_t *seg; /* NULL: empty slot */
    mmc_state_obj_t *obj;
    uint64_t offset;
} mmc_state_rep_t;

struct mmc_state_obj {
    uint64_t size;
    uint64_t version; /* id of the put that wrote it */
    uint64_t damage;  /* replicas lost with their segments */
    uint32_t nrep;    /* live slots of reps (slots keep their order) */
    uint32_t nleases;
    mmc_state_put_t *put; /* non-NULL while pending */
    bool linked;          /* in the index */
    bool unlinked;        /* on state->unlinked */
    mf_list_t unlinked_link;
    mmc_state_rep_t reps[MMC_MAX_REPLICAS];
    size_t key_len;
    char key[];
};

struct mmc_state_put {
    uint64_t id;
    uint64_t deadline_ms;
    uint32_t flags;
    mmc_state_owner_t *owner;
    mmc_state_obj_t *obj;
    mf_list_t owner_link;
    mf_list_t time_link;
};

typedef struct mmc_state_lease {
    uint64_t id;
    uint64_t expiry_ms;
    uint64_t damage; /* obj->damage when granted */
    mmc_state_obj_t *obj;
    mmc_state_owner_t *owner;
    mf_list_t owner_link;
    mf_list_t time_link;
} mmc_state_lease_t;

struct mmc_state_owner {
    mmc_state_rank_t *rank; /* NULL: not registered */
    mf_list_t puts;         /* of mmc_state_put_t */
    mf_list_t leases;       /* of mmc_state_lease_t */
    uint64_t nleases;       /* on leases */
    mf_list_t link;         /* in state->owners */
};

/* An interned host id; refs 0: a free slot (id NULL) on the free list. */
typedef struct mmc_state_host {
    char *id;
    uint32_t refs;      /* registered ranks on this host */
    uint32_t next_free; /* free slot: index + 1 of the next, 0 = none */
} mmc_state_host_t;

struct mmc_state {
    mmc_state_params_t params;
    uint64_t next_id;
    uint64_t epoch;
    mmc_state_rank_t *ranks; /* params.max_ranks */
    mf_list_t members;       /* ranks with segments, registration order */
    mf_vec_t hosts;          /* of mmc_state_host_t, by host_idx */
    uint32_t free_host;      /* index + 1 of a free slot, 0 = none */
    mf_hmap_t host_map;      /* host id -> host_idx + 1 */
    mf_hmap_t index;         /* key -> committed mmc_state_obj_t */
    mf_hmap_t pending;       /* key -> mmc_state_put_t */
    mf_hmap_t puts;          /* put id -> mmc_state_put_t */
    mf_hmap_t leases;        /* lease id -> mmc_state_lease_t */
    mf_list_t put_fifo;      /* by deadline */
    mf_list_t lease_fifo;    /* by expiry */
    mf_list_t unlinked;      /* of mmc_state_obj_t */
    mf_list_t owners;
    bool evict_due; /* a background pass may have work: see above */
    mmc_state_counters_t counters;
};

/* ---- helpers ---- */

static uint64_t mmc_state_round(const mmc_state_t *state, uint64_t size)
{
    return MF_ALIGN_UP(size, state->params.alloc_align);
}

static uint64_t mmc_state_new_id(mmc_state_t *state)
{
    return state->next_id++;
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

static mmc_state_rank_t *mmc_state_rank_at(const mmc_state_t *state,
                                           uint32_t rank)
{
    if (rank >= state->params.max_ranks) {
        return NULL;
    }
    return &state->ranks[rank];
}

static uint64_t mmc_state_rank_free(const mmc_state_rank_t *rank)
{
    uint64_t best = 0;

    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        const mmc_state_seg_t *seg = rank->segs[m];
        if ((seg != NULL) && (seg->capacity - seg->used > best)) {
            best = seg->capacity - seg->used;
        }
    }
    return best;
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
    for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
        const mmc_state_rep_t *rep = &obj->reps[i];
        if (rep->seg == NULL) {
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

/* ---- LRU and watermarks ---- */

static bool mmc_state_evict_enabled(const mmc_state_t *state)
{
    return (state->params.evict_high_pct > 0) &&
           (state->params.evict_high_pct < 100);
}

/* used > pct% of capacity (capacity < 2^47: no overflow). */
static bool mmc_state_seg_above(const mmc_state_seg_t *seg, uint32_t pct)
{
    return seg->used * 100 > seg->capacity * pct;
}

static bool mmc_state_seg_over_high(const mmc_state_t *state,
                                    const mmc_state_seg_t *seg)
{
    return mmc_state_evict_enabled(state) &&
           mmc_state_seg_above(seg, state->params.evict_high_pct);
}

/* A pass may do work in seg now: tell the caller. */
static void mmc_state_seg_note(mmc_state_t *state, const mmc_state_seg_t *seg)
{
    if (!seg->stuck && mmc_state_seg_over_high(state, seg)) {
        state->evict_due = true;
    }
}

/* A new candidate in seg: it is not stuck any more. */
static void mmc_state_seg_unstick(mmc_state_t *state, mmc_state_seg_t *seg)
{
    seg->stuck = false;
    seg->skipped = 0;
    mmc_state_seg_note(state, seg);
}

static void mmc_state_lru_add(mmc_state_t *state, mmc_state_rep_t *rep)
{
    mf_list_push_back(&rep->seg->lru, &rep->lru_link);
    rep->in_lru = true;
    rep->seg->nlru++;
    mmc_state_seg_unstick(state, rep->seg);
}

static void mmc_state_lru_del(mmc_state_rep_t *rep)
{
    if (rep->in_lru) {
        mf_list_del(&rep->lru_link);
        rep->in_lru = false;
        rep->seg->nlru--;
    }
}

static void mmc_state_lru_touch(mmc_state_rep_t *rep)
{
    if (rep->in_lru) {
        mf_list_del(&rep->lru_link);
        mf_list_push_back(&rep->seg->lru, &rep->lru_link);
    }
}

/* ---- replicas and objects ---- */

/* Takes the replica out of its segment; frees its space unless the segment
 * is being dropped (free_space false). */
static void mmc_state_rep_remove(mmc_state_t *state, mmc_state_rep_t *rep,
                                 bool free_space)
{
    mmc_state_seg_t *seg = rep->seg;
    uint64_t len = mmc_state_round(state, rep->obj->size);

    mmc_state_lru_del(rep);
    mf_list_del(&rep->link);
    seg->nreps--;
    seg->used -= len;
    if (free_space) {
        (void)mmc_alloc_free(seg->alloc, rep->offset, len);
    }
    rep->seg = NULL;
    rep->obj->nrep--;
}

static void mmc_state_obj_free(mmc_state_t *state, mmc_state_obj_t *obj)
{
    for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
        if (obj->reps[i].seg != NULL) {
            mmc_state_rep_remove(state, &obj->reps[i], true);
        }
    }
    if (obj->unlinked) {
        mf_list_del(&obj->unlinked_link);
        state->counters.unlinked--;
    }
    free(obj);
}

/* Accounts for a committed object that left the index; frees it unless
 * leased. */
static void mmc_state_obj_detach(mmc_state_t *state, mmc_state_obj_t *obj)
{
    for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
        if (obj->reps[i].seg != NULL) {
            mmc_state_lru_del(&obj->reps[i]);
        }
    }
    obj->linked = false;
    state->counters.objects--;
    state->counters.object_bytes -= obj->size;
    if (obj->nleases == 0) {
        mmc_state_obj_free(state, obj);
        return;
    }
    obj->unlinked = true;
    mf_list_push_back(&state->unlinked, &obj->unlinked_link);
    state->counters.unlinked++;
}

/* Takes a committed object out of the index; frees it unless leased. */
static void mmc_state_obj_unlink(mmc_state_t *state, mmc_state_obj_t *obj)
{
    (void)mf_hmap_remove(&state->index, obj->key, obj->key_len);
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
    obj->nleases--;
    if ((obj->nleases == 0) && !obj->linked) {
        mmc_state_obj_free(state, obj);
        return;
    }
    if (obj->nleases == 0) { /* a candidate again */
        for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
            if (obj->reps[i].seg != NULL) {
                mmc_state_seg_unstick(state, obj->reps[i].seg);
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
    (void)mf_hmap_remove(&state->pending, obj->key, obj->key_len);
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

/* ---- hosts ---- */

static mmc_state_host_t *mmc_state_host_at(const mmc_state_t *state,
                                           uint32_t host_idx)
{
    return mf_vec_at(&state->hosts, host_idx);
}

/* Drops a registered rank's reference; frees the id at 0 and puts the slot
 * on the free list. */
static void mmc_state_host_unref(mmc_state_t *state, uint32_t host_idx)
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

    while ((elem = mf_list_pop_front(&seg->reps)) != NULL) {
        mmc_state_rep_t *rep = mf_container_of(elem, mmc_state_rep_t, link);
        mmc_state_obj_t *obj = rep->obj;

        mf_list_init(&rep->link); /* popped: rep_remove deletes it again */
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
        }
        /* An unlinked object keeps its last lease holders waiting; it is
         * freed when they release. */
    }
    mmc_alloc_destroy(seg->alloc);
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
        (params->alloc_align == 0) ||
        ((params->alloc_align & (params->alloc_align - 1)) != 0) ||
        (params->evict_high_pct > 100) ||
        ((params->evict_high_pct > 0) &&
         (params->evict_low_pct >= params->evict_high_pct))) {
        mf_error("meta state: bad parameters (max_ranks %" PRIu32
                 ", max_segment_size %" PRIu64 ", alloc_align %" PRIu64
                 ", evict_high_pct %" PRIu32 ", evict_low_pct %" PRIu32 ")",
                 params->max_ranks, params->max_segment_size,
                 params->alloc_align, params->evict_high_pct,
                 params->evict_low_pct);
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
    state->params = *params;
    if (state->params.max_owner_leases == 0) {
        state->params.max_owner_leases = MMC_META_MAX_LEASES_PER_OWNER;
    }
    state->next_id = mmc_state_seed_id();
    for (uint32_t r = 0; r < params->max_ranks; r++) {
        state->ranks[r].rank = r;
        mf_list_init(&state->ranks[r].member_link);
    }
    mf_list_init(&state->members);
    mf_vec_init(&state->hosts, sizeof(mmc_state_host_t));
    mf_hmap_init(&state->host_map);
    mf_hmap_init(&state->index);
    mf_hmap_init(&state->pending);
    mf_hmap_init(&state->puts);
    mf_hmap_init(&state->leases);
    mf_list_init(&state->put_fifo);
    mf_list_init(&state->lease_fifo);
    mf_list_init(&state->unlinked);
    mf_list_init(&state->owners);
    *state_p = state;
    return MF_OK;
}

void mmc_state_destroy(mmc_state_t *state)
{
    mf_list_t *elem;
    mf_hmap_iter_t it;
    mf_hmap_entry_t *entry;

    if (state == NULL) {
        return;
    }
    while ((elem = state->owners.next) != &state->owners) {
        mmc_state_owner_destroy(state,
                                mf_container_of(elem, mmc_state_owner_t, link));
    }
    /* Owners held every put, lease and segment: what is left are
     * committed objects without replicas' segments. */
    mf_hmap_iter_init(&state->index, &it);
    while ((entry = mf_hmap_next(&state->index, &it)) != NULL) {
        free(entry->value);
    }
    for (size_t i = 0; i < state->hosts.count; i++) {
        free(mmc_state_host_at(state, (uint32_t)i)->id);
    }
    mf_vec_free(&state->hosts);
    mf_hmap_free(&state->host_map);
    mf_hmap_free(&state->index);
    mf_hmap_free(&state->pending);
    mf_hmap_free(&state->puts);
    mf_hmap_free(&state->leases);
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
    if (owner->rank != NULL) {
        mmc_state_rank_drop(state, owner->rank);
    }
}

void mmc_state_owner_destroy(mmc_state_t *state, mmc_state_owner_t *owner)
{
    if (owner == NULL) {
        return;
    }
    mmc_state_owner_reset(state, owner);
    mf_list_del(&owner->link);
    free(owner);
}

uint32_t mmc_state_owner_rank(const mmc_state_owner_t *owner)
{
    return (owner->rank != NULL) ? owner->rank->rank : MMC_STATE_NO_RANK;
}

/* ---- membership ---- */

/* The index of host_id with a reference taken for a registration (drop it
 * with mmc_state_host_unref); a new id takes a free slot first. */
static mf_status_t mmc_state_host_intern(mmc_state_t *state,
                                         const char *host_id,
                                         uint32_t *host_idx_p)
{
    size_t len = strlen(host_id);
    void *found = mf_hmap_get(&state->host_map, host_id, len);
    mmc_state_host_t *h;
    char *copy;
    uint32_t idx;

    if (found != NULL) {
        idx = (uint32_t)((uintptr_t)found - 1);
        mmc_state_host_at(state, idx)->refs++;
        *host_idx_p = idx;
        return MF_OK;
    }
    copy = strdup(host_id);
    if (copy == NULL) {
        goto err;
    }
    if (state->free_host != 0) {
        idx = state->free_host - 1;
        h = mmc_state_host_at(state, idx);
    } else {
        mmc_state_host_t fresh = {NULL, 0, 0};

        idx = (uint32_t)state->hosts.count;
        h = mf_vec_push(&state->hosts, &fresh);
        if (h == NULL) {
            goto err_free_copy;
        }
        /* a free slot now, taken below */
        h->next_free = 0;
        state->free_host = idx + 1;
    }
    if (mf_hmap_put(&state->host_map, host_id, len,
                    (void *)(uintptr_t)(idx + 1), NULL) != MF_OK) {
        goto err_free_copy; /* the slot stays free */
    }
    state->free_host = h->next_free;
    h->next_free = 0;
    h->id = copy;
    h->refs = 1;
    state->counters.hosts++;
    *host_idx_p = idx;
    return MF_OK;

err_free_copy:
    free(copy);
err:
    mf_error("meta state: out of memory for host %s", host_id);
    return MF_ERR_NOMEM;
}

/* Whether [a, a + alen) and [b, b + blen) meet (neither wraps). */
static bool mmc_state_ranges_meet(uint64_t a, uint64_t alen, uint64_t b,
                                  uint64_t blen)
{
    return (a < b + blen) && (b < a + alen);
}

/* An HBM segment: not at 0, not wrapping, outside the DRAM window of the
 * pool and apart from every other rank's HBM segment. */
static mf_status_t mmc_state_check_hbm(const mmc_state_t *state, uint32_t rank,
                                       const mmc_seg_desc_t *s)
{
    const mmc_state_params_t *p = &state->params;
    uint64_t window = (uint64_t)p->max_ranks * p->max_segment_size;

    if ((s->gva == 0) || (s->gva > UINT64_MAX - s->size)) {
        mf_warn("meta: rank %" PRIu32 ": HBM segment at 0x%" PRIx64 " (%" PRIu64
                " bytes) is out of the address space",
                rank, s->gva, s->size);
        return MF_ERR_INVALID;
    }
    if (mmc_state_ranges_meet(s->gva, s->size, p->host_base, window)) {
        mf_warn("meta: rank %" PRIu32 ": HBM segment at 0x%" PRIx64
                " overlaps the DRAM window",
                rank, s->gva);
        return MF_ERR_INVALID;
    }
    for (uint32_t r = 0; r < p->max_ranks; r++) {
        const mmc_state_seg_t *other = state->ranks[r].segs[MMC_MEDIA_HBM];

        if ((r != rank) && (other != NULL) &&
            mmc_state_ranges_meet(s->gva, s->size, other->gva,
                                  other->capacity)) {
            mf_warn("meta: rank %" PRIu32 ": HBM segment at 0x%" PRIx64
                    " overlaps rank %" PRIu32 "'s",
                    rank, s->gva, r);
            return MF_ERR_INVALID;
        }
    }
    return MF_OK;
}

static mf_status_t mmc_state_check_segs(const mmc_state_t *state, uint32_t rank,
                                        uint32_t nsegs,
                                        const mmc_seg_desc_t *segs)
{
    const mmc_state_params_t *p = &state->params;
    bool seen[MMC_STATE_NMEDIA] = {false, false};

    if (nsegs > MMC_PROTO_MAX_SEGS) {
        mf_warn("meta: rank %" PRIu32 " registers %" PRIu32 " segments", rank,
                nsegs);
        return MF_ERR_INVALID;
    }
    for (uint32_t i = 0; i < nsegs; i++) {
        const mmc_seg_desc_t *s = &segs[i];

        if ((s->media >= MMC_STATE_NMEDIA) || seen[s->media]) {
            mf_warn("meta: rank %" PRIu32 ": segment %" PRIu32
                    " has media %u (unknown or repeated)",
                    rank, i, s->media);
            return MF_ERR_INVALID;
        }
        seen[s->media] = true;
        if ((s->size == 0) || (s->size > p->max_segment_size) ||
            (s->size < p->alloc_align)) {
            mf_warn("meta: rank %" PRIu32 ": segment size %" PRIu64
                    " not in [%" PRIu64 ", %" PRIu64 "]",
                    rank, s->size, p->alloc_align, p->max_segment_size);
            return MF_ERR_INVALID;
        }
        if ((s->media == MMC_MEDIA_DRAM) &&
            (s->gva != p->host_base + (uint64_t)rank * p->max_segment_size)) {
            mf_warn("meta: rank %" PRIu32 ": DRAM segment at 0x%" PRIx64
                    ", expected 0x%" PRIx64,
                    rank, s->gva,
                    p->host_base + (uint64_t)rank * p->max_segment_size);
            return MF_ERR_INVALID;
        }
        if ((s->media == MMC_MEDIA_HBM) &&
            (mmc_state_check_hbm(state, rank, s) != MF_OK)) {
            return MF_ERR_INVALID;
        }
    }
    return MF_OK;
}

mf_status_t mmc_state_register(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint32_t rank, const char *host_id,
                               const char *name, uint32_t nsegs,
                               const mmc_seg_desc_t *segs, uint32_t *host_idx_p)
{
    mmc_state_seg_t *made[MMC_STATE_NMEDIA] = {NULL, NULL};
    mmc_state_rank_t *r = mmc_state_rank_at(state, rank);
    mf_status_t status;
    uint32_t host_idx;

    if (owner->rank != NULL) {
        mf_warn("meta: a connection that holds rank %" PRIu32
                " registers again",
                owner->rank->rank);
        return MF_ERR_STATE;
    }
    if (r == NULL) {
        mf_warn("meta: rank %" PRIu32 " out of range (world size %" PRIu32 ")",
                rank, state->params.max_ranks);
        return MF_ERR_INVALID;
    }
    if ((host_id == NULL) || (host_id[0] == '\0')) {
        mf_warn("meta: rank %" PRIu32 " registers without a host id", rank);
        return MF_ERR_INVALID;
    }
    status = mmc_state_check_segs(state, rank, nsegs, segs);
    if (status != MF_OK) {
        return status;
    }
    if (r->owner != NULL) {
        mf_warn("meta: rank %" PRIu32 " is registered already", rank);
        return MF_ERR_EXISTS;
    }
    status = mmc_state_host_intern(state, host_id, &host_idx);
    if (status != MF_OK) {
        return status;
    }
    for (uint32_t i = 0; i < nsegs; i++) {
        mmc_state_seg_t *seg = calloc(1, sizeof(*seg));
        mmc_alloc_stats_t st;

        if (seg == NULL) {
            mf_error("meta state: out of memory for a segment");
            status = MF_ERR_NOMEM;
            goto err_free_segs;
        }
        made[segs[i].media] = seg;
        status = mmc_alloc_create(segs[i].size, state->params.alloc_align,
                                  &seg->alloc);
        if (status != MF_OK) {
            goto err_free_segs;
        }
        mmc_alloc_stats(seg->alloc, &st);
        seg->rank = r;
        seg->media = segs[i].media;
        seg->gva = segs[i].gva;
        seg->capacity = st.capacity;
        mf_list_init(&seg->reps);
        mf_list_init(&seg->lru);
    }
    r->owner = owner;
    r->host_idx = host_idx;
    mf_strlcpy(r->name, (name != NULL) ? name : "", sizeof(r->name));
    owner->rank = r;
    state->counters.registered++;
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        r->segs[m] = made[m];
    }
    if (nsegs > 0) {
        mf_list_push_back(&state->members, &r->member_link);
        state->counters.members++;
    }
    *host_idx_p = host_idx;
    return MF_OK;

err_free_segs:
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        if (made[m] != NULL) {
            mmc_alloc_destroy(made[m]->alloc);
            free(made[m]);
        }
    }
    mmc_state_host_unref(state, host_idx);
    return status;
}

/* ---- placement ---- */

typedef struct mmc_state_place {
    uint64_t len; /* rounded size */
    uint32_t n;
    uint32_t hosts[MMC_MAX_REPLICAS];
    mmc_state_seg_t *segs[MMC_MAX_REPLICAS];
    uint64_t offsets[MMC_MAX_REPLICAS];
    mf_status_t error; /* MF_ERR_NOMEM from an allocator */
} mmc_state_place_t;

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
    if (mmc_state_rank_free(r) < pl->len) {
        return false;
    }
    return !distinct || !mmc_state_place_host_used(pl, r->host_idx);
}

/* Tries the rank's segments (DRAM, then HBM); marks it tried. */
static void mmc_state_place_try(mmc_state_t *state, mmc_state_place_t *pl,
                                mmc_state_rank_t *r)
{
    r->epoch = state->epoch;
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        mmc_state_seg_t *seg = r->segs[m];
        uint64_t offset;
        mf_status_t status;

        if ((seg == NULL) || (seg->capacity - seg->used < pl->len)) {
            continue;
        }
        status = mmc_alloc_alloc(seg->alloc, pl->len, &offset);
        if (status == MF_OK) {
            pl->hosts[pl->n] = r->host_idx;
            pl->segs[pl->n] = seg;
            pl->offsets[pl->n] = offset;
            pl->n++;
            return;
        }
        if (status == MF_ERR_NOMEM) {
            pl->error = status;
            return;
        }
        /* NOT_FOUND (fragmented) or TOO_LARGE: try the next one */
    }
}

/*
 * Chooses `want` distinct ranks.  Two phases: first only ranks on hosts not
 * used yet, then any; in each, preferred ranks in order, then the caller's
 * rank, then the rank with the most free space (lowest rank on a tie).
 */
static void mmc_state_place(mmc_state_t *state, mmc_state_place_t *pl,
                            uint32_t want, uint32_t own,
                            const mmc_state_put_opts_t *opts)
{
    state->epoch++;
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
                free_bytes = mmc_state_rank_free(r);
                if ((best == NULL) || (free_bytes > best_free) ||
                    ((free_bytes == best_free) && (r->rank < best->rank))) {
                    best = r;
                    best_free = free_bytes;
                }
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

static void mmc_state_place_rollback(mmc_state_place_t *pl)
{
    for (uint32_t i = 0; i < pl->n; i++) {
        (void)mmc_alloc_free(pl->segs[i]->alloc, pl->offsets[i], pl->len);
    }
    pl->n = 0;
}

/* ---- eviction ---- */

/* Evicts a committed, linked object without leases: gone whole, like
 * REMOVE, space freed at once. */
static void mmc_state_evict_obj(mmc_state_t *state, mmc_state_obj_t *obj,
                                bool for_put)
{
    mf_debug("meta: evicting %.*s (%" PRIu64 " bytes, %" PRIu32 " replicas)%s",
             (int)obj->key_len, obj->key, obj->size, obj->nrep,
             for_put ? " for a put" : "");
    state->counters.evictions++;
    state->counters.evictions_put += for_put;
    state->counters.evicted_bytes += obj->size;
    mmc_state_obj_unlink(state, obj);
}

/* Whether seg is where the walk wants it: a free block of len bytes
 * (len > 0), or at most its low mark (len 0). */
static bool mmc_state_seg_enough(const mmc_state_t *state,
                                 const mmc_state_seg_t *seg, uint64_t len)
{
    mmc_alloc_stats_t st;

    if (len == 0) {
        return !mmc_state_seg_above(seg, state->params.evict_low_pct);
    }
    if (seg->capacity - seg->used < len) {
        return false;
    }
    mmc_alloc_stats(seg->alloc, &st);
    return st.largest_free >= len;
}

/*
 * Walks seg's LRU list from the oldest: evicts unleased objects until seg
 * is enough for len (see above), *evicted_p reaches max_evict or visits
 * reach max_visits; leased ones go to the end.  Marks seg stuck when every
 * candidate was passed over.  Returns the candidates visited.
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
        rep = mf_container_of(seg->lru.next, mmc_state_rep_t, lru_link);
        visits++;
        if (rep->obj->nleases > 0) {
            mmc_state_lru_touch(rep);
            seg->skipped++;
            state->counters.evict_skipped++;
            continue;
        }
        mmc_state_evict_obj(state, rep->obj, for_put);
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

/*
 * A put item of len bytes found fewer than `want` ranks with room: evicts
 * from the candidate segments, in placement order (preferred ranks, the
 * caller's rank, then the members), until `want` ranks have a free block
 * of len or evict_max_per_put objects went.  Pending puts (this request's
 * among them) are never candidates.  True when a new placement may work.
 */
static bool mmc_state_put_make_room(mmc_state_t *state, uint64_t len,
                                    uint32_t want, uint32_t own,
                                    const mmc_state_put_opts_t *opts)
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
        for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
            mmc_state_seg_t *seg = r->segs[m];

            if ((seg == NULL) || (seg->capacity < len)) {
                continue;
            }
            if (!mmc_state_seg_enough(state, seg, len) && (visits > 0)) {
                visits -= mmc_state_seg_evict(state, seg, len, max_evict,
                                              visits, true, &evicted);
            }
            if (mmc_state_seg_enough(state, seg, len)) {
                ready++;
                break;
            }
        }
    }
    return (ready >= want) && (evicted > 0);
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
        (opts->npref > MMC_MAX_REPLICAS) ||
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
        (mf_hmap_get(&state->index, key, key_len) != NULL)) {
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

    obj = calloc(1, sizeof(*obj) + key_len + 1);
    put = calloc(1, sizeof(*put));
    if ((obj == NULL) || (put == NULL)) {
        goto err_free;
    }
    obj->size = size;
    obj->key_len = key_len;
    memcpy(obj->key, key, key_len);
    obj->put = put;
    put->id = mmc_state_new_id(state);
    put->flags = opts->flags;
    put->owner = owner;
    put->obj = obj;
    put->deadline_ms = now_ms + state->params.put_timeout_ms;
    obj->version = put->id;
    if (mf_hmap_put(&state->puts, &put->id, sizeof(put->id), put, NULL) !=
        MF_OK) {
        goto err_free;
    }
    if (mf_hmap_put(&state->pending, obj->key, key_len, put, NULL) != MF_OK) {
        (void)mf_hmap_remove(&state->puts, &put->id, sizeof(put->id));
        goto err_free;
    }
    for (uint32_t i = 0; i < pl.n; i++) {
        mmc_state_rep_t *rep = &obj->reps[i];

        rep->seg = pl.segs[i];
        rep->obj = obj;
        rep->offset = pl.offsets[i];
        mf_list_push_back(&pl.segs[i]->reps, &rep->link);
        pl.segs[i]->nreps++;
        pl.segs[i]->used += pl.len;
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
    if (mf_hmap_put(&state->index, obj->key, obj->key_len, obj, &old) !=
        MF_OK) {
        mf_error("meta state: out of memory committing a put");
        mmc_state_put_abort(state, put);
        return MF_ERR_NOMEM;
    }
    if (old != NULL) {
        mmc_state_obj_detach(state, old);
    }
    mmc_state_put_forget(state, put);
    obj->linked = true;
    for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
        if (obj->reps[i].seg != NULL) {
            mmc_state_lru_add(state, &obj->reps[i]);
        }
    }
    state->counters.objects++;
    state->counters.object_bytes += obj->size;
    state->counters.puts_committed++;
    return MMC_OK;
}

/* ---- reads ---- */

mmc_status_t mmc_state_get(mmc_state_t *state, mmc_state_owner_t *owner,
                           const char *key, size_t key_len, uint64_t now_ms,
                           mmc_obj_result_t *res)
{
    mmc_state_obj_t *obj = mf_hmap_get(&state->index, key, key_len);
    mmc_state_lease_t *lease;

    memset(res, 0, sizeof(*res));
    if (obj == NULL) {
        res->status = MMC_ERR_NOT_FOUND;
        return res->status;
    }
    if (owner->nleases >= state->params.max_owner_leases) {
        mf_debug("meta: an owner holds %" PRIu64 " leases; get of %.*s refused",
                 owner->nleases, (int)key_len, key);
        state->counters.leases_refused++;
        res->status = MF_ERR_TOO_LARGE;
        return res->status;
    }
    lease = calloc(1, sizeof(*lease));
    if (lease == NULL) {
        goto err;
    }
    lease->id = mmc_state_new_id(state);
    lease->expiry_ms = now_ms + state->params.lease_ms;
    lease->obj = obj;
    lease->owner = owner;
    lease->damage = obj->damage;
    if (mf_hmap_put(&state->leases, &lease->id, sizeof(lease->id), lease,
                    NULL) != MF_OK) {
        free(lease);
        goto err;
    }
    mf_list_push_back(&owner->leases, &lease->owner_link);
    mf_list_push_back(&state->lease_fifo, &lease->time_link);
    owner->nleases++;
    obj->nleases++;
    for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
        if (obj->reps[i].seg != NULL) {
            mmc_state_lru_touch(&obj->reps[i]);
        }
    }
    state->counters.leases++;
    state->counters.gets++;
    mmc_state_fill_result(state, obj, lease->id, res);
    return MMC_OK;

err:
    mf_error("meta state: out of memory for a lease");
    res->status = MF_ERR_NOMEM;
    return res->status;
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
    const mmc_state_obj_t *obj = mf_hmap_get(&state->index, key, key_len);

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

mmc_status_t mmc_state_remove(mmc_state_t *state, const char *key,
                              size_t key_len)
{
    mmc_state_obj_t *obj = mf_hmap_get(&state->index, key, key_len);

    if (obj == NULL) {
        return MMC_ERR_NOT_FOUND;
    }
    mmc_state_obj_unlink(state, obj);
    state->counters.removes++;
    return MMC_OK;
}

/* ---- time ---- */

bool mmc_state_expire_some(mmc_state_t *state, uint64_t now_ms, uint64_t budget)
{
    while (!mf_list_empty(&state->lease_fifo)) {
        mmc_state_lease_t *lease = mf_container_of(
            state->lease_fifo.next, mmc_state_lease_t, time_link);
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
                 put->id, (int)put->obj->key_len, put->obj->key,
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
    const mf_list_t *elem;

    if (mmc_alloc_check(seg->alloc) != MF_OK) {
        return MF_ERR_STATE;
    }
    for (elem = seg->reps.next; elem != &seg->reps; elem = elem->next) {
        const mmc_state_rep_t *rep =
            mf_container_of(elem, mmc_state_rep_t, link);
        if (rep->seg != seg) {
            mf_error("meta check: replica on the wrong segment");
            return MF_ERR_STATE;
        }
        used += mmc_state_round(state, rep->obj->size);
        n++;
    }
    mmc_alloc_stats(seg->alloc, &st);
    for (elem = seg->lru.next; elem != &seg->lru; elem = elem->next) {
        const mmc_state_rep_t *rep =
            mf_container_of(elem, mmc_state_rep_t, lru_link);
        if ((rep->seg != seg) || !rep->in_lru || !rep->obj->linked ||
            (rep->obj->put != NULL) || (++nlru > seg->nreps)) {
            mf_error("meta check: rank %" PRIu32 " media %u: a bad LRU entry",
                     seg->rank->rank, seg->media);
            return MF_ERR_STATE;
        }
    }
    if (nlru != seg->nlru) {
        mf_error("meta check: rank %" PRIu32 " media %u: LRU holds %" PRIu64
                 ", counts %" PRIu64,
                 seg->rank->rank, seg->media, nlru, seg->nlru);
        return MF_ERR_STATE;
    }
    if ((used != seg->used) || (st.used != used) || (n != seg->nreps) ||
        (st.allocations != n)) {
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
    mf_hmap_iter_t it;
    mf_hmap_entry_t *entry;
    uint64_t bytes = 0;
    uint64_t members = 0;
    const mf_list_t *elem;

    for (uint32_t r = 0; r < state->params.max_ranks; r++) {
        const mmc_state_rank_t *rank = &state->ranks[r];
        bool member = false;

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
    mf_hmap_iter_init(&state->index, &it);
    while ((entry = mf_hmap_next(&state->index, &it)) != NULL) {
        const mmc_state_obj_t *obj = entry->value;
        if (!obj->linked || (obj->put != NULL) || (obj->nrep == 0)) {
            mf_error("meta check: object %s in the index is not committed",
                     entry->key);
            return MF_ERR_STATE;
        }
        for (int i = 0; i < MMC_MAX_REPLICAS; i++) {
            if ((obj->reps[i].seg != NULL) && !obj->reps[i].in_lru) {
                mf_error("meta check: object %.*s has a replica off the LRU",
                         (int)obj->key_len, obj->key);
                return MF_ERR_STATE;
            }
        }
        bytes += obj->size;
    }
    for (elem = state->unlinked.next; elem != &state->unlinked;
         elem = elem->next) {
        const mmc_state_obj_t *obj =
            mf_container_of(elem, mmc_state_obj_t, unlinked_link);
        if (obj->linked || (obj->nleases == 0)) {
            mf_error("meta check: unlinked object %.*s is linked or free",
                     (int)obj->key_len, obj->key);
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
