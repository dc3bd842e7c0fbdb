/*
 * Transports behind one ops table.
 *
 * A transport moves bytes between local memory and a peer's registered
 * memory.  It is opened as an interface (mf_tl_iface_t); an endpoint
 * (mf_tl_ep_t) reaches one peer; memory is registered (mf_tl_memh_t) and its
 * remote key packed into bytes a peer unpacks (mf_tl_rkey_t).  Every
 * struct a transport extends starts with the ops pointer (or the base
 * struct) so the transport embeds it as its first member.
 *
 * put/get return MF_OK (done), MF_INPROGRESS (comp->cb fires later, exactly
 * once, possibly from another thread) or an error (comp->cb never fires).
 * One of 0 bytes is done at once; one that reaches outside the memory its
 * remote key covers is refused with MF_ERR_OUT_OF_RANGE.
 * Every slot of a table is filled; a transport points what it cannot do at
 * the mf_tl_no_* stubs, which return MF_ERR_UNSUPPORTED.
 *
 * Threads and progress, the contract every transport keeps:
 *  - iface_open/close, mem_reg/dereg, rkey_pack/unpack/release and
 *    ep_create/destroy are control calls; the fabric serializes them per
 *    interface (under its pool lock), so a transport need not lock against
 *    itself there.  close and destroy are never called while a put, get or
 *    flush on the same object is running, or before every comp it accepted
 *    has fired.
 *  - put, get and flush may be called from any number of threads at once,
 *    on the same endpoint too, and never block on the network: what cannot
 *    finish at once returns MF_INPROGRESS.
 *  - Progress is driven by the transport's own threads (e.g. one per
 *    connection lane) or, for a transport that has none, by progress(),
 *    which the fabric calls from threads that wait for a completion of
 *    that interface (a UCX worker is progressed this way).  progress() may
 *    be called from several threads at once; a transport that needs one
 *    caller at a time serializes it itself (trylock, return 0).
 *  - comp->cb runs on whichever thread completes the operation (a
 *    transport thread, or a thread inside progress()).  It must not block
 *    or call back into the same interface; the fabric's callbacks only
 *    count down and wake waiters.
 *
 * Settings: each transport owns a config table (keys "<name>.<key>") over
 * a struct of config_size bytes.  The fabric keeps what the user set as
 * text and hands iface_open the struct parsed from it (mf_tl_config_parse),
 * so no layer above names a transport's setting.
 *
 * Adding a transport: a folder src/tl/<name>/ and one line in the registry
 * (tl_registry.h).
 */
#ifndef MF_TL_TL_H
#define MF_TL_TL_H

#include "mem/mem.h"
#include "util/config.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mf_tl_ops mf_tl_ops_t;
typedef struct mf_workers mf_workers_t;

typedef struct mf_tl_iface {
    const mf_tl_ops_t *ops;
} mf_tl_iface_t;

typedef struct mf_tl_ep {
    const mf_tl_ops_t *ops;
    mf_tl_iface_t *iface;
} mf_tl_ep_t;

typedef struct mf_tl_memh {
    const mf_tl_ops_t *ops;
    void *addr;
    uint64_t size;
} mf_tl_memh_t;

typedef struct mf_tl_rkey {
    const mf_tl_ops_t *ops;
    uint64_t gva;  /* first address the key covers */
    uint64_t size; /* bytes */
    void *addr;    /* non-NULL when the memory is mapped here (at gva) and
                      can be loaded from and stored to directly */
} mf_tl_rkey_t;

typedef struct mf_tl_comp mf_tl_comp_t;
typedef void (*mf_tl_comp_cb)(mf_tl_comp_t *comp, mf_status_t status);
struct mf_tl_comp {
    mf_tl_comp_cb cb;
    /* The memory kind of the operation's local buffer, set by the caller
     * (who knows it): a transport moving device memory through host
     * staging need not ask the driver.  0 is host memory. */
    mf_mem_kind_t mem_kind;
};

/* Capabilities. */
#define MF_TL_CAP_PUT         0x1u
#define MF_TL_CAP_GET         0x2u
#define MF_TL_CAP_ADDRESSABLE 0x4u /* unpacked remote memory is mapped */
#define MF_TL_CAP_SAME_HOST   0x8u /* reaches peers of this host only */
#define MF_TL_CAP_USER_MEM                                                     \
    0x10u /* serves registered user memory to                                  \
             peers (mf_tl_mem_params_t.serve) */

/* Bit of a memory kind in mf_tl_caps_t.mem_kinds. */
#define MF_TL_MEM_KIND(_kind) (1u << (_kind))

typedef struct mf_tl_caps {
    uint32_t flags;       /* MF_TL_CAP_* */
    uint32_t mem_kinds;   /* MF_TL_MEM_KIND() of the segments it reaches */
    uint32_t local_kinds; /* ... of the local buffers it moves (staged
                             through host memory or not): a superset */
    size_t addr_max;      /* bytes of a packed interface address */
    size_t rkey_max;      /* bytes of a packed remote key */
} mf_tl_caps_t;

typedef struct mf_tl_params {
    const char *host_id;    /* this process's host identity */
    const char *route_host; /* a host every peer reaches (the config
                               store): a transport listening on all
                               addresses advertises the one routed towards
                               it; NULL or "": loopback */
    mf_workers_t *workers;  /* copy threads, NULL for none */
    uint64_t split_min;     /* copies from this size use the workers */
    unsigned mem_flags;     /* MF_MEM_SEG_* for imported segments */
    bool auto_choice;       /* opened by transport = auto: a transport no
                               better than the others here may decline
                               (MF_ERR_UNSUPPORTED, logged at debug) */
    const void *config;     /* the transport's settings (ops->config_size
                               bytes, from mf_tl_config_parse); NULL:
                               its defaults */
} mf_tl_params_t;

/* What to register: memory of a segment (seg set), or plain user memory,
 * which stays private unless serve asks for it to be served to peers at
 * its own addresses (TRANS buffers; MF_TL_CAP_USER_MEM transports only,
 * the others return MF_ERR_UNSUPPORTED). */
typedef struct mf_tl_mem_params {
    void *addr;
    uint64_t size;
    const mf_mem_seg_t *seg; /* NULL for user memory */
    bool serve;              /* user memory: peers may reach it */
    mf_mem_kind_t kind;      /* user memory served: its kind */
} mf_tl_mem_params_t;

struct mf_tl_ops {
    const char *name;
    /* Settings: keys "<name>.<key>" over a struct of config_size bytes;
     * config_check cross-checks a parsed struct (MF_ERR_CONFIG, logged). */
    const mf_cfg_table_t *config;
    size_t config_size;
    mf_status_t (*config_check)(const void *config);
    mf_status_t (*iface_open)(const mf_tl_params_t *params,
                              mf_tl_iface_t **iface_p);
    void (*iface_close)(mf_tl_iface_t *iface);
    void (*iface_query)(mf_tl_iface_t *iface, mf_tl_caps_t *caps_p);
    /* Packs this interface's address (what peers test reachability on). */
    mf_status_t (*iface_addr_pack)(mf_tl_iface_t *iface, void *buf,
                                   size_t buf_len, size_t *len_p);
    bool (*iface_is_reachable)(mf_tl_iface_t *iface, const void *addr,
                               size_t len);
    mf_status_t (*mem_reg)(mf_tl_iface_t *iface,
                           const mf_tl_mem_params_t *params,
                           mf_tl_memh_t **memh_p);
    void (*mem_dereg)(mf_tl_iface_t *iface, mf_tl_memh_t *memh);
    mf_status_t (*rkey_pack)(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                             void *buf, size_t buf_len, size_t *len_p);
    /* Unpacks a peer's key, which must cover exactly [gva, gva + size):
     * the caller says where the peer's memory belongs, and a key that
     * claims other addresses is refused (MF_ERR_PROTO). */
    mf_status_t (*rkey_unpack)(mf_tl_iface_t *iface, const void *buf,
                               size_t len, uint64_t gva, uint64_t size,
                               mf_tl_rkey_t **rkey_p);
    void (*rkey_release)(mf_tl_iface_t *iface, mf_tl_rkey_t *rkey);
    mf_status_t (*ep_create)(mf_tl_iface_t *iface, const void *addr, size_t len,
                             mf_tl_ep_t **ep_p);
    void (*ep_destroy)(mf_tl_ep_t *ep);
    /* Copies size bytes from buf to remote address raddr under rkey. */
    mf_status_t (*put)(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                       size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
    /* Copies size bytes from remote address raddr to buf. */
    mf_status_t (*get)(mf_tl_ep_t *ep, void *buf, uint64_t raddr, size_t size,
                       mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
    /* Completes every put/get issued on ep before it. */
    mf_status_t (*flush)(mf_tl_ep_t *ep, mf_tl_comp_t *comp);
    /* Drives completions; returns how many it completed. */
    unsigned (*progress)(mf_tl_iface_t *iface);
};

/* Whether [addr, addr + len) lies inside [base, base + size), without
 * overflow whatever the numbers (a peer's too). */
static inline bool mf_tl_range_inside(uint64_t base, uint64_t size,
                                      uint64_t addr, uint64_t len)
{
    return addr >= base && len <= size && addr - base <= size - len;
}

/* ---- dispatch ---- */

static inline mf_status_t mf_tl_put(mf_tl_ep_t *ep, const void *buf,
                                    uint64_t raddr, size_t size,
                                    mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return ep->ops->put(ep, buf, raddr, size, rkey, comp);
}

static inline mf_status_t mf_tl_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                                    size_t size, mf_tl_rkey_t *rkey,
                                    mf_tl_comp_t *comp)
{
    return ep->ops->get(ep, buf, raddr, size, rkey, comp);
}

static inline unsigned mf_tl_progress(mf_tl_iface_t *iface)
{
    return iface->ops->progress(iface);
}

/* ---- registry ---- */

/* Number of transports built in, and the i-th one (NULL past the end), in
 * the registry's order (which breaks ties when the fabric chooses). */
size_t mf_tl_count(void);
const mf_tl_ops_t *mf_tl_at(size_t index);
/* By name; NULL if unknown. */
const mf_tl_ops_t *mf_tl_find(const char *name);
/* The names of every transport, ", "-separated, for messages. */
const char *mf_tl_names(void);

/* ---- settings ---- */

/* The transport a setting belongs to (by the text before its first '.');
 * NULL if none. */
const mf_tl_ops_t *mf_tl_config_owner(const char *key);
/* Current name of a key: old names of a transport's keys are aliases
 * (warned about once); anything else is returned as it is. */
const char *mf_tl_config_alias(const char *key, const char *origin);
/*
 * Sets key (a transport's, current name) in settings, the text of
 * `key=value` lines of cap bytes the fabric keeps: the value is parsed and
 * checked by the owner's table, and stored canonical.  MF_ERR_CONFIG
 * (logged, naming origin) for an unknown key or bad value, MF_ERR_TOO_LARGE
 * if the text would not fit; settings is unchanged then.
 */
mf_status_t mf_tl_config_set(char *settings, size_t cap, const char *key,
                             const char *value, const char *origin);
/* Looks key up in settings; its value, else the owner's default, into
 * buf.  MF_ERR_CONFIG if no transport has the key. */
mf_status_t mf_tl_config_get(const char *settings, const char *key, char *buf,
                             size_t len);
/* Applies <prefix><KEY> environment variables of every transport's keys
 * ("<name>.<key>" reads MF_<NAME>_<KEY>) to settings. */
mf_status_t mf_tl_config_load_env(char *settings, size_t cap,
                                  const char *prefix);
/* Parses the settings of ops from settings (defaults for what is not
 * set) into a new struct of ops->config_size bytes; free() it. */
mf_status_t mf_tl_config_parse(const mf_tl_ops_t *ops, const char *settings,
                               void **config_p);
/* Help of every transport's keys (as mf_cfg_print_help_as). */
void mf_tl_config_help(FILE *out, const char *key_prefix,
                       const char *env_prefix);

/* ---- host staging of device memory (tl_stage.c) ---- */

/* Host memory a transport moves device data through, registered for the
 * DMA of the kind (unregistered where it cannot be: the driver stages
 * itself then). */
typedef struct mf_tl_stage_mem {
    uint8_t *buf;
    size_t cap;
    mf_mem_kind_t kind;
    mf_mem_reg_t *reg;
} mf_tl_stage_mem_t;

/* Makes mem hold at least len bytes (and min, in pages) for kind; what it
 * held stays if large enough and of kind.  MF_ERR_NOMEM, logged as who's. */
mf_status_t mf_tl_stage_reserve(mf_tl_stage_mem_t *mem, mf_mem_kind_t kind,
                                size_t len, size_t min, const char *who);
void mf_tl_stage_release(mf_tl_stage_mem_t *mem);
/* Copies by the memory kind (device memory on one side), logged as who's
 * on failure. */
mf_status_t mf_tl_stage_copy(const char *who, mf_mem_kind_t kind, void *dst,
                             const void *src, size_t len);

/* ---- stubs for unsupported slots ---- */

/* A transport without settings: config = &mf_tl_no_config. */
extern const mf_cfg_table_t mf_tl_no_config;
mf_status_t mf_tl_no_config_check(const void *config);

mf_status_t mf_tl_no_mem_reg(mf_tl_iface_t *iface,
                             const mf_tl_mem_params_t *params,
                             mf_tl_memh_t **memh_p);
mf_status_t mf_tl_no_rkey_pack(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                               void *buf, size_t buf_len, size_t *len_p);
mf_status_t mf_tl_no_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                         size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_no_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr, size_t size,
                         mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_no_flush(mf_tl_ep_t *ep, mf_tl_comp_t *comp);
unsigned mf_tl_no_progress(mf_tl_iface_t *iface);

#endif
