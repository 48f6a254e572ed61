// The training device of this rank and the communicator for tensors on it (ProcessGrid's device channel).
// One rank per GPU: the GPU index is the rank's local rank on its node (Open MPI's / Slurm's local-rank
// variables), so 8 ranks on a node of 8 GPUs drive GPUs 0..7.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "config/options.h"
#include "core/launch_env.h"
#include "parallel/communicator.h"

namespace l4::parallel {

// CPU, or CUDA device `env.local_rank`. l4::Error (naming `where`) when CUDA is asked for and no GPU is
// usable, or the node has fewer GPUs than local ranks.
at::Device rank_device(config::DeviceKind kind, const LaunchEnv& env, const std::string& where);

// nullptr on the CPU (the host communicator serves as the device channel). On CUDA: the identity for one
// rank, otherwise an NCCL communicator bootstrapped over `host` (collective); l4::Error when this build has
// no NCCL.
std::unique_ptr<Communicator> make_device_channel(Communicator& host, const at::Device& device);

}  // namespace l4::parallel
