#!/usr/bin/env bash
# Runs every test: the gtest suites through ctest (unit and integration), then the Node tests that
# drive the server with the official openai client (once they exist).
set -euo pipefail
build="${1:-build}"; shift || true
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
