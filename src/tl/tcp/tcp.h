/*
 * tcp transport: wire format and the hooks tests use.  Private to the
 * transport and its tests.
 *
 * Every message on a lane starts with a 48-byte header, little-endian:
 *
 *   off  size  field
 *     0   u32  magic     MF_TL_TCP_MAGIC
 *     4   u8   version   MF_TL_TCP_VERSION
 *     5   u8   op        MF_TL_TCP_OP_*
 *     6   u16  flags     0
 *     8   i32  status    mf_status_t of a response, 0 in requests
 *    12   u32  count     pieces of a PUTV or GETV, else 0
 *    16   u64  req_id    chosen by the requester, echoed in the response
 *    24   u64  key       remote key token (requests), 0 in responses
 *    32   u64  addr      remote address (requests), echoed in responses
 *    40   u64  len       bytes the operation covers
 *
 * PUT:      header, then len bytes of data; answered by PUT_ACK (len 0).
 * GET:      header only; answered by GET_DATA, followed by len bytes of
 *           data when its status is MF_OK (else len is 0).
 * PUTV:     many pieces of one segment (key) in one request: header (addr =
 *           the first piece's address, len = the pieces' total, count =
 *           their number, 1..MF_TL_TCP_VEC_MAX), then a table of count
 *           16-byte entries (u64 addr, u64 len; len > 0, summing to the
 *           header's len), then the data of every piece in table order.
 *           Answered by PUT_ACK, for all of them at once.
 * GETV:     header and table as PUTV, no data; answered by GET_DATA with
 *           the data of every piece in table order (len = the total).
 *           A request is served whole or refused whole: one piece outside
 *           the segment refuses the request (its PUTV data is dropped).
 * CHALLENGE: the server's first message on every connection it accepts:
 *           header (req_id 0, len MF_TL_TCP_NONCE) and a random nonce.
 * HELLO:    the client's first message: header (key = the client
 *           endpoint's id, random, not 0; addr = the lane's index; len
 *           MF_TL_TCP_HELLO_LEN), its own random nonce and its proof
 *           (mf_tl_tcp_proof): an HMAC-SHA256, keyed with the server
 *           interface's secret, over both nonces, the endpoint id and the
 *           lane.  The secret is in the interface's packed address, which
 *           peers learn from the config store alone (TLS where it is on):
 *           only members of the pool know it.  A HELLO without the right
 *           proof, or any request before HELLO, closes the connection
 *           unread.  Answered by HELLO_ACK (MF_OK, len MF_TL_TCP_MAC, the
 *           server's own proof, which the client checks: it reached the
 *           process that published the address) once every earlier
 *           connection of the same (endpoint, lane) is closed: whatever it
 *           still held unread is dropped, never applied after the ACK.  A
 *           client fails the PUTs a broken connection had on the wire only
 *           then (or when no new connection can be made), so a PUT reported
 *           failed never lands later, over a newer write to the same bytes.
 * A server answers the requests of one connection in order.
 *
 * The handshake admits members; it does not encrypt or protect the bytes
 * that follow (docs/security.md).
 */
#ifndef MF_TL_TCP_TCP_H
#define MF_TL_TCP_TCP_H

#include "tl/tl.h"
#include "util/codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define MF_TL_TCP_MAGIC    0x4354464du /* "MFTC" as little-endian bytes */
#define MF_TL_TCP_VERSION  4
#define MF_TL_TCP_HDR_SIZE 48
/* A single request never covers more; a larger one is a protocol error. */
#define MF_TL_TCP_LEN_MAX (1ull << 30)
/* Pieces of a PUTV or GETV, at most, and the bytes of one table entry. */
#define MF_TL_TCP_VEC_MAX   64
#define MF_TL_TCP_VEC_ENTRY 16

/* The handshake: an interface's secret, each side's nonce, a proof. */
#define MF_TL_TCP_SECRET    32
#define MF_TL_TCP_NONCE     32
#define MF_TL_TCP_MAC       32
#define MF_TL_TCP_HELLO_LEN (MF_TL_TCP_NONCE + MF_TL_TCP_MAC)

#define MF_TL_TCP_MAX_LANES 16
#define MF_TL_TCP_CHUNK_MIN (4u * 1024u)
#define MF_TL_TCP_CHUNK_MAX (64u * 1024u * 1024u)

/* Settings of an interface (keys tcp.*, tcp_config.c). */
typedef struct mf_tl_tcp_config {
    char addr[64];       /* tcp.addr: listen on and advertise; "": all */
    uint32_t port;       /* tcp.port: 0 picks a free one */
    uint32_t lanes;      /* tcp.lanes: connections per peer and threads */
    uint64_t chunk_size; /* tcp.chunk_size: bytes per request on a lane */
    uint32_t timeout_ms; /* tcp.timeout_ms: a silent peer is dead after
                            this long (user timeout, keepalive, connect) */
} mf_tl_tcp_config_t;

extern const mf_cfg_table_t mf_tl_tcp_cfg_table;
mf_status_t mf_tl_tcp_config_check(const void *config);

extern const mf_tl_ops_t mf_tl_tcp_ops;

typedef enum mf_tl_tcp_op_code {
    MF_TL_TCP_OP_PUT = 1,
    MF_TL_TCP_OP_GET = 2,
    MF_TL_TCP_OP_PUT_ACK = 3,
    MF_TL_TCP_OP_GET_DATA = 4,
    MF_TL_TCP_OP_HELLO = 5,
    MF_TL_TCP_OP_HELLO_ACK = 6,
    MF_TL_TCP_OP_PUTV = 7,
    MF_TL_TCP_OP_GETV = 8,
    MF_TL_TCP_OP_CHALLENGE = 9,
} mf_tl_tcp_op_code_t;

/* The op a request is answered with (PUT_ACK or GET_DATA). */
static inline uint8_t mf_tl_tcp_resp_op(uint8_t req_op)
{
    return req_op == MF_TL_TCP_OP_PUT || req_op == MF_TL_TCP_OP_PUTV
               ? MF_TL_TCP_OP_PUT_ACK
               : MF_TL_TCP_OP_GET_DATA;
}

/* Whether a request op carries data after its header (and table). */
static inline bool mf_tl_tcp_op_writes(uint8_t req_op)
{
    return req_op == MF_TL_TCP_OP_PUT || req_op == MF_TL_TCP_OP_PUTV;
}

static inline bool mf_tl_tcp_op_vec(uint8_t req_op)
{
    return req_op == MF_TL_TCP_OP_PUTV || req_op == MF_TL_TCP_OP_GETV;
}

typedef struct mf_tl_tcp_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t op;
    uint16_t flags;
    int32_t status;
    uint32_t count;
    uint64_t req_id;
    uint64_t key;
    uint64_t addr;
    uint64_t len;
} mf_tl_tcp_hdr_t;

static inline void mf_tl_tcp_hdr_encode(const mf_tl_tcp_hdr_t *hdr,
                                        uint8_t out[MF_TL_TCP_HDR_SIZE])
{
    uint32_t status = (uint32_t)hdr->status;

    out[0] = (uint8_t)hdr->magic;
    out[1] = (uint8_t)(hdr->magic >> 8);
    out[2] = (uint8_t)(hdr->magic >> 16);
    out[3] = (uint8_t)(hdr->magic >> 24);
    out[4] = hdr->version;
    out[5] = hdr->op;
    out[6] = (uint8_t)hdr->flags;
    out[7] = (uint8_t)(hdr->flags >> 8);
    out[8] = (uint8_t)status;
    out[9] = (uint8_t)(status >> 8);
    out[10] = (uint8_t)(status >> 16);
    out[11] = (uint8_t)(status >> 24);
    mf_le32_store(out + 12, hdr->count);
    mf_le64_store(out + 16, hdr->req_id);
    mf_le64_store(out + 24, hdr->key);
    mf_le64_store(out + 32, hdr->addr);
    mf_le64_store(out + 40, hdr->len);
}

/* Decodes without judging: mf_tl_tcp_req_check() and mf_tl_tcp_resp_check()
 * do. */
static inline void mf_tl_tcp_hdr_decode(const uint8_t in[MF_TL_TCP_HDR_SIZE],
                                        mf_tl_tcp_hdr_t *hdr)
{
    hdr->magic = (uint32_t)in[0] | (uint32_t)in[1] << 8 |
                 (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
    hdr->version = in[4];
    hdr->op = in[5];
    hdr->flags = (uint16_t)(in[6] | in[7] << 8);
    hdr->status = (int32_t)((uint32_t)in[8] | (uint32_t)in[9] << 8 |
                            (uint32_t)in[10] << 16 | (uint32_t)in[11] << 24);
    hdr->count = mf_le32_load(in + 12);
    hdr->req_id = mf_le64_load(in + 16);
    hdr->key = mf_le64_load(in + 24);
    hdr->addr = mf_le64_load(in + 32);
    hdr->len = mf_le64_load(in + 40);
}

/* Why a server refuses a request header (it then drops the connection),
 * or NULL when the header is one it serves: a PUT or GET of this version
 * covering at most MF_TL_TCP_LEN_MAX bytes (count 0), a PUTV or GETV of
 * 1..MF_TL_TCP_VEC_MAX pieces and as many bytes, or a HELLO (endpoint id
 * not 0, a lane index below MF_TL_TCP_MAX_LANES, len MF_TL_TCP_HELLO_LEN,
 * count 0). */
static inline const char *mf_tl_tcp_req_check(const mf_tl_tcp_hdr_t *req)
{
    if (req->magic != MF_TL_TCP_MAGIC) {
        return "bad magic";
    }
    if (req->version != MF_TL_TCP_VERSION) {
        return "unsupported version";
    }
    switch (req->op) {
    case MF_TL_TCP_OP_HELLO:
        return req->key != 0 && req->addr < MF_TL_TCP_MAX_LANES &&
                       req->len == MF_TL_TCP_HELLO_LEN && req->count == 0
                   ? NULL
                   : "bad HELLO";
    case MF_TL_TCP_OP_PUT:
    case MF_TL_TCP_OP_GET:
        return req->len <= MF_TL_TCP_LEN_MAX && req->count == 0 ? NULL
                                                                : "bad length";
    case MF_TL_TCP_OP_PUTV:
    case MF_TL_TCP_OP_GETV:
        return req->len <= MF_TL_TCP_LEN_MAX && req->count >= 1 &&
                       req->count <= MF_TL_TCP_VEC_MAX
                   ? NULL
                   : "bad length or piece count";
    default:
        return "bad operation";
    }
}

/* A table entry of a PUTV or GETV. */
static inline void mf_tl_tcp_vec_encode(uint64_t addr, uint64_t len,
                                        uint8_t out[MF_TL_TCP_VEC_ENTRY])
{
    mf_le64_store(out, addr);
    mf_le64_store(out + 8, len);
}

/*
 * Why a server refuses the table of a checked PUTV/GETV header (the
 * request is answered with MF_ERR_PROTO, the connection goes on), or NULL:
 * every piece has bytes, and they sum to the header's len.  Decodes the
 * entries into addrs and lens (req->count of each).
 */
static inline const char *mf_tl_tcp_vec_check(const mf_tl_tcp_hdr_t *req,
                                              const uint8_t *table,
                                              uint64_t *addrs, uint64_t *lens)
{
    uint64_t sum = 0;

    for (uint32_t i = 0; i < req->count; i++) {
        addrs[i] = mf_le64_load(table + i * MF_TL_TCP_VEC_ENTRY);
        lens[i] = mf_le64_load(table + i * MF_TL_TCP_VEC_ENTRY + 8);
        if (lens[i] == 0 || lens[i] > req->len - sum) {
            return "a piece empty or past the request's length";
        }
        sum += lens[i];
    }
    return sum == req->len ? NULL : "pieces short of the request's length";
}

/* Whether a header is the CHALLENGE a lane waits for once connected
 * (req_id 0, a nonce follows). */
static inline bool mf_tl_tcp_challenge_check(const mf_tl_tcp_hdr_t *hdr)
{
    return hdr->magic == MF_TL_TCP_MAGIC && hdr->version == MF_TL_TCP_VERSION &&
           hdr->op == MF_TL_TCP_OP_CHALLENGE && hdr->status == MF_OK &&
           hdr->req_id == 0 && hdr->count == 0 && hdr->len == MF_TL_TCP_NONCE;
}

/* Whether a response header is the HELLO_ACK a lane waits for after its
 * HELLO (req_id 0, the server's proof follows). */
static inline bool mf_tl_tcp_hello_ack_check(const mf_tl_tcp_hdr_t *resp)
{
    return resp->magic == MF_TL_TCP_MAGIC &&
           resp->version == MF_TL_TCP_VERSION &&
           resp->op == MF_TL_TCP_OP_HELLO_ACK && resp->status == MF_OK &&
           resp->req_id == 0 && resp->count == 0 && resp->len == MF_TL_TCP_MAC;
}

/* The proof of a HELLO (server false) or of its HELLO_ACK (server true):
 * HMAC-SHA256 keyed with the server interface's secret over a label of
 * the side, both nonces, the endpoint id and the lane index. */
void mf_tl_tcp_proof(const uint8_t secret[MF_TL_TCP_SECRET], bool server,
                     const uint8_t nonce_s[MF_TL_TCP_NONCE],
                     const uint8_t nonce_c[MF_TL_TCP_NONCE], uint64_t ep_id,
                     uint64_t lane, uint8_t out[MF_TL_TCP_MAC]);
/* Whether proof (MF_TL_TCP_MAC bytes) is the expected one, in constant
 * time. */
bool mf_tl_tcp_proof_equal(const uint8_t *proof, const uint8_t *expected);

/* Whether a response header answers the request (op, req_id, len) a lane
 * sent last: the matching op and id, a status that is MF_OK or an error,
 * and the request's length for data that follows (GET_DATA of MF_OK),
 * else 0. */
static inline bool mf_tl_tcp_resp_check(const mf_tl_tcp_hdr_t *resp,
                                        uint8_t req_op, uint64_t req_id,
                                        uint64_t req_len)
{
    uint8_t want = mf_tl_tcp_resp_op(req_op);

    return resp->magic == MF_TL_TCP_MAGIC &&
           resp->version == MF_TL_TCP_VERSION && resp->req_id == req_id &&
           resp->op == want && (resp->status < 0 || resp->status == MF_OK) &&
           resp->count == 0 &&
           resp->len ==
               (resp->op == MF_TL_TCP_OP_GET_DATA && resp->status == MF_OK
                    ? req_len
                    : 0);
}

/* ---- for tests ---- */

/* The port the interface listens on. */
uint16_t mf_tl_tcp_iface_port(mf_tl_iface_t *iface);
/* The secret of the interface, as its packed address carries it. */
const uint8_t *mf_tl_tcp_iface_secret(mf_tl_iface_t *iface);
/* The key token of a registered segment, as its packed rkey carries it. */
uint64_t mf_tl_tcp_memh_key(mf_tl_memh_t *memh);
/* PUTV/GETV requests this interface served, and their pieces. */
void mf_tl_tcp_iface_vec_stats(mf_tl_iface_t *iface, uint64_t *requests_p,
                               uint64_t *pieces_p);
/* Holds every transport thread of the interface (each runs a command that
 * waits) until mf_tl_tcp_iface_release(): operations posted meanwhile
 * stay queued, and go out together after. */
void mf_tl_tcp_iface_hold(mf_tl_iface_t *iface);
void mf_tl_tcp_iface_release(mf_tl_iface_t *iface);
/* Closes every connection this interface accepted (as a peer's crash
 * would); returns how many.  Peers fail what they had in flight. */
unsigned mf_tl_tcp_iface_drop_conns(mf_tl_iface_t *iface);

#endif
