// Initial register state of the boot vCPU for real, protected and long mode.
#include "vmm/boot/cpu_state.h"

#include <cstdio>
#include <string>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/gdt.h"

namespace godwit::boot {
namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

kvm_segment real_mode_segment(uint16_t selector, uint8_t type) {
  kvm_segment s{};
  s.base = uint64_t{selector} << 4;
  s.limit = 0xffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.s = 1;
  return s;
}

// KVM's reset values for TR (busy TSS) and LDTR; valid in every mode.
void set_reset_system_segments(kvm_sregs& sregs) {
  sregs.tr = kvm_segment{};
  sregs.tr.limit = 0xffff;
  sregs.tr.type = 0xb;
  sregs.tr.present = 1;
  sregs.ldt = kvm_segment{};
  sregs.ldt.limit = 0xffff;
  sregs.ldt.type = 0x2;
  sregs.ldt.present = 1;
}

Result<void> check_entry(const BootEntry& e) {
  const std::string what =
      std::string("boot entry (") + cpu_mode_name(e.mode) + " mode, rip " + hex(e.rip) + ")";
  switch (e.mode) {
    case CpuMode::real16:
      if (e.paging) return fail(what + ": paging cannot be on in real mode");
      return {};
    case CpuMode::protected32:
      if (e.rip > 0xffffffff) return fail(what + ": rip is beyond 4 GiB");
      if (e.paging) return fail(what + ": 32-bit entry with paging is not supported");
      break;
    case CpuMode::long64: {
      if (!e.paging) return fail(what + ": long mode needs paging");
      if (e.cr3 == 0 || e.cr3 % 4096 != 0)
        return fail(what + ": CR3 " + hex(e.cr3) + " is not a page-aligned table address");
      int64_t sign_extended = static_cast<int64_t>(e.rip << 16) >> 16;
      if (static_cast<uint64_t>(sign_extended) != e.rip)
        return fail(what + ": rip is not canonical");
      break;
    }
  }
  if (e.gdt_limit < kDataSelector + 7)
    return fail(what + ": GDT limit " + hex(e.gdt_limit) + " does not cover selector " +
                hex(kDataSelector));
  return {};
}

}  // namespace

const char* cpu_mode_name(CpuMode mode) {
  switch (mode) {
    case CpuMode::real16:
      return "real";
    case CpuMode::protected32:
      return "protected";
    case CpuMode::long64:
      return "long";
  }
  return "unknown";
}

Result<RealModeAddress> real_mode_address(uint64_t linear) {
  if (linear >= kMiB) return fail("real-mode entry " + hex(linear) + " is not below 1 MiB");
  return RealModeAddress{static_cast<uint16_t>((linear >> 4) & 0xf000),
                         static_cast<uint16_t>(linear & 0xffff)};
}

Result<void> make_initial_cpu_state(const BootEntry& entry, kvm_regs& regs, kvm_sregs& sregs) {
  TRY_VOID(check_entry(entry));
  regs = kvm_regs{};
  regs.rflags = 0x2;
  regs.rsp = entry.rsp;
  regs.rsi = entry.rsi;
  regs.rbx = entry.rbx;
  set_reset_system_segments(sregs);

  if (entry.mode == CpuMode::real16) {
    RealModeAddress address = TRY(real_mode_address(entry.rip));
    regs.rip = address.ip;
    sregs.cs = real_mode_segment(address.cs, 0xb);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = real_mode_segment(0, 0x3);
    sregs.gdt = kvm_dtable{.base = 0, .limit = 0xffff, .padding = {}};
    sregs.idt = kvm_dtable{.base = 0, .limit = 0x3ff, .padding = {}};  // the IVT
    sregs.cr0 = kCr0Et;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    return {};
  }

  regs.rip = entry.rip;
  sregs.cs = flat_code_segment(entry.mode);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_data_segment();
  sregs.gdt = kvm_dtable{.base = entry.gdt_base, .limit = entry.gdt_limit, .padding = {}};
  sregs.idt = kvm_dtable{.base = 0, .limit = 0, .padding = {}};
  if (entry.mode == CpuMode::protected32) {
    sregs.cr0 = kCr0Pe | kCr0Et;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
  } else {
    sregs.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
    sregs.cr3 = entry.cr3;
    sregs.cr4 = kCr4Pae;
    sregs.efer = kEferLme | kEferLma;
  }
  return {};
}

}  // namespace godwit::boot
