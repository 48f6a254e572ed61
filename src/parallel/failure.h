// Failure behaviour of a multi-rank job: an exception on one rank must end the whole job with one clear
// message instead of leaving the other ranks blocked in a collective forever.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace l4::parallel {

class Communicator;

// Runs `body`. If it throws, prints "llama4: rank R/W failed: <what>" once (from the failing rank) and
// aborts every rank of the job through `comm.abort()` (MPI_Abort / ncclCommAbort). Exit codes follow the
// CLI: 1 for l4::Error (user error), 2 for anything else. Returns normally only when `body` does.
void run_or_abort(Communicator& comm, const std::function<void()>& body);

// Formats the message run_or_abort prints (exposed for tests).
std::string failure_message(int rank, int world_size, const std::string& what);

// Watches the collective currently in flight on this process. If one lasts longer than `timeout_s`
// (a peer died, hangs or diverged), calls `on_timeout` with a message naming the rank, the operation and
// its number on the communicator, the timeout key (parallel.timeout_s) and the ranks that did not arrive;
// the default handler prints it, gives the launcher a moment to forward it, and aborts the job with exit
// code 3. Collectives are issued by one thread at a time (MPI_THREAD_SERIALIZED), so one slot suffices.
//
// Which ranks did not arrive cannot be asked over MPI (a stuck peer does not progress it, and this thread
// may not call it), so the watchdog threads talk through files in a directory every rank sees (the run
// directory): the rank C that times out writes "roll_call_C" with a fresh token, every rank's watchdog
// thread (alive even when its main thread is stuck) answers in "rank_R_for_C" with what it is doing, and a
// rank whose answer is not "inside this very collective" (or who does not answer: dead) did not arrive.
// Ranks that time out together (stuck in different collectives) answer each other while they wait.
class CollectiveWatchdog {
 public:
  using Handler = std::function<void(const std::string& message)>;
  CollectiveWatchdog(double timeout_s, int world_rank, Handler on_timeout = nullptr);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  double timeout_s() const { return timeout_s_; }

  // Enables the roll call through `dir` (created when a roll call is needed) for a job of `world_size` ranks.
  void set_roll_call(const std::string& dir, int world_size);

  // RAII mark of one collective; `watchdog` may be null (no watchdog configured). `members`: the world
  // ranks of the communicator (null: every rank).
  class Scope {
   public:
    Scope(CollectiveWatchdog* watchdog, const char* op, const std::string& comm_name,
          const std::vector<int>* members = nullptr);
    ~Scope();

   private:
    CollectiveWatchdog* watchdog_;
  };

 private:
  void loop();
  void answer_roll_call(bool throttle);  // called with mutex_ held
  std::string missing_ranks(const std::string& op, const std::string& comm, int64_t seq,
                            const std::vector<int>& members);

  double timeout_s_;
  int world_rank_;
  Handler on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool active_ = false;
  bool fired_ = false;
  const char* op_ = "";
  std::string comm_name_;
  std::vector<int> members_;
  int64_t seq_ = 0;                         // number of the current (or last) collective on comm_name_
  std::map<std::string, int64_t> entered_;  // collectives entered per communicator
  double started_ = 0.0;
  std::string roll_call_dir_;
  int world_size_ = 0;
  std::map<std::string, std::string> answered_tokens_;  // per asking rank, the last token answered
  double last_roll_call_check_ = 0.0;
  std::thread thread_;
};

}  // namespace l4::parallel
