/*
 * Wire messages of the config store, shared by the client and the server.
 *
 * Every request body is the list of fields its opcode names in
 * mf_store_req_fields(), in one fixed order (id, key, expected, value,
 * flags, timeout, delta, world size, rank), little-endian through
 * mf_wbuf/mf_rbuf.  Byte strings are a u32 length and the bytes.  Decoders
 * point into the body (nothing is copied) and never trust a length: every
 * read is bounds-checked and a body must be consumed exactly.  Semantic
 * limits (key and value sizes) are the server's business, not the codec's.
 */
#ifndef MF_STORE_STORE_PROTO_H
#define MF_STORE_STORE_PROTO_H

#include "util/codec.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Request opcodes (client -> server). */
typedef enum mf_store_op {
    MF_STORE_OP_SET = 1,
    MF_STORE_OP_GET = 2,
    MF_STORE_OP_ADD = 3,
    MF_STORE_OP_APPEND = 4,
    MF_STORE_OP_CAS = 5,
    MF_STORE_OP_REMOVE = 6,
    MF_STORE_OP_WATCH = 7,
    MF_STORE_OP_UNWATCH = 8,
    MF_STORE_OP_HEARTBEAT = 9,
    MF_STORE_OP_RANK_JOIN = 10,
    MF_STORE_OP_RANK_LEAVE = 11,
    MF_STORE_OP_RANK_SUBSCRIBE = 12,
    MF_STORE_OP_RANK_LIST = 13,
    MF_STORE_OP_LAST
} mf_store_op_t;

/* Notify opcodes (server -> client). */
#define MF_STORE_NOTIFY_WATCH 100 /* mf_store_watch_event_t */
#define MF_STORE_NOTIFY_RANK  101 /* mf_store_rank_event_t */

/* Fields of a request body, in wire order. */
#define MF_STORE_F_ID       0x001u /* u64 watch id */
#define MF_STORE_F_KEY      0x002u /* bytes: key, prefix or group name */
#define MF_STORE_F_EXPECTED 0x004u /* u8 present, bytes expected value */
#define MF_STORE_F_VALUE    0x008u /* bytes: value or desired value */
#define MF_STORE_F_FLAGS    0x010u /* u32 MF_STORE_EPHEMERAL... */
#define MF_STORE_F_TIMEOUT  0x020u /* u32 milliseconds */
#define MF_STORE_F_DELTA    0x040u /* i64 */
#define MF_STORE_F_WORLD    0x080u /* u32 world size */
#define MF_STORE_F_RANK     0x100u /* u32 rank or MF_RANK_AUTO */

/* A request; pointers point into the decoded body or the caller's data. */
typedef struct mf_store_req {
    uint64_t id;
    const void *key; /* not NUL-terminated */
    size_t key_len;
    bool has_expected;
    const void *expected;
    size_t expected_len;
    const void *value;
    size_t value_len;
    uint32_t flags;
    uint32_t timeout_ms;
    int64_t delta;
    uint32_t world_size;
    uint32_t rank;
} mf_store_req_t;

/* The fields of opcode op, or 0 with *known false for an unknown one. */
uint32_t mf_store_req_fields(uint16_t op, bool *known_p);
const char *mf_store_op_name(uint16_t op);

/* Appends the fields of op taken from req to w. */
mf_status_t mf_store_req_encode(uint16_t op, const mf_store_req_t *req,
                                mf_wbuf_t *w);
/* MF_ERR_UNSUPPORTED for an unknown op, MF_ERR_PROTO for a bad body. */
mf_status_t mf_store_req_decode(uint16_t op, const void *body, size_t len,
                                mf_store_req_t *req_p);

/* GET response: bytes value. */
void mf_store_value_encode(mf_wbuf_t *w, const void *value, size_t len);
mf_status_t mf_store_value_decode(const void *body, size_t len,
                                  const void **value_p, size_t *len_p);

/* ADD response: i64 new value. */
void mf_store_i64_encode(mf_wbuf_t *w, int64_t v);
mf_status_t mf_store_i64_decode(const void *body, size_t len, int64_t *v_p);

/* RANK_JOIN response: u32 rank. */
void mf_store_u32_encode(mf_wbuf_t *w, uint32_t v);
mf_status_t mf_store_u32_decode(const void *body, size_t len, uint32_t *v_p);

/* CAS mismatch response: u8 present, bytes current value. */
void mf_store_current_encode(mf_wbuf_t *w, bool present, const void *value,
                             size_t len);
mf_status_t mf_store_current_decode(const void *body, size_t len,
                                    bool *present_p, const void **value_p,
                                    size_t *len_p);

/* RANK_LIST response: u32 count, then count u32 ranks. */
void mf_store_ranks_encode(mf_wbuf_t *w, const uint32_t *ranks, uint32_t count);
/* Copies at most max ranks into ranks; *count_p is the full count. */
mf_status_t mf_store_ranks_decode(const void *body, size_t len, uint32_t *ranks,
                                  uint32_t max, uint32_t *count_p);

/* NOTIFY_WATCH body: u8 event, bytes key, bytes value. */
typedef struct mf_store_watch_event {
    uint8_t event; /* mf_store_event_t */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} mf_store_watch_event_t;

void mf_store_watch_event_encode(mf_wbuf_t *w,
                                 const mf_store_watch_event_t *ev);
mf_status_t mf_store_watch_event_decode(const void *body, size_t len,
                                        mf_store_watch_event_t *ev_p);

/* NOTIFY_RANK body: bytes group, u32 rank, u8 event. */
typedef struct mf_store_rank_event {
    const void *group;
    size_t group_len;
    uint32_t rank;
    uint8_t event; /* mf_rank_event_t */
} mf_store_rank_event_t;

void mf_store_rank_event_encode(mf_wbuf_t *w, const mf_store_rank_event_t *ev);
mf_status_t mf_store_rank_event_decode(const void *body, size_t len,
                                       mf_store_rank_event_t *ev_p);

#endif
