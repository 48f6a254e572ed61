// Hugging Face model directories -> the root module (model/llama4.h): every tensor's name and shape is
// checked before anything is read (one l4::Error listing every missing, unexpected or misshapen tensor and
// its file); under expert parallelism only this rank's expert rows are read (placements, not names).
#pragma once

#include <map>
#include <string>

#include "checkpoint/model_weights.h"
#include "config/model_arch.h"
#include "model/llama4.h"

namespace l4::model {

// Canonical name -> full (unsharded) shape of every parameter the model of `arch` has, with or without its
// vision tower; from a model on the meta device (nothing allocated).
std::map<std::string, checkpoint::ExpectedTensor> expected_tensors(const config::ModelArch& arch,
                                                                   bool vision);

// The check alone (nothing read or allocated). A model without a tower skips a multimodal checkpoint's
// vision tensors; a model with one takes only the text part of a text-only checkpoint. Returns whether the
// checkpoint provides the tower and projector for such a model.
bool check_weights(const config::ModelArch& arch, bool vision, const checkpoint::ModelWeights& weights);

// check_weights, then copy_weights. Returns whether the tower and projector were loaded (false: a text-only
// checkpoint; they keep their values).
bool load_weights(Llama4Impl& model, const checkpoint::ModelWeights& weights);

// Copies every tensor of a checked checkpoint into `model` (converting dtype and device; only this rank's
// rows of sharded parameters); the tower and projector only `with_vision`.
void copy_weights(Llama4Impl& model, const checkpoint::ModelWeights& weights, bool with_vision);

}  // namespace l4::model
