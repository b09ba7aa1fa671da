#!/usr/bin/env bash
# Installs the Debian packages snug builds and tests with. Idempotent: quiet when all are present.
set -euo pipefail
pkgs=(cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
      libcurl4-openssl-dev libsqlite3-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
      libssl-dev libcpp-httplib-dev libboost1.81-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
      nodejs npm git ca-certificates clang-format
      chromium)  # the web page's browser tests (tests/node/webui.test.mjs, via playwright-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# nodejs/npm may come from outside Debian (e.g. a distro-less image with node in /usr/local): accept that.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  read -r -a missing <<<"${missing[*]}"
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "snug: installing Debian packages: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
