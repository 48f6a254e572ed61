// Sharded training checkpoints: ranks simulated by threads; elastic reads across pieces; damage is
// detected and the previous checkpoint used.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "checkpoint/training_checkpoint.h"
#include "common/temp_dir.h"
#include "core/error.h"

namespace l4::checkpoint {
namespace {

// In-process stand-in for a communicator: a reusable barrier and a gather over threads.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), gathered_(size) {}
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int generation = generation_;
    if (++waiting_ == size_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  SaveCollective collective(int rank) {
    SaveCollective c;
    c.rank = rank;
    c.world_size = size_;
    c.barrier = [this] { barrier(); };
    c.gather_to_root = [this, rank](const std::string& s) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        gathered_[rank] = s;
      }
      barrier();
      return rank == 0 ? gathered_ : std::vector<std::string>{};
    };
    return c;
  }

 private:
  int size_;
  int waiting_ = 0;
  int generation_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> gathered_;
};

// Two ranks: rank 0 holds the replicated tensor and expert rows [0, 2), rank 1 expert rows [2, 4).
void save_two_ranks(const std::string& dir, int64_t step, const torch::Tensor& replicated, const torch::Tensor& experts,
                    int64_t keep_last = 3) {
  ThreadGroup group(2);
  auto run = [&](int rank) {
    SaveRequest request;
    request.dir = dir;
    request.step = step;
    request.keep_last = keep_last;
    request.layout = {{"world_size", 2}, {"expert_parallel", 2}};
    request.rank_state = {{"rng", fmt::format("state-of-rank-{}", rank)}};
    request.shared_state = {{"loader_cursor", 17}};
    if (rank == 0) request.pieces.push_back({"model.norm.weight", replicated, {}, 0});
    request.pieces.push_back({"experts", experts.slice(0, 2 * rank, 2 * rank + 2),
                              std::vector<int64_t>(experts.sizes().begin(), experts.sizes().end()), 2 * rank});
    save_checkpoint(request, group.collective(rank));
  };
  std::thread other(run, 1);
  run(0);
  other.join();
}

class TrainingCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    replicated_ = torch::randn({8});
    experts_ = torch::randn({4, 3, 5}).to(torch::kBFloat16);
  }
  l4::testing::TempDir dir_;
  torch::Tensor replicated_, experts_;
};

TEST_F(TrainingCheckpointTest, RoundTripAcrossLayouts) {
  save_two_ranks(dir_.path(), 5, replicated_, experts_);
  auto latest = find_latest_valid(dir_.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 5);
  EXPECT_TRUE(torch::equal(latest->read("model.norm.weight"), replicated_));
  EXPECT_TRUE(torch::equal(latest->read("experts"), experts_));                     // one rank reads all
  EXPECT_TRUE(torch::equal(latest->read("experts", 1, 3), experts_.slice(0, 1, 3)));  // spans both pieces
  EXPECT_TRUE(torch::equal(latest->read("experts", 3, 4), experts_.slice(0, 3, 4)));  // ep = 4 layout
  EXPECT_EQ(latest->global_shape("experts"), (std::vector<int64_t>{4, 3, 5}));
  EXPECT_EQ(latest->trainer_state["ranks"][1]["rng"], "state-of-rank-1");
  EXPECT_EQ(latest->trainer_state["shared"]["loader_cursor"], 17);
  std::ifstream latest_file(dir_.file("latest"));
  std::string name;
  latest_file >> name;
  EXPECT_EQ(name, "step_0000005");
  EXPECT_THROW(latest->read("experts", 2, 9), Error);
  EXPECT_THROW(latest->read("nope"), Error);
}

TEST_F(TrainingCheckpointTest, KeepsOnlyTheNewest) {
  for (int64_t step : {1, 2, 3, 4}) save_two_ranks(dir_.path(), step, replicated_, experts_, /*keep_last=*/2);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("step_0000001")));
  EXPECT_FALSE(std::filesystem::exists(dir_.file("step_0000002")));
  EXPECT_TRUE(std::filesystem::exists(dir_.file("step_0000003")));
  EXPECT_TRUE(std::filesystem::exists(dir_.file("step_0000004")));
}

TEST_F(TrainingCheckpointTest, TruncatedShardFallsBackToThePreviousCheckpoint) {
  save_two_ranks(dir_.path(), 1, replicated_, experts_);
  save_two_ranks(dir_.path(), 2, replicated_ * 2, experts_);
  const std::string shard = dir_.file("step_0000002/rank_00001.h5");
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) / 2);
  try {
    open_checkpoint(dir_.file("step_0000002"));
    FAIL() << "truncated shard accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank_00001.h5"), std::string::npos) << e.what();
  }
  auto latest = find_latest_valid(dir_.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 1);
}

TEST_F(TrainingCheckpointTest, FlippedByteFailsTheCrc) {
  save_two_ranks(dir_.path(), 1, replicated_, experts_);
  save_two_ranks(dir_.path(), 2, replicated_, experts_);
  // Corrupt rank 0's data in place (same size): only the CRC can tell.
  const std::string shard = dir_.file("step_0000002/rank_00000.h5");
  const auto entry = find_latest_valid(dir_.path())->manifest["tensors"]["model.norm.weight"]["pieces"][0];
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // Find the float payload of the replicated tensor and flip one bit of its first value.
  const auto* raw = reinterpret_cast<const char*>(replicated_.data_ptr<float>());
  const size_t at = bytes.find(std::string(raw, 8 * 4));
  ASSERT_NE(at, std::string::npos);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(static_cast<char>(bytes[at] ^ 0x01));
  f.close();
  try {
    open_checkpoint(dir_.file("step_0000002"));
    FAIL() << "corrupt shard accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fails its CRC32 check"), std::string::npos) << e.what();
  }
  EXPECT_EQ(find_latest_valid(dir_.path())->step, 1);
}

TEST_F(TrainingCheckpointTest, LeftoverTmpAndMissingRankFileAreSkipped) {
  save_two_ranks(dir_.path(), 1, replicated_, experts_);
  save_two_ranks(dir_.path(), 2, replicated_, experts_);
  std::filesystem::create_directories(dir_.file("step_0000003.tmp"));  // a save killed with -9
  std::filesystem::remove(dir_.file("step_0000002/rank_00001.h5"));
  auto latest = find_latest_valid(dir_.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 1);
  EXPECT_FALSE(find_latest_valid(dir_.file("nothing_here")).has_value());
}

TEST_F(TrainingCheckpointTest, EditedTrainerStateOrManifestIsDamage) {
  save_two_ranks(dir_.path(), 1, replicated_, experts_);
  save_two_ranks(dir_.path(), 2, replicated_, experts_);
  save_two_ranks(dir_.path(), 3, replicated_, experts_);
  auto edit = [](const std::string& path, const std::string& from, const std::string& to) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << path;
    text.replace(at, from.size(), to);
    std::ofstream(path) << text;
  };
  edit(dir_.file("step_0000003/trainer_state.json"), "\"step\": 3", "\"step\": 7");
  edit(dir_.file("step_0000002/manifest.json"), "\"step\": 2", "\"step\": 9");
  for (const char* step : {"step_0000003", "step_0000002"}) {
    try {
      open_checkpoint(dir_.file(step));
      FAIL() << step << ": edited metadata accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("fails its CRC32 check"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(find_latest_valid(dir_.path())->step, 1);
}

TEST_F(TrainingCheckpointTest, EveryCheckpointDamagedIsAnErrorListingEach) {
  save_two_ranks(dir_.path(), 1, replicated_, experts_);
  save_two_ranks(dir_.path(), 2, replicated_, experts_);
  std::filesystem::remove(dir_.file("step_0000001/rank_00001.h5"));
  std::filesystem::remove(dir_.file("step_0000002/trainer_state.json"));
  try {
    find_latest_valid(dir_.path());
    FAIL() << "all-damaged checkpoint directory accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("step_0000001/rank_00001.h5: rank file missing"), std::string::npos) << what;
    EXPECT_NE(what.find("step_0000002/trainer_state.json: missing"), std::string::npos) << what;
    EXPECT_NE(what.find("checkpoint.resume: none"), std::string::npos) << what;
  }
}

TEST_F(TrainingCheckpointTest, RotationAfterAFallbackKeepsTheGoodAndTheNotYetSuperseded) {
  // keep_last 2: steps 2 and 4 good, 6 damaged; a run falls back to 4 and saves 5.
  for (int64_t step : {2, 4, 6}) save_two_ranks(dir_.path(), step, replicated_, experts_, /*keep_last=*/2);
  std::filesystem::remove(dir_.file("step_0000006/rank_00000.h5"));
  EXPECT_EQ(find_latest_valid(dir_.path())->step, 4);
  save_two_ranks(dir_.path(), 5, replicated_, experts_, /*keep_last=*/2);
  EXPECT_TRUE(std::filesystem::exists(dir_.file("step_0000004")));  // the last good one before 5
  EXPECT_TRUE(std::filesystem::exists(dir_.file("step_0000005")));
  EXPECT_TRUE(std::filesystem::exists(dir_.file("step_0000006")));  // damaged, but nothing good is newer yet
  EXPECT_FALSE(std::filesystem::exists(dir_.file("step_0000002")));
  save_two_ranks(dir_.path(), 7, replicated_, experts_, /*keep_last=*/2);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("step_0000006")));  // superseded by good step 7
  EXPECT_FALSE(std::filesystem::exists(dir_.file("step_0000004")));
  EXPECT_TRUE(std::filesystem::exists(dir_.file("step_0000005")));
  EXPECT_EQ(find_latest_valid(dir_.path())->step, 7);
}

}  // namespace
}  // namespace l4::checkpoint
