/*
 * Unit tests of the holders' records (meta_state_record.c): what the meta
 * state tells each holder (ADD at commit, DEL when an object leaves the
 * index, numbered batches, nothing for pending or aborted puts), and a
 * meta state rebuilt from those records after a "crash": every committed
 * object comes back with its size, replicas and version, nothing removed
 * does, conflicts resolve to the newest version, restoring segments take
 * no new replica, and versions keep growing across the restart.
 *
 * The holders are simulated here: each decodes its batches with the real
 * decoder and keeps a map of (media, offset) -> entry, as the local
 * service does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"

#include "cache/meta/meta_state.h"
#include "util/log.h"
#include "util/misc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG        4096ull
#define MAX_SEG   (256 * PG)
#define HOST_BASE 0x100000000ull
#define NRANKS    6u
#define MAX_KEYS  64u
#define KEY_LEN   16u

static tk_log_t test_rec_log;

/* What a holder's record says of one replica. */
typedef struct test_rec_entry {
    bool used;
    uint8_t media;
    uint64_t offset;
    uint64_t size;
    uint64_t version;
    uint8_t want;
    char key[KEY_LEN];
} test_rec_entry_t;

/* A simulated holder: its record, as a small table. */
typedef struct test_holder {
    test_rec_entry_t e[512];
    uint64_t seq; /* last batch applied */
} test_holder_t;

typedef struct test_rec {
    mmc_state_t *st;
    mmc_state_owner_t *owners[NRANKS];
    test_holder_t holders[NRANKS];
    uint64_t now;
} test_rec_t;

static mmc_state_t *test_rec_state(void)
{
    mmc_state_params_t p = {
        .max_ranks = NRANKS,
        .max_segment_size = MAX_SEG,
        .host_base = HOST_BASE,
        .alloc_align = PG,
        .lease_ms = 100,
        .put_timeout_ms = 1000,
    };
    mmc_state_t *st = NULL;

    assert_int_equal(mmc_state_create(&p, &st), MF_OK);
    return st;
}

static int test_rec_setup(void **state)
{
    test_rec_t *t = calloc(1, sizeof(*t));

    tk_log_start(&test_rec_log, 0);
    mf_log_set_level(MF_LOG_WARN);
    assert_non_null(t);
    t->st = test_rec_state();
    t->now = 1000;
    *state = t;
    return 0;
}

static int test_rec_teardown(void **state)
{
    test_rec_t *t = *state;

    mmc_state_destroy(t->st);
    free(t);
    tk_log_stop(&test_rec_log);
    return tk_log_check_clean(&test_rec_log);
}

/* Registers rank with a DRAM segment of size bytes on host. */
static mmc_state_owner_t *test_rec_member(mmc_state_t *st, uint32_t rank,
                                          const char *host, uint64_t size)
{
    mmc_seg_desc_t seg = {.media = MMC_MEDIA_DRAM,
                          .gva = HOST_BASE + rank * MAX_SEG,
                          .size = size};
    mmc_state_owner_t *o = NULL;
    uint32_t host_idx;

    assert_int_equal(mmc_state_owner_create(st, &o), MF_OK);
    assert_int_equal(mmc_state_register(st, o, rank, host, "test",
                                        size > 0 ? 1 : 0, &seg, &host_idx),
                     MF_OK);
    return o;
}

static test_rec_entry_t *test_holder_find(test_holder_t *h, uint8_t media,
                                          uint64_t offset)
{
    for (size_t i = 0; i < MF_ARRAY_SIZE(h->e); i++) {
        if (h->e[i].used && h->e[i].media == media &&
            h->e[i].offset == offset) {
            return &h->e[i];
        }
    }
    return NULL;
}

/* Applies one RECORD body to holder h, as the local service does. */
static void test_holder_apply(test_holder_t *h, const mf_wbuf_t *w)
{
    mmc_record_t rec;
    test_rec_entry_t *slot;

    assert_int_equal(mmc_record_decode(w->data, w->len, &rec), MF_OK);
    assert_int_equal(rec.seq, h->seq + 1); /* in order, none lost */
    h->seq = rec.seq;
    for (uint32_t i = 0; i < rec.count; i++) {
        const mmc_rec_entry_t *e = &rec.entries[i];

        slot = test_holder_find(h, e->media, e->offset);
        if (e->op == MMC_REC_DEL) {
            assert_non_null(slot); /* a DEL follows its ADD */
            slot->used = false;
            continue;
        }
        assert_null(slot); /* two replicas never share an offset */
        for (size_t j = 0; slot == NULL && j < MF_ARRAY_SIZE(h->e); j++) {
            if (!h->e[j].used) {
                slot = &h->e[j];
            }
        }
        assert_non_null(slot);
        assert_true(e->key.len < KEY_LEN);
        *slot = (test_rec_entry_t){.used = true,
                                   .media = e->media,
                                   .offset = e->offset,
                                   .size = e->size,
                                   .version = e->version,
                                   .want = e->want};
        memcpy(slot->key, e->key.data, e->key.len);
    }
    mmc_record_free(&rec);
}

/* Sends every queued batch to the simulated holders. */
static void test_rec_flush(test_rec_t *t)
{
    mmc_state_owner_t *o;
    mf_wbuf_t w;

    while ((o = mmc_state_record_dirty(t->st)) != NULL) {
        uint32_t rank = NRANKS;

        for (uint32_t r = 0; r < NRANKS; r++) {
            if (t->owners[r] == o) {
                rank = r;
            }
        }
        assert_true(rank < NRANKS);
        mf_wbuf_init(&w);
        assert_true(mmc_state_record_take(t->st, o, 0, &w) > 0);
        assert_int_equal(mf_wbuf_status(&w), MF_OK);
        test_holder_apply(&t->holders[rank], &w);
        mf_wbuf_free(&w);
    }
}

static size_t test_holder_count(const test_holder_t *h)
{
    size_t n = 0;

    for (size_t i = 0; i < MF_ARRAY_SIZE(h->e); i++) {
        n += h->e[i].used;
    }
    return n;
}

static mmc_obj_result_t test_rec_put(test_rec_t *t, uint32_t rank,
                                     const char *key, uint64_t size,
                                     uint32_t replicas, uint32_t flags)
{
    mmc_state_put_opts_t opts = {.replicas = replicas, .flags = flags};
    mmc_obj_result_t res;

    assert_int_equal(mmc_state_put_alloc(t->st, t->owners[rank], key,
                                         strlen(key), size, &opts, t->now,
                                         &res),
                     MMC_OK);
    assert_int_equal(
        mmc_state_put_commit(t->st, t->owners[rank], res.id, MMC_OK), MMC_OK);
    return res;
}

/* The rank whose segment holds gva. */
static uint32_t test_rank_of(uint64_t gva)
{
    return (uint32_t)((gva - HOST_BASE) / MAX_SEG);
}

/* ---- what the holders are told ---- */

static void test_rec_entries(void **state)
{
    test_rec_t *t = *state;
    mmc_state_put_opts_t one = {.replicas = 1};
    mmc_obj_result_t res, pend, leased;
    uint64_t lease;

    for (uint32_t r = 0; r < 3; r++) {
        char host[8];

        snprintf(host, sizeof(host), "h%u", r);
        t->owners[r] = test_rec_member(t->st, r, host, 64 * PG);
    }
    t->owners[3] = test_rec_member(t->st, 3, "h0", 0); /* a pure client */
    assert_null(mmc_state_record_dirty(t->st));

    /* a commit tells each replica's holder, once */
    res = test_rec_put(t, 3, "a", 3 * PG + 5, 2, 0);
    test_rec_flush(t);
    for (uint8_t i = 0; i < res.nrep; i++) {
        test_holder_t *h = &t->holders[test_rank_of(res.reps[i].gva)];
        test_rec_entry_t *e =
            test_holder_find(h, MMC_MEDIA_DRAM,
                             res.reps[i].gva - HOST_BASE -
                                 test_rank_of(res.reps[i].gva) * MAX_SEG);

        assert_non_null(e);
        assert_string_equal(e->key, "a");
        assert_int_equal(e->size, 3 * PG + 5);
        assert_int_equal(e->want, 2);
        assert_true(e->version > 0);
    }
    assert_int_equal(test_holder_count(&t->holders[0]) +
                         test_holder_count(&t->holders[1]) +
                         test_holder_count(&t->holders[2]),
                     2);

    /* a pending put tells nobody; its abort neither */
    assert_int_equal(mmc_state_put_alloc(t->st, t->owners[3], "p", 1, PG, &one,
                                         t->now, &pend),
                     MMC_OK);
    assert_null(mmc_state_record_dirty(t->st));
    assert_int_equal(
        mmc_state_put_commit(t->st, t->owners[3], pend.id, MMC_ERR_ABORTED),
        MMC_OK);
    assert_null(mmc_state_record_dirty(t->st));

    /* a remove is told at once, even while a lease keeps the space */
    leased = test_rec_put(t, 3, "b", PG, 1, 0);
    test_rec_flush(t);
    assert_int_equal(mmc_state_get(t->st, t->owners[3], "b", 1, t->now, &res),
                     MMC_OK);
    lease = res.id;
    assert_int_equal(mmc_state_remove(t->st, "b", 1), MMC_OK);
    test_rec_flush(t);
    assert_null(test_holder_find(
        &t->holders[test_rank_of(leased.reps[0].gva)], MMC_MEDIA_DRAM,
        leased.reps[0].gva - HOST_BASE -
            test_rank_of(leased.reps[0].gva) * MAX_SEG));
    assert_int_equal(mmc_state_release(t->st, t->owners[3], lease), MMC_OK);
    assert_null(mmc_state_record_dirty(t->st)); /* told already */

    /* a replacing put: the old version goes, the new one comes */
    res = test_rec_put(t, 3, "a", PG, 1, MMC_PUT_REPLACE);
    test_rec_flush(t);
    assert_int_equal(test_holder_count(&t->holders[0]) +
                         test_holder_count(&t->holders[1]) +
                         test_holder_count(&t->holders[2]),
                     1);

    /* a dropped holder's queue goes with it; the others' stays */
    (void)test_rec_put(t, 3, "c", PG, 3, 0);
    mmc_state_owner_destroy(t->st, t->owners[2]);
    t->owners[2] = NULL;
    memset(&t->holders[2], 0, sizeof(t->holders[2]));
    test_rec_flush(t);
    assert_int_equal(mmc_state_check(t->st), MF_OK);
}

/* ---- a restart rebuilt from the records ---- */

/* Registers every holder of t with a new state and restores its record. */
static mmc_state_t *test_rec_rebuild(test_rec_t *t,
                                     mmc_state_owner_t *owners[NRANKS])
{
    mmc_state_t *st = test_rec_state();

    for (uint32_t r = 0; r < NRANKS; r++) {
        test_holder_t *h = &t->holders[r];
        char host[8];

        owners[r] = NULL;
        if (t->owners[r] == NULL) {
            continue;
        }
        snprintf(host, sizeof(host), "h%u", r % 3);
        owners[r] = test_rec_member(st, r, host, 64 * PG);
        assert_int_equal(mmc_state_restore_begin(st, owners[r]), MF_OK);
        for (size_t i = 0; i < MF_ARRAY_SIZE(h->e); i++) {
            mmc_rec_entry_t e;

            if (!h->e[i].used) {
                continue;
            }
            e = (mmc_rec_entry_t){
                .op = MMC_REC_ADD,
                .media = h->e[i].media,
                .offset = h->e[i].offset,
                .want = h->e[i].want,
                .size = h->e[i].size,
                .version = h->e[i].version,
                .key = {h->e[i].key, (uint32_t)strlen(h->e[i].key)},
            };
            assert_int_equal(mmc_state_restore(st, owners[r], &e), MMC_OK);
        }
        mmc_state_restore_end(st, owners[r]);
    }
    assert_int_equal(mmc_state_check(st), MF_OK);
    return st;
}

static int test_cmp_gva(const void *a, const void *b)
{
    uint64_t x = ((const mmc_replica_t *)a)->gva;
    uint64_t y = ((const mmc_replica_t *)b)->gva;

    return x < y ? -1 : x > y;
}

/*
 * A random run of puts (replacing or not), aborted puts, removes, gets
 * and releases over six holders; then the meta state is thrown away and
 * rebuilt from the holders' records: the index is the same, object by
 * object (size and replica addresses), and the rebuilt state is whole.
 */
static void test_rec_restart(void **state)
{
    test_rec_t *t = *state;
    mmc_state_owner_t *owners[NRANKS];
    mmc_state_counters_t before, after;
    mmc_state_t *st;
    uint32_t seed = 777;
    char key[KEY_LEN];

    for (uint32_t r = 0; r < NRANKS; r++) {
        char host[8];

        snprintf(host, sizeof(host), "h%u", r % 3);
        t->owners[r] = test_rec_member(t->st, r, host, 64 * PG);
    }
    for (int step = 0; step < 4000; step++) {
        mmc_state_put_opts_t opts;
        mmc_obj_result_t res;
        uint32_t op, o;

        seed = seed * 1103515245u + 12345u;
        op = (seed >> 16) % 100;
        o = (seed >> 8) % NRANKS;
        snprintf(key, sizeof(key), "k%u", (seed >> 4) % MAX_KEYS);
        if (op < 40) {
            opts = (mmc_state_put_opts_t){
                .replicas = 1 + (seed >> 12) % 3,
                .flags = op < 15 ? MMC_PUT_REPLACE : 0,
            };
            if (mmc_state_put_alloc(t->st, t->owners[o], key, strlen(key),
                                    1 + (seed >> 2) % (6 * PG), &opts, t->now,
                                    &res) == MMC_OK) {
                (void)mmc_state_put_commit(t->st, t->owners[o], res.id,
                                           op % 7 == 0 ? MMC_ERR_ABORTED
                                                       : MMC_OK);
            }
        } else if (op < 60) {
            (void)mmc_state_remove(t->st, key, strlen(key));
        } else if (op < 70 &&
                   mmc_state_get(t->st, t->owners[o], key, strlen(key), t->now,
                                 &res) == MMC_OK &&
                   op % 2 == 0) {
            (void)mmc_state_release(t->st, t->owners[o], res.id);
        }
        if (step % 13 == 0) {
            test_rec_flush(t);
        }
        t->now++;
    }
    test_rec_flush(t);
    mmc_state_get_counters(t->st, &before);
    assert_true(before.objects > 10);

    st = test_rec_rebuild(t, owners);
    mmc_state_get_counters(st, &after);
    assert_int_equal(after.objects, before.objects);
    assert_int_equal(after.object_bytes, before.object_bytes);
    assert_int_equal(after.restored, before.objects);
    for (uint32_t k = 0; k < MAX_KEYS; k++) {
        mmc_obj_result_t a, b;

        snprintf(key, sizeof(key), "k%u", k);
        if (mmc_state_query(t->st, key, strlen(key), &a, NULL) != MMC_OK) {
            assert_int_equal(mmc_state_query(st, key, strlen(key), &b, NULL),
                             MMC_ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(mmc_state_query(st, key, strlen(key), &b, NULL),
                         MMC_OK);
        assert_int_equal(a.size, b.size);
        assert_int_equal(a.nrep, b.nrep);
        qsort(a.reps, a.nrep, sizeof(a.reps[0]), test_cmp_gva);
        qsort(b.reps, b.nrep, sizeof(b.reps[0]), test_cmp_gva);
        for (uint8_t i = 0; i < a.nrep; i++) {
            assert_int_equal(a.reps[i].gva, b.reps[i].gva);
            assert_int_equal(a.reps[i].rank, b.reps[i].rank);
        }
    }
    for (uint32_t r = 0; r < NRANKS; r++) {
        mmc_state_owner_destroy(st, owners[r]);
    }
    mmc_state_destroy(st);
}

/*
 * Conflicts while restoring: an older version of a key is refused where a
 * newer one is indexed, and a newer one replaces an older one (whose
 * holders are told to forget it); the same replica twice and overlapping
 * ranges are refused; a restoring segment takes no new replica until its
 * end; a put after the restart is newer than everything restored.
 */
static uint32_t test_rec_ranks_of(test_rec_t *t, const char *key);

static void test_rec_conflicts(void **state)
{
    test_rec_t *t = *state;
    mmc_state_put_opts_t one = {.replicas = 1, .npref = 1};
    uint32_t pref = 1;
    mmc_rec_entry_t e = {.op = MMC_REC_ADD,
                         .media = MMC_MEDIA_DRAM,
                         .offset = 0,
                         .want = 1,
                         .size = PG,
                         .version = 100,
                         .key = {"x", 1}};
    mmc_obj_result_t res;
    mmc_rec_entry_t bad;

    t->owners[0] = test_rec_member(t->st, 0, "h0", 64 * PG);
    t->owners[1] = test_rec_member(t->st, 1, "h1", 64 * PG);
    assert_int_equal(mmc_state_restore_begin(t->st, t->owners[0]), MF_OK);
    assert_int_equal(mmc_state_restore_begin(t->st, t->owners[1]), MF_OK);

    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &e), MMC_OK);
    /* the same again (a restore sent twice): kept, so the holder keeps it
     * in its record; an overlapping range of another key: refused */
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &e), MMC_OK);
    bad = e;
    bad.key = (mmc_key_t){"y", 1};
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad),
                     MMC_ERR_EXISTS);
    /* an older version on rank 1 is refused, a newer one replaces */
    bad = e;
    bad.version = 99;
    assert_int_equal(mmc_state_restore(t->st, t->owners[1], &bad),
                     MMC_ERR_EXISTS);
    bad.version = 101;
    bad.size = 2 * PG;
    assert_int_equal(mmc_state_restore(t->st, t->owners[1], &bad), MMC_OK);
    assert_int_equal(mmc_state_query(t->st, "x", 1, &res, NULL), MMC_OK);
    assert_int_equal(res.size, 2 * PG);
    assert_int_equal(res.nrep, 1);
    assert_int_equal(res.reps[0].rank, 1);
    /* rank 0 is told to forget the old one */
    {
        mmc_record_t rec;
        mf_wbuf_t w;

        assert_ptr_equal(mmc_state_record_dirty(t->st), t->owners[0]);
        mf_wbuf_init(&w);
        assert_int_equal(mmc_state_record_take(t->st, t->owners[0], 0, &w), 1);
        assert_int_equal(mmc_record_decode(w.data, w.len, &rec), MF_OK);
        assert_int_equal(rec.count, 1);
        assert_int_equal(rec.entries[0].op, MMC_REC_DEL);
        assert_int_equal(rec.entries[0].offset, 0);
        mmc_record_free(&rec);
        mf_wbuf_free(&w);
        assert_null(mmc_state_record_dirty(t->st));
        /* an empty batch that asks for an acknowledgement */
        mf_wbuf_init(&w);
        assert_int_equal(mmc_state_record_sync(t->owners[0], &w), 2);
        assert_int_equal(mmc_record_decode(w.data, w.len, &rec), MF_OK);
        assert_int_equal(rec.seq, 2);
        assert_int_equal(rec.flags, 0);
        assert_int_equal(rec.count, 0);
        mmc_record_free(&rec);
        mf_wbuf_free(&w);
        assert_int_equal(mmc_state_record_seq(t->owners[0]), 2);
        assert_null(mmc_state_record_dirty(t->st));
        t->holders[0].seq = 2;
    }
    /* malformed entries */
    bad = e;
    bad.want = 0;
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad),
                     MF_ERR_INVALID);
    bad = e;
    bad.media = MMC_MEDIA_HBM; /* rank 0 has no HBM segment */
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad),
                     MF_ERR_INVALID);
    bad = e;
    bad.offset = 64 * PG; /* past the segment */
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad),
                     MF_ERR_INVALID);
    bad.offset = PG + 1; /* off the alignment */
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad),
                     MF_ERR_INVALID);

    /* restoring segments take nothing new */
    one.pref = &pref;
    assert_int_equal(mmc_state_put_alloc(t->st, t->owners[0], "n", 1, PG, &one,
                                         t->now, &res),
                     MMC_ERR_NO_SPACE);
    mmc_state_restore_end(t->st, t->owners[1]);
    assert_int_equal(mmc_state_put_alloc(t->st, t->owners[0], "n", 1, PG, &one,
                                         t->now, &res),
                     MMC_OK);
    assert_int_equal(res.reps[0].rank, 1);
    assert_int_equal(mmc_state_put_commit(t->st, t->owners[0], res.id, MMC_OK),
                     MMC_OK);
    mmc_state_restore_end(t->st, t->owners[0]);

    /* versions keep growing: a huge restored one is exceeded */
    bad = e;
    bad.key = (mmc_key_t){"z", 1};
    bad.offset = 8 * PG;
    bad.version = UINT64_MAX / 2;
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad), MMC_OK);
    (void)test_rec_put(t, 0, "w", PG, 1, 0);
    test_rec_flush(t);
    for (int r = 0; r < 2; r++) {
        test_rec_entry_t *w = NULL;

        for (size_t i = 0; i < MF_ARRAY_SIZE(t->holders[r].e); i++) {
            if (t->holders[r].e[i].used &&
                strcmp(t->holders[r].e[i].key, "w") == 0) {
                w = &t->holders[r].e[i];
            }
        }
        if (w != NULL) {
            assert_true(w->version > UINT64_MAX / 2);
        }
    }

    /* an object has the slots its put asked for: a third holder of a
     * two-replica object (a repair's copy that outlived a partition, say)
     * is one too many */
    t->owners[2] = test_rec_member(t->st, 2, "h2", 64 * PG);
    assert_int_equal(mmc_state_restore_begin(t->st, t->owners[2]), MF_OK);
    bad = e;
    bad.key = (mmc_key_t){"two", 3};
    bad.want = 2;
    bad.offset = 16 * PG;
    bad.version = 7;
    assert_int_equal(mmc_state_restore(t->st, t->owners[0], &bad), MMC_OK);
    assert_int_equal(mmc_state_restore(t->st, t->owners[1], &bad), MMC_OK);
    assert_int_equal(mmc_state_restore(t->st, t->owners[2], &bad),
                     MMC_ERR_EXISTS);
    assert_int_equal(test_rec_ranks_of(t, "two"), 0x3u);
    mmc_state_restore_end(t->st, t->owners[2]);
    assert_int_equal(mmc_state_check(t->st), MF_OK);
}

/* ---- re-replication ---- */

/* The rank holding each live replica of key (bit per rank). */
static uint32_t test_rec_ranks_of(test_rec_t *t, const char *key)
{
    mmc_obj_result_t res;
    uint32_t mask = 0;

    if (mmc_state_query(t->st, key, strlen(key), &res, NULL) != MMC_OK) {
        return 0;
    }
    for (uint8_t i = 0; i < res.nrep; i++) {
        mask |= 1u << res.reps[i].rank;
    }
    return mask;
}

/*
 * A holder goes: its objects fall below their count; a repair copies
 * each from a live replica (the copier) to a rank without one, on another
 * host first; done makes it a replica (its holder is told), a failure
 * frees the space and the object waits for the next try.  Repairs end
 * cleanly when the copier goes, the destination goes, the object is
 * removed meanwhile, or the timeout passes; none start while a holder
 * restores.
 */
static void test_rec_repair(void **state)
{
    test_rec_t *t = *state;
    mmc_state_repair_job_t jobs[16];
    mmc_state_counters_t c;
    uint32_t n, mask;
    char key[KEY_LEN];

    /* ranks 0..4; hosts: 0 and 3 on h0, 1 and 4 on h1, 2 on h2 */
    for (uint32_t r = 0; r < 5; r++) {
        char host[8];

        snprintf(host, sizeof(host), "h%u", r % 3);
        t->owners[r] = test_rec_member(t->st, r, host, 64 * PG);
    }
    for (uint32_t k = 0; k < 8; k++) {
        snprintf(key, sizeof(key), "r%u", k);
        (void)test_rec_put(t, k % 5, key, (k + 1) * PG, 2, 0);
    }
    test_rec_flush(t);
    assert_int_equal(mmc_state_under_replicated(t->st), 0);
    assert_int_equal(
        mmc_state_repair_start(t->st, t->now, 1000, jobs, 16, UINT64_MAX), 0);

    /* rank 1 goes: what it held falls below 2 */
    mmc_state_owner_destroy(t->st, t->owners[1]);
    t->owners[1] = NULL;
    memset(&t->holders[1], 0, sizeof(t->holders[1]));
    assert_true(mmc_state_under_replicated(t->st) > 0);
    n = mmc_state_repair_start(t->st, t->now, 1000, jobs, 16, UINT64_MAX);
    assert_int_equal(n, mmc_state_under_replicated(t->st));
    assert_int_equal(mmc_state_repairs_running(t->st), n);
    assert_int_equal(mmc_state_check(t->st), MF_OK);
    /* a second call starts nothing for objects under repair */
    assert_int_equal(mmc_state_repair_start(t->st, t->now, 1000, jobs + n,
                                            16 - n, UINT64_MAX),
                     0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t src = test_rank_of(jobs[i].src_gva);
        uint32_t dst = test_rank_of(jobs[i].dst_gva);

        assert_ptr_equal(jobs[i].copier, t->owners[src]);
        assert_true(src != dst && dst != 1);
        assert_true(jobs[i].size > 0);
        assert_int_equal(jobs[i].media, MMC_MEDIA_DRAM);
        /* another host than the live replica's, as there is room */
        assert_true(src % 3 != dst % 3);
    }
    /* a wrong owner cannot end it; the first fails, the rest succeed */
    assert_int_equal(mmc_state_repair_done(t->st, t->owners[4], 999999, MF_OK),
                     MMC_ERR_NOT_FOUND);
    assert_int_equal(
        mmc_state_repair_done(t->st, jobs[0].copier, jobs[0].id, MF_ERR_IO),
        MMC_OK);
    for (uint32_t i = 1; i < n; i++) {
        assert_int_equal(
            mmc_state_repair_done(t->st, jobs[i].copier, jobs[i].id, MF_OK),
            MMC_OK);
    }
    assert_int_equal(mmc_state_under_replicated(t->st), 1);
    test_rec_flush(t); /* the new replicas are in their holders' records */
    assert_int_equal(mmc_state_check(t->st), MF_OK);
    n = mmc_state_repair_start(t->st, t->now, 1000, jobs, 16, UINT64_MAX);
    assert_int_equal(n, 1);
    assert_int_equal(
        mmc_state_repair_done(t->st, jobs[0].copier, jobs[0].id, MF_OK),
        MMC_OK);
    assert_int_equal(mmc_state_under_replicated(t->st), 0);
    for (uint32_t k = 0; k < 8; k++) {
        snprintf(key, sizeof(key), "r%u", k);
        mask = test_rec_ranks_of(t, key);
        assert_int_equal(__builtin_popcount(mask), 2);
        assert_int_equal(mask & (1u << 1), 0);
    }

    /* rank 2 goes; repairs of its objects meet every way of ending */
    mmc_state_owner_destroy(t->st, t->owners[2]);
    t->owners[2] = NULL;
    memset(&t->holders[2], 0, sizeof(t->holders[2]));
    n = mmc_state_repair_start(t->st, t->now, 1000, jobs, 16, UINT64_MAX);
    assert_true(n >= 1);
    /* the object of the first is removed meanwhile: its space stays until
     * the copier reports, then goes */
    for (uint32_t k = 0; k < 8; k++) {
        snprintf(key, sizeof(key), "r%u", k);
        mmc_obj_result_t res;

        if (mmc_state_query(t->st, key, strlen(key), &res, NULL) == MMC_OK &&
            res.reps[0].gva == jobs[0].src_gva) {
            assert_int_equal(mmc_state_remove(t->st, key, strlen(key)), MMC_OK);
        }
    }
    assert_int_equal(mmc_state_check(t->st), MF_OK);
    assert_int_equal(
        mmc_state_repair_done(t->st, jobs[0].copier, jobs[0].id, MF_OK),
        MMC_OK);
    mmc_state_get_counters(t->st, &c);
    assert_int_equal(c.unlinked, 0);
    /* the rest: their copiers or destinations go, or time runs out */
    if (n > 1) {
        uint32_t dst = test_rank_of(jobs[1].dst_gva);

        mmc_state_owner_destroy(t->st, t->owners[dst]);
        t->owners[dst] = NULL;
        memset(&t->holders[dst], 0, sizeof(t->holders[dst]));
        (void)mmc_state_repair_done(t->st, jobs[1].copier, jobs[1].id, MF_OK);
    }
    mmc_state_repair_expire(t->st, t->now + 1000);
    assert_int_equal(mmc_state_repairs_running(t->st), 0);
    assert_int_equal(mmc_state_check(t->st), MF_OK);
    test_rec_flush(t);

    /* nothing starts while a holder restores */
    assert_int_equal(mmc_state_restore_begin(t->st, t->owners[0]), MF_OK);
    if (mmc_state_under_replicated(t->st) > 0) {
        assert_int_equal(
            mmc_state_repair_start(t->st, t->now, 1000, jobs, 16, UINT64_MAX),
            0);
    }
    mmc_state_restore_end(t->st, t->owners[0]);
    mmc_state_get_counters(t->st, &c);
    assert_true(c.repairs_done >= 2 && c.repairs_failed >= 1);
    assert_int_equal(c.repairs_started, c.repairs_done + c.repairs_failed);
    assert_int_equal(mmc_state_check(t->st), MF_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(_f)                                                                  \
    cmocka_unit_test_setup_teardown(_f, test_rec_setup, test_rec_teardown)
        T(test_rec_entries),
        T(test_rec_restart),
        T(test_rec_conflicts),
        T(test_rec_repair),
#undef T
    };

    return tk_group_run(tests, NULL, NULL);
}
