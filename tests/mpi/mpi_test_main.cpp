// main() of the MPI GoogleTest binaries: initialises MPI (with a collective watchdog so a diverged test
// aborts instead of hanging), runs the tests on every rank, prints results from rank 0 and failures from
// every rank, and makes all ranks agree on the exit status.
#include <gtest/gtest.h>

#include <cstdio>

#include "parallel/communicator.h"
#include "parallel/mpi_runtime.h"

namespace {

// Replaces the default printer on ranks other than 0: only failed assertions, prefixed with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  l4::parallel::MpiRuntime& runtime = l4::parallel::init_distributed({/*collective_timeout_s=*/60.0});
  ::testing::InitGoogleTest(&argc, argv);
  if (runtime.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(runtime.rank()));
  }
  const int local = RUN_ALL_TESTS();
  at::Tensor status = torch::tensor({static_cast<int64_t>(local)});
  runtime.world().all_reduce(status, l4::parallel::ReduceOp::kMax);
  return status.item<int64_t>() != 0 ? 1 : 0;
}
