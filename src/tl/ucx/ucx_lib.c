/*
 * Loading UCX at run time, and what the transport asks of it before it
 * opens a context: whether an RDMA device is there.
 *
 * Invariant: mf_ucx_lib_g is filled once (pthread_once) and read-only
 * after; a failed load leaves it NULL for the life of the process with the
 * reason in mf_ucx_why_g.  The library is never closed: UCX keeps threads
 * and memory hooks of its own that may run code of it until exit.
 */
#include "tl/ucx/ucx_lib.h"

#include "util/log.h"
#include "util/misc.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_UCX_DEFAULT_LIBRARY "libucp.so.0"

static mf_ucx_lib_t mf_ucx_lib_s;
static const mf_ucx_lib_t *mf_ucx_lib_g;
static char mf_ucx_why_g[512] = "UCX was not loaded";
static pthread_once_t mf_ucx_once = PTHREAD_ONCE_INIT;

static void mf_ucx_why(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void mf_ucx_why(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(mf_ucx_why_g, sizeof(mf_ucx_why_g), fmt, ap);
    va_end(ap);
}

static void mf_ucx_load(void)
{
    const char *path = getenv("MF_UCX_LIBRARY");
    mf_ucx_lib_t *lib = &mf_ucx_lib_s;
    void *handle;

    if (path == NULL || *path == '\0') {
        path = MF_UCX_DEFAULT_LIBRARY;
    }
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        mf_ucx_why("cannot load %s (%s): UCX is not installed", path,
                   dlerror());
        return;
    }
    /* libucp's own symbols, and libuct's and libucs's through its
     * dependencies (dlsym searches the handle's whole load order) */
#define MF_UCX_LIB_SYM(_fn)                                                    \
    *(void **)&lib->_fn = dlsym(handle, MF_STRINGIFY(_fn));                    \
    if (lib->_fn == NULL) {                                                    \
        mf_ucx_why("%s has no %s: UCX is older than 1.10", path,               \
                   MF_STRINGIFY(_fn));                                         \
        return;                                                                \
    }
    MF_UCX_LIB_FUNCS(MF_UCX_LIB_SYM)
#undef MF_UCX_LIB_SYM
    mf_ucx_lib_g = lib;
    mf_debug("ucx: loaded %s (UCX %s)", path, lib->ucp_get_version_string());
}

const mf_ucx_lib_t *mf_ucx_lib(void)
{
    pthread_once(&mf_ucx_once, mf_ucx_load);
    return mf_ucx_lib_g;
}

const char *mf_ucx_lib_why(void)
{
    pthread_once(&mf_ucx_once, mf_ucx_load);
    return mf_ucx_why_g;
}

/* ------------------------------------------------------------- RDMA */

/* Whether any InfiniBand/RoCE device is registered with the kernel. */
static bool mf_ucx_sys_has_ib(void)
{
    DIR *dir = opendir("/sys/class/infiniband");
    struct dirent *ent;
    bool any = false;

    if (dir == NULL) {
        return false;
    }
    while (!any && (ent = readdir(dir)) != NULL) {
        any = ent->d_name[0] != '.';
    }
    closedir(dir);
    return any;
}

/* rc and dc put and get in the NIC; ud has no RMA, and UCX emulates it
 * in software there as over tcp (see mf_ucx_lib_has_rdma). */
static bool mf_ucx_tl_is_rdma(const char *tl_name)
{
    return strncmp(tl_name, "rc", 2) == 0 || strncmp(tl_name, "dc", 2) == 0;
}

/* Whether memory domain md_name of component comp offers a verbs
 * transport with RMA. */
static bool mf_ucx_md_has_rdma(const mf_ucx_lib_t *lib, uct_component_h comp,
                               const char *md_name)
{
    uct_tl_resource_desc_t *res = NULL;
    uct_md_config_t *config;
    unsigned count = 0, i;
    bool any = false;
    uct_md_h md;

    if (lib->uct_md_config_read(comp, NULL, NULL, &config) != UCS_OK) {
        return false;
    }
    if (lib->uct_md_open(comp, md_name, config, &md) == UCS_OK) {
        if (lib->uct_md_query_tl_resources(md, &res, &count) == UCS_OK) {
            for (i = 0; i < count && !any; i++) {
                any = mf_ucx_tl_is_rdma(res[i].tl_name);
                if (any) {
                    mf_debug("ucx: RDMA transport %s on %s", res[i].tl_name,
                             res[i].dev_name);
                }
            }
            lib->uct_release_tl_resource_list(res);
        }
        lib->uct_md_close(md);
    }
    lib->uct_config_release(config);
    return any;
}

static bool mf_ucx_rdma_g;
static pthread_once_t mf_ucx_rdma_once = PTHREAD_ONCE_INIT;

static void mf_ucx_rdma_probe(void)
{
    const mf_ucx_lib_t *lib;
    uct_component_h *comps = NULL;
    uct_component_attr_t attr;
    unsigned ncomps = 0, i, k;

    if (!mf_ucx_sys_has_ib() || (lib = mf_ucx_lib()) == NULL ||
        lib->uct_query_components(&comps, &ncomps) != UCS_OK) {
        return;
    }
    for (i = 0; i < ncomps && !mf_ucx_rdma_g; i++) {
        memset(&attr, 0, sizeof(attr));
        attr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCE_COUNT;
        if (lib->uct_component_query(comps[i], &attr) != UCS_OK ||
            attr.md_resource_count == 0) {
            continue;
        }
        attr.md_resources =
            calloc(attr.md_resource_count, sizeof(*attr.md_resources));
        if (attr.md_resources == NULL) {
            break;
        }
        attr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCES;
        if (lib->uct_component_query(comps[i], &attr) == UCS_OK) {
            for (k = 0; k < attr.md_resource_count && !mf_ucx_rdma_g; k++) {
                mf_ucx_rdma_g = mf_ucx_md_has_rdma(
                    lib, comps[i], attr.md_resources[k].md_name);
            }
        }
        free(attr.md_resources);
    }
    lib->uct_release_component_list(comps);
}

bool mf_ucx_lib_has_rdma(void)
{
    pthread_once(&mf_ucx_rdma_once, mf_ucx_rdma_probe);
    return mf_ucx_rdma_g;
}

mf_status_t mf_ucx_status(ucs_status_t status)
{
    switch (status) {
    case UCS_OK:
        return MF_OK;
    case UCS_INPROGRESS:
        return MF_INPROGRESS;
    case UCS_ERR_NO_MEMORY:
        return MF_ERR_NOMEM;
    case UCS_ERR_INVALID_PARAM:
        return MF_ERR_INVALID;
    case UCS_ERR_UNSUPPORTED:
    case UCS_ERR_NO_DEVICE:
        return MF_ERR_UNSUPPORTED;
    case UCS_ERR_UNREACHABLE:
        return MF_ERR_UNREACHABLE;
    case UCS_ERR_REJECTED:
        return MF_ERR_PEER_REJECTED;
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_IO_ERROR: /* of a link: the peer is out of reach */
        return MF_ERR_CONN_RESET;
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_SHMEM_SEGMENT: /* a peer's shared memory cannot be attached:
                                   it is gone */
        return MF_ERR_PEER_LOST;
    case UCS_ERR_CANCELED:
        return MF_ERR_CANCELED;
    case UCS_ERR_OUT_OF_RANGE:
        return MF_ERR_OUT_OF_RANGE;
    case UCS_ERR_MESSAGE_TRUNCATED:
    case UCS_ERR_INVALID_ADDR:
        return MF_ERR_PROTO;
    default:
        return MF_ERR_IO;
    }
}
