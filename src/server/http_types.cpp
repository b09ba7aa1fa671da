#include "server/http_types.h"

#include <strings.h>

namespace snug::server {

namespace {

const std::string* FindHeader(const std::vector<std::pair<std::string, std::string>>& headers,
                              std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return &value;
    }
  }
  return nullptr;
}

}  // namespace

std::string HttpRequest::Header(std::string_view name) const {
  const std::string* value = FindHeader(headers, name);
  return value ? *value : std::string();
}

bool HttpRequest::HasHeader(std::string_view name) const {
  return FindHeader(headers, name) != nullptr;
}

void HttpResponse::SetHeader(std::string name, std::string value) {
  for (auto& [key, old] : headers) {
    if (strcasecmp(key.c_str(), name.c_str()) == 0) {
      old = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

}  // namespace snug::server
