#include "hw/rpc_probe.h"

#include <ggml-rpc.h>

#include <fmt/format.h>

#include <array>
#include <cstring>

namespace snug::hw {
namespace {

// The wire format below is ggml-rpc.cpp's for protocol 6 (enum rpc_cmd, rpc_msg_*). A llama.cpp
// that changes the protocol's major version fails here, to be checked against ggml-rpc.cpp.
static_assert(RPC_PROTO_MAJOR_VERSION == 6,
              "ggml-rpc protocol changed: check rpc_probe.cpp against ggml-rpc.cpp");
constexpr uint8_t kCmdGetDeviceMemory = 11;  // RPC_CMD_GET_DEVICE_MEMORY
constexpr uint8_t kCmdHello = 14;            // RPC_CMD_HELLO ("must be always 14")
constexpr uint8_t kCmdDeviceCount = 15;      // RPC_CMD_DEVICE_COUNT
// rpc_msg_hello_req: conn_caps[RPC_CONN_CAPS_SIZE] (transport.h); all zero = plain TCP, no
// transport upgrade. rpc_msg_hello_rsp: major, minor, patch, padding, conn_caps.
constexpr size_t kConnCapsSize = 24;
constexpr size_t kHelloReplySize = 4 + kConnCapsSize;
constexpr uint32_t kMaxDevices = 256;

// Request: | cmd (1 byte) | payload size (8 bytes) | payload |. Integers are the sender's native
// (little-endian) layout, as ggml-rpc copies its packed structs.
Status SendCommand(const TcpConnection& conn, uint8_t cmd, const void* payload, uint64_t size,
                   Deadline deadline) {
  std::string message(1 + sizeof(size) + size, '\0');
  message[0] = static_cast<char>(cmd);
  std::memcpy(message.data() + 1, &size, sizeof(size));
  if (size > 0) std::memcpy(message.data() + 1 + sizeof(size), payload, size);
  return conn.Write(message.data(), message.size(), deadline);
}

// Response: | payload size (8 bytes) | payload |, the payload of exactly `size` bytes.
Status ReadReply(const TcpConnection& conn, void* payload, uint64_t size, Deadline deadline) {
  uint64_t got = 0;
  SNUG_RETURN_IF_ERROR(conn.ReadExact(&got, sizeof(got), deadline));
  if (got != size)
    return Status::Corrupt(fmt::format("a reply of {} bytes where {} were expected", got, size));
  return conn.ReadExact(payload, size, deadline);
}

}  // namespace

std::string RpcProtocolVersion() {
  return fmt::format("{}.{}.{}", RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION,
                     RPC_PROTO_PATCH_VERSION);
}

bool RpcProtocolCompatible(int major, int minor) {
  return major == RPC_PROTO_MAJOR_VERSION && minor <= RPC_PROTO_MINOR_VERSION;
}

std::string FormatTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return fmt::format("{} s", timeout.count() / 1000);
  return fmt::format("{:.1f} s", timeout.count() / 1000.0);
}

Result<RpcServerFacts> QueryRpcServer(const std::string& endpoint, const std::string& host,
                                      int port, std::chrono::milliseconds timeout,
                                      Deadline deadline) {
  Result<TcpConnection> conn = TcpConnect(host, port, deadline);
  if (!conn.ok()) {
    return Status::Unavailable(
        fmt::format("worker {} is unreachable: {}", endpoint, conn.status().message()));
  }
  // Every failure after the connection is accepted, worded for the user.
  auto failed = [&](const Status& s, const char* step) -> Status {
    if (s.code() == Code::kUnavailable) {
      return Status::Unavailable(fmt::format(
          "worker {} accepted the connection but did not answer within {} (a ggml-rpc server "
          "serves one client at a time: is another snug or llama.cpp using it?)",
          endpoint, FormatTimeout(timeout)));
    }
    if (s.code() == Code::kCorrupt) {
      return Status::Corrupt(
          fmt::format("worker {} is not speaking ggml-rpc: {} to {}", endpoint, s.message(), step));
    }
    return Status::Unavailable(
        fmt::format("worker {} failed during {}: {} (not a ggml-rpc "
                    "server, or one of another llama.cpp version?)",
                    endpoint, step, s.message()));
  };

  const std::array<uint8_t, kConnCapsSize> caps{};
  if (Status s = SendCommand(*conn, kCmdHello, caps.data(), caps.size(), deadline); !s.ok())
    return failed(s, "the ggml-rpc handshake");
  // The reply's size is read apart from its body: a server of another protocol version may send
  // another layout, and its version bytes still come first.
  uint64_t hello_size = 0;
  if (Status s = conn->ReadExact(&hello_size, sizeof(hello_size), deadline); !s.ok())
    return failed(s, "the ggml-rpc handshake");
  if (hello_size < 3 || hello_size > 1024) {
    return failed(Status::Corrupt(fmt::format("a reply of {} bytes", hello_size)),
                  "the ggml-rpc handshake");
  }
  std::string hello(hello_size, '\0');
  if (Status s = conn->ReadExact(hello.data(), hello.size(), deadline); !s.ok())
    return failed(s, "the ggml-rpc handshake");
  RpcServerFacts facts;
  facts.major = static_cast<uint8_t>(hello[0]);
  facts.minor = static_cast<uint8_t>(hello[1]);
  facts.patch = static_cast<uint8_t>(hello[2]);
  if (!RpcProtocolCompatible(facts.major, facts.minor)) {
    return Status::Unimplemented(fmt::format(
        "worker {} speaks ggml-rpc {}.{}.{}, this snug {}: run the same llama.cpp version on both",
        endpoint, facts.major, facts.minor, facts.patch, RpcProtocolVersion()));
  }
  if (hello_size != kHelloReplySize) {
    return failed(Status::Corrupt(fmt::format("a reply of {} bytes", hello_size)),
                  "the ggml-rpc handshake");
  }

  uint32_t count = 0;
  Status s = SendCommand(*conn, kCmdDeviceCount, nullptr, 0, deadline);
  if (s.ok()) s = ReadReply(*conn, &count, sizeof(count), deadline);
  if (!s.ok()) return failed(s, "DEVICE_COUNT");
  if (count == 0 || count > kMaxDevices) {
    return Status::Corrupt(
        fmt::format("worker {} reports {} devices: nothing to place layers on", endpoint, count));
  }
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t memory[2] = {0, 0};  // rpc_msg_get_device_memory_rsp: free_mem, total_mem
    s = SendCommand(*conn, kCmdGetDeviceMemory, &i, sizeof(i), deadline);
    if (s.ok()) s = ReadReply(*conn, memory, sizeof(memory), deadline);
    if (!s.ok()) return failed(s, "GET_DEVICE_MEMORY");
    facts.devices.push_back({memory[0], memory[1]});
  }
  return facts;
}

}  // namespace snug::hw
