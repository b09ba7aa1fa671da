#include <fmt/format.h>

#include "engine/engine.h"
#include "server/respond.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {
namespace {

using nlohmann::json;

json PlanJson(const ModelPlan& plan) {
  json j = {{"n_ctx", plan.n_ctx},
            {"kv_type", plan.kv_type},
            {"n_gpu_layers", plan.n_gpu_layers},
            {"n_parallel", plan.n_parallel},
            {"flash_attn", plan.flash_attn},
            {"batch_invariant", plan.batch_invariant},
            {"peak_host_bytes", plan.peak_host_bytes},
            {"reason", plan.reason}};
  if (!plan.detail.is_null()) j["detail"] = plan.detail;
  return j;
}

}  // namespace

void AddManagementRoutes(Router& router, const RouteContext& ctx) {
  router.Get("/health", [ctx](HttpRequest&, HttpResponse& res) {
    if (*ctx.stopping) {
      SendStatus(res, Status::Unavailable("the server is shutting down"));
      return;
    }
    SendJson(res, 200, {{"status", "ok"}, {"models_loaded", ctx.pool->Running().size()}});
  });

  router.Get("/metrics", [ctx](HttpRequest&, HttpResponse& res) {
    res.SetContent(ctx.metrics->Render(*ctx.pool), "text/plain; version=0.0.4");
  });

  router.Post("/v1/models/load", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(req, res, [&](const RequestJson& body) {
      auto name = ParseModelField(body);
      if (!name.ok()) return SendStatus(res, name.status());
      if (Status loaded = ctx.pool->Load(*name); !loaded.ok()) return SendStatus(res, loaded);
      for (const auto& m : ctx.pool->Running()) {
        if (m.name == *name) {
          return SendJson(res, 200,
                          {{"model", m.name}, {"loaded", true}, {"plan", PlanJson(m.plan)}});
        }
      }
      SendJson(res, 200, {{"model", *name}, {"loaded", true}});
    });
  });
  router.Post("/v1/models/unload", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(req, res, [&](const RequestJson& body) {
      auto name = ParseModelField(body);
      if (!name.ok()) return SendStatus(res, name.status());
      if (Status unloaded = ctx.pool->Unload(*name); !unloaded.ok())
        return SendStatus(res, unloaded);
      SendJson(res, 200, {{"model", *name}, {"loaded", false}});
    });
  });

  router.Get("/v1/ps", [ctx](HttpRequest&, HttpResponse& res) {
    json models = json::array();
    for (const auto& m : ctx.pool->Running()) {
      models.push_back({{"name", m.name},
                        {"path", m.path},
                        {"plan", PlanJson(m.plan)},
                        {"allocated_bytes", m.allocated_bytes},
                        {"active", m.stats.active},
                        {"queued", m.stats.queued},
                        {"slots", m.stats.slots},
                        {"kv_cells_used", m.stats.kv_cells_used},
                        {"kv_cells_total", m.stats.kv_cells_total},
                        {"idle_seconds", m.idle_seconds},
                        {"expires_in_seconds", m.expires_in_seconds}});
    }
    SendJson(res, 200,
             {{"models", models},
              {"budget_bytes", ctx.pool->budget_bytes()},
              {"planned_bytes", ctx.pool->PlannedBytes()},
              {"resident_bytes", ProcessResidentBytes()}});
  });

  router.Get("/v1/hardware", [ctx](HttpRequest&, HttpResponse& res) {
    json hw = ctx.options->hardware ? ctx.options->hardware() : json::object();
    hw["serve_budget_bytes"] = ctx.pool->budget_bytes();
    hw["serve_planned_bytes"] = ctx.pool->PlannedBytes();
    SendJson(res, 200, hw);
  });

  router.Post("/v1/plan", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(req, res, [&](const RequestJson& body) {
      auto request = ParsePlanRequest(body);
      if (!request.ok()) return SendStatus(res, request.status());
      auto plan = ctx.pool->Plan(request->model,
                                 PlanOverrides{request->ctx, request->kv_type, request->model});
      if (!plan.ok()) return SendStatus(res, plan.status());
      json out = plan->detail.is_object() ? plan->detail : json::object();
      out["model_name"] = request->model;
      out["summary"] = PlanJson(*plan);
      SendJson(res, 200, out);
    });
  });

  // The prompt a chat request renders to, as llama-server's /apply-template answers it: for
  // checking a template (and snug's rendering against llama.cpp's) without generating.
  router.Post("/apply-template", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(req, res, [&](const RequestJson& body) {
      auto chat = ParseChatRequest(body);
      if (!chat.ok()) return SendStatus(res, chat.status());
      if (Status named = ResolveModelName(ctx, &chat->params.model); !named.ok()) {
        return SendStatus(res, named);
      }
      auto lease = ctx.pool->Acquire(chat->params.model);
      if (!lease.ok()) return SendStatus(res, lease.status());
      auto rendered = lease->scheduler().model().chat().Render(chat->input);
      if (!rendered.ok()) return SendStatus(res, rendered.status());
      SendJson(res, 200, {{"prompt", rendered->prompt}});
    });
  });
}

}  // namespace snug::server
