/*
 * Declarative configuration tables: defaults, files, environment and help
 * from one description.
 *
 * Invariant: a failed set leaves the field as it was; the error message
 * names the component, the key, the value, where it came from and what
 * would have been accepted.
 */
#include "util/config.h"

#include "util/log.h"
#include "util/misc.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

mf_status_t mf_parse_u64(const char *text, uint64_t *value_p)
{
    char *end;
    unsigned long long value;

    while (isspace((unsigned char)*text)) {
        text++;
    }
    if (!isdigit((unsigned char)*text)) {
        return MF_ERR_CONFIG;
    }
    errno = 0;
    value = strtoull(text, &end, 0);
    if (errno != 0 || *end != '\0') {
        return MF_ERR_CONFIG;
    }
    *value_p = value;
    return MF_OK;
}

static mf_status_t mf_cfg_parse_scaled(const char *text, uint64_t *value_p,
                                       const char *const *suffixes,
                                       const uint64_t *scales, size_t count)
{
    char *end;
    unsigned long long value;
    const char *p = text;

    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (!isdigit((unsigned char)*p)) {
        return MF_ERR_CONFIG;
    }
    errno = 0;
    value = strtoull(p, &end, 0);
    if (errno != 0) {
        return MF_ERR_CONFIG;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (*end == '\0') {
        *value_p = value;
        return MF_OK;
    }
    for (size_t i = 0; i < count; i++) {
        if (strcasecmp(end, suffixes[i]) == 0) {
            if (value > UINT64_MAX / scales[i]) {
                return MF_ERR_CONFIG;
            }
            *value_p = value * scales[i];
            return MF_OK;
        }
    }
    return MF_ERR_CONFIG;
}

mf_status_t mf_parse_size(const char *text, uint64_t *value_p)
{
    static const char *const suffixes[] = {"b",  "k",   "kb", "kib", "m",
                                           "mb", "mib", "g",  "gb",  "gib",
                                           "t",  "tb",  "tib"};
    static const uint64_t scales[] = {
        1,          1ull << 10, 1ull << 10, 1ull << 10, 1ull << 20,
        1ull << 20, 1ull << 20, 1ull << 30, 1ull << 30, 1ull << 30,
        1ull << 40, 1ull << 40, 1ull << 40};

    return mf_cfg_parse_scaled(text, value_p, suffixes, scales,
                               MF_ARRAY_SIZE(suffixes));
}

mf_status_t mf_parse_ms(const char *text, uint32_t *value_p)
{
    static const char *const suffixes[] = {"ms", "s", "m", "min"};
    static const uint64_t scales[] = {1, 1000, 60000, 60000};
    uint64_t value;

    if (mf_cfg_parse_scaled(text, &value, suffixes, scales,
                            MF_ARRAY_SIZE(suffixes)) != MF_OK ||
        value > UINT32_MAX) {
        return MF_ERR_CONFIG;
    }
    *value_p = (uint32_t)value;
    return MF_OK;
}

mf_status_t mf_parse_bool(const char *text, bool *value_p)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < MF_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *value_p = true;
            return MF_OK;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *value_p = false;
            return MF_OK;
        }
    }
    return MF_ERR_CONFIG;
}

const mf_cfg_entry_t *mf_cfg_find(const mf_cfg_table_t *table, const char *key)
{
    for (size_t i = 0; i < table->count; i++) {
        if (strcmp(table->entries[i].name, key) == 0) {
            return &table->entries[i];
        }
    }
    return NULL;
}

static const char *mf_cfg_expected(const mf_cfg_entry_t *entry)
{
    switch (entry->type) {
    case MF_CFG_STR:
        return "a string";
    case MF_CFG_BOOL:
        return "true/false, yes/no, on/off or 1/0";
    case MF_CFG_U32:
    case MF_CFG_U64:
        return "an unsigned integer";
    case MF_CFG_SIZE:
        return "a size in bytes with optional K, M, G or T suffix";
    case MF_CFG_MS:
        return "a duration in milliseconds with optional ms, s or m suffix";
    case MF_CFG_LOGLVL:
        return "one of off, error, warn, info, debug, trace";
    }
    return "a value";
}

static bool mf_cfg_in_range(const mf_cfg_entry_t *entry, uint64_t value)
{
    if (entry->min == 0 && entry->max == 0) {
        return true;
    }
    return value >= entry->min && value <= entry->max;
}

mf_status_t mf_cfg_set_from(const mf_cfg_table_t *table, void *obj,
                            const char *key, const char *value,
                            const char *origin)
{
    const mf_cfg_entry_t *entry;
    char *field;
    uint64_t number = 0;
    uint32_t ms = 0;
    bool flag;
    int level;
    mf_status_t status = MF_OK;

    key = mf_cfg_alias_resolve(table, key, origin);
    entry = mf_cfg_find(table, key);
    if (entry == NULL) {
        mf_error("%s: %s: unknown key '%s'", table->component, origin, key);
        return MF_ERR_CONFIG;
    }
    field = (char *)obj + entry->offset;
    switch (entry->type) {
    case MF_CFG_STR:
        if (strlen(value) >= entry->str_size) {
            mf_error("%s: %s: value of '%s' is longer than %zu bytes",
                     table->component, origin, key, entry->str_size - 1);
            return MF_ERR_CONFIG;
        }
        mf_strlcpy(field, value, entry->str_size);
        return MF_OK;
    case MF_CFG_BOOL:
        status = mf_parse_bool(value, &flag);
        if (status == MF_OK) {
            *(bool *)field = flag;
            return MF_OK;
        }
        break;
    case MF_CFG_LOGLVL:
        level = mf_log_level_parse(value);
        if (level >= 0) {
            *(int *)field = level;
            return MF_OK;
        }
        status = MF_ERR_CONFIG;
        break;
    case MF_CFG_MS:
        status = mf_parse_ms(value, &ms);
        number = ms;
        break;
    case MF_CFG_U32:
    case MF_CFG_U64:
        status = mf_parse_u64(value, &number);
        if (status == MF_OK && entry->type == MF_CFG_U32 &&
            number > UINT32_MAX) {
            status = MF_ERR_CONFIG;
        }
        break;
    case MF_CFG_SIZE:
        status = mf_parse_size(value, &number);
        break;
    }
    if (status != MF_OK) {
        mf_error("%s: %s: bad value '%s' for '%s': expected %s",
                 table->component, origin, value, key, mf_cfg_expected(entry));
        return MF_ERR_CONFIG;
    }
    if (!mf_cfg_in_range(entry, number)) {
        mf_error("%s: %s: value '%s' for '%s' is out of range [%llu, %llu]",
                 table->component, origin, value, key,
                 (unsigned long long)entry->min,
                 (unsigned long long)entry->max);
        return MF_ERR_CONFIG;
    }
    if (entry->type == MF_CFG_U32 || entry->type == MF_CFG_MS) {
        *(uint32_t *)field = (uint32_t)number;
    } else {
        *(uint64_t *)field = number;
    }
    return MF_OK;
}

mf_status_t mf_cfg_set(const mf_cfg_table_t *table, void *obj, const char *key,
                       const char *value)
{
    return mf_cfg_set_from(table, obj, key, value, "setting");
}

mf_status_t mf_cfg_set_defaults(const mf_cfg_table_t *table, void *obj)
{
    for (size_t i = 0; i < table->count; i++) {
        const mf_cfg_entry_t *entry = &table->entries[i];
        mf_status_t status = mf_cfg_set_from(table, obj, entry->name,
                                             entry->default_value, "default");
        if (status != MF_OK) {
            return status;
        }
    }
    return MF_OK;
}

static char *mf_cfg_trim(char *start, char *end)
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

mf_status_t mf_cfg_parse_lines(const char *component, const char *text,
                               size_t len, const char *origin,
                               mf_cfg_line_fn fn, void *arg)
{
    char *copy, *line, *next, *eq, *key, *value, *hash;
    char where[512];
    unsigned lineno = 0;
    mf_status_t status = MF_OK;
    size_t vlen;

    copy = malloc(len + 1);
    if (copy == NULL) {
        return MF_ERR_NOMEM;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (strlen(copy) != len) {
        mf_error("%s: %s: contains a NUL byte", component, origin);
        status = MF_ERR_CONFIG;
        goto out_free;
    }

    for (line = copy; line != NULL && status == MF_OK; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        key = mf_cfg_trim(line, line + strlen(line));
        if (*key == '\0') {
            continue;
        }
        snprintf(where, sizeof(where), "%s:%u", origin, lineno);
        eq = strchr(key, '=');
        if (eq == NULL) {
            mf_error("%s: %s: expected 'key = value', got '%s'", component,
                     where, key);
            status = MF_ERR_CONFIG;
            break;
        }
        value = mf_cfg_trim(eq + 1, eq + 1 + strlen(eq + 1));
        key = mf_cfg_trim(key, eq);
        vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        status = fn(arg, key, value, where);
    }

out_free:
    free(copy);
    return status;
}

typedef struct mf_cfg_table_obj {
    const mf_cfg_table_t *table;
    void *obj;
} mf_cfg_table_obj_t;

static mf_status_t mf_cfg_table_line(void *arg, const char *key,
                                     const char *value, const char *origin)
{
    mf_cfg_table_obj_t *to = arg;

    return mf_cfg_set_from(to->table, to->obj, key, value, origin);
}

mf_status_t mf_cfg_load_string(const mf_cfg_table_t *table, void *obj,
                               const char *text, size_t len, const char *origin)
{
    mf_cfg_table_obj_t to = {table, obj};

    return mf_cfg_parse_lines(table->component, text, len, origin,
                              mf_cfg_table_line, &to);
}

mf_status_t mf_cfg_read_file(const char *component, const char *path,
                             char **text_p, size_t *len_p)
{
    FILE *f;
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    mf_status_t status = MF_OK;

    f = fopen(path, "r");
    if (f == NULL) {
        mf_error("%s: cannot open config file '%s': %m", component, path);
        return MF_ERR_CONFIG;
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *grown;
            cap = cap ? cap * 2 : 4096;
            if (cap > (16u << 20)) {
                mf_error("%s: config file '%s' is larger than 16 MiB",
                         component, path);
                status = MF_ERR_CONFIG;
                goto err_free;
            }
            grown = realloc(text, cap);
            if (grown == NULL) {
                status = MF_ERR_NOMEM;
                goto err_free;
            }
            text = grown;
        }
        n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        mf_error("%s: cannot read config file '%s'", component, path);
        status = MF_ERR_CONFIG;
        goto err_free;
    }
    fclose(f);
    text[len] = '\0';
    *text_p = text;
    *len_p = len;
    return MF_OK;

err_free:
    free(text);
    fclose(f);
    return status;
}

mf_status_t mf_cfg_load_file(const mf_cfg_table_t *table, void *obj,
                             const char *path)
{
    mf_status_t status;
    size_t len;
    char *text;

    status = mf_cfg_read_file(table->component, path, &text, &len);
    if (status != MF_OK) {
        return status;
    }
    status = mf_cfg_load_string(table, obj, text, len, path);
    free(text);
    return status;
}

void mf_cfg_env_name(const char *prefix, const char *key, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s%s", prefix, key);

    for (size_t i = 0; i < n && i < len; i++) {
        buf[i] = buf[i] == '.' ? '_' : (char)toupper((unsigned char)buf[i]);
    }
}

/* Aliases already warned about; a handful per process at most. */
#define MF_CFG_WARNED_MAX 64
static pthread_mutex_t mf_cfg_warned_lock = PTHREAD_MUTEX_INITIALIZER;
static const mf_cfg_alias_t *mf_cfg_warned[MF_CFG_WARNED_MAX];
static size_t mf_cfg_nwarned;

static bool mf_cfg_alias_first_use(const mf_cfg_alias_t *alias)
{
    bool first = true;
    size_t i;

    pthread_mutex_lock(&mf_cfg_warned_lock);
    for (i = 0; i < mf_cfg_nwarned; i++) {
        if (mf_cfg_warned[i] == alias) {
            first = false;
            break;
        }
    }
    if (first && mf_cfg_nwarned < MF_CFG_WARNED_MAX) {
        mf_cfg_warned[mf_cfg_nwarned++] = alias;
    }
    pthread_mutex_unlock(&mf_cfg_warned_lock);
    return first;
}

const char *mf_cfg_alias_resolve(const mf_cfg_table_t *table, const char *key,
                                 const char *origin)
{
    const mf_cfg_alias_t *alias;

    for (size_t i = 0; i < table->alias_count; i++) {
        alias = &table->aliases[i];
        if (strcmp(alias->old_name, key) != 0) {
            continue;
        }
        if (mf_cfg_alias_first_use(alias)) {
            mf_warn("%s: %s: '%s' is deprecated, use '%s' (same value)",
                    table->component, origin, alias->old_name, alias->new_name);
        }
        return alias->new_name;
    }
    return key;
}

mf_status_t mf_cfg_load_env(const mf_cfg_table_t *table, void *obj)
{
    char name[128];

    if (table->env_prefix == NULL) {
        return MF_OK;
    }
    for (size_t i = 0; i < table->count; i++) {
        const mf_cfg_entry_t *entry = &table->entries[i];
        const char *value;
        mf_status_t status;

        mf_cfg_env_name(table->env_prefix, entry->name, name, sizeof(name));
        value = getenv(name);
        if (value == NULL) {
            continue;
        }
        status = mf_cfg_set_from(table, obj, entry->name, value, name);
        if (status != MF_OK) {
            return status;
        }
    }
    return MF_OK;
}

const char *mf_cfg_format(const mf_cfg_entry_t *entry, const void *obj,
                          char *buf, size_t len)
{
    const char *field = (const char *)obj + entry->offset;

    switch (entry->type) {
    case MF_CFG_STR:
        snprintf(buf, len, "%s", field);
        break;
    case MF_CFG_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        break;
    case MF_CFG_LOGLVL: {
        static const char *const names[] = {"off",  "error", "warn",
                                            "info", "debug", "trace"};
        int level = *(const int *)field;
        snprintf(buf, len, "%s", level >= 0 && level <= 5 ? names[level] : "?");
        break;
    }
    case MF_CFG_U32:
    case MF_CFG_MS:
        snprintf(buf, len, "%u", *(const uint32_t *)field);
        break;
    case MF_CFG_U64:
    case MF_CFG_SIZE:
        if (strncmp(entry->default_value, "0x", 2) == 0) {
            snprintf(buf, len, "0x%llx",
                     (unsigned long long)*(const uint64_t *)field);
        } else {
            snprintf(buf, len, "%llu",
                     (unsigned long long)*(const uint64_t *)field);
        }
        break;
    }
    return buf;
}

void mf_cfg_print_help_as(const mf_cfg_table_t *table, FILE *out,
                          const char *key_prefix, const char *env_prefix)
{
    char env[128], key[128];

    fprintf(out, "Configuration keys of %s (file: %skey = value",
            table->component, key_prefix);
    if (env_prefix != NULL) {
        fprintf(out, "; environment: %s<KEY>", env_prefix);
    }
    fprintf(out, "):\n");
    for (size_t i = 0; i < table->count; i++) {
        const mf_cfg_entry_t *entry = &table->entries[i];

        snprintf(key, sizeof(key), "%s%s", key_prefix, entry->name);
        fprintf(out, "  %-24s default: %s", key,
                *entry->default_value ? entry->default_value : "\"\"");
        if (env_prefix != NULL) {
            mf_cfg_env_name(env_prefix, entry->name, env, sizeof(env));
            fprintf(out, "  env: %s", env);
        }
        fprintf(out, "\n      %s", entry->help);
        if (entry->min != 0 || entry->max != 0) {
            fprintf(out, " [%llu..%llu]", (unsigned long long)entry->min,
                    (unsigned long long)entry->max);
        }
        fprintf(out, "\n");
    }
    for (size_t i = 0; i < table->alias_count; i++) {
        snprintf(key, sizeof(key), "%s%s", key_prefix,
                 table->aliases[i].old_name);
        fprintf(out, "  %-24s deprecated name of %s%s\n", key, key_prefix,
                table->aliases[i].new_name);
    }
}

void mf_cfg_print_help(const mf_cfg_table_t *table, FILE *out)
{
    mf_cfg_print_help_as(table, out, "", table->env_prefix);
}

void mf_cfg_dump(const mf_cfg_table_t *table, const void *obj, FILE *out)
{
    char value[256];

    for (size_t i = 0; i < table->count; i++) {
        const mf_cfg_entry_t *entry = &table->entries[i];
        fprintf(out, "%s = %s\n", entry->name,
                mf_cfg_format(entry, obj, value, sizeof(value)));
    }
}

/* ---- settings kept as text ---- */

/* The line of key in text ("key=value\n"), or NULL; *len_p: its length
 * with the newline. */
static const char *mf_cfg_text_line(const char *text, const char *key,
                                    size_t *len_p)
{
    size_t klen = strlen(key);
    const char *line, *end;

    for (line = text; *line != '\0'; line = end) {
        end = strchr(line, '\n');
        end = end != NULL ? end + 1 : line + strlen(line);
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            *len_p = (size_t)(end - line);
            return line;
        }
    }
    return NULL;
}

typedef struct mf_cfg_text_ctx {
    const mf_cfg_section_t *sec;
    void *obj;
} mf_cfg_text_ctx_t;

static mf_status_t mf_cfg_text_line_apply(void *arg, const char *key,
                                          const char *value, const char *origin)
{
    mf_cfg_text_ctx_t *ctx = arg;

    if (mf_cfg_find(ctx->sec->table, key) == NULL) {
        return MF_OK; /* another section's */
    }
    return mf_cfg_set_from(ctx->sec->table, ctx->obj, key, value, origin);
}

mf_status_t mf_cfg_text_parse(const mf_cfg_section_t *sec, const char *text,
                              void **obj_p)
{
    mf_cfg_text_ctx_t ctx = {sec, NULL};
    mf_status_t status;

    ctx.obj = calloc(1, sec->size > 0 ? sec->size : 1);
    if (ctx.obj == NULL) {
        return MF_ERR_NOMEM;
    }
    status = mf_cfg_set_defaults(sec->table, ctx.obj);
    if (status == MF_OK) {
        status = mf_cfg_parse_lines(sec->table->component, text, strlen(text),
                                    "settings", mf_cfg_text_line_apply, &ctx);
    }
    if (status == MF_OK && sec->check != NULL) {
        status = sec->check(ctx.obj);
    }
    if (status != MF_OK) {
        free(ctx.obj);
        return status;
    }
    *obj_p = ctx.obj;
    return MF_OK;
}

/* Writes key's line with its value in obj into text (cap bytes). */
static mf_status_t mf_cfg_text_store(const mf_cfg_section_t *sec, char *text,
                                     size_t cap, const mf_cfg_entry_t *entry,
                                     const void *obj, const char *origin)
{
    const char *key = entry->name;
    char canon[1024], *next;
    const char *line;
    size_t len = 0, need;

    mf_cfg_format(entry, obj, canon, sizeof(canon));
    /* the text without the key's old line, then the new line */
    need = strlen(text) + strlen(key) + strlen(canon) + 3;
    next = malloc(need);
    if (next == NULL) {
        return MF_ERR_NOMEM;
    }
    line = mf_cfg_text_line(text, key, &len);
    if (line != NULL) {
        snprintf(next, need, "%.*s%s%s=%s\n", (int)(line - text), text,
                 line + len, key, canon);
    } else {
        snprintf(next, need, "%s%s=%s\n", text, key, canon);
    }
    if (strlen(next) >= cap) {
        mf_error("%s: %s: no room for '%s' (the settings hold %zu bytes)",
                 sec->table->component, origin, key, cap - 1);
        free(next);
        return MF_ERR_TOO_LARGE;
    }
    memcpy(text, next, strlen(next) + 1);
    free(next);
    return MF_OK;
}

mf_status_t mf_cfg_text_set(const mf_cfg_section_t *sec, char *text, size_t cap,
                            const char *key, const char *value,
                            const char *origin)
{
    const mf_cfg_entry_t *entry = mf_cfg_find(sec->table, key);
    mf_status_t status;
    void *obj;

    if (entry == NULL) {
        mf_error("%s: %s: unknown key '%s'", sec->table->component, origin,
                 key);
        return MF_ERR_CONFIG;
    }
    if (strchr(value, '\n') != NULL) {
        mf_error("%s: %s: value of '%s' contains a newline",
                 sec->table->component, origin, key);
        return MF_ERR_CONFIG;
    }
    /* parse what is set plus the new value, check the whole */
    status = mf_cfg_text_parse(sec, text, &obj);
    if (status != MF_OK) {
        return status;
    }
    status = mf_cfg_set_from(sec->table, obj, key, value, origin);
    if (status == MF_OK && sec->check != NULL) {
        status = sec->check(obj);
    }
    if (status == MF_OK) {
        status = mf_cfg_text_store(sec, text, cap, entry, obj, origin);
    }
    free(obj);
    return status;
}

mf_status_t mf_cfg_text_get(const mf_cfg_section_t *sec, const char *text,
                            const char *key, char *buf, size_t len)
{
    const mf_cfg_entry_t *entry = mf_cfg_find(sec->table, key);
    mf_status_t status;
    void *obj;

    if (entry == NULL) {
        return MF_ERR_CONFIG;
    }
    status = mf_cfg_text_parse(sec, text, &obj);
    if (status != MF_OK) {
        return status;
    }
    mf_cfg_format(entry, obj, buf, len);
    free(obj);
    return MF_OK;
}

mf_status_t mf_cfg_text_load_env(const mf_cfg_section_t *sec, char *text,
                                 size_t cap, const char *prefix)
{
    const mf_cfg_table_t *table = sec->table;
    char name[128], *next;
    const char *value;
    mf_status_t status;
    bool any = false;
    void *obj;

    /* every variable first, then the check of the whole: keys that only
     * make sense together (tls.enable and its files) come in any order */
    status = mf_cfg_text_parse(sec, text, &obj);
    if (status != MF_OK) {
        return status;
    }
    for (size_t k = 0; k < table->count && status == MF_OK; k++) {
        mf_cfg_env_name(prefix, table->entries[k].name, name, sizeof(name));
        value = getenv(name);
        if (value != NULL) {
            status = mf_cfg_set_from(table, obj, table->entries[k].name, value,
                                     name);
            any = true;
        }
    }
    if (status == MF_OK && any && sec->check != NULL) {
        status = sec->check(obj);
    }
    next = malloc(cap); /* the text changed on a copy: all or nothing */
    if (next != NULL) {
        memcpy(next, text, strlen(text) + 1);
    } else if (status == MF_OK) {
        status = MF_ERR_NOMEM;
    }
    for (size_t k = 0; k < table->count && status == MF_OK; k++) {
        mf_cfg_env_name(prefix, table->entries[k].name, name, sizeof(name));
        if (getenv(name) != NULL) {
            status = mf_cfg_text_store(sec, next, cap, &table->entries[k], obj,
                                       name);
        }
    }
    if (status == MF_OK) {
        memcpy(text, next, strlen(next) + 1);
    }
    free(next);
    free(obj);
    return status;
}
