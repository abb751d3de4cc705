// virtio-mmio transport: register decoding, the device-status state machine,
// queue configuration, notifications and snapshots (see mmio_transport.h).
#include "devices/virtio/mmio_transport.h"

#include <cstdio>
#include <cstring>

#include "base/log.h"

namespace godwit::virtio {
namespace {

/// "0x1f" for messages.
std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Features the transport adds to the device's own: the Queue implements them.
constexpr uint64_t kTransportFeatures = kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx;

}  // namespace

std::function<void()> pulse_irq_line(IrqLine& line) {
  return [&line] {
    line.set_level(true);
    line.set_level(false);
  };
}

/// The VirtioInterrupt handed to the device: atomics and the trigger only,
/// so it never takes the transport lock.
class MmioTransport::Interrupt : public VirtioInterrupt {
 public:
  explicit Interrupt(MmioTransport& transport) : transport_(transport) {}
  void signal_used_buffer() override { transport_.raise(mmio::kInterruptUsedBuffer); }
  void signal_config_change() override {
    transport_.config_generation_.fetch_add(1);
    transport_.raise(mmio::kInterruptConfigChange);
  }

 private:
  MmioTransport& transport_;
};

MmioTransport::MmioTransport(GuestMemory& memory, std::unique_ptr<VirtioDevice> device,
                             std::function<void()> trigger)
    : memory_(memory),
      device_(std::move(device)),
      trigger_(std::move(trigger)),
      interrupt_(std::make_unique<Interrupt>(*this)),
      offered_features_(device_->offered_features() | kTransportFeatures) {
  auto sizes = device_->queue_max_sizes();
  queues_.reserve(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    queues_.emplace_back(memory_, std::string(device_->name()) + " q" + std::to_string(i),
                         sizes[i]);
  }
}

MmioTransport::~MmioTransport() = default;

void MmioTransport::raise(uint32_t bits) {
  interrupt_status_.fetch_or(bits);
  if (trigger_) trigger_();
}

uint32_t MmioTransport::device_status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

std::string MmioTransport::needs_reset_reason() const {
  std::lock_guard lock(mutex_);
  return needs_reset_reason_;
}

void MmioTransport::notify(uint32_t queue) {
  std::lock_guard lock(mutex_);
  notify_queue(queue);
}

void MmioTransport::device_event(int fd) {
  std::lock_guard lock(mutex_);
  if (status_ & status::kFailed) return;
  if (auto r = device_->process_event(fd); !r) enter_needs_reset(r.error().message);
}

MmioTransport::Info MmioTransport::info() const {
  std::lock_guard lock(mutex_);
  Info out;
  out.device_id = device_->device_id();
  out.name = std::string(device_->name());
  out.status = status_;
  out.driver_features = (status_ & status::kFeaturesOk) ? driver_features_ : 0;
  out.active = device_active_;
  out.needs_reset_reason = needs_reset_reason_;
  out.interrupt_status = interrupt_status_.load();
  out.counters = device_->counters();
  out.properties = device_->properties();
  return out;
}

Queue* MmioTransport::selected_queue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  std::lock_guard lock(mutex_);
  if (offset >= mmio::kConfig) {
    size_t n = data.size();
    if (n == 1 || n == 2 || n == 4 || n == 8) {
      device_->read_config(offset - mmio::kConfig, data);
    } else {
      log::debug(std::string(device_->name()) + ": ignored " + std::to_string(n) +
                 "-byte config read at " + hex(offset));
    }
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    log::debug(std::string(device_->name()) + ": ignored " + std::to_string(data.size()) +
               "-byte register read at " + hex(offset));
    return;
  }
  uint32_t v = read_register(offset);
  std::memcpy(data.data(), &v, 4);
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset >= mmio::kConfig) {
    size_t n = data.size();
    if (n == 1 || n == 2 || n == 4 || n == 8) {
      device_->write_config(offset - mmio::kConfig, data);
    } else {
      log::debug(std::string(device_->name()) + ": ignored " + std::to_string(n) +
                 "-byte config write at " + hex(offset));
    }
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    log::debug(std::string(device_->name()) + ": ignored " + std::to_string(data.size()) +
               "-byte register write at " + hex(offset));
    return;
  }
  uint32_t v = 0;
  std::memcpy(&v, data.data(), 4);
  write_register(offset, v);
}

uint32_t MmioTransport::read_register(uint64_t offset) {
  Queue* q = selected_queue();
  switch (offset) {
    case mmio::kMagicValue:
      return mmio::kMagic;
    case mmio::kVersion:
      return mmio::kVersion2;
    case mmio::kDeviceId:
      return device_->device_id();
    case mmio::kVendorId:
      return mmio::kVendor;
    case mmio::kDeviceFeatures:
      if (device_features_sel_ > 1) return 0;
      return static_cast<uint32_t>(offered_features_ >> (32 * device_features_sel_));
    case mmio::kQueueNumMax:
      return q ? q->max_size() : 0;
    case mmio::kQueueReady:
      return q && q->ready() ? 1 : 0;
    case mmio::kInterruptStatus:
      return interrupt_status_.load();
    case mmio::kStatus:
      return status_;
    case mmio::kShmLenLow:
    case mmio::kShmLenHigh:
      return 0xffffffff;
    case mmio::kConfigGeneration:
      return config_generation_.load();
    default:
      log::debug(std::string(device_->name()) + ": read of write-only or unknown register " +
                 hex(offset));
      return 0;
  }
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  const bool features_open = (status_ & status::kDriver) && !(status_ & status::kFeaturesOk);
  switch (offset) {
    case mmio::kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case mmio::kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case mmio::kDriverFeatures:
      if (!features_open || driver_features_sel_ > 1) {
        log::debug(std::string(device_->name()) + ": ignored DriverFeatures write (status " +
                   hex(status_) + ", sel " + std::to_string(driver_features_sel_) + ")");
        return;
      }
      if (driver_features_sel_ == 0) {
        driver_features_ = (driver_features_ & ~0xffffffffull) | value;
      } else {
        driver_features_ = (driver_features_ & 0xffffffffull) | (uint64_t{value} << 32);
      }
      return;
    case mmio::kQueueSel:
      queue_sel_ = value;
      return;
    case mmio::kQueueNum:
      if (Queue* q = selected_queue()) q->set_size(static_cast<uint16_t>(value));
      return;
    case mmio::kQueueReady:
      write_queue_ready(value);
      return;
    case mmio::kQueueNotify:
      notify_queue(value);
      return;
    case mmio::kInterruptAck:
      interrupt_status_.fetch_and(~value);
      return;
    case mmio::kStatus:
      write_status(value);
      return;
    case mmio::kQueueDescLow:
    case mmio::kQueueDescHigh:
    case mmio::kQueueDriverLow:
    case mmio::kQueueDriverHigh:
    case mmio::kQueueDeviceLow:
    case mmio::kQueueDeviceHigh:
      write_queue_address(offset, value);
      return;
    case mmio::kShmSel:
      return;
    default:
      log::debug(std::string(device_->name()) + ": write " + hex(value) +
                 " to read-only or unknown register " + hex(offset) + " ignored");
  }
}

void MmioTransport::write_queue_address(uint64_t offset, uint32_t value) {
  Queue* q = selected_queue();
  if (!q) return;
  QueueState s = q->state();
  auto merge = [&](uint64_t old, bool high) {
    return high ? (old & 0xffffffffull) | (uint64_t{value} << 32) : (old & ~0xffffffffull) | value;
  };
  const bool high = offset % 8 == 4;
  switch (offset & ~uint64_t{4}) {
    case mmio::kQueueDescLow:
      q->set_desc_table(merge(s.desc_table, high));
      break;
    case mmio::kQueueDriverLow:
      q->set_avail_ring(merge(s.avail_ring, high));
      break;
    case mmio::kQueueDeviceLow:
      q->set_used_ring(merge(s.used_ring, high));
      break;
    default:
      break;
  }
}

void MmioTransport::write_queue_ready(uint32_t value) {
  Queue* q = selected_queue();
  if (!q) return;
  if (value == 0) {
    // Allowed only while the device is not running (Linux writes 0 when it
    // deletes queues after a reset).
    if (q->ready() && !device_active_) q->reset();
    return;
  }
  if (q->ready()) return;
  if (!(status_ & status::kFeaturesOk) || (status_ & (status::kNeedsReset | status::kFailed))) {
    log::debug(std::string(device_->name()) + ": QueueReady before FEATURES_OK ignored");
    return;
  }
  q->set_features(driver_features_);
  if (auto r = q->activate(); !r) enter_needs_reset("QueueReady: " + r.error().message);
}

void MmioTransport::notify_queue(uint32_t index) {
  if (!device_active_ || (status_ & (status::kNeedsReset | status::kFailed))) {
    log::debug(std::string(device_->name()) + ": QueueNotify " + std::to_string(index) +
               " ignored (status " + hex(status_) + ")");
    return;
  }
  if (index >= queues_.size()) {
    log::debug(std::string(device_->name()) + ": QueueNotify of absent queue " +
               std::to_string(index));
    return;
  }
  auto r = device_->process_queue(static_cast<uint16_t>(index));
  if (!r) {
    enter_needs_reset(r.error().message);
  } else if (queues_[index].broken()) {
    enter_needs_reset(queues_[index].broken_reason());
  }
}

Result<void> MmioTransport::check_driver_features() const {
  if (!(driver_features_ & kFeatureVersion1)) {
    return fail(std::string(device_->name()) + ": FEATURES_OK refused: driver features " +
                hex(driver_features_) + " lack VIRTIO_F_VERSION_1");
  }
  if (uint64_t extra = driver_features_ & ~offered_features_) {
    return fail(std::string(device_->name()) + ": FEATURES_OK refused: driver features " +
                hex(extra) + " were not offered (offered " + hex(offered_features_) + ")");
  }
  return {};
}

void MmioTransport::write_status(uint32_t value) {
  if (value == 0) {
    reset_locked();
    return;
  }
  // NEEDS_RESET is the device's bit: the driver may echo it but not set or clear it.
  value = (value & ~status::kNeedsReset) | (status_ & status::kNeedsReset);
  if ((value & status_) != status_) {
    log::debug(std::string(device_->name()) + ": Status " + hex(value) + " clears bits of " +
               hex(status_) + "; ignored");
    return;
  }
  const uint32_t added = value & ~status_;
  // Each step needs the previous ones (FAILED may come at any time).
  auto has = [&](uint32_t bits) { return (value & bits) == bits; };
  if (((added & status::kDriver) && !has(status::kAcknowledge)) ||
      ((added & status::kFeaturesOk) && !has(status::kAcknowledge | status::kDriver)) ||
      ((added & status::kDriverOk) && !has(status::kFeaturesOk))) {
    log::debug(std::string(device_->name()) + ": Status " + hex(value) + " out of order after " +
               hex(status_) + "; ignored");
    return;
  }
  if (added & status::kFeaturesOk) {
    if (auto r = check_driver_features(); !r) {
      log::info(r.error().message);
      value &= ~status::kFeaturesOk;  // the driver reads it back and gives up
      if (value & status::kDriverOk) value &= ~status::kDriverOk;
    }
  }
  status_ = value;
  if ((added & status::kDriverOk) && (status_ & status::kDriverOk) && !device_active_ &&
      !(status_ & (status::kFailed | status::kNeedsReset))) {
    if (auto r = device_->activate(driver_features_, queues_, *interrupt_); !r) {
      enter_needs_reset("activate: " + r.error().message);
      return;
    }
    device_active_ = true;
  }
}

void MmioTransport::enter_needs_reset(const std::string& reason) {
  if (status_ & status::kNeedsReset) return;
  needs_reset_reason_ = reason;
  status_ |= status::kNeedsReset;
  log::warn(std::string(device_->name()) + ": device needs reset: " + reason);
  if (status_ & status::kDriverOk) {
    config_generation_.fetch_add(1);
    raise(mmio::kInterruptConfigChange);
  }
}

void MmioTransport::reset_locked() {
  if (device_active_) device_->reset();
  device_active_ = false;
  for (Queue& q : queues_) q.reset();
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  needs_reset_reason_.clear();
  interrupt_status_.store(0);
}

Result<MmioTransportState> MmioTransport::state() const {
  std::lock_guard lock(mutex_);
  MmioTransportState s;
  s.status = status_;
  s.device_features_sel = device_features_sel_;
  s.driver_features_sel = driver_features_sel_;
  s.driver_features = driver_features_;
  s.queue_sel = queue_sel_;
  s.interrupt_status = interrupt_status_.load();
  s.config_generation = config_generation_.load();
  s.device_active = device_active_;
  s.needs_reset_reason = needs_reset_reason_;
  for (const Queue& q : queues_) s.queues.push_back(q.state());
  s.device = TRY(device_->state());
  return s;
}

Result<void> MmioTransport::restore(const MmioTransportState& s) {
  std::lock_guard lock(mutex_);
  const std::string who = "restoring virtio-mmio " + std::string(device_->name());
  if (s.queues.size() != queues_.size()) {
    return fail(who + ": state has " + std::to_string(s.queues.size()) + " queues, device has " +
                std::to_string(queues_.size()));
  }
  if (s.device.device_id != device_->device_id()) {
    return fail(who + ": state is for device id " + std::to_string(s.device.device_id) +
                ", device is id " + std::to_string(device_->device_id()));
  }
  reset_locked();
  for (size_t i = 0; i < queues_.size(); ++i) {
    if (auto r = queues_[i].restore(s.queues[i]); !r) {
      reset_locked();
      return fail(r.error().context(who));
    }
  }
  if (auto r = device_->restore(s.device); !r) {
    reset_locked();
    return fail(r.error().context(who));
  }
  status_ = s.status;
  device_features_sel_ = s.device_features_sel;
  driver_features_sel_ = s.driver_features_sel;
  driver_features_ = s.driver_features;
  queue_sel_ = s.queue_sel;
  needs_reset_reason_ = s.needs_reset_reason;
  config_generation_.store(s.config_generation);
  interrupt_status_.store(s.interrupt_status);
  if (s.device_active) {
    if (auto r = device_->activate(driver_features_, queues_, *interrupt_); !r) {
      reset_locked();
      return fail(r.error().context(who + ": re-activating"));
    }
    device_active_ = true;
  }
  if (s.interrupt_status != 0 && trigger_) trigger_();
  return {};
}

}  // namespace godwit::virtio
