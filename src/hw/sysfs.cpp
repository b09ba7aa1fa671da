#include "hw/sysfs.h"

#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace snug::hw::sysfs {

std::string Join(const std::string& root, const std::string& absolute_path) {
  if (root.empty() || root == "/") return absolute_path;
  std::string base = root;
  while (base.size() > 1 && base.back() == '/')
    base.pop_back();
  if (!absolute_path.empty() && absolute_path.front() != '/') return base + "/" + absolute_path;
  return base + absolute_path;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return out.str();
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::optional<uint64_t> ParseU64(std::string_view text) {
  text = Trim(text);
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

NumberFile ReadNumberFile(const std::string& path) {
  NumberFile out;
  std::optional<std::string> text = ReadFile(path);
  if (!text) return out;
  std::string_view trimmed = Trim(*text);
  out.text = std::string(trimmed.substr(0, 40));
  if (trimmed == "max" || trimmed == "-1") {
    out.kind = NumberFile::Kind::kUnlimited;
    return out;
  }
  std::optional<uint64_t> value = ParseU64(trimmed);
  if (!value) {
    out.kind = NumberFile::Kind::kGarbage;
    return out;
  }
  out.value = *value;
  out.kind =
      *value >= (uint64_t{1} << 60) ? NumberFile::Kind::kUnlimited : NumberFile::Kind::kValue;
  return out;
}

namespace {

// The value text of `key` ("MemTotal:       24684084 kB" or "inactive_file 123"), if present.
std::optional<std::string_view> FindValue(std::string_view text, std::string_view key) {
  for (std::string_view line : Split(text, '\n')) {
    if (line.size() <= key.size() || line.substr(0, key.size()) != key) continue;
    std::string_view rest = line.substr(key.size());
    if (rest.front() == ':') rest.remove_prefix(1);
    if (rest.empty() || !std::isspace(static_cast<unsigned char>(rest.front()))) continue;
    return Trim(rest);
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> KeyValue(std::string_view text, std::string_view key) {
  std::optional<std::string_view> value = FindValue(text, key);
  if (!value) return std::nullopt;
  std::string_view v = *value;
  uint64_t scale = 1;
  if (v.size() > 2 && v.substr(v.size() - 2) == "kB") {
    scale = 1024;
    v = Trim(v.substr(0, v.size() - 2));
  }
  std::optional<uint64_t> number = ParseU64(v);
  if (!number || *number > UINT64_MAX / scale) return std::nullopt;
  return *number * scale;
}

bool HasKey(std::string_view text, std::string_view key) {
  return FindValue(text, key).has_value();
}

}  // namespace snug::hw::sysfs
