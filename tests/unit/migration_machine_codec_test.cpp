// The whole-machine state stream (MachineState without RAM): section order
// and summary bytes, round trip, the memory layout check, and a loader that
// refuses missing, extra and corrupt sections while leaving its output alone.
#include <gtest/gtest.h>

#include "migration/machine_state_codec.h"
#include "migration/state_codecs.h"
#include "migration_test_states.h"

namespace godwit::migration {
namespace {

using test::Bytes;
using test::TestStates;

MachineState sample_machine() {
  MachineState m;
  m.vm = test::random_vm_state(11);
  m.vcpus = {test::random_vcpu_state(12, false), test::random_vcpu_state(13, true)};
  m.devices.serial = TestStates<SerialState>::b();
  m.virtio = {TestStates<virtio::MmioTransportState>::a(),
              TestStates<virtio::MmioTransportState>::b()};
  m.memory = {std::vector<uint8_t>(4096, 0xab), std::vector<uint8_t>(8192, 0xcd)};
  return m;
}

void expect_same_devices(const MachineState& a, const MachineState& b) {
  EXPECT_TRUE(same_state(a.vm, b.vm));
  ASSERT_EQ(a.vcpus.size(), b.vcpus.size());
  for (size_t i = 0; i < a.vcpus.size(); ++i) EXPECT_TRUE(same_state(a.vcpus[i], b.vcpus[i])) << i;
  EXPECT_EQ(a.devices.serial, b.devices.serial);
  EXPECT_EQ(a.virtio, b.virtio);
}

std::string decode_error(std::span<const uint8_t> stream, MachineState& out) {
  auto r = decode_machine_state(stream, out);
  return r ? std::string("(decoded)") : r.error().message;
}

TEST(MachineStateCodec, WritesTheSectionsInOrderWithTheLayoutSummary) {
  auto stream = encode_machine_state(sample_machine());
  ASSERT_TRUE(stream) << stream.error().message;
  auto sections = parse_state_stream(*stream, machine_state_registry());
  ASSERT_TRUE(sections) << sections.error().message;
  std::vector<std::string> names;
  for (const auto& s : *sections) names.push_back(s.key.name());
  EXPECT_EQ(names, (std::vector<std::string>{"machine[0]", "vm[0]", "vcpu[0]", "vcpu[1]",
                                             "serial[0]", "virtio-mmio[0]", "virtio-mmio[1]"}));
  auto summary = Bytes{}.u32(2).u32(2).u32(2).u64(4096).u64(8192).v;
  const auto& machine = (*sections)[0];
  EXPECT_EQ(machine.version, 1u);
  EXPECT_EQ(std::vector<uint8_t>(machine.payload.begin(), machine.payload.end()), summary);
}

TEST(MachineStateCodec, RoundTripsEverythingButTheRam) {
  MachineState original = sample_machine();
  auto stream = encode_machine_state(original);
  ASSERT_TRUE(stream) << stream.error().message;
  MachineState decoded;
  auto ok = decode_machine_state(*stream, decoded);
  ASSERT_TRUE(ok) << ok.error().message;
  expect_same_devices(decoded, original);
  EXPECT_TRUE(decoded.memory.empty()) << "RAM lives in the memory file";
}

TEST(MachineStateCodec, ChecksTheLayoutOfMemoryAlreadyLoaded) {
  MachineState original = sample_machine();
  auto stream = encode_machine_state(original);
  ASSERT_TRUE(stream);
  MachineState matching;
  matching.memory = original.memory;
  ASSERT_TRUE(decode_machine_state(*stream, matching));
  EXPECT_EQ(matching.memory, original.memory) << "contents are not touched";

  MachineState other;
  other.memory = {std::vector<uint8_t>(4096), std::vector<uint8_t>(4096)};
  EXPECT_EQ(decode_error(*stream, other),
            "decoding machine state: machine[0]: memory region 1 is 8192 bytes in the state, "
            "4096 in the memory given");
  EXPECT_TRUE(other.vcpus.empty()) << "a failed decode leaves the output alone";
}

/// A machine stream with a summary of `vcpus` vCPUs and the given vCPU sections.
std::vector<uint8_t> machine_stream(uint32_t vcpus, std::initializer_list<uint32_t> vcpu_sections) {
  StateStreamWriter w;
  EXPECT_TRUE(w.add({"machine", 0}, 1, Bytes{}.u32(vcpus).u32(0).u32(0).v));
  EXPECT_TRUE(w.add({"vm", 0}, 1, encode_payload(test::random_vm_state(1))));
  for (uint32_t i : vcpu_sections)
    EXPECT_TRUE(w.add({"vcpu", i}, 1, encode_payload(test::random_vcpu_state(i, false))));
  EXPECT_TRUE(w.add({"serial", 0}, 1, encode_payload(SerialState{})));
  return std::move(w).finish();
}

TEST(MachineStateCodec, AcceptsSectionsInAnyOrder) {
  MachineState out;
  EXPECT_EQ(decode_error(machine_stream(2, {1, 0}), out), "(decoded)");
  ASSERT_EQ(out.vcpus.size(), 2u);
  EXPECT_TRUE(same_state(out.vcpus[1], test::random_vcpu_state(1, false)));
}

TEST(MachineStateCodec, RefusesAMissingSection) {
  MachineState out;
  EXPECT_EQ(decode_error(machine_stream(2, {0}), out),
            "decoding machine state: vcpu[1]: section missing from the stream");
  EXPECT_TRUE(out.vcpus.empty());
}

TEST(MachineStateCodec, RefusesASectionBeyondTheCounts) {
  MachineState out;
  EXPECT_EQ(decode_error(machine_stream(2, {0, 1, 2}), out),
            "decoding machine state: vcpu[2]: unexpected section: the machine has 2 vCPUs");
}

TEST(MachineStateCodec, RefusesAStreamWithoutSummary) {
  StateStreamWriter w;
  ASSERT_TRUE(w.add({"serial", 0}, 1, encode_payload(SerialState{})));
  auto stream = std::move(w).finish();
  MachineState out;
  EXPECT_EQ(decode_error(stream, out),
            "decoding machine state: machine[0]: section missing from the stream");
}

TEST(MachineStateCodec, RefusesAnUnknownDevice) {
  StateStreamWriter w;
  ASSERT_TRUE(w.add({"i8042", 0}, 1, std::vector<uint8_t>{0}));
  auto stream = std::move(w).finish();
  MachineState out;
  EXPECT_EQ(decode_error(stream, out),
            "decoding machine state: i8042[0] at offset 12: unknown section kind 'i8042' (this "
            "loader knows: machine, vm, vcpu, serial, virtio-mmio)");
}

TEST(MachineStateCodec, ACorruptVcpuIsNamedAndNothingIsDecoded) {
  MachineState original = sample_machine();
  auto stream = encode_machine_state(original);
  ASSERT_TRUE(stream);
  auto sections = parse_state_stream(*stream, machine_state_registry());
  ASSERT_TRUE(sections);
  const SectionView& vcpu1 = (*sections)[3];
  ASSERT_EQ(vcpu1.key.name(), "vcpu[1]");
  size_t at = static_cast<size_t>(vcpu1.payload.data() - stream->data()) + 200;
  (*stream)[at] ^= 0x01;
  MachineState out;
  std::string error = decode_error(*stream, out);
  EXPECT_TRUE(error.starts_with("decoding machine state: vcpu[1] at offset " +
                                std::to_string(vcpu1.offset) + ": checksum mismatch"))
      << error;
  EXPECT_TRUE(out.vcpus.empty());
  EXPECT_TRUE(out.virtio.empty());
}

}  // namespace
}  // namespace godwit::migration
