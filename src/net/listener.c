/*
 * Listeners of the net layer: a listening socket (util/sock) under a
 * libevent evconnlistener whose failed accepts back off instead of
 * spinning, for the RPC server and for evhttp servers alike.
 *
 * When accept() fails (EMFILE, ENFILE, ENOBUFS...), the error callback
 * hands the failure to the listener's accept guard, which sheds the
 * backlog and rate-limits the message, disables the evconnlistener and
 * arms a timer that enables it again MF_SOCK_ACCEPT_BACKOFF_MS later.
 * Since an error callback is set, libevent never logs "Error from accept()
 * call" itself.
 *
 * evhttp_bind_listener() replaces the evconnlistener's callback argument
 * with the evhttp, so the error callback finds its listener in a
 * process-wide list keyed by the evconnlistener (only failed accepts look
 * there).  Invariants: a listener is on that list from creation to
 * destruction; everything else about it is touched on its base's loop
 * thread only.
 */
#include "net/net.h"

#include "util/containers.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/sock.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mf_net_listener {
    mf_list_t link; /* in mf_net_listeners */
    struct evconnlistener *evl;
    struct event *resume_ev; /* enables evl again after a backoff */
    mf_net_accept_cb on_accept;
    void *arg;
    bool http_owned; /* evhttp frees evl */
    uint16_t port;
    mf_sock_accept_guard_t guard;
    char addr[MF_SOCK_ADDR_STRLEN];
};

static pthread_mutex_t mf_net_listeners_lock = PTHREAD_MUTEX_INITIALIZER;
static mf_list_t mf_net_listeners = {&mf_net_listeners, &mf_net_listeners};

static mf_net_listener_t *mf_net_listener_find(struct evconnlistener *evl)
{
    mf_net_listener_t *found = NULL;
    mf_list_t *elem;

    pthread_mutex_lock(&mf_net_listeners_lock);
    for (elem = mf_net_listeners.next; elem != &mf_net_listeners;
         elem = elem->next) {
        mf_net_listener_t *l = mf_container_of(elem, mf_net_listener_t, link);

        if (l->evl == evl) {
            found = l;
            break;
        }
    }
    pthread_mutex_unlock(&mf_net_listeners_lock);
    return found;
}

static void mf_net_listener_accept_cb(struct evconnlistener *evl,
                                      evutil_socket_t fd, struct sockaddr *addr,
                                      int addrlen, void *arg)
{
    mf_net_listener_t *l = arg;

    l->on_accept(fd, addr, l->arg);
}

static void mf_net_listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    mf_net_listener_t *l = arg;

    if (evconnlistener_enable(l->evl) != 0) {
        mf_error("%s: cannot accept again after a pause", l->addr);
    }
}

static void mf_net_listener_error_cb(struct evconnlistener *evl, void *arg)
{
    const struct timeval backoff = {
        .tv_sec = MF_SOCK_ACCEPT_BACKOFF_MS / 1000,
        .tv_usec = (MF_SOCK_ACCEPT_BACKOFF_MS % 1000) * 1000,
    };
    int err = EVUTIL_SOCKET_ERROR();
    mf_net_listener_t *l;

    if (mf_sock_accept_transient(err)) {
        return; /* that connection is gone; the next readiness goes on */
    }
    l = mf_net_listener_find(evl);
    if (l == NULL) {
        return; /* being destroyed on this thread */
    }
    mf_sock_accept_failed(&l->guard, evconnlistener_get_fd(evl), err);
    evconnlistener_disable(evl);
    if (evtimer_add(l->resume_ev, &backoff) != 0) {
        mf_error("%s: cannot arm the accept backoff timer; accepting again "
                 "at once",
                 l->addr);
        evconnlistener_enable(evl);
    }
}

mf_status_t mf_net_listener_create(struct event_base *base, const char *host,
                                   uint16_t port, mf_net_accept_cb on_accept,
                                   void *arg, mf_net_listener_t **listener_p)
{
    mf_sock_addr_t bound;
    mf_net_listener_t *l;
    mf_status_t status;
    int fd;

    mf_net_global_init(); /* libevent's messages go to our log */
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        mf_error("no memory for a listener");
        status = MF_ERR_NOMEM;
        goto err;
    }
    l->on_accept = on_accept;
    l->arg = arg;
    status = mf_sock_listen(host, port, AF_UNSPEC, &fd, &bound);
    if (status != MF_OK) {
        goto err_free_l;
    }
    mf_sock_addr_str((struct sockaddr *)&bound.ss, l->addr, sizeof(l->addr));
    l->port = mf_sock_addr_port((struct sockaddr *)&bound.ss);
    l->resume_ev = evtimer_new(base, mf_net_listener_resume_cb, l);
    if (l->resume_ev == NULL) {
        mf_error("%s: no memory for the listener's timer", l->addr);
        status = MF_ERR_NOMEM;
        goto err_close_fd;
    }
    /* backlog 0: mf_sock_listen() listened already */
    l->evl = evconnlistener_new(
        base, (on_accept != NULL) ? mf_net_listener_accept_cb : NULL, l,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (l->evl == NULL) {
        mf_error("%s: evconnlistener_new() failed", l->addr);
        status = MF_ERR_NOMEM;
        goto err_free_resume_ev;
    }
    evconnlistener_set_error_cb(l->evl, mf_net_listener_error_cb);
    mf_sock_accept_guard_init(&l->guard, l->addr);

    pthread_mutex_lock(&mf_net_listeners_lock);
    mf_list_push_back(&mf_net_listeners, &l->link);
    pthread_mutex_unlock(&mf_net_listeners_lock);
    *listener_p = l;
    return MF_OK;

err_free_resume_ev:
    event_free(l->resume_ev);
err_close_fd:
    close(fd);
err_free_l:
    free(l);
err:
    return status;
}

mf_status_t mf_net_listener_bind_http(mf_net_listener_t *l, struct evhttp *http)
{
    if (evhttp_bind_listener(http, l->evl) == NULL) {
        mf_error("%s: cannot serve HTTP on the listener", l->addr);
        return MF_ERR_NOMEM;
    }
    l->http_owned = true;
    return MF_OK;
}

uint16_t mf_net_listener_port(const mf_net_listener_t *l)
{
    return l->port;
}

const char *mf_net_listener_addr(const mf_net_listener_t *l)
{
    return l->addr;
}

void mf_net_listener_destroy(mf_net_listener_t *l)
{
    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&mf_net_listeners_lock);
    mf_list_del(&l->link);
    pthread_mutex_unlock(&mf_net_listeners_lock);
    if (!l->http_owned) {
        evconnlistener_free(l->evl); /* closes the socket */
    }
    event_free(l->resume_ev);
    mf_sock_accept_guard_cleanup(&l->guard);
    free(l);
}
