/*
 * Certificates for TLS tests, made by the tests themselves: a directory
 * of them (tk_tls_gen.sh, the openssl command line) under /tmp, removed
 * afterwards.  Which files it holds and what each is for is listed in
 * tk_tls_gen.sh.  Also the cipher of the test decrypter library
 * (tk_decrypter.c): a password XOR 0x5a, in hex.
 */
#ifndef MF_TK_TLS_H
#define MF_TK_TLS_H

#include <stddef.h>

typedef struct tk_tls {
    char dir[128];
} tk_tls_t;

/* Makes the directory and its certificates: 0, or -1 (printed; e.g. no
 * openssl command). */
int tk_tls_make(tk_tls_t *tls);
/* The path of file name in it, in a static ring of buffers (the last
 * eight stay valid). */
const char *tk_tls_path(const tk_tls_t *tls, const char *name);
/* Writes file name with text (mode 600): 0, or -1. */
int tk_tls_write(const tk_tls_t *tls, const char *name, const char *text);
/* The test decrypter's cipher of password into buf (2 * strlen + 1). */
void tk_tls_cipher(const char *password, char *buf, size_t len);
/* Removes the directory and everything in it. */
void tk_tls_remove(tk_tls_t *tls);

/*
 * With TK_TLS set in the environment (the [tls] variants of the tests),
 * once per program: makes certificates and sets the tls.* variables that
 * every component reads, so every control connection of the processes
 * it starts is TLS with certificates of one CA: MF_TLS_* (BM, TRANS and
 * store clients, MemCache local services: client.pem), MF_STORE_TLS_*
 * (config store servers) and MMC_META_TLS_* (mmc-meta: server.pem; its
 * HTTP stays plain for the tests' own HTTP client, tk_sock).  The
 * directory goes at the program's exit.  0 (also without TK_TLS), or -1.
 */
int tk_tls_env_begin(void);

#endif /* MF_TK_TLS_H */
