// Precompiled header shared by every target that uses LibTorch (see cmake/L4Helpers.cmake).
// Only translation units include torch; headers in src/ never do.
#pragma once
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
