/*
 * Fuzz target: what a peer publishes for the transports, unpacked through
 * their ops tables as the fabric does: remote keys (rkey_unpack) and
 * interface addresses (iface_is_reachable, ep_create) of shm and tcp.  One
 * interface of each is opened on the first input and kept; whatever
 * succeeds is released again.
 *
 * Input: byte 0 picks the transport (bit 0: shm, tcp; bit 2: ucx instead,
 * where the build has it) and the decoder (bit 1: remote key, address); for a
 * key, bytes 1 and 2 give the range the caller expects (first page and pages,
 * inside a window this target reserves at the build's default base, as the
 * fabric expects a rank's slot); the rest is the packed bytes.  So that shm
 * keys can name real processes, the four bytes "SELF" in the packed bytes
 * become this process's pid, "PEER" the pid of a child that holds a memfd
 * segment and "PFD!" that segment's fd number in the child.
 *
 * A key is accepted only for exactly the expected range, and a shm key
 * is then mapped there; an endpoint is created exactly for an address the
 * interface calls reachable.  For ucx, whose keys and addresses wrap
 * UCX's own bytes in an envelope of ours, the envelopes are fuzzed (its
 * keys are unpacked by UCX only at their first use, and an address given
 * to ep_create is parsed by UCX, which is not made for hostile input).
 */
#include "fabric/core/core.h"
#include "mem/mem.h"
#include "tl/shm/shm.h"
#include "tl/tcp/tcp.h"
#include "tl/tl.h"
#include "util/codec.h"
#include "util/log.h"
#include "util/misc.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define FUZZ_TL_WINDOW_PAGES 256u
#define FUZZ_TL_HOST_ID      "fuzz-host"
#define FUZZ_TL_MAX          4096

static mf_tl_iface_t *fuzz_tl_ifaces[3]; /* shm, tcp, ucx (or NULL) */
static uint32_t fuzz_tl_peer_pid, fuzz_tl_peer_fd;

/* The peer: a child holding a segment of the window's size until this
 * process ends. */
static void fuzz_tl_peer_start(void)
{
    int pipefd[2], fd;
    pid_t pid;

    if (pipe(pipefd) != 0) {
        abort();
    }
    pid = fork();
    if (pid < 0) {
        abort();
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = memfd_create("fuzz-peer", MFD_CLOEXEC);
        if (fd < 0 ||
            ftruncate(fd, (off_t)(FUZZ_TL_WINDOW_PAGES * mf_page_size())) !=
                0 ||
            write(pipefd[1], &fd, sizeof(fd)) != (ssize_t)sizeof(fd)) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    close(pipefd[1]);
    if (read(pipefd[0], &fd, sizeof(fd)) != (ssize_t)sizeof(fd)) {
        abort();
    }
    close(pipefd[0]);
    fuzz_tl_peer_pid = (uint32_t)pid;
    fuzz_tl_peer_fd = (uint32_t)fd;
}

/* Replaces the placeholders (see above) in buf[0..len). */
static void fuzz_tl_fill(uint8_t *buf, size_t len)
{
    static const struct {
        char tag[5];
        uint32_t *value;
    } tags[] = {{"SELF", NULL},
                {"PEER", &fuzz_tl_peer_pid},
                {"PFD!", &fuzz_tl_peer_fd}};
    uint32_t self = (uint32_t)getpid();

    for (size_t i = 0; i + 4 <= len; i++) {
        for (size_t t = 0; t < MF_ARRAY_SIZE(tags); t++) {
            if (memcmp(buf + i, tags[t].tag, 4) == 0) {
                mf_le32_store(buf + i,
                              tags[t].value != NULL ? *tags[t].value : self);
            }
        }
    }
}

/* UCX's context is cleaned up at exit, as a process that closes its
 * pool does (LeakSanitizer counts what UCX holds for it otherwise). */
static void fuzz_tl_close_ucx(void)
{
    if (fuzz_tl_ifaces[2] != NULL) {
        fuzz_tl_ifaces[2]->ops->iface_close(fuzz_tl_ifaces[2]);
        fuzz_tl_ifaces[2] = NULL;
    }
}

/* Starts the peer, opens both interfaces and reserves the window, once. */
static void fuzz_tl_init(void)
{
    static bool done;
    mf_tl_tcp_config_t tcp_cfg;
    mf_tl_params_t params;

    if (done) {
        return;
    }
    done = true;
    mf_log_set_level(MF_LOG_OFF);
    fuzz_tl_peer_start(); /* before the tcp threads exist */
    if (mf_mem_reserve(MF_FABRIC_DEFAULT_BASE,
                       FUZZ_TL_WINDOW_PAGES * mf_page_size(), NULL,
                       0) != MF_OK) {
        abort();
    }
    (void)mf_cfg_set_defaults(&mf_tl_tcp_cfg_table, &tcp_cfg);
    snprintf(tcp_cfg.addr, sizeof(tcp_cfg.addr), "127.0.0.1");
    tcp_cfg.lanes = 1;
    memset(&params, 0, sizeof(params));
    params.host_id = FUZZ_TL_HOST_ID;
    if (mf_tl_shm_ops.iface_open(&params, &fuzz_tl_ifaces[0]) != MF_OK) {
        abort();
    }
    params.config = &tcp_cfg;
    if (mf_tl_tcp_ops.iface_open(&params, &fuzz_tl_ifaces[1]) != MF_OK) {
        abort();
    }
    if (mf_tl_find("ucx") != NULL) {
        /* UCX's memory hooks and LeakSanitizer do not mix */
        setenv("UCX_MEM_EVENTS", "no", 1);
        params.config = NULL;
        if (mf_tl_find("ucx")->iface_open(&params, &fuzz_tl_ifaces[2]) !=
            MF_OK) {
            fuzz_tl_ifaces[2] = NULL; /* UCX is not installed */
        } else {
            atexit(fuzz_tl_close_ucx);
        }
    }
}

static void fuzz_tl_rkey(mf_tl_iface_t *iface, const uint8_t *data, size_t size)
{
    const mf_tl_ops_t *ops = iface->ops;
    size_t page = mf_page_size();
    unsigned first = data[1] % FUZZ_TL_WINDOW_PAGES;
    unsigned pages = 1 + data[2] % (FUZZ_TL_WINDOW_PAGES - first);
    uint64_t gva = MF_FABRIC_DEFAULT_BASE + (uint64_t)first * page;
    uint64_t len = (uint64_t)pages * page;
    mf_tl_rkey_t *rkey = NULL;
    uint8_t packed[FUZZ_TL_MAX];

    size = MF_MIN(size - 3, sizeof(packed));
    memcpy(packed, data + 3, size);
    fuzz_tl_fill(packed, size);
    if (ops->rkey_unpack(iface, packed, size, gva, len, &rkey) != MF_OK) {
        return;
    }
    if (rkey == NULL || rkey->ops != ops || rkey->gva != gva ||
        rkey->size != len ||
        (rkey->addr != NULL && rkey->addr != (void *)(uintptr_t)gva) ||
        ((ops == &mf_tl_shm_ops) != (rkey->addr != NULL))) {
        __builtin_trap();
    }
    ops->rkey_release(iface, rkey);
    /* the range is reserved again, not a hole another mmap could take */
    if (mmap((void *)(uintptr_t)gva, page, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
             0) != MAP_FAILED) {
        __builtin_trap();
    }
}

static void fuzz_tl_addr(mf_tl_iface_t *iface, const uint8_t *data, size_t size)
{
    const mf_tl_ops_t *ops = iface->ops;
    mf_tl_ep_t *ep = NULL;
    mf_status_t status;
    bool reachable;

    /* both create an endpoint exactly for an address they reach (shm: its
     * own host id; tcp: any well-formed address, connected on first use);
     * ucx: its envelope only */
    reachable = ops->iface_is_reachable(iface, data + 1, size - 1);
    if (iface == fuzz_tl_ifaces[2]) {
        return;
    }
    status = ops->ep_create(iface, data + 1, size - 1, &ep);
    if (reachable != (status == MF_OK)) {
        __builtin_trap();
    }
    if (status != MF_OK) {
        return;
    }
    if (ep == NULL || ep->ops != ops || ep->iface != iface) {
        __builtin_trap();
    }
    ops->ep_destroy(ep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_tl_iface_t *iface;

    if (size < 1) {
        return 0;
    }
    fuzz_tl_init();
    iface = fuzz_tl_ifaces[data[0] & 1];
    if ((data[0] & 4) && fuzz_tl_ifaces[2] != NULL) {
        iface = fuzz_tl_ifaces[2];
    }
    if (data[0] & 2) {
        fuzz_tl_addr(iface, data, size);
    } else if (size >= 3) {
        fuzz_tl_rkey(iface, data, size);
    }
    return 0;
}
