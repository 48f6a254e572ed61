// Communicator over NCCL for CUDA tensors. The unique id is created by rank 0 and broadcast over MPI;
// collectives are enqueued on LibTorch's current CUDA stream of the tensor's device (so they order with
// the surrounding kernels without extra synchronisation) and return without waiting for the GPU.
// all_to_all_v is a grouped set of ncclSend/ncclRecv. Built only when NCCL is found (L4_HAVE_NCCL).
#pragma once

#include <memory>

#include "parallel/communicator.h"

struct ncclComm;  // from nccl.h (ncclComm_t is ncclComm*); kept out of this header

namespace l4::parallel {

class MpiCommunicator;

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap`: every rank passes the CUDA device it drives.
  static std::unique_ptr<NcclCommunicator> create(MpiCommunicator& bootstrap, int device, std::string name);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  int device() const { return device_; }

  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor) override;
  at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op) override;
  // A group of ncclReduce calls, one per rank with that rank as root (NCCL has no reduce-scatter with
  // counts); queued on the current stream, so the returned handle has nothing left to wait for.
  std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& input, const std::vector<int64_t>& counts,
                                               at::Tensor& output, ReduceOp op) override;
  at::Tensor all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                          const std::vector<int64_t>& recv_counts) override;
  void broadcast(at::Tensor& tensor, int root) override;
  // Synchronises the device stream after a one-element all-reduce: every rank has reached this point.
  void barrier() override;
  // ncclCommAbort (unblocks kernels waiting on dead peers), then MPI_Abort for the processes.
  [[noreturn]] void abort(int code) override;
  // ncclCommSplit.
  std::unique_ptr<Communicator> split(int color, int key) override;

 private:
  NcclCommunicator(ncclComm* comm, int device, std::string name);
  void check_tensor(const at::Tensor& tensor, const char* op) const;

  ncclComm* comm_ = nullptr;
  int device_ = 0;
  std::string name_;
  int rank_ = 0;
  int size_ = 1;
  void* scratch_ = nullptr;  // one float on the device, for barrier()
};

}  // namespace l4::parallel
