// A stand-in for the Hugging Face hub on 127.0.0.1, for the store's end-to-end tests. It serves
// files under --root laid out as <owner>/<repo>/<path> with the hub's URL layout and headers:
//   GET  /api/models/<owner>/<repo>                 {"id":..., "siblings":[{"rfilename":...}]}
//   HEAD/GET /<owner>/<repo>/resolve/main/<path>    302 to /cdn/..., X-Linked-ETag: "<sha256>",
//                                                   X-Linked-Size (as the hub does for LFS files)
//   HEAD/GET /cdn/<owner>/<repo>/<path>             the bytes; Accept-Ranges, Range -> 206
// A "<path>.sha256" file next to a served file supplies its sha256 (huge sparse files are never
// hashed). Fault injection by flags:
//   --token T        every request needs "Authorization: Bearer T", else 401
//   --drop-after N   a download without a Range header is cut after N bytes (--drop-times K
//                    times per file, default 1): the next request must resume with Range
//   --bad-sha        X-Linked-ETag announces a wrong sha256
//   --short-size N   X-Linked-Size announces N bytes, then the whole (bigger) file is sent
//   --rate B         serve at most B bytes per second per response
// Every request is appended to --log as one line: "<METHOD> <path> range=<Range> status=<code>",
// and every finished body as "SENT <path> bytes=<n> complete=<0|1>".
// Prints nothing; writes the bound port to --port-file once listening.
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/sha256.h"

namespace fs = std::filesystem;

namespace {

struct Options {
  std::string root;
  std::string port_file;
  std::string log_file;
  std::string token;
  long long drop_after = -1;
  int drop_times = 1;
  bool bad_sha = false;
  long long short_size = -1;
  long long rate = 0;
};

Options g_options;
std::mutex g_mutex;
std::map<std::string, int> g_drops;              // path -> drops done
std::map<std::string, std::string> g_sha_cache;  // path -> sha256

void Log(const std::string& line) {
  if (g_options.log_file.empty()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  std::ofstream out(g_options.log_file, std::ios::app);
  out << line << "\n";
}

bool Authorized(const httplib::Request& req, httplib::Response& res) {
  if (g_options.token.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + g_options.token) return true;
  res.status = 401;
  res.set_content("{\"error\":\"Invalid credentials in Authorization header\"}",
                  "application/json");
  return false;
}

// Rejects paths escaping the root.
bool SafePath(const std::string& path) {
  return path.find("..") == std::string::npos && !path.empty() && path[0] != '/';
}

std::string ShaOf(const std::string& file) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_sha_cache.find(file);
  if (it != g_sha_cache.end()) return it->second;
  std::string sha;
  std::ifstream sidecar(file + ".sha256");
  if (sidecar >> sha) {
  } else {
    auto result = snug::store::Sha256OfFile(file);
    sha = result.ok() ? *result : std::string(64, '0');
  }
  g_sha_cache[file] = sha;
  return sha;
}

void LogRequest(const httplib::Request& req, const httplib::Response& res) {
  Log(req.method + " " + req.path + " range=" + req.get_header_value("Range") +
      " status=" + std::to_string(res.status));
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--root")
      g_options.root = next();
    else if (arg == "--port-file")
      g_options.port_file = next();
    else if (arg == "--log")
      g_options.log_file = next();
    else if (arg == "--token")
      g_options.token = next();
    else if (arg == "--drop-after")
      g_options.drop_after = std::stoll(next());
    else if (arg == "--drop-times")
      g_options.drop_times = std::stoi(next());
    else if (arg == "--bad-sha")
      g_options.bad_sha = true;
    else if (arg == "--short-size")
      g_options.short_size = std::stoll(next());
    else if (arg == "--rate")
      g_options.rate = std::stoll(next());
    else {
      std::fprintf(stderr, "fake_hub: unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (g_options.root.empty() || g_options.port_file.empty()) {
    std::fprintf(stderr, "usage: fake_hub --root DIR --port-file FILE [--log FILE] ...\n");
    return 2;
  }

  httplib::Server server;
  server.set_logger(LogRequest);

  server.Get(R"(/api/models/([^/]+)/([^/]+))", [](const httplib::Request& req,
                                                  httplib::Response& res) {
    if (!Authorized(req, res)) return;
    std::string repo = std::string(req.matches[1]) + "/" + std::string(req.matches[2]);
    fs::path dir = fs::path(g_options.root) / repo;
    std::error_code error;
    if (!SafePath(repo) || !fs::is_directory(dir, error)) {
      res.status = 404;
      res.set_content("{\"error\":\"Repository not found\"}", "application/json");
      return;
    }
    std::string siblings;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      std::string rel = fs::relative(entry.path(), dir).string();
      if (rel.size() > 7 && rel.compare(rel.size() - 7, 7, ".sha256") == 0) continue;
      siblings += (siblings.empty() ? "" : ",") + std::string("{\"rfilename\":\"") + rel + "\"}";
    }
    res.set_content("{\"id\":\"" + repo + "\",\"siblings\":[" + siblings + "]}",
                    "application/json");
  });

  server.Get(R"(/([^/]+)/([^/]+)/resolve/main/(.+))",
             [](const httplib::Request& req, httplib::Response& res) {
               if (!Authorized(req, res)) return;
               std::string rel = std::string(req.matches[1]) + "/" + std::string(req.matches[2]) +
                                 "/" + std::string(req.matches[3]);
               std::string file = (fs::path(g_options.root) / rel).string();
               std::error_code error;
               if (!SafePath(rel) || !fs::is_regular_file(file, error)) {
                 res.status = 404;
                 res.set_content("Entry not found", "text/plain");
                 return;
               }
               std::string sha = ShaOf(file);
               if (g_options.bad_sha) sha = snug::store::Sha256OfString("not the file");
               res.set_header("X-Linked-ETag", "\"" + sha + "\"");
               res.set_header("X-Linked-Size",
                              std::to_string(g_options.short_size >= 0
                                                 ? static_cast<uintmax_t>(g_options.short_size)
                                                 : fs::file_size(file)));
               res.set_header("ETag", "\"" + sha + "\"");
               res.set_redirect("/cdn/" + rel, 302);
             });

  server.Get(R"(/cdn/(.+))", [](const httplib::Request& req, httplib::Response& res) {
    std::string rel = req.matches[1];
    std::string file = (fs::path(g_options.root) / rel).string();
    std::error_code error;
    if (!SafePath(rel) || !fs::is_regular_file(file, error)) {
      res.status = 404;
      res.set_content("Not found", "text/plain");
      return;
    }
    uint64_t size = fs::file_size(file);
    res.set_header("Accept-Ranges", "bytes");
    // Fault: cut a whole-file download (no Range) after drop_after bytes.
    bool drop = false;
    if (g_options.drop_after >= 0 && !req.has_header("Range") && req.method == "GET") {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (g_drops[rel] < g_options.drop_times) {
        ++g_drops[rel];
        drop = true;
      }
    }
    auto stream = std::make_shared<std::ifstream>(file, std::ios::binary);
    auto sent = std::make_shared<uint64_t>(0);
    auto start = std::chrono::steady_clock::now();
    // httplib applies the Range header to a sized content provider (206 + Content-Range).
    res.set_content_provider(
        size, "application/octet-stream",
        [stream, sent, drop, start](size_t offset, size_t length, httplib::DataSink& sink) {
          if (drop && static_cast<long long>(*sent) >= g_options.drop_after) return false;
          size_t chunk = std::min<size_t>(length, 64 * 1024);
          if (drop) {
            chunk = std::min<size_t>(chunk, g_options.drop_after - *sent);
            if (chunk == 0) return false;
          }
          if (g_options.rate > 0) {
            double due = static_cast<double>(*sent + chunk) / g_options.rate;
            double elapsed =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (due > elapsed) {
              std::this_thread::sleep_for(std::chrono::duration<double>(due - elapsed));
            }
          }
          std::string buffer(chunk, '\0');
          stream->seekg(static_cast<std::streamoff>(offset));
          stream->read(buffer.data(), static_cast<std::streamsize>(chunk));
          if (!sink.write(buffer.data(), chunk)) return false;
          *sent += chunk;
          return true;
        },
        [rel, sent](bool success) {
          Log("SENT /cdn/" + rel + " bytes=" + std::to_string(*sent) +
              " complete=" + (success ? "1" : "0"));
        });
  });

  int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) {
    std::fprintf(stderr, "fake_hub: cannot bind 127.0.0.1\n");
    return 1;
  }
  {
    std::string temp = g_options.port_file + ".tmp";
    std::ofstream out(temp);
    out << port << "\n";
    out.close();
    std::rename(temp.c_str(), g_options.port_file.c_str());
  }
  server.listen_after_bind();
  return 0;
}
