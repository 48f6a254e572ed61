#include "data/parquet_reader.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/strings.h"
#include "data/parquet_codecs.h"
#include "data/thrift_compact.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "Parquet values are read as little-endian memory");

namespace l4::data {
namespace {

// Parquet's enums (parquet.thrift).
enum PhysicalType {
  kBoolean = 0,
  kInt32 = 1,
  kInt64 = 2,
  kInt96 = 3,
  kFloat = 4,
  kDouble = 5,
  kByteArray = 6,
  kFixedLenByteArray = 7
};
enum Repetition { kRequired = 0, kOptional = 1, kRepeated = 2 };
enum PageType { kDataPage = 0, kIndexPage = 1, kDictionaryPage = 2, kDataPageV2 = 3 };
enum Encoding { kPlain = 0, kPlainDictionary = 2, kRle = 3, kBitPacked = 4, kRleDictionary = 8 };
constexpr int kConvertedMap = 1, kConvertedMapKeyValue = 2, kConvertedList = 3;
constexpr uint64_t kMaxPageBytes = 1ull << 30;  // larger pages are not what dataset writers produce
constexpr int64_t kMaxPageValues = 1ll << 26;

const char* physical_name(int t) {
  static const char* names[] = {"BOOLEAN", "INT32",  "INT64",      "INT96",
                                "FLOAT",   "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"};
  return t >= 0 && t < 8 ? names[t] : "unknown";
}

struct SchemaNode {
  std::string name;
  int type = -1;  // physical type of a leaf; -1 for a group
  int repetition = kRequired;
  int num_children = 0;
  bool list = false, map = false;  // LIST / MAP annotation (converted or logical type)
  std::vector<int> children;
  bool is_leaf() const { return num_children == 0; }
};

struct ColumnChunk {
  int type = -1, codec = 0;
  std::vector<std::string> path;
  int64_t num_values = 0, data_page_offset = -1, dictionary_page_offset = -1, total_compressed_size = 0;
};

struct RowGroup {
  int64_t num_rows = 0;
  std::vector<ColumnChunk> columns;
};

// One leaf column: its schema path from the top-level field down, and the levels at which each node exists.
struct Leaf {
  std::vector<int> path;    // schema node indices
  std::vector<int> def_at;  // definition level at which path[i] is present
  std::vector<int> rep_at;  // repetition level of path[i] (meaningful for repeated nodes)
  int max_def = 0, max_rep = 0, column = 0;
  std::string dotted;  // for messages
};

// A decoded column chunk: levels of every slot and the values of the present ones.
struct ColumnData {
  std::vector<int32_t> rep, def;
  std::vector<nlohmann::json> values;
};

int bit_width(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

// A bounded byte range with little-endian reads.
struct Bytes {
  const uint8_t* p;
  size_t n, pos = 0;
  const std::string* what;
  void need(size_t k) const { L4_CHECK(k <= n - pos, "{}: page data truncated", *what); }
  void need_items(size_t count, size_t size) const {
    L4_CHECK(count <= (n - pos) / size, "{}: page data truncated", *what);
  }
  uint32_t u32() {
    need(4);
    uint32_t v;
    std::memcpy(&v, p + pos, 4);
    pos += 4;
    return v;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const uint8_t b = p[pos++];
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    L4_FAIL("{}: bad varint in page data", *what);
  }
};

// The RLE / bit-packed hybrid encoding of levels and dictionary indices: `count` values of `width` bits.
void decode_hybrid(Bytes& in, int width, size_t count, uint32_t max_value, std::vector<int32_t>& out) {
  const std::string& what = *in.what;
  L4_CHECK(width >= 0 && width <= 32, "{}: bit width {} out of range", what, width);
  const size_t start = out.size();
  out.reserve(start + count);
  while (out.size() - start < count) {
    const uint64_t header = in.varint();
    if (header & 1) {  // bit-packed groups of 8
      const uint64_t groups = header >> 1;
      L4_CHECK(groups <= (in.n - in.pos) / std::max(width, 1) + 1, "{}: bit-packed run past the page", what);
      // The bytes of the values still wanted must be there; a last group's padding may be cut short.
      const uint64_t take = std::min<uint64_t>(groups * 8, count - (out.size() - start));
      in.need(static_cast<size_t>((take * static_cast<uint64_t>(width) + 7) / 8));
      const size_t bytes = std::min(static_cast<size_t>(groups) * static_cast<size_t>(width), in.n - in.pos);
      const uint8_t* base = in.p + in.pos;
      for (uint64_t i = 0; i < take; ++i) {
        uint64_t v = 0;
        for (int b = 0; b < width; ++b) {
          const uint64_t bit = i * static_cast<uint64_t>(width) + static_cast<uint64_t>(b);
          v |= static_cast<uint64_t>((base[bit >> 3] >> (bit & 7)) & 1) << b;
        }
        L4_CHECK(v <= max_value, "{}: encoded value {} above its maximum {}", what, v, max_value);
        out.push_back(static_cast<int32_t>(v));
      }
      in.pos += bytes;
    } else {  // a run of one repeated value
      const uint64_t run = header >> 1;
      const size_t bytes = static_cast<size_t>((width + 7) / 8);
      in.need(bytes);
      uint64_t v = 0;
      for (size_t b = 0; b < bytes; ++b) v |= static_cast<uint64_t>(in.p[in.pos + b]) << (8 * b);
      in.pos += bytes;
      L4_CHECK(v <= max_value, "{}: encoded value {} above its maximum {}", what, v, max_value);
      L4_CHECK(run > 0 && run <= count - (out.size() - start), "{}: run of {} values past the page's {}",
               what, run, count);
      out.insert(out.end(), static_cast<size_t>(run), static_cast<int32_t>(v));
    }
  }
}

// PLAIN-encoded fixed-width values: little-endian, as this machine stores them.
template <class T>
void decode_fixed(Bytes& in, size_t count, std::vector<nlohmann::json>& out) {
  in.need_items(count, sizeof(T));
  for (size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, in.p + in.pos, sizeof(T));
    in.pos += sizeof(T);
    out.emplace_back(v);
  }
}

// PLAIN-encoded values of a physical type.
void decode_plain(Bytes& in, int type, size_t count, std::vector<nlohmann::json>& out) {
  const std::string& what = *in.what;
  switch (type) {
    case kBoolean: {
      in.need((count + 7) / 8);
      for (size_t i = 0; i < count; ++i) out.emplace_back(((in.p[in.pos + i / 8] >> (i % 8)) & 1) != 0);
      in.pos += (count + 7) / 8;
      return;
    }
    case kInt32:
      return decode_fixed<int32_t>(in, count, out);
    case kFloat:
      return decode_fixed<float>(in, count, out);
    case kInt64:
      return decode_fixed<int64_t>(in, count, out);
    case kDouble:
      return decode_fixed<double>(in, count, out);
    case kByteArray:
      for (size_t i = 0; i < count; ++i) {
        const uint32_t len = in.u32();
        in.need(len);
        out.emplace_back(std::string(reinterpret_cast<const char*>(in.p + in.pos), len));
        in.pos += len;
      }
      return;
    default:
      L4_FAIL("{}: {} values are not supported", what, physical_name(type));
  }
}

struct PageHeader {
  int type = -1;
  int64_t uncompressed = -1, compressed = -1;
  int64_t num_values = 0, num_nulls = 0;
  int encoding = 0, def_encoding = kRle, rep_encoding = kRle;
  int64_t def_bytes = 0, rep_bytes = 0;  // v2
  bool v2_compressed = true;
};

void read_page_sub_header(ThriftReader& t, PageHeader& h, int page_type) {
  t.begin_struct();
  int16_t id;
  uint8_t type;
  while (t.next_field(&id, &type)) {
    if (id == 1 && type != ThriftReader::kStruct) {
      h.num_values = t.read_int(type);
    } else if (page_type == kDataPage && id == 2) {
      h.encoding = static_cast<int>(t.read_int(type));
    } else if (page_type == kDataPage && id == 3) {
      h.def_encoding = static_cast<int>(t.read_int(type));
    } else if (page_type == kDataPage && id == 4) {
      h.rep_encoding = static_cast<int>(t.read_int(type));
    } else if (page_type == kDictionaryPage && id == 2) {
      h.encoding = static_cast<int>(t.read_int(type));
    } else if (page_type == kDataPageV2 && id == 2) {
      h.num_nulls = t.read_int(type);
    } else if (page_type == kDataPageV2 && id == 4) {
      h.encoding = static_cast<int>(t.read_int(type));
    } else if (page_type == kDataPageV2 && id == 5) {
      h.def_bytes = t.read_int(type);
    } else if (page_type == kDataPageV2 && id == 6) {
      h.rep_bytes = t.read_int(type);
    } else if (page_type == kDataPageV2 && id == 7) {
      h.v2_compressed = t.read_bool(type);
    } else {
      t.skip(type);
    }
  }
  t.end_struct();
}

PageHeader read_page_header(ThriftReader& t) {
  PageHeader h;
  t.begin_struct();
  int16_t id;
  uint8_t type;
  while (t.next_field(&id, &type)) {
    if (id == 1) {
      h.type = static_cast<int>(t.read_int(type));
    } else if (id == 2) {
      h.uncompressed = t.read_int(type);
    } else if (id == 3) {
      h.compressed = t.read_int(type);
    } else if ((id == 5 || id == 7 || id == 8) && type == ThriftReader::kStruct) {
      read_page_sub_header(t, h, id == 5 ? kDataPage : id == 7 ? kDictionaryPage : kDataPageV2);
    } else {
      t.skip(type);
    }
  }
  t.end_struct();
  if (h.uncompressed < 0 || h.compressed < 0 || static_cast<uint64_t>(h.uncompressed) > kMaxPageBytes) {
    t.fail("page sizes missing or out of range");
  }
  return h;
}

std::vector<std::string> read_string_list(ThriftReader& t) {
  const ThriftReader::ListHeader h = t.read_list_header();
  std::vector<std::string> out;
  for (size_t i = 0; i < h.size; ++i) out.push_back(t.read_binary());
  return out;
}

ColumnChunk read_column_meta(ThriftReader& t) {
  ColumnChunk c;
  t.begin_struct();
  int16_t id;
  uint8_t type;
  while (t.next_field(&id, &type)) {
    if (id == 1) {
      c.type = static_cast<int>(t.read_int(type));
    } else if (id == 3 && type == ThriftReader::kList) {
      c.path = read_string_list(t);
    } else if (id == 4) {
      c.codec = static_cast<int>(t.read_int(type));
    } else if (id == 5) {
      c.num_values = t.read_int(type);
    } else if (id == 7) {
      c.total_compressed_size = t.read_int(type);
    } else if (id == 9) {
      c.data_page_offset = t.read_int(type);
    } else if (id == 11) {
      c.dictionary_page_offset = t.read_int(type);
    } else {
      t.skip(type);
    }
  }
  t.end_struct();
  return c;
}

RowGroup read_row_group(ThriftReader& t) {
  RowGroup g;
  t.begin_struct();
  int16_t id;
  uint8_t type;
  while (t.next_field(&id, &type)) {
    if (id == 1 && type == ThriftReader::kList) {
      const ThriftReader::ListHeader h = t.read_list_header();
      for (size_t i = 0; i < h.size; ++i) {
        bool has_meta = false;
        ColumnChunk c;
        t.begin_struct();
        int16_t cid;
        uint8_t ctype;
        while (t.next_field(&cid, &ctype)) {
          if (cid == 1 && ctype == ThriftReader::kBinary && !t.read_binary().empty()) {
            t.fail("column chunks in other files are not supported");
          } else if (cid == 3 && ctype == ThriftReader::kStruct) {
            c = read_column_meta(t);
            has_meta = true;
          } else if (cid != 1) {
            t.skip(ctype);
          }
        }
        t.end_struct();
        if (!has_meta) t.fail("a column chunk without metadata (encrypted columns are not supported)");
        g.columns.push_back(std::move(c));
      }
    } else if (id == 3) {
      g.num_rows = t.read_int(type);
    } else {
      t.skip(type);
    }
  }
  t.end_struct();
  if (g.num_rows < 0) t.fail("negative row count");
  return g;
}

SchemaNode read_schema_element(ThriftReader& t) {
  SchemaNode n;
  t.begin_struct();
  int16_t id;
  uint8_t type;
  while (t.next_field(&id, &type)) {
    if (id == 1) {
      n.type = static_cast<int>(t.read_int(type));
    } else if (id == 3) {
      n.repetition = static_cast<int>(t.read_int(type));
    } else if (id == 4) {
      n.name = t.read_binary();
    } else if (id == 5) {
      n.num_children = static_cast<int>(t.read_int(type));
    } else if (id == 6) {
      const int64_t converted = t.read_int(type);
      n.list |= converted == kConvertedList;
      n.map |= converted == kConvertedMap || converted == kConvertedMapKeyValue;
    } else if (id == 10 && type == ThriftReader::kStruct) {  // LogicalType union: 2 MAP, 3 LIST
      t.begin_struct();
      int16_t lid;
      uint8_t ltype;
      while (t.next_field(&lid, &ltype)) {
        n.list |= lid == 3;
        n.map |= lid == 2;
        t.skip(ltype);
      }
      t.end_struct();
    } else {
      t.skip(type);
    }
  }
  t.end_struct();
  if (n.num_children < 0 || n.repetition < kRequired || n.repetition > kRepeated)
    t.fail("bad schema element");
  return n;
}

}  // namespace

struct ParquetReader::Impl {
  std::string path;
  std::vector<uint8_t> file;
  std::vector<SchemaNode> schema;  // [0] is the root
  std::vector<RowGroup> row_groups;
  std::vector<Leaf> leaves;  // in column order
  int64_t num_rows = 0;
  std::vector<std::string> wanted;

  [[noreturn]] void fail(const std::string& problem) const { L4_FAIL("{}: {}", path, problem); }

  void load() {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    L4_CHECK(in.good(), "{}: cannot read input file", path);
    const std::streamoff size = in.tellg();
    L4_CHECK(size >= 12, "{}: not a Parquet file (too short)", path);
    file.resize(static_cast<size_t>(size));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(file.data()), size);
    L4_CHECK(in.good(), "{}: read error", path);
    const auto magic = [&](size_t at) { return std::memcmp(file.data() + at, "PAR1", 4) == 0; };
    if (!magic(0) || !magic(file.size() - 4)) {
      L4_CHECK(!(magic(0) && std::memcmp(file.data() + file.size() - 4, "PARE", 4) == 0),
               "{}: encrypted Parquet files are not supported", path);
      fail("not a Parquet file (no PAR1 magic at both ends)");
    }
    uint32_t footer_len;
    std::memcpy(&footer_len, file.data() + file.size() - 8, 4);
    L4_CHECK(footer_len <= file.size() - 12, "{}: footer length {} exceeds the file", path, footer_len);
    const size_t footer_at = file.size() - 8 - footer_len;
    ThriftReader t(file.data() + footer_at, footer_len, path + ": footer");
    t.begin_struct();
    int16_t id;
    uint8_t type;
    while (t.next_field(&id, &type)) {
      if (id == 2 && type == ThriftReader::kList) {
        const ThriftReader::ListHeader h = t.read_list_header();
        for (size_t i = 0; i < h.size; ++i) schema.push_back(read_schema_element(t));
      } else if (id == 3) {
        num_rows = t.read_int(type);
      } else if (id == 4 && type == ThriftReader::kList) {
        const ThriftReader::ListHeader h = t.read_list_header();
        for (size_t i = 0; i < h.size; ++i) row_groups.push_back(read_row_group(t));
      } else {
        t.skip(type);
      }
    }
    t.end_struct();
    L4_CHECK(!schema.empty() && schema[0].num_children > 0, "{}: the schema has no columns", path);
    size_t next = 1;
    build_tree(0, next, 0);
    L4_CHECK(next == schema.size(), "{}: schema has {} elements, its tree uses {}", path, schema.size(),
             next);
    std::vector<int> trail;
    for (int child : schema[0].children) collect_leaves(child, trail, 0, 0);
    int64_t rows = 0;
    for (size_t g = 0; g < row_groups.size(); ++g) {
      const RowGroup& rg = row_groups[g];
      L4_CHECK(rg.columns.size() == leaves.size(), "{}: row group {} has {} columns, the schema {}", path, g,
               rg.columns.size(), leaves.size());
      for (size_t c = 0; c < leaves.size(); ++c) check_chunk(rg.columns[c], leaves[c], footer_at);
      rows += rg.num_rows;
    }
    L4_CHECK(rows == num_rows, "{}: the row groups hold {} rows, the footer says {}", path, rows, num_rows);
  }

  void build_tree(int index, size_t& next, int depth) {
    L4_CHECK(depth < 32, "{}: schema nested too deeply", path);
    SchemaNode& n = schema[static_cast<size_t>(index)];
    for (int c = 0; c < n.num_children; ++c) {
      L4_CHECK(next < schema.size(), "{}: schema element '{}' has more children than the schema holds", path,
               n.name);
      const int child = static_cast<int>(next++);
      for (int sibling : n.children) {
        L4_CHECK(schema[static_cast<size_t>(sibling)].name != schema[static_cast<size_t>(child)].name,
                 "{}: two fields named '{}' in one group", path, schema[static_cast<size_t>(child)].name);
      }
      n.children.push_back(child);
      build_tree(child, next, depth + 1);
    }
  }

  void collect_leaves(int index, std::vector<int>& trail, int def, int rep) {
    const SchemaNode& n = schema[static_cast<size_t>(index)];
    def += n.repetition != kRequired;
    rep += n.repetition == kRepeated;
    trail.push_back(index);
    if (n.is_leaf()) {
      Leaf leaf;
      leaf.path = trail;
      for (size_t i = 0, d = 0, r = 0; i < trail.size(); ++i) {
        const SchemaNode& p = schema[static_cast<size_t>(trail[i])];
        d += p.repetition != kRequired;
        r += p.repetition == kRepeated;
        leaf.def_at.push_back(static_cast<int>(d));
        leaf.rep_at.push_back(static_cast<int>(r));
        leaf.dotted += (i ? "." : "") + p.name;
      }
      leaf.max_def = def;
      leaf.max_rep = rep;
      leaf.column = static_cast<int>(leaves.size());
      L4_CHECK(n.type >= 0, "{}: column '{}' has no type", path, leaf.dotted);
      leaves.push_back(std::move(leaf));
    } else {
      for (int child : n.children) collect_leaves(child, trail, def, rep);
    }
    trail.pop_back();
  }

  void check_chunk(const ColumnChunk& c, const Leaf& leaf, size_t footer_at) const {
    L4_CHECK(c.type == schema[static_cast<size_t>(leaf.path.back())].type,
             "{}: column '{}': type differs from the schema", path, leaf.dotted);
    const int64_t start = chunk_start(c);
    L4_CHECK(start >= 4 && c.total_compressed_size >= 0 &&
                 static_cast<uint64_t>(start) + static_cast<uint64_t>(c.total_compressed_size) <= footer_at,
             "{}: column '{}': chunk [{}, +{}) outside the data section", path, leaf.dotted, start,
             c.total_compressed_size);
  }

  static int64_t chunk_start(const ColumnChunk& c) {
    return c.dictionary_page_offset > 0 && c.dictionary_page_offset < c.data_page_offset
               ? c.dictionary_page_offset
               : c.data_page_offset;
  }

  bool is_wanted(const Leaf& leaf) const {
    return wanted.empty() || std::find(wanted.begin(), wanted.end(),
                                       schema[static_cast<size_t>(leaf.path[0])].name) != wanted.end();
  }

  ColumnData decode_chunk(const ColumnChunk& c, const Leaf& leaf, int64_t group) const {
    const std::string what = fmt::format("{}: row group {}, column '{}'", path, group, leaf.dotted);
    for (int node : leaf.path) {
      L4_CHECK(!schema[static_cast<size_t>(node)].map, "{}: map columns are not supported", what);
    }
    if (!parquet_codec_supported(c.codec))
      parquet_decompress(c.codec, nullptr, 0, 0, what);  // names the codec
    ColumnData out;
    std::vector<nlohmann::json> dictionary;
    const int type = c.type;
    size_t pos = static_cast<size_t>(chunk_start(c));
    const size_t end = pos + static_cast<size_t>(c.total_compressed_size);
    int64_t values_seen = 0;
    while (values_seen < c.num_values) {
      L4_CHECK(pos < end, "{}: the chunk ends after {} of {} values", what, values_seen, c.num_values);
      ThriftReader t(file.data() + pos, end - pos, what + ": page header");
      const PageHeader h = read_page_header(t);
      pos += t.position();
      L4_CHECK(static_cast<uint64_t>(h.compressed) <= end - pos, "{}: page of {} bytes runs past the chunk",
               what, h.compressed);
      const uint8_t* page = file.data() + pos;
      pos += static_cast<size_t>(h.compressed);
      if (h.type == kIndexPage) continue;
      if (h.type == kDictionaryPage) {
        L4_CHECK(h.encoding == kPlain || h.encoding == kPlainDictionary,
                 "{}: dictionary encoding {} not supported", what, h.encoding);
        const std::vector<uint8_t> data = parquet_decompress(c.codec, page, static_cast<size_t>(h.compressed),
                                                             static_cast<size_t>(h.uncompressed), what);
        Bytes in{data.data(), data.size(), 0, &what};
        L4_CHECK(h.num_values >= 0 && static_cast<uint64_t>(h.num_values) <= data.size() * 8 + 1,
                 "{}: dictionary of {} values in {} bytes", what, h.num_values, data.size());
        dictionary.clear();
        decode_plain(in, type, static_cast<size_t>(h.num_values), dictionary);
        continue;
      }
      L4_CHECK(h.type == kDataPage || h.type == kDataPageV2, "{}: unknown page type {}", what, h.type);
      L4_CHECK(
          h.num_values >= 0 && h.num_values <= c.num_values - values_seen && h.num_values <= kMaxPageValues,
          "{}: page of {} values (the chunk has {}, a page at most {})", what, h.num_values, c.num_values,
          kMaxPageValues);
      const size_t count = static_cast<size_t>(h.num_values);
      values_seen += h.num_values;
      std::vector<uint8_t> data;
      Bytes levels{nullptr, 0, 0, &what}, values{nullptr, 0, 0, &what};
      if (h.type == kDataPage) {
        data = parquet_decompress(c.codec, page, static_cast<size_t>(h.compressed),
                                  static_cast<size_t>(h.uncompressed), what);
        Bytes in{data.data(), data.size(), 0, &what};
        for (const bool is_rep : {true, false}) {
          const int max = is_rep ? leaf.max_rep : leaf.max_def;
          std::vector<int32_t>& dst = is_rep ? out.rep : out.def;
          if (max == 0) {
            dst.insert(dst.end(), count, 0);
            continue;
          }
          L4_CHECK((is_rep ? h.rep_encoding : h.def_encoding) == kRle, "{}: level encoding {} not supported",
                   what, is_rep ? h.rep_encoding : h.def_encoding);
          const uint32_t len = in.u32();
          in.need(len);
          Bytes run{in.p + in.pos, len, 0, &what};
          decode_hybrid(run, bit_width(max), count, static_cast<uint32_t>(max), dst);
          in.pos += len;
        }
        values = in;
      } else {
        L4_CHECK(h.rep_bytes >= 0 && h.def_bytes >= 0 && h.rep_bytes <= h.compressed &&
                     h.def_bytes <= h.compressed - h.rep_bytes && h.rep_bytes + h.def_bytes <= h.uncompressed,
                 "{}: level sections larger than the page", what);
        const size_t rep_n = static_cast<size_t>(h.rep_bytes), def_n = static_cast<size_t>(h.def_bytes);
        for (const bool is_rep : {true, false}) {
          const int max = is_rep ? leaf.max_rep : leaf.max_def;
          std::vector<int32_t>& dst = is_rep ? out.rep : out.def;
          if (max == 0) {
            dst.insert(dst.end(), count, 0);
            continue;
          }
          Bytes run{page + (is_rep ? 0 : rep_n), is_rep ? rep_n : def_n, 0, &what};
          decode_hybrid(run, bit_width(max), count, static_cast<uint32_t>(max), dst);
        }
        const uint8_t* body = page + rep_n + def_n;
        const size_t body_n = static_cast<size_t>(h.compressed) - rep_n - def_n;
        const size_t body_size = static_cast<size_t>(h.uncompressed) - rep_n - def_n;
        data = h.v2_compressed ? parquet_decompress(c.codec, body, body_n, body_size, what)
                               : parquet_decompress(kUncompressed, body, body_n, body_size, what);
        values = Bytes{data.data(), data.size(), 0, &what};
      }
      size_t present = 0;
      for (size_t i = out.def.size() - count; i < out.def.size(); ++i) present += out.def[i] == leaf.max_def;
      if (h.encoding == kPlain) {
        decode_plain(values, type, present, out.values);
      } else if (h.encoding == kPlainDictionary || h.encoding == kRleDictionary) {
        L4_CHECK(!dictionary.empty() || present == 0, "{}: dictionary-encoded page without a dictionary",
                 what);
        std::vector<int32_t> indices;
        if (present > 0) {
          values.need(1);
          const int width = values.p[values.pos++];
          decode_hybrid(values, width, present, static_cast<uint32_t>(dictionary.size() - 1), indices);
        }
        for (int32_t k : indices) out.values.push_back(dictionary[static_cast<size_t>(k)]);
      } else if (h.encoding == kRle && type == kBoolean) {
        const uint32_t len = values.u32();
        values.need(len);
        Bytes run{values.p + values.pos, len, 0, &what};
        std::vector<int32_t> bits;
        decode_hybrid(run, 1, present, 1, bits);
        for (int32_t b : bits) out.values.emplace_back(b != 0);
      } else {
        L4_FAIL(
            "{}: value encoding {} is not supported (PLAIN and dictionary encodings are); rewrite the file "
            "with: "
            "python3 -c \"import pyarrow.parquet as pq, sys; pq.write_table(pq.read_table(sys.argv[1]), "
            "sys.argv[2], use_dictionary=True, column_encoding=None)\" IN.parquet OUT.parquet",
            what, h.encoding);
      }
    }
    if (!out.rep.empty()) L4_CHECK(out.rep[0] == 0, "{}: the first value does not start a row", what);
    return out;
  }

  // Puts one (repetition, definition, value) slot of a leaf into the row under construction: repeated nodes
  // are arrays of instances, groups objects, absent optional nodes null (Dremel record assembly). idx holds
  // the leaf's current instance of each repeated node; other leaves of the same groups reach the same ones.
  void place(nlohmann::json& row, const Leaf& leaf, int r, int d, const nlohmann::json* value,
             std::vector<size_t>& idx, const std::string& where) const {
    nlohmann::json* parent = &row;
    for (size_t i = 0; i < leaf.path.size(); ++i) {
      const SchemaNode& n = schema[static_cast<size_t>(leaf.path[i])];
      nlohmann::json& slot = (*parent)[n.name];
      const bool defined = d >= leaf.def_at[i];
      if (n.repetition == kRepeated) {
        if (!slot.is_array()) slot = nlohmann::json::array();
        if (!defined) return;  // an empty list
        if (leaf.rep_at[i] > r) {
          idx[i] = 0;
        } else if (leaf.rep_at[i] == r) {
          idx[i] = slot.empty() ? 0 : idx[i] + 1;
        }
        L4_CHECK(idx[i] <= slot.size(), "{}: repetition levels out of order", where);
        if (idx[i] == slot.size()) slot.push_back(n.is_leaf() ? nlohmann::json() : nlohmann::json::object());
        nlohmann::json& instance = slot[idx[i]];
        if (n.is_leaf()) {
          instance = *value;
          return;
        }
        if (!instance.is_object()) instance = nlohmann::json::object();
        parent = &instance;
        continue;
      }
      if (!defined) return;  // null (an absent optional node)
      if (n.is_leaf()) {
        slot = *value;
        return;
      }
      if (!slot.is_object()) slot = nlohmann::json::object();
      parent = &slot;
    }
  }

  // Raw assembled value of node -> JSON: a LIST group {repeated: [instances]} becomes the array of its
  // elements (the repeated node itself, or its single child in the three-level layout).
  nlohmann::json finish(int index, nlohmann::json raw) const {
    const SchemaNode& n = schema[static_cast<size_t>(index)];
    if (raw.is_null()) return raw;
    if (n.repetition == kRepeated && raw.is_array()) {
      nlohmann::json out = nlohmann::json::array();
      for (auto& item : raw) out.push_back(finish_instance(index, std::move(item)));
      return out;
    }
    return finish_instance(index, std::move(raw));
  }

  nlohmann::json finish_instance(int index, nlohmann::json raw) const {
    const SchemaNode& n = schema[static_cast<size_t>(index)];
    if (n.is_leaf() || raw.is_null()) return raw;
    if (n.list && n.children.size() == 1) {
      const int rep_index = n.children[0];
      const SchemaNode& rep = schema[static_cast<size_t>(rep_index)];
      const nlohmann::json& items = raw.contains(rep.name) ? raw[rep.name] : nlohmann::json::array();
      const bool element_is_repeated =
          rep.is_leaf() || rep.children.size() > 1 || rep.name == "array" || rep.name == n.name + "_tuple";
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : items) {
        if (element_is_repeated) {
          out.push_back(finish_instance(rep_index, item));
        } else {
          const int element = rep.children[0];
          const std::string& name = schema[static_cast<size_t>(element)].name;
          out.push_back(finish(element, item.contains(name) ? item[name] : nlohmann::json()));
        }
      }
      return out;
    }
    nlohmann::json out = nlohmann::json::object();
    for (int child : n.children) {
      const std::string& name = schema[static_cast<size_t>(child)].name;
      if (raw.contains(name)) out[name] = finish(child, std::move(raw[name]));
    }
    return out;
  }

  void for_each_row(const std::function<void(int64_t, const nlohmann::json&)>& fn) const {
    if (std::none_of(leaves.begin(), leaves.end(), [&](const Leaf& l) { return is_wanted(l); })) {
      std::vector<std::string> names;
      for (int top : schema[0].children) names.push_back(schema[static_cast<size_t>(top)].name);
      L4_FAIL("{}: none of the columns {} is in this file (its columns: {})", path, join(wanted, ", "),
              join(names, ", "));
    }
    int64_t row_base = 0;
    for (size_t g = 0; g < row_groups.size(); ++g) {
      const RowGroup& rg = row_groups[g];
      std::vector<const Leaf*> used;
      std::vector<ColumnData> data;
      for (const Leaf& leaf : leaves) {
        if (!is_wanted(leaf)) continue;
        used.push_back(&leaf);
        data.push_back(
            decode_chunk(rg.columns[static_cast<size_t>(leaf.column)], leaf, static_cast<int64_t>(g)));
      }
      std::vector<size_t> slot(used.size(), 0), value(used.size(), 0);
      std::vector<std::vector<size_t>> idx(used.size());
      for (int64_t r = 0; r < rg.num_rows; ++r) {
        const std::string where = fmt::format("{}:row {}", path, row_base + r);
        nlohmann::json raw = nlohmann::json::object();
        for (size_t k = 0; k < used.size(); ++k) {
          const Leaf& leaf = *used[k];
          const ColumnData& col = data[k];
          idx[k].assign(leaf.path.size(), 0);
          L4_CHECK(slot[k] < col.def.size(), "{}: column '{}' ends before the row group's {} rows", where,
                   leaf.dotted, rg.num_rows);
          do {
            const int d = col.def[slot[k]];
            const nlohmann::json* v = nullptr;
            if (d == leaf.max_def) {
              L4_CHECK(value[k] < col.values.size(), "{}: column '{}' has fewer values than its levels",
                       where, leaf.dotted);
              v = &col.values[value[k]++];
            }
            place(raw, leaf, col.rep[slot[k]], d, v, idx[k], where);
            ++slot[k];
          } while (slot[k] < col.rep.size() && col.rep[slot[k]] != 0);
        }
        nlohmann::json object = nlohmann::json::object();
        for (int top : schema[0].children) {
          const std::string& name = schema[static_cast<size_t>(top)].name;
          if (raw.contains(name)) object[name] = finish(top, std::move(raw[name]));
        }
        fn(row_base + r, object);
      }
      for (size_t k = 0; k < used.size(); ++k) {
        L4_CHECK(slot[k] == data[k].def.size(), "{}: row group {}, column '{}' has values beyond its {} rows",
                 path, g, used[k]->dotted, rg.num_rows);
      }
      row_base += rg.num_rows;
    }
  }
};

ParquetReader::ParquetReader(const std::string& path, std::vector<std::string> columns)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->wanted = std::move(columns);
  impl_->load();
}

ParquetReader::~ParquetReader() = default;

int64_t ParquetReader::num_rows() const {
  return impl_->num_rows;
}

std::vector<std::string> ParquetReader::column_names() const {
  std::vector<std::string> names;
  for (int top : impl_->schema[0].children) names.push_back(impl_->schema[static_cast<size_t>(top)].name);
  return names;
}

void ParquetReader::for_each_row(const std::function<void(int64_t, const nlohmann::json&)>& fn) {
  impl_->for_each_row(fn);
}

}  // namespace l4::data
