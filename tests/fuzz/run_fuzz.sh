#!/bin/bash
# Builds one libFuzzer target with clang 14 (ASan + UBSan) in build-fuzz/ and
# runs it for SECONDS seconds over its committed seed corpus
# (tests/fuzz/corpus/TARGET, read-only) plus a working corpus in the build
# dir (build-fuzz/corpus/TARGET). Exits non-zero when the build fails or the
# fuzzer finds a crash, a sanitizer report, a timeout (hang) or an
# out-of-memory; the reproducer is left in build-fuzz/artifacts/TARGET/.
#
# usage: tests/fuzz/run_fuzz.sh SECONDS [TARGET]
#   TARGET: virtqueue (default; virtqueue_fuzzer.cpp) or migration
#           (migration_fuzzer.cpp: wire, multifd packets, RAM loaders)
# env:   GODWIT_FUZZ_BUILD_DIR (default <repo>/build-fuzz), GODWIT_FUZZ_JOBS
#        (ninja -j, default 2), CXX (default clang++-14)
set -euo pipefail

usage="usage: $0 SECONDS [virtqueue|migration] (a positive number of seconds to fuzz)"
if [[ $# -lt 1 || $# -gt 2 || ! $1 =~ ^[0-9]+$ || $1 -eq 0 ]]; then
  echo "$usage" >&2
  exit 2
fi
seconds=$1
target=${2:-virtqueue}
case $target in
  virtqueue) max_len=16384 ;;
  # Whole multifd streams: 64 KiB still fits the socketpair buffer the
  # target writes the stream into before reading it back.
  migration) max_len=65536 ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
fuzzer=${target}_fuzzer
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${GODWIT_FUZZ_BUILD_DIR:-$root/build-fuzz}
cxx=${CXX:-clang++-14}

if ! command -v "$cxx" >/dev/null; then
  echo "run_fuzz.sh: $cxx not found (apt-get install -y clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi

cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
ninja -C "$build" -j"${GODWIT_FUZZ_JOBS:-2}" "$fuzzer"

corpus=$build/corpus/$target
artifacts=$build/artifacts/$target
mkdir -p "$corpus" "$artifacts"
status=0
"$build/$fuzzer" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
  -print_final_stats=1 -artifact_prefix="$artifacts/" \
  "$corpus" "$root/tests/fuzz/corpus/$target" || status=$?
if [[ $status -ne 0 ]]; then
  echo "run_fuzz.sh: $fuzzer failed (exit $status); reproducers in $artifacts/" >&2
  echo "  replay: $build/$fuzzer $artifacts/<file>" >&2
  exit 1
fi
echo "run_fuzz.sh: $fuzzer ran ${seconds}s without a crash"
