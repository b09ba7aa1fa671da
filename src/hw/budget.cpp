#include "hw/budget.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/size.h"

namespace snug::hw {

uint64_t DefaultHeadroom(uint64_t raw_bytes) {
  uint64_t headroom = std::clamp<uint64_t>(raw_bytes / 10, 256 * kMiB, 1 * kGiB);
  return std::min(headroom, raw_bytes);
}

uint64_t DeviceHeadroom(uint64_t total_bytes) {
  return std::clamp<uint64_t>(total_bytes / 20, 256 * kMiB, 1 * kGiB);
}

void CapDeviceBudgets(uint64_t cap, const std::string& how, Budget* budget) {
  for (Device& d : budget->devices) {
    if (d.budget_bytes <= cap) continue;
    d.budget_bytes = cap;
    d.source += fmt::format("; budget capped at {} by {}", FormatSize(cap), how);
  }
}

}  // namespace snug::hw
