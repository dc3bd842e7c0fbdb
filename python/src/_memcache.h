/*
 * What the files of memfabric._memcache share (_memcache.c: the Client
 * type, its put/get/exist/query calls and the module; _memcache_stream.c:
 * the streaming calls).  Private to the module.
 */
#ifndef MF_PYTHON_MEMCACHE_H
#define MF_PYTHON_MEMCACHE_H

#include "pyhelp.h"

#include <memcache/memcache.h>

typedef struct mc_client {
    PyObject_HEAD mmc_t *mmc;
    int busy; /* calls in flight with the GIL released */
} mc_client_t;

/* Marks a call in flight; raises MF_ERR_STATE when the client is closed. */
int mc_enter(mc_client_t *self);
void mc_leave(mc_client_t *self);
/* Put options from their Python forms (replicas, flags, preferred ranks,
 * media); 0, or -1 with an exception set. */
int mc_opts(PyObject *replicas, unsigned flags, PyObject *preferred,
            PyObject *media, mmc_put_opts_t *opts);
/* The keys of a sequence: a tuple holding them (*tuple_p) and their C
 * strings (*ckeys_p, PyMem_Free), valid while the tuple lives. */
int mc_keys(PyObject *keys, PyObject **tuple_p, const char ***ckeys_p);
/* (size, [(rank, media, gva), ...]) */
PyObject *mc_info_tuple(const mmc_obj_info_t *info);
/* [(status, info or None), ...] of a batch's results and infos. */
PyObject *mc_infos_list(const int *results, const mmc_obj_info_t *infos,
                        size_t count);
/* A batch call over keys only (exist, remove, lease release): the status
 * of every key. */
typedef mmc_status_t (*mc_keys_fn)(mmc_t *mmc, const char *const *keys,
                                   size_t count, mmc_status_t *results);
PyObject *mc_keys_call(mc_client_t *self, PyObject *keys, mc_keys_fn fn);

/* The Client methods of _memcache_stream.c. */
extern PyMethodDef mc_stream_methods[];

#endif
