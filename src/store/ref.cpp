#include "store/ref.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <set>

namespace snug::store {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

Status CheckSegment(std::string_view segment, std::string_view whole) {
  if (segment.empty()) {
    return Status::InvalidArgument(fmt::format("model name '{}' has an empty part", whole));
  }
  if (segment.front() == '.') {
    return Status::InvalidArgument(
        fmt::format("model name '{}': a part may not start with '.'", whole));
  }
  for (char c : segment) {
    if (!NameChar(c)) {
      return Status::InvalidArgument(fmt::format(
          "model name '{}' contains '{}': use letters, digits, '.', '_', '-', '/' and one ':'",
          whole, std::isprint(static_cast<unsigned char>(c)) ? std::string(1, c) : "\\x??"));
    }
  }
  return Status::Ok();
}

// Hub owner/repo names: letters, digits, '-', '_', '.'; no leading '.'.
bool ValidHubPart(std::string_view part) {
  if (part.empty() || part.size() > 96 || part.front() == '.') return false;
  return std::all_of(part.begin(), part.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

const char* kRefForms =
    "use hf.co/OWNER/REPO[:QUANT], OWNER/REPO[:QUANT], an https:// URL of a .gguf file, or a local "
    ".gguf path";

bool IsQuantToken(const std::string& token) {
  static const std::regex kQuant(
      "^((i?q[0-9](_[a-z0-9]+)*)|(tq[0-9]_[0-9])|bf16|f16|f32|mxfp4(_moe)?)$",
      std::regex::icase | std::regex::optimize);
  return std::regex_match(token, kQuant);
}

std::string Basename(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<std::string> NormalizeName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("model name is empty");
  if (name.size() > 200) {
    return Status::InvalidArgument("model name is longer than 200 characters");
  }
  std::string lower = Lower(name);
  std::string_view whole = lower;
  auto colon = whole.find(':');
  std::string_view path = whole.substr(0, colon);
  if (colon != std::string_view::npos) {
    std::string_view tag = whole.substr(colon + 1);
    if (tag.find(':') != std::string_view::npos) {
      return Status::InvalidArgument(fmt::format("model name '{}' has more than one ':'", lower));
    }
    SNUG_RETURN_IF_ERROR(CheckSegment(tag, whole));
  }
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    SNUG_RETURN_IF_ERROR(CheckSegment(path.substr(start, slash - start), whole));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return lower;
}

std::string NameFromText(std::string_view text) {
  std::string out;
  for (char c : Lower(text)) {
    bool ok = NameChar(c) && !(out.empty() && c == '.');
    if (ok) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  if (out.size() > 200) out.resize(200);
  return out.empty() ? "model" : out;
}

Result<PullRef> ParseRef(std::string_view text) {
  std::string ref(text);
  while (!ref.empty() && std::isspace(static_cast<unsigned char>(ref.back())))
    ref.pop_back();
  if (ref.empty())
    return Status::InvalidArgument(fmt::format("empty model reference: {}", kRefForms));
  PullRef out;
  std::string lower = Lower(ref);
  if (lower.rfind("https://", 0) == 0 || lower.rfind("http://", 0) == 0) {
    out.kind = PullRef::Kind::kUrl;
    out.url = ref;
    return out;
  }
  if (ref[0] == '/' || ref[0] == '.' || ref[0] == '~' || EndsWith(lower, ".gguf")) {
    out.kind = PullRef::Kind::kLocalFile;
    out.path = ref;
    return out;
  }
  for (std::string_view prefix : {"hf.co/", "huggingface.co/"}) {
    if (lower.rfind(prefix, 0) == 0) {
      ref = ref.substr(prefix.size());
      break;
    }
  }
  auto colon = ref.find(':');
  std::string repo_part = ref.substr(0, colon);
  if (colon != std::string::npos) {
    out.quant = ref.substr(colon + 1);
    if (out.quant.empty() || !ValidHubPart(out.quant)) {
      return Status::InvalidArgument(
          fmt::format("'{}' has an invalid quant after ':': {}", std::string(text), kRefForms));
    }
  }
  auto slash = repo_part.find('/');
  if (slash == std::string::npos || repo_part.find('/', slash + 1) != std::string::npos) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not a model reference: {}", std::string(text), kRefForms));
  }
  out.owner = repo_part.substr(0, slash);
  out.repo = repo_part.substr(slash + 1);
  if (!ValidHubPart(out.owner) || !ValidHubPart(out.repo)) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not a valid OWNER/REPO: {}", std::string(text), kRefForms));
  }
  out.kind = PullRef::Kind::kHub;
  return out;
}

std::string DefaultName(const PullRef& ref, const std::string& chosen_quant) {
  switch (ref.kind) {
    case PullRef::Kind::kHub: {
      std::string name = NameFromText(ref.owner) + "/" + NameFromText(ref.repo);
      std::string quant = chosen_quant.empty() ? ref.quant : chosen_quant;
      if (!quant.empty()) name += ":" + NameFromText(quant);
      return name;
    }
    case PullRef::Kind::kUrl:
    case PullRef::Kind::kLocalFile: {
      std::string source = ref.kind == PullRef::Kind::kUrl ? ref.url : ref.path;
      auto query = source.find_first_of("?#");
      if (ref.kind == PullRef::Kind::kUrl && query != std::string::npos) source.resize(query);
      std::string base = Basename(source);
      int index, count;
      std::string prefix;
      if (ParseSplitName(base, &index, &count, &prefix)) base = prefix;
      if (EndsWith(Lower(base), ".gguf")) base.resize(base.size() - 5);
      return NameFromText(base);
    }
  }
  return "model";
}

const std::vector<std::string>& DefaultQuantPreference() {
  static const std::vector<std::string> kPreference = {
      "Q4_K_M", "Q4_K_S", "Q4_0",   "Q5_K_M", "Q5_K_S", "Q6_K", "Q8_0", "IQ4_XS",
      "IQ4_NL", "Q3_K_M", "Q3_K_L", "Q2_K",   "BF16",   "F16",  "F32"};
  return kPreference;
}

bool ParseSplitName(const std::string& filename, int* index, int* count, std::string* prefix) {
  static const std::regex kSplit("^(.*)-([0-9]{5})-of-([0-9]{5})\\.gguf$", std::regex::icase);
  std::smatch match;
  if (!std::regex_match(filename, match, kSplit)) return false;
  *prefix = match[1].str();
  *index = std::stoi(match[2].str());
  *count = std::stoi(match[3].str());
  return *index >= 1 && *count >= 1 && *index <= *count;
}

std::string QuantOfFileName(const std::string& filename) {
  std::string base = Basename(filename);
  int index, count;
  std::string prefix;
  if (ParseSplitName(base, &index, &count, &prefix)) base = prefix;
  if (EndsWith(Lower(base), ".gguf")) base.resize(base.size() - 5);
  // Tokens are separated by '-' or '.', never '_' (quants contain '_'); the last match wins since
  // quants end the name ("Qwen2.5-0.5B-Instruct-Q8_0").
  std::string found;
  size_t start = 0;
  while (start <= base.size()) {
    size_t end = base.find_first_of("-.", start);
    if (end == std::string::npos) end = base.size();
    std::string token = base.substr(start, end - start);
    if (IsQuantToken(token)) found = Upper(token);
    start = end + 1;
  }
  return found;
}

Result<QuantSelection> SelectQuantFiles(const std::vector<std::string>& files,
                                        const std::string& quant, const std::string& repo) {
  // Group GGUF files by quant; a split model contributes its parts to one group.
  struct Candidate {
    std::string first;                 // file name (single) or first part
    std::map<int, std::string> parts;  // split parts by index
    int count = 1;
  };
  std::map<std::string, std::vector<Candidate>> by_quant;  // upper-case quant -> candidates
  std::map<std::string, Candidate> splits;                 // split prefix -> candidate
  std::vector<std::string> all_gguf;
  for (const std::string& file : files) {
    std::string lower = Lower(file);
    if (!EndsWith(lower, ".gguf")) continue;
    if (Lower(Basename(file)).find("mmproj") != std::string::npos) continue;
    all_gguf.push_back(file);
    int index, count;
    std::string prefix;
    if (ParseSplitName(file, &index, &count, &prefix)) {
      Candidate& candidate = splits[prefix];
      candidate.count = count;
      candidate.parts[index] = file;
    } else {
      Candidate candidate;
      candidate.first = file;
      by_quant[QuantOfFileName(file)].push_back(candidate);
    }
  }
  for (auto& [prefix, candidate] : splits) {
    candidate.first = candidate.parts.begin()->second;
    by_quant[QuantOfFileName(candidate.first)].push_back(candidate);
  }
  if (all_gguf.empty()) {
    return Status::NotFound(fmt::format("{} has no .gguf files", repo));
  }

  std::string chosen;
  if (!quant.empty()) {
    chosen = Upper(quant);
  } else if (by_quant.size() == 1) {
    chosen = by_quant.begin()->first;
  } else {
    for (const std::string& preferred : DefaultQuantPreference()) {
      if (by_quant.count(preferred) != 0) {
        chosen = preferred;
        break;
      }
    }
    if (chosen.empty()) chosen = by_quant.begin()->first;
  }
  auto it = by_quant.find(chosen);
  if (it == by_quant.end()) {
    std::string available;
    for (auto& [name, unused] : by_quant) {
      if (name.empty()) continue;
      available += (available.empty() ? "" : ", ") + name;
    }
    return Status::NotFound(fmt::format("{} has no {} file; available quants: {}", repo, chosen,
                                        available.empty() ? "none recognised" : available));
  }
  // Several files of one quant (e.g. a copy in a subfolder): prefer the shortest path.
  std::vector<Candidate>& candidates = it->second;
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a.first < b.first;
  });
  const Candidate& best = candidates.front();
  QuantSelection selection;
  selection.quant = chosen;
  if (best.parts.empty()) {
    selection.files.push_back(best.first);
    return selection;
  }
  for (int i = 1; i <= best.count; ++i) {
    auto part = best.parts.find(i);
    if (part == best.parts.end()) {
      return Status::NotFound(fmt::format("{}: split model {} is missing part {} of {}", repo,
                                          best.first, i, best.count));
    }
    selection.files.push_back(part->second);
  }
  return selection;
}

}  // namespace snug::store
