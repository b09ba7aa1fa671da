// Shared plumbing for subcommands: each cmd_<name>.cpp adds itself to the root app and sets the
// process exit code from its Status (see ExitCodeFor).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "core/status.h"

namespace snug::cli {

// Exit codes (SPEC.md): 0 ok, 1 error, 2 usage error, 3 does not fit.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitDoesNotFit = 3;

int ExitCodeFor(const Status& status);

// Prints "snug: <message>" to stderr (unless ok) and returns the exit code for the status.
int Report(const Status& status);

// Flags shared by plan, run and serve: kept as text here and parsed once into a plan request.
struct FitFlags {
  std::string ctx = "auto";     // N | auto | max
  std::string kv_type = "f16";  // f16 | q8_0 | q4_0 | auto
  std::string ngl = "auto";     // N | auto
  int parallel = 1;
  std::string memory_limit;  // SIZE; empty = detect (or SNUG_MEMORY_LIMIT)
  std::string hw_profile;    // built-in profile name; empty = this machine
  std::string headroom;      // SIZE; empty = policy default
  std::string vram_limit;    // SIZE: cap on each accelerator's budget; empty = none
  // --worker HOST:PORT (repeatable); none = SNUG_WORKERS (comma-separated), else this host alone.
  std::vector<std::string> workers;
};
void AddFitFlags(CLI::App* app, FitFlags* flags);

// A flag value check: a finite number within [lo, hi] (CLI11's Range lets NaN through). A
// failing value is a usage error (exit 2) naming the flag.
CLI::Validator FiniteIn(double lo, double hi);

// The whole text of a small file a flag names (--chat-template, --json-schema); `what` names it in
// the error ("chat template file"). InvalidArgument when it cannot be read or is over 1 MiB.
Result<std::string> ReadFlagFile(const std::string& path, const char* what);

// Each subcommand registers itself; `exit_code` is written when it runs.
void AddPlanCommand(CLI::App& root, int* exit_code);
void AddHwCommand(CLI::App& root, int* exit_code);
void AddRunCommand(CLI::App& root, int* exit_code);
void AddServeCommand(CLI::App& root, int* exit_code);
void AddStoreCommands(CLI::App& root, int* exit_code);  // pull, import, ls, rm, show
void AddPsCommand(CLI::App& root, int* exit_code);
void AddMkmodelCommand(CLI::App& root, int* exit_code);
void AddProbeCommand(CLI::App& root, int* exit_code);  // hidden: serve's model check
void AddWorkerCommand(CLI::App& root, int* exit_code);

}  // namespace snug::cli
