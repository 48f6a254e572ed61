// The subcommand table. Each subcommand lives in its own cmd_<name>.cpp.
#pragma once

#include <functional>
#include <vector>

#include "cli/args.h"

namespace l4::cli {

struct Command {
  CommandSpec spec;
  std::function<int(const ParsedArgs&)> run;
};

Command make_train_command();
Command make_prepare_command();
Command make_eval_command();
Command make_generate_command();
Command make_forward_command();
Command make_info_command();
Command make_merge_lora_command();
Command make_export_command();
Command make_tokenize_command();
Command make_plan_command();

const std::vector<Command>& all_commands();

// For subcommands whose implementation has not landed: exits 1 with a clear message.
int not_available(const std::string& command);

}  // namespace l4::cli
