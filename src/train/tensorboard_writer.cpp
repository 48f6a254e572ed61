#include "train/tensorboard_writer.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/checksum.h"
#include "core/error.h"

namespace l4::train {
namespace {

// Minimal protobuf wire encoding: the three wire types an Event needs.
void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
void put_key(std::string& out, int field, int wire_type) { put_varint(out, (static_cast<uint64_t>(field) << 3) | wire_type); }
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
template <class T>
void put_fixed(std::string& out, int field, int wire_type, T value) {
  put_key(out, field, wire_type);
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));  // little-endian host, as protobuf's fixed encodings
  out.append(raw, sizeof(T));
}

uint32_t masked_crc(const std::string& bytes) {
  const uint32_t crc = crc32c(bytes.data(), bytes.size());
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string encode_scalar_event(const std::string& tag, float value, int64_t step, double wall_time) {
  std::string summary_value;
  put_bytes(summary_value, 1, tag);             // Summary.Value.tag
  put_fixed(summary_value, 2, 5, value);        // Summary.Value.simple_value (float)
  std::string summary;
  put_bytes(summary, 1, summary_value);         // Summary.value (repeated)
  std::string event;
  put_fixed(event, 1, 1, wall_time);            // Event.wall_time (double)
  put_key(event, 2, 0);                         // Event.step (int64)
  put_varint(event, static_cast<uint64_t>(step));
  put_bytes(event, 5, summary);                 // Event.summary
  return event;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  const auto seconds = static_cast<long long>(now_seconds());
  path_ = dir + "/events.out.tfevents." + std::to_string(seconds) + "." + host + "." + std::to_string(::getpid());
  file_ = std::fopen(path_.c_str(), "wb");
  L4_CHECK(file_ != nullptr, "{}: cannot create TensorBoard event file: {}", path_, std::strerror(errno));
  std::string event;
  put_fixed(event, 1, 1, now_seconds());
  put_bytes(event, 3, "brain.Event:2");  // Event.file_version
  write_record(event);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  write_record(encode_scalar_event(tag, static_cast<float>(value), step, wall_time));
}

void TensorBoardWriter::flush() { std::fflush(file_); }

void TensorBoardWriter::write_record(const std::string& payload) {
  // TFRecord: uint64 length, uint32 masked crc32c(length), payload, uint32 masked crc32c(payload).
  std::string length(8, '\0');
  const uint64_t n = payload.size();
  std::memcpy(length.data(), &n, 8);
  const uint32_t length_crc = masked_crc(length);
  const uint32_t payload_crc = masked_crc(payload);
  std::string record = length;
  record.append(reinterpret_cast<const char*>(&length_crc), 4);
  record += payload;
  record.append(reinterpret_cast<const char*>(&payload_crc), 4);
  L4_CHECK(std::fwrite(record.data(), 1, record.size(), file_) == record.size(), "{}: write failed", path_);
}

}  // namespace l4::train
