#include "parallel/mpi_runtime.h"

#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "parallel/failure.h"
#include "parallel/mpi_communicator.h"

namespace l4::parallel {
namespace {

// Never destroyed by static destructors: finalize() (registered with atexit) tears it down in order.
MpiRuntime* g_runtime = nullptr;
std::mutex g_mutex;

}  // namespace

MpiRuntime& MpiRuntime::init(const DistributedOptions& options) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_runtime != nullptr) return *g_runtime;
  int finalized = 0;
  MPI_Finalized(&finalized);
  L4_CHECK(!finalized, "MPI was already finalized; init_distributed() must run before MPI_Finalize");
  auto* runtime = new MpiRuntime();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      delete runtime;
      L4_FAIL("MPI_Init_thread failed");
    }
    runtime->owns_mpi_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      L4_LOG_WARN("MPI provides thread level {} only; collectives must stay on the main thread", provided);
    }
    std::atexit([] { MpiRuntime::finalize(); });
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &runtime->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &runtime->size_);
  log::set_rank(runtime->rank_, runtime->size_);
  if (options.collective_timeout_s > 0) {
    runtime->watchdog_ = std::make_shared<CollectiveWatchdog>(options.collective_timeout_s, runtime->rank_);
    if (!options.roll_call_dir.empty())
      runtime->watchdog_->set_roll_call(options.roll_call_dir, runtime->size_);
  }
  runtime->world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false, "world", runtime->watchdog_);
  g_runtime = runtime;
  return *runtime;
}

bool MpiRuntime::active() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_runtime != nullptr;
}

Communicator& MpiRuntime::world() { return *world_; }
MpiCommunicator& MpiRuntime::mpi_world() { return *world_; }

void MpiRuntime::finalize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_runtime == nullptr) return;
  MpiRuntime* runtime = g_runtime;
  g_runtime = nullptr;
  runtime->world_.reset();
  runtime->watchdog_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (runtime->owns_mpi_ && !finalized) MPI_Finalize();
  delete runtime;
}

MpiRuntime& init_distributed(const DistributedOptions& options) { return MpiRuntime::init(options); }

}  // namespace l4::parallel
