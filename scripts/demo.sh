#!/usr/bin/env bash
# The demo: a synthetic model written by snug itself, then what snug can do with it.
set -euo pipefail
build="${1:-build}"
snug="$build/snug"
"$snug" --version
