// Loading onto workers (ggml-rpc) and what happens when one is lost.
//
// ggml-rpc's client aborts the whole process when a worker's connection breaks ("Remote RPC
// server crashed", ggml-rpc.cpp RPC_STATUS_ASSERT). snug installs ggml's abort callback: on
// such a failure it finds which worker is gone (its port no longer accepts connections), tells
// the handler set here (the CLI prints the error and exits; the server ends that model's
// requests with an error naming the worker and keeps serving the rest), and then parks the
// thread that hit the failure instead of aborting. ggml-rpc keeps one connection per worker for
// the life of the process, so a lost worker is not used again until snug restarts.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace snug::engine {

// Called once per lost worker, on the thread that found the failure, which never returns to
// ggml afterwards. Must not wait for anything that runs on the lost worker.
using WorkerLostHandler = std::function<void(const std::string& endpoint, const std::string& what)>;

// Replaces the handler. Without one, a lost worker prints "snug: <what>" and exits with 1.
void SetWorkerLostHandler(WorkerLostHandler handler);

// Whether this process lost the worker (it will not be used again).
bool WorkerLost(const std::string& endpoint);

// The workers this process has connected to.
std::vector<std::string> ConnectedWorkers();

}  // namespace snug::engine
