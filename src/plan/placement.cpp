#include "plan/placement.h"

#include <algorithm>
#include <utility>

namespace snug::plan {
namespace {

DevicePlacement PlaceOn(const hw::Device& d, uint32_t n_layers) {
  DevicePlacement p;
  p.name = d.name;
  p.unified = d.unified;
  p.n_layers = n_layers;
  p.host = d.host;
  p.remote_index = d.remote_index;
  return p;
}

// This host's share of a split: what stays resident plus the file pages read to be repacked,
// which stay cached until pressure (the server counts them in its pool). The pages read only
// to be sent to workers are left out: they are clean and dropped first.
uint64_t HostBytes(const MemoryBreakdown& m) {
  return m.host_required_bytes + m.repack_bytes;
}

// The largest count in [0, most] that `fits` (memory grows with the count, so bisect); 0 when
// none does, or only 0.
template <typename Fits>
uint32_t LargestFitting(uint32_t most, const Fits& fits) {
  uint32_t lo = 0, hi = most;
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) / 2;
    if (fits(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

}  // namespace

bool DevicesFit(const MemoryBreakdown& m, const std::vector<const hw::Device*>& devices) {
  for (size_t i = 0; i < m.per_device.size() && i < devices.size(); ++i) {
    if (m.per_device[i].total_bytes > devices[i]->budget_bytes) return false;
  }
  return true;
}

void Distribute(const ModelShape& shape, const std::vector<const hw::Device*>& devices, int n,
                Settings* s) {
  s->devices.clear();
  s->output_on_device = false;
  if (devices.empty() || n <= 0) return;
  // llama.cpp offloads from the output layer backwards (llama-model.cpp load_tensors:
  // i_gpu_start = n_layer + 1 - n_gpu_layers), so n >= 1 always includes the output layer.
  const uint32_t layers = std::min<uint32_t>(static_cast<uint32_t>(n) - 1, shape.n_layer);
  s->output_on_device = true;
  uint64_t total = 0;
  for (const auto* d : devices)
    total += d->budget_bytes;
  uint32_t given = 0;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    cumulative += devices[i]->budget_bytes;
    const uint32_t upto =
        i + 1 == devices.size()
            ? layers
            : static_cast<uint32_t>((static_cast<long double>(cumulative) / total) * layers + 0.5L);
    const uint32_t n_layers = std::max(upto, given) - given;
    given += n_layers;
    s->devices.push_back(PlaceOn(*devices[i], n_layers));
  }
}

Spread PlaceAcrossHosts(const ModelShape& shape, const hw::Budget& budget, const Settings& base) {
  std::vector<const hw::Device*> locals, remotes;
  for (const auto& d : budget.devices) {
    if (d.backend == "CPU" || d.budget_bytes == 0) continue;
    (d.host.empty() ? locals : remotes).push_back(&d);
  }
  std::stable_sort(remotes.begin(), remotes.end(), [](const hw::Device* a, const hw::Device* b) {
    return a->budget_bytes > b->budget_bytes;
  });
  const uint32_t n = shape.n_layer;

  // This machine's accelerators: the most offload positions they hold (output included).
  Settings local = base;
  int local_ngl = 0;
  if (!locals.empty()) {
    local_ngl = static_cast<int>(LargestFitting(n + 1, [&](uint32_t ngl) {
      Settings t = base;
      Distribute(shape, locals, static_cast<int>(ngl), &t);
      return DevicesFit(Estimate(shape, t), locals);
    }));
  }
  Distribute(shape, locals, local_ngl, &local);
  const uint32_t tail = local_ngl > 0 ? static_cast<uint32_t>(local_ngl) - 1 : 0;
  const bool output_local = local_ngl > 0;

  // Without local accelerators the output layer goes to a worker, the last device in
  // llama.cpp's order: the one with the largest budget, which also takes as many of the last
  // layers as it holds beside the output.
  const hw::Device* output_worker = nullptr;
  uint32_t output_worker_layers = 0;
  if (!output_local && !remotes.empty()) {
    output_worker = remotes.front();
    auto fits = [&](uint32_t count) {
      return EstimateDevice(shape, base, n - tail - count, count, true, /*remote=*/true)
                 .total_bytes <= output_worker->budget_bytes;
    };
    output_worker_layers = LargestFitting(n - tail, fits);
  }

  // Assembles a placement: the workers in `chosen` order with their counts, then the output
  // worker, then the local accelerators; this host's CPU keeps the rest, at the start.
  auto assemble = [&](const std::vector<std::pair<const hw::Device*, uint32_t>>& chosen,
                      std::vector<const hw::Device*>* order) {
    Settings s = base;
    order->clear();
    for (const auto& [d, count] : chosen) {
      s.devices.push_back(PlaceOn(*d, count));
      order->push_back(d);
    }
    if (output_worker != nullptr) {
      s.devices.push_back(PlaceOn(*output_worker, output_worker_layers));
      order->push_back(output_worker);
    }
    for (size_t i = 0; i < local.devices.size(); ++i) {
      s.devices.push_back(local.devices[i]);
      order->push_back(locals[i]);
    }
    s.output_on_device = !s.devices.empty();
    return s;
  };

  // This host's CPU: the most leading layers it holds while the rest is elsewhere. A stand-in
  // worker takes the middle: the host's share does not depend on which.
  hw::Device stand_in;
  stand_in.name = "worker";
  stand_in.host = "worker";
  const uint32_t elsewhere = tail + output_worker_layers;
  auto host_fits = [&](uint32_t cpu_layers) {
    std::vector<const hw::Device*> order;
    const uint32_t middle = n - elsewhere - cpu_layers;
    std::vector<std::pair<const hw::Device*, uint32_t>> chosen;
    if (middle > 0) chosen.push_back({&stand_in, middle});
    const Settings s = assemble(chosen, &order);
    return HostBytes(Estimate(shape, s)) <= budget.host_bytes;
  };
  const uint32_t cpu_layers = LargestFitting(n - elsewhere, host_fits);

  // The other workers, largest budget first, each taking as many of the layers before the
  // output worker's as it holds, until this host can take the rest. The workers lend their
  // memory for this; this host keeps room for other models and requests.
  uint32_t at = n - elsewhere;  // layers [0, at) are not placed yet
  std::vector<std::pair<const hw::Device*, uint32_t>> chosen;
  for (const hw::Device* d : remotes) {
    if (at <= cpu_layers) break;
    if (d == output_worker) continue;
    auto fits = [&](uint32_t count) {
      return EstimateDevice(shape, base, at - count, count, false, /*remote=*/true).total_bytes <=
             d->budget_bytes;
    };
    const uint32_t count = LargestFitting(at, fits);
    if (count == 0) continue;
    chosen.push_back({d, count});
    at -= count;
  }
  std::reverse(chosen.begin(), chosen.end());  // llama.cpp's device order follows the layers
  const uint32_t left = at > cpu_layers ? at - cpu_layers : 0;

  Spread out;
  // Layers no worker holds stay on this host (llama.cpp's CPU layers), so the figures show
  // where the shortfall is.
  const bool complete = left == 0 && (output_local || output_worker != nullptr);
  std::vector<const hw::Device*> order;
  out.settings = assemble(chosen, &order);
  out.memory = Estimate(shape, out.settings);
  out.fits =
      complete && HostBytes(out.memory) <= budget.host_bytes && DevicesFit(out.memory, order);
  return out;
}

}  // namespace snug::plan
