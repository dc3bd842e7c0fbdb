/*
 * shm transport: its ops table, for the registry and the tests.  Private
 * to the transport and its tests.
 */
#ifndef MF_TL_SHM_SHM_H
#define MF_TL_SHM_SHM_H

#include "tl/tl.h"

extern const mf_tl_ops_t mf_tl_shm_ops;

#endif
