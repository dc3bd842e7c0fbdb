/*
 * TLS for the control plane: an OpenSSL context built from the tls.*
 * settings, and the byte-stream ops (net.h) that wrap each connection of
 * a server or client in an OpenSSL bufferevent.
 *
 * Both sides authenticate: a server presents its certificate and, unless
 * tls.verify_peer is off, demands one from every client; a client always
 * checks the server's against the CA (and tls.server_name when set).  The
 * CA (tls.ca_file and/or tls.ca_path) is the trust boundary: whoever holds
 * a certificate it signed, not revoked by tls.crl_file, is a member.
 *
 * The private key may be encrypted: its password is read from
 * tls.key_password_file, and, with tls.decrypter_lib, that file holds the
 * password encrypted and the operator's library decrypts it, through
 *
 *   int DecryptPassword(const char *cipher, size_t cipher_len,
 *                       char *plain, size_t *plain_len);
 *
 * (*plain_len: the room in plain on entry, the password's length on
 * return; 0 on success), the shape of upstream's decrypt handler.  The
 * password is wiped from memory once the key is loaded.
 */
#ifndef MF_NET_TLS_H
#define MF_NET_TLS_H

#include "net/net.h"
#include "util/config.h"

#include <stddef.h>

#define MF_TLS_PATH_MAX 512

typedef struct mf_tls_config {
    bool enable;
    char ca_file[MF_TLS_PATH_MAX];
    char ca_path[MF_TLS_PATH_MAX];
    char cert_file[MF_TLS_PATH_MAX];
    char key_file[MF_TLS_PATH_MAX];
    char key_password_file[MF_TLS_PATH_MAX];
    char decrypter_lib[MF_TLS_PATH_MAX];
    char crl_file[MF_TLS_PATH_MAX];
    char ciphers[512];      /* TLS 1.2 cipher list, OpenSSL's syntax */
    char ciphersuites[256]; /* TLS 1.3 suites */
    char min_version[8];    /* "1.2" or "1.3" */
    bool verify_peer;       /* a server demands client certificates */
    char server_name[256];  /* a client checks the server's certificate
                               names it; "" any the CA signed */
    uint32_t expiry_warn_days;
} mf_tls_config_t;

/* The entries of the tls.* keys for a table whose struct _type holds an
 * mf_tls_config_t as _member: every component's table lists them, so the
 * keys, defaults, help and environment variables are the same
 * everywhere. */
// clang-format off
#define MF_TLS_CFG_STR(_type, _m, _key, _def, _help)                           \
    {"tls." _key, MF_CFG_STR, offsetof(_type, _m), sizeof(((_type *)0)->_m),  \
     _def, 0, 0, _help}
#define MF_TLS_CFG_BOOL(_type, _m, _key, _def, _help)                          \
    {"tls." _key, MF_CFG_BOOL, offsetof(_type, _m), 0, _def, 0, 0, _help}
#define MF_TLS_CFG_ENTRIES(_type, _member)                                     \
    MF_TLS_CFG_BOOL(_type, _member.enable, "enable", "false",                  \
        "TLS with certificates on this component's control connections; "      \
        "plaintext peers are refused"),                                        \
    MF_TLS_CFG_STR(_type, _member.ca_file, "ca_file", "",                      \
        "PEM file of the CA certificates trusted"),                            \
    MF_TLS_CFG_STR(_type, _member.ca_path, "ca_path", "",                      \
        "directory of trusted CA certificates (openssl rehash layout)"),       \
    MF_TLS_CFG_STR(_type, _member.cert_file, "cert_file", "",                  \
        "PEM certificate (chain) this process presents"),                      \
    MF_TLS_CFG_STR(_type, _member.key_file, "key_file", "",                    \
        "PEM private key of the certificate, plain or encrypted"),             \
    MF_TLS_CFG_STR(_type, _member.key_password_file, "key_password_file", "",  \
        "file holding the password of an encrypted key (with "                 \
        "decrypter_lib: the password encrypted)"),                             \
    MF_TLS_CFG_STR(_type, _member.decrypter_lib, "decrypter_lib", "",          \
        "shared library whose DecryptPassword() decrypts the content of "      \
        "key_password_file"),                                                  \
    MF_TLS_CFG_STR(_type, _member.crl_file, "crl_file", "",                    \
        "PEM certificate revocation lists checked for every peer"),            \
    MF_TLS_CFG_STR(_type, _member.ciphers, "ciphers",                          \
        "ECDHE+AESGCM:ECDHE+CHACHA20",                                         \
        "TLS 1.2 cipher list (OpenSSL syntax)"),                               \
    MF_TLS_CFG_STR(_type, _member.ciphersuites, "ciphersuites",                \
        "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:"                       \
        "TLS_CHACHA20_POLY1305_SHA256",                                        \
        "TLS 1.3 cipher suites (OpenSSL syntax)"),                             \
    MF_TLS_CFG_STR(_type, _member.min_version, "min_version", "1.2",           \
        "lowest protocol version accepted: 1.2 or 1.3"),                       \
    MF_TLS_CFG_BOOL(_type, _member.verify_peer, "verify_peer", "true",         \
        "a server demands a certificate from every client"),                   \
    MF_TLS_CFG_STR(_type, _member.server_name, "server_name", "",              \
        "a client checks that the server's certificate names this host "       \
        "(DNS name or IP address); empty: any certificate the CA signed"),     \
    {"tls.expiry_warn_days", MF_CFG_U32,                                       \
     offsetof(_type, _member.expiry_warn_days), 0, "30", 0, 3650,              \
     "warn this many days before this process's certificate expires "          \
     "(0..3650)"}
// clang-format on

/* The tls.* keys as a section of settings kept as text (util/config.h),
 * for public structs that keep them so (tls_settings of mf_bm_config_t,
 * mf_store_config_t, mf_store_server_config_t). */
extern const mf_cfg_section_t mf_tls_section;

typedef struct mf_tls mf_tls_t;

/*
 * Builds the TLS context of a server (server true) or a client from cfg
 * (cfg->enable must be set): CA, certificate and key (the key's password
 * from key_password_file, through decrypter_lib when set), CRL, versions
 * and ciphers.  Every file is checked now: MF_ERR_CONFIG names the
 * setting and OpenSSL's reason.  An expired certificate is refused; one
 * that expires within expiry_warn_days is a warning.  who names the
 * component in messages ("mmc-meta", "store client").
 */
mf_status_t mf_tls_create(const mf_tls_config_t *cfg, bool server,
                          const char *who, mf_tls_t **tls_p);
void mf_tls_destroy(mf_tls_t *tls);
/* mf_tls_create from settings kept as text: *tls_p NULL when they leave
 * TLS off. */
mf_status_t mf_tls_create_from_text(const char *text, bool server,
                                    const char *who, mf_tls_t **tls_p);

/* The stream ops of the context, for mf_net_*_params.stream; valid
 * until mf_tls_destroy (after the servers and clients using it). */
const mf_net_stream_ops_t *mf_tls_stream(const mf_tls_t *tls);

/* evhttp's bufferevent callback (evhttp_set_bevcb, arg: the server's
 * mf_tls_t): each HTTP connection over TLS, https. */
struct bufferevent *mf_tls_http_bev(struct event_base *base, void *arg);

/* Checks the certificate's validity again (a daemon calls it now and
 * then): a warning within expiry_warn_days, an error once expired.
 * Days left (negative once expired). */
long mf_tls_check_expiry(const mf_tls_t *tls);

/* The private key's password as mf_tls_create reads it (from
 * key_password_file, through decrypter_lib when set) into out, "" when
 * the key has none: for a library that loads the key itself (libcurl).
 * MF_ERR_CONFIG, logged as who.  Wipe it after use. */
mf_status_t mf_tls_key_password(const mf_tls_config_t *cfg, const char *who,
                                char *out, size_t len);

/* TLS given as paths (upstream's TLS configs, in the compat shims): each
 * a char array of size bytes that need not end in a NUL. */
typedef struct mf_tls_paths {
    bool enable;
    size_t size;
    const char *ca_file, *crl_file, *cert_file, *key_file;
    const char *key_password_file, *decrypter_lib;
} mf_tls_paths_t;

/* Sets the tls.* keys of p through set(obj, key, value): each path that
 * is not empty, then tls.enable (each set checks the whole).  The first
 * status that is not MF_OK; MF_ERR_NOMEM. */
mf_status_t mf_tls_apply_paths(const mf_tls_paths_t *p,
                               mf_status_t (*set)(void *obj, const char *key,
                                                  const char *value),
                               void *obj);

/* Checks a config filled by hand or read from a file, without loading
 * anything: with enable set, a certificate and key, a CA, a known
 * min_version.  MF_ERR_CONFIG, logged as who. */
mf_status_t mf_tls_config_check(const mf_tls_config_t *cfg, const char *who);

#endif
