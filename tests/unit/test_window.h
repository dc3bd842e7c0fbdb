/*
 * The address windows unit tests reserve for themselves: the n-th (n >= 1)
 * lies 16 GiB apart from the build's default base, which moves under
 * ThreadSanitizer (see src/mem/mem.h), so every build finds them free.
 */
#ifndef MF_TEST_WINDOW_H
#define MF_TEST_WINDOW_H

#include "mem/mem.h"

#include <stdint.h>

#define TEST_WINDOW(_n) (MF_MEM_DEFAULT_BASE + (uint64_t)(_n) * (16ull << 30))

#endif
