# snug: the two commands a fresh Debian 12 machine needs are `make demo` and `make test`.
# Both install missing Debian packages, obtain and build llama.cpp once into $(SNUG_CACHE), then
# build snug into build/.
SHELL := /bin/bash
SNUG_CACHE ?= $(HOME)/.cache/snug
export SNUG_CACHE
BUILD ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all build deps llama demo test bench fuzz format clean

all: build

deps:
	@bash scripts/deps.sh

# scripts/llama.sh prints the cache root; CMake imports libllama/ggml from there.
# Tests compare snug's tokens with llama-completion's and its chat prompts with llama-server's,
# so those tools are built with the libraries.
llama: deps
	@bash scripts/llama.sh llama llama-completion llama-server > $(BUILD).llama-root.tmp && mkdir -p $(BUILD) && mv $(BUILD).llama-root.tmp $(BUILD)/llama-root

build: llama
	@cmake -S . -B $(BUILD) -G Ninja -DSNUG_LLAMA_ROOT="$$(cat $(BUILD)/llama-root)" >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

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
