#include "hw/json.h"

namespace snug::hw {
namespace {

nlohmann::json DeviceToJson(const Device& d) {
  nlohmann::json out = {{"name", d.name},
                        {"description", d.description},
                        {"backend", d.backend},
                        {"total_bytes", d.total_bytes},
                        {"free_bytes", d.free_bytes},
                        {"unified", d.unified},
                        {"budget_bytes", d.budget_bytes},
                        {"source", d.source}};
  // Only a worker's devices have these: this machine's devices print as they always did.
  if (!d.host.empty()) {
    out["host"] = d.host;
    out["remote_index"] = d.remote_index;
  }
  return out;
}

nlohmann::json WorkerToJson(const WorkerHost& w) {
  return {{"endpoint", w.endpoint}, {"protocol", w.protocol},
          {"version", w.version},   {"source", w.source},
          {"detail", w.detail},     {"allocated_bytes", w.allocated_bytes},
          {"busy", w.busy}};
}

template <typename T>
nlohmann::json OptionalToJson(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json BudgetToJson(const Budget& budget) {
  nlohmann::json devices = nlohmann::json::array();
  for (const Device& d : budget.devices)
    devices.push_back(DeviceToJson(d));
  nlohmann::json out = {{"host_bytes", budget.host_bytes},
                        {"host_raw_bytes", budget.host_raw_bytes},
                        {"headroom_bytes", budget.headroom_bytes},
                        {"source", budget.source},
                        {"detail", budget.detail},
                        {"devices", devices}};
  if (!budget.workers.empty()) {
    nlohmann::json workers = nlohmann::json::array();
    for (const WorkerHost& w : budget.workers)
      workers.push_back(WorkerToJson(w));
    out["workers"] = workers;
  }
  return out;
}

nlohmann::json HostInfoToJson(const HostInfo& host) {
  nlohmann::json memory = {{"total_bytes", host.mem.total},
                           {"available_bytes", host.mem.available},
                           {"available_estimated", host.mem.available_estimated},
                           {"free_bytes", host.mem.free},
                           {"swap_total_bytes", host.mem.swap_total},
                           {"swap_free_bytes", host.mem.swap_free},
                           {"source", host.mem.source}};
  nlohmann::json cgroup = nullptr;
  if (host.cgroup.version != 0) {
    nlohmann::json levels = nlohmann::json::array();
    for (const CgroupLevel& l : host.cgroup.levels) {
      levels.push_back({{"dir", l.dir},
                        {"limit_bytes", OptionalToJson(l.limit)},
                        {"limit_file", l.limit_file},
                        {"usage_bytes", OptionalToJson(l.usage)},
                        {"reclaimable_bytes", l.reclaimable}});
    }
    cgroup = {{"version", host.cgroup.version},
              {"dir", host.cgroup.dir},
              {"mount_dir", host.cgroup.mount_dir},
              {"levels", levels},
              {"swap_limit_bytes", OptionalToJson(host.cgroup.swap_limit)},
              {"peak_usage_bytes", OptionalToJson(host.cgroup.peak_usage)},
              {"error", host.cgroup.error}};
  }
  const CpuInfo& c = host.cpu;
  nlohmann::json cpu = {{"model", c.model},
                        {"logical_cores", c.logical_cores},
                        {"physical_cores", c.physical_cores},
                        {"features", c.features},
                        {"cpuset", c.cpuset},
                        {"usable_cpus", c.usable_cpus},
                        {"quota_cpus", OptionalToJson(c.quota_cpus)},
                        {"quota_source", c.quota_source},
                        {"recommended_threads", c.recommended_threads}};
  return {{"memory", memory},
          {"self_rss_bytes", host.self_rss},
          {"self_unreclaimable_bytes", host.self_unreclaimable},
          {"cgroup", cgroup},
          {"cpu", cpu},
          {"notes", host.notes}};
}

nlohmann::json ProfileToJson(const Profile& p) {
  nlohmann::json devices = nlohmann::json::array();
  for (const Device& d : p.devices)
    devices.push_back(DeviceToJson(d));
  return {{"name", p.name},
          {"summary", p.summary},
          {"ram_bytes", p.ram_bytes},
          {"host_available_bytes", p.host_available_bytes},
          {"cgroup_limit_bytes", OptionalToJson(p.cgroup_limit)},
          {"cpu_cores", p.cpu_cores},
          {"assumptions", p.assumptions},
          {"devices", devices}};
}

}  // namespace snug::hw
