/*
 * Fuzz target: the `key = value` config file parser over a table with one
 * key of every type.
 */
#include "util/config.h"
#include "util/log.h"

typedef struct fuzz_cfg {
    char name[16];
    bool flag;
    uint32_t u32;
    uint64_t u64;
    uint64_t size;
    uint32_t ms;
    int level;
} fuzz_cfg_t;

static const mf_cfg_entry_t fuzz_cfg_entries[] = {
    {"name", MF_CFG_STR, offsetof(fuzz_cfg_t, name), 16, "x", 0, 0, "s"},
    {"flag", MF_CFG_BOOL, offsetof(fuzz_cfg_t, flag), 0, "no", 0, 0, "b"},
    {"u32", MF_CFG_U32, offsetof(fuzz_cfg_t, u32), 0, "1", 1, 100, "u"},
    {"u64", MF_CFG_U64, offsetof(fuzz_cfg_t, u64), 0, "0", 0, 0, "u"},
    {"size", MF_CFG_SIZE, offsetof(fuzz_cfg_t, size), 0, "1K", 0, 0, "z"},
    {"ms", MF_CFG_MS, offsetof(fuzz_cfg_t, ms), 0, "1s", 0, 0, "t"},
    {"level", MF_CFG_LOGLVL, offsetof(fuzz_cfg_t, level), 0, "warn", 0, 0, "l"},
};

static const mf_cfg_alias_t fuzz_cfg_aliases[] = {{"old_name", "name"}};

static const mf_cfg_table_t fuzz_cfg_table = {
    .component = "fuzz",
    .entries = fuzz_cfg_entries,
    .count = MF_CFG_COUNT(fuzz_cfg_entries),
    .aliases = fuzz_cfg_aliases,
    .alias_count = MF_CFG_COUNT(fuzz_cfg_aliases),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cfg_t cfg;

    mf_log_set_level(MF_LOG_OFF);
    mf_cfg_set_defaults(&fuzz_cfg_table, &cfg);
    mf_cfg_load_string(&fuzz_cfg_table, &cfg, (const char *)data, size, "fuzz");
    if (cfg.u32 < 1 || cfg.u32 > 100) {
        __builtin_trap(); /* bounds are enforced */
    }
    return 0;
}
