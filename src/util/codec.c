/*
 * Byte codec: the growing writer and the bounds-checked reader of
 * util/codec.h.
 */
#include "util/codec.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>

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
        mf_le16_store(p, v);
        w->len += 2;
    }
}

void mf_wbuf_put_u32(mf_wbuf_t *w, uint32_t v)
{
    uint8_t *p = mf_wbuf_reserve(w, 4);
    if (p != NULL) {
        mf_le32_store(p, v);
        w->len += 4;
    }
}

void mf_wbuf_put_u64(mf_wbuf_t *w, uint64_t v)
{
    uint8_t *p = mf_wbuf_reserve(w, 8);
    if (p != NULL) {
        mf_le64_store(p, v);
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
    *v = ok ? mf_le16_load(p) : 0;
    return ok;
}

bool mf_rbuf_get_u32(mf_rbuf_t *r, uint32_t *v)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, 4, &p);
    *v = ok ? mf_le32_load(p) : 0;
    return ok;
}

bool mf_rbuf_get_u64(mf_rbuf_t *r, uint64_t *v)
{
    const uint8_t *p;
    bool ok = mf_rbuf_take(r, 8, &p);
    *v = ok ? mf_le64_load(p) : 0;
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
