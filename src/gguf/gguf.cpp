#include "gguf/gguf.h"

#include <limits>

namespace snug::gguf {

namespace {

const Value* Find(const File& file, const std::string& key) {
  auto it = file.kv.find(key);
  return it == file.kv.end() ? nullptr : &it->second;
}

}  // namespace

std::optional<std::string> File::GetString(const std::string& key) const {
  const Value* v = Find(*this, key);
  if (v == nullptr || v->type != ValueType::kString) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&v->data)) return *s;
  return std::nullopt;
}

std::optional<int64_t> File::GetInt(const std::string& key) const {
  const Value* v = Find(*this, key);
  if (v == nullptr || v->type == ValueType::kArray) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(&v->data)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v->data)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

std::optional<double> File::GetFloat(const std::string& key) const {
  const Value* v = Find(*this, key);
  if (v == nullptr || v->type == ValueType::kArray) return std::nullopt;
  if (const auto* d = std::get_if<double>(&v->data)) return *d;
  // Converters sometimes write an integral hyperparameter (rope base) as an integer.
  if (const auto* i = std::get_if<int64_t>(&v->data)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v->data)) return static_cast<double>(*u);
  return std::nullopt;
}

std::optional<bool> File::GetBool(const std::string& key) const {
  const Value* v = Find(*this, key);
  if (v == nullptr || v->type != ValueType::kBool) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&v->data)) return *b;
  return std::nullopt;
}

std::optional<std::vector<int64_t>> File::GetIntArray(const std::string& key) const {
  const Value* v = Find(*this, key);
  if (v == nullptr || v->type != ValueType::kArray) return std::nullopt;
  const auto* ints = std::get_if<std::vector<int64_t>>(&v->data);
  // Integer and bool arrays are kept as int64 (gemma3 stores its sliding-window pattern as bools);
  // an array longer than the reader keeps has array_length set but no elements.
  if (ints == nullptr || ints->size() != v->array_length) return std::nullopt;
  return *ints;
}

std::string File::Arch() const {
  return GetString("general.architecture").value_or("");
}

uint64_t File::TensorBytes() const {
  uint64_t total = 0;
  for (const TensorInfo& t : tensors)
    total += t.nbytes;
  return total;
}

}  // namespace snug::gguf
