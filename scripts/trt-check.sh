#!/usr/bin/env bash
# The TensorRT plugin check. HEADERS_DIR is a folder holding TensorRT's public include/ (NvInfer*.h,
# e.g. from NVIDIA's public TensorRT repository; fetched for the check, never committed).
#   bash scripts/trt-check.sh HEADERS_DIR [CASES_DIR]
# Everywhere: builds the plugin library (libretinanet_kernel_trt.so) and the host harness against
# those headers with warnings as errors, and checks that the library exports only getCreators and
# setLoggerFinder and needs no libnvinfer.
# With a GPU: runs the harness (test/trt/harness.cpp) on every golden case, then again under
# compute-sanitizer memcheck, racecheck and synccheck. Cases come from CASES_DIR, or are written by
# `node dist/test/trt/cases.js` from the golden data when Node is here.
# Env: RK_CUDA_ARCHS (default 80-real;90-real;90-virtual), OUT (logs; default ./trt-check-out).
set -uo pipefail
cd "$(dirname "$0")/.."
HEADERS=${1:?usage: bash scripts/trt-check.sh HEADERS_DIR [CASES_DIR]}
HEADERS=$(cd "$HEADERS" && pwd)
CASES=${2:-}
OUT=${OUT:-$PWD/trt-check-out}
BUILD=${RK_TRT_BUILD:-/tmp/rk-trt-build}
mkdir -p "$OUT"
passed=0
failed=0
result() { if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "ok   $2"; else failed=$((failed + 1)); echo "FAIL $2"; fi; }
say() { echo "== trt-check: $*"; }

[ -f "$HEADERS/include/NvInferRuntime.h" ] || { echo "no include/NvInferRuntime.h under $HEADERS"; exit 2; }
version=$(grep -E "#define TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE" "$HEADERS/include/NvInferVersion.h" | awk '{print $3}' | paste -sd.)
say "compile against the TensorRT $version headers in $HEADERS ($(nvcc --version | tail -2 | head -1))"
cmake -S native -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRK_WITH_CUDA=ON -DTENSORRT_ROOT="$HEADERS" \
  "-DCMAKE_CUDA_ARCHITECTURES=${RK_CUDA_ARCHS:-80-real;90-real;90-virtual}" > "$OUT/build.log" 2>&1 &&
  cmake --build "$BUILD" -j "$(nproc)" --target retinanet_kernel_trt retinanet_kernel_trt_runner rk_trt_harness >> "$OUT/build.log" 2>&1
rc=$?
[ $rc -ne 0 ] && tail -30 "$OUT/build.log"
result $rc "plugin library, engine runner and harness build (warnings are errors)"
warnings=$(grep -ciE "\bwarning\b" "$OUT/build.log")
[ "$warnings" = 0 ]; result $? "no warnings in the build log ($warnings)"
LIB="$BUILD/trt/libretinanet_kernel_trt.so"
HARNESS="$BUILD/trt/rk_trt_harness"
if [ $rc -eq 0 ]; then
  exported=$(nm -D --defined-only "$LIB" | awk '$2 == "T" {print $3}' | sort | paste -sd' ')
  [ "$exported" = "getCreators setLoggerFinder" ]; result $? "exported symbols: $exported"
  ! ldd "$LIB" | grep -q nvinfer; result $? "no libnvinfer dependency ($(ldd "$LIB" | awk '{print $1}' | paste -sd' '))"
  RUNNER="$BUILD/trt/libretinanet_kernel_trt_runner.so"
  ! ldd "$RUNNER" | grep -q nvinfer; result $? "the engine runner opens libnvinfer at run time (no link dependency)"
fi

if [ $rc -eq 0 ] && nvidia-smi -L > /dev/null 2>&1; then
  if [ -z "$CASES" ]; then
    CASES=$OUT/cases
    # The cases' plugin fields are written by the addon: the one gpu-check.sh built, when none is named.
    gpu_addon=${RK_GPU_WORK:-/tmp/rk-gpu}/build/retinanet_kernel.node
    [ -z "${RETINANET_KERNEL_ADDON:-}" ] && [ -f "$gpu_addon" ] && export RETINANET_KERNEL_ADDON=$gpu_addon
    if command -v node > /dev/null && [ -f dist/test/trt/cases.js ]; then
      node dist/test/trt/cases.js "$CASES" | tail -1
    else
      echo "no CASES_DIR and no node to write the cases (node dist/test/trt/cases.js DIR)"; exit 2
    fi
  fi
  say "harness on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1): $(ls "$CASES" | wc -l) cases"
  "$HARNESS" "$LIB" "$CASES" > "$OUT/harness.log" 2>&1
  hrc=$?
  grep -E "^(ok|FAIL)" "$OUT/harness.log" | sed 's/^/  /' | cut -c1-220
  tail -1 "$OUT/harness.log"
  result $hrc "harness: $(tail -1 "$OUT/harness.log")"
  for tool in memcheck racecheck synccheck; do
    extra=()
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 99 "$HARNESS" "$LIB" "$CASES" > "$OUT/sanitize-$tool.log" 2>&1
    src=$?
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitize-$tool.log" | tail -1)
    [ $src -eq 0 ] && grep -q ", 0 failed" "$OUT/sanitize-$tool.log"; result $? "compute-sanitizer $tool: $summary; harness $(grep -E 'passed, .* failed' "$OUT/sanitize-$tool.log" | tail -1)"
  done
else
  echo "no GPU here: the harness run is skipped (compile check only)"
fi
echo "trt-check: $passed passed, $failed failed"
[ $failed -eq 0 ]
