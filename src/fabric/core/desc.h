/*
 * Segment descriptors: what a rank publishes in the config store so peers
 * can reach its segment.  Little-endian, through util/codec:
 *
 *   u32 magic "MFBD"   u8 version   u8 leaving (a tombstone of a graceful
 *   leave)   u32 rank   u64 gva   u64 size (valid bytes)   u64 map_size
 *   (mapped bytes, page aligned)   u64 incarnation   u32 pid   str host_id
 *   u32 ntl, then per transport: str name, bytes address, bytes rkey
 *
 * The decoder trusts nothing: every length is bounded, the transport list
 * is read whole, and trailing bytes are an error.  Whether the claims fit
 * the pool (rank, window slot, stride) is the caller's check.  Private to
 * src/fabric/core and its tests.
 */
#ifndef MF_FABRIC_CORE_DESC_H
#define MF_FABRIC_CORE_DESC_H

#include "util/codec.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MF_FABRIC_DESC_MAGIC   0x4442464du /* "MFBD" */
#define MF_FABRIC_DESC_VERSION 1
#define MF_FABRIC_DESC_TL_MAX  16   /* transports in one descriptor */
#define MF_FABRIC_BLOB_MAX     1024 /* bytes of an address or a key */

typedef struct mf_fabric_desc_tl {
    char name[32];
    const void *addr; /* into the decoded buffer */
    size_t addr_len;
    const void *rkey;
    size_t rkey_len;
} mf_fabric_desc_tl_t;

typedef struct mf_fabric_desc {
    bool leaving;
    uint32_t rank;
    uint64_t gva;
    uint64_t size;
    uint64_t map_size;
    uint64_t incarnation;
    uint32_t pid;
    char host_id[256];
    uint32_t ntl;
    mf_fabric_desc_tl_t tls[MF_FABRIC_DESC_TL_MAX];
} mf_fabric_desc_t;

void mf_fabric_desc_encode(const mf_fabric_desc_t *desc, mf_wbuf_t *w);
/* MF_ERR_PROTO for anything malformed; desc's pointers point into buf. */
mf_status_t mf_fabric_desc_decode(const void *buf, size_t len,
                                  mf_fabric_desc_t *desc);

#endif
