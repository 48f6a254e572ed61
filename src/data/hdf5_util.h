// Thin RAII layer over the HDF5 C API for the dataset shards. Every failure becomes an l4::Error that
// names the file and the dataset, so a corrupt or truncated shard never crashes the process.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace l4::data::h5 {

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept { *this = std::move(other); }
  Handle& operator=(Handle&& other) noexcept;
  ~Handle() { reset(); }
  void reset();
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Turns off HDF5's own printing of error stacks (we report errors ourselves). Idempotent.
void silence_errors();

enum class Dtype { kU8, kU32, kU64 };

// A file opened for reading; dataset readers validate type and rank against what the caller expects.
class File {
 public:
  static File open_read(const std::string& path);
  static File create(const std::string& path);  // truncates
  const std::string& path() const { return path_; }
  hid_t id() const { return file_.id(); }
  bool has(const std::string& name) const;
  void flush();

 private:
  std::string path_;
  Handle file_;
};

// Reads the whole dataset (after validating type and rank) into a vector.
std::vector<uint64_t> read_all_u64(const File& file, const std::string& name, int rank);

// An open dataset of known element type; reads rows [begin, begin+count) along the first dimension,
// bounds-checked against its shape.
class Dataset {
 public:
  Dataset() = default;
  // Checks that `name` exists, has `rank` dimensions and element type `dtype`.
  Dataset(const File& file, const std::string& name, Dtype dtype, int rank);
  const std::vector<uint64_t>& shape() const { return shape_; }
  uint64_t rows() const { return shape_.empty() ? 0 : shape_[0]; }
  uint64_t row_elems() const { return row_elems_; }
  // `out` holds count * row_elems() elements.
  void read_rows(uint64_t begin, uint64_t count, void* out) const;

 private:
  std::string path_, name_;
  Dtype dtype_ = Dtype::kU8;
  Handle dataset_;
  std::vector<uint64_t> shape_;
  uint64_t row_elems_ = 1;
};

// Writes a contiguous dataset of the given shape (first dimension may be 0).
void write_dataset(File& file, const std::string& name, Dtype dtype, const std::vector<uint64_t>& shape,
                   const void* data);

// An extendible (chunked, optionally deflate-compressed) dataset grown along its first dimension.
class Appender {
 public:
  Appender(File& file, const std::string& name, Dtype dtype, const std::vector<uint64_t>& row_shape,
           int deflate_level);
  void append(const void* rows, uint64_t count);
  uint64_t size() const { return size_; }

 private:
  File* file_;
  std::string name_;
  Dtype dtype_;
  std::vector<uint64_t> row_shape_;
  Handle dataset_;
  uint64_t size_ = 0;
};

}  // namespace l4::data::h5
