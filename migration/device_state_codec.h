// Section payloads of the VMM's own device state: the UART (SerialState,
// kind "serial"), one virtqueue (virtio::QueueState, "virtio-queue"), a
// virtio device's opaque state (virtio::DeviceState, "virtio-device") and a
// virtio-mmio transport with its queues and device (MmioTransportState,
// "virtio-mmio"). A transport payload embeds its queues and device in their
// own encodings; transport version 1 embeds queue version 1 and device
// version 1, so a change to either bumps the transport version too.
// Byte layouts: docs/state-format.md.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"
#include "devices/serial.h"
#include "devices/virtio/device.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/queue.h"
#include "migration/section.h"

namespace godwit::migration {

/// Section kind of the 16550A UART.
inline constexpr std::string_view kSerialSectionKind = "serial";
/// Version encode(SerialState) writes (oldest decoded: 1).
inline constexpr uint32_t kSerialStateVersion = 1;
/// Section kind of one virtqueue.
inline constexpr std::string_view kQueueSectionKind = "virtio-queue";
/// Version encode(QueueState) writes (oldest decoded: 1).
inline constexpr uint32_t kQueueStateVersion = 1;
/// Section kind of one virtio device's own state.
inline constexpr std::string_view kDeviceSectionKind = "virtio-device";
/// Version encode(DeviceState) writes (oldest decoded: 1).
inline constexpr uint32_t kDeviceStateVersion = 1;
/// Section kind of one virtio-mmio transport (with queues and device).
inline constexpr std::string_view kMmioTransportSectionKind = "virtio-mmio";
/// Version encode(MmioTransportState) writes (oldest decoded: 1).
inline constexpr uint32_t kMmioTransportStateVersion = 1;

/// Writes the UART state at kSerialStateVersion.
void encode(SectionWriter& out, const SerialState& state);
/// Reads a UART state written at `version`.
[[nodiscard]] Result<SerialState> decode_serial_state(SectionReader& in, uint32_t version);

/// Writes one virtqueue at kQueueStateVersion.
void encode(SectionWriter& out, const virtio::QueueState& state);
/// Reads a virtqueue written at `version`.
[[nodiscard]] Result<virtio::QueueState> decode_queue_state(SectionReader& in, uint32_t version);

/// Writes a device's state at kDeviceStateVersion.
void encode(SectionWriter& out, const virtio::DeviceState& state);
/// Reads a device's state written at `version`.
[[nodiscard]] Result<virtio::DeviceState> decode_device_state(SectionReader& in, uint32_t version);

/// Writes a transport, its queues and its device at kMmioTransportStateVersion.
void encode(SectionWriter& out, const virtio::MmioTransportState& state);
/// Reads a transport written at `version`.
[[nodiscard]] Result<virtio::MmioTransportState> decode_mmio_transport_state(SectionReader& in,
                                                                             uint32_t version);

}  // namespace godwit::migration
