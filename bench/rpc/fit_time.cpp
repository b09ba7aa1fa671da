// The planner's Fit alone across worker hosts, for bench/rpc/run.sh: no probe, no file I/O in the
// timed loop (the GGUF header is read once). Prints one JSON line:
//   {"workers": N, "runs": R, "median_us": .., "min_us": .., "fits": .., "layers": [here, w1..]}
// Usage: plan_rpc_fit_time MODEL.gguf CTX HOST_MIB WORKER_MIB[,WORKER_MIB...] [RUNS]
// (MiB may be fractional: the budgets `snug plan --json` reports after headroom.)
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/size.h"
#include "gguf/reader.h"
#include "hw/budget.h"
#include "plan/fit.h"
#include "plan/request.h"
#include "plan/shape.h"

namespace {

using namespace snug;

// A worker as the probe would report it: one RPC device with its budget (see
// tests/plan/placement_test.cpp AddWorker).
void AddWorker(hw::Budget* b, const std::string& endpoint, uint64_t bytes) {
  hw::WorkerHost w;
  w.endpoint = endpoint;
  w.protocol = "6.0.0";
  w.source = "override";
  w.detail = "bench budget";
  b->workers.push_back(w);
  hw::Device d;
  d.name = "RPC[" + endpoint + "]/CPU";
  d.backend = "RPC";
  d.total_bytes = d.free_bytes = d.budget_bytes = bytes;
  d.host = endpoint;
  b->devices.push_back(d);
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "plan_rpc_fit_time: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    return Fail(
        "usage: plan_rpc_fit_time MODEL.gguf CTX HOST_MIB WORKER_MIB[,WORKER_MIB...] [RUNS]");
  }
  const std::string path = argv[1];
  const std::string ctx = argv[2];
  const auto host_bytes = static_cast<uint64_t>(std::strtod(argv[3], nullptr) * kMiB);
  std::vector<uint64_t> worker_bytes;
  std::stringstream list(argv[4]);
  for (std::string item; std::getline(list, item, ',');)
    worker_bytes.push_back(static_cast<uint64_t>(std::strtod(item.c_str(), nullptr) * kMiB));
  const int runs = argc > 5 ? std::atoi(argv[5]) : 200;
  if (worker_bytes.empty() || runs < 1) return Fail("need at least one worker and one run");

  auto file = gguf::ReadFile(path);
  if (!file.ok()) return Fail(file.status().message());
  auto shape = plan::ShapeFromGguf(*file);
  if (!shape.ok()) return Fail(shape.status().message());
  auto request = plan::ParseRequest(ctx, "f16", "auto", 1);
  if (!request.ok()) return Fail(request.status().message());

  hw::Budget budget;
  budget.host_bytes = budget.host_raw_bytes = host_bytes;
  budget.source = "override";
  budget.detail = "bench budget";
  for (size_t i = 0; i < worker_bytes.size(); ++i)
    AddWorker(&budget, fmt::format("127.0.0.1:{}", 52000 + 2 * i), worker_bytes[i]);

  std::vector<double> us;
  us.reserve(runs);
  Result<plan::Plan> last = Status::Internal("not run");
  for (int i = 0; i < runs + 5; ++i) {  // 5 warm-ups
    const auto t0 = std::chrono::steady_clock::now();
    last = plan::Fit(*shape, budget, *request);
    const auto t1 = std::chrono::steady_clock::now();
    if (!last.ok()) return Fail(last.status().message());
    if (i >= 5) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  if (!last->fits) std::fprintf(stderr, "plan_rpc_fit_time: %s\n", last->reason.c_str());
  std::sort(us.begin(), us.end());
  std::vector<uint32_t> layers{0};  // this host first, then each worker in budget order
  uint32_t offloaded = 0;
  for (const auto& d : last->memory.per_device)
    offloaded += d.n_layers;
  layers[0] = shape->n_layer - offloaded;
  for (const auto& w : budget.workers) {
    uint32_t n = 0;
    for (const auto& d : last->memory.per_device)
      if (d.host == w.endpoint) n += d.n_layers;
    layers.push_back(n);
  }
  fmt::print(
      "{{\"workers\": {}, \"runs\": {}, \"median_us\": {:.1f}, \"min_us\": {:.1f}, \"fits\": {}, "
      "\"layers\": [{}]}}\n",
      worker_bytes.size(), runs, us[us.size() / 2], us.front(), last->fits ? "true" : "false",
      fmt::join(layers, ", "));
  return 0;
}
