// restore_vm: manifest -> configuration -> host checks -> machine -> memory -> state.
#include "vmm/snapshot/restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.h"
#include "base/unique_fd.h"
#include "migration/machine_state_codec.h"
#include "snapshot/memory_image.h"
#include "snapshot/memory_load.h"
#include "vmm/snapshot/vm_config_json.h"

namespace godwit {

namespace {

/// Reads the whole state file, checking its size against the manifest.
Result<std::vector<uint8_t>> read_state_file(const std::string& path, uint64_t expected) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("state file " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("state file " + path);
  if (static_cast<uint64_t>(st.st_size) != expected)
    return fail("state file " + path + " is " + std::to_string(st.st_size) +
                " bytes; the manifest says " + std::to_string(expected) +
                (static_cast<uint64_t>(st.st_size) < expected ? " (truncated)" : ""));
  std::vector<uint8_t> data(expected);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pread(fd.get(), data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("reading state file " + path);
    if (n == 0) return fail("state file " + path + " shrank while being read");
    done += static_cast<size_t>(n);
  }
  return data;
}

/// The guest must see the TSC rate it was saved with: take it as is when the
/// host runs at that rate, else ask KVM to scale, else refuse.
Result<void> match_tsc(Machine& machine, uint32_t saved_khz) {
  if (saved_khz == 0) return fail("the snapshot records no TSC rate");
  const uint32_t host_khz = TRY(machine.tsc_khz());
  if (host_khz == saved_khz) return {};
  auto scaled = machine.set_tsc_khz(saved_khz);
  if (!scaled)
    return fail("this host cannot run the snapshot's VM: its guest TSC ran at " +
                std::to_string(saved_khz) + " kHz, this host's runs at " +
                std::to_string(host_khz) + " kHz and KVM cannot scale it (" +
                scaled.error().message + ")");
  // KVM takes rates within 250 ppm of the host's as they are, without scaling.
  const uint64_t diff = host_khz > saved_khz ? host_khz - saved_khz : saved_khz - host_khz;
  const bool within_tolerance = diff * 1'000'000 <= uint64_t{250} * host_khz;
  log::info("restore: guest TSC " + std::to_string(saved_khz) + " kHz on a host at " +
            std::to_string(host_khz) +
            " kHz: " + (within_tolerance ? "within KVM's 250 ppm tolerance" : "guest TSC scaled"));
  return {};
}

/// What can be checked about the host without KVM: enough memory, a vCPU
/// count godwit can build. (The TSC rate needs a vCPU: match_tsc.)
Result<void> check_host(const VmConfig& config) {
  if (config.vcpus > kMaxVcpus)
    return fail("this host cannot run the snapshot's VM: it has " + std::to_string(config.vcpus) +
                " vCPUs, godwit builds at most " + std::to_string(kMaxVcpus));
  const uint64_t host = TRY(host_memory_bytes());
  if (config.memory_size > host)
    return fail("this host cannot run the snapshot's VM: it needs " +
                format_size(config.memory_size) + " of RAM, the host has " + format_size(host) +
                " (memory + swap)");
  return {};
}

}  // namespace

Result<RestoredVm> restore_vm(const RestoreRequest& request,
                              std::function<void(const Error&)> on_memory_error) {
  const std::string& dir = request.dir;
  RestoredVm out;
  out.manifest = TRY(snapshot::read_manifest(dir));
  VmConfig config = TRY(vm_config_from_json(out.manifest.vm));
  config.api_sock = request.api_sock;
  config.serial = request.serial;

  // Memory chain and state stream: metadata and every section checksum are
  // verified before anything is built.
  auto image = TRY(snapshot::open_snapshot_memory(dir, out.manifest));
  const auto stream = TRY(read_state_file(snapshot::snapshot_path(dir, snapshot::kStateFile),
                                          out.manifest.state_bytes));
  MachineState state;
  if (auto decoded = migration::decode_machine_state(stream, state); !decoded)
    return fail(decoded.error().context("state file " +
                                        snapshot::snapshot_path(dir, snapshot::kStateFile)));
  if (state.vcpus.size() != config.vcpus)
    return fail("snapshot " + dir + ": the state holds " + std::to_string(state.vcpus.size()) +
                " vCPUs, the configuration " + std::to_string(config.vcpus));

  TRY_VOID(check_host(config));
  auto machine = Machine::create(config, BootMode::skip);
  if (!machine) return fail(machine.error().context("building the VM of snapshot " + dir));
  out.machine = std::move(*machine);
  TRY_VOID(match_tsc(*out.machine, out.manifest.tsc_khz));

  if (request.memory == RestoreMemory::eager) {
    TRY_VOID(snapshot::load_memory(image, out.machine->memory()));
  } else {
    Machine* m = out.machine.get();
    auto on_error = [m, report = std::move(on_memory_error)](const Error& e) {
      m->request_stop(1, "lazy restore: " + e.message);
      if (report) report(e);
    };
    out.lazy = TRY(snapshot::LazyMemoryLoader::start(std::move(image), out.machine->memory(),
                                                     snapshot::LazyOptions{}, on_error));
  }
  if (auto restored = out.machine->restore_state(state); !restored)
    return fail(restored.error().context("snapshot " + dir));
  return out;
}

}  // namespace godwit
