// llama4 entry point: dispatches to subcommands and is the only place that catches errors and sets
// the exit code (0 success, 1 user error, 2 internal error).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/allocator_tuning.h"
#include "core/error.h"
#include "core/launch_env.h"
#include "core/log.h"
#include "core/operator_cache_limit.h"
#include "core/strings.h"
#include "train/signals.h"

namespace {

constexpr const char* kVersion = "0.1.0";

void print_main_help() {
  std::string out =
      "usage: llama4 <command> [options]\n\n"
      "Distributed training and fine-tuning of Llama-4-style models.\n\ncommands:\n";
  for (const auto& command : l4::cli::all_commands()) {
    out += fmt::format("  {:<12} {}\n", command.spec.name, command.spec.summary);
  }
  out += "\nRun 'llama4 <command> --help' for a command's options.\n";
  std::fputs(out.c_str(), stdout);
}

int run(int argc, char** argv) {
  l4::keep_large_allocations_in_heap();
  const l4::LaunchEnv env = l4::detect_launch_env();
  l4::log::set_rank(env.rank, env.world_size);
  if (argc < 2) {
    print_main_help();
    return 1;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_main_help();
    return 0;
  }
  if (name == "--version") {
    std::printf("llama4 %s\n", kVersion);
    return 0;
  }
  std::vector<std::string> names;
  for (const auto& command : l4::cli::all_commands()) {
    names.push_back(command.spec.name);
    if (command.spec.name != name) continue;
    const std::vector<std::string> args(argv + 2, argv + argc);
    const l4::cli::ParsedArgs parsed = l4::cli::parse_args(command.spec, args);
    if (parsed.has("help")) {
      std::fputs(l4::cli::help_text(command.spec).c_str(), stdout);
      return 0;
    }
    l4::log::set_all_ranks(parsed.has("log-all-ranks"));
    if (parsed.has("log-level")) l4::log::set_level(l4::log::parse_level(parsed.get("log-level")));
    return command.run(parsed);
  }
  L4_FAIL("unknown command '{}'{}; run 'llama4 --help'", name, l4::did_you_mean(name, names));
}

}  // namespace

int main(int argc, char** argv) {
  // First thing: a stop signal that arrives while training starts (MPI, model, data, resume take seconds
  // to minutes) is recorded and honoured at the first step instead of killing the rank (the default
  // action of SIGTERM and SIGUSR1). Only training has a loop that looks at it.
  // launch/mpirun.sh starts ranks with SIGUSR1 ignored (so that one arriving before this line is dropped,
  // not fatal, and repeats the stop): other commands get the default back, a stop still ends them.
  if (argc >= 2 && std::string(argv[1]) == "train") {
    l4::train::install_stop_signal_handlers();
  } else {
    std::signal(SIGUSR1, SIG_DFL);
  }
  // A file beyond the size limit (ulimit -f) must fail its write (EFBIG, reported with the file's name),
  // not kill the process half-way through a checkpoint or export.
  std::signal(SIGXFSZ, SIG_IGN);
  l4::limit_onednn_operator_cache();  // before run(): oneDNN reads it on first use
  try {
    return run(argc, argv);
  } catch (const l4::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::fflush(stderr);
    return 1;
  } catch (const l4::InternalError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
}
