/*
 * Blocking TCP sockets of tests (see tk_sock.h).  Waits are poll() with
 * what is left of one deadline per call, so a call never outlives its
 * timeout however the bytes trickle in.
 */
#include "tk_sock.h"
#include "tk_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int tk_sock_connect_ex(const char *addr, uint16_t port,
                              bool quiet_refused)
{
    struct sockaddr_in sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        tk_print("connect: '%s' is not an IPv4 address", addr);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tk_print("socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (!quiet_refused || errno != ECONNREFUSED) {
            tk_print("connect to %s:%u failed: %s", addr, port,
                     strerror(errno));
        }
        close(fd);
        return -1;
    }
    return fd;
}

int tk_sock_connect(const char *addr, uint16_t port)
{
    return tk_sock_connect_ex(addr, port, false);
}

int tk_sock_try_connect(const char *addr, uint16_t port)
{
    return tk_sock_connect_ex(addr, port, true);
}

bool tk_sock_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Waits until fd is readable or the deadline passes. */
static bool tk_sock_wait_readable(int fd, uint64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    for (;;) {
        uint64_t now = tk_time_ms();
        int n;

        if (now >= deadline) {
            return false;
        }
        n = poll(&pfd, 1, (int)(deadline - now));
        if (n == 1) {
            return true;
        }
        if (n < 0 && errno != EINTR) {
            return false;
        }
    }
}

bool tk_sock_read_exact(int fd, void *buf, size_t len, unsigned timeout_ms)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    char *p = buf;

    while (len > 0) {
        ssize_t n;

        if (!tk_sock_wait_readable(fd, deadline)) {
            return false;
        }
        n = read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool tk_sock_wait_closed(int fd, unsigned timeout_ms, size_t *dropped_p)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    size_t dropped = 0;
    char buf[4096];
    bool closed = false;

    while (tk_sock_wait_readable(fd, deadline)) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            closed = true;
            break;
        }
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (n > 0) {
            dropped += (size_t)n;
        }
    }
    if (dropped_p != NULL) {
        *dropped_p = dropped;
    }
    return closed;
}
