#include "cli/command.h"

namespace snug::cli {

void AddServeCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API");
  cmd->allow_extras();
  cmd->callback([exit_code] { *exit_code = Report(NotYetAvailable("serve", 6)); });
}

}  // namespace snug::cli
