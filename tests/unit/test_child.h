/*
 * Checks for forked children of unit tests (cmocka does not run there: a
 * failed check prints where and exits the child with 1), reaping, and the
 * addresses of the windows tests reserve for themselves.
 */
#ifndef MF_TEST_CHILD_H
#define MF_TEST_CHILD_H

#include "fabric/core/core.h"

#include <memfabric/mf_status.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_CHECK(_cond)                                                     \
    do {                                                                       \
        if (!(_cond)) {                                                        \
            fprintf(stderr, "child %d: %s:%d: check failed: %s\n", getpid(),   \
                    __FILE__, __LINE__, #_cond);                               \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

#define CHILD_OK(_expr)                                                        \
    do {                                                                       \
        mf_status_t _st = (_expr);                                             \
        if (_st != MF_OK) {                                                    \
            fprintf(stderr, "child %d: %s:%d: %s: %s\n", getpid(), __FILE__,   \
                    __LINE__, #_expr, mf_status_name(_st));                    \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

/* The n-th window of a test (n >= 1): 16 GiB apart from the build's default
 * base, which moves under ThreadSanitizer (see fabric.h). */
#define TEST_WINDOW(_n)                                                        \
    (MF_FABRIC_DEFAULT_BASE + (uint64_t)(_n) * (16ull << 30))

/* Reaps pid: its exit code, 128 + signal if killed, -1 if not our child. */
static inline int test_wait_child(pid_t pid)
{
    int wstatus;

    if (waitpid(pid, &wstatus, 0) != pid) {
        return -1;
    }
    if (WIFSIGNALED(wstatus)) {
        return 128 + WTERMSIG(wstatus);
    }
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 255;
}

#endif
