// A training run owns its directories: `<dir>/.llama4.lock` holds the host and pid of the run writing there,
// so a second run into the same run or checkpoint directory stops before it interleaves metrics or races a
// checkpoint save. A lock whose holder is dead (same host, no such process) is stale and taken over.
#pragma once

#include <string>
#include <vector>

namespace l4::train {

class RunLocks {
 public:
  RunLocks() = default;
  RunLocks(const RunLocks&) = delete;
  RunLocks& operator=(const RunLocks&) = delete;
  ~RunLocks();  // removes the lock files this object took (if they are still ours)

  // Takes `<dir>/.llama4.lock` (creating `dir`); l4::Error naming the holder's host and pid and the lock file
  // when a live process (or one on another host, which cannot be checked) holds it. Idempotent per dir.
  void acquire(const std::string& dir);

 private:
  std::vector<std::string> files_;
  std::string content_;
};

// "<hostname> <pid>": what a lock file holds.
std::string lock_holder_text();

}  // namespace l4::train
