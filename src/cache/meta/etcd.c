/*
 * etcd v3 over its HTTP/JSON gateway (etcd.h): libcurl for the requests,
 * json-c for the bodies.  int64 fields travel as JSON strings, keys and
 * values as base64 (OpenSSL's codec).
 */
#include "cache/meta/etcd.h"
#include "net/tls.h"

#include "util/log.h"
#include "util/misc.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <json.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MMC_ETCD_MAX_BODY (1u << 20)

struct mmc_etcd {
    CURL *curl;
    mf_tls_config_t *tls;             /* https: the client's side; else NULL */
    char tls_password[1024];          /* of its key, "" if none */
    char error[CURL_ERROR_SIZE];      /* curl's reason for the last failure */
    char last[CURL_ERROR_SIZE + 512]; /* that request, for the warning */
    char endpoints[MF_URL_LIST_MAX][280]; /* "http://host:port" */
    size_t n, cur;
    uint32_t timeout_ms;
};

typedef struct mmc_etcd_buf {
    char *data;
    size_t len;
    bool over;
} mmc_etcd_buf_t;

static pthread_once_t mmc_etcd_once = PTHREAD_ONCE_INIT;

static void mmc_etcd_global(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t mmc_etcd_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    mmc_etcd_buf_t *b = arg;
    size_t n = size * nmemb;
    char *grown;

    if (b->len + n > MMC_ETCD_MAX_BODY) {
        b->over = true;
        return 0;
    }
    grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Keeps the client side of https to etcd, from the meta service's
 * tls.* (applied to every request: mmc_etcd_apply_tls). */
static mf_status_t mmc_etcd_tls(mmc_etcd_t *e, const mf_tls_config_t *tls)
{
    if (tls == NULL || !tls->enable) {
        mf_error("etcd: https endpoints need tls.enable (the CA of etcd's "
                 "certificate, this service's certificate and key)");
        return MF_ERR_CONFIG;
    }
    e->tls = malloc(sizeof(*e->tls));
    if (e->tls == NULL) {
        return MF_ERR_NOMEM;
    }
    *e->tls = *tls;
    return mf_tls_key_password(tls, "etcd", e->tls_password,
                               sizeof(e->tls_password));
}

/* The https options of a request (curl_easy_reset cleared them). */
static bool mmc_etcd_apply_tls(mmc_etcd_t *e)
{
    const mf_tls_config_t *tls = e->tls;
    CURLcode rc = CURLE_OK;

    if (tls == NULL) {
        return true;
    }
    if (tls->ca_file[0] != '\0') {
        rc |= curl_easy_setopt(e->curl, CURLOPT_CAINFO, tls->ca_file);
    }
    if (tls->ca_path[0] != '\0') {
        rc |= curl_easy_setopt(e->curl, CURLOPT_CAPATH, tls->ca_path);
    }
    if (tls->crl_file[0] != '\0') {
        rc |= curl_easy_setopt(e->curl, CURLOPT_CRLFILE, tls->crl_file);
    }
    rc |= curl_easy_setopt(e->curl, CURLOPT_SSLCERT, tls->cert_file);
    rc |= curl_easy_setopt(e->curl, CURLOPT_SSLKEY, tls->key_file);
    if (e->tls_password[0] != '\0') {
        rc |= curl_easy_setopt(e->curl, CURLOPT_KEYPASSWD, e->tls_password);
    }
    rc |= curl_easy_setopt(e->curl, CURLOPT_SSLVERSION,
                           strcmp(tls->min_version, "1.3") == 0
                               ? CURL_SSLVERSION_TLSv1_3
                               : CURL_SSLVERSION_TLSv1_2);
    rc |= curl_easy_setopt(e->curl, CURLOPT_SSL_VERIFYPEER, 1L);
    /* as every client of ours: the host's name only with server_name */
    rc |= curl_easy_setopt(e->curl, CURLOPT_SSL_VERIFYHOST,
                           tls->server_name[0] != '\0' ? 2L : 0L);
    if (rc != CURLE_OK) {
        mf_error("etcd: this libcurl cannot do https with client "
                 "certificates");
        return false;
    }
    return true;
}

mf_status_t mmc_etcd_open(const char *endpoints, uint32_t timeout_ms,
                          const mf_tls_config_t *tls, mmc_etcd_t **etcd_p)
{
    const char *p = endpoints;
    bool https = false;
    mmc_etcd_t *e;

    pthread_once(&mmc_etcd_once, mmc_etcd_global);
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return MF_ERR_NOMEM;
    }
    while (p != NULL && *p != '\0' && e->n < MF_URL_LIST_MAX) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (len == 0 || len >= sizeof(e->endpoints[0]) ||
            (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0)) {
            mf_error("etcd: bad endpoint in '%s' (expected http://host:port "
                     "or https://host:port, comma-separated)",
                     endpoints);
            free(e);
            return MF_ERR_CONFIG;
        }
        https |= strncmp(p, "https://", 8) == 0;
        memcpy(e->endpoints[e->n], p, len);
        e->endpoints[e->n++][len] = '\0';
        p = end != NULL ? end + 1 : NULL;
    }
    if (e->n == 0) {
        mf_error("etcd: no endpoint in '%s'", endpoints);
        free(e);
        return MF_ERR_CONFIG;
    }
    e->curl = curl_easy_init();
    if (e->curl == NULL) {
        free(e);
        return MF_ERR_NOMEM;
    }
    if (https) {
        mf_status_t status = mmc_etcd_tls(e, tls);

        if (status != MF_OK) {
            mmc_etcd_close(e);
            return status;
        }
    }
    e->timeout_ms = timeout_ms;
    *etcd_p = e;
    return MF_OK;
}

void mmc_etcd_close(mmc_etcd_t *e)
{
    if (e == NULL) {
        return;
    }
    curl_easy_cleanup(e->curl);
    OPENSSL_cleanse(e->tls_password, sizeof(e->tls_password));
    free(e->tls);
    free(e);
}

/* POSTs body to path on an endpoint that answers; *resp_p the parsed
 * answer (json_object_put it). */
static mf_status_t mmc_etcd_call(mmc_etcd_t *e, const char *path,
                                 json_object *req, json_object **resp_p)
{
    const char *body =
        json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: "
                                                      "application/json");
    mf_status_t status = MF_ERR_IO;
    char url[400];
    long code = 0;

    for (size_t tries = 0; tries < e->n; tries++) {
        mmc_etcd_buf_t b = {0};
        CURLcode rc;

        snprintf(url, sizeof(url), "%s%s", e->endpoints[e->cur], path);
        curl_easy_reset(e->curl);
        curl_easy_setopt(e->curl, CURLOPT_URL, url);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
        curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)e->timeout_ms);
        curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, mmc_etcd_write);
        curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, e->error);
        e->error[0] = '\0';
        if (!mmc_etcd_apply_tls(e)) {
            break;
        }
        rc = curl_easy_perform(e->curl);
        if (rc == CURLE_OK) {
            curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &code);
        }
        if (rc == CURLE_OK && code == 200 && b.data != NULL) {
            *resp_p = json_tokener_parse(b.data);
            status = *resp_p != NULL ? MF_OK : MF_ERR_PROTO;
            if (status != MF_OK) {
                mf_warn("etcd: %s answered what is no JSON", url);
            }
            free(b.data);
            break;
        }
        snprintf(e->last, sizeof(e->last), "%s: %s (HTTP %ld)", url,
                 rc != CURLE_OK
                     ? (e->error[0] != '\0' ? e->error : curl_easy_strerror(rc))
                     : "refused",
                 code);
        mf_debug("etcd: %s", e->last);
        free(b.data);
        e->cur = (e->cur + 1) % e->n;
    }
    curl_slist_free_all(hdrs);
    if (status == MF_ERR_IO) {
        mf_warn("etcd: no endpoint answered %s (the last: %s)", path, e->last);
    }
    return status;
}

/* An int64 field (a JSON string, or a number); def when absent. */
static int64_t mmc_etcd_i64(json_object *o, const char *name, int64_t def)
{
    json_object *v;

    if (o == NULL || !json_object_object_get_ex(o, name, &v)) {
        return def;
    }
    if (json_object_is_type(v, json_type_string)) {
        return strtoll(json_object_get_string(v), NULL, 10);
    }
    return json_object_get_int64(v);
}

static json_object *mmc_etcd_str64(int64_t v)
{
    char s[32];

    snprintf(s, sizeof(s), "%" PRId64, v);
    return json_object_new_string(s);
}

/* s as the base64 JSON string etcd takes for keys and values (OpenSSL's
 * encoder); NULL when out of memory. */
static json_object *mmc_etcd_b64(const char *s)
{
    size_t len = strlen(s);
    unsigned char *out = malloc((len + 2) / 3 * 4 + 1);
    json_object *str;

    if (out == NULL) {
        return NULL;
    }
    (void)EVP_EncodeBlock(out, (const unsigned char *)s, (int)len);
    str = json_object_new_string((const char *)out);
    free(out);
    return str;
}

/* Decodes etcd's base64 in into out (out_len bytes, then terminated):
 * false when it is no base64 or does not fit. */
static bool mmc_etcd_unb64(const char *in, char *out, size_t out_len)
{
    size_t len = strlen(in);
    unsigned char *buf;
    int n;

    if (len % 4 != 0 || len > INT_MAX) {
        return false;
    }
    buf = malloc(len / 4 * 3 + 1);
    if (buf == NULL) {
        return false;
    }
    /* the length of whole groups: padding counts as zero bytes */
    n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
    if (n >= 0 && len > 0 && in[len - 1] == '=') {
        n -= (len > 1 && in[len - 2] == '=') ? 2 : 1;
    }
    if (n < 0 || (size_t)n >= out_len) {
        free(buf);
        return false;
    }
    memcpy(out, buf, (size_t)n);
    out[n] = '\0';
    free(buf);
    return true;
}

/* The decoded value of kvs[0] of a range answer, and its version (puts
 * since its creation; may be NULL); false if none. */
static bool mmc_etcd_kv_value(json_object *range, char *value, size_t value_len,
                              int64_t *version_p)
{
    json_object *kvs, *kv, *v;

    if (!json_object_object_get_ex(range, "kvs", &kvs) ||
        json_object_array_length(kvs) == 0) {
        return false;
    }
    kv = json_object_array_get_idx(kvs, 0);
    if (version_p != NULL) {
        *version_p = mmc_etcd_i64(kv, "version", 0);
    }
    if (value == NULL || value_len == 0) {
        return true;
    }
    if (!json_object_object_get_ex(kv, "value", &v) ||
        !mmc_etcd_unb64(json_object_get_string(v), value, value_len)) {
        value[0] = '\0'; /* none, or not ours */
    }
    return true;
}

mf_status_t mmc_etcd_lease_grant(mmc_etcd_t *e, uint32_t ttl_s, int64_t *id_p)
{
    json_object *req = json_object_new_object(), *resp = NULL;
    mf_status_t status;

    json_object_object_add(req, "TTL", mmc_etcd_str64(ttl_s));
    status = mmc_etcd_call(e, "/v3/lease/grant", req, &resp);
    json_object_put(req);
    if (status == MF_OK) {
        *id_p = mmc_etcd_i64(resp, "ID", 0);
        status = *id_p != 0 ? MF_OK : MF_ERR_PROTO;
    }
    json_object_put(resp);
    return status;
}

mf_status_t mmc_etcd_lease_keepalive(mmc_etcd_t *e, int64_t id, int64_t *ttl_p)
{
    json_object *req = json_object_new_object(), *resp = NULL, *result;
    mf_status_t status;

    json_object_object_add(req, "ID", mmc_etcd_str64(id));
    status = mmc_etcd_call(e, "/v3/lease/keepalive", req, &resp);
    json_object_put(req);
    if (status == MF_OK) {
        /* a stream answer: {"result": {..., "TTL": "n"}}; no TTL: gone */
        if (!json_object_object_get_ex(resp, "result", &result)) {
            result = resp;
        }
        *ttl_p = mmc_etcd_i64(result, "TTL", 0);
    }
    json_object_put(resp);
    return status;
}

mf_status_t mmc_etcd_lease_revoke(mmc_etcd_t *e, int64_t id)
{
    json_object *req = json_object_new_object(), *resp = NULL;
    mf_status_t status;

    json_object_object_add(req, "ID", mmc_etcd_str64(id));
    status = mmc_etcd_call(e, "/v3/lease/revoke", req, &resp);
    json_object_put(req);
    json_object_put(resp);
    return status;
}

mf_status_t mmc_etcd_create(mmc_etcd_t *e, const char *key, const char *value,
                            int64_t lease, const char *bump, bool *won_p,
                            int64_t *rev_p, char *holder, size_t holder_len)
{
    json_object *req = json_object_new_object(), *resp = NULL;
    json_object *cmp = json_object_new_object(),
                *put = json_object_new_object();
    json_object *rng = json_object_new_object(), *op, *arr, *v, *hdr, *r0;
    mf_status_t status;

    json_object_object_add(cmp, "key", mmc_etcd_b64(key));
    json_object_object_add(cmp, "target", json_object_new_string("CREATE"));
    json_object_object_add(cmp, "create_revision", mmc_etcd_str64(0));
    arr = json_object_new_array();
    json_object_array_add(arr, cmp);
    json_object_object_add(req, "compare", arr);

    json_object_object_add(put, "key", mmc_etcd_b64(key));
    json_object_object_add(put, "value", mmc_etcd_b64(value));
    json_object_object_add(put, "lease", mmc_etcd_str64(lease));
    op = json_object_new_object();
    json_object_object_add(op, "request_put", put);
    arr = json_object_new_array();
    json_object_array_add(arr, op);
    if (bump != NULL) { /* no lease: it outlives every holder */
        put = json_object_new_object();
        json_object_object_add(put, "key", mmc_etcd_b64(bump));
        op = json_object_new_object();
        json_object_object_add(op, "request_put", put);
        json_object_array_add(arr, op);
    }
    json_object_object_add(req, "success", arr);

    json_object_object_add(rng, "key", mmc_etcd_b64(key));
    op = json_object_new_object();
    json_object_object_add(op, "request_range", rng);
    arr = json_object_new_array();
    json_object_array_add(arr, op);
    json_object_object_add(req, "failure", arr);

    status = mmc_etcd_call(e, "/v3/kv/txn", req, &resp);
    json_object_put(req);
    if (status != MF_OK) {
        return status;
    }
    *won_p = json_object_object_get_ex(resp, "succeeded", &v) &&
             json_object_get_boolean(v);
    *rev_p = json_object_object_get_ex(resp, "header", &hdr)
                 ? mmc_etcd_i64(hdr, "revision", 0)
                 : 0;
    if (!*won_p && holder != NULL && holder_len > 0) {
        holder[0] = '\0';
        if (json_object_object_get_ex(resp, "responses", &arr) &&
            json_object_array_length(arr) > 0 &&
            json_object_object_get_ex(json_object_array_get_idx(arr, 0),
                                      "response_range", &r0)) {
            (void)mmc_etcd_kv_value(r0, holder, holder_len, NULL);
        }
    }
    json_object_put(resp);
    return MF_OK;
}

mf_status_t mmc_etcd_get(mmc_etcd_t *e, const char *key, bool *found_p,
                         char *value, size_t value_len, int64_t *version_p)
{
    json_object *req = json_object_new_object(), *resp = NULL;
    mf_status_t status;

    json_object_object_add(req, "key", mmc_etcd_b64(key));
    status = mmc_etcd_call(e, "/v3/kv/range", req, &resp);
    json_object_put(req);
    if (status == MF_OK) {
        *found_p = mmc_etcd_kv_value(resp, value, value_len, version_p);
    }
    json_object_put(resp);
    return status;
}
