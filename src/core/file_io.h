// File helpers whose errors name the file.
#pragma once

#include <string>

namespace l4 {

// Whole file as bytes; throws l4::Error("<path>: cannot read: <reason>").
std::string read_file(const std::string& path);
// Whole file as bytes, or "" when it cannot be read: for files that may be absent or vanish while read
// (/proc and cgroup entries, another rank's roll-call answer), where "nothing there" is an answer.
std::string read_file_or_empty(const std::string& path);

// Writes to "<path>.tmp.<pid>", fsyncs, then renames over `path`: readers never see half a file.
void write_file_atomic(const std::string& path, const std::string& contents);

// The message of a failed write of `path` (errno `err`): "disk full (no space left on device) writing
// <path>" for ENOSPC / EDQUOT, or when the file system has no space left whatever errno says (libraries
// such as HDF5 do not always keep it); the file size limit (ulimit -f) for EFBIG; else strerror.
std::string write_error(const std::string& path, int err);
[[noreturn]] void fail_write(const std::string& path, int err);
// True when write_error would name a full disk or the file size limit: for libraries (HDF5) whose errno
// may be stale, so that only those get the specific message and other failures keep their own.
bool out_of_space(const std::string& path, int err);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace l4
