// The Llama 4 tokenizer: byte-level BPE loaded from Meta's tiktoken `tokenizer.model` or HF's
// `tokenizer.json`, with identical behaviour to tiktoken (+ Meta's input slicing) and HF tokenizers
// respectively. Thread-safe: all methods are const and may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l4::tokenizer {

class Tokenizer {
 public:
  // `path`: a tokenizer.model (tiktoken ranks), a tokenizer.json (HF; chosen when the name ends in
  // ".json"), or a directory holding one of them. A directory with both uses tokenizer.json, the file HF
  // references read. Errors (l4::Error) name the file and line or key.
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  ~Tokenizer();

  // Invalid UTF-8 in `text` is first replaced by U+FFFD (as bytes.decode(errors="replace") would).
  // parse_special: special tokens written in the text become their ids; otherwise they are plain text.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false, bool parse_special = false) const;
  // Same, plus the byte offset (in the UTF-8-cleaned text) where each token starts.
  std::vector<int32_t> encode_with_offsets(std::string_view text, bool parse_special,
                                           std::vector<uint32_t>* offsets) const;
  // Text of the ids, special tokens included; invalid UTF-8 becomes U+FFFD like HF / tiktoken decode.
  std::string decode(const std::vector<int32_t>& ids) const;
  // Raw concatenated token bytes (no replacement).
  std::string decode_bytes(const std::vector<int32_t>& ids) const;
  // Raw bytes of one token (special tokens: their text). Unknown id -> l4::Error.
  std::string id_to_piece(int32_t id) const;
  std::optional<int32_t> special_id(std::string_view name) const;  // "<|eot|>" -> id
  bool is_special(int32_t id) const;
  int64_t vocab_size() const;  // tiktoken: n_base + 2048 special slots; HF: highest id + 1
  int64_t num_base_tokens() const;
  int32_t bos_id() const;  // <|begin_of_text|>
  int32_t eot_id() const;  // <|eot|> (end of turn)
  int32_t eos_id() const;  // <|end_of_text|> (Meta's eos)
  int32_t pad_id() const;  // <|finetune_right_pad|> (Meta's pad); each -1 when the file lacks it
  std::string sha256() const;  // of the source file
  const std::string& path() const;
  bool is_tiktoken() const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ToolCall {
  std::string name;
  std::string arguments_json;  // a JSON object; rendered as Python's json.dumps would (key order kept)
};

struct ChatMessage {
  std::string role;  // system, user, assistant, ipython (or tool)
  std::string content;
  int64_t num_images = 0;  // <|image|> placeholders emitted before the text, as the HF template does
  std::vector<ToolCall> tool_calls;  // assistant tool calls: <|python_start|>content<|python_end|>{...}
};

struct EncodedChat {
  std::vector<int32_t> ids;
  std::vector<uint8_t> assistant_mask;  // 1 for tokens the model must learn: assistant content + its <|eot|>
};

// The Llama 4 chat template (transformers' text) rendered and tokenised: <|begin_of_text|>, the system
// turn only if given (content trimmed), then <|header_start|>role<|header_end|>\n\n content <|eot|> per
// turn; tool results as "ipython" with JSON-quoted content; generation prompt on request. Special-token
// text inside messages is parsed, as apply_chat_template does.
EncodedChat encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// The rendered template text plus the byte ranges [begin, end) of assistant output (for tests and tools).
std::string render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        std::vector<std::pair<size_t, size_t>>* assistant_ranges = nullptr);

}  // namespace l4::tokenizer
