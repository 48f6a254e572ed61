// data.overlong: what happens to a document longer than data.seq_len.
//   split     conversations (at prepare): cut at turn boundaries into several conversations, each a
//             valid one on its own (conversation_fit.h); text: continues in the following rows, as
//             pretraining corpora are read (positions restart with every piece)
//   truncate  only the first seq_len tokens are kept (never cutting an image)
//   drop      the document is left out
#pragma once

#include <string>
#include <vector>

namespace l4::data {

enum class Overlong { split, truncate, drop };

inline const std::vector<std::string>& overlong_names() {
  static const std::vector<std::string> names = {"split", "truncate", "drop"};
  return names;
}
Overlong overlong_from_name(const std::string& name);  // error naming the choices when unknown
const char* overlong_name(Overlong policy);

}  // namespace l4::data
