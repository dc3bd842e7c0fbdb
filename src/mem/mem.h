/*
 * Memory kinds behind one ops table, and the virtual address reservations
 * the segments live in.
 *
 * A segment is memory of one kind mapped at a fixed address inside a
 * PROT_NONE reservation owned by the caller.  The owner creates it and can
 * export a descriptor; another process of the same host imports the
 * descriptor and maps the same memory at the same address.  Destroying a
 * segment (created or imported) puts the PROT_NONE reservation back in its
 * place: the address range never becomes a hole another mapping could take.
 *
 * Every kind fills every slot of mf_mem_ops_t; what a kind cannot do returns
 * MF_ERR_UNSUPPORTED.  This layer knows nothing of transports or pools.
 */
#ifndef MF_MEM_MEM_H
#define MF_MEM_MEM_H

#include "util/misc.h"

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mf_mem_kind {
    MF_MEM_KIND_HOST = 0,
    MF_MEM_KIND_CUDA = 1,
    MF_MEM_KIND_LAST
} mf_mem_kind_t;

/*
 * The default base of the GVA window (the fabric's host_base and the meta
 * service's default).  32 TiB: far from where Linux puts executables, heaps and
 * mmaps, and above AddressSanitizer's shadow (which ends at 0x10007fff8000 on
 * x86_64), so ASan builds run with the default window too.
 *
 * ThreadSanitizer allows mappings only in its application ranges; on
 * x86_64 (gcc 12 and clang 14 runtimes) those are 0x1000-0x8000000000,
 * 0x550000000000-0x568000000000 (PIE executables and their brk heaps),
 * its own heap at 0x7b0000000000 and 0x7e8000000000-0x800000000000
 * (libraries, mmaps, stacks); its shadow and metadata take most of the
 * rest, 32 TiB included.  A TSan build puts the window at 64 GiB in the low
 * range, where nothing maps once executables are PIE and which later
 * runtimes keep as application memory: up to 448 GiB of room (see
 * MMC_META_DEFAULT_SEGMENT for the meta service's default window).
 */
#if MF_TSAN
#define MF_MEM_DEFAULT_BASE_HEX 0x1000000000
#else
#define MF_MEM_DEFAULT_BASE_HEX 0x200000000000
#endif
#define MF_MEM_DEFAULT_BASE     ((uint64_t)MF_MEM_DEFAULT_BASE_HEX)
#define MF_MEM_DEFAULT_BASE_STR MF_STRINGIFY(MF_MEM_DEFAULT_BASE_HEX)

/*
 * The default base of the device window (device segments, the fabric's
 * device_base): 48 TiB, 16 TiB above the host window's default, below
 * AddressSanitizer's allocator (0x600000000000) and the region where Linux
 * and the CUDA driver place their own mappings.  A ThreadSanitizer build
 * puts it at 320 GiB in the low application range, leaving the host window
 * 256 GiB.
 */
#if MF_TSAN
#define MF_MEM_DEFAULT_DEVICE_BASE_HEX 0x5000000000
#else
#define MF_MEM_DEFAULT_DEVICE_BASE_HEX 0x300000000000
#endif
#define MF_MEM_DEFAULT_DEVICE_BASE ((uint64_t)MF_MEM_DEFAULT_DEVICE_BASE_HEX)
#define MF_MEM_DEFAULT_DEVICE_BASE_STR                                         \
    MF_STRINGIFY(MF_MEM_DEFAULT_DEVICE_BASE_HEX)

/*
 * The default bases of the ranges where SHM places its symmetric regions
 * (the fabric's shm_base and shm_device_base), each MF_MEM_SHM_ROOM bytes:
 * the upper half of the room between the host and device windows' default
 * bases (40 TiB, so a BM window keeps 8 TiB), and 24 TiB above the device
 * window's default base (72 TiB, below AddressSanitizer's allocator).  A
 * ThreadSanitizer build puts them at 192 GiB and 416 GiB with 64 GiB each.
 */
#if MF_TSAN
#define MF_MEM_DEFAULT_SHM_BASE_HEX        0x3000000000
#define MF_MEM_DEFAULT_SHM_DEVICE_BASE_HEX 0x6800000000
#define MF_MEM_SHM_ROOM                    (64ull << 30)
#else
#define MF_MEM_DEFAULT_SHM_BASE_HEX        0x280000000000
#define MF_MEM_DEFAULT_SHM_DEVICE_BASE_HEX 0x480000000000
#define MF_MEM_SHM_ROOM                    (8ull << 40)
#endif
#define MF_MEM_DEFAULT_SHM_BASE_STR MF_STRINGIFY(MF_MEM_DEFAULT_SHM_BASE_HEX)
#define MF_MEM_DEFAULT_SHM_DEVICE_BASE_STR                                     \
    MF_STRINGIFY(MF_MEM_DEFAULT_SHM_DEVICE_BASE_HEX)

/* Flags of seg_create / seg_import. */
#define MF_MEM_SEG_PREFAULT 0x1u /* fault every page in now, not on use */
#define MF_MEM_SEG_HUGEPAGE 0x2u /* hint transparent huge pages */

/* What another process needs to import a segment. */
typedef struct mf_mem_desc {
    uint32_t kind; /* mf_mem_kind_t */
    uint32_t pid;  /* owner process */
    int32_t fd;    /* the owner's descriptor number of the memory */
    uint64_t size; /* bytes, a multiple of the page size */
} mf_mem_desc_t;

typedef struct mf_mem_seg {
    mf_mem_kind_t kind;
    void *addr;      /* fixed address of the mapping */
    uint64_t size;   /* mapped bytes, a multiple of the page size */
    int fd;          /* owner: the descriptor peers import (host: the memfd;
                        cuda: the exported memory); importer: -1 */
    uint64_t handle; /* the kind's handle of the memory (cuda: the
                        CUmemGenericAllocationHandle); 0 for host */
    bool imported;   /* mapped from a peer's descriptor */
} mf_mem_seg_t;

/* Completion of an asynchronous copy: cb fires once, on any thread. */
typedef struct mf_mem_comp mf_mem_comp_t;
struct mf_mem_comp {
    void (*cb)(mf_mem_comp_t *comp, mf_status_t status);
};

/* Memory registered for DMA by a kind (e.g. host memory pinned for a
 * device's copy engine); opaque to callers. */
typedef struct mf_mem_reg mf_mem_reg_t;

typedef struct mf_mem_ops {
    const char *name;
    mf_mem_kind_t kind;
    /* MF_OK when the kind works in this process (its driver loaded and a
     * device present), else why not (MF_ERR_UNSUPPORTED, logged once). */
    mf_status_t (*probe)(void);
    /* Whether [ptr, ptr + size) is memory of this kind (a device kind asks
     * its driver; the host kind claims everything no other kind does). */
    bool (*claims)(const void *ptr, size_t size);
    /* Alignment of segment addresses and sizes (host: the page size; cuda:
     * the device's allocation granularity). */
    uint64_t (*seg_align)(void);
    /* Reserves [base, base + len) for segments of this kind at exactly
     * that address (as mf_mem_reserve does for host memory), and releases
     * it. */
    mf_status_t (*reserve)(uint64_t base, uint64_t len, char *why,
                           size_t why_len);
    void (*unreserve)(uint64_t base, uint64_t len);
    /* Creates size bytes (page multiple) at addr, inside a reservation. */
    mf_status_t (*seg_create)(void *addr, uint64_t size, unsigned flags,
                              mf_mem_seg_t *seg_p);
    /* Unmaps a created or imported segment and restores the reservation. */
    void (*seg_destroy)(mf_mem_seg_t *seg);
    mf_status_t (*seg_export)(const mf_mem_seg_t *seg, mf_mem_desc_t *desc_p);
    /* Maps a peer's segment at addr (inside a reservation). */
    mf_status_t (*seg_import)(const mf_mem_desc_t *desc, void *addr,
                              unsigned flags, mf_mem_seg_t *seg_p);
    /* Copies between memory of this kind and host memory (or memory of
     * this kind), and returns when it is done. */
    mf_status_t (*copy)(void *dst, const void *src, size_t size);
    /* The same, asynchronously: MF_OK (done), MF_INPROGRESS (comp->cb
     * fires later, once) or an error (comp->cb never fires). */
    mf_status_t (*copy_async)(void *dst, const void *src, size_t size,
                              mf_mem_comp_t *comp);
    /* Registers host memory for DMA by this kind's copy engine. */
    mf_status_t (*dma_reg)(void *addr, size_t size, mf_mem_reg_t **reg_p);
    void (*dma_dereg)(mf_mem_reg_t *reg);
} mf_mem_ops_t;

extern const mf_mem_ops_t mf_mem_host_ops;
extern const mf_mem_ops_t mf_mem_cuda_ops;

/* The ops of a kind; never NULL for kind < MF_MEM_KIND_LAST. */
const mf_mem_ops_t *mf_mem_ops_get(mf_mem_kind_t kind);

/* Whether a kind is in this build (without asking its driver). */
bool mf_mem_kind_built(mf_mem_kind_t kind);

/* Whether a kind works here (its probe, asked once per process). */
mf_status_t mf_mem_kind_ready(mf_mem_kind_t kind);

/* The kind of [ptr, ptr + size): the first device kind that is ready and
 * claims it, else host.  Costs one load while no device kind is ready. */
mf_mem_kind_t mf_mem_classify(const void *ptr, size_t size);

/*
 * Reserves [base, base + len) as PROT_NONE without replacing anything.
 * MF_ERR_ADDR_IN_USE when part of it is taken: the error is logged, and why
 * (optional, why_len bytes) receives a one-line reason naming the range and
 * the conflicting mapping.
 */
mf_status_t mf_mem_reserve(uint64_t base, uint64_t len, char *why,
                           size_t why_len);
/* Unmaps a reservation (and whatever is mapped inside it). */
void mf_mem_unreserve(uint64_t base, uint64_t len);
/* Replaces [addr, addr + len) by PROT_NONE reservation, atomically. */
mf_status_t mf_mem_restore_reservation(void *addr, uint64_t len);

/*
 * Opens descriptor fd of process pid of this host (same user): with
 * same_file, the same open file (needed for a driver's descriptor):
 * pidfd_getfd, else the owner's descriptor service (mf_mem_fd_offer),
 * else /proc/<pid>/fd/<fd>; without, a new open of /proc/<pid>/fd/<fd>
 * first (enough for a memfd, and needs no ptrace permission), then the
 * others.  The new descriptor (close-on-exec), or -1 with errno set to
 * the first way's reason.
 */
int mf_mem_peer_fd_open(uint32_t pid, int32_t fd, bool same_file);

/*
 * The descriptor service (mem_fdpass.c): processes of this host and user
 * take descriptors this process offers as the same open file over a Unix
 * socket, where pidfd_getfd is denied (containers).  Offer before a peer
 * may ask; withdraw before closing.  The service runs while something is
 * offered.
 */
mf_status_t mf_mem_fd_offer(int fd);
void mf_mem_fd_withdraw(int fd);
/* Takes descriptor fd offered by process pid: the new descriptor
 * (close-on-exec), or -1 with errno (ENOENT: not offered, or pid serves
 * nothing; EPERM: refused). */
int mf_mem_fd_ask(uint32_t pid, int32_t fd);

/*
 * Describes the mappings of this process that overlap [base, base + len)
 * from /proc/self/maps, e.g. "7f00..-7f10.. rw-p [heap]"; "" if none.
 */
void mf_mem_describe_range(uint64_t base, uint64_t len, char *out,
                           size_t out_len);

#endif
