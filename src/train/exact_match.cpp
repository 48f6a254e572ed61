#include "train/exact_match.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "parallel/communicator.h"
#include "train/collective_strings.h"

namespace l4::train {

void ExactMatchCounter::add(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& doc_ids) {
  add_predictions(logits.argmax(-1), labels, doc_ids);
}

void ExactMatchCounter::add_predictions(const at::Tensor& predictions, const at::Tensor& labels,
                                        const at::Tensor& doc_ids) {
  const at::Tensor scored = labels.ne(-100);
  const at::Tensor wrong = scored.logical_and(predictions.ne(labels));
  const at::Tensor docs = doc_ids.to(at::kLong);
  // The document ids are read on the CPU (the model may run on a GPU).
  const at::Tensor scored_docs =
      std::get<0>(at::_unique(docs.masked_select(scored))).to(at::kCPU).contiguous();
  const at::Tensor wrong_docs = std::get<0>(at::_unique(docs.masked_select(wrong))).to(at::kCPU).contiguous();
  for (int64_t i = 0; i < scored_docs.numel(); ++i) scored_.insert(scored_docs.data_ptr<int64_t>()[i]);
  for (int64_t i = 0; i < wrong_docs.numel(); ++i) wrong_.insert(wrong_docs.data_ptr<int64_t>()[i]);
}

double ExactMatchCounter::accuracy(parallel::Communicator& comm) const {
  const nlohmann::json mine = {{"scored", scored_}, {"wrong", wrong_}};
  std::set<int64_t> scored, wrong;
  for (const std::string& text : all_gather_strings(comm, mine.dump())) {
    const nlohmann::json part = nlohmann::json::parse(text);
    for (int64_t d : part["scored"]) scored.insert(d);
    for (int64_t d : part["wrong"]) wrong.insert(d);
  }
  if (scored.empty()) return std::nan("");
  return static_cast<double>(scored.size() - wrong.size()) / static_cast<double>(scored.size());
}

}  // namespace l4::train
