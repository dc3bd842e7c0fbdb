/*
 * Log capture for tests: a sink that counts messages by level, keeps the
 * last one and the most recent ones for substring searches, and may echo
 * every message to stderr with the process role (tk_proc.h).
 *
 * A test's setup calls tk_log_start() and its teardown tk_log_stop(),
 * which restores the default stderr sink; tk_log_check_clean() fails a
 * test that logged an error it did not expect.  For libmemcache, whose
 * messages go through their own sink, pass tk_log_sink and the capture to
 * mmc_log_set_sink() as well.  The sink may run on any thread.
 */
#ifndef MF_TK_LOG_H
#define MF_TK_LOG_H

#include <memfabric/mf_log.h>
#include <pthread.h>
#include <stdbool.h>

#define TK_LOG_RECENT 32   /* messages kept for tk_log_find() */
#define TK_LOG_LEN    1024 /* longest message kept, with its NUL */

enum {
    TK_LOG_ECHO = 1u << 0, /* also print every message to stderr */
};

typedef struct tk_log {
    pthread_mutex_t lock;
    unsigned flags;
    unsigned count[MF_LOG_TRACE + 1]; /* messages at each level */
    mf_log_level_t last_level;
    char last[TK_LOG_LEN];
    char recent[TK_LOG_RECENT][TK_LOG_LEN]; /* a ring */
    unsigned nrecent;                       /* messages ever kept */
} tk_log_t;

/* Clears log and makes it libmemfabric's sink; flags: TK_LOG_*. */
void tk_log_start(tk_log_t *log, unsigned flags);
/* Restores the default sink. */
void tk_log_stop(tk_log_t *log);
/* Forgets what was captured (the sink stays). */
void tk_log_reset(tk_log_t *log);

/* The sink itself (arg: the tk_log_t), for other libraries' setters. */
void tk_log_sink(mf_log_level_t level, const char *file, int line,
                 const char *message, void *arg);

/* Messages captured at level. */
unsigned tk_log_count(tk_log_t *log, mf_log_level_t level);
/* The last message (empty if none); read it when nothing logs. */
const char *tk_log_last(const tk_log_t *log);
/* Whether one of the recent messages contains needle. */
bool tk_log_find(tk_log_t *log, const char *needle);

/* 0 if no error was captured, else -1 with the count and the last message
 * printed: the return of a cmocka teardown. */
int tk_log_check_clean(tk_log_t *log);

#endif /* MF_TK_LOG_H */
