// Eval loss and exact match per task (data "task" key, else the input file's name), so a run shows which
// kinds of question it learned; the totals stay with the trainer's own loss and ExactMatchCounter.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace l4::parallel {
class Communicator;
}

namespace l4::train {

struct TaskScore {
  std::string name;
  double loss = 0.0;         // mean over the task's target tokens
  int64_t tokens = 0;        // target tokens
  double exact_match = 0.0;  // fraction of the task's documents answered exactly (NaN: none scored)
  int64_t documents = 0;     // documents with at least one target
};

class TaskScores {
 public:
  explicit TaskScores(std::vector<std::string> task_names) : names_(std::move(task_names)) {}

  // logits [B, T, V], labels [B, T] (-100 = not scored), doc_ids and task_ids [B, T] (-1 on padding).
  void add(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& doc_ids,
           const at::Tensor& task_ids);
  // The same from per-position -log p(label) and greedy predictions (the chunked loss gives these, never
  // the whole logits); positions whose label is -100 are not read.
  void add_tokens(const at::Tensor& token_nll, const at::Tensor& predictions, const at::Tensor& labels,
                  const at::Tensor& doc_ids, const at::Tensor& task_ids);
  // Collective over every rank (a document split across rows or ranks counts once); tasks without targets
  // are left out, in the dataset's task order.
  std::vector<TaskScore> result(parallel::Communicator& comm) const;

 private:
  std::vector<std::string> names_;
  std::map<int64_t, double> loss_sum_;   // task -> sum of -log p(target)
  std::map<int64_t, int64_t> tokens_;    // task -> target tokens
  std::map<int64_t, int64_t> doc_task_;  // scored document -> its task
  std::map<int64_t, bool> doc_wrong_;    // scored document -> some target mispredicted
};

}  // namespace l4::train
