// Where layers go: over this machine's accelerators (in proportion to their budgets, as
// llama.cpp's default split does) and, with workers (--worker), across hosts.
#pragma once

#include <vector>

#include "hw/budget.h"
#include "plan/estimate.h"
#include "plan/shape.h"

namespace snug::plan {

// Splits `n` llama.cpp offload positions (n_gpu_layers: the output layer, then repeating layers
// from the end) over `devices` in proportion to their budgets.
void Distribute(const ModelShape& shape, const std::vector<const hw::Device*>& devices, int n,
                Settings* s);

// Each device's part of `m` within the budget of the device at the same index.
bool DevicesFit(const MemoryBreakdown& m, const std::vector<const hw::Device*>& devices);

struct Spread {
  Settings settings;
  MemoryBreakdown memory;
  // Every layer placed and every host within its budget. When false, the layers no worker could
  // take are on this host, so the memory shows each host's shortfall.
  bool fits = false;
};

// Places the model across this host and the workers' devices (hw::Device::host set), for a
// model that does not fit this machine alone. Preference follows speed: this machine's
// accelerators take the last layers and the output, its CPU the first layers, each as many as
// it holds; the workers take the layers between, largest budget first and each as many as it
// holds, so the fewest hosts are used (the network is the slowest link). A worker's device
// counts its layers' weights and KV, the worst-case compute graph, and the largest tensor it
// receives while loading.
Spread PlaceAcrossHosts(const ModelShape& shape, const hw::Budget& budget, const Settings& base);

}  // namespace snug::plan
