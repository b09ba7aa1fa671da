#include "cli/command.h"

namespace snug::cli {

void AddStoreCommands(CLI::App& root, int* exit_code) {
  const char* names[][2] = {{"pull", "Download a model (checks the fit first)"},
                            {"ls", "List local models"},
                            {"rm", "Remove a local model"},
                            {"show", "Show a local model's metadata and plan"},
                            {"ps", "List models loaded by a running server"}};
  for (auto& [name, help] : names) {
    auto* cmd = root.add_subcommand(name, help);
    cmd->allow_extras();
    std::string command = name;
    cmd->callback([exit_code, command] {
      *exit_code = Report(NotYetAvailable(command, command == "ps" ? 6 : 7));
    });
  }
}

}  // namespace snug::cli
