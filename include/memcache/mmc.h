/*
 * MemCache client API: the local service linked into an application.
 *
 * A process creates one mmc_t.  It connects to the meta service
 * (`mmc-meta`), joins the pool's MemFabric BM pool (whose config store the
 * meta service hosts), contributes dram_size bytes of its DRAM as a segment
 * the meta service places objects in (0: a pure client that only reads and
 * writes), and hbm_size bytes of its device memory (HBM) as another, and
 * then puts and gets objects.
 *
 * Media.  Every replica of an object lives in one media, DRAM or HBM,
 * which its put chooses (mmc_put_opts_t.media; DRAM by default): the
 * meta service places the replicas on segments of that media only, and a
 * put that finds no room there evicts objects of that media only (LRU)
 * or fails with MMC_ERR_NO_SPACE; it never falls back to the other
 * media.  Gets read from either into host or device buffers.  A process
 * may also contribute an SSD area (ssd_size): objects evicted from its
 * DRAM are written there instead of being deleted, and a get of one waits
 * while it is read back into DRAM (MMC_MEDIA_SSD in mmc_query while it is
 * there).
 *
 * Data moves one-sided.  A put asks the meta service for space on 1..8
 * replicas (distinct ranks, distinct hosts first, the caller's own rank
 * first when it has room), copies the caller's buffers straight into each
 * replica's global address and commits; a put that fails or is abandoned
 * leaves nothing readable and no space behind.  A get looks the key up,
 * which takes a read lease (the object cannot be removed nor its space
 * reused until the lease is released), copies from the best replica (same
 * host first) straight into the caller's buffers and releases the lease.
 * The meta service never touches object bytes.
 *
 * Keys are NUL-terminated strings of 1..MMC_KEY_MAX bytes.  An object is
 * write-once: a second put of a committed key returns MMC_ERR_EXISTS unless
 * it passes MMC_PUT_REPLACE; of two concurrent puts of one key exactly one
 * wins (the other gets MMC_ERR_EXISTS, or MMC_ERR_BUSY with REPLACE).
 *
 * Buffers are owned by the caller and must stay valid for the call.  Every
 * call is thread safe; calls from many threads run concurrently.
 *
 * Batch calls take up to MMC_BATCH_MAX keys and set every results[i].  They
 * return MMC_OK when every item succeeded, MMC_ERR_PARTIAL when some items
 * failed (results[i] says which), or the error of the call itself (bad
 * arguments, meta service unreachable; then every results[i] holds that
 * error too).  For mmc_exist_batch and mmc_query_batch a missing key is an
 * answer, not a failure: its item is MMC_ERR_NOT_FOUND and the call still
 * returns MMC_OK when every item was either found or not found.
 */
#ifndef MEMCACHE_MMC_H
#define MEMCACHE_MMC_H

#include <memcache/mmc_status.h>
#include <memfabric/mf_bm.h>
#include <memfabric/mf_common.h>
#include <memfabric/mf_log.h>
#include <memfabric/mf_trace.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

MF_BEGIN_DECLS

#define MMC_KEY_MAX      255   /* bytes of a key, without the NUL */
#define MMC_BATCH_MAX    16384 /* keys of one batch call */
#define MMC_MAX_REPLICAS 8

/* ---- configuration (mmc-local.conf) ---- */

typedef struct mmc_config {
    size_t size;                 /* sizeof(mmc_config_t) */
    char meta_url[256];          /* "tcp://host:port" of mmc-meta */
    uint64_t dram_size;          /* DRAM this process contributes; 0 = client */
    uint32_t replicas;           /* replicas of a put without options (1..8) */
    uint32_t timeout_ms;         /* one request to the meta service */
    uint32_t connect_timeout_ms; /* connecting and joining the pool */
    char name[64];               /* shown by the meta service; "" = host:pid */
    /* MemFabric settings of this process, set with "fabric.<key>"
     * (e.g. fabric.transport = tcp); the meta service overrides the pool
     * layout (host_base, device_base) so that every member agrees on
     * it. */
    mf_bm_config_t fabric;
    /* Device memory (HBM) this process contributes; 0 = none.  Needs a
     * device window in the pool (the meta service's max_hbm_segment_size,
     * which bounds it) and the CUDA memory kind. */
    uint64_t hbm_size;
    /* The built-in tracer: "" (off), "log" (its table to the log at
     * exit) or the path of a file for that table; MF_TRACE wins. */
    char trace[256];
    /* An SSD area this process contributes (ssd_size bytes, a multiple
     * of 4 KiB, of the file or block device ssd_path; 0 = none; needs
     * dram_size): objects evicted from its DRAM go there instead of
     * being deleted, and come back on a read.  Its log (ssd_log_path, by
     * default ssd_path.log; needed for a block device) lets a restarted
     * process report what the area still holds.  ssd_threads do its
     * I/O. */
    char ssd_path[256];
    uint64_t ssd_size;
    char ssd_log_path[256];
    uint32_t ssd_threads;
} mmc_config_t;

/* Fills the defaults (see docs/configuration.md or mmc_config_help()). */
MF_API void mmc_config_init(mmc_config_t *cfg);
/* Sets one key from its text form; "fabric.<key>" goes to the MemFabric
 * settings, and so does "tls.<key>" (TLS to the meta service and the
 * pool's config store, kept in fabric.tls_settings).  MF_ERR_CONFIG (logged,
 * naming key and value) when the key is unknown or the value does not parse or
 * is out of bounds. */
MF_API mmc_status_t mmc_config_set(mmc_config_t *cfg, const char *key,
                                   const char *value);
/* The current value of one key in its text form (sizes and times in bytes
 * and milliseconds), "fabric.<key>" from the MemFabric settings.
 * MF_ERR_CONFIG (logged) for an unknown key, MF_ERR_TOO_LARGE when the
 * value and its terminator do not fit in len bytes. */
MF_API mmc_status_t mmc_config_get(const mmc_config_t *cfg, const char *key,
                                   char *buf, size_t len);
/* Loads a "key = value" file (mmc-local.conf; '#' comments); errors name
 * file and line.  Then applies MMC_<KEY> environment variables, which win
 * over the file (MMC_FABRIC_TRANSPORT for fabric.transport). */
MF_API mmc_status_t mmc_config_load(mmc_config_t *cfg, const char *path);
/* Applies only the MMC_<KEY> environment variables. */
MF_API mmc_status_t mmc_config_load_env(mmc_config_t *cfg);
/* Prints every key with its default and meaning. */
MF_API void mmc_config_help(FILE *out);

/* ---- logging ---- */

/*
 * libmemcache carries its own copy of MemFabric's internals, so the
 * mf_log_* calls of libmemfabric do not reach its messages: these do.
 * Levels and sink are those of <memfabric/mf_log.h>; the default level is
 * MF_LOG_WARN, or MF_LOG_LEVEL from the environment at mmc_create().  The
 * sink may be called from any thread of the library, concurrently, and
 * must not call back into it; NULL restores the stderr sink.
 */
MF_API void mmc_log_set_level(mf_log_level_t level);
MF_API mf_log_level_t mmc_log_get_level(void);
MF_API void mmc_log_set_sink(mf_log_sink_cb sink, void *arg);

/* ---- the local service ---- */

typedef struct mmc mmc_t;

/*
 * Connects to the meta service, joins the pool and registers this
 * process's segment.  One mmc_t per process (a second one: MF_ERR_STATE).
 * The caller owns *mmc_p and frees it with mmc_destroy().
 */
MF_API mmc_status_t mmc_create(const mmc_config_t *cfg, mmc_t **mmc_p);

/*
 * Leaves the pool gracefully: the meta service drops this process's
 * segment (objects whose only replicas were here are gone, others keep
 * their other replicas), then disconnects.  Calls still running in other
 * threads must have returned.  NULL is accepted.
 */
MF_API void mmc_destroy(mmc_t *mmc);

/* This process's rank in the pool. */
MF_API uint32_t mmc_rank(const mmc_t *mmc);

/* ---- objects ---- */

/* Where a buffer lives.  AUTO (0, what a zero-filled struct says) lets
 * the library classify the pointer; HOST and DEVICE say it outright.
 * Device memory needs the CUDA memory kind: a build or machine without it
 * answers MF_ERR_UNSUPPORTED. */
typedef enum mmc_mem {
    MMC_MEM_AUTO = 0,
    MMC_MEM_HOST = 1,
    MMC_MEM_DEVICE = 2,
} mmc_mem_t;

/* One buffer of an object made of several ("layers").  Arrays of them are
 * passed, so the struct keeps this layout; a zero-filled mem is AUTO. */
typedef struct mmc_iov {
    void *base;
    size_t len;
    uint32_t mem; /* mmc_mem_t */
} mmc_iov_t;

#define MMC_PUT_REPLACE 0x1u /* overwrite a committed object */

/* Where replicas live: DRAM segments (host memory) or HBM segments
 * (device memory) that local services contribute, or their SSD areas,
 * where only eviction puts objects (a put naming SSD is refused). */
typedef enum mmc_media {
    MMC_MEDIA_DRAM = 0,
    MMC_MEDIA_HBM = 1,
    MMC_MEDIA_SSD = 2,
} mmc_media_t;

/* Options of a put.  Fields are only ever appended: set size (as
 * mmc_put_opts_init does) so the library reads no field the caller's
 * version lacks. */
typedef struct mmc_put_opts {
    size_t size;       /* sizeof(mmc_put_opts_t) */
    uint32_t replicas; /* 1..8; 0 = the configured default */
    uint32_t flags;    /* MMC_PUT_* */
    uint32_t npreferred;
    /* ranks to place replicas on first, in order (distinct hosts still
     * come before a second replica on a host already used) */
    uint32_t preferred[MMC_MAX_REPLICAS];
    uint32_t mem; /* mmc_mem_t of the buffers of mmc_put/mmc_put_batch
                     (the layers forms say it per buffer) */
    /* mmc_media_t of every replica: DRAM (0) or HBM.  Only segments of
     * that media are used; no room there (after eviction of that media's
     * objects) is MMC_ERR_NO_SPACE, any other value MF_ERR_INVALID. */
    uint32_t media;
} mmc_put_opts_t;

/* Defaults: every field 0 (configured replicas, no flags, AUTO buffers,
 * DRAM replicas), size set. */
MF_API void mmc_put_opts_init(mmc_put_opts_t *opts);

/* What mmc_query tells of an object.  Fields are only ever appended: the
 * caller sets info_size (as mmc_obj_info_init does) and the library writes
 * no byte past it.  An array for mmc_query_batch is infos[0].info_size
 * bytes per element. */
typedef struct mmc_obj_info {
    size_t info_size;   /* sizeof(mmc_obj_info_t) */
    uint64_t size;      /* bytes of the object */
    uint32_t nreplicas; /* committed replicas */
    uint32_t ranks[MMC_MAX_REPLICAS];
    uint8_t media[MMC_MAX_REPLICAS]; /* mmc_media_t of each replica */
    uint64_t gvas[MMC_MAX_REPLICAS]; /* global address of each replica */
} mmc_obj_info_t;

/* Zeroes info and sets info_size; for an array, every element. */
MF_API void mmc_obj_info_init(mmc_obj_info_t *infos, size_t count);

/* opts may be NULL (defaults).  size 0: MF_ERR_INVALID. */
MF_API mmc_status_t mmc_put(mmc_t *mmc, const char *key, const void *buf,
                            size_t size, const mmc_put_opts_t *opts);
/* The object is the concatenation of the niov buffers (1..65536). */
MF_API mmc_status_t mmc_put_layers(mmc_t *mmc, const char *key,
                                   const mmc_iov_t *iov, size_t niov,
                                   const mmc_put_opts_t *opts);

/* size must equal the object's size, else MMC_ERR_SIZE_MISMATCH (the log
 * names both sizes) and nothing is copied. */
MF_API mmc_status_t mmc_get(mmc_t *mmc, const char *key, void *buf,
                            size_t size);
/* The buffers' lengths must add up to the object's size. */
MF_API mmc_status_t mmc_get_layers(mmc_t *mmc, const char *key,
                                   const mmc_iov_t *iov, size_t niov);

/* MMC_OK when a committed object exists, else MMC_ERR_NOT_FOUND. */
MF_API mmc_status_t mmc_exist(mmc_t *mmc, const char *key);
MF_API mmc_status_t mmc_query(mmc_t *mmc, const char *key,
                              mmc_obj_info_t *info_p);
/* Removes the object.  A read in progress completes with the old bytes;
 * the space is reused once its lease is released. */
MF_API mmc_status_t mmc_remove(mmc_t *mmc, const char *key);

/* ---- batches (count <= MMC_BATCH_MAX, results[count]) ---- */

MF_API mmc_status_t mmc_put_batch(mmc_t *mmc, const char *const *keys,
                                  const void *const *bufs, const size_t *sizes,
                                  size_t count, const mmc_put_opts_t *opts,
                                  mmc_status_t *results);
MF_API mmc_status_t mmc_put_layers_batch(mmc_t *mmc, const char *const *keys,
                                         const mmc_iov_t *const *iovs,
                                         const size_t *niovs, size_t count,
                                         const mmc_put_opts_t *opts,
                                         mmc_status_t *results);
MF_API mmc_status_t mmc_get_batch(mmc_t *mmc, const char *const *keys,
                                  void *const *bufs, const size_t *sizes,
                                  size_t count, mmc_status_t *results);
MF_API mmc_status_t mmc_get_layers_batch(mmc_t *mmc, const char *const *keys,
                                         const mmc_iov_t *const *iovs,
                                         const size_t *niovs, size_t count,
                                         mmc_status_t *results);
/* results[i]: MMC_OK (exists), MMC_ERR_NOT_FOUND (absent) or an error.
 * MMC_OK when every key got one of the first two. */
MF_API mmc_status_t mmc_exist_batch(mmc_t *mmc, const char *const *keys,
                                    size_t count, mmc_status_t *results);
/* infos[i] is set where results[i] is MMC_OK.  Like mmc_exist_batch, the
 * call returns MMC_OK when every key was found or MMC_ERR_NOT_FOUND. */
MF_API mmc_status_t mmc_query_batch(mmc_t *mmc, const char *const *keys,
                                    size_t count, mmc_obj_info_t *infos,
                                    mmc_status_t *results);
MF_API mmc_status_t mmc_remove_batch(mmc_t *mmc, const char *const *keys,
                                     size_t count, mmc_status_t *results);

/* ---- streaming: allocate, write, finish (count <= MMC_BATCH_MAX) ---- */

/*
 * A put in three steps, for a writer that produces an object piece by
 * piece (a KV block layer by layer) and copies each piece as it is ready:
 * mmc_alloc_batch allocates each object (sizes[i] bytes, placed as opts
 * asks) and writes into infos[i] the global addresses of its replicas; the
 * caller fills every replica (mmc_copy_batch, or its own copies and
 * kernels where a replica's GVA is mapped); mmc_write_finish_batch then
 * commits each key whose written[i] is MMC_OK (written NULL: all), which
 * makes it readable, and aborts the others (their space is freed).
 *
 * Until it is finished an object is invisible (exist: not found; lease:
 * MMC_ERR_BUSY).  An allocation not finished within the meta service's
 * put_timeout_ms, or whose process lost its meta connection meanwhile, is
 * reclaimed: its finish then answers MMC_ERR_ABORTED.  results[i] of
 * alloc: those of mmc_put_batch's allocation (MMC_ERR_EXISTS,
 * MMC_ERR_NO_SPACE...), MMC_ERR_BUSY for a key this process allocated and
 * has not finished.  Of finish: MMC_OK (committed), MMC_ERR_NOT_FOUND (no
 * allocation of this process), MMC_ERR_ABORTED, or written[i] (aborted as
 * asked).
 */
MF_API mmc_status_t mmc_alloc_batch(mmc_t *mmc, const char *const *keys,
                                    const size_t *sizes, size_t count,
                                    const mmc_put_opts_t *opts,
                                    mmc_obj_info_t *infos,
                                    mmc_status_t *results);
MF_API mmc_status_t mmc_write_finish_batch(mmc_t *mmc, const char *const *keys,
                                           const mmc_status_t *written,
                                           size_t count, mmc_status_t *results);
/*
 * Copies pieces between memory of this process and the pool's global
 * addresses (mf_bm_copy_batch on the pool of this process's libmemcache),
 * for objects allocated or leased by the calls here; a piece whose rank is
 * not joined here yet is waited for up to the request timeout.  A piece
 * written into the first replica of an allocation this process made and
 * has not finished is written into every replica of it, at the same
 * offset, so a caller that keeps one address per object (infos[i].gvas[0])
 * fills them all.  results (optional): each piece's status.
 */
MF_API mmc_status_t mmc_copy_batch(mmc_t *mmc, const mf_copy_piece_t *pieces,
                                   size_t count, mf_copy_dir_t dir,
                                   mf_status_t *results);

/* ---- explicit read leases ---- */

/*
 * Takes a read lease of ttl_ms (1 ms .. a day) on each committed object
 * and writes its size and replicas into infos[i]: until the lease is
 * released or expires the object is neither evicted nor its space reused
 * (a remove or replace unlinks it, but its bytes stay), so the caller may
 * copy from those GVAs itself (mmc_copy_batch).  results[i]: MMC_OK,
 * MMC_ERR_NOT_FOUND, MMC_ERR_BUSY (being written: try again shortly).  A
 * key leased several times holds several leases.
 */
MF_API mmc_status_t mmc_lease_batch(mmc_t *mmc, const char *const *keys,
                                    size_t count, uint32_t ttl_ms,
                                    mmc_obj_info_t *infos,
                                    mmc_status_t *results);
/* Releases every lease this process holds on each key: MMC_OK,
 * MMC_ERR_NOT_FOUND (none held), MMC_ERR_LEASE_EXPIRED (one expired or a
 * replica was lost meanwhile: bytes read under it may be stale). */
MF_API mmc_status_t mmc_lease_release_batch(mmc_t *mmc, const char *const *keys,
                                            size_t count,
                                            mmc_status_t *results);

/* Removes every committed object of the pool (objects being written are
 * left alone); *count_p (optional): how many. */
MF_API mmc_status_t mmc_remove_all(mmc_t *mmc, uint64_t *count_p);

/* ---- what calls cost ---- */

/* What this thread's last object call (put, get, exist, query, remove and
 * their batch, layers and streaming forms) spent: in all, waiting for the
 * meta service (meta_rpcs requests), and moving bytes.  Measured on every
 * call, tracer or not.  Fields are only ever appended: set size. */
typedef struct mmc_call_stats {
    size_t size; /* sizeof(mmc_call_stats_t) */
    uint64_t total_ns;
    uint64_t meta_ns;
    uint64_t data_ns;
    uint32_t meta_rpcs;
} mmc_call_stats_t;

MF_API void mmc_call_stats(mmc_call_stats_t *stats);

/*
 * libmemcache's tracer (see <memfabric/mf_trace.h>, whose calls these are
 * for this library's own points): "mmc.rpc.<REQUEST>" per request type to
 * the meta service, "mmc.copy" per batch of copies, "mmc.put", "mmc.get",
 * "mmc.keys" (exist, query, remove) and the streaming calls' "mmc.alloc",
 * "mmc.finish", "mmc.lease", "mmc.release", "mmc.copy_batch" per call.
 * MF_TRACE in the environment switches it on at mmc_create().
 */
MF_API void mmc_trace_enable(bool on);
MF_API void mmc_trace_clear(void);
MF_API size_t mmc_trace_get(mf_trace_stat_t *stats, size_t max);
MF_API mmc_status_t mmc_trace_write(const char *path);

/* ---- user buffers ---- */

/* Marks [addr, addr + size) as memory the transports may register once
 * and reuse for puts and gets (pinned NIC memory, CUDA host registration
 * where those exist).  Optional: unregistered buffers work too. */
MF_API mmc_status_t mmc_register_buffer(mmc_t *mmc, void *addr, size_t size);
MF_API mmc_status_t mmc_unregister_buffer(mmc_t *mmc, void *addr);

MF_END_DECLS

#endif /* MEMCACHE_MMC_H */
