/*
 * Fuzz target: every config store message decoder.  The first two bytes
 * pick the request opcode, the rest is the body, as the server sees it.
 */
#include "store/store_proto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_store_req_t req;
    mf_store_watch_event_t wev;
    mf_store_rank_event_t rev;
    const void *value;
    size_t len;
    int64_t i64;
    uint32_t u32, ranks[8];
    bool present;
    uint16_t op;

    if (size < 2) {
        return 0;
    }
    op = (uint16_t)(data[0] | data[1] << 8);
    data += 2;
    size -= 2;
    if (mf_store_req_decode(op % (MF_STORE_OP_LAST + 2), data, size, &req) ==
        MF_OK) {
        /* A decoded request re-encodes to the same body. */
        mf_wbuf_t w;
        mf_wbuf_init(&w);
        if (mf_store_req_encode(op % (MF_STORE_OP_LAST + 2), &req, &w) ==
                MF_OK &&
            (w.len != size || (size > 0 && memcmp(w.data, data, size) != 0))) {
            __builtin_trap();
        }
        mf_wbuf_free(&w);
    }
    mf_store_value_decode(data, size, &value, &len);
    mf_store_i64_decode(data, size, &i64);
    mf_store_u32_decode(data, size, &u32);
    mf_store_current_decode(data, size, &present, &value, &len);
    mf_store_ranks_decode(data, size, ranks, 8, &u32);
    mf_store_watch_event_decode(data, size, &wev);
    mf_store_rank_event_decode(data, size, &rev);
    return 0;
}
