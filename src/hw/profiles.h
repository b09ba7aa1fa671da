// Built-in hardware profiles for what-if planning (`--hw PROFILE`): "would this model run on a
// 16 GB Mac?" answered on any machine. Each profile states the figures it assumes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "hw/budget.h"

namespace snug::hw {

struct Profile {
  std::string name;     // "mac-16gb"
  std::string summary;  // one line for `snug hw --profiles`
  uint64_t ram_bytes = 0;
  // What a model may use on the host before headroom: RAM minus what the OS and a typical desktop
  // hold, or the container limit. This is the profile's "MemAvailable".
  uint64_t host_available_bytes = 0;
  std::optional<uint64_t> cgroup_limit;  // container-6gb: the limit that binds
  int cpu_cores = 0;
  // Simulated accelerators (total/free/unified set; budget_bytes filled by ProfileBudget).
  std::vector<Device> devices;
  std::string assumptions;  // why these figures (documented per profile in profiles.cpp)
};

const std::vector<Profile>& AllProfiles();

// NotFound with the list of known names when `name` is not a profile.
Result<Profile> FindProfile(const std::string& name);

// The budget a profile yields: source "profile", host = host_available - headroom, devices with
// budget = free - DeviceHeadroom(total) (unified ones capped at the host budget).
Budget ProfileBudget(const Profile& profile, std::optional<uint64_t> headroom);

}  // namespace snug::hw
