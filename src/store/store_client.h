/*
 * What the collective operations (barrier, allgather) need from the store
 * client beyond the public API.
 */
#ifndef MF_STORE_STORE_CLIENT_H
#define MF_STORE_STORE_CLIENT_H

#include <memfabric/mf_store.h>

/* Prefix of the keys the library keeps in the store for itself. */
#define MF_STORE_INTERNAL_PREFIX "__mf/"

/*
 * The next round (1, 2, ...) of the collective `kind` named `name` on this
 * client; 0 if out of memory.  Thread safe.
 */
uint64_t mf_store_next_round(mf_store_t *store, const char *kind,
                             const char *name);

#endif
