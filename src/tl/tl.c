/*
 * Transport registry, the transports' settings kept as text, and the stubs
 * that fill unsupported slots.
 *
 * The registry is a constant array; its order only breaks ties between
 * transports whose capabilities are equal for a peer.  Settings are
 * `key=value` lines in a buffer the fabric owns (inside the public config
 * struct, so it copies by value); every change is parsed and checked by
 * the owning transport's table before it is stored, in canonical form.
 */
#include "tl/tl.h"

#include "util/log.h"
#include "util/misc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MF_TL_TRANSPORT(_name) extern const mf_tl_ops_t mf_tl_##_name##_ops;
#include "tl/tl_registry.h"
#undef MF_TL_TRANSPORT

static const mf_tl_ops_t *const mf_tl_all[] = {
#define MF_TL_TRANSPORT(_name) &mf_tl_##_name##_ops,
#include "tl/tl_registry.h"
#undef MF_TL_TRANSPORT
};

size_t mf_tl_count(void)
{
    return sizeof(mf_tl_all) / sizeof(mf_tl_all[0]);
}

const mf_tl_ops_t *mf_tl_at(size_t index)
{
    return index < mf_tl_count() ? mf_tl_all[index] : NULL;
}

const mf_tl_ops_t *mf_tl_find(const char *name)
{
    size_t i;

    for (i = 0; i < mf_tl_count(); i++) {
        if (strcmp(mf_tl_all[i]->name, name) == 0) {
            return mf_tl_all[i];
        }
    }
    return NULL;
}

static char mf_tl_names_buf[256];

static void mf_tl_names_init(void)
{
    size_t i, off = 0;

    for (i = 0; i < mf_tl_count() && off < sizeof(mf_tl_names_buf); i++) {
        off += (size_t)snprintf(mf_tl_names_buf + off,
                                sizeof(mf_tl_names_buf) - off, "%s%s",
                                i > 0 ? ", " : "", mf_tl_all[i]->name);
    }
}

const char *mf_tl_names(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, mf_tl_names_init);
    return mf_tl_names_buf;
}

/* ---------------------------------------------------------- settings */

const mf_tl_ops_t *mf_tl_config_owner(const char *key)
{
    const char *dot = strchr(key, '.');
    size_t i, len;

    if (dot == NULL) {
        return NULL;
    }
    len = (size_t)(dot - key);
    for (i = 0; i < mf_tl_count(); i++) {
        if (strlen(mf_tl_all[i]->name) == len &&
            strncmp(mf_tl_all[i]->name, key, len) == 0) {
            return mf_tl_all[i];
        }
    }
    return NULL;
}

const char *mf_tl_config_alias(const char *key, const char *origin)
{
    const char *name;
    size_t i;

    for (i = 0; i < mf_tl_count(); i++) {
        name = mf_cfg_alias_resolve(mf_tl_all[i]->config, key, origin);
        if (name != key) {
            return name;
        }
    }
    return key;
}

/* The line of key in settings ("key=value\n"), or NULL; *len_p: its
 * length with the newline. */
static const char *mf_tl_config_line(const char *settings, const char *key,
                                     size_t *len_p)
{
    size_t klen = strlen(key);
    const char *line, *end;

    for (line = settings; *line != '\0'; line = end) {
        end = strchr(line, '\n');
        end = end != NULL ? end + 1 : line + strlen(line);
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            *len_p = (size_t)(end - line);
            return line;
        }
    }
    return NULL;
}

typedef struct mf_tl_config_ctx {
    const mf_tl_ops_t *ops;
    void *config;
} mf_tl_config_ctx_t;

static mf_status_t mf_tl_config_line_apply(void *arg, const char *key,
                                           const char *value,
                                           const char *origin)
{
    mf_tl_config_ctx_t *ctx = arg;

    if (mf_tl_config_owner(key) != ctx->ops) {
        return MF_OK; /* another transport's */
    }
    return mf_cfg_set_from(ctx->ops->config, ctx->config, key, value, origin);
}

mf_status_t mf_tl_config_parse(const mf_tl_ops_t *ops, const char *settings,
                               void **config_p)
{
    mf_tl_config_ctx_t ctx = {ops, NULL};
    mf_status_t status;

    ctx.config = calloc(1, MF_MAX(ops->config_size, 1));
    if (ctx.config == NULL) {
        return MF_ERR_NOMEM;
    }
    status = mf_cfg_set_defaults(ops->config, ctx.config);
    if (status != MF_OK) {
        goto err_free;
    }
    status =
        mf_cfg_parse_lines(ops->config->component, settings, strlen(settings),
                           "transport settings", mf_tl_config_line_apply, &ctx);
    if (status != MF_OK) {
        goto err_free;
    }
    status = ops->config_check(ctx.config);
    if (status != MF_OK) {
        goto err_free;
    }
    *config_p = ctx.config;
    return MF_OK;

err_free:
    free(ctx.config);
    return status;
}

mf_status_t mf_tl_config_set(char *settings, size_t cap, const char *key,
                             const char *value, const char *origin)
{
    const mf_tl_ops_t *ops = mf_tl_config_owner(key);
    const mf_cfg_entry_t *entry;
    char canon[256], *text;
    const char *line;
    mf_status_t status;
    size_t len = 0, need;
    void *config;

    entry = ops != NULL ? mf_cfg_find(ops->config, key) : NULL;
    if (entry == NULL) {
        mf_error("mf-bm: %s: unknown key '%s'", origin, key);
        return MF_ERR_CONFIG;
    }
    if (strchr(value, '\n') != NULL) {
        mf_error("mf-bm: %s: value of '%s' contains a newline", origin, key);
        return MF_ERR_CONFIG;
    }
    /* parse what is set plus the new value, check the whole */
    status = mf_tl_config_parse(ops, settings, &config);
    if (status != MF_OK) {
        return status;
    }
    status = mf_cfg_set_from(ops->config, config, key, value, origin);
    if (status == MF_OK) {
        status = ops->config_check(config);
    }
    if (status == MF_OK) {
        mf_cfg_format(entry, config, canon, sizeof(canon));
    }
    free(config);
    if (status != MF_OK) {
        return status;
    }

    /* the text without the key's old line, then the new line */
    need = strlen(settings) + strlen(key) + strlen(canon) + 3;
    text = malloc(need);
    if (text == NULL) {
        return MF_ERR_NOMEM;
    }
    line = mf_tl_config_line(settings, key, &len);
    if (line != NULL) {
        snprintf(text, need, "%.*s%s%s=%s\n", (int)(line - settings), settings,
                 line + len, key, canon);
    } else {
        snprintf(text, need, "%s%s=%s\n", settings, key, canon);
    }
    if (strlen(text) >= cap) {
        mf_error("mf-bm: %s: no room for '%s' (transport settings hold %zu "
                 "bytes)",
                 origin, key, cap - 1);
        free(text);
        return MF_ERR_TOO_LARGE;
    }
    memcpy(settings, text, strlen(text) + 1);
    free(text);
    return MF_OK;
}

mf_status_t mf_tl_config_get(const char *settings, const char *key, char *buf,
                             size_t len)
{
    const mf_tl_ops_t *ops = mf_tl_config_owner(key);
    const mf_cfg_entry_t *entry;
    mf_status_t status;
    void *config;

    entry = ops != NULL ? mf_cfg_find(ops->config, key) : NULL;
    if (entry == NULL) {
        return MF_ERR_CONFIG;
    }
    status = mf_tl_config_parse(ops, settings, &config);
    if (status != MF_OK) {
        return status;
    }
    mf_cfg_format(entry, config, buf, len);
    free(config);
    return MF_OK;
}

mf_status_t mf_tl_config_load_env(char *settings, size_t cap,
                                  const char *prefix)
{
    const mf_cfg_table_t *table;
    const char *value;
    mf_status_t status;
    char name[128];
    size_t i, k;

    for (i = 0; i < mf_tl_count(); i++) {
        table = mf_tl_all[i]->config;
        for (k = 0; k < table->count; k++) {
            mf_cfg_env_name(prefix, table->entries[k].name, name, sizeof(name));
            value = getenv(name);
            if (value == NULL) {
                continue;
            }
            status = mf_tl_config_set(settings, cap, table->entries[k].name,
                                      value, name);
            if (status != MF_OK) {
                return status;
            }
        }
    }
    return MF_OK;
}

void mf_tl_config_help(FILE *out, const char *key_prefix,
                       const char *env_prefix)
{
    size_t i;

    for (i = 0; i < mf_tl_count(); i++) {
        if (mf_tl_all[i]->config->count > 0) {
            fprintf(out, "\n");
            mf_cfg_print_help_as(mf_tl_all[i]->config, out, key_prefix,
                                 env_prefix);
        }
    }
}

/* ------------------------------------------------------------ stubs */

const mf_cfg_table_t mf_tl_no_config = {
    .component = "transport",
    .env_prefix = NULL,
    .entries = NULL,
    .count = 0,
};

mf_status_t mf_tl_no_config_check(const void *config)
{
    return MF_OK;
}

mf_status_t mf_tl_no_mem_reg(mf_tl_iface_t *iface,
                             const mf_tl_mem_params_t *params,
                             mf_tl_memh_t **memh_p)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_rkey_pack(mf_tl_iface_t *iface, mf_tl_memh_t *memh,
                               void *buf, size_t buf_len, size_t *len_p)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_put(mf_tl_ep_t *ep, const void *buf, uint64_t raddr,
                         size_t size, mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_get(mf_tl_ep_t *ep, void *buf, uint64_t raddr, size_t size,
                         mf_tl_rkey_t *rkey, mf_tl_comp_t *comp)
{
    return MF_ERR_UNSUPPORTED;
}

mf_status_t mf_tl_no_flush(mf_tl_ep_t *ep, mf_tl_comp_t *comp)
{
    return MF_OK;
}

unsigned mf_tl_no_progress(mf_tl_iface_t *iface)
{
    return 0;
}
