#include "cli/version.h"

#include <fmt/format.h>

namespace snug::cli {

std::string VersionString() {
  return fmt::format("snug {} (llama.cpp {}, commit {})", SNUG_VERSION, SNUG_LLAMA_VERSION,
                     SNUG_LLAMA_COMMIT);
}

}  // namespace snug::cli
