// Rank arithmetic of the (data-parallel x expert-parallel) layout, without any communication.
//
// Every rank is a data-parallel replica of the non-expert parameters. Experts are sharded over
// expert-parallel (EP) groups of `ep` consecutive ranks: rank r is EP rank r % ep of group r / ep and owns
// experts [ (r % ep) * E/ep, (r % ep + 1) * E/ep ). The ranks holding the same experts (same r % ep, one
// per EP group, stride ep) form the expert-data-parallel (EDP) group of size world/ep.
#pragma once

#include <cstdint>
#include <vector>

namespace l4::parallel {

struct GridLayout {
  int world_size = 1;
  int rank = 0;
  int ep = 1;
  int64_t num_experts = 0;  // total routed experts per MoE layer (HF num_local_experts); 0 = dense model

  // Throws l4::Error unless 1 <= ep, ep divides world_size and num_experts, 0 <= rank < world_size.
  static GridLayout make(int world_size, int rank, int ep, int64_t num_experts);

  int ep_rank() const { return rank % ep; }
  int ep_group() const { return rank / ep; }
  int num_ep_groups() const { return world_size / ep; }
  int edp_size() const { return world_size / ep; }
  int edp_rank() const { return rank / ep; }
  int64_t experts_per_rank() const { return ep > 0 && num_experts > 0 ? num_experts / ep : 0; }
  int64_t expert_begin() const { return ep_rank() * experts_per_rank(); }
  int64_t expert_end() const { return expert_begin() + experts_per_rank(); }
  // Which EP rank owns global expert e.
  int owner_ep_rank(int64_t expert) const { return static_cast<int>(expert / experts_per_rank()); }
  // World ranks of this rank's EP group and EDP group, ascending.
  std::vector<int> ep_group_ranks() const;
  std::vector<int> edp_group_ranks() const;
};

}  // namespace l4::parallel
