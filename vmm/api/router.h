// Maps (method, exact path) to handlers and turns every failure mode into an
// HTTP answer: 404 for unknown paths, 405 + Allow for a wrong method, 500 for a
// handler that throws. The router never lets an exception escape.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "vmm/api/http_message.h"

namespace godwit::api {

/// A route handler. Runs on the API server's thread: it must not block for long
/// (start long operations elsewhere and return; clients poll for progress).
using Handler = std::function<Response(const Request&)>;

/// Method + exact-path dispatch table. Add every route before the server starts.
class Router {
 public:
  /// Registers `handler` for `method` ("GET", "PUT", ...) on the exact `path`; replaces a
  /// previous registration of the same pair.
  void add(const std::string& method, const std::string& path, Handler handler);
  /// Shorthand for add("GET", ...).
  void get(const std::string& path, Handler handler) { add("GET", path, std::move(handler)); }
  /// Shorthand for add("PUT", ...).
  void put(const std::string& path, Handler handler) { add("PUT", path, std::move(handler)); }
  /// Shorthand for add("POST", ...).
  void post(const std::string& path, Handler handler) { add("POST", path, std::move(handler)); }

  /// Runs the matching handler, or produces the 404/405/500 answer. Never throws.
  [[nodiscard]] Response dispatch(const Request& request) const;

  /// The comma-separated methods registered for `path` ("GET, PUT"), empty if none.
  [[nodiscard]] std::string allowed_methods(const std::string& path) const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
};

}  // namespace godwit::api
