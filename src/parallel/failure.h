// Failure behaviour of a multi-rank job: an exception on one rank must end the whole job with one clear
// message instead of leaving the other ranks blocked in a collective forever.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace l4::parallel {

class Communicator;

// Runs `body`. If it throws, prints "llama4: rank R/W failed: <what>" once (from the failing rank) and
// aborts every rank of the job through `comm.abort()` (MPI_Abort / ncclCommAbort). Exit codes follow the
// CLI: 1 for l4::Error (user error), 2 for anything else. Returns normally only when `body` does.
void run_or_abort(Communicator& comm, const std::function<void()>& body);

// Formats the message run_or_abort prints (exposed for tests).
std::string failure_message(int rank, int world_size, const std::string& what);

// Watches the collective currently in flight on this process. If one lasts longer than `timeout_s`
// (a peer died or diverged), calls `on_timeout` with a message naming the rank, the communicator and
// the operation; the default handler prints it and aborts the job with exit code 3. Collectives are
// issued by one thread at a time (MPI_THREAD_SERIALIZED), so one slot suffices.
class CollectiveWatchdog {
 public:
  using Handler = std::function<void(const std::string& message)>;
  CollectiveWatchdog(double timeout_s, int world_rank, Handler on_timeout = nullptr);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  double timeout_s() const { return timeout_s_; }

  // RAII mark of one collective; `watchdog` may be null (no watchdog configured).
  class Scope {
   public:
    Scope(CollectiveWatchdog* watchdog, const char* op, const std::string& comm_name);
    ~Scope();

   private:
    CollectiveWatchdog* watchdog_;
  };

 private:
  void loop();

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
  double started_ = 0.0;
  std::thread thread_;
};

}  // namespace l4::parallel
