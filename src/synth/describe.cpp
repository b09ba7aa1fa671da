#include "synth/describe.h"

#include <gguf.h>

#include "config/env.h"
#include "synth/layout.h"

namespace snug::synth {
namespace {

// Like snug's GGUF reader (gguf/reader.h), arrays longer than these keep only array_length, and
// integers are int64 except uint64 scalars, so a description equals a read of the written file.
constexpr size_t kMaxKeptNumericArray = 4096;
constexpr size_t kMaxKeptStringArray = 1024;

gguf::Value ScalarValue(const gguf_context* g, int64_t id) {
  gguf::Value v;
  const gguf_type type = gguf_get_kv_type(g, id);
  v.type = static_cast<gguf::ValueType>(type);
  switch (type) {
    case GGUF_TYPE_UINT8:
      v.data = int64_t{gguf_get_val_u8(g, id)};
      break;
    case GGUF_TYPE_UINT16:
      v.data = int64_t{gguf_get_val_u16(g, id)};
      break;
    case GGUF_TYPE_UINT32:
      v.data = int64_t{gguf_get_val_u32(g, id)};
      break;
    case GGUF_TYPE_UINT64:
      v.data = uint64_t{gguf_get_val_u64(g, id)};
      break;
    case GGUF_TYPE_INT8:
      v.data = int64_t{gguf_get_val_i8(g, id)};
      break;
    case GGUF_TYPE_INT16:
      v.data = int64_t{gguf_get_val_i16(g, id)};
      break;
    case GGUF_TYPE_INT32:
      v.data = int64_t{gguf_get_val_i32(g, id)};
      break;
    case GGUF_TYPE_INT64:
      v.data = int64_t{gguf_get_val_i64(g, id)};
      break;
    case GGUF_TYPE_FLOAT32:
      v.data = double{gguf_get_val_f32(g, id)};
      break;
    case GGUF_TYPE_FLOAT64:
      v.data = gguf_get_val_f64(g, id);
      break;
    case GGUF_TYPE_BOOL:
      v.data = gguf_get_val_bool(g, id);
      break;
    case GGUF_TYPE_STRING:
      v.data = std::string(gguf_get_val_str(g, id));
      break;
    default:
      break;
  }
  return v;
}

gguf::Value ArrayValue(const gguf_context* g, int64_t id) {
  gguf::Value v;
  v.type = gguf::ValueType::kArray;
  const gguf_type elem = gguf_get_arr_type(g, id);
  v.array_type = static_cast<gguf::ValueType>(elem);
  v.array_length = gguf_get_arr_n(g, id);
  const bool is_string = elem == GGUF_TYPE_STRING;
  const bool is_float = elem == GGUF_TYPE_FLOAT32 || elem == GGUF_TYPE_FLOAT64;
  if (v.array_length > (is_string ? kMaxKeptStringArray : kMaxKeptNumericArray)) {
    // Tokenizer-sized: type and length only, as a header reader keeps them.
    if (is_string) {
      v.data = std::vector<std::string>{};
    } else if (is_float) {
      v.data = std::vector<double>{};
    } else {
      v.data = std::vector<int64_t>{};
    }
    return v;
  }
  const size_t n = v.array_length;
  if (is_string) {
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i)
      out.emplace_back(gguf_get_arr_str(g, id, i));
    v.data = std::move(out);
  } else if (is_float) {
    std::vector<double> out;
    const void* data = gguf_get_arr_data(g, id);
    for (size_t i = 0; i < n; ++i) {
      out.push_back(elem == GGUF_TYPE_FLOAT32 ? static_cast<const float*>(data)[i]
                                              : static_cast<const double*>(data)[i]);
    }
    v.data = std::move(out);
  } else {
    std::vector<int64_t> out;
    const auto* bytes = static_cast<const uint8_t*>(gguf_get_arr_data(g, id));
    for (size_t i = 0; i < n; ++i) {
      switch (elem) {
        case GGUF_TYPE_UINT8:
          out.push_back(bytes[i]);
          break;
        case GGUF_TYPE_BOOL:
          out.push_back(bytes[i] != 0);
          break;
        case GGUF_TYPE_INT8:
          out.push_back(reinterpret_cast<const int8_t*>(bytes)[i]);
          break;
        case GGUF_TYPE_UINT16:
          out.push_back(reinterpret_cast<const uint16_t*>(bytes)[i]);
          break;
        case GGUF_TYPE_INT16:
          out.push_back(reinterpret_cast<const int16_t*>(bytes)[i]);
          break;
        case GGUF_TYPE_UINT32:
          out.push_back(reinterpret_cast<const uint32_t*>(bytes)[i]);
          break;
        case GGUF_TYPE_INT32:
          out.push_back(reinterpret_cast<const int32_t*>(bytes)[i]);
          break;
        default:  // 64-bit integers
          out.push_back(reinterpret_cast<const int64_t*>(bytes)[i]);
          break;
      }
    }
    v.data = std::move(out);
  }
  return v;
}

}  // namespace

Result<gguf::File> DescribePreset(const Preset& preset) {
  return DescribePreset(preset, env::VocabDir());
}

Result<gguf::File> DescribePreset(const Preset& preset, const std::string& vocab_dir) {
  SNUG_ASSIGN_OR_RETURN(internal::BuiltModel model, internal::BuildModel(preset, vocab_dir));
  const gguf_context* g = model.gguf.get();

  gguf::File file;
  file.version = gguf_get_version(g);
  file.alignment = gguf_get_alignment(g);
  file.data_offset = model.meta_bytes;
  file.file_bytes = model.file_bytes;
  file.n_splits = 1;
  file.path = "preset:" + preset.name;
  for (int64_t id = 0; id < gguf_get_n_kv(g); ++id) {
    file.kv[gguf_get_key(g, id)] =
        gguf_get_kv_type(g, id) == GGUF_TYPE_ARRAY ? ArrayValue(g, id) : ScalarValue(g, id);
  }
  for (int64_t id = 0; id < gguf_get_n_tensors(g); ++id) {
    gguf::TensorInfo info;
    info.name = gguf_get_tensor_name(g, id);
    info.type = static_cast<uint32_t>(gguf_get_tensor_type(g, id));
    info.ne = model.tensors[id].ne;
    info.offset = gguf_get_tensor_offset(g, id);
    info.nbytes = gguf_get_tensor_size(g, id);
    file.tensors.push_back(std::move(info));
  }
  return file;
}

uint64_t CountParameters(const gguf::File& file) {
  uint64_t total = 0;
  for (const gguf::TensorInfo& t : file.tensors) {
    uint64_t n = 1;
    for (int64_t d : t.ne)
      n *= static_cast<uint64_t>(d);
    total += n;
  }
  return total;
}

}  // namespace snug::synth
