/*
 * mmc-trace-replay: the hit rate of each eviction policy of mmc-meta, and
 * of Belady's optimum, on a recorded or generated trace.
 *
 *   mmc-trace-replay [--trace FILE | --gen prefix|zipf|chat [knobs]]
 *                    [--pool BYTES | --pool-objects N] [--policies LIST]
 *                    [--small-pct N] [--watermarks HIGH,LOW] [--write FILE]
 *
 * The policies run the meta service's own state machine (one segment of
 * the pool's size, in this process), so what it prints is what mmc-meta
 * would do with that pool and those settings; Belady's optimum knows the
 * future and bounds what any policy can hit.
 */
#include "replay.h"

#include "cache/meta/meta_state.h"
#include "util/config.h"
#include "util/log.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* An LLM KV block of the upstream project's prefix-cache workload: 61
 * layers of 128 KiB (K and V) and 61 of 16 KiB. */
#define RP_KV_BLOCK (61ull * (128 << 10) + 61ull * (16 << 10))

static void rp_usage(FILE *out)
{
    fprintf(out,
            "usage: mmc-trace-replay [options]\n"
            "  --trace FILE        replay FILE ('-': stdin), lines of\n"
            "                      '[get|put] <key> <size>'\n"
            "  --gen SHAPE         or generate one: prefix (default), zipf, "
            "chat\n"
            "    --prefixes N      prefix: prefixes (400), asked in turn\n"
            "    --rounds N        prefix: times each (25)\n"
            "    --blocks N        prefix: blocks per prefix (1)\n"
            "    --keys N          zipf: distinct keys (100000)\n"
            "    --alpha F         zipf: skew (0.99)\n"
            "    --requests N      zipf, chat: requests (1000000, 200000)\n"
            "    --active N        chat: conversations at once (40)\n"
            "    --turns N         chat: turns of each (8)\n"
            "    --size BYTES      bytes per object (61 x 128K + 61 x 16K)\n"
            "    --seed N          of zipf and chat (1)\n"
            "  --pool BYTES        pool size, or\n"
            "  --pool-objects N    room for N of the largest object (236)\n"
            "  --policies LIST     of lru, s3fifo, belady (all)\n"
            "  --small-pct N       s3fifo's evict_small_pct (10)\n"
            "  --watermarks H,L    background eviction between H%% and L%% "
            "of the pool, as evict_high_pct and evict_low_pct (default "
            "100,0: puts evict what they need)\n"
            "  --write FILE        also write the trace to FILE\n");
}

static const char *rp_opt_name; /* of the option being parsed */

static bool rp_num(const char *opt, const char *text, uint64_t min,
                   uint64_t max, uint64_t *v)
{
    if ((mf_parse_size(text, v) != MF_OK) || (*v < min) || (*v > max)) {
        fprintf(stderr, "mmc-trace-replay: --%s %s: expected %llu..%llu\n", opt,
                text, (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    return true;
}

/* A count knob of the generator: 1..max. */
static bool rp_u32(const char *text, uint32_t max, uint32_t *v)
{
    uint64_t n;

    if (!rp_num(rp_opt_name, text, 1, max, &n)) {
        return false;
    }
    *v = (uint32_t)n;
    return true;
}

static void rp_row(const char *name, const rp_result_t *r)
{
    printf("%-8s %12llu %12llu %9.1f%% %12llu\n", name,
           (unsigned long long)r->hits, (unsigned long long)r->gets,
           (r->gets > 0) ? 100.0 * (double)r->hits / (double)r->gets : 0.0,
           (unsigned long long)r->evictions);
}

int main(int argc, char **argv)
{
    enum {
        O_TRACE = 256,
        O_GEN,
        O_PREFIXES,
        O_ROUNDS,
        O_BLOCKS,
        O_KEYS,
        O_ALPHA,
        O_REQUESTS,
        O_ACTIVE,
        O_TURNS,
        O_SIZE,
        O_SEED,
        O_POOL,
        O_POOL_OBJECTS,
        O_POLICIES,
        O_SMALL,
        O_MARKS,
        O_WRITE,
        O_HELP
    };
    static const struct option opts[] = {
        {"trace", required_argument, NULL, O_TRACE},
        {"gen", required_argument, NULL, O_GEN},
        {"prefixes", required_argument, NULL, O_PREFIXES},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"blocks", required_argument, NULL, O_BLOCKS},
        {"keys", required_argument, NULL, O_KEYS},
        {"alpha", required_argument, NULL, O_ALPHA},
        {"requests", required_argument, NULL, O_REQUESTS},
        {"active", required_argument, NULL, O_ACTIVE},
        {"turns", required_argument, NULL, O_TURNS},
        {"size", required_argument, NULL, O_SIZE},
        {"seed", required_argument, NULL, O_SEED},
        {"pool", required_argument, NULL, O_POOL},
        {"pool-objects", required_argument, NULL, O_POOL_OBJECTS},
        {"policies", required_argument, NULL, O_POLICIES},
        {"small-pct", required_argument, NULL, O_SMALL},
        {"watermarks", required_argument, NULL, O_MARKS},
        {"write", required_argument, NULL, O_WRITE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    rp_gen_t g = {.shape = "prefix",
                  .prefixes = 400,
                  .rounds = 25,
                  .blocks = 1,
                  .keys = 100000,
                  .alpha = 0.99,
                  .requests = 0,
                  .active = 40,
                  .turns = 8,
                  .size = RP_KV_BLOCK,
                  .seed = 1};
    const char *trace = NULL, *write = NULL, *policies = "lru,s3fifo,belady";
    uint64_t pool = 0, pool_objects = 236, small = 10, high = 100, low = 0;
    char *list, *tok, *save = NULL, *end;
    rp_trace_t t;
    int c, idx = 0, rc = 0;

    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        bool ok = true;

        rp_opt_name = opts[idx].name;

        switch (c) {
        case O_TRACE:
            trace = optarg;
            break;
        case O_GEN:
            g.shape = optarg;
            break;
        case O_PREFIXES:
            ok = rp_u32(optarg, 1u << 24, &g.prefixes);
            break;
        case O_ROUNDS:
            ok = rp_u32(optarg, 1u << 20, &g.rounds);
            break;
        case O_BLOCKS:
            ok = rp_u32(optarg, 1u << 16, &g.blocks);
            break;
        case O_KEYS:
            ok = rp_u32(optarg, 1u << 28, &g.keys);
            break;
        case O_ALPHA:
            g.alpha = strtod(optarg, &end);
            ok = (*end == '\0') && (g.alpha > 0) && (g.alpha < 10);
            if (!ok) {
                fprintf(stderr,
                        "mmc-trace-replay: --alpha %s: expected a "
                        "number in (0, 10)\n",
                        optarg);
            }
            break;
        case O_REQUESTS:
            ok = rp_u32(optarg, 1u << 30, &g.requests);
            break;
        case O_ACTIVE:
            ok = rp_u32(optarg, 1u << 24, &g.active);
            break;
        case O_TURNS:
            ok = rp_u32(optarg, 1u << 16, &g.turns);
            break;
        case O_SIZE:
            ok = rp_num("size", optarg, 1, 1ull << 40, &g.size);
            break;
        case O_SEED:
            ok = rp_num("seed", optarg, 0, UINT64_MAX, &g.seed);
            break;
        case O_POOL:
            ok = rp_num("pool", optarg, 4096, 1ull << 46, &pool);
            break;
        case O_POOL_OBJECTS:
            ok = rp_num("pool-objects", optarg, 1, 1ull << 32, &pool_objects);
            pool = 0;
            break;
        case O_POLICIES:
            policies = optarg;
            break;
        case O_SMALL:
            ok = rp_num("small-pct", optarg, 1, 90, &small);
            break;
        case O_MARKS:
            ok = (sscanf(optarg, "%" SCNu64 ",%" SCNu64, &high, &low) == 2) &&
                 (high >= 1) && (high <= 100) && (low < high);
            if (!ok) {
                fprintf(stderr,
                        "mmc-trace-replay: --watermarks %s: expected "
                        "HIGH,LOW with 1 <= HIGH <= 100, LOW < "
                        "HIGH\n",
                        optarg);
            }
            break;
        case O_WRITE:
            write = optarg;
            break;
        case O_HELP:
        case 'h':
            rp_usage(stdout);
            return 0;
        default:
            rp_usage(stderr);
            return 2;
        }
        if (!ok) {
            return 2;
        }
    }
    if (optind != argc) {
        rp_usage(stderr);
        return 2;
    }
    if (g.requests == 0) {
        g.requests = (strcmp(g.shape, "chat") == 0) ? 200000 : 1000000;
    }
    mf_log_set_level(MF_LOG_ERROR);
    rp_trace_init(&t);
    if (!((trace != NULL) ? rp_trace_read(&t, trace)
                          : rp_trace_generate(&t, &g)) ||
        ((write != NULL) && !rp_trace_write(&t, write))) {
        rp_trace_free(&t);
        return 1;
    }
    if (pool == 0) {
        pool = pool_objects * RP_ROUND(t.max_size);
    }
    printf("# mmc-trace-replay: %s\n", t.desc);
    printf("# %zu requests (%llu gets), %u keys; pool %llu bytes (%.1f of "
           "the largest object); %s\n",
           t.n, (unsigned long long)t.gets, t.nkeys, (unsigned long long)pool,
           (double)pool / (double)RP_ROUND(t.max_size),
           (high == 100) ? "puts evict what they need"
                         : "background eviction between the watermarks");
    printf("%-8s %12s %12s %10s %12s\n", "policy", "hits", "gets", "hit rate",
           "evictions");
    list = strdup(policies);
    for (tok = strtok_r(list, ",", &save); (tok != NULL) && (rc == 0);
         tok = strtok_r(NULL, ",", &save)) {
        int policy = mmc_evict_policy_parse(tok);
        rp_result_t r;
        bool ok;

        if (strcmp(tok, "belady") == 0) {
            ok = rp_replay_belady(&t, pool, &r);
        } else if (policy >= 0) {
            ok = rp_replay_meta(&t, pool, (uint32_t)policy, (uint32_t)small,
                                (uint32_t)high, (uint32_t)low, &r);
        } else {
            fprintf(stderr,
                    "mmc-trace-replay: unknown policy '%s' (lru, "
                    "s3fifo, belady)\n",
                    tok);
            rc = 2;
            break;
        }
        if (!ok) {
            rc = 1;
            break;
        }
        rp_row(tok, &r);
    }
    free(list);
    rp_trace_free(&t);
    return rc;
}
