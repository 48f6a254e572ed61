#include "parallel/device_channel.h"

#include <torch/cuda.h>

#include "core/error.h"
#include "parallel/mpi_communicator.h"
#if defined(L4_HAVE_NCCL)
#include "parallel/nccl_communicator.h"
#endif

namespace l4::parallel {

at::Device rank_device(config::DeviceKind kind, const LaunchEnv& env, const std::string& where) {
  if (kind == config::DeviceKind::kCpu) return at::Device(at::kCPU);
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  L4_CHECK(gpus > 0,
           "{}: train.device=cuda but no CUDA device is usable (a CPU-only LibTorch, or no GPU visible)",
           where);
  L4_CHECK(
      env.local_rank < gpus,
      "{}: train.device=cuda runs one rank per GPU, but local rank {} was started on a node with {} visible "
      "GPU(s): start at most {} ranks per node (mpirun --npernode, Slurm --ntasks-per-node) or make more "
      "GPUs visible",
      where, env.local_rank, gpus, gpus);
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

std::unique_ptr<Communicator> make_device_channel(Communicator& host, const at::Device& device) {
  if (device.is_cpu()) return nullptr;
  if (host.size() == 1) return std::make_unique<SelfCommunicator>();
#if defined(L4_HAVE_NCCL)
  auto* mpi = dynamic_cast<MpiCommunicator*>(&host);
  L4_ASSERT(mpi != nullptr, "the NCCL device channel is bootstrapped over an MPI host communicator");
  return NcclCommunicator::create(*mpi, device.index(), "world");
#else
  L4_FAIL(
      "{} ranks on {}: this build has no NCCL communicator for GPU tensors (build against a CUDA LibTorch "
      "with NCCL found, L4_WITH_NCCL=AUTO/ON)",
      host.size(), device.str());
#endif
}

}  // namespace l4::parallel
