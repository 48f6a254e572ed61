// For the all-to-all benchmarks: a communicator that forwards to another and adds up the time spent in
// all_to_all_v.
#pragma once

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace l4::parallel::testing {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Forwards to another communicator and accumulates the time spent in all_to_all_v.
class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}
  double a2a_seconds = 0.0;
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }
  void all_reduce(at::Tensor& t, ReduceOp op) override { inner_.all_reduce(t, op); }
  at::Tensor all_gather(const at::Tensor& t) override { return inner_.all_gather(t); }
  at::Tensor reduce_scatter(const at::Tensor& t, ReduceOp op) override { return inner_.reduce_scatter(t, op); }
  std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& in, const std::vector<int64_t>& counts,
                                               at::Tensor& out, ReduceOp op) override {
    return inner_.reduce_scatter_v_async(in, counts, out, op);
  }
  at::Tensor all_to_all_v(const at::Tensor& in, const std::vector<int64_t>& s,
                          const std::vector<int64_t>& r) override {
    const double t0 = now_s();
    at::Tensor out = inner_.all_to_all_v(in, s, r);
    a2a_seconds += now_s() - t0;
    return out;
  }
  void broadcast(at::Tensor& t, int root) override { inner_.broadcast(t, root); }
  void barrier() override { inner_.barrier(); }
  [[noreturn]] void abort(int code) override {
    inner_.abort(code);
    std::_Exit(code);
  }
  std::unique_ptr<Communicator> split(int color, int key) override { return inner_.split(color, key); }

 private:
  Communicator& inner_;
};

}  // namespace l4::parallel::testing
