#include "engine/own_sockets.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>

namespace snug::engine {
namespace {

// Inodes of the sockets this process holds open ("socket:[12345]" links in /proc/self/fd).
std::unordered_set<unsigned long> OwnSocketInodes() {
  std::unordered_set<unsigned long> inodes;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return inodes;
  while (dirent* entry = readdir(dir)) {
    const std::string path = std::string("/proc/self/fd/") + entry->d_name;
    char target[64];
    const ssize_t n = readlink(path.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1) inodes.insert(inode);
  }
  closedir(dir);
  return inodes;
}

}  // namespace

std::optional<PortSockets> OwnTcpSockets(int local_port) {
  PortSockets counts;
  bool readable = false;
  const std::unordered_set<unsigned long> own = OwnSocketInodes();
  for (const char* file : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::ifstream in(file);
    if (!in) continue;
    readable = true;
    std::string line;
    std::getline(in, line);  // header
    // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout
    //  inode": the local address ends in ":PPPP" (hex port); st 0A = LISTEN, 01 = ESTABLISHED.
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
      unsigned long inode = 0;
      if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      const size_t colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      if (std::strtol(local.c_str() + colon + 1, nullptr, 16) != local_port) continue;
      if (inode == 0 || own.count(inode) == 0) continue;
      if (state == "0A") ++counts.listening;
      if (state == "01") ++counts.established;
    }
  }
  if (!readable) return std::nullopt;
  return counts;
}

}  // namespace snug::engine
