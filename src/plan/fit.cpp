#include "plan/fit.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "core/size.h"
#include "plan/placement.h"

namespace snug::plan {
namespace {

constexpr uint32_t kDefaultCtx = 8192;  // SPEC.md: the seed's sane default
constexpr uint32_t kMinAutoCtx = 2048;  // below this a chat model is not useful
constexpr uint32_t kCtxStep = 256;      // llama.cpp pads n_ctx to 256 anyway

struct Candidate {
  Settings settings;
  MemoryBreakdown memory;
  bool fits = false;
};

// This machine's accelerators (workers' devices are placed by PlaceAcrossHosts).
std::vector<const hw::Device*> Accelerators(const hw::Budget& budget) {
  std::vector<const hw::Device*> out;
  for (const auto& d : budget.devices) {
    if (d.backend != "CPU" && d.budget_bytes > 0 && d.host.empty()) out.push_back(&d);
  }
  return out;
}

bool HasWorkerDevices(const hw::Budget& budget) {
  for (const auto& d : budget.devices) {
    if (!d.host.empty()) return true;
  }
  return false;
}

class Fitter {
 public:
  Fitter(const ModelShape& shape, const hw::Budget& budget, const Request& request,
         const FitOptions& options)
      : shape_(shape),
        budget_(budget),
        request_(request),
        devices_(Accelerators(budget)),
        workers_(HasWorkerDevices(budget)) {
    base_.n_parallel = request.n_parallel;
    base_.n_batch = request.n_batch;
    base_.n_ubatch = request.n_ubatch;
    base_.flash_attn = request.flash_attn != FlashAttn::kOff;
    // Server slots share one KV buffer (no per-slot ubatch splits) unless batch invariance needs
    // a stream each.
    base_.kv_unified = request.n_parallel > 1 && !request.batch_invariant;
    base_.constrained_decoding = request.constrained_decoding;
    base_.cpu = options.cpu;
  }

  // The best placement for a context and KV type: on this machine when it fits here (the
  // fewest hosts), else across the workers.
  Candidate Evaluate(uint32_t n_ctx, KvType kv) const {
    Candidate here = EvaluateLocal(n_ctx, kv);
    if (here.fits || !workers_) return here;
    Settings s = base_;
    s.n_ctx = n_ctx;
    s.kv_type = kv;
    Spread spread = PlaceAcrossHosts(shape_, budget_, s);
    Candidate c;
    c.settings = std::move(spread.settings);
    c.memory = std::move(spread.memory);
    c.fits = spread.fits;
    return c;
  }

  // This machine alone: explicit --ngl, or as many layers on the accelerators as they hold (more
  // offload never costs host memory).
  Candidate EvaluateLocal(uint32_t n_ctx, KvType kv) const {
    Settings s = base_;
    s.n_ctx = n_ctx;
    s.kv_type = kv;
    const int max_ngl = static_cast<int>(shape_.n_layer) + 1;
    int ngl = 0;
    if (!devices_.empty()) {
      if (!request_.ngl_auto) {
        ngl = std::min(request_.n_gpu_layers, max_ngl);
      } else {
        // Device memory grows with the layer count: binary search the largest that fits.
        int lo = 0, hi = max_ngl;
        while (lo < hi) {
          const int mid = (lo + hi + 1) / 2;
          Settings t = s;
          Distribute(shape_, devices_, mid, &t);
          if (DevicesFit(Estimate(shape_, t), devices_)) {
            lo = mid;
          } else {
            hi = mid - 1;
          }
        }
        ngl = lo;
      }
    }
    Distribute(shape_, devices_, ngl, &s);
    Candidate c;
    c.settings = s;
    c.memory = Estimate(shape_, s);
    c.fits = c.memory.host_required_bytes <= budget_.host_bytes && DevicesFit(c.memory, devices_);
    return c;
  }

  // The largest context <= hi (a multiple of 256, or hi itself) that fits with `kv`, not below
  // `lo`; nullopt when even `lo` does not fit. Memory grows with the context, so bisect.
  std::optional<Candidate> Largest(KvType kv, uint32_t lo, uint32_t hi) const {
    if (hi < lo) return std::nullopt;
    auto ctx_at = [&](uint32_t k) { return std::min<uint32_t>(k * kCtxStep, hi); };
    uint32_t k_lo = (lo + kCtxStep - 1) / kCtxStep;
    uint32_t k_hi = (hi + kCtxStep - 1) / kCtxStep;
    if (k_lo == 0) k_lo = 1;
    Candidate first = Evaluate(std::max(lo, std::min(ctx_at(k_lo), hi)), kv);
    if (!first.fits) return std::nullopt;
    Candidate best = first;
    uint32_t a = k_lo, b = k_hi;  // invariant: ctx_at(a) fits
    while (a < b) {
      const uint32_t mid = (a + b + 1) / 2;
      Candidate c = Evaluate(ctx_at(mid), kv);
      if (c.fits) {
        a = mid;
        best = std::move(c);
      } else {
        b = mid - 1;
      }
    }
    return best;
  }

  MaxCtx ComputeMaxCtx() const {
    MaxCtx m;
    const uint32_t hi = std::max<uint32_t>(shape_.n_ctx_train, kCtxStep);
    auto largest = [&](KvType kv) -> uint32_t {
      if (kv != KvType::kF16 && !base_.flash_attn) return 0;  // quantized V needs FA
      auto c = Largest(kv, kCtxStep, hi);
      return c ? c->settings.n_ctx : 0;
    };
    m.f16 = largest(KvType::kF16);
    m.q8_0 = largest(KvType::kQ8_0);
    m.q4_0 = largest(KvType::kQ4_0);
    return m;
  }

  std::string Placement(const Candidate& c) const {
    const Settings& s = c.settings;
    if (s.devices.empty()) {
      if (workers_) return "all layers on this host (the workers are not needed)";
      return devices_.empty() ? "CPU only" : "all layers on the CPU (no room on accelerators)";
    }
    uint32_t offloaded = 0;
    bool spread = false;
    std::vector<std::string> parts;
    for (const auto& d : s.devices) {
      offloaded += d.n_layers;
      spread = spread || !d.host.empty();
      const std::string where = d.host.empty() ? d.name : d.host;
      if (d.n_layers > 0) parts.push_back(fmt::format("{} on {}", d.n_layers, where));
    }
    const std::string output_on =
        s.devices.back().host.empty() ? s.devices.back().name : s.devices.back().host;
    if (spread) {
      const uint32_t cpu = shape_.n_layer - std::min(offloaded, shape_.n_layer);
      return fmt::format("{} of {} layers on this host's CPU, {}; the output on {}", cpu,
                         shape_.n_layer, fmt::join(parts, ", "), output_on);
    }
    const std::string where = fmt::format("{}", fmt::join(parts, ", "));
    if (offloaded >= shape_.n_layer) {
      return fmt::format("all {} layers and the output on accelerators ({})", shape_.n_layer,
                         where);
    }
    return fmt::format("{} of {} layers and the output on accelerators ({}), the rest on the CPU",
                       offloaded, shape_.n_layer, where.empty() ? output_on : where);
  }

  // Per host, for a placement across workers: "127.0.0.1:50052 needs 1.3 GiB of its 1.2 GiB".
  std::string HostsText(const Candidate& c) const {
    std::vector<std::string> parts;
    for (const auto& d : c.memory.per_device) {
      if (d.host.empty()) continue;
      uint64_t budget = 0;
      for (const auto& dev : budget_.devices) {
        if (dev.name == d.name) budget = dev.budget_bytes;
      }
      parts.push_back(fmt::format("{} needs {} of its {} ({} layers{})", d.host,
                                  FormatSize(d.total_bytes), FormatSize(budget), d.n_layers,
                                  d.output ? " and the output" : ""));
    }
    return fmt::format("{}", fmt::join(parts, "; "));
  }

  std::string BudgetText() const {
    std::string text = FormatSize(budget_.host_bytes);
    std::string detail = budget_.detail.empty() ? budget_.source : budget_.detail;
    if (budget_.headroom_bytes > 0) {
      return fmt::format("{} ({}, minus {} headroom)", text, detail,
                         FormatSize(budget_.headroom_bytes));
    }
    return fmt::format("{} ({})", text, detail);
  }

  std::string Needs(const Candidate& c) const {
    std::string s = fmt::format("{} at ctx {} ({} KV)", FormatSize(c.memory.host_required_bytes),
                                c.settings.n_ctx, KvTypeName(c.settings.kv_type));
    uint64_t device_total = 0;
    for (const auto& d : c.memory.per_device)
      device_total += d.unified ? 0 : d.total_bytes;
    const std::string hosts = HostsText(c);
    if (!hosts.empty()) {
      s = fmt::format("{} on this host at ctx {} ({} KV); {}",
                      FormatSize(c.memory.host_required_bytes), c.settings.n_ctx,
                      KvTypeName(c.settings.kv_type), hosts);
    } else if (device_total > 0) {
      s += fmt::format(" plus {} on accelerators", FormatSize(device_total));
    }
    return s;
  }

  std::string MaxCtxText(const MaxCtx& m) const {
    std::vector<std::string> parts;
    if (m.f16 > 0) parts.push_back(fmt::format("{} (f16 KV)", m.f16));
    if (m.q8_0 > 0 && m.q8_0 > m.f16) parts.push_back(fmt::format("{} (q8_0 KV)", m.q8_0));
    if (m.q4_0 > 0 && m.q4_0 > std::max(m.f16, m.q8_0)) {
      parts.push_back(fmt::format("{} (q4_0 KV)", m.q4_0));
    }
    if (parts.empty()) {
      return "not even a 256-token context fits: free memory, raise the limit "
             "(--memory-limit) or pick a smaller model or quantization";
    }
    return fmt::format("the largest context that fits is {}", fmt::join(parts, " or "));
  }

  Result<Plan> Run() const {
    std::vector<KvType> kvs;
    if (request_.kv_auto) {
      kvs = {KvType::kF16, KvType::kQ8_0, KvType::kQ4_0};
    } else {
      kvs = {request_.kv_type};
    }
    if (!base_.flash_attn) {
      if (!request_.kv_auto && request_.kv_type != KvType::kF16) {
        return Status::InvalidArgument(
            "a quantized V cache needs flash attention in llama.cpp; use --kv-type f16 or leave "
            "flash attention on");
      }
      kvs = {KvType::kF16};
    }
    if (request_.ctx_mode == CtxMode::kExplicit && request_.n_ctx == 0) {
      return Status::InvalidArgument("the context length must be at least 1 token");
    }

    Plan plan;
    plan.max_ctx = ComputeMaxCtx();
    const uint32_t n_train = std::max<uint32_t>(shape_.n_ctx_train, 1);
    std::string why;
    std::optional<Candidate> chosen;
    Candidate tried;  // what was needed, for the message when nothing fits

    if (request_.ctx_mode == CtxMode::kExplicit) {
      const uint32_t n = request_.n_ctx;
      for (KvType kv : kvs) {
        Candidate c = Evaluate(n, kv);
        if (kv == kvs.front()) tried = c;
        if (c.fits) {
          chosen = c;
          why = fmt::format("ctx {} as requested", n);
          if (kv != kvs.front()) {
            why += fmt::format(", {} KV because {} does not fit ({})", KvTypeName(kv),
                               KvTypeName(kvs.front()), Needs(tried));
          }
          if (n > n_train) {
            why += fmt::format(" (beyond the model's trained {}: quality may drop)", n_train);
          }
          break;
        }
      }
    } else if (request_.ctx_mode == CtxMode::kAuto) {
      const uint32_t target = std::min(n_train, kDefaultCtx);
      for (KvType kv : kvs) {
        Candidate c = Evaluate(target, kv);
        if (kv == kvs.front()) tried = c;
        if (c.fits) {
          chosen = c;
          why = target == kDefaultCtx ? fmt::format(
                                            "ctx {} (the default; the model was trained "
                                            "for {})",
                                            target, n_train)
                                      : fmt::format("ctx {} (the model's trained context)", target);
          if (kv != kvs.front()) {
            why += fmt::format(", {} KV because f16 needs {}", KvTypeName(kv), Needs(tried));
          }
          break;
        }
      }
      if (!chosen) {
        const uint32_t floor = std::min(n_train, kMinAutoCtx);
        for (KvType kv : kvs) {
          if (auto c = Largest(kv, floor, target)) {
            chosen = c;
            why =
                fmt::format("ctx {} ({} KV): the default {} needs {} but the budget is {}",
                            c->settings.n_ctx, KvTypeName(kv), target, Needs(tried), BudgetText());
            break;
          }
        }
      }
    } else {  // max
      const uint32_t floor = std::min(n_train, kMinAutoCtx);
      for (KvType kv : kvs) {
        Candidate c = Evaluate(n_train, kv);
        if (kv == kvs.front()) tried = c;
        if (c.fits) {
          chosen = c;
          why = fmt::format("ctx {} (max: the model's trained context)", n_train);
          break;
        }
      }
      if (!chosen) {
        for (KvType kv : kvs) {
          auto c = Largest(kv, floor, n_train);
          if (c && (!chosen || c->settings.n_ctx > chosen->settings.n_ctx)) chosen = c;
        }
        if (chosen) {
          why = fmt::format("ctx {} ({} KV, max: the largest that fits; the trained {} needs {})",
                            chosen->settings.n_ctx, KvTypeName(chosen->settings.kv_type), n_train,
                            Needs(tried));
        }
      }
    }

    if (chosen) {
      plan.fits = true;
      plan.settings = chosen->settings;
      plan.memory = chosen->memory;
      plan.reason = fmt::format("{}; {}: needs {} of {}", why, Placement(*chosen),
                                FormatSize(chosen->memory.host_required_bytes), BudgetText());
      const std::string hosts = HostsText(*chosen);
      if (!hosts.empty()) plan.reason += "; " + hosts;
      if (chosen->memory.file_cache_bytes > 0) {
        plan.reason += fmt::format(" (plus {} of reclaimable file cache while loading)",
                                   FormatSize(chosen->memory.file_cache_bytes));
      }
    } else {
      plan.fits = false;
      plan.settings = tried.settings;
      plan.memory = tried.memory;
      std::string message = fmt::format("{} needs {} but the budget is {}; {}", shape_.name,
                                        Needs(tried), BudgetText(), MaxCtxText(plan.max_ctx));
      if (workers_) {
        message = fmt::format(
            "{} does not fit this host and its {} worker(s) together: it needs {}, and this "
            "host's budget is {}; {}",
            shape_.name, budget_.workers.size(), Needs(tried), BudgetText(),
            plan.max_ctx.For(kvs.front()) > 0 || plan.max_ctx.q8_0 > 0
                ? MaxCtxText(plan.max_ctx) + " across them"
                : MaxCtxText(plan.max_ctx));
      }
      if (request_.ctx_mode == CtxMode::kAuto && plan.max_ctx.For(kvs.front()) > 0) {
        message += fmt::format(
            " (below the {}-token minimum snug picks by itself; ask for it "
            "with --ctx)",
            std::min(n_train, kMinAutoCtx));
      } else if (!request_.kv_auto && plan.max_ctx.q8_0 > plan.max_ctx.For(request_.kv_type)) {
        message += "; --kv-type auto lets snug quantize the KV cache";
      }
      plan.reason = message;
      plan.status = Status::DoesNotFit(message);
    }
    if (!shape_.approximation.empty()) plan.reason += ". Note: " + shape_.approximation;
    return plan;
  }

 private:
  const ModelShape& shape_;
  const hw::Budget& budget_;
  const Request& request_;
  std::vector<const hw::Device*> devices_;
  bool workers_ = false;
  Settings base_;
};

}  // namespace

uint32_t MaxCtx::For(KvType type) const {
  switch (type) {
    case KvType::kF16:
      return f16;
    case KvType::kQ8_0:
      return q8_0;
    case KvType::kQ4_0:
      return q4_0;
  }
  return 0;
}

Result<Plan> Fit(const ModelShape& shape, const hw::Budget& budget, const Request& request,
                 const FitOptions& options) {
  if (shape.n_layer == 0) return Status::InvalidArgument("the model has no layers");
  if (request.n_parallel == 0) return Status::InvalidArgument("--parallel must be at least 1");
  if (HasWorkerDevices(budget) && !request.ngl_auto) {
    return Status::InvalidArgument(
        "--ngl cannot be combined with --worker: snug places the layers across the hosts itself");
  }
  if (HasWorkerDevices(budget) && request.batch_invariant) {
    return Status::InvalidArgument(
        "--batch-invariant serves on this host's CPU only; drop --worker");
  }
  if (!request.batch_invariant) {
    SNUG_ASSIGN_OR_RETURN(Plan plan, Fitter(shape, budget, request, options).Run());
    plan.batch_invariant = request.n_parallel == 1;  // one slot never shares a batch
    return plan;
  }
  // llama.cpp's CPU flash attention picks split-KV or Q-tiled kernels by batch shape, so it is off
  // (and with it quantized V caches). Matrix products of F16/BF16/F32 weights take another kernel
  // for a single row than for several (ggml-cpu/llamafile/sgemm.cpp, "only enable sgemm for
  // prompt processing"); the quantized ones measured give each row the same result.
  std::vector<const TensorShape*> matrices;
  for (const auto& layer : shape.layers)
    for (const auto& t : layer.tensors)
      matrices.push_back(&t);
  for (const auto& t : shape.output_tensors)
    matrices.push_back(&t);
  for (const TensorShape* t : matrices) {
    const char* unquantized = t->type == 0    ? "F32"
                              : t->type == 1  ? "F16"
                              : t->type == 30 ? "BF16"
                                              : "";
    if (t->matmul && *unquantized != '\0') {
      return Status::InvalidArgument(fmt::format(
          "--batch-invariant needs quantized weights: {} is {} (llama.cpp computes one row of "
          "unquantized weights with another kernel than several)",
          t->name, unquantized));
    }
  }
  if (!request.kv_auto && request.kv_type != KvType::kF16) {
    return Status::InvalidArgument(
        "--batch-invariant turns flash attention off, which a quantized KV cache needs; use "
        "--kv-type f16 or auto");
  }
  Request strict = request;
  strict.flash_attn = FlashAttn::kOff;
  strict.kv_auto = false;
  strict.kv_type = KvType::kF16;
  if (request.ngl_auto) {
    strict.ngl_auto = false;  // GPU kernels are not known to be invariant: CPU only
    strict.n_gpu_layers = 0;
  } else if (request.n_gpu_layers > 0) {
    return Status::InvalidArgument(
        "--batch-invariant serves on the CPU only (GPU kernels are not known to give a row the "
        "same result in every batch); drop --ngl or use --ngl 0");
  }
  SNUG_ASSIGN_OR_RETURN(Plan plan, Fitter(shape, budget, strict, options).Run());
  if (plan.fits) {
    plan.batch_invariant = true;
    plan.reason +=
        "; batch-invariant: flash attention off and one KV stream per slot, so a "
        "batched answer is bit-identical to the same request run alone";
  }
  return plan;
}

}  // namespace snug::plan
