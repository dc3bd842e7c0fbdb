/*
 * Replays: the meta service's state machine under a policy, and Belady's
 * optimum, each counting the gets that hit.
 */
#include "replay.h"

#include "cache/meta/meta_state.h"
#include "util/codec.h"

#include <stdlib.h>
#include <string.h>

#define RP_HOST_BASE (1ull << 32)
#define RP_NEVER     SIZE_MAX

static bool rp_put(mmc_state_t *st, mmc_state_owner_t *o, const char *key,
                   uint64_t size, uint64_t now, rp_result_t *res)
{
    mmc_state_put_opts_t opts = {.replicas = 1, .media = MMC_MEDIA_DRAM};
    mmc_obj_result_t obj;
    mmc_status_t s;

    s = mmc_state_put_alloc(st, o, key, strlen(key), size, &opts, now, &obj);
    if (s == MMC_ERR_NO_SPACE) {
        res->uncached++;
        return true;
    }
    if ((s != MMC_OK) ||
        (mmc_state_put_commit(st, o, obj.id, MMC_OK) != MMC_OK)) {
        fprintf(stderr, "mmc-trace-replay: put of %s failed: %d\n", key, s);
        return false;
    }
    res->puts++;
    return true;
}

bool rp_replay_meta(const rp_trace_t *t, uint64_t pool_bytes, uint32_t policy,
                    uint32_t small_pct, uint32_t high, uint32_t low,
                    rp_result_t *res)
{
    uint64_t seg_size = RP_ROUND(pool_bytes);
    mmc_state_params_t p = {
        .max_ranks = 1,
        .max_segment_size = seg_size,
        .host_base = RP_HOST_BASE,
        .alloc_align = RP_ALIGN,
        .lease_ms = 60000,
        .put_timeout_ms = 60000,
        .evict_high_pct = high,
        .evict_low_pct = low,
        .evict_max_per_put = 1u << 20,
        .evict_policy = policy,
        .evict_small_pct = small_pct,
    };
    mmc_seg_desc_t seg = {
        .media = MMC_MEDIA_DRAM, .gva = RP_HOST_BASE, .size = seg_size};
    mmc_state_counters_t c;
    mmc_state_owner_t *o;
    mmc_state_t *st;
    mf_wbuf_t w;
    uint32_t host_idx;
    bool ok = true;

    memset(res, 0, sizeof(*res));
    if ((mmc_state_create(&p, &st) != MF_OK)) {
        return false;
    }
    if ((mmc_state_owner_create(st, &o) != MF_OK) ||
        (mmc_state_register(st, o, 0, "h0", "replay", 1, &seg, &host_idx) !=
         MF_OK)) {
        mmc_state_destroy(st);
        return false;
    }
    mf_wbuf_init(&w);
    for (size_t i = 0; ok && (i < t->n); i++) {
        const rp_req_t *r = &t->reqs[i];
        const char *key = t->names[r->key];
        uint64_t now = i + 1; /* a millisecond per request */
        mmc_obj_result_t obj;
        mmc_status_t s;

        if (r->op == RP_GET) {
            res->gets++;
            s = mmc_state_get(st, o, key, strlen(key), now, &obj);
            if (s == MMC_OK) {
                res->hits++;
                (void)mmc_state_release(st, o, obj.id);
            } else {
                ok = rp_put(st, o, key, r->size, now, res);
            }
        } else if (mmc_state_exists(st, key, strlen(key)) != MMC_OK) {
            ok = rp_put(st, o, key, r->size, now, res);
        }
        while (mmc_state_evict_due(st) && mmc_state_evict_some(st, 4096)) {
        }
        /* the holder's record: nobody keeps it here */
        while (mmc_state_record_take(st, o, 0, &w) != 0) {
            w.len = 0;
        }
    }
    mmc_state_get_counters(st, &c);
    res->evictions = c.evictions;
    mf_wbuf_free(&w);
    mmc_state_destroy(st);
    return ok;
}

/* ---- Belady ---- */

typedef struct rp_heap_ent {
    size_t next; /* the key's next request then */
    uint32_t key;
} rp_heap_ent_t;

typedef struct rp_heap {
    rp_heap_ent_t *e;
    size_t n;
} rp_heap_t;

/* A max-heap by next use; an entry is stale once its key moved on. */
static void rp_heap_push(rp_heap_t *h, size_t next, uint32_t key)
{
    size_t i = h->n++;

    while (i > 0 && h->e[(i - 1) / 2].next < next) {
        h->e[i] = h->e[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->e[i].next = next;
    h->e[i].key = key;
}

static rp_heap_ent_t rp_heap_pop(rp_heap_t *h)
{
    rp_heap_ent_t top = h->e[0];
    rp_heap_ent_t last = h->e[--h->n];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= h->n) {
            break;
        }
        if ((c + 1 < h->n) && (h->e[c + 1].next > h->e[c].next)) {
            c++;
        }
        if (h->e[c].next <= last.next) {
            break;
        }
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n > 0) {
        h->e[i] = last;
    }
    return top;
}

bool rp_replay_belady(const rp_trace_t *t, uint64_t pool_bytes,
                      rp_result_t *res)
{
    size_t *next = malloc(t->n * sizeof(size_t));
    size_t *last = malloc((size_t)t->nkeys * sizeof(size_t));
    size_t *cur = malloc((size_t)t->nkeys * sizeof(size_t)); /* resident:
                                                           its next use */
    uint64_t *len = calloc(t->nkeys, sizeof(uint64_t));      /* resident: > 0 */
    rp_heap_t h = {.e = malloc(t->n * sizeof(rp_heap_ent_t)), .n = 0};
    uint64_t used = 0;
    bool ok = (next != NULL) && (last != NULL) && (cur != NULL) &&
              (len != NULL) && (h.e != NULL);

    memset(res, 0, sizeof(*res));
    for (uint32_t k = 0; ok && (k < t->nkeys); k++) {
        last[k] = RP_NEVER;
    }
    for (size_t i = t->n; ok && (i-- > 0);) {
        next[i] = last[t->reqs[i].key];
        last[t->reqs[i].key] = i;
    }
    for (size_t i = 0; ok && (i < t->n); i++) {
        const rp_req_t *r = &t->reqs[i];
        uint64_t need = RP_ROUND(r->size);

        res->gets += (r->op == RP_GET);
        if (len[r->key] > 0) { /* resident */
            res->hits += (r->op == RP_GET);
            cur[r->key] = next[i];
            rp_heap_push(&h, next[i], r->key);
            continue;
        }
        if (need > pool_bytes) {
            res->uncached++;
            continue;
        }
        while (used + need > pool_bytes) {
            rp_heap_ent_t e = rp_heap_pop(&h);

            if ((len[e.key] == 0) || (cur[e.key] != e.next)) {
                continue; /* stale */
            }
            used -= len[e.key];
            len[e.key] = 0;
            res->evictions++;
        }
        len[r->key] = need;
        used += need;
        cur[r->key] = next[i];
        rp_heap_push(&h, next[i], r->key);
        res->puts++;
    }
    if (!ok) {
        fprintf(stderr, "mmc-trace-replay: out of memory for Belady's "
                        "replay\n");
    }
    free(next);
    free(last);
    free(cur);
    free(len);
    free(h.e);
    return ok;
}
