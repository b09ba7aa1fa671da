#include "engine/lent_device.h"

#include <ggml-backend-impl.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <unordered_map>

namespace snug::engine {

struct LentDevice::Impl {
  ggml_backend_dev_t real = nullptr;
  MemoryQuery memory;
  ggml_backend_device wrapper{};
  // The real device's default buffer type with alloc_buffer counted (when counting).
  bool counting = false;
  ggml_backend_buffer_type_t real_buft = nullptr;
  ggml_backend_buffer_type counted_buft{};
  std::atomic<uint64_t> allocated{0};
};

namespace {

using Impl = LentDevice::Impl;

Impl* Of(ggml_backend_dev_t dev) {
  return static_cast<Impl*>(dev->context);
}
ggml_backend_dev_t Real(ggml_backend_dev_t dev) {
  return Of(dev)->real;
}

// Device interface: each call goes to the real device with the real device as its argument (its
// functions read their own context), except the memory query.
const char* GetName(ggml_backend_dev_t d) {
  return Real(d)->iface.get_name(Real(d));
}
const char* GetDescription(ggml_backend_dev_t d) {
  return Real(d)->iface.get_description(Real(d));
}
void GetMemory(ggml_backend_dev_t d, size_t* free, size_t* total) {
  Of(d)->memory(free, total);
}
enum ggml_backend_dev_type GetType(ggml_backend_dev_t d) {
  return Real(d)->iface.get_type(Real(d));
}
void GetProps(ggml_backend_dev_t d, ggml_backend_dev_props* props) {
  Real(d)->iface.get_props(Real(d), props);
  Of(d)->memory(&props->memory_free, &props->memory_total);
}
ggml_backend_t InitBackend(ggml_backend_dev_t d, const char* params) {
  ggml_backend_t backend = Real(d)->iface.init_backend(Real(d), params);
  // The backend names the real device (ggml_backend_cpu_init does); rpc_server asks
  // ggml_backend_get_device(backend) for memory, so it must name this one.
  if (backend != nullptr) backend->device = d;
  return backend;
}
ggml_backend_buffer_type_t GetBufferType(ggml_backend_dev_t d) {
  Impl* impl = Of(d);
  return impl->counting ? &impl->counted_buft : Real(d)->iface.get_buffer_type(Real(d));
}
ggml_backend_buffer_type_t GetHostBufferType(ggml_backend_dev_t d) {
  return Real(d)->iface.get_host_buffer_type(Real(d));
}
ggml_backend_buffer_t BufferFromHostPtr(ggml_backend_dev_t d, void* ptr, size_t size,
                                        size_t max_tensor_size) {
  return Real(d)->iface.buffer_from_host_ptr(Real(d), ptr, size, max_tensor_size);
}
bool SupportsOp(ggml_backend_dev_t d, const ggml_tensor* op) {
  return Real(d)->iface.supports_op(Real(d), op);
}
bool SupportsBuft(ggml_backend_dev_t d, ggml_backend_buffer_type_t buft) {
  Impl* impl = Of(d);
  if (impl->counting && buft == &impl->counted_buft) buft = impl->real_buft;
  return Real(d)->iface.supports_buft(Real(d), buft);
}
bool OffloadOp(ggml_backend_dev_t d, const ggml_tensor* op) {
  return Real(d)->iface.offload_op(Real(d), op);
}
ggml_backend_event_t EventNew(ggml_backend_dev_t d) {
  return Real(d)->iface.event_new(Real(d));
}
void EventFree(ggml_backend_dev_t d, ggml_backend_event_t e) {
  Real(d)->iface.event_free(Real(d), e);
}
void EventSynchronize(ggml_backend_dev_t d, ggml_backend_event_t e) {
  Real(d)->iface.event_synchronize(Real(d), e);
}

// Buffer type interface of the counted buffer type: forwarded to the real one, alloc counted.
Impl* Of(ggml_backend_buffer_type_t buft) {
  return static_cast<Impl*>(buft->context);
}
ggml_backend_buffer_type_t Real(ggml_backend_buffer_type_t buft) {
  return Of(buft)->real_buft;
}

const char* BuftName(ggml_backend_buffer_type_t b) {
  return Real(b)->iface.get_name(Real(b));
}
size_t BuftAlignment(ggml_backend_buffer_type_t b) {
  return Real(b)->iface.get_alignment(Real(b));
}
size_t BuftMaxSize(ggml_backend_buffer_type_t b) {
  return Real(b)->iface.get_max_size(Real(b));
}
size_t BuftAllocSize(ggml_backend_buffer_type_t b, const ggml_tensor* t) {
  return Real(b)->iface.get_alloc_size(Real(b), t);
}
bool BuftIsHost(ggml_backend_buffer_type_t b) {
  return Real(b)->iface.is_host(Real(b));
}

// Live counted buffers. A buffer keeps its real buffer type and interface (backends recognise
// their buffers by those), except free_buffer, which ggml_backend_buffer_free calls before
// deleting the buffer; this table remembers the real one.
struct LiveBuffer {
  void (*free_buffer)(ggml_backend_buffer_t) = nullptr;
  Impl* owner = nullptr;
  size_t size = 0;
};
std::mutex live_mutex;
std::unordered_map<ggml_backend_buffer_t, LiveBuffer>& LiveBuffers() {
  static auto* live = new std::unordered_map<ggml_backend_buffer_t, LiveBuffer>();
  return *live;
}

void CountedFree(ggml_backend_buffer_t buffer) {
  LiveBuffer live;
  {
    std::lock_guard<std::mutex> lock(live_mutex);
    auto it = LiveBuffers().find(buffer);
    if (it == LiveBuffers().end()) return;  // not ours: cannot happen, nothing to free then
    live = it->second;
    LiveBuffers().erase(it);
  }
  live.owner->allocated -= live.size;
  if (live.free_buffer != nullptr) live.free_buffer(buffer);
}

ggml_backend_buffer_t CountedAlloc(ggml_backend_buffer_type_t b, size_t size) {
  Impl* impl = Of(b);
  // A buffer beyond the budget is refused, not allocated into the kernel's OOM killer: a
  // client's plan can be stale (another client, memory taken since it probed) or come from a
  // planner that ignores the budget (a plain llama.cpp). ggml-rpc answers a null buffer, which
  // llama.cpp reports as a failed allocation.
  size_t free = 0, total = 0;
  impl->memory(&free, &total);
  if (size > free) {
    std::fprintf(stderr,
                 "snug worker: refused a %.1f MiB buffer: only %.1f MiB of this worker's budget "
                 "is free\n",
                 size / 1048576.0, free / 1048576.0);
    std::fflush(stderr);
    return nullptr;
  }
  ggml_backend_buffer_t buffer = Real(b)->iface.alloc_buffer(Real(b), size);
  if (buffer == nullptr) return nullptr;
  {
    std::lock_guard<std::mutex> lock(live_mutex);
    LiveBuffers()[buffer] = {buffer->iface.free_buffer, impl, buffer->size};
  }
  impl->allocated += buffer->size;
  buffer->iface.free_buffer = CountedFree;
  return buffer;
}

// Keeps an optional entry optional: ggml checks for NULL before calling several of them.
template <typename Fn>
void Forward(Fn* slot, Fn forwarder) {
  if (*slot != nullptr) *slot = forwarder;
}

}  // namespace

LentDevice::LentDevice(ggml_backend_dev_t real, MemoryQuery memory, bool count_buffers)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.real = real;
  m.memory = std::move(memory);
  ggml_backend_device_i& i = m.wrapper.iface;
  i = real->iface;
  Forward(&i.get_name, GetName);
  Forward(&i.get_description, GetDescription);
  i.get_memory = GetMemory;
  Forward(&i.get_type, GetType);
  Forward(&i.get_props, GetProps);
  Forward(&i.init_backend, InitBackend);
  Forward(&i.get_buffer_type, GetBufferType);
  Forward(&i.get_host_buffer_type, GetHostBufferType);
  Forward(&i.buffer_from_host_ptr, BufferFromHostPtr);
  Forward(&i.supports_op, SupportsOp);
  Forward(&i.supports_buft, SupportsBuft);
  Forward(&i.offload_op, OffloadOp);
  Forward(&i.event_new, EventNew);
  Forward(&i.event_free, EventFree);
  Forward(&i.event_synchronize, EventSynchronize);
  // The registry stays the real one: ggml_backend_rpc_start_server finds the CPU backend's
  // ggml_backend_set_n_threads through it.
  m.wrapper.reg = real->reg;
  m.wrapper.context = &m;

  m.real_buft = ggml_backend_dev_buffer_type(real);
  m.counting = count_buffers && m.real_buft != nullptr;
  if (m.counting) {
    ggml_backend_buffer_type_i& b = m.counted_buft.iface;
    b = m.real_buft->iface;
    Forward(&b.get_name, BuftName);
    Forward(&b.alloc_buffer, CountedAlloc);
    Forward(&b.get_alignment, BuftAlignment);
    Forward(&b.get_max_size, BuftMaxSize);
    Forward(&b.get_alloc_size, BuftAllocSize);
    Forward(&b.is_host, BuftIsHost);
    m.counted_buft.device = &m.wrapper;
    m.counted_buft.context = &m;
  }
}

LentDevice::~LentDevice() = default;

ggml_backend_dev_t LentDevice::device() {
  return &impl_->wrapper;
}
ggml_backend_dev_t LentDevice::real() const {
  return impl_->real;
}
void LentDevice::Memory(size_t* free, size_t* total) const {
  impl_->memory(free, total);
}
uint64_t LentDevice::allocated_bytes() const {
  return impl_->allocated.load();
}

}  // namespace snug::engine
