/*
 * Leak checks around a group of unit tests (see tk_group.h).
 *
 * Invariants: the snapshot holds the targets of the descriptors below
 * TK_FD_MAX open at tk_group_begin(); the descriptor of the /proc/self/fd
 * directory being read is never counted.
 */
#include "tk_group.h"
#include "tk_proc.h"
#include "tk_tls.h"

#include <dirent.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define TK_GROUP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_GROUP_ASAN 1
#endif
#endif

#define TK_FD_ALLOWS 8

typedef struct tk_fd_allowance {
    const char *prefix;
    const char *reason;
} tk_fd_allowance_t;

static char *tk_fd_targets[TK_FD_MAX]; /* NULL: closed at begin */
static tk_fd_allowance_t tk_fd_allows[TK_FD_ALLOWS];
static unsigned tk_fd_nallows;
static size_t tk_mem_in_use;

void tk_fd_allow(const char *prefix, const char *reason)
{
    if (tk_fd_nallows < TK_FD_ALLOWS) {
        tk_fd_allows[tk_fd_nallows].prefix = prefix;
        tk_fd_allows[tk_fd_nallows].reason = reason;
        tk_fd_nallows++;
    }
}

/* Calls fn for every open descriptor below TK_FD_MAX with its target. */
static void tk_fd_scan(void (*fn)(int fd, const char *target, void *arg),
                       void *arg)
{
    char path[64], target[PATH_MAX];
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *ent;
    ssize_t n;
    int fd;

    if (dir == NULL) {
        return;
    }
    while ((ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.') {
            continue;
        }
        fd = atoi(ent->d_name);
        if (fd == dirfd(dir) || fd < 0 || fd >= TK_FD_MAX) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        fn(fd, target, arg);
    }
    closedir(dir);
}

static void tk_fd_tally(int fd, const char *target, void *arg)
{
    (void)fd;
    (void)target;
    (*(int *)arg)++;
}

int tk_fd_count(void)
{
    int n = 0;

    tk_fd_scan(tk_fd_tally, &n);
    return n;
}

static void tk_fd_record(int fd, const char *target, void *arg)
{
    (void)arg;
    tk_fd_targets[fd] = strdup(target);
}

static const tk_fd_allowance_t *tk_fd_allowed(const char *target)
{
    unsigned i;

    for (i = 0; i < tk_fd_nallows; i++) {
        if (strncmp(target, tk_fd_allows[i].prefix,
                    strlen(tk_fd_allows[i].prefix)) == 0) {
            return &tk_fd_allows[i];
        }
    }
    return NULL;
}

/* For a leaked TCP socket: its ends and state from /proc/net/tcp, as
 * "local -> remote (state)" in hex, into buf; "" if not found. */
static void tk_fd_tcp_ends(const char *target, char *buf, size_t len)
{
    unsigned long inode, ino;
    char line[512], local[64], remote[64];
    unsigned state;
    FILE *f;

    buf[0] = '\0';
    if (sscanf(target, "socket:[%lu]", &inode) != 1 ||
        (f = fopen("/proc/self/net/tcp", "r")) == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local,
                   remote, &state, &ino) == 4 &&
            ino == inode) {
            snprintf(buf, len, ", tcp %s -> %s (state %u)", local, remote,
                     state);
            break;
        }
    }
    fclose(f);
}

static void tk_fd_compare(int fd, const char *target, void *arg)
{
    char ends[192];
    const tk_fd_allowance_t *allow;
    unsigned *leaks = arg;

    if (tk_fd_targets[fd] != NULL && strcmp(tk_fd_targets[fd], target) == 0) {
        return;
    }
    allow = tk_fd_allowed(target);
    if (allow != NULL) {
        fprintf(stderr, "fd %d (%s) left open: %s\n", fd, target,
                allow->reason);
        return;
    }
    tk_fd_tcp_ends(target, ends, sizeof(ends));
    fprintf(stderr, "fd %d (%s%s) leaked by the tests\n", fd, target, ends);
    (*leaks)++;
}

static size_t tk_mem_used(void)
{
#ifdef TK_GROUP_ASAN
    return 0;
#else
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd; /* chunks in the heap, and mmap()ed */
#endif
}

void tk_group_begin(void)
{
    const char *only = getenv("TK_TEST_FILTER");

    if (only != NULL && only[0] != '\0') {
        cmocka_set_test_filter(only); /* one test of a long group */
    }
    if (tk_tls_env_begin() != 0) {
        tk_print("TK_TLS: cannot set TLS up; the tests will fail");
    }
    tk_fd_scan(tk_fd_record, NULL);
    tk_mem_in_use = tk_mem_used();
}

int tk_group_end(int failed)
{
    unsigned leaks = 0;
    size_t used;
    int fd;

    tk_fd_scan(tk_fd_compare, &leaks);
    for (fd = 0; fd < TK_FD_MAX; fd++) {
        free(tk_fd_targets[fd]);
        tk_fd_targets[fd] = NULL;
    }
    used = tk_mem_used();
    if (used > tk_mem_in_use + (getenv("TK_TLS") != NULL ? TK_MEM_SLACK_TLS
                                                         : TK_MEM_SLACK)) {
        fprintf(stderr, "heap in use grew by %zu bytes over the tests\n",
                used - tk_mem_in_use);
        leaks++;
    }
    return failed + (leaks != 0);
}

bool tk_transport_wanted(const char *name)
{
    const char *list = getenv("TK_TRANSPORTS"), *p;
    size_t len = strlen(name);

    if (list == NULL || *list == '\0') {
        return true;
    }
    for (p = list; *p != '\0'; p++) {
        if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0')) {
            return true;
        }
        p += strcspn(p, ",");
        if (*p == '\0') {
            break;
        }
    }
    return false;
}
