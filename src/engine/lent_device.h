// A ggml device lent to ggml-rpc clients (`snug worker`): the real device with its memory query
// answered by snug. ggml-rpc's GET_DEVICE_MEMORY asks the device its server backend was made from
// (ggml_backend_dev_memory in rpc_server::get_device_memory); for the CPU that is the host's free
// RAM, blind to containers and to what the worker already holds for its client. Internal to
// src/engine (engine::RpcWorker).
#pragma once

#include <ggml-backend.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace snug::engine {

class LentDevice {
 public:
  // Answers the memory query (free, total bytes); called on ggml-rpc's server thread and on
  // whatever thread asks for a status, so it must be thread-safe.
  using MemoryQuery = std::function<void(size_t* free, size_t* total)>;

  // Wraps `real`. With `count_buffers`, buffers allocated from the device's buffer type are
  // counted while they live (allocated_bytes). Only safe where the backend never recognises its
  // buffers by their free_buffer function: true for the CPU, not for CUDA and Metal
  // (ggml_backend_buffer_is_cuda compares iface.free_buffer).
  LentDevice(ggml_backend_dev_t real, MemoryQuery memory, bool count_buffers);
  ~LentDevice();
  LentDevice(const LentDevice&) = delete;
  LentDevice& operator=(const LentDevice&) = delete;

  // The device to hand to ggml_backend_rpc_start_server. Everything but the memory query is the
  // real device's: names, type, buffer types, supports_op, events, backend init (the backend it
  // makes points back at this device, so the server's memory query lands here).
  ggml_backend_dev_t device();
  ggml_backend_dev_t real() const;
  void Memory(size_t* free, size_t* total) const;
  // Bytes in live buffers allocated through device() (0 unless count_buffers).
  uint64_t allocated_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace snug::engine
