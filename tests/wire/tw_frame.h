/*
 * Frames of src/net over a plain blocking socket, for tests that cannot or
 * must not go through mf_net_client: a test parent that has to stay free
 * of threads (it forks), and tests that send a server what no client
 * would (frames cut short, lying lengths, bodies cut or bent, requests
 * whose replies are never read).  The header is always mf_net_hdr_encode's
 * and mf_net_hdr_decode's: a bad header is made by setting a field of
 * mf_net_hdr_t to what a client would never send, a cut frame by sending
 * fewer bytes than tw_frame_encode made.
 *
 * tw_call returns like mf_net_client_call: MF_OK when a response arrived,
 * with the frame status in resp->hdr.status, or the failure of the
 * connection (logged).
 *
 * These helpers use internal headers (src/net), so they are not part of
 * the test kit (tests/common, public headers only).
 */
#ifndef MF_TW_FRAME_H
#define MF_TW_FRAME_H

#include "net/net.h"
#include "util/codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- frames ---- */

/* The header of a request of body_len bytes. */
mf_net_hdr_t tw_req_hdr(uint16_t opcode, uint64_t req_id, uint32_t body_len);

/* Appends a whole frame to w: hdr encoded, then len bytes of body (body
 * may be NULL when len is 0).  hdr->body_len is sent as it is, so it may
 * lie about len. */
void tw_frame_encode(mf_wbuf_t *w, const mf_net_hdr_t *hdr, const void *body,
                     size_t len);

/* Sends hdr encoded, and nothing else; false once the peer is gone. */
bool tw_send_hdr(int fd, const mf_net_hdr_t *hdr);

/* Sends a request frame with len bytes of body; false once the peer is
 * gone. */
bool tw_send_req(int fd, uint16_t opcode, uint64_t req_id, const void *body,
                 size_t len);

/* One frame as it arrived. */
typedef struct tw_frame {
    mf_net_hdr_t hdr;
    uint8_t *body; /* malloc'd, NULL when empty: tw_frame_free() */
    size_t len;
} tw_frame_t;

/*
 * Reads one frame within timeout_ms: its header, checked by
 * mf_net_hdr_decode against max_body, and its body.  MF_OK;
 * MF_ERR_TIMEOUT when nothing whole came in time or the peer closed; what
 * mf_net_hdr_decode says of a bad header; MF_ERR_NOMEM.  Logged.
 */
mf_status_t tw_frame_recv(int fd, unsigned timeout_ms, size_t max_body,
                          tw_frame_t *frame_p);

/* Frees the body (a zeroed frame is fine). */
void tw_frame_free(tw_frame_t *frame);

/* ---- a connection ---- */

typedef struct tw_conn tw_conn_t;

struct tw_conn {
    int fd;              /* -1: closed */
    uint64_t req_id;     /* of the next request */
    unsigned timeout_ms; /* of every wait for a response */
    /* Optional: a notify that arrived while tw_call waited (a server may
     * send one at any time); without, notifies are skipped. */
    void (*on_notify)(tw_conn_t *c, const tw_frame_t *frame);
};

/* Takes fd (a connected socket, closed by tw_conn_close); request ids
 * start at 1. */
void tw_conn_init(tw_conn_t *c, int fd, unsigned timeout_ms);

/* Connects to addr:port (IPv4) and tw_conn_init()s.  0, or -1 (logged;
 * c->fd is -1). */
int tw_conn_open(tw_conn_t *c, const char *addr, uint16_t port,
                 unsigned timeout_ms);

/* Closes the socket, if open. */
void tw_conn_close(tw_conn_t *c);

/*
 * Sends a request of len bytes of body with the next request id and reads
 * its response (of at most MF_NET_DEFAULT_MAX_BODY bytes, what
 * mf_net_client takes), which must be a response to that id and opcode (a
 * mismatch is MF_ERR_PROTO).  Notifies on the way go to c->on_notify, and
 * responses to request id 0 (sent with tw_send_req, never waited for) are
 * skipped.  See the header comment for what it returns;
 * *resp_p is to be freed with tw_frame_free() after MF_OK and holds
 * nothing after a failure.
 */
mf_status_t tw_call(tw_conn_t *c, uint16_t opcode, const void *body, size_t len,
                    tw_frame_t *resp_p);

#endif /* MF_TW_FRAME_H */
