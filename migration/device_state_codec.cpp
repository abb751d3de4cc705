// Field-by-field little-endian codec of the UART and virtio state types.
#include "migration/device_state_codec.h"

namespace godwit::migration {
namespace {

Result<void> check_version(SectionReader& in, std::string_view what, uint32_t version,
                           uint32_t max) {
  if (version < 1 || version > max)
    return in.error("cannot decode " + std::string(what) + " version " + std::to_string(version) +
                    " (supported 1.." + std::to_string(max) + ")");
  return {};
}

/// The queue and device versions a transport version embeds.
struct EmbeddedVersions {
  uint32_t queue;
  uint32_t device;
};

EmbeddedVersions embedded_in_transport(uint32_t /*transport_version*/) {
  return {.queue = 1, .device = 1};  // transport v1
}

// Smallest encoded QueueState (empty broken_reason), to bound a queue count.
constexpr size_t kMinQueueBytes = 2 + 1 + 3 * 8 + 3 * 2 + 3 + 4;

}  // namespace

void encode(SectionWriter& out, const SerialState& s) {
  for (uint8_t v : {s.divisor_low, s.divisor_high, s.interrupt_enable, s.fifo_control,
                    s.line_control, s.modem_control, s.line_status, s.modem_status, s.scratch})
    out.u8(v);
  out.boolean(s.thr_empty_pending);
  out.bytes(s.rx_fifo);
}

Result<SerialState> decode_serial_state(SectionReader& in, uint32_t version) {
  TRY_VOID(check_version(in, "serial", version, kSerialStateVersion));
  SerialState s;
  for (uint8_t* v :
       {&s.divisor_low, &s.divisor_high, &s.interrupt_enable, &s.fifo_control, &s.line_control,
        &s.modem_control, &s.line_status, &s.modem_status, &s.scratch})
    *v = TRY(in.u8());
  s.thr_empty_pending = TRY(in.boolean());
  s.rx_fifo = TRY(in.bytes());
  return s;
}

void encode(SectionWriter& out, const virtio::QueueState& q) {
  out.u16(q.size);
  out.boolean(q.ready);
  out.u64(q.desc_table);
  out.u64(q.avail_ring);
  out.u64(q.used_ring);
  out.u16(q.last_avail_idx);
  out.u16(q.next_used_idx);
  out.u16(q.signalled_used_idx);
  out.boolean(q.event_idx);
  out.boolean(q.indirect);
  out.boolean(q.broken);
  out.string(q.broken_reason);
}

Result<virtio::QueueState> decode_queue_state(SectionReader& in, uint32_t version) {
  TRY_VOID(check_version(in, "virtio-queue", version, kQueueStateVersion));
  virtio::QueueState q;
  q.size = TRY(in.u16());
  q.ready = TRY(in.boolean());
  q.desc_table = TRY(in.u64());
  q.avail_ring = TRY(in.u64());
  q.used_ring = TRY(in.u64());
  q.last_avail_idx = TRY(in.u16());
  q.next_used_idx = TRY(in.u16());
  q.signalled_used_idx = TRY(in.u16());
  q.event_idx = TRY(in.boolean());
  q.indirect = TRY(in.boolean());
  q.broken = TRY(in.boolean());
  q.broken_reason = TRY(in.string());
  return q;
}

void encode(SectionWriter& out, const virtio::DeviceState& d) {
  out.u32(d.device_id);
  out.bytes(d.data);
}

Result<virtio::DeviceState> decode_device_state(SectionReader& in, uint32_t version) {
  TRY_VOID(check_version(in, "virtio-device", version, kDeviceStateVersion));
  virtio::DeviceState d;
  d.device_id = TRY(in.u32());
  d.data = TRY(in.bytes());
  return d;
}

void encode(SectionWriter& out, const virtio::MmioTransportState& t) {
  out.u32(t.status);
  out.u32(t.device_features_sel);
  out.u32(t.driver_features_sel);
  out.u64(t.driver_features);
  out.u32(t.queue_sel);
  out.u32(t.interrupt_status);
  out.u32(t.config_generation);
  out.boolean(t.device_active);
  out.string(t.needs_reset_reason);
  out.u32(static_cast<uint32_t>(t.queues.size()));
  for (const auto& q : t.queues) encode(out, q);
  encode(out, t.device);
}

Result<virtio::MmioTransportState> decode_mmio_transport_state(SectionReader& in,
                                                               uint32_t version) {
  TRY_VOID(check_version(in, "virtio-mmio", version, kMmioTransportStateVersion));
  EmbeddedVersions embedded = embedded_in_transport(version);
  virtio::MmioTransportState t;
  t.status = TRY(in.u32());
  t.device_features_sel = TRY(in.u32());
  t.driver_features_sel = TRY(in.u32());
  t.driver_features = TRY(in.u64());
  t.queue_sel = TRY(in.u32());
  t.interrupt_status = TRY(in.u32());
  t.config_generation = TRY(in.u32());
  t.device_active = TRY(in.boolean());
  t.needs_reset_reason = TRY(in.string());
  uint32_t queues = TRY(in.count(kMinQueueBytes, "queues"));
  t.queues.reserve(queues);
  for (uint32_t i = 0; i < queues; ++i)
    t.queues.push_back(TRY(decode_queue_state(in, embedded.queue)));
  t.device = TRY(decode_device_state(in, embedded.device));
  return t;
}

}  // namespace godwit::migration
