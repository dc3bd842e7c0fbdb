/*
 * Upstream's smem_* C API (include/compat) in one process, a world of one
 * rank: the common calls (config store, logging, last error, TLS
 * refused), every BM call (copies single, batched, partly failing and
 * asynchronous), every SHM call (the region, collectives, topology,
 * context, global exit) and every TRANS call between two instances, with
 * the codes upstream returns for bad arguments.  Written as an upstream
 * program is: only the compat headers.
 */
#include "tk_group.h"
#include "tk_log.h"
#include "tk_pattern.h"

#include <compat/smem.h>
#include <compat/smem_bm.h>
#include <compat/smem_shm.h>
#include <compat/smem_trans.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define MIB (1ull << 20)

static char test_url[64];
static tk_log_t test_log;

/* A port nobody listens on now. */
static uint16_t test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port;

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int test_setup(void **state)
{
    int32_t ret = SM_ERROR;

    (void)state;
    tk_log_start(&test_log, 0);
    assert_int_equal(smem_init(0), SM_OK);
    /* the port may be taken between the probe and the bind: try again */
    for (int i = 0; i < 5 && ret != SM_OK; i++) {
        snprintf(test_url, sizeof(test_url), "tcp://127.0.0.1:%u",
                 test_free_port());
        tk_log_allow_errors(&test_log, true);
        ret = smem_create_config_store(test_url);
        tk_log_allow_errors(&test_log, false);
    }
    assert_int_equal(ret, SM_OK);
    tk_log_reset(&test_log);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    smem_uninit();
    tk_log_stop(&test_log);
    return 0;
}

/* ------------------------------------------------------------ common */

static int test_logged_level = -1;
static char test_logged[256];

static void test_logger(int level, const char *msg)
{
    test_logged_level = level;
    snprintf(test_logged, sizeof(test_logged), "%s", msg);
}

static void test_common(void **state)
{
    (void)state;
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(smem_create_config_store(test_url), SM_REPEAT_CALL);
    assert_int_equal(smem_set_conf_store_tls(false, NULL, 0), SM_OK);
    assert_int_equal(smem_set_conf_store_tls(true, "x", 1), SM_INVALID_PARAM);
    assert_non_null(strstr(smem_get_last_err_msg(), "TLS"));
    assert_non_null(strstr(smem_get_and_clear_last_err_msg(), "TLS"));
    assert_string_equal(smem_get_last_err_msg(), "");
    assert_int_equal(smem_set_log_level(7), SM_INVALID_PARAM);
    tk_log_allow_errors(&test_log, false);
    assert_int_equal(smem_set_log_level(SMEM_LOG_INFO), SM_OK);
    /* the external logger gets the library's messages with its levels */
    assert_int_equal(smem_set_extern_logger(test_logger), SM_OK);
    assert_int_equal(smem_set_log_level(9), SM_INVALID_PARAM);
    assert_int_equal(test_logged_level, SMEM_LOG_ERROR);
    assert_non_null(strstr(test_logged, "smem_set_log_level"));
    assert_int_equal(smem_set_extern_logger(NULL), SM_OK);
    tk_log_start(&test_log, 0); /* the capture's sink again */
    assert_int_equal(smem_set_log_level(SMEM_LOG_WARN), SM_OK);
}

/* --------------------------------------------------------------- BM */

static void test_bm(void **state)
{
    const size_t seg = 4 * MIB;
    smem_bm_config_t cfg;
    smem_copy_params cp;
    smem_batch_copy_params bp;
    smem_batch_copy_result br;
    uint8_t *src = malloc(seg), *dst = malloc(seg);
    void *srcs[3], *dsts[3], *local = NULL;
    uint64_t sizes[3];
    int32_t results[3];
    smem_bm_t bm;
    uint8_t *g;

    (void)state;
    assert_non_null(src);
    assert_non_null(dst);
    assert_int_equal(smem_bm_get_rank_id(), UINT32_MAX);
    assert_int_equal(smem_bm_config_init(&cfg), SM_OK);
    assert_true(cfg.startConfigStoreServer);
    cfg.startConfigStoreServer = false; /* ours runs already */
    /* TLS: the store's paths become tls.* (a missing CA fails them); an
     * encrypted data path is refused */
    tk_log_allow_errors(&test_log, true);
    cfg.storeTlsConfig.tlsEnable = true;
    snprintf(cfg.storeTlsConfig.certPath, sizeof(cfg.storeTlsConfig.certPath),
             "/nonexistent/cert.pem");
    snprintf(cfg.storeTlsConfig.keyPath, sizeof(cfg.storeTlsConfig.keyPath),
             "/nonexistent/key.pem");
    assert_int_equal(smem_bm_init(test_url, 1, 0, &cfg), SM_INVALID_PARAM);
    assert_non_null(strstr(smem_get_last_err_msg(), "storeTlsConfig"));
    memset(&cfg.storeTlsConfig, 0, sizeof(cfg.storeTlsConfig));
    cfg.hcomTlsConfig.tlsEnable = true;
    assert_int_not_equal(smem_bm_init(test_url, 1, 0, &cfg), SM_OK);
    assert_non_null(strstr(smem_get_last_err_msg(), "not encrypted"));
    cfg.hcomTlsConfig.tlsEnable = false;
    tk_log_allow_errors(&test_log, false);
    assert_int_equal(smem_bm_init(test_url, 1, 0, &cfg), SM_OK);
    assert_int_equal(smem_bm_get_rank_id(), 0);
    bm = smem_bm_create(3, 1, SMEMB_DATA_OP_HOST_TCP, seg, 0, 0);
    assert_non_null(bm);
    assert_int_equal(smem_bm_join(bm, 0, &local), SM_OK);
    g = smem_bm_ptr_by_mem_type(bm, SMEM_MEM_TYPE_HOST, 0);
    assert_ptr_equal(local, g);
    assert_null(smem_bm_ptr_by_mem_type(bm, SMEM_MEM_TYPE_HOST, 1));
    assert_int_equal(
        smem_bm_get_local_mem_size_by_mem_type(bm, SMEM_MEM_TYPE_LOCAL_HOST),
        seg);
    assert_int_equal(
        smem_bm_get_local_mem_size_by_mem_type(bm, SMEM_MEM_TYPE_LOCAL_DEVICE),
        0);
    assert_int_equal(smem_bm_get_rank_id_by_gva(bm, g + 5), 0);
    assert_int_equal(smem_bm_get_rank_id_by_gva(bm, src), UINT32_MAX);

    /* single copies both ways */
    tk_pattern_fill(src, seg, 31, 0);
    cp = (smem_copy_params){src, g, seg, NULL};
    assert_int_equal(smem_bm_copy(bm, &cp, SMEMB_COPY_H2G, 0), SM_OK);
    assert_memory_equal(g, src, seg);
    cp = (smem_copy_params){g + 1, dst, seg - 1, NULL};
    assert_int_equal(smem_bm_copy(bm, &cp, SMEMB_COPY_GH2H, 0), SM_OK);
    assert_memory_equal(dst, src + 1, seg - 1);

    /* a batch, an asynchronous one, and one with a piece out of range */
    for (int i = 0; i < 3; i++) {
        srcs[i] = src + i * 1000;
        dsts[i] = g + MIB + i * 4096;
        sizes[i] = 999;
    }
    tk_pattern_fill(src, seg, 32, 0);
    bp = (smem_batch_copy_params){srcs, dsts, sizes, 3, NULL};
    assert_int_equal(smem_bm_copy_batch(bm, &bp, SMEMB_COPY_H2GH, 0), SM_OK);
    assert_memory_equal(g + MIB + 8192, src + 2000, 999);
    tk_pattern_fill(src, seg, 33, 0);
    assert_int_equal(
        smem_bm_copy_batch(bm, &bp, SMEMB_COPY_AUTO, ASYNC_COPY_FLAG), SM_OK);
    assert_int_equal(smem_bm_wait(bm), SM_OK);
    assert_memory_equal(g + MIB, src, 999);
    dsts[1] = g + seg - 10; /* past the segment */
    br = (smem_batch_copy_result){results, 3};
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(
        smem_bm_copy_batch_partial_succeed(bm, &bp, SMEMB_COPY_H2G, 0, &br),
        SMEM_PARTIAL_FAILED);
    assert_int_equal(results[0], SM_OK);
    assert_int_equal(results[1], SM_INVALID_PARAM);
    assert_int_equal(results[2], SM_OK);
    /* bad arguments */
    assert_int_equal(smem_bm_copy(bm, NULL, SMEMB_COPY_H2G, 0),
                     SM_INVALID_PARAM);
    cp.stream = (void *)1;
    assert_int_equal(smem_bm_copy(bm, &cp, SMEMB_COPY_H2G, 0),
                     SM_INVALID_PARAM);
    assert_non_null(strstr(smem_get_last_err_msg(), "stream"));
    cp.stream = NULL;
    assert_int_equal(smem_bm_copy(bm, &cp, (smem_bm_copy_type)42, 0),
                     SM_INVALID_PARAM);
    assert_int_equal(smem_bm_copy(NULL, &cp, SMEMB_COPY_H2G, 0),
                     SM_INVALID_PARAM);
    assert_null(smem_bm_create(4, 1, SMEMB_DATA_OP_HOST_TCP, 0, 3, 0));
    assert_int_equal(smem_bm_init(test_url, 1, 0, &cfg), SM_NOT_INITIALIZED);
    tk_log_allow_errors(&test_log, false);

    assert_int_equal(
        smem_bm_register_user_mem(bm, (uint64_t)(uintptr_t)src, seg), SM_OK);
    assert_int_equal(smem_bm_unregister_user_mem(bm, (uint64_t)(uintptr_t)src),
                     SM_OK);
    assert_int_equal(smem_bm_leave(bm, 0), SM_OK);
    smem_bm_destroy(bm);

    /* create2: strides apart from the sizes */
    {
        smem_bm_create_option_t opt = {.maxDramSize = 8 * MIB,
                                       .localDRAMSize = 2 * MIB};

        bm = smem_bm_create2(5, &opt);
        assert_non_null(bm);
        assert_int_equal(smem_bm_join(bm, 0, NULL), SM_OK);
        assert_int_equal(
            smem_bm_get_local_mem_size_by_mem_type(bm, SMEM_MEM_TYPE_HOST),
            2 * MIB);
        smem_bm_destroy(bm);
    }
    smem_bm_uninit(0);
    free(src);
    free(dst);
    tk_log_reset(&test_log);
}

/* -------------------------------------------------------------- SHM */

static pthread_mutex_t test_exit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t test_exit_cond = PTHREAD_COND_INITIALIZER;
static int test_exit_status = -1;

static void test_exit(int status)
{
    pthread_mutex_lock(&test_exit_lock);
    test_exit_status = status;
    pthread_cond_broadcast(&test_exit_cond);
    pthread_mutex_unlock(&test_exit_lock);
}

static void test_shm(void **state)
{
    smem_shm_config_t cfg;
    uint64_t word = 0xabcdef, all = 0;
    uint32_t reach = 0;
    void *gva = NULL;
    smem_shm_t shm;
    uint8_t *p;

    (void)state;
    assert_int_equal(smem_shm_config_init(&cfg), SM_OK);
    cfg.startConfigStore = false;
    assert_int_equal(smem_shm_init(test_url, 1, 0, 0, &cfg), SM_OK);
    assert_int_equal(smem_shm_query_support_data_operation(),
                     SMEMS_DATA_OP_MTE | SMEMS_DATA_OP_ROCE);
    shm = smem_shm_create(2, 1, 0, 3 * MIB, SMEMS_DATA_OP_MTE,
                          SMEM_SHM_FLAG_HOST, &gva);
    assert_non_null(shm);
    assert_non_null(gva);
    p = gva;
    memset(p, 0x3c, 3 * MIB); /* host memory: a pointer */
    assert_int_equal(smem_shm_get_global_rank(shm), 0);
    assert_int_equal(smem_shm_get_global_rank_size(shm), 1);
    assert_int_equal(smem_shm_control_barrier(shm), SM_OK);
    assert_int_equal(smem_shm_control_allgather(shm, (const char *)&word, 8,
                                                (char *)&all, 8),
                     SM_OK);
    assert_int_equal(all, word);
    assert_int_equal(smem_shm_topology_can_reach(shm, 0, &reach), SM_OK);
    assert_int_equal(reach, SMEMS_DATA_OP_MTE);
    assert_int_equal(smem_shm_set_extra_context(shm, "ctx", 4), SM_OK);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(smem_shm_control_allgather(shm, (const char *)&word, 8,
                                                (char *)&all, 4),
                     SM_INVALID_PARAM);
    assert_int_equal(smem_shm_topology_can_reach(shm, 3, &reach),
                     SM_INVALID_PARAM);
    assert_null(smem_shm_create(9, 2, 0, MIB, SMEMS_DATA_OP_MTE, 0, &gva));
    tk_log_allow_errors(&test_log, false);
    assert_int_equal(smem_shm_register_exit(shm, test_exit), SM_OK);
    smem_shm_global_exit(shm, 5);
    pthread_mutex_lock(&test_exit_lock);
    while (test_exit_status < 0) {
        pthread_cond_wait(&test_exit_cond, &test_exit_lock);
    }
    pthread_mutex_unlock(&test_exit_lock);
    assert_int_equal(test_exit_status, 5);
    assert_int_equal(p[3 * MIB - 1], 0x3c);
    assert_int_equal(smem_shm_destroy(shm, 0), SM_OK);
    smem_shm_uninit(0);
    tk_log_reset(&test_log);
}

/* ------------------------------------------------------------ TRANS */

static void test_trans(void **state)
{
    const size_t n = 2 * MIB;
    smem_trans_config_t cfg;
    smem_trans_t a, b;
    uint8_t *abuf = malloc(n), *bbuf, *c2 = malloc(4096);
    void *addrs[2], *locals[2], *remotes[2];
    const void *clocals[2], *cremotes[2];
    size_t caps[2], sizes[2];

    (void)state;
    assert_int_equal(smem_trans_config_init(&cfg), SM_OK);
    assert_int_equal(cfg.role, SMEM_TRANS_BOTH);
    assert_int_equal(smem_trans_init(&cfg), SM_OK);
    a = smem_trans_create(test_url, "10.9.0.1:100", &cfg);
    b = smem_trans_create(test_url, "10.9.0.2:100", &cfg);
    assert_non_null(a);
    assert_non_null(b);
    bbuf = smem_trans_malloc(b, n); /* b's memory, registered */
    assert_non_null(bbuf);
    addrs[0] = abuf;
    caps[0] = n / 2;
    addrs[1] = abuf + n / 2;
    caps[1] = n / 2;
    assert_int_equal(smem_trans_batch_register_mem(a, addrs, caps, 2, 0),
                     SM_OK);
    assert_int_equal(smem_trans_register_mem(b, c2, 4096, 0), SM_OK);

    tk_pattern_fill(abuf, n, 41, 0);
    assert_int_equal(
        smem_trans_write(a, abuf, "10.9.0.2:100", bbuf + 7, n - 7, 0), SM_OK);
    assert_memory_equal(bbuf + 7, abuf, n - 7);
    memset(abuf, 0, n);
    assert_int_equal(
        smem_trans_read(a, abuf, "10.9.0.2:100", bbuf + 7, n - 7, 0), SM_OK);
    assert_memory_equal(abuf, bbuf + 7, n - 7);
    /* b writes both of a's buffers in one batch, then reads them back */
    tk_pattern_fill(c2, 4096, 42, 0);
    clocals[0] = c2;
    clocals[1] = c2 + 1;
    remotes[0] = abuf + 100;
    remotes[1] = abuf + n / 2 + 100;
    sizes[0] = 4096;
    sizes[1] = 4095;
    assert_int_equal(smem_trans_batch_write(b, clocals, "10.9.0.1:100", remotes,
                                            sizes, 2, 0),
                     SM_OK);
    assert_memory_equal(abuf + n / 2 + 100, c2 + 1, 4095);
    locals[0] = bbuf;
    locals[1] = bbuf + 8192;
    cremotes[0] = abuf + 100;
    cremotes[1] = abuf + n / 2 + 100;
    assert_int_equal(
        smem_trans_batch_read(b, locals, "10.9.0.1:100", cremotes, sizes, 2, 0),
        SM_OK);
    assert_memory_equal(bbuf, c2, 4096);
    assert_memory_equal(bbuf + 8192, c2 + 1, 4095);
    assert_int_equal(
        smem_trans_write_submit(a, abuf, "10.9.0.2:100", bbuf, 64, NULL, 0),
        SM_OK);
    assert_int_equal(
        smem_trans_read_submit(a, abuf, "10.9.0.2:100", bbuf, 64, NULL, 0),
        SM_OK);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(
        smem_trans_read_submit(a, abuf, "10.9.0.2:100", bbuf, 64, (void *)1, 0),
        SM_INVALID_PARAM);
    assert_int_not_equal(smem_trans_read(a, abuf, "nobody:1", bbuf, 64, 0),
                         SM_OK);
    assert_int_equal(
        smem_trans_write(a, abuf, "10.9.0.2:100", c2 + 4096 * 8, 64, 0),
        SM_INVALID_PARAM); /* not registered there */
    assert_null(smem_trans_create(test_url, "10.9.0.1:100", &cfg));
    tk_log_allow_errors(&test_log, false);
    assert_int_equal(smem_trans_deregister_mem(a, abuf), SM_OK);
    assert_int_equal(smem_trans_deregister_mem(a, abuf + n / 2), SM_OK);
    assert_int_equal(smem_trans_free(b, bbuf), SM_OK);
    assert_int_equal(smem_trans_deregister_mem(b, c2), SM_OK);
    smem_trans_destroy(a, 0);
    smem_trans_destroy(b, 0);
    smem_trans_uninit(0);
    free(abuf);
    free(c2);
    tk_log_reset(&test_log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common),
        cmocka_unit_test(test_bm),
        cmocka_unit_test(test_shm),
        cmocka_unit_test(test_trans),
    };

    return tk_group_run(tests, test_setup, test_teardown);
}
