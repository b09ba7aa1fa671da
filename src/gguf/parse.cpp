// The GGUF header parser behind ReadBuffer / ReadFile / ReadRemote. Layout (GGUF v2/v3, little
// endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key, u32 type,
// value), n_tensors x (string name, u32 n_dims, i64 ne[n_dims], u32 ggml type, u64 offset), padding
// to the alignment, tensor data. Strings are u64 length + bytes. See ggml/include/gguf.h in
// llama.cpp.
#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <ggml.h>

#include "gguf/reader.h"

namespace snug::gguf {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader assumes a little-endian host");

// Bounds that no real model comes near (the largest MoE models have a few thousand tensors and a
// hundred keys) but that keep a hostile header from making us allocate gigabytes of bookkeeping.
constexpr uint64_t kMaxKeys = uint64_t{1} << 16;
constexpr uint64_t kMaxTensors = uint64_t{1} << 20;
constexpr uint64_t kMaxKeyBytes = 64 * 1024;
constexpr uint64_t kMaxStringValueBytes = 16 * 1024 * 1024;
// Smallest possible encodings, to reject counts that cannot fit in the bytes that follow.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // key length, value type, a u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset
constexpr uint64_t kFixedHeaderBytes = 4 + 4 + 8 + 8;    // magic, version, n_tensors, n_kv

const char* TypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

// Bytes of one element of a fixed-size type; 0 for string, array and unknown types.
uint64_t FixedSize(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

bool IsInteger(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kInt8 || t == ValueType::kUint16 ||
         t == ValueType::kInt16 || t == ValueType::kUint32 || t == ValueType::kInt32 ||
         t == ValueType::kUint64 || t == ValueType::kInt64 || t == ValueType::kBool;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

constexpr std::string_view kTokenListKey = "tokenizer.ggml.tokens";

// A 64-bit hash of a byte string keyed by a per-process seed (multiply-fold mixing, as wyhash
// does): fast on the short strings tokens are, and a hostile file cannot be crafted to make every
// token collide, because the seed is not known in advance.
uint64_t Mix(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

uint64_t KeyedHash(const uint8_t* p, uint64_t len) {
  static const uint64_t seed = [] {
    static const int anchor = 0;  // its address varies with ASLR
    const auto now =
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return Mix(now ^ reinterpret_cast<uintptr_t>(&anchor), 0x9e3779b97f4a7c15ULL);
  }();
  uint64_t h = seed ^ Mix(len, 0x9e3779b97f4a7c15ULL);
  for (; len >= 8; p += 8, len -= 8)
    h = Mix(h ^ Load<uint64_t>(p), 0xa0761d6478bd642fULL);
  uint64_t tail = 0;
  std::memcpy(&tail, p, len);
  return Mix(Mix(h ^ tail, 0xe7037ed1a0b428dbULL), 0x8ebc6af09c88c6e3ULL);
}

// The first repeated token text of a token array whose n strings (u64 length + bytes each) start
// at p, span `bytes` and have all been bounds-checked. Mirrors llama-vocab.cpp's load loop: an
// empty token is renamed "[EMPTY_<id>]" and every text must map to one id (GGML_ASSERT(
// id_to_token.size() == token_to_id.size()) aborts otherwise). "First": the lowest second id, with
// the id it repeats. One pass over an open-addressing table of token offsets (Offset: uint32_t
// when the array spans less than 4 GiB): 6 to 12 bytes per token, so that a 150k-token tokenizer
// costs about a MiB of fresh pages (their faults dominate the time).
template <typename Offset>
std::optional<DuplicateToken> FindDuplicateTokenIn(const uint8_t* p, uint64_t n) {
  size_t capacity = 16;
  while (capacity < n + n / 2)
    capacity <<= 1;
  std::vector<Offset> slots(capacity, 0);  // offset of a token's length field + 1; 0 = empty
  auto text_at = [p](uint64_t offset) {
    return std::string_view(reinterpret_cast<const char*>(p + offset + 8),
                            Load<uint64_t>(p + offset));
  };
  std::optional<DuplicateToken> found;
  auto consider = [&](std::string_view t, uint64_t first, uint64_t second) {
    if (!found || second < found->second_id) found = DuplicateToken{std::string(t), first, second};
  };

  constexpr std::string_view kPrefix = "[EMPTY_";
  std::vector<uint64_t> empty_ids;                            // ascending
  std::vector<std::pair<uint64_t, uint64_t>> empty_literals;  // (id, e) for a token "[EMPTY_e]"
  uint64_t offset = 0;
  for (uint64_t i = 0; i < n; offset += 8 + Load<uint64_t>(p + offset), ++i) {
    const std::string_view t = text_at(offset);
    if (t.empty()) {
      empty_ids.push_back(i);
      continue;
    }
    if (t.size() > kPrefix.size() + 1 && t.substr(0, kPrefix.size()) == kPrefix &&
        t.back() == ']') {
      // llama.cpp writes the id with std::to_string: no sign, no leading zeros.
      const std::string_view digits = t.substr(kPrefix.size(), t.size() - kPrefix.size() - 1);
      uint64_t e = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), e);
      if (ec == std::errc() && end == digits.data() + digits.size() &&
          (digits.size() == 1 || digits[0] != '0') && e < n) {
        empty_literals.emplace_back(i, e);
      }
    }
    size_t slot = KeyedHash(p + offset + 8, t.size()) & (capacity - 1);
    for (; slots[slot] != 0; slot = (slot + 1) & (capacity - 1)) {
      const uint64_t other = slots[slot] - 1;
      if (text_at(other) != t) continue;
      // Ids come in order, so this is the repeat with the lowest second id; find the first's id.
      uint64_t j = 0;
      for (uint64_t at = 0; at != other; at += 8 + Load<uint64_t>(p + at))
        ++j;
      consider(t, j, i);
      break;
    }
    if (found) break;  // every later pair has a higher second id
    slots[slot] = static_cast<Offset>(offset + 1);
  }
  // An empty token at id e reads as "[EMPTY_e]": it collides only with a literal token of that
  // text (both ids below any repeat found above, or that pair would not be lower).
  for (const auto& [i, e] : empty_literals) {
    if (std::binary_search(empty_ids.begin(), empty_ids.end(), e)) {
      consider(fmt::format("[EMPTY_{}]", e), std::min(e, i), std::max(e, i));
    }
  }
  return found;
}

std::optional<DuplicateToken> FindDuplicateToken(const uint8_t* p, uint64_t n, uint64_t bytes) {
  if (bytes < std::numeric_limits<uint32_t>::max()) return FindDuplicateTokenIn<uint32_t>(p, n);
  return FindDuplicateTokenIn<uint64_t>(p, n);
}

class Parser {
 public:
  Parser(const uint8_t* data, size_t size, uint64_t file_size, const std::string& name)
      : data_(data),
        size_(file_size != kUnknownFileSize && size > file_size ? file_size : size),
        file_size_(file_size),
        name_(name) {}

  HeaderParse Run() {
    HeaderParse out;
    if (!ParseAll(&out.file)) {
      out.status = status_;
      out.needed_bytes = needed_;
      out.file = File{};
      return out;
    }
    out.file.duplicate_token = std::move(duplicate_token_);
    return out;
  }

 private:
  bool ParseAll(File* file);
  bool ParseValue(ValueType type, const std::string& key, Value* value);
  bool ParseArray(const std::string& key, Value* value);
  bool ParseTensorInfo(File* file, std::unordered_set<std::string>* names);

  uint64_t FileRemaining() const {
    return file_size_ == kUnknownFileSize ? kUnknownFileSize - pos_ : file_size_ - pos_;
  }

  // True when n more bytes are available at pos_. Otherwise records either "truncated" (the file
  // itself ends first) or "need more" (only the given prefix ends first) and returns false.
  bool Have(uint64_t n) {
    if (n > FileRemaining()) {
      if (file_size_ == kUnknownFileSize) {
        return Fail(fmt::format("claims a length of {} bytes, more than any file can hold", n));
      }
      status_ = Status::Corrupt(fmt::format(
          "{} is truncated: {} extends to byte {} or beyond but the file has {} bytes", name_,
          Item(), pos_ + n > pos_ ? std::to_string(pos_ + n) : "2^64", file_size_));
      return false;
    }
    if (n > size_ - pos_) {
      needed_ = pos_ + n;
      status_ = Status::Unavailable(
          fmt::format("{}: the header continues past the {} bytes read ({} reaches byte {})", name_,
                      size_, Item(), needed_));
      return false;
    }
    return true;
  }

  template <typename T>
  bool Read(T* out) {
    if (!Have(sizeof(T))) return false;
    *out = Load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return true;
  }

  // Reads a string; longer than max_len is an error described by `what` ("key name").
  bool ReadString(std::string* out, uint64_t max_len, const char* what) {
    uint64_t len = 0;
    if (!Read(&len)) return false;
    if (len > max_len && len <= FileRemaining()) {
      return Fail(
          fmt::format("has a {} of {} bytes (at most {} are accepted)", what, len, max_len));
    }
    if (!Have(len)) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return true;
  }

  bool SkipString() {
    uint64_t len = 0;
    if (!Read(&len)) return false;
    if (!Have(len)) return false;
    pos_ += len;
    return true;
  }

  // Skips up to n strings that lie wholly inside the buffer without per-string bookkeeping (a
  // tokenizer has 100k+ of them); returns how many were skipped. The caller handles the rest, and
  // with it the error reporting, with the checked path.
  uint64_t SkipStringsFast(uint64_t n) {
    const uint8_t* p = data_ + pos_;
    uint64_t avail = size_ - pos_;
    uint64_t i = 0;
    for (; i < n; ++i) {
      if (avail < 8) break;
      const uint64_t len = Load<uint64_t>(p);
      if (len > avail - 8) break;
      p += 8 + len;
      avail -= 8 + len;
    }
    pos_ = static_cast<uint64_t>(p - data_);
    return i;
  }

  bool Fail(const std::string& problem) {
    status_ = Status::Corrupt(fmt::format("{} is corrupt: {} {}", name_, Item(), problem));
    return false;
  }

  // What is being parsed, for error messages: "tensor info 12 of 255 ('blk.1.attn_q.weight')".
  std::string Item() const {
    if (item_kind_ == nullptr) return "the header";
    std::string s = fmt::format("{} {} of {}", item_kind_, item_index_ + 1, item_count_);
    if (!item_name_.empty()) {
      constexpr size_t kShown = 80;
      s += fmt::format(" ('{}{}')", item_name_.substr(0, kShown),
                       item_name_.size() > kShown ? "..." : "");
    }
    return s;
  }

  void SetItem(const char* kind, uint64_t index, uint64_t count) {
    item_kind_ = kind;
    item_index_ = index;
    item_count_ = count;
    item_name_.clear();
  }

  const uint8_t* data_;
  size_t size_;
  uint64_t file_size_;
  const std::string& name_;
  uint64_t pos_ = 0;
  Status status_;
  uint64_t needed_ = 0;
  const char* item_kind_ = nullptr;
  uint64_t item_index_ = 0;
  uint64_t item_count_ = 0;
  std::string item_name_;
  std::optional<DuplicateToken> duplicate_token_;
};

bool Parser::ParseAll(File* file) {
  if (file_size_ != kUnknownFileSize && file_size_ < 4) {
    status_ = Status::Corrupt(
        fmt::format("{} is not a GGUF file: it has only {} bytes", name_, file_size_));
    return false;
  }
  if (!Have(4)) return false;
  if (std::memcmp(data_, "GGUF", 4) != 0) {
    status_ = Status::Corrupt(fmt::format(
        "{} is not a GGUF file: it starts with bytes {:02x} {:02x} {:02x} {:02x}, not 'GGUF'",
        name_, data_[0], data_[1], data_[2], data_[3]));
    return false;
  }
  pos_ = 4;
  uint32_t version = 0;
  if (!Read(&version)) return false;
  if (version == 1) {
    status_ = Status::Unimplemented(fmt::format(
        "{} is GGUF version 1, which snug does not read (re-convert it with a current llama.cpp)",
        name_));
    return false;
  }
  if (version != 2 && version != 3) {
    const uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3) {
      status_ = Status::Unimplemented(fmt::format(
          "{} is a big-endian GGUF file, which snug does not read (use the little-endian file)",
          name_));
    } else {
      status_ = Status::Unimplemented(
          fmt::format("{} has GGUF version {}; snug reads versions 2 and 3", name_, version));
    }
    return false;
  }
  file->version = version;
  file->path = name_;

  uint64_t n_tensors = 0, n_kv = 0;
  if (!Read(&n_tensors) || !Read(&n_kv)) return false;
  if (n_kv > kMaxKeys) {
    return Fail(
        fmt::format("claims {} metadata keys, more than snug's limit of {}", n_kv, kMaxKeys));
  }
  if (n_tensors > kMaxTensors) {
    return Fail(
        fmt::format("claims {} tensors, more than snug's limit of {}", n_tensors, kMaxTensors));
  }
  // Both counts are now small enough that these products cannot overflow.
  const uint64_t min_bytes = n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes;
  if (min_bytes > FileRemaining()) {
    status_ = Status::Corrupt(fmt::format(
        "{} is truncated or corrupt: its header claims {} metadata keys and {} tensors, which need "
        "at least {} bytes, but only {} bytes follow",
        name_, n_kv, n_tensors, min_bytes, FileRemaining()));
    return false;
  }

  for (uint64_t i = 0; i < n_kv; ++i) {
    SetItem("metadata key", i, n_kv);
    std::string key;
    if (!ReadString(&key, kMaxKeyBytes, "name")) return false;
    item_name_ = key;
    uint32_t raw_type = 0;
    if (!Read(&raw_type)) return false;
    if (raw_type > static_cast<uint32_t>(ValueType::kFloat64)) {
      return Fail(fmt::format("has unknown value type {}", raw_type));
    }
    Value value;
    if (!ParseValue(static_cast<ValueType>(raw_type), key, &value)) return false;
    if (!file->kv.emplace(std::move(key), std::move(value)).second) {
      return Fail("appears twice");
    }
  }

  SetItem("metadata key", 0, 0);
  item_kind_ = nullptr;
  if (auto it = file->kv.find("general.alignment"); it != file->kv.end()) {
    SetItem("metadata key", 0, 1);
    item_name_ = "general.alignment";
    if (it->second.type != ValueType::kUint32) {
      return Fail(fmt::format("must be a uint32 but is a {}", TypeName(it->second.type)));
    }
    const int64_t alignment = std::get<int64_t>(it->second.data);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      return Fail(fmt::format("is {}, which is not a power of two", alignment));
    }
    file->alignment = static_cast<uint64_t>(alignment);
  }

  std::unordered_set<std::string> names;
  names.reserve(n_tensors < 4096 ? n_tensors : 4096);
  file->tensors.reserve(n_tensors < 4096 ? n_tensors : 4096);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    SetItem("tensor info", i, n_tensors);
    if (!ParseTensorInfo(file, &names)) return false;
  }
  item_kind_ = nullptr;

  // The data section starts at the next multiple of the alignment (only when there are tensors,
  // as ggml's writer pads only then).
  uint64_t data_offset = pos_;
  if (n_tensors > 0) data_offset = (pos_ + file->alignment - 1) / file->alignment * file->alignment;
  if (data_offset > file_size_) {
    status_ = Status::Corrupt(
        fmt::format("{} is truncated: its tensor data would start at byte {} but the file has {} "
                    "bytes",
                    name_, data_offset, file_size_));
    return false;
  }
  file->data_offset = data_offset;

  uint64_t data_end = data_offset;
  for (size_t i = 0; i < file->tensors.size(); ++i) {
    const TensorInfo& t = file->tensors[i];
    uint64_t end = 0;
    const bool overflow = __builtin_add_overflow(data_offset, t.offset, &end) ||
                          __builtin_add_overflow(end, t.nbytes, &end);
    if (overflow || (file_size_ != kUnknownFileSize && end > file_size_)) {
      status_ = Status::Corrupt(fmt::format(
          "{} is truncated: tensor '{}' (tensor info {} of {}) ends at byte {} but the file has {} "
          "bytes (an interrupted download?)",
          name_, t.name, i + 1, file->tensors.size(),
          overflow ? std::string("2^64 or beyond") : std::to_string(end), file_size_));
      return false;
    }
    if (end > data_end) data_end = end;
  }
  file->file_bytes = file_size_ == kUnknownFileSize ? data_end : file_size_;
  return true;
}

bool Parser::ParseValue(ValueType type, const std::string& key, Value* value) {
  value->type = type;
  switch (type) {
    case ValueType::kUint8: {
      uint8_t v;
      if (!Read(&v)) return false;
      value->data = int64_t{v};
      return true;
    }
    case ValueType::kInt8: {
      int8_t v;
      if (!Read(&v)) return false;
      value->data = int64_t{v};
      return true;
    }
    case ValueType::kUint16: {
      uint16_t v;
      if (!Read(&v)) return false;
      value->data = int64_t{v};
      return true;
    }
    case ValueType::kInt16: {
      int16_t v;
      if (!Read(&v)) return false;
      value->data = int64_t{v};
      return true;
    }
    case ValueType::kUint32: {
      uint32_t v;
      if (!Read(&v)) return false;
      value->data = int64_t{v};
      return true;
    }
    case ValueType::kInt32: {
      int32_t v;
      if (!Read(&v)) return false;
      value->data = int64_t{v};
      return true;
    }
    case ValueType::kUint64: {
      uint64_t v;
      if (!Read(&v)) return false;
      value->data = v;
      return true;
    }
    case ValueType::kInt64: {
      int64_t v;
      if (!Read(&v)) return false;
      value->data = v;
      return true;
    }
    case ValueType::kFloat32: {
      float v;
      if (!Read(&v)) return false;
      value->data = double{v};
      return true;
    }
    case ValueType::kFloat64: {
      double v;
      if (!Read(&v)) return false;
      value->data = v;
      return true;
    }
    case ValueType::kBool: {
      uint8_t v;
      if (!Read(&v)) return false;
      value->data = v != 0;
      return true;
    }
    case ValueType::kString: {
      std::string s;
      if (!ReadString(&s, kMaxStringValueBytes, "string value")) return false;
      value->data = std::move(s);
      return true;
    }
    case ValueType::kArray:
      return ParseArray(key, value);
  }
  return Fail("has an unknown value type");
}

bool Parser::ParseArray(const std::string& key, Value* value) {
  uint32_t raw_type = 0;
  uint64_t n = 0;
  if (!Read(&raw_type)) return false;
  if (raw_type > static_cast<uint32_t>(ValueType::kFloat64)) {
    return Fail(fmt::format("is an array of unknown element type {}", raw_type));
  }
  const auto elem = static_cast<ValueType>(raw_type);
  if (elem == ValueType::kArray) {
    // ggml's reader (and so llama.cpp) rejects nested arrays too.
    return Fail("is an array of arrays, which GGUF readers do not support");
  }
  if (!Read(&n)) return false;
  value->array_type = elem;
  value->array_length = n;

  if (elem == ValueType::kString) {
    // Each element needs at least its 8-byte length.
    if (n > FileRemaining() / 8) {
      if (file_size_ == kUnknownFileSize) return Fail(fmt::format("claims {} strings", n));
      return Have(FileRemaining() + 1);  // reports "truncated"
    }
    const bool keep = n <= kMaxKeptStringArray;
    const uint64_t start = pos_;
    std::vector<std::string> strings;
    if (keep) strings.reserve(n);
    uint64_t i = 0;
    if (!keep) i = SkipStringsFast(n);
    for (; i < n; ++i) {
      if (keep) {
        std::string s;
        if (!ReadString(&s, kMaxStringValueBytes, "string element")) return false;
        strings.push_back(std::move(s));
      } else if (!SkipString()) {
        return false;
      }
    }
    value->data = std::move(strings);
    // Every string now lies checked in [start, pos_).
    if (key == kTokenListKey && n <= kMaxScannedTokens) {
      duplicate_token_ = FindDuplicateToken(data_ + start, n, pos_ - start);
    }
    return true;
  }

  const uint64_t elem_size = FixedSize(elem);
  if (n > FileRemaining() / elem_size) {
    if (file_size_ == kUnknownFileSize) return Fail(fmt::format("claims {} elements", n));
    return Have(FileRemaining() + 1);
  }
  const uint64_t bytes = n * elem_size;
  if (!Have(bytes)) return false;
  const uint8_t* p = data_ + pos_;
  pos_ += bytes;
  const bool keep = n <= kMaxKeptNumericArray;
  if (elem == ValueType::kFloat32 || elem == ValueType::kFloat64) {
    std::vector<double> v;
    if (keep) {
      v.reserve(n);
      for (uint64_t i = 0; i < n; ++i) {
        v.push_back(elem == ValueType::kFloat32 ? double{Load<float>(p + i * 4)}
                                                : Load<double>(p + i * 8));
      }
    }
    value->data = std::move(v);
    return true;
  }
  std::vector<int64_t> v;
  if (keep && IsInteger(elem)) {
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      const uint8_t* e = p + i * elem_size;
      int64_t x = 0;
      switch (elem) {
        case ValueType::kUint8:
          x = Load<uint8_t>(e);
          break;
        case ValueType::kInt8:
          x = Load<int8_t>(e);
          break;
        case ValueType::kBool:
          x = Load<uint8_t>(e) != 0;
          break;
        case ValueType::kUint16:
          x = Load<uint16_t>(e);
          break;
        case ValueType::kInt16:
          x = Load<int16_t>(e);
          break;
        case ValueType::kUint32:
          x = Load<uint32_t>(e);
          break;
        case ValueType::kInt32:
          x = Load<int32_t>(e);
          break;
        // u64 elements above INT64_MAX wrap; no per-layer hyperparameter comes near that.
        case ValueType::kUint64:
          x = static_cast<int64_t>(Load<uint64_t>(e));
          break;
        case ValueType::kInt64:
          x = Load<int64_t>(e);
          break;
        default:
          break;
      }
      v.push_back(x);
    }
  }
  value->data = std::move(v);
  return true;
}

bool Parser::ParseTensorInfo(File* file, std::unordered_set<std::string>* names) {
  TensorInfo t;
  if (!ReadString(&t.name, GGML_MAX_NAME - 1, "name")) return false;
  item_name_ = t.name;
  uint32_t n_dims = 0;
  if (!Read(&n_dims)) return false;
  if (n_dims > GGML_MAX_DIMS) {
    return Fail(fmt::format("has {} dimensions (GGUF allows at most {})", n_dims, GGML_MAX_DIMS));
  }
  t.ne.resize(n_dims);
  int64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    if (!Read(&t.ne[d])) return false;
    // A zero extent is legal (an empty tensor, as ggml accepts); negative ones are not.
    if (t.ne[d] < 0) return Fail(fmt::format("has a negative dimension {}", t.ne[d]));
    if (__builtin_mul_overflow(elements, t.ne[d], &elements)) {
      return Fail("has more elements than a 64-bit count can hold");
    }
  }
  uint32_t type = 0;
  if (!Read(&type)) return false;
  if (type >= GGML_TYPE_COUNT) {
    return Fail(fmt::format("has ggml type {}, which this llama.cpp does not know (types < {})",
                            type, static_cast<int>(GGML_TYPE_COUNT)));
  }
  const auto ggml_t = static_cast<ggml_type>(type);
  const uint64_t type_size = ggml_type_size(ggml_t);
  const int64_t block = ggml_blck_size(ggml_t);
  if (type_size == 0 || block <= 0) {
    return Fail(fmt::format("has ggml type {}, which was removed from ggml", type));
  }
  t.type = type;
  const int64_t ne0 = n_dims > 0 ? t.ne[0] : 1;
  if (ne0 % block != 0) {
    return Fail(fmt::format("has rows of {} elements, not a multiple of the {} block size {}", ne0,
                            ggml_type_name(ggml_t), block));
  }
  uint64_t nbytes = 0;
  if (elements > 0) {
    uint64_t row = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(ne0 / block), type_size, &row)) {
      return Fail("has a size in bytes that overflows 64 bits");
    }
    row = ggml_row_size(ggml_t, ne0);
    nbytes = row;
    for (uint32_t d = 1; d < n_dims; ++d) {
      if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(t.ne[d]), &nbytes)) {
        return Fail("has a size in bytes that overflows 64 bits");
      }
    }
  }
  t.nbytes = nbytes;
  if (!Read(&t.offset)) return false;
  if (t.offset % file->alignment != 0) {
    return Fail(fmt::format("has data offset {}, not a multiple of the alignment {}", t.offset,
                            file->alignment));
  }
  if (!names->insert(t.name).second) return Fail("has the same name as an earlier tensor");
  file->tensors.push_back(std::move(t));
  return true;
}

}  // namespace

HeaderParse ParseHeader(const uint8_t* data, size_t size, uint64_t file_size,
                        const std::string& name) {
  return Parser(data, size, file_size, name).Run();
}

Result<File> ReadBuffer(const uint8_t* data, size_t size, uint64_t file_size) {
  HeaderParse parsed = ParseHeader(data, size, file_size, "buffer");
  if (!parsed.status.ok()) return parsed.status;
  return std::move(parsed.file);
}

}  // namespace snug::gguf
