// snug pull REF [--name N] [--force] [budget flags]: download a model into the store, after
// checking from the remote header alone that it fits this machine. A local .gguf path is imported
// instead (also `snug import FILE`).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>

#include "cli/command.h"
#include "cli/store_fit.h"
#include "core/size.h"
#include "gguf/reader.h"
#include "gguf/remote.h"
#include "store/store.h"

namespace snug::cli {

struct PullArgs {
  std::string ref;
  std::string name;
  bool force = false;
  BudgetFlags budget;
};

// Prints how the model fits; DoesNotFit when it cannot fit even at the smallest context and KV
// type the policy allows (unless forced, then only a warning).
Status CheckFit(const gguf::File& header, const PullArgs& args, const std::string& verb) {
  SNUG_ASSIGN_OR_RETURN(hw::Budget budget, ResolveBudgetFromFlags(args.budget));
  auto summary = FitHere(header, budget);
  if (!summary.ok()) {
    // An architecture the planner cannot model is no reason to refuse a download.
    fmt::print(stderr, "cannot check the fit: {}\n", summary.status().message());
    return Status::Ok();
  }
  if (summary->fits()) {
    fmt::print(stderr, "fits this machine: {}\n", summary->Describe());
    return Status::Ok();
  }
  if (args.force) {
    fmt::print(stderr, "warning: does not fit this machine ({}); {} anyway (--force)\n",
               summary->Describe(), verb);
    return Status::Ok();
  }
  return Status::DoesNotFit(
      fmt::format("{}; not downloading it (add --force to download anyway)", summary->Describe()));
}

Status RunImport(const std::string& path, const PullArgs& args) {
  SNUG_ASSIGN_OR_RETURN(gguf::File header, gguf::ReadFile(path));
  PullArgs warn_only = args;
  warn_only.force = true;  // the file is already here: report the fit, never refuse
  SNUG_RETURN_IF_ERROR(CheckFit(header, warn_only, "importing"));
  SNUG_ASSIGN_OR_RETURN(auto store, store::Store::OpenDefault());
  SNUG_ASSIGN_OR_RETURN(store::ModelRecord record, store->Import(path, args.name));
  fmt::print("imported {} ({}, {} {}, sha256 {})\n", record.name, FormatSize(record.size),
             record.architecture, record.quant, record.sha256.substr(0, 12));
  return Status::Ok();
}

Status RunPull(const PullArgs& args) {
  SNUG_ASSIGN_OR_RETURN(store::PullRef ref, store::ParseRef(args.ref));
  if (ref.kind == store::PullRef::Kind::kLocalFile) return RunImport(ref.path, args);
  SNUG_ASSIGN_OR_RETURN(auto store, store::Store::OpenDefault());
  SNUG_ASSIGN_OR_RETURN(store::PullSource source, store->ResolvePull(ref, args.name));
  uint64_t total = source.TotalBytes();
  fmt::print(stderr, "pulling {} from {} ({}{})\n", source.name, source.source,
             total ? FormatSize(total) : "size unknown",
             source.files.size() > 1 ? fmt::format(" in {} parts", source.files.size()) : "");

  gguf::RemoteOptions remote;
  remote.bearer_token = source.http.bearer_token;
  auto header = gguf::ReadRemote(source.files.front().url, remote);
  if (!header.ok()) {
    if (!args.force) {
      return header.status().WithContext(
          "cannot read the model's header to check the fit (use --force to pull anyway)");
    }
    fmt::print(stderr, "warning: cannot check the fit: {}\n", header.status().message());
  } else {
    SNUG_RETURN_IF_ERROR(CheckFit(*header, args, "downloading"));
  }
  SNUG_RETURN_IF_ERROR(store->CheckDiskSpace(source));

  ProgressPrinter printer;
  store::PullEvents events;
  events.progress = [&](size_t index, size_t count, const store::RemoteFile& file,
                        const store::DownloadProgress& p) {
    printer.Update(index, count, file, p);
  };
  events.note = [](const std::string& note) { fmt::print(stderr, "{}\n", note); };
  SNUG_ASSIGN_OR_RETURN(store::ModelRecord record, store->Pull(source, events));
  fmt::print("pulled {} ({}, {} {}, sha256 {})\n", record.name, FormatSize(record.size),
             record.architecture, record.quant, record.sha256.substr(0, 12));
  return Status::Ok();
}

void AddPullCommands(CLI::App& root, int* exit_code) {
  auto args = std::make_shared<PullArgs>();
  auto* pull = root.add_subcommand("pull", "Download a model (checks the fit first)");
  pull->add_option("REF", args->ref,
                   "hf.co/OWNER/REPO[:QUANT], OWNER/REPO[:QUANT], an https:// URL of a .gguf, or "
                   "a local .gguf path (imported)")
      ->required();
  pull->add_option("--name", args->name, "Store name (default: owner/repo:quant or file name)");
  pull->add_flag("--force", args->force, "Download even when the model does not fit here");
  AddBudgetFlags(pull, &args->budget);
  pull->callback([args, exit_code] { *exit_code = Report(RunPull(*args)); });

  auto import_args = std::make_shared<PullArgs>();
  auto* import = root.add_subcommand("import", "Add a local .gguf file to the store");
  import->add_option("FILE", import_args->ref, "A .gguf file (first part of a split model)")
      ->required();
  import->add_option("--name", import_args->name, "Store name (default: from the file name)");
  AddBudgetFlags(import, &import_args->budget);
  import->callback([import_args, exit_code] {
    *exit_code = Report(RunImport(import_args->ref, *import_args));
});
}  // namespace snug::cli

}  // namespace snug::cli
