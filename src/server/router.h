// Method and path to handler. Exact paths, or a prefix ending in "/*" whose remainder the
// handler reads from request.path_tail ("/v1/models/*" serves "/v1/models/qwen3:8b").
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "server/http_types.h"

namespace snug::server {

class Router {
 public:
  using Handler = std::function<void(HttpRequest&, HttpResponse&)>;

  void Get(const std::string& path, Handler handler) { Add("GET", path, std::move(handler)); }
  void Post(const std::string& path, Handler handler) { Add("POST", path, std::move(handler)); }
  void Delete(const std::string& path, Handler handler) { Add("DELETE", path, std::move(handler)); }
  void Add(const std::string& method, const std::string& path, Handler handler);

  enum class Outcome { kHandled, kNoSuchPath, kWrongMethod };
  // Runs the matching handler. HEAD runs the GET handler (the transport drops the body). On
  // kWrongMethod, `allow` lists the methods the path has.
  Outcome Dispatch(HttpRequest& request, HttpResponse& response, std::string* allow) const;

 private:
  struct Route {
    std::string method;
    std::string path;  // without the trailing "*" for prefix routes
    bool prefix = false;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace snug::server
