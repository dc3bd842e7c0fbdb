/*
 * BM, the big-memory API: a pool of host and device memory contributed by
 * every rank, addressed by global virtual addresses (GVA).
 *
 * Layout: every process of the pool reserves the same windows of virtual
 * addresses.  Rank r's host segment is at
 *     host_base + r * max_dram_per_rank
 * and holds local_dram_size bytes (<= max_dram_per_rank).  A GVA of a rank
 * on the same host is a pointer that can be loaded and stored through once
 * that rank has joined.  With max_hbm_per_rank > 0 the pool also has a
 * device window: rank r's device segment (local_hbm_size bytes of GPU
 * memory, through the CUDA driver loaded at run time) is at
 *     device_base + r * max_hbm_per_rank
 * and, on the same host, its GVA is a device pointer kernels and copies
 * can use.
 *
 * Life cycle of a process:
 *     mf_init();
 *     mf_bm_config_init(&cfg);            defaults, then MF_* environment
 *     mf_bm_init(url, world, MF_RANK_AUTO, &cfg);   rank from the store
 *     mf_bm_create(0, &params, &bm);      collective across the first world
 *     mf_bm_join(bm);                     segment visible to peers
 *     ... mf_bm_copy(bm, ...) ...
 *     mf_bm_leave(bm); mf_bm_destroy(bm); mf_bm_uninit(); mf_uninit();
 *
 * Threads: every call may be made from any thread; copies may run
 * concurrently.  Buffers passed to copies stay owned by the caller and must
 * stay valid until the copy completed.
 */
#ifndef MEMFABRIC_MF_BM_H
#define MEMFABRIC_MF_BM_H

#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>
#include <memfabric/mf_store.h>
#include <stdbool.h>
#include <stdio.h>

MF_BEGIN_DECLS

/* ---------------------------------------------------------------- config */

typedef struct mf_bm_config {
    size_t size;             /* sizeof(mf_bm_config_t) */
    uint64_t host_base;      /* GVA window base of host segments */
    uint32_t copy_threads;   /* copy threads besides the caller (0..64) */
    uint64_t copy_split_min; /* copies from this size are split across
                                copy threads */
    uint32_t timeout_ms;     /* bootstrap steps (create, join) */
    uint32_t op_timeout_ms;  /* store requests */
    uint32_t heartbeat_ms;   /* liveness heartbeat to the store */
    bool prefault;           /* touch segment pages at create */
    char transport[16];      /* "auto" (default) or a transport name */
    char host_id[128];       /* ranks with equal host ids share memory
                                (shm); "" detects it: boot id, host name,
                                network namespace */
    /* Settings of the transports (keys "<transport>.<key>", listed by
     * mf_bm_config_help), kept as text by mf_bm_config_set/load: set and
     * read them with mf_bm_config_set/mf_bm_config_get, never by hand. */
    char tl_settings[1024];
    uint64_t device_base;     /* GVA window base of device segments */
    uint64_t shm_base;        /* where SHM places host regions */
    uint64_t shm_device_base; /* where SHM places device regions */
    /* TLS to the config store (keys "tls.<key>", docs/configuration.md),
     * kept as text like tl_settings: set and read them with
     * mf_bm_config_set/mf_bm_config_get. */
    char tls_settings[2048];
} mf_bm_config_t;

/* Defaults, then MF_<KEY> environment variables (e.g. MF_HOST_BASE; a
 * transport's "<transport>.<key>" is MF_<TRANSPORT>_<KEY>, "tls.<key>"
 * MF_TLS_<KEY>). */
MF_API void mf_bm_config_init(mf_bm_config_t *cfg);
/* Applies a `key = value` file; MF_ERR_CONFIG names the bad line. */
MF_API mf_status_t mf_bm_config_load(mf_bm_config_t *cfg, const char *path);
/* Applies <env_prefix><KEY> variables (NULL: "MF_"), the key in upper case
 * with '.' as '_'; all or nothing. */
MF_API mf_status_t mf_bm_config_load_env(mf_bm_config_t *cfg,
                                         const char *env_prefix);
/* Sets one key from its text form, e.g. ("copy_threads", "2") or a
 * transport's ("<transport>.<key>", value).  Old names of keys still work
 * and log a deprecation warning once per process.  On error cfg is
 * unchanged. */
MF_API mf_status_t mf_bm_config_set(mf_bm_config_t *cfg, const char *key,
                                    const char *value);
/* The value of one key in its text form, into buf of len bytes;
 * MF_ERR_CONFIG for an unknown key, MF_ERR_TOO_LARGE if buf is short. */
MF_API mf_status_t mf_bm_config_get(const mf_bm_config_t *cfg, const char *key,
                                    char *buf, size_t len);
/* Checks a config filled or changed by hand: terminated strings, ranges,
 * a known transport and parsable transport settings (MF_ERR_CONFIG,
 * logged). */
MF_API mf_status_t mf_bm_config_check(const mf_bm_config_t *cfg);
/* Prints every key (the transports' too), its default, environment
 * variable and help, and the old names. */
MF_API void mf_bm_config_help(FILE *out);
/* The same for a component that forwards the keys: each printed as
 * key_prefix + key ("fabric.copy_threads"), its environment variable under
 * env_prefix ("MMC_FABRIC_"; NULL: "MF_"). */
MF_API void mf_bm_config_help_as(FILE *out, const char *key_prefix,
                                 const char *env_prefix);

/* The transports this build of the library has, in its order of
 * preference among equals: how many, and the name of the index-th (NULL
 * past the end), a value the "transport" key accepts.  The names are the
 * library's (static); neither call needs mf_init or starts anything. */
MF_API size_t mf_bm_transport_count(void);
MF_API const char *mf_bm_transport_name(size_t index);

/* ------------------------------------------------------------- bootstrap */

/*
 * Connects to the config store at store_url and takes a rank (rank or
 * MF_RANK_AUTO) in a world of world_size ranks.  One per process.
 */
MF_API mf_status_t mf_bm_init(const char *store_url, uint32_t world_size,
                              uint32_t rank, const mf_bm_config_t *cfg);
MF_API void mf_bm_uninit(void);
/* This process's rank; MF_ERR_STATE before mf_bm_init. */
MF_API mf_status_t mf_bm_rank_id(uint32_t *rank_p);
MF_API uint32_t mf_bm_world_size(void);

typedef struct mf_bm mf_bm_t;

typedef struct mf_bm_create_params {
    size_t size;                /* sizeof(mf_bm_create_params_t) */
    uint64_t local_dram_size;   /* this rank's host segment */
    uint64_t max_dram_per_rank; /* window stride; >= every local size */
    uint64_t local_hbm_size;    /* this rank's device segment; 0: none */
    uint64_t max_hbm_per_rank;  /* device window stride (a multiple of
                                   2 MiB); 0: no device window */
    /* added after 0.1.0; callers built with the older, shorter struct
     * read as 0: */
    uint32_t flags; /* MF_BM_CREATE_* */
} mf_bm_create_params_t;

/* The pool grows and shrinks while it serves (MemCache): no rank waits for
 * the others at create; each checks only its own window. */
#define MF_BM_CREATE_ELASTIC 0x1u

MF_API void mf_bm_create_params_init(mf_bm_create_params_t *params);

/*
 * Creates pool `id`: reserves the GVA window, allocates and pre-faults this
 * rank's segment.  The first world_size ranks to create a pool do it
 * collectively: if the window is taken in any of them, every one fails
 * with MF_ERR_ADDR_IN_USE and logs which rank, address and why.  A rank
 * that creates later (re-joining), or any rank of an MF_BM_CREATE_ELASTIC
 * pool, checks only itself.
 */
MF_API mf_status_t mf_bm_create(uint32_t id,
                                const mf_bm_create_params_t *params,
                                mf_bm_t **bm_p);
MF_API void mf_bm_destroy(mf_bm_t *bm);

/* Publishes this rank's segment and maps the joined same-host peers; later
 * joins and leaves of peers are followed automatically. */
MF_API mf_status_t mf_bm_join(mf_bm_t *bm);
/* Withdraws this rank's segment; peers stop reaching it. */
MF_API mf_status_t mf_bm_leave(mf_bm_t *bm);

typedef enum mf_mem_type {
    MF_MEM_HOST = 0,
    MF_MEM_DEVICE = 1,
} mf_mem_type_t;

/* Start of rank's segment (a GVA as a pointer); NULL if out of range. */
MF_API void *mf_bm_gva_of_rank(mf_bm_t *bm, uint32_t rank, mf_mem_type_t type);
/* Rank owning gva; MF_ERR_OUT_OF_RANGE outside the windows. */
MF_API mf_status_t mf_bm_rank_of_gva(mf_bm_t *bm, uint64_t gva,
                                     uint32_t *rank_p);
/* Whether rank's segment is joined and reachable from here. */
MF_API bool mf_bm_rank_joined(mf_bm_t *bm, uint32_t rank);
/*
 * Waits until rank's segment is addressable from here (this rank: until
 * mf_bm_join): MF_OK; MF_ERR_UNREACHABLE when the rank joined but no
 * transport of this process reaches it; MF_ERR_TIMEOUT after timeout_ms
 * (0: test only, < 0: no limit); MF_ERR_INVALID for a rank out of the
 * world.  Woken by the pool's own events, not by polling.
 */
MF_API mf_status_t mf_bm_rank_wait(mf_bm_t *bm, uint32_t rank, int timeout_ms);
/* This process's host identity in the pool (the host_id setting, else the
 * one detected): ranks with equal ids share memory. */
MF_API const char *mf_bm_host_id(mf_bm_t *bm);
/* Size of this rank's own segment. */
MF_API uint64_t mf_bm_local_size(mf_bm_t *bm, mf_mem_type_t type);

typedef void (*mf_bm_rank_cb)(mf_bm_t *bm, uint32_t rank, bool joined,
                              mf_status_t reason, void *arg);
/* cb runs on an internal thread when a peer joins (MF_OK) or leaves
 * (MF_OK for a graceful leave, MF_ERR_PEER_LOST when it died). */
MF_API void mf_bm_set_rank_cb(mf_bm_t *bm, mf_bm_rank_cb cb, void *arg);

/* ----------------------------------------------------------------- copies */

/* L = local memory (any pointer of this process), G = global (a GVA),
 * H = host, D = device.  AUTO infers it from the addresses. */
typedef enum mf_copy_dir {
    MF_COPY_LH2GH = 0,
    MF_COPY_GH2LH,
    MF_COPY_GH2GH,
    MF_COPY_LD2GH,
    MF_COPY_GH2LD,
    MF_COPY_LH2GD,
    MF_COPY_GD2LH,
    MF_COPY_LD2GD,
    MF_COPY_GD2LD,
    MF_COPY_GH2GD,
    MF_COPY_GD2GH,
    MF_COPY_GD2GD,
    MF_COPY_AUTO,
    MF_COPY_DIR_MAX
} mf_copy_dir_t;

MF_API const char *mf_copy_dir_name(mf_copy_dir_t dir);

/*
 * Copies size bytes.  A G address must lie, with all size bytes, inside one
 * joined segment (MF_ERR_OUT_OF_RANGE otherwise; a segment that went away
 * gives MF_ERR_PEER_LOST); a direction must name the memory kind of its
 * global addresses' window (MF_ERR_INVALID otherwise).  Device directions
 * need the CUDA driver and a device in this process: MF_ERR_UNSUPPORTED
 * (logged with the reason) without them.
 */
MF_API mf_status_t mf_bm_copy(mf_bm_t *bm, uint64_t src, uint64_t dst,
                              size_t size, mf_copy_dir_t dir);

typedef struct mf_copy_piece {
    uint64_t src;
    uint64_t dst;
    size_t size;
} mf_copy_piece_t;

/*
 * Copies many discrete pieces in one call, all in direction dir.  Returns
 * MF_OK if every piece was copied, else the first error; results (optional,
 * count entries) receives the status of each piece.
 */
MF_API mf_status_t mf_bm_copy_batch(mf_bm_t *bm, const mf_copy_piece_t *pieces,
                                    size_t count, mf_copy_dir_t dir,
                                    mf_status_t *results);

/* An asynchronous copy in flight, owned by the library until finished. */
typedef struct mf_bm_req mf_bm_req_t;

/*
 * Starts a copy and returns at once.  The pieces array is copied; the
 * memory they name must stay valid until completion.  Complete the request
 * with mf_bm_wait() or mf_bm_test().
 */
MF_API mf_status_t mf_bm_copy_async(mf_bm_t *bm, uint64_t src, uint64_t dst,
                                    size_t size, mf_copy_dir_t dir,
                                    mf_bm_req_t **req_p);
MF_API mf_status_t mf_bm_copy_batch_async(mf_bm_t *bm,
                                          const mf_copy_piece_t *pieces,
                                          size_t count, mf_copy_dir_t dir,
                                          mf_bm_req_t **req_p);
/*
 * Waits up to timeout_ms (< 0: without limit) for req.  Returns the copy's
 * final status and frees req, or MF_ERR_TIMEOUT and leaves req running.
 */
MF_API mf_status_t mf_bm_wait(mf_bm_req_t *req, int timeout_ms);
/* MF_INPROGRESS while running; else the final status, and req is freed. */
MF_API mf_status_t mf_bm_test(mf_bm_req_t *req);

/*
 * Registers user memory [addr, addr + size) with the transports, so copies
 * from and to it take their fastest path.  Copies work on unregistered
 * memory too.  MF_ERR_EXISTS if it overlaps a registered region.
 */
MF_API mf_status_t mf_bm_register(mf_bm_t *bm, void *addr, size_t size);
MF_API mf_status_t mf_bm_unregister(mf_bm_t *bm, void *addr);

MF_END_DECLS

#endif /* MEMFABRIC_MF_BM_H */
