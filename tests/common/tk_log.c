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
    log->last_error[0] = '\0';
    log->nrecent = 0;
    log->expected = 0;
    for (unsigned i = 0; i < log->nwatches; i++) {
        log->watch[i].matches = 0;
    }
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
    tk_log_watch_t *w;
    unsigned i;
    unsigned lvl = (unsigned)level <= MF_LOG_TRACE ? (unsigned)level : 0;

    if (log->flags & TK_LOG_ECHO) {
        fprintf(stderr, "[%s pid %d] mf %s %s:%d: %s\n", tk_role_get(),
                (int)getpid(), tk_log_names[lvl], file, line, message);
    }
    pthread_mutex_lock(&log->lock);
    if (level == MF_LOG_ERROR && log->allow > 0) {
        log->expected++;
    } else {
        log->count[lvl]++;
    }
    log->last_level = level;
    snprintf(log->last, sizeof(log->last), "%s", message);
    if (level == MF_LOG_ERROR) {
        snprintf(log->last_error, sizeof(log->last_error), "%s", message);
    }
    snprintf(log->recent[log->nrecent % TK_LOG_RECENT], TK_LOG_LEN, "%s",
             message);
    log->nrecent++;
    for (i = 0; i < log->nwatches; i++) {
        w = &log->watch[i];
        if (strstr(message, w->needle) != NULL && w->matches++ == 0 &&
            w->notify_fd >= 0 && write(w->notify_fd, "!", 1) != 1) {
            fprintf(stderr, "cannot notify the watcher of '%s'\n", w->needle);
        }
    }
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

unsigned tk_log_total(tk_log_t *log)
{
    unsigned n;

    pthread_mutex_lock(&log->lock);
    n = log->nrecent;
    pthread_mutex_unlock(&log->lock);
    return n;
}

void tk_log_take(tk_log_t *log, mf_log_level_t level, unsigned n)
{
    if ((unsigned)level > MF_LOG_TRACE) {
        return;
    }
    pthread_mutex_lock(&log->lock);
    log->count[level] -= n < log->count[level] ? n : log->count[level];
    pthread_mutex_unlock(&log->lock);
}

const char *tk_log_last(const tk_log_t *log)
{
    return log->last;
}

unsigned tk_log_matches(tk_log_t *log, const char *needle)
{
    unsigned i, n, found = 0;

    pthread_mutex_lock(&log->lock);
    n = log->nrecent < TK_LOG_RECENT ? log->nrecent : TK_LOG_RECENT;
    for (i = 0; i < n; i++) {
        found += strstr(log->recent[i], needle) != NULL;
    }
    pthread_mutex_unlock(&log->lock);
    return found;
}

bool tk_log_find(tk_log_t *log, const char *needle)
{
    return tk_log_matches(log, needle) != 0;
}

int tk_log_watch(tk_log_t *log, const char *needle, int notify_fd)
{
    int watch = -1;

    pthread_mutex_lock(&log->lock);
    if (log->nwatches < TK_LOG_WATCHES) {
        watch = (int)log->nwatches++;
        log->watch[watch].needle = needle;
        log->watch[watch].notify_fd = notify_fd;
        log->watch[watch].matches = 0;
    }
    pthread_mutex_unlock(&log->lock);
    return watch;
}

unsigned tk_log_watched(tk_log_t *log, int watch)
{
    unsigned n = 0;

    pthread_mutex_lock(&log->lock);
    if (watch >= 0 && (unsigned)watch < log->nwatches) {
        n = log->watch[watch].matches;
    }
    pthread_mutex_unlock(&log->lock);
    return n;
}

void tk_log_allow_errors(tk_log_t *log, bool allow)
{
    pthread_mutex_lock(&log->lock);
    if (allow) {
        log->allow++;
    } else if (log->allow > 0) {
        log->allow--;
    }
    pthread_mutex_unlock(&log->lock);
}

int tk_log_check_clean(tk_log_t *log)
{
    unsigned errors = tk_log_count(log, MF_LOG_ERROR);

    if (errors == 0) {
        return 0;
    }
    pthread_mutex_lock(&log->lock);
    fprintf(stderr, "%u unexpected error log(s), the last: %s\n", errors,
            log->last_error);
    pthread_mutex_unlock(&log->lock);
    return -1;
}
