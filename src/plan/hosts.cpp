#include "plan/hosts.h"

#include <algorithm>

namespace snug::plan {

std::vector<HostRow> HostRows(const ModelShape& shape, const Plan& plan, const hw::Budget& budget) {
  const MemoryBreakdown& m = plan.memory;
  std::vector<HostRow> rows;
  HostRow self;
  self.host = "this host";
  uint32_t offloaded = 0;
  for (const auto& d : m.per_device)
    offloaded += d.n_layers;
  self.n_layers = shape.n_layer - std::min(offloaded, shape.n_layer);
  self.output = m.per_device.empty() || !plan.settings.output_on_device;
  self.weights_bytes = m.host_weights_bytes;
  self.kv_bytes = m.host_kv_bytes;
  self.compute_bytes = m.host_compute_touched_bytes;
  self.total_bytes = m.host_required_bytes;
  self.other_bytes =
      self.total_bytes -
      std::min(self.total_bytes, self.weights_bytes + self.kv_bytes + self.compute_bytes);
  self.budget_bytes = budget.host_bytes;
  self.source = budget.detail.empty() ? budget.source : budget.detail;
  rows.push_back(self);

  for (const auto& d : m.per_device) {
    const hw::Device* device = nullptr;
    for (const auto& candidate : budget.devices) {
      if (candidate.name == d.name) device = &candidate;
    }
    if (d.host.empty()) {
      HostRow row;
      row.host = "this host/" + d.name;
      row.n_layers = d.n_layers;
      row.output = d.output;
      row.weights_bytes = d.weights_bytes;
      row.kv_bytes = d.kv_bytes;
      row.compute_bytes = d.compute_bytes;
      row.total_bytes = d.total_bytes;
      row.budget_bytes = device ? device->budget_bytes : 0;
      row.source = device ? device->source : "";
      rows.push_back(row);
      continue;
    }
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const HostRow& r) { return r.worker && r.host == d.host; });
    if (it == rows.end()) {
      HostRow row;
      row.host = d.host;
      row.worker = true;
      for (const auto& w : budget.workers) {
        if (w.endpoint == d.host) row.source = w.detail.empty() ? w.source : w.detail;
      }
      rows.push_back(row);
      it = rows.end() - 1;
    }
    it->n_layers += d.n_layers;
    it->output = it->output || d.output;
    it->weights_bytes += d.weights_bytes;
    it->kv_bytes += d.kv_bytes;
    it->compute_bytes += d.compute_bytes;
    it->other_bytes += d.transfer_bytes;
    it->total_bytes += d.total_bytes;
    it->budget_bytes += device ? device->budget_bytes : 0;
  }
  return rows;
}

}  // namespace snug::plan
