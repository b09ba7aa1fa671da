#!/usr/bin/env bash
# snug on a CUDA GPU, checked in one run (issue 16): the planner's per-device figures against
# llama.cpp's own no-alloc report and the device memory a real load takes, `snug hw`, `snug run
# --ngl auto` under --vram-limit (the partial offload fits and its greedy tokens equal
# llama-completion's at the same split), and decode speed against llama-bench. Writes
# bench/results/gpu-<date>.md.
#
#   bench/gpu/prepare.sh            # here, once: fills .gpu-carry/ (~14 MiB, see that script)
#   bench/gpu/run.sh --dry-run      # here: everything but CUDA, results into a temp file
#   bench/gpu/run.sh                # on the GPU machine (root of the tree, .gpu-carry carried)
#
# The GPU machine reaches no registry: it needs nvcc, cmake, ninja, a C++ compiler, xz and
# python3 there (the 'cuda' image has them) and .gpu-carry/ from here. On the device tool:
#   run(command="bash bench/gpu/run.sh 2>&1 | tee $OUT/gpu-run.log; cp bench/results/gpu-*.md $OUT/",
#       carry=[".gpu-carry"], timeout_s=590)
#
# Device time, estimated for a 16-core H100 machine (one call; the machine's start not counted):
#   unpack + checks 0.1 min | llama.cpp CUDA build (sm_90 only, 3 targets, -j16) ~5 min, 0 when
#   .gpu-carry/llama-cuda.tar.xz was prepared | snug hw 0.1 | no-alloc table (4 presets x 2 ctx x
#   2 KV x 3 offloads (all, half, none) = 48 dry runs) ~0.5 | real loads (16: 4 presets x 2 offloads x 2 configs,
#   the 17 GiB MoE read from a sparse file) ~2 | --vram-limit partial offload + llama-completion
#   ~0.3 | speed, 8B fully offloaded, 3 interleaved reps ~0.7. Total ~8.7 min with the build,
#   ~3.7 without. Steps run in that order of value after the build, each result written as soon
#   as it exists, so a run cut short still returns what it measured.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

DRY=0
CARRY="$ROOT/.gpu-carry"
OUT_MD=""
STEPS="hw,table,real,vram,speed"
usage() {
  sed -n '2,10p' "$0" >&2
  echo "options: --dry-run | --carry DIR | --out FILE.md | --steps hw,table,real,vram,speed" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --carry) CARRY=$2; shift ;;
    --out) OUT_MD=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done
step_on() { [[ ",$STEPS," == *",$1,"* ]]; }
T0=$(date +%s)
log() { echo "[gpu-run +$(($(date +%s) - T0))s] $*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

# Presets (snug mkmodel --list) and the grid of issue 16.
PRESETS=(llama-3.2-3b-q4_k_m llama-3.1-8b-q4_k_m qwen3-30b-a3b-q4_k_m gemma-3-4b-q4_k_m)
CTXS=8192,32768
KVS=f16,q8_0
REAL=8192:f16,32768:q8_0
VRAM_PRESET=llama-3.2-1b-q4_k_m   # random weights, 770 MiB: larger than the cap below
VRAM_LIMIT=512MiB
SPEED_PRESET=llama-3.1-8b-q4_k_m
SPEED_REPS=3
THREADS=$(nproc)
CUDA_ARGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF"

# --- 0. What this machine has: fail fast, before any build. ------------------------------------
[[ -f "$CARRY/snug-bin.tar.xz" && -f "$CARRY/llama-src.tar.xz" ]] ||
  die "$CARRY is not prepared: run bench/gpu/prepare.sh on a machine with the snug build first"
for tool in python3 xz; do command -v $tool >/dev/null || die "$tool is missing on this machine"; done
if [[ $DRY -eq 0 ]]; then
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 ||
    die "no NVIDIA GPU here (nvidia-smi is missing or sees no device); use --dry-run off a GPU machine"
  if [[ ! -f "$CARRY/llama-cuda.tar.xz" ]]; then
    command -v nvcc >/dev/null || [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]] ||
      die "nvcc is missing: this machine cannot build llama.cpp with CUDA, and $CARRY has no prebuilt llama-cuda.tar.xz"
    for tool in cmake ninja c++; do command -v $tool >/dev/null || die "$tool is missing: cannot build llama.cpp here"; done
  fi
fi

WORK=$(mktemp -d /tmp/snug-gpu.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
MODELS=${SNUG_BENCH_MODELS:-$WORK/models}
mkdir -p "$MODELS" "$WORK/snug"

# --- 1. Inputs: snug's binaries, llama.cpp built with CUDA. -------------------------------------
xz -dc "$CARRY/snug-bin.tar.xz" | tar -C "$WORK/snug" -xf -
# Carried Debian libraries only where this machine has no library of that name: its own (OpenSSL,
# zlib, curl) are what llama.cpp is built against here and must win.
for lib in "$WORK/snug/lib"/*; do
  name=$(basename "$lib")
  if ldconfig -p 2>/dev/null | grep -qE "^[[:space:]]+${name//./\\.} "; then rm -f "$lib"; fi
done
log "snug binaries unpacked; carried libraries kept: $(ls "$WORK/snug/lib" | tr '\n' ' ')"

if [[ $DRY -eq 1 ]]; then
  # The CPU llama.cpp of this checkout stands in for the CUDA build (same ABI).
  LLAMA_BIN=$(cat "$ROOT/build/llama-root")/build/bin
  log "dry run: would build llama.cpp with SNUG_LLAMA_CMAKE_ARGS=\"$CUDA_ARGS\" from $CARRY/llama-src.tar.xz (targets llama llama-completion llama-bench); using $LLAMA_BIN instead"
  [[ -x "$LLAMA_BIN/llama-completion" ]] || die "dry run needs $LLAMA_BIN/llama-completion (make)"
elif [[ -f "$CARRY/llama-cuda.tar.xz" ]]; then
  xz -dc "$CARRY/llama-cuda.tar.xz" | tar -C "$WORK" -xf -
  LLAMA_BIN="$WORK/bin"
  log "llama.cpp CUDA build unpacked from $CARRY/llama-cuda.tar.xz"
else
  log "building llama.cpp with CUDA (sm_90, -j$(nproc)); log in $WORK/cache"
  llama_root=$(SNUG_CACHE="$WORK/cache" SNUG_LLAMA_SRC_ARCHIVE="$CARRY/llama-src.tar.xz" \
    SNUG_LLAMA_CMAKE_ARGS="$CUDA_ARGS" bash "$ROOT/scripts/llama.sh" llama llama-completion llama-bench) ||
    { tail -30 "$WORK"/cache/llama.cpp/*/build.log "$WORK"/cache/llama.cpp/*/configure.log 2>/dev/null; die "llama.cpp CUDA build failed"; }
  LLAMA_BIN="$llama_root/build/bin"
  log "llama.cpp built"
fi
[[ $DRY -eq 1 ]] || [[ -f "$LLAMA_BIN/libggml-cuda.so" ]] || die "$LLAMA_BIN has no libggml-cuda.so: not a CUDA build"

export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # one device: see gpu_table.cpp
# The CUDA runtime and cuBLAS of this machine's toolkit: a build carried from another machine has
# that machine's toolkit path in its RUNPATH.
CUDA_LIB="${CUDA_HOME:-/usr/local/cuda}/lib64"
SNUG_LD="$LLAMA_BIN:$CUDA_LIB:$WORK/snug/lib"
snug() { LD_LIBRARY_PATH="$SNUG_LD" "$WORK/snug/bin/snug" "$@"; }
gpu_table() { LD_LIBRARY_PATH="$SNUG_LD" "$WORK/snug/bin/plan_gpu_table" "$@"; }
llama() { local tool=$1; shift; LD_LIBRARY_PATH="$LLAMA_BIN:$CUDA_LIB" "$LLAMA_BIN/$tool" "$@"; }
snug --version >/dev/null || die "the carried snug does not start here (missing library?): $(snug --version 2>&1 | tail -2)"

# In a dry run the heavy grid shrinks to what 2 CPU cores do in a minute; the code paths are the same.
if [[ $DRY -eq 1 ]]; then
  PRESETS=(llama-3.2-1b-q4_k_m gemma-3-1b-q4_k_m)
  CTXS=8192; KVS=f16,q8_0; REAL=2048:f16
  VRAM_PRESET=qwen2.5-0.5b-q4_k_m
  SPEED_PRESET=qwen2.5-0.5b-q4_k_m; SPEED_REPS=1
  THREADS=2
fi

DATE=$(date -u +%Y-%m-%d)
if [[ -z "$OUT_MD" ]]; then
  if [[ $DRY -eq 1 ]]; then OUT_MD="$WORK/gpu-$DATE.md"; else OUT_MD="$ROOT/bench/results/gpu-$DATE.md"; fi
fi
GPU_NAME=$( (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "none (dry run)") | head -1)
{
  echo "# snug on a CUDA GPU: per-device plan vs llama.cpp, partial offload, speed"
  echo
  echo "Generated by \`bench/gpu/run.sh\`$([[ $DRY -eq 1 ]] && echo " --dry-run (no GPU: CPU fallbacks, small presets)") on $DATE."
  echo "GPU: $GPU_NAME. CPU: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))."
  echo "nvcc: $( (nvcc --version 2>/dev/null || "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>/dev/null) | tail -1 || echo none)."
  echo "llama.cpp v0.4.0 built with \`$CUDA_ARGS\`; synthetic preset files (\`snug mkmodel\`, zero weights"
  echo "unless said), flash attention on, n_batch 2048, n_ubatch 512, one sequence."
  echo "Targets (issue 16): each device component within ±3%, never under by more than 2%; decode >= 0.97x."
  echo
} >"$OUT_MD"
section() { { echo; echo "## $1"; echo; } >>"$OUT_MD"; }

# --- 2a. snug hw -------------------------------------------------------------------------------
if step_on hw; then
  log "snug hw"
  section "snug hw"
  { echo '```'; snug hw 2>&1 || true; echo '```'; } >>"$OUT_MD"
fi

# --- 2b. Per-device prediction vs llama.cpp's no-alloc report (and real loads) ------------------
if step_on table || step_on real; then
  real_args=()
  step_on real && real_args=(--real "$REAL")
  log "plan_gpu_table ${PRESETS[*]} (ctx $CTXS, KV $KVS${real_args[*]:+, real $REAL})"
  section "Planner vs llama.cpp, per device"
  { echo "Dry rows: snug's \`plan::Estimate\` / llama.cpp's \`llama_get_memory_breakdown\` after a"
    echo "\`no_alloc\` load (common/fit.cpp's method). Offload *all* = every layer and the output layer"
    echo "(ngl = n_layer + 1), *partial* = half the layers, *none* = ngl 0 (what llama.cpp still puts on"
    echo "the device: op_offload's compute buffer; left out of the worst-case line). Real rows: the same settings loaded for real,"
    echo "a 600-token prompt decoded and 16 tokens generated; *taken* = the drop in the device's free memory"
    echo "(cudaMemGetInfo) from after CUDA's initialisation to after the generation, which also holds the"
    echo "CUDA pool, cuBLAS workspace and loaded kernels; *allocated* = llama.cpp's buffers."
    echo; } >>"$OUT_MD"
  gpu_table "$MODELS" --ctx "$CTXS" --kv "$KVS" "${real_args[@]}" "${PRESETS[@]}" >>"$OUT_MD" 2>"$WORK/table.err" ||
    { cat "$WORK/table.err" >&2; echo "(plan_gpu_table failed: $(tail -1 "$WORK/table.err"))" >>"$OUT_MD"; }
fi

# --- 2c. --ngl auto under --vram-limit: fits, and the same greedy tokens as llama-completion ----
if step_on vram; then
  log "--vram-limit $VRAM_LIMIT partial offload on $VRAM_PRESET (random weights)"
  section "Partial offload under --vram-limit"
  model="$MODELS/$VRAM_PRESET-random.gguf"
  snug mkmodel "$VRAM_PRESET" "$model" --weights random >/dev/null
  prompt="The history of the city begins with a small settlement on the river"
  n=32
  fit=(--ctx 512 --vram-limit "$VRAM_LIMIT" --ngl auto)
  snug plan "$model" "${fit[@]}" --json >"$WORK/plan.json"
  read -r ngl n_layer dev_total dev_budget fits < <(python3 -c "
import json; j=json.load(open('$WORK/plan.json'))
d=j['memory']['per_device']; b=j['budget']['devices']
print(j['fit']['n_gpu_layers'], j['model']['n_layer'], d[0]['total_bytes'] if d else 0,
      b[0]['budget_bytes'] if b else 0, j['fit']['ok'])")
  used_before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 || echo 0)
  snug run "$model" "$prompt" --raw --temp 0 -n $n --ignore-eos --threads "$THREADS" "${fit[@]}" \
    >"$WORK/snug.txt" 2>"$WORK/snug.err" & pid=$!
  peak=0
  while kill -0 $pid 2>/dev/null; do
    used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 || echo 0)
    ((used > peak)) && peak=$used
    sleep 0.2
  done
  wait $pid || { cat "$WORK/snug.err" >&2; echo "snug run failed: $(tail -1 "$WORK/snug.err")" >>"$OUT_MD"; }
  llama llama-completion -m "$model" -p "$prompt" -n $n --temp 0 -no-cnv -c 512 -ngl "$ngl" -fa on \
    -fit off -t "$THREADS" --no-display-prompt --ignore-eos --no-warmup >"$WORK/ref.txt" 2>"$WORK/ref.err" ||
    { tail -3 "$WORK/ref.err" >&2; echo "llama-completion failed: $(tail -1 "$WORK/ref.err")" >>"$OUT_MD"; }
  same=$(python3 -c "
a=open('$WORK/snug.txt').read().rstrip(); b=open('$WORK/ref.txt').read().rstrip()
print('yes' if a == b and a else 'NO')")
  {
    echo "\`snug run $VRAM_PRESET (random weights) --ctx 512 --vram-limit $VRAM_LIMIT --ngl auto\`, greedy, $n tokens;"
    echo "llama-completion with the same -ngl, -fa on, -fit off, same prompt and threads."
    echo
    echo "| planned ngl | layers | device budget | predicted device | fits | nvidia-smi used before / peak MiB | same tokens as llama-completion |"
    echo "|---|---|---|---|---|---|---|"
    echo "| $ngl | $n_layer | $(numfmt --to=iec-i --suffix=B "$dev_budget") | $(numfmt --to=iec-i --suffix=B "$dev_total") | $fits | $used_before / $peak | $same |"
    echo
    echo "snug: \`$(head -c 160 "$WORK/snug.txt" | tr '\n' ' ')\`"
    echo
    echo "llama-completion: \`$(head -c 160 "$WORK/ref.txt" | tr '\n' ' ')\`"
  } >>"$OUT_MD"
fi

# --- 2d. Decode speed, fully offloaded: snug run vs llama-bench, interleaved --------------------
if step_on speed; then
  log "speed: $SPEED_PRESET fully offloaded, $SPEED_REPS reps"
  section "Decode speed, fully offloaded"
  model="$MODELS/$SPEED_PRESET.gguf"
  [[ -f "$model" ]] || snug mkmodel "$SPEED_PRESET" "$model" >/dev/null
  ngl_flag=(-ngl 99)
  [[ $DRY -eq 1 ]] && ngl_flag=(-ngl 0)
  prompt=$(python3 -c "print(' '.join(['the quick brown fox jumps over the lazy dog'] * 14))")
  ref=(); ours=()
  [[ -x "$LLAMA_BIN/llama-bench" ]] || log "no llama-bench in $LLAMA_BIN (the CPU build has none): its column reads 0"
  for _ in $(seq "$SPEED_REPS"); do
    [[ -x "$LLAMA_BIN/llama-bench" ]] && llama llama-bench -m "$model" -p 128 -n 64 -r 1 -fa 1 "${ngl_flag[@]}" -t "$THREADS" -o json \
      >"$WORK/bench.json" 2>/dev/null || true
    ref+=("$(python3 -c "
import json
try: print([r['avg_ts'] for r in json.load(open('$WORK/bench.json')) if r['n_gen'] > 0][0])
except Exception: print(0)")")
    snug run "$model" "$prompt" --raw --temp 0 -n 64 --ignore-eos --ctx 512 --threads "$THREADS" \
      --json >"$WORK/speed.json" 2>/dev/null || true
    ours+=("$(python3 -c "
import json
try: print(json.load(open('$WORK/speed.json'))['timings']['decode_tokens_per_s'])
except Exception: print(0)")")
  done
  python3 - "$SPEED_PRESET" "${ref[*]}" "${ours[*]}" >>"$OUT_MD" <<'EOF'
import statistics, sys
name, ref, ours = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
r, o = statistics.median(ref), statistics.median(ours)
print("Zero weights (decode speed does not depend on the values); llama-bench -p 128 -n 64 -fa 1")
print("-ngl 99 vs `snug run --ctx 512 -n 64` (--ngl auto), median of the interleaved runs.")
print()
print("| model | llama-bench tg t/s | snug tg t/s | ratio |")
print("|---|---|---|---|")
print(f"| {name} | {r:.2f} | {o:.2f} | {o / r if r else 0:.3f}x |")
EOF
fi

log "done: $OUT_MD"
if [[ $DRY -eq 1 ]]; then
  echo "---- dry run: $OUT_MD ----"
  cat "$OUT_MD"
  echo "---- on the GPU machine this runs: presets ${PRESETS[*]:-} -> $(printf '%s ' llama-3.2-3b-q4_k_m llama-3.1-8b-q4_k_m qwen3-30b-a3b-q4_k_m gemma-3-4b-q4_k_m), ctx 8192,32768, KV f16,q8_0, real 8192:f16,32768:q8_0, --vram-limit on llama-3.2-1b (random), speed on llama-3.1-8b"
fi
