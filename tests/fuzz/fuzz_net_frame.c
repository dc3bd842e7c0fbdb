/*
 * Fuzz target: a frame header and a body read field by field, as a server
 * or client does with bytes from a peer.  Nothing may crash or read out of
 * bounds, whatever the bytes.
 */
#include "net/net.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_net_hdr_t hdr;
    mf_rbuf_t r;
    const void *bytes;
    size_t len;
    char str[64];
    uint64_t u64;
    uint32_t u32;
    uint16_t u16;
    uint8_t u8;

    if (size >= MF_NET_HDR_SIZE &&
        mf_net_hdr_decode(data, 1u << 20, &hdr) == MF_OK) {
        uint8_t again[MF_NET_HDR_SIZE];
        mf_net_hdr_encode(&hdr, again);
        if (memcmp(again, data, MF_NET_HDR_SIZE) != 0) {
            __builtin_trap(); /* decode and encode must agree */
        }
    }
    mf_rbuf_init(&r, data, size);
    while (r.left > 0 && !r.failed) {
        mf_rbuf_get_u8(&r, &u8);
        switch (u8 % 6) {
        case 0:
            mf_rbuf_get_u16(&r, &u16);
            break;
        case 1:
            mf_rbuf_get_u32(&r, &u32);
            break;
        case 2:
            mf_rbuf_get_u64(&r, &u64);
            break;
        case 3:
            mf_rbuf_get_bytes(&r, &bytes, &len, 4096);
            break;
        case 4:
            mf_rbuf_get_str(&r, str, sizeof(str));
            break;
        default:
            mf_rbuf_get_raw(&r, &bytes, u8 % 7);
            break;
        }
    }
    (void)mf_rbuf_status(&r, true);
    return 0;
}
