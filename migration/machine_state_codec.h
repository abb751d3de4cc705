// The state stream of a whole paused machine (MachineState) without its RAM,
// which goes to a separate memory file. Sections, in this order:
//
//   machine[0]       v1: vCPU count u32 | virtio count u32 | region count u32
//                        | region sizes u64 x count   (layout, checked on load)
//   vm[0]            kvm::VmState
//   vcpu[0..n-1]     kvm::VcpuState
//   serial[0]        SerialState (PlatformDevicesState)
//   virtio-mmio[0..m-1]  MmioTransportState, in device order
//
// The loader requires exactly these sections (each once, none missing, no
// instance beyond the counts) and accepts them in any order.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "migration/state_stream.h"
#include "vmm/machine.h"

namespace godwit::migration {

/// Section kind of the machine summary (counts and memory layout).
inline constexpr std::string_view kMachineSectionKind = "machine";
/// Version of the machine summary section written (oldest decoded: 1).
inline constexpr uint32_t kMachineSummaryVersion = 1;

/// The kinds and versions a machine state stream may contain.
[[nodiscard]] SectionRegistry machine_state_registry();

/// Encodes everything in `state` except the contents of `state.memory`
/// (only the region sizes are recorded).
[[nodiscard]] Result<std::vector<uint8_t>> encode_machine_state(const MachineState& state);

/// Decodes a stream written by encode_machine_state into `out` (vm, vcpus,
/// devices, virtio). `out.memory` is not filled: when it is non-empty its
/// region count and sizes must match the recorded layout; when empty it is
/// left empty. On failure `out` is unchanged.
[[nodiscard]] Result<void> decode_machine_state(std::span<const uint8_t> stream, MachineState& out);

}  // namespace godwit::migration
