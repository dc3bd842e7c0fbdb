/*
 * The smem_* shim's common calls (compat/smem.h): init, the config store
 * server, logging, the last error, and the translation of our statuses to
 * upstream's SM_* codes that every file of the shim uses.
 */
#include "fabric/compat/smem_int.h"
#include "net/tls.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread char mf_smem_err[512];

static struct {
    pthread_mutex_t lock;
    mf_store_server_t *server;
    void (*logger)(int level, const char *msg);
} mf_smem_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

int32_t mf_smem_code(mf_status_t status)
{
    switch (status) {
    case MF_OK:
        return SM_OK;
    case MF_ERR_INVALID:
    case MF_ERR_CONFIG:
    case MF_ERR_OUT_OF_RANGE:
    case MF_ERR_TOO_LARGE:
    case MF_ERR_UNSUPPORTED:
        return SM_INVALID_PARAM;
    case MF_ERR_NOMEM:
        return SM_MALLOC_FAILED;
    case MF_ERR_TIMEOUT:
        return SM_TIMEOUT;
    case MF_ERR_EXISTS:
        return SM_DUPLICATED_OBJECT;
    case MF_ERR_NOT_FOUND:
        return SM_OBJECT_NOT_EXISTS;
    case MF_ERR_STATE:
        return SM_NOT_INITIALIZED;
    case MF_ERR_BUSY:
    case MF_ERR_ADDR_IN_USE:
        return SM_RESOURCE_IN_USE;
    case MF_ERR_CONN_RESET:
        return SM_RECONNECT;
    default:
        return SM_ERROR;
    }
}

int32_t mf_smem_fail(const char *call, mf_status_t status, const char *fmt, ...)
{
    char why[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(mf_smem_err, sizeof(mf_smem_err), "%s: %s (%s)", call, why,
             mf_status_name(status));
    mf_error("%s", mf_smem_err);
    return mf_smem_code(status);
}

uint32_t mf_smem_ms(uint32_t seconds, uint32_t dflt_ms)
{
    if (seconds == 0) {
        return dflt_ms;
    }
    return seconds > UINT32_MAX / 1000 ? UINT32_MAX : seconds * 1000;
}

void mf_smem_device(uint32_t device)
{
    char text[16];

    snprintf(text, sizeof(text), "%u", device);
    (void)setenv("MF_CUDA_DEVICE", text, 0);
}

mf_status_t mf_smem_tls(const smem_tls_config_t *tls,
                        mf_status_t (*set)(void *obj, const char *key,
                                           const char *value),
                        void *obj)
{
    mf_tls_paths_t p;

    if (tls == NULL) {
        return MF_OK;
    }
    p = (mf_tls_paths_t){
        .enable = tls->tlsEnable,
        .size = SMEM_TLS_PATH_SIZE,
        .ca_file = tls->caPath,
        .crl_file = tls->crlPath,
        .cert_file = tls->certPath,
        .key_file = tls->keyPath,
        .key_password_file = tls->keyPassPath,
        .decrypter_lib = tls->decrypterLibPath,
    };
    return mf_tls_apply_paths(&p, set, obj);
}

static mf_status_t mf_smem_store_set(void *obj, const char *key,
                                     const char *value)
{
    return mf_store_server_config_set(obj, key, value);
}

mf_status_t mf_smem_store_start(const char *url, const smem_tls_config_t *tls)
{
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    char host[256];
    uint16_t port;
    mf_status_t status;

    status = mf_url_parse(url, host, sizeof(host), &port);
    if (status != MF_OK) {
        return status;
    }
    mf_store_server_config_init(&cfg);
    if (!mf_strlcpy(cfg.host, host, sizeof(cfg.host))) {
        return MF_ERR_INVALID;
    }
    cfg.port = port;
    status = mf_smem_tls(tls, mf_smem_store_set, &cfg);
    if (status != MF_OK) {
        return status;
    }
    pthread_mutex_lock(&mf_smem_g.lock);
    if (mf_smem_g.server != NULL) {
        pthread_mutex_unlock(&mf_smem_g.lock);
        return MF_ERR_EXISTS;
    }
    status = mf_store_server_start(&cfg, &server);
    if (status == MF_OK) {
        mf_smem_g.server = server;
    }
    pthread_mutex_unlock(&mf_smem_g.lock);
    return status;
}

MF_API int32_t smem_status(int32_t status)
{
    return mf_smem_code((mf_status_t)status);
}

MF_API int32_t smem_init(uint32_t flags)
{
    (void)flags;
    return mf_smem_code(mf_init());
}

MF_API void smem_uninit(void)
{
    mf_store_server_t *server;

    pthread_mutex_lock(&mf_smem_g.lock);
    server = mf_smem_g.server;
    mf_smem_g.server = NULL;
    pthread_mutex_unlock(&mf_smem_g.lock);
    mf_store_server_stop(server);
    mf_uninit();
}

MF_API int32_t smem_create_config_store(const char *storeUrl)
{
    mf_status_t status;

    if (storeUrl == NULL) {
        return mf_smem_fail("smem_create_config_store", MF_ERR_INVALID,
                            "storeUrl is NULL");
    }
    status = mf_smem_store_start(storeUrl, NULL);
    if (status == MF_ERR_EXISTS) {
        mf_smem_fail("smem_create_config_store", status,
                     "a config store runs in this process already");
        return SM_REPEAT_CALL;
    }
    if (status != MF_OK) {
        return mf_smem_fail("smem_create_config_store", status,
                            "cannot serve a config store at %s", storeUrl);
    }
    return SM_OK;
}

static void mf_smem_sink(mf_log_level_t level, const char *file, int line,
                         const char *message, void *arg)
{
    void (*logger)(int, const char *) = arg;

    (void)file;
    (void)line;
    logger(level <= MF_LOG_ERROR  ? SMEM_LOG_ERROR
           : level == MF_LOG_WARN ? SMEM_LOG_WARN
           : level == MF_LOG_INFO ? SMEM_LOG_INFO
                                  : SMEM_LOG_DEBUG,
           message);
}

MF_API int32_t smem_set_extern_logger(void (*func)(int level, const char *msg))
{
    mf_log_set_sink(func != NULL ? mf_smem_sink : NULL, (void *)func);
    return SM_OK;
}

MF_API int32_t smem_set_log_level(int level)
{
    static const mf_log_level_t levels[] = {MF_LOG_DEBUG, MF_LOG_INFO,
                                            MF_LOG_WARN, MF_LOG_ERROR};

    if (level < SMEM_LOG_DEBUG || level > SMEM_LOG_ERROR) {
        return mf_smem_fail("smem_set_log_level", MF_ERR_INVALID,
                            "level %d (0 debug .. 3 error)", level);
    }
    mf_log_set_level(levels[level]);
    return SM_OK;
}

MF_API int32_t smem_set_conf_store_tls(bool enable, const char *tls_info,
                                       const uint32_t tls_info_len)
{
    (void)tls_info;
    (void)tls_info_len;
    if (enable) {
        return mf_smem_fail("smem_set_conf_store_tls", MF_ERR_UNSUPPORTED,
                            "the tls_info string is not read: give TLS as "
                            "smem_bm_config_t.storeTlsConfig or the tls.* "
                            "settings (MF_TLS_* variables)");
    }
    return SM_OK;
}

MF_API const char *smem_get_last_err_msg(void)
{
    return mf_smem_err;
}

MF_API const char *smem_get_and_clear_last_err_msg(void)
{
    static __thread char copy[sizeof(mf_smem_err)];

    memcpy(copy, mf_smem_err, sizeof(copy));
    mf_smem_err[0] = '\0';
    return copy;
}
