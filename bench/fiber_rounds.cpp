// The IPC figure's floor as a plain program, for callgrind instruction counts
// and for timing beside persim-ipc-rounds: a fixed number of raw Boost.Context
// round trips (a resume into a peer fiber and back), as
// ipc_call_reply/floor_fiber_round_trip in ipc_bench.cpp does. Instructions per
// round trip are the difference of two runs divided by the difference of their
// counts (see docs/performance.md and bench/ipc_budget.py).
#include <boost/context/fiber.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace ctx = boost::context;

int main(int argc, char** argv) {
  char* end = nullptr;
  const std::uint64_t rounds = argc == 2 ? std::strtoull(argv[1], &end, 10) : 0;
  if (argc != 2 || end == argv[1] || *end != '\0' || rounds == 0) {
    std::fprintf(stderr, "usage: %s ROUNDS   (round trips: a number > 0)\n", argv[0]);
    return 2;
  }
  bool stop = false;
  ctx::fiber peer{[&stop](ctx::fiber&& back) {
    while (!stop) back = std::move(back).resume();
    return std::move(back);
  }};
  for (std::uint64_t i = 0; i < rounds; ++i) peer = std::move(peer).resume();
  stop = true;
  peer = std::move(peer).resume();  // the peer returns; its stack is freed
  std::printf("%llu round trips\n", static_cast<unsigned long long>(rounds));
  return 0;
}
