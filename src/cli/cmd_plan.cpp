#include "cli/command.h"

namespace snug::cli {

void AddPlanCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "plan", "Predict memory and pick settings that fit, without loading weights");
  cmd->allow_extras();
  cmd->callback([exit_code] { *exit_code = Report(NotYetAvailable("plan", 4)); });
}

}  // namespace snug::cli
