#include "checkpoint/weight_source.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>
#include <set>

#include "checkpoint/strict_json.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"

namespace l4::checkpoint {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// An index is a few MB even for the largest models; anything far bigger is not an index.
constexpr uint64_t kMaxIndexBytes = 256ull << 20;

std::string join_path(const std::string& dir, const std::string& file) {
  return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

// Shard names come from an untrusted file: a bare file name in the same directory, nothing else.
void check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& shard) {
  const bool ok = !shard.empty() && shard != "." && shard != ".." && shard.find('/') == std::string::npos &&
                  shard.find('\0') == std::string::npos;
  L4_CHECK(ok, "{}: tensor '{}' maps to '{}', which is not a file name in the model directory", index_path,
           printable(tensor), printable(shard));
}

bool is_weights_file_name(const std::string& name) {
  static const std::regex shard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  return name == kSingleWeightsFile || name == kWeightsIndexFile || std::regex_match(name, shard);
}

}  // namespace

WeightSource WeightSource::open_dir(const std::string& dir) {
  WeightSource src;
  src.dir_ = dir;
  if (!is_directory(dir)) {
    L4_CHECK(file_exists(dir), "{}: no such model directory or file", dir);
    src.files_.push_back(SafetensorsFile::open(dir));
  } else if (file_exists(join_path(dir, kSingleWeightsFile))) {
    src.files_.push_back(SafetensorsFile::open(join_path(dir, kSingleWeightsFile)));
  } else {
    const std::string index_path = join_path(dir, kWeightsIndexFile);
    L4_CHECK(file_exists(index_path), "{}: no {} or {} in the model directory", dir, kSingleWeightsFile,
             kWeightsIndexFile);
    struct stat st {};
    L4_CHECK(::stat(index_path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) <= kMaxIndexBytes,
             "{}: larger than {} bytes; not a weight index", index_path, kMaxIndexBytes);
    const std::string text = read_file(index_path);
    const json index = parse_strict_json(index_path, text.data(), text.data() + text.size(), /*max_depth=*/8);
    L4_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
             "{}: expected an object with a \"weight_map\" object", index_path);
    std::map<std::string, size_t> shard_ids;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
      L4_CHECK(shard.is_string(), "{}: weight_map entry '{}' must be a file name string", index_path,
               printable(tensor));
      const std::string shard_name = shard.get<std::string>();
      check_shard_name(index_path, tensor, shard_name);
      auto it = shard_ids.find(shard_name);
      if (it == shard_ids.end()) {
        it = shard_ids.emplace(shard_name, src.files_.size()).first;
        const std::string shard_path = join_path(dir, shard_name);
        L4_CHECK(file_exists(shard_path), "{}: shard '{}' (holding tensor '{}') does not exist", index_path,
                 shard_name, tensor);
        src.files_.push_back(SafetensorsFile::open(shard_path));
      }
      L4_CHECK(src.files_[it->second]->contains(tensor), "{}: tensor '{}' is mapped to {}, which does not hold it",
               index_path, tensor, src.files_[it->second]->path());
      src.where_.emplace(tensor, it->second);
    }
    return src;
  }
  for (const TensorEntry& e : src.files_[0]->entries()) src.where_.emplace(e.name, 0);
  return src;
}

std::vector<std::string> WeightSource::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

const SafetensorsFile& WeightSource::file_holding(const std::string& name) const {
  auto it = where_.find(name);
  L4_CHECK(it != where_.end(), "{}: the checkpoint has no tensor named '{}'{}", dir_, name,
           did_you_mean(name, names()));
  return *files_[it->second];
}

const TensorEntry& WeightSource::entry(const std::string& name) const { return file_holding(name).entry(name); }
const std::string& WeightSource::file_of(const std::string& name) const { return file_holding(name).path(); }
at::Tensor WeightSource::load(const std::string& name) const { return file_holding(name).load(name); }
at::Tensor WeightSource::load_rows(const std::string& name, int64_t row_begin, int64_t row_end) const {
  return file_holding(name).load_rows(name, row_begin, row_end);
}

at::Tensor WeightSource::load_matrix_rows(const std::string& name, int64_t row_begin, int64_t row_end) const {
  return file_holding(name).load_matrix_rows(name, row_begin, row_end);
}

void save_hf_weights(const std::string& dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                     int64_t max_shard_bytes) {
  L4_CHECK(max_shard_bytes > 0, "{}: max shard size must be positive, got {}", dir, max_shard_bytes);
  std::error_code ec;
  fs::create_directories(dir, ec);
  L4_CHECK(is_directory(dir), "{}: cannot create directory: {}", dir, ec.message());

  std::set<std::string> seen;
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0, total_params = 0;
  for (const auto& item : tensors) {
    L4_CHECK(seen.insert(item.first).second, "{}: tensor '{}' given twice", dir, item.first);
    const int64_t nbytes = item.second.defined() ? static_cast<int64_t>(item.second.nbytes()) : 0;
    if (!shards.back().empty() && shard_bytes + nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(item);
    shard_bytes += nbytes;
    total_bytes += nbytes;
    total_params += item.second.defined() ? item.second.numel() : 0;
  }

  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  std::set<std::string> written;
  if (shards.size() == 1) {
    save_safetensors(join_path(dir, kSingleWeightsFile), shards[0], metadata);
    written.insert(kSingleWeightsFile);
  } else {
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      save_safetensors(join_path(dir, name), shards[i], metadata);
      for (const auto& item : shards[i]) weight_map[item.first] = name;
      written.insert(name);
    }
    const json index = {{"metadata", {{"total_parameters", total_params}, {"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomic(join_path(dir, kWeightsIndexFile), index.dump(2) + "\n");
    written.insert(kWeightsIndexFile);
  }
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string name = item.path().filename().string();
    if (is_weights_file_name(name) && !written.count(name)) fs::remove(item.path(), ec);
  }
}

}  // namespace l4::checkpoint
