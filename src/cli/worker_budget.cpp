#include "cli/worker_budget.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "engine/workers.h"
#include "hw/workers.h"

namespace snug::cli {

Status AddWorkers(const std::vector<std::string>& flags, WorkerUse use, hw::Budget* budget) {
  SNUG_ASSIGN_OR_RETURN(std::vector<std::string> endpoints, hw::WorkerList(flags));
  if (endpoints.empty()) return Status::Ok();
  if (use == WorkerUse::kServe) {
    // A lost worker is left out: models that fit without it still load.
    std::vector<std::string> usable;
    for (const auto& endpoint : endpoints) {
      if (!engine::WorkerLost(endpoint)) usable.push_back(endpoint);
    }
    endpoints.swap(usable);
    if (endpoints.empty()) return Status::Ok();
  }
  SNUG_RETURN_IF_ERROR(hw::ProbeWorkers(endpoints, budget));
  const std::vector<std::string> ours = engine::ConnectedWorkers();
  if (use != WorkerUse::kPlan) {
    for (const hw::WorkerHost& w : budget->workers) {
      const bool busy_with_us =
          use == WorkerUse::kServe && std::find(ours.begin(), ours.end(), w.endpoint) != ours.end();
      if (w.busy && !busy_with_us) {
        return Status::Unavailable(fmt::format(
            "worker {} is serving another client, and ggml-rpc serves one at a time: stop the "
            "other snug or llama.cpp using it, or start another worker",
            w.endpoint));
      }
    }
  }
  return Status::Ok();
}

namespace {

bool UsesWorkers(const plan::Settings& settings) {
  for (const auto& d : settings.devices) {
    if (!d.host.empty()) return true;
  }
  return false;
}

}  // namespace

std::vector<engine::DeviceSlice> DeviceSlicesFor(const plan::Settings& settings) {
  std::vector<engine::DeviceSlice> out;
  if (!UsesWorkers(settings)) return out;
  for (const auto& d : settings.devices) {
    engine::DeviceSlice slice;
    slice.name = d.name;
    slice.rpc_endpoint = d.host;
    slice.rpc_device = d.remote_index;
    slice.n_layers = d.n_layers;
    out.push_back(slice);
  }
  if (!out.empty() && settings.output_on_device) out.back().n_layers += 1;
  return out;
}

std::string HostSplitText(const plan::Settings& settings, uint32_t n_layer) {
  if (!UsesWorkers(settings)) return "";
  uint32_t offloaded = 0;
  for (const auto& d : settings.devices)
    offloaded += d.n_layers;
  std::string text = fmt::format("{} here", n_layer - std::min(offloaded, n_layer));
  for (size_t i = 0; i < settings.devices.size(); ++i) {
    const auto& d = settings.devices[i];
    const bool output = settings.output_on_device && i + 1 == settings.devices.size();
    text += fmt::format(", {}{} on {}", d.n_layers, output ? " and the output" : "",
                        d.host.empty() ? d.name : d.host);
  }
  return text;
}

std::string LostWorkersNote(const std::vector<std::string>& flags) {
  Result<std::vector<std::string>> endpoints = hw::WorkerList(flags);
  if (!endpoints.ok()) return "";
  std::vector<std::string> lost;
  for (const auto& endpoint : *endpoints) {
    if (engine::WorkerLost(endpoint)) lost.push_back(endpoint);
  }
  if (lost.empty()) return "";
  return fmt::format(
      " (worker {} was lost during an earlier request and is left out; ggml-rpc keeps one "
      "connection per worker for the life of a process, so restart snug serve to use it again)",
      fmt::join(lost, ", "));
}

}  // namespace snug::cli
