/*
 * Levelled logging.  The macros test the level before any argument is
 * evaluated or formatted, so a disabled message costs one load and one
 * compare.  errno is preserved across a log call, so "%m" works.
 */
#ifndef MF_UTIL_LOG_H
#define MF_UTIL_LOG_H

#include <memfabric/mf_log.h>
#include <stdatomic.h>

/* Read with relaxed loads (a plain load on x86): a level change reaches
 * other threads soon, without ordering anything else. */
extern _Atomic(mf_log_level_t) mf_log_level_g;

void mf_log_emit(mf_log_level_t level, const char *file, int line,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Applies MF_LOG_LEVEL from the environment; called by mf_init(). */
void mf_log_init_from_env(void);

#define mf_log(_level, ...)                                                    \
    do {                                                                       \
        if ((_level) <=                                                        \
            atomic_load_explicit(&mf_log_level_g, memory_order_relaxed)) {     \
            mf_log_emit((_level), __FILE__, __LINE__, __VA_ARGS__);            \
        }                                                                      \
    } while (0)

#define mf_error(...) mf_log(MF_LOG_ERROR, __VA_ARGS__)
#define mf_warn(...)  mf_log(MF_LOG_WARN, __VA_ARGS__)
#define mf_info(...)  mf_log(MF_LOG_INFO, __VA_ARGS__)
#define mf_debug(...) mf_log(MF_LOG_DEBUG, __VA_ARGS__)
#define mf_trace(...) mf_log(MF_LOG_TRACE, __VA_ARGS__)

#endif
