#include "store/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "config/env.h"
#include "core/log.h"
#include "core/size.h"
#include "gguf/reader.h"
#include "store/file_lock.h"
#include "store/sha256.h"

namespace snug::store {
namespace fs = std::filesystem;
namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status MakeDirs(const std::string& path) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error) {
    return Status::IoError(fmt::format("cannot create {}: {}", path, error.message()));
  }
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// fsync a directory so a rename into it survives a crash.
// Copies `from` to `to` (created fresh) in one pass, hashing what is written, so the blob's name
// is the hash of the bytes the store holds even if the source changes meanwhile. Returns the
// sha256. The store never shares an inode with a user's file: a hard link would let a later
// edit or truncation of that file corrupt the stored model behind its checksum.
Result<std::string> CopyHashed(const std::string& from, const std::string& to) {
  const int in = open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (in < 0) return Status::IoError(fmt::format("cannot open {}: {}", from, std::strerror(errno)));
  struct stat st {};
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(in);
    return Status::InvalidArgument(fmt::format("{} is not a regular file", from));
  }
  const int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return Status::IoError(fmt::format("cannot create {}: {}", to, std::strerror(errno)));
  }
  Sha256 hasher;
  std::vector<char> buffer(1 << 20);
  Status status = Status::Ok();
  while (status.ok()) {
    const ssize_t n = read(in, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = Status::IoError(fmt::format("cannot read {}: {}", from, std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    hasher.Update(buffer.data(), static_cast<size_t>(n));
    for (ssize_t done = 0; done < n && status.ok();) {
      const ssize_t w = write(out, buffer.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = Status::IoError(fmt::format("cannot write {}: {}", to, std::strerror(errno)));
      } else {
        done += w;
      }
    }
  }
  if (status.ok() && fsync(out) != 0) {
    status = Status::IoError(fmt::format("cannot flush {}: {}", to, std::strerror(errno)));
  }
  close(in);
  close(out);
  if (!status.ok()) {
    unlink(to.c_str());
    return status;
  }
  return hasher.HexDigest();
}

void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

std::string Basename(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Percent-encodes a hub file path, keeping '/' between folders.
std::string EncodePath(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string TrimSlash(std::string url) {
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  return url;
}

Result<std::vector<std::string>> ParseListing(const std::string& body, const std::string& repo) {
  try {
    auto json = nlohmann::json::parse(body);
    std::vector<std::string> files;
    if (!json.contains("siblings") || !json["siblings"].is_array()) {
      return Status::Corrupt(fmt::format("the hub's listing of {} has no file list", repo));
    }
    for (const auto& sibling : json["siblings"]) {
      if (sibling.contains("rfilename") && sibling["rfilename"].is_string()) {
        files.push_back(sibling["rfilename"].get<std::string>());
      }
    }
    return files;
  } catch (const std::exception& e) {
    return Status::Corrupt(
        fmt::format("the hub's listing of {} is not valid JSON: {}", repo, e.what()));
  }
}

std::string LockPath(const std::string& root, const std::string& key) {
  return root + "/locks/" + key + ".lock";
}

}  // namespace

uint64_t PullSource::TotalBytes() const {
  uint64_t total = 0;
  for (const RemoteFile& file : files) {
    if (!file.size) return 0;
    total += *file.size;
  }
  return total;
}

std::string FileTypeName(int64_t file_type) {
  // llama_ftype values (llama.h); the "guessed" bit 1024 is ignored.
  switch (file_type & ~int64_t{1024}) {
    case 0:
      return "F32";
    case 1:
      return "F16";
    case 2:
      return "Q4_0";
    case 3:
      return "Q4_1";
    case 7:
      return "Q8_0";
    case 8:
      return "Q5_0";
    case 9:
      return "Q5_1";
    case 10:
      return "Q2_K";
    case 11:
      return "Q3_K_S";
    case 12:
      return "Q3_K_M";
    case 13:
      return "Q3_K_L";
    case 14:
      return "Q4_K_S";
    case 15:
      return "Q4_K_M";
    case 16:
      return "Q5_K_S";
    case 17:
      return "Q5_K_M";
    case 18:
      return "Q6_K";
    case 19:
      return "IQ2_XXS";
    case 20:
      return "IQ2_XS";
    case 21:
      return "Q2_K_S";
    case 22:
      return "IQ3_XS";
    case 23:
      return "IQ3_XXS";
    case 24:
      return "IQ1_S";
    case 25:
      return "IQ4_NL";
    case 26:
      return "IQ3_S";
    case 27:
      return "IQ3_M";
    case 28:
      return "IQ2_S";
    case 29:
      return "IQ2_M";
    case 30:
      return "IQ4_XS";
    case 31:
      return "IQ1_M";
    case 32:
      return "BF16";
    case 36:
      return "TQ1_0";
    case 37:
      return "TQ2_0";
    case 38:
      return "MXFP4_MOE";
    default:
      return "";
  }
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& root) {
  for (const char* sub : {"", "/blobs", "/blobs/partial", "/locks", "/models"}) {
    SNUG_RETURN_IF_ERROR(MakeDirs(root + sub));
  }
  SNUG_ASSIGN_OR_RETURN(auto registry, Registry::Open(root + "/registry.db"));
  return std::unique_ptr<Store>(new Store(root, std::move(registry)));
}

Result<std::unique_ptr<Store>> Store::OpenDefault() {
  return Open(env::DataDir());
}

std::string Store::BlobPath(const std::string& sha256) const {
  return root_ + "/blobs/sha256-" + sha256;
}

Result<PullSource> Store::ResolvePull(const PullRef& ref, const std::string& name) {
  PullSource source;
  source.ref = ref;
  std::string endpoint = TrimSlash(env::HfEndpoint());
  auto token = env::HfToken();
  if (ref.kind == PullRef::Kind::kLocalFile) {
    return Status::InvalidArgument("a local file is imported, not pulled (Store::Import)");
  }
  if (ref.kind == PullRef::Kind::kHub) {
    source.http.bearer_token = token;
    std::string repo = ref.owner + "/" + ref.repo;
    SNUG_ASSIGN_OR_RETURN(std::string body,
                          HttpGetText(endpoint + "/api/models/" + repo, source.http));
    SNUG_ASSIGN_OR_RETURN(std::vector<std::string> files, ParseListing(body, repo));
    SNUG_ASSIGN_OR_RETURN(QuantSelection selection, SelectQuantFiles(files, ref.quant, repo));
    source.quant = selection.quant;
    source.source = fmt::format("hf.co/{}:{}", repo, selection.quant);
    for (const std::string& file : selection.files) {
      source.files.push_back(
          {fmt::format("{}/{}/resolve/main/{}", endpoint, repo, EncodePath(file)), file,
           std::nullopt, std::nullopt});
    }
  } else {
    // Send the token only to the configured hub, never to arbitrary hosts.
    if (ref.url.rfind(endpoint + "/", 0) == 0) source.http.bearer_token = token;
    source.source = ref.url;
    std::string path = ref.url.substr(0, ref.url.find_first_of("?#"));
    source.files.push_back({ref.url, Basename(path), std::nullopt, std::nullopt});
    int index, count;
    std::string prefix;
    if (ParseSplitName(source.files[0].filename, &index, &count, &prefix) && count > 1) {
      if (index != 1) {
        return Status::InvalidArgument(
            "give the URL of the first part (-00001-of-...) of a split model");
      }
      std::string base = path.substr(0, path.size() - source.files[0].filename.size());
      for (int i = 2; i <= count; ++i) {
        std::string part = fmt::format("{}-{:05d}-of-{:05d}.gguf", prefix, i, count);
        source.files.push_back({base + part, part, std::nullopt, std::nullopt});
      }
    }
  }
  std::string chosen = name.empty() ? DefaultName(ref, source.quant) : name;
  SNUG_ASSIGN_OR_RETURN(source.name, NormalizeName(chosen));
  for (RemoteFile& file : source.files) {
    SNUG_ASSIGN_OR_RETURN(RemoteFileInfo info, HttpHeadFile(file.url, source.http));
    file.sha256 = info.sha256;
    file.size = info.size;
  }
  return source;
}

Status Store::CheckDiskSpace(const PullSource& source) {
  uint64_t needed = 0;
  for (const RemoteFile& file : source.files) {
    if (!file.size) continue;
    if (file.sha256 && Exists(BlobPath(*file.sha256))) continue;
    std::string key = file.sha256 ? *file.sha256 : "url-" + Sha256OfString(file.url).substr(0, 40);
    uint64_t partial = FileSize(root_ + "/blobs/partial/" + key + ".partial");
    needed += *file.size > partial ? *file.size - partial : 0;
  }
  struct statvfs vfs;
  if (statvfs((root_ + "/blobs").c_str(), &vfs) != 0) {
    return Status::IoError(
        fmt::format("cannot check free space in {}: {}", root_, std::strerror(errno)));
  }
  uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  // Keep a margin so the registry and other programs can still write.
  uint64_t margin = 64 * kMiB;
  if (needed + margin > free_bytes) {
    return Status::IoError(
        fmt::format("not enough disk space for {}: {} still to download but only {} free in {} "
                    "(set SNUG_HOME to a larger disk)",
                    source.name, FormatSize(needed), FormatSize(free_bytes), root_));
  }
  return Status::Ok();
}

Result<ModelRecord> Store::Register(const std::string& name, const std::string& source,
                                    const std::vector<ModelFile>& files,
                                    const std::string& quant_hint) {
  ModelRecord record;
  record.name = name;
  record.source = source;
  record.files = files;
  record.sha256 = files.front().sha256;
  for (const ModelFile& file : files)
    record.size += file.size;
  record.added = Now();
  record.quant = quant_hint;
  // Model facts come from the verified file itself, not from names.
  SNUG_ASSIGN_OR_RETURN(std::string path, ModelPath(record));
  auto header = gguf::ReadFile(path);
  if (!header.ok()) {
    return header.status().WithContext(
        fmt::format("{} is not a usable GGUF model", files.front().filename));
  }
  record.architecture = header->Arch();
  record.n_ctx_train = header->GetInt(header->ArchKey("context_length")).value_or(0);
  if (auto file_type = header->GetInt("general.file_type")) {
    std::string from_file = FileTypeName(*file_type);
    if (!from_file.empty()) record.quant = from_file;
  }
  if (record.quant.empty()) record.quant = QuantOfFileName(files.front().filename);
  SNUG_RETURN_IF_ERROR(registry_->Put(record));
  return record;
}

Result<std::string> Store::ModelPath(const ModelRecord& record) {
  if (record.files.size() <= 1) return BlobPath(record.sha256);
  // llama.cpp finds split parts by name next to the first part: give them their names through
  // hard links in a per-model folder.
  std::string dir = root_ + "/models/" + record.sha256;
  SNUG_RETURN_IF_ERROR(MakeDirs(dir));
  for (const ModelFile& file : record.files) {
    std::string link_path = dir + "/" + Basename(file.filename);
    // Kept only while it is still the blob itself (a replaced blob is a new inode).
    struct stat link_st {
    }, blob_st{};
    if (stat(link_path.c_str(), &link_st) == 0 &&
        stat(BlobPath(file.sha256).c_str(), &blob_st) == 0 && link_st.st_ino == blob_st.st_ino &&
        link_st.st_dev == blob_st.st_dev) {
      continue;
    }
    unlink(link_path.c_str());
    if (link(BlobPath(file.sha256).c_str(), link_path.c_str()) != 0 && errno != EEXIST) {
      return Status::IoError(
          fmt::format("cannot link {} into {}: {}", file.filename, dir, std::strerror(errno)));
    }
  }
  return dir + "/" + Basename(record.files.front().filename);
}

Result<ModelRecord> Store::Pull(const PullSource& source, const PullEvents& events) {
  std::vector<ModelFile> files;
  // Locks on each committed blob are held until the name is registered, so a concurrent
  // `snug rm` of another name cannot delete a blob this pull is about to reference.
  std::vector<FileLock> held;
  for (size_t i = 0; i < source.files.size(); ++i) {
    const RemoteFile& remote = source.files[i];
    std::string key =
        remote.sha256 ? *remote.sha256 : "url-" + Sha256OfString(remote.url).substr(0, 40);
    auto lock = FileLock::TryAcquire(LockPath(root_, key));
    if (!lock.ok() && lock.status().code() == Code::kUnavailable) {
      if (events.note) {
        events.note(fmt::format("waiting for another snug pull of {} to finish", remote.filename));
      }
      lock = FileLock::Acquire(LockPath(root_, key));
    }
    if (!lock.ok()) return lock.status();
    std::string sha;
    if (remote.sha256 && Exists(BlobPath(*remote.sha256))) {
      if (events.note) events.note(fmt::format("{} is already in the store", remote.filename));
      sha = *remote.sha256;
    } else {
      std::string partial = root_ + "/blobs/partial/" + key + ".partial";
      ProgressFn progress;
      if (events.progress) {
        progress = [&, i](const DownloadProgress& p) {
          events.progress(i, source.files.size(), remote, p);
        };
      }
      auto downloaded = DownloadResumable(remote.url, partial, remote.size, source.http, progress);
      if (!downloaded.ok()) {
        // Bytes from a server that broke its own announcement are not worth resuming from.
        if (downloaded.status().code() == Code::kCorrupt) unlink(partial.c_str());
        return downloaded.status();
      }
      sha = *downloaded;
      if (remote.sha256 && sha != *remote.sha256) {
        unlink(partial.c_str());
        return Status::Corrupt(fmt::format(
            "{} failed verification: its sha256 is {} but the hub says {}; the download was "
            "discarded and nothing was added",
            remote.filename, sha, *remote.sha256));
      }
      FileLock sha_lock;
      if (!remote.sha256) {
        // The name of the blob is known only now; lock it too before it appears.
        SNUG_ASSIGN_OR_RETURN(sha_lock, FileLock::Acquire(LockPath(root_, sha)));
      }
      std::string blob = BlobPath(sha);
      if (rename(partial.c_str(), blob.c_str()) != 0) {
        return Status::IoError(
            fmt::format("cannot move the download into {}: {}", blob, std::strerror(errno)));
      }
      chmod(blob.c_str(), 0444);
      SyncDir(root_ + "/blobs");
      if (sha_lock.held()) held.push_back(std::move(sha_lock));
    }
    held.push_back(std::move(lock).value());
    files.push_back({static_cast<int>(i), sha, remote.filename, FileSize(BlobPath(sha))});
  }
  return Register(source.name, source.source, files, source.quant);
}

Result<ModelRecord> Store::Import(const std::string& path, const std::string& name) {
  std::vector<std::string> parts = {path};
  int index, count;
  std::string prefix;
  if (ParseSplitName(Basename(path), &index, &count, &prefix) && count > 1) {
    std::string dir = path.substr(0, path.size() - Basename(path).size());
    parts.clear();
    for (int i = 1; i <= count; ++i) {
      parts.push_back(dir + fmt::format("{}-{:05d}-of-{:05d}.gguf", Basename(prefix), i, count));
    }
  }
  PullRef ref;
  ref.kind = PullRef::Kind::kLocalFile;
  ref.path = path;
  SNUG_ASSIGN_OR_RETURN(std::string canonical,
                        NormalizeName(name.empty() ? DefaultName(ref, "") : name));
  // Check it is a GGUF before copying gigabytes (the reader also refuses FIFOs, devices and
  // directories at once; CopyHashed checks every split part the same way).
  auto header = gguf::ReadFile(parts.front());
  if (!header.ok()) return header.status().WithContext(fmt::format("importing {}", path));

  std::vector<ModelFile> files;
  std::vector<FileLock> held;
  static std::atomic<uint64_t> import_counter{0};
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string temp = fmt::format("{}/blobs/partial/import-{}-{}.partial", root_, getpid(),
                                         import_counter.fetch_add(1));
    SNUG_ASSIGN_OR_RETURN(std::string sha, CopyHashed(parts[i], temp));
    SNUG_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(LockPath(root_, sha)));
    const std::string blob = BlobPath(sha);
    // A blob already there is kept only if it still holds those bytes: one damaged behind the
    // store's back (e.g. through a hard link older stores made to the user's file) is replaced.
    bool healthy = false;
    if (Exists(blob)) {
      auto existing =
          FileSize(blob) == FileSize(temp) ? Sha256OfFile(blob) : Result<std::string>("");
      healthy = existing.ok() && *existing == sha;
      if (!healthy) spdlog::warn("{} does not match its checksum; replacing it", blob);
    }
    if (healthy) {
      unlink(temp.c_str());
    } else {
      // rename replaces the blob's name, never its old inode, so a link elsewhere keeps the old
      // bytes and the store gets the new ones.
      if (rename(temp.c_str(), blob.c_str()) != 0) {
        const int err = errno;
        unlink(temp.c_str());
        return Status::IoError(
            fmt::format("cannot move {} into {}: {}", temp, blob, std::strerror(err)));
      }
      SyncDir(root_ + "/blobs");
    }
    files.push_back({static_cast<int>(i), sha, Basename(parts[i]), FileSize(blob)});
    held.push_back(std::move(lock));
  }
  std::error_code error;
  std::string absolute = fs::absolute(path, error).string();
  return Register(canonical, "file:" + (error ? path : absolute), files, "");
}

Result<std::vector<ModelRecord>> Store::List() {
  return registry_->List();
}

Result<ModelRecord> Store::Get(const std::string& name) {
  SNUG_ASSIGN_OR_RETURN(std::string canonical, NormalizeName(name));
  auto record = registry_->Get(canonical);
  if (record.ok() || record.status().code() != Code::kNotFound ||
      canonical.find(':') != std::string::npos) {
    return record;
  }
  SNUG_ASSIGN_OR_RETURN(auto all, registry_->List());
  std::vector<ModelRecord> matches;
  for (ModelRecord& candidate : all) {
    if (candidate.name.rfind(canonical + ":", 0) == 0) matches.push_back(std::move(candidate));
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) return record.status();
  std::string names;
  for (const ModelRecord& match : matches)
    names += (names.empty() ? "" : ", ") + match.name;
  return Status::InvalidArgument(
      fmt::format("'{}' matches several models ({}): name one", canonical, names));
}

Result<RemoveResult> Store::Remove(const std::string& name) {
  SNUG_ASSIGN_OR_RETURN(ModelRecord record, Get(name));
  SNUG_RETURN_IF_ERROR(registry_->Remove(record.name));
  RemoveResult result;
  std::error_code error;
  for (const ModelFile& file : record.files) {
    auto lock = FileLock::TryAcquire(LockPath(root_, file.sha256));
    if (!lock.ok()) {
      // A pull holds it: it is about to be (re)registered; leave it.
      result.kept_blobs.push_back(file.sha256);
      continue;
    }
    SNUG_ASSIGN_OR_RETURN(int references, registry_->CountReferences(file.sha256));
    if (references > 0) {
      result.kept_blobs.push_back(file.sha256);
      continue;
    }
    if (unlink(BlobPath(file.sha256).c_str()) != 0 && errno != ENOENT) {
      return Status::IoError(fmt::format("removed '{}' but cannot delete {}: {}", record.name,
                                         BlobPath(file.sha256), std::strerror(errno)));
    }
    result.deleted_blobs.push_back(file.sha256);
  }
  if (record.files.size() > 1 && registry_->CountReferences(record.sha256).value_or(1) == 0) {
    fs::remove_all(root_ + "/models/" + record.sha256, error);
  }
  return result;
}

Status Store::Touch(const std::string& name) {
  return registry_->Touch(name, Now());
}

Result<std::string> ResolveName(const std::string& name) {
  // Not a valid name means not a store name: the caller then reports its own forms.
  if (!NormalizeName(name).ok()) {
    return Status::NotFound(fmt::format("'{}' is not a store name", name));
  }
  std::string root = env::DataDir();
  if (!Exists(root + "/registry.db")) {
    return Status::NotFound(
        fmt::format("'{}' is not in the store ({} has no models yet)", name, root));
  }
  SNUG_ASSIGN_OR_RETURN(auto store, Store::Open(root));
  SNUG_ASSIGN_OR_RETURN(ModelRecord record, store->Get(name));
  SNUG_ASSIGN_OR_RETURN(std::string path, store->ModelPath(record));
  if (!Exists(path)) {
    return Status::NotFound(fmt::format(
        "the file of '{}' is missing from the store ({}); run snug pull again", record.name, path));
  }
  (void)store->Touch(record.name);
  return path;
}

}  // namespace snug::store
