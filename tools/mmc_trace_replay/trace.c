/*
 * Traces: interned keys, text in and out, and the generated shapes.
 *
 * The text form, one request per line ('#' starts a comment):
 *     [get|put] <key> <size>
 * where a line without an op is a get; keys are up to MMC_KEY_MAX bytes
 * without blanks.
 *
 * Shapes:
 *   prefix  prefixes x rounds: every prefix's first request, then every
 *           second one, ... (a shared prefix reused by many requests in
 *           turn); each request reads the prefix's blocks.  A loop over
 *           more blocks than fit: lru's worst case.
 *   zipf    requests over keys with Zipf(alpha) popularity, seeded.
 *   chat    conversations, `active` at once, each of `turns` turns taken
 *           at random among them: a turn reads the conversation's blocks
 *           so far and puts one new block.  Reuse soon after a put, the
 *           recency lru is built for.
 */
#include "replay.h"

#include <memcache/mmc.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void rp_trace_init(rp_trace_t *t)
{
    memset(t, 0, sizeof(*t));
    mf_hmap_init(&t->ids);
}

void rp_trace_free(rp_trace_t *t)
{
    for (uint32_t i = 0; i < t->nkeys; i++) {
        free(t->names[i]);
    }
    free(t->names);
    free(t->reqs);
    mf_hmap_free(&t->ids);
    memset(t, 0, sizeof(*t));
}

static bool rp_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t n = (*cap != 0) ? *cap : 1024;
    void *q;

    if (need <= *cap) {
        return true;
    }
    while (n < need) {
        n *= 2;
    }
    q = realloc(*p, n * elem);
    if (q == NULL) {
        return false;
    }
    *p = q;
    *cap = n;
    return true;
}

static bool rp_intern(rp_trace_t *t, const char *key, uint32_t *id_p)
{
    size_t len = strlen(key);
    uintptr_t id = (uintptr_t)mf_hmap_get(&t->ids, key, len);
    size_t cap = t->names_cap;
    char *name;

    if (id != 0) {
        *id_p = (uint32_t)(id - 1);
        return true;
    }
    if (!rp_grow((void **)&t->names, &cap, (size_t)t->nkeys + 1,
                 sizeof(char *))) {
        return false;
    }
    t->names_cap = (uint32_t)cap;
    name = strdup(key);
    if ((name == NULL) ||
        (mf_hmap_put(&t->ids, key, len, (void *)(uintptr_t)(t->nkeys + 1),
                     NULL) != MF_OK)) {
        free(name);
        return false;
    }
    t->names[t->nkeys] = name;
    *id_p = t->nkeys++;
    return true;
}

bool rp_trace_add(rp_trace_t *t, const char *key, uint32_t op, uint64_t size)
{
    rp_req_t *r;
    uint32_t id;

    if (!rp_grow((void **)&t->reqs, &t->cap, t->n + 1, sizeof(*t->reqs)) ||
        !rp_intern(t, key, &id)) {
        fprintf(stderr, "mmc-trace-replay: out of memory at request %zu\n",
                t->n + 1);
        return false;
    }
    r = &t->reqs[t->n++];
    r->key = id;
    r->op = op;
    r->size = size;
    t->max_size = (size > t->max_size) ? size : t->max_size;
    t->gets += (op == RP_GET);
    return true;
}

bool rp_trace_read(rp_trace_t *t, const char *path)
{
    FILE *f = (strcmp(path, "-") == 0) ? stdin : fopen(path, "r");
    char line[1024];
    unsigned long lineno = 0;
    bool ok = true;

    if (f == NULL) {
        fprintf(stderr, "mmc-trace-replay: cannot open %s: %s\n", path,
                strerror(errno));
        return false;
    }
    while (ok && (fgets(line, sizeof(line), f) != NULL)) {
        char *tok[4], *save = NULL, *p;
        unsigned long long size;
        uint32_t op = RP_GET;
        int n = 0;

        lineno++;
        if ((p = strchr(line, '#')) != NULL) {
            *p = '\0';
        }
        for (p = strtok_r(line, " \t\r\n", &save); (p != NULL) && (n < 4);
             p = strtok_r(NULL, " \t\r\n", &save)) {
            tok[n++] = p;
        }
        if (n == 0) {
            continue;
        }
        if ((n == 3) &&
            (strcmp(tok[0], "get") == 0 || strcmp(tok[0], "put") == 0)) {
            op = (tok[0][0] == 'p') ? RP_PUT : RP_GET;
            tok[0] = tok[1];
            tok[1] = tok[2];
            n = 2;
        }
        errno = 0;
        size = (n == 2) ? strtoull(tok[1], &p, 10) : 0;
        if ((n != 2) || (errno != 0) || (*p != '\0') || (size == 0) ||
            (strlen(tok[0]) > MMC_KEY_MAX)) {
            fprintf(stderr,
                    "mmc-trace-replay: %s:%lu: expected '[get|put] <key> "
                    "<size>' (a key of at most %d bytes, a size above 0)\n",
                    path, lineno, MMC_KEY_MAX);
            ok = false;
            break;
        }
        ok = rp_trace_add(t, tok[0], op, size);
    }
    if (ok && ferror(f)) {
        fprintf(stderr, "mmc-trace-replay: reading %s: %s\n", path,
                strerror(errno));
        ok = false;
    }
    if (f != stdin) {
        fclose(f);
    }
    if (ok && (t->n == 0)) {
        fprintf(stderr, "mmc-trace-replay: %s holds no request\n", path);
        ok = false;
    }
    snprintf(t->desc, sizeof(t->desc), "%s", path);
    return ok;
}

bool rp_trace_write(const rp_trace_t *t, const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "mmc-trace-replay: cannot create %s: %s\n", path,
                strerror(errno));
        return false;
    }
    fprintf(f, "# mmc-trace-replay trace: %s\n", t->desc);
    for (size_t i = 0; i < t->n; i++) {
        const rp_req_t *r = &t->reqs[i];

        fprintf(f, "%s %s %llu\n", (r->op == RP_PUT) ? "put" : "get",
                t->names[r->key], (unsigned long long)r->size);
    }
    if ((fclose(f) != 0)) {
        fprintf(stderr, "mmc-trace-replay: writing %s: %s\n", path,
                strerror(errno));
        return false;
    }
    return true;
}

/* ---- generated shapes ---- */

/* splitmix64: seeded, the same trace on every machine. */
static uint64_t rp_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rp_unit(uint64_t *s)
{
    return (double)(rp_rand(s) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static bool rp_gen_prefix(rp_trace_t *t, const rp_gen_t *g)
{
    char key[64];

    for (uint32_t r = 0; r < g->rounds; r++) {
        for (uint32_t p = 0; p < g->prefixes; p++) {
            for (uint32_t b = 0; b < g->blocks; b++) {
                snprintf(key, sizeof(key), "p%u-b%u", p, b);
                if (!rp_trace_add(t, key, RP_GET, g->size)) {
                    return false;
                }
            }
        }
    }
    snprintf(t->desc, sizeof(t->desc),
             "prefix: %u prefixes x %u rounds, %u block(s) of %llu bytes "
             "each",
             g->prefixes, g->rounds, g->blocks, (unsigned long long)g->size);
    return true;
}

static bool rp_gen_zipf(rp_trace_t *t, const rp_gen_t *g)
{
    double *cdf = malloc((size_t)g->keys * sizeof(double));
    uint32_t *perm = malloc((size_t)g->keys * sizeof(uint32_t));
    uint64_t s = g->seed;
    double sum = 0;
    bool ok = (cdf != NULL) && (perm != NULL);
    char key[64];

    for (uint32_t i = 0; ok && (i < g->keys); i++) {
        sum += 1.0 / pow((double)i + 1, g->alpha);
        cdf[i] = sum;
        perm[i] = i;
    }
    for (uint32_t i = g->keys; ok && (i > 1); i--) { /* ranks to keys */
        uint32_t j = (uint32_t)(rp_rand(&s) % i);
        uint32_t tmp = perm[i - 1];

        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
    for (uint32_t n = 0; ok && (n < g->requests); n++) {
        double u = rp_unit(&s) * sum;
        uint32_t lo = 0, hi = g->keys - 1;

        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;

            if (cdf[mid] < u) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        snprintf(key, sizeof(key), "z%u", perm[lo]);
        ok = rp_trace_add(t, key, RP_GET, g->size);
    }
    free(cdf);
    free(perm);
    snprintf(t->desc, sizeof(t->desc),
             "zipf: %u requests over %u keys, alpha %.2f, %llu bytes each",
             g->requests, g->keys, g->alpha, (unsigned long long)g->size);
    return ok;
}

static bool rp_gen_chat(rp_trace_t *t, const rp_gen_t *g)
{
    uint32_t *conv = calloc(g->active, sizeof(uint32_t)); /* its id */
    uint32_t *turn = calloc(g->active, sizeof(uint32_t)); /* turns taken */
    uint64_t s = g->seed;
    uint32_t next = 0;
    bool ok = (conv != NULL) && (turn != NULL);
    char key[64];

    for (uint32_t i = 0; ok && (i < g->active); i++) {
        conv[i] = next++;
    }
    while (ok && (t->n < g->requests)) {
        uint32_t c = (uint32_t)(rp_rand(&s) % g->active);

        for (uint32_t b = 0; ok && (b < turn[c]); b++) {
            snprintf(key, sizeof(key), "c%u-b%u", conv[c], b);
            ok = rp_trace_add(t, key, RP_GET, g->size);
        }
        snprintf(key, sizeof(key), "c%u-b%u", conv[c], turn[c]);
        ok = ok && rp_trace_add(t, key, RP_PUT, g->size);
        if (++turn[c] == g->turns) { /* over: a new one takes its place */
            conv[c] = next++;
            turn[c] = 0;
        }
    }
    free(conv);
    free(turn);
    snprintf(t->desc, sizeof(t->desc),
             "chat: %u conversations at once, %u turns each, %zu requests, "
             "%llu bytes per block",
             g->active, g->turns, t->n, (unsigned long long)g->size);
    return ok;
}

bool rp_trace_generate(rp_trace_t *t, const rp_gen_t *g)
{
    if (strcmp(g->shape, "prefix") == 0) {
        return rp_gen_prefix(t, g);
    }
    if (strcmp(g->shape, "zipf") == 0) {
        return rp_gen_zipf(t, g);
    }
    if (strcmp(g->shape, "chat") == 0) {
        return rp_gen_chat(t, g);
    }
    fprintf(stderr,
            "mmc-trace-replay: unknown shape '%s' (prefix, zipf, chat)\n",
            g->shape);
    return false;
}
