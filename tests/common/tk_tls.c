#include "tk_tls.h"
#include "tk_proc.h"

#include <fcntl.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tk_tls_make(tk_tls_t *tls)
{
    char cmd[512];

    snprintf(tls->dir, sizeof(tls->dir), "/tmp/tk-tls-XXXXXX");
    if (mkdtemp(tls->dir) == NULL) {
        tk_print("cannot make a directory for certificates");
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >/dev/null", TK_TLS_GEN, tls->dir);
    if (system(cmd) != 0) {
        tk_print("cannot make the test certificates (%s): is the openssl "
                 "command installed?",
                 TK_TLS_GEN);
        tk_tls_remove(tls);
        return -1;
    }
    return 0;
}

const char *tk_tls_path(const tk_tls_t *tls, const char *name)
{
    static __thread char ring[8][256];
    static __thread unsigned next;
    char *buf = ring[next++ % 8];

    snprintf(buf, sizeof(ring[0]), "%s/%s", tls->dir, name);
    return buf;
}

int tk_tls_write(const tk_tls_t *tls, const char *name, const char *text)
{
    int fd = open(tk_tls_path(tls, name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t len = strlen(text);
    int ret;

    if (fd < 0) {
        return -1;
    }
    ret = write(fd, text, len) == (ssize_t)len ? 0 : -1;
    close(fd);
    return ret;
}

void tk_tls_cipher(const char *password, char *buf, size_t len)
{
    size_t i;

    for (i = 0; password[i] != '\0' && 2 * i + 2 < len; i++) {
        snprintf(buf + 2 * i, 3, "%02x", (unsigned char)password[i] ^ 0x5a);
    }
    buf[2 * i] = '\0';
}

void tk_tls_remove(tk_tls_t *tls)
{
    char cmd[256];

    if (tls->dir[0] == '\0') {
        return;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tls->dir);
    if (system(cmd) != 0) {
        tk_print("cannot remove %s", tls->dir);
    }
    tls->dir[0] = '\0';
}

static tk_tls_t tk_tls_env;
static pid_t tk_tls_env_owner;

static void tk_tls_env_end(void)
{
    if (getpid() == tk_tls_env_owner) { /* not in a child that exits */
        tk_tls_remove(&tk_tls_env);
    }
}

/* prefix + "TLS_" + each key: on, the CA, the pair name.pem/name.key */
static int tk_tls_env_set(const char *prefix, const char *name)
{
    char var[64], file[32];
    int ret = 0;

    snprintf(var, sizeof(var), "%sTLS_ENABLE", prefix);
    ret |= setenv(var, "true", 1);
    snprintf(var, sizeof(var), "%sTLS_CA_FILE", prefix);
    ret |= setenv(var, tk_tls_path(&tk_tls_env, "ca.pem"), 1);
    snprintf(var, sizeof(var), "%sTLS_CERT_FILE", prefix);
    snprintf(file, sizeof(file), "%s.pem", name);
    ret |= setenv(var, tk_tls_path(&tk_tls_env, file), 1);
    snprintf(var, sizeof(var), "%sTLS_KEY_FILE", prefix);
    snprintf(file, sizeof(file), "%s.key", name);
    ret |= setenv(var, tk_tls_path(&tk_tls_env, file), 1);
    return ret;
}

int tk_tls_env_begin(void)
{
    const char *on = getenv("TK_TLS");

    if (on == NULL || strcmp(on, "0") == 0 || tk_tls_env.dir[0] != '\0') {
        return 0;
    }
    if (tk_tls_make(&tk_tls_env) != 0) {
        return -1;
    }
    tk_tls_env_owner = getpid();
    atexit(tk_tls_env_end);
    if (tk_tls_env_set("MF_", "client") != 0 ||
        tk_tls_env_set("MF_STORE_", "server") != 0 ||
        tk_tls_env_set("MMC_META_", "server") != 0 ||
        setenv("MMC_META_HTTP_TLS", "false", 1) != 0) {
        tk_print("cannot set the TLS environment");
        return -1;
    }
    tk_print("TK_TLS: control connections over TLS (certificates in %s)",
             tk_tls_env.dir);
    return 0;
}
