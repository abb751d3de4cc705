#!/bin/bash
# Builds the virtqueue libFuzzer target with clang 14 (ASan + UBSan) in
# build-fuzz/ and runs it for SECONDS seconds over the committed seed corpus
# (tests/fuzz/corpus, read-only) plus a working corpus in the build dir.
# Exits non-zero when the build fails or the fuzzer finds a crash, a
# sanitizer report, a timeout (hang) or an out-of-memory; the reproducer is
# left in build-fuzz/artifacts/.
#
# usage: tests/fuzz/run_fuzz.sh SECONDS
# env:   GODWIT_FUZZ_BUILD_DIR (default <repo>/build-fuzz), GODWIT_FUZZ_JOBS
#        (ninja -j, default 2), CXX (default clang++-14)
set -euo pipefail

if [[ $# -ne 1 || ! $1 =~ ^[0-9]+$ || $1 -eq 0 ]]; then
  echo "usage: $0 SECONDS (a positive number of seconds to fuzz)" >&2
  exit 2
fi
seconds=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${GODWIT_FUZZ_BUILD_DIR:-$root/build-fuzz}
cxx=${CXX:-clang++-14}

if ! command -v "$cxx" >/dev/null; then
  echo "run_fuzz.sh: $cxx not found (apt-get install -y clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi

cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
ninja -C "$build" -j"${GODWIT_FUZZ_JOBS:-2}" virtqueue_fuzzer

mkdir -p "$build/corpus" "$build/artifacts"
status=0
"$build/virtqueue_fuzzer" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/" \
  "$build/corpus" "$root/tests/fuzz/corpus" || status=$?
if [[ $status -ne 0 ]]; then
  echo "run_fuzz.sh: virtqueue_fuzzer failed (exit $status); reproducers in $build/artifacts/" >&2
  echo "  replay: $build/virtqueue_fuzzer $build/artifacts/<file>" >&2
  exit 1
fi
echo "run_fuzz.sh: virtqueue_fuzzer ran ${seconds}s without a crash"
