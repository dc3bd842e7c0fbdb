/*
 * Process-wide libevent setup for the net layer: pthreads locking (done
 * once, before any event base exists) and libevent's own messages routed
 * into our log.
 */
#include "net/net.h"
#include "util/log.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>

static pthread_once_t mf_net_global_once = PTHREAD_ONCE_INIT;

static void mf_net_event_log_cb(int severity, const char *msg)
{
    switch (severity) {
    case EVENT_LOG_DEBUG:
        mf_debug("libevent: %s", msg);
        break;
    case EVENT_LOG_MSG:
        mf_info("libevent: %s", msg);
        break;
    case EVENT_LOG_WARN:
        mf_warn("libevent: %s", msg);
        break;
    default:
        mf_error("libevent: %s", msg);
        break;
    }
}

static void mf_net_global_init_once(void)
{
    event_set_log_callback(mf_net_event_log_cb);
    if (evthread_use_pthreads() != 0) {
        /* Only fails when out of memory; the loops would then race. */
        mf_error("evthread_use_pthreads() failed");
    }
}

void mf_net_global_init(void)
{
    pthread_once(&mf_net_global_once, mf_net_global_init_once);
}
