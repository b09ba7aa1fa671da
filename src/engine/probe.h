// Trying a model the way serving it will use llama.cpp, short of loading its weights: the dry run
// of its context, the tokenizer and the chat template. llama.cpp aborts the whole process on some
// malformed files (an assert, not an error), so snug serve runs this in a child process (`snug
// probe-model`) before it loads a model it has not tried, and survives when the child does not.
#pragma once

#include <string>

#include "core/status.h"
#include "engine/engine.h"

namespace snug::engine {

Status ProbeModel(const ModelOptions& model, const ContextOptions& context);

// The options as one line of JSON (what the server sends the child) and back.
std::string ProbeRequestJson(const ModelOptions& model, const ContextOptions& context);
Status ParseProbeRequest(const std::string& text, ModelOptions* model, ContextOptions* context);

}  // namespace snug::engine
