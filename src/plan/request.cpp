#include "plan/request.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace snug::plan {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Accepts "8192", "8k", "128K" (k = 1024 tokens, as model cards write context lengths).
bool ParseTokens(const std::string& text, uint64_t* out) {
  if (text.empty()) return false;
  std::string digits = text;
  uint64_t scale = 1;
  if (digits.back() == 'k' || digits.back() == 'K') {
    scale = 1024;
    digits.pop_back();
  }
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || digits.empty()) return false;
  *out = v * scale;
  return true;
}

}  // namespace

const char* KvTypeName(KvType type) {
  switch (type) {
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
    case KvType::kQ4_0:
      return "q4_0";
  }
  return "?";
}

uint32_t KvGgmlType(KvType type) {
  switch (type) {
    case KvType::kF16:
      return 1;
    case KvType::kQ8_0:
      return 8;
    case KvType::kQ4_0:
      return 2;
  }
  return 1;
}

uint64_t KvRowBytes(KvType type, uint64_t n) {
  switch (type) {
    case KvType::kF16:
      return 2 * n;
    case KvType::kQ8_0:
      return (n + 31) / 32 * 34;
    case KvType::kQ4_0:
      return (n + 31) / 32 * 18;
  }
  return 2 * n;
}

Result<Request> ParseRequest(const std::string& ctx, const std::string& kv_type,
                             const std::string& ngl, int parallel) {
  Request r;
  const std::string c = Lower(ctx);
  if (c.empty() || c == "auto") {
    r.ctx_mode = CtxMode::kAuto;
  } else if (c == "max") {
    r.ctx_mode = CtxMode::kMax;
  } else {
    uint64_t n = 0;
    if (!ParseTokens(c, &n) || n < 1 || n > (1u << 24)) {
      return Status::InvalidArgument(fmt::format(
          "--ctx '{}' is not a context length: use a token count (e.g. 8192 or 8k, at most "
          "16777216), 'auto' or 'max'",
          ctx));
    }
    r.ctx_mode = CtxMode::kExplicit;
    r.n_ctx = static_cast<uint32_t>(n);
  }

  const std::string k = Lower(kv_type);
  if (k.empty() || k == "f16") {
    r.kv_type = KvType::kF16;
  } else if (k == "q8_0" || k == "q8") {
    r.kv_type = KvType::kQ8_0;
  } else if (k == "q4_0" || k == "q4") {
    r.kv_type = KvType::kQ4_0;
  } else if (k == "auto") {
    r.kv_auto = true;
  } else {
    return Status::InvalidArgument(
        fmt::format("--kv-type '{}' is not a KV cache type: use f16, q8_0, q4_0 or auto", kv_type));
  }

  const std::string g = Lower(ngl);
  if (g.empty() || g == "auto") {
    r.ngl_auto = true;
  } else {
    uint64_t n = 0;
    if (!ParseTokens(g, &n) || g.back() == 'k' || n > 100000) {
      return Status::InvalidArgument(fmt::format(
          "--ngl '{}' is not a layer count: use a number of layers (0 = CPU only) or 'auto'", ngl));
    }
    r.ngl_auto = false;
    r.n_gpu_layers = static_cast<int>(n);
  }

  if (parallel < 1 || parallel > 256) {
    return Status::InvalidArgument(
        fmt::format("--parallel {} is out of range: use 1 to 256 sequences", parallel));
  }
  r.n_parallel = static_cast<uint32_t>(parallel);
  return r;
}

}  // namespace snug::plan
