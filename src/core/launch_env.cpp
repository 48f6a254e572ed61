#include "core/launch_env.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace l4 {
namespace {

bool read_int(const char* name, int* out) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return false;
  try {
    *out = std::stoi(value);
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

LaunchEnv detect_launch_env() {
  LaunchEnv env;
  // Open MPI first, then PMIx / Hydra, then Slurm's own variables.
  const char* rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
  const char* size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
  const char* local_vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  for (const char* name : rank_vars) {
    if (read_int(name, &env.rank)) {
      env.under_launcher = true;
      break;
    }
  }
  for (const char* name : size_vars) {
    if (read_int(name, &env.world_size)) break;
  }
  for (const char* name : local_vars) {
    if (read_int(name, &env.local_rank)) break;
  }
  // SLURM_NTASKS_PER_NODE may read "2(x3)": its leading number is what this node runs.
  const char* local_size_vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"};
  for (const char* name : local_size_vars) {
    if (read_int(name, &env.local_size)) break;
  }
  if (env.local_size < 1) env.local_size = 1;
  return env;
}

bool running_as_root() { return ::geteuid() == 0; }

}  // namespace l4
