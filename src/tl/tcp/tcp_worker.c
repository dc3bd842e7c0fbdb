/*
 * tcp transport: the transport threads (one epoll set each, a command
 * queue woken by an eventfd) and the socket helpers every side uses.
 */
#include "tl/tcp/tcp_int.h"

/* ================================================================ utils */

mf_status_t mf_tl_tcp_errno_status(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return MF_ERR_CONN_REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ETIMEDOUT:
        return MF_ERR_UNREACHABLE;
    default:
        return MF_ERR_CONN_RESET;
    }
}

/*
 * Options of every connection.  A peer that acknowledges nothing for
 * timeout_ms is dead: TCP_USER_TIMEOUT bounds unacknowledged data, and
 * keepalive (idle timeout/3, then 3 probes timeout/6 apart; the user
 * timeout cuts it short) finds a silent peer while a lane waits for an
 * answer with nothing unacknowledged.
 */
void mf_tl_tcp_sockopts(int fd, uint32_t timeout_ms)
{
    int one = 1, cnt = 3;
    int idle = (int)MF_MAX(timeout_ms / 3000u, 1u);
    int intvl = (int)MF_MAX(timeout_ms / 6000u, 1u);
    unsigned user_timeout = timeout_ms;

    /* best effort: a missing option costs speed or failure detection */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
                     sizeof(user_timeout));
}

void mf_tl_tcp_addr_str(const struct sockaddr_in *sin, char *out, size_t len)
{
    mf_sock_addr_str((const struct sockaddr *)sin, out, len);
}

static mf_status_t mf_tl_tcp_resolve(const char *host, struct in_addr *out)
{
    mf_sock_addr_t addr;
    mf_status_t status;

    status = mf_sock_resolve(host, 0, AF_INET, false, &addr);
    if (status != MF_OK) {
        return status;
    }
    *out = ((struct sockaddr_in *)&addr.ss)->sin_addr;
    return MF_OK;
}

/* The local address the kernel would use towards host (no packet sent). */
mf_status_t mf_tl_tcp_route_to(const char *host, struct in_addr *out)
{
    struct sockaddr_in sin, local;
    socklen_t len = sizeof(local);
    mf_status_t status;
    int fd;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    status = mf_tl_tcp_resolve(host, &sin.sin_addr);
    if (status != MF_OK) {
        return status;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mf_error("tcp: socket(UDP) failed: %m");
        return MF_ERR_IO;
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fd, (struct sockaddr *)&local, &len) != 0) {
        mf_error("tcp: no route towards %s: %m", host);
        close(fd);
        return MF_ERR_UNREACHABLE;
    }
    close(fd);
    *out = local.sin_addr;
    return MF_OK;
}

/* writev that never raises SIGPIPE: a peer that went away is an error
 * of its connection, not of the process. */
ssize_t mf_tl_tcp_sendv(int fd, struct iovec *iov, size_t n)
{
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

ssize_t mf_tl_tcp_recvv(int fd, struct iovec *iov, size_t n)
{
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = MF_MIN(n, (size_t)MF_TL_TCP_IOV_MAX);
    return recvmsg(fd, &msg, 0);
}

size_t mf_tl_tcp_iov_append(struct iovec *iov, size_t *n, size_t max,
                            const struct iovec *src, size_t nsrc, size_t skip,
                            bool *whole_p)
{
    size_t i, added = 0;

    for (i = 0; i < nsrc && skip >= src[i].iov_len; i++) {
        skip -= src[i].iov_len;
    }
    for (; i < nsrc && *n < max; i++, skip = 0) {
        iov[*n].iov_base = (uint8_t *)src[i].iov_base + skip;
        iov[*n].iov_len = src[i].iov_len - skip;
        added += iov[(*n)++].iov_len;
    }
    *whole_p = i == nsrc;
    return added;
}

void mf_tl_tcp_iov_consume(struct iovec *iov, unsigned *at, unsigned n,
                           size_t bytes)
{
    while (*at < n && bytes >= iov[*at].iov_len) {
        bytes -= iov[*at].iov_len;
        (*at)++;
    }
    if (*at < n && bytes > 0) {
        iov[*at].iov_base = (uint8_t *)iov[*at].iov_base + bytes;
        iov[*at].iov_len -= bytes;
    }
}

/* ============================================================== workers */

static void mf_tl_tcp_worker_wake_locked(mf_tl_tcp_worker_t *worker)
{
    uint64_t one = 1;

    if (!worker->woken) {
        worker->woken = true;
        if (write(worker->ev.fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
            mf_error("tcp: write(eventfd) failed: %m");
        }
    }
}

/* Runs fn on the worker; sync: waits for it (runs it here when called on
 * the worker itself). */
void mf_tl_tcp_worker_run(mf_tl_tcp_worker_t *worker,
                          void (*fn)(mf_tl_tcp_worker_t *, void *), void *arg)
{
    mf_tl_tcp_cmd_t cmd;

    if (!worker->started || pthread_equal(pthread_self(), worker->thread)) {
        fn(worker, arg);
        return;
    }
    cmd.fn = fn;
    cmd.arg = arg;
    cmd.drop = NULL;
    cmd.sync = true;
    cmd.done = false;
    pthread_mutex_lock(&worker->lock);
    mf_list_push_back(&worker->cmds, &cmd.elem);
    mf_tl_tcp_worker_wake_locked(worker);
    while (!cmd.done) {
        pthread_cond_wait(&worker->cond, &worker->lock);
    }
    pthread_mutex_unlock(&worker->lock);
}

/* Queues fn on the worker without waiting; cmd is freed by the worker. */
void mf_tl_tcp_worker_post(mf_tl_tcp_worker_t *worker, mf_tl_tcp_cmd_t *cmd)
{
    cmd->sync = false;
    cmd->done = false;
    pthread_mutex_lock(&worker->lock);
    mf_list_push_back(&worker->cmds, &cmd->elem);
    mf_tl_tcp_worker_wake_locked(worker);
    pthread_mutex_unlock(&worker->lock);
}

void mf_tl_tcp_lane_kick(mf_tl_tcp_lane_t *lane)
{
    mf_tl_tcp_worker_t *worker = lane->worker;

    pthread_mutex_lock(&worker->lock);
    if (!lane->kicked) {
        lane->kicked = true;
        mf_list_push_back(&worker->kicked, &lane->kelem);
        mf_tl_tcp_worker_wake_locked(worker);
    }
    pthread_mutex_unlock(&worker->lock);
}

int mf_tl_tcp_epoll_add(mf_tl_tcp_worker_t *worker, mf_tl_tcp_sock_t *sock,
                        uint32_t events)
{
    struct epoll_event ev;

    ev.events = events;
    ev.data.ptr = sock;
    if (epoll_ctl(worker->epfd, EPOLL_CTL_ADD, sock->fd, &ev) != 0) {
        mf_error("tcp: epoll_ctl(ADD, %d) failed: %m", sock->fd);
        return -1;
    }
    return 0;
}

/* ========================================================= worker loop */

static void mf_tl_tcp_worker_commands(mf_tl_tcp_worker_t *worker)
{
    mf_tl_tcp_lane_t *lane;
    mf_tl_tcp_cmd_t *cmd;
    mf_list_t *elem;
    uint64_t value;

    pthread_mutex_lock(&worker->lock);
    if (worker->woken) {
        worker->woken = false;
        if (read(worker->ev.fd, &value, sizeof(value)) < 0 && errno != EAGAIN) {
            mf_error("tcp: read(eventfd) failed: %m");
        }
    }
    for (;;) {
        if ((elem = mf_list_pop_front(&worker->cmds)) != NULL) {
            cmd = mf_container_of(elem, mf_tl_tcp_cmd_t, elem);
            pthread_mutex_unlock(&worker->lock);
            if (cmd->sync) {
                cmd->fn(worker, cmd->arg);
                pthread_mutex_lock(&worker->lock);
                cmd->done = true;
                pthread_cond_broadcast(&worker->cond);
            } else {
                cmd->fn(worker, cmd->arg); /* may free cmd */
                pthread_mutex_lock(&worker->lock);
            }
            continue;
        }
        if ((elem = mf_list_pop_front(&worker->kicked)) != NULL) {
            lane = mf_container_of(elem, mf_tl_tcp_lane_t, kelem);
            lane->kicked = false;
            pthread_mutex_unlock(&worker->lock);
            mf_tl_tcp_lane_run(lane);
            pthread_mutex_lock(&worker->lock);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&worker->lock);
}

static void mf_tl_tcp_worker_timeouts(mf_tl_tcp_worker_t *worker)
{
    mf_tl_tcp_lane_t *lane;
    mf_list_t *elem, *next;
    uint64_t now = mf_time_ms();

    for (elem = worker->connecting.next; elem != &worker->connecting;
         elem = next) {
        next = elem->next;
        lane = mf_container_of(elem, mf_tl_tcp_lane_t, celem);
        if (now >= lane->connect_deadline) {
            mf_tl_tcp_lane_fail(lane, MF_ERR_UNREACHABLE, true,
                                "connect timed out");
        }
    }
}

void *mf_tl_tcp_worker_main(void *arg)
{
    mf_tl_tcp_worker_t *worker = arg;
    struct epoll_event evs[MF_TL_TCP_EVENTS];
    mf_tl_tcp_sock_t *sock;
    bool stop;
    int n, i;

    for (;;) {
        n = epoll_wait(worker->epfd, evs, MF_TL_TCP_EVENTS,
                       (mf_list_empty(&worker->connecting) &&
                        !mf_tl_tcp_accept_paused(worker))
                           ? -1
                           : 100);
        if (n < 0) {
            if (errno != EINTR) {
                mf_error("tcp: epoll_wait failed: %m");
            }
            n = 0;
        }
        for (i = 0; i < n; i++) {
            sock = evs[i].data.ptr;
            switch (sock->type) {
            case MF_TL_TCP_SOCK_LISTEN:
                mf_tl_tcp_accept(worker);
                break;
            case MF_TL_TCP_SOCK_LANE:
                mf_tl_tcp_lane_event((mf_tl_tcp_lane_t *)sock, evs[i].events);
                break;
            case MF_TL_TCP_SOCK_CONN:
                if (sock->fd >= 0) { /* not closed by an earlier event */
                    mf_tl_tcp_conn_event((mf_tl_tcp_conn_t *)sock,
                                         evs[i].events);
                }
                break;
            default:
                break; /* the eventfd: handled below */
            }
        }
        mf_tl_tcp_worker_commands(worker);
        mf_tl_tcp_conns_reap(worker); /* closed by events or commands */
        if (!mf_list_empty(&worker->connecting)) {
            mf_tl_tcp_worker_timeouts(worker);
        }
        mf_tl_tcp_accept_resume(worker);
        pthread_mutex_lock(&worker->lock);
        stop = worker->stop && mf_list_empty(&worker->cmds);
        pthread_mutex_unlock(&worker->lock);
        if (stop) {
            break;
        }
    }
    return NULL;
}

void mf_tl_tcp_worker_stop_cmd(mf_tl_tcp_worker_t *worker, void *arg)
{
    pthread_mutex_lock(&worker->lock);
    worker->stop = true;
    pthread_mutex_unlock(&worker->lock);
}

void mf_tl_tcp_worker_cleanup(mf_tl_tcp_worker_t *worker)
{
    mf_list_t *elem;

    /* posted by another worker after this one stopped */
    while ((elem = mf_list_pop_front(&worker->cmds)) != NULL) {
        mf_tl_tcp_cmd_t *cmd = mf_container_of(elem, mf_tl_tcp_cmd_t, elem);

        if (cmd->drop != NULL) {
            cmd->drop(cmd->arg);
        }
    }
    while ((elem = mf_list_pop_front(&worker->conns)) != NULL) {
        mf_tl_tcp_conn_t *conn = mf_container_of(elem, mf_tl_tcp_conn_t, elem);

        mf_list_init(&conn->elem);
        mf_tl_tcp_conn_close(conn);
    }
    mf_tl_tcp_conns_reap(worker);
    if (worker->ev.fd >= 0) {
        close(worker->ev.fd);
    }
    if (worker->epfd >= 0) {
        close(worker->epfd);
    }
    free(worker->scratch);
    pthread_cond_destroy(&worker->cond);
    pthread_mutex_destroy(&worker->lock);
}

mf_status_t mf_tl_tcp_worker_init(mf_tl_tcp_iface_t *iface,
                                  mf_tl_tcp_worker_t *worker, unsigned index)
{
    worker->iface = iface;
    worker->index = index;
    worker->epfd = -1;
    worker->ev.type = MF_TL_TCP_SOCK_EVENT;
    worker->ev.fd = -1;
    pthread_mutex_init(&worker->lock, NULL);
    pthread_cond_init(&worker->cond, NULL);
    mf_list_init(&worker->cmds);
    mf_list_init(&worker->kicked);
    mf_list_init(&worker->conns);
    mf_list_init(&worker->dead_conns);
    mf_list_init(&worker->connecting);
    worker->scratch = malloc(MF_TL_TCP_SCRATCH);
    if (worker->scratch == NULL) {
        mf_error("tcp: cannot allocate a worker buffer");
        return MF_ERR_NOMEM;
    }
    worker->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (worker->epfd < 0) {
        mf_error("tcp: epoll_create1 failed: %m");
        return MF_ERR_IO;
    }
    worker->ev.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (worker->ev.fd < 0) {
        mf_error("tcp: eventfd failed: %m");
        return MF_ERR_IO;
    }
    if (mf_tl_tcp_epoll_add(worker, &worker->ev, EPOLLIN) != 0) {
        return MF_ERR_IO;
    }
    return MF_OK;
}

/* ------------------------------------------------------------- staging */

mf_status_t mf_tl_tcp_stage_reserve(mf_tl_tcp_stage_t *stage,
                                    mf_mem_kind_t kind, size_t len)
{
    return mf_tl_stage_reserve(&stage->mem, kind, len, MF_TL_TCP_SCRATCH,
                               "tcp");
}

void mf_tl_tcp_stage_free(mf_tl_tcp_stage_t *stage)
{
    mf_tl_stage_release(&stage->mem);
    stage->valid = false;
}
