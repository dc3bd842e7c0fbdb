/*
 * TLS on the net layer (net/tls.h) with certificates the test makes
 * itself (tk_tls): a TLS echo server on 127.0.0.1 and clients that
 * should get through (the pool's certificate, an encrypted key by
 * password file or decrypter library, the server's name checked) and
 * clients that must not (a certificate of another CA, none, an expired
 * or revoked one, plaintext, the wrong server name).  Each refusal is
 * logged with its reason by the server, and the server goes on serving
 * the others.  Contexts that must not be built (expired certificate,
 * missing or wrong password, bad settings) fail at once, naming why.
 * Expired and revoked client certificates are presented by the openssl
 * command line, as our own contexts refuse to load an expired one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"
#include "tk_proc.h"
#include "tk_tls.h"

#include "net/net.h"
#include "net/tls.h"
#include "util/config.h"
#include "util/misc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_OP_ECHO 1
#define TEST_CALL_MS 10000
#define TEST_WAIT_MS 10000
#define TEST_BIG     (1u << 20)

typedef struct test_cfg {
    mf_tls_config_t tls;
} test_cfg_t;

static const mf_cfg_entry_t test_cfg_entries[] = {
    MF_TLS_CFG_ENTRIES(test_cfg_t, tls),
};

static const mf_cfg_table_t test_cfg_table = {
    .component = "test",
    .env_prefix = NULL,
    .entries = test_cfg_entries,
    .count = MF_CFG_COUNT(test_cfg_entries),
};

static tk_tls_t test_certs;
static tk_log_t test_log;
static mf_tls_t *test_srv_tls;
static mf_net_server_t *test_srv;
static uint16_t test_port;

/* The defaults of the tls.* keys, on, with cert and key (names of files
 * in the certificate directory; key NULL: cert's own .key). */
static void test_cfg(test_cfg_t *cfg, const char *cert, const char *key)
{
    char name[64];

    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(mf_cfg_set_defaults(&test_cfg_table, cfg), MF_OK);
    assert_int_equal(mf_cfg_set(&test_cfg_table, cfg, "tls.enable", "yes"),
                     MF_OK);
    assert_int_equal(mf_cfg_set(&test_cfg_table, cfg, "tls.ca_file",
                                tk_tls_path(&test_certs, "ca.pem")),
                     MF_OK);
    snprintf(name, sizeof(name), "%s.pem", cert);
    mf_strlcpy(cfg->tls.cert_file, tk_tls_path(&test_certs, name),
               sizeof(cfg->tls.cert_file));
    snprintf(name, sizeof(name), "%s.key", cert);
    mf_strlcpy(cfg->tls.key_file,
               tk_tls_path(&test_certs, key != NULL ? key : name),
               sizeof(cfg->tls.key_file));
}

static void test_echo(mf_net_conn_t *conn, uint16_t opcode, uint64_t req_id,
                      const uint8_t *body, size_t len, void *arg)
{
    (void)arg;
    mf_net_conn_reply(conn, req_id, opcode, MF_OK, body, len);
}

static const mf_net_server_ops_t test_srv_ops = {.on_request = test_echo};

static mf_net_server_t *test_server(const mf_net_stream_ops_t *stream,
                                    uint16_t *port_p)
{
    mf_net_server_params_t params = {
        .host = "127.0.0.1",
        .ops = &test_srv_ops,
        .untrusted_max_body = 2 * TEST_BIG,
        .stream = stream,
    };
    mf_net_server_t *server = NULL;

    assert_int_equal(mf_net_server_start(&params, &server), MF_OK);
    *port_p = mf_net_server_port(server);
    return server;
}

/* One echo of len bytes from a client over stream (NULL: plain) to
 * port: the call's status (MF_OK only when the bytes came back). */
static mf_status_t test_call(const mf_net_stream_ops_t *stream, uint16_t port,
                             size_t len)
{
    mf_net_client_params_t params = {
        .host = "127.0.0.1",
        .port = port,
        .stream = stream,
    };
    mf_net_client_t *client = NULL;
    mf_net_resp_t resp = {0};
    uint8_t *body = malloc(len);
    mf_status_t status;

    assert_non_null(body);
    for (size_t i = 0; i < len; i++) {
        body[i] = (uint8_t)(i * 7 + 3);
    }
    status = mf_net_client_create(&params, &client);
    if (status == MF_OK) {
        status = mf_net_client_call(client, TEST_OP_ECHO, body, len,
                                    TEST_CALL_MS, &resp);
        if (status == MF_OK && (resp.status != MF_OK || resp.len != len ||
                                memcmp(resp.body, body, len) != 0)) {
            status = MF_ERR_PROTO;
        }
        mf_net_resp_free(&resp);
        mf_net_client_destroy(client);
    }
    free(body);
    return status;
}

/* A client of cfg to the test server: the call's status. */
static mf_status_t test_client(const test_cfg_t *cfg)
{
    mf_tls_t *tls = NULL;
    mf_status_t status;

    assert_int_equal(mf_tls_create(&cfg->tls, false, "test client", &tls),
                     MF_OK);
    status = test_call(mf_tls_stream(tls), test_port, 100);
    mf_tls_destroy(tls);
    return status;
}

/* Waits until the server logged a refusal containing reason. */
static bool test_refused(const char *reason)
{
    uint64_t deadline = mf_time_ms() + TEST_WAIT_MS;

    while (mf_time_ms() < deadline) {
        if (tk_log_find(&test_log, "refused 127.0.0.1:") &&
            tk_log_find(&test_log, reason)) {
            return true;
        }
        tk_sleep_ms(10);
    }
    tk_print("no refusal for '%s'; last message: %s", reason,
             tk_log_last(&test_log));
    return false;
}

/* The pool's own client still gets through. */
static void test_still_serving(void)
{
    test_cfg_t cfg;

    test_cfg(&cfg, "client", NULL);
    assert_int_equal(test_client(&cfg), MF_OK);
}

/* ------------------------------------------------------------- tests */

static void test_mutual(void **state)
{
    test_cfg_t cfg;
    mf_tls_t *tls;

    (void)state;
    test_cfg(&cfg, "client", NULL);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_OK);
    /* frames far larger than a TLS record, both ways */
    assert_int_equal(test_call(mf_tls_stream(tls), test_port, 100), MF_OK);
    assert_int_equal(test_call(mf_tls_stream(tls), test_port, TEST_BIG), MF_OK);
    mf_tls_destroy(tls);
    /* TLS 1.3 only, on the client's side */
    mf_strlcpy(cfg.tls.min_version, "1.3", sizeof(cfg.tls.min_version));
    assert_int_equal(test_client(&cfg), MF_OK);
}

static void test_other_ca(void **state)
{
    test_cfg_t cfg;

    (void)state;
    test_cfg(&cfg, "stranger", NULL);
    tk_log_reset(&test_log);
    assert_int_not_equal(test_client(&cfg), MF_OK);
    assert_true(test_refused("unable to get local issuer certificate"));
    test_still_serving();
}

static void test_no_certificate(void **state)
{
    char cmd[512];

    (void)state;
    /* a client that presents nothing (ours always present one) */
    tk_log_reset(&test_log);
    snprintf(cmd, sizeof(cmd),
             "timeout 10 openssl s_client -connect 127.0.0.1:%u -CAfile %s "
             "</dev/null >/dev/null 2>&1",
             test_port, tk_tls_path(&test_certs, "ca.pem"));
    (void)system(cmd);
    assert_true(test_refused("peer did not return a certificate"));
    test_still_serving();
}

/* openssl s_client presents cert to the server: its refusal's reason. */
static void test_s_client(const char *cert, const char *reason)
{
    char cmd[768];

    tk_log_reset(&test_log);
    snprintf(cmd, sizeof(cmd),
             "timeout 10 openssl s_client -connect 127.0.0.1:%u -cert %s "
             "-key %s -CAfile %s </dev/null >/dev/null 2>&1",
             test_port, tk_tls_path(&test_certs, cert),
             tk_tls_path(&test_certs, strcmp(cert, "expired.pem") == 0
                                          ? "expired.key"
                                          : "revoked.key"),
             tk_tls_path(&test_certs, "ca.pem"));
    (void)system(cmd);
    assert_true(test_refused(reason));
    test_still_serving();
}

static void test_expired_peer(void **state)
{
    (void)state;
    test_s_client("expired.pem", "certificate has expired");
}

static void test_revoked_peer(void **state)
{
    test_cfg_t cfg;
    mf_net_server_t *server;
    mf_tls_t *tls;
    uint16_t port, saved = test_port;

    (void)state;
    /* a server with the CRL: the revoked certificate is refused, the
     * others are not */
    test_cfg(&cfg, "server", NULL);
    mf_strlcpy(cfg.tls.crl_file, tk_tls_path(&test_certs, "crl.pem"),
               sizeof(cfg.tls.crl_file));
    assert_int_equal(mf_tls_create(&cfg.tls, true, "crl server", &tls), MF_OK);
    server = test_server(mf_tls_stream(tls), &port);
    test_port = port;
    test_s_client("revoked.pem", "certificate revoked");
    test_port = saved;
    mf_net_server_stop(server);
    mf_tls_destroy(tls);
}

static void test_plaintext(void **state)
{
    test_cfg_t cfg;
    mf_net_server_t *plain;
    mf_tls_t *tls;
    uint16_t port;

    (void)state;
    /* a plaintext client on the TLS port */
    tk_log_reset(&test_log);
    assert_int_not_equal(test_call(NULL, test_port, 100), MF_OK);
    assert_true(test_refused("TLS: "));
    test_still_serving();

    /* a TLS client to a plaintext server: refused by the frame check */
    plain = test_server(NULL, &port);
    test_cfg(&cfg, "client", NULL);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_OK);
    tk_log_reset(&test_log);
    assert_int_not_equal(test_call(mf_tls_stream(tls), port, 100), MF_OK);
    assert_true(tk_log_find(&test_log, "bad frame header"));
    mf_tls_destroy(tls);
    mf_net_server_stop(plain);
}

static void test_server_name(void **state)
{
    test_cfg_t cfg;

    (void)state;
    test_cfg(&cfg, "client", NULL);
    mf_strlcpy(cfg.tls.server_name, "127.0.0.1", sizeof(cfg.tls.server_name));
    assert_int_equal(test_client(&cfg), MF_OK);
    mf_strlcpy(cfg.tls.server_name, "localhost", sizeof(cfg.tls.server_name));
    assert_int_equal(test_client(&cfg), MF_OK);
    /* a certificate of the pool, but not of that server */
    mf_strlcpy(cfg.tls.server_name, "10.1.2.3", sizeof(cfg.tls.server_name));
    tk_log_reset(&test_log);
    assert_int_not_equal(test_client(&cfg), MF_OK);
    assert_true(tk_log_find(&test_log, "IP address mismatch"));
    test_still_serving();
}

static void test_encrypted_key(void **state)
{
    char cipher[128];
    test_cfg_t cfg;
    mf_tls_t *tls = NULL;

    (void)state;
    test_cfg(&cfg, "client", "client_enc.key");
    /* no password: refused, naming why */
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "cannot read the private key"));
    tk_log_allow_errors(&test_log, false);

    /* its password from a file */
    mf_strlcpy(cfg.tls.key_password_file,
               tk_tls_path(&test_certs, "password.txt"),
               sizeof(cfg.tls.key_password_file));
    assert_int_equal(test_client(&cfg), MF_OK);

    /* a wrong one */
    assert_int_equal(tk_tls_write(&test_certs, "wrong.txt", "not-it\n"), 0);
    mf_strlcpy(cfg.tls.key_password_file, tk_tls_path(&test_certs, "wrong.txt"),
               sizeof(cfg.tls.key_password_file));
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_ERR_CONFIG);
    tk_log_allow_errors(&test_log, false);

    /* encrypted, and decrypted by the operator's library */
    tk_tls_cipher("Tk-pass-1234", cipher, sizeof(cipher));
    assert_int_equal(tk_tls_write(&test_certs, "password.enc", cipher), 0);
    mf_strlcpy(cfg.tls.key_password_file,
               tk_tls_path(&test_certs, "password.enc"),
               sizeof(cfg.tls.key_password_file));
    mf_strlcpy(cfg.tls.decrypter_lib, TK_DECRYPTER_LIB,
               sizeof(cfg.tls.decrypter_lib));
    assert_int_equal(test_client(&cfg), MF_OK);

    /* the library fails: refused */
    assert_int_equal(tk_tls_write(&test_certs, "garbage.enc", "xyz"), 0);
    mf_strlcpy(cfg.tls.key_password_file,
               tk_tls_path(&test_certs, "garbage.enc"),
               sizeof(cfg.tls.key_password_file));
    tk_log_reset(&test_log);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "DecryptPassword() of"));
    /* a library without the function, or none at all */
    mf_strlcpy(cfg.tls.decrypter_lib, "libm.so.6",
               sizeof(cfg.tls.decrypter_lib));
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "has no DecryptPassword()"));
    mf_strlcpy(cfg.tls.decrypter_lib, "/nonexistent/libdecrypt.so",
               sizeof(cfg.tls.decrypter_lib));
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "cannot load tls.decrypter_lib"));
    tk_log_allow_errors(&test_log, false);
}

static void test_own_certificate(void **state)
{
    test_cfg_t cfg;
    mf_tls_t *tls = NULL;

    (void)state;
    /* expired: refused when the context is built */
    test_cfg(&cfg, "expired", NULL);
    tk_log_reset(&test_log);
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_tls_create(&cfg.tls, true, "test server", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "has expired"));
    tk_log_allow_errors(&test_log, false);

    /* expires in 10 days: a warning (30 days ahead), and it works */
    test_cfg(&cfg, "soon", NULL);
    tk_log_reset(&test_log);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_OK);
    assert_true(tk_log_find(&test_log, "expires in"));
    assert_true(mf_tls_check_expiry(tls) >= 9);
    assert_int_equal(test_call(mf_tls_stream(tls), test_port, 100), MF_OK);
    mf_tls_destroy(tls);
    cfg.tls.expiry_warn_days = 5;
    tk_log_reset(&test_log);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_OK);
    assert_false(tk_log_find(&test_log, "expires in"));
    mf_tls_destroy(tls);

    /* a key that is not the certificate's */
    test_cfg(&cfg, "client", "server.key");
    tk_log_allow_errors(&test_log, true);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test client", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "does not match"));
    tk_log_allow_errors(&test_log, false);
}

static void test_settings(void **state)
{
    test_cfg_t cfg;
    mf_tls_t *tls = NULL;

    (void)state;
    tk_log_allow_errors(&test_log, true);
    test_cfg(&cfg, "client", NULL);
    cfg.tls.ca_file[0] = '\0';
    assert_int_equal(mf_tls_config_check(&cfg.tls, "test"), MF_ERR_CONFIG);
    test_cfg(&cfg, "client", NULL);
    cfg.tls.key_file[0] = '\0';
    assert_int_equal(mf_tls_config_check(&cfg.tls, "test"), MF_ERR_CONFIG);
    test_cfg(&cfg, "client", NULL);
    assert_int_equal(
        mf_cfg_set(&test_cfg_table, &cfg, "tls.min_version", "1.1"), MF_OK);
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test", &tls),
                     MF_ERR_CONFIG);
    test_cfg(&cfg, "client", NULL);
    mf_strlcpy(cfg.tls.ciphers, "NO-SUCH-CIPHER", sizeof(cfg.tls.ciphers));
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test", &tls),
                     MF_ERR_CONFIG);
    test_cfg(&cfg, "client", NULL);
    mf_strlcpy(cfg.tls.ca_file, "/nonexistent/ca.pem", sizeof(cfg.tls.ca_file));
    assert_int_equal(mf_tls_create(&cfg.tls, false, "test", &tls),
                     MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "cannot load the CA"));
    test_cfg(&cfg, "client", NULL);
    mf_strlcpy(cfg.tls.decrypter_lib, TK_DECRYPTER_LIB,
               sizeof(cfg.tls.decrypter_lib));
    assert_int_equal(mf_tls_config_check(&cfg.tls, "test"), MF_ERR_CONFIG);
    tk_log_allow_errors(&test_log, false);
}

/* ------------------------------------------------------------- main */

/* Certificates, the server, and one handshake ahead of the group: what
 * OpenSSL sets up once per process (error strings, algorithm caches) is
 * in place before the group's heap is measured. */
static int test_start(void)
{
    test_cfg_t cfg;

    tk_log_start(&test_log, 0);
    if (tk_tls_make(&test_certs) != 0) {
        return -1;
    }
    test_cfg(&cfg, "server", NULL);
    if (mf_tls_create(&cfg.tls, true, "test server", &test_srv_tls) != MF_OK) {
        return -1;
    }
    test_srv = test_server(mf_tls_stream(test_srv_tls), &test_port);
    test_cfg(&cfg, "client", NULL);
    return test_client(&cfg) == MF_OK ? 0 : -1;
}

/* The group's end: the server and the connections it still holds (a
 * client's close may not have reached it yet) go before the group's
 * descriptors and heap are compared. */
static int test_group_teardown(void **state)
{
    (void)state;
    mf_net_server_stop(test_srv);
    mf_tls_destroy(test_srv_tls);
    test_srv = NULL;
    test_srv_tls = NULL;
    return 0;
}

static int test_stop(void)
{
    int ret;

    mf_net_server_stop(test_srv);
    mf_tls_destroy(test_srv_tls);
    tk_tls_remove(&test_certs);
    ret = tk_log_check_clean(&test_log);
    tk_log_stop(&test_log);
    return ret;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual),
        cmocka_unit_test(test_other_ca),
        cmocka_unit_test(test_no_certificate),
        cmocka_unit_test(test_expired_peer),
        cmocka_unit_test(test_revoked_peer),
        cmocka_unit_test(test_plaintext),
        cmocka_unit_test(test_server_name),
        cmocka_unit_test(test_encrypted_key),
        cmocka_unit_test(test_own_certificate),
        cmocka_unit_test(test_settings),
    };

    int failed;

    if (test_start() != 0) {
        tk_print("cannot set the TLS server up");
        return 1;
    }
    failed = tk_group_run(tests, NULL, test_group_teardown);
    return test_stop() != 0 ? 1 : failed;
}
