/*
 * Private pieces shared by the server and the client of the net layer: an
 * event loop on a thread of its own with a queue of tasks that other
 * threads hand to it, and the frame reader that cuts a bufferevent's input
 * into header + body.
 */
#ifndef MF_NET_NET_INT_H
#define MF_NET_NET_INT_H

#include "net/net.h"
#include "util/containers.h"

#include <pthread.h>
#include <stdbool.h>

struct event;
struct evbuffer;

/* ---- loop thread ---- */

typedef struct mf_net_loop {
    struct event_base *base;
    struct event *task_ev; /* activated when tasks are queued */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock; /* guards tasks and stopping */
    mf_list_t tasks;
    bool stopping; /* no more tasks are accepted */
    char name[16];
} mf_net_loop_t;

/* Creates the base and the task event; the thread starts later. */
mf_status_t mf_net_loop_init(mf_net_loop_t *loop, const char *name);
/* Starts the loop thread (signals blocked there). */
mf_status_t mf_net_loop_start(mf_net_loop_t *loop);
/* True on the loop's own thread. */
bool mf_net_loop_is_current(const mf_net_loop_t *loop);
/* Runs fn(arg) on the loop thread and waits; directly on the loop thread.
 * MF_ERR_STATE once the loop is stopping or was never started. */
mf_status_t mf_net_loop_run_sync(mf_net_loop_t *loop, void (*fn)(void *arg),
                                 void *arg);
/* Runs last_fn(arg) (optional) as the last task, leaves the loop and
 * joins the thread.  Not from the loop thread. */
void mf_net_loop_stop(mf_net_loop_t *loop, void (*last_fn)(void *arg),
                      void *arg);
/* Frees the base (running pending finalizers) and the rest; after stop or
 * when the thread never started. */
void mf_net_loop_cleanup(mf_net_loop_t *loop);

/* ---- streams ---- */

/* Makes a connected socket non-blocking, with TCP_NODELAY; MF_ERR_IO
 * (logged). */
mf_status_t mf_net_sock_prepare(int fd);

/* ---- frames ---- */

typedef struct mf_net_reader {
    size_t max_body;
    bool have_hdr; /* hdr is decoded, the body is awaited */
    mf_net_hdr_t hdr;
} mf_net_reader_t;

void mf_net_reader_init(mf_net_reader_t *reader, size_t max_body);
/*
 * Looks for the next whole frame in bev's input.  MF_OK with *ready_p
 * true: *hdr_p and *body_p describe it (the body stays valid until
 * mf_net_reader_consume()).  MF_OK with *ready_p false: more bytes are
 * needed and the read watermark is set for them.  Anything else: the peer
 * sent a bad header (already logged), drop the connection.
 */
mf_status_t mf_net_reader_next(mf_net_reader_t *reader, struct bufferevent *bev,
                               const char *peer, bool *ready_p,
                               mf_net_hdr_t *hdr_p, const uint8_t **body_p);
/* Drops the frame returned by the last mf_net_reader_next(). */
void mf_net_reader_consume(mf_net_reader_t *reader, struct bufferevent *bev);
/* The same on an evbuffer of bytes read (no watermark to set), and its
 * drop. */
mf_status_t mf_net_reader_parse(mf_net_reader_t *reader, struct evbuffer *in,
                                const char *peer, bool *ready_p,
                                mf_net_hdr_t *hdr_p, const uint8_t **body_p);
void mf_net_reader_drop(mf_net_reader_t *reader, struct evbuffer *in);

/* Encodes a header and the body into bev's output.  With raw_fd (the
 * stream's: its socket carries the frames as they are) and nothing else
 * pending, the frame first goes straight to the socket, on the loop
 * thread, and only what did not fit is queued: no write event, no extra
 * turn of the loop for a reply that fits in the socket's buffer. */
mf_status_t mf_net_frame_write(struct bufferevent *bev, bool raw_fd,
                               uint8_t kind, uint16_t opcode, int32_t status,
                               uint64_t req_id, const void *body, size_t len);
/* Encodes a header and the body at the end of out, whole or not at all. */
mf_status_t mf_net_frame_add(struct evbuffer *out, uint8_t kind,
                             uint16_t opcode, int32_t status, uint64_t req_id,
                             const void *body, size_t len);

#endif
