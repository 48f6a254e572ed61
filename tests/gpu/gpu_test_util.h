// Shared pieces of the GPU checks (label gpu): the skip when no CUDA device is usable, strict fp32 on the
// GPU, and a tiny Llama 4 text config that still has every layer kind (dense and MoE, chunked RoPE and
// NoPE attention, QK norm, temperature tuning).
#pragma once

#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "config/model_arch.h"

namespace l4::testing {

// Skips the current test (it then passes under ctest) when this LibTorch has no CUDA or there is no GPU.
#define L4_SKIP_WITHOUT_CUDA()                                                                            \
  do {                                                                                                    \
    if (!torch::cuda::is_available()) {                                                                   \
      GTEST_SKIP() << "no CUDA device (torch::cuda::is_available() is false: CPU LibTorch or no GPU); "  \
                      "run scripts/gpu_check.sh on a GPU machine";                                        \
    }                                                                                                     \
  } while (0)

// fp32 matmuls in full precision (no TF32), so the GPU can be held to the CPU's fp32 tolerances. Only the
// long-standing setters: newer LibTorch rejects mixing them with its per-backend precision API.
inline void use_ieee_fp32_on_gpu() {
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
}

inline config::TextConfig tiny_text_config() {
  config::TextConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 16;
  c.intermediate_size_mlp = 48;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 1;
  c.interleave_moe_layer_step = 2;  // layers 1 and 3 are MoE
  c.no_rope_layer_interval = 4;     // layer 3 is NoPE
  c.attention_chunk_size = 4;
  c.use_qk_norm = true;
  c.attn_temperature_tuning = true;
  c.floor_scale = 4;
  c.initializer_range = 0.1;  // logits well away from zero, so relative errors are meaningful
  return c;
}

}  // namespace l4::testing
