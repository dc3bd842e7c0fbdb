/*
 * Status codes of MemCache.
 *
 * Every MemCache call returns an mmc_status_t: MMC_OK (0), one of the
 * MMC_ERR_* codes below (the outcomes particular to a cache: not found,
 * exists, no space, ...), or a MemFabric mf_status_t error with the same
 * meaning it has there (MF_ERR_INVALID for a bad argument, MF_ERR_TIMEOUT,
 * a peer error from -100 to -199 when a replica's process or link failed,
 * ...).  The ranges never overlap:
 *   -1   .. -99   the call itself (mf_status_t);
 *   -100 .. -199  a peer or link failed: another replica may succeed;
 *   -200 .. -299  MemCache outcomes (this header).
 * mmc_status_name() and mmc_status_str() name every code of all ranges.
 */
#ifndef MEMCACHE_MMC_STATUS_H
#define MEMCACHE_MMC_STATUS_H

#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>

MF_BEGIN_DECLS

typedef int mmc_status_t;

#ifdef MMC_OK
#undef MMC_OK /* the upstream-compatible <compat/mmc_def.h>'s: 0 too */
#endif

enum {
    MMC_OK = 0,

    MMC_ERR_FIRST = -200,
    MMC_ERR_NOT_FOUND = -200,     /* no committed object under this key */
    MMC_ERR_EXISTS = -201,        /* the key was written already; put
                                     without MMC_PUT_REPLACE */
    MMC_ERR_NO_SPACE = -202,      /* no segment has room for the replicas */
    MMC_ERR_SIZE_MISMATCH = -203, /* buffers differ from the object size */
    MMC_ERR_BUSY = -204,          /* another put of this key is in flight */
    MMC_ERR_ABORTED = -205,       /* the put was aborted or reclaimed before
                                     its commit */
    MMC_ERR_LEASE_EXPIRED = -206, /* a read lease ran out before release */
    MMC_ERR_PARTIAL = -207,       /* batch: some items failed, see results */
    MMC_ERR_NO_REPLICA = -208,    /* every replica of the object failed */
    MMC_ERR_CORRUPT = -209,       /* stored bytes failed their checksum (an
                                     SSD copy torn or overwritten): never
                                     served */
    MMC_ERR_LAST = -299,
};

/* Name of a status of any range, e.g. "MMC_ERR_EXISTS"; never NULL. */
MF_API const char *mmc_status_name(mmc_status_t status);

/* Human-readable description of a status of any range; never NULL. */
MF_API const char *mmc_status_str(mmc_status_t status);

MF_END_DECLS

#endif /* MEMCACHE_MMC_STATUS_H */
