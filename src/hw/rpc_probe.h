// Asking a ggml-rpc server (llama.cpp's rpc-server, or a `snug worker` whose status endpoint is
// not reachable) for its protocol version and device memory over ggml-rpc's own wire format,
// with a deadline on every step. Internal to src/hw (hw::ProbeWorkers uses it).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "hw/tcp_client.h"

namespace snug::hw {

// The ggml-rpc protocol this snug speaks (RPC_PROTO_*_VERSION of the llama.cpp it links), "6.0.0".
std::string RpcProtocolVersion();

// ggml-rpc's own rule (negotiate_hello in ggml-rpc.cpp): same major, minor not newer than ours.
bool RpcProtocolCompatible(int major, int minor);

struct RpcServerFacts {
  int major = 0, minor = 0, patch = 0;
  struct Memory {
    uint64_t free_bytes = 0;
    uint64_t total_bytes = 0;
  };
  std::vector<Memory> devices;  // by device index (GET_DEVICE_MEMORY)
};

// HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY for each device, then closes the connection (the
// server goes back to accepting). Error sentences name `endpoint`:
//   Unavailable "worker E is unreachable: connection refused"
//   Unavailable "worker E accepted the connection but did not answer within 2 s (a ggml-rpc
//                server serves one client at a time: is another snug or llama.cpp using it?)"
//   Unimplemented "worker E speaks ggml-rpc 5.1.0, this snug 6.0.0: run the same llama.cpp
//                  version on both"
//   Corrupt when the answers do not have ggml-rpc's shape.
// `timeout` only words the messages; `deadline` bounds the work.
Result<RpcServerFacts> QueryRpcServer(const std::string& endpoint, const std::string& host,
                                      int port, std::chrono::milliseconds timeout,
                                      Deadline deadline);

// "2 s", "0.5 s".
std::string FormatTimeout(std::chrono::milliseconds timeout);

}  // namespace snug::hw
