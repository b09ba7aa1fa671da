#include "hw/profiles.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/size.h"
#include "hw/detect.h"

namespace snug::hw {
namespace {

// Apple Silicon: ggml-metal's device memory is MTLDevice.recommendedMaxWorkingSetSize, which
// macOS sets to 2/3 of RAM on Macs with <= 16 GB (llama.cpp logs "recommendedMaxWorkingSetSize =
// 5461.34 MB" on 8 GB and "10922.67 MB" on 16 GB machines; ~75% above 36 GB). The GPU may use at
// most that much of the one shared pool.
constexpr uint64_t MetalWorkingSet(uint64_t ram) {
  return ram / 3 * 2;
}

Device Metal(const std::string& chip, uint64_t ram) {
  Device d;
  d.name = "MTL0";
  d.description = chip;
  d.backend = "MTL";
  d.total_bytes = MetalWorkingSet(ram);
  d.free_bytes = d.total_bytes;
  d.unified = true;
  return d;
}

Device Cuda(const std::string& model, uint64_t total, uint64_t free) {
  Device d;
  d.name = "CUDA0";
  d.description = model;
  d.backend = "CUDA";
  d.total_bytes = total;
  d.free_bytes = free;
  return d;
}

std::vector<Profile> MakeProfiles() {
  std::vector<Profile> all;
  {
    Profile p;
    p.name = "mac-8gb";
    p.summary = "Apple Silicon Mac, 8 GB unified memory (Metal)";
    p.ram_bytes = 8 * kGiB;
    p.host_available_bytes = 5 * kGiB + 512 * kMiB;
    p.cpu_cores = 8;
    p.devices = {Metal("Apple M2 (simulated)", p.ram_bytes)};
    p.assumptions =
        "macOS and a desktop session hold ~2.5 GiB; Metal working set limit = 2/3 of RAM "
        "(5461 MiB)";
    all.push_back(p);
  }
  {
    Profile p;
    p.name = "mac-16gb";
    p.summary = "Apple Silicon Mac, 16 GB unified memory (Metal)";
    p.ram_bytes = 16 * kGiB;
    p.host_available_bytes = 12 * kGiB;
    p.cpu_cores = 10;
    p.devices = {Metal("Apple M4 (simulated)", p.ram_bytes)};
    p.assumptions =
        "macOS and a desktop session hold ~4 GiB; Metal working set limit = 2/3 of RAM "
        "(10923 MiB)";
    all.push_back(p);
  }
  {
    Profile p;
    p.name = "laptop-16gb";
    p.summary = "x86-64 laptop, 16 GB RAM, CPU only";
    p.ram_bytes = 16 * kGiB;
    p.host_available_bytes = 12 * kGiB;
    p.cpu_cores = 8;
    p.assumptions = "OS, desktop and a browser hold ~4 GiB; no usable accelerator";
    all.push_back(p);
  }
  {
    Profile p;
    p.name = "workstation-24gb-gpu";
    p.summary = "workstation: 24 GB GPU (RTX 4090 class) + 64 GB RAM";
    p.ram_bytes = 64 * kGiB;
    p.host_available_bytes = 60 * kGiB;
    p.cpu_cores = 16;
    p.devices = {Cuda("NVIDIA GeForce RTX 4090 (simulated)", 24 * kGiB, 23 * kGiB + 512 * kMiB)};
    p.assumptions = "desktop holds ~4 GiB RAM and ~512 MiB VRAM (display, CUDA context)";
    all.push_back(p);
  }
  {
    Profile p;
    p.name = "datacenter-80gb";
    p.summary = "server: 80 GB data-centre GPU (A100/H100 class) + 256 GB RAM";
    p.ram_bytes = 256 * kGiB;
    p.host_available_bytes = 248 * kGiB;
    p.cpu_cores = 32;
    p.devices = {Cuda("NVIDIA H100 80GB HBM3 (simulated)", 80 * kGiB, 79 * kGiB + 256 * kMiB)};
    p.assumptions = "headless server; the CUDA context holds ~750 MiB VRAM";
    all.push_back(p);
  }
  {
    Profile p;
    p.name = "container-6gb";
    p.summary = "container with a 6 GiB memory limit on a 64 GB host, CPU only";
    p.ram_bytes = 64 * kGiB;
    p.cgroup_limit = 6 * kGiB;
    p.host_available_bytes = 6 * kGiB;
    p.cpu_cores = 4;
    p.assumptions = "cgroup memory limit 6 GiB, nothing else running in the container";
    all.push_back(p);
  }
  return all;
}

}  // namespace

const std::vector<Profile>& AllProfiles() {
  static const std::vector<Profile> kProfiles = MakeProfiles();
  return kProfiles;
}

Result<Profile> FindProfile(const std::string& name) {
  std::string names;
  for (const Profile& p : AllProfiles()) {
    if (p.name == name) return p;
    names += names.empty() ? p.name : ", " + p.name;
  }
  return Status::NotFound(fmt::format(
      "unknown hardware profile \"{}\" (known: {}; see snug hw --profiles)", name, names));
}

Budget ProfileBudget(const Profile& profile, std::optional<uint64_t> headroom) {
  Budget budget;
  ApplyHeadroom(profile.host_available_bytes, headroom, &budget);
  budget.source = "profile";
  budget.detail = profile.cgroup_limit
                      ? fmt::format("profile {}: cgroup limit {} on a {} host ({})", profile.name,
                                    FormatSize(*profile.cgroup_limit),
                                    FormatSize(profile.ram_bytes), profile.assumptions)
                      : fmt::format("profile {}: {} of {} RAM available ({})", profile.name,
                                    FormatSize(profile.host_available_bytes),
                                    FormatSize(profile.ram_bytes), profile.assumptions);
  for (Device d : profile.devices) {
    const uint64_t device_headroom = DeviceHeadroom(d.total_bytes);
    d.budget_bytes = d.free_bytes > device_headroom ? d.free_bytes - device_headroom : 0;
    if (d.unified) d.budget_bytes = std::min(d.budget_bytes, budget.host_bytes);
    d.source = fmt::format("profile {}", profile.name);
    budget.devices.push_back(std::move(d));
  }
  return budget;
}

}  // namespace snug::hw
