// Noticing that an HTTP client hung up while its non-streamed request is still generating.
// Debian 12's cpp-httplib (0.11.4) gives handlers no socket and no is_connection_closed, only the
// connection's addresses; a streamed response learns it from a failed write, a non-streamed one
// writes nothing until the answer is ready.
#pragma once

#include <functional>
#include <string>

namespace snug::server {

// A probe for the accepted TCP connection with these endpoints (as httplib reports them): true
// once the peer has closed or reset it. The connection's socket is found once, among this
// process's descriptors; if it cannot be found the probe always says the client is there.
std::function<bool()> ClientGoneProbe(const std::string& remote_addr, int remote_port,
                                      int local_port);

}  // namespace snug::server
