/*
 * The mmcc_* shim (compat/mmc_client.h) over mmc.h: upstream's one
 * client per process, its buffers (an address, an offset, a length and
 * upstream's media number) and options, and upstream's result codes.
 * The leases and allocations of the streaming calls are the mmc_t's,
 * kept by key inside libmemcache.
 */
#include "cache/local/local.h"
#include "net/tls.h"

#include <compat/mmc_client.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The client, and the calls using it: uninit waits for them to end and
 * refuses new ones meanwhile. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    mmc_t *mmc;
    unsigned users;
    bool closing;
    ExternalLog log;
} mmcc_g = {.lock = PTHREAD_MUTEX_INITIALIZER,
            .idle = PTHREAD_COND_INITIALIZER};

MF_API int32_t mmcc_status(int32_t status)
{
    switch (status) {
    case MMC_OK:
        return MMC_OK;
    case MF_ERR_INVALID:
    case MF_ERR_CONFIG:
    case MF_ERR_OUT_OF_RANGE:
    case MF_ERR_UNSUPPORTED:
    case MMC_ERR_SIZE_MISMATCH:
        return MMC_INVALID_PARAM;
    case MF_ERR_NOMEM:
        return MMC_MALLOC_FAILED;
    case MF_ERR_TIMEOUT:
        return MMC_TIMEOUT;
    case MF_ERR_EXISTS:
    case MMC_ERR_EXISTS:
        return MMC_DUPLICATED_OBJECT;
    case MF_ERR_NOT_FOUND:
        return MMC_OBJECT_NOT_EXISTS;
    case MF_ERR_STATE:
        return MMC_CLIENT_NOT_INIT;
    case MF_ERR_TOO_LARGE:
        return MMC_EXCEED_CAPACITY;
    case MF_ERR_CONN_REFUSED:
    case MF_ERR_CONN_RESET:
        return MMC_NOT_CONNET_META;
    case MF_ERR_PEER_LOST:
    case MF_ERR_UNREACHABLE:
        return MMC_NOT_CONNET_LOCAL;
    case MMC_ERR_NOT_FOUND:
    case MMC_ERR_ABORTED: /* an allocation the meta service forgot */
        return MMC_UNMATCHED_KEY;
    case MMC_ERR_NO_SPACE:
        return MMC_NOT_ENOUGH_MEMORY;
    case MMC_ERR_BUSY: /* being written */
        return MMC_UNMATCHED_STATE;
    case MMC_ERR_LEASE_EXPIRED:
        return MMC_LEASE_EXPIRED;
    default:
        return status > 0 ? status : MMC_ERROR;
    }
}

/* The client, held for the call, or NULL and MMC_CLIENT_NOT_INIT logged. */
static mmc_t *mmcc_hold(const char *call)
{
    mmc_t *mmc;

    pthread_mutex_lock(&mmcc_g.lock);
    mmc = mmcc_g.closing ? NULL : mmcc_g.mmc;
    mmcc_g.users += mmc != NULL;
    pthread_mutex_unlock(&mmcc_g.lock);
    if (mmc == NULL) {
        mf_error("%s: call mmcc_init first", call);
    }
    return mmc;
}

/* The end of a call that held the client (the cleanup of MMCC_HOLD). */
static void mmcc_release(mmc_t **mmc_p)
{
    if (*mmc_p == NULL) {
        return;
    }
    pthread_mutex_lock(&mmcc_g.lock);
    if (--mmcc_g.users == 0) {
        pthread_cond_broadcast(&mmcc_g.idle);
    }
    pthread_mutex_unlock(&mmcc_g.lock);
}

/* Declares mmc, the client held until the end of the scope. */
#define MMCC_HOLD(_mmc, _call)                                                 \
    mmc_t *_mmc __attribute__((cleanup(mmcc_release))) = mmcc_hold(_call)

static void mmcc_sink(mf_log_level_t level, const char *file, int line,
                      const char *message, void *arg)
{
    (void)file;
    (void)line;
    (void)arg;
    mmcc_g.log(level <= MF_LOG_ERROR  ? 3
               : level == MF_LOG_WARN ? 2
               : level == MF_LOG_INFO ? 1
                                      : 0,
               message);
}

static mf_status_t mmcc_tls_set(void *obj, const char *key, const char *value)
{
    return mmc_config_set(obj, key, value);
}

/* Upstream's TLS paths as the tls.* settings (net/tls.h); packagePath,
 * an OpenSSL of its own, is not used: the system's is. */
static mmc_status_t mmcc_tls(const mmc_tls_config *tls, mmc_config_t *cfg)
{
    const mf_tls_paths_t p = {
        .enable = tls->tlsEnable,
        .size = TLS_PATH_SIZE,
        .ca_file = tls->caPath,
        .crl_file = tls->crlPath,
        .cert_file = tls->certPath,
        .key_file = tls->keyPath,
        .key_password_file = tls->keyPassPath,
        .decrypter_lib = tls->decrypterLibPath,
    };

    return mf_tls_apply_paths(&p, mmcc_tls_set, cfg);
}

MF_API int32_t mmcc_init(mmc_client_config_t *config)
{
    static const mf_log_level_t levels[] = {MF_LOG_DEBUG, MF_LOG_INFO,
                                            MF_LOG_WARN, MF_LOG_ERROR};
    mmc_config_t cfg;
    mmc_status_t st;
    mmc_t *mmc;

    if (config == NULL || memchr(config->discoveryURL, '\0',
                                 sizeof(config->discoveryURL)) == NULL) {
        mf_error("mmcc_init: config missing, or its URL not terminated");
        return MMC_INVALID_PARAM;
    }
    if (config->logLevel >= 0 && config->logLevel <= 3) {
        mmc_log_set_level(levels[config->logLevel]);
    }
    if (config->logFunc != NULL) {
        mmcc_g.log = config->logFunc;
        mmc_log_set_sink(mmcc_sink, NULL);
    }
    mmc_config_init(&cfg);
    st = mmc_config_load_env(&cfg);
    if (st == MMC_OK) {
        st = mmc_config_set(&cfg, "meta_url", config->discoveryURL);
    }
    if (st == MMC_OK) {
        st = mmcc_tls(&config->tlsConfig, &cfg);
    }
    if (st == MMC_OK && config->timeOut != 0) {
        char ms[32];

        snprintf(ms, sizeof(ms), "%llus", (unsigned long long)config->timeOut);
        st = mmc_config_set(&cfg, "timeout_ms", ms);
    }
    if (st != MMC_OK) {
        return mmcc_status(st);
    }
    pthread_mutex_lock(&mmcc_g.lock);
    if (mmcc_g.mmc != NULL || mmcc_g.closing) {
        pthread_mutex_unlock(&mmcc_g.lock);
        mf_error("mmcc_init: the client exists already");
        return MMC_REPEAT_CALL;
    }
    st = mmc_create(&cfg, &mmc);
    if (st == MMC_OK) {
        mmcc_g.mmc = mmc;
    }
    pthread_mutex_unlock(&mmcc_g.lock);
    return mmcc_status(st);
}

MF_API void mmcc_uninit(void)
{
    mmc_t *mmc;

    pthread_mutex_lock(&mmcc_g.lock);
    mmcc_g.closing = true;
    while (mmcc_g.users > 0) {
        pthread_cond_wait(&mmcc_g.idle, &mmcc_g.lock);
    }
    mmc = mmcc_g.mmc;
    mmcc_g.mmc = NULL;
    pthread_mutex_unlock(&mmcc_g.lock);
    mmc_destroy(mmc);
    pthread_mutex_lock(&mmcc_g.lock);
    mmcc_g.closing = false;
    pthread_mutex_unlock(&mmcc_g.lock);
    if (mmcc_g.log != NULL) {
        mmc_log_set_sink(NULL, NULL);
        mmcc_g.log = NULL;
    }
}

MF_API int32_t mmcc_register_buffer(uint64_t addr, uint64_t size)
{
    MMCC_HOLD(mmc, "mmcc_register_buffer");

    return mmc != NULL ? mmcc_status(mmc_register_buffer(
                             mmc, (void *)(uintptr_t)addr, size))
                       : MMC_CLIENT_NOT_INIT;
}

MF_API int32_t mmcc_unregister_buffer(uint64_t addr, uint64_t size)
{
    MMCC_HOLD(mmc, "mmcc_unregister_buffer");

    (void)size;
    return mmc != NULL ? mmcc_status(mmc_unregister_buffer(
                             mmc, (void *)(uintptr_t)addr))
                       : MMC_CLIENT_NOT_INIT;
}

MF_API int32_t mmcc_local_service_id(uint32_t *localServiceId)
{
    MMCC_HOLD(mmc, "mmcc_local_service_id");

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (localServiceId == NULL) {
        return MMC_INVALID_PARAM;
    }
    *localServiceId = mmc_rank(mmc);
    return MMC_OK;
}

/* ------------------------------------------------------------ objects */

/* Our iov of an upstream buffer. */
static void mmcc_iov(const mmc_buffer *buf, mmc_iov_t *iov)
{
    iov->base = (void *)(uintptr_t)(buf->addr + buf->offset);
    iov->len = buf->len;
    iov->mem = buf->type == MEDIA_HBM    ? MMC_MEM_DEVICE
               : buf->type == MEDIA_DRAM ? MMC_MEM_HOST
                                         : MMC_MEM_AUTO;
}

/* Our put options of upstream's. */
static int32_t mmcc_opts(const mmc_put_options *in, mmc_put_opts_t *opts)
{
    mmc_put_opts_init(opts);
    if (in->mediaType != MEDIA_DRAM && in->mediaType != MEDIA_HBM) {
        mf_error("mmcc: mediaType %u (MEDIA_HBM 0, MEDIA_DRAM 1)",
                 in->mediaType);
        return MMC_INVALID_PARAM;
    }
    if (in->replicaNum > MMC_MAX_REPLICAS) {
        mf_error("mmcc: replicaNum %u above %u", in->replicaNum,
                 MMC_MAX_REPLICAS);
        return MMC_INVALID_PARAM;
    }
    opts->media = in->mediaType == MEDIA_HBM ? MMC_MEDIA_HBM : MMC_MEDIA_DRAM;
    opts->replicas = in->replicaNum;
    for (int i = 0; i < MAX_BLOB_COPIES && in->preferredLocalServiceIDs[i] >= 0;
         i++) {
        opts->preferred[opts->npreferred++] =
            (uint32_t)in->preferredLocalServiceIDs[i];
    }
    return MMC_OK;
}

MF_API int32_t mmcc_put(const char *key, mmc_buffer *buf,
                        mmc_put_options options, uint32_t flags)
{
    int32_t result, code;

    (void)flags;
    if (buf == NULL) {
        return MMC_INVALID_PARAM;
    }
    code = mmcc_batch_put(&key, 1, buf, &options, 0, &result);
    return code != MMC_OK ? code : result;
}

MF_API int32_t mmcc_get(const char *key, mmc_buffer *buf, uint32_t flags)
{
    int32_t result, code;

    (void)flags;
    if (buf == NULL) {
        return MMC_INVALID_PARAM;
    }
    code = mmcc_batch_get(&key, 1, buf, 0, &result);
    return code != MMC_OK ? code : result;
}

/* results[i] = upstream's code of ours[i]; the call's code. */
static int32_t mmcc_results(const mmc_status_t *ours, uint32_t n,
                            int32_t *results, mmc_status_t call)
{
    for (uint32_t i = 0; i < n && results != NULL; i++) {
        results[i] = mmcc_status(ours[i]);
    }
    return call == MMC_OK || call == MMC_ERR_PARTIAL ? MMC_OK
                                                     : mmcc_status(call);
}

/* Items as iov arrays of one buffer each. */
static int32_t mmcc_xfer(const char *call, const char **keys, uint32_t n,
                         const mmc_buffer *bufs, const mmc_put_options *in,
                         int *results)
{
    MMCC_HOLD(mmc, call);
    mmc_iov_t *iov = NULL;
    const mmc_iov_t **iovs = NULL;
    size_t *niovs = NULL;
    mmc_status_t *res = NULL, st;
    mmc_put_opts_t opts;
    int32_t code = MMC_MALLOC_FAILED;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || bufs == NULL || results == NULL || n == 0) {
        return MMC_INVALID_PARAM;
    }
    if (in != NULL && (code = mmcc_opts(in, &opts)) != MMC_OK) {
        return code;
    }
    iov = malloc(n * sizeof(*iov));
    iovs = malloc(n * sizeof(*iovs));
    niovs = malloc(n * sizeof(*niovs));
    res = malloc(n * sizeof(*res));
    if (iov == NULL || iovs == NULL || niovs == NULL || res == NULL) {
        code = MMC_MALLOC_FAILED;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        mmcc_iov(&bufs[i], &iov[i]);
        iovs[i] = &iov[i];
        niovs[i] = 1;
    }
    st = in != NULL
             ? mmc_put_layers_batch(mmc, keys, iovs, niovs, n, &opts, res)
             : mmc_get_layers_batch(mmc, keys, iovs, niovs, n, res);
    code = mmcc_results(res, n, results, st);
out:
    free(iov);
    free(iovs);
    free(niovs);
    free(res);
    return code;
}

MF_API int32_t mmcc_batch_put(const char **keys, uint32_t keys_count,
                              const mmc_buffer *bufs, mmc_put_options *options,
                              uint32_t flags, int *results)
{
    (void)flags;
    if (options == NULL) {
        return MMC_INVALID_PARAM;
    }
    return mmcc_xfer("mmcc_batch_put", keys, keys_count, bufs, options,
                     results);
}

MF_API int32_t mmcc_batch_get(const char **keys, uint32_t keys_count,
                              mmc_buffer *bufs, uint32_t flags, int *results)
{
    (void)flags;
    return mmcc_xfer("mmcc_batch_get", keys, keys_count, bufs, NULL, results);
}

MF_API int32_t mmcc_batch_query(const char **keys, size_t keys_count,
                                mmc_data_info *info, uint32_t flags)
{
    MMCC_HOLD(mmc, "mmcc_batch_query");
    mmc_obj_info_t *infos;
    mmc_status_t *res, st;

    (void)flags;
    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || info == NULL || keys_count == 0) {
        return MMC_INVALID_PARAM;
    }
    infos = calloc(keys_count, sizeof(*infos));
    res = calloc(keys_count, sizeof(*res));
    if (infos == NULL || res == NULL) {
        free(infos);
        free(res);
        return MMC_MALLOC_FAILED;
    }
    mmc_obj_info_init(infos, keys_count);
    st = mmc_query_batch(mmc, keys, keys_count, infos, res);
    for (size_t i = 0; i < keys_count; i++) {
        memset(&info[i], 0, sizeof(info[i]));
        if (res[i] != MMC_OK) {
            continue;
        }
        info[i].valid = true;
        info[i].size = infos[i].size;
        info[i].numBlobs = (uint8_t)infos[i].nreplicas;
        for (uint32_t r = 0; r < infos[i].nreplicas && r < MAX_BLOB_COPIES;
             r++) {
            info[i].ranks[r] = infos[i].ranks[r];
            info[i].types[r] =
                infos[i].media[r] == MMC_MEDIA_HBM ? MEDIA_HBM : MEDIA_DRAM;
        }
    }
    free(infos);
    free(res);
    return st == MMC_OK || st == MMC_ERR_PARTIAL ? MMC_OK : mmcc_status(st);
}

MF_API int32_t mmcc_query(const char *key, mmc_data_info *info, uint32_t flags)
{
    return mmcc_batch_query(&key, 1, info, flags);
}

typedef mmc_status_t (*mmcc_keys_fn)(mmc_t *mmc, const char *const *keys,
                                     size_t count, mmc_status_t *results);

/* A batch over keys only, results in upstream's codes. */
static int32_t mmcc_keys_call(const char *call, mmcc_keys_fn fn,
                              const char **keys, uint32_t keys_count,
                              int32_t *results)
{
    MMCC_HOLD(mmc, call);
    mmc_status_t *res, st;
    int32_t code;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || keys_count == 0 || results == NULL) {
        return MMC_INVALID_PARAM;
    }
    res = calloc(keys_count, sizeof(*res));
    if (res == NULL) {
        return MMC_MALLOC_FAILED;
    }
    st = fn(mmc, keys, keys_count, res);
    code = mmcc_results(res, keys_count, results, st);
    free(res);
    return code;
}

MF_API int32_t mmcc_batch_remove(const char **keys, uint32_t keys_count,
                                 int32_t *remove_results, uint32_t flags)
{
    (void)flags;
    return mmcc_keys_call("mmcc_batch_remove", mmc_remove_batch, keys,
                          keys_count, remove_results);
}

MF_API int32_t mmcc_remove(const char *key, uint32_t flags)
{
    int32_t result;
    int32_t code = mmcc_batch_remove(&key, 1, &result, flags);

    return code != MMC_OK ? code : result;
}

MF_API int32_t mmcc_batch_exist(const char **keys, uint32_t keys_count,
                                int32_t *exist_results, uint32_t flags)
{
    (void)flags;
    return mmcc_keys_call("mmcc_batch_exist", mmc_exist_batch, keys, keys_count,
                          exist_results);
}

MF_API int32_t mmcc_exist(const char *key, uint32_t flags)
{
    int32_t result;
    int32_t code = mmcc_batch_exist(&key, 1, &result, flags);

    return code != MMC_OK ? code : result;
}

/* ---------------------------------------------------------- streaming */

MF_API int32_t mmcc_batch_add_lease(const char **keys, uint32_t keys_count,
                                    uint64_t lease_ttl_ms, int32_t *results)
{
    MMCC_HOLD(mmc, "mmcc_batch_add_lease");
    mmc_obj_info_t *infos;
    mmc_status_t *res, st;
    int32_t code;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || keys_count == 0 || results == NULL ||
        lease_ttl_ms > UINT32_MAX) {
        return MMC_INVALID_PARAM;
    }
    infos = calloc(keys_count, sizeof(*infos));
    res = calloc(keys_count, sizeof(*res));
    if (infos == NULL || res == NULL) {
        free(infos);
        free(res);
        return MMC_MALLOC_FAILED;
    }
    mmc_obj_info_init(infos, keys_count);
    st = mmc_lease_batch(mmc, keys, keys_count,
                         lease_ttl_ms != 0 ? (uint32_t)lease_ttl_ms
                                           : mmc->hello.lease_ms,
                         infos, res);
    code = mmcc_results(res, keys_count, results, st);
    free(infos);
    free(res);
    return code;
}

MF_API int32_t mmcc_batch_remove_lease(const char **keys, uint32_t keys_count)
{
    MMCC_HOLD(mmc, "mmcc_batch_remove_lease");
    mmc_status_t *res, st;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || keys_count == 0) {
        return MMC_INVALID_PARAM;
    }
    res = calloc(keys_count, sizeof(*res));
    if (res == NULL) {
        return MMC_MALLOC_FAILED;
    }
    st = mmc_lease_release_batch(mmc, keys, keys_count, res);
    free(res);
    /* upstream: the local handling succeeded (a key without a lease, or
     * one that expired, is nothing to undo) */
    return st == MMC_OK || st == MMC_ERR_PARTIAL ? MMC_OK : mmcc_status(st);
}

MF_API int32_t mmcc_batch_malloc(const char **keys, uint32_t keys_count,
                                 const size_t *sizes, mmc_put_options options,
                                 uint64_t *gvas)
{
    MMCC_HOLD(mmc, "mmcc_batch_malloc");
    mmc_obj_info_t *infos;
    mmc_status_t *res, st;
    mmc_put_opts_t opts;
    int32_t code;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || sizes == NULL || gvas == NULL || keys_count == 0) {
        return MMC_INVALID_PARAM;
    }
    code = mmcc_opts(&options, &opts);
    if (code != MMC_OK) {
        return code;
    }
    infos = calloc(keys_count, sizeof(*infos));
    res = calloc(keys_count, sizeof(*res));
    if (infos == NULL || res == NULL) {
        free(infos);
        free(res);
        return MMC_MALLOC_FAILED;
    }
    mmc_obj_info_init(infos, keys_count);
    st = mmc_alloc_batch(mmc, keys, sizes, keys_count, &opts, infos, res);
    for (uint32_t i = 0; i < keys_count; i++) {
        gvas[i] = res[i] == MMC_OK ? infos[i].gvas[0] : 0;
    }
    free(infos);
    free(res);
    return st == MMC_OK || st == MMC_ERR_PARTIAL ? MMC_OK : mmcc_status(st);
}

MF_API int32_t mmcc_batch_copy(const uint64_t *gvas, void **buffers,
                               const size_t *sizes, uint32_t count,
                               int32_t direct)
{
    MMCC_HOLD(mmc, "mmcc_batch_copy");
    mf_copy_piece_t *pieces;
    mmc_status_t st;
    bool write;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (gvas == NULL || buffers == NULL || sizes == NULL || count == 0 ||
        direct < MMC_COPY_L2G || direct > MMC_COPY_H2G) {
        return MMC_INVALID_PARAM;
    }
    write = direct == MMC_COPY_L2G || direct == MMC_COPY_H2G;
    pieces = malloc(count * sizeof(*pieces));
    if (pieces == NULL) {
        return MMC_MALLOC_FAILED;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint64_t local = (uint64_t)(uintptr_t)buffers[i];

        pieces[i].src = write ? local : gvas[i];
        pieces[i].dst = write ? gvas[i] : local;
        pieces[i].size = sizes[i];
    }
    st = mmc_copy_batch(mmc, pieces, count, MF_COPY_AUTO, NULL);
    free(pieces);
    return mmcc_status(st);
}

MF_API int32_t mmcc_batch_write_finish(const char **keys, uint32_t keys_count,
                                       const int32_t *write_results,
                                       int32_t *results)
{
    MMCC_HOLD(mmc, "mmcc_batch_write_finish");
    mmc_status_t *res, *written = NULL, st;
    int32_t code;

    if (mmc == NULL) {
        return MMC_CLIENT_NOT_INIT;
    }
    if (keys == NULL || keys_count == 0) {
        return MMC_INVALID_PARAM;
    }
    res = calloc(keys_count, sizeof(*res));
    if (write_results != NULL) {
        written = calloc(keys_count, sizeof(*written));
    }
    if (res == NULL || (write_results != NULL && written == NULL)) {
        free(res);
        free(written);
        return MMC_MALLOC_FAILED;
    }
    for (uint32_t i = 0; written != NULL && i < keys_count; i++) {
        /* any upstream failure aborts */
        written[i] = write_results[i] == 0 ? MMC_OK : MMC_ERR_ABORTED;
    }
    st = mmc_write_finish_batch(mmc, keys, written, keys_count, res);
    code = mmcc_results(res, keys_count, results, st);
    free(res);
    free(written);
    return code;
}

MF_API int32_t mmcc_remove_all(void)
{
    MMCC_HOLD(mmc, "mmcc_remove_all");

    return mmc != NULL ? mmcc_status(mmc_remove_all(mmc, NULL))
                       : MMC_CLIENT_NOT_INIT;
}
