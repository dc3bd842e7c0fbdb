/*
 * A two-rank MemFabric pool on one host, end to end: an embedded config
 * store, two processes that each contribute 64 MiB, and a write into the
 * peer's segment followed by a read back, both by GVA.
 *
 *   cc bm_copy.c $(pkg-config --cflags --libs memfabric) -o bm_copy
 *   ./bm_copy
 */
#include <memfabric/memfabric.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORLD    2
#define SEG_SIZE (64ull << 20)

static int run_rank(const char *url)
{
    mf_bm_config_t cfg;
    mf_bm_create_params_t params;
    mf_bm_t *bm = NULL;
    uint32_t rank, peer;
    char out[64], in[64] = {0};
    uint64_t peer_gva;
    mf_status_t status;
    int ret = 1;

    if (mf_init() != MF_OK) {
        return 1;
    }
    mf_bm_config_init(&cfg); /* defaults, then MF_* environment */
    status = mf_bm_init(url, WORLD, MF_RANK_AUTO, &cfg);
    if (status != MF_OK) {
        fprintf(stderr, "mf_bm_init: %s\n", mf_status_str(status));
        goto out_uninit;
    }
    mf_bm_rank_id(&rank);
    peer = (rank + 1) % WORLD;

    mf_bm_create_params_init(&params);
    params.local_dram_size = SEG_SIZE;
    params.max_dram_per_rank = SEG_SIZE;
    status = mf_bm_create(0, &params, &bm);
    if (status == MF_OK) {
        status = mf_bm_join(bm);
    }
    if (status != MF_OK) {
        fprintf(stderr, "rank %u: create/join: %s\n", rank,
                mf_status_str(status));
        goto out_destroy;
    }
    while (!mf_bm_rank_joined(bm, peer)) { /* peers appear asynchronously */
        usleep(1000);
    }

    /* Write a greeting into the peer's segment, by its GVA. */
    peer_gva = (uint64_t)(uintptr_t)mf_bm_gva_of_rank(bm, peer, MF_MEM_HOST);
    snprintf(out, sizeof(out), "hello from rank %u", rank);
    status = mf_bm_copy(bm, (uint64_t)(uintptr_t)out, peer_gva + 64 * rank,
                        sizeof(out), MF_COPY_LH2GH);
    if (status != MF_OK) {
        fprintf(stderr, "rank %u: copy: %s\n", rank, mf_status_str(status));
        goto out_destroy;
    }

    /* Wait until the peer's greeting landed in our own segment. */
    const char *own = mf_bm_gva_of_rank(bm, rank, MF_MEM_HOST);
    while (own[64 * peer] == '\0') {
        usleep(1000);
    }
    /* Read back what we wrote, from the peer's segment. */
    mf_bm_copy(bm, peer_gva + 64 * rank, (uint64_t)(uintptr_t)in, sizeof(in),
               MF_COPY_GH2LH);
    printf("rank %u: peer wrote \"%s\"; read back \"%s\"\n", rank,
           own + 64 * peer, in);
    ret = strcmp(in, out) == 0 ? 0 : 1;

    /* Do not leave while the peer may still copy to us. */
    sleep(1);
    mf_bm_leave(bm);
out_destroy:
    if (bm != NULL) {
        mf_bm_destroy(bm);
    }
    mf_bm_uninit();
out_uninit:
    mf_uninit();
    return ret;
}

int main(void)
{
    mf_store_server_config_t scfg;
    mf_store_server_t *server;
    char url[64];
    pid_t pids[WORLD];
    int failed = 0;

    /* The store runs in a process of its own, so the ranks are forked from
     * a process without threads. */
    int fds[2];
    uint16_t port = 0;
    if (pipe(fds) != 0) {
        return 1;
    }
    pid_t store_pid = fork();
    if (store_pid == 0) {
        mf_store_server_config_init(&scfg); /* 127.0.0.1, a free port */
        if (mf_store_server_start(&scfg, &server) != MF_OK) {
            _exit(1);
        }
        port = mf_store_server_port(server);
        if (write(fds[1], &port, sizeof(port)) != sizeof(port)) {
            _exit(1);
        }
        pause(); /* until SIGTERM */
        _exit(0);
    }
    if (store_pid < 0 || read(fds[0], &port, sizeof(port)) != sizeof(port)) {
        fprintf(stderr, "cannot start the config store\n");
        return 1;
    }
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);

    for (int i = 0; i < WORLD; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            int code = run_rank(url);
            fflush(stdout);
            _exit(code);
        }
    }
    for (int i = 0; i < WORLD; i++) {
        int wstatus;
        if (pids[i] < 0 || waitpid(pids[i], &wstatus, 0) != pids[i] ||
            !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
            failed = 1;
        }
    }
    kill(store_pid, SIGTERM);
    waitpid(store_pid, NULL, 0);
    printf("%s\n", failed ? "FAILED" : "OK");
    return failed;
}
