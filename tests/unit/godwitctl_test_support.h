// Test support for the godwitctl tests: run godwitctl in-process and keep
// what it printed, and a real HttpServer on a private socket for the
// commands that talk to a VMM (the test supplies the routes and their fakes).
#pragma once

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "base/result.h"
#include "tools/godwitctl/cli.h"
#include "vmm/api/http_server.h"
#include "vmm/api/router.h"

namespace godwit::test {

/// One godwitctl run: exit status and what it printed.
struct CtlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs godwitctl with `args`. The default environment names no API socket,
/// so only an --api-sock in `args` gives one.
inline CtlRun run_ctl(const std::vector<std::string>& args,
                      const ctl::CliEnvironment& environment = {}) {
  std::ostringstream out;
  std::ostringstream err;
  CtlRun run;
  run.exit_code = ctl::run_godwitctl(args, out, err, environment);
  run.out = out.str();
  run.err = err.str();
  return run;
}

/// An API server on a private temporary socket, and godwitctl runs against it.
class CtlServer {
 public:
  /// Starts serving `router` (whose fakes must outlive this object).
  [[nodiscard]] Result<void> start(api::Router router) {
    server_ = TRY(api::HttpServer::start(sock_.path(), std::move(router)));
    return {};
  }
  /// Runs godwitctl with --api-sock naming this server, then `args`.
  CtlRun ctl(std::vector<std::string> args, bool terminal = false) const {
    args.insert(args.begin(), {"--api-sock", sock_.path()});
    return run_ctl(args, ctl::CliEnvironment{.api_sock = std::nullopt, .terminal = terminal});
  }
  /// Stops the server: the socket stops answering, as when a VMM exits.
  void stop() { server_.reset(); }
  /// The socket path.
  const std::string& path() const { return sock_.path(); }

 private:
  TempSocketPath sock_;
  std::unique_ptr<api::HttpServer> server_;
};

}  // namespace godwit::test
