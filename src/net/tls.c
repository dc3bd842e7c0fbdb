/*
 * TLS contexts and OpenSSL bufferevent streams (tls.h).
 *
 * Everything that can be wrong with the files (a missing CA, a key that
 * does not match its certificate, a wrong password, an expired
 * certificate) is found when the context is built, so a daemon refuses
 * to start rather than failing each connection.  What goes wrong with a
 * peer (its certificate not signed by our CA, revoked or expired, none at
 * all, plaintext on a TLS port) fails that connection's handshake: the
 * stream's why() gives the event callbacks of net/ OpenSSL's reason, and
 * the verify result, for a log line that says what was refused.
 */
#include "net/tls.h"
#include "net/net_int.h"
#include "util/log.h"
#include "util/misc.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define MF_TLS_PASSWORD_MAX    1024
#define MF_TLS_DECRYPT_SYMBOL  "DecryptPassword"
#define MF_TLS_SESSION_CONTEXT "memfabric"

typedef int (*mf_tls_decrypt_fn)(const char *cipher, size_t cipher_len,
                                 char *plain, size_t *plain_len);

/* A running process checks its certificate again at most this often,
 * when it opens a connection. */
#define MF_TLS_RECHECK_MS (24ull * 3600 * 1000)

struct mf_tls {
    SSL_CTX *ctx;
    uint32_t warn_days;
    atomic_uint_least64_t next_check_ms; /* of the certificate's expiry */
    char who[48];
    char server_name[256];
    mf_net_stream_ops_t stream;
};

/* OpenSSL's queued errors, the last one's reason into buf; the queue is
 * emptied. */
static const char *mf_tls_ssl_error(char *buf, size_t len)
{
    unsigned long err, last = 0;

    while ((err = ERR_get_error()) != 0) {
        last = err;
    }
    if (last == 0) {
        snprintf(buf, len, "no reason given");
    } else {
        ERR_error_string_n(last, buf, len);
    }
    return buf;
}

/* A file the key's secret is in should be the owner's alone. */
static void mf_tls_warn_if_shared(const char *who, const char *key,
                                  const char *path)
{
    struct stat st;

    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        mf_warn("%s: tls.%s %s can be read by others (mode %03o): make it "
                "the owner's alone (chmod 600)",
                who, key, path, (unsigned)(st.st_mode & 0777));
    }
}

/* The content of tls.key_password_file into buf (NUL-terminated, the
 * trailing line end dropped): its length, or -1 (logged). */
static long mf_tls_read_secret(const char *who, const char *path, char *buf,
                               size_t len)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        mf_error("%s: cannot open tls.key_password_file %s: %s", who, path,
                 strerror(errno));
        return -1;
    }
    n = fread(buf, 1, len - 1, f);
    if (ferror(f) || !feof(f)) {
        mf_error("%s: cannot read tls.key_password_file %s%s", who, path,
                 ferror(f) ? "" : ": larger than 1 KiB");
        fclose(f);
        OPENSSL_cleanse(buf, len);
        return -1;
    }
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    buf[n] = '\0';
    return (long)n;
}

/* The key's password: the file's content, decrypted by the operator's
 * library when tls.decrypter_lib is set.  0, or -1 (logged). */
static int mf_tls_password(const mf_tls_config_t *cfg, const char *who,
                           char *out, size_t out_len)
{
    char cipher[MF_TLS_PASSWORD_MAX];
    mf_tls_decrypt_fn decrypt;
    size_t plain_len = out_len - 1;
    long cipher_len;
    void *lib;
    int ret;

    mf_tls_warn_if_shared(who, "key_password_file", cfg->key_password_file);
    if (cfg->decrypter_lib[0] == '\0') {
        return mf_tls_read_secret(who, cfg->key_password_file, out, out_len) < 0
                   ? -1
                   : 0;
    }
    cipher_len =
        mf_tls_read_secret(who, cfg->key_password_file, cipher, sizeof(cipher));
    if (cipher_len < 0) {
        return -1;
    }
    lib = dlopen(cfg->decrypter_lib, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        mf_error("%s: cannot load tls.decrypter_lib: %s", who, dlerror());
        OPENSSL_cleanse(cipher, sizeof(cipher));
        return -1;
    }
    decrypt = (mf_tls_decrypt_fn)dlsym(lib, MF_TLS_DECRYPT_SYMBOL);
    if (decrypt == NULL) {
        mf_error("%s: tls.decrypter_lib %s has no %s()", who,
                 cfg->decrypter_lib, MF_TLS_DECRYPT_SYMBOL);
        dlclose(lib);
        OPENSSL_cleanse(cipher, sizeof(cipher));
        return -1;
    }
    ret = decrypt(cipher, (size_t)cipher_len, out, &plain_len);
    OPENSSL_cleanse(cipher, sizeof(cipher));
    dlclose(lib);
    if (ret != 0 || plain_len >= out_len) {
        mf_error("%s: %s() of tls.decrypter_lib %s failed (%d%s)", who,
                 MF_TLS_DECRYPT_SYMBOL, cfg->decrypter_lib, ret,
                 ret == 0 ? ", a password longer than its room" : "");
        OPENSSL_cleanse(out, out_len);
        return -1;
    }
    out[plain_len] = '\0';
    return 0;
}

mf_status_t mf_tls_key_password(const mf_tls_config_t *cfg, const char *who,
                                char *out, size_t len)
{
    out[0] = '\0';
    if (cfg->key_password_file[0] == '\0') {
        return MF_OK;
    }
    return mf_tls_password(cfg, who, out, len) == 0 ? MF_OK : MF_ERR_CONFIG;
}

static mf_status_t mf_tls_load_key(SSL_CTX *ctx, const mf_tls_config_t *cfg,
                                   const char *who)
{
    char password[MF_TLS_PASSWORD_MAX] = "";
    char why[256];
    EVP_PKEY *pkey;
    BIO *bio;

    mf_tls_warn_if_shared(who, "key_file", cfg->key_file);
    if (cfg->key_password_file[0] != '\0' &&
        mf_tls_password(cfg, who, password, sizeof(password)) != 0) {
        return MF_ERR_CONFIG;
    }
    bio = BIO_new_file(cfg->key_file, "r");
    if (bio == NULL) {
        mf_error("%s: cannot open tls.key_file %s: %s", who, cfg->key_file,
                 mf_tls_ssl_error(why, sizeof(why)));
        OPENSSL_cleanse(password, sizeof(password));
        return MF_ERR_CONFIG;
    }
    /* with no password given, an encrypted key fails (no prompt) */
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, password);
    OPENSSL_cleanse(password, sizeof(password));
    BIO_free(bio);
    if (pkey == NULL) {
        mf_error("%s: cannot read the private key %s (encrypted without its "
                 "password, or a wrong one?): %s",
                 who, cfg->key_file, mf_tls_ssl_error(why, sizeof(why)));
        return MF_ERR_CONFIG;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        mf_error("%s: tls.key_file %s does not match tls.cert_file %s: %s", who,
                 cfg->key_file, cfg->cert_file,
                 mf_tls_ssl_error(why, sizeof(why)));
        EVP_PKEY_free(pkey);
        return MF_ERR_CONFIG;
    }
    EVP_PKEY_free(pkey);
    return MF_OK;
}

static mf_status_t mf_tls_load_trust(SSL_CTX *ctx, const mf_tls_config_t *cfg,
                                     const char *who)
{
    const char *file = cfg->ca_file[0] != '\0' ? cfg->ca_file : NULL;
    const char *dir = cfg->ca_path[0] != '\0' ? cfg->ca_path : NULL;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lookup;
    char why[256];

    if (SSL_CTX_load_verify_locations(ctx, file, dir) != 1) {
        mf_error("%s: cannot load the CA (tls.ca_file %s, tls.ca_path %s): %s",
                 who, file != NULL ? file : "-", dir != NULL ? dir : "-",
                 mf_tls_ssl_error(why, sizeof(why)));
        return MF_ERR_CONFIG;
    }
    if (cfg->crl_file[0] == '\0') {
        return MF_OK;
    }
    lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == NULL ||
        X509_load_crl_file(lookup, cfg->crl_file, X509_FILETYPE_PEM) <= 0) {
        mf_error("%s: cannot load tls.crl_file %s: %s", who, cfg->crl_file,
                 mf_tls_ssl_error(why, sizeof(why)));
        return MF_ERR_CONFIG;
    }
    /* the peer's own certificate is checked against the CRL */
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return MF_OK;
}

/* Days until cert expires, negative once it has; a warning or an error
 * as it approaches. */
static long mf_tls_cert_days(X509 *cert, const char *who, uint32_t warn_days)
{
    int days = 0, secs = 0;

    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) != 1) {
        mf_warn("%s: cannot read the expiry date of the certificate", who);
        return 0;
    }
    if (days < 0 || secs < 0 || (days == 0 && secs == 0)) {
        mf_error("%s: the TLS certificate has expired%s", who,
                 days < 0 ? "" : " today");
        return days < 0 ? days : -1;
    }
    if ((uint32_t)days < warn_days) {
        mf_warn("%s: the TLS certificate expires in %d day%s: renew it", who,
                days, days == 1 ? "" : "s");
    }
    return days;
}

long mf_tls_check_expiry(const mf_tls_t *tls)
{
    X509 *cert = SSL_CTX_get0_certificate(tls->ctx);

    return cert != NULL ? mf_tls_cert_days(cert, tls->who, tls->warn_days) : 0;
}

/* Once a day, at a connection: the certificate's expiry again, so a
 * long-running process warns ahead of it, and says when it passed. */
static void mf_tls_recheck(mf_tls_t *tls)
{
    uint64_t now = mf_time_ms(), next = atomic_load(&tls->next_check_ms);

    if (now >= next &&
        atomic_compare_exchange_strong(&tls->next_check_ms, &next,
                                       now + MF_TLS_RECHECK_MS)) {
        (void)mf_tls_check_expiry(tls);
    }
}

mf_status_t mf_tls_config_check(const mf_tls_config_t *cfg, const char *who)
{
    if (!cfg->enable) {
        return MF_OK;
    }
    if (cfg->cert_file[0] == '\0' || cfg->key_file[0] == '\0') {
        mf_error("%s: tls.enable needs tls.cert_file and tls.key_file", who);
        return MF_ERR_CONFIG;
    }
    if (cfg->ca_file[0] == '\0' && cfg->ca_path[0] == '\0') {
        mf_error("%s: tls.enable needs tls.ca_file or tls.ca_path: the CA "
                 "that signs the certificates of the peers",
                 who);
        return MF_ERR_CONFIG;
    }
    if (strcmp(cfg->min_version, "1.2") != 0 &&
        strcmp(cfg->min_version, "1.3") != 0) {
        mf_error("%s: tls.min_version must be 1.2 or 1.3, not '%s'", who,
                 cfg->min_version);
        return MF_ERR_CONFIG;
    }
    if (cfg->decrypter_lib[0] != '\0' && cfg->key_password_file[0] == '\0') {
        mf_error("%s: tls.decrypter_lib needs tls.key_password_file: the "
                 "password it decrypts",
                 who);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

/* ---- settings kept as text ---- */

typedef struct mf_tls_holder {
    mf_tls_config_t tls;
} mf_tls_holder_t;

static const mf_cfg_entry_t mf_tls_entries[] = {
    MF_TLS_CFG_ENTRIES(mf_tls_holder_t, tls),
};

static const mf_cfg_table_t mf_tls_table = {
    .component = "tls",
    .env_prefix = NULL,
    .entries = mf_tls_entries,
    .count = MF_CFG_COUNT(mf_tls_entries),
};

static mf_status_t mf_tls_section_check(const void *obj)
{
    return mf_tls_config_check(obj, "tls");
}

const mf_cfg_section_t mf_tls_section = {
    .table = &mf_tls_table,
    .size = sizeof(mf_tls_config_t),
    .check = mf_tls_section_check,
};

mf_status_t mf_tls_create_from_text(const char *text, bool server,
                                    const char *who, mf_tls_t **tls_p)
{
    mf_tls_config_t *cfg;
    mf_status_t status;

    *tls_p = NULL;
    status = mf_cfg_text_parse(&mf_tls_section, text, (void **)&cfg);
    if (status != MF_OK) {
        mf_error("%s: bad tls.* settings", who);
        return status;
    }
    if (cfg->enable) {
        status = mf_tls_create(cfg, server, who, tls_p);
    }
    OPENSSL_cleanse(cfg, sizeof(*cfg));
    free(cfg);
    return status;
}

mf_status_t mf_tls_apply_paths(const mf_tls_paths_t *p,
                               mf_status_t (*set)(void *obj, const char *key,
                                                  const char *value),
                               void *obj)
{
    const struct {
        const char *key, *value;
    } paths[] = {
        {"tls.ca_file", p->ca_file},
        {"tls.crl_file", p->crl_file},
        {"tls.cert_file", p->cert_file},
        {"tls.key_file", p->key_file},
        {"tls.key_password_file", p->key_password_file},
        {"tls.decrypter_lib", p->decrypter_lib},
    };
    mf_status_t status = MF_OK;
    char *path;

    if (!p->enable) {
        return MF_OK;
    }
    path = malloc(p->size + 1);
    if (path == NULL) {
        return MF_ERR_NOMEM;
    }
    for (size_t i = 0; i < MF_ARRAY_SIZE(paths) && status == MF_OK; i++) {
        size_t len = strnlen(paths[i].value, p->size);

        if (len > 0) {
            memcpy(path, paths[i].value, len);
            path[len] = '\0';
            status = set(obj, paths[i].key, path);
        }
    }
    free(path);
    return status == MF_OK ? set(obj, "tls.enable", "true") : status;
}

/* ---- streams ---- */

/* A session of the context for a new connection (the expiry re-checked
 * now and then); NULL, logged. */
static SSL *mf_tls_session(mf_tls_t *tls)
{
    char why[256];
    SSL *ssl;

    mf_tls_recheck(tls);
    ssl = SSL_new(tls->ctx);
    if (ssl == NULL) {
        mf_error("%s: cannot start a TLS session: %s", tls->who,
                 mf_tls_ssl_error(why, sizeof(why)));
    }
    return ssl;
}

/* The OpenSSL bufferevent of socket fd (-1: evhttp sets it) and session
 * ssl, which it owns; NULL, logged. */
static struct bufferevent *mf_tls_wrap(mf_tls_t *tls, struct event_base *base,
                                       int fd, SSL *ssl, bool server)
{
    /* only the loop thread touches it, as with plain sockets */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl,
        server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE);

    if (bev == NULL) {
        mf_error("%s: cannot wrap socket %d in TLS", tls->who, fd);
        return NULL;
    }
    /* a peer that closes its socket without close_notify is an EOF */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static struct bufferevent *mf_tls_bev_new(struct event_base *base, int fd,
                                          bool server, void *ctx)
{
    mf_tls_t *tls = ctx;
    struct in6_addr ip;
    char why[256];
    SSL *ssl;

    if (mf_net_sock_prepare(fd) != MF_OK ||
        (ssl = mf_tls_session(tls)) == NULL) {
        return NULL;
    }
    if (!server && tls->server_name[0] != '\0') {
        bool is_ip = inet_pton(AF_INET, tls->server_name, &ip) == 1 ||
                     inet_pton(AF_INET6, tls->server_name, &ip) == 1;

        /* the name the server's certificate must carry; SNI for names */
        if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                                   tls->server_name)
                   : SSL_set1_host(ssl, tls->server_name)) != 1 ||
            (!is_ip && SSL_set_tlsext_host_name(ssl, tls->server_name) != 1)) {
            mf_error("%s: cannot ask for server name %s: %s", tls->who,
                     tls->server_name, mf_tls_ssl_error(why, sizeof(why)));
            SSL_free(ssl);
            return NULL;
        }
    }
    return mf_tls_wrap(tls, base, fd, ssl, server);
}

static const char *mf_tls_why(struct bufferevent *bev, bool *refused_p,
                              char *buf, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    unsigned long err, first = 0;
    long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    char reason[160];

    while ((err = bufferevent_get_openssl_error(bev)) != 0) {
        if (first == 0) {
            first = err;
        }
    }
    if (first == 0) {
        return NULL;
    }
    *refused_p = ssl == NULL || !SSL_is_init_finished(ssl);
    ERR_error_string_n(first, reason, sizeof(reason));
    if (verify != X509_V_OK) {
        snprintf(buf, len, "TLS: %s (%s)", reason,
                 X509_verify_cert_error_string(verify));
    } else {
        snprintf(buf, len, "TLS: %s", reason);
    }
    return buf;
}

struct bufferevent *mf_tls_http_bev(struct event_base *base, void *arg)
{
    mf_tls_t *tls = arg;
    SSL *ssl = mf_tls_session(tls);

    /* evhttp gives it the accepted socket */
    return ssl != NULL ? mf_tls_wrap(tls, base, -1, ssl, true) : NULL;
}

const mf_net_stream_ops_t *mf_tls_stream(const mf_tls_t *tls)
{
    return &tls->stream;
}

/* ---- contexts ---- */

mf_status_t mf_tls_create(const mf_tls_config_t *cfg, bool server,
                          const char *who, mf_tls_t **tls_p)
{
    char why[256];
    mf_tls_t *tls;
    mf_status_t status;
    X509 *cert;

    status = mf_tls_config_check(cfg, who);
    if (status != MF_OK) {
        return status;
    }
    if (!cfg->enable) {
        mf_error("%s: TLS is not enabled (tls.enable)", who);
        return MF_ERR_INVALID;
    }
    tls = calloc(1, sizeof(*tls));
    if (tls == NULL) {
        return MF_ERR_NOMEM;
    }
    tls->warn_days = cfg->expiry_warn_days;
    mf_strlcpy(tls->who, who, sizeof(tls->who));
    mf_strlcpy(tls->server_name, cfg->server_name, sizeof(tls->server_name));
    tls->stream.name = "tls";
    tls->stream.bev_new = mf_tls_bev_new;
    tls->stream.ctx = tls;
    tls->stream.raw_fd = false;
    tls->stream.why = mf_tls_why;

    ERR_clear_error();
    tls->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (tls->ctx == NULL) {
        mf_error("%s: cannot create a TLS context: %s", who,
                 mf_tls_ssl_error(why, sizeof(why)));
        status = MF_ERR_NOMEM;
        goto err;
    }
    status = MF_ERR_CONFIG;
    if (SSL_CTX_set_min_proto_version(tls->ctx,
                                      strcmp(cfg->min_version, "1.3") == 0
                                          ? TLS1_3_VERSION
                                          : TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(tls->ctx, cfg->ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(tls->ctx, cfg->ciphersuites) != 1) {
        mf_error("%s: bad tls.min_version, tls.ciphers or tls.ciphersuites: "
                 "%s",
                 who, mf_tls_ssl_error(why, sizeof(why)));
        goto err;
    }
    /* a peer that exits without close_notify is an EOF: our frames carry
     * their length, so a cut one is seen anyway */
    SSL_CTX_set_options(tls->ctx, SSL_OP_NO_RENEGOTIATION |
                                      SSL_OP_CIPHER_SERVER_PREFERENCE |
                                      SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* connections are long-lived: no session tickets to resume them */
    SSL_CTX_set_num_tickets(tls->ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(tls->ctx, cfg->cert_file) != 1) {
        mf_error("%s: cannot load tls.cert_file %s: %s", who, cfg->cert_file,
                 mf_tls_ssl_error(why, sizeof(why)));
        goto err;
    }
    cert = SSL_CTX_get0_certificate(tls->ctx);
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
        mf_error("%s: the TLS certificate %s is not valid yet (is the clock "
                 "right?)",
                 who, cfg->cert_file);
        goto err;
    }
    if (mf_tls_cert_days(cert, who, cfg->expiry_warn_days) < 0) {
        mf_error("%s: refusing the expired certificate %s", who,
                 cfg->cert_file);
        goto err;
    }
    if (mf_tls_load_key(tls->ctx, cfg, who) != MF_OK ||
        mf_tls_load_trust(tls->ctx, cfg, who) != MF_OK) {
        goto err;
    }
    if (server) {
        SSL_CTX_set_verify(
            tls->ctx,
            cfg->verify_peer ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                             : SSL_VERIFY_NONE,
            NULL);
        SSL_CTX_set_session_id_context(
            tls->ctx, (const unsigned char *)MF_TLS_SESSION_CONTEXT,
            sizeof(MF_TLS_SESSION_CONTEXT) - 1);
    } else {
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
    }
    if (server && !cfg->verify_peer) {
        mf_warn("%s: tls.verify_peer is off: any client may connect", who);
    }
    atomic_init(&tls->next_check_ms, mf_time_ms() + MF_TLS_RECHECK_MS);
    *tls_p = tls;
    return MF_OK;

err:
    mf_tls_destroy(tls);
    return status;
}

void mf_tls_destroy(mf_tls_t *tls)
{
    if (tls == NULL) {
        return;
    }
    SSL_CTX_free(tls->ctx);
    free(tls);
}
