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

#define TK_LOG_RECENT  32   /* messages kept for tk_log_find() */
#define TK_LOG_LEN     1024 /* longest message kept, with its NUL */
#define TK_LOG_WATCHES 4    /* substrings counted exactly */

typedef struct tk_log_watch {
    const char *needle;
    int notify_fd; /* gets one byte at the first match; -1: none */
    unsigned matches;
} tk_log_watch_t;

enum {
    TK_LOG_ECHO = 1u << 0, /* also print every message to stderr */
};

typedef struct tk_log {
    pthread_mutex_t lock;
    unsigned flags;
    unsigned count[MF_LOG_TRACE + 1]; /* messages at each level */
    mf_log_level_t last_level;
    char last[TK_LOG_LEN];
    char last_error[TK_LOG_LEN];
    char recent[TK_LOG_RECENT][TK_LOG_LEN]; /* a ring */
    unsigned nrecent;                       /* messages ever kept */
    unsigned allow;                         /* > 0: errors are expected now */
    unsigned expected;                      /* errors logged while allowed */
    tk_log_watch_t watch[TK_LOG_WATCHES];
    unsigned nwatches;
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

/* Messages captured at level, and at any level. */
unsigned tk_log_count(tk_log_t *log, mf_log_level_t level);
unsigned tk_log_total(tk_log_t *log);
/* Takes n messages at level off the count, as expected ones (they no
 * longer fail tk_log_check_clean()).  The count stays >= 0. */
void tk_log_take(tk_log_t *log, mf_log_level_t level, unsigned n);
/* The last message (empty if none); read it when nothing logs. */
const char *tk_log_last(const tk_log_t *log);
/* Whether one of the recent messages contains needle, and how many do. */
bool tk_log_find(tk_log_t *log, const char *needle);
unsigned tk_log_matches(tk_log_t *log, const char *needle);

/*
 * Counts every message that contains needle (a string that outlives the
 * capture), and writes one byte to notify_fd (unless -1) at the first,
 * e.g. to wake a parent that waits for it.  Returns the watch's index for
 * tk_log_watched(), or -1 if TK_LOG_WATCHES are set.
 */
int tk_log_watch(tk_log_t *log, const char *needle, int notify_fd);
unsigned tk_log_watched(tk_log_t *log, int watch);

/* Opens (allow) or closes a window in which errors are expected: they are
 * counted apart and do not fail tk_log_check_clean().  Windows nest. */
void tk_log_allow_errors(tk_log_t *log, bool allow);

/* 0 if no error was captured, else -1 with the count and the last message
 * printed: the return of a cmocka teardown. */
int tk_log_check_clean(tk_log_t *log);

#endif /* MF_TK_LOG_H */
