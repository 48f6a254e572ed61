// Model FLOPs for MFU: matmul FLOPs of the parameters a token passes through (6 per parameter for
// forward + backward) plus attention score/value FLOPs, which depend on how far a token attends:
// RoPE layers see at most their chunk, NoPE layers the whole causal prefix.
#pragma once

#include <cstdint>

#include "config/model_arch.h"

namespace l4::train {

// Training (forward + backward) FLOPs per token for rows of `seq_len` tokens.
double training_flops_per_token(const config::ModelArch& arch, int64_t seq_len);

// Average number of keys a query attends to in a causal row of seq_len tokens, with fixed chunks of
// `chunk` (0 = no chunking).
double mean_attended_keys(int64_t seq_len, int64_t chunk);

}  // namespace l4::train
