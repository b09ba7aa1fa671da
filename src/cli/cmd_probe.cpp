// snug probe-model: the child side of serve's model check (engine/probe.h). Reads the load
// options as JSON on stdin, tries the model, exits 0 or 1 with the reason; llama.cpp may abort it
// instead, which is what the server runs it apart for. Hidden: not a user command.
#include <iostream>
#include <iterator>
#include <string>

#include "cli/command.h"
#include "engine/probe.h"

namespace snug::cli {
namespace {

Status RunProbe() {
  const std::string request((std::istreambuf_iterator<char>(std::cin)),
                            std::istreambuf_iterator<char>());
  engine::ModelOptions model;
  engine::ContextOptions context;
  SNUG_RETURN_IF_ERROR(engine::ParseProbeRequest(request, &model, &context));
  return engine::ProbeModel(model, context);
}

}  // namespace

void AddProbeCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand("probe-model", "");  // empty description: hidden from --help
  cmd->group("");
  cmd->callback([exit_code] { *exit_code = Report(RunProbe()); });
}

}  // namespace snug::cli
