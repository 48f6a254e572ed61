#include "parallel/mpi_communicator.h"

#include <torch/torch.h>

#include <climits>
#include <cstdlib>

#include "core/error.h"
#include "parallel/failure.h"

namespace l4::parallel {
namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  L4_FAIL("{} failed: {}", what, std::string(text, length));
}

bool is_16bit_float(at::ScalarType type) { return type == at::kBFloat16 || type == at::kHalf; }

// The MPI type used for reductions; 16-bit floats are widened before they get here.
MPI_Datatype reduce_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kInt: return MPI_INT32_T;
    case at::kByte: return MPI_UINT8_T;
    default: break;
  }
  L4_FAIL("MPI reductions support float32, float64, bfloat16, float16, int64, int32 and uint8, not {}", c10::toString(type));
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

int checked_int(int64_t value, const char* what) {
  L4_CHECK(value >= 0 && value <= INT_MAX, "{}: {} exceeds the MPI count limit", what, value);
  return static_cast<int>(value);
}

int64_t nbytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// A contiguous MPI type of `bytes` bytes: counts stay in rows, far from INT_MAX.
class RowType {
 public:
  explicit RowType(int64_t bytes) {
    check_mpi(MPI_Type_contiguous(checked_int(bytes, "row size in bytes"), MPI_BYTE, &type_),
              "MPI_Type_contiguous");
    check_mpi(MPI_Type_commit(&type_), "MPI_Type_commit");
  }
  ~RowType() { MPI_Type_free(&type_); }
  MPI_Datatype get() const { return type_; }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
};

// What a nonblocking collective reads until it completes: MPI must find its send buffer and count array
// unchanged until MPI_Wait.
struct PendingInputs {
  at::Tensor send;
  std::vector<int> counts;
};

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request request, at::Tensor buffer, at::Tensor target, double scale,
          std::shared_ptr<CollectiveWatchdog> watchdog, std::string comm_name, std::vector<int> members,
          PendingInputs inputs = {})
      : request_(request),
        buffer_(std::move(buffer)),
        target_(std::move(target)),
        scale_(scale),
        watchdog_(std::move(watchdog)),
        comm_name_(std::move(comm_name)),
        members_(std::move(members)),
        inputs_(std::move(inputs)) {}
  ~MpiWork() override {
    // A destructor must not throw; an unwaited failed request has nobody left to tell.
    if (!done_) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (done_) return;
    {
      CollectiveWatchdog::Scope scope(watchdog_.get(), "all_reduce (async wait)", comm_name_, &members_);
      check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    }
    done_ = true;
    inputs_ = {};
    at::NoGradGuard no_grad;
    if (scale_ != 1.0) buffer_.mul_(scale_);
    if (!buffer_.is_same(target_)) target_.copy_(buffer_);
  }

 private:
  MPI_Request request_;
  at::Tensor buffer_;
  at::Tensor target_;
  double scale_;
  std::shared_ptr<CollectiveWatchdog> watchdog_;
  std::string comm_name_;
  std::vector<int> members_;
  PendingInputs inputs_;
  bool done_ = false;
};

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned, std::string name,
                                 std::shared_ptr<CollectiveWatchdog> watchdog)
    : comm_(comm), owned_(owned), name_(std::move(name)), watchdog_(std::move(watchdog)) {
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  // The world ranks of this communicator's members, for the watchdog's "ranks that did not arrive".
  MPI_Group group, world;
  check_mpi(MPI_Comm_group(comm_, &group), "MPI_Comm_group");
  check_mpi(MPI_Comm_group(MPI_COMM_WORLD, &world), "MPI_Comm_group");
  std::vector<int> mine(static_cast<size_t>(size_));
  for (int i = 0; i < size_; ++i) mine[static_cast<size_t>(i)] = i;
  world_ranks_.resize(static_cast<size_t>(size_));
  check_mpi(MPI_Group_translate_ranks(group, size_, mine.data(), world, world_ranks_.data()),
            "MPI_Group_translate_ranks");
  MPI_Group_free(&group);
  MPI_Group_free(&world);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && !finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::check_cpu(const at::Tensor& tensor, const char* op) const {
  L4_CHECK(tensor.defined(), "{} on communicator '{}': undefined tensor", op, name_);
  L4_CHECK(tensor.device().is_cpu(), "{} on MPI communicator '{}' needs a CPU tensor, got one on {}", op, name_,
           tensor.device().str());
}

void MpiCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  all_reduce_async(tensor, op)->wait();
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(at::Tensor& tensor, ReduceOp op) {
  check_cpu(tensor, "all_reduce");
  const bool floating = at::isFloatingType(tensor.scalar_type());
  L4_CHECK(op != ReduceOp::kAvg || floating, "all_reduce avg on communicator '{}' needs a floating-point tensor, got {}",
           name_, c10::toString(tensor.scalar_type()));
  at::NoGradGuard no_grad;
  // The buffer MPI works on: the tensor itself when possible, else a contiguous (and for 16-bit floats,
  // float32) copy written back by wait().
  at::Tensor buffer = tensor;
  if (is_16bit_float(tensor.scalar_type())) {
    buffer = tensor.to(at::kFloat).contiguous();
  } else if (!tensor.is_contiguous()) {
    buffer = tensor.contiguous();
  }
  const double scale = op == ReduceOp::kAvg ? 1.0 / size_ : 1.0;
  MPI_Request request;
  {
    CollectiveWatchdog::Scope scope(watchdog_.get(), "all_reduce", name_, &world_ranks_);
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buffer.data_ptr(), checked_int(buffer.numel(), "all_reduce elements"),
                             reduce_type(buffer.scalar_type()), mpi_op(op), comm_, &request),
              "MPI_Iallreduce");
  }
  return std::make_unique<MpiWork>(request, buffer, tensor, scale, watchdog_, name_, world_ranks_);
}

at::Tensor MpiCommunicator::all_gather(const at::Tensor& tensor) {
  check_cpu(tensor, "all_gather");
  L4_CHECK(tensor.dim() >= 1, "all_gather on communicator '{}' needs a tensor with a row dimension", name_);
  const at::Tensor input = tensor.contiguous();
  auto shape = input.sizes().vec();
  shape[0] *= size_;
  at::Tensor output = input.new_empty(shape);
  const int bytes = checked_int(nbytes(input), "all_gather bytes per rank");
  CollectiveWatchdog::Scope scope(watchdog_.get(), "all_gather", name_, &world_ranks_);
  check_mpi(MPI_Allgather(input.data_ptr(), bytes, MPI_BYTE, output.data_ptr(), bytes, MPI_BYTE, comm_),
            "MPI_Allgather");
  return output;
}

at::Tensor MpiCommunicator::reduce_scatter(const at::Tensor& tensor, ReduceOp op) {
  check_cpu(tensor, "reduce_scatter");
  L4_CHECK(tensor.dim() >= 1 && tensor.size(0) % size_ == 0,
           "reduce_scatter on communicator '{}': dim 0 ({}) must be a multiple of the {} ranks", name_,
           tensor.dim() >= 1 ? tensor.size(0) : 0, size_);
  L4_CHECK(op != ReduceOp::kAvg || at::isFloatingType(tensor.scalar_type()),
           "reduce_scatter avg on communicator '{}' needs a floating-point tensor", name_);
  at::NoGradGuard no_grad;
  const bool widen = is_16bit_float(tensor.scalar_type());
  const at::Tensor input = widen ? tensor.to(at::kFloat).contiguous() : tensor.contiguous();
  auto shape = input.sizes().vec();
  shape[0] /= size_;
  at::Tensor output = input.new_empty(shape);
  {
    CollectiveWatchdog::Scope scope(watchdog_.get(), "reduce_scatter", name_, &world_ranks_);
    check_mpi(MPI_Reduce_scatter_block(input.data_ptr(), output.data_ptr(),
                                       checked_int(output.numel(), "reduce_scatter elements"),
                                       reduce_type(input.scalar_type()), mpi_op(op), comm_),
              "MPI_Reduce_scatter_block");
  }
  if (op == ReduceOp::kAvg) output.div_(size_);
  return widen ? output.to(tensor.scalar_type()) : output;
}

std::unique_ptr<Work> MpiCommunicator::reduce_scatter_v_async(const at::Tensor& input,
                                                              const std::vector<int64_t>& counts, at::Tensor& output,
                                                              ReduceOp op) {
  check_cpu(input, "reduce_scatter_v");
  check_cpu(output, "reduce_scatter_v");
  check_reduce_scatter_v(*this, input, counts, output);
  L4_CHECK(op != ReduceOp::kAvg || at::isFloatingType(input.scalar_type()),
           "reduce_scatter_v avg on communicator '{}' needs a floating-point tensor", name_);
  at::NoGradGuard no_grad;
  // 16-bit floats are reduced in float32 (see the header) and rounded into `output` by wait().
  const bool widen = is_16bit_float(input.scalar_type());
  PendingInputs pending;
  pending.send = widen ? input.to(at::kFloat).contiguous() : input.contiguous();
  for (int64_t c : counts) pending.counts.push_back(checked_int(c, "reduce_scatter_v elements"));
  at::Tensor buffer = widen ? at::empty({output.numel()}, output.options().dtype(at::kFloat)) : output;
  MPI_Request request;
  {
    CollectiveWatchdog::Scope scope(watchdog_.get(), "reduce_scatter_v", name_, &world_ranks_);
    check_mpi(MPI_Ireduce_scatter(pending.send.data_ptr(), buffer.data_ptr(), pending.counts.data(),
                                  reduce_type(pending.send.scalar_type()), mpi_op(op), comm_, &request),
              "MPI_Ireduce_scatter");
  }
  const double scale = op == ReduceOp::kAvg ? 1.0 / size_ : 1.0;
  return std::make_unique<MpiWork>(request, buffer, output, scale, watchdog_, name_, world_ranks_,
                                   std::move(pending));
}

at::Tensor MpiCommunicator::all_to_all_v(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                         const std::vector<int64_t>& recv_counts) {
  check_cpu(input, "all_to_all_v");
  check_all_to_all_counts(*this, input, send_counts, recv_counts);
  const at::Tensor in = input.contiguous();
  auto shape = in.sizes().vec();
  int64_t total_recv = 0;
  for (int64_t c : recv_counts) total_recv += c;
  shape[0] = total_recv;
  at::Tensor output = in.new_empty(shape);
  int64_t row_elems = 1;
  for (size_t d = 1; d < shape.size(); ++d) row_elems *= shape[d];
  const int64_t row_bytes = row_elems * static_cast<int64_t>(in.element_size());
  std::vector<int> scounts(size_), sdispls(size_), rcounts(size_), rdispls(size_);
  int64_t soff = 0, roff = 0;
  for (int i = 0; i < size_; ++i) {
    scounts[i] = checked_int(send_counts[i], "all_to_all_v rows");
    rcounts[i] = checked_int(recv_counts[i], "all_to_all_v rows");
    sdispls[i] = checked_int(soff, "all_to_all_v row offset");
    rdispls[i] = checked_int(roff, "all_to_all_v row offset");
    soff += send_counts[i];
    roff += recv_counts[i];
  }
  CollectiveWatchdog::Scope scope(watchdog_.get(), "all_to_all_v", name_, &world_ranks_);
  if (row_bytes == 0) {
    // Nothing to move, but peers still enter the collective: keep the call order identical.
    check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
    return output;
  }
  RowType row(row_bytes);
  check_mpi(MPI_Alltoallv(in.data_ptr(), scounts.data(), sdispls.data(), row.get(), output.data_ptr(),
                          rcounts.data(), rdispls.data(), row.get(), comm_),
            "MPI_Alltoallv");
  return output;
}

void MpiCommunicator::broadcast(at::Tensor& tensor, int root) {
  check_cpu(tensor, "broadcast");
  L4_CHECK(root >= 0 && root < size_, "broadcast on communicator '{}': root {} out of range [0, {})", name_, root,
           size_);
  at::NoGradGuard no_grad;
  at::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();
  {
    CollectiveWatchdog::Scope scope(watchdog_.get(), "broadcast", name_, &world_ranks_);
    check_mpi(MPI_Bcast(buffer.data_ptr(), checked_int(nbytes(buffer), "broadcast bytes"), MPI_BYTE, root, comm_),
              "MPI_Bcast");
  }
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void MpiCommunicator::barrier() {
  CollectiveWatchdog::Scope scope(watchdog_.get(), "barrier", name_, &world_ranks_);
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

void MpiCommunicator::abort(int code) {
  // MPI_Abort on any communicator ends the whole job under Open MPI; use the world to be explicit.
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm child = MPI_COMM_NULL;
  {
    CollectiveWatchdog::Scope scope(watchdog_.get(), "split", name_, &world_ranks_);
    check_mpi(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &child), "MPI_Comm_split");
  }
  if (child == MPI_COMM_NULL) return nullptr;
  return std::make_unique<MpiCommunicator>(child, true, fmt::format("{}.{}", name_, color), watchdog_);
}

}  // namespace l4::parallel
