#include "cli/command.h"

namespace snug::cli {

void AddHwCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "hw", "Show this machine's memory, CPU, accelerators and the effective budget");
  cmd->allow_extras();
  cmd->callback([exit_code] { *exit_code = Report(NotYetAvailable("hw", 3)); });
}

}  // namespace snug::cli
