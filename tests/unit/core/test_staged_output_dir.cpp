#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "core/staged_output_dir.h"

namespace l4 {
namespace {

namespace fs = std::filesystem;

class StagedOutputDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("l4_staged_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string path(const std::string& name) const { return (root_ / name).string(); }
  fs::path root_;
};

TEST_F(StagedOutputDirTest, NewDirectoryAppearsOnlyAtCommit) {
  const std::string out = path("out");
  StagedOutputDir staged(out, /*overwrite=*/false, "--output");
  EXPECT_EQ(staged.staging(), out + ".incomplete");
  write_file_atomic(staged.staging() + "/a.txt", "new");
  EXPECT_FALSE(fs::exists(out));
  staged.commit();
  EXPECT_EQ(read_file(out + "/a.txt"), "new");
  EXPECT_FALSE(fs::exists(out + ".incomplete"));
  EXPECT_FALSE(fs::exists(out + ".old"));
}

TEST_F(StagedOutputDirTest, RefusesNonEmptyDirectoryWithoutOverwrite) {
  const std::string out = path("out");
  fs::create_directories(out);
  write_file_atomic(out + "/keep.txt", "old");
  try {
    StagedOutputDir staged(out, /*overwrite=*/false, "--output");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(out), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("use --overwrite to replace it"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(out + "/keep.txt"), "old");
  EXPECT_FALSE(fs::exists(out + ".incomplete"));
}

TEST_F(StagedOutputDirTest, EmptyDirectoryIsReplacedWithoutOverwrite) {
  const std::string out = path("out");
  fs::create_directories(out);
  StagedOutputDir staged(out + "/", /*overwrite=*/false, "--output");
  EXPECT_EQ(staged.staging(), out + ".incomplete");
  write_file_atomic(staged.staging() + "/a.txt", "new");
  staged.commit();
  EXPECT_EQ(read_file(out + "/a.txt"), "new");
}

TEST_F(StagedOutputDirTest, RefusesAFile) {
  const std::string out = path("file");
  write_file_atomic(out, "x");
  EXPECT_THROW(StagedOutputDir(out, /*overwrite=*/true, "--output"), Error);
}

TEST_F(StagedOutputDirTest, OverwriteReplacesWholeAtCommit) {
  const std::string out = path("out");
  fs::create_directories(out);
  write_file_atomic(out + "/stale.txt", "old");
  StagedOutputDir staged(out, /*overwrite=*/true, "--output");
  write_file_atomic(staged.staging() + "/a.txt", "new");
  EXPECT_EQ(read_file(out + "/stale.txt"), "old");  // untouched until commit
  staged.commit();
  EXPECT_EQ(read_file(out + "/a.txt"), "new");
  EXPECT_FALSE(fs::exists(out + "/stale.txt"));
  EXPECT_FALSE(fs::exists(out + ".old"));
}

TEST_F(StagedOutputDirTest, FailureBeforeCommitLeavesOldOutputAndNoStaging) {
  const std::string out = path("out");
  fs::create_directories(out);
  write_file_atomic(out + "/keep.txt", "old");
  {
    StagedOutputDir staged(out, /*overwrite=*/true, "--output");
    write_file_atomic(staged.staging() + "/half.txt", "partial");
  }  // destroyed without commit, as when the writer throws
  EXPECT_EQ(read_file(out + "/keep.txt"), "old");
  EXPECT_FALSE(fs::exists(out + "/half.txt"));
  EXPECT_FALSE(fs::exists(out + ".incomplete"));
}

TEST_F(StagedOutputDirTest, LeftoverStagingOfAnInterruptedRunIsDiscarded) {
  const std::string out = path("out");
  fs::create_directories(out + ".incomplete");
  write_file_atomic(out + ".incomplete/junk.txt", "junk");
  StagedOutputDir staged(out, /*overwrite=*/false, "--output");
  staged.commit();
  EXPECT_FALSE(fs::exists(out + "/junk.txt"));
}

}  // namespace
}  // namespace l4
