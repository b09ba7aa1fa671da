// snug serve [MODEL...]: the OpenAI-compatible server. Thin glue: parses flags, resolves the
// budget (and re-reads it before each load, LiveBudget), gives the server a planner (plan::Fit
// against that budget) and the store's name resolver, loads the MODELs given here, then serves
// until SIGTERM/SIGINT.
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/command.h"
#include "cli/live_budget.h"
#include "cli/model_check.h"
#include "cli/model_source.h"
#include "cli/serve_plan.h"
#include "cli/serve_store.h"
#include "cli/worker_budget.h"
#include "config/env.h"
#include "core/memory.h"
#include "core/size.h"
#include "engine/engine.h"
#include "engine/workers.h"
#include "hw/detect.h"
#include "hw/json.h"
#include "plan/fit.h"
#include "plan/hosts.h"
#include "plan/json.h"
#include "plan/shape.h"
#include "server/http_server.h"
#include "server/model_pool.h"
#include "server/wire.h"
#include "store/store.h"

namespace snug::cli {
namespace {

struct ServeArgs {
  std::vector<std::string> models;
  std::string host = "127.0.0.1";
  int port = 11435;
  std::string api_key;
  bool insecure = false;
  std::string models_dir;
  std::string keep_alive = "5m";
  int queue = 64;
  double queue_timeout_s = 30;
  std::string cors;
  std::string body_limit = "8MiB";
  int threads = 0;
  int http_threads = 96;
  FitFlags fit;
  bool batch_invariant = false;
  std::string chat_template_file;
  bool no_webui = false;
};

// "5m", "30s", "1h", "250ms", "90" (seconds); "-1", "never" or "forever": keep loaded.
Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  if (text == "-1" || text == "never" || text == "forever") return std::chrono::milliseconds(-1);
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    pos = 0;
  }
  const std::string unit = text.substr(pos);
  double scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  if (unit == "ms") scale = 1;
  if (unit == "m") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  if (pos == 0 || scale == 0 || value < 0) {
    return Status::InvalidArgument(fmt::format(
        "--keep-alive '{}' is not a duration: use e.g. 30s, 5m, 1h, or -1 to never unload", text));
  }
  return std::chrono::milliseconds(static_cast<int64_t>(value * scale));
}

std::string Stem(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0)
    name.resize(name.size() - 5);
  return name;
}

Result<server::ModelPlan> PlanFile(const std::string& path, const server::PlanOverrides& overrides,
                                   const FitFlags& fit, bool batch_invariant,
                                   const hw::Budget& budget) {
  SNUG_ASSIGN_OR_RETURN(plan::Request request, ServePlanRequest(fit, overrides, batch_invariant));
  SNUG_ASSIGN_OR_RETURN(ModelSource src, ResolveModel(path));
  SNUG_ASSIGN_OR_RETURN(plan::ModelShape shape, plan::ShapeFromGguf(src.file));
  // A store model's file is a blob named by its hash: messages use the name requests use.
  shape.name = overrides.name.empty() ? src.name : overrides.name;
  hw::Budget with_workers = budget;
  SNUG_RETURN_IF_ERROR(AddWorkers(fit.workers, WorkerUse::kServe, &with_workers));
  SNUG_ASSIGN_OR_RETURN(plan::Plan p, plan::Fit(shape, with_workers, request));
  if (!p.fits) {
    const Status refusal = p.status.ok() ? Status::DoesNotFit(p.reason) : p.status;
    return Status(refusal.code(), refusal.message() + LostWorkersNote(fit.workers));
  }
  server::ModelPlan out;
  out.devices = DeviceSlicesFor(p.settings);
  out.n_ctx = p.settings.n_ctx;
  out.kv_type = plan::KvTypeName(p.settings.kv_type);
  out.n_gpu_layers = p.settings.NGpuLayers();
  out.n_parallel = p.settings.n_parallel;
  out.flash_attn = p.settings.flash_attn;
  out.kv_unified = p.settings.kv_unified;
  out.batch_invariant = p.batch_invariant;
  out.peak_host_bytes = p.memory.peak_host_bytes;
  if (!out.devices.empty()) {
    // The file pages read only to be sent to workers are clean page cache, dropped under
    // pressure: they would make the pool refuse a split model whose resident part fits.
    uint64_t sent = 0;
    for (const auto& d : p.memory.per_device)
      sent += d.host.empty() ? 0 : d.weights_bytes;
    out.peak_host_bytes -= std::min(out.peak_host_bytes - p.memory.host_required_bytes, sent);
  }
  out.host_compute_untouched_bytes =
      p.memory.host_compute_bytes - p.memory.host_compute_touched_bytes;
  out.reason = p.reason;
  out.detail = {{"model", plan::ModelToJson(shape)},
                {"budget", hw::BudgetToJson(with_workers)},
                {"fit", plan::FitToJson(p)},
                {"memory", plan::MemoryToJson(p.memory)},
                {"max_ctx", plan::MaxCtxToJson(p.max_ctx)}};
  if (!with_workers.workers.empty()) {
    out.detail["hosts"] = plan::HostsToJson(plan::HostRows(shape, p, with_workers));
  }
  return out;
}

// The signals that end the server. SIGHUP (the terminal closed) ends it as SIGTERM does, so open
// streams still get their final event instead of the process dying mid-write.
sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// The shutdown signals are blocked in every thread and taken here, so the shutdown runs in plain
// code (not a signal handler) and in-flight streams get their final event.
int WaitForSignal(const std::atomic<bool>& serving) {
  const sigset_t set = ShutdownSignals();
  timespec tick{0, 200'000'000};
  while (serving.load()) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

Status RunServe(const ServeArgs& args) {
  ConfigureHeapForServer();  // before any thread starts (core/memory.h says why)
  // Block the signals before any thread starts: threads inherit the mask.
  const sigset_t set = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  server::ServerOptions http_options;
  http_options.host = args.host;
  http_options.port = args.port;
  http_options.api_key = args.api_key;
  http_options.insecure = args.insecure;
  http_options.system_fingerprint =
      fmt::format("snug-{}-llama.cpp-{}", SNUG_VERSION, SNUG_LLAMA_COMMIT);
  http_options.cors_origin = args.cors;
  http_options.http_threads = args.http_threads;
  SNUG_ASSIGN_OR_RETURN(uint64_t body_limit, ParseSize(args.body_limit));
  http_options.body_limit = body_limit;
  SNUG_RETURN_IF_ERROR(server::CheckBindPolicy(http_options));

  SNUG_ASSIGN_OR_RETURN(auto keep_alive, ParseDuration(args.keep_alive));
  SNUG_ASSIGN_OR_RETURN(
      plan::Request defaults,
      plan::ParseRequest(args.fit.ctx, args.fit.kv_type, args.fit.ngl, args.fit.parallel));
  (void)defaults;  // validated once here; each model is planned with the same flags
  SNUG_ASSIGN_OR_RETURN(hw::BudgetOptions budget_options,
                        hw::BudgetOptionsFromFlags(args.fit.memory_limit, args.fit.headroom,
                                                   args.fit.hw_profile, args.fit.vram_limit));
  SNUG_ASSIGN_OR_RETURN(hw::Budget budget, hw::ResolveBudget(budget_options));
  engine::InitBackend();

  server::PoolOptions pool_options;
  if (!args.chat_template_file.empty()) {
    SNUG_ASSIGN_OR_RETURN(pool_options.chat_template,
                          ReadFlagFile(args.chat_template_file, "chat template file"));
  }
  pool_options.budget_bytes = budget.host_bytes;
  pool_options.budget_source = budget.detail.empty() ? budget.source : budget.detail;
  pool_options.keep_alive = keep_alive;
  pool_options.scheduler.queue_limit = static_cast<size_t>(std::max(0, args.queue));
  pool_options.scheduler.queue_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(args.queue_timeout_s * 1000));
  pool_options.n_threads = args.threads;
  const FitFlags fit = args.fit;
  const bool batch_invariant = args.batch_invariant;
  auto live = std::make_shared<LiveBudget>(budget_options, budget);
  pool_options.budget_probe = [live] {
    const hw::Budget b = live->Current();
    return server::PoolBudget{b.host_bytes, b.detail.empty() ? b.source : b.detail};
  };
  pool_options.planner = [fit, batch_invariant, live](const std::string& path,
                                                      const server::PlanOverrides& overrides) {
    return PlanFile(path, overrides, fit, batch_invariant, live->Current());
  };
  // A model is tried in a child process before this process first loads it: llama.cpp aborts
  // on some malformed files, and the server must outlive them (engine/probe.h).
  std::error_code self_error;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", self_error).string();
  if (!self_error) {
    pool_options.model_check = [self](const engine::ModelOptions& model,
                                      const engine::ContextOptions& context) {
      return CheckModelInChild(self, model, context, std::chrono::seconds(120));
    };
  }
  const std::string models_dir = args.models_dir;
  pool_options.resolver = [models_dir](const std::string& name) -> Result<std::string> {
    if (models_dir.empty()) return store::ResolveName(name);
    SNUG_ASSIGN_OR_RETURN(auto store, store::Store::Open(models_dir));
    SNUG_ASSIGN_OR_RETURN(auto record, store->Get(name));
    return store->ModelPath(record);
  };
  pool_options.lister = [models_dir]() {
    std::vector<std::string> names;
    std::string root = models_dir.empty() ? env::DataDir() : models_dir;
    if (!std::filesystem::exists(root + "/registry.db")) return names;
    auto store = store::Store::Open(root);
    if (!store.ok()) return names;
    auto records = (*store)->List();
    if (!records.ok()) return names;
    for (const auto& r : *records)
      names.push_back(r.name);
    return names;
  };

  // MODELs on the command line: files are named by their stem, store names by themselves.
  std::vector<std::string> startup;
  for (const auto& model : args.models) {
    SNUG_ASSIGN_OR_RETURN(ModelSource src, ResolveModel(model));
    if (src.kind == "file") {
      const std::string name = Stem(src.location);
      SNUG_RETURN_IF_ERROR(server::ValidateModelName(name).WithContext(
          fmt::format("the file name of {} cannot be used as a model name", model)));
      pool_options.files[name] = std::filesystem::absolute(src.location).string();
      startup.push_back(name);
    } else if (src.kind == "store") {
      startup.push_back(src.location);
    } else {
      return Status::InvalidArgument(fmt::format(
          "'{}' is a {}: serve needs a local file or a stored model (snug pull it first)", model,
          src.kind));
    }
  }

  fmt::print(stderr, "snug: budget {} ({}), keep-alive {}, {} slots per model\n",
             FormatSize(budget.host_bytes), pool_options.budget_source, args.keep_alive,
             args.fit.parallel);
  server::ModelPool pool(pool_options);
  // A worker lost mid-request ends the requests of the models on it; the rest keep serving.
  engine::SetWorkerLostHandler([&pool](const std::string& endpoint, const std::string& what) {
    pool.OnWorkerLost(endpoint, what);
  });
  struct ForgetHandler {
    ~ForgetHandler() { engine::SetWorkerLostHandler(nullptr); }
  } forget_handler;
  http_options.store = MakeStoreHooks(models_dir, live);
  http_options.webui = !args.no_webui;
  http_options.plan_reference = MakePlanReferenceHook(models_dir, fit, batch_invariant, live);
  http_options.hardware = [live] {
    nlohmann::json j = {{"budget", hw::BudgetToJson(live->Current())}};
    if (auto host = hw::ProbeHost(""); host.ok()) j["host"] = hw::HostInfoToJson(*host);
    return j;
  };
  // Take the port before loading anything: a busy port is a one-line error at once, not after
  // minutes of loading (and never a second listener on it: see HttpServer::Bind).
  server::HttpServer http(http_options, &pool);
  SNUG_ASSIGN_OR_RETURN(int port, http.Bind());
  for (const auto& name : startup) {
    SNUG_RETURN_IF_ERROR(pool.Load(name).WithContext(fmt::format("loading '{}'", name)));
    for (const auto& m : pool.Running()) {
      if (m.name != name) continue;
      fmt::print(stderr,
                 "snug: loaded {}: ctx {} x {} slots, {} KV, {} GPU layers, planned {} ({})\n",
                 name, m.plan.n_ctx, m.plan.n_parallel, m.plan.kv_type, m.plan.n_gpu_layers,
                 FormatSize(m.plan.peak_host_bytes), m.plan.reason);
    }
  }

  // Tests and scripts read the port from this line (with --port 0 it is chosen by the OS).
  fmt::print("snug: listening on {}:{}\n", args.host, port);
  std::fflush(stdout);

  std::atomic<bool> serving{true};
  std::thread serve_thread([&] {
    http.Serve();
    serving.store(false);
  });
  int sig = WaitForSignal(serving);
  if (sig != 0) {
    fmt::print(stderr, "snug: {} received, shutting down\n",
               sig == SIGINT   ? "SIGINT"
               : sig == SIGHUP ? "SIGHUP"
                               : "SIGTERM");
  }
  http.Stop(Status::Unavailable("the server is shutting down"));
  serve_thread.join();
  pool.Shutdown(Status::Unavailable("the server is shutting down"));
  return Status::Ok();
}

}  // namespace

void AddServeCommand(CLI::App& root, int* exit_code) {
  auto args = std::make_shared<ServeArgs>();
  args->fit.parallel = 4;
  auto* cmd = root.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API");
  cmd->add_option("MODEL", args->models,
                  "Models to load at start-up: .gguf files (named by file name without .gguf) "
                  "or stored model names");
  cmd->add_option("--host", args->host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", args->port, "Port (default 11435; 0 = any free port)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", args->api_key, "Require 'Authorization: Bearer KEY' (not /health)");
  cmd->add_flag("--insecure", args->insecure, "Allow a non-loopback address without --api-key");
  cmd->add_option("--models-dir", args->models_dir,
                  "Model store to resolve names in (default: the store under SNUG_HOME)");
  cmd->add_option("--keep-alive", args->keep_alive,
                  "Unload a model idle this long (30s, 5m, 1h; -1 = never; default 5m)");
  cmd->add_option("--queue", args->queue, "Requests per model waiting for room (default 64)")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--queue-timeout", args->queue_timeout_s,
                  "Seconds a request may wait for room before 503 (default 30)")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--cors", args->cors, "Allow browser requests from this origin");
  cmd->add_option("--body-limit", args->body_limit, "Largest request body (default 8MiB)");
  cmd->add_option("--threads", args->threads,
                  "Decode threads per model (default: all usable cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--http-threads", args->http_threads, "Connections served at once (default 96)")
      ->check(CLI::Range(8, 4096));
  cmd->add_flag("--batch-invariant", args->batch_invariant,
                "Give each request exactly the answer it gets alone, whatever else runs beside it "
                "(flash attention off, f16 KV, CPU only; slower)");
  cmd->add_option("--chat-template", args->chat_template_file,
                  "Jinja chat template file used instead of each model's own");
  cmd->add_flag("--no-webui", args->no_webui,
                "Serve no web page at / (the API, and Ollama's answer at /, stay)");
  AddFitFlags(cmd, &args->fit);
  cmd->callback([args, exit_code] { *exit_code = Report(RunServe(*args)); });
}

}  // namespace snug::cli
