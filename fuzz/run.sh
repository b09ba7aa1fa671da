#!/usr/bin/env bash
# Builds the GGUF header fuzzer (libFuzzer + ASan + UBSan, clang) in its own build directory and
# runs it for a bounded time on a seed corpus of small GGUF files written by ggml's own writer.
#
#   fuzz/run.sh [SECONDS]        default 30; `make test` runs a short one through ctest
#
# Environment: FUZZ_BUILD (build dir, default build-fuzz), SNUG_LLAMA_ROOT (else read from a
# build*/llama-root file or scripts/llama.sh), FUZZ_CORPUS (keep the grown corpus there; default a
# temporary directory), FUZZ_MAX_LEN (default 8192).
# Exit status: 0 no failure found, 1 the fuzzer found a crash (reproducer under $FUZZ_BUILD/artifacts),
# 77 clang or its libFuzzer runtime is missing (ctest reports the test as skipped).
set -euo pipefail
secs="${1:-30}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD:-$repo/build-fuzz}"
max_len="${FUZZ_MAX_LEN:-8192}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
  echo "fuzz: clang is not installed (apt-get install clang libclang-rt-dev); skipping"
  exit 77
fi
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  > "$work/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$work/probe.cpp" -o "$work/probe" 2>/dev/null; then
  echo "fuzz: clang has no libFuzzer/sanitizer runtime (install libclang-rt-dev); skipping"
  exit 77
fi

root="${SNUG_LLAMA_ROOT:-}"
if [ -z "$root" ]; then
  for f in "$repo"/build*/llama-root; do
    [ -f "$f" ] && root="$(cat "$f")" && break
  done
fi
[ -z "$root" ] && root="$(bash "$repo/scripts/llama.sh")"

flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
cmake -S "$repo" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSNUG_BUILD_FUZZ=ON -DSNUG_BUILD_TESTS=OFF -DSNUG_LLAMA_ROOT="$root" >/dev/null
cmake --build "$build" --target gguf_fuzz gguf_fuzz_seeds -j 2 >/dev/null

mkdir -p "$work/seeds" "$build/artifacts"
ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/gguf_fuzz_seeds" "$work/seeds"
# The start of real tokenizer files: realistic metadata (ends truncated inside the token array).
for vocab in llama-spm bert-bge; do
  f="$root/src/models/ggml-vocab-$vocab.gguf"
  [ -f "$f" ] && head -c "$max_len" "$f" > "$work/seeds/$vocab-head.gguf"
done
corpus="${FUZZ_CORPUS:-$work/corpus}"
mkdir -p "$corpus"

echo "fuzz: running gguf_fuzz for ${secs}s (corpus $corpus)"
set +e
"$build/fuzz/gguf_fuzz" "$corpus" "$work/seeds" \
  -dict="$repo/fuzz/gguf.dict" -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/" \
  2> "$work/log"
rc=$?
set -e
grep -E "^(#[0-9]+[[:space:]]+DONE|stat::|INFO: seed corpus|==[0-9]+==ERROR|SUMMARY|Done [0-9]+ runs)" "$work/log" || tail -n 20 "$work/log"
if [ $rc -ne 0 ]; then
  tail -n 40 "$work/log"
  echo "fuzz: FAILED (exit $rc); reproducer in $build/artifacts/"
  exit 1
fi
echo "fuzz: no failures in ${secs}s"
