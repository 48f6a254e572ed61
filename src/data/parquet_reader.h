// A reader of Parquet files for `llama4 prepare`: each row as a JSON object of its top-level columns, so a
// Parquet file of chat, ShareGPT, Alpaca or text records is read like the JSON lines it stands for.
//
// Apache Arrow/Parquet C++ is not in Debian's archive, so this is a small reader of our own for what dataset
// exports contain (pyarrow, Hugging Face datasets, pandas): the Thrift compact footer; columns of strings,
// binary, booleans, 32/64-bit integers, floats and doubles, optional or required, inside structs and lists
// (the LIST and legacy repeated layouts); PLAIN, dictionary (PLAIN_DICTIONARY, RLE_DICTIONARY) and RLE
// boolean encodings; data pages v1 and v2; uncompressed, Snappy, gzip and Zstandard pages. Everything read
// from the file is bounds-checked; anything else (other encodings or codecs, maps, encryption) is an error
// naming the file, the column and the feature, with the command that rewrites the file in a readable form.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace l4::data {

class ParquetReader {
 public:
  // Reads and checks the footer and schema. columns: the top-level fields to read (empty: all); the others
  // are never decoded, so columns of unsupported types or encodings elsewhere in the file do no harm.
  explicit ParquetReader(const std::string& path, std::vector<std::string> columns = {});
  ~ParquetReader();
  ParquetReader(const ParquetReader&) = delete;
  ParquetReader& operator=(const ParquetReader&) = delete;

  int64_t num_rows() const;
  std::vector<std::string> column_names() const;  // top-level fields, in schema order

  // Calls fn(row, object) for every row in order (rows counted from 0); null values are JSON null.
  void for_each_row(const std::function<void(int64_t row, const nlohmann::json& object)>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace l4::data
