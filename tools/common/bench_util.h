/*
 * Small helpers shared by the benchmarks (mf-bench, mmc-bench,
 * tcp-rma-bench): error messages prefixed with the tool's name, the
 * monotonic clock, sleeping, parsing of sizes and numbers from the command
 * line, medians of sorted samples, and buffers mapped for timing.  What
 * tests need as well is the test kit's (tests/common): child processes and
 * tk_sleep_ms (tk_proc), the byte pattern (tk_pattern), the mmc-meta
 * daemon (tk_meta), the network namespaces of --netns (tk_netns).
 *
 * Invariants: nothing here uses malloc or starts a thread, so every helper
 * is safe in the parent and in forked children alike; the tool name is set
 * once, at the start of main, before any fork.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_KIB ((uint64_t)1024)
#define BENCH_MIB (BENCH_KIB * 1024)
#define BENCH_GIB (BENCH_MIB * 1024)

#define BENCH_ARRAY_LEN(_a) (sizeof(_a) / sizeof((_a)[0]))

/* Sets the name that prefixes bench_err() messages ("mf-bench"), and the
 * test kit's (tk_print) too; name must stay valid for the life of the
 * process. */
void bench_set_tool(const char *name);

/* Prints "<tool>: <message>\n" to stderr. */
void bench_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Sleeps us microseconds, resuming after signals (milliseconds:
 * tk_sleep_ms). */
void bench_sleep_us(unsigned us);

/* Parses a size in bytes: a number in 1..2^40 bytes with an optional K, M
 * or G suffix (powers of 1024; "KiB", "kb" and the like also accepted).
 * 0 and *size_p set, or -1 (nothing logged). */
int bench_parse_size(const char *text, uint64_t *size_p);

/* Parses a decimal number in min..max for option what.  0 and *v_p set, or
 * -1 (logged with bench_err). */
int bench_parse_uint(const char *arg, const char *what, unsigned min,
                     unsigned max, unsigned *v_p);

/* Parses a decimal number of seconds in 0..max for option what.  0 and *v_p
 * set, or -1 (logged with bench_err). */
int bench_parse_seconds(const char *arg, const char *what, double max,
                        double *v_p);

/* qsort() comparators, ascending. */
int bench_cmp_double(const void *x, const void *y);
int bench_cmp_u64(const void *x, const void *y);

/* Median of n >= 1 samples sorted ascending: the middle one, or the mean of
 * the two middle ones. */
double bench_median_double(const double *sorted, size_t n);
double bench_median_u64(const uint64_t *sorted, size_t n);

/* Bytes of the largest CPU cache of this machine (the last level): from
 * sysconf, else sysfs, else 32 MiB.  A working set of a few times this
 * comes from DRAM, as a pool's does. */
uint64_t bench_llc_bytes(void);

/* Maps size bytes of private memory (huge pages advised) and touches every
 * page, so that no page fault lands in a timed copy; munmap() frees it.
 * NULL (logged) when the mapping fails. */
void *bench_map(uint64_t size);

#endif /* BENCH_UTIL_H */
