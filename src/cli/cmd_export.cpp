// llama4 export: training checkpoint -> HF model directory (LoRA merged) or PEFT adapter. The checkpoint's
// config snapshot gives the architecture, the base weights (model.hf_dir / model.init) and the LoRA settings;
// the run is exported without building its model where it can be (restore/streamed_export.h), else rebuilt
// through the one restore path; either way every module it trained is exported.
#include "cli/commands.h"
#include "core/staged_output_dir.h"
#include "restore/export.h"
#include "restore/restore.h"
#include "restore/sharded_writer.h"
#include "restore/streamed_export.h"

namespace l4::cli {
namespace {

int run_export(const ParsedArgs& args) {
  const std::string ckpt_path = args.require("checkpoint", "export");
  const std::string output = args.require("output", "export");
  const int64_t max_shard =
      restore::parse_shard_size(args.get("max-shard-size", "5GB"), "export --max-shard-size");
  const bool overwrite = args.has("overwrite");
  // Output mistakes fail before the (possibly long) restore; export re-checks against the resolved paths.
  restore::check_output_outside(output, ckpt_path, "the checkpoint directory");
  check_output_replaceable(output, overwrite, "--output");
  // Without building the model when the run allows it (a Scout-size base never sits in memory whole).
  if (!args.has("in-memory") &&
      restore::export_streamed({ckpt_path, output, args.has("peft"), max_shard, overwrite}))
    return 0;
  restore::RestoredModel restored = restore::from_checkpoint(ckpt_path);
  if (args.has("peft")) {
    restore::write_adapter(restored, output, overwrite);
  } else {
    restore::write_merged_model(restored, output, max_shard, overwrite);
  }
  return 0;
}

}  // namespace

Command make_export_command() {
  return {{"export",
           "training checkpoint -> HF model or PEFT adapter",
           "--checkpoint DIR --output DIR [--peft] [--max-shard-size SIZE] [--overwrite] [--in-memory]",
           {{"checkpoint", "DIR", "step_N checkpoint directory (or a run's checkpoint dir: its newest)"},
            {"output", "DIR", "output directory"},
            {"peft", "", "write a PEFT adapter instead of a full (merged) model"},
            {"max-shard-size", "SIZE", "largest weights file of a merged model: 5GB (default), 500MB, bytes"},
            {"overwrite", "",
             "replace an existing non-empty output directory (only once the new one is complete)"},
            {"in-memory", "",
             "build the run's model whole instead of streaming the base shard by shard (needs the model's "
             "size in RAM; the default streams whenever the run has a base directory of its layout)"}},
           /*accepts_overrides=*/false},
          run_export};
}

}  // namespace l4::cli
