// Machine: building the VM, the run-state transitions and whole-VM state.
#include "vmm/machine.h"

#include "base/log.h"
#include "kvm/uapi.h"
#include "vmm/boot_setup.h"
#include "vmm/fdt/fdt_builder.h"
#include "vmm/fdt/fdt_delivery.h"
#include "vmm/fdt/fdt_layout.h"
#include "vmm/fdt/virtio_cmdline.h"
#include "vmm/platform.h"

namespace godwit {

const char* to_string(RunState s) {
  switch (s) {
    case RunState::created:
      return "created";
    case RunState::running:
      return "running";
    case RunState::paused:
      return "paused";
    case RunState::shutdown:
      return "shutdown";
  }
  return "unknown";
}

Machine::Machine(const VmConfig& config) : config_(config), control_(config.vcpus) {}

Machine::~Machine() {
  request_stop(exit_status_, stop_reason_.empty() ? "machine destroyed" : stop_reason_);
  for (auto& t : threads_) t->join();
}

Result<std::unique_ptr<Machine>> Machine::create(const VmConfig& config, BootMode boot) {
  std::unique_ptr<Machine> m(new Machine(config));
  TRY_VOID(m->build(boot));
  return m;
}

Result<void> Machine::build(BootMode boot) {
  kvm_ = std::make_unique<kvm::System>(TRY(kvm::System::open()));
  vm_ = TRY(kvm_->create_vm());
  TRY_VOID(vm_->set_tss_addr(platform::kTssAddr));
  TRY_VOID(vm_->set_identity_map_addr(platform::kIdentityMapAddr));
  TRY_VOID(vm_->create_irqchip());
  TRY_VOID(vm_->create_pit2());
  TRY_VOID(setup_memory());
  devices_ = TRY(PlatformDevices::create(
      config_, PlatformDevices::Hooks{
                   .irq_line =
                       [this](uint32_t gsi, bool level) {
                         auto r = vm_->irq_line(gsi, level);
                         if (!r)
                           log::warn("irq line " + std::to_string(gsi) + ": " + r.error().message);
                       },
                   .stop = [this](int status,
                                  const std::string& reason) { request_stop(status, reason); }}));
  TRY_VOID(setup_virtio());
  TRY_VOID(setup_vcpus());
  if (boot == BootMode::load) TRY_VOID(load_boot_source());
  return {};
}

Result<void> Machine::setup_virtio() {
  fdt::MachineDescription description = fdt::describe_machine(*memory_, config_.vcpus);
  if (const auto* k = std::get_if<KernelBoot>(&config_.boot)) description.bootargs = k->cmdline;
  virtio_ = TRY(VirtioDevices::create(config_, *memory_, *vm_, devices_->mmio_bus(), description));
  dtb_ = TRY(fdt::build_fdt(description));
  virtio_cmdline_ = fdt::virtio_mmio_cmdline(description);
  return {};
}

Result<void> Machine::setup_memory() {
  GuestMemoryOptions opts;
  opts.size = config_.memory_size;
  opts.backing = config_.backing;
  opts.hugetlbfs_dir = config_.hugetlbfs_dir;
  memory_ = TRY(GuestMemory::create(opts));
  for (const MemoryRegion& r : memory_->regions()) {
    TRY_VOID(vm_->set_user_memory_region(r.slot, 0, r.gpa, r.size, r.host));
  }
  return {};
}

Result<void> Machine::setup_vcpus() {
  auto supported = TRY(kvm_->supported_cpuid());
  for (uint32_t i = 0; i < config_.vcpus; ++i) {
    auto vcpu = TRY(vm_->create_vcpu(i));
    TRY_VOID(configure_vcpu(*vcpu, supported, config_.vcpus));
    vcpus_.push_back(std::move(vcpu));
  }
  // The saveable MSR list is probed on the first save_state(): probing costs
  // one KVM_GET_MSRS per MSR, which would delay every boot for nothing.
  return {};
}

Result<void> Machine::load_boot_source() {
  // The tree goes in first: a raw image that covers kFdtAddr replaces it.
  auto written = fdt::write_fdt(*memory_, fdt::kFdtAddr, dtb_);
  if (!written) return fail(written.error().context("device tree"));
  return load_boot(config_, *memory_, *vcpus_[0], DeviceAnnouncement{dtb_, virtio_cmdline_});
}

Result<void> Machine::start(StartMode mode) {
  std::lock_guard lock(mu_);
  if (state_ != RunState::created)
    return fail(std::string("cannot start: VM is ") + to_string(state_));
  // A paused start parks every thread before its first KVM_RUN: the pause
  // request is in place before the threads exist.
  if (mode == StartMode::paused) control_.request_pause();
  for (auto& vcpu : vcpus_) {
    threads_.push_back(std::make_unique<VcpuThread>(
        *vcpu, control_, *this,
        [this](ExitAction a, const std::string& reason) { on_vcpu_stop(a, reason); }));
  }
  for (auto& t : threads_) t->start();
  TRY_VOID(virtio_->start());
  if (mode == StartMode::paused) {
    control_.wait_parked();
    virtio_->pause();
    state_ = RunState::paused;
  } else {
    state_ = RunState::running;
  }
  return {};
}

void Machine::kick_all() {
  for (auto& t : threads_) t->kick();
}

Result<void> Machine::pause() {
  std::unique_lock lock(mu_);
  if (state_ != RunState::running)
    return fail(std::string("cannot pause: VM is ") + to_string(state_));
  control_.request_pause();
  kick_all();
  lock.unlock();  // vCPUs may need the lock (request_stop) while leaving
  control_.wait_parked();
  virtio_->pause();  // after the vCPUs: no new notifications, then no device work
  lock.lock();
  if (state_ == RunState::shutdown) return fail("cannot pause: the VM shut down meanwhile");
  state_ = RunState::paused;
  return {};
}

Result<void> Machine::resume() {
  std::lock_guard lock(mu_);
  if (state_ != RunState::paused)
    return fail(std::string("cannot resume: VM is ") + to_string(state_));
  virtio_->resume();
  control_.request_resume();
  state_ = RunState::running;
  return {};
}

void Machine::request_stop(int exit_status, const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (state_ == RunState::shutdown) return;
    state_ = RunState::shutdown;
    exit_status_ = exit_status;
    stop_reason_ = reason;
  }
  control_.request_stop();
  kick_all();
  stopped_cv_.notify_all();
}

void Machine::on_vcpu_stop(ExitAction action, const std::string& reason) {
  if (action == ExitAction::fatal) {
    log::error(reason);
    request_stop(kFatalExitStatus, reason);
  } else {
    log::info(reason);
    request_stop(0, reason);
  }
}

int Machine::wait_stopped() {
  {
    std::unique_lock lock(mu_);
    stopped_cv_.wait(lock, [&] { return state_ == RunState::shutdown; });
  }
  for (auto& t : threads_) t->join();
  virtio_->stop();
  std::lock_guard lock(mu_);
  joined_ = true;
  return exit_status_;
}

RunState Machine::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::string Machine::stop_reason() const {
  std::lock_guard lock(mu_);
  return stop_reason_;
}

Result<MachineState> Machine::save_state(MemoryCopy memory) {
  RunState s = state();
  if (s != RunState::paused && s != RunState::created)
    return fail(std::string("cannot save state: VM is ") + to_string(s) + " (pause it first)");
  if (msr_indices_.empty()) msr_indices_ = TRY(kvm::saveable_msrs(*kvm_, *vcpus_[0]));
  MachineState out;
  out.vm = TRY(kvm::save_vm_state(*vm_));
  for (auto& vcpu : vcpus_) out.vcpus.push_back(TRY(kvm::save_vcpu_state(*vcpu, msr_indices_)));
  out.devices = devices_->save_state();
  out.virtio = TRY(virtio_->save_state());
  if (memory == MemoryCopy::include) {
    for (const MemoryRegion& r : memory_->regions())
      out.memory.emplace_back(r.host, r.host + r.size);
  }
  return out;
}

Result<void> Machine::restore_state(const MachineState& st) {
  RunState s = state();
  if (s != RunState::paused && s != RunState::created)
    return fail(std::string("cannot restore state: VM is ") + to_string(s));
  if (st.vcpus.size() != vcpus_.size())
    return fail("cannot restore state: it has " + std::to_string(st.vcpus.size()) +
                " vCPUs, this VM " + std::to_string(vcpus_.size()));
  auto regions = memory_->regions();
  const bool with_memory = !st.memory.empty();
  if (with_memory && st.memory.size() != regions.size())
    return fail("cannot restore state: memory layout differs (region count)");
  for (size_t i = 0; with_memory && i < regions.size(); ++i) {
    if (st.memory[i].size() != regions[i].size)
      return fail("cannot restore state: memory region " + std::to_string(i) + " size differs");
  }
  for (size_t i = 0; with_memory && i < regions.size(); ++i) {
    std::copy(st.memory[i].begin(), st.memory[i].end(), regions[i].host);
    memory_->mark_dirty(regions[i].gpa, regions[i].size);
  }
  TRY_VOID(kvm::restore_vm_devices(*vm_, st.vm));
  for (size_t i = 0; i < vcpus_.size(); ++i)
    TRY_VOID(kvm::restore_vcpu_state(*vcpus_[i], st.vcpus[i]));
  TRY_VOID(devices_->restore_state(st.devices));
  TRY_VOID(virtio_->restore_state(st.virtio));
  TRY_VOID(kvm::restore_vm_clock(*vm_, st.vm));
  return {};
}

Result<void> Machine::set_dirty_logging(bool on) {
  RunState s = state();
  if (s != RunState::paused && s != RunState::created)
    return fail(std::string("cannot change dirty logging: VM is ") + to_string(s));
  const uint32_t flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  for (const MemoryRegion& r : memory_->regions()) {
    auto set = vm_->set_user_memory_region(r.slot, flags, r.gpa, r.size, r.host);
    if (!set) return fail(set.error().context("dirty logging of slot " + std::to_string(r.slot)));
  }
  dirty_logging_ = on;
  return {};
}

Result<uint32_t> Machine::tsc_khz() const { return vcpus_.front()->get_tsc_khz(); }

Result<void> Machine::set_tsc_khz(uint32_t khz) {
  for (auto& vcpu : vcpus_) {
    auto r = vcpu->set_tsc_khz(khz);
    if (!r)
      return fail(r.error().context("setting the guest TSC to " + std::to_string(khz) + " kHz"));
  }
  return {};
}

nlohmann::json Machine::info() const {
  nlohmann::json j;
  {
    std::lock_guard lock(mu_);
    j["state"] = to_string(state_);
    if (state_ == RunState::shutdown) {
      j["exit_status"] = exit_status_;
      j["stop_reason"] = stop_reason_;
    }
  }
  j["vcpus"] = config_.vcpus;
  nlohmann::json regions = nlohmann::json::array();
  for (const MemoryRegion& r : memory_->regions())
    regions.push_back({{"slot", r.slot}, {"gpa", r.gpa}, {"size", r.size}});
  j["memory"] = {{"size_bytes", memory_->total_size()},
                 {"backing", backing_name(config_.backing)},
                 {"regions", regions}};
  nlohmann::json cfg;
  cfg["memory_size"] = config_.memory_size;
  cfg["vcpus"] = config_.vcpus;
  if (const auto* k = std::get_if<KernelBoot>(&config_.boot)) {
    cfg["boot"] = {{"kernel", k->kernel}, {"initrd", k->initrd}, {"cmdline", k->cmdline}};
  } else {
    cfg["boot"] = {{"image", std::get<ImageBoot>(config_.boot).spec}};
  }
  cfg["guest_params"] = config_.guest_params;
  j["config"] = cfg;
  j["devices"] = devices_->info();
  j["virtio"] = virtio_->info();
  return j;
}

void Machine::pio_in(uint16_t port, std::span<uint8_t> data) { devices_->pio_in(port, data); }
void Machine::pio_out(uint16_t port, std::span<const uint8_t> data) {
  devices_->pio_out(port, data);
}
void Machine::mmio_read(uint64_t addr, std::span<uint8_t> data) { devices_->mmio_read(addr, data); }
void Machine::mmio_write(uint64_t addr, std::span<const uint8_t> data) {
  devices_->mmio_write(addr, data);
}

}  // namespace godwit
