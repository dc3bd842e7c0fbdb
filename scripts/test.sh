#!/usr/bin/env bash
# Builds and runs every test: once in a normal build, once under
# AddressSanitizer + UndefinedBehaviorSanitizer, once under ThreadSanitizer;
# then fuzzes every decoder for a few seconds with libFuzzer.  Installs
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh fuzz
jobs=$(nproc)
# The Python tests use the distribution's interpreter, for which deps.sh
# installed the headers and pytest (another python3 may come first in PATH).
py=()
if [[ -x /usr/bin/python3 ]]; then
    py=(-DPython3_EXECUTABLE=/usr/bin/python3)
fi

# ctest_args: more arguments of ctest for the next suite.
ctest_args=()
run_suite() {
    local dir=$1; shift
    cmake -S . -B "$dir" -G Ninja "${py[@]}" "$@" >/dev/null
    cmake --build "$dir"
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 300 \
          "${ctest_args[@]}"
}

echo "== build: Release, as the main job builds it (-O3 warns differently) =="
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DMF_BUILD_TESTS=OFF >/dev/null
cmake --build build-release

echo "== build and test: normal =="
run_suite build
echo "== install, then build and run the examples against the install =="
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix" >/dev/null
# From scratch: the install keeps its sources' times, so a build left from
# an earlier run would not see a changed header and keep stale objects.
rm -rf build-examples
cmake -S examples -B build-examples -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build-examples
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/$(gcc -print-multiarch)" ./build-examples/bm_copy
cc -Wall -Wextra -Werror examples/bm_copy.c -o build-examples/bm_copy_pc \
   $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch)/pkgconfig" \
     pkg-config --cflags --libs memfabric)
cc -Wall -Wextra -Werror examples/mmc_put_get.c -o build-examples/mmc_put_get_pc \
   $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch)/pkgconfig" \
     pkg-config --cflags --libs memcache)
# The MemCache example needs a meta service: the installed daemon, on free
# loopback ports, stopped whatever happens.
coproc META { exec "$prefix/bin/mmc-meta" --set addr=127.0.0.1 --set port=0 \
    --set store_port=0 --set http_port=0; }
meta_pid=$META_PID
trap 'kill "$meta_pid" 2>/dev/null || true; rm -rf "$prefix"' EXIT
read -r -t 30 ready <&"${META[0]}"
rpc=${ready#*rpc=}; rpc=${rpc%% *}
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/$(gcc -print-multiarch)" \
    ./build-examples/mmc_put_get "tcp://$rpc"
kill "$meta_pid"; wait "$meta_pid" || true
echo "install: CMake package and pkg-config both work"

# The [tls] variants (label tls: the multi-host suite again with every
# control connection over TLS) run once, in the normal build above; the
# TLS code itself is tested under the sanitizers by its unit tests.
ctest_args=(-LE '^tls$')

echo "== build and test: ASan + UBSan =="
# UCX_MEM_EVENTS=no: UCX's memory hooks (mmap, munmap... patched when the
# ucx transport opens) crash LeakSanitizer's stop-the-world tracer at
# exit; the ThreadSanitizer run below keeps them off too.
export UCX_MEM_EVENTS=no
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DMF_SANITIZE=ON

echo "== build and test: ThreadSanitizer =="
# tests/tsan.supp says why each option and suppression is there.
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 intercept_send=0 suppressions=$PWD/tests/tsan.supp" \
    run_suite build-tsan -DMF_TSAN=ON

echo "== libFuzzer: every fuzz target for ${MF_FUZZ_SECONDS:=10} s =="
# A short run on each change: it keeps the MF_FUZZ build working and finds
# what is shallow; longer runs are by hand (README).  New inputs go to a
# scratch folder, the seed corpus is only read.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DMF_FUZZ=ON \
      -DMF_PYTHON=OFF >/dev/null
fuzz_targets=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    [[ $name == fuzz_driver ]] || fuzz_targets+=("$name")
done
cmake --build build-fuzz --target "${fuzz_targets[@]/%/-libfuzzer}"
fuzz_scratch=$(mktemp -d)
trap 'rm -rf "$prefix" "$fuzz_scratch"' EXIT
for name in "${fuzz_targets[@]}"; do
    mkdir "$fuzz_scratch/$name"
    if ! ./build-fuzz/tests/fuzz/"$name"-libfuzzer \
            -max_total_time="$MF_FUZZ_SECONDS" \
            -artifact_prefix="build-fuzz/$name-" "$fuzz_scratch/$name" \
            "tests/fuzz/corpus/$name" >"$fuzz_scratch/$name.log" 2>&1; then
        tail -n 80 "$fuzz_scratch/$name.log"
        echo "libFuzzer: $name failed; the input is in build-fuzz/$name-*"
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$fuzz_scratch/$name.log" | sed "s/^/$name: /" || true
done
