#include "checkpoint/training_checkpoint.h"

#include <torch/torch.h>

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <filesystem>
#include <map>
#include <set>

#include "core/checksum.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace l4::checkpoint {
namespace {

// 2: trainer_state.json and manifest.json are under CRC32 too (manifest "trainer_state_crc32", and
// manifest.crc32 beside it), so an edited step or config is damage like a flipped tensor bit.
constexpr int kSchemaVersion = 2;
constexpr const char* kManifestCrcFile = "manifest.crc32";

std::string crc_hex(const std::string& bytes) { return fmt::format("{:08x}", crc32(bytes.data(), bytes.size())); }

// Checkpoints that failed verification in this process (rank 0 scans them when resuming): rotation
// treats them as damaged without re-reading their tensors.
std::set<std::string>& known_damaged() {
  static std::set<std::string> paths;
  return paths;
}

// Manifest, trainer state and rank files are present, their sizes and metadata CRCs match: what can be
// checked without reading the tensors (rotation uses it; open_checkpoint reads every tensor too).
void verify_metadata(const std::string& path, nlohmann::json* manifest_out, nlohmann::json* state_out) {
  const std::string manifest_path = (fs::path(path) / "manifest.json").string();
  const std::string state_path = (fs::path(path) / "trainer_state.json").string();
  const std::string crc_path = (fs::path(path) / kManifestCrcFile).string();
  L4_CHECK(file_exists(manifest_path), "{}: missing (incomplete checkpoint)", manifest_path);
  L4_CHECK(file_exists(state_path), "{}: missing (incomplete checkpoint)", state_path);
  const std::string manifest_text = read_file(manifest_path);
  const std::string state_text = read_file(state_path);
  nlohmann::json manifest, state;
  try {
    manifest = nlohmann::json::parse(manifest_text);
    state = nlohmann::json::parse(state_text);
  } catch (const nlohmann::json::exception& e) {
    L4_FAIL("{}: corrupt checkpoint metadata: {}", path, e.what());
  }
  const int version = manifest.is_object() ? manifest.value("schema_version", 0) : 0;
  L4_CHECK(version == 1 || version == kSchemaVersion, "{}: unsupported schema version {}", manifest_path, version);
  if (version >= 2) {
    L4_CHECK(file_exists(crc_path), "{}: missing (the manifest's checksum)", crc_path);
    std::string want = read_file(crc_path);
    want.erase(want.find_last_not_of(" \n") + 1);
    L4_CHECK(crc_hex(manifest_text) == want, "{}: fails its CRC32 check (file changed after saving: {} != {})",
             manifest_path, crc_hex(manifest_text), want);
    L4_CHECK(manifest.contains("trainer_state_crc32") &&
                 manifest.at("trainer_state_crc32").get<std::string>() == crc_hex(state_text),
             "{}: fails its CRC32 check (file changed after saving)", state_path);
  }
  for (const auto& [file, bytes] : manifest.at("files").items()) {
    const std::string shard = (fs::path(path) / file).string();
    L4_CHECK(file_exists(shard), "{}: rank file missing", shard);
    L4_CHECK(fs::file_size(shard) == bytes.get<uint64_t>(), "{}: size {} differs from the {} bytes written (truncated?)",
             shard, fs::file_size(shard), bytes.get<uint64_t>());
  }
  if (manifest_out) *manifest_out = std::move(manifest);
  if (state_out) *state_out = std::move(state);
}

bool is_step_dir(const fs::directory_entry& entry) {
  const std::string name = entry.path().filename().string();
  return entry.is_directory() && name.rfind("step_", 0) == 0 && name.find(".tmp") == std::string::npos;
}

struct DTypeInfo {
  const char* name;
  hid_t (*h5_type)();
};

// HDF5 has no bf16/f16 type we can rely on across versions: store their bits as uint16 and keep the
// real dtype in the manifest.
DTypeInfo dtype_info(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return {"float32", [] { return H5T_NATIVE_FLOAT; }};
    case at::kDouble: return {"float64", [] { return H5T_NATIVE_DOUBLE; }};
    case at::kBFloat16: return {"bfloat16", [] { return H5T_NATIVE_UINT16; }};
    case at::kHalf: return {"float16", [] { return H5T_NATIVE_UINT16; }};
    case at::kLong: return {"int64", [] { return H5T_NATIVE_INT64; }};
    case at::kInt: return {"int32", [] { return H5T_NATIVE_INT32; }};
    case at::kByte: return {"uint8", [] { return H5T_NATIVE_UINT8; }};
    case at::kBool: return {"bool", [] { return H5T_NATIVE_UINT8; }};
    default: L4_FAIL("checkpoint: unsupported tensor dtype {}", c10::toString(type));
  }
}

at::ScalarType scalar_type_of(const std::string& name, const std::string& where) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"bfloat16", at::kBFloat16}, {"float16", at::kHalf},
      {"int64", at::kLong},    {"int32", at::kInt},      {"uint8", at::kByte},        {"bool", at::kBool}};
  auto it = kTypes.find(name);
  L4_CHECK(it != kTypes.end(), "{}: unknown dtype '{}'", where, name);
  return it->second;
}

void silence_hdf5_errors() {
  static bool done = false;
  if (!done) {
    H5dont_atexit();  // see data/hdf5_util.cpp: no second close of a file whose write failed, at exit
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // we report errors ourselves, naming the file
    done = true;
  }
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string rank_file_name(int rank) { return fmt::format("rank_{:05d}.h5", rank); }

// Writes this rank's pieces; returns their index entries.
nlohmann::json write_rank_file(const std::string& path, const std::vector<TensorPiece>& pieces) {
  silence_hdf5_errors();
  errno = 0;  // HDF5 fails without its own errno; the system call's, where it keeps it, names a full disk
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0 && out_of_space(path, errno)) fail_write(path, errno);
  L4_CHECK(file >= 0, "{}: cannot create checkpoint shard", path);
  nlohmann::json entries = nlohmann::json::array();
  for (size_t i = 0; i < pieces.size(); ++i) {
    const TensorPiece& piece = pieces[i];
    const at::Tensor t = piece.tensor.detach().to(at::kCPU).contiguous();
    const DTypeInfo info = dtype_info(t.scalar_type());
    const std::string dataset = fmt::format("t{:06d}", i);
    std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
    const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t set = H5Dcreate2(file, dataset.c_str(), info.h5_type(), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    errno = 0;
    const bool ok = set >= 0 && (t.numel() == 0 || H5Dwrite(set, info.h5_type(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) >= 0);
    if (set >= 0) H5Dclose(set);
    H5Sclose(space);
    if (!ok) {
      const int err = errno;
      H5Fclose(file);
      if (out_of_space(path, err)) fail_write(path, err);
      L4_FAIL("{}: cannot write tensor '{}'", path, piece.name);
    }
    const size_t bytes = t.numel() * t.element_size();
    std::vector<int64_t> global = piece.global_shape.empty() ? std::vector<int64_t>(t.sizes().begin(), t.sizes().end())
                                                             : piece.global_shape;
    entries.push_back({{"name", piece.name},
                       {"dataset", dataset},
                       {"dtype", info.name},
                       {"shape", std::vector<int64_t>(t.sizes().begin(), t.sizes().end())},
                       {"global_shape", global},
                       {"row_begin", piece.row_begin},
                       {"bytes", bytes},
                       {"crc32", crc32(t.data_ptr(), bytes)}});
  }
  errno = 0;
  if (H5Fclose(file) < 0) {  // buffered data is written at close
    const int err = errno;
    if (out_of_space(path, err)) fail_write(path, err);
    L4_FAIL("{}: cannot close checkpoint shard", path);
  }
  fsync_path(path);
  return entries;
}

at::Tensor read_piece(const std::string& path, const nlohmann::json& entry) {
  silence_hdf5_errors();
  const std::string name = entry.at("name").get<std::string>();
  const at::ScalarType type = scalar_type_of(entry.at("dtype").get<std::string>(), path + ": " + name);
  const auto shape = entry.at("shape").get<std::vector<int64_t>>();
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  L4_CHECK(file >= 0, "{}: cannot open checkpoint shard (missing or not HDF5)", path);
  const std::string dataset = entry.at("dataset").get<std::string>();
  const hid_t set = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  bool ok = set >= 0;
  if (ok) {
    const hid_t space = H5Dget_space(set);
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(std::max(rank, 0));
    if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    H5Sclose(space);
    ok = rank == static_cast<int>(shape.size()) && std::equal(dims.begin(), dims.end(), shape.begin(),
                                                                [](hsize_t a, int64_t b) { return a == static_cast<hsize_t>(b); });
    ok = ok && (t.numel() == 0 || H5Dread(set, dtype_info(type).h5_type(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) >= 0);
    H5Dclose(set);
  }
  H5Fclose(file);
  L4_CHECK(ok, "{}: tensor '{}' is missing or has the wrong shape", path, name);
  const size_t bytes = t.numel() * t.element_size();
  L4_CHECK(crc32(t.data_ptr(), bytes) == entry.at("crc32").get<uint32_t>(), "{}: tensor '{}' fails its CRC32 check",
           path, name);
  return t;
}

// Keeps the newest `keep_last` good checkpoints, the one just written always among them. Damaged ones (failed
// verification when resuming, or whose metadata does not verify now) never count as kept, and are removed
// only once a good checkpoint of a later step exists: a fallback run must not lose its last good state to
// make room for a checkpoint known to be unusable.
void rotate(const std::string& dir, int64_t keep_last, const std::string& newest) {
  std::vector<std::string> steps;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (is_step_dir(entry)) steps.push_back(entry.path().filename().string());
  }
  std::sort(steps.rbegin(), steps.rend());  // newest first
  std::vector<std::string> good, damaged;
  for (const std::string& name : steps) {
    const std::string path = (fs::path(dir) / name).string();
    bool ok = name == newest;
    if (!ok && !known_damaged().count(path)) {
      try {
        verify_metadata(path, nullptr, nullptr);
        ok = true;
      } catch (const Error&) {
      }
    }
    (ok ? good : damaged).push_back(name);
  }
  auto remove = [&](const std::string& name, const char* why) {
    std::error_code ec;
    fs::remove_all(fs::path(dir) / name, ec);
    if (!ec) L4_LOG_INFO("checkpoint rotation: removed {} ({})", (fs::path(dir) / name).string(), why);
  };
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep_last, 1)); i < good.size(); ++i) {
    if (good[i] != newest) remove(good[i], "older than the newest checkpoint.keep_last");
  }
  for (const std::string& name : damaged) {
    if (name < good.front()) remove(name, "damaged, and a later good checkpoint exists");
  }
}

}  // namespace

namespace {
std::string write_checkpoint_files(const SaveRequest& request, const SaveCollective& collective,
                                   const std::string& final_dir, const std::string& tmp_dir);
}  // namespace

std::string step_dir_name(int64_t step) { return fmt::format("step_{:07d}", step); }

std::string save_checkpoint(const SaveRequest& request, const SaveCollective& collective) {
  const std::string final_dir = (fs::path(request.dir) / step_dir_name(request.step)).string();
  const std::string tmp_dir = final_dir + ".tmp";
  // A failed save (a full disk) leaves no half-written step behind: the previous checkpoints and `latest`
  // stay as they were. Every rank writes into the same directory, so whichever fails removes it.
  std::error_code ignored;
  try {
    if (collective.rank == 0) {
      fs::remove_all(tmp_dir);  // a leftover of a killed save of the same step
      fs::create_directories(tmp_dir);
    }
    collective.barrier();
    return write_checkpoint_files(request, collective, final_dir, tmp_dir);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp_dir, ignored);
    fail_write(e.path1().empty() ? tmp_dir : e.path1().string(), e.code().value());
  } catch (...) {
    fs::remove_all(tmp_dir, ignored);
    throw;
  }
}

namespace {

std::string write_checkpoint_files(const SaveRequest& request, const SaveCollective& collective,
                                   const std::string& final_dir, const std::string& tmp_dir) {
  const std::string file = rank_file_name(collective.rank);
  nlohmann::json mine;
  mine["rank"] = collective.rank;
  mine["file"] = file;
  mine["pieces"] = write_rank_file((fs::path(tmp_dir) / file).string(), request.pieces);
  mine["file_bytes"] = fs::file_size(fs::path(tmp_dir) / file);
  mine["state"] = request.rank_state;
  const std::vector<std::string> gathered = collective.gather_to_root(mine.dump());
  if (collective.rank == 0) {
    nlohmann::json manifest;
    manifest["schema_version"] = kSchemaVersion;
    manifest["step"] = request.step;
    manifest["layout"] = request.layout;
    manifest["world_size"] = collective.world_size;
    manifest["config"] = request.config_yaml;
    manifest["files"] = nlohmann::json::object();
    manifest["tensors"] = nlohmann::json::object();
    nlohmann::json trainer_state;
    trainer_state["step"] = request.step;
    trainer_state["shared"] = request.shared_state;
    trainer_state["ranks"] = nlohmann::json::array();
    for (const std::string& text : gathered) {
      const nlohmann::json part = nlohmann::json::parse(text);
      manifest["files"][part["file"].get<std::string>()] = part["file_bytes"];
      trainer_state["ranks"].push_back(part["state"]);
      for (nlohmann::json piece : part["pieces"]) {
        const std::string name = piece["name"];
        nlohmann::json& tensor = manifest["tensors"][name];
        tensor["global_shape"] = piece["global_shape"];
        tensor["dtype"] = piece["dtype"];
        piece["file"] = part["file"];
        piece.erase("name");
        piece.erase("global_shape");
        tensor["pieces"].push_back(piece);
      }
    }
    // Test hook: widen the window in which a kill leaves only step_N.tmp behind.
    if (const char* delay = std::getenv("L4_CHECKPOINT_TEST_DELAY_S")) {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(delay)));
    }
    const std::string state_text = trainer_state.dump(1);
    manifest["trainer_state_crc32"] = crc_hex(state_text);
    if (!request.identity.is_null()) manifest["identity"] = request.identity;
    const std::string manifest_text = manifest.dump(1);
    write_file_atomic((fs::path(tmp_dir) / "trainer_state.json").string(), state_text);
    write_file_atomic((fs::path(tmp_dir) / "manifest.json").string(), manifest_text);
    write_file_atomic((fs::path(tmp_dir) / kManifestCrcFile).string(), crc_hex(manifest_text) + "\n");
    fsync_path(tmp_dir);
    fs::remove_all(final_dir);  // re-saving a step (e.g. after a resume) replaces it
    fs::rename(tmp_dir, final_dir);
    known_damaged().erase(final_dir);  // a damaged step re-saved is good now
    fsync_path(request.dir);
    write_file_atomic((fs::path(request.dir) / "latest").string(), step_dir_name(request.step) + "\n");
    rotate(request.dir, request.keep_last, step_dir_name(request.step));
  }
  collective.barrier();  // nobody proceeds (or exits) before the checkpoint is complete
  return final_dir;
}

}  // namespace

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& item : manifest.at("tensors").items()) out.push_back(item.key());
  return out;
}

std::vector<int64_t> Checkpoint::global_shape(const std::string& name) const {
  const auto& tensors = manifest.at("tensors");
  L4_CHECK(tensors.contains(name), "{}: checkpoint has no tensor '{}'", path, name);
  return tensors.at(name).at("global_shape").get<std::vector<int64_t>>();
}

at::Tensor Checkpoint::read(const std::string& name, int64_t row_begin, int64_t row_end) const {
  const auto shape = global_shape(name);
  const nlohmann::json& tensor = manifest["tensors"][name];
  if (shape.empty()) {
    nlohmann::json piece = tensor["pieces"][0];
    piece["name"] = name;
    at::Tensor whole = read_piece((fs::path(path) / piece["file"].get<std::string>()).string(), piece);
    bytes_read += static_cast<int64_t>(whole.nbytes());
    return whole;
  }
  if (row_end < 0) row_end = shape[0];
  L4_CHECK(row_begin >= 0 && row_begin <= row_end && row_end <= shape[0],
           "{}: rows [{}, {}) of '{}' are outside its {} rows", path, row_begin, row_end, name, shape[0]);
  std::vector<at::Tensor> parts;
  int64_t next = row_begin;
  std::vector<nlohmann::json> pieces(tensor["pieces"].begin(), tensor["pieces"].end());
  for (auto& piece : pieces) piece["name"] = name;
  std::sort(pieces.begin(), pieces.end(), [](const auto& a, const auto& b) { return a["row_begin"] < b["row_begin"]; });
  for (const auto& piece : pieces) {
    const int64_t begin = piece["row_begin"].get<int64_t>();
    const int64_t rows = piece["shape"][0].get<int64_t>();
    if (next >= row_end) break;
    if (begin > next || begin + rows <= next) continue;  // does not cover the next row we need
    const at::Tensor t = read_piece((fs::path(path) / piece["file"].get<std::string>()).string(), piece);
    bytes_read += static_cast<int64_t>(t.nbytes());
    const int64_t take_end = std::min(row_end, begin + rows);
    parts.push_back(t.slice(0, next - begin, take_end - begin));
    next = take_end;
  }
  L4_CHECK(next >= row_end, "{}: rows [{}, {}) of '{}' are not all saved (stops at row {})", path, row_begin,
           row_end, name, next);
  if (parts.empty()) {
    auto empty_shape = shape;
    empty_shape[0] = 0;
    return at::empty(empty_shape, at::TensorOptions().dtype(scalar_type_of(tensor["dtype"], path)));
  }
  return parts.size() == 1 ? parts[0].clone() : at::cat(parts, 0);
}

Checkpoint open_checkpoint(const std::string& path, Verify verify) {
  Checkpoint ckpt;
  ckpt.path = path;
  verify_metadata(path, &ckpt.manifest, &ckpt.trainer_state);
  ckpt.step = ckpt.manifest.at("step").get<int64_t>();
  if (verify == Verify::kMetadata) return ckpt;
  for (const auto& item : ckpt.manifest.at("tensors").items()) {
    for (const auto& piece : item.value().at("pieces")) {
      nlohmann::json entry = piece;
      entry["name"] = item.key();
      read_piece((fs::path(path) / piece.at("file").get<std::string>()).string(), entry);
    }
  }
  return ckpt;
}

std::optional<Checkpoint> find_latest_valid(const std::string& dir) {
  if (!is_directory(dir)) return std::nullopt;
  std::vector<std::string> steps;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step_", 0) != 0) continue;
    if (name.find(".tmp") != std::string::npos) {
      L4_LOG_WARN("{}: incomplete checkpoint (interrupted save), ignored", entry.path().string());
      continue;
    }
    steps.push_back(name);
  }
  std::sort(steps.rbegin(), steps.rend());
  std::vector<std::string> rejected;
  for (const auto& name : steps) {
    const std::string path = (fs::path(dir) / name).string();
    try {
      return open_checkpoint(path);
    } catch (const Error& e) {
      known_damaged().insert(path);
      rejected.push_back(fmt::format("  {}: {}", path, e.what()));
      L4_LOG_WARN("skipping damaged checkpoint: {}", e.what());
    }
  }
  // Starting over from step 1 beside checkpoints that exist would throw their training away (and rotation
  // would then delete them): the user decides (repair, move them, or checkpoint.resume: none).
  L4_CHECK(rejected.empty(),
           "{}: every checkpoint is damaged, refusing to start over (set checkpoint.resume: none to train from "
           "scratch, or name a step directory):\n{}",
           dir, join(rejected, "\n"));
  return std::nullopt;
}

}  // namespace l4::checkpoint
