// Model names in the store and the REF forms `snug pull` accepts. Pure parsing: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace snug::store {

// Validates a store name and returns its canonical (lowercase) form. Names look like
// "owner/repo:q4_k_m" or "my-model": segments of [a-z0-9._-] separated by '/', each not starting
// with '.', optionally one ":tag". No path traversal, control characters or spaces; at most 200
// characters. InvalidArgument with the reason otherwise.
Result<std::string> NormalizeName(std::string_view name);

// Turns free text (a file name stem) into a valid name: lowercased, other characters become '-'.
std::string NameFromText(std::string_view text);

struct PullRef {
  enum class Kind { kHub, kUrl, kLocalFile };
  Kind kind = Kind::kHub;
  std::string owner;  // kHub: as written (the hub is case-sensitive in paths)
  std::string repo;
  std::string quant;  // kHub: requested quant as written, empty = default choice
  std::string url;    // kUrl
  std::string path;   // kLocalFile
};

// Parses `snug pull` REF forms: "hf.co/OWNER/REPO[:QUANT]", "huggingface.co/...",
// "OWNER/REPO[:QUANT]", "https://..." / "http://..." (a direct file URL), and a local file
// (starts with '/', '.', '~' or ends with ".gguf"). InvalidArgument names the accepted forms.
Result<PullRef> ParseRef(std::string_view ref);

// The store name a REF gets by default: "owner/repo:quant" (lowercase) for the hub, the file
// name stem for URLs and local files ("Llama-3.2-3B-Q4_K_M.gguf" -> "llama-3.2-3b-q4_k_m").
// `chosen_quant` is the quant actually selected for hub refs.
std::string DefaultName(const PullRef& ref, const std::string& chosen_quant);

// The file(s) of one quant in a hub repo listing.
struct QuantSelection {
  std::vector<std::string> files;  // one file, or all parts of a split model in order
  std::string quant;               // as spelled in the file name, e.g. "Q4_K_M"
};

// Quants tried in order when a REF names none.
const std::vector<std::string>& DefaultQuantPreference();

// Picks the GGUF file(s) for `quant` (case-insensitive; empty = DefaultQuantPreference, else the
// only GGUF) from a repo's file list. Ignores non-GGUF and mmproj (vision projector) files.
// Split models ("-00001-of-00003.gguf") yield all parts, checked complete. NotFound lists the
// quants the repo does have.
Result<QuantSelection> SelectQuantFiles(const std::vector<std::string>& files,
                                        const std::string& quant, const std::string& repo);

// The quant token of a GGUF file name ("x-Q4_K_M.gguf" -> "Q4_K_M"), empty if none recognised.
std::string QuantOfFileName(const std::string& filename);

// "-00002-of-00005.gguf" split naming: part index (1-based) and count; false if not a split.
bool ParseSplitName(const std::string& filename, int* index, int* count, std::string* prefix);

}  // namespace snug::store
