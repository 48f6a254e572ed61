#include "parallel/communicator.h"

#include <cstdlib>
#include <numeric>

#include "core/error.h"

namespace l4::parallel {
namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
};

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
    case ReduceOp::kAvg: return "avg";
  }
  return "?";
}

std::unique_ptr<Work> Communicator::all_reduce_async(at::Tensor& tensor, ReduceOp op) {
  all_reduce(tensor, op);
  return std::make_unique<DoneWork>();
}

void check_all_to_all_counts(const Communicator& comm, const at::Tensor& input,
                             const std::vector<int64_t>& send_counts, const std::vector<int64_t>& recv_counts) {
  const auto n = static_cast<size_t>(comm.size());
  L4_CHECK(send_counts.size() == n && recv_counts.size() == n,
           "all_to_all_v on communicator '{}': {} send counts and {} receive counts for {} ranks", comm.name(),
           send_counts.size(), recv_counts.size(), n);
  L4_CHECK(input.dim() >= 1, "all_to_all_v on communicator '{}': input must have a row dimension", comm.name());
  for (size_t i = 0; i < n; ++i) {
    L4_CHECK(send_counts[i] >= 0 && recv_counts[i] >= 0,
             "all_to_all_v on communicator '{}': negative row count for rank {}", comm.name(), i);
  }
  const int64_t total = std::accumulate(send_counts.begin(), send_counts.end(), int64_t{0});
  L4_CHECK(total == input.size(0), "all_to_all_v on communicator '{}': send counts add up to {} rows, input has {}",
           comm.name(), total, input.size(0));
}

void SelfCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  L4_CHECK(op != ReduceOp::kAvg || at::isFloatingType(tensor.scalar_type()),
           "all_reduce avg needs a floating-point tensor, got {}", c10::toString(tensor.scalar_type()));
}

at::Tensor SelfCommunicator::all_gather(const at::Tensor& tensor) { return tensor.clone(); }

at::Tensor SelfCommunicator::reduce_scatter(const at::Tensor& tensor, ReduceOp op) { return tensor.clone(); }

at::Tensor SelfCommunicator::all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                          const std::vector<int64_t>& recv_counts) {
  check_all_to_all_counts(*this, input, send_counts, recv_counts);
  L4_CHECK(send_counts[0] == recv_counts[0], "all_to_all_v on one rank: sends {} rows to itself but expects {}",
           send_counts[0], recv_counts[0]);
  return input.clone();
}

void SelfCommunicator::broadcast(at::Tensor& tensor, int root) {
  L4_CHECK(root == 0, "broadcast root {} out of range for a single rank", root);
}

void SelfCommunicator::abort(int code) { std::_Exit(code); }

std::unique_ptr<Communicator> SelfCommunicator::split(int color, int key) {
  if (color < 0) return nullptr;
  return std::make_unique<SelfCommunicator>();
}

}  // namespace l4::parallel
