// StateCodec<T>: one place that ties every saved state type to its section
// kind, versions, encoder, decoder and equality, so generic code (the
// Migratable adapter in state_section.h, the typed test template in
// tests/unit/migration_typed_state_test.cpp) works over all of them. The
// primary template is deliberately undefined: a state type without a codec
// does not compile where a codec is needed.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "migration/device_state_codec.h"
#include "migration/kvm_state_codec.h"
#include "migration/section.h"
#include "migration/state_stream.h"

namespace godwit::migration {

/// Codec traits of a state type; specialised below for every saved type.
template <typename T>
struct StateCodec;

/// Generates a StateCodec specialisation from the free functions of a type.
#define GODWIT_STATE_CODEC(Type, Kind, MinVersion, Version, Decode, Equal)                         \
  template <>                                                                                      \
  struct StateCodec<Type> {                                                                        \
    static constexpr std::string_view kind = Kind;                                                 \
    static constexpr uint32_t version = Version;                                                   \
    static constexpr uint32_t min_version = MinVersion;                                            \
    static void encode(SectionWriter& out, const Type& s) { ::godwit::migration::encode(out, s); } \
    [[nodiscard]] static Result<Type> decode(SectionReader& in, uint32_t v) {                      \
      return Decode(in, v);                                                                        \
    }                                                                                              \
    [[nodiscard]] static bool equal(const Type& a, const Type& b) { return Equal; }                \
  }

GODWIT_STATE_CODEC(kvm::VcpuState, kVcpuSectionKind, kVcpuStateMinVersion, kVcpuStateVersion,
                   decode_vcpu_state, same_state(a, b));
GODWIT_STATE_CODEC(kvm::VmState, kVmSectionKind, kVmStateMinVersion, kVmStateVersion,
                   decode_vm_state, same_state(a, b));
GODWIT_STATE_CODEC(SerialState, kSerialSectionKind, 1, kSerialStateVersion, decode_serial_state,
                   a == b);
GODWIT_STATE_CODEC(virtio::QueueState, kQueueSectionKind, 1, kQueueStateVersion, decode_queue_state,
                   a == b);
GODWIT_STATE_CODEC(virtio::DeviceState, kDeviceSectionKind, 1, kDeviceStateVersion,
                   decode_device_state, a == b);
GODWIT_STATE_CODEC(virtio::MmioTransportState, kMmioTransportSectionKind, 1,
                   kMmioTransportStateVersion, decode_mmio_transport_state, a == b);

#undef GODWIT_STATE_CODEC

/// The registry entry of T.
template <typename T>
[[nodiscard]] SectionSpec section_spec() {
  using C = StateCodec<T>;
  return {std::string(C::kind), C::min_version, C::version};
}

/// Encodes `state` as a payload at the current version of T.
template <typename T>
[[nodiscard]] SectionWriter encode_payload(const T& state) {
  SectionWriter out;
  StateCodec<T>::encode(out, state);
  return out;
}

/// Decodes a whole section payload: fails if it is too short or has bytes left over.
template <typename T>
[[nodiscard]] Result<T> decode_payload(SectionReader& in, uint32_t version) {
  T state = TRY(StateCodec<T>::decode(in, version));
  TRY_VOID(in.expect_end());
  return state;
}

/// Decodes the payload of a parsed section.
template <typename T>
[[nodiscard]] Result<T> decode_section(const SectionView& section) {
  SectionReader in = section.reader();
  return decode_payload<T>(in, section.version);
}

}  // namespace godwit::migration
