// The migration status document and the send-request parse
// (migration/status_json.h): every key of the documented layout, R1 state
// names as strings, the error key (R56), the multifd members (issue 6), and
// the refusals of malformed requests with the member they name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>

#include "migration/status_json.h"
#include "migration_status_test_support.h"

namespace godwit::migration {
namespace {

using ::testing::HasSubstr;

TEST(MigrationStatusJson, EveryDocumentedKey) {
  const nlohmann::json j = to_json(test::sample_migration_status());
  const nlohmann::json expected = {
      {"state", "active"},
      {"role", "source"},
      {"uri", "tcp:10.0.0.2:4444"},
      {"total_time_ms", 5321},
      {"setup_time_ms", 12},
      {"downtime_ms", 87},
      {"downtime",
       {{"final_sync_ms", 1.234},
        {"last_ram_ms", 20.5},
        {"device_state_ms", 3.1},
        {"destination_load_ms", 40.0},
        {"resume_ms", 0.8}}},
      {"expected_downtime_ms", 90},
      {"transferred_bytes", 1073741824},
      {"remaining_bytes", 5242880},
      {"normal_pages", 261000},
      {"zero_pages", 1000},
      {"throughput_bytes_per_s", 117000000},
      {"mbps", 936.0},
      {"dirty_pages_per_s", 2500},
      {"iterations", 4},
      {"throttle_percent", 20},
      {"dirty_tracking", "ring"},
      {"downtime_limit_ms", 300},
      {"channels", 4},
      {"compression", "zstd:3"},
      {"multifd_bytes", 268435456},
      {"uncompressed_bytes", 1048576000},
  };
  EXPECT_EQ(j, expected) << j.dump(2);
  EXPECT_FALSE(j.contains("error")) << "an empty error is omitted";
}

TEST(MigrationStatusJson, ErrorIsShownWhenSet) {  // R56
  MigrationStatus s;
  s.state = MigrationState::failed;
  s.error = "Failed to stop the VM";
  const nlohmann::json j = to_json(s);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["error"], "Failed to stop the VM");
  EXPECT_EQ(j["role"], "none");
  EXPECT_EQ(j["downtime"]["final_sync_ms"], 0.0);
  // Without multifd the keys are still there, with "none".
  EXPECT_EQ(j["channels"], 0);
  EXPECT_EQ(j["compression"], "none");
  EXPECT_EQ(j["multifd_bytes"], 0);
  EXPECT_EQ(j["uncompressed_bytes"], 0);
}

TEST(MigrationStatusJson, StatesAreTheirR1Names) {  // R1
  for (MigrationState state : all_migration_states()) {
    MigrationStatus s;
    s.state = state;
    const nlohmann::json j = to_json(s);
    ASSERT_TRUE(j["state"].is_string());
    EXPECT_EQ(parse_migration_state(j["state"].get<std::string>()), state);
  }
  MigrationStatus s;
  s.state = MigrationState::postcopy_device;
  EXPECT_EQ(to_json(s)["state"], "postcopy-device");
}

TEST(MigrationSendRequest, DefaultsWithOnlyAUri) {
  auto options = parse_send_request({{"uri", "tcp:h:1"}});
  ASSERT_TRUE(options) << options.error().message;
  EXPECT_EQ(options->uri, "tcp:h:1");
  EXPECT_EQ(options->downtime_limit_ms, 300u);
  EXPECT_FALSE(options->max_bandwidth_bytes_per_s);
  EXPECT_FALSE(options->auto_converge);
  EXPECT_EQ(options->dirty_tracking, DirtyTracking::bitmap);
  EXPECT_EQ(options->channels, 0u);
  EXPECT_EQ(options->compression, Compression{});
}

TEST(MigrationSendRequest, EveryMember) {
  auto options = parse_send_request({{"uri", "unix:/run/m.sock"},
                                     {"downtime_limit_ms", 50},
                                     {"max_bandwidth", 104857600},
                                     {"auto_converge", true},
                                     {"dirty_tracking", "ring"},
                                     {"channels", 8},
                                     {"compression", "zstd:5"}});
  ASSERT_TRUE(options) << options.error().message;
  EXPECT_EQ(options->uri, "unix:/run/m.sock");
  EXPECT_EQ(options->downtime_limit_ms, 50u);
  EXPECT_EQ(options->max_bandwidth_bytes_per_s, 104857600u);
  EXPECT_TRUE(options->auto_converge);
  EXPECT_EQ(options->dirty_tracking, DirtyTracking::ring);
  EXPECT_EQ(options->channels, 8u);
  EXPECT_EQ(options->compression, (Compression{Codec::zstd, 5}));
}

TEST(MigrationSendRequest, MultifdChannelsAndCompression) {
  // Channels alone: multifd without compression.
  auto plain = parse_send_request(nlohmann::json::parse(R"({"uri": "tcp:h:1", "channels": 2})"));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->channels, 2u);
  EXPECT_EQ(plain->compression.codec, Codec::none);
  // "zstd" alone is level 1; "none" is accepted with or without channels.
  auto zstd = parse_send_request({{"uri", "tcp:h:1"}, {"channels", 1}, {"compression", "zstd"}});
  ASSERT_TRUE(zstd) << zstd.error().message;
  EXPECT_EQ(zstd->compression, (Compression{Codec::zstd, 1}));
  auto none = parse_send_request({{"uri", "tcp:h:1"}, {"compression", "none"}});
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->channels, 0u);
  EXPECT_EQ(none->compression.codec, Codec::none);
  // The edges of both ranges.
  auto widest =
      parse_send_request({{"uri", "tcp:h:1"}, {"channels", 64}, {"compression", "zstd:19"}});
  ASSERT_TRUE(widest) << widest.error().message;
  EXPECT_EQ(widest->channels, kMaxChannels);
  EXPECT_EQ(widest->compression.level, 19);
  EXPECT_TRUE(parse_send_request({{"uri", "tcp:h:1"}, {"channels", 0}}));
}

/// The parse fails with EINVAL and a message containing `names`.
void expect_refused(const nlohmann::json& request, const std::string& names) {
  auto options = parse_send_request(request);
  ASSERT_FALSE(options) << request.dump();
  EXPECT_EQ(options.error().code, EINVAL) << request.dump();
  EXPECT_THAT(options.error().message, HasSubstr(names)) << request.dump();
}

TEST(MigrationSendRequest, RefusalsNameTheMember) {
  expect_refused(nlohmann::json::array({1}), "JSON object");
  expect_refused("tcp:h:1", "JSON object");
  expect_refused(nlohmann::json::object(), "\"uri\" is required");
  expect_refused({{"uri", 5}}, "\"uri\" must be a string");
  expect_refused({{"uri", "tcp:h:1"}, {"downtime_limit_ms", -1}}, "\"downtime_limit_ms\"");
  expect_refused({{"uri", "tcp:h:1"}, {"downtime_limit_ms", "300"}}, "\"downtime_limit_ms\"");
  expect_refused({{"uri", "tcp:h:1"}, {"downtime_limit_ms", 1.5}}, "\"downtime_limit_ms\"");
  expect_refused({{"uri", "tcp:h:1"}, {"downtime_limit_ms", uint64_t{1} << 33}},
                 "\"downtime_limit_ms\"");
  expect_refused({{"uri", "tcp:h:1"}, {"max_bandwidth", -4096}}, "\"max_bandwidth\" must not be");
  expect_refused({{"uri", "tcp:h:1"}, {"max_bandwidth", nullptr}}, "\"max_bandwidth\"");
  expect_refused({{"uri", "tcp:h:1"}, {"auto_converge", 1}}, "\"auto_converge\"");
  expect_refused({{"uri", "tcp:h:1"}, {"dirty_tracking", "pml"}}, "\"dirty_tracking\"");
  expect_refused({{"uri", "tcp:h:1"}, {"dirty_tracking", true}}, "\"dirty_tracking\"");
  expect_refused({{"uri", "tcp:h:1"}, {"bandwidth", 1}}, "unknown member \"bandwidth\"");
  expect_refused({{"uri", "tcp:h:1"}, {"bandwidth", 1}}, "channels, compression)");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", -1}}, "\"channels\" must not be negative");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", "4"}},
                 "\"channels\" must be a non-negative integer");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", 2.0}},
                 "\"channels\" must be a non-negative integer");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", true}}, "\"channels\"");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", 65}}, "\"channels\" 65 is out of range 0..64");
  // 2^32 + 1 would be 1 once narrowed to 32 bits: it must be refused, not wrap.
  expect_refused({{"uri", "tcp:h:1"}, {"channels", (uint64_t{1} << 32) + 1}},
                 "\"channels\" 4294967297 is out of range 0..64");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", 1}, {"compression", 3}},
                 "\"compression\" must be a string");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", 1}, {"compression", nullptr}},
                 "\"compression\" must be a string");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", 1}, {"compression", "lz4"}},
                 "expected none, zstd or zstd:LEVEL");
  for (const char* level : {"zstd:0", "zstd:20", "zstd:", "zstd:x", "zstd:-1", "zstd:100"}) {
    expect_refused({{"uri", "tcp:h:1"}, {"channels", 1}, {"compression", level}},
                   "zstd level must be 1..19");
  }
  // As parsed from a request body (non-negative numbers arrive unsigned there).
  expect_refused(nlohmann::json::parse(R"({"uri": "tcp:h:1", "max_bandwidth": -5})"),
                 "\"max_bandwidth\" must not be negative");
  expect_refused(nlohmann::json::parse(R"({"uri": "tcp:h:1", "max_bandwidth": 1e6})"),
                 "\"max_bandwidth\" must be a non-negative integer");
  auto parsed =
      parse_send_request(nlohmann::json::parse(R"({"uri": "tcp:h:1", "max_bandwidth": 8192})"));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->max_bandwidth_bytes_per_s, 8192u);
}

TEST(MigrationSendRequest, ValidateRuns) {
  expect_refused({{"uri", ""}}, "uri is empty");
  expect_refused({{"uri", "tcp:h:1"}, {"downtime_limit_ms", 0}}, "out of range 1..600000");
  expect_refused({{"uri", "tcp:h:1"}, {"downtime_limit_ms", 600001}}, "out of range");
  expect_refused({{"uri", "tcp:h:1"}, {"max_bandwidth", 4095}}, "below the minimum");
  EXPECT_TRUE(parse_send_request({{"uri", "tcp:h:1"}, {"max_bandwidth", 4096}}));
  EXPECT_TRUE(parse_send_request({{"uri", "tcp:h:1"}, {"downtime_limit_ms", 600000}}));
  // Compression travels on the multifd channels, so it needs at least one.
  expect_refused({{"uri", "tcp:h:1"}, {"compression", "zstd"}}, "needs multifd channels");
  expect_refused({{"uri", "tcp:h:1"}, {"channels", 0}, {"compression", "zstd:3"}},
                 "compression zstd:3 needs multifd channels");
}

}  // namespace
}  // namespace godwit::migration
