#include "checkpoint/state.h"

#include "core/error.h"

namespace l4::checkpoint {
namespace {

const nlohmann::json& member(const nlohmann::json& object, const std::string& key) {
  static const nlohmann::json null_value;
  if (!object.is_object()) return null_value;
  auto it = object.find(key);
  return it == object.end() ? null_value : *it;
}

}  // namespace

StateWriter::StateWriter(std::function<bool(const parallel::Placement&)> writes_here)
    : writes_here_(std::move(writes_here)) {}

void StateWriter::tensor(const std::string& name, const at::Tensor& value,
                         const parallel::Placement& placement) {
  if (!writes_here_(placement)) return;
  TensorPiece piece{name, value, {}, 0};
  if (placement.is_sharded()) {
    L4_ASSERT(placement.dim == 0 && value.dim() > 0, "'{}': only dim-0 shards are saved as row pieces", name);
    piece.global_shape = placement.global_shape(value.sizes());
    piece.row_begin = placement.offset;
  }
  pieces_.push_back(std::move(piece));
}

void StateWriter::shared(const std::string& key, nlohmann::json value) {
  shared_[key] = std::move(value);
}

void StateWriter::per_rank(const std::string& key, nlohmann::json value) {
  per_rank_[key] = std::move(value);
}

void StateWriter::fill(SaveRequest& request) {
  request.pieces = std::move(pieces_);
  request.shared_state = std::move(shared_);
  request.rank_state = std::move(per_rank_);
}

StateReader::StateReader(const Checkpoint& checkpoint, int rank, int world_size) : checkpoint_(checkpoint) {
  const nlohmann::json& ranks = member(checkpoint.trainer_state, "ranks");
  if (ranks.is_array() && !ranks.empty()) {
    const size_t mine = ranks.size() == static_cast<size_t>(world_size) ? static_cast<size_t>(rank) : 0;
    mine_ = &ranks.at(mine);
  }
}

bool StateReader::has_tensor(const std::string& name) const {
  return checkpoint_.manifest.at("tensors").contains(name);
}

at::Tensor StateReader::tensor(const std::string& name, const parallel::Placement& placement,
                               int64_t local_rows) const {
  L4_CHECK(has_tensor(name), "{}: the checkpoint has no tensor '{}'", checkpoint_.path, name);
  if (!placement.is_sharded()) return checkpoint_.read(name);
  L4_ASSERT(placement.dim == 0 && local_rows >= 0, "'{}': sharded tensors are read as dim-0 rows", name);
  return checkpoint_.read(name, placement.offset, placement.offset + local_rows);
}

const nlohmann::json& StateReader::shared(const std::string& key) const {
  return member(member(checkpoint_.trainer_state, "shared"), key);
}

const nlohmann::json& StateReader::per_rank(const std::string& key) const {
  static const nlohmann::json null_value;
  return mine_ ? member(*mine_, key) : null_value;
}

}  // namespace l4::checkpoint
