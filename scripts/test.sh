#!/usr/bin/env bash
# Runs every test: the gtest suites through ctest (unit and integration), then the Node tests that
# drive the server with the official openai client (once they exist).
set -euo pipefail
build="${1:-build}"; shift || true
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
# The openai npm client against a real `snug serve` (tests/node); installed here on first use.
if [ -f tests/node/package.json ]; then
  snug_binary="$(cd "$build" && pwd)/snug"
  # Real chat templates for the tool and reasoning tests come from llama.cpp's source tree.
  llama_src="$(cat "$build/llama-root")/src"
  # Reinstall when the lockfile changed since the last install (a checkout that moved on).
  stamp=tests/node/node_modules/.snug-lock
  if [ ! -f "$stamp" ] || ! cmp -s tests/node/package-lock.json "$stamp"; then
    (cd tests/node && npm ci --no-audit --no-fund)
    cp tests/node/package-lock.json "$stamp"
  fi
  (cd tests/node && SNUG_BINARY="$snug_binary" SNUG_LLAMA_SRC="$llama_src" node --test)
fi
