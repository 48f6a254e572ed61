// llama4 tokenize: token ids of a text, for debugging tokenization
#include "cli/commands.h"

namespace l4::cli {

Command make_tokenize_command() {
  return {{"tokenize",
           "token ids of a text, for debugging tokenization",
           "--tokenizer T (--text S | --file F) [--ids-only] [--bos]",
           {{"tokenizer", "T", "tokenizer.model, tokenizer.json or a directory"}, {"text", "S", "text to tokenize"}, {"file", "F", "tokenize each line of F"}, {"ids-only", "", "one line of ids per input line"}, {"bos", "", "prepend <|begin_of_text|>"}},
           /*accepts_overrides=*/false},
          [](const ParsedArgs&) { return not_available("tokenize"); }};
}

}  // namespace l4::cli
