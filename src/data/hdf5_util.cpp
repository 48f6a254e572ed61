#include "data/hdf5_util.h"

#include <cerrno>
#include <mutex>

#include "core/error.h"
#include "core/file_io.h"

namespace l4::data::h5 {
namespace {

// HDF5 reports failures without errno of its own; the system call's, where it survives, or a file system
// with no space left names a full disk ("disk full (no space left on device) writing <path>").
[[noreturn]] void fail_h5_write(const std::string& path, int err, const std::string& what) {
  if (out_of_space(path, err)) fail_write(path, err);
  L4_FAIL("{}: {}", path, what);
}

hid_t native_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kU8: return H5T_NATIVE_UINT8;
    case Dtype::kU32: return H5T_NATIVE_UINT32;
    case Dtype::kU64: return H5T_NATIVE_UINT64;
  }
  return H5T_NATIVE_UINT8;
}

hid_t file_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kU8: return H5T_STD_U8LE;
    case Dtype::kU32: return H5T_STD_U32LE;
    case Dtype::kU64: return H5T_STD_U64LE;
  }
  return H5T_STD_U8LE;
}

size_t dtype_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::kU8: return 1;
    case Dtype::kU32: return 4;
    case Dtype::kU64: return 8;
  }
  return 1;
}

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::kU8: return "uint8";
    case Dtype::kU32: return "uint32";
    case Dtype::kU64: return "uint64";
  }
  return "?";
}

Handle open_dataset(const File& file, const std::string& name) {
  L4_CHECK(file.has(name), "{}: dataset '{}' is missing (not a llama4 dataset shard, or truncated)",
           file.path(), name);
  const hid_t id = H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT);
  L4_CHECK(id >= 0, "{}: dataset '{}' cannot be opened (corrupt file?)", file.path(), name);
  return Handle(id, H5Dclose);
}

std::vector<uint64_t> dataset_shape(const File& file, const std::string& name, hid_t dataset) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  L4_CHECK(space.valid(), "{}: dataset '{}': cannot read its shape", file.path(), name);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  L4_CHECK(rank >= 0, "{}: dataset '{}': cannot read its shape", file.path(), name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  return std::vector<uint64_t>(dims.begin(), dims.end());
}

void check_type(const File& file, const std::string& name, hid_t dataset, Dtype dtype) {
  Handle type(H5Dget_type(dataset), H5Tclose);
  L4_CHECK(type.valid(), "{}: dataset '{}': cannot read its element type", file.path(), name);
  const bool ok = H5Tget_class(type.id()) == H5T_INTEGER && H5Tget_size(type.id()) == dtype_size(dtype) &&
                  H5Tget_sign(type.id()) == H5T_SGN_NONE;
  L4_CHECK(ok, "{}: dataset '{}': expected element type {}", file.path(), name, dtype_name(dtype));
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr) closer_(id_);
  id_ = -1;
}

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] {
    // No library shutdown at exit: after a write failed on a full disk HDF5 keeps the file open, and closing
    // it again at exit crashes inside HDF5. Every file we write is closed explicitly before that.
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

File File::open_read(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  L4_CHECK(is_hdf5 > 0, "{}: not a readable HDF5 file (missing, truncated or corrupt)", path);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  L4_CHECK(id >= 0, "{}: cannot open HDF5 file (truncated or corrupt?)", path);
  f.file_ = Handle(id, H5Fclose);
  return f;
}

File File::create(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  errno = 0;
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) fail_h5_write(path, errno, "cannot create HDF5 file");
  f.file_ = Handle(id, H5Fclose);
  return f;
}

bool File::has(const std::string& name) const { return H5Lexists(file_.id(), name.c_str(), H5P_DEFAULT) > 0; }

void File::flush() {
  errno = 0;
  if (H5Fflush(file_.id(), H5F_SCOPE_LOCAL) < 0) fail_h5_write(path_, errno, "flush failed");
}

std::vector<uint64_t> read_all_u64(const File& file, const std::string& name, int rank) {
  const Dataset dataset(file, name, Dtype::kU64, rank);
  std::vector<uint64_t> out(dataset.rows() * dataset.row_elems());
  dataset.read_rows(0, dataset.rows(), out.data());
  return out;
}

Dataset::Dataset(const File& file, const std::string& name, Dtype dtype, int rank)
    : path_(file.path()), name_(name), dtype_(dtype) {
  dataset_ = open_dataset(file, name);
  check_type(file, name, dataset_.id(), dtype);
  shape_ = dataset_shape(file, name, dataset_.id());
  L4_CHECK(static_cast<int>(shape_.size()) == rank, "{}: dataset '{}': expected {} dimensions, found {}",
           file.path(), name, rank, shape_.size());
  for (size_t i = 1; i < shape_.size(); ++i) row_elems_ *= shape_[i];
}

void Dataset::read_rows(uint64_t begin, uint64_t count, void* out) const {
  if (count == 0) return;
  L4_ASSERT(dataset_.valid(), "read from an unopened dataset");
  L4_CHECK(begin <= rows() && count <= rows() - begin, "{}: dataset '{}': rows [{}, {}) out of range [0, {})",
           path_, name_, begin, begin + count, rows());
  Handle space(H5Dget_space(dataset_.id()), H5Sclose);
  std::vector<hsize_t> start(shape_.size(), 0), extent(shape_.begin(), shape_.end());
  start[0] = begin;
  extent[0] = count;
  L4_CHECK(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr) >= 0,
           "{}: dataset '{}': bad selection", path_, name_);
  Handle memspace(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
  const herr_t rc = H5Dread(dataset_.id(), native_type(dtype_), memspace.id(), space.id(), H5P_DEFAULT, out);
  L4_CHECK(rc >= 0, "{}: dataset '{}': read of rows [{}, {}) failed (corrupt or truncated file?)", path_, name_,
           begin, begin + count);
}

void write_dataset(File& file, const std::string& name, Dtype dtype, const std::vector<uint64_t>& shape,
                   const void* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle dataset(H5Dcreate2(file.id(), name.c_str(), file_type(dtype), space.id(), H5P_DEFAULT, H5P_DEFAULT,
                            H5P_DEFAULT),
                 H5Dclose);
  L4_CHECK(dataset.valid(), "{}: cannot create dataset '{}'", file.path(), name);
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  if (n == 0) return;
  errno = 0;
  if (H5Dwrite(dataset.id(), native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail_h5_write(file.path(), errno, fmt::format("writing dataset '{}' failed", name));
}

Appender::Appender(File& file, const std::string& name, Dtype dtype, const std::vector<uint64_t>& row_shape,
                   int deflate_level)
    : file_(&file), name_(name), dtype_(dtype), row_shape_(row_shape) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{1};
  for (uint64_t d : row_shape) {
    dims.push_back(d);
    max_dims.push_back(d);
    chunk.push_back(d);
  }
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data()), H5Sclose);
  Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(props.id(), static_cast<int>(chunk.size()), chunk.data());
  if (deflate_level > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
    H5Pset_shuffle(props.id());
    H5Pset_deflate(props.id(), static_cast<unsigned>(deflate_level));
  }
  dataset_ = Handle(H5Dcreate2(file.id(), name.c_str(), file_type(dtype), space.id(), H5P_DEFAULT, props.id(),
                               H5P_DEFAULT),
                    H5Dclose);
  L4_CHECK(dataset_.valid(), "{}: cannot create dataset '{}'", file.path(), name);
}

void Appender::append(const void* rows, uint64_t count) {
  if (count == 0) return;
  std::vector<hsize_t> new_dims{size_ + count}, start{size_}, extent{count};
  for (uint64_t d : row_shape_) {
    new_dims.push_back(d);
    start.push_back(0);
    extent.push_back(d);
  }
  errno = 0;
  if (H5Dset_extent(dataset_.id(), new_dims.data()) < 0)
    fail_h5_write(file_->path(), errno, fmt::format("growing dataset '{}' failed", name_));
  Handle space(H5Dget_space(dataset_.id()), H5Sclose);
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr);
  Handle memspace(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
  errno = 0;
  if (H5Dwrite(dataset_.id(), native_type(dtype_), memspace.id(), space.id(), H5P_DEFAULT, rows) < 0)
    fail_h5_write(file_->path(), errno, fmt::format("writing dataset '{}' failed", name_));
  size_ += count;
}

}  // namespace l4::data::h5
