#include "cli/args.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"

namespace l4::cli {
namespace {

const std::vector<OptionSpec>& global_options() {
  static const std::vector<OptionSpec> options = {
      {"help", "", "show this help and exit"},
      {"log-all-ranks", "", "log from every rank, not only rank 0"},
      {"log-level", "LEVEL", "debug, info (default), warn or error"},
  };
  return options;
}

const OptionSpec* find_option(const CommandSpec& spec, const std::string& name) {
  for (const auto& o : spec.options) {
    if (o.name == name) return &o;
  }
  for (const auto& o : global_options()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

}  // namespace

std::string ParsedArgs::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? fallback : it->second.back();
}

std::vector<std::string> ParsedArgs::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string ParsedArgs::require(const std::string& name, const std::string& command) const {
  L4_CHECK(has(name), "llama4 {}: missing required option --{} (see llama4 {} --help)", command, name, command);
  return get(name);
}

double ParsedArgs::get_double(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (...) {
  }
  L4_FAIL("--{}: expected a number, got '{}'", name, text);
}

long long ParsedArgs::get_int(const std::string& name, long long fallback) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (...) {
  }
  L4_FAIL("--{}: expected an integer, got '{}'", name, text);
}

ParsedArgs parse_args(const CommandSpec& spec, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (starts_with(arg, "--")) {
      std::string name = arg.substr(2);
      std::string value;
      bool has_inline_value = false;
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline_value = true;
      }
      const OptionSpec* option = find_option(spec, name);
      if (option == nullptr) {
        std::vector<std::string> names;
        for (const auto& o : spec.options) names.push_back(o.name);
        for (const auto& o : global_options()) names.push_back(o.name);
        L4_FAIL("llama4 {}: unknown option '--{}'{}", spec.name, name,
                did_you_mean(name, names).empty() ? "" : " (did you mean '--" + closest_match(name, names) + "'?)");
      }
      if (option->metavar.empty()) {
        L4_CHECK(!has_inline_value, "llama4 {}: option --{} takes no value", spec.name, name);
        parsed.values_[name].push_back("1");
        continue;
      }
      if (!has_inline_value) {
        L4_CHECK(i + 1 < args.size(), "llama4 {}: option --{} needs a value ({})", spec.name, name,
                 option->metavar);
        value = args[++i];
      }
      auto& slot = parsed.values_[name];
      if (!option->repeatable) slot.clear();
      slot.push_back(value);
      // A repeatable option takes every following word up to the next option (--input a b c).
      while (option->repeatable && i + 1 < args.size() && !starts_with(args[i + 1], "--") &&
             args[i + 1].find('=') == std::string::npos) {
        slot.push_back(args[++i]);
      }
    } else {
      L4_CHECK(spec.accepts_overrides && arg.find('=') != std::string::npos,
               "llama4 {}: unexpected argument '{}'{}", spec.name, arg,
               spec.accepts_overrides ? " (config overrides look like key.path=value)" : "");
      parsed.positionals_.push_back(arg);
    }
  }
  return parsed;
}

std::string help_text(const CommandSpec& spec) {
  std::string out = fmt::format("usage: llama4 {} {}\n\n{}\n\noptions:\n", spec.name, spec.usage, spec.summary);
  auto add = [&](const OptionSpec& o) {
    const std::string left = o.metavar.empty() ? "--" + o.name : "--" + o.name + " " + o.metavar;
    out += fmt::format("  {:<28} {}\n", left, o.help);
  };
  for (const auto& o : spec.options) add(o);
  for (const auto& o : global_options()) add(o);
  if (spec.accepts_overrides) {
    out += "\nconfig overrides: key.path=value (e.g. optimizer.lr=1e-4 train.steps=10)\n";
  }
  return out;
}

}  // namespace l4::cli
