#!/usr/bin/env bash
# Obtains llama.cpp from its npm package (node-llama-cpp), verifies it, and builds it once into a
# cache outside the repo keyed by version and build options. Prints the cache root on stdout.
#
#   scripts/llama.sh [TARGET...]    build these llama.cpp targets (default: llama, i.e. libllama+ggml)
#
# Environment: SNUG_CACHE (default ~/.cache/snug); SNUG_LLAMA_CMAKE_ARGS passes backend switches
# through, e.g. "-DGGML_CUDA=ON" or "-DGGML_VULKAN=ON" (Metal is on by default on macOS).
# SNUG_LLAMA_SRC_ARCHIVE: a .tar.xz of the llama.cpp tree made by bench/gpu/prepare.sh from the
# verified bundle, used instead of npm + git on machines that reach no registry (the GPU machine).
set -euo pipefail

NPM_PKG="node-llama-cpp"
NPM_VERSION="3.21.1"
NPM_INTEGRITY="sha512-E3N0Ev2Va0wzydvXYFwM9Hvyo07PoWjt8T/9GMc43Cvt8YkV/NU/tYUgEMC1grTPv2o9PRjQi0G3Wb5P/awiMg=="
LLAMA_TAG="v0.4.0"

cache="${SNUG_CACHE:-$HOME/.cache/snug}"
extra_args="${SNUG_LLAMA_CMAKE_ARGS:-}"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(llama)

log() { echo "snug/llama.cpp: $*" >&2; }

# The key covers everything that changes the binaries: version, options, and the CPU the native
# build was tuned for (GGML_NATIVE), so a cache copied to another machine is not reused blindly.
cpu_sig=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-8)
# ggml's AMX matmul (compiled in by -march=native on CPUs that report AMX) crashes with SIGSEGV on
# these virtual machines, in llama.cpp's own llama-completion too (--no-repack avoids it): build
# without it. Explicit -mno-* flags win over what -march=native implies.
cpu_flags=""
if grep -qm1 '^flags.*amx_int8' /proc/cpuinfo 2>/dev/null; then
  cpu_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
# libllama-common links llama.cpp's vendored cpp-httplib (0.54) statically and would export all of
# it; snug's server uses Debian's cpp-httplib (0.11, a shared library), whose calls the dynamic
# linker then bound to the other version's code (crashes on every request). Keep it private.
link_flags="-Wl,--exclude-libs,libcpp-httplib.a"
# ggml's RPC backend is always built: `snug worker` serves it and plan/run/serve place layers on
# workers through it (issue 13). It adds one small library and needs no network at build time.
rpc_args="-DGGML_RPC=ON"
opt_sig=$(printf '%s|%s|%s|%s' "$extra_args" "$cpu_flags" "$link_flags" "$rpc_args" | sha256sum | cut -c1-8)
root="$cache/llama.cpp/${LLAMA_TAG}-${opt_sig}-${cpu_sig}"

# A CUDA build without nvcc fails only after minutes of configuring and compiling the CPU parts:
# refuse it before anything starts. nvcc is looked for on PATH, in CUDACXX, then in CUDA_HOME
# (default /usr/local/cuda), where the toolkit installs without touching PATH.
if [[ " $extra_args " == *" -DGGML_CUDA=ON "* ]] && [ -z "${CUDACXX:-}" ] &&
  ! command -v nvcc >/dev/null 2>&1; then
  cuda_home="${CUDA_HOME:-/usr/local/cuda}"
  if [ ! -x "$cuda_home/bin/nvcc" ]; then
    log "-DGGML_CUDA=ON needs the CUDA toolkit's nvcc: not on PATH, not in CUDACXX, not in"
    log "$cuda_home/bin. Install the CUDA toolkit (12.x or 13.x) or build without CUDA (make build)."
    exit 1
  fi
  export CUDACXX="$cuda_home/bin/nvcc"
fi
mkdir -p "$root"

exec 9>"$root/.lock"
flock 9

pkg_dir="$cache/npm"
tarball="$pkg_dir/${NPM_PKG}-${NPM_VERSION}.tgz"
if [ ! -f "$root/src/.snug-ok" ] && [ -n "${SNUG_LLAMA_SRC_ARCHIVE:-}" ]; then
  log "unpacking $SNUG_LLAMA_SRC_ARCHIVE"
  rm -rf "$root/src" && mkdir -p "$root/src"
  tar -xJf "$SNUG_LLAMA_SRC_ARCHIVE" -C "$root/src"
  touch "$root/src/.snug-ok"
fi
if [ ! -f "$root/src/.snug-ok" ]; then
  mkdir -p "$pkg_dir"
  if [ ! -f "$tarball" ]; then
    log "fetching ${NPM_PKG}@${NPM_VERSION} with npm pack"
    (cd "$pkg_dir" && npm pack --silent "${NPM_PKG}@${NPM_VERSION}" >/dev/null 2>&1)
  fi
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$NPM_INTEGRITY" ]; then
    log "integrity mismatch for $tarball"
    log "  expected $NPM_INTEGRITY"
    log "  actual   $actual"
    rm -f "$tarball"
    exit 1
  fi
  tmp=$(mktemp -d)
  tar -xzf "$tarball" -C "$tmp" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  grep -q "\"$LLAMA_TAG\"" "$tmp/package/llama/llama.cpp.info.json" || {
    log "package does not carry llama.cpp $LLAMA_TAG"; exit 1; }
  rm -rf "$root/src"
  git clone -q "$tmp/package/llama/gitRelease.bundle" "$root/src" 2>/dev/null
  rm -rf "$tmp"
  touch "$root/src/.snug-ok"
fi

build="$root/build"
if [ ! -f "$build/CMakeCache.txt" ]; then
  log "configuring in $build"
  # Shared libraries: GPU backends bring their own link dependencies with them.
  # Tools are configured but only built when a benchmark or test asks for them by target.
  # shellcheck disable=SC2086
  cmake -S "$root/src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_COMMON=ON \
    -DLLAMA_OPENSSL=ON -DCMAKE_C_FLAGS="$cpu_flags" -DCMAKE_CXX_FLAGS="$cpu_flags" \
    -DCMAKE_SHARED_LINKER_FLAGS="$link_flags" $rpc_args \
    $extra_args >"$root/configure.log" 2>&1 || {
      log "configure failed, see $root/configure.log"; rm -f "$build/CMakeCache.txt"; exit 1; }
fi

stamp="$root/built-$(printf '%s\n' "${targets[@]}" | sort | tr '\n' '+')"
if [ ! -f "$stamp" ]; then
  log "building ${targets[*]} (once; cached in $root)"
  cmake --build "$build" --target "${targets[@]}" -j "$(nproc)" >"$root/build.log" 2>&1 || {
    log "build failed, see $root/build.log"; tail -20 "$root/build.log" >&2; exit 1; }
  touch "$stamp"
fi
echo "$root"
