// Writes TensorBoard event files (scalars) without TensorFlow or protobuf: TFRecord framing with masked
// CRC-32C around hand-encoded `Event` messages, so `tensorboard --logdir runs/` shows our runs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace l4::train {

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix time>.<host>.<pid> and writes the file-version record.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);

  std::string path_;
  std::FILE* file_ = nullptr;
};

// Exposed for tests: the protobuf bytes of Event{wall_time, step, summary{value{tag, simple_value}}}.
std::string encode_scalar_event(const std::string& tag, float value, int64_t step, double wall_time);

}  // namespace l4::train
