// The datasets `llama4 prepare` wrote in the data_prepare oracle, read through ShardedLoader: every
// document's tokens, and labels derived from its loss mask, equal the Hugging Face references.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/sharded_loader.h"

namespace l4::data {
namespace {

const std::string kDir = std::string(L4_TEST_DATA_DIR) + "/data_prepare";

nlohmann::json expected() {
  std::ifstream in(kDir + "/expected.json");
  EXPECT_TRUE(in.good()) << "run the oracle_data_prepare fixture first";
  return nlohmann::json::parse(in);
}

TEST(DataPrepareParity, LoaderRowsEqualReferenceDocuments) {
  const nlohmann::json all = expected();
  for (const auto& [name, docs] : all.items()) {
    int64_t longest = 2;
    for (const auto& d : docs) longest = std::max<int64_t>(longest, d["tokens"].size());
    LoaderOptions o;
    o.path = kDir + "/" + name;
    o.seq_len = longest;
    o.pack = false;
    o.shuffle = false;
    o.repeat = false;
    o.global_batch = 1;
    o.micro_batch = 1;
    ShardedLoader loader(o);
    size_t index = 0;
    for (StepBatch step = loader.next_step(); !step.end_of_data; step = loader.next_step()) {
      ASSERT_LT(index, docs.size()) << name;
      const auto tokens = docs[index]["tokens"].get<std::vector<int64_t>>();
      const auto mask = docs[index]["loss_mask"].get<std::vector<int>>();
      const Batch& b = step.micro.at(0);
      for (size_t i = 0; i < tokens.size(); ++i) {
        ASSERT_EQ(b.input_ids[0][i].item<int64_t>(), tokens[i]) << name << " doc " << index << " token " << i;
        const int64_t label = i + 1 < tokens.size() && mask[i + 1] ? tokens[i + 1] : kIgnoreIndex;
        ASSERT_EQ(b.labels[0][i].item<int64_t>(), label) << name << " doc " << index << " token " << i;
        ASSERT_EQ(b.position_ids[0][i].item<int64_t>(), static_cast<int64_t>(i));
      }
      // Images: all tiles of the document, one <|patch|> slot per vision feature (144 per 336-pixel tile).
      const int64_t tiles = docs[index]["tiles"].get<int64_t>();
      EXPECT_EQ(b.pixel_tiles.size(0), tiles) << name << " doc " << index;
      EXPECT_EQ(b.patch_positions.size(0), tiles * 144) << name << " doc " << index;
      const auto& grids = docs[index]["grids"];
      ASSERT_EQ(b.images.size(), grids.size());
      for (size_t k = 0; k < grids.size(); ++k) {
        EXPECT_EQ(b.images[k].grid_rows, grids[k][0].get<int64_t>());
        EXPECT_EQ(b.images[k].grid_cols, grids[k][1].get<int64_t>());
      }
      ++index;
    }
    EXPECT_EQ(index, docs.size()) << name;
  }
}

}  // namespace
}  // namespace l4::data
