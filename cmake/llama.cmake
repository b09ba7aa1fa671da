# Imports libllama and ggml from the build tree in SNUG_LLAMA_ROOT (see scripts/llama.sh).
# Shared libraries are used so that GPU backends (CUDA/Vulkan/Metal) carry their own link
# dependencies; the snug binary finds them through its RPATH.
set(SNUG_LLAMA_SRC ${SNUG_LLAMA_ROOT}/src)
# Found afresh on every configure (no cache entries): a new cache root (other llama.cpp build
# options) must not keep linking the libraries found under the old one.
foreach(var SNUG_LIBLLAMA SNUG_LIBGGML SNUG_LIBGGML_BASE SNUG_LIBGGML_RPC SNUG_LIBLLAMA_COMMON)
  unset(${var} CACHE)
  unset(${var})
endforeach()
set(SNUG_LLAMA_BUILD ${SNUG_LLAMA_ROOT}/build)
find_library(SNUG_LIBLLAMA NAMES llama PATHS ${SNUG_LLAMA_BUILD}/bin ${SNUG_LLAMA_BUILD}/src NO_DEFAULT_PATH NO_CACHE REQUIRED)
find_library(SNUG_LIBGGML NAMES ggml PATHS ${SNUG_LLAMA_BUILD}/bin ${SNUG_LLAMA_BUILD}/ggml/src NO_DEFAULT_PATH NO_CACHE REQUIRED)
find_library(SNUG_LIBGGML_BASE NAMES ggml-base PATHS ${SNUG_LLAMA_BUILD}/bin ${SNUG_LLAMA_BUILD}/ggml/src NO_DEFAULT_PATH NO_CACHE REQUIRED)
# ggml's RPC backend (scripts/llama.sh always builds it): `snug worker` and --worker placement.
find_library(SNUG_LIBGGML_RPC NAMES ggml-rpc PATHS ${SNUG_LLAMA_BUILD}/bin ${SNUG_LLAMA_BUILD}/ggml/src/ggml-rpc NO_DEFAULT_PATH NO_CACHE REQUIRED)
get_filename_component(SNUG_LLAMA_LIBDIR ${SNUG_LIBLLAMA} DIRECTORY)

# ggml alone (gguf writer, type traits, backend registry): allowed outside engine/.
add_library(snug_ggml INTERFACE)
target_include_directories(snug_ggml SYSTEM INTERFACE ${SNUG_LLAMA_SRC}/ggml/include)
target_link_libraries(snug_ggml INTERFACE ${SNUG_LIBGGML} ${SNUG_LIBGGML_BASE} ${SNUG_LIBGGML_RPC})

# libllama: only engine/ (and the planner's calibration code) may link this.
add_library(snug_llama INTERFACE)
target_include_directories(snug_llama SYSTEM INTERFACE ${SNUG_LLAMA_SRC}/include ${SNUG_LLAMA_SRC}/src)
target_link_libraries(snug_llama INTERFACE ${SNUG_LIBLLAMA} snug_ggml)

set(CMAKE_BUILD_RPATH ${SNUG_LLAMA_LIBDIR})
set(CMAKE_INSTALL_RPATH ${SNUG_LLAMA_LIBDIR})

# Version facts for `snug --version`.
execute_process(COMMAND git -C ${SNUG_LLAMA_SRC} rev-parse --short=12 HEAD
  OUTPUT_VARIABLE SNUG_LLAMA_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set(SNUG_LLAMA_VERSION "v0.4.0")

# llama.cpp's `common` library (Jinja chat templates, tool-call grammars and output parsers,
# json-schema-to-grammar): engine/ only, like libllama.
find_library(SNUG_LIBLLAMA_COMMON NAMES llama-common PATHS ${SNUG_LLAMA_BUILD}/bin ${SNUG_LLAMA_BUILD}/common NO_DEFAULT_PATH NO_CACHE REQUIRED)
add_library(snug_llama_common INTERFACE)
target_include_directories(snug_llama_common SYSTEM INTERFACE ${SNUG_LLAMA_SRC}/common ${SNUG_LLAMA_SRC}/vendor)
target_link_libraries(snug_llama_common INTERFACE ${SNUG_LIBLLAMA_COMMON} snug_llama)
