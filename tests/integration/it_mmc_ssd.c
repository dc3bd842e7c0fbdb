/*
 * MemCache's SSD tier: a holder with a small DRAM segment and an SSD area
 * (a file in a directory of the test), a reader elsewhere.
 *
 *   1. The holder writes three times its DRAM, one object at a time,
 *      each time waiting until no move is in flight: eviction demotes to
 *      SSD instead of deleting, so nothing is lost.
 *   2. The reader reads every object back, byte for byte: those on SSD
 *      load into DRAM on the way (the GET waits); /metrics counts the
 *      demotions, loads and deferred reads.  Then a storm: the holder
 *      writes without waiting while the reader reads what is written,
 *      at random: every read is the object's exact bytes or
 *      MMC_ERR_NOT_FOUND, whatever moves meanwhile.
 *   3. The holder stops (mmc_destroy) and starts again on the same area:
 *      every object that was on its SSD comes back from the area's log and
 *      reads byte for byte.
 *   3b. The holder freezes past the meta service's member timeout, which
 *      drops it; thawed, it registers again with what its SSD holds, and
 *      every object that was there reads byte for byte (what its DRAM
 *      held is gone with the segment).
 *   4. The holder writes large objects and is killed at once, moves in
 *      flight; a new holder on the same area restores what the log holds:
 *      every read is the object's exact bytes or MMC_ERR_NOT_FOUND, never
 *      torn bytes nor an error.
 */
#include "it_mmc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#define MB        (1ull << 20)
#define KB        (1ull << 10)
#define DRAM      (8 * MB)
#define SSD       (32 * MB)
#define NOBJ      48
#define OBJ_SIZE  (512 * KB + 123) /* 3 x DRAM in all, an odd tail */
#define NKILL     16
#define KILL_SIZE (1 * MB)
#define SETTLE_MS (60000 * TK_TIME_SCALE)

#define V_FAILED   0
#define V_ON_SSD   1 /* objects on the holder's SSD before it stopped */
#define V_FOUND    2 /* phase 4: reads that found the object */
#define V_STORM    3 /* storm: objects committed so far */
#define V_STORMED  4 /* storm: the writer is done */
#define V_ON_SSD2  5 /* before the freeze */
#define V_SSD_KEY  6 /* an object on SSD before the freeze, + 1 */
#define NSTORM     40
#define STORM_SIZE (256 * KB + 77)
#define B_WRITTEN  0
#define B_READ     1
#define B_STOPPED  2
#define B_REOPENED 3
#define B_READ2    4
#define B_KILLWR   5
#define B_STORM    6
#define B_FREEZE   7
#define B_THAWED   8
#define B_BACK     9
#define B_READ3    12 /* the reader is done with 3b */
#define MEMBER_MS  (3000 * TK_TIME_SCALE)

static char ssd_dir[64];
static char ssd_path[128];

static uint64_t ssd_seed(int phase, int i)
{
    return ((uint64_t)(phase + 1) << 32) | (uint64_t)i;
}

static void ssd_key(char *buf, size_t len, int phase, int i)
{
    snprintf(buf, len, "ssd-%d-%d", phase, i);
}

static double ssd_metric(const char *name)
{
    return it_mmc_metric(NULL, 0, &it_mmc_sh->meta, name);
}

/* Members the meta service lost without UNREGISTER, or -1. */
static double ssd_losses(void)
{
    double timeout = ssd_metric("mmc_member_losses_total{reason=\"timeout\"}");
    double closed = ssd_metric("mmc_member_losses_total{reason=\"closed\"}");

    return (timeout < 0 || closed < 0) ? -1 : timeout + closed;
}

/* Waits until no demotion is in flight; false after the guard. */
static bool ssd_settle(void)
{
    uint64_t deadline = tk_time_ms() + SETTLE_MS;

    while (tk_time_ms() < deadline) {
        double started =
            ssd_metric("mmc_ssd_demotions_total{result=\"started\"}");
        double done = ssd_metric("mmc_ssd_demotions_total{result=\"done\"}");
        double failed =
            ssd_metric("mmc_ssd_demotions_total{result=\"failed\"}");

        if (started >= 0 && done >= 0 && failed >= 0 &&
            started == done + failed) {
            return true;
        }
        tk_sleep_ms(2);
    }
    tk_print("moves still in flight after %u ms", (unsigned)SETTLE_MS);
    return false;
}

static mmc_status_t ssd_open_holder(mmc_t **mmc_p)
{
    const char *kv[] = {"ssd_path",    ssd_path, "ssd_size", "32M",
                        "ssd_threads", "2",      NULL};

    return it_mmc_open_kv(DRAM, NULL, kv, mmc_p);
}

/* Reads key into buf: 1 when it holds exactly seed's bytes, 0 when not
 * found (allowed if may_miss), -1 otherwise (logged). */
static int ssd_read(mmc_t *mmc, const char *key, char *buf, size_t size,
                    uint64_t seed, bool may_miss)
{
    mmc_status_t st = mmc_get(mmc, key, buf, size);

    if (st == MMC_ERR_NOT_FOUND && may_miss) {
        return 0;
    }
    if (st != MMC_OK) {
        tk_print("get %s: %s", key, mmc_status_name(st));
        return -1;
    }
    if (it_mmc_seed_of(buf, size) != seed) {
        tk_print("get %s: torn or wrong bytes", key);
        return -1;
    }
    return 1;
}

/* Phase 1 objects on SSD now (*first_p: one of them + 1, or 0); -1 on
 * an error. */
static int ssd_on_ssd(mmc_t *mmc, int *first_p)
{
    mmc_obj_info_t info;
    char key[64];
    int n = 0;

    *first_p = 0;
    for (int i = 0; i < NOBJ; i++) {
        mmc_status_t st;

        ssd_key(key, sizeof(key), 0, i);
        mmc_obj_info_init(&info, 1);
        st = mmc_query(mmc, key, &info); /* it may be gone off the SSD */
        if (st != MMC_OK && st != MMC_ERR_NOT_FOUND) {
            tk_print("query %s: %s", key, mmc_status_name(st));
            return -1;
        }
        if ((st == MMC_OK) && (info.nreplicas == 1) &&
            (info.media[0] == MMC_MEDIA_SSD)) {
            *first_p = (*first_p == 0) ? i + 1 : *first_p;
            n++;
        }
    }
    return n;
}

/* The holder: phases 1, 3 and the writes of 4 (killed then). */
static int ssd_holder(int index, void *arg)
{
    char *buf = malloc(KILL_SIZE);
    mmc_obj_info_t info;
    mmc_t *mmc = NULL;
    char key[64];
    int on_ssd = 0, first = 0;

    (void)index;
    (void)arg;
    TK_CHECK_GOTO(buf != NULL, "malloc");
    IT_MMC_ST(ssd_open_holder(&mmc), MMC_OK);
    for (int i = 0; i < NOBJ; i++) {
        ssd_key(key, sizeof(key), 0, i);
        it_mmc_fill(buf, OBJ_SIZE, ssd_seed(0, i));
        IT_MMC_ST(mmc_put(mmc, key, buf, OBJ_SIZE, NULL), MMC_OK);
        TK_CHECK_GOTO(ssd_settle(), "settle after put %d", i);
    }
    TK_CHECK_GOTO(it_mmc_barrier(B_WRITTEN, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_READ, 2) == 0, "barrier");
    /* 2b: a storm, the reader at our heels */
    for (int i = 0; i < NSTORM; i++) {
        ssd_key(key, sizeof(key), 1, i);
        it_mmc_fill(buf, STORM_SIZE, ssd_seed(1, i));
        IT_MMC_ST(mmc_put(mmc, key, buf, STORM_SIZE, NULL), MMC_OK);
        atomic_store(&it_mmc_sh->val[V_STORM], i + 1);
    }
    atomic_store(&it_mmc_sh->val[V_STORMED], 1);
    TK_CHECK_GOTO(it_mmc_barrier(B_STORM, 2) == 0, "barrier");
    TK_CHECK_GOTO(ssd_settle(), "settle after the reads");
    /* 3: what is on our SSD now survives a stop and a start */
    on_ssd = ssd_on_ssd(mmc, &first);
    TK_CHECK_GOTO(on_ssd >= 0, "count");
    atomic_store(&it_mmc_sh->val[V_ON_SSD], on_ssd);
    mmc_destroy(mmc);
    mmc = NULL;
    TK_CHECK_GOTO(it_mmc_barrier(B_STOPPED, 2) == 0, "barrier");
    IT_MMC_ST(ssd_open_holder(&mmc), MMC_OK);
    TK_CHECK_GOTO(it_mmc_barrier(B_REOPENED, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_READ2, 2) == 0, "barrier");
    /* 3b: frozen past the member timeout (by the parent), then back */
    TK_CHECK_GOTO(ssd_settle(), "settle before the freeze");
    on_ssd = ssd_on_ssd(mmc, &first);
    TK_CHECK_GOTO(on_ssd >= 0, "count");
    atomic_store(&it_mmc_sh->val[V_ON_SSD2], on_ssd);
    atomic_store(&it_mmc_sh->val[V_SSD_KEY], first);
    TK_CHECK_GOTO(it_mmc_barrier(B_FREEZE, 3) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_THAWED, 3) == 0, "barrier");
    if (first > 0) { /* registered again once that one is back */
        uint64_t deadline = tk_time_ms() + SETTLE_MS;
        mmc_status_t st;

        ssd_key(key, sizeof(key), 0, first - 1);
        do {
            mmc_obj_info_init(&info, 1);
            st = mmc_query(mmc, key, &info);
            if (st != MMC_OK) {
                tk_sleep_ms(20);
            }
        } while ((st != MMC_OK) && (tk_time_ms() < deadline));
        IT_MMC_ST(st, MMC_OK);
    }
    TK_CHECK_GOTO(it_mmc_barrier(B_BACK, 2) == 0, "barrier");
    /* (our writes below would push what 3b reads off the SSD) */
    TK_CHECK_GOTO(it_mmc_barrier(B_READ3, 2) == 0, "barrier");
    /* 4: large objects, and the parent kills us as soon as they are in */
    for (int i = 0; i < NKILL; i++) {
        ssd_key(key, sizeof(key), 3, i);
        it_mmc_fill(buf, KILL_SIZE, ssd_seed(3, i));
        IT_MMC_ST(mmc_put(mmc, key, buf, KILL_SIZE, NULL), MMC_OK);
    }
    TK_CHECK_GOTO(it_mmc_barrier(B_KILLWR, 3) == 0, "barrier");
    for (;;) {
        pause(); /* until the kill */
    }

fail:
    atomic_store(&it_mmc_sh->val[V_FAILED], 1);
    mmc_destroy(mmc);
    free(buf);
    return 1;
}

/* A holder started again on the area after the kill: it only stays. */
static int ssd_holder_again(int index, void *arg)
{
    mmc_t *mmc = NULL;

    (void)index;
    (void)arg;
    IT_MMC_ST(ssd_open_holder(&mmc), MMC_OK);
    TK_CHECK_GOTO(it_mmc_barrier(10, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(11, 2) == 0, "barrier");
    mmc_destroy(mmc);
    return 0;

fail:
    atomic_store(&it_mmc_sh->val[V_FAILED], 1);
    mmc_destroy(mmc);
    return 1;
}

/* The reader: phases 2, 3 and 4's reads. */
static int ssd_reader(int index, void *arg)
{
    char *buf = malloc(KILL_SIZE);
    mmc_t *mmc = NULL;
    char key[64];
    int found = 0;

    (void)index;
    (void)arg;
    TK_CHECK_GOTO(buf != NULL, "malloc");
    IT_MMC_ST(it_mmc_open(0, NULL, &mmc), MMC_OK);
    TK_CHECK_GOTO(it_mmc_barrier(B_WRITTEN, 2) == 0, "barrier");
    for (int i = 0; i < NOBJ; i++) {
        ssd_key(key, sizeof(key), 0, i);
        TK_CHECK_GOTO(
            ssd_read(mmc, key, buf, OBJ_SIZE, ssd_seed(0, i), false) == 1,
            "phase 2, object %d", i);
        /* what the load pushed over the mark goes to SSD before the
         * next load needs the room */
        TK_CHECK_GOTO(ssd_settle(), "settle after get %d", i);
    }
    TK_CHECK_GOTO(it_mmc_barrier(B_READ, 2) == 0, "barrier");
    {
        tk_rng_t rng;
        int reads = 0, hits = 0;

        tk_rng_seed(&rng, 42);
        while (!atomic_load(&it_mmc_sh->val[V_STORMED]) || (reads < 128)) {
            int n = atomic_load(&it_mmc_sh->val[V_STORM]);
            int i, r;

            if (n == 0) {
                tk_sleep_ms(1);
                continue;
            }
            i = (int)tk_rng_range(&rng, 0, (uint64_t)n - 1);
            ssd_key(key, sizeof(key), 1, i);
            r = ssd_read(mmc, key, buf, STORM_SIZE, ssd_seed(1, i), true);
            TK_CHECK_GOTO(r >= 0, "storm, object %d", i);
            hits += r;
            reads++;
        }
        tk_print("storm: %d reads, %d found", reads, hits);
    }
    TK_CHECK_GOTO(it_mmc_barrier(B_STORM, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_STOPPED, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_REOPENED, 2) == 0, "barrier");
    for (int i = 0; i < NOBJ; i++) {
        int r;

        ssd_key(key, sizeof(key), 0, i);
        r = ssd_read(mmc, key, buf, OBJ_SIZE, ssd_seed(0, i), true);
        TK_CHECK_GOTO(r >= 0, "phase 3, object %d", i);
        TK_CHECK_GOTO(ssd_settle(), "settle after get %d", i);
        found += r;
    }
    TK_CHECK_GOTO(found == atomic_load(&it_mmc_sh->val[V_ON_SSD]),
                  "phase 3: %d objects back, %d were on SSD", found,
                  atomic_load(&it_mmc_sh->val[V_ON_SSD]));
    TK_CHECK_GOTO(it_mmc_barrier(B_READ2, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_FREEZE, 3) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_THAWED, 3) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_BACK, 2) == 0, "barrier");
    found = 0;
    for (int i = 0; i < NOBJ; i++) {
        int r;

        ssd_key(key, sizeof(key), 0, i);
        r = ssd_read(mmc, key, buf, OBJ_SIZE, ssd_seed(0, i), true);
        TK_CHECK_GOTO(r >= 0, "phase 3b, object %d", i);
        TK_CHECK_GOTO(ssd_settle(), "settle after get %d", i);
        found += r;
    }
    TK_CHECK_GOTO(found == atomic_load(&it_mmc_sh->val[V_ON_SSD2]),
                  "phase 3b: %d objects back, %d were on SSD", found,
                  atomic_load(&it_mmc_sh->val[V_ON_SSD2]));
    TK_CHECK_GOTO(it_mmc_barrier(B_READ3, 2) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(B_KILLWR, 3) == 0, "barrier");
    TK_CHECK_GOTO(it_mmc_barrier(10, 2) == 0, "barrier"); /* restarted */
    found = 0;
    for (int i = 0; i < NKILL; i++) {
        int r;

        ssd_key(key, sizeof(key), 3, i);
        r = ssd_read(mmc, key, buf, KILL_SIZE, ssd_seed(3, i), true);
        TK_CHECK_GOTO(r >= 0, "phase 4, object %d", i);
        found += r;
    }
    atomic_store(&it_mmc_sh->val[V_FOUND], found);
    TK_CHECK_GOTO(it_mmc_barrier(11, 2) == 0, "barrier");
    mmc_destroy(mmc);
    free(buf);
    return 0;

fail:
    atomic_store(&it_mmc_sh->val[V_FAILED], 1);
    mmc_destroy(mmc);
    free(buf);
    return 1;
}

static void ssd_rm_area(void)
{
    char log[160];

    snprintf(log, sizeof(log), "%s.log", ssd_path);
    unlink(ssd_path);
    unlink(log);
    rmdir(ssd_dir);
}

static void test_ssd_tier(void **state)
{
    char member[48];
    const char *extra[] = {"max_ranks=8",
                           "max_segment_size=64M",
                           "evict_high_pct=80",
                           "evict_low_pct=50",
                           "lease_ms=60s",
                           member,
                           NULL};
    uint64_t deadline;
    double losses;
    pid_t pids[2], again;
    int ok = 0;

    (void)state;
    snprintf(member, sizeof(member), "member_timeout_ms=%d", MEMBER_MS);
    snprintf(ssd_dir, sizeof(ssd_dir), "/tmp/it-mmc-ssd-XXXXXX");
    assert_non_null(mkdtemp(ssd_dir));
    snprintf(ssd_path, sizeof(ssd_path), "%s/area", ssd_dir);
    assert_int_equal(it_mmc_shared_init(), 0);
    assert_int_equal(
        it_mmc_meta_start(&it_mmc_sh->meta, NULL, 0, "127.0.0.1", extra), 0);
    pids[0] = tk_proc_spawn(ssd_holder, 0, NULL);
    pids[1] = tk_proc_spawn(ssd_reader, 1, NULL);
    assert_true(pids[0] > 0 && pids[1] > 0);

    /* phase 3b: freeze the holder until the meta service drops it (for
     * silence, or as the idle connection the net layer closed first) */
    if (it_mmc_barrier(B_FREEZE, 3) != 0) {
        goto out;
    }
    losses = ssd_losses();
    if ((losses < 0) || (tk_proc_freeze(pids[0]) != 0)) {
        goto out;
    }
    deadline = tk_time_ms() + SETTLE_MS;
    while (ssd_losses() <= losses) {
        if (tk_time_ms() > deadline) {
            tk_print("the frozen holder was never dropped");
            goto out;
        }
        tk_sleep_ms(50);
    }
    kill(pids[0], SIGCONT);
    if (it_mmc_barrier(B_THAWED, 3) != 0) {
        goto out;
    }
    /* phase 4: kill the holder with its moves in flight */
    if (it_mmc_barrier(B_KILLWR, 3) != 0 ||
        atomic_load(&it_mmc_sh->val[V_FAILED]) != 0) {
        goto out;
    }
    tk_proc_kill(pids[0]);
    pids[0] = -1;
    again = tk_proc_spawn(ssd_holder_again, 2, NULL);
    if ((again <= 0) || (tk_proc_wait(again, IT_MMC_WAIT_MS) != 0)) {
        goto out;
    }
    if (tk_proc_wait(pids[1], IT_MMC_WAIT_MS) != 0) {
        goto out;
    }
    pids[1] = -1;
    tk_print("phase 3: %d objects were on SSD, 3b: %d; phase 4: %d of %d "
             "back after the kill",
             atomic_load(&it_mmc_sh->val[V_ON_SSD]),
             atomic_load(&it_mmc_sh->val[V_ON_SSD2]),
             atomic_load(&it_mmc_sh->val[V_FOUND]), NKILL);
    if (ssd_metric("mmc_ssd_demotions_total{result=\"done\"}") < 1 ||
        ssd_metric("mmc_ssd_loads_total{result=\"done\"}") < 1 ||
        ssd_metric("mmc_reads_deferred_total") < 1 ||
        atomic_load(&it_mmc_sh->val[V_ON_SSD]) < 1) {
        tk_print("no demotion, load or deferred read counted");
        goto out;
    }
    ok = atomic_load(&it_mmc_sh->val[V_FAILED]) == 0;
out:
    for (int i = 0; i < 2; i++) {
        if (pids[i] > 0) {
            tk_proc_kill(pids[i]);
        }
    }
    if (tk_meta_stop(&it_mmc_sh->meta, SIGTERM) != 0) {
        tk_print("mmc-meta did not exit cleanly");
        ok = 0;
    }
    ssd_rm_area();
    assert_int_equal(ok, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssd_tier),
    };

    return tk_group_run(tests, NULL, NULL);
}
