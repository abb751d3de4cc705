// The Machine side of live migration: KVM dirty pages, the machine state
// section, and the source / destination VMs the engine drives.
#include "vmm/migration/machine_migration.h"

#include <algorithm>
#include <span>

#include "base/log.h"
#include "kvm/uapi.h"
#include "migration/machine_state_codec.h"

namespace godwit {

using migration::PendingData;
using migration::PendingQuery;
using migration::RamMigratable;

// ---- KvmDirtyPages -------------------------------------------------------

Result<void> KvmDirtyPages::collect(snapshot::PageSet& pages) {
  const bool share = hooks_.harvested && hooks_.keep_dirty_logging && hooks_.keep_dirty_logging();
  if (!share) return harvest_dirty_pages(machine_, pages, clear_);
  // The harvest empties KVM's log for everyone: the snapshot diff epoch gets
  // its copy before the pages go to the migration.
  snapshot::PageSet harvested = snapshot::PageSet::for_memory(machine_.memory());
  auto got = harvest_dirty_pages(machine_, harvested, clear_);
  // A failed harvest may have taken some pages already: pass those on too.
  auto handed = hooks_.harvested(harvested);
  TRY_VOID(pages.add_set(harvested));
  TRY_VOID(got);
  return with_context(std::move(handed), "handing dirty pages to the snapshot epoch");
}

// ---- MachineStateMigratable ----------------------------------------------

Result<PendingData> MachineStateMigratable::pending(PendingQuery /*query*/) {
  PendingData d;
  d.stopcopy_bytes = kEstimateBytes * (uint64_t{machine_.config().vcpus} + 1);
  return d;
}

Result<void> MachineStateMigratable::save_complete(migration::SectionWriter& out) {
  const MachineState state = TRY(machine_.save_state(MemoryCopy::skip));
  const std::vector<uint8_t> stream = TRY(migration::encode_machine_state(state));
  out.raw(stream);
  return out.status();
}

Result<void> MachineStateMigratable::load(migration::SectionReader& in, uint32_t /*version*/) {
  // Version 1 is the only one; the engine refuses others before load().
  std::vector<uint8_t> stream(in.remaining());
  TRY_VOID(in.raw(stream));
  MachineState state;
  TRY_VOID(with_context(migration::decode_machine_state(stream, state), key().name()));
  TRY_VOID(with_context(machine_.restore_state(state), key().name()));
  loaded_ = true;
  return {};
}

Result<void> MachineStateMigratable::cleanup(bool /*success*/) { return {}; }

uint32_t migration_tsc_khz(Machine& machine) {
  auto tsc = machine.tsc_khz();
  if (!tsc) log::warn("migration: cannot read the guest TSC rate: " + tsc.error().message);
  return tsc ? *tsc : 0;
}

migration::wire::VmDescription describe_machine(Machine& machine, uint32_t tsc_khz) {
  migration::wire::VmDescription d;
  for (const RegionSpec& r : machine.memory().layout()) d.memory.push_back({r.gpa, r.size});
  d.vcpus = machine.config().vcpus;
  d.tsc_khz = tsc_khz;
  d.devices = {
      {{RamMigratable::kKind, 0}, RamMigratable::kVersion, RamMigratable::kMinVersion},
      {{MachineStateMigratable::kKind, 0},
       MachineStateMigratable::kVersion,
       MachineStateMigratable::kVersion},
  };
  d.godwit_version = kGodwitVersion;
  return d;
}

// ---- MachineSourceVm -----------------------------------------------------

MachineSourceVm::MachineSourceVm(Machine& machine, SourceHooks hooks, migration::RamOptions ram)
    : machine_(machine),
      tsc_khz_(migration_tsc_khz(machine)),
      hooks_(std::move(hooks)),
      ram_options_(ram),
      state_(machine) {}

MachineSourceVm::~MachineSourceVm() {
  stop_throttle();
  if (tracking_) stop_dirty_tracking();
}

migration::wire::VmDescription MachineSourceVm::describe() {
  return describe_machine(machine_, tsc_khz_);
}

Result<void> MachineSourceVm::while_paused(const std::function<Result<void>()>& change) {
  const RunState s = machine_.state();
  if (s == RunState::paused || s == RunState::created) return change();
  if (s != RunState::running) return fail(std::string("the VM is ") + to_string(s));
  if (auto paused = machine_.pause(); !paused) {
    // Someone else (the API) paused it in between: fine, it is parked.
    if (machine_.state() == RunState::paused) return change();
    return paused;
  }
  auto changed = change();
  if (auto resumed = machine_.resume(); !resumed) {
    if (changed) return resumed;
    return fail(changed.error().message + "; resuming the VM failed: " + resumed.error().message);
  }
  return changed;
}

Result<void> MachineSourceVm::start_dirty_tracking(migration::DirtyTracking mode) {
  if (mode == migration::DirtyTracking::ring) {
    return fail(
        "dirty ring tracking needs a VM created with a KVM dirty ring (KVM_CAP_DIRTY_LOG_RING "
        "before its vCPUs) and access to every vCPU's ring; godwit's Machine creates neither "
        "yet: use --dirty-tracking bitmap");
  }
  if (tracking_) stop_dirty_tracking();
  std::unique_lock lock(throttle_mutex_);
  auto enabled = while_paused([this]() -> Result<void> {
    // Manual protect makes a collect re-protect exactly the pages it read
    // (KVM_CLEAR_DIRTY_LOG) instead of the whole log at once; classic mode
    // is the fallback on hosts without it.
    auto caps = machine_.vm().check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    if (caps && (*caps & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) != 0) {
      auto manual = machine_.vm().enable_manual_dirty_log_protect(false);
      if (manual) {
        manual_protect_ = true;
      } else {
        log::warn("migration: manual dirty-log protect unavailable, using classic mode: " +
                  manual.error().message);
      }
    }
    snapshot::PageSet earlier = snapshot::PageSet::for_memory(machine_.memory());
    if (machine_.dirty_logging()) {
      // On since a snapshot: empty the log so the migration's epoch starts
      // now (its first round sends every page anyway).
      TRY_VOID(harvest_dirty_pages(
          machine_, earlier, manual_protect_ ? DirtyLogClear::manual : DirtyLogClear::by_get));
    } else {
      TRY_VOID(machine_.set_dirty_logging(true));
      turned_logging_on_ = true;
      TRY_VOID(earlier.take_vmm_dirty(machine_.memory()));
    }
    if (hooks_.harvested) TRY_VOID(hooks_.harvested(earlier));
    return {};
  });
  lock.unlock();
  tracking_ = true;  // so that the undo below (and a later stop) runs
  if (!enabled) {
    stop_dirty_tracking();
    return enabled;
  }
  ram_.reset();  // it refers to the old dirty source
  dirty_ = std::make_unique<KvmDirtyPages>(
      machine_, manual_protect_ ? DirtyLogClear::manual : DirtyLogClear::by_get, hooks_);
  ram_ = std::make_unique<RamMigratable>(machine_.memory(), *dirty_, ram_options_);
  return {};
}

void MachineSourceVm::stop_dirty_tracking() {
  if (!tracking_) return;
  tracking_ = false;
  const bool keep = hooks_.keep_dirty_logging && hooks_.keep_dirty_logging();
  std::lock_guard lock(throttle_mutex_);
  auto stopped = while_paused([this, keep]() -> Result<void> {
    if (manual_protect_) {
      // Back to classic mode for the snapshotter's harvests. Bits read but
      // not cleared would only be reported again (a superset), never lost.
      const uint64_t off[] = {0};
      auto classic = machine_.vm().enable_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, off);
      if (!classic) return fail(classic.error().context("turning manual dirty-log protect off"));
      manual_protect_ = false;
    }
    if (!keep && machine_.dirty_logging()) TRY_VOID(machine_.set_dirty_logging(false));
    turned_logging_on_ = false;
    return {};
  });
  if (!stopped) log::warn("migration: turning dirty tracking off: " + stopped.error().message);
}

std::vector<migration::Migratable*> MachineSourceVm::migratables() {
  if (!ram_) return {};
  return {ram_.get(), &state_};
}

bool MachineSourceVm::running() {
  std::lock_guard lock(throttle_mutex_);
  return throttle_paused_ || machine_.state() == RunState::running;
}

Result<void> MachineSourceVm::stop() {
  // The throttle resumes what it paused when it ends; only then is the pause
  // below the switchover's own.
  stop_throttle();
  std::lock_guard lock(throttle_mutex_);
  return machine_.pause();
}

Result<void> MachineSourceVm::resume() {
  std::lock_guard lock(throttle_mutex_);
  return machine_.resume();
}

void MachineSourceVm::set_throttle(uint32_t percent) {
  if (percent == 0) {
    stop_throttle();
    return;
  }
  std::lock_guard lock(throttle_mutex_);
  throttle_percent_ = std::min<uint32_t>(percent, 99);
  if (!throttle_thread_.joinable()) {
    throttle_quit_ = false;
    throttle_thread_ = std::thread([this] { throttle_loop(); });
  }
}

void MachineSourceVm::stop_throttle() {
  {
    std::lock_guard lock(throttle_mutex_);
    throttle_quit_ = true;
    throttle_percent_ = 0;
  }
  throttle_changed_.notify_all();
  if (throttle_thread_.joinable()) throttle_thread_.join();
}

void MachineSourceVm::throttle_loop() {
  using std::chrono::microseconds;
  std::unique_lock lock(throttle_mutex_);
  const auto quit = [this] { return throttle_quit_; };
  while (!throttle_quit_) {
    const microseconds off = microseconds(kThrottlePeriod) * throttle_percent_ / 100;
    // Only a VM that runs is sliced: a pause by the API or the engine is left alone.
    if (off.count() > 0 && machine_.state() == RunState::running && machine_.pause()) {
      throttle_paused_ = true;
      throttle_changed_.wait_for(lock, off, quit);
      if (auto r = machine_.resume(); !r) log::warn("migration throttle: " + r.error().message);
      throttle_paused_ = false;
    }
    if (throttle_quit_) break;
    throttle_changed_.wait_for(lock, microseconds(kThrottlePeriod) - off, quit);
  }
}

// ---- MachineDestinationVm ------------------------------------------------

MachineDestinationVm::MachineDestinationVm(Machine& machine, StartMode start)
    : machine_(machine),
      start_(start),
      tsc_khz_(migration_tsc_khz(machine)),
      ram_(machine.memory(), no_dirty_),
      state_(machine) {}

migration::wire::VmDescription MachineDestinationVm::describe() {
  return describe_machine(machine_, tsc_khz_);
}

std::vector<migration::Migratable*> MachineDestinationVm::migratables() { return {&ram_, &state_}; }

Result<void> MachineDestinationVm::finish_load() {
  if (!state_.loaded())
    return fail("the machine state (machine[0]) never arrived: the guest cannot run");
  return {};
}

Result<void> MachineDestinationVm::start() { return machine_.start(start_); }

GuestMemory* MachineDestinationVm::ram() { return &machine_.memory(); }

}  // namespace godwit
