#include "hw/cgroup.h"

#include <fmt/format.h>

#include <algorithm>

#include "hw/sysfs.h"

namespace snug::hw {
namespace {

using sysfs::NumberFile;

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string DecodeOctalEscapes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      std::string_view digits = s.substr(i + 1, 3);
      if (digits.size() == 3 &&
          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out.push_back(
            static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  for (std::string_view f : sysfs::Split(line, ' '))
    if (!f.empty()) fields.push_back(f);
  return fields;
}

bool HasController(const std::vector<std::string>& list, const std::string& controller) {
  return std::find(list.begin(), list.end(), controller) != list.end();
}

// "/a/b" -> "/a"; "/" stays "/".
std::string Parent(const std::string& path) {
  size_t pos = path.find_last_of('/');
  if (pos == std::string::npos || pos == 0) return "/";
  return path.substr(0, pos);
}

std::string StripTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();
  return path;
}

}  // namespace

std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo) {
  std::vector<CgroupMount> mounts;
  for (std::string_view line : sysfs::Split(mountinfo, '\n')) {
    std::vector<std::string_view> f = Fields(line);
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    auto dash = std::find(f.begin(), f.end(), std::string_view("-"));
    if (f.size() < 7 || dash == f.end() || dash - f.begin() < 6 || f.end() - dash < 3) continue;
    std::string_view fstype = *(dash + 1);
    CgroupMount mount;
    if (fstype == "cgroup2") {
      mount.version = 2;
    } else if (fstype == "cgroup") {
      mount.version = 1;
      for (std::string_view opt : sysfs::Split(*(dash + 3), ','))
        mount.controllers.emplace_back(opt);
    } else {
      continue;
    }
    mount.mount_root = DecodeOctalEscapes(f[3]);
    mount.mountpoint = DecodeOctalEscapes(f[4]);
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

std::vector<CgroupMembership> ParseProcCgroup(std::string_view text) {
  std::vector<CgroupMembership> out;
  for (std::string_view line : sysfs::Split(text, '\n')) {
    line = sysfs::Trim(line);
    size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    CgroupMembership m;
    std::string_view id = line.substr(0, first);
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    m.path = std::string(line.substr(second + 1));
    if (m.path.empty() || m.path.front() != '/') continue;
    if (id == "0" && controllers.empty()) {
      m.version = 2;
    } else {
      m.version = 1;
      for (std::string_view c : sysfs::Split(controllers, ','))
        if (!c.empty()) m.controllers.emplace_back(c);
    }
    out.push_back(std::move(m));
  }
  return out;
}

CgroupLocation LocateCgroup(const std::string& root, const std::string& controller,
                            std::vector<std::string>* notes) {
  CgroupLocation none;
  const std::string cgroup_file = sysfs::Join(root, "/proc/self/cgroup");
  const std::string mountinfo_file = sysfs::Join(root, "/proc/self/mountinfo");
  std::optional<std::string> cgroup_text = sysfs::ReadFile(cgroup_file);
  std::optional<std::string> mountinfo_text = sysfs::ReadFile(mountinfo_file);
  if (!cgroup_text || !mountinfo_text) {
    notes->push_back(fmt::format("no {} cgroup: cannot read {}", controller,
                                 cgroup_text ? mountinfo_file : cgroup_file));
    return none;
  }
  std::vector<CgroupMembership> memberships = ParseProcCgroup(*cgroup_text);
  std::vector<CgroupMount> mounts = ParseCgroupMounts(*mountinfo_text);

  auto resolve = [&](const CgroupMembership& m, int version) -> std::optional<CgroupLocation> {
    // Among mounts of this hierarchy, the one whose mount root is the longest prefix of our path.
    const CgroupMount* best = nullptr;
    const CgroupMount* any = nullptr;
    for (const CgroupMount& mount : mounts) {
      if (mount.version != version) continue;
      if (version == 1 && !HasController(mount.controllers, controller)) continue;
      if (any == nullptr) any = &mount;
      const std::string mroot = StripTrailingSlash(mount.mount_root);
      bool prefix = mroot == "/" || m.path == mroot || m.path.rfind(mroot + "/", 0) == 0;
      if (prefix && (best == nullptr || mroot.size() > best->mount_root.size())) best = &mount;
    }
    if (any == nullptr) return std::nullopt;
    CgroupLocation loc;
    loc.version = version;
    if (best == nullptr) {
      notes->push_back(fmt::format(
          "{} cgroup path {} is outside the mounted part of the hierarchy ({} at {}); using the "
          "mount root",
          controller, m.path, any->mount_root, any->mountpoint));
      best = any;
      loc.mount_dir = StripTrailingSlash(sysfs::Join(root, best->mountpoint));
      loc.dir = loc.mount_dir;
      return loc;
    }
    const std::string mroot = StripTrailingSlash(best->mount_root);
    std::string relative = mroot == "/" ? m.path : m.path.substr(mroot.size());
    loc.mount_dir = StripTrailingSlash(sysfs::Join(root, best->mountpoint));
    loc.dir = StripTrailingSlash(loc.mount_dir + relative);
    if (!sysfs::IsDirectory(loc.dir)) {
      notes->push_back(fmt::format(
          "{} cgroup {} not found under {} (namespaced container?); using the mount root",
          controller, m.path, best->mountpoint));
      loc.dir = loc.mount_dir;
    }
    return loc;
  };

  for (const CgroupMembership& m : memberships) {
    if (m.version == 1 && HasController(m.controllers, controller)) {
      if (auto loc = resolve(m, 1)) return *loc;
      notes->push_back(fmt::format(
          "{} cgroup v1 hierarchy is listed in /proc/self/cgroup but not mounted", controller));
    }
  }
  for (const CgroupMembership& m : memberships) {
    if (m.version != 2) continue;
    std::optional<CgroupLocation> loc = resolve(m, 2);
    if (!loc) continue;
    // The unified hierarchy may be mounted without this controller (hybrid systems).
    std::optional<std::string> enabled = sysfs::ReadFile(loc->mount_dir + "/cgroup.controllers");
    if (enabled) {
      bool found = false;
      for (std::string_view c : sysfs::Split(sysfs::Trim(*enabled), ' '))
        found = found || c == controller;
      if (!found) return none;
    }
    return *loc;
  }
  return none;
}

namespace {

// Reads one numeric file of a level; garbage is recorded in `error` (first one wins).
std::optional<uint64_t> ReadLimit(const std::string& path, bool* present, std::string* error) {
  NumberFile f = sysfs::ReadNumberFile(path);
  *present = f.kind != NumberFile::Kind::kMissing;
  if (f.kind == NumberFile::Kind::kGarbage) {
    if (error->empty())
      *error = fmt::format("{} holds \"{}\", which is not a byte count or \"max\"", path, f.text);
    return std::nullopt;
  }
  if (f.kind == NumberFile::Kind::kValue) return f.value;
  return std::nullopt;
}

CgroupLevel ReadLevel(int version, const std::string& dir, std::string* error) {
  CgroupLevel level;
  level.dir = dir;
  bool present = false;
  if (version == 1) {
    level.limit = ReadLimit(dir + "/memory.limit_in_bytes", &present, error);
    level.limit_file = dir + "/memory.limit_in_bytes";
    NumberFile usage = sysfs::ReadNumberFile(dir + "/memory.usage_in_bytes");
    if (usage.kind == NumberFile::Kind::kValue) level.usage = usage.value;
    if (usage.kind == NumberFile::Kind::kGarbage && error->empty())
      *error = fmt::format("{}/memory.usage_in_bytes holds \"{}\", which is not a byte count", dir,
                           usage.text);
  } else {
    level.limit = ReadLimit(dir + "/memory.max", &present, error);
    level.limit_file = dir + "/memory.max";
    // memory.high is a throttle: above it the kernel reclaims hard and stalls the process, so
    // planning beyond it means thrashing. The lower of the two is the limit we plan against.
    bool high_present = false;
    std::optional<uint64_t> high = ReadLimit(dir + "/memory.high", &high_present, error);
    if (high && (!level.limit || *high < *level.limit)) {
      level.limit = high;
      level.limit_file = dir + "/memory.high";
    }
    NumberFile usage = sysfs::ReadNumberFile(dir + "/memory.current");
    if (usage.kind == NumberFile::Kind::kValue) level.usage = usage.value;
    if (usage.kind == NumberFile::Kind::kGarbage && error->empty())
      *error =
          fmt::format("{}/memory.current holds \"{}\", which is not a byte count", dir, usage.text);
  }
  if (std::optional<std::string> stat = sysfs::ReadFile(dir + "/memory.stat")) {
    // v1 usage_in_bytes is hierarchical, so its hierarchical counter total_inactive_file goes
    // with it; v2 memory.stat counters are hierarchical already.
    const char* key = version == 1 ? "total_inactive_file" : "inactive_file";
    std::optional<uint64_t> inactive = sysfs::KeyValue(*stat, key);
    if (!inactive && version == 1) inactive = sysfs::KeyValue(*stat, "inactive_file");
    if (inactive && level.usage) level.reclaimable = std::min(*inactive, *level.usage);
  }
  return level;
}

}  // namespace

CgroupMemory ProbeCgroupMemory(const std::string& root, std::vector<std::string>* notes) {
  CgroupMemory out;
  CgroupLocation loc = LocateCgroup(root, "memory", notes);
  if (loc.version == 0) return out;
  out.version = loc.version;
  out.dir = loc.dir;
  out.mount_dir = loc.mount_dir;

  // Walk from our cgroup up to the mount root: a parent's limit bounds every child.
  std::string dir = loc.dir;
  while (true) {
    CgroupLevel level = ReadLevel(out.version, dir, &out.error);
    out.levels.push_back(std::move(level));
    if (dir.size() <= loc.mount_dir.size()) break;
    std::string parent = Parent(dir);
    if (parent.size() < loc.mount_dir.size()) break;
    dir = parent;
  }

  const std::string& leaf = loc.dir;
  if (out.version == 1) {
    // Ancestors above the mount root (a v1 container sees only its own subtree) still bound us:
    // the kernel reports their minimum as hierarchical_memory_limit.
    if (std::optional<std::string> stat = sysfs::ReadFile(leaf + "/memory.stat")) {
      std::optional<uint64_t> hier = sysfs::KeyValue(*stat, "hierarchical_memory_limit");
      if (hier && *hier < (uint64_t{1} << 60)) {
        bool lower = true;
        for (const CgroupLevel& l : out.levels)
          if (l.limit && *l.limit <= *hier) lower = false;
        if (lower) {
          CgroupLevel pseudo = out.levels.front();
          pseudo.limit = *hier;
          pseudo.limit_file = leaf + "/memory.stat (hierarchical_memory_limit)";
          out.levels.push_back(std::move(pseudo));
        }
      }
    }
    NumberFile memsw = sysfs::ReadNumberFile(leaf + "/memory.memsw.limit_in_bytes");
    if (memsw.kind == NumberFile::Kind::kValue) out.swap_limit = memsw.value;
    NumberFile peak = sysfs::ReadNumberFile(leaf + "/memory.max_usage_in_bytes");
    if (peak.kind == NumberFile::Kind::kValue) out.peak_usage = peak.value;
  } else {
    NumberFile swap = sysfs::ReadNumberFile(leaf + "/memory.swap.max");
    if (swap.kind == NumberFile::Kind::kValue) out.swap_limit = swap.value;
    NumberFile peak = sysfs::ReadNumberFile(leaf + "/memory.peak");
    if (peak.kind == NumberFile::Kind::kValue) out.peak_usage = peak.value;
  }

  bool any_file = false;
  for (const CgroupLevel& l : out.levels)
    any_file = any_file || sysfs::Exists(l.limit_file) || l.usage.has_value();
  if (!any_file && out.version == 2)
    notes->push_back(
        fmt::format("cgroup v2 at {} exposes no memory.max: no container limit found", loc.dir));
  return out;
}

}  // namespace snug::hw
