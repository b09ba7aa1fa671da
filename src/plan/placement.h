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
// model that does not fit this machine alone, on the fewest workers (the network is the slowest
// link). This machine's accelerators take the last layers and the output layer as they would
// alone; otherwise the worker with the largest budget takes the output layer and as many of the
// last layers as it holds. The other workers, largest budget first, each take as many of the
// layers before as they hold until this host's CPU can take the rest: the workers lend their
// memory for this, and this host keeps room for other models. A worker's device counts its
// layers' weights and KV, its part of the compute graph, and the largest tensor it receives
// whole while loading.
Spread PlaceAcrossHosts(const ModelShape& shape, const hw::Budget& budget, const Settings& base);

}  // namespace snug::plan
