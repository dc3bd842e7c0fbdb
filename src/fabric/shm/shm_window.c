/*
 * The table of SHM windows, kept by the config store: one line per region,
 *     "<id> <host base> <host len> <device base> <device len>\n"
 * (hexadecimal), so that the rank 0 of each region can place its windows
 * where no other region's are, in every process alike.  An entry stays
 * after its region is destroyed: the same id created again with the same
 * sizes takes the same windows, and a crashed region leaks no room.
 */
#include "fabric/shm/shm_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mf_shm_entry {
    uint32_t id;
    mf_shm_windows_t win;
} mf_shm_entry_t;

static bool mf_shm_entry_parse(const char *line, mf_shm_entry_t *e)
{
    unsigned long long v[5];
    int used = 0;

    if (sscanf(line, "%llu %llx %llx %llx %llx%n", &v[0], &v[1], &v[2], &v[3],
               &v[4], &used) != 5 ||
        line[used] != '\0' || v[0] > UINT32_MAX) {
        return false;
    }
    e->id = (uint32_t)v[0];
    e->win = (mf_shm_windows_t){v[1], v[2], v[3], v[4]};
    return e->win.host_base + e->win.host_len >= e->win.host_base &&
           e->win.dev_base + e->win.dev_len >= e->win.dev_base;
}

/* The table's entries (all but id's, which goes to *mine_p if present). */
static mf_status_t mf_shm_table_parse(const char *table, size_t len,
                                      uint32_t id, mf_vec_t *entries,
                                      mf_shm_entry_t *mine, bool *have_mine)
{
    char line[160];
    size_t pos = 0, n;
    const char *nl;
    mf_shm_entry_t e;

    *have_mine = false;
    while (table != NULL && pos < len) {
        nl = memchr(table + pos, '\n', len - pos);
        n = (nl != NULL ? (size_t)(nl - table) : len) - pos;
        if (n > 0 && n < sizeof(line)) {
            memcpy(line, table + pos, n);
            line[n] = '\0';
            if (!mf_shm_entry_parse(line, &e)) {
                mf_warn("mf-shm: dropping a malformed line of the window "
                        "table: '%s'",
                        line);
            } else if (e.id == id) {
                *mine = e;
                *have_mine = true;
            } else if (mf_vec_push(entries, &e) == NULL) {
                return MF_ERR_NOMEM;
            }
        } else if (n > 0) {
            mf_warn("mf-shm: dropping a line of %zu bytes from the window "
                    "table",
                    n);
        }
        pos += n + 1;
    }
    return MF_OK;
}

static uint64_t mf_shm_align_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) / align * align;
}

/* The lowest aligned base of len bytes in [lo, lo + room) that overlaps
 * no window of the entries in the same range; 0 if none. */
static uint64_t mf_shm_first_fit(const mf_vec_t *entries, bool device,
                                 uint64_t lo, uint64_t room, uint64_t align,
                                 uint64_t len)
{
    uint64_t base = mf_shm_align_up(lo, align), end = lo + room;
    bool moved = true;
    size_t i;

    while (moved) {
        moved = false;
        if (base + len < base || base + len > end) {
            return 0;
        }
        for (i = 0; i < entries->count; i++) {
            const mf_shm_entry_t *e = mf_vec_at(entries, i);
            uint64_t b = device ? e->win.dev_base : e->win.host_base;
            uint64_t l = device ? e->win.dev_len : e->win.host_len;

            if (l != 0 && b < base + len && base < b + l) {
                base = mf_shm_align_up(b + l, align);
                moved = true;
            }
        }
    }
    return base;
}

mf_status_t mf_shm_table_place(const char *table, size_t table_len, uint32_t id,
                               const mf_shm_ranges_t *ranges,
                               mf_shm_windows_t *win, char **out_p,
                               size_t *out_len_p)
{
    mf_shm_windows_t want = *win;
    mf_shm_entry_t mine, add;
    mf_vec_t entries;
    mf_status_t status;
    bool have_mine;
    size_t i, cap, used = 0;
    char *out;

    *out_p = NULL;
    *out_len_p = 0;
    mf_vec_init(&entries, sizeof(mf_shm_entry_t));
    status =
        mf_shm_table_parse(table, table_len, id, &entries, &mine, &have_mine);
    if (status != MF_OK) {
        goto out;
    }
    if (have_mine && mine.win.host_len == want.host_len &&
        mine.win.dev_len == want.dev_len &&
        (want.host_base == 0 || want.host_base == mine.win.host_base) &&
        (want.dev_base == 0 || want.dev_base == mine.win.dev_base)) {
        *win = mine.win; /* the same region again: its windows */
        goto out;
    }
    for (i = 0; i < entries.count; i++) {
        const mf_shm_entry_t *e = mf_vec_at(&entries, i);

        if ((want.host_base != 0 && e->win.host_len != 0 &&
             want.host_base < e->win.host_base + e->win.host_len &&
             e->win.host_base < want.host_base + want.host_len) ||
            (want.dev_base != 0 && e->win.dev_len != 0 &&
             want.dev_base < e->win.dev_base + e->win.dev_len &&
             e->win.dev_base < want.dev_base + want.dev_len)) {
            mf_error("mf-shm %u: the window asked for overlaps region %u's", id,
                     e->id);
            status = MF_ERR_ADDR_IN_USE;
            goto out;
        }
    }
    if (want.host_base == 0 && want.host_len != 0) {
        want.host_base =
            mf_shm_first_fit(&entries, false, ranges->host_lo, ranges->room,
                             ranges->align, want.host_len);
        if (want.host_base == 0) {
            mf_error("mf-shm %u: no room for a host window of 0x%" PRIx64
                     " bytes from 0x%" PRIx64 " (0x%" PRIx64 " bytes, %zu "
                     "other regions)",
                     id, want.host_len, ranges->host_lo, ranges->room,
                     entries.count);
            status = MF_ERR_NOMEM;
            goto out;
        }
    }
    if (want.dev_base == 0 && want.dev_len != 0) {
        want.dev_base =
            mf_shm_first_fit(&entries, true, ranges->dev_lo, ranges->room,
                             ranges->align, want.dev_len);
        if (want.dev_base == 0) {
            mf_error("mf-shm %u: no room for a device window of 0x%" PRIx64
                     " bytes from 0x%" PRIx64,
                     id, want.dev_len, ranges->dev_lo);
            status = MF_ERR_NOMEM;
            goto out;
        }
    }
    add = (mf_shm_entry_t){.id = id, .win = want};
    if (mf_vec_push(&entries, &add) == NULL) {
        status = MF_ERR_NOMEM;
        goto out;
    }
    cap = entries.count * 96 + 1;
    out = malloc(cap);
    if (out == NULL) {
        status = MF_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < entries.count; i++) {
        const mf_shm_entry_t *e = mf_vec_at(&entries, i);

        used += (size_t)snprintf(
            out + used, cap - used,
            "%u %" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64 "\n", e->id,
            e->win.host_base, e->win.host_len, e->win.dev_base, e->win.dev_len);
    }
    *win = want;
    *out_p = out;
    *out_len_p = used;
out:
    mf_vec_free(&entries);
    return status;
}
