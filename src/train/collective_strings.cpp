#include "train/collective_strings.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>

#include "parallel/communicator.h"

namespace l4::train {

std::vector<std::string> all_gather_strings(parallel::Communicator& comm, const std::string& mine) {
  // Two rounds: lengths, then the bytes padded to the longest.
  const at::Tensor lengths = comm.all_gather(at::full({1}, static_cast<int64_t>(mine.size()), at::kLong));
  const int64_t longest = lengths.max().item<int64_t>();
  at::Tensor padded = at::zeros({1, std::max<int64_t>(longest, 1)}, at::kByte);
  std::memcpy(padded.data_ptr<uint8_t>(), mine.data(), mine.size());
  const at::Tensor all = comm.all_gather(padded).contiguous();
  std::vector<std::string> out;
  for (int r = 0; r < comm.size(); ++r) {
    const auto* row = all[r].data_ptr<uint8_t>();
    out.emplace_back(reinterpret_cast<const char*>(row), static_cast<size_t>(lengths[r].item<int64_t>()));
  }
  return out;
}

std::string broadcast_string(parallel::Communicator& comm, const std::string& value, int root) {
  at::Tensor length = at::full({1}, static_cast<int64_t>(value.size()), at::kLong);
  comm.broadcast(length, root);
  at::Tensor bytes = at::zeros({std::max<int64_t>(length.item<int64_t>(), 1)}, at::kByte);
  if (comm.rank() == root) std::memcpy(bytes.data_ptr<uint8_t>(), value.data(), value.size());
  comm.broadcast(bytes, root);
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()),
                     static_cast<size_t>(length.item<int64_t>()));
}

}  // namespace l4::train
