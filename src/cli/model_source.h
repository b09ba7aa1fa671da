// Turning a MODEL argument into a GGUF header: a local .gguf path (split parts included), an
// http(s):// URL (header read with HTTP Range), `preset:NAME` (a built-in architecture, no file),
// or a name in the local store (resolved through the hook below).
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "gguf/gguf.h"

namespace snug::cli {

struct ModelSource {
  gguf::File file;
  std::string kind;      // "file", "url", "preset" or "store"
  std::string location;  // the path, URL, preset name or store name as resolved
  std::string name;      // what to call the model in messages ("llama-3.2-3b-q4_k_m")
};

// The store's resolver: returns the local path of a stored model by name, NotFound when the store
// has no such model. Registered by the store module (SetStoreLookup) at startup; until then a
// bare name is NotFound with the accepted forms.
using StoreLookup = std::function<Result<std::string>(const std::string& name)>;
void SetStoreLookup(StoreLookup lookup);

// Reads the header only; never touches tensor data. A header llama.cpp could not load (or would
// abort on) is refused with gguf::ValidateModel's Corrupt status, before anything plans or loads.
Result<ModelSource> ResolveModel(const std::string& model);

}  // namespace snug::cli
