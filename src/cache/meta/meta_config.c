/*
 * The settings of the meta service (mmc-meta.conf): one declarative table
 * that gives mmc_meta_config_init() its defaults and the mmc-meta daemon
 * its config file, environment (MMC_META_<KEY>), --help and --dump-config.
 *
 * The table works on a private mirror of the public struct (the public
 * struct keeps the log level as a name, the table parses it to a number).
 * Every public call converts to the mirror, applies the change and
 * converts back only when all of it succeeded: a failed set or file load
 * leaves the caller's struct as it was.
 *
 * Checks come in two kinds:
 *   - of one value (bounds from the table, plus the few the table cannot
 *     say: alloc_align a power of two, page-aligned host_base and
 *     max_segment_size, device_base and max_hbm_segment_size multiples of
 *     MMC_META_HBM_ALIGN, a non-empty addr), made whenever a value is set,
 *     with the origin (file:line, variable) in the message;
 *   - across values (the GVA window host_base + max_ranks x
 *     max_segment_size must end within the 47-bit user address space, and
 *     so must the device window device_base + max_ranks x
 *     max_hbm_segment_size, apart from the host window, when the pool has
 *     one; evict_low_pct below evict_high_pct),
 *     made by mmc_meta_config_check() once every source is applied, so
 *     that the order of settings does not matter.
 */
#include "cache/meta/meta_config.h"
#include "cache/meta/meta_state.h"
#include "cache/proto/proto.h"

#include "mem/mem.h"
#include "util/config.h"
#include "util/log.h"
#include "util/misc.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The user address space of x86-64 and aarch64 (4-level page tables). */
#define MMC_META_VA_LIMIT (1ull << 47)

typedef struct mmc_meta_opts {
    mmc_meta_config_t cfg; /* log_level unused: see log_level below */
    int log_level;         /* mf_log_level_t */
} mmc_meta_opts_t;

#define MMC_META_OPT(_name, _type, _def, _min, _max, _help)                    \
    {                                                                          \
        .name = #_name, .type = _type,                                         \
        .offset = offsetof(mmc_meta_opts_t, cfg._name), .default_value = _def, \
        .min = _min, .max = _max, .help = _help                                \
    }

static const mf_cfg_entry_t mmc_meta_cfg_entries[] = {
    {"addr", MF_CFG_STR, offsetof(mmc_meta_opts_t, cfg.addr),
     sizeof(((mmc_meta_config_t *)0)->addr), "0.0.0.0", 0, 0,
     "address the RPC, config store and HTTP servers listen on"},
    MMC_META_OPT(port, MF_CFG_U32, "5800", 0, 65535,
                 "RPC port that local services connect to; 0 picks a free "
                 "port"),
    MMC_META_OPT(store_port, MF_CFG_U32, "5801", 0, 65535,
                 "port of the pool's MemFabric config store; 0 picks a "
                 "free port"),
    MMC_META_OPT(http_port, MF_CFG_U32, "5802", 0, 65535,
                 "HTTP port (/health, /metrics, /segments, /key/<key>); 0 "
                 "picks a free port"),
    MMC_META_OPT(http_enable, MF_CFG_BOOL, "true", 0, 0, "serve HTTP at all"),
    MMC_META_OPT(pool_id, MF_CFG_U32, "1", 0, 0, "MemFabric BM id of the pool"),
    MMC_META_OPT(max_ranks, MF_CFG_U32, "64", 1, 65536,
                 "ranks of the pool (BM world size)"),
    MMC_META_OPT(max_segment_size, MF_CFG_SIZE, MMC_META_DEFAULT_SEGMENT, 4096,
                 MMC_META_VA_LIMIT,
                 "largest segment a rank may contribute (its GVA stride); "
                 "page aligned"),
    MMC_META_OPT(host_base, MF_CFG_U64, MF_MEM_DEFAULT_BASE_STR, 0, 0,
                 "GVA window base of host segments; page aligned, the same "
                 "in every process of the pool"),
    MMC_META_OPT(max_hbm_segment_size, MF_CFG_SIZE, "0", 0, MMC_META_VA_LIMIT,
                 "largest HBM (device memory) segment a rank may contribute "
                 "(its device GVA stride); a multiple of 2M; 0: the pool "
                 "has no device window and takes no HBM"),
    MMC_META_OPT(device_base, MF_CFG_U64, MF_MEM_DEFAULT_DEVICE_BASE_STR, 0, 0,
                 "GVA window base of HBM segments; a multiple of 2M, apart "
                 "from the host window, the same in every process of the "
                 "pool"),
    MMC_META_OPT(alloc_align, MF_CFG_SIZE, "4096", 4096, 1u << 30,
                 "alignment of replicas in segments; a power of two"),
    MMC_META_OPT(lease_ms, MF_CFG_MS, "30s", 1, 86400000,
                 "read lease duration"),
    MMC_META_OPT(put_timeout_ms, MF_CFG_MS, "30s", 1, 86400000,
                 "an uncommitted put is aborted after this long"),
    MMC_META_OPT(max_batch, MF_CFG_U32, "16384", 1, MMC_BATCH_MAX,
                 "keys per request"),
    MMC_META_OPT(max_clients, MF_CFG_U32, "4096", 1, 1u << 20,
                 "most connections to the RPC server at once"),
    MMC_META_OPT(evict_high_pct, MF_CFG_U32, "90", 1, 100,
                 "background eviction starts when a segment is fuller than "
                 "this percentage of its capacity (100: only puts that find "
                 "no room evict)"),
    MMC_META_OPT(evict_low_pct, MF_CFG_U32, "80", 0, 99,
                 "background eviction stops at this percentage; below "
                 "evict_high_pct"),
    MMC_META_OPT(evict_max_per_put, MF_CFG_U32, "256", 0, 1u << 20,
                 "objects a put item that finds no room may evict before it "
                 "fails with no space (0: none)"),
    {"evict_policy", MF_CFG_STR, offsetof(mmc_meta_opts_t, cfg.evict_policy),
     sizeof(((mmc_meta_config_t *)0)->evict_policy), "lru", 0, 0,
     "which objects eviction takes first: lru (least recently used) or "
     "s3fifo (new objects on probation: keeps a share of a loop over more "
     "objects than fit, where lru keeps none; mmc-trace-replay compares "
     "them on a trace)"},
    MMC_META_OPT(evict_small_pct, MF_CFG_U32, "10", 1, 90,
                 "s3fifo: the share of a segment's capacity that new "
                 "objects get on probation"),
    MMC_META_OPT(member_timeout_ms, MF_CFG_MS, "10s", 0, 86400000,
                 "a connection that sends nothing for this long is closed "
                 "and its rank dropped (clients ping at a quarter of it); 0 "
                 "never"),
    MMC_META_OPT(repair_max_active, MF_CFG_U32, "8", 0, 4096,
                 "objects that lost replicas with their holder are copied "
                 "again to other ranks, this many at once (0: never)"),
    MMC_META_OPT(repair_rate, MF_CFG_SIZE, "1G", 1, 1ull << 50,
                 "bytes per second those copies take at most"),
    MMC_META_OPT(repair_timeout_ms, MF_CFG_MS, "30s", 1, 86400000,
                 "a copy not reported done within this is given up (and "
                 "tried again)"),
    MMC_META_OPT(repair_delay_ms, MF_CFG_MS, "10s", 0, 86400000,
                 "no copies for this long after the start, while holders "
                 "come back with their records"),
    {"etcd_endpoints", MF_CFG_STR,
     offsetof(mmc_meta_opts_t, cfg.etcd_endpoints),
     sizeof(((mmc_meta_config_t *)0)->etcd_endpoints), "", 0, 0,
     "etcd endpoints (http://host:port, comma-separated) to elect the "
     "leader among several mmc-meta through; empty: run alone"},
    {"ha_key", MF_CFG_STR, offsetof(mmc_meta_opts_t, cfg.ha_key),
     sizeof(((mmc_meta_config_t *)0)->ha_key), "", 0, 0,
     "etcd key the leader holds; empty: /memcache/<pool_id>/leader"},
    MMC_META_OPT(ha_ttl_ms, MF_CFG_MS, "3s", 2000, 60000,
                 "lease of the leader key (whole seconds): a leader that "
                 "cannot renew it for half of it stops serving, and "
                 "another takes over once it ran out"),
    {"advertise", MF_CFG_STR, offsetof(mmc_meta_opts_t, cfg.advertise),
     sizeof(((mmc_meta_config_t *)0)->advertise), "", 0, 0,
     "what the leader key says of the leader (its RPC URL); empty: "
     "tcp://<addr>:<port>"},
    MMC_META_OPT(idle_timeout_ms, MF_CFG_MS, "15s", 1, 86400000,
                 "a connection to any port (RPC, config store, HTTP) that "
                 "sends nothing, or reads nothing of a pending response, "
                 "for this long is closed"),
    {"log_level", MF_CFG_LOGLVL, offsetof(mmc_meta_opts_t, log_level), 0,
     "warn", 0, 0, "log level: off, error, warn, info, debug, trace"},
    {"trace", MF_CFG_STR, offsetof(mmc_meta_opts_t, cfg.trace),
     sizeof(((mmc_meta_config_t *)0)->trace), "", 0, 0,
     "the built-in tracer: log (every trace point's figures to the log at "
     "exit), a file path (to that file), or empty: off (GET /trace serves "
     "them while on); MF_TRACE wins"},
    {"http_addr", MF_CFG_STR, offsetof(mmc_meta_opts_t, cfg.http_addr),
     sizeof(((mmc_meta_config_t *)0)->http_addr), "", 0, 0,
     "address the HTTP server listens on (e.g. 127.0.0.1 to keep /metrics "
     "on the host); empty: addr"},
    MMC_META_OPT(http_tls, MF_CFG_BOOL, "true", 0, 0,
                 "with tls.enable, HTTP is https; false keeps it plain (for "
                 "a scraper on this host, with http_addr = 127.0.0.1)"),
    MF_TLS_CFG_ENTRIES(mmc_meta_opts_t, cfg.tls),
};

static const mf_cfg_table_t mmc_meta_cfg_table = {
    .component = "mmc-meta",
    .env_prefix = "MMC_META_",
    .entries = mmc_meta_cfg_entries,
    .count = MF_CFG_COUNT(mmc_meta_cfg_entries),
};

static const char *const mmc_meta_log_names[] = {"off",  "error", "warn",
                                                 "info", "debug", "trace"};

/* MF_ERR_CONFIG when cfg->log_level names no level (the mirror then holds
 * the default level). */
static mf_status_t mmc_meta_opts_from_cfg(mmc_meta_opts_t *o,
                                          const mmc_meta_config_t *cfg)
{
    int level = mf_log_level_parse(cfg->log_level);

    memset(o, 0, sizeof(*o));
    o->cfg = *cfg;
    if (level < 0) {
        o->log_level = MF_LOG_WARN;
        return MF_ERR_CONFIG;
    }
    o->log_level = level;
    return MF_OK;
}

static void mmc_meta_opts_to_cfg(const mmc_meta_opts_t *o,
                                 mmc_meta_config_t *cfg)
{
    int level = o->log_level;

    *cfg = o->cfg;
    if (level < MF_LOG_OFF || level > MF_LOG_TRACE) {
        level = MF_LOG_WARN;
    }
    mf_strlcpy(cfg->log_level, mmc_meta_log_names[level],
               sizeof(cfg->log_level));
}

static bool mmc_meta_is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* The checks of one value that the table cannot express. */
static mf_status_t mmc_meta_opts_check_key(const mmc_meta_opts_t *o,
                                           const char *key, const char *origin)
{
    const mmc_meta_config_t *c = &o->cfg;
    uint64_t page = mf_page_size();

    if (strcmp(key, "addr") == 0 && c->addr[0] == '\0') {
        mf_error("mmc-meta: %s: 'addr' must not be empty (0.0.0.0 listens "
                 "on every interface)",
                 origin);
        return MF_ERR_CONFIG;
    }
    if (strcmp(key, "evict_policy") == 0 &&
        mmc_evict_policy_parse(c->evict_policy) < 0) {
        mf_error("mmc-meta: %s: bad value '%s' for 'evict_policy': expected "
                 "lru or s3fifo",
                 origin, c->evict_policy);
        return MF_ERR_CONFIG;
    }
    if (strcmp(key, "alloc_align") == 0 && !mmc_meta_is_pow2(c->alloc_align)) {
        mf_error("mmc-meta: %s: 'alloc_align' %llu is not a power of two",
                 origin, (unsigned long long)c->alloc_align);
        return MF_ERR_CONFIG;
    }
    if (strcmp(key, "max_segment_size") == 0 &&
        c->max_segment_size % page != 0) {
        mf_error("mmc-meta: %s: 'max_segment_size' %llu is not a multiple "
                 "of the page size %llu",
                 origin, (unsigned long long)c->max_segment_size,
                 (unsigned long long)page);
        return MF_ERR_CONFIG;
    }
    if (strcmp(key, "host_base") == 0 &&
        (c->host_base == 0 || c->host_base % page != 0 ||
         c->host_base >= MMC_META_VA_LIMIT)) {
        mf_error("mmc-meta: %s: 'host_base' 0x%llx must be non-zero, a "
                 "multiple of the page size %llu and below 0x%llx",
                 origin, (unsigned long long)c->host_base,
                 (unsigned long long)page,
                 (unsigned long long)MMC_META_VA_LIMIT);
        return MF_ERR_CONFIG;
    }
    if (strcmp(key, "max_hbm_segment_size") == 0 &&
        c->max_hbm_segment_size % MMC_META_HBM_ALIGN != 0) {
        mf_error("mmc-meta: %s: 'max_hbm_segment_size' %llu is not a "
                 "multiple of 2M",
                 origin, (unsigned long long)c->max_hbm_segment_size);
        return MF_ERR_CONFIG;
    }
    if (strcmp(key, "device_base") == 0 &&
        (c->device_base == 0 || c->device_base % MMC_META_HBM_ALIGN != 0 ||
         c->device_base >= MMC_META_VA_LIMIT)) {
        mf_error("mmc-meta: %s: 'device_base' 0x%llx must be non-zero, a "
                 "multiple of 2M and below 0x%llx",
                 origin, (unsigned long long)c->device_base,
                 (unsigned long long)MMC_META_VA_LIMIT);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

/* The device window, when the pool has one: inside the address space and
 * apart from the host window [host_base, host_base + host_len). */
static mf_status_t mmc_meta_check_device_window(const mmc_meta_config_t *c,
                                                uint64_t host_len)
{
    uint64_t len, end;

    if (c->max_hbm_segment_size == 0) {
        return MF_OK;
    }
    if (__builtin_mul_overflow((uint64_t)c->max_ranks, c->max_hbm_segment_size,
                               &len) ||
        __builtin_add_overflow(c->device_base, len, &end) ||
        end > MMC_META_VA_LIMIT) {
        mf_error("mmc-meta: config: the device window does not fit: "
                 "device_base 0x%llx + max_ranks %u x max_hbm_segment_size "
                 "%llu goes beyond the 47-bit address space (0x%llx)",
                 (unsigned long long)c->device_base, c->max_ranks,
                 (unsigned long long)c->max_hbm_segment_size,
                 (unsigned long long)MMC_META_VA_LIMIT);
        return MF_ERR_CONFIG;
    }
    if (c->device_base < c->host_base + host_len && c->host_base < end) {
        mf_error("mmc-meta: config: the device window 0x%llx..0x%llx meets "
                 "the host window 0x%llx..0x%llx; move device_base",
                 (unsigned long long)c->device_base, (unsigned long long)end,
                 (unsigned long long)c->host_base,
                 (unsigned long long)(c->host_base + host_len));
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

/* Parses one value into the mirror and checks it. */
static mf_status_t mmc_meta_opts_set(mmc_meta_opts_t *o, const char *key,
                                     const char *value, const char *origin)
{
    mf_status_t status;

    status = mf_cfg_set_from(&mmc_meta_cfg_table, o, key, value, origin);
    if (status != MF_OK) {
        return status;
    }
    return mmc_meta_opts_check_key(o, key, origin);
}

void mmc_meta_config_init(mmc_meta_config_t *cfg)
{
    mmc_meta_opts_t o;

    memset(&o, 0, sizeof(o));
    /* The defaults are constants of this file: they always parse. */
    (void)mf_cfg_set_defaults(&mmc_meta_cfg_table, &o);
    memset(cfg, 0, sizeof(*cfg));
    mmc_meta_opts_to_cfg(&o, cfg);
}

mf_status_t mmc_meta_config_set(mmc_meta_config_t *cfg, const char *key,
                                const char *value)
{
    mmc_meta_opts_t o;
    mf_status_t status;

    if (cfg == NULL || key == NULL || value == NULL) {
        return MF_ERR_INVALID;
    }
    (void)mmc_meta_opts_from_cfg(&o, cfg);
    status = mmc_meta_opts_set(&o, key, value, "setting");
    if (status != MF_OK) {
        return status;
    }
    mmc_meta_opts_to_cfg(&o, cfg);
    return MF_OK;
}

static char *mmc_meta_trim(char *start, char *end)
{
    while (start < end && isspace((unsigned char)*start)) {
        start++;
    }
    while (end > start && isspace((unsigned char)end[-1])) {
        end--;
    }
    *end = '\0';
    return start;
}

/*
 * One line of a file, the syntax of mf_cfg_load_string(): '#' starts a
 * comment, blank lines are skipped, whitespace around key and value and
 * one pair of double quotes around the value are stripped.
 */
static mf_status_t mmc_meta_opts_parse_line(mmc_meta_opts_t *o, char *line,
                                            const char *where)
{
    char *key, *value, *eq, *hash;
    size_t vlen;

    hash = strchr(line, '#');
    if (hash != NULL) {
        *hash = '\0';
    }
    key = mmc_meta_trim(line, line + strlen(line));
    if (*key == '\0') {
        return MF_OK;
    }
    eq = strchr(key, '=');
    if (eq == NULL) {
        mf_error("mmc-meta: %s: expected 'key = value', got '%s'", where, key);
        return MF_ERR_CONFIG;
    }
    value = mmc_meta_trim(eq + 1, eq + 1 + strlen(eq + 1));
    key = mmc_meta_trim(key, eq);
    vlen = strlen(value);
    if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
        value[vlen - 1] = '\0';
        value++;
    }
    return mmc_meta_opts_set(o, key, value, where);
}

mf_status_t mmc_meta_config_load_file(mmc_meta_config_t *cfg, const char *path)
{
    mmc_meta_opts_t o;
    mf_status_t status = MF_OK;
    char where[512];
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    ssize_t n;
    FILE *f;

    if (cfg == NULL || path == NULL) {
        return MF_ERR_INVALID;
    }
    (void)mmc_meta_opts_from_cfg(&o, cfg);
    f = fopen(path, "r");
    if (f == NULL) {
        mf_error("mmc-meta: cannot open config file '%s': %m", path);
        return MF_ERR_CONFIG;
    }
    while (status == MF_OK) {
        errno = 0;
        n = getline(&line, &cap, f);
        if (n < 0) {
            if (ferror(f)) {
                mf_error("mmc-meta: cannot read config file '%s': %m", path);
                status = (errno == ENOMEM) ? MF_ERR_NOMEM : MF_ERR_CONFIG;
            }
            break;
        }
        lineno++;
        snprintf(where, sizeof(where), "%s:%u", path, lineno);
        if (strlen(line) != (size_t)n) {
            mf_error("mmc-meta: %s: contains a NUL byte", where);
            status = MF_ERR_CONFIG;
            break;
        }
        status = mmc_meta_opts_parse_line(&o, line, where);
    }
    free(line);
    fclose(f);
    if (status != MF_OK) {
        return status;
    }
    mmc_meta_opts_to_cfg(&o, cfg);
    return MF_OK;
}

mf_status_t mmc_meta_config_load_env(mmc_meta_config_t *cfg)
{
    mmc_meta_opts_t o;
    char name[128];

    if (cfg == NULL) {
        return MF_ERR_INVALID;
    }
    (void)mmc_meta_opts_from_cfg(&o, cfg);
    for (size_t i = 0; i < mmc_meta_cfg_table.count; i++) {
        const mf_cfg_entry_t *entry = &mmc_meta_cfg_table.entries[i];
        const char *value;
        mf_status_t status;

        mf_cfg_env_name(mmc_meta_cfg_table.env_prefix, entry->name, name,
                        sizeof(name));
        value = getenv(name);
        if (value == NULL) {
            continue;
        }
        status = mmc_meta_opts_set(&o, entry->name, value, name);
        if (status != MF_OK) {
            return status;
        }
    }
    mmc_meta_opts_to_cfg(&o, cfg);
    return MF_OK;
}

/*
 * Every value again (a caller may have filled the struct by hand), then
 * the GVA window.  Each value goes through its own parser: format it, set
 * it into a scratch mirror.
 */
mf_status_t mmc_meta_config_check(const mmc_meta_config_t *cfg)
{
    mmc_meta_opts_t o, scratch;
    char value[256];
    uint64_t len, end;
    mf_status_t status;

    if (cfg == NULL) {
        return MF_ERR_INVALID;
    }
    for (size_t i = 0; i < mmc_meta_cfg_table.count; i++) {
        const mf_cfg_entry_t *entry = &mmc_meta_cfg_table.entries[i];

        if (entry->type == MF_CFG_STR &&
            memchr((const char *)cfg +
                       (entry->offset - offsetof(mmc_meta_opts_t, cfg)),
                   '\0', entry->str_size) == NULL) {
            mf_error("mmc-meta: config: '%s' is not NUL-terminated",
                     entry->name);
            return MF_ERR_CONFIG;
        }
    }
    if (memchr(cfg->log_level, '\0', sizeof(cfg->log_level)) == NULL ||
        mmc_meta_opts_from_cfg(&o, cfg) != MF_OK) {
        mf_error("mmc-meta: config: bad value '%.*s' for 'log_level': "
                 "expected one of off, error, warn, info, debug, trace",
                 (int)sizeof(cfg->log_level), cfg->log_level);
        return MF_ERR_CONFIG;
    }
    scratch = o;
    for (size_t i = 0; i < mmc_meta_cfg_table.count; i++) {
        const mf_cfg_entry_t *entry = &mmc_meta_cfg_table.entries[i];

        mf_cfg_format(entry, &o, value, sizeof(value));
        status = mmc_meta_opts_set(&scratch, entry->name, value, "config");
        if (status != MF_OK) {
            return status;
        }
    }
    if (__builtin_mul_overflow((uint64_t)o.cfg.max_ranks,
                               o.cfg.max_segment_size, &len) ||
        __builtin_add_overflow(o.cfg.host_base, len, &end) ||
        end > MMC_META_VA_LIMIT) {
        mf_error("mmc-meta: config: the GVA window does not fit: host_base "
                 "0x%llx + max_ranks %u x max_segment_size %llu goes beyond "
                 "the 47-bit address space (0x%llx); lower max_ranks or "
                 "max_segment_size",
                 (unsigned long long)o.cfg.host_base, o.cfg.max_ranks,
                 (unsigned long long)o.cfg.max_segment_size,
                 (unsigned long long)MMC_META_VA_LIMIT);
        return MF_ERR_CONFIG;
    }
    status = mmc_meta_check_device_window(&o.cfg, len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_tls_config_check(&o.cfg.tls, "mmc-meta: config");
    if (status != MF_OK) {
        return status;
    }
    if (o.cfg.evict_low_pct >= o.cfg.evict_high_pct) {
        mf_error("mmc-meta: config: 'evict_low_pct' %u must be below "
                 "'evict_high_pct' %u",
                 o.cfg.evict_low_pct, o.cfg.evict_high_pct);
        return MF_ERR_CONFIG;
    }
    return MF_OK;
}

void mmc_meta_config_print_help(FILE *out)
{
    mf_cfg_print_help(&mmc_meta_cfg_table, out);
    fprintf(out,
            "  host_base + max_ranks x max_segment_size must not exceed "
            "0x%llx (47 bits), nor, with max_hbm_segment_size > 0, "
            "device_base + max_ranks x max_hbm_segment_size, which must "
            "stay apart from the host window; evict_low_pct < "
            "evict_high_pct.\n",
            (unsigned long long)MMC_META_VA_LIMIT);
}

void mmc_meta_config_dump(const mmc_meta_config_t *cfg, FILE *out)
{
    mmc_meta_opts_t o;

    (void)mmc_meta_opts_from_cfg(&o, cfg);
    mf_cfg_dump(&mmc_meta_cfg_table, &o, out);
}
