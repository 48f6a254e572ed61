// Command-line parsing for the subcommands: "--name value", "--name=value", boolean flags, and
// positional "key.path=value" config overrides. Unknown options are errors with a suggestion.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace l4::cli {

struct OptionSpec {
  std::string name;     // without the leading "--"
  std::string metavar;  // empty for boolean flags
  std::string help;
  bool repeatable = false;
};

struct CommandSpec {
  std::string name;
  std::string summary;
  std::string usage;  // after "llama4 <name> "
  std::vector<OptionSpec> options;
  bool accepts_overrides = false;  // positional key.path=value
};

class ParsedArgs {
 public:
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  // Throws l4::Error when a required option is missing.
  std::string require(const std::string& name, const std::string& command) const;
  double get_double(const std::string& name, double fallback) const;
  long long get_int(const std::string& name, long long fallback) const;

 private:
  friend ParsedArgs parse_args(const CommandSpec&, const std::vector<std::string>&);
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

// Every subcommand accepts --help (handled by the caller) and the global logging flags.
ParsedArgs parse_args(const CommandSpec& spec, const std::vector<std::string>& args);
std::string help_text(const CommandSpec& spec);

}  // namespace l4::cli
