// serve's check of a model before it loads it in its own process: `snug probe-model` in a child
// (engine/probe.h). A child that llama.cpp aborts takes the reason with it; the server refuses the
// model with that reason and keeps serving.
#pragma once

#include <chrono>
#include <string>

#include "core/status.h"
#include "engine/engine.h"

namespace snug::cli {

// Runs `snug_binary probe-model` on these options. Corrupt with the child's last words when it
// fails or dies, Runtime when it runs past `timeout`.
Status CheckModelInChild(const std::string& snug_binary, const engine::ModelOptions& model,
                         const engine::ContextOptions& context, std::chrono::seconds timeout);

}  // namespace snug::cli
