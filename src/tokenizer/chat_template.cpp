// The Llama 4 chat template (transformers' processing_llama4.chat_template) rendered in C++, and its
// tokenisation with an assistant-output mask for SFT.
#include "core/error.h"
#include "tokenizer/python_json.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace l4::tokenizer {
namespace {

std::string special(const Tokenizer& tok, const char* name) {
  const std::optional<int32_t> id = tok.special_id(name);
  L4_CHECK(id.has_value(), "{}: the chat template needs the special token {}", tok.path(), name);
  return tok.id_to_piece(*id);
}

}  // namespace

std::string render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        std::vector<std::pair<size_t, size_t>>* assistant_ranges) {
  const std::string header_start = special(tok, "<|header_start|>"), header_end = special(tok, "<|header_end|>");
  const std::string eot = special(tok, "<|eot|>");
  const auto header = [&](const std::string& role) { return header_start + role + header_end + "\n\n"; };
  std::string out = special(tok, "<|begin_of_text|>");
  size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {  // only a leading system turn is trimmed
    out += header("system") + std::string(python_strip(utf8_lossy(messages[0].content))) + eot;
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const std::string content = utf8_lossy(m.content);
    const bool assistant = m.role == "assistant";
    if (m.role == "ipython" || m.role == "tool") {
      // The template tests `content is iterable`, true for strings, so the text is JSON-quoted.
      out += header("ipython") + python_json_string(content) + eot;
      continue;
    }
    if (!m.tool_calls.empty()) {
      out += header("assistant");
      const size_t begin = out.size();
      out += special(tok, "<|python_start|>") + content + special(tok, "<|python_end|>");
      for (size_t k = 0; k < m.tool_calls.size(); ++k) {
        const ToolCall& call = m.tool_calls[k];
        const std::string what = fmt::format("chat message {} tool call {} arguments", i, k);
        out += "{\"name\": \"" + utf8_lossy(call.name) + "\", \"parameters\": " +
               python_json_dumps(utf8_lossy(call.arguments_json), what) + "}";
      }
      out += eot;
      if (assistant_ranges) assistant_ranges->emplace_back(begin, out.size());
      continue;
    }
    out += header(utf8_lossy(m.role));
    const size_t begin = out.size();
    L4_CHECK(m.num_images >= 0, "chat message {}: num_images must be >= 0, got {}", i, m.num_images);
    for (int64_t k = 0; k < m.num_images; ++k) out += special(tok, "<|image|>");
    out += content + eot;
    if (assistant && assistant_ranges) assistant_ranges->emplace_back(begin, out.size());
  }
  if (add_generation_prompt) out += header("assistant");
  return out;
}

EncodedChat encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::vector<std::pair<size_t, size_t>> ranges;
  const std::string text = render_chat(tok, messages, add_generation_prompt, &ranges);
  std::vector<uint32_t> offsets;
  EncodedChat chat;
  chat.ids = tok.encode_with_offsets(text, /*parse_special=*/true, &offsets);
  chat.assistant_mask.assign(chat.ids.size(), 0);
  // A token is assistant output when its bytes overlap an assistant range (what HF's
  // return_assistant_tokens_mask marks with {% generation %} spans).
  size_t r = 0;
  for (size_t i = 0; i < chat.ids.size(); ++i) {
    const size_t begin = offsets[i], end = i + 1 < offsets.size() ? offsets[i + 1] : text.size();
    while (r < ranges.size() && ranges[r].second <= begin) ++r;
    chat.assistant_mask[i] = r < ranges.size() && ranges[r].first < end && begin < ranges[r].second;
  }
  return chat;
}

}  // namespace l4::tokenizer
