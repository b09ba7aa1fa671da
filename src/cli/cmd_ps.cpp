// snug ps: the models a running `snug serve` holds, with their plans and memory, read from its
// GET /v1/ps endpoint.
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <memory>

#include "cli/command.h"
#include "core/size.h"

namespace snug::cli {
namespace {

struct PsArgs {
  std::string host = "127.0.0.1";
  int port = 11435;
  std::string api_key;
  bool json = false;
};

std::string Expires(int64_t seconds) {
  if (seconds < 0) return "-";
  if (seconds >= 3600) return fmt::format("{}h{:02}m", seconds / 3600, seconds % 3600 / 60);
  if (seconds >= 60) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  return fmt::format("{}s", seconds);
}

Status RunPs(const PsArgs& args) {
  httplib::Client client(args.host, args.port);
  client.set_connection_timeout(3);
  client.set_read_timeout(10);
  httplib::Headers headers;
  if (!args.api_key.empty()) headers.emplace("Authorization", "Bearer " + args.api_key);
  auto res = client.Get("/v1/ps", headers);
  if (!res) {
    return Status::Unavailable(
        fmt::format("no snug server answers on {}:{} ({}); start one with 'snug serve'", args.host,
                    args.port, httplib::to_string(res.error())));
  }
  auto body = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (res->status != 200 || body.is_discarded()) {
    std::string message = body.is_object() && body.contains("error")
                              ? body["error"].value("message", res->body)
                              : res->body;
    return res->status == 401
               ? Status::PermissionDenied(message + " (pass --api-key)")
               : Status::IoError(fmt::format("server answered {}: {}", res->status, message));
  }
  if (args.json) {
    fmt::print("{}\n", body.dump(2));
    return Status::Ok();
  }
  const auto& models = body.value("models", nlohmann::json::array());
  if (models.empty()) {
    fmt::print("no models loaded (budget {})\n", FormatSize(body.value("budget_bytes", 0ull)));
    return Status::Ok();
  }
  fmt::print("{:<32} {:>7} {:>5} {:>5} {:>10} {:>10} {:>9} {:>7} {:>8}\n", "NAME", "CTX", "KV",
             "SLOTS", "PLANNED", "ALLOCATED", "KV CELLS", "ACTIVE", "UNTIL");
  for (const auto& m : models) {
    const auto& plan = m["plan"];
    fmt::print("{:<32} {:>7} {:>5} {:>5} {:>10} {:>10} {:>9} {:>7} {:>8}\n", m.value("name", "?"),
               plan.value("n_ctx", 0), plan.value("kv_type", "?"), plan.value("n_parallel", 0),
               FormatSize(plan.value("peak_host_bytes", 0ull)),
               FormatSize(m.value("allocated_bytes", 0ull)),
               fmt::format("{}/{}", m.value("kv_cells_used", 0), m.value("kv_cells_total", 0)),
               fmt::format("{}+{}", m.value("active", 0), m.value("queued", 0)),
               Expires(m.value("expires_in_seconds", int64_t{-1})));
  }
  fmt::print("planned {} of the {} budget\n", FormatSize(body.value("planned_bytes", 0ull)),
             FormatSize(body.value("budget_bytes", 0ull)));
  return Status::Ok();
}

}  // namespace

void AddPsCommand(CLI::App& root, int* exit_code) {
  auto args = std::make_shared<PsArgs>();
  auto* cmd = root.add_subcommand("ps", "List models loaded by a running server");
  cmd->add_option("--host", args->host, "Server address (default 127.0.0.1)");
  cmd->add_option("--port", args->port, "Server port (default 11435)");
  cmd->add_option("--api-key", args->api_key, "API key of the server, if it needs one");
  cmd->add_flag("--json", args->json, "Print the server's JSON");
  cmd->callback([args, exit_code] { *exit_code = Report(RunPs(*args)); });
}

}  // namespace snug::cli
