/*
 * Control-plane messaging: framed binary request/response over TCP on
 * libevent.
 *
 * Every frame is a 24-byte header followed by body_len bytes of body.  The
 * header, little-endian on the wire:
 *
 *   u32 magic     MF_NET_MAGIC
 *   u8  version   MF_NET_VERSION; a frame of another version is rejected
 *   u8  kind      MF_NET_KIND_REQUEST / _RESPONSE / _NOTIFY
 *   u16 opcode    chosen by the service that uses the server
 *   i32 status    mf_status_t of a response, 0 in requests and notifies
 *   u32 body_len  bounded by the receiver's max_body before anything is read
 *   u64 req_id    chosen by the client, echoed in the response; 0 in notifies
 *
 * A peer that sends a bad magic, version, kind or an oversized length is
 * disconnected; nothing it sent reaches the service.  A server takes
 * frames of at most untrusted_max_body bytes on a connection until the
 * service trusts it (mf_net_conn_set_trusted, after its handshake), and
 * closes a connection that sent nothing for idle_timeout_ms, so a peer
 * that never completes a handshake or stalls in the middle of a frame
 * holds little memory and not for long.  Bodies are encoded
 * with mf_wbuf and decoded with mf_rbuf (util/codec.h), which
 * bounds-check every read.
 *
 * Both server and client run an event loop on a thread of their own.  The
 * byte stream of a connection is created by an mf_net_stream_ops_t, so
 * TLS (OpenSSL bufferevents) can replace the plain socket without touching
 * callers.
 */
#ifndef MF_NET_NET_H
#define MF_NET_NET_H

#include "util/codec.h"

#include <memfabric/mf_status.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct bufferevent;
struct evhttp;
struct sockaddr;

#define MF_NET_MAGIC            0x544e464du /* "MFNT" read as little-endian bytes */
#define MF_NET_VERSION          1
#define MF_NET_HDR_SIZE         24
#define MF_NET_DEFAULT_MAX_BODY (64u << 20)
/* Largest frame body of a connection the service does not trust yet. */
#define MF_NET_DEFAULT_UNTRUSTED_MAX_BODY (64u << 10)
/* A connection silent this long is closed. */
#define MF_NET_DEFAULT_IDLE_TIMEOUT_MS 15000u

typedef enum mf_net_kind {
    MF_NET_KIND_REQUEST = 1,
    MF_NET_KIND_RESPONSE = 2,
    MF_NET_KIND_NOTIFY = 3,
} mf_net_kind_t;

typedef struct mf_net_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t kind;
    uint16_t opcode;
    int32_t status;
    uint32_t body_len;
    uint64_t req_id;
} mf_net_hdr_t;

void mf_net_hdr_encode(const mf_net_hdr_t *hdr, uint8_t out[MF_NET_HDR_SIZE]);
/* Checks magic, version, kind and body_len <= max_body. */
mf_status_t mf_net_hdr_decode(const uint8_t in[MF_NET_HDR_SIZE],
                              size_t max_body, mf_net_hdr_t *hdr_p);

/* ---- byte streams (plain TCP; TLS in net/tls.h) ---- */

typedef struct mf_net_stream_ops {
    const char *name;
    /* Wraps a connected socket; server is true on the accepting side. */
    struct bufferevent *(*bev_new)(struct event_base *base, int fd, bool server,
                                   void *ctx);
    void *ctx;
    /* The socket carries the frames as they are: a client's calling
     * thread may send() a frame itself when nothing else is on its way. */
    bool raw_fd;
    /* Optional: why bev failed, beyond the socket's error (a TLS
     * handshake refused, and the reason), into buf; NULL when the stream
     * has nothing to add.  *refused_p: the failure came before the peer
     * was admitted (a handshake).  Loop thread, in the event callback. */
    const char *(*why)(struct bufferevent *bev, bool *refused_p, char *buf,
                       size_t len);
} mf_net_stream_ops_t;

extern const mf_net_stream_ops_t mf_net_stream_plain;

/* ---- listeners ---- */

typedef struct mf_net_listener mf_net_listener_t;

/* A connection was accepted: fd is non-blocking, close-on-exec and the
 * callee's. */
typedef void (*mf_net_accept_cb)(int fd, const struct sockaddr *addr,
                                 void *arg);

/*
 * Listens on host:port (port 0 picks a free one) with an evconnlistener on
 * base.  A failed accept() (out of descriptors, say) pauses accepting for
 * MF_SOCK_ACCEPT_BACKOFF_MS, sheds the backlog and is logged at most once
 * per MF_SOCK_ACCEPT_LOG_MS (util/sock.h); established connections are not
 * touched.  on_accept may be NULL when the listener goes to evhttp
 * (mf_net_listener_bind_http).  From creation on, the listener is used on
 * base's loop thread only.
 */
mf_status_t mf_net_listener_create(struct event_base *base, const char *host,
                                   uint16_t port, mf_net_accept_cb on_accept,
                                   void *arg, mf_net_listener_t **listener_p);
/* Serves http on the listener: evhttp_free(http) frees its socket, after
 * mf_net_listener_destroy() (the backoff stays until then). */
mf_status_t mf_net_listener_bind_http(mf_net_listener_t *listener,
                                      struct evhttp *http);
uint16_t mf_net_listener_port(const mf_net_listener_t *listener);
/* "ip:port" it is bound to, for messages. */
const char *mf_net_listener_addr(const mf_net_listener_t *listener);
/* Closes the socket (unless evhttp owns it) and frees; loop thread. */
void mf_net_listener_destroy(mf_net_listener_t *listener);

/* ---- server ---- */

typedef struct mf_net_server mf_net_server_t;
typedef struct mf_net_conn mf_net_conn_t;

typedef struct mf_net_server_ops {
    /* A whole, well-formed request frame.  body is valid only during the
     * call.  The handler replies now or later with mf_net_conn_reply(). */
    void (*on_request)(mf_net_conn_t *conn, uint16_t opcode, uint64_t req_id,
                       const uint8_t *body, size_t len, void *arg);
    /* Optional: a connection was accepted. */
    void (*on_open)(mf_net_conn_t *conn, void *arg);
    /* Optional: the connection is closing (peer gone, protocol error or
     * server stop); the conn is freed when this returns. */
    void (*on_close)(mf_net_conn_t *conn, void *arg);
} mf_net_server_ops_t;

typedef struct mf_net_server_params {
    const char *host; /* address to bind, e.g. "127.0.0.1", "0.0.0.0" */
    uint16_t port;    /* 0 picks a free port */
    size_t max_body;  /* 0 = MF_NET_DEFAULT_MAX_BODY */
    /* Until mf_net_conn_set_trusted(); 0 = MF_NET_DEFAULT_UNTRUSTED_MAX_BODY,
     * never more than max_body. */
    size_t untrusted_max_body;
    /* A connection that sent nothing (or left output unread) this long is
     * closed; 0 = MF_NET_DEFAULT_IDLE_TIMEOUT_MS. */
    uint32_t idle_timeout_ms;
    uint32_t max_conns; /* 0 = unlimited */
    const mf_net_server_ops_t *ops;
    void *arg;
    const mf_net_stream_ops_t *stream; /* NULL = plain TCP */
} mf_net_server_params_t;

/* Binds, listens and starts the loop thread. */
mf_status_t mf_net_server_start(const mf_net_server_params_t *params,
                                mf_net_server_t **server_p);
/* Stops the loop, closes every connection (on_close runs for each). */
void mf_net_server_stop(mf_net_server_t *server);
uint16_t mf_net_server_port(const mf_net_server_t *server);
/* The loop of the server, for timers of the service; loop thread only. */
struct event_base *mf_net_server_base(mf_net_server_t *server);
/* Runs fn(arg) on the loop thread and waits for it (from another thread);
 * runs it directly when called on the loop thread. */
mf_status_t mf_net_server_run_sync(mf_net_server_t *server,
                                   void (*fn)(void *arg), void *arg);

/*
 * From the time *until on (mf_time_ms; *until may move on, and must
 * outlive the server), the server answers nothing: a frame that arrives
 * closes its connection unread, replies and notifies are dropped and
 * close theirs (logged once).  For a leader whose lease may have run out:
 * a process frozen past it must not act on what waited in its sockets.
 * NULL: no fence.  Any thread.
 */
void mf_net_server_fence(mf_net_server_t *server,
                         const atomic_uint_least64_t *until);

/* Loop thread only.  A reply or notify to a closing conn is dropped. */
mf_status_t mf_net_conn_reply(mf_net_conn_t *conn, uint64_t req_id,
                              uint16_t opcode, mf_status_t status,
                              const void *body, size_t len);
mf_status_t mf_net_conn_notify(mf_net_conn_t *conn, uint16_t opcode,
                               const void *body, size_t len);
void mf_net_conn_set_data(mf_net_conn_t *conn, void *data);
void *mf_net_conn_get_data(const mf_net_conn_t *conn);
/* "ip:port" of the peer, for messages. */
const char *mf_net_conn_peer(const mf_net_conn_t *conn);
/* The peer completed the service's handshake: frames of up to max_body
 * bytes are taken from now on (the next frame already). */
void mf_net_conn_set_trusted(mf_net_conn_t *conn);
/* Closes after the pending output is flushed; on_close follows. */
void mf_net_conn_close(mf_net_conn_t *conn);

/* ---- client ---- */

typedef struct mf_net_client mf_net_client_t;

typedef struct mf_net_endpoint {
    const char *host;
    uint16_t port;
} mf_net_endpoint_t;

typedef struct mf_net_client_params {
    const char *host;
    uint16_t port;
    /* Optional: further endpoints of the same service (where it may run
     * instead, e.g. after a restart on another host).  A connection
     * attempt that fails moves on to the next one, round the list, each
     * within connect_timeout_ms; the one that answered is kept. */
    const mf_net_endpoint_t *more;
    size_t nmore;
    uint32_t connect_timeout_ms; /* 0 = 5000 */
    size_t max_body;             /* 0 = MF_NET_DEFAULT_MAX_BODY */
    /* Optional, on the client's loop thread: a NOTIFY frame arrived.
     * Notifications are delivered one at a time, in the order they came. */
    void (*on_notify)(uint16_t opcode, const uint8_t *body, size_t len,
                      void *arg);
    /* on_notify may also run on a calling thread that read the
     * notification while waiting for its answer (still one at a time and
     * in order), which then saves waking the loop; for a handler that is
     * short, makes no call (mf_net_client_send is fine) and needs no
     * particular thread. */
    bool notify_on_caller;
    /* Optional, on a thread of its own (calls are allowed there): the
     * connection was re-established after a loss. */
    void (*on_reconnect)(void *arg);
    /* Optional, on the loop thread: the connection was lost. */
    void (*on_disconnect)(void *arg);
    /* Optional (0 = none): the opcode of a request with an empty body sent
     * first on every new connection, ahead of any call; its response is
     * dropped.  For a server that trusts a connection after its first
     * request (mf_net_conn_set_trusted), so a large call is taken even
     * when it is the one that reconnects. */
    uint16_t open_opcode;
    void *arg;
    const mf_net_stream_ops_t *stream; /* NULL = plain TCP */
} mf_net_client_params_t;

/* Connects (within connect_timeout_ms) and starts the loop thread. */
mf_status_t mf_net_client_create(const mf_net_client_params_t *params,
                                 mf_net_client_t **client_p);
/* Fails pending calls with MF_ERR_CANCELED, stops the loop, frees. */
void mf_net_client_destroy(mf_net_client_t *client);

typedef struct mf_net_resp {
    mf_status_t status; /* status field of the response */
    uint8_t *body;      /* malloc'd, or NULL if empty; mf_net_resp_free() */
    size_t len;
} mf_net_resp_t;

/*
 * Sends a request and waits for its response, from any thread but the
 * client's loop thread (MF_ERR_STATE there).  Thread safe; many calls may
 * be outstanding at once.  Returns MF_OK when a response arrived (its
 * status is in resp_p->status), MF_ERR_TIMEOUT after timeout_ms, or a peer
 * error when the connection broke: then the call fails and the next call
 * reconnects first.
 */
mf_status_t mf_net_client_call(mf_net_client_t *client, uint16_t opcode,
                               const void *body, size_t len,
                               uint32_t timeout_ms, mf_net_resp_t *resp_p);
void mf_net_resp_free(mf_net_resp_t *resp);

/*
 * Queues a request whose response nobody waits for (it is dropped), on
 * the connection as it is: never connects.  From any thread, the loop
 * thread included (a notify handler answering the server).  MF_OK once
 * queued; MF_ERR_CONN_RESET when not connected; MF_ERR_NOMEM.
 */
mf_status_t mf_net_client_send(mf_net_client_t *client, uint16_t opcode,
                               const void *body, size_t len);

/*
 * Waits until on_notify has returned for every notification read so far
 * (notifications a caller read are delivered on the loop a moment
 * later): a caller that acts on an answer knowing that the
 * notifications ahead of it took effect.  Returns at once on the loop
 * thread, and when the client is being destroyed.
 */
void mf_net_client_notes_wait(mf_net_client_t *client);

/* The number of the connection made last (1, 2, ...; 0: none yet): a
 * caller tells whether it spoke on the current connection already. */
uint64_t mf_net_client_conn_id(mf_net_client_t *client);

/* Ensures the process-wide libevent setup (pthreads locking) is done. */
void mf_net_global_init(void);

#endif
