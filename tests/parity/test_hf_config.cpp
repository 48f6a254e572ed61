// Reads config.json files that transformers wrote and checks that we resolve the same architecture.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/model_arch.h"
#include "core/file_io.h"

namespace l4::config {
namespace {

const std::string kDir = std::string(L4_TEST_DATA_DIR) + "/hf_config";

void expect_text_equal(const TextConfig& t, const nlohmann::json& e) {
  EXPECT_EQ(t.vocab_size, e["vocab_size"].get<int64_t>());
  EXPECT_EQ(t.hidden_size, e["hidden_size"].get<int64_t>());
  EXPECT_EQ(t.intermediate_size, e["intermediate_size"].get<int64_t>());
  EXPECT_EQ(t.intermediate_size_mlp, e["intermediate_size_mlp"].get<int64_t>());
  EXPECT_EQ(t.num_hidden_layers, e["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(t.num_attention_heads, e["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(t.num_key_value_heads, e["num_key_value_heads"].get<int64_t>());
  EXPECT_EQ(t.resolved_head_dim(), e["head_dim"].get<int64_t>());
  EXPECT_DOUBLE_EQ(t.rms_norm_eps, e["rms_norm_eps"].get<double>());
  EXPECT_EQ(t.num_local_experts, e["num_local_experts"].get<int64_t>());
  EXPECT_EQ(t.num_experts_per_tok, e["num_experts_per_tok"].get<int64_t>());
  EXPECT_EQ(t.moe_layers, e["moe_layers"].get<std::vector<int64_t>>());
  EXPECT_EQ(t.no_rope_layers, e["no_rope_layers"].get<std::vector<int64_t>>());
  EXPECT_EQ(t.layer_types, e["layer_types"].get<std::vector<std::string>>());
  EXPECT_EQ(t.use_qk_norm, e["use_qk_norm"].get<bool>());
  EXPECT_EQ(*t.attention_chunk_size, e["attention_chunk_size"].get<int64_t>());
  EXPECT_EQ(t.attn_temperature_tuning, e["attn_temperature_tuning"].get<bool>());
  EXPECT_EQ(t.floor_scale, e["floor_scale"].get<int64_t>());
  EXPECT_DOUBLE_EQ(t.attn_scale, e["attn_scale"].get<double>());
  EXPECT_EQ(*t.bos_token_id, e["bos_token_id"].get<int64_t>());
  EXPECT_EQ(t.eos_token_id, e["eos_token_id"].get<std::vector<int64_t>>());
  EXPECT_EQ(*t.pad_token_id, e["pad_token_id"].get<int64_t>());
  EXPECT_EQ(t.tie_word_embeddings, e["tie_word_embeddings"].get<bool>());
  EXPECT_EQ(t.max_position_embeddings, e["max_position_embeddings"].get<int64_t>());
  const auto& rope = e["rope_parameters"];
  EXPECT_EQ(t.rope_parameters.rope_type, rope["rope_type"].get<std::string>());
  EXPECT_DOUBLE_EQ(t.rope_parameters.rope_theta, rope["rope_theta"].get<double>());
  EXPECT_DOUBLE_EQ(t.rope_parameters.factor, rope["factor"].get<double>());
  EXPECT_DOUBLE_EQ(t.rope_parameters.low_freq_factor, rope["low_freq_factor"].get<double>());
  EXPECT_DOUBLE_EQ(t.rope_parameters.high_freq_factor, rope["high_freq_factor"].get<double>());
  EXPECT_EQ(t.rope_parameters.original_max_position_embeddings,
            rope["original_max_position_embeddings"].get<int64_t>());
}

nlohmann::json expected() { return nlohmann::json::parse(read_file(kDir + "/expected.json")); }

TEST(HfConfigParityTest, TextOnlyLayout) {
  const ModelArch arch = load_model_arch(kDir + "/text_only");
  expect_text_equal(arch.text_config, expected()["text_only"]["text"]);
  EXPECT_FALSE(arch.vision_config.has_value());
}

TEST(HfConfigParityTest, MultimodalLayout) {
  const ModelArch arch = load_model_arch(kDir + "/multimodal/config.json");
  const nlohmann::json e = expected()["multimodal"];
  expect_text_equal(arch.text_config, e["text"]);
  ASSERT_TRUE(arch.vision_config.has_value());
  const VisionConfig& v = *arch.vision_config;
  const auto& ev = e["vision"];
  EXPECT_EQ(v.hidden_size, ev["hidden_size"].get<int64_t>());
  EXPECT_EQ(v.num_hidden_layers, ev["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(v.num_attention_heads, ev["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(v.intermediate_size, ev["intermediate_size"].get<int64_t>());
  EXPECT_EQ(v.vision_output_dim, ev["vision_output_dim"].get<int64_t>());
  EXPECT_EQ(v.image_size, ev["image_size"].get<int64_t>());
  EXPECT_EQ(v.patch_size, ev["patch_size"].get<int64_t>());
  EXPECT_DOUBLE_EQ(v.norm_eps, ev["norm_eps"].get<double>());
  EXPECT_DOUBLE_EQ(v.pixel_shuffle_ratio, ev["pixel_shuffle_ratio"].get<double>());
  EXPECT_EQ(v.projector_input_dim, ev["projector_input_dim"].get<int64_t>());
  EXPECT_EQ(v.projector_output_dim, ev["projector_output_dim"].get<int64_t>());
  EXPECT_DOUBLE_EQ(v.rope_parameters.rope_theta, ev["rope_parameters"]["rope_theta"].get<double>());
  EXPECT_EQ(arch.image_token_index, e["image_token_index"].get<int64_t>());
}

}  // namespace
}  // namespace l4::config
