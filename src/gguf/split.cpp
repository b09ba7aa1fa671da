#include "gguf/split.h"

#include <regex>
#include <unordered_set>

#include <fmt/format.h>

namespace snug::gguf {

std::optional<SplitName> ParseSplitName(const std::string& path_or_url) {
  static const std::regex kPattern(R"(^(.*)-(\d{5})-of-(\d{5})\.gguf(\?.*)?$)");
  std::smatch m;
  if (!std::regex_match(path_or_url, m, kPattern)) return std::nullopt;
  SplitName name;
  name.prefix = m[1].str();
  name.number = std::stoi(m[2].str());
  name.count = std::stoi(m[3].str());
  name.suffix = m[4].matched ? m[4].str() : "";
  if (name.number < 1 || name.count < 1 || name.number > name.count) return std::nullopt;
  return name;
}

std::string SplitPartName(const SplitName& name, int number) {
  return fmt::format("{}-{:05d}-of-{:05d}.gguf{}", name.prefix, number, name.count, name.suffix);
}

Result<File> MergeSplits(File given,
                         const std::function<Result<File>(const std::string& name)>& read_part) {
  const int64_t count = given.GetInt("split.count").value_or(1);
  if (count <= 1) return given;
  if (count > 65535) {
    return Status::Corrupt(fmt::format(
        "{} says it is one of {} split parts; split.count is a uint16", given.path, count));
  }
  auto name = ParseSplitName(given.path);
  if (!name || name->count != count) {
    return Status::InvalidArgument(
        fmt::format("{} is part of a model split into {} files, but its name does not follow the "
                    "NAME-00001-of-{:05d}.gguf pattern, so the other parts cannot be found",
                    given.path, count, count));
  }
  const std::string given_path = given.path;
  File merged;
  for (int number = 1; number <= count; ++number) {
    File part;
    if (number == name->number) {
      part = std::move(given);
    } else {
      auto read = read_part(SplitPartName(*name, number));
      if (!read.ok()) {
        return read.status().WithContext(
            fmt::format("part {} of {} of the model {}", number, count, given_path));
      }
      part = std::move(read).value();
    }
    const int64_t no = part.GetInt("split.no").value_or(-1);
    const int64_t part_count = part.GetInt("split.count").value_or(-1);
    if (no != number - 1 || part_count != count) {
      return Status::Corrupt(fmt::format(
          "{} should be part {} of {} but its header says split.no={} split.count={} (a part "
          "from another model?)",
          part.path, number, count, no, part_count));
    }
    if (number == 1) {
      merged = std::move(part);
      merged.n_splits = static_cast<uint16_t>(count);
      continue;
    }
    for (TensorInfo& t : part.tensors) {
      t.split = static_cast<uint16_t>(number - 1);
      merged.tensors.push_back(std::move(t));
    }
    merged.file_bytes += part.file_bytes;
  }

  std::unordered_set<std::string> names;
  for (const TensorInfo& t : merged.tensors) {
    if (!names.insert(t.name).second) {
      return Status::Corrupt(
          fmt::format("the split model {} holds tensor '{}' in two parts", merged.path, t.name));
    }
  }
  if (auto expected = merged.GetInt("split.tensors.count");
      expected && *expected != static_cast<int64_t>(merged.tensors.size())) {
    return Status::Corrupt(fmt::format(
        "the split model {} has {} tensors in its {} parts but split.tensors.count says {}",
        merged.path, merged.tensors.size(), count, *expected));
  }
  return merged;
}

}  // namespace snug::gguf
