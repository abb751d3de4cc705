// Helpers shared by commands: the API call wrapper that maps failures to exit
// statuses, and number parsing.
#include "tools/godwitctl/command.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <ostream>

namespace godwit::ctl {

std::string command_name(const Command& command) {
  std::string name;
  for (const auto& word : command.words) {
    if (!name.empty()) name += ' ';
    name += word;
  }
  return name;
}

namespace {
/// The "error" text of an error reply, or the raw body when it is not our JSON shape.
std::string error_message(const HttpReply& reply) {
  auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
    return parsed["error"].get<std::string>();
  }
  return reply.body.empty() ? "no details given" : reply.body;
}
}  // namespace

std::optional<HttpReply> call_api(CommandContext& context, std::string_view method,
                                  std::string_view target, int& exit_code, std::string body) {
  auto reply = context.client.request(method, target, std::move(body));
  if (!reply) {
    context.err << "godwitctl: " << reply.error().message << "\n";
    exit_code = kExitUnreachable;
    return std::nullopt;
  }
  if (reply->status < 200 || reply->status > 299) {
    context.err << "godwitctl: " << error_message(*reply) << " (HTTP " << reply->status << ")\n";
    exit_code = kExitRefused;
    return std::nullopt;
  }
  exit_code = kExitOk;
  return std::move(*reply);
}

Result<uint64_t> parse_number(std::string_view text) {
  std::string_view digits = text;
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    digits.remove_prefix(2);
    base = 16;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || ec == std::errc::invalid_argument || end != digits.data() + digits.size()) {
    return fail("'" + std::string(text) + "' is not a number (decimal or 0x hex)");
  }
  if (ec == std::errc::result_out_of_range) {
    return fail("'" + std::string(text) + "' does not fit in 64 bits");
  }
  return value;
}

}  // namespace godwit::ctl
