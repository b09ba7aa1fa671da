// This process's TCP sockets on one local port, from /proc/self/net/tcp{,6} matched against the
// socket inodes of /proc/self/fd: how `snug worker` learns, from outside ggml-rpc's server loop,
// whether that loop is listening yet and whether it is serving a client. Internal to src/engine.
#pragma once

#include <optional>

namespace snug::engine {

struct PortSockets {
  int listening = 0;
  // Accepted connections being served. Connections still in the listen backlog have no file
  // descriptor (inode 0) and do not count.
  int established = 0;
};

// nullopt where /proc cannot tell (not Linux, /proc not mounted).
std::optional<PortSockets> OwnTcpSockets(int local_port);

}  // namespace snug::engine
