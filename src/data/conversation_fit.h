// Fitting a conversation into the training sequence length at prepare time, and the loss-mask choice
// (data.train_on), where the turns are still known.
//
// data.overlong = split: the leading system turn(s) open every piece; the other turns are grouped into
// exchanges, each starting at a user turn and running to the next one (turns before the first user turn
// belong to the first exchange); each piece takes as many whole consecutive exchanges as fit in
// seq_len tokens. A piece therefore never starts with an answer whose question it lacks. An exchange that
// does not fit on its own (with the system turns) is truncated: its prompt is kept and its answer cut at
// seq_len. Pieces without a training target (train_on last_turn, a prompt longer than seq_len) are left
// out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/document_encoder.h"
#include "data/overlong.h"

namespace l4::data {

enum class TrainOn { assistant, all, last_turn };
inline const std::vector<std::string>& train_on_names() {
  static const std::vector<std::string> names = {"assistant", "all", "last_turn"};
  return names;
}
TrainOn train_on_from_name(const std::string& name);  // error naming the choices when unknown

// Sets each assistant turn's `target` for the choice: assistant = every assistant turn, last_turn = the
// last one, all = every assistant turn (the rest of the conversation is added by encode_conversation).
void mark_targets(std::vector<ChatTurn>& turns, TrainOn train_on);

// Encodes turns; with TrainOn::all every token outside the images becomes a target.
Document encode_conversation(const DocumentEncoder& encoder, const std::vector<ChatTurn>& turns,
                             TrainOn train_on);

struct FittedConversation {
  std::vector<Document> documents;  // what goes into the dataset, in order (empty: left out)
  bool was_split = false, truncated = false, dropped = false;
};

// seq_len 0: no limit (the conversation stays whole).
FittedConversation fit_conversation(const DocumentEncoder& encoder, const std::vector<ChatTurn>& turns,
                                    TrainOn train_on, uint64_t seq_len, Overlong overlong);

// The first seq_len tokens of doc; a cut inside an image's tokens moves before the image.
Document truncate_document(const Document& doc, uint64_t seq_len);
bool has_targets(const Document& doc);

}  // namespace l4::data
