// A plan seen per host: what this machine and each worker holds against its budget (the table
// `snug plan --worker` prints and the "hosts" array of its JSON).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hw/budget.h"
#include "plan/fit.h"

namespace snug::plan {

struct HostRow {
  std::string host;  // "this host", "this host/CUDA0", or a worker's "HOST:PORT"
  bool worker = false;
  uint32_t n_layers = 0;
  bool output = false;  // holds the output layer
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t compute_bytes = 0;
  uint64_t other_bytes = 0;  // this host: logits buffer and process overhead; a worker: the
                             // largest tensor held twice while it is received
  uint64_t total_bytes = 0;
  uint64_t budget_bytes = 0;
  std::string source;  // where the budget figure came from
};

// One row for this host's CPU and memory, one per local accelerator that holds layers, and one
// per worker (its devices summed) that holds layers.
std::vector<HostRow> HostRows(const ModelShape& shape, const Plan& plan, const hw::Budget& budget);

}  // namespace snug::plan
