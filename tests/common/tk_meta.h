/*
 * The mmc-meta daemon of a test or a benchmark: started from the built
 * binary on free ports (every port 0), its ready line
 *   mmc-meta ready rpc=<addr>:<port> store=<port> http=<port>
 * parsed, and stopped with a signal and a deadline.
 *
 * The daemon is a child forked with tk_proc, here or inside a host of a
 * network-namespace lab (tk_netns); it dies with its parent and
 * tk_proc_kill_all() reaps it at exit at the latest, so a test that fails
 * halfway never leaves one behind.
 */
#ifndef MF_TK_META_H
#define MF_TK_META_H

#include "tk_netns.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tk_meta {
    pid_t pid;     /* 0: not running */
    char addr[64]; /* as the ready line names it */
    uint16_t port; /* RPC */
    uint16_t store_port;
    uint16_t http_port;
    char url[96];     /* tcp://addr:port */
    char line[256];   /* the ready line as printed */
    unsigned stop_ms; /* tk_meta_stop()'s deadline */
    int out_fd;       /* a standby's stdout, until it is ready; -1 */
} tk_meta_t;

typedef struct tk_meta_params {
    const char *bin;         /* NULL: $MMC_META_BIN */
    const char *addr;        /* NULL: 127.0.0.1 */
    const char *const *sets; /* NULL-terminated "key=value", may be NULL;
                                after the ones above, so they win */
    const char *const *args; /* further arguments as they are, may be NULL */
    unsigned nofile;         /* soft limit of open files; 0: inherited */
    unsigned ready_ms;       /* 0: 60 s */
    unsigned stop_ms;        /* 0: 60 s */
    const tk_netns_t *net;   /* not NULL: runs inside host of this lab */
    int host;
    bool standby; /* one of several that elect a leader (etcd_endpoints
                     set): its standby line is enough (addr and http_port
                     are set from it), tk_meta_wait_ready waits for it to
                     lead */
} tk_meta_params_t;

/* The binary: $MMC_META_BIN if set, else fallback. */
const char *tk_meta_bin(const char *fallback);

/* Starts the daemon and waits for its ready line.  0, or -1 (logged; the
 * daemon, if it started, is killed). */
int tk_meta_start(tk_meta_t *meta, const tk_meta_params_t *params);

/* Waits up to ms for a standby to lead (its ready line): 0, or -1. */
int tk_meta_wait_ready(tk_meta_t *meta, unsigned ms);

/* Sends sig (SIGTERM for a clean stop) and waits up to stop_ms, then
 * kills it; the daemon's exit code as tk_proc_wait() gives it, or -1 if
 * it was not running. */
int tk_meta_stop(tk_meta_t *meta, int sig);

#endif /* MF_TK_META_H */
