/*
 * mmc-bench's client process: one mmc_t contributing --dram bytes, with
 * its source and destination blocks (host memory, or with --device device
 * memory and pinned host memory laid out the same), piece lists and key
 * names, from set-up to removal of its objects.
 *
 * Invariants: the source blocks hold the pattern of (owner, block) from
 * set-up on and are never written again; key names carry the run id, so
 * runs against one meta service never share a key; a client removes only
 * its own objects, once every client is done reading them; device memory
 * is only reached through the driver and the library.
 */
#include "mmc_bench.h"

#include "tk_pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *mcb_key(const char *kind, uint32_t owner, uint32_t k)
{
    char buf[96];
    char *s;

    snprintf(buf, sizeof(buf), "mmcb%s/p%u/%s%u", mcb_run_id, owner, kind, k);
    s = strdup(buf);
    if (s == NULL) {
        bench_err("out of memory");
    }
    return s;
}

static void mcb_free_keys(char **keys, size_t n)
{
    size_t i;

    if (keys == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

/* Blocks of host or device memory (NULL logged). */
static uint8_t *mcb_area_alloc(uint64_t size)
{
    uint8_t *p;

    if (!mcb_opts.device) {
        return bench_map(size);
    }
    p = tk_cuda_alloc(size);
    if (p == NULL) {
        bench_err("cannot allocate %" PRIu64 " bytes of device memory", size);
    }
    return p;
}

static void mcb_area_free(uint8_t *p, uint64_t size)
{
    if (p == NULL) {
        return;
    }
    if (mcb_opts.device) {
        tk_cuda_free(p);
    } else {
        munmap(p, size);
    }
}

static void mcb_client_free(mcb_client_t *c)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.blocks;

    if (c->tcp_cli.n > 0) {
        bench_tcp_client_fini(&c->tcp_cli);
    }
    if (c->ping_fd >= 0) {
        close(c->ping_fd);
    }
    bench_tcp_server_stop(&c->tcp_srv);
    if (c->tcp_buf != NULL) {
        munmap(c->tcp_buf, c->tcp_size);
    }
    if (c->stream != NULL) {
        tk_cuda_stream_destroy(c->stream);
    }
    if (c->mcpy.nthreads > 0) {
        bench_mcpy_fini(&c->mcpy);
    }
    free(c->mcpy_pieces);
    mcb_area_free(c->src, c->area);
    mcb_area_free(c->dst, c->area);
    tk_cuda_free_host(c->pin);
    free(c->src_iov);
    free(c->dst_iov);
    free(c->pin_iov);
    mcb_free_keys(c->own_keys, K);
    mcb_free_keys(c->all_keys, (size_t)P * K);
    mcb_free_keys(c->meta_keys, mcb_opts.meta_keys);
    mcb_free_keys(c->meta_mixed, mcb_opts.meta_keys);
    mcb_free_keys(c->rput_keys, K);
    mcb_free_keys(c->rget_keys, c->nrget);
    free(c->keys);
    free(c->iovs);
    free(c->niovs);
    free(c->results);
    free(c->infos);
    free(c->bufs);
    free(c->sizes);
    for (int op = 0; op < MCB_OPS; op++) {
        free(c->lat[op]);
    }
}

static uint32_t mcb_host_of(uint32_t proc)
{
    return proc % mcb_opts.hosts;
}

/* --netns: the keys this client puts at its peer (the next client on
 * another host), and the blocks of the clients on other hosts, in the
 * interleaved order of all_keys. */
static int mcb_client_alloc_remote(mcb_client_t *c)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.blocks;
    size_t i;

    c->peer = (c->proc + 1) % P;
    while (mcb_host_of(c->peer) == c->host) {
        c->peer = (c->peer + 1) % P;
    }
    c->rput_keys = calloc(K, sizeof(char *));
    c->rget_keys = calloc((size_t)P * K, sizeof(char *));
    if (c->rput_keys == NULL || c->rget_keys == NULL) {
        bench_err("out of memory");
        return -1;
    }
    for (i = 0; i < K; i++) {
        c->rput_keys[i] = mcb_key("r", c->proc, (uint32_t)i);
        if (c->rput_keys[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < (size_t)P * K; i++) {
        if (mcb_host_of((uint32_t)(i % P)) == c->host) {
            continue;
        }
        c->rget_keys[c->nrget] = strdup(c->all_keys[i]);
        if (c->rget_keys[c->nrget] == NULL) {
            bench_err("out of memory");
            return -1;
        }
        c->nrget++;
    }
    return 0;
}

/* Buffers, piece lists and key names; sources filled with the pattern. */
static int mcb_client_alloc(mcb_client_t *c)
{
    const uint32_t P = mcb_opts.procs, K = mcb_opts.blocks;
    const size_t M = mcb_opts.meta_keys;
    const size_t maxn = K > M ? K : M;
    /* host blocks as before: AUTO; device blocks said to be DEVICE */
    const uint32_t mem = mcb_opts.device ? MMC_MEM_DEVICE : MMC_MEM_AUTO;
    uint8_t *fill;
    uint64_t off;
    size_t i, j;

    c->area = (uint64_t)K * MCB_STRIDE;
    c->src = mcb_area_alloc(c->area);
    c->dst = mcb_area_alloc(c->area);
    c->src_iov = calloc(K, sizeof(*c->src_iov));
    c->dst_iov = calloc(K, sizeof(*c->dst_iov));
    c->own_keys = calloc(K, sizeof(char *));
    c->all_keys = calloc((size_t)P * K, sizeof(char *));
    c->meta_keys = calloc(M, sizeof(char *));
    c->meta_mixed = calloc(M, sizeof(char *));
    c->keys = calloc(maxn, sizeof(char *));
    c->iovs = calloc(maxn, sizeof(mmc_iov_t *));
    c->niovs = calloc(maxn, sizeof(size_t));
    c->results = calloc(maxn, sizeof(mmc_status_t));
    c->infos = calloc(maxn, sizeof(mmc_obj_info_t));
    mmc_obj_info_init(c->infos, maxn);
    c->bufs = calloc(maxn, sizeof(void *));
    c->sizes = calloc(maxn, sizeof(size_t));
    if (c->src == NULL || c->dst == NULL || c->src_iov == NULL ||
        c->dst_iov == NULL || c->own_keys == NULL || c->all_keys == NULL ||
        c->meta_keys == NULL || c->meta_mixed == NULL || c->keys == NULL ||
        c->iovs == NULL || c->niovs == NULL || c->results == NULL ||
        c->infos == NULL || c->bufs == NULL || c->sizes == NULL) {
        bench_err("out of memory");
        return -1;
    }
    if (mcb_opts.device) {
        c->pin = tk_cuda_alloc_host(c->area);
        c->pin_iov = calloc(K, sizeof(*c->pin_iov));
        c->stream = tk_cuda_stream_create();
        if (c->pin == NULL || c->pin_iov == NULL || c->stream == NULL) {
            bench_err("client %u: cannot set up pinned memory and a stream",
                      c->proc);
            return -1;
        }
    }
    /* the pattern is made in host memory: src, or pin to copy from */
    fill = mcb_opts.device ? c->pin : c->src;
    for (i = 0; i < K; i++) {
        uint64_t at = i * MCB_STRIDE;

        off = 0;
        for (j = 0; j < MCB_PIECES; j++) {
            size_t len = mcb_piece_size(j);

            c->src_iov[i][j].base = c->src + at;
            c->src_iov[i][j].len = len;
            c->src_iov[i][j].mem = mem;
            c->dst_iov[i][j].base = c->dst + at;
            c->dst_iov[i][j].len = len;
            c->dst_iov[i][j].mem = mem;
            if (c->pin_iov != NULL) {
                c->pin_iov[i][j].base = c->pin + at;
                c->pin_iov[i][j].len = len;
                c->pin_iov[i][j].mem = MMC_MEM_HOST;
            }
            tk_pattern_fill(fill + at, len,
                            mcb_block_seed(c->proc, (uint32_t)i), off);
            off += len;
            at += len + MCB_GAP;
        }
        c->own_keys[i] = mcb_key("b", c->proc, (uint32_t)i);
        if (c->own_keys[i] == NULL) {
            return -1;
        }
    }
    if (mcb_opts.device && tk_cuda_copy(c->src, c->pin, c->area) != 0) {
        bench_err("client %u: cannot fill its device blocks", c->proc);
        return -1;
    }
    for (i = 0; i < (size_t)P * K; i++) {
        c->all_keys[i] = mcb_key("b", (uint32_t)(i % P), (uint32_t)(i / P));
        if (c->all_keys[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < M; i++) {
        c->meta_keys[i] = mcb_key("m", c->proc, (uint32_t)i);
        c->meta_mixed[i] =
            mcb_key("m", (uint32_t)((c->proc + i) % P), (uint32_t)i);
        if (c->meta_keys[i] == NULL || c->meta_mixed[i] == NULL) {
            return -1;
        }
    }
    tk_pattern_fill(c->meta_val, sizeof(c->meta_val), 7, 0);
    return mcb_opts.hosts > 1 ? mcb_client_alloc_remote(c) : 0;
}

int mcb_tcp_serve(mcb_client_t *c, const char *addr)
{
    /* with --netns a peer reads and writes blocks here, else only pings */
    c->tcp_size = mcb_opts.hosts > 1 ? c->area : BENCH_TCP_MAX_PING;
    c->tcp_buf = bench_map(c->tcp_size);
    if (c->tcp_buf == NULL ||
        bench_tcp_server_start(&c->tcp_srv, addr, c->tcp_buf, c->tcp_size,
                               mcb_sh->tcp_where[c->proc],
                               sizeof(mcb_sh->tcp_where[c->proc])) != 0) {
        bench_err("client %u: cannot start its raw TCP server", c->proc);
        return -1;
    }
    return 0;
}

int mcb_tcp_connect(mcb_client_t *c)
{
    c->ping_fd = bench_tcp_ping_open(mcb_sh->tcp_where[0]);
    if (c->ping_fd < 0) {
        return -1;
    }
    if (mcb_opts.hosts == 1) {
        return 0;
    }
    /* sets tcp_cli.n first: mcb_client_free finishes it either way */
    return bench_tcp_client_init(&c->tcp_cli, c->lanes,
                                 mcb_sh->tcp_where[c->peer]);
}

/* Removes this client's objects; problems are reported, not fatal. */
static void mcb_client_cleanup(mcb_client_t *c)
{
    mmc_status_t st;

    st = mmc_remove_batch(c->mmc, (const char *const *)c->own_keys,
                          mcb_opts.blocks, c->results);
    if (st == MMC_OK) {
        st = mmc_remove_batch(c->mmc, (const char *const *)c->meta_keys,
                              mcb_opts.meta_keys, c->results);
    }
    if (st == MMC_OK && c->rput_keys != NULL) {
        st = mmc_remove_batch(c->mmc, (const char *const *)c->rput_keys,
                              mcb_opts.blocks, c->results);
    }
    if (st != MMC_OK) {
        bench_err("client %u: removing its objects: %s", c->proc,
                  mmc_status_name(st));
    }
}

/* A client process: returns its exit code. */
int mcb_client_main(uint32_t proc, uint32_t host, const char *url, int out_fd)
{
    mcb_client_t c;
    mmc_config_t cfg;
    mmc_status_t st;
    char lanes[16];
    unsigned i;
    int ret = 1;

    memset(&c, 0, sizeof(c));
    c.proc = proc;
    c.host = host;
    c.out_fd = out_fd;
    c.ping_fd = -1;
    if (mcb_client_alloc(&c) != 0) {
        goto out_free;
    }
    mmc_config_init(&cfg);
    if (mmc_config_load_env(&cfg) != MMC_OK) { /* MMC_<KEY> variables */
        goto out_free;
    }
    if (strlen(url) >= sizeof(cfg.meta_url)) {
        bench_err("meta URL too long: %s", url);
        goto out_free;
    }
    snprintf(cfg.meta_url, sizeof(cfg.meta_url), "%s", url);
    cfg.dram_size = mcb_opts.dram;
    cfg.replicas = 1;
    snprintf(cfg.name, sizeof(cfg.name), "mmc-bench-%u", proc);
    if (mmc_config_set(&cfg, "fabric.transport", mcb_opts.transport) !=
        MMC_OK) {
        bench_err("--transport %s: rejected", mcb_opts.transport);
        goto out_free;
    }
    for (i = 0; i < mcb_opts.nclient_sets; i++) {
        char kv[512], *eq;

        snprintf(kv, sizeof(kv), "%s", mcb_opts.client_sets[i]);
        eq = strchr(kv, '=');
        *eq = '\0';
        if (mmc_config_set(&cfg, kv, eq + 1) != MMC_OK) {
            bench_err("--set %s: rejected", mcb_opts.client_sets[i]);
            goto out_free;
        }
    }
    c.copy_threads = cfg.fabric.copy_threads;
    c.mcpy_pieces =
        calloc((size_t)mcb_opts.bmax * MCB_PIECES, sizeof(*c.mcpy_pieces));
    if (c.mcpy_pieces == NULL) {
        bench_err("client %u: out of memory", proc);
        goto out_free;
    }
    if (bench_mcpy_init(&c.mcpy, c.copy_threads + 1 < BENCH_MCPY_MAX_THREADS
                                     ? c.copy_threads + 1
                                     : BENCH_MCPY_MAX_THREADS) != 0) {
        goto out_free;
    }
    c.lanes = 1; /* ucx: one connection to a peer, and so the baseline */
    if (strcmp(mcb_opts.transport, "ucx") != 0 &&
        mmc_config_get(&cfg, "fabric.tcp.lanes", lanes, sizeof(lanes)) ==
            MF_OK &&
        atoi(lanes) > 0) {
        c.lanes = (uint32_t)atoi(lanes);
    }
    if (c.lanes > BENCH_TCP_MAX_CONNS) {
        bench_err("tcp.lanes %u: the raw TCP baseline opens at most %d "
                  "connections",
                  c.lanes, BENCH_TCP_MAX_CONNS);
        goto out_free;
    }
    if (mcb_tcp_serve(&c, mcb_opts.netns ? mcb_lab.addr[host] : "127.0.0.1") !=
        0) {
        goto out_free;
    }
    st = mmc_create(&cfg, &c.mmc);
    if (st != MMC_OK) {
        bench_err("client %u: mmc_create(%s): %s", proc, url,
                  mmc_status_name(st));
        goto out_free;
    }
    c.rank = mmc_rank(c.mmc);
    mcb_sh->ranks[proc] = c.rank;
    if (mcb_barrier() != 0) { /* every rank is known */
        goto out_destroy;
    }
    c.peer_rank = mcb_sh->ranks[c.peer];
    if (mcb_tcp_connect(&c) != 0 || mcb_client_run(&c) != 0) {
        __atomic_store_n(&mcb_sh->abort, 1, __ATOMIC_RELEASE);
        goto out_destroy;
    }
    /* nobody reads this client's objects any more */
    if (mcb_barrier() != 0) {
        goto out_destroy;
    }
    mcb_client_cleanup(&c);
    if (mcb_barrier() != 0) {
        goto out_destroy;
    }
    ret = 0;
out_destroy:
    mmc_destroy(c.mmc);
    /* a client ends with _exit(), which skips the tracer's dump at exit:
     * log its trace points here (nothing when the tracer is off) */
    (void)mmc_trace_write(NULL);
out_free:
    mcb_client_free(&c);
    close(out_fd);
    return ret;
}
