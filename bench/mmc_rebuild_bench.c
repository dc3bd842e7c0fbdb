/*
 * How long a restarted mmc-meta takes to rebuild its index from the
 * holders' records, against the time the same index took to build by
 * puts (the baseline, measured in the same run).
 *
 * `holders` threads each speak the MemCache wire (tests/wire) as a local
 * service with one DRAM segment: HELLO, REGISTER, then objects/holders
 * puts of 4 KiB objects (PUT_ALLOC + PUT_COMMIT in batches, one replica
 * each, on its own rank; no bytes move, the meta service never touches
 * them), keeping the RECORD notifies it gets as its record and
 * acknowledging them.  Then the daemon is killed (SIGKILL) and started
 * again on the same ports, and every holder registers with
 * MMC_REG_RESTORE and sends its record in RESTORE batches.  Printed: the
 * build by puts, the rebuild (kill to the last holder's last batch
 * answered, and from the restart), objects per second, and a check that
 * sampled keys exist again.
 *
 * With --failover, the same index lives on the leader of two mmc-meta
 * elected through a local etcd (default ha_ttl_ms), the leader is killed,
 * and the holders go round both addresses until one serves them (the
 * standby's RPC port listens only once it leads), as local services do
 * with a meta_url list: printed is the kill to the new leader's ready
 * line and to the last holder's record restored on it.
 *
 * Also printed: the daemon's resident memory (VmRSS) before the puts and
 * once they are in, and so its bytes per object.
 *
 * Run: ./build/bench/mmc-rebuild-bench [objects (1000000)] [holders (4)]
 *      [--failover]
 */
#include "tk_etcd.h"
#include "tk_meta.h"
#include "tk_proc.h"
#include "tk_sock.h"
#include "tw_mmc.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBJ_SIZE   4096u
#define PUT_BATCH  4096u
#define REST_BATCH 16384u
#define CALL_MS    120000u
#define KEY_LEN    24u

typedef struct rb_entry {
    uint64_t offset;
    uint64_t version;
    char key[KEY_LEN];
} rb_entry_t;

/* One holder: its connection first (the notify handler gets it). */
typedef struct rb_holder {
    tw_conn_t conn;
    uint32_t rank;
    uint64_t objects;
    uint64_t seg_size;
    rb_entry_t *rec; /* its record, from RECORD notifies */
    uint64_t nrec;
    double secs;
    int failed;
} rb_holder_t;

static tk_meta_t rb_meta; /* the one serving (the leader) */

/* VmRSS of pid in bytes, 0 when unknown. */
static uint64_t rb_rss(pid_t pid)
{
    char path[64], line[256];
    unsigned long long kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return (uint64_t)kib * 1024;
}
static tk_meta_t rb_cands[2]; /* --failover: the candidates */
static uint16_t rb_ports[2];  /* the RPC ports holders try, in turn */
static int rb_nports;
static mmc_hello_resp_t rb_hello;
static uint64_t rb_max_seg;
static pthread_barrier_t rb_barrier;

static double rb_now(void)
{
    return (double)tk_time_ms() / 1000.0;
}

/* Keeps what a RECORD adds, and acknowledges it. */
static void rb_on_notify(tw_conn_t *c, const tw_frame_t *frame)
{
    rb_holder_t *h = (rb_holder_t *)c;
    mmc_record_t rec;

    if (frame->hdr.opcode != MMC_OP_RECORD ||
        mmc_record_decode(frame->body, frame->len, &rec) != MF_OK) {
        tk_print("holder %u: a notify that is no RECORD", h->rank);
        h->failed = 1;
        return;
    }
    for (uint32_t i = 0; i < rec.count; i++) {
        const mmc_rec_entry_t *e = &rec.entries[i];

        if (e->op != MMC_REC_ADD || h->nrec == h->objects ||
            e->key.len >= KEY_LEN) {
            tk_print("holder %u: an entry it did not expect", h->rank);
            h->failed = 1;
            break;
        }
        h->rec[h->nrec].offset = e->offset;
        h->rec[h->nrec].version = e->version;
        memcpy(h->rec[h->nrec].key, e->key.data, e->key.len);
        h->rec[h->nrec].key[e->key.len] = '\0';
        h->nrec++;
    }
    tw_mmc_on_notify(c, frame); /* the acknowledgement */
    mmc_record_free(&rec);
}

static int rb_connect(rb_holder_t *h, uint32_t flags)
{
    mmc_register_req_t reg;
    char name[32];

    uint64_t deadline = tk_time_ms() + CALL_MS;

    snprintf(name, sizeof(name), "holder-%u", h->rank);
    /* round the addresses until one serves (a standby does not listen) */
    for (int i = 0;; i = (i + 1) % rb_nports) {
        int fd = tk_sock_try_connect("127.0.0.1", rb_ports[i]);

        if (fd >= 0) {
            tw_conn_init(&h->conn, fd, CALL_MS);
            if (tw_mmc_hello(&h->conn, name, &rb_hello) == MF_OK) {
                break;
            }
            tw_conn_close(&h->conn);
        }
        if (tk_time_ms() > deadline) {
            return -1;
        }
        if (i == rb_nports - 1) {
            tk_sleep_ms(10);
        }
    }
    h->conn.on_notify = rb_on_notify;
    memset(&reg, 0, sizeof(reg));
    reg.rank = h->rank;
    snprintf(reg.host_id, sizeof(reg.host_id), "bench-host-%u", h->rank % 2);
    reg.nsegs = 1;
    reg.segs[0].media = MMC_MEDIA_DRAM;
    reg.segs[0].gva = rb_hello.host_base + h->rank * rb_max_seg;
    reg.segs[0].size = h->seg_size;
    reg.flags = flags;
    return tw_mmc_register(&h->conn, &reg, NULL) == MF_OK ? 0 : -1;
}

static int rb_put_all(rb_holder_t *h)
{
    mmc_put_item_t *items = calloc(PUT_BATCH, sizeof(*items));
    char(*keys)[KEY_LEN] = calloc(PUT_BATCH, KEY_LEN);
    mmc_commit_item_t *commits = calloc(PUT_BATCH, sizeof(*commits));
    int ret = -1;

    if (items == NULL || keys == NULL || commits == NULL) {
        goto out;
    }
    for (uint64_t done = 0; done < h->objects;) {
        uint32_t n =
            (uint32_t)(h->objects - done < PUT_BATCH ? h->objects - done
                                                     : PUT_BATCH);
        mmc_put_alloc_req_t req = {.replicas = 1,
                                   .media = MMC_MEDIA_DRAM,
                                   .npref = 1,
                                   .pref = {h->rank},
                                   .count = n,
                                   .items = items};
        mmc_commit_list_t cl = {.count = n, .items = commits};
        mmc_status_list_t st;
        mmc_obj_list_t objs;

        for (uint32_t i = 0; i < n; i++) {
            int len = snprintf(keys[i], KEY_LEN, "o.%u.%llu", h->rank,
                               (unsigned long long)(done + i));

            items[i].key = (mmc_key_t){keys[i], (uint32_t)len};
            items[i].size = OBJ_SIZE;
        }
        if (tw_mmc_put_alloc(&h->conn, &req, &objs) != MF_OK) {
            goto out;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (objs.items[i].status != MMC_OK) {
                tk_print("holder %u: put of %s: %s", h->rank, keys[i],
                         mmc_status_name(objs.items[i].status));
                mmc_obj_list_free(&objs);
                goto out;
            }
            commits[i] = (mmc_commit_item_t){objs.items[i].id, MMC_OK};
        }
        mmc_obj_list_free(&objs);
        if (tw_mmc_put_commit(&h->conn, &cl, &st) != MF_OK) {
            goto out;
        }
        mmc_status_list_free(&st);
        done += n;
    }
    ret = 0;
out:
    free(items);
    free(keys);
    free(commits);
    return ret;
}

static int rb_restore_all(rb_holder_t *h)
{
    mmc_rec_entry_t *entries = calloc(REST_BATCH, sizeof(*entries));
    uint64_t done = 0;
    int ret = -1;

    if (entries == NULL) {
        return -1;
    }
    do {
        uint32_t n = (uint32_t)(h->nrec - done < REST_BATCH ? h->nrec - done
                                                            : REST_BATCH);
        mmc_record_t req = {.count = n, .entries = entries};
        mmc_status_list_t st;

        for (uint32_t i = 0; i < n; i++) {
            const rb_entry_t *r = &h->rec[done + i];

            entries[i] = (mmc_rec_entry_t){
                .op = MMC_REC_ADD,
                .media = MMC_MEDIA_DRAM,
                .offset = r->offset,
                .want = 1,
                .size = OBJ_SIZE,
                .version = r->version,
                .key = {r->key, (uint32_t)strlen(r->key)},
            };
        }
        done += n;
        req.flags = done == h->nrec ? MMC_RESTORE_LAST : 0;
        if (tw_mmc_restore(&h->conn, &req, &st) != MF_OK) {
            goto out;
        }
        for (uint32_t i = 0; i < st.count; i++) {
            if (st.status[i] != MMC_OK) {
                tk_print("holder %u: entry refused: %s", h->rank,
                         mmc_status_name(st.status[i]));
                mmc_status_list_free(&st);
                goto out;
            }
        }
        mmc_status_list_free(&st);
    } while (done < h->nrec);
    ret = 0;
out:
    free(entries);
    return ret;
}

static void *rb_build(void *arg)
{
    rb_holder_t *h = arg;
    double start;

    if (rb_connect(h, 0) != 0) {
        h->failed = 1;
    }
    pthread_barrier_wait(&rb_barrier);
    start = rb_now();
    if (!h->failed && rb_put_all(h) != 0) {
        h->failed = 1;
    }
    h->secs = rb_now() - start;
    if (h->nrec != h->objects) {
        tk_print("holder %u: %llu of %llu objects recorded", h->rank,
                 (unsigned long long)h->nrec, (unsigned long long)h->objects);
        h->failed = 1;
    }
    return NULL;
}

static void *rb_rebuild(void *arg)
{
    rb_holder_t *h = arg;
    double start = 0;

    tw_conn_close(&h->conn);
    if (rb_connect(h, MMC_REG_RESTORE) != 0) {
        h->failed = 1;
        return NULL;
    }
    start = rb_now(); /* connected and registered: the records go */
    if (rb_restore_all(h) != 0) {
        h->failed = 1;
    }
    h->secs = rb_now() - start;
    return NULL;
}

/* Every holder's thread running fn; the slowest one's time, -1 if one
 * failed.  With cand, waits meanwhile for it to lead: *ready_at then. */
static double rb_run(rb_holder_t *hs, uint32_t n, void *(*fn)(void *),
                     tk_meta_t *cand, double *ready_at)
{
    pthread_t tids[64];
    double worst = 0;

    pthread_barrier_init(&rb_barrier, NULL, n);
    for (uint32_t i = 0; i < n; i++) {
        pthread_create(&tids[i], NULL, fn, &hs[i]);
    }
    if (cand != NULL) {
        if (tk_meta_wait_ready(cand, 60000) != 0) {
            tk_print("the standby never led");
            worst = -1;
        }
        *ready_at = rb_now();
    }
    for (uint32_t i = 0; i < n; i++) {
        pthread_join(tids[i], NULL);
        worst = hs[i].failed
                    ? -1
                    : (worst < 0 ? worst
                                 : (hs[i].secs > worst ? hs[i].secs : worst));
    }
    pthread_barrier_destroy(&rb_barrier);
    return worst;
}

/* An mmc-meta on the ports given (0: any) into m; etcd: a candidate of
 * the election through it (NULL: alone). */
static int rb_meta_start(tk_meta_t *m, uint16_t port, uint16_t store,
                         uint16_t http, uint32_t holders, const char *etcd)
{
    char ranks[32], seg[48], p[32], s[32], h[32], e[128];
    const char *sets[] = {ranks,
                          seg,
                          "log_level=warn",
                          "evict_high_pct=100",
                          "member_timeout_ms=0",
                          "put_timeout_ms=600s",
                          p,
                          s,
                          h,
                          etcd != NULL ? e : NULL,
                          NULL};
    tk_meta_params_t params = {.bin = tk_meta_bin(MMC_META_BIN),
                               .sets = sets,
                               .standby = etcd != NULL};

    snprintf(ranks, sizeof(ranks), "max_ranks=%u", holders);
    snprintf(seg, sizeof(seg), "max_segment_size=%llu",
             (unsigned long long)rb_max_seg);
    snprintf(p, sizeof(p), "port=%u", port);
    snprintf(s, sizeof(s), "store_port=%u", store);
    snprintf(h, sizeof(h), "http_port=%u", http);
    if (etcd != NULL) {
        snprintf(e, sizeof(e), "etcd_endpoints=%s", etcd);
    }
    return tk_meta_start(m, &params);
}

/* Two candidates on free ports through etcd; the first leads. */
static int rb_cands_start(uint32_t holders, const char *etcd)
{
    uint16_t ports[6];

    for (int i = 0; i < 6; i++) {
        if (tk_port_free(&ports[i]) != 0) {
            return -1;
        }
    }
    if (rb_meta_start(&rb_cands[0], ports[0], ports[1], ports[2], holders,
                      etcd) != 0 ||
        tk_meta_wait_ready(&rb_cands[0], 60000) != 0 ||
        rb_meta_start(&rb_cands[1], ports[3], ports[4], ports[5], holders,
                      etcd) != 0) {
        return -1;
    }
    rb_ports[0] = ports[0];
    rb_ports[1] = ports[3];
    rb_nports = 2;
    rb_meta = rb_cands[0];
    return 0;
}

/* Whether sampled keys of every holder exist (on a new connection). */
static int rb_check(rb_holder_t *hs, uint32_t n)
{
    mmc_key_t keys[64];
    mmc_key_list_t kl = {.count = 0, .keys = keys};
    mmc_status_list_t st;
    tw_conn_t c;
    int ret = -1;

    if (tw_conn_open(&c, rb_meta.addr, rb_meta.port, CALL_MS) != 0 ||
        tw_mmc_hello(&c, "checker", NULL) != MF_OK) {
        return -1;
    }
    for (uint32_t i = 0; i < n && kl.count < 64; i++) {
        for (uint64_t j = 0; j < hs[i].nrec && kl.count < 64;
             j += hs[i].nrec / 8 + 1) {
            keys[kl.count++] = (mmc_key_t){hs[i].rec[j].key,
                                           (uint32_t)strlen(hs[i].rec[j].key)};
        }
    }
    if (tw_mmc_exist(&c, &kl, &st) == MF_OK) {
        ret = 0;
        for (uint32_t i = 0; i < st.count; i++) {
            if (st.status[i] != MMC_OK) {
                tk_print("key %.*s is gone after the rebuild", (int)keys[i].len,
                         keys[i].data);
                ret = -1;
            }
        }
        mmc_status_list_free(&st);
    }
    tw_conn_close(&c);
    return ret;
}

int main(int argc, char **argv)
{
    bool failover = argc > 3 && strcmp(argv[3], "--failover") == 0;
    uint64_t objects = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
    uint32_t holders = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 4;
    rb_holder_t *hs;
    tk_etcd_t etcd = {0};
    double build, rebuild, kill_at, ready_at, total;
    uint64_t rss_empty = 0, rss_built = 0;
    int code, ret = 1;

    if (objects == 0 || holders == 0 || holders > 64 ||
        (argc > 3 && !failover) || argc > 4) {
        fprintf(stderr,
                "usage: %s [objects > 0] [holders 1..64] [--failover]\n",
                argv[0]);
        return 2;
    }
    hs = calloc(holders, sizeof(*hs));
    if (hs == NULL) {
        return 1;
    }
    /* room for each holder's share, rounded up to 1 GiB */
    rb_max_seg = ((objects / holders + 1) * OBJ_SIZE + (1ull << 30) - 1) &
                 ~((1ull << 30) - 1);
    for (uint32_t i = 0; i < holders; i++) {
        hs[i].rank = i;
        hs[i].objects = objects / holders + (i < objects % holders);
        hs[i].seg_size = rb_max_seg;
        hs[i].rec = calloc(hs[i].objects, sizeof(*hs[i].rec));
        if (hs[i].rec == NULL) {
            goto out;
        }
    }
    if (failover) {
        uint16_t cport, pport;

        if (!tk_etcd_available()) {
            tk_print("--failover needs %s (Debian etcd-server)", TK_ETCD_BIN);
            goto out;
        }
        if (tk_port_free(&cport) != 0 || tk_port_free(&pport) != 0 ||
            tk_etcd_start(&etcd, NULL, 0, "127.0.0.1", cport, pport) != 0 ||
            rb_cands_start(holders, etcd.url) != 0) {
            goto out;
        }
    } else {
        if (rb_meta_start(&rb_meta, 0, 0, 0, holders, NULL) != 0) {
            goto out;
        }
        rb_ports[0] = rb_meta.port;
        rb_nports = 1;
    }

    rss_empty = rb_rss(rb_meta.pid);
    build = rb_run(hs, holders, rb_build, NULL, NULL);
    if (build < 0) {
        tk_print("the build by puts failed");
        goto out;
    }
    rss_built = rb_rss(rb_meta.pid);
    kill_at = rb_now();
    kill(rb_meta.pid, SIGKILL);
    code = tk_proc_wait(rb_meta.pid, 60000);
    if (code != 128 + SIGKILL) {
        tk_print("mmc-meta ended with %d, not by the kill", code);
        goto out;
    }
    if (failover) {
        rb_cands[0].pid = 0;
        rb_meta = rb_cands[1];
    } else {
        uint16_t port = rb_meta.port, store = rb_meta.store_port,
                 http = rb_meta.http_port;

        rb_meta.pid = 0;
        if (rb_meta_start(&rb_meta, port, store, http, holders, NULL) != 0) {
            tk_print("mmc-meta did not restart");
            goto out;
        }
    }
    /* after a failover the holders find the new leader by themselves;
     * meanwhile its ready line is awaited here */
    ready_at = rb_now();
    rebuild = rb_run(hs, holders, rb_rebuild, failover ? &rb_cands[1] : NULL,
                     &ready_at);
    total = rb_now() - kill_at;
    if (failover) {
        rb_meta = rb_cands[1];
    }
    if (rebuild < 0 || rb_check(hs, holders) != 0) {
        tk_print("the rebuild failed");
        goto out;
    }
    printf("mmc-rebuild-bench: %llu objects of %u bytes on %u holders%s\n",
           (unsigned long long)objects, OBJ_SIZE, holders,
           failover ? ", failover through etcd (default ha_ttl_ms)" : "");
    printf("  built by puts (baseline): %8.3f s  %10.0f objects/s\n", build,
           (double)objects / build);
    printf("  rebuilt from the records: %8.3f s  %10.0f objects/s"
           "  (RESTORE only; from the kill: %.3f s, %s %.3f s)\n",
           rebuild, (double)objects / rebuild, total,
           failover ? "new leader ready" : "daemon start", ready_at - kill_at);
    printf("  rebuild / build: %.2fx\n", rebuild / build);
    if (rss_empty > 0 && rss_built > rss_empty) {
        char longest[KEY_LEN];
        int klen = snprintf(longest, sizeof(longest), "o.%u.%llu", holders - 1,
                            (unsigned long long)(objects / holders));

        printf("  mmc-meta resident: %.1f MiB before the puts, %.1f MiB with "
               "the objects: %.0f bytes per object (keys of at most %d "
               "bytes, one replica)\n",
               (double)rss_empty / (1 << 20), (double)rss_built / (1 << 20),
               (double)(rss_built - rss_empty) / (double)objects, klen);
    }
    ret = 0;
out:
    if (rb_meta.pid > 0) {
        tk_meta_stop(&rb_meta, SIGTERM);
    }
    for (int i = 0; i < 2; i++) {
        if (rb_cands[i].pid > 0 && rb_cands[i].pid != rb_meta.pid) {
            tk_meta_stop(&rb_cands[i], SIGTERM);
        }
    }
    tk_etcd_stop(&etcd);
    for (uint32_t i = 0; i < holders; i++) {
        tw_conn_close(&hs[i].conn);
        free(hs[i].rec);
    }
    free(hs);
    return ret;
}
