// Activation checkpointing: run a piece of the forward without keeping its activations for backward, and
// rebuild them when the backward reaches it (as torch.utils.checkpoint's reentrant variant does). The
// forward runs without recording autograd; the backward re-runs it with grad enabled under the same RNG
// state and autocast settings (dropout draws the same masks) and backpropagates the incoming gradients
// through the rebuilt graph.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace l4::model {

using TensorFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& inputs)>;

// Returns fn(inputs) with one autograd node in place of fn's graph. `inputs` are the tensors fn reads
// through its argument (activations and any weight passed in); `params` are the trainable tensors fn reaches
// by itself (module parameters). Every trainable tensor fn uses must be in one of the two lists: the node
// returns the gradients of both (so each parameter's gradient accumulator runs once, in the caller's
// backward), and its outputs require grad whenever any of them does. Outputs without an incoming gradient
// are left out of the backward.
std::vector<at::Tensor> checkpointed(const TensorFn& fn, const std::vector<at::Tensor>& inputs,
                                     const std::vector<at::Tensor>& params);

class Llama4Impl;

// Wraps every MoE layer's current expert runner (the local grouped expert MLPs, LoRA-aware when adapters are
// in) so that training forwards keep only the rows it receives and recompute the expert matmuls in backward.
void recompute_experts(Llama4Impl& model);

}  // namespace l4::model
