// The choice-valued options of recipes, as enums with one name table each (the names users write in YAML).
// The config visitor reads and prints them through enum_names(), so unknown values get "expected one of ...
// (did you mean ...)" with file and line like every other key, and code compares enumerators, not strings.
#pragma once

#include <string>
#include <vector>

#include "config/visitor.h"

namespace l4::config {

enum class DType { kFloat32, kBFloat16 };          // parameter storage: float32 | bfloat16
enum class Precision { kFp32, kBf16 };             // compute: fp32 | bf16 (autocast, fp32 master weights)
enum class DeviceKind { kCpu, kCuda };             // cpu | cuda
enum class OnNan { kSkip, kStop };                 // non-finite loss or gradient: skip the update | stop
enum class Decay { kConstant, kCosine, kLinear };  // learning-rate decay after warm-up
enum class LogLevel { kDebug, kInfo, kWarn, kError };
// Activations recomputed in backward instead of kept: none | moe (the routed experts' matmuls) | full (every
// decoder layer).
enum class ActivationCheckpointing { kNone, kMoe, kFull };

#define L4_ENUM_NAMES(Enum, ...)                                 \
  inline const std::vector<std::string>& enum_names(Enum) {      \
    static const std::vector<std::string> names = {__VA_ARGS__}; \
    return names;                                                \
  }
L4_ENUM_NAMES(DType, "float32", "bfloat16")
L4_ENUM_NAMES(Precision, "fp32", "bf16")
L4_ENUM_NAMES(DeviceKind, "cpu", "cuda")
L4_ENUM_NAMES(OnNan, "skip", "stop")
L4_ENUM_NAMES(Decay, "constant", "cosine", "linear")
L4_ENUM_NAMES(LogLevel, "debug", "info", "warn", "error")
L4_ENUM_NAMES(ActivationCheckpointing, "none", "moe", "full")
#undef L4_ENUM_NAMES

// The YAML name of an enumerator ("bfloat16").
template <class E>
const std::string& name_of(E value) {
  return enum_names(value).at(static_cast<size_t>(value));
}

}  // namespace l4::config
