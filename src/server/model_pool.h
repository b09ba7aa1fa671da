// The set of loaded models and the memory they are planned to use. A request names a model; the
// pool loads it on demand if its planned peak fits beside the loaded ones, else evicts idle models
// least-recently-used first — only when that frees enough — else refuses with DoesNotFit and the
// numbers. Idle models unload after the keep-alive period.
//
// Names map to files only through the operator: files given on the command line, or the local
// store's registry (via the injected resolver). A name sent over the API never opens a path.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/serial_thread.h"
#include "core/status.h"
#include "server/scheduler.h"

namespace snug::server {

// What the planner decided for one model (src/plan via the cli glue).
struct ModelPlan {
  uint32_t n_ctx = 0;  // per sequence (plan::Settings::n_ctx); the context holds n_ctx x n_parallel
  std::string kv_type = "f16";
  int n_gpu_layers = 0;
  uint32_t n_parallel = 1;
  bool flash_attn = true;
  bool kv_unified = false;  // one KV buffer for all slots (else one stream per slot)
  // Batched answers equal solo ones bit for bit (plan::Plan::batch_invariant).
  bool batch_invariant = false;
  uint64_t peak_host_bytes = 0;
  uint64_t host_compute_untouched_bytes = 0;  // engine::LoadBudget's figure, from the plan
  // Layers placed on workers (engine::ModelOptions::devices); empty on this host alone.
  std::vector<engine::DeviceSlice> devices;
  std::string reason;
  nlohmann::json detail;  // the full plan as `snug plan --json` prints it
};

struct PlanOverrides {
  std::string ctx;      // "" = server default
  std::string kv_type;  // "" = server default
  std::string name;     // the model as requests name it, for messages ("" = from the file)
};

// Plans a model file against the server's budget. DoesNotFit with the numbers when it cannot.
using Planner = std::function<Result<ModelPlan>(const std::string& path, const PlanOverrides&)>;
// Store name -> local file; NotFound when the store has no such model.
using NameResolver = std::function<Result<std::string>(const std::string& name)>;
// Names the store holds (for GET /v1/models).
using NameLister = std::function<std::vector<std::string>()>;

struct PoolBudget {
  uint64_t host_bytes = 0;  // host memory the loaded models' planned peaks may sum to
  std::string source;       // "cgroup v1 limit ...", "override", ... (named in DoesNotFit messages)
};
// The budget as it is now: called before every load, so memory other processes took since the
// server started is respected.
using BudgetProbe = std::function<PoolBudget()>;

// Tries a model apart from the server's process before its first load, with the options it will
// load with (cli: `snug probe-model` in a child, engine/probe.h). Corrupt when it failed or
// crashed.
using ModelCheck =
    std::function<Status(const engine::ModelOptions& model, const engine::ContextOptions& context)>;

struct PoolOptions {
  uint64_t budget_bytes = 0;  // the start-up budget (see PoolBudget)
  std::string budget_source;
  BudgetProbe budget_probe;  // may be empty: the start-up budget holds throughout
  std::chrono::milliseconds keep_alive{5 * 60 * 1000};  // < 0: never unload idle models
  Planner planner;
  NameResolver resolver;                     // may be empty (no store)
  NameLister lister;                         // may be empty
  std::map<std::string, std::string> files;  // names from the command line -> paths
  SchedulerOptions scheduler;
  int n_threads = 0;          // engine threads; 0 = all cores
  std::string chat_template;  // Jinja text that replaces every model's own ("" = the GGUF's)
  ModelCheck model_check;     // may be empty: models load unchecked
};

// How a request wants its model: Ollama clients ask for a context size (num_ctx) and say how long
// the model should stay loaded after them (keep_alive).
struct AcquireOptions {
  // 0: the context the planner picks by default. Else the model needs at least this context per
  // sequence: a model loaded with less is reloaded with this much once idle (the planner checks
  // the fit; DoesNotFit names the largest context that fits), Unavailable while it is busy.
  uint32_t min_ctx = 0;
  // This model's keep-alive from now on, replacing the server's: < 0 never unload, 0 unload as
  // soon as it is idle. Unset: unchanged.
  std::optional<std::chrono::milliseconds> keep_alive;
};

struct RunningModel {
  std::string name;
  std::string path;
  ModelPlan plan;
  uint64_t allocated_bytes = 0;  // what llama.cpp allocated
  SchedulerStats stats;
  int64_t idle_seconds = 0;
  int64_t expires_in_seconds = -1;  // -1: never (busy or keep-alive forever)
};

class ModelPool {
 public:
  explicit ModelPool(PoolOptions options);
  ~ModelPool();
  ModelPool(const ModelPool&) = delete;
  ModelPool& operator=(const ModelPool&) = delete;

  struct Entry;
  // Keeps a model loaded (not evictable) while a request uses it.
  class Lease {
   public:
    Lease() = default;
    explicit Lease(std::shared_ptr<Entry> entry);
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    ModelScheduler* operator->() const;
    ModelScheduler& scheduler() const;
    const std::string& name() const;

   private:
    void Release();
    std::shared_ptr<Entry> entry_;
  };

  // Returns the loaded model, loading it first (evicting idle models if needed and enough).
  // NotFound for unknown names, DoesNotFit when it cannot fit, Unavailable when shutting down.
  Result<Lease> Acquire(const std::string& name, const AcquireOptions& options = {});
  // Memory a request uses beside the loaded models' plans (an embedding context), counted
  // against the budget until the Reservation is destroyed; loads meanwhile see it as taken.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&&) = delete;
    ~Reservation();

   private:
    friend class ModelPool;
    Reservation(ModelPool* pool, uint64_t bytes) : pool_(pool), bytes_(bytes) {}
    ModelPool* pool_ = nullptr;
    uint64_t bytes_ = 0;
  };
  // DoesNotFit with the numbers when `bytes` more would exceed the budget; `what` names the use.
  Result<Reservation> Reserve(uint64_t bytes, const std::string& what);

  // Loads without using. OK when already loaded (reloaded when options.min_ctx asks for more).
  Status Load(const std::string& name, const AcquireOptions& options = {});
  // Unloads an idle model. NotFound when not loaded; Unavailable while it serves requests.
  Status Unload(const std::string& name);
  // Plans a model without loading it.
  Result<ModelPlan> Plan(const std::string& name, const PlanOverrides& overrides);

  // The file a name loads (command-line files, the store's registry). NotFound when unknown.
  Result<std::string> PathOf(const std::string& name) const { return ResolvePath(name); }

  std::vector<RunningModel> Running() const;
  // Every name a request may use: loaded, from the command line, and in the store.
  std::vector<std::string> KnownNames() const;
  // The model a request that names none is for (llama-server answers those too): the only one
  // loaded, else the only one known. InvalidArgument listing them when there are several.
  Result<std::string> DefaultModel() const;
  uint64_t budget_bytes() const { return budget_bytes_.load(); }  // as of the last load
  uint64_t PlannedBytes() const;  // sum of loaded models' planned peaks
  uint64_t loads_total() const { return loads_total_.load(); }
  uint64_t evictions_total() const { return evictions_total_.load(); }

  // Ends all requests with `reason` and unloads every model. Idempotent.
  void Shutdown(const Status& reason);
  // A worker holding layers of loaded models was lost (engine/workers.h, called on the thread
  // that found it): their requests end with `what`, naming the worker, and the models leave
  // the pool. Their memory stays held (their threads wait on the lost worker forever), so it
  // stays counted against the budget. Other models keep serving.
  void OnWorkerLost(const std::string& endpoint, const std::string& what);

 private:
  Result<std::string> ResolvePath(const std::string& name) const;
  Result<std::shared_ptr<Entry>> LoadLocked(const std::string& name, bool lease,
                                            const AcquireOptions& options);
  PoolBudget CurrentBudget();    // the probe's figure (or the start-up one), remembered
  uint64_t TakenLocked() const;  // planned peaks of loaded models plus reservations; mu_ held
  void ReapLoop();
  // Frees a model's scheduler (thread, context, weights) on the loader thread. A model whose
  // worker is lost meanwhile is left as it is (freeing it would wait on that worker forever).
  void FreeOnLoader(const std::shared_ptr<Entry>& entry);

  const PoolOptions options_;
  // Every model is loaded and freed on this one thread, so its heap allocations come from, and
  // go back to, one glibc arena: loads on the request threads spread them over up to 8 arenas
  // per core, each keeping its own fragments (~0.8 MiB per unload/load cycle, issue 15).
  // Replaced, and the old one left running, when a load or free hangs on a worker that was
  // lost (engine/workers.h).
  std::shared_ptr<SerialThread> Loader();
  void ReplaceStuckLoader(const std::shared_ptr<SerialThread>& stuck);
  std::mutex loader_mu_;
  std::shared_ptr<SerialThread> loader_ = std::make_shared<SerialThread>();
  mutable std::mutex mu_;  // guards loaded_
  std::map<std::string, std::shared_ptr<Entry>> loaded_;
  // Models lost with a worker: never freed (see OnWorkerLost); guarded by mu_.
  std::vector<std::shared_ptr<Entry>> lost_;
  uint64_t reserved_ = 0;  // held by Reservations; guarded by mu_
  // model_check's verdicts, per file version and load options; guarded by mu_.
  std::map<std::string, Status> checked_;
  std::mutex load_mu_;  // one load (and its evictions) at a time
  bool shutting_down_ = false;
  std::atomic<uint64_t> budget_bytes_{0};
  std::atomic<uint64_t> loads_total_{0};
  std::atomic<uint64_t> evictions_total_{0};

  std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  bool stop_reaper_ = false;
  std::thread reaper_;
};

}  // namespace snug::server
