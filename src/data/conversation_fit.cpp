#include "data/conversation_fit.h"

#include "core/error.h"
#include "core/strings.h"

namespace l4::data {

Overlong overlong_from_name(const std::string& name) {
  if (name == "split") return Overlong::split;
  if (name == "truncate") return Overlong::truncate;
  if (name == "drop") return Overlong::drop;
  L4_FAIL("data.overlong: expected one of {}, got '{}'{}", join(overlong_names(), ", "), name,
          did_you_mean(name, overlong_names()));
}

const char* overlong_name(Overlong policy) {
  switch (policy) {
    case Overlong::split:
      return "split";
    case Overlong::truncate:
      return "truncate";
    case Overlong::drop:
      return "drop";
  }
  return "?";
}

TrainOn train_on_from_name(const std::string& name) {
  if (name == "assistant") return TrainOn::assistant;
  if (name == "all") return TrainOn::all;
  if (name == "last_turn") return TrainOn::last_turn;
  L4_FAIL("data.train_on: expected one of {}, got '{}'{}", join(train_on_names(), ", "), name,
          did_you_mean(name, train_on_names()));
}

void mark_targets(std::vector<ChatTurn>& turns, TrainOn train_on) {
  size_t last = turns.size();
  for (size_t i = 0; i < turns.size(); ++i) {
    turns[i].target = turns[i].role == "assistant";
    if (turns[i].target) last = i;
  }
  if (train_on != TrainOn::last_turn) return;
  for (size_t i = 0; i < turns.size(); ++i) turns[i].target = i == last;
}

Document encode_conversation(const DocumentEncoder& encoder, const std::vector<ChatTurn>& turns,
                             TrainOn train_on) {
  Document doc = encoder.encode_chat(turns);
  if (train_on == TrainOn::all) {
    std::fill(doc.loss_mask.begin(), doc.loss_mask.end(), 1);
    for (const ImageRecord& im : doc.images) {
      std::fill(doc.loss_mask.begin() + static_cast<std::ptrdiff_t>(im.token_begin),
                doc.loss_mask.begin() + static_cast<std::ptrdiff_t>(im.token_end), 0);
    }
  }
  return doc;
}

bool has_targets(const Document& doc) {
  for (size_t i = 1; i < doc.loss_mask.size(); ++i) {
    if (doc.loss_mask[i]) return true;
  }
  return false;
}

Document truncate_document(const Document& doc, uint64_t seq_len) {
  uint64_t end = std::min<uint64_t>(seq_len, doc.tokens.size());
  for (const ImageRecord& im : doc.images) {
    if (im.token_begin < end && end < im.token_end) end = im.token_begin;
  }
  Document out;
  out.tokens.assign(doc.tokens.begin(), doc.tokens.begin() + static_cast<std::ptrdiff_t>(end));
  out.loss_mask.assign(doc.loss_mask.begin(), doc.loss_mask.begin() + static_cast<std::ptrdiff_t>(end));
  for (const ImageRecord& im : doc.images) {
    if (im.token_end <= end) out.images.push_back(im);
  }
  return out;
}

FittedConversation fit_conversation(const DocumentEncoder& encoder, const std::vector<ChatTurn>& turns,
                                    TrainOn train_on, uint64_t seq_len, Overlong overlong) {
  FittedConversation fit;
  Document whole = encode_conversation(encoder, turns, train_on);
  if (seq_len == 0 || whole.tokens.size() <= seq_len) {
    fit.documents.push_back(std::move(whole));
    return fit;
  }
  if (overlong == Overlong::drop) {
    fit.dropped = true;
    return fit;
  }
  if (overlong == Overlong::truncate) {
    Document cut = truncate_document(whole, seq_len);
    fit.truncated = true;
    fit.dropped = !has_targets(cut);
    if (!fit.dropped) fit.documents.push_back(std::move(cut));
    return fit;
  }
  // split: system turns, then exchanges that each start at a user turn.
  std::vector<ChatTurn> system;
  size_t first = 0;
  while (first < turns.size() && turns[first].role == "system") system.push_back(turns[first++]);
  std::vector<std::vector<ChatTurn>> exchanges;
  for (size_t i = first; i < turns.size(); ++i) {
    if (exchanges.empty() || (turns[i].role == "user" && !exchanges.back().empty())) exchanges.emplace_back();
    exchanges.back().push_back(turns[i]);
  }
  const auto piece_of = [&](size_t begin, size_t end) {
    std::vector<ChatTurn> piece = system;
    for (size_t e = begin; e < end; ++e) piece.insert(piece.end(), exchanges[e].begin(), exchanges[e].end());
    return piece;
  };
  fit.was_split = true;
  for (size_t begin = 0; begin < exchanges.size();) {
    Document doc = encode_conversation(encoder, piece_of(begin, begin + 1), train_on);
    size_t end = begin + 1;
    if (doc.tokens.size() > seq_len) {
      doc = truncate_document(doc, seq_len);
      fit.truncated = true;
    } else {
      while (end < exchanges.size()) {
        Document longer = encode_conversation(encoder, piece_of(begin, end + 1), train_on);
        if (longer.tokens.size() > seq_len) break;
        doc = std::move(longer);
        ++end;
      }
    }
    if (has_targets(doc)) fit.documents.push_back(std::move(doc));
    begin = end;
  }
  fit.dropped = fit.documents.empty();
  return fit;
}

}  // namespace l4::data
