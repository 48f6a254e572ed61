// The sharded HF writer (pieces streamed into planned shards, index), the shard size parser and the
// output-inside-input refusal.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include "checkpoint/weight_source.h"
#include "common/temp_dir.h"
#include "core/error.h"
#include "restore/sharded_writer.h"

namespace l4::restore {
namespace {

namespace fs = std::filesystem;

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const l4::Error& e) {
    return e.what();
  }
  return "";
}

TEST(ShardedWriterTest, ParsesSizesAsTransformersWritesThem) {
  EXPECT_EQ(parse_shard_size("5GB", "--s"), 5'000'000'000LL);
  EXPECT_EQ(parse_shard_size("500MB", "--s"), 500'000'000LL);
  EXPECT_EQ(parse_shard_size("2GiB", "--s"), 2LL << 30);
  EXPECT_EQ(parse_shard_size("10kb", "--s"), 10'000LL);
  EXPECT_EQ(parse_shard_size("4096", "--s"), 4096LL);
  for (const char* bad : {"", "GB", "5 GB", "5TB", "-5GB", "0", "1.5GB"}) {
    const std::string message = error_of([&] { parse_shard_size(bad, "merge-lora --max-shard-size"); });
    EXPECT_NE(message.find("merge-lora --max-shard-size"), std::string::npos) << bad << ": " << message;
  }
}

TEST(ShardedWriterTest, RefusesAnOutputInsideTheInput) {
  l4::testing::TempDir dir;
  const std::string base = dir.path() + "/base";
  fs::create_directories(base);
  for (const std::string out : {base, base + "/", base + "/merged", base + "/../base/x"}) {
    const std::string message =
        error_of([&] { check_output_outside(out, base, "the base model directory"); });
    EXPECT_NE(message.find("the base model directory " + base), std::string::npos) << out << ": " << message;
  }
  EXPECT_EQ(error_of([&] { check_output_outside(dir.path() + "/base2", base, "b"); }), "");
  EXPECT_EQ(error_of([&] { check_output_outside(dir.path(), base, "b"); }), "");
  EXPECT_EQ(error_of([&] { check_output_outside(base, "", "b"); }), "");
}

TEST(ShardedWriterTest, WritesPiecesIntoShardsWithAnIndex) {
  l4::testing::TempDir dir;
  torch::manual_seed(0);
  std::map<std::string, at::Tensor> tensors = {{"a", at::randn({4, 8}).to(at::kBFloat16)},
                                               {"b", at::randn({3, 2, 8})},
                                               {"c", at::randn({5})},
                                               {"d", at::randn({16, 8}).to(at::kBFloat16)}};
  std::vector<PlannedTensor> plan;
  for (const auto& [name, t] : tensors)
    plan.push_back({name, checkpoint::dtype_of(t.scalar_type()), t.sizes().vec()});
  // Row pieces of two rows (the writer must stitch them), whole tensors for 1-D ones.
  auto produce = [&](const PlannedTensor& p, const TensorSink& sink) {
    const at::Tensor t = tensors.at(p.name);
    if (t.dim() < 2) return sink(t);
    const at::Tensor m = t.reshape({-1, t.size(-1)});
    for (int64_t r = 0; r < m.size(0); r += 2) sink(m.slice(0, r, std::min<int64_t>(m.size(0), r + 2)));
  };
  // a: 64 B, b: 192 B, c: 20 B, d: 256 B -> shards {a}, {b, c}, {d} at 220 bytes.
  const std::string out = dir.path() + "/out";
  write_sharded_model(out, plan, produce, 220);
  EXPECT_TRUE(fs::exists(out + "/model-00003-of-00003.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  std::ifstream in(out + "/model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(in);
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), 64 + 192 + 20 + 256);
  EXPECT_EQ(index["weight_map"]["c"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["d"], "model-00003-of-00003.safetensors");
  const auto source = checkpoint::WeightSource::open_dir(out);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(source.load(name).equal(t)) << name;

  // Everything fits: a single model.safetensors, the old shards and index removed.
  write_sharded_model(out, plan, produce, 5'000'000'000LL);
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(out + "/model-00001-of-00003.safetensors"));
  const auto single = checkpoint::WeightSource::open_dir(out);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(single.load(name).equal(t)) << name;
}

}  // namespace
}  // namespace l4::restore
