/*
 * Fuzz target: the tcp transport's 48-byte header as a peer sends it, with
 * the checks a server applies to a request (and the range check of its
 * registered regions) and those a lane applies to a response (and to
 * the answer to its HELLO).  The header
 * comes first; the bytes after it (zeros where missing) give a region
 * (base, size) and the request a lane sent (op, id, length).
 *
 * Decoding and encoding agree on every byte but the reserved ones; an
 * accepted request is a PUT or GET of this version and at most
 * MF_TL_TCP_LEN_MAX bytes, or a HELLO with an endpoint id, a lane index
 * below MF_TL_TCP_MAX_LANES and no data; an accepted range lies inside its
 * region; an accepted response answers its request and never announces more
 * data than the request asked for.
 */
#include "tl/tcp/tcp.h"

#include <string.h>

typedef struct fuzz_tcp_tail {
    uint64_t base, size; /* a registered region */
    uint8_t req_op;      /* the lane's request: PUT if even, else GET */
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
    t->req_op = (left > 0 && (p[0] & 1)) ? MF_TL_TCP_OP_GET : MF_TL_TCP_OP_PUT;
    t->req_id = f[2];
    t->req_len = f[3];
}

static void fuzz_tcp_check_codec(const uint8_t *in, const mf_tl_tcp_hdr_t *hdr)
{
    uint8_t again[MF_TL_TCP_HDR_SIZE];
    mf_tl_tcp_hdr_t twice;

    mf_tl_tcp_hdr_encode(hdr, again);
    if (memcmp(again, in, 12) != 0 || memcmp(again + 16, in + 16, 32) != 0 ||
        mf_le32_load(again + 12) != 0) {
        __builtin_trap(); /* reserved bytes are written as zeros */
    }
    mf_tl_tcp_hdr_decode(again, &twice);
    if (twice.magic != hdr->magic || twice.version != hdr->version ||
        twice.op != hdr->op || twice.flags != hdr->flags ||
        twice.status != hdr->status || twice.req_id != hdr->req_id ||
        twice.key != hdr->key || twice.addr != hdr->addr ||
        twice.len != hdr->len) {
        __builtin_trap();
    }
}

static void fuzz_tcp_check_request(const mf_tl_tcp_hdr_t *req,
                                   const fuzz_tcp_tail_t *t)
{
    const bool hello = req->op == MF_TL_TCP_OP_HELLO;
    unsigned __int128 end, region_end;
    bool inside;

    if (mf_tl_tcp_req_check(req) == NULL &&
        (req->magic != MF_TL_TCP_MAGIC || req->version != MF_TL_TCP_VERSION ||
         (req->op != MF_TL_TCP_OP_PUT && req->op != MF_TL_TCP_OP_GET &&
          !hello) ||
         req->len > MF_TL_TCP_LEN_MAX ||
         (hello && (req->key == 0 || req->addr >= MF_TL_TCP_MAX_LANES ||
                    req->len != 0)))) {
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

static void fuzz_tcp_check_response(const mf_tl_tcp_hdr_t *resp,
                                    const fuzz_tcp_tail_t *t)
{
    /* the answer to a HELLO: exactly one shape */
    if (mf_tl_tcp_hello_ack_check(resp) &&
        (resp->magic != MF_TL_TCP_MAGIC || resp->version != MF_TL_TCP_VERSION ||
         resp->op != MF_TL_TCP_OP_HELLO_ACK || resp->status != MF_OK ||
         resp->req_id != 0 || resp->len != 0)) {
        __builtin_trap();
    }
    uint8_t want = t->req_op == MF_TL_TCP_OP_PUT ? MF_TL_TCP_OP_PUT_ACK
                                                 : MF_TL_TCP_OP_GET_DATA;

    /* answering the header's own id, and any other */
    for (int i = 0; i < 2; i++) {
        uint64_t id = i == 0 ? resp->req_id : t->req_id;

        if (!mf_tl_tcp_resp_check(resp, t->req_op, id, t->req_len)) {
            continue;
        }
        if (resp->magic != MF_TL_TCP_MAGIC ||
            resp->version != MF_TL_TCP_VERSION || resp->req_id != id ||
            resp->op != want || resp->status > 0 || resp->len > t->req_len ||
            (resp->len != 0 &&
             (resp->op != MF_TL_TCP_OP_GET_DATA || resp->status != MF_OK))) {
            __builtin_trap();
        }
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
    fuzz_tcp_check_response(&hdr, &tail);
    return 0;
}
