// JSON forms of hw's structs. `snug hw --json` and `snug plan --json` both print BudgetToJson, so
// their "budget" objects agree field for field.
#pragma once

#include <nlohmann/json.hpp>

#include "hw/budget.h"
#include "hw/detect.h"
#include "hw/profiles.h"

namespace snug::hw {

// {host_bytes, host_raw_bytes, headroom_bytes, source, detail,
//  devices: [{name, description, backend, total_bytes, free_bytes, unified, budget_bytes, source,
//             host and remote_index for a worker's device}],
//  workers: [{endpoint, protocol, version, source, detail, allocated_bytes, busy}] when any}
nlohmann::json BudgetToJson(const Budget& budget);

// {memory: {...}, self_rss_bytes, cgroup: {...}|null, cpu: {...}, notes: [...]}
nlohmann::json HostInfoToJson(const HostInfo& host);

// {name, summary, ram_bytes, host_available_bytes, cgroup_limit_bytes|null, cpu_cores,
//  assumptions, devices: [...]}
nlohmann::json ProfileToJson(const Profile& profile);

}  // namespace snug::hw
