/*
 * The SSD area and its log (see ssd.h).
 *
 * A log record: u32 magic, u32 CRC-32 of the rest, u8 op (ADD, DEL), u8
 * want, u16 key length, u32 data CRC, u64 offset, u64 size, u64 version,
 * then the key; little-endian.  A DEL carries the offset only.
 */
#include "cache/local/ssd.h"

#include "util/codec.h"
#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MMC_SSD_MAGIC      0x314c534du /* "MSL1" */
#define MMC_SSD_REC_HDR    40u
#define MMC_SSD_OP_ADD     1u
#define MMC_SSD_OP_DEL     2u
#define MMC_SSD_BOUNCE     (1u << 20)
#define MMC_SSD_COMPACT_AT 4096u

/* An object of the area; key_len bytes of key follow. */
typedef struct mmc_ssd_obj {
    uint64_t offset;
    uint64_t size;
    uint64_t version;
    uint64_t seq; /* order of its ADD in the log (replay) */
    uint32_t crc;
    uint32_t key_len;
    uint8_t want;
    bool live; /* committed (logged); else written, pending */
    char key[];
} mmc_ssd_obj_t;

struct mmc_ssd {
    int fd;
    bool direct;
    uint64_t size;
    int log_fd;
    char *log_path;
    pthread_mutex_t lock;
    mf_hmap_t objs;       /* offset -> mmc_ssd_obj_t */
    uint64_t nlive;       /* of objs, live */
    uint64_t log_records; /* in the log file */
    uint32_t unsynced;    /* appends since the last fdatasync */
    uint64_t seq;
};

/* ---- checksums ---- */

static uint32_t mmc_ssd_crc(uint32_t crc, const void *data, uint64_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        uInt n = (uInt)MF_MIN(len, 1u << 30);

        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

/* ---- data ---- */

static mf_status_t mmc_ssd_pio(mmc_ssd_t *ssd, bool write, void *buf,
                               size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = write ? pwrite(ssd->fd, buf, len, (off_t)off)
                          : pread(ssd->fd, buf, len, (off_t)off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            mf_error("ssd: %s of %zu bytes at %" PRIu64 " failed: %s",
                     write ? "write" : "read", len, off,
                     (n < 0) ? strerror(errno) : "end of file");
            return MF_ERR_IO;
        }
        buf = (char *)buf + n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return MF_OK;
}

static bool mmc_ssd_range_ok(const mmc_ssd_t *ssd, uint64_t offset,
                             uint64_t len)
{
    return (offset % MMC_SSD_BLOCK == 0) && (len > 0) &&
           (offset <= ssd->size) &&
           (MF_ALIGN_UP(len, MMC_SSD_BLOCK) <= ssd->size - offset);
}

/*
 * Moves len bytes between mem and the area at offset, in whole blocks:
 * straight from mem where it is aligned, through a bounce buffer where it
 * is not and for a tail (written padded with zeros, read cut).  *crc_p
 * accumulates the CRC of the object's bytes.
 */
static mf_status_t mmc_ssd_move(mmc_ssd_t *ssd, bool write, void *mem,
                                uint64_t len, uint64_t offset, uint32_t *crc_p)
{
    uint64_t done = 0;
    uint64_t whole = 0;
    void *bounce = NULL;
    mf_status_t status = MF_OK;

    if (((uintptr_t)mem % MMC_SSD_BLOCK) == 0) {
        whole = len - len % MMC_SSD_BLOCK; /* straight */
    }
    while ((status == MF_OK) && (done < whole)) {
        size_t n = (size_t)MF_MIN(whole - done, 1u << 30);

        if (write) {
            *crc_p = mmc_ssd_crc(*crc_p, (char *)mem + done, n);
        }
        status = mmc_ssd_pio(ssd, write, (char *)mem + done, n, offset + done);
        if ((status == MF_OK) && !write) {
            *crc_p = mmc_ssd_crc(*crc_p, (char *)mem + done, n);
        }
        done += n;
    }
    if ((status == MF_OK) && (done < len) &&
        (posix_memalign(&bounce, MMC_SSD_BLOCK, MMC_SSD_BOUNCE) != 0)) {
        mf_error("ssd: out of memory for a bounce buffer");
        return MF_ERR_NOMEM;
    }
    while ((status == MF_OK) && (done < len)) {
        size_t n = (size_t)MF_MIN(len - done, MMC_SSD_BOUNCE);
        size_t io = MF_ALIGN_UP(n, MMC_SSD_BLOCK);

        if (write) {
            memcpy(bounce, (char *)mem + done, n);
            memset((char *)bounce + n, 0, io - n);
            *crc_p = mmc_ssd_crc(*crc_p, bounce, n);
            status = mmc_ssd_pio(ssd, true, bounce, io, offset + done);
        } else {
            status = mmc_ssd_pio(ssd, false, bounce, io, offset + done);
            if (status == MF_OK) {
                memcpy((char *)mem + done, bounce, n);
                *crc_p = mmc_ssd_crc(*crc_p, bounce, n);
            }
        }
        done += n;
    }
    free(bounce);
    return status;
}

/* ---- entries ---- */

static mmc_ssd_obj_t *mmc_ssd_obj_get(mmc_ssd_t *ssd, uint64_t offset)
{
    return mf_hmap_get(&ssd->objs, &offset, sizeof(offset));
}

static void mmc_ssd_obj_drop(mmc_ssd_t *ssd, uint64_t offset)
{
    mmc_ssd_obj_t *o = mf_hmap_remove(&ssd->objs, &offset, sizeof(offset));

    if (o != NULL) {
        ssd->nlive -= o->live;
        free(o);
    }
}

/* Puts o in the map, in place of whatever was at its offset. */
static mf_status_t mmc_ssd_obj_put(mmc_ssd_t *ssd, mmc_ssd_obj_t *o)
{
    void *old = NULL;

    if (mf_hmap_put(&ssd->objs, &o->offset, sizeof(o->offset), o, &old) !=
        MF_OK) {
        free(o);
        return MF_ERR_NOMEM;
    }
    if (old != NULL) {
        ssd->nlive -= ((mmc_ssd_obj_t *)old)->live;
        free(old);
    }
    ssd->nlive += o->live;
    return MF_OK;
}

static mmc_ssd_obj_t *mmc_ssd_obj_new(uint64_t offset, uint64_t size,
                                      const char *key, uint32_t key_len,
                                      uint64_t version, uint8_t want,
                                      uint32_t crc)
{
    mmc_ssd_obj_t *o = malloc(sizeof(*o) + key_len + 1);

    if (o == NULL) {
        return NULL;
    }
    o->offset = offset;
    o->size = size;
    o->version = version;
    o->seq = 0;
    o->crc = crc;
    o->key_len = key_len;
    o->want = want;
    o->live = false;
    memcpy(o->key, key, key_len);
    o->key[key_len] = '\0';
    return o;
}

static void mmc_ssd_obj_entry(const mmc_ssd_obj_t *o, mmc_ssd_entry_t *e)
{
    e->offset = o->offset;
    e->size = o->size;
    e->version = o->version;
    e->crc = o->crc;
    e->want = o->want;
    e->key_len = o->key_len;
    memcpy(e->key, o->key, o->key_len + 1);
}

/* ---- the log ---- */

static void mmc_ssd_rec_encode(mf_wbuf_t *w, uint8_t op, const mmc_ssd_obj_t *o,
                               uint64_t offset)
{
    size_t start = w->len;
    uint32_t crc;

    mf_wbuf_put_u32(w, MMC_SSD_MAGIC);
    mf_wbuf_put_u32(w, 0); /* the CRC, below */
    mf_wbuf_put_u8(w, op);
    mf_wbuf_put_u8(w, (o != NULL) ? o->want : 0);
    mf_wbuf_put_u16(w, (o != NULL) ? (uint16_t)o->key_len : 0);
    mf_wbuf_put_u32(w, (o != NULL) ? o->crc : 0);
    mf_wbuf_put_u64(w, offset);
    mf_wbuf_put_u64(w, (o != NULL) ? o->size : 0);
    mf_wbuf_put_u64(w, (o != NULL) ? o->version : 0);
    if (o != NULL) {
        mf_wbuf_put_raw(w, o->key, o->key_len);
    }
    if (!w->failed) {
        crc = mmc_ssd_crc(0, w->data + start + 8, w->len - start - 8);
        memcpy(w->data + start + 4, &crc, sizeof(crc));
    }
}

static mf_status_t mmc_ssd_write_all(int fd, const void *buf, size_t len,
                                     const char *path)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            mf_error("ssd: cannot write the log %s: %m", path);
            return MF_ERR_IO;
        }
        buf = (const char *)buf + n;
        len -= (size_t)n;
    }
    return MF_OK;
}

static mf_status_t mmc_ssd_log_sync(mmc_ssd_t *ssd)
{
    ssd->unsynced = 0;
    if (fdatasync(ssd->log_fd) != 0) {
        mf_error("ssd: cannot sync the log %s: %m", ssd->log_path);
        return MF_ERR_IO;
    }
    return MF_OK;
}

static mf_status_t mmc_ssd_compact(mmc_ssd_t *ssd);

/* Appends one record (lock held). */
static mf_status_t mmc_ssd_log_append(mmc_ssd_t *ssd, uint8_t op,
                                      const mmc_ssd_obj_t *o, uint64_t offset)
{
    mf_wbuf_t w;
    mf_status_t status;

    mf_wbuf_init(&w);
    mmc_ssd_rec_encode(&w, op, o, offset);
    status = mf_wbuf_status(&w);
    if (status == MF_OK) {
        status = mmc_ssd_write_all(ssd->log_fd, w.data, w.len, ssd->log_path);
    }
    mf_wbuf_free(&w);
    if (status != MF_OK) {
        return status;
    }
    ssd->log_records++;
    if (++ssd->unsynced >= MMC_SSD_SYNC_EVERY) {
        status = mmc_ssd_log_sync(ssd);
    }
    if ((status == MF_OK) && (ssd->log_records > MMC_SSD_COMPACT_AT) &&
        (ssd->log_records > 4 * ssd->nlive)) {
        status = mmc_ssd_compact(ssd);
    }
    return status;
}

static int mmc_ssd_cmp_offset(const void *a, const void *b)
{
    const mmc_ssd_obj_t *x = *(mmc_ssd_obj_t *const *)a;
    const mmc_ssd_obj_t *y = *(mmc_ssd_obj_t *const *)b;

    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* The live objects sorted by offset (a malloc'd array), or NULL. */
static mmc_ssd_obj_t **mmc_ssd_sorted(mmc_ssd_t *ssd, size_t *n_p)
{
    mmc_ssd_obj_t **v = malloc((ssd->objs.count + 1) * sizeof(*v));
    mf_hmap_iter_t it;
    mf_hmap_entry_t *e;
    size_t n = 0;

    if (v == NULL) {
        return NULL;
    }
    mf_hmap_iter_init(&ssd->objs, &it);
    while ((e = mf_hmap_next(&ssd->objs, &it)) != NULL) {
        if (((mmc_ssd_obj_t *)e->value)->live) {
            v[n++] = e->value;
        }
    }
    qsort(v, n, sizeof(*v), mmc_ssd_cmp_offset);
    *n_p = n;
    return v;
}

/* Rewrites the log with the live entries only: a new file renamed over
 * the old one (lock held). */
static mf_status_t mmc_ssd_compact(mmc_ssd_t *ssd)
{
    char tmp[PATH_MAX];
    mmc_ssd_obj_t **v;
    mf_wbuf_t w;
    size_t n = 0;
    mf_status_t status;
    int fd;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", ssd->log_path) >=
        (int)sizeof(tmp)) {
        return MF_ERR_INVALID;
    }
    v = mmc_ssd_sorted(ssd, &n);
    if (v == NULL) {
        return MF_ERR_NOMEM;
    }
    mf_wbuf_init(&w);
    for (size_t i = 0; i < n; i++) {
        mmc_ssd_rec_encode(&w, MMC_SSD_OP_ADD, v[i], v[i]->offset);
    }
    free(v);
    status = mf_wbuf_status(&w);
    if (status != MF_OK) {
        mf_wbuf_free(&w);
        return status;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        mf_error("ssd: cannot create %s: %m", tmp);
        mf_wbuf_free(&w);
        return MF_ERR_IO;
    }
    status = mmc_ssd_write_all(fd, w.data, w.len, tmp);
    mf_wbuf_free(&w);
    if ((status == MF_OK) && (fdatasync(fd) != 0)) {
        mf_error("ssd: cannot sync %s: %m", tmp);
        status = MF_ERR_IO;
    }
    if ((status == MF_OK) && (rename(tmp, ssd->log_path) != 0)) {
        mf_error("ssd: cannot rename %s to %s: %m", tmp, ssd->log_path);
        status = MF_ERR_IO;
    }
    if (status != MF_OK) {
        close(fd);
        (void)unlink(tmp);
        return status;
    }
    /* appends go to the new file from now on */
    if (lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        return MF_ERR_IO;
    }
    close(ssd->log_fd);
    ssd->log_fd = fd;
    ssd->log_records = n;
    ssd->unsynced = 0;
    mf_debug("ssd: log %s compacted to %zu entries", ssd->log_path, n);
    return MF_OK;
}

/* Applies one decoded record at replay; false: not a whole record. */
static bool mmc_ssd_replay_one(mmc_ssd_t *ssd, mf_rbuf_t *r)
{
    const uint8_t *start = r->p;
    uint32_t magic, crc, data_crc;
    uint8_t op, want;
    uint16_t key_len;
    uint64_t offset, size, version;
    const void *key = NULL;
    mmc_ssd_obj_t *o;

    if (!mf_rbuf_get_u32(r, &magic) || (magic != MMC_SSD_MAGIC) ||
        !mf_rbuf_get_u32(r, &crc) || !mf_rbuf_get_u8(r, &op) ||
        !mf_rbuf_get_u8(r, &want) || !mf_rbuf_get_u16(r, &key_len) ||
        !mf_rbuf_get_u32(r, &data_crc) || !mf_rbuf_get_u64(r, &offset) ||
        !mf_rbuf_get_u64(r, &size) || !mf_rbuf_get_u64(r, &version) ||
        (key_len > MMC_KEY_MAX) ||
        ((key_len > 0) && !mf_rbuf_get_raw(r, &key, key_len)) ||
        (mmc_ssd_crc(0, start + 8, (size_t)(r->p - start) - 8) != crc)) {
        return false;
    }
    ssd->log_records++;
    if (op == MMC_SSD_OP_DEL) {
        mmc_ssd_obj_drop(ssd, offset);
        return true;
    }
    if ((op != MMC_SSD_OP_ADD) || (key_len == 0) ||
        !mmc_ssd_range_ok(ssd, offset, size)) {
        return true; /* whole but meaningless here: skipped */
    }
    o = mmc_ssd_obj_new(offset, size, key, key_len, version, want, data_crc);
    if (o == NULL) {
        return false;
    }
    o->live = true;
    o->seq = ++ssd->seq;
    return mmc_ssd_obj_put(ssd, o) == MF_OK;
}

/* Entries whose ranges overlap (a DEL lost with power): the newer ADD
 * stays. */
static void mmc_ssd_drop_overlaps(mmc_ssd_t *ssd)
{
    size_t n = 0;
    mmc_ssd_obj_t **v = mmc_ssd_sorted(ssd, &n);
    size_t kept = 0;

    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        mmc_ssd_obj_t *o = v[i];
        bool keep = true;

        while (kept > 0) {
            mmc_ssd_obj_t *prev = v[kept - 1];

            if (prev->offset + MF_ALIGN_UP(prev->size, MMC_SSD_BLOCK) <=
                o->offset) {
                break;
            }
            if (prev->seq > o->seq) {
                keep = false;
                break;
            }
            mmc_ssd_obj_drop(ssd, prev->offset);
            kept--;
        }
        if (keep) {
            v[kept++] = o;
        } else {
            mmc_ssd_obj_drop(ssd, o->offset);
        }
    }
    free(v);
}

/* Reads the log back (open with keep), cuts a torn tail, and compacts. */
static mf_status_t mmc_ssd_replay(mmc_ssd_t *ssd)
{
    struct stat st;
    uint8_t *data;
    mf_rbuf_t r;
    size_t good = 0;

    if (fstat(ssd->log_fd, &st) != 0) {
        mf_error("ssd: cannot stat %s: %m", ssd->log_path);
        return MF_ERR_IO;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    if ((st.st_size > 0) &&
        (pread(ssd->log_fd, data, (size_t)st.st_size, 0) != st.st_size)) {
        mf_error("ssd: cannot read %s: %m", ssd->log_path);
        free(data);
        return MF_ERR_IO;
    }
    mf_rbuf_init(&r, data, (size_t)st.st_size);
    while (r.left > 0) {
        if (!mmc_ssd_replay_one(ssd, &r)) {
            mf_warn("ssd: log %s: a torn or bad record at byte %zu of %lld; "
                    "the rest is dropped",
                    ssd->log_path, good, (long long)st.st_size);
            break;
        }
        good = (size_t)st.st_size - r.left;
    }
    free(data);
    mmc_ssd_drop_overlaps(ssd);
    mf_info("ssd: %s holds %" PRIu64 " objects from its log", ssd->log_path,
            ssd->nlive);
    return mmc_ssd_compact(ssd);
}

/* ---- open and close ---- */

static mf_status_t mmc_ssd_open_area(mmc_ssd_t *ssd, const char *path,
                                     bool *blockdev_p)
{
    struct stat st;
    int flags = O_RDWR | O_CLOEXEC;

    ssd->fd = open(path, flags | O_CREAT | O_DIRECT, 0600);
    ssd->direct = ssd->fd >= 0;
    if ((ssd->fd < 0) && (errno == EINVAL)) {
        ssd->fd = open(path, flags | O_CREAT, 0600);
        mf_warn("ssd: %s takes no O_DIRECT; its I/O goes through the page "
                "cache",
                path);
    }
    if (ssd->fd < 0) {
        mf_error("ssd: cannot open %s: %m", path);
        return MF_ERR_IO;
    }
    if (fstat(ssd->fd, &st) != 0) {
        mf_error("ssd: cannot stat %s: %m", path);
        return MF_ERR_IO;
    }
    *blockdev_p = S_ISBLK(st.st_mode);
    if (*blockdev_p) {
        uint64_t bytes = 0;

        if (ioctl(ssd->fd, BLKGETSIZE64, &bytes) != 0) {
            mf_error("ssd: cannot size the device %s: %m", path);
            return MF_ERR_IO;
        }
        if (bytes < ssd->size) {
            mf_error("ssd: %s has %" PRIu64 " bytes, fewer than the %" PRIu64
                     " asked for",
                     path, bytes, ssd->size);
            return MF_ERR_INVALID;
        }
        return MF_OK;
    }
    if (!S_ISREG(st.st_mode)) {
        mf_error("ssd: %s is neither a file nor a block device", path);
        return MF_ERR_INVALID;
    }
    if ((uint64_t)st.st_size < ssd->size) {
        int err = posix_fallocate(ssd->fd, 0, (off_t)ssd->size);

        if ((err != 0) && (err != EOPNOTSUPP) && (err != EINVAL)) {
            mf_error("ssd: cannot reserve %" PRIu64 " bytes for %s: %s",
                     ssd->size, path, strerror(err));
            return MF_ERR_IO;
        }
        if ((err != 0) && (ftruncate(ssd->fd, (off_t)ssd->size) != 0)) {
            mf_error("ssd: cannot size %s: %m", path);
            return MF_ERR_IO;
        }
    }
    return MF_OK;
}

mf_status_t mmc_ssd_open(const mmc_ssd_opts_t *opts, mmc_ssd_t **ssd_p)
{
    mmc_ssd_t *ssd;
    bool blockdev = false;
    mf_status_t status;
    int lflags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC;

    if ((opts->path == NULL) || (opts->path[0] == '\0') || (opts->size == 0) ||
        (opts->size % MMC_SSD_BLOCK != 0)) {
        mf_error("ssd: an area needs a path and a size that is a multiple "
                 "of 4 KiB (got %" PRIu64 ")",
                 opts->size);
        return MF_ERR_INVALID;
    }
    ssd = calloc(1, sizeof(*ssd));
    if (ssd == NULL) {
        return MF_ERR_NOMEM;
    }
    ssd->fd = -1;
    ssd->log_fd = -1;
    ssd->size = opts->size;
    mf_hmap_init(&ssd->objs);
    pthread_mutex_init(&ssd->lock, NULL);
    status = mmc_ssd_open_area(ssd, opts->path, &blockdev);
    if (status != MF_OK) {
        goto err;
    }
    if ((opts->log_path == NULL) && blockdev) {
        mf_error("ssd: %s is a block device: its log needs a path of its "
                 "own",
                 opts->path);
        status = MF_ERR_INVALID;
        goto err;
    }
    if (opts->log_path != NULL) {
        ssd->log_path = strdup(opts->log_path);
    } else if (asprintf(&ssd->log_path, "%s.log", opts->path) < 0) {
        ssd->log_path = NULL;
    }
    if (ssd->log_path == NULL) {
        status = MF_ERR_NOMEM;
        goto err;
    }
    ssd->log_fd =
        open(ssd->log_path, lflags | (opts->keep ? 0 : O_TRUNC), 0600);
    if (ssd->log_fd < 0) {
        mf_error("ssd: cannot open the log %s: %m", ssd->log_path);
        status = MF_ERR_IO;
        goto err;
    }
    if (opts->keep) {
        status = mmc_ssd_replay(ssd);
        if (status != MF_OK) {
            goto err;
        }
    }
    *ssd_p = ssd;
    return MF_OK;

err:
    mmc_ssd_close(ssd);
    return status;
}

void mmc_ssd_close(mmc_ssd_t *ssd)
{
    mf_hmap_iter_t it;
    mf_hmap_entry_t *e;

    if (ssd == NULL) {
        return;
    }
    if (ssd->log_fd >= 0) {
        if (ssd->unsynced > 0) {
            (void)mmc_ssd_log_sync(ssd);
        }
        close(ssd->log_fd);
    }
    if (ssd->fd >= 0) {
        close(ssd->fd);
    }
    mf_hmap_iter_init(&ssd->objs, &it);
    while ((e = mf_hmap_next(&ssd->objs, &it)) != NULL) {
        free(e->value);
    }
    mf_hmap_free(&ssd->objs);
    pthread_mutex_destroy(&ssd->lock);
    free(ssd->log_path);
    free(ssd);
}

uint64_t mmc_ssd_size(const mmc_ssd_t *ssd)
{
    return ssd->size;
}

bool mmc_ssd_direct(const mmc_ssd_t *ssd)
{
    return ssd->direct;
}

/* ---- objects ---- */

mf_status_t mmc_ssd_store(mmc_ssd_t *ssd, uint64_t offset, const void *src,
                          uint64_t len, const char *key, uint32_t key_len,
                          uint64_t version, uint8_t want)
{
    uint32_t crc = 0;
    mmc_ssd_obj_t *o;
    mf_status_t status;

    if (!mmc_ssd_range_ok(ssd, offset, len) || (key_len == 0) ||
        (key_len > MMC_KEY_MAX)) {
        mf_error("ssd: bad store of %" PRIu64 " bytes at %" PRIu64
                 " (area of %" PRIu64 ")",
                 len, offset, ssd->size);
        return MF_ERR_INVALID;
    }
    /* whatever was there is gone before its bytes are */
    pthread_mutex_lock(&ssd->lock);
    mmc_ssd_obj_drop(ssd, offset);
    pthread_mutex_unlock(&ssd->lock);
    status = mmc_ssd_move(ssd, true, (void *)src, len, offset, &crc);
    if (status != MF_OK) {
        return status;
    }
    o = mmc_ssd_obj_new(offset, len, key, key_len, version, want, crc);
    if (o == NULL) {
        return MF_ERR_NOMEM;
    }
    pthread_mutex_lock(&ssd->lock);
    status = mmc_ssd_obj_put(ssd, o);
    pthread_mutex_unlock(&ssd->lock);
    return status;
}

mf_status_t mmc_ssd_commit(mmc_ssd_t *ssd, uint64_t offset)
{
    mmc_ssd_obj_t *o;
    mf_status_t status = MF_OK;

    pthread_mutex_lock(&ssd->lock);
    o = mmc_ssd_obj_get(ssd, offset);
    if (o == NULL) {
        status = MF_ERR_NOT_FOUND;
    } else if (!o->live) {
        /* live first: a compaction that the append sets off keeps it */
        o->live = true;
        ssd->nlive++;
        status = mmc_ssd_log_append(ssd, MMC_SSD_OP_ADD, o, offset);
        if ((status != MF_OK) && (mmc_ssd_obj_get(ssd, offset) == o)) {
            o->live = false;
            ssd->nlive--;
        }
    }
    pthread_mutex_unlock(&ssd->lock);
    return status;
}

mf_status_t mmc_ssd_forget(mmc_ssd_t *ssd, uint64_t offset)
{
    mmc_ssd_obj_t *o;
    mf_status_t status = MF_OK;

    pthread_mutex_lock(&ssd->lock);
    o = mmc_ssd_obj_get(ssd, offset);
    if ((o != NULL) && o->live) {
        /* gone first: a compaction that the append sets off leaves it
         * out */
        mmc_ssd_obj_drop(ssd, offset);
        status = mmc_ssd_log_append(ssd, MMC_SSD_OP_DEL, NULL, offset);
    }
    mmc_ssd_obj_drop(ssd, offset);
    pthread_mutex_unlock(&ssd->lock);
    return status;
}

mmc_status_t mmc_ssd_load(mmc_ssd_t *ssd, uint64_t offset, void *dst,
                          uint64_t len)
{
    mmc_ssd_obj_t *o;
    uint32_t want_crc, crc = 0;
    mf_status_t status;

    pthread_mutex_lock(&ssd->lock);
    o = mmc_ssd_obj_get(ssd, offset);
    if (o == NULL) {
        pthread_mutex_unlock(&ssd->lock);
        return MMC_ERR_NOT_FOUND;
    }
    if (o->size != len) {
        pthread_mutex_unlock(&ssd->lock);
        return MMC_ERR_SIZE_MISMATCH;
    }
    want_crc = o->crc;
    pthread_mutex_unlock(&ssd->lock);
    status = mmc_ssd_move(ssd, false, dst, len, offset, &crc);
    if (status != MF_OK) {
        return status;
    }
    if (crc != want_crc) {
        mf_error("ssd: the object of %" PRIu64 " bytes at %" PRIu64
                 " fails its checksum (0x%08" PRIx32 ", stored 0x%08" PRIx32
                 "): not served",
                 len, offset, crc, want_crc);
        return MMC_ERR_CORRUPT;
    }
    return MMC_OK;
}

mf_status_t mmc_ssd_entry(mmc_ssd_t *ssd, uint64_t offset, mmc_ssd_entry_t *e)
{
    mmc_ssd_obj_t *o;
    mf_status_t status = MF_ERR_NOT_FOUND;

    pthread_mutex_lock(&ssd->lock);
    o = mmc_ssd_obj_get(ssd, offset);
    if ((o != NULL) && o->live) {
        mmc_ssd_obj_entry(o, e);
        status = MF_OK;
    }
    pthread_mutex_unlock(&ssd->lock);
    return status;
}

void mmc_ssd_foreach(mmc_ssd_t *ssd,
                     void (*cb)(const mmc_ssd_entry_t *e, void *arg), void *arg)
{
    mmc_ssd_entry_t *e = malloc(sizeof(*e));
    mmc_ssd_obj_t **v;
    size_t n = 0;

    pthread_mutex_lock(&ssd->lock);
    v = mmc_ssd_sorted(ssd, &n);
    for (size_t i = 0; (v != NULL) && (e != NULL) && (i < n); i++) {
        mmc_ssd_obj_entry(v[i], e);
        cb(e, arg);
    }
    pthread_mutex_unlock(&ssd->lock);
    if ((v == NULL) || (e == NULL)) {
        mf_error("ssd: out of memory listing %" PRIu64 " entries", ssd->nlive);
    }
    free(v);
    free(e);
}

uint64_t mmc_ssd_count(mmc_ssd_t *ssd)
{
    uint64_t n;

    pthread_mutex_lock(&ssd->lock);
    n = ssd->nlive;
    pthread_mutex_unlock(&ssd->lock);
    return n;
}

uint64_t mmc_ssd_log_records(mmc_ssd_t *ssd)
{
    uint64_t n;

    pthread_mutex_lock(&ssd->lock);
    n = ssd->log_records;
    pthread_mutex_unlock(&ssd->lock);
    return n;
}
