/*
 * State of the MemCache meta service, independent of the network: hosts,
 * segments with their allocators, the object index, placement, pending
 * puts and read leases, and the owners (connections) they belong to.
 *
 * Every call runs on one thread (the meta service's loop thread); nothing
 * here locks.  Time is passed in (now_ms, any monotonic clock), so the
 * state machine can be driven by tests without sleeping; callers pass a
 * clock that never goes back.
 *
 * Statuses: per-item outcomes are mmc_status_t (MMC_OK, MMC_ERR_*, or
 * MF_ERR_INVALID for a bad argument); MF_ERR_NOMEM when host memory ran
 * out, in which case nothing changed.
 *
 * Bounds: an owner holds at most max_owner_leases read leases; host ids
 * are kept only while a registered rank uses them; one expiry pass and one
 * eviction pass do at most the work they are given (mmc_state_expire_some,
 * mmc_state_evict_some).
 *
 * Media: a rank has up to one segment per media (DRAM, HBM), each with
 * its own allocator, LRU list and watermarks; a put names the media of
 * its replicas and never lands, nor evicts, in another.
 *
 * Eviction: each segment keeps the replicas of committed objects in the
 * order of the pool's policy (params.evict_policy: lru, or s3fifo, which
 * keeps a share of a loop too large for the pool where lru keeps nothing;
 * meta_state_evict.c).  A GET touches every replica of its object.
 * Pending puts and unlinked objects are never candidates; an object under
 * a read lease is skipped (kept: it is in use).  Evicting an object
 * removes it whole, like REMOVE.  Background passes (mmc_state_evict_some)
 * bring segments above evict_high_pct of their capacity down to
 * evict_low_pct; a put that finds no space evicts up to evict_max_per_put
 * objects from its candidate segments and tries once more.
 */
#ifndef MMC_CACHE_META_META_STATE_H
#define MMC_CACHE_META_META_STATE_H

#include "cache/proto/proto.h"

#include <memcache/mmc.h>
#include <memcache/mmc_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read leases one owner (connection) may hold at once. */
#define MMC_META_MAX_LEASES_PER_OWNER (1u << 20)

typedef struct mmc_state mmc_state_t;
/* What a connection holds: its rank, pending puts and read leases. */
typedef struct mmc_state_owner mmc_state_owner_t;

/* Which objects leave a segment first (see meta_state_evict.c). */
typedef enum mmc_evict_policy {
    MMC_EVICT_LRU = 0,    /* least recently read or written */
    MMC_EVICT_S3FIFO = 1, /* S3-FIFO: new objects on probation first */
} mmc_evict_policy_t;

/* "lru" or "s3fifo" to its policy; -1 for anything else. */
int mmc_evict_policy_parse(const char *name);
const char *mmc_evict_policy_name(uint32_t policy);

typedef struct mmc_state_params {
    uint32_t max_ranks;        /* ranks of the pool */
    uint64_t max_segment_size; /* GVA stride and largest segment */
    uint64_t host_base;        /* GVA of rank 0's DRAM segment */
    /* The device window: rank r's HBM segment at device_base + r x
     * max_hbm_segment_size, at most that large; 0: HBM is refused. */
    uint64_t max_hbm_segment_size;
    uint64_t device_base;
    uint64_t alloc_align;      /* power of two */
    uint32_t lease_ms;         /* read lease duration */
    uint32_t put_timeout_ms;   /* a pending put is reclaimed after */
    uint32_t max_owner_leases; /* 0 = MMC_META_MAX_LEASES_PER_OWNER */
    /* Background eviction starts above evict_high_pct percent of a
     * segment's capacity and stops at evict_low_pct; 0 or 100 disables
     * it (evict_low_pct < evict_high_pct). */
    uint32_t evict_high_pct;
    uint32_t evict_low_pct;
    /* Objects a put item may evict before MMC_ERR_NO_SPACE; 0: none. */
    uint32_t evict_max_per_put;
    uint32_t evict_policy; /* mmc_evict_policy_t */
    /* A move between memory and SSD not reported within this is given
     * up (0: 30 s). */
    uint32_t move_timeout_ms;
    /* s3fifo: the share of a segment's capacity (1..90 percent; 0: 10)
     * that new objects get on probation. */
    uint32_t evict_small_pct;
} mmc_state_params_t;

typedef struct mmc_state_counters {
    uint64_t objects;      /* committed objects in the index */
    uint64_t object_bytes; /* their sizes */
    uint64_t unlinked;     /* removed or replaced, kept for leases */
    uint64_t pending_puts;
    uint64_t leases;
    uint64_t members;    /* ranks with at least one segment */
    uint64_t registered; /* ranks registered (members and clients) */
    uint64_t hosts;      /* host ids interned (used by a registered rank) */
    uint64_t puts_committed;
    uint64_t puts_aborted;   /* by the client, by owner loss, or empty */
    uint64_t puts_reclaimed; /* of puts_aborted: their timeout passed */
    uint64_t leases_expired;
    uint64_t gets;              /* leases granted */
    uint64_t removes;           /* keys removed by REMOVE */
    uint64_t segs_dropped;      /* segments dropped (owner gone, unregister) */
    uint64_t replicas_lost;     /* committed replicas dropped with segments */
    uint64_t leases_damaged;    /* released after a replica of theirs went */
    uint64_t leases_refused;    /* gets over the owner's lease limit */
    uint64_t evictions;         /* objects evicted (background and for puts) */
    uint64_t evictions_put;     /* of evictions: for a put that found no room */
    uint64_t evicted_bytes;     /* their sizes, once per object */
    uint64_t eviction_runs;     /* background passes */
    uint64_t evict_skipped;     /* leased candidates passed over */
    uint64_t evict_promoted;    /* s3fifo: read on probation, kept */
    uint64_t ghost_hits;        /* s3fifo: objects of keys evicted lately,
                                   put again, straight to the main queue */
    uint64_t restored;          /* objects rebuilt from holders' records */
    uint64_t restored_replicas; /* replicas rebuilt so */
    uint64_t restore_refused;   /* record entries refused (stale, taken) */
    uint64_t repairs_started;   /* re-replications started */
    uint64_t repairs_done;      /* of them, a replica made */
    uint64_t repairs_failed;    /* of them, failed or given up */
    uint64_t demotions_started; /* objects on their way to SSD */
    uint64_t demotions_done;    /* of them, on SSD now */
    uint64_t demotions_failed;  /* of them, read meanwhile, failed or lost */
    uint64_t loads_started;     /* objects on their way back from SSD */
    uint64_t loads_done;        /* of them, in memory now */
    uint64_t loads_failed;      /* of them (or never started for want of
                                   room), failed, torn or lost */
    uint64_t evictions_media[3]; /* evictions by the media evicted from
                                    (mmc_media_t) */
} mmc_state_counters_t;

mf_status_t mmc_state_create(const mmc_state_params_t *params,
                             mmc_state_t **state_p);
/* Frees everything (owners included).  NULL accepted. */
void mmc_state_destroy(mmc_state_t *state);

void mmc_state_get_counters(const mmc_state_t *state,
                            mmc_state_counters_t *counters);

/* ---- owners ---- */

mf_status_t mmc_state_owner_create(mmc_state_t *state,
                                   mmc_state_owner_t **owner_p);
/* Aborts its puts, releases its leases, drops its segments and rank, and
 * frees it.  NULL accepted. */
void mmc_state_owner_destroy(mmc_state_t *state, mmc_state_owner_t *owner);
/* Like destroy, but the owner stays usable (UNREGISTER). */
void mmc_state_owner_reset(mmc_state_t *state, mmc_state_owner_t *owner);
/* The registered rank, or UINT32_MAX. */
uint32_t mmc_state_owner_rank(const mmc_state_owner_t *owner);

/* ---- membership ---- */

/*
 * Registers owner as rank (on host host_id, shown as name) with nsegs
 * segments, at most one per media.  MF_ERR_INVALID: rank out of range, a
 * bad segment (not at the rank's slot of its window: DRAM at host_base +
 * rank x max_segment_size, HBM at device_base + rank x
 * max_hbm_segment_size; HBM in a pool without a device window; size below
 * alloc_align or over its window's stride; media twice or unknown), an
 * empty host id; MF_ERR_EXISTS: another owner
 * holds the rank; MF_ERR_STATE: this owner registered already.  Host ids
 * are interned to host_idx while a registered rank uses them; the index
 * of a host id nobody uses any more is given to the next new one.
 */
mf_status_t mmc_state_register(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint32_t rank, const char *host_id,
                               const char *name, uint32_t nsegs,
                               const mmc_seg_desc_t *segs,
                               uint32_t *host_idx_p);

/* ---- puts ---- */

typedef struct mmc_state_put_opts {
    uint32_t flags;    /* MMC_PUT_* */
    uint32_t replicas; /* 1..MMC_MAX_REPLICAS */
    uint32_t npref;
    const uint32_t *pref;
    uint8_t media; /* mmc_media_t: every replica goes to a segment of it */
} mmc_state_put_opts_t;

/*
 * Allocates one pending put of key: fills res (status, id = put id, size,
 * replicas).  Replicas are placed on segments of opts->media only, and a
 * put that evicts evicts from those.  res->status: MMC_OK, MF_ERR_INVALID
 * (size 0, bad key, replica count or media), MMC_ERR_EXISTS, MMC_ERR_BUSY,
 * MMC_ERR_NO_SPACE (too few ranks with room in a segment of that media,
 * nothing allocated, after evicting up to evict_max_per_put objects there)
 * or MF_ERR_NOMEM.  Also returns res->status.
 */
mmc_status_t mmc_state_put_alloc(mmc_state_t *state, mmc_state_owner_t *owner,
                                 const char *key, size_t key_len, uint64_t size,
                                 const mmc_state_put_opts_t *opts,
                                 uint64_t now_ms, mmc_obj_result_t *res);

/*
 * Commits (status MMC_OK) or aborts (any other status) owner's put.
 * MMC_OK, or MMC_ERR_ABORTED when the id is unknown (never allocated,
 * reclaimed, aborted, another owner's) or every replica vanished.
 */
mmc_status_t mmc_state_put_commit(mmc_state_t *state, mmc_state_owner_t *owner,
                                  uint64_t put_id, mmc_status_t status);

/* ---- reads ---- */

/* Takes a read lease (res->id) on the committed object and moves it to
 * the recent end of its segments' LRU lists: MMC_OK,
 * MMC_ERR_NOT_FOUND, MF_ERR_TOO_LARGE when owner holds max_owner_leases
 * already (MF_ERR_NOMEM).  The lease remembers the object's damage
 * generation, which moves whenever one of its replicas is dropped with a
 * segment. */
mmc_status_t mmc_state_get(mmc_state_t *state, mmc_state_owner_t *owner,
                           const char *key, size_t key_len, uint64_t now_ms,
                           mmc_obj_result_t *res);
/* mmc_state_get for an explicit lease of ttl_ms (1..MMC_STATE_LEASE_TTL_MAX;
 * MF_ERR_INVALID otherwise), where a key whose put is pending answers
 * MMC_ERR_BUSY (being written) instead of MMC_ERR_NOT_FOUND.  Not counted
 * as a get. */
#define MMC_STATE_LEASE_TTL_MAX 86400000u /* a day */
mmc_status_t mmc_state_lease(mmc_state_t *state, mmc_state_owner_t *owner,
                             const char *key, size_t key_len, uint64_t now_ms,
                             uint32_t ttl_ms, mmc_obj_result_t *res);
/* MMC_OK, or MMC_ERR_LEASE_EXPIRED (expired, unknown, another owner's, or
 * a replica of its object was dropped with a segment since the lease was
 * granted: the bytes read may have been reused; the lease goes anyway). */
mmc_status_t mmc_state_release(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint64_t lease_id);
/* The committed object, res->id = 0; leases_p (optional) gets its lease
 * count.  MMC_OK or MMC_ERR_NOT_FOUND. */
mmc_status_t mmc_state_query(const mmc_state_t *state, const char *key,
                             size_t key_len, mmc_obj_result_t *res,
                             uint32_t *leases_p);
/* Whether the object is committed: MMC_OK or MMC_ERR_NOT_FOUND. */
mmc_status_t mmc_state_exists(const mmc_state_t *state, const char *key,
                              size_t key_len);
/* Unlinks the committed object: MMC_OK or MMC_ERR_NOT_FOUND. */
mmc_status_t mmc_state_remove(mmc_state_t *state, const char *key,
                              size_t key_len);
/* Unlinks every committed object (pending puts go on): how many. */
uint64_t mmc_state_remove_all(mmc_state_t *state);

/* ---- time ---- */

/* Expires leases and reclaims puts whose deadline is <= now_ms. */
void mmc_state_expire(mmc_state_t *state, uint64_t now_ms);
/* The same, but at most budget leases and puts; true when more are due
 * (call again soon). */
bool mmc_state_expire_some(mmc_state_t *state, uint64_t now_ms,
                           uint64_t budget);

/* ---- eviction ---- */

/* Whether something happened since the last pass that calls for one
 * (a segment went above its high mark, or a candidate appeared in one that
 * is): the caller schedules mmc_state_evict_some off the request path. */
bool mmc_state_evict_due(const mmc_state_t *state);
/*
 * One background pass: in every segment above its high mark, evicts
 * objects in the policy's order until the segment is at or below its low mark.
 * A segment whose candidates are all leased is left above its mark until
 * a lease on one of its objects goes or a new object is committed there.
 * Visits at most budget candidates; true when it stopped on the budget
 * with work left (call again soon).
 */
bool mmc_state_evict_some(mmc_state_t *state, uint64_t budget);

/* ---- the SSD tier ---- */

/*
 * A rank may register an SSD segment beside its memory (no address: its
 * local service reads and writes it).  Eviction passes demote objects of
 * its memory there instead of deleting them; a read of an object on SSD
 * only loads it back first (see meta_state_move.c).  Moves are jobs of
 * the rank's local service: the caller takes them (mmc_state_moves_take)
 * after every request and pass, sends each as MOVE to its copier, and
 * hands the report to mmc_state_move_done.
 */
typedef struct mmc_state_move_job {
    mmc_state_owner_t *copier;
    mmc_move_t move; /* its key points into the object: send it before
                        the state changes */
} mmc_state_move_job_t;

uint32_t mmc_state_moves_take(mmc_state_t *state, mmc_state_move_job_t *jobs,
                              uint32_t max);
/* MMC_OK, or MMC_ERR_NOT_FOUND (unknown, timed out, another's). */
mmc_status_t mmc_state_move_done(mmc_state_t *state, mmc_state_owner_t *owner,
                                 uint64_t id, mmc_status_t status);
/* Before a read of keys: starts a load of each whose object lives on SSD
 * only (unless one runs) and returns how many are loading; 0: the read
 * may go on (a GET or LEASE of an object on SSD answers MMC_ERR_BUSY). */
uint32_t mmc_state_load_keys(mmc_state_t *state, const mmc_key_t *keys,
                             uint32_t n, uint64_t now_ms);
/* Moves ended so far (a counter that only grows): a deferred request
 * looks again when it moved. */
uint64_t mmc_state_moves_ended(const mmc_state_t *state);
/* Whether a put of size bytes on media should wait rather than evict:
 * no segment of that media has a free block of that size, and one will
 * once a demotion in flight from it ends. */
bool mmc_state_room_coming(const mmc_state_t *state, uint8_t media,
                           uint64_t size);
/* Whether any demotion is in flight: false spares a put the look at its
 * items (mmc_state_room_coming). */
bool mmc_state_demoting(const mmc_state_t *state);
/* Objects on SSD now: 0 spares a read the look at its keys. */
uint64_t mmc_state_on_ssd(const mmc_state_t *state);

/* ---- holder records ---- */

/*
 * Every local service that holds replicas keeps a record of them, which
 * the meta service updates (see meta_state_record.c): entries queue per
 * holder and the caller sends them, as RECORD bodies, after every request
 * and every timer run.  A reply that depends on a holder's record (a
 * commit, a remove, a put placed in its segments) waits until that holder
 * acknowledged what was taken for it.
 */
void mmc_state_owner_set_data(mmc_state_owner_t *owner, void *data);
void *mmc_state_owner_data(const mmc_state_owner_t *owner);
/* The owner registered as rank, or NULL. */
mmc_state_owner_t *mmc_state_rank_holder(const mmc_state_t *state,
                                         uint32_t rank);
/* An owner with entries queued, or NULL. */
mmc_state_owner_t *mmc_state_record_dirty(const mmc_state_t *state);
/* Appends owner's oldest queued batch to w as a RECORD body with flags
 * (MMC_RECORD_*) and returns its number (1, 2, ...); 0 when nothing is
 * queued. */
uint64_t mmc_state_record_take(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint32_t flags, mf_wbuf_t *w);
/* Appends a RECORD body with no entries and the next number (returned),
 * which the holder acknowledges: for batches sent with ACK_LATER that a
 * reply comes to wait for. */
uint64_t mmc_state_record_sync(mmc_state_owner_t *owner, mf_wbuf_t *w);
/* The number of the last batch taken for owner (0: none). */
uint64_t mmc_state_record_seq(const mmc_state_owner_t *owner);

/*
 * Restoring a holder's record after a restart or failover: begin after
 * its REGISTER (its segments take no new replica), one call per entry,
 * end after the last.  mmc_state_restore: MMC_OK (the entry is a replica
 * of its object again, or was already: the same replica restored
 * twice), MMC_ERR_EXISTS (a newer version of the key is known, the range
 * is taken, or the rank has another replica of that object: the holder
 * forgets the entry), MF_ERR_INVALID (a malformed entry, or no
 * segment of its media), MF_ERR_NOMEM.  begin: MF_ERR_STATE when owner is
 * not registered.
 */
mf_status_t mmc_state_restore_begin(mmc_state_t *state,
                                    mmc_state_owner_t *owner);
mmc_status_t mmc_state_restore(mmc_state_t *state, mmc_state_owner_t *owner,
                               const mmc_rec_entry_t *e);
void mmc_state_restore_end(mmc_state_t *state, mmc_state_owner_t *owner);

/* ---- re-replication ---- */

/*
 * Objects whose live replicas fell below the count their put asked for
 * are copied again (see meta_state_repair.c).  mmc_state_repair_start
 * starts up to max repairs (while bytes of all but the first stay within
 * max_bytes; none while a holder restores its record), each a new
 * replica's space allocated and the object held, and fills jobs: the
 * caller asks each job's copier (the local service of a live replica) to
 * copy size bytes from src_gva to dst_gva and report, and passes the
 * report to mmc_state_repair_done (MMC_ERR_NOT_FOUND: unknown, timed out,
 * or another owner's).  mmc_state_repair_expire gives up repairs whose
 * timeout passed.
 */
typedef struct mmc_state_repair mmc_state_repair_t;

typedef struct mmc_state_repair_job {
    uint64_t id;
    mmc_state_owner_t *copier;
    uint64_t src_gva;
    uint64_t dst_gva;
    uint64_t size;
    uint8_t media; /* of both replicas */
} mmc_state_repair_job_t;

uint32_t mmc_state_repair_start(mmc_state_t *state, uint64_t now_ms,
                                uint32_t timeout_ms,
                                mmc_state_repair_job_t *jobs, uint32_t max,
                                uint64_t max_bytes);
mmc_status_t mmc_state_repair_done(mmc_state_t *state, mmc_state_owner_t *owner,
                                   uint64_t id, mf_status_t status);
void mmc_state_repair_expire(mmc_state_t *state, uint64_t now_ms);
/* Objects below their replica count now, and repairs running. */
uint64_t mmc_state_under_replicated(const mmc_state_t *state);
uint32_t mmc_state_repairs_running(const mmc_state_t *state);

/* ---- inspection ---- */

typedef struct mmc_state_seg_info {
    uint32_t rank;
    uint32_t host_idx;
    const char *host_id;
    const char *name;
    uint8_t media;
    uint64_t gva;
    uint64_t capacity;
    uint64_t used;
    uint64_t free;
    uint64_t largest_free;
    uint64_t replicas; /* committed, unlinked and pending */
    uint64_t arriving; /* blocks of moves into it in flight */
    uint64_t lru;      /* of replicas: eviction candidates (committed) */
    const struct mmc_alloc *alloc;
} mmc_state_seg_info_t;

/* Calls cb for every segment, by rank then media. */
void mmc_state_foreach_seg(const mmc_state_t *state,
                           void (*cb)(const mmc_state_seg_info_t *seg,
                                      void *arg),
                           void *arg);

/*
 * Checks the bookkeeping: each segment's allocator is consistent and
 * holds exactly the bytes (rounded) of the replicas placed there, counters
 * match.  MF_OK or MF_ERR_STATE (logged).  O(everything): for tests.
 */
mf_status_t mmc_state_check(const mmc_state_t *state);

#endif
