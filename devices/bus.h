// The device bus: maps guest address ranges (one Bus for port I/O, one for
// MMIO) to devices and dispatches vCPU accesses with offsets relative to each
// device's base. Ranges are fixed at setup; lookups run concurrently on every
// vCPU thread, and each device does its own locking.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace godwit {

/// A device reachable through a Bus. Implementations must be thread-safe:
/// several vCPUs may access the same device at once.
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  /// Guest read of data.size() bytes at `offset` from the device's base.
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  /// Guest write of data.size() bytes at `offset` from the device's base.
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

/// Outcome of a bus access.
enum class BusStatus {
  handled,    ///< a device took the access
  no_device,  ///< nothing is mapped there (reads returned all-ones)
};

/// One mapped range, as listed by Bus::ranges().
struct BusRange {
  uint64_t base = 0;
  uint64_t len = 0;
  std::string name;
};

/// Address-range → device map for one address space (PIO or MMIO).
class Bus {
 public:
  /// Maps [base, base+len) to `device` under `name` (used in messages).
  /// Fails if len is 0, the range wraps, or it overlaps a mapped range.
  [[nodiscard]] Result<void> insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len,
                                    std::string name);
  /// Dispatches a read; an access must lie wholly inside one range.
  /// Unmapped reads fill `data` with 0xff and return no_device.
  [[nodiscard]] BusStatus read(uint64_t addr, std::span<uint8_t> data) const;
  /// Dispatches a write; unmapped writes are dropped and return no_device.
  [[nodiscard]] BusStatus write(uint64_t addr, std::span<const uint8_t> data) const;
  /// The mapped ranges in address order.
  [[nodiscard]] std::vector<BusRange> ranges() const;

 private:
  struct Entry {
    uint64_t len;
    std::string name;
    std::shared_ptr<BusDevice> device;
  };
  /// The device whose range holds [addr, addr+size), with the offset.
  [[nodiscard]] std::pair<BusDevice*, uint64_t> find(uint64_t addr, uint64_t size) const;

  mutable std::shared_mutex mutex_;
  std::map<uint64_t, Entry> entries_;  ///< keyed by base
};

}  // namespace godwit
