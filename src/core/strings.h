// Small string helpers used for user-facing messages.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace l4 {

// Levenshtein distance (insert, delete, substitute, adjacent transpose each cost 1).
int edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `name`, or "" when none is close enough to be a plausible typo.
std::string closest_match(std::string_view name, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" when nothing is close.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

std::vector<std::string> split(std::string_view text, char separator);
bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);
std::string join(const std::vector<std::string>& parts, std::string_view separator);

// Shell-style glob with '*' (any run, including '.') and '?' (one character).
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace l4
