#include "cli/command.h"

namespace snug::cli {

void AddMkmodelCommand(CLI::App& root, int* exit_code) {
  auto* cmd =
      root.add_subcommand("mkmodel", "Write a synthetic, shape-faithful GGUF model from a preset");
  cmd->allow_extras();
  cmd->callback([exit_code] { *exit_code = Report(NotYetAvailable("mkmodel", 2)); });
}

}  // namespace snug::cli
