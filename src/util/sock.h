/*
 * TCP sockets: resolving host:port, listening, connecting, "ip:port"
 * strings, the open files limit, and what a listener does when accept()
 * fails.
 *
 * Every socket made here is non-blocking and close-on-exec.  A listener
 * that runs out of descriptors must neither spin on a listening socket
 * that stays readable nor log every failed accept(): it hands the failure
 * to mf_sock_accept_failed(), which sheds what waits in the backlog
 * through a reserve descriptor and logs at most once per
 * MF_SOCK_ACCEPT_LOG_MS, and then stops accepting for
 * MF_SOCK_ACCEPT_BACKOFF_MS.
 */
#ifndef MF_UTIL_SOCK_H
#define MF_UTIL_SOCK_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for "[v6 address]:port" and a terminating NUL. */
#define MF_SOCK_ADDR_STRLEN 64
/* How long a listener stops accepting after a failed accept(). */
#define MF_SOCK_ACCEPT_BACKOFF_MS 100
/* At most one message about failed accepts per listener this often. */
#define MF_SOCK_ACCEPT_LOG_MS 10000

typedef struct mf_sock_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} mf_sock_addr_t;

/*
 * The first address of host:port of family (AF_UNSPEC for any).  passive:
 * an address to bind, where a NULL or empty host means every local
 * address.  MF_ERR_INVALID (logged) when host does not resolve.
 */
mf_status_t mf_sock_resolve(const char *host, uint16_t port, int family,
                            bool passive, mf_sock_addr_t *addr_p);

/*
 * A TCP socket bound to host:port (resolved as by mf_sock_resolve), with
 * SO_REUSEADDR, listening with a backlog of SOMAXCONN.  *bound_p
 * (optional) gets the address it is bound to, so port 0 reports the port
 * it picked.  MF_ERR_ADDR_IN_USE when the port is taken.
 */
mf_status_t mf_sock_listen(const char *host, uint16_t port, int family,
                           int *fd_p, mf_sock_addr_t *bound_p);

/*
 * A TCP socket connected to host:port within timeout_ms, trying every
 * address host resolves to.  A failure is logged as a warning (the peer
 * may come back) and mapped by mf_sock_errno_status().
 */
mf_status_t mf_sock_connect(const char *host, uint16_t port,
                            uint32_t timeout_ms, int *fd_p);

/* The status of a failed connect() or socket operation with errno err:
 * refused, timeout, unreachable, reset, no memory, else MF_ERR_IO. */
mf_status_t mf_sock_errno_status(int err);

/* The port of an AF_INET or AF_INET6 address, 0 for other families. */
uint16_t mf_sock_addr_port(const struct sockaddr *addr);

/* "ip:port" or "[ip6]:port"; out_size MF_SOCK_ADDR_STRLEN is enough. */
void mf_sock_addr_str(const struct sockaddr *addr, char *out, size_t out_size);

/*
 * Raises the soft limit of open files (RLIMIT_NOFILE) to the hard limit,
 * for daemons that serve many connections; logs the limit in effect at
 * info level.  *limit_p (optional) gets the soft limit now in effect.
 */
mf_status_t mf_sock_nofile_raise(uint64_t *limit_p);

/* ---- failed accepts ---- */

/* What one listener keeps to handle failed accepts; used by one thread. */
typedef struct mf_sock_accept_guard {
    int reserve_fd;    /* /dev/null, given up to shed connections; or -1 */
    uint64_t log_ms;   /* when the last message was logged; 0: never */
    uint64_t failures; /* failed accepts since that message */
    uint64_t shed;     /* connections closed unserved since that message */
    char name[MF_SOCK_ADDR_STRLEN + 16]; /* the listener, for messages */
} mf_sock_accept_guard_t;

/* name: what the messages call the listener, e.g. "127.0.0.1:5802". */
void mf_sock_accept_guard_init(mf_sock_accept_guard_t *guard, const char *name);
void mf_sock_accept_guard_cleanup(mf_sock_accept_guard_t *guard);

/*
 * True for an error of accept() that concerns one pending connection only
 * (it was aborted, or its network failed) or none (EAGAIN, EINTR): the
 * listener goes on accepting.
 */
bool mf_sock_accept_transient(int err);

/*
 * accept() on listen_fd failed with err, not a transient error.  Out of
 * descriptors (EMFILE, ENFILE): gives up the reserve descriptor for a
 * moment to accept and close at once what waits in the backlog, so those
 * clients fail now instead of hanging.  Logs at most once per
 * MF_SOCK_ACCEPT_LOG_MS, with the failures and shed connections since the
 * last message.  The caller then stops accepting on listen_fd for
 * MF_SOCK_ACCEPT_BACKOFF_MS; connections already accepted are untouched.
 */
void mf_sock_accept_failed(mf_sock_accept_guard_t *guard, int listen_fd,
                           int err);

#endif
