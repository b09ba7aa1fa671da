// Workers: other hosts lending their memory and compute over ggml-rpc (`snug worker`, or
// llama.cpp's own rpc-server), named by --worker HOST:PORT or SNUG_WORKERS. ProbeWorkers learns
// what each can hold, for the planner, without going through ggml-rpc's client: that one aborts
// the whole process when a worker is unreachable.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "hw/budget.h"

namespace snug::hw {

// "HOST:PORT" or "[IPv6]:PORT" -> {host (without brackets), port 1..65535}. InvalidArgument
// naming the text otherwise.
Result<std::pair<std::string, int>> ParseWorkerEndpoint(const std::string& endpoint);

// The workers to use: the --worker values (each may also hold a comma-separated list), or when
// there are none the SNUG_WORKERS environment variable (comma-separated). Each is validated with
// ParseWorkerEndpoint; repeats are dropped, the first kept. Empty when none are named.
Result<std::vector<std::string>> WorkerList(const std::vector<std::string>& flags);

// Probes every worker in parallel, each within `timeout`, and on success appends one WorkerHost
// per worker to budget->workers and one Device (backend "RPC", host = endpoint, remote_index =
// its index there) per worker device to budget->devices. A `snug worker` is asked at
// http://HOST:(PORT+1)/snug/worker and reports its own budget (cgroup, meminfo or override) less
// what it holds; it is kept when busy (WorkerHost::busy). Anything else is asked over ggml-rpc
// itself (HELLO, DEVICE_COUNT, GET_DEVICE_MEMORY): llama.cpp's rpc-server reports the host's free
// memory, so its devices get DefaultHeadroom(total) taken off (source "rpc-server").
//
// On failure appends nothing and returns every worker's error in one sentence, with the code of
// the first: Unavailable when a worker is unreachable or does not answer (a ggml-rpc server busy
// with another client), Unimplemented when it speaks another ggml-rpc version, Corrupt when it
// does not speak ggml-rpc, InvalidArgument for a malformed endpoint.
Status ProbeWorkers(const std::vector<std::string>& endpoints, Budget* budget,
                    std::chrono::milliseconds timeout = std::chrono::seconds(2));

}  // namespace snug::hw
