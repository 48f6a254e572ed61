// ZeroPartition: the ranks' ranges tile the flat space of the replicated parameters exactly once, and the
// pieces map each owned element to the right parameter element.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/error.h"
#include "parallel/zero_partition.h"

namespace l4::parallel {
namespace {

std::vector<at::Tensor> params() {
  return {at::arange(0, 6, at::kFloat).view({2, 3}), at::arange(6, 7, at::kFloat),
          at::arange(7, 17, at::kFloat).view({5, 2})};
}

TEST(ZeroPartitionTest, RangesTileTheFlatParametersOnce) {
  for (int world : {1, 2, 3, 4, 17, 20}) {
    at::Tensor seen = at::zeros({17}, at::kFloat);
    for (int rank = 0; rank < world; ++rank) {
      const ZeroPartition partition(params(), rank, world);
      EXPECT_EQ(partition.total(), 17);
      EXPECT_EQ(partition.chunk(), (17 + world - 1) / world);
      int64_t next = 0;
      std::vector<at::Tensor> per_piece;
      for (const auto& piece : partition.pieces()) {
        EXPECT_EQ(piece.shard_offset, next) << "pieces are in flat order without gaps";
        next += piece.length;
        const at::Tensor values =
            partition.params()[piece.param].reshape({-1}).narrow(0, piece.begin, piece.length);
        seen.narrow(0, partition.param_offset(piece.param) + piece.begin, piece.length).add_(1);
        per_piece.push_back(values);
      }
      // The chunk holds this rank's range of the flattened parameters (values are their flat indices).
      const at::Tensor chunk = partition.chunk_from_pieces(per_piece);
      const int64_t begin = rank * partition.chunk();
      for (int64_t j = 0; j < next; ++j) EXPECT_EQ(chunk[j].item<float>(), static_cast<float>(begin + j));
      const at::Tensor flat = partition.flatten(partition.params());
      EXPECT_EQ(flat.numel(), world * partition.chunk());
      EXPECT_TRUE(at::equal(flat.narrow(0, 0, 17), at::arange(0, 17, at::kFloat)));
      EXPECT_EQ(flat.narrow(0, 17, flat.numel() - 17).abs().sum().item<float>(), 0.0f) << "zero padding";
    }
    EXPECT_TRUE(at::equal(seen, at::ones({17}, at::kFloat))) << "world " << world;
  }
}

// The fp32 optimizer state and masters of bf16 parameters are gathered in fp32, not rounded to bf16.
TEST(ZeroPartitionTest, ChunkKeepsTheRequestedDtype) {
  std::vector<at::Tensor> bf16 = params();
  for (at::Tensor& p : bf16) p = p.to(at::kBFloat16);
  const ZeroPartition partition(bf16, 1, 2);
  std::vector<at::Tensor> per_piece;
  for (const auto& piece : partition.pieces()) per_piece.push_back(at::full({piece.length}, 1.0f + 1e-3f));
  EXPECT_EQ(partition.chunk_from_pieces(per_piece).scalar_type(), at::kBFloat16);
  const at::Tensor chunk = partition.chunk_from_pieces(per_piece, at::kFloat);
  ASSERT_EQ(chunk.scalar_type(), at::kFloat);
  EXPECT_EQ(chunk[0].item<float>(), 1.0f + 1e-3f) << "bf16 would round 1.001 to 1";
}

TEST(ZeroPartitionTest, MixedDtypesAreRefusedByName) {
  std::vector<at::Tensor> mixed = params();
  mixed[1] = mixed[1].to(at::kBFloat16);
  try {
    ZeroPartition(mixed, 0, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("optimizer.zero needs the replicated trainable parameters in one dtype"),
        std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace l4::parallel
