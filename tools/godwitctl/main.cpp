// godwitctl: the operator's CLI for a running godwit VMM (see cli.h).
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "tools/godwitctl/cli.h"

int main(int argc, char** argv) {
  godwit::ctl::CliEnvironment environment;
  if (const char* sock = std::getenv("GODWIT_API_SOCK")) environment.api_sock = sock;
  environment.terminal = ::isatty(STDOUT_FILENO) == 1;
  std::vector<std::string> args(argv + 1, argv + argc);
  return godwit::ctl::run_godwitctl(args, std::cout, std::cerr, environment);
}
