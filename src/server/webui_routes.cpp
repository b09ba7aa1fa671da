// The web page of `snug serve`: chat and a live picture of what uses memory. The page's files are
// built into the binary (webui_assets.h); the data it shows comes from the API routes the page
// calls with the user's key (/v1/models, /v1/chat/completions, /v1/ps, /v1/hardware) and from the
// two routes here: the pool's recent events and the fit of any model reference.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "server/events.h"
#include "server/respond.h"
#include "server/routes.h"
#include "server/webui_assets.h"

namespace snug::server {
namespace {

using nlohmann::json;

const WebAsset* FindAsset(std::string_view path) {
  for (const auto& asset : WebAssets()) {
    if (path == asset.path) return &asset;
  }
  return nullptr;
}

bool WantsHtml(const HttpRequest& req) {
  return req.Header("Accept").find("text/html") != std::string::npos;
}

void SendAsset(HttpResponse& res, const WebAsset& asset) {
  res.status = 200;
  res.SetContent(std::string(reinterpret_cast<const char*>(asset.data), asset.size),
                 asset.content_type);
  // The page loads nothing from elsewhere and runs no inline script, so a page that managed to
  // inject markup still could not run it or send data out.
  res.SetHeader("Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  res.SetHeader("X-Content-Type-Options", "nosniff");
  res.SetHeader("Referrer-Policy", "no-referrer");
  res.SetHeader("Cache-Control", "no-cache");
}

// "since=12&x=y" -> 12; absent or malformed: 0 (everything still held).
uint64_t SinceParam(const std::string& query) {
  size_t pos = 0;
  while (pos < query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    std::string_view pair(query.data() + pos, end - pos);
    if (pair.rfind("since=", 0) == 0) {
      const std::string value(pair.substr(6));
      char* stop = nullptr;
      const unsigned long long n = std::strtoull(value.c_str(), &stop, 10);
      return (stop && *stop == '\0') ? n : 0;
    }
    pos = end + 1;
  }
  return 0;
}

struct FitRequest {
  std::string model;
  PlanOverrides overrides;
};

Result<FitRequest> ParseFitRequest(const RequestJson& body) {
  FitRequest r;
  auto model = body.find("model");
  if (model == body.end() || !model->is_string() || model->get<std::string>().empty()) {
    return Status::InvalidArgument(
        "'model' must be a store name, a .gguf path on the server, an https:// URL, "
        "preset:NAME or a hub reference (owner/repo[:quant])");
  }
  r.model = model->get<std::string>();
  if (r.model.size() > 2048 || std::any_of(r.model.begin(), r.model.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20;
      })) {
    return Status::InvalidArgument("'model' is too long or holds control characters");
  }
  for (auto [key, out] :
       {std::pair{"ctx", &r.overrides.ctx}, std::pair{"kv_type", &r.overrides.kv_type}}) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) continue;
    if (it->is_number_integer() && it->get<int64_t>() > 0) {
      *out = std::to_string(it->get<int64_t>());
    } else if (it->is_string() && it->get<std::string>().size() <= 16) {
      *out = it->get<std::string>();
    } else {
      return Status::InvalidArgument(
          fmt::format("'{}' must be a short string or a positive integer", key));
    }
  }
  return r;
}

// Beside the plan: would the model load on this server now, next to the models it holds, and
// which idle ones it would evict (ModelPool's rule: least recently used, only if that frees
// enough; here approximated by all idle ones).
json ServerView(const RouteContext& ctx, const json& plan) {
  const uint64_t budget = ctx.pool->budget_bytes();
  const uint64_t planned = ctx.pool->PlannedBytes();
  const uint64_t free = budget > planned ? budget - planned : 0;
  uint64_t idle = 0;
  json loaded = json::array();
  for (const auto& m : ctx.pool->Running()) {
    loaded.push_back(m.name);
    if (m.stats.active == 0 && m.stats.queued == 0) idle += m.plan.peak_host_bytes;
  }
  json out = {{"budget_bytes", budget},
              {"planned_bytes", planned},
              {"free_bytes", free},
              {"idle_bytes", idle},
              {"loaded", std::move(loaded)}};
  const bool fits = plan.contains("fit") && plan["fit"].value("ok", false);
  if (fits && plan.contains("memory")) {
    const uint64_t needs = plan["memory"].value("peak_host_bytes", uint64_t{0});
    out["needs_bytes"] = needs;
    out["fits_now"] = needs <= free;
    out["fits_after_evicting_idle"] = needs <= free + idle;
  }
  return out;
}

}  // namespace

bool IsWebUiPageRequest(const HttpRequest& req, const ServerOptions& options) {
  if (!options.webui || (req.method != "GET" && req.method != "HEAD")) return false;
  if (req.path == "/") return WantsHtml(req);
  return req.path.rfind("/webui/", 0) == 0;
}

void AddWebUiRoutes(Router& router, const RouteContext& ctx) {
  router.Get("/", [ctx](HttpRequest& req, HttpResponse& res) {
    const WebAsset* page = ctx.options->webui ? FindAsset("/index.html") : nullptr;
    if (page && WantsHtml(req)) return SendAsset(res, *page);
    // Clients probe the root to see whether an Ollama server is there; some match this sentence.
    res.status = 200;
    res.SetContent("Ollama is running", "text/plain; charset=utf-8");
  });
  if (ctx.options->webui) {
    router.Get("/webui/*", [](HttpRequest& req, HttpResponse& res) {
      const WebAsset* asset = FindAsset("/" + req.path_tail);
      if (!asset) return SendError(res, ErrorForHttpStatus(404));
      SendAsset(res, *asset);
    });
  }

  // JSON, polled by the page: events after `since` (the last id it saw), oldest first.
  router.Get("/v1/events", [](HttpRequest& req, HttpResponse& res) {
    json events = json::array();
    for (const auto& e : PoolEvents().Since(SinceParam(req.query)))
      events.push_back(EventToJson(e));
    SendJson(res, 200, {{"events", std::move(events)}, {"last_id", PoolEvents().last_id()}});
  });

  router.Post("/v1/fit", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(req, res, [&](const RequestJson& body) {
      auto request = ParseFitRequest(body);
      if (!request.ok()) return SendStatus(res, request.status());
      // A name the server serves (a command-line file, the server's own store) is planned from
      // the file it would load; anything else as `snug plan` resolves it.
      std::string reference = request->model;
      const auto names = ctx.pool->KnownNames();
      const bool known = std::find(names.begin(), names.end(), request->model) != names.end();
      if (known) {
        auto path = ctx.pool->PathOf(request->model);
        if (!path.ok()) return SendStatus(res, path.status());
        reference = *path;
        request->overrides.name = request->model;
      }
      if (!ctx.options->plan_reference) {
        if (!known) {
          return SendStatus(res, Status::NotFound(fmt::format(
                                     "model '{}' is not known to this server", request->model)));
        }
        auto plan = ctx.pool->Plan(request->model, request->overrides);
        if (!plan.ok()) return SendStatus(res, plan.status());
        json out = plan->detail.is_object() ? plan->detail : json::object();
        out["model_name"] = request->model;
        out["server"] = ServerView(ctx, out);
        return SendJson(res, 200, out);
      }
      auto plan = ctx.options->plan_reference(reference, request->overrides);
      if (!plan.ok()) return SendStatus(res, plan.status());
      json out = std::move(*plan);
      out["model_name"] = request->model;
      if (known && out.contains("model")) out["model"]["source"] = "server";
      out["server"] = ServerView(ctx, out);
      SendJson(res, 200, out);
    });
  });
}

}  // namespace snug::server
