#include "core/staged_output_dir.h"

#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace l4 {
namespace fs = std::filesystem;

namespace {

// "out/", "out/." -> "out": the staging and the aside names are siblings of the directory itself.
std::string normalised(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.string();
}

}  // namespace

void check_output_replaceable(const std::string& dir, bool overwrite, const std::string& flag) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  L4_CHECK(fs::is_directory(dir, ec), "{} {}: exists and is not a directory", flag, dir);
  L4_CHECK(overwrite || fs::is_empty(dir, ec),
           "{} {}: exists and is not empty; use --overwrite to replace it", flag, dir);
}

StagedOutputDir::StagedOutputDir(std::string dir, bool overwrite, const std::string& flag)
    : dir_(normalised(dir)), staging_(dir_ + ".incomplete"), overwrite_(overwrite) {
  L4_CHECK(!dir_.empty() && dir_ != ".", "{} '{}': expected a directory name", flag, dir);
  check_output_replaceable(dir_, overwrite_, flag);
  std::error_code ec;
  fs::remove_all(staging_, ec);  // a previous interrupted run
  fs::create_directories(staging_, ec);
  L4_CHECK(!ec, "{}: cannot create directory: {}", staging_, ec.message());
}

StagedOutputDir::~StagedOutputDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void StagedOutputDir::commit() {
  L4_ASSERT(!committed_, "StagedOutputDir::commit() twice");
  std::error_code ec;
  const std::string old_dir = dir_ + ".old";
  if (fs::exists(dir_, ec)) {
    fs::remove_all(old_dir, ec);
    fs::rename(dir_, old_dir, ec);
    L4_CHECK(!ec, "{}: cannot move the previous output aside: {}", dir_, ec.message());
  }
  fs::rename(staging_, dir_, ec);
  L4_CHECK(!ec, "{}: cannot rename {} into place: {}", dir_, staging_, ec.message());
  committed_ = true;
  fs::remove_all(old_dir, ec);
}

}  // namespace l4
