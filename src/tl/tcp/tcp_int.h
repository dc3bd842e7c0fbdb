/*
 * tcp transport, private to its files: one-sided put and get to peers on
 * any host.
 *
 * Files: tcp_iface.c (interface, listener, registration, keys, the ops
 * table), tcp_worker.c (the transport threads: epoll loop, commands,
 * socket helpers), tcp_client.c (endpoints, lanes, operations and their
 * completion), tcp_server.c (serving peers' requests from the registered
 * segments).
 *
 * Every interface listens on a TCP port and runs `lanes` worker threads,
 * each with its own epoll set.  A worker owns sockets of two kinds:
 *   - lanes: connections this process opened to a peer's interface, one of
 *     the `lanes` connections of an endpoint; requests go out on them and
 *     responses come back;
 *   - conns: connections peers opened to us; requests come in and are
 *     served from (PUT: received into, GET: sent from) our registered
 *     segments, responses go out in request order.
 * All sockets are non-blocking and edge-triggered; host data moves with
 * writev/recv straight between the socket and the final memory: no staging
 * buffer, no extra copy.  Device memory (a local buffer of an operation,
 * or a served segment) cannot meet a socket: it passes through a staging
 * buffer of host memory registered for the device's DMA, one chunk at a
 * time per direction of a lane or conn, copied by the memory kind when the
 * chunk starts to be sent or has been received.  The socket buffers keep
 * the link busy meanwhile: the copy of the next chunk overlaps the
 * sending of the previous one.
 *
 * An operation (put/get) waits in its endpoint's queue; lanes pull it in
 * chunks of at most chunk_size bytes while they have fewer than their
 * window of bytes (and MF_TL_TCP_RING requests) in flight, so a large
 * operation spreads over every lane and is pipelined on each.  Operations
 * of at most one chunk wait in a queue of their own that lanes serve
 * first, so a small operation is never queued behind the rest of a large
 * one, only behind the window already in flight.
 *
 * Invariants:
 *   - a socket and the state of its lane or conn are touched only by the
 *     worker that owns it; other threads reach a worker through its
 *     command queue (and eventfd), and wait for synchronous commands;
 *   - an operation's queue position, next offset, chunks in flight and
 *     status are under its endpoint's lock; comp->cb fires exactly once,
 *     outside any lock, when no chunk is queued or in flight;
 *   - a served request is checked against the registered segments (key,
 *     address and length) before any byte is touched; anything else gets
 *     an error response (a PUT's data is read and dropped), and a peer
 *     that breaks the framing is disconnected;
 *   - a lane's connection starts with HELLO (tcp.h) and carries requests
 *     only after its ACK; a lane that breaks fails the chunks it had in
 *     flight with a peer error (their operations fail), except the PUTs
 *     already on the wire: those wait in the lane's fence until the next
 *     connection's ACK says the broken one is closed at the peer, or that
 *     connection fails, so a failed PUT never lands after its failure was
 *     reported; it reconnects when there is work or a fence; a failed
 *     connect fails everything queued on the endpoint, so nothing waits
 *     on a peer that is gone;
 *   - a segment being deregistered is first removed from the table, then
 *     every worker drops the conns that still point into it.
 */
#ifndef MF_TL_TCP_TCP_INT_H
#define MF_TL_TCP_TCP_INT_H

#include "tl/tcp/tcp.h"

#include "util/codec.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MF_TL_TCP_ADDR_MAGIC    0x41544d46u /* "FMTA" */
#define MF_TL_TCP_ADDR_VERSION  2           /* with the interface's secret */
#define MF_TL_TCP_RKEY_MAGIC    0x4b544d46u /* "FMTK" */
#define MF_TL_TCP_RKEY_VERSION  1
#define MF_TL_TCP_RING          64  /* requests in flight per lane / conn */
#define MF_TL_TCP_WINDOW_CHUNKS 8   /* chunks in flight per lane */
#define MF_TL_TCP_IOV_MAX       256 /* iovecs per sendmsg/recvmsg */
#define MF_TL_TCP_SCRATCH       (64u * 1024u)
#define MF_TL_TCP_CONNECT_MS    10000 /* at most; tcp_timeout_ms if less */
#define MF_TL_TCP_EVENTS        64

typedef struct mf_tl_tcp_iface mf_tl_tcp_iface_t;
typedef struct mf_tl_tcp_worker mf_tl_tcp_worker_t;
typedef struct mf_tl_tcp_ep mf_tl_tcp_ep_t;
typedef struct mf_tl_tcp_op mf_tl_tcp_op_t;

typedef enum mf_tl_tcp_sock_type {
    MF_TL_TCP_SOCK_LISTEN = 1,
    MF_TL_TCP_SOCK_EVENT,
    MF_TL_TCP_SOCK_LANE,
    MF_TL_TCP_SOCK_CONN,
} mf_tl_tcp_sock_type_t;

/* First member of everything an epoll event points at. */
typedef struct mf_tl_tcp_sock {
    mf_tl_tcp_sock_type_t type;
    int fd;
} mf_tl_tcp_sock_t;

/* Host memory that device data passes through (see above): grown to the
 * largest chunk, registered for the DMA of the device kind; tag names the
 * chunk or response it holds. */
typedef struct mf_tl_tcp_stage {
    mf_tl_stage_mem_t mem;
    uint64_t tag;
    bool valid;
} mf_tl_tcp_stage_t;

/* A registered segment that peers may reach. */
typedef struct mf_tl_tcp_region {
    mf_tl_memh_t super;
    uint64_t key;
    mf_mem_kind_t kind; /* of the segment's memory */
    bool exported;      /* in the served table */
} mf_tl_tcp_region_t;

typedef struct mf_tl_tcp_rkey {
    mf_tl_rkey_t super;
    uint64_t key;
} mf_tl_tcp_rkey_t;

/* ------------------------------------------------------- client side */

struct mf_tl_tcp_op {
    mf_list_t qelem; /* in ep->small_q or ep->large_q while queued */
    mf_list_t aelem; /* in ep->all_ops until completed */
    mf_tl_comp_t *comp;
    uint8_t code; /* MF_TL_TCP_OP_PUT or _GET */
    bool queued;
    mf_mem_kind_t kind; /* of buf */
    uint8_t *buf;
    uint64_t raddr;
    uint64_t size;
    uint64_t key;
    uint64_t seq;
    uint64_t next_off;
    uint32_t inflight;
    mf_status_t status;
    uint64_t t0; /* the tracer's start (0: off) */
};

typedef struct mf_tl_tcp_flush {
    mf_list_t elem;
    mf_tl_comp_t *comp;
    uint64_t seq; /* completes when every op up to seq is done */
} mf_tl_tcp_flush_t;

/* The operations of a PUTV or GETV chunk, whole small ones of one
 * endpoint, code, key and host memory, and its piece table. */
typedef struct mf_tl_tcp_vec {
    uint32_t n;
    mf_tl_tcp_op_t *ops[MF_TL_TCP_VEC_MAX];
    uint8_t table[MF_TL_TCP_VEC_MAX * MF_TL_TCP_VEC_ENTRY];
} mf_tl_tcp_vec_t;

typedef struct mf_tl_tcp_chunk {
    mf_tl_tcp_op_t *op;   /* the first operation of a vector */
    mf_tl_tcp_vec_t *vec; /* a PUTV or GETV's (owned); NULL: a PUT or GET
                             of [off, off + len) of op */
    uint64_t off;
    uint64_t len;
    uint64_t req_id;
    mf_status_t fail; /* its device data could not be staged: it went out
                         empty, and fails its operation */
    uint8_t hdr[MF_TL_TCP_HDR_SIZE];
} mf_tl_tcp_chunk_t;

typedef enum mf_tl_tcp_lane_state {
    MF_TL_TCP_LANE_IDLE = 0, /* no socket */
    MF_TL_TCP_LANE_CONNECTING,
    MF_TL_TCP_LANE_CONNECTED,
} mf_tl_tcp_lane_state_t;

/* How far a connecting lane got in the handshake. */
typedef enum mf_tl_tcp_hs {
    MF_TL_TCP_HS_CONNECT = 0, /* connect() in progress */
    MF_TL_TCP_HS_CHALLENGE,   /* connected, the server's CHALLENGE awaited */
    MF_TL_TCP_HS_ACK,         /* HELLO sent, its HELLO_ACK awaited */
} mf_tl_tcp_hs_t;

typedef struct mf_tl_tcp_lane {
    mf_tl_tcp_sock_t sock;
    mf_tl_tcp_ep_t *ep;
    mf_tl_tcp_worker_t *worker;
    unsigned index;
    /* worker only */
    mf_tl_tcp_lane_state_t state;
    uint64_t connect_deadline;
    mf_list_t celem; /* in worker->connecting */
    mf_tl_tcp_chunk_t ring[MF_TL_TCP_RING];
    unsigned head;   /* oldest chunk in flight */
    unsigned count;  /* chunks in the ring */
    unsigned nsent;  /* of them, fully sent (from head) */
    size_t sent_off; /* bytes of ring[head + nsent] sent */
    uint64_t inflight_bytes;
    uint8_t in_hdr[MF_TL_TCP_HDR_SIZE];
    size_t in_got;
    bool in_payload;
    uint64_t in_left;
    struct iovec in_iov[MF_TL_TCP_VEC_MAX]; /* where GET data goes */
    unsigned in_iov_at;
    unsigned in_iov_n;
    bool in_staged;              /* the payload goes through in_stage */
    mf_tl_tcp_stage_t out_stage; /* PUT data of device memory */
    mf_tl_tcp_stage_t in_stage;  /* GET data into device memory */
    uint64_t next_req_id;
    /* CONNECTING: the handshake (tcp.h) so far, what of the message
     * awaited (CHALLENGE, HELLO_ACK) arrived, and both nonces */
    mf_tl_tcp_hs_t hs;
    uint8_t hs_in[MF_TL_TCP_HDR_SIZE + MF_TL_TCP_NONCE];
    size_t hs_got;
    uint8_t nonce_s[MF_TL_TCP_NONCE];
    uint8_t nonce_c[MF_TL_TCP_NONCE];
    bool dying; /* being destroyed: nothing more is fenced */
    /* PUT chunks a broken connection had on the wire, failing with
     * status once the peer closed that connection (see above) */
    unsigned nfence;
    struct {
        mf_tl_tcp_op_t *op;
        mf_tl_tcp_vec_t *vec;
        mf_status_t status;
    } fence[MF_TL_TCP_RING];
    /* under worker->lock */
    bool kicked;
    mf_list_t kelem; /* in worker->kicked */
} mf_tl_tcp_lane_t;

struct mf_tl_tcp_ep {
    mf_tl_ep_t super;
    struct sockaddr_in addr;
    uint8_t secret[MF_TL_TCP_SECRET]; /* of the peer's interface */
    char name[64];                    /* "ip:port", for messages */
    unsigned nlanes;
    mf_tl_tcp_lane_t *lanes;
    atomic_uint rr; /* lane kicked for the next small op */
    pthread_mutex_t lock;
    mf_list_t small_q;
    mf_list_t large_q;
    mf_list_t all_ops; /* in issue order */
    mf_list_t flushes;
    uint64_t next_seq;
    uint64_t hello_id; /* in its lanes' HELLOs: random, not 0 */
};

/* ------------------------------------------------------- server side */

typedef struct mf_tl_tcp_resp {
    uint8_t hdr[MF_TL_TCP_HDR_SIZE];
    const uint8_t *data; /* len bytes; or, when vec is set, its pieces */
    uint64_t len;
    struct iovec *vec; /* a GETV's pieces (owned), NULL otherwise */
    uint32_t nvec;
    mf_tl_tcp_region_t *region; /* data points into it */
    uint64_t seq;               /* of the conn's responses, for staging */
} mf_tl_tcp_resp_t;

typedef enum mf_tl_tcp_in_state {
    MF_TL_TCP_IN_HDR = 0,
    MF_TL_TCP_IN_TABLE,   /* a PUTV/GETV's piece table into in_table */
    MF_TL_TCP_IN_DATA,    /* PUT data into in_iov */
    MF_TL_TCP_IN_DISCARD, /* PUT data of a refused request */
    MF_TL_TCP_IN_HELLO,   /* a HELLO's nonce and proof into in_table */
} mf_tl_tcp_in_state_t;

typedef struct mf_tl_tcp_conn {
    mf_tl_tcp_sock_t sock;
    mf_tl_tcp_worker_t *worker;
    mf_list_t elem; /* in worker->conns */
    uint64_t id;    /* unique in the interface */
    bool hello;     /* said HELLO: hello_key is its (endpoint, lane) */
    uint8_t nonce_s[MF_TL_TCP_NONCE]; /* its CHALLENGE */
    uint8_t proof_s[MF_TL_TCP_MAC];   /* its HELLO_ACK's proof */
    bool paused; /* reads nothing until its earlier connection closed */
    uint64_t hello_key[2];
    char peer[64];
    mf_tl_tcp_in_state_t in_state;
    uint8_t in_hdr[MF_TL_TCP_HDR_SIZE];
    size_t in_got;
    mf_tl_tcp_hdr_t in_req;
    uint8_t in_table[MF_TL_TCP_VEC_MAX * MF_TL_TCP_VEC_ENTRY];
    /* the request's pieces (one for PUT/GET) */
    uint64_t in_addrs[MF_TL_TCP_VEC_MAX];
    uint64_t in_lens[MF_TL_TCP_VEC_MAX];
    /* where PUT data goes, consumed from in_iov_at */
    struct iovec in_iov[MF_TL_TCP_VEC_MAX];
    unsigned in_iov_at;
    unsigned in_iov_n;
    uint64_t in_left; /* PUT data bytes still to come */
    mf_status_t in_status;
    mf_tl_tcp_region_t *in_region;
    bool in_dev;                 /* PUT into device memory: through in_stage */
    mf_tl_tcp_stage_t in_stage;  /* PUT data on its way to device memory */
    mf_tl_tcp_stage_t out_stage; /* GET data on its way from it */
    mf_tl_tcp_resp_t ring[MF_TL_TCP_RING];
    unsigned head;
    unsigned count;
    size_t sent_off;
    uint64_t next_resp_seq;
} mf_tl_tcp_conn_t;

/* ------------------------------------------------------- workers */

typedef struct mf_tl_tcp_cmd {
    mf_list_t elem;
    void (*fn)(mf_tl_tcp_worker_t *worker, void *arg);
    void *arg;
    /* an asynchronous command that arrives after its worker stopped: what
     * frees it then (may be NULL) */
    void (*drop)(void *arg);
    bool sync;
    bool done;
} mf_tl_tcp_cmd_t;

struct mf_tl_tcp_worker {
    mf_tl_tcp_iface_t *iface;
    unsigned index;
    pthread_t thread;
    bool started;
    int epfd;
    mf_tl_tcp_sock_t ev; /* eventfd */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* synchronous commands done */
    mf_list_t cmds;
    mf_list_t kicked;
    bool stop;
    bool woken; /* eventfd written and not read yet */
    /* worker only */
    mf_list_t conns;
    mf_list_t dead_conns; /* closed, freed once the events in hand are
                             handled (one of them may still point here) */
    mf_list_t connecting;
    uint8_t *scratch;
};

struct mf_tl_tcp_iface {
    mf_tl_iface_t super;
    unsigned nworkers;
    mf_tl_tcp_worker_t *workers;
    mf_tl_tcp_sock_t listen;
    mf_sock_accept_guard_t accept_guard; /* set up while listen.fd is open */
    uint64_t listen_resume_ms; /* accepts paused until then; 0: not paused;
                                  worker 0 only */
    struct sockaddr_in adv;    /* advertised address */
    uint8_t secret[MF_TL_TCP_SECRET]; /* proves a peer got adv from the pool
                                         (tcp.h, the handshake) */
    mf_tl_tcp_config_t cfg;
    unsigned lanes;
    uint64_t chunk;
    uint64_t window;              /* bytes in flight per lane */
    uint32_t timeout_ms;          /* dead-peer timeout (tcp.timeout_ms) */
    atomic_uint next_worker;      /* of the next endpoint's first lane */
    atomic_uint next_conn_worker; /* of the next accepted connection */
    pthread_mutex_t regions_lock;
    mf_hmap_t regions; /* key -> exported mf_tl_tcp_region_t: found at
                          every request, however many are registered */
    atomic_bool proto_warned;
    atomic_bool refuse_warned;
    atomic_uint_least64_t next_conn_id;
    pthread_mutex_t hellos_lock;
    mf_hmap_t hellos; /* peers' (endpoint, lane) -> mf_tl_tcp_hello_t of
                         their newest connection here */
    /* PUTV/GETV requests served, and their pieces */
    atomic_uint_fast64_t vec_requests;
    atomic_uint_fast64_t vec_pieces;
    struct mf_tl_tcp_hold *hold; /* tests: the threads held */
};

/* The newest connection of a peer's lane (iface->hellos). */
typedef struct mf_tl_tcp_hello {
    uint64_t conn_id;
    mf_tl_tcp_worker_t *worker;
} mf_tl_tcp_hello_t;

/* ---- tcp_client.c: endpoints, lanes and operations ---- */

mf_status_t mf_tl_tcp_ep_create(mf_tl_iface_t *tl_iface, const void *addr,
                                size_t len, mf_tl_ep_t **ep_p);
void mf_tl_tcp_ep_destroy(mf_tl_ep_t *tl_ep);
mf_status_t mf_tl_tcp_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_tcp_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr,
                          size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp);
mf_status_t mf_tl_tcp_flush(mf_tl_ep_t *tl_ep, mf_tl_comp_t *comp);
unsigned mf_tl_tcp_progress(mf_tl_iface_t *iface);
/* Worker side of a lane: an epoll event, more work to pull, closing it
 * (fail_queued: fail what waits in the endpoint's queues too). */
void mf_tl_tcp_lane_event(mf_tl_tcp_lane_t *lane, uint32_t events);
void mf_tl_tcp_lane_run(mf_tl_tcp_lane_t *lane);
void mf_tl_tcp_lane_kick(mf_tl_tcp_lane_t *lane);
void mf_tl_tcp_lane_close(mf_tl_tcp_lane_t *lane, mf_status_t status,
                          bool fail_queued);
void mf_tl_tcp_lane_fail(mf_tl_tcp_lane_t *lane, mf_status_t status,
                         bool fail_queued, const char *why);

/* ---- tcp_server.c: peers' connections ---- */

/* Accepts what the listener has (worker 0), or pauses while the process
 * is out of descriptors. */
void mf_tl_tcp_accept(mf_tl_tcp_worker_t *worker);
bool mf_tl_tcp_accept_paused(mf_tl_tcp_worker_t *worker);
void mf_tl_tcp_accept_resume(mf_tl_tcp_worker_t *worker);
void mf_tl_tcp_conn_event(mf_tl_tcp_conn_t *conn, uint32_t events);
/* Closes conn at once; its memory goes at the next mf_tl_tcp_conns_reap()
 * of its worker (after the events in hand). */
void mf_tl_tcp_conn_close(mf_tl_tcp_conn_t *conn);
void mf_tl_tcp_conns_reap(mf_tl_tcp_worker_t *worker);

/* ---- tcp_iface.c ---- */

/* A random 64-bit token (segment keys, lane HELLOs). */
uint64_t mf_tl_tcp_new_key(void);

/* A peer's packed interface address and secret (either may be NULL);
 * MF_ERR_PROTO if malformed. */
mf_status_t mf_tl_tcp_addr_unpack(const void *buf, size_t len,
                                  struct sockaddr_in *sin,
                                  uint8_t secret[MF_TL_TCP_SECRET]);
/* Random bytes (getrandom); MF_ERR_IO (logged) if the kernel has none. */
mf_status_t mf_tl_tcp_random(void *buf, size_t len);

/* ---- tcp_worker.c: threads and socket helpers ---- */

/* Makes room for len bytes in stage for memory of kind (registered for
 * its DMA); MF_ERR_NOMEM (logged). */
mf_status_t mf_tl_tcp_stage_reserve(mf_tl_tcp_stage_t *stage,
                                    mf_mem_kind_t kind, size_t len);
void mf_tl_tcp_stage_free(mf_tl_tcp_stage_t *stage);

mf_status_t mf_tl_tcp_worker_init(mf_tl_tcp_iface_t *iface,
                                  mf_tl_tcp_worker_t *worker, unsigned index);
void *mf_tl_tcp_worker_main(void *arg);
void mf_tl_tcp_worker_cleanup(mf_tl_tcp_worker_t *worker);
/* Queues cmd for the worker's thread (wakes it). */
void mf_tl_tcp_worker_post(mf_tl_tcp_worker_t *worker, mf_tl_tcp_cmd_t *cmd);
/* Runs fn(worker, arg) on the worker's thread and waits for it. */
void mf_tl_tcp_worker_run(mf_tl_tcp_worker_t *worker,
                          void (*fn)(mf_tl_tcp_worker_t *, void *), void *arg);
void mf_tl_tcp_worker_stop_cmd(mf_tl_tcp_worker_t *worker, void *arg);
int mf_tl_tcp_epoll_add(mf_tl_tcp_worker_t *worker, mf_tl_tcp_sock_t *sock,
                        uint32_t events);
mf_status_t mf_tl_tcp_errno_status(int err);
/* Options of every connection: no delay, keepalive and user timeout
 * derived from timeout_ms. */
void mf_tl_tcp_sockopts(int fd, uint32_t timeout_ms);
ssize_t mf_tl_tcp_sendv(int fd, struct iovec *iov, size_t n);
/* recvmsg into iov[0..n) (at most MF_TL_TCP_IOV_MAX of them). */
ssize_t mf_tl_tcp_recvv(int fd, struct iovec *iov, size_t n);
/* Appends to iov (*n used of max) the bytes of src[0..nsrc) from byte
 * skip on, as far as there is room; returns the bytes appended and sets
 * *whole_p when they reach the end of src. */
size_t mf_tl_tcp_iov_append(struct iovec *iov, size_t *n, size_t max,
                            const struct iovec *src, size_t nsrc, size_t skip,
                            bool *whole_p);
/* Consumes bytes received into iov[*at..n): whole entries advance *at,
 * a partial one is shortened from its front. */
void mf_tl_tcp_iov_consume(struct iovec *iov, unsigned *at, unsigned n,
                           size_t bytes);
void mf_tl_tcp_addr_str(const struct sockaddr_in *sin, char *out, size_t len);
/* The local address the kernel would use towards host. */
mf_status_t mf_tl_tcp_route_to(const char *host, struct in_addr *out);

#endif
