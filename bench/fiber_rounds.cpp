// The IPC figure's floor as a plain program, for callgrind instruction counts
// and for timing beside persim-ipc-rounds: a fixed number of raw Boost.Context
// round trips (a resume into a peer fiber and back), as
// ipc_call_reply/floor_fiber_round_trip in ipc_bench.cpp does. Instructions per
// round trip are the difference of two runs divided by the difference of their
// counts (see docs/performance.md and bench/ipc_budget.py).
#include <boost/context/fiber.hpp>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <utility>

#include "bench/count_arg.hpp"

namespace ctx = boost::context;

int main(int argc, char** argv) {
  const std::optional<std::uint64_t> argument = persim::bench::rounds_argument(argc, argv);
  if (!argument) return 2;
  const std::uint64_t rounds = *argument;
  bool stop = false;
  std::uint64_t returns = 0;  // resumes that came back: the round trips made
  ctx::fiber peer{[&stop](ctx::fiber&& back) {
    while (!stop) back = std::move(back).resume();
    return std::move(back);
  }};
  for (std::uint64_t i = 0; i < rounds; ++i) {
    peer = std::move(peer).resume();
    if (peer) ++returns;  // the peer is suspended again, not finished
  }
  stop = true;
  peer = std::move(peer).resume();  // the peer returns; its stack is freed
  std::printf("%llu round trips\n", static_cast<unsigned long long>(returns));
  return returns == rounds && !peer ? 0 : 1;
}
