#include "server/router.h"

namespace snug::server {

void Router::Add(const std::string& method, const std::string& path, Handler handler) {
  Route route{method, path, false, std::move(handler)};
  if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0) {
    route.path.pop_back();
    route.prefix = true;
  }
  routes_.push_back(std::move(route));
}

Router::Outcome Router::Dispatch(HttpRequest& request, HttpResponse& response,
                                 std::string* allow) const {
  const std::string& method = request.method == "HEAD" ? std::string("GET") : request.method;
  bool path_known = false;
  std::string methods;
  // Exact routes win over prefixes ("/v1/models/load" over "/v1/models/*").
  for (const bool prefix : {false, true}) {
    for (const auto& route : routes_) {
      if (route.prefix != prefix) continue;
      const bool matches = prefix ? request.path.size() > route.path.size() &&
                                        request.path.compare(0, route.path.size(), route.path) == 0
                                  : request.path == route.path;
      if (!matches) continue;
      if (route.method != method) {
        path_known = true;
        if (methods.find(route.method) == std::string::npos) {
          methods += (methods.empty() ? "" : ", ") + route.method;
        }
        continue;
      }
      request.path_tail = prefix ? request.path.substr(route.path.size()) : "";
      route.handler(request, response);
      return Outcome::kHandled;
    }
    if (path_known) break;  // an exact path with other methods is not a prefix route's tail
  }
  if (!path_known) return Outcome::kNoSuchPath;
  if (allow) *allow = methods;
  return Outcome::kWrongMethod;
}

}  // namespace snug::server
