#include "cli/model_source.h"

#include <fmt/format.h>

#include <filesystem>
#include <utility>

#include "gguf/reader.h"
#include "gguf/validate.h"
#if __has_include("gguf/remote.h")
#include "gguf/remote.h"
#define SNUG_HAVE_REMOTE 1
#endif
#if __has_include("synth/describe.h")
#include "synth/describe.h"
#define SNUG_HAVE_DESCRIBE 1
#elif __has_include("synth/writer.h")
#include "synth/writer.h"
#define SNUG_HAVE_DESCRIBE 1
#endif
#include "synth/presets.h"

namespace snug::cli {
namespace {

StoreLookup& Lookup() {
  static StoreLookup lookup;
  return lookup;
}

constexpr const char* kForms =
    "MODEL is a .gguf path, an https:// URL, preset:NAME (see 'snug mkmodel --help') or a name "
    "in the local store ('snug ls')";

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string Stem(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) {
    name.resize(name.size() - 5);
  }
  return name;
}

Result<ModelSource> FromFile(const std::string& path, std::string kind, std::string location) {
  SNUG_ASSIGN_OR_RETURN(gguf::File file, gguf::ReadFile(path));
  ModelSource src;
  src.file = std::move(file);
  src.kind = std::move(kind);
  src.location = std::move(location);
  src.name = Stem(path);
  return src;
}

Result<ModelSource> Resolve(const std::string& model) {
  if (model.empty()) return Status::InvalidArgument(std::string("no MODEL given: ") + kForms);

  if (StartsWith(model, "preset:")) {
    const std::string name = model.substr(7);
    SNUG_ASSIGN_OR_RETURN(synth::Preset preset, synth::FindPreset(name));
#ifdef SNUG_HAVE_DESCRIBE
    SNUG_ASSIGN_OR_RETURN(gguf::File file, synth::DescribePreset(preset));
    ModelSource src;
    src.file = std::move(file);
    src.kind = "preset";
    src.location = preset.name;
    src.name = preset.name;
    return src;
#else
    return Status::Unimplemented("preset descriptions are not available in this build");
#endif
  }

  if (StartsWith(model, "http://") || StartsWith(model, "https://")) {
#ifdef SNUG_HAVE_REMOTE
    SNUG_ASSIGN_OR_RETURN(gguf::File file, gguf::ReadRemote(model));
    ModelSource src;
    src.file = std::move(file);
    src.kind = "url";
    src.location = model;
    std::string path = model.substr(0, model.find_first_of("?#"));
    src.name = Stem(path);
    return src;
#else
    return Status::Unimplemented("reading remote GGUF headers is not available in this build");
#endif
  }

  std::error_code ec;
  if (std::filesystem::is_regular_file(model, ec)) return FromFile(model, "file", model);
  // --- store branch (issue 7): store names ("owner/repo:q4_k_m") contain '/', so ask the store
  // before treating a missing '/'-path as a file that does not exist.
  const bool looks_like_path =
      model.find('/') != std::string::npos ||
      (model.size() > 5 && model.compare(model.size() - 5, 5, ".gguf") == 0);
  const bool could_be_name = model.size() <= 5 || model.compare(model.size() - 5, 5, ".gguf") != 0;
  if (could_be_name && model[0] != '/' && model[0] != '.' && Lookup()) {
    auto path = Lookup()(model);
    if (path.ok()) {
      SNUG_ASSIGN_OR_RETURN(ModelSource src, FromFile(*path, "store", model));
      src.name = model;  // the blob's file name means nothing to the user
      return src;
    }
    if (path.status().code() != Code::kNotFound) return path.status();
  }
  if (looks_like_path) {
    return Status::NotFound(fmt::format("no such model file: {}", model));
  }
  // --- end store branch
  return Status::NotFound(fmt::format("no model named '{}': {}", model, kForms));
}

}  // namespace

void SetStoreLookup(StoreLookup lookup) {
  Lookup() = std::move(lookup);
}

Result<ModelSource> ResolveModel(const std::string& model) {
  SNUG_ASSIGN_OR_RETURN(ModelSource src, Resolve(model));
  SNUG_RETURN_IF_ERROR(gguf::ValidateModel(src.file));
  return src;
}

}  // namespace snug::cli
