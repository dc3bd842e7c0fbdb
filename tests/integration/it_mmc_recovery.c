/*
 * MemCache when the meta service dies: recovery from the holders' records,
 * across hosts (network namespaces, tk_netns.h; mmc-meta in host 0).
 *
 * test_meta_restart: four local services on three hosts storm puts (one
 * and two replicas) and gets.  Twenty times mmc-meta is killed with
 * SIGKILL in the middle of it and started again on the same ports, with
 * nothing of its state: the local services reconnect and re-register by
 * themselves, bring back their records, and the pool's config store is
 * rebuilt from their sessions.  After each restart every put that
 * returned OK, in this round or any earlier one, is read back exact (all
 * holders live, so nothing may be lost); a put that failed around the
 * kill is either absent or whole (its commit may have been recorded
 * before its reply was lost).  Recovery time (kill to the first
 * successful get) is printed, p50 and max.  At the end everything is
 * removed and no segment may hold a byte.
 *
 * test_repair: a local service puts objects with two replicas over four
 * local services on three hosts; one holder is killed (SIGKILL): the meta
 * service finds its objects below their count and has live holders copy
 * them again to other ranks (mmc_under_replicated goes back to 0); then a
 * second holder is killed, and every object is still read back exact:
 * without the copies, those whose two replicas sat on the two killed
 * ones would be lost.
 *
 * Invariants: every library call returns within its timeout plus a
 * slack (a hang fails the test); a get returns exactly the bytes put.
 *
 * Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped otherwise.
 */
#include "it_mmc.h"
#include "tk_etcd.h"
#include "tw_mmc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define KB             (1ull << 10)
#define MB             (1ull << 20)
#define HOSTS          3
#define SLOTS          4
#define HOST_OF(_s)    ((_s) % HOSTS)
#define ROUNDS         20
#define PER_SLOT       2048
#define OBJ_MIN        (4 * KB)
#define OBJ_MAX        (96 * KB)
#define SEG_SIZE       (64 * MB)
#define CALL_MS        5000  /* the clients' timeout_ms */
#define SLACK_MS       10000 /* what a call may take beyond its timeout */
#define GUARD_MS       60000 /* hang guard of every wait */
#define RC_MIN(_a, _b) ((_a) < (_b) ? (_a) : (_b))
#define FOUND_MS       20000 /* how long a get may miss while holders return */

enum { RC_FREE, RC_PUTTING, RC_OK, RC_FAILED, RC_GONE };
enum { PH_STORM, PH_VERIFY, PH_STOP };

typedef struct rc_obj {
    atomic_int state; /* RC_* */
    uint32_t size;
    uint64_t seed;
} rc_obj_t;

typedef struct rc_shared {
    rc_obj_t obj[SLOTS][PER_SLOT];
    atomic_int next[SLOTS];
    atomic_int ready[SLOTS];
    atomic_int verified[SLOTS]; /* the last round verified */
    atomic_int phase;
    atomic_int round;
    atomic_int failed;
    atomic_int cleaned;
    atomic_int exit_now;
    atomic_ullong kill_ms;      /* of the last kill */
    atomic_ullong dead_ms;      /* when the killed daemon was reaped */
    atomic_ullong recovered_ms; /* first successful get after it */
    atomic_ullong max_call_ms;
    atomic_ullong puts_ok, puts_failed, gets_ok, checked, lost, half;
    char meta_urls[256]; /* where the meta service may run */
    atomic_int rank[SLOTS];
} rc_shared_t;

static rc_shared_t *rc;
static tk_netns_t rc_net;
static bool rc_have_net;

#define RC_FAIL(...)                                                           \
    do {                                                                       \
        tk_print(__VA_ARGS__);                                                 \
        atomic_store(&rc->failed, 1);                                          \
        goto fail;                                                             \
    } while (0)

#define RC_WAIT(_cond, ...)                                                    \
    do {                                                                       \
        uint64_t _deadline = tk_time_ms() + GUARD_MS;                          \
        while (!(_cond)) {                                                     \
            if (atomic_load(&rc->failed)) {                                    \
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

static void rc_key(char *key, size_t len, int slot, int n)
{
    snprintf(key, len, "rc.%d.%d", slot, n);
}

/* Whether a call that started at start kept within its bound. */
static bool rc_timed(uint64_t start, const char *what, const char *key)
{
    uint64_t took = tk_time_ms() - start;
    unsigned long long max = atomic_load(&rc->max_call_ms);

    while (took > max &&
           !atomic_compare_exchange_weak(&rc->max_call_ms, &max, took)) {
    }
    if (took > CALL_MS + SLACK_MS) {
        tk_print("%s of %s took %llu ms: a hang", what, key,
                 (unsigned long long)took);
        return false;
    }
    return true;
}

/* One put; its record says how it ended. */
static int rc_put(mmc_t *mmc, int slot, char *buf, tk_rng_t *rng)
{
    int n = atomic_fetch_add(&rc->next[slot], 1);
    rc_obj_t *o = &rc->obj[slot][n];
    mmc_put_opts_t opts;
    mmc_status_t st;
    uint64_t start;
    char key[32];

    if (n >= PER_SLOT) {
        atomic_store(&rc->next[slot], PER_SLOT);
        tk_sleep_ms(5);
        return 0;
    }
    o->size = (uint32_t)tk_rng_range(rng, OBJ_MIN, OBJ_MAX);
    o->seed = ((uint64_t)slot << 40) | ((uint64_t)n << 8) | 0x5a;
    atomic_store(&o->state, RC_PUTTING);
    rc_key(key, sizeof(key), slot, n);
    it_mmc_fill(buf, o->size, o->seed);
    mmc_put_opts_init(&opts);
    opts.replicas = 1 + (uint32_t)(n % 2);
    start = tk_time_ms();
    st = mmc_put(mmc, key, buf, o->size, &opts);
    if (!rc_timed(start, "put", key)) {
        return -1;
    }
    atomic_store(&o->state, st == MMC_OK ? RC_OK : RC_FAILED);
    atomic_fetch_add(st == MMC_OK ? &rc->puts_ok : &rc->puts_failed, 1);
    if (st != MMC_OK) {
        tk_sleep_ms(10); /* the meta service is away: do not spin */
    }
    return 0;
}

/* Reads object n of slot: 1 exact, 0 absent, -1 wrong bytes or a hang.
 * A put that returned OK is waited for while holders come back. */
static int rc_check(mmc_t *mmc, int slot, int n, char *buf)
{
    rc_obj_t *o = &rc->obj[slot][n];
    int state = atomic_load(&o->state);
    uint64_t deadline = tk_time_ms() + FOUND_MS, start;
    mmc_status_t st;
    char key[32];

    rc_key(key, sizeof(key), slot, n);
    for (;;) {
        start = tk_time_ms();
        st = mmc_get(mmc, key, buf, o->size);
        if (!rc_timed(start, "get", key)) {
            return -1;
        }
        if (st == MMC_OK) {
            if (it_mmc_seed_of(buf, o->size) != o->seed) {
                tk_print("get of %s (%s put) returned other bytes", key,
                         state == RC_OK ? "an OK" : "a failed");
                return -1;
            }
            return 1;
        }
        if (state != RC_OK || tk_time_ms() > deadline) {
            if (state == RC_OK) {
                tk_print("get of %s, put OK: %s for %u ms", key,
                         mmc_status_name(st), FOUND_MS);
            }
            return 0;
        }
        tk_sleep_ms(20);
    }
}

/* A get of some object put OK, to see when the pool serves again. */
static int rc_probe(mmc_t *mmc, int slot, char *buf, tk_rng_t *rng)
{
    int count = atomic_load(&rc->next[slot]), n;
    unsigned long long zero = 0;
    uint64_t dead_ms, start;
    rc_obj_t *o;
    char key[32];

    if (count == 0) {
        return 0;
    }
    n = (int)tk_rng_range(rng, 0, (uint64_t)RC_MIN(count, PER_SLOT) - 1);
    o = &rc->obj[slot][n];
    if (atomic_load(&o->state) != RC_OK) {
        return 0;
    }
    rc_key(key, sizeof(key), slot, n);
    start = tk_time_ms();
    if (mmc_get(mmc, key, buf, o->size) != MMC_OK) {
        return rc_timed(start, "get", key) ? 0 : -1;
    }
    if (!rc_timed(start, "get", key)) {
        return -1;
    }
    if (it_mmc_seed_of(buf, o->size) != o->seed) {
        tk_print("get of %s returned other bytes", key);
        return -1;
    }
    atomic_fetch_add(&rc->gets_ok, 1);
    /* served by the new daemon: the old one was gone before it started
     * (read now: the round may have moved on during the get) */
    dead_ms = atomic_load(&rc->dead_ms);
    if (dead_ms != 0 && start > dead_ms) {
        (void)atomic_compare_exchange_strong(&rc->recovered_ms, &zero,
                                             tk_time_ms());
    }
    return 0;
}

/* Every object of the slot: OK puts exact, failed ones absent or whole. */
static int rc_verify(mmc_t *mmc, int slot, char *buf)
{
    int count = RC_MIN(atomic_load(&rc->next[slot]), PER_SLOT);

    for (int n = 0; n < count; n++) {
        int state = atomic_load(&rc->obj[slot][n].state), r;

        if (state != RC_OK && state != RC_FAILED) {
            continue;
        }
        r = rc_check(mmc, slot, n, buf);
        if (r < 0) {
            return -1;
        }
        if (state == RC_OK) {
            atomic_fetch_add(&rc->checked, 1);
            if (r == 0) {
                atomic_fetch_add(&rc->lost, 1);
            }
        } else if (r == 1) {
            atomic_fetch_add(&rc->half, 1); /* committed, reply lost */
        }
    }
    return 0;
}

static int rc_child(int slot, void *arg)
{
    const char *const kv[] = {"timeout_ms", "5s",       "connect_timeout_ms",
                              "2s",         "meta_url", rc->meta_urls,
                              NULL};
    char *buf = malloc(OBJ_MAX);
    mmc_t *mmc = NULL;
    tk_rng_t rng;
    char key[32];
    int ret = 1, round;

    tk_role_set("host %d slot %d", HOST_OF(slot), slot);
    /* thousands of calls fail while the meta service is away: counted
     * here, not logged */
    mmc_log_set_level(getenv("RC_DEBUG") != NULL ? MF_LOG_INFO : MF_LOG_OFF);
    tk_rng_seed(&rng, (uint64_t)slot * 7919u + 1);
    if (buf == NULL || it_mmc_open_kv(SEG_SIZE, NULL, kv, &mmc) != MMC_OK) {
        RC_FAIL("cannot open");
    }
    atomic_store(&rc->ready[slot], 1);
    while (atomic_load(&rc->phase) != PH_STOP && !atomic_load(&rc->failed)) {
        round = atomic_load(&rc->round);
        if (atomic_load(&rc->phase) == PH_VERIFY) {
            if (atomic_load(&rc->verified[slot]) != round) {
                if (rc_verify(mmc, slot, buf) != 0) {
                    RC_FAIL("round %d: verification failed", round);
                }
                atomic_store(&rc->verified[slot], round);
            }
            tk_sleep_ms(2);
            continue;
        }
        if (rc_put(mmc, slot, buf, &rng) != 0 ||
            rc_probe(mmc, (slot + 1) % SLOTS, buf, &rng) != 0) {
            RC_FAIL("a call hung or returned other bytes");
        }
    }
    if (atomic_load(&rc->failed)) {
        goto fail;
    }
    for (int n = 0; n < RC_MIN(atomic_load(&rc->next[slot]), PER_SLOT); n++) {
        int state = atomic_load(&rc->obj[slot][n].state);
        mmc_status_t st;

        if (state != RC_OK && state != RC_FAILED) {
            continue;
        }
        rc_key(key, sizeof(key), slot, n);
        st = mmc_remove(mmc, key);
        if (st != MMC_OK && !(state == RC_FAILED && st == MMC_ERR_NOT_FOUND)) {
            RC_FAIL("remove of %s: %s", key, mmc_status_name(st));
        }
        atomic_store(&rc->obj[slot][n].state, RC_GONE);
    }
    atomic_fetch_add(&rc->cleaned, 1);
    while (!atomic_load(&rc->exit_now) && !atomic_load(&rc->failed)) {
        tk_sleep_ms(5);
    }
    ret = 0;
fail:
    mmc_destroy(mmc);
    free(buf);
    return ret;
}

static int rc_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int rc_meta_start(int host, uint16_t port, uint16_t store, uint16_t http)
{
    char p[32], s[32], h[32];
    const char *sets[] = {"max_ranks=16",
                          "max_segment_size=64M",
                          "lease_ms=10s",
                          "put_timeout_ms=10s",
                          "member_timeout_ms=5000",
                          "evict_high_pct=100",
                          "evict_max_per_put=0",
                          "repair_delay_ms=0",
                          p,
                          s,
                          h,
                          NULL};

    snprintf(p, sizeof(p), "port=%u", port);
    snprintf(s, sizeof(s), "store_port=%u", store);
    snprintf(h, sizeof(h), "http_port=%u", http);
    return it_mmc_meta_start(&it_mmc_sh->meta, &rc_net, host, rc_net.addr[host],
                             sets);
}

/* Whether every segment is listed and empty. */
static bool rc_all_empty(void)
{
    it_mmc_seg_t segs[16];
    int n = it_mmc_segments(&rc_net, 0, &it_mmc_sh->meta, segs, 16);

    for (int i = 0; i < n; i++) {
        if (segs[i].used != 0 || segs[i].replicas != 0) {
            return false;
        }
    }
    return n == SLOTS;
}

/* ---- election through etcd (test_failover) ---- */

#define RC_HA_PORT 5800 /* every host of the lab is a network of its own */

static tk_meta_t rc_cands[HOSTS]; /* the candidates, by host */
static tk_etcd_t rc_etcd;

/* etcd in host 0 of the lab, on its client port 2379 there. */
static int rc_etcd_start(void)
{
    return tk_etcd_start(&rc_etcd, &rc_net, 0, rc_net.addr[0], 2379, 2380);
}

static void rc_etcd_stop(void)
{
    tk_etcd_stop(&rc_etcd);
}

/* A candidate on host, standing by (tk_meta_wait_ready: it leads); the
 * default ha_ttl_ms, so the failovers measured are the default's. */
static int rc_cand_start(int host)
{
    char etcd[128];
    const char *sets[] = {"max_ranks=16",
                          "max_segment_size=64M",
                          "lease_ms=10s",
                          "put_timeout_ms=10s",
                          "member_timeout_ms=5000",
                          "evict_high_pct=100",
                          "evict_max_per_put=0",
                          "port=5800",
                          "store_port=5801",
                          "http_port=5802",
                          etcd,
                          NULL};
    tk_meta_params_t p = {.bin = tk_meta_bin(MMC_META_BIN),
                          .addr = rc_net.addr[host],
                          .sets = sets,
                          .net = &rc_net,
                          .host = host,
                          .standby = true};

    snprintf(etcd, sizeof(etcd), "etcd_endpoints=%s", rc_etcd.url);
    return tk_meta_start(&rc_cands[host], &p);
}

/*
 * After failover round `round` (the first leader was term 1): the leader
 * on host `leader` says term round + 1 and as many failovers; the other
 * candidate, standing by, says follower and, once it has seen the
 * leader, the same term and the leader's URL; its /segments is 503.
 */
static int rc_check_follower(int round, int leader)
{
    const tk_meta_t *lm = &rc_cands[leader], *fm = &rc_cands[3 - leader];
    char want[160], *body = NULL;
    uint64_t deadline = tk_time_ms() + GUARD_MS;
    int code;

    if (it_mmc_metric(&rc_net, 0, lm, "mmc_leader_term") != round + 1 ||
        it_mmc_metric(&rc_net, 0, lm, "mmc_failovers_total") != round ||
        it_mmc_metric(&rc_net, 0, lm, "mmc_follower") != 0) {
        tk_print("parent: round %d: the leader says term %.0f, failovers "
                 "%.0f",
                 round, it_mmc_metric(&rc_net, 0, lm, "mmc_leader_term"),
                 it_mmc_metric(&rc_net, 0, lm, "mmc_failovers_total"));
        return -1;
    }
    snprintf(want, sizeof(want),
             "{\"status\":\"ok\",\"role\":\"follower\",\"members\":0,"
             "\"objects\":0,\"leader\":\"tcp://%s:5800\"}",
             rc_net.addr[leader]);
    for (;;) {
        code = it_mmc_http_get(&rc_net, 0, fm, "/health?format=json", &body);
        if (code == 200 && body != NULL && strstr(body, want) != NULL &&
            it_mmc_metric(&rc_net, 0, fm, "mmc_leader_term") == round + 1) {
            break;
        }
        if (tk_time_ms() > deadline) {
            tk_print("parent: round %d: the follower answers %d '%s'", round,
                     code, body != NULL ? body : "");
            free(body);
            return -1;
        }
        free(body);
        body = NULL;
        tk_sleep_ms(50);
    }
    free(body);
    body = NULL;
    if (it_mmc_metric(&rc_net, 0, fm, "mmc_follower") != 1 ||
        it_mmc_metric(&rc_net, 0, fm, "mmc_leader") != 0 ||
        (code = it_mmc_http_get(&rc_net, 0, fm, "/segments", &body)) != 503 ||
        strstr(body, "not the leader") == NULL) {
        tk_print("parent: round %d: the follower's /segments: %d", round, code);
        free(body);
        return -1;
    }
    free(body);
    return 0;
}

/*
 * The end of a test with SLOTS client processes, ok or not: tells them
 * (failed, exit_now) and waits for each, then stops the candidates and
 * etcd (cands: the leader's copy in it_mmc_sh is one of them) or the one
 * mmc-meta.  Whether everything, ok included, ended cleanly.
 */
static int rc_end(int ok, const pid_t *pids, bool cands)
{
    if (!ok) {
        atomic_store(&rc->failed, 1);
    }
    atomic_store(&rc->exit_now, 1);
    for (int s = 0; s < SLOTS; s++) {
        if (pids[s] > 0 && tk_proc_wait(pids[s], GUARD_MS) != 0) {
            tk_print("parent: slot %d failed", s);
            ok = 0;
        }
    }
    if (cands) {
        it_mmc_sh->meta.pid = 0;
        for (int h = 1; h <= 2; h++) {
            if (rc_cands[h].pid > 0 &&
                tk_meta_stop(&rc_cands[h], SIGTERM) != 0) {
                tk_print("parent: the candidate on host %d did not exit "
                         "cleanly",
                         h);
                ok = 0;
            }
        }
        rc_etcd_stop();
    }
    if (it_mmc_sh->meta.pid > 0 && tk_meta_stop(&it_mmc_sh->meta, SIGTERM)) {
        tk_print("parent: mmc-meta did not exit cleanly");
        ok = 0;
    }
    return ok;
}

typedef enum { RC_SAME, RC_MOVES, RC_FAILOVER } rc_mode_t;

/* The restarts of test_meta_restart; RC_MOVES: each on the other of hosts
 * 0 and 1, which the clients' meta_url both name; RC_FAILOVER: two
 * candidates on hosts 1 and 2 elect a leader through etcd, and the
 * leader is killed each round (then started again as a candidate). */
static void rc_restarts(rc_mode_t mode)
{
    bool moves = mode == RC_MOVES, failover = mode == RC_FAILOVER;
    double last_rev = 0;
    int leader = 1;
    uint64_t rec_ms[ROUNDS];
    pid_t pids[SLOTS];
    uint16_t port, store, http;
    tk_rng_t rng;
    int ok = 0;

    memset(rc, 0, sizeof(*rc));
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = -1;
    }
    if (failover) {
        if (rc_etcd_start() != 0 || rc_cand_start(1) != 0 ||
            tk_meta_wait_ready(&rc_cands[1], GUARD_MS) != 0 ||
            rc_cand_start(2) != 0) {
            goto fail;
        }
        it_mmc_sh->meta = rc_cands[1];
    } else {
        assert_int_equal(rc_meta_start(0, 0, 0, 0), 0);
    }
    port = it_mmc_sh->meta.port;
    store = it_mmc_sh->meta.store_port;
    http = it_mmc_sh->meta.http_port;
    if (failover) {
        snprintf(rc->meta_urls, sizeof(rc->meta_urls),
                 "tcp://%s:%u,tcp://%s:%u", rc_net.addr[1], port,
                 rc_net.addr[2], port);
    } else if (moves) {
        snprintf(rc->meta_urls, sizeof(rc->meta_urls),
                 "tcp://%s:%u, tcp://%s:%u", rc_net.addr[0], port,
                 rc_net.addr[1], port);
    } else {
        snprintf(rc->meta_urls, sizeof(rc->meta_urls), "tcp://%s:%u",
                 rc_net.addr[0], port);
    }
    tk_rng_seed(&rng, (uint64_t)getpid());
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = tk_netns_spawn(&rc_net, HOST_OF(s), rc_child, s, NULL);
        if (pids[s] < 0) {
            goto fail;
        }
    }
    for (int s = 0; s < SLOTS; s++) {
        RC_WAIT(atomic_load(&rc->ready[s]), "parent: slot %d never started", s);
    }
    for (int round = 1; round <= ROUNDS; round++) {
        uint64_t until = tk_time_ms() + tk_rng_range(&rng, 150, 400);
        int code;

        atomic_store(&rc->phase, PH_STORM);
        RC_WAIT(tk_time_ms() >= until, "parent: cannot wait");
        atomic_store(&rc->recovered_ms, 0);
        atomic_store(&rc->dead_ms, 0);
        atomic_store(&rc->kill_ms, tk_time_ms());
        kill(it_mmc_sh->meta.pid, SIGKILL);
        code = tk_proc_wait(it_mmc_sh->meta.pid, GUARD_MS);
        atomic_store(&rc->dead_ms, tk_time_ms());
        it_mmc_sh->meta.pid = 0;
        if (code != 128 + SIGKILL) {
            tk_print("parent: mmc-meta ended with %d, not by the kill", code);
            goto fail;
        }
        if (failover) {
            /* the other candidate takes over; the killed one stands by */
            rc_cands[leader].pid = 0;
            leader = 3 - leader;
            if (tk_meta_wait_ready(&rc_cands[leader], GUARD_MS) != 0) {
                tk_print("parent: round %d: the candidate on host %d never "
                         "led",
                         round, leader);
                goto fail;
            }
            it_mmc_sh->meta = rc_cands[leader];
            if (rc_cand_start(3 - leader) != 0) {
                goto fail;
            }
        } else {
            tk_sleep_ms((unsigned)tk_rng_range(&rng, 0, 100));
            if (rc_meta_start(moves ? round % 2 : 0, port, store, http) != 0) {
                tk_print("parent: round %d: mmc-meta did not start again",
                         round);
                goto fail;
            }
        }
        RC_WAIT(atomic_load(&rc->recovered_ms) != 0,
                "parent: round %d: no get succeeded after the restart", round);
        rec_ms[round - 1] =
            atomic_load(&rc->recovered_ms) - atomic_load(&rc->kill_ms);
        until = tk_time_ms() + 100;
        RC_WAIT(tk_time_ms() >= until, "parent: cannot wait");
        atomic_store(&rc->round, round);
        atomic_store(&rc->phase, PH_VERIFY);
        for (int s = 0; s < SLOTS; s++) {
            RC_WAIT(atomic_load(&rc->verified[s]) == round,
                    "parent: round %d: slot %d never verified", round, s);
        }
        /* what the new daemon serves came back from the records */
        if (it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta,
                          "mmc_restored_objects_total") <= 0) {
            tk_print("parent: round %d: nothing restored", round);
            goto fail;
        }
        if (failover) {
            double rev = it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta,
                                       "mmc_leader_revision");

            /* a leader, of a later revision than the one before */
            if (it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta, "mmc_leader") !=
                    1 ||
                rev <= last_rev) {
                tk_print(
                    "parent: round %d: the new leader says leader %.0f, "
                    "revision %.0f after %.0f",
                    round,
                    it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta, "mmc_leader"),
                    rev, last_rev);
                goto fail;
            }
            last_rev = rev;
            /* the pool's term counts every leader; the standby started
             * again serves /health and /metrics as a follower and names
             * the leader */
            if (rc_check_follower(round, leader) != 0) {
                goto fail;
            }
        }
        tk_print("parent: round %d: recovered in %llu ms; %llu objects "
                 "checked, %llu lost",
                 round, (unsigned long long)rec_ms[round - 1],
                 (unsigned long long)atomic_load(&rc->checked),
                 (unsigned long long)atomic_load(&rc->lost));
        if (atomic_load(&rc->lost) != 0) {
            goto fail;
        }
    }
    qsort(rec_ms, ROUNDS, sizeof(rec_ms[0]), rc_cmp_u64);
    tk_print("parent: recovery (kill to first successful get) over %d "
             "restarts%s: p50 %llu ms, max %llu ms; %llu puts OK, %llu failed "
             "(%llu of those committed), %llu objects checked, %llu lost; "
             "longest call %llu ms",
             ROUNDS,
             failover ? " by failover through etcd"
                      : (moves ? " on alternating hosts" : ""),
             (unsigned long long)rec_ms[ROUNDS / 2],
             (unsigned long long)rec_ms[ROUNDS - 1],
             (unsigned long long)atomic_load(&rc->puts_ok),
             (unsigned long long)atomic_load(&rc->puts_failed),
             (unsigned long long)atomic_load(&rc->half),
             (unsigned long long)atomic_load(&rc->checked),
             (unsigned long long)atomic_load(&rc->lost),
             (unsigned long long)atomic_load(&rc->max_call_ms));
    atomic_store(&rc->phase, PH_STOP);
    RC_WAIT(atomic_load(&rc->cleaned) == SLOTS,
            "parent: the clients never cleaned up");
    RC_WAIT(rc_all_empty(), "parent: segments still hold bytes");
    ok = 1;
fail:
    atomic_store(&rc->phase, PH_STOP);
    assert_true(rc_end(ok, pids, failover));
}

/* ------------------------------------------------------------ repairs */

#define RP_OBJECTS 240
#define RP_WRITER  0

/* The writer puts, then verifies on request; the others only hold. */
static int rp_child(int slot, void *arg)
{
    const char *const kv[] = {
        "timeout_ms", "5s", "connect_timeout_ms", "2s", "fabric.tcp.timeout_ms",
        "3s",         NULL};
    char *buf = malloc(OBJ_MAX);
    mmc_t *mmc = NULL;
    tk_rng_t rng;
    char key[32];
    int ret = 1;

    tk_role_set("host %d slot %d", HOST_OF(slot), slot);
    tk_rng_seed(&rng, 4242);
    if (buf == NULL || it_mmc_open_kv(SEG_SIZE, NULL, kv, &mmc) != MMC_OK) {
        RC_FAIL("cannot open");
    }
    atomic_store(&rc->rank[slot], (int)mmc_rank(mmc));
    atomic_store(&rc->ready[slot], 1);
    if (slot != RP_WRITER) {
        while (!atomic_load(&rc->exit_now) && !atomic_load(&rc->failed)) {
            tk_sleep_ms(5);
        }
        ret = 0;
        goto fail;
    }
    /* every holder registered before the puts, so replicas spread */
    while (atomic_load(&rc->round) == 0 && !atomic_load(&rc->failed)) {
        tk_sleep_ms(2);
    }
    for (int n = 0; n < RP_OBJECTS; n++) {
        mmc_put_opts_t opts;
        rc_obj_t *o = &rc->obj[slot][n];

        o->size = (uint32_t)tk_rng_range(&rng, OBJ_MIN, OBJ_MAX);
        o->seed = 0x7700000000ull + (uint64_t)n;
        rc_key(key, sizeof(key), slot, n);
        it_mmc_fill(buf, o->size, o->seed);
        mmc_put_opts_init(&opts);
        opts.replicas = 2;
        if (mmc_put(mmc, key, buf, o->size, &opts) != MMC_OK) {
            RC_FAIL("put of %s failed", key);
        }
        atomic_store(&o->state, RC_OK);
        atomic_store(&rc->next[slot], n + 1);
    }
    atomic_store(&rc->verified[slot], 1); /* put done */
    while (atomic_load(&rc->phase) != PH_VERIFY && !atomic_load(&rc->failed)) {
        tk_sleep_ms(2);
    }
    if (rc_verify(mmc, slot, buf) != 0) {
        RC_FAIL("verification failed");
    }
    for (int n = 0; n < RP_OBJECTS; n++) {
        rc_key(key, sizeof(key), slot, n);
        if (mmc_remove(mmc, key) != MMC_OK) {
            RC_FAIL("remove of %s failed", key);
        }
    }
    atomic_store(&rc->verified[slot], 2);
    while (!atomic_load(&rc->exit_now) && !atomic_load(&rc->failed)) {
        tk_sleep_ms(5);
    }
    ret = 0;
fail:
    mmc_destroy(mmc);
    free(buf);
    return ret;
}

static double rp_done(void)
{
    return it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta,
                         "mmc_repairs_total{result=\"done\"}");
}

/* Waits until no object is below its replica count and at least done
 * repairs ended well; false on the hang guard. */
static bool rp_wait_repaired(double done)
{
    uint64_t deadline = tk_time_ms() + GUARD_MS;

    while (tk_time_ms() < deadline && !atomic_load(&rc->failed)) {
        if (it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta,
                          "mmc_under_replicated") == 0 &&
            rp_done() >= done) {
            return true;
        }
        tk_sleep_ms(20);
    }
    return false;
}

static void test_repair(void **state)
{
    pid_t pids[SLOTS];
    double done;
    int ok = 0, code, n = 0;
    uint64_t start;

    memset(rc, 0, sizeof(*rc));
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = -1;
    }
    assert_int_equal(rc_meta_start(0, 0, 0, 0), 0);
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = tk_netns_spawn(&rc_net, HOST_OF(s), rp_child, s, NULL);
        if (pids[s] < 0) {
            goto fail;
        }
    }
    for (int s = 0; s < SLOTS; s++) {
        RC_WAIT(atomic_load(&rc->ready[s]), "parent: slot %d never started", s);
    }
    atomic_store(&rc->round, 1);
    RC_WAIT(atomic_load(&rc->verified[RP_WRITER]) == 1,
            "parent: the writer never finished its puts");
    /* two holders go, one after the other: copies in between save what
     * had both replicas on them */
    for (int victim = 1; victim <= 2; victim++) {
        done = rp_done();
        start = tk_time_ms();
        kill(pids[victim], SIGKILL);
        code = tk_proc_wait(pids[victim], GUARD_MS);
        pids[victim] = -1;
        if (code != 128 + SIGKILL) {
            tk_print("parent: slot %d ended with %d", victim, code);
            goto fail;
        }
        if (!rp_wait_repaired(done + 1)) {
            tk_print("parent: objects stayed below their replica count "
                     "after slot %d went",
                     victim);
            goto fail;
        }
        tk_print("parent: slot %d killed; every object back at two replicas "
                 "in %llu ms (%.0f copies so far)",
                 victim, (unsigned long long)(tk_time_ms() - start), rp_done());
    }
    atomic_store(&rc->phase, PH_VERIFY);
    RC_WAIT(atomic_load(&rc->verified[RP_WRITER]) == 2,
            "parent: the writer never verified");
    tk_print("parent: %llu objects checked, %llu lost",
             (unsigned long long)atomic_load(&rc->checked),
             (unsigned long long)atomic_load(&rc->lost));
    if (atomic_load(&rc->lost) != 0 ||
        atomic_load(&rc->checked) != RP_OBJECTS) {
        goto fail;
    }
    /* the removes left the two live segments empty */
    {
        it_mmc_seg_t segs[16];
        bool empty = true;

        RC_WAIT((n = it_mmc_segments(&rc_net, 0, &it_mmc_sh->meta, segs, 16)) ==
                    SLOTS - 2,
                "parent: %d segments listed, not %d", n, SLOTS - 2);
        for (int i = 0; i < n; i++) {
            empty &= segs[i].used == 0 && segs[i].replicas == 0;
        }
        if (!empty) {
            tk_print("parent: segments hold bytes after the removes");
            goto fail;
        }
    }
    ok = 1;
fail:
    assert_true(rc_end(ok, pids, false));
}

/* Whether /segments lists rank. */
static bool rc_rank_listed(int rank)
{
    it_mmc_seg_t segs[16];
    int n = it_mmc_segments(&rc_net, 0, &it_mmc_sh->meta, segs, 16);

    for (int i = 0; i < n; i++) {
        if ((int)segs[i].rank == rank) {
            return true;
        }
    }
    return false;
}

/*
 * test_holder_dies_in_rebuild: objects with two replicas; the meta
 * service is killed and started again, and one holder is killed while
 * the holders come back (once it registered again, before or while its
 * record is restored).  Every object keeps a live replica, so every one
 * is read back exact, and repairs bring each back to two replicas.
 */
static void test_holder_dies_in_rebuild(void **state)
{
    pid_t pids[SLOTS];
    uint16_t port, store, http;
    int ok = 0, code, victim = 1;
    uint64_t start;

    memset(rc, 0, sizeof(*rc));
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = -1;
    }
    assert_int_equal(rc_meta_start(0, 0, 0, 0), 0);
    port = it_mmc_sh->meta.port;
    store = it_mmc_sh->meta.store_port;
    http = it_mmc_sh->meta.http_port;
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = tk_netns_spawn(&rc_net, HOST_OF(s), rp_child, s, NULL);
        if (pids[s] < 0) {
            goto fail;
        }
    }
    for (int s = 0; s < SLOTS; s++) {
        RC_WAIT(atomic_load(&rc->ready[s]), "parent: slot %d never started", s);
    }
    atomic_store(&rc->round, 1);
    RC_WAIT(atomic_load(&rc->verified[RP_WRITER]) == 1,
            "parent: the writer never finished its puts");

    start = tk_time_ms();
    kill(it_mmc_sh->meta.pid, SIGKILL);
    code = tk_proc_wait(it_mmc_sh->meta.pid, GUARD_MS);
    it_mmc_sh->meta.pid = 0;
    if (code != 128 + SIGKILL || rc_meta_start(0, port, store, http) != 0) {
        tk_print("parent: mmc-meta did not restart");
        goto fail;
    }
    RC_WAIT(rc_rank_listed(atomic_load(&rc->rank[victim])),
            "parent: slot %d never registered again", victim);
    kill(pids[victim], SIGKILL);
    code = tk_proc_wait(pids[victim], GUARD_MS);
    pids[victim] = -1;
    if (code != 128 + SIGKILL) {
        tk_print("parent: slot %d ended with %d", victim, code);
        goto fail;
    }
    tk_print("parent: slot %d killed %llu ms after the meta service", victim,
             (unsigned long long)(tk_time_ms() - start));
    if (!rp_wait_repaired(1)) {
        tk_print("parent: objects stayed below their replica count");
        goto fail;
    }
    atomic_store(&rc->phase, PH_VERIFY);
    RC_WAIT(atomic_load(&rc->verified[RP_WRITER]) == 2,
            "parent: the writer never verified");
    tk_print("parent: %llu objects checked, %llu lost; %.0f restored, %.0f "
             "copied again",
             (unsigned long long)atomic_load(&rc->checked),
             (unsigned long long)atomic_load(&rc->lost),
             it_mmc_metric(&rc_net, 0, &it_mmc_sh->meta,
                           "mmc_restored_objects_total"),
             rp_done());
    if (atomic_load(&rc->lost) != 0 ||
        atomic_load(&rc->checked) != RP_OBJECTS) {
        goto fail;
    }
    ok = 1;
fail:
    assert_true(rc_end(ok, pids, false));
}

/* Brings host 1's link down for 5 s (a child: the parent watches). */
static int rc_cut_child(int index, void *arg)
{
    (void)index;
    (void)arg;
    return tk_netns_link_flap(&rc_net, 1, 5000) == 0 ? 0 : 1;
}

/*
 * test_leader_cut: the leader's host loses its network under the storm
 * (clients on that host still reach it).  It cannot renew its lease and
 * must stop serving (exit 3) before the other candidate leads: when the
 * new leader is seen ready, the old one is gone.  Afterwards every put
 * that returned OK reads back exact.
 */
static void test_leader_cut(void **state)
{
    pid_t pids[SLOTS], cut = -1;
    int ok = 0, st = 0, r;
    uint64_t start;

    if (!tk_etcd_available()) {
        tk_print("no %s: skipped", TK_ETCD_BIN);
        skip();
    }
    memset(rc, 0, sizeof(*rc));
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = -1;
    }
    if (rc_etcd_start() != 0 || rc_cand_start(1) != 0 ||
        tk_meta_wait_ready(&rc_cands[1], GUARD_MS) != 0 ||
        rc_cand_start(2) != 0) {
        goto fail;
    }
    it_mmc_sh->meta = rc_cands[1];
    snprintf(rc->meta_urls, sizeof(rc->meta_urls), "tcp://%s:%u,tcp://%s:%u",
             rc_net.addr[1], RC_HA_PORT, rc_net.addr[2], RC_HA_PORT);
    for (int s = 0; s < SLOTS; s++) {
        pids[s] = tk_netns_spawn(&rc_net, HOST_OF(s), rc_child, s, NULL);
        if (pids[s] < 0) {
            goto fail;
        }
    }
    for (int s = 0; s < SLOTS; s++) {
        RC_WAIT(atomic_load(&rc->ready[s]), "parent: slot %d never started", s);
    }
    tk_sleep_ms(400);
    start = tk_time_ms();
    cut = tk_proc_spawn(rc_cut_child, 0, NULL);
    if (cut < 0) {
        goto fail;
    }
    /* the new leader; the old one must be gone by the time it serves */
    while (tk_meta_wait_ready(&rc_cands[2], 50) != 0) {
        if (tk_time_ms() > start + GUARD_MS) {
            tk_print("parent: the candidate on host 2 never led");
            goto fail;
        }
    }
    r = tk_proc_poll(rc_cands[1].pid, &st);
    if (r != 1) {
        tk_print("parent: the old leader still runs while the new one "
                 "serves");
        goto fail;
    }
    rc_cands[1].pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) {
        tk_print("parent: the old leader ended with status 0x%x, not by "
                 "stepping down (3)",
                 st);
        goto fail;
    }
    tk_print("parent: the old leader stepped down; the new one leads %llu "
             "ms after the cut",
             (unsigned long long)(tk_time_ms() - start));
    it_mmc_sh->meta = rc_cands[2];
    if (tk_proc_wait(cut, GUARD_MS) != 0) {
        tk_print("parent: the cut failed");
        goto fail;
    }
    cut = -1;
    if (rc_cand_start(1) != 0) { /* back, standing by */
        goto fail;
    }
    atomic_store(&rc->round, 1);
    atomic_store(&rc->phase, PH_VERIFY);
    for (int s = 0; s < SLOTS; s++) {
        RC_WAIT(atomic_load(&rc->verified[s]) == 1,
                "parent: slot %d never verified", s);
    }
    tk_print("parent: %llu puts OK, %llu failed; %llu objects checked, %llu "
             "lost",
             (unsigned long long)atomic_load(&rc->puts_ok),
             (unsigned long long)atomic_load(&rc->puts_failed),
             (unsigned long long)atomic_load(&rc->checked),
             (unsigned long long)atomic_load(&rc->lost));
    if (atomic_load(&rc->lost) != 0) {
        goto fail;
    }
    atomic_store(&rc->phase, PH_STOP);
    RC_WAIT(atomic_load(&rc->cleaned) == SLOTS,
            "parent: the clients never cleaned up");
    ok = 1;
fail:
    atomic_store(&rc->phase, PH_STOP);
    if (cut > 0) {
        (void)tk_proc_wait(cut, GUARD_MS);
    }
    assert_true(rc_end(ok, pids, true));
}

/*
 * (c) again, as a pause rather than a cut: the leader is frozen (SIGSTOP,
 * as a long stall of its host would) past its lease, while a connection
 * it accepted waits; the other candidate leads; a request then sits in
 * the frozen leader's socket, and it is thawed.  It must not answer: its
 * successor may have placed objects where it would, so the request gets
 * the connection closed, and the old leader exits stepping down (3).
 */
static void test_leader_frozen(void **state)
{
    mmc_hello_resp_t hr;
    tw_frame_t frame;
    tw_conn_t c = {.fd = -1};
    mf_status_t status;
    pid_t old = -1;
    uint64_t start;
    int ok = 0, fd, code;

    (void)state;
    if (!tk_etcd_available()) {
        tk_print("no %s: skipped", TK_ETCD_BIN);
        skip();
    }
    memset(&frame, 0, sizeof(frame));
    if (rc_etcd_start() != 0 || rc_cand_start(1) != 0 ||
        tk_meta_wait_ready(&rc_cands[1], GUARD_MS) != 0 ||
        rc_cand_start(2) != 0) {
        goto fail;
    }
    fd = it_mmc_connect(&rc_net, 0, rc_cands[1].addr, rc_cands[1].port);
    if (fd < 0) {
        goto fail;
    }
    tw_conn_init(&c, fd, GUARD_MS);
    if (tw_mmc_hello(&c, "frozen-test", &hr) != MF_OK) {
        goto fail;
    }
    old = rc_cands[1].pid;
    kill(old, SIGSTOP);
    start = tk_time_ms();
    if (tk_meta_wait_ready(&rc_cands[2], GUARD_MS) != 0) {
        tk_print("parent: the candidate on host 2 never led");
        goto fail;
    }
    tk_print("parent: the new leader serves %llu ms after the freeze",
             (unsigned long long)(tk_time_ms() - start));
    if (!tw_send_req(c.fd, MMC_OP_PING, 7, NULL, 0)) {
        goto fail;
    }
    kill(old, SIGCONT);
    status = tw_frame_recv(c.fd, GUARD_MS, MF_NET_DEFAULT_MAX_BODY, &frame);
    if (status == MF_OK) {
        tk_print("parent: the thawed old leader answered (status %d) after "
                 "its successor led",
                 frame.hdr.status);
        goto fail;
    }
    code = tk_proc_wait(old, GUARD_MS);
    rc_cands[1].pid = 0;
    old = -1;
    if (code != 3) {
        tk_print("parent: the old leader ended with %d, not by stepping "
                 "down (3)",
                 code);
        goto fail;
    }
    tk_print("parent: the thawed old leader answered nothing (%s) and "
             "stepped down",
             mf_status_name(status));
    ok = 1;
fail:
    tw_frame_free(&frame);
    tw_conn_close(&c);
    if (old > 0) {
        kill(old, SIGCONT);
    }
    for (int h = 1; h <= 2; h++) {
        if (rc_cands[h].pid > 0) {
            (void)tk_meta_stop(&rc_cands[h], SIGTERM);
        }
    }
    rc_etcd_stop();
    assert_true(ok);
}

static void test_meta_restart(void **state)
{
    rc_restarts(RC_SAME);
}

static void test_meta_moves(void **state)
{
    rc_restarts(RC_MOVES);
}

/* The leader of two candidates killed twenty times under the storm: the
 * other takes over through etcd, rebuilds from the records, serves. */
static void test_failover(void **state)
{
    if (!tk_etcd_available()) {
        tk_print("no %s: skipped", TK_ETCD_BIN);
        skip();
    }
    rc_restarts(RC_FAILOVER);
}

static int rc_setup(void **state)
{
    void *p = mmap(NULL, sizeof(rc_shared_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED || it_mmc_shared_init() != 0) {
        return -1;
    }
    rc = p;
    if (tk_netns_create(&rc_net, HOSTS) != 0) {
        return -1;
    }
    rc_have_net = true;
    return 0;
}

static int rc_teardown(void **state)
{
    if (rc_have_net) {
        tk_netns_destroy(&rc_net);
        rc_have_net = false;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_restart),
        cmocka_unit_test(test_meta_moves),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_leader_cut),
        cmocka_unit_test(test_leader_frozen),
        cmocka_unit_test(test_repair),
        cmocka_unit_test(test_holder_dies_in_rebuild),
    };

    tk_netns_require();
    return tk_group_run(tests, rc_setup, rc_teardown);
}
