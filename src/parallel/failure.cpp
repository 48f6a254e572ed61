#include "parallel/failure.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "parallel/communicator.h"

namespace l4::parallel {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
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

CollectiveWatchdog::Scope::Scope(CollectiveWatchdog* watchdog, const char* op, const std::string& comm_name)
    : watchdog_(watchdog) {
  if (watchdog_ == nullptr) return;
  std::lock_guard<std::mutex> lock(watchdog_->mutex_);
  watchdog_->active_ = true;
  watchdog_->op_ = op;
  watchdog_->comm_name_ = comm_name;
  watchdog_->started_ = now_s();
}

CollectiveWatchdog::Scope::~Scope() {
  if (watchdog_ == nullptr) return;
  std::lock_guard<std::mutex> lock(watchdog_->mutex_);
  watchdog_->active_ = false;
}

void CollectiveWatchdog::loop() {
  // Poll a few times per timeout period; exactness does not matter, only that a hang ends.
  const auto period = std::chrono::duration<double>(std::min(0.2, timeout_s_ / 4));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, period);
    if (stop_ || !active_ || fired_) continue;
    const double elapsed = now_s() - started_;
    if (elapsed <= timeout_s_) continue;
    fired_ = true;
    const std::string message = fmt::format(
        "llama4: rank {}: collective {} on communicator '{}' did not complete within {} s (a peer rank failed "
        "or diverged); aborting all ranks",
        world_rank_, op_, comm_name_, timeout_s_);
    lock.unlock();
    on_timeout_(message);
    lock.lock();
  }
}

}  // namespace l4::parallel
