/*
 * The meta service's state machine, private to its files (the design and
 * invariants are in meta_state.c):
 *   meta_state.c          objects, replicas, segments, owners, puts, leases,
 *                         reads, time
 *   meta_state_members.c  ranks registering and dropping their segments
 *   meta_state_space.c    placement of replicas
 *   meta_state_evict.c    eviction: the policies' queues, the ghost, passes
 *   meta_state_check.c    counters and the self-check the tests run
 *   meta_state_record.c   the holders' records: entries to send, and
 *                         objects restored from a record
 *   meta_state_repair.c   re-replication of objects that lost replicas
 */
#ifndef MMC_CACHE_META_META_STATE_INT_H
#define MMC_CACHE_META_META_STATE_INT_H

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

#define MMC_STATE_NMEDIA 3
/* The largest SSD segment: no window bounds it. */
#define MMC_STATE_SSD_MAX (1ull << 50)
#define MMC_STATE_NO_RANK UINT32_MAX
/* Candidates a put item may visit per object it may evict, plus a few:
 * bounds the walk over leased objects and, with s3fifo, over those that
 * were read since they entered their queue (at most MMC_STATE_FREQ_MAX
 * turns on the main queue and one move off the small one). */
#define MMC_STATE_FREQ_MAX                3u
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
    /* its replicas (nreps), each on one of three lists: */
    mf_list_t reps;       /* of mmc_state_rep_t that are no candidates */
    mf_list_t lru;        /* of candidates (replicas of linked objects): lru's
                             one queue, s3fifo's main one; oldest first */
    mf_list_t small;      /* s3fifo: candidates on probation, oldest first */
    uint64_t nlru;        /* candidates: on lru and small */
    uint64_t nsmall;      /* on small */
    uint64_t small_bytes; /* their rounded sizes */
    uint64_t skipped;     /* leased candidates passed over since an eviction */
    bool stuck;           /* every candidate was passed over: see above */
    bool evicting;        /* a background pass is bringing it to its low mark */
    bool restoring;       /* its holder's record is coming: no placement */
    uint32_t heap_idx;    /* in state->place[media] */
    /* moves (meta_state_move.c): bytes of replicas here being demoted,
     * gone as far as the watermarks care; and blocks allocated here for
     * moves in flight (counted in used, not replicas yet) */
    uint64_t leaving;
    uint64_t arriving;
    uint64_t narriving;
} mmc_state_seg_t;

/* The committed objects by key (meta_state_index.c): chains through the
 * objects, no allocation per entry. */
typedef struct mmc_state_index {
    mmc_state_obj_t **buckets;
    size_t nbuckets; /* a power of two, or 0 */
    size_t count;
} mmc_state_index_t;

/* The segments of a media by free space, most first (lowest rank on a
 * tie): a binary heap placement walks from the top, O(log n) per pick
 * however many members there are. */
typedef struct mmc_state_heap {
    mmc_state_seg_t **segs; /* room for params.max_ranks */
    uint32_t n;
} mmc_state_heap_t;

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
    mf_list_t link; /* in seg->lru or seg->small while in_lru, else in
                       seg->reps */
    bool in_lru;    /* an eviction candidate (on either queue) */
    bool in_small;  /* of them: on seg->small */
    uint8_t freq;   /* s3fifo: reads since it entered its queue, at most
                       MMC_STATE_FREQ_MAX */
    bool recorded;  /* the holder's record has it (ADD sent, no DEL yet) */
    bool filling;   /* a repair's destination: not a replica yet (not in
                       obj->nrep, not readable, not on the LRU) */
    uint8_t slot;   /* its index in its object's slots (mmc_state_rep_obj) */
    mmc_state_seg_t *seg; /* NULL: empty slot */
    uint64_t offset;
} mmc_state_rep_t;

/* Laid out widest first, so that no padding sits between fields: an index
 * of millions of objects pays for every byte here. */
struct mmc_state_obj {
    uint64_t size;
    uint64_t version;     /* given at commit (or restored): newer wins */
    mmc_state_put_t *put; /* non-NULL while pending */
    struct mmc_state_repair *repair; /* the one running for it, or NULL */
    /* in state->under while linked and under-replicated, in
     * state->unlinked while unlinked and leased: never both */
    mf_list_t list_link;
    /* then, in the same allocation: nslots replica slots
     * (mmc_state_obj_reps), then the key, NUL-terminated
     * (mmc_state_obj_key); found by their offsets, not by pointers */
    mmc_state_obj_t *hnext; /* its chain in the index */
    uint32_t damage;        /* replicas lost with their segments (leases
                               compare it for equality: wrapping is fine) */
    uint32_t hash;          /* of its key, in the index */
    uint32_t key_len;       /* <= MMC_KEY_MAX */
    uint32_t nrep;          /* live slots of reps (slots keep their order) */
    uint32_t nleases;       /* leases, and a repair's hold */
    uint8_t want;           /* replicas its put asked for */
    uint8_t nslots;         /* of reps: the replicas its put asked for */
    bool under : 1;         /* on state->under */
    bool linked : 1;        /* in the index */
    bool unlinked : 1;      /* on state->unlinked */
};

/* What an index of millions of objects pays per object, besides its key
 * and the allocator's block per replica. */
_Static_assert(sizeof(mmc_state_obj_t) == 80, "an object grew");
_Static_assert(sizeof(mmc_state_rep_t) == 40, "a replica slot grew");

/* Where an object's replica slots and key are: right after it. */
#define MMC_STATE_OBJ_REPS_OFF MF_ALIGN_UP(sizeof(mmc_state_obj_t), 8)

static inline mmc_state_rep_t *mmc_state_obj_reps(const mmc_state_obj_t *obj)
{
    return (mmc_state_rep_t *)((char *)obj + MMC_STATE_OBJ_REPS_OFF);
}

/* The object a replica slot belongs to. */
static inline mmc_state_obj_t *mmc_state_rep_obj(const mmc_state_rep_t *rep)
{
    return (mmc_state_obj_t *)((char *)(rep - rep->slot) -
                               MMC_STATE_OBJ_REPS_OFF);
}

static inline char *mmc_state_obj_key(const mmc_state_obj_t *obj)
{
    return (char *)obj + MMC_STATE_OBJ_REPS_OFF +
           (size_t)obj->nslots * sizeof(mmc_state_rep_t);
}

/*
 * A job on an object that a holder carries out and reports (meta_state.h:
 * REPAIR_DONE, MOVE_DONE): a repair copies a replica to a new one on
 * another rank (meta_state_repair.c); a move copies its own replica
 * between its memory and its SSD (meta_state_move.c).  Jobs hold their
 * object like a lease, one per object at a time (obj->repair), share ids,
 * deadlines and the loss of their copier.
 */
enum {
    MMC_STATE_JOB_REPAIR = 0,
    MMC_STATE_JOB_DEMOTE = 1, /* memory -> SSD, for eviction */
    MMC_STATE_JOB_LOAD = 2,   /* SSD -> memory, for a read */
};

typedef struct mmc_state_repair {
    uint64_t id;
    uint64_t deadline_ms;
    uint8_t kind;
    mmc_state_obj_t *obj;
    mmc_state_rep_t *dst; /* repair: the filling slot; its seg NULL once
                             dropped */
    mmc_state_rep_t *src; /* move: the replica whose bytes move */
    mmc_state_seg_t *to;  /* move: where they go (a block of len there) */
    uint64_t to_offset;
    uint64_t len;
    mmc_state_owner_t *copier;
    mf_list_t link;     /* in state->repairs, by deadline */
    mf_list_t out_link; /* a move: in state->moves_out until taken */
} mmc_state_repair_t;

struct mmc_state_put {
    uint64_t id;
    uint64_t deadline_ms;
    uint32_t flags;
    mmc_state_owner_t *owner;
    mmc_state_obj_t *obj;
    mf_list_t owner_link;
    mf_list_t time_link;
};

#define MMC_STATE_LEASE_QUEUES 8

typedef struct mmc_state_lease_queue {
    uint32_t ttl_ms; /* of every lease on it (not for the last queue) */
    mf_list_t fifo;
} mmc_state_lease_queue_t;

typedef struct mmc_state_lease {
    uint64_t id;
    uint64_t expiry_ms;
    uint32_t damage; /* obj->damage when granted */
    mmc_state_obj_t *obj;
    mmc_state_owner_t *owner;
    mf_list_t owner_link;
    mf_list_t time_link;
} mmc_state_lease_t;

/* Record entries for one holder, at most MMC_REC_MAX per chunk. */
typedef struct mmc_state_rec_chunk {
    mf_wbuf_t w; /* the entries, encoded */
    uint32_t count;
} mmc_state_rec_chunk_t;

struct mmc_state_owner {
    mmc_state_rank_t *rank; /* NULL: not registered */
    void *data;             /* the caller's */
    mf_vec_t rec_out;       /* of mmc_state_rec_chunk_t, oldest first */
    uint64_t rec_seq;       /* of the last batch taken */
    mf_list_t dirty_link;   /* in state->rec_dirty while rec_out has some */
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

/*
 * s3fifo's ghost: the key hashes of objects evicted off a small queue
 * lately, per media, so that a key put again soon after goes to the main
 * queue.  Two generations of open-addressed sets of 32-bit hashes (0
 * marks an empty slot; a hash of 0 is stored as 1): inserts go to the
 * young one, and when it holds `limit` entries the old one is dropped and
 * the young one ages.  So the ghost remembers between `limit` and twice
 * `limit` of the latest keys, `limit` being the candidates of the media
 * when a generation starts: S3-FIFO's ghost holds about as many keys as
 * its main queue holds objects, and one that forgets sooner keeps none of
 * a loop too large for the pool.  A key found is taken out
 * (deleted by shifting back the entries of its probe run), so that an
 * object evicted off the main queue later is not admitted there again on
 * that old eviction.  A false hit (two keys of one hash) only admits an
 * object to the main queue.
 */
typedef struct mmc_state_ghost {
    uint32_t *set[2]; /* young, old; NULL: none (no memory, or not yet) */
    uint32_t mask[2]; /* their slots - 1 */
    uint32_t count;   /* in the young one */
    uint32_t limit;   /* of the young one */
} mmc_state_ghost_t;

struct mmc_state {
    mmc_state_params_t params;
    uint64_t next_id;
    uint64_t epoch;
    mmc_state_rank_t *ranks; /* params.max_ranks */
    mf_list_t members;       /* ranks with segments, registration order */
    mmc_state_heap_t place[MMC_STATE_NMEDIA]; /* every segment, by media */
    mf_vec_t hosts;          /* of mmc_state_host_t, by host_idx */
    uint32_t free_host;      /* index + 1 of a free slot, 0 = none */
    mf_hmap_t host_map;      /* host id -> host_idx + 1 */
    mmc_state_index_t index; /* key -> committed mmc_state_obj_t */
    mf_hmap_t pending;       /* key -> mmc_state_put_t */
    mf_hmap_t puts;          /* put id -> mmc_state_put_t */
    mf_hmap_t leases;        /* lease id -> mmc_state_lease_t */
    mf_list_t put_fifo;      /* by deadline */
    /* Leases by expiry: queue 0 holds those of the default duration,
     * queues 1..MMC_STATE_LEASE_QUEUES - 2 one other duration each (the
     * first lease of a duration takes an empty one), the last one the
     * rest, kept sorted by insertion from its end. */
    mmc_state_lease_queue_t lease_queues[MMC_STATE_LEASE_QUEUES];
    mf_list_t unlinked; /* of mmc_state_obj_t */
    mf_list_t owners;
    mf_list_t rec_dirty; /* owners with record entries to send */
    mf_list_t under;     /* of linked objects with 0 < nrep < want */
    uint64_t nunder;
    mf_list_t repairs;     /* of mmc_state_repair_t, by deadline */
    mf_hmap_t repair_ids;  /* id -> mmc_state_repair_t */
    uint32_t restoring;    /* segments restoring */
    uint64_t last_version; /* of the newest committed object */
    bool evict_due;        /* a background pass may have work: see above */
    uint64_t candidates[MMC_STATE_NMEDIA]; /* eviction candidates by media */
    mf_list_t moves_out;                   /* of moves not yet taken to send */
    uint32_t nmoves;                       /* of the jobs in repair_ids */
    uint64_t moves_ended; /* moves ended, ever: deferred requests look
                             again */
    uint64_t leaving[MMC_STATE_NMEDIA]; /* bytes being demoted, by media */
    uint64_t now_ms;                    /* the latest time a call passed in */
    mmc_state_ghost_t ghost[MMC_STATE_NMEDIA]; /* s3fifo */
    mmc_state_counters_t counters;
};

typedef struct mmc_state_place {
    uint64_t len;  /* rounded size */
    uint8_t media; /* of every replica (set by mmc_state_place) */
    uint32_t n;
    uint32_t hosts[MMC_MAX_REPLICAS];
    mmc_state_seg_t *segs[MMC_MAX_REPLICAS];
    uint64_t offsets[MMC_MAX_REPLICAS];
    mf_status_t error; /* MF_ERR_NOMEM from an allocator */
} mmc_state_place_t;

/* ---- shared between the files ---- */

bool mmc_state_evict_enabled(const mmc_state_t *state);
mmc_state_host_t *mmc_state_host_at(const mmc_state_t *state,
                                    uint32_t host_idx);
void mmc_state_host_unref(mmc_state_t *state, uint32_t host_idx);
/* meta_state_evict.c: a replica becomes an eviction candidate (its object
 * committed and linked; fresh: a new object on probation, see
 * mmc_state_evict_fresh), stops being one, or is read. */
bool mmc_state_evict_fresh(mmc_state_t *state, const mmc_state_obj_t *obj);
void mmc_state_lru_add(mmc_state_t *state, mmc_state_rep_t *rep, bool fresh);
void mmc_state_lru_del(mmc_state_t *state, mmc_state_rep_t *rep);
void mmc_state_lru_touch(const mmc_state_t *state, mmc_state_rep_t *rep);
/* A replica taken off the queues (by a demotion) comes back: first in line
 * on the main queue. */
void mmc_state_lru_return(mmc_state_t *state, mmc_state_rep_t *rep);
void mmc_state_ghost_free(mmc_state_t *state);
void mmc_state_seg_unstick(mmc_state_t *state, mmc_state_seg_t *seg);
/* A pass may have work in seg now: sets state->evict_due if so. */
void mmc_state_seg_note(mmc_state_t *state, const mmc_state_seg_t *seg);
void mmc_state_obj_detach(mmc_state_t *state, mmc_state_obj_t *obj);
/* A zeroed object of key with nslots (1..MMC_MAX_REPLICAS) empty replica
 * slots, in one allocation (free() frees it); NULL when out of memory. */
mmc_state_obj_t *mmc_state_obj_new(const char *key, size_t key_len,
                                   uint8_t nslots);
/* meta_state_record.c: what the holders' records are told */
uint64_t mmc_state_new_version(mmc_state_t *state);
void mmc_state_rec_add(mmc_state_t *state, mmc_state_rep_t *rep);
void mmc_state_rec_del(mmc_state_t *state, mmc_state_rep_t *rep);
void mmc_state_rec_clear(mmc_state_t *state, mmc_state_owner_t *owner);
/* meta_state_repair.c: objects below the replicas their put asked for */
void mmc_state_under_update(mmc_state_t *state, mmc_state_obj_t *obj);
void mmc_state_repair_owner_gone(mmc_state_t *state, mmc_state_owner_t *owner);
/* meta_state_move.c: moves between a rank's memory and its SSD */
bool mmc_state_demote_begin(mmc_state_t *state, mmc_state_rep_t *rep);
/* meta_state_evict.c: evicts (deletes) from seg until it has a free
 * block of len, as a put would; true when it has. */
bool mmc_state_seg_make_room(mmc_state_t *state, mmc_state_seg_t *seg,
                             uint64_t len);
void mmc_state_move_end(mmc_state_t *state, mmc_state_repair_t *job,
                        mmc_status_t status);
/* The media of obj's replicas (all of one). */
uint8_t mmc_state_obj_media(const mmc_state_obj_t *obj);
void mmc_state_repair_free_all(mmc_state_t *state);
/* Drops a hold (lease or repair) on obj: freed at the last if unlinked. */
void mmc_state_obj_unhold(mmc_state_t *state, mmc_state_obj_t *obj);
void mmc_state_rep_remove(mmc_state_t *state, mmc_state_rep_t *rep,
                          bool free_space);
uint64_t mmc_state_next_id(mmc_state_t *state);
void mmc_state_obj_unlink(mmc_state_t *state, mmc_state_obj_t *obj);
mmc_state_rank_t *mmc_state_rank_at(const mmc_state_t *state, uint32_t rank);
/* Free bytes of the rank's segment of media (0 without one). */
uint64_t mmc_state_rank_free(const mmc_state_rank_t *rank, uint8_t media);
uint64_t mmc_state_round(const mmc_state_t *state, uint64_t size);
bool mmc_state_seg_above(const mmc_state_seg_t *seg, uint32_t pct);
bool mmc_state_seg_over_high(const mmc_state_t *state,
                             const mmc_state_seg_t *seg);
void mmc_state_index_init(mmc_state_index_t *ix);
void mmc_state_index_free(mmc_state_index_t *ix); /* not the objects */
mmc_state_obj_t *mmc_state_index_get(const mmc_state_index_t *ix,
                                     const char *key, size_t len);
/* Adds obj, whose key is not in the index; false only when the index has
 * no table and no memory for one. */
bool mmc_state_index_add(mmc_state_index_t *ix, mmc_state_obj_t *obj);
void mmc_state_index_del(mmc_state_index_t *ix, mmc_state_obj_t *obj);
/* Iteration: the object after obj (NULL: the first), *bucket keeping the
 * place; obj may leave the index once its successor is known. */
mmc_state_obj_t *mmc_state_index_next(const mmc_state_index_t *ix,
                                      const mmc_state_obj_t *obj,
                                      size_t *bucket);

/* The placement heaps: a new segment, one going, and one whose used
 * bytes changed (meta_state_space.c). */
void mmc_state_heap_add(mmc_state_t *state, mmc_state_seg_t *seg);
void mmc_state_heap_del(mmc_state_t *state, mmc_state_seg_t *seg);
void mmc_state_heap_update(mmc_state_t *state, mmc_state_seg_t *seg);
/* Whether every segment sits where the heap order wants it. */
bool mmc_state_heap_ok(const mmc_state_t *state);
void mmc_state_place(mmc_state_t *state, mmc_state_place_t *pl, uint32_t want,
                     uint32_t own, const mmc_state_put_opts_t *opts);
void mmc_state_place_rollback(mmc_state_place_t *pl);
bool mmc_state_put_make_room(mmc_state_t *state, uint64_t len, uint32_t want,
                             uint32_t own, const mmc_state_put_opts_t *opts);

#endif
