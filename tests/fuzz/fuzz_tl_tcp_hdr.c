/*
 * Fuzz target: the tcp transport's 48-byte header as a peer sends it, with
 * the checks a server applies to a request (and to the piece table of a
 * PUTV or GETV, and the range check of its registered regions) and those
 * a lane applies to a response (and to the CHALLENGE and HELLO_ACK of the
 * handshake).  The header comes first; the bytes after it (zeros where
 * missing) are read as the piece table, as a region (base, size) and the
 * request a lane sent (op, id, length), as the nonce and proof of a HELLO
 * and as a peer's packed address.
 *
 * Decoding and encoding agree on every byte; an accepted request is a PUT
 * or GET of this version and at most MF_TL_TCP_LEN_MAX bytes, a PUTV or
 * GETV of as many bytes in 1..MF_TL_TCP_VEC_MAX pieces, or a HELLO with an
 * endpoint id, a lane index below MF_TL_TCP_MAX_LANES and its nonce and
 * proof; a proof is accepted only when it is the HMAC of the secret; an
 * accepted table has no empty piece and sums to the header's length; an
 * accepted range lies inside its region; an accepted response answers its
 * request and never announces more data than the request asked for; an
 * accepted address is exactly one, with its secret.
 */
#include "tl/tcp/tcp.h"
#include "tl/tcp/tcp_int.h"

#include <string.h>

typedef struct fuzz_tcp_tail {
    uint64_t base, size; /* a registered region */
    uint8_t req_op;      /* the lane's request: PUT, GET, PUTV or GETV */
    uint64_t req_id, req_len;
} fuzz_tcp_tail_t;

static uint64_t fuzz_tcp_u64(const uint8_t *p, size_t left)
{
    uint8_t b[8] = {0};

    memcpy(b, p, left < 8 ? left : 8);
    return mf_le64_load(b);
}

static void fuzz_tcp_tail(const uint8_t *p, size_t left, fuzz_tcp_tail_t *t)
{
    uint64_t f[4];

    for (int i = 0; i < 4; i++) {
        f[i] = fuzz_tcp_u64(p, left);
        p += left < 8 ? left : 8;
        left -= left < 8 ? left : 8;
    }
    t->base = f[0];
    t->size = f[1];
    static const uint8_t ops[4] = {MF_TL_TCP_OP_PUT, MF_TL_TCP_OP_GET,
                                   MF_TL_TCP_OP_PUTV, MF_TL_TCP_OP_GETV};

    t->req_op = ops[left > 0 ? p[0] & 3 : 0];
    t->req_id = f[2];
    t->req_len = f[3];
}

static void fuzz_tcp_check_codec(const uint8_t *in, const mf_tl_tcp_hdr_t *hdr)
{
    uint8_t again[MF_TL_TCP_HDR_SIZE];
    mf_tl_tcp_hdr_t twice;

    mf_tl_tcp_hdr_encode(hdr, again);
    if (memcmp(again, in, MF_TL_TCP_HDR_SIZE) != 0) {
        __builtin_trap();
    }
    mf_tl_tcp_hdr_decode(again, &twice);
    if (twice.magic != hdr->magic || twice.version != hdr->version ||
        twice.op != hdr->op || twice.flags != hdr->flags ||
        twice.status != hdr->status || twice.count != hdr->count ||
        twice.req_id != hdr->req_id || twice.key != hdr->key ||
        twice.addr != hdr->addr || twice.len != hdr->len) {
        __builtin_trap();
    }
}

static void fuzz_tcp_check_request(const mf_tl_tcp_hdr_t *req,
                                   const fuzz_tcp_tail_t *t)
{
    const bool hello = req->op == MF_TL_TCP_OP_HELLO;
    const bool vec =
        req->op == MF_TL_TCP_OP_PUTV || req->op == MF_TL_TCP_OP_GETV;
    unsigned __int128 end, region_end;
    bool inside;

    if (mf_tl_tcp_req_check(req) == NULL &&
        (req->magic != MF_TL_TCP_MAGIC || req->version != MF_TL_TCP_VERSION ||
         (req->op != MF_TL_TCP_OP_PUT && req->op != MF_TL_TCP_OP_GET && !vec &&
          !hello) ||
         req->len > MF_TL_TCP_LEN_MAX ||
         (vec ? req->count < 1 || req->count > MF_TL_TCP_VEC_MAX
              : req->count != 0) ||
         (hello && (req->key == 0 || req->addr >= MF_TL_TCP_MAX_LANES ||
                    req->len != MF_TL_TCP_HELLO_LEN)))) {
        __builtin_trap();
    }
    /* the server reaches [addr, addr + len) only inside the region */
    inside = mf_tl_range_inside(t->base, t->size, req->addr, req->len);
    end = (unsigned __int128)req->addr + req->len;
    region_end = (unsigned __int128)t->base + t->size;
    if (inside != (req->addr >= t->base && end <= region_end)) {
        __builtin_trap();
    }
}

/* The piece table of an accepted PUTV/GETV: the bytes after the header. */
static void fuzz_tcp_check_table(const mf_tl_tcp_hdr_t *req,
                                 const uint8_t *tail, size_t left)
{
    uint8_t table[MF_TL_TCP_VEC_MAX * MF_TL_TCP_VEC_ENTRY] = {0};
    uint64_t addrs[MF_TL_TCP_VEC_MAX], lens[MF_TL_TCP_VEC_MAX];
    unsigned __int128 sum = 0;
    bool empty = false;

    if (mf_tl_tcp_req_check(req) != NULL ||
        (req->op != MF_TL_TCP_OP_PUTV && req->op != MF_TL_TCP_OP_GETV)) {
        return;
    }
    memcpy(table, tail, left < sizeof(table) ? left : sizeof(table));
    if (mf_tl_tcp_vec_check(req, table, addrs, lens) != NULL) {
        return;
    }
    for (uint32_t i = 0; i < req->count; i++) {
        if (addrs[i] != mf_le64_load(table + i * MF_TL_TCP_VEC_ENTRY) ||
            lens[i] != mf_le64_load(table + i * MF_TL_TCP_VEC_ENTRY + 8)) {
            __builtin_trap();
        }
        empty |= lens[i] == 0;
        sum += lens[i];
    }
    if (empty || sum != req->len) {
        __builtin_trap();
    }
}

static void fuzz_tcp_check_response(const mf_tl_tcp_hdr_t *resp,
                                    const fuzz_tcp_tail_t *t)
{
    /* the handshake's messages to a lane: exactly one shape each */
    if (mf_tl_tcp_hello_ack_check(resp) &&
        (resp->magic != MF_TL_TCP_MAGIC || resp->version != MF_TL_TCP_VERSION ||
         resp->op != MF_TL_TCP_OP_HELLO_ACK || resp->status != MF_OK ||
         resp->req_id != 0 || resp->count != 0 || resp->len != MF_TL_TCP_MAC)) {
        __builtin_trap();
    }
    if (mf_tl_tcp_challenge_check(resp) &&
        (resp->magic != MF_TL_TCP_MAGIC || resp->version != MF_TL_TCP_VERSION ||
         resp->op != MF_TL_TCP_OP_CHALLENGE || resp->status != MF_OK ||
         resp->req_id != 0 || resp->count != 0 ||
         resp->len != MF_TL_TCP_NONCE)) {
        __builtin_trap();
    }
    uint8_t want =
        t->req_op == MF_TL_TCP_OP_PUT || t->req_op == MF_TL_TCP_OP_PUTV
            ? MF_TL_TCP_OP_PUT_ACK
            : MF_TL_TCP_OP_GET_DATA;

    /* answering the header's own id, and any other */
    for (int i = 0; i < 2; i++) {
        uint64_t id = i == 0 ? resp->req_id : t->req_id;

        if (!mf_tl_tcp_resp_check(resp, t->req_op, id, t->req_len)) {
            continue;
        }
        if (resp->magic != MF_TL_TCP_MAGIC ||
            resp->version != MF_TL_TCP_VERSION || resp->req_id != id ||
            resp->op != want || resp->status > 0 || resp->count != 0 ||
            resp->len > t->req_len ||
            (resp->len != 0 &&
             (resp->op != MF_TL_TCP_OP_GET_DATA || resp->status != MF_OK))) {
            __builtin_trap();
        }
    }
}

/* The bytes after the header as a HELLO's nonce and proof (zeros where
 * missing), checked as the server of a fixed secret does; and as a
 * peer's packed address. */
static void fuzz_tcp_check_handshake(const mf_tl_tcp_hdr_t *req,
                                     const uint8_t *tail, size_t left)
{
    static const uint8_t secret[MF_TL_TCP_SECRET] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t nonce_s[MF_TL_TCP_NONCE] = {9, 8, 7, 6, 5, 4, 3, 2};
    uint8_t body[MF_TL_TCP_HELLO_LEN] = {0}, expected[MF_TL_TCP_MAC],
            got[MF_TL_TCP_SECRET];
    struct sockaddr_in sin;

    memcpy(body, tail, left < sizeof(body) ? left : sizeof(body));
    mf_tl_tcp_proof(secret, false, nonce_s, body, req->key, req->addr,
                    expected);
    if (mf_tl_tcp_proof_equal(body + MF_TL_TCP_NONCE, expected) !=
        (memcmp(body + MF_TL_TCP_NONCE, expected, MF_TL_TCP_MAC) == 0)) {
        __builtin_trap();
    }
    if (mf_tl_tcp_addr_unpack(tail, left, &sin, got) == MF_OK &&
        (left != 12 + MF_TL_TCP_SECRET || sin.sin_port == 0 ||
         memcmp(got, tail + 12, MF_TL_TCP_SECRET) != 0)) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tcp_tail_t tail;
    mf_tl_tcp_hdr_t hdr;

    if (size < MF_TL_TCP_HDR_SIZE) {
        return 0;
    }
    mf_tl_tcp_hdr_decode(data, &hdr);
    fuzz_tcp_tail(data + MF_TL_TCP_HDR_SIZE, size - MF_TL_TCP_HDR_SIZE, &tail);
    fuzz_tcp_check_codec(data, &hdr);
    fuzz_tcp_check_request(&hdr, &tail);
    fuzz_tcp_check_table(&hdr, data + MF_TL_TCP_HDR_SIZE,
                         size - MF_TL_TCP_HDR_SIZE);
    fuzz_tcp_check_response(&hdr, &tail);
    fuzz_tcp_check_handshake(&hdr, data + MF_TL_TCP_HDR_SIZE,
                             size - MF_TL_TCP_HDR_SIZE);
    return 0;
}
