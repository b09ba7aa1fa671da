// The single place that reads environment variables (as Ollama's envconfig/ does), so every knob
// snug honours is listed here and nowhere else.
#pragma once

#include <optional>
#include <string>

namespace snug::env {

// SNUG_HOME: data directory (store, registry). Default $XDG_DATA_HOME/snug or ~/.local/share/snug.
std::string DataDir();
// SNUG_CACHE: build/download cache. Default $XDG_CACHE_HOME/snug or ~/.cache/snug.
std::string CacheDir();
// SNUG_MEMORY_LIMIT: host memory budget override ("6GiB"), as --memory-limit.
std::optional<std::string> MemoryLimit();
// SNUG_VOCAB_DIR: directory with llama.cpp's models/ggml-vocab-*.gguf tokenizers (mkmodel).
std::string VocabDir();
// SNUG_FAULT: fault injection for the runtime guard, e.g. "decode_fail@5" or "nan_logits@3".
std::optional<std::string> Fault();
// SNUG_HF_ENDPOINT: Hugging Face mirror base URL. Default https://huggingface.co.
std::string HfEndpoint();
// HF_TOKEN: bearer token sent to the hub when set.
std::optional<std::string> HfToken();
// SNUG_HOST_ROOT: root of /proc and /sys for hardware probing (tests point it at fixtures).
std::string HostRoot();

// Raw lookup for tests and rarely used knobs; nullopt when unset or empty.
std::optional<std::string> Get(const char* name);

}  // namespace snug::env
