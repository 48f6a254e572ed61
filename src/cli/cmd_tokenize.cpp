// llama4 tokenize: token ids of a text, for debugging tokenization
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "tokenizer/tokenizer.h"

namespace l4::cli {
namespace {

// A piece made readable: printable UTF-8 as is, other bytes as \xNN, and \n \r \t escaped.
std::string printable(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

void print_line(const tokenizer::Tokenizer& tok, const std::string& text, bool bos, bool special, bool ids_only) {
  const std::vector<int32_t> ids = tok.encode(text, bos, special);
  std::string out;
  if (ids_only) {
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
    out += "\n";
  } else {
    out += fmt::format("{} tokens\n", ids.size());
    for (int32_t id : ids) {
      const std::string piece = tok.id_to_piece(id);
      out += fmt::format("{:>8}  {}{}{}\n", id, tok.is_special(id) ? "" : "'", printable(piece),
                         tok.is_special(id) ? "" : "'");
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

int run_tokenize(const ParsedArgs& args) {
  const std::string path = args.require("tokenizer", "tokenize");
  L4_CHECK(args.has("text") != args.has("file"), "llama4 tokenize: give exactly one of --text or --file");
  const std::unique_ptr<tokenizer::Tokenizer> tok = tokenizer::Tokenizer::load(path);
  const bool bos = args.has("bos"), special = args.has("parse-special"), ids_only = args.has("ids-only");
  if (args.has("text")) {
    print_line(*tok, args.get("text"), bos, special, ids_only);
    return 0;
  }
  // Each line on its own, without its '\n' (a '\r' before it stays part of the line).
  const std::string contents = read_file(args.get("file"));
  for (size_t pos = 0; pos < contents.size();) {
    size_t eol = contents.find('\n', pos);
    if (eol == std::string::npos) eol = contents.size();
    print_line(*tok, contents.substr(pos, eol - pos), bos, special, ids_only);
    pos = eol + 1;
  }
  return 0;
}

}  // namespace

Command make_tokenize_command() {
  return {{"tokenize",
           "token ids of a text, for debugging tokenization",
           "--tokenizer T (--text S | --file F) [--ids-only] [--bos] [--parse-special]",
           {{"tokenizer", "T", "tokenizer.model, tokenizer.json or a directory (tokenizer.json preferred)"},
            {"text", "S", "text to tokenize"},
            {"file", "F", "tokenize each line of F (without its newline)"},
            {"ids-only", "", "one line of space-separated ids per input line"},
            {"bos", "", "prepend <|begin_of_text|>"},
            {"parse-special", "", "special-token text such as <|eot|> becomes its id (default: plain text)"}},
           /*accepts_overrides=*/false},
          run_tokenize};
}

}  // namespace l4::cli
