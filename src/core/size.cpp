#include "core/size.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace snug {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  std::string_view s = Trim(text);
  auto bad = [&](const char* why) {
    return Status::InvalidArgument(
        fmt::format("invalid size \"{}\": {} (examples: 6GiB, 512MiB, 6G, 1073741824)", text, why));
  };
  if (s.empty()) return bad("empty");
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'))
    ++i;
  if (i == 0) return bad("it must start with a number");
  std::string number(s.substr(0, i));
  if (number.find('.') != number.rfind('.')) return bad("malformed number");
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size()) return bad("malformed number");
  std::string unit = Lower(Trim(s.substr(i)));

  double scale = 0;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "k" || unit == "kib" || unit == "ki")
    scale = 1024.0;
  else if (unit == "m" || unit == "mib" || unit == "mi")
    scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib" || unit == "gi")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib" || unit == "ti")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb")
    scale = 1e3;
  else if (unit == "mb")
    scale = 1e6;
  else if (unit == "gb")
    scale = 1e9;
  else if (unit == "tb")
    scale = 1e12;
  else
    return bad("unknown unit");

  double bytes = value * scale;
  if (!std::isfinite(bytes) || bytes > 4.0e18) return bad("too large");
  if (unit.empty() || unit == "b") {
    if (number.find('.') != std::string::npos) return bad("a byte count must be whole");
  }
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string FormatSize(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= kGiB) return fmt::format("{:.1f} GiB", b / kGiB);
  if (bytes >= kMiB) return fmt::format("{:.1f} MiB", b / kMiB);
  if (bytes >= kKiB) return fmt::format("{:.1f} KiB", b / kKiB);
  return fmt::format("{} B", bytes);
}

std::string FormatSignedSize(int64_t bytes) {
  if (bytes < 0) return "-" + FormatSize(static_cast<uint64_t>(-bytes));
  return FormatSize(static_cast<uint64_t>(bytes));
}

}  // namespace snug
