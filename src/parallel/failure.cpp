#include "parallel/failure.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "parallel/communicator.h"

namespace l4::parallel {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Small files of the roll call (read back with read_file_or_empty: "" when absent), written through a
// rename so that a reader never sees half an answer. Errors are ignored: the roll call only improves a
// message.
void write_small_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.good()) return;
  }
  std::error_code ignored;
  std::filesystem::rename(tmp, path, ignored);
}

void print_line(const std::string& line) {
  std::fputs(line.c_str(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

std::string failure_message(int rank, int world_size, const std::string& what) {
  return fmt::format("llama4: rank {}/{} failed: {} (aborting all ranks)", rank, world_size, what);
}

void run_or_abort(Communicator& comm, const std::function<void()>& body) {
  int code = 0;
  std::string what;
  try {
    body();
    return;
  } catch (const l4::Error& e) {
    code = 1;
    what = e.what();
  } catch (const std::exception& e) {
    code = 2;
    what = e.what();
  } catch (...) {
    code = 2;
    what = "unknown exception";
  }
  print_line(failure_message(comm.rank(), comm.size(), what));
  comm.abort(code);
}

CollectiveWatchdog::CollectiveWatchdog(double timeout_s, int world_rank, Handler on_timeout)
    : timeout_s_(timeout_s), world_rank_(world_rank), on_timeout_(std::move(on_timeout)) {
  L4_CHECK(timeout_s > 0, "collective timeout must be positive, got {} s", timeout_s);
  if (!on_timeout_) {
    on_timeout_ = [](const std::string& message) {
      print_line(message);
      // mpirun forwards a rank's output asynchronously and stops forwarding once the abort kills the
      // ranks: without a pause the one line that says what happened can be lost.
      std::this_thread::sleep_for(std::chrono::seconds(1));
      MPI_Abort(MPI_COMM_WORLD, 3);
    };
  }
  thread_ = std::thread([this] { loop(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void CollectiveWatchdog::set_roll_call(const std::string& dir, int world_size) {
  std::lock_guard<std::mutex> lock(mutex_);
  roll_call_dir_ = dir;
  world_size_ = world_size;
}

CollectiveWatchdog::Scope::Scope(CollectiveWatchdog* watchdog, const char* op, const std::string& comm_name,
                                 const std::vector<int>* members)
    : watchdog_(watchdog) {
  if (watchdog_ == nullptr) return;
  std::lock_guard<std::mutex> lock(watchdog_->mutex_);
  watchdog_->active_ = true;
  watchdog_->op_ = op;
  watchdog_->comm_name_ = comm_name;
  watchdog_->seq_ = ++watchdog_->entered_[comm_name];
  if (members != nullptr) {
    watchdog_->members_ = *members;
  } else {
    watchdog_->members_.clear();
  }
  watchdog_->started_ = now_s();
}

CollectiveWatchdog::Scope::~Scope() {
  if (watchdog_ == nullptr) return;
  std::lock_guard<std::mutex> lock(watchdog_->mutex_);
  watchdog_->active_ = false;
}

void CollectiveWatchdog::answer_roll_call(bool throttle) {
  // Once a second at most: the directory may be on a shared file system that every rank polls. It exists
  // only once some rank has timed out, so until then a look costs one failed directory open.
  if (roll_call_dir_.empty() || (throttle && now_s() - last_roll_call_check_ < 1.0)) return;
  last_roll_call_check_ = now_s();
  // Each rank that timed out asks through its own roll_call_<rank> file: ranks that time out together
  // (each stuck in a different collective) ask and answer one another.
  std::error_code error;
  std::filesystem::directory_iterator entries(roll_call_dir_, error);
  if (error) return;
  for (const auto& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("roll_call_", 0) != 0) continue;
    const std::string caller = name.substr(std::string("roll_call_").size());
    if (caller == std::to_string(world_rank_)) continue;
    const std::string token = read_file_or_empty(entry.path().string());
    if (token.empty() || answered_tokens_[caller] == token) continue;
    answered_tokens_[caller] = token;
    // "<token>\n<in|out> <seq> <comm> <op>": inside the collective or not, and which one (the last one
    // when out).
    write_small_file(fmt::format("{}/rank_{}_for_{}", roll_call_dir_, world_rank_, caller),
                     fmt::format("{}\n{} {} {} {}", token, active_ ? "in" : "out", seq_, comm_name_, op_));
  }
}

std::string CollectiveWatchdog::missing_ranks(const std::string& op, const std::string& comm, int64_t seq,
                                              const std::vector<int>& members) {
  std::string dir;
  int world_size = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dir = roll_call_dir_;
    world_size = world_size_;
  }
  if (dir.empty()) return "the ranks that did not arrive are unknown (no run directory to ask them through)";
  std::vector<int> peers = members;
  if (peers.empty()) {
    for (int r = 0; r < world_size; ++r) peers.push_back(r);
  }
  const std::string token = fmt::format("{}-{:.6f}", world_rank_, now_s());
  std::error_code ignored;
  std::filesystem::create_directories(dir, ignored);  // only now: a run that never times out leaves nothing
  write_small_file(fmt::format("{}/roll_call_{}", dir, world_rank_), token);
  // Every watchdog thread looks once a second; a live one answers well within the 3 s wait. This one
  // answers too while it waits: a rank that timed out at the same moment is asking it.
  std::map<int, std::string> answers;
  for (int tries = 0; tries < 60; ++tries) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      answer_roll_call(/*throttle=*/false);
    }
    for (int r : peers) {
      if (r == world_rank_ || answers.count(r) != 0) continue;
      const std::string text = read_file_or_empty(fmt::format("{}/rank_{}_for_{}", dir, r, world_rank_));
      if (text.rfind(token + "\n", 0) == 0) answers[r] = text.substr(token.size() + 1);
    }
    if (answers.size() + 1 >= peers.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string here = fmt::format("in {} {}", seq, comm);
  std::vector<std::string> missing;
  for (int r : peers) {
    if (r == world_rank_) continue;
    const auto it = answers.find(r);
    if (it == answers.end()) {
      missing.push_back(fmt::format("{} (no answer: dead, or its whole process is stuck)", r));
      continue;
    }
    std::istringstream fields(it->second);
    std::string where, their_comm, their_op;
    int64_t their_seq = 0;
    fields >> where >> their_seq >> their_comm;
    std::getline(fields, their_op);
    if (!their_op.empty() && their_op[0] == ' ') their_op.erase(0, 1);
    if (where == "in" && their_seq == seq && their_comm == comm) continue;  // arrived
    if (where == "in") {
      missing.push_back(
          fmt::format("{} (waiting in {} #{} on '{}' instead)", r, their_op, their_seq, their_comm));
    } else {
      missing.push_back(fmt::format("{} (running outside any collective; its last was {} #{} on '{}')", r,
                                    their_seq > 0 ? their_op : "none", their_seq, their_comm));
    }
  }
  (void)op;
  if (missing.empty()) return "every rank arrived (one of them failed inside it)";
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  return "ranks that did not arrive: " + list;
}

void CollectiveWatchdog::loop() {
  // Poll a few times per timeout period; exactness does not matter, only that a hang ends.
  const auto period = std::chrono::duration<double>(std::min(0.2, timeout_s_ / 4));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, period);
    if (stop_) continue;
    answer_roll_call(/*throttle=*/true);
    if (!active_ || fired_) continue;
    const double elapsed = now_s() - started_;
    if (elapsed <= timeout_s_) continue;
    fired_ = true;
    const std::string op = op_, comm = comm_name_;
    const int64_t seq = seq_;
    const std::vector<int> members = members_;
    lock.unlock();
    const std::string message = fmt::format(
        "llama4: rank {}: collective {} #{} on communicator '{}' did not complete within {} s "
        "(parallel.timeout_s); {}; aborting all ranks",
        world_rank_, op, seq, comm, timeout_s_, missing_ranks(op, comm, seq, members));
    on_timeout_(message);
    lock.lock();
  }
}

}  // namespace l4::parallel
