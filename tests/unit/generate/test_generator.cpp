// Generation on the model's own layers: KV-cache decoding (with LoRA) equals recomputation without a cache,
// step by step and in its logits; sampling is seeded and stops at stop tokens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "common/lora_fixtures.h"
#include "generate/generator.h"
#include "lora/lora_modules.h"
#include "model/kv_cache.h"

namespace l4::generate {
namespace {

using lora::testing::all_targets;
using lora::testing::randomize_lora;
using lora::testing::tiny_config;

TEST(Generator, CachedGreedyEqualsRecomputation) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(8);
  lora::apply_lora(*m, all_targets(), 9);
  randomize_lora(*m, 10);
  m->eval();
  const std::vector<int64_t> prompt = {5, 17, 3, 88, 41};  // 5 + 64 tokens: 8 chunks of 8
  SamplingOptions options;
  options.max_new_tokens = 64;
  const auto cached = generate(*m, prompt, at::Tensor(), options);
  const auto uncached = generate_greedy_uncached(*m, prompt, at::Tensor(), 64, {});
  ASSERT_EQ(cached.size(), 64u);
  EXPECT_EQ(cached, uncached);
  // A meaningful sequence, not one token repeated (the comparison would then prove little).
  EXPECT_GE(std::set<int64_t>(cached.begin(), cached.end()).size(), 8u);
  // Logits of the cached steps against one full forward over the generated sequence.
  std::vector<int64_t> all = prompt;
  all.insert(all.end(), cached.begin(), cached.end());
  torch::NoGradGuard no_grad;
  const at::Tensor full = m->forward(torch::tensor(all, torch::kLong).unsqueeze(0));
  model::KvCache cache(config.num_hidden_layers);
  model::ModelInput input;
  input.cache = &cache;
  input.input_ids = torch::tensor(prompt, torch::kLong).unsqueeze(0);
  std::vector<at::Tensor> steps = {m->forward(input)};
  for (size_t i = prompt.size(); i < all.size(); ++i) {
    input.input_ids = torch::tensor({all[i]}, torch::kLong).view({1, 1});
    steps.push_back(m->forward(input));
  }
  const at::Tensor incremental = torch::cat(steps, 1).narrow(1, 0, static_cast<int64_t>(all.size()));
  const double diff = (incremental - full).abs().max().item<double>();
  std::cout << "[generate] KV cache vs full recomputation logits max-abs " << diff << " over " << all.size()
            << " tokens\n";
  EXPECT_LE(diff, 1e-4);
}

TEST(Generator, SamplingIsSeededAndStops) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(11);
  m->eval();
  SamplingOptions options;
  options.max_new_tokens = 20;
  options.temperature = 0.8;
  options.top_p = 0.9;
  options.seed = 3;
  const auto a = generate(*m, {1, 2, 3}, at::Tensor(), options);
  EXPECT_EQ(a, generate(*m, {1, 2, 3}, at::Tensor(), options));
  ASSERT_FALSE(a.empty());
  options.stop_ids = {a[0]};
  EXPECT_TRUE(generate(*m, {1, 2, 3}, at::Tensor(), options).empty());
}

// A conversation keeps its cache: the second turn reuses the first turn's prompt and answer from the cache
// and answers what a fresh generation over the whole conversation answers; a turn that rewrites the history
// drops the cache from the first differing token on and still answers the same as a fresh generation.
TEST(Generator, ChatSessionReusesTheCacheAcrossTurns) {
  const auto config = tiny_config();
  model::Llama4 m(config);
  m->reset_parameters(12);
  lora::apply_lora(*m, all_targets(), 13);
  randomize_lora(*m, 14);
  m->eval();
  SamplingOptions options;
  options.max_new_tokens = 12;
  ChatSession session(*m, 0);
  const std::vector<int64_t> first = {5, 17, 3, 88, 41};
  const auto reply = session.respond(first, at::Tensor(), options);
  ASSERT_EQ(reply.size(), 12u);
  EXPECT_EQ(session.reused_tokens(), 0);
  EXPECT_EQ(session.cached_tokens(), 5 + 11);  // the last answer token is not run yet

  std::vector<int64_t> second = first;
  second.insert(second.end(), reply.begin(), reply.end());
  second.insert(second.end(), {7, 9, 2});
  const auto again = session.respond(second, at::Tensor(), options);
  EXPECT_EQ(session.reused_tokens(), 5 + 11);
  EXPECT_EQ(again, generate_greedy_uncached(*m, second, at::Tensor(), 12, {}));

  std::vector<int64_t> rewritten = {5, 17, 60, 61, 62, 63};  // differs from the third token on
  const auto other = session.respond(rewritten, at::Tensor(), options);
  EXPECT_EQ(session.reused_tokens(), 2);
  EXPECT_EQ(other, generate_greedy_uncached(*m, rewritten, at::Tensor(), 12, {}));
  // The same ids again: everything but the last prompt token comes from the cache.
  session.respond(rewritten, at::Tensor(), options);
  EXPECT_EQ(session.reused_tokens(), 5);
}

}  // namespace
}  // namespace l4::generate
