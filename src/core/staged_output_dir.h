// An output directory written whole or not at all: everything goes into a sibling "<dir>.incomplete" that is
// renamed into place only once complete, so a failure mid-way leaves no half-written directory and the
// previous output (if any) untouched.
#pragma once

#include <string>

namespace l4 {

// l4::Error naming `flag` and `dir` when `dir` exists and is not an empty directory, unless `overwrite`
// (then a directory is fine, a file never). Cheap: callers run it before any expensive work.
void check_output_replaceable(const std::string& dir, bool overwrite, const std::string& flag);

class StagedOutputDir {
 public:
  // l4::Error naming `dir` and `flag` when `dir` exists and is not an empty directory, unless `overwrite`.
  // Creates the staging directory (a leftover of an interrupted run is removed first).
  StagedOutputDir(std::string dir, bool overwrite, const std::string& flag);
  // Removes the staging directory unless commit() ran: nothing half-written stays behind.
  ~StagedOutputDir();
  StagedOutputDir(const StagedOutputDir&) = delete;
  StagedOutputDir& operator=(const StagedOutputDir&) = delete;

  // Where the output is written until commit().
  const std::string& staging() const { return staging_; }
  const std::string& dir() const { return dir_; }

  // Moves an existing `dir` aside ("<dir>.old"), renames the staging directory to `dir`, then deletes the
  // old one: at every moment either the old or the new output is complete under one of the two names.
  void commit();

 private:
  std::string dir_, staging_;
  bool overwrite_ = false;
  bool committed_ = false;
};

}  // namespace l4
