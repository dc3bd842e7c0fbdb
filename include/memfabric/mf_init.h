/*
 * Process-wide initialization of the library.
 */
#ifndef MEMFABRIC_MF_INIT_H
#define MEMFABRIC_MF_INIT_H

#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>

MF_BEGIN_DECLS

/*
 * Initializes the library: logging level from MF_LOG_LEVEL, event library
 * locking.  Reference counted: every successful mf_init() is paired with
 * one mf_uninit().  The store API works without it (it initializes what it
 * needs); the BM API requires it.
 */
MF_API mf_status_t mf_init(void);
MF_API void mf_uninit(void);

/*
 * Raises this process's soft limit of open files (RLIMIT_NOFILE) to its
 * hard limit, for a daemon that serves many connections (mf-store and
 * mmc-meta call it at start), and logs the limit in effect at info level.
 * *limit_p (optional) gets it.  Failing to raise it is only a warning.
 */
MF_API mf_status_t mf_nofile_limit_raise(uint64_t *limit_p);

/* Whether this process can have device memory (the CUDA driver loads
 * and has a device): MF_OK, else why not (MF_ERR_UNSUPPORTED...).  Loads
 * the driver on first use; a process that forks must ask after. */
MF_API mf_status_t mf_device_ready(void);

/* "major.minor.patch" */
MF_API const char *mf_version(void);

MF_END_DECLS

#endif
