// Writing Hugging Face model directories: config.json, the weights (model.safetensors) and the tokenizer
// and processor files, so that transformers' from_pretrained loads them.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace l4::checkpoint {

// `tensors` are under the HF names of the layout that config.json describes.
void write_hf_model_dir(const std::string& dir, const std::string& config_json,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const std::string& tokenizer_dir);

// Copies the tokenizer, chat-template, generation and processor files found in `from` (a directory, or the
// directory of a tokenizer file) into `output_dir`.
void copy_tokenizer_files(const std::string& from, const std::string& output_dir);

}  // namespace l4::checkpoint
