#include "data/thrift_compact.h"

#include <cstring>

#include "core/error.h"

namespace l4::data {

namespace {
constexpr size_t kMaxDepth = 32;  // Parquet metadata nests a few levels; more is a hostile file
int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}
}  // namespace

ThriftReader::ThriftReader(const uint8_t* data, size_t size, std::string what)
    : data_(data), size_(size), what_(std::move(what)) {}

void ThriftReader::fail(const std::string& problem) const {
  L4_FAIL("{}: {} (at byte {} of {})", what_, problem, pos_, size_);
}

uint8_t ThriftReader::byte() {
  if (pos_ >= size_) fail("truncated");
  return data_[pos_++];
}

uint64_t ThriftReader::varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const uint8_t b = byte();
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  fail("varint longer than 10 bytes");
}

bool ThriftReader::next_field(int16_t* id, uint8_t* type) {
  const uint8_t header = byte();
  *type = header & 0x0F;
  if (*type == kStop) return false;
  const uint8_t delta = header >> 4;
  const int64_t full = delta != 0 ? last_ids_.back() + delta : unzigzag(varint());
  if (full < -32768 || full > 32767) fail("field id out of range");
  *id = static_cast<int16_t>(full);
  last_ids_.back() = *id;
  return true;
}

void ThriftReader::begin_struct() {
  if (last_ids_.size() > kMaxDepth) fail("structures nested too deeply");
  last_ids_.push_back(0);
}

void ThriftReader::end_struct() {
  if (last_ids_.size() <= 1) fail("unbalanced structure");
  last_ids_.pop_back();
}

int64_t ThriftReader::read_int(uint8_t type) {
  if (type == kByte) return static_cast<int8_t>(byte());
  if (type != kI16 && type != kI32 && type != kI64)
    fail("expected an integer, got type " + std::to_string(type));
  return unzigzag(varint());
}

bool ThriftReader::read_bool(uint8_t type) {
  if (type == kTrue) return true;
  if (type == kFalse) return false;
  fail("expected a boolean, got type " + std::to_string(type));
}

double ThriftReader::read_double() {
  if (size_ - pos_ < 8) fail("truncated double");
  double v;
  std::memcpy(&v, data_ + pos_, 8);
  pos_ += 8;
  return v;
}

std::string ThriftReader::read_binary() {
  const uint64_t n = varint();
  if (n > size_ - pos_) fail("string of " + std::to_string(n) + " bytes runs past the end");
  std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
  pos_ += n;
  return s;
}

ThriftReader::ListHeader ThriftReader::read_list_header() {
  const uint8_t header = byte();
  ListHeader h;
  h.element_type = header & 0x0F;
  h.size = header >> 4;
  if (h.size == 15) h.size = varint();
  // Every element takes at least one byte, which bounds what a caller may reserve.
  if (h.size > size_ - pos_) fail("list of " + std::to_string(h.size) + " elements runs past the end");
  return h;
}

void ThriftReader::skip(uint8_t type) {
  skip_value(type, 0);
}

void ThriftReader::skip_element(uint8_t type, int depth) {
  if (type == kTrue || type == kFalse) {
    byte();  // booleans inside lists and maps take a byte each
  } else {
    skip_value(type, depth);
  }
}

void ThriftReader::skip_value(uint8_t type, int depth) {
  if (depth > static_cast<int>(kMaxDepth)) fail("values nested too deeply");
  switch (type) {
    case kTrue:
    case kFalse:
      return;
    case kByte:
      byte();
      return;
    case kI16:
    case kI32:
    case kI64:
      varint();
      return;
    case kDouble:
      read_double();
      return;
    case kBinary:
      read_binary();
      return;
    case kList:
    case kSet: {
      const ListHeader h = read_list_header();
      for (size_t i = 0; i < h.size; ++i) {
        skip_element(h.element_type, depth + 1);
      }
      return;
    }
    case kMap: {
      const uint64_t n = varint();
      if (n == 0) return;
      if (n > size_ - pos_) fail("map runs past the end");
      const uint8_t kv = byte();
      for (uint64_t i = 0; i < n; ++i) {
        skip_element(kv >> 4, depth + 1);
        skip_element(kv & 0x0F, depth + 1);
      }
      return;
    }
    case kStruct: {
      begin_struct();
      int16_t id;
      uint8_t t;
      while (next_field(&id, &t)) skip_value(t, depth + 1);
      end_struct();
      return;
    }
    default:
      fail("unknown value type " + std::to_string(type));
  }
}

}  // namespace l4::data
