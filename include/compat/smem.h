/*
 * Upstream MemFabric's common C API (smem_*), as a thin shim over
 * <memfabric/memfabric.h>: a program written for upstream's smem.h
 * recompiles against this header and links libmemfabric.
 *
 * Status codes are upstream's (SM_*); the call that failed leaves its
 * reason in smem_get_last_err_msg() (per thread).  What this build cannot
 * do says so (SM_INVALID_PARAM and a message) instead of pretending: TLS
 * of the config store, for one.  docs/compat.md lists every call and
 * what it maps to.
 */
#ifndef MF_COMPAT_SMEM_H
#define MF_COMPAT_SMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes (upstream's values). */
#define SM_OK                0
#define SM_ERROR             (-1)
#define SM_INVALID_PARAM     (-2000)
#define SM_MALLOC_FAILED     (-2001)
#define SM_NEW_OBJECT_FAILED (-2002)
#define SM_NOT_STARTED       (-2003)
#define SM_TIMEOUT           (-2004)
#define SM_REPEAT_CALL       (-2005)
#define SM_DUPLICATED_OBJECT (-2006)
#define SM_OBJECT_NOT_EXISTS (-2007)
#define SM_NOT_INITIALIZED   (-2008)
#define SM_RESOURCE_IN_USE   (-2009)
#define SM_RECONNECT         (-2010)
#define SMEM_PARTIAL_FAILED  (-2012)

/* Log levels of smem_set_log_level and of the external logger. */
#define SMEM_LOG_DEBUG 0
#define SMEM_LOG_INFO  1
#define SMEM_LOG_WARN  2
#define SMEM_LOG_ERROR 3

/* Initializes the library (mf_init); flags: reserved, 0. */
int32_t smem_init(uint32_t flags);
/* Stops a config store smem_create_config_store started; mf_uninit. */
void smem_uninit(void);

/* Serves a config store in this process at storeUrl ("tcp://ip:port"),
 * until smem_uninit.  SM_REPEAT_CALL if one runs already. */
int32_t smem_create_config_store(const char *storeUrl);

/* Messages of the library go to func(level, msg) (SMEM_LOG_*); NULL: back
 * to standard error. */
int32_t smem_set_extern_logger(void (*func)(int level, const char *msg));
/* SMEM_LOG_DEBUG .. SMEM_LOG_ERROR. */
int32_t smem_set_log_level(int level);

/* TLS of the config store connections: enable = false is accepted;
 * enable = true fails (not available in this build). */
int32_t smem_set_conf_store_tls(bool enable, const char *tls_info,
                                const uint32_t tls_info_len);

/* Upstream's SM_* code of one of our statuses (mf_status_t): this
 * library's addition, for wrappers in other languages. */
int32_t smem_status(int32_t status);

/* The reason of this thread's last failed smem_* call ("" if none). */
const char *smem_get_last_err_msg(void);
/* The same, and forgets it. */
const char *smem_get_and_clear_last_err_msg(void);

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_SMEM_H */
