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

/* The section of a transport's settings. */
static mf_cfg_section_t mf_tl_section(const mf_tl_ops_t *ops)
{
    return (mf_cfg_section_t){ops->config, ops->config_size, ops->config_check};
}

mf_status_t mf_tl_config_parse(const mf_tl_ops_t *ops, const char *settings,
                               void **config_p)
{
    mf_cfg_section_t sec = mf_tl_section(ops);

    return mf_cfg_text_parse(&sec, settings, config_p);
}

mf_status_t mf_tl_config_set(char *settings, size_t cap, const char *key,
                             const char *value, const char *origin)
{
    const mf_tl_ops_t *ops = mf_tl_config_owner(key);
    mf_cfg_section_t sec;

    if (ops == NULL) {
        mf_error("mf-bm: %s: unknown key '%s'", origin, key);
        return MF_ERR_CONFIG;
    }
    sec = mf_tl_section(ops);
    return mf_cfg_text_set(&sec, settings, cap, key, value, origin);
}

mf_status_t mf_tl_config_get(const char *settings, const char *key, char *buf,
                             size_t len)
{
    const mf_tl_ops_t *ops = mf_tl_config_owner(key);
    mf_cfg_section_t sec;

    if (ops == NULL) {
        return MF_ERR_CONFIG;
    }
    sec = mf_tl_section(ops);
    return mf_cfg_text_get(&sec, settings, key, buf, len);
}

mf_status_t mf_tl_config_load_env(char *settings, size_t cap,
                                  const char *prefix)
{
    mf_cfg_section_t sec;
    mf_status_t status;

    for (size_t i = 0; i < mf_tl_count(); i++) {
        sec = mf_tl_section(mf_tl_all[i]);
        status = mf_cfg_text_load_env(&sec, settings, cap, prefix);
        if (status != MF_OK) {
            return status;
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
