// run_godwitctl: global options, command lookup by leading words, per-command
// option parsing, help text, and the mapping of failures to exit statuses.
//
// Parsing happens in two passes: the global pass knows --api-sock, --json and
// --help wherever they appear and collects everything else in order; the
// leading plain words of that remainder select the command, whose own options
// then parse the rest.
#include "tools/godwitctl/cli.h"

#include <boost/program_options.hpp>
#include <ostream>

#include "tools/godwitctl/command.h"

namespace godwit::ctl {

namespace po = boost::program_options;

namespace {

constexpr const char* kEnvVar = "GODWIT_API_SOCK";

/// Prints a usage error with a pointer to the relevant help; returns exit status 2.
int usage_error(std::ostream& err, const std::string& message, const std::string& help_for = "") {
  err << "godwitctl: " << message << "\nRun 'godwitctl " << help_for
      << (help_for.empty() ? "" : " ") << "--help' for usage.\n";
  return kExitUsage;
}

/// `text` broken into lines of at most `width` columns at spaces.
std::string wrap(const std::string& text, size_t width) {
  std::string out;
  size_t column = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(start, end - start);
    if (column > 0 && column + 1 + word.size() > width) {
      out += '\n';
      column = 0;
    } else if (column > 0) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    start = end + 1;
  }
  return out;
}

po::options_description global_options() {
  po::options_description options("Global options");
  options.add_options()                                           //
      ("api-sock", po::value<std::string>()->value_name("PATH"),  //
       "the VMM's API socket (default: $GODWIT_API_SOCK)")        //
      ("json", "print the VMM's JSON answer instead of text")     //
      ("help,h", "show this help, or a command's help after the command");
  return options;
}

void print_overall_help(std::ostream& out) {
  out << "Usage: godwitctl [--api-sock PATH] <command> [options] [--json]\n\n"
         "Controls a running godwit VMM through its REST API socket.\n\n"
         "Commands:\n";
  for (const auto& command : command_table()) {
    std::string name = command_name(command);
    out << "  " << name << std::string(name.size() < 16 ? 16 - name.size() : 1, ' ')
        << command.summary << "\n";
  }
  out << "\n"
      << global_options() << "\n"
      << "Run 'godwitctl <command> --help' for a command's options.\n"
         "Exit status: 0 success, 1 the VMM refused the request (its message is printed),\n"
         "2 usage error, 3 cannot reach the VMM's API socket.\n";
}

po::options_description command_options(const Command& command) {
  po::options_description options("Options");
  if (command.add_options) command.add_options(options);
  return options;
}

void print_command_help(std::ostream& out, const Command& command) {
  out << "Usage: godwitctl [--api-sock PATH] " << command_name(command);
  if (!command.synopsis.empty()) out << " " << command.synopsis;
  out << " [--json]\n\n" << wrap(command.description, 78) << "\n";
  auto options = command_options(command);
  if (!options.options().empty()) out << "\n" << options;
  out << "\n" << global_options();
}

/// The command whose words are the longest prefix of `words`; `matched` = words consumed.
const Command* find_command(const std::vector<std::string>& words, size_t& matched) {
  const Command* best = nullptr;
  matched = 0;
  for (const auto& command : command_table()) {
    const auto& w = command.words;
    if (w.size() > words.size() || w.size() <= matched) continue;
    if (std::equal(w.begin(), w.end(), words.begin())) {
      best = &command;
      matched = w.size();
    }
  }
  return best;
}

/// Commands starting with `word` (for "godwitctl memory" without a subcommand).
std::vector<const Command*> commands_starting_with(const std::string& word) {
  std::vector<const Command*> found;
  for (const auto& command : command_table()) {
    if (command.words.front() == word) found.push_back(&command);
  }
  return found;
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const CliEnvironment& environment) {
  po::variables_map globals;
  std::vector<std::string> rest;
  // parsed_options keeps a pointer to its description: both must stay alive for store().
  const po::options_description globals_description = global_options();
  try {
    auto parsed =
        po::command_line_parser(args)
            .options(globals_description)
            .allow_unregistered()
            .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
            .run();
    po::store(parsed, globals);
    po::notify(globals);
    rest = po::collect_unrecognized(parsed.options, po::include_positional);
  } catch (const po::error& e) {
    return usage_error(err, e.what());
  }
  bool help = globals.count("help") > 0;

  std::vector<std::string> words;
  for (const auto& token : rest) {
    if (token.starts_with("-")) break;
    words.push_back(token);
  }
  if (words.empty()) {
    if (help) {
      print_overall_help(out);
      return kExitOk;
    }
    return usage_error(err, rest.empty() ? "no command given" : "unknown option " + rest.front());
  }
  size_t matched = 0;
  const Command* command = find_command(words, matched);
  if (command == nullptr) {
    auto family = commands_starting_with(words.front());
    if (family.empty()) return usage_error(err, "unknown command '" + words.front() + "'");
    std::string names;
    for (const Command* c : family) names += (names.empty() ? "" : ", ") + command_name(*c);
    if (help && words.size() == 1) {
      out << "Usage: godwitctl " << words.front() << " <subcommand>\n\nSubcommands: " << names
          << "\n";
      return kExitOk;
    }
    return usage_error(err, "'" + words.front() + "' needs a subcommand: " + names);
  }
  if (help) {
    print_command_help(out, *command);
    return kExitOk;
  }

  std::vector<std::string> command_args(rest.begin() + static_cast<long>(matched), rest.end());
  po::variables_map options;
  po::options_description description = command_options(*command);
  po::positional_options_description positional;
  if (!command->positional.empty()) {
    // Hidden from the help (which shows it in the synopsis); a second word is
    // a "too many positional options" usage error.
    description.add_options()(command->positional.c_str(), po::value<std::string>());
    positional.add(command->positional.c_str(), 1);
  }
  try {
    po::command_line_parser parser(command_args);
    parser.options(description)
        .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing);
    if (!command->positional.empty()) parser.positional(positional);
    auto parsed = parser.run();
    // Without a positional description, store() would silently drop stray words.
    auto stray = po::collect_unrecognized(parsed.options, command->positional.empty()
                                                              ? po::include_positional
                                                              : po::exclude_positional);
    if (!stray.empty()) {
      return usage_error(err,
                         command_name(*command) + ": unexpected argument '" + stray.front() + "'",
                         command_name(*command));
    }
    po::store(parsed, options);
    po::notify(options);
  } catch (const po::error& e) {
    return usage_error(err, command_name(*command) + ": " + e.what(), command_name(*command));
  }

  std::string socket_path;
  if (globals.count("api-sock")) {
    socket_path = globals["api-sock"].as<std::string>();
  } else if (environment.api_sock && !environment.api_sock->empty()) {
    socket_path = *environment.api_sock;
  } else if (!command->offline) {
    return usage_error(err, std::string("no API socket: pass --api-sock PATH or set ") + kEnvVar);
  }

  ApiClient client(socket_path);
  CommandContext context{client, out, err, globals.count("json") > 0, environment.terminal};
  try {
    return command->run(context, options);
  } catch (const UsageError& e) {
    return usage_error(err, command_name(*command) + ": " + e.message, command_name(*command));
  }
}

}  // namespace

int run_godwitctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                  const CliEnvironment& environment) {
  try {
    return run(args, out, err, environment);
  } catch (const std::exception& e) {
    err << "godwitctl: " << e.what() << "\n";
    return kExitRefused;
  }
}

}  // namespace godwit::ctl
