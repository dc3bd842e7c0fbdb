/*
 * Byte codec: little-endian load/store helpers, a growing writer (mf_wbuf)
 * and a bounds-checked reader (mf_rbuf) for every wire format of the
 * project (control frames, store and MemCache messages, segment
 * descriptors, transport headers and keys).
 *
 * Everything is assembled byte by byte, so the code is the same on any
 * host.  The reader never reads past the end of its buffer: once a read
 * fails, every later read fails too and zeroes its output, so a decoder may
 * check the status once at the end.
 */
#ifndef MF_UTIL_CODEC_H
#define MF_UTIL_CODEC_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void mf_le16_store(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void mf_le32_store(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void mf_le64_store(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint16_t mf_le16_load(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t mf_le32_load(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t mf_le64_load(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

typedef struct mf_wbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; every later put is a no-op */
} mf_wbuf_t;

void mf_wbuf_init(mf_wbuf_t *w);
void mf_wbuf_free(mf_wbuf_t *w);
void mf_wbuf_put_u8(mf_wbuf_t *w, uint8_t v);
void mf_wbuf_put_u16(mf_wbuf_t *w, uint16_t v);
void mf_wbuf_put_u32(mf_wbuf_t *w, uint32_t v);
void mf_wbuf_put_u64(mf_wbuf_t *w, uint64_t v);
void mf_wbuf_put_i64(mf_wbuf_t *w, int64_t v);
void mf_wbuf_put_raw(mf_wbuf_t *w, const void *data, size_t len);
/* u32 length, then the bytes. */
void mf_wbuf_put_bytes(mf_wbuf_t *w, const void *data, size_t len);
void mf_wbuf_put_str(mf_wbuf_t *w, const char *s);
/* MF_ERR_NOMEM if any put failed, else MF_OK. */
mf_status_t mf_wbuf_status(const mf_wbuf_t *w);
/* Copies what w holds into buf (MF_ERR_TOO_LARGE if it needs more than
 * buf_len bytes), sets *len_p on success, and frees w in every case. */
mf_status_t mf_wbuf_copy_out(mf_wbuf_t *w, void *buf, size_t buf_len,
                             size_t *len_p);

typedef struct mf_rbuf {
    const uint8_t *p;
    size_t left;
    bool failed; /* a read ran past the end or a bound; later reads fail */
} mf_rbuf_t;

void mf_rbuf_init(mf_rbuf_t *r, const void *data, size_t len);
/* Each getter returns false (and sets failed, and zeroes the output) when
 * the data is short or a bound is exceeded. */
bool mf_rbuf_get_u8(mf_rbuf_t *r, uint8_t *v);
bool mf_rbuf_get_u16(mf_rbuf_t *r, uint16_t *v);
bool mf_rbuf_get_u32(mf_rbuf_t *r, uint32_t *v);
bool mf_rbuf_get_u64(mf_rbuf_t *r, uint64_t *v);
bool mf_rbuf_get_i64(mf_rbuf_t *r, int64_t *v);
bool mf_rbuf_get_raw(mf_rbuf_t *r, const void **data, size_t len);
/* u32 length (<= max_len), then a pointer into the buffer (not copied). */
bool mf_rbuf_get_bytes(mf_rbuf_t *r, const void **data, size_t *len,
                       size_t max_len);
/* Like get_bytes; copies into out (out_size > len, NUL-terminated) and
 * rejects embedded NUL bytes. */
bool mf_rbuf_get_str(mf_rbuf_t *r, char *out, size_t out_size);
/* MF_OK when no read failed and, if require_end, nothing is left. */
mf_status_t mf_rbuf_status(const mf_rbuf_t *r, bool require_end);

#endif
