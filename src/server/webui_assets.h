// The web page's files (webui/), built into the binary by cmake/embed_webui.cmake.
#pragma once

#include <cstddef>
#include <span>

namespace snug::server {

struct WebAsset {
  const char* path;          // "/index.html", "/app.js", ...
  const char* content_type;  // "text/html; charset=utf-8", ...
  const unsigned char* data;
  size_t size;
};

std::span<const WebAsset> WebAssets();

}  // namespace snug::server
