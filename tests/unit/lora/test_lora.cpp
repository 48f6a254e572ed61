// LoRA modules against their definitions: the wrapped forward equals the base plus the low-rank term, the
// sparse LoRA experts equal the merged dense weights, only adapter tensors train (base bytes unchanged),
// and adapters round-trip through the PEFT format.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/lora_fixtures.h"
#include "core/checksum.h"
#include "core/error.h"
#include "lora/lora_modules.h"
#include "lora/peft_adapter.h"

namespace l4::lora {
namespace {

using lora::testing::all_targets;
using lora::testing::randomize_lora;
using lora::testing::tiny_config;

uint32_t checksum(const at::Tensor& t) {
  const at::Tensor c = t.detach().contiguous();
  return l4::crc32(c.data_ptr(), c.nbytes());
}

TEST(LoraLinear, EqualsBasePlusLowRankTerm) {
  torch::manual_seed(0);
  const at::Tensor w = torch::randn({6, 5});
  LoraOptions o;
  o.rank = 3;
  o.alpha = 4.0;
  o.rslora = true;
  LoraLinear lora(std::make_shared<LoraLinearImpl>(w, o));
  EXPECT_DOUBLE_EQ(lora->scale, 4.0 / std::sqrt(3.0));
  torch::NoGradGuard no_grad;
  lora->lora_A->weight.normal_();
  lora->lora_B->weight.normal_();
  const at::Tensor x = torch::randn({2, 4, 5});
  const at::Tensor expected =
      x.matmul(w.t()) + x.matmul(lora->lora_A->weight.t()).matmul(lora->lora_B->weight.t()) * lora->scale;
  EXPECT_LE((lora->forward(x) - expected).abs().max().item<double>(), 1e-5);
  EXPECT_LE((w + lora->delta_weight() - (w + lora->lora_B->weight.matmul(lora->lora_A->weight) * lora->scale))
                .abs()
                .max()
                .item<double>(),
            1e-6);
}

TEST(ApplyLora, FreshAdapterLeavesOutputsAndFreezesBase) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(1);
  const at::Tensor ids = torch::randint(0, config.vocab_size, {2, 11});
  const at::Tensor before = m->forward(ids).detach();
  const auto injection = apply_lora(*m, all_targets(), 7);
  EXPECT_EQ(injection.linear_modules.size(), 4u * 4 + 3 * 4);  // attention everywhere, MLP / shared expert
  EXPECT_EQ(injection.expert_params.size(), 4u);               // 2 MoE layers x (gate_up, down)
  EXPECT_LE((m->forward(ids) - before).abs().max().item<double>(), 1e-6);  // B = 0
  for (const auto& item : m->named_parameters()) {
    const bool is_lora = item.key().find("lora") != std::string::npos;
    EXPECT_EQ(item.value().requires_grad(), is_lora) << item.key();
  }
  // HF names of the base weights are kept.
  const auto params = m->named_parameters();
  EXPECT_TRUE(params.contains("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(params.contains("model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_TRUE(params.contains("model.layers.1.feed_forward.experts.lora.gate_up_proj_A"));
  EXPECT_EQ(params["model.layers.1.feed_forward.experts.lora.gate_up_proj_A"].sizes(),
            (std::vector<int64_t>{3, 2, 24}));
  EXPECT_EQ(params["model.layers.1.feed_forward.experts.lora.gate_up_proj_B"].sizes(),
            (std::vector<int64_t>{3, 16, 2}));
}

TEST(ApplyLora, UnknownTargetIsAnError) {
  model::Llama4 m(tiny_config());
  LoraOptions o;
  o.targets = {"q_proj", "router"};
  try {
    apply_lora(*m, o, 0);
    FAIL() << "expected l4::Error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("router"), std::string::npos) << e.what();
  }
}

TEST(ApplyLora, TargetMatching) {
  EXPECT_TRUE(target_matches("q_proj", "model.layers.0.self_attn.q_proj", false));
  EXPECT_TRUE(target_matches("shared_expert", "model.layers.1.feed_forward.shared_expert.up_proj", false));
  EXPECT_FALSE(target_matches("down_proj", "model.layers.1.feed_forward.experts.down_proj", true));
  EXPECT_TRUE(target_matches("experts", "model.layers.1.feed_forward.experts.down_proj", true));
  EXPECT_TRUE(target_matches("experts.down_proj", "model.layers.1.feed_forward.experts.down_proj", true));
  EXPECT_FALSE(target_matches("experts.down_proj", "model.layers.1.feed_forward.experts.gate_up_proj", true));
  EXPECT_TRUE(target_matches("model.layers.[0]*", "model.layers.0.self_attn.q_proj", false) ||
              target_matches("model.layers.0.*", "model.layers.0.self_attn.q_proj", false));
  EXPECT_FALSE(target_matches("model.layers.0.*", "model.layers.1.self_attn.q_proj", false));
}

TEST(LoraExperts, SparseLoraEqualsMergedWeights) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(2);
  apply_lora(*m, all_targets(), 3);
  randomize_lora(*m, 4);
  const at::Tensor ids = torch::randint(0, config.vocab_size, {2, 13});
  const at::Tensor ours = m->forward(ids).detach();
  model::Llama4 merged(config);
  {
    torch::NoGradGuard no_grad;
    auto params = merged->named_parameters();
    for (const auto& [name, t] : merged_state(*m)) params[name].copy_(t);
  }
  const at::Tensor reference = merged->forward(ids).detach();
  const double diff = (ours - reference).abs().max().item<double>();
  std::cout << "[lora] sparse LoRA vs merged logits max-abs " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
}

TEST(PeftAdapter, RoundTripsAndRejectsBadFiles) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(12);
  const LoraOptions options = all_targets();
  apply_lora(*m, options, 13);
  randomize_lora(*m, 14);
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("l4_lora_adapter_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  write_peft_adapter(*m, options, dir, "base");
  const at::Tensor ids = torch::randint(0, config.vocab_size, {1, 9});
  const at::Tensor ours = m->forward(ids).detach();

  model::Llama4 fresh(config);
  {
    torch::NoGradGuard no_grad;
    auto params = fresh->named_parameters();
    for (const auto& item : m->named_parameters()) {
      if (!item.value().requires_grad()) params[item.key()].copy_(item.value());
    }
  }
  const LoraOptions read = load_peft_adapter(*fresh, dir);
  EXPECT_EQ(read.rank, options.rank);
  EXPECT_DOUBLE_EQ(read.scale(), options.scale());
  EXPECT_LE((fresh->forward(ids) - ours).abs().max().item<double>(), 1e-6);

  auto error_of = [&](const std::string& config_text) {
    std::ofstream(dir + "/adapter_config.json") << config_text;
    model::Llama4 target(config);
    try {
      load_peft_adapter(*target, dir);
    } catch (const l4::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      error_of("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 6, \"use_dora\": true}").find("use_dora"),
      std::string::npos);
  EXPECT_NE(error_of("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 6, \"target_modules\": \"q.*\"}")
                .find("regular expressions"),
            std::string::npos);
  EXPECT_NE(error_of("{\"peft_type\": \"LORA\", \"r\": 2,").find("not valid JSON"), std::string::npos);
  // Fields that change which weights the adapter applies to are refused, each named; their defaults pass.
  for (const std::string field :
       {"\"layers_to_transform\": [0]", "\"layers_pattern\": \"layers\"", "\"exclude_modules\": [\"k_proj\"]",
        "\"lora_bias\": true", "\"trainable_token_indices\": [1, 2]", "\"layer_replication\": [[0, 1]]"}) {
    const std::string error = error_of("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 6, " + field +
                                       ", \"target_modules\": [\"q_proj\"]}");
    const std::string key = field.substr(1, field.find('"', 1) - 1);
    EXPECT_NE(error.find(key + "="), std::string::npos) << field << ": " << error;
    EXPECT_NE(error.find("not supported"), std::string::npos) << error;
  }
  EXPECT_EQ(error_of("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 6, \"layers_to_transform\": null, "
                     "\"lora_bias\": false, \"exclude_modules\": null, \"target_modules\": [\"q_proj\"]}")
                .find("not supported"),
            std::string::npos);
  // The tensors hold more layers than this config targets: named as unexpected.
  const std::string only_q =
      "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 6, \"target_modules\": [\"q_proj\"]}";
  EXPECT_NE(error_of(only_q).find("match no targeted layer"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(LoraTraining, OnlyAdapterTrainsAndBaseBytesStay) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(5);
  LoraOptions o = all_targets();
  o.dropout = 0.1;
  o.base_dtype = at::kBFloat16;
  apply_lora(*m, o, 6);
  m->train();
  std::map<std::string, uint32_t> base_sums;
  std::vector<at::Tensor> trainable;
  for (const auto& item : m->named_parameters()) {
    if (item.value().requires_grad()) {
      trainable.push_back(item.value());
    } else {
      base_sums[item.key()] = checksum(item.value());
    }
  }
  EXPECT_EQ(m->named_parameters()["model.layers.0.self_attn.q_proj.weight"].scalar_type(), at::kBFloat16);
  EXPECT_EQ(m->named_parameters()["model.layers.1.feed_forward.experts.gate_up_proj"].scalar_type(),
            at::kBFloat16);
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-2));
  const at::Tensor ids = torch::randint(0, config.vocab_size, {2, 12});
  double first = 0, last = 0;
  for (int step = 0; step < 4; ++step) {
    optimizer.zero_grad();
    const at::Tensor logits = m->forward(ids.narrow(1, 0, 11));
    const at::Tensor loss = torch::cross_entropy_loss(logits.reshape({-1, config.vocab_size}),
                                                      ids.narrow(1, 1, 11).reshape({-1}));
    loss.backward();
    for (const auto& item : m->named_parameters()) {
      EXPECT_EQ(item.value().grad().defined(), item.value().requires_grad()) << item.key();
    }
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first);
  // Optimizer state exists for adapter tensors only (they are all it was given) and every base byte stays.
  EXPECT_EQ(optimizer.state().size(), trainable.size());
  for (const auto& item : m->named_parameters()) {
    if (!item.value().requires_grad()) {
      EXPECT_EQ(checksum(item.value()), base_sums.at(item.key())) << item.key();
    }
  }
  std::cout << "[lora] " << trainable.size() << " adapter tensors trained, " << base_sums.size()
            << " base tensors byte-identical; loss " << first << " -> " << last << "\n";
}

}  // namespace
}  // namespace l4::lora
