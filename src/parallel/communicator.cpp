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

std::unique_ptr<Work> finished_work() { return std::make_unique<DoneWork>(); }

std::unique_ptr<Work> Communicator::all_reduce_async(at::Tensor& tensor, ReduceOp op) {
  all_reduce(tensor, op);
  return finished_work();
}

std::unique_ptr<Work> Communicator::reduce_scatter_v_async(const at::Tensor& input,
                                                           const std::vector<int64_t>& counts, at::Tensor& output,
                                                           ReduceOp op) {
  const int64_t offset = check_reduce_scatter_v(*this, input, counts, output);
  at::Tensor reduced = input.clone();
  all_reduce(reduced, op);
  output.copy_(reduced.narrow(0, offset, counts[static_cast<size_t>(rank())]));
  return finished_work();
}

int64_t check_reduce_scatter_v(const Communicator& comm, const at::Tensor& input, const std::vector<int64_t>& counts,
                               const at::Tensor& output) {
  L4_CHECK(counts.size() == static_cast<size_t>(comm.size()),
           "reduce_scatter_v on communicator '{}': {} counts for {} ranks", comm.name(), counts.size(), comm.size());
  int64_t total = 0, offset = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    L4_CHECK(counts[r] >= 0, "reduce_scatter_v on communicator '{}': negative count for rank {}", comm.name(), r);
    if (static_cast<int>(r) == comm.rank()) offset = total;
    total += counts[r];
  }
  L4_CHECK(input.defined() && input.dim() == 1 && input.numel() == total,
           "reduce_scatter_v on communicator '{}': input must be 1-D with {} elements (the counts' sum), got {} dims of {} elements",
           comm.name(), total, input.defined() ? input.dim() : 0, input.defined() ? input.numel() : 0);
  const int64_t mine = counts[static_cast<size_t>(comm.rank())];
  L4_CHECK(output.defined() && output.dim() == 1 && output.numel() == mine &&
               output.scalar_type() == input.scalar_type() && output.is_contiguous(),
           "reduce_scatter_v on communicator '{}': output must be a contiguous 1-D {} tensor of {} elements",
           comm.name(), c10::toString(input.scalar_type()), mine);
  return offset;
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
