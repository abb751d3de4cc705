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

}  // namespace godwit::ctl
