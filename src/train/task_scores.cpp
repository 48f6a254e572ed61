#include "train/task_scores.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "parallel/communicator.h"
#include "train/collective_strings.h"

namespace l4::train {

void TaskScores::add(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& doc_ids,
                     const at::Tensor& task_ids) {
  const int64_t vocab = logits.size(-1);
  const at::Tensor flat = logits.reshape({-1, vocab});
  const at::Tensor nll =
      at::cross_entropy_loss(flat.to(at::kFloat), labels.reshape({-1}), {}, at::Reduction::None, -100);
  add_tokens(nll.view(labels.sizes()), flat.argmax(-1).view(labels.sizes()), labels, doc_ids, task_ids);
}

void TaskScores::add_tokens(const at::Tensor& token_nll, const at::Tensor& predictions,
                            const at::Tensor& labels, const at::Tensor& doc_ids, const at::Tensor& task_ids) {
  L4_ASSERT(task_ids.defined() && task_ids.sizes() == labels.sizes(), "task ids must match the labels");
  const at::Tensor scored = labels.reshape({-1}).ne(-100);
  const at::Tensor wrong = scored.logical_and(predictions.reshape({-1}).ne(labels.reshape({-1})));
  // Per scored token: its task, document, loss and correctness, on the CPU (the model may run on a GPU).
  const at::Tensor tasks = task_ids.reshape({-1}).masked_select(scored).to(at::kCPU, at::kLong).contiguous();
  const at::Tensor docs = doc_ids.reshape({-1}).masked_select(scored).to(at::kCPU, at::kLong).contiguous();
  const at::Tensor losses =
      token_nll.reshape({-1}).masked_select(scored).to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor misses = wrong.masked_select(scored).to(at::kCPU).contiguous();
  const int64_t* t = tasks.data_ptr<int64_t>();
  const int64_t* d = docs.data_ptr<int64_t>();
  const double* l = losses.data_ptr<double>();
  const bool* m = misses.data_ptr<bool>();
  for (int64_t i = 0; i < tasks.numel(); ++i) {
    L4_ASSERT(t[i] >= 0 && t[i] < static_cast<int64_t>(names_.size()), "task id {} out of range", t[i]);
    loss_sum_[t[i]] += l[i];
    tokens_[t[i]] += 1;
    doc_task_[d[i]] = t[i];
    doc_wrong_[d[i]] = doc_wrong_[d[i]] || m[i];
  }
}

std::vector<TaskScore> TaskScores::result(parallel::Communicator& comm) const {
  nlohmann::json mine = {{"loss", nlohmann::json::object()},
                         {"tokens", nlohmann::json::object()},
                         {"docs", nlohmann::json::array()}};
  for (const auto& [task, sum] : loss_sum_) mine["loss"][std::to_string(task)] = sum;
  for (const auto& [task, n] : tokens_) mine["tokens"][std::to_string(task)] = n;
  for (const auto& [doc, task] : doc_task_) mine["docs"].push_back({doc, task, doc_wrong_.at(doc)});
  std::map<int64_t, double> loss;
  std::map<int64_t, int64_t> tokens;
  std::map<int64_t, std::pair<int64_t, bool>> docs;  // document -> (task, wrong anywhere)
  for (const std::string& text : all_gather_strings(comm, mine.dump())) {
    const nlohmann::json part = nlohmann::json::parse(text);
    for (const auto& [task, sum] : part["loss"].items()) loss[std::stoll(task)] += sum.get<double>();
    for (const auto& [task, n] : part["tokens"].items()) tokens[std::stoll(task)] += n.get<int64_t>();
    for (const auto& entry : part["docs"]) {
      auto& [task, wrong] = docs[entry[0].get<int64_t>()];
      task = entry[1].get<int64_t>();
      wrong = wrong || entry[2].get<bool>();
    }
  }
  std::map<int64_t, std::pair<int64_t, int64_t>> answered;  // task -> (documents, exact)
  for (const auto& [doc, entry] : docs) {
    auto& [n, exact] = answered[entry.first];
    ++n;
    exact += entry.second ? 0 : 1;
  }
  std::vector<TaskScore> out;
  for (const auto& [task, n] : tokens) {
    TaskScore s;
    s.name = names_[static_cast<size_t>(task)];
    s.tokens = n;
    s.loss = loss[task] / static_cast<double>(n);
    const auto [documents, exact] = answered[task];
    s.documents = documents;
    s.exact_match =
        documents > 0 ? static_cast<double>(exact) / static_cast<double>(documents) : std::nan("");
    out.push_back(s);
  }
  return out;
}

}  // namespace l4::train
