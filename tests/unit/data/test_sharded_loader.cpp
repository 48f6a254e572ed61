// ShardedLoader: row contents against the documents, world-size independence, exact resume on a
// different number of ranks, unpacked padding, evaluation passes, errors from the prefetch thread.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <map>

#include "config/recipe.h"
#include "core/error.h"
#include "data/dataset_reader.h"
#include "data/sharded_loader.h"
#include "synthetic_dataset.h"

namespace l4::data {
namespace {

using testing::fresh_dir;
using testing::kPad;
using testing::kPatch;
using testing::make_documents;
using testing::SyntheticSpec;

struct Fixture {
  std::string dir;
  std::vector<Document> docs;
};

const Fixture& dataset_with_images() {
  static const Fixture f = [] {
    SyntheticSpec spec;
    spec.docs = 60;
    spec.max_len = 70;
    spec.images_every = 9;
    Fixture fx{fresh_dir("loader"), make_documents(spec)};
    testing::write_dataset(fx.dir, fx.docs, 200000);
    return fx;
  }();
  return f;
}

LoaderOptions options_for(const std::string& dir, int rank, int world, int64_t global, int64_t micro) {
  LoaderOptions o;
  o.path = dir;
  o.seq_len = 32;
  o.seed = 42;
  o.global_batch = global;
  o.micro_batch = micro;
  o.rank = rank;
  o.world_size = world;
  return o;
}

// Key of a placed token: (document, index within the document).
using TokenKey = std::pair<int64_t, int64_t>;

void add_coverage(const Batch& batch, int64_t epoch, std::map<TokenKey, int>& seen) {
  for (const Segment& s : batch.segments) {
    if (s.epoch != epoch) continue;
    for (int64_t i = 0; i < s.length; ++i) seen[{s.doc, s.doc_begin + i}] += 1;
  }
}

void expect_each_token_once(const std::vector<Document>& docs, const std::map<TokenKey, int>& seen) {
  size_t total = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    for (size_t i = 0; i < docs[d].tokens.size(); ++i) {
      const auto it = seen.find({static_cast<int64_t>(d), static_cast<int64_t>(i)});
      ASSERT_TRUE(it != seen.end()) << "doc " << d << " token " << i << " never seen";
      ASSERT_EQ(it->second, 1) << "doc " << d << " token " << i << " seen " << it->second << " times";
      total += 1;
    }
  }
  EXPECT_EQ(total, seen.size());
}

// Runs `world` loaders in lockstep from `start` until every row of epoch 0 has been delivered.
void run_to_epoch_end(const Fixture& f, int world, const LoaderState& start, std::map<TokenKey, int>& seen,
                      std::vector<torch::Tensor>* global_ids = nullptr) {
  std::vector<std::unique_ptr<ShardedLoader>> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.push_back(std::make_unique<ShardedLoader>(options_for(f.dir, r, world, 6, 1)));
    ranks.back()->load_state(start);
  }
  while (ranks[0]->state().epoch == 0) {
    std::vector<torch::Tensor> rows;
    for (auto& loader : ranks) {
      StepBatch step = loader->next_step();
      for (const Batch& b : step.micro) {
        add_coverage(b, 0, seen);
        rows.push_back(b.input_ids);
      }
    }
    if (global_ids) global_ids->push_back(torch::cat(rows));
  }
}

TEST(ShardedLoader, RowsMatchDocuments) {
  const Fixture& f = dataset_with_images();
  ShardedLoader loader(options_for(f.dir, 0, 1, 4, 2));
  int64_t images = 0;
  for (int step = 0; step < 12; ++step) {
    StepBatch sb = loader.next_step();
    ASSERT_EQ(sb.micro.size(), 2u);
    for (const Batch& b : sb.micro) {
      const auto ids = b.input_ids.accessor<int64_t, 2>();
      const auto labels = b.labels.accessor<int64_t, 2>();
      const auto pos = b.position_ids.accessor<int64_t, 2>();
      const auto doc_ids = b.doc_ids.accessor<int64_t, 2>();
      std::vector<std::vector<bool>> covered(2, std::vector<bool>(32, false));
      int64_t loss_tokens = 0;
      for (const Segment& s : b.segments) {
        const Document& doc = f.docs[s.doc];
        for (int64_t i = 0; i < s.length; ++i) {
          const int64_t c = s.col + i, k = s.doc_begin + i;
          covered[s.row][c] = true;
          ASSERT_EQ(ids[s.row][c], doc.tokens[k]);
          EXPECT_EQ(pos[s.row][c], i) << "positions restart with every document piece";
          EXPECT_EQ(doc_ids[s.row][c], s.doc);
          const bool has_label = k + 1 < static_cast<int64_t>(doc.tokens.size()) && doc.loss_mask[k + 1] == 1;
          EXPECT_EQ(labels[s.row][c], has_label ? static_cast<int64_t>(doc.tokens[k + 1]) : kIgnoreIndex);
          loss_tokens += has_label;
        }
      }
      EXPECT_EQ(b.loss_tokens, loss_tokens);
      EXPECT_EQ(b.loss_tokens, (b.labels != kIgnoreIndex).sum().item<int64_t>());
      for (int r = 0; r < 2; ++r) {
        for (int c = 0; c < 32; ++c) {
          if (covered[r][c]) continue;
          EXPECT_EQ(ids[r][c], kPad);
          EXPECT_EQ(labels[r][c], kIgnoreIndex);
          EXPECT_EQ(doc_ids[r][c], -1);
        }
      }
      // Images: tiles in order, patch positions inside their spans.
      int64_t tiles = 0, patches = 0;
      for (const ImageSlot& im : b.images) {
        EXPECT_EQ(im.tile_begin, tiles);
        tiles += im.num_tiles;
        const int64_t doc = doc_ids[im.row][im.token_begin];
        const ImageRecord& src = f.docs[doc].images.at(0);
        const auto got = b.pixel_tiles.slice(0, im.tile_begin, im.tile_begin + im.num_tiles).contiguous();
        ASSERT_EQ(static_cast<size_t>(got.numel()), src.tiles.size());
        EXPECT_EQ(std::memcmp(got.data_ptr<uint8_t>(), src.tiles.data(), src.tiles.size()), 0);
        for (int64_t c = im.token_begin; c < im.token_end; ++c) {
          if (ids[im.row][c] != kPatch) continue;
          EXPECT_EQ(b.patch_positions[patches][0].item<int64_t>(), im.row);
          EXPECT_EQ(b.patch_positions[patches][1].item<int64_t>(), c);
          patches += 1;
        }
        images += 1;
      }
      EXPECT_EQ(b.pixel_tiles.size(0), tiles);
      EXPECT_EQ(b.patch_positions.size(0), patches);
    }
  }
  EXPECT_GT(images, 0);
}

TEST(ShardedLoader, GlobalBatchIdenticalAndEachDocumentOnceForOneTwoThreeRanks) {
  const Fixture& f = dataset_with_images();
  std::vector<torch::Tensor> reference;
  for (int world : {1, 2, 3}) {
    std::map<TokenKey, int> seen;
    std::vector<torch::Tensor> global;
    run_to_epoch_end(f, world, LoaderState{}, seen, &global);
    expect_each_token_once(f.docs, seen);
    if (world == 1) {
      reference = global;
    } else {
      ASSERT_EQ(global.size(), reference.size());
      for (size_t s = 0; s < global.size(); ++s)
        EXPECT_TRUE(torch::equal(global[s], reference[s])) << "step " << s;
    }
  }
}

TEST(ShardedLoader, ResumeMidEpochOnDifferentWorldSizes) {
  const Fixture& f = dataset_with_images();
  for (int resume_world : {1, 3}) {
    std::map<TokenKey, int> seen;
    std::vector<std::unique_ptr<ShardedLoader>> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.push_back(std::make_unique<ShardedLoader>(options_for(f.dir, r, 2, 6, 1)));
    for (int step = 0; step < 3; ++step) {
      for (auto& loader : ranks) {
        for (const Batch& b : loader->next_step().micro) add_coverage(b, 0, seen);
      }
    }
    const LoaderState saved = ranks[0]->state();
    EXPECT_EQ(saved, ranks[1]->state());
    EXPECT_EQ(saved.epoch, 0);
    EXPECT_EQ(saved.cursor, 18);
    ranks.clear();  // "the job stopped"
    const LoaderState restored = LoaderState::from_json(nlohmann::json::parse(saved.to_json().dump()));
    run_to_epoch_end(f, resume_world, restored, seen);
    expect_each_token_once(f.docs, seen);
  }
}

TEST(ShardedLoader, StateBeyondTheEpochIsRejected) {
  const Fixture& f = dataset_with_images();
  ShardedLoader loader(options_for(f.dir, 0, 1, 4, 4));
  LoaderState bad;
  bad.cursor = static_cast<int64_t>(loader.rows_in_epoch(0)) + 1;
  EXPECT_THROW(loader.load_state(bad), l4::Error);
  EXPECT_NE(loader.state().to_json().dump().find("seq_len=32"), std::string::npos);
}

TEST(ShardedLoader, GlobalLossTokensAreTheSumOverRanks) {
  const Fixture& f = dataset_with_images();
  ShardedLoader a(options_for(f.dir, 0, 2, 4, 1)), b(options_for(f.dir, 1, 2, 4, 1));
  for (int step = 0; step < 5; ++step) {
    const StepBatch sa = a.next_step(), sb = b.next_step();
    int64_t sum = 0;
    for (const auto* s : {&sa, &sb}) {
      for (const Batch& m : s->micro) sum += m.loss_tokens;
    }
    EXPECT_EQ(sa.global_loss_tokens, sum);
    EXPECT_EQ(sb.global_loss_tokens, sum);
  }
}

TEST(ShardedLoader, UnpackedRowsHoldOnePieceAndPadding) {
  const Fixture& f = dataset_with_images();
  LoaderOptions o = options_for(f.dir, 0, 1, 4, 4);
  o.pack = false;
  ShardedLoader loader(o);
  const StepBatch sb = loader.next_step();
  const Batch& b = sb.micro.at(0);
  ASSERT_EQ(b.segments.size(), 4u);
  for (const Segment& s : b.segments) {
    EXPECT_EQ(s.col, 0);
    for (int64_t c = s.length; c < 32; ++c) {
      EXPECT_EQ(b.input_ids[s.row][c].item<int64_t>(), kPad);
      EXPECT_EQ(b.labels[s.row][c].item<int64_t>(), kIgnoreIndex);
    }
  }
}

// data.overlong on documents longer than seq_len: truncate keeps their first seq_len tokens with no label past
// them (as a truncated sequence in transformers); drop leaves them out; split continues them.
TEST(ShardedLoader, OverlongDocumentsTruncatedOrDropped) {
  SyntheticSpec spec;
  spec.docs = 3;
  spec.sft_mask = false;
  std::vector<Document> docs = make_documents(spec);
  docs[0].tokens.resize(5);
  docs[1].tokens.resize(45);
  docs[2].tokens.resize(12);
  for (Document& d : docs) d.loss_mask.assign(d.tokens.size(), 1);
  const std::string dir = fresh_dir("loader_overlong");
  testing::write_dataset(dir, docs);
  const auto rows = [&](Overlong overlong) {
    LoaderOptions o = options_for(dir, 0, 1, 1, 1);
    o.seq_len = 12;
    o.pack = false;
    o.shuffle = false;
    o.repeat = false;
    o.overlong = overlong;
    ShardedLoader loader(o);
    std::vector<Batch> out;
    for (StepBatch step = loader.next_step(); !step.end_of_data; step = loader.next_step()) out.push_back(step.micro.at(0));
    return out;
  };
  const std::vector<Batch> truncated = rows(Overlong::truncate);
  ASSERT_EQ(truncated.size(), 3u);
  const Batch& cut = truncated[1];
  ASSERT_EQ(cut.segments.at(0).length, 12);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(cut.input_ids[0][i].item<int64_t>(), docs[1].tokens[i]);
    EXPECT_EQ(cut.labels[0][i].item<int64_t>(), i < 11 ? static_cast<int64_t>(docs[1].tokens[i + 1]) : kIgnoreIndex);
  }
  EXPECT_EQ(truncated[2].input_ids[0][0].item<int64_t>(), docs[2].tokens[0]);
  const std::vector<Batch> dropped = rows(Overlong::drop);
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[1].segments.at(0).doc, 2);
  const std::vector<Batch> split = rows(Overlong::split);
  ASSERT_EQ(split.size(), 6u);  // 5 | 12 + 12 + 12 + 9 | 12
  EXPECT_EQ(split[1].labels[0][11].item<int64_t>(), docs[1].tokens[12]) << "a split piece continues";
}

TEST(ShardedLoader, EvaluationPassEndsAfterOneEpoch) {
  const Fixture& f = dataset_with_images();
  for (int world : {1, 2}) {
    std::map<TokenKey, int> seen;
    std::vector<std::unique_ptr<ShardedLoader>> ranks;
    for (int r = 0; r < world; ++r) {
      LoaderOptions o = options_for(f.dir, r, world, 8, 4);
      o.shuffle = false;
      o.repeat = false;
      ranks.push_back(std::make_unique<ShardedLoader>(o));
    }
    bool done = false;
    int steps = 0;
    while (!done && steps < 1000) {
      ++steps;
      for (auto& loader : ranks) {
        const StepBatch s = loader->next_step();
        done = s.end_of_data;
        for (const Batch& b : s.micro) add_coverage(b, 0, seen);
      }
    }
    ASSERT_TRUE(done);
    expect_each_token_once(f.docs, seen);
    EXPECT_TRUE(ranks[0]->next_step().end_of_data);  // stays at the end
  }
}

TEST(ShardedLoader, MissingDatasetNamesThePrepareCommand) {
  LoaderOptions o = options_for(fresh_dir("missing"), 0, 1, 4, 4);
  o.missing_hint = "run: llama4 prepare --config r.yaml";
  try {
    ShardedLoader loader(o);
    FAIL() << "no error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama4 prepare --config r.yaml"), std::string::npos) << e.what();
  }
}

TEST(ShardedLoader, RecipeOptionsAndTokenizerCheck) {
  const Fixture& f = dataset_with_images();
  config::Recipe recipe;
  recipe.source = "recipes/x.yaml";
  recipe.data.train = f.dir;
  recipe.data.eval = fresh_dir("no_eval");
  recipe.train.global_batch = 4;
  recipe.train.micro_batch = 2;
  recipe.data.overlong = "drop";
  const LoaderOptions train = loader_options_from_recipe(recipe, false, 1, 2);
  EXPECT_TRUE(train.repeat && train.shuffle);
  EXPECT_EQ(train.overlong, Overlong::drop);
  EXPECT_EQ(train.rank, 1);
  const LoaderOptions eval = loader_options_from_recipe(recipe, true, 0, 1);
  EXPECT_FALSE(eval.repeat || eval.shuffle);
  try {
    ShardedLoader loader(eval);
    FAIL() << "no error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama4 prepare --config recipes/x.yaml"), std::string::npos)
        << e.what();
  }
  LoaderOptions wrong = train;
  wrong.expected_tokenizer_sha256 = "abc";
  EXPECT_THROW(ShardedLoader{wrong}, l4::Error);
  wrong.expected_tokenizer_sha256 = testing::synthetic_tokenizer().sha256;
  EXPECT_NO_THROW(ShardedLoader{wrong});
}

TEST(ShardedLoader, BadBatchGeometryIsRejected) {
  const Fixture& f = dataset_with_images();
  EXPECT_THROW(ShardedLoader(options_for(f.dir, 0, 3, 4, 1)), l4::Error);
  EXPECT_THROW(ShardedLoader(options_for(f.dir, 0, 2, 6, 2)), l4::Error);
}

TEST(ShardedLoader, CorruptTokenSurfacesFromThePrefetchThread) {
  const std::string dir = fresh_dir("loader_corrupt");
  auto docs = make_documents({});
  testing::write_dataset(dir, docs);
  const std::string shard = dir + "/" + shard_file_name(0);
  const hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t ds = H5Dopen2(file, "loss_mask", H5P_DEFAULT);
  std::vector<uint8_t> mask(4096, 7);
  const hid_t space = H5Dget_space(ds);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  mask.resize(n, 7);
  H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask.data());
  H5Sclose(space), H5Dclose(ds), H5Fclose(file);
  ShardedLoader loader(options_for(dir, 0, 1, 4, 4));
  try {
    loader.next_step();
    FAIL() << "no error";
  } catch (const l4::Error& e) {
    EXPECT_NE(std::string(e.what()).find(shard), std::string::npos) << e.what();
  }
}

// Not a test of speed (no assertion): prints the loader throughput for the record.
TEST(ShardedLoader, ThroughputReport) {
  SyntheticSpec spec;
  spec.docs = 4000;
  spec.min_len = 20;
  spec.max_len = 600;
  spec.sft_mask = false;
  const std::string dir = fresh_dir("throughput");
  testing::write_dataset(dir, make_documents(spec), 4 << 20);
  LoaderOptions o = options_for(dir, 0, 1, 8, 4);
  o.seq_len = 512;
  ShardedLoader loader(o);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  for (int s = 0; s < 60; ++s) {
    for (const Batch& b : loader.next_step().micro) tokens += b.input_ids.numel();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[throughput] loader: %.0f tokens/s (seq_len 512, global batch 8, %lld tokens)\n",
              tokens / secs, static_cast<long long>(tokens));
  RecordProperty("tokens_per_s", static_cast<int>(tokens / secs));
}

TEST(ShardedLoader, ThroughputReportWithImages) {
  SyntheticSpec spec;
  spec.docs = 300;
  spec.min_len = 20;
  spec.max_len = 400;
  spec.images_every = 2;
  spec.image_tokens = 150;
  const std::string dir = fresh_dir("throughput_images");
  testing::write_dataset(dir, make_documents(spec), 64 << 20);
  LoaderOptions o = options_for(dir, 0, 1, 8, 4);
  o.seq_len = 512;
  ShardedLoader loader(o);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens = 0, tiles = 0;
  for (int s = 0; s < 20; ++s) {
    for (const Batch& b : loader.next_step().micro) {
      tokens += b.input_ids.numel();
      tiles += b.pixel_tiles.size(0);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[throughput] loader with images: %.0f tokens/s, %.0f tiles/s (seq_len 512, global batch 8)\n",
              tokens / secs, tiles / secs);
}

}  // namespace
}  // namespace l4::data
