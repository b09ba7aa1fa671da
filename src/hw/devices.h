// Accelerators from ggml's backend device registry (the same registry llama.cpp places layers
// with), converted to hw::Device with a per-device budget.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hw/budget.h"

namespace snug::hw {

// Lists non-CPU ggml devices (GPU, integrated GPU, accelerators) with their free/total memory and
// budget = free - DeviceHeadroom(total). CPU devices are skipped: host memory is the host budget.
//
// Unified memory: integrated GPUs (GGML_BACKEND_DEVICE_TYPE_IGPU) and Apple Silicon's Metal
// device are marked `unified`. ggml-metal reports total = MTLDevice.recommendedMaxWorkingSetSize
// (the working set limit, about 2/3 of RAM on <= 16 GB Macs, ~75% above) and free = that minus
// currentAllocatedSize (ggml-metal-device.m, ggml_metal_device_get_memory), so the device budget
// never promises more than the working set limit. Metal reports itself as a discrete GPU type;
// on macOS snug asks the kernel whether this is Apple Silicon (hw.optional.arm64) to mark it
// unified (Intel Macs with discrete GPUs are not unified).
std::vector<Device> ProbeDevices(std::vector<std::string>* notes);

}  // namespace snug::hw
