/*
 * Wire encoding of the net layer: the 24-byte frame header and the body
 * writer and reader.
 *
 * Everything on the wire is little-endian and is assembled byte by byte,
 * so the code is the same on any host.  The reader never reads past the
 * end of its buffer: once a read fails, every later read fails too and
 * zeroes its output, so a decoder may check the status once at the end.
 */
#include "net/net.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

/* ---- little-endian helpers ---- */

static void mf_net_le16_store(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void mf_net_le32_store(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void mf_net_le64_store(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t mf_net_le16_load(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t mf_net_le32_load(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t mf_net_le64_load(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* ---- header ---- */

void mf_net_hdr_encode(const mf_net_hdr_t *hdr, uint8_t out[MF_NET_HDR_SIZE])
{
    mf_net_le32_store(out + 0, hdr->magic);
    out[4] = hdr->version;
    out[5] = hdr->kind;
    mf_net_le16_store(out + 6, hdr->opcode);
    mf_net_le32_store(out + 8, (uint32_t)hdr->status);
    mf_net_le32_store(out + 12, hdr->body_len);
    mf_net_le64_store(out + 16, hdr->req_id);
}

mf_status_t mf_net_hdr_decode(const uint8_t in[MF_NET_HDR_SIZE],
                              size_t max_body, mf_net_hdr_t *hdr_p)
{
    mf_net_hdr_t hdr;

    hdr.magic = mf_net_le32_load(in + 0);
    hdr.version = in[4];
    hdr.kind = in[5];
    hdr.opcode = mf_net_le16_load(in + 6);
    hdr.status = (int32_t)mf_net_le32_load(in + 8);
    hdr.body_len = mf_net_le32_load(in + 12);
    hdr.req_id = mf_net_le64_load(in + 16);

    /* The caller logs with the peer's address; these say what was wrong. */
    if (hdr.magic != MF_NET_MAGIC) {
        mf_debug("bad frame magic 0x%08x", hdr.magic);
        return MF_ERR_PROTO;
    }
    if (hdr.version != MF_NET_VERSION) {
        mf_debug("frame version %u, expected %u", hdr.version, MF_NET_VERSION);
        return MF_ERR_VERSION;
    }
    if ((hdr.kind != MF_NET_KIND_REQUEST) &&
        (hdr.kind != MF_NET_KIND_RESPONSE) &&
        (hdr.kind != MF_NET_KIND_NOTIFY)) {
        mf_debug("bad frame kind %u", hdr.kind);
        return MF_ERR_PROTO;
    }
    if (hdr.body_len > max_body) {
        mf_debug("frame body of %u bytes exceeds the limit of %zu",
                 hdr.body_len, max_body);
        return MF_ERR_TOO_LARGE;
    }

    *hdr_p = hdr;
    return MF_OK;
}

/* ---- writer ---- */

void mf_wbuf_init(mf_wbuf_t *w)
{
    w->data = NULL;
    w->len = 0;
    w->cap = 0;
    w->failed = false;
}

void mf_wbuf_free(mf_wbuf_t *w)
{
    free(w->data);
    mf_wbuf_init(w);
}

/* Returns room for len more bytes, or NULL (and marks w failed). */
static uint8_t *mf_wbuf_reserve(mf_wbuf_t *w, size_t len)
{
    size_t new_cap;
    uint8_t *data;

    if (w->failed) {
        return NULL;
    }
    if (len > SIZE_MAX - w->len) {
        w->failed = true;
        return NULL;
    }
    if (w->len + len > w->cap) {
        new_cap = (w->cap != 0) ? w->cap : 64;
        while (new_cap < w->len + len) {
            if (new_cap > SIZE_MAX / 2) {
                new_cap = w->len + len;
                break;
            }
            new_cap *= 2;
        }
        data = realloc(w->data, new_cap);
        if (data == NULL) {
            mf_error("cannot grow a message buffer to %zu bytes", new_cap);
            w->failed = true;
            return NULL;
        }
        w->data = data;
        w->cap = new_cap;
    }
    return w->data + w->len;
}

void mf_wbuf_put_u8(mf_wbuf_t *w, uint8_t v)
{
    uint8_t *p = mf_wbuf_reserve(w, 1);
    if (p != NULL) {
        *p = v;
        w->len += 1;
    }
}

void mf_wbuf_put_u16(mf_wbuf_t *w, uint16_t v)
{
    uint8_t *p = mf_wbuf_reserve(w, 2);
    if (p != NULL) {
        mf_net_le16_store(p, v);
        w->len += 2;
    }
}

void mf_wbuf_put_u32(mf_wbuf_t *w, uint32_t v)
{
    uint8_t *p = mf_wbuf_reserve(w, 4);
    if (p != NULL) {
        mf_net_le32_store(p, v);
        w->len += 4;
    }
}

void mf_wbuf_put_u64(mf_wbuf_t *w, uint64_t v)
{
    uint8_t *p = mf_wbuf_reserve(w, 8);
    if (p != NULL) {
        mf_net_le64_store(p, v);
        w->len += 8;
    }
}

void mf_wbuf_put_i64(mf_wbuf_t *w, int64_t v)
{
    mf_wbuf_put_u64(w, (uint64_t)v);
}

void mf_wbuf_put_raw(mf_wbuf_t *w, const void *data, size_t len)
{
    uint8_t *p;

    if (len == 0) {
        return;
    }
    p = mf_wbuf_reserve(w, len);
    if (p != NULL) {
        memcpy(p, data, len);
        w->len += len;
    }
}

void mf_wbuf_put_bytes(mf_wbuf_t *w, const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        mf_error("a field of %zu bytes does not fit a message", len);
        w->failed = true;
        return;
    }
    mf_wbuf_put_u32(w, (uint32_t)len);
    mf_wbuf_put_raw(w, data, len);
}

void mf_wbuf_put_str(mf_wbuf_t *w, const char *s)
{
    if (s == NULL) {
        s = "";
    }
    mf_wbuf_put_bytes(w, s, strlen(s));
}

mf_status_t mf_wbuf_status(const mf_wbuf_t *w)
{
    return w->failed ? MF_ERR_NOMEM : MF_OK;
}

mf_status_t mf_wbuf_copy_out(mf_wbuf_t *w, void *buf, size_t buf_len,
                             size_t *len_p)
{
    mf_status_t status = mf_wbuf_status(w);

    if (status == MF_OK && w->len > buf_len) {
        status = MF_ERR_TOO_LARGE;
    }
    if (status == MF_OK) {
        memcpy(buf, w->data, w->len);
        *len_p = w->len;
    }
    mf_wbuf_free(w);
    return status;
}

/* ---- reader ---- */

void mf_rbuf_init(mf_rbuf_t *r, const void *data, size_t len)
{
    r->p = data;
    r->left = (data != NULL) ? len : 0;
    r->failed = false;
}

/* Takes len bytes, or fails the reader for good. */
static bool mf_rbuf_take(mf_rbuf_t *r, size_t len, const uint8_t **p_p)
{
    if (r->failed || (len > r->left)) {
        r->failed = true;
        *p_p = NULL;
        return false;
    }
    *p_p = r->p;
    if (len > 0) {
        r->p += len;
        r->left -= len;
    }
    return true;
}

bool mf_rbuf_get_u8(mf_rbuf_t *r, uint8_t *v)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, 1, &p);
    *v = ok ? p[0] : 0;
    return ok;
}

bool mf_rbuf_get_u16(mf_rbuf_t *r, uint16_t *v)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, 2, &p);
    *v = ok ? mf_net_le16_load(p) : 0;
    return ok;
}

bool mf_rbuf_get_u32(mf_rbuf_t *r, uint32_t *v)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, 4, &p);
    *v = ok ? mf_net_le32_load(p) : 0;
    return ok;
}

bool mf_rbuf_get_u64(mf_rbuf_t *r, uint64_t *v)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, 8, &p);
    *v = ok ? mf_net_le64_load(p) : 0;
    return ok;
}

bool mf_rbuf_get_i64(mf_rbuf_t *r, int64_t *v)
{
    uint64_t u;
    bool ok = mf_rbuf_get_u64(r, &u);
    *v = (int64_t)u;
    return ok;
}

bool mf_rbuf_get_raw(mf_rbuf_t *r, const void **data, size_t len)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, len, &p);
    *data = p;
    return ok;
}

bool mf_rbuf_get_bytes(mf_rbuf_t *r, const void **data, size_t *len,
                       size_t max_len)
{
    const uint8_t *p;
    uint32_t n;

    if (!mf_rbuf_get_u32(r, &n) || (n > max_len) || !mf_rbuf_take(r, n, &p)) {
        r->failed = true;
        *data = NULL;
        *len = 0;
        return false;
    }
    *data = p;
    *len = n;
    return true;
}

bool mf_rbuf_get_str(mf_rbuf_t *r, char *out, size_t out_size)
{
    const void *data;
    size_t len;

    if ((out_size == 0) || !mf_rbuf_get_bytes(r, &data, &len, out_size - 1) ||
        ((len > 0) && (memchr(data, '\0', len) != NULL))) {
        r->failed = true;
        if (out_size > 0) {
            out[0] = '\0';
        }
        return false;
    }
    if (len > 0) {
        memcpy(out, data, len);
    }
    out[len] = '\0';
    return true;
}

mf_status_t mf_rbuf_status(const mf_rbuf_t *r, bool require_end)
{
    if (r->failed) {
        return MF_ERR_PROTO;
    }
    if (require_end && (r->left != 0)) {
        return MF_ERR_PROTO;
    }
    return MF_OK;
}
