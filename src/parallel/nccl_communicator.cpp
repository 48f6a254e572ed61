#include "parallel/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <cstdlib>

#include "core/error.h"
#include "parallel/mpi_communicator.h"

#if defined(L4_NCCL_TORCH_CUDA)
#include <c10/cuda/CUDAStream.h>
#endif

namespace l4::parallel {
namespace {

void check_nccl(ncclResult_t rc, const char* what) {
  if (rc == ncclSuccess) return;
  L4_FAIL("{} failed: {}", what, ncclGetErrorString(rc));
}

void check_cuda(cudaError_t rc, const char* what) {
  if (rc == cudaSuccess) return;
  L4_FAIL("{} failed: {}", what, cudaGetErrorString(rc));
}

cudaStream_t stream_for(int device) {
#if defined(L4_NCCL_TORCH_CUDA)
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
#else
  // Without a CUDA LibTorch no CUDA tensor can exist; this variant only proves that the code compiles
  // and links against NCCL and the CUDA runtime.
  (void)device;
  return nullptr;
#endif
}

ncclDataType_t nccl_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kBFloat16: return ncclBfloat16;
    case at::kHalf: return ncclFloat16;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kByte: return ncclUint8;
    case at::kBool: return ncclUint8;
    default: break;
  }
  L4_FAIL("NCCL communicator: unsupported dtype {}", c10::toString(type));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kAvg: return ncclAvg;
  }
  return ncclSum;
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cudaGetDevice(&previous_);
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace

std::unique_ptr<NcclCommunicator> NcclCommunicator::create(MpiCommunicator& bootstrap, int device, std::string name) {
  ncclUniqueId id;
  if (bootstrap.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  L4_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, bootstrap.handle()) == MPI_SUCCESS,
           "broadcasting the NCCL unique id over MPI failed");
  DeviceGuard guard(device);
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()), "ncclCommInitRank");
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, device, std::move(name)));
}

NcclCommunicator::NcclCommunicator(ncclComm* comm, int device, std::string name)
    : comm_(comm), device_(device), name_(std::move(name)) {
  check_nccl(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
  check_nccl(ncclCommCount(comm_, &size_), "ncclCommCount");
  DeviceGuard guard(device_);
  check_cuda(cudaMalloc(&scratch_, sizeof(float)), "cudaMalloc");
}

NcclCommunicator::~NcclCommunicator() {
  DeviceGuard guard(device_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

void NcclCommunicator::check_tensor(const at::Tensor& tensor, const char* op) const {
  L4_CHECK(tensor.defined() && tensor.is_cuda() && tensor.get_device() == device_,
           "{} on NCCL communicator '{}' needs a tensor on cuda:{}", op, name_, device_);
}

void NcclCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce");
  L4_CHECK(op != ReduceOp::kAvg || at::isFloatingType(tensor.scalar_type()),
           "all_reduce avg on communicator '{}' needs a floating-point tensor", name_);
  at::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();
  DeviceGuard guard(device_);
  check_nccl(ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), buffer.numel(), nccl_type(buffer.scalar_type()),
                           nccl_op(op), comm_, stream_for(device_)),
             "ncclAllReduce");
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

at::Tensor NcclCommunicator::all_gather(const at::Tensor& tensor) {
  check_tensor(tensor, "all_gather");
  const at::Tensor input = tensor.contiguous();
  auto shape = input.sizes().vec();
  shape[0] *= size_;
  at::Tensor output = input.new_empty(shape);
  DeviceGuard guard(device_);
  check_nccl(ncclAllGather(input.data_ptr(), output.data_ptr(), input.numel(), nccl_type(input.scalar_type()), comm_,
                           stream_for(device_)),
             "ncclAllGather");
  return output;
}

at::Tensor NcclCommunicator::reduce_scatter(const at::Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "reduce_scatter");
  L4_CHECK(tensor.dim() >= 1 && tensor.size(0) % size_ == 0,
           "reduce_scatter on communicator '{}': dim 0 must be a multiple of the {} ranks", name_, size_);
  const at::Tensor input = tensor.contiguous();
  auto shape = input.sizes().vec();
  shape[0] /= size_;
  at::Tensor output = input.new_empty(shape);
  DeviceGuard guard(device_);
  check_nccl(ncclReduceScatter(input.data_ptr(), output.data_ptr(), output.numel(), nccl_type(input.scalar_type()),
                               nccl_op(op), comm_, stream_for(device_)),
             "ncclReduceScatter");
  return output;
}

std::unique_ptr<Work> NcclCommunicator::reduce_scatter_v_async(const at::Tensor& input,
                                                               const std::vector<int64_t>& counts,
                                                               at::Tensor& output, ReduceOp op) {
  check_tensor(input, "reduce_scatter_v");
  check_tensor(output, "reduce_scatter_v");
  check_reduce_scatter_v(*this, input, counts, output);
  const at::Tensor in = input.contiguous();
  const ncclDataType_t type = nccl_type(in.scalar_type());
  const auto* send = static_cast<const char*>(in.data_ptr());
  const int64_t elem = in.element_size();
  DeviceGuard guard(device_);
  cudaStream_t stream = stream_for(device_);
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  int64_t offset = 0;
  for (int root = 0; root < size_; ++root) {
    const int64_t count = counts[static_cast<size_t>(root)];
    if (count > 0) {
      void* recv = root == rank_ ? output.data_ptr() : nullptr;  // only the root's receive buffer is used
      check_nccl(ncclReduce(send + offset * elem, recv, count, type, nccl_op(op), root, comm_, stream), "ncclReduce");
    }
    offset += count;
  }
  check_nccl(ncclGroupEnd(), "ncclGroupEnd");
  return finished_work();
}

at::Tensor NcclCommunicator::all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                          const std::vector<int64_t>& recv_counts) {
  check_tensor(input, "all_to_all_v");
  check_all_to_all_counts(*this, input, send_counts, recv_counts);
  const at::Tensor in = input.contiguous();
  auto shape = in.sizes().vec();
  int64_t total = 0;
  for (int64_t c : recv_counts) total += c;
  shape[0] = total;
  at::Tensor output = in.new_empty(shape);
  int64_t row = 1;
  for (size_t d = 1; d < shape.size(); ++d) row *= shape[d];
  const size_t elem = in.element_size();
  const ncclDataType_t type = nccl_type(in.scalar_type());
  cudaStream_t stream = stream_for(device_);
  auto* send = static_cast<char*>(in.data_ptr());
  auto* recv = static_cast<char*>(output.data_ptr());
  DeviceGuard guard(device_);
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  int64_t soff = 0, roff = 0;
  for (int peer = 0; peer < size_; ++peer) {
    if (send_counts[peer] > 0) {
      check_nccl(ncclSend(send + soff * row * elem, send_counts[peer] * row, type, peer, comm_, stream), "ncclSend");
    }
    if (recv_counts[peer] > 0) {
      check_nccl(ncclRecv(recv + roff * row * elem, recv_counts[peer] * row, type, peer, comm_, stream), "ncclRecv");
    }
    soff += send_counts[peer];
    roff += recv_counts[peer];
  }
  check_nccl(ncclGroupEnd(), "ncclGroupEnd");
  return output;
}

void NcclCommunicator::broadcast(at::Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast");
  L4_CHECK(root >= 0 && root < size_, "broadcast on communicator '{}': root {} out of range", name_, root);
  at::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();
  DeviceGuard guard(device_);
  check_nccl(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(), buffer.numel(), nccl_type(buffer.scalar_type()), root,
                           comm_, stream_for(device_)),
             "ncclBroadcast");
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void NcclCommunicator::barrier() {
  DeviceGuard guard(device_);
  cudaStream_t stream = stream_for(device_);
  check_nccl(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream), "ncclAllReduce (barrier)");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

void NcclCommunicator::abort(int code) {
  if (comm_ != nullptr) ncclCommAbort(comm_);
  comm_ = nullptr;
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  ncclComm_t child = nullptr;
  DeviceGuard guard(device_);
  check_nccl(ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, nullptr), "ncclCommSplit");
  if (child == nullptr) return nullptr;
  return std::unique_ptr<Communicator>(new NcclCommunicator(child, device_, fmt::format("{}.{}", name_, color)));
}

}  // namespace l4::parallel
