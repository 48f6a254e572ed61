// The prepare pipeline with a byte-level stand-in encoder: record formats, error locations, skipping,
// the hash split, and several processes (threads here; mpirun in tests/mpi) giving the same dataset.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/dataset_reader.h"
#include "data/prepare.h"
#include "prepare_test_encoder.h"
#include "synthetic_dataset.h"

namespace l4::data {
namespace {

namespace fs = std::filesystem;
using testing::ByteEncoder;
using testing::error_of;
using testing::fresh_dir;
using testing::kBos;
using testing::kEos;
using testing::kImageEnd;
using testing::kImageStart;
using testing::kPatchId;
using testing::kRoleBase;
using testing::write_file;

PrepareReport run(const PrepareOptions& opt) {
  PrepareComm single;
  return prepare_dataset(opt, ByteEncoder(), single);
}

TEST(Prepare, JsonlRecordsBecomeDocumentsInOrder) {
  const std::string dir = fresh_dir("prep_jsonl");
  PrepareOptions opt;
  opt.format = "jsonl";
  opt.inputs = {write_file(dir + "/in/a.jsonl", "{\"text\": \"hello\"}\n\n{\"text\": \"w\\u00f6rld\"}\n")};
  opt.train_dir = dir + "/out";
  const PrepareReport r = run(opt);
  EXPECT_EQ(r.records, 2);
  DatasetReader reader(opt.train_dir);
  ASSERT_EQ(reader.num_docs(), 2u);
  const Document d = reader.read_document(1);
  const std::string expected = "w\xc3\xb6rld";
  ASSERT_EQ(d.tokens.size(), expected.size() + 2);
  EXPECT_EQ(d.tokens.front(), static_cast<uint32_t>(kBos));
  EXPECT_EQ(d.tokens[1], static_cast<uint32_t>('w'));
  EXPECT_EQ(reader.meta()["sources"][0]["records"], 2);
  EXPECT_FALSE(fs::exists(opt.train_dir + ".parts"));
}

TEST(Prepare, TextDocumentsEndAtBlankLinesAndSizeLimit) {
  const std::string dir = fresh_dir("prep_text");
  PrepareOptions opt;
  opt.inputs = {write_file(dir + "/t.txt", "one\ntwo\n\nthree\n" + std::string(30, 'x') + "\nfour\nfive\n")};
  opt.train_dir = dir + "/out";
  opt.text_doc_bytes = 20;
  run(opt);
  DatasetReader reader(opt.train_dir);
  ASSERT_EQ(reader.num_docs(), 3u);  // "one\ntwo" | "three\nxxx..." (over 20 bytes) | "four\nfive"
  EXPECT_EQ(reader.doc_length(0), 7u + 2);
  EXPECT_EQ(reader.doc_length(1), 6u + 30 + 2);
  EXPECT_EQ(reader.doc_length(2), 9u + 2);
}

TEST(Prepare, BadRecordsNameFileAndLine) {
  const std::string dir = fresh_dir("prep_bad");
  write_file(dir + "/img.png", "not really a png but present");
  const std::string good =
      R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "img.png"}, {"type": "text", "text": "q"}]}, {"role": "assistant", "content": "a"}]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"messages\": [", "invalid JSON"},
      {R"({"messages": [{"role": "robot", "content": "x"}]})", "unknown role 'robot'"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "nope.png"}]}, {"role": "assistant", "content": "a"}]})",
       "image 'nope.png' not found"},
      {R"({"messages": [{"role": "user", "content": "only a question"}]})", "no assistant message"},
      {R"({"text": "pretraining record in a chat file"})", "expected a conversation record"},
  };
  for (const auto& [bad, problem] : cases) {
    PrepareOptions opt;
    opt.format = "chat";
    opt.inputs = {write_file(dir + "/c.jsonl", good + "\n" + good + "\n" + bad + "\n" + good + "\n")};
    opt.train_dir = dir + "/out";
    const std::string err = error_of([&] { run(opt); });
    EXPECT_NE(err.find(dir + "/c.jsonl:3: "), std::string::npos) << err;
    EXPECT_NE(err.find(problem), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(opt.train_dir)) << "a failed prepare must not leave a dataset";
    EXPECT_FALSE(fs::exists(opt.train_dir + ".parts"));

    opt.skip_bad_records = true;
    const PrepareReport r = run(opt);
    EXPECT_EQ(r.skipped, 1);
    ASSERT_EQ(r.skipped_examples.size(), 1u);
    EXPECT_NE(r.skipped_examples[0].find(":3: "), std::string::npos);
    DatasetReader reader(opt.train_dir);
    EXPECT_EQ(reader.num_docs(), 3u);
    EXPECT_EQ(reader.meta()["sources"][0]["skipped"], 1);
    fs::remove_all(opt.train_dir);
  }
}

TEST(Prepare, ChatMasksAssistantTokensAndExpandsImages) {
  const std::string dir = fresh_dir("prep_chat");
  write_file(dir + "/images/a.png", "12345");
  PrepareOptions opt;
  opt.format = "chat";
  opt.inputs = {write_file(
      dir + "/c.jsonl",
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image", "path": "images/a.png"}]}, {"role": "assistant", "content": "ok"}]})"
      "\n")};
  opt.train_dir = dir + "/out";
  run(opt);
  DatasetReader reader(opt.train_dir);
  const Document d = reader.read_document(0);
  // <bos> <system> s <user> q [image 6 tokens] <assistant> o k
  const std::vector<uint32_t> tokens = {
      kBos,     kRoleBase, 's',      kRoleBase + 1, 'q',           kImageStart, kPatchId,
      kPatchId, kPatchId,  kPatchId, kImageEnd,     kRoleBase + 2, 'o',         'k'};
  EXPECT_EQ(d.tokens, tokens);
  const std::vector<uint8_t> mask = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
  EXPECT_EQ(d.loss_mask, mask);
  ASSERT_EQ(d.images.size(), 1u);
  EXPECT_EQ(d.images[0].token_begin, 5u);
  EXPECT_EQ(d.images[0].token_end, 11u);
  EXPECT_EQ(d.images[0].tiles[0], 5);  // the stand-in tile encodes the file size
}

TEST(Prepare, SplitFollowsTheRecordHash) {
  const std::string dir = fresh_dir("prep_split");
  std::string text;
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i) {
    lines.push_back(fmt::format("{{\"text\": \"record {}\"}}", i));
    text += lines.back() + "\n";
  }
  PrepareOptions opt;
  opt.format = "jsonl";
  opt.inputs = {write_file(dir + "/a.jsonl", text)};
  opt.train_dir = dir + "/train";
  opt.eval_dir = dir + "/eval";
  opt.eval_fraction = 0.2;
  const PrepareReport r = run(opt);
  int64_t expected_eval = 0;
  for (const auto& l : lines) expected_eval += is_eval_record(l, 0.2);
  EXPECT_EQ(r.eval_documents, expected_eval);
  EXPECT_EQ(r.train_documents + r.eval_documents, 200);
  EXPECT_GT(expected_eval, 20);
  EXPECT_LT(expected_eval, 60);
  EXPECT_EQ(DatasetReader(opt.eval_dir).meta()["split"], "eval");
  EXPECT_EQ(DatasetReader(opt.train_dir).meta()["split"], "train");
}

// Tasks come from a record's "task" key, else from its input file's name; --eval-input files go to the eval
// split whole (no hashing), the others follow the hash.
TEST(Prepare, TasksAndHeldOutEvalInputs) {
  const std::string dir = fresh_dir("prep_tasks");
  std::string train_text, eval_text;
  for (int i = 0; i < 40; ++i) {
    train_text += fmt::format("{{\"text\": \"train {}\"{}}}\n", i, i % 2 ? ", \"task\": \"odd\"" : "");
  }
  for (int i = 0; i < 10; ++i)
    eval_text += fmt::format("{{\"text\": \"held out {}\", \"task\": \"quiz\"}}\n", i);
  PrepareOptions opt;
  opt.format = "jsonl";
  opt.inputs = {write_file(dir + "/mixed.jsonl", train_text)};
  opt.eval_inputs = {write_file(dir + "/quiz.jsonl", eval_text)};
  opt.train_dir = dir + "/train";
  opt.eval_dir = dir + "/eval";
  opt.eval_fraction = 0.0;
  const PrepareReport r = run(opt);
  EXPECT_EQ(r.train_documents, 40);
  EXPECT_EQ(r.eval_documents, 10);
  const DatasetReader train(opt.train_dir), eval(opt.eval_dir);
  EXPECT_EQ(train.task_names(), (std::vector<std::string>{"mixed.jsonl", "odd"}));
  for (uint64_t g = 0; g < train.num_docs(); ++g) {
    EXPECT_EQ(train.read_document(g).task, g % 2 ? "odd" : "mixed.jsonl") << g;
  }
  EXPECT_EQ(eval.task_names(), (std::vector<std::string>{"quiz"}));
  EXPECT_EQ(eval.read_document(3).task, "quiz");

  opt.eval_dir.clear();
  EXPECT_NE(error_of([&] { run(opt); }).find("need an eval output directory"), std::string::npos);
  opt.eval_dir = dir + "/eval";
  opt.eval_inputs.clear();
  opt.inputs = {write_file(dir + "/bad.jsonl", "{\"text\": \"x\", \"task\": 3}\n")};
  const std::string error = error_of([&] { run(opt); });
  EXPECT_NE(error.find("bad.jsonl:1: \"task\" must be a non-empty string"), std::string::npos) << error;
}

// N threads acting as N processes.
struct SharedState {
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0, generation = 0, size = 1;
  bool all = true, result = true;
};

class ThreadComm : public PrepareComm {
 public:
  ThreadComm(SharedState& s, int rank) : s_(s), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return s_.size; }
  void barrier() override { all_true(true); }
  bool all_true(bool ok) override {
    std::unique_lock<std::mutex> lock(s_.mutex);
    s_.all = s_.all && ok;
    const int gen = s_.generation;
    if (++s_.arrived == s_.size) {
      s_.result = s_.all;
      s_.all = true;
      s_.arrived = 0;
      ++s_.generation;
      s_.cv.notify_all();
    } else {
      s_.cv.wait(lock, [&] { return s_.generation != gen; });
    }
    return s_.result;
  }

 private:
  SharedState& s_;
  int rank_;
};

std::vector<std::string> run_on(int processes, PrepareOptions opt) {
  SharedState shared;
  shared.size = processes;
  std::vector<std::string> errors(processes);
  std::vector<std::thread> threads;
  for (int r = 0; r < processes; ++r) {
    threads.emplace_back([&, r] {
      ThreadComm comm(shared, r);
      try {
        prepare_dataset(opt, ByteEncoder(), comm);
      } catch (const l4::Error& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return errors;
}

TEST(Prepare, SeveralProcessesWriteTheSameDataset) {
  const std::string dir = fresh_dir("prep_ranks");
  PrepareOptions opt;
  opt.format = "jsonl";
  for (int f = 0; f < 5; ++f) {
    std::string text;
    for (int i = 0; i < 30 + f; ++i)
      text += fmt::format("{{\"text\": \"file {} record {} {}\"}}\n", f, i, std::string(i, 'z'));
    opt.inputs.push_back(write_file(fmt::format("{}/in/{}.jsonl", dir, f), text));
  }
  opt.eval_fraction = 0.1;
  opt.shard_bytes = 2000;  // several shards
  std::vector<std::vector<Document>> results;
  for (int processes : {1, 2, 3}) {
    opt.train_dir = fmt::format("{}/train{}", dir, processes);
    opt.eval_dir = fmt::format("{}/eval{}", dir, processes);
    for (const auto& e : run_on(processes, opt)) EXPECT_EQ(e, "");
    std::vector<Document> docs;
    for (const std::string& d : {opt.train_dir, opt.eval_dir}) {
      DatasetReader reader(d);
      for (uint64_t g = 0; g < reader.num_docs(); ++g) docs.push_back(reader.read_document(g));
      if (processes == 1) {
        EXPECT_GT(reader.num_shards(), 1u);
      }
    }
    results.push_back(std::move(docs));
  }
  for (size_t p = 1; p < results.size(); ++p) {
    ASSERT_EQ(results[p].size(), results[0].size());
    for (size_t i = 0; i < results[0].size(); ++i) EXPECT_EQ(results[p][i].tokens, results[0][i].tokens);
  }
}

TEST(Prepare, AnErrorInOneProcessStopsAll) {
  const std::string dir = fresh_dir("prep_rank_error");
  PrepareOptions opt;
  opt.format = "jsonl";
  opt.inputs = {write_file(dir + "/a.jsonl", "{\"text\": \"ok\"}\n"),
                write_file(dir + "/b.jsonl", "{\"txt\": 1}\n")};
  opt.train_dir = dir + "/out";
  const auto errors = run_on(2, opt);
  EXPECT_NE(errors[1].find("b.jsonl:1: expected a record with \"messages\""), std::string::npos) << errors[1];
  EXPECT_NE(errors[0].find("another process"), std::string::npos) << errors[0];
  EXPECT_FALSE(fs::exists(opt.train_dir));
  EXPECT_FALSE(fs::exists(opt.train_dir + ".parts"));
}

}  // namespace
}  // namespace l4::data
