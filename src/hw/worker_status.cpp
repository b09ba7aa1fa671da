#include "hw/worker_status.h"

namespace snug::hw {

int WorkerStatusPort(int rpc_port) {
  return rpc_port + 1;
}

nlohmann::json WorkerStatusToJson(const WorkerStatus& s) {
  nlohmann::json devices = nlohmann::json::array();
  for (const WorkerDeviceStatus& d : s.devices) {
    devices.push_back({{"index", d.index},
                       {"name", d.name},
                       {"description", d.description},
                       {"backend", d.backend},
                       {"free_bytes", d.free_bytes},
                       {"total_bytes", d.total_bytes}});
  }
  return {{"snug_worker", true},
          {"version", s.version},
          {"protocol", s.protocol},
          {"endpoint", s.endpoint},
          {"budget",
           {{"host_bytes", s.host_bytes},
            {"host_raw_bytes", s.host_raw_bytes},
            {"headroom_bytes", s.headroom_bytes},
            {"source", s.source},
            {"detail", s.detail}}},
          {"devices", devices},
          {"allocated_bytes", s.allocated_bytes},
          {"busy", s.busy}};
}

Result<WorkerStatus> ParseWorkerStatus(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("snug_worker", false) != true)
    return Status::Corrupt("not a snug worker's status");
  // json::get throws on a wrong type; a worker of another snug version must not crash the probe.
  try {
    WorkerStatus s;
    s.version = j.at("version").get<std::string>();
    s.protocol = j.at("protocol").get<std::string>();
    s.endpoint = j.at("endpoint").get<std::string>();
    const nlohmann::json& b = j.at("budget");
    s.host_bytes = b.at("host_bytes").get<uint64_t>();
    s.host_raw_bytes = b.at("host_raw_bytes").get<uint64_t>();
    s.headroom_bytes = b.at("headroom_bytes").get<uint64_t>();
    s.source = b.at("source").get<std::string>();
    s.detail = b.at("detail").get<std::string>();
    for (const nlohmann::json& d : j.at("devices")) {
      WorkerDeviceStatus device;
      device.index = d.at("index").get<uint32_t>();
      device.name = d.at("name").get<std::string>();
      device.description = d.at("description").get<std::string>();
      device.backend = d.at("backend").get<std::string>();
      device.free_bytes = d.at("free_bytes").get<uint64_t>();
      device.total_bytes = d.at("total_bytes").get<uint64_t>();
      s.devices.push_back(std::move(device));
    }
    s.allocated_bytes = j.at("allocated_bytes").get<uint64_t>();
    s.busy = j.at("busy").get<bool>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corrupt(std::string("malformed snug worker status: ") + e.what());
  }
}

}  // namespace snug::hw
