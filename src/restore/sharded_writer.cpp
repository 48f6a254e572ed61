#include "restore/sharded_writer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>

#include "checkpoint/fd_writer.h"
#include "checkpoint/hf_model_dir.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/weight_source.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"

namespace l4::restore {
namespace {

namespace fs = std::filesystem;

uint64_t planned_bytes(const PlannedTensor& t) {
  uint64_t n = checkpoint::dtype_itemsize(t.dtype);
  L4_CHECK(n > 0, "tensor '{}': unknown safetensors dtype '{}'", t.name, t.dtype);
  for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
  return n;
}

// One safetensors file in HF's byte layout (as checkpoint::save_safetensors writes it: names sorted, header
// padded with spaces to 8 bytes, {"format": "pt"} metadata), its data streamed tensor by tensor.
void write_shard(const std::string& path, std::vector<const PlannedTensor*> tensors,
                 const TensorProducer& produce) {
  std::sort(tensors.begin(), tensors.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const PlannedTensor* t : tensors) {
    const uint64_t n = planned_bytes(*t);
    header[t->name] = {{"dtype", t->dtype}, {"shape", t->shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  checkpoint::FdWriter out(path);
  checkpoint::write_safetensors_header(out, header.dump());
  for (const PlannedTensor* t : tensors) {
    uint64_t written = 0;
    const uint64_t want = planned_bytes(*t);
    produce(*t, [&](const at::Tensor& piece) {
      const at::Tensor value = piece.detach().to(at::kCPU).contiguous();
      const std::string dtype = checkpoint::dtype_of(value.scalar_type());
      L4_ASSERT(dtype == t->dtype, "tensor '{}': a piece of dtype {}, planned {}", t->name, dtype, t->dtype);
      const uint64_t n = static_cast<uint64_t>(value.nbytes());
      L4_ASSERT(written + n <= want, "tensor '{}': more than its {} bytes produced", t->name, want);
      out.write(value.data_ptr(), static_cast<size_t>(n));
      written += n;
    });
    L4_ASSERT(written == want, "tensor '{}': {} of its {} bytes produced", t->name, written, want);
  }
  out.commit();
}

bool is_weights_file_name(const std::string& name) {
  static const std::regex shard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  return name == checkpoint::kSingleWeightsFile || name == checkpoint::kWeightsIndexFile ||
         std::regex_match(name, shard);
}

}  // namespace

int64_t parse_shard_size(const std::string& text, const std::string& flag) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, int64_t> kUnits[] = {{"", 1},
                                                           {"B", 1},
                                                           {"KB", 1000},
                                                           {"MB", 1000'000},
                                                           {"GB", 1000'000'000},
                                                           {"KIB", 1LL << 10},
                                                           {"MIB", 1LL << 20},
                                                           {"GIB", 1LL << 30}};
  int64_t scale = 0;
  for (const auto& [name, value] : kUnits)
    if (unit == name) scale = value;
  L4_CHECK(digits > 0 && digits <= 15 && scale > 0,
           "{}: '{}' is not a size (expected bytes or a number with KB, MB, GB, KiB, MiB or GiB, e.g. 5GB)",
           flag, text);
  const int64_t bytes = std::stoll(text.substr(0, digits)) * scale;
  L4_CHECK(bytes > 0, "{}: the shard size must be positive, got '{}'", flag, text);
  return bytes;
}

void check_output_outside(const std::string& output, const std::string& input, const std::string& what) {
  if (input.empty()) return;
  // Symbolic links resolved where the path exists, "." / ".." and a trailing '/' removed.
  auto resolved = [](const std::string& path) {
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
    if (ec) p = fs::absolute(path);
    p = p.lexically_normal();
    return p.has_filename() ? p : p.parent_path();
  };
  std::error_code ec;
  const fs::path out = resolved(output), in = resolved(input);
  fs::path in_dir = in;
  if (fs::is_regular_file(in, ec)) in_dir = in.parent_path();
  const auto [end, _] = std::mismatch(in_dir.begin(), in_dir.end(), out.begin(), out.end());
  L4_CHECK(end != in_dir.end(),
           "--output {} is {} {} or inside it: write the merged model to another directory", output, what,
           input);
}

void write_sharded_model(const std::string& dir, const std::vector<PlannedTensor>& plan,
                         const TensorProducer& produce, int64_t max_shard_bytes) {
  L4_CHECK(max_shard_bytes > 0, "{}: max shard size must be positive, got {}", dir, max_shard_bytes);
  std::error_code ec;
  fs::create_directories(dir, ec);
  L4_CHECK(is_directory(dir), "{}: cannot create directory: {}", dir, ec.message());

  std::set<std::string> seen;
  std::vector<std::vector<const PlannedTensor*>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0, total_params = 0;
  for (const PlannedTensor& t : plan) {
    L4_CHECK(seen.insert(t.name).second, "{}: tensor '{}' given twice", dir, t.name);
    const uint64_t n = planned_bytes(t);
    if (!shards.back().empty() && shard_bytes + n > static_cast<uint64_t>(max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += n;
    total_bytes += n;
    total_params += n / checkpoint::dtype_itemsize(t.dtype);
  }

  std::set<std::string> written;
  if (shards.size() == 1) {
    write_shard((fs::path(dir) / checkpoint::kSingleWeightsFile).string(), shards[0], produce);
    written.insert(checkpoint::kSingleWeightsFile);
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      write_shard((fs::path(dir) / name).string(), shards[i], produce);
      for (const PlannedTensor* t : shards[i]) weight_map[t->name] = name;
      written.insert(name);
      L4_LOG_INFO("wrote {} ({} tensors)", name, shards[i].size());
    }
    const nlohmann::json index = {
        {"metadata", {{"total_parameters", total_params}, {"total_size", total_bytes}}},
        {"weight_map", weight_map}};
    write_file_atomic((fs::path(dir) / checkpoint::kWeightsIndexFile).string(), index.dump(2) + "\n");
    written.insert(checkpoint::kWeightsIndexFile);
  }
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string name = item.path().filename().string();
    if (is_weights_file_name(name) && !written.count(name)) fs::remove(item.path(), ec);
  }
}

}  // namespace l4::restore
