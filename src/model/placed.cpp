#include "model/placed.h"

#include "core/error.h"

namespace l4::model {

std::vector<PlacedParam> placed_parameters(const torch::nn::Module& root) {
  std::vector<PlacedParam> out;
  // named_modules() is pre-order with the root first, and named_parameters() lists a module's own
  // parameters before its children's: walking modules and taking each one's direct parameters keeps that
  // order.
  for (const auto& item : root.named_modules("", /*include_self=*/true)) {
    const auto* placed = dynamic_cast<const PlacedModule*>(item.value().get());
    const parallel::Placement placement = placed ? placed->placement() : parallel::Placement::replicated();
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      out.push_back({item.key().empty() ? p.key() : item.key() + "." + p.key(), p.value(), placement});
    }
  }
  return out;
}

RowRange stored_rows(const PlacedParam& p) {
  if (!p.placement.is_sharded()) return {};
  L4_CHECK(p.placement.dim == 0 && p.param.dim() > 0,
           "'{}' is {}: only dim-0 shards are stored as row pieces", p.name,
           p.placement.describe(p.param.dim() > 0 ? p.param.size(p.placement.dim) : -1));
  return {p.placement.offset, p.placement.offset + p.param.size(0)};
}

}  // namespace l4::model
