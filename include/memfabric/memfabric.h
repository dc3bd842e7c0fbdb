/*
 * MemFabric: one global address space over the host and device memory of
 * many processes on many hosts.  Umbrella header.
 */
#ifndef MEMFABRIC_MEMFABRIC_H
#define MEMFABRIC_MEMFABRIC_H

#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>
#include <memfabric/mf_log.h>
#include <memfabric/mf_trace.h>
#include <memfabric/mf_init.h>
#include <memfabric/mf_store.h>
#include <memfabric/mf_bm.h>
#include <memfabric/mf_trans.h>
#include <memfabric/mf_shm.h>

#endif
