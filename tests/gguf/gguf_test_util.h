// Helpers for the gguf tests: GGUF files written with ggml's own gguf writer (the reference for
// the format), hand-crafted byte streams for corrupt inputs, and temporary directories.
#pragma once

#include <ggml.h>
#include <gguf.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace snug::gguf::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snug-gguf-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct TensorSpec {
  std::string name;
  ggml_type type = GGML_TYPE_F32;
  std::vector<int64_t> ne;
};

// Writes a GGUF file with ggml's writer: `set_kv` adds metadata to the gguf_context, `tensors` are
// declared, and the file is extended (sparse, zero) to the full size of the data section, so the
// result is exactly what llama.cpp's tools produce. Returns the file size.
inline uint64_t WriteGguf(const std::string& path, const std::function<void(gguf_context*)>& set_kv,
                          const std::vector<TensorSpec>& tensors) {
  gguf_context* g = gguf_init_empty();
  set_kv(g);
  ggml_init_params params{/*mem_size=*/ggml_tensor_overhead() * (tensors.size() + 1),
                          /*mem_buffer=*/nullptr, /*no_alloc=*/true};
  ggml_context* ctx = ggml_init(params);
  for (const TensorSpec& spec : tensors) {
    ggml_tensor* t =
        ggml_new_tensor(ctx, spec.type, static_cast<int>(spec.ne.size()), spec.ne.data());
    ggml_set_name(t, spec.name.c_str());
    gguf_add_tensor(g, t);
  }
  gguf_write_to_file(g, path.c_str(), /*only_meta=*/true);
  const size_t alignment = gguf_get_alignment(g);
  uint64_t size = gguf_get_meta_size(g);
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    size += (gguf_get_tensor_size(g, i) + alignment - 1) / alignment * alignment;
  }
  gguf_free(g);
  ggml_free(ctx);
  if (truncate(path.c_str(), static_cast<off_t>(size)) != 0) return 0;
  return size;
}

inline std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void WriteAll(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Builds GGUF bytes by hand, for inputs ggml's writer refuses to produce.
class Bytes {
 public:
  template <typename T>
  Bytes& Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    data_.insert(data_.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    data_.insert(data_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& Raw(const std::string& s) {
    data_.insert(data_.end(), s.begin(), s.end());
    return *this;
  }
  // "GGUF", version, n_tensors, n_kv.
  Bytes& Header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    return Raw("GGUF").Put(version).Put(n_tensors).Put(n_kv);
  }
  Bytes& KvU32(const std::string& key, uint32_t v) { return Str(key).Put<uint32_t>(4).Put(v); }
  // A tensor info: name, dims, ggml type, offset.
  Bytes& Tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t type,
                uint64_t offset) {
    Str(name).Put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne)
      Put(d);
    return Put(type).Put(offset);
  }
  Bytes& PadTo(size_t alignment) {
    while (data_.size() % alignment != 0)
      data_.push_back(0);
    return *this;
  }
  Bytes& Zeros(size_t n) {
    data_.resize(data_.size() + n, 0);
    return *this;
  }
  const std::vector<uint8_t>& data() const { return data_; }
  size_t size() const { return data_.size(); }

 private:
  std::vector<uint8_t> data_;
};

}  // namespace snug::gguf::testing
