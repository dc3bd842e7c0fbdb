/*
 * MemCache when local services crash, across hosts (network namespaces,
 * tk_netns.h; mmc-meta in host 0).
 *
 * test_kill_loop: five local services on three hosts storm puts (two
 * replicas) and verified gets.  Twenty times, one of them, picked at
 * random, is killed with SIGKILL in the middle of it; a survivor then
 * reads back every object that still had a replica on a live process,
 * and the killed one is started again (a new process, mmc_create) and
 * must rejoin: its rank is listed by /segments and its puts land on it.
 * Afterwards everything is removed and no segment may hold a byte.
 *
 * test_vanish: a local service's host loses its network (its veth goes
 * down, then the process dies: no FIN ever leaves) while the others read.
 * The meta service must notice within member_timeout_ms (its heartbeat),
 * drop the segment and its replicas: objects with a replica elsewhere
 * stay readable, the others are not found, and every segment holds
 * exactly what its live replicas need.
 *
 * The clients run with fabric.tcp.timeout_ms below their timeout_ms, so a
 * copy from a host that vanished fails over in time.
 *
 * Invariants of both: every library call returns within its timeout plus
 * a slack (else it is a hang and the test fails); a get that succeeds
 * returns exactly the bytes that were put (per-key seed and pattern); an
 * object is never lost while a replica lives; a put that fails leaves
 * nothing readable; nothing leaks.
 *
 * The bookkeeping lives in a MAP_SHARED region made before any fork: a
 * ring of object records per client slot (a seqlock each, since the
 * owner writes while any process reads), the lives (incarnations) of the
 * slots, which of them are dead and which rank each one holds.  The test
 * parent marks a life dead before it kills it, so a reader that finds an
 * object gone can tell a loss from a legitimate disappearance.
 *
 * Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped otherwise.
 */
#include "it_mmc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define KB          (1ull << 10)
#define MB          (1ull << 20)
#define HOSTS       3
#define SLOTS       5
#define HOST_OF(_s) ((_s) % HOSTS)
#define RING        32 /* objects a slot keeps at most */
#define OBJ_MIN     (16 * KB)
#define OBJ_MAX     (256 * KB)
#define SEG_SIZE    (32 * MB)
#define ROUNDS      20
#define MAX_LIVES   64
#define MAX_RANKS   16
#define CALL_MS     10000 /* the clients' timeout_ms */
#define CONNECT_MS  20000 /* the clients' connect_timeout_ms */
#define SLACK_MS    10000 /* what a call may take beyond its timeout */
#define GUARD_MS    60000 /* hang guard of the parent's waits */
#define ALIGN       4096  /* the meta's alloc_align */

enum { FL_FREE, FL_PUTTING, FL_LIVE, FL_REMOVING };

/* One object a slot put: its key is f.<slot>.<life>.<n>. */
typedef struct fl_rec {
    atomic_ullong seq; /* odd while the owner changes it */
    uint32_t state;    /* FL_* */
    uint32_t life;
    uint32_t n;
    uint32_t size;
    uint64_t seed;
    uint32_t nrep;
    uint32_t uncertain; /* replica owners unknown: no loss check */
    uint32_t rlife[MMC_MAX_REPLICAS]; /* lives holding the replicas */
} fl_rec_t;

typedef struct fl_shared {
    fl_rec_t ring[SLOTS][RING];
    atomic_uint next[SLOTS];         /* next n of a slot (any life) */
    atomic_int slot_life[SLOTS];     /* the slot's current life */
    atomic_int ready[SLOTS];         /* life, once created */
    atomic_int landed[SLOTS];        /* life, once a put landed on it */
    atomic_int life_dead[MAX_LIVES]; /* set before the kill */
    atomic_int life_rank[MAX_LIVES];
    atomic_int rank_life[MAX_RANKS];
    atomic_int stop;
    atomic_int failed;
    atomic_int exit_now;
    atomic_int cleaned;
    atomic_int verify_req;
    atomic_int verify_done;
    atomic_int verifier;
    atomic_int hold[SLOTS]; /* a life to stop copying (sw RMA) */
    atomic_int held[SLOTS]; /* its threads that stopped */
    atomic_ullong max_call_ms;
    atomic_ullong puts_ok, puts_failed, gets_ok, gets_missing, gets_failed;
    atomic_ullong verified, losses_legit;
} fl_shared_t;

static fl_shared_t *fl;
static tk_netns_t fl_net;
static bool fl_have_net;

#define FL_FAIL(...)                                                           \
    do {                                                                       \
        tk_print(__VA_ARGS__);                                                 \
        atomic_store(&fl->failed, 1);                                          \
        goto fail;                                                             \
    } while (0)

/* ------------------------------------------------------------ records */

/* A record's fields change under its seqlock while other processes read
 * them: every access is a relaxed atomic one, so the read of a changing
 * record is a retry, not a data race. */
#define FL_SET(_r, _field, _v)                                                 \
    __atomic_store_n(&(_r)->_field, (_v), __ATOMIC_RELAXED)
#define FL_GET(_r, _field) __atomic_load_n(&(_r)->_field, __ATOMIC_RELAXED)

static void fl_key(char *key, size_t len, int slot, uint32_t life, uint32_t n)
{
    snprintf(key, len, "f.%d.%u.%u", slot, life, n);
}

static uint64_t fl_seed(int slot, uint32_t life, uint32_t n)
{
    return ((uint64_t)slot << 56) | ((uint64_t)life << 32) | n;
}

/* A consistent copy of a record; false while its owner changes it. */
static bool fl_snap(fl_rec_t *r, fl_rec_t *out)
{
    unsigned long long s1 = atomic_load(&r->seq), s2;

    if (s1 & 1) {
        return false;
    }
    out->state = FL_GET(r, state);
    out->life = FL_GET(r, life);
    out->n = FL_GET(r, n);
    out->size = FL_GET(r, size);
    out->seed = FL_GET(r, seed);
    out->nrep = FL_GET(r, nrep);
    out->uncertain = FL_GET(r, uncertain);
    for (int k = 0; k < MMC_MAX_REPLICAS; k++) {
        out->rlife[k] = FL_GET(r, rlife[k]);
    }
    /* a read-modify-write, not a load: its release half keeps the reads
     * above before it (a fence would do, but ThreadSanitizer has none) */
    s2 = atomic_fetch_add(&r->seq, 0);
    atomic_store(&out->seq, s1);
    return s1 == s2;
}

/* The increments are read-modify-writes, acquire and release: the owner's
 * changes stay between them. */
static void fl_begin(fl_rec_t *r)
{
    atomic_fetch_add(&r->seq, 1);
}

static void fl_end(fl_rec_t *r)
{
    atomic_fetch_add(&r->seq, 1);
}

/* Whether a replica of the object lives on a process not (being) killed. */
static bool fl_alive(const fl_rec_t *r)
{
    for (uint32_t k = 0; k < r->nrep && k < MMC_MAX_REPLICAS; k++) {
        if (r->rlife[k] > 0 && r->rlife[k] < MAX_LIVES &&
            atomic_load(&fl->life_dead[r->rlife[k]]) == 0) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------- timing */

/* Times a call; false (logged) when it ran past its timeout + slack. */
static bool fl_timed(uint64_t start, unsigned timeout_ms, const char *what,
                     const char *key)
{
    unsigned long long ms = tk_time_ms() - start;
    unsigned long long prev = atomic_load(&fl->max_call_ms);

    while (ms > prev &&
           !atomic_compare_exchange_weak(&fl->max_call_ms, &prev, ms)) {
    }
    if (ms > timeout_ms / 2) {
        tk_print("slow: %s %s took %llu ms", what, key, ms);
    }
    if (ms > timeout_ms + SLACK_MS) {
        tk_print("HANG: %s %s took %llu ms (timeout %u ms + %u ms)", what, key,
                 ms, timeout_ms, SLACK_MS);
        return false;
    }
    return true;
}

/* Statuses a get may see while processes die: the replica it read from
 * went away, or its lease was damaged; never wrong bytes. */
static bool fl_get_transient(mmc_status_t st)
{
    return mf_status_is_peer_error(st) || st == MMC_ERR_NO_REPLICA ||
           st == MMC_ERR_LEASE_EXPIRED;
}

/* ------------------------------------------------------------ a client */

typedef struct fl_child {
    mmc_t *mmc;
    int slot;
    uint32_t life;
    char *buf; /* OBJ_MAX */
} fl_child_t;

/* Says what a get that returned wrong bytes read: where the bytes
 * differ, the object's replicas now, and what a second read gives. */
static void fl_wrong_bytes(fl_child_t *c, const char *key, const fl_rec_t *snap)
{
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    char *expect = malloc(snap->size);
    ssize_t diff = -1;
    size_t bad = 0;
    mmc_status_t st;

    if (expect == NULL) {
        return;
    }
    it_mmc_fill(expect, snap->size, snap->seed);
    diff = tk_mem_diff(expect, c->buf, snap->size);
    for (size_t i = 0; i < snap->size; i++) {
        bad += expect[i] != c->buf[i];
    }
    tk_print("%s: %u bytes, first difference at %zd, %zu bytes differ; "
             "record: %u replicas, lives %u %u, uncertain %u",
             key, snap->size, diff, bad, snap->nrep, snap->rlife[0],
             snap->rlife[1], snap->uncertain);
    st = mmc_query(c->mmc, key, &info);
    if (st == MMC_OK) {
        tk_print("%s: now %u replicas: ranks %u %u (this is rank %u)", key,
                 info.nreplicas, info.ranks[0], info.ranks[1],
                 mmc_rank(c->mmc));
    } else {
        tk_print("%s: query: %s", key, mmc_status_name(st));
    }
    st = mmc_get(c->mmc, key, c->buf, snap->size);
    tk_print("%s: read again: %s, %s", key, mmc_status_name(st),
             st == MMC_OK
                 ? (tk_mem_diff(expect, c->buf, snap->size) < 0 ? "right"
                                                                : "wrong again")
                 : "-");
    free(expect);
}

/*
 * Reads the object of a snapshot and checks it: exact bytes, or gone when
 * no replica lived (or the record changed meanwhile).  tries > 1 retries
 * transient failures.  0, or -1 (logged, failed set).
 */
static int fl_check(fl_child_t *c, fl_rec_t *r, const fl_rec_t *snap, int slot,
                    int tries)
{
    char key[64];
    mmc_status_t st = MMC_OK;
    fl_rec_t now;
    uint64_t start;

    fl_key(key, sizeof(key), slot, snap->life, snap->n);
    for (int t = 0; t < tries; t++) {
        memset(c->buf, 0x5a, snap->size);
        start = tk_time_ms();
        st = mmc_get(c->mmc, key, c->buf, snap->size);
        if (!fl_timed(start, CALL_MS, "get", key)) {
            FL_FAIL("get hangs");
        }
        if (!fl_get_transient(st)) {
            break;
        }
        tk_sleep_ms(50);
    }
    if (st == MMC_OK) {
        uint64_t seed = it_mmc_seed_of(c->buf, snap->size);

        if (seed != snap->seed) {
            fl_wrong_bytes(c, key, snap);
            FL_FAIL("WRONG BYTES: get %s returned seed %llx, expected %llx",
                    key, (unsigned long long)seed,
                    (unsigned long long)snap->seed);
        }
        atomic_fetch_add(&fl->gets_ok, 1);
        return 0;
    }
    if (st == MMC_ERR_NOT_FOUND) {
        atomic_fetch_add(&fl->gets_missing, 1);
        /* a loss only if the record is unchanged and a replica lives */
        if (fl_snap(r, &now) && now.seq == snap->seq && now.state == FL_LIVE &&
            !now.uncertain && fl_alive(&now)) {
            FL_FAIL("LOST: %s not found, yet a replica lives (%u replicas, "
                    "lives %u %u)",
                    key, now.nrep, now.rlife[0], now.rlife[1]);
        }
        atomic_fetch_add(&fl->losses_legit, 1);
        return 0;
    }
    if (fl_get_transient(st) && tries == 1) {
        atomic_fetch_add(&fl->gets_failed, 1);
        return 0;
    }
    FL_FAIL("get %s: %s", key, mmc_status_name(st));
fail:
    return -1;
}

/* Removes the object of a record of this slot and frees the record. */
static int fl_remove(fl_child_t *c, fl_rec_t *r)
{
    char key[64];
    mmc_status_t st;
    uint64_t start;
    fl_rec_t snap;
    bool check = r->state == FL_LIVE;

    if (!fl_snap(r, &snap)) {
        FL_FAIL("record of slot %d changes under its owner", c->slot);
    }
    fl_key(key, sizeof(key), c->slot, r->life, r->n);
    fl_begin(r);
    FL_SET(r, state, FL_REMOVING);
    fl_end(r);
    start = tk_time_ms();
    st = mmc_remove(c->mmc, key);
    if (!fl_timed(start, CALL_MS, "remove", key)) {
        FL_FAIL("remove hangs");
    }
    if (st == MMC_ERR_NOT_FOUND && check && !snap.uncertain &&
        fl_alive(&snap)) {
        FL_FAIL("LOST: %s not found at its removal, yet a replica lives", key);
    }
    if (st != MMC_OK && st != MMC_ERR_NOT_FOUND) {
        FL_FAIL("remove %s: %s", key, mmc_status_name(st));
    }
    fl_begin(r);
    FL_SET(r, state, FL_FREE);
    fl_end(r);
    return 0;
fail:
    return -1;
}

/* One put of the storm into the next record of the slot. */
static int fl_put_one(fl_child_t *c)
{
    uint32_t n = atomic_load(&fl->next[c->slot]);
    fl_rec_t *r = &fl->ring[c->slot][n % RING];
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    tk_rng_t rng;
    char key[64];
    mmc_status_t st;
    uint64_t start;
    int before[MMC_MAX_REPLICAS];

    if (r->state != FL_FREE && fl_remove(c, r) != 0) {
        return -1;
    }
    tk_rng_seed(&rng, fl_seed(c->slot, c->life, n));
    fl_begin(r);
    FL_SET(r, state, FL_PUTTING);
    FL_SET(r, life, c->life);
    FL_SET(r, n, n);
    FL_SET(r, size, (uint32_t)tk_rng_range(&rng, OBJ_MIN, OBJ_MAX));
    FL_SET(r, seed, fl_seed(c->slot, c->life, n));
    FL_SET(r, nrep, 0);
    FL_SET(r, uncertain, 0);
    fl_end(r);
    atomic_store(&fl->next[c->slot], n + 1);
    fl_key(key, sizeof(key), c->slot, c->life, n);
    it_mmc_fill(c->buf, r->size, r->seed);
    start = tk_time_ms();
    st = mmc_put(c->mmc, key, c->buf, r->size, NULL);
    if (!fl_timed(start, CALL_MS, "put", key)) {
        FL_FAIL("put hangs");
    }
    if (st != MMC_OK) {
        if (!mf_status_is_peer_error(st) && st != MMC_ERR_ABORTED &&
            st != MMC_ERR_NO_SPACE) {
            FL_FAIL("put %s: %s", key, mmc_status_name(st));
        }
        atomic_fetch_add(&fl->puts_failed, 1);
        /* a failed put leaves nothing readable */
        st = mmc_exist(c->mmc, key);
        if (st != MMC_ERR_NOT_FOUND) {
            FL_FAIL("put %s failed, yet exist says %s", key,
                    mmc_status_name(st));
        }
        fl_begin(r);
        FL_SET(r, state, FL_FREE);
        fl_end(r);
        return 0;
    }
    atomic_fetch_add(&fl->puts_ok, 1);
    /* whose processes hold the replicas: the lives of their ranks, read
     * before and after the query (a rank changing hands meanwhile leaves
     * the record uncertain) */
    for (int k = 0; k < MMC_MAX_REPLICAS; k++) {
        before[k] = -1;
    }
    mmc_obj_info_init(&info, 1);
    start = tk_time_ms();
    st = mmc_query(c->mmc, key, &info);
    if (!fl_timed(start, CALL_MS, "query", key)) {
        FL_FAIL("query hangs");
    }
    if (st != MMC_OK) {
        FL_FAIL("LOST: %s committed, then query says %s", key,
                mmc_status_name(st));
    }
    fl_begin(r);
    FL_SET(r, nrep, info.nreplicas);
    for (uint32_t k = 0; k < info.nreplicas && k < MMC_MAX_REPLICAS; k++) {
        int life = info.ranks[k] < MAX_RANKS
                       ? atomic_load(&fl->rank_life[info.ranks[k]])
                       : -1;

        before[k] = life;
        FL_SET(r, rlife[k], life > 0 ? (uint32_t)life : 0);
        if (info.ranks[k] == mmc_rank(c->mmc)) {
            atomic_store(&fl->landed[c->slot], (int)c->life);
        }
    }
    for (uint32_t k = 0; k < info.nreplicas && k < MMC_MAX_REPLICAS; k++) {
        if (before[k] <= 0 ||
            atomic_load(&fl->rank_life[info.ranks[k]]) != before[k]) {
            FL_SET(r, uncertain, 1);
        }
    }
    FL_SET(r, state, FL_LIVE);
    fl_end(r);
    return 0;
fail:
    return -1;
}

/* When the parent is about to kill this life and copies must not be in
 * flight then (it_ucx_sw_rma): stops the calling thread's copies for
 * good. */
static void fl_hold(const fl_child_t *c)
{
    if (atomic_load(&fl->hold[c->slot]) != (int)c->life) {
        return;
    }
    atomic_fetch_add(&fl->held[c->slot], 1);
    while (!atomic_load(&fl->stop) && !atomic_load(&fl->failed)) {
        tk_sleep_ms(5);
    }
}

static void *fl_writer(void *arg)
{
    fl_child_t *c = arg;

    while (!atomic_load(&fl->stop) && !atomic_load(&fl->failed)) {
        fl_hold(c);
        if (fl_put_one(c) != 0) {
            break;
        }
    }
    return NULL;
}

static void *fl_reader(void *arg)
{
    fl_child_t *c = arg;
    fl_child_t rc = *c;
    tk_rng_t rng;

    rc.buf = malloc(OBJ_MAX);
    if (rc.buf == NULL) {
        atomic_store(&fl->failed, 1);
        return NULL;
    }
    tk_rng_seed(&rng, 1000 + c->life);
    while (!atomic_load(&fl->stop) && !atomic_load(&fl->failed)) {
        int slot = (int)tk_rng_range(&rng, 0, SLOTS - 1);
        fl_rec_t *r = &fl->ring[slot][tk_rng_range(&rng, 0, RING - 1)];
        fl_rec_t snap;

        fl_hold(&rc);
        if (!fl_snap(r, &snap) || snap.state != FL_LIVE) {
            tk_sleep_ms(1);
            continue;
        }
        if (fl_check(&rc, r, &snap, slot, 1) != 0) {
            break;
        }
    }
    free(rc.buf);
    return NULL;
}

/* Every object that still has a replica on a live process: exact bytes. */
static int fl_verify_all(fl_child_t *c)
{
    for (int slot = 0; slot < SLOTS; slot++) {
        for (int i = 0; i < RING; i++) {
            fl_rec_t *r = &fl->ring[slot][i];
            fl_rec_t snap;

            if (!fl_snap(r, &snap) || snap.state != FL_LIVE) {
                continue;
            }
            if (fl_check(c, r, &snap, slot, 20) != 0) {
                return -1;
            }
            atomic_fetch_add(&fl->verified, 1);
        }
    }
    return 0;
}

/* A new life of a slot takes over the records its predecessor left. */
static int fl_adopt(fl_child_t *c)
{
    for (int i = 0; i < RING; i++) {
        fl_rec_t *r = &fl->ring[c->slot][i];

        if (atomic_load(&r->seq) & 1) {
            atomic_fetch_add(&r->seq, 1); /* died in the middle */
        }
        if ((r->state == FL_PUTTING || r->state == FL_REMOVING) &&
            fl_remove(c, r) != 0) {
            return -1;
        }
    }
    return 0;
}

static int fl_child_main(int slot, void *arg)
{
    const char *const kv[] = {
        "timeout_ms", "10s", "connect_timeout_ms",    "20s",
        "replicas",   "2",   "fabric.tcp.timeout_ms", "3s",
        NULL};
    fl_child_t c = {.slot = slot};
    char *verify_buf = NULL;
    pthread_t wt, rt;
    bool threads = false;
    uint64_t start;
    int ret = 1, done = 0;

    c.life = (uint32_t)atomic_load(&fl->slot_life[slot]);
    tk_role_set("host %d slot %d life %u", HOST_OF(slot), slot, c.life);
    c.buf = malloc(OBJ_MAX);
    verify_buf = malloc(OBJ_MAX);
    if (c.buf == NULL || verify_buf == NULL) {
        FL_FAIL("malloc");
    }
    start = tk_time_ms();
    if (it_mmc_open_kv(SEG_SIZE, NULL, kv, &c.mmc) != MMC_OK) {
        FL_FAIL("cannot open");
    }
    if (!fl_timed(start, CONNECT_MS, "mmc_create", "")) {
        FL_FAIL("mmc_create hangs");
    }
    if (mmc_rank(c.mmc) >= MAX_RANKS) {
        FL_FAIL("rank %u", mmc_rank(c.mmc));
    }
    atomic_store(&fl->rank_life[mmc_rank(c.mmc)], (int)c.life);
    atomic_store(&fl->life_rank[c.life], (int)mmc_rank(c.mmc));
    if (fl_adopt(&c) != 0) {
        goto fail;
    }
    atomic_store(&fl->ready[slot], (int)c.life);

    if (pthread_create(&wt, NULL, fl_writer, &c) != 0) {
        FL_FAIL("thread");
    }
    if (pthread_create(&rt, NULL, fl_reader, &c) != 0) {
        atomic_store(&fl->stop, 1);
        pthread_join(wt, NULL);
        FL_FAIL("thread");
    }
    threads = true;
    /* verify when asked, until the storm ends */
    while (!atomic_load(&fl->stop) && !atomic_load(&fl->failed)) {
        int req = atomic_load(&fl->verify_req);

        if (req > done && atomic_load(&fl->verifier) == slot) {
            fl_child_t vc = c; /* a buffer of its own: the writer fills
                                  c.buf */

            vc.buf = verify_buf;
            if (fl_verify_all(&vc) != 0) {
                break;
            }
            done = req;
            atomic_store(&fl->verify_done, req);
        }
        tk_sleep_ms(5);
    }
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);
    threads = false;
    if (atomic_load(&fl->failed)) {
        goto fail;
    }
    /* the end: remove everything of this slot */
    for (int i = 0; i < RING; i++) {
        if (fl->ring[slot][i].state != FL_FREE &&
            fl_remove(&c, &fl->ring[slot][i]) != 0) {
            goto fail;
        }
    }
    atomic_fetch_add(&fl->cleaned, 1);
    while (!atomic_load(&fl->exit_now) && !atomic_load(&fl->failed)) {
        tk_sleep_ms(5);
    }
    ret = atomic_load(&fl->failed) ? 1 : 0;
fail:
    if (threads) {
        atomic_store(&fl->stop, 1);
        pthread_join(wt, NULL);
        pthread_join(rt, NULL);
    }
    if (ret != 0) {
        atomic_store(&fl->failed, 1);
    }
    mmc_destroy(c.mmc);
    free(c.buf);
    free(verify_buf);
    return ret;
}

/* ------------------------------------------------------------ parent */

/* Waits until cond holds, a child failed or the guard passes. */
#define FL_WAIT(_cond, ...)                                                    \
    do {                                                                       \
        uint64_t _deadline = tk_time_ms() + GUARD_MS;                          \
        while (!(_cond)) {                                                     \
            if (atomic_load(&fl->failed)) {                                    \
                tk_print("parent: a child failed");                            \
                goto fail;                                                     \
            }                                                                  \
            if (tk_time_ms() > _deadline) {                                    \
                tk_print(__VA_ARGS__);                                         \
                goto fail;                                                     \
            }                                                                  \
            tk_sleep_ms(2);                                                    \
        }                                                                      \
    } while (0)

static int fl_shared_init(void)
{
    void *p = mmap(NULL, sizeof(fl_shared_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return -1;
    }
    fl = p;
    return 0;
}

static pid_t fl_start_slot(int slot, int life)
{
    atomic_store(&fl->slot_life[slot], life);
    return tk_netns_spawn(&fl_net, HOST_OF(slot), fl_child_main, slot, NULL);
}

/* Whether /segments lists rank. */
static int fl_rank_listed(uint32_t rank)
{
    it_mmc_seg_t segs[MAX_RANKS];
    int n = it_mmc_segments(&fl_net, 0, &it_mmc_sh->meta, segs, MAX_RANKS);

    for (int i = 0; i < n; i++) {
        if (segs[i].rank == rank) {
            return 1;
        }
    }
    return n < 0 ? -1 : 0;
}

/* Whether every listed segment is empty (n_p: how many are listed). */
static bool fl_all_empty(int *n_p)
{
    it_mmc_seg_t segs[MAX_RANKS];
    int n = it_mmc_segments(&fl_net, 0, &it_mmc_sh->meta, segs, MAX_RANKS);

    *n_p = n;
    for (int i = 0; i < n; i++) {
        if (segs[i].used != 0 || segs[i].replicas != 0) {
            return false;
        }
    }
    return n >= 0;
}

static void fl_log_counts(const char *when, uint64_t start)
{
    tk_print("parent: %s after %llu ms: puts %llu ok %llu failed; gets %llu "
             "exact, %llu not found (%llu with no live replica), %llu failed "
             "over; %llu verified; longest call %llu ms",
             when, (unsigned long long)(tk_time_ms() - start),
             atomic_load(&fl->puts_ok), atomic_load(&fl->puts_failed),
             atomic_load(&fl->gets_ok), atomic_load(&fl->gets_missing),
             atomic_load(&fl->losses_legit), atomic_load(&fl->gets_failed),
             atomic_load(&fl->verified), atomic_load(&fl->max_call_ms));
}

static void test_kill_loop(void **state)
{
    const char *extra[] = {"max_ranks=16",           "max_segment_size=32M",
                           "lease_ms=10s",           "put_timeout_ms=10s",
                           "member_timeout_ms=5000", "evict_high_pct=100",
                           "evict_max_per_put=0",    NULL};
    pid_t pids[SLOTS];
    int life = 0, ok = 0, n, code;
    uint64_t start = tk_time_ms();
    tk_rng_t rng;

    memset(fl, 0, sizeof(*fl));
    for (int i = 0; i < SLOTS; i++) {
        pids[i] = -1;
    }
    assert_int_equal(
        it_mmc_meta_start(&it_mmc_sh->meta, &fl_net, 0, fl_net.addr[0], extra),
        0);
    tk_rng_seed(&rng, (uint64_t)getpid());
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = fl_start_slot(s, ++life);
        if (pids[s] < 0) {
            goto fail;
        }
    }
    for (int s = 0; s < SLOTS; s++) {
        FL_WAIT(atomic_load(&fl->ready[s]) == atomic_load(&fl->slot_life[s]),
                "parent: slot %d never started", s);
    }
    for (int round = 1; round <= ROUNDS; round++) {
        int victim = (int)tk_rng_range(&rng, 0, SLOTS - 1);
        int dead = atomic_load(&fl->slot_life[victim]);
        int rank;
        uint64_t until = tk_time_ms() + tk_rng_range(&rng, 200, 500);

        FL_WAIT(tk_time_ms() >= until, "parent: cannot wait");
        tk_print("parent: round %d: killing slot %d (life %d, rank %d)", round,
                 victim, dead, atomic_load(&fl->life_rank[dead]));
        if (it_ucx_sw_rma()) {
            /* no copy of the victim in flight when it dies */
            atomic_store(&fl->held[victim], 0);
            atomic_store(&fl->hold[victim], dead);
            FL_WAIT(atomic_load(&fl->held[victim]) == 2,
                    "parent: slot %d never stopped copying", victim);
        }
        /* dead before it dies: a reader that misses an object of it then
         * knows why */
        atomic_store(&fl->life_dead[dead], 1);
        kill(pids[victim], SIGKILL);
        code = tk_proc_wait(pids[victim], GUARD_MS);
        pids[victim] = -1;
        if (code != 128 + SIGKILL) {
            tk_print("parent: slot %d ended with %d, not by the kill", victim,
                     code);
            goto fail;
        }
        until = tk_time_ms() + 200;
        FL_WAIT(tk_time_ms() >= until, "parent: cannot wait");
        /* a survivor reads every object with a live replica */
        atomic_store(&fl->verifier, (victim + 1) % SLOTS);
        atomic_store(&fl->verify_req, round);
        FL_WAIT(atomic_load(&fl->verify_done) == round,
                "parent: round %d: verification never ended", round);
        /* the killed one again, as a new process */
        pids[victim] = fl_start_slot(victim, ++life);
        if (pids[victim] < 0) {
            goto fail;
        }
        FL_WAIT(atomic_load(&fl->ready[victim]) == life &&
                    atomic_load(&fl->landed[victim]) == life,
                "parent: round %d: slot %d (life %d) never rejoined", round,
                victim, life);
        rank = atomic_load(&fl->life_rank[life]);
        if (fl_rank_listed((uint32_t)rank) != 1) {
            tk_print("parent: rank %d of the new life %d is not registered",
                     rank, life);
            goto fail;
        }
        tk_print("parent: round %d: slot %d killed (life %d), back as life %d "
                 "on rank %d",
                 round, victim, dead, life, rank);
    }
    fl_log_counts("storm over", start);
    atomic_store(&fl->stop, 1);
    FL_WAIT(atomic_load(&fl->cleaned) == SLOTS,
            "parent: the clients never cleaned up");
    /* no leak: every segment empty once everything is removed */
    FL_WAIT(fl_all_empty(&n), "parent: segments still hold bytes");
    if (n != SLOTS) {
        tk_print("parent: %d segments listed, expected %d", n, SLOTS);
        goto fail;
    }
    atomic_store(&fl->exit_now, 1);
    ok = 1;
fail:
    if (!ok) {
        atomic_store(&fl->failed, 1);
    }
    atomic_store(&fl->stop, 1);
    for (int s = 0; s < SLOTS; s++) {
        if (pids[s] > 0 && tk_proc_wait(pids[s], GUARD_MS) != 0) {
            tk_print("parent: slot %d failed", s);
            ok = 0;
        }
    }
    fl_log_counts("end", start);
    if (tk_meta_stop(&it_mmc_sh->meta, SIGTERM) != 0) {
        tk_print("parent: mmc-meta did not exit cleanly");
        ok = 0;
    }
    assert_int_equal(ok, 1);
}

/* ------------------------------------------------- a host vanishes */

#define VN_CLIENTS  4
#define VN_VICTIM   2 /* alone on host 2 */
#define VN_OBJS     6
#define VN_TIMEOUT  1500 /* member_timeout_ms */
#define VN_DETECT   (VN_TIMEOUT + 3000)
#define VN_HOST(_i) ((_i) == VN_VICTIM ? 2 : (_i) % 2)

/* Keys v<replicas>.<client>.<k>; their replica ranks go to the shared
 * page: vn_ranks[client][replicas - 1][k][r] (+1, 0 = none). */
typedef struct vn_shared {
    atomic_int ranks[VN_CLIENTS][2][VN_OBJS][2];
    atomic_int client_rank[VN_CLIENTS];
    atomic_int phase; /* 1: readers run, 2: readers stop, 3: verify */
    atomic_int verified;
    atomic_int removed;
    atomic_int exit_now;
} vn_shared_t;

static vn_shared_t *vn;

static uint64_t vn_size(int client, int reps, int k)
{
    return 64 * KB + (uint64_t)(client * 37 + reps * 11 + k) * 1031;
}

static uint64_t vn_seed(int client, int reps, int k)
{
    return 0x7600000000ull | (uint64_t)(client << 16) | (uint64_t)(reps << 8) |
           (uint64_t)k;
}

static bool vn_victim_rank(int rank1)
{
    return rank1 - 1 == atomic_load(&vn->client_rank[VN_VICTIM]);
}

/* Whether object (client, reps, k) had a replica off the victim. */
static bool vn_survives(int client, int reps, int k)
{
    for (int r = 0; r < reps; r++) {
        int rank1 = atomic_load(&vn->ranks[client][reps - 1][k][r]);

        if (rank1 > 0 && !vn_victim_rank(rank1)) {
            return true;
        }
    }
    return false;
}

typedef struct vn_reader {
    mmc_t *mmc;
    int index;
    int ret;
} vn_reader_t;

static void *vn_reader_fn(void *arg)
{
    vn_reader_t *rd = arg;
    char key[64], *buf = malloc(OBJ_MAX);
    tk_rng_t rng;
    uint64_t start;

    rd->ret = 1;
    if (buf == NULL) {
        return NULL;
    }
    tk_rng_seed(&rng, 99 + (uint64_t)rd->index);
    while (atomic_load(&vn->phase) == 1) {
        int client = (int)tk_rng_range(&rng, 0, VN_CLIENTS - 1);
        int reps = (int)tk_rng_range(&rng, 1, 2);
        int k = (int)tk_rng_range(&rng, 0, VN_OBJS - 1);
        uint64_t size = vn_size(client, reps, k);
        mmc_status_t st;

        snprintf(key, sizeof(key), "v%d.%d.%d", reps, client, k);
        start = tk_time_ms();
        st = mmc_get(rd->mmc, key, buf, size);
        TK_CHECK_GOTO(fl_timed(start, CALL_MS, "get", key), "get hangs");
        if (st == MMC_OK) {
            TK_CHECK_GOTO(it_mmc_seed_of(buf, size) == vn_seed(client, reps, k),
                          "WRONG BYTES: %s", key);
            continue;
        }
        TK_CHECK_GOTO(st == MMC_ERR_NOT_FOUND || fl_get_transient(st),
                      "get %s: %s", key, mmc_status_name(st));
        TK_CHECK_GOTO(st != MMC_ERR_NOT_FOUND || !vn_survives(client, reps, k),
                      "LOST: %s not found, yet a replica lives", key);
    }
    rd->ret = 0;
fail:
    free(buf);
    return NULL;
}

static int vn_child(int index, void *arg)
{
    const char *const kv[] = {"timeout_ms", "10s", "fabric.tcp.timeout_ms",
                              "3s", NULL};
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    mmc_t *mmc = NULL;
    vn_reader_t rd = {.index = index};
    pthread_t rt;
    bool reader = false;
    char key[64], *buf = malloc(OBJ_MAX);
    int ret = 1;
    uint64_t start;

    tk_role_set("host %d client %d", VN_HOST(index), index);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    IT_MMC_ST(it_mmc_open_kv(SEG_SIZE, NULL, kv, &mmc), MMC_OK);
    atomic_store(&vn->client_rank[index], (int)mmc_rank(mmc));
    TK_CHECK_GOTO(it_mmc_barrier(0, VN_CLIENTS) == 0, "barrier 0");
    for (int reps = 1; reps <= 2; reps++) {
        mmc_put_opts_t opts = {.size = sizeof(mmc_put_opts_t),
                               .replicas = (uint32_t)reps};

        for (int k = 0; k < VN_OBJS; k++) {
            uint64_t size = vn_size(index, reps, k);

            snprintf(key, sizeof(key), "v%d.%d.%d", reps, index, k);
            it_mmc_fill(buf, size, vn_seed(index, reps, k));
            IT_MMC_ST(mmc_put(mmc, key, buf, size, &opts), MMC_OK);
            IT_MMC_ST(mmc_query(mmc, key, &info), MMC_OK);
            TK_CHECK_GOTO(info.nreplicas == (uint32_t)reps, "%u replicas",
                          info.nreplicas);
            for (int r = 0; r < reps; r++) {
                atomic_store(&vn->ranks[index][reps - 1][k][r],
                             (int)info.ranks[r] + 1);
            }
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, VN_CLIENTS + 1) == 0, "barrier 1");
    if (index == VN_VICTIM) {
        for (;;) { /* idles (pings) until its host vanishes and it dies */
            tk_sleep_ms(100);
        }
    }
    rd.mmc = mmc;
    TK_CHECK_GOTO(pthread_create(&rt, NULL, vn_reader_fn, &rd) == 0, "thread");
    reader = true;
    while (atomic_load(&vn->phase) < 2) {
        tk_sleep_ms(5);
    }
    pthread_join(rt, NULL);
    reader = false;
    TK_CHECK_GOTO(rd.ret == 0, "reader failed");
    while (atomic_load(&vn->phase) < 3) {
        tk_sleep_ms(5);
    }
    if (index == 0) {
        /* every object: exact bytes if a replica survived, else gone */
        for (int c = 0; c < VN_CLIENTS; c++) {
            for (int reps = 1; reps <= 2; reps++) {
                for (int k = 0; k < VN_OBJS; k++) {
                    uint64_t size = vn_size(c, reps, k);
                    mmc_status_t st;

                    snprintf(key, sizeof(key), "v%d.%d.%d", reps, c, k);
                    start = tk_time_ms();
                    st = mmc_get(mmc, key, buf, size);
                    TK_CHECK_GOTO(fl_timed(start, CALL_MS, "get", key), "hang");
                    if (vn_survives(c, reps, k)) {
                        IT_MMC_ST(st, MMC_OK);
                        TK_CHECK_GOTO(it_mmc_seed_of(buf, size) ==
                                          vn_seed(c, reps, k),
                                      "WRONG BYTES: %s", key);
                    } else {
                        IT_MMC_ST(st, MMC_ERR_NOT_FOUND);
                    }
                }
            }
        }
        atomic_store(&vn->verified, 1);
    }
    /* after the parent compared the segments with the live replicas:
     * remove what is left (the victim's two-replica objects: client 0) */
    while (!atomic_load(&vn->removed)) {
        tk_sleep_ms(5);
    }
    if (atomic_load(&vn->removed) != 1) {
        goto fail; /* the parent gave up */
    }
    for (int c = 0; c < VN_CLIENTS; c++) {
        if (c != index && !(index == 0 && c == VN_VICTIM)) {
            continue;
        }
        for (int reps = 1; reps <= 2; reps++) {
            for (int k = 0; k < VN_OBJS; k++) {
                mmc_status_t st;

                snprintf(key, sizeof(key), "v%d.%d.%d", reps, c, k);
                st = mmc_remove(mmc, key);
                TK_CHECK_GOTO(
                    st ==
                        (vn_survives(c, reps, k) ? MMC_OK : MMC_ERR_NOT_FOUND),
                    "remove %s: %s", key, mmc_status_name(st));
            }
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(2, VN_CLIENTS - 1) == 0, "barrier 2");
    while (!atomic_load(&vn->exit_now)) {
        tk_sleep_ms(5);
    }
    ret = 0;
fail:
    if (reader) {
        atomic_store(&vn->phase, 2);
        pthread_join(rt, NULL);
    }
    free(buf);
    mmc_destroy(mmc);
    return ret;
}

static void test_vanish(void **state)
{
    char timeout[48];
    const char *extra[] = {"max_ranks=16", "max_segment_size=32M",
                           "lease_ms=10s", timeout, NULL};
    char *const down[] = {"ip",  "-n",          fl_net.host[2], "link", "set",
                          "dev", fl_net.dev[2], "down",         NULL};
    it_mmc_seg_t segs[MAX_RANKS];
    uint64_t expect[MAX_RANKS], t0, detected = 0;
    pid_t pids[VN_CLIENTS];
    int ok = 0, n, victim_rank, code;
    void *p;

    snprintf(timeout, sizeof(timeout), "member_timeout_ms=%u", VN_TIMEOUT);
    p = mmap(NULL, sizeof(vn_shared_t), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    vn = p;
    it_mmc_shared_reset();
    assert_int_equal(
        it_mmc_meta_start(&it_mmc_sh->meta, &fl_net, 0, fl_net.addr[0], extra),
        0);
    for (int i = 0; i < VN_CLIENTS; i++) {
        pids[i] = tk_netns_spawn(&fl_net, VN_HOST(i), vn_child, i, NULL);
        assert_true(pids[i] > 0);
    }
    if (it_mmc_barrier(1, VN_CLIENTS + 1) != 0) {
        goto out;
    }
    victim_rank = atomic_load(&vn->client_rank[VN_VICTIM]);
    atomic_store(&vn->phase, 1);
    tk_sleep_ms(300); /* the readers are at it */

    /* the victim's host vanishes, then the victim crashes: no FIN */
    t0 = tk_time_ms();
    if (tk_netns_run(&fl_net, -1, down, NULL, 0, 10000) != 0) {
        tk_print("parent: cannot bring the victim's link down");
        goto out;
    }
    kill(pids[VN_VICTIM], SIGKILL);
    code = tk_proc_wait(pids[VN_VICTIM], GUARD_MS);
    pids[VN_VICTIM] = -1;
    if (code != 128 + SIGKILL) {
        tk_print("parent: the victim ended with %d", code);
        goto out;
    }
    /* the heartbeat finds it: its segment goes */
    while (fl_rank_listed((uint32_t)victim_rank) != 0) {
        if (tk_time_ms() - t0 > GUARD_MS) {
            tk_print("parent: the lost member was never dropped");
            goto out;
        }
        tk_sleep_ms(20);
    }
    detected = tk_time_ms() - t0;
    tk_print("parent: the vanished member was dropped after %llu ms "
             "(member_timeout_ms %u)",
             (unsigned long long)detected, VN_TIMEOUT);
    if (detected > VN_DETECT) {
        tk_print("parent: dropped later than member_timeout_ms + %u ms",
                 VN_DETECT - VN_TIMEOUT);
        goto out;
    }
    /* the readers keep going a little over the changed pool */
    tk_sleep_ms(300);
    atomic_store(&vn->phase, 2);
    tk_sleep_ms(50);
    atomic_store(&vn->phase, 3);
    {
        uint64_t deadline = tk_time_ms() + GUARD_MS;

        while (!atomic_load(&vn->verified)) {
            if (tk_time_ms() > deadline) {
                tk_print("parent: verification never ended");
                goto out;
            }
            tk_sleep_ms(5);
        }
    }
    /* no leak: each live segment holds exactly its live replicas */
    memset(expect, 0, sizeof(expect));
    for (int c = 0; c < VN_CLIENTS; c++) {
        for (int reps = 1; reps <= 2; reps++) {
            for (int k = 0; k < VN_OBJS; k++) {
                uint64_t size = vn_size(c, reps, k);

                for (int r = 0; r < reps; r++) {
                    int rank1 = atomic_load(&vn->ranks[c][reps - 1][k][r]);

                    if (rank1 > 0 && rank1 <= MAX_RANKS &&
                        !vn_victim_rank(rank1)) {
                        expect[rank1 - 1] += (size + ALIGN - 1) / ALIGN * ALIGN;
                    }
                }
            }
        }
    }
    n = it_mmc_segments(&fl_net, 0, &it_mmc_sh->meta, segs, MAX_RANKS);
    if (n != VN_CLIENTS - 1) {
        tk_print("parent: %d segments, expected %d", n, VN_CLIENTS - 1);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (segs[i].rank >= MAX_RANKS || segs[i].used != expect[segs[i].rank]) {
            tk_print("parent: rank %u holds %llu bytes, its live replicas need "
                     "%llu",
                     segs[i].rank, (unsigned long long)segs[i].used,
                     (unsigned long long)expect[segs[i].rank]);
            goto out;
        }
    }
    atomic_store(&vn->removed, 1);
    {
        uint64_t deadline = tk_time_ms() + GUARD_MS;
        bool empty = false;

        while (atomic_load(&it_mmc_sh->bar[2]) < VN_CLIENTS - 1 &&
               tk_time_ms() < deadline) {
            tk_sleep_ms(5);
        }
        while (!empty && tk_time_ms() < deadline) {
            empty = fl_all_empty(&n);
            tk_sleep_ms(20);
        }
        if (!empty) {
            tk_print("parent: segments still hold bytes after every remove");
            goto out;
        }
    }
    ok = 1;
out:
    atomic_store(&it_mmc_sh->bar[2], VN_CLIENTS);
    atomic_store(&vn->phase, 3);
    atomic_store(&vn->verified, 1);
    atomic_store(&vn->removed, 2);
    atomic_store(&vn->exit_now, 1);
    for (int i = 0; i < VN_CLIENTS; i++) {
        if (pids[i] > 0 && tk_proc_wait(pids[i], GUARD_MS) != 0) {
            tk_print("parent: client %d failed", i);
            ok = 0;
        }
    }
    tk_print("parent: longest call %llu ms",
             (unsigned long long)atomic_load(&fl->max_call_ms));
    if (tk_meta_stop(&it_mmc_sh->meta, SIGTERM) != 0) {
        tk_print("parent: mmc-meta did not exit cleanly");
        ok = 0;
    }
    munmap(vn, sizeof(*vn));
    assert_int_equal(ok, 1);
}

/* ------------------------------------------- a host's network flaps */

#define PT_CLIENTS 3
#define PT_VICTIM  2 /* alone on host 2 */
#define PT_OBJS    4

typedef struct pt_shared {
    atomic_int rank[PT_CLIENTS];
    atomic_int phase; /* 1: partitioned, 2: healed, 3: victim checked */
    atomic_int done;  /* 1: the parent is done looking */
} pt_shared_t;

static pt_shared_t *pt;

static uint64_t pt_size(int client, int reps, int k)
{
    return 32 * KB + (uint64_t)(client * 13 + reps * 7 + k) * 2053;
}

static uint64_t pt_seed(int client, int reps, int k)
{
    return 0x5000000000ull | (uint64_t)(client << 16) | (uint64_t)(reps << 8) |
           (uint64_t)k;
}

/* Waits until pt->phase reaches want (or the guard passes: false). */
static bool pt_wait_phase(int want)
{
    uint64_t deadline = tk_time_ms() + GUARD_MS;

    while (atomic_load(&pt->phase) < want) {
        if (tk_time_ms() > deadline) {
            return false;
        }
        tk_sleep_ms(5);
    }
    return true;
}

/* Gets key and checks it against (client, reps, k); want: MMC_OK (exact
 * bytes) or MMC_ERR_NOT_FOUND. */
static int pt_check(mmc_t *mmc, char *buf, int client, int reps, int k,
                    mmc_status_t want)
{
    uint64_t size = pt_size(client, reps, k), start;
    char key[64];
    mmc_status_t st;

    snprintf(key, sizeof(key), "p%d.%d.%d", reps, client, k);
    start = tk_time_ms();
    st = mmc_get(mmc, key, buf, size);
    TK_CHECK_GOTO(fl_timed(start, CALL_MS, "get", key), "get hangs");
    TK_CHECK_GOTO(st == want, "get %s: %s, expected %s", key,
                  mmc_status_name(st), mmc_status_name(want));
    TK_CHECK_GOTO(st != MMC_OK ||
                      it_mmc_seed_of(buf, size) == pt_seed(client, reps, k),
                  "WRONG BYTES: %s", key);
    return 0;
fail:
    return -1;
}

static int pt_child(int index, void *arg)
{
    const char *const kv[] = {"timeout_ms", "10s", "fabric.tcp.timeout_ms",
                              "3s", NULL};
    mmc_put_opts_t opts = {.size = sizeof(mmc_put_opts_t), .replicas = 1};
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    mmc_t *mmc = NULL;
    char key[64], *buf = malloc(OBJ_MAX);
    int ret = 1;

    tk_role_set("host %d client %d", index, index);
    TK_CHECK_GOTO(buf != NULL, "malloc");
    IT_MMC_ST(it_mmc_open_kv(SEG_SIZE, NULL, kv, &mmc), MMC_OK);
    atomic_store(&pt->rank[index], (int)mmc_rank(mmc));
    TK_CHECK_GOTO(it_mmc_barrier(0, PT_CLIENTS) == 0, "barrier 0");
    for (int reps = 1; reps <= 2; reps++) {
        opts.replicas = (uint32_t)reps;
        for (int k = 0; k < PT_OBJS; k++) {
            uint64_t size = pt_size(index, reps, k);

            snprintf(key, sizeof(key), "p%d.%d.%d", reps, index, k);
            it_mmc_fill(buf, size, pt_seed(index, reps, k));
            IT_MMC_ST(mmc_put(mmc, key, buf, size, &opts), MMC_OK);
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(1, PT_CLIENTS + 1) == 0, "barrier 1");
    TK_CHECK_GOTO(pt_wait_phase(2), "the network never healed");
    if (index == PT_VICTIM) {
        /* dropped and back: a put lands here again; what others hold is
         * read; what was held only here is gone */
        opts.replicas = 1;
        opts.npreferred = 1;
        opts.preferred[0] = mmc_rank(mmc);
        it_mmc_fill(buf, 100 * KB, 4711);
        IT_MMC_ST(mmc_put(mmc, "after", buf, 100 * KB, &opts), MMC_OK);
        IT_MMC_ST(mmc_query(mmc, "after", &info), MMC_OK);
        TK_CHECK_GOTO(info.nreplicas == 1 && info.ranks[0] == mmc_rank(mmc),
                      "the put after the rejoin went to rank %u",
                      info.ranks[0]);
        TK_CHECK_GOTO(pt_check(mmc, buf, 0, 2, 0, MMC_OK) == 0, "read");
        TK_CHECK_GOTO(pt_check(mmc, buf, PT_VICTIM, 1, 0, MMC_ERR_NOT_FOUND) ==
                          0,
                      "read");
        atomic_store(&pt->phase, 3);
    } else {
        TK_CHECK_GOTO(pt_wait_phase(3), "the victim never checked");
        memset(buf, 0, 100 * KB);
        IT_MMC_ST(mmc_get(mmc, "after", buf, 100 * KB), MMC_OK);
        TK_CHECK_GOTO(it_mmc_seed_of(buf, 100 * KB) == 4711,
                      "WRONG BYTES: after");
        for (int c = 0; c < PT_CLIENTS; c++) {
            for (int k = 0; k < PT_OBJS; k++) {
                TK_CHECK_GOTO(pt_check(mmc, buf, c, 2, k, MMC_OK) == 0, "read");
                TK_CHECK_GOTO(
                    pt_check(mmc, buf, c, 1, k,
                             c == PT_VICTIM ? MMC_ERR_NOT_FOUND : MMC_OK) == 0,
                    "read");
            }
        }
    }
    TK_CHECK_GOTO(it_mmc_barrier(2, PT_CLIENTS) == 0, "barrier 2");
    for (int reps = 1; reps <= 2; reps++) {
        for (int k = 0; k < PT_OBJS; k++) {
            mmc_status_t st;

            snprintf(key, sizeof(key), "p%d.%d.%d", reps, index, k);
            st = mmc_remove(mmc, key);
            TK_CHECK_GOTO(st == (reps == 1 && index == PT_VICTIM
                                     ? MMC_ERR_NOT_FOUND
                                     : MMC_OK),
                          "remove %s: %s", key, mmc_status_name(st));
        }
    }
    if (index == PT_VICTIM) {
        IT_MMC_ST(mmc_remove(mmc, "after"), MMC_OK);
    }
    TK_CHECK_GOTO(it_mmc_barrier(3, PT_CLIENTS + 1) == 0, "barrier 3");
    while (!atomic_load(&pt->done)) {
        tk_sleep_ms(5);
    }
    ret = 0;
fail:
    free(buf);
    mmc_destroy(mmc);
    return ret;
}

/*
 * A host's network goes away long enough for the meta service to drop its
 * local service (member_timeout_ms), then comes back; the process lived on
 * meanwhile.  It must find out, announce itself again (its rank listed,
 * puts landing on it), read what the others hold; what only it held is
 * gone, the rest readable; nothing leaks.
 */
static void test_partition(void **state)
{
    char timeout[48];
    const char *extra[] = {"max_ranks=16", "max_segment_size=32M", timeout,
                           NULL};
    char *const down[] = {"ip",  "-n",  fl_net.host[PT_VICTIM], "link",
                          "set", "dev", fl_net.dev[PT_VICTIM],  "down",
                          NULL};
    char *const up[] = {"ip",  "-n",  fl_net.host[PT_VICTIM], "link",
                        "set", "dev", fl_net.dev[PT_VICTIM],  "up",
                        NULL};
    pid_t pids[PT_CLIENTS];
    uint64_t t0;
    int ok = 0, n, rank;
    void *p;

    snprintf(timeout, sizeof(timeout), "member_timeout_ms=%u", VN_TIMEOUT);
    p = mmap(NULL, sizeof(pt_shared_t), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    pt = p;
    it_mmc_shared_reset();
    assert_int_equal(
        it_mmc_meta_start(&it_mmc_sh->meta, &fl_net, 0, fl_net.addr[0], extra),
        0);
    for (int i = 0; i < PT_CLIENTS; i++) {
        pids[i] = tk_netns_spawn(&fl_net, i, pt_child, i, NULL);
        assert_true(pids[i] > 0);
    }
    if (it_mmc_barrier(1, PT_CLIENTS + 1) != 0) {
        goto out;
    }
    rank = atomic_load(&pt->rank[PT_VICTIM]);
    t0 = tk_time_ms();
    if (tk_netns_run(&fl_net, -1, down, NULL, 0, 10000) != 0) {
        tk_print("parent: cannot bring the link down");
        goto out;
    }
    atomic_store(&pt->phase, 1);
    while (fl_rank_listed((uint32_t)rank) != 0) {
        if (tk_time_ms() - t0 > VN_DETECT) {
            tk_print("parent: the partitioned member was not dropped within "
                     "member_timeout_ms + %u ms",
                     VN_DETECT - VN_TIMEOUT);
            goto out;
        }
        tk_sleep_ms(20);
    }
    tk_print("parent: the partitioned member was dropped after %llu ms",
             (unsigned long long)(tk_time_ms() - t0));
    if (tk_netns_run(&fl_net, -1, up, NULL, 0, 10000) != 0) {
        tk_print("parent: cannot bring the link up");
        goto out;
    }
    t0 = tk_time_ms();
    while (fl_rank_listed((uint32_t)rank) != 1) {
        if (tk_time_ms() - t0 > GUARD_MS) {
            tk_print("parent: the member never registered again");
            goto out;
        }
        tk_sleep_ms(20);
    }
    tk_print("parent: registered again %llu ms after the network came back",
             (unsigned long long)(tk_time_ms() - t0));
    atomic_store(&pt->phase, 2);
    if (it_mmc_barrier(3, PT_CLIENTS + 1) != 0) {
        goto out;
    }
    if (!fl_all_empty(&n) || n != PT_CLIENTS) {
        tk_print("parent: %d segments listed, or some not empty", n);
        goto out;
    }
    ok = 1;
out:
    atomic_store(&pt->phase, 3);
    atomic_store(&pt->done, 1);
    (void)tk_netns_run(&fl_net, -1, up, NULL, 0, 10000);
    for (int i = 0; i < PT_CLIENTS; i++) {
        if (tk_proc_wait(pids[i], GUARD_MS) != 0) {
            tk_print("parent: client %d failed", i);
            ok = 0;
        }
    }
    if (tk_meta_stop(&it_mmc_sh->meta, SIGTERM) != 0) {
        tk_print("parent: mmc-meta did not exit cleanly");
        ok = 0;
    }
    munmap(pt, sizeof(*pt));
    assert_int_equal(ok, 1);
}

/* ---------------------------------------------------------------- main */

static int fl_setup(void **state)
{
    if (it_mmc_shared_init() != 0 || fl_shared_init() != 0 ||
        tk_netns_create(&fl_net, HOSTS) != 0) {
        return -1;
    }
    fl_have_net = true;
    return 0;
}

static int fl_teardown(void **state)
{
    if (fl_have_net) {
        tk_netns_destroy(&fl_net);
        fl_have_net = false;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_loop),
        cmocka_unit_test(test_partition),
        cmocka_unit_test(test_vanish),
    };

    tk_netns_require();
    return tk_group_run(tests, fl_setup, fl_teardown);
}
