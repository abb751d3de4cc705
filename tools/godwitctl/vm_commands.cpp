// The VM commands: status, pause, resume, shutdown and memory read.
#include "tools/godwitctl/vm_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ostream>

#include "base/file_io.h"
#include "base/number.h"
#include "base/unique_fd.h"
#include "tools/godwitctl/status_format.h"

namespace godwit::ctl {

namespace po = boost::program_options;

namespace {

/// Prints a JSON reply body pretty-printed (or as received if it is not JSON).
void print_json_body(CommandContext& context, const std::string& body) {
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded()) {
    context.out << body << "\n";
  } else {
    context.out << parsed.dump(2) << "\n";
  }
}

int run_status(CommandContext& context, const po::variables_map&) {
  int exit_code = kExitOk;
  auto reply = call_api(context, "GET", "/vm", exit_code);
  if (!reply) return exit_code;
  if (context.json) {
    print_json_body(context, reply->body);
    return kExitOk;
  }
  auto info = nlohmann::json::parse(reply->body, nullptr, false);
  if (info.is_discarded()) {
    context.err << "godwitctl: GET /vm returned a body that is not JSON\n";
    return kExitRefused;
  }
  context.out << format_vm_status(info);
  return kExitOk;
}

/// A PUT that changes the run state; `done` is the text printed on success ("VM paused").
int run_state_change(CommandContext& context, const std::string& target, const std::string& done) {
  int exit_code = kExitOk;
  auto reply = call_api(context, "PUT", target, exit_code);
  if (!reply) return exit_code;
  if (context.json) {
    print_json_body(context, reply->body.empty() ? "{}" : reply->body);
    return kExitOk;
  }
  auto parsed = nlohmann::json::parse(reply->body, nullptr, false);
  context.out << done;
  if (parsed.is_object() && parsed.contains("state") && parsed["state"].is_string()) {
    context.out << " (state: " << parsed["state"].get<std::string>() << ")";
  }
  context.out << "\n";
  return kExitOk;
}

/// Writes all of `data` to a new or truncated file at `path`.
Result<void> write_file(const std::string& path, const std::string& data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno("opening " + path);
  TRY_VOID(write_all(fd.get(), data, path));
  if (::close(fd.release()) != 0) return fail_errno("closing " + path);
  return {};
}

void add_memory_read_options(po::options_description& options) {
  options.add_options()                                                         //
      ("gpa", po::value<std::string>()->required()->value_name("ADDR"),         //
       "guest-physical start address (decimal or 0x hex)")                      //
      ("len", po::value<std::string>()->required()->value_name("N"),            //
       "number of bytes to read, 1 to 268435456 (256 MiB; decimal or 0x hex)")  //
      ("out", po::value<std::string>()->required()->value_name("FILE"),         //
       "file to write the bytes to (created or truncated)");
}

int run_memory_read(CommandContext& context, const po::variables_map& options) {
  auto gpa = parse_u64(options["gpa"].as<std::string>());
  if (!gpa) throw UsageError{"--gpa: " + gpa.error().message};
  auto len = parse_u64(options["len"].as<std::string>());
  if (!len) throw UsageError{"--len: " + len.error().message};
  if (*len == 0) throw UsageError{"--len must be at least 1"};
  const std::string out_path = options["out"].as<std::string>();

  char target[96];
  std::snprintf(target, sizeof(target), "/vm/memory?gpa=0x%llx&len=%llu",
                static_cast<unsigned long long>(*gpa), static_cast<unsigned long long>(*len));
  int exit_code = kExitOk;
  auto reply = call_api(context, "GET", target, exit_code);
  if (!reply) return exit_code;
  if (reply->body.size() != *len) {
    context.err << "godwitctl: the VMM returned " << reply->body.size() << " bytes instead of "
                << *len << "\n";
    return kExitRefused;
  }
  if (auto written = write_file(out_path, reply->body); !written) {
    context.err << "godwitctl: " << written.error().message << "\n";
    return kExitRefused;
  }
  if (context.json) {
    context.out << nlohmann::json{{"gpa", *gpa}, {"len", *len}, {"out", out_path}}.dump(2) << "\n";
  } else {
    char text[64];
    std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(*gpa));
    context.out << "wrote " << *len << " bytes of guest memory at " << text << " to " << out_path
                << "\n";
  }
  return kExitOk;
}

}  // namespace

void append_vm_commands(std::vector<Command>& table) {
  table.push_back({{"status"},
                   "",
                   "show the VM's run state, vCPUs and memory layout",
                   "Shows the VM's run state, vCPU count and memory layout (GET /vm). With --json, "
                   "prints the VMM's JSON document.",
                   nullptr,
                   run_status});
  table.push_back({{"pause"},
                   "",
                   "pause all vCPUs",
                   "Pauses all vCPUs (PUT /vm/pause). Fails if the VM is not running.",
                   nullptr,
                   [](CommandContext& c, const po::variables_map&) {
                     return run_state_change(c, "/vm/pause", "VM paused");
                   }});
  table.push_back({{"resume"},
                   "",
                   "resume a paused VM",
                   "Resumes a paused VM (PUT /vm/resume). Fails if the VM is not paused.",
                   nullptr,
                   [](CommandContext& c, const po::variables_map&) {
                     return run_state_change(c, "/vm/resume", "VM resumed");
                   }});
  table.push_back({{"shutdown"},
                   "",
                   "shut the VM down (the VMM process exits)",
                   "Shuts the VM down for good (PUT /vm/shutdown); the godwit process then exits.",
                   nullptr,
                   [](CommandContext& c, const po::variables_map&) {
                     return run_state_change(c, "/vm/shutdown", "VM shut down");
                   }});
  table.push_back({{"memory", "read"},
                   "--gpa ADDR --len N --out FILE",
                   "copy guest memory to a file",
                   "Copies N bytes of guest memory starting at guest-physical address ADDR into "
                   "FILE (GET /vm/memory). The VM may keep running; pause it first for a "
                   "consistent copy.",
                   add_memory_read_options,
                   run_memory_read});
}

}  // namespace godwit::ctl
