// godwit: parse the command line, build the VM, serve the API, run until the
// guest or an operator stops it. Exit status: the guest's (debug-exit port or
// testdev), 0 after a shutdown request, 125 after a fatal guest/VMM error,
// 2 for bad command-line input, 1 when the VM cannot be built.
#include <signal.h>

#include <cstdio>
#include <thread>

#include "base/log.h"
#include "vmm/api/http_server.h"
#include "vmm/config.h"
#include "vmm/machine.h"
#include "vmm/vm_api.h"

using namespace godwit;

namespace {

Machine* g_machine = nullptr;

/// SIGINT/SIGTERM stop the VM in an orderly way (handled on a thread that
/// waits for the signals, not in a signal handler).
std::thread start_signal_thread(sigset_t set) {
  return std::thread([set] {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      if (sig == SIGUSR2) return;  // internal: exit the thread
      if (g_machine != nullptr)
        g_machine->request_stop(128 + sig, std::string("stopped by signal ") + strsignal(sig));
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_command_line(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "godwit: %s\n", parsed.error().message.c_str());
    return 2;
  }
  if (!parsed->config) {
    std::fputs(parsed->message.c_str(), stdout);
    return 0;
  }
  const VmConfig& config = *parsed->config;

  // Signals for orderly shutdown are taken by one thread; every other thread
  // (vCPUs, API) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto machine = Machine::create(config);
  if (!machine) {
    std::fprintf(stderr, "godwit: %s\n", machine.error().message.c_str());
    return 1;
  }
  g_machine = machine->get();
  std::thread signals = start_signal_thread(set);

  MachineApi api(**machine);
  std::unique_ptr<api::HttpServer> server;
  if (!config.api_sock.empty()) {
    api::Router router;
    api::register_vm_routes(router, api);
    auto s = api::HttpServer::start(config.api_sock, std::move(router));
    if (!s) {
      std::fprintf(stderr, "godwit: %s\n", s.error().message.c_str());
      pthread_kill(signals.native_handle(), SIGUSR2);
      signals.join();
      return 1;
    }
    server = std::move(*s);
  }

  int status = 0;
  if (auto r = (*machine)->start(); !r) {
    std::fprintf(stderr, "godwit: %s\n", r.error().message.c_str());
    status = 1;
  } else {
    status = (*machine)->wait_stopped();
    log::info("VM stopped: " + (*machine)->stop_reason() + " (exit status " +
              std::to_string(status) + ")");
  }
  if (server) server->stop();
  pthread_kill(signals.native_handle(), SIGUSR2);
  signals.join();
  g_machine = nullptr;
  machine->reset();
  return status;
}
