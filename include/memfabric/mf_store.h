/*
 * The config store: a small TCP key-value service that bootstraps a pool.
 *
 * The server can be embedded in any process (mf_store_server_start) or run
 * as the `mf-store` daemon.  Clients connect with a URL "tcp://host:port".
 *
 * Keys are byte strings of 1..max_key_size bytes (no NUL), values are byte
 * strings of 0..max_value_size bytes; larger ones are refused with
 * MF_ERR_TOO_LARGE by the client before sending, and by the server.
 *
 * A client session is its connection.  Ephemeral keys (MF_STORE_EPHEMERAL)
 * and rank memberships belong to the session and are dropped by the server
 * when the connection is lost or its heartbeats stop; the client
 * re-establishes its watches, ephemeral keys and ranks after a reconnect.
 *
 * Values returned by the client are malloc'd: release them with free().
 * Callbacks run on the client's event thread and must not call the store.
 */
#ifndef MEMFABRIC_MF_STORE_H
#define MEMFABRIC_MF_STORE_H

#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stdio.h>

MF_BEGIN_DECLS

#define MF_RANK_AUTO UINT32_MAX

/* ---------------------------------------------------------------- server */

typedef struct mf_store_server mf_store_server_t;

typedef struct mf_store_server_config {
    size_t size;                   /* sizeof(mf_store_server_config_t) */
    char host[64];                 /* bind address, default "127.0.0.1" */
    uint16_t port;                 /* 0 = any free port */
    uint32_t max_key_size;         /* default 1024 bytes */
    uint32_t max_value_size;       /* default 16 MiB */
    uint64_t max_total_bytes;      /* all keys and values, default 1 GiB */
    uint32_t max_connections;      /* default 4096 */
    uint32_t heartbeat_timeout_ms; /* a session silent this long is dead;
                                      default 10000; 0 = never */
    int log_level;                 /* mf_log_level_t for the mf-store daemon,
                                      default MF_LOG_INFO; the embedded
                                      server ignores it */
    uint32_t idle_timeout_ms;      /* a connection that sends nothing (or
                                      reads nothing of a pending response)
                                      this long is closed; default 15000;
                                      0 = the default */
    /* TLS of the server: keys "tls.<key>" (docs/configuration.md) kept
     * as text; set them with mf_store_server_config_set. */
    char tls_settings[2048];
} mf_store_server_config_t;

MF_API void mf_store_server_config_init(mf_store_server_config_t *cfg);

/*
 * The settings have names (host, port, max_key_size, max_value_size,
 * max_total_bytes, max_connections, heartbeat_timeout_ms, log_level,
 * idle_timeout_ms, and the tls.* keys), which
 * config files (`key = value` lines, '#' comments) and the environment
 * variables MF_STORE_<NAME IN UPPER CASE> use.  Each of these parses and
 * range-checks the values and returns MF_ERR_CONFIG, with a logged reason,
 * on a bad key or value.
 */
MF_API mf_status_t mf_store_server_config_set(mf_store_server_config_t *cfg,
                                              const char *key,
                                              const char *value);
MF_API mf_status_t mf_store_server_config_load_file(
    mf_store_server_config_t *cfg, const char *path);
MF_API mf_status_t
mf_store_server_config_load_env(mf_store_server_config_t *cfg);
/* Prints every setting with its default, environment variable and help. */
MF_API void mf_store_server_config_print_help(FILE *out);
/* Prints the settings of cfg as a valid config file. */
MF_API void mf_store_server_config_dump(const mf_store_server_config_t *cfg,
                                        FILE *out);

MF_API mf_status_t mf_store_server_start(const mf_store_server_config_t *cfg,
                                         mf_store_server_t **server_p);
/* The port it listens on (useful with port 0). */
MF_API uint16_t mf_store_server_port(const mf_store_server_t *server);
MF_API void mf_store_server_stop(mf_store_server_t *server);

/* ---------------------------------------------------------------- client */

typedef struct mf_store mf_store_t;

typedef struct mf_store_config {
    size_t size;                 /* sizeof(mf_store_config_t) */
    uint32_t connect_timeout_ms; /* default 5000 */
    uint32_t op_timeout_ms;      /* each request, default 10000 */
    uint32_t heartbeat_ms;       /* default 1000 */
    /* TLS to the store: keys "tls.<key>" (docs/configuration.md) kept as
     * text; set them with mf_store_config_set. */
    char tls_settings[2048];
} mf_store_config_t;

/* Defaults, then the MF_TLS_<KEY> environment variables. */
MF_API void mf_store_config_init(mf_store_config_t *cfg);
/* Sets a "tls.<key>" setting from its text form (the other fields are
 * set directly).  MF_ERR_CONFIG, logged, for an unknown key or a bad
 * value; cfg is unchanged then. */
MF_API mf_status_t mf_store_config_set(mf_store_config_t *cfg, const char *key,
                                       const char *value);

/* cfg may be NULL for defaults. */
MF_API mf_status_t mf_store_connect(const char *url,
                                    const mf_store_config_t *cfg,
                                    mf_store_t **store_p);
/*
 * Ends the session: the server drops its ephemeral keys and releases its
 * ranks.  Subscribers see MF_RANK_LOST for ranks not left before with
 * mf_store_rank_leave().
 */
MF_API void mf_store_close(mf_store_t *store);

#define MF_STORE_EPHEMERAL 0x1u /* removed when this session ends */

MF_API mf_status_t mf_store_set(mf_store_t *store, const char *key,
                                const void *value, size_t len, uint32_t flags);

/*
 * Gets a value.  If the key is absent, waits up to timeout_ms for it to be
 * set (0: do not wait); MF_ERR_NOT_FOUND if timeout_ms is 0, else
 * MF_ERR_TIMEOUT.  *value_p is malloc'd (NUL-terminated after len bytes).
 */
MF_API mf_status_t mf_store_get(mf_store_t *store, const char *key,
                                uint32_t timeout_ms, void **value_p,
                                size_t *len_p);

/* Atomically adds delta to the decimal integer stored at key (absent
 * counts as 0) and returns the new value.  MF_ERR_INVALID if the value is
 * not an integer. */
MF_API mf_status_t mf_store_add(mf_store_t *store, const char *key,
                                int64_t delta, int64_t *result_p);

/* Appends to the value (absent counts as empty). */
MF_API mf_status_t mf_store_append(mf_store_t *store, const char *key,
                                   const void *value, size_t len);

/*
 * Compare-and-swap: if the current value equals expected (expected NULL:
 * the key must be absent), store desired and return MF_OK.  Otherwise
 * return MF_ERR_MISMATCH and, if current_p is not NULL, the current value
 * (NULL with length 0 if absent).
 */
MF_API mf_status_t mf_store_cas(mf_store_t *store, const char *key,
                                const void *expected, size_t expected_len,
                                const void *desired, size_t desired_len,
                                void **current_p, size_t *current_len_p);

/* MF_ERR_NOT_FOUND if absent. */
MF_API mf_status_t mf_store_remove(mf_store_t *store, const char *key);

typedef enum mf_store_event {
    MF_STORE_EVENT_SET = 1,    /* set, add, append or cas stored a value */
    MF_STORE_EVENT_REMOVE = 2, /* removed, or an ephemeral key's owner left */
} mf_store_event_t;

typedef void (*mf_store_watch_cb)(mf_store_event_t event, const char *key,
                                  const void *value, size_t len, void *arg);
typedef struct mf_store_watch mf_store_watch_t;

/* Calls cb for every later change of a key that starts with prefix. */
MF_API mf_status_t mf_store_watch(mf_store_t *store, const char *prefix,
                                  mf_store_watch_cb cb, void *arg,
                                  mf_store_watch_t **watch_p);
/* After it returns, cb is not running and will not run again. */
MF_API void mf_store_unwatch(mf_store_t *store, mf_store_watch_t *watch);

/*
 * Waits until `count` participants called the barrier `name` (one
 * generation per round, counted per client).  MF_ERR_TIMEOUT otherwise.
 * Barrier and allgather keep their keys under "__mf/", a prefix reserved
 * for the library; only the keys of a name's latest round stay behind.
 */
MF_API mf_status_t mf_store_barrier(mf_store_t *store, const char *name,
                                    uint32_t count, uint32_t timeout_ms);

/*
 * Every one of `count` participants gives `len` bytes and its index
 * (0..count-1); out (count * len bytes) receives all of them by index.
 * On failure out may hold part of the data.
 */
MF_API mf_status_t mf_store_allgather(mf_store_t *store, const char *name,
                                      uint32_t index, uint32_t count,
                                      const void *in, size_t len, void *out,
                                      uint32_t timeout_ms);

/* ----------------------------------------------------- ranks and liveness */

/*
 * Joins the rank group `group` of world_size ranks with rank `rank` or,
 * with MF_RANK_AUTO, the lowest free rank.  MF_ERR_EXISTS if that rank is
 * taken, MF_ERR_BUSY if the group is full, MF_ERR_INVALID if world_size
 * differs from the group's.  The rank is held while the session lives.
 */
MF_API mf_status_t mf_store_rank_join(mf_store_t *store, const char *group,
                                      uint32_t world_size, uint32_t rank,
                                      uint32_t *rank_p);
MF_API mf_status_t mf_store_rank_leave(mf_store_t *store, const char *group,
                                       uint32_t rank);

typedef enum mf_rank_event {
    MF_RANK_JOINED = 1,
    MF_RANK_LEFT = 2, /* left gracefully */
    MF_RANK_LOST = 3, /* connection lost or heartbeats stopped */
} mf_rank_event_t;

typedef void (*mf_rank_event_cb)(const char *group, uint32_t rank,
                                 mf_rank_event_t event, void *arg);

/* Calls cb for every later join or leave in group; one per store and
 * group (MF_ERR_EXISTS for a second one). */
MF_API mf_status_t mf_store_rank_subscribe(mf_store_t *store, const char *group,
                                           mf_rank_event_cb cb, void *arg);

/* Lists the live ranks of group, ascending; *count_p may exceed max. */
MF_API mf_status_t mf_store_rank_list(mf_store_t *store, const char *group,
                                      uint32_t *ranks, uint32_t max,
                                      uint32_t *count_p);

MF_END_DECLS

#endif /* MEMFABRIC_MF_STORE_H */
