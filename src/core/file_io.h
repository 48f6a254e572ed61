// File helpers whose errors name the file.
#pragma once

#include <string>

namespace l4 {

// Whole file as bytes; throws l4::Error("<path>: cannot read: <reason>").
std::string read_file(const std::string& path);

// Writes to "<path>.tmp.<pid>", fsyncs, then renames over `path`: readers never see half a file.
void write_file_atomic(const std::string& path, const std::string& contents);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace l4
