/*
 * An event loop on a thread of its own, shared by the server and the
 * client.
 *
 * Other threads hand work to the loop through a task queue: a task is put
 * on the list under the loop's lock and a never-added event is activated
 * (event_active is thread safe once evthread_use_pthreads() ran).  The loop
 * runs tasks in order.  Stopping marks the loop as stopping and queues the
 * last task under the same lock, so no task can be queued behind it and
 * no waiter is left hanging.  The loop thread runs with every signal
 * blocked, so a write to a closed socket returns EPIPE instead of killing
 * the process with SIGPIPE.
 */
#include "net/net_int.h"
#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <string.h>

typedef struct mf_net_task {
    mf_list_t link;
    void (*fn)(void *arg);
    void *arg;
    bool done;
    pthread_cond_t cond; /* signalled with the loop's lock when done */
} mf_net_task_t;

/* The loop whose thread is the current one, NULL on other threads. */
static _Thread_local const mf_net_loop_t *mf_net_loop_current;

static void mf_net_loop_task_cb(evutil_socket_t fd, short what, void *arg)
{
    mf_net_loop_t *loop = arg;
    mf_list_t *elem;
    mf_net_task_t *task;

    pthread_mutex_lock(&loop->lock);
    while ((elem = mf_list_pop_front(&loop->tasks)) != NULL) {
        task = mf_container_of(elem, mf_net_task_t, link);
        pthread_mutex_unlock(&loop->lock);
        task->fn(task->arg);
        pthread_mutex_lock(&loop->lock);
        /* The waiter owns task and may free it as soon as we unlock. */
        task->done = true;
        pthread_cond_signal(&task->cond);
    }
    pthread_mutex_unlock(&loop->lock);
}

mf_status_t mf_net_loop_init(mf_net_loop_t *loop, const char *name)
{
    mf_status_t status;

    mf_net_global_init();
    memset(loop, 0, sizeof(*loop));
    mf_strlcpy(loop->name, name, sizeof(loop->name));
    mf_list_init(&loop->tasks);

    loop->base = event_base_new();
    if (loop->base == NULL) {
        mf_error("%s: event_base_new() failed", name);
        status = MF_ERR_NOMEM;
        goto err;
    }
    loop->task_ev = event_new(loop->base, -1, 0, mf_net_loop_task_cb, loop);
    if (loop->task_ev == NULL) {
        mf_error("%s: event_new() failed", name);
        status = MF_ERR_NOMEM;
        goto err_free_base;
    }
    pthread_mutex_init(&loop->lock, NULL);
    return MF_OK;

err_free_base:
    event_base_free(loop->base);
    loop->base = NULL;
err:
    return status;
}

static void *mf_net_loop_thread(void *arg)
{
    mf_net_loop_t *loop = arg;

    mf_net_loop_current = loop;
    mf_debug("%s: loop thread running", loop->name);
    if (event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0) {
        mf_error("%s: event_base_loop() failed", loop->name);
    }
    mf_net_loop_current = NULL;
    return NULL;
}

mf_status_t mf_net_loop_start(mf_net_loop_t *loop)
{
    sigset_t all, saved;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    rc = pthread_create(&loop->thread, NULL, mf_net_loop_thread, loop);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc != 0) {
        mf_error("%s: pthread_create() failed: %s", loop->name, strerror(rc));
        return MF_ERR_NOMEM;
    }
    pthread_setname_np(loop->thread, loop->name);
    loop->thread_started = true;
    return MF_OK;
}

bool mf_net_loop_is_current(const mf_net_loop_t *loop)
{
    return mf_net_loop_current == loop;
}

/* Queues the task; with last, the loop accepts no more after it. */
static mf_status_t mf_net_loop_submit(mf_net_loop_t *loop, mf_net_task_t *task,
                                      bool last)
{
    pthread_mutex_lock(&loop->lock);
    if (!loop->thread_started || loop->stopping) {
        pthread_mutex_unlock(&loop->lock);
        return MF_ERR_STATE;
    }
    if (last) {
        loop->stopping = true;
    }
    mf_list_push_back(&loop->tasks, &task->link);
    /* Under the lock: once unlocked, a stop may free the event. */
    event_active(loop->task_ev, 0, 0);
    while (!task->done) {
        pthread_cond_wait(&task->cond, &loop->lock);
    }
    pthread_mutex_unlock(&loop->lock);
    return MF_OK;
}

mf_status_t mf_net_loop_run_sync(mf_net_loop_t *loop, void (*fn)(void *arg),
                                 void *arg)
{
    mf_net_task_t task = {.fn = fn, .arg = arg, .done = false};
    mf_status_t status;

    if (mf_net_loop_is_current(loop)) {
        fn(arg);
        return MF_OK;
    }
    pthread_cond_init(&task.cond, NULL);
    status = mf_net_loop_submit(loop, &task, false);
    pthread_cond_destroy(&task.cond);
    if (status != MF_OK) {
        mf_debug("%s: loop is stopping, task not run", loop->name);
    }
    return status;
}

typedef struct mf_net_loop_stop_arg {
    mf_net_loop_t *loop;
    void (*last_fn)(void *arg);
    void *arg;
} mf_net_loop_stop_arg_t;

static void mf_net_loop_stop_task(void *arg)
{
    mf_net_loop_stop_arg_t *stop = arg;

    if (stop->last_fn != NULL) {
        stop->last_fn(stop->arg);
    }
    event_base_loopbreak(stop->loop->base);
}

void mf_net_loop_stop(mf_net_loop_t *loop, void (*last_fn)(void *arg),
                      void *arg)
{
    mf_net_loop_stop_arg_t stop = {loop, last_fn, arg};
    mf_net_task_t task = {.fn = mf_net_loop_stop_task, .arg = &stop};
    mf_status_t status;
    int rc;

    if (mf_net_loop_is_current(loop)) {
        mf_error("%s: cannot stop the loop from its own thread", loop->name);
        return;
    }
    pthread_cond_init(&task.cond, NULL);
    status = mf_net_loop_submit(loop, &task, true);
    pthread_cond_destroy(&task.cond);
    if (status != MF_OK) {
        return; /* never started or already stopped */
    }
    rc = pthread_join(loop->thread, NULL);
    if (rc != 0) {
        mf_error("%s: pthread_join() failed: %s", loop->name, strerror(rc));
    }
}

void mf_net_loop_cleanup(mf_net_loop_t *loop)
{
    if (loop->base == NULL) {
        return;
    }
    event_free(loop->task_ev);
    /* Callbacks still queued when the loop stopped (the deferred ones of
     * OpenSSL bufferevents hold a reference on theirs) run now, on this
     * thread (the loop's was joined): their bufferevents were freed, so
     * they only let go of them.  Then event_base_free runs the
     * finalizers of freed bufferevents, which close their fds. */
    (void)event_base_loop(loop->base, EVLOOP_NONBLOCK);
    event_base_free(loop->base);
    loop->base = NULL;
    pthread_mutex_destroy(&loop->lock);
}
