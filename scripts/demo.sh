#!/usr/bin/env bash
# The demo: snug writes a small model with random weights, plans it and a real 3B architecture on
# this machine, answers a "will it fit?" question for the seed scenario, and runs a short prompt.
set -uo pipefail
build="${1:-build}"
snug="$build/snug"
work="${SNUG_DEMO_DIR:-$build/demo}"
mkdir -p "$work"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "version" "$snug" --version
step "this machine" "$snug" hw
step "a synthetic model (random weights, real tokenizer)" \
  "$snug" mkmodel qwen2.5-0.5b-q8_0 "$work/qwen2.5-0.5b-q8_0.gguf" --weights random --seed 7
step "plan it here" "$snug" plan "$work/qwen2.5-0.5b-q8_0.gguf"
step "plan Llama 3.2 3B (Q4_K_M) here, without any file" "$snug" plan preset:llama-3.2-3b-q4_k_m
step "the seed scenario: the same model in a 6 GiB container at its full 131072 context" \
  "$snug" plan preset:llama-3.2-3b-q4_k_m --hw container-6gb --ctx 131072
echo "(exit code $? — 3 means 'does not fit', with the numbers above)"
step "run it (random weights: the words are noise, the mechanics are real)" \
  "$snug" run "$work/qwen2.5-0.5b-q8_0.gguf" "Why is the sky blue?" -n 24 --seed 1
echo
