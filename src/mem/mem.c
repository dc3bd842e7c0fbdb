/*
 * Memory kinds: the table of kinds, the stubs of kinds that are absent, and
 * the PROT_NONE address reservations segments are mapped into.
 *
 * Invariant: a reserved range is always mapped, either PROT_NONE or by a
 * segment; replacing one by the other uses MAP_FIXED over it, so the range
 * is never unmapped in between and no other mapping can land there.
 */
#include "mem/mem.h"

#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MF_MEM_RESERVE_PROT  PROT_NONE
#define MF_MEM_RESERVE_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

#if !MF_HAVE_CUDA
/* ---- cuda kind: absent from a build without cuda.h ---- */

static mf_status_t mf_mem_absent_probe(void)
{
    mf_info("cuda: device memory unavailable: this build has no CUDA "
            "support (cuda.h was not found)");
    return MF_ERR_UNSUPPORTED;
}

static bool mf_mem_absent_claims(const void *ptr, size_t size)
{
    return false;
}

static uint64_t mf_mem_absent_seg_align(void)
{
    return mf_page_size();
}

static mf_status_t mf_mem_absent_reserve(uint64_t base, uint64_t len, char *why,
                                         size_t why_len)
{
    if (why != NULL && why_len > 0) {
        mf_strlcpy(why, "this build has no CUDA support", why_len);
    }
    return MF_ERR_UNSUPPORTED;
}

static void mf_mem_absent_unreserve(uint64_t base, uint64_t len)
{
}

static mf_status_t mf_mem_absent_seg_create(void *addr, uint64_t size,
                                            unsigned flags, mf_mem_seg_t *seg_p)
{
    return MF_ERR_UNSUPPORTED;
}

static void mf_mem_absent_seg_destroy(mf_mem_seg_t *seg)
{
}

static mf_status_t mf_mem_absent_seg_export(const mf_mem_seg_t *seg,
                                            mf_mem_desc_t *desc_p)
{
    return MF_ERR_UNSUPPORTED;
}

static mf_status_t mf_mem_absent_seg_import(const mf_mem_desc_t *desc,
                                            void *addr, unsigned flags,
                                            mf_mem_seg_t *seg_p)
{
    return MF_ERR_UNSUPPORTED;
}

static mf_status_t mf_mem_absent_copy(void *dst, const void *src, size_t size)
{
    return MF_ERR_UNSUPPORTED;
}

static mf_status_t mf_mem_absent_copy_async(void *dst, const void *src,
                                            size_t size, mf_mem_comp_t *comp)
{
    return MF_ERR_UNSUPPORTED;
}

static mf_status_t mf_mem_absent_dma_reg(void *addr, size_t size,
                                         mf_mem_reg_t **reg_p)
{
    return MF_ERR_UNSUPPORTED;
}

static void mf_mem_absent_dma_dereg(mf_mem_reg_t *reg)
{
}

const mf_mem_ops_t mf_mem_cuda_ops = {
    .name = "cuda",
    .kind = MF_MEM_KIND_CUDA,
    .probe = mf_mem_absent_probe,
    .claims = mf_mem_absent_claims,
    .seg_align = mf_mem_absent_seg_align,
    .reserve = mf_mem_absent_reserve,
    .unreserve = mf_mem_absent_unreserve,
    .seg_create = mf_mem_absent_seg_create,
    .seg_destroy = mf_mem_absent_seg_destroy,
    .seg_export = mf_mem_absent_seg_export,
    .seg_import = mf_mem_absent_seg_import,
    .copy = mf_mem_absent_copy,
    .copy_async = mf_mem_absent_copy_async,
    .dma_reg = mf_mem_absent_dma_reg,
    .dma_dereg = mf_mem_absent_dma_dereg,
};
#endif

static const mf_mem_ops_t *const mf_mem_kinds[MF_MEM_KIND_LAST] = {
    [MF_MEM_KIND_HOST] = &mf_mem_host_ops,
    [MF_MEM_KIND_CUDA] = &mf_mem_cuda_ops,
};

const mf_mem_ops_t *mf_mem_ops_get(mf_mem_kind_t kind)
{
    if ((unsigned)kind >= MF_MEM_KIND_LAST) {
        return NULL;
    }
    return mf_mem_kinds[kind];
}

/* Probe results, one per kind: 0 not asked yet, else 1 + the status's
 * negation (so MF_OK is 1). */
static atomic_int mf_mem_ready_g[MF_MEM_KIND_LAST];
/* Bit per device kind whose probe said MF_OK. */
static atomic_uint mf_mem_devices_g;
static pthread_once_t mf_mem_probe_once = PTHREAD_ONCE_INIT;

static void mf_mem_probe_all(void)
{
    mf_status_t status;
    int kind;

    for (kind = 0; kind < MF_MEM_KIND_LAST; kind++) {
        status = mf_mem_kinds[kind]->probe();
        atomic_store(&mf_mem_ready_g[kind], 1 - (int)status);
        if (status == MF_OK && kind != MF_MEM_KIND_HOST) {
            atomic_fetch_or(&mf_mem_devices_g, 1u << kind);
        }
    }
}

bool mf_mem_kind_built(mf_mem_kind_t kind)
{
    switch (kind) {
    case MF_MEM_KIND_HOST:
        return true;
    case MF_MEM_KIND_CUDA:
        return MF_HAVE_CUDA;
    default:
        return false;
    }
}

mf_status_t mf_mem_kind_ready(mf_mem_kind_t kind)
{
    if ((unsigned)kind >= MF_MEM_KIND_LAST) {
        return MF_ERR_INVALID;
    }
    pthread_once(&mf_mem_probe_once, mf_mem_probe_all);
    return (mf_status_t)(1 - atomic_load(&mf_mem_ready_g[kind]));
}

mf_mem_kind_t mf_mem_classify(const void *ptr, size_t size)
{
    unsigned devices;
    int kind;

    pthread_once(&mf_mem_probe_once, mf_mem_probe_all);
    devices = atomic_load_explicit(&mf_mem_devices_g, memory_order_relaxed);
    for (kind = 0; devices != 0 && kind < MF_MEM_KIND_LAST; kind++) {
        if ((devices & (1u << kind)) && mf_mem_kinds[kind]->claims(ptr, size)) {
            return (mf_mem_kind_t)kind;
        }
    }
    return MF_MEM_KIND_HOST;
}

/* ---- descriptors of peers ---- */

static int mf_mem_peer_fd_proc(uint32_t pid, int32_t fd)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%u/fd/%d", pid, fd);
    return open(path, O_RDWR | O_CLOEXEC);
}

static int mf_mem_peer_fd_getfd(uint32_t pid, int32_t fd)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    int nfd, saved;

    if (pidfd < 0) {
        return -1;
    }
    nfd = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    saved = errno;
    close(pidfd);
    if (nfd >= 0) {
        (void)fcntl(nfd, F_SETFD, FD_CLOEXEC);
    }
    errno = saved;
    return nfd;
#else
    errno = ENOSYS;
    return -1;
#endif
}

int mf_mem_peer_fd_open(uint32_t pid, int32_t fd, bool same_file)
{
    int (*const same[])(uint32_t, int32_t) = {
        mf_mem_peer_fd_getfd, mf_mem_fd_ask, mf_mem_peer_fd_proc};
    int (*const reopen[])(uint32_t, int32_t) = {
        mf_mem_peer_fd_proc, mf_mem_peer_fd_getfd, mf_mem_fd_ask};
    int (*const *ways)(uint32_t, int32_t) = same_file ? same : reopen;
    int nfd = -1, first = 0;

    for (size_t i = 0; i < MF_ARRAY_SIZE(same) && nfd < 0; i++) {
        nfd = ways[i](pid, fd);
        if (nfd < 0 && i == 0) {
            first = errno;
        }
    }
    if (nfd < 0) {
        errno = first; /* the first way's reason */
    }
    return nfd;
}

/* ---- reservations ---- */

void mf_mem_describe_range(uint64_t base, uint64_t len, char *out,
                           size_t out_len)
{
    char line[512];
    size_t used = 0;
    FILE *maps;

    if (out_len == 0) {
        return;
    }
    out[0] = '\0';
    maps = fopen("/proc/self/maps", "re");
    if (maps == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), maps) != NULL) {
        unsigned long long start, end;
        char perms[8] = "";
        int path_off = 0;
        char *nl;
        int n;

        if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &start, &end, perms,
                   &path_off) < 3) {
            continue;
        }
        if (end <= base || start >= base + len) {
            continue;
        }
        nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        n = snprintf(out + used, out_len - used, "%s%llx-%llx %s %s",
                     used > 0 ? "; " : "", start, end, perms,
                     (path_off > 0 && line[path_off] != '\0') ? line + path_off
                                                              : "[anonymous]");
        if (n < 0 || (size_t)n >= out_len - used) {
            break;
        }
        used += (size_t)n;
    }
    fclose(maps);
}

mf_status_t mf_mem_reserve(uint64_t base, uint64_t len, char *why,
                           size_t why_len)
{
    char conflict[384];
    char reason[512];
    void *addr;
    int err;

    if (len == 0 || base == 0 || base % mf_page_size() != 0 ||
        len % mf_page_size() != 0 || base + len < base) {
        snprintf(reason, sizeof(reason),
                 "range 0x%" PRIx64 "+0x%" PRIx64 " is not page aligned", base,
                 len);
        mf_error("cannot reserve: %s", reason);
        if (why != NULL && why_len > 0) {
            mf_strlcpy(why, reason, why_len);
        }
        return MF_ERR_INVALID;
    }

    addr = mmap((void *)(uintptr_t)base, len, MF_MEM_RESERVE_PROT,
                MF_MEM_RESERVE_FLAGS | MAP_FIXED_NOREPLACE, -1, 0);
    if (addr == (void *)(uintptr_t)base) {
        return MF_OK;
    }

    err = errno;
    if (addr != MAP_FAILED) {
        /* A kernel before 4.17 ignores MAP_FIXED_NOREPLACE and treats the
         * address as a hint: it placed the range elsewhere. */
        munmap(addr, len);
        err = EEXIST;
    }
    mf_mem_describe_range(base, len, conflict, sizeof(conflict));
    if (err == EEXIST) {
        snprintf(reason, sizeof(reason),
                 "range 0x%" PRIx64 "-0x%" PRIx64 " is taken by %s", base,
                 base + len, conflict[0] != '\0' ? conflict : "a mapping");
    } else {
        snprintf(reason, sizeof(reason),
                 "mmap(0x%" PRIx64 "-0x%" PRIx64 ") failed: %s", base,
                 base + len, strerror(err));
    }
    mf_error("cannot reserve the address window: %s", reason);
    if (why != NULL && why_len > 0) {
        mf_strlcpy(why, reason, why_len);
    }
    return (err == EEXIST || err == EPERM) ? MF_ERR_ADDR_IN_USE
           : err == ENOMEM                 ? MF_ERR_NOMEM
                                           : MF_ERR_IO;
}

void mf_mem_unreserve(uint64_t base, uint64_t len)
{
    if (munmap((void *)(uintptr_t)base, len) != 0) {
        mf_warn("munmap(0x%" PRIx64 "+0x%" PRIx64 ") failed: %m", base, len);
    }
}

mf_status_t mf_mem_restore_reservation(void *addr, uint64_t len)
{
    void *p = mmap(addr, len, MF_MEM_RESERVE_PROT,
                   MF_MEM_RESERVE_FLAGS | MAP_FIXED, -1, 0);

    if (p != addr) {
        mf_error("cannot restore the reservation at %p+0x%" PRIx64 ": %m", addr,
                 len);
        return MF_ERR_IO;
    }
    return MF_OK;
}
