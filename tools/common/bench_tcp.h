/*
 * Raw TCP baselines: what plain sockets do with the bytes a transport
 * moves, measured the way the benchmarks measure the transport.
 *
 * The transfer (mf-bench --transport tcp, mmc-bench --netns): a server
 * process serves a buffer to a client process over n connections, one
 * thread per connection on each side, each connection an equal share of
 * every transfer.  A write sends a header and the data and waits for a
 * 1-byte ack sent once all of it is in the server's buffer; a read sends a
 * header and receives the data: the round trips of a transport's put and
 * get.
 *
 * The ping-pong (mmc-bench): a header to the same server, a few bytes
 * back; the raw round trip next to a metadata call's.
 *
 * The stream (tcp-rma-bench): n loopback connections inside one process,
 * each with a sender and a receiver thread (blocking send, recv with
 * MSG_WAITALL), no framing and no per-iteration synchronization: the best
 * a TCP stream does.
 *
 * Invariants: every socket is blocking, with TCP_NODELAY on both ends of a
 * transfer connection and on the sending end of a stream connection;
 * nothing is sent with SIGPIPE raised.  Errors are logged with bench_err().
 */
#ifndef BENCH_TCP_H
#define BENCH_TCP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_TCP_MAX_CONNS  16   /* of one client */
#define BENCH_TCP_MAX_SERVED 160  /* of one server, all clients together */
#define BENCH_TCP_MAX_PING   4096 /* reply bytes of a ping at most */
#define BENCH_TCP_WRITE      1u   /* client buffer -> server buffer */
#define BENCH_TCP_READ       2u   /* server buffer -> client buffer */
#define BENCH_TCP_PING       3u   /* a header out, len bytes back */

typedef struct bench_tcp_server bench_tcp_server_t;
typedef struct bench_tcp_client bench_tcp_client_t;

/* One connection's thread of the server. */
typedef struct bench_tcp_conn {
    bench_tcp_server_t *srv;
    int fd;
    pthread_t tid;
} bench_tcp_conn_t;

/* The serving end of the transfer; accepts connections until stopped. */
struct bench_tcp_server {
    int lfd;
    uint8_t *buf;
    uint64_t size;
    pthread_t accept_tid;
    bool accepting;
    bench_tcp_conn_t conns[BENCH_TCP_MAX_SERVED];
    unsigned nconns;
    bool stop; /* atomic */
};

/* One connection's helper thread of the client. */
typedef struct bench_tcp_lane {
    bench_tcp_client_t *cli;
    unsigned index;
    pthread_t tid;
} bench_tcp_lane_t;

/* The driving end of the transfer: the caller drives connection 0,
 * helper threads the others. */
struct bench_tcp_client {
    unsigned n;
    int fds[BENCH_TCP_MAX_CONNS];
    bench_tcp_lane_t lanes[BENCH_TCP_MAX_CONNS];
    unsigned nthreads; /* helpers started + 1 */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t done;
    unsigned gen;
    unsigned finished;
    int failed;
    bool quit;
    uint32_t op;
    uint8_t *local;
    uint64_t remote; /* offset in the server's buffer */
    uint64_t total;
};

/* Listens on addr (dotted IPv4), an ephemeral port, and serves the size
 * bytes at buf (which must outlive the server); where gets "address port"
 * for bench_tcp_client_init.  0, or -1 (logged). */
int bench_tcp_server_start(bench_tcp_server_t *srv, const char *addr,
                           uint8_t *buf, uint64_t size, char *where,
                           size_t len);

/* Closes the connections and joins the threads; a no-op on a server that
 * did not start. */
void bench_tcp_server_stop(bench_tcp_server_t *srv);

/* Opens n <= BENCH_TCP_MAX_CONNS connections to the server at where
 * ("address port").  0, or -1 (logged); call bench_tcp_client_fini either
 * way. */
int bench_tcp_client_init(bench_tcp_client_t *cli, unsigned n,
                          const char *where);

/* Stops the helpers and closes the connections. */
void bench_tcp_client_fini(bench_tcp_client_t *cli);

/* Moves total bytes from (BENCH_TCP_WRITE) or into (BENCH_TCP_READ) local
 * over every connection, starting at offset 0 of the server's buffer.
 * 0, or -1 (logged). */
int bench_tcp_client_run(bench_tcp_client_t *cli, uint32_t op, uint8_t *local,
                         uint64_t total);

/* bench_tcp_client_run, at offset remote of the server's buffer. */
int bench_tcp_client_run_at(bench_tcp_client_t *cli, uint32_t op,
                            uint8_t *local, uint64_t remote, uint64_t total);

/* The ping-pong: a connection to the server at where ("address port"),
 * and one round trip on it (a 24-byte request out, reply <=
 * BENCH_TCP_MAX_PING bytes of the server's buffer back), blocking on both
 * ends like the transfer.  The connection's fd or -1 (logged); 0 or -1
 * (logged). */
int bench_tcp_ping_open(const char *where);
int bench_tcp_ping(int fd, uint32_t reply);

/* Streams iters pieces of size / lanes bytes over each of lanes loopback
 * connections at once, at most io_max bytes (0: a whole piece) per
 * send()/recv() call.  Bytes per nanosecond (GB/s), or -1 (logged). */
double bench_tcp_stream_run(unsigned lanes, size_t size, uint64_t iters,
                            size_t io_max);

#endif /* BENCH_TCP_H */
