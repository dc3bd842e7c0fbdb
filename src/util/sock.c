/*
 * TCP socket helpers shared by every listener and connector of the
 * project: the net server and client, the meta service's HTTP endpoint
 * and the tcp transport.
 *
 * Invariants: every descriptor made here is close-on-exec and
 * non-blocking, and none leaks on an error path; a function that fails
 * logs why once and leaves its outputs untouched.  An accept guard
 * belongs to one listener and is used by one thread only; its reserve
 * descriptor is open whenever the process had one to spare.
 */
#include "util/sock.h"

#include "util/log.h"
#include "util/misc.h"

#include <arpa/inet.h>
#include <memfabric/mf_init.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Connections shed per failed accept, so one call stays bounded. */
#define MF_SOCK_SHED_MAX 4096

/* ---- addresses ---- */

static const char *mf_sock_host_str(const char *host)
{
    return ((host != NULL) && (host[0] != '\0')) ? host : "*";
}

static mf_status_t mf_sock_getaddrinfo(const char *host, uint16_t port,
                                       int family, bool passive,
                                       struct addrinfo **res_p)
{
    struct addrinfo hints;
    char port_str[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if ((host != NULL) && (host[0] == '\0')) {
        host = NULL;
    }
    if ((host == NULL) && !passive) {
        mf_error("no host to resolve");
        return MF_ERR_INVALID;
    }
    snprintf(port_str, sizeof(port_str), "%u", port);
    rc = getaddrinfo(host, port_str, &hints, res_p);
    if (rc != 0) {
        mf_error("cannot resolve %s: %s", mf_sock_host_str(host),
                 (rc == EAI_SYSTEM) ? strerror(errno) : gai_strerror(rc));
        return MF_ERR_INVALID;
    }
    return MF_OK;
}

mf_status_t mf_sock_resolve(const char *host, uint16_t port, int family,
                            bool passive, mf_sock_addr_t *addr_p)
{
    struct addrinfo *res;
    mf_status_t status;

    status = mf_sock_getaddrinfo(host, port, family, passive, &res);
    if (status != MF_OK) {
        return status;
    }
    memset(addr_p, 0, sizeof(*addr_p));
    memcpy(&addr_p->ss, res->ai_addr, res->ai_addrlen);
    addr_p->len = res->ai_addrlen;
    freeaddrinfo(res);
    return MF_OK;
}

uint16_t mf_sock_addr_port(const struct sockaddr *addr)
{
    switch (addr->sa_family) {
    case AF_INET:
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    case AF_INET6:
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    default:
        return 0;
    }
}

void mf_sock_addr_str(const struct sockaddr *addr, char *out, size_t out_size)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;

        inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
        snprintf(out, out_size, "%s:%u", ip, ntohs(in4->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, out_size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, out_size, "?(family %d)", addr->sa_family);
    }
}

mf_status_t mf_sock_errno_status(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return MF_ERR_CONN_REFUSED;
    case ETIMEDOUT:
        return MF_ERR_TIMEOUT;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return MF_ERR_UNREACHABLE;
    case ECONNRESET:
    case ECONNABORTED:
        return MF_ERR_CONN_RESET;
    case ENOMEM:
    case ENOBUFS:
        return MF_ERR_NOMEM;
    default:
        return MF_ERR_IO;
    }
}

/* ---- listening ---- */

mf_status_t mf_sock_listen(const char *host, uint16_t port, int family,
                           int *fd_p, mf_sock_addr_t *bound_p)
{
    mf_sock_addr_t addr, bound;
    char name[MF_SOCK_ADDR_STRLEN];
    mf_status_t status;
    int fd, one = 1;

    status = mf_sock_resolve(host, port, family, true, &addr);
    if (status != MF_OK) {
        goto err;
    }
    mf_sock_addr_str((struct sockaddr *)&addr.ss, name, sizeof(name));
    fd = socket(addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        mf_error("socket() for %s failed: %m", name);
        status = MF_ERR_IO;
        goto err;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        mf_error("setsockopt(SO_REUSEADDR) for %s failed: %m", name);
        status = MF_ERR_IO;
        goto err_close_fd;
    }
    if (bind(fd, (struct sockaddr *)&addr.ss, addr.len) < 0) {
        mf_error("bind(%s) failed: %m", name);
        status = (errno == EADDRINUSE) ? MF_ERR_ADDR_IN_USE : MF_ERR_IO;
        goto err_close_fd;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        mf_error("listen(%s) failed: %m", name);
        status = (errno == EADDRINUSE) ? MF_ERR_ADDR_IN_USE : MF_ERR_IO;
        goto err_close_fd;
    }
    memset(&bound, 0, sizeof(bound));
    bound.len = sizeof(bound.ss);
    if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) < 0) {
        mf_error("getsockname() of %s failed: %m", name);
        status = MF_ERR_IO;
        goto err_close_fd;
    }
    if (bound_p != NULL) {
        *bound_p = bound;
    }
    *fd_p = fd;
    return MF_OK;

err_close_fd:
    close(fd);
err:
    return status;
}

/* ---- connecting ---- */

/* Connects one address before deadline_ms; *err_p gets the errno. */
static int mf_sock_connect_addr(const struct addrinfo *ai, uint64_t deadline_ms,
                                int *err_p)
{
    socklen_t err_len = sizeof(int);
    struct pollfd pfd;
    uint64_t now;
    int fd, rc, err;

    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err_p = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        return fd;
    }
    if (errno != EINPROGRESS) {
        *err_p = errno;
        goto err_close_fd;
    }
    for (;;) {
        now = mf_time_ms();
        if (now >= deadline_ms) {
            *err_p = ETIMEDOUT;
            goto err_close_fd;
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        rc = poll(&pfd, 1, (int)MF_MIN(deadline_ms - now, (uint64_t)INT32_MAX));
        if (rc > 0) {
            break;
        }
        if ((rc < 0) && (errno != EINTR)) {
            *err_p = errno;
            goto err_close_fd;
        }
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0) {
        *err_p = errno;
        goto err_close_fd;
    }
    if (err != 0) {
        *err_p = err;
        goto err_close_fd;
    }
    return fd;

err_close_fd:
    close(fd);
    return -1;
}

mf_status_t mf_sock_connect(const char *host, uint16_t port,
                            uint32_t timeout_ms, int *fd_p)
{
    uint64_t deadline_ms = mf_time_ms() + timeout_ms;
    struct addrinfo hints, *res, *ai;
    int fd = -1, err = ETIMEDOUT, rc;
    char port_str[8], name[300];

    /* Not mf_sock_getaddrinfo(): a name that does not resolve now may
     * resolve later, so it is a warning and a peer error here. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port_str, sizeof(port_str), "%u", port);
    if (host == NULL) {
        mf_error("no host to connect to");
        return MF_ERR_INVALID;
    }
    rc = getaddrinfo(host, port_str, &hints, &res);
    if (rc != 0) {
        mf_warn("cannot resolve %s: %s", host,
                (rc == EAI_SYSTEM) ? strerror(errno) : gai_strerror(rc));
        return MF_ERR_UNREACHABLE;
    }
    for (ai = res; (ai != NULL) && (fd < 0); ai = ai->ai_next) {
        fd = mf_sock_connect_addr(ai, deadline_ms, &err);
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(name, sizeof(name),
                 (strchr(host, ':') != NULL) ? "[%s]:%u" : "%s:%u", host, port);
        if (err == ETIMEDOUT) {
            mf_warn("cannot connect to %s: no answer within %u ms", name,
                    timeout_ms);
        } else {
            mf_warn("cannot connect to %s: %s", name, strerror(err));
        }
        return mf_sock_errno_status(err);
    }
    *fd_p = fd;
    return MF_OK;
}

/* ---- the open files limit ---- */

mf_status_t mf_sock_nofile_raise(uint64_t *limit_p)
{
    struct rlimit rl;
    rlim_t old;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        mf_error("getrlimit(RLIMIT_NOFILE) failed: %m");
        return MF_ERR_IO;
    }
    old = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            /* Not fatal: the process runs with the limit it had. */
            mf_warn("cannot raise the open files limit from %llu to %llu: "
                    "%m",
                    (unsigned long long)old, (unsigned long long)rl.rlim_max);
            rl.rlim_cur = old;
        } else {
            mf_info("open files limit raised from %llu to %llu (the hard "
                    "limit)",
                    (unsigned long long)old, (unsigned long long)rl.rlim_cur);
        }
    } else {
        mf_info("open files limit %llu (the hard limit)",
                (unsigned long long)rl.rlim_cur);
    }
    if (limit_p != NULL) {
        *limit_p = (uint64_t)rl.rlim_cur;
    }
    return MF_OK;
}

MF_API mf_status_t mf_nofile_limit_raise(uint64_t *limit_p)
{
    return mf_sock_nofile_raise(limit_p);
}

/* ---- failed accepts ---- */

static int mf_sock_reserve_open(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void mf_sock_accept_guard_init(mf_sock_accept_guard_t *guard, const char *name)
{
    memset(guard, 0, sizeof(*guard));
    mf_strlcpy(guard->name, name, sizeof(guard->name));
    /* Without one (no descriptor to spare now), shedding waits until one
     * could be taken again. */
    guard->reserve_fd = mf_sock_reserve_open();
}

void mf_sock_accept_guard_cleanup(mf_sock_accept_guard_t *guard)
{
    if (guard->reserve_fd >= 0) {
        close(guard->reserve_fd);
        guard->reserve_fd = -1;
    }
}

bool mf_sock_accept_transient(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    case ECONNABORTED:
    /* Linux reports network errors of the pending connection (accept(2)) */
    case EPROTO:
    case ENOPROTOOPT:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENONET:
    case EOPNOTSUPP:
    case EPERM: /* a firewall rule refused it */
        return true;
    default:
        return false;
    }
}

/* Accepts and closes what waits on listen_fd with the reserve descriptor
 * given up; returns how many. */
static uint64_t mf_sock_accept_shed(mf_sock_accept_guard_t *guard,
                                    int listen_fd)
{
    uint64_t shed = 0;
    int fd;

    if (guard->reserve_fd < 0) {
        guard->reserve_fd = mf_sock_reserve_open();
        return 0; /* none to give up this time */
    }
    close(guard->reserve_fd);
    while (shed < MF_SOCK_SHED_MAX) {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EINTR) || (errno == ECONNABORTED)) {
                continue;
            }
            break; /* EAGAIN: none left; EMFILE: another thread took it */
        }
        close(fd);
        shed++;
    }
    guard->reserve_fd = mf_sock_reserve_open();
    return shed;
}

void mf_sock_accept_failed(mf_sock_accept_guard_t *guard, int listen_fd,
                           int err)
{
    bool no_fds = (err == EMFILE) || (err == ENFILE);
    uint64_t now = mf_time_ms();

    guard->failures++;
    if (no_fds) {
        guard->shed += mf_sock_accept_shed(guard, listen_fd);
    }
    if ((guard->log_ms != 0) && (now - guard->log_ms < MF_SOCK_ACCEPT_LOG_MS)) {
        return;
    }
    mf_warn("%s: accept() failed: %s; pausing accepts for %u ms (%llu "
            "failed and %llu connections closed unserved since the last "
            "such message)%s",
            guard->name, strerror(err), MF_SOCK_ACCEPT_BACKOFF_MS,
            (unsigned long long)guard->failures,
            (unsigned long long)guard->shed,
            no_fds ? "; raise the open files limit (ulimit -n) or serve "
                     "fewer connections"
                   : "");
    guard->log_ms = now;
    guard->failures = 0;
    guard->shed = 0;
}
