/*
 * The network-namespace lab: hosts as network namespaces on one machine,
 * for the multi-host integration tests and the --netns mode of the
 * benchmarks.
 *
 * tk_netns_create() makes nhosts "host" namespaces and one "switch"
 * namespace holding a bridge; host i gets a veth pair whose other end is a
 * port of the bridge.  The root namespace's networking is never touched.
 *
 * Subnet plan: every lab (one per process) is its own network, behind its
 * own switch namespace, and takes its own /24 as well, 10.213.<s>.0/24
 * with s = 1 + pid % 250; host i is 10.213.<s>.<i + 1>.  A test and a
 * benchmark (or two tests) running at the same time thus never share a
 * bridge, a name or, as logs show them, an address.  Namespace names are
 * <TK_NETNS_BASE><pid>h<i> and <TK_NETNS_BASE><pid>sw.
 *
 * Cleanup always happens: at exit (atexit), at the start of every lab for
 * namespaces of any earlier lab whose process is gone (a run killed with
 * SIGKILL cannot clean up after itself), and, after tk_netns_require(),
 * on SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGALRM (the handler kills the
 * children, removes the namespaces and dies of the signal again; a
 * benchmark that turns those signals into a normal exit keeps its own
 * handlers and cleans up at exit).  Removing a namespace removes its veth
 * ends and the bridge with it.
 *
 * Processes run in a host by forking from the (thread-free) parent and
 * entering the host's namespace (setns(CLONE_NEWNET)) in the child before
 * anything else; see tk_netns_spawn() and tk_netns_enter().
 *
 * Where namespaces cannot be created (not root, no CAP_NET_ADMIN or
 * CAP_SYS_ADMIN, no `ip`), tk_netns_require() prints "SKIP: <why>" and
 * exits with TK_NETNS_SKIP, the code ctest reads as skipped.
 */
#ifndef MF_TK_NETNS_H
#define MF_TK_NETNS_H

#include "tk_proc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TK_NETNS_SKIP      77
#define TK_NETNS_MAX_HOSTS 16
#define TK_NETNS_BASE      "mflab"
#define TK_NETNS_NET       "10.213" /* the labs' /16 */

typedef struct tk_netns {
    int nhosts;
    char sw[32];                          /* the switch namespace */
    char host[TK_NETNS_MAX_HOSTS][32];    /* host namespaces */
    char addr[TK_NETNS_MAX_HOSTS][16];    /* host i: 10.213.<s>.<i + 1> */
    char dev[TK_NETNS_MAX_HOSTS][16];     /* the host's veth end */
    bool created[TK_NETNS_MAX_HOSTS + 1]; /* [nhosts] is the switch */
} tk_netns_t;

/*
 * Checks that namespaces can be made here (root or CAP_SYS_ADMIN and
 * CAP_NET_ADMIN, `ip` found, a probe namespace can be added and removed),
 * makes this process the lab's owner (cleanup at exit) and removes the
 * namespaces of earlier labs whose process died.  0, or -1 with the
 * reason in why.
 */
int tk_netns_check(char *why, size_t len);

/* For tests, first in main(): tk_netns_check(), or prints "SKIP: ..." and
 * exits with TK_NETNS_SKIP; then cleans up on the signals above too. */
void tk_netns_require(void);

/* Creates the hosts (1..TK_NETNS_MAX_HOSTS) and the switch, and waits
 * until every host reaches every other one.  0, or -1 (logged; whatever
 * was made is removed). */
int tk_netns_create(tk_netns_t *net, int nhosts);
/* tk_netns_check() (the reason printed if it fails), then
 * tk_netns_create(): the lab of a program that is not a test.  0 or -1. */
int tk_netns_setup(tk_netns_t *net, int nhosts);

/* Kills the children that may still run inside, removes every namespace. */
void tk_netns_destroy(tk_netns_t *net);

/* In a child: enters host's network namespace.  0 or -1 (logged). */
int tk_netns_enter(const tk_netns_t *net, int host);

/* tk_proc_spawn(), but fn runs inside host's namespace. */
pid_t tk_netns_spawn(const tk_netns_t *net, int host, tk_proc_fn fn, int index,
                     void *arg);

/* tk_proc_exec() inside host: forks and execs argv[0] (a path); if
 * stdout_fd is not NULL its standard output goes to a pipe whose read end
 * is returned there, else to /dev/null.  The pid (tracked by tk_proc) or
 * -1. */
pid_t tk_netns_exec(const tk_netns_t *net, int host, char *const argv[],
                    int *stdout_fd);

/*
 * Runs argv (argv[0] looked up in PATH) inside host (host < 0: in the
 * test's own namespace), waits up to timeout_ms; stdout (optional) gets up
 * to out_len - 1 bytes of its standard output.  Returns the exit code, or
 * -1.
 */
int tk_netns_run(const tk_netns_t *net, int host, char *const argv[], char *out,
                 size_t out_len, unsigned timeout_ms);

/*
 * Breaks one established TCP connection of host to peer_host (from the
 * outside, with `ss -K`): the `which`-th one, counting from 0, modulo
 * their number, among those with bytes queued (mid-transfer) if there are
 * any, else among all.  Connections with an endpoint at port
 * `spare_port` (0: none) are left alone.  Returns 1 if one was closed, 0
 * if there was none to close, -1 if `ss -K` does not work here (no
 * CONFIG_INET_DIAG_DESTROY).
 */
int tk_netns_break_conn(const tk_netns_t *net, int host, int peer_host,
                        unsigned which, uint16_t spare_port);

/* Brings host's veth down for ms milliseconds and up again.  0 or -1. */
int tk_netns_link_flap(const tk_netns_t *net, int host, unsigned ms);

#endif /* MF_TK_NETNS_H */
