# snug: the two commands a fresh Debian 12 machine needs are `make demo` and `make test`.
# Both install missing Debian packages, obtain and build llama.cpp once into $(SNUG_CACHE), then
# build snug into build/.
SHELL := /bin/bash
SNUG_CACHE ?= $(HOME)/.cache/snug
export SNUG_CACHE
export SNUG_LLAMA_CMAKE_ARGS
BUILD ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all build build-cuda deps llama demo test bench fuzz format clean

# llama.cpp tools built with the libraries: tests compare with llama-completion and llama-server;
# the CUDA variant's bench (bench/gpu/run.sh) needs llama-bench instead of the server.
LLAMA_TARGETS ?= llama llama-completion llama-server ggml-rpc-server
# The CUDA variant: Hopper (sm_90) only, as one architecture compiles in a fraction of the time;
# CUDA_ARCHS=89 (or "86;89;90") for other cards. GGML_NATIVE=OFF (AVX2 baseline) because this
# build is often made on one machine and carried to the GPU machine, whose CPU may differ.
CUDA_ARCHS ?= 90
CUDA_LLAMA_ARGS ?= -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS) -DGGML_NATIVE=OFF

all: build

deps:
	@bash scripts/deps.sh

# scripts/llama.sh prints the cache root; CMake imports libllama/ggml from there.
# Tests compare snug's tokens with llama-completion's and its chat prompts with llama-server's,
# so those tools are built with the libraries.
llama: deps
	@bash scripts/llama.sh $(LLAMA_TARGETS) > $(BUILD).llama-root.tmp && mkdir -p $(BUILD) && mv $(BUILD).llama-root.tmp $(BUILD)/llama-root

build: llama
	@cmake -S . -B $(BUILD) -G Ninja -DSNUG_LLAMA_ROOT="$$(cat $(BUILD)/llama-root)" >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# snug linked against llama.cpp built with CUDA (its own cache key), in build-cuda/. Fails at once
# when nvcc is missing (scripts/llama.sh).
build-cuda:
	@$(MAKE) --no-print-directory build BUILD=build-cuda LLAMA_TARGETS="llama llama-completion llama-bench" \
	  SNUG_LLAMA_CMAKE_ARGS="$(CUDA_LLAMA_ARGS)"

test: build
	@bash scripts/test.sh $(BUILD) $(CTEST_ARGS)

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

fuzz: build
	@bash fuzz/run.sh 600

clean:
	rm -rf $(BUILD)
