/*
 * Space allocator of the MemCache meta service: offset bookkeeping for one
 * contributed segment (one rank's region of one media, HBM or DRAM).
 *
 * The allocator manages the offsets [0, capacity) and never touches the
 * memory they stand for.  It hands out blocks by best fit (the smallest free
 * block that fits; among equal sizes, the lowest offset), splits the block it
 * chooses and coalesces a freed block with its free neighbours at once, so no
 * two free blocks are ever adjacent.  Every operation is O(log n) in the
 * number of blocks (expected, see alloc.c).
 *
 * Alignment: every offset and every length is a multiple of the alignment
 * given at creation; the capacity is rounded down and each length up to it.
 * The meta service uses MMC_ALLOC_ALIGN_DEFAULT (4 KiB, the host page size):
 * page-aligned replicas keep copies on the fast, aligned paths of memcpy and
 * of the NICs, let a transport register or map whole pages, and bound the
 * number of blocks (and so the metadata) to capacity / 4 KiB.
 *
 * Not thread safe: the meta service serializes every call on one allocator.
 */
#ifndef MMC_CACHE_META_ALLOC_H
#define MMC_CACHE_META_ALLOC_H

#include <memfabric/mf_status.h>
#include <stdint.h>

/* Alignment the meta service uses for replicas (see above). */
#define MMC_ALLOC_ALIGN_DEFAULT 4096u

typedef struct mmc_alloc mmc_alloc_t;

typedef struct mmc_alloc_stats {
    uint64_t capacity;     /* managed bytes: size rounded down to align */
    uint64_t align;        /* alignment of offsets and lengths */
    uint64_t used;         /* bytes in allocated blocks (rounded lengths) */
    uint64_t free;         /* capacity - used */
    uint64_t free_blocks;  /* number of free blocks (holes) */
    uint64_t largest_free; /* size of the largest free block, 0 if none */
    uint64_t allocations;  /* number of live allocated blocks */
    uint64_t debug_steps;  /* tree nodes visited since creation: a
                              machine-independent cost measure for tests */
} mmc_alloc_stats_t;

/*
 * Creates an allocator of [0, size rounded down to align).  align must be a
 * power of two (MMC_ALLOC_ALIGN_DEFAULT for the meta service) and the rounded
 * size non-zero, otherwise MF_ERR_INVALID (logged).  MF_ERR_NOMEM if the
 * host is out of memory.  The caller owns *alloc_p and destroys it with
 * mmc_alloc_destroy().
 */
mf_status_t mmc_alloc_create(uint64_t size, uint64_t align,
                             mmc_alloc_t **alloc_p);

/* Frees the allocator and its bookkeeping; live allocations are dropped.
 * NULL is accepted. */
void mmc_alloc_destroy(mmc_alloc_t *alloc);

/*
 * Allocates len bytes, rounded up to the alignment, by best fit, and sets
 * *offset_p to the start of the block (a multiple of the alignment).
 * Returns:
 *   MF_OK               the block is allocated;
 *   MF_ERR_INVALID      len is 0 (logged);
 *   MF_ERR_TOO_LARGE    len exceeds the whole capacity: it can never fit;
 *   MF_ERR_NOT_FOUND    no free block is large enough now (the space is used
 *                       or fragmented); the cache layer maps this to its
 *                       own "no space" code and may evict and retry;
 *   MF_ERR_NOMEM        host memory for the bookkeeping ran out (logged).
 * TOO_LARGE and NOT_FOUND are ordinary outcomes and are not logged above
 * debug level.  On any error the allocator is unchanged.
 */
mf_status_t mmc_alloc_alloc(mmc_alloc_t *alloc, uint64_t len,
                            uint64_t *offset_p);

/*
 * Allocates exactly [offset, offset + len rounded up): for rebuilding an
 * allocator from the blocks a segment's holder reports (recovery).
 * MF_ERR_INVALID for an offset off the alignment, a zero length or a
 * range past the capacity (logged); MF_ERR_EXISTS when part of the range
 * is allocated already; MF_ERR_NOMEM.  On any error the allocator is
 * unchanged.
 */
mf_status_t mmc_alloc_alloc_at(mmc_alloc_t *alloc, uint64_t offset,
                               uint64_t len);

/*
 * Frees the block that mmc_alloc_alloc() returned at offset for len (the
 * same len as allocated, or any len with the same rounded value), and
 * coalesces it with its free neighbours.  A double free, an offset that is
 * not the start of an allocated block, a wrong length or an offset out of
 * range is refused with MF_ERR_INVALID (logged) and changes nothing.
 */
mf_status_t mmc_alloc_free(mmc_alloc_t *alloc, uint64_t offset, uint64_t len);

/* Fills *stats; O(log n) (the largest free block is a tree walk). */
void mmc_alloc_stats(const mmc_alloc_t *alloc, mmc_alloc_stats_t *stats);

/*
 * Checks every internal invariant in O(n): the blocks tile [0, capacity) in
 * address order, no two free blocks touch, both trees hold exactly the right
 * blocks in order and heap order, and the counters match.  MF_OK, or
 * MF_ERR_STATE with the first broken invariant logged.  For tests and
 * debugging.
 */
mf_status_t mmc_alloc_check(const mmc_alloc_t *alloc);

#endif
