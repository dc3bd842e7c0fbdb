/*
 * What the files of the smem_* shim share (src/fabric/compat): upstream's
 * codes of our statuses, the per-thread last error, and serving a config
 * store at a URL.  Not a public header.
 */
#ifndef MF_FABRIC_COMPAT_SMEM_INT_H
#define MF_FABRIC_COMPAT_SMEM_INT_H

#include "util/log.h"
#include "util/misc.h"

#include <compat/smem.h>
#include <compat/smem_bm_def.h>
#include <memfabric/memfabric.h>

/* Upstream's SM_* code of a status. */
int32_t mf_smem_code(mf_status_t status);
/* Records "<call>: <why>" as this thread's last error (and logs it);
 * returns mf_smem_code(status). */
int32_t mf_smem_fail(const char *call, mf_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Serves a config store at url's host and port in this process (once:
 * MF_ERR_EXISTS after), until smem_uninit; over TLS when tls (may be
 * NULL) says so. */
mf_status_t mf_smem_store_start(const char *url, const smem_tls_config_t *tls);
/* Upstream's TLS paths as tls.* settings through set(obj, key, value)
 * (net/tls.h, mf_tls_apply_paths); packagePath (an OpenSSL of its own)
 * is not used: the system's is. */
mf_status_t mf_smem_tls(const smem_tls_config_t *tls,
                        mf_status_t (*set)(void *obj, const char *key,
                                           const char *value),
                        void *obj);
/* MF_CUDA_DEVICE=device unless it is set. */
void mf_smem_device(uint32_t device);
/* Seconds of upstream's timeouts as our milliseconds (0: the default). */
uint32_t mf_smem_ms(uint32_t seconds, uint32_t dflt_ms);

#endif
