// Decoding kvm_run into VcpuExit, and describing exits for logs.
#include "kvm/exit.h"

#include <algorithm>
#include <cinttypes>

#include "kvm/ioctl.h"

namespace godwit::kvm {

using detail::format;

VcpuExit decode_exit(kvm_run* run) {
  auto* page = reinterpret_cast<uint8_t*>(run);
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      std::span<uint8_t> data(page + run->io.data_offset, size_t{run->io.size} * run->io.count);
      if (run->io.direction == KVM_EXIT_IO_IN) {
        return IoIn{run->io.port, run->io.size, run->io.count, data};
      }
      return IoOut{run->io.port, run->io.size, run->io.count, data};
    }
    case KVM_EXIT_MMIO: {
      size_t len = std::min<size_t>(run->mmio.len, sizeof(run->mmio.data));
      if (run->mmio.is_write) {
        return MmioWrite{run->mmio.phys_addr, std::span<const uint8_t>(run->mmio.data, len)};
      }
      return MmioRead{run->mmio.phys_addr, std::span<uint8_t>(run->mmio.data, len)};
    }
    case KVM_EXIT_HLT:
      return Hlt{};
    case KVM_EXIT_SHUTDOWN:
      return Shutdown{};
    case KVM_EXIT_SYSTEM_EVENT:
      // data[0] aliases the older `flags` field, so it is valid either way.
      return SystemEvent{run->system_event.type, run->system_event.data[0]};
    case KVM_EXIT_FAIL_ENTRY:
      return FailEntry{run->fail_entry.hardware_entry_failure_reason, run->fail_entry.cpu};
    case KVM_EXIT_INTERNAL_ERROR: {
      size_t n = std::min<size_t>(run->internal.ndata, std::size(run->internal.data));
      return InternalError{run->internal.suberror,
                           std::vector<uint64_t>(run->internal.data, run->internal.data + n)};
    }
    case KVM_EXIT_DIRTY_RING_FULL:
      return DirtyRingFull{};
    case KVM_EXIT_INTR:
      return Interrupted{};
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return IrqWindowOpen{};
    case KVM_EXIT_DEBUG:
      return Debug{run->debug.arch.exception, run->debug.arch.pc};
    default:
      return Unknown{run->exit_reason};
  }
}

namespace {

std::string hex_bytes(std::span<const uint8_t> bytes) {
  std::string out;
  size_t shown = std::min<size_t>(bytes.size(), 16);
  for (size_t i = 0; i < shown; ++i) out += format(i == 0 ? "%02x" : " %02x", bytes[i]);
  if (shown < bytes.size()) out += " ...";
  return out;
}

struct Describer {
  std::string operator()(const IoIn& e) const {
    return format("io in port 0x%x size %u count %u", e.port, e.size, e.count);
  }
  std::string operator()(const IoOut& e) const {
    return format("io out port 0x%x size %u count %u data ", e.port, e.size, e.count) +
           hex_bytes(e.data);
  }
  std::string operator()(const MmioRead& e) const {
    return format("mmio read 0x%" PRIx64 " len %zu", e.addr, e.data.size());
  }
  std::string operator()(const MmioWrite& e) const {
    return format("mmio write 0x%" PRIx64 " len %zu data ", e.addr, e.data.size()) +
           hex_bytes(e.data);
  }
  std::string operator()(const Hlt&) const { return "hlt"; }
  std::string operator()(const Shutdown&) const { return "shutdown"; }
  std::string operator()(const SystemEvent& e) const {
    return format("system event type %u data0 0x%" PRIx64, e.type, e.data0);
  }
  std::string operator()(const FailEntry& e) const {
    return format("fail entry reason 0x%" PRIx64 " cpu %u", e.reason, e.cpu);
  }
  std::string operator()(const InternalError& e) const {
    std::string out = format("internal error suberror %u", e.suberror);
    for (uint64_t d : e.data) out += format(" 0x%" PRIx64, d);
    return out;
  }
  std::string operator()(const DirtyRingFull&) const { return "dirty ring full"; }
  std::string operator()(const Interrupted&) const { return "interrupted"; }
  std::string operator()(const IrqWindowOpen&) const { return "irq window open"; }
  std::string operator()(const Debug& e) const {
    return format("debug exception %u pc 0x%" PRIx64, e.exception, e.pc);
  }
  std::string operator()(const Unknown& e) const {
    return format("unknown exit reason %u", e.reason);
  }
};

}  // namespace

std::string describe(const VcpuExit& exit) { return std::visit(Describer{}, exit); }

}  // namespace godwit::kvm
