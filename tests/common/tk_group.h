/*
 * The run of a unit test program: tk_group_run() is
 * cmocka_run_group_tests() plus a check that the group leaves no file
 * descriptor open and (where the allocator can tell) no memory in use.
 *
 * Descriptors are read from /proc/self/fd before and after the group; one
 * open after and not before fails the program, unless its target (as
 * readlink shows it, e.g. "anon_inode:[eventfd]") starts with a prefix
 * given to tk_fd_allow() with the reason the library keeps it.  Memory in
 * use (glibc's mallinfo2) may grow by TK_MEM_SLACK at most; under
 * AddressSanitizer that check is LeakSanitizer's at exit.
 *
 * TK_TEST_FILTER=<pattern> in the environment runs only the tests whose
 * names match (cmocka's pattern: * and ?); TK_TRANSPORTS=<name>[,<name>]
 * limits the tests that run over every transport to the ones named (a
 * ctest entry runs them over ucx alone, with UCX_TLS set).  TK_TLS=1 runs
 * the program's control connections over TLS: tk_group_begin() makes
 * certificates and sets the tls.* environment of every component
 * (tk_tls_env_begin, tk_tls.h).
 */
#ifndef MF_TK_GROUP_H
#define MF_TK_GROUP_H

#include <stdbool.h>
#include <stddef.h>

/* Growth of the heap in use allowed over a group: stdio's buffers and
 * the first-use tables of libc (locale, resolver) and of OpenSSL (the
 * algorithms the tcp handshake fetches) stay allocated; exact leaks are
 * LeakSanitizer's, in the ASan build. */
/* Descriptors above this one are not checked. */
#define TK_FD_MAX 1024

#define TK_MEM_SLACK (512u << 10)
/* The same under TK_TLS: OpenSSL keeps its first-use tables (error
 * strings, algorithm caches) too. */
#define TK_MEM_SLACK_TLS (2u << 20)

/* Allows descriptors whose target starts with prefix to stay open after
 * the group; reason says why the library keeps them (printed). */
void tk_fd_allow(const char *prefix, const char *reason);

/* Open descriptors of this process (below TK_FD_MAX), for a check around
 * one test. */
int tk_fd_count(void);

/* Records the descriptors and the heap in use. */
void tk_group_begin(void);
/* Compares with tk_group_begin(); failed (cmocka's count of failed
 * tests), plus one if anything leaked. */
int tk_group_end(int failed);

/* Whether a test that runs over every transport runs over name
 * (TK_TRANSPORTS, above). */
bool tk_transport_wanted(const char *name);

#define tk_group_run(_tests, _setup, _teardown)                                \
    (tk_group_begin(),                                                         \
     tk_group_end(cmocka_run_group_tests(_tests, _setup, _teardown)))

#endif /* MF_TK_GROUP_H */
