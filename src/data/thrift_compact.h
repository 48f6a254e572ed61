// A bounds-checked reader of the Thrift compact protocol, the encoding of Parquet's footer and page
// headers. Every read checks the remaining bytes; nesting is limited so a hostile file cannot exhaust the
// stack; errors are l4::Error prefixed with what is being read ("file.parquet: footer").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace l4::data {

class ThriftReader {
 public:
  enum Type : uint8_t {
    kStop = 0,
    kTrue = 1,
    kFalse = 2,
    kByte = 3,
    kI16 = 4,
    kI32 = 5,
    kI64 = 6,
    kDouble = 7,
    kBinary = 8,
    kList = 9,
    kSet = 10,
    kMap = 11,
    kStruct = 12
  };
  struct ListHeader {
    uint8_t element_type = 0;
    size_t size = 0;
  };

  ThriftReader(const uint8_t* data, size_t size, std::string what);

  // Inside a struct: the next field's id and type, or false at the struct's end (STOP).
  bool next_field(int16_t* id, uint8_t* type);
  void begin_struct();  // before the fields of a nested struct (field value or list element)
  void end_struct();    // after next_field returned false

  int64_t read_int(uint8_t type);  // byte, i16, i32 or i64 (zigzag varints)
  bool read_bool(uint8_t type);    // a field's value is in its type (kTrue / kFalse)
  double read_double();
  std::string read_binary();
  ListHeader read_list_header();  // list or set
  void skip(uint8_t type);        // any value, nested ones included

  size_t position() const { return pos_; }
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  uint8_t byte();
  uint64_t varint();
  void skip_value(uint8_t type, int depth);
  void skip_element(uint8_t type, int depth);

  const uint8_t* data_;
  size_t size_, pos_ = 0;
  std::string what_;
  std::vector<int16_t> last_ids_{0};
};

}  // namespace l4::data
