// Streaming the text of generated tokens as they come, with stop strings: the bytes of a token are printed as
// soon as no stop string can still begin in them, so a stop string is never printed, even one that spans
// several tokens, and the caller learns when one is complete.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace l4::generate {

class TextStream {
 public:
  // `decode` turns ids into their raw bytes (UTF-8 sequences may be cut between tokens; the pieces join).
  using Decode = std::function<std::string(const std::vector<int64_t>&)>;
  using Sink = std::function<void(const std::string&)>;
  TextStream(Decode decode, std::vector<std::string> stop_strings, Sink sink);

  // Adds a token; returns false once a stop string is complete (the text before it has then been sent).
  bool push(int64_t token);
  // Sends whatever was held back (no stop string completed); the text of the whole answer.
  const std::string& finish();
  bool stopped() const { return stopped_; }

 private:
  Decode decode_;
  std::vector<std::string> stop_strings_;
  Sink sink_;
  std::vector<int64_t> tokens_;
  std::string text_;  // the answer so far (cut at a stop string once one is found)
  size_t sent_ = 0;   // bytes of text_ already sent
  bool stopped_ = false;
};

}  // namespace l4::generate
