// The collective watchdog's roll call: a rank that times out names the ranks that did not arrive and
// what they are doing, also when they time out at the same moment in another collective (each then
// asks and answers the other while it waits).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/temp_dir.h"
#include "parallel/failure.h"

namespace l4::parallel {
namespace {

struct Messages {
  std::mutex mutex;
  std::string by_rank[2];
  bool both() {
    std::lock_guard<std::mutex> lock(mutex);
    return !by_rank[0].empty() && !by_rank[1].empty();
  }
  CollectiveWatchdog::Handler handler(int rank) {
    return [this, rank](const std::string& message) {
      std::lock_guard<std::mutex> lock(mutex);
      by_rank[rank] = message;
    };
  }
};

// Two watchdogs of a 2-rank job (0.3 s timeout) that share one roll-call directory.
struct TwoRanks {
  l4::testing::TempDir dir;
  Messages messages;
  CollectiveWatchdog rank0{0.3, 0, messages.handler(0)};
  CollectiveWatchdog rank1{0.3, 1, messages.handler(1)};
  TwoRanks() {
    rank0.set_roll_call(dir.path(), 2);
    rank1.set_roll_call(dir.path(), 2);
  }
};

void wait_for(const std::function<bool()>& done) {
  for (int i = 0; i < 200 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

TEST(CollectiveWatchdog, RanksStuckInDifferentCollectivesNameEachOther) {
  TwoRanks job;
  CollectiveWatchdog& rank0 = job.rank0;
  CollectiveWatchdog& rank1 = job.rank1;
  Messages& messages = job.messages;
  {
    CollectiveWatchdog::Scope in0(&rank0, "all_reduce", "world");
    CollectiveWatchdog::Scope in1(&rank1, "all_to_all_v", "ep");
    wait_for([&] { return messages.both(); });
  }
  ASSERT_TRUE(messages.both());
  EXPECT_NE(messages.by_rank[0].find("collective all_reduce #1 on communicator 'world' did not complete"),
            std::string::npos)
      << messages.by_rank[0];
  EXPECT_NE(
      messages.by_rank[0].find("ranks that did not arrive: 1 (waiting in all_to_all_v #1 on 'ep' instead)"),
      std::string::npos)
      << messages.by_rank[0];
  EXPECT_NE(
      messages.by_rank[1].find("ranks that did not arrive: 0 (waiting in all_reduce #1 on 'world' instead)"),
      std::string::npos)
      << messages.by_rank[1];
}

TEST(CollectiveWatchdog, ARankOutsideAnyCollectiveIsNamedWithItsLast) {
  TwoRanks job;
  CollectiveWatchdog& rank0 = job.rank0;
  CollectiveWatchdog& rank1 = job.rank1;
  Messages& messages = job.messages;
  { CollectiveWatchdog::Scope done(&rank1, "barrier", "world"); }  // rank 1 finished one collective
  { CollectiveWatchdog::Scope first(&rank0, "barrier", "world"); }
  {
    CollectiveWatchdog::Scope second(&rank0, "barrier", "world");  // rank 0 waits in its second
    wait_for([&] {
      std::lock_guard<std::mutex> lock(messages.mutex);
      return !messages.by_rank[0].empty();
    });
  }
  EXPECT_NE(
      messages.by_rank[0].find("1 (running outside any collective; its last was barrier #1 on 'world')"),
      std::string::npos)
      << messages.by_rank[0];
  EXPECT_TRUE(messages.by_rank[1].empty()) << messages.by_rank[1];
}

}  // namespace
}  // namespace l4::parallel
