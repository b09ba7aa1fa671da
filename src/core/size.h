// Byte sizes as people write them: "6GiB", "512MiB", "6G", "1.5 GiB", "4096".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace snug {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// Parses a size. Binary (KiB/MiB/GiB/TiB) and bare K/M/G/T suffixes are powers of 1024, as memory
// sizes are; decimal KB/MB/GB/TB are powers of 1000. Case-insensitive, optional space and "B".
// Rejects negatives, empty strings, unknown suffixes and values above 2^62 bytes.
Result<uint64_t> ParseSize(std::string_view text);

// "6.0 GiB", "512.0 MiB", "830 B": binary units, one decimal.
std::string FormatSize(uint64_t bytes);

// Like FormatSize but for signed differences ("-1.2 GiB").
std::string FormatSignedSize(int64_t bytes);

}  // namespace snug
