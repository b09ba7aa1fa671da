#!/usr/bin/env bash
# Runs every benchmark against llama.cpp's own tools in the same run; each writes its table under
# bench/results/. Usage: bench/run.sh [BUILD_DIR] [SUITE...] (suites: plan run serve grammar rpc).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"; shift || true
suites=("$@"); [ ${#suites[@]} -eq 0 ] && suites=(plan run serve grammar rpc)
# The llama.cpp tools the comparisons need, built once into the same cache.
bash scripts/llama.sh llama llama-completion llama-bench llama-server llama-fit-params ggml-rpc-server >/dev/null
for s in "${suites[@]}"; do
  if [ "$s" = grammar ]; then  # lives beside the serve benchmark it extends
    echo "== bench: grammar"
    bash bench/serve/grammar.sh "$build"
  elif [ -x "bench/$s/run.sh" ] || [ -f "bench/$s/run.sh" ]; then
    echo "== bench: $s"
    bash "bench/$s/run.sh" "$build"
  else
    echo "== bench: $s (not present)"
  fi
done
