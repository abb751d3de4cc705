// The typed test template over every saved state type (issue 4 item 6,
// crosvm's habit): golden bytes, round trip, save / mutate / load / compare
// through the Migratable adapter, truncation, trailing bytes, versions out of
// range and the trip through a state stream. A type added to StateTypes must
// have a StateCodec (kind, versions, encode, decode, equality) and
// TestStates (samples, golden bytes), or this file does not compile.
#include <gtest/gtest.h>

#include "migration/state_section.h"
#include "migration/state_stream.h"
#include "migration_test_states.h"

namespace godwit::migration {
namespace {

using test::TestStates;

template <typename T>
class StateTypeTest : public ::testing::Test {
 protected:
  using Codec = StateCodec<T>;
  using Samples = TestStates<T>;

  static std::vector<uint8_t> encoded(const T& state) {
    return std::move(encode_payload(state)).take();
  }
  static std::string name() { return std::string(Codec::kind) + "[3]"; }
  static Result<T> decode(std::span<const uint8_t> bytes, uint32_t version = Codec::version) {
    SectionReader in(name(), bytes);
    return decode_payload<T>(in, version);
  }
};

using StateTypes = ::testing::Types<kvm::VcpuState, kvm::VmState, SerialState, virtio::QueueState,
                                    virtio::DeviceState, virtio::MmioTransportState>;
TYPED_TEST_SUITE(StateTypeTest, StateTypes);

TYPED_TEST(StateTypeTest, EncodesToTheGoldenBytes) {
  using Self = StateTypeTest<TypeParam>;
  EXPECT_EQ(Self::encoded(Self::Samples::golden()), Self::Samples::golden_bytes())
      << "the version-" << Self::Codec::version << " layout of " << Self::Codec::kind
      << " changed: bump its version and keep a decoder for the old one";
}

TYPED_TEST(StateTypeTest, DecodesTheGoldenBytes) {
  using Self = StateTypeTest<TypeParam>;
  auto bytes = Self::Samples::golden_bytes();
  auto decoded = Self::decode(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(Self::Codec::equal(*decoded, Self::Samples::golden()));
}

TYPED_TEST(StateTypeTest, SamplesDifferSoTheTestsCanFail) {
  using Self = StateTypeTest<TypeParam>;
  EXPECT_FALSE(Self::Codec::equal(Self::Samples::a(), Self::Samples::b()));
  EXPECT_NE(Self::encoded(Self::Samples::a()), Self::encoded(Self::Samples::b()));
}

TYPED_TEST(StateTypeTest, RoundTripsEverySample) {
  using Self = StateTypeTest<TypeParam>;
  for (const TypeParam& state : {Self::Samples::a(), Self::Samples::b()}) {
    auto bytes = Self::encoded(state);
    auto decoded = Self::decode(bytes);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_TRUE(Self::Codec::equal(*decoded, state));
  }
}

// Save A through the Migratable adapter, mutate the live value to B, load the
// saved bytes: the live value is A again.
TYPED_TEST(StateTypeTest, SaveMutateLoadCompare) {
  using Self = StateTypeTest<TypeParam>;
  TypeParam live = Self::Samples::a();
  StateSection<TypeParam> section(
      3, [&]() -> Result<TypeParam> { return live; },
      [&](const TypeParam& s) -> Result<void> {
        live = s;
        return {};
      });
  EXPECT_EQ(section.key(), (SectionKey{std::string(Self::Codec::kind), 3}));

  SectionWriter iterate;
  auto done = section.save_iterate(iterate);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_TRUE(*done);
  EXPECT_EQ(iterate.size(), 0u) << "device state has no precopy data";

  SectionWriter saved;
  auto ok = section.save_complete(saved);
  ASSERT_TRUE(ok) << ok.error().message;

  live = Self::Samples::b();
  ASSERT_FALSE(Self::Codec::equal(live, Self::Samples::a()));

  SectionReader in(section.key().name(), saved.data());
  auto loaded = section.load(in, section.version());
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(Self::Codec::equal(live, Self::Samples::a()));
  EXPECT_TRUE(section.postcopy_prepare());
  EXPECT_TRUE(section.cleanup(true));
}

// R11/R12: everything is stop-copy; the estimate does not read the state.
TYPED_TEST(StateTypeTest, PendingIsStopcopyAndEstimateDoesNotReadTheState) {
  using Self = StateTypeTest<TypeParam>;
  int reads = 0;
  StateSection<TypeParam> section(
      0,
      [&]() -> Result<TypeParam> {
        ++reads;
        return Self::Samples::a();
      },
      [](const TypeParam&) -> Result<void> { return {}; });
  auto estimate = section.pending(PendingQuery::estimate);
  ASSERT_TRUE(estimate);
  EXPECT_EQ(reads, 0);
  auto exact = section.pending(PendingQuery::exact);
  ASSERT_TRUE(exact);
  EXPECT_EQ(reads, 1);
  uint64_t size = Self::encoded(Self::Samples::a()).size();
  EXPECT_EQ(*exact, (PendingData{.stopcopy_bytes = size}));
  auto cached = section.pending(PendingQuery::estimate);
  ASSERT_TRUE(cached);
  EXPECT_EQ(*cached, (PendingData{.stopcopy_bytes = size}));
  EXPECT_EQ(reads, 1);
}

TYPED_TEST(StateTypeTest, EveryTruncationFailsNamingTheSection) {
  using Self = StateTypeTest<TypeParam>;
  auto bytes = Self::encoded(Self::Samples::a());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto decoded = Self::decode(std::span(bytes).first(n));
    ASSERT_FALSE(decoded) << "decoded from " << n << " of " << bytes.size() << " bytes";
    EXPECT_NE(decoded.error().message.find(Self::name() + " payload offset"), std::string::npos)
        << decoded.error().message;
  }
}

TYPED_TEST(StateTypeTest, TrailingBytesFail) {
  using Self = StateTypeTest<TypeParam>;
  auto bytes = Self::encoded(Self::Samples::a());
  bytes.push_back(0);
  auto decoded = Self::decode(bytes);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().message,
            Self::name() + " payload offset " + std::to_string(bytes.size() - 1) +
                ": 1 trailing bytes after the last field (payload longer than its layout)");
}

TYPED_TEST(StateTypeTest, VersionsOutsideTheSupportedRangeFail) {
  using Self = StateTypeTest<TypeParam>;
  auto bytes = Self::encoded(Self::Samples::a());
  for (uint32_t version : {Self::Codec::min_version - 1, Self::Codec::version + 1}) {
    auto decoded = Self::decode(bytes, version);
    ASSERT_FALSE(decoded) << "version " << version;
    EXPECT_NE(decoded.error().message.find("version " + std::to_string(version)), std::string::npos)
        << decoded.error().message;
  }
}

TYPED_TEST(StateTypeTest, TravelsThroughAStateStream) {
  using Self = StateTypeTest<TypeParam>;
  StateStreamWriter writer;
  SectionKey key{std::string(Self::Codec::kind), 7};
  ASSERT_TRUE(writer.add(key, Self::Codec::version, encode_payload(Self::Samples::b())));
  auto stream = std::move(writer).finish();
  auto sections = parse_state_stream(stream, {section_spec<TypeParam>()});
  ASSERT_TRUE(sections) << sections.error().message;
  ASSERT_EQ(sections->size(), 1u);
  EXPECT_EQ((*sections)[0].key, key);
  auto decoded = decode_section<TypeParam>((*sections)[0]);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(Self::Codec::equal(*decoded, Self::Samples::b()));
}

// The kernel structs are compared byte-wise: a field the encoder forgot
// differs (samples are random in every saved field).
TEST(KvmStateCodec, ForgottenFieldsWouldShow) {
  kvm::VcpuState a = test::random_vcpu_state(5, true);
  kvm::VcpuState b = a;
  b.events.exception_payload ^= 1;
  EXPECT_FALSE(same_state(a, b));
  kvm::VmState v = test::random_vm_state(5);
  kvm::VmState w = v;
  w.pit.channels[2].gate ^= 1;
  EXPECT_FALSE(same_state(v, w));
}

TEST(KvmStateCodec, RejectsALapicPageOfTheWrongSize) {
  auto bytes = TestStates<kvm::VcpuState>::golden_bytes();
  // The LAPIC length field follows regs (144), sregs2 (300), xsave (8),
  // no fpu (1), xcrs (21) and msrs (16).
  size_t lapic_length_at = 144 + 300 + 8 + 1 + 21 + 16;
  ASSERT_EQ(bytes[lapic_length_at + 1], 0x04);  // 1024 = 0x400
  bytes[lapic_length_at + 1] = 0x03;
  SectionReader in("vcpu[0]", bytes);
  auto decoded = decode_vcpu_state(in, 1);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().message, "vcpu[0] payload offset " + std::to_string(lapic_length_at) +
                                         ": LAPIC page of 768 bytes, expected 1024");
}

TEST(KvmStateCodec, RejectsAnIrqchipInTheWrongPlace) {
  auto bytes = TestStates<kvm::VmState>::golden_bytes();
  bytes[0] = 2;  // PIC master slot claims to be the IOAPIC
  SectionReader in("vm[0]", bytes);
  auto decoded = decode_vm_state(in, 1);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().message, "vm[0] payload offset 0: irqchip id 2 where chip 0 belongs");
}

}  // namespace
}  // namespace godwit::migration
