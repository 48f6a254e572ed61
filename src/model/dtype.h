// Recipe dtypes as LibTorch scalar types.
#pragma once

#include <c10/core/ScalarType.h>

#include "config/options.h"

namespace l4::model {

inline at::ScalarType scalar_type(config::DType dtype) {
  return dtype == config::DType::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

}  // namespace l4::model
