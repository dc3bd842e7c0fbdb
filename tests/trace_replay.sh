#!/bin/sh
# mmc-trace-replay on small traces: the numbers of a replay are exact
# (no timing), so they are checked.  $1: the mmc-trace-replay binary.
set -eu
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
hits() { awk -v p="$1" '$1 == p { print $2 }' "$2"; }

# A loop of 100 one-page objects, 10 times, over a pool of 64: lru keeps
# nothing that is asked for again, Belady's optimum hits 576 of the 1000
# gets, s3fifo keeps a share.
"$bin" --gen prefix --prefixes 100 --rounds 10 --size 4096 \
    --pool-objects 64 --write "$dir/loop.trace" > "$dir/gen.out"
cat "$dir/gen.out"
lru=$(hits lru "$dir/gen.out")
s3=$(hits s3fifo "$dir/gen.out")
opt=$(hits belady "$dir/gen.out")
[ "$lru" -eq 0 ] || fail "lru hit $lru times in a loop larger than the pool"
[ "$opt" -eq 576 ] || fail "Belady's optimum hit $opt times, not 576"
[ "$s3" -gt 300 ] && [ "$s3" -le "$opt" ] ||
    fail "s3fifo hit $s3 times (expected 300..$opt)"

# The trace written replays the same from its file.
[ "$(grep -c '^get p[0-9]*-b0 4096$' "$dir/loop.trace")" -eq 1000 ] ||
    fail "the written trace does not hold the 1000 gets"
"$bin" --trace "$dir/loop.trace" --pool-objects 64 > "$dir/file.out"
[ "$(tail -n 3 "$dir/file.out")" = "$(tail -n 3 "$dir/gen.out")" ] ||
    fail "the trace read back replays differently"

# Puts are not gets: a chat trace whose conversations fit hits every get
# under lru and Belady's optimum.
"$bin" --gen chat --active 4 --turns 4 --requests 400 --size 4096 \
    --pool-objects 64 --policies lru,belady > "$dir/chat.out"
cat "$dir/chat.out"
gets=$(awk '$1 == "lru" { print $3 }' "$dir/chat.out")
[ "$(hits lru "$dir/chat.out")" -eq "$gets" ] || fail "lru missed in chat"
[ "$(hits belady "$dir/chat.out")" -eq "$gets" ] ||
    fail "Belady's optimum missed in chat"

# Bad input: a clear error and a failing exit.
printf 'get k1 4096\nget k2\n' > "$dir/bad.trace"
if "$bin" --trace "$dir/bad.trace" 2> "$dir/bad.err"; then
    fail "a line without a size was taken"
fi
grep -q 'bad.trace:2: expected' "$dir/bad.err" || fail "no line number"
if "$bin" --policies lru,mru > /dev/null 2> "$dir/pol.err"; then
    fail "an unknown policy was taken"
fi
grep -q "unknown policy 'mru'" "$dir/pol.err" || fail "no policy named"
if "$bin" --watermarks 80,90 2> /dev/null; then
    fail "watermarks low above high were taken"
fi
echo "OK"
