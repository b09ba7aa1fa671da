// Writes a few small, valid GGUF files with ggml's own writer as the fuzzing seed corpus:
//   gguf_fuzz_seeds OUT_DIR
#include <ggml.h>
#include <gguf.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Tensor {
  const char* name;
  ggml_type type;
  std::vector<int64_t> ne;
};

bool Write(const std::string& path, void (*set_kv)(gguf_context*), const std::vector<Tensor>& ts) {
  gguf_context* g = gguf_init_empty();
  set_kv(g);
  ggml_init_params params{ggml_tensor_overhead() * (ts.size() + 1), nullptr, true};
  ggml_context* ctx = ggml_init(params);
  for (const Tensor& t : ts) {
    ggml_tensor* x = ggml_new_tensor(ctx, t.type, static_cast<int>(t.ne.size()), t.ne.data());
    ggml_set_name(x, t.name);
    gguf_add_tensor(g, x);
  }
  bool ok = gguf_write_to_file(g, path.c_str(), /*only_meta=*/true);
  uint64_t size = gguf_get_meta_size(g);
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i)
    size += (gguf_get_tensor_size(g, i) + 31) / 32 * 32;
  ok = ok && truncate(path.c_str(), static_cast<off_t>(size)) == 0;
  gguf_free(g);
  ggml_free(ctx);
  return ok;
}

void Empty(gguf_context*) {}

void Scalars(gguf_context* g) {
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_u8(g, "a.u8", 1);
  gguf_set_val_i8(g, "a.i8", -1);
  gguf_set_val_u16(g, "a.u16", 2);
  gguf_set_val_i16(g, "a.i16", -2);
  gguf_set_val_u32(g, "llama.block_count", 2);
  gguf_set_val_i32(g, "a.i32", -3);
  gguf_set_val_f32(g, "a.f32", 0.5f);
  gguf_set_val_bool(g, "a.bool", true);
  gguf_set_val_u64(g, "a.u64", 4);
  gguf_set_val_i64(g, "a.i64", -4);
  gguf_set_val_f64(g, "a.f64", 0.25);
  gguf_set_val_u32(g, "general.alignment", 32);
}

void Arrays(gguf_context* g) {
  gguf_set_val_str(g, "general.architecture", "gemma3");
  const int32_t heads[] = {8, 8, 4};
  gguf_set_arr_data(g, "gemma3.attention.head_count", GGUF_TYPE_INT32, heads, 3);
  const bool swa[] = {true, false, true};
  gguf_set_arr_data(g, "gemma3.attention.sliding_window_pattern", GGUF_TYPE_BOOL, swa, 3);
  const double f[] = {1.0, 2.0};
  gguf_set_arr_data(g, "a.f64s", GGUF_TYPE_FLOAT64, f, 2);
  const char* toks[] = {"<s>", "</s>", "a", "b", "ab"};
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, 5);
  const float scores[] = {0, 0, -1, -2, -3};
  gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 5);
}

void Split(gguf_context* g) {
  gguf_set_val_u16(g, "split.no", 0);
  gguf_set_val_u16(g, "split.count", 2);
  gguf_set_val_i32(g, "split.tensors.count", 2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  bool ok = Write(out + "/empty.gguf", Empty, {});
  ok = ok && Write(out + "/scalars.gguf", Scalars, {{"w", GGML_TYPE_F32, {4}}});
  ok = ok && Write(out + "/arrays.gguf", Arrays,
                   {{"token_embd.weight", GGML_TYPE_Q8_0, {32, 2}},
                    {"blk.0.attn_q.weight", GGML_TYPE_Q4_K, {256, 1}},
                    {"blk.0.conv", GGML_TYPE_F16, {2, 2, 2, 2}}});
  ok = ok && Write(out + "/split.gguf", Split, {{"a", GGML_TYPE_BF16, {8, 1, 1}}});
  return ok ? 0 : 1;
}
