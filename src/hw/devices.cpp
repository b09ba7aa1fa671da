#include "hw/devices.h"

#include <fmt/format.h>
#include <ggml-backend.h>

#include <algorithm>

#include "core/size.h"

#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

namespace snug::hw {
namespace {

bool IsMetal(const std::string& backend) {
  return backend == "MTL" || backend == "Metal" || backend == "METAL";
}

// Apple Silicon GPUs share the SoC's memory; ggml-metal does not expose hasUnifiedMemory through
// the device registry, so the CPU architecture decides.
bool AppleSiliconHost() {
#ifdef __APPLE__
  int arm64 = 0;
  size_t size = sizeof(arm64);
  if (sysctlbyname("hw.optional.arm64", &arm64, &size, nullptr, 0) == 0) return arm64 != 0;
#endif
  return false;
}

}  // namespace

std::vector<Device> ProbeDevices(std::vector<std::string>* notes) {
  std::vector<Device> devices;
  const size_t count = ggml_backend_dev_count();
  for (size_t i = 0; i < count; ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (dev == nullptr) continue;
    ggml_backend_dev_props props{};
    ggml_backend_dev_get_props(dev, &props);
    if (props.type == GGML_BACKEND_DEVICE_TYPE_CPU) continue;
    Device d;
    d.name = props.name != nullptr ? props.name : "";
    d.description = props.description != nullptr ? props.description : "";
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    d.backend =
        reg != nullptr && ggml_backend_reg_name(reg) != nullptr ? ggml_backend_reg_name(reg) : "";
    d.total_bytes = props.memory_total;
    d.free_bytes = std::min<uint64_t>(props.memory_free, props.memory_total);
    d.unified =
        props.type == GGML_BACKEND_DEVICE_TYPE_IGPU || (IsMetal(d.backend) && AppleSiliconHost());
    const uint64_t headroom = DeviceHeadroom(d.total_bytes);
    d.budget_bytes = d.free_bytes > headroom ? d.free_bytes - headroom : 0;
    if (IsMetal(d.backend)) {
      d.source = fmt::format("Metal working set limit {} (recommendedMaxWorkingSetSize), {} free",
                             FormatSize(d.total_bytes), FormatSize(d.free_bytes));
    } else {
      d.source = fmt::format("{} reports {} free of {}", d.backend, FormatSize(d.free_bytes),
                             FormatSize(d.total_bytes));
    }
    if (d.total_bytes == 0)
      notes->push_back(fmt::format("device {} reports no memory size; it gets no budget", d.name));
    devices.push_back(std::move(d));
  }
  return devices;
}

}  // namespace snug::hw
