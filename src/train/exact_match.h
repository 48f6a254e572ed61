// Exact-match accuracy of an SFT eval split: a document (conversation) counts as correct when the greedy
// prediction equals the label at every loss-masked position. With teacher forcing this is the same as
// greedy generation reproducing every answer (and its <|eot|>) exactly, so it measures domain accuracy
// with short answers, images included, in one forward pass.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <set>

namespace l4::parallel {
class Communicator;
}

namespace l4::train {

class ExactMatchCounter {
 public:
  // logits [B, T, V], labels [B, T] (-100 = not scored), doc_ids [B, T] (global document ids).
  void add(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& doc_ids);
  // The same from greedy predictions [B, T] (argmax of the logits) computed elsewhere (the chunked loss).
  void add_predictions(const at::Tensor& predictions, const at::Tensor& labels, const at::Tensor& doc_ids);
  // Collective: the fraction of scored documents answered exactly, over every rank (documents split
  // across rows or ranks are combined). NaN when nothing was scored.
  double accuracy(parallel::Communicator& comm) const;

 private:
  std::set<int64_t> scored_, wrong_;
};

}  // namespace l4::train
