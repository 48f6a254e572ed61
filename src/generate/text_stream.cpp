#include "generate/text_stream.h"

#include <algorithm>

namespace l4::generate {
namespace {

// Length of the longest tail of `text` that is a proper beginning of some stop string: those bytes may
// still turn into a stop string and are held back.
size_t pending_stop_prefix(const std::string& text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& stop : stops) {
    for (size_t n = std::min(stop.size() - 1, text.size()); n > held; --n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        held = n;
        break;
      }
    }
  }
  return held;
}

}  // namespace

TextStream::TextStream(Decode decode, std::vector<std::string> stop_strings, Sink sink)
    : decode_(std::move(decode)), sink_(std::move(sink)) {
  for (std::string& s : stop_strings) {
    if (!s.empty()) stop_strings_.push_back(std::move(s));
  }
}

bool TextStream::push(int64_t token) {
  if (stopped_) return false;
  tokens_.push_back(token);
  text_ = decode_(tokens_);
  size_t cut = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    // Only a match that ends in the new bytes can be new; earlier ones would have stopped already.
    const size_t from = sent_ >= stop.size() ? sent_ - stop.size() + 1 : 0;
    const size_t at = text_.find(stop, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(cut);
    stopped_ = true;
  }
  const size_t ready = stopped_ ? text_.size() : text_.size() - pending_stop_prefix(text_, stop_strings_);
  if (ready > sent_) {
    sink_(text_.substr(sent_, ready - sent_));
    sent_ = ready;
  }
  return !stopped_;
}

const std::string& TextStream::finish() {
  if (sent_ < text_.size()) {
    sink_(text_.substr(sent_));
    sent_ = text_.size();
  }
  return text_;
}

}  // namespace l4::generate
