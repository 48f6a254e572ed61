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
#include "model/pretrained.h"

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
    auto loaded = l4::model::load_pretrained_text(model_dir);
    const auto injection = l4::lora::apply_lora(*loaded.model, options, 1);
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
    l4::lora::write_peft_adapter(*loaded.model, options, injection, out + "/adapter", model_dir);
    l4::lora::write_merged_model(*loaded.model, model_dir, out + "/merged");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
