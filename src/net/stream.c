/*
 * Byte streams and framing on top of them: the plain TCP stream ops, the
 * frame reader that cuts a bufferevent's input into header + body, and the
 * frame writer.
 *
 * The reader decodes (and so bounds) a header before it waits for any
 * body byte, and it waits through the read low watermark, so a frame is
 * handled once, whole, and a peer's length never sizes anything before it
 * was checked against max_body.
 */
#include "net/net_int.h"
#include "util/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* ---- plain TCP ---- */

mf_status_t mf_net_sock_prepare(int fd)
{
    int one = 1;

    if (evutil_make_socket_nonblocking(fd) < 0) {
        mf_error("cannot make socket %d non-blocking: %m", fd);
        return MF_ERR_IO;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        /* Only latency suffers; not a reason to drop the connection. */
        mf_warn("setsockopt(TCP_NODELAY) on socket %d failed: %m", fd);
    }
    return MF_OK;
}

static struct bufferevent *mf_net_plain_bev_new(struct event_base *base, int fd,
                                                bool server, void *ctx)
{
    struct bufferevent *bev;

    if (mf_net_sock_prepare(fd) != MF_OK) {
        return NULL;
    }
    /* Only the loop thread touches a bufferevent (other threads queue
     * frames to it), so it needs no lock of its own. */
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        mf_error("bufferevent_socket_new() failed for socket %d", fd);
        return NULL;
    }
    return bev;
}

const mf_net_stream_ops_t mf_net_stream_plain = {
    .name = "tcp",
    .bev_new = mf_net_plain_bev_new,
    .ctx = NULL,
    .raw_fd = true,
};

/* ---- frames ---- */

void mf_net_reader_init(mf_net_reader_t *reader, size_t max_body)
{
    reader->max_body = max_body;
    reader->have_hdr = false;
}

mf_status_t mf_net_reader_parse(mf_net_reader_t *reader, struct evbuffer *in,
                                const char *peer, bool *ready_p,
                                mf_net_hdr_t *hdr_p, const uint8_t **body_p)
{
    uint8_t raw[MF_NET_HDR_SIZE];
    const uint8_t *body = NULL;
    mf_status_t status;

    *ready_p = false;
    if (!reader->have_hdr) {
        if (evbuffer_get_length(in) < MF_NET_HDR_SIZE) {
            return MF_OK;
        }
        if (evbuffer_remove(in, raw, sizeof(raw)) != (int)sizeof(raw)) {
            mf_error("cannot read a frame header from %s", peer);
            return MF_ERR_IO;
        }
        status = mf_net_hdr_decode(raw, reader->max_body, &reader->hdr);
        if (status == MF_ERR_TOO_LARGE) {
            mf_warn("%s announced a frame body of %u bytes, over its limit "
                    "of %zu; disconnecting",
                    peer, mf_le32_load(raw + 12), reader->max_body);
            return status;
        }
        if (status != MF_OK) {
            mf_warn("%s sent a bad frame header (%s), disconnecting", peer,
                    mf_status_name(status));
            return status;
        }
        reader->have_hdr = true;
    }

    if (evbuffer_get_length(in) < reader->hdr.body_len) {
        return MF_OK;
    }
    if (reader->hdr.body_len > 0) {
        body = evbuffer_pullup(in, reader->hdr.body_len);
        if (body == NULL) {
            mf_error("cannot gather a frame body of %u bytes from %s",
                     reader->hdr.body_len, peer);
            return MF_ERR_NOMEM;
        }
    }
    *hdr_p = reader->hdr;
    *body_p = body;
    *ready_p = true;
    return MF_OK;
}

void mf_net_reader_drop(mf_net_reader_t *reader, struct evbuffer *in)
{
    evbuffer_drain(in, reader->hdr.body_len);
    reader->have_hdr = false;
}

mf_status_t mf_net_reader_next(mf_net_reader_t *reader, struct bufferevent *bev,
                               const char *peer, bool *ready_p,
                               mf_net_hdr_t *hdr_p, const uint8_t **body_p)
{
    mf_status_t status = mf_net_reader_parse(reader, bufferevent_get_input(bev),
                                             peer, ready_p, hdr_p, body_p);

    if (status == MF_OK && !*ready_p) { /* wake up when the rest is in */
        bufferevent_setwatermark(
            bev, EV_READ,
            reader->have_hdr ? reader->hdr.body_len : MF_NET_HDR_SIZE, 0);
    }
    return status;
}

void mf_net_reader_consume(mf_net_reader_t *reader, struct bufferevent *bev)
{
    mf_net_reader_drop(reader, bufferevent_get_input(bev));
}

/* Checks a frame and encodes its header into raw. */
static mf_status_t mf_net_frame_hdr(uint8_t kind, uint16_t opcode,
                                    int32_t status, uint64_t req_id,
                                    const void *body, size_t len,
                                    uint8_t raw[MF_NET_HDR_SIZE])
{
    mf_net_hdr_t hdr = {
        .magic = MF_NET_MAGIC,
        .version = MF_NET_VERSION,
        .kind = kind,
        .opcode = opcode,
        .status = status,
        .body_len = (uint32_t)len,
        .req_id = req_id,
    };

    if (len > UINT32_MAX) {
        mf_error("a frame body of %zu bytes is too large", len);
        return MF_ERR_TOO_LARGE;
    }
    if ((len > 0) && (body == NULL)) {
        mf_error("a frame body of %zu bytes without data", len);
        return MF_ERR_INVALID;
    }
    mf_net_hdr_encode(&hdr, raw);
    return MF_OK;
}

mf_status_t mf_net_frame_add(struct evbuffer *out, uint8_t kind,
                             uint16_t opcode, int32_t status, uint64_t req_id,
                             const void *body, size_t len)
{
    uint8_t raw[MF_NET_HDR_SIZE];
    mf_status_t st;

    st = mf_net_frame_hdr(kind, opcode, status, req_id, body, len, raw);
    if (st != MF_OK) {
        return st;
    }
    /* Reserve first, so the header never goes in without its body. */
    if (evbuffer_expand(out, sizeof(raw) + len) < 0) {
        mf_error("cannot queue a frame of %zu bytes", sizeof(raw) + len);
        return MF_ERR_NOMEM;
    }
    evbuffer_add(out, raw, sizeof(raw));
    if (len > 0) {
        evbuffer_add(out, body, len);
    }
    return MF_OK;
}

mf_status_t mf_net_frame_write(struct bufferevent *bev, bool raw_fd,
                               uint8_t kind, uint16_t opcode, int32_t status,
                               uint64_t req_id, const void *body, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    uint8_t raw[MF_NET_HDR_SIZE];
    struct iovec iov[2];
    struct msghdr msg;
    size_t sent = 0;
    ssize_t n;
    mf_status_t st;

    st = mf_net_frame_hdr(kind, opcode, status, req_id, body, len, raw);
    if (st != MF_OK) {
        return st;
    }
    if (raw_fd && evbuffer_get_length(out) == 0 &&
        bufferevent_getfd(bev) >= 0) {
        iov[0] = (struct iovec){raw, sizeof(raw)};
        iov[1] = (struct iovec){(void *)body, len};
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = len > 0 ? 2 : 1;
        do {
            n = sendmsg(bufferevent_getfd(bev), &msg,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        /* a full or broken socket: the bufferevent finds out which */
        sent = n > 0 ? (size_t)n : 0;
        if (sent == sizeof(raw) + len) {
            return MF_OK;
        }
    }
    /* Reserve first, so the header never goes out without its body. */
    if (evbuffer_expand(out, sizeof(raw) + len - sent) < 0) {
        mf_error("cannot queue a frame of %zu bytes", sizeof(raw) + len);
        if (sent > 0) { /* half a frame is out: the stream is unusable */
            shutdown(bufferevent_getfd(bev), SHUT_RDWR);
        }
        return MF_ERR_NOMEM;
    }
    if (sent < sizeof(raw)) {
        evbuffer_add(out, raw + sent, sizeof(raw) - sent);
        sent = 0;
    } else {
        sent -= sizeof(raw);
    }
    if (len > sent) {
        evbuffer_add(out, (const uint8_t *)body + sent, len - sent);
    }
    return MF_OK;
}
