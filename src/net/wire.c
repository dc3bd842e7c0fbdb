/*
 * The 24-byte frame header of the net layer (bodies use util/codec.h).
 */
#include "net/net.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

void mf_net_hdr_encode(const mf_net_hdr_t *hdr, uint8_t out[MF_NET_HDR_SIZE])
{
    mf_le32_store(out + 0, hdr->magic);
    out[4] = hdr->version;
    out[5] = hdr->kind;
    mf_le16_store(out + 6, hdr->opcode);
    mf_le32_store(out + 8, (uint32_t)hdr->status);
    mf_le32_store(out + 12, hdr->body_len);
    mf_le64_store(out + 16, hdr->req_id);
}

mf_status_t mf_net_hdr_decode(const uint8_t in[MF_NET_HDR_SIZE],
                              size_t max_body, mf_net_hdr_t *hdr_p)
{
    mf_net_hdr_t hdr;

    hdr.magic = mf_le32_load(in + 0);
    hdr.version = in[4];
    hdr.kind = in[5];
    hdr.opcode = mf_le16_load(in + 6);
    hdr.status = (int32_t)mf_le32_load(in + 8);
    hdr.body_len = mf_le32_load(in + 12);
    hdr.req_id = mf_le64_load(in + 16);

    /* The caller logs with the peer's address; these say what was wrong. */
    if (hdr.magic != MF_NET_MAGIC) {
        mf_debug("bad frame magic 0x%08x", hdr.magic);
        return MF_ERR_PROTO;
    }
    if (hdr.version != MF_NET_VERSION) {
        mf_debug("frame version %u, expected %u", hdr.version, MF_NET_VERSION);
        return MF_ERR_VERSION;
    }
    if ((hdr.kind != MF_NET_KIND_REQUEST) &&
        (hdr.kind != MF_NET_KIND_RESPONSE) &&
        (hdr.kind != MF_NET_KIND_NOTIFY)) {
        mf_debug("bad frame kind %u", hdr.kind);
        return MF_ERR_PROTO;
    }
    if (hdr.body_len > max_body) {
        mf_debug("frame body of %u bytes exceeds the limit of %zu",
                 hdr.body_len, max_body);
        return MF_ERR_TOO_LARGE;
    }

    *hdr_p = hdr;
    return MF_OK;
}
