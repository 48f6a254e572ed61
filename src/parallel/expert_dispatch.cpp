#include "parallel/expert_dispatch.h"

#include <torch/torch.h>

#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/dispatch_plan.h"

namespace l4::parallel {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The communicator travels through saved_data as an integer: IValue has no slot for a plain pointer.
// The caller guarantees it outlives backward (see ExpertDispatch).
int64_t comm_to_int(Communicator* comm) { return static_cast<int64_t>(reinterpret_cast<intptr_t>(comm)); }
Communicator* int_to_comm(int64_t value) { return reinterpret_cast<Communicator*>(static_cast<intptr_t>(value)); }

class AllToAllV : public torch::autograd::Function<AllToAllV> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::vector<int64_t> send_counts,
                            std::vector<int64_t> recv_counts, int64_t comm) {
    ctx->saved_data["send"] = send_counts;
    ctx->saved_data["recv"] = recv_counts;
    ctx->saved_data["comm"] = comm;
    return int_to_comm(comm)->all_to_all_v(x, send_counts, recv_counts);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto send = ctx->saved_data["send"].toIntVector();
    const auto recv = ctx->saved_data["recv"].toIntVector();
    Communicator* comm = int_to_comm(ctx->saved_data["comm"].toInt());
    // The gradient of a received row goes back to the rank that sent it.
    at::Tensor grad = comm->all_to_all_v(grads[0].contiguous(), recv, send);
    return {grad, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor index_tensor(const std::vector<int64_t>& values, const at::Device& device) {
  return torch::tensor(values, torch::TensorOptions().dtype(torch::kLong)).to(device);
}

}  // namespace

at::Tensor all_to_all_v_autograd(const at::Tensor& x, const std::vector<int64_t>& send_counts,
                                 const std::vector<int64_t>& recv_counts, Communicator& comm) {
  return AllToAllV::apply(x, send_counts, recv_counts, comm_to_int(&comm));
}

DispatchStats sum_over_ranks(const DispatchStats& local, Communicator& comm) {
  at::Tensor counts = torch::tensor({local.rows, local.dropped}, torch::kLong);
  comm.all_reduce(counts, ReduceOp::kSum);
  return DispatchStats{counts[0].item<int64_t>(), counts[1].item<int64_t>()};
}

ExpertDispatch::ExpertDispatch(Communicator& ep_comm, int64_t num_experts, DispatchOptions options)
    : comm_(ep_comm), num_experts_(num_experts), options_(options) {
  L4_CHECK(num_experts >= 1 && num_experts % ep_comm.size() == 0,
           "expert dispatch: {} experts cannot be split evenly over {} expert-parallel ranks", num_experts,
           ep_comm.size());
}

int64_t ExpertDispatch::local_experts() const { return num_experts_ / comm_.size(); }
int64_t ExpertDispatch::expert_begin() const { return comm_.rank() * local_experts(); }

at::Tensor ExpertDispatch::operator()(const at::Tensor& x, const at::Tensor& expert_ids,
                                      const LocalExpertFn& local_compute) {
  L4_CHECK(x.dim() == 2, "expert dispatch: rows must be [N, D], got {} dims", x.dim());
  L4_CHECK(expert_ids.dim() == 1 && expert_ids.size(0) == x.size(0),
           "expert dispatch: expert ids must be [N] with N = {} rows", x.size(0));
  const int ep = comm_.size();
  const int64_t n = x.size(0);
  const int64_t local = local_experts();
  const at::Tensor ids = expert_ids.to(torch::kCPU, torch::kLong).contiguous();
  const SendPlan send = plan_send(ids.data_ptr<int64_t>(), n, num_experts_, ep, options_.capacity_factor);
  stats_.rows = n;
  stats_.dropped = send.dropped;

  const at::Tensor order = index_tensor(send.order, x.device());
  const at::Tensor send_rows = x.index_select(0, order);

  // How many rows each source sends to each of my local experts: [ep * local] after the exchange.
  std::vector<int64_t> recv_counts = send.rows_per_expert;
  if (ep > 1) {
    const at::Tensor counts = index_tensor(send.rows_per_expert, x.device());
    const std::vector<int64_t> per_rank(ep, local);
    const at::Tensor received = comm_.all_to_all_v(counts, per_rank, per_rank).to(torch::kCPU).contiguous();
    recv_counts.assign(received.data_ptr<int64_t>(), received.data_ptr<int64_t>() + received.numel());
  }
  const ReceivePlan recv = plan_receive(recv_counts, ep, local);

  const at::Tensor received_rows =
      ep > 1 ? all_to_all_v_autograd(send_rows, send.rows_per_rank, recv.rows_from_rank, comm_) : send_rows;
  // With one source the received buffer is already expert-major.
  const bool regroup = ep > 1 && local > 1;
  const at::Tensor expert_rows =
      regroup ? received_rows.index_select(0, index_tensor(recv.to_expert_major, x.device())) : received_rows;

  const at::Tensor expert_out = local_compute(expert_rows, recv.rows_per_local_expert);
  L4_CHECK(expert_out.dim() == 2 && expert_out.size(0) == expert_rows.size(0),
           "expert dispatch: local experts returned shape [{}] for {} rows; expected [rows, D_out]",
           fmt::join(expert_out.sizes().vec(), ", "), expert_rows.size(0));

  const at::Tensor back_rows =
      regroup ? expert_out.index_select(0, index_tensor(recv.from_expert_major, x.device())) : expert_out;
  const at::Tensor returned =
      ep > 1 ? all_to_all_v_autograd(back_rows, recv.rows_from_rank, send.rows_per_rank, comm_) : back_rows;
  // Scatter back to the original row order; dropped rows stay zero.
  return at::zeros({n, returned.size(1)}, returned.options()).index_copy(0, order, returned);
}

}  // namespace l4::parallel
