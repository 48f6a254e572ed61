#include "cli/commands.h"

#include "core/error.h"

namespace l4::cli {

const std::vector<Command>& all_commands() {
  static const std::vector<Command> commands = {
      make_train_command(),   make_prepare_command(),    make_eval_command(),
      make_generate_command(), make_forward_command(),   make_info_command(),
      make_merge_lora_command(), make_export_command(),  make_tokenize_command(),
      make_plan_command(),
  };
  return commands;
}

int not_available(const std::string& command) {
  L4_FAIL("llama4 {}: not available yet in this version of llama4", command);
}

}  // namespace l4::cli
