/*
 * Helpers shared by the multi-process integration tests.
 *
 * Process model: the test process (the "parent") never calls into the
 * library itself, so it stays single-threaded and may fork at any time.
 * Everything that needs the library runs in forked children:
 *   - it_store_start() forks a process that runs an embedded config store
 *     (mf_store_server_start on 127.0.0.1, port 0) until it_store_stop();
 *   - it_spawn() forks a rank process that runs a function and exits with
 *     its return value (0 = success).
 * Every child dies with the parent (PR_SET_PDEATHSIG) and every spawned pid
 * is remembered, so it_kill_all() (also run at exit) leaves no process
 * behind.  Waits always have a deadline; a child past it is killed.
 *
 * Inside children, use IT_CHECK / IT_CHECK_OK, never cmocka asserts: a
 * failed cmocka assert would longjmp into the parent's test runner copy.
 */
#ifndef MF_IT_HELPERS_H
#define MF_IT_HELPERS_H

#include <memfabric/memfabric.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ------------------------------------------------------------ logging */

/* Prints a line prefixed with the process role to stderr. */
void it_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets the prefix used by it_log in this process, e.g. "rank 2". */
void it_set_role(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Child-side checks: log the failed condition and `goto fail`. */
#define IT_CHECK(_cond, ...)                                                   \
    do {                                                                       \
        if (!(_cond)) {                                                        \
            it_log("%s:%d: check failed: %s", __FILE__, __LINE__, #_cond);     \
            it_log(__VA_ARGS__);                                               \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

#define IT_CHECK_ST(_expr, _expected)                                          \
    do {                                                                       \
        mf_status_t _st = (_expr);                                             \
        if (_st != (_expected)) {                                              \
            it_log("%s:%d: %s returned %s (%d), expected %s", __FILE__,        \
                   __LINE__, #_expr, mf_status_name(_st), (int)_st,            \
                   mf_status_name(_expected));                                 \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

#define IT_CHECK_OK(_expr) IT_CHECK_ST(_expr, MF_OK)

/* --------------------------------------------------------------- time */

uint64_t it_now_ms(void);
void it_sleep_ms(unsigned ms);

/* ---------------------------------------------------------------- PRNG */

/* splitmix64: deterministic, seedable, good enough for test patterns. */
typedef struct it_rng {
    uint64_t state;
} it_rng_t;

void it_rng_seed(it_rng_t *rng, uint64_t seed);
uint64_t it_rng_next(it_rng_t *rng);
/* Uniform in [lo, hi] (inclusive). */
uint64_t it_rng_range(it_rng_t *rng, uint64_t lo, uint64_t hi);
/* Sizes spread over orders of magnitude: log-uniform in [lo, hi]. */
uint64_t it_rng_size(it_rng_t *rng, uint64_t lo, uint64_t hi);

/*
 * Position-dependent pattern: byte i of the pattern `seed` is a function of
 * (seed, base + i) only, so any process can compute the expected content
 * of any part of a region filled with it_pattern_fill(buf, len, seed, 0).
 */
void it_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t base);
/* Index of the first byte that differs from the pattern, or -1. */
ssize_t it_pattern_check(const void *buf, size_t len, uint64_t seed,
                         uint64_t base);

/* Index of the first differing byte of a and b, or -1. */
ssize_t it_memdiff(const void *a, const void *b, size_t len);
/* Index of the first byte of buf that is not c, or -1. */
ssize_t it_memcheck(const void *buf, int c, size_t len);

/* ---------------------------------------------------------- processes */

typedef int (*it_proc_fn)(int index, void *arg);

/*
 * Forks a child that runs fn(index, arg) and _exit()s with its return
 * value (clamped to 0..255).  Returns the pid, or -1 (logged).
 */
pid_t it_spawn(it_proc_fn fn, int index, void *arg);

/* Spawns n children with indices 0..n-1; -1 if any fork failed (the ones
 * already started are killed and reaped). */
int it_spawn_n(int n, it_proc_fn fn, void *arg, pid_t *pids);

/*
 * Waits for pid up to timeout_ms; on timeout kills it with SIGKILL and
 * reaps it.  Returns the exit code (0..255), 128 + signal if it was
 * killed by a signal, or -1 on timeout or error.
 */
int it_wait(pid_t pid, unsigned timeout_ms);

/* Waits for all n pids with one common deadline; codes (optional) gets
 * each result as it_wait returns it.  Returns 0 if every one exited 0;
 * stragglers are killed.  */
int it_wait_all(const pid_t *pids, int n, unsigned timeout_ms, int *codes);

/*
 * Forks and execs argv[0] (a path) with argv.  If stdout_fd is not NULL the
 * child's stdout goes to a pipe whose read end is returned there.  Returns
 * the pid (remembered like it_spawn's), or -1.
 */
pid_t it_spawn_exec(char *const argv[], int *stdout_fd);
/* it_spawn_exec() with the soft limit of open files of the child set to
 * nofile before the exec (its hard limit stays). */
pid_t it_spawn_exec_nofile(char *const argv[], unsigned nofile, int *stdout_fd);
/* The soft and hard limits of open files of process pid, as
 * /proc/<pid>/limits shows them ("unlimited" is UINT64_MAX).  0 or -1. */
int it_nofile_limits(pid_t pid, uint64_t *soft_p, uint64_t *hard_p);

/* Reads one line (without the newline) from fd within timeout_ms; 0 or -1. */
int it_read_line(int fd, char *buf, size_t len, unsigned timeout_ms);

/* Kills (SIGKILL) and reaps every child still alive. */
void it_kill_all(void);

/* ------------------------------------------------------- config store */

typedef struct it_store {
    pid_t pid;
    uint16_t port;
    char url[64]; /* "tcp://127.0.0.1:<port>" */
} it_store_t;

/* Forks the store process and waits until it listens.  0 or -1. */
int it_store_start(it_store_t *store);
/* SIGTERM, then waits; returns the store process's exit code (0 = clean). */
int it_store_stop(it_store_t *store);

/* A TCP port that was free a moment ago (bind to port 0 and close). */
int it_free_port(uint16_t *port_p);

/* ---------------------------------------------------- pools in a rank */

typedef struct it_pool {
    mf_store_t *store; /* own store session, for barriers and keys */
    mf_bm_t *bm;
    uint32_t rank;
    uint32_t world;
    uint64_t seg_size; /* local_dram_size */
    uint64_t stride;   /* max_dram_per_rank */
    bool inited;       /* mf_init + mf_bm_init done */
    bool joined;
} it_pool_t;

/* Default BM config for tests: defaults with generous timeouts; in an
 * AddressSanitizer build the window moves out of ASan's shadow memory. */
void it_bm_config(mf_bm_config_t *cfg);

/*
 * In a child: mf_init, store session, mf_bm_init (rank may be
 * MF_RANK_AUTO; MF_ERR_BUSY is retried up to 20 s for a rank that is
 * being freed), mf_bm_create (pool 0) and, if join, mf_bm_join.  cfg may
 * be NULL.  Returns MF_OK or the failing status (logged).
 */
mf_status_t it_pool_open(it_pool_t *pool, const char *url, uint32_t world,
                         uint32_t rank, uint64_t seg_size, uint64_t stride,
                         const mf_bm_config_t *cfg, bool join);
/* Leaves (if joined), destroys, uninits; safe on a partly opened pool. */
void it_pool_close(it_pool_t *pool);

/* mf_store_barrier with a generous timeout (60 s). */
mf_status_t it_barrier(it_pool_t *pool, const char *name, uint32_t count);

/* Waits (up to timeout_ms) until mf_bm_rank_joined(rank) == joined. */
mf_status_t it_wait_rank_joined(it_pool_t *pool, uint32_t rank, bool joined,
                                unsigned timeout_ms);
/* Waits until every rank of the world is joined. */
mf_status_t it_wait_all_joined(it_pool_t *pool, unsigned timeout_ms);

/* GVA of byte `offset` of rank's host segment. */
uint64_t it_gva(it_pool_t *pool, uint32_t rank, uint64_t offset);

/* ----------------------------------------------------- log capture */

/*
 * Installs a log sink (in a child, after mf_init) that counts messages at
 * error level and forwards every message to stderr with the role prefix.
 */
void it_log_capture(void);
unsigned it_log_error_count(void);

/* Children spawned and not yet reaped (0 when every child was reaped). */
int it_tracked_children(void);

#endif /* MF_IT_HELPERS_H */
