// Rank and world size as the launcher (mpirun, srun) announced them in the environment, readable
// before MPI is initialised: used for logging and to decide whether MPI is needed at all.
#pragma once

namespace l4 {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;           // ranks the launcher started on this machine
  bool under_launcher = false;  // true when an MPI/Slurm launcher started this process
};

LaunchEnv detect_launch_env();

// True when the process runs as root (mpirun needs extra flags then).
bool running_as_root();

}  // namespace l4
