// Communicator: collective operations over tensors, independent of the transport (MPI for CPU tensors,
// NCCL for CUDA tensors). Every method is a collective: all ranks of the communicator must call it in
// the same order with matching shapes, or the job hangs (the watchdog in failure.h turns that hang into
// an abort).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace l4::parallel {

enum class ReduceOp { kSum, kMax, kMin, kAvg };

const char* reduce_op_name(ReduceOp op);

// Handle to a collective started by an *_async call; wait() completes it (and applies any finishing
// step such as the division of kAvg). Destroying an unwaited handle waits.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // A short name for messages ("world", "ep", "edp").
  virtual std::string name() const = 0;

  // In place. kAvg is defined for floating-point tensors only.
  virtual void all_reduce(at::Tensor& tensor, ReduceOp op) = 0;
  // Starts an all-reduce of `tensor` in place; the result is valid after wait(). The default runs the
  // blocking all_reduce and returns a finished handle.
  virtual std::unique_ptr<Work> all_reduce_async(at::Tensor& tensor, ReduceOp op);
  // Every rank contributes a tensor of the same shape; the result concatenates them along dim 0 in rank
  // order.
  virtual at::Tensor all_gather(const at::Tensor& tensor) = 0;
  // `tensor` has size() * n rows; rank r receives rows [r*n, (r+1)*n) of the reduction.
  virtual at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op) = 0;
  // Reduce-scatter with a count per rank: `input` is 1-D with sum(counts) elements on every rank; rank r
  // receives elements [counts[0] + ... + counts[r-1], ... + counts[r]) of the reduction into `output`
  // (1-D, counts[rank()] elements, `input`'s dtype), valid after wait(). Both tensors must stay alive
  // until then. The default all-reduces a copy of the whole input (correct everywhere, not frugal).
  virtual std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& input, const std::vector<int64_t>& counts,
                                                       at::Tensor& output, ReduceOp op);
  // Sends rows of `input` (dim 0) to every rank: the first send_counts[0] rows to rank 0, the next
  // send_counts[1] rows to rank 1, ...; receives recv_counts[s] rows from rank s, concatenated in source
  // order. Trailing dimensions and dtype equal on all ranks. Returns the received tensor.
  virtual at::Tensor all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                  const std::vector<int64_t>& recv_counts) = 0;
  // In place: every rank ends with root's values.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;
  // Terminates every process of the job (not only this communicator's) with `code`. Never returns.
  [[noreturn]] virtual void abort(int code) = 0;
  // Collective: ranks with the same color form a new communicator, ordered by (key, rank). A negative
  // color returns nullptr (the rank joins no group).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// A handle with nothing left to wait for (collectives that completed, or that the device stream orders).
std::unique_ptr<Work> finished_work();

// A communicator of one rank (single-process runs without MPI): every collective is the identity.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "self"; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor) override;
  at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                          const std::vector<int64_t>& recv_counts) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override {}
  [[noreturn]] void abort(int code) override;
  std::unique_ptr<Communicator> split(int color, int key) override;
};

// Checks shared by the implementations (throw l4::Error naming the communicator and the operation).
// reduce_scatter_v_async's counts and tensors; returns this rank's offset into the input.
int64_t check_reduce_scatter_v(const Communicator& comm, const at::Tensor& input, const std::vector<int64_t>& counts,
                               const at::Tensor& output);
void check_all_to_all_counts(const Communicator& comm, const at::Tensor& input,
                             const std::vector<int64_t>& send_counts, const std::vector<int64_t>& recv_counts);

}  // namespace l4::parallel
