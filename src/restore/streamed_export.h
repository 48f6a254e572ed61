// `llama4 export` without holding the run's model: the frozen base is never read into memory whole, so a
// checkpoint of a 100B+ model exports on a machine that could not hold it.
//   - LoRA runs: the model is allocated but its frozen base weights are neither read nor initialised (pages
//     never touched cost no memory); the checkpoint fills the trained tensors (LoRA factors, a trained
//     tower and projector), which go out as a PEFT adapter; a merged export folds that adapter into the
//     base directory shard by shard (restore/streaming_merge.h).
//   - Full fine-tuning: each base tensor is replaced by the checkpoint's tensor of the same name, read one
//     tensor at a time and cast to the base's dtype.
#pragma once

#include <cstdint>
#include <string>

namespace l4::restore {

struct ExportRequest {
  std::string checkpoint;  // step directory, or a run's checkpoint directory (its newest valid step)
  std::string output;
  bool peft = false;  // a PEFT adapter instead of a merged model
  int64_t max_shard_bytes = 0;
  bool overwrite = false;
};

// Exports when the run allows it and returns true; false, having written nothing, when the run needs its
// model built whole (a seeded run without a base directory, a run whose layout differs from its base's, or a
// LoRA run that trains tensors a PEFT adapter cannot carry): the caller then takes the restore path.
bool export_streamed(const ExportRequest& request);

}  // namespace l4::restore
