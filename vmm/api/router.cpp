// Router dispatch: exact path lookup, method check, exception containment.
#include "vmm/api/router.h"

#include <exception>

namespace godwit::api {

void Router::add(const std::string& method, const std::string& path, Handler handler) {
  routes_[path][method] = std::move(handler);
}

std::string Router::allowed_methods(const std::string& path) const {
  auto it = routes_.find(path);
  if (it == routes_.end()) return {};
  std::string allow;
  for (const auto& [method, handler] : it->second) {
    if (!allow.empty()) allow += ", ";
    allow += method;
  }
  return allow;
}

Response Router::dispatch(const Request& request) const {
  auto path_it = routes_.find(request.path);
  if (path_it == routes_.end()) return Response::error(404, "unknown path " + request.path);
  auto method_it = path_it->second.find(request.method);
  if (method_it == path_it->second.end()) {
    std::string allow = allowed_methods(request.path);
    Response r = Response::error(405, "method " + request.method + " not allowed on " +
                                          request.path + " (allowed: " + allow + ")");
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  std::string what = request.method + " " + request.path;
  try {
    return method_it->second(request);
  } catch (const std::exception& e) {
    return Response::error(500, "internal error in " + what + ": " + e.what());
  } catch (...) {
    return Response::error(500, "internal error in " + what + ": unknown exception");
  }
}

}  // namespace godwit::api
