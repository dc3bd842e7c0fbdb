/*
 * Frames of src/net over a blocking socket (see tw_frame.h).
 *
 * Invariants: every header sent comes out of mf_net_hdr_encode (a caller
 * may bend a field or cut the frame first) and every header read goes
 * through mf_net_hdr_decode; a response is matched to its request by id
 * and opcode.
 */
#include "tw_frame.h"

#include "tk_proc.h"
#include "tk_sock.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- frames ---- */

mf_net_hdr_t tw_req_hdr(uint16_t opcode, uint64_t req_id, uint32_t body_len)
{
    mf_net_hdr_t hdr = {
        .magic = MF_NET_MAGIC,
        .version = MF_NET_VERSION,
        .kind = MF_NET_KIND_REQUEST,
        .opcode = opcode,
        .status = 0,
        .body_len = body_len,
        .req_id = req_id,
    };

    return hdr;
}

void tw_frame_encode(mf_wbuf_t *w, const mf_net_hdr_t *hdr, const void *body,
                     size_t len)
{
    uint8_t raw[MF_NET_HDR_SIZE];

    mf_net_hdr_encode(hdr, raw);
    mf_wbuf_put_raw(w, raw, sizeof(raw));
    if (len > 0) {
        mf_wbuf_put_raw(w, body, len);
    }
}

bool tw_send_hdr(int fd, const mf_net_hdr_t *hdr)
{
    uint8_t raw[MF_NET_HDR_SIZE];

    mf_net_hdr_encode(hdr, raw);
    return tk_sock_send_all(fd, raw, sizeof(raw));
}

bool tw_send_req(int fd, uint16_t opcode, uint64_t req_id, const void *body,
                 size_t len)
{
    mf_net_hdr_t hdr = tw_req_hdr(opcode, req_id, (uint32_t)len);

    return tw_send_hdr(fd, &hdr) &&
           ((len == 0) || tk_sock_send_all(fd, body, len));
}

/* Reads len bytes before deadline: MF_OK, MF_ERR_TIMEOUT, or
 * MF_ERR_CONN_RESET when the peer closed or the socket failed. */
static mf_status_t tw_read(int fd, void *buf, size_t len, uint64_t deadline)
{
    uint64_t now = tk_time_ms();

    if (tk_sock_read_exact(fd, buf, len,
                           (now < deadline) ? (unsigned)(deadline - now) : 0)) {
        return MF_OK;
    }
    return (tk_time_ms() >= deadline) ? MF_ERR_TIMEOUT : MF_ERR_CONN_RESET;
}

mf_status_t tw_frame_recv(int fd, unsigned timeout_ms, size_t max_body,
                          tw_frame_t *frame_p)
{
    uint64_t deadline = tk_time_ms() + timeout_ms;
    uint8_t raw[MF_NET_HDR_SIZE];
    tw_frame_t frame = {.body = NULL};
    mf_status_t status;

    memset(frame_p, 0, sizeof(*frame_p));
    status = tw_read(fd, raw, sizeof(raw), deadline);
    if (status != MF_OK) {
        tk_print("wire: no frame header: %s", mf_status_name(status));
        return status;
    }
    status = mf_net_hdr_decode(raw, max_body, &frame.hdr);
    if (status != MF_OK) {
        tk_print("wire: bad frame header: %s", mf_status_name(status));
        return status;
    }
    frame.len = frame.hdr.body_len;
    if (frame.len > 0) {
        frame.body = malloc(frame.len);
        if (frame.body == NULL) {
            tk_print("wire: no memory for a body of %zu bytes", frame.len);
            return MF_ERR_NOMEM;
        }
        status = tw_read(fd, frame.body, frame.len, deadline);
        if (status != MF_OK) {
            tk_print("wire: body of %zu bytes cut short: %s", frame.len,
                     mf_status_name(status));
            free(frame.body);
            return status;
        }
    }
    *frame_p = frame;
    return MF_OK;
}

void tw_frame_free(tw_frame_t *frame)
{
    free(frame->body);
    memset(frame, 0, sizeof(*frame));
}

/* ---- a connection ---- */

void tw_conn_init(tw_conn_t *c, int fd, unsigned timeout_ms)
{
    c->fd = fd;
    c->req_id = 1;
    c->timeout_ms = timeout_ms;
    c->on_notify = NULL;
}

int tw_conn_open(tw_conn_t *c, const char *addr, uint16_t port,
                 unsigned timeout_ms)
{
    tw_conn_init(c, tk_sock_connect(addr, port), timeout_ms);
    return (c->fd >= 0) ? 0 : -1;
}

void tw_conn_close(tw_conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

mf_status_t tw_call(tw_conn_t *c, uint16_t opcode, const void *body, size_t len,
                    tw_frame_t *resp_p)
{
    uint64_t req_id = c->req_id++;
    mf_status_t status;

    memset(resp_p, 0, sizeof(*resp_p));
    if (!tw_send_req(c->fd, opcode, req_id, body, len)) {
        tk_print("wire: opcode %u: the connection broke", opcode);
        return MF_ERR_CONN_RESET;
    }
    for (;;) {
        status = tw_frame_recv(c->fd, c->timeout_ms, MF_NET_DEFAULT_MAX_BODY,
                               resp_p);
        if (status != MF_OK) {
            return status; /* logged */
        }
        if (resp_p->hdr.kind == MF_NET_KIND_NOTIFY) {
            if (c->on_notify != NULL) {
                c->on_notify(c, resp_p);
            }
        } else if (resp_p->hdr.kind != MF_NET_KIND_RESPONSE ||
                   resp_p->hdr.req_id != 0) {
            break;
        }
        tw_frame_free(resp_p);
    }
    if ((resp_p->hdr.kind != MF_NET_KIND_RESPONSE) ||
        (resp_p->hdr.req_id != req_id) || (resp_p->hdr.opcode != opcode)) {
        tk_print("wire: opcode %u, request %llu answered by kind %u, opcode "
                 "%u, request %llu",
                 opcode, (unsigned long long)req_id, resp_p->hdr.kind,
                 resp_p->hdr.opcode, (unsigned long long)resp_p->hdr.req_id);
        tw_frame_free(resp_p);
        return MF_ERR_PROTO;
    }
    return MF_OK;
}
