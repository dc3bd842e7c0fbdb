/*
 * SHM, the symmetric-memory API: a region of the same size on every rank
 * of the world, addressed by one GVA range, with the control collectives
 * a program built on it needs (barrier, allgather, subgroups by key), a
 * topology query, atomic counters, a context block every rank reads, and
 * a global exit.
 *
 * Layout: region `id` is a window of world x stride bytes; rank r's part
 * starts at
 *     mf_shm_gva(shm) + r * mf_shm_stride(shm)
 * in every process.  On one host a peer's part is mapped at its GVA, so
 * a GVA is a pointer (host memory) or a device pointer a kernel can load
 * and store through (device memory, the NVSHMEM-style use); a part on
 * another host is reached by mf_shm_put/mf_shm_get through a transport.
 * Where the window goes: params.gva_base if given (the same in every
 * rank), else the config store places it in the range the shm_base (host)
 * or shm_device_base (device) setting starts, so regions of several ids
 * never overlap, and an id created again with the same size gets the same
 * window.
 *
 *     mf_init();
 *     mf_bm_config_init(&cfg);
 *     mf_shm_init("tcp://store:5801", world, MF_RANK_AUTO, &cfg);
 *     mf_shm_create_params_init(&p); p.symmetric_size = 64 << 20;
 *     mf_shm_create(7, &p, &shm);          collective: every rank's part
 *                                          is addressable when it returns
 *     peer = (char *)mf_shm_ptr(shm, r);   a same-host peer's bytes
 *     mf_shm_barrier(shm);
 *     mf_shm_destroy(shm); mf_shm_uninit(); mf_uninit();
 *
 * mf_shm_init is the process's bootstrap (rank and world), the same one
 * mf_bm_init makes: a process calls one of them, once, and may then have
 * BM pools and SHM regions side by side.
 *
 * Threads: every call may be made from any thread.  The collectives of one
 * region (barrier, allgather, subgroups) are matched by call order per
 * process: call each from one thread at a time.
 */
#ifndef MEMFABRIC_MF_SHM_H
#define MEMFABRIC_MF_SHM_H

#include <memfabric/mf_bm.h>
#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>

MF_BEGIN_DECLS

typedef struct mf_shm mf_shm_t;

/* The process's bootstrap (see mf_bm_init, which it is). */
MF_API mf_status_t mf_shm_init(const char *store_url, uint32_t world_size,
                               uint32_t rank, const mf_bm_config_t *cfg);
/* Regions still alive lose their pools here (a warning each); their
 * calls answer MF_ERR_STATE until mf_shm_destroy frees them.  The same
 * when mf_bm_uninit ends the bootstrap. */
MF_API void mf_shm_uninit(void);

typedef struct mf_shm_create_params {
    size_t size;             /* sizeof(mf_shm_create_params_t) */
    uint64_t symmetric_size; /* bytes of every rank's part (> 0) */
    mf_mem_type_t type;      /* MF_MEM_HOST or MF_MEM_DEVICE */
    uint64_t gva_base;       /* 0: placed by the config store; else the
                                window's base, the same in every rank */
    uint32_t flags;          /* none yet: 0 */
} mf_shm_create_params_t;

MF_API void mf_shm_create_params_init(mf_shm_create_params_t *params);

/*
 * Creates region `id` (0 .. 2^31 - 1) on every rank of the world:
 * collective, returns when every rank's part is addressable from here.
 * The ranks must agree on the size and type (MF_ERR_INVALID, naming both,
 * otherwise).  A rank whose window is taken fails every rank with
 * MF_ERR_ADDR_IN_USE (see mf_bm_create).  A device region needs the CUDA
 * driver and a device (MF_ERR_UNSUPPORTED without them); its parts are
 * rounded up to the device's allocation granularity.
 */
MF_API mf_status_t mf_shm_create(uint32_t id,
                                 const mf_shm_create_params_t *params,
                                 mf_shm_t **shm_p);
/* Withdraws this rank's part (peers see it go) and frees the region here.
 * Not collective: a program that still reads peers' parts ends with a
 * barrier first.  The exit callback has returned when it returns (unless
 * it is called from that callback). */
MF_API void mf_shm_destroy(mf_shm_t *shm);

MF_API uint32_t mf_shm_rank(const mf_shm_t *shm);
MF_API uint32_t mf_shm_world(const mf_shm_t *shm);
/* The base of the region's window, and the distance between two ranks'
 * parts (symmetric_size rounded up to pages or the device granularity). */
MF_API uint64_t mf_shm_gva(const mf_shm_t *shm);
MF_API uint64_t mf_shm_stride(const mf_shm_t *shm);
MF_API uint64_t mf_shm_size(const mf_shm_t *shm); /* symmetric_size */
/* The GVA of rank's part, as a pointer; NULL for a rank out of the world. */
MF_API void *mf_shm_ptr(const mf_shm_t *shm, uint32_t rank);

/* Copies size bytes from memory of this process (host or device) into the
 * region at gva (any rank's part), or from the region into dst: the way to
 * reach a part on another host.  MF_ERR_OUT_OF_RANGE past a part's end,
 * MF_ERR_PEER_LOST once its rank destroyed the region or died. */
MF_API mf_status_t mf_shm_put(mf_shm_t *shm, uint64_t gva, const void *src,
                              size_t size);
MF_API mf_status_t mf_shm_get(mf_shm_t *shm, void *dst, uint64_t gva,
                              size_t size);

/* ------------------------------------------------------- collectives */

/* Waits for every rank of the world; MF_ERR_TIMEOUT after the config's
 * timeout_ms. */
MF_API mf_status_t mf_shm_barrier(mf_shm_t *shm);
/* Every rank gives len bytes; out (world x len bytes) receives all of them
 * by rank. */
MF_API mf_status_t mf_shm_allgather(mf_shm_t *shm, const void *in, size_t len,
                                    void *out);
/* A barrier of the count ranks that call it with the same key (1..200
 * printable bytes, no '/'): a subgroup chosen by the program. */
MF_API mf_status_t mf_shm_group_barrier(mf_shm_t *shm, const char *key,
                                        uint32_t count);
/* An allgather of the count ranks that call it with key, each giving its
 * index in the subgroup (0..count-1); out receives count x len bytes. */
MF_API mf_status_t mf_shm_group_allgather(mf_shm_t *shm, const char *key,
                                          uint32_t index, uint32_t count,
                                          const void *in, size_t len,
                                          void *out);

/* ---------------------------------------------------------- topology */

#define MF_SHM_REACH_SELF 0x1u /* the rank is this process */
#define MF_SHM_REACH_MAPPED                                                    \
    0x2u /* its part is mapped here: the GVA is                                \
            a pointer (device memory: a device                                 \
            pointer) */
#define MF_SHM_REACH_TRANSPORT                                                 \
    0x4u /* mf_shm_put/get reach it through a                                  \
            transport (another host) */

typedef struct mf_shm_reach {
    uint32_t flags;     /* MF_SHM_REACH_*; 0: not reachable */
    char transport[16]; /* the transport's name ("" for this process) */
} mf_shm_reach_t;

/* How this process reaches rank's part.  MF_ERR_UNREACHABLE (flags 0) when
 * no transport of this process reaches it, MF_ERR_PEER_LOST when it left. */
MF_API mf_status_t mf_shm_can_reach(mf_shm_t *shm, uint32_t rank,
                                    mf_shm_reach_t *reach);

/* ---------------------------------------------------- atomic counters */

/* Counters named by the program (1..200 printable bytes, no '/'), one
 * space per region, served by the config store: a missing counter is 0.
 * add returns the new value. */
MF_API mf_status_t mf_shm_atomic_add(mf_shm_t *shm, const char *name,
                                     int64_t delta, int64_t *result_p);
/* Sets the counter to desired if it holds expected: MF_OK, or
 * MF_ERR_MISMATCH and the value it holds in *current_p (optional). */
MF_API mf_status_t mf_shm_atomic_cas(mf_shm_t *shm, const char *name,
                                     int64_t expected, int64_t desired,
                                     int64_t *current_p);
/* Drops the counter (it reads 0 again); MF_ERR_NOT_FOUND if absent. */
MF_API mf_status_t mf_shm_atomic_reset(mf_shm_t *shm, const char *name);

/* ---------------------------------------------------- context block */

#define MF_SHM_CONTEXT_MAX (64u << 10)

/* Publishes the region's context block (up to MF_SHM_CONTEXT_MAX bytes):
 * any rank may set it, the last one wins; it lives while the rank that set
 * it keeps its store session. */
MF_API mf_status_t mf_shm_set_context(mf_shm_t *shm, const void *data,
                                      size_t len);
/* Reads it into buf (cap bytes): waits up to timeout_ms for one to be set
 * (0: not at all; MF_ERR_NOT_FOUND then), MF_ERR_TOO_LARGE (and *len_p)
 * when cap is short. */
MF_API mf_status_t mf_shm_get_context(mf_shm_t *shm, void *buf, size_t cap,
                                      size_t *len_p, uint32_t timeout_ms);

/* ------------------------------------------------------ global exit */

typedef void (*mf_shm_exit_cb)(mf_shm_t *shm, int status, uint32_t from_rank,
                               void *arg);

/* cb runs, on a thread of the region's, when a rank calls
 * mf_shm_global_exit (that rank too).  Without one, a global exit logs
 * and ends the process with exit(status). */
MF_API mf_status_t mf_shm_register_exit(mf_shm_t *shm, mf_shm_exit_cb cb,
                                        void *arg);
/* Asks every rank of the region to exit with status. */
MF_API mf_status_t mf_shm_global_exit(mf_shm_t *shm, int status);

MF_END_DECLS

#endif /* MEMFABRIC_MF_SHM_H */
