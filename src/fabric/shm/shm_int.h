/*
 * SHM internals: the region object and the table of windows.  Not a
 * public header.
 *
 * Store keys of region <id>:
 *   mf/shm/windows            the window table (shm_window.c), changed by
 *                             compare-and-swap
 *   mf/shm/<id>/window        rank 0's record of the region: its windows,
 *                             size, type, world (every rank checks its own
 *                             parameters against it)
 *   mf/shm/<id>/seg/...       the fabric pool of the region (core/boot.c)
 *   mf/shm/<id>/context       the context block (ephemeral)
 *   mf/shm/<id>/exit          "<status> <rank>": a global exit (ephemeral)
 *   mf/shm/<id>/atomic/<name> counters
 * and the collectives' names mf/shm/<id>/{barrier,allgather,group/<key>,
 * gather/<key>}.
 */
#ifndef MF_FABRIC_SHM_INT_H
#define MF_FABRIC_SHM_INT_H

#include "fabric/core/core.h"

#include <memfabric/mf_shm.h>

#define MF_SHM_TABLE_KEY "mf/shm/windows"
#define MF_SHM_KEY_MAX   256
#define MF_SHM_NAME_MAX  201 /* a key or counter name, its NUL included */

/* The windows of one region: a host one always (a device region's is one
 * page per rank), a device one for device regions (len 0: none). */
typedef struct mf_shm_windows {
    uint64_t host_base;
    uint64_t host_len;
    uint64_t dev_base;
    uint64_t dev_len;
} mf_shm_windows_t;

/* Where each range of the table may place windows. */
typedef struct mf_shm_ranges {
    uint64_t host_lo;
    uint64_t dev_lo;
    uint64_t room;  /* bytes of each range */
    uint64_t align; /* of every base */
} mf_shm_ranges_t;

/*
 * Places the windows of region id (win: the lengths in, the bases out;
 * a base already set is kept and not placed) in the table text (table_len
 * bytes; NULL: empty): id's entry is reused when its lengths are the same,
 * else replaced by a first fit in each range.  *out_p (malloc'd,
 * *out_len_p bytes) is the new table, NULL when the table need not
 * change.  MF_ERR_NOMEM when a range has no room (logged).  Lines that do
 * not parse are dropped (logged).
 */
mf_status_t mf_shm_table_place(const char *table, size_t table_len, uint32_t id,
                               const mf_shm_ranges_t *ranges,
                               mf_shm_windows_t *win, char **out_p,
                               size_t *out_len_p);

#endif
