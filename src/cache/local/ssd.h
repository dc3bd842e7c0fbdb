/*
 * A local service's SSD area: a file or block device that holds objects
 * demoted from memory, at offsets the meta service allocates, and a log
 * beside it of what the area holds, so that a process that restarts with
 * the area intact can report those objects again.
 *
 * Data.  Objects are written and read with O_DIRECT where the file system
 * takes it (buffered otherwise, said once), in 4 KiB-aligned blocks
 * (offsets are, lengths are padded; unaligned buffers and tails go through
 * a bounce buffer).  Every object carries a CRC-32 of its bytes, computed
 * as it is written and checked as it is read: a torn or overwritten
 * object is never handed out (MMC_ERR_CORRUPT).
 *
 * Log (path.log unless said otherwise).  An object written is pending
 * until its meta service confirms it (commit: an ADD record appended);
 * forget appends a DEL.  Records carry their own CRC; at open a torn
 * tail is cut, entries whose ranges overlap keep the newest, and the log
 * is rewritten with the live entries only (also whenever it holds four
 * times more records than live entries, past 4096).  Appends are
 * write(2)s, so a process that dies loses nothing of the log; they are
 * fdatasync'ed every MMC_SSD_SYNC_EVERY records and at close, so power
 * lost between loses at most the newest (and a DEL lost only brings back
 * an entry whose bytes the CRC check then judges).
 *
 * Threads: every call may come from any thread; data moves without the
 * lock, the log and the entries under it.
 */
#ifndef MMC_CACHE_LOCAL_SSD_H
#define MMC_CACHE_LOCAL_SSD_H

#include <memcache/mmc.h>
#include <memcache/mmc_status.h>
#include <stdbool.h>
#include <stdint.h>

#define MMC_SSD_BLOCK      4096u
#define MMC_SSD_SYNC_EVERY 256u

typedef struct mmc_ssd mmc_ssd_t;

typedef struct mmc_ssd_opts {
    const char *path;     /* a file (created if missing) or block device */
    const char *log_path; /* NULL: path.log (needed for a block device) */
    uint64_t size;        /* bytes of the area: a multiple of 4 KiB */
    bool keep;            /* reopen: keep the log's entries (a restart) */
} mmc_ssd_opts_t;

/* One object in the area. */
typedef struct mmc_ssd_entry {
    uint64_t offset;
    uint64_t size;
    uint64_t version;
    uint32_t crc; /* of its bytes */
    uint8_t want; /* replicas its put asked for */
    uint32_t key_len;
    char key[MMC_KEY_MAX + 1];
} mmc_ssd_entry_t;

/* MF_OK; MF_ERR_INVALID (size not a multiple of 4 KiB, above a block
 * device's size, no log path for a block device), MF_ERR_IO (logged with
 * the cause), MF_ERR_NOMEM. */
mf_status_t mmc_ssd_open(const mmc_ssd_opts_t *opts, mmc_ssd_t **ssd_p);
/* Syncs the log and closes.  NULL accepted. */
void mmc_ssd_close(mmc_ssd_t *ssd);
uint64_t mmc_ssd_size(const mmc_ssd_t *ssd);
/* Whether data goes around the page cache (O_DIRECT). */
bool mmc_ssd_direct(const mmc_ssd_t *ssd);

/* Writes len bytes of src at offset (4 KiB aligned, within the area) for
 * key's object and keeps it pending: MF_OK, MF_ERR_INVALID, MF_ERR_IO,
 * MF_ERR_NOMEM. */
mf_status_t mmc_ssd_store(mmc_ssd_t *ssd, uint64_t offset, const void *src,
                          uint64_t len, const char *key, uint32_t key_len,
                          uint64_t version, uint8_t want);
/* The object stored at offset is confirmed: logged.  MF_ERR_NOT_FOUND
 * when nothing is pending or live there. */
mf_status_t mmc_ssd_commit(mmc_ssd_t *ssd, uint64_t offset);
/* Whatever is at offset is gone: logged.  MF_OK even when nothing was. */
mf_status_t mmc_ssd_forget(mmc_ssd_t *ssd, uint64_t offset);
/* Reads the live or pending object at offset into dst (len: its size) and
 * checks its CRC: MMC_OK, MMC_ERR_NOT_FOUND (nothing there),
 * MMC_ERR_SIZE_MISMATCH, MMC_ERR_CORRUPT, MF_ERR_IO, MF_ERR_NOMEM. */
mmc_status_t mmc_ssd_load(mmc_ssd_t *ssd, uint64_t offset, void *dst,
                          uint64_t len);
/* The live entry at offset (MF_OK) or MF_ERR_NOT_FOUND. */
mf_status_t mmc_ssd_entry(mmc_ssd_t *ssd, uint64_t offset, mmc_ssd_entry_t *e);
/* Calls cb for every live entry, by offset; the lock is held. */
void mmc_ssd_foreach(mmc_ssd_t *ssd,
                     void (*cb)(const mmc_ssd_entry_t *e, void *arg),
                     void *arg);
/* Live entries, and records in the log file now. */
uint64_t mmc_ssd_count(mmc_ssd_t *ssd);
uint64_t mmc_ssd_log_records(mmc_ssd_t *ssd);

#endif
