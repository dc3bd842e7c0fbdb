/*
 * Helpers shared by the benchmarks; see bench_util.h.
 *
 * Invariants: the messages and the accepted syntax are the tools' own, so
 * moving a helper here changes no tool's output or options.
 */
#include "bench_util.h"

#include "tk_proc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *bench_tool_name = "bench";

void bench_set_tool(const char *name)
{
    bench_tool_name = name;
    tk_role_set("%s", name);
}

void bench_err(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", bench_tool_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int bench_parse_size(const char *text, uint64_t *size_p)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || end == text) {
        return -1;
    }
    switch (*end) {
    case 'k':
    case 'K':
        mult = BENCH_KIB;
        end++;
        break;
    case 'm':
    case 'M':
        mult = BENCH_MIB;
        end++;
        break;
    case 'g':
    case 'G':
        mult = BENCH_GIB;
        end++;
        break;
    default:
        break;
    }
    if (mult != 1 && (*end == 'i' || *end == 'I')) {
        end++;
    }
    if (mult != 1 && (*end == 'b' || *end == 'B')) {
        end++;
    }
    if (*end != '\0' || v == 0 || v > (1ull << 40) / mult) {
        return -1;
    }
    *size_p = v * mult;
    return 0;
}

int bench_parse_uint(const char *arg, const char *what, unsigned min,
                     unsigned max, unsigned *v_p)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(arg, &end, 10);
    if (errno != 0 || *end != '\0' || end == arg || v < min || v > max) {
        bench_err("%s: expected a number in %u..%u, got '%s'", what, min, max,
                  arg);
        return -1;
    }
    *v_p = (unsigned)v;
    return 0;
}

int bench_parse_seconds(const char *arg, const char *what, double max,
                        double *v_p)
{
    char *end;
    double v = strtod(arg, &end);

    if (*end != '\0' || end == arg || !(v >= 0) || v > max) {
        bench_err("%s: expected seconds in 0..%g, got '%s'", what, max, arg);
        return -1;
    }
    *v_p = v;
    return 0;
}

int bench_cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

int bench_cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

    return a < b ? -1 : a > b;
}

double bench_median_double(const double *sorted, size_t n)
{
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

double bench_median_u64(const uint64_t *sorted, size_t n)
{
    return n % 2 ? (double)sorted[n / 2]
                 : ((double)sorted[n / 2 - 1] + (double)sorted[n / 2]) / 2;
}

uint64_t bench_llc_bytes(void)
{
    static const int names[] = {_SC_LEVEL4_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE,
                                _SC_LEVEL2_CACHE_SIZE};
    char path[96];
    uint64_t best = 0, v;
    unsigned i;
    char unit;
    long n;
    FILE *f;

    for (i = 0; i < BENCH_ARRAY_LEN(names) && best == 0; i++) {
        n = sysconf(names[i]);
        best = n > 0 ? (uint64_t)n : 0;
    }
    for (i = 0; i < 8 && n <= 0; i++) { /* the largest index<i>: "32768K" */
        snprintf(path, sizeof(path),
                 "/sys/devices/system/cpu/cpu0/cache/index%u/size", i);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        unit = 'K';
        if (fscanf(f, "%" SCNu64 "%c", &v, &unit) >= 1) {
            v *= unit == 'M' ? BENCH_MIB : unit == 'K' ? BENCH_KIB : 1;
            best = v > best ? v : best;
        }
        fclose(f);
    }
    return best > 0 ? best : 32 * BENCH_MIB;
}

void *bench_map(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        bench_err("mmap(%" PRIu64 " bytes): %s", size, strerror(errno));
        return NULL;
    }
    madvise(p, size, MADV_HUGEPAGE);
    memset(p, 0x5a, size); /* fault the pages in before timing */
    return p;
}
