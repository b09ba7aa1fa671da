// Reading kernel interface files (/proc, /sys) under a root that tests point at fixture trees.
// Internal to src/hw: these helpers never throw and never guess; a value that does not parse is
// reported as such so the caller can say which file was wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snug::hw::sysfs {

// "" and "/" both mean the real machine; otherwise `root` is prefixed to absolute paths.
std::string Join(const std::string& root, const std::string& absolute_path);

// Whole file, or nullopt when it cannot be opened (missing, permission).
std::optional<std::string> ReadFile(const std::string& path);

bool IsDirectory(const std::string& path);
bool Exists(const std::string& path);

std::string_view Trim(std::string_view s);
std::vector<std::string_view> Split(std::string_view s, char sep);

// A whole non-negative decimal number (surrounding whitespace allowed), nullopt otherwise.
std::optional<uint64_t> ParseU64(std::string_view text);

// The outcome of reading one numeric kernel file.
struct NumberFile {
  enum class Kind { kMissing, kValue, kUnlimited, kGarbage };
  Kind kind = Kind::kMissing;
  uint64_t value = 0;
  std::string text;  // what the file held (trimmed, shortened), for error messages
};

// Reads a number file. "max" (cgroup v2) and values >= 2^60 (cgroup v1 writes
// PAGE_COUNTER_MAX * page size = 9223372036854771712 for "no limit") are kUnlimited; "-1" (cpu
// quota) too.
NumberFile ReadNumberFile(const std::string& path);

// "key value [kB]" lines (/proc/meminfo, memory.stat): value in bytes when the line has "kB".
// Returns nullopt when the key is absent or its value does not parse.
std::optional<uint64_t> KeyValue(std::string_view text, std::string_view key);

// Whether `key` appears as a key in such a file (to tell "absent" from "garbage").
bool HasKey(std::string_view text, std::string_view key);

}  // namespace snug::hw::sysfs
