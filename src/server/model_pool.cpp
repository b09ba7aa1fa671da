#include "server/model_pool.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <set>

#include "core/memory.h"
#include "core/size.h"
#include "engine/engine.h"
#include "engine/probe.h"
#include "engine/workers.h"
#include "server/events.h"

namespace snug::server {

using Clock = std::chrono::steady_clock;

struct ModelPool::Entry {
  std::string name;
  std::string path;
  ModelPlan plan;
  std::unique_ptr<ModelScheduler> scheduler;
  std::atomic<int> leases{0};
  std::atomic<int64_t> released_at{0};  // steady-clock ns of the last lease release
  // A request's keep_alive for this model (AcquireOptions), in ms; kPoolKeepAlive: the server's.
  static constexpr int64_t kPoolKeepAlive = INT64_MIN;
  std::atomic<int64_t> keep_alive_ms{kPoolKeepAlive};

  Clock::time_point LastUsed() const {
    auto released = Clock::time_point(Clock::duration(released_at.load()));
    return std::max(released, scheduler->last_used());
  }
  bool Evictable() const { return leases.load() == 0 && scheduler->Idle(); }
  std::chrono::milliseconds KeepAlive(std::chrono::milliseconds pool_default) const {
    const int64_t ms = keep_alive_ms.load();
    return ms == kPoolKeepAlive ? pool_default : std::chrono::milliseconds(ms);
  }
  void Apply(const AcquireOptions& options) {
    if (options.keep_alive) keep_alive_ms.store(options.keep_alive->count());
  }
};

// ---------------------------------------------------------------------------------------------
// Lease

ModelPool::Lease::Lease(std::shared_ptr<Entry> entry) : entry_(std::move(entry)) {}
ModelPool::Lease::Lease(Lease&& other) noexcept : entry_(std::move(other.entry_)) {}
ModelPool::Lease& ModelPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    entry_ = std::move(other.entry_);
  }
  return *this;
}
ModelPool::Lease::~Lease() {
  Release();
}
void ModelPool::Lease::Release() {
  if (!entry_) return;
  entry_->released_at.store(Clock::now().time_since_epoch().count());
  entry_->leases.fetch_sub(1);
  entry_.reset();
}
ModelScheduler* ModelPool::Lease::operator->() const {
  return entry_->scheduler.get();
}
ModelScheduler& ModelPool::Lease::scheduler() const {
  return *entry_->scheduler;
}
const std::string& ModelPool::Lease::name() const {
  return entry_->name;
}

// ---------------------------------------------------------------------------------------------
// ModelPool

ModelPool::ModelPool(PoolOptions options) : options_(std::move(options)) {
  budget_bytes_.store(options_.budget_bytes);
  reaper_ = std::thread([this] { ReapLoop(); });
}

ModelPool::~ModelPool() {
  Shutdown(Status::Unavailable("the server is shutting down"));
}

Result<std::string> ModelPool::ResolvePath(const std::string& name) const {
  if (auto it = options_.files.find(name); it != options_.files.end()) return it->second;
  if (options_.resolver) {
    auto path = options_.resolver(name);
    if (path.ok()) return path;
    if (path.status().code() != Code::kNotFound) return path.status();
  }
  return Status::NotFound(fmt::format(
      "model '{}' is not loaded, was not given on the command line and is not in the local store "
      "(see 'snug ls', 'snug pull')",
      name));
}

Result<ModelPool::Lease> ModelPool::Acquire(const std::string& name,
                                            const AcquireOptions& options) {
  {
    std::lock_guard lock(mu_);
    if (shutting_down_) return Status::Unavailable("the server is shutting down");
    if (auto it = loaded_.find(name);
        it != loaded_.end() && it->second->plan.n_ctx >= options.min_ctx) {
      it->second->leases.fetch_add(1);
      it->second->Apply(options);
      return Lease(it->second);
    }
  }
  std::lock_guard load_lock(load_mu_);
  SNUG_ASSIGN_OR_RETURN(auto entry, LoadLocked(name, /*lease=*/true, options));
  return Lease(entry);
}

Status ModelPool::Load(const std::string& name, const AcquireOptions& options) {
  std::lock_guard load_lock(load_mu_);
  return LoadLocked(name, /*lease=*/false, options).status();
}

// Called with load_mu_ held: at most one load (and its evictions) at a time. With `lease`, the
// entry is leased under the pool lock so the reaper cannot unload it before the caller uses it.
Result<std::shared_ptr<ModelPool::Entry>> ModelPool::LoadLocked(const std::string& name, bool lease,
                                                                const AcquireOptions& options) {
  std::shared_ptr<Entry> smaller;  // loaded with less context than options.min_ctx
  {
    std::lock_guard lock(mu_);
    if (shutting_down_) return Status::Unavailable("the server is shutting down");
    if (auto it = loaded_.find(name); it != loaded_.end()) {
      if (it->second->plan.n_ctx >= options.min_ctx) {
        if (lease) it->second->leases.fetch_add(1);
        it->second->Apply(options);
        return it->second;
      }
      if (!it->second->Evictable()) {
        return Status::Unavailable(fmt::format(
            "model '{}' is loaded with a context of {} and serving requests; a context of {} "
            "needs it reloaded: retry when it is idle",
            name, it->second->plan.n_ctx, options.min_ctx));
      }
      smaller = it->second;
    }
  }
  SNUG_ASSIGN_OR_RETURN(std::string path, ResolvePath(name));
  if (!options_.planner) return Status::Internal("the server has no planner");
  const PoolBudget now = CurrentBudget();
  PlanOverrides defaults;
  defaults.name = name;
  Result<ModelPlan> planned = options_.planner(path, defaults);
  if (options.min_ctx > 0 && (!planned.ok() || planned->n_ctx < options.min_ctx)) {
    // The context the request asked for (Ollama's num_ctx), checked by the planner like --ctx:
    // when it cannot fit, the refusal names the largest context that does.
    PlanOverrides overrides = defaults;
    overrides.ctx = std::to_string(options.min_ctx);
    planned = options_.planner(path, overrides);
  }
  if (!planned.ok()) {
    if (planned.status().code() == Code::kDoesNotFit) {
      PoolEvents().Record("refuse", name, 0, planned.status().message());
    }
    return planned.status();
  }
  ModelPlan plan = std::move(*planned);
  if (smaller) {
    // The new plan fits the budget on its own; the old load makes way for it.
    {
      std::lock_guard lock(mu_);
      auto it = loaded_.find(name);
      if (it == loaded_.end() || it->second != smaller || !smaller->Evictable()) {
        return Status::Unavailable(
            fmt::format("model '{}' became busy while it was being reloaded with a context of "
                        "{}; retry",
                        name, options.min_ctx));
      }
      loaded_.erase(it);
    }
    spdlog::info("reloading model '{}' with a context of {} (was {})", name, plan.n_ctx,
                 smaller->plan.n_ctx);
    FreeOnLoader(smaller);
    smaller.reset();
  }

  // Make room: evict idle models, least recently used first, only if that frees enough.
  std::vector<std::shared_ptr<Entry>> victims;
  uint64_t free_after = 0;
  {
    std::lock_guard lock(mu_);
    const uint64_t planned = TakenLocked();
    const uint64_t budget = now.host_bytes;
    uint64_t free_now = budget > planned ? budget - planned : 0;
    if (plan.peak_host_bytes > free_now) {
      std::vector<std::shared_ptr<Entry>> idle;
      for (const auto& [_, e] : loaded_) {
        if (e->Evictable()) idle.push_back(e);
      }
      std::sort(idle.begin(), idle.end(),
                [](const auto& a, const auto& b) { return a->LastUsed() < b->LastUsed(); });
      uint64_t freed = 0;
      for (const auto& e : idle) {
        if (free_now + freed >= plan.peak_host_bytes) break;
        victims.push_back(e);
        freed += e->plan.peak_host_bytes;
      }
      if (free_now + freed < plan.peak_host_bytes) {
        std::string held;
        for (const auto& [n, e] : loaded_) {
          held +=
              fmt::format("{}{} {} ({})", held.empty() ? "" : ", ", n,
                          FormatSize(e->plan.peak_host_bytes), e->Evictable() ? "idle" : "busy");
        }
        Status refusal = Status::DoesNotFit(fmt::format(
            "model '{}' needs {} (planned peak at ctx {}, {} KV) but only {} of the {} budget "
            "({}) is free{}{}; unload a model or raise --memory-limit",
            name, FormatSize(plan.peak_host_bytes), plan.n_ctx, plan.kv_type,
            FormatSize(free_now + freed), FormatSize(budget), now.source,
            held.empty() ? "" : "; loaded: ", held));
        PoolEvents().Record("refuse", name, plan.peak_host_bytes, refusal.message());
        return refusal;
      }
      for (const auto& v : victims)
        loaded_.erase(v->name);
      free_after = free_now + freed;
    } else {
      free_after = free_now;
    }
  }
  for (auto& v : victims) {
    spdlog::info("evicting idle model '{}' ({}) to load '{}'", v->name,
                 FormatSize(v->plan.peak_host_bytes), name);
    FreeOnLoader(v);
    evictions_total_.fetch_add(1);
    PoolEvents().Record("evict", v->name, v->plan.peak_host_bytes,
                        fmt::format("evicted (idle) to make room for '{}'", name));
  }
  victims.clear();

  engine::ModelOptions model_options;
  model_options.path = path;
  model_options.n_gpu_layers = plan.n_gpu_layers;
  model_options.devices = plan.devices;
  model_options.chat_template = options_.chat_template;
  engine::ContextOptions context_options;
  // The plan's n_ctx is per sequence (slot); the scheduler caps each request at it.
  context_options.n_ctx = plan.n_ctx * std::max<uint32_t>(1, plan.n_parallel);
  context_options.kv_type = plan.kv_type;
  context_options.n_seq_max = std::max<uint32_t>(1, plan.n_parallel);
  context_options.kv_unified = plan.kv_unified;
  context_options.flash_attn = plan.flash_attn ? engine::FlashAttn::kAuto : engine::FlashAttn::kOff;
  context_options.batch_invariant = plan.batch_invariant;
  context_options.n_threads = options_.n_threads;
  context_options.n_threads_batch = options_.n_threads;
  engine::LoadBudget load_budget;
  load_budget.host_bytes = free_after;
  load_budget.source = now.source;
  load_budget.host_compute_untouched_bytes = plan.host_compute_untouched_bytes;
  if (options_.model_check) {
    // Once per file version and options: a file replaced in place is tried again.
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
    const std::string key = fmt::format("{}|{}|{}", size, mtime,
                                        engine::ProbeRequestJson(model_options, context_options));
    auto verdict = checked_.find(key);
    if (verdict == checked_.end()) {
      // The child reads the file on this host only: a worker serves one client at a time, and
      // the file's soundness does not depend on where its layers go.
      engine::ModelOptions local = model_options;
      if (!local.devices.empty()) {
        local.devices.clear();
        local.n_gpu_layers = 0;
      }
      verdict = checked_.emplace(key, options_.model_check(local, context_options)).first;
    }
    if (!verdict->second.ok()) return verdict->second;
  }
  auto entry = std::make_shared<Entry>();
  entry->name = name;
  entry->path = path;
  entry->plan = plan;
  SchedulerOptions scheduler_options = options_.scheduler;
  scheduler_options.max_sequence_tokens = plan.n_ctx;
  // The load owns its inputs and result: a load stuck on a lost worker is abandoned below and
  // must not touch this frame afterwards.
  struct LoadJob {
    engine::ModelOptions model;
    engine::ContextOptions context;
    engine::LoadBudget budget;
    std::string name;
    SchedulerOptions scheduler_options;
    Status status;
    std::unique_ptr<ModelScheduler> scheduler;
  };
  auto job = std::make_shared<LoadJob>();
  job->model = model_options;
  job->context = context_options;
  job->budget = load_budget;
  job->name = name;
  job->scheduler_options = scheduler_options;
  auto load = [job] {
    Result<engine::Loaded> loaded = engine::LoadFitted(job->model, job->context, job->budget);
    if (!loaded.ok()) {
      job->status = loaded.status();
      return;
    }
    job->scheduler =
        std::make_unique<ModelScheduler>(job->name, std::move(*loaded), job->scheduler_options);
  };
  std::shared_ptr<SerialThread> loader = Loader();
  if (plan.devices.empty()) {
    loader->Run(load);
  } else {
    std::string lost;
    auto worker_lost = [&] {
      for (const auto& d : plan.devices) {
        if (!d.rpc_endpoint.empty() && engine::WorkerLost(d.rpc_endpoint)) lost = d.rpc_endpoint;
      }
      return !lost.empty();
    };
    if (!loader->RunUnless(load, worker_lost, std::chrono::milliseconds(100))) {
      ReplaceStuckLoader(loader);
      PoolEvents().Record("lost", name, plan.peak_host_bytes,
                          fmt::format("worker {} was lost while the model loaded onto it", lost));
      return Status::Unavailable(fmt::format(
          "model '{}' could not load: worker {} stopped answering while its layers were sent to "
          "it",
          name, lost));
    }
  }
  SNUG_RETURN_IF_ERROR(job->status);
  entry->scheduler = std::move(job->scheduler);
  entry->released_at.store(Clock::now().time_since_epoch().count());
  loads_total_.fetch_add(1);
  PoolEvents().Record(
      "load", name, plan.peak_host_bytes,
      fmt::format("ctx {}, {} KV, {} slots", plan.n_ctx, plan.kv_type, plan.n_parallel));
  spdlog::info(
      "loaded model '{}' from {}: ctx {}, {} KV, {} slots, flash attention {}{}, planned {}", name,
      path, plan.n_ctx, plan.kv_type, plan.n_parallel, plan.flash_attn ? "on" : "off",
      plan.batch_invariant ? " (batched answers equal solo ones)" : "",
      FormatSize(plan.peak_host_bytes));
  entry->Apply(options);
  std::lock_guard lock(mu_);
  if (shutting_down_) return Status::Unavailable("the server is shutting down");
  if (lease) entry->leases.fetch_add(1);
  loaded_[name] = entry;
  return entry;
}

Status ModelPool::Unload(const std::string& name) {
  std::shared_ptr<Entry> victim;
  {
    std::lock_guard lock(mu_);
    auto it = loaded_.find(name);
    if (it == loaded_.end()) return Status::NotFound(fmt::format("model '{}' is not loaded", name));
    if (!it->second->Evictable()) {
      auto stats = it->second->scheduler->Stats();
      return Status::Unavailable(
          fmt::format("model '{}' is serving {} requests ({} waiting); unload it when it is idle",
                      name, stats.active, stats.queued));
    }
    victim = it->second;
    loaded_.erase(it);
  }
  FreeOnLoader(victim);
  spdlog::info("unloaded model '{}'", name);
  PoolEvents().Record("unload", name, victim->plan.peak_host_bytes, "unloaded on request");
  return Status::Ok();
}

Result<ModelPlan> ModelPool::Plan(const std::string& name, const PlanOverrides& overrides) {
  std::string path;
  {
    std::lock_guard lock(mu_);
    if (auto it = loaded_.find(name); it != loaded_.end()) path = it->second->path;
  }
  if (path.empty()) {
    SNUG_ASSIGN_OR_RETURN(path, ResolvePath(name));
  }
  if (!options_.planner) return Status::Internal("the server has no planner");
  PlanOverrides named = overrides;
  if (named.name.empty()) named.name = name;
  return options_.planner(path, named);
}

std::vector<RunningModel> ModelPool::Running() const {
  std::vector<RunningModel> out;
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  for (const auto& [name, e] : loaded_) {
    RunningModel m;
    m.name = name;
    m.path = e->path;
    m.plan = e->plan;
    m.allocated_bytes = e->scheduler->AllocatedBytes();
    m.stats = e->scheduler->Stats();
    auto idle = std::chrono::duration_cast<std::chrono::seconds>(now - e->LastUsed()).count();
    bool busy = !e->Evictable();
    m.idle_seconds = busy ? 0 : idle;
    const auto keep_alive = e->KeepAlive(options_.keep_alive);
    if (!busy && keep_alive.count() >= 0) {
      auto keep = std::chrono::duration_cast<std::chrono::seconds>(keep_alive).count();
      m.expires_in_seconds = std::max<int64_t>(0, keep - idle);
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> ModelPool::KnownNames() const {
  std::set<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, _] : loaded_)
      names.insert(name);
  }
  for (const auto& [name, _] : options_.files)
    names.insert(name);
  if (options_.lister) {
    for (auto& n : options_.lister())
      names.insert(n);
  }
  return {names.begin(), names.end()};
}

Result<std::string> ModelPool::DefaultModel() const {
  {
    std::lock_guard lock(mu_);
    if (loaded_.size() == 1) return loaded_.begin()->first;
  }
  const std::vector<std::string> names = KnownNames();
  if (names.size() == 1) return names.front();
  if (names.empty())
    return Status::InvalidArgument("'model' is required: this server has no models");
  std::string list;
  for (size_t i = 0; i < names.size() && i < 8; ++i)
    list += (i ? ", " : "") + names[i];
  if (names.size() > 8) list += ", ...";
  return Status::InvalidArgument(
      fmt::format("'model' is required: this server has {} models ({})", names.size(), list));
}

ModelPool::Reservation::Reservation(Reservation&& other) noexcept
    : pool_(other.pool_), bytes_(other.bytes_) {
  other.pool_ = nullptr;
}

ModelPool::Reservation::~Reservation() {
  if (pool_ == nullptr) return;
  std::lock_guard lock(pool_->mu_);
  pool_->reserved_ -= bytes_;
}

Result<ModelPool::Reservation> ModelPool::Reserve(uint64_t bytes, const std::string& what) {
  const PoolBudget now = CurrentBudget();
  std::lock_guard lock(mu_);
  const uint64_t taken = TakenLocked();
  const uint64_t free = now.host_bytes > taken ? now.host_bytes - taken : 0;
  if (bytes > free) {
    return Status::DoesNotFit(fmt::format(
        "{} needs {} but only {} of the {} budget ({}) is free beside the loaded models; send "
        "shorter inputs or fewer at once, or unload a model",
        what, FormatSize(bytes), FormatSize(free), FormatSize(now.host_bytes), now.source));
  }
  reserved_ += bytes;
  return Reservation(this, bytes);
}

PoolBudget ModelPool::CurrentBudget() {
  PoolBudget now{options_.budget_bytes, options_.budget_source};
  if (options_.budget_probe) now = options_.budget_probe();
  budget_bytes_.store(now.host_bytes);
  return now;
}

uint64_t ModelPool::TakenLocked() const {
  uint64_t taken = reserved_;
  for (const auto& [_, e] : loaded_)
    taken += e->plan.peak_host_bytes;
  for (const auto& e : lost_)
    taken += e->plan.peak_host_bytes;
  return taken;
}

void ModelPool::OnWorkerLost(const std::string& endpoint, const std::string& what) {
  std::vector<std::shared_ptr<Entry>> hit;
  {
    std::lock_guard lock(mu_);
    for (auto it = loaded_.begin(); it != loaded_.end();) {
      bool uses = false;
      for (const auto& d : it->second->plan.devices)
        uses = uses || d.rpc_endpoint == endpoint;
      if (uses) {
        hit.push_back(it->second);
        lost_.push_back(it->second);
        it = loaded_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& e : hit) {
    spdlog::error("model '{}': {}", e->name, what);
    e->scheduler->Abandon(Status::Unavailable(fmt::format("model '{}': {}", e->name, what)));
    PoolEvents().Record("lost", e->name, e->plan.peak_host_bytes, what);
  }
}

uint64_t ModelPool::PlannedBytes() const {
  std::lock_guard lock(mu_);
  uint64_t sum = 0;
  for (const auto& [_, e] : loaded_)
    sum += e->plan.peak_host_bytes;
  return sum;
}

std::shared_ptr<SerialThread> ModelPool::Loader() {
  std::lock_guard lock(loader_mu_);
  return loader_;
}

void ModelPool::ReplaceStuckLoader(const std::shared_ptr<SerialThread>& stuck) {
  std::lock_guard lock(loader_mu_);
  if (loader_ != stuck) return;
  new std::shared_ptr<SerialThread>(loader_);  // never destroyed: it would join a stuck thread
  loader_ = std::make_shared<SerialThread>();
}

void ModelPool::FreeOnLoader(const std::shared_ptr<Entry>& entry) {
  auto free_it = [entry] {
    entry->scheduler.reset();  // joins its thread and frees the context and weights
    ReturnFreedMemoryToSystem();
  };
  std::shared_ptr<SerialThread> loader = Loader();
  if (entry->plan.devices.empty()) {
    loader->Run(free_it);
    return;
  }
  auto worker_lost = [&] {
    for (const auto& d : entry->plan.devices) {
      if (!d.rpc_endpoint.empty() && engine::WorkerLost(d.rpc_endpoint)) return true;
    }
    return false;
  };
  if (!loader->RunUnless(free_it, worker_lost, std::chrono::milliseconds(100))) {
    ReplaceStuckLoader(loader);
    spdlog::error("model '{}' could not be freed: a worker holding its layers was lost",
                  entry->name);
  }
}

void ModelPool::ReapLoop() {
  std::unique_lock lock(reap_mu_);
  while (!stop_reaper_) {
    reap_cv_.wait_for(lock, std::chrono::milliseconds(250));
    if (stop_reaper_) continue;
    std::vector<std::shared_ptr<Entry>> expired;
    {
      std::lock_guard pool_lock(mu_);
      const auto now = Clock::now();
      for (auto it = loaded_.begin(); it != loaded_.end();) {
        const auto keep_alive = it->second->KeepAlive(options_.keep_alive);
        if (keep_alive.count() >= 0 && it->second->Evictable() &&
            now - it->second->LastUsed() >= keep_alive) {
          expired.push_back(it->second);
          it = loaded_.erase(it);
        } else {
          ++it;
        }
      }
    }
    lock.unlock();
    for (auto& e : expired) {
      spdlog::info("unloading model '{}': idle for the keep-alive period", e->name);
      PoolEvents().Record("expire", e->name, e->plan.peak_host_bytes,
                          "unloaded: idle for the keep-alive period");
      FreeOnLoader(e);
    }
    lock.lock();
  }
}

void ModelPool::Shutdown(const Status& reason) {
  {
    std::lock_guard lock(reap_mu_);
    stop_reaper_ = true;
    reap_cv_.notify_all();
  }
  if (reaper_.joinable()) reaper_.join();
  std::map<std::string, std::shared_ptr<Entry>> all;
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
    all.swap(loaded_);
  }
  // Tell every scheduler first so in-flight streams end together, then free the models.
  for (auto& [_, e] : all)
    e->scheduler->Shutdown(reason);
  for (auto& [_, e] : all) {
    // A model a request still holds is freed with its last lease, wherever that ends.
    if (e.use_count() == 1) FreeOnLoader(e);
  }
  all.clear();
  // Models lost with a worker cannot be freed (their threads never return): left to the exit.
  std::lock_guard lock(mu_);
  for (auto& e : lost_)
    new std::shared_ptr<Entry>(std::move(e));  // deliberately leaked
  lost_.clear();
}

}  // namespace snug::server
