// Benchmark (not a test): tokens/s the training loader delivers (HDF5 shards -> packed micro-batches with
// labels, positions and document ids), on one rank with the recipe's data section. Prints one JSON line.
//   build/bin/bench_loader RECIPE.yaml [steps=200] [key=value overrides...]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/recipe.h"
#include "core/timer.h"
#include "data/sharded_loader.h"

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_loader RECIPE.yaml [steps] [key=value ...]\n");
    return 2;
  }
  const int64_t steps = argc > 2 ? std::atoll(argv[2]) : 200;
  std::vector<std::string> overrides(argv + std::min(argc, 3), argv + argc);
  const l4::config::Recipe recipe = l4::config::load_recipe(argv[1], overrides);
  l4::data::ShardedLoader loader(l4::data::loader_options_from_recipe(recipe, false, 0, 1));
  loader.next_step();  // warm-up: opens the shards, starts the prefetch thread
  int64_t tokens = 0;
  l4::Stopwatch clock;
  for (int64_t i = 0; i < steps; ++i) {
    for (const l4::data::Batch& b : loader.next_step().micro) tokens += b.input_ids.numel();
  }
  const double seconds = clock.seconds();
  std::printf("{\"steps\": %lld, \"tokens\": %lld, \"seconds\": %.4f, \"tokens_per_s\": %.1f}\n",
              static_cast<long long>(steps), static_cast<long long>(tokens), seconds, tokens / seconds);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_loader: %s\n", e.what());
  return 1;
}
