#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "checkpoint/weight_source.h"
#include "core/file_io.h"
#include "unit/checkpoint/test_util.h"

namespace l4::checkpoint {
namespace {

using testing::same_tensor;
using testing::TempDir;
using testing::throws_error_with;

std::vector<std::pair<std::string, at::Tensor>> tiny_weights() {
  torch::manual_seed(11);
  return {{"model.embed_tokens.weight", at::randn({8, 4}).to(at::kBFloat16)},  // 64 bytes
          {"model.layers.0.feed_forward.experts.gate_up_proj", at::randn({4, 4, 6})},  // 384 bytes
          {"model.layers.0.feed_forward.experts.down_proj", at::randn({4, 3, 4})},  // 192 bytes
          {"model.norm.weight", at::ones({4})},
          {"lm_head.weight", at::randn({8, 4})}};
}

std::vector<std::string> dir_listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(WeightSourceTest, SingleFileDirectory) {
  TempDir dir;
  const auto weights = tiny_weights();
  save_hf_weights(dir.path(), weights);
  EXPECT_EQ(dir_listing(dir.path()), std::vector<std::string>{"model.safetensors"});
  const WeightSource src = WeightSource::open_dir(dir.path());
  EXPECT_EQ(src.files().size(), 1u);
  EXPECT_EQ(src.files()[0]->metadata().at("format"), "pt");
  EXPECT_EQ(src.names().size(), weights.size());
  for (const auto& [name, t] : weights) EXPECT_TRUE(same_tensor(src.load(name), t)) << name;
  EXPECT_TRUE(throws_error_with([&] { src.load("model.norm.wieght"); },
                                {dir.path(), "model.norm.wieght", "did you mean 'model.norm.weight'"}));
  // A single .safetensors file works as a source too.
  EXPECT_EQ(WeightSource::open_dir(dir.file("model.safetensors")).names(), src.names());
}

TEST(WeightSourceTest, ShardedDirectoryWithIndex) {
  TempDir dir;
  const auto weights = tiny_weights();
  save_hf_weights(dir.path(), weights, /*max_shard_bytes=*/400);
  // In order: embed(64) | gate_up(384) | down(192)+norm(16)+lm_head(128).
  EXPECT_EQ(dir_listing(dir.path()),
            (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  const auto index = nlohmann::json::parse(read_file(dir.file("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"], 64 + 384 + 192 + 16 + 128);
  EXPECT_EQ(index["weight_map"]["model.layers.0.feed_forward.experts.gate_up_proj"],
            "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"].size(), weights.size());

  const WeightSource src = WeightSource::open_dir(dir.path());
  EXPECT_EQ(src.files().size(), 3u);
  for (const auto& [name, t] : weights) EXPECT_TRUE(same_tensor(src.load(name), t)) << name;
  EXPECT_EQ(src.file_of("lm_head.weight"), dir.file("model-00003-of-00003.safetensors"));
  EXPECT_EQ(src.entry("lm_head.weight").shape, (std::vector<int64_t>{8, 4}));
  // Expert rows of one rank under expert parallelism.
  EXPECT_TRUE(same_tensor(src.load_rows("model.layers.0.feed_forward.experts.gate_up_proj", 2, 4),
                          weights[1].second.slice(0, 2, 4)));
}

TEST(WeightSourceTest, ResavingRemovesStaleWeightFiles) {
  TempDir dir;
  const auto weights = tiny_weights();
  testing::write_all(dir.file("config.json"), "{}");
  save_hf_weights(dir.path(), weights, 400);
  save_hf_weights(dir.path(), weights, 100000);
  EXPECT_EQ(dir_listing(dir.path()), (std::vector<std::string>{"config.json", "model.safetensors"}));
  save_hf_weights(dir.path(), weights, 700);
  EXPECT_EQ(dir_listing(dir.path()),
            (std::vector<std::string>{"config.json", "model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors", "model.safetensors.index.json"}));
  const WeightSource src = WeightSource::open_dir(dir.path());
  for (const auto& [name, t] : weights) EXPECT_TRUE(same_tensor(src.load(name), t)) << name;
}

TEST(WeightSourceTest, OversizedTensorGetsItsOwnShard) {
  TempDir dir;
  save_hf_weights(dir.path(), {{"a", at::ones({2})}, {"big", at::ones({100})}, {"c", at::ones({2})}}, 64);
  const WeightSource src = WeightSource::open_dir(dir.path());
  EXPECT_EQ(src.files().size(), 3u);
  EXPECT_EQ(src.file_of("big"), dir.file("model-00002-of-00003.safetensors"));
}

TEST(WeightSourceTest, PrefersTheSingleFileLikeTransformers) {
  TempDir dir;
  save_hf_weights(dir.path(), {{"a", at::ones({2})}, {"b", at::ones({2})}}, 8);
  save_safetensors(dir.file("model.safetensors"), {{"only", at::ones({1})}});
  EXPECT_EQ(WeightSource::open_dir(dir.path()).names(), std::vector<std::string>{"only"});
}

class BadIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    save_hf_weights(dir_.path(), {{"a", at::ones({2})}, {"b", at::ones({2})}}, 8);
    index_ = dir_.file("model.safetensors.index.json");
  }
  ::testing::AssertionResult rejects(const std::string& index_text, const std::vector<std::string>& needles) {
    testing::write_all(index_, index_text);
    return throws_error_with([&] { WeightSource::open_dir(dir_.path()); }, needles);
  }
  TempDir dir_;
  std::string index_;
};

TEST_F(BadIndexTest, ErrorsNameTheIndexShardAndTensor) {
  EXPECT_TRUE(rejects("{", {index_, "JSON"}));
  EXPECT_TRUE(rejects(R"({"metadata":{}})", {index_, "weight_map"}));
  EXPECT_TRUE(rejects(R"({"weight_map":{"a":"../model-00001-of-00002.safetensors"}})", {index_, "'a'", "../"}));
  EXPECT_TRUE(rejects(R"({"weight_map":{"a":"/etc/passwd"}})", {index_, "'a'"}));
  EXPECT_TRUE(rejects(R"({"weight_map":{"a":7}})", {index_, "'a'"}));
  EXPECT_TRUE(rejects(R"({"weight_map":{"a":"model-00009-of-00009.safetensors"}})",
                      {index_, "'a'", "model-00009-of-00009.safetensors"}));
  EXPECT_TRUE(rejects(R"({"weight_map":{"a":"model-00002-of-00002.safetensors"}})",
                      {index_, "'a'", "model-00002-of-00002.safetensors", "does not hold"}));
  testing::write_all(dir_.file("model-00002-of-00002.safetensors"), "garbage");
  EXPECT_TRUE(rejects(R"({"weight_map":{"b":"model-00002-of-00002.safetensors"}})",
                      {dir_.file("model-00002-of-00002.safetensors")}));
}

TEST(WeightSourceTest, EmptyDirectoryIsAnError) {
  TempDir dir;
  EXPECT_TRUE(throws_error_with([&] { WeightSource::open_dir(dir.path()); },
                                {dir.path(), "model.safetensors", "model.safetensors.index.json"}));
  EXPECT_TRUE(throws_error_with([&] { WeightSource::open_dir(dir.file("nope")); }, {dir.file("nope")}));
}

}  // namespace
}  // namespace l4::checkpoint
