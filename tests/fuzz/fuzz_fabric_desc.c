/*
 * Fuzz target: the segment descriptor decoder (src/fabric/core/desc.c),
 * fed what a peer could publish in the config store.  A descriptor that
 * decodes re-encodes to the same bytes.
 */
#include "fabric/core/desc.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_fabric_desc_t desc;
    mf_wbuf_t w;

    if (mf_fabric_desc_decode(data, size, &desc) != MF_OK) {
        return 0;
    }
    mf_wbuf_init(&w);
    mf_fabric_desc_encode(&desc, &w);
    if (mf_wbuf_status(&w) != MF_OK || w.len != size ||
        memcmp(w.data, data, size) != 0) {
        __builtin_trap();
    }
    mf_wbuf_free(&w);
    return 0;
}
