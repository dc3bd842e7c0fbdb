/*
 * Plain blocking TCP sockets of tests that speak to a server byte by byte
 * (raw frames, garbage, half requests): connect, send everything, read an
 * exact count, and wait for the peer to close.
 *
 * Every read has a deadline; a send never raises SIGPIPE (MSG_NOSIGNAL),
 * so a test may keep sending to a server that already dropped it.
 */
#ifndef MF_TK_SOCK_H
#define MF_TK_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A blocking, close-on-exec TCP socket connected to addr:port (an IPv4
 * address), or -1 (logged). */
int tk_sock_connect(const char *addr, uint16_t port);
/* tk_sock_connect(), silent when nobody listens (a server that may not
 * be up yet). */
int tk_sock_try_connect(const char *addr, uint16_t port);

/* Sends all len bytes; false once the peer is gone. */
bool tk_sock_send_all(int fd, const void *data, size_t len);

/* Reads exactly len bytes from fd (a socket, or any descriptor poll()
 * takes, a pipe say) within timeout_ms; false at EOF, on an error or when
 * the time runs out. */
bool tk_sock_read_exact(int fd, void *buf, size_t len, unsigned timeout_ms);

/*
 * True when the peer closes fd (EOF or reset) within timeout_ms.  What it
 * sends before is read and dropped; dropped_p (may be NULL) gets how many
 * bytes that was.
 */
bool tk_sock_wait_closed(int fd, unsigned timeout_ms, size_t *dropped_p);

#endif /* MF_TK_SOCK_H */
