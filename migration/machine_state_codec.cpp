// Whole-machine state stream: MachineState (minus RAM) <-> sections.
#include "migration/machine_state_codec.h"

#include <set>

#include "migration/state_codecs.h"

namespace godwit::migration {
namespace {

/// Counts and memory layout, the machine[0] section.
struct MachineSummary {
  uint32_t vcpus = 0;
  uint32_t virtio = 0;
  std::vector<uint64_t> region_sizes;
};

void encode_summary(SectionWriter& out, const MachineSummary& s) {
  out.u32(s.vcpus);
  out.u32(s.virtio);
  out.u32(static_cast<uint32_t>(s.region_sizes.size()));
  for (uint64_t size : s.region_sizes) out.u64(size);
}

Result<MachineSummary> decode_summary(const SectionView& section) {
  SectionReader in = section.reader();
  MachineSummary s;
  s.vcpus = TRY(in.u32());
  s.virtio = TRY(in.u32());
  uint32_t regions = TRY(in.count(8, "memory regions"));
  for (uint32_t i = 0; i < regions; ++i) s.region_sizes.push_back(TRY(in.u64()));
  TRY_VOID(in.expect_end());
  return s;
}

template <typename T>
Result<void> add_section(StateStreamWriter& stream, uint32_t instance, const T& state) {
  return stream.add({std::string(StateCodec<T>::kind), instance}, StateCodec<T>::version,
                    encode_payload(state));
}

/// Which instances of a kind were loaded, against how many are expected.
class InstanceTracker {
 public:
  InstanceTracker(std::string_view kind, uint32_t expected, std::string_view what)
      : kind_(kind), expected_(expected), what_(what) {}

  /// Fails for an instance beyond the expected count.
  [[nodiscard]] Result<void> accept(uint32_t instance) {
    if (instance >= expected_)
      return fail(SectionKey{kind_, instance}.name() + ": unexpected section: the machine has " +
                  std::to_string(expected_) + " " + what_);
    seen_.insert(instance);
    return {};
  }
  /// Fails when an expected instance never appeared.
  [[nodiscard]] Result<void> check_complete() const {
    for (uint32_t i = 0; i < expected_; ++i)
      if (!seen_.contains(i))
        return fail(SectionKey{kind_, i}.name() + ": section missing from the stream");
    return {};
  }

 private:
  std::string kind_;
  uint32_t expected_;
  std::string what_;
  std::set<uint32_t> seen_;
};

Result<void> check_memory_layout(const MachineSummary& summary, const MachineState& out) {
  if (out.memory.empty()) return {};
  if (out.memory.size() != summary.region_sizes.size())
    return fail("machine[0]: the state has " + std::to_string(summary.region_sizes.size()) +
                " memory regions, the memory given has " + std::to_string(out.memory.size()));
  for (size_t i = 0; i < out.memory.size(); ++i)
    if (out.memory[i].size() != summary.region_sizes[i])
      return fail("machine[0]: memory region " + std::to_string(i) + " is " +
                  std::to_string(summary.region_sizes[i]) + " bytes in the state, " +
                  std::to_string(out.memory[i].size()) + " in the memory given");
  return {};
}

Result<void> decode_sections(std::span<const SectionView> sections, MachineState& out) {
  auto machine = std::ranges::find_if(
      sections, [](const SectionView& s) { return s.key.kind == kMachineSectionKind; });
  if (machine == sections.end()) return fail("machine[0]: section missing from the stream");
  if (machine->key.instance != 0)
    return fail(machine->key.name() + ": unexpected section: only machine[0] exists");
  MachineSummary summary = TRY(decode_summary(*machine));
  TRY_VOID(check_memory_layout(summary, out));

  MachineState state;
  state.vcpus.resize(summary.vcpus);
  state.virtio.resize(summary.virtio);
  InstanceTracker vm(kVmSectionKind, 1, "VM-wide state");
  InstanceTracker vcpus(kVcpuSectionKind, summary.vcpus, "vCPUs");
  InstanceTracker serial(kSerialSectionKind, 1, "UART");
  InstanceTracker virtio(kMmioTransportSectionKind, summary.virtio, "virtio devices");
  for (const SectionView& s : sections) {
    const std::string& kind = s.key.kind;
    uint32_t i = s.key.instance;
    if (kind == kMachineSectionKind) continue;
    if (kind == kVmSectionKind) {
      TRY_VOID(vm.accept(i));
      state.vm = TRY(decode_section<kvm::VmState>(s));
    } else if (kind == kVcpuSectionKind) {
      TRY_VOID(vcpus.accept(i));
      state.vcpus[i] = TRY(decode_section<kvm::VcpuState>(s));
    } else if (kind == kSerialSectionKind) {
      TRY_VOID(serial.accept(i));
      state.devices.serial = TRY(decode_section<SerialState>(s));
    } else if (kind == kMmioTransportSectionKind) {
      TRY_VOID(virtio.accept(i));
      state.virtio[i] = TRY(decode_section<virtio::MmioTransportState>(s));
    } else {
      return fail(s.key.name() + ": registered but not handled by the machine decoder");
    }
  }
  for (const InstanceTracker* t : {&vm, &vcpus, &serial, &virtio}) TRY_VOID(t->check_complete());

  out.vm = state.vm;
  out.vcpus = std::move(state.vcpus);
  out.devices = std::move(state.devices);
  out.virtio = std::move(state.virtio);
  return {};
}

}  // namespace

SectionRegistry machine_state_registry() {
  return {
      {std::string(kMachineSectionKind), 1, kMachineSummaryVersion},
      section_spec<kvm::VmState>(),
      section_spec<kvm::VcpuState>(),
      section_spec<SerialState>(),
      section_spec<virtio::MmioTransportState>(),
  };
}

Result<std::vector<uint8_t>> encode_machine_state(const MachineState& state) {
  MachineSummary summary{.vcpus = static_cast<uint32_t>(state.vcpus.size()),
                         .virtio = static_cast<uint32_t>(state.virtio.size()),
                         .region_sizes = {}};
  for (const auto& region : state.memory) summary.region_sizes.push_back(region.size());
  StateStreamWriter stream;
  SectionWriter summary_payload;
  encode_summary(summary_payload, summary);
  TRY_VOID(
      stream.add({std::string(kMachineSectionKind), 0}, kMachineSummaryVersion, summary_payload));
  TRY_VOID(add_section(stream, 0, state.vm));
  for (uint32_t i = 0; i < state.vcpus.size(); ++i)
    TRY_VOID(add_section(stream, i, state.vcpus[i]));
  TRY_VOID(add_section(stream, 0, state.devices.serial));
  for (uint32_t i = 0; i < state.virtio.size(); ++i)
    TRY_VOID(add_section(stream, i, state.virtio[i]));
  return std::move(stream).finish();
}

Result<void> decode_machine_state(std::span<const uint8_t> stream, MachineState& out) {
  auto sections = parse_state_stream(stream, machine_state_registry());
  if (!sections) return fail(sections.error().context("decoding machine state"));
  auto decoded = decode_sections(*sections, out);
  if (!decoded) return fail(decoded.error().context("decoding machine state"));
  return {};
}

}  // namespace godwit::migration
