#include <gtest/gtest.h>

#include "common/temp_dir.h"
#include "config/model_arch.h"
#include "core/error.h"

namespace l4::config {
namespace {

std::string arch_error(const std::string& path) {
  try {
    load_model_arch(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelArchTest, BundledConfigsLoad) {
  for (const char* name : {"tiny", "small", "scout", "maverick"}) {
    const ModelArch arch = load_model_arch(std::string(L4_SOURCE_DIR) + "/configs/" + name + ".yaml");
    EXPECT_GT(arch.text_config.num_hidden_layers, 0) << name;
  }
  const ModelArch scout = load_model_arch(std::string(L4_SOURCE_DIR) + "/configs/scout.yaml");
  EXPECT_EQ(scout.text_config.rope_parameters.rope_type, "llama3");
  EXPECT_DOUBLE_EQ(scout.text_config.rope_parameters.factor, 16.0);
  EXPECT_EQ(scout.text_config.moe_layers.size(), 48u);
  EXPECT_EQ(scout.text_config.no_rope_layers[3], 0);
  EXPECT_EQ(scout.text_config.layer_types[3], "full_attention");
  ASSERT_TRUE(scout.vision_config.has_value());
  EXPECT_EQ(scout.vision_config->hidden_size, 1408);
  const ModelArch maverick = load_model_arch(std::string(L4_SOURCE_DIR) + "/configs/maverick.yaml");
  EXPECT_EQ(maverick.text_config.moe_layers.front(), 1);
  EXPECT_EQ(maverick.text_config.moe_layers.size(), 24u);
  EXPECT_FALSE(maverick.text_config.use_qk_norm);
}

TEST(ModelArchTest, LegacyRopeKeysOfOlderHfConfigsAreUnderstood) {
  l4::testing::TempDir dir;
  const std::string path = dir.write("config.json", R"({
    "architectures": ["Llama4ForCausalLM"], "model_type": "llama4_text", "hidden_size": 64,
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "rope_theta": 1000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 128},
    "attn_temperature_tuning": 4, "some_future_key": [1, 2]})");
  const ModelArch arch = load_model_arch(path);
  EXPECT_EQ(arch.text_config.rope_parameters.rope_type, "llama3");
  EXPECT_DOUBLE_EQ(arch.text_config.rope_parameters.rope_theta, 1000.0);
  EXPECT_DOUBLE_EQ(arch.text_config.rope_parameters.factor, 8.0);
  EXPECT_EQ(arch.text_config.rope_parameters.original_max_position_embeddings, 128);
  EXPECT_TRUE(arch.text_config.attn_temperature_tuning);  // the Hub's int flag
  EXPECT_FALSE(arch.vision_config.has_value());
}

TEST(ModelArchTest, OurYamlIsStrictButForeignJsonIsNot) {
  l4::testing::TempDir dir;
  const std::string yaml = dir.write("arch.yaml", "text_config:\n  hidden_size: 80\n  num_heads: 4\n");
  EXPECT_EQ(arch_error(yaml), yaml + ":3: text_config.num_heads: unknown key (did you mean 'num_attention_heads'?)");
  const std::string json = dir.write("config.json", R"({"text_config": {"hidden_size": 80, "num_heads": 4}})");
  EXPECT_EQ(arch_error(json), "");
}

TEST(ModelArchTest, InvalidShapesAreReportedWithTheirKeys) {
  l4::testing::TempDir dir;
  const std::string path = dir.write("arch.yaml",
                                     "text_config:\n"
                                     "  num_attention_heads: 6\n"
                                     "  num_key_value_heads: 4\n"
                                     "  num_experts_per_tok: 9\n"
                                     "  num_local_experts: 8\n"
                                     "  no_rope_layers: [1, 2]\n"
                                     "  num_hidden_layers: 2\n");
  const std::string error = arch_error(path);
  EXPECT_NE(error.find(path + ":3: text_config.num_key_value_heads: must divide num_attention_heads (6), got 4"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(path + ":4: text_config.num_experts_per_tok: must be in [1, num_local_experts=8], got 9"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(path + ":6: text_config.no_rope_layers: entries must be 0 (NoPE) or 1 (RoPE), got 2"),
            std::string::npos)
      << error;
}

TEST(ModelArchTest, ModelDirectoryMeansItsConfigJson) {
  l4::testing::TempDir dir;
  dir.write("model/config.json", R"({"hidden_size": 48, "num_attention_heads": 4, "num_key_value_heads": 4})");
  EXPECT_EQ(load_model_arch(dir.file("model")).text_config.hidden_size, 48);
  EXPECT_EQ(arch_error(dir.file("nothing")), dir.file("nothing") + ": no such file");
}

}  // namespace
}  // namespace l4::config
