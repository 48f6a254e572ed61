// Parameters with their placement (parallel/placement.h). A module whose parameters are not replicated
// implements PlacedModule and says where its own (direct) parameters live; every other parameter is
// replicated. Gradient sync, checkpoints, weight loading and export read placed_parameters() instead of
// recognising shards by name.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "parallel/placement.h"

namespace l4::model {

class PlacedModule {
 public:
  virtual ~PlacedModule() = default;
  // The placement of every parameter registered directly on this module.
  virtual parallel::Placement placement() const = 0;
};

struct PlacedParam {
  std::string name;  // as root.named_parameters() names it
  at::Tensor param;
  parallel::Placement placement;
};

// Every parameter of `root` in named_parameters() order, with its placement.
std::vector<PlacedParam> placed_parameters(const torch::nn::Module& root);

// The rows [begin, end) of the full tensor that a parameter with this placement holds along dim 0
// (end = -1: all of it); for reading pieces of checkpoints and HF files. Only dim-0 shards are stored as
// row pieces; l4::Error for others.
struct RowRange {
  int64_t begin = 0;
  int64_t end = -1;
};
RowRange stored_rows(const PlacedParam& p);

}  // namespace l4::model
