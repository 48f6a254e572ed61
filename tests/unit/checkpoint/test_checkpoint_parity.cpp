// Parity with the reference Python libraries (tests/parity/safetensors_oracle.py): files written by
// safetensors / transformers read back byte for byte, the same accept/reject verdict on edge cases, and
// files we write read back identically by safetensors.torch.load_file and transformers.from_pretrained.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>

#include "checkpoint/model_weights.h"
#include "core/file_io.h"
#include "unit/checkpoint/test_util.h"

namespace l4::checkpoint {
namespace {

using json = nlohmann::json;

const std::string kOracleDir = std::string(L4_TEST_DATA_DIR) + "/safetensors";

// Compares every tensor the oracle read back (manifest.json + expected.bin) with what `load` returns.
void expect_matches_manifest(const std::string& dir, const std::function<at::Tensor(const std::string&)>& load,
                             const std::function<TensorEntry(const std::string&)>& entry, size_t* count) {
  const json manifest = json::parse(read_file(dir + "/manifest.json"));
  const std::string blob = testing::read_all(dir + "/expected.bin");
  for (const auto& [name, m] : manifest["tensors"].items()) {
    SCOPED_TRACE(dir + ": " + name);
    const TensorEntry e = entry(name);
    EXPECT_EQ(e.dtype, m["dtype"].get<std::string>());
    EXPECT_EQ(e.shape, m["shape"].get<std::vector<int64_t>>());
    const at::Tensor t = load(name);
    EXPECT_EQ(t.scalar_type(), scalar_type_of(m["dtype"].get<std::string>()));
    EXPECT_EQ(t.sizes().vec(), m["shape"].get<std::vector<int64_t>>());
    const size_t nbytes = m["nbytes"].get<size_t>();
    ASSERT_EQ(static_cast<size_t>(t.nbytes()), nbytes);
    EXPECT_EQ(std::memcmp(t.contiguous().data_ptr(), blob.data() + m["offset"].get<size_t>(), nbytes), 0);
    ++*count;
  }
}

TEST(CheckpointParityTest, ReadsEveryDtypeWrittenByPythonSafetensors) {
  auto file = SafetensorsFile::open(kOracleDir + "/dtypes/python.safetensors");
  size_t count = 0;
  expect_matches_manifest(
      kOracleDir + "/dtypes", [&](const std::string& n) { return file->load(n); },
      [&](const std::string& n) { return file->entry(n); }, &count);
  EXPECT_EQ(count, file->entries().size());
  EXPECT_GE(count, 15u);
  const json manifest = json::parse(read_file(kOracleDir + "/dtypes/manifest.json"));
  EXPECT_EQ(file->metadata(), (manifest["metadata"].get<std::map<std::string, std::string>>()));
}

void check_model_dir(const std::string& sub) {
  const std::string dir = kOracleDir + "/" + sub;
  const ModelWeights mw = ModelWeights::open_dir(dir);
  const json manifest = json::parse(read_file(dir + "/manifest.json"));
  EXPECT_GT(mw.source().files().size(), 1u) << "the oracle should have written a sharded checkpoint";
  size_t count = 0;
  expect_matches_manifest(
      dir, [&](const std::string& n) { return mw.source().load(n); },
      [&](const std::string& n) {
        EXPECT_EQ(mw.source().file_of(n), dir + "/" + manifest["tensors"][n]["file"].get<std::string>());
        return mw.source().entry(n);
      },
      &count);
  EXPECT_EQ(count, mw.source().names().size());
  EXPECT_EQ(layout_name(mw.layout()), manifest["layout"].get<std::string>());
  // The model's own parameter list (from transformers' state_dict, names made canonical by the oracle)
  // matches the checkpoint exactly: nothing missing, unexpected or mis-shaped.
  std::map<std::string, ExpectedTensor> expected;
  for (const auto& [name, p] : manifest["model_params"].items())
    expected[name] = {p["shape"].get<std::vector<int64_t>>(), p["dtype"].get<std::string>()};
  EXPECT_NO_THROW(mw.check(expected));
  std::vector<std::string> canonical;
  for (const auto& [name, p] : expected) canonical.push_back(name);
  EXPECT_EQ(mw.names(), canonical);
}

TEST(CheckpointParityTest, ReadsShardedCausalLmFromSavePretrained) { check_model_dir("causal"); }
TEST(CheckpointParityTest, ReadsShardedConditionalGenerationFromSavePretrained) { check_model_dir("multimodal"); }

TEST(CheckpointParityTest, AcceptsAndRejectsWhatTheSafetensorsLibraryDoes) {
  const json verdicts = json::parse(read_file(kOracleDir + "/malformed/verdicts.json"));
  EXPECT_GE(verdicts.size(), 20u);
  for (const auto& [file, python_accepts] : verdicts.items()) {
    SCOPED_TRACE(file);
    const std::string path = kOracleDir + "/malformed/" + file;
    bool we_accept = true;
    try {
      auto f = SafetensorsFile::open(path);
      for (const TensorEntry& e : f->entries()) f->load(e.name);
    } catch (const l4::Error& e) {
      we_accept = false;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    EXPECT_EQ(we_accept, python_accepts.get<bool>());
  }
}

TEST(CheckpointParityTest, PythonReadsWhatWeWrite) {
  testing::TempDir ours;
  auto file = SafetensorsFile::open(kOracleDir + "/dtypes/python.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const TensorEntry& e : file->entries()) tensors.emplace_back(e.name, file->load(e.name));
  save_safetensors(ours.file("dtypes.safetensors"), tensors, file->metadata());

  const WeightSource causal = WeightSource::open_dir(kOracleDir + "/causal");
  std::vector<std::pair<std::string, at::Tensor>> weights;
  for (const std::string& name : causal.names()) weights.emplace_back(name, causal.load(name));
  save_hf_weights(ours.file("causal"), weights, /*max_shard_bytes=*/3000);

  const std::string command = fmt::format("'{}' '{}/tests/parity/safetensors_oracle.py' --check-written '{}' "
                                          "--reference '{}' 2>&1",
                                          L4_PYTHON_EXE, L4_SOURCE_DIR, ours.path(), kOracleDir);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
}  // namespace l4::checkpoint
