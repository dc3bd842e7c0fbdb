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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The binary, four --set of ports and address, the caller's settings and
 * arguments. */
#define TK_META_ARGS 128

const char *tk_meta_bin(const char *fallback)
{
    const char *env = getenv("MMC_META_BIN");

    return (env != NULL && env[0] != '\0') ? env : fallback;
}

/* The address and ports of the ready line: the address the daemon bound,
 * which a setting of the caller may have chosen. */
static int tk_meta_parse(tk_meta_t *meta)
{
    unsigned rpc = 0, store = 0, http = 0;

    if (sscanf(meta->line, "mmc-meta ready rpc=%63[^:]:%u store=%u http=%u",
               meta->addr, &rpc, &store, &http) != 4 ||
        rpc == 0 || rpc > 65535 || store == 0 || store > 65535 ||
        http > 65535) {
        tk_print("mmc-meta: unexpected ready line '%s'", meta->line);
        return -1;
    }
    meta->port = (uint16_t)rpc;
    meta->store_port = (uint16_t)store;
    meta->http_port = (uint16_t)http;
    snprintf(meta->url, sizeof(meta->url), "tcp://%s:%u", meta->addr, rpc);
    return 0;
}

/* Appends the strings of list (NULL-terminated, may be NULL) to argv,
 * each after a "--set" when set is; -1 (logged) past TK_META_ARGS. */
static int tk_meta_args_add(char **argv, int *argc_p, const char *const *list,
                            bool set)
{
    int i;

    for (i = 0; list != NULL && list[i] != NULL; i++) {
        if (*argc_p + (set ? 2 : 1) >= TK_META_ARGS) {
            tk_print("mmc-meta: too many settings and arguments");
            return -1;
        }
        if (set) {
            argv[(*argc_p)++] = "--set";
        }
        argv[(*argc_p)++] = (char *)list[i];
    }
    return 0;
}

int tk_meta_start(tk_meta_t *meta, const tk_meta_params_t *params)
{
    const char *addr = params->addr != NULL ? params->addr : "127.0.0.1";
    const char *bin = params->bin != NULL ? params->bin : tk_meta_bin(NULL);
    char addr_set[96];
    const char *const sets[] = {addr_set, "port=0", "store_port=0",
                                "http_port=0", NULL};
    char *argv[TK_META_ARGS];
    int argc = 0, fd = -1;
    pid_t pid;

    memset(meta, 0, sizeof(*meta));
    meta->out_fd = -1;
    if (bin == NULL || access(bin, X_OK) != 0) {
        tk_print("mmc-meta not found at %s (set MMC_META_BIN)",
                 bin != NULL ? bin : "(none)");
        return -1;
    }
    snprintf(addr_set, sizeof(addr_set), "addr=%s", addr);
    argv[argc++] = (char *)bin;
    if (tk_meta_args_add(argv, &argc, sets, true) != 0 ||
        tk_meta_args_add(argv, &argc, params->sets, true) != 0 ||
        tk_meta_args_add(argv, &argc, params->args, false) != 0) {
        return -1;
    }
    argv[argc] = NULL;
    if (params->net == NULL) {
        pid = tk_proc_exec(argv, params->nofile, &fd);
    } else {
        pid = tk_netns_exec(params->net, params->host, argv, &fd);
    }
    if (pid < 0) {
        return -1;
    }
    if (tk_fd_read_line(fd, meta->line, sizeof(meta->line),
                        params->ready_ms != 0 ? params->ready_ms : 60000) !=
        0) {
        tk_print("mmc-meta did not print its %s line",
                 params->standby ? "standby" : "ready");
        goto err_kill;
    }
    meta->pid = pid;
    meta->stop_ms = params->stop_ms != 0 ? params->stop_ms : 60000;
    if (params->standby) {
        const char *http = strstr(meta->line, " http=");
        unsigned port = 0;

        if (strncmp(meta->line, "mmc-meta standby", 16) != 0 || http == NULL ||
            sscanf(http, " http=%u", &port) != 1 || port > 65535) {
            tk_print("mmc-meta: unexpected standby line '%s'", meta->line);
            goto err_kill;
        }
        /* a standby serves HTTP only, on the address asked for */
        snprintf(meta->addr, sizeof(meta->addr), "%s",
                 params->addr != NULL ? params->addr : "127.0.0.1");
        meta->http_port = (uint16_t)port;
        meta->out_fd = fd; /* the ready line comes when it leads */
        return 0;
    }
    if (tk_meta_parse(meta) != 0) {
        goto err_kill;
    }
    close(fd);
    return 0;

err_kill:
    close(fd);
    tk_proc_kill(pid);
    return -1;
}

int tk_meta_wait_ready(tk_meta_t *meta, unsigned ms)
{
    if (meta->out_fd < 0) {
        return meta->port != 0 ? 0 : -1;
    }
    if (tk_fd_read_line(meta->out_fd, meta->line, sizeof(meta->line), ms) !=
            0 ||
        tk_meta_parse(meta) != 0) {
        return -1;
    }
    close(meta->out_fd);
    meta->out_fd = -1;
    return 0;
}

int tk_meta_stop(tk_meta_t *meta, int sig)
{
    int code;

    if (meta->out_fd >= 0) {
        close(meta->out_fd);
        meta->out_fd = -1;
    }
    if (meta->pid <= 0) {
        return -1;
    }
    code = tk_proc_stop(meta->pid, sig, meta->stop_ms);
    meta->pid = 0;
    return code;
}
