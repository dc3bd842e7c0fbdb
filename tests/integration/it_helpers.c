/*
 * Helpers of the multi-process BM integration tests, over the test kit
 * (tests/common): a config store in a forked process (here or in a host
 * of a network-namespace lab), and the usual
 * bootstrap of a BM pool inside a rank.
 *
 * Invariants: the store process is forked with tk_proc_fork(), so it dies
 * with the test and is reaped by tk_proc_kill_all() at the latest; it ends
 * with tk_proc_exit() so that it never runs the parent's atexit handlers.
 */
#include "it_helpers.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------- config store */

typedef struct it_store_arg {
    const char *addr;
    int fd; /* write end: the port, 0 if the server did not start */
} it_store_arg_t;

/* The store process: serves on addr (port 0) until SIGTERM or SIGINT. */
static int it_store_fn(int index, void *arg)
{
    const it_store_arg_t *sa = arg;
    mf_store_server_config_t cfg;
    mf_store_server_t *server;
    sigset_t set;
    uint16_t port = 0;
    mf_status_t st;
    int sig;

    (void)index;
    tk_role_set("store");
    /* Blocked before the server starts its threads, so they inherit the
     * mask and SIGTERM is only ever taken by sigwait() below. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    mf_store_server_config_init(&cfg);
    /* MF_STORE_* of the environment: TLS in the [tls] variants */
    if (mf_store_server_config_load_env(&cfg) != MF_OK) {
        tk_print("bad MF_STORE_* environment");
        (void)!write(sa->fd, &port, sizeof(port));
        return 1;
    }
    snprintf(cfg.host, sizeof(cfg.host), "%s", sa->addr);
    cfg.port = 0;
    st = mf_store_server_start(&cfg, &server);
    if (st != MF_OK) {
        tk_print("mf_store_server_start(%s): %s", sa->addr, mf_status_name(st));
        (void)!write(sa->fd, &port, sizeof(port));
        return 1;
    }
    port = mf_store_server_port(server);
    if (write(sa->fd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        mf_store_server_stop(server);
        return 2;
    }
    close(sa->fd);
    while (sigwait(&set, &sig) != 0) {
    }
    mf_store_server_stop(server);
    return 0;
}

/* Forks the store process (inside host of net if net is not NULL) and
 * waits until it listens on addr. */
static int it_store_launch(it_store_t *store, const tk_netns_t *net, int host,
                           const char *addr)
{
    it_store_arg_t sa;
    struct pollfd pfd;
    uint16_t port = 0;
    ssize_t n = 0;
    int fds[2];
    pid_t pid;

    memset(store, 0, sizeof(*store));
    if (pipe(fds) < 0) {
        tk_print("pipe() failed: %s", strerror(errno));
        return -1;
    }
    sa.addr = addr;
    sa.fd = fds[1];
    pid = net != NULL ? tk_netns_spawn(net, host, it_store_fn, 100 + host, &sa)
                      : tk_proc_spawn(it_store_fn, 100, &sa);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 30000) == 1) {
        n = read(fds[0], &port, sizeof(port));
    }
    close(fds[0]);
    if (n != (ssize_t)sizeof(port) || port == 0) {
        tk_print("store process on %s did not start", addr);
        tk_proc_kill(pid);
        return -1;
    }
    store->pid = pid;
    store->port = port;
    snprintf(store->url, sizeof(store->url), "tcp://%s:%u", addr,
             (unsigned)port);
    return 0;
}

int it_store_start(it_store_t *store)
{
    return it_store_launch(store, NULL, 0, "127.0.0.1");
}

int it_store_start_host(const tk_netns_t *net, int host, it_store_t *store)
{
    return it_store_launch(store, net, host, net->addr[host]);
}

int it_store_stop(it_store_t *store)
{
    int code;

    if (store->pid <= 0) {
        return 0;
    }
    kill(store->pid, SIGTERM);
    code = tk_proc_wait(store->pid, 30000);
    store->pid = 0;
    if (code != 0) {
        tk_print("store process exited with %d", code);
    }
    return code;
}

/* ---------------------------------------------------- pools in a rank */

void it_bm_config(mf_bm_config_t *cfg)
{
    mf_bm_config_init(cfg);
    cfg->timeout_ms = 60000;
    cfg->op_timeout_ms = 30000;
}

bool it_has_transport(const char *name)
{
    for (size_t i = 0; i < mf_bm_transport_count(); i++) {
        if (strcmp(mf_bm_transport_name(i), name) == 0) {
            return true;
        }
    }
    return false;
}

bool it_ucx_sw_rma(void)
{
    const char *v = getenv("IT_UCX_SW_RMA");

    return v != NULL && strcmp(v, "0") != 0;
}

mf_status_t it_pool_open(it_pool_t *pool, const char *url, uint32_t world,
                         uint32_t rank, uint64_t seg_size, uint64_t stride,
                         const mf_bm_config_t *cfg, bool join)
{
    return it_pool_open_hbm(pool, url, world, rank, seg_size, stride, 0, 0, cfg,
                            join);
}

mf_status_t it_pool_open_hbm(it_pool_t *pool, const char *url, uint32_t world,
                             uint32_t rank, uint64_t seg_size, uint64_t stride,
                             uint64_t hbm_size, uint64_t hbm_stride,
                             const mf_bm_config_t *cfg, bool join)
{
    mf_bm_create_params_t params;
    mf_bm_config_t defcfg;
    uint64_t deadline;
    mf_status_t st;

    memset(pool, 0, sizeof(*pool));
    pool->world = world;
    pool->seg_size = seg_size;
    pool->stride = stride;
    if (cfg == NULL) {
        it_bm_config(&defcfg);
        cfg = &defcfg;
    }
    st = mf_init();
    if (st != MF_OK) {
        tk_print("mf_init: %s", mf_status_name(st));
        return st;
    }
    st = mf_store_connect(url, NULL, &pool->store);
    if (st != MF_OK) {
        tk_print("mf_store_connect(%s): %s", url, mf_status_name(st));
        goto err_uninit;
    }
    deadline = tk_time_ms() + 20000;
    for (;;) {
        st = mf_bm_init(url, world, rank, cfg);
        if (st != MF_ERR_BUSY || tk_time_ms() > deadline) {
            break;
        }
        tk_sleep_ms(50); /* a rank being freed by its dead or leaving owner */
    }
    if (st != MF_OK) {
        tk_print("mf_bm_init(rank %d): %s", (int)rank, mf_status_name(st));
        goto err_close_store;
    }
    pool->inited = true;
    st = mf_bm_rank_id(&pool->rank);
    if (st != MF_OK) {
        tk_print("mf_bm_rank_id: %s", mf_status_name(st));
        goto err_close;
    }
    tk_role_set("rank %u", pool->rank);
    mf_bm_create_params_init(&params);
    params.local_dram_size = seg_size;
    params.max_dram_per_rank = stride;
    params.local_hbm_size = hbm_size;
    params.max_hbm_per_rank = hbm_stride;
    st = mf_bm_create(0, &params, &pool->bm);
    if (st != MF_OK) {
        tk_print("mf_bm_create: %s", mf_status_name(st));
        goto err_close;
    }
    if (join) {
        st = mf_bm_join(pool->bm);
        if (st != MF_OK) {
            tk_print("mf_bm_join: %s", mf_status_name(st));
            goto err_close;
        }
        pool->joined = true;
    }
    return MF_OK;

err_close:
    it_pool_close(pool);
    return st;
err_close_store:
    mf_store_close(pool->store);
    pool->store = NULL;
err_uninit:
    mf_uninit();
    return st;
}

void it_pool_close(it_pool_t *pool)
{
    mf_status_t st;

    if (pool->joined) {
        st = mf_bm_leave(pool->bm);
        if (st != MF_OK) {
            tk_print("mf_bm_leave: %s", mf_status_name(st));
        }
        pool->joined = false;
    }
    if (pool->bm != NULL) {
        mf_bm_destroy(pool->bm);
        pool->bm = NULL;
    }
    if (pool->inited) {
        mf_bm_uninit();
        pool->inited = false;
    }
    if (pool->store != NULL) {
        mf_store_close(pool->store);
        pool->store = NULL;
        mf_uninit();
    }
}

mf_status_t it_barrier(it_pool_t *pool, const char *name, uint32_t count)
{
    mf_status_t st = mf_store_barrier(pool->store, name, count, 60000);

    if (st != MF_OK) {
        tk_print("barrier %s (%u): %s", name, count, mf_status_name(st));
    }
    return st;
}

mf_status_t it_wait_rank_joined(it_pool_t *pool, uint32_t rank, bool joined,
                                unsigned timeout_ms)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;

    while (mf_bm_rank_joined(pool->bm, rank) != joined) {
        if (tk_time_ms() > deadline) {
            tk_print("rank %u still %s after %u ms", rank,
                     joined ? "not joined" : "joined", timeout_ms);
            return MF_ERR_TIMEOUT;
        }
        tk_sleep_ms(10);
    }
    return MF_OK;
}

mf_status_t it_wait_all_joined(it_pool_t *pool, unsigned timeout_ms)
{
    mf_status_t st;
    uint32_t r;

    for (r = 0; r < pool->world; r++) {
        st = it_wait_rank_joined(pool, r, true, timeout_ms);
        if (st != MF_OK) {
            return st;
        }
    }
    return MF_OK;
}

uint64_t it_gva(it_pool_t *pool, uint32_t rank, uint64_t offset)
{
    return (uint64_t)(uintptr_t)mf_bm_gva_of_rank(pool->bm, rank, MF_MEM_HOST) +
           offset;
}
