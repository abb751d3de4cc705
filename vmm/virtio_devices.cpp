// VirtioDevices: transports, KVM eventfd wiring and one event thread per device.
#include "vmm/virtio_devices.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "base/log.h"
#include "base/unique_fd.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"

namespace godwit {
namespace {

/// epoll data tags: the low 32 bits carry the queue index or the fd.
constexpr uint64_t kTagControl = 1ull << 32;
constexpr uint64_t kTagQueue = 2ull << 32;
constexpr uint64_t kTagBackend = 3ull << 32;
constexpr uint64_t kTagMask = ~0ull << 32;

Result<UniqueFd> make_eventfd(const std::string& what) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return fail_errno("eventfd for " + what);
  return UniqueFd(fd);
}

/// Reads (and so clears) an eventfd counter; false when it was not signalled.
bool drain_eventfd(int fd) {
  uint64_t count = 0;
  return ::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count);
}

/// The MAC of net device `index` when --net gives none: locally administered
/// 02:67:64:77:00:NN ("gdw"), stable across runs and migrations.
virtio::MacAddress default_mac(size_t index) {
  return {0x02, 0x67, 0x64, 0x77, 0x00, static_cast<uint8_t>(index)};
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

/// One device: where it sits, its transport and its KVM eventfds.
struct VirtioDevices::Slot {
  fdt::VirtioMmioDevice place;
  std::shared_ptr<virtio::MmioTransport> transport;
  UniqueFd irq_event;                  ///< irqfd: a write pulses GSI place.irq
  std::vector<UniqueFd> queue_events;  ///< ioeventfd per queue (datamatch = index)
  std::vector<bool> registered;        ///< which queue_events KVM knows
  bool irqfd_registered = false;
  std::unique_ptr<EventThread> thread;
};

/// The thread that runs one device: waits on its queue ioeventfds, its
/// backend fds and a control eventfd (pause / stop).
class VirtioDevices::EventThread {
 public:
  EventThread(Slot& slot, UniqueFd epoll, UniqueFd control)
      : slot_(slot), epoll_(std::move(epoll)), control_(std::move(control)) {}
  ~EventThread() { stop(); }

  static Result<std::unique_ptr<EventThread>> create(Slot& slot) {
    const std::string name(slot.transport->device().name());
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return fail_errno("epoll_create1 for " + name);
    UniqueFd epoll(ep);
    UniqueFd control = TRY(make_eventfd(name + " control"));
    TRY_VOID(watch(epoll.get(), control.get(), EPOLLIN, kTagControl, name));
    for (size_t i = 0; i < slot.queue_events.size(); ++i)
      TRY_VOID(watch(epoll.get(), slot.queue_events[i].get(), EPOLLIN, kTagQueue | i, name));
    for (int fd : slot.transport->device().event_fds())
      TRY_VOID(
          watch(epoll.get(), fd, EPOLLIN | EPOLLET, kTagBackend | static_cast<uint32_t>(fd), name));
    return std::make_unique<EventThread>(slot, std::move(epoll), std::move(control));
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  void pause() {
    std::unique_lock lock(mu_);
    if (!thread_.joinable() || stopping_) return;
    pause_requested_ = true;
    wake();
    cv_.wait(lock, [&] { return parked_ || exited_; });
  }

  void resume() {
    std::lock_guard lock(mu_);
    pause_requested_ = false;
    cv_.notify_all();
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      pause_requested_ = false;
      cv_.notify_all();
    }
    wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  static Result<void> watch(int epoll, int fd, uint32_t events, uint64_t tag,
                            const std::string& name) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) < 0)
      return fail_errno("epoll_ctl ADD fd " + std::to_string(fd) + " for " + name);
    return {};
  }

  void wake() {
    uint64_t one = 1;
    if (::write(control_.get(), &one, sizeof one) < 0 && errno != EAGAIN)
      log::warn("virtio event thread: control eventfd write failed");
  }

  /// Handles the control eventfd; false when the thread must exit.
  bool on_control() {
    drain_eventfd(control_.get());
    std::unique_lock lock(mu_);
    if (pause_requested_ && !stopping_) {
      parked_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !pause_requested_ || stopping_; });
      parked_ = false;
    }
    return !stopping_;
  }

  void run() {
    std::array<epoll_event, 16> events{};
    bool running = true;
    while (running) {
      int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        log::error(std::string(slot_.transport->device().name()) +
                   ": epoll_wait failed; device thread exits");
        break;
      }
      for (int i = 0; i < n && running; ++i) {
        const uint64_t tag = events[i].data.u64 & kTagMask;
        const auto low = static_cast<uint32_t>(events[i].data.u64);
        if (tag == kTagControl) {
          running = on_control();
        } else if (tag == kTagQueue) {
          if (drain_eventfd(slot_.queue_events[low].get())) slot_.transport->notify(low);
        } else if (tag == kTagBackend) {
          slot_.transport->device_event(static_cast<int>(low));
        }
      }
    }
    std::lock_guard lock(mu_);
    exited_ = true;
    cv_.notify_all();
  }

  Slot& slot_;
  UniqueFd epoll_;
  UniqueFd control_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pause_requested_ = false;
  bool parked_ = false;
  bool stopping_ = false;
  bool exited_ = false;
};

VirtioDevices::VirtioDevices() = default;

VirtioDevices::~VirtioDevices() {
  stop();
  for (auto& slot : slots_) {
    const uint64_t notify = slot->place.base + virtio::mmio::kQueueNotify;
    for (size_t i = 0; i < slot->queue_events.size(); ++i) {
      if (!slot->registered[i]) continue;
      auto r = vm_->unregister_ioeventfd(slot->queue_events[i].get(), notify, 4, false, i);
      if (!r) log::warn(r.error().message);
    }
    if (slot->irqfd_registered) {
      auto r = vm_->unregister_irqfd(slot->irq_event.get(), slot->place.irq);
      if (!r) log::warn(r.error().message);
    }
  }
}

Result<std::unique_ptr<VirtioDevices>> VirtioDevices::create(const VmConfig& config,
                                                             GuestMemory& memory, kvm::Vm& vm,
                                                             Bus& mmio,
                                                             fdt::MachineDescription& description) {
  std::unique_ptr<VirtioDevices> d(new VirtioDevices());
  d->vm_ = &vm;
  for (size_t i = 0; i < config.disks.size(); ++i) {
    const DiskConfig& disk = config.disks[i];
    virtio::BlockOptions options{
        .path = disk.path, .readonly = disk.readonly, .direct = disk.direct, .serial = disk.serial};
    auto device = virtio::VirtioBlock::open(memory, "blk" + std::to_string(i), options);
    if (!device) return fail(device.error().context("--disk " + disk.path));
    TRY_VOID(d->add(std::move(*device), "block", memory, mmio, description));
  }
  for (size_t i = 0; i < config.nets.size(); ++i) {
    const NetConfig& net = config.nets[i];
    virtio::NetOptions options{.tap = net.tap, .mac = default_mac(i)};
    if (!net.mac.empty()) {
      auto mac = virtio::parse_mac(net.mac);
      if (!mac) return fail(mac.error().context("--net tap=" + net.tap));
      options.mac = *mac;
    }
    auto device = virtio::VirtioNet::open(memory, "net" + std::to_string(i), options);
    if (!device) return fail(device.error().context("--net tap=" + net.tap));
    TRY_VOID(d->add(std::move(*device), "net", memory, mmio, description));
  }
  if (config.rng) {
    TRY_VOID(d->add(std::make_unique<virtio::VirtioRng>(memory, "rng0"), "rng", memory, mmio,
                    description));
  }
  return d;
}

Result<void> VirtioDevices::add(std::unique_ptr<virtio::VirtioDevice> device,
                                const std::string& type, GuestMemory& memory, Bus& mmio,
                                fdt::MachineDescription& description) {
  const std::string name(device->name());
  auto slot = std::make_unique<Slot>();
  slot->place = TRY(fdt::add_virtio_mmio_device(description, type));
  slot->irq_event = TRY(make_eventfd(name + " irqfd"));
  const int irq_fd = slot->irq_event.get();
  slot->transport = std::make_shared<virtio::MmioTransport>(memory, std::move(device), [irq_fd] {
    uint64_t one = 1;
    // EAGAIN only when the counter would overflow: an interrupt is pending anyway.
    if (::write(irq_fd, &one, sizeof one) < 0 && errno != EAGAIN)
      log::warn("virtio irqfd write failed");
  });
  // Register first so a failure below unwinds through the destructor.
  slots_.push_back(std::move(slot));
  Slot& s = *slots_.back();
  TRY_VOID(vm_->register_irqfd(irq_fd, s.place.irq));
  s.irqfd_registered = true;
  const uint64_t notify = s.place.base + virtio::mmio::kQueueNotify;
  for (size_t i = 0; i < s.transport->queue_count(); ++i) {
    s.queue_events.push_back(TRY(make_eventfd(name + " queue " + std::to_string(i))));
    s.registered.push_back(false);
    TRY_VOID(vm_->register_ioeventfd(s.queue_events[i].get(), notify, 4, false, i));
    s.registered[i] = true;
  }
  TRY_VOID(mmio.insert(s.transport, s.place.base, s.place.size, name));
  s.thread = TRY(EventThread::create(s));
  return {};
}

Result<void> VirtioDevices::signal_all_queues() {
  for (auto& slot : slots_) {
    for (const UniqueFd& event : slot->queue_events) {
      uint64_t one = 1;
      if (::write(event.get(), &one, sizeof one) < 0)
        return fail_errno("signalling " + std::string(slot->transport->device().name()) +
                          " queue eventfd");
    }
  }
  return {};
}

Result<void> VirtioDevices::start() {
  TRY_VOID(signal_all_queues());
  for (auto& slot : slots_) slot->thread->start();
  return {};
}

Result<std::vector<virtio::MmioTransportState>> VirtioDevices::save_state() const {
  std::vector<virtio::MmioTransportState> out;
  for (const auto& slot : slots_) out.push_back(TRY(slot->transport->state()));
  return out;
}

Result<void> VirtioDevices::restore_state(const std::vector<virtio::MmioTransportState>& state) {
  if (state.size() != slots_.size())
    return fail("restoring virtio devices: the state has " + std::to_string(state.size()) +
                " devices, this VM " + std::to_string(slots_.size()));
  for (size_t i = 0; i < slots_.size(); ++i) TRY_VOID(slots_[i]->transport->restore(state[i]));
  return signal_all_queues();  // handled once the event threads run (start / resume)
}

void VirtioDevices::pause() {
  for (auto& slot : slots_) slot->thread->pause();
}

void VirtioDevices::resume() {
  for (auto& slot : slots_) slot->thread->resume();
}

void VirtioDevices::stop() {
  for (auto& slot : slots_) {
    if (slot->thread) slot->thread->stop();
  }
}

size_t VirtioDevices::size() const { return slots_.size(); }

nlohmann::json VirtioDevices::info() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& slot : slots_) {
    virtio::MmioTransport::Info t = slot->transport->info();
    nlohmann::json counters = nlohmann::json::object();
    for (const auto& [key, value] : t.counters) counters[key] = value;
    nlohmann::json props = nlohmann::json::object();
    for (const auto& [key, value] : t.properties) props[key] = value;
    nlohmann::json j = {{"name", t.name},
                        {"type", slot->place.type},
                        {"transport", "virtio-mmio"},
                        {"base", slot->place.base},
                        {"base_hex", hex(slot->place.base)},
                        {"irq", slot->place.irq},
                        {"device_id", t.device_id},
                        {"status", t.status},
                        {"active", t.active},
                        {"driver_features", t.driver_features},
                        {"counters", counters},
                        {"properties", props}};
    if (!t.needs_reset_reason.empty()) j["needs_reset"] = t.needs_reset_reason;
    list.push_back(std::move(j));
  }
  return list;
}

}  // namespace godwit
