// Test helper for lora_peft_parity.py: loads an HF model directory, attaches LoRA (targets and scaling from
// the command line), fills the adapter with seeded random values, and writes
//   <out>/logits.safetensors  our logits for <out>/input.safetensors's input_ids
//   <out>/adapter/            the PEFT adapter
//   <out>/merged/             the merged HF model directory
// Usage: lora_parity_tool MODEL_DIR OUT_DIR RANK ALPHA RSLORA(0|1) TARGET...
#include <torch/torch.h>

#include <iostream>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "lora/peft_adapter.h"
#include "restore/export.h"
#include "restore/restore.h"

int main(int argc, char** argv) {
  if (argc < 7) {
    std::cerr << "usage: lora_parity_tool MODEL_DIR OUT_DIR RANK ALPHA RSLORA TARGET...\n";
    return 2;
  }
  try {
    const std::string model_dir = argv[1], out = argv[2];
    l4::lora::LoraOptions options;
    options.rank = std::stoll(argv[3]);
    options.alpha = std::stod(argv[4]);
    options.rslora = std::string(argv[5]) == "1";
    options.targets.assign(argv + 6, argv + argc);
    l4::restore::RestoredModel loaded = l4::restore::from_hf_dir(model_dir);
    l4::lora::apply_lora(*loaded.model, options, 1);
    loaded.lora = options;
    torch::manual_seed(123);
    {
      torch::NoGradGuard no_grad;
      for (auto& item : loaded.model->named_parameters()) {
        if (item.value().requires_grad()) item.value().normal_(0.0, 0.3);
      }
    }
    loaded.model->eval();
    const auto input = l4::checkpoint::SafetensorsFile::open(out + "/input.safetensors");
    torch::NoGradGuard no_grad;
    const at::Tensor logits = loaded.model->forward(input->load("input_ids"));
    l4::checkpoint::save_safetensors(out + "/logits.safetensors", {{"logits", logits.contiguous()}});
    l4::restore::write_adapter(loaded, out + "/adapter");
    l4::restore::write_merged_model(loaded, out + "/merged");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
