// snug ls | rm NAME | show NAME (pull and import: cmd_pull.cpp; ps: the server, issue 6).
// Also registers the store as the resolver of model names for every MODEL argument.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_source.h"
#include "cli/store_fit.h"
#include "core/log.h"
#include "core/size.h"
#include "engine/chat.h"
#include "gguf/reader.h"
#include "plan/request.h"
#include "plan/shape.h"
#include "store/store.h"

namespace snug::cli {
namespace {

std::string FormatTime(int64_t seconds) {
  if (seconds <= 0) return "never";
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &tm);
  return text;
}

// The default context that fits here, for ls: "8192", "2048 (q8_0)", "no fit", or "?".
struct LsFit {
  std::string text;
  nlohmann::json json;
};

LsFit FitColumn(store::Store& store, const store::ModelRecord& record,
                const Result<hw::Budget>& budget) {
  auto path = store.ModelPath(record);
  if (!path.ok() || !budget.ok()) return {"?", nullptr};
  auto header = gguf::ReadFile(*path);
  if (!header.ok()) return {"missing", nullptr};
  auto summary = FitHere(*header, *budget);
  if (!summary.ok()) return {"?", nullptr};
  const plan::Plan& p = summary->default_plan.fits ? summary->default_plan : summary->best_plan;
  if (!p.fits) return {"no fit", nullptr};
  std::string kv = plan::KvTypeName(p.settings.kv_type);
  return {kv == "f16" ? fmt::format("{}", p.settings.n_ctx)
                      : fmt::format("{} ({})", p.settings.n_ctx, kv),
          {{"n_ctx", p.settings.n_ctx}, {"kv_type", kv}}};
}

struct LsArgs {
  bool json = false;
  BudgetFlags budget;
};

Status RunLs(const LsArgs& args) {
  SNUG_ASSIGN_OR_RETURN(auto store, store::Store::OpenDefault());
  SNUG_ASSIGN_OR_RETURN(auto records, store->List());
  auto budget = ResolveBudgetFromFlags(args.budget);
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : records) {
      LsFit fit = FitColumn(*store, r, budget);
      out.push_back({{"name", r.name},
                     {"size", r.size},
                     {"architecture", r.architecture},
                     {"quant", r.quant},
                     {"n_ctx_train", r.n_ctx_train},
                     {"sha256", r.sha256},
                     {"source", r.source},
                     {"added", r.added},
                     {"last_used", r.last_used},
                     {"fit", fit.json}});
    }
    fmt::print("{}\n", out.dump(2));
    return Status::Ok();
  }
  if (records.empty()) {
    fmt::print(stderr, "no models in {} yet: snug pull OWNER/REPO[:QUANT]\n", store->root());
    return Status::Ok();
  }
  size_t width = 4;
  for (const auto& r : records)
    width = std::max(width, r.name.size());
  fmt::print("{:<{}}  {:>10}  {:<12}  {:<9}  {:>10}  {}\n", "NAME", width, "SIZE", "ARCH", "QUANT",
             "CTX HERE", "LAST USED");
  for (const auto& r : records) {
    fmt::print("{:<{}}  {:>10}  {:<12}  {:<9}  {:>10}  {}\n", r.name, width, FormatSize(r.size),
               r.architecture, r.quant, FitColumn(*store, r, budget).text, FormatTime(r.last_used));
  }
  if (!budget.ok()) {
    fmt::print(stderr, "(cannot tell what fits here: {})\n", budget.status().message());
  }
  return Status::Ok();
}

Status RunRm(const std::vector<std::string>& names) {
  SNUG_ASSIGN_OR_RETURN(auto store, store::Store::OpenDefault());
  for (const std::string& name : names) {
    SNUG_ASSIGN_OR_RETURN(store::ModelRecord record, store->Get(name));
    SNUG_ASSIGN_OR_RETURN(store::RemoveResult result, store->Remove(record.name));
    std::string detail;
    if (!result.deleted_blobs.empty()) {
      detail = fmt::format("freed {}", FormatSize(record.size));
    }
    if (!result.kept_blobs.empty()) {
      detail += fmt::format("{}{} file(s) kept: used by another name or a running pull",
                            detail.empty() ? "" : "; ", result.kept_blobs.size());
    }
    fmt::print("removed {}{}\n", record.name, detail.empty() ? "" : " (" + detail + ")");
  }
  return Status::Ok();
}

struct ShowArgs {
  std::string name;
  bool json = false;
  BudgetFlags budget;
};

Status RunShow(const ShowArgs& args) {
  SNUG_ASSIGN_OR_RETURN(auto store, store::Store::OpenDefault());
  SNUG_ASSIGN_OR_RETURN(store::ModelRecord r, store->Get(args.name));
  SNUG_ASSIGN_OR_RETURN(std::string path, store->ModelPath(r));
  SNUG_ASSIGN_OR_RETURN(gguf::File header, gguf::ReadFile(path));
  std::string chat_template = header.GetString("tokenizer.chat_template").value_or("");
  std::string general_name = header.GetString("general.name").value_or("");
  int64_t n_layer = header.GetInt(header.ArchKey("block_count")).value_or(0);
  int64_t n_embd = header.GetInt(header.ArchKey("embedding_length")).value_or(0);
  auto budget = ResolveBudgetFromFlags(args.budget);
  Result<FitSummary> fit =
      budget.ok() ? FitHere(header, *budget) : Result<FitSummary>(budget.status());

  // What llama.cpp's chat layer makes of the template (tool-call format, thinking tags).
  Result<engine::ChatTemplateReport> chat = engine::DescribeChatTemplate(path);
  if (!chat.ok()) spdlog::debug("chat template not described: {}", chat.status().message());

  if (args.json) {
    nlohmann::json j = {{"name", r.name},
                        {"source", r.source},
                        {"sha256", r.sha256},
                        {"size", r.size},
                        {"path", path},
                        {"architecture", r.architecture},
                        {"quant", r.quant},
                        {"n_ctx_train", r.n_ctx_train},
                        {"n_layer", n_layer},
                        {"n_embd", n_embd},
                        {"general_name", general_name},
                        {"added", r.added},
                        {"last_used", r.last_used},
                        {"chat_template", chat_template}};
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : r.files) {
      files.push_back({{"filename", f.filename}, {"sha256", f.sha256}, {"size", f.size}});
    }
    j["files"] = files;
    if (chat.ok()) {
      j["chat_format"] = {{"tool_format", chat->info.tool_format},
                          {"supports_thinking", chat->info.supports_thinking},
                          {"thinking_start", chat->info.thinking_start},
                          {"thinking_end", chat->info.thinking_end},
                          {"caps", chat->info.caps}};
    }
    if (fit.ok()) {
      const plan::Plan& p = fit->default_plan.fits ? fit->default_plan : fit->best_plan;
      j["fit"] = {{"ok", p.fits},
                  {"n_ctx", p.settings.n_ctx},
                  {"kv_type", plan::KvTypeName(p.settings.kv_type)},
                  {"reason", p.fits ? p.reason : p.status.message()},
                  {"max_ctx",
                   {{"f16", p.max_ctx.f16}, {"q8_0", p.max_ctx.q8_0}, {"q4_0", p.max_ctx.q4_0}}}};
    } else {
      j["fit"] = {{"ok", false}, {"error", fit.status().message()}};
    }
    fmt::print("{}\n", j.dump(2));
    return Status::Ok();
  }
  fmt::print("name          {}\n", r.name);
  if (!general_name.empty()) fmt::print("model         {}\n", general_name);
  fmt::print("source        {}\n", r.source);
  fmt::print("architecture  {} ({} layers, embedding {})\n", r.architecture, n_layer, n_embd);
  fmt::print("quant         {}\n", r.quant.empty() ? "unknown" : r.quant);
  fmt::print("trained ctx   {}\n", r.n_ctx_train);
  fmt::print("size          {}{}\n", FormatSize(r.size),
             r.files.size() > 1 ? fmt::format(" in {} parts", r.files.size()) : "");
  fmt::print("sha256        {}\n", r.sha256);
  fmt::print("path          {}\n", path);
  fmt::print("added         {}\n", FormatTime(r.added));
  fmt::print("last used     {}\n", FormatTime(r.last_used));
  if (fit.ok()) {
    fmt::print("fit here      {}\n", fit->Describe());
    const plan::Plan& p = fit->default_plan.fits ? fit->default_plan : fit->best_plan;
    fmt::print("max ctx       f16 {} | q8_0 {} | q4_0 {}\n", p.max_ctx.f16, p.max_ctx.q8_0,
               p.max_ctx.q4_0);
  } else {
    fmt::print("fit here      unknown: {}\n", fit.status().message());
  }
  if (chat_template.empty()) {
    fmt::print("chat template none (a plain 'role: content' format; no tools)\n");
  } else {
    if (chat.ok()) {
      fmt::print(
          "chat format   tools: {}; thinking: {}\n", chat->info.tool_format,
          chat->info.supports_thinking
              ? fmt::format("yes ({} ... {})", chat->info.thinking_start, chat->info.thinking_end)
              : "no");
      std::vector<std::string> caps;
      for (const auto& [cap, on] : chat->info.caps) {
        if (on) caps.push_back(cap);
      }
      fmt::print("template caps {}\n", fmt::join(caps, ", "));
    }
    fmt::print("chat template\n{}\n", chat_template);
  }
  return Status::Ok();
}

}  // namespace

void AddStoreCommands(CLI::App& root, int* exit_code) {
  // Every MODEL argument (plan, run, serve) accepts store names through this lookup.
  SetStoreLookup([](const std::string& name) { return store::ResolveName(name); });

  AddPullCommands(root, exit_code);

  auto ls_args = std::make_shared<LsArgs>();
  auto* ls = root.add_subcommand("ls", "List local models and the context each gets here");
  ls->add_flag("--json", ls_args->json, "Print a JSON array");
  AddBudgetFlags(ls, &ls_args->budget);
  ls->callback([ls_args, exit_code] { *exit_code = Report(RunLs(*ls_args)); });

  auto rm_names = std::make_shared<std::vector<std::string>>();
  auto* rm = root.add_subcommand("rm", "Remove local models (and their files when unshared)");
  rm->add_option("NAME", *rm_names, "Store names")->required();
  rm->callback([rm_names, exit_code] { *exit_code = Report(RunRm(*rm_names)); });

  auto show_args = std::make_shared<ShowArgs>();
  auto* show = root.add_subcommand("show", "Show a local model's metadata, template and fit");
  show->add_option("NAME", show_args->name, "Store name")->required();
  show->add_flag("--json", show_args->json, "Print one JSON object");
  AddBudgetFlags(show, &show_args->budget);
  show->callback([show_args, exit_code] { *exit_code = Report(RunShow(*show_args)); });
}

}  // namespace snug::cli
