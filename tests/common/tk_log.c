/*
 * Log capture for tests (see tk_log.h).
 *
 * Invariants: every field but flags is written under the lock, since the
 * libraries log from their own threads; the ring keeps the last
 * TK_LOG_RECENT messages, slot nrecent % TK_LOG_RECENT being the next.
 */
#include "tk_log.h"

#include "tk_proc.h"

#include <stdio.h>
#include <string.h>

static const char *const tk_log_names[] = {"off",  "error", "warn",
                                           "info", "debug", "trace"};

void tk_log_reset(tk_log_t *log)
{
    pthread_mutex_lock(&log->lock);
    memset(log->count, 0, sizeof(log->count));
    log->last_level = MF_LOG_OFF;
    log->last[0] = '\0';
    log->nrecent = 0;
    pthread_mutex_unlock(&log->lock);
}

void tk_log_start(tk_log_t *log, unsigned flags)
{
    memset(log, 0, sizeof(*log));
    pthread_mutex_init(&log->lock, NULL);
    log->flags = flags;
    mf_log_set_sink(tk_log_sink, log);
}

void tk_log_stop(tk_log_t *log)
{
    (void)log;
    mf_log_set_sink(NULL, NULL);
}

void tk_log_sink(mf_log_level_t level, const char *file, int line,
                 const char *message, void *arg)
{
    tk_log_t *log = arg;
    unsigned lvl = (unsigned)level <= MF_LOG_TRACE ? (unsigned)level : 0;

    if (log->flags & TK_LOG_ECHO) {
        fprintf(stderr, "[%s pid %d] mf %s %s:%d: %s\n", tk_role_get(),
                (int)getpid(), tk_log_names[lvl], file, line, message);
    }
    pthread_mutex_lock(&log->lock);
    log->count[lvl]++;
    log->last_level = level;
    snprintf(log->last, sizeof(log->last), "%s", message);
    snprintf(log->recent[log->nrecent % TK_LOG_RECENT], TK_LOG_LEN, "%s",
             message);
    log->nrecent++;
    pthread_mutex_unlock(&log->lock);
}

unsigned tk_log_count(tk_log_t *log, mf_log_level_t level)
{
    unsigned n;

    if ((unsigned)level > MF_LOG_TRACE) {
        return 0;
    }
    pthread_mutex_lock(&log->lock);
    n = log->count[level];
    pthread_mutex_unlock(&log->lock);
    return n;
}

const char *tk_log_last(const tk_log_t *log)
{
    return log->last;
}

bool tk_log_find(tk_log_t *log, const char *needle)
{
    unsigned i, n;
    bool found = false;

    pthread_mutex_lock(&log->lock);
    n = log->nrecent < TK_LOG_RECENT ? log->nrecent : TK_LOG_RECENT;
    for (i = 0; i < n && !found; i++) {
        found = strstr(log->recent[i], needle) != NULL;
    }
    pthread_mutex_unlock(&log->lock);
    return found;
}

int tk_log_check_clean(tk_log_t *log)
{
    unsigned errors = tk_log_count(log, MF_LOG_ERROR);

    if (errors == 0) {
        return 0;
    }
    pthread_mutex_lock(&log->lock);
    fprintf(stderr, "%u unexpected error log(s), the last: %s\n", errors,
            log->last);
    pthread_mutex_unlock(&log->lock);
    return -1;
}
