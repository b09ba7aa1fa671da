// `snug hw`: what this machine (or a --hw profile) offers, and the budget snug plans against.
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "config/env.h"
#include "core/size.h"
#include "hw/detect.h"
#include "hw/devices.h"
#include "hw/json.h"
#include "hw/profiles.h"
#include "hw/workers.h"

namespace snug::cli {
namespace {

struct HwFlags {
  bool json = false;
  bool profiles = false;
  std::string memory_limit;
  std::string headroom;
  std::string hw_profile;
  std::vector<std::string> workers;  // --worker HOST:PORT; none = SNUG_WORKERS
};

constexpr int kLabelWidth = 10;

void Row(const std::string& label, const std::string& text) {
  fmt::print("{:<{}} {}\n", label, kLabelWidth, text);
}

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const std::string& s : items)
    out += out.empty() ? s : sep + s;
  return out;
}

std::string DeviceLine(const hw::Device& d) {
  return fmt::format("{} ({}, {}): {} total, {} free, budget {}{} [{}]", d.name, d.description,
                     d.backend, FormatSize(d.total_bytes), FormatSize(d.free_bytes),
                     FormatSize(d.budget_bytes), d.unified ? ", unified with host memory" : "",
                     d.source);
}

void PrintHost(const hw::HostInfo& host) {
  const std::string swap = host.mem.swap_total == 0
                               ? std::string("no swap")
                               : fmt::format("swap {} of {} free", FormatSize(host.mem.swap_free),
                                             FormatSize(host.mem.swap_total));
  Row("host", fmt::format("{} total, {} available{} ({}), {}; snug holds {}",
                          FormatSize(host.mem.total), FormatSize(host.mem.available),
                          host.mem.available_estimated ? " (estimated)" : "", host.mem.source, swap,
                          FormatSize(host.self_rss)));
  const hw::CgroupMemory& cg = host.cgroup;
  if (cg.version == 0) {
    Row("container", "no memory cgroup found: no container limit");
  } else {
    const hw::CgroupLevel* binding = nullptr;
    for (const hw::CgroupLevel& l : cg.levels)
      if (l.limit && (binding == nullptr || *l.limit < *binding->limit)) binding = &l;
    std::string usage = cg.levels.empty() || !cg.levels.front().usage
                            ? "usage unknown"
                            : fmt::format("usage {} ({} reclaimable page cache)",
                                          FormatSize(*cg.levels.front().usage),
                                          FormatSize(cg.levels.front().reclaimable));
    std::string limit =
        binding == nullptr
            ? "no limit"
            : fmt::format("limit {} ({})", FormatSize(*binding->limit), binding->limit_file);
    Row("container", fmt::format("cgroup v{} {}: {}, {}", cg.version, cg.dir, limit, usage));
    if (cg.swap_limit)
      Row("", fmt::format("{} limit {}", cg.version == 1 ? "memory+swap" : "swap",
                          FormatSize(*cg.swap_limit)));
    if (!cg.error.empty()) Row("", "error: " + cg.error);
  }
  const hw::CpuInfo& cpu = host.cpu;
  Row("cpu",
      fmt::format("{}: {} physical / {} logical cores, {}",
                  cpu.model.empty() ? "unknown model" : cpu.model, cpu.physical_cores,
                  cpu.logical_cores,
                  cpu.features.empty() ? "no SIMD features known" : Join(cpu.features, " ")));
  Row("", fmt::format("cpuset {}, {}; {} threads recommended",
                      cpu.cpuset.empty() ? "unknown" : cpu.cpuset,
                      cpu.quota_cpus
                          ? fmt::format("quota {:.2f} cpus ({})", *cpu.quota_cpus, cpu.quota_source)
                          : std::string("no cpu quota"),
                      cpu.recommended_threads));
}

void PrintBudget(const hw::Budget& budget) {
  if (budget.devices.empty()) {
    Row("devices", "none (CPU only)");
  } else {
    bool first = true;
    for (const hw::Device& d : budget.devices) {
      Row(first ? "devices" : "", DeviceLine(d));
      first = false;
    }
  }
  Row("budget", fmt::format("host {} = {} - {} headroom  [source: {}]",
                            FormatSize(budget.host_bytes), FormatSize(budget.host_raw_bytes),
                            FormatSize(budget.headroom_bytes), budget.source));
  Row("", budget.detail);
}

// One line per worker: who it is, what it lends (its devices' budgets), where that figure comes
// from, what it holds for a client and whether one is connected.
void PrintWorkers(const hw::Budget& remote) {
  bool first = true;
  for (const hw::WorkerHost& w : remote.workers) {
    uint64_t budget = 0;
    std::vector<std::string> devices;
    for (const hw::Device& d : remote.devices) {
      if (d.host != w.endpoint) continue;
      budget += d.budget_bytes;
      devices.push_back(fmt::format("{} {} free of {}", d.name, FormatSize(d.free_bytes),
                                    FormatSize(d.total_bytes)));
    }
    const std::string who =
        w.version.empty() ? std::string("llama.cpp rpc-server") : "snug " + w.version;
    const std::string held = w.version.empty()
                                 ? std::string("allocations unknown")
                                 : FormatSize(w.allocated_bytes) + " allocated for a client";
    Row(first ? "workers" : "",
        fmt::format("{}: {}, ggml-rpc {}; budget {} [source: {}: {}]; devices: {}; {}; {}",
                    w.endpoint, who, w.protocol, FormatSize(budget), w.source, w.detail,
                    Join(devices, ", "), held, w.busy ? "busy (serving a client)" : "idle"));
    first = false;
  }
}

int ListProfiles(bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const hw::Profile& p : hw::AllProfiles()) {
      nlohmann::json entry = hw::ProfileToJson(p);
      entry["budget"] = hw::BudgetToJson(hw::ProfileBudget(p, std::nullopt));
      out.push_back(entry);
    }
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{:<22} {:>10} {:>10}  {}\n", "PROFILE", "HOST", "DEVICE", "DESCRIPTION");
  for (const hw::Profile& p : hw::AllProfiles()) {
    hw::Budget b = hw::ProfileBudget(p, std::nullopt);
    std::string device = b.devices.empty() ? "-" : FormatSize(b.devices.front().budget_bytes);
    fmt::print("{:<22} {:>10} {:>10}  {}\n", p.name, FormatSize(b.host_bytes), device, p.summary);
  }
  fmt::print("\nHOST and DEVICE are budgets after headroom. Use: snug plan MODEL --hw PROFILE\n");
  return kExitOk;
}

int RunHw(const HwFlags& flags) {
  if (flags.profiles) return ListProfiles(flags.json);
  Result<hw::BudgetOptions> options =
      hw::BudgetOptionsFromFlags(flags.memory_limit, flags.headroom, flags.hw_profile);
  if (!options.ok()) return Report(options.status());

  nlohmann::json out;
  std::optional<hw::HostInfo> host;
  Status host_status;
  if (options->profile.empty()) {
    Result<hw::HostInfo> probed = hw::ProbeHost(env::HostRoot());
    if (probed.ok())
      host = std::move(probed).value();
    else
      host_status = probed.status();
  }
  Result<hw::Budget> budget = hw::ResolveBudget(*options);

  // Workers are asked after the local facts, into a budget of their own: the local lines stay
  // this machine's.
  Result<std::vector<std::string>> workers = hw::WorkerList(flags.workers);
  if (!workers.ok()) return Report(workers.status());
  hw::Budget remote;
  Status workers_status = hw::ProbeWorkers(*workers, &remote);

  if (flags.json) {
    if (budget.ok() && workers_status.ok()) {
      for (hw::Device& d : remote.devices)
        budget->devices.push_back(std::move(d));
      budget->workers = std::move(remote.workers);
    }
    if (!options->profile.empty())
      out["profile"] = hw::ProfileToJson(*hw::FindProfile(options->profile));
    else
      out["host"] = host ? hw::HostInfoToJson(*host) : nlohmann::json(nullptr);
    out["budget"] = budget.ok() ? hw::BudgetToJson(*budget) : nlohmann::json(nullptr);
    if (!budget.ok()) out["error"] = budget.status().message();
    if (budget.ok() && !workers_status.ok()) out["error"] = workers_status.message();
    fmt::print("{}\n", out.dump(2));
    if (!budget.ok()) return ExitCodeFor(budget.status());
    return ExitCodeFor(workers_status);
  }

  if (!options->profile.empty()) {
    const hw::Profile profile = *hw::FindProfile(options->profile);
    Row("profile", fmt::format("{}: {}", profile.name, profile.summary));
    Row("", fmt::format("{} RAM, {} cores; assumes {}", FormatSize(profile.ram_bytes),
                        profile.cpu_cores, profile.assumptions));
  } else if (host) {
    PrintHost(*host);
  } else {
    Row("host", "unknown: " + host_status.message());
  }
  if (!budget.ok()) return Report(budget.status());
  PrintBudget(*budget);
  if (host && !host->notes.empty()) {
    bool first = true;
    for (const std::string& note : host->notes) {
      Row(first ? "notes" : "", note);
      first = false;
    }
  }
  if (!workers_status.ok()) return Report(workers_status);
  PrintWorkers(remote);
  return kExitOk;
}

}  // namespace

void AddHwCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand(
      "hw", "Show this machine's memory, CPU, accelerators and the effective budget");
  auto flags = std::make_shared<HwFlags>();
  cmd->add_flag("--json", flags->json, "Print one JSON object");
  cmd->add_flag("--profiles", flags->profiles, "List the built-in hardware profiles (for --hw)");
  cmd->add_option("--memory-limit", flags->memory_limit,
                  "Host memory budget override (e.g. 6GiB); also SNUG_MEMORY_LIMIT");
  cmd->add_option("--headroom", flags->headroom,
                  "Memory kept free (default 10% of the budget, 256 MiB..1 GiB)");
  cmd->add_option("--hw", flags->hw_profile, "Show a built-in hardware profile instead");
  cmd->add_option("--worker", flags->workers,
                  "Also ask a `snug worker` (or llama.cpp rpc-server) at HOST:PORT what it lends; "
                  "repeatable; also SNUG_WORKERS=H:P,H:P");
  cmd->callback([exit_code, flags] { *exit_code = RunHw(*flags); });
}

}  // namespace snug::cli
