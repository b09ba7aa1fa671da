#include "cli/command.h"

namespace snug::cli {

void AddRunCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand("run", "Run a model on a prompt or as an interactive chat");
  cmd->allow_extras();
  cmd->callback([exit_code] { *exit_code = Report(NotYetAvailable("run", 5)); });
}

}  // namespace snug::cli
