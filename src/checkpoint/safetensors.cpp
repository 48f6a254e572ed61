#include "checkpoint/safetensors.h"

#include <torch/torch.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "checkpoint/fd_writer.h"
#include "checkpoint/strict_json.h"
#include "core/error.h"

namespace l4::checkpoint {
namespace {

using json = nlohmann::json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

// A valid header nests 3 deep (root object, tensor object, shape array); allow unknown fields some room
// while refusing pathological nesting from a hostile file.
constexpr int kMaxJsonDepth = 8;

struct DtypeInfo {
  const char* name;
  size_t itemsize;
  c10::ScalarType type;
};

const DtypeInfo kDtypes[] = {
    {"F64", 8, at::kDouble},        {"F32", 4, at::kFloat},           {"F16", 2, at::kHalf},
    {"BF16", 2, at::kBFloat16},     {"I64", 8, at::kLong},            {"I32", 4, at::kInt},
    {"I16", 2, at::kShort},         {"I8", 1, at::kChar},             {"U8", 1, at::kByte},
    {"U16", 2, at::kUInt16},        {"U32", 4, at::kUInt32},          {"U64", 8, at::kUInt64},
    {"BOOL", 1, at::kBool},         {"F8_E4M3", 1, at::kFloat8_e4m3fn}, {"F8_E5M2", 1, at::kFloat8_e5m2},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string list_dtypes() {
  std::string out;
  for (const auto& d : kDtypes) out += std::string(out.empty() ? "" : ", ") + d.name;
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

uint64_t json_unsigned(const std::string& where, const char* what, const json& v) {
  L4_CHECK(v.is_number_integer(), "{}: {} must be an integer, got {}", where, what, printable(v.dump()));
  L4_CHECK(v.is_number_unsigned(), "{}: {} must not be negative, got {}", where, what, v.dump());
  return v.get<uint64_t>();
}

TensorEntry parse_entry(const std::string& path, const std::string& name, const json& info) {
  const std::string where = fmt::format("{}: tensor '{}'", path, printable(name));
  L4_CHECK(!name.empty(), "{}: safetensors header has a tensor with an empty name", path);
  L4_CHECK(info.is_object(), "{}: expected an object with dtype, shape, data_offsets", where);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    L4_CHECK(info.contains(key), "{}: missing \"{}\"", where, key);

  TensorEntry e;
  e.name = name;
  const json& dtype = info["dtype"];
  L4_CHECK(dtype.is_string(), "{}: dtype must be a string, got {}", where, printable(dtype.dump()));
  e.dtype = dtype.get<std::string>();
  const DtypeInfo* d = find_dtype(e.dtype);
  L4_CHECK(d != nullptr, "{}: unknown dtype '{}' (expected one of {})", where, printable(e.dtype), list_dtypes());

  const json& shape = info["shape"];
  L4_CHECK(shape.is_array(), "{}: shape must be an array, got {}", where, printable(shape.dump()));
  uint64_t numel = 1;
  for (const json& dim : shape) {
    const uint64_t n = json_unsigned(where, "every shape dimension", dim);
    L4_CHECK(n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "{}: dimension {} is too large",
             where, n);
    L4_CHECK(!__builtin_mul_overflow(numel, n, &numel), "{}: shape {} overflows the element count", where,
             printable(shape.dump()));
    e.shape.push_back(static_cast<int64_t>(n));
  }
  uint64_t nbytes = 0;
  L4_CHECK(numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
               !__builtin_mul_overflow(numel, d->itemsize, &nbytes),
           "{}: shape {} overflows the byte count", where, printable(shape.dump()));

  const json& offsets = info["data_offsets"];
  L4_CHECK(offsets.is_array() && offsets.size() == 2, "{}: data_offsets must be [begin, end], got {}", where,
           printable(offsets.dump()));
  e.begin = json_unsigned(where, "data_offsets[0]", offsets[0]);
  e.end = json_unsigned(where, "data_offsets[1]", offsets[1]);
  L4_CHECK(e.begin <= e.end, "{}: data_offsets [{}, {}] end before they begin", where, e.begin, e.end);
  L4_CHECK(e.end - e.begin == nbytes,
           "{}: data_offsets [{}, {}] hold {} bytes but dtype {} with shape {} needs {} bytes", where, e.begin,
           e.end, e.end - e.begin, e.dtype, shape_str(e.shape), nbytes);
  return e;
}

}  // namespace

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at open: cannot overflow
  return n;
}

size_t dtype_itemsize(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  return d ? d->itemsize : 0;
}

std::string dtype_of(c10::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d.name;
  L4_FAIL("safetensors cannot store torch dtype {}", c10::toString(type));
}

c10::ScalarType scalar_type_of(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  L4_CHECK(d != nullptr, "unknown safetensors dtype '{}' (expected one of {})", printable(dtype), list_dtypes());
  return d->type;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  // O_NONBLOCK: opening a FIFO by mistake must fail below instead of waiting for a writer.
  file->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  L4_CHECK(file->fd_ >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  L4_CHECK(::fstat(file->fd_, &st) == 0, "{}: cannot stat: {}", path, std::strerror(errno));
  L4_CHECK(S_ISREG(st.st_mode), "{}: not a regular file", path);
  file->file_size_ = static_cast<uint64_t>(st.st_size);
  L4_CHECK(file->file_size_ >= 8, "{}: {} bytes is too short for a safetensors file (8-byte header length)",
           path, file->file_size_);

  void* map = ::mmap(nullptr, file->file_size_, PROT_READ, MAP_PRIVATE, file->fd_, 0);
  L4_CHECK(map != MAP_FAILED, "{}: cannot mmap {} bytes: {}", path, file->file_size_, std::strerror(errno));
  file->map_ = static_cast<const uint8_t*>(map);
  // No readahead beyond what is asked for: a rank loading its experts' rows must not pull in its
  // neighbours' (each read is one large request for exactly its range).
  ::posix_fadvise(file->fd_, 0, 0, POSIX_FADV_RANDOM);
  ::madvise(map, file->file_size_, MADV_RANDOM);

  uint64_t header_len = 0;
  std::memcpy(&header_len, file->map_, 8);
  L4_CHECK(header_len <= kMaxHeaderBytes, "{}: safetensors header length {} exceeds the limit of {} bytes", path,
           header_len, kMaxHeaderBytes);
  L4_CHECK(header_len <= file->file_size_ - 8,
           "{}: safetensors header length {} runs past the end of the file ({} bytes; truncated?)", path,
           header_len, file->file_size_);
  file->data_start_ = 8 + header_len;
  file->parse_header(header_len);
  return file;
}

void SafetensorsFile::parse_header(uint64_t header_len) {
  const char* begin = reinterpret_cast<const char*>(map_ + 8);
  const json header = parse_strict_json(path_ + ": safetensors header", begin, begin + header_len, kMaxJsonDepth);
  L4_CHECK(header.is_object(), "{}: safetensors header must be a JSON object", path_);

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      L4_CHECK(value.is_object(), "{}: __metadata__ must be an object of strings", path_);
      for (const auto& [mkey, mvalue] : value.items()) {
        L4_CHECK(mvalue.is_string(), "{}: __metadata__ entry '{}' must be a string, got {}", path_, printable(mkey),
                 printable(mvalue.dump()));
        metadata_[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    entries_.push_back(parse_entry(path_, key, value));
  }

  // The data section must be tiled exactly by the tensors, in offset order (as safetensors validates).
  const uint64_t data_size = file_size_ - data_start_;
  for (const TensorEntry& e : entries_) {
    L4_CHECK(e.end <= data_size,
             "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data section ({} bytes; truncated?)",
             path_, printable(e.name), e.begin, e.end, data_size);
  }
  std::sort(entries_.begin(), entries_.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& e : entries_) {
    if (e.begin < covered) {
      L4_FAIL("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", path_, printable(e.name),
              e.begin, e.end, printable(previous->name), previous->begin, previous->end);
    }
    if (e.begin > covered) {
      L4_FAIL("{}: tensor '{}': data_offsets [{}, {}] leave bytes [{}, {}) of the data section unused", path_,
              printable(e.name), e.begin, e.end, covered, e.begin);
    }
    covered = e.end;
    previous = &e;
  }
  L4_CHECK(covered == data_size,
           "{}: the tensors end at byte {} of the data section but it has {} bytes (trailing data or a bad "
           "header)",
           path_, covered, data_size);
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), file_size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  L4_CHECK(it != index_.end(), "{}: no tensor named '{}'", path_, printable(name));
  return entries_[it->second];
}

const uint8_t* SafetensorsFile::data(const std::string& name) const {
  return map_ + data_start_ + entry(name).begin;
}

at::Tensor SafetensorsFile::copy_out(const TensorEntry& e, uint64_t byte_begin, uint64_t byte_end,
                                     std::vector<int64_t> shape) const {
  const c10::ScalarType type = scalar_type_of(e.dtype);
  // Bool bytes other than 0/1 are undefined behaviour in torch: read bytes and normalise.
  const c10::ScalarType storage = type == at::kBool ? at::kByte : type;
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(storage).device(at::kCPU));
  const uint64_t n = byte_end - byte_begin;
  L4_ASSERT(static_cast<uint64_t>(out.nbytes()) == n, "{} vs {}", out.nbytes(), n);
  // Copy with pread rather than from the mapping: measured 1.5-2.5x faster here (no page faults on the
  // source), and a file that shrank since open gives a short read (an error) instead of SIGBUS.
  char* dst = static_cast<char*>(out.data_ptr());
  uint64_t done = 0;
  while (done < n) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, 1u << 30));
    const ssize_t got = ::pread(fd_, dst + done, chunk, static_cast<off_t>(data_start_ + byte_begin + done));
    if (got < 0 && errno == EINTR) continue;
    L4_CHECK(got > 0, "{}: tensor '{}': cannot read bytes [{}, {}) of the data section: {}", path_,
             printable(e.name), byte_begin + done, byte_end,
             got < 0 ? std::strerror(errno) : "the file is shorter than when it was opened (rewritten in use?)");
    done += static_cast<uint64_t>(got);
  }
  return type == at::kBool ? out.ne(0) : out;
}

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const TensorEntry& e = entry(name);
  return copy_out(e, e.begin, e.end, e.shape);
}

at::Tensor SafetensorsFile::load_rows(const std::string& name, int64_t row_begin, int64_t row_end) const {
  const TensorEntry& e = entry(name);
  L4_CHECK(!e.shape.empty(), "{}: tensor '{}': load_rows needs at least one dimension (it is a scalar)", path_,
           printable(name));
  L4_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= e.shape[0],
           "{}: tensor '{}': rows [{}, {}) are outside [0, {}]", path_, printable(name), row_begin, row_end,
           e.shape[0]);
  const uint64_t row_bytes = e.shape[0] == 0 ? 0 : e.nbytes() / static_cast<uint64_t>(e.shape[0]);
  std::vector<int64_t> shape = e.shape;
  shape[0] = row_end - row_begin;
  return copy_out(e, e.begin + row_bytes * static_cast<uint64_t>(row_begin),
                  e.begin + row_bytes * static_cast<uint64_t>(row_end), shape);
}

at::Tensor SafetensorsFile::load_matrix_rows(const std::string& name, int64_t row_begin, int64_t row_end) const {
  const TensorEntry& e = entry(name);
  L4_CHECK(e.shape.size() >= 2, "{}: tensor '{}': load_matrix_rows needs at least two dimensions, it has {}",
           path_, printable(name), e.shape.size());
  const int64_t cols = e.shape.back(), rows = cols == 0 ? 0 : e.numel() / cols;
  L4_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= rows,
           "{}: tensor '{}': matrix rows [{}, {}) are outside [0, {}]", path_, printable(name), row_begin, row_end,
           rows);
  const uint64_t row_bytes = static_cast<uint64_t>(cols) * dtype_itemsize(e.dtype);
  return copy_out(e, e.begin + row_bytes * static_cast<uint64_t>(row_begin),
                  e.begin + row_bytes * static_cast<uint64_t>(row_end), {row_end - row_begin, cols});
}

void write_safetensors_header(FdWriter& out, std::string header_json) {
  header_json.append((8 - header_json.size() % 8) % 8, ' ');
  const uint64_t header_len = header_json.size();
  char len_bytes[8];
  std::memcpy(len_bytes, &header_len, 8);
  out.write(len_bytes, 8);
  out.write(header_json.data(), header_json.size());
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> sorted;
  sorted.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    L4_CHECK(!name.empty() && name != "__metadata__", "{}: cannot save a tensor named '{}'", path, name);
    L4_CHECK(tensor.defined(), "{}: tensor '{}' is undefined", path, name);
    L4_CHECK(tensor.layout() == at::kStrided, "{}: tensor '{}' is not a dense tensor", path, name);
    sorted.emplace_back(name, tensor);
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < sorted.size(); ++i)
    L4_CHECK(sorted[i].first != sorted[i - 1].first, "{}: tensor '{}' given twice", path, sorted[i].first);

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : sorted) {
    std::string dtype;
    try {
      dtype = dtype_of(tensor.scalar_type());
    } catch (const l4::Error& e) {
      L4_FAIL("{}: tensor '{}': {}", path, name, e.what());
    }
    const uint64_t nbytes = static_cast<uint64_t>(tensor.numel()) * dtype_itemsize(dtype);
    header[name] = {{"dtype", dtype}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  FdWriter out(path);
  write_safetensors_header(out, header.dump());
  for (const auto& [name, tensor] : sorted) {
    at::Tensor t = tensor.detach().to(at::kCPU).resolve_conj().resolve_neg().contiguous();
    out.write(t.data_ptr(), static_cast<size_t>(t.nbytes()));
  }
  out.commit();
}

}  // namespace l4::checkpoint
