/*
 * Handing descriptors of segments to processes of the same host over a
 * Unix socket (SCM_RIGHTS).
 *
 * A driver's descriptor (the export of CUDA device memory) is only useful
 * as the same open file; pidfd_getfd gives that, but needs ptrace access
 * to the owner, which containers commonly deny (the default seccomp
 * profiles of Docker and containerd refuse pidfd_getfd without
 * CAP_SYS_PTRACE), and reopening /proc/<pid>/fd/<fd> makes a new open
 * file.  So the owner also serves the descriptors it offers: a thread
 * answers on the abstract socket "memfabric-fd.<pid>" (one network
 * namespace, the scope of "same host" here), gives a descriptor only to a
 * process of the same user (or root), and only one it offers.
 *
 * Invariant: the thread runs while at least one descriptor is offered;
 * mf_fdpass_lock guards the table and the thread's start and stop.  A
 * request is answered in full or the connection is dropped; a client that
 * stalls is cut off after MF_FDPASS_TIMEOUT_MS.
 */
#include "mem/mem.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MF_FDPASS_MAGIC      0x6d66664bu /* "mffK" */
#define MF_FDPASS_TIMEOUT_MS 2000
#define MF_FDPASS_MAX        1024

/* A request: which descriptor of the owner. */
typedef struct mf_fdpass_req {
    uint32_t magic;
    int32_t fd;
} mf_fdpass_req_t;

/* The answer: 0 with the descriptor attached, else an errno. */
typedef struct mf_fdpass_rsp {
    uint32_t magic;
    int32_t err;
} mf_fdpass_rsp_t;

static pthread_mutex_t mf_fdpass_lock = PTHREAD_MUTEX_INITIALIZER;
static int mf_fdpass_fds[MF_FDPASS_MAX];
static unsigned mf_fdpass_count;
static int mf_fdpass_listen_fd = -1;
static int mf_fdpass_stop_pipe[2] = {-1, -1};
static pthread_t mf_fdpass_thread;

static socklen_t mf_fdpass_addr(uint32_t pid, struct sockaddr_un *addr)
{
    int len;

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    /* abstract: sun_path[0] is NUL, the name is not NUL-terminated */
    len = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1,
                   "memfabric-fd.%u", pid);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

static void mf_fdpass_set_timeout(int fd)
{
    struct timeval tv = {.tv_sec = MF_FDPASS_TIMEOUT_MS / 1000,
                         .tv_usec = (MF_FDPASS_TIMEOUT_MS % 1000) * 1000};

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A copy of fd if it is offered, else -1: the copy stays the same open
 * file while the owner withdraws and closes fd (its number may be reused
 * at once). */
static int mf_fdpass_dup_offered(int fd)
{
    int copy = -1;

    pthread_mutex_lock(&mf_fdpass_lock);
    for (unsigned i = 0; i < mf_fdpass_count; i++) {
        if (mf_fdpass_fds[i] == fd) {
            copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            break;
        }
    }
    pthread_mutex_unlock(&mf_fdpass_lock);
    return copy;
}

/* Answers one connection. */
static void mf_fdpass_answer(int conn)
{
    char control[CMSG_SPACE(sizeof(int))];
    mf_fdpass_rsp_t rsp = {.magic = MF_FDPASS_MAGIC, .err = 0};
    struct iovec iov = {.iov_base = &rsp, .iov_len = sizeof(rsp)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);
    mf_fdpass_req_t req;
    struct cmsghdr *cmsg;
    int copy = -1;
    ssize_t n;

    mf_fdpass_set_timeout(conn);
    n = recv(conn, &req, sizeof(req), 0);
    if (n != (ssize_t)sizeof(req) || req.magic != MF_FDPASS_MAGIC) {
        return; /* not one of ours: drop it */
    }
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
        mf_warn("mem: refused a segment descriptor to process %d (uid %u)",
                (int)cred.pid, (unsigned)cred.uid);
        rsp.err = EPERM;
    } else if ((copy = mf_fdpass_dup_offered(req.fd)) < 0) {
        rsp.err = ENOENT;
    }
    if (rsp.err == 0) {
        memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &copy, sizeof(int));
    }
    if (sendmsg(conn, &msg, MSG_NOSIGNAL) < 0) {
        mf_debug("mem: cannot answer a descriptor request: %m");
    }
    if (copy >= 0) {
        close(copy);
    }
}

static void *mf_fdpass_main(void *arg)
{
    int listen_fd = mf_fdpass_listen_fd, stop_fd = mf_fdpass_stop_pipe[0];
    struct pollfd pfd[2] = {{.fd = listen_fd, .events = POLLIN},
                            {.fd = stop_fd, .events = POLLIN}};
    int conn;

    (void)arg;
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            mf_error("mem: descriptor service stops: poll: %m");
            break;
        }
        if (pfd[1].revents != 0) {
            break;
        }
        conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            continue; /* EAGAIN, a client gone, ... */
        }
        mf_fdpass_answer(conn);
        close(conn);
    }
    return NULL;
}

/* Starts the service (lock held). */
static mf_status_t mf_fdpass_start_locked(void)
{
    struct sockaddr_un addr;
    socklen_t len = mf_fdpass_addr((uint32_t)getpid(), &addr);
    int fd, err;

    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        mf_warn("mem: no descriptor service: socket: %m");
        return MF_ERR_IO;
    }
    if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, 64) != 0) {
        /* e.g. a process of another pid namespace with our pid */
        mf_warn("mem: no descriptor service on @%s: %m", addr.sun_path + 1);
        close(fd);
        return MF_ERR_IO;
    }
    if (pipe2(mf_fdpass_stop_pipe, O_CLOEXEC) != 0) {
        mf_warn("mem: no descriptor service: pipe: %m");
        close(fd);
        return MF_ERR_IO;
    }
    mf_fdpass_listen_fd = fd;
    err = pthread_create(&mf_fdpass_thread, NULL, mf_fdpass_main, NULL);
    if (err != 0) {
        mf_warn("mem: no descriptor service: %s", strerror(err));
        close(mf_fdpass_stop_pipe[0]);
        close(mf_fdpass_stop_pipe[1]);
        close(fd);
        mf_fdpass_listen_fd = -1;
        return MF_ERR_IO;
    }
    return MF_OK;
}

static void mf_fdpass_stop_locked(void)
{
    if (mf_fdpass_listen_fd < 0) {
        return;
    }
    (void)!write(mf_fdpass_stop_pipe[1], "x", 1);
    pthread_join(mf_fdpass_thread, NULL);
    close(mf_fdpass_stop_pipe[0]);
    close(mf_fdpass_stop_pipe[1]);
    close(mf_fdpass_listen_fd);
    mf_fdpass_listen_fd = -1;
}

mf_status_t mf_mem_fd_offer(int fd)
{
    mf_status_t status = MF_OK;

    if (fd < 0) {
        return MF_ERR_INVALID;
    }
    pthread_mutex_lock(&mf_fdpass_lock);
    if (mf_fdpass_count == MF_FDPASS_MAX) {
        status = MF_ERR_NOMEM;
    } else if (mf_fdpass_listen_fd < 0) {
        status = mf_fdpass_start_locked();
    }
    if (status == MF_OK) {
        mf_fdpass_fds[mf_fdpass_count++] = fd;
    }
    pthread_mutex_unlock(&mf_fdpass_lock);
    return status;
}

void mf_mem_fd_withdraw(int fd)
{
    pthread_mutex_lock(&mf_fdpass_lock);
    for (unsigned i = 0; i < mf_fdpass_count; i++) {
        if (mf_fdpass_fds[i] == fd) {
            mf_fdpass_fds[i] = mf_fdpass_fds[--mf_fdpass_count];
            break;
        }
    }
    if (mf_fdpass_count == 0) {
        mf_fdpass_stop_locked();
    }
    pthread_mutex_unlock(&mf_fdpass_lock);
}

int mf_mem_fd_ask(uint32_t pid, int32_t fd)
{
    char control[CMSG_SPACE(sizeof(int))];
    mf_fdpass_req_t req = {.magic = MF_FDPASS_MAGIC, .fd = fd};
    mf_fdpass_rsp_t rsp;
    struct iovec iov = {.iov_base = &rsp, .iov_len = sizeof(rsp)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control,
                         .msg_controllen = sizeof(control)};
    struct sockaddr_un addr;
    socklen_t len = mf_fdpass_addr(pid, &addr);
    struct cmsghdr *cmsg;
    int sock, nfd = -1, err;
    ssize_t n;

    sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        return -1;
    }
    mf_fdpass_set_timeout(sock);
    if (connect(sock, (struct sockaddr *)&addr, len) != 0) {
        /* no such service: the process is gone or serves nothing */
        err = errno == ECONNREFUSED ? ENOENT : errno;
        goto out;
    }
    if (send(sock, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
        err = errno;
        goto out;
    }
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n != (ssize_t)sizeof(rsp) || rsp.magic != MF_FDPASS_MAGIC) {
        err = n < 0 ? errno : EPROTO;
        goto out;
    }
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
         cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
            cmsg->cmsg_len == CMSG_LEN(sizeof(int))) {
            memcpy(&nfd, CMSG_DATA(cmsg), sizeof(int));
        }
    }
    err = rsp.err != 0 ? rsp.err : (nfd < 0 ? EPROTO : 0);
    if (err != 0 && nfd >= 0) {
        close(nfd);
        nfd = -1;
    }
out:
    close(sock);
    errno = err;
    return nfd;
}
