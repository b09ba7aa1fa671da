#include "config/env.h"

#include <cstdlib>

#ifndef SNUG_DEFAULT_VOCAB_DIR
#define SNUG_DEFAULT_VOCAB_DIR ""
#endif

namespace snug::env {

std::optional<std::string> Get(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

static std::string Home() {
  return Get("HOME").value_or("/tmp");
}

std::string DataDir() {
  if (auto v = Get("SNUG_HOME")) return *v;
  if (auto v = Get("XDG_DATA_HOME")) return *v + "/snug";
  return Home() + "/.local/share/snug";
}

std::string CacheDir() {
  if (auto v = Get("SNUG_CACHE")) return *v;
  if (auto v = Get("XDG_CACHE_HOME")) return *v + "/snug";
  return Home() + "/.cache/snug";
}

std::optional<std::string> MemoryLimit() {
  return Get("SNUG_MEMORY_LIMIT");
}

std::string VocabDir() {
  if (auto v = Get("SNUG_VOCAB_DIR")) return *v;
  return SNUG_DEFAULT_VOCAB_DIR;
}

std::optional<std::string> Fault() {
  return Get("SNUG_FAULT");
}

std::string HfEndpoint() {
  return Get("SNUG_HF_ENDPOINT").value_or("https://huggingface.co");
}

std::optional<std::string> HfToken() {
  return Get("HF_TOKEN");
}

std::string HostRoot() {
  return Get("SNUG_HOST_ROOT").value_or("");
}

}  // namespace snug::env
