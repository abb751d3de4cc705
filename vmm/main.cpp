// godwit: parse the command line, build the VM (restore it from a snapshot,
// or receive it from a live migration with --incoming), serve the API, run
// until the guest or an operator stops it.
// Exit status: the guest's (debug-exit port or testdev), 0 after a shutdown
// request, 125 after a fatal guest/VMM error, 2 for bad command-line input,
// 1 when the VM cannot be built or restored (or lazily restored memory turns
// out damaged), or when an incoming migration fails (the guest never ran).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "base/log.h"
#include "migration/engine.h"
#include "migration/transport.h"
#include "vmm/api/http_server.h"
#include "vmm/api/migration_routes.h"
#include "vmm/config.h"
#include "vmm/machine.h"
#include "vmm/migration/machine_migration.h"
#include "vmm/migration/migration_control.h"
#include "vmm/snapshot/restore.h"
#include "vmm/snapshot/snapshotter.h"
#include "vmm/vm_api.h"

using namespace godwit;

namespace {

Machine* g_machine = nullptr;
/// The incoming migration main() waits in, if any (a signal aborts it).
std::atomic<migration::MigrationDestination*> g_incoming{nullptr};

/// SIGINT/SIGTERM stop the VM in an orderly way (handled on a thread that
/// waits for the signals, not in a signal handler).
std::thread start_signal_thread(sigset_t set) {
  return std::thread([set] {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      if (sig == SIGUSR2) return;  // internal: exit the thread
      if (g_machine != nullptr)
        g_machine->request_stop(128 + sig, std::string("stopped by signal ") + strsignal(sig));
      if (auto* incoming = g_incoming.load()) incoming->abort();
    }
  });
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string format_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", ms);
  return buf;
}

/// Logs when a lazy restore has every page resident (polls the loader; the
/// loader itself never blocks on us).
class LazyProgress {
 public:
  LazyProgress(snapshot::LazyMemoryLoader& loader, std::chrono::steady_clock::time_point t0)
      : thread_([this, &loader, t0] {
          while (!stop_.load()) {
            auto stats = loader.stats();
            if (stats.complete) {
              log::info("restore: memory complete after " + format_ms(ms_since(t0)) +
                        " ms (faults " + std::to_string(stats.faults) + ", chunks on fault " +
                        std::to_string(stats.chunks_on_fault) + ", prefetched " +
                        std::to_string(stats.chunks_prefetched) + ", longest fault " +
                        std::to_string(stats.max_fault_us) + " us)");
              return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }) {}
  ~LazyProgress() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// The live-migration objects of this VMM, destroyed in dependency order
/// (controls, then engines, then the VM adapters) and before the machine.
struct MigrationParts {
  std::unique_ptr<MachineSourceVm> source_vm;
  std::unique_ptr<migration::MigrationSource> source;
  std::unique_ptr<SourceMigrationControl> source_control;
  std::unique_ptr<MachineDestinationVm> destination_vm;
  std::unique_ptr<migration::MigrationDestination> destination;
  std::unique_ptr<DestinationMigrationControl> destination_control;

  /// Whether an outgoing migration is between start and its end.
  [[nodiscard]] bool sending() const {
    if (!source) return false;
    const migration::MigrationState s = source->status().state;
    return s != migration::MigrationState::none && !migration::is_terminal(s);
  }
  void reset() {
    destination_control.reset();
    destination.reset();
    destination_vm.reset();
    source_control.reset();
    source.reset();  // cancels a running migration and joins its thread
    source_vm.reset();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const auto t0 = std::chrono::steady_clock::now();
  auto parsed = parse_command_line(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "godwit: %s\n", parsed.error().message.c_str());
    return 2;
  }
  if (!parsed->config && !parsed->restore) {
    std::fputs(parsed->message.c_str(), stdout);
    return 0;
  }
  std::optional<migration::Address> incoming;
  if (!parsed->incoming.empty()) {
    auto address = migration::parse_address(parsed->incoming);
    if (!address) {
      std::fprintf(stderr, "godwit: invalid --incoming: %s\n", address.error().message.c_str());
      return 2;
    }
    incoming = *address;
  }

  // Signals for orderly shutdown are taken by one thread; every other thread
  // (vCPUs, API, device and loader threads) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  RestoredVm vm;
  if (parsed->restore) {
    auto restored = restore_vm(*parsed->restore, [](const Error& e) { log::error(e.message); });
    if (!restored) {
      std::fprintf(stderr, "godwit: restore from %s failed: %s\n", parsed->restore->dir.c_str(),
                   restored.error().message.c_str());
      return 1;
    }
    vm = std::move(*restored);
  } else {
    // An incoming VM is built like a restored one: nothing is loaded, memory
    // and state arrive from the source.
    auto machine = Machine::create(*parsed->config, incoming ? BootMode::skip : BootMode::load);
    if (!machine) {
      std::fprintf(stderr, "godwit: %s\n", machine.error().message.c_str());
      return 1;
    }
    vm.machine = std::move(*machine);
  }
  Machine& machine = *vm.machine;
  g_machine = &machine;
  std::thread signals = start_signal_thread(set);

  Snapshotter snapshotter(machine, [&vm]() -> Result<void> {
    if (!vm.lazy) return {};
    if (!vm.lazy->stats().complete) log::info("snapshot: waiting for the lazy restore to finish");
    return vm.lazy->wait();
  });

  MigrationParts parts;
  {
    // A migration's dirty-page harvests empty KVM's log: a snapshot diff
    // epoch gets its copy and keeps logging on (snapshots are refused while a
    // migration runs, below, so the two never harvest concurrently).
    SourceHooks hooks{
        .keep_dirty_logging = [&snapshotter] { return snapshotter.diff_epoch_open(); },
        .harvested = [&snapshotter](const snapshot::PageSet& pages) -> Result<void> {
          return snapshotter.add_dirty(pages);
        }};
    // Built before the machine starts: the VM adapters read the TSC rate
    // once, which a vCPU ioctl cannot do promptly while the guest runs.
    migration::RamOptions ram;
    // A lazy restore's missing pages look unpopulated but are not zero.
    ram.skip_unpopulated = !vm.lazy;
    parts.source_vm = std::make_unique<MachineSourceVm>(machine, std::move(hooks), ram);
    parts.source = std::make_unique<migration::MigrationSource>(*parts.source_vm);
    parts.source_control = std::make_unique<SourceMigrationControl>(*parts.source);
    if (incoming) {
      parts.destination_vm = std::make_unique<MachineDestinationVm>(machine);
      parts.destination = std::make_unique<migration::MigrationDestination>(*parts.destination_vm);
      parts.destination_control = std::make_unique<DestinationMigrationControl>(*parts.destination);
    }
  }
  api::MigrationControl& migration_control =
      parts.destination_control ? static_cast<api::MigrationControl&>(*parts.destination_control)
                                : *parts.source_control;

  MachineApi api(
      machine, [&snapshotter, &parts](const nlohmann::json& body) -> Result<nlohmann::json> {
        if (parts.sending())
          return api::vm_conflict(
              "a live migration is in progress (GET /migration/status): snapshots are refused "
              "until it ends");
        auto request = TRY(parse_snapshot_request(body));
        auto report = snapshotter.create(request);
        if (!report) {
          log::warn(report.error().message);
          return std::unexpected(report.error());
        }
        log::info("snapshot " + report->dir + " (" + snapshot::kind_name(report->kind) + ", " +
                  std::to_string(report->data_pages) + " data pages) written in " +
                  format_ms(report->duration_ms) + " ms");
        return snapshot_report_json(*report);
      });
  // While a migration sends, the engine owns the vCPUs (it stops them for
  // the switchover and resumes them on failure); once it completed, the guest
  // runs on the destination and resuming it here would run it twice.
  api.set_run_guard([&parts]() -> Result<void> {
    if (!parts.source) return {};
    const migration::MigrationState s = parts.source->status().state;
    if (parts.sending()) {
      return api::vm_conflict("a live migration is " + std::string(migration::to_string(s)) +
                              ": it controls the vCPUs (godwitctl migrate-cancel first)");
    }
    if (s == migration::MigrationState::completed) {
      return api::vm_conflict(
          "this VM was migrated away and runs on the destination: resuming it here would run "
          "the guest twice (godwitctl shutdown ends this VMM)");
    }
    return {};
  });
  std::unique_ptr<api::HttpServer> server;
  const std::string& api_sock =
      parsed->restore ? parsed->restore->api_sock : parsed->config->api_sock;
  if (!api_sock.empty()) {
    api::Router router;
    api::register_vm_routes(router, api);
    api::register_migration_routes(router, migration_control);
    auto s = api::HttpServer::start(api_sock, std::move(router));
    if (!s) {
      std::fprintf(stderr, "godwit: %s\n", s.error().message.c_str());
      g_machine = nullptr;
      pthread_kill(signals.native_handle(), SIGUSR2);
      signals.join();
      parts.reset();
      return 1;
    }
    server = std::move(*s);
  }

  const bool start_paused = parsed->restore && parsed->restore->paused;
  int status = 0;
  std::unique_ptr<LazyProgress> lazy_progress;
  if (incoming) {
    // The API already answers GET /migration/status while we wait.
    auto received = [&]() -> Result<void> {
      const migration::Address bound = TRY(parts.destination->listen(*incoming));
      log::info("incoming migration: listening on " + bound.text());
      g_incoming.store(parts.destination.get());
      auto r = parts.destination->run();
      g_incoming.store(nullptr);
      return r;
    }();
    if (!received) {
      std::fprintf(stderr, "godwit: incoming migration failed (the guest never ran): %s\n",
                   received.error().message.c_str());
      status = 1;
    } else {
      log::info("incoming migration: completed after " + format_ms(ms_since(t0)) +
                " ms; the guest runs here");
      parts.destination_control->hand_over(*parts.source_control);
      status = machine.wait_stopped();
      log::info("VM stopped: " + machine.stop_reason() + " (exit status " + std::to_string(status) +
                ")");
    }
  } else if (auto r = machine.start(start_paused ? StartMode::paused : StartMode::running); !r) {
    if (machine.state() == RunState::shutdown) {
      // Stopped before it could start (a signal, or a lazy restore that found
      // damaged memory): report why, with the status the stop asked for.
      status = machine.wait_stopped();
      std::fprintf(stderr, "godwit: %s\n", machine.stop_reason().c_str());
    } else {
      std::fprintf(stderr, "godwit: %s\n", r.error().message.c_str());
      status = 1;
    }
  } else {
    if (parsed->restore) {
      log::info(std::string("restore: ") + (start_paused ? "paused" : "running") + " after " +
                format_ms(ms_since(t0)) + " ms (memory " + (vm.lazy ? "lazy" : "eager") + ")");
      if (vm.lazy) lazy_progress = std::make_unique<LazyProgress>(*vm.lazy, t0);
    }
    status = machine.wait_stopped();
    log::info("VM stopped: " + machine.stop_reason() + " (exit status " + std::to_string(status) +
              ")");
  }
  lazy_progress.reset();
  if (server) server->stop();
  parts.reset();  // before the machine it drives
  pthread_kill(signals.native_handle(), SIGUSR2);
  signals.join();
  g_machine = nullptr;
  vm.lazy.reset();
  vm.machine.reset();
  return status;
}
