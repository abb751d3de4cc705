// Tiny real-mode guests for the kvm/ layer tests: guest RAM in two slots
// (code, and data that may log dirty pages), a vCPU set to start at
// kEntry with CS base 0, and helpers to run to the next exit.
//
//   gpa 0x0000 +------------------+ slot 0: code (kEntry = 0x1000)
//   gpa 0x2000 +------------------+ slot 1: data, 8 pages
//   gpa 0xA000 +------------------+ unbacked: kMmioAddr = 0xE000 exits as MMIO
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/exit.h"
#include "kvm/system.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"

namespace godwit::test {

inline constexpr uint64_t kCodeGpa = 0x0000;
inline constexpr uint64_t kCodeSize = 0x2000;
inline constexpr uint64_t kEntry = 0x1000;
inline constexpr uint64_t kDataGpa = 0x2000;
inline constexpr uint64_t kDataPages = 8;
inline constexpr uint64_t kDataSize = kDataPages * 0x1000;
inline constexpr uint64_t kMmioAddr = 0xE000;
inline constexpr uint32_t kCodeSlot = 0;
inline constexpr uint32_t kDataSlot = 1;

/// Anonymous, zeroed host memory for guest RAM (shared by VMs that map it).
class GuestRam {
 public:
  explicit GuestRam(size_t size)
      : size_(size),
        base_(static_cast<uint8_t*>(
            ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))) {}
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;
  ~GuestRam() {
    if (base_ != MAP_FAILED) ::munmap(base_, size_);
  }
  [[nodiscard]] uint8_t* data() const { return base_; }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  size_t size_;
  uint8_t* base_;
};

/// What the guest VM is created with.
struct GuestOptions {
  bool irqchip = false;           ///< in-kernel PIC/IOAPIC/LAPIC (+ PIT)
  bool log_dirty = false;         ///< KVM_MEM_LOG_DIRTY_PAGES on the data slot
  bool manual_protect = false;    ///< MANUAL_DIRTY_LOG_PROTECT2 before the slots
  bool initially_set = false;     ///< ... with INITIALLY_SET
  uint32_t dirty_ring_bytes = 0;  ///< enable the dirty ring before the vCPU
};

/// One VM with one vCPU on shared guest RAM.
struct RealModeGuest {
  kvm::System system;
  std::unique_ptr<kvm::Vm> vm;
  std::unique_ptr<kvm::Vcpu> vcpu;
};

/// The code and data RAM of a test guest; outlives the VMs mapping it.
struct GuestMemory {
  GuestRam code{kCodeSize};
  GuestRam data{kDataSize};

  /// Copies `bytes` to kEntry.
  void load(std::span<const uint8_t> bytes) {
    std::memcpy(code.data() + kEntry, bytes.data(), bytes.size());
  }
};

/// Creates a VM over `memory` and a vCPU 0 ready to run at kEntry in real mode.
/// With `reset_registers` false the vCPU is left in its reset state (for restores).
[[nodiscard]] inline Result<RealModeGuest> make_guest(GuestMemory& memory,
                                                      const GuestOptions& options = {},
                                                      bool reset_registers = true) {
  auto system = TRY(kvm::System::open());
  auto vm = TRY(system.create_vm());
  if (options.irqchip) {
    TRY_VOID(vm->create_irqchip());
    TRY_VOID(vm->create_pit2());
  }
  if (options.manual_protect) TRY_VOID(vm->enable_manual_dirty_log_protect(options.initially_set));
  if (options.dirty_ring_bytes != 0) TRY_VOID(vm->enable_dirty_ring(options.dirty_ring_bytes));
  TRY_VOID(vm->set_user_memory_region(kCodeSlot, 0, kCodeGpa, kCodeSize, memory.code.data()));
  TRY_VOID(vm->set_user_memory_region(kDataSlot, options.log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
                                      kDataGpa, kDataSize, memory.data.data()));
  auto vcpu = TRY(vm->create_vcpu(0));
  auto cpuid = TRY(system.supported_cpuid());
  TRY_VOID(vcpu->set_cpuid(cpuid));
  if (reset_registers) {
    kvm_sregs sregs = TRY(vcpu->get_sregs());
    sregs.cs.selector = 0;
    sregs.cs.base = 0;
    TRY_VOID(vcpu->set_sregs(sregs));
    kvm_regs regs{};
    regs.rip = kEntry;
    regs.rflags = 0x2;
    TRY_VOID(vcpu->set_regs(regs));
  }
  return RealModeGuest{std::move(system), std::move(vm), std::move(vcpu)};
}

/// Runs the vCPU once and expects a port-out exit; returns it (empty when the
/// exit was something else, after recording the failure).
inline kvm::IoOut expect_out(kvm::Vcpu& vcpu) {
  auto exit = vcpu.run();
  EXPECT_TRUE(exit) << exit.error().message;
  if (!exit) return {};
  auto* out = std::get_if<kvm::IoOut>(&*exit);
  EXPECT_NE(out, nullptr) << kvm::describe(*exit);
  return out ? *out : kvm::IoOut{};
}

}  // namespace godwit::test
