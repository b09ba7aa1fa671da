#include "cli/serve_plan.h"

#include <fmt/format.h>

#include <filesystem>

#include "cli/model_source.h"
#include "cli/plan_report.h"
#include "cli/worker_budget.h"
#include "gguf/remote.h"
#include "gguf/validate.h"
#include "plan/fit.h"
#include "plan/shape.h"
#include "store/ref.h"
#include "store/store.h"

namespace snug::cli {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A hub ref is read from the repo's file listing and the chosen file's header, as `snug pull`
// checks the fit before downloading.
Result<ModelSource> FromHub(const std::string& text, const std::string& models_dir) {
  SNUG_ASSIGN_OR_RETURN(store::PullRef ref, store::ParseRef(text));
  if (ref.kind != store::PullRef::Kind::kHub) {
    return Status::NotFound(fmt::format("no model file or name '{}'", text));
  }
  SNUG_ASSIGN_OR_RETURN(auto store, models_dir.empty() ? store::Store::OpenDefault()
                                                       : store::Store::Open(models_dir));
  SNUG_ASSIGN_OR_RETURN(store::PullSource source, store->ResolvePull(ref, ""));
  gguf::RemoteOptions remote;
  remote.bearer_token = source.http.bearer_token;
  SNUG_ASSIGN_OR_RETURN(gguf::File file, gguf::ReadRemote(source.files.front().url, remote));
  SNUG_RETURN_IF_ERROR(gguf::ValidateModel(file));
  ModelSource src;
  src.file = std::move(file);
  src.kind = "hub";
  src.location = source.files.front().url;
  src.name = source.name;
  return src;
}

Result<ModelSource> Resolve(const std::string& model, const std::string& models_dir) {
  // The API reads headers of .gguf files only: other files on the server are not its business,
  // and the answer for one is the same as for a path that does not exist.
  std::error_code ec;
  if (!EndsWith(model, ".gguf") && std::filesystem::is_regular_file(model, ec)) {
    return Status::NotFound(fmt::format("no such model file: {}", model));
  }
  auto src = ResolveModel(model);
  if (src.ok() || src.status().code() != Code::kNotFound) return src;
  const bool maybe_hub = model.find('/') != std::string::npos && model[0] != '/' &&
                         model[0] != '.' && model[0] != '~' && !EndsWith(model, ".gguf");
  if (!maybe_hub) return src.status();
  return FromHub(model, models_dir);
}

}  // namespace

Result<plan::Request> ServePlanRequest(const FitFlags& fit, const server::PlanOverrides& overrides,
                                       bool batch_invariant) {
  SNUG_ASSIGN_OR_RETURN(
      plan::Request request,
      plan::ParseRequest(overrides.ctx.empty() ? fit.ctx : overrides.ctx,
                         overrides.kv_type.empty() ? fit.kv_type : overrides.kv_type, fit.ngl,
                         fit.parallel));
  request.batch_invariant = batch_invariant;
  return request;
}

decltype(server::ServerOptions::plan_reference) MakePlanReferenceHook(
    const std::string& models_dir, const FitFlags& fit, bool batch_invariant,
    std::shared_ptr<LiveBudget> live) {
  return [models_dir, fit, batch_invariant, live](
             const std::string& model,
             const server::PlanOverrides& overrides) -> Result<nlohmann::json> {
    SNUG_ASSIGN_OR_RETURN(plan::Request request, ServePlanRequest(fit, overrides, batch_invariant));
    SNUG_ASSIGN_OR_RETURN(ModelSource src, Resolve(model, models_dir));
    SNUG_ASSIGN_OR_RETURN(plan::ModelShape shape, plan::ShapeFromGguf(src.file));
    // A store model's file is a blob named by its hash: messages use the name the user typed.
    shape.name = overrides.name.empty() ? src.name : overrides.name;
    hw::Budget budget = live->Current();
    SNUG_RETURN_IF_ERROR(AddWorkers(fit.workers, WorkerUse::kPlan, &budget));
    SNUG_ASSIGN_OR_RETURN(plan::Plan p, plan::Fit(shape, budget, request));
    // A plan that does not fit is an answer (fit.ok false, fit.reason with the numbers), as
    // `snug plan --json` prints it before exiting 3.
    nlohmann::json out = PlanReportJson(src, shape, budget, p);
    out["request"] = {{"ctx", overrides.ctx.empty() ? fit.ctx : overrides.ctx},
                      {"kv_type", overrides.kv_type.empty() ? fit.kv_type : overrides.kv_type},
                      {"ngl", fit.ngl},
                      {"parallel", fit.parallel},
                      {"batch_invariant", batch_invariant}};
    return out;
  };
}

}  // namespace snug::cli
