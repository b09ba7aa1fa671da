#!/usr/bin/env bash
# Prepares .gpu-carry/ (ignored by git) for bench/gpu/run.sh on a GPU machine that reaches no
# package registry: everything the run needs that is not in the tree. Run it here, after `make`.
#
#   bench/gpu/prepare.sh [BUILD_DIR]
#
# .gpu-carry/ then holds (sizes measured 2026-12-06):
#   llama-src.tar.xz   llama.cpp v0.4.0 from the verified npm bundle (scripts/llama.sh), without
#                      docs/, vocab test models and the web UI: ~6 MiB (the npm tarball is 34 MiB
#                      and needs git to unpack its bundle)
#   snug-bin.tar.xz    bin/snug and bin/plan_gpu_table (stripped, built here against llama.cpp's
#                      ABI, which the CUDA build shares) and lib/, their Debian 12 runtime libraries
#                      except glibc and the compiler runtime (fmt, spdlog, curl, sqlite, ...)
#   llama-cuda.tar.xz  optional: llama.cpp already built with CUDA (`make build-cuda`'s cache), so
#                      the GPU machine skips its ~5 minute build; packed when that build exists
# The device tool carries at most 64 MiB of ignored paths per run: name .gpu-carry in `carry`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
CARRY="$ROOT/.gpu-carry"

for f in "$BUILD/snug" "$BUILD/tests/plan/plan_gpu_table" "$BUILD/llama-root"; do
  [[ -e "$f" ]] || { echo "prepare: $f is missing; run make (and build plan_gpu_table) first" >&2; exit 1; }
done
LLAMA_ROOT=$(cat "$BUILD/llama-root")
rm -rf "$CARRY" && mkdir -p "$CARRY"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. llama.cpp's source, from the tree scripts/llama.sh cloned out of the verified bundle. Only
#    what the build reads: docs, test vocabularies and the UI are a fifth of the size.
git -C "$LLAMA_ROOT/src" archive --format=tar HEAD -- . ':!docs' ':!models/*.gguf' ':!benches' \
  ':!tools/ui' ':!media' ':!gguf-py' | xz -T1 -6 >"$CARRY/llama-src.tar.xz"

# 2. snug's binaries and their runtime libraries. glibc and libstdc++/libgcc_s/libgomp stay the
#    GPU machine's own (newer ones are compatible; an older libstdc++ carried along would break the
#    llama.cpp libraries built there), as do llama.cpp's libraries (built there with CUDA).
mkdir -p "$tmp/snug/bin" "$tmp/snug/lib"
strip -o "$tmp/snug/bin/snug" "$BUILD/snug"
strip -o "$tmp/snug/bin/plan_gpu_table" "$BUILD/tests/plan/plan_gpu_table"
for bin in "$BUILD/snug" "$BUILD/tests/plan/plan_gpu_table"; do
  ldd "$bin" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s|libgomp|ld-linux[^/]*)\.so' |
  grep -v -E '/lib(llama|ggml|mtmd)[^/]*\.so' | while read -r lib; do
  cp -L "$lib" "$tmp/snug/lib/$(basename "$lib")"
done
tar -C "$tmp/snug" -cf - bin lib | xz -T1 -6 >"$CARRY/snug-bin.tar.xz"

# 3. A CUDA build made here (nvcc present, `make build-cuda`), when there is one: its bin/ only.
cuda_bin=""
for d in "${SNUG_CACHE:-$HOME/.cache/snug}"/llama.cpp/v0.4.0-*/; do
  if grep -q -- "-DGGML_CUDA=ON" "$d/build/CMakeCache.txt" 2>/dev/null &&
    [[ -f "$d/build/bin/libggml-cuda.so" && -x "$d/build/bin/llama-bench" && -x "$d/build/bin/llama-completion" ]]; then
    cuda_bin="$d/build/bin"
  fi
done
if [[ -n "$cuda_bin" ]]; then
  tar -C "$cuda_bin/.." -cf - bin | xz -T1 -6 >"$CARRY/llama-cuda.tar.xz"
fi

{
  echo "prepared $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m), llama.cpp $(git -C "$LLAMA_ROOT/src" rev-parse --short=12 HEAD)"
  echo "cuda build: ${cuda_bin:-none (run.sh builds llama.cpp on the GPU machine)}"
  (cd "$CARRY" && ls -l --block-size=K ./*.tar.xz)
} >"$CARRY/MANIFEST"
cat "$CARRY/MANIFEST"
echo "total: $(du -sh "$CARRY" | cut -f1) (the device tool carries at most 64 MiB: name .gpu-carry in carry)"
