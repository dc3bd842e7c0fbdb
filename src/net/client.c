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
 * under the same lock; a caller that does not read the socket itself
 * (below) and whose responses have been quick spins briefly before it
 * sleeps, so the hand-over costs no wake-up.  Whatever breaks the
 * connection (EOF, error, a bad frame; a caller that reads one hands it
 * to the loop through lost_ev), the loop drops the bufferevent, the out
 * queue and every pending call in one step under the lock, so a call is
 * either answered or failed, never lost.  Connecting (the first time and after
 * a loss, by the next call) happens on a calling thread, with a non-blocking
 * connect bounded by connect_timeout_ms (mf_sock_connect); one thread
 * connects while others wait for its outcome.  The opening request
 * (open_opcode) goes into the bufferevent before the connection is marked
 * connected, so it precedes every call; its response (req_id 0, never a
 * call's) is dropped.  The locking order is client lock, then libevent's
 * locks; nobody takes the client lock while holding a libevent lock of
 * another thread's object.
 *
 * Reading a plain socket: the bufferevent only writes; whoever holds
 * rd_lock reads the socket into rd_in and hands over every whole frame.
 * A caller waiting for its response takes rd_lock when it is free and
 * reads for itself (poll, then read), so an answer reaches its caller
 * with no other thread woken on the way, as in a plain blocking
 * request/response.  Otherwise the loop reads.  The loop learns of bytes
 * to read through an epoll set of the client's own (rd_ep, watched by
 * rd_ev) where the socket sits with EPOLLONESHOT: an event disarms it,
 * and a caller disarms it while it reads, so the loop is not woken by
 * bytes a caller reads.  Whoever holds rd_lock re-arms it before it
 * unlocks (the watch changes only under rd_lock, never on a closed
 * socket); bytes that came meanwhile (or the peer's end) show at once.
 * An event that finds rd_lock taken sets rd_missed, which the holder
 * looks at after unlocking and reads on, so none is left unread.
 * Notifications reach on_notify one at a time, in the order they came:
 * at once when none is queued or being delivered, on the loop or (with
 * notify_on_caller) on a caller that read them, else through a queue the
 * loop delivers; mf_net_client_notes_wait waits for every one read so far
 * to be delivered.  A caller that finds more than
 * MF_NET_CLIENT_NOTES_MAX bytes of them queued leaves the reading to the
 * loop.  The loop takes rd_lock only to swap the socket (attach, loss,
 * shutdown) and raises rd_want meanwhile, which makes a reading caller
 * step back within one poll slice.  Lock order: rd_lock, then the client
 * lock.
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
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

/* A caller reading for its response polls at most this long at a time,
 * then looks whether the loop wants the socket (rd_want). */
#define MF_NET_CLIENT_POLL_SLICE_MS 20

/* Bytes of notifications a reading caller may leave queued for the loop
 * before it leaves the reading to the loop. */
#define MF_NET_CLIENT_NOTES_MAX (256 * 1024)

/* The most one read takes from the socket. */
#define MF_NET_CLIENT_READ_CHUNK (64 * 1024)

/* A notification read by a caller, queued for the loop: this, then the
 * body. */
typedef struct mf_net_note {
    uint32_t opcode;
    uint32_t len;
} mf_net_note_t;

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
    bool notify_on_caller;
    uint16_t open_opcode;
    void *arg;
    const mf_net_stream_ops_t *stream;
    char addr[300]; /* "host:port" (of the first endpoint, "+n" more), for
                       messages */

    uint64_t rtt_ns; /* recent response time, a moving average (atomic) */
    bool spin_ok;    /* more than one CPU: spinning can pay */

    /* Loop thread only. */
    struct bufferevent *bev;
    mf_net_reader_t reader; /* a stream that is no plain socket */
    struct event *flush_ev;
    struct evbuffer *flush_buf; /* frames on their way from outq */
    struct event *rd_ev;        /* rd_ep has an event */
    struct event *lost_ev;      /* a caller read the connection's end */
    struct event *note_ev;      /* notifications wait in notes */
    struct evbuffer *note_buf;  /* notifications being delivered */

    /* Reading the plain socket (see the top of the file). */
    pthread_mutex_t rd_lock;
    int rd_fd;                 /* under rd_lock: the socket, or -1 */
    bool rd_broken;            /* under rd_lock: its end, an error or a bad
                                  frame was read */
    struct evbuffer *rd_in;    /* under rd_lock: bytes not yet whole frames */
    mf_net_reader_t rd_reader; /* under rd_lock */
    bool rd_backoff;           /* under rd_lock: a reading caller found more
                                  than MF_NET_CLIENT_NOTES_MAX bytes of
                                  notifications queued and leaves the rest
                                  to the loop */
    int rd_want;               /* atomic: the loop waits for rd_lock */
    int rd_missed;             /* atomic: the loop had an event while
                                  rd_lock was taken */
    int rd_ep;                 /* epoll set of the socket (one-shot) */

    pthread_mutex_t lock;
    pthread_cond_t state_cond; /* state, ncallers or destroying changed */
    mf_net_client_state_t state;
    bool destroying;
    mf_status_t connect_status; /* outcome of the last connect attempt */
    struct evbuffer *outq;      /* whole frames for the loop to send */
    struct evbuffer *notes;     /* notifications read by callers, in order */
    uint64_t notes_read;        /* notifications read, queued or not */
    uint64_t notes_done;        /* of those, the ones on_notify returned from */
    bool notes_busy;            /* the loop delivers queued ones */
    unsigned notes_waiters;     /* threads in mf_net_client_notes_wait() */
    pthread_cond_t notes_cond;  /* notes_done grew, or destroying */
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

/* Loop: takes rd_lock, making a reading caller step back. */
static void mf_net_client_rd_lock(mf_net_client_t *client)
{
    __atomic_store_n(&client->rd_want, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&client->rd_lock);
    __atomic_store_n(&client->rd_want, 0, __ATOMIC_SEQ_CST);
}

/* Under rd_lock: arms the one-shot watch of the socket in rd_ep (the
 * loop hears of bytes to read, or of the peer's end, once), or disarms
 * it.  Not once the connection is found broken: its loss is on its way. */
static void mf_net_client_rd_arm(mf_net_client_t *client, bool on)
{
    struct epoll_event ev = {
        .events = on ? EPOLLIN | EPOLLRDHUP | EPOLLONESHOT : EPOLLONESHOT,
    };

    if (client->rd_fd >= 0 && !client->rd_broken) {
        (void)epoll_ctl(client->rd_ep, EPOLL_CTL_MOD, client->rd_fd, &ev);
    }
}

/* Loop: the socket to read from now on (-1: none), with nothing read.
 * The bufferevent owns (and closes) the socket: swap it out first. */
static mf_status_t mf_net_client_rd_swap(mf_net_client_t *client, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT};
    mf_status_t status = MF_OK;

    mf_net_client_rd_lock(client);
    if (client->rd_fd >= 0) {
        (void)epoll_ctl(client->rd_ep, EPOLL_CTL_DEL, client->rd_fd, NULL);
    }
    client->rd_fd = -1;
    client->rd_broken = false;
    evbuffer_drain(client->rd_in, evbuffer_get_length(client->rd_in));
    mf_net_reader_init(&client->rd_reader, client->max_body);
    if (fd >= 0) {
        if (epoll_ctl(client->rd_ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
            client->rd_fd = fd;
        } else {
            mf_error("cannot watch the connection to %s: %s", client->addr,
                     strerror(errno));
            status = MF_ERR_IO;
        }
    }
    pthread_mutex_unlock(&client->rd_lock);
    return status;
}

/* The connection broke (or the peer misbehaved): drop it and fail every
 * call that was waiting on it. */
static void mf_net_client_lost(mf_net_client_t *client)
{
    bool destroying;

    (void)mf_net_client_rd_swap(client, -1); /* before the socket closes */
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

/* n more notifications were delivered. */
static void mf_net_client_notes_done(mf_net_client_t *client, uint64_t n)
{
    pthread_mutex_lock(&client->lock);
    client->notes_done += n;
    client->notes_busy = false;
    if (client->notes_waiters > 0) {
        pthread_cond_broadcast(&client->notes_cond);
    }
    pthread_mutex_unlock(&client->lock);
}

/* Loop: hands the queued notifications to on_notify, in order. */
static void mf_net_client_notes_deliver(mf_net_client_t *client)
{
    mf_net_note_t note;
    const uint8_t *body;
    uint64_t n = 0;

    pthread_mutex_lock(&client->lock);
    evbuffer_add_buffer(client->note_buf, client->notes);
    client->notes_busy = evbuffer_get_length(client->note_buf) > 0;
    pthread_mutex_unlock(&client->lock);
    while (evbuffer_remove(client->note_buf, &note, sizeof(note)) ==
           (int)sizeof(note)) {
        body =
            note.len > 0 ? evbuffer_pullup(client->note_buf, note.len) : NULL;
        if (note.len > 0 && body == NULL) {
            mf_error("%s: no memory to deliver a notification", client->addr);
        } else {
            client->on_notify((uint16_t)note.opcode, body, note.len,
                              client->arg);
        }
        evbuffer_drain(client->note_buf, note.len);
        n++;
    }
    if (n > 0) {
        mf_net_client_notes_done(client, n);
    }
}

/*
 * A notification read from the socket (under rd_lock): with none queued
 * or being delivered, to on_notify at once on the loop, and on a caller
 * too with notify_on_caller (in order either way: only the holder of
 * rd_lock reads, and queues); else queued for the loop (false: no
 * memory, logged), whose delivery a caller activates.  A
 * caller that finds more than MF_NET_CLIENT_NOTES_MAX bytes queued stops
 * reading after this read (rd_backoff): notifications can come in floods,
 * and the loop delivers them as it reads them.
 */
static bool mf_net_client_note(mf_net_client_t *client, const mf_net_hdr_t *hdr,
                               const uint8_t *body, bool on_loop)
{
    mf_net_note_t note = {.opcode = hdr->opcode, .len = hdr->body_len};
    bool first, ok;
    size_t queued;

    if (client->on_notify == NULL) {
        return true;
    }
    pthread_mutex_lock(&client->lock);
    first = evbuffer_get_length(client->notes) == 0;
    if (first &&
        (on_loop || (client->notify_on_caller && !client->notes_busy))) {
        client->notes_read++;
        pthread_mutex_unlock(&client->lock);
        client->on_notify(hdr->opcode, body, hdr->body_len, client->arg);
        mf_net_client_notes_done(client, 1);
        return true;
    }
    ok = evbuffer_expand(client->notes, sizeof(note) + note.len) == 0 &&
         evbuffer_add(client->notes, &note, sizeof(note)) == 0 &&
         (note.len == 0 || evbuffer_add(client->notes, body, note.len) == 0);
    client->notes_read += ok;
    queued = evbuffer_get_length(client->notes);
    pthread_mutex_unlock(&client->lock);
    if (!on_loop) {
        client->rd_backoff = queued > MF_NET_CLIENT_NOTES_MAX;
    }
    if (!ok) {
        mf_error("%s: no memory for a notification of %u bytes", client->addr,
                 note.len);
        return false;
    }
    if (first && !on_loop) {
        event_active(client->note_ev, 0, 0);
    }
    return true;
}

/* Hands one whole frame to its owner: a response to its caller, a
 * notification to on_notify or its queue (mf_net_client_note).  false:
 * the peer sent what a client must not get, or no memory (logged). */
static bool mf_net_client_frame(mf_net_client_t *client,
                                const mf_net_hdr_t *hdr, const uint8_t *body,
                                bool on_loop)
{
    switch (hdr->kind) {
    case MF_NET_KIND_RESPONSE:
        mf_net_client_response(client, hdr, body);
        return true;
    case MF_NET_KIND_NOTIFY:
        return mf_net_client_note(client, hdr, body, on_loop);
    default:
        mf_warn("%s sent a request to a client, disconnecting", client->addr);
        return false;
    }
}

/* Hands over the whole frames in rd_in.  Under rd_lock; false: the peer
 * broke the protocol (logged). */
static bool mf_net_client_rd_frames(mf_net_client_t *client, bool on_loop)
{
    const uint8_t *body;
    mf_net_hdr_t hdr;
    bool ready;

    for (;;) {
        if (mf_net_reader_parse(&client->rd_reader, client->rd_in, client->addr,
                                &ready, &hdr, &body) != MF_OK) {
            return false;
        }
        if (!ready) {
            return true;
        }
        if (!mf_net_client_frame(client, &hdr, body, on_loop)) {
            return false;
        }
        mf_net_reader_drop(&client->rd_reader, client->rd_in);
    }
}

/* Reads the socket into rd_in once: bytes read, 0 at its end, -1 with
 * errno. */
static ssize_t mf_net_client_rd_once(mf_net_client_t *client)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    ssize_t got;
    int n, i;

    n = evbuffer_reserve_space(client->rd_in, MF_NET_CLIENT_READ_CHUNK, vec, 2);
    if (n <= 0) {
        errno = ENOMEM;
        return -1;
    }
    for (i = 0; i < n; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    do {
        got = readv(client->rd_fd, iov, n);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
        return got;
    }
    if ((size_t)got <= vec[0].iov_len) {
        vec[0].iov_len = (size_t)got;
        n = 1;
    } else {
        vec[1].iov_len = (size_t)got - vec[0].iov_len;
    }
    evbuffer_commit_space(client->rd_in, vec, n);
    return got;
}

/*
 * Reads what the socket has and hands over every whole frame, up to a
 * short read or EAGAIN (whatever came after, the peer's end included,
 * shows when the watch is re-armed).  Under rd_lock.  false: this read
 * found the connection broken (rd_broken set; the loop must drop it).
 */
static bool mf_net_client_rd_drain(mf_net_client_t *client, bool on_loop)
{
    ssize_t n;

    if (client->rd_fd < 0 || client->rd_broken) {
        return true; /* none, or its loss is already on its way */
    }
    for (;;) {
        n = mf_net_client_rd_once(client);
        if (n > 0) {
            if (!mf_net_client_rd_frames(client, on_loop)) {
                break;
            }
            if (n < MF_NET_CLIENT_READ_CHUNK || client->rd_backoff) {
                return true;
            }
            continue;
        }
        if (n == 0) {
            mf_debug("%s closed the connection", client->addr);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return true;
        } else {
            mf_debug("connection to %s failed: %s", client->addr,
                     strerror(errno));
        }
        break;
    }
    client->rd_broken = true;
    return false;
}

/*
 * Reads while the loop had an event that found rd_lock taken (rd_missed),
 * re-arming the watch each time; whoever unlocks rd_lock calls this
 * after, so no event goes unread.  true: the connection broke.
 */
static bool mf_net_client_rd_turn(mf_net_client_t *client, bool on_loop)
{
    bool broken = false;

    while (__atomic_load_n(&client->rd_missed, __ATOMIC_SEQ_CST) &&
           pthread_mutex_trylock(&client->rd_lock) == 0) {
        __atomic_store_n(&client->rd_missed, 0, __ATOMIC_SEQ_CST);
        broken = !mf_net_client_rd_drain(client, on_loop) || broken;
        client->rd_backoff = false;
        mf_net_client_rd_arm(client, true);
        pthread_mutex_unlock(&client->rd_lock);
    }
    return broken;
}

/* Loop: rd_ep has an event.  Takes it (which disarms the watch) and
 * reads, or leaves it to the holder of rd_lock. */
static void mf_net_client_rd_cb(evutil_socket_t fd, short what, void *arg)
{
    mf_net_client_t *client = arg;
    struct epoll_event ev[4];

    (void)epoll_wait(client->rd_ep, ev, 4, 0);
    __atomic_store_n(&client->rd_missed, 1, __ATOMIC_SEQ_CST);
    if (mf_net_client_rd_turn(client, true)) {
        mf_net_client_lost(client);
    }
    mf_net_client_notes_deliver(client);
}

static void mf_net_client_note_cb(evutil_socket_t fd, short what, void *arg)
{
    mf_net_client_notes_deliver(arg);
}

/* A caller read the connection's end: the loop drops it, unless that
 * happened already (a new connection reads as not broken). */
static void mf_net_client_lost_cb(evutil_socket_t fd, short what, void *arg)
{
    mf_net_client_t *client = arg;
    bool broken;

    mf_net_client_rd_lock(client);
    broken = client->rd_fd >= 0 && client->rd_broken;
    pthread_mutex_unlock(&client->rd_lock);
    if (broken) {
        mf_net_client_lost(client);
    }
}

/*
 * A caller reads the socket itself until its response is in, when nobody
 * else reads it; it returns when its response is in, when another thread
 * reads (the response then comes by hand-over), when it left a
 * flood of notifications to the loop, when the loop wants the socket, or at
 * deadline_ns (0: none).
 */
static void mf_net_client_read_for(mf_net_client_t *client,
                                   mf_net_pending_t *pending,
                                   uint64_t deadline_ns)
{
    struct pollfd pfd;
    bool broken = false;
    uint64_t now;
    int ms;

    if (__atomic_load_n(&client->rd_want, __ATOMIC_SEQ_CST) ||
        pthread_mutex_trylock(&client->rd_lock) != 0) {
        return;
    }
    if (client->rd_fd < 0 || client->rd_broken) {
        pthread_mutex_unlock(&client->rd_lock);
        return;
    }
    mf_net_client_rd_arm(client, false); /* the loop sleeps on */
    while (!client->rd_backoff &&
           !__atomic_load_n(&pending->done, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&client->rd_want, __ATOMIC_SEQ_CST)) {
        ms = MF_NET_CLIENT_POLL_SLICE_MS;
        if (deadline_ns != 0) {
            now = mf_time_ns();
            if (now >= deadline_ns) {
                break;
            }
            if (deadline_ns - now < (uint64_t)ms * 1000000u) {
                ms = (int)((deadline_ns - now + 999999u) / 1000000u);
            }
        }
        pfd.fd = client->rd_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, ms) == 0) {
            continue;
        }
        if (!mf_net_client_rd_drain(client, false)) {
            broken = true;
            break;
        }
    }
    client->rd_backoff = false;
    mf_net_client_rd_arm(client, true);
    pthread_mutex_unlock(&client->rd_lock);
    broken = mf_net_client_rd_turn(client, false) || broken;
    if (broken) {
        event_active(client->lost_ev, 0, 0);
    }
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
        if (!mf_net_client_frame(client, &hdr, body, true)) {
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
    bool refused = false;
    char why[320];

    if ((what & BEV_EVENT_ERROR) && client->stream->why != NULL &&
        client->stream->why(bev, &refused, why, sizeof(why)) != NULL) {
        mf_warn("connection to %s %s: %s", client->addr,
                refused ? "refused" : "lost", why);
    } else if (what & BEV_EVENT_ERROR) {
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
    bool raw = client->stream->raw_fd;
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
    /* a plain socket is read through rd_ep, by the loop or a caller */
    if (bufferevent_enable(bev, raw ? EV_WRITE : EV_READ | EV_WRITE) < 0) {
        mf_error("cannot enable the connection to %s", client->addr);
        attach->status = MF_ERR_IO;
        goto err_bev;
    }
    /* Ahead of every call: those reach bev only once CONNECTED, below.
     * req_id 0 is never a call's, so its response is dropped. */
    if ((client->open_opcode != 0) &&
        (mf_net_frame_write(bev, false, MF_NET_KIND_REQUEST,
                            client->open_opcode, 0, 0, NULL, 0) != MF_OK)) {
        attach->status = MF_ERR_NOMEM; /* mf_net_frame_write logged */
        goto err_bev;
    }
    if (raw && mf_net_client_rd_swap(client, attach->fd) != MF_OK) {
        attach->status = MF_ERR_IO;
        goto err_bev;
    }
    client->bev = bev;
    mf_net_reader_init(&client->reader, client->max_body);

    pthread_mutex_lock(&client->lock);
    client->state = MF_NET_CLIENT_CONNECTED;
    client->direct_fd = raw ? attach->fd : -1;
    /* the opening request is in the bufferevent: the write callback says
     * when it is out */
    client->loop_busy = client->open_opcode != 0;
    pthread_mutex_unlock(&client->lock);
    attach->status = MF_OK;
    return;

err_bev:
    bufferevent_free(bev); /* closes the socket */
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

    /* On a plain socket the caller reads its answer itself (unless
     * another thread reads it).  Otherwise a quick answer is caught
     * spinning, without a wake-up; the spinner yields its core to any
     * thread that wants it (the loop that brings the answer, a server on
     * this host). */
    if (client->direct_fd >= 0) {
        pthread_mutex_unlock(&client->lock);
        mf_net_client_read_for(
            client, &pending,
            timeout_ms != 0 ? sent_ns + (uint64_t)timeout_ms * 1000000u : 0);
        pthread_mutex_lock(&client->lock);
    }
    spin_ns = pending.done ? 0 : mf_net_client_spin_ns(client);
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

void mf_net_client_notes_wait(mf_net_client_t *client)
{
    uint64_t target;

    if (mf_net_loop_is_current(&client->loop)) {
        return; /* whatever the loop read, it delivered before returning */
    }
    pthread_mutex_lock(&client->lock);
    target = client->notes_read;
    client->notes_waiters++;
    while (client->notes_done < target && !client->destroying) {
        pthread_cond_wait(&client->notes_cond, &client->lock);
    }
    client->notes_waiters--;
    pthread_mutex_unlock(&client->lock);
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
    (void)mf_net_client_rd_swap(client, -1); /* before the socket closes */
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
    if (client->lost_ev != NULL) {
        event_free(client->lost_ev);
    }
    if (client->note_ev != NULL) {
        event_free(client->note_ev);
    }
    if (client->notes != NULL) {
        evbuffer_free(client->notes);
    }
    if (client->note_buf != NULL) {
        evbuffer_free(client->note_buf);
    }
    if (client->rd_in != NULL) {
        evbuffer_free(client->rd_in);
    }
    if (client->rd_ev != NULL) {
        event_free(client->rd_ev);
    }
    if (client->rd_ep >= 0) {
        close(client->rd_ep);
    }
    mf_net_loop_cleanup(&client->loop);
    mf_hmap_free(&client->pending);
    pthread_cond_destroy(&client->reconnect_cond);
    pthread_cond_destroy(&client->notes_cond);
    pthread_cond_destroy(&client->state_cond);
    pthread_mutex_destroy(&client->rd_lock);
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
    pthread_mutex_init(&client->rd_lock, NULL);
    client->rd_fd = -1;
    client->rd_ep = -1;
    pthread_cond_init(&client->state_cond, NULL);
    pthread_cond_init(&client->reconnect_cond, NULL);
    pthread_cond_init(&client->notes_cond, NULL);
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
    client->notify_on_caller = params->notify_on_caller;
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
    client->lost_ev =
        event_new(client->loop.base, -1, 0, mf_net_client_lost_cb, client);
    client->note_ev =
        event_new(client->loop.base, -1, 0, mf_net_client_note_cb, client);
    client->notes = evbuffer_new();
    client->note_buf = evbuffer_new();
    client->rd_in = evbuffer_new();
    client->rd_ep = epoll_create1(EPOLL_CLOEXEC);
    if (client->rd_ep >= 0) {
        client->rd_ev =
            event_new(client->loop.base, client->rd_ep, EV_READ | EV_PERSIST,
                      mf_net_client_rd_cb, client);
    }
    if (client->rd_ev == NULL || event_add(client->rd_ev, NULL) < 0) {
        mf_error("%s: cannot make the client's read events: %s", client->addr,
                 strerror(errno));
        status = MF_ERR_IO;
        goto err_free_client;
    }
    if ((client->flush_ev == NULL) || (client->outq == NULL) ||
        (client->flush_buf == NULL) || (client->lost_ev == NULL) ||
        (client->note_ev == NULL) || (client->notes == NULL) ||
        (client->note_buf == NULL) || (client->rd_in == NULL)) {
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
    pthread_cond_broadcast(&client->notes_cond);
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
