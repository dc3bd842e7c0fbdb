/*
 * Hosts as network namespaces, for multi-host integration tests on one
 * machine.
 *
 * it_netns_create() makes nhosts "host" namespaces and one "switch"
 * namespace holding a bridge; host i gets a veth pair whose other end is a
 * port of the bridge, and the address 10.213.0.<i + 1>/24 (a range used
 * only inside these namespaces; nothing is ever routed elsewhere).  The
 * root namespace's networking is never touched.  Namespace names are
 * <IT_NETNS_BASE><pid>h<i> and <IT_NETNS_BASE><pid>sw, so they are unique
 * per test run.
 *
 * Cleanup always happens: at exit (atexit), on SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT and SIGALRM (the handler kills the children, removes the
 * namespaces and dies of the signal again), and at the start of every run
 * for namespaces left by earlier runs whose process is gone (a run killed
 * with SIGKILL cannot clean up after itself).  Removing a namespace
 * removes its veth ends and the bridge with it.
 *
 * Processes run in a host by forking from the (thread-free) test parent
 * and entering the host's namespace (setns(CLONE_NEWNET)) in the child
 * before anything else; see it_netns_spawn().
 *
 * Where namespaces cannot be created (not root, no CAP_NET_ADMIN or
 * CAP_SYS_ADMIN, no `ip`), it_netns_require() prints "SKIP: <why>" and
 * exits with IT_NETNS_SKIP, the code ctest reads as skipped.
 */
#ifndef MF_IT_NETNS_H
#define MF_IT_NETNS_H

#include "it_helpers.h"

#include <stdbool.h>
#include <sys/types.h>

#define IT_NETNS_SKIP      77
#define IT_NETNS_MAX_HOSTS 16
#define IT_NETNS_BASE      "mfit"
#define IT_NETNS_SUBNET    "10.213.0"

typedef struct it_netns {
    int nhosts;
    char sw[32];                          /* the switch namespace */
    char host[IT_NETNS_MAX_HOSTS][32];    /* host namespaces */
    char addr[IT_NETNS_MAX_HOSTS][16];    /* host i: 10.213.0.<i + 1> */
    char dev[IT_NETNS_MAX_HOSTS][16];     /* the host's veth end */
    bool created[IT_NETNS_MAX_HOSTS + 1]; /* [nhosts] is the switch */
} it_netns_t;

/*
 * Checks that namespaces can be made here (root or CAP_SYS_ADMIN and
 * CAP_NET_ADMIN, `ip` found, a probe namespace can be added and removed);
 * otherwise prints "SKIP: ..." and exits with IT_NETNS_SKIP.  Also removes
 * namespaces of earlier runs that died.  Call it first in main().
 */
void it_netns_require(void);

/* Creates the hosts (1..IT_NETNS_MAX_HOSTS) and the switch, and waits
 * until every host reaches every other one.  0, or -1 (logged; whatever
 * was made is removed). */
int it_netns_create(it_netns_t *net, int nhosts);
/* Kills the children that may still run inside, removes every namespace. */
void it_netns_destroy(it_netns_t *net);

/* In a child: enters host's network namespace.  0 or -1 (logged). */
int it_netns_enter(const it_netns_t *net, int host);

/* tk_proc_spawn(), but fn runs inside host's namespace. */
pid_t it_netns_spawn(const it_netns_t *net, int host, tk_proc_fn fn, int index,
                     void *arg);

/*
 * Runs argv (argv[0] looked up in PATH) inside host (host < 0: in the
 * test's own namespace), waits up to timeout_ms; stdout (optional) gets up
 * to out_len - 1 bytes of its standard output.  Returns the exit code, or
 * -1.
 */
int it_netns_run(const it_netns_t *net, int host, char *const argv[], char *out,
                 size_t out_len, unsigned timeout_ms);

/* Forks the config store into host, listening on the host's address. */
int it_netns_store_start(const it_netns_t *net, int host, it_store_t *store);

/*
 * Breaks one established TCP connection of host to peer_host (from the
 * outside, with `ss -K`): the `which`-th one, counting from 0, modulo
 * their number, among those with bytes queued (mid-transfer) if there are
 * any, else among all.  Connections with an endpoint at port
 * `spare_port` (0: none) are left alone.  Returns 1 if one was closed, 0
 * if there was none to close, -1 if `ss -K` does not work here (no
 * CONFIG_INET_DIAG_DESTROY).
 */
int it_netns_break_conn(const it_netns_t *net, int host, int peer_host,
                        unsigned which, uint16_t spare_port);

/* Brings host's veth down for ms milliseconds and up again.  0 or -1. */
int it_netns_link_flap(const it_netns_t *net, int host, unsigned ms);

#endif /* MF_IT_NETNS_H */
