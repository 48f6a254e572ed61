// Dataset writer/reader: round trip over several shards, atomic directory, validation of corrupt input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/file_io.h"
#include "data/dataset_reader.h"
#include "data/hdf5_util.h"
#include "synthetic_dataset.h"

namespace l4::data {
namespace {

using testing::fresh_dir;
using testing::make_documents;
using testing::SyntheticSpec;
using testing::write_dataset;
namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const l4::Error& e) {
    return e.what();
  }
  return "";
}

TEST(DatasetIo, RoundTripAcrossShards) {
  SyntheticSpec spec;
  spec.images_every = 7;
  const auto docs = make_documents(spec);
  const std::string dir = fresh_dir("roundtrip");
  write_dataset(dir, docs, /*shard_bytes=*/300000);  // forces a new shard after every image or so
  DatasetReader reader(dir);
  EXPECT_GT(reader.num_shards(), 2u);
  ASSERT_EQ(reader.num_docs(), docs.size());
  for (uint64_t g = 0; g < docs.size(); ++g) {
    const Document back = reader.read_document(g);
    EXPECT_EQ(back.tokens, docs[g].tokens) << g;
    EXPECT_EQ(back.loss_mask, docs[g].loss_mask) << g;
    ASSERT_EQ(back.images.size(), docs[g].images.size()) << g;
    for (size_t k = 0; k < back.images.size(); ++k) {
      EXPECT_EQ(back.images[k].tiles, docs[g].images[k].tiles);
      EXPECT_EQ(back.images[k].token_begin, docs[g].images[k].token_begin);
      EXPECT_EQ(back.images[k].token_end, docs[g].images[k].token_end);
      EXPECT_EQ(back.images[k].grid_cols, docs[g].images[k].grid_cols);
    }
  }
  EXPECT_EQ(reader.meta()["num_documents"].get<uint64_t>(), docs.size());
  EXPECT_FALSE(fs::exists(dir + ".incomplete"));
}

TEST(DatasetIo, UnfinishedWriterLeavesNoDataset) {
  const std::string dir = fresh_dir("unfinished");
  {
    WriterOptions options;
    options.tokenizer = testing::synthetic_tokenizer();
    DatasetWriter writer(dir, options);
    writer.add(make_documents({})[0]);
    EXPECT_TRUE(fs::exists(dir + ".incomplete"));
  }  // destroyed without finish(), as when prepare fails half-way
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(dir + ".incomplete"));
  EXPECT_NE(error_of([&] { DatasetReader r(dir); }).find("meta.json is missing"), std::string::npos);
}

TEST(DatasetIo, RefusesToReplaceAForeignDirectory) {
  const std::string dir = fresh_dir("foreign");
  fs::create_directories(dir);
  std::ofstream(dir + "/notes.txt") << "mine";
  const std::string err = error_of([&] { write_dataset(dir, make_documents({})); });
  EXPECT_NE(err.find("refusing to overwrite"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(dir + "/notes.txt"));
}

TEST(DatasetIo, RejectsInvalidDocuments) {
  const std::string dir = fresh_dir("invalid_doc");
  WriterOptions options;
  options.tokenizer = testing::synthetic_tokenizer();
  DatasetWriter writer(dir, options);
  Document doc;
  doc.tokens = {1, 2, 5000};
  doc.loss_mask = {1, 1, 1};
  EXPECT_NE(error_of([&] { writer.add(doc, "in.jsonl:3"); }).find("in.jsonl:3: token id 5000"),
            std::string::npos);
  doc.tokens = {1, 2};
  EXPECT_NE(error_of([&] { writer.add(doc, "x"); }).find("loss-mask entries"), std::string::npos);
}

TEST(DatasetIo, TruncatedShardIsAClearError) {
  const std::string dir = fresh_dir("truncated");
  write_dataset(dir, make_documents({}));
  const std::string shard = dir + "/" + shard_file_name(0);
  fs::resize_file(shard, fs::file_size(shard) / 2);
  const std::string err = error_of([&] { DatasetReader r(dir); });
  EXPECT_NE(err.find(shard), std::string::npos) << err;
}

TEST(DatasetIo, GarbageShardIsAClearError) {
  const std::string dir = fresh_dir("garbage");
  write_dataset(dir, make_documents({}));
  const std::string shard = dir + "/" + shard_file_name(0);
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << "this is not hdf5";
  const std::string err = error_of([&] { DatasetReader r(dir); });
  EXPECT_NE(err.find(shard + ": not a readable HDF5 file"), std::string::npos) << err;
}

// Rewrites one dataset of a shard in place with new contents (same shape), as a corruption would.
void overwrite_u64(const std::string& shard, const char* name, const std::vector<uint64_t>& values) {
  const hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(ds);
  H5Fclose(file);
}

TEST(DatasetIo, NonMonotonicOffsetsAreRejected) {
  const std::string dir = fresh_dir("offsets");
  const auto docs = make_documents({});
  write_dataset(dir, docs);
  const std::string shard = dir + "/" + shard_file_name(0);
  std::vector<uint64_t> offsets{0};
  for (const auto& d : docs) offsets.push_back(offsets.back() + d.tokens.size());
  std::swap(offsets[3], offsets[4]);
  overwrite_u64(shard, "doc_offsets", offsets);
  const std::string err = error_of([&] { DatasetReader r(dir); });
  EXPECT_NE(err.find(shard + ": dataset 'doc_offsets': decreases at index"), std::string::npos) << err;
}

// Datasets written before tasks existed read as one task, "all"; a task index beyond meta.json's names is
// named as such.
TEST(DatasetIo, TasksRoundTripAndAreChecked) {
  const std::string dir = fresh_dir("tasks");
  auto docs = make_documents({});
  for (size_t i = 0; i < docs.size(); ++i) docs[i].task = i % 3 == 0 ? "colour" : "count";
  write_dataset(dir, docs);
  {
    const DatasetReader reader(dir);
    EXPECT_EQ(reader.task_names(), (std::vector<std::string>{"colour", "count"}));
    for (uint64_t g = 0; g < docs.size(); ++g) EXPECT_EQ(reader.read_document(g).task, docs[g].task) << g;
  }
  const std::string shard = dir + "/" + shard_file_name(0);
  std::vector<uint64_t> tasks(docs.size(), 0);
  tasks[2] = 7;
  overwrite_u64(shard, "doc_tasks", tasks);
  const std::string err = error_of([&] { DatasetReader r(dir); });
  EXPECT_NE(err.find(shard + ": document 2 has task 7 but meta.json names 2 task(s)"), std::string::npos)
      << err;

  // Without doc_tasks and "tasks" (an older dataset): every document is in "all".
  const std::string old_dir = fresh_dir("tasks_old");
  write_dataset(old_dir, docs);
  const hid_t file = H5Fopen((old_dir + "/" + shard_file_name(0)).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  ASSERT_GE(H5Ldelete(file, "doc_tasks", H5P_DEFAULT), 0);
  H5Fclose(file);
  auto meta = nlohmann::json::parse(read_file(old_dir + "/meta.json"));
  meta.erase("tasks");
  write_file_atomic(old_dir + "/meta.json", meta.dump());
  const DatasetReader reader(old_dir);
  EXPECT_EQ(reader.task_names(), (std::vector<std::string>{"all"}));
  EXPECT_EQ(reader.read_document(1).task, "all");
}

TEST(DatasetIo, OutOfRangeImageSpanIsRejected) {
  SyntheticSpec spec;
  spec.images_every = 5;
  const std::string dir = fresh_dir("spans");
  write_dataset(dir, make_documents(spec), 100 << 20);
  const std::string shard = dir + "/" + shard_file_name(0);
  std::vector<uint64_t> spans;
  {
    DatasetReader ok(dir);
    for (uint64_t g = 0; g < ok.num_docs(); ++g) {
      for (uint64_t k = 0; k < ok.doc_image_count(g); ++k) {
        spans.push_back(ok.doc_image(g, k).token_begin);
        spans.push_back(ok.doc_image(g, k).token_end);
      }
    }
  }
  spans[1] = 1000000;
  overwrite_u64(shard, "image_token_spans", spans);
  const std::string err = error_of([&] { DatasetReader r(dir); });
  EXPECT_NE(err.find("is not ordered inside document"), std::string::npos) << err;
}

TEST(DatasetIo, OutOfVocabularyTokenIsRejectedOnRead) {
  const std::string dir = fresh_dir("vocab");
  write_dataset(dir, make_documents({}));
  const std::string shard = dir + "/" + shard_file_name(0);
  const hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t ds = H5Dopen2(file, "tokens", H5P_DEFAULT);
  const uint32_t bad = 123456;
  const hsize_t start = 0, count = 1;
  const hid_t space = H5Dget_space(ds);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
  const hid_t mem = H5Screate_simple(1, &count, nullptr);
  H5Dwrite(ds, H5T_NATIVE_UINT32, mem, space, H5P_DEFAULT, &bad);
  H5Sclose(mem), H5Sclose(space), H5Dclose(ds), H5Fclose(file);
  DatasetReader reader(dir);
  const std::string err = error_of([&] { reader.read_document(0); });
  EXPECT_NE(err.find(shard + ": token 0 has id 123456 outside the vocabulary"), std::string::npos) << err;
}

TEST(DatasetIo, MetaThatDisagreesWithShardsIsRejected) {
  const std::string dir = fresh_dir("meta");
  write_dataset(dir, make_documents({}));
  auto meta = nlohmann::json::parse(read_file(dir + "/meta.json"));
  meta["shards"][0]["tokens"] = 3;
  write_file_atomic(dir + "/meta.json", meta.dump());
  const std::string err = error_of([&] { DatasetReader r(dir); });
  EXPECT_NE(err.find("meta.json says tokens 3"), std::string::npos) << err;
  meta["schema_version"] = 99;
  write_file_atomic(dir + "/meta.json", meta.dump());
  EXPECT_NE(error_of([&] { DatasetReader r(dir); }).find("schema_version 99"), std::string::npos);
}

}  // namespace
}  // namespace l4::data
