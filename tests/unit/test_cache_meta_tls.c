/*
 * The meta service with tls.enable (certificates made by the test,
 * tk_tls): its three ports speak TLS with client certificates.  The RPC
 * and config store ports answer a client of the pool's CA and refuse a
 * plaintext one, logging why, and keep serving; HTTP is https, which a
 * client without a certificate cannot read; http_addr binds it apart.
 * A service whose TLS settings are wrong does not start.
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

#include "cache/meta/meta.h"
#include "cache/proto/proto.h"
#include "net/net.h"
#include "net/tls.h"
#include "store/store_proto.h"
#include "util/misc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#define TEST_CALL_MS 10000
#define TEST_WAIT_MS 10000

static tk_tls_t test_certs;
static tk_log_t test_log;

static void test_set(mmc_meta_config_t *cfg, const char *key, const char *value)
{
    assert_int_equal(mmc_meta_config_set(cfg, key, value), MF_OK);
}

static void test_meta_config(mmc_meta_config_t *cfg)
{
    mmc_meta_config_init(cfg);
    test_set(cfg, "addr", "127.0.0.1");
    test_set(cfg, "port", "0");
    test_set(cfg, "store_port", "0");
    test_set(cfg, "http_port", "0");
    test_set(cfg, "max_segment_size", "64M");
    test_set(cfg, "tls.enable", "true");
    test_set(cfg, "tls.ca_file", tk_tls_path(&test_certs, "ca.pem"));
    test_set(cfg, "tls.cert_file", tk_tls_path(&test_certs, "server.pem"));
    test_set(cfg, "tls.key_file", tk_tls_path(&test_certs, "server.key"));
}

/* One request with an empty body to port over stream (NULL: plain):
 * MF_OK when any response came back. */
static mf_status_t test_call(const mf_net_stream_ops_t *stream, uint16_t port,
                             uint16_t opcode)
{
    mf_net_client_params_t params = {
        .host = "127.0.0.1",
        .port = port,
        .stream = stream,
    };
    mf_net_client_t *client = NULL;
    mf_net_resp_t resp = {0};
    mf_status_t status;

    status = mf_net_client_create(&params, &client);
    if (status == MF_OK) {
        status =
            mf_net_client_call(client, opcode, NULL, 0, TEST_CALL_MS, &resp);
        mf_net_resp_free(&resp);
        mf_net_client_destroy(client);
    }
    return status;
}

static bool test_refused(void)
{
    uint64_t deadline = mf_time_ms() + TEST_WAIT_MS;

    while (mf_time_ms() < deadline) {
        if (tk_log_find(&test_log, "refused 127.0.0.1:")) {
            return true;
        }
        tk_sleep_ms(10);
    }
    return false;
}

static size_t test_curl_sink(char *data, size_t size, size_t n, void *arg)
{
    char *body = arg;
    size_t len = strlen(body);

    (void)data;
    snprintf(body + len, 256 - len, "%.*s", (int)(size * n), data);
    return size * n;
}

/* GET https://127.0.0.1:port/health, with the client's certificate or
 * none: the HTTP status, 0 when no answer came. */
static long test_https(uint16_t port, bool with_cert)
{
    char url[64], body[256] = "";
    long code = 0;
    CURL *curl = curl_easy_init();

    assert_non_null(curl);
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/health", port);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, tk_tls_path(&test_certs, "ca.pem"));
    if (with_cert) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT,
                         tk_tls_path(&test_certs, "client.pem"));
        curl_easy_setopt(curl, CURLOPT_SSLKEY,
                         tk_tls_path(&test_certs, "client.key"));
    }
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)TEST_CALL_MS);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, test_curl_sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(curl);
    return code;
}

static void test_ports(void **state)
{
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    mf_tls_t *tls = NULL;

    (void)state;
    test_meta_config(&cfg);
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_OK);

    /* a client of the pool: TLS with its certificate */
    {
        mf_tls_config_t client = cfg.tls;

        mf_strlcpy(client.cert_file, tk_tls_path(&test_certs, "client.pem"),
                   sizeof(client.cert_file));
        mf_strlcpy(client.key_file, tk_tls_path(&test_certs, "client.key"),
                   sizeof(client.key_file));
        assert_int_equal(mf_tls_create(&client, false, "test client", &tls),
                         MF_OK);
    }
    assert_int_equal(
        test_call(mf_tls_stream(tls), mmc_meta_port(meta), MMC_OP_PING), MF_OK);
    assert_int_equal(test_call(mf_tls_stream(tls), mmc_meta_store_port(meta),
                               MF_STORE_OP_HEARTBEAT),
                     MF_OK);

    /* plaintext: refused on both, which go on serving */
    tk_log_reset(&test_log);
    assert_int_not_equal(test_call(NULL, mmc_meta_port(meta), MMC_OP_PING),
                         MF_OK);
    assert_true(test_refused());
    tk_log_reset(&test_log);
    assert_int_not_equal(
        test_call(NULL, mmc_meta_store_port(meta), MF_STORE_OP_HEARTBEAT),
        MF_OK);
    assert_true(test_refused());
    assert_int_equal(
        test_call(mf_tls_stream(tls), mmc_meta_port(meta), MMC_OP_PING), MF_OK);

    /* https, for a client with a certificate only */
    assert_int_equal(test_https(mmc_meta_http_port(meta), true), 200);
    assert_int_equal(test_https(mmc_meta_http_port(meta), false), 0);
    assert_int_equal(test_https(mmc_meta_http_port(meta), true), 200);

    mf_tls_destroy(tls);
    mmc_meta_stop(meta);
}

static void test_bad_settings(void **state)
{
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;

    (void)state;
    tk_log_allow_errors(&test_log, true);
    /* no CA: the check names it */
    test_meta_config(&cfg);
    cfg.tls.ca_file[0] = '\0';
    assert_int_equal(mmc_meta_config_check(&cfg), MF_ERR_CONFIG);
    assert_true(tk_log_find(&test_log, "tls.ca_file"));
    /* an expired certificate: the service does not start */
    test_meta_config(&cfg);
    test_set(&cfg, "tls.cert_file", tk_tls_path(&test_certs, "expired.pem"));
    test_set(&cfg, "tls.key_file", tk_tls_path(&test_certs, "expired.key"));
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_ERR_CONFIG);
    assert_null(meta);
    /* an HTTP address that is not one */
    test_meta_config(&cfg);
    test_set(&cfg, "http_addr", "no-such-address");
    assert_int_not_equal(mmc_meta_start(&cfg, &meta), MF_OK);
    tk_log_allow_errors(&test_log, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_bad_settings),
    };
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    int failed;

    tk_log_start(&test_log, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (tk_tls_make(&test_certs) != 0) {
        return 1;
    }
    /* OpenSSL's and libcurl's set-up once per process, ahead of the
     * group's heap measure */
    test_meta_config(&cfg);
    if (mmc_meta_start(&cfg, &meta) != MF_OK) {
        return 1;
    }
    (void)test_https(mmc_meta_http_port(meta), true);
    mmc_meta_stop(meta);

    failed = tk_group_run(tests, NULL, NULL);
    tk_tls_remove(&test_certs);
    curl_global_cleanup();
    if (tk_log_check_clean(&test_log) != 0) {
        failed++;
    }
    tk_log_stop(&test_log);
    return failed;
}
