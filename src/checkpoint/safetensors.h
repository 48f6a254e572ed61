// Safetensors files (https://github.com/huggingface/safetensors): a read-only mmap reader whose header is
// fully validated at open (the file is untrusted input), and an atomic writer with HF's byte layout.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header
// {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}},
// then the data section; offsets are relative to the data section. As the reference implementation
// requires, tensors tile the data section exactly: no gaps, no overlaps, nothing after the last tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace l4::checkpoint {

// Header limit of the reference implementation (safetensors' MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorEntry {
  std::string name;
  std::string dtype;  // "F32","BF16","F16","F64","I64","I32","I16","I8","U8","U16","U32","U64","BOOL",
                      // "F8_E4M3","F8_E5M2"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data section

  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// Bytes per element of a safetensors dtype string; 0 when the string is not a dtype we read.
size_t dtype_itemsize(const std::string& dtype);
// Safetensors dtype string <-> torch scalar type. Both throw l4::Error for types without a counterpart.
std::string dtype_of(c10::ScalarType type);
c10::ScalarType scalar_type_of(const std::string& dtype);

class SafetensorsFile {
 public:
  // Maps the file and validates the whole header; throws l4::Error naming the file (and tensor).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In data-section order (which, the file being validated, is also offset order).
  const std::vector<TensorEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorEntry& entry(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return file_size_; }

  // Zero-copy view of a tensor's bytes in the read-only mapping, valid while this object lives. Unaligned in
  // general, and reading it after the file was truncated by someone else raises SIGBUS: prefer load().
  const uint8_t* data(const std::string& name) const;

  // Owning CPU tensor with the stored dtype and shape (a copy: safe if the file changes later). Thread-safe.
  at::Tensor load(const std::string& name) const;
  // Rows [row_begin, row_end) of dim 0, reading only those bytes of the file (expert rows under EP).
  at::Tensor load_rows(const std::string& name, int64_t row_begin, int64_t row_end) const;
  // Rows [row_begin, row_end) of the tensor seen as a matrix [numel / last dim, last dim], reading only those
  // bytes (a tensor processed in pieces smaller than its first dimension). Needs at least two dimensions.
  at::Tensor load_matrix_rows(const std::string& name, int64_t row_begin, int64_t row_end) const;

 private:
  SafetensorsFile() = default;
  void parse_header(uint64_t header_len);
  at::Tensor copy_out(const TensorEntry& e, uint64_t byte_begin, uint64_t byte_end,
                      std::vector<int64_t> shape) const;

  std::string path_;
  int fd_ = -1;  // tensor bytes are read with pread (see copy_out)
  const uint8_t* map_ = nullptr;
  uint64_t file_size_ = 0;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<TensorEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any device/layout: copied to contiguous CPU) atomically: "<path>.tmp.<pid>", fsync,
// rename. Names are sorted, data laid out in that order, header padded with spaces to a multiple of 8
// bytes as HF does. Throws l4::Error on duplicate/empty names or unsupported dtypes.
class FdWriter;
// Writes the file's start: the 8-byte little-endian header length, then `header_json` (the dumped header
// object) padded with spaces to a multiple of 8 bytes, as the format asks; the tensor data follows.
void write_safetensors_header(FdWriter& out, std::string header_json);

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace l4::checkpoint
