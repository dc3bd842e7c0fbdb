/*
 * RPC client: one connection to a server, driven by a loop thread of its
 * own, shared by any number of calling threads.
 *
 * Only the loop thread touches the bufferevent.  A calling thread, under
 * the client's lock, registers its pending entry (on its own stack) and
 * sends its frame: on a plain socket with nothing else on its way (the out
 * queue empty, the loop holding no unsent bytes: !loop_busy) it send()s
 * the frame itself, without waking the loop; whatever did not fit, or
 * every frame otherwise, goes on the out queue and the flush event moves
 * it into the bufferevent on the loop.  Frames never interleave: a direct
 * send happens only while no other bytes are pending, under the lock that
 * every queueing holds.  A response is matched by req_id and handed over
 * under the same lock; a caller whose responses have been quick spins
 * briefly before it sleeps, so the hand-over costs no wake-up.  Whatever breaks
 * the connection (EOF, error, a bad frame), the loop drops the bufferevent, the
 * out queue and every pending call in one step under the lock, so a call is
 * either answered or failed, never lost.  Connecting (the first time and after
 * a loss, by the next call) happens on a calling thread, with a non-blocking
 * connect bounded by connect_timeout_ms (mf_sock_connect); one thread
 * connects while others wait for its outcome.  The opening request
 * (open_opcode) goes into the bufferevent before the connection is marked
 * connected, so it precedes every call; its response (req_id 0, never a
 * call's) is dropped.  The locking order is client lock, then libevent's
 * locks; nobody takes the client lock while holding a libevent lock of
 * another thread's object.
 */
#include "net/net_int.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/sock.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MF_NET_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS 5000

typedef enum mf_net_client_state {
    MF_NET_CLIENT_DISCONNECTED,
    MF_NET_CLIENT_CONNECTING, /* a calling thread is connecting */
    MF_NET_CLIENT_CONNECTED,
} mf_net_client_state_t;

/* A caller spins for its response at most this long, and only when the
 * recent responses came sooner (see mf_net_client_spin_ns). */
#define MF_NET_CLIENT_SPIN_MAX_NS 100000

/* A call waiting for its response; lives on the caller's stack. */
typedef struct mf_net_pending {
    uint64_t req_id;
    pthread_cond_t cond;
    bool done;          /* set under the lock, atomically: spinners read it */
    mf_status_t status; /* MF_OK: resp holds the response */
    mf_net_resp_t resp;
} mf_net_pending_t;

struct mf_net_client {
    mf_net_loop_t loop;
    char **hosts; /* the endpoints; the connecting thread moves cur */
    uint16_t *ports;
    size_t nends;
    size_t cur;
    uint32_t connect_timeout_ms;
    size_t max_body;
    void (*on_notify)(uint16_t opcode, const uint8_t *body, size_t len,
                      void *arg);
    void (*on_reconnect)(void *arg);
    void (*on_disconnect)(void *arg);
    uint16_t open_opcode;
    void *arg;
    const mf_net_stream_ops_t *stream;
    char addr[300]; /* "host:port" (of the first endpoint, "+n" more), for
                       messages */

    uint64_t rtt_ns; /* recent response time, a moving average (atomic) */
    bool spin_ok;    /* more than one CPU: spinning can pay */

    /* Loop thread only. */
    struct bufferevent *bev;
    mf_net_reader_t reader;
    struct event *flush_ev;
    struct evbuffer *flush_buf; /* frames on their way from outq */

    pthread_mutex_t lock;
    pthread_cond_t state_cond; /* state, ncallers or destroying changed */
    mf_net_client_state_t state;
    bool destroying;
    mf_status_t connect_status; /* outcome of the last connect attempt */
    struct evbuffer *outq;      /* whole frames for the loop to send */
    int direct_fd;  /* the connected socket where callers may send(); -1 */
    bool loop_busy; /* the loop has bytes of frames not yet sent */
    uint64_t next_req_id;
    uint64_t conn_id;  /* connections made */
    mf_hmap_t pending; /* req_id -> mf_net_pending_t */
    unsigned ncallers; /* threads inside mf_net_client_call() */

    /* The thread that runs on_reconnect, started on the first reconnect. */
    pthread_t reconnect_thread;
    bool reconnect_started;
    bool reconnect_pending;
    pthread_cond_t reconnect_cond;
};

/* ---- loop side ---- */

static void mf_net_client_fail_all_locked(mf_net_client_t *client,
                                          mf_status_t status)
{
    mf_hmap_iter_t it;
    mf_hmap_entry_t *entry;
    mf_net_pending_t *pending;

    mf_hmap_iter_init(&client->pending, &it);
    while ((entry = mf_hmap_next(&client->pending, &it)) != NULL) {
        pending = entry->value;
        mf_hmap_remove(&client->pending, &pending->req_id,
                       sizeof(pending->req_id));
        pending->status = status;
        __atomic_store_n(&pending->done, true, __ATOMIC_RELEASE);
        pthread_cond_signal(&pending->cond);
    }
}

/* The connection broke (or the peer misbehaved): drop it and fail every
 * call that was waiting on it. */
static void mf_net_client_lost(mf_net_client_t *client)
{
    bool destroying;

    pthread_mutex_lock(&client->lock);
    client->state = MF_NET_CLIENT_DISCONNECTED;
    client->direct_fd = -1; /* before the socket closes below */
    client->loop_busy = false;
    /* client lock, then libevent's: the allowed order */
    bufferevent_free(client->bev);
    client->bev = NULL;
    evbuffer_drain(client->outq, evbuffer_get_length(client->outq));
    mf_net_client_fail_all_locked(client, MF_ERR_CONN_RESET);
    pthread_cond_broadcast(&client->state_cond);
    destroying = client->destroying;
    pthread_mutex_unlock(&client->lock);

    mf_info("connection to %s lost", client->addr);
    if (!destroying && (client->on_disconnect != NULL)) {
        client->on_disconnect(client->arg);
    }
}

static void mf_net_client_response(mf_net_client_t *client,
                                   const mf_net_hdr_t *hdr, const uint8_t *body)
{
    mf_net_pending_t *pending;
    uint8_t *copy = NULL;

    if (hdr->req_id == 0) {
        return; /* to the opening request (open_opcode) */
    }
    if (hdr->body_len > 0) {
        copy = malloc(hdr->body_len);
        if (copy != NULL) {
            memcpy(copy, body, hdr->body_len);
        } else {
            mf_error("no memory for a response of %u bytes from %s",
                     hdr->body_len, client->addr);
        }
    }

    pthread_mutex_lock(&client->lock);
    pending =
        mf_hmap_remove(&client->pending, &hdr->req_id, sizeof(hdr->req_id));
    if (pending != NULL) {
        if ((hdr->body_len > 0) && (copy == NULL)) {
            pending->status = MF_ERR_NOMEM;
        } else {
            pending->status = MF_OK;
            pending->resp.status = (mf_status_t)hdr->status;
            pending->resp.body = copy;
            pending->resp.len = hdr->body_len;
            copy = NULL;
        }
        __atomic_store_n(&pending->done, true, __ATOMIC_RELEASE);
        pthread_cond_signal(&pending->cond);
    }
    pthread_mutex_unlock(&client->lock);

    if (pending == NULL) {
        mf_debug("%s: dropping a response to unknown request %" PRIu64,
                 client->addr, hdr->req_id);
    }
    free(copy);
}

static void mf_net_client_read_cb(struct bufferevent *bev, void *arg)
{
    mf_net_client_t *client = arg;
    const uint8_t *body;
    mf_net_hdr_t hdr;
    mf_status_t status;
    bool ready;

    for (;;) {
        status = mf_net_reader_next(&client->reader, bev, client->addr, &ready,
                                    &hdr, &body);
        if (status != MF_OK) {
            mf_net_client_lost(client);
            return;
        }
        if (!ready) {
            return;
        }
        switch (hdr.kind) {
        case MF_NET_KIND_RESPONSE:
            mf_net_client_response(client, &hdr, body);
            break;
        case MF_NET_KIND_NOTIFY:
            if (client->on_notify != NULL) {
                client->on_notify(hdr.opcode, body, hdr.body_len, client->arg);
            }
            break;
        default:
            mf_warn("%s sent a request to a client, disconnecting",
                    client->addr);
            mf_net_client_lost(client);
            return;
        }
        mf_net_reader_consume(&client->reader, bev);
    }
}

static void mf_net_client_event_cb(struct bufferevent *bev, short what,
                                   void *arg)
{
    mf_net_client_t *client = arg;

    if (what & BEV_EVENT_ERROR) {
        mf_debug("connection to %s failed: %s", client->addr,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    } else if (what & BEV_EVENT_EOF) {
        mf_debug("%s closed the connection", client->addr);
    } else {
        return;
    }
    mf_net_client_lost(client);
}

/* The bufferevent's output drained: callers may send directly again,
 * unless more frames wait in the out queue (then the flush event is due). */
static void mf_net_client_write_cb(struct bufferevent *bev, void *arg)
{
    mf_net_client_t *client = arg;

    pthread_mutex_lock(&client->lock);
    if (evbuffer_get_length(client->outq) == 0 &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        client->loop_busy = false;
    }
    pthread_mutex_unlock(&client->lock);
}

static void mf_net_client_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    mf_net_client_t *client = arg;
    int rc = 0;

    /* Take the frames under the client lock, hand them to the
     * bufferevent outside it: its lock is taken before ours in the read
     * callback.  Until they are out, callers queue behind them. */
    pthread_mutex_lock(&client->lock);
    rc = evbuffer_add_buffer(client->flush_buf, client->outq);
    if (evbuffer_get_length(client->flush_buf) > 0 && client->bev != NULL) {
        client->loop_busy = true;
    }
    pthread_mutex_unlock(&client->lock);
    if ((rc == 0) && (client->bev != NULL)) {
        rc = bufferevent_write_buffer(client->bev, client->flush_buf);
    }
    evbuffer_drain(client->flush_buf, evbuffer_get_length(client->flush_buf));
    if (rc < 0) {
        mf_error("cannot queue output to %s", client->addr);
        mf_net_client_lost(client);
    }
}

typedef struct mf_net_client_attach_arg {
    mf_net_client_t *client;
    int fd;
    mf_status_t status;
} mf_net_client_attach_arg_t;

/* Loop task: wraps the connected socket into the client's stream. */
static void mf_net_client_attach(void *arg)
{
    mf_net_client_attach_arg_t *attach = arg;
    mf_net_client_t *client = attach->client;
    struct bufferevent *bev;

    bev = client->stream->bev_new(client->loop.base, attach->fd, false,
                                  client->stream->ctx);
    if (bev == NULL) {
        close(attach->fd); /* bev_new logged */
        attach->status = MF_ERR_NOMEM;
        return;
    }
    bufferevent_setcb(bev, mf_net_client_read_cb, mf_net_client_write_cb,
                      mf_net_client_event_cb, client);
    bufferevent_setwatermark(bev, EV_READ, MF_NET_HDR_SIZE, 0);
    if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0) {
        mf_error("cannot enable the connection to %s", client->addr);
        bufferevent_free(bev); /* closes fd */
        attach->status = MF_ERR_IO;
        return;
    }
    /* Ahead of every call: those reach bev only once CONNECTED, below.
     * req_id 0 is never a call's, so its response is dropped. */
    if ((client->open_opcode != 0) &&
        (mf_net_frame_write(bev, false, MF_NET_KIND_REQUEST,
                            client->open_opcode, 0, 0, NULL, 0) != MF_OK)) {
        bufferevent_free(bev); /* closes fd; mf_net_frame_write logged */
        attach->status = MF_ERR_NOMEM;
        return;
    }
    client->bev = bev;
    mf_net_reader_init(&client->reader, client->max_body);

    pthread_mutex_lock(&client->lock);
    client->state = MF_NET_CLIENT_CONNECTED;
    client->direct_fd = client->stream->raw_fd ? attach->fd : -1;
    /* the opening request is in the bufferevent: the write callback says
     * when it is out */
    client->loop_busy = client->open_opcode != 0;
    pthread_mutex_unlock(&client->lock);
    attach->status = MF_OK;
}

/* ---- reconnect notifications ---- */

static void *mf_net_client_reconnect_thread(void *arg)
{
    mf_net_client_t *client = arg;

    pthread_mutex_lock(&client->lock);
    for (;;) {
        while (!client->reconnect_pending && !client->destroying) {
            pthread_cond_wait(&client->reconnect_cond, &client->lock);
        }
        if (client->destroying) {
            break;
        }
        client->reconnect_pending = false;
        pthread_mutex_unlock(&client->lock);
        client->on_reconnect(client->arg);
        pthread_mutex_lock(&client->lock);
    }
    pthread_mutex_unlock(&client->lock);
    return NULL;
}

static void mf_net_client_notify_reconnect_locked(mf_net_client_t *client)
{
    int rc;

    if (client->on_reconnect == NULL) {
        return;
    }
    if (!client->reconnect_started) {
        rc = pthread_create(&client->reconnect_thread, NULL,
                            mf_net_client_reconnect_thread, client);
        if (rc != 0) {
            mf_error("cannot start the reconnect thread of %s: %s",
                     client->addr, strerror(rc));
            return;
        }
        pthread_setname_np(client->reconnect_thread, "mf-net-reconn");
        client->reconnect_started = true;
    }
    client->reconnect_pending = true;
    pthread_cond_signal(&client->reconnect_cond);
}

/* ---- calling side ---- */

/* Connects while state is DISCONNECTED; drops the lock meanwhile. */
static mf_status_t mf_net_client_connect_locked(mf_net_client_t *client,
                                                bool reconnect)
{
    mf_net_client_attach_arg_t attach = {.client = client};
    mf_status_t status = MF_ERR_CONN_REFUSED;

    size_t cur = client->cur, tries;

    client->state = MF_NET_CLIENT_CONNECTING;
    pthread_mutex_unlock(&client->lock);

    /* the endpoint that answered last first, then round the list */
    for (tries = 0; tries < client->nends; tries++) {
        status = mf_sock_connect(client->hosts[cur], client->ports[cur],
                                 client->connect_timeout_ms, &attach.fd);
        if (status == MF_OK) {
            break;
        }
        cur = (cur + 1) % client->nends;
    }
    if (status == MF_OK) {
        status =
            mf_net_loop_run_sync(&client->loop, mf_net_client_attach, &attach);
        if (status != MF_OK) {
            close(attach.fd);
        } else {
            status = attach.status;
        }
    }

    pthread_mutex_lock(&client->lock);
    client->cur = cur;
    if (status != MF_OK) {
        client->state = MF_NET_CLIENT_DISCONNECTED;
    }
    /* On success the loop made it CONNECTED, or already lost it again. */
    client->connect_status = status;
    pthread_cond_broadcast(&client->state_cond);
    if (status == MF_OK) {
        client->conn_id++;
        mf_info("%s to %s:%u", reconnect ? "reconnected" : "connected",
                client->hosts[cur], client->ports[cur]);
        if (reconnect) {
            mf_net_client_notify_reconnect_locked(client);
        }
    }
    return status;
}

/* Returns MF_OK when a connection is up (or was just made). */
static mf_status_t
mf_net_client_ensure_connected_locked(mf_net_client_t *client)
{
    if (client->destroying) {
        return MF_ERR_CANCELED;
    }
    switch (client->state) {
    case MF_NET_CLIENT_CONNECTED:
        return MF_OK;
    case MF_NET_CLIENT_CONNECTING:
        /* Another thread connects; share its outcome. */
        while (client->state == MF_NET_CLIENT_CONNECTING) {
            pthread_cond_wait(&client->state_cond, &client->lock);
        }
        if (client->destroying) {
            return MF_ERR_CANCELED;
        }
        if (client->state == MF_NET_CLIENT_CONNECTED) {
            return MF_OK;
        }
        return (client->connect_status != MF_OK) ? client->connect_status
                                                 : MF_ERR_CONN_RESET;
    default:
        return mf_net_client_connect_locked(client, true);
    }
}

static void mf_net_client_frame_free(const void *data, size_t len, void *extra)
{
    free((void *)data);
}

/*
 * Sends a whole frame (malloc'd; taken in every case) on the connected
 * client, under its lock: directly when nothing else is on its way, the
 * rest (or all of it) through the out queue and the loop.  MF_ERR_NOMEM
 * when it could not be queued; a broken socket is the loop's to find.
 */
static mf_status_t mf_net_client_send_locked(mf_net_client_t *client,
                                             uint8_t *frame, size_t total)
{
    ssize_t sent = 0;
    int rc;

    if (client->direct_fd >= 0 && !client->loop_busy &&
        evbuffer_get_length(client->outq) == 0) {
        do {
            sent = send(client->direct_fd, frame, total,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        if (sent == (ssize_t)total) {
            free(frame);
            return MF_OK;
        }
        if (sent < 0) {
            sent = 0; /* full, or broken: the loop finds out which */
        }
    }
    if (sent == 0) { /* the queue takes it without copying, frees it */
        rc = evbuffer_add_reference(client->outq, frame, total,
                                    mf_net_client_frame_free, NULL);
    } else { /* the rest of a frame whose start is on the socket */
        rc = evbuffer_add(client->outq, frame + sent, total - (size_t)sent);
        free(frame);
        frame = NULL;
    }
    if (rc < 0) {
        free(frame);
        if (sent > 0) { /* half a frame went out: the stream is unusable */
            shutdown(client->direct_fd, SHUT_RDWR);
        }
        return MF_ERR_NOMEM;
    }
    event_active(client->flush_ev, 0, 0);
    return MF_OK;
}

/* How long a caller spins for its response before sleeping: up to twice
 * the recent response time (at most MF_NET_CLIENT_SPIN_MAX_NS) when that
 * is short, else not at all. */
static uint64_t mf_net_client_spin_ns(mf_net_client_t *client)
{
    uint64_t rtt = __atomic_load_n(&client->rtt_ns, __ATOMIC_RELAXED);

    if (!client->spin_ok || rtt == 0 || rtt > MF_NET_CLIENT_SPIN_MAX_NS) {
        return 0;
    }
    return 2 * rtt < MF_NET_CLIENT_SPIN_MAX_NS ? 2 * rtt
                                               : MF_NET_CLIENT_SPIN_MAX_NS;
}

/* Folds one response time into the moving average (1/8 weight); a slow
 * one counts fully, so one stall stops the spinning at once. */
static void mf_net_client_rtt_note(mf_net_client_t *client, uint64_t ns)
{
    uint64_t old = __atomic_load_n(&client->rtt_ns, __ATOMIC_RELAXED);
    uint64_t avg = old == 0 || ns > MF_NET_CLIENT_SPIN_MAX_NS
                       ? ns
                       : old - old / 8 + ns / 8;

    __atomic_store_n(&client->rtt_ns, avg, __ATOMIC_RELAXED);
}

mf_status_t mf_net_client_call(mf_net_client_t *client, uint16_t opcode,
                               const void *body, size_t len,
                               uint32_t timeout_ms, mf_net_resp_t *resp_p)
{
    mf_net_pending_t pending = {.done = false};
    uint64_t sent_ns, spin_ns;
    struct timespec deadline;
    mf_net_hdr_t hdr;
    mf_status_t status;
    uint8_t *frame;
    int rc;

    if (mf_net_loop_is_current(&client->loop)) {
        mf_error("%s: mf_net_client_call() on the client's loop thread",
                 client->addr);
        return MF_ERR_STATE;
    }
    if (len > UINT32_MAX) {
        mf_error("%s: request body of %zu bytes is too large", client->addr,
                 len);
        return MF_ERR_TOO_LARGE;
    }
    if ((len > 0) && (body == NULL)) {
        mf_error("%s: request body is NULL", client->addr);
        return MF_ERR_INVALID;
    }

    frame = malloc(MF_NET_HDR_SIZE + len);
    if (frame == NULL) {
        mf_error("%s: no memory for a request of %zu bytes", client->addr, len);
        return MF_ERR_NOMEM;
    }
    if (len > 0) {
        memcpy(frame + MF_NET_HDR_SIZE, body, len);
    }
    pthread_cond_init(&pending.cond, NULL);

    pthread_mutex_lock(&client->lock);
    client->ncallers++;
    status = mf_net_client_ensure_connected_locked(client);
    if (status != MF_OK) {
        goto err_unlock;
    }
    if (client->destroying) {
        status = MF_ERR_CANCELED;
        goto err_unlock;
    }
    if (client->state != MF_NET_CLIENT_CONNECTED) {
        mf_warn("connection to %s broke right after it was made", client->addr);
        status = MF_ERR_CONN_RESET;
        goto err_unlock;
    }

    pending.req_id = ++client->next_req_id;
    status = mf_hmap_put(&client->pending, &pending.req_id,
                         sizeof(pending.req_id), &pending, NULL);
    if (status != MF_OK) {
        mf_error("%s: no memory to track a request", client->addr);
        goto err_unlock;
    }
    hdr = (mf_net_hdr_t){
        .magic = MF_NET_MAGIC,
        .version = MF_NET_VERSION,
        .kind = MF_NET_KIND_REQUEST,
        .opcode = opcode,
        .status = 0,
        .body_len = (uint32_t)len,
        .req_id = pending.req_id,
    };
    mf_net_hdr_encode(&hdr, frame);
    sent_ns = mf_time_ns();
    status = mf_net_client_send_locked(client, frame, MF_NET_HDR_SIZE + len);
    frame = NULL;
    if (status != MF_OK) {
        mf_error("%s: no memory to queue a request", client->addr);
        goto err_remove_pending;
    }

    /* A quick answer is caught spinning, without a wake-up; the spinner
     * yields its core to any thread that wants it (the loop that brings
     * the answer, a server on this host). */
    spin_ns = mf_net_client_spin_ns(client);
    if (spin_ns > 0) {
        pthread_mutex_unlock(&client->lock);
        while (!__atomic_load_n(&pending.done, __ATOMIC_ACQUIRE) &&
               mf_time_ns() - sent_ns < spin_ns) {
            sched_yield();
        }
        pthread_mutex_lock(&client->lock);
    }

    /* The wait for the response; a reconnect had its own timeout. */
    if (timeout_ms != 0) {
        mf_deadline_after_ms(&deadline, timeout_ms);
    }
    while (!pending.done) {
        if (timeout_ms == 0) {
            rc = pthread_cond_wait(&pending.cond, &client->lock);
        } else {
            rc =
                pthread_cond_timedwait(&pending.cond, &client->lock, &deadline);
        }
        if ((rc == ETIMEDOUT) && !pending.done) {
            mf_warn("%s: no response to request %" PRIu64
                    " (opcode %u) within %u ms",
                    client->addr, pending.req_id, opcode, timeout_ms);
            status = MF_ERR_TIMEOUT;
            goto err_remove_pending;
        }
    }
    status = pending.status;
    if (status == MF_OK) {
        *resp_p = pending.resp;
        mf_net_client_rtt_note(client, mf_time_ns() - sent_ns);
    }
    goto out_unlock;

err_remove_pending:
    /* A late response finds no entry and is dropped. */
    mf_hmap_remove(&client->pending, &pending.req_id, sizeof(pending.req_id));
err_unlock:
out_unlock:
    client->ncallers--;
    if (client->destroying && (client->ncallers == 0)) {
        pthread_cond_broadcast(&client->state_cond);
    }
    pthread_mutex_unlock(&client->lock);
    pthread_cond_destroy(&pending.cond);
    free(frame);
    return status;
}

uint64_t mf_net_client_conn_id(mf_net_client_t *client)
{
    uint64_t id;

    pthread_mutex_lock(&client->lock);
    id = client->conn_id;
    pthread_mutex_unlock(&client->lock);
    return id;
}

mf_status_t mf_net_client_send(mf_net_client_t *client, uint16_t opcode,
                               const void *body, size_t len)
{
    mf_net_hdr_t hdr = {
        .magic = MF_NET_MAGIC,
        .version = MF_NET_VERSION,
        .kind = MF_NET_KIND_REQUEST,
        .opcode = opcode,
        .body_len = (uint32_t)len,
        .req_id = 0, /* a response to 0 is dropped */
    };
    mf_status_t status = MF_OK;
    uint8_t *frame;

    if (len > UINT32_MAX || (len > 0 && body == NULL)) {
        return MF_ERR_INVALID;
    }
    frame = malloc(MF_NET_HDR_SIZE + len);
    if (frame == NULL) {
        return MF_ERR_NOMEM;
    }
    mf_net_hdr_encode(&hdr, frame);
    if (len > 0) {
        memcpy(frame + MF_NET_HDR_SIZE, body, len);
    }
    pthread_mutex_lock(&client->lock);
    if (client->state != MF_NET_CLIENT_CONNECTED || client->destroying) {
        status = MF_ERR_CONN_RESET;
        free(frame);
    } else {
        status =
            mf_net_client_send_locked(client, frame, MF_NET_HDR_SIZE + len);
    }
    pthread_mutex_unlock(&client->lock);
    return status;
}

void mf_net_resp_free(mf_net_resp_t *resp)
{
    if (resp == NULL) {
        return;
    }
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

/* ---- create / destroy ---- */

static void mf_net_client_shutdown(void *arg)
{
    mf_net_client_t *client = arg;

    pthread_mutex_lock(&client->lock);
    client->direct_fd = -1;
    pthread_mutex_unlock(&client->lock);
    if (client->bev != NULL) {
        bufferevent_free(client->bev);
        client->bev = NULL;
    }
}

static void mf_net_client_free(mf_net_client_t *client)
{
    if (client->flush_ev != NULL) {
        event_free(client->flush_ev);
    }
    if (client->outq != NULL) {
        evbuffer_free(client->outq);
    }
    if (client->flush_buf != NULL) {
        evbuffer_free(client->flush_buf);
    }
    mf_net_loop_cleanup(&client->loop);
    mf_hmap_free(&client->pending);
    pthread_cond_destroy(&client->reconnect_cond);
    pthread_cond_destroy(&client->state_cond);
    pthread_mutex_destroy(&client->lock);
    for (size_t i = 0; i < client->nends; i++) {
        free(client->hosts[i]);
    }
    free(client->hosts);
    free(client->ports);
    free(client);
}

mf_status_t mf_net_client_create(const mf_net_client_params_t *params,
                                 mf_net_client_t **client_p)
{
    mf_net_client_t *client;
    mf_status_t status;

    if ((params == NULL) || (params->host == NULL) || (params->port == 0) ||
        (params->nmore > 0 && params->more == NULL)) {
        mf_error("client parameters without a host and port");
        status = MF_ERR_INVALID;
        goto err;
    }
    for (size_t i = 0; i < params->nmore; i++) {
        if (params->more[i].host == NULL || params->more[i].port == 0) {
            mf_error("client parameters: endpoint %zu without a host and "
                     "port",
                     i + 1);
            status = MF_ERR_INVALID;
            goto err;
        }
    }
    mf_net_global_init();

    client = calloc(1, sizeof(*client));
    if (client == NULL) {
        mf_error("no memory for a client");
        status = MF_ERR_NOMEM;
        goto err;
    }
    pthread_mutex_init(&client->lock, NULL);
    pthread_cond_init(&client->state_cond, NULL);
    pthread_cond_init(&client->reconnect_cond, NULL);
    mf_hmap_init(&client->pending);
    client->state = MF_NET_CLIENT_DISCONNECTED;
    client->direct_fd = -1;
    client->spin_ok = sysconf(_SC_NPROCESSORS_ONLN) > 1;
    client->connect_timeout_ms = (params->connect_timeout_ms != 0)
                                     ? params->connect_timeout_ms
                                     : MF_NET_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS;
    client->max_body =
        (params->max_body != 0) ? params->max_body : MF_NET_DEFAULT_MAX_BODY;
    client->on_notify = params->on_notify;
    client->on_reconnect = params->on_reconnect;
    client->on_disconnect = params->on_disconnect;
    client->open_opcode = params->open_opcode;
    client->arg = params->arg;
    client->stream =
        (params->stream != NULL) ? params->stream : &mf_net_stream_plain;
    snprintf(client->addr, sizeof(client->addr),
             (strchr(params->host, ':') != NULL) ? "[%s]:%u%s" : "%s:%u%s",
             params->host, params->port,
             params->nmore > 0 ? " (or another endpoint)" : "");
    client->hosts = calloc(params->nmore + 1, sizeof(*client->hosts));
    client->ports = calloc(params->nmore + 1, sizeof(*client->ports));
    if (client->hosts == NULL || client->ports == NULL) {
        mf_error("no memory for a client");
        status = MF_ERR_NOMEM;
        goto err_free_client;
    }
    for (size_t i = 0; i <= params->nmore; i++) {
        const char *host = i == 0 ? params->host : params->more[i - 1].host;

        client->ports[i] = i == 0 ? params->port : params->more[i - 1].port;
        client->hosts[i] = strdup(host);
        if (client->hosts[i] == NULL) {
            mf_error("no memory for a client");
            status = MF_ERR_NOMEM;
            goto err_free_client;
        }
        client->nends = i + 1;
    }

    status = mf_net_loop_init(&client->loop, "mf-net-client");
    if (status != MF_OK) {
        goto err_free_client;
    }
    client->flush_ev =
        event_new(client->loop.base, -1, 0, mf_net_client_flush_cb, client);
    client->outq = evbuffer_new();
    client->flush_buf = evbuffer_new();
    if ((client->flush_ev == NULL) || (client->outq == NULL) ||
        (client->flush_buf == NULL)) {
        mf_error("%s: no memory for the client's events", client->addr);
        status = MF_ERR_NOMEM;
        goto err_free_client;
    }
    status = mf_net_loop_start(&client->loop);
    if (status != MF_OK) {
        goto err_free_client;
    }

    pthread_mutex_lock(&client->lock);
    status = mf_net_client_connect_locked(client, false);
    pthread_mutex_unlock(&client->lock);
    if (status != MF_OK) {
        goto err_stop_loop;
    }
    *client_p = client;
    return MF_OK;

err_stop_loop:
    mf_net_loop_stop(&client->loop, mf_net_client_shutdown, client);
err_free_client:
    mf_net_client_free(client);
err:
    return status;
}

void mf_net_client_destroy(mf_net_client_t *client)
{
    bool join_reconnect;

    if (client == NULL) {
        return;
    }
    pthread_mutex_lock(&client->lock);
    if (mf_net_loop_is_current(&client->loop) ||
        (client->reconnect_started &&
         pthread_equal(pthread_self(), client->reconnect_thread))) {
        pthread_mutex_unlock(&client->lock);
        mf_error("%s: mf_net_client_destroy() called from the client's own "
                 "thread; not destroyed",
                 client->addr);
        return;
    }
    client->destroying = true;
    pthread_cond_broadcast(&client->state_cond);
    pthread_cond_signal(&client->reconnect_cond);
    while (client->state == MF_NET_CLIENT_CONNECTING) {
        pthread_cond_wait(&client->state_cond, &client->lock);
    }
    mf_net_client_fail_all_locked(client, MF_ERR_CANCELED);
    while (client->ncallers > 0) {
        pthread_cond_wait(&client->state_cond, &client->lock);
    }
    join_reconnect = client->reconnect_started;
    pthread_mutex_unlock(&client->lock);

    if (join_reconnect) {
        pthread_join(client->reconnect_thread, NULL);
    }
    mf_net_loop_stop(&client->loop, mf_net_client_shutdown, client);
    mf_debug("client of %s destroyed", client->addr);
    mf_net_client_free(client);
}
