/*
 * The mmc-meta daemon of tests and benchmarks (see tk_meta.h).
 *
 * Invariants: meta->pid is set only once the ready line parsed; on every
 * failure after the spawn the daemon is killed and reaped before
 * returning, and the read end of its stdout is closed on every path.
 */
#include "tk_meta.h"

#include "tk_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TK_META_ARGS 64

const char *tk_meta_bin(const char *fallback)
{
    const char *env = getenv("MMC_META_BIN");

    return (env != NULL && env[0] != '\0') ? env : fallback;
}

static int tk_meta_parse(tk_meta_t *meta, const char *addr)
{
    unsigned rpc = 0, store = 0, http = 0;
    char host[64];

    if (sscanf(meta->line, "mmc-meta ready rpc=%63[^:]:%u store=%u http=%u",
               host, &rpc, &store, &http) != 4 ||
        rpc == 0 || rpc > 65535 || store == 0 || store > 65535 ||
        http > 65535) {
        tk_print("mmc-meta: unexpected ready line '%s'", meta->line);
        return -1;
    }
    snprintf(meta->addr, sizeof(meta->addr), "%s", addr);
    meta->port = (uint16_t)rpc;
    meta->store_port = (uint16_t)store;
    meta->http_port = (uint16_t)http;
    snprintf(meta->url, sizeof(meta->url), "tcp://%s:%u", addr, rpc);
    return 0;
}

int tk_meta_start(tk_meta_t *meta, const tk_meta_params_t *params)
{
    const char *addr = params->addr != NULL ? params->addr : "127.0.0.1";
    const char *bin = params->bin != NULL ? params->bin : tk_meta_bin(NULL);
    char sets[TK_META_ARGS / 2][128];
    char *argv[TK_META_ARGS];
    int argc = 0, nsets = 0, fds[2], fd = -1, i;
    pid_t pid;

    memset(meta, 0, sizeof(*meta));
    if (bin == NULL || access(bin, X_OK) != 0) {
        tk_print("mmc-meta not found at %s (set MMC_META_BIN)",
                 bin != NULL ? bin : "(none)");
        return -1;
    }
    argv[argc++] = (char *)bin;
    snprintf(sets[nsets], sizeof(sets[0]), "addr=%s", addr);
    argv[argc++] = "--set";
    argv[argc++] = sets[nsets++];
    argv[argc++] = "--set";
    argv[argc++] = "port=0";
    argv[argc++] = "--set";
    argv[argc++] = "store_port=0";
    argv[argc++] = "--set";
    argv[argc++] = "http_port=0";
    for (i = 0; params->sets != NULL && params->sets[i] != NULL; i++) {
        if (argc + 2 >= TK_META_ARGS - 1 || nsets == TK_META_ARGS / 2) {
            tk_print("mmc-meta: too many settings");
            return -1;
        }
        snprintf(sets[nsets], sizeof(sets[0]), "%s", params->sets[i]);
        argv[argc++] = "--set";
        argv[argc++] = sets[nsets++];
    }
    for (i = 0; params->args != NULL && params->args[i] != NULL; i++) {
        if (argc >= TK_META_ARGS - 1) {
            tk_print("mmc-meta: too many arguments");
            return -1;
        }
        argv[argc++] = (char *)params->args[i];
    }
    argv[argc] = NULL;
    if (params->net == NULL) {
        pid = tk_proc_exec(argv, params->nofile, &fd);
    } else {
        if (pipe(fds) != 0) {
            tk_print("pipe() failed");
            return -1;
        }
        pid = tk_netns_exec(params->net, params->host, argv, fds[1]);
        close(fds[1]);
        fd = fds[0];
    }
    if (pid < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (tk_fd_read_line(fd, meta->line, sizeof(meta->line),
                        params->ready_ms != 0 ? params->ready_ms : 60000) !=
        0) {
        tk_print("mmc-meta did not print its ready line");
        goto err_kill;
    }
    if (tk_meta_parse(meta, addr) != 0) {
        goto err_kill;
    }
    close(fd);
    meta->pid = pid;
    return 0;

err_kill:
    close(fd);
    tk_proc_kill(pid);
    return -1;
}

int tk_meta_stop(tk_meta_t *meta, int sig)
{
    int code;

    if (meta->pid <= 0) {
        return -1;
    }
    kill(meta->pid, sig);
    code = tk_proc_wait(meta->pid, 60000);
    meta->pid = 0;
    return code;
}
