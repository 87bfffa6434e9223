#!/usr/bin/env bash
# On a GPU machine (no Node, no npm): builds the addon with the CUDA backend, runs the GPU tests,
# runs them again under compute-sanitizer (memcheck, racecheck, synccheck), and runs bench/gpu.
# Inputs carried from the build machine by scripts/gpu-pack.sh: .carry/ (Node, its headers, mocha),
# dist/ (the compiled TypeScript), the golden data: .carry-golden/golden (all the cases, in a call of its own)
# or .carry/golden (the 7 that fit beside Node; see prepare), or RK_GOLDEN_DIR.
#   bash scripts/gpu-check.sh [prepare] [build] [test] [sanitize] [bench]   (default: all five)
#   also: cachebench (bench/cache on the GPU machine), export (examples/export_heads.py on the GPU: shards and a torch-written cache, checked
#         against torchvision's own postprocess_detections by the kernel's parity report)
#   also: profile (ncu time of each kernel), detail (ncu sections of the small kernels, batch 1),
#         trace (a timeline of the kernels from a diagnostic build, chained launches on and off),
#         knobs (device-time medians under each tile size of the one pass, f32 and f16),
#         floor (bench/select_floor.cu: the one pass's possible speed on this chip, without the pipeline),
#         compare (same-run medians of several carried builds of the addon, alternated: RK_COMPARE),
#         trt (scripts/trt-check.sh on this GPU, with the headers in RK_TRT_HEADERS, default .trt-headers),
#         copy (bench/upload's copy in from host arrays under several staging thread counts, with the host's CPUs and NUMA nodes),
#         overlap (bench/overlap_probe.cu: one chain of kernels per image on priority streams against the batch's one chain, modelled)
# Addons built on the development machine and packed by gpu-pack.sh (RK_PACK_ADDONS) are run by name:
#   RK_ADDON=NAME          test, sanitize and bench run .carry/addons/NAME (no build here)
#   RK_COMPARE="a=NAME b=NAME,VAR=VALUE"   (default: every packed addon, by its name)
#   RK_TRACE_ADDONS="NAME[,VAR=VALUE,...] ..." trace runs these trace builds (each under its settings) instead of building one
# RK_CALL_S=SECONDS bounds the whole run (a device call's limit): each step runs under a timeout of what
# is left, at most its own cap (RK_CAP_<STEP>, e.g. RK_CAP_SANITIZE=300), keeping 10 s for each step after
# it, so that a slow step cannot take the later ones' results with it. One call, for example:
#   RK_CALL_S=560 RK_ADDON=new RK_TRACE_ADDONS="trace-old trace-new" bash scripts/gpu-check.sh prepare compare test sanitize trace bench trt
# Results go to $OUT (or ./gpu-check-out): logs, the bench table and its JSON (a device call returns at most 8
# files: the trace step writes all its runs into one).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
WORK=${RK_GPU_WORK:-/tmp/rk-gpu}
mkdir -p "$OUT" "$WORK"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(prepare build test sanitize bench)
status=0
say() { echo "== gpu-check: $*"; }

# RK_CALL_S: each step in a child of its own, under a timeout (see the header).
if [ -n "${RK_CALL_S:-}" ] && [ -z "${RK_GPU_STEP_END:-}" ]; then
  end=$(( $(date +%s) + RK_CALL_S ))
  declare -A cap=([prepare]=60 [build]=300 [test]=150 [sanitize]=330 [compare]=240 [trace]=90 [bench]=150 [trt]=200)
  for ((i = 0; i < ${#steps[@]}; i++)); do
    step=${steps[$i]}
    after=$(( ${#steps[@]} - i - 1 ))
    limit=$(( end - $(date +%s) - 10 * after ))
    own_var=RK_CAP_${step^^}
    own=${!own_var:-${cap[$step]:-$limit}}
    [ "$own" -lt "$limit" ] && limit=$own
    if [ "$limit" -lt 5 ]; then say "$step: skipped, the call's time (RK_CALL_S=$RK_CALL_S) is spent"; status=1; continue; fi
    RK_GPU_STEP_END=$(( $(date +%s) + limit )) timeout "$limit" bash "$0" "$step"
    rc=$?
    [ $rc -eq 124 ] && say "$step: cut at its limit of $limit s"
    [ $rc -ne 0 ] && status=1
  done
  exit $status
fi
# Seconds left to this step (RK_CALL_S's share), divided among `parts` (default 1); large without it.
step_left() {
  [ -n "${RK_GPU_STEP_END:-}" ] || { echo 100000; return; }
  local l=$(( (RK_GPU_STEP_END - $(date +%s)) / ${1:-1} ))
  echo $(( l > 5 ? l : 5 ))
}

# Node's headers and mocha + node-addon-api, from whichever carried folder has them.
unpack_modules() {
  local src
  for src in .carry .carry-golden; do
    if [ ! -d "$WORK/include/node" ] && [ -f $src/node-headers.tar.xz ]; then mkdir -p "$WORK/include" && tar -C "$WORK/include" -xJf $src/node-headers.tar.xz; fi
    if [ ! -d "$WORK/node_modules/mocha" ] && [ -f $src/modules.tar.xz ]; then mkdir -p "$WORK/node_modules" && tar -C "$WORK/node_modules" -xJf $src/modules.tar.xz; fi
  done
  [ -d node_modules/mocha ] || ln -sfn "$WORK/node_modules" node_modules
}

# The addons packed by gpu-pack.sh (RK_PACK_ADDONS), unpacked to $WORK/addons/NAME.node.
unpack_addons() {
  local f name
  mkdir -p "$WORK/addons"
  for f in .carry/addons/*.node.xz; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .node.xz)
    [ "$WORK/addons/$name.node" -nt "$f" ] || xz -dc "$f" > "$WORK/addons/$name.node"
  done
}
# An addon given by the name it was packed under, or by its path.
addon_path() {
  if [ -f "$WORK/addons/$1.node" ]; then echo "$WORK/addons/$1.node"
  elif [ -f "$1" ]; then echo "$1"
  else echo "no addon '$1': neither a name packed into .carry/addons (RK_PACK_ADDONS) nor a file" >&2; return 1; fi
}

# Configures and builds the addon in tree $1 (log $2) with the CUDA backend; more CMake flags after.
build_tree() {
  local tree=$1 log=$2
  shift 2
  unpack_modules
  local addon_api=$WORK/node_modules/node-addon-api
  [ -f node_modules/node-addon-api/napi.h ] && addon_api=$ROOT/node_modules/node-addon-api
  cmake -S . -B "$tree" -DCMAKE_BUILD_TYPE=Release -DRK_WITH_CUDA=ON \
    -DCMAKE_JS_INC="$WORK/include/node" -DNODE_ADDON_API_DIR="$addon_api" "$@" > "$log" 2>&1 &&
    cmake --build "$tree" -j "$(nproc)" >> "$log" 2>&1
}

build_addon() {
  say "build (CMake $(cmake --version | head -1 | awk '{print $3}'), $(nvcc --version | tail -2 | head -1))"
  build_tree "$WORK/build-tree" "$OUT/build.log"
  local rc=$?
  grep -ciE "warning" "$OUT/build.log" | sed 's/^/build warnings: /'
  if [ $rc -ne 0 ]; then tail -40 "$OUT/build.log"; return 1; fi
  mkdir -p "$WORK/build" && cp "$WORK/build-tree/retinanet_kernel.node" "$WORK/build/"
}

need_golden() {
  [ -d "$RK_GOLDEN_DIR" ] || { echo "no golden data at $RK_GOLDEN_DIR: run the prepare step with .carry-golden (or .carry) carried (this machine may be a fresh one)"; exit 1; }
}

# The test filter: $1 (a regular expression, or empty for all), less the tests that count the golden
# cases when only .carry's part of them is here (say so).
test_grep() {
  if [ -f "$RK_GOLDEN_DIR/.part" ]; then
    echo "golden data: $(ls "$RK_GOLDEN_DIR" | grep -c '\.npz$') cases of .carry's part (carry .carry-golden for all); the tests that count them are left out" >&2
    if [ -n "$1" ]; then echo "^(?!.*finds the golden)(?=.*($1))"; else echo "^(?!.*finds the golden)"; fi
  else
    echo "$1"
  fi
}

# The device-time medians (graph replay, bench/gpu-trace, f32 and f16) of the addon under the settings
# given (VAR=VALUE ...): one line a case.
trace_medians() {
  env "$@" node dist/bench/gpu-trace.js --runs "${RK_TRACE_RUNS:-30}" --fp16 2>&1 >/dev/null | grep median
}

setup_node() {
  if ! command -v node >/dev/null; then
    if [ ! -x "$WORK/bin/node" ]; then
      [ -f .carry/node.xz ] || { echo "no node here and no .carry/node.xz (run scripts/gpu-pack.sh and carry .carry)"; exit 2; }
      mkdir -p "$WORK/bin" && xz -dc .carry/node.xz > "$WORK/bin/node" && chmod +x "$WORK/bin/node"
    fi
    export PATH="$WORK/bin:$PATH"
  fi
  unpack_modules
  unpack_addons
  export RK_GOLDEN_DIR=${RK_GOLDEN_DIR:-$WORK/golden}
  if [ -n "${RK_ADDON:-}" ]; then
    RETINANET_KERNEL_ADDON=$(addon_path "$RK_ADDON") || exit 1
    export RETINANET_KERNEL_ADDON
    echo "addon: $RK_ADDON ($RETINANET_KERNEL_ADDON)"
  fi
  export RETINANET_KERNEL_ADDON=${RETINANET_KERNEL_ADDON:-$WORK/build/retinanet_kernel.node}
  # $1 = 0: the step runs only addons it names (compare, trace of carried builds): none built here.
  [ "${1:-1}" = 0 ] || [ -f "$RETINANET_KERNEL_ADDON" ] || build_addon || exit 1
}

for step in "${steps[@]}"; do
  case $step in
    prepare)
      say "prepare (golden data to $WORK/golden; Node headers)"
      if [ -d .carry-golden/golden ]; then
        rm -rf "$WORK/golden" && cp -r .carry-golden/golden "$WORK/golden"
      elif [ -d .carry/golden ] && [ ! -f "$WORK/golden/.all" ]; then  # the part that fits in one call with Node
        rm -rf "$WORK/golden" && cp -r .carry/golden "$WORK/golden" && touch "$WORK/golden/.part"
      fi
      [ -d "$WORK/golden" ] && [ ! -f "$WORK/golden/.part" ] && touch "$WORK/golden/.all"
      unpack_modules
      ls "$WORK/golden" | grep -c npz | sed 's/^/golden cases: /'
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
      ;;
    build)
      build_addon || exit 1
      if command -v node >/dev/null || [ -f .carry/node.xz ]; then
        setup_node
        node -e "const a=require(process.env.RETINANET_KERNEL_ADDON); console.log(JSON.stringify(a.buildInfo.cuda), JSON.stringify(a.devices()))"
      fi
      ;;
    test)
      setup_node
      need_golden
      say "GPU tests"
      RK_TEST_GREP=$(test_grep "${RK_TEST_GREP:-}") node scripts/test.js cuda presets-handmade candidate-cache per-class-thresholds resident 2>&1 | tee "$OUT/test.log" | tail -60
      tail -1 "$OUT/test.log" | grep -q ", 0 failed" || status=1
      ;;
    sanitize)
      setup_node
      need_golden
      tools=(memcheck racecheck synccheck)
      for ((t = 0; t < ${#tools[@]}; t++)); do
        tool=${tools[$t]}
        say "compute-sanitizer --tool $tool"
        extra=()
        [ "$tool" = memcheck ] && extra=(--leak-check full)
        # The sanitizers slow kernels 10-100x: the golden parity and the exact-path tests, not the big shapes.
        # (and the candidate cache's device path: its lists in ranking order, and out of it, left to the host)
        RK_TEST_GREP=$(test_grep "${RK_SANITIZE_GREP:-golden parity|exact selection|graph|NaN|device-resident|ranks by counting|lists in any order|every half bit pattern}") \
          timeout "$(step_left $(( ${#tools[@]} - t )))" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 99 --target-processes all \
          node scripts/test.js cuda candidate-cache > "$OUT/sanitize-$tool.log" 2>&1
        rc=$?
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed, .* failed|LEAK SUMMARY" "$OUT/sanitize-$tool.log" | tail -3
        # Clean: the tests passed and the tool's summary reports no error (or hazard).
        if ! grep -q ", 0 failed" "$OUT/sanitize-$tool.log" ||
           ! grep -qE "ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards" "$OUT/sanitize-$tool.log"; then
          status=1
          echo "compute-sanitizer $tool: exit $rc"
          grep -m20 -E "=========" "$OUT/sanitize-$tool.log"
        fi
      done
      ;;
    export)
      # examples/export_heads.py on this GPU (torchvision's RetinaNet, random weights, generated
      # images), as shards and as a cache written by torch; the kernel's detections from each equal
      # torchvision's own postprocess_detections of the same head outputs (the det{i}_* it wrote).
      setup_node
      say "export_heads.py (torch $(python3 -c 'import torch; print(torch.__version__)'), torchvision $(python3 -c 'import torchvision; print(torchvision.__version__)'))"
      ex=$WORK/export && rm -rf "$ex" && mkdir -p "$ex"
      python3 examples/export_heads.py --synthetic ${RK_EXPORT_IMAGES:-24} --batch 8 --device cuda --min-size 480 --max-size 640 --out "$ex/shards" 2>&1 | tail -1 | tee "$OUT/export.log"
      python3 examples/export_heads.py --synthetic ${RK_EXPORT_IMAGES:-24} --batch 8 --device cuda --min-size 480 --max-size 640 --cache 0.05 --out "$ex/torch.cache" 2>&1 | tail -1 | tee -a "$OUT/export.log"
      for f in "$ex"/shards/*.npz; do
        for b in cpu cuda; do
          node dist/kernel/main.js run --data "$f" --out "$ex/det.npz" --backend $b 2>&1 | tail -1 | sed "s|^|$(basename "$f") ($b): |" | tee -a "$OUT/export.log"
        done
      done
      node dist/kernel/main.js cache --data "$ex/shards" --out "$ex/kernel.cache" 2>/dev/null | tee -a "$OUT/export.log"
      for c in kernel.cache torch.cache; do
        for b in cpu cuda; do
          node dist/kernel/main.js run --data "$ex/$c" --out "$ex/det-$c.npz" --backend $b 2>&1 | tail -1 | sed "s|^|$c ($b): |" | tee -a "$OUT/export.log"
        done
      done
      n_ok=$(grep -c "parity with the file's expected detections: exact" "$OUT/export.log")
      n_bad=$(grep -c "MISMATCH\|Error\|error" "$OUT/export.log")
      echo "export check: $n_ok exact, $n_bad not"
      [ "$n_bad" -eq 0 ] && [ "$n_ok" -gt 0 ] || status=1
      # The exporter's own test with this machine's torch 2 (bit for bit against torchvision on its CPU path).
      RK_PYTHON=$(command -v python3) node scripts/test.js export-heads 2>&1 | tee "$OUT/export-test.log" | tail -8
      tail -1 "$OUT/export-test.log" | grep -q ", 0 failed" || status=1
      ;;
    bench)
      setup_node
      say "bench/gpu"
      node dist/bench/gpu.js --json "$OUT/bench-gpu.json" 2>&1 | tee "$OUT/bench-gpu.txt" || status=1
      ;;
    cachebench)
      # bench/cache on this machine: the sweep and %optimize on a 5,000-image cache run on the GPU ("auto").
      setup_node
      say "bench/cache (5000 images, density 0.02)"
      node dist/bench/cache.js --images ${RK_CACHE_IMAGES:-5000} --density 0.02 --shards 0 --out "$OUT/bench-cache.txt" 2>&1 | tail -40 || status=1
      ;;
    profile)
      setup_node
      say "ncu: time of each kernel of one run, batch 1 and 8 (graph off)"
      # RK_NCU_FLAGS="--cache-control none --clock-control none": times as in a real run (ncu flushes caches and locks clocks by default)
      ncu ${RK_NCU_FLAGS:-} --metrics gpu__time_duration.sum --csv node dist/bench/gpu-stages.js > "$OUT/profile.csv" 2> "$OUT/profile.err"
      python3 - "$OUT/profile.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]; rows = rows[1:]
k = head.index("Kernel Name"); v = head.index("Metric Value"); u = head.index("Metric Unit")
for r in rows:
    print(f"{r[k][:60]:60s} {r[v]:>12s} {r[u]}")
PY
      grep -v "^==PROF==" "$OUT/profile.err" | tail -5
      ;;
    detail)
      setup_node
      say "ncu: launch, occupancy and warp stalls of the small kernels, batch 1 (graph off)"
      # The first run of batch 1 only (warm-up), each kernel once: where its time goes.
      ncu ${RK_NCU_FLAGS:-} --section LaunchStats --section Occupancy --section WarpStateStats --section SpeedOfLight \
        --section SchedulerStats -k "regex:${RK_NCU_KERNELS:-Estimate|Select|Topk|Rank|Greedy}" \
        ${RK_NCU_SKIP:+--launch-skip "$RK_NCU_SKIP"} --launch-count "${RK_NCU_COUNT:-6}" node dist/bench/gpu-stages.js > "$OUT/detail.txt" 2> "$OUT/detail.err"
      grep -E "^  [a-zA-Z].*\(|Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Memory Throughput|Block Size|Grid Size|Theoretical Occ" "$OUT/detail.txt" | head -120
      ;;
    trace)
      setup_node "$([ -n "${RK_TRACE_ADDONS:-}" ] && echo 0 || echo 1)"
      traces=()  # label|addon[,VAR=VALUE,...]: the carried trace builds (RK_TRACE_ADDONS, with settings), else one built here
      for spec in ${RK_TRACE_ADDONS:-}; do
        name=${spec%%,*}
        extra=""
        [ "$spec" != "$name" ] && extra=",${spec#*,}"
        traces+=("$spec|$(addon_path "$name")$extra") || exit 1
      done
      if [ ${#traces[@]} -eq 0 ]; then
        say "timeline of the kernels (diagnostic build with -DRK_CUDA_TRACE=ON, sm_90 only), chained launches on and off"
        if [ ! -f "$WORK/build-trace/retinanet_kernel.node" ]; then
          build_tree "$WORK/build-trace" "$OUT/trace-build.log" -DRK_CUDA_TRACE=ON -DCMAKE_CUDA_ARCHITECTURES=90-real ||
            { tail -30 "$OUT/trace-build.log"; exit 1; }
        fi
        traces=("build|$WORK/build-trace/retinanet_kernel.node")
      else
        say "timeline of the kernels: the carried trace builds ${RK_TRACE_ADDONS}"
      fi
      pdls=${RK_TRACE_PDL:-1 0}
      [ -n "${RK_TRACE_ADDONS:-}" ] && pdls=${RK_TRACE_PDL:-1}
      runs_left=$(( ${#traces[@]} * $(echo $pdls | wc -w) ))  # the step's time is shared among the runs still to go
      # One file for all the runs ($OUT/trace.log, a header line before each): a device call returns at most 8 files.
      : > "$OUT/trace.log"
      for entry in "${traces[@]}"; do
        for pdl in $pdls; do
          echo "-- ${entry%%|*}, RK_CUDA_PDL=$pdl" | tee -a "$OUT/trace.log"
          log="$WORK/trace-run.log"
          limit=$(step_left $runs_left)
          runs_left=$((runs_left - 1))
          target=${entry#*|}
          settings=()  # the entry's VAR=VALUE settings (e.g. RK_CUDA_SAMPLE_RUNS=4)
          [ "$target" != "${target#*,}" ] && IFS=, read -r -a settings <<< "${target#*,}"
          env "${settings[@]}" RK_CUDA_PDL=$pdl RETINANET_KERNEL_ADDON="${target%%,*}" timeout "$limit" \
            node dist/bench/gpu-trace.js --runs "${RK_TRACE_RUNS:-20}" --fp16 > /dev/null 2> "$log"
          cat "$log" >> "$OUT/trace.log"
          # per case: its median, and the timeline of the last three runs
          awk '/^case .*median/ {print; for (i = n - 3; i < n; i++) if (i >= 0) print lines[i]; n = 0; next} /^case/ {n = 0; next} /^trace/ {lines[n++] = $0}' "$log"
        done
      done
      ;;
    trt)
      # The TensorRT harness on this GPU (scripts/trt-check.sh: build with the public headers, the
      # harness on the golden cases, then under the three sanitizers).
      setup_node
      need_golden
      headers=${RK_TRT_HEADERS:-.trt-headers}
      [ -f "$headers/include/NvInferRuntime.h" ] || { echo "no TensorRT headers at $headers (carry them, or set RK_TRT_HEADERS)"; exit 1; }
      say "trt-check ($headers)"
      OUT="$OUT/trt" RK_CUDA_ARCHS=${RK_CUDA_ARCHS:-90-real} bash scripts/trt-check.sh "$headers" > "$OUT/trt-check.log" 2>&1 || status=1
      grep -E "^(ok|FAIL)|passed, .* failed" "$OUT/trt-check.log" | grep -v "^  " | tail -12
      ;;
    knobs)
      # Same-run medians of the device time (graph replay, normal build) under each setting of the
      # select pass's tile size, f32 and f16: what the default in select.cu was chosen from.
      setup_node
      say "knobs: RK_CUDA_TILE_VECTORS (16-byte vectors per select tile; default 1024, 2048 for heads of 128 MB and more)"
      for tv in ${RK_KNOB_TILES:-1024 2048 4096}; do
        echo "-- RK_CUDA_TILE_VECTORS=$tv"
        trace_medians RK_CUDA_TILE_VECTORS="$tv"
      done
      ;;
    copy)
      # The copy in from host arrays under several staging thread counts (bench/upload, batch
      # RK_COPY_IMAGES, default 8: 540 MB of heads), with the host's CPUs, NUMA nodes and memory beside it:
      # what bench/gpu's "from host" depends on besides the link.
      setup_node
      say "copy: bench/upload under RK_CUDA_COPY_THREADS in ${RK_KNOB_COPY_THREADS:-0 2 4 8 16} (0: the default)"
      { lscpu | grep -E "^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA)"; command -v numactl > /dev/null && numactl -H | head -4
        free -g | head -2; nvidia-smi topo -m 2> /dev/null | head -3; } 2>&1 | tee "$OUT/copy.txt"
      for n in ${RK_KNOB_COPY_THREADS:-0 2 4 8 16}; do
        if [ "$n" = 0 ]; then unset RK_CUDA_COPY_THREADS; else export RK_CUDA_COPY_THREADS=$n; fi
        node dist/bench/upload.js --images "${RK_COPY_IMAGES:-8}" --rounds 3 2>&1 | grep -E "^bench/upload|round|fresh" | tee -a "$OUT/copy.txt" || status=1
      done
      unset RK_CUDA_COPY_THREADS
      ;;
    compare)
      # Same-run medians of the device time (graph replay, bench/gpu-trace, f32 and f16) of several builds
      # of the addon, alternated: RK_COMPARE="name=ADDON name=ADDON ..." (e.g. the code before a change and
      # after it, built on the development machine and carried), RK_COMPARE_ROUNDS rounds (default 2).
      # An entry name=ADDON,VAR=VALUE,... runs that build with those environment settings (a knob's values).
      setup_node 0
      if [ -z "${RK_COMPARE:-}" ]; then  # every packed addon, by its name
        RK_COMPARE=$(for f in "$WORK"/addons/*.node; do [ -f "$f" ] && n=$(basename "$f" .node) && [ "${n#trace}" = "$n" ] && echo "$n=$n"; done | xargs)
      fi
      say "compare: ${RK_COMPARE:?set RK_COMPARE=\"name=addon.node ...\" or pack addons (RK_PACK_ADDONS)}"
      for round in $(seq "${RK_COMPARE_ROUNDS:-2}"); do
        for pair in $RK_COMPARE; do
          spec=${pair#*=}
          settings=()  # name=ADDON,VAR=VALUE,...: the build run under those settings (e.g. RK_CUDA_TILE_VECTORS=2048)
          [ "$spec" != "${spec#*,}" ] && IFS=, read -r -a settings <<< "${spec#*,}"
          addon=$(addon_path "${spec%%,*}") || exit 1
          trace_medians "${settings[@]}" RETINANET_KERNEL_ADDON="$addon" | sed "s/^/${pair%%=*}: /"
        done
      done > "$OUT/compare.txt"
      # one line per case: the medians in the order run
      sed -E 's/^([^:]+): case (.*): median ([0-9.]+) ms.*/\2|\1|\3/' "$OUT/compare.txt" |
        awk -F'|' '{v[$1] = v[$1] " " $2 " " $3} END {for (k in v) print k ":" v[k]}' | sort
      ;;
    floor)
      # bench/select_floor.cu: the one pass's possible speed on this chip (plain loads in tiles or from
      # resident blocks, the bulk copy engine), f32 and f16, without the rest of the pipeline.
      say "select_floor (nvcc $(nvcc --version | tail -2 | head -1 | sed 's/.*release //'))"
      nvcc -O3 -std=c++17 -arch=sm_90 -o "$WORK/select_floor" bench/select_floor.cu > "$OUT/floor-build.log" 2>&1 || { tail -20 "$OUT/floor-build.log"; exit 1; }
      "$WORK/select_floor" "${RK_FLOOR_REPS:-30}" 2>&1 | tee "$OUT/select-floor.txt"
      ;;
    overlap)
      # bench/overlap_probe.cu: a model of one chain of kernels per image on streams of decreasing
      # priority against the batch's one chain (does the stages' latency hide behind the later passes?).
      say "overlap_probe (nvcc $(nvcc --version | tail -2 | head -1 | sed 's/.*release //'))"
      mkdir -p "$WORK" && nvcc -O3 -std=c++17 -arch=sm_90 -o "$WORK/overlap_probe" bench/overlap_probe.cu > "$WORK/overlap-build.log" 2>&1 || { tail -20 "$WORK/overlap-build.log"; exit 1; }
      "$WORK/overlap_probe" "${RK_OVERLAP_REPS:-50}" 2>&1 | tee "$OUT/overlap.txt"
      ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
exit $status
