// Logging: spdlog to stderr. Verbosity comes from SNUG_LOG (error|warn|info|debug) or -v.
// llama.cpp's own log lines are routed here by the engine so one switch controls both.
#pragma once

#include <spdlog/spdlog.h>

namespace snug::log {

// Call once at start-up. verbose_level: 0 = warnings, 1 = info, 2+ = debug.
void Init(int verbose_level);

}  // namespace snug::log
