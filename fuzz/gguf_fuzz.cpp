// libFuzzer target for the GGUF header parser (src/gguf/parse.cpp). Besides "no crash, no leak, no
// UB" under ASan/UBSan it checks the parser's own promises:
//  - an accepted header keeps every tensor inside the file;
//  - parsing a prefix never contradicts parsing the whole: "need more bytes" asks for more than the
//    prefix had, an accepted prefix means the whole is accepted, a rejected prefix the same;
//  - the semantic checks (gguf/validate.h) take any accepted header without crashing.
// Run through fuzz/run.sh.
#include <cstddef>
#include <cstdint>

#include "gguf/reader.h"
#include "gguf/validate.h"

using snug::Code;
using snug::gguf::HeaderParse;
using snug::gguf::ParseHeader;

static void Check(bool ok) {
  if (!ok) __builtin_trap();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const HeaderParse whole = ParseHeader(data, size, size, "fuzz.gguf");
  Check(whole.status.code() != Code::kUnavailable);  // the whole file is there
  if (whole.status.ok()) {
    const auto& f = whole.file;
    Check(f.data_offset <= size && f.file_bytes == size);
    Check(f.alignment != 0 && (f.alignment & (f.alignment - 1)) == 0);
    for (const auto& t : f.tensors) {
      Check(t.ne.size() <= 4 && t.offset % f.alignment == 0);
      Check(t.offset <= size && t.nbytes <= size && f.data_offset + t.offset + t.nbytes <= size);
    }
    if (f.duplicate_token) Check(f.duplicate_token->first_id < f.duplicate_token->second_id);
    (void)snug::gguf::ValidateModel(f);
    (void)snug::gguf::ValidateVocab(f);
  }

  const size_t half = size / 2;
  const HeaderParse prefix = ParseHeader(data, half, size, "fuzz.gguf");
  if (prefix.status.code() == Code::kUnavailable) {
    Check(prefix.needed_bytes > half && prefix.needed_bytes <= size);
  } else {
    Check(prefix.status.ok() == whole.status.ok());
    if (prefix.status.ok()) Check(prefix.file.tensors.size() == whole.file.tensors.size());
  }

  // A server that sent no length: counts are bounded by limits rather than the file size.
  const HeaderParse unknown = ParseHeader(data, size, snug::gguf::kUnknownFileSize, "fuzz.gguf");
  if (unknown.status.code() == Code::kUnavailable) Check(unknown.needed_bytes > size);
  return 0;
}
