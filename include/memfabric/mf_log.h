/*
 * Logging control.  The library logs through one sink; the default writes
 * one line per message to stderr.  The default level is MF_LOG_WARN and can
 * be set with the environment variable MF_LOG_LEVEL (error, warn, info,
 * debug, trace) or with mf_log_set_level().
 */
#ifndef MEMFABRIC_MF_LOG_H
#define MEMFABRIC_MF_LOG_H

#include <memfabric/mf_common.h>

MF_BEGIN_DECLS

typedef enum mf_log_level {
    MF_LOG_OFF = 0,
    MF_LOG_ERROR = 1,
    MF_LOG_WARN = 2,
    MF_LOG_INFO = 3,
    MF_LOG_DEBUG = 4,
    MF_LOG_TRACE = 5,
} mf_log_level_t;

/*
 * A log sink receives every message at or above the current level, already
 * formatted, without a trailing newline.  It may be called from any thread
 * of the library, concurrently; it must not call back into the library.
 */
typedef void (*mf_log_sink_cb)(mf_log_level_t level, const char *file, int line,
                               const char *message, void *arg);

MF_API void mf_log_set_level(mf_log_level_t level);
MF_API mf_log_level_t mf_log_get_level(void);

/* Parses "error", "warn", "info", "debug", "trace" or "off"; -1 if unknown. */
MF_API int mf_log_level_parse(const char *name);

/* Replaces the sink; NULL restores the default stderr sink. */
MF_API void mf_log_set_sink(mf_log_sink_cb sink, void *arg);

MF_END_DECLS

#endif /* MEMFABRIC_MF_LOG_H */
