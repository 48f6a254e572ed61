// String collectives over a tensor communicator (checkpoint metadata, chosen resume path).
#pragma once

#include <string>
#include <vector>

namespace l4::parallel {
class Communicator;
}

namespace l4::train {

// Every rank's string, in rank order, on every rank.
std::vector<std::string> all_gather_strings(parallel::Communicator& comm, const std::string& mine);
// Root's string on every rank.
std::string broadcast_string(parallel::Communicator& comm, const std::string& value, int root = 0);

}  // namespace l4::train
