#include "synth/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <ggml.h>
#include <gguf.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "config/env.h"
#include "synth/layout.h"

namespace snug::synth {
namespace {

using internal::BuiltModel;
using internal::Fill;
using internal::TensorPlan;

// Random weight matrices use fan-in scaling (stddev 1/sqrt(columns), as Xavier/LeCun
// initialisation does): every projection keeps activations near unit scale, so layers stay in
// their non-linear range and the next token depends on the input, while values stay finite.
// The token embedding is small (0.02, the usual init): with tied embeddings the input token's own
// logit is |e_t|^2, and a large embedding would make greedy decoding repeat the last token.
constexpr float kEmbeddingStddev = 0.02f;

float StddevFor(const TensorPlan& t) {
  if (t.name == "token_embd.weight") return kEmbeddingStddev;
  return 1.0f / std::sqrt(static_cast<float>(t.ne[0]));
}
// Floats generated and quantized at a time (64 MiB of float32).
constexpr int64_t kChunkElements = int64_t{16} << 20;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// xoshiro256**: fast, and fully specified (unlike std::normal_distribution), so a seed gives
// the same bytes with every compiler and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_)
      s = SplitMix64(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), in integer
  // arithmetic so it is exact everywhere.
  float Gaussian() {
    const uint64_t r = Next();
    const int64_t sum = static_cast<int64_t>((r & 0xffff) + ((r >> 16) & 0xffff) +
                                             ((r >> 32) & 0xffff) + (r >> 48));
    return static_cast<float>(sum - 131070) * (1.0f / 37837.23f);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

Status WriteAll(int fd, const void* data, size_t size, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

// Writes one tensor's bytes at its offset; zero-mode weights and zero biases are left as holes.
Status WriteTensor(int fd, const BuiltModel& model, size_t index, const WriteOptions& options,
                   const std::string& path) {
  const TensorPlan& t = model.tensors[index];
  const gguf_context* g = model.gguf.get();
  const uint64_t offset = model.meta_bytes + gguf_get_tensor_offset(g, index);
  const int64_t n_per_row = t.ne[0];
  int64_t n_elements = 1;
  for (int64_t d : t.ne)
    n_elements *= d;

  if (t.fill == Fill::kOnes || t.fill == Fill::kValues) {
    std::vector<float> values =
        t.fill == Fill::kValues ? t.values : std::vector<float>(n_elements, 1.0f);
    return WriteAll(fd, values.data(), values.size() * sizeof(float), offset, path);
  }
  if (t.fill == Fill::kZeros || options.weights == WriteOptions::Weights::kZero) {
    return Status::Ok();
  }

  const auto type = static_cast<ggml_type>(t.type);
  const size_t row_size = ggml_row_size(type, n_per_row);
  const int64_t n_rows = n_elements / n_per_row;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElements / n_per_row);
  Rng rng(options.seed ^ Fnv1a(t.name));
  const float stddev = StddevFor(t);
  std::vector<float> src;
  std::vector<uint8_t> dst;
  for (int64_t row = 0; row < n_rows; row += rows_per_chunk) {
    const int64_t rows = std::min(rows_per_chunk, n_rows - row);
    src.resize(static_cast<size_t>(rows * n_per_row));
    for (float& x : src)
      x = rng.Gaussian() * stddev;
    dst.resize(static_cast<size_t>(rows) * row_size);
    ggml_quantize_chunk(type, src.data(), dst.data(), 0, rows, n_per_row, nullptr);
    SNUG_RETURN_IF_ERROR(
        WriteAll(fd, dst.data(), dst.size(), offset + static_cast<uint64_t>(row) * row_size, path));
  }
  return Status::Ok();
}

// Quantizing a 0.5B model takes a while: tensors are spread over the cores. Each tensor has its
// own random stream and offset, so the bytes do not depend on the thread count or order.
Status WriteTensors(int fd, const BuiltModel& model, const WriteOptions& options,
                    const std::string& path) {
  const bool random = options.weights == WriteOptions::Weights::kRandom;
  const unsigned n_threads =
      random ? std::max(1u, std::min(4u, std::thread::hardware_concurrency())) : 1u;
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first_error;
  auto work = [&] {
    for (size_t i = next++; i < model.tensors.size(); i = next++) {
      Status s = WriteTensor(fd, model, i, options, path);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n_threads; ++i)
    threads.emplace_back(work);
  work();
  for (std::thread& t : threads)
    t.join();
  return first_error;
}

Status WriteFile(const BuiltModel& model, const std::string& tmp, int fd,
                 const WriteOptions& options, const std::string& path) {
  std::vector<uint8_t> meta(model.meta_bytes);
  gguf_get_meta_data(model.gguf.get(), meta.data());
  SNUG_RETURN_IF_ERROR(WriteAll(fd, meta.data(), meta.size(), 0, path));
  SNUG_RETURN_IF_ERROR(WriteTensors(fd, model, options, path));
  // Extending the file instead of writing the zeros keeps zero-weight files sparse.
  if (ftruncate(fd, static_cast<off_t>(model.file_bytes)) != 0) {
    return Status::IoError(fmt::format("cannot extend {} to {} bytes: {}", tmp, model.file_bytes,
                                       std::strerror(errno)));
  }
  if (fsync(fd) != 0) {
    return Status::IoError(fmt::format("cannot sync {}: {}", tmp, std::strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace

Status WriteModel(const Preset& preset, const std::string& path, const WriteOptions& options) {
  Preset p = preset;
  if (options.type) {
    SNUG_ASSIGN_OR_RETURN(p, WithType(preset, *options.type));
  }
  const std::string vocab_dir = options.vocab_dir.empty() ? env::VocabDir() : options.vocab_dir;
  SNUG_ASSIGN_OR_RETURN(BuiltModel model, internal::BuildModel(p, vocab_dir));
  if (options.edit_metadata) {
    // The data section keeps its size and its offsets; only the header before it may change size.
    const uint64_t data_bytes = model.file_bytes - model.meta_bytes;
    options.edit_metadata(model.gguf.get());
    model.meta_bytes = gguf_get_meta_size(model.gguf.get());
    model.file_bytes = model.meta_bytes + data_bytes;
  }

  // A temporary file in the same directory, so the final rename is atomic.
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) {
    return Status::IoError(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  }
  fchmod(fd, 0644);
  Status status = WriteFile(model, tmp, fd, options, path);
  if (close(fd) != 0 && status.ok()) {
    status = Status::IoError(fmt::format("cannot close {}: {}", tmp, std::strerror(errno)));
  }
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status =
        Status::IoError(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno)));
  }
  if (!status.ok()) unlink(tmp.c_str());
  return status;
}

}  // namespace snug::synth
