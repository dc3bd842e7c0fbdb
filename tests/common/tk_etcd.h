/*
 * A one-member etcd (Debian's etcd-server) for tests and benchmarks of
 * leader election: a fresh data directory, client and peer URLs on the
 * address asked for, inside a host of a network-namespace lab or in the
 * test's own namespace, stopped and removed by tk_etcd_stop().  Under
 * TK_TLS (tk_tls.h) its client URL is https, with the meta service's
 * certificate, and it demands client certificates of the same CA.
 */
#ifndef MF_TK_ETCD_H
#define MF_TK_ETCD_H

#include "tk_netns.h"

#include <stdint.h>
#include <sys/types.h>

#define TK_ETCD_BIN "/usr/bin/etcd"

typedef struct tk_etcd {
    pid_t pid;    /* 0: not running */
    char dir[64]; /* its data directory; the log is <dir>.log */
    char url[96]; /* its client URL, http(s)://addr:port */
} tk_etcd_t;

/* Whether the etcd binary is installed (else a test skips). */
int tk_etcd_available(void);

/*
 * Starts etcd with its client URL on addr:client_port and its peer URL
 * on 127.0.0.1:peer_port, inside host of net (net NULL: here), and waits
 * up to 60 s until it serves.  0, or -1 (logged; nothing left running).
 */
int tk_etcd_start(tk_etcd_t *etcd, const tk_netns_t *net, int host,
                  const char *addr, uint16_t client_port, uint16_t peer_port);

/* Stops it (SIGTERM) and removes its directory and log; no-op when not
 * running. */
void tk_etcd_stop(tk_etcd_t *etcd);

#endif
