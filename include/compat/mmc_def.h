/*
 * Types of upstream MemCache's C client API (mmc_client.h), for the shim
 * over <memcache/mmc.h>.  Field names and values are upstream's, so code
 * that fills them compiles unchanged; docs/compat.md says which fields
 * this library reads.
 */
#ifndef MF_COMPAT_MMC_DEF_H
#define MF_COMPAT_MMC_DEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DISCOVERY_URL_SIZE 1024
#define TLS_PATH_SIZE      256
#define MAX_BLOB_COPIES    8

/* Upstream's result codes (MmcErrorCode).  MMC_OK is <memcache/mmc.h>'s
 * too (0 in both): whichever header comes first defines it. */
#ifndef MEMCACHE_MMC_STATUS_H
#define MMC_OK 0
#endif
#define MMC_ERROR             (-1)
#define MMC_INVALID_PARAM     (-3000)
#define MMC_MALLOC_FAILED     (-3001)
#define MMC_NEW_OBJECT_FAILED (-3002)
#define MMC_NOT_STARTED       (-3003)
#define MMC_TIMEOUT           (-3004)
#define MMC_REPEAT_CALL       (-3005)
#define MMC_DUPLICATED_OBJECT (-3006)
#define MMC_OBJECT_NOT_EXISTS (-3007)
#define MMC_NOT_INITIALIZED   (-3008)
#define MMC_EXCEED_CAPACITY   (-3013)
#define MMC_NOT_ENOUGH_MEMORY (-3016)
#define MMC_NOT_CONNET_META   (-3017)
#define MMC_NOT_CONNET_LOCAL  (-3018)
#define MMC_CLIENT_NOT_INIT   (-3019)
#define MMC_UNMATCHED_STATE   (-3101)
#define MMC_UNMATCHED_KEY     (-3102)
#define MMC_UNMATCHED_RET     (-3103)
#define MMC_LEASE_NOT_EXPIRED (-3104)
#define MMC_LEASE_EXPIRED     (-3106)

/* Where memory is: upstream's media numbers. */
enum MediaType { MEDIA_HBM = 0, MEDIA_DRAM = 1, MEDIA_NONE = 2 };

/* Directions of mmcc_batch_copy. */
enum { MMC_COPY_L2G = 0, MMC_COPY_G2L = 1, MMC_COPY_G2H = 2, MMC_COPY_H2G = 3 };

typedef void (*ExternalLog)(int level, const char *msg);

typedef struct {
    bool tlsEnable; /* the paths become the tls.* settings (packagePath
                       is not used: the system's OpenSSL is) */
    char caPath[TLS_PATH_SIZE];
    char crlPath[TLS_PATH_SIZE];
    char certPath[TLS_PATH_SIZE];
    char keyPath[TLS_PATH_SIZE];
    char keyPassPath[TLS_PATH_SIZE];
    char packagePath[TLS_PATH_SIZE];
    char decrypterLibPath[TLS_PATH_SIZE];
} mmc_tls_config;

typedef struct {
    char discoveryURL[DISCOVERY_URL_SIZE]; /* the meta service's URL */
    uint32_t rankId;                       /* ignored: the pool assigns */
    uint32_t rpcRetryTimeOut;              /* ignored */
    uint32_t timeOut;                      /* s: one request (0: default) */
    uint32_t readThreadPoolNum;            /* ignored */
    uint32_t writeThreadPoolNum;           /* ignored */
    bool aggregateIO;                      /* ignored: batches always are */
    int32_t aggregateNum;                  /* ignored */
    int32_t logLevel;    /* 0 debug, 1 info, 2 warn, 3 error */
    ExternalLog logFunc; /* NULL: standard error */
    mmc_tls_config tlsConfig;
} mmc_client_config_t;

/* offset bytes into addr, len bytes long; type: MEDIA_HBM (device memory)
 * or MEDIA_DRAM (host memory). */
typedef struct {
    uint64_t addr;
    uint32_t type;
    uint64_t offset;
    uint64_t len;
} mmc_buffer;

enum affinity_policy { NATIVE_AFFINITY = 0 };

typedef struct {
    uint16_t mediaType; /* MEDIA_DRAM or MEDIA_HBM: where replicas go */
    enum affinity_policy policy;
    uint16_t replicaNum; /* 1..8; 0: the configured default */
    int32_t preferredLocalServiceIDs[MAX_BLOB_COPIES]; /* ranks first; < 0
                                                           ends the list */
} mmc_put_options;

typedef struct {
    uint64_t size;
    uint16_t prot;
    uint8_t numBlobs; /* replicas */
    bool valid;       /* found */
    uint32_t ranks[MAX_BLOB_COPIES];
    uint16_t types[MAX_BLOB_COPIES]; /* MediaType of each */
} mmc_data_info;

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_MMC_DEF_H */
