/*
 * Types of upstream MemFabric's BM API (smem_bm.h), for the shim over
 * <memfabric/mf_bm.h>.  Field names and values are upstream's, so code
 * that fills them compiles unchanged; docs/compat.md says which fields
 * this library reads.
 */
#ifndef MF_COMPAT_SMEM_BM_DEF_H
#define MF_COMPAT_SMEM_BM_DEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *smem_bm_t;

#define SMEM_BM_TIMEOUT_MAX UINT32_MAX
#define SMEM_TLS_PATH_SIZE  256

/* Flags of smem_bm_copy and smem_bm_copy_batch. */
#define ASYNC_COPY_FLAG  (1U << 0) /* start it; smem_bm_wait completes it */
#define COPY_EXTEND_FLAG (1U << 1) /* a device engine hint: ignored */

typedef enum {
    SMEM_MEM_TYPE_LOCAL_DEVICE = 0, /* this rank's device segment */
    SMEM_MEM_TYPE_LOCAL_HOST,       /* this rank's host segment */
    SMEM_MEM_TYPE_DEVICE,           /* the device window */
    SMEM_MEM_TYPE_HOST,             /* the host window */
    SMEM_MEM_TYPE_BUTT
} smem_bm_mem_type;
typedef smem_bm_mem_type smem_bm_mem_type_t;

/* How upstream moves data; here every transport of the build competes
 * per peer whatever is asked (docs/compat.md). */
typedef enum {
    SMEMB_DATA_OP_SDMA = 1U << 0,
    SMEMB_DATA_OP_HOST_RDMA = 1U << 1,
    SMEMB_DATA_OP_HOST_TCP = 1U << 2,
    SMEMB_DATA_OP_DEVICE_RDMA = 1U << 3,
    SMEMB_DATA_OP_HOST_URMA = 1U << 4,
    SMEMB_DATA_OP_HOST_SHM = 1U << 5,
    SMEMB_DATA_OP_MTE = 1U << 6,
    SMEMB_DATA_OP_BUTT
} smem_bm_data_op_type;
typedef smem_bm_data_op_type smem_bm_data_op_type_t;

/* L = local device memory, H = local host memory, G = a global address
 * (GH: in the host window). */
typedef enum {
    SMEMB_COPY_L2G = 0,
    SMEMB_COPY_G2L = 1,
    SMEMB_COPY_G2H = 2,
    SMEMB_COPY_H2G = 3,
    SMEMB_COPY_L2GH = 4,
    SMEMB_COPY_GH2L = 5,
    SMEMB_COPY_GH2H = 6,
    SMEMB_COPY_H2GH = 7,
    SMEMB_COPY_G2G = 8,
    SMEMB_COPY_AUTO = 9,
    SMEMB_COPY_BUTT
} smem_bm_copy_type;
typedef smem_bm_copy_type smem_bm_copy_type_t;

typedef struct {
    bool tlsEnable;
    char caPath[SMEM_TLS_PATH_SIZE];
    char crlPath[SMEM_TLS_PATH_SIZE];
    char certPath[SMEM_TLS_PATH_SIZE];
    char keyPath[SMEM_TLS_PATH_SIZE];
    char keyPassPath[SMEM_TLS_PATH_SIZE];
    char packagePath[SMEM_TLS_PATH_SIZE];
    char decrypterLibPath[SMEM_TLS_PATH_SIZE];
} smem_tls_config;
typedef smem_tls_config smem_tls_config_t;

typedef struct {
    uint32_t initTimeout;             /* s: smem_bm_init (default 120) */
    uint32_t createTimeout;           /* s: smem_bm_create (default 120) */
    uint32_t controlOperationTimeout; /* s: store requests (default 120) */
    bool startConfigStoreServer;      /* rank 0 serves the config store at
                                         storeURL (default true) */
    bool startConfigStoreOnly;        /* serve it and join nothing */
    bool dynamicWorldSize;            /* ranks join and leave at will:
                                         pools are created elastic */
    bool unifiedAddressSpace;         /* ignored */
    bool autoRanking;                 /* take the lowest free rank */
    uint32_t rankId;                  /* else this rank */
    uint32_t flags;                   /* reserved, 0 */
    char hcomUrl[64];                 /* ignored */
    smem_tls_config hcomTlsConfig;    /* tlsEnable must be false: data
                                         lanes are authenticated, not
                                         encrypted */
    smem_tls_config storeTlsConfig;   /* the config store's TLS (tls.*) */
} smem_bm_config_t;

typedef struct {
    uint64_t maxDramSize;   /* per rank: the host window's stride */
    uint64_t maxHbmSize;    /* per rank: the device window's stride */
    uint64_t localDRAMSize; /* this rank's host segment */
    uint64_t localHBMSize;  /* this rank's device segment */
    smem_bm_data_op_type dataOpType;
    bool enable56BitsGva; /* ignored: windows are 47-bit addresses */
    uint32_t flags;
    char tag[32];        /* ignored */
    char tagOpInfo[256]; /* ignored */
    int dramShmFd;       /* ignored */
} smem_bm_create_option_t;

typedef struct {
    const void *src;
    void *dest;
    size_t dataSize;
    void *stream; /* must be NULL: copies do not go on device streams */
} smem_copy_params;
typedef smem_copy_params smem_copy_params_t;

typedef struct {
    void **sources;
    void **destinations;
    const uint64_t *dataSizes;
    uint32_t batchSize;
    void *stream; /* must be NULL */
} smem_batch_copy_params;
typedef smem_batch_copy_params smem_batch_copy_params_t;

typedef struct {
    int32_t *results; /* batchSize entries: SM_OK or the piece's code */
    uint32_t batchSize;
} smem_batch_copy_result;
typedef smem_batch_copy_result smem_batch_copy_result_t;

#ifdef __cplusplus
}
#endif

#endif /* MF_COMPAT_SMEM_BM_DEF_H */
