#!/usr/bin/env bash
# The main job: installs what is missing, builds (Release) and runs the
# MemCache benchmark, mmc-bench, on a cluster it starts on this host (one
# mmc-meta daemon and 4 client processes), printing its table.  Extra
# arguments go to mmc-bench (try --help).
#
#   bash scripts/main.sh --memfabric [mf-bench options]
# runs the MemFabric benchmark instead: a 4-rank pool under mf-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DMF_BUILD_TESTS=OFF >/dev/null
cmake --build build-release
if [[ "${1:-}" == "--memfabric" ]]; then
    shift
    exec ./build-release/tools/mf-bench --ranks 4 "$@"
fi
exec ./build-release/tools/mmc-bench "$@"
