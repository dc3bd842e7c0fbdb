/*
 * What a service that embeds the config store server (the MemCache meta
 * service) may do beyond the public API of mf_store.h.
 */
#ifndef MF_STORE_SERVER_FENCE_H
#define MF_STORE_SERVER_FENCE_H

#include <memfabric/mf_store.h>
#include <stdatomic.h>

struct mf_net_stream_ops;

/* mf_store_server_start() with the connections' byte streams made by
 * stream (net/net.h: TLS, net/tls.h); NULL: plain TCP. */
mf_status_t mf_store_server_start_stream(const mf_store_server_config_t *cfg,
                                         const struct mf_net_stream_ops *stream,
                                         mf_store_server_t **server_p);

/* The fence of mf_net_server_fence (net/net.h) on the store's server: an
 * elected leader's store answers nothing once its lease may have run
 * out.  Any thread. */
void mf_store_server_fence(mf_store_server_t *server,
                           const atomic_uint_least64_t *until);

#endif
