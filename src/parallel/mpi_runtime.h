// MPI lifecycle: initialise once (under mpirun/srun or as a singleton when started directly), expose the
// world communicator, finalize at exit.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace l4::parallel {

class CollectiveWatchdog;
class MpiCommunicator;

struct DistributedOptions {
  // A collective running longer than this aborts the job (0 = no watchdog).
  double collective_timeout_s = 0.0;
  // Directory every rank sees (the run directory's .collectives) through which the watchdog of a rank that
  // times out asks the others where they are; empty: the message cannot name the ranks that did not arrive.
  std::string roll_call_dir;
};

class MpiRuntime {
 public:
  // Initialises MPI (MPI_Init_thread with MPI_THREAD_SERIALIZED: collectives may come from autograd's
  // worker thread, one at a time) unless someone already did, sets the log rank, and registers
  // MPI_Finalize at exit. Later calls return the same runtime; their options are ignored.
  static MpiRuntime& init(const DistributedOptions& options = {});
  // True after init() and before finalize().
  static bool active();

  Communicator& world();
  MpiCommunicator& mpi_world();
  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::shared_ptr<CollectiveWatchdog>& watchdog() const { return watchdog_; }

  // Frees the world communicator and calls MPI_Finalize (only if init() initialised MPI). Idempotent;
  // runs automatically at exit. Sub-communicators destroyed later skip MPI_Comm_free.
  static void finalize();

 private:
  MpiRuntime() = default;

  int rank_ = 0;
  int size_ = 1;
  bool owns_mpi_ = false;
  std::shared_ptr<CollectiveWatchdog> watchdog_;
  std::unique_ptr<MpiCommunicator> world_;
};

// Shorthand for MpiRuntime::init(options).
MpiRuntime& init_distributed(const DistributedOptions& options = {});

}  // namespace l4::parallel
