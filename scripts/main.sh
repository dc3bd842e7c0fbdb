#!/usr/bin/env bash
# The main job: installs what is missing, builds (Release) and runs a
# 4-rank MemFabric pool on this host under mf-bench.  Extra arguments go to
# mf-bench (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DMF_BUILD_TESTS=OFF >/dev/null
cmake --build build-release
exec ./build-release/tools/mf-bench --ranks 4 "$@"
