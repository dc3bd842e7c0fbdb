/*
 * Time, addresses and other small helpers.
 */
#ifndef MF_UTIL_MISC_H
#define MF_UTIL_MISC_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MF_ARRAY_SIZE(_a)   (sizeof(_a) / sizeof((_a)[0]))
#define MF_MIN(_a, _b)      ((_a) < (_b) ? (_a) : (_b))
#define MF_MAX(_a, _b)      ((_a) > (_b) ? (_a) : (_b))
#define MF_ALIGN_UP(_x, _a) (((_x) + (_a)-1) & ~((uint64_t)(_a)-1))
#define mf_likely(_x)       __builtin_expect(!!(_x), 1)
#define mf_unlikely(_x)     __builtin_expect(!!(_x), 0)
#define MF_STRINGIFY_(_x)   #_x
#define MF_STRINGIFY(_x)    MF_STRINGIFY_(_x) /* after macro expansion */

/* MF_TSAN: 1 when built with ThreadSanitizer (gcc defines the macro, clang
 * answers the feature test), else 0. */
#if defined(__SANITIZE_THREAD__)
#define MF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MF_TSAN 1
#endif
#endif
#ifndef MF_TSAN
#define MF_TSAN 0
#endif

/* One step of a busy wait: tells the core this thread spins. */
static inline void mf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

/* Monotonic clock. */
uint64_t mf_time_ns(void);
static inline uint64_t mf_time_ms(void)
{
    return mf_time_ns() / 1000000u;
}
/* Fills a CLOCK_REALTIME timespec `ms` from now, for pthread_cond_timedwait
 * on a condition variable created with the default clock. */
struct timespec;
void mf_deadline_after_ms(struct timespec *ts, uint64_t ms);

/*
 * Parses "tcp://host:port", "host:port" or "[v6addr]:port" into host and
 * port.  host must have room for host_len bytes.
 */
mf_status_t mf_url_parse(const char *url, char *host, size_t host_len,
                         uint16_t *port_p);

/* One endpoint of a URL list. */
#define MF_URL_LIST_MAX 16
typedef struct mf_url {
    char host[256];
    uint16_t port;
} mf_url_t;

/*
 * Parses a comma-separated list of URLs (each as mf_url_parse takes it;
 * spaces around commas are allowed) into urls (at most max): where one
 * service may run (a restart on another host).  *n_p gets the count.
 * MF_ERR_INVALID for an empty list, a bad URL (logged) or more than max.
 */
mf_status_t mf_url_list_parse(const char *list, mf_url_t *urls, size_t max,
                              size_t *n_p);

/* Copies at most dst_size-1 bytes and terminates; returns false if cut. */
bool mf_strlcpy(char *dst, const char *src, size_t dst_size);

/* Whether name can be one part of a config store key: 1..max-1
 * printable bytes without '/' or ' ' (a TRANS id, an SHM key). */
bool mf_key_part_valid(const char *name, size_t max);

/* A stable identifier of this host: boot id and UTS host name. */
const char *mf_host_id(void);

size_t mf_page_size(void);

#endif
