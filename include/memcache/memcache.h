/*
 * MemCache: a distributed cache of large objects on MemFabric.  Umbrella
 * header of the public C API (libmemcache, prefix mmc_).
 */
#ifndef MEMCACHE_MEMCACHE_H
#define MEMCACHE_MEMCACHE_H

#include <memcache/mmc.h>
#include <memcache/mmc_status.h>

#endif /* MEMCACHE_MEMCACHE_H */
