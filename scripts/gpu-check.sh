#!/usr/bin/env bash
# Checks device memory on a machine with an NVIDIA GPU and its driver:
# builds, runs the CUDA tests against the real driver (the same tests CI
# runs against the fake one of tests/fakecuda) and the device benchmarks,
# each with a cuMemcpy baseline measured in the same run.  About 10
# minutes on one GPU and 16 cores.
#
#   bash scripts/gpu-check.sh [--no-deps] [--no-bench] [build dir]
#
# The driver is MF_CUDA_LIBRARY (default libcuda.so.1), the device
# MF_CUDA_DEVICE (default 0).  Exit status: 0 when every test passed.
set -uo pipefail
cd "$(dirname "$0")/.."

deps=1
bench=1
build=build-gpu
for arg in "$@"; do
    case "$arg" in
    --no-deps) deps=0 ;;
    --no-bench) bench=0 ;;
    -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) build=$arg ;;
    esac
done

export MF_CUDA_LIBRARY=${MF_CUDA_LIBRARY:-libcuda.so.1}
step() { printf '\n== %s\n' "$*"; }

step "GPU and driver"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version \
        --format=csv,noheader || true
else
    echo "nvidia-smi not found"
fi
if ! ldconfig -p 2>/dev/null | grep -q "${MF_CUDA_LIBRARY##*/}" &&
    [[ ! -e "$MF_CUDA_LIBRARY" ]]; then
    echo "the driver library $MF_CUDA_LIBRARY is not installed" >&2
    exit 2
fi

if [[ $deps == 1 ]]; then
    step "dependencies"
    bash scripts/deps.sh || echo "deps.sh failed; trying with what is there"
fi

step "build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMF_PYTHON=OFF >/dev/null || exit 2
cmake --build "$build" -j "$(nproc)" || exit 2

step "CUDA tests against $MF_CUDA_LIBRARY"
status=0
ctest --test-dir "$build" --output-on-failure -j 4 \
    -R 'no_cuda_link|test_mem_cuda|test_mem$|test_tl$|test_tl_tcp|it_bm_device|it_mmc_device|it_mmc_hbm|it_trans|bench/.*device' ||
    status=1

if [[ $bench == 1 ]]; then
    step "mf-bench: device directions, same host, against cuMemcpy"
    timeout 300 "$build"/tools/mf-bench --ranks 3 --threads 1 --dirs device \
        --sizes 1M,64M --layouts single,kv --min-time 0.3 || status=1
    step "mmc-bench --device: KV blocks from HBM to the DRAM pool and back"
    timeout 180 "$build"/tools/mmc-bench --device --batches 1,8,32 ||
        status=1
fi

step "result"
if [[ $status == 0 ]]; then
    echo "gpu-check: all passed"
else
    echo "gpu-check: FAILED (see above)"
fi
exit $status
