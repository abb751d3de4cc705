// Field-by-field little-endian codec of kvm::VcpuState and kvm::VmState.
#include "migration/kvm_state_codec.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace godwit::migration {
namespace {

Result<void> check_version(SectionReader& in, uint32_t version, uint32_t min, uint32_t max) {
  if (version < min || version > max)
    return in.error("cannot decode version " + std::to_string(version) + " (supported " +
                    std::to_string(min) + ".." + std::to_string(max) + ")");
  return {};
}

template <typename T>
bool same_bytes(const T& a, const T& b) {
  static_assert(std::is_trivially_copyable_v<T>);
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// -- vCPU pieces --

void encode_regs(SectionWriter& out, const kvm_regs& r) {
  for (uint64_t v : {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10,
                     r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags})
    out.u64(v);
}

Result<kvm_regs> decode_regs(SectionReader& in) {
  kvm_regs r{};
  for (__u64* v : {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rsp, &r.rbp, &r.r8, &r.r9,
                   &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rip, &r.rflags})
    *v = TRY(in.u64());
  return r;
}

void encode_segment(SectionWriter& out, const kvm_segment& s) {
  out.u64(s.base);
  out.u32(s.limit);
  out.u16(s.selector);
  for (uint8_t v : {s.type, s.present, s.dpl, s.db, s.s, s.l, s.g, s.avl, s.unusable}) out.u8(v);
}

Result<kvm_segment> decode_segment(SectionReader& in) {
  kvm_segment s{};
  s.base = TRY(in.u64());
  s.limit = TRY(in.u32());
  s.selector = TRY(in.u16());
  for (__u8* v : {&s.type, &s.present, &s.dpl, &s.db, &s.s, &s.l, &s.g, &s.avl, &s.unusable})
    *v = TRY(in.u8());
  return s;
}

void encode_sregs2(SectionWriter& out, const kvm_sregs2& s) {
  for (const kvm_segment* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt})
    encode_segment(out, *seg);
  for (const kvm_dtable* t : {&s.gdt, &s.idt}) {
    out.u64(t->base);
    out.u16(t->limit);
  }
  for (uint64_t v : {s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer, s.apic_base, s.flags}) out.u64(v);
  for (uint64_t v : s.pdptrs) out.u64(v);
}

Result<kvm_sregs2> decode_sregs2(SectionReader& in) {
  kvm_sregs2 s{};
  for (kvm_segment* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt})
    *seg = TRY(decode_segment(in));
  for (kvm_dtable* t : {&s.gdt, &s.idt}) {
    t->base = TRY(in.u64());
    t->limit = TRY(in.u16());
  }
  for (__u64* v : {&s.cr0, &s.cr2, &s.cr3, &s.cr4, &s.cr8, &s.efer, &s.apic_base, &s.flags})
    *v = TRY(in.u64());
  for (__u64& v : s.pdptrs) v = TRY(in.u64());
  return s;
}

void encode_fpu(SectionWriter& out, const kvm_fpu& f) {
  out.raw({&f.fpr[0][0], sizeof f.fpr});
  out.u16(f.fcw);
  out.u16(f.fsw);
  out.u8(f.ftwx);
  out.u16(f.last_opcode);
  out.u64(f.last_ip);
  out.u64(f.last_dp);
  out.raw({&f.xmm[0][0], sizeof f.xmm});
  out.u32(f.mxcsr);
}

Result<kvm_fpu> decode_fpu(SectionReader& in) {
  kvm_fpu f{};
  TRY_VOID(in.raw({&f.fpr[0][0], sizeof f.fpr}));
  f.fcw = TRY(in.u16());
  f.fsw = TRY(in.u16());
  f.ftwx = TRY(in.u8());
  f.last_opcode = TRY(in.u16());
  f.last_ip = TRY(in.u64());
  f.last_dp = TRY(in.u64());
  TRY_VOID(in.raw({&f.xmm[0][0], sizeof f.xmm}));
  f.mxcsr = TRY(in.u32());
  return f;
}

void encode_xcrs(SectionWriter& out, const kvm_xcrs& x) {
  out.u32(x.flags);
  uint32_t n = std::min<uint32_t>(x.nr_xcrs, KVM_MAX_XCRS);
  out.u32(n);
  for (uint32_t i = 0; i < n; ++i) {
    out.u32(x.xcrs[i].xcr);
    out.u64(x.xcrs[i].value);
  }
}

Result<kvm_xcrs> decode_xcrs(SectionReader& in) {
  kvm_xcrs x{};
  x.flags = TRY(in.u32());
  size_t at = in.offset();
  x.nr_xcrs = TRY(in.count(12, "XCRs"));
  if (x.nr_xcrs > KVM_MAX_XCRS)
    return in.error_at(at, std::to_string(x.nr_xcrs) + " XCRs exceed KVM's maximum of " +
                               std::to_string(KVM_MAX_XCRS));
  for (uint32_t i = 0; i < x.nr_xcrs; ++i) {
    x.xcrs[i].xcr = TRY(in.u32());
    x.xcrs[i].value = TRY(in.u64());
  }
  return x;
}

void encode_events(SectionWriter& out, const kvm_vcpu_events& e) {
  for (uint8_t v :
       {e.exception.injected, e.exception.nr, e.exception.has_error_code, e.exception.pending})
    out.u8(v);
  out.u32(e.exception.error_code);
  for (uint8_t v : {e.interrupt.injected, e.interrupt.nr, e.interrupt.soft, e.interrupt.shadow,
                    e.nmi.injected, e.nmi.pending, e.nmi.masked})
    out.u8(v);
  out.u32(e.sipi_vector);
  out.u32(e.flags);
  for (uint8_t v : {e.smi.smm, e.smi.pending, e.smi.smm_inside_nmi, e.smi.latched_init,
                    e.triple_fault.pending, e.exception_has_payload})
    out.u8(v);
  out.u64(e.exception_payload);
}

Result<kvm_vcpu_events> decode_events(SectionReader& in) {
  kvm_vcpu_events e{};
  for (__u8* v :
       {&e.exception.injected, &e.exception.nr, &e.exception.has_error_code, &e.exception.pending})
    *v = TRY(in.u8());
  e.exception.error_code = TRY(in.u32());
  for (__u8* v : {&e.interrupt.injected, &e.interrupt.nr, &e.interrupt.soft, &e.interrupt.shadow,
                  &e.nmi.injected, &e.nmi.pending, &e.nmi.masked})
    *v = TRY(in.u8());
  e.sipi_vector = TRY(in.u32());
  e.flags = TRY(in.u32());
  for (__u8* v : {&e.smi.smm, &e.smi.pending, &e.smi.smm_inside_nmi, &e.smi.latched_init,
                  &e.triple_fault.pending, &e.exception_has_payload})
    *v = TRY(in.u8());
  e.exception_payload = TRY(in.u64());
  return e;
}

void encode_debugregs(SectionWriter& out, const kvm_debugregs& d) {
  for (uint64_t v : d.db) out.u64(v);
  out.u64(d.dr6);
  out.u64(d.dr7);
  out.u64(d.flags);
}

Result<kvm_debugregs> decode_debugregs(SectionReader& in) {
  kvm_debugregs d{};
  for (__u64& v : d.db) v = TRY(in.u64());
  d.dr6 = TRY(in.u64());
  d.dr7 = TRY(in.u64());
  d.flags = TRY(in.u64());
  return d;
}

// -- VM-wide pieces --

void encode_pic(SectionWriter& out, const kvm_irqchip& chip) {
  const kvm_pic_state& p = chip.chip.pic;
  out.u32(chip.chip_id);
  for (uint8_t v : {p.last_irr, p.irr, p.imr, p.isr, p.priority_add, p.irq_base, p.read_reg_select,
                    p.poll, p.special_mask, p.init_state, p.auto_eoi, p.rotate_on_auto_eoi,
                    p.special_fully_nested_mode, p.init4, p.elcr, p.elcr_mask})
    out.u8(v);
}

Result<uint32_t> decode_chip_id(SectionReader& in, uint32_t expected) {
  size_t at = in.offset();
  uint32_t id = TRY(in.u32());
  if (id != expected)
    return in.error_at(at, "irqchip id " + std::to_string(id) + " where chip " +
                               std::to_string(expected) + " belongs");
  return id;
}

Result<kvm_irqchip> decode_pic(SectionReader& in, uint32_t chip_id) {
  kvm_irqchip chip{};
  chip.chip_id = TRY(decode_chip_id(in, chip_id));
  kvm_pic_state& p = chip.chip.pic;
  for (__u8* v :
       {&p.last_irr, &p.irr, &p.imr, &p.isr, &p.priority_add, &p.irq_base, &p.read_reg_select,
        &p.poll, &p.special_mask, &p.init_state, &p.auto_eoi, &p.rotate_on_auto_eoi,
        &p.special_fully_nested_mode, &p.init4, &p.elcr, &p.elcr_mask})
    *v = TRY(in.u8());
  return chip;
}

void encode_ioapic(SectionWriter& out, const kvm_irqchip& chip) {
  const kvm_ioapic_state& io = chip.chip.ioapic;
  out.u32(chip.chip_id);
  out.u64(io.base_address);
  out.u32(io.ioregsel);
  out.u32(io.id);
  out.u32(io.irr);
  // Each redirection entry is the 64-bit register as the IOAPIC defines it.
  for (const auto& entry : io.redirtbl) out.u64(entry.bits);
}

Result<kvm_irqchip> decode_ioapic(SectionReader& in) {
  kvm_irqchip chip{};
  chip.chip_id = TRY(decode_chip_id(in, KVM_IRQCHIP_IOAPIC));
  kvm_ioapic_state& io = chip.chip.ioapic;
  io.base_address = TRY(in.u64());
  io.ioregsel = TRY(in.u32());
  io.id = TRY(in.u32());
  io.irr = TRY(in.u32());
  for (auto& entry : io.redirtbl) entry.bits = TRY(in.u64());
  return chip;
}

void encode_pit(SectionWriter& out, const kvm_pit_state2& pit) {
  for (const kvm_pit_channel_state& c : pit.channels) {
    out.u32(c.count);
    out.u16(c.latched_count);
    for (uint8_t v : {c.count_latched, c.status_latched, c.status, c.read_state, c.write_state,
                      c.write_latch, c.rw_mode, c.mode, c.bcd, c.gate})
      out.u8(v);
    out.i64(c.count_load_time);
  }
  out.u32(pit.flags);
}

Result<kvm_pit_state2> decode_pit(SectionReader& in) {
  kvm_pit_state2 pit{};
  for (kvm_pit_channel_state& c : pit.channels) {
    c.count = TRY(in.u32());
    c.latched_count = TRY(in.u16());
    for (__u8* v : {&c.count_latched, &c.status_latched, &c.status, &c.read_state, &c.write_state,
                    &c.write_latch, &c.rw_mode, &c.mode, &c.bcd, &c.gate})
      *v = TRY(in.u8());
    c.count_load_time = TRY(in.i64());
  }
  pit.flags = TRY(in.u32());
  return pit;
}

}  // namespace

void encode(SectionWriter& out, const kvm::VcpuState& s) {
  encode_regs(out, s.regs);
  encode_sregs2(out, s.sregs2);
  out.bytes(s.xsave);
  out.boolean(s.fpu.has_value());
  if (s.fpu) encode_fpu(out, *s.fpu);
  out.boolean(s.xcrs.has_value());
  if (s.xcrs) encode_xcrs(out, *s.xcrs);
  out.u32(static_cast<uint32_t>(s.msrs.size()));
  for (const kvm_msr_entry& m : s.msrs) {
    out.u32(m.index);
    out.u64(m.data);
  }
  out.bytes({reinterpret_cast<const uint8_t*>(s.lapic.regs), sizeof s.lapic.regs});
  encode_events(out, s.events);
  out.u32(s.mp_state.mp_state);
  encode_debugregs(out, s.debugregs);
}

Result<kvm::VcpuState> decode_vcpu_state(SectionReader& in, uint32_t version) {
  TRY_VOID(check_version(in, version, kVcpuStateMinVersion, kVcpuStateVersion));
  kvm::VcpuState s;
  s.regs = TRY(decode_regs(in));
  s.sregs2 = TRY(decode_sregs2(in));
  s.xsave = TRY(in.bytes());
  if (TRY(in.boolean())) s.fpu = TRY(decode_fpu(in));
  if (TRY(in.boolean())) s.xcrs = TRY(decode_xcrs(in));
  uint32_t msr_count = TRY(in.count(12, "MSRs"));
  s.msrs.resize(msr_count);
  for (kvm_msr_entry& m : s.msrs) {
    m.index = TRY(in.u32());
    m.data = TRY(in.u64());
  }
  size_t lapic_at = in.offset();
  std::vector<uint8_t> lapic = TRY(in.bytes());
  if (lapic.size() != sizeof s.lapic.regs)
    return in.error_at(lapic_at, "LAPIC page of " + std::to_string(lapic.size()) +
                                     " bytes, expected " + std::to_string(sizeof s.lapic.regs));
  std::memcpy(s.lapic.regs, lapic.data(), lapic.size());
  s.events = TRY(decode_events(in));
  s.mp_state.mp_state = TRY(in.u32());
  s.debugregs = TRY(decode_debugregs(in));
  return s;
}

void encode(SectionWriter& out, const kvm::VmState& s) {
  encode_pic(out, s.pic_master);
  encode_pic(out, s.pic_slave);
  encode_ioapic(out, s.ioapic);
  encode_pit(out, s.pit);
  out.u64(s.clock.clock);
  out.u32(s.clock.flags);
  out.u64(s.clock.realtime);
  out.u64(s.clock.host_tsc);
}

Result<kvm::VmState> decode_vm_state(SectionReader& in, uint32_t version) {
  TRY_VOID(check_version(in, version, kVmStateMinVersion, kVmStateVersion));
  kvm::VmState s;
  s.pic_master = TRY(decode_pic(in, KVM_IRQCHIP_PIC_MASTER));
  s.pic_slave = TRY(decode_pic(in, KVM_IRQCHIP_PIC_SLAVE));
  s.ioapic = TRY(decode_ioapic(in));
  s.pit = TRY(decode_pit(in));
  s.clock.clock = TRY(in.u64());
  s.clock.flags = TRY(in.u32());
  s.clock.realtime = TRY(in.u64());
  s.clock.host_tsc = TRY(in.u64());
  return s;
}

bool same_state(const kvm::VcpuState& a, const kvm::VcpuState& b) {
  auto same_msrs = [&] {
    if (a.msrs.size() != b.msrs.size()) return false;
    for (size_t i = 0; i < a.msrs.size(); ++i)
      if (!same_bytes(a.msrs[i], b.msrs[i])) return false;
    return true;
  };
  auto same_optional = [](const auto& x, const auto& y) {
    return x.has_value() == y.has_value() && (!x || same_bytes(*x, *y));
  };
  return same_bytes(a.regs, b.regs) && same_bytes(a.sregs2, b.sregs2) && a.xsave == b.xsave &&
         same_optional(a.fpu, b.fpu) && same_optional(a.xcrs, b.xcrs) && same_msrs() &&
         same_bytes(a.lapic, b.lapic) && same_bytes(a.events, b.events) &&
         same_bytes(a.mp_state, b.mp_state) && same_bytes(a.debugregs, b.debugregs);
}

bool same_state(const kvm::VmState& a, const kvm::VmState& b) {
  return same_bytes(a.pic_master, b.pic_master) && same_bytes(a.pic_slave, b.pic_slave) &&
         same_bytes(a.ioapic, b.ioapic) && same_bytes(a.pit, b.pit) && same_bytes(a.clock, b.clock);
}

}  // namespace godwit::migration
