#!/bin/sh
# The upstream-named headers of include/compat compile on their own, in C
# and in C++ (upstream's callers are often C++), and beside our own
# headers in either order.  $1: the include folder.  Exit 77 (skipped)
# without a C++ compiler.
set -e
inc=$1
cc=${CC:-cc}
command -v c++ >/dev/null 2>&1 || { echo "SKIP: no c++"; exit 77; }
for h in "$inc"/compat/*.h; do
    name=$(basename "$h")
    printf '#include <compat/%s>\nint main(void) { return 0; }\n' "$name" |
        "$cc" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$inc" -x c -
    printf '#include <compat/%s>\nint main() { return 0; }\n' "$name" |
        c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$inc" -x c++ -
done
for order in "compat/mmc_client.h memcache/mmc.h" \
             "memcache/mmc.h compat/mmc_client.h"; do
    src=""
    for h in $order; do
        src="$src#include <$h>
"
    done
    printf '%sint main(void) { return MMC_OK + MMC_UNMATCHED_KEY * 0; }\n' \
        "$src" | "$cc" -std=c11 -Wall -Werror -fsyntax-only -I"$inc" -x c -
done
echo "compat headers: C, C++ and beside ours: ok"
