/*
 * MemCache wire messages between local services (clients) and the meta
 * service.
 *
 * Messages travel as bodies of mf_net frames (src/net/net.h): the frame
 * carries the opcode (MMC_OP_*), the request id and, in responses, the
 * status of the whole request.  Bodies are little-endian, encoded with
 * mf_wbuf and decoded with mf_rbuf.  Every decoder:
 *   - bounds every count before it allocates (batches <= MMC_BATCH_MAX,
 *     replicas <= MMC_MAX_REPLICAS, segments <= MMC_PROTO_MAX_SEGS);
 *   - checks every key: 1..MMC_KEY_MAX bytes, no NUL byte;
 *   - requires the body to end exactly where the message ends;
 * and returns MF_ERR_PROTO (never crashes, never reads out of bounds) on
 * anything else.  Decoded keys point into the body, which must outlive
 * the decoded message; arrays are malloc'd and freed with the message's
 * _free function (which accepts a zeroed message).
 *
 * Encoding (u32 count, then per item):
 *   key        u32 len, len bytes (no NUL)
 *   replica    u32 rank, u32 host_idx, u8 media, u64 gva
 *   obj        i32 status, u64 id, u64 size, u8 nrep, nrep x replica
 *   hello_resp the fields of mmc_hello_resp_t, in order
 *   seg        u8 media, u64 gva, u64 size
 *   register_req u32 rank, str host_id, u32 nsegs, nsegs x seg, u32 flags
 *   seg        u8 media, u64 gva (0 for SSD), u64 size
 *   rec_entry  u8 op, u8 media, u64 offset, and for ADD: u8 want,
 *              u64 size, u64 version, key
 *   record     u64 seq, u32 count, count x rec_entry
 *   restore_req u32 flags, u32 count, count x rec_entry (ADD only)
 *   put_alloc_req u32 flags, u32 replicas, u8 media, u32 npref,
 *              npref x u32 rank, u32 count, count x (key, u64 size)
 * Values inside a well-formed body (replicas, media, ranks) are the meta
 * service's to check.
 *
 * Versions: HELLO carries MMC_PROTO_VERSION and either side refuses
 * another one (MF_ERR_VERSION), so every body after it is of one version;
 * a change of any body bumps it.
 *
 * Requests and responses (request body -> response body):
 *   HELLO       u32 version, str name           -> hello_resp
 *   REGISTER    register_req                    -> u32 host_idx
 *   UNREGISTER  (empty)                         -> (empty)
 *   PUT_ALLOC   put_alloc_req                   -> obj list (id = put id)
 *   PUT_COMMIT  commit list (u64 put id, i32 status: MMC_OK commits,
 *               an error aborts)                -> status list
 *   GET         key list                        -> obj list (id = lease id)
 *   RELEASE     id list (lease ids)             -> status list
 *   EXIST       key list                        -> status list
 *   QUERY       key list                        -> obj list (id = 0)
 *   REMOVE      key list                        -> status list
 *   LEASE       u32 ttl_ms, key list            -> obj list (id = lease
 *               id; a key being written: MMC_ERR_BUSY)
 *   REMOVE_ALL  (empty)                         -> u64 objects removed
 *   PING        (empty)                         -> (empty); a heartbeat:
 *               the meta service closes a connection silent for longer
 *               than the member_timeout_ms that HELLO returned
 *   RESTORE     restore_req: part of the record of a holder that
 *               registered with MMC_REG_RESTORE -> status list (MMC_OK:
 *               the entry is an object's replica again; anything else:
 *               the holder forgets it)
 *   RECORD_ACK  u64 seq: the holder applied every RECORD up to seq
 *               -> (empty), which the holder does not wait for
 *   REPAIR_DONE commit list (repair id, status: MF_OK copied) -> (empty),
 *               which the copier does not wait for
 * and one notify, from the meta service to a holder:
 *   RECORD      record: changes to the holder's record of what its
 *               segments hold (ADD: a committed replica; DEL: gone),
 *               numbered 1, 2, ... per connection; acknowledged with
 *               RECORD_ACK unless flagged MMC_RECORD_ACK_LATER (then
 *               the next one acknowledged covers it; a RECORD may come
 *               with no entries just to ask for that)
 * and to a holder of a live replica of objects that lost others:
 *   REPAIR      u32 count, count x (u64 id, u8 media, u64 src gva, u64
 *               dst gva, u64 size): copy each (one-sided, its own replica
 *               to the new one) and say REPAIR_DONE
 * and to a holder with an SSD segment:
 *   MOVE        u32 count, count x move: copy each between its own memory
 *               segment (media, gva) and its SSD segment (ssd offset),
 *               DEMOTE: memory to SSD, LOAD: SSD to memory, and say
 *               MOVE_DONE (commit list: move id, status), which it does
 *               not wait for
 *   move       u64 id, u8 dir (1 DEMOTE, 2 LOAD), u8 media, u64 gva, u64
 *              ssd offset, u64 size, u64 version, u8 want, key
 * Per-item outcomes travel in the lists; the frame status is MF_OK unless
 * the request as a whole failed (then the body is empty).
 */
#ifndef MMC_CACHE_PROTO_PROTO_H
#define MMC_CACHE_PROTO_PROTO_H

#include "util/codec.h"

#include <memcache/mmc.h>
#include <stdint.h>

/* 2: HELLO tells the device window, PUT_ALLOC the media of the replicas;
 * 3: holders keep records (RECORD, RECORD_ACK, RESTORE, REGISTER flags);
 * 4: RECORD flags (MMC_RECORD_ACK_LATER);
 * 5: SSD segments, MOVE and MOVE_DONE */
#define MMC_PROTO_VERSION  5
#define MMC_PROTO_MAX_SEGS 3 /* one DRAM, one HBM, one SSD segment */
#define MMC_PROTO_NAME_MAX 63
#define MMC_PROTO_HOST_MAX 127 /* bytes of a host id */
/* largest body either side sends: a full batch of obj results */
#define MMC_PROTO_MAX_BODY (16u << 20)
/* entries of one RECORD or RESTORE */
#define MMC_REC_MAX 65536u

typedef enum mmc_op {
    MMC_OP_HELLO = 1,
    MMC_OP_REGISTER = 2,
    MMC_OP_UNREGISTER = 3,
    MMC_OP_PUT_ALLOC = 4,
    MMC_OP_PUT_COMMIT = 5,
    MMC_OP_GET = 6,
    MMC_OP_RELEASE = 7,
    MMC_OP_EXIST = 8,
    MMC_OP_QUERY = 9,
    MMC_OP_REMOVE = 10,
    MMC_OP_PING = 11,
    MMC_OP_RESTORE = 12,
    MMC_OP_RECORD_ACK = 13,
    MMC_OP_RECORD = 14, /* a notify */
    MMC_OP_REPAIR_DONE = 15,
    MMC_OP_REPAIR = 16, /* a notify */
    MMC_OP_LEASE = 17,
    MMC_OP_REMOVE_ALL = 18,
    MMC_OP_MOVE_DONE = 19,
    MMC_OP_MOVE = 20, /* a notify */
    MMC_OP_MAX
} mmc_op_t;

/* "PUT_ALLOC", ...; "?" for an unknown opcode. */
const char *mmc_op_name(uint16_t op);

typedef struct mmc_key {
    const char *data; /* not NUL-terminated; points into a body or a
                         caller's string */
    uint32_t len;
} mmc_key_t;

typedef struct mmc_replica {
    uint32_t rank;
    uint32_t host_idx; /* the meta service's number for the rank's host */
    uint8_t media;     /* mmc_media_t */
    uint64_t gva;      /* global address of the replica's first byte */
} mmc_replica_t;

typedef struct mmc_obj_result {
    int32_t status; /* mmc_status_t of this item */
    uint64_t id;    /* put id (PUT_ALLOC) or lease id (GET); 0 otherwise */
    uint64_t size;
    uint8_t nrep;
    mmc_replica_t reps[MMC_MAX_REPLICAS];
} mmc_obj_result_t;

/* ---- HELLO ---- */

typedef struct mmc_hello_req {
    uint32_t version;
    char name[MMC_PROTO_NAME_MAX + 1];
} mmc_hello_req_t;

typedef struct mmc_hello_resp {
    uint32_t version;
    uint64_t meta_id;              /* random per meta service start */
    uint32_t store_port;           /* the pool's config store, on the meta
                                      service's host */
    uint32_t pool_id;              /* MemFabric BM id of the pool */
    uint32_t world_size;           /* ranks of the pool */
    uint64_t max_segment_size;     /* per rank, DRAM (host GVA stride) */
    uint64_t host_base;            /* GVA window base of host segments */
    uint32_t lease_ms;             /* read lease duration */
    uint32_t max_batch;            /* keys per request */
    uint32_t member_timeout_ms;    /* a member silent this long is dropped
                                      (the meta's member_timeout_ms or, if
                                      shorter, idle_timeout_ms): clients ping
                                      well within it; 0 = never */
    uint64_t device_base;          /* GVA window base of device (HBM)
                                      segments */
    uint64_t max_hbm_segment_size; /* per rank (device GVA stride); 0: the
                                      pool has no device window and takes
                                      no HBM segment */
} mmc_hello_resp_t;

/* ---- REGISTER ---- */

typedef struct mmc_seg_desc {
    uint8_t media; /* mmc_media_t */
    uint64_t gva;
    uint64_t size;
} mmc_seg_desc_t;

/* The holder brings a record from a previous meta service: its segments
 * take no new replica until the RESTORE flagged MMC_RESTORE_LAST. */
#define MMC_REG_RESTORE 0x1u

typedef struct mmc_register_req {
    uint32_t rank;
    char host_id[MMC_PROTO_HOST_MAX + 1];
    uint32_t nsegs; /* 0 for a pure client */
    mmc_seg_desc_t segs[MMC_PROTO_MAX_SEGS];
    uint32_t flags; /* MMC_REG_* */
} mmc_register_req_t;

/* ---- holder records ---- */

typedef enum mmc_rec_op {
    MMC_REC_ADD = 1, /* a committed replica at offset */
    MMC_REC_DEL = 2, /* the replica at offset is gone */
} mmc_rec_op_t;

typedef struct mmc_rec_entry {
    uint8_t op;      /* mmc_rec_op_t */
    uint8_t media;   /* of the holder's segment */
    uint64_t offset; /* in that segment */
    /* ADD only: */
    uint8_t want;     /* replicas its put asked for */
    uint64_t size;    /* of the object */
    uint64_t version; /* of the object: newer versions win */
    mmc_key_t key;
} mmc_rec_entry_t;

/* Entries of one RECORD (seq > 0) or one RESTORE (seq unused). */
#define MMC_RESTORE_LAST 0x1u /* restore_req flags: the record is whole */
/* record flags: nobody waits for this batch; acknowledge it with a later
 * one (RECORD_ACK is cumulative) */
#define MMC_RECORD_ACK_LATER 0x1u

typedef struct mmc_record {
    uint64_t seq;   /* RECORD: its number on the connection */
    uint32_t flags; /* RECORD: MMC_RECORD_*; RESTORE: MMC_RESTORE_* */
    uint32_t count;
    mmc_rec_entry_t *entries;
} mmc_record_t;

/* ---- PUT_ALLOC ---- */

typedef struct mmc_put_item {
    mmc_key_t key;
    uint64_t size;
} mmc_put_item_t;

typedef struct mmc_put_alloc_req {
    uint32_t flags;    /* MMC_PUT_* */
    uint32_t replicas; /* 1..MMC_MAX_REPLICAS */
    uint8_t media;     /* mmc_media_t of every replica */
    uint32_t npref;
    uint32_t pref[MMC_MAX_REPLICAS];
    uint32_t count;
    mmc_put_item_t *items;
} mmc_put_alloc_req_t;

/* ---- lists ---- */

typedef struct mmc_key_list {
    uint32_t count;
    mmc_key_t *keys;
} mmc_key_list_t;

typedef struct mmc_commit_item {
    uint64_t put_id;
    int32_t status;
} mmc_commit_item_t;

typedef struct mmc_commit_list {
    uint32_t count;
    mmc_commit_item_t *items;
} mmc_commit_list_t;

typedef struct mmc_id_list {
    uint32_t count;
    uint64_t *ids;
} mmc_id_list_t;

typedef struct mmc_status_list {
    uint32_t count;
    int32_t *status;
} mmc_status_list_t;

typedef struct mmc_obj_list {
    uint32_t count;
    mmc_obj_result_t *items;
} mmc_obj_list_t;

/* ---- re-replication ---- */

typedef struct mmc_repair {
    uint64_t id;
    uint8_t media; /* of both replicas */
    uint64_t src_gva;
    uint64_t dst_gva;
    uint64_t size;
} mmc_repair_t;

typedef struct mmc_repair_list {
    uint32_t count; /* <= MMC_BATCH_MAX */
    mmc_repair_t *items;
} mmc_repair_list_t;

/* ---- moves between a holder's memory and its SSD ---- */

enum { MMC_MOVE_DEMOTE = 1, MMC_MOVE_LOAD = 2 };

typedef struct mmc_move {
    uint64_t id;
    uint8_t dir;   /* MMC_MOVE_DEMOTE, MMC_MOVE_LOAD */
    uint8_t media; /* of the memory side */
    uint64_t gva;  /* the memory side, in the holder's own segment */
    uint64_t ssd_offset;
    uint64_t size;
    uint64_t version;
    uint8_t want;
    mmc_key_t key;
} mmc_move_t;

typedef struct mmc_move_list {
    uint32_t count; /* <= MMC_BATCH_MAX */
    mmc_move_t *items;
} mmc_move_list_t;

/* ---- encoders: append to w (check mf_wbuf_status() once at the end) ---- */

void mmc_hello_req_encode(mf_wbuf_t *w, const mmc_hello_req_t *m);
void mmc_hello_resp_encode(mf_wbuf_t *w, const mmc_hello_resp_t *m);
void mmc_register_req_encode(mf_wbuf_t *w, const mmc_register_req_t *m);
void mmc_put_alloc_req_encode(mf_wbuf_t *w, const mmc_put_alloc_req_t *m);
void mmc_key_list_encode(mf_wbuf_t *w, const mmc_key_list_t *m);
void mmc_commit_list_encode(mf_wbuf_t *w, const mmc_commit_list_t *m);
void mmc_id_list_encode(mf_wbuf_t *w, const mmc_id_list_t *m);
void mmc_lease_req_encode(mf_wbuf_t *w, uint32_t ttl_ms,
                          const mmc_key_list_t *keys);
void mmc_status_list_encode(mf_wbuf_t *w, const mmc_status_list_t *m);
void mmc_obj_list_encode(mf_wbuf_t *w, const mmc_obj_list_t *m);
/* One entry (RECORD and RESTORE bodies are a header, then the entries:
 * the caller writes the header with the count it will send). */
void mmc_rec_entry_encode(mf_wbuf_t *w, const mmc_rec_entry_t *e);
void mmc_record_encode(mf_wbuf_t *w, const mmc_record_t *m);
void mmc_restore_req_encode(mf_wbuf_t *w, const mmc_record_t *m);
/* Bytes one entry takes on the wire. */
size_t mmc_rec_entry_wire_size(const mmc_rec_entry_t *e);
void mmc_repair_list_encode(mf_wbuf_t *w, const mmc_repair_list_t *m);
void mmc_move_list_encode(mf_wbuf_t *w, const mmc_move_list_t *m);

/* ---- decoders: MF_OK, MF_ERR_PROTO or MF_ERR_NOMEM; *m is zeroed first
 * and holds nothing to free after a failure ---- */

mf_status_t mmc_hello_req_decode(const void *body, size_t len,
                                 mmc_hello_req_t *m);
mf_status_t mmc_hello_resp_decode(const void *body, size_t len,
                                  mmc_hello_resp_t *m);
mf_status_t mmc_register_req_decode(const void *body, size_t len,
                                    mmc_register_req_t *m);
mf_status_t mmc_put_alloc_req_decode(const void *body, size_t len,
                                     mmc_put_alloc_req_t *m);
mf_status_t mmc_key_list_decode(const void *body, size_t len,
                                mmc_key_list_t *m);
mf_status_t mmc_commit_list_decode(const void *body, size_t len,
                                   mmc_commit_list_t *m);
mf_status_t mmc_id_list_decode(const void *body, size_t len, mmc_id_list_t *m);
/* LEASE: the duration, then a key list (free it with mmc_key_list_free). */
mf_status_t mmc_lease_req_decode(const void *body, size_t len,
                                 uint32_t *ttl_ms_p, mmc_key_list_t *keys);
mf_status_t mmc_status_list_decode(const void *body, size_t len,
                                   mmc_status_list_t *m);
mf_status_t mmc_obj_list_decode(const void *body, size_t len,
                                mmc_obj_list_t *m);
/* RECORD: entries ADD or DEL, up to MMC_REC_MAX; seq > 0. */
mf_status_t mmc_record_decode(const void *body, size_t len, mmc_record_t *m);
/* RESTORE: ADD entries only, up to MMC_REC_MAX. */
mf_status_t mmc_restore_req_decode(const void *body, size_t len,
                                   mmc_record_t *m);
mf_status_t mmc_repair_list_decode(const void *body, size_t len,
                                   mmc_repair_list_t *m);
/* MOVE: dir DEMOTE or LOAD, size > 0. */
mf_status_t mmc_move_list_decode(const void *body, size_t len,
                                 mmc_move_list_t *m);
/* The same list decoded into the caller's n results, with no allocation:
 * item i goes to slot(arg, i).  MF_ERR_PROTO also when the list does not
 * hold exactly n items; the slots may then be partly written. */
mf_status_t mmc_obj_list_decode_into(const void *body, size_t len, uint32_t n,
                                     mmc_obj_result_t *(*slot)(void *arg,
                                                               uint32_t i),
                                     void *arg);

void mmc_put_alloc_req_free(mmc_put_alloc_req_t *m);
void mmc_key_list_free(mmc_key_list_t *m);
void mmc_commit_list_free(mmc_commit_list_t *m);
void mmc_id_list_free(mmc_id_list_t *m);
void mmc_status_list_free(mmc_status_list_t *m);
void mmc_obj_list_free(mmc_obj_list_t *m);
void mmc_record_free(mmc_record_t *m);
void mmc_repair_list_free(mmc_repair_list_t *m);
void mmc_move_list_free(mmc_move_list_t *m);

/* True when key is 1..MMC_KEY_MAX bytes without NUL. */
bool mmc_key_valid(const char *data, size_t len);

#endif
