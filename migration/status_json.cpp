// to_json(MigrationStatus) and parse_send_request: the key layout documented
// in status_json.h.
#include "migration/status_json.h"

#include <cerrno>
#include <limits>
#include <string>

namespace godwit::migration {
namespace {

/// Microseconds as fractional milliseconds (1234 us -> 1.234).
double us_to_ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

std::unexpected<Error> bad_request(std::string message) {
  return fail("migration request: " + std::move(message), EINVAL);
}

/// A non-negative integer member no larger than `max`. Floats (a fraction or
/// an exponent) are refused even when whole: the members count bytes and ms.
Result<uint64_t> unsigned_member(const std::string& key, const nlohmann::json& value,
                                 uint64_t max) {
  if (!value.is_number_integer()) {
    return bad_request("\"" + key + "\" must be a non-negative integer (got " + value.dump() + ")");
  }
  // Parsed text holds non-negative numbers as unsigned; a json built in C++
  // from an int literal holds them as signed.
  if (!value.is_number_unsigned() && value.get<int64_t>() < 0) {
    return bad_request("\"" + key + "\" must not be negative (got " + value.dump() + ")");
  }
  const uint64_t number = value.get<uint64_t>();
  if (number > max) {
    return bad_request("\"" + key + "\" " + std::to_string(number) + " is too large");
  }
  return number;
}

}  // namespace

nlohmann::json to_json(const MigrationStatus& status) {
  nlohmann::json j = {
      {"state", std::string(to_string(status.state))},
      {"role", std::string(to_string(status.role))},
      {"uri", status.uri},
      {"total_time_ms", status.total_time_ms},
      {"setup_time_ms", status.setup_time_ms},
      {"downtime_ms", status.downtime_ms},
      {"downtime",
       {
           {"final_sync_ms", us_to_ms(status.downtime.final_sync_us)},
           {"last_ram_ms", us_to_ms(status.downtime.last_ram_us)},
           {"device_state_ms", us_to_ms(status.downtime.device_state_us)},
           {"destination_load_ms", us_to_ms(status.downtime.destination_load_us)},
           {"resume_ms", us_to_ms(status.downtime.resume_us)},
       }},
      {"expected_downtime_ms", status.expected_downtime_ms},
      {"transferred_bytes", status.transferred_bytes},
      {"remaining_bytes", status.remaining_bytes},
      {"normal_pages", status.normal_pages},
      {"zero_pages", status.zero_pages},
      {"throughput_bytes_per_s", status.throughput_bytes_per_s},
      {"mbps", static_cast<double>(status.throughput_bytes_per_s) * 8.0 / 1e6},
      {"dirty_pages_per_s", status.dirty_pages_per_s},
      {"iterations", status.iterations},
      {"throttle_percent", status.throttle_percent},
      {"dirty_tracking", std::string(to_string(status.dirty_tracking))},
      {"downtime_limit_ms", status.downtime_limit_ms},
      {"channels", status.channels},
      {"compression", to_string(status.compression)},
      {"multifd_bytes", status.multifd_bytes},
      {"uncompressed_bytes", status.uncompressed_bytes},
  };
  if (!status.error.empty()) j["error"] = status.error;
  return j;
}

Result<SendOptions> parse_send_request(const nlohmann::json& request) {
  if (!request.is_object()) {
    return bad_request("the body must be a JSON object (got " + std::string(request.type_name()) +
                       ")");
  }
  SendOptions options;
  bool have_uri = false;
  for (const auto& [key, value] : request.items()) {
    if (key == "uri") {
      if (!value.is_string()) return bad_request("\"uri\" must be a string");
      options.uri = value.get<std::string>();
      have_uri = true;
    } else if (key == "downtime_limit_ms") {
      options.downtime_limit_ms = static_cast<uint32_t>(
          TRY(unsigned_member(key, value, std::numeric_limits<uint32_t>::max())));
    } else if (key == "max_bandwidth") {
      options.max_bandwidth_bytes_per_s =
          TRY(unsigned_member(key, value, std::numeric_limits<uint64_t>::max()));
    } else if (key == "auto_converge") {
      if (!value.is_boolean()) return bad_request("\"auto_converge\" must be true or false");
      options.auto_converge = value.get<bool>();
    } else if (key == "dirty_tracking") {
      auto tracking =
          value.is_string() ? parse_dirty_tracking(value.get<std::string>()) : std::nullopt;
      if (!tracking) {
        return bad_request("\"dirty_tracking\" must be \"bitmap\" or \"ring\" (got " +
                           value.dump() + ")");
      }
      options.dirty_tracking = *tracking;
    } else if (key == "channels") {
      // Range-checked here rather than only in validate(): a huge number must
      // not wrap when narrowed to uint32_t and slip under the limit.
      const uint64_t channels =
          TRY(unsigned_member(key, value, std::numeric_limits<uint64_t>::max()));
      if (channels > kMaxChannels) {
        return bad_request("\"channels\" " + std::to_string(channels) + " is out of range 0.." +
                           std::to_string(kMaxChannels));
      }
      options.channels = static_cast<uint32_t>(channels);
    } else if (key == "compression") {
      if (!value.is_string()) {
        return bad_request(
            "\"compression\" must be a string: \"none\", \"zstd\" or "
            "\"zstd:LEVEL\" (got " +
            value.dump() + ")");
      }
      auto compression = parse_compression(value.get<std::string>());
      if (!compression) return bad_request(compression.error().message);
      options.compression = *compression;
    } else {
      return bad_request("unknown member \"" + key +
                         "\" (known: uri, downtime_limit_ms, max_bandwidth, auto_converge, "
                         "dirty_tracking, channels, compression)");
    }
  }
  if (!have_uri) return bad_request("\"uri\" is required (tcp:HOST:PORT or unix:PATH)");
  if (auto valid = validate(options); !valid) return bad_request(valid.error().message);
  return options;
}

}  // namespace godwit::migration
