// snug: a local LLM runtime that always fits the model to the machine.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/version.h"
#include "core/log.h"

int main(int argc, char** argv) {
  CLI::App app{"snug: run local LLMs that always fit the machine"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", snug::cli::VersionString());
  int verbose = 0;
  app.add_flag("-v,--verbose", verbose, "More log output (repeat for debug)");

  int exit_code = snug::cli::kExitOk;
  snug::cli::AddPlanCommand(app, &exit_code);
  snug::cli::AddHwCommand(app, &exit_code);
  snug::cli::AddRunCommand(app, &exit_code);
  snug::cli::AddServeCommand(app, &exit_code);
  snug::cli::AddStoreCommands(app, &exit_code);
  snug::cli::AddPsCommand(app, &exit_code);
  snug::cli::AddMkmodelCommand(app, &exit_code);
  snug::cli::AddProbeCommand(app, &exit_code);
  snug::cli::AddWorkerCommand(app, &exit_code);
  app.parse_complete_callback([&] { snug::log::Init(verbose); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return snug::cli::kExitUsage;
  }
  if (app.get_subcommands().empty()) {
    fmt::print(stderr, "{}", app.help());
    return snug::cli::kExitUsage;
  }
  return exit_code;
}
