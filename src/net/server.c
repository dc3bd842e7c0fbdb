/*
 * RPC server: a listener and its connections on a loop thread of their
 * own.
 *
 * Everything about a connection happens on the loop thread, so the
 * connection list and the connections themselves need no lock.  A
 * connection is never freed from inside one of its own callbacks: closing
 * marks it and activates its close event, whose callback runs on_close and
 * frees it, so a handler may close (or reply to) its connection at any
 * time.  Stopping runs as the loop's last task: the listener goes first,
 * then every connection with its on_close.
 *
 * What a peer can make the server hold is bounded: frames of at most
 * untrusted_max_body bytes until the service trusts the connection, at
 * most max_body after; a connection that sends nothing for
 * idle_timeout_ms (whether between frames or in the middle of one), or
 * leaves our output unread that long, is dropped; pending output beyond
 * twice max_body plus a margin drops it too.  The listener (net/listener.c)
 * backs off when accept() fails, so running out of descriptors never
 * spins the loop.
 */
#include "net/net_int.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/sock.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Output a connection may have pending beyond twice the largest frame. */
#define MF_NET_OUT_MARGIN (64u << 20)
/* Frames up to this size are gathered while requests are handled. */
#define MF_NET_GATHER_MAX (64u << 10)

struct mf_net_server {
    mf_net_loop_t loop;
    mf_net_server_ops_t ops;
    void *arg;
    const mf_net_stream_ops_t *stream;
    size_t max_body;
    size_t untrusted_max_body;
    struct timeval idle_timeout;
    uint32_t max_conns;
    uint16_t port;
    char addr[MF_SOCK_ADDR_STRLEN]; /* "ip:port" we listen on, for messages */
    mf_net_listener_t *listener;
    mf_list_t conns; /* of mf_net_conn_t, loop thread only */
    uint32_t nconns;
    const atomic_uint_least64_t *_Atomic fence; /* mf_net_server_fence */
    bool fence_logged;                          /* loop thread only */
    bool gathering;     /* in a read callback: small frames are gathered */
    mf_list_t gathered; /* connections with frames in gather */
};

struct mf_net_conn {
    mf_list_t link;
    mf_net_server_t *server;
    struct bufferevent *bev;
    struct event *close_ev; /* activated to free the conn from the loop */
    mf_net_reader_t reader;
    struct evbuffer *gather; /* frames to send when the read callback ends */
    mf_list_t gather_link;   /* in server->gathered, if gathered */
    bool gathered;
    bool closing; /* no more input is handled, output is dropped */
    bool trusted; /* frames up to server->max_body */
    void *data;
    char peer[MF_SOCK_ADDR_STRLEN];
};

/* ---- connections ---- */

/* Runs on_close and frees; never from one of conn's bufferevent callbacks
 * while it still uses conn (callers return right after). */
static void mf_net_server_conn_destroy(mf_net_conn_t *conn)
{
    mf_net_server_t *server = conn->server;

    mf_list_del(&conn->link);
    server->nconns--;
    conn->closing = true;
    if (conn->gathered) {
        mf_list_del(&conn->gather_link);
        conn->gathered = false;
    }
    if (server->ops.on_close != NULL) {
        server->ops.on_close(conn, server->arg);
    }
    mf_debug("%s: connection from %s closed", server->addr, conn->peer);
    bufferevent_free(conn->bev);
    event_free(conn->close_ev);
    evbuffer_free(conn->gather);
    free(conn);
}

static void mf_net_server_conn_close_cb(evutil_socket_t fd, short what,
                                        void *arg)
{
    mf_net_server_conn_destroy(arg);
}

/* Drops the connection now: input and pending output are discarded. */
static void mf_net_server_conn_drop(mf_net_conn_t *conn)
{
    conn->closing = true;
    bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
    event_active(conn->close_ev, 0, 0);
}

/* Past the fence: logs once. */
static bool mf_net_server_fenced(mf_net_server_t *server)
{
    const atomic_uint_least64_t *until = atomic_load(&server->fence);

    if (until == NULL || mf_time_ms() < atomic_load(until)) {
        return false;
    }
    if (!server->fence_logged) {
        mf_error("%s: past the fence (a leader lease that may have run out): "
                 "answering nothing more",
                 server->addr);
        server->fence_logged = true;
    }
    return true;
}

void mf_net_server_fence(mf_net_server_t *server,
                         const atomic_uint_least64_t *until)
{
    atomic_store(&server->fence, until);
}

/*
 * Sends what conn gathered: straight to the socket when nothing else is
 * pending (one sendmsg for every reply and notify of the callback), the
 * rest through the bufferevent.  Dropped on a connection being dropped.
 */
static void mf_net_conn_flush(mf_net_conn_t *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    struct evbuffer_iovec iov[16]; /* laid out as struct iovec */
    struct msghdr msg;
    int fd = bufferevent_getfd(conn->bev);
    ssize_t n;
    int niov;

    if (conn->gathered) {
        mf_list_del(&conn->gather_link);
        conn->gathered = false;
    }
    if (conn->closing) { /* mf_net_conn_close moved what was gathered */
        evbuffer_drain(conn->gather, evbuffer_get_length(conn->gather));
        return;
    }
    while (evbuffer_get_length(out) == 0 && fd >= 0 &&
           evbuffer_get_length(conn->gather) > 0) {
        niov = evbuffer_peek(conn->gather, -1, NULL, iov, 16);
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = (struct iovec *)iov;
        msg.msg_iovlen = (size_t)MF_MIN(niov, 16);
        do {
            n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            break; /* full or broken: the bufferevent finds out which */
        }
        evbuffer_drain(conn->gather, (size_t)n);
    }
    if (evbuffer_get_length(conn->gather) > 0 &&
        evbuffer_add_buffer(out, conn->gather) != 0) {
        mf_error("%s: cannot queue output to %s; disconnecting",
                 conn->server->addr, conn->peer);
        mf_net_server_conn_drop(conn);
    }
}

/* Sends what every connection gathered. */
static void mf_net_server_flush(mf_net_server_t *server)
{
    mf_list_t *elem;

    while ((elem = mf_list_pop_front(&server->gathered)) != NULL) {
        mf_net_conn_t *conn = mf_container_of(elem, mf_net_conn_t, gather_link);

        mf_list_init(&conn->gather_link);
        conn->gathered = false;
        mf_net_conn_flush(conn);
    }
}

static void mf_net_server_conn_read(mf_net_conn_t *conn)
{
    mf_net_server_t *server = conn->server;
    struct bufferevent *bev = conn->bev;
    const uint8_t *body;
    mf_net_hdr_t hdr;
    mf_status_t status;
    bool ready;

    while (!conn->closing) {
        status = mf_net_reader_next(&conn->reader, bev, conn->peer, &ready,
                                    &hdr, &body);
        if (status != MF_OK) {
            mf_net_server_conn_drop(conn);
            return;
        }
        if (!ready) {
            return;
        }
        if (mf_net_server_fenced(server)) {
            mf_net_server_conn_drop(conn); /* the client goes elsewhere */
            return;
        }
        if (hdr.kind != MF_NET_KIND_REQUEST) {
            mf_warn("%s: %s sent a frame of kind %u, disconnecting",
                    server->addr, conn->peer, hdr.kind);
            mf_net_server_conn_drop(conn);
            return;
        }
        server->ops.on_request(conn, hdr.opcode, hdr.req_id, body, hdr.body_len,
                               server->arg);
        mf_net_reader_consume(&conn->reader, bev);
    }
}

/* Handles every whole frame in; what the handlers send on a plain socket
 * is gathered meanwhile and sent when they are done, so a reply and the
 * notifies ahead of it, or the replies to requests that came together,
 * leave in one system call. */
static void mf_net_server_conn_read_cb(struct bufferevent *bev, void *arg)
{
    mf_net_conn_t *conn = arg;
    mf_net_server_t *server = conn->server;

    (void)bev;
    server->gathering = server->stream->raw_fd;
    mf_net_server_conn_read(conn);
    server->gathering = false;
    mf_net_server_flush(server);
}

static void mf_net_server_conn_write_cb(struct bufferevent *bev, void *arg)
{
    mf_net_conn_t *conn = arg;

    /* The output drained; a graceful close can finish now. */
    if (conn->closing) {
        event_active(conn->close_ev, 0, 0);
    }
}

static void mf_net_server_conn_event_cb(struct bufferevent *bev, short what,
                                        void *arg)
{
    mf_net_conn_t *conn = arg;

    if (what & BEV_EVENT_TIMEOUT) {
        mf_debug("%s: %s was idle for %ld ms (%s), closing it",
                 conn->server->addr, conn->peer,
                 (long)(conn->server->idle_timeout.tv_sec * 1000 +
                        conn->server->idle_timeout.tv_usec / 1000),
                 (what & BEV_EVENT_READING) ? "sent nothing"
                                            : "read nothing of our output");
    } else if (what & BEV_EVENT_ERROR) {
        const mf_net_stream_ops_t *stream = conn->server->stream;
        bool refused = false;
        char why[320];

        if (stream->why != NULL &&
            stream->why(bev, &refused, why, sizeof(why)) != NULL) {
            mf_warn("%s: %s %s: %s", conn->server->addr,
                    refused ? "refused" : "lost the connection from",
                    conn->peer, why);
        } else {
            mf_debug("%s: connection from %s failed: %s", conn->server->addr,
                     conn->peer,
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
    } else if (what & BEV_EVENT_EOF) {
        mf_debug("%s: %s closed the connection", conn->server->addr,
                 conn->peer);
    } else {
        return;
    }
    mf_net_server_conn_drop(conn);
}

static void mf_net_server_accept_cb(int fd, const struct sockaddr *addr,
                                    void *arg)
{
    mf_net_server_t *server = arg;
    mf_net_conn_t *conn;
    char peer[MF_SOCK_ADDR_STRLEN];

    mf_sock_addr_str(addr, peer, sizeof(peer));
    if ((server->max_conns != 0) && (server->nconns >= server->max_conns)) {
        mf_warn("%s: refusing connection from %s: already %u connections",
                server->addr, peer, server->nconns);
        goto err_close_fd;
    }

    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        mf_error("%s: no memory for a connection from %s", server->addr, peer);
        goto err_close_fd;
    }
    conn->server = server;
    mf_strlcpy(conn->peer, peer, sizeof(conn->peer));
    mf_net_reader_init(&conn->reader, server->untrusted_max_body);
    mf_list_init(&conn->gather_link);
    conn->gather = evbuffer_new();
    if (conn->gather == NULL) {
        mf_error("%s: no memory for a connection from %s", server->addr, peer);
        goto err_free_conn;
    }
    conn->close_ev =
        event_new(server->loop.base, -1, 0, mf_net_server_conn_close_cb, conn);
    if (conn->close_ev == NULL) {
        mf_error("%s: event_new() failed for %s", server->addr, peer);
        goto err_free_conn;
    }
    conn->bev = server->stream->bev_new(server->loop.base, fd, true,
                                        server->stream->ctx);
    if (conn->bev == NULL) {
        goto err_free_close_ev; /* bev_new logged */
    }
    bufferevent_setcb(conn->bev, mf_net_server_conn_read_cb,
                      mf_net_server_conn_write_cb, mf_net_server_conn_event_cb,
                      conn);
    bufferevent_setwatermark(conn->bev, EV_READ, MF_NET_HDR_SIZE, 0);
    if ((bufferevent_set_timeouts(conn->bev, &server->idle_timeout,
                                  &server->idle_timeout) < 0) ||
        (bufferevent_enable(conn->bev, EV_READ | EV_WRITE) < 0)) {
        mf_error("%s: cannot enable the connection from %s", server->addr,
                 peer);
        goto err_free_bev;
    }

    mf_list_push_back(&server->conns, &conn->link);
    server->nconns++;
    mf_debug("%s: accepted connection from %s", server->addr, peer);
    if (server->ops.on_open != NULL) {
        server->ops.on_open(conn, server->arg);
    }
    return;

err_free_bev:
    bufferevent_free(conn->bev); /* closes fd */
    event_free(conn->close_ev);
    evbuffer_free(conn->gather);
    free(conn);
    return;
err_free_close_ev:
    event_free(conn->close_ev);
err_free_conn:
    if (conn->gather != NULL) {
        evbuffer_free(conn->gather);
    }
    free(conn);
err_close_fd:
    close(fd);
}

/* ---- server ---- */

mf_status_t mf_net_server_start(const mf_net_server_params_t *params,
                                mf_net_server_t **server_p)
{
    mf_net_server_t *server;
    mf_status_t status;
    uint32_t idle_ms;

    if ((params == NULL) || (params->ops == NULL) ||
        (params->ops->on_request == NULL)) {
        mf_error("server parameters without an on_request handler");
        status = MF_ERR_INVALID;
        goto err;
    }
    mf_net_global_init();

    server = calloc(1, sizeof(*server));
    if (server == NULL) {
        mf_error("no memory for a server");
        status = MF_ERR_NOMEM;
        goto err;
    }
    server->ops = *params->ops;
    server->arg = params->arg;
    server->stream =
        (params->stream != NULL) ? params->stream : &mf_net_stream_plain;
    server->max_body =
        (params->max_body != 0) ? params->max_body : MF_NET_DEFAULT_MAX_BODY;
    server->untrusted_max_body = (params->untrusted_max_body != 0)
                                     ? params->untrusted_max_body
                                     : MF_NET_DEFAULT_UNTRUSTED_MAX_BODY;
    server->untrusted_max_body =
        MF_MIN(server->untrusted_max_body, server->max_body);
    idle_ms = (params->idle_timeout_ms != 0) ? params->idle_timeout_ms
                                             : MF_NET_DEFAULT_IDLE_TIMEOUT_MS;
    server->idle_timeout.tv_sec = idle_ms / 1000;
    server->idle_timeout.tv_usec = (idle_ms % 1000) * 1000;
    server->max_conns = params->max_conns;
    mf_list_init(&server->conns);
    mf_list_init(&server->gathered);

    status = mf_net_loop_init(&server->loop, "mf-net-server");
    if (status != MF_OK) {
        goto err_free_server;
    }
    status = mf_net_listener_create(server->loop.base, params->host,
                                    params->port, mf_net_server_accept_cb,
                                    server, &server->listener);
    if (status != MF_OK) {
        goto err_cleanup_loop;
    }
    server->port = mf_net_listener_port(server->listener);
    mf_strlcpy(server->addr, mf_net_listener_addr(server->listener),
               sizeof(server->addr));
    status = mf_net_loop_start(&server->loop);
    if (status != MF_OK) {
        goto err_free_listener;
    }
    mf_info("%s: server listening (%s)", server->addr, server->stream->name);
    *server_p = server;
    return MF_OK;

err_free_listener:
    mf_net_listener_destroy(server->listener);
err_cleanup_loop:
    mf_net_loop_cleanup(&server->loop);
err_free_server:
    free(server);
err:
    return status;
}

static void mf_net_server_shutdown(void *arg)
{
    mf_net_server_t *server = arg;
    mf_list_t *elem;

    mf_net_listener_destroy(server->listener);
    server->listener = NULL;
    while ((elem = server->conns.next) != &server->conns) {
        mf_net_server_conn_destroy(mf_container_of(elem, mf_net_conn_t, link));
    }
}

void mf_net_server_stop(mf_net_server_t *server)
{
    if (server == NULL) {
        return;
    }
    if (mf_net_loop_is_current(&server->loop)) {
        mf_error("%s: mf_net_server_stop() called on the server's own "
                 "thread; not stopped",
                 server->addr);
        return;
    }
    mf_net_loop_stop(&server->loop, mf_net_server_shutdown, server);
    mf_net_loop_cleanup(&server->loop);
    mf_info("%s: server stopped", server->addr);
    free(server);
}

uint16_t mf_net_server_port(const mf_net_server_t *server)
{
    return server->port;
}

struct event_base *mf_net_server_base(mf_net_server_t *server)
{
    return server->loop.base;
}

mf_status_t mf_net_server_run_sync(mf_net_server_t *server,
                                   void (*fn)(void *arg), void *arg)
{
    return mf_net_loop_run_sync(&server->loop, fn, arg);
}

/* ---- replies ---- */

static mf_status_t mf_net_conn_send(mf_net_conn_t *conn, uint8_t kind,
                                    uint64_t req_id, uint16_t opcode,
                                    int32_t status, const void *body,
                                    size_t len)
{
    mf_status_t st;
    size_t pending;

    if (conn->closing) {
        mf_debug("%s: dropping a frame to closing connection %s",
                 conn->server->addr, conn->peer);
        return MF_ERR_CONN_RESET;
    }
    if (mf_net_server_fenced(conn->server)) {
        mf_net_server_conn_drop(conn);
        return MF_ERR_CONN_RESET;
    }
    /* A peer that stops reading must not grow our memory without bound:
     * past twice the largest frame plus a margin, it is disconnected. */
    pending = evbuffer_get_length(bufferevent_get_output(conn->bev)) +
              evbuffer_get_length(conn->gather);
    if (pending > 2 * conn->server->max_body + MF_NET_OUT_MARGIN) {
        mf_warn("%s: %s does not read its %zu pending bytes; disconnecting",
                conn->server->addr, conn->peer, pending);
        mf_net_server_conn_drop(conn);
        return MF_ERR_CONN_RESET;
    }
    if (conn->server->gathering && len <= MF_NET_GATHER_MAX) {
        st = mf_net_frame_add(conn->gather, kind, opcode, status, req_id, body,
                              len);
        if (st == MF_OK && !conn->gathered) {
            mf_list_push_back(&conn->server->gathered, &conn->gather_link);
            conn->gathered = true;
        }
        return st;
    }
    mf_net_conn_flush(conn); /* what was gathered goes first */
    if (conn->closing) {
        return MF_ERR_CONN_RESET;
    }
    /* Writes the whole frame or nothing. */
    return mf_net_frame_write(conn->bev, conn->server->stream->raw_fd, kind,
                              opcode, status, req_id, body, len);
}

mf_status_t mf_net_conn_reply(mf_net_conn_t *conn, uint64_t req_id,
                              uint16_t opcode, mf_status_t status,
                              const void *body, size_t len)
{
    return mf_net_conn_send(conn, MF_NET_KIND_RESPONSE, req_id, opcode, status,
                            body, len);
}

mf_status_t mf_net_conn_notify(mf_net_conn_t *conn, uint16_t opcode,
                               const void *body, size_t len)
{
    return mf_net_conn_send(conn, MF_NET_KIND_NOTIFY, 0, opcode, 0, body, len);
}

void mf_net_conn_set_data(mf_net_conn_t *conn, void *data)
{
    conn->data = data;
}

void *mf_net_conn_get_data(const mf_net_conn_t *conn)
{
    return conn->data;
}

const char *mf_net_conn_peer(const mf_net_conn_t *conn)
{
    return conn->peer;
}

void mf_net_conn_set_trusted(mf_net_conn_t *conn)
{
    if (!conn->trusted) {
        conn->trusted = true;
        conn->reader.max_body = conn->server->max_body;
    }
}

void mf_net_conn_close(mf_net_conn_t *conn)
{
    if (conn->closing) {
        return;
    }
    mf_net_conn_flush(conn); /* what was gathered leaves before the close */
    conn->closing = true;
    bufferevent_disable(conn->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0) {
        event_active(conn->close_ev, 0, 0);
    }
    /* Otherwise the write callback finishes the close once drained. */
}
