#pragma once

#include <string>

namespace snug::cli {

// "snug 0.1.0 (llama.cpp v0.4.0, commit 80fb11a…)"
std::string VersionString();

}  // namespace snug::cli
