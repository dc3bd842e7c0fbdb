/*
 * What a service that embeds the config store server (the MemCache meta
 * service) may do beyond the public API of mf_store.h.
 */
#ifndef MF_STORE_SERVER_FENCE_H
#define MF_STORE_SERVER_FENCE_H

#include <memfabric/mf_store.h>
#include <stdatomic.h>

/* The fence of mf_net_server_fence (net/net.h) on the store's server: an
 * elected leader's store answers nothing once its lease may have run
 * out.  Any thread. */
void mf_store_server_fence(mf_store_server_t *server,
                           const atomic_uint_least64_t *until);

#endif
