// MpiCommunicator collectives for every supported dtype against values each rank computes locally.
#include <gtest/gtest.h>

#include "core/error.h"
#include "mpi/mpi_test_util.h"

namespace l4::parallel {
namespace {

using testing::world;

class CollectivesByDtype : public ::testing::TestWithParam<at::ScalarType> {};

at::Tensor as(const at::Tensor& t, at::ScalarType type) { return t.to(type); }

TEST_P(CollectivesByDtype, AllReduceSumMaxMinAvg) {
  Communicator& comm = world();
  const at::ScalarType type = GetParam();
  const int w = comm.size(), r = comm.rank();
  const at::Tensor base = torch::arange(5, torch::kDouble);
  at::Tensor sum = as(base + r, type), mx = as(base + 2 * r, type), mn = as(base + 2 * r, type);
  comm.all_reduce(sum, ReduceOp::kSum);
  comm.all_reduce(mx, ReduceOp::kMax);
  comm.all_reduce(mn, ReduceOp::kMin);
  EXPECT_TRUE(torch::equal(sum, as(base * w + w * (w - 1) / 2, type)));
  EXPECT_TRUE(torch::equal(mx, as(base + 2 * (w - 1), type)));
  EXPECT_TRUE(torch::equal(mn, as(base, type)));
  if (at::isFloatingType(type)) {
    at::Tensor avg = as(base + r, type);
    comm.all_reduce(avg, ReduceOp::kAvg);
    EXPECT_TRUE(torch::equal(avg, as(base + (w - 1) / 2.0, type)));
    auto work_t = as(base + r, type);
    auto work = comm.all_reduce_async(work_t, ReduceOp::kSum);
    work->wait();
    EXPECT_TRUE(torch::equal(work_t, as(base * w + w * (w - 1) / 2, type)));
  } else {
    at::Tensor avg = as(base, type);
    EXPECT_THROW(comm.all_reduce(avg, ReduceOp::kAvg), l4::Error);  // refused before any communication
  }
}

TEST_P(CollectivesByDtype, AllGatherReduceScatterBroadcast) {
  Communicator& comm = world();
  const at::ScalarType type = GetParam();
  const int w = comm.size(), r = comm.rank();
  const at::Tensor gathered = comm.all_gather(as(torch::full({2, 3}, r + 1.0, torch::kDouble), type));
  std::vector<at::Tensor> parts;
  for (int s = 0; s < w; ++s) parts.push_back(torch::full({2, 3}, s + 1.0, torch::kDouble));
  EXPECT_TRUE(torch::equal(gathered, as(torch::cat(parts), type)));

  // Row i of rank s holds s + i; rank r gets rows [2r, 2r + 2) of the sum: w * i + w (w - 1) / 2.
  const at::Tensor rows = torch::arange(2 * w, torch::kDouble).unsqueeze(1).expand({2 * w, 3});
  const at::Tensor scattered = comm.reduce_scatter(as(rows + r, type), ReduceOp::kSum);
  const at::Tensor expected = rows.narrow(0, 2 * r, 2) * w + w * (w - 1) / 2;
  EXPECT_TRUE(torch::equal(scattered, as(expected, type)));

  at::Tensor b = as(torch::full({4}, r + 3.0, torch::kDouble), type);
  comm.broadcast(b, w - 1);
  EXPECT_TRUE(torch::equal(b, as(torch::full({4}, w + 2.0, torch::kDouble), type)));
}

TEST_P(CollectivesByDtype, AllToAllVUnevenCounts) {
  Communicator& comm = world();
  const at::ScalarType type = GetParam();
  const int w = comm.size(), r = comm.rank();
  // Rank s sends (s + 2d) % 3 rows to rank d (some zero), row k = [s*16 + d*4 + k, same + 1].
  auto count = [](int s, int d) { return static_cast<int64_t>((s + 2 * d) % 3); };
  auto rows_for = [&](int s, int d) {
    std::vector<at::Tensor> out;
    for (int64_t k = 0; k < count(s, d); ++k) {
      const double v = s * 16 + d * 4 + k;
      out.push_back(torch::tensor({v, v + 1}, torch::kDouble).unsqueeze(0));
    }
    return out;
  };
  std::vector<int64_t> send, recv;
  std::vector<at::Tensor> send_rows{torch::zeros({0, 2}, torch::kDouble)}, expected_rows{torch::zeros({0, 2}, torch::kDouble)};
  for (int p = 0; p < w; ++p) {
    send.push_back(count(r, p));
    recv.push_back(count(p, r));
    for (auto& t : rows_for(r, p)) send_rows.push_back(t);
    for (auto& t : rows_for(p, r)) expected_rows.push_back(t);
  }
  const at::Tensor out = comm.all_to_all_v(as(torch::cat(send_rows), type), send, recv);
  EXPECT_TRUE(torch::equal(out, as(torch::cat(expected_rows), type)));
}

TEST_P(CollectivesByDtype, ReduceScatterVUnevenCounts) {
  Communicator& comm = world();
  const at::ScalarType type = GetParam();
  const int w = comm.size(), r = comm.rank();
  // Rank q receives (q + 2) % 3 elements (some ranks none); element i of rank s's input is s + i.
  std::vector<int64_t> counts;
  int64_t total = 0, offset = 0;
  for (int q = 0; q < w; ++q) {
    counts.push_back((q + 2) % 3);
    if (q == r) offset = total;
    total += counts.back();
  }
  const at::Tensor index = torch::arange(total, torch::kDouble);
  at::Tensor output = at::empty({counts[static_cast<size_t>(r)]}, at::TensorOptions(type));
  auto work = comm.reduce_scatter_v_async(as(index + r, type), counts, output, ReduceOp::kSum);
  work->wait();
  const at::Tensor expected = index.narrow(0, offset, counts[static_cast<size_t>(r)]) * w + w * (w - 1) / 2;
  EXPECT_TRUE(torch::equal(output, as(expected, type)));
  at::Tensor wrong = at::empty({counts[static_cast<size_t>(r)] + 1}, at::TensorOptions(type));
  EXPECT_THROW(comm.reduce_scatter_v_async(as(index, type), counts, wrong, ReduceOp::kSum), l4::Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CollectivesByDtype,
                         ::testing::Values(at::kFloat, at::kBFloat16, at::kLong, at::kInt, at::kByte, at::kDouble),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

TEST(Communicator, Bf16SumRoundsOnce) {
  // Rank 0 adds 1, the others 2^-9 each. Summed in fp32 and rounded once, 4 ranks give bf16(1 + 3 * 2^-9)
  // = 1 + 2^-7; adding in bf16 from the 1 upwards would lose every 2^-9 (half an ulp at 1 is 2^-8).
  Communicator& comm = world();
  const double mine = comm.rank() == 0 ? 1.0 : std::ldexp(1.0, -9);
  at::Tensor t = torch::full({3}, mine, torch::kDouble).to(torch::kBFloat16);
  comm.all_reduce(t, ReduceOp::kSum);
  const double exact = 1.0 + (comm.size() - 1) * std::ldexp(1.0, -9);
  EXPECT_TRUE(torch::equal(t, torch::full({3}, exact, torch::kDouble).to(torch::kBFloat16)));
}

TEST(Communicator, NonContiguousInPlace) {
  Communicator& comm = world();
  const at::Tensor full = torch::arange(12, torch::kFloat).reshape({3, 4});
  at::Tensor base = full.clone();
  at::Tensor view = base.t();  // non-contiguous
  comm.all_reduce(view, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(base, full * comm.size()));
}

TEST(Communicator, SplitAndBarrier) {
  Communicator& comm = world();
  const int w = comm.size(), r = comm.rank();
  // Parity groups, ordered by descending world rank (key = -rank).
  std::unique_ptr<Communicator> sub = comm.split(r % 2, -r);
  std::unique_ptr<Communicator> none = comm.split(-1, 0);
  EXPECT_EQ(none, nullptr);
  int expected_size = 0, expected_rank = 0;
  int64_t expected_sum = 0;
  for (int q = 0; q < w; ++q) {
    if (q % 2 != r % 2) continue;
    ++expected_size;
    if (q > r) ++expected_rank;
    expected_sum += q;
  }
  EXPECT_EQ(sub->size(), expected_size);
  EXPECT_EQ(sub->rank(), expected_rank);
  at::Tensor t = torch::tensor({static_cast<int64_t>(r)});
  sub->all_reduce(t, ReduceOp::kSum);
  EXPECT_EQ(t.item<int64_t>(), expected_sum);
  sub->barrier();
  comm.barrier();
}

TEST(Communicator, BadArgumentsFailLocallyWithClearErrors) {
  Communicator& comm = world();
  const std::vector<int64_t> wrong(comm.size() + 1, 0);
  EXPECT_THROW(comm.all_to_all_v(torch::zeros({0, 2}), wrong, wrong), l4::Error);
  std::vector<int64_t> counts(comm.size(), 1);
  EXPECT_THROW(comm.all_to_all_v(torch::zeros({0, 2}), counts, counts), l4::Error);  // rows != sum of counts
  at::Tensor scalar = torch::zeros({1});
  EXPECT_THROW(comm.broadcast(scalar, comm.size()), l4::Error);
}

}  // namespace
}  // namespace l4::parallel
