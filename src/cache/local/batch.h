/*
 * The batch machinery every object operation runs on (batch.c): checks of
 * keys and buffers, one record per item of a call, the chunked requests to
 * the meta service (a step: which records, how their request is encoded
 * and their response applied), and the batch copier that moves every
 * piece of every item in one mf_bm_copy_batch.  Private to
 * src/cache/local.
 */
#ifndef MMC_CACHE_LOCAL_BATCH_H
#define MMC_CACHE_LOCAL_BATCH_H

#include "cache/local/local.h"

/* Buffers of one object, at most. */
#define MMC_BATCH_IOV_MAX 65536u
/* The smallest option struct a caller may pass: that of the first
 * version with a size field (fields are only ever appended). */
#define MMC_BATCH_PUT_OPTS_MIN                                                 \
    (offsetof(mmc_put_opts_t, mem) + sizeof(((mmc_put_opts_t *)0)->mem))
/* The smallest info struct a caller may pass: that of the first version
 * with a size field (fields are only ever appended); a larger info_size
 * than the MAX is garbage, not a newer struct. */
#define MMC_BATCH_OBJ_INFO_MIN                                                 \
    (offsetof(mmc_obj_info_t, gvas) + sizeof(((mmc_obj_info_t *)0)->gvas))
#define MMC_BATCH_OBJ_INFO_MAX 4096u

/* One item of a batch through every step of a call: what the caller gave,
 * its result so far, and what the meta service and the copies made of
 * it.  A call keeps one array of them, indexed like the caller's. */
typedef struct mmc_batch_rec {
    const char *key;
    const mmc_local_item_t *item;    /* put/get: the buffers */
    mmc_status_t status;             /* the item's result so far */
    mmc_status_t copy_status;        /* put/get: first error of its pieces */
    mmc_obj_result_t obj;            /* the answer of PUT_ALLOC, GET or QUERY */
    bool leased;                     /* get: a read lease to release */
    bool all_peer;                   /* get: every failed copy was a peer's */
    uint8_t tried;                   /* get: replicas tried so far */
    uint8_t order[MMC_MAX_REPLICAS]; /* get: replicas to try, best first */
} mmc_batch_rec_t;

/* A batch copy of pieces that belong to records: piece k is of record
 * owner[k], whose copy_status keeps the first error of its pieces. */
typedef struct mmc_batch_copier {
    mmc_t *mmc;
    mf_copy_dir_t dir;
    mf_copy_piece_t *pieces;
    size_t *owner;
    mf_status_t *pres;
    size_t n;
    size_t cap;
    mmc_batch_rec_t *recs;
} mmc_batch_copier_t;

/*
 * One request type of the meta service, sent for the records `take`
 * selects, in requests of at most max_batch keys: encode builds the body
 * for n records, decode applies the response to them (MF_ERR_PROTO when it
 * does not answer exactly those n).  A request that fails fails its
 * records, unless the step says their items do not depend on it.
 */
typedef struct mmc_batch_step {
    uint16_t op;
    bool fail_items;
    bool (*take)(const mmc_batch_rec_t *rec);
    mmc_status_t (*encode)(mf_wbuf_t *w, mmc_batch_rec_t *const *recs,
                           uint32_t n, const void *arg);
    mmc_status_t (*decode)(const mf_net_resp_t *resp,
                           mmc_batch_rec_t *const *recs, uint32_t n);
} mmc_batch_step_t;

/* ---- results ---- */

void mmc_batch_fill(mmc_status_t *results, size_t count, mmc_status_t status);
/* MMC_OK when every item got its answer (MMC_OK, or miss where a missing
 * key answers the question), MMC_ERR_PARTIAL when some failed, else
 * call_status (then in every result) when no item got one. */
mmc_status_t mmc_batch_overall(mmc_status_t *results, size_t count,
                               mmc_status_t miss, mmc_status_t call_status);

/* ---- checks: log the first few bad items one by one ---- */

/* Arguments common to every call; the results are filled on failure. */
mmc_status_t mmc_batch_check_call(const char *what, mmc_t *mmc,
                                  const void *keys, size_t count,
                                  mmc_status_t *results);
void mmc_batch_bad_item(const char *what, size_t index, unsigned *nbad,
                        const char *why);
mmc_status_t mmc_batch_check_key(const char *what, const char *key,
                                 size_t index, unsigned *nbad);
/* The buffers of an item of put or get (the key apart). */
mmc_status_t mmc_batch_check_iov(const char *what, const mmc_local_item_t *item,
                                 size_t index, unsigned *nbad);
/* The PUT_ALLOC request of a put's options (NULL: defaults), without
 * items; MF_ERR_INVALID (logged) for bad options. */
mmc_status_t mmc_batch_alloc_req(const char *what, mmc_t *mmc,
                                 const mmc_put_opts_t *opts,
                                 mmc_put_alloc_req_t *req);
/* The infos array of a call that answers objects (NULL, or info_size out
 * of bounds: MF_ERR_INVALID, filled into results). */
mmc_status_t mmc_batch_check_infos(const char *what,
                                   const mmc_obj_info_t *infos, size_t count,
                                   mmc_status_t *results);
uint64_t mmc_batch_iov_size(const mmc_iov_t *iov, size_t niov);
/* The direction of a put's or a get's copies, over the records still
 * going (status MMC_OK): the local side from the memory of their buffers
 * (all host, all device), the global side from the media of their
 * replicas (all DRAM: host, all HBM: device); AUTO when either side is
 * mixed or unknown (each address classified). */
mf_copy_dir_t mmc_batch_dir(const mmc_batch_rec_t *recs, size_t count,
                            bool put);
mmc_key_t mmc_batch_key(const char *key);
/* Writes obj as infos[i] (infos[0].info_size bytes per element). */
void mmc_batch_info_out(const mmc_obj_result_t *obj, mmc_obj_info_t *infos,
                        size_t i);

/* ---- records ---- */

/* The records of a call (items: put/get; else keys), checked; NULL when
 * out of memory. */
mmc_batch_rec_t *mmc_batch_recs_new(const char *what, const char *const *keys,
                                    const mmc_local_item_t *items,
                                    size_t count);
/* Writes the records' results; returns the call's overall status. */
mmc_status_t mmc_batch_recs_done(const mmc_batch_rec_t *recs, size_t count,
                                 mmc_status_t miss, mmc_status_t call_status,
                                 mmc_status_t *results);

/* ---- requests ---- */

/* Runs step over the records (arg: what its encoder needs, the put
 * options for PUT_ALLOC); returns the error of the last request that
 * failed, MMC_OK when none did. */
mmc_status_t mmc_batch_step_run(mmc_t *mmc, const char *what,
                                const mmc_batch_step_t *step, const void *arg,
                                mmc_batch_rec_t *recs, size_t count);

/* PUT_ALLOC (arg: an mmc_put_alloc_req_t with the options), PUT_COMMIT of
 * the copies' outcome, GET (leases), RELEASE of the leases, EXIST, REMOVE,
 * QUERY, LEASE (arg: the uint32_t duration in ms). */
extern const mmc_batch_step_t mmc_batch_put_alloc;
extern const mmc_batch_step_t mmc_batch_put_commit;
extern const mmc_batch_step_t mmc_batch_get;
extern const mmc_batch_step_t mmc_batch_release;
extern const mmc_batch_step_t mmc_batch_exist;
extern const mmc_batch_step_t mmc_batch_remove;
extern const mmc_batch_step_t mmc_batch_query;
extern const mmc_batch_step_t mmc_batch_lease;

/* ---- copies ---- */

/* Waits (until deadline_ms) for a rank's segment to be reachable from
 * here, when the pool has not shown it joined yet. */
void mmc_batch_wait_joined(mmc_t *mmc, uint32_t rank, uint64_t deadline_ms);
/* npieces: how many pieces will come (held MMC_BATCH_PIECE_CHUNK at a
 * time, each chunk one mf_bm_copy_batch). */
mmc_status_t mmc_batch_copier_init(mmc_batch_copier_t *c, mmc_t *mmc,
                                   mf_copy_dir_t dir, size_t npieces,
                                   mmc_batch_rec_t *recs);
/* A piece of record rec (index into recs). */
void mmc_batch_copier_add(mmc_batch_copier_t *c, uint64_t src, uint64_t dst,
                          size_t size, size_t rec);
/* Copies what is held; failures go to their records' copy_status. */
void mmc_batch_copier_flush(mmc_batch_copier_t *c);
void mmc_batch_copier_free(mmc_batch_copier_t *c);

#endif
