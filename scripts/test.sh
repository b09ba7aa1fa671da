#!/usr/bin/env bash
# Runs every test: the gtest suites through ctest (unit and integration), then the Node tests that
# drive the server with the official openai client (once they exist).
set -euo pipefail
build="${1:-build}"; shift || true
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
# The openai npm client against a real `snug serve` (tests/node); installed here on first use.
if [ -f tests/node/package.json ]; then
  snug_binary="$(cd "$build" && pwd)/snug"
  if [ ! -d tests/node/node_modules ]; then
    (cd tests/node && npm install --no-audit --no-fund)
  fi
  (cd tests/node && SNUG_BINARY="$snug_binary" node --test)
fi
