// Communicator over MPI for CPU tensors. Supported dtypes: float32, float64, bfloat16, float16, int64,
// int32, uint8 (and bool for data movement). Reductions of bfloat16/float16 run in float32 (the tensor is
// widened, reduced with MPI's native float ops and rounded back once): MPI has no 16-bit float type, and
// one rounding at the end is also more accurate than summing in 16 bits. Moves (gather, all-to-all,
// broadcast) send raw bytes, so they work for every dtype.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace l4::parallel {

class CollectiveWatchdog;

class MpiCommunicator final : public Communicator {
 public:
  // Wraps `comm`. When `owned`, MPI_Comm_free runs on destruction (unless MPI is already finalized).
  MpiCommunicator(MPI_Comm comm, bool owned, std::string name,
                  std::shared_ptr<CollectiveWatchdog> watchdog = nullptr);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  MPI_Comm handle() const { return comm_; }

  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  std::unique_ptr<Work> all_reduce_async(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor) override;
  at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op) override;
  std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& input, const std::vector<int64_t>& counts,
                                               at::Tensor& output, ReduceOp op) override;
  at::Tensor all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                          const std::vector<int64_t>& recv_counts) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  [[noreturn]] void abort(int code) override;
  // The child is named "<name>.<color>" unless renamed with set_name().
  std::unique_ptr<Communicator> split(int color, int key) override;
  void set_name(std::string name) { name_ = std::move(name); }

 private:
  void check_cpu(const at::Tensor& tensor, const char* op) const;

  MPI_Comm comm_;
  bool owned_;
  std::string name_;
  std::vector<int> world_ranks_;  // world rank of each member
  std::shared_ptr<CollectiveWatchdog> watchdog_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace l4::parallel
