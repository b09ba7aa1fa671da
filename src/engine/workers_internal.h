// engine/ internals for workers.h: the abort guard and device lookup (ggml types).
#pragma once

#include <ggml-backend.h>

#include <cstdint>
#include <string>

#include "core/status.h"

namespace snug::engine {

// Installs ggml's abort callback (InitBackend calls it once).
void InstallWorkerGuard();

// The ggml device `index` of the worker at `endpoint`, connecting to it (ggml-rpc) if needed.
// Unavailable when the worker is unreachable or was lost.
Result<ggml_backend_dev_t> WorkerDevice(const std::string& endpoint, uint32_t index);

}  // namespace snug::engine
