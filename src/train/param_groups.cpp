#include "train/param_groups.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "core/strings.h"

namespace l4::train {
namespace {

// "model.layers.12.self_attn..." or "language_model.model.layers.12..." -> 12; -1 otherwise.
int64_t decoder_layer_index(const std::string& name) {
  const std::string marker = "model.layers.";
  const size_t at = name.find(marker);
  if (at == std::string::npos) return -1;
  const size_t start = at + marker.size();
  const size_t end = name.find('.', start);
  const std::string digits = name.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

}  // namespace

int64_t layer_id_of(const std::string& name, int64_t num_layers) {
  const int64_t layer = decoder_layer_index(name);
  // The vision tower's own layers ("vision_model.model.layers.N") sit before the decoder: id 0.
  if (layer >= 0 && name.find("vision_model.") == std::string::npos) return std::min(layer + 1, num_layers);
  if (name.find("lm_head") != std::string::npos || ends_with(name, "model.norm.weight")) return num_layers;
  return 0;
}

bool no_decay_by_default(const std::string& name) {
  return name.find("norm") != std::string::npos || ends_with(name, ".bias") ||
         name.find("embed_tokens") != std::string::npos || name.find("class_embedding") != std::string::npos ||
         name.find("positional_embedding") != std::string::npos;
}

std::vector<ParamSetting> resolve_param_settings(const std::vector<std::string>& names,
                                                 const config::OptimizerSection& optimizer,
                                                 int64_t num_layers) {
  std::vector<ParamSetting> settings;
  settings.reserve(names.size());
  for (const auto& name : names) {
    ParamSetting s;
    s.name = name;
    s.layer_id = layer_id_of(name, num_layers);
    const double layer_scale = std::pow(optimizer.layer_decay, static_cast<double>(num_layers - s.layer_id));
    s.lr = optimizer.lr * layer_scale;
    s.weight_decay = no_decay_by_default(name) ? 0.0 : optimizer.weight_decay;
    s.beta1 = optimizer.betas.at(0);
    s.beta2 = optimizer.betas.at(1);
    for (size_t i = 0; i < optimizer.param_groups.size(); ++i) {
      const config::ParamGroupRule& rule = optimizer.param_groups[i];
      if (!glob_match(rule.match, name)) continue;
      s.rule = static_cast<int>(i);
      if (rule.lr) s.lr = *rule.lr;  // an explicit lr is exact: no layer decay
      if (rule.lr_scale) s.lr *= *rule.lr_scale;
      if (rule.weight_decay) s.weight_decay = *rule.weight_decay;
      if (rule.betas.size() == 2) {
        s.beta1 = rule.betas[0];
        s.beta2 = rule.betas[1];
      }
      break;  // first match wins
    }
    settings.push_back(std::move(s));
  }
  return settings;
}

std::vector<ParamGroup> group_settings(const std::vector<ParamSetting>& settings) {
  std::vector<ParamGroup> groups;
  std::map<std::tuple<double, double, double, double>, size_t> index;
  for (const auto& s : settings) {
    const auto key = std::make_tuple(s.lr, s.weight_decay, s.beta1, s.beta2);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, groups.size()).first;
      groups.push_back(ParamGroup{s.lr, s.weight_decay, s.beta1, s.beta2, {}});
    }
    groups[it->second].names.push_back(s.name);
  }
  return groups;
}

std::string format_param_settings(const std::vector<ParamSetting>& settings,
                                  const config::OptimizerSection& optimizer) {
  const std::vector<ParamGroup> groups = group_settings(settings);
  std::map<std::string, size_t> group_of;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const auto& name : groups[g].names) group_of[name] = g;
  }
  size_t width = 4;
  for (const auto& s : settings) width = std::max(width, s.name.size());
  std::string out = fmt::format("{:<{}}  group  layer  {:>12}  {:>8}  betas        rule\n", "name", width, "lr", "wd");
  for (const auto& s : settings) {
    const std::string rule = s.rule < 0 ? "-" : fmt::format("{} ({})", s.rule, optimizer.param_groups[s.rule].match);
    out += fmt::format("{:<{}}  {:>5}  {:>5}  {:>12.6g}  {:>8.4g}  ({:.3g}, {:.3g})  {}\n", s.name, width,
                       group_of[s.name], s.layer_id, s.lr, s.weight_decay, s.beta1, s.beta2, rule);
  }
  return out;
}

}  // namespace l4::train
