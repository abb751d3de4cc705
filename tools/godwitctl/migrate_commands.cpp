// godwitctl migrate | migrate-status | migrate-cancel, and the pure
// formatting of the migration status document they print.
#include "tools/godwitctl/migrate_commands.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <set>
#include <thread>

#include "base/number.h"
#include "tools/godwitctl/status_format.h"

namespace godwit::ctl {

namespace po = boost::program_options;

namespace {

/// How often `migrate --wait` asks for the status.
constexpr std::chrono::milliseconds kPollInterval{100};
constexpr int kBarWidth = 20;
/// migration::kMaxChannels and the zstd level range of migration/status.h,
/// repeated because godwitctl does not link the migration library.
constexpr uint64_t kMaxChannels = 64;
constexpr int kMaxZstdLevel = 19;

// --- reading the status document (every key optional) ---

uint64_t u64(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return 0;
  const auto& v = j[key];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return v.get<int64_t>() < 0 ? 0 : v.get<uint64_t>();
  if (v.is_number_float()) return v.get<double>() < 0 ? 0 : static_cast<uint64_t>(v.get<double>());
  return 0;
}

double number(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0.0;
  return j[key].get<double>();
}

std::string text(const nlohmann::json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object() || !j.contains(key)) return fallback;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

// --- units ---

std::string printf_string(const char* format, auto... args) {
  char buf[96];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

std::string mib(uint64_t bytes) {
  return printf_string("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

/// Decimal megabytes per second, as network rates are quoted.
std::string mb_per_s(double bytes_per_s) { return printf_string("%.1f MB/s", bytes_per_s / 1e6); }

std::string fractional_ms(double ms) { return printf_string("%.3f ms", ms); }

/// Seconds for an ETA: "5s", "2m05s", "1h02m".
std::string eta_text(uint64_t seconds) {
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600) return printf_string("%llum%02llus", seconds / 60, seconds % 60);
  return printf_string("%lluh%02llum", seconds / 3600, (seconds % 3600) / 60);
}

double percent_done(const nlohmann::json& status) {
  if (text(status, "state") == "completed") return 100.0;
  const uint64_t sent = u64(status, "transferred_bytes");
  const uint64_t left = u64(status, "remaining_bytes");
  if (sent + left == 0) return 0.0;
  return 100.0 * static_cast<double>(sent) / (static_cast<double>(sent) + left);
}

std::string eta(const nlohmann::json& status) {
  const uint64_t rate = u64(status, "throughput_bytes_per_s");
  if (rate == 0) return "-";
  const uint64_t left = u64(status, "remaining_bytes");
  return eta_text(left / rate + (left % rate != 0 ? 1 : 0));
}

/// "4 channels zstd:3 ratio 3.91x" (ratio = page bytes before compression /
/// bytes sent on the channels, "-" before any were sent), "4 channels
/// uncompressed" without compression. Only meaningful with channels > 0.
std::string multifd_summary(const nlohmann::json& status) {
  const uint64_t channels = u64(status, "channels");
  std::string out = std::to_string(channels) + (channels == 1 ? " channel" : " channels");
  const std::string compression = text(status, "compression", "none");
  if (compression == "none") return out + " uncompressed";
  const uint64_t sent = u64(status, "multifd_bytes");
  const std::string ratio =
      sent == 0 ? "-"
                : printf_string("%.2fx", static_cast<double>(u64(status, "uncompressed_bytes")) /
                                             static_cast<double>(sent));
  return out + " " + compression + " ratio " + ratio;
}

/// The multifd row of the result and status texts: the summary, then the
/// page bytes the channels carried and what they took on the wire.
std::string multifd_detail(const nlohmann::json& status) {
  return multifd_summary(status) + " (" + human_size(u64(status, "uncompressed_bytes")) +
         " of pages in " + human_size(u64(status, "multifd_bytes")) + ")";
}

/// The column where values start, indented rows included.
constexpr size_t kValueColumn = 22;

/// "label:" padded so values line up at kValueColumn.
void row(std::string& out, const std::string& indent, const std::string& label,
         const std::string& value) {
  std::string head = indent + label + ":";
  out += head + std::string(head.size() < kValueColumn ? kValueColumn - head.size() : 1, ' ') +
         value + "\n";
}

/// The downtime parts in the order they happen.
constexpr std::pair<const char*, const char*> kDowntimeParts[] = {
    {"final_sync_ms", "final dirty sync"},
    {"last_ram_ms", "last RAM delta"},
    {"device_state_ms", "device state"},
    {"destination_load_ms", "destination load"},
    {"resume_ms", "resume"},
};

void downtime_rows(std::string& out, const std::string& indent, const nlohmann::json& status) {
  const nlohmann::json parts =
      status.is_object() && status.contains("downtime") ? status["downtime"] : nlohmann::json();
  for (const auto& [key, label] : kDowntimeParts) {
    row(out, indent, label, fractional_ms(number(parts, key)));
  }
}

}  // namespace

Result<uint32_t> parse_channels(std::string_view text_value) {
  auto value = parse_u64(text_value);
  if (!value || *value > kMaxChannels) {
    return fail("'" + std::string(text_value) + "' is not a number of channels from 0 to " +
                std::to_string(kMaxChannels));
  }
  return static_cast<uint32_t>(*value);
}

Result<std::string> check_compression(std::string_view text_value) {
  if (text_value == "none" || text_value == "zstd") return std::string(text_value);
  if (text_value.starts_with("zstd:")) {
    const std::string_view digits = text_value.substr(5);
    int level = 0;
    bool ok = !digits.empty() && digits.size() <= 2;
    for (char c : digits) {
      ok = ok && c >= '0' && c <= '9';
      level = level * 10 + (c - '0');
    }
    if (ok && level >= 1 && level <= kMaxZstdLevel) return std::string(text_value);
    return fail("'" + std::string(text_value) + "': the zstd level must be 1 to " +
                std::to_string(kMaxZstdLevel));
  }
  return fail("'" + std::string(text_value) + "' is not none, zstd or zstd:LEVEL");
}

Result<uint64_t> parse_bandwidth(std::string_view text_value) {
  std::string_view digits = text_value;
  uint64_t shift = 0;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      default:
        break;
    }
  }
  if (shift != 0) digits.remove_suffix(1);
  auto value = parse_u64(digits);
  if (!value || digits.starts_with("0x") || digits.starts_with("0X")) {
    return fail("'" + std::string(text_value) +
                "' is not a rate in bytes per second (a number, optionally with K, M or G)");
  }
  if (*value > (UINT64_MAX >> shift)) {
    return fail("'" + std::string(text_value) + "' does not fit in 64 bits");
  }
  return *value << shift;
}

bool is_terminal_state(std::string_view state) {
  return state == "completed" || state == "failed" || state == "cancelled";
}

std::string format_duration_ms(uint64_t ms) {
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms < 60'000) return printf_string("%.1f s", static_cast<double>(ms) / 1000.0);
  return eta_text(ms / 1000);
}

std::string format_migration_progress(const nlohmann::json& status) {
  const double percent = percent_done(status);
  const int filled = static_cast<int>(percent / 100.0 * kBarWidth);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kBarWidth) bar += (filled > 0 ? ">" : " ");
  bar.resize(kBarWidth, ' ');
  return "[" + bar + "] " + printf_string("%5.1f%%", percent) + "  " +
         mib(u64(status, "transferred_bytes")) + " sent, " + mib(u64(status, "remaining_bytes")) +
         " left, " + mb_per_s(number(status, "throughput_bytes_per_s")) + ", dirty " +
         std::to_string(u64(status, "dirty_pages_per_s")) + " pages/s, iteration " +
         std::to_string(u64(status, "iterations")) + ", " +
         (u64(status, "channels") > 0 ? multifd_summary(status) + ", " : "") + "ETA " +
         eta(status) + ", " + text(status, "state", "unknown");
}

std::string format_migration_result(const nlohmann::json& status) {
  std::string out = "migration " + text(status, "state", "unknown") + "\n";
  const uint64_t total_ms = u64(status, "total_time_ms");
  row(out, "  ", "total time",
      format_duration_ms(total_ms) + " (setup " + format_duration_ms(u64(status, "setup_time_ms")) +
          ")");
  row(out, "  ", "downtime",
      std::to_string(u64(status, "downtime_ms")) + " ms (limit " +
          std::to_string(u64(status, "downtime_limit_ms")) + " ms)");
  downtime_rows(out, "    ", status);
  std::string transferred = human_size(u64(status, "transferred_bytes"));
  if (total_ms > 0) {
    transferred += ", average " + mb_per_s(static_cast<double>(u64(status, "transferred_bytes")) *
                                           1000.0 / static_cast<double>(total_ms));
  }
  row(out, "  ", "transferred", transferred);
  row(out, "  ", "pages",
      std::to_string(u64(status, "normal_pages")) + " normal, " +
          std::to_string(u64(status, "zero_pages")) + " zero");
  row(out, "  ", "iterations", std::to_string(u64(status, "iterations")));
  if (u64(status, "channels") > 0) row(out, "  ", "multifd", multifd_detail(status));
  if (status.is_object() && status.contains("error"))
    row(out, "  ", "error", text(status, "error"));
  return out;
}

std::string format_migration_status(const nlohmann::json& status) {
  if (!status.is_object()) return status.dump() + "\n";
  std::string out;
  row(out, "", "state", text(status, "state", "unknown"));
  row(out, "", "role", text(status, "role", "none"));
  row(out, "", "uri", text(status, "uri", "-").empty() ? "-" : text(status, "uri"));
  if (status.contains("error")) row(out, "", "error", text(status, "error"));
  row(out, "", "total time", format_duration_ms(u64(status, "total_time_ms")));
  row(out, "", "setup time", format_duration_ms(u64(status, "setup_time_ms")));
  row(out, "", "downtime",
      std::to_string(u64(status, "downtime_ms")) + " ms (limit " +
          std::to_string(u64(status, "downtime_limit_ms")) + " ms, expected " +
          std::to_string(u64(status, "expected_downtime_ms")) + " ms)");
  downtime_rows(out, "  ", status);
  row(out, "", "transferred", human_size(u64(status, "transferred_bytes")));
  row(out, "", "remaining", human_size(u64(status, "remaining_bytes")));
  row(out, "", "pages",
      std::to_string(u64(status, "normal_pages")) + " normal, " +
          std::to_string(u64(status, "zero_pages")) + " zero");
  row(out, "", "throughput",
      mb_per_s(number(status, "throughput_bytes_per_s")) + " (" +
          printf_string("%.1f", number(status, "mbps")) + " Mbps)");
  row(out, "", "dirty rate", std::to_string(u64(status, "dirty_pages_per_s")) + " pages/s");
  row(out, "", "iterations", std::to_string(u64(status, "iterations")));
  row(out, "", "throttle", std::to_string(u64(status, "throttle_percent")) + "%");
  row(out, "", "dirty tracking", text(status, "dirty_tracking", "-"));
  row(out, "", "multifd",
      u64(status, "channels") > 0 ? multifd_detail(status) : "off (pages on the main channel)");
  static const std::set<std::string> kKnown = {"state",
                                               "role",
                                               "uri",
                                               "error",
                                               "total_time_ms",
                                               "setup_time_ms",
                                               "downtime_ms",
                                               "downtime",
                                               "expected_downtime_ms",
                                               "transferred_bytes",
                                               "remaining_bytes",
                                               "normal_pages",
                                               "zero_pages",
                                               "throughput_bytes_per_s",
                                               "mbps",
                                               "dirty_pages_per_s",
                                               "iterations",
                                               "throttle_percent",
                                               "dirty_tracking",
                                               "downtime_limit_ms",
                                               "channels",
                                               "compression",
                                               "multifd_bytes",
                                               "uncompressed_bytes"};
  for (const auto& [key, value] : status.items()) {
    if (!kKnown.contains(key))
      row(out, "", key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  return out;
}

namespace {

void add_migrate_options(po::options_description& options) {
  options.add_options()                                                            //
      ("downtime-limit-ms", po::value<std::string>()->value_name("N"),             //
       "longest acceptable pause of the guest, 1 to 600000 ms (VMM default 300)")  //
      ("max-bandwidth", po::value<std::string>()->value_name("BYTES_PER_S"),       //
       "rate limit in bytes per second; K, M, G suffixes are binary (100M = "      //
       "104857600); default unlimited")                                            //
      ("auto-converge",
       "throttle the vCPUs when the guest dirties memory faster than it is sent")   //
      ("dirty-tracking", po::value<std::string>()->value_name("bitmap|ring"),       //
       "how dirty pages are found: KVM dirty bitmap (default) or dirty ring "       //
       "(godwit refuses ring for now: its VMs are created without rings)")          //
      ("channels", po::value<std::string>()->value_name("N"),                       //
       "multifd: N extra connections that carry RAM pages in parallel, 0 to 64; "   //
       "default 0 (pages go on the main connection)")                               //
      ("compress", po::value<std::string>()->value_name("none|zstd[:LEVEL]"),       //
       "compress the pages on the multifd channels (needs --channels >= 1): none "  //
       "(default) or zstd at LEVEL 1 (default, fastest) to 19")                     //
      ("wait", "wait until the migration ends, showing progress; exit 0 only if it completed");
}

/// The PUT /migration/send body for the command line.
nlohmann::json send_request(const po::variables_map& options) {
  if (!options.count("uri")) throw UsageError{"missing URI (tcp:HOST:PORT or unix:PATH)"};
  nlohmann::json body = {{"uri", options["uri"].as<std::string>()}};
  if (options.count("downtime-limit-ms")) {
    auto ms = parse_u64(options["downtime-limit-ms"].as<std::string>());
    if (!ms) throw UsageError{"--downtime-limit-ms: " + ms.error().message};
    body["downtime_limit_ms"] = *ms;
  }
  if (options.count("max-bandwidth")) {
    auto rate = parse_bandwidth(options["max-bandwidth"].as<std::string>());
    if (!rate) throw UsageError{"--max-bandwidth: " + rate.error().message};
    body["max_bandwidth"] = *rate;
  }
  if (options.count("auto-converge")) body["auto_converge"] = true;
  if (options.count("dirty-tracking")) {
    const std::string tracking = options["dirty-tracking"].as<std::string>();
    if (tracking != "bitmap" && tracking != "ring") {
      throw UsageError{"--dirty-tracking must be bitmap or ring, not '" + tracking + "'"};
    }
    body["dirty_tracking"] = tracking;
  }
  uint32_t channels = 0;
  if (options.count("channels")) {
    auto parsed = parse_channels(options["channels"].as<std::string>());
    if (!parsed) throw UsageError{"--channels: " + parsed.error().message};
    channels = *parsed;
    body["channels"] = channels;
  }
  if (options.count("compress")) {
    auto compression = check_compression(options["compress"].as<std::string>());
    if (!compression) throw UsageError{"--compress: " + compression.error().message};
    // The VMM refuses this too; saying it here names the option to add.
    if (*compression != "none" && channels == 0) {
      throw UsageError{"--compress " + *compression +
                       " needs multifd channels: add --channels N (N >= 1)"};
    }
    body["compression"] = *compression;
  }
  return body;
}

/// Ends a terminal progress line so what follows starts on its own line.
void end_progress_line(CommandContext& context, bool& line_open) {
  if (line_open) context.out << "\n";
  line_open = false;
}

/// Polls GET /migration/status until the migration ends; prints progress and the result.
int wait_for_migration(CommandContext& context, nlohmann::json status) {
  std::string last_state;
  bool seen_running = false;
  bool line_open = false;
  size_t drawn = 0;
  for (;;) {
    const std::string state = text(status, "state", "unknown");
    if (state == "none" && seen_running) {
      end_progress_line(context, line_open);
      context.err << "godwitctl: the VMM no longer reports a migration (state none)\n";
      return kExitRefused;
    }
    seen_running = seen_running || state != "none";
    if (!context.json) {
      const std::string line = format_migration_progress(status);
      if (context.terminal) {
        // Redraw in place; pad over the rest of a longer previous line.
        context.out << "\r" << line
                    << std::string(drawn > line.size() ? drawn - line.size() : 0, ' ')
                    << std::flush;
        drawn = line.size();
        line_open = true;
      } else if (state != last_state) {
        context.out << line << "\n" << std::flush;
      }
    }
    last_state = state;
    if (is_terminal_state(state)) break;

    std::this_thread::sleep_for(kPollInterval);
    auto reply = context.client.request("GET", "/migration/status");
    if (!reply) {
      end_progress_line(context, line_open);
      context.err << "godwitctl: lost contact with the VMM while waiting for the migration (last "
                     "state: "
                  << state << "): " << reply.error().message << "\n";
      return kExitUnreachable;
    }
    auto parsed = nlohmann::json::parse(reply->body, nullptr, false);
    if (reply->status != 200 || !parsed.is_object()) {
      end_progress_line(context, line_open);
      context.err << "godwitctl: GET /migration/status answered HTTP " << reply->status << ": "
                  << reply->body << "\n";
      return kExitRefused;
    }
    status = std::move(parsed);
  }
  end_progress_line(context, line_open);

  if (context.json) {
    context.out << status.dump(2) << "\n";
  } else {
    context.out << format_migration_result(status);
  }
  if (last_state == "completed") return kExitOk;
  const std::string error = text(status, "error");
  if (last_state == "failed") {
    context.err << "godwitctl: migration failed: " << (error.empty() ? "no error given" : error)
                << "\n";
  } else {
    context.err << "godwitctl: migration cancelled" << (error.empty() ? "" : ": " + error) << "\n";
  }
  return kExitRefused;
}

int run_migrate(CommandContext& context, const po::variables_map& options) {
  const nlohmann::json body = send_request(options);
  int exit_code = kExitOk;
  auto reply = call_api(context, "PUT", "/migration/send", exit_code, body.dump());
  if (!reply) return exit_code;
  auto status = nlohmann::json::parse(reply->body, nullptr, false);
  if (options.count("wait")) {
    if (!status.is_object()) status = nlohmann::json{{"state", "setup"}};
    return wait_for_migration(context, std::move(status));
  }
  if (context.json) {
    context.out << (status.is_discarded() ? reply->body : status.dump(2)) << "\n";
  } else {
    context.out << "migration to " << body["uri"].get<std::string>() << " started\n";
  }
  return kExitOk;
}

int run_status(CommandContext& context, const po::variables_map&) {
  int exit_code = kExitOk;
  auto reply = call_api(context, "GET", "/migration/status", exit_code);
  if (!reply) return exit_code;
  auto status = nlohmann::json::parse(reply->body, nullptr, false);
  if (status.is_discarded()) {
    context.err << "godwitctl: GET /migration/status returned a body that is not JSON\n";
    return kExitRefused;
  }
  context.out << (context.json ? status.dump(2) + "\n" : format_migration_status(status));
  return kExitOk;
}

int run_cancel(CommandContext& context, const po::variables_map&) {
  int exit_code = kExitOk;
  auto reply = call_api(context, "PUT", "/migration/cancel", exit_code);
  if (!reply) return exit_code;
  auto status = nlohmann::json::parse(reply->body, nullptr, false);
  if (context.json) {
    context.out << (status.is_discarded() ? reply->body : status.dump(2)) << "\n";
  } else {
    context.out << "migration cancel requested (state: " << text(status, "state", "unknown")
                << ")\n";
  }
  return kExitOk;
}

}  // namespace

void append_migrate_commands(std::vector<Command>& table) {
  Command migrate{
      {"migrate"},
      "URI [--downtime-limit-ms N] [--max-bandwidth BYTES_PER_S] [--auto-converge] "
      "[--dirty-tracking bitmap|ring] [--channels N] [--compress none|zstd[:LEVEL]] [--wait]",
      "live-migrate the VM to a destination VMM",
      "Starts a live migration of the running VM to the destination at URI, tcp:HOST:PORT or "
      "unix:PATH (PUT /migration/send), and returns at once: 'migration to URI started'. The "
      "destination godwit must already be listening there. --channels N opens N extra "
      "connections (multifd) that carry RAM pages in parallel with the main one; --compress "
      "zstd[:LEVEL] compresses the pages on them (level 1 to 19, default 1) and needs "
      "--channels of at least 1. With --wait, polls GET "
      "/migration/status every 100 ms until the migration completes, fails or is cancelled; on a "
      "terminal a progress line shows the percentage, bytes sent and left, throughput, dirty "
      "page rate, iteration, multifd channels and compression ratio (with --channels) and ETA, "
      "otherwise one line per state change is printed. It ends with "
      "the total time, the downtime and its parts, bytes, pages, iterations and, with --channels, "
      "the multifd figures. Exit status with "
      "--wait: 0 completed, 1 failed or cancelled (the error is printed), 3 if the VMM's socket "
      "goes away before the end is seen.",
      add_migrate_options,
      run_migrate};
  migrate.positional = "uri";
  table.push_back(std::move(migrate));
  table.push_back(
      {{"migrate-status"},
       "",
       "show the state and figures of the current or last migration",
       "Shows the migration status (GET /migration/status), on the source or the destination: "
       "state, role, URI, error, times, downtime and its parts, bytes transferred and "
       "remaining, pages, throughput, dirty page rate, iterations, throttle, dirty tracking, "
       "and the multifd channels, compression and ratio (uncompressed / sent bytes). "
       "With --json, prints the VMM's JSON document.",
       nullptr,
       run_status});
  table.push_back({{"migrate-cancel"},
                   "",
                   "cancel the outgoing migration (the VM keeps running here)",
                   "Asks the VMM to cancel its migration (PUT /migration/cancel); the VM keeps "
                   "running on the source. Refused (exit 1) when no migration is running or once "
                   "it is in postcopy. Follow the end with migrate-status.",
                   nullptr,
                   run_cancel});
}

}  // namespace godwit::ctl
