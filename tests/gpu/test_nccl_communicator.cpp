// NcclCommunicator at world size 1 on CUDA tensors: every collective the trainer and the expert dispatch
// use, for each dtype NCCL carries, against the values a single rank must end with, plus split, barrier,
// async all-reduce, and the clear error for a tensor on the wrong device. Bootstraps over MPI (a
// singleton: started directly, no mpirun needed).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "core/error.h"
#include "gpu/gpu_test_util.h"
#include "parallel/mpi_communicator.h"
#include "parallel/mpi_runtime.h"
#include "parallel/nccl_communicator.h"

namespace l4::parallel {
namespace {

NcclCommunicator& nccl_world() {
  static std::unique_ptr<NcclCommunicator> comm = [] {
    // A singleton Open MPI process without forking an orted (none may be installed on a GPU box).
    ::setenv("OMPI_MCA_ess_singleton_isolated", "1", /*overwrite=*/0);
    MpiRuntime& runtime = MpiRuntime::init();
    return NcclCommunicator::create(runtime.mpi_world(), /*device=*/0, "nccl");
  }();
  return *comm;
}

at::Tensor on_gpu(const at::Tensor& t, at::ScalarType type) { return t.to(torch::kCUDA, type); }
bool equal_on_cpu(const at::Tensor& got, const at::Tensor& want) {
  return got.is_cuda() && torch::equal(got.to(torch::kCPU), want.to(torch::kCPU).to(got.scalar_type()));
}

class NcclByDtype : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(NcclByDtype, AllReduceAllGatherReduceScatterBroadcast) {
  L4_SKIP_WITHOUT_CUDA();
  NcclCommunicator& comm = nccl_world();
  ASSERT_EQ(comm.size(), 1);
  ASSERT_EQ(comm.rank(), 0);
  const at::ScalarType type = GetParam();
  const at::Tensor base = torch::arange(6, torch::kDouble).reshape({2, 3});
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    at::Tensor t = on_gpu(base, type);
    comm.all_reduce(t, op);
    EXPECT_TRUE(equal_on_cpu(t, base)) << reduce_op_name(op);
  }
  if (at::isFloatingType(type)) {
    at::Tensor avg = on_gpu(base, type);
    comm.all_reduce(avg, ReduceOp::kAvg);
    EXPECT_TRUE(equal_on_cpu(avg, base));
    at::Tensor async = on_gpu(base + 1, type);
    comm.all_reduce_async(async, ReduceOp::kSum)->wait();
    EXPECT_TRUE(equal_on_cpu(async, base + 1));
  } else {
    at::Tensor avg = on_gpu(base, type);
    EXPECT_THROW(comm.all_reduce(avg, ReduceOp::kAvg), l4::Error);
  }
  // A non-contiguous tensor is reduced in place through a contiguous copy.
  at::Tensor square = on_gpu(torch::arange(9, torch::kDouble).reshape({3, 3}), type);
  at::Tensor view = square.t();
  comm.all_reduce(view, ReduceOp::kSum);
  EXPECT_TRUE(equal_on_cpu(square, torch::arange(9, torch::kDouble).reshape({3, 3})));

  EXPECT_TRUE(equal_on_cpu(comm.all_gather(on_gpu(base, type)), base));
  EXPECT_TRUE(equal_on_cpu(comm.reduce_scatter(on_gpu(base, type), ReduceOp::kSum), base));
  at::Tensor b = on_gpu(base, type);
  comm.broadcast(b, 0);
  EXPECT_TRUE(equal_on_cpu(b, base));
}

TEST_P(NcclByDtype, AllToAllVToItself) {
  L4_SKIP_WITHOUT_CUDA();
  NcclCommunicator& comm = nccl_world();
  const at::ScalarType type = GetParam();
  const at::Tensor rows = torch::arange(10, torch::kDouble).reshape({5, 2});
  EXPECT_TRUE(equal_on_cpu(comm.all_to_all_v(on_gpu(rows, type), {5}, {5}), rows));
  const at::Tensor none = comm.all_to_all_v(on_gpu(torch::zeros({0, 2}, torch::kDouble), type), {0}, {0});
  EXPECT_EQ(none.size(0), 0);
  EXPECT_THROW(comm.all_to_all_v(on_gpu(rows, type), {4}, {4}), l4::Error);  // rows != sum of counts
}

INSTANTIATE_TEST_SUITE_P(Dtypes, NcclByDtype,
                         ::testing::Values(at::kFloat, at::kBFloat16, at::kHalf, at::kDouble, at::kLong, at::kInt,
                                           at::kByte),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

TEST(Nccl, SplitBarrierAndWrongDevice) {
  L4_SKIP_WITHOUT_CUDA();
  NcclCommunicator& comm = nccl_world();
  EXPECT_EQ(comm.split(-1, 0), nullptr);
  std::unique_ptr<Communicator> sub = comm.split(0, 0);
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->size(), 1);
  at::Tensor t = torch::full({4}, 3.0, torch::TensorOptions().device(torch::kCUDA));
  sub->all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(equal_on_cpu(t, torch::full({4}, 3.0)));
  sub->barrier();
  comm.barrier();
  at::Tensor cpu = torch::ones({2});
  EXPECT_THROW(comm.all_reduce(cpu, ReduceOp::kSum), l4::Error);
}

}  // namespace
}  // namespace l4::parallel
