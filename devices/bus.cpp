// Bus implementation: an ordered map of non-overlapping ranges behind a
// shared_mutex (writers only at setup, readers on every vCPU exit).
#include "devices/bus.h"

#include <cstdio>
#include <cstring>
#include <mutex>

namespace godwit {
namespace {
std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}
std::string range_text(uint64_t base, uint64_t len) {
  return "[" + hex(base) + ", " + hex(base + len) + ")";
}
}  // namespace

Result<void> Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len,
                         std::string name) {
  std::string what = "bus insert " + name + " at " + range_text(base, len);
  if (device == nullptr) return fail(what + ": no device");
  if (len == 0) return fail(what + ": empty range");
  if (base + len < base) return fail(what + ": range wraps around the address space");
  std::unique_lock lock(mutex_);
  auto next = entries_.lower_bound(base);
  if (next != entries_.end() && next->first < base + len)
    return fail(what + ": overlaps " + next->second.name + " at " +
                range_text(next->first, next->second.len));
  if (next != entries_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base)
      return fail(what + ": overlaps " + prev->second.name + " at " +
                  range_text(prev->first, prev->second.len));
  }
  entries_.emplace(base, Entry{len, std::move(name), std::move(device)});
  return {};
}

std::pair<BusDevice*, uint64_t> Bus::find(uint64_t addr, uint64_t size) const {
  auto it = entries_.upper_bound(addr);
  if (it == entries_.begin()) return {nullptr, 0};
  --it;
  uint64_t offset = addr - it->first;
  if (offset >= it->second.len || size > it->second.len - offset) return {nullptr, 0};
  return {it->second.device.get(), offset};
}

BusStatus Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  std::shared_lock lock(mutex_);
  auto [device, offset] = find(addr, data.size());
  if (device == nullptr) {
    std::memset(data.data(), 0xff, data.size());
    return BusStatus::no_device;
  }
  device->read(offset, data);
  return BusStatus::handled;
}

BusStatus Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  std::shared_lock lock(mutex_);
  auto [device, offset] = find(addr, data.size());
  if (device == nullptr) return BusStatus::no_device;
  device->write(offset, data);
  return BusStatus::handled;
}

std::vector<BusRange> Bus::ranges() const {
  std::shared_lock lock(mutex_);
  std::vector<BusRange> out;
  for (const auto& [base, e] : entries_) out.push_back({base, e.len, e.name});
  return out;
}

}  // namespace godwit
